//! `canary demo`: the story on the embedded cluster, and `--serve` for
//! other terminals and `kubectl`.

use std::time::{Duration, Instant};

#[test]
fn canary_demo_serve_writes_a_kubeconfig_kubectl_can_use_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("demo.kubeconfig");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .args(["demo", "--serve", "--kubeconfig"])
        .arg(&kubeconfig)
        .current_dir(dir.path())
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("canary runs");
    let start = Instant::now();
    while !kubeconfig.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "canary demo exited early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no kubeconfig after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if canary_sim::kubectl::available() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = std::process::Command::new("kubectl")
                .args(["get", "deploy", "-n", "prod", "--kubeconfig"])
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(dir.path().join("cache"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success()
                && text
                    .lines()
                    .any(|l| l.starts_with("podinfo ") && l.contains("2/2"))
            {
                assert!(text.contains("flagger-loadtester"), "{text}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl never saw podinfo 2/2: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    } else {
        eprintln!("SKIPPED: kubectl not on PATH (the kubectl part of the demo test did not run)");
    }
    crate::util::interrupt(&child);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "canary demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stdout.contains("kubectl get deploy -n prod"), "{stdout}");
    assert!(
        stdout.contains("kubectl -n prod set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:3.1.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert!(
        !kubeconfig.exists(),
        "the kubeconfig is removed on the way out"
    );
}
