//! What each version of a rollout serves — request rate, success rate and
//! 99th percentile latency of the primary and of the canary — for the live
//! view: the `linkerd top` of one rollout.
//!
//! Three figures per look, each grouped by workload so that one answer
//! holds both versions, asked together in one query ([`TrafficQueries::one`])
//! whose samples say which figure they are in the label [`STAT_LABEL`].
//! The success rate counts a version that fails every
//! request as 0% rather than as having no value. Each router's queries are
//! built by one function: Linkerd's and Istio's series name the workload
//! (`deployment`, `destination_workload`); the NGINX ingress controller's
//! name the Ingress, and tell the canary Ingress's requests by their
//! `canary` label, which the queries turn into the workload's name. The
//! other routers' series (the Gateway API's included) do not tell the
//! versions apart: there is nothing to show, and the live view says so.

use crate::provider::Provider;

/// The queries for one look at both versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficQueries {
    /// The label whose value names the workload in every answer.
    pub label: &'static str,
    /// Requests per second.
    pub request_rate: String,
    /// Percent of non-failed responses.
    pub success_rate: String,
    /// 99th percentile latency, in milliseconds.
    pub latency_p99: String,
}

/// The label that tells the figures of [`TrafficQueries::one`] apart, with
/// its values [`RATE`], [`SUCCESS`] and [`P99`].
pub const STAT_LABEL: &str = "canary_stat";
pub const RATE: &str = "rate";
pub const SUCCESS: &str = "success";
pub const P99: &str = "p99";

impl TrafficQueries {
    /// The three figures in one query: each grouped by workload and marked
    /// with its [`STAT_LABEL`], so their label sets differ and `or` keeps
    /// them all.
    pub fn one(&self) -> String {
        let mark = |q: &str, stat: &str| {
            format!(
                "label_replace({q}, \"{STAT_LABEL}\", \"{stat}\", \"{}\", \".*\")",
                self.label
            )
        };
        format!(
            "{} or {} or {}",
            mark(&self.request_rate, RATE),
            mark(&self.success_rate, SUCCESS),
            mark(&self.latency_p99, P99)
        )
    }
}

/// How one observer's series are named.
struct Series {
    label: &'static str,
    /// Every response, with `{selector}` for the label matchers.
    total: &'static str,
    /// The matcher that keeps successful responses.
    success: &'static str,
    /// The latency histogram's buckets, in milliseconds.
    buckets: &'static str,
    /// Matchers every series needs besides namespace and workload.
    fixed: &'static str,
    namespace_label: &'static str,
}

const LINKERD: Series = Series {
    label: "deployment",
    total: "response_total",
    success: "classification!=\"failure\"",
    buckets: "response_latency_ms_bucket",
    fixed: "direction=\"inbound\"",
    namespace_label: "namespace",
};

const ISTIO: Series = Series {
    label: "destination_workload",
    total: "istio_requests_total",
    success: "response_code!~\"5.*\"",
    buckets: "istio_request_duration_milliseconds_bucket",
    fixed: "reporter=\"destination\"",
    namespace_label: "destination_workload_namespace",
};

/// The queries for the workloads `primary` and `canary` in `namespace`
/// over `window` (a Prometheus duration such as `1m`), or `None` when
/// `provider`'s series cannot tell the versions apart. `ingress` names
/// the Ingress an NGINX canary splits.
pub fn queries(
    provider: Provider,
    namespace: &str,
    primary: &str,
    canary: &str,
    ingress: &str,
    window: &str,
) -> Option<TrafficQueries> {
    match provider.observer()? {
        "linkerd" => Some(mesh(&LINKERD, namespace, primary, canary, window)),
        "istio" => Some(mesh(&ISTIO, namespace, primary, canary, window)),
        "nginx" => Some(nginx(namespace, primary, canary, ingress, window)),
        _ => None,
    }
}

/// Whether `provider`'s series tell the primary's traffic from the
/// canary's, so that [`queries`] has queries for it.
pub fn tells_versions_apart(provider: Provider) -> bool {
    queries(provider, "ns", "a-primary", "a", "a", "1m").is_some()
}

/// The label the NGINX queries name each version by.
const NGINX_LABEL: &str = "workload";

/// The NGINX ingress controller's series of the Ingress `ingress`: the
/// requests with an empty `canary` label went to the primary, the others
/// to the canary Ingress's backend; both are named after their workload.
fn nginx(
    namespace: &str,
    primary: &str,
    canary: &str,
    ingress: &str,
    window: &str,
) -> TrafficQueries {
    let select = format!("namespace=\"{namespace}\", ingress=\"{ingress}\"");
    let by = NGINX_LABEL;
    let versions = |inner: String| {
        format!(
            "label_replace(label_replace({inner}, \"{by}\", \"{primary}\", \"canary\", \"\"), \
             \"{by}\", \"{canary}\", \"canary\", \".+\")"
        )
    };
    let rate = |metric: &str, extra: &str| {
        versions(format!(
            "sum by (canary{extra}) (rate({metric}{{{select}}}[{window}]))"
        ))
    };
    let ok = versions(format!(
        "sum by (canary) (rate(nginx_ingress_controller_requests{{{select}, \
         status!~\"5.*\"}}[{window}]))"
    ));
    let all = format!(
        "sum by ({by}) ({})",
        rate("nginx_ingress_controller_requests", "")
    );
    TrafficQueries {
        label: by,
        request_rate: all.clone(),
        success_rate: format!("(sum by ({by}) ({ok}) or {all} * 0) / {all} * 100"),
        latency_p99: format!(
            "histogram_quantile(0.99, sum by ({by}, le) ({})) * 1000",
            rate(
                "nginx_ingress_controller_response_duration_seconds_bucket",
                ", le"
            )
        ),
    }
}

/// A mesh's series, which name the workload.
fn mesh(s: &Series, namespace: &str, primary: &str, canary: &str, window: &str) -> TrafficQueries {
    let select = format!(
        "{}=\"{namespace}\", {}=~\"{}|{}\", {}",
        s.namespace_label,
        s.label,
        escape(primary),
        escape(canary),
        s.fixed
    );
    let by = s.label;
    let all = format!("sum by ({by}) (rate({}{{{select}}}[{window}]))", s.total);
    let ok = format!(
        "sum by ({by}) (rate({}{{{select}, {}}}[{window}]))",
        s.total, s.success
    );
    TrafficQueries {
        label: by,
        request_rate: all.clone(),
        success_rate: format!("({ok} or {all} * 0) / {all} * 100"),
        latency_p99: format!(
            "histogram_quantile(0.99, sum by ({by}, le) (rate({}{{{select}}}[{window}])))",
            s.buckets
        ),
    }
}

/// A workload name as a regular expression matching itself.
fn escape(name: &str) -> String {
    name.replace('.', "\\\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The traffic queries of podinfo in `test` on Linkerd, over 1m.
    fn podinfo_on_linkerd() -> TrafficQueries {
        queries(
            Provider::parse("linkerd").unwrap(),
            "test",
            "podinfo-primary",
            "podinfo",
            "podinfo",
            "1m",
        )
        .unwrap()
    }

    #[test]
    fn linkerd_queries_group_both_workloads() {
        let q = podinfo_on_linkerd();
        assert_eq!(q.label, "deployment");
        assert_eq!(
            q.request_rate,
            "sum by (deployment) (rate(response_total{namespace=\"test\", \
             deployment=~\"podinfo-primary|podinfo\", direction=\"inbound\"}[1m]))"
        );
        assert!(q.success_rate.contains("classification!=\"failure\""));
        assert!(q.success_rate.contains(" or "));
        assert!(
            q.latency_p99
                .starts_with("histogram_quantile(0.99, sum by (deployment, le)")
        );
    }

    #[test]
    fn istio_queries_name_the_destination_workload() {
        let q = queries(
            Provider::parse("istio").unwrap(),
            "prod",
            "app-primary",
            "app",
            "app",
            "30s",
        )
        .unwrap();
        assert_eq!(q.label, "destination_workload");
        assert!(
            q.request_rate
                .contains("destination_workload=~\"app-primary|app\"")
        );
        assert!(q.request_rate.contains("[30s]"));
    }

    #[test]
    fn nginx_queries_name_each_version_by_the_canary_label() {
        let q = queries(
            Provider::parse("nginx").unwrap(),
            "test",
            "podinfo-primary",
            "podinfo",
            "podinfo",
            "1m",
        )
        .unwrap();
        assert_eq!(q.label, "workload");
        assert!(
            q.request_rate
                .starts_with("sum by (workload) (label_replace(")
        );
        assert!(
            q.request_rate.contains(
                "rate(nginx_ingress_controller_requests{namespace=\"test\", \
                 ingress=\"podinfo\"}[1m])"
            ),
            "{}",
            q.request_rate
        );
        assert!(
            q.request_rate
                .contains("\"workload\", \"podinfo-primary\", \"canary\", \"\")")
        );
        assert!(q.success_rate.contains("status!~\"5.*\""));
        assert!(q.latency_p99.ends_with(" * 1000"));
    }

    #[test]
    fn observers_without_workload_series_have_none() {
        for p in ["gatewayapi:v1", "smi:v1alpha2", "kubernetes"] {
            assert!(
                queries(
                    Provider::parse(p).unwrap(),
                    "test",
                    "a-primary",
                    "a",
                    "a",
                    "1m"
                )
                .is_none(),
                "{p}"
            );
        }
    }

    #[test]
    fn one_query_marks_each_figure() {
        let q = podinfo_on_linkerd();
        let one = q.one();
        assert_eq!(one.matches("label_replace(").count(), 3, "{one}");
        for stat in [RATE, SUCCESS, P99] {
            assert!(
                one.contains(&format!(
                    "\"canary_stat\", \"{stat}\", \"deployment\", \".*\")"
                )),
                "{one}"
            );
        }
        assert!(
            one.starts_with(&format!("label_replace({}, ", q.request_rate)),
            "{one}"
        );
    }
}
