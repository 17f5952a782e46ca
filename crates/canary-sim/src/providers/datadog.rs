//! Datadog's metrics API v1: `GET /api/v1/query?query=&from=&to=` (times
//! in Unix seconds) with the `DD-API-KEY` and `DD-APPLICATION-KEY`
//! headers, answering a `series` list whose `pointlist` holds
//! `[milliseconds, value]` pairs, oldest first, only where the metric has
//! data; and `GET /api/v1/validate`, which checks the API key alone.
//! Refusals are Datadog's: 403 `{"errors": ["Forbidden"]}` for a missing
//! or wrong key, 400 for a bad parameter.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Answer, Call, Kind, MetricProviders};

/// Points per answer, about as many as Datadog returns by default.
const POINTS: i64 = 150;

fn errors(status: StatusCode, why: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        why,
        "application/json",
        json!({ "errors": [message] }).to_string(),
    )
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.method != Method::GET {
        return errors(
            StatusCode::METHOD_NOT_ALLOWED,
            "not a GET",
            "Method Not Allowed",
        );
    }
    let api_key = c.header("dd-api-key");
    if api_key != Some(c.credential("datadog_api_key")) {
        return errors(
            StatusCode::FORBIDDEN,
            "wrong or missing DD-API-KEY",
            "Forbidden",
        );
    }
    match c.path {
        "/api/v1/validate" => return Answer::json(json!({ "valid": true })),
        "/api/v1/query" => {}
        _ => return errors(StatusCode::NOT_FOUND, "unknown path", "Not found"),
    }
    if c.header("dd-application-key") != Some(c.credential("datadog_application_key")) {
        return errors(
            StatusCode::FORBIDDEN,
            "wrong or missing DD-APPLICATION-KEY",
            "Forbidden",
        );
    }
    let seconds = |name: &str| c.param(name).and_then(|v| v.parse::<i64>().ok());
    let (Some(query), Some(from), Some(to)) = (
        c.param("query").filter(|q| !q.trim().is_empty()),
        seconds("from"),
        seconds("to"),
    ) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "query, from and to are required (times in seconds)",
            "Error parsing query: the parameters query, from and to are required",
        );
    };
    if from >= to {
        return errors(
            StatusCode::BAD_REQUEST,
            "from is not before to",
            "Error parsing query: 'from' must be before 'to'",
        );
    }
    let (from_ms, to_ms) = (from * 1000, to * 1000);
    let step = ((to_ms - from_ms) / POINTS).max(1000);
    let series: Vec<serde_json::Value> = p
        .promql(Kind::Datadog, query, step)
        .map(|promql| p.values_over(&promql, from_ms, to_ms, step))
        .unwrap_or_default()
        .into_iter()
        .map(|points| {
            let pointlist: Vec<serde_json::Value> =
                points.iter().map(|(t, v)| json!([*t as f64, v])).collect();
            json!({
                "metric": query,
                "display_name": query,
                "expression": query,
                "scope": "*",
                "tag_set": [],
                "unit": null,
                "aggr": null,
                "interval": step / 1000,
                "length": pointlist.len(),
                "start": points.first().map(|p| p.0),
                "end": points.last().map(|p| p.0),
                "pointlist": pointlist,
            })
        })
        .collect();
    Answer::json(json!({
        "status": "ok",
        "res_type": "time_series",
        "resp_version": 1,
        "query": query,
        "from_date": from_ms,
        "to_date": to_ms,
        "series": series,
        "message": "",
        "group_by": [],
    }))
}
