//! What each version of a rollout serves — request rate, success rate and
//! 99th percentile latency of the primary and of the canary — for the live
//! view: the `linkerd top` of one rollout.
//!
//! The success rate and latency are the provider's built-in queries (see
//! [`super::builtin`]) aimed at one workload instead of the target; the
//! request rate is the success rate's denominator. Only observers whose
//! series name the workload (Linkerd, Istio) can tell the versions apart;
//! for the others there is nothing to show.

use super::builtin;
use super::template::{self, TemplateModel};

/// The rendered queries for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionQueries {
    /// Requests per second.
    pub request_rate: String,
    /// Percent of non-failed responses.
    pub success_rate: String,
    /// 99th percentile latency, in the observer's unit (see `latency_scale`).
    pub latency_p99: String,
    /// Factor from the latency query's value to milliseconds.
    pub latency_scale: f64,
}

const LINKERD_RATE: &str = "sum(rate(response_total{namespace=\"{{ namespace }}\", \
     deployment=~\"{{ target }}\", direction=\"inbound\"}[{{ interval }}]))";

const ISTIO_RATE: &str = "sum(rate(istio_requests_total{reporter=\"destination\", \
     destination_workload_namespace=\"{{ namespace }}\", \
     destination_workload=~\"{{ target }}\"}[{{ interval }}]))";

/// The queries for `workload` in `namespace` over `window` (a Prometheus
/// duration such as `1m`), or `None` when `provider`'s series do not name
/// workloads.
pub fn queries(
    provider: &str,
    namespace: &str,
    workload: &str,
    window: &str,
) -> Option<VersionQueries> {
    let observer = builtin::observer_for(provider)?;
    let rate = match observer {
        "linkerd" => LINKERD_RATE,
        "istio" => ISTIO_RATE,
        _ => return None,
    };
    let success = builtin::builtin_query(provider, "request-success-rate")?;
    let duration = builtin::builtin_query(provider, "request-duration")?;
    let model = TemplateModel {
        name: workload.to_string(),
        namespace: namespace.to_string(),
        // The built-in queries match `{{ target }}` as a regular expression:
        // a workload name matches itself only.
        target: workload.to_string(),
        service: workload.to_string(),
        ingress: workload.to_string(),
        route: workload.to_string(),
        interval: window.to_string(),
        variables: Default::default(),
    };
    let render = |t: &str| template::render(t, &model).ok();
    Some(VersionQueries {
        request_rate: render(rate)?,
        success_rate: render(success.template)?,
        latency_p99: render(duration.template)?,
        latency_scale: if duration.unit == "ms" {
            duration.scale
        } else {
            1.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerd_queries_name_one_workload() {
        let q = queries("linkerd", "test", "podinfo-primary", "1m").unwrap();
        assert_eq!(
            q.request_rate,
            "sum(rate(response_total{namespace=\"test\", deployment=~\"podinfo-primary\", \
             direction=\"inbound\"}[1m]))"
        );
        assert!(q.success_rate.contains("deployment=~\"podinfo-primary\""));
        assert!(q.latency_p99.contains("histogram_quantile"));
        assert_eq!(q.latency_scale, 1.0);
    }

    #[test]
    fn istio_queries_name_one_workload() {
        let q = queries("istio", "prod", "app", "30s").unwrap();
        assert!(q.request_rate.contains("destination_workload=~\"app\""));
        assert!(q.request_rate.contains("[30s]"));
        assert!(q.success_rate.contains("destination_workload=~\"app\""));
    }

    #[test]
    fn observers_without_workload_series_have_none() {
        assert!(queries("nginx", "test", "podinfo", "1m").is_none());
        assert!(queries("unknown", "test", "podinfo", "1m").is_none());
    }
}
