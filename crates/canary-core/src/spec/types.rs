//! Typed Flagger `flagger.app/v1beta1` documents.
//!
//! These structs mirror the OpenAPI schema of Flagger's CRDs (`Canary`,
//! `MetricTemplate`, `AlertProvider`) field for field, so that a typo is an
//! "unknown field" error rather than a silently ignored key. Every field is
//! optional at the serde level: required-ness, enums, ranges and durations
//! are checked by the validation pass, and Flagger's defaults are applied by
//! the resolver, so that every type error the loader meets is recoverable.
//!
//! Source of truth: `artifacts/flagger/crd.yaml` of fluxcd/flagger (the
//! schema the API server enforces and prunes against), cross-checked with
//! the Go types in `pkg/apis/flagger/v1beta1` and `pkg/apis/istio`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Known values
// ---------------------------------------------------------------------------

/// Webhook types Flagger accepts in `analysis.webhooks[].type` (CRD enum; an
/// empty or missing type means `rollout`).
pub const WEBHOOK_TYPES: &[&str] = &[
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-promotion",
    "post-rollout",
    "event",
    "rollback",
    "confirm-traffic-increase",
];

/// Alert providers Flagger accepts in an `AlertProvider`'s `spec.type` (CRD
/// enum).
pub const ALERT_PROVIDERS: &[&str] = &["slack", "msteams", "discord", "rocket", "gchat"];

/// Alert severities for `analysis.alerts[].severity` (an empty or missing
/// severity means `info`).
pub const ALERT_SEVERITIES: &[&str] = &["info", "warn", "error"];

/// Kinds `spec.targetRef.kind` may name.
pub const TARGET_KINDS: &[&str] = &["DaemonSet", "Deployment", "Service"];

/// Kinds `spec.autoscalerRef.kind` may name.
pub const AUTOSCALER_KINDS: &[&str] = &["HorizontalPodAutoscaler", "ScaledObject"];

/// Kinds `spec.ingressRef.kind` may name.
pub const INGRESS_KINDS: &[&str] = &["Ingress"];

/// Kinds `spec.routeRef.kind` may name.
pub const ROUTE_KINDS: &[&str] = &["ApisixRoute"];

/// Kinds `spec.upstreamRef.kind` may name.
pub const UPSTREAM_KINDS: &[&str] = &["Upstream"];

/// Values of `service.trafficDistribution` (Kubernetes Service field).
pub const TRAFFIC_DISTRIBUTIONS: &[&str] = &["PreferClose", "PreferSameZone", "PreferSameNode"];

/// Values of `analysis.sessionAffinity.sameSite`.
pub const SAME_SITE_VALUES: &[&str] = &["Strict", "Lax", "None"];

/// Metric names Flagger computes itself (for the mesh provider) when the
/// metric has no `templateRef`.
pub const BUILTIN_METRICS: &[&str] = &["request-success-rate", "request-duration"];

// ---------------------------------------------------------------------------
// IntOrString
// ---------------------------------------------------------------------------

/// Kubernetes `IntOrString`: a port number or a port name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    /// The number, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::String(_) => None,
        }
    }

    /// The name, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            IntOrString::Int(_) => None,
            IntOrString::String(s) => Some(s),
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => serializer.serialize_i64(*i),
            IntOrString::String(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntOrStringVisitor;

        impl Visitor<'_> for IntOrStringVisitor {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v))
            }
        }

        deserializer.deserialize_any(IntOrStringVisitor)
    }
}

// ---------------------------------------------------------------------------
// Kubernetes metadata
// ---------------------------------------------------------------------------

/// Kubernetes `ObjectMeta`, complete, so that `kubectl get -o yaml` output
/// loads. Flagger itself only reads name, namespace, labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Object name; the canary's name identifies it in events and webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Server-side name prefix (meaningless for a canary, kept for dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace; the target, services and routes live in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Server-set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Server-set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Server-set RFC 3339 timestamp (`null` in dry-run output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Server-set RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Server-set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Free-form: kept only so dumps load; never interpreted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<Value>,
    /// Free-form: server-side-apply bookkeeping, never interpreted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<Value>,
    /// Deprecated server-set link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
}

fn meta_name(meta: &Option<ObjectMeta>) -> &str {
    meta.as_ref().and_then(|m| m.name.as_deref()).unwrap_or("")
}

fn meta_namespace(meta: &Option<ObjectMeta>) -> &str {
    meta.as_ref()
        .and_then(|m| m.namespace.as_deref())
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
}

// ---------------------------------------------------------------------------
// Canary
// ---------------------------------------------------------------------------

/// A `Canary` document: how Flagger bootstraps, analyses, shifts traffic
/// to, promotes or rolls back a workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    /// Expected `flagger.app/v1beta1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Expected `Canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CanarySpec>,
    /// Free-form: written by Flagger (phase, weights, conditions); a dump's
    /// status is accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl Canary {
    /// `metadata.name`, or "" when absent.
    pub fn name(&self) -> &str {
        meta_name(&self.metadata)
    }

    /// `metadata.namespace`, or "default" when absent.
    pub fn namespace(&self) -> &str {
        meta_namespace(&self.metadata)
    }

    /// `metadata.namespace` when the document names one.
    pub fn explicit_namespace(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.namespace.as_deref())
            .filter(|ns| !ns.is_empty())
    }

    /// The analysis block (`analysis`, else the legacy `canaryAnalysis`).
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.spec.as_ref().and_then(CanarySpec::analysis)
    }
}

/// `Canary.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// Overrides Flagger's `-mesh-provider` flag for this canary; one of
    /// [`crate::provider::Provider`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Overrides Flagger's `-metrics-server` flag (Prometheus URL) used by
    /// the built-in metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The workload under release (Deployment, DaemonSet or Service);
    /// Flagger clones it into `<name>-primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalObjectReference>,
    /// HPA or KEDA ScaledObject that Flagger copies for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerReference>,
    /// NGINX Ingress Flagger clones into a canary ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<LocalObjectReference>,
    /// APISIX route Flagger clones for weighted routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<LocalObjectReference>,
    /// Gloo Upstream whose config Flagger copies into the upstreams it
    /// generates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<CrossNamespaceObjectReference>,
    /// How the ClusterIP services and mesh/ingress routing objects are
    /// generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<CanaryService>,
    /// The analysis: schedule, traffic steps, metrics, webhooks, alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
    /// Deprecated v1alpha3 name of `analysis`. Flagger's Go type still reads
    /// it, but the v1beta1 CRD no longer lists it (the API server prunes
    /// it); validation should ask for `analysis` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_analysis: Option<CanaryAnalysis>,
    /// Seconds the canary may go without progress before it is rolled back
    /// (Flagger default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Promote without running the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<bool>,
    /// On deletion of the canary, restore the target and routing objects
    /// Flagger mutated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_deletion: Option<bool>,
    /// Pause all canary runs (an analysis in progress waits until unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

impl CanarySpec {
    /// `analysis`, falling back to the legacy `canaryAnalysis`, as Flagger's
    /// `GetAnalysis` does.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.analysis.as_ref().or(self.canary_analysis.as_ref())
    }

    /// Name of the apex Kubernetes service: `service.name` when set, else
    /// `targetRef.name` (else "").
    pub fn apex_service_name(&self) -> &str {
        self.service
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .filter(|n| !n.is_empty())
            .or_else(|| self.target_ref.as_ref().and_then(|t| t.name.as_deref()))
            .unwrap_or("")
    }

    /// `<apex>-primary`, the service Flagger points at the primary pods.
    pub fn primary_service_name(&self) -> String {
        format!("{}-primary", self.apex_service_name())
    }

    /// `<apex>-canary`, the service Flagger points at the canary pods.
    pub fn canary_service_name(&self) -> String {
        format!("{}-canary", self.apex_service_name())
    }
}

/// Reference to an object in the canary's namespace (`targetRef`,
/// `ingressRef`, `routeRef`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Reference to an object, possibly in another namespace (`upstreamRef`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossNamespaceObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to the canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Name (and optional namespace) of a Flagger object: a metric's
/// `templateRef`, an alert's `providerRef`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to the canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.autoscalerRef`: the autoscaler Flagger duplicates for the primary.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalerReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `HorizontalPodAutoscaler` or `ScaledObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ScaledObject only: trigger name to the query the primary's scaler
    /// uses in place of the canary's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_scaler_queries: BTreeMap<String, String>,
    /// Replica bounds for the primary's autoscaler, overriding the copied
    /// ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// `autoscalerRef.primaryScalerReplicas`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalerReplicas {
    /// At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

/// `spec.service`: the apex/primary/canary ClusterIP services and the
/// mesh or ingress routing objects Flagger generates.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryService {
    /// Apex service name (Flagger default: `targetRef.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the generated services (required by the CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Port name of the generated services (Flagger default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Container port number or name (Flagger default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// `appProtocol` set on the generated service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Kubernetes `trafficDistribution` set on the generated services; one
    /// of [`TRAFFIC_DISTRIBUTIONS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// Add every other container port of the target to the services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_discovery: Option<bool>,
    /// Generate headless services (`clusterIP: None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<bool>,
    /// HTTP/gRPC request timeout set on the generated routes (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Gateway API only: backend request timeout on the HTTPRoute
    /// (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,
    /// App Mesh: mesh of the generated virtual nodes and service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    /// App Mesh: backends of the generated virtual nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// Hosts of the Istio VirtualService / Gateway API HTTPRoute (Flagger
    /// default: the apex service name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Istio: generate a delegate VirtualService (no hosts, no gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<bool>,
    /// Istio: request match conditions of the generated route.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "match")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Retry policy of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// URI / authority rewrite of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Gateway API: request mirror filters added to the HTTPRoute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<HttpRequestMirrorFilter>,
    /// Header operations of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Istio gateways the VirtualService binds to (Flagger default: `mesh`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Gateway API: parent Gateways the HTTPRoute attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<ParentReference>,
    /// Istio CORS policy of the generated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Istio traffic policy of the generated DestinationRules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Labels and annotations for the apex service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
    /// Labels and annotations for the primary service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    /// Labels and annotations for the canary service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
    /// Metadata keys on generated objects that Flagger leaves alone (set by
    /// other controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
}

/// Labels and annotations Flagger sets on a generated object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `service.unmanagedMetadata`: label and annotation keys Flagger does not
/// overwrite or remove.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnmanagedMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

// ---------------------------------------------------------------------------
// Istio routing types (typed: the CRD gives each of them a schema)
// ---------------------------------------------------------------------------

/// Istio string match; exactly one field should be set (checked by
/// validation). `suffix` is listed by the CRD for A/B header matches only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Istio `HTTPMatchRequest`, used by `service.match` and by the A/B
/// `analysis.match` (for which the CRD only lists `headers`, `queryParams`
/// and `sourceLabels`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// Name of the match, logged in access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header name (lowercase) to match; `cookie` matches the Cookie header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Destination port on the host being addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Source workload labels (only with the `mesh` gateway).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Source workload namespace (only with the `mesh` gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Gateways the match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive `exact`/`prefix` URI matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
}

/// `service.retries`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries for a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout per attempt (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Comma-separated Envoy retry conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// `service.rewrite`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Replacement path or matched prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replacement Authority/Host header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Gateway API rewrite kind for the path (e.g. `ReplacePrefixMatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// `service.headers`: request and response header operations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Header set / add / remove operations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append to these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `service.corsPolicy` (Istio).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Deprecated by Istio in favour of `allowOrigins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Preflight cache duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// `service.trafficPolicy`: copied into the primary and canary Istio
/// DestinationRules. Typed after the CRD, which lists only the fields
/// below (no `connectionPool.tcp`, no `portLevelSettings`: the API server
/// prunes those).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS settings for connections to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// `trafficPolicy.connectionPool` (the CRD lists only `http`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConnectionPoolSettings>,
}

/// `trafficPolicy.connectionPool.http`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnectionPoolSettings {
    /// `DEFAULT`, `DO_NOT_UPGRADE` or `UPGRADE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Idle timeout of pooled connections (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
}

/// `trafficPolicy.loadBalancer`: `simple` or `consistentHash`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// `ROUND_ROBIN`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH` or
    /// `LEAST_REQUEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Warm-up window of new endpoints (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<String>,
}

/// `loadBalancer.consistentHash`: one hash key source.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<i64>,
}

/// `consistentHash.httpCookie`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie lifetime (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `loadBalancer.localityLbSetting`: `distribute` or `failover`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityLbSetting {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
}

/// One `localityLbSetting.distribute` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityDistribute {
    /// Originating locality (`region/zone/subzone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Upstream locality to weight.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, i64>,
}

/// One `localityLbSetting.failover` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityFailover {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `trafficPolicy.outlierDetection`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Minimum ejection duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "consecutive5xxErrors"
    )]
    pub consecutive_5xx_errors: Option<i64>,
    /// Deprecated by Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<i32>,
    /// Ejection sweep interval (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
}

/// `trafficPolicy.tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Required with `MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Required with `MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI presented during the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

// ---------------------------------------------------------------------------
// Gateway API types
// ---------------------------------------------------------------------------

/// Gateway API `ParentReference`: a Gateway the HTTPRoute attaches to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentReference {
    /// CRD default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// CRD default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Defaults to the canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Listener name within the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port within the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// Gateway API `HTTPRequestMirrorFilter` (the CRD lists only `backendRef`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestMirrorFilter {
    /// Backend receiving the mirrored requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendObjectReference>,
}

/// Gateway API `BackendObjectReference`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendObjectReference {
    /// CRD default "" (core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// CRD default `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Required for a Service backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

// ---------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------

/// `spec.analysis`: how often and how long the canary is checked, how
/// traffic moves, and what is checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryAnalysis {
    /// Time between two checks (Flagger default 60s, minimum 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Failed checks tolerated before rollback (Flagger default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    /// Largest canary weight before promotion (progressive canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i64>,
    /// Weight added at each successful check (progressive canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<i64>,
    /// Explicit weight sequence, used instead of `stepWeight`/`maxWeight`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<i64>,
    /// Weight step when shifting traffic to the primary after promotion
    /// (default: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<i64>,
    /// Number of checks for A/B testing and Blue/Green (no weight steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i64>,
    /// Mirror traffic to the canary (Blue/Green, or before weights start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<bool>,
    /// Percentage of traffic mirrored, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<i64>,
    /// Percentage of primary pods that must be ready (Flagger default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready_threshold: Option<i64>,
    /// Percentage of canary pods that must be ready (Flagger default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_threshold: Option<i64>,
    /// A/B testing: requests matching any entry go to the canary.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "match")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Sticky sessions: once routed to the canary, a client stays there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Metric checks run at each interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CanaryMetric>,
    /// Webhooks called at the stages their type names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<CanaryWebhook>,
    /// Alerts sent through AlertProviders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<CanaryAlert>,
}

/// `analysis.sessionAffinity`: cookie Flagger sets so a client routed to
/// the canary keeps going there.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinity {
    /// Name of the canary affinity cookie (required by the CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
    /// Name of the cookie pinning clients to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Cookie lifetime in seconds (CRD default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// Cookie `Domain` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Cookie `HttpOnly` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// Cookie `Partitioned` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
    /// Cookie `Path` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie `SameSite` attribute; one of [`SAME_SITE_VALUES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// Cookie `Secure` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

impl SessionAffinity {
    /// The cookie's lifetime in seconds: `maxAge`, else the CRD's default
    /// of a day.
    pub fn max_age(&self) -> i64 {
        self.max_age.filter(|a| *a != 0).unwrap_or(86_400)
    }

    /// The `Set-Cookie` value giving a client `cookie` (`name=value`):
    /// `Max-Age`, then the attributes the spec sets.
    pub fn set_cookie(&self, cookie: &str) -> String {
        let mut out = format!("{cookie}; Max-Age={}", self.max_age());
        if let Some(d) = self.domain.as_deref().filter(|d| !d.is_empty()) {
            out.push_str(&format!("; Domain={d}"));
        }
        if let Some(p) = self.path.as_deref().filter(|p| !p.is_empty()) {
            out.push_str(&format!("; Path={p}"));
        }
        if let Some(s) = self.same_site.as_deref().filter(|s| !s.is_empty()) {
            out.push_str(&format!("; SameSite={s}"));
        }
        for (set, attr) in [
            (self.secure, "Secure"),
            (self.http_only, "HttpOnly"),
            (self.partitioned, "Partitioned"),
        ] {
            if set == Some(true) {
                out.push_str(&format!("; {attr}"));
            }
        }
        out
    }
}

/// One `analysis.metrics` entry: a query whose result must fall in range.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryMetric {
    /// Metric name; `request-success-rate` and `request-duration` are
    /// built in when there is no `templateRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Query window (Flagger default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Deprecated upper bound, replaced by `thresholdRange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Accepted range of the query result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<CanaryThresholdRange>,
    /// Deprecated inline Prometheus query, replaced by `templateRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// MetricTemplate holding the provider and query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<NamespacedObjectReference>,
    /// Values available to the template query as `{{ variables.<key> }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
}

impl CanaryMetric {
    /// Whether Flagger computes this metric itself: a built-in name and no
    /// `templateRef`.
    pub fn is_builtin(&self) -> bool {
        self.template_ref.is_none()
            && self
                .name
                .as_deref()
                .is_some_and(|n| BUILTIN_METRICS.contains(&n))
    }
}

/// `metrics[].thresholdRange`: the check fails outside `[min, max]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryThresholdRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// One `analysis.webhooks` entry: an HTTP POST Flagger sends at a stage of
/// the rollout; gating types block until it returns 200.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the hook runs; one of [`WEBHOOK_TYPES`] (default `rollout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries of a failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Send no alerts for failures of this hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_alert: Option<bool>,
    /// Skip TLS certificate verification for this hook.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "disableTLS"
    )]
    pub disable_tls: Option<bool>,
    /// Key-value pairs sent in the payload (e.g. the load tester's `cmd`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One `analysis.alerts` entry: events of this canary go to a provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryAlert {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Minimum severity sent; one of [`ALERT_SEVERITIES`] (default `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The AlertProvider to send through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<NamespacedObjectReference>,
}

// ---------------------------------------------------------------------------
// MetricTemplate
// ---------------------------------------------------------------------------

/// A `MetricTemplate` document: a metrics provider and a query template.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<MetricTemplateSpec>,
    /// Free-form: written by Flagger; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl MetricTemplate {
    /// `metadata.name`, or "" when absent.
    pub fn name(&self) -> &str {
        meta_name(&self.metadata)
    }

    /// `metadata.namespace`, or "default" when absent.
    pub fn namespace(&self) -> &str {
        meta_namespace(&self.metadata)
    }
}

/// `MetricTemplate.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<MetricTemplateProvider>,
    /// Go template rendered with `name`, `namespace`, `target`, `service`,
    /// `ingress`, `interval` and the metric's `variables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// `MetricTemplate.spec.provider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTemplateProvider {
    /// One of [`crate::provider::MetricProvider`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// API address of the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra HTTP headers sent with each query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Secret holding the provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Provider region (e.g. CloudWatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS certificate verification of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Reference to a Secret in the document's namespace.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// ---------------------------------------------------------------------------
// AlertProvider
// ---------------------------------------------------------------------------

/// An `AlertProvider` document: a chat service Flagger posts alerts to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<AlertProviderSpec>,
    /// Free-form: written by Flagger; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl AlertProvider {
    /// `metadata.name`, or "" when absent.
    pub fn name(&self) -> &str {
        meta_name(&self.metadata)
    }

    /// `metadata.namespace`, or "default" when absent.
    pub fn namespace(&self) -> &str {
        meta_namespace(&self.metadata)
    }
}

/// `AlertProvider.spec`; needs `address` or `secretRef`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertProviderSpec {
    /// One of [`ALERT_PROVIDERS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Channel to post to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Bot user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy for the calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret whose `address` (and optionally `proxy`, `token`) key holds
    /// the webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const PODINFO: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 10s
    maxWeight: 100
    stepWeight: 5
    threshold: 5
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
      - {name: request-duration, thresholdRange: {max: 500}, interval: 1m}
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.prod/
        timeout: 30s
        metadata: {type: bash, cmd: "curl -sd 'test' http://podinfo-canary.prod:9898/token | grep token"}
"#;

    fn canary(yaml: &str) -> Canary {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn linkerd_podinfo_canary_deserializes() {
        let c = canary(PODINFO);
        assert_eq!(c.api_version.as_deref(), Some("flagger.app/v1beta1"));
        assert_eq!(c.kind.as_deref(), Some("Canary"));
        assert_eq!(c.name(), "podinfo");
        assert_eq!(c.namespace(), "prod");
        let spec = c.spec.as_ref().unwrap();
        let target = spec.target_ref.as_ref().unwrap();
        assert_eq!(target.kind.as_deref(), Some("Deployment"));
        assert_eq!(target.name.as_deref(), Some("podinfo"));
        assert_eq!(spec.service.as_ref().unwrap().port, Some(9898));
        let a = c.analysis().unwrap();
        assert_eq!(a.interval.as_deref(), Some("10s"));
        assert_eq!(
            (a.max_weight, a.step_weight, a.threshold),
            (Some(100), Some(5), Some(5))
        );
        assert_eq!(a.metrics.len(), 2);
        assert!(a.metrics.iter().all(CanaryMetric::is_builtin));
        assert_eq!(
            a.metrics[0].threshold_range,
            Some(CanaryThresholdRange {
                min: Some(99.0),
                max: None
            })
        );
        assert_eq!(
            a.metrics[1].threshold_range.as_ref().unwrap().max,
            Some(500.0)
        );
        let hook = &a.webhooks[0];
        assert_eq!(hook.r#type.as_deref(), Some("pre-rollout"));
        assert_eq!(hook.timeout.as_deref(), Some("30s"));
        assert_eq!(hook.metadata["type"], "bash");
        assert!(hook.metadata["cmd"].starts_with("curl -sd"));
        assert_eq!(spec.apex_service_name(), "podinfo");
        assert_eq!(spec.primary_service_name(), "podinfo-primary");
        assert_eq!(spec.canary_service_name(), "podinfo-canary");
    }

    #[test]
    fn round_trips_through_yaml() {
        let c = canary(PODINFO);
        let text = serde_yaml::to_string(&c).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(canary(&text), c);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let typo = PODINFO.replace("stepWeight: 5", "stepWieght: 5");
        let err = serde_yaml::from_str::<Canary>(&typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `stepWieght`"), "{err}");
        assert!(err.contains("`stepWeight`"), "{err}");

        let top = format!("{PODINFO}extra: 1\n");
        let err = serde_yaml::from_str::<Canary>(&top)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn istio_service_and_ab_match_deserialize() {
        let c = canary(
            r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 80
    targetPort: 9898
    portName: http
    gateways: [public-gateway.istio-system.svc.cluster.local, mesh]
    hosts: [app.example.com]
    match:
      - uri: {prefix: /api}
        headers: {x-env: {exact: prod}}
        ignoreUriCase: true
    rewrite: {uri: /}
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure,refused-stream"}
    headers:
      request:
        add: {x-some-header: value}
      response:
        remove: [x-internal]
        set: {x-frame-options: DENY}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowCredentials: false
      allowHeaders: [x-some-header]
      maxAge: 24h
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
      connectionPool:
        http: {http1MaxPendingRequests: 100, maxRequestsPerConnection: 10, h2UpgradePolicy: UPGRADE}
      loadBalancer:
        consistentHash: {httpCookie: {name: user, ttl: 0s}}
      outlierDetection: {consecutive5xxErrors: 5, interval: 30s, baseEjectionTime: 1m}
  analysis:
    interval: 1m
    threshold: 10
    iterations: 10
    match:
      - headers:
          x-canary:
            exact: insider
      - headers:
          cookie:
            regex: "^(.*?;)?(canary=always)(;.*)?$"
    sessionAffinity: {cookieName: flagger-cookie, primaryCookieName: primary-cookie, maxAge: 21600}
"#,
        );
        let spec = c.spec.as_ref().unwrap();
        let svc = spec.service.as_ref().unwrap();
        assert_eq!(svc.target_port, Some(IntOrString::Int(9898)));
        assert_eq!(
            svc.r#match[0].uri.as_ref().unwrap().prefix.as_deref(),
            Some("/api")
        );
        assert_eq!(
            svc.r#match[0].headers["x-env"].exact.as_deref(),
            Some("prod")
        );
        assert_eq!(svc.retries.as_ref().unwrap().attempts, Some(3));
        let headers = svc.headers.as_ref().unwrap();
        assert_eq!(
            headers.request.as_ref().unwrap().add["x-some-header"],
            "value"
        );
        assert_eq!(headers.response.as_ref().unwrap().remove, ["x-internal"]);
        let cors = svc.cors_policy.as_ref().unwrap();
        assert_eq!(cors.allow_origins.len(), 2);
        assert_eq!(cors.allow_credentials, Some(false));
        let tp = svc.traffic_policy.as_ref().unwrap();
        assert_eq!(
            tp.tls.as_ref().unwrap().mode.as_deref(),
            Some("ISTIO_MUTUAL")
        );
        assert_eq!(
            tp.outlier_detection
                .as_ref()
                .unwrap()
                .consecutive_5xx_errors,
            Some(5)
        );
        let a = c.analysis().unwrap();
        assert_eq!(a.iterations, Some(10));
        assert_eq!(
            a.r#match[0].headers["x-canary"].exact.as_deref(),
            Some("insider")
        );
        assert_eq!(
            a.r#match[1].headers["cookie"].regex.as_deref(),
            Some("^(.*?;)?(canary=always)(;.*)?$")
        );
        let sa = a.session_affinity.as_ref().unwrap();
        assert_eq!(sa.primary_cookie_name.as_deref(), Some("primary-cookie"));
        assert_eq!(sa.max_age, Some(21600));

        let text = serde_yaml::to_string(&c).unwrap();
        assert!(text.contains("consecutive5xxErrors: 5"), "{text}");
        assert_eq!(canary(&text), c);
    }

    #[test]
    fn target_port_takes_a_number_or_a_name() {
        let by_name = canary("spec: {service: {port: 80, targetPort: http}}");
        let svc = by_name.spec.unwrap().service.unwrap();
        assert_eq!(svc.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(svc.target_port.as_ref().unwrap().as_str(), Some("http"));

        let by_number = canary("spec: {service: {port: 80, targetPort: 9898}}");
        let port = by_number
            .spec
            .unwrap()
            .service
            .unwrap()
            .target_port
            .unwrap();
        assert_eq!(port, IntOrString::Int(9898));
        assert_eq!(port.to_string(), "9898");

        let quoted = canary("spec: {service: {targetPort: \"9898\"}}");
        assert_eq!(
            quoted.spec.unwrap().service.unwrap().target_port,
            Some(IntOrString::String("9898".into()))
        );

        let err = serde_yaml::from_str::<Canary>("spec: {service: {targetPort: true}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an integer or a string"), "{err}");

        // Through serde_json::Value, as the loader does.
        let v = serde_json::json!({"spec": {"service": {"targetPort": 8080}}});
        let c: Canary = serde_json::from_value(v).unwrap();
        assert_eq!(
            c.spec.unwrap().service.unwrap().target_port,
            Some(IntOrString::Int(8080))
        );
        assert_eq!(serde_json::to_string(&IntOrString::Int(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&IntOrString::String("grpc".into())).unwrap(),
            "\"grpc\""
        );
    }

    #[test]
    fn kubectl_dump_loads() {
        let c = canary(
            r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
  creationTimestamp: "2024-01-01T00:00:00Z"
  generation: 3
  finalizers: [finalizer.flagger.app]
  labels: {app: podinfo}
  managedFields:
    - apiVersion: flagger.app/v1beta1
      fieldsType: FieldsV1
      fieldsV1: {f:spec: {}}
      manager: kubectl
      operation: Update
  name: podinfo
  namespace: test
  ownerReferences: [{apiVersion: v1, kind: Foo, name: bar, uid: x}]
  resourceVersion: "12345"
  uid: 0b4c5a1e-0000-0000-0000-000000000000
spec:
  targetRef: {apiVersion: apps/v1, kind: DaemonSet, name: podinfo}
  autoscalerRef:
    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    name: podinfo-so
    primaryScalerQueries: {prom-trigger: "sum(rate(x[1m]))"}
    primaryScalerReplicas: {minReplicas: 2, maxReplicas: 10}
  service:
    port: 9898
    gatewayRefs: [{name: gw, namespace: istio-ingress, sectionName: https}]
    mirror: [{backendRef: {name: shadow, port: 9898}}]
    apex: {annotations: {a: b}}
    unmanagedMetadata: {labels: [team]}
  skipAnalysis: false
  suspend: true
  analysis: {interval: 30s, threshold: 2, stepWeights: [1, 5, 25, 50]}
status:
  phase: Succeeded
  canaryWeight: 0
  conditions: [{type: Promoted, status: "True", reason: Succeeded}]
"#,
        );
        let meta = c.metadata.as_ref().unwrap();
        assert_eq!(meta.generation, Some(3));
        assert_eq!(meta.managed_fields.len(), 1);
        let spec = c.spec.as_ref().unwrap();
        let scaler = spec.autoscaler_ref.as_ref().unwrap();
        assert_eq!(scaler.primary_scaler_queries.len(), 1);
        assert_eq!(
            scaler
                .primary_scaler_replicas
                .as_ref()
                .unwrap()
                .min_replicas,
            Some(2)
        );
        let svc = spec.service.as_ref().unwrap();
        assert_eq!(svc.gateway_refs[0].section_name.as_deref(), Some("https"));
        assert_eq!(
            svc.mirror[0].backend_ref.as_ref().unwrap().name.as_deref(),
            Some("shadow")
        );
        assert_eq!(spec.suspend, Some(true));
        assert_eq!(c.analysis().unwrap().step_weights, [1, 5, 25, 50]);
        assert_eq!(c.status.as_ref().unwrap()["phase"], "Succeeded");
    }

    #[test]
    fn legacy_canary_analysis_and_fallbacks() {
        let c = canary("spec: {targetRef: {name: app}, canaryAnalysis: {interval: 1m}}");
        assert_eq!(c.analysis().unwrap().interval.as_deref(), Some("1m"));
        assert_eq!(c.name(), "");
        assert_eq!(c.namespace(), "default");

        let both = canary("spec: {analysis: {threshold: 1}, canaryAnalysis: {threshold: 2}}");
        assert_eq!(both.analysis().unwrap().threshold, Some(1));

        let named = canary("spec: {targetRef: {name: app}, service: {name: web}}");
        assert_eq!(named.spec.unwrap().primary_service_name(), "web-primary");
        assert!(Canary::default().analysis().is_none());
    }

    #[test]
    fn metric_template_and_alert_provider_deserialize() {
        let t: MetricTemplate = serde_yaml::from_str(
            r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: not-found-percentage, namespace: istio-system}
spec:
  provider:
    type: prometheus
    address: http://prometheus.istio-system:9090
    headers: {X-Scope-OrgID: [tenant-1]}
    secretRef: {name: prom-auth}
    insecureSkipVerify: true
  query: |
    100 - sum(rate(istio_requests_total{destination_workload="{{ target }}"}[{{ interval }}]))
"#,
        )
        .unwrap();
        assert_eq!(t.name(), "not-found-percentage");
        let p = t.spec.as_ref().unwrap().provider.as_ref().unwrap();
        assert_eq!(p.r#type.as_deref(), Some("prometheus"));
        assert_eq!(p.headers["X-Scope-OrgID"], ["tenant-1"]);
        assert!(crate::provider::MetricProvider::parse("prometheus").is_some());

        let a: AlertProvider = serde_yaml::from_str(
            r#"
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: on-call}
spec: {type: slack, channel: on-call-alerts, username: flagger, secretRef: {name: on-call-url}}
"#,
        )
        .unwrap();
        assert_eq!(a.namespace(), "default");
        let s = a.spec.as_ref().unwrap();
        assert_eq!(s.r#type.as_deref(), Some("slack"));
        assert_eq!(
            s.secret_ref.as_ref().unwrap().name.as_deref(),
            Some("on-call-url")
        );

        let err = serde_yaml::from_str::<AlertProvider>("spec: {type: slack, chanel: x}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `chanel`"), "{err}");
    }

    #[test]
    fn webhook_wire_names() {
        let c = canary(
            "spec: {analysis: {webhooks: [{name: gate, type: confirm-rollout, url: http://x/, \
             retries: 3, muteAlert: true, disableTLS: true}], \
             alerts: [{name: a, severity: warn, providerRef: {name: slack, namespace: flagger}}]}}",
        );
        let a = c.analysis().unwrap();
        let hook = &a.webhooks[0];
        assert_eq!(hook.disable_tls, Some(true));
        assert_eq!(hook.retries, Some(3));
        assert!(WEBHOOK_TYPES.contains(&hook.r#type.as_deref().unwrap()));
        assert_eq!(a.alerts[0].severity.as_deref(), Some("warn"));
        let json = serde_json::to_value(hook).unwrap();
        assert_eq!(json["disableTLS"], true);
        assert_eq!(json["type"], "confirm-rollout");

        let err =
            serde_yaml::from_str::<Canary>("spec: {analysis: {webhooks: [{disableTls: true}]}}")
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown field `disableTls`"), "{err}");
    }
}
