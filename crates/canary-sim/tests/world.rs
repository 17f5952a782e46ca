//! The simulated world seen from outside, as `canary` will see it: the real
//! `kube` client against Deployments that roll out, traffic recorded as
//! Linkerd series and queried through the Prometheus behind the service
//! proxy, and the flagger-loadtester protocol.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use canary_core::queries::builtin::builtin_query;
use canary_core::queries::template::{TemplateModel, render};
use canary_sim::scenario::{Dur, Scenario};
use canary_sim::world::World;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn world(yaml: &str) -> (World, Client) {
    let scenario = Scenario::from_yaml("test.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let world = World::start(scenario).await.expect("world starts");
    let client = world.client().await.expect("client");
    (world, client)
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw request through the authenticated client: (status, body).
async fn raw(client: &Client, method: &str, path: &str, body: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = client.send(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// An instant query through the Prometheus behind the service proxy:
/// (labels, value) per series.
async fn query(world: &World, client: &Client, q: &str) -> Vec<(Value, f64)> {
    let base = world
        .prometheus_proxy_path()
        .expect("scenario has a prometheus");
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = raw(
        client,
        "GET",
        &format!("{base}/api/v1/query?query={enc}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn status_of(d: &Deployment) -> (i64, i64, i32, i32, i32, i32, i32) {
    let s = d.status.clone().unwrap_or_default();
    (
        d.metadata.generation.unwrap_or(0),
        s.observed_generation.unwrap_or(0),
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.unavailable_replicas.unwrap_or(0),
    )
}

fn condition(d: &Deployment, kind: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(kind))
        .map(|c| {
            (
                c.status.clone().unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
            )
        })
}

/// Rolled out as `kubectl rollout status` and Flagger judge it.
fn rolled_out(d: &Deployment, desired: i32) -> bool {
    let (generation, observed, replicas, updated, ready, available, _) = status_of(d);
    observed >= generation
        && updated == desired
        && ready == desired
        && available == desired
        && replicas == desired
}

const PODINFO: &str = "
namespace: prod
readinessDelay: 300ms
namespaces: [{name: prod, mesh: linkerd}]
deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 2
    ports: [{name: http, containerPort: 9898}]
    progressDeadlineSeconds: 1
behaviours:
  \"3.1.3\": {broken: true}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_ready_after_the_delay_and_reports_its_status_and_conditions() {
    let started = Instant::now();
    let (world, client) = world(PODINFO).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    let d = api.get("podinfo").await.unwrap();
    assert_eq!(
        status_of(&d).4,
        0,
        "no pod is ready before the delay: {:?}",
        d.status
    );

    let d = eventually("podinfo ready", Duration::from_secs(5), || async {
        let d = api.get("podinfo").await.ok()?;
        rolled_out(&d, 2).then_some(d)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "ready too early"
    );
    assert_eq!(status_of(&d), (1, 1, 2, 2, 2, 2, 0));
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );

    let pods: Api<Pod> = Api::namespaced(client, "prod");
    let list = pods
        .list(&ListParams::default().labels("app=podinfo"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    for p in &list.items {
        let labels = p.metadata.labels.as_ref().unwrap();
        assert!(labels.contains_key("pod-template-hash"), "{labels:?}");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("podinfo-"));
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            status
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
        assert!(status.pod_ip.is_some());
    }
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_rolls_out_through_observed_generation_and_updated_replicas() {
    let (world, client) = world(PODINFO).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    eventually("podinfo ready", Duration::from_secs(5), || async {
        rolled_out(&api.get("podinfo").await.ok()?, 2).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let hashes = |list: &[Pod]| -> Vec<String> {
        list.iter()
            .map(|p| p.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone())
            .collect()
    };
    let old = pods
        .list(&ListParams::default().labels("app=podinfo"))
        .await
        .unwrap()
        .items;
    let old_hash = hashes(&old)[0].clone();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:3.1.1"}]}}}});
    let after = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert!(
        !rolled_out(&after, 2),
        "a fresh generation is not rolled out yet"
    );

    // Watch the rollout go through its intermediate states.
    let surged = AtomicBool::new(false);
    let partly_updated = AtomicBool::new(false);
    let done = eventually("the rollout", Duration::from_secs(6), || async {
        let d = api.get("podinfo").await.ok()?;
        let (_, observed, replicas, updated, ..) = status_of(&d);
        if replicas > 2 {
            surged.store(true, Ordering::SeqCst);
        }
        if observed == 2 && updated < 2 {
            partly_updated.store(true, Ordering::SeqCst);
        }
        rolled_out(&d, 2).then_some(d)
    })
    .await;
    assert!(
        surged.load(Ordering::SeqCst),
        "a rolling update surges above the desired replicas"
    );
    assert!(
        partly_updated.load(Ordering::SeqCst),
        "updatedReplicas lags the new generation"
    );
    assert_eq!(status_of(&done), (2, 2, 2, 2, 2, 2, 0));
    assert_eq!(
        condition(&done, "Progressing").unwrap().1,
        "NewReplicaSetAvailable"
    );

    let new = pods
        .list(&ListParams::default().labels("app=podinfo"))
        .await
        .unwrap()
        .items;
    assert_eq!(new.len(), 2);
    for (p, hash) in new.iter().zip(hashes(&new)) {
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:3.1.1")
        );
        assert_ne!(hash, old_hash);
    }
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_image_ends_in_progress_deadline_exceeded() {
    let (world, client) = world(PODINFO).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    eventually("podinfo ready", Duration::from_secs(5), || async {
        rolled_out(&api.get("podinfo").await.ok()?, 2).then_some(())
    })
    .await;
    world
        .set_image(
            "prod",
            "podinfo",
            "podinfod",
            "ghcr.io/stefanprodan/podinfo:3.1.3",
        )
        .unwrap();
    let d = eventually(
        "ProgressDeadlineExceeded",
        Duration::from_secs(6),
        || async {
            let d = api.get("podinfo").await.ok()?;
            (condition(&d, "Progressing")? == ("False".into(), "ProgressDeadlineExceeded".into()))
                .then_some(d)
        },
    )
    .await;
    let (generation, observed, replicas, updated, ready, available, unavailable) = status_of(&d);
    assert_eq!((generation, observed), (2, 2));
    // One surge pod of the new revision never turns Ready; the old ones stay.
    assert_eq!(
        (replicas, updated, ready, available, unavailable),
        (3, 1, 2, 2, 1)
    );
    assert!(!rolled_out(&d, 2));
    assert_eq!(condition(&d, "Available").unwrap().0, "True");

    let pods: Api<Pod> = Api::namespaced(client, "prod");
    let crashing = pods
        .list(&ListParams::default().labels("app=podinfo"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            let cs = &p
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0];
            cs.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
        })
        .count();
    assert_eq!(crashing, 1);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_to_zero_removes_the_pods() {
    let (world, client) = world(PODINFO).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    eventually("podinfo ready", Duration::from_secs(5), || async {
        rolled_out(&api.get("podinfo").await.ok()?, 2).then_some(())
    })
    .await;
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "prod");
    eventually("no pods", Duration::from_secs(3), || async {
        pods.list(&ListParams::default().labels("app=podinfo"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let d = eventually("status at zero", Duration::from_secs(3), || async {
        let d = api.get("podinfo").await.ok()?;
        (status_of(&d).1 == 2).then_some(d)
    })
    .await;
    assert_eq!(status_of(&d), (2, 2, 0, 0, 0, 0, 0));
    assert!(rolled_out(&d, 0));
    assert_eq!(condition(&d, "Available").unwrap().0, "True");
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_the_weights_of_a_traffic_split() {
    let (world, client) = world(
        "
namespace: prod
seed: 3
readinessDelay: 100ms
trafficInterval: 100ms
crds: [smi]
namespaces: [{name: prod, mesh: linkerd}, {name: linkerd-viz}]
deployments:
  - {name: podinfo-primary, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:3.1.0', replicas: 2, ports: [9898]}
  - {name: podinfo, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', replicas: 1, ports: [9898]}
services:
  - {name: podinfo-primary, namespace: prod, selector: {app: podinfo-primary}, ports: [{name: http, port: 9898}]}
  - {name: podinfo-canary, namespace: prod, selector: {app: podinfo}, ports: [{name: http, port: 9898}]}
prometheus: {name: prometheus, namespace: linkerd-viz, port: 9090}
traffic:
  - {service: podinfo, namespace: prod, port: 9898, rps: 200}
",
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    eventually("both ready", Duration::from_secs(5), || async {
        let p = deployments.get("podinfo-primary").await.ok()?;
        let c = deployments.get("podinfo").await.ok()?;
        (rolled_out(&p, 2) && rolled_out(&c, 1)).then_some(())
    })
    .await;
    // The router first, then the apex Service the traffic is aimed at.
    let (status, body) = raw(
        &client,
        "POST",
        "/apis/split.smi-spec.io/v1alpha2/namespaces/prod/trafficsplits",
        &json!({
            "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {"service": "podinfo", "backends": [
                {"service": "podinfo-primary", "weight": 70},
                {"service": "podinfo-canary", "weight": 30}]},
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "prod");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "podinfo", "namespace": "prod"},
                "spec": {"selector": {"app": "podinfo-primary"}, "ports": [{"name": "http", "port": 9898}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let result = query(
        &world,
        &client,
        "sum(rate(response_total[10s])) by (deployment)",
    )
    .await;
    let rate = |d: &str| {
        result
            .iter()
            .find(|(m, _)| m["deployment"] == d)
            .map_or(0.0, |(_, v)| *v)
    };
    let (primary, canary) = (rate("podinfo-primary"), rate("podinfo"));
    let share = canary / (primary + canary);
    assert!(
        (share - 0.30).abs() < 0.07,
        "canary share {share:.3} (primary {primary:.1}/s, canary {canary:.1}/s)"
    );
    world.shutdown().await;
}

/// A built-in query of Flagger's for `target` in `prod`, through the proxy.
async fn builtin(world: &World, client: &Client, metric: &str, target: &str) -> Option<f64> {
    let q = builtin_query(canary_core::provider::Provider::Linkerd, metric).unwrap();
    let model = TemplateModel {
        name: target.into(),
        namespace: "prod".into(),
        target: target.into(),
        service: target.into(),
        ingress: target.into(),
        route: target.into(),
        interval: "1m".into(),
        variables: Default::default(),
    };
    let rendered = render(q.template, &model).unwrap();
    query(world, client, &rendered)
        .await
        .first()
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkerd_builtin_queries_see_a_healthy_version_succeed_and_3_1_2_fail() {
    // The demo's seed, with short delays and one Service per version.
    let mut scenario = Scenario::seed();
    scenario.readiness_delay = Dur(Duration::from_millis(100));
    scenario.traffic_interval = Dur(Duration::from_millis(100));
    scenario.traffic.clear();
    scenario.deployments.clear();
    let extra = Scenario::from_yaml(
        "extra.yaml",
        "
deployments:
  - {name: good, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', replicas: 2, ports: [9898]}
  - {name: bad, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:3.1.2', replicas: 2, ports: [9898]}
services:
  - {name: good, namespace: prod, selector: {app: good}, ports: [{port: 9898}]}
  - {name: bad, namespace: prod, selector: {app: bad}, ports: [{port: 9898}]}
traffic:
  - {service: good, namespace: prod, rps: 100}
  - {service: bad, namespace: prod, rps: 100}
",
    )
    .unwrap();
    scenario.deployments = extra.deployments;
    scenario.services = extra.services;
    scenario.traffic = extra.traffic;
    let world = World::start(scenario).await.unwrap();
    let client = world.client().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let good = builtin(&world, &client, "request-success-rate", "good")
        .await
        .expect("good has traffic");
    let bad = builtin(&world, &client, "request-success-rate", "bad")
        .await
        .expect("bad has traffic");
    assert!(good > 99.9, "3.1.1 success rate {good}");
    assert!((45.0..75.0).contains(&bad), "3.1.2 success rate {bad}");
    let good_p99 = builtin(&world, &client, "request-duration", "good")
        .await
        .unwrap();
    let bad_p99 = builtin(&world, &client, "request-duration", "bad")
        .await
        .unwrap();
    assert!(good_p99 < 100.0, "3.1.1 p99 {good_p99} ms");
    assert!(bad_p99 > 500.0, "3.1.2 p99 {bad_p99} ms");
    world.shutdown().await;
}

const LOADTESTER: &str = "
namespace: prod
readinessDelay: 100ms
trafficInterval: 100ms
crds: [smi]
namespaces: [{name: prod, mesh: linkerd}, {name: linkerd-viz}]
deployments:
  - {name: podinfo, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', replicas: 1, ports: [9898]}
  - {name: broken, namespace: prod, image: 'ghcr.io/stefanprodan/podinfo:6.6.6', replicas: 1, ports: [9898]}
services:
  - {name: podinfo-canary, namespace: prod, selector: {app: podinfo}, ports: [{name: http, port: 9898}]}
  - {name: broken-canary, namespace: prod, selector: {app: broken}, ports: [{name: http, port: 9898}]}
  - {name: nobody-canary, namespace: prod, selector: {app: nobody}, ports: [{name: http, port: 9898}]}
behaviours:
  '6.6.6': {successRate: 0%}
loadtester: {name: flagger-loadtester, namespace: prod, port: 80}
prometheus: {name: prometheus, namespace: linkerd-viz, port: 9090}
";

fn payload(metadata: Value) -> String {
    json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing", "checksum": "abc", "metadata": metadata}).to_string()
}

async fn loadtester_ready(world: &World, client: &Client) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    eventually("pods ready", Duration::from_secs(5), || async {
        let a = api.get("podinfo").await.ok()?;
        let b = api.get("broken").await.ok()?;
        (rolled_out(&a, 1) && rolled_out(&b, 1)).then_some(())
    })
    .await;
    world.loadtester_proxy_path().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_testers_bash_acceptance_test_passes_for_a_healthy_canary_and_fails_for_a_broken_one()
 {
    let (world, client) = world(LOADTESTER).await;
    let lt = loadtester_ready(&world, &client).await;
    let acceptance = |svc: &str| {
        payload(
            json!({"type": "bash", "cmd": format!("curl -sd 'test' http://{svc}.prod:9898/token | grep token")}),
        )
    };
    let (status, body) = raw(
        &client,
        "POST",
        &format!("{lt}/"),
        &acceptance("podinfo-canary"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));

    let (status, body) = raw(
        &client,
        "POST",
        &format!("{lt}/"),
        &acceptance("broken-canary"),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "command curl -sd 'test' http://broken-canary.prod:9898/token | grep token failed: : exit status 1"
    );
    let (status, _) = raw(
        &client,
        "POST",
        &format!("{lt}/"),
        &acceptance("nobody-canary"),
    )
    .await;
    assert_eq!(status, 500, "no ready pod behind the Service");

    // returnCmdOutput gives the output back.
    let (status, body) = raw(
        &client,
        "POST",
        &format!("{lt}/"),
        &payload(json!({"type": "bash", "returnCmdOutput": "true", "cmd": "curl -s http://podinfo-canary:9898/version"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("\"version\":\"3.1.1\""), "{body}");

    let (status, body) = raw(
        &client,
        "POST",
        &format!("{lt}/"),
        &payload(json!({"type": "bash", "cmd": "kubectl get pods"})),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        body.contains("kubectl: command not found") && body.ends_with("exit status 127"),
        "{body}"
    );

    let calls = world.webhook_calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(
        calls[0].payload.as_ref().unwrap()["metadata"]["type"],
        "bash"
    );
    assert_eq!(calls[1].status, 500);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_test_command_runs_in_the_background_and_its_requests_are_recorded() {
    let (world, client) = world(LOADTESTER).await;
    let lt = loadtester_ready(&world, &client).await;
    let load = payload(json!({"cmd": "hey -z 1s -q 10 -c 2 http://podinfo-canary.prod:9898/"}));
    let started = Instant::now();
    let (status, body) = raw(&client, "POST", &format!("{lt}/"), &load).await;
    assert_eq!((status, body.as_str()), (202, ""));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "cmd tasks answer at once"
    );
    // The same command again while it runs is skipped, as Flagger's runner does.
    let (status, _) = raw(&client, "POST", &format!("{lt}/"), &load).await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let tasks = world.loadtester().unwrap().tasks();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(!tasks[0].skipped && tasks[1].skipped);
    assert_eq!(tasks[0].ok, Some(true), "{}", tasks[0].output);
    assert!(
        tasks[0].output.contains("[200]\t20 responses"),
        "{}",
        tasks[0].output
    );

    // Every answer, once the next scrape has seen it.
    let q = "sum(response_total{namespace=\"prod\",deployment=\"podinfo\",direction=\"inbound\"})";
    let w = &world;
    let c = &client;
    eventually(
        "20 responses recorded",
        Duration::from_secs(3),
        || async move {
            let total = query(w, c, q).await;
            (total.first().map(|(_, v)| *v) == Some(20.0)).then_some(())
        },
    )
    .await;
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_open_close_and_check_with_the_load_testers_status_codes() {
    let (world, client) = world(LOADTESTER).await;
    let lt = world.loadtester_proxy_path().unwrap();
    let p = payload(Value::Null);
    let call = |path: &'static str, body: String| {
        let (client, lt) = (client.clone(), lt.clone());
        async move { raw(&client, "POST", &format!("{lt}{path}"), &body).await }
    };
    assert_eq!(
        call("/gate/check", p.clone()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(call("/gate/open", p.clone()).await, (202, String::new()));
    assert!(world.loadtester().unwrap().gate_open("podinfo", "prod"));
    assert_eq!(
        call("/gate/check", p.clone()).await,
        (200, "Approved".into())
    );
    assert_eq!(call("/gate/close", p.clone()).await, (202, String::new()));
    assert_eq!(
        call("/gate/check", p.clone()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(
        call("/gate/approve", String::new()).await,
        (200, "OK".into())
    );
    assert_eq!(
        call("/gate/halt", String::new()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(
        call("/rollback/check", p.clone()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(
        call("/rollback/open", p.clone()).await,
        (202, String::new())
    );
    assert_eq!(
        call("/rollback/check", p.clone()).await,
        (200, "Approved".into())
    );
    assert_eq!(
        call("/rollback/close", p.clone()).await,
        (202, String::new())
    );
    assert_eq!(
        call("/rollback/check", p.clone()).await,
        (403, "Forbidden".into())
    );
    // Gates are per canary.
    let other = json!({"name": "other", "namespace": "prod"}).to_string();
    assert_eq!(call("/gate/open", p.clone()).await.0, 202);
    assert_eq!(call("/gate/check", other).await.0, 403);
    // What the real one answers to bad requests.
    assert_eq!(
        call("/gate/check", "{not json".into()).await,
        (400, String::new())
    );
    assert_eq!(
        call("/", p.clone()).await,
        (400, "metadata not found in payload".into())
    );
    assert_eq!(
        call("/", payload(json!({"type": "jmeter", "cmd": "x"}))).await,
        (400, "unknown task type jmeter".into())
    );
    assert_eq!(
        call("/", payload(json!({"type": "cmd"}))).await,
        (400, "cmd not found in metadata".into())
    );
    world.shutdown().await;
}

/// POSTs an object to its collection and expects 201.
async fn create(client: &Client, collection: &str, obj: Value) {
    let (status, body) = raw(client, "POST", collection, &obj.to_string()).await;
    assert_eq!(status, 201, "{collection}: {body}");
}

fn apex(name: &str, selector: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": selector}, "ports": [{"name": "http", "port": 9898}]},
    })
}

/// The share of `of` in a `by (label)` result.
fn share(result: &[(Value, f64)], label: &str, of: &dyn Fn(&str) -> bool) -> f64 {
    let total: f64 = result.iter().map(|(_, v)| v).sum();
    let part: f64 = result
        .iter()
        .filter(|(m, _)| of(m[label].as_str().unwrap_or("")))
        .map(|(_, v)| v)
        .sum();
    part / total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_istio_and_gateway_api_routers_split_traffic_by_their_weights() {
    let (world, client) = world(
        "
namespace: shop
seed: 5
readinessDelay: 100ms
trafficInterval: 100ms
crds: [istio, gatewayApi]
namespaces: [{name: shop, mesh: istio}, {name: istio-system}]
deployments:
  - {name: web-primary, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', ports: [9898]}
  - {name: web, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.2', ports: [9898]}
  - {name: api-primary, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', ports: [9898]}
  - {name: api, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', ports: [9898]}
  - {name: gw-primary, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', ports: [9898]}
  - {name: gw, namespace: shop, image: 'ghcr.io/stefanprodan/podinfo:3.1.1', ports: [9898]}
services:
  - {name: web-primary, namespace: shop, selector: {app: web-primary}, ports: [{name: http, port: 9898}]}
  - {name: web-canary, namespace: shop, selector: {app: web}, ports: [{name: http, port: 9898}]}
  - {name: api-primary, namespace: shop, selector: {app: api-primary}, ports: [{name: http, port: 9898}]}
  - {name: api-canary, namespace: shop, selector: {app: api}, ports: [{name: http, port: 9898}]}
  - {name: gw-primary, namespace: shop, selector: {app: gw-primary}, ports: [{name: http, port: 9898}]}
  - {name: gw-canary, namespace: shop, selector: {app: gw}, ports: [{name: http, port: 9898}]}
behaviours:
  '3.1.2': {successRate: 60%, latency: {median: 1s, p99: 1500ms}}
prometheus: {name: prometheus, namespace: istio-system, port: 9090}
traffic:
  - {host: web.example.com, namespace: shop, rps: 150}
  - {service: api, namespace: shop, port: 9898, rps: 150}
  - {service: gw, namespace: shop, port: 9898, rps: 150}
",
    )
    .await;
    let ing = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses";
    let rule = |backend: &str| {
        json!([{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": backend, "port": {"number": 9898}}}}]}}])
    };
    create(
        &client,
        ing,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web-canary", "annotations": {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "30"}},
            "spec": {"ingressClassName": "nginx", "rules": rule("web-canary")},
        }),
    )
    .await;
    create(
        &client,
        "/api/v1/namespaces/shop/services",
        apex("web", "web-primary"),
    )
    .await;
    create(
        &client,
        ing,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": rule("web")},
        }),
    )
    .await;
    create(
        &client,
        "/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices",
        json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "api"},
            "spec": {"hosts": ["api"], "gateways": ["mesh"], "http": [{"route": [
                {"destination": {"host": "api-primary"}, "weight": 60},
                {"destination": {"host": "api-canary.shop.svc.cluster.local"}, "weight": 40}]}]},
        }),
    )
    .await;
    create(
        &client,
        "/api/v1/namespaces/shop/services",
        apex("api", "api-primary"),
    )
    .await;
    create(
        &client,
        "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes",
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "gw"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "gw", "port": 9898}],
                "rules": [{"backendRefs": [
                    {"name": "gw-primary", "port": 9898, "weight": 50},
                    {"name": "gw-canary", "port": 9898, "weight": 50}]}]},
        }),
    )
    .await;
    create(
        &client,
        "/api/v1/namespaces/shop/services",
        apex("gw", "gw-primary"),
    )
    .await;
    // The shares are read over the last 3 s only: requests made while the
    // routers were still being created (slow on a loaded machine) went to
    // the apex Services alone.
    tokio::time::sleep(Duration::from_millis(4000)).await;

    let nginx = query(&world, &client, "sum(rate(nginx_ingress_controller_requests{namespace=\"shop\",ingress=\"web\"}[3s])) by (canary)").await;
    let canary_share = share(&nginx, "canary", &|c| c == "shop-web-canary-9898");
    assert!(
        (canary_share - 0.30).abs() < 0.08,
        "nginx canary share {canary_share:.3}: {nginx:?}"
    );
    let istio = |svc: &'static str| {
        let (w, c) = (&world, &client);
        async move {
            let q = format!(
                "sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_service_name=~\"{svc}-.*\"}}[3s])) by (destination_workload)"
            );
            query(w, c, &q).await
        }
    };
    let api = istio("api").await;
    let api_share = share(&api, "destination_workload", &|w| w == "api");
    assert!(
        (api_share - 0.40).abs() < 0.08,
        "VirtualService canary share {api_share:.3}: {api:?}"
    );
    let gw = istio("gw").await;
    let gw_share = share(&gw, "destination_workload", &|w| w == "gw");
    assert!(
        (gw_share - 0.50).abs() < 0.08,
        "HTTPRoute canary share {gw_share:.3}: {gw:?}"
    );

    // Flagger's built-in queries for NGINX and Istio read these series.
    let model = |target: &str| TemplateModel {
        name: target.into(),
        namespace: "shop".into(),
        target: target.into(),
        service: target.into(),
        ingress: target.into(),
        route: target.into(),
        interval: "1m".into(),
        variables: Default::default(),
    };
    let run = |provider: &'static str, metric: &'static str, target: &'static str| {
        let (w, c) = (&world, &client);
        let q = render(
            builtin_query(
                canary_core::provider::Provider::parse(provider).unwrap(),
                metric,
            )
            .unwrap()
            .template,
            &model(target),
        )
        .unwrap();
        async move { query(w, c, &q).await.first().map(|(_, v)| *v) }
    };
    let web_rate = run("nginx", "request-success-rate", "web")
        .await
        .expect("nginx canary traffic");
    assert!(
        (40.0..80.0).contains(&web_rate),
        "3.1.2 behind the canary ingress: {web_rate}"
    );
    let web_ms = run("nginx", "request-duration", "web").await.unwrap();
    assert!(web_ms > 500.0, "mean upstream latency {web_ms} ms");
    let api_rate = run("istio", "request-success-rate", "api").await.unwrap();
    assert!(api_rate > 99.9, "istio success rate {api_rate}");

    // A metrics outage: the Prometheus answers 503 until it is over. (The
    // kube client's default policy retries a 503 for minutes; a client that
    // reports it at once is what a metrics check needs.)
    let kc = kube::config::Kubeconfig::from_yaml(&world.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    world.set_metrics_outage(true);
    let base = world.prometheus_proxy_path().unwrap();
    let (status, _) = raw(&client, "GET", &format!("{base}/api/v1/query?query=up"), "").await;
    assert_eq!(status, 503);
    world.set_metrics_outage(false);
    let (status, _) = raw(&client, "GET", &format!("{base}/api/v1/query?query=up"), "").await;
    assert_eq!(status, 200);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_runs_a_pod_per_selected_node_and_replaces_them_on_a_new_template() {
    let (world, client) =
        world("namespace: prod\nreadinessDelay: 100ms\nnamespaces: [{name: prod}]\n").await;
    let api: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(client.clone(), "prod");
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "prod"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}},
    });
    api.create(&PostParams::default(), &serde_json::from_value(ds).unwrap())
        .await
        .unwrap();
    let ready = |generation: i64, nodes: i32| {
        let api = api.clone();
        async move {
            let d = api.get("agent").await.ok()?;
            let s = d.status?;
            (s.observed_generation == Some(generation)
                && s.desired_number_scheduled == nodes
                && s.number_ready == nodes
                && s.updated_number_scheduled.unwrap_or(0) == nodes
                && s.number_unavailable.is_none())
            .then_some(())
        }
    };
    eventually("agent ready", Duration::from_secs(3), || ready(1, 3)).await;
    api.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}})),
    )
    .await
    .unwrap();
    eventually("agent updated", Duration::from_secs(5), || ready(2, 3)).await;
    let pods: Api<Pod> = Api::namespaced(client, "prod");
    let list = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 3);
    let mut nodes: Vec<_> = list
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["sim-node-1", "sim-node-2", "sim-node-3"]);
    assert_eq!(
        list[0].metadata.owner_references.as_ref().unwrap()[0].kind,
        "DaemonSet"
    );
    assert!(
        list[0]
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("controller-revision-hash")
    );
    assert_eq!(
        list[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("agent:2")
    );
    // A nodeSelector matching no node (Flagger's scale-to-zero) leaves
    // none; one naming a node leaves one.
    for (selector, nodes) in [
        (json!({"flagger.app/scale-to-zero": "true"}), 0),
        (
            json!({"flagger.app/scale-to-zero": null, "kubernetes.io/hostname": "sim-node-2"}),
            1,
        ),
    ] {
        api.patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeSelector": selector}}}})),
        )
        .await
        .unwrap();
        let generation = api.get("agent").await.unwrap().metadata.generation.unwrap();
        eventually("agent on its nodes", Duration::from_secs(5), || {
            ready(generation, nodes)
        })
        .await;
        let n = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count();
        assert_eq!(n, nodes as usize);
    }
    world.shutdown().await;
}

/// One raw HTTP/1.1 exchange with the Pod network's forward proxy, as a
/// client honouring `HTTP_PROXY` sends it: (status, body).
async fn through_pod_network(world: &World, request_line: &str, extra: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = world.sim().pod_network_url().replace("http://", "");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let host = request_line
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.split('/').next())
        .unwrap_or("x");
    let req =
        format!("{request_line} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_network_reaches_services_by_their_cluster_names_without_the_api_server() {
    let (world, _client) = world(LOADTESTER).await;
    world.sim().clear_request_log();
    for host in [
        "prometheus.linkerd-viz:9090",
        "prometheus.linkerd-viz.svc:9090",
        "Prometheus.linkerd-viz.svc.cluster.local.:9090",
    ] {
        let (status, body) = through_pod_network(
            &world,
            &format!("GET http://{host}/api/v1/query?query=vector(1)"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{host}: {body}");
        assert!(body.contains("\"result\""), "{host}: {body}");
    }
    // A single label is a Service of the Pod's namespace (the sim's).
    let (status, body) = through_pod_network(
        &world,
        "POST http://flagger-loadtester/",
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_ne!(status, 502, "{body}");

    let (status, body) = through_pod_network(&world, "GET http://nope.linkerd-viz:9090/", "").await;
    assert_eq!(
        (status, body.as_str()),
        (502, "dial tcp: lookup nope.linkerd-viz: no such host")
    );
    let (status, body) =
        through_pod_network(&world, "GET http://prometheus.linkerd-viz:9999/", "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            502,
            "dial tcp prometheus.linkerd-viz:9999: connect: connection refused"
        )
    );
    let (status, _) = through_pod_network(&world, "GET http://a.b.c.d/", "").await;
    assert_eq!(status, 502);
    let (status, _) = through_pod_network(&world, "GET /api/v1/query", "").await;
    assert_eq!(status, 400);

    let log = world.sim().pod_network_log();
    assert_eq!(log.len(), 8, "{log:#?}");
    assert_eq!(
        (log[0].host.as_str(), log[0].port, log[0].status),
        ("prometheus.linkerd-viz", 9090, 200)
    );
    assert_eq!(log[0].path, "/api/v1/query?query=vector(1)");
    assert!(
        world.sim().request_log().is_empty(),
        "the API server saw: {:#?}",
        world.sim().request_log()
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_files_connect_a_client_as_a_pod_would() {
    let (world, _client) = world(LOADTESTER).await;
    let dir = tempfile::tempdir().unwrap();
    world.sim().write_service_account(dir.path()).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert_eq!(read("token"), world.sim().token());
    assert_eq!(read("namespace"), "prod");
    assert!(read("ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));

    // What an in-cluster configuration makes of them: the CA and the token
    // by file, the API server by address.
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: \"https://{}\", certificate-authority: {:?}}}}}]
users: [{{name: u, user: {{tokenFile: {:?}}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
",
        world.sim().addr(),
        dir.path().join("ca.crt"),
        dir.path().join("token"),
    );
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "prod");
    assert!(api.get("podinfo").await.is_ok());
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_object_keeps_its_deployment_within_its_bounds_and_holds_it_when_paused() {
    let (world, client) = world(
        "namespace: prod\nreadinessDelay: 100ms\ncrds: [keda]\nnamespaces: [{name: prod}]\n\
         deployments:\n  - {name: worker, namespace: prod, image: worker:1, container: worker, \
         replicas: 1, labels: {app: worker}}\n",
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    let scaled: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "prod", &ar);
    let so: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "worker", "namespace": "prod"},
        "spec": {
            "scaleTargetRef": {"name": "worker"},
            "minReplicaCount": 3, "maxReplicaCount": 5,
            "triggers": [{"type": "cpu", "metadata": {"value": "60"}}],
            "unknownField": true,
        },
    }))
    .unwrap();
    let created = scaled.create(&PostParams::default(), &so).await.unwrap();
    // The CRD's schema is structural: an unknown spec field is pruned.
    assert!(created.data["spec"].get("unknownField").is_none());
    let replicas = |want: i32| {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("worker").await.ok()?;
            (d.spec.replicas == Some(want)).then_some(())
        }
    };
    eventually(
        "scaled up to minReplicaCount",
        Duration::from_secs(3),
        || replicas(3),
    )
    .await;
    scaled
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "autoscaling.keda.sh/paused-replicas": "0"}}})),
        )
        .await
        .unwrap();
    eventually(
        "held at the paused replicas",
        Duration::from_secs(3),
        || replicas(0),
    )
    .await;
    scaled
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "autoscaling.keda.sh/paused-replicas": null}}})),
        )
        .await
        .unwrap();
    eventually("back within the bounds", Duration::from_secs(3), || {
        replicas(3)
    })
    .await;
    world.shutdown().await;
}

const KNATIVE: &str = "
namespace: prod
readinessDelay: 100ms
trafficInterval: 100ms
crds: [knative]
namespaces: [{name: prod}, {name: monitoring}]
behaviours:
  '6.6.6': {successRate: 50%}
prometheus: {name: prometheus, namespace: monitoring, port: 9090}
traffic:
  - {host: podinfo.prod.svc.cluster.local, namespace: prod, port: 80, rps: 100}
";

fn ksvc_with(image: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "prod"},
        "spec": {"template": {"spec": {"containers": [
            {"image": image, "ports": [{"containerPort": 9898}]}
        ]}}},
    })
}

/// Knative's built-in query of Flagger's for the revision `route`.
async fn knative_builtin(world: &World, client: &Client, metric: &str, route: &str) -> Option<f64> {
    let q = builtin_query(canary_core::provider::Provider::Knative, metric).unwrap();
    let model = TemplateModel {
        name: "podinfo".into(),
        namespace: "prod".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: route.into(),
        interval: "1m".into(),
        variables: Default::default(),
    };
    let rendered = render(q.template, &model).unwrap();
    query(world, client, &rendered)
        .await
        .first()
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knative_service_makes_a_revision_per_template_and_splits_by_percent() {
    let (world, client) = world(KNATIVE).await;
    let base = "/apis/serving.knative.dev/v1/namespaces/prod/services";
    let (code, body) = raw(
        &client,
        "POST",
        base,
        &ksvc_with("podinfo:6.0.0").to_string(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let get = |client: Client| async move {
        let (_, body) = raw(&client, "GET", &format!("{base}/podinfo"), "").await;
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let ready = |want: &'static str| {
        let client = client.clone();
        move || {
            let client = client.clone();
            async move {
                let s = get(client).await;
                (s["status"]["latestReadyRevisionName"] == want).then_some(s)
            }
        }
    };
    let s = eventually(
        "revision 1 ready",
        Duration::from_secs(10),
        ready("podinfo-00001"),
    )
    .await;
    assert_eq!(s["status"]["latestCreatedRevisionName"], "podinfo-00001");
    assert_eq!(
        s["status"]["traffic"],
        json!([{"revisionName": "podinfo-00001", "latestRevision": true, "percent": 100}])
    );

    // Flagger's split before the new template: all to the first revision.
    let traffic = |canary: i64, primary: i64| {
        json!({"spec": {"traffic": [
            {"latestRevision": true, "percent": canary},
            {"revisionName": "podinfo-00001", "percent": primary},
        ]}})
        .to_string()
    };
    let merge = |client: Client, body: String| async move {
        let req = http::Request::builder()
            .method("PATCH")
            .uri(format!("{base}/podinfo"))
            .header("Content-Type", "application/merge-patch+json")
            .body(kube::client::Body::from(body.into_bytes()))
            .unwrap();
        client.send(req).await.unwrap().status().as_u16()
    };
    assert_eq!(merge(client.clone(), traffic(0, 100)).await, 200);
    // Knative's webhook: percents add up to 100.
    assert_eq!(merge(client.clone(), traffic(10, 80)).await, 422);

    // A new template: a second revision, which gets its share once Ready.
    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"image": "podinfo:6.6.6", "ports": [{"containerPort": 9898}]}
    ]}}}});
    assert_eq!(merge(client.clone(), image.to_string()).await, 200);
    let s = eventually(
        "revision 2 ready",
        Duration::from_secs(10),
        ready("podinfo-00002"),
    )
    .await;
    assert_eq!(s["status"]["latestCreatedRevisionName"], "podinfo-00002");
    assert_eq!(merge(client.clone(), traffic(40, 60)).await, 200);
    let s = eventually("the split in the status", Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let s = get(client).await;
            (s["status"]["traffic"][0]["percent"] == 40).then_some(s)
        }
    })
    .await;
    assert_eq!(
        s["status"]["traffic"],
        json!([
            {"revisionName": "podinfo-00002", "latestRevision": true, "percent": 40},
            {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 60},
        ])
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let good = knative_builtin(&world, &client, "request-success-rate", "podinfo-00001")
        .await
        .expect("the first revision has traffic");
    let bad = knative_builtin(&world, &client, "request-success-rate", "podinfo-00002")
        .await
        .expect("the second revision has traffic");
    assert!(good > 99.9, "revision 1 success rate {good}");
    assert!((30.0..70.0).contains(&bad), "revision 2 success rate {bad}");
    let p99 = knative_builtin(&world, &client, "request-duration", "podinfo-00001")
        .await
        .unwrap();
    assert!(p99 > 0.0 && p99 < 1000.0, "revision 1 p99 {p99} ms");
    // Both revisions and their workloads stay.
    let revs = raw(
        &client,
        "GET",
        "/apis/serving.knative.dev/v1/namespaces/prod/revisions",
        "",
    )
    .await
    .1;
    let revs: Value = serde_json::from_str(&revs).unwrap();
    let names: Vec<_> = revs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["podinfo-00001", "podinfo-00002"]);
    world.shutdown().await;
}
