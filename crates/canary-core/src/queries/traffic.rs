//! What each version of a rollout serves — request rate, success rate and
//! 99th percentile latency of the primary and of the canary — for the live
//! view: the `linkerd top` of one rollout.
//!
//! Three figures per look, each grouped by workload so that one answer
//! holds both versions, asked together in one query ([`TrafficQueries::one`])
//! whose samples say which figure they are in the label [`STAT_LABEL`]. The success rate counts a version that fails every
//! request as 0% rather than as having no value. Only observers whose
//! series name the workload (Linkerd, Istio) can tell the versions apart;
//! for the others there is nothing to show.

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
/// `provider`'s series do not name workloads.
pub fn queries(
    provider: Provider,
    namespace: &str,
    primary: &str,
    canary: &str,
    window: &str,
) -> Option<TrafficQueries> {
    let s = match provider.observer()? {
        "linkerd" => LINKERD,
        "istio" => ISTIO,
        _ => return None,
    };
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
    Some(TrafficQueries {
        label: by,
        request_rate: all.clone(),
        success_rate: format!("({ok} or {all} * 0) / {all} * 100"),
        latency_p99: format!(
            "histogram_quantile(0.99, sum by ({by}, le) (rate({}{{{select}}}[{window}])))",
            s.buckets
        ),
    })
}

/// A workload name as a regular expression matching itself.
fn escape(name: &str) -> String {
    name.replace('.', "\\\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerd_queries_group_both_workloads() {
        let q = queries(
            Provider::parse("linkerd").unwrap(),
            "test",
            "podinfo-primary",
            "podinfo",
            "1m",
        )
        .unwrap();
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
    fn one_query_marks_each_figure() {
        let q = queries(
            Provider::parse("linkerd").unwrap(),
            "test",
            "podinfo-primary",
            "podinfo",
            "1m",
        )
        .unwrap();
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

    #[test]
    fn istio_queries_name_the_destination_workload() {
        let q = queries(
            Provider::parse("istio").unwrap(),
            "prod",
            "app-primary",
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
    fn observers_without_workload_series_have_none() {
        assert!(
            queries(
                Provider::parse("nginx").unwrap(),
                "test",
                "a-primary",
                "a",
                "1m"
            )
            .is_none()
        );
        assert!(
            queries(
                Provider::parse("smi:v1alpha2").unwrap(),
                "test",
                "a-primary",
                "a",
                "1m"
            )
            .is_none()
        );
    }
}
