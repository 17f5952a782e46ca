//! Hostile spec files: nesting that would overflow the stack, inputs that
//! never end or would take time in the square of their size, huge values,
//! the same canary twice. `validate`, `plan` and `run` each refuse them with
//! exit 2, the file and the place, and `run` writes nothing to the cluster.

use std::path::PathBuf;

use crate::support::Sim;
use crate::util::{canary, stderr, stdout};

const PODINFO: &str = include_str!("../examples/podinfo.yaml");

/// `validate`, `plan` (of the first file) and `run` of `files` all exit 2
/// with every one of `words` on stderr, and `run` writes nothing.
async fn refused_by_all_three(sim: &Sim, files: &[PathBuf], words: &[&str]) {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut commands = vec![
        [vec!["validate".to_string()], names.clone()].concat(),
        vec!["plan".to_string(), names[0].clone()],
        [vec!["run".to_string()], names.clone()].concat(),
    ];
    if files.len() > 1 {
        // `plan` reads one file: it cannot see a repeat in another.
        commands.remove(1);
    }
    sim.world.sim().clear_request_log();
    for argv in commands {
        let out = sim.canary(argv.clone()).await;
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{argv:?}: {err}{}",
            stdout(&out)
        );
        for w in words {
            assert!(err.contains(w), "{argv:?} says {w:?}: {err}");
        }
        // A hundred problems at most, each a few lines.
        assert!(err.len() < 64_000, "{argv:?} printed {} bytes", err.len());
    }
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_levels_of_nesting_are_refused_with_the_place_not_a_crash() {
    let sim = Sim::start().await;
    let deep = sim.write("deep.yaml", &format!("a:\n  {}x\n", "- ".repeat(10_000)));
    let at = format!("deep.yaml:2:{}", 3 + 2 * 127);
    refused_by_all_three(&sim, &[deep], &["nests more than 128 levels", &at]).await;

    // Deep inside a real Canary, in flow style.
    let flow = sim.write(
        "deep-flow.yaml",
        &format!(
            "{PODINFO}status: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
    );
    refused_by_all_three(
        &sim,
        &[flow],
        &["nests more than 128 levels", "deep-flow.yaml:"],
    )
    .await;
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_thousand_bad_documents_are_refused_at_the_document_limit() {
    let sim = Sim::start().await;
    let many = sim.write("many.yaml", &"---\nkind: X\n".repeat(80_000));
    refused_by_all_three(
        &sim,
        &[many],
        &["more than 1000 YAML documents", "many.yaml:2001:1"],
    )
    .await;
    // Under the limit every document is read, and the problems stop at a
    // hundred.
    let bad = sim.write("bad.yaml", &"---\nkind: X\n".repeat(1000));
    refused_by_all_three(
        &sim,
        &[bad],
        &["stopped reading after 100 problems", "bad.yaml:202:1"],
    )
    .await;
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_canary_in_two_files_is_refused_naming_both_places() {
    let sim = Sim::start().await;
    let a = sim.write("a.yaml", PODINFO);
    let b = sim.write("b.yaml", PODINFO);
    let first = format!("{}:7:3", a.display());
    let second = format!("{}:7:3", b.display());
    refused_by_all_three(
        &sim,
        &[a.clone(), b],
        &["canary `podinfo.prod` is defined twice", &first, &second],
    )
    .await;
    // Twice in one file: `plan` refuses it too.
    let both = sim.write("both.yaml", &format!("{PODINFO}---\n{PODINFO}"));
    refused_by_all_three(
        &sim,
        &[both],
        &["is defined twice", "both.yaml:7:3", "both.yaml:"],
    )
    .await;
    // Two canaries of one target: one run would drive it twice.
    let other = sim.write(
        "other.yaml",
        &PODINFO.replace(
            "  name: podinfo\n  namespace",
            "  name: podinfo-two\n  namespace",
        ),
    );
    let out = sim
        .canary(vec![
            "run".into(),
            a.display().to_string(),
            other.display().to_string(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("drives Deployment `podinfo`, as canary `podinfo.prod`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is written");
    sim.world.shutdown().await;
}

#[test]
fn a_file_that_never_ends_is_read_to_the_size_limit_and_refused() {
    if !std::path::Path::new("/dev/zero").exists() {
        return;
    }
    for cmd in ["validate", "plan"] {
        let out = canary().args([cmd, "/dev/zero"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains("/dev/zero") && err.contains("larger than 4 MiB"),
            "{err}"
        );
        assert!(err.contains("--max-input-size"), "{err}");
    }
}

#[test]
fn the_size_limit_is_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("podinfo.yaml");
    std::fs::write(&f, PODINFO).unwrap();
    let out = canary()
        .args(["validate", "--max-input-size", "1k"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("larger than 1 KiB"),
        "{}",
        stderr(&out)
    );
    let out = canary()
        .args(["validate", "--max-input-size", "64KiB"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = canary()
        .args(["validate", "--max-input-size", "lots"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_fifty_megabyte_bad_value_is_shown_by_its_start_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("huge.yaml");
    let value = "x".repeat(50_000_000);
    std::fs::write(
        &f,
        PODINFO.replacen("interval: 1m", &format!("interval: {value}"), 1),
    )
    .unwrap();
    // Refused by size first.
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("larger than 4 MiB"));
    // Read when allowed, and not printed.
    let out = canary()
        .args(["validate", "--max-input-size", "64MiB"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.len() < 4_000, "{} bytes printed", err.len());
    assert!(err.contains("(50000000 characters)"), "{err}");
    assert!(err.contains("huge.yaml:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_that_cannot_be_called_are_refused_before_traffic_moves() {
    let sim = Sim::start().await;
    let hook = "url: http://flagger-loadtester.prod/";
    for (url, words) in [
        ("http://[::1", "the IPv6 address is not valid"),
        (
            "http://127.0.0.1:99999/",
            "the port must be a number from 1 to 65535",
        ),
        (
            "ftp://flagger-loadtester.prod/",
            "the scheme `ftp` is not http or https",
        ),
        (
            "http://user:s3cret@127.0.0.1:99999/",
            "invalid URL `http://***@127.0.0.1:99999/`",
        ),
    ] {
        let f = sim.write(
            "url.yaml",
            &PODINFO.replacen(hook, &format!("url: {url}"), 1),
        );
        refused_by_all_three(
            &sim,
            std::slice::from_ref(&f),
            &[words, "url.yaml:33:14", "(spec.analysis.webhooks[0].url)"],
        )
        .await;
        let out = canary().arg("validate").arg(&f).output().unwrap();
        assert!(!stderr(&out).contains("s3cret"), "{}", stderr(&out));
    }
    let f = sim.write(
        "server.yaml",
        &PODINFO.replacen(
            "spec:\n",
            "spec:\n  metricsServer: http://prometheus:0/\n",
            1,
        ),
    );
    refused_by_all_three(&sim, &[f], &["(spec.metricsServer)", "port"]).await;
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_kubernetes_names_are_refused_naming_the_field() {
    let sim = Sim::start().await;
    for (from, to, path) in [
        (
            "    name: podinfo\n  service:",
            "    name: Pod Info\n  service:",
            "spec.targetRef.name",
        ),
        (
            "    name: podinfo\n  service:",
            "    name: ../../etc\n  service:",
            "spec.targetRef.name",
        ),
        (
            "  namespace: prod\n",
            "  namespace: prod?watch=1\n",
            "metadata.namespace",
        ),
        (
            "  service:\n",
            "  service:\n    name: 9lives\n",
            "spec.service.name",
        ),
        (
            "  service:\n",
            "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: po/dinfo\n  service:\n",
            "spec.autoscalerRef.name",
        ),
    ] {
        assert!(PODINFO.contains(from), "{from:?}");
        let f = sim.write("name.yaml", &PODINFO.replacen(from, to, 1));
        refused_by_all_three(&sim, &[f], &[&format!("({path})"), "name.yaml:"]).await;
    }
    sim.world.shutdown().await;
}

#[test]
fn names_and_urls_on_the_command_line_are_checked_too() {
    for args in [
        vec!["abort", "../../x"],
        vec!["status", "Pod Info"],
        vec!["run", "examples/podinfo.yaml", "-n", "a/b"],
        vec![
            "plan",
            "examples/podinfo.yaml",
            "--metrics-server",
            "http://[::1",
        ],
    ] {
        let out = canary().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn plan_never_shows_the_password_of_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("creds.yaml");
    let text = PODINFO
        .replace(
            "url: http://flagger-loadtester.prod/",
            "url: http://flagger:s3cret@flagger-loadtester.prod/",
        )
        .replacen(
            "spec:\n",
            "spec:\n  metricsServer: http://admin:hunter2@prometheus.monitoring:9090\n",
            1,
        );
    std::fs::write(&f, text).unwrap();
    for format in ["table", "json"] {
        let out = canary()
            .args(["plan", "--mesh-provider", "linkerd", "-o", format])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("s3cret") && !all.contains("hunter2"), "{all}");
        assert!(all.contains("http://***@flagger-loadtester.prod/"), "{all}");
    }
}
