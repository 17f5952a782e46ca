//! Events of a run: what happened to one canary, as one value that every
//! output renders — the live view, the timestamped log lines, the JSON
//! event stream (`canary run -o json`) and the end-of-run summary.
//!
//! The JSON form is an interface: one object per line, field names in
//! camelCase, `schema` set to [`SCHEMA`]. Fields are added, never renamed
//! or removed, within a schema version; the README documents them. Every
//! event carries the canary's state after it (`phase`, `canaryWeight`,
//! `failedChecks`, `iterations`, `paused`, `nextCheck`, `waitingFor`), so
//! a consumer that only keeps the last event still knows where the rollout
//! stands.

use serde::{Deserialize, Serialize};

use crate::engine::state::{MetricRecord, Phase, State};
use crate::time::Time;

/// Version of the event schema.
pub const SCHEMA: u32 = 1;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// The driver took the canary on; `run` describes the rollout.
    Started,
    /// A step of the rollout, in Flagger's words (`message`).
    Progress,
    /// The checks of one interval: `metrics` and `hooks`.
    Check,
    /// Request rate, success rate and latency per version (`traffic`).
    Traffic,
    /// The rollout waits for something besides time (`waitingFor`), or
    /// stopped waiting (`waitingFor` absent).
    Waiting,
    /// `canary abort|promote|pause|resume` was acted on (`request`).
    Request,
    /// Something went wrong that does not stop the run (`message`).
    Warning,
    /// The run ended for this canary (`outcome`).
    Verdict,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Started => "started",
            Kind::Progress => "progress",
            Kind::Check => "check",
            Kind::Traffic => "traffic",
            Kind::Waiting => "waiting",
            Kind::Request => "request",
            Kind::Warning => "warning",
            Kind::Verdict => "verdict",
        }
    }
}

/// One event of one canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    pub schema: u32,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub time: Time,
    /// The Canary's name and namespace.
    pub canary: String,
    pub namespace: String,
    /// The canary's state after the event.
    pub phase: Phase,
    pub canary_weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
    pub paused: bool,
    /// When the next checks are due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<Time>,
    /// What the rollout waits for besides time: readiness, a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `started`: the rollout ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    /// `check`: each metric's value against its thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRecord>,
    /// `check`: the rollout webhooks called before the metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRecord>,
    /// `traffic`: what each version serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// `request`: the operator's request that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestInfo>,
    /// `verdict`: how the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeInfo>,
}

/// The rollout a driver takes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunInfo {
    /// `deployment/NAME`.
    pub target: String,
    pub provider: String,
    /// `canary`, `A/B testing`, `blue/green`, ... (see `plan`).
    pub strategy: String,
    pub interval_seconds: f64,
    /// Failed checks that roll the canary back.
    pub threshold: u32,
    /// The canary weights of the steps, in order (progressive canaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
    pub max_weight: u32,
    /// Iterations (A/B testing, blue/green); 0 for weighted canaries.
    pub iterations: u32,
    /// The checks, with their thresholds in the unit of their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricInfo>,
}

/// A check and its pass condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `%`, `ms`, or empty for a template's own unit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// One webhook called during a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookRecord {
    pub name: String,
    /// `passed`, `failed` or `skipped` (not called after an earlier failure).
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Traffic per version over the last `windowSeconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Traffic {
    pub window_seconds: u64,
    pub primary: VersionStats,
    pub canary: VersionStats,
    /// The rollout webhooks that send requests to the canary's Service
    /// directly (a load tester), past the router: the canary's numbers
    /// hold their requests besides its share of the weighted traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_direct: Vec<String>,
}

/// What one version serves; `None` where the metrics server has no value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionStats {
    /// Requests per second.
    pub request_rate: Option<f64>,
    /// Non-5xx responses, in percent.
    pub success_rate: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub latency_p99_ms: Option<f64>,
}

/// An operator's request and how fast it was acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestInfo {
    /// `abort`, `promote`, `pause`, `resume`.
    pub action: String,
    /// Who asked (`user@host pid N`).
    pub by: String,
    pub requested_at: Time,
    /// From the request being written to the driver acting on it.
    pub reacted_after_ms: u64,
}

/// How a run ended for one canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeInfo {
    /// `initialized`, `noChange`, `promoted`, `rolledBack`, `alreadyFailed`,
    /// `aborted`, `timedOut`, `interrupted`, `error`.
    pub result: String,
    /// The process exit code this outcome maps to.
    pub exit_code: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` at `time`, carrying the canary's `state`.
    pub fn new(kind: Kind, time: Time, canary: &str, namespace: &str, state: &State) -> Event {
        Event {
            schema: SCHEMA,
            kind,
            time,
            canary: canary.to_string(),
            namespace: namespace.to_string(),
            phase: state.phase,
            canary_weight: state.canary_weight,
            failed_checks: state.failed_checks,
            iterations: state.iterations,
            paused: state.paused.is_some(),
            next_check: state.next_check,
            waiting_for: None,
            message: None,
            run: None,
            metrics: Vec::new(),
            hooks: Vec::new(),
            traffic: None,
            request: None,
            outcome: None,
        }
    }

    /// `name.namespace`, as lines and tables name a canary.
    pub fn id(&self) -> String {
        format!("{}.{}", self.canary, self.namespace)
    }

    pub fn with_message(mut self, m: impl Into<String>) -> Event {
        self.message = Some(m.into());
        self
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// Where a driver's events go. Implementations render them (see `ui`).
pub trait Reporter: Send + Sync {
    fn emit(&self, event: &Event);

    /// Whether events of `kind` are shown or kept at all: a driver does
    /// not pay for what would be thrown away (the traffic of each version
    /// costs a metrics query every interval).
    fn wants(&self, _kind: Kind) -> bool {
        true
    }
}

/// Keeps every event, for tests and for the summary.
#[derive(Default)]
pub struct Recorder {
    events: std::sync::Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Reporter for Recorder {
    fn emit(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_its_json_line() {
        let mut state = State::new(Time(1_700_000_000_000));
        state.phase = Phase::Progressing;
        state.canary_weight = 10;
        state.next_check = Some(Time(1_700_000_060_000));
        let mut e = Event::new(
            Kind::Check,
            Time(1_700_000_000_000),
            "podinfo",
            "test",
            &state,
        );
        e.metrics.push(MetricRecord {
            name: "request-success-rate".into(),
            value: Some(99.5),
            passed: true,
            error: None,
            min: Some(99.0),
            max: None,
        });
        let line = e.to_json_line();
        assert!(
            line.starts_with(r#"{"schema":1,"type":"check","time":"2023-11-14T22:13:20.000Z""#)
        );
        assert!(!line.contains('\n'));
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_fields_are_refused_by_the_strict_reader() {
        let line = r#"{"schema":1,"type":"progress","time":"2023-11-14T22:13:20.000Z","canary":"a","namespace":"b","phase":"Progressing","canaryWeight":0,"failedChecks":0,"iterations":0,"paused":false,"extra":1}"#;
        let e = serde_json::from_str::<Event>(line).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
    }
}
