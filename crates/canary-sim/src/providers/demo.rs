//! The query tables `canary demo --serve` gives the simulated metric
//! services: the queries of the MetricTemplates under `examples/`
//! (`datadog.yaml`, `newrelic.yaml`, `graphite.yaml`, `dynatrace.yaml`,
//! `influxdb.yaml`, `cloudwatch.yaml`, `stackdriver.yaml`, `splunk.yaml`) as they render for the demo's `prod/podinfo` canary
//! with a one-minute metric interval, each answered from the Linkerd
//! series of the demo's traffic with what the query measures.

use super::{Kind, MetricProviders};

/// The Linkerd inbound series of `prod/podinfo`, with extra matchers.
fn sel(extra: &str) -> String {
    format!("namespace=\"prod\",deployment=\"podinfo\",direction=\"inbound\"{extra}")
}

/// The percentage of `prod/podinfo`'s responses whose series match
/// `matchers`, over the request's window.
fn percent(matchers: &str) -> String {
    format!(
        "100 * sum(rate(response_total{{{}}}[$window])) / sum(rate(response_total{{{}}}[$window]))",
        sel(matchers),
        sel("")
    )
}

/// (service, query as rendered, PromQL).
pub fn demo_tables() -> Vec<(Kind, &'static str, String)> {
    vec![
        (
            Kind::Datadog,
            "100 - ( sum:istio.mesh.request.count{ reporter:destination, \
             destination_workload_namespace:prod, destination_workload:podinfo, \
             !response_code:404 }.as_count() / sum:istio.mesh.request.count{ \
             reporter:destination, destination_workload_namespace:prod, \
             destination_workload:podinfo }.as_count() ) * 100",
            percent(",status_code=\"404\""),
        ),
        (
            Kind::Newrelic,
            "SELECT filter(sum(nginx_ingress_controller_requests), WHERE status >= '500') / \
             sum(nginx_ingress_controller_requests) * 100 FROM Metric WHERE metricName = \
             'nginx_ingress_controller_requests' AND exported_service = 'podinfo' AND \
             namespace = 'prod'",
            percent(",status_code=~\"5..\""),
        ),
        (
            Kind::Graphite,
            "summarize( asPercent( sumSeries( stats.timers.httpServerRequests.app.podinfo.\
             exception.*.method.*.outcome.{CLIENT_ERROR,INFORMATIONAL,REDIRECTION,SUCCESS}.\
             status.*.uri.*.count ), sumSeries( stats.timers.httpServerRequests.app.podinfo.\
             exception.*.method.*.outcome.*.status.*.uri.*.count ) ), '1m', 'avg' )",
            percent(",status_code!~\"5..\""),
        ),
        (
            Kind::Dynatrace,
            "builtin:service.response.time:filter(eq(\"dt.entity.service\",\
             \"SERVICE-ABCDEF0123456789\")):percentile(95)",
            format!(
                "histogram_quantile(0.95, sum(rate(response_latency_ms_bucket{{{}}}[$window])) by (le))",
                sel("")
            ),
        ),
        (
            Kind::Influxdb,
            "from(bucket: \"linkerd\") |> range(start: -1m) |> filter(fn: (r) => \
             r._measurement == \"response_total\" and r.deployment == \"podinfo\") |> \
             filter(fn: (r) => r.status_code == \"404\") |> count() |> toFloat()",
            format!(
                "sum(increase(response_total{{{}}}[$window])) or vector(0)",
                sel(",status_code=\"404\"")
            ),
        ),
        (
            Kind::Cloudwatch,
            "[\n  {\n    \"Id\": \"e1\",\n    \"Expression\": \"100 * m1 / m2\",\n    \"Label\": \"ErrorRate\"\n  },\n  {\n    \"Id\": \"m1\",\n    \"MetricStat\": {\n      \"Metric\": {\n        \"Namespace\": \"AWS/ApplicationELB\",\n        \"MetricName\": \"HTTPCode_Target_5XX_Count\",\n        \"Dimensions\": [\n          {\"Name\": \"TargetGroup\", \"Value\": \"targetgroup/podinfo-canary/0123456789abcdef\"}\n        ]\n      },\n      \"Period\": 60,\n      \"Stat\": \"Sum\"\n    },\n    \"ReturnData\": false\n  },\n  {\n    \"Id\": \"m2\",\n    \"MetricStat\": {\n      \"Metric\": {\n        \"Namespace\": \"AWS/ApplicationELB\",\n        \"MetricName\": \"RequestCount\",\n        \"Dimensions\": [\n          {\"Name\": \"TargetGroup\", \"Value\": \"targetgroup/podinfo-canary/0123456789abcdef\"}\n        ]\n      },\n      \"Period\": 60,\n      \"Stat\": \"Sum\"\n    },\n    \"ReturnData\": false\n  }\n]",
            percent(",status_code=~\"5..\""),
        ),
        (
            Kind::Stackdriver,
            "fetch k8s_container\n| metric 'istio.io/service/server/response_latencies'\n| filter\n    (metric.destination_service_name == 'podinfo-canary'\n    && metric.destination_service_namespace == 'prod')\n| align delta(1m)\n| every 1m\n| group_by [],\n    [value_response_latencies_percentile:\n      percentile(value.response_latencies, 99)]",
            // The MQL aligns over a minute; the service asks for points a
            // second apart, so the window is the query's own.
            format!(
                "histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{{{}}}[1m])) by (le))",
                sel("")
            ),
        ),
        (
            Kind::Splunk,
            "total = data('traces.count', filter=filter('sf_service', 'podinfo')).sum().publish(enable=False)\n\
             success = data('traces.count', filter=filter('sf_service', 'podinfo') and filter('sf_error', 'false')).sum().publish(enable=False)\n\
             ((success / total) * 100).publish()",
            percent(",status_code!~\"5..\""),
        ),
    ]
}

impl MetricProviders {
    /// Maps every query of [`demo_tables`].
    pub fn map_demo_queries(&self) {
        for (kind, query, promql) in demo_tables() {
            self.map_query(kind, query, &promql);
        }
    }

    /// Whether `kind` has a mapping for `query` (whitespace runs read as
    /// one space).
    pub fn answers(&self, kind: Kind, query: &str) -> bool {
        self.promql(kind, query, 1000).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{SeriesStore, StoreConfig};

    #[test]
    fn every_demo_expression_is_valid_promql() {
        let store = SeriesStore::new(StoreConfig::realtime());
        for (kind, _, promql) in demo_tables() {
            let q = promql.replace("$window", "60000ms");
            assert!(
                crate::promql::instant_query(&store, &q, store.now()).is_ok(),
                "{kind:?}: {q}"
            );
        }
    }
}
