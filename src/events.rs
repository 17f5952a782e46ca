//! Kubernetes Events: every message of a rollout recorded on its target,
//! where `kubectl describe deployment NAME` and `kubectl get events` show
//! it.
//!
//! Flagger records each message as an Event on the Canary object, with
//! reason `Synced` and type `Normal` or `Warning`; `canary` keeps nothing
//! in the cluster but annotations, so its Events regard the target
//! workload (the Deployment or DaemonSet the Canary names). They are
//! `events.k8s.io/v1` Events with the same reason, type and text, reported
//! by the controller `canary` from the run's lease holder identity.
//!
//! A message that repeats within six minutes (a gate still closed, a
//! check still waiting) is not a new Event: the first one's `series` is
//! counted up, as the API's event recorders do. (kube's own recorder
//! keys its series without the note, which would fold every `Synced`
//! message into the first; hence this small one.)
//!
//! A note is masked by the process's redactor before it is posted, as
//! every output and the stored state are.
//!
//! Recording never holds up the driver: Events are posted in order by a
//! task of their own. One that cannot be posted is a warning, said once;
//! a missing permission turns recording off for the run. Recording never
//! changes a verdict or the exit code. `canary run --no-events` records
//! none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use canary_core::engine::Message;

/// The reason of every Event, as Flagger records them.
pub(crate) const REASON: &str = "Synced";
/// The controller Events are reported by.
pub(crate) const CONTROLLER: &str = "canary";
/// How long a repeated message counts up the first one's series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How long the Events still being posted are waited for when a run ends.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// The API's limit on an Event's note, in bytes.
const NOTE_LIMIT: usize = 1024;

/// One Event to record.
struct Item {
    type_: &'static str,
    note: String,
    regarding: ObjectReference,
}

/// Records the messages of one canary's rollout as Events on its target.
pub(crate) struct Recorder {
    tx: Mutex<Option<mpsc::UnboundedSender<Item>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// A recorder posting with `client` as `instance` (the lease holder).
    pub(crate) fn new(client: kube::Client, instance: &str) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let worker = Worker {
            client,
            instance: truncate(instance, 128).to_string(),
            series: HashMap::new(),
            warnings: warnings.clone(),
            failed: false,
            forbidden: false,
        };
        let task = tokio::spawn(worker.run(rx));
        Recorder {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            warnings,
        }
    }

    /// Starts recording `messages`, in order, on `regarding`.
    pub(crate) fn record(&self, messages: &[Message], regarding: &ObjectReference) {
        let Ok(tx) = self.tx.lock() else { return };
        let Some(tx) = tx.as_ref() else { return };
        for m in messages {
            let item = Item {
                type_: m.severity().as_str(),
                // Masked as every output and the stored state are: a
                // message can quote what a server answered.
                note: truncate(&crate::secrets::redact(&m.to_string()), NOTE_LIMIT).to_string(),
                regarding: regarding.clone(),
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    }

    /// The warnings of Events that could not be recorded since last asked.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Waits (within a few seconds) for the Events still being posted, and
    /// returns the warnings not yet said.
    pub(crate) async fn flush(&self) -> Vec<String> {
        if let Ok(mut tx) = self.tx.lock() {
            *tx = None;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && tokio::time::timeout(FLUSH_LIMIT, task).await.is_err()
        {
            let mut w = self.warnings();
            w.push(format!(
                "some Kubernetes Events were not recorded within {}s",
                FLUSH_LIMIT.as_secs()
            ));
            return w;
        }
        self.warnings()
    }
}

/// The reference an Event regarding `kind`/`name` carries.
pub(crate) fn reference(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    uid: Option<String>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid,
        ..ObjectReference::default()
    }
}

/// The task that posts Events one after another.
struct Worker {
    client: kube::Client,
    instance: String,
    /// What was last posted for each (namespace, type, note, regarded
    /// object), for counting repeats.
    series: HashMap<(String, &'static str, String, String), Posted>,
    warnings: Arc<Mutex<Vec<String>>>,
    failed: bool,
    forbidden: bool,
}

/// What is kept of a posted Event to count its repeats: its name, its
/// series' count and when it was last seen.
struct Posted {
    name: String,
    count: i32,
    last_seen: Timestamp,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Item>) {
        while let Some(item) = rx.recv().await {
            if self.forbidden {
                continue;
            }
            if let Err(e) = self.post(item).await {
                self.failed(e);
            }
        }
    }

    async fn post(&mut self, item: Item) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = item.regarding.namespace.clone().unwrap_or_default();
        let key = (
            namespace.clone(),
            item.type_,
            item.note.clone(),
            item.regarding.uid.clone().unwrap_or_default(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        self.series.retain(|_, p| p.last_seen + SERIES_WINDOW > now);
        if let Some(previous) = self.series.get_mut(&key) {
            // A first repeat makes a series of two.
            let count = previous.count + 1;
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({ "series": series });
            api.patch(
                &previous.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            previous.count = count;
            previous.last_seen = now;
            return Ok(());
        }
        let event = self.event(item, now);
        api.create(&PostParams::default(), &event).await?;
        let posted = Posted {
            name: event.metadata.name.unwrap_or_default(),
            count: 1,
            last_seen: now,
        };
        self.series.insert(key, posted);
        Ok(())
    }

    fn event(&self, item: Item, now: Timestamp) -> Event {
        let name = format!(
            "{}.{:x}",
            item.regarding.name.as_deref().unwrap_or(CONTROLLER),
            now.as_nanosecond()
        );
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: item.regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(item.type_.to_string()),
            reason: Some(REASON.to_string()),
            action: Some(action(&item.note).to_string()),
            note: Some(item.note),
            regarding: Some(item.regarding),
            reporting_controller: Some(CONTROLLER.to_string()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }

    /// Says a failure once; a refusal of permission ends recording.
    fn failed(&mut self, e: kube::Error) {
        let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
        let said = if forbidden {
            self.forbidden = true;
            format!(
                "Kubernetes Events are not recorded: this identity may not create \
                 events.k8s.io events ({e})"
            )
        } else if !self.failed {
            self.failed = true;
            format!("a Kubernetes Event could not be recorded: {e}")
        } else {
            return;
        };
        if let Ok(mut w) = self.warnings.lock() {
            w.push(said);
        }
    }
}

/// The Event's action: what the rollout was doing, from the message's
/// first word (`Advance`, `Halt`, `Rolling`, ...), which is how Flagger's
/// messages are built.
fn action(note: &str) -> &str {
    let word = note
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .find(|w| !w.is_empty())
        .unwrap_or("Rollout");
    truncate(word, 128)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_is_the_first_word_of_the_message() {
        assert_eq!(action("Advance podinfo.prod canary weight 5"), "Advance");
        assert_eq!(
            action("Pre-rollout check acceptance-test passed"),
            "Pre-rollout"
        );
        assert_eq!(
            action("Promotion completed! Scaling down podinfo.prod"),
            "Promotion"
        );
        assert_eq!(action(""), "Rollout");
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = truncate(&long, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT);
        assert_eq!(cut.chars().count(), 512);
        assert_eq!(truncate("short", NOTE_LIMIT), "short");
    }
}
