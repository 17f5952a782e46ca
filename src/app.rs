//! One function per command: resolve settings, do the work, render through
//! `ui`, return an [`Outcome`]. `main.rs` maps the outcome to an exit code.

use std::io::Write as _;

use serde::Serialize;

use crate::cli::{Cli, Command, OutputFormat, PlanArgs, RunArgs, StatusArgs, ValidateArgs};
use crate::exit::Outcome;
use crate::ui;
use canary_core::engine::{plan, schedule};
use canary_core::spec::resolve::{self, Overrides};
use canary_core::spec::{self, Diagnostic, SpecFile};

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
        #[cfg(feature = "demo")]
        Command::Demo(args) if args.serve => crate::demo::serve(args.kubeconfig, args.scenario),
        #[cfg(feature = "demo")]
        Command::Demo(_) => crate::demo::demo(),
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => {
            ui::error(
                "this canary was built without the simulated cluster (cargo feature `demo`); \
                 `cargo install canary` with default features has `canary demo`",
            );
            Outcome::Usage
        }
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
        namespace: None,
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
    use crate::cli::OnStop;
    use crate::run::{Driver, RunError, Settings, Stop};
    use canary_core::engine::decide::Verdict;
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
        namespace: Some(
            settings
                .namespace
                .clone()
                .unwrap_or_else(|| conn.namespace.clone()),
        ),
    };
    let mode = ui::output::choose(
        args.output == crate::cli::RunFormat::Json,
        args.quiet,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let output = ui::RunOutput::new(mode);
    let mut drives = Vec::new();
    for file in &files {
        let templates: Vec<_> = file
            .metric_templates
            .iter()
            .map(|d| d.value.clone())
            .collect();
        for doc in &file.canaries {
            let mut c = resolve::resolve(file, doc, &overrides);
            let mut note = None;
            if c.provider.is_none() {
                match crate::run::detect_provider(&conn.client).await {
                    Ok((p, why)) => {
                        note = Some(format!("Using provider {p}: {why}"));
                        c.provider = Some(p);
                    }
                    Err(e) => {
                        output.error(&e.to_string());
                        return Outcome::Usage;
                    }
                }
            }
            let stored = stored_spec(&doc.value, &c, &templates);
            drives.push((c, templates.clone(), stored, note));
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let limit = args
        .max_parallel
        .map(|n| n as usize)
        .unwrap_or(drives.len())
        .max(1);
    let slots = tokio::sync::Semaphore::new(limit);
    let all = futures::future::join_all(drives.into_iter().map(|(c, templates, stored, note)| {
        let (conn, settings, output, slots) = (&conn, &settings, &output, &slots);
        let stop = stop_rx.clone();
        async move {
            let id = format!("{}.{}", c.name, c.namespace);
            let target = format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name);
            let (namespace, target_name) = (c.namespace.clone(), c.target.name.clone());
            let _slot = slots.acquire().await;
            let hint = format!("{} -n {}", c.name, c.namespace);
            if stop.borrow().is_some() {
                // Stopped before its turn: never started.
                return (id, hint, target, Err(RunError::Stopped), None, false);
            }
            let watched = stop.clone();
            let (result, state) = match Driver::new(
                conn,
                c,
                templates,
                settings,
                output as &dyn canary_core::event::Reporter,
            ) {
                Ok(d) => {
                    let mut d = d.with_spec(stored).with_stop(stop).with_note(note);
                    let r = d.drive().await;
                    (r, Some(d.last_shown().0))
                }
                Err(e) => (Err(e), None),
            };
            if matches!(result, Err(RunError::Stopped))
                && let Err(e) =
                    crate::run::release_lease(conn, &namespace, &target_name, &settings.holder)
                        .await
            {
                output.error(&format!("{id}: {e}"));
            }
            // Whether the stop made this verdict: its own rollback, or the
            // end of a wait for a change. A verdict the analysis reached
            // on its own stands.
            let by_stop = match (&result, watched.borrow().as_ref()) {
                (Ok(Verdict::RolledBack { reason }), Some(Stop::RollBack(why))) => reason == why,
                (Ok(Verdict::NoChange), Some(_)) => settings.wait_for_change.is_some(),
                _ => false,
            };
            (id, hint, target, result, state, by_stop)
        }
    }));
    tokio::pin!(all);

    // --timeout and Ctrl-C tell the drivers to stop; they stop between two
    // effects (every round is idempotent, so what is left resumes).
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut cause: Option<Outcome> = None;
    let mut interrupts = Interrupts::new();
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            }, if cause.is_none() => {
                let t = humantime::format_duration(args.timeout.unwrap_or_default());
                cause = Some(Outcome::TimedOut);
                let stop = match args.on_timeout {
                    OnStop::Rollback => Stop::RollBack(format!("timed out after {t}")),
                    OnStop::Leave => Stop::Leave,
                };
                output.error(&format!("timed out after {t}; {}", match stop {
                    Stop::Leave => "leaving rollouts under way as they are",
                    Stop::RollBack(_) => "rolling back rollouts under way",
                }));
                let _ = stop_tx.send(Some(stop));
            }
            _ = interrupts.next() => {
                if cause == Some(Outcome::Interrupted) {
                    output.error("interrupted again: exiting now");
                    return Outcome::Interrupted;
                }
                cause = Some(Outcome::Interrupted);
                let stop = match args.on_interrupt {
                    OnStop::Rollback => Stop::RollBack("interrupted".to_string()),
                    OnStop::Leave => Stop::Leave,
                };
                output.error(match stop {
                    Stop::Leave => "interrupted: stopping, the state is kept (Ctrl-C again to exit at once)",
                    Stop::RollBack(_) => "interrupted: rolling back (Ctrl-C again to exit at once)",
                });
                let _ = stop_tx.send(Some(stop));
            }
        }
    };

    let mut outcome = Outcome::Success;
    for (id, hint, target, result, state, by_stop) in results {
        let (o, result_name, reason) = match (&result, cause) {
            (Err(RunError::Stopped), Some(c)) => {
                let files = args
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                output.error(&format!(
                    "{id}: stopped with the rollout as it was; `canary run {files}` resumes it, \
                     `canary abort {hint}` rolls it back"
                ));
                (
                    c,
                    stop_name(c),
                    Some("stopped; the state is kept".to_string()),
                )
            }
            (Ok(v), Some(c)) if by_stop => {
                let reason = match v {
                    Verdict::RolledBack { reason } => reason.clone(),
                    _ => "stopped before a change came".to_string(),
                };
                (c, stop_name(c), Some(reason))
            }
            (Ok(v), _) => {
                let (o, name, reason) = verdict_outcome(v);
                (o, name, reason)
            }
            (Err(RunError::Setup(msg)), _) => {
                output.error(&format!("{id}: {msg}"));
                (Outcome::Usage, "error", Some(msg.clone()))
            }
            (Err(e), _) => {
                output.error(&format!("{id}: {e}"));
                (Outcome::Cluster, "error", Some(e.to_string()))
            }
        };
        emit_verdict(&output, &id, target, state, o, result_name, reason);
        outcome = worst(outcome, o);
    }
    output.finish();
    outcome
}

/// Reports how a run ended for canary `id` (`name.namespace`), with the
/// state its driver last showed.
pub(crate) fn emit_verdict(
    output: &dyn canary_core::event::Reporter,
    id: &str,
    target: String,
    state: Option<canary_core::engine::state::State>,
    o: Outcome,
    result: &str,
    reason: Option<String>,
) {
    let (name, namespace) = id.split_once('.').unwrap_or((id, ""));
    let state = state.unwrap_or_else(|| canary_core::engine::state::State::new(crate::run::now()));
    let mut e = canary_core::event::Event::new(
        canary_core::event::Kind::Verdict,
        crate::run::now(),
        name,
        namespace,
        &state,
    );
    e.message = Some(target);
    e.outcome = Some(canary_core::event::OutcomeInfo {
        result: result.to_string(),
        exit_code: o.code(),
        reason,
    });
    output.emit(&e);
}

/// The outcome, its name in events, and its reason, for a verdict.
pub(crate) fn verdict_outcome(
    v: &canary_core::engine::decide::Verdict,
) -> (Outcome, &'static str, Option<String>) {
    use canary_core::engine::decide::Verdict;
    match v {
        Verdict::Initialized => (Outcome::Success, "initialized", None),
        Verdict::NoChange => (Outcome::Success, "noChange", None),
        Verdict::Promoted => (Outcome::Success, "promoted", None),
        Verdict::RolledBack { reason } => (Outcome::RolledBack, "rolledBack", Some(reason.clone())),
        Verdict::AlreadyFailed(f) => (
            Outcome::RolledBack,
            "alreadyFailed",
            Some(format!("at {}: {}", f.time.to_rfc3339(), f.reason)),
        ),
        Verdict::Aborted { by } => (
            Outcome::Aborted,
            "aborted",
            Some(format!("aborted by {by}")),
        ),
    }
}

fn stop_name(o: Outcome) -> &'static str {
    match o {
        Outcome::TimedOut => "timedOut",
        _ => "interrupted",
    }
}

/// The Canary document as a driver ran it, with its namespace, provider
/// and metrics server resolved, followed by the file's MetricTemplates:
/// what `abort` and `promote` need to act with no spec file at hand.
fn stored_spec(
    doc: &spec::types::Canary,
    c: &resolve::ResolvedCanary,
    templates: &[spec::types::MetricTemplate],
) -> String {
    let mut doc = doc.clone();
    doc.status = None;
    let meta = doc.metadata.get_or_insert_with(Default::default);
    meta.namespace = Some(c.namespace.clone());
    let spec = doc.spec.get_or_insert_with(Default::default);
    spec.provider = c.provider.clone();
    if c.metrics_server.is_some() {
        spec.metrics_server = c.metrics_server.clone();
    }
    let mut parts = vec![serde_json::to_string(&doc).expect("specs serialize")];
    for t in templates {
        parts.push(serde_json::to_string(t).expect("specs serialize"));
    }
    parts.join("\n---\n")
}

/// Ctrl-C as a stream with one listener for the whole command, so that a
/// signal arriving while the command is busy is kept rather than lost.
struct Interrupts {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    fn new() -> Interrupts {
        Interrupts {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            s.recv().await;
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
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
    // -f FILE: the canaries of the file, by name and the namespace they
    // name, checked before the cluster is asked anything.
    let mut from_file: Option<Vec<(String, Option<String>)>> = None;
    if let Some(path) = &args.file {
        let file = match spec::load_file(path) {
            Ok(f) => f,
            Err(errors) => {
                ui::diagnostics(&errors);
                return Outcome::Usage;
            }
        };
        from_file = Some(
            file.canaries
                .iter()
                .map(|d| {
                    let ns = d.value.explicit_namespace().map(str::to_string);
                    (d.value.name().to_string(), ns)
                })
                .collect(),
        );
    }
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
    let default_ns = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone());
    let wanted: Option<Vec<(String, String)>> = from_file.map(|canaries| {
        canaries
            .into_iter()
            .map(|(name, ns)| (name, ns.unwrap_or_else(|| default_ns.clone())))
            .collect()
    });
    let namespace = match &wanted {
        Some(w) if w.iter().all(|(_, ns)| ns == &w[0].1) && !w.is_empty() => Some(w[0].1.clone()),
        Some(_) => None,
        None if args.all_namespaces => None,
        None => Some(default_ns.clone()),
    };
    let keep = |c: &crate::status::CanaryStatus| match (&wanted, &args.name) {
        (Some(w), _) => w.iter().any(|(n, ns)| n == &c.name && ns == &c.namespace),
        (None, Some(name)) => &c.name == name || &c.target == name,
        (None, None) => true,
    };
    let mut all = match crate::status::list(&conn, namespace.as_deref()).await {
        Ok(l) => l,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::Cluster;
        }
    };
    all.retain(|c| keep(c));
    let detail = args.name.is_some();
    if let Some(name) = &args.name
        && all.is_empty()
    {
        let where_ = namespace
            .map(|n| format!("namespace {n}"))
            .unwrap_or_else(|| "any namespace".to_string());
        ui::error(&format!(
            "no canary named `{name}` in {where_}; `canary status` lists them"
        ));
        return Outcome::Usage;
    }
    if !detail {
        for c in &mut all {
            c.history.clear();
        }
    }
    let all_namespaces = namespace.is_none();
    if !args.watch {
        ui::status(&all, args.output, detail, all_namespaces);
        return Outcome::Success;
    }
    match watch_status(
        &conn,
        namespace.as_deref(),
        all,
        &keep,
        &args,
        all_namespaces,
    )
    .await
    {
        Ok(()) => Outcome::Success,
        Err(e) => {
            ui::error(&e.to_string());
            Outcome::Cluster
        }
    }
}

/// `canary status -w`: the table, then one row per change, from a watch
/// of the primaries. A driver whose lease runs out shows as lost when it
/// does, without an API call: the lease is in the objects already seen.
async fn watch_status(
    conn: &crate::cluster::connect::Connection,
    namespace: Option<&str>,
    first: Vec<crate::status::CanaryStatus>,
    keep: &dyn Fn(&crate::status::CanaryStatus) -> bool,
    args: &StatusArgs,
    all_namespaces: bool,
) -> Result<(), crate::cluster::error::ClusterError> {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::watcher;
    let api: kube::Api<Deployment> = match namespace {
        Some(ns) => kube::Api::namespaced(conn.client.clone(), ns),
        None => kube::Api::all(conn.client.clone()),
    };
    let mut rows = ui::StatusRows::new(args.output, all_namespaces, &first);
    let mut seen: std::collections::BTreeMap<(String, String), Deployment> = Default::default();
    for c in &first {
        rows.print(c);
    }
    let mut shown: std::collections::BTreeMap<(String, String), crate::status::RowKey> = first
        .iter()
        .map(|c| ((c.namespace.clone(), c.name.clone()), c.row_key()))
        .collect();
    let config = watcher::Config::default().labels(&crate::status::selector());
    let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(
        watcher::watcher(api, config)
    ));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut interrupts = Interrupts::new();
    loop {
        let changed: Vec<Deployment> = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d))) => vec![d],
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => {
                    return Err(crate::cluster::error::ClusterError::Refused(format!(
                        "the watch of the canaries failed: {e}"
                    )));
                }
                None => return Ok(()),
            },
            _ = tick.tick() => seen.values().cloned().collect(),
            _ = interrupts.next() => return Ok(()),
        };
        let now = crate::run::now();
        for d in changed {
            let Some(c) = crate::status::of_primary(&d, now) else {
                continue;
            };
            if !keep(&c) {
                continue;
            }
            let key = (c.namespace.clone(), c.name.clone());
            let row = c.row_key();
            seen.insert(key.clone(), d);
            if shown.get(&key) != Some(&row) {
                rows.print(&c);
                shown.insert(key, row);
            }
        }
    }
}
