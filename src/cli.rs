//! The command line, as clap definitions only.
//!
//! Completions and man pages are generated from these definitions (see
//! `generate.rs`), so help text written here is what users read everywhere.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter};

/// Flagger-style canary releases, driven from outside the cluster.
///
/// Reads Flagger `Canary` specs (flagger.app/v1beta1, unchanged), checks them
/// offline and shows, step by step, what a rollout will do.
#[derive(Debug, Parser)]
#[command(
    name = "canary",
    version,
    about,
    long_about,
    after_long_help = crate::help::after_long_help("canary"),
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the analysis of one or more canaries to a verdict.
    ///
    /// The first run for a target initialises it (creates `<target>-primary`,
    /// the Services and the router) and exits. Later runs detect a new
    /// revision of the target and analyse it: traffic is shifted step by step,
    /// metrics are checked every interval, webhooks are called, and the
    /// canary is promoted or rolled back. The exit code is the verdict. A run
    /// that is stopped resumes where it stopped when started again.
    #[command(after_long_help = crate::help::after_long_help("run"))]
    Run(RunArgs),
    /// Show the canaries `canary` manages: phase, weight, failed checks and
    /// who drives them, read from the cluster.
    ///
    /// With a NAME, also the step history with its metric values. A driver
    /// whose lease ran out is shown as lost: `canary run` takes over.
    /// `-o json|yaml` print a kubectl List of Flagger Canary objects (the
    /// object alone for a NAME), with canary's own fields in
    /// `status.canary`.
    ///
    /// Exits 1 when a canary shown is Failed (rolled back), unless
    /// --exit-zero. With --wait, follows the rollout, whoever drives it,
    /// and exits with its verdict: 0 promoted or nothing under way, 1
    /// rolled back, 4 aborted, 5 when --timeout ends first.
    #[command(after_long_help = crate::help::after_long_help("status"))]
    Status(StatusArgs),
    /// Stop a rollout: route all traffic to the primary and scale the
    /// canary down.
    ///
    /// A running `canary run` acts on the request within a second and exits
    /// with 4. With no live driver, `abort` does the work itself. The
    /// aborted revision is not analysed again unless `canary run --retry`.
    #[command(after_long_help = crate::help::after_long_help("abort"))]
    Abort(ActArgs),
    /// Skip the remaining analysis and promote the canary now.
    ///
    /// Also opens a closed confirm-promotion gate. A running `canary run`
    /// acts on the request within a second; with no live driver, `promote`
    /// drives the promotion itself to the end.
    #[command(after_long_help = crate::help::after_long_help("promote"))]
    Promote(ActArgs),
    /// Hold the rollout: the weight stays where it is and no checks run
    /// until `canary resume`.
    #[command(after_long_help = crate::help::after_long_help("pause"))]
    Pause(ActArgs),
    /// Continue a paused rollout; the next check is one interval later.
    #[command(after_long_help = crate::help::after_long_help("resume"))]
    Resume(ActArgs),
    /// Give the target back and remove everything `canary` made for the
    /// canary, as Flagger's `revertOnDeletion` does.
    ///
    /// The target is scaled to the primary's replicas and, once ready, the
    /// apex Service selects its pods; then the router's object (the SMI
    /// TrafficSplit), the primary's HPA, the `-primary` and `-canary`
    /// Services, the `-primary` ConfigMap and Secret copies and, last, the
    /// `-primary` Deployment are deleted, each only if `canary` created it.
    /// The apex Service stays. Refused while a `canary run` drives the
    /// canary. A revert that was stopped finishes when run again; once
    /// finished, running it again reports that there is nothing to revert.
    #[command(after_long_help = crate::help::after_long_help("revert"))]
    Revert(ActArgs),
    /// Check Canary, MetricTemplate and AlertProvider files offline, and
    /// with --cluster against the live cluster too (read only).
    ///
    /// Every problem is reported with its file, line, column and field path.
    /// Prints one line per valid canary: name, namespace, strategy, provider
    /// and steps; with --cluster, a second line saying what was checked in
    /// the cluster. `canary validate --cluster` makes the checks `canary
    /// run` makes before it changes anything, so a run can be tried out
    /// without moving traffic.
    #[command(after_long_help = crate::help::after_long_help("validate"))]
    Validate(ValidateArgs),
    /// Show what a rollout will do, without touching a cluster.
    ///
    /// Lists the strategy, every step with its primary/canary weights, the
    /// webhooks called and the checks run at that step (with their rendered
    /// queries), the promotion and finalisation steps, the objects that will
    /// be created or changed, and the shortest possible duration.
    #[command(after_long_help = crate::help::after_long_help("plan"))]
    Plan(PlanArgs),
    /// Run a simulated cluster with podinfo, Linkerd, Prometheus and the load
    /// tester, for trying `canary` without a cluster.
    ///
    /// Plain `canary demo` plays the Flagger + Linkerd walkthrough in about a
    /// minute: podinfo 3.1.0 is initialised, 3.1.1 is released and promoted,
    /// 3.1.2 is released and rolled back, each by the same code as
    /// `canary run`. With `--serve`, the cluster stays up until Ctrl-C and a kubeconfig is
    /// written for other terminals: `kubectl` and `canary run` work against
    /// it as against a real cluster (the deployment podinfo in namespace
    /// prod, images 3.1.0 and 3.1.1 healthy, 3.1.2 failing).
    #[command(after_long_help = crate::help::after_long_help("demo"))]
    Demo(DemoArgs),
    /// Print a shell's completion script to standard output.
    ///
    /// The script calls `canary` back as you type, so canary names,
    /// namespaces (`-n`) and contexts (`--context`) complete from your
    /// cluster and kubeconfig (within two seconds, or not at all), providers
    /// from the provider table and spec files from the disk. It is what
    /// `COMPLETE=SHELL canary` prints; loading that at shell start keeps
    /// the script in step with the binary:
    ///
    ///   bash:        echo 'source <(COMPLETE=bash canary)' >> ~/.bashrc
    ///
    ///   zsh:         echo 'source <(COMPLETE=zsh canary)' >> ~/.zshrc
    ///
    ///   fish:        echo 'COMPLETE=fish canary | source' >> ~/.config/fish/completions/canary.fish
    ///
    ///   elvish:      echo 'eval (E:COMPLETE=elvish canary | slurp)' >> ~/.elvish/rc.elv
    ///
    ///   PowerShell:  $env:COMPLETE = "powershell"; canary | Out-String | Invoke-Expression
    ///
    /// For `kubectl canary` (kubectl 1.26 or later), link the binary as
    /// `kubectl_complete-canary` next to `kubectl-canary` on PATH:
    /// `ln -s "$(command -v kubectl-canary)" "$(dirname "$(command -v kubectl-canary)")/kubectl_complete-canary"`.
    #[command(after_long_help = crate::help::after_long_help("completions"))]
    Completions(CompletionsArgs),
}

/// How to reach the cluster, as kubectl takes it.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config,
    /// then, inside a Pod, its service account).
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(crate::complete::contexts))]
    pub context: Option<String>,

    /// Namespace of canaries whose spec names none (default: the context's).
    #[arg(
        short,
        long,
        value_name = "NAMESPACE",
        value_parser = parse_namespace,
        add = ArgValueCompleter::new(crate::complete::namespaces)
    )]
    pub namespace: Option<String>,

    /// How long to wait for the API server to answer when connecting
    /// (`30s`, `1m`; a bare number is seconds; `0` waits without limit).
    /// An unreachable server is reported within it [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_request_timeout)]
    pub request_timeout: Option<std::time::Duration>,
}

/// kubectl's `--request-timeout`: a duration, or a bare number of seconds.
fn parse_request_timeout(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(n));
    }
    canary_core::spec::resolve::parse_duration(s)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Spec files holding the Canary documents (and any MetricTemplate they
    /// use); a directory reads its .yaml, .yml and .json files, `-` standard
    /// input. Documents of other kinds (the Deployment, its Service) are
    /// skipped.
    #[arg(required = true, value_name = "FILE", value_hint = clap::ValueHint::AnyPath)]
    pub files: Vec<PathBuf>,

    /// Read the directories given, and their subdirectories, as `kubectl
    /// apply -R` does (a directory alone gives its own .yaml, .yml and
    /// .json files).
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// Refuse a spec file larger than this many bytes (suffixes KiB, MiB,
    /// GiB, or K, M, G, k).
    #[arg(long, env = "CANARY_MAX_INPUT_SIZE", value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub max_input_size: u64,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Service mesh or ingress provider for canaries whose spec names none
    /// (Flagger's `-mesh-provider`); detected from the cluster when absent.
    #[arg(
        long,
        env = "CANARY_MESH_PROVIDER",
        value_name = "PROVIDER",
        add = ArgValueCandidates::new(crate::complete::providers)
    )]
    pub mesh_provider: Option<String>,

    /// Prometheus address for the built-in metrics (overrides the spec's
    /// `metricsServer`; default: the provider's own).
    #[arg(long, env = "CANARY_METRICS_SERVER", value_name = "URL", value_parser = parse_url)]
    pub metrics_server: Option<String>,

    /// With nothing to analyse, wait this long (e.g. 10m) for the target to
    /// change, as when a GitOps tool applies the change later.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_for_change: Option<std::time::Duration>,

    /// Set a container's image on the target first (repeatable), for
    /// pipelines that deploy with `canary` itself.
    #[arg(long, value_name = "CONTAINER=IMAGE", value_parser = parse_set_image)]
    pub set_image: Vec<(String, String)>,

    /// Analyse a revision that already failed, instead of reporting it.
    #[arg(long)]
    pub retry: bool,

    /// How long to keep trying rounds that fail on the API server's 429
    /// and 5xx answers or on broken connections, counted from the last
    /// round that got through; `0` stops at the first such error (exit 3).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_request_timeout)]
    pub api_retry_window: std::time::Duration,

    /// Give up after this long for the whole run (e.g. 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// What a timed-out run does to a rollout under way.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = OnStop::Rollback)]
    pub on_timeout: OnStop,

    /// What Ctrl-C or SIGTERM does to a rollout under way (a second one
    /// exits at once).
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = OnStop::Leave)]
    pub on_interrupt: OnStop,

    #[command(flatten)]
    pub route: RouteArgs,

    #[command(flatten)]
    pub alerts: Box<AlertArgs>,

    /// Record no Kubernetes Events on the targets (by default each message
    /// of a rollout is an Event on its target, reason `Synced`, as Flagger
    /// records them on the Canary).
    #[arg(long)]
    pub no_events: bool,

    /// Drive at most this many canaries at a time (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,

    /// Output: a live view on a terminal and timestamped lines otherwise
    /// (`auto`), or one JSON event per line on stdout (`json`).
    #[arg(short, long, value_enum, default_value_t = RunFormat::Auto)]
    pub output: RunFormat,

    /// Print errors only (the exit code is the verdict).
    #[arg(short, long, conflicts_with = "output")]
    pub quiet: bool,

    /// Also report each version's request rate, success rate and p99
    /// latency every interval in the timestamped lines and the JSON events
    /// (one more metrics query an interval); the live view always shows
    /// them.
    #[arg(long, conflicts_with = "quiet")]
    pub traffic: bool,

    /// The summary table after the verdict: healthy steps folded into one
    /// row, or every step.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = SummaryFormat::Folded)]
    pub summary: SummaryFormat,
}

/// What to do with a rollout under way when the run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnStop {
    /// Route all traffic to the primary and scale the canary down.
    Rollback,
    /// Leave it as it is; `canary run` resumes it, `canary abort` ends it.
    Leave,
}

/// The global notifier: where the alerts of canaries without
/// `analysis.alerts` go (Flagger's `-slack-url` and friends). The URLs are
/// secrets: never shown, not even in `--help`.
#[derive(Debug, Args, Clone, Default)]
pub struct AlertArgs {
    /// Slack incoming-webhook URL for the alerts of canaries that have no
    /// `analysis.alerts` (Flagger's `-slack-url`).
    #[arg(
        long,
        env = "CANARY_SLACK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub slack_url: Option<String>,

    /// HTTP proxy for the Slack URL.
    #[arg(
        long,
        env = "CANARY_SLACK_PROXY_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub slack_proxy_url: Option<String>,

    /// Channel the global notifier posts to [default: general].
    #[arg(long, env = "CANARY_SLACK_CHANNEL", value_name = "CHANNEL")]
    pub slack_channel: Option<String>,

    /// User name the global notifier posts as [default: flagger].
    #[arg(long, env = "CANARY_SLACK_USER", value_name = "NAME")]
    pub slack_user: Option<String>,

    /// Microsoft Teams incoming-webhook URL; takes the place of the Slack
    /// one (Flagger's `-msteams-url`).
    #[arg(
        long,
        env = "CANARY_MSTEAMS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub msteams_url: Option<String>,

    /// HTTP proxy for the Microsoft Teams URL.
    #[arg(
        long,
        env = "CANARY_MSTEAMS_PROXY_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub msteams_proxy_url: Option<String>,

    /// The cluster's name, attached to every alert as its first field
    /// (Flagger's `-cluster-name`), for teams whose alerts come from
    /// several clusters.
    #[arg(long, env = "CANARY_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
}

/// How webhooks and metrics servers named by in-cluster URLs are reached.
#[derive(Debug, Args, Clone, Default)]
pub struct RouteArgs {
    /// How in-cluster URLs (webhooks, metrics servers) are reached: through
    /// the API server's service proxy, or directly by cluster DNS (default:
    /// direct with the in-cluster config, inside a Pod; else proxy).
    #[arg(long, env = "CANARY_ROUTE_VIA", value_enum, value_name = "ROUTE")]
    pub route_via: Option<RouteVia>,
    /// The namespaces (comma-separated) whose Services webhooks and
    /// metrics servers may name, besides the canary's own; a spec naming
    /// a Service elsewhere is refused before anything changes (default:
    /// any namespace; the API server's own Service is always refused).
    #[arg(
        long,
        env = "CANARY_PROXY_ALLOW",
        value_name = "NAMESPACE[,NAMESPACE...]",
        value_delimiter = ','
    )]
    pub proxy_allow: Option<Vec<String>>,
}

/// See [`RouteArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteVia {
    /// Through the API server's service proxy, with your credentials.
    Proxy,
    /// Straight to the URL, as a Pod reaches it (honours HTTP_PROXY).
    Direct,
}

/// How much of the run the summary table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Runs of healthy steps folded into one row each.
    Folded,
    /// Every step on its own row.
    Full,
}

/// How `run` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    Auto,
    Json,
}

/// Arguments of `abort`, `promote`, `pause`, `resume` and `revert`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// The canary (its name, or its target's).
    #[arg(
        value_name = "NAME",
        required_unless_present = "file",
        value_parser = parse_name,
        add = ArgValueCompleter::new(crate::complete::canary_names)
    )]
    pub name: Option<String>,

    /// Take the canary from this spec file instead (and its spec, when no
    /// driver is running); a directory, or `-` for standard input.
    #[arg(short, long, value_name = "FILE", value_hint = clap::ValueHint::AnyPath, conflicts_with = "name")]
    pub file: Option<PathBuf>,

    /// Read the directories given, and their subdirectories, as `kubectl
    /// apply -R` does (a directory alone gives its own .yaml, .yml and
    /// .json files).
    #[arg(short = 'R', long, requires = "file")]
    pub recursive: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    // `abort` and `promote` with no running driver call the canary's
    // webhooks themselves.
    #[command(flatten)]
    pub route: RouteArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    canary_core::spec::resolve::parse_duration(s)
}

/// A Kubernetes object name: it goes into API paths, so nothing else.
fn parse_name(s: &str) -> Result<String, String> {
    use canary_core::spec::validate::NameKind;
    if NameKind::Object.accepts(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "not a Kubernetes name: {}",
            NameKind::Object.rule()
        ))
    }
}

fn parse_namespace(s: &str) -> Result<String, String> {
    use canary_core::spec::validate::NameKind;
    if NameKind::Namespace.accepts(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "not a namespace name: {}",
            NameKind::Namespace.rule()
        ))
    }
}

/// An http(s) URL with a host and a usable port; an empty value means
/// "not set", as an empty environment variable does.
fn parse_url(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    canary_core::spec::validate::check_url(s)
        .map(|_| s.to_string())
        .map_err(|why| format!("invalid URL: {why}"))
}

/// `4MiB`, `512k`, `1G`, `100`: binary units, as Kubernetes quantities
/// write them.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a size such as 4MiB or 500k, found `{s}`"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "Ki" | "KiB" | "kB" | "KB" => 1 << 10,
        "M" | "Mi" | "MiB" | "MB" => 1 << 20,
        "G" | "Gi" | "GiB" | "GB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`; use KiB, MiB or GiB")),
    };
    n.checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a usable size"))
}

fn parse_set_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
        _ => {
            Err("expected CONTAINER=IMAGE, e.g. podinfod=ghcr.io/stefanprodan/podinfo:3.1.1".into())
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One canary, for its detail and step history.
    #[arg(
        value_name = "NAME",
        conflicts_with = "file",
        value_parser = parse_name,
        add = ArgValueCompleter::new(crate::complete::canary_names)
    )]
    pub name: Option<String>,

    /// The canaries of this spec file (a directory, or `-` for standard
    /// input).
    #[arg(short, long, value_name = "FILE", value_hint = clap::ValueHint::AnyPath)]
    pub file: Option<PathBuf>,

    /// Read the directories given, and their subdirectories, as `kubectl
    /// apply -R` does (a directory alone gives its own .yaml, .yml and
    /// .json files).
    #[arg(short = 'R', long, requires = "file")]
    pub recursive: bool,

    /// Only the canaries whose `<target>-primary` Deployment carries these
    /// labels (a kubectl label selector, e.g. `team=web,tier!=db`). The
    /// primary copies the target's labels when it is made, but for the
    /// selector label, which reads `<value>-primary` (`app=podinfo-primary`).
    #[arg(short = 'l', long, value_name = "SELECTOR", value_hint = clap::ValueHint::Other)]
    pub selector: Option<String>,

    /// Keep watching and print each change as it happens; with a NAME,
    /// on a terminal, the live view `canary run` shows.
    #[arg(short, long)]
    pub watch: bool,

    /// Follow the rollout, whoever drives it, until its verdict, and exit
    /// with the verdict's code: 0 promoted (or nothing to analyse), 1
    /// rolled back, 4 aborted, 5 when --timeout ends first.
    #[arg(long)]
    pub wait: bool,

    /// With --wait: give up after this long (e.g. 15m) and exit 5.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        requires = "wait",
        value_hint = clap::ValueHint::Other
    )]
    pub timeout: Option<std::time::Duration>,

    /// Exit 0 even when a canary shown has failed (without it, `status`
    /// exits 1 when any canary shown is Failed).
    #[arg(long)]
    pub exit_zero: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// List canaries in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// Output format: table, wide, json, yaml, name,
    /// jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl's).
    #[arg(
        short,
        long,
        value_name = "FORMAT",
        default_value = "table",
        value_parser = StatusFormatParser
    )]
    pub output: StatusFormat,

    /// Print the table (or custom columns) without its header.
    #[arg(long)]
    pub no_headers: bool,
}

/// How `status` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFormat {
    Table,
    /// The table with target, iterations and revisions.
    Wide,
    /// A kubectl `List` of Flagger `Canary` objects (one object for NAME).
    Json,
    Yaml,
    /// `canary.flagger.app/NAME`, one a line.
    Name,
    /// A kubectl JSONPath template over the JSON output.
    JsonPath(String),
    /// kubectl's custom columns: (header, JSONPath) pairs.
    CustomColumns(Vec<(String, String)>),
}

/// Parses `-o` for `status`, and lists its forms for help and completions.
#[derive(Debug, Clone, Copy)]
struct StatusFormatParser;

impl clap::builder::TypedValueParser for StatusFormatParser {
    type Value = StatusFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StatusFormat, clap::Error> {
        let text = value.to_string_lossy();
        parse_status_format(&text).map_err(|why| {
            let arg = arg.map(ToString::to_string).unwrap_or_else(|| "-o".into());
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{arg}': {why}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::builder::PossibleValue;
        Some(Box::new(
            [
                PossibleValue::new("table"),
                PossibleValue::new("wide").help("The table with target, iterations and revisions"),
                PossibleValue::new("json")
                    .help("A kubectl List of Flagger Canary objects (one object for NAME)"),
                PossibleValue::new("yaml"),
                PossibleValue::new("name").help("canary.flagger.app/NAME, one a line"),
                PossibleValue::new("jsonpath=TEMPLATE")
                    .help("A kubectl JSONPath template over the json output"),
                PossibleValue::new("custom-columns=SPEC")
                    .help("Columns HEADER:.json.path,... as kubectl's"),
            ]
            .into_iter(),
        ))
    }
}

fn parse_status_format(text: &str) -> Result<StatusFormat, String> {
    let (kind, arg) = match text.split_once('=') {
        Some((k, a)) => (k, Some(a)),
        None => (text, None),
    };
    match (kind, arg) {
        ("table", None) => Ok(StatusFormat::Table),
        ("wide", None) => Ok(StatusFormat::Wide),
        ("json", None) => Ok(StatusFormat::Json),
        ("yaml", None) => Ok(StatusFormat::Yaml),
        ("name", None) => Ok(StatusFormat::Name),
        ("jsonpath", Some(t)) if !t.is_empty() => Ok(StatusFormat::JsonPath(t.to_string())),
        ("jsonpath", _) => {
            Err("jsonpath needs a template, e.g. jsonpath='{.items[*].status.phase}'".into())
        }
        ("custom-columns", Some(spec)) => {
            let mut columns = Vec::new();
            for col in spec.split(',') {
                match col.split_once(':') {
                    Some((h, p)) if !h.is_empty() && !p.is_empty() => {
                        columns.push((h.to_string(), p.to_string()))
                    }
                    _ => {
                        return Err(format!(
                            "custom-columns takes HEADER:PATH pairs separated by commas, e.g. \
                             custom-columns=NAME:.metadata.name,PHASE:.status.phase (not `{col}`)"
                        ));
                    }
                }
            }
            Ok(StatusFormat::CustomColumns(columns))
        }
        _ => Err(
            "expected table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=SPEC"
                .into(),
        ),
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Spec files (YAML, one or more documents each); a directory reads its
    /// .yaml, .yml and .json files, `-` standard input. Documents of other
    /// kinds (the Deployment, its Service) are skipped, and a Deployment a
    /// Canary targets is checked against it.
    #[arg(required = true, value_name = "FILE", value_hint = clap::ValueHint::AnyPath)]
    pub files: Vec<PathBuf>,

    /// Read the directories given, and their subdirectories, as `kubectl
    /// apply -R` does (a directory alone gives its own .yaml, .yml and
    /// .json files).
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// Refuse a spec file larger than this many bytes (suffixes KiB, MiB,
    /// GiB, or K, M, G, k).
    #[arg(long, env = "CANARY_MAX_INPUT_SIZE", value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub max_input_size: u64,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Also check each canary against the live cluster, reading only: the
    /// target and its autoscaler exist, its pods serve the Service's port,
    /// MetricTemplates and AlertProviders exist with their Secrets and
    /// keys, in-cluster webhooks' Services exist with their ports, and
    /// every permission `canary run` needs is granted. The same checks
    /// `canary run` makes before it changes anything.
    #[arg(long = "cluster")]
    pub check_cluster: bool,

    /// With --cluster: how to connect.
    #[command(flatten)]
    pub connection: ClusterArgs,

    /// With --cluster: the provider of canaries whose spec names none
    /// (detected from the cluster when absent).
    #[arg(long, env = "CANARY_MESH_PROVIDER", value_name = "PROVIDER")]
    pub mesh_provider: Option<String>,

    /// With --cluster: the Prometheus of the built-in metrics, as for
    /// `canary run`.
    #[arg(long, env = "CANARY_METRICS_SERVER", value_name = "URL", value_parser = parse_url)]
    pub metrics_server: Option<String>,

    /// With --cluster: how in-cluster URLs are reached, as for `canary run`
    /// (which permissions the service proxy needs).
    #[command(flatten)]
    pub route: RouteArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Spec file holding the Canary (and any MetricTemplate it uses); a
    /// directory, or `-` for standard input.
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::AnyPath)]
    pub file: PathBuf,

    /// Read the directories given, and their subdirectories, as `kubectl
    /// apply -R` does (a directory alone gives its own .yaml, .yml and
    /// .json files).
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// Which Canary of the file, when it holds several.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Refuse a spec file larger than this many bytes (suffixes KiB, MiB,
    /// GiB, or K, M, G, k).
    #[arg(long, env = "CANARY_MAX_INPUT_SIZE", value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub max_input_size: u64,

    /// Service mesh or ingress provider for canaries whose spec names none
    /// (Flagger's `-mesh-provider` install flag), e.g. linkerd, istio, nginx.
    #[arg(
        long,
        env = "CANARY_MESH_PROVIDER",
        value_name = "PROVIDER",
        add = ArgValueCandidates::new(crate::complete::providers)
    )]
    pub mesh_provider: Option<String>,

    /// Prometheus address used by the built-in metrics, when the spec sets
    /// no `metricsServer` (default: the provider's own).
    #[arg(long, env = "CANARY_METRICS_SERVER", value_name = "URL", value_parser = parse_url)]
    pub metrics_server: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the simulated cluster running until Ctrl-C and write a
    /// kubeconfig for other terminals, instead of playing the story.
    #[arg(long)]
    pub serve: bool,

    /// Where to write the kubeconfig (with --serve).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "canary-demo.kubeconfig",
        value_hint = clap::ValueHint::FilePath
    )]
    pub kubeconfig: PathBuf,

    /// A scenario file to run instead of the built-in one (with --serve).
    #[arg(long, value_name = "FILE", requires = "serve", value_hint = clap::ValueHint::FilePath)]
    pub scenario: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and lines for people.
    Table,
    /// One JSON document for machines.
    Json,
}

/// Reports a command-line error and exits as clap does, with the values
/// it quotes masked ([`crate::secrets`]): `--metrics-server` with a
/// password in it is refused without showing the password. Help and
/// version go out as clap prints them.
pub fn exit_on_error(e: clap::Error) -> ! {
    use std::io::Write as _;
    if !e.use_stderr() {
        e.exit()
    }
    let text = e.render().to_string();
    let _ = write!(crate::ui::stderr(), "{}", crate::secrets::redact(&text));
    std::process::exit(e.exit_code())
}

/// The clap command, named for how the binary was invoked: `kubectl canary`
/// when installed as the kubectl plugin `kubectl-canary`.
pub fn command_for(argv0: Option<&std::ffi::OsStr>) -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let as_plugin = argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.starts_with("kubectl-canary"));
    if as_plugin {
        cmd.bin_name("kubectl canary")
            .display_name("kubectl-canary")
    } else {
        cmd
    }
}
