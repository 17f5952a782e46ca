//! New Relic, as Flagger's `newrelic.go` queries it: `GET
//! <address>/v1/accounts/<newrelic_account_id>/query?nrql=<query> SINCE
//! <interval in seconds> seconds ago` (address default
//! `https://insights-api.newrelic.com`) with the Secret's
//! `newrelic_query_key` in `X-Query-Key`. The answer must hold exactly one
//! result, whose `result` is the value.

use serde_json::Value;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, encode, undecodable};

pub(crate) const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";

pub(crate) fn request(src: &Source, query: &str) -> Result<Outgoing, MetricError> {
    let address = src.address().unwrap_or(DEFAULT_ADDRESS);
    let account = src.key("newrelic", "newrelic_account_id")?;
    let key = src.key("newrelic", "newrelic_query_key")?;
    let since = src.interval.as_secs();
    let nrql = format!("{query} SINCE {since} seconds ago");
    let url = format!(
        "{address}/v1/accounts/{account}/query?{}",
        encode(&[("nrql", &nrql)])
    );
    Ok(Outgoing::get(url).header("x-query-key", key, true))
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    match v["results"].as_array().map(Vec::as_slice) {
        Some([one]) => one["result"].as_f64().ok_or(MetricError::NoValues),
        _ => Err(MetricError::NoValues),
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
        let provider = MetricTemplateProvider {
            address: Some("http://nr.example".into()),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> = [
            ("newrelic_query_key", "query-key"),
            ("newrelic_account_id", "51312"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        let src = Source {
            provider: &provider,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        let q =
            "SELECT sum(nginx_ingress_controller_requests) / 1 FROM Metric WHERE status = '200'";
        let r = request(&src, q).unwrap();
        assert_eq!(
            r.url,
            "http://nr.example/v1/accounts/51312/query?nrql=SELECT+sum%28nginx_ingress_controller_requests%29+%2F+1+FROM+Metric+WHERE+status+%3D+%27200%27+SINCE+60+seconds+ago"
        );
        assert_eq!(r.headers, [("x-query-key", "query-key".to_string(), true)]);
        let none = Source {
            credentials: None,
            ..src
        };
        assert_eq!(
            request(&none, q).unwrap_err().to_string(),
            "newrelic credentials does not contain newrelic_account_id"
        );
    }

    #[test]
    fn one_result_is_the_value_anything_else_no_values() {
        assert_eq!(
            parse(r#"{"results":[{"result": 1.111110}]}"#).unwrap(),
            1.11111
        );
        for body in [
            r#"{"results": []}"#,
            r#"{"results":[{"result": null}]}"#,
            r#"{"results":[{"result": 1}, {"result": 2}]}"#,
        ] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
    }
}
