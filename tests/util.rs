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
