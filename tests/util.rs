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

/// A command whose standard input, output and error are one terminal of
/// `cols` columns, as when a person runs it: what it wrote there, escape
/// sequences and all, is read from the other side of the terminal until
/// the command exits.
#[cfg(unix)]
pub struct Terminal {
    pub child: std::process::Child,
    screen: std::thread::JoinHandle<Vec<u8>>,
}

#[cfg(unix)]
impl Terminal {
    /// Starts `cmd` on a new pseudo-terminal of `cols` × 50.
    pub fn spawn(mut cmd: std::process::Command, cols: u16) -> Terminal {
        use std::io::Read;
        use std::os::fd::{FromRawFd, OwnedFd};
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 50,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors it opened into the two
        // integers; the name buffer and the termios may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are open and owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        let child = cmd.spawn().unwrap();
        // Only the child holds the terminal now: reading its other side
        // ends (EIO) once the child and its descendants have closed it.
        drop(cmd);
        let mut reader = std::fs::File::from(master);
        let screen = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        Terminal { child, screen }
    }

    /// Waits for the command; its exit code and everything it wrote on
    /// the terminal, without colours and with a line break for each
    /// cursor movement, so that what starts at the left margin starts a
    /// line.
    pub async fn finish(mut self) -> (Option<i32>, String) {
        tokio::task::spawn_blocking(move || {
            let code = self.child.wait().unwrap().code();
            let bytes = self.screen.join().unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let colours = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
            let moves = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
            let text = colours.replace_all(&text, "");
            (code, moves.replace_all(&text, "\n").replace('\r', "\n"))
        })
        .await
        .unwrap()
    }
}

/// The state document of a primary (a Deployment as the store holds it),
/// with the progress and the lease, stored in annotations of their own,
/// put back in (the lease as `lease`): `Null` without a state annotation.
pub fn stored_state(primary: &serde_json::Value) -> serde_json::Value {
    let annotations = &primary["metadata"]["annotations"];
    let Some(mut state) = annotations["canary.flagger.app/state"]
        .as_str()
        .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap())
    else {
        return serde_json::Value::Null;
    };
    if state.get("canaryWeight").is_none()
        && let Some(progress) = annotations["canary.flagger.app/progress"].as_str()
    {
        let progress: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(progress).unwrap();
        state.as_object_mut().unwrap().extend(progress);
    }
    if let Some(lease) = annotations["canary.flagger.app/lease"].as_str() {
        state["lease"] = serde_json::from_str(lease).unwrap();
    }
    state
}
