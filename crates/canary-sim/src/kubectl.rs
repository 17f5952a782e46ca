//! The real `kubectl` pointed at a simulated cluster, with its own
//! kubeconfig and discovery cache in a temporary directory: how tests
//! check that the simulated API server answers a real client as a real
//! cluster would.

use crate::server::Sim;

/// Whether `kubectl` is on PATH. Tests that need it say loudly when it is
/// missing and skip; CI installs it so it never skips.
pub fn available() -> bool {
    std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `kubectl` against one simulated cluster.
pub struct Kubectl {
    pub dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(sim: &Sim) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        sim.write_kubeconfig(dir.path().join("config"))?;
        Ok(Self { dir })
    }

    /// Runs `kubectl ARGS...`: (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let (code, out, err) = self.run_with_code(args).await;
        (code == Some(0), out, err)
    }

    /// Runs `kubectl ARGS...`: (exit code, stdout, stderr); the code is
    /// `None` when kubectl did not run or was killed. `kubectl diff` tells
    /// "differences" (1) from "error" (above 1) by it.
    pub async fn run_with_code(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let kubeconfig = self.dir.path().join("config");
        let cache = self.dir.path().join("cache");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("kubectl")
                .args(&args)
                .arg("--cache-dir")
                .arg(&cache)
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("KUBECTL_EXTERNAL_DIFF")
                .output()
        })
        .await;
        match out {
            Ok(Ok(out)) => (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Ok(Err(e)) => (None, String::new(), format!("kubectl did not run: {e}")),
            Err(e) => (None, String::new(), format!("kubectl did not run: {e}")),
        }
    }
}
