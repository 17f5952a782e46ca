//! Operating rollouts end to end: `abort`, `promote`, `pause`, `resume`
//! from a second process, with and without a live driver; `status -w`;
//! `--timeout`; Ctrl-C; several canaries in one run. The built binary
//! against the simulated cluster.

use std::process::Output;
use std::time::{Duration, Instant};

use canary_sim::scenario::Scenario;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{finish, interrupt, stderr, stdout};

/// The seed canary with ten 10% steps every 2 s: long enough to act on.
fn slow() -> String {
    FAST.replace("interval: 1s", "interval: 2s")
        .replace("stepWeight: 20", "stepWeight: 10")
}

impl Cluster {
    /// `canary ACTION podinfo -n prod`.
    async fn act(&self, action: &str) -> (Output, Duration) {
        let mut cmd = crate::util::canary();
        cmd.arg(action)
            .arg("podinfo")
            .args(["-n", "prod", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .timeout(Duration::from_secs(60));
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (out, started.elapsed())
    }

    /// The state annotation of the primary.
    fn state(&self) -> serde_json::Value {
        let d = self
            .world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .expect("primary exists");
        let state = crate::util::stored_state(&d);
        assert!(!state.is_null(), "state annotation");
        state
    }

    fn phase(&self) -> String {
        self.state()["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls until `done` holds and returns how long that took.
    async fn time_until(&self, what: &str, done: impl Fn(&Cluster) -> bool) -> Duration {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < Duration::from_secs(20), "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }
}

/// The `request` events of a `-o json` run: action and reaction time.
fn reactions(out: &Output) -> Vec<(String, u64)> {
    crate::output::events(out)
        .into_iter()
        .filter_map(|e| e.request)
        .map(|r| (r.action, r.reacted_after_ms))
        .collect()
}

/// Generous bound on reacting to a request: the driver acts within a
/// second; CI machines get slack.
const REACTION: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_promote_reach_a_running_driver_within_a_second() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&["-o", "json"]);
    c.wait_for_analysis().await;

    let (out, _) = c.act("pause").await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("podinfo.prod: paused by the running driver"));
    let paused = c
        .time_until("never paused", |c| !c.state()["paused"].is_null())
        .await;
    let weight = c.weights().1;
    // Held for two intervals: no step, no check.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(c.weights().1, weight, "the weight moved while paused");
    let out = c.act("status").await.0;
    assert!(
        stdout(&out).contains("Progressing (paused)"),
        "{}",
        stdout(&out)
    );

    let (out, _) = c.act("resume").await;
    assert_exit(&out, 0);
    let resumed = c
        .time_until("never resumed", |c| c.state()["paused"].is_null())
        .await;
    c.wait_until("no step after resuming", Duration::from_secs(10), |c| {
        c.weights().1 > weight
    })
    .await;

    let (out, wall) = c.act("promote").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("promotion started by the running driver"),
        "{}",
        stdout(&out)
    );
    let run = finish(child).await;
    assert_exit(&run, 0);
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    let acted = reactions(&run);
    let actions: Vec<&str> = acted.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["pause", "resume", "promote"]);
    for (action, ms) in &acted {
        eprintln!("reaction to {action}: {ms} ms after the request was written");
        assert!(
            Duration::from_millis(*ms) < REACTION,
            "{action} took {ms} ms"
        );
    }
    eprintln!(
        "seen by the test: paused after {paused:?}, resumed after {resumed:?}, \
         promote acknowledged after {wall:?} (process start to exit)"
    );
    assert!(paused < REACTION && resumed < REACTION && wall < REACTION);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_a_second_process_rolls_back_and_the_run_exits_4() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&["-o", "json"]);
    c.wait_for_analysis().await;
    let (out, wall) = c.act("abort").await;
    assert_exit(&out, 0);
    let run = finish(child).await;
    assert_exit(&run, 4);
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(c.replicas("podinfo").await, 0);
    assert_eq!(c.phase(), "Aborted");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    let acted = reactions(&run);
    assert_eq!(acted.len(), 1);
    eprintln!(
        "reaction to abort: {} ms; acknowledged to the operator after {wall:?}",
        acted[0].1
    );
    assert!(Duration::from_millis(acted[0].1) < REACTION);
    // The aborted revision is not analysed again by accident.
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("aborted by"), "{}", stdout(&out));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_live_driver_abort_and_promote_do_the_work_themselves() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    // A run stopped by Ctrl-C leaves the rollout half way and no driver.
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    interrupt(&child);
    assert_exit(&finish(child).await, 130);
    assert!(c.state()["lease"].is_null());
    assert!(c.weights().1 > 0);

    // Pause and resume are recorded for the next driver.
    let (out, _) = c.act("pause").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("no driver is running"),
        "{}",
        stdout(&out)
    );
    assert!(!c.state()["paused"].is_null());
    let (out, _) = c.act("resume").await;
    assert_exit(&out, 0);
    assert!(c.state()["paused"].is_null());

    // Promote with no driver: this command drives the promotion to the end,
    // from the spec the last run stored on the primary.
    let (out, _) = c.act("promote").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(c.phase(), "Succeeded");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(c.weights(), (100, 0));

    // Abort with no driver.
    c.set_image("3.1.2");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    interrupt(&child);
    assert_exit(&finish(child).await, 130);
    let (out, _) = c.act("abort").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: aborted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(c.phase(), "Aborted");
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(c.replicas("podinfo").await, 0);

    // Nothing under way now: each request is refused, nothing written.
    for action in ["abort", "promote", "pause", "resume"] {
        let (out, _) = c.act(action).await;
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(&format!(
                "cannot {action} podinfo.prod: no analysis is under way (it is Aborted)"
            )),
            "{}",
            stderr(&out)
        );
    }
    let out = crate::util::canary()
        .args(["abort", "nope", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no canary named `nope` in namespace prod"));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_roll_back_or_leave_the_rollout_and_exit_5() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&["--timeout", "4s"]).await;
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("timed out after 4s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(c.phase(), "Failed");
    assert_eq!(c.replicas("podinfo").await, 0);

    let out = c
        .run(&["--retry", "--timeout", "4s", "--on-timeout", "leave"])
        .await;
    assert_exit(&out, 5);
    assert!(c.weights().1 > 0, "left where it was");
    assert_eq!(c.phase(), "Progressing");
    assert!(c.state()["lease"].is_null(), "the lease is released");
    // The next run resumes at once.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("New revision detected"));

    // Waiting for a change that does not come in time is a timeout too.
    let out = c
        .run(&["--wait-for-change", "1m", "--timeout", "2s", "-o", "json"])
        .await;
    assert_exit(&out, 5);
    assert!(
        stdout(&out).contains(r#""result":"timedOut","exitCode":5"#),
        "{}",
        stdout(&out)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_with_rollback_rolls_back_and_a_second_ctrl_c_exits_at_once() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&["--on-interrupt", "rollback"]);
    c.wait_for_analysis().await;
    interrupt(&child);
    let out = finish(child).await;
    assert_exit(&out, 130);
    assert!(
        stderr(&out).contains("interrupted: rolling back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(c.phase(), "Failed");

    // Every API call now takes 3 s: the first Ctrl-C waits for the call in
    // flight, the second does not.
    let child = c.spawn(&["--retry"]);
    c.wait_for_analysis().await;
    c.world.faults().set_latency(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Instant::now();
    interrupt(&child);
    let out = finish(child).await;
    let exit_after = second.elapsed();
    c.world.faults().clear();
    assert_exit(&out, 130);
    assert!(
        stderr(&out).contains("interrupted again: exiting now"),
        "{}",
        stderr(&out)
    );
    eprintln!("second Ctrl-C: exited after {exit_after:?}");
    assert!(exit_after < Duration::from_secs(2), "{exit_after:?}");
    c.world.shutdown().await;
}

/// The seed world with two more services beside podinfo, each with traffic.
fn three_apps() -> Scenario {
    Scenario::from_yaml("three-apps.yaml", &three_apps_text()).expect("scenario parses")
}

fn three_apps_text() -> String {
    let mut text = canary_sim::scenario::SEED.to_string();
    let extra_deployments = "
  - name: frontend
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 1
    labels: {app: frontend}
    ports:
      - {name: http, containerPort: 9898}
  - name: backend
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 1
    labels: {app: backend}
    ports:
      - {name: http, containerPort: 9898}
";
    text = text.replacen(
        "\nbehaviours:",
        &format!("{extra_deployments}\nbehaviours:"),
        1,
    );
    text.push_str(
        "  - service: frontend\n    namespace: prod\n    port: 9898\n    rps: 10\n  \
         - service: backend\n    namespace: prod\n    port: 9898\n    rps: 10\n",
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_canaries_run_concurrently_and_the_worst_verdict_is_the_exit_code() {
    let spec = three_canaries();
    let c = Cluster::start_in(three_apps(), &spec).await;
    let out = c.run(&["--max-parallel", "2"]).await;
    assert_exit(&out, 0);
    for name in ["podinfo", "frontend", "backend"] {
        assert!(
            stdout(&out).contains(&format!("{name}.prod: initialised")),
            "{}",
            stdout(&out)
        );
    }
    // Two healthy releases and a failing one: rolled back wins.
    let set = |name: &str, tag: &str| {
        c.world
            .set_image(
                "prod",
                name,
                "podinfod",
                &format!("ghcr.io/stefanprodan/podinfo:{tag}"),
            )
            .unwrap()
    };
    set("podinfo", "3.1.1");
    set("frontend", "3.1.1");
    set("backend", "3.1.2");
    let started = Instant::now();
    let out = c.run(&["-o", "json"]).await;
    let took = started.elapsed();
    assert_exit(&out, 1);
    let verdicts: Vec<(String, String, u8)> = crate::output::events(&out)
        .into_iter()
        .filter_map(|e| e.outcome.map(|o| (e.canary, o.result, o.exit_code)))
        .collect();
    let mut verdicts = verdicts;
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            ("backend".to_string(), "rolledBack".to_string(), 1),
            ("frontend".to_string(), "promoted".to_string(), 0),
            ("podinfo".to_string(), "promoted".to_string(), 0),
        ]
    );
    eprintln!("three canaries in one run: {took:?}");
    c.world.shutdown().await;
}

/// The three canaries of [`three_apps`], fast.
fn three_canaries() -> String {
    let named = |name: &str| {
        FAST.replace(
            "name: podinfo\n  namespace",
            &format!("name: {name}\n  namespace"),
        )
        .replace(
            "    name: podinfo\n  service",
            &format!("    name: {name}\n  service"),
        )
        .replace("podinfo-canary", &format!("{name}-canary"))
    };
    [FAST.to_string(), named("frontend"), named("backend")].join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_run_within_seconds_and_each_verdict_comes_out_when_reached() {
    // 3.1.3 is healthy but takes 12 s to turn Ready: podinfo's canary
    // starts late and its promotion (the primary's rollout) is still under
    // way at the deadline.
    let text = three_apps_text().replacen(
        "  \"3.1.2\":",
        "  \"3.1.3\":\n    successRate: 100%\n    latency: {median: 8ms, p99: 30ms}\n    \
         readinessDelay: 12s\n  \"3.1.2\":",
        1,
    );
    assert!(text.contains("readinessDelay: 12s"));
    let scenario = Scenario::from_yaml("slow-start.yaml", &text).expect("scenario parses");
    let c = Cluster::start_in(scenario, &three_canaries()).await;
    assert_exit(&c.run(&[]).await, 0);
    let set = |name: &str, tag: &str| {
        c.world
            .set_image(
                "prod",
                name,
                "podinfod",
                &format!("ghcr.io/stefanprodan/podinfo:{tag}"),
            )
            .unwrap()
    };
    set("podinfo", "3.1.3");
    set("frontend", "3.1.1");
    set("backend", "3.1.2");
    let deadline = Duration::from_secs(25);
    let started = Instant::now();
    let out = c.run(&["--timeout", "25s", "-o", "json"]).await;
    let took = started.elapsed();
    eprintln!("three canaries, --timeout 25s: ended after {took:?}");
    // The worst verdict wins: the failing release's rollback.
    assert_exit(&out, 1);
    assert!(
        took < deadline + Duration::from_secs(8),
        "the run outlived its deadline by {:?}",
        took - deadline
    );
    let events = crate::output::events(&out);
    let verdicts: Vec<(usize, String, String)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            e.outcome
                .as_ref()
                .map(|o| (i, e.canary.clone(), o.result.clone()))
        })
        .collect();
    let verdict = |name: &str| {
        verdicts
            .iter()
            .find(|(_, canary, _)| canary == name)
            .unwrap_or_else(|| panic!("no verdict for {name}: {verdicts:?}"))
            .clone()
    };
    assert_eq!(verdict("backend").2, "rolledBack");
    assert_eq!(verdict("frontend").2, "promoted");
    assert_eq!(verdict("podinfo").2, "timedOut");
    // Each verdict came out when its canary was done, not at the end.
    let last_podinfo_event = events
        .iter()
        .rposition(|e| e.canary == "podinfo" && e.outcome.is_none())
        .unwrap();
    assert!(verdict("backend").0 < last_podinfo_event, "{verdicts:?}");
    assert!(verdict("frontend").0 < last_podinfo_event, "{verdicts:?}");
    // podinfo's promotion was left as it was, not rolled back, and the
    // lease given up; the next run finishes it.
    assert!(
        matches!(c.phase().as_str(), "Promoting" | "Finalising"),
        "{}",
        c.phase()
    );
    assert!(c.state()["lease"].is_null(), "the lease is released");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.3"
    );
    // (The failed backend revision keeps the exit code at 1.)
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("backend.prod: this revision already failed"));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_prints_each_change_as_it_happens() {
    let c = Cluster::start().await;
    c.initialise().await;
    let watch = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .args(["status", "-w", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    interrupt(&watch);
    let out = finish(watch).await;
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("NAME")).count(), 1);
    let phases: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"Initialized"), "{text}");
    assert!(phases.contains(&"Progressing"), "{text}");
    assert_eq!(phases.last(), Some(&"Succeeded"), "{text}");
    let weights: Vec<u32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(weights.contains(&20) && weights.contains(&100), "{text}");
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_file_and_a_missing_permission_named_with_its_verb_and_resource() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    let out = crate::util::canary()
        .args(["status", "-f"])
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo   Initialized"),
        "{}",
        stdout(&out)
    );

    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    interrupt(&child);
    assert_exit(&finish(child).await, 130);
    // Someone who may read the canary but not change it.
    let read_only = canary_sim::rbac::Rules::from_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: viewer, namespace: prod}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch]
",
    )
    .unwrap();
    c.world.restrict(Some(read_only));
    let (out, _) = c.act("pause").await;
    c.world.restrict(None);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("permission denied")
            && err.contains("cannot patch resource \"deployments\" in API group \"apps\""),
        "{err}"
    );
    assert!(c.state()["paused"].is_null(), "nothing was changed");
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_driver_that_died_is_carried_out_when_its_lease_runs_out() {
    let c = Cluster::start_with(&slow()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    c.wait_for_analysis().await;
    child.kill().unwrap();
    let _ = child.wait();
    // The lease still looks live: the request is written and waited on.
    let (out, took) = c.act("abort").await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("stopped without acting; acting directly"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("podinfo.prod: aborted"),
        "{}",
        stdout(&out)
    );
    // Within the 30 s lease, and a poll of the lease every 2 s.
    assert!(took <= Duration::from_secs(33), "{took:?}");
    assert_eq!(c.phase(), "Aborted");
    assert_eq!(c.weights(), (100, 0));
    let primary = c
        .world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .unwrap();
    assert!(
        primary["metadata"]["annotations"]["canary.flagger.app/request"].is_null(),
        "the request is not left for a later driver"
    );
    c.world.shutdown().await;
}

/// The seed world with `n` apps (podinfo, app-01, ...), each with its own
/// traffic.
fn many_apps(n: usize) -> Scenario {
    let mut text = canary_sim::scenario::SEED.to_string();
    let mut deployments = String::new();
    let mut traffic = String::new();
    for i in 1..n {
        deployments.push_str(&format!(
            "  - name: app-{i:02}\n    namespace: prod\n    image: ghcr.io/stefanprodan/podinfo:3.1.0\n    \
             container: podinfod\n    replicas: 1\n    labels: {{app: app-{i:02}}}\n    ports:\n      \
             - {{name: http, containerPort: 9898}}\n"
        ));
        traffic.push_str(&format!(
            "  - service: app-{i:02}\n    namespace: prod\n    port: 9898\n    rps: 10\n"
        ));
    }
    text = text.replacen("\nbehaviours:", &format!("{deployments}\nbehaviours:"), 1);
    text.push_str(&traffic);
    Scenario::from_yaml("many-apps.yaml", &text).expect("scenario parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_healthy_canaries_in_one_run_are_all_promoted() {
    // The simulated cluster carries twenty apps at 10 requests a second
    // and twenty analyses at once: every check sees values, every healthy
    // release is promoted.
    const N: usize = 20;
    let names: Vec<String> = (0..N)
        .map(|i| {
            if i == 0 {
                "podinfo".to_string()
            } else {
                format!("app-{i:02}")
            }
        })
        .collect();
    let spec = names
        .iter()
        .map(|name| FAST.replace("podinfo", name))
        .collect::<Vec<_>>()
        .join("---\n");
    let c = Cluster::start_in(many_apps(N), &spec).await;
    let parallel = N.to_string();
    assert_exit(&c.run(&["-q", "--max-parallel", &parallel]).await, 0);
    for name in &names {
        c.world
            .set_image(
                "prod",
                name,
                "podinfod",
                "ghcr.io/stefanprodan/podinfo:3.1.1",
            )
            .unwrap();
    }
    let out = c.run(&["-o", "json", "--max-parallel", &parallel]).await;
    let mut verdicts: Vec<(String, String)> = crate::output::events(&out)
        .into_iter()
        .filter_map(|e| e.outcome.map(|o| (e.canary, o.result)))
        .collect();
    verdicts.sort();
    let mut expected: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), "promoted".to_string()))
        .collect();
    expected.sort();
    assert_eq!(verdicts, expected, "{}", stderr(&out));
    assert_exit(&out, 0);
    for name in &names {
        assert_eq!(
            c.image(&format!("{name}-primary")).await,
            "ghcr.io/stefanprodan/podinfo:3.1.1",
            "{name}"
        );
    }
    c.world.shutdown().await;
}
