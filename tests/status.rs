//! `canary status` as kubectl users read it, end to end against the
//! simulated cluster: the kubectl `List` of Flagger `Canary` objects
//! (checked against `tests/flagger/canary.json`, a Canary as Flagger's API
//! returns it, written from Flagger's v1beta1 types), `-o name`,
//! `--no-headers`, `-o jsonpath=`, `-o custom-columns=`, `-l`; the exit
//! code of a Failed canary; and `status --wait` following rollouts driven
//! by other processes to their verdicts.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{finish, stderr, stdout};

impl Cluster {
    /// `canary status -n prod ARGS...`.
    async fn status(&self, args: &[&str]) -> Output {
        let mut cmd = crate::util::canary();
        cmd.arg("status")
            .args(["-n", "prod", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(args)
            .timeout(Duration::from_secs(120));
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// `canary status -n prod ARGS...` in the background.
    fn spawn_status(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .arg("status")
            .args(["-n", "prod", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The field paths of a JSON value: `status.conditions[].type`, ...
fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(v, &p, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                paths(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn flagger_fixture() -> Value {
    let text = std::fs::read_to_string(crate::util::path("tests/flagger/canary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `ours` has Flagger's fields where Flagger has them: every field of the
/// fixture's `status` that Flagger always writes is there, and every
/// field of ours outside `status.canary` is one of Flagger's.
fn assert_flagger_shaped(ours: &Value) {
    let fixture = flagger_fixture();
    let mut theirs = BTreeSet::new();
    paths(&fixture, "", &mut theirs);
    let mut mine = BTreeSet::new();
    paths(ours, "", &mut mine);
    // Optional in Flagger (`omitempty`), and absent from these canaries.
    let optional = ["status.trackedConfigs"];
    for p in theirs.iter().filter(|p| p.starts_with("status.")) {
        if optional.iter().any(|o| p.starts_with(o)) {
            continue;
        }
        assert!(mine.contains(p), "Flagger's `{p}` is missing: {ours:#}");
    }
    for top in ["apiVersion", "kind", "metadata.name", "metadata.namespace"] {
        assert!(mine.contains(top), "{top}");
    }
    assert_eq!(ours["apiVersion"], fixture["apiVersion"]);
    assert_eq!(ours["kind"], fixture["kind"]);
    for p in mine.iter().filter(|p| p.starts_with("status.")) {
        if p == "status.canary" || p.starts_with("status.canary.") {
            continue;
        }
        assert!(
            theirs.contains(p),
            "`{p}` is not a field of Flagger's status"
        );
    }
    // The spec is Flagger's schema: the one the driver ran.
    assert_eq!(ours["spec"]["targetRef"], fixture["spec"]["targetRef"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_kubectl_lists_of_flagger_canaries_names_jsonpath_and_columns() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    assert_exit(&c.run(&[]).await, 0);

    // -o json: a kubectl List of Flagger Canaries.
    let out = c.status(&["-o", "json"]).await;
    assert_exit(&out, 0);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    assert!(list["metadata"].is_object());
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_flagger_shaped(item);
    assert_eq!(item["metadata"]["name"], "podinfo");
    assert_eq!(item["metadata"]["namespace"], "prod");
    assert_eq!(item["status"]["phase"], "Succeeded");
    assert_eq!(item["status"]["canaryWeight"], 0);
    assert_eq!(item["status"]["conditions"][0]["type"], "Promoted");
    assert_eq!(item["status"]["conditions"][0]["status"], "True");
    assert_eq!(item["status"]["conditions"][0]["reason"], "Succeeded");
    // The stored, resolved spec.
    assert_eq!(item["spec"]["analysis"]["stepWeight"], 20);
    assert_eq!(item["spec"]["provider"], "linkerd");
    assert_eq!(item["status"]["canary"]["driver"], Value::Null);
    assert!(item["status"]["canary"].get("history").is_none());

    // With a NAME: the object alone, with its history.
    let out = c.status(&["podinfo", "-o", "json"]).await;
    assert_exit(&out, 0);
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(one["kind"], "Canary");
    assert_flagger_shaped(&one);
    let history = one["status"]["canary"]["history"].as_array().unwrap();
    assert!(history.iter().any(|h| h["canaryWeight"] == 20), "{one:#}");
    assert!(
        history
            .iter()
            .flat_map(|h| h["metrics"].as_array().into_iter().flatten())
            .any(|m| m["name"] == "request-success-rate" && m["value"].is_number()),
        "{one:#}"
    );

    // -o yaml: the same List.
    let out = c.status(&["-o", "yaml"]).await;
    assert_exit(&out, 0);
    let yaml: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml["kind"], "List");
    assert_eq!(yaml["items"][0]["status"]["phase"], "Succeeded");

    // -o name, as kubectl names a Canary.
    let out = c.status(&["-o", "name"]).await;
    assert_eq!(stdout(&out), "canary.flagger.app/podinfo\n");

    // The table, with and without its header.
    let out = c.status(&[]).await;
    let text = stdout(&out);
    assert!(
        text.starts_with("NAME      STATUS") && text.contains("\npodinfo   Succeeded"),
        "{text}"
    );
    let out = c.status(&["--no-headers"]).await;
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("podinfo   Succeeded"), "{text}");
    let out = c.status(&["-o", "wide", "--no-headers"]).await;
    assert!(
        stdout(&out).contains("deployment/podinfo"),
        "{}",
        stdout(&out)
    );

    // jsonpath, on the List and on one object.
    let out = c.status(&["-o", "jsonpath={.items[*].status.phase}"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "Succeeded");
    let out = c
        .status(&["podinfo", "-o", "jsonpath={.status.canaryWeight}"])
        .await;
    assert_eq!(stdout(&out), "0");
    let out = c
        .status(&[
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}: {.status.phase} ({.spec.targetRef.name}){"\n"}{end}"#,
        ])
        .await;
    assert_eq!(stdout(&out), "podinfo: Succeeded (podinfo)\n");
    let out = c.status(&["-o", "jsonpath={.items[*].status.nope}"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "");

    // custom-columns.
    let out = c
        .status(&[
            "-o",
            "custom-columns=NAME:.metadata.name,PHASE:.status.phase,HOLDER:.status.canary.driver.holder",
        ])
        .await;
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        "NAME      PHASE       HOLDER\npodinfo   Succeeded   <none>\n"
    );

    // -l: the primary's labels, selected by the API server.
    let out = c.status(&["-l", "app=podinfo-primary", "-o", "name"]).await;
    assert_eq!(stdout(&out), "canary.flagger.app/podinfo\n");
    let out = c.status(&["-l", "app=nope"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("No canaries found."),
        "{}",
        stderr(&out)
    );
    let out = c.status(&["-l", "app=nope", "-o", "json"]).await;
    let empty: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(empty["items"], serde_json::json!([]));
    let out = c.status(&["podinfo", "-l", "app=nope"]).await;
    assert_exit(&out, 2);

    // Malformed formats are usage errors, found before the cluster is asked.
    for bad in [
        "jsonpath={.items[",
        "custom-columns=NAME",
        "jsonpath={end}",
        "tabel",
    ] {
        let out = c.status(&["-o", bad]).await;
        assert_exit(&out, 2);
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wait_follows_runs_elsewhere_to_promotion_and_rollback() {
    let c = Cluster::start().await;
    c.initialise().await;

    // Initialised and unchanged: nothing under way, at once.
    let out = c.status(&["podinfo", "--wait"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: initialised"),
        "{}",
        stdout(&out)
    );

    // Started before any driver picks the change up: it waits for one.
    c.set_image("3.1.1");
    let wait = c.spawn_status(&["podinfo", "--wait"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let run = c.spawn(&[]);
    let waited = finish(wait).await;
    assert_exit(&waited, 0);
    assert_eq!(stdout(&waited), "podinfo.prod: promoted\n");
    assert!(
        stderr(&waited).contains("Progressing"),
        "{}",
        stderr(&waited)
    );
    assert_exit(&finish(run).await, 0);

    // Rolled back: exit 1.
    c.set_image("3.1.2");
    let wait = c.spawn_status(&["podinfo", "--wait"]);
    let run = c.spawn(&[]);
    let waited = finish(wait).await;
    assert_exit(&waited, 1);
    assert!(
        stdout(&waited).starts_with("podinfo.prod: rolled back ("),
        "{}",
        stdout(&waited)
    );
    assert_exit(&finish(run).await, 1);

    // A Failed canary: status exits 1, 0 with --exit-zero; --wait says
    // so at once.
    let out = c.status(&[]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("Failed"));
    let out = c.status(&["-o", "json"]).await;
    assert_exit(&out, 1);
    let out = c.status(&["--exit-zero"]).await;
    assert_exit(&out, 0);
    let out = c.status(&["podinfo", "--wait"]).await;
    assert_exit(&out, 1);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wait_exits_4_for_an_abort_from_a_third_process_and_5_at_its_timeout() {
    let slow = FAST
        .replace("interval: 1s", "interval: 2s")
        .replace("stepWeight: 20", "stepWeight: 10");
    let c = Cluster::start_with(&slow).await;
    c.initialise().await;

    // Nobody drives the change: the wait's own --timeout ends it.
    c.set_image("3.1.1");
    let started = std::time::Instant::now();
    let out = c.status(&["podinfo", "--wait", "--timeout", "2s"]).await;
    assert_exit(&out, 5);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        stderr(&out).contains("timed out after 2s"),
        "{}",
        stderr(&out)
    );

    let run = c.spawn(&[]);
    c.wait_for_analysis().await;
    let wait = c.spawn_status(&["podinfo", "--wait", "-w", "-o", "wide", "--no-headers"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = crate::util::canary()
        .args(["abort", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let waited = finish(wait).await;
    assert_exit(&waited, 4);
    assert!(
        stderr(&waited).contains("podinfo.prod: aborted by"),
        "{}",
        stderr(&waited)
    );
    // -w -o wide: the wide rows on stdout, the last one Aborted.
    let last = stdout(&waited)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("podinfo   Aborted") && last.contains("deployment/podinfo"),
        "{}",
        stdout(&waited)
    );
    assert_exit(&finish(run).await, 4);

    // Plain status of an aborted canary exits 0.
    assert_exit(&c.status(&[]).await, 0);
    c.world.shutdown().await;
}

/// `status -w NAME` on a terminal draws the live view `canary run` draws,
/// of a rollout another process drives: the bar, the checks with their
/// values, the last thing that happened, from what the driver stored.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_w_name_on_a_terminal_is_the_live_view_of_a_rollout_driven_elsewhere() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"));
    cmd.args(["status", "podinfo", "-w", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm-256color");
    let view = crate::util::Terminal::spawn(cmd, 100);
    let run = c.spawn(&[]);
    assert_exit(&finish(run).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    crate::util::interrupt(&view.child);
    let (code, screen) = view.finish().await;
    assert_eq!(code, Some(0), "{screen}");
    // The driver's view, not kubectl rows.
    assert!(!screen.contains("NAME      STATUS"), "{screen}");
    assert!(screen.contains("podinfo.prod  Progressing  ["), "{screen}");
    assert!(screen.contains("✓ request-success-rate"), "{screen}");
    assert!(
        screen.contains("› Advance podinfo.prod canary weight"),
        "{screen}"
    );
    assert!(
        screen.contains("› Promotion completed! Scaling down podinfo.prod"),
        "{screen}"
    );
    c.world.shutdown().await;
}
