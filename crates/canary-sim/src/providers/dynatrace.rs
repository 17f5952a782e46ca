//! Dynatrace's metrics API v2: `GET /api/v2/metrics/query` with
//! `metricSelector`, `resolution`, `from` and `to` (Unix milliseconds) and
//! `Authorization: Api-Token TOKEN`; and `GET /api/v2/metrics` (the list
//! of metrics, for a token check). With `resolution=Inf` each series is
//! one value over the whole window, at `to`; otherwise one value per
//! `resolution` (`30s`, `1m`, ...). The answer is
//! `{"result": [{"metricId": SELECTOR, "data": [{"timestamps": [...],
//! "values": [...]}]}]}`, with no `data` for a selector without values.
//! Refusals are Dynatrace's `{"error": {"code", "message"}}`: 401 without
//! the token, 400 for a missing selector or a time it cannot read.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Answer, Call, Kind, MetricProviders};

fn error(status: StatusCode, why: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        why,
        "application/json",
        json!({ "error": { "code": status.as_u16(), "message": message } }).to_string(),
    )
}

fn resolution_ms(text: &str) -> Option<i64> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(digits);
    let n: i64 = n.parse().ok()?;
    let scale = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    (n > 0).then_some(n * scale)
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "not a GET",
            "Method not allowed",
        );
    }
    let Some(auth) = c.header("authorization") else {
        return error(
            StatusCode::UNAUTHORIZED,
            "no Authorization header",
            "Missing authorization parameter.",
        );
    };
    if auth.strip_prefix("Api-Token ") != Some(c.credential("dynatrace_token")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong token or not an Api-Token",
            "Token Authentication failed",
        );
    }
    match c.path {
        "/api/v2/metrics" => {
            return Answer::json(json!({
                "totalCount": 1,
                "nextPageKey": null,
                "metrics": [{ "metricId": "builtin:service.response.time" }],
            }));
        }
        "/api/v2/metrics/query" => {}
        _ => return error(StatusCode::NOT_FOUND, "unknown path", "Not found"),
    }
    let Some(selector) = c.param("metricSelector").filter(|s| !s.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "no metricSelector",
            "Constraints violated: metricSelector must not be empty",
        );
    };
    let now = p.now_ms();
    let time = |name: &str, default: i64| match c.param(name) {
        None => Ok(default),
        Some(t) => t.parse::<i64>().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "a time is not in milliseconds",
                &format!("The parameter '{name}' has an invalid timestamp: {t}"),
            )
        }),
    };
    let (from, to) = match (time("from", now - 7_200_000), time("to", now)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if from >= to {
        return error(
            StatusCode::BAD_REQUEST,
            "from is not before to",
            "The start of the timeframe must be before its end",
        );
    }
    let resolution = c.param("resolution").unwrap_or("1m");
    let data: Vec<serde_json::Value> = if resolution == "Inf" {
        p.promql(Kind::Dynatrace, selector, to - from)
            .and_then(|promql| p.value_at(&promql, to))
            .map(|v| {
                vec![json!({
                    "dimensions": [],
                    "dimensionMap": {},
                    "timestamps": [to],
                    "values": [v],
                })]
            })
            .unwrap_or_default()
    } else {
        let Some(step) = resolution_ms(resolution) else {
            return error(
                StatusCode::BAD_REQUEST,
                "resolution not understood",
                &format!("Invalid resolution: {resolution}"),
            );
        };
        p.promql(Kind::Dynatrace, selector, step)
            .map(|promql| p.values_over(&promql, from + step, to, step))
            .unwrap_or_default()
            .into_iter()
            .map(|points| {
                json!({
                    "dimensions": [],
                    "dimensionMap": {},
                    "timestamps": points.iter().map(|p| p.0).collect::<Vec<_>>(),
                    "values": points.iter().map(|p| p.1).collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    Answer::json(json!({
        "totalCount": 1,
        "nextPageKey": null,
        "resolution": resolution,
        "result": [{
            "metricId": selector,
            "dataPointCountRatio": 0.0001,
            "dimensionCountRatio": 0.0001,
            "data": data,
        }],
    }))
}
