//! One function per command: resolve settings, do the work, render through
//! `ui`, return an [`Outcome`]. `main.rs` maps the outcome to an exit code.

use std::io::Write as _;

use serde::Serialize;

use crate::cli::{Cli, Command, OutputFormat, PlanArgs, RunArgs, StatusArgs, ValidateArgs};
use crate::engine::{plan, schedule};
use crate::exit::Outcome;
use crate::spec::resolve::{self, Overrides};
use crate::spec::{self, Diagnostic, SpecFile};
use crate::ui;

pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Run(args) => run_cmd(args),
        Command::Status(args) => block_on(status_cmd(args)),
        Command::Abort(args) => block_on(crate::act::act(crate::act::Request::Abort, args)),
        Command::Promote(args) => block_on(crate::act::act(crate::act::Request::Promote, args)),
        Command::Pause(args) => block_on(crate::act::act(crate::act::Request::Pause, args)),
        Command::Resume(args) => block_on(crate::act::act(crate::act::Request::Resume, args)),
        Command::Validate(args) => validate(args),
        Command::Plan(args) => plan_cmd(args),
        Command::Demo(args) if args.serve => {
            crate::sim::world::serve_demo(crate::sim::world::DemoOptions {
                kubeconfig: args.kubeconfig,
                scenario: args.scenario,
            })
        }
        Command::Demo(_) => crate::demo::demo(),
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

/// `canary run`: every canary of every file, concurrently.
fn run_cmd(args: RunArgs) -> Outcome {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        match spec::load_file(path) {
            Ok(f) => files.push(f),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        ui::diagnostics(&errors);
        return Outcome::Usage;
    }
    if let Some(p) = args.mesh_provider.as_deref().filter(|p| !p.is_empty())
        && let Some(msg) = spec::validate::provider_problem(p)
    {
        let _ = writeln!(std::io::stderr(), "error: --mesh-provider: {msg}");
        return Outcome::Usage;
    }
    block_on(run_files(args, files))
}

async fn run_files(args: RunArgs, files: Vec<SpecFile>) -> Outcome {
    use crate::run::{Driver, RunError, Settings};
    let conn = match crate::cluster::connect::connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::Cluster;
        }
    };
    let settings = Settings {
        kubeconfig: args.cluster.kubeconfig.clone(),
        context: args.cluster.context.clone(),
        namespace: args.cluster.namespace.clone(),
        wait_for_change: args.wait_for_change,
        set_image: args.set_image.clone(),
        retry: args.retry,
        holder: crate::run::holder(),
    };
    let overrides = Overrides {
        mesh_provider: args.mesh_provider.clone().filter(|p| !p.is_empty()),
        metrics_server: args.metrics_server.clone().filter(|s| !s.is_empty()),
    };
    let reporter = ui::EventLines::new();
    let mut canaries = Vec::new();
    for file in &files {
        let templates: Vec<_> = file
            .metric_templates
            .iter()
            .map(|d| d.value.clone())
            .collect();
        for doc in &file.canaries {
            let mut c = resolve::resolve(file, doc, &overrides);
            if doc
                .value
                .metadata
                .as_ref()
                .and_then(|m| m.namespace.as_ref())
                .is_none()
            {
                c.namespace = settings
                    .namespace
                    .clone()
                    .unwrap_or_else(|| conn.namespace.clone());
            }
            canaries.push((c, templates.clone()));
        }
    }
    let mut outcome = Outcome::Success;
    let mut drives = Vec::new();
    for (mut c, templates) in canaries {
        if c.provider.is_none() {
            match crate::run::detect_provider(&conn.client).await {
                Ok((p, why)) => {
                    reporter.line(
                        &format!("{}.{}", c.name, c.namespace),
                        &format!("Using provider {p}: {why}"),
                    );
                    c.provider = Some(p);
                }
                Err(e) => {
                    ui::error(&e.to_string());
                    return Outcome::Usage;
                }
            }
        }
        drives.push((c, templates));
    }
    let driven: Vec<(String, String, String)> = drives
        .iter()
        .map(|(c, _)| {
            (
                format!("{}.{}", c.name, c.namespace),
                c.namespace.clone(),
                c.target.name.clone(),
            )
        })
        .collect();
    let all = futures::future::join_all(drives.into_iter().map(|(c, templates)| {
        let conn = &conn;
        let settings = &settings;
        let reporter = &reporter;
        async move {
            let id = format!("{}.{}", c.name, c.namespace);
            let target = format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name);
            let result = match Driver::new(conn, c, templates, settings, reporter) {
                Ok(mut d) => d.drive().await,
                Err(e) => Err(e),
            };
            (id, target, result)
        }
    }));
    // Ctrl-C stops driving between two effects: every round is idempotent,
    // so the state left behind resumes. The lease is released so the next
    // `canary run` continues at once.
    let results = tokio::select! {
        results = all => results,
        _ = tokio::signal::ctrl_c() => {
            for (id, namespace, target) in &driven {
                if let Err(e) =
                    crate::run::release_lease(&conn, namespace, target, &settings.holder).await
                {
                    ui::error(&format!("{id}: {e}"));
                }
                ui::error(&format!(
                    "{id}: interrupted; the state is kept: run `canary run` again to resume"
                ));
            }
            return Outcome::Interrupted;
        }
    };
    for (id, target, result) in results {
        let o = match result {
            Ok(v) => ui::verdict(&id, &target, &v),
            Err(RunError::Setup(msg)) => {
                ui::error(&format!("{id}: {msg}"));
                Outcome::Usage
            }
            Err(e) => {
                ui::error(&format!("{id}: {e}"));
                Outcome::Cluster
            }
        };
        outcome = worst(outcome, o);
    }
    outcome
}

/// The outcome that matters most when several canaries ran.
fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Success => 0,
        Outcome::RolledBack => 3,
        Outcome::Usage => 2,
        Outcome::Cluster => 4,
        Outcome::Aborted => 1,
        Outcome::TimedOut => 1,
        Outcome::Interrupted => 5,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Runs a command's async work on a small runtime: two workers are plenty
/// for a driver that mostly waits.
pub fn block_on(work: impl std::future::Future<Output = Outcome>) -> Outcome {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r.block_on(work),
        Err(e) => {
            ui::error(&format!("failed to start the async runtime: {e}"));
            Outcome::Cluster
        }
    }
}

/// `canary status`.
async fn status_cmd(args: StatusArgs) -> Outcome {
    let conn = match crate::cluster::connect::connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::Cluster;
        }
    };
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.cluster
                .namespace
                .clone()
                .unwrap_or_else(|| conn.namespace.clone()),
        )
    };
    let mut all = match crate::status::list(&conn, namespace.as_deref()).await {
        Ok(l) => l,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::Cluster;
        }
    };
    if let Some(name) = &args.name {
        all.retain(|c| &c.name == name || &c.target == name);
        if all.is_empty() {
            let where_ = namespace
                .map(|n| format!("namespace {n}"))
                .unwrap_or_else(|| "any namespace".to_string());
            ui::error(&format!(
                "no canary named `{name}` in {where_}; `canary status` lists them"
            ));
            return Outcome::Usage;
        }
    } else {
        for c in &mut all {
            c.history.clear();
        }
    }
    ui::status(&all, args.output, args.name.is_some(), args.all_namespaces);
    Outcome::Success
}
