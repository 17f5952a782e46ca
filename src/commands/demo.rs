//! `canary demo`: the Flagger + Linkerd walkthrough's story on the embedded
//! simulated cluster, in about a minute: initialise podinfo 3.1.0, release
//! 3.1.1 and promote it, release 3.1.2 and watch its errors and latency
//! roll it back.
//!
//! Every step goes through the same driver (`run.rs`) as `canary run`
//! against a real cluster, over HTTP with a kubeconfig; only the spec's
//! interval is shorter than the walkthrough's. `canary demo --serve` keeps
//! the simulated cluster up for other terminals instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::driver::{Driver, Settings};
use crate::exit::Outcome;
use canary_core::engine::decide::Verdict;
use canary_core::spec::resolve::{self, Overrides};
use canary_sim::scenario::Scenario;
use canary_sim::world::World;

/// The walkthrough's canary with a 2 s interval and a 10 s metric window.
pub const DEMO_CANARY: &str = include_str!("demo-canary.yaml");

const IMAGE: &str = "ghcr.io/stefanprodan/podinfo";

pub fn demo() -> Outcome {
    super::block_on(story())
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

async fn story() -> Outcome {
    let started = Instant::now();
    let world = match World::start(Scenario::seed()).await {
        Ok(w) => w,
        Err(e) => {
            crate::ui::error(&format!("failed to start the simulated cluster: {e:#}"));
            return Outcome::Cluster;
        }
    };
    let outcome = chapters(&world).await;
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

async fn chapters(world: &World) -> Outcome {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            crate::ui::error(&format!("failed to create a temporary directory: {e}"));
            return Outcome::Cluster;
        }
    };
    let kubeconfig = dir.path().join("kubeconfig");
    if let Err(e) = world.write_kubeconfig(&kubeconfig) {
        crate::ui::error(&format!("failed to write the kubeconfig: {e}"));
        return Outcome::Cluster;
    }
    let conn = match crate::cluster::connect::connect(Some(&kubeconfig), None).await {
        Ok(c) => c,
        Err(e) => {
            crate::ui::error(&e.to_string());
            return Outcome::Cluster;
        }
    };
    let file = match canary_core::spec::load_str("demo-canary.yaml", DEMO_CANARY) {
        Ok(f) => f,
        Err(errors) => {
            crate::ui::diagnostics(&errors);
            return Outcome::Usage;
        }
    };
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
            let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "podinfod", "image": format!("{IMAGE}:{tag}")}
            ]}}}});
            if let Err(e) = deployments
                .patch(
                    "podinfo",
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                crate::ui::error(&format!("failed to set the image: {e}"));
                return Outcome::Cluster;
            }
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
                Ok(mut d) => {
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
        let got = match &verdict {
            Ok(Verdict::Initialized) => "initialised",
            Ok(Verdict::Promoted) => "promoted",
            Ok(Verdict::RolledBack { .. }) => "rolled back",
            Ok(_) => "something else",
            Err(e) => {
                crate::ui::error(&e.to_string());
                return Outcome::Cluster;
            }
        };
        let code = if got == "rolled back" { 1 } else { 0 };
        say(&format!("     => {got} (canary run would exit {code})\n"));
        if got != expected {
            crate::ui::error(&format!("the demo expected `{expected}` here"));
            return Outcome::Cluster;
        }
    }
    Outcome::Success
}

/// Runs the demo world until Ctrl-C (or SIGTERM), with a kubeconfig for
/// other terminals; removes the kubeconfig on the way out.
pub fn serve(kubeconfig: PathBuf, scenario: Option<PathBuf>) -> Outcome {
    let scenario = match &scenario {
        Some(p) => match Scenario::load(p) {
            Ok(s) => s,
            Err(e) => {
                crate::ui::diagnostics(&e.diagnostics);
                return Outcome::Usage;
            }
        },
        None => Scenario::seed(),
    };
    super::block_on(keep_serving(scenario, kubeconfig))
}

async fn keep_serving(scenario: Scenario, kubeconfig: PathBuf) -> Outcome {
    let mut err = std::io::stderr();
    let world = match World::start(scenario).await {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(err, "error: failed to start the simulated cluster: {e:#}");
            return Outcome::Cluster;
        }
    };
    let path = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    let yaml = world.kubeconfig_yaml();
    if let Err(e) = write_atomically(&path, &yaml) {
        let _ = writeln!(
            err,
            "error: failed to write the kubeconfig {}: {e}",
            path.display()
        );
        world.shutdown().await;
        return Outcome::Cluster;
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
