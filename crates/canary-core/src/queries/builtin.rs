//! Flagger's built-in metrics, `request-success-rate` and
//! `request-duration`, as the Prometheus query templates Flagger runs for
//! each mesh or ingress provider.
//!
//! Flagger keeps one "observer" per provider family in
//! `pkg/metrics/observers/<observer>.go` of fluxcd/flagger and picks it from
//! the provider string in `Factory.Observer` (`factory.go`). The templates
//! below reproduce those files' query strings byte for byte, placeholders
//! included, so a rendered query is the one Flagger would send. Sources, all
//! in `pkg/metrics/observers/` (commit ids as stored in the reference index):
//!
//! | observer  | providers (as in `spec.provider`)      | source                        |
//! |-----------|----------------------------------------|-------------------------------|
//! | `linkerd` | `linkerd`                              | `linkerd.go` @ 90abb7ba       |
//! | `istio`   | `istio`                                | `istio.go` @ 1535f7aa         |
//! | `nginx`   | `nginx`                                | see below                     |
//! | `contour` | `contour`                              | `contour.go` @ 70114e3f       |
//! | `gloo`    | anything starting with `gloo`          | `gloo.go`, licensed revision using `canaryupstream` (matches `gloo_test.go` @ 3ad55c97) |
//! | `traefik` | `traefik`                              | `traefik.go` @ c812dcff       |
//! | `osm`     | `osm`                                  | `osm.go` @ a6fae019           |
//! | `kuma`    | `kuma`                                 | `kuma.go` @ 3d1aedeb          |
//! | `apisix`  | `apisix`                               | `apisix.go` @ 2dd48c6e        |
//! | `appmesh` | anything starting with `appmesh`       | `appmesh.go` @ 1535f7aa       |
//! | `http`    | `kubernetes`, anything starting with `gatewayapi` | `http.go` @ 1535f7aa |
//! | `knative` | `knative`                              | `knative.go` @ f1c8807c       |
//! | `skipper` | `skipper`                              | `skipper.go` @ cd75c5fa       |
//!
//! The factory version followed is the one at f1c8807c (it knows `knative`);
//! `crossover`, which older factories had, is gone from it and is not here.
//!
//! NGINX: the query is the one Flagger's `nginx_test.go` @ 01d47808 expects
//! on the wire, which adds `canary!=""` to every selector (Flagger v1.15,
//! fluxcd/flagger#1023, so only the canary ingress's traffic is measured).
//! The stored `nginx.go` revisions predate that change, so the template text
//! is `nginx.go` @ 70114e3f with that one selector added; after Flagger's
//! whitespace collapsing it is identical to the test's expectation (checked
//! below). Flagger later (fluxcd/flagger#1686, July 2024; in v1.44) moved
//! `request-duration` from the `nginx_ingress_controller_ingress_upstream_latency_seconds`
//! summary to the `nginx_ingress_controller_response_duration_seconds`
//! histogram, which ingress-nginx still exports; the query here is that
//! one: the same mean (rate of the sum over rate of the count, times 1000)
//! over the histogram's `_sum` and `_count`.
//!
//! Skipper: the template declares a Go template variable holding a
//! `printf` of the namespace, ingress and service, the route id pattern
//! Skipper gives the canary Ingress's routes to the canary Service
//! (`kube_<namespace>__<ingress>-canary__<host>__<path>__<service>-canary`,
//! every non-word character written `_`; `kubeew_` for its east-west
//! copies; `_<n>` after the backend when it splits by weight). Flagger
//! rewrites the model for it the same way before rendering (non-word
//! characters of the name, namespace, target, service and ingress to `_`,
//! `encodeModelForSkipper`): [`BuiltinQuery::render`] does both.
//! `request-duration` is a mean, like NGINX's: the rate of
//! `skipper_serve_route_duration_seconds_sum` over that of its `_count`,
//! times 1000.
//!
//! Not reproduced, and so reported as having no built-in queries:
//!
//! * `smi:*` providers: the factory has no case for them, so Flagger falls
//!   through to its default, the Istio observer. (Flagger's controller also
//!   replaces any `spec.provider` with `linkerd` when its own
//!   `--mesh-provider` contains `linkerd`, which is how SMI canaries on
//!   Linkerd end up with Linkerd queries; there is no such global setting
//!   here, so no guess is made.)
//! * anything else: Flagger would quietly use the Istio observer as well;
//!   [`Provider::observer`] returns `None` instead so a typo does not turn
//!   into Istio queries.
//!
//! Flagger also appends `:service` to the provider when the target is a
//! `Service` (not a Knative one), which sends every provider except the
//! prefix-matched ones (`appmesh*`, `gloo*`, `gatewayapi*`) to the Istio
//! observer. That quirk is not reproduced.
//!
//! # How Flagger judges the results
//!
//! From `runBuiltinMetricChecks` in `pkg/controller/scheduler_metrics.go`:
//!
//! * `request-success-rate` is a percentage (0 to 100) used as returned.
//!   With `thresholdRange` the check fails when the value is below `min` or
//!   above `max`; with the older `threshold` it fails when the value is below
//!   `threshold`.
//! * `request-duration` is a latency in milliseconds: the 99th percentile
//!   (`histogram_quantile(0.99, ...)`) for every observer except `nginx`,
//!   whose query is a mean (rate of the latency sum over rate of the count).
//!   Flagger turns the query result into a `time.Duration` of whole
//!   milliseconds, truncating (`int64(value)`), after multiplying by
//!   [`BuiltinQuery::scale`] (1000 for `http`, whose histogram is in seconds;
//!   `nginx` and `traefik` multiply inside the query). `thresholdRange.min`
//!   and `max` are milliseconds, also truncated to whole milliseconds
//!   (`time.Duration(*tr.Max) * time.Millisecond`); the check fails when the
//!   latency is below `min` or above `max`, so a value equal to `max`
//!   passes. With the older `threshold` it fails above `threshold` ms.
//! * An empty result or `NaN` is "no values found": the check fails and
//!   Flagger reports that the target is probably not receiving traffic.
//! * The query runs over `[{{ interval }}]`, the metric's `interval` as
//!   written, `1m` when unset.

use crate::provider::Provider;

/// One of Flagger's built-in queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuiltinQuery {
    /// The observer the query belongs to (`"linkerd"`, `"http"`, ...), not
    /// the provider string it was looked up with.
    pub provider: &'static str,
    /// `"request-success-rate"` or `"request-duration"`.
    pub metric: &'static str,
    /// Go template text, as in Flagger; render with [`super::template::render`].
    pub template: &'static str,
    /// Unit of the value Flagger compares: `"%"` or `"ms"`.
    pub unit: &'static str,
    /// Factor Flagger applies to the query result to get `unit`.
    pub scale: f64,
    /// What the query measures, for people.
    pub description: &'static str,
    /// Whether Flagger writes every non-word character of the model's
    /// names as `_` before rendering (its Skipper observer).
    pub word_model: bool,
}

impl BuiltinQuery {
    /// The value Flagger compares against the thresholds for a raw query
    /// result: scaled, and for `"ms"` truncated to whole milliseconds.
    /// The query Flagger sends for `model`: the template rendered after
    /// the observer's own rewrite of the model, if it has one. Go's `\W`
    /// is every byte but ASCII letters, digits and `_`; a character of
    /// several bytes becomes several `_`, as there.
    pub fn render(
        &self,
        model: &super::template::TemplateModel,
    ) -> Result<String, super::template::TemplateError> {
        if !self.word_model {
            return super::template::render(self.template, model);
        }
        let word = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let encoded = super::template::TemplateModel {
            name: word(&model.name),
            namespace: word(&model.namespace),
            target: word(&model.target),
            service: word(&model.service),
            ingress: word(&model.ingress),
            ..model.clone()
        };
        super::template::render(self.template, &encoded)
    }

    pub fn value_in_unit(&self, raw: f64) -> f64 {
        let value = raw * self.scale;
        if self.unit == "ms" {
            value.trunc()
        } else {
            value
        }
    }
}

/// A `thresholdRange` bound or `threshold` for `request-duration`, in
/// milliseconds, as Flagger applies it: truncated to whole milliseconds.
pub fn duration_threshold_ms(threshold: f64) -> f64 {
    threshold.trunc()
}

/// The metric names Flagger resolves without a template or query.
pub const BUILTIN_METRICS: &[&str] = &["request-success-rate", "request-duration"];

/// Every observer with queries here, in table order.
pub const OBSERVERS: &[&str] = &[
    "linkerd", "istio", "nginx", "contour", "gloo", "traefik", "osm", "kuma", "apisix", "appmesh",
    "http", "knative", "skipper",
];

/// Flagger's built-in `metric` for `provider`, if there is one.
pub fn builtin_query(provider: Provider, metric: &str) -> Option<&'static BuiltinQuery> {
    let observer = provider.observer()?;
    QUERIES
        .iter()
        .find(|q| q.provider == observer && q.metric == metric)
}

/// Every built-in query, two per observer in [`OBSERVERS`] order.
pub fn all() -> &'static [BuiltinQuery] {
    QUERIES
}

const SUCCESS: &str = "request-success-rate";
const DURATION: &str = "request-duration";

const fn rate(
    provider: &'static str,
    template: &'static str,
    description: &'static str,
) -> BuiltinQuery {
    BuiltinQuery {
        provider,
        metric: SUCCESS,
        template,
        unit: "%",
        scale: 1.0,
        description,
        word_model: false,
    }
}

const fn latency(
    provider: &'static str,
    template: &'static str,
    scale: f64,
    description: &'static str,
) -> BuiltinQuery {
    BuiltinQuery {
        provider,
        metric: DURATION,
        template,
        unit: "ms",
        scale,
        description,
        word_model: false,
    }
}

static QUERIES: &[BuiltinQuery] = &[
    rate(
        "linkerd",
        LINKERD_SUCCESS_RATE,
        "inbound responses the Linkerd proxy did not classify as failures, percent",
    ),
    latency(
        "linkerd",
        LINKERD_DURATION,
        1.0,
        "p99 inbound response latency seen by the Linkerd proxy, ms",
    ),
    rate(
        "istio",
        ISTIO_SUCCESS_RATE,
        "non-5xx requests reported by the destination Envoy, percent",
    ),
    latency(
        "istio",
        ISTIO_DURATION,
        1.0,
        "p99 request duration reported by the destination Envoy, ms",
    ),
    rate(
        "nginx",
        NGINX_SUCCESS_RATE,
        "non-5xx requests through the canary ingress, percent",
    ),
    latency(
        "nginx",
        NGINX_DURATION,
        1.0,
        "mean response time through the canary ingress (not a p99), ms",
    ),
    rate(
        "contour",
        CONTOUR_SUCCESS_RATE,
        "non-5xx requests Envoy sent to the canary cluster, percent",
    ),
    latency(
        "contour",
        CONTOUR_DURATION,
        1.0,
        "p99 upstream request time of the canary cluster in Envoy, ms",
    ),
    rate(
        "gloo",
        GLOO_SUCCESS_RATE,
        "non-5xx requests Envoy sent to the canary upstream, percent",
    ),
    latency(
        "gloo",
        GLOO_DURATION,
        1.0,
        "p99 upstream request time of the canary upstream in Envoy, ms",
    ),
    rate(
        "traefik",
        TRAEFIK_SUCCESS_RATE,
        "non-5xx requests Traefik served from the canary service, percent",
    ),
    latency(
        "traefik",
        TRAEFIK_DURATION,
        1.0,
        "p99 request duration of the canary service in Traefik, ms",
    ),
    rate(
        "osm",
        OSM_SUCCESS_RATE,
        "non-5xx requests to the target deployment in Open Service Mesh, percent",
    ),
    latency(
        "osm",
        OSM_DURATION,
        1.0,
        "p99 request duration to the target deployment in Open Service Mesh, ms",
    ),
    rate(
        "kuma",
        KUMA_SUCCESS_RATE,
        "non-5xx requests Envoy sent to the canary service in Kuma, percent",
    ),
    latency(
        "kuma",
        KUMA_DURATION,
        1.0,
        "p99 upstream request time of the canary service in Kuma, ms",
    ),
    rate(
        "apisix",
        APISIX_SUCCESS_RATE,
        "non-5xx responses on the canary route in APISIX, percent",
    ),
    latency(
        "apisix",
        APISIX_DURATION,
        1.0,
        "p99 request latency on the canary route in APISIX, ms",
    ),
    rate(
        "appmesh",
        APPMESH_SUCCESS_RATE,
        "non-5xx requests from the Envoy sidecars of the target's pods, percent",
    ),
    latency(
        "appmesh",
        APPMESH_DURATION,
        1.0,
        "p99 upstream request time from the Envoy sidecars of the target's pods, ms",
    ),
    rate(
        "http",
        HTTP_SUCCESS_RATE,
        "non-5xx requests counted by the application's own \
         http_request_duration_seconds histogram, percent",
    ),
    latency(
        "http",
        HTTP_DURATION,
        // The histogram is in seconds; Flagger multiplies by 1000 in Go.
        1000.0,
        "p99 of the application's own http_request_duration_seconds histogram, ms",
    ),
    rate(
        "knative",
        KNATIVE_SUCCESS_RATE,
        "non-5xx requests Envoy sent to the latest Knative revision, percent",
    ),
    latency(
        "knative",
        KNATIVE_DURATION,
        1.0,
        "p99 upstream request time of the latest Knative revision in Envoy, ms",
    ),
    BuiltinQuery {
        word_model: true,
        ..rate(
            "skipper",
            SKIPPER_SUCCESS_RATE,
            "non-5xx responses on the canary Ingress's routes to the canary Service in \
             Skipper, percent",
        )
    },
    BuiltinQuery {
        word_model: true,
        ..latency(
            "skipper",
            SKIPPER_DURATION,
            1.0,
            "mean time Skipper served the canary Ingress's routes to the canary Service \
             (not a p99), ms",
        )
    },
];

// Query templates. Whitespace is Flagger's, tabs and trailing spaces
// included, so that rendered queries match Flagger's byte for byte.

const LINKERD_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tresponse_total{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tdeployment=~\"{{ target }}\",\n\
\t\t\t\tclassification!=\"failure\",\n\
\t\t\t\tdirection=\"inbound\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tresponse_total{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tdeployment=~\"{{ target }}\",\n\
\t\t\t\tdirection=\"inbound\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const LINKERD_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tresponse_latency_ms_bucket{\n\
\t\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\t\tdeployment=~\"{{ target }}\",\n\
\t\t\t\t\tdirection=\"inbound\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const ISTIO_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tistio_requests_total{\n\
\t\t\t\treporter=\"destination\",\n\
\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n\
\t\t\t\tdestination_workload=~\"{{ target }}\",\n\
\t\t\t\tresponse_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tistio_requests_total{\n\
\t\t\t\treporter=\"destination\",\n\
\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n\
\t\t\t\tdestination_workload=~\"{{ target }}\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const ISTIO_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tistio_request_duration_milliseconds_bucket{\n\
\t\t\t\t\treporter=\"destination\",\n\
\t\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n\
\t\t\t\t\tdestination_workload=~\"{{ target }}\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const NGINX_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tnginx_ingress_controller_requests{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tingress=\"{{ ingress }}\",\n\
\t\t\t\tcanary!=\"\",\n\
\t\t\t\tstatus!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tnginx_ingress_controller_requests{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tingress=\"{{ ingress }}\",\n\
\t\t\t\tcanary!=\"\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const NGINX_DURATION: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tnginx_ingress_controller_response_duration_seconds_sum{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tingress=\"{{ ingress }}\",\n\
\t\t\t\tcanary!=\"\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tnginx_ingress_controller_response_duration_seconds_count{\n\
\t\t\t\tnamespace=\"{{ namespace }}\",\n\
\t\t\t\tingress=\"{{ ingress }}\",\n\
\t\t\t\tcanary!=\"\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 1000";

const CONTOUR_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+\",\n\
\t\t\t\tenvoy_response_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+\",\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const CONTOUR_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tenvoy_cluster_upstream_rq_time_bucket{\n\
\t\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+\",\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const GLOO_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+\",\n\
\t\t\t\tenvoy_response_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+\",\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const GLOO_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tenvoy_cluster_upstream_rq_time_bucket{\n\
\t\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+\",\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const TRAEFIK_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\ttraefik_service_request_duration_seconds_bucket{\n\
\t\t\t\tservice=~\"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd\",\n\
\t\t\t\tcode!~\"5..\",\n\
\t\t\t\tle=\"+Inf\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t)\n\
\t/\n\
\tsum(\n\
\t\trate(\n\
\t\t\ttraefik_service_request_duration_seconds_bucket{\n\
\t\t\t\tservice=~\"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd\",\n\
\t\t\t\tle=\"+Inf\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) * 100";

const TRAEFIK_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\ttraefik_service_request_duration_seconds_bucket{\n\
\t\t\t\t\tservice=~\"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t) * 1000";

const OSM_SUCCESS_RATE: &str = "\n\
\x20\x20\x20\x20sum(\n\
\x20\x20\x20\x20\x20\x20\x20\x20rate(\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20osm_request_total{\n\
\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n\
\t\t\t\tdestination_kind=\"Deployment\",\n\
\t\t\t\tdestination_name=\"{{ target }}\",\n\
\t\t\t\tresponse_code!~\"5.*\"\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20}[{{ interval }}]\n\
\x20\x20\x20\x20\x20\x20\x20\x20)\n\
\x20\x20\x20\x20)\n\
\x20\x20\x20\x20/\n\
\x20\x20\x20\x20sum(\n\
\x20\x20\x20\x20\x20\x20\x20\x20rate(\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20osm_request_total{\n\
\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n\
\t\t\t\tdestination_kind=\"Deployment\",\n\
\t\t\t\tdestination_name=\"{{ target }}\"\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20}[{{ interval }}]\n\
\x20\x20\x20\x20\x20\x20\x20\x20)\n\
\x20\x20\x20\x20)\n\
\t* 100";

const OSM_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t  rate(\n\
\t\t\tosm_request_duration_ms_bucket{\n\
\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n\
\t\t\t\tdestination_kind=\"Deployment\",\n\
\t\t\t\tdestination_name=\"{{ target }}\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t  )\n\
\t\t) by (le)\n\
\t)";

const KUMA_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tservice=~\"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+\",\n\
\t\t\t\tenvoy_response_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tservice=~\"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+\",\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const KUMA_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tenvoy_cluster_upstream_rq_time_bucket{\n\
\t\t\t\t\tservice=~\"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+\",\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const APISIX_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tapisix_http_status{\n\
\t\t\t\troute=~\"{{ namespace }}_{{ route }}-{{ target }}-canary_.+\",\n\
\t\t\t\tcode!~\"5..\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t)\n\
\t/\n\
\tsum(\n\
\t\trate(\n\
\t\t\tapisix_http_status{\n\
\t\t\t\troute=~\"{{ namespace }}_{{ route }}-{{ target }}-canary_.+\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) * 100";

const APISIX_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99, \n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tapisix_http_latency_bucket{\n\
\t\t\t\t\ttype=~\"request\",\n\
\t\t\t\t\troute=~\"{{ namespace }}_{{ route }}-{{ target }}-canary_.+\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const APPMESH_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\",\n\
\t\t\t\tenvoy_response_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const APPMESH_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tenvoy_cluster_upstream_rq_time_bucket{\n\
\t\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const HTTP_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\thttp_request_duration_seconds_count{\n\
\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\",\n\
\t\t\t\tstatus!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\thttp_request_duration_seconds_count{\n\
\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const HTTP_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\thttp_request_duration_seconds_bucket{\n\
\t\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n\
\t\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

const KNATIVE_SUCCESS_RATE: &str = "\n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}/{{ route }}\",\n\
\t\t\t\tenvoy_response_code!~\"5.*\"\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t/ \n\
\tsum(\n\
\t\trate(\n\
\t\t\tenvoy_cluster_upstream_rq{\n\
\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}/{{ route }}\",\n\
\t\t\t}[{{ interval }}]\n\
\t\t)\n\
\t) \n\
\t* 100";

const KNATIVE_DURATION: &str = "\n\
\thistogram_quantile(\n\
\t\t0.99,\n\
\t\tsum(\n\
\t\t\trate(\n\
\t\t\t\tenvoy_cluster_upstream_rq_time_bucket{\n\
\t\t\t\t\tenvoy_cluster_name=~\"{{ namespace }}/{{ route }}\",\n\
\t\t\t\t}[{{ interval }}]\n\
\t\t\t)\n\
\t\t) by (le)\n\
\t)";

/// Skipper's route ids for the canary Ingress's paths to the canary
/// Service, declared at the start of each query.
macro_rules! skipper_route {
    () => {
        "{{- $route := printf \"kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?\" namespace ingress service }}"
    };
}

const SKIPPER_SUCCESS_RATE: &str = concat!(
    skipper_route!(),
    "\n\
\tsum(rate(skipper_response_duration_seconds_bucket{route=~\"{{ $route }}\",code!~\"5..\",le=\"+Inf\"}[{{ interval }}])) / \n\
\tsum(rate(skipper_response_duration_seconds_bucket{route=~\"{{ $route }}\",le=\"+Inf\"}[{{ interval }}])) * 100"
);

const SKIPPER_DURATION: &str = concat!(
    skipper_route!(),
    "\n\
\tsum(rate(skipper_serve_route_duration_seconds_sum{route=~\"{{ $route }}\"}[{{ interval }}])) / \n\
\tsum(rate(skipper_serve_route_duration_seconds_count{route=~\"{{ $route }}\"}[{{ interval }}])) * 1000"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Provider {
        Provider::parse(name).unwrap()
    }
    use crate::queries::template::{TemplateModel, collapse_whitespace};

    fn model(namespace: &str, target: &str) -> TemplateModel {
        TemplateModel {
            name: target.into(),
            namespace: namespace.into(),
            target: target.into(),
            service: target.into(),
            ingress: target.into(),
            route: target.into(),
            interval: "1m".into(),
            variables: Default::default(),
        }
    }

    fn rendered(provider: &str, metric: &str, namespace: &str, target: &str) -> String {
        let q = builtin_query(p(provider), metric)
            .unwrap_or_else(|| panic!("no {metric} for {provider}"));
        q.render(&model(namespace, target)).unwrap()
    }

    #[test]
    fn linkerd_success_rate_renders() {
        let q = rendered("linkerd", "request-success-rate", "prod", "podinfo");
        assert!(q.contains(r#"namespace="prod""#), "{q}");
        assert!(q.contains(r#"deployment=~"podinfo""#), "{q}");
        assert!(q.contains("[1m]"), "{q}");
        assert!(!q.contains("{{"), "{q}");
    }

    #[test]
    fn istio_and_nginx_render_completely() {
        for provider in ["istio", "nginx"] {
            for metric in BUILTIN_METRICS {
                let q = rendered(provider, metric, "prod", "podinfo");
                assert!(
                    !q.contains("{{") && !q.contains("}}"),
                    "{provider} {metric}: {q}"
                );
                assert!(q.contains("[1m]"), "{provider} {metric}: {q}");
            }
        }
    }

    #[test]
    fn every_observer_has_both_metrics_and_renders() {
        assert_eq!(all().len(), OBSERVERS.len() * BUILTIN_METRICS.len());
        for observer in OBSERVERS {
            for metric in BUILTIN_METRICS {
                let q = all()
                    .iter()
                    .find(|q| q.provider == *observer && q.metric == *metric)
                    .unwrap_or_else(|| panic!("{observer} lacks {metric}"));
                let out = q.render(&model("prod", "podinfo")).unwrap();
                assert!(!out.contains("{{"), "{observer} {metric}: {out}");
                assert!(out.contains("[1m]"), "{observer} {metric}: {out}");
                let unit = if *metric == "request-duration" {
                    "ms"
                } else {
                    "%"
                };
                assert_eq!(q.unit, unit, "{observer} {metric}");
            }
        }
    }

    #[test]
    fn durations_are_p99_except_nginx() {
        for q in all().iter().filter(|q| q.metric == "request-duration") {
            let one_line = crate::queries::template::compact(q.template);
            if q.provider == "nginx" || q.provider == "skipper" {
                // Flagger's NGINX and Skipper queries are a mean latency,
                // not a quantile.
                assert!(!one_line.contains("histogram_quantile"), "{one_line}");
                assert!(one_line.ends_with("* 1000"), "{one_line}");
            } else {
                assert!(
                    one_line.starts_with("histogram_quantile(0.99,"),
                    "{}: {one_line}",
                    q.provider
                );
            }
        }
    }

    // Expected strings are the queries Flagger's own observer tests assert
    // arrive at Prometheus (after its whitespace collapsing).
    #[test]
    fn nginx_matches_flagger_wire_format() {
        assert_eq!(
            collapse_whitespace(&rendered(
                "nginx",
                "request-success-rate",
                "nginx",
                "podinfo"
            )),
            r#" sum( rate( nginx_ingress_controller_requests{ namespace="nginx", ingress="podinfo", canary!="", status!~"5.*" }[1m] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="nginx", ingress="podinfo", canary!="" }[1m] ) ) * 100"#
        );
        assert_eq!(
            collapse_whitespace(&rendered("nginx", "request-duration", "nginx", "podinfo")),
            r#" sum( rate( nginx_ingress_controller_response_duration_seconds_sum{ namespace="nginx", ingress="podinfo", canary!="" }[1m] ) ) / sum( rate( nginx_ingress_controller_response_duration_seconds_count{ namespace="nginx", ingress="podinfo", canary!="" }[1m] ) ) * 1000"#
        );
    }

    /// `contour_test.go`: the canary Service's Envoy clusters,
    /// `<namespace>_<target>-canary_<port>`.
    #[test]
    fn contour_matches_flagger_wire_format() {
        assert_eq!(
            collapse_whitespace(&rendered(
                "contour",
                "request-success-rate",
                "default",
                "podinfo"
            )),
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default_podinfo-canary_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default_podinfo-canary_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#
        );
        assert_eq!(
            collapse_whitespace(&rendered(
                "contour",
                "request-duration",
                "default",
                "podinfo"
            )),
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"default_podinfo-canary_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#
        );
    }

    #[test]
    fn gloo_and_traefik_match_flagger_wire_format() {
        assert_eq!(
            collapse_whitespace(&rendered(
                "gloo",
                "request-success-rate",
                "default",
                "podinfo"
            )),
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#
        );
        assert_eq!(
            collapse_whitespace(&rendered("gloo", "request-duration", "default", "podinfo")),
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"default-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#
        );
        assert_eq!(
            collapse_whitespace(&rendered(
                "traefik",
                "request-success-rate",
                "default",
                "podinfo"
            )),
            r#" sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"default-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", code!~"5..", le="+Inf" }[1m] ) ) / sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"default-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", le="+Inf" }[1m] ) ) * 100"#
        );
        assert_eq!(
            collapse_whitespace(&rendered(
                "traefik",
                "request-duration",
                "default",
                "podinfo"
            )),
            r#" histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"default-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd" }[1m] ) ) by (le) ) * 1000"#
        );
    }

    /// The strings `kuma_test.go` and `apisix_test.go` expect on the wire
    /// (Flagger v1.44), for target, service and route `podinfo` in
    /// `default`.
    #[test]
    fn kuma_and_apisix_match_flagger_wire_format() {
        let wire = |provider: &str, metric: &str| {
            collapse_whitespace(&rendered(provider, metric, "default", "podinfo"))
        };
        assert_eq!(
            wire("kuma", "request-success-rate"),
            r#" sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_default_svc_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_default_svc_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#
        );
        assert_eq!(
            wire("kuma", "request-duration"),
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ service=~"podinfo-canary_default_svc_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#
        );
        assert_eq!(
            wire("apisix", "request-success-rate"),
            r#" sum( rate( apisix_http_status{ route=~"default_podinfo-podinfo-canary_.+", code!~"5.." }[1m] ) ) / sum( rate( apisix_http_status{ route=~"default_podinfo-podinfo-canary_.+" }[1m] ) ) * 100"#
        );
        assert_eq!(
            wire("apisix", "request-duration"),
            r#" histogram_quantile( 0.99, sum( rate( apisix_http_latency_bucket{ type=~"request", route=~"default_podinfo-podinfo-canary_.+" }[1m] ) ) by (le) )"#
        );
    }

    /// `skipper_test.go`: namespace `skipper`, service `backend`, ingress
    /// `skipper-ingress`, whose `-` Flagger writes `_` before rendering.
    #[test]
    fn skipper_matches_flagger_wire_format() {
        let m = TemplateModel {
            namespace: "skipper".into(),
            service: "backend".into(),
            ingress: "skipper-ingress".into(),
            interval: "1m".into(),
            ..TemplateModel::default()
        };
        let wire = |metric: &str| {
            collapse_whitespace(
                &builtin_query(p("skipper"), metric)
                    .unwrap()
                    .render(&m)
                    .unwrap(),
            )
        };
        assert_eq!(
            wire("request-success-rate"),
            r#" sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_skipper__skipper_ingress_canary__.*__backend_canary(_[0-9]+)?",code!~"5..",le="+Inf"}[1m])) / sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_skipper__skipper_ingress_canary__.*__backend_canary(_[0-9]+)?",le="+Inf"}[1m])) * 100"#
        );
        assert_eq!(
            wire("request-duration"),
            r#" sum(rate(skipper_serve_route_duration_seconds_sum{route=~"kube(ew)?_skipper__skipper_ingress_canary__.*__backend_canary(_[0-9]+)?"}[1m])) / sum(rate(skipper_serve_route_duration_seconds_count{route=~"kube(ew)?_skipper__skipper_ingress_canary__.*__backend_canary(_[0-9]+)?"}[1m])) * 1000"#
        );
        // Only the Skipper observer rewrites the model; the interval and
        // the route are left as they are.
        let dotted = TemplateModel {
            namespace: "a.b".into(),
            interval: "1m30s".into(),
            ..m.clone()
        };
        let q = builtin_query(p("skipper"), "request-duration")
            .unwrap()
            .render(&dotted)
            .unwrap();
        assert!(q.contains("kube(ew)?_a_b__skipper_ingress_canary__"), "{q}");
        assert!(q.contains("[1m30s]"), "{q}");
        let nginx = builtin_query(p("nginx"), "request-duration")
            .unwrap()
            .render(&dotted)
            .unwrap();
        assert!(nginx.contains(r#"namespace="a.b""#), "{nginx}");
    }

    /// The strings `knative_test.go` (Flagger v1.44) expects on the wire:
    /// the route is the latest created revision, `podinfo-00001`, in
    /// `default`.
    #[test]
    fn knative_matches_flagger_wire_format() {
        let q = |metric: &str| {
            let mut m = model("default", "podinfo");
            m.route = "podinfo-00001".into();
            collapse_whitespace(
                &builtin_query(p("knative"), metric)
                    .unwrap()
                    .render(&m)
                    .unwrap(),
            )
        };
        assert_eq!(
            q("request-success-rate"),
            r#" sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default/podinfo-00001", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"default/podinfo-00001", }[1m] ) ) * 100"#
        );
        assert_eq!(
            q("request-duration"),
            r#" histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"default/podinfo-00001", }[1m] ) ) by (le) )"#
        );
    }

    #[test]
    fn provider_strings_map_like_flaggers_factory() {
        for (provider, observer) in [
            ("linkerd", Some("linkerd")),
            ("istio", Some("istio")),
            ("nginx", Some("nginx")),
            ("appmesh", Some("appmesh")),
            ("appmesh:v1beta2", Some("appmesh")),
            ("gloo", Some("gloo")),
            ("kubernetes", Some("http")),
            ("gatewayapi:v1", Some("http")),
            ("gatewayapi:v1beta1", Some("http")),
            ("knative", Some("knative")),
            ("skipper", Some("skipper")),
            ("smi:v1alpha3", None),
            ("", None),
            ("Istio", None),
        ] {
            assert_eq!(
                Provider::parse(provider).ok().and_then(Provider::observer),
                observer,
                "{provider:?}"
            );
        }
        assert_eq!(
            builtin_query(p("gatewayapi:v1"), "request-duration").map(|q| q.provider),
            Some("http")
        );
        assert!(builtin_query(p("istio"), "error-rate").is_none());
    }

    #[test]
    fn values_convert_like_flagger() {
        let http = builtin_query(p("kubernetes"), "request-duration").unwrap();
        assert_eq!(http.value_in_unit(0.2349), 234.0);
        let linkerd = builtin_query(p("linkerd"), "request-duration").unwrap();
        assert_eq!(linkerd.value_in_unit(499.99), 499.0);
        let rate = builtin_query(p("linkerd"), "request-success-rate").unwrap();
        assert_eq!(rate.value_in_unit(99.5), 99.5);
        assert_eq!(duration_threshold_ms(500.9), 500.0);
    }

    #[test]
    fn placeholders_are_flaggers() {
        use crate::queries::template::placeholders;
        for q in all() {
            for p in placeholders(q.template).unwrap() {
                assert!(
                    [
                        "namespace",
                        "target",
                        "service",
                        "ingress",
                        "route",
                        "interval"
                    ]
                    .contains(&p.as_str()),
                    "{} {}: {p}",
                    q.provider,
                    q.metric
                );
            }
        }
    }
}
