//! `canary run` end to end: the built binary against the simulated
//! cluster, through its kubeconfig, as a user would run it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use canary_sim::scenario::{Dur, Scenario};
use canary_sim::world::World;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::util::{stderr, stdout};

/// The seed's podinfo canary, fast: 1 s interval, five 20% steps.
pub const FAST: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: linkerd
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 20
    threshold: 3
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 10s
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 10s
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.prod/
        timeout: 30s
        metadata:
          type: bash
          cmd: \"curl -sd 'test' http://podinfo-canary.prod:9898/token | grep token\"
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.prod/
        metadata:
          cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"
";

pub struct Cluster {
    pub world: World,
    /// Holds the kubeconfig and spec files for the test's lifetime.
    _dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub spec: PathBuf,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(FAST).await
    }

    pub async fn start_with(spec: &str) -> Cluster {
        Self::start_in(Scenario::seed(), spec).await
    }

    /// `spec` on the world of `scenario`, made quick to become ready.
    pub async fn start_in(mut scenario: Scenario, spec: &str) -> Cluster {
        scenario.readiness_delay = Dur(Duration::from_millis(200));
        let world = World::start(scenario).await.expect("world starts");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        world.write_kubeconfig(&kubeconfig).unwrap();
        let spec_path = dir.path().join("podinfo.yaml");
        std::fs::write(&spec_path, spec).unwrap();
        Cluster {
            world,
            _dir: dir,
            kubeconfig,
            spec: spec_path,
        }
    }

    /// Runs `canary run SPEC ARGS...` to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = crate::util::canary();
        cmd.arg("run")
            .arg(&self.spec)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .timeout(Duration::from_secs(120));
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_as(args, None)
    }

    pub fn spawn_as(&self, args: &[&str], holder: Option<&str>) -> std::process::Child {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"));
        if let Some(h) = holder {
            cmd.env("CANARY_LEASE_HOLDER", h);
        }
        cmd.arg("run")
            .arg(&self.spec)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    }

    pub async fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.world.client().await.unwrap(), "prod")
    }

    pub async fn image(&self, name: &str) -> String {
        let d = self.deployments().await.get(name).await.unwrap();
        d.spec.template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    }

    pub async fn replicas(&self, name: &str) -> i32 {
        let d = self.deployments().await.get(name).await.unwrap();
        d.spec.replicas.unwrap_or(1)
    }

    pub fn weights(&self) -> (i64, i64) {
        crate::util::podinfo_weights(&self.world).expect("traffic split exists")
    }

    pub fn set_image(&self, tag: &str) {
        self.world
            .set_image(
                "prod",
                "podinfo",
                "podinfod",
                &format!("ghcr.io/stefanprodan/podinfo:{tag}"),
            )
            .unwrap();
    }

    /// Polls `done` every 100 ms until it holds; fails after `limit`.
    pub async fn wait_until(&self, what: &str, limit: Duration, done: impl Fn(&Cluster) -> bool) {
        let deadline = std::time::Instant::now() + limit;
        while !done(self) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a run has set the first canary weight.
    pub async fn wait_for_analysis(&self) {
        self.wait_until("the run never started", Duration::from_secs(60), |c| {
            c.weights().1 > 0
        })
        .await;
    }

    pub async fn initialise(&self) {
        let out = self.run(&[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_initialises_the_primary_services_and_traffic_split() {
    let c = Cluster::start().await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(
            "podinfo.prod: initialised; the next change to deployment/podinfo starts an analysis"
        ),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("Initialization done! podinfo.prod"));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    assert_eq!(c.replicas("podinfo").await, 0);
    assert_eq!(c.replicas("podinfo-primary").await, 2);
    for svc in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        assert!(
            c.world.store().get("v1", "Service", "prod", svc).is_some(),
            "service {svc}"
        );
    }
    assert_eq!(c.weights(), (100, 0));

    // Nothing changed: nothing to do.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_routed_to_the_primary_before_its_pods_are_ready() {
    let c = Cluster::start().await;
    let mut child = c.spawn(&[]);
    let store = c.world.store();
    let primary_ready = || {
        store
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .and_then(|d| d["status"]["readyReplicas"].as_i64())
            .unwrap_or(0)
            > 0
    };
    let mut routed_seen = false;
    while child.try_wait().unwrap().is_none() {
        let apex_to_primary = store
            .get("v1", "Service", "prod", "podinfo")
            .is_some_and(|s| s["spec"]["selector"]["app"] == "podinfo-primary");
        let split = crate::util::podinfo_weights(&c.world).is_some();
        if apex_to_primary || split {
            routed_seen = true;
            assert!(
                primary_ready(),
                "traffic routed to a primary with no ready pod (apex to primary: \
                 {apex_to_primary}, traffic split: {split})"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(routed_seen);
    assert_eq!(c.weights(), (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_pods_writes_the_state_only_to_renew_the_lease() {
    // The canary takes 9 s to turn ready; the driver looks every second.
    let mut scenario = Scenario::seed();
    scenario
        .behaviours
        .get_mut("3.1.1")
        .expect("the seed has 3.1.1")
        .readiness_delay = Some(Dur(Duration::from_secs(9)));
    let c = Cluster::start_in(scenario, FAST).await;
    c.initialise().await;
    c.set_image("3.1.1");
    c.world.sim().clear_request_log();
    let started = std::time::Instant::now();
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    let waited = started.elapsed();
    let log = c.world.sim().request_log();
    let looks = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/deployments/podinfo"))
        .count();
    let writes = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/deployments/podinfo-primary"))
        .count();
    // The round that starts the analysis, a lease renewal every 7.5 s of
    // the wait (however long a busy machine makes it) and the round that
    // sets the first weight; not one per look.
    let renewals = (waited.as_secs_f64() / 7.5) as usize + 1;
    assert!(
        writes <= 2 + renewals,
        "{writes} writes of the primary in {waited:?} of waiting ({looks} looks)"
    );
    // The looks read the watched Deployments: the first round reads both,
    // a renewal reads the primary, and a round right after a write may
    // read what the watch has not yet delivered; not two reads a look.
    assert!(
        looks <= 4 + 3 * renewals,
        "{looks} reads of the Deployments in {waited:?} of waiting"
    );
    crate::util::interrupt(&child);
    assert_exit(&crate::util::finish(child).await, 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_release_is_promoted() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    let log = stderr(&out);
    for line in [
        "New revision detected! Scaling up podinfo.prod",
        "Pre-rollout check acceptance-test passed",
        "Advance podinfo.prod canary weight 20",
        "Advance podinfo.prod canary weight 100",
        "Copying podinfo.prod template spec to podinfo-primary.prod",
        "Promotion completed! Scaling down podinfo.prod",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }
    assert!(stdout(&out).contains("podinfo.prod: promoted"));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(c.replicas("podinfo").await, 0);
    assert_eq!(c.weights(), (100, 0));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_release_is_rolled_back_and_the_primary_is_untouched() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    let log = stderr(&out);
    assert!(log.contains("Halt podinfo.prod advancement"), "{log}");
    assert!(
        log.contains("Rolling back podinfo.prod failed checks threshold reached 3"),
        "{log}"
    );
    assert!(
        log.contains("Canary failed! Scaling down podinfo.prod"),
        "{log}"
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    assert_eq!(c.replicas("podinfo").await, 0);
    assert_eq!(c.weights(), (100, 0));

    // The same revision again: the verdict stands unless retried.
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("already failed"), "{}", stdout(&out));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_deploys_the_new_version_and_analyses_it() {
    let c = Cluster::start().await;
    c.initialise().await;
    let out = c
        .run(&["--set-image", "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1"])
        .await;
    assert_exit(&out, 0);
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    let out = c.run(&["--set-image", "nope=x:1"]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("has no container `nope`"),
        "{}",
        stderr(&out)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_change_picks_up_a_later_change() {
    use std::io::BufRead;
    let c = Cluster::start().await;
    c.initialise().await;
    let mut child = c.spawn(&["--wait-for-change", "30s"]);
    // Change the target once the run says it waits for a change.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr_lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in stderr_lines.lines().map_while(Result::ok) {
            if line.contains("Waiting up to 30s for a change") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the run says it waits for a change");
    c.set_image("3.1.1");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = reader.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_change_alone_starts_an_analysis() {
    let c = Cluster::start().await;
    let client = c.world.client().await.unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "prod");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "podinfo-settings", "namespace": "prod"},
        "data": {"color": "blue"}
    }))
    .unwrap();
    cms.create(&Default::default(), &cm).await.unwrap();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfod", "envFrom": [{"configMapRef": {"name": "podinfo-settings"}}]}
    ]}}}});
    c.deployments()
        .await
        .patch(
            "podinfo",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    c.initialise().await;
    assert!(
        c.world
            .store()
            .get("v1", "ConfigMap", "prod", "podinfo-settings-primary")
            .is_some()
    );
    let cm_patch = serde_json::json!({"data": {"color": "green"}});
    cms.patch(
        "podinfo-settings",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&cm_patch),
    )
    .await
    .unwrap();
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("New revision detected!"));
    let copy = c
        .world
        .store()
        .get("v1", "ConfigMap", "prod", "podinfo-settings-primary")
        .unwrap();
    assert_eq!(copy["data"]["color"], "green");
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_while_the_first_holds_the_lease() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut first = c.spawn(&[]);
    // Wait until the first run holds the lease and has started its analysis.
    c.wait_for_analysis().await;
    let out = c.run(&[]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("is being driven by"),
        "{}",
        stderr(&out)
    );
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_gate_holds_the_rollout_until_it_is_opened() {
    let spec = FAST.replace(
        "    webhooks:\n",
        "    webhooks:\n      - name: approval\n        type: confirm-promotion\n        url: http://flagger-loadtester.prod/gate/check\n",
    );
    let c = Cluster::start_with(&spec).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    // The gate is closed by default: the rollout reaches 100% and waits.
    c.wait_until("never reached 100%", Duration::from_secs(90), |c| {
        c.weights() == (0, 100)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.weights(), (0, 100), "the closed gate must hold the step");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    let client = reqwest::Client::new();
    let token = kubeconfig_token(&c.kubeconfig);
    let url = format!(
        "{}{}/gate/open",
        c.world.sim().url(),
        c.world.loadtester_proxy_path().unwrap()
    );
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(serde_json::json!({"name": "podinfo", "namespace": "prod"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("waiting for promotion approval approval"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

fn kubeconfig_token(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    v["users"][0]["user"]["token"].as_str().unwrap().to_string()
}

/// Kills `canary run` with SIGKILL at many moments of a rollout and runs
/// it again each time: every restart converges to the same verdict, and at
/// every observation the weights sum to 100 and the primary exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_and_converge_to_the_same_verdict() {
    // Twenty 5% steps, so the rollout outlasts the twenty kills.
    let c = Cluster::start_with(&FAST.replace("stepWeight: 20", "stepWeight: 5")).await;
    c.initialise().await;
    c.set_image("3.1.1");
    // Between 100 and 700 ms into each restart: every phase of the rollout
    // (readiness, pre-rollout hooks, steps, promotion) is hit.
    let kill_points_ms: Vec<u64> = (0..20).map(|i| 100 + (i * 137) % 600).collect();
    let mut kills = 0;
    let mut last = None;
    for wait in kill_points_ms {
        // The same driver identity each time, as a retried CI job has: it
        // takes its own lease back at once.
        let mut child = c.spawn_as(&[], Some("ci-job-42"));
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let (p, w) = c.weights();
        assert_eq!(p + w, 100);
        assert!(
            c.world
                .store()
                .get("apps/v1", "Deployment", "prod", "podinfo-primary")
                .is_some()
        );
        match child.try_wait().unwrap() {
            Some(status) => {
                last = status.code();
                break;
            }
            None => {
                child.kill().unwrap();
                let _ = child.wait();
                kills += 1;
            }
        }
    }
    let out = {
        let child = c.spawn_as(&[], Some("ci-job-42"));
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    };
    if last.is_none() {
        assert_exit(&out, 0);
    }
    assert_eq!(kills, 20, "the rollout ended after {kills} kills");
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(c.replicas("podinfo").await, 0);
    c.world.shutdown().await;
}

/// The README's first command: the walkthrough's story, start to end.
#[test]
fn the_demo_initialises_promotes_and_rolls_back() {
    let out = crate::util::canary()
        .arg("demo")
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text = stdout(&out);
    for line in [
        "=> initialised (canary run would exit 0)",
        "=> promoted (canary run would exit 0)",
        "=> rolled back (canary run would exit 1)",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let log = stderr(&out);
    assert!(
        log.contains("Advance podinfo.prod canary weight 100"),
        "{log}"
    );
    assert!(
        log.contains("Rolling back podinfo.prod failed checks threshold reached 5"),
        "{log}"
    );
    // The healthy 3.1.1 passes every check it makes: the only failed
    // checks are 3.1.2's five, none of them for want of values.
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" check failed: "))
        .collect();
    assert_eq!(failed.len(), 5, "{log}");
    assert!(failed.iter().all(|l| !l.contains("no value")), "{log}");
    let passed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" check passed: "))
        .collect();
    assert!(
        passed
            .iter()
            .any(|l| l.contains("request-success-rate 100.00%")),
        "{log}"
    );
    assert!(!text.contains("no value"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_flagger_manages_is_left_alone() {
    let c = Cluster::start().await;
    let target = c
        .world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo")
        .unwrap();
    let mut primary = target.clone();
    primary["metadata"] = serde_json::json!({
        "name": "podinfo-primary",
        "namespace": "prod",
        "labels": {"app": "podinfo-primary"},
        "ownerReferences": [{
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
            "uid": "5c5b1e0e-0000-4000-8000-000000000001", "controller": true
        }]
    });
    primary["spec"]["selector"] = serde_json::json!({"matchLabels": {"app": "podinfo-primary"}});
    primary["spec"]["template"]["metadata"]["labels"] =
        serde_json::json!({"app": "podinfo-primary"});
    primary.as_object_mut().unwrap().remove("status");
    c.world.store().create(primary).unwrap();
    let out = c.run(&[]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("managed by Flagger"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.replicas("podinfo").await, 2);
    assert!(
        c.world
            .store()
            .get("v1", "Service", "prod", "podinfo")
            .is_none()
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_target_gets_a_primary_autoscaler() {
    let spec = FAST.replace(
        "  service:\n",
        "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n  service:\n",
    );
    let c = Cluster::start_with(&spec).await;
    c.world
        .store()
        .create(serde_json::json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "minReplicas": 2,
                "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]
            }
        }))
        .unwrap();
    c.initialise().await;
    let hpa = c
        .world
        .store()
        .get(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "prod",
            "podinfo-primary",
        )
        .expect("primary autoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
    assert_eq!(hpa["spec"]["maxReplicas"], 4);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_keeps_the_state_and_frees_the_canary_for_the_next_run() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    crate::util::interrupt(&child);
    let out = crate::util::finish(child).await;
    assert_exit(&out, 130);
    assert!(
        stderr(&out).contains("interrupted: stopping, the state is kept"),
        "{}",
        stderr(&out)
    );
    // Another process resumes at once: the lease was released.
    let (_, weight) = c.weights();
    assert!(
        weight > 0,
        "the interrupted run left the traffic where it was"
    );
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        !stderr(&out).contains("New revision detected"),
        "resumed, not restarted"
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_canary_its_driver_and_its_history() {
    let c = Cluster::start().await;
    let status = |args: &[&str]| {
        let mut cmd = crate::util::canary();
        cmd.arg("status")
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["-n", "prod"])
            .args(args);
        cmd.output().unwrap()
    };
    let out = status(&[]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("No canaries found."));

    c.initialise().await;
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    // A Failed canary: exit 1 (the listing is printed all the same).
    let out = status(&[]);
    assert_exit(&out, 1);
    let table = stdout(&out);
    let row = table.lines().find(|l| l.contains("podinfo")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["podinfo", "Failed", "0", "3"], "{table}");

    let out = status(&["podinfo", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["phase"], "Failed");
    assert_eq!(v["status"]["canary"]["driver"], serde_json::Value::Null);
    let history = v["status"]["canary"]["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["message"].as_str().unwrap().contains("Canary failed!"))
    );

    // A driver killed mid-analysis is shown as lost once its lease runs out.
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    c.wait_for_analysis().await;
    child.kill().unwrap();
    let _ = child.wait();
    let out = status(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"][0]["status"]["canary"]["driver"]["alive"], true);
    tokio::time::sleep(LEASE_FOR_TESTS).await;
    let out = status(&[]);
    assert!(stdout(&out).contains("lost ("), "{}", stdout(&out));

    let out = status(&["nope"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no canary named `nope`"));
    c.world.shutdown().await;
}

/// How long to wait for a killed driver's lease to run out.
pub const LEASE_FOR_TESTS: Duration = Duration::from_secs(31);

/// Stores `state` (with a lease inside, as documents were written before
/// the lease had its own annotation) on podinfo's primary, and no lease
/// annotation.
async fn store_old_state(c: &Cluster, state: &serde_json::Value) {
    let body = serde_json::json!({"metadata": {"annotations": {
        "canary.flagger.app/state": state.to_string(),
        "canary.flagger.app/lease": null,
    }}});
    c.deployments()
        .await
        .patch(
            "podinfo-primary",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&body),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_inside_a_state_document_of_an_earlier_version_is_respected() {
    let c = Cluster::start().await;
    c.initialise().await;
    let primary = || {
        c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .unwrap()
    };
    let mut state: serde_json::Value = serde_json::from_str(
        primary()["metadata"]["annotations"]["canary.flagger.app/state"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let lease = |renewed_ms: i64| {
        serde_json::json!({
            "holder": "release-bot",
            "renewTime": canary_core::time::Time(renewed_ms).to_rfc3339(),
            "durationSeconds": 60,
        })
    };
    state["lease"] = lease(now_ms);
    store_old_state(&c, &state).await;
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("is being driven by release-bot"),
        "{}",
        stderr(&out)
    );
    // Once that lease has run out, the run takes over, keeps its lease
    // beside the document and gives it up at the end.
    state["lease"] = lease(now_ms - 120_000);
    store_old_state(&c, &state).await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    let annotations = &primary()["metadata"]["annotations"];
    let text = annotations["canary.flagger.app/state"].as_str().unwrap();
    assert!(!text.contains("lease"), "{text}");
    assert!(
        annotations["canary.flagger.app/lease"].is_null(),
        "{annotations}"
    );
    c.world.shutdown().await;
}
