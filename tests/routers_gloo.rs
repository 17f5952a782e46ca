//! `canary run` driving the Gloo Edge router end to end: the built binary
//! against the simulated cluster, whose Gloo gateway routes the clients'
//! requests for `www.example.com` through the user's VirtualService, which
//! delegates to the RouteTable the run writes, to the Upstreams the run
//! creates, and records Envoy's upstream series, which the built-in
//! metrics read.

use serde_json::{Value, json};

use crate::routers::{
    answers, edge_scenario, rolls_back_plans_and_reverts, wait_during_run, watch_while_running,
};
use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout};

/// A Canary of podinfo on Gloo judged by the built-in metrics, read from
/// the Prometheus in `gloo-system`.
fn spec(extra: &str, analysis: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: gloo
  metricsServer: http://prometheus.gloo-system:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
{extra}  service:
    port: 9898
    apex:
      labels: {{team: web}}
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

const PRIMARY_UPSTREAM: &str = "prod-podinfo-primaryupstream-9898";
const CANARY_UPSTREAM: &str = "prod-podinfo-canaryupstream-9898";

/// The user's objects: an Upstream for the apex Service and a
/// VirtualService for `www.example.com` that delegates `/` to the
/// RouteTable `podinfo` canary writes, then sends what no route of the
/// RouteTable matched (requests without the A/B headers) to the apex
/// Service, which selects the primary's pods.
fn user_objects() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
            "metadata": {"name": "prod-podinfo-9898", "namespace": "prod"},
            "spec": {
                "kube": {"serviceName": "podinfo", "serviceNamespace": "prod", "servicePort": 9898},
                "connectionConfig": {"maxRequestsPerConnection": 100},
            }
        }),
        json!({
            "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": "www", "namespace": "prod"},
            "spec": {"virtualHost": {
                "domains": ["www.example.com"],
                "routes": [
                    {"matchers": [{"prefix": "/"}],
                     "delegateAction": {"ref": {"name": "podinfo", "namespace": "prod"}}},
                    {"matchers": [{"prefix": "/"}],
                     "routeAction": {"single": {"upstream": {"name": "prod-podinfo-9898", "namespace": "prod"}}}},
                ]
            }}
        }),
    ]
}

async fn gloo_cluster(extra: &str, analysis: &str) -> Cluster {
    let c = Cluster::start_in(edge_scenario("gloo", "gloo-system"), &spec(extra, analysis)).await;
    for o in user_objects() {
        c.world.store().create(o).unwrap();
    }
    c
}

fn route_table(c: &Cluster) -> Option<Value> {
    c.world
        .store()
        .get("gateway.solo.io/v1", "RouteTable", "prod", "podinfo")
}

fn upstream(c: &Cluster, name: &str) -> Option<Value> {
    c.world
        .store()
        .get("gloo.solo.io/v1", "Upstream", "prod", name)
}

/// The canary upstream's weight on the RouteTable's route (a weight of 0
/// is written as none).
fn gloo_weight(c: &Cluster) -> Option<i64> {
    let rt = route_table(c)?;
    let destinations = rt["spec"]["routes"][0]["routeAction"]["multi"]["destinations"]
        .as_array()?
        .clone();
    let canary = destinations
        .iter()
        .find(|d| d["destination"]["upstream"]["name"] == CANARY_UPSTREAM)?;
    Some(canary["weight"].as_i64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gloo_canary_is_promoted_step_by_step_by_envoys_series_and_rolled_back() {
    let c = gloo_cluster(
        "  upstreamRef: {apiVersion: gloo.solo.io/v1, kind: Upstream, name: prod-podinfo-9898}\n",
        STEPS,
    )
    .await;
    c.initialise().await;
    let rt = route_table(&c).expect("the RouteTable");
    assert_eq!(
        rt["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "canary", "team": "web"})
    );
    let route = &rt["spec"]["routes"][0];
    assert_eq!(route["inheritablePathMatchers"], true);
    assert!(route.get("matchers").is_none(), "{route}");
    assert_eq!(
        route["routeAction"]["multi"]["destinations"][0],
        json!({"destination": {"upstream": {"name": PRIMARY_UPSTREAM, "namespace": "prod"}}, "weight": 100})
    );
    assert_eq!(gloo_weight(&c), Some(0));
    // The Upstreams point at the primary and canary Services and carry the
    // referenced Upstream's settings.
    for (name, service) in [
        (PRIMARY_UPSTREAM, "podinfo-primary"),
        (CANARY_UPSTREAM, "podinfo-canary"),
    ] {
        let us = upstream(&c, name).expect(name);
        assert_eq!(
            us["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "canary"
        );
        assert_eq!(us["spec"]["kube"]["serviceName"], service);
        assert_eq!(us["spec"]["kube"]["servicePort"], 9898);
        assert_eq!(
            us["spec"]["connectionConfig"],
            json!({"maxRequestsPerConnection": 100})
        );
    }
    // Through the VirtualService, all of it reaches the primary.
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));

    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), gloo_weight).await;
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
    // The checks were the built-in ones, on the canary upstream's cluster.
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
                && l.contains(&format!("envoy_cluster_name=\"{CANARY_UPSTREAM}_prod\""))),
        "no Envoy series for the canary upstream"
    );

    rolls_back_plans_and_reverts(
        &c,
        gloo_weight,
        &[
            ("gateway.solo.io/v1", "RouteTable", "prod"),
            ("gloo.solo.io/v1", "Upstream", "prod"),
        ],
    )
    .await;
    assert!(route_table(&c).is_none(), "revert leaves the RouteTable");
    assert!(upstream(&c, PRIMARY_UPSTREAM).is_none());
    assert!(upstream(&c, CANARY_UPSTREAM).is_none());
    // The user's VirtualService and Upstream stay.
    assert!(upstream(&c, "prod-podinfo-9898").is_some());
    assert!(
        c.world
            .store()
            .get("gateway.solo.io/v1", "VirtualService", "prod", "www")
            .is_some()
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gloo_ab_testing_sends_only_the_matching_header_to_the_canary() {
    let c = gloo_cluster(
        "",
        "    iterations: 4
    match:
      - headers:
          x-canary:
            exact: insider
",
    )
    .await;
    c.initialise().await;
    let matchers = json!([{"headers": [{"name": "x-canary", "value": "insider"}]}]);
    assert_eq!(
        route_table(&c).unwrap()["spec"]["routes"][0]["matchers"],
        matchers
    );
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    wait_during_run(&c, &mut child, "the A/B step never started", |c| {
        gloo_weight(c) == Some(100)
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
    assert_eq!(gloo_weight(&c), Some(0));
    assert_eq!(
        answers(&c, "www.example.com", &[("x-canary", "insider")], 20),
        (20, 0)
    );
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));
    c.world.shutdown().await;
}

#[test]
fn a_gloo_canary_matching_two_headers_in_two_matches_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ab.yaml");
    let spec = spec(
        "",
        "    iterations: 4
    match:
      - headers:
          x-canary: {exact: insider}
      - headers:
          cookie: {regex: \"^(.*?;)?(canary=always)(;.*)?$\"}
",
    );
    std::fs::write(&path, spec).unwrap();
    let out = crate::util::canary()
        .arg("plan")
        .arg(&path)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("analysis.match"), "{}", stderr(&out));
}
