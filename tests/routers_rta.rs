//! `canary run` driving the Contour router end to end: the built binary
//! against the simulated cluster, whose Envoy routes the clients' requests
//! for `www.example.com` through the user's root HTTPProxy and the child
//! HTTPProxy the run writes, and records Envoy's upstream series, which the
//! built-in metrics read.

use serde_json::{Value, json};

use crate::routers::{
    answers, edge_scenario, rolls_back_plans_and_reverts, wait_during_run, watch_while_running,
};
use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout};

/// A Canary of podinfo on `provider` judged by the provider's built-in
/// metrics, read from the Prometheus in `edge_ns`.
fn spec(provider: &str, edge_ns: &str, analysis: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: {provider}
  metricsServer: http://prometheus.{edge_ns}:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    timeout: 15s
    retries: {{attempts: 3, perTryTimeout: 5s}}
  analysis:
    interval: 1s
    threshold: 2
{analysis}    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 5s
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 5s
"
    )
}

const STEPS: &str = "    stepWeights: [10, 40, 80]\n";

// ---------------------------------------------------------------------------
// Contour
// ---------------------------------------------------------------------------

/// The user's root HTTPProxy: `www.example.com`, including the child
/// HTTPProxy `podinfo` that `canary` writes.
fn root_proxy() -> Value {
    json!({
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": {"name": "www", "namespace": "prod"},
        "spec": {
            "virtualhost": {"fqdn": "www.example.com"},
            "includes": [{"name": "podinfo", "namespace": "prod", "conditions": [{"prefix": "/"}]}]
        }
    })
}

async fn contour_cluster(analysis: &str) -> Cluster {
    let c = Cluster::start_in(
        edge_scenario("contour", "projectcontour"),
        &spec("contour", "projectcontour", analysis),
    )
    .await;
    c.world.store().create(root_proxy()).unwrap();
    c
}

fn httpproxy(c: &Cluster) -> Option<Value> {
    c.world
        .store()
        .get("projectcontour.io/v1", "HTTPProxy", "prod", "podinfo")
}

/// The canary's weight on the first route of the HTTPProxy (a weight of 0
/// is written as none).
fn contour_weight(c: &Cluster) -> Option<i64> {
    let p = httpproxy(c)?;
    let services = p["spec"]["routes"][0]["services"].as_array()?.clone();
    let canary = services.iter().find(|s| s["name"] == "podinfo-canary")?;
    Some(canary["weight"].as_i64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contour_canary_is_promoted_step_by_step_by_envoys_series_and_rolled_back() {
    let c = contour_cluster(STEPS).await;
    c.initialise().await;
    let p = httpproxy(&c).expect("the HTTPProxy");
    assert_eq!(
        p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    let route = &p["spec"]["routes"][0];
    assert_eq!(route["conditions"], json!([{"prefix": "/"}]));
    assert_eq!(
        route["timeoutPolicy"],
        json!({"response": "15s", "idle": "5m"})
    );
    assert_eq!(
        route["retryPolicy"],
        json!({"count": 3, "perTryTimeout": "5s"})
    );
    assert_eq!(route["services"][0]["weight"], 100);
    assert_eq!(contour_weight(&c), Some(0));
    // Through the root proxy, all of it reaches the primary.
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));

    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), contour_weight).await;
    assert_exit(&out, 0);
    let weights: Vec<i64> = seen.iter().flatten().copied().collect();
    assert_eq!(weights, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    // The checks were the built-in ones, on Envoy's canary cluster.
    let metrics = reqwest::get(c.world.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("envoy_cluster_upstream_rq{")
                && l.contains("envoy_cluster_name=\"prod_podinfo-canary_9898\"")),
        "no Envoy series for the canary cluster"
    );

    rolls_back_plans_and_reverts(
        &c,
        contour_weight,
        &[("projectcontour.io/v1", "HTTPProxy", "prod")],
    )
    .await;
    assert!(httpproxy(&c).is_none(), "revert leaves the HTTPProxy");
    // The user's root proxy stays.
    assert!(
        c.world
            .store()
            .get("projectcontour.io/v1", "HTTPProxy", "prod", "www")
            .is_some()
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contour_ab_testing_sends_only_the_matching_header_to_the_canary() {
    let c = contour_cluster(
        "    iterations: 4
    match:
      - headers:
          x-canary:
            exact: insider
",
    )
    .await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    wait_during_run(&c, &mut child, "the A/B step never started", |c| {
        httpproxy(c).is_some_and(|p| {
            p["spec"]["routes"][0]["services"][1]["weight"] == 100
                && p["spec"]["routes"][0]["conditions"][0]["header"]["name"] == "x-canary"
        })
    })
    .await;
    assert_eq!(answers(&c, "www.example.com", &[], 30), (30, 0));
    assert_eq!(
        answers(&c, "www.example.com", &[("x-canary", "insider")], 30),
        (0, 30)
    );
    let out = finish(child).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        answers(&c, "www.example.com", &[("x-canary", "insider")], 20),
        (20, 0)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contour_is_detected_by_its_namespace_and_crd() {
    let c = contour_cluster(STEPS).await;
    let spec = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("  provider: contour\n", "");
    std::fs::write(&c.spec, spec).unwrap();
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(
            "Using provider contour: namespace projectcontour and CRD \
             httpproxies.projectcontour.io exist"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(contour_weight(&c), Some(0));
    c.world.shutdown().await;
}

// ---------------------------------------------------------------------------
// Traefik
// ---------------------------------------------------------------------------

/// The user's IngressRoute: `www.example.com` to the TraefikService
/// `podinfo` that `canary` writes.
fn ingress_route() -> Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "podinfo", "namespace": "prod"},
        "spec": {
            "entryPoints": ["web"],
            "routes": [{
                "match": "Host(`www.example.com`)",
                "kind": "Rule",
                "services": [{"name": "podinfo", "kind": "TraefikService"}]
            }]
        }
    })
}

fn traefik_service(c: &Cluster) -> Option<Value> {
    c.world
        .store()
        .get("traefik.io/v1alpha1", "TraefikService", "prod", "podinfo")
}

/// The canary's weight in the TraefikService (0 while it is not listed).
fn traefik_weight(c: &Cluster) -> Option<i64> {
    let ts = traefik_service(c)?;
    let services = ts["spec"]["weighted"]["services"].as_array()?.clone();
    Some(
        services
            .iter()
            .find(|s| s["name"] == "podinfo-canary")
            .map_or(0, |s| s["weight"].as_i64().unwrap_or(0)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traefik_canary_is_promoted_step_by_step_by_traefiks_series_and_rolled_back() {
    let c = Cluster::start_in(
        edge_scenario("traefik", "traefik"),
        &spec("traefik", "traefik", STEPS),
    )
    .await;
    c.world.store().create(ingress_route()).unwrap();
    c.initialise().await;
    let ts = traefik_service(&c).expect("the TraefikService");
    assert_eq!(
        ts["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    assert_eq!(
        ts["spec"],
        json!({"weighted": {"services": [
            {"name": "podinfo-primary", "namespace": "prod", "port": 9898, "weight": 100}
        ]}})
    );
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));

    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), traefik_weight).await;
    assert_exit(&out, 0);
    let weights: Vec<i64> = seen.iter().flatten().copied().collect();
    assert_eq!(weights, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    let metrics = reqwest::get(c.world.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("traefik_service_request_duration_seconds_bucket{")
                && l.contains("service=\"prod-podinfo-canary-9898@kubernetescrd\"")
        ),
        "no Traefik series for the canary service"
    );

    rolls_back_plans_and_reverts(
        &c,
        traefik_weight,
        &[("traefik.io/v1alpha1", "TraefikService", "prod")],
    )
    .await;
    assert!(
        traefik_service(&c).is_none(),
        "revert leaves the TraefikService"
    );
    c.world.shutdown().await;
}

#[test]
fn a_traefik_ab_canary_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ab.yaml");
    std::fs::write(
        &path,
        spec(
            "traefik",
            "traefik",
            "    iterations: 4\n    match:\n      - headers:\n          x-canary:\n            exact: insider\n",
        ),
    )
    .unwrap();
    let out = crate::util::canary()
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.analysis.match"),
        "{}",
        stderr(&out)
    );
}
