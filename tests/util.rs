//! Hermetic helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The crate root, where `examples/` and `tests/` live.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

/// The built binary, with no settings leaking in from the environment.
pub fn canary() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("canary").expect("binary is built");
    cmd.current_dir(root());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CANARY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("KUBECONFIG");
    // Not in a Pod, whatever machine the tests run on.
    for pod in [
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "POD_NAME",
    ] {
        cmd.env_remove(pod);
    }
    cmd.env("NO_COLOR", "1");
    cmd.env("COLUMNS", "120");
    cmd
}

/// Standard output of a finished command as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends SIGINT to a child, as Ctrl-C in its terminal would.
pub fn interrupt(child: &std::process::Child) {
    signal(child, "INT");
}

/// Sends SIGTERM to a child, as Kubernetes does to a Pod it stops.
pub fn terminate(child: &std::process::Child) {
    signal(child, "TERM");
}

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child and collects its output without holding up the
/// async runtime (the simulated cluster may run on it).
pub async fn finish(child: std::process::Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// The (primary, canary) weights of podinfo's TrafficSplit in `prod`, once
/// it exists.
pub fn podinfo_weights(world: &canary_sim::world::World) -> Option<(i64, i64)> {
    let ts = world.store().get(
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "prod",
        "podinfo",
    )?;
    let mut primary = -1;
    let mut canary = -1;
    for b in ts["spec"]["backends"].as_array()? {
        let w = b["weight"].as_i64()?;
        match b["service"].as_str()? {
            "podinfo-primary" => primary = w,
            "podinfo-canary" => canary = w,
            _ => {}
        }
    }
    Some((primary, canary))
}

/// The state document of a primary (a Deployment as the store holds it),
/// with the lease, stored in an annotation of its own, put back in as
/// `lease`: `Null` without a state annotation.
pub fn stored_state(primary: &serde_json::Value) -> serde_json::Value {
    let annotations = &primary["metadata"]["annotations"];
    let Some(mut state) = annotations["canary.flagger.app/state"]
        .as_str()
        .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap())
    else {
        return serde_json::Value::Null;
    };
    if let Some(lease) = annotations["canary.flagger.app/lease"].as_str() {
        state["lease"] = serde_json::from_str(lease).unwrap();
    }
    state
}
