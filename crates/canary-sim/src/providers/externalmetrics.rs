//! The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`)
//! as an aggregated API server (KEDA's, or prometheus-adapter's) serves
//! it through the simulated API server, once a World registers it
//! ([`crate::server::Sim::serve_external_metrics`]):
//!
//! - discovery lists the group under `/apis` (plain and aggregated), and
//!   `/apis/external.metrics.k8s.io/v1beta1` lists the `externalmetrics`
//!   resource (namespaced, verb `get`), as such adapters report it;
//! - `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC`
//!   with an optional `labelSelector` answers an `ExternalMetricValueList`
//!   from the table set by [`MetricProviders::map_external_metric`]: one
//!   item per series of the mapped PromQL expression at the cluster's
//!   current time, each value a Kubernetes quantity in milli-units
//!   (`1500m`), as KEDA writes it. A mapped metric without a value answers
//!   no items; a metric with no mapping answers 404, as an adapter does
//!   for a metric it does not know.
//!
//! The authentication and authorization are the API server's: the path
//! is checked against the token's rules like any other.

use serde_json::{Value, json};

use super::MetricProviders;
use crate::promql::{Value as PromValue, instant_query};

pub const GROUP: &str = "external.metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// `labelSelector` as a table key: its requirements trimmed and sorted.
pub(crate) fn selector_key(selector: &str) -> String {
    let mut parts: Vec<String> = selector
        .split(',')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(""))
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.join(",")
}

/// The group in `/apis`' APIGroupList.
pub fn api_group() -> Value {
    let v = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [v.clone()], "preferredVersion": v})
}

/// The group in `/apis`' aggregated discovery document.
pub fn aggregated_group() -> Value {
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{
            "version": VERSION,
            "resources": [{
                "resource": "externalmetrics",
                "responseKind": {"group": "", "version": "", "kind": "ExternalMetricValueList"},
                "scope": "Namespaced",
                "singularResource": "",
                "verbs": ["get"],
            }],
            "freshness": "Current",
        }],
    })
}

/// `/apis/external.metrics.k8s.io/v1beta1`.
pub fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [{
            "name": "externalmetrics",
            "singularName": "",
            "namespaced": true,
            "kind": "ExternalMetricValueList",
            "verbs": ["get"],
        }],
    })
}

/// `v` as a quantity in milli-units, or whole units when it is whole.
pub fn quantity(v: f64) -> String {
    let milli = (v * 1000.0).round() as i64;
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

impl MetricProviders {
    /// The answer to a GET of `metric` in `namespace`: `None` when the
    /// metric has no mapping.
    pub fn external_metric_list(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Option<Value> {
        let promql = self.external_promql(namespace, metric, &selector_key(selector))?;
        let now = self.now_ms();
        let stamp = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let items: Vec<Value> = match instant_query(&self.series, &promql, now) {
            Ok(PromValue::Scalar(v)) if !v.is_nan() => vec![(json!({}), v)],
            Ok(PromValue::Vector(samples)) => samples
                .into_iter()
                .filter(|s| !s.value.is_nan())
                .map(|s| {
                    let labels: serde_json::Map<String, Value> = s
                        .labels
                        .iter()
                        .filter(|(k, _)| *k != "__name__")
                        .map(|(k, v)| (k.to_string(), json!(v.to_string())))
                        .collect();
                    (Value::Object(labels), s.value)
                })
                .collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .map(|(labels, v)| {
            json!({"metricName": metric, "metricLabels": labels,
                "timestamp": stamp, "value": quantity(v)})
        })
        .collect();
        Some(json!({
            "kind": "ExternalMetricValueList",
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_written_in_milli_units() {
        assert_eq!(quantity(2.0), "2");
        assert_eq!(quantity(1.1111), "1111m");
        assert_eq!(quantity(0.0), "0");
    }

    #[test]
    fn selectors_compare_by_their_requirements() {
        assert_eq!(selector_key("b=2, a = 1"), "a=1,b=2");
        assert_eq!(selector_key(""), "");
    }
}
