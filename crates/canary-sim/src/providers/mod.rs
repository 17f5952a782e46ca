//! The metric services a MetricTemplate can name besides Prometheus:
//! Datadog, New Relic, Graphite, Dynatrace, InfluxDB, CloudWatch,
//! Stackdriver and Splunk, each under a path
//! of its own on one loopback port ([`crate::world::World::providers_url`]),
//! as public services are reached:
//!
//! | service   | address                 | what it answers                       |
//! |-----------|-------------------------|---------------------------------------|
//! | Datadog   | `BASE/datadog`          | `GET /api/v1/query`, `/api/v1/validate` |
//! | New Relic | `BASE/newrelic`         | `GET /v1/accounts/ID/query`           |
//! | Graphite  | `BASE/graphite`         | `GET /render`                         |
//! | Dynatrace | `BASE/dynatrace`        | `GET /api/v2/metrics/query`, `/api/v2/metrics` |
//! | InfluxDB  | `BASE/influxdb`         | `POST /api/v2/query`                  |
//! | CloudWatch | `BASE/cloudwatch`      | `POST /` (`GetMetricData`, JSON 1.0), STS at `/sts` |
//! | Stackdriver | `BASE/stackdriver`    | `POST /v3/projects/P/timeSeries:query`, OAuth at `/token` |
//! | Splunk    | `BASE/splunk`           | `GET /v2/metric`, the SignalFlow WebSocket at `/v2/signalflow/connect` |
//!
//! Each checks what the real service checks (its credentials, in the header
//! it reads them from; the method, path, parameters and body it needs) and
//! answers in the real service's shape, or with the real service's error
//! shape and status. Their credentials are set per service
//! ([`MetricProviders::credentials`], under the keys a MetricTemplate's
//! Secret holds them).
//!
//! The values come from the simulated cluster's own traffic series: each
//! service keeps a table from its query text (whitespace runs read as one
//! space) to a PromQL expression, set by a test or the demo
//! ([`MetricProviders::map_query`]), evaluated by the simulated Prometheus'
//! engine at the time the request asks about. `$window` in an expression
//! is replaced by the window the request names (Datadog's and Dynatrace's
//! `from`/`to`, New Relic's `SINCE`, Graphite's `from`, a Flux `range`,
//! a SignalFlow resolution),
//! as a PromQL duration. A query with no entry answers what the real
//! service answers for an unknown metric: no series.

mod cloudwatch;
mod datadog;
pub mod demo;
mod dynatrace;
pub mod externalmetrics;
mod graphite;
mod influxdb;
pub mod keptn;
mod newrelic;
pub mod splunk;
mod stackdriver;

pub use stackdriver::{service_account_key, stackdriver_private_key_lines};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::promql::{EvalOptions, Value, instant_query, range_query};
use crate::series::SeriesStore;

/// A metric service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Datadog,
    Newrelic,
    Graphite,
    Dynatrace,
    Influxdb,
    Cloudwatch,
    Stackdriver,
    Splunk,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Datadog,
        Kind::Newrelic,
        Kind::Graphite,
        Kind::Dynatrace,
        Kind::Influxdb,
        Kind::Cloudwatch,
        Kind::Stackdriver,
        Kind::Splunk,
    ];

    /// The MetricTemplate provider type, which is also its path prefix.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Datadog => "datadog",
            Kind::Newrelic => "newrelic",
            Kind::Graphite => "graphite",
            Kind::Dynatrace => "dynatrace",
            Kind::Influxdb => "influxdb",
            Kind::Cloudwatch => "cloudwatch",
            Kind::Stackdriver => "stackdriver",
            Kind::Splunk => "splunk",
        }
    }

    /// The credentials a fresh service accepts, by the Secret keys Flagger
    /// reads them from.
    fn default_credentials(self) -> BTreeMap<String, String> {
        let pairs: &[(&str, &str)] = match self {
            Kind::Datadog => &[
                ("datadog_api_key", "dd-api-5c0a8e1f"),
                ("datadog_application_key", "dd-app-91b2d7c4"),
            ],
            Kind::Newrelic => &[
                ("newrelic_account_id", "2207431"),
                ("newrelic_query_key", "NRIQ-7d3f0a9c"),
            ],
            Kind::Graphite => &[("username", "graphite"), ("password", "gr4ph-e83b")],
            Kind::Dynatrace => &[("dynatrace_token", "dt0c01.SIM.4a7e2b")],
            Kind::Influxdb => &[("token", "influx-t0k-6f1d"), ("org", "canary")],
            // CloudWatch reads no Secret: the AWS credential chain's
            // access key, and what STS checks for the web identity path.
            Kind::Cloudwatch => &[
                ("aws_access_key_id", "AKIASIMCANARY7Q2X4ZP"),
                ("aws_secret_access_key", "sim/Cw+9kR2vT8qL5mN3pX7bY1dF4hJ6"),
                ("role_arn", "arn:aws:iam::123456789012:role/canary-metrics"),
                (
                    "web_identity_token",
                    "eyJhbGciOiJSUzI1NiJ9.sim-projected-token.c2ln",
                ),
            ],
            // The Secret's `project`; the service account whose key
            // ([`service_account_key`]) the token endpoint accepts.
            Kind::Stackdriver => &[
                ("project", "canary-sim-4711"),
                (
                    "client_email",
                    "canary-metrics@canary-sim-4711.iam.gserviceaccount.com",
                ),
            ],
            Kind::Splunk => &[("sf_token_key", "sfx-sim-3c9e71d2a4b8")],
        };
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// One request a service received, and how it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub kind: Kind,
    pub method: String,
    /// The path below the service's prefix.
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
    /// Why it was refused, for a status of 400 or more.
    pub refused: Option<String>,
}

#[derive(Default)]
struct Tables {
    credentials: BTreeMap<Kind, BTreeMap<String, String>>,
    queries: BTreeMap<(Kind, String), String>,
    requests: Vec<ProviderRequest>,
    /// The external metrics API's table: (namespace, metric, selector key)
    /// to PromQL ([`externalmetrics`]).
    external: BTreeMap<(String, String, String), String>,
}

/// The simulated metric services.
pub struct MetricProviders {
    series: Arc<SeriesStore>,
    tables: Mutex<Tables>,
}

/// What a service's handler is given.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    /// Below the service's prefix, e.g. `/api/v1/query`.
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub credentials: BTreeMap<String, String>,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn credential(&self, key: &str) -> &str {
        self.credentials.get(key).map(String::as_str).unwrap_or("")
    }
}

/// A service's answer: status, content type, body; a refusal says why.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    pub refused: Option<String>,
}

impl Answer {
    pub fn json(body: serde_json::Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            content_type: "application/json",
            body: body.to_string(),
            refused: None,
        }
    }

    pub fn refuse(
        status: StatusCode,
        why: impl Into<String>,
        content_type: &'static str,
        body: impl Into<String>,
    ) -> Answer {
        Answer {
            status,
            content_type,
            body: body.into(),
            refused: Some(why.into()),
        }
    }
}

impl MetricProviders {
    pub fn new(series: Arc<SeriesStore>) -> Arc<MetricProviders> {
        let tables = Tables {
            credentials: Kind::ALL
                .into_iter()
                .map(|k| (k, k.default_credentials()))
                .collect(),
            ..Tables::default()
        };
        Arc::new(MetricProviders {
            series,
            tables: Mutex::new(tables),
        })
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP face of every service.
    pub fn router(self: &Arc<Self>) -> Router {
        let signalflow = format!("/{}{}", Kind::Splunk.name(), splunk::CONNECT_PATH);
        Router::new()
            .route(&signalflow, axum::routing::get(splunk::upgrade))
            .fallback(handle)
            .with_state(self.clone())
    }

    /// The credentials `kind` accepts, by the keys of the Secret a
    /// MetricTemplate reads them from.
    pub fn credentials(&self, kind: Kind) -> BTreeMap<String, String> {
        self.tables()
            .credentials
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    }

    /// Makes `kind` accept `credentials` instead.
    pub fn set_credentials(&self, kind: Kind, credentials: BTreeMap<String, String>) {
        self.tables().credentials.insert(kind, credentials);
    }

    /// Makes `kind` answer `query` (its own query text) with the values of
    /// the PromQL expression `promql` (see the module docs for `$window`).
    pub fn map_query(&self, kind: Kind, query: &str, promql: &str) {
        self.tables()
            .queries
            .insert((kind, table_key(kind, query)), promql.to_string());
    }

    /// Makes the external metrics API answer `metric` in `namespace`,
    /// asked with `selector` (a `labelSelector`, `""` for none), with the
    /// series of the PromQL expression `promql` (see [`externalmetrics`]).
    pub fn map_external_metric(&self, namespace: &str, metric: &str, selector: &str, promql: &str) {
        self.tables().external.insert(
            (
                namespace.to_string(),
                metric.to_string(),
                externalmetrics::selector_key(selector),
            ),
            promql.to_string(),
        );
    }

    fn external_promql(&self, namespace: &str, metric: &str, selector: &str) -> Option<String> {
        self.tables()
            .external
            .get(&(
                namespace.to_string(),
                metric.to_string(),
                selector.to_string(),
            ))
            .cloned()
    }

    /// Every request the services received, oldest first.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.tables().requests.clone()
    }

    /// The PromQL mapped to `query` of `kind`, with `$window` replaced.
    pub(crate) fn promql(&self, kind: Kind, query: &str, window_ms: i64) -> Option<String> {
        let q = self
            .tables()
            .queries
            .get(&(kind, table_key(kind, query)))?
            .clone();
        Some(q.replace("$window", &format!("{}ms", window_ms.max(1))))
    }

    /// The value of `promql` at `at_ms`: a scalar or a one-element
    /// vector, not NaN.
    pub(crate) fn value_at(&self, promql: &str, at_ms: i64) -> Option<f64> {
        instant_query(&self.series, promql, at_ms)
            .ok()?
            .single()
            .filter(|v| !v.is_nan())
    }

    /// The values of `promql` over the last `window_ms`, every second,
    /// per series: what a service answering from a window that long would
    /// see (for tests waiting for old traffic to leave it).
    pub fn recent_values(&self, promql: &str, window_ms: i64) -> Vec<Vec<(i64, f64)>> {
        let now = self.now_ms();
        self.values_over(promql, now - window_ms, now, 1000)
    }

    /// The values of `promql` from `start_ms` to `end_ms` every `step_ms`,
    /// per series, oldest first, NaN left out.
    pub(crate) fn values_over(
        &self,
        promql: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Vec<Vec<(i64, f64)>> {
        let Ok(Value::Matrix(m)) = range_query(
            &self.series,
            promql,
            start_ms,
            end_ms.max(start_ms),
            step_ms.max(1),
            &EvalOptions::default(),
        ) else {
            return Vec::new();
        };
        m.into_iter()
            .map(|s| {
                s.samples
                    .into_iter()
                    .filter(|p| !p.v.is_nan())
                    .map(|p| (p.t, p.v))
                    .collect::<Vec<_>>()
            })
            .filter(|points| !points.is_empty())
            .collect()
    }

    /// The simulated cluster's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.series.now()
    }
}

/// The query table's key of `text`: CloudWatch's JSON compacted, any
/// other text [`collapse`]d.
fn table_key(kind: Kind, text: &str) -> String {
    match kind {
        Kind::Cloudwatch => cloudwatch::key(text),
        _ => collapse(text),
    }
}

/// `text` with whitespace runs as one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn handle(
    State(p): State<Arc<MetricProviders>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let full = uri.path();
    let (kind, path) = match Kind::ALL.into_iter().find_map(|k| {
        let prefix = format!("/{}", k.name());
        let rest = full.strip_prefix(&prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| (k, rest.to_string()))
    }) {
        Some(found) => found,
        None => {
            return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
        }
    };
    let raw = uri.query().unwrap_or("").to_string();
    let call = Call {
        method: &method,
        path: &path,
        query: form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: &headers,
        body: &body,
        credentials: p.credentials(kind),
    };
    let p2 = p.clone();
    let answer = match kind {
        Kind::Datadog => datadog::answer(&p2, &call),
        Kind::Newrelic => newrelic::answer(&p2, &call),
        Kind::Graphite => graphite::answer(&p2, &call),
        Kind::Dynatrace => dynatrace::answer(&p2, &call),
        Kind::Influxdb => influxdb::answer(&p2, &call),
        Kind::Cloudwatch => cloudwatch::answer(&p2, &call),
        Kind::Stackdriver => stackdriver::answer(&p2, &call),
        Kind::Splunk => splunk::answer(&p2, &call),
    };
    p.tables().requests.push(ProviderRequest {
        kind,
        method: method.to_string(),
        path,
        query: raw,
        status: answer.status.as_u16(),
        refused: answer.refused.clone(),
    });
    (
        answer.status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
