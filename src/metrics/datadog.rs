//! Datadog, as Flagger's `datadog.go` queries it: `GET
//! <address>/api/v1/query?from=&query=&to=` (address default
//! `https://api.datadoghq.com`), `to` now and `from` ten metric intervals
//! before it, in Unix seconds; the `datadog_api_key` and
//! `datadog_application_key` of the Secret in the `DD-API-KEY` and
//! `DD-APPLICATION-KEY` headers. The value is the **first** (oldest) point
//! of the series: the newest bucket is usually incomplete.

use serde_json::Value;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, encode, several, undecodable};

pub(crate) const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";
/// The window is this many metric intervals.
const FROM_DELTA_INTERVALS: f64 = 10.0;

pub(crate) fn request(src: &Source, query: &str) -> Result<Outgoing, MetricError> {
    let address = src.address().unwrap_or(DEFAULT_ADDRESS);
    let api_key = src.key("datadog", "datadog_api_key")?;
    let app_key = src.key("datadog", "datadog_application_key")?;
    let from_delta = (FROM_DELTA_INTERVALS * src.interval.as_secs_f64()) as i64;
    let now = src.now_ms.div_euclid(1000);
    let (from, to) = ((now - from_delta).to_string(), now.to_string());
    let url = format!(
        "{address}/api/v1/query?{}",
        encode(&[("query", query), ("from", &from), ("to", &to)])
    );
    Ok(Outgoing::get(url)
        .header("dd-api-key", api_key, true)
        .header("dd-application-key", app_key, true))
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let series = v["series"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    match series.len() {
        0 => return Err(MetricError::NoValues),
        1 => {}
        n => return Err(several(n, "series")),
    }
    series[0]["pointlist"]
        .as_array()
        .and_then(|points| points.first())
        .and_then(|point| point.get(1))
        .and_then(Value::as_f64)
        .ok_or(MetricError::NoValues)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use canary_core::spec::types::MetricTemplateProvider;

    use super::*;

    fn creds() -> BTreeMap<String, Vec<u8>> {
        [
            ("datadog_api_key", "api"),
            ("datadog_application_key", "app"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    #[test]
    fn the_request_is_flaggers() {
        let provider = MetricTemplateProvider::default();
        let c = creds();
        let src = Source {
            provider: &provider,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 1_700_000_000_900,
        };
        let r = request(&src, "avg:error.rate{service:podinfo}").unwrap();
        assert_eq!(
            r.url,
            "https://api.datadoghq.com/api/v1/query?from=1699999400&query=avg%3Aerror.rate%7Bservice%3Apodinfo%7D&to=1700000000"
        );
        assert_eq!(
            r.headers,
            [
                ("dd-api-key", "api".to_string(), true),
                ("dd-application-key", "app".to_string(), true)
            ]
        );
        let mut c = creds();
        c.remove("datadog_application_key");
        let src = Source {
            credentials: Some(&c),
            ..src
        };
        assert_eq!(
            request(&src, "q").unwrap_err().to_string(),
            "datadog credentials does not contain datadog_application_key"
        );
    }

    #[test]
    fn the_first_point_is_the_value() {
        // The shape of Flagger's test fixture.
        let body = r#"{"series": [{"pointlist": [[1577232000000,29325.102158814265],[1577318400000,56294.46758591842],[1577404800000,102154.50098558188]]}]}"#;
        assert_eq!(parse(body).unwrap(), 29325.102158814265);
    }

    #[test]
    fn no_series_no_points_and_null_are_no_values() {
        for body in [
            r#"{"series": []}"#,
            r#"{"series": [{"pointlist": []}]}"#,
            r#"{"series": [{"pointlist": [[1577232000000, null]]}]}"#,
        ] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
    }

    #[test]
    fn several_series_and_garbage_are_errors() {
        let body = r#"{"series": [{"pointlist": [[1, 1]]}, {"pointlist": [[1, 2]]}]}"#;
        assert!(parse(body).unwrap_err().to_string().contains("2 series"));
        assert!(
            parse("<html>")
                .unwrap_err()
                .to_string()
                .starts_with("error unmarshaling result")
        );
    }
}
