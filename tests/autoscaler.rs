//! The primary's autoscaler end to end: an HPA copy that follows the
//! target's HPA at every round, and a KEDA ScaledObject copied for the
//! primary with its queries rewritten, the target's paused while the
//! target has no pods, and both undone by `canary revert`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{finish, stdout};

fn with_autoscaler(kind: &str, api_version: &str) -> String {
    FAST.replace(
        "  service:\n",
        &format!("  autoscalerRef: {{apiVersion: {api_version}, kind: {kind}, name: podinfo}}\n  service:\n"),
    )
    .replace("interval: 1s", "interval: 2s")
    .replace("stepWeight: 20", "stepWeight: 10")
}

fn get(c: &Cluster, api_version: &str, kind: &str, name: &str) -> Option<Value> {
    c.world.store().get(api_version, kind, "prod", name)
}

fn hpa(c: &Cluster, name: &str) -> Option<Value> {
    get(c, "autoscaling/v2", "HorizontalPodAutoscaler", name)
}

fn scaled_object(c: &Cluster, name: &str) -> Option<Value> {
    get(c, "keda.sh/v1alpha1", "ScaledObject", name)
}

async fn canary(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut cmd = crate::util::canary();
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_hpa_follows_a_change_to_the_targets_mid_rollout() {
    let c = Cluster::start_with(&with_autoscaler(
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
    ))
    .await;
    c.world
        .store()
        .create(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "minReplicas": 2, "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 90}}}],
            },
        }))
        .unwrap();
    c.initialise().await;
    let copy = hpa(&c, "podinfo-primary").expect("the primary's HPA");
    assert_eq!(copy["spec"]["maxReplicas"], 4);
    assert_eq!(copy["spec"]["scaleTargetRef"]["name"], "podinfo-primary");

    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    c.world
        .store()
        .modify(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "prod",
            "podinfo",
            canary_sim::store::Subresource::Main,
            |h| h["spec"]["maxReplicas"] = json!(7),
        )
        .unwrap();
    let changed = std::time::Instant::now();
    c.wait_until(
        "the primary's HPA never followed",
        Duration::from_secs(20),
        |c| hpa(c, "podinfo-primary").is_some_and(|h| h["spec"]["maxReplicas"] == 7),
    )
    .await;
    eprintln!("the primary's HPA followed after {:?}", changed.elapsed());
    // Still mid-rollout: it followed at a round, not at the end.
    assert!(c.weights().1 > 0, "{:?}", c.weights());
    let run = finish(child).await;
    assert_exit(&run, 0);
    assert!(
        crate::util::stderr(&run)
            .contains("horizontalpodautoscaler/podinfo-primary follows the change"),
        "{}",
        crate::util::stderr(&run)
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_object_is_copied_for_the_primary_paused_on_the_target_and_reverted() {
    // The seed's cluster with KEDA's CRD installed.
    let mut scenario = canary_sim::scenario::Scenario::seed();
    scenario.crds = Some(vec![
        canary_sim::scenario::CrdName::Smi,
        canary_sim::scenario::CrdName::Keda,
    ]);
    let c = Cluster::start_in(
        scenario,
        &with_autoscaler("ScaledObject", "keda.sh/v1alpha1"),
    )
    .await;
    c.world
        .store()
        .create(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {
                "scaleTargetRef": {"name": "podinfo"},
                "minReplicaCount": 2, "maxReplicaCount": 5,
                "triggers": [{
                    "type": "prometheus", "name": "rps",
                    "metadata": {
                        "serverAddress": "http://prometheus.linkerd-viz:9090",
                        "query": "sum(rate(response_total{deployment=\"podinfo\",pod=~\"podinfo-canary-.*\"}[1m]))",
                        "threshold": "100",
                    },
                }],
            },
        }))
        .unwrap();
    c.initialise().await;
    let copy = scaled_object(&c, "podinfo-primary").expect("the primary's ScaledObject");
    assert_eq!(copy["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
    assert_eq!(
        copy["spec"]["triggers"][0]["metadata"]["query"],
        "sum(rate(response_total{deployment=\"podinfo-primary\",pod=~\"podinfo-primary-.*\"}[1m]))"
    );
    assert_eq!(
        copy["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary"
    );
    let paused = |c: &Cluster| {
        scaled_object(c, "podinfo").unwrap()["metadata"]["annotations"]
            ["autoscaling.keda.sh/paused-replicas"]
            .clone()
    };
    // The target is held at zero; KEDA scales the primary from its minimum.
    assert_eq!(paused(&c), json!("0"));
    assert_eq!(c.replicas("podinfo").await, 0);
    c.wait_until(
        "the primary never reached minReplicaCount",
        Duration::from_secs(10),
        |c| {
            get(c, "apps/v1", "Deployment", "podinfo-primary")
                .is_some_and(|d| d["spec"]["replicas"].as_i64() >= Some(2))
        },
    )
    .await;

    // An analysis resumes the target's ScaledObject, the promotion pauses it
    // again; a change to it reaches the copy.
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    assert_eq!(paused(&c), Value::Null);
    c.world
        .store()
        .modify(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "prod",
            "podinfo",
            canary_sim::store::Subresource::Main,
            |s| s["spec"]["maxReplicaCount"] = json!(8),
        )
        .unwrap();
    assert_exit(&finish(child).await, 0);
    assert_eq!(paused(&c), json!("0"));
    assert_eq!(
        scaled_object(&c, "podinfo-primary").unwrap()["spec"]["maxReplicaCount"],
        8
    );

    let out = canary(&c, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("scaledobject/podinfo-primary deleted"),
        "{}",
        stdout(&out)
    );
    assert!(scaled_object(&c, "podinfo-primary").is_none());
    assert_eq!(paused(&c), Value::Null);
    c.world.shutdown().await;
}
