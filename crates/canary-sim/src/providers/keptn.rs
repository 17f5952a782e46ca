//! Keptn's metrics operator, as far as a MetricTemplate of type `keptn`
//! reads it: the `metrics.keptn.sh/v1beta1` resources the simulated
//! cluster serves (installed with [`crate::kinds::CrdGroups::keptn`]) and
//! a controller that fills their status, reacting to changes and waking
//! when a KeptnMetric is due for its next fetch.
//!
//! - **KeptnMetric**: every `spec.fetchIntervalSeconds` (default 10) its
//!   `spec.query` is evaluated by the simulated Prometheus' engine at the
//!   cluster's current time, and `status.value` set to the value as Keptn
//!   writes it (Prometheus' float text), with `status.lastUpdated`. A
//!   query answering no series, several series or NaN sets
//!   `status.errMsg` and an empty `status.value`, as Keptn does.
//!   `spec.provider.name` must name a KeptnMetricsProvider of the same
//!   namespace whose `spec.type` is `prometheus` (or unset): the simulated
//!   Prometheus is the only provider.
//! - **Analysis**: when created, its AnalysisDefinition
//!   (`spec.analysisDefinition`, namespace defaulting to the Analysis')
//!   is evaluated: each objective's AnalysisValueTemplate query, with
//!   `{{.key}}` replaced by the Analysis' `spec.args`, is evaluated at the
//!   end of `spec.timeframe` (`recent`: now; `to`: that time), and scored
//!   as Keptn scores it: an objective whose `failure` target is met scores
//!   0, one whose `warning` target is met half its `weight` (default 1),
//!   the others their whole weight. The Analysis passes when the score
//!   reaches `totalScore.passPercentage` and no `keyObjective` failed; the
//!   status is `state: Completed`, `pass`, `warning` and `raw`, the
//!   objectives' results as JSON.
//!
//! Left out: KeptnMetric `spec.range` (range aggregation), providers
//! other than Prometheus, the Analysis' `storedValues`, and Go template
//! functions in queries (only `{{.key}}` substitution).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use crate::promql::{Value as PromValue, instant_query};
use crate::series::SeriesStore;
use crate::store::{ChangeType, Store, Subresource, WriteOptions, now_rfc3339};

/// The API version of every Keptn resource served.
pub const API_VERSION: &str = "metrics.keptn.sh/v1beta1";
const GROUP: &str = "metrics.keptn.sh";
/// Keptn's default `fetchIntervalSeconds`.
const DEFAULT_FETCH_INTERVAL: u64 = 10;

type Key = (String, String);

/// The Keptn metrics operator of one simulated cluster.
pub struct KeptnOperator {
    store: Arc<Store>,
    series: Arc<SeriesStore>,
}

/// Starts the operator; it stops when `shutdown` turns true.
pub fn spawn(
    store: Arc<Store>,
    series: Arc<SeriesStore>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let op = Arc::new(KeptnOperator { store, series });
    tokio::spawn(op.run(shutdown))
}

#[derive(Default)]
struct Work {
    all: bool,
    metrics: HashSet<Key>,
    analyses: HashSet<Key>,
}

impl KeptnOperator {
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.store.kind(API_VERSION, "KeptnMetric").is_err() {
            return;
        }
        let mut rx = self.store.subscribe();
        let mut due: HashMap<Key, Instant> = HashMap::new();
        let mut work = Work {
            all: true,
            ..Work::default()
        };
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = Instant::now();
            let ready: Vec<Key> = due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ready {
                due.remove(&k);
                work.metrics.insert(k);
            }
            self.pass(std::mem::take(&mut work), &mut due, now);
            let next = due.values().min().copied();
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wait => {}
                r = rx.recv() => {
                    let mut take = |r: Result<Arc<crate::store::Change>, ()>| match r {
                        Ok(c) => note(&mut work, &c),
                        Err(()) => work.all = true,
                    };
                    match r {
                        Ok(c) => take(Ok(c)),
                        Err(RecvError::Lagged(_)) => take(Err(())),
                        Err(RecvError::Closed) => return,
                    }
                    loop {
                        match rx.try_recv() {
                            Ok(c) => take(Ok(c)),
                            Err(TryRecvError::Lagged(_)) => take(Err(())),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn pass(&self, work: Work, due: &mut HashMap<Key, Instant>, now: Instant) {
        let (metrics, analyses): (Vec<Key>, Vec<Key>) = if work.all {
            let keys = |kind: &str| {
                self.store
                    .list(API_VERSION, kind, None)
                    .iter()
                    .map(key_of)
                    .collect::<Vec<_>>()
            };
            (keys("KeptnMetric"), keys("Analysis"))
        } else {
            (
                work.metrics.into_iter().collect(),
                work.analyses.into_iter().collect(),
            )
        };
        for k in metrics {
            match self.store.get(API_VERSION, "KeptnMetric", &k.0, &k.1) {
                Some(m) => {
                    self.fetch_metric(&m);
                    let every = m["spec"]["fetchIntervalSeconds"]
                        .as_u64()
                        .or_else(|| m["spec"]["fetchIntervalSeconds"].as_str()?.parse().ok())
                        .unwrap_or(DEFAULT_FETCH_INTERVAL)
                        .max(1);
                    due.insert(k, now + Duration::from_secs(every));
                }
                None => {
                    due.remove(&k);
                }
            }
        }
        for k in analyses {
            if let Some(a) = self.store.get(API_VERSION, "Analysis", &k.0, &k.1)
                && a["status"]["state"] != json!("Completed")
            {
                self.evaluate_analysis(&a);
            }
        }
    }

    fn write_status(&self, kind: &str, obj: &Value, status: Value) {
        let Ok(k) = self.store.kind(API_VERSION, kind) else {
            return;
        };
        let mut o = obj.clone();
        o["status"] = status;
        let (ns, name) = key_of(obj);
        let opts = WriteOptions {
            field_manager: Some("keptn-metrics-operator".to_string()),
            ..WriteOptions::default()
        };
        let _ = self
            .store
            .update_in(k, &ns, &name, o, Subresource::Status, &opts);
    }

    /// The value of `query` at `at_ms`, or Keptn's error for its answer.
    fn evaluate(&self, query: &str, at_ms: i64) -> Result<f64, String> {
        match instant_query(&self.series, query, at_ms) {
            Err(e) => Err(format!("bad_data: {e}")),
            Ok(PromValue::Scalar(v)) if !v.is_nan() => Ok(v),
            Ok(PromValue::Vector(v)) => match v.as_slice() {
                [] => Err("no values in query result".to_string()),
                [s] if !s.value.is_nan() => Ok(s.value),
                [_] => Err("the query result is NaN".to_string()),
                _ => Err("query returned more than one value".to_string()),
            },
            Ok(_) => Err("the query result is not a single value".to_string()),
        }
    }

    /// Checks that `provider` names a Prometheus KeptnMetricsProvider.
    fn provider_is_prometheus(&self, ns: &str, provider: &Value) -> Result<(), String> {
        let name = provider["name"].as_str().unwrap_or("");
        let ns = provider["namespace"].as_str().unwrap_or(ns);
        let Some(p) = self
            .store
            .get(API_VERSION, "KeptnMetricsProvider", ns, name)
        else {
            return Err(format!("KeptnMetricsProvider.{GROUP} \"{name}\" not found"));
        };
        match p["spec"]["type"].as_str().unwrap_or("prometheus") {
            "prometheus" => Ok(()),
            other => Err(format!("provider {other} not supported")),
        }
    }

    fn fetch_metric(&self, m: &Value) {
        let (ns, _) = key_of(m);
        let spec = &m["spec"];
        let result = self
            .provider_is_prometheus(&ns, &spec["provider"])
            .and_then(|()| self.evaluate(spec["query"].as_str().unwrap_or(""), self.series.now()));
        let mut status = json!({"lastUpdated": now_rfc3339()});
        match result {
            Ok(v) => {
                status["value"] = json!(v.to_string());
                status["rawValue"] = json!(base64_of(&v.to_string()));
            }
            Err(e) => {
                status["value"] = json!("");
                status["errMsg"] = json!(e);
            }
        }
        self.write_status("KeptnMetric", m, status);
    }

    fn evaluate_analysis(&self, a: &Value) {
        let (ns, _) = key_of(a);
        let def_ref = &a["spec"]["analysisDefinition"];
        let def_ns = def_ref["namespace"].as_str().unwrap_or(&ns).to_string();
        let def_name = def_ref["name"].as_str().unwrap_or("");
        let Some(def) = self
            .store
            .get(API_VERSION, "AnalysisDefinition", &def_ns, def_name)
        else {
            self.write_status(
                "Analysis",
                a,
                json!({"state": "Pending", "pass": false, "warning": false,
                    "raw": format!("AnalysisDefinition.{GROUP} \"{def_name}\" not found")}),
            );
            return;
        };
        let args: BTreeMap<String, String> = a["spec"]["args"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let at_ms = analysis_end(a, self.series.now());
        let mut results = Vec::new();
        let (mut score, mut total, mut key_failed) = (0.0, 0.0, false);
        for o in def["spec"]["objectives"].as_array().into_iter().flatten() {
            let weight = o["weight"].as_f64().unwrap_or(1.0);
            total += weight;
            let tref = &o["analysisValueTemplateRef"];
            let t_ns = tref["namespace"].as_str().unwrap_or(&def_ns);
            let t_name = tref["name"].as_str().unwrap_or("");
            let value = match self
                .store
                .get(API_VERSION, "AnalysisValueTemplate", t_ns, t_name)
            {
                None => Err(format!(
                    "AnalysisValueTemplate.{GROUP} \"{t_name}\" not found"
                )),
                Some(t) => self
                    .provider_is_prometheus(t_ns, &t["spec"]["provider"])
                    .and_then(|()| {
                        let q = substitute(t["spec"]["query"].as_str().unwrap_or(""), &args);
                        self.evaluate(&q, at_ms)
                    }),
            };
            let (failed, warned) = match &value {
                Ok(v) => (
                    meets(&o["target"]["failure"], *v),
                    meets(&o["target"]["warning"], *v),
                ),
                Err(_) => (true, false),
            };
            let this = if failed {
                0.0
            } else if warned {
                weight / 2.0
            } else {
                weight
            };
            score += this;
            if failed && o["keyObjective"].as_bool().unwrap_or(false) {
                key_failed = true;
            }
            results.push(json!({
                "objective": o,
                "value": value.as_ref().ok(),
                "error": value.as_ref().err(),
                "score": this,
            }));
        }
        let percent = if total > 0.0 {
            score / total * 100.0
        } else {
            0.0
        };
        let pass_at = def["spec"]["totalScore"]["passPercentage"]
            .as_f64()
            .unwrap_or(100.0);
        let warn_at = def["spec"]["totalScore"]["warningPercentage"]
            .as_f64()
            .unwrap_or(pass_at);
        let pass = !key_failed && percent >= pass_at;
        let warning = !pass && !key_failed && percent >= warn_at;
        let raw = json!({
            "objectiveResults": results,
            "totalScore": score,
            "maximumScore": total,
            "pass": pass,
            "warning": warning,
        });
        self.write_status(
            "Analysis",
            a,
            json!({"state": "Completed", "pass": pass, "warning": warning,
                "raw": raw.to_string()}),
        );
    }
}

fn note(work: &mut Work, c: &crate::store::Change) {
    if c.kind.group != GROUP || c.change == ChangeType::Deleted {
        return;
    }
    let key = (c.namespace.clone(), c.name.clone());
    let spec_changed = c.old.as_ref().is_none_or(|o| o["spec"] != c.object["spec"]);
    match c.kind.kind {
        "KeptnMetric" if spec_changed => {
            work.metrics.insert(key);
        }
        "Analysis" if spec_changed => {
            work.analyses.insert(key);
        }
        // An Analysis waiting for its definition or templates is looked at
        // again when they appear.
        "AnalysisDefinition" | "AnalysisValueTemplate" | "KeptnMetricsProvider" => work.all = true,
        _ => {}
    }
}

fn key_of(o: &Value) -> Key {
    (
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn base64_of(s: &str) -> String {
    use base64::prelude::{BASE64_STANDARD, Engine as _};
    BASE64_STANDARD.encode(s)
}

/// The time an Analysis is evaluated at, in Unix milliseconds: the end of
/// its timeframe (`to`, else now).
fn analysis_end(a: &Value, now_ms: i64) -> i64 {
    a["spec"]["timeframe"]["to"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(now_ms)
}

/// `query` with each `{{.key}}` (spaces allowed inside the braces)
/// replaced by the argument's value.
pub(crate) fn substitute(query: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end].trim();
        match inner.strip_prefix('.').and_then(|k| args.get(k)) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether `v` meets a Keptn target operator (`lessThan`, `lessThanOrEqual`,
/// `greaterThan`, `greaterThanOrEqual`, `equalTo`, `inRange`,
/// `notInRange`); an absent target is never met.
pub(crate) fn meets(target: &Value, v: f64) -> bool {
    let num = |x: &Value| -> Option<f64> {
        match x {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let fixed = |op: &str| num(&target[op]["fixedValue"]);
    let range = |op: &str| {
        Some((
            num(&target[op]["lowBound"])?,
            num(&target[op]["highBound"])?,
        ))
    };
    if let Some(x) = fixed("lessThan") {
        return v < x;
    }
    if let Some(x) = fixed("lessThanOrEqual") {
        return v <= x;
    }
    if let Some(x) = fixed("greaterThan") {
        return v > x;
    }
    if let Some(x) = fixed("greaterThanOrEqual") {
        return v >= x;
    }
    if let Some(x) = fixed("equalTo") {
        return v == x;
    }
    if let Some((lo, hi)) = range("inRange") {
        return lo <= v && v <= hi;
    }
    if let Some((lo, hi)) = range("notInRange") {
        return v < lo || v > hi;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_replace_their_placeholders() {
        let args = BTreeMap::from([("workload".to_string(), "podinfo".to_string())]);
        assert_eq!(
            substitute(
                "rate(x{app=\"{{.workload}}\", ns=\"{{ .ns }}\"}[1m])",
                &args
            ),
            "rate(x{app=\"podinfo\", ns=\"{{ .ns }}\"}[1m])"
        );
    }

    #[test]
    fn targets_are_met_as_keptn_reads_them() {
        let t = json!({"greaterThan": {"fixedValue": "500"}});
        assert!(meets(&t, 501.0) && !meets(&t, 500.0));
        let t = json!({"inRange": {"lowBound": 1, "highBound": "2"}});
        assert!(meets(&t, 1.5) && !meets(&t, 3.0));
        assert!(!meets(&Value::Null, 1.0));
    }
}
