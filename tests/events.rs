//! Kubernetes Events end to end: each message of a rollout recorded on
//! its target, where `kubectl describe` and `kubectl get events` show it.

use serde_json::Value;

use crate::run::{Cluster, assert_exit};
use crate::util::{stderr, stdout};

/// The Events the simulated cluster holds about the Deployment `name` in
/// `prod`, in the order they were recorded (their stored, core `v1` form).
fn events_about(c: &Cluster, name: &str) -> Vec<Value> {
    let mut events: Vec<Value> = c
        .world
        .store()
        .list("v1", "Event", Some("prod"))
        .into_iter()
        .filter(|e| {
            e["involvedObject"]["name"] == name && e["involvedObject"]["kind"] == "Deployment"
        })
        .collect();
    events.sort_by_key(|e| e["eventTime"].as_str().unwrap_or_default().to_string());
    events
}

fn notes(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The messages a run printed as JSON `progress` events, in order.
fn printed(out: &std::process::Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "progress")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_a_rollout_is_an_event_on_its_target_as_flagger_records_it() {
    let c = Cluster::start().await;
    c.initialise().await;
    let uid = c
        .world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo")
        .unwrap()["metadata"]["uid"]
        .clone();

    c.set_image("3.1.1");
    let out = c.run(&["-o", "json"]).await;
    assert_exit(&out, 0);
    let said = printed(&out);
    assert!(!said.is_empty(), "{}", stdout(&out));
    let events = events_about(&c, "podinfo");
    let recorded = notes(&events);
    // Every message the run printed is recorded, in order, once: a
    // repeated message counts up its first Event's series instead.
    let mut distinct: Vec<&str> = Vec::new();
    for m in &said {
        if !distinct.contains(&m.as_str()) {
            distinct.push(m);
        }
    }
    let since_release: Vec<&str> = recorded
        .iter()
        .map(String::as_str)
        .skip_while(|n| !n.starts_with("New revision detected!"))
        .collect();
    assert_eq!(since_release, distinct, "{}", stderr(&out));
    for needed in [
        "New revision detected! Scaling up podinfo.prod",
        "Starting canary analysis for podinfo.prod",
        "Advance podinfo.prod canary weight 20",
        "Copying podinfo.prod template spec to podinfo-primary.prod",
        "Promotion completed! Scaling down podinfo.prod",
    ] {
        assert!(
            recorded.iter().any(|n| n == needed),
            "{needed}: {recorded:#?}"
        );
    }
    for e in &events {
        assert_eq!(e["reason"], "Synced", "{e:#}");
        assert_eq!(e["type"], "Normal", "{e:#}");
        assert_eq!(e["reportingComponent"], "canary", "{e:#}");
        assert_eq!(e["involvedObject"]["uid"], uid, "{e:#}");
        assert_eq!(e["involvedObject"]["apiVersion"], "apps/v1", "{e:#}");
        assert!(
            e["reportingInstance"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{e:#}"
        );
    }

    // What kubectl shows of them, as it would on a real cluster.
    if !canary_sim::kubectl::available() {
        eprintln!("SKIPPED: kubectl is not installed; its view of the Events is not checked");
    } else {
        let k = canary_sim::kubectl::Kubectl::new(c.world.sim()).unwrap();
        let (ok, text, err) = k
            .run(&["describe", "deployment", "podinfo", "-n", "prod"])
            .await;
        assert!(ok, "{err}");
        assert!(
            text.contains("Normal  Synced")
                && text.contains("Promotion completed! Scaling down podinfo.prod"),
            "{text}"
        );
        let (ok, text, err) = k
            .run(&[
                "get",
                "events.v1.events.k8s.io",
                "-n",
                "prod",
                "--field-selector",
                "regarding.name=podinfo",
                "-o",
                "jsonpath={.items[*].reason}",
            ])
            .await;
        assert!(ok, "{err}");
        assert!(text.split_whitespace().all(|r| r == "Synced"), "{text}");
        assert!(text.split_whitespace().count() >= distinct.len(), "{text}");
    }
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_recorded_as_warnings_and_no_events_records_nothing() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.2");
    let out = c.run(&["-o", "json"]).await;
    assert_exit(&out, 1);
    let events = events_about(&c, "podinfo");
    let warnings: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    // Halts, the rollback and the failure are warnings, as Flagger
    // records them; nothing else of this run is.
    for e in &events {
        let note = e["message"].as_str().unwrap_or_default();
        let warning = ["Halt ", "Rolling back ", "Canary failed!"]
            .iter()
            .any(|p| note.starts_with(p));
        assert_eq!(e["type"] == "Warning", warning, "{e:#}");
    }
    assert!(
        warnings
            .iter()
            .any(|w| w == "Rolling back podinfo.prod failed checks threshold reached 3"),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w == "Canary failed! Scaling down podinfo.prod"),
        "{warnings:#?}"
    );
    // A message said again (the same halt at the next check) is one Event
    // whose series counts the repeats.
    let said = printed(&out);
    for m in &said {
        let times = said.iter().filter(|x| *x == m).count() as i64;
        if times > 1 {
            let e = events
                .iter()
                .find(|e| e["message"] == m.as_str())
                .unwrap_or_else(|| panic!("{m}: {:#?}", notes(&events)));
            assert_eq!(e["series"]["count"].as_i64(), Some(times), "{e:#}");
        }
    }
    assert_eq!(
        notes(&events).len(),
        notes(&events)
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "{:#?}",
        notes(&events)
    );

    // --no-events: the next release records nothing.
    let before = events.len();
    c.set_image("3.1.1");
    let out = c.run(&["--no-events"]).await;
    assert_exit(&out, 0);
    assert_eq!(events_about(&c, "podinfo").len(), before);
    c.world.shutdown().await;
}
