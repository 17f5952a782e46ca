//! InfluxDB 2's Flux query API: `POST /api/v2/query?org=ORG` with
//! `Authorization: Token TOKEN` and a JSON body
//! `{"query": FLUX, "type": "flux", "dialect": {...}}`, answered in
//! annotated CSV (`#datatype`, `#group` and `#default` rows, a header,
//! then the records; CRLF line ends): one record whose `_value` is the
//! query's value at the time of the request, none (an empty answer) when
//! there is no value. The window is the Flux `range(start: -N...)`.
//! Refusals are InfluxDB's `{"code", "message"}`: 401 without the token,
//! 404 for another organisation, 400 for a body it cannot read.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Answer, Call, Kind, MetricProviders};

/// InfluxDB's window when a query names none (the sim's choice).
const DEFAULT_WINDOW_MS: i64 = 3_600_000;

fn error(status: StatusCode, why: &str, code: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        why,
        "application/json; charset=utf-8",
        json!({ "code": code, "message": message }).to_string(),
    )
}

/// The window of `range(start: -10s)` in `flux`, in milliseconds.
fn range_start_ms(flux: &str) -> Option<i64> {
    let at = flux.find("start:")?;
    let rest = flux[at + "start:".len()..].trim_start().strip_prefix('-')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = rest[..digits].parse().ok()?;
    let unit_end = rest[digits..]
        .find(|c: char| !c.is_ascii_alphabetic())
        .map(|i| digits + i)
        .unwrap_or(rest.len());
    let scale = match &rest[digits..unit_end] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * scale)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default()
}

/// Annotated CSV of one `double` record, as InfluxDB writes it.
fn annotated_csv(start: i64, stop: i64, value: f64) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let rows: [Vec<String>; 5] = [
        [
            "#datatype",
            "string",
            "long",
            "dateTime:RFC3339",
            "dateTime:RFC3339",
            "dateTime:RFC3339",
            "double",
            "string",
            "string",
        ]
        .map(String::from)
        .to_vec(),
        [
            "#group", "false", "false", "true", "true", "false", "false", "true", "true",
        ]
        .map(String::from)
        .to_vec(),
        ["#default", "_result", "", "", "", "", "", "", ""]
            .map(String::from)
            .to_vec(),
        [
            "",
            "result",
            "table",
            "_start",
            "_stop",
            "_time",
            "_value",
            "_field",
            "_measurement",
        ]
        .map(String::from)
        .to_vec(),
        vec![
            String::new(),
            String::new(),
            "0".into(),
            rfc3339(start),
            rfc3339(stop),
            rfc3339(stop),
            value.to_string(),
            "value".into(),
            "canary".into(),
        ],
    ];
    for r in rows {
        let _ = w.write_record(&r);
    }
    let mut out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    out.push_str("\r\n");
    out
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.path != "/api/v2/query" {
        return error(
            StatusCode::NOT_FOUND,
            "unknown path",
            "not found",
            "path not found",
        );
    }
    if c.method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "not a POST",
            "method not allowed",
            "method not allowed",
        );
    }
    if c.header("authorization")
        .and_then(|a| a.strip_prefix("Token "))
        != Some(c.credential("token"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing token",
            "unauthorized",
            "unauthorized access",
        );
    }
    let org = c.param("org").unwrap_or("");
    if org != c.credential("org") {
        return error(
            StatusCode::NOT_FOUND,
            "another organisation",
            "not found",
            &format!("organization name \"{org}\" not found"),
        );
    }
    if !c
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "not a JSON body",
            "invalid",
            "failed to decode request body: the content type must be application/json",
        );
    }
    let body: serde_json::Value = match serde_json::from_slice(c.body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "body is not JSON",
                "invalid",
                &format!("failed to decode request body: {e}"),
            );
        }
    };
    let Some(flux) = body["query"].as_str().filter(|q| !q.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "no query",
            "invalid",
            "failed to decode request body: request body requires either spec or query",
        );
    };
    if !matches!(body["type"].as_str(), None | Some("flux")) {
        return error(
            StatusCode::BAD_REQUEST,
            "not a Flux query",
            "invalid",
            &format!("unknown query type: {}", body["type"]),
        );
    }
    let window = range_start_ms(flux).unwrap_or(DEFAULT_WINDOW_MS);
    let now = p.now_ms();
    let value = p
        .promql(Kind::Influxdb, flux, window)
        .and_then(|promql| p.value_at(&promql, now));
    let body = match value {
        Some(v) => annotated_csv(now - window, now, v),
        None => "\r\n".to_string(),
    };
    Answer {
        status: StatusCode::OK,
        content_type: "text/csv; charset=utf-8",
        body,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_range_start_is_the_window() {
        let q = "from(bucket: \"m\")\n  |> range(start: -30s)\n  |> mean()";
        assert_eq!(super::range_start_ms(q), Some(30_000));
        assert_eq!(
            super::range_start_ms("from(bucket: \"m\") |> range(start: -5m)"),
            Some(300_000)
        );
        assert_eq!(super::range_start_ms("from(bucket: \"m\")"), None);
    }

    #[test]
    fn the_csv_has_influxdbs_annotations() {
        let csv = super::annotated_csv(0, 1000, 99.5);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string"
        );
        assert_eq!(
            lines[3],
            ",result,table,_start,_stop,_time,_value,_field,_measurement"
        );
        assert!(
            lines[4].starts_with(",,0,1970-01-01T00:00:00"),
            "{}",
            lines[4]
        );
        assert!(lines[4].contains(",99.5,value,canary"), "{}", lines[4]);
    }
}
