//! The Kuma and APISIX routers end to end, and App Mesh, which `validate`
//! accepts but `run` and `plan` refuse since AWS ended its support.

use std::time::Duration;

use canary_sim::scenario::Scenario;
use canary_sim::{Request, Target};
use serde_json::{Value, json};

use crate::routers::{assert_plan_matches_cluster, podinfo_scenario, watch_while_running};
use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout};

const APP_MESH: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: appmesh
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    threshold: 2
    stepWeight: 20
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_mesh_canary_is_valid_with_a_warning_and_refused_by_run_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("appmesh.yaml");
    std::fs::write(&spec, APP_MESH).unwrap();

    let out = crate::util::canary()
        .arg("validate")
        .arg(&spec)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("ok  podinfo.prod"), "{text}");
    assert!(
        text.contains(
            "    warning: provider `appmesh`: AWS ended support for App Mesh on 2026-09-30"
        ),
        "{text}"
    );
    let json = crate::util::canary()
        .arg("validate")
        .arg(&spec)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert_exit(&json, 0);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert!(
        report["canaries"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("AWS ended support for App Mesh")
    );

    let plan = crate::util::canary()
        .arg("plan")
        .arg(&spec)
        .output()
        .unwrap();
    let c = Cluster::start_in(Scenario::seed(), APP_MESH).await;
    let run = c.run(&[]).await;
    for (command, out) in [("plan", plan), ("run", run)] {
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains("AWS ended support for App Mesh on 2026-09-30"),
            "{command}: {}",
            stderr(&out)
        );
    }
    // Refused before anything was written.
    assert!(
        c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .is_none()
    );
    c.world.shutdown().await;
}

// ---------------------------------------------------------------------------
// Kuma
// ---------------------------------------------------------------------------

/// podinfo in `prod`, a Kuma mesh (its namespace and TrafficRoute CRD),
/// clients calling the apex Service, Prometheus in `mesh-observability`.
fn kuma_scenario() -> Scenario {
    podinfo_scenario(
        "kuma.yaml",
        "seed: 11\ncrds: [kuma]\nnamespaces:\n  - {name: prod, mesh: kuma}\n  - {name: kuma-system}\n  \
         - {name: mesh-observability}\n",
        "mesh-observability",
        "  - {service: podinfo, namespace: prod, port: 9898, rps: 40}\n",
    )
}

/// The Kuma Canary with the built-in metrics; no provider named, so `run`
/// detects Kuma.
const KUMA_SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  metricsServer: http://prometheus.mesh-observability:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    threshold: 2
    stepWeights: [10, 40, 80]
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 5s
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 5s
";

fn traffic_route(c: &Cluster) -> Option<Value> {
    c.world
        .store()
        .get("kuma.io/v1alpha1", "TrafficRoute", "", "podinfo")
}

/// The (primary, canary) weights of podinfo's TrafficRoute.
fn kuma_weights(c: &Cluster) -> Option<(i64, i64)> {
    let tr = traffic_route(c)?;
    let split = tr["spec"]["conf"]["split"].as_array()?;
    let w = |svc: &str| {
        split
            .iter()
            .find(|s| s["destination"]["kuma.io/service"] == svc)
            .and_then(|s| s["weight"].as_i64())
    };
    Some((
        w("podinfo-primary_prod_svc_9898")?,
        w("podinfo-canary_prod_svc_9898")?,
    ))
}

/// Which version answered each of `n` requests to the apex Service:
/// (primary, canary).
fn apex_answers(c: &Cluster, n: usize) -> (usize, usize) {
    let mut out = (0, 0);
    for _ in 0..n {
        let req = Request::get(
            Target::Service {
                namespace: "prod".into(),
                name: "podinfo".into(),
                port: Some(9898),
            },
            "/",
        );
        let pod = c.world.request(&req).pod.unwrap_or_default();
        if pod.starts_with("podinfo-primary-") {
            out.0 += 1;
        } else if pod.starts_with("podinfo-") {
            out.1 += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kuma_canary_is_detected_promoted_step_by_step_rolled_back_planned_and_reverted() {
    let c = Cluster::start_in(kuma_scenario(), KUMA_SPEC).await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(
            "Using provider kuma: namespace kuma-system and CRD trafficroutes.kuma.io exist"
        ),
        "{}",
        stderr(&out)
    );
    let tr = traffic_route(&c).expect("the TrafficRoute");
    assert_eq!(tr["mesh"], "default");
    assert_eq!(
        tr["spec"]["destinations"],
        json!([{"match": {"kuma.io/service": "podinfo_prod_svc_9898"}}])
    );
    assert_eq!(
        tr["spec"]["sources"],
        json!([{"match": {"kuma.io/service": "*"}}])
    );
    assert_eq!(
        tr["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    assert_eq!(kuma_weights(&c), Some((100, 0)));

    // A healthy release: the TrafficRoute shows every planned step, and
    // the built-in metrics read the canary's Kuma series.
    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), kuma_weights).await;
    assert_exit(&out, 0);
    let canary: Vec<i64> = seen.iter().flatten().map(|w| w.1).collect();
    assert_eq!(canary, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(seen.iter().flatten().all(|(p, w)| p + w == 100));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );

    // A failing release: its canary's Kuma series show the errors the
    // built-in success rate reads; rolled back, the primary untouched.
    c.set_image("3.1.2");
    let mut child = c.spawn(&[]);
    c.wait_until("the analysis never started", Duration::from_secs(60), |c| {
        kuma_weights(c).is_some_and(|(_, w)| w > 0)
    })
    .await;
    let canary_series = "service=\"podinfo-canary_prod_svc_9898\"";
    let mut failed = 0.0;
    while failed == 0.0 && child.try_wait().unwrap().is_none() {
        failed = crate::routers::scraped(
            &c,
            "envoy_cluster_upstream_rq",
            &[canary_series, "envoy_response_code=\"5"],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed > 0.0, "no failed requests recorded for the canary");
    assert!(
        crate::routers::scraped(
            &c,
            "envoy_cluster_upstream_rq_time_bucket",
            &[canary_series]
        )
        .await
            > 0.0
    );
    let out = finish(child).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("Rolling back podinfo.prod failed checks threshold reached 2"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("request-success-rate"),
        "{}",
        stderr(&out)
    );
    assert_eq!(kuma_weights(&c), Some((100, 0)));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(apex_answers(&c, 20), (20, 0));

    // The plan lists exactly what the run made.
    assert_plan_matches_cluster(
        &c,
        &["--mesh-provider", "kuma"],
        &[("kuma.io/v1alpha1", "TrafficRoute", "")],
    );

    // Revert removes the TrafficRoute.
    let out = crate::util::canary()
        .args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(traffic_route(&c).is_none(), "{}", stdout(&out));
    c.world.shutdown().await;
}

// ---------------------------------------------------------------------------
// APISIX
// ---------------------------------------------------------------------------

/// podinfo in `prod` behind the APISIX gateway, clients calling
/// `app.example.com`, Prometheus in `ingress-apisix`.
fn apisix_scenario() -> Scenario {
    podinfo_scenario(
        "apisix.yaml",
        "seed: 13\ncrds: [apisix]\nnamespaces:\n  - {name: prod}\n  - {name: ingress-apisix}\n",
        "ingress-apisix",
        "  - {host: app.example.com, namespace: prod, rps: 40}\n",
    )
}

const APISIX_SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: apisix
  metricsServer: http://prometheus.ingress-apisix:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  routeRef:
    apiVersion: apisix.apache.org/v2
    kind: ApisixRoute
    name: podinfo
  service:
    port: 80
    targetPort: 9898
  analysis:
    interval: 1s
    threshold: 2
    stepWeights: [10, 40, 80]
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 5s
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 5s
";

/// The user's ApisixRoute: `app.example.com` to the apex Service.
fn user_apisix_route() -> Value {
    json!({
        "apiVersion": "apisix.apache.org/v2",
        "kind": "ApisixRoute",
        "metadata": {"name": "podinfo", "namespace": "prod", "labels": {"app": "podinfo"}},
        "spec": {"http": [{
            "name": "rule1",
            "match": {"hosts": ["app.example.com"], "paths": ["/*"]},
            "backends": [{"serviceName": "podinfo", "servicePort": 80}]
        }]}
    })
}

fn apisix_copy(c: &Cluster) -> Option<Value> {
    c.world.store().get(
        "apisix.apache.org/v2",
        "ApisixRoute",
        "prod",
        "podinfo-podinfo-canary",
    )
}

/// The (primary, canary) weights of the copied route.
fn apisix_weights(c: &Cluster) -> Option<(i64, i64)> {
    let r = apisix_copy(c)?;
    let backends = r["spec"]["http"][0]["backends"].as_array()?.clone();
    let w = |svc: &str| {
        backends
            .iter()
            .find(|b| b["serviceName"] == svc)
            .and_then(|b| b["weight"].as_i64())
    };
    Some((w("podinfo-primary")?, w("podinfo-canary")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apisix_canary_is_promoted_step_by_step_rolled_back_planned_and_reverted() {
    let c = Cluster::start_in(apisix_scenario(), APISIX_SPEC).await;
    c.world.store().create(user_apisix_route()).unwrap();
    let user_before = c
        .world
        .store()
        .get("apisix.apache.org/v2", "ApisixRoute", "prod", "podinfo")
        .unwrap();
    c.initialise().await;
    let copy = apisix_copy(&c).expect("the canary ApisixRoute");
    assert_eq!(copy["spec"]["http"][0]["priority"], 10000);
    assert_eq!(copy["spec"]["http"][0]["name"], "rule1");
    assert_eq!(
        copy["spec"]["http"][0]["match"],
        json!({"hosts": ["app.example.com"], "paths": ["/*"]})
    );
    assert_eq!(copy["metadata"]["labels"]["app"], "podinfo");
    assert_eq!(apisix_weights(&c), Some((100, 0)));

    // A healthy release: the copy shows every planned step.
    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), apisix_weights).await;
    assert_exit(&out, 0);
    let canary: Vec<i64> = seen.iter().flatten().map(|w| w.1).collect();
    assert_eq!(canary, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(seen.iter().flatten().all(|(p, w)| p + w == 100));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    // APISIX recorded the route's traffic under the copy's name.
    let route = "route=\"prod_podinfo-podinfo-canary_rule1\"";
    assert!(
        crate::routers::scraped(&c, "apisix_http_status", &[route, "code=\"200\""]).await > 0.0
    );
    assert!(
        crate::routers::scraped(
            &c,
            "apisix_http_latency_bucket",
            &[route, "type=\"request\""]
        )
        .await
            > 0.0
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
    assert_eq!(apisix_weights(&c), Some((100, 0)));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(
        crate::routers::answers(&c, "app.example.com", &[], 20),
        (20, 0)
    );
    assert!(
        crate::routers::scraped(&c, "apisix_http_status", &[route, "code=\"500\""]).await > 0.0
    );

    assert_plan_matches_cluster(&c, &[], &[("apisix.apache.org/v2", "ApisixRoute", "prod")]);

    // Revert removes the copy; the user's route was never changed.
    let out = crate::util::canary()
        .args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(apisix_copy(&c).is_none(), "{}", stdout(&out));
    let user_after = c
        .world
        .store()
        .get("apisix.apache.org/v2", "ApisixRoute", "prod", "podinfo")
        .unwrap();
    assert_eq!(user_after["spec"], user_before["spec"]);
    c.world.shutdown().await;
}
