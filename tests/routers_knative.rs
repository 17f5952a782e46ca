//! The Knative router end to end: the Knative Service is the target and
//! the router; its `spec.traffic` splits the requests between the latest
//! revision and the primary revision its annotation names.

use std::time::Duration;

use canary_sim::scenario::Scenario;
use canary_sim::store::Subresource;
use serde_json::{Value, json};

use crate::routers::{assert_plan_matches_cluster, watch_while_running};
use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout};

/// Knative Serving in the cluster, clients calling the Knative Service's
/// host, Prometheus in `knative-serving`.
fn knative_scenario() -> Scenario {
    let text = "
seed: 17
namespace: prod
readinessDelay: 200ms
trafficInterval: 100ms
crds: [knative]
namespaces:
  - {name: prod}
  - {name: knative-serving}
behaviours:
  \"3.1.0\": {successRate: 100%, latency: {median: 9ms, p99: 35ms}}
  \"3.1.1\": {successRate: 100%, latency: {median: 8ms, p99: 30ms}}
  \"3.1.2\": {successRate: 50%, latency: {median: 9ms, p99: 35ms}}
prometheus: {name: prometheus, namespace: knative-serving, port: 9090}
traffic:
  - {host: podinfo.prod.svc.cluster.local, namespace: prod, port: 80, rps: 40}
";
    Scenario::from_yaml("knative.yaml", text).unwrap()
}

const KNATIVE_SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: knative
  metricsServer: http://prometheus.knative-serving:9090
  targetRef:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: podinfo
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

const SERVING: &str = "serving.knative.dev/v1";

fn image(tag: &str) -> String {
    format!("ghcr.io/stefanprodan/podinfo:{tag}")
}

fn ksvc(c: &Cluster) -> Option<Value> {
    c.world.store().get(SERVING, "Service", "prod", "podinfo")
}

fn set_ksvc_image(c: &Cluster, tag: &str) {
    let image = image(tag);
    c.world
        .store()
        .modify(
            SERVING,
            "Service",
            "prod",
            "podinfo",
            Subresource::Main,
            |s| {
                s["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            },
        )
        .unwrap();
}

/// The Knative Service's `spec.traffic` as (primary revision, its
/// percent, the latest revision's percent).
fn traffic(c: &Cluster) -> Option<(String, i64, i64)> {
    let s = ksvc(c)?;
    let t = s["spec"]["traffic"].as_array()?;
    let latest = t.iter().find(|e| e["latestRevision"] == true)?;
    let primary = t.iter().find(|e| e["revisionName"].is_string())?;
    Some((
        primary["revisionName"].as_str()?.to_string(),
        primary["percent"].as_i64()?,
        latest["percent"].as_i64()?,
    ))
}

fn primary_revision(c: &Cluster) -> Option<String> {
    ksvc(c)?["metadata"]["annotations"]["flagger.app/primary-revision"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knative_service_is_initialised_promoted_step_by_step_rolled_back_planned_and_reverted() {
    let c = Cluster::start_in(knative_scenario(), KNATIVE_SPEC).await;
    c.world
        .store()
        .create(json!({
            "apiVersion": SERVING, "kind": "Service",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {"template": {"spec": {"containers": [
                {"image": image("3.1.0"), "ports": [{"containerPort": 9898}]}
            ]}}},
        }))
        .unwrap();
    c.wait_until("revision 1 ready", Duration::from_secs(30), |c| {
        ksvc(c).is_some_and(|s| s["status"]["latestReadyRevisionName"] == "podinfo-00001")
    })
    .await;

    // Initialised: the first revision is the primary and takes everything.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert_eq!(primary_revision(&c).as_deref(), Some("podinfo-00001"));
    assert_eq!(traffic(&c), Some(("podinfo-00001".into(), 100, 0)));

    // A healthy release: spec.traffic shows every planned step, and the
    // annotation moves to the new revision.
    set_ksvc_image(&c, "3.1.1");
    let (out, seen) = watch_while_running(&c, c.spawn(&[]), traffic).await;
    assert_exit(&out, 0);
    let canary: Vec<i64> = seen.iter().flatten().map(|t| t.2).collect();
    assert_eq!(canary, [0, 10, 40, 80, 0], "{seen:?}");
    assert!(seen.iter().flatten().all(|(_, p, w)| p + w == 100));
    assert_eq!(primary_revision(&c).as_deref(), Some("podinfo-00002"));
    assert_eq!(traffic(&c).map(|t| (t.1, t.2)), Some((100, 0)));
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );

    // A failing release: rolled back, the primary revision keeps 100%.
    set_ksvc_image(&c, "3.1.2");
    let child = c.spawn(&[]);
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
    assert_eq!(primary_revision(&c).as_deref(), Some("podinfo-00002"));
    assert_eq!(traffic(&c), Some(("podinfo-00002".into(), 100, 0)));
    assert_eq!(
        ksvc(&c).unwrap()["status"]["latestCreatedRevisionName"],
        "podinfo-00003"
    );

    // The plan names the Knative Service, the one object run changes.
    let plan = assert_plan_matches_cluster(&c, &[], &[(SERVING, "Service", "prod")]);
    assert_eq!(plan["objects"].as_array().unwrap().len(), 1, "{plan}");

    // `status` lists the canary of the Knative Service.
    let out = crate::util::canary()
        .args(["status", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    // Exit 1: the last release failed.
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("podinfo   Failed"),
        "{}",
        stdout(&out)
    );

    // Revert, by name, removes the annotation, the traffic split and the
    // state.
    let out = crate::util::canary()
        .args(["revert", "podinfo", "-n", "prod", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("reverted: ksvc/podinfo serves"),
        "{}",
        stdout(&out)
    );
    // Nothing of canary's own was made: no Deployment, no Service.
    for kind in ["Deployment", "Service"] {
        let api_version = if kind == "Service" { "v1" } else { "apps/v1" };
        assert!(
            c.world
                .store()
                .list(api_version, kind, Some("prod"))
                .iter()
                .all(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "canary"),
            "{kind}"
        );
    }
    let s = ksvc(&c).unwrap();
    assert!(primary_revision(&c).is_none(), "{}", stdout(&out));
    assert!(s["spec"]["traffic"].is_null(), "{s}");
    assert!(
        s["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, _)| !k.starts_with("canary.flagger.app/")),
        "{s}"
    );
    c.world.shutdown().await;
}
