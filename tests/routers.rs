//! `canary run` driving the Gateway API (v1 and v1beta1) and NGINX routers
//! end to end: the built binary against the simulated cluster, whose
//! gateway and ingress controller route the scenario's requests by the
//! HTTPRoute and the canary Ingress the run writes.

use std::collections::BTreeSet;
use std::time::Duration;

use canary_sim::scenario::Scenario;
use canary_sim::{Request, Target};
use serde_json::{Value, json};

use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout};

/// podinfo in `prod` (on Linkerd, whose per-pod series the metric reads),
/// a gateway or ingress controller in front of it, clients calling
/// `www.example.com` (plus `x-canary: insider` and `canary=always` ones).
fn scenario(crds: &str, extra_namespaces: &str) -> Scenario {
    podinfo_scenario(
        "routers.yaml",
        &format!(
            "seed: 7\ncrds: [{crds}]\nnamespaces:\n  - {{name: prod, mesh: linkerd}}\n  \
             - {{name: linkerd-viz}}\n{extra_namespaces}"
        ),
        "linkerd-viz",
        "  - {host: www.example.com, namespace: prod, rps: 30}
  - {host: www.example.com, namespace: prod, rps: 10, headers: {x-canary: insider}}
  - {host: www.example.com, namespace: prod, rps: 10, headers: {cookie: \"canary=always\"}}
",
    )
}

/// podinfo 3.1.0 (two replicas) in `prod`, whose 3.1.1 is healthy and
/// 3.1.2 fails half its requests, with the Prometheus of `prometheus_ns`:
/// `head` gives the seed, CRDs and namespaces, `traffic` the clients.
pub(crate) fn podinfo_scenario(
    file: &str,
    head: &str,
    prometheus_ns: &str,
    traffic: &str,
) -> Scenario {
    let text = format!(
        "
namespace: prod
readinessDelay: 200ms
trafficInterval: 100ms
{head}deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 2
    labels: {{app: podinfo}}
    ports:
      - {{name: http, containerPort: 9898}}
behaviours:
  \"3.1.0\": {{successRate: 100%, latency: {{median: 9ms, p99: 35ms}}}}
  \"3.1.1\": {{successRate: 100%, latency: {{median: 8ms, p99: 30ms}}}}
  \"3.1.2\": {{successRate: 50%, latency: {{median: 9ms, p99: 35ms}}}}
prometheus: {{name: prometheus, namespace: {prometheus_ns}, port: 9090}}
traffic:
{traffic}"
    );
    Scenario::from_yaml(file, &text).unwrap()
}

/// The success rate of the target's pods, from Linkerd's series.
const TEMPLATE: &str = "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: success-rate
  namespace: prod
spec:
  provider:
    type: prometheus
    address: http://prometheus.linkerd-viz:9090
  query: |
    sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", classification!=\"failure\", direction=\"inbound\"}[{{ interval }}]))
    /
    sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", direction=\"inbound\"}[{{ interval }}])) * 100
---
";

fn gateway_spec(provider: &str, analysis: &str) -> String {
    format!(
        "{TEMPLATE}apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: {provider}
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    hosts: [www.example.com]
    gatewayRefs:
      - name: gateway
        namespace: gateway-system
  analysis:
    interval: 1s
    threshold: 2
{analysis}    metrics:
      - name: success-rate
        templateRef:
          name: success-rate
        thresholdRange:
          min: 99
        interval: 5s
"
    )
}

const STEPS: &str = "    stepWeights: [10, 40, 80]\n";

const AB: &str = "    iterations: 4
    match:
      - headers:
          x-canary:
            exact: insider
";

/// The (primary, canary) weights of the weighted rule of podinfo's
/// HTTPRoute.
fn route_weights(c: &Cluster, version: &str) -> Option<(i64, i64)> {
    let r = c.world.store().get(
        &format!("gateway.networking.k8s.io/{version}"),
        "HTTPRoute",
        "prod",
        "podinfo",
    )?;
    r["spec"]["rules"].as_array()?.iter().find_map(|rule| {
        let refs = rule["backendRefs"].as_array()?;
        let w = |n: &str| {
            refs.iter()
                .find(|b| b["name"] == n)
                .and_then(|b| b["weight"].as_i64())
        };
        Some((w("podinfo-primary")?, w("podinfo-canary")?))
    })
}

/// Polls `read` until the run ends, collecting each distinct value it saw,
/// in order.
pub(crate) async fn watch_while_running<T: PartialEq + Clone>(
    c: &Cluster,
    child: std::process::Child,
    read: impl Fn(&Cluster) -> T,
) -> (std::process::Output, Vec<T>) {
    let mut seen: Vec<T> = Vec::new();
    let mut child = child;
    loop {
        let v = read(c);
        if seen.last() != Some(&v) {
            seen.push(v);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (finish(child).await, seen)
}

/// Waits until `done` holds while the run `child` goes on; fails with the
/// run's output if it ends first or nothing happens in two minutes.
pub(crate) async fn wait_during_run(
    c: &Cluster,
    child: &mut std::process::Child,
    what: &str,
    done: impl Fn(&Cluster) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done(c) {
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.stderr.take().map(|mut e| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                s
            });
            panic!("{what}:\n{}", out.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which version answered each of `n` requests to `www.example.com` (or
/// `app.example.com`) with `headers`: (primary, canary).
pub(crate) fn answers(
    c: &Cluster,
    host: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> (usize, usize) {
    let mut primary = 0;
    let mut canary = 0;
    for _ in 0..n {
        let mut req = Request::get(
            Target::Host {
                host: host.to_string(),
                port: None,
                namespace: "prod".to_string(),
            },
            "/",
        );
        req.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let pod = c.world.request(&req).pod.unwrap_or_default();
        if pod.starts_with("podinfo-primary-") {
            primary += 1;
        } else if pod.starts_with("podinfo-") {
            canary += 1;
        }
    }
    (primary, canary)
}

/// podinfo in `prod` behind an edge proxy whose CRDs are `crds`, in
/// namespace `edge_ns` (with the Prometheus that scrapes it), and clients
/// calling `www.example.com` (plus `x-canary: insider` ones).
pub(crate) fn edge_scenario(crds: &str, edge_ns: &str) -> Scenario {
    podinfo_scenario(
        "routers-edge.yaml",
        &format!(
            "seed: 11\ncrds: [{crds}]\nnamespaces:\n  - {{name: prod}}\n  - {{name: {edge_ns}}}\n"
        ),
        edge_ns,
        "  - {host: www.example.com, namespace: prod, rps: 40}
  - {host: www.example.com, namespace: prod, rps: 10, headers: {x-canary: insider}}
",
    )
}

/// The end of an edge router's test, after a promotion to 3.1.1: 3.1.2
/// fails its success rate and is rolled back (`weight`, the router's
/// canary weight, back to 0; the primary keeps 3.1.1 and answers every
/// request), `plan` names the router's objects as they stand in the
/// cluster (`kinds`), and `revert` exits 0.
pub(crate) async fn rolls_back_plans_and_reverts(
    c: &Cluster,
    weight: fn(&Cluster) -> Option<i64>,
    kinds: &[(&str, &str, &str)],
) {
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("success rate"),
        "the rollback names the failed check:\n{}",
        stderr(&out)
    );
    assert_eq!(weight(c), Some(0));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(answers(c, "www.example.com", &[], 20), (20, 0));

    assert_plan_matches_cluster(c, &[], kinds);

    let revert = crate::util::canary()
        .args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&revert, 0);
}

/// The sim's `/metrics` lines of `family` whose labels include `labels`,
/// summed.
pub(crate) async fn scraped(c: &Cluster, family: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(c.world.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && labels.iter().all(|x| l.contains(x)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap_or(0.0))
        .sum()
}

/// Requests podinfo's canary pods (deployment `podinfo`) and primary pods
/// answered so far, by Linkerd's `response_total`: (primary, canary).
async fn served(c: &Cluster) -> (f64, f64) {
    let text = reqwest::get(c.world.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut primary = 0.0;
    let mut canary = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("response_total{") && l.contains("direction=\"inbound\""))
    {
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap_or(0.0);
        if line.contains("deployment=\"podinfo-primary\"") {
            primary += v;
        } else if line.contains("deployment=\"podinfo\"") {
            canary += v;
        }
    }
    (primary, canary)
}

async fn gateway_canary_is_promoted_rolled_back_and_aborted(version: &str) {
    let provider = format!("gatewayapi:{version}");
    let c = Cluster::start_in(scenario("gatewayApi", ""), &gateway_spec(&provider, STEPS)).await;
    c.initialise().await;
    assert_eq!(route_weights(&c, version), Some((100, 0)));
    let route = c
        .world
        .store()
        .get(
            &format!("gateway.networking.k8s.io/{version}"),
            "HTTPRoute",
            "prod",
            "podinfo",
        )
        .unwrap();
    assert_eq!(route["spec"]["hostnames"], json!(["www.example.com"]));
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "gateway");
    assert_eq!(
        route["spec"]["parentRefs"][0]["namespace"],
        "gateway-system"
    );

    // A healthy release: the route shows every planned step.
    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), |c| route_weights(c, version)).await;
    assert_exit(&out, 0);
    let canary: Vec<i64> = seen.iter().flatten().map(|w| w.1).collect();
    assert_eq!(canary, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(seen.iter().flatten().all(|(p, w)| p + w == 100));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );

    // A failing release: rolled back, the primary untouched.
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("Rolling back podinfo.prod failed checks threshold reached 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(route_weights(&c, version), Some((100, 0)));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));

    // Aborted mid-rollout: all traffic back on the primary.
    c.set_image("3.1.0");
    let mut child = c.spawn(&[]);
    wait_during_run(&c, &mut child, "the analysis never started", |c| {
        route_weights(c, version).is_some_and(|(_, w)| w > 0)
    })
    .await;
    let abort = crate::util::canary()
        .args(["abort", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&abort, 0);
    let out = finish(child).await;
    assert_exit(&out, 4);
    assert_eq!(route_weights(&c, version), Some((100, 0)));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_api_v1_canary_is_promoted_step_by_step_rolled_back_and_aborted() {
    gateway_canary_is_promoted_rolled_back_and_aborted("v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_api_v1beta1_canary_is_promoted_step_by_step_rolled_back_and_aborted() {
    gateway_canary_is_promoted_rolled_back_and_aborted("v1beta1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_ab_testing_sends_only_matching_requests_to_the_canary() {
    for version in ["v1", "v1beta1"] {
        let c = Cluster::start_in(
            scenario("gatewayApi", ""),
            // A slow first check on a loaded machine is no verdict here.
            &gateway_spec(&format!("gatewayapi:{version}"), AB)
                .replace("threshold: 2", "threshold: 5"),
        )
        .await;
        c.initialise().await;
        c.set_image("3.1.1");
        let mut child = c.spawn(&[]);
        wait_during_run(&c, &mut child, "the A/B step never started", |c| {
            route_weights(c, version) == Some((0, 100))
        })
        .await;
        // Only requests with the header reach the canary.
        assert_eq!(answers(&c, "www.example.com", &[], 30), (30, 0));
        assert_eq!(
            answers(&c, "www.example.com", &[("x-canary", "insider")], 30),
            (0, 30)
        );
        let out = finish(child).await;
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("Advance podinfo.prod canary iteration 4/4"),
            "{}",
            stderr(&out)
        );
        assert_eq!(route_weights(&c, version), Some((100, 0)));
        assert_eq!(
            answers(&c, "www.example.com", &[("x-canary", "insider")], 20),
            (20, 0)
        );
        assert_eq!(
            c.image("podinfo-primary").await,
            "ghcr.io/stefanprodan/podinfo:3.1.1"
        );
        c.world.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_mirroring_copies_requests_to_the_canary_while_users_get_the_primary() {
    let c = Cluster::start_in(
        scenario("gatewayApi", ""),
        &gateway_spec("gatewayapi:v1", "    iterations: 4\n    mirror: true\n")
            .replace("threshold: 2", "threshold: 5"),
    )
    .await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    let mirrored = |c: &Cluster| {
        c.world
            .store()
            .get(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                "prod",
                "podinfo",
            )
            .is_some_and(|r| {
                r["spec"]["rules"][0]["filters"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["type"] == "RequestMirror"))
            })
    };
    wait_during_run(&c, &mut child, "mirroring never started", mirrored).await;
    let before = served(&c).await;
    // Users are answered by the primary only...
    assert_eq!(answers(&c, "www.example.com", &[], 40), (40, 0));
    let after = served(&c).await;
    // ...while the canary received a copy of each request.
    assert!(after.1 - before.1 >= 40.0, "{before:?} -> {after:?}");
    assert!(after.0 - before.0 >= 40.0, "{before:?} -> {after:?}");
    let out = finish(child).await;
    assert_exit(&out, 0);
    let log = stderr(&out);
    assert!(
        log.contains("Advance podinfo.prod canary iteration 4/4"),
        "{log}"
    );
    assert!(
        log.contains("Stop traffic mirroring and route all traffic to canary"),
        "{log}"
    );
    assert!(!mirrored(&c));
    assert_eq!(route_weights(&c, "v1"), Some((100, 0)));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_api_is_detected_and_plan_lists_exactly_the_objects_run_creates() {
    let spec = gateway_spec("gatewayapi:v1", STEPS).replace("  provider: gatewayapi:v1\n", "");
    let c = Cluster::start_in(scenario("gatewayApi", ""), &spec).await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(
            "Using provider gatewayapi:v1: CRD httproutes.gateway.networking.k8s.io exists and \
             serves v1"
        ),
        "{}",
        stderr(&out)
    );
    assert_plan_matches_cluster(
        &c,
        &["--mesh-provider", "gatewayapi:v1"],
        &[("gateway.networking.k8s.io/v1", "HTTPRoute", "prod")],
    );
    c.world.shutdown().await;
}

/// `canary plan` of the cluster's spec (with `plan_args`) exits 0, every
/// object it lists by name exists, and every object the run created (its
/// managed-by label) is in it; router kinds are given with the namespace
/// they live in ("" for cluster-scoped ones). Returns the plan.
pub(crate) fn assert_plan_matches_cluster(
    c: &Cluster,
    plan_args: &[&str],
    router_kinds: &[(&str, &str, &str)],
) -> Value {
    let plan = crate::util::canary()
        .arg("plan")
        .arg(&c.spec)
        .args(plan_args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert_exit(&plan, 0);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: BTreeSet<(String, String)> = plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap();
            let kind = kind.split(' ').next().unwrap().to_string();
            (kind, o["name"].as_str().unwrap().to_string())
        })
        .filter(|(k, _)| k != "ConfigMap/Secret")
        .collect();
    let mut kinds = vec![("apps/v1", "Deployment", "prod"), ("v1", "Service", "prod")];
    kinds.extend_from_slice(router_kinds);
    let mut made = BTreeSet::new();
    for (api_version, kind, ns) in kinds {
        let ns = (!ns.is_empty()).then_some(ns);
        for o in c.world.store().list(api_version, kind, ns) {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            let ours = o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "canary";
            if ours {
                made.insert((kind.to_string(), name.clone()));
            }
            if planned.contains(&(kind.to_string(), name.clone())) {
                made.insert((kind.to_string(), name));
            }
        }
    }
    assert_eq!(
        made, planned,
        "the plan lists {planned:?}, the run made {made:?}"
    );
    plan
}

// ---------------------------------------------------------------------------
// NGINX
// ---------------------------------------------------------------------------

fn nginx_spec(analysis: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: nginx
  metricsServer: http://prometheus.linkerd-viz:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  ingressRef:
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    name: podinfo
  service:
    port: 80
    targetPort: 9898
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

/// The user's Ingress: `www.example.com` to the apex Service.
fn user_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "podinfo",
            "namespace": "prod",
            "labels": {"app": "podinfo"},
            "annotations": {"kubernetes.io/ingress.class": "nginx"}
        },
        "spec": {"rules": [{"host": "www.example.com", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}
        }]}}]}
    })
}

async fn nginx_cluster(analysis: &str) -> Cluster {
    let c = Cluster::start_in(
        scenario("smi", "  - {name: ingress-nginx}\n"),
        &nginx_spec(analysis),
    )
    .await;
    c.world.store().create(user_ingress()).unwrap();
    c.world
        .store()
        .create(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "nginx"},
            "spec": {"controller": "k8s.io/ingress-nginx"}
        }))
        .unwrap();
    c
}

fn canary_annotations(c: &Cluster) -> Option<Value> {
    c.world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo-canary")
        .map(|i| i["metadata"]["annotations"].clone())
}

/// The canary Ingress's weight while it is switched on; 0 when off.
fn nginx_weight(c: &Cluster) -> Option<i64> {
    let a = canary_annotations(c)?;
    if a["nginx.ingress.kubernetes.io/canary"] != "true" {
        return Some(0);
    }
    Some(
        a["nginx.ingress.kubernetes.io/canary-weight"]
            .as_str()
            .map_or(0, |w| w.parse().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_canary_is_promoted_step_by_step_rolled_back_and_aborted() {
    let c = nginx_cluster(STEPS).await;
    let user_before = c
        .world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo")
        .unwrap();
    c.initialise().await;
    let copy = c
        .world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo-canary")
        .expect("the canary Ingress");
    assert_eq!(
        copy["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "podinfo-canary"
    );
    assert_eq!(
        copy["metadata"]["annotations"],
        json!({"kubernetes.io/ingress.class": "nginx", "nginx.ingress.kubernetes.io/canary": "false"})
    );

    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), nginx_weight).await;
    assert_exit(&out, 0);
    let weights: Vec<i64> = seen.iter().flatten().copied().collect();
    assert_eq!(weights, [0, 10, 40, 80, 0], "{seen:?}");
    assert_eq!(
        canary_annotations(&c).unwrap(),
        json!({"kubernetes.io/ingress.class": "nginx", "nginx.ingress.kubernetes.io/canary": "false"})
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );

    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert_eq!(nginx_weight(&c), Some(0));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(answers(&c, "www.example.com", &[], 20), (20, 0));

    c.set_image("3.1.0");
    let mut child = c.spawn(&[]);
    wait_during_run(&c, &mut child, "the analysis never started", |c| {
        nginx_weight(c).is_some_and(|w| w > 0)
    })
    .await;
    let abort = crate::util::canary()
        .args(["abort", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&abort, 0);
    assert_exit(&finish(child).await, 4);
    assert_eq!(nginx_weight(&c), Some(0));

    // The user's Ingress was never changed.
    let user_after = c
        .world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo")
        .unwrap();
    assert_eq!(user_after["spec"], user_before["spec"]);
    assert_eq!(
        user_after["metadata"]["annotations"],
        user_before["metadata"]["annotations"]
    );

    assert_plan_matches_cluster(&c, &[], &[("networking.k8s.io/v1", "Ingress", "prod")]);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_ab_testing_by_header_and_by_cookie_sends_only_matching_requests() {
    for (header, value, matching) in [
        ("x-canary", "insider", ("x-canary", "insider")),
        ("cookie", "canary", ("cookie", "canary=always")),
    ] {
        let analysis = format!(
            "    iterations: 4\n    match:\n      - headers:\n          {header}:\n            exact: {value}\n"
        );
        let c = nginx_cluster(&analysis).await;
        c.initialise().await;
        c.set_image("3.1.1");
        let mut child = c.spawn(&[]);
        let by = if header == "cookie" {
            "nginx.ingress.kubernetes.io/canary-by-cookie"
        } else {
            "nginx.ingress.kubernetes.io/canary-by-header"
        };
        wait_during_run(&c, &mut child, "the A/B step never started", |c| {
            canary_annotations(c).is_some_and(|a| a[by].is_string())
        })
        .await;
        assert_eq!(answers(&c, "www.example.com", &[], 30), (30, 0), "{header}");
        assert_eq!(
            answers(&c, "www.example.com", &[matching], 30),
            (0, 30),
            "{header}"
        );
        let out = finish(child).await;
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("Advance podinfo.prod canary iteration 4/4"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).contains("podinfo.prod: promoted"));
        assert_eq!(
            canary_annotations(&c).unwrap()["nginx.ingress.kubernetes.io/canary"],
            "false"
        );
        assert_eq!(answers(&c, "www.example.com", &[matching], 20), (20, 0));
        c.world.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_is_detected_by_its_namespace_and_ingress_class() {
    let c = nginx_cluster(STEPS).await;
    let spec = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("  provider: nginx\n", "");
    std::fs::write(&c.spec, spec).unwrap();
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out)
            .contains("Using provider nginx: namespace ingress-nginx and IngressClass nginx exist"),
        "{}",
        stderr(&out)
    );
    c.world.shutdown().await;
}

// ---------------------------------------------------------------------------
// Session affinity on Istio and the Gateway API.
// ---------------------------------------------------------------------------

/// Steps long enough to look at the router and send requests at one.
const AFFINITY: &str = "    stepWeights: [10, 20, 30, 40, 50, 60]
    sessionAffinity:
      cookieName: flagger-cookie
      primaryCookieName: primary-cookie
      maxAge: 600
";

/// The Istio Canary: a VirtualService for `www.example.com` bound to a
/// gateway.
fn istio_spec(analysis: &str) -> String {
    gateway_spec("istio", analysis).replace(
        "    gatewayRefs:\n      - name: gateway\n        namespace: gateway-system\n",
        "    gateways: [istio-system/public-gateway]\n",
    )
}

/// One request to `www.example.com` with a `Cookie` header (none when
/// empty): the pod that answered and the `Set-Cookie` values it got.
fn cookie_request(c: &Cluster, cookie: &str) -> (String, Vec<String>) {
    let mut req = Request::get(
        Target::Host {
            host: "www.example.com".to_string(),
            port: None,
            namespace: "prod".to_string(),
        },
        "/",
    );
    if !cookie.is_empty() {
        req.headers = vec![("Cookie".to_string(), cookie.to_string())];
    }
    let r = c.world.request(&req);
    let set: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .collect();
    (r.pod.unwrap_or_default(), set)
}

fn is_canary_pod(pod: &str) -> bool {
    pod.starts_with("podinfo-") && !pod.starts_with("podinfo-primary-")
}

/// Sends requests without cookies until the canary answers one, as a new
/// client does: the cookie its answer set (`name=value`) and the
/// `Set-Cookie` value, and that the primary's answers set the primary
/// cookie meanwhile.
fn first_canary_cookie(c: &Cluster) -> (String, String, bool) {
    let mut primary_cookie = false;
    for _ in 0..2000 {
        let (pod, set) = cookie_request(c, "");
        if is_canary_pod(&pod) {
            let v = set
                .iter()
                .find(|v| v.starts_with("flagger-cookie="))
                .unwrap_or_else(|| panic!("the canary's answer set no cookie: {set:?}"))
                .clone();
            let cookie = v.split(';').next().unwrap().to_string();
            return (cookie, v, primary_cookie);
        }
        primary_cookie |= set.iter().any(|v| v.starts_with("primary-cookie="));
        assert!(
            !set.iter().any(|v| v.starts_with("flagger-cookie=")),
            "the primary set the canary cookie: {set:?}"
        );
    }
    panic!("no request reached the canary");
}

/// Which version answered `n` requests carrying `cookie`: (primary, canary).
fn answers_with_cookie(c: &Cluster, cookie: &str, n: usize) -> (usize, usize) {
    let mut out = (0, 0);
    for _ in 0..n {
        let (pod, _) = cookie_request(c, cookie);
        if is_canary_pod(&pod) {
            out.1 += 1;
        } else if pod.starts_with("podinfo-primary-") {
            out.0 += 1;
        }
    }
    out
}

/// `canary ACTION podinfo -n prod`, which must succeed.
async fn act(c: &Cluster, action: &str) {
    let mut cmd = crate::util::canary();
    cmd.arg(action)
        .args(["podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
}

/// The run's state, from the primary's annotation.
fn state(c: &Cluster) -> Value {
    c.world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .and_then(|d| {
            serde_json::from_str(d["metadata"]["annotations"]["canary.flagger.app/state"].as_str()?)
                .ok()
        })
        .unwrap_or(Value::Null)
}

/// A release with session affinity is promoted; at a step a client that
/// met the canary stays on it, and once promoted its cookie is expired.
/// `routes` reads the router object's routes (VirtualService `http` or
/// HTTPRoute `rules`) and `sticky` says what its first route matches and
/// sends to the canary: (cookie pattern, canary weight).
async fn affinity_release(
    c: &Cluster,
    weight: impl Fn(&Cluster) -> Option<i64>,
    sticky: impl Fn(&Cluster) -> Option<(String, i64)>,
    set_cookie_of_first: impl Fn(&Cluster) -> Option<String>,
) {
    c.initialise().await;
    c.set_image("3.1.1");
    let mut child = c.spawn(&[]);
    wait_during_run(c, &mut child, "the canary never got traffic", |c| {
        weight(c).is_some_and(|w| w > 0)
    })
    .await;
    // Held at its step while the clients are looked at, so that a slow
    // machine cannot see the promotion come first.
    act(c, "pause").await;
    wait_during_run(c, &mut child, "the run never paused", |c| {
        state(c)["paused"].is_object()
    })
    .await;
    assert!(weight(c).is_some_and(|w| w > 0));
    let (cookie, set_cookie, _) = first_canary_cookie(c);
    assert!(set_cookie.ends_with("; Max-Age=600"), "{set_cookie}");
    let value = cookie.split_once('=').unwrap().1;
    assert_eq!(value.len(), 10, "{cookie}");
    // The first route matches the cookie and sends it to the canary only.
    let (pattern, w) = sticky(c).expect("a sticky route");
    assert_eq!(pattern, format!(".*flagger-cookie.*{value}.*"));
    assert_eq!(w, 100);
    // The client holding it keeps reaching the canary, whatever the
    // weights say; one without it mostly reaches the primary.
    assert_eq!(answers_with_cookie(c, &cookie, 40), (0, 40));
    assert!(answers_with_cookie(c, "", 40).0 > 0);
    act(c, "resume").await;
    let out = finish(child).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Promotion completed!"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    // Promoted: the cookie's clients go to the primary and are told to
    // drop it.
    assert_eq!(weight(c), Some(0));
    assert_eq!(
        set_cookie_of_first(c),
        Some(format!("{cookie}; Max-Age=-1"))
    );
    let (pod, set) = cookie_request(c, &cookie);
    assert!(pod.starts_with("podinfo-primary-"), "{pod}");
    assert_eq!(set, [format!("{cookie}; Max-Age=-1")]);
    assert_eq!(answers_with_cookie(c, &cookie, 20), (20, 0));
}

fn virtual_service(c: &Cluster) -> Option<Value> {
    c.world.store().get(
        "networking.istio.io/v1beta1",
        "VirtualService",
        "prod",
        "podinfo",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_session_affinity_keeps_a_client_on_the_canary_and_expires_its_cookie() {
    let c = Cluster::start_in(scenario("istio", ""), &istio_spec(AFFINITY)).await;
    let weighted = |c: &Cluster| {
        let vs = virtual_service(c)?;
        let http = vs["spec"]["http"].as_array()?.clone();
        http.last().cloned()
    };
    affinity_release(
        &c,
        |c| {
            weighted(c)?["route"]
                .as_array()?
                .iter()
                .find(|d| d["destination"]["host"] == "podinfo-canary")?["weight"]
                .as_i64()
        },
        |c| {
            let vs = virtual_service(c)?;
            let first = &vs["spec"]["http"][0];
            if first["name"] != "sticky-route" {
                return None;
            }
            let pattern = first["match"][0]["headers"]["Cookie"]["regex"].as_str()?;
            let w = first["route"]
                .as_array()?
                .iter()
                .find(|d| d["destination"]["host"] == "podinfo-canary")?["weight"]
                .as_i64()?;
            // The primary's clients have a route of their own, and the
            // weighted route's destinations set both cookies.
            let second = &vs["spec"]["http"][1];
            assert_eq!(second["name"], "sticky-primary-route");
            let w_route = weighted(c)?;
            let set = |host: &str| {
                w_route["route"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["destination"]["host"] == host)
                    .unwrap()["headers"]["response"]["add"]["Set-Cookie"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert!(set("podinfo-canary").starts_with("flagger-cookie="));
            assert!(set("podinfo-primary").starts_with("primary-cookie="));
            assert!(set("podinfo-primary").ends_with("; Max-Age=1"));
            Some((pattern.to_string(), w))
        },
        |c| {
            let vs = virtual_service(c)?;
            let first = &vs["spec"]["http"][0];
            assert_eq!(first["name"], "sticky-route");
            first["headers"]["response"]["add"]["Set-Cookie"]
                .as_str()
                .map(str::to_string)
        },
    )
    .await;
    c.world.shutdown().await;
}

fn http_route(c: &Cluster) -> Option<Value> {
    c.world.store().get(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "prod",
        "podinfo",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_session_affinity_keeps_a_client_on_the_canary_and_expires_its_cookie() {
    let c = Cluster::start_in(
        scenario("gatewayApi", ""),
        &gateway_spec("gatewayapi:v1", AFFINITY),
    )
    .await;
    let set_cookies = |v: &Value| -> Vec<String> {
        v["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["type"] == "ResponseHeaderModifier")
            .flat_map(|f| {
                f["responseHeaderModifier"]["add"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .filter(|h| h["name"] == "Set-Cookie")
            .map(|h| h["value"].as_str().unwrap().to_string())
            .collect()
    };
    affinity_release(
        &c,
        |c| {
            let r = http_route(c)?;
            r["spec"]["rules"].as_array()?.last()?["backendRefs"]
                .as_array()?
                .iter()
                .find(|b| b["name"] == "podinfo-canary")?["weight"]
                .as_i64()
        },
        |c| {
            let r = http_route(c)?;
            let rules = r["spec"]["rules"].as_array()?.clone();
            if rules.len() != 3 {
                return None;
            }
            let header = &rules[0]["matches"][0]["headers"][0];
            assert_eq!(header["name"], "Cookie");
            assert_eq!(header["type"], "RegularExpression");
            let w = rules[0]["backendRefs"]
                .as_array()?
                .iter()
                .find(|b| b["name"] == "podinfo-canary")?["weight"]
                .as_i64()?;
            assert!(
                rules[1]["matches"][0]["headers"][0]["value"]
                    .as_str()?
                    .starts_with(".*primary-cookie.*")
            );
            let backend = |name: &str| {
                rules[2]["backendRefs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["name"] == name)
                    .unwrap()
                    .clone()
            };
            assert!(set_cookies(&backend("podinfo-canary"))[0].starts_with("flagger-cookie="));
            assert!(set_cookies(&backend("podinfo-primary"))[0].ends_with("; Max-Age=1"));
            Some((header["value"].as_str()?.to_string(), w))
        },
        |c| {
            let r = http_route(c)?;
            set_cookies(&r["spec"]["rules"][0]).into_iter().next()
        },
    )
    .await;
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_analysis_on_the_kubernetes_provider_is_run_with_flaggers_warnings() {
    let spec = gateway_spec("kubernetes", "    stepWeight: 20\n").replace(
        "    hosts: [www.example.com]\n    gatewayRefs:\n      - name: gateway\n        \
         namespace: gateway-system\n",
        "",
    );
    let c = Cluster::start_in(scenario("", ""), &spec).await;
    c.initialise().await;
    c.set_image("3.1.1");
    // The canary Service gets no traffic here, so its checks fail: what
    // matters is what the run said as it started.
    let out = c.run(&["-o", "json"]).await;
    let warnings: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "warning")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        warnings,
        [
            "Progressive traffic is not supported when using the kubernetes provider",
            "Setting canaryAnalysis.iterations: 10"
        ]
    );
    // The text output says it too.
    c.set_image("3.1.0");
    let out = c.run(&[]).await;
    assert!(
        stderr(&out)
            .contains("Progressive traffic is not supported when using the kubernetes provider"),
        "{}",
        stderr(&out)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_is_detected_by_its_namespace_and_crd_and_two_meshes_are_an_error_naming_the_flag() {
    let spec = istio_spec(STEPS).replace("  provider: istio\n", "");
    // Istio alone: chosen, with the reason.
    let c = Cluster::start_in(scenario("istio", "  - {name: istio-system}\n"), &spec).await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(
            "Using provider istio: namespace istio-system and CRD \
             virtualservices.networking.istio.io exist"
        ),
        "{}",
        stderr(&out)
    );
    assert!(virtual_service(&c).is_some());
    c.world.shutdown().await;

    // Istio and the Gateway API: the user chooses, and nothing is written.
    let c = Cluster::start_in(
        scenario("istio, gatewayApi", "  - {name: istio-system}\n"),
        &spec,
    )
    .await;
    let out = c.run(&[]).await;
    // A usage error: the command line must say which.
    assert_exit(&out, 2);
    let err = stderr(&out);
    for words in [
        "several providers found",
        "istio (namespace istio-system and CRD virtualservices.networking.istio.io exist)",
        "gatewayapi:v1 (CRD httproutes.gateway.networking.k8s.io exists and serves v1)",
        "choose one with --mesh-provider",
    ] {
        assert!(err.contains(words), "{words}: {err}");
    }
    assert!(virtual_service(&c).is_none());
    assert!(http_route(&c).is_none());
    assert!(
        c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .is_none()
    );
    // Named, it runs.
    let out = c.run(&["--mesh-provider", "istio"]).await;
    assert_exit(&out, 0);
    assert!(virtual_service(&c).is_some());
    c.world.shutdown().await;
}

// ---------------------------------------------------------------------------
// The traffic events, per router.
// ---------------------------------------------------------------------------

/// The `traffic` events of a `run -o json`: each version's request rate,
/// success rate and p99 where the metrics server had them.
pub(crate) fn traffic_events(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "traffic")
        .map(|e| e["traffic"].clone())
        .collect()
}

/// Some traffic event gave both versions a request rate above 0, a
/// success rate and a latency.
pub(crate) fn assert_both_versions_measured(out: &std::process::Output) {
    let events = traffic_events(out);
    let measured = |t: &Value, v: &str| {
        t[v]["requestRate"].as_f64().is_some_and(|r| r > 0.0)
            && t[v]["successRate"].as_f64().is_some()
            && t[v]["latencyP99Ms"].as_f64().is_some_and(|l| l > 0.0)
    };
    assert!(
        events
            .iter()
            .any(|t| measured(t, "primary") && measured(t, "canary")),
        "{events:#?}\n{}",
        stderr(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_events_of_an_nginx_canary_give_each_versions_numbers() {
    let c = nginx_cluster("    stepWeights: [20, 40, 60]\n").await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&["-o", "json", "--traffic"]).await;
    assert_exit(&out, 0);
    assert_both_versions_measured(&out);
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_api_canary_has_no_per_version_traffic_events() {
    let c = Cluster::start_in(
        scenario("gatewayApi", ""),
        &gateway_spec("gatewayapi:v1", STEPS),
    )
    .await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&["-o", "json", "--traffic"]).await;
    assert_exit(&out, 0);
    // Its series do not tell the versions apart; the live view says so.
    assert_eq!(traffic_events(&out), Vec::<Value>::new());
    c.world.shutdown().await;
}
