//! Dynatrace, as Flagger's `dynatrace.go` queries it: `GET
//! <address>/api/v2/metrics/query?from=&metricSelector=&resolution=Inf&to=`
//! with `to` now and `from` ten metric intervals before it, in Unix
//! milliseconds, and `Authorization: Api-Token <dynatrace_token>`. The
//! address is required. The value is the first value of the last data
//! entry of the first result.

use serde_json::Value;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, encode, several, undecodable};

/// The window is this many metric intervals.
const FROM_DELTA_INTERVALS: i64 = 10;

pub(crate) fn request(src: &Source, query: &str) -> Result<Outgoing, MetricError> {
    let address = src
        .address()
        .ok_or_else(|| MetricError::Query("dynatrace endpoint is not set".into()))?;
    let token = src.key("dynatrace", "dynatrace_token")?;
    let from_delta = FROM_DELTA_INTERVALS * src.interval.as_millis() as i64;
    let now = src.now_ms.div_euclid(1000) * 1000;
    let (from, to) = ((now - from_delta).to_string(), now.to_string());
    let url = format!(
        "{address}/api/v2/metrics/query?{}",
        encode(&[
            ("metricSelector", query),
            ("resolution", "Inf"),
            ("from", &from),
            ("to", &to)
        ])
    );
    Ok(Outgoing::get(url).header("authorization", format!("Api-Token {token}"), true))
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let data = v["result"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["data"].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    match data {
        [] => Err(MetricError::NoValues),
        [one] => one["values"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(Value::as_f64)
            .ok_or(MetricError::NoValues),
        many => Err(several(many.len(), "series")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use canary_core::spec::types::MetricTemplateProvider;

    use super::*;

    #[test]
    fn the_request_is_flaggers() {
        let p = MetricTemplateProvider {
            address: Some("https://abc123.live.dynatrace.com".into()),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> =
            [("dynatrace_token".to_string(), b"dt0c01.X".to_vec())].into();
        let src = Source {
            provider: &p,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 1_700_000_000_900,
        };
        let r = request(&src, "builtin:service.response.time:avg").unwrap();
        assert_eq!(
            r.url,
            "https://abc123.live.dynatrace.com/api/v2/metrics/query?from=1699999400000&metricSelector=builtin%3Aservice.response.time%3Aavg&resolution=Inf&to=1700000000000"
        );
        assert_eq!(
            r.headers,
            [("authorization", "Api-Token dt0c01.X".to_string(), true)]
        );
        let none = MetricTemplateProvider::default();
        let e = request(
            &Source {
                provider: &none,
                ..src
            },
            "x",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "dynatrace endpoint is not set");
    }

    #[test]
    fn the_first_value_of_the_series_is_the_value() {
        // The shape of Flagger's test fixture.
        let body = r#"{"totalCount": 1, "nextPageKey": null, "resolution": "Inf", "result": [{"metricId": "builtin:service.response.time:avg", "dataPointCountRatio": 0.0001, "dimensionCountRatio": 0.0001, "data": [{"dimensions": [], "dimensionMap": {}, "timestamps": [1689240000000], "values": [1.11111]}]}]}"#;
        assert_eq!(parse(body).unwrap(), 1.11111);
        for body in [
            r#"{"result": []}"#,
            r#"{"result": [{"data": []}]}"#,
            r#"{"result": [{"data": [{"values": []}]}]}"#,
            r#"{"result": [{"data": [{"values": [null]}]}]}"#,
        ] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
        let two = r#"{"result": [{"data": [{"values": [1]}, {"values": [2]}]}]}"#;
        assert!(parse(two).unwrap_err().to_string().contains("2 series"));
    }
}
