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

use crate::cli::{Cli, ClusterArgs, Command, RouteArgs, RouteVia};
use crate::cluster::connect::{ConfigSource, Connection};
use crate::cluster::error::ClusterError;
use crate::cluster::proxy::Via;
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
            use std::io::Write as _;
            let script = crate::complete::registration(args.shell);
            match std::io::stdout().write_all(&script) {
                Ok(()) => Outcome::Success,
                Err(e) => {
                    ui::error(&format!("failed to write the completion script: {e}"));
                    Outcome::Cluster
                }
            }
        }
    }
}

/// How much of a spec file is read: `--max-input-size`, and the fixed
/// limits of the YAML itself.
pub(super) fn spec_limits(max_input_size: u64) -> spec::Limits {
    spec::Limits {
        max_input_size,
        ..spec::Limits::default()
    }
}

/// Reads every input of the command line: files, directories (their
/// subdirectories too with `-R`) and `-`, standard input. Returns what
/// loaded and every problem, the cross-checks of each Canary against a
/// Deployment of the input among them.
pub(super) fn load_inputs(
    paths: &[std::path::PathBuf],
    recursive: bool,
    limits: &spec::Limits,
    cross_check: bool,
) -> (Vec<SpecFile>, Vec<Diagnostic>) {
    use canary_core::spec::manifest;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_read {
                errors.push(Diagnostic::file(
                    manifest::STDIN,
                    "`-` is given twice; standard input is read once",
                ));
                continue;
            }
            stdin_read = true;
            match manifest::load_stdin(std::io::stdin().lock(), limits) {
                Ok(f) => files.push(f),
                Err(e) => errors.extend(e),
            }
            continue;
        }
        match manifest::load_path(path, recursive, limits) {
            Ok(f) => files.extend(f),
            Err(e) => errors.extend(e),
        }
    }
    if cross_check {
        errors.extend(manifest::cross_check(&files.iter().collect::<Vec<_>>()));
    }
    // Before anything is printed about them.
    files.iter().for_each(crate::secrets::learn_file);
    (files, errors)
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

/// `--proxy-allow` (or `CANARY_PROXY_ALLOW`), its blanks left out; given
/// empty, as unset.
pub(super) fn proxy_allow(arg: &Option<Vec<String>>) -> Option<Vec<String>> {
    let list: Vec<String> = arg
        .as_ref()?
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The URLs of canary `c` (document `doc` of `file`) that name a Service
/// the run may not reach ([`crate::cluster::proxy::reach_refusal`]): its
/// webhooks, its metrics server and the addresses of the file's
/// MetricTemplates it uses, each named by hook, field and URL.
pub(super) fn reach_refusals(
    file: &SpecFile,
    doc: &spec::Doc<spec::types::Canary>,
    c: &resolve::ResolvedCanary,
    allow: Option<&[String]>,
) -> Vec<Diagnostic> {
    use crate::cluster::proxy::reach_refusal;
    use canary_core::redact::redact_url;
    use canary_core::spec::source::{join_index, join_key};
    let mut out = Vec::new();
    let spec = doc.value.spec.as_ref();
    for (field, analysis) in [
        ("spec.analysis", spec.and_then(|s| s.analysis.as_ref())),
        (
            "spec.canaryAnalysis",
            spec.and_then(|s| s.canary_analysis.as_ref()),
        ),
    ] {
        let Some(a) = analysis else { continue };
        for (i, h) in a.webhooks.iter().enumerate() {
            let Some(url) = h.url.as_deref() else {
                continue;
            };
            if let Some(why) = reach_refusal(url, &c.namespace, allow) {
                let path = join_key(&join_index(&join_key(field, "webhooks"), i), "url");
                let name = h.name.as_deref().unwrap_or("(unnamed)");
                out.push(file.diagnostic_at(
                    doc,
                    &path,
                    &format!("webhook `{name}` URL {}: {why}", redact_url(url)),
                ));
            }
        }
    }
    if let Some(url) = c.metrics_server_or_default()
        && let Some(why) = reach_refusal(&url, &c.namespace, allow)
    {
        out.push(file.diagnostic_at(
            doc,
            "spec.metricsServer",
            &format!("metrics server {}: {why}", redact_url(&url)),
        ));
    }
    for m in &c.metrics {
        if let resolve::MetricSource::Template {
            name, namespace, ..
        } = &m.source
            && let Some(t) = file
                .metric_templates
                .iter()
                .find(|t| t.value.name() == name && t.value.namespace() == namespace)
            && let Some(address) = t
                .value
                .spec
                .as_ref()
                .and_then(|s| s.provider.as_ref())
                .and_then(|p| p.address.as_deref())
            && let Some(why) = reach_refusal(address, &c.namespace, allow)
        {
            out.push(file.diagnostic_at(
                t,
                "spec.provider.address",
                &format!(
                    "MetricTemplate {name} (metric `{}`) address {}: {why}",
                    m.name,
                    redact_url(address)
                ),
            ));
        }
    }
    out
}

/// Who this process is, for leases and requests: `CANARY_LEASE_HOLDER`
/// when set (a retried CI job with the same identity takes its own lease
/// back at once); inside a Pod, the Pod's name; else `user@host pid N`,
/// and with no user set (as in most containers) the Pod's name when
/// `POD_NAME` gives one, else `host pid N`.
pub(super) fn holder() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    holder_from(var, hostname, std::process::id())
}

/// [`holder`] from the environment `var` reads, the kernel's host name
/// and the process id.
fn holder_from(var: impl Fn(&str) -> Option<String>, hostname: Option<String>, pid: u32) -> String {
    if let Some(h) = var("CANARY_LEASE_HOLDER") {
        return h;
    }
    // Every container of a Pod gets KUBERNETES_SERVICE_HOST. Its name is
    // POD_NAME when the downward API sets it, else the hostname the kubelet
    // gives it. No pid: a container restarted in the same Pod is the same
    // driver, and takes its lease back at once.
    if var("KUBERNETES_SERVICE_HOST").is_some()
        && let Some(pod) = var("POD_NAME").or_else(|| var("HOSTNAME"))
    {
        return pod;
    }
    let host = hostname
        .or_else(|| var("HOSTNAME"))
        .unwrap_or_else(|| "localhost".to_string());
    match var("USER").or_else(|| var("USERNAME")) {
        Some(user) => format!("{user}@{host} pid {pid}"),
        None => match var("POD_NAME") {
            Some(pod) => pod,
            None => format!("{host} pid {pid}"),
        },
    }
}

/// Where the cluster connection's settings come from, looked for as
/// kubectl and kube's `Config::infer` look: `--kubeconfig`, `KUBECONFIG`,
/// `~/.kube/config`, and with none of them the in-cluster config.
/// `CANARY_SERVICEACCOUNT_DIR` replaces the service account's directory,
/// which kube reads from a fixed path: it exists for the tests, which play
/// a Pod on a machine that is none.
pub(crate) fn config_source(args: &ClusterArgs) -> ConfigSource {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = &args.kubeconfig {
        return ConfigSource::File(path.clone());
    }
    if let Some(list) = var("KUBECONFIG") {
        return ConfigSource::Kubeconfig(format!("$KUBECONFIG ({})", list.to_string_lossy()));
    }
    if let Some(path) = std::env::home_dir()
        .map(|home| home.join(".kube").join("config"))
        .filter(|p| p.is_file())
    {
        return ConfigSource::File(path);
    }
    match var("CANARY_SERVICEACCOUNT_DIR") {
        Some(dir) => ConfigSource::ServiceAccount {
            dir: dir.into(),
            host: std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            port: std::env::var("KUBERNETES_SERVICE_PORT").ok(),
        },
        None => ConfigSource::InCluster,
    }
}

/// Connects as `args` and the environment say.
pub(crate) async fn connect(args: &ClusterArgs) -> Result<Connection, ClusterError> {
    let timeout = match args.request_timeout {
        None => Some(crate::cluster::connect::DEFAULT_REQUEST_TIMEOUT),
        Some(t) if t.is_zero() => None,
        Some(t) => Some(t),
    };
    crate::cluster::connect::connect(&config_source(args), args.context.as_deref(), timeout).await
}

/// `--route-via` (or `CANARY_ROUTE_VIA`), when given.
pub(super) fn route_via(args: &RouteArgs) -> Option<Via> {
    args.route_via.map(|r| match r {
        RouteVia::Proxy => Via::ServiceProxy,
        RouteVia::Direct => Via::Direct,
    })
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

/// A signal that stops a command: Ctrl-C, or SIGTERM, with which
/// Kubernetes stops a Pod and CI systems a cancelled job. Both stop a
/// command the same way; only the exit code tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn outcome(self) -> Outcome {
        match self {
            Signal::Interrupt => Outcome::Interrupted,
            Signal::Terminate => Outcome::Terminated,
        }
    }

    /// What happened, in messages: `interrupted`, `terminated (SIGTERM)`.
    fn said(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupted",
            Signal::Terminate => "terminated (SIGTERM)",
        }
    }
}

/// Ctrl-C and SIGTERM as a stream with one listener each for the whole
/// command, so that a signal arriving while the command is busy is kept
/// rather than lost.
struct Interrupts {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    fn new() -> Interrupts {
        #[cfg(unix)]
        use tokio::signal::unix::{SignalKind, signal};
        Interrupts {
            #[cfg(unix)]
            interrupt: signal(SignalKind::interrupt()).ok(),
            #[cfg(unix)]
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if self.interrupt.is_some() || self.terminate.is_some() {
            return tokio::select! {
                _ = recv(self.interrupt.as_mut()) => Signal::Interrupt,
                _ = recv(self.terminate.as_mut()) => Signal::Terminate,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}

/// The next delivery of `signal`; never, without a listener.
#[cfg(unix)]
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    if let Some(s) = signal
        && s.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::holder_from;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_holder_is_never_an_unknown_user() {
        let host = || Some("build-7".to_string());
        assert_eq!(
            holder_from(env(&[("USER", "ana")]), host(), 42),
            "ana@build-7 pid 42"
        );
        // No user: the host alone, or the Pod's name when the downward
        // API gives it.
        assert_eq!(holder_from(env(&[]), host(), 42), "build-7 pid 42");
        assert_eq!(
            holder_from(env(&[("POD_NAME", "deployer-x1")]), host(), 42),
            "deployer-x1"
        );
        // No kernel host name: HOSTNAME, then localhost.
        assert_eq!(
            holder_from(env(&[("HOSTNAME", "ci-box")]), None, 7),
            "ci-box pid 7"
        );
        assert_eq!(holder_from(env(&[]), None, 7), "localhost pid 7");
        // In a Pod, its name, with or without POD_NAME.
        let pod = [
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("HOSTNAME", "runner-abc"),
        ];
        assert_eq!(holder_from(env(&pod), host(), 42), "runner-abc");
        assert_eq!(
            holder_from(
                env(&[("CANARY_LEASE_HOLDER", "pipeline-9"), ("USER", "ana")]),
                host(),
                1
            ),
            "pipeline-9"
        );
        for h in [
            holder_from(env(&[]), None, 1),
            holder_from(env(&[]), host(), 1),
        ] {
            assert!(!h.contains("unknown"), "{h}");
        }
    }
}
