//! `canary demo`: the Flagger + Linkerd walkthrough's story on the embedded
//! simulated cluster, in about a minute: initialise podinfo 3.1.0, release
//! 3.1.1 and promote it, release 3.1.2 and watch its errors and latency
//! roll it back.
//!
//! Every step goes through the same driver (`driver/`) as `canary run`
//! against a real cluster, over HTTP with a kubeconfig; only the spec's
//! interval is shorter than the walkthrough's. `canary demo --serve` keeps
//! the simulated cluster up for other terminals instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cluster::workload;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::cluster::error::ClusterError;
use crate::driver::{Driver, RunError, Settings};
use crate::exit::Outcome;
use canary_core::engine::decide::Verdict;
use canary_core::spec::Diagnostic;
use canary_core::spec::resolve::{self, Overrides};
use canary_sim::scenario::Scenario;
use canary_sim::world::World;

/// The walkthrough's canary with a 2 s interval and a 10 s metric window.
pub(crate) const DEMO_CANARY: &str = include_str!("demo-canary.yaml");

const IMAGE: &str = "ghcr.io/stefanprodan/podinfo";

/// Why the demo could not tell its story or keep its cluster up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    #[error("failed to start the simulated cluster: {0:#}")]
    Start(anyhow::Error),
    /// A file the demo needs: a temporary directory, a kubeconfig.
    #[error("{what}: {source}")]
    File {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The demo's canary or a `--scenario` file does not load.
    #[error("the spec does not load")]
    Spec(Vec<Diagnostic>),
    #[error(transparent)]
    Run(#[from] RunError),
    /// A chapter ended otherwise than the story says.
    #[error("the demo expected `{0}` here")]
    Unexpected(&'static str),
}

/// Says why the demo stopped; returns the exit code that means.
fn failed(e: &DemoError) -> Outcome {
    match e {
        DemoError::Spec(errors) => crate::ui::diagnostics(errors),
        e => crate::ui::error(&e.to_string()),
    }
    Outcome::from(e)
}

pub(crate) fn demo() -> Outcome {
    super::block_on(story())
}

fn say(text: &str) {
    let mut out = crate::ui::stdout();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

async fn story() -> Outcome {
    let started = Instant::now();
    let world = match World::start(Scenario::seed()).await {
        Ok(w) => w,
        Err(e) => return failed(&DemoError::Start(e)),
    };
    let outcome = match chapters(&world).await {
        Ok(()) => Outcome::Success,
        Err(e) => failed(&e),
    };
    world.shutdown().await;
    if outcome == Outcome::Success {
        say(&format!(
            "\nThe whole story took {}. Try it yourself with `canary demo --serve` and \
             `canary run` from another terminal.",
            humantime::format_duration(std::time::Duration::from_secs(started.elapsed().as_secs()))
        ));
    }
    outcome
}

async fn chapters(world: &World) -> Result<(), DemoError> {
    let dir = tempfile::tempdir().map_err(|source| DemoError::File {
        what: "failed to create a temporary directory".to_string(),
        source,
    })?;
    let kubeconfig = dir.path().join("kubeconfig");
    world
        .write_kubeconfig(&kubeconfig)
        .map_err(|source| DemoError::File {
            what: "failed to write the kubeconfig".to_string(),
            source,
        })?;
    // The demo's own kubeconfig: its cluster is reached from outside, as a
    // laptop reaches a real one.
    let source = crate::cluster::connect::ConfigSource::File(kubeconfig);
    let conn = crate::cluster::connect::connect(
        &source,
        None,
        Some(crate::cluster::connect::DEFAULT_REQUEST_TIMEOUT),
    )
    .await?;
    let file =
        canary_core::spec::load_str("demo-canary.yaml", DEMO_CANARY).map_err(DemoError::Spec)?;
    let canary = resolve::resolve(&file, &file.canaries[0], &Overrides::default());
    let settings = Settings {
        holder: super::holder(),
        ..Settings::default()
    };
    let deployments: Api<Deployment> = Api::namespaced(conn.client.clone(), "prod");

    say(&format!(
        "canary demo: a simulated cluster with podinfo {IMAGE}:3.1.0 in namespace prod, \
         Linkerd, Prometheus and the flagger-loadtester ({})\n",
        conn.server
    ));
    let chapters: [(&str, Option<&str>, &str); 3] = [
        (
            "1/3  Initialise: create podinfo-primary, the services and the TrafficSplit",
            None,
            "initialised",
        ),
        (
            "2/3  Release 3.1.1: traffic shifts 5% per step while the metrics stay healthy",
            Some("3.1.1"),
            "promoted",
        ),
        (
            "3/3  Release 3.1.2: errors and one-second answers; rolled back after 5 failed checks",
            Some("3.1.2"),
            "rolled back",
        ),
    ];
    for (title, tag, expected) in chapters {
        say(title);
        if let Some(tag) = tag {
            // What `kubectl set image` sends.
            let image = ("podinfod".to_string(), format!("{IMAGE}:{tag}"));
            workload::set_images(&deployments, "podinfo", &[image]).await?;
            say(&format!(
                "     kubectl -n prod set image deployment/podinfo podinfod={IMAGE}:{tag}"
            ));
        }
        say("     canary run podinfo.yaml");
        // What `canary run` shows: the live view on a terminal, lines
        // otherwise, then the verdict and the summary.
        let output = crate::ui::RunOutput::new(crate::ui::output::choose(
            false,
            false,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ));
        let (verdict, state) =
            match Driver::new(&conn, canary.clone(), Vec::new(), &settings, &output) {
                Ok(d) => {
                    let mut d = d.with_events();
                    let v = d.drive().await;
                    (v, Some(d.last_shown().0))
                }
                Err(e) => (Err(e), None),
            };
        if let Ok(v) = &verdict {
            let (o, result, reason) = super::run::verdict_outcome(v);
            super::run::emit_verdict(
                &output,
                "podinfo.prod",
                "deployment/podinfo".to_string(),
                state,
                o,
                result,
                reason,
            );
        }
        output.finish();
        let verdict = verdict?;
        let got = match &verdict {
            Verdict::Initialized => "initialised",
            Verdict::Promoted => "promoted",
            Verdict::RolledBack { .. } => "rolled back",
            _ => "something else",
        };
        let code = Outcome::from(&verdict).code();
        say(&format!("     => {got} (canary run would exit {code})\n"));
        if got != expected {
            return Err(DemoError::Unexpected(expected));
        }
    }
    Ok(())
}

/// Runs the demo world until Ctrl-C (or SIGTERM), with a kubeconfig for
/// other terminals; removes the kubeconfig on the way out.
pub(crate) fn serve(kubeconfig: PathBuf, scenario: Option<PathBuf>) -> Outcome {
    let scenario = match &scenario {
        Some(p) => match Scenario::load(p) {
            Ok(s) => s,
            Err(e) => return failed(&DemoError::Spec(e.diagnostics)),
        },
        None => Scenario::seed(),
    };
    super::block_on(keep_serving(scenario, kubeconfig))
}

async fn keep_serving(scenario: Scenario, kubeconfig: PathBuf) -> Outcome {
    let mut err = std::io::stderr();
    let world = match World::start(scenario).await {
        Ok(w) => w,
        Err(e) => return failed(&DemoError::Start(e)),
    };
    // The example MetricTemplates' queries answer from the demo's traffic.
    world.metric_providers().map_demo_queries();
    let path = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    let yaml = world.kubeconfig_yaml();
    if let Err(source) = write_atomically(&path, &yaml) {
        let outcome = failed(&DemoError::File {
            what: format!("failed to write the kubeconfig {}", path.display()),
            source,
        });
        world.shutdown().await;
        return outcome;
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(canary_sim::world::demo_banner(&world, &path).as_bytes());
        let _ = out.flush();
    }
    wait_for_stop_signal().await;
    let _ = writeln!(err, "stopping the simulated cluster...");
    world.shutdown().await;
    // Only our own file: someone may have replaced it meanwhile.
    if std::fs::read_to_string(&path).is_ok_and(|t| t == yaml) {
        let _ = std::fs::remove_file(&path);
        let _ = writeln!(err, "stopped; removed {}", path.display());
    } else {
        let _ = writeln!(err, "stopped");
    }
    Outcome::Success
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes through a temporary file and a rename, so a reader polling for
/// the file never sees half of it; mode 0600.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kubeconfig"),
        std::process::id()
    ));
    std::fs::write(&tmp, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}
