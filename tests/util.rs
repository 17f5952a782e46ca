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

/// Whether `kubectl` is on PATH; tests that need it say loudly when it is
/// missing and skip.
pub fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `kubectl` against a simulated cluster, with its own kubeconfig and
/// discovery cache in a temporary directory.
pub struct Kubectl {
    pub dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(sim: &canary::sim::server::Sim) -> Self {
        let dir = tempfile::tempdir().unwrap();
        sim.write_kubeconfig(dir.path().join("config")).unwrap();
        Self { dir }
    }

    /// Runs `kubectl ARGS...`: (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let kubeconfig = self.dir.path().join("config");
        let cache = self.dir.path().join("cache");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("kubectl")
                .args(&args)
                .arg("--cache-dir")
                .arg(&cache)
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("KUBECTL_EXTERNAL_DIFF")
                .output()
                .expect("kubectl runs");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }
}
