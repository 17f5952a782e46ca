//! `canary validate`: every file checked offline, Flagger's rules and what
//! `canary run` can carry out, with one line per valid canary; with
//! `--cluster`, each canary also goes through the preflight `canary run`
//! makes before any write (`cluster::preflight`), reading only.

use crate::cli::{OutputFormat, ValidateArgs};
use crate::exit::Outcome;
use crate::ui::{self, ValidCanary, ValidateReport};
use canary_core::engine::schedule;
use canary_core::spec;
use canary_core::spec::resolve::{self, Overrides};
use canary_core::support;

pub(super) fn validate(args: ValidateArgs) -> Outcome {
    if args.check_cluster {
        return super::block_on(validate_files(args));
    }
    futures::executor::block_on(validate_files(args))
}

async fn validate_files(args: ValidateArgs) -> Outcome {
    let mut report = ValidateReport {
        valid: true,
        canaries: Vec::new(),
        metric_templates: 0,
        alert_providers: 0,
        errors: Vec::new(),
        skipped: Default::default(),
    };
    let limits = super::spec_limits(args.max_input_size);
    let (files, errors) = super::load_inputs(&args.files, args.recursive, &limits, false);
    report.valid &= errors.is_empty();
    report.errors.extend(errors);
    report.skipped = spec::manifest::skipped(&files);
    let twice = spec::validate::duplicates(&files.iter().collect::<Vec<_>>(), None, false);
    report.valid &= twice.is_empty();
    report.errors.extend(twice);
    let all: Vec<_> = files.iter().collect();
    let Ok(mesh_provider) =
        super::mesh_provider(args.mesh_provider.as_deref().filter(|_| args.check_cluster))
    else {
        return Outcome::Usage;
    };
    let conn = if args.check_cluster {
        match super::connect(&args.connection).await {
            Ok(c) => Some(c),
            Err(e) => {
                ui::error(&e.to_string());
                return Outcome::from(&e);
            }
        }
    } else {
        None
    };
    let route_via = super::route_via(&args.route);
    let proxy_allow = super::proxy_allow(&args.route.proxy_allow);
    for file in &files {
        {
            {
                report.metric_templates += file.metric_templates.len();
                for t in &file.metric_templates {
                    let refused = support::check_template(file, t);
                    report.valid &= refused.is_empty();
                    report.errors.extend(refused);
                }
                report.alert_providers += file.alert_providers.len();
                for doc in &file.canaries {
                    let mut r = resolve::resolve(file, doc, &Overrides::default());
                    let mut refused = support::check_accepting_retired(file, doc, &r);
                    refused.extend(spec::manifest::check_target(&all, file, doc));
                    // Against the cluster, as `canary run` resolves it: the
                    // context's namespace, the provider detected.
                    let mut cluster_checked = None;
                    if let Some(conn) = &conn
                        && !r.target.name.is_empty()
                    {
                        let overrides = Overrides {
                            mesh_provider,
                            metrics_server: args.metrics_server.clone().filter(|s| !s.is_empty()),
                            namespace: Some(
                                args.connection
                                    .namespace
                                    .clone()
                                    .unwrap_or_else(|| conn.namespace.clone()),
                            ),
                        };
                        r = resolve::resolve(file, doc, &overrides);
                        if r.provider.is_none() {
                            match crate::router::detect::detect(&conn.client).await {
                                Ok(found) => {
                                    r.provider = Some(found.provider);
                                    r.provider_source = resolve::ProviderSource::Detected;
                                }
                                Err(e) => {
                                    ui::error(&e.to_string());
                                    return Outcome::from(&e);
                                }
                            }
                        }
                        match crate::cluster::preflight::check(conn, file, doc, &r, route_via).await
                        {
                            Ok(found) => {
                                refused.extend(found.problems);
                                cluster_checked = Some(found.checked);
                            }
                            Err(e) => {
                                ui::error(&e.to_string());
                                return Outcome::from(&e);
                            }
                        }
                    }
                    refused.extend(super::reach_refusals(file, doc, &r, proxy_allow.as_deref()));
                    if !refused.is_empty() {
                        report.valid = false;
                        report.errors.extend(refused);
                        continue;
                    }
                    // A canary defined twice is reported above, once.
                    if report
                        .canaries
                        .iter()
                        .any(|c| c.name == r.name && c.namespace == r.namespace)
                    {
                        continue;
                    }
                    let mut notes = r.notes.clone();
                    if let Some(d) = support::check_metrics_server(file, doc, &r) {
                        notes.push(format!("{}: {}", d.message, d.help.unwrap_or_default()));
                    }
                    let steps = schedule::Schedule::of(&r).steps;
                    let weights = match r.strategy {
                        resolve::Strategy::Canary { .. } => {
                            steps.iter().map(|s| s.routing.canary_weight()).collect()
                        }
                        _ => Vec::new(),
                    };
                    report.canaries.push(ValidCanary {
                        file: file.name.clone(),
                        name: r.name.clone(),
                        namespace: r.namespace.clone(),
                        strategy: r.strategy.label().to_string(),
                        provider: r.provider,
                        steps: steps.len(),
                        weights,
                        notes,
                        warnings: support::retired_warning(&r).into_iter().collect(),
                        cluster: cluster_checked,
                    });
                }
            }
        }
    }
    match args.output {
        OutputFormat::Json => ui::print_json(&report),
        OutputFormat::Table => ui::validate_report(&report),
    }
    if report.valid {
        Outcome::Success
    } else {
        Outcome::Usage
    }
}
