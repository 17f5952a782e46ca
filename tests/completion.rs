//! Completion of the command line by the binary: canary names and
//! namespaces from a simulated cluster, contexts from a kubeconfig,
//! providers from the provider table, kubectl's plugin completer, and a
//! cluster that does not answer completing nothing, quickly and silently.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::run::Cluster;
use crate::util::{canary, stderr, stdout};

/// `COMPLETE=fish canary -- canary WORDS...`: the candidates for the last
/// word, one a line, as fish asks for them.
async fn complete(words: &[&str]) -> Output {
    let mut cmd = canary();
    cmd.env("COMPLETE", "fish")
        .args(["--", "canary"])
        .args(words)
        .timeout(Duration::from_secs(30));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The candidates' values, without their descriptions.
fn values(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// The candidates that are values, not flags (an empty word is completed
/// with both).
fn non_flags(out: &Output) -> Vec<String> {
    values(out)
        .into_iter()
        .filter(|v| !v.starts_with('-'))
        .collect()
}

fn kc(c: &Cluster) -> &str {
    c.kubeconfig.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_names_and_namespaces_complete_from_the_cluster() {
    let c = Cluster::start().await;
    c.initialise().await;
    for cmd in ["status", "abort", "promote", "pause", "resume", "revert"] {
        let out = complete(&[cmd, "--kubeconfig", kc(&c), "-n", "prod", "pod"]).await;
        assert_eq!(values(&out), ["podinfo"], "{cmd}");
        assert!(
            stdout(&out).contains("podinfo\tInitialized in prod"),
            "{}",
            stdout(&out)
        );
    }
    // Every namespace with -A; none in a namespace without canaries.
    let out = complete(&["status", "--kubeconfig", kc(&c), "-A", ""]).await;
    assert_eq!(non_flags(&out), ["podinfo"]);
    let out = complete(&["status", "--kubeconfig", kc(&c), "-n", "default", ""]).await;
    assert!(non_flags(&out).is_empty(), "{}", stdout(&out));

    let out = complete(&["status", "--kubeconfig", kc(&c), "-n", "pr"]).await;
    assert_eq!(values(&out), ["prod"]);
    let out = complete(&["abort", "--kubeconfig", kc(&c), "--namespace", ""]).await;
    let ns = values(&out);
    assert!(ns.contains(&"prod".to_string()) && ns.len() > 1, "{ns:?}");
}

#[tokio::test]
async fn providers_complete_from_the_provider_table() {
    for cmd in ["run", "plan"] {
        let out = complete(&[cmd, "podinfo.yaml", "--mesh-provider", "li"]).await;
        assert_eq!(values(&out), ["linkerd"], "{cmd}");
    }
    let out = complete(&["plan", "podinfo.yaml", "--mesh-provider", ""]).await;
    let all = values(&out);
    for p in canary_core::provider::Provider::ALL {
        assert!(all.contains(&p.name().to_string()), "{}: {all:?}", p.name());
    }
}

#[tokio::test]
async fn spec_files_complete_from_the_disk() {
    let out = complete(&["validate", "examples/pod"]).await;
    assert_eq!(values(&out), ["examples/podinfo.yaml"]);
    let out = complete(&["plan", "examples/ab-"]).await;
    assert_eq!(values(&out), ["examples/ab-testing.yaml"]);
}

fn write_contexts(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("contexts.yaml");
    std::fs::write(
        &p,
        "apiVersion: v1
kind: Config
clusters:
- {name: eu, cluster: {server: 'https://127.0.0.1:1'}}
- {name: us, cluster: {server: 'https://127.0.0.1:2'}}
users:
- {name: ana, user: {token: t}}
contexts:
- {name: prod-eu, context: {cluster: eu, user: ana, namespace: shop}}
- {name: prod-us, context: {cluster: us, user: ana}}
- {name: staging, context: {cluster: eu, user: ana}}
current-context: staging
",
    )
    .unwrap();
    p
}

#[tokio::test]
async fn contexts_complete_from_the_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_contexts(dir.path());
    let file = file.to_str().unwrap();
    let out = complete(&["status", "--kubeconfig", file, "--context", "prod"]).await;
    assert_eq!(values(&out), ["prod-eu", "prod-us"]);
    assert!(
        stdout(&out).contains("prod-eu\tcluster eu, namespace shop"),
        "{}",
        stdout(&out)
    );
    // From KUBECONFIG, a missing file of the list skipped.
    let list = std::env::join_paths([dir.path().join("missing"), file.into()]).unwrap();
    let mut cmd = canary();
    cmd.env("COMPLETE", "fish").env("KUBECONFIG", &list).args([
        "--",
        "canary",
        "run",
        "x.yaml",
        "--context",
        "",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(values(&out), ["prod-eu", "prod-us", "staging"]);
}

#[tokio::test]
async fn a_cluster_that_does_not_answer_completes_nothing_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts every connection and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: 'https://{addr}'}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"
        ),
    )
    .unwrap();
    let kc = kubeconfig.to_str().unwrap();
    for words in [
        &["status", "--kubeconfig", kc, "pod"][..],
        &["abort", "--kubeconfig", kc, "-n", ""],
    ] {
        let started = Instant::now();
        let out = complete(words).await;
        let took = started.elapsed();
        eprintln!("{words:?}: {took:?}");
        assert!(out.status.success());
        assert_eq!(stdout(&out), "", "{words:?}");
        assert_eq!(stderr(&out), "", "{words:?}");
        // The lookup gives up after two seconds; the rest is the process
        // starting on a busy machine.
        assert!(took < Duration::from_secs(15), "{words:?} took {took:?}");
    }
}

#[tokio::test]
async fn the_registration_scripts_call_the_binary_back() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = canary().env("COMPLETE", shell).output().unwrap();
        assert!(out.status.success(), "{shell}");
        // Invoked by its path, the script calls that path back.
        let bin = assert_cmd::cargo::cargo_bin("canary");
        let script = stdout(&out).replace(bin.to_str().unwrap(), "canary");
        assert!(script.contains("COMPLETE"), "{shell}: {script}");
        // `canary completions SHELL` prints what `COMPLETE=SHELL canary`
        // prints, `canary` being on PATH.
        let out = canary().args(["completions", shell]).output().unwrap();
        assert_eq!(stdout(&out), script, "{shell}");
    }
}

/// A directory holding the binary as `kubectl-canary` and as
/// `kubectl_complete-canary`, as the README says to install them.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("canary");
    for name in ["kubectl-canary", canary::KUBECTL_COMPLETER] {
        #[cfg(unix)]
        std::os::unix::fs::symlink(&bin, dir.path().join(name)).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&bin, dir.path().join(name)).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_completes_the_plugin_through_kubectl_complete_canary() {
    let c = Cluster::start().await;
    c.initialise().await;
    let dir = plugin_dir();

    // Called as kubectl calls it: the words after `kubectl canary`.
    let completer = dir.path().join(canary::KUBECTL_COMPLETER);
    let kubeconfig = c.kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(completer)
            .args(["status", "-n", "prod", "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("p")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "podinfo\tInitialized in prod\n:4\n",
        "{}",
        stderr(&out)
    );

    // Through kubectl itself.
    let Ok(kubectl) = which("kubectl") else {
        eprintln!("SKIPPED: kubectl is not on PATH; the completion through kubectl is not checked");
        return;
    };
    let path = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let kubeconfig = c.kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kubectl)
            .args(["__complete", "canary", "pa"])
            .env("PATH", &path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("pause")),
        "{text}\n{}",
        stderr(&out)
    );
    let path = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .args([
                "__complete",
                "canary",
                "abort",
                "-n",
                "prod",
                "--kubeconfig",
            ])
            .arg(&kubeconfig)
            .arg("")
            .env("PATH", &path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("podinfo")),
        "{text}\n{}",
        stderr(&out)
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
