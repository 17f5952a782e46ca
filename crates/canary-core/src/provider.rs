//! Traffic providers and metric providers, parsed once, with one table of
//! what each can do.
//!
//! `spec.provider` (or `--mesh-provider`) is read into a [`Provider`] as
//! soon as a spec is resolved; nothing else in the product looks at the
//! string. Each provider has one row in [`Provider::capabilities`]: what
//! its router can express (weights, request matching, mirroring, session
//! affinity, as Flagger drives it) and whether this version of `canary`
//! drives it, for which targets and autoscalers. MetricTemplate providers
//! have the same kind of row in [`MetricProvider::driven`].
//!
//! `validate`, `plan` and `run` all read these rows through
//! [`crate::support`], so a spec that `run` cannot carry out is refused by
//! all three, before anything is written to a cluster.

use std::fmt;

use serde::{Serialize, Serializer};

/// An SMI TrafficSplit API version (`smi:v1alpha1` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SmiVersion {
    V1Alpha1,
    V1Alpha2,
    V1Alpha3,
}

impl SmiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SmiVersion::V1Alpha1 => "v1alpha1",
            SmiVersion::V1Alpha2 => "v1alpha2",
            SmiVersion::V1Alpha3 => "v1alpha3",
        }
    }
}

/// A Gateway API version (`gatewayapi:v1`, `gatewayapi:v1beta1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GatewayApiVersion {
    V1,
    V1Beta1,
}

impl GatewayApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayApiVersion::V1 => "v1",
            GatewayApiVersion::V1Beta1 => "v1beta1",
        }
    }
}

/// Which App Mesh API Flagger writes: `appmesh` (v1beta1) or
/// `appmesh:v1beta2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppMeshVersion {
    V1Beta1,
    V1Beta2,
}

/// A traffic provider, by Flagger's names (`spec.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// No router: the apex Service's selector is switched (blue/green).
    Kubernetes,
    Linkerd,
    Istio,
    Osm,
    Smi(SmiVersion),
    GatewayApi(GatewayApiVersion),
    Nginx,
    Contour,
    Gloo,
    Traefik,
    Kuma,
    Apisix,
    Skipper,
    Knative,
    AppMesh(AppMeshVersion),
}

/// What a provider's router can express, and what `canary run` drives
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Splits traffic between primary and canary by weight.
    pub weights: bool,
    /// Routes requests to the canary by HTTP header (A/B testing).
    pub header_match: bool,
    /// Routes requests to the canary by cookie (A/B testing).
    pub cookie_match: bool,
    /// Routes requests to the canary by the calling workload's labels.
    pub source_labels: bool,
    /// Copies live traffic to the canary (`analysis.mirror`).
    pub mirroring: bool,
    /// Keeps a client on the version it was sent to
    /// (`analysis.sessionAffinity`).
    pub session_affinity: bool,
    /// Routes a TCP service (`service.appProtocol: tcp`) as `canary run`
    /// drives it.
    pub tcp: bool,
    /// Target kinds `canary run` drives with this provider; empty when it
    /// does not drive the provider at all.
    pub targets: &'static [&'static str],
    /// Autoscaler kinds `canary run` copies for the primary.
    pub autoscalers: &'static [&'static str],
    /// Why `canary run` does not drive this provider; `None` when it does.
    pub not_driven: Option<&'static str>,
}

impl Capabilities {
    pub fn is_driven(&self) -> bool {
        self.not_driven.is_none()
    }
}

/// The parts of an `analysis.match` a router writes
/// ([`Provider::match_support`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchSupport {
    /// String match kinds of a header other than `cookie`.
    pub header_kinds: &'static [&'static str],
    /// String match kinds of the `cookie` header.
    pub cookie_kinds: &'static [&'static str],
    /// Whether `queryParams` are written.
    pub query_params: bool,
    /// At most one header and one cookie over all matches, each in a match
    /// of its own (the router cannot require both at once).
    pub one_header: bool,
    /// At most one header or cookie over all matches: the router repeats
    /// the route's path prefix in each header condition, and a route with
    /// more than one prefix is invalid.
    pub only_one: bool,
}

/// The targets and autoscalers `canary run` drives with every provider it
/// drives.
pub(crate) const DRIVEN_TARGETS: &[&str] = &["Deployment", "DaemonSet"];
/// The target of a Knative canary: a `serving.knative.dev/v1` Service.
const KNATIVE_TARGETS: &[&str] = &["Service"];
/// Targets with replicas, which an autoscaler can scale: a DaemonSet runs
/// one pod per node, so Flagger gives it no autoscaler.
pub const SCALABLE_TARGETS: &[&str] = &["Deployment"];
pub(crate) const DRIVEN_AUTOSCALERS: &[&str] = &["HorizontalPodAutoscaler", "ScaledObject"];
const NOT_YET: &str = "`canary run` does not drive its router yet";
/// Why App Mesh is not driven, and will not be.
const APP_MESH_ENDED: &str = "AWS ended support for App Mesh on 2026-09-30, so `canary run` does \
                              not drive it: its controller and Envoy images get no fixes; move the \
                              workload to a maintained mesh or to the Gateway API";

/// A router that can only split by weight (SMI TrafficSplit), driven.
const WEIGHTS_ONLY: Capabilities = Capabilities {
    weights: true,
    header_match: false,
    cookie_match: false,
    source_labels: false,
    mirroring: false,
    session_affinity: false,
    // An SMI TrafficSplit splits connections, whatever the protocol.
    tcp: true,
    targets: DRIVEN_TARGETS,
    autoscalers: DRIVEN_AUTOSCALERS,
    not_driven: None,
};

/// What Flagger's router for a provider does, not driven here yet.
const fn flagger(
    header_match: bool,
    cookie_match: bool,
    source_labels: bool,
    mirroring: bool,
    session_affinity: bool,
) -> Capabilities {
    Capabilities {
        weights: true,
        header_match,
        cookie_match,
        source_labels,
        mirroring,
        session_affinity,
        tcp: false,
        targets: &[],
        autoscalers: &[],
        not_driven: Some(NOT_YET),
    }
}

impl Provider {
    /// Every provider Flagger accepts, in the order its CRD lists them.
    pub const ALL: [Provider; 19] = [
        Provider::Apisix,
        Provider::AppMesh(AppMeshVersion::V1Beta1),
        Provider::AppMesh(AppMeshVersion::V1Beta2),
        Provider::Contour,
        Provider::GatewayApi(GatewayApiVersion::V1),
        Provider::GatewayApi(GatewayApiVersion::V1Beta1),
        Provider::Gloo,
        Provider::Istio,
        Provider::Knative,
        Provider::Kubernetes,
        Provider::Kuma,
        Provider::Linkerd,
        Provider::Nginx,
        Provider::Osm,
        Provider::Skipper,
        Provider::Smi(SmiVersion::V1Alpha1),
        Provider::Smi(SmiVersion::V1Alpha2),
        Provider::Smi(SmiVersion::V1Alpha3),
        Provider::Traefik,
    ];

    /// Flagger's spelling, as written in `spec.provider`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Kubernetes => "kubernetes",
            Provider::Linkerd => "linkerd",
            Provider::Istio => "istio",
            Provider::Osm => "osm",
            Provider::Smi(SmiVersion::V1Alpha1) => "smi:v1alpha1",
            Provider::Smi(SmiVersion::V1Alpha2) => "smi:v1alpha2",
            Provider::Smi(SmiVersion::V1Alpha3) => "smi:v1alpha3",
            Provider::GatewayApi(GatewayApiVersion::V1) => "gatewayapi:v1",
            Provider::GatewayApi(GatewayApiVersion::V1Beta1) => "gatewayapi:v1beta1",
            Provider::Nginx => "nginx",
            Provider::Contour => "contour",
            Provider::Gloo => "gloo",
            Provider::Traefik => "traefik",
            Provider::Kuma => "kuma",
            Provider::Apisix => "apisix",
            Provider::Skipper => "skipper",
            Provider::Knative => "knative",
            Provider::AppMesh(AppMeshVersion::V1Beta1) => "appmesh",
            Provider::AppMesh(AppMeshVersion::V1Beta2) => "appmesh:v1beta2",
        }
    }

    /// Every name Flagger accepts, for messages and suggestions.
    pub fn names() -> Vec<&'static str> {
        Provider::ALL.iter().map(|p| p.name()).collect()
    }

    /// Reads a provider by Flagger's name (its CRD's enum). As in
    /// Flagger's router and observer factories, any name starting with
    /// `gloo` is Gloo.
    pub fn parse(s: &str) -> Result<Provider, UnknownProvider> {
        let s = s.trim();
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .or_else(|| s.starts_with("gloo").then_some(Provider::Gloo))
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }

    /// The row of the capability table.
    pub fn capabilities(self) -> Capabilities {
        match self {
            Provider::Kubernetes => Capabilities {
                weights: false,
                ..WEIGHTS_ONLY
            },
            Provider::Linkerd | Provider::Osm | Provider::Smi(_) => WEIGHTS_ONLY,
            //                                 headers cookies labels mirror affinity
            // Driven: weights, matching (headers, cookies, source labels),
            // mirroring and session affinity (cookies set and matched on
            // the VirtualService); TCP routes not yet.
            Provider::Istio => Capabilities {
                header_match: true,
                cookie_match: true,
                source_labels: true,
                mirroring: true,
                session_affinity: true,
                tcp: false,
                ..WEIGHTS_ONLY
            },
            // Session affinity: cookies set by response header filters
            // and matched by the HTTPRoute's rules, as Flagger writes them.
            Provider::GatewayApi(_) => Capabilities {
                header_match: true,
                cookie_match: true,
                mirroring: true,
                session_affinity: true,
                tcp: false,
                ..WEIGHTS_ONLY
            },
            Provider::Nginx => Capabilities {
                header_match: true,
                cookie_match: true,
                tcp: false,
                ..WEIGHTS_ONLY
            },
            // Weights and A/B matching by one header or the Cookie header
            // (HTTPProxy header conditions); no mirroring nor session
            // affinity in Flagger's Contour router.
            Provider::Contour => Capabilities {
                header_match: true,
                cookie_match: true,
                tcp: false,
                ..WEIGHTS_ONLY
            },
            // Weights, and A/B matching by headers (the Cookie header
            // included) on the RouteTable's one route; no mirroring nor
            // session affinity in Flagger's Gloo router.
            Provider::Gloo => Capabilities {
                header_match: true,
                cookie_match: true,
                tcp: false,
                ..WEIGHTS_ONLY
            },
            Provider::AppMesh(_) => Capabilities {
                not_driven: Some(APP_MESH_ENDED),
                ..flagger(true, true, false, false, false)
            },
            // Flagger's Kuma and APISIX routers write weights only, and a
            // TraefikService splits by weight only (Flagger's Traefik
            // router has no A/B testing nor mirroring).
            Provider::Kuma | Provider::Apisix | Provider::Traefik => Capabilities {
                tcp: false,
                ..WEIGHTS_ONLY
            },
            // Flagger's Skipper router writes backend weights only.
            Provider::Skipper => Capabilities {
                tcp: false,
                ..WEIGHTS_ONLY
            },
            // The Knative Service is the target and the router: its
            // revisions split the traffic by percent, nothing else; Knative
            // scales the revisions itself.
            Provider::Knative => Capabilities {
                tcp: false,
                targets: KNATIVE_TARGETS,
                autoscalers: &[],
                ..WEIGHTS_ONLY
            },
        }
    }

    /// Whether the provider's product has reached its end of support, so
    /// `validate` accepts a Canary for it (the spec is valid Flagger) with
    /// a warning saying why it is not driven, while `run` and `plan`
    /// refuse it.
    pub fn retired(self) -> bool {
        matches!(self, Provider::AppMesh(_))
    }

    /// Whether the router copies only a share of the requests while
    /// mirroring (`analysis.mirrorWeight`). Flagger writes the share on
    /// Istio's VirtualService only; the Gateway API mirror filter it writes
    /// copies every request.
    pub fn mirrors_a_share(self) -> bool {
        self == Provider::Istio
    }

    /// What the router writes of an `analysis.match`, when it writes less
    /// than all of it; `None` when it takes every field. A match the
    /// router would write only in part is refused up front (see
    /// [`crate::support`]): a part dropped silently changes which requests
    /// reach the canary.
    pub fn match_support(self) -> Option<MatchSupport> {
        match self {
            // Flagger's Gateway API router maps `exact` and `regex` only
            // (any other kind makes it drop the whole match, sending every
            // request to the canary), and keeps only the headers and query
            // parameters of an A/B match.
            Provider::GatewayApi(_) => Some(MatchSupport {
                header_kinds: &["exact", "regex"],
                cookie_kinds: &["exact", "regex"],
                query_params: true,
                one_header: false,
                only_one: false,
            }),
            // Its NGINX router writes one `canary-by-header` (with its
            // `exact` value or `regex` pattern) and one `canary-by-cookie`
            // (the cookie's name, from `exact`), which ingress-nginx tries
            // one after the other.
            Provider::Nginx => Some(MatchSupport {
                header_kinds: &["exact", "regex"],
                cookie_kinds: &["exact"],
                query_params: false,
                one_header: true,
                only_one: false,
            }),
            // Its Contour router turns each header of the match into a
            // condition of one route (`exact`; `prefix` and `suffix` become
            // a looser `contains`, regular expressions are dropped), each
            // with the route's path prefix: Contour takes one such
            // condition only, and only the exact kind matches as asked.
            Provider::Contour => Some(MatchSupport {
                header_kinds: &["exact"],
                cookie_kinds: &["exact"],
                query_params: false,
                one_header: false,
                only_one: true,
            }),
            // Its Gloo router puts the headers of every match into the one
            // matcher of its route, `exact` as a value and `regex` as a
            // regular expression (`prefix` and `suffix` become a bare
            // presence test); several matches would be required all at
            // once instead of any one, so one header or cookie is taken.
            Provider::Gloo => Some(MatchSupport {
                header_kinds: &["exact", "regex"],
                cookie_kinds: &["exact", "regex"],
                query_params: false,
                one_header: false,
                only_one: true,
            }),
            _ => None,
        }
    }

    /// Whether a traffic router takes part (the `kubernetes` provider only
    /// switches the apex Service's selector).
    pub fn routes_traffic(self) -> bool {
        self != Provider::Kubernetes
    }

    /// The observer whose built-in queries Flagger runs for this provider
    /// (`pkg/metrics/observers/factory.go`), when there are queries for it
    /// here: `smi:*` have none (see `queries::builtin`).
    pub fn observer(self) -> Option<&'static str> {
        match self {
            Provider::Linkerd => Some("linkerd"),
            Provider::Istio => Some("istio"),
            Provider::Osm => Some("osm"),
            Provider::Kubernetes | Provider::GatewayApi(_) => Some("http"),
            Provider::Nginx => Some("nginx"),
            Provider::Contour => Some("contour"),
            Provider::Gloo => Some("gloo"),
            Provider::Traefik => Some("traefik"),
            Provider::Kuma => Some("kuma"),
            Provider::Apisix => Some("apisix"),
            Provider::Knative => Some("knative"),
            Provider::AppMesh(_) => Some("appmesh"),
            Provider::Skipper => Some("skipper"),
            Provider::Smi(_) => None,
        }
    }

    /// The Prometheus the built-in metrics are read from when neither the
    /// spec nor the command line names one (where the mesh installs it).
    pub fn default_metrics_server(self) -> Option<&'static str> {
        match self.observer()? {
            "linkerd" => Some("http://prometheus.linkerd-viz:9090"),
            "istio" => Some("http://prometheus.istio-system:9090"),
            _ => None,
        }
    }

    /// The providers `canary run` drives, for messages.
    pub fn driven() -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .filter(|p| p.capabilities().is_driven())
            .collect()
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::str::FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::parse(s)
    }
}

/// A provider name Flagger does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider(pub String);

impl fmt::Display for UnknownProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = Provider::names();
        match crate::suggest::did_you_mean(&self.0, names.iter().copied()) {
            Some(s) => write!(f, "unknown provider `{}`; did you mean `{s}`?", self.0),
            None => write!(
                f,
                "unknown provider `{}`; known providers: {}",
                self.0,
                names.join(", ")
            ),
        }
    }
}

impl std::error::Error for UnknownProvider {}

/// A MetricTemplate's `spec.provider.type`, by Flagger's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricProvider {
    Prometheus,
    Influxdb,
    Datadog,
    ExternalMetrics,
    Stackdriver,
    Cloudwatch,
    Newrelic,
    Graphite,
    Dynatrace,
    Keptn,
    Splunk,
}

impl MetricProvider {
    /// Every type Flagger accepts, in the order its CRD lists them.
    pub const ALL: [MetricProvider; 11] = [
        MetricProvider::Prometheus,
        MetricProvider::Influxdb,
        MetricProvider::Datadog,
        MetricProvider::ExternalMetrics,
        MetricProvider::Stackdriver,
        MetricProvider::Cloudwatch,
        MetricProvider::Newrelic,
        MetricProvider::Graphite,
        MetricProvider::Dynatrace,
        MetricProvider::Keptn,
        MetricProvider::Splunk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetricProvider::Prometheus => "prometheus",
            MetricProvider::Influxdb => "influxdb",
            MetricProvider::Datadog => "datadog",
            MetricProvider::ExternalMetrics => "externalmetrics",
            MetricProvider::Stackdriver => "stackdriver",
            MetricProvider::Cloudwatch => "cloudwatch",
            MetricProvider::Newrelic => "newrelic",
            MetricProvider::Graphite => "graphite",
            MetricProvider::Dynatrace => "dynatrace",
            MetricProvider::Keptn => "keptn",
            MetricProvider::Splunk => "splunk",
        }
    }

    pub fn names() -> Vec<&'static str> {
        MetricProvider::ALL.iter().map(|p| p.name()).collect()
    }

    pub fn parse(s: &str) -> Option<MetricProvider> {
        MetricProvider::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
    }

    /// How many metric intervals Flagger's query looks back over: Datadog,
    /// Dynatrace, CloudWatch and Splunk ask for the last ten, the others
    /// for one (the query's own range).
    pub fn lookback_intervals(self) -> u32 {
        match self {
            MetricProvider::Datadog
            | MetricProvider::Dynatrace
            | MetricProvider::Cloudwatch
            | MetricProvider::Splunk => 10,
            _ => 1,
        }
    }

    /// The address Flagger queries when the template sets none.
    pub fn default_address(self) -> Option<&'static str> {
        match self {
            MetricProvider::Datadog => Some("https://api.datadoghq.com"),
            MetricProvider::Newrelic => Some("https://insights-api.newrelic.com"),
            _ => None,
        }
    }

    /// Whether Flagger refuses a template of this provider without an
    /// `address` (Prometheus falls back to the canary's metrics server).
    pub fn needs_address(self) -> bool {
        matches!(
            self,
            MetricProvider::Graphite
                | MetricProvider::Dynatrace
                | MetricProvider::Influxdb
                | MetricProvider::Splunk
        )
    }

    /// The keys Flagger reads from the template's `secretRef` Secret, all
    /// required when it reads any; `secret_required` says whether the
    /// template must have a `secretRef` at all. Prometheus' alternatives
    /// (`token`, or `username` and `password`) are checked apart.
    pub fn secret_keys(self) -> (&'static [&'static str], bool) {
        match self {
            MetricProvider::Datadog => (&["datadog_api_key", "datadog_application_key"], true),
            MetricProvider::Newrelic => (&["newrelic_account_id", "newrelic_query_key"], true),
            MetricProvider::Dynatrace => (&["dynatrace_token"], true),
            MetricProvider::Splunk => (&["sf_token_key"], true),
            MetricProvider::Graphite => (&["username", "password"], false),
            MetricProvider::Influxdb => (&["token", "org"], false),
            // `serviceAccountKey` is optional: without it, the application
            // default credentials.
            MetricProvider::Stackdriver => (&["project"], false),
            _ => (&[], false),
        }
    }
}

impl fmt::Display for MetricProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_provider() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.name()), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        let mut names = Provider::names();
        names.dedup();
        assert_eq!(names.len(), Provider::ALL.len());
        // Flagger's factories take any name starting with `gloo`.
        assert_eq!(Provider::parse("gloo-edge"), Ok(Provider::Gloo));
        assert!(Provider::parse("glo").is_err());
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let e = Provider::parse("linkerdd").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown provider `linkerdd`; did you mean `linkerd`?"
        );
        let e = Provider::parse("envoy-gateway").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown provider `envoy-gateway`; known providers: apisix, appmesh"),
            "{e}"
        );
    }

    #[test]
    fn only_routers_canary_drives_are_marked_driven() {
        let driven: Vec<&str> = Provider::driven().iter().map(|p| p.name()).collect();
        assert_eq!(
            driven,
            [
                "apisix",
                "contour",
                "gatewayapi:v1",
                "gatewayapi:v1beta1",
                "gloo",
                "istio",
                "knative",
                "kubernetes",
                "kuma",
                "linkerd",
                "nginx",
                "osm",
                "skipper",
                "smi:v1alpha1",
                "smi:v1alpha2",
                "smi:v1alpha3",
                "traefik"
            ]
        );
        for p in Provider::ALL {
            let c = p.capabilities();
            assert_eq!(c.is_driven(), !c.targets.is_empty(), "{p}");
        }
    }

    #[test]
    fn app_mesh_is_retired_and_says_why() {
        for p in [
            Provider::AppMesh(AppMeshVersion::V1Beta1),
            Provider::AppMesh(AppMeshVersion::V1Beta2),
        ] {
            assert!(p.retired());
            let why = p.capabilities().not_driven.unwrap();
            assert!(
                why.contains("AWS ended support for App Mesh on 2026-09-30"),
                "{why}"
            );
        }
        assert_eq!(
            Provider::ALL.iter().filter(|p| p.retired()).count(),
            2,
            "only App Mesh is retired"
        );
    }

    #[test]
    fn a_traffic_split_can_only_split_by_weight() {
        let c = Provider::Linkerd.capabilities();
        assert!(c.weights);
        assert!(!c.header_match && !c.cookie_match && !c.mirroring && !c.session_affinity);
        assert!(!Provider::Kubernetes.capabilities().weights);
    }

    #[test]
    fn every_metric_provider_name_parses_back() {
        assert_eq!(MetricProvider::ALL.len(), 11);
        for m in MetricProvider::ALL {
            assert_eq!(MetricProvider::parse(m.name()), Some(m));
        }
    }
}
