//! `canary plan`: what a rollout of one canary will do, without a cluster.

use super::{mesh_provider, refusals};
use crate::cli::{OutputFormat, PlanArgs};
use crate::exit::Outcome;
use crate::ui;
use canary_core::engine::plan;
use canary_core::spec::resolve::{self, Overrides};
use canary_core::spec::{self, SpecFile};

pub(super) fn plan(args: PlanArgs) -> Outcome {
    let limits = super::spec_limits(args.max_input_size);
    let (files, errors) = super::load_inputs(
        std::slice::from_ref(&args.file),
        args.recursive,
        &limits,
        true,
    );
    if !errors.is_empty() {
        ui::diagnostics(&errors);
        return Outcome::Usage;
    }
    let twice = spec::validate::duplicates(&files.iter().collect::<Vec<_>>(), None, false);
    if !twice.is_empty() {
        ui::diagnostics(&twice);
        return Outcome::Usage;
    }
    let name = match args.file.as_os_str() == "-" {
        true => spec::manifest::STDIN.to_string(),
        false => args.file.display().to_string(),
    };
    let (file, doc) = match pick_canary(&name, &files, args.name.as_deref()) {
        Ok(d) => d,
        Err(msg) => {
            ui::error(&msg);
            return Outcome::Usage;
        }
    };
    let Ok(mesh_provider) = mesh_provider(args.mesh_provider.as_deref()) else {
        return Outcome::Usage;
    };
    let overrides = Overrides {
        mesh_provider,
        metrics_server: args.metrics_server.filter(|s| !s.is_empty()),
        namespace: None,
    };
    let resolved = resolve::resolve(file, doc, &overrides);
    let mut refused = refusals(file, doc, &resolved);
    // The Services `run` refuses to reach whatever `--proxy-allow` says.
    refused.extend(super::reach_refusals(file, doc, &resolved, None));
    if !refused.is_empty() {
        ui::diagnostics(&refused);
        return Outcome::Usage;
    }
    let templates: Vec<_> = file.metric_templates.iter().map(|d| &d.value).collect();
    let p = plan::plan(&resolved, &templates);
    match args.output {
        OutputFormat::Json => ui::print_json(&p),
        OutputFormat::Table => ui::plan_table(&p),
    }
    Outcome::Success
}

/// The canary to plan among the files of one input, with its file.
pub(super) fn pick_canary<'f>(
    input: &str,
    files: &'f [SpecFile],
    name: Option<&str>,
) -> Result<(&'f SpecFile, &'f spec::Doc<spec::types::Canary>), String> {
    let all: Vec<_> = files
        .iter()
        .flat_map(|f| f.canaries.iter().map(move |d| (f, d)))
        .collect();
    let names = || {
        all.iter()
            .map(|(_, d)| d.value.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, all.len()) {
        (_, 0) => Err(format!(
            "{input}: holds no Canary document (only MetricTemplate/AlertProvider)"
        )),
        (None, 1) => Ok(all[0]),
        (None, _) => Err(format!(
            "{input}: holds several canaries ({}); choose one with --name",
            names()
        )),
        (Some(n), _) => all
            .iter()
            .find(|(_, d)| d.value.name() == n)
            .copied()
            .ok_or_else(|| format!("{input}: no Canary named `{n}` (found: {})", names())),
    }
}
