//! The command line itself: help, exit codes, the kubectl plugin name.

use crate::util::{canary, stderr, stdout};

#[test]
fn help_lists_the_offline_commands_and_the_exit_codes() {
    let out = canary().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in [
        "run",
        "status",
        "abort",
        "promote",
        "pause",
        "resume",
        "revert",
        "validate",
        "plan",
        "demo",
        "completions",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from help:\n{text}");
    }
    assert!(text.contains("Exit status:"), "{text}");
    assert!(text.contains("130 interrupted"), "{text}");
}

#[test]
fn operating_commands_need_a_canary() {
    for action in ["abort", "promote", "pause", "resume", "revert"] {
        let out = canary().arg(action).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{action}");
        assert!(
            stderr(&out).contains("<NAME>"),
            "{action}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_usage_error_exits_2() {
    let out = canary().args(["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = canary()
        .args(["plan", "examples/podinfo.yaml", "-o", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn installed_as_kubectl_canary_it_calls_itself_kubectl_canary() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-canary");
    // A symlink, as `ln -s` installs it; a copy could race with other
    // tests' forks and fail with "text file busy".
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("canary"), &plugin).unwrap();
    let out = std::process::Command::new(&plugin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("Usage: kubectl canary <COMMAND>"), "{text}");
}

#[test]
fn kubectl_finds_the_plugin_on_path_when_kubectl_is_installed() {
    let Ok(kubectl) = which("kubectl") else {
        eprintln!("SKIPPED: kubectl is not on PATH; the plugin listing is not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-canary");
    // A symlink, as `ln -s` installs it; a copy could race with other
    // tests' forks and fail with "text file busy".
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("canary"), &plugin).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(kubectl)
        .args(["canary", "validate", "examples/podinfo.yaml"])
        .current_dir(crate::util::root())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("podinfo.prod"));
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .ok_or(())
}

#[test]
fn completions_print_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = canary().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        // The script asks the binary itself for the candidates.
        assert!(stdout(&out).contains("COMPLETE"), "{shell}");
    }
}

#[test]
fn a_bad_spec_file_is_reported_before_any_cluster_is_asked() {
    // No kubeconfig exists here: the spec error must come first.
    for cmd in ["status", "abort", "promote", "pause", "resume", "revert"] {
        let out = canary()
            .args([cmd, "-f", "tests/malformed/unknown-field-typo.yaml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("tests/malformed/unknown-field-typo.yaml:17:5"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("kubeconfig"), "{cmd}: {err}");
    }
}
