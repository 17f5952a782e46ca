//! The state of one canary, as kept in one annotation on the tool-owned
//! `<target>-primary` workload.
//!
//! One schema-versioned JSON document holds everything a later run needs to
//! resume: phase, weight, failed checks, iterations, the schedule step in
//! place, which revision is under analysis and which was last promoted,
//! and when the phase last changed. The lease of the driver currently
//! acting on it is kept beside it in an annotation of its own
//! ([`LEASE_ANNOTATION`]), so that renewing it rewrites a few fields and
//! not the document. What changes at every step (weight, step, its
//! times, counts) is kept beside it in [`PROGRESS_ANNOTATION`], so that a
//! step rewrites that and not the document. The bounded history of steps
//! with their metric values is kept beside it too, one entry an
//! annotation in a ring of [`HISTORY_LIMIT`] slots
//! ([`State::to_annotations`]), so that a step's write carries the
//! entries it adds and not the whole history again. Documents written
//! before any of these, with the progress, the history or the lease
//! inside, are still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// The annotation holding the state document.
pub const ANNOTATION: &str = "canary.flagger.app/state";

/// The annotation holding the lease of the driver acting on the canary.
pub const LEASE_ANNOTATION: &str = "canary.flagger.app/lease";

/// The annotation holding what changes at every step (the weight, the
/// step, its times, the failed checks and iterations, how many history
/// entries were recorded), beside the document, which then leaves them
/// out: a step's write sends this small annotation and not the document.
pub const PROGRESS_ANNOTATION: &str = "canary.flagger.app/progress";

/// The document's fields kept in [`PROGRESS_ANNOTATION`].
const PROGRESS_FIELDS: [&str; 7] = [
    "canaryWeight",
    "step",
    "failedChecks",
    "iterations",
    "stepStarted",
    "nextCheck",
    "recorded",
];

/// Version of the state document's schema.
pub const SCHEMA: u32 = 1;

/// How many history entries are kept.
pub const HISTORY_LIMIT: usize = 50;

/// The annotations holding the history, `<prefix>NN` for the slot `NN`
/// (00 to 49): entry number `n` (counted over the canary's life) is in the
/// slot `n % HISTORY_LIMIT`.
pub const HISTORY_PREFIX: &str = "canary.flagger.app/history.";

/// The annotation of history slot `slot`.
pub fn history_annotation(slot: usize) -> String {
    format!("{HISTORY_PREFIX}{slot:02}")
}

/// One history slot as stored: the entry and its number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot {
    n: u64,
    #[serde(flatten)]
    entry: HistoryEntry,
}

/// Flagger's phases, plus `Aborted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    #[default]
    Initializing,
    Initialized,
    Waiting,
    Progressing,
    WaitingPromotion,
    Promoting,
    Finalising,
    Succeeded,
    Failed,
    Aborted,
    /// `canary revert` is giving the target back (Flagger's phase while a
    /// Canary with `revertOnDeletion` is deleted). Nothing drives the
    /// canary any more; a revert that stopped half way is finished by
    /// running it again.
    Terminating,
}

impl Phase {
    /// Whether an analysis is under way (a driver is needed to finish it).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Progressing
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Aborted => "Aborted",
            Phase::Terminating => "Terminating",
        }
    }
}

/// Flagger's `Promoted` condition for a phase: its status (`True`,
/// `False` or `Unknown`) and message, for a target of kind `kind`
/// (`Deployment`). Its reason is the phase's name, as in Flagger.
pub fn promoted_condition(phase: Phase, kind: &str) -> (&'static str, String) {
    match phase {
        Phase::Initializing => (
            "Unknown",
            format!("New {kind} detected, starting initialization."),
        ),
        Phase::Initialized => ("True", format!("{kind} initialization completed.")),
        Phase::Waiting | Phase::WaitingPromotion => ("Unknown", "Waiting for approval.".into()),
        Phase::Progressing => (
            "Unknown",
            "New revision detected, progressing canary analysis.".into(),
        ),
        Phase::Promoting => (
            "Unknown",
            "Canary analysis completed, starting primary rolling update.".into(),
        ),
        Phase::Finalising => (
            "Unknown",
            "Canary analysis completed, routing all traffic to primary.".into(),
        ),
        Phase::Succeeded => (
            "True",
            "Canary analysis completed successfully, promotion finished.".into(),
        ),
        Phase::Failed => (
            "False",
            format!("Canary analysis failed, {kind} scaled to zero."),
        ),
        // Not Flagger's phases: worded as Flagger words its own.
        Phase::Aborted => (
            "False",
            format!("Canary analysis aborted, {kind} scaled to zero."),
        ),
        Phase::Terminating => (
            "Unknown",
            format!("Canary is being reverted, {kind} serves all traffic again."),
        ),
    }
}

/// Who is driving the canary, and until when that claim holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// `user@host pid N`, for messages.
    pub holder: String,
    pub renew_time: Time,
    pub duration_seconds: u64,
    /// Random, one per process: tells two processes with the same
    /// `holder` apart. Absent in leases written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The host name and process id of the process that holds it, so a
    /// process on the same host can tell that it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Lease {
    pub fn expires(&self) -> Time {
        self.renew_time
            .plus(std::time::Duration::from_secs(self.duration_seconds))
    }

    pub fn is_live(&self, now: Time) -> bool {
        now < self.expires()
    }
}

/// One metric value recorded at a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricRecord {
    pub name: String,
    /// `None` when the query failed or returned no data.
    pub value: Option<f64>,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The thresholds the value was judged against, in its unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Who paused the analysis, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub by: String,
    pub since: Time,
}

/// One entry of the step history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub time: Time,
    pub phase: Phase,
    pub canary_weight: u32,
    /// Left out when 0.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub failed_checks: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRecord>,
    pub message: String,
}

/// Why and when a revision failed, so a later run can report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub revision: String,
    pub time: Time,
    pub reason: String,
}

/// The whole state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub schema: u32,
    /// The Canary's `metadata.name`, for `canary status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    pub phase: Phase,
    pub canary_weight: u32,
    /// Left out when 0, as `iterations` is, to keep a step's write small.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub failed_checks: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub iterations: u32,
    /// The number of the schedule step whose routing is in place (1-based;
    /// 0 before the first). Absent from documents written before it was
    /// kept: the engine then infers it from the weight and iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Revision (canonical hash of the target's pod template and tracked
    /// configs) that the current or last analysis is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Revision the primary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// Hashes of the ConfigMaps and Secrets the target references, by
    /// `configmap/NAME` or `secret/NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    pub last_transition_time: Time,
    /// When the current routing was applied; the next check is one
    /// interval later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started: Option<Time>,
    /// When the next checks are due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<Time>,
    /// The checks of the current step passed and this gate holds the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_gate: Option<crate::spec::resolve::HookType>,
    /// Until when another revision served under the target's name (the
    /// app before initialisation, the last canary): the first check waits
    /// until the metrics' window has passed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_traffic_until: Option<Time>,
    /// When the current analysis first sent traffic to the canary: until
    /// the metrics' window has passed since, "no values" is not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_since: Option<Time>,
    /// When the canary was scaled up for the current analysis, for the
    /// progress deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// `canary pause`: the weight is held and no checks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
    /// The last [`HISTORY_LIMIT`] entries. Inside the document only in
    /// documents written before the history had its own annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// How many history entries were ever recorded: the last
    /// `min(recorded, HISTORY_LIMIT)` are kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recorded: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl State {
    /// The state of a canary being initialised.
    pub fn new(now: Time) -> State {
        State {
            schema: SCHEMA,
            canary: None,
            phase: Phase::Initializing,
            canary_weight: 0,
            failed_checks: 0,
            iterations: 0,
            step: None,
            last_applied_spec: None,
            last_promoted_spec: None,
            tracked_configs: BTreeMap::new(),
            last_transition_time: now,
            step_started: None,
            next_check: None,
            awaiting_gate: None,
            old_traffic_until: None,
            traffic_since: None,
            rollout_started: None,
            failure: None,
            paused: None,
            history: Vec::new(),
            recorded: 0,
            lease: None,
        }
    }

    /// Reads the annotation; a document of a newer schema is refused rather
    /// than misread.
    pub fn from_annotation(text: &str) -> Result<State, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("unreadable state: {e}"))?;
        State::from_value(v)
    }

    fn from_value(v: serde_json::Value) -> Result<State, String> {
        let schema = v.get("schema").and_then(|s| s.as_u64()).unwrap_or(0);
        if schema != u64::from(SCHEMA) {
            return Err(format!(
                "state schema {schema} is not the {SCHEMA} this version of canary reads"
            ));
        }
        let mut state: State =
            serde_json::from_value(v).map_err(|e| format!("unreadable state: {e}"))?;
        // A document with the history inside counted no entries.
        state.recorded = state.recorded.max(state.history.len() as u64);
        Ok(state)
    }

    /// The whole state as one document, history included.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("state serializes")
    }

    /// Reads the state annotation `text`, the progress annotation (when the
    /// document leaves its fields out), the lease annotation and, unless
    /// the document holds its history itself, the history slots, which
    /// `slot` gives by annotation name. A slot that is missing, unreadable
    /// or holds another entry number (left by an earlier write) is left
    /// out. A lease inside the document (written before the lease had its
    /// own annotation) counts when the annotation holds none, or an older
    /// one.
    pub fn from_annotations<'a>(
        text: &str,
        slot: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<State, String> {
        let mut doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("unreadable state: {e}"))?;
        // A document that carries the weight was written whole (before the
        // progress had its own annotation, or by a writer that kept it
        // inside): a progress annotation beside it is not its own.
        if let Some(fields) = doc.as_object_mut()
            && !fields.contains_key("canaryWeight")
            && let Some(progress) = slot(PROGRESS_ANNOTATION)
        {
            let progress: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(progress)
                    .map_err(|e| format!("unreadable progress in {PROGRESS_ANNOTATION}: {e}"))?;
            for (k, v) in progress {
                if PROGRESS_FIELDS.contains(&k.as_str()) {
                    fields.insert(k, v);
                }
            }
        }
        let mut state = State::from_value(doc)?;
        if let Some(lease) = slot(LEASE_ANNOTATION)
            .map(serde_json::from_str::<Lease>)
            .transpose()
            .map_err(|e| format!("unreadable lease in {LEASE_ANNOTATION}: {e}"))?
            && state
                .lease
                .as_ref()
                .is_none_or(|inside| inside.renew_time <= lease.renew_time)
        {
            state.lease = Some(lease);
        }
        if state.history.is_empty() && state.recorded > 0 {
            let kept = state.recorded.min(HISTORY_LIMIT as u64);
            for n in state.recorded - kept..state.recorded {
                let key = history_annotation((n % HISTORY_LIMIT as u64) as usize);
                if let Some(s) = slot(&key).and_then(|t| serde_json::from_str::<Slot>(t).ok())
                    && s.n == n
                {
                    state.history.push(s.entry);
                }
            }
        }
        Ok(state)
    }

    /// The annotations that store the state: the document without its
    /// history, lease and progress first, then the progress, then the
    /// lease when there is one, then one slot an entry of the history. A
    /// state without a lease has no lease annotation: its writer removes
    /// one that is there.
    pub fn to_annotations(&self) -> Vec<(String, String)> {
        let mut bare = self.clone();
        bare.history = Vec::new();
        bare.lease = None;
        bare.recorded = self.recorded.max(self.history.len() as u64);
        let first = bare.recorded - self.history.len() as u64;
        let mut doc = serde_json::to_value(&bare).expect("state serializes");
        let fields = doc.as_object_mut().expect("the state is an object");
        let progress: serde_json::Map<String, serde_json::Value> = PROGRESS_FIELDS
            .iter()
            .filter_map(|k| fields.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        let mut out = vec![
            (ANNOTATION.to_string(), doc.to_string()),
            (
                PROGRESS_ANNOTATION.to_string(),
                serde_json::Value::Object(progress).to_string(),
            ),
        ];
        if let Some(lease) = &self.lease {
            out.push((
                LEASE_ANNOTATION.to_string(),
                serde_json::to_string(lease).expect("leases serialize"),
            ));
        }
        for (i, entry) in self.history.iter().enumerate() {
            let n = first + i as u64;
            let slot = Slot {
                n,
                entry: entry.clone(),
            };
            out.push((
                history_annotation((n % HISTORY_LIMIT as u64) as usize),
                serde_json::to_string(&slot).expect("history serializes"),
            ));
        }
        out
    }

    /// Moves to `phase`, stamping the transition time when it changes.
    pub fn set_phase(&mut self, phase: Phase, now: Time) {
        if self.phase != phase {
            self.phase = phase;
            self.last_transition_time = now;
        }
    }

    /// Appends to the bounded history.
    pub fn record(&mut self, now: Time, message: impl Into<String>, metrics: Vec<MetricRecord>) {
        self.recorded = self.recorded.max(self.history.len() as u64) + 1;
        self.history.push(HistoryEntry {
            time: now,
            phase: self.phase,
            canary_weight: self.canary_weight,
            failed_checks: self.failed_checks,
            metrics,
            message: message.into(),
        });
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_round_trips_and_reads_as_text() {
        let mut s = State::new(Time(1_700_000_000_000));
        s.set_phase(Phase::Progressing, Time(1_700_000_010_000));
        s.canary_weight = 15;
        s.lease = Some(Lease {
            holder: "ci@runner pid 7".into(),
            renew_time: Time(1_700_000_010_000),
            duration_seconds: 15,
            token: Some("5f0c".into()),
            host: Some("runner".into()),
            pid: Some(7),
        });
        let text = s.to_annotation();
        assert!(
            text.contains("\"lastTransitionTime\":\"2023-11-14T22:13:30.000Z\""),
            "{text}"
        );
        assert_eq!(State::from_annotation(&text).unwrap(), s);
    }

    #[test]
    fn a_step_changes_the_progress_and_a_history_slot_and_not_the_document() {
        let mut s = State::new(Time(1_700_000_000_000));
        s.set_phase(Phase::Progressing, Time(1_700_000_010_000));
        s.last_applied_spec = Some("5c8db2d06a61448d".into());
        s.last_promoted_spec = Some("0d3f2a7c9b1e4f60".into());
        s.canary_weight = 15;
        s.step = Some(3);
        s.step_started = Some(Time(1_700_000_020_000));
        s.next_check = Some(Time(1_700_000_030_000));
        s.record(Time(1_700_000_020_000), "checks passed", Vec::new());
        let stored: BTreeMap<String, String> = s.to_annotations().into_iter().collect();
        assert!(
            !stored[ANNOTATION].contains("canaryWeight"),
            "{}",
            stored[ANNOTATION]
        );
        let read =
            State::from_annotations(&stored[ANNOTATION], |k| stored.get(k).map(String::as_str))
                .unwrap();
        assert_eq!(read, s);
        let mut next = s.clone();
        next.canary_weight = 20;
        next.step = Some(4);
        next.step_started = Some(Time(1_700_000_030_000));
        next.next_check = Some(Time(1_700_000_040_000));
        next.record(Time(1_700_000_030_000), "checks passed", Vec::new());
        let changed: Vec<String> = next
            .to_annotations()
            .into_iter()
            .filter(|(k, v)| stored.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            changed,
            [PROGRESS_ANNOTATION.to_string(), history_annotation(1)]
        );
        // A whole document (written before the progress had its own
        // annotation) is read as it is, whatever progress is beside it.
        let whole = next.to_annotation();
        let read = State::from_annotations(&whole, |k| stored.get(k).map(String::as_str)).unwrap();
        assert_eq!(read.canary_weight, 20);
        assert_eq!(read.step, Some(4));
        let e = State::from_annotations(&stored[ANNOTATION], |k| {
            (k == PROGRESS_ANNOTATION).then_some("[")
        })
        .unwrap_err();
        assert!(e.contains(PROGRESS_ANNOTATION), "{e}");
    }

    #[test]
    fn the_lease_is_stored_beside_the_document_and_read_from_either() {
        let mut s = State::new(Time(0));
        let lease = Lease {
            holder: "ci".into(),
            renew_time: Time(5_000),
            duration_seconds: 15,
            token: Some("5f0c".into()),
            host: None,
            pid: None,
        };
        s.lease = Some(lease.clone());
        let stored: BTreeMap<String, String> = s.to_annotations().into_iter().collect();
        assert!(
            !stored[ANNOTATION].contains("lease"),
            "{}",
            stored[ANNOTATION]
        );
        assert!(stored[LEASE_ANNOTATION].contains("\"holder\":\"ci\""));
        let read =
            State::from_annotations(&stored[ANNOTATION], |k| stored.get(k).map(String::as_str))
                .unwrap();
        assert_eq!(read, s);
        // Renewing changes the lease annotation only.
        let mut renewed = s.clone();
        renewed.lease.as_mut().unwrap().renew_time = Time(10_000);
        let changed: Vec<String> = renewed
            .to_annotations()
            .into_iter()
            .filter(|(k, v)| stored.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, [LEASE_ANNOTATION.to_string()]);
        // No lease, no annotation.
        s.lease = None;
        assert!(
            s.to_annotations()
                .iter()
                .all(|(k, _)| k != LEASE_ANNOTATION)
        );
        // A document written with the lease inside is read with it, unless
        // the annotation holds a newer one.
        let mut old = State::new(Time(0));
        old.lease = Some(lease.clone());
        let inside = old.to_annotation();
        assert_eq!(
            State::from_annotations(&inside, |_| None).unwrap().lease,
            Some(lease.clone())
        );
        let newer = serde_json::to_string(&Lease {
            renew_time: Time(9_000),
            ..lease.clone()
        })
        .unwrap();
        let read = State::from_annotations(&inside, |k| {
            (k == LEASE_ANNOTATION).then_some(newer.as_str())
        })
        .unwrap();
        assert_eq!(read.lease.unwrap().renew_time, Time(9_000));
        let e = State::from_annotations(&inside, |k| (k == LEASE_ANNOTATION).then_some("{"))
            .unwrap_err();
        assert!(e.contains(LEASE_ANNOTATION), "{e}");
    }

    #[test]
    fn counts_of_zero_are_left_out_and_read_back_as_zero() {
        let mut s = State::new(Time(0));
        s.record(Time(1), "checks passed", Vec::new());
        let stored: BTreeMap<String, String> = s.to_annotations().into_iter().collect();
        for text in stored.values() {
            assert!(!text.contains("failedChecks"), "{text}");
            assert!(!text.contains("iterations"), "{text}");
        }
        let read =
            State::from_annotations(&stored[ANNOTATION], |k| stored.get(k).map(String::as_str))
                .unwrap();
        assert_eq!(read, s);
        s.failed_checks = 2;
        assert!(s.to_annotation().contains("\"failedChecks\":2"));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let e = State::from_annotation(r#"{"schema": 2, "phase": "Progressing"}"#).unwrap_err();
        assert!(e.contains("schema 2"), "{e}");
    }

    #[test]
    fn the_history_is_stored_one_entry_a_slot_and_read_back() {
        let mut s = State::new(Time(0));
        for i in 0..(HISTORY_LIMIT + 7) {
            s.record(Time(i as i64), format!("step {i}"), Vec::new());
        }
        let stored: BTreeMap<String, String> = s.to_annotations().into_iter().collect();
        assert_eq!(stored.len(), 2 + HISTORY_LIMIT);
        assert!(
            !stored[ANNOTATION].contains("step"),
            "{}",
            stored[ANNOTATION]
        );
        // Entry 56 went to slot 06, over entry 6.
        assert!(stored[&history_annotation(6)].contains("step 56"));
        let read =
            State::from_annotations(&stored[ANNOTATION], |k| stored.get(k).map(String::as_str))
                .unwrap();
        assert_eq!(read, s);

        // One more entry rewrites one slot and the progress only.
        let mut next = s.clone();
        next.record(Time(100), "one more", Vec::new());
        let changed: Vec<String> = next
            .to_annotations()
            .into_iter()
            .filter(|(k, v)| stored.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            changed,
            [PROGRESS_ANNOTATION.to_string(), history_annotation(7)]
        );
    }

    #[test]
    fn a_document_with_its_history_inside_is_read_and_continued() {
        let mut old = State::new(Time(0));
        for i in 0..3 {
            old.record(Time(i), format!("step {i}"), Vec::new());
        }
        old.recorded = 0;
        let mut text: serde_json::Value = serde_json::from_str(&old.to_annotation()).unwrap();
        text.as_object_mut().unwrap().remove("recorded");
        let read = State::from_annotations(&text.to_string(), |_| None).unwrap();
        assert_eq!(read.history.len(), 3);
        assert_eq!(read.recorded, 3);
        let mut next = read.clone();
        next.record(Time(9), "step 3", Vec::new());
        let stored: BTreeMap<String, String> = next.to_annotations().into_iter().collect();
        assert_eq!(stored.len(), 6);
        let again =
            State::from_annotations(&stored[ANNOTATION], |k| stored.get(k).map(String::as_str))
                .unwrap();
        assert_eq!(again, next);
    }

    #[test]
    fn a_slot_left_by_an_earlier_write_is_not_read() {
        let mut s = State::new(Time(0));
        s.record(Time(1), "first", Vec::new());
        let stored: BTreeMap<String, String> = s.to_annotations().into_iter().collect();
        let mut later = s.clone();
        later.recorded = HISTORY_LIMIT as u64 + 1;
        later.history.clear();
        let read = State::from_annotations(&later.to_annotation(), |k| {
            stored.get(k).map(String::as_str)
        })
        .unwrap();
        assert!(read.history.is_empty(), "{:?}", read.history);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = State::new(Time(0));
        for i in 0..(HISTORY_LIMIT + 5) {
            s.record(Time(i as i64), format!("step {i}"), Vec::new());
        }
        assert_eq!(s.history.len(), HISTORY_LIMIT);
        assert_eq!(s.history[0].message, "step 5");
    }

    #[test]
    fn the_promoted_condition_is_flaggers() {
        assert_eq!(
            promoted_condition(Phase::Failed, "Deployment"),
            (
                "False",
                "Canary analysis failed, Deployment scaled to zero.".to_string()
            )
        );
        assert_eq!(promoted_condition(Phase::Succeeded, "Deployment").0, "True");
        assert_eq!(
            promoted_condition(Phase::Progressing, "Deployment").0,
            "Unknown"
        );
    }

    #[test]
    fn leases_expire() {
        let l = Lease {
            holder: "a".into(),
            renew_time: Time(1000),
            duration_seconds: 10,
            token: None,
            host: None,
            pid: None,
        };
        assert!(l.is_live(Time(10_999)));
        assert!(!l.is_live(Time(11_000)));
    }
}
