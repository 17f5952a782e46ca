//! `canary plan`: what a rollout of one canary will do, without a cluster.

use std::io::Write as _;

use super::{mesh_provider, refusals};
use crate::cli::{OutputFormat, PlanArgs};
use crate::exit::Outcome;
use crate::ui;
use canary_core::engine::plan;
use canary_core::spec::resolve::{self, Overrides};
use canary_core::spec::{self, SpecFile};

pub(super) fn plan(args: PlanArgs) -> Outcome {
    let file = match spec::load_file_with(&args.file, &super::spec_limits(args.max_input_size)) {
        Ok(f) => f,
        Err(errors) => {
            ui::diagnostics(&errors);
            return Outcome::Usage;
        }
    };
    let twice = spec::validate::duplicates(&[&file], None, false);
    if !twice.is_empty() {
        ui::diagnostics(&twice);
        return Outcome::Usage;
    }
    let doc = match pick_canary(&file, args.name.as_deref()) {
        Ok(d) => d,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "error: {msg}");
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
    let resolved = resolve::resolve(&file, doc, &overrides);
    let refused = refusals(&file, doc, &resolved);
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
