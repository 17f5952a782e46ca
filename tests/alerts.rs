//! Alerts end to end: the built binary against the simulated cluster,
//! whose chat-service webhooks check each request as the real service
//! would and record what they accept.

use std::time::Duration;

use canary_sim::alerts::ReceivedAlert;
use serde_json::Value;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{stderr, stdout};

const KINDS: [&str; 5] = ["slack", "msteams", "discord", "rocket", "gchat"];

/// The secret part of every webhook path: it must never be printed.
const SECRET: &str = "T0001-B0002-zq8VkP3xW9";

/// FAST with one `info` and one `error` alert per provider type; half of
/// the providers keep their address in a Secret of the same file.
fn spec_with_alerts(base: &str) -> String {
    let mut alerts = String::from("    alerts:\n");
    let mut docs = String::new();
    for (i, kind) in KINDS.iter().enumerate() {
        for severity in ["info", "error"] {
            let name = format!("{kind}-{severity}");
            alerts.push_str(&format!(
                "      - name: {name}\n        severity: {severity}\n        providerRef:\n          name: {name}\n"
            ));
            let address = format!("{base}/alerts/{kind}/{severity}/{SECRET}");
            let spec = if i % 2 == 0 {
                docs.push_str(&format!(
                    "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-url\n  namespace: prod\n\
                     stringData:\n  address: {address}\n"
                ));
                format!("  secretRef:\n    name: {name}-url\n")
            } else {
                format!("  address: {address}\n")
            };
            docs.push_str(&format!(
                "---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: {name}\n  \
                 namespace: prod\nspec:\n  type: {kind}\n  channel: releases\n{spec}"
            ));
        }
    }
    format!("{FAST}{alerts}{docs}")
}

/// What `kind` received at `severity`, as (message, error-coloured).
fn got(received: &[ReceivedAlert], kind: &str, severity: &str) -> Vec<(String, bool)> {
    received
        .iter()
        .filter(|a| a.kind == kind && a.path.contains(&format!("/{severity}/")))
        .map(|a| text_of(kind, &a.body))
        .collect()
}

/// The message of a payload and whether it is coloured as an error.
fn text_of(kind: &str, body: &Value) -> (String, bool) {
    match kind {
        "msteams" => (
            body["sections"][0]["activityTitle"]
                .as_str()
                .unwrap()
                .to_string(),
            body["themeColor"] == "FF0000",
        ),
        "gchat" => {
            let t = body["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"]
                .as_str()
                .unwrap();
            let t = t
                .trim_start_matches("<font color=#848484><strong>")
                .trim_end_matches("</strong></font>");
            (t.to_string(), false)
        }
        _ => {
            let a = &body["attachments"][0];
            let color = a["color"].as_str().unwrap();
            (
                a["text"].as_str().unwrap().to_string(),
                color == "danger" || color == "#FF0000",
            )
        }
    }
}

fn assert_never_shown(out: &std::process::Output, what: &str) {
    for (name, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
        assert!(!text.contains(what), "`{what}` in {name}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_type_gets_flaggers_payload_at_its_severity() {
    let c = Cluster::start().await;
    std::fs::write(&c.spec, spec_with_alerts(&c.world.alerts_url())).unwrap();
    c.initialise().await;
    assert_eq!(c.world.alerts_received(), [], "initialising alerts nothing");

    // A healthy release: `info` gets the new revision and the promotion,
    // `error` nothing.
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert_never_shown(&out, SECRET);
    let received = c.world.alerts_received();
    assert_eq!(c.world.alerts_refused(), []);
    let new_revision = (
        "New revision detected, progressing canary analysis.".to_string(),
        false,
    );
    let promoted = (
        "Canary analysis completed successfully, promotion finished.".to_string(),
        false,
    );
    for kind in KINDS {
        assert_eq!(
            got(&received, kind, "info"),
            [new_revision.clone(), promoted.clone()],
            "{kind}"
        );
        assert_eq!(got(&received, kind, "error"), [], "{kind}");
    }
    // Discord is posted to its Slack-compatible endpoint; each payload
    // carries the canary, the channel and the new revision's settings.
    assert!(
        received
            .iter()
            .filter(|a| a.kind == "discord")
            .all(|a| a.path.ends_with(&format!("{SECRET}/slack")))
    );
    let slack = received.iter().find(|a| a.kind == "slack").unwrap();
    assert_eq!(slack.body["channel"], "releases");
    assert_eq!(slack.body["username"], "flagger");
    assert_eq!(slack.body["attachments"][0]["author_name"], "podinfo.prod");
    let fields: Vec<(&str, &str)> = slack.body["attachments"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("Target", "Deployment/podinfo.prod"),
            ("Failed checks threshold", "3"),
            ("Progress deadline", "600s"),
            ("Traffic routing", "Weight step: 20 max: 100"),
        ]
    );
    let teams = received.iter().find(|a| a.kind == "msteams").unwrap();
    assert_eq!(teams.body["@type"], "MessageCard");
    assert_eq!(teams.body["sections"][0]["facts"][0]["name"], "Target");

    // A failing release: `info` gets the new revision and the rollback,
    // `error` only the rollback, in the error colour.
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert_never_shown(&out, SECRET);
    let received: Vec<ReceivedAlert> = c.world.alerts_received()[received.len()..].to_vec();
    let rolled_back = ("Failed checks threshold reached 3".to_string(), true);
    for kind in KINDS {
        let error_coloured = kind != "gchat";
        let rb = (rolled_back.0.clone(), error_coloured);
        assert_eq!(
            got(&received, kind, "info"),
            [new_revision.clone(), rb.clone()],
            "{kind}"
        );
        assert_eq!(got(&received, kind, "error"), [rb], "{kind}");
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_slack_notifier_gets_the_alerts_of_a_canary_without_alerts() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let url = format!("{}/alerts/slack/{SECRET}", c.world.alerts_url());
    let mut cmd = crate::util::canary();
    cmd.arg("run")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["--slack-channel", "deploys", "--slack-user", "canary"])
        .env("CANARY_SLACK_URL", &url)
        .env("CANARY_CLUSTER_NAME", "eu-west-1")
        .timeout(Duration::from_secs(120));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
    assert_never_shown(&out, SECRET);
    let received = c.world.alerts_received();
    let texts: Vec<(String, bool)> = received.iter().map(|a| text_of("slack", &a.body)).collect();
    assert_eq!(
        texts,
        [
            (
                "New revision detected, progressing canary analysis.".to_string(),
                false
            ),
            (
                "Canary analysis completed successfully, promotion finished.".to_string(),
                false
            ),
        ]
    );
    assert!(
        received
            .iter()
            .all(|a| a.body["channel"] == "deploys" && a.body["username"] == "canary")
    );
    // The cluster's name comes first in every alert, before the new
    // revision's settings.
    for a in &received {
        let first = &a.body["attachments"][0]["fields"][0];
        assert_eq!(first["title"], "Cluster", "{:#}", a.body);
        assert_eq!(first["value"], "eu-west-1", "{:#}", a.body);
    }
    assert_eq!(
        received[0].body["attachments"][0]["fields"][1]["title"],
        "Target"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_alert_is_a_warning_and_the_release_is_still_promoted() {
    let c = Cluster::start().await;
    let base = c.world.alerts_url();
    // One service answers 503, the other never answers.
    let spec = format!(
        "{FAST}    alerts:\n      - name: down\n        providerRef:\n          name: down\n\
         \x20     - name: slow\n        providerRef:\n          name: slow\n\
         ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: down\n  namespace: prod\n\
         spec:\n  type: msteams\n  secretRef:\n    name: down-url\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: down-url\n  namespace: prod\n\
         stringData:\n  address: {base}/alerts/msteams/{SECRET}/status-503\n\
         ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: slow\n  namespace: prod\n\
         spec:\n  type: slack\n  address: {base}/alerts/slack/{SECRET}/slow\n"
    );
    std::fs::write(&c.spec, spec).unwrap();
    c.initialise().await;
    c.set_image("3.1.1");
    let started = std::time::Instant::now();
    let out = c.run(&[]).await;
    let took = started.elapsed();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    let log = stderr(&out);
    for line in [
        "alert \"New revision detected, progressing canary analysis.\" to down \
         (AlertProvider prod/down, msteams) could not be delivered: the service answered 503",
        "alert \"New revision detected, progressing canary analysis.\" to slow \
         (AlertProvider prod/slow, slack) could not be delivered: no answer within 5s",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }
    assert_never_shown(&out, SECRET);
    assert_eq!(c.world.alerts_received(), []);
    // Four posts that each take 5 s before they give up hold up nothing:
    // they are sent beside the rollout, and the end waits for them once.
    println!("run with a silent alert service took {took:?}");
    c.world.shutdown().await;
}

#[test]
fn an_unknown_alert_severity_or_provider_type_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        format!(
            "{FAST}    alerts:\n      - name: a\n        severity: critical\n        providerRef:\n          name: p\n\
             ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: p\n  namespace: prod\n\
             spec:\n  type: pagerduty\n  address: https://example.com/x\n"
        ),
    )
    .unwrap();
    let out = crate::util::canary()
        .args(["validate"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown alert severity `critical`"), "{err}");
    assert!(err.contains("spec.analysis.alerts[0].severity"), "{err}");
    assert!(err.contains("unknown alert provider `pagerduty`"), "{err}");
    assert!(err.contains("spec.type"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_providers_and_their_secrets_are_read_from_the_cluster() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    // A cluster with Flagger's CRDs, so that it can hold AlertProviders.
    let mut scenario = canary_sim::scenario::Scenario::seed();
    scenario.crds = Some(vec![
        canary_sim::scenario::CrdName::Smi,
        canary_sim::scenario::CrdName::Flagger,
    ]);
    let c = Cluster::start_in(scenario, FAST).await;
    let address = format!("{}/alerts/gchat/{SECRET}", c.world.alerts_url());
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("chat-url".into()),
            namespace: Some("flagger".into()),
            ..Default::default()
        },
        data: Some([("address".to_string(), ByteString(address.into_bytes()))].into()),
        ..Default::default()
    };
    c.world
        .store()
        .create(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "flagger"}}))
        .unwrap();
    let mut secret = serde_json::to_value(&secret).unwrap();
    secret["apiVersion"] = "v1".into();
    secret["kind"] = "Secret".into();
    c.world.store().create(secret).unwrap();
    c.world
        .store()
        .create(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
            "metadata": {"name": "chat", "namespace": "flagger"},
            "spec": {"type": "gchat", "secretRef": {"name": "chat-url"}}
        }))
        .unwrap();
    std::fs::write(
        &c.spec,
        format!(
            "{FAST}    alerts:\n      - name: chat\n        providerRef:\n          name: chat\n          namespace: flagger\n"
        ),
    )
    .unwrap();
    c.initialise().await;
    c.set_image("3.1.1");
    // A global notifier is for canaries without alerts only.
    let slack = format!("{}/alerts/slack/global-{SECRET}", c.world.alerts_url());
    let out = c.run(&["--slack-url", &slack]).await;
    assert_exit(&out, 0);
    assert_never_shown(&out, SECRET);
    let received = c.world.alerts_received();
    assert!(received.iter().all(|a| a.kind == "gchat"), "{received:?}");
    let texts: Vec<String> = received
        .iter()
        .map(|a| text_of("gchat", &a.body).0)
        .collect();
    assert_eq!(
        texts,
        [
            "New revision detected, progressing canary analysis.",
            "Canary analysis completed successfully, promotion finished."
        ]
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_promotion_gate_is_alerted_once_at_warn() {
    let c = Cluster::start().await;
    let base = c.world.alerts_url();
    let spec = FAST.replace(
        "    webhooks:\n",
        "    webhooks:\n      - name: approval\n        type: confirm-promotion\n        \
         url: http://flagger-loadtester.prod/gate/halt\n",
    );
    let spec = format!(
        "{spec}    alerts:\n      - name: all\n        providerRef:\n          name: all\n\
         \x20     - name: warnings\n        severity: warn\n        providerRef:\n          name: warnings\n\
         ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: all\n  namespace: prod\n\
         spec:\n  type: slack\n  address: {base}/alerts/slack/info/{SECRET}\n\
         ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: warnings\n  namespace: prod\n\
         spec:\n  type: slack\n  address: {base}/alerts/slack/warn/{SECRET}\n"
    );
    std::fs::write(&c.spec, spec).unwrap();
    c.initialise().await;
    c.set_image("3.1.1");
    // The promotion gate never opens: the run waits at it, checking the
    // canary every interval, until its timeout leaves the rollout as it
    // is. The gate is alerted when it closes, not at every check.
    let out = c.run(&["--timeout", "25s", "--on-timeout", "leave"]).await;
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("waiting for promotion approval approval"),
        "{}",
        stderr(&out)
    );
    let received = c.world.alerts_received();
    let waiting = (
        "Canary promotion is waiting for approval.".to_string(),
        false,
    );
    assert_eq!(
        got(&received, "slack", "info"),
        [
            (
                "New revision detected, progressing canary analysis.".to_string(),
                false
            ),
            waiting.clone()
        ]
    );
    assert_eq!(got(&received, "slack", "warn"), [waiting]);
    c.world.shutdown().await;
}
