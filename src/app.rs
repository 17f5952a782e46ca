//! One function per command: resolve settings, do the work, render through
//! `ui`, return an [`Outcome`]. `main.rs` maps the outcome to an exit code.

use std::io::Write as _;

use serde::Serialize;

use crate::cli::{Cli, Command, OutputFormat, PlanArgs, ValidateArgs};
use crate::engine::{plan, schedule};
use crate::exit::Outcome;
use crate::spec::resolve::{self, Overrides};
use crate::spec::{self, Diagnostic, SpecFile};
use crate::ui;

pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Validate(args) => validate(args),
        Command::Plan(args) => plan_cmd(args),
        Command::Demo(args) => crate::sim::world::serve_demo(crate::sim::world::DemoOptions {
            kubeconfig: args.kubeconfig,
            scenario: args.scenario,
        }),
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "canary", &mut std::io::stdout());
            Outcome::Success
        }
    }
}

/// One valid canary, as `validate` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidCanary {
    pub file: String,
    pub name: String,
    pub namespace: String,
    pub strategy: String,
    pub provider: Option<String>,
    /// Traffic steps or iterations of the analysis.
    pub steps: usize,
    /// Weights in order, for a progressive canary.
    pub weights: Vec<u32>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateReport {
    pub valid: bool,
    pub canaries: Vec<ValidCanary>,
    pub metric_templates: usize,
    pub alert_providers: usize,
    pub errors: Vec<Diagnostic>,
}

fn validate(args: ValidateArgs) -> Outcome {
    let mut report = ValidateReport {
        valid: true,
        canaries: Vec::new(),
        metric_templates: 0,
        alert_providers: 0,
        errors: Vec::new(),
    };
    for path in &args.files {
        match spec::load_file(path) {
            Ok(file) => {
                report.metric_templates += file.metric_templates.len();
                report.alert_providers += file.alert_providers.len();
                for doc in &file.canaries {
                    let r = resolve::resolve(&file, doc, &Overrides::default());
                    let steps = if r.skip_analysis {
                        Vec::new()
                    } else {
                        schedule::steps(&r)
                    };
                    let weights = match r.strategy {
                        resolve::Strategy::Canary { .. } => {
                            steps.iter().map(|s| s.routing.weights().1).collect()
                        }
                        _ => Vec::new(),
                    };
                    report.canaries.push(ValidCanary {
                        file: file.name.clone(),
                        name: r.name.clone(),
                        namespace: r.namespace.clone(),
                        strategy: r.strategy.label().to_string(),
                        provider: r.provider.clone(),
                        steps: steps.len(),
                        weights,
                        notes: r.notes.clone(),
                    });
                }
            }
            Err(errors) => {
                report.valid = false;
                report.errors.extend(errors);
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

fn plan_cmd(args: PlanArgs) -> Outcome {
    let file = match spec::load_file(&args.file) {
        Ok(f) => f,
        Err(errors) => {
            ui::diagnostics(&errors);
            return Outcome::Usage;
        }
    };
    let doc = match pick_canary(&file, args.name.as_deref()) {
        Ok(d) => d,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            return Outcome::Usage;
        }
    };
    let overrides = Overrides {
        mesh_provider: args.mesh_provider.filter(|p| !p.is_empty()),
        metrics_server: args.metrics_server.filter(|s| !s.is_empty()),
    };
    if let Some(p) = &overrides.mesh_provider
        && let Some(msg) = spec::validate::provider_problem(p)
    {
        let _ = writeln!(std::io::stderr(), "error: --mesh-provider: {msg}");
        return Outcome::Usage;
    }
    let resolved = resolve::resolve(&file, doc, &overrides);
    let templates: Vec<_> = file.metric_templates.iter().map(|d| &d.value).collect();
    let p = plan::plan(&resolved, &templates);
    match args.output {
        OutputFormat::Json => ui::print_json(&p),
        OutputFormat::Table => ui::plan_table(&p),
    }
    Outcome::Success
}

fn pick_canary<'f>(
    file: &'f SpecFile,
    name: Option<&str>,
) -> Result<&'f spec::Doc<spec::types::Canary>, String> {
    let names = || {
        file.canaries
            .iter()
            .map(|d| d.value.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, file.canaries.len()) {
        (_, 0) => Err(format!(
            "{}: holds no Canary document (only MetricTemplate/AlertProvider)",
            file.name
        )),
        (None, 1) => Ok(&file.canaries[0]),
        (None, _) => Err(format!(
            "{}: holds several canaries ({}); choose one with --name",
            file.name,
            names()
        )),
        (Some(n), _) => file
            .canaries
            .iter()
            .find(|d| d.value.name() == n)
            .ok_or_else(|| format!("{}: no Canary named `{n}` (found: {})", file.name, names())),
    }
}
