//! `canary revert` end to end: the target given back and everything
//! `canary` made removed, as Flagger's `revertOnDeletion`, on Linkerd and
//! on the `kubernetes` provider; what a user made left alone; refused
//! under a live driver; stopped by a target that does not become ready;
//! stopped by SIGTERM; killed half way and run again. The built binary
//! against the simulated cluster.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use canary_sim::scenario::Scenario;
use canary_sim::store::Subresource;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{finish, interrupt, stderr, stdout, terminate};

/// `canary revert podinfo -n prod`, as `holder` when given.
fn revert_cmd(c: &Cluster, holder: Option<&str>) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"));
    cmd.args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("CANARY_LEASE_HOLDER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(h) = holder {
        cmd.env("CANARY_LEASE_HOLDER", h);
    }
    cmd
}

async fn revert(c: &Cluster, holder: Option<&str>) -> Output {
    let child = revert_cmd(c, holder).spawn().unwrap();
    finish(child).await
}

fn spawn_revert(c: &Cluster, holder: Option<&str>) -> Child {
    revert_cmd(c, holder).spawn().unwrap()
}

/// `canary ARGS... --kubeconfig`, e.g. `status -n prod`.
async fn canary(c: &Cluster, args: &[&str]) -> Output {
    let mut cmd = crate::util::canary();
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn get(c: &Cluster, api_version: &str, kind: &str, name: &str) -> Option<Value> {
    c.world.store().get(api_version, kind, "prod", name)
}

fn deployment(c: &Cluster, name: &str) -> Option<Value> {
    get(c, "apps/v1", "Deployment", name)
}

fn traffic_split(c: &Cluster) -> Option<Value> {
    get(c, "split.smi-spec.io/v1alpha2", "TrafficSplit", "podinfo")
}

fn apex_selector(c: &Cluster) -> Value {
    get(c, "v1", "Service", "podinfo").expect("the apex Service stays")["spec"]["selector"].clone()
}

/// The state annotation of the primary.
fn primary_state(c: &Cluster) -> Value {
    let d = deployment(c, "podinfo-primary").expect("primary exists");
    let state = crate::util::stored_state(&d);
    assert!(!state.is_null(), "state annotation");
    state
}

/// Waits (polling the store) until `done` holds.
async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Successful answers per second from the pods of Deployment `name` over
/// the last two seconds, as Linkerd records them, read through the
/// Prometheus behind the service proxy.
async fn answer_rate(c: &Cluster, name: &str) -> f64 {
    let q = format!(
        "sum(rate(response_total{{namespace=\"prod\",deployment=\"{name}\",direction=\"inbound\",classification=\"success\"}}[2s]))"
    );
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!(
        "{}/api/v1/query?query={enc}",
        c.world.prometheus_proxy_path().unwrap()
    );
    let client = c.world.client().await.unwrap();
    let req = http::Request::builder()
        .uri(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0.0, |s| s.parse().unwrap())
}

/// FAST with the target's HPA named as its autoscaler.
fn with_autoscaler() -> String {
    FAST.replacen(
        "\n  service:\n",
        "\n  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    \
         name: podinfo\n  service:\n",
        1,
    )
}

/// Gives podinfo an HPA, and a ConfigMap and a Secret it uses, before
/// the first run.
fn add_hpa_and_configs(c: &Cluster) {
    let store = c.world.store();
    for obj in [
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "podinfo-config", "namespace": "prod"},
            "data": {"color": "blue"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "podinfo-secret", "namespace": "prod"},
            "data": {"key": "czNjcjN0"}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": "prod"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 90}}}],
        }}),
    ] {
        store.create(obj).unwrap();
    }
    store
        .modify(
            "apps/v1",
            "Deployment",
            "prod",
            "podinfo",
            Subresource::Main,
            |d| {
                d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = json!([
                    {"configMapRef": {"name": "podinfo-config"}},
                    {"secretRef": {"name": "podinfo-secret"}},
                ]);
            },
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_gives_the_target_back_and_removes_everything_canary_made() {
    let c = Cluster::start_with(&with_autoscaler()).await;
    add_hpa_and_configs(&c);
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("podinfo.prod: promoted"));
    assert_eq!(c.replicas("podinfo").await, 0);
    let primary_replicas = c.replicas("podinfo-primary").await;
    for (api_version, kind, name) in [
        ("v1", "ConfigMap", "podinfo-config-primary"),
        ("v1", "Secret", "podinfo-secret-primary"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "podinfo-primary",
        ),
    ] {
        assert!(get(&c, api_version, kind, name).is_some(), "{kind} {name}");
    }

    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    for line in [
        "podinfo.prod: deployment/podinfo scaled to 2 replicas from 0 (as deployment/podinfo-primary)",
        "podinfo.prod: deployment/podinfo is ready (2/2 replicas) after",
        "podinfo.prod: phase Terminating (was Succeeded)",
        "podinfo.prod: service/podinfo selects the target's pods (app=podinfo)",
        "podinfo.prod: trafficsplit/podinfo deleted",
        "podinfo.prod: horizontalpodautoscaler/podinfo-primary deleted",
        "podinfo.prod: service/podinfo-primary deleted",
        "podinfo.prod: service/podinfo-canary deleted",
        "podinfo.prod: configmap/podinfo-config-primary deleted",
        "podinfo.prod: secret/podinfo-secret-primary deleted",
        "podinfo.prod: deployment/podinfo-primary deleted",
        "podinfo.prod: reverted: deployment/podinfo serves service/podinfo with 2 replicas, \
         and canary no longer manages it",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    // The steps in Flagger's order, the primary last.
    let position = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}"));
    assert!(position("scaled to") < position("is ready"));
    assert!(position("is ready") < position("selects the target's pods"));
    assert!(position("selects the target's pods") < position("trafficsplit/podinfo deleted"));
    assert!(
        position("trafficsplit/podinfo deleted") < position("deployment/podinfo-primary deleted")
    );
    assert!(
        !stderr(&out).contains("warning"),
        "the target runs the promoted revision: {}",
        stderr(&out)
    );

    // What canary made is gone; what the user made is there.
    assert!(traffic_split(&c).is_none());
    assert!(deployment(&c, "podinfo-primary").is_none());
    for (api_version, kind, name) in [
        ("v1", "Service", "podinfo-primary"),
        ("v1", "Service", "podinfo-canary"),
        ("v1", "ConfigMap", "podinfo-config-primary"),
        ("v1", "Secret", "podinfo-secret-primary"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "podinfo-primary",
        ),
    ] {
        assert!(get(&c, api_version, kind, name).is_none(), "{kind} {name}");
    }
    for (api_version, kind, name) in [
        ("v1", "ConfigMap", "podinfo-config"),
        ("v1", "Secret", "podinfo-secret"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "podinfo"),
    ] {
        assert!(get(&c, api_version, kind, name).is_some(), "{kind} {name}");
    }
    let apex = get(&c, "v1", "Service", "podinfo").expect("the apex Service stays");
    assert_eq!(apex["spec"]["selector"], json!({"app": "podinfo"}));
    assert!(
        apex["metadata"]["labels"]["app.kubernetes.io/managed-by"].is_null(),
        "the apex is the application's own now: {apex}"
    );
    // The target runs the promoted image with the primary's replicas.
    assert_eq!(
        c.image("podinfo").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(c.replicas("podinfo").await, primary_replicas);
    let target = deployment(&c, "podinfo").unwrap();
    assert_eq!(target["status"]["readyReplicas"], json!(primary_replicas));

    let out = canary(&c, &["status", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out).trim(), "No canaries found.");

    // The clients of service/podinfo (10 req/s) now reach the target's
    // pods, and only them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let target = answer_rate(&c, "podinfo").await;
    let primary = answer_rate(&c, "podinfo-primary").await;
    assert!(
        (7.0..=13.0).contains(&target) && primary == 0.0,
        "answers per second: deployment/podinfo {target}, deployment/podinfo-primary {primary}"
    );

    // Again: nothing to do.
    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out).trim(),
        "podinfo.prod: nothing to revert: there is no deployment/podinfo-primary, so canary \
         does not manage deployment/podinfo"
    );
    // A name nothing answers to is a mistake.
    let out = canary(&c, &["revert", "nope", "-n", "prod"]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no canary named `nope` in namespace prod"),
        "{}",
        stderr(&out)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_is_refused_while_a_driver_holds_the_lease() {
    let slow = FAST
        .replace("interval: 1s", "interval: 2s")
        .replace("stepWeight: 20", "stepWeight: 10");
    let c = Cluster::start_with(&slow).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let run = c.spawn_as(&[], Some("ci-job-42"));
    c.wait_for_analysis().await;

    let out = revert(&c, None).await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("podinfo.prod is driven by ci-job-42")
            && err.contains("`canary abort podinfo -n prod`")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let state = primary_state(&c);
    assert_eq!(state["phase"], "Progressing");
    assert_eq!(state["lease"]["holder"], "ci-job-42");
    assert!(traffic_split(&c).is_some());
    assert_eq!(apex_selector(&c), json!({"app": "podinfo-primary"}));
    for svc in ["podinfo-primary", "podinfo-canary"] {
        assert!(get(&c, "v1", "Service", svc).is_some(), "{svc}");
    }

    // Stopped, the run leaves the analysis half way and no driver: the
    // target, under analysis, is given back as it is, with a warning.
    interrupt(&run);
    assert_exit(&finish(run).await, 130);
    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("warning: deployment/podinfo runs revision")
            && stderr(&out).contains("(phase Progressing); once reverted it serves all traffic"),
        "{}",
        stderr(&out)
    );
    assert!(deployment(&c, "podinfo-primary").is_none());
    assert!(traffic_split(&c).is_none());
    assert_eq!(apex_selector(&c), json!({"app": "podinfo"}));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_does_not_become_ready_stops_the_revert_with_exit_3() {
    let mut text = canary_sim::scenario::SEED.to_string();
    text = text.replacen(
        "\nbehaviours:\n",
        "\nbehaviours:\n  \"3.1.3\": {broken: true}\n",
        1,
    );
    let scenario = Scenario::from_yaml("broken.yaml", &text).unwrap();
    let spec = FAST.replacen(
        "  provider: linkerd\n",
        "  provider: linkerd\n  progressDeadlineSeconds: 2\n",
        1,
    );
    let c = Cluster::start_in(scenario, &spec).await;
    c.initialise().await;
    c.set_image("3.1.3");

    let out = revert(&c, None).await;
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("warning: deployment/podinfo runs revision")
            && err.contains("podinfo.prod: waiting up to 2s for deployment/podinfo to be ready")
            && err.contains(
                "error: podinfo.prod: deployment/podinfo is not ready after 2s (0/2 replicas \
                 ready; the canary's progressDeadlineSeconds is 2): nothing else was changed, \
                 service/podinfo still sends traffic to deployment/podinfo-primary"
            ),
        "{err}"
    );
    assert!(!stdout(&out).contains("Terminating"), "{}", stdout(&out));
    // The scale stays; nothing after it happened.
    assert_eq!(c.replicas("podinfo").await, 2);
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(apex_selector(&c), json!({"app": "podinfo-primary"}));
    let state = primary_state(&c);
    assert_eq!(state["phase"], "Initialized");
    assert!(state["lease"].is_null(), "the lease is given up: {state}");

    // Made ready, the revert finishes.
    c.set_image("3.1.0");
    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("deployment/podinfo already has 2 replicas"),
        "{}",
        stdout(&out)
    );
    assert!(deployment(&c, "podinfo-primary").is_none());
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_revert_with_exit_143_and_frees_it_for_anyone() {
    let mut text = canary_sim::scenario::SEED.to_string();
    text = text.replacen(
        "\nbehaviours:\n",
        "\nbehaviours:\n  \"3.1.3\": {broken: true}\n",
        1,
    );
    let scenario = Scenario::from_yaml("broken.yaml", &text).unwrap();
    let spec = FAST.replacen(
        "  provider: linkerd\n",
        "  provider: linkerd\n  progressDeadlineSeconds: 60\n",
        1,
    );
    let c = Cluster::start_in(scenario, &spec).await;
    c.initialise().await;
    c.set_image("3.1.3");

    // Stopped while it waits for a target that does not become ready.
    let child = spawn_revert(&c, Some("ops-a"));
    wait_for(
        "the revert never takes the lease",
        Duration::from_secs(20),
        || primary_state(&c)["lease"]["holder"] == json!("ops-a"),
    )
    .await;
    wait_for(
        "the target is never scaled",
        Duration::from_secs(20),
        || deployment(&c, "podinfo").unwrap()["spec"]["replicas"] == json!(2),
    )
    .await;
    terminate(&child);
    let out = finish(child).await;
    assert_exit(&out, 143);
    assert!(
        stderr(&out).contains(
            "podinfo.prod: terminated (SIGTERM): the revert stopped part way; `canary revert \
             podinfo -n prod` finishes it"
        ),
        "{}",
        stderr(&out)
    );
    let state = primary_state(&c);
    assert!(state["lease"].is_null(), "the lease is given up: {state}");
    assert_eq!(state["phase"], "Initialized");

    // Someone else finishes it at once, once the target can be ready.
    c.set_image("3.1.0");
    let out = revert(&c, Some("ops-b")).await;
    assert_exit(&out, 0);
    assert!(deployment(&c, "podinfo-primary").is_none());
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_killed_half_way_finishes_when_run_again() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    assert_exit(&c.run(&[]).await, 0);
    // Every API call takes a while, so the revert can be killed between
    // two of them.
    c.world.faults().set_latency(Duration::from_millis(100));

    // Killed right after scaling the target.
    let mut child = spawn_revert(&c, Some("ops"));
    wait_for(
        "the target is never scaled",
        Duration::from_secs(20),
        || deployment(&c, "podinfo").unwrap()["spec"]["replicas"] == json!(2),
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    assert!(traffic_split(&c).is_some());
    assert_eq!(primary_state(&c)["phase"], "Succeeded");

    // Killed again, right after the traffic split went.
    let mut child = spawn_revert(&c, Some("ops"));
    wait_for(
        "the traffic split is never deleted",
        Duration::from_secs(20),
        || traffic_split(&c).is_none(),
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    c.world.faults().clear();
    assert!(deployment(&c, "podinfo-primary").is_some());
    assert_eq!(apex_selector(&c), json!({"app": "podinfo"}));
    assert_eq!(primary_state(&c)["phase"], "Terminating");

    // Half reverted: status says so, and neither a run nor another revert
    // (while the killed one's lease lasts) touches it.
    let out = canary(&c, &["status", "-n", "prod"]).await;
    assert!(stdout(&out).contains("Terminating"), "{}", stdout(&out));
    let out = c.run(&[]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains(
            "podinfo.prod is being reverted (`canary revert` by ops); run `canary revert \
             podinfo -n prod` to finish it"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        traffic_split(&c).is_none(),
        "the run built nothing up again"
    );
    let out = revert(&c, Some("someone-else")).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("podinfo.prod is being reverted by ops"),
        "{}",
        stderr(&out)
    );

    // The same identity (a retried job) finishes the job at once.
    let out = revert(&c, Some("ops")).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    for line in [
        "deployment/podinfo already has 2 replicas",
        "already Terminating: finishing an earlier revert",
        "service/podinfo already selects the target's pods (app=podinfo)",
        "trafficsplit/podinfo already gone",
        "deployment/podinfo-primary deleted",
        "podinfo.prod: reverted",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(deployment(&c, "podinfo-primary").is_none());
    for svc in ["podinfo-primary", "podinfo-canary"] {
        assert!(get(&c, "v1", "Service", svc).is_none(), "{svc}");
    }
    assert_eq!(
        c.image("podinfo").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_leaves_what_the_user_made_and_restores_the_applied_selector() {
    let c = Cluster::start().await;
    // The user's own TrafficSplit and apex Service, applied with kubectl
    // before canary ever ran.
    let applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "prod"},
        "spec": {"selector": {"app": "podinfo", "tier": "web"},
            "ports": [{"name": "http", "port": 9898}]}});
    let mut apex = applied.clone();
    apex["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()
    });
    c.world.store().create(apex).unwrap();
    c.world
        .store()
        .create(
            json!({"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {"service": "podinfo", "backends": [
                {"service": "podinfo-canary", "weight": 0},
                {"service": "podinfo-primary", "weight": 100}]}}),
        )
        .unwrap();
    c.initialise().await;
    assert_eq!(apex_selector(&c), json!({"app": "podinfo-primary"}));

    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    for line in [
        "service/podinfo selects the target's pods (app=podinfo,tier=web)",
        "trafficsplit/podinfo left alone: canary did not create it (it has no \
         app.kubernetes.io/managed-by=canary label)",
        "service/podinfo-canary deleted",
        "deployment/podinfo-primary deleted",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(traffic_split(&c).is_some());
    assert_eq!(apex_selector(&c), json!({"app": "podinfo", "tier": "web"}));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_kubernetes_provider_only_the_service_selector_moves() {
    let spec = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
  analysis:
    interval: 1s
    iterations: 2
    threshold: 1
";
    let c = Cluster::start_with(spec).await;
    c.initialise().await;
    assert!(traffic_split(&c).is_none());
    assert_eq!(apex_selector(&c), json!({"app": "podinfo-primary"}));

    let out = revert(&c, None).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(!text.contains("trafficsplit"), "{text}");
    for line in [
        "service/podinfo selects the target's pods (app=podinfo)",
        "service/podinfo-primary deleted",
        "deployment/podinfo-primary deleted",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = answer_rate(&c, "podinfo").await;
    assert!((7.0..=13.0).contains(&rate), "{rate} answers per second");
    c.world.shutdown().await;
}
