//! `canary run` on Istio, end to end: the built binary against a simulated
//! cluster whose `prod` namespace is in an Istio mesh. The sidecars route
//! by the VirtualService canary writes, so which pods answer a request
//! shows what the router does: weights, matched requests (A/B testing),
//! mirrored copies, blue/green.

use std::collections::BTreeSet;
use std::time::Duration;

use canary_sim::scenario::Scenario;
use serde_json::Value;

use crate::run::{Cluster, assert_exit};
use crate::util::{stderr, stdout};

/// podinfo in `prod`, injected by Istio; Istio's Prometheus in
/// `istio-system`, where the built-in queries go by default.
const WORLD: &str = "seed: 20200518
namespace: prod
readinessDelay: 200ms
trafficInterval: 200ms
crds: [istio]
namespaces:
  - {name: prod, mesh: istio}
  - {name: istio-system}
deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 2
    labels: {app: podinfo}
    ports:
      - {name: http, containerPort: 9898}
  - name: tester
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    replicas: 1
    labels: {app: tester}
    ports:
      - {name: http, containerPort: 9898}
behaviours:
  \"3.1.0\":
    successRate: 100%
    latency: {median: 9ms, p99: 35ms}
  \"3.1.1\":
    successRate: 100%
    latency: {median: 8ms, p99: 30ms}
  \"3.1.2\":
    successRate: 60%
    latency: {median: 1s, p99: 1500ms}
loadtester:
  name: flagger-loadtester
  namespace: prod
  port: 80
prometheus:
  name: prometheus
  namespace: istio-system
  port: 9090
traffic:
  - {service: podinfo, namespace: prod, port: 9898, rps: 10}
  - {service: podinfo, namespace: prod, port: 9898, rps: 5, headers: {x-canary: insider}}
";

/// A weighted canary on Istio: 1 s interval, 20% steps.
const CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    retries:
      attempts: 3
      perTryTimeout: 1s
    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
  analysis:
    interval: 1s
    threshold: 3
    stepWeight: 20
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 10s
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 10s
";

/// `CANARY` with a load test on the canary's own Service during each step,
/// so that its metrics have values from the first step on.
fn weighted(step_weight: u32) -> String {
    CANARY.replace("stepWeight: 20", &format!("stepWeight: {step_weight}"))
        + "    webhooks:
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.prod/
        metadata:
          cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"
"
}

/// The analysis of `CANARY` replaced by `analysis` (indented by four).
fn with_analysis(analysis: &str) -> String {
    let head = CANARY.split("    stepWeight: 20\n").next().unwrap();
    let metrics = CANARY.split("    stepWeight: 20\n").nth(1).unwrap();
    format!("{head}{analysis}{metrics}")
}

async fn start(spec: &str) -> Cluster {
    let scenario = Scenario::from_yaml("istio.yaml", WORLD).expect("scenario");
    Cluster::start_in(scenario, spec).await
}

fn virtual_service(c: &Cluster) -> Option<Value> {
    c.world.store().get(
        "networking.istio.io/v1beta1",
        "VirtualService",
        "prod",
        "podinfo",
    )
}

/// The (primary, canary) weights of the route naming the canary host, and
/// whether that route mirrors and carries a match.
fn vs_state(c: &Cluster) -> Option<(i64, i64, bool, bool)> {
    let vs = virtual_service(c)?;
    let http = vs["spec"]["http"].as_array()?;
    let r = http.iter().find(|r| {
        r["route"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["destination"]["host"] == "podinfo-canary")
    })?;
    let w = |host: &str| {
        r["route"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destination"]["host"] == host)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    Some((
        w("podinfo-primary"),
        w("podinfo-canary"),
        !r["mirror"].is_null(),
        !r["match"].is_null(),
    ))
}

/// Runs `canary run` in the background and records every distinct state
/// of the VirtualService until it exits.
async fn run_and_watch(
    c: &Cluster,
    args: &[&str],
) -> (std::process::Output, Vec<(i64, i64, bool, bool)>) {
    let mut child = c.spawn(args);
    let mut seen: Vec<(i64, i64, bool, bool)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = vs_state(c)
            && seen.last() != Some(&s)
        {
            seen.push(s);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (crate::util::finish(child).await, seen)
}

/// Which version answers a request to the apex Service: `primary` or
/// `canary`, by the answering pod's name.
fn answered_by(c: &Cluster, headers: &[(&str, &str)]) -> &'static str {
    let pod = c
        .world
        .answering_pod("prod", "podinfo", 9898, headers, ("prod", "tester"))
        .unwrap_or_else(|e| panic!("no pod answered: {e}"));
    if pod.starts_with("podinfo-primary-") {
        "primary"
    } else {
        assert!(pod.starts_with("podinfo-"), "{pod}");
        "canary"
    }
}

async fn primary_image(c: &Cluster) -> String {
    c.image("podinfo-primary").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_a_first_run_creates_the_virtual_service_and_destination_rules() {
    let c = start(CANARY).await;
    c.initialise().await;
    let vs = virtual_service(&c).expect("VirtualService podinfo");
    assert_eq!(
        vs["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    assert_eq!(vs["spec"]["hosts"], serde_json::json!(["podinfo"]));
    assert_eq!(vs["spec"]["gateways"], serde_json::json!(["mesh"]));
    assert_eq!(vs["spec"]["http"][0]["retries"]["attempts"], 3);
    assert_eq!(vs_state(&c), Some((100, 0, false, false)));
    for host in ["podinfo-primary", "podinfo-canary"] {
        let dr = c
            .world
            .store()
            .get(
                "networking.istio.io/v1beta1",
                "DestinationRule",
                "prod",
                host,
            )
            .unwrap_or_else(|| panic!("DestinationRule {host}"));
        assert_eq!(dr["spec"]["host"], host);
        assert_eq!(dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    }
    // All requests reach the primary.
    for _ in 0..20 {
        assert_eq!(answered_by(&c, &[]), "primary");
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_a_healthy_release_walks_every_weight_on_the_virtual_service_and_is_promoted() {
    let c = start(&weighted(20)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let (out, seen) = run_and_watch(&c, &[]).await;
    assert_exit(&out, 0);
    let weights: Vec<(i64, i64)> = seen.iter().map(|s| (s.0, s.1)).collect();
    let expected = [
        (100, 0),
        (80, 20),
        (60, 40),
        (40, 60),
        (20, 80),
        (0, 100),
        (100, 0),
    ];
    assert_eq!(weights, expected, "{}", stderr(&out));
    assert!(stderr(&out).contains("Advance podinfo.prod canary weight 100"));
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(c.replicas("podinfo").await, 0);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_a_failing_release_is_rolled_back_and_the_primary_is_untouched() {
    let c = start(&weighted(20)).await;
    c.initialise().await;
    c.set_image("3.1.2");
    let (out, seen) = run_and_watch(&c, &[]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("Rolling back podinfo.prod failed checks threshold reached 3"),
        "{}",
        stderr(&out)
    );
    assert!(seen.iter().any(|s| s.1 > 0), "{seen:?}");
    assert_eq!(vs_state(&c), Some((100, 0, false, false)));
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    for _ in 0..20 {
        assert_eq!(answered_by(&c, &[]), "primary");
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_abort_mid_rollout_returns_all_traffic_to_the_primary() {
    let c = start(&weighted(5)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_until("the analysis never started", Duration::from_secs(60), |c| {
        vs_state(c).is_some_and(|s| s.1 > 0)
    })
    .await;
    let mut cmd = crate::util::canary();
    cmd.args(["abort", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .timeout(Duration::from_secs(60));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
    let run = crate::util::finish(child).await;
    assert_exit(&run, 4);
    assert_eq!(vs_state(&c), Some((100, 0, false, false)));
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    for _ in 0..20 {
        assert_eq!(answered_by(&c, &[]), "primary");
    }
    c.world.shutdown().await;
}

const AB: &str = "    iterations: 4
    match:
      - headers:
          x-canary:
            exact: insider
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_ab_testing_sends_only_matching_requests_to_the_canary() {
    let c = start(&with_analysis(AB)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_until(
        "the A/B routing was never set",
        Duration::from_secs(60),
        |c| vs_state(c) == Some((0, 100, false, true)),
    )
    .await;
    // Only requests with the header reach the canary.
    let mut by = BTreeSet::new();
    for _ in 0..30 {
        assert_eq!(answered_by(&c, &[]), "primary");
        assert_eq!(answered_by(&c, &[("x-canary", "outsider")]), "primary");
        by.insert(answered_by(&c, &[("x-canary", "insider")]));
    }
    assert_eq!(by, BTreeSet::from(["canary"]));
    let out = crate::util::finish(child).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Advance podinfo.prod canary iteration 4/4"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    // Back at rest: the matched route sends its requests to the primary.
    assert_eq!(vs_state(&c), Some((100, 0, false, true)));
    for _ in 0..20 {
        assert_eq!(answered_by(&c, &[("x-canary", "insider")]), "primary");
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_ab_testing_rolls_a_failing_release_back() {
    let c = start(&with_analysis(AB)).await;
    c.initialise().await;
    c.set_image("3.1.2");
    let (out, seen) = run_and_watch(&c, &[]).await;
    assert_exit(&out, 1);
    assert!(seen.contains(&(0, 100, false, true)), "{seen:?}");
    assert_eq!(vs_state(&c), Some((100, 0, false, true)));
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_ab_testing_by_source_labels_routes_the_calling_workload() {
    let ab = "    iterations: 2
    match:
      - sourceLabels:
          app: tester
";
    let c = start(&with_analysis(ab)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_until(
        "the A/B routing was never set",
        Duration::from_secs(60),
        |c| vs_state(c) == Some((0, 100, false, true)),
    )
    .await;
    // The `tester` workload's requests go to the canary, the scenario's
    // flows (from no labelled workload) to the primary.
    for _ in 0..20 {
        assert_eq!(answered_by(&c, &[]), "canary");
    }
    let out = crate::util::finish(child).await;
    // No flow comes from `tester`: the canary has no metrics, so the
    // checks fail; the router still did what the spec asked.
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&out)
    );
    c.world.shutdown().await;
}

const BLUE_GREEN: &str = "    iterations: 3
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_blue_green_keeps_users_on_the_primary_then_switches_before_promoting() {
    let spec = with_analysis(BLUE_GREEN).replace(
        "  analysis:\n",
        "  analysis:\n    webhooks:\n      - name: load-test\n        url: http://flagger-loadtester.prod/\n        metadata:\n          cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"\n",
    );
    let c = start(&spec).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let (out, seen) = run_and_watch(&c, &[]).await;
    assert_exit(&out, 0);
    let weights: Vec<(i64, i64)> = seen.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(weights, [(100, 0), (0, 100), (100, 0)], "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Routing all traffic to canary"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

const MIRROR: &str = "    iterations: 3
    mirror: true
    mirrorWeight: 100
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mirroring_copies_requests_to_the_canary_while_users_get_the_primary() {
    let c = start(&with_analysis(MIRROR)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_until("mirroring never started", Duration::from_secs(60), |c| {
        vs_state(c) == Some((100, 0, true, false))
    })
    .await;
    let vs = virtual_service(&c).unwrap();
    assert_eq!(vs["spec"]["http"][0]["mirror"]["host"], "podinfo-canary");
    assert_eq!(vs["spec"]["http"][0]["mirrorPercentage"]["value"], 100);
    for _ in 0..30 {
        assert_eq!(answered_by(&c, &[]), "primary");
    }
    let out = crate::util::finish(child).await;
    // No load test hits the canary: its checks pass on the mirrored
    // copies alone.
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Stop traffic mirroring and route all traffic to canary"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(vs_state(&c), Some((100, 0, false, false)));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mirroring_a_failing_release_rolls_it_back_on_the_copies_metrics() {
    let c = start(&with_analysis(MIRROR)).await;
    c.initialise().await;
    c.set_image("3.1.2");
    let (out, seen) = run_and_watch(&c, &[]).await;
    assert_exit(&out, 1);
    // Users never reached the failing canary: it only got copies.
    assert!(seen.iter().all(|s| s.1 == 0), "{seen:?}");
    assert!(seen.iter().any(|s| s.2), "{seen:?}");
    assert_eq!(vs_state(&c), Some((100, 0, false, false)));
    assert_eq!(
        primary_image(&c).await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_plan_lists_exactly_the_objects_run_creates() {
    let c = start(CANARY).await;
    let out = crate::util::canary()
        .arg("plan")
        .arg(&c.spec)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned: BTreeSet<(String, String)> = plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string(),
                o["name"].as_str().unwrap().to_string(),
            )
        })
        // `<name>-primary` stands for copies of the ConfigMaps and Secrets
        // the target uses; podinfo uses none.
        .filter(|(_, name)| !name.starts_with('<'))
        .collect();
    let before = objects(&c);
    c.initialise().await;
    let after = objects(&c);
    let created: BTreeSet<(String, String)> = after.difference(&before).cloned().collect();
    // The plan also names the target, which the run changes (replicas).
    let mut changed = created.clone();
    changed.insert(("Deployment".into(), "podinfo".into()));
    assert_eq!(planned, changed, "{}", stdout(&out));
    c.world.shutdown().await;
}

/// The objects of `prod` of the kinds a rollout touches, by (kind, name).
fn objects(c: &Cluster) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (api, kind) in [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("networking.istio.io/v1beta1", "VirtualService"),
        ("networking.istio.io/v1beta1", "DestinationRule"),
    ] {
        for o in c.world.store().list(api, kind, Some("prod")) {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            if name.starts_with("podinfo") {
                out.insert((kind.to_string(), name));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_is_detected_from_the_cluster_when_no_provider_is_named() {
    let c = start(&CANARY.replace("  provider: istio\n", "")).await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("istio") && stderr(&out).contains("istio-system"),
        "{}",
        stderr(&out)
    );
    assert!(virtual_service(&c).is_some());
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_events_of_an_istio_canary_give_each_versions_numbers() {
    let c = start(&weighted(25)).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&["-o", "json", "--traffic"]).await;
    assert_exit(&out, 0);
    crate::routers::assert_both_versions_measured(&out);
    c.world.shutdown().await;
}
