//! DaemonSet targets end to end: the primary DaemonSet, the target held at
//! no pods by Flagger's scale-to-zero node selector, a release promoted and
//! one rolled back, an abort from a second process, `status`, `plan` and
//! `validate`, and `canary revert`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{finish, stderr, stdout};

/// Linkerd labels a DaemonSet's series `daemonset`, which Flagger's
/// built-in queries (`deployment=~`) do not select: the metrics are
/// queries of their own.
pub const METRICS: &str = "    metrics:
      - name: success-rate
        thresholdRange:
          min: 99
        interval: 10s
        query: |
          sum(rate(response_total{namespace=\"prod\",daemonset=~\"podinfo\",classification!=\"failure\",direction=\"inbound\"}[10s]))
          / sum(rate(response_total{namespace=\"prod\",daemonset=~\"podinfo\",direction=\"inbound\"}[10s])) * 100
";

fn spec() -> String {
    let f = FAST.replace("kind: Deployment", "kind: DaemonSet");
    let a = f.find("    metrics:").unwrap();
    let b = f.find("    webhooks:").unwrap();
    format!("{}{METRICS}{}", &f[..a], &f[b..])
}

/// The seed's world with podinfo as a DaemonSet instead of a Deployment.
async fn start() -> Cluster {
    let c = Cluster::start_with(&spec()).await;
    let client = c.world.client().await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    deployments
        .delete("podinfo", &DeleteParams::default())
        .await
        .unwrap();
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "podinfo", "namespace": "prod", "labels": {"app": "podinfo"}},
        "spec": {
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfod",
                    "image": "ghcr.io/stefanprodan/podinfo:3.1.0",
                    "ports": [{"name": "http", "containerPort": 9898}]}]}
            }
        }
    }))
    .unwrap();
    daemonsets(&c)
        .await
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    c
}

async fn daemonsets(c: &Cluster) -> Api<DaemonSet> {
    Api::namespaced(c.world.client().await.unwrap(), "prod")
}

async fn get(c: &Cluster, name: &str) -> DaemonSet {
    daemonsets(c).await.get(name).await.unwrap()
}

async fn image(c: &Cluster, name: &str) -> String {
    get(c, name).await.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

async fn set_image(c: &Cluster, tag: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfod", "image": format!("ghcr.io/stefanprodan/podinfo:{tag}")}
    ]}}}});
    daemonsets(c)
        .await
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .unwrap();
}

/// `(desired, ready)` of a DaemonSet once its controller has caught up.
async fn scheduled(c: &Cluster, name: &str) -> (i32, i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = get(c, name).await;
        let s = d.status.clone().unwrap_or_default();
        let settled = s.observed_generation == d.metadata.generation
            && s.number_ready == s.desired_number_scheduled
            && s.current_number_scheduled == s.desired_number_scheduled;
        if settled || std::time::Instant::now() > deadline {
            return (s.desired_number_scheduled, s.number_ready);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn scale_to_zero_selector(d: &DaemonSet) -> Option<String> {
    d.spec
        .template
        .spec
        .as_ref()?
        .node_selector
        .as_ref()?
        .get("flagger.app/scale-to-zero")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_is_initialised_promoted_and_rolled_back() {
    let c = start().await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("the next change to daemonset/podinfo starts an analysis"),
        "{}",
        stdout(&out)
    );
    // The primary runs on every node; the target on none, by the selector.
    let primary = get(&c, "podinfo-primary").await;
    assert_eq!(
        primary.spec.selector.match_labels.as_ref().unwrap()["app"],
        "podinfo-primary"
    );
    assert_eq!(scale_to_zero_selector(&primary), None);
    assert_eq!(scheduled(&c, "podinfo-primary").await, (3, 3));
    assert_eq!(
        scale_to_zero_selector(&get(&c, "podinfo").await).as_deref(),
        Some("true")
    );
    assert_eq!(scheduled(&c, "podinfo").await, (0, 0));
    assert_eq!(c.weights(), (100, 0));

    // Nothing changed: the selector is not a new revision.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));

    set_image(&c, "3.1.1").await;
    // The router is sampled while the run goes: each step's weight is
    // seen on the TrafficSplit, in order.
    let mut child = c.spawn(&[]);
    let mut seen: Vec<i64> = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Some((_, w)) = crate::util::podinfo_weights(&c.world)
            && seen.last() != Some(&w)
        {
            seen.push(w);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = finish(child).await;
    assert_exit(&out, 0);
    let log = stderr(&out);
    for line in [
        "New revision detected! Scaling up podinfo.prod",
        "Advance podinfo.prod canary weight 20",
        "Advance podinfo.prod canary weight 100",
        "Copying podinfo.prod template spec to podinfo-primary.prod",
        "Promotion completed! Scaling down podinfo.prod",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }
    let steps: Vec<i64> = seen.into_iter().filter(|w| *w > 0).collect();
    assert_eq!(steps, [20, 40, 60, 80, 100], "{log}");
    assert_eq!(
        image(&c, "podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(
        scale_to_zero_selector(&get(&c, "podinfo-primary").await),
        None
    );
    assert_eq!(scheduled(&c, "podinfo").await, (0, 0));
    assert_eq!(scheduled(&c, "podinfo-primary").await, (3, 3));

    set_image(&c, "3.1.2").await;
    let before = get(&c, "podinfo-primary").await;
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    // The failed release never reached the primary DaemonSet: its spec
    // (so its generation) is as it was.
    let after = get(&c, "podinfo-primary").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    let log = stderr(&out);
    assert!(
        log.contains("Rolling back podinfo.prod failed checks threshold reached 3"),
        "{log}"
    );
    assert_eq!(
        image(&c, "podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(scheduled(&c, "podinfo").await, (0, 0));
    assert_eq!(c.weights(), (100, 0));
    c.world.shutdown().await;
}

/// `canary ARGS... --kubeconfig` against the cluster.
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
async fn a_daemonset_rollout_is_promoted_aborted_shown_and_reverted() {
    let c = start().await;
    // Slower steps, so that the abort lands mid-rollout.
    std::fs::write(
        &c.spec,
        spec()
            .replace("interval: 1s", "interval: 2s")
            .replace("stepWeight: 20", "stepWeight: 10"),
    )
    .unwrap();
    assert_exit(&c.run(&[]).await, 0);

    // status names the DaemonSet.
    let out = canary(&c, &["status", "-n", "prod", "-o", "wide"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("daemonset/podinfo"),
        "{}",
        stdout(&out)
    );
    let out = canary(&c, &["status", "podinfo", "-n", "prod", "-o", "json"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("\"kind\": \"DaemonSet\"")
            || stdout(&out).contains("\"kind\":\"DaemonSet\""),
        "{}",
        stdout(&out)
    );

    // A run stopped mid-rollout (Ctrl-C) leaves it as it is; with no
    // driver left, promote does the work itself.
    set_image(&c, "3.1.1").await;
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    crate::util::interrupt(&child);
    assert_exit(&finish(child).await, 130);
    let out = canary(&c, &["promote", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        image(&c, "podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(scheduled(&c, "podinfo").await, (0, 0));

    // An abort from a second process reaches the running driver, while
    // `status -w` in a third prints each change of the DaemonSet canary.
    let watch = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .args(["status", "-n", "prod", "-w", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    set_image(&c, "3.1.0").await;
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    assert_eq!(scheduled(&c, "podinfo").await, (3, 3));
    let out = canary(&c, &["abort", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    let run = finish(child).await;
    assert_exit(&run, 4);
    assert_eq!(c.weights(), (100, 0));
    assert_eq!(
        image(&c, "podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(scheduled(&c, "podinfo").await, (0, 0));
    let out = canary(&c, &["status", "podinfo", "-n", "prod"]).await;
    assert!(stdout(&out).contains("Aborted"), "{}", stdout(&out));
    crate::util::interrupt(&watch);
    let watched = stdout(&finish(watch).await);
    for phase in ["Succeeded", "Progressing", "Aborted"] {
        assert!(watched.contains(phase), "no {phase} row in:\n{watched}");
    }

    // revert gives the target its pods back and removes the primary.
    let out = canary(&c, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    for line in [
        "daemonset/podinfo scaled up: the scale-to-zero node selector is removed",
        "daemonset/podinfo-primary deleted",
        "podinfo.prod: reverted: daemonset/podinfo serves service/podinfo with a pod on each \
         node it selects (3 nodes",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(
        daemonsets(&c)
            .await
            .get_opt("podinfo-primary")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(scale_to_zero_selector(&get(&c, "podinfo").await), None);
    assert_eq!(scheduled(&c, "podinfo").await, (3, 3));
    let svc = c
        .world
        .store()
        .get("v1", "Service", "prod", "podinfo")
        .unwrap();
    assert_eq!(svc["spec"]["selector"]["app"], "podinfo");
    // Done: nothing left to revert, and status lists no canary.
    let out = canary(&c, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("nothing to revert"),
        "{}",
        stdout(&out)
    );
    c.world.shutdown().await;
}

#[test]
fn plan_and_validate_name_the_daemonset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ds.yaml");
    std::fs::write(&path, spec()).unwrap();
    let out = crate::util::canary()
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("podinfo.prod  canary  provider linkerd  5 steps (20% → 100%)"),
        "{}",
        stdout(&out)
    );
    let out = crate::util::canary()
        .arg("plan")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("target          daemonset/podinfo"), "{text}");
    assert!(
        text.contains("scale daemonset/podinfo up and wait until 100% of its pods are ready"),
        "{text}"
    );
    // An autoscaler is refused for a DaemonSet, at its field.
    let with_hpa = spec().replace(
        "  service:\n",
        "  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}\n  service:\n",
    );
    std::fs::write(&path, with_hpa).unwrap();
    let out = crate::util::canary()
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("spec.autoscalerRef"),
        "{}",
        stderr(&out)
    );
}
