//! One module per command: resolve the settings, do the work, render
//! through `ui`, return an [`Outcome`] (an error's is the one `exit.rs`
//! maps it to). `main.rs` maps the outcome to an exit code; nothing below
//! reads the command line again.

pub(crate) mod act;
#[cfg(feature = "demo")]
pub(crate) mod demo;
mod plan;
pub(crate) mod revert;
mod run;
mod status;
mod validate;

use crate::cli::{Cli, Command};
use crate::exit::Outcome;
use crate::ui;
use canary_core::provider::Provider;
use canary_core::spec::resolve;
use canary_core::spec::{self, Diagnostic, SpecFile};
use canary_core::support;

pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Status(args) => block_on(status::status(args)),
        Command::Abort(args) => block_on(act::act(act::Request::Abort, args)),
        Command::Promote(args) => block_on(act::act(act::Request::Promote, args)),
        Command::Pause(args) => block_on(act::act(act::Request::Pause, args)),
        Command::Resume(args) => block_on(act::act(act::Request::Resume, args)),
        Command::Revert(args) => block_on(revert::revert(args)),
        Command::Validate(args) => validate::validate(args),
        Command::Plan(args) => plan::plan(args),
        #[cfg(feature = "demo")]
        Command::Demo(args) if args.serve => demo::serve(args.kubeconfig, args.scenario),
        #[cfg(feature = "demo")]
        Command::Demo(_) => demo::demo(),
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

/// `--mesh-provider`, parsed once; an unknown name is reported here.
pub(super) fn mesh_provider(arg: Option<&str>) -> Result<Option<Provider>, ()> {
    match arg.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => Provider::parse(p).map(Some).map_err(|e| {
            ui::error(&format!("--mesh-provider: {e}"));
        }),
    }
}

/// What `canary run` could not carry out for one canary of `file`: its own
/// fields and the MetricTemplates of the file it uses.
pub(super) fn refusals(
    file: &SpecFile,
    doc: &spec::Doc<spec::types::Canary>,
    c: &resolve::ResolvedCanary,
) -> Vec<Diagnostic> {
    let mut out = support::check(file, doc, c);
    out.extend(support::check_metrics_server(file, doc, c));
    for m in &c.metrics {
        if let resolve::MetricSource::Template {
            name, namespace, ..
        } = &m.source
            && let Some(t) = file
                .metric_templates
                .iter()
                .find(|t| t.value.name() == name && t.value.namespace() == namespace)
        {
            out.extend(support::check_template(file, t));
        }
    }
    out
}

/// Who this process is, for leases and requests: `CANARY_LEASE_HOLDER`
/// when set (a retried CI job with the same identity takes its own lease
/// back at once), else `user@host pid N`.
pub(super) fn holder() -> String {
    if let Ok(h) = std::env::var("CANARY_LEASE_HOLDER")
        && !h.trim().is_empty()
    {
        return h;
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host} pid {}", std::process::id())
}

/// Runs a command's async work on a small runtime: two workers are plenty
/// for a driver that mostly waits.
pub(crate) fn block_on(work: impl std::future::Future<Output = Outcome>) -> Outcome {
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
