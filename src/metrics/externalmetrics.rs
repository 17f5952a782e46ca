//! The Kubernetes external metrics API, as Flagger's `externalmetrics.go`
//! reads it. The query is `[<namespace>/]<metricName>[?labelSelector=<url-
//! encoded selector>]` (namespace `default` when left out or empty); the
//! request is `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/
//! <namespace>/<metricName>?labelSelector=...`, answered by whichever
//! aggregated API server (KEDA, prometheus-adapter ...) serves the group,
//! with a 5 s timeout.
//!
//! Without an `address` it goes through the cluster connection (its
//! server and credentials), as Flagger uses its in-cluster config. With
//! one, it goes to that address, with the `token` of the `secretRef`
//! Secret as bearer token when it has one.
//!
//! The value is the first item's `value`, a Kubernetes quantity (`1500m`,
//! `2k`, `1Gi` ...). No items is "no values found". Unlike Flagger, which
//! takes the first of several items, several are an error naming how many
//! (a check needs exactly one value: narrow the `labelSelector`).

use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, several, undecodable};

/// Flagger's client timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
const BASE: &str = "/apis/external.metrics.k8s.io/v1beta1";
const FORMAT: &str = "expected <namespace>/<metricName>?labelSelector=<urlencoded label selectors>";

/// What a query names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExternalQuery {
    pub namespace: String,
    pub metric: String,
    /// The raw `labelSelector`, `""` for every series.
    pub selector: String,
}

impl ExternalQuery {
    /// The request's path and query string.
    pub(crate) fn path(&self) -> String {
        let enc = |s: &str| super::prometheus::query_escape(s);
        let mut p = format!(
            "{BASE}/namespaces/{}/{}",
            enc(&self.namespace),
            enc(&self.metric)
        );
        if !self.selector.is_empty() {
            p.push_str("?labelSelector=");
            p.push_str(&enc(&self.selector));
        }
        p
    }
}

fn malformed(why: &str, query: &str) -> MetricError {
    MetricError::Query(format!(
        "error parsing metric query: malformed query string{why}, {FORMAT}, got {query}"
    ))
}

/// Reads a query as Flagger's `parseExternalMetricsQuery` does.
pub(crate) fn parse_query(query: &str) -> Result<ExternalQuery, MetricError> {
    let url = url::Url::parse(&format!("dummy:///{query}")).map_err(|_| malformed("", query))?;
    let path = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (namespace, metric) = match parts.as_slice() {
        [metric] => ("default", *metric),
        [ns, metric] => (if ns.is_empty() { "default" } else { *ns }, *metric),
        _ => return Err(malformed(", too many slashes", query)),
    };
    if metric.is_empty() {
        return Err(MetricError::Query(
            "error parsing metric query: metric name cannot be empty".to_string(),
        ));
    }
    let selector = url
        .query_pairs()
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok(ExternalQuery {
        namespace: namespace.to_string(),
        metric: metric.to_string(),
        selector,
    })
}

/// The request to the template's `address` (when it has one).
pub(crate) fn request(src: &Source, q: &ExternalQuery) -> Option<Outgoing> {
    let address = src.address()?.trim_end_matches('/');
    let mut out = Outgoing::get(format!("{address}{}", q.path()));
    out.timeout = TIMEOUT;
    if let Some(token) = src.credentials.and_then(|c| c.get("token")) {
        out = out.header(
            "authorization",
            format!("Bearer {}", String::from_utf8_lossy(token)),
            true,
        );
    }
    Some(out)
}

/// A Kubernetes quantity as a number: a decimal number, optionally with an
/// exponent (`1e3`), and a suffix: `n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`,
/// `E` (powers of 1000) or `Ki` ... `Ei` (powers of 1024).
pub(crate) fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    // `1E` is an exa, not an exponent without digits.
    let (num, suffix) = match (num.strip_suffix(['e', 'E']), suffix) {
        (Some(n), "") => (n, &s[n.len()..]),
        _ => (num, suffix),
    };
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)) {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * scale)
}

/// The value of an `ExternalMetricValueList`.
pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    match items.len() {
        0 => return Err(MetricError::NoValues),
        1 => {}
        n => return Err(several(n, "items")),
    }
    let text = items[0]["value"].as_str().unwrap_or_default();
    parse_quantity(text).ok_or_else(|| {
        MetricError::Query(format!(
            "error querying external metrics API: the value `{text}` is not a quantity"
        ))
    })
}

/// Runs `query` through the cluster connection.
pub(crate) async fn query(client: &kube::Client, q: &ExternalQuery) -> Result<f64, MetricError> {
    let req = http::Request::builder()
        .method(Method::GET)
        .uri(q.path())
        .body(Vec::new())
        .map_err(|e| MetricError::Query(format!("error querying external metrics API: {e}")))?;
    let body = tokio::time::timeout(TIMEOUT, client.request_text(req))
        .await
        .map_err(|_| {
            MetricError::Query(format!(
                "error querying external metrics API: no answer within {}s",
                TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            let words = match &e {
                kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
                other => other.to_string(),
            };
            MetricError::Query(format!("error querying external metrics API: {words}"))
        })?;
    parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_as_flagger_reads_it() {
        let q = parse_query("default/myMetric?labelSelector=label1%3Dvalue1").unwrap();
        assert_eq!(
            q,
            ExternalQuery {
                namespace: "default".into(),
                metric: "myMetric".into(),
                selector: "label1=value1".into()
            }
        );
        assert_eq!(
            q.path(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/myMetric?labelSelector=label1%3Dvalue1"
        );
        let q = parse_query("default/myMetric").unwrap();
        assert_eq!((q.namespace.as_str(), q.selector.as_str()), ("default", ""));
        let q = parse_query("/metric_only").unwrap();
        assert_eq!(
            (q.namespace.as_str(), q.metric.as_str()),
            ("default", "metric_only")
        );
        let q = parse_query("myMetric").unwrap();
        assert_eq!(
            (q.namespace.as_str(), q.metric.as_str()),
            ("default", "myMetric")
        );
        let q = parse_query("namespace/myMetric").unwrap();
        assert_eq!(q.namespace, "namespace");
        for bad in ["namespaceonly/", "/", ""] {
            assert!(
                parse_query(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("metric name cannot be empty"),
                "{bad}"
            );
        }
        assert!(
            parse_query("a/b/c")
                .unwrap_err()
                .to_string()
                .contains("too many slashes")
        );
    }

    #[test]
    fn quantities_read_as_kubernetes_reads_them() {
        // Flagger's fixture: 11111e-4.
        assert_eq!(parse_quantity("11111e-4"), Some(1.1111));
        assert_eq!(parse_quantity("1111m"), Some(1.111));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert_eq!(parse_quantity("42"), Some(42.0));
        assert_eq!(parse_quantity("-1.5"), Some(-1.5));
        for bad in ["", "m", "1x", "abc", "1KiB"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_item_is_the_value_and_none_is_no_values() {
        let body = r#"{"kind":"ExternalMetricValueList","items":[{"metricName":"myMetric","metricLabels":{"label1":"value1"},"timestamp":"2024-01-01T00:00:00Z","value":"11111e-4"}]}"#;
        assert_eq!(parse(body).unwrap(), 1.1111);
        assert!(matches!(
            parse(r#"{"items":[]}"#),
            Err(MetricError::NoValues)
        ));
        let two = r#"{"items":[{"value":"1"},{"value":"2"}]}"#;
        assert!(parse(two).unwrap_err().to_string().contains("2 items"));
        assert!(parse(r#"{"items":[{"value":"x"}]}"#).is_err());
    }

    #[test]
    fn an_address_is_asked_with_the_secrets_token() {
        use canary_core::spec::types::MetricTemplateProvider;
        use std::collections::BTreeMap;
        let provider = MetricTemplateProvider {
            address: Some("https://metrics.example:6443/".into()),
            ..Default::default()
        };
        let creds = BTreeMap::from([("token".to_string(), b"t0k".to_vec())]);
        let src = Source {
            provider: &provider,
            credentials: Some(&creds),
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        let q = parse_query("prod/queue?labelSelector=app%3Dpodinfo").unwrap();
        let out = request(&src, &q).unwrap();
        assert_eq!(
            out.url,
            "https://metrics.example:6443/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/queue?labelSelector=app%3Dpodinfo"
        );
        assert_eq!(
            out.headers,
            [("authorization", "Bearer t0k".to_string(), true)]
        );
        assert_eq!(out.timeout, TIMEOUT);
        let none = MetricTemplateProvider::default();
        assert!(
            request(
                &Source {
                    provider: &none,
                    ..src
                },
                &q
            )
            .is_none()
        );
    }
}
