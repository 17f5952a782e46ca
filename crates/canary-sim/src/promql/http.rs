//! Prometheus' HTTP query API (`/api/v1/query`, `/api/v1/query_range`,
//! `/-/ready`, `/-/healthy`) over the evaluator, with the exact JSON
//! Prometheus writes, and a switch that makes it fail like a Prometheus
//! that is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{EvalOptions, QueryError, Value, eval_instant, eval_range, parse};
use crate::series::{Labels, SeriesStore};

/// Prometheus' limit on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

/// The simulated Prometheus: a store and an outage switch, evaluating with
/// the default [`EvalOptions`]. Cheap to clone; clones share the switch.
#[derive(Clone, Debug)]
pub struct PrometheusApi {
    store: Arc<SeriesStore>,
    outage: Arc<AtomicBool>,
}

impl PrometheusApi {
    pub fn new(store: Arc<SeriesStore>) -> Self {
        Self::with_outage(store, Arc::new(AtomicBool::new(false)))
    }

    /// Uses `outage` as the switch: while it is `true` every endpoint
    /// answers 503.
    pub fn with_outage(store: Arc<SeriesStore>, outage: Arc<AtomicBool>) -> Self {
        Self { store, outage }
    }

    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::SeqCst);
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/query", get(query).post(query))
            .route("/api/v1/query_range", get(query_range).post(query_range))
            .route("/-/ready", get(ready))
            .route("/-/healthy", get(healthy))
            .with_state(self.clone())
    }

    fn down(&self) -> Option<Response> {
        self.outage.load(Ordering::SeqCst).then(|| {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("unavailable", "simulated Prometheus outage"),
            )
        })
    }
}

type Params = Vec<(String, String)>;

/// Go's `r.FormValue`: the form body first, then the URL query.
fn param<'a>(
    url: &'a Params,
    form: &'a Result<Form<Params>, FormRejection>,
    name: &str,
) -> Option<&'a str> {
    let body = form.as_ref().ok().map(|f| &f.0);
    body.into_iter()
        .chain(std::iter::once(url))
        .flat_map(|p| p.iter())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn query(
    State(api): State<PrometheusApi>,
    Query(url): Query<Params>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    if let Some(down) = api.down() {
        return down;
    }
    let time = match param(&url, &form, "time") {
        None | Some("") => api.store.now(),
        Some(s) => match parse_time(s) {
            Ok(t) => t,
            Err(e) => return error_response(&QueryError::BadData(invalid_param("time", &e))),
        },
    };
    let expr = match parse(param(&url, &form, "query").unwrap_or("")) {
        Ok(expr) => expr,
        Err(e) => {
            return error_response(&QueryError::BadData(invalid_param("query", &e.to_string())));
        }
    };
    let store = api.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        eval_instant(&store, &expr, time, &EvalOptions::default())
    })
    .await;
    respond(result, time)
}

async fn query_range(
    State(api): State<PrometheusApi>,
    Query(url): Query<Params>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    if let Some(down) = api.down() {
        return down;
    }
    let p = |name| param(&url, &form, name).unwrap_or("");
    let bad = |e: String| error_response(&QueryError::BadData(e));
    let start = match parse_time(p("start")) {
        Ok(t) => t,
        Err(e) => return bad(invalid_param("start", &e)),
    };
    let end = match parse_time(p("end")) {
        Ok(t) => t,
        Err(e) => return bad(invalid_param("end", &e)),
    };
    if end < start {
        return bad(invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = match parse_duration(p("step")) {
        Ok(d) => d,
        Err(e) => return bad(invalid_param("step", &e)),
    };
    if step <= 0 {
        return bad(invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        );
    }
    let expr = match parse(p("query")) {
        Ok(expr) => expr,
        Err(e) => return bad(invalid_param("query", &e.to_string())),
    };
    let store = api.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        eval_range(&store, &expr, start, end, step, &EvalOptions::default())
    })
    .await;
    respond(result, end)
}

fn respond(
    result: Result<Result<Value, QueryError>, tokio::task::JoinError>,
    time: i64,
) -> Response {
    match result {
        Ok(Ok(value)) => success(&value, time),
        Ok(Err(e)) => error_response(&e),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body("internal", &e.to_string()),
        ),
    }
}

async fn ready(State(api): State<PrometheusApi>) -> Response {
    match api.down() {
        Some(down) => down,
        None => (StatusCode::OK, "Prometheus Server is Ready.\n").into_response(),
    }
}

async fn healthy(State(api): State<PrometheusApi>) -> Response {
    match api.down() {
        Some(down) => down,
        None => (StatusCode::OK, "Prometheus Server is Healthy.\n").into_response(),
    }
}

fn invalid_param(name: &str, e: &str) -> String {
    format!("invalid parameter \"{name}\": {e}")
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_body(error_type: &str, error: &str) -> String {
    format!(
        "{{\"status\":\"error\",\"errorType\":{},\"error\":{}}}",
        json_string(error_type),
        json_string(error)
    )
}

fn error_response(e: &QueryError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, error_body(e.error_type(), &e.to_string()))
}

fn success(value: &Value, time: i64) -> Response {
    json_response(
        StatusCode::OK,
        format!(
            "{{\"status\":\"success\",\"data\":{}}}",
            data_json(value, time)
        ),
    )
}

/// The `data` object of a successful query response, as Prometheus writes
/// it: `{"resultType":"vector","result":[...]}`.
pub fn data_json(value: &Value, time: i64) -> String {
    let mut out = format!("{{\"resultType\":\"{}\",\"result\":", value.type_name());
    match value {
        Value::Scalar(v) => push_point(&mut out, time, &format_value(*v)),
        Value::String(s) => push_point(&mut out, time, s),
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                push_point(&mut out, time, &format_value(s.value));
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, p.t, &format_value(p.v));
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

fn push_point(out: &mut String, t: i64, value: &str) {
    out.push('[');
    out.push_str(&format_timestamp(t));
    out.push(',');
    out.push_str(&json_string(value));
    out.push(']');
}

fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
}

/// A timestamp as Prometheus' `jsonutil.MarshalTimestamp` writes it:
/// seconds with the milliseconds as written digits (`1700000000.5` is
/// written `1700000000.500`, whole seconds without a fraction).
pub fn format_timestamp(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (secs, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{frac:03}")
    }
}

/// A sample value as Prometheus writes it (`strconv.FormatFloat(v, 'f',
/// -1, 64)`): `NaN`, `+Inf`, `-Inf`, otherwise plain decimal.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A JSON string as Go's encoder writes it (HTML characters escaped).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prometheus' `parseTime`: unix seconds (rounded to the millisecond) or
/// RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(f) = super::functions::parse_go_float(s).filter(|f| f.is_finite()) {
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1000 + frac as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Prometheus' `parseDuration`: seconds as a float, or a duration such
/// as `30s`, `1m30s`, `250ms`. In milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let err = || format!("cannot parse {s:?} to a valid duration");
    if let Some(f) = super::functions::parse_go_float(s) {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() > 9.2e15 {
            return Err(err());
        }
        return Ok(ms.round() as i64);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| v.checked_add(total))
            .ok_or_else(err)?;
    }
    Ok(total)
}
