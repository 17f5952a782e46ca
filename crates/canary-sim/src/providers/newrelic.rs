//! New Relic's Insights query API: `GET /v1/accounts/ID/query?nrql=...`
//! with the account's query key in `X-Query-Key`. The NRQL must be a
//! `SELECT`; a trailing `SINCE N seconds ago` sets the window (New Relic's
//! default is the last hour). The value is evaluated at the time of the
//! request and answered as `{"results": [{"result": VALUE}]}`, `null` when
//! there is no data. Refusals are New Relic's: 401 for a missing or wrong
//! key or an account the key does not belong to, 400 for NRQL it cannot
//! read.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Answer, Call, Kind, MetricProviders};

fn error(status: StatusCode, why: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        why,
        "application/json",
        json!({ "error": message }).to_string(),
    )
}

/// `nrql` without its trailing `SINCE N seconds ago`, and the window.
fn split_since(nrql: &str) -> (&str, Option<i64>) {
    let words: Vec<&str> = nrql.split_whitespace().collect();
    let n = words.len();
    if n >= 4
        && words[n - 4].eq_ignore_ascii_case("since")
        && matches!(
            words[n - 2].to_ascii_lowercase().as_str(),
            "seconds" | "second"
        )
        && words[n - 1].eq_ignore_ascii_case("ago")
        && let Ok(secs) = words[n - 3].parse::<i64>()
        && let Some(at) = find_last_since(nrql)
    {
        return (nrql[..at].trim_end(), Some(secs * 1000));
    }
    (nrql, None)
}

fn find_last_since(nrql: &str) -> Option<usize> {
    nrql.to_ascii_lowercase().rfind("since")
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "not a GET",
            "Method not allowed",
        );
    }
    let account = c
        .path
        .strip_prefix("/v1/accounts/")
        .and_then(|rest| rest.strip_suffix("/query"));
    let Some(account) = account else {
        return error(StatusCode::NOT_FOUND, "unknown path", "Not found");
    };
    if c.header("x-query-key") != Some(c.credential("newrelic_query_key"))
        || account != c.credential("newrelic_account_id")
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing X-Query-Key, or another account",
            "Invalid query key",
        );
    }
    let Some(nrql) = c.param("nrql").filter(|q| !q.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "no nrql", "Missing NRQL query");
    };
    if !nrql
        .trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "not a SELECT",
            &format!("NRQL Syntax Error: Error at line 1 position 1, unexpected '{nrql}'"),
        );
    }
    let (query, window) = split_since(nrql);
    let window = window.unwrap_or(3_600_000);
    let value = p
        .promql(Kind::Newrelic, query, window)
        .and_then(|promql| p.value_at(&promql, p.now_ms()));
    let now = p.now_ms();
    Answer::json(json!({
        "results": [{ "result": value }],
        "metadata": {
            "eventTypes": ["Metric"],
            "eventType": "Metric",
            "openEnded": true,
            "beginTimeMillis": now - window,
            "endTimeMillis": now,
            "beginTime": chrono::DateTime::from_timestamp_millis(now - window)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "endTime": chrono::DateTime::from_timestamp_millis(now)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "rawSince": format!("{} SECONDS AGO", window / 1000),
            "rawUntil": "NOW",
        },
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_is_split_off() {
        assert_eq!(
            super::split_since("SELECT x FROM Metric SINCE 60 seconds ago"),
            ("SELECT x FROM Metric", Some(60_000))
        );
        assert_eq!(
            super::split_since("SELECT x FROM Metric"),
            ("SELECT x FROM Metric", None)
        );
    }
}
