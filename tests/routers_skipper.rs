//! The Skipper router end to end: the canary Ingress copy, its backend
//! weights at every step, Skipper's route series read by the built-in
//! metrics, rollback, plan and revert.

use canary_sim::scenario::Scenario;
use serde_json::{Value, json};

use crate::routers::{
    answers, assert_plan_matches_cluster, podinfo_scenario, scraped, watch_while_running,
};
use crate::run::{Cluster, assert_exit};
use crate::util::{stderr, stdout};

/// podinfo in `prod` behind Skipper, clients calling `app.example.com`,
/// Prometheus in `kube-system`.
fn scenario() -> Scenario {
    podinfo_scenario(
        "skipper.yaml",
        "seed: 17\nnamespaces:\n  - {name: prod}\n  - {name: kube-system}\n",
        "kube-system",
        "  - {host: app.example.com, namespace: prod, rps: 40}\n",
    )
}

const SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: skipper
  metricsServer: http://prometheus.kube-system:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  ingressRef:
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    name: podinfo-ingress
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

/// The user's Ingress: `app.example.com` to the apex Service, with a
/// predicate of its own that the copy keeps.
fn user_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "podinfo-ingress",
            "namespace": "prod",
            "labels": {"app": "podinfo"},
            "annotations": {"zalando.org/skipper-predicate": "Method(\"GET\")"}
        },
        "spec": {
            "ingressClassName": "skipper",
            "rules": [{"host": "app.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}
            }]}}]
        }
    })
}

fn copy(c: &Cluster) -> Option<Value> {
    c.world.store().get(
        "networking.k8s.io/v1",
        "Ingress",
        "prod",
        "podinfo-ingress-canary",
    )
}

/// The (primary, canary) backend weights of the copy, and whether its
/// routes are switched off.
fn weights(c: &Cluster) -> Option<(i64, i64, bool)> {
    let a = copy(c)?["metadata"]["annotations"].clone();
    let w: Value = serde_json::from_str(a["zalando.org/backend-weights"].as_str()?).ok()?;
    let off = a["zalando.org/skipper-predicate"]
        .as_str()?
        .starts_with("False()");
    Some((
        w["podinfo-primary"].as_i64()?,
        w["podinfo-canary"].as_i64()?,
        off,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipper_canary_is_promoted_step_by_step_rolled_back_planned_and_reverted() {
    let c = Cluster::start_in(scenario(), SPEC).await;
    c.world.store().create(user_ingress()).unwrap();
    let user_before = c
        .world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo-ingress")
        .unwrap();
    c.initialise().await;
    let made = copy(&c).expect("the canary Ingress");
    let backends: Vec<&str> = made["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["backend"]["service"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(backends, ["podinfo-primary", "podinfo-canary"]);
    assert_eq!(made["spec"]["ingressClassName"], "skipper");
    assert_eq!(made["metadata"]["labels"]["app"], "podinfo");
    assert_eq!(
        made["metadata"]["annotations"]["zalando.org/backend-weights"],
        r#"{"podinfo-canary":0,"podinfo-primary":100}"#
    );
    assert_eq!(
        made["metadata"]["annotations"]["zalando.org/skipper-predicate"],
        "Weight(100) && Method(\"GET\")"
    );
    assert_eq!(answers(&c, "app.example.com", &[], 20), (20, 0));

    // A healthy release: the copy shows every planned step, then is
    // switched off with all weight on the primary.
    c.set_image("3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), weights).await;
    assert_exit(&out, 0);
    let mut canary: Vec<i64> = seen.iter().flatten().map(|w| w.1).collect();
    canary.dedup();
    assert_eq!(canary, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(seen.iter().flatten().all(|(p, w, _)| p + w == 100));
    // Switched on while the canary has a share, off once it has none (the
    // copy is created on, at 100/0).
    assert!(
        seen.iter()
            .flatten()
            .skip(1)
            .all(|(_, w, off)| *off == (*w == 0)),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&Some((100, 0, true))));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    // Skipper recorded the copy's route to the canary Service.
    let route = "route=\"kube_prod__podinfo_ingress_canary__app_example_com_____podinfo_canary\"";
    assert!(
        scraped(
            &c,
            "skipper_response_duration_seconds_bucket",
            &[route, "code=\"200\""]
        )
        .await
            > 0.0
    );
    assert!(scraped(&c, "skipper_serve_route_duration_seconds_count", &[route]).await > 0.0);

    // A failing release: rolled back, the primary untouched.
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
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
    assert_eq!(weights(&c), Some((100, 0, true)));
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(answers(&c, "app.example.com", &[], 20), (20, 0));
    assert!(
        scraped(
            &c,
            "skipper_response_duration_seconds_bucket",
            &[route, "code=\"500\""]
        )
        .await
            > 0.0
    );

    assert_plan_matches_cluster(&c, &[], &[("networking.k8s.io/v1", "Ingress", "prod")]);

    // Revert removes the copy; the user's Ingress was never changed.
    let out = crate::util::canary()
        .args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(copy(&c).is_none(), "{}", stdout(&out));
    let user_after = c
        .world
        .store()
        .get("networking.k8s.io/v1", "Ingress", "prod", "podinfo-ingress")
        .unwrap();
    assert_eq!(user_after["spec"], user_before["spec"]);
    assert_eq!(
        user_after["metadata"]["annotations"],
        user_before["metadata"]["annotations"]
    );
    c.world.shutdown().await;
}

/// A Skipper canary whose Ingress does not route to the apex Service is
/// refused before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipper_ingress_without_the_apex_service_is_refused() {
    let c = Cluster::start_in(scenario(), SPEC).await;
    let mut user = user_ingress();
    user["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("other");
    c.world.store().create(user).unwrap();
    let out = c.run(&[]).await;
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("ingress/podinfo-ingress in prod has no path to the apex Service podinfo"),
        "{}",
        stderr(&out)
    );
    assert!(copy(&c).is_none());
    c.world.shutdown().await;
}
