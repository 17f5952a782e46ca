//! The resource kinds the simulated API server serves: discovery data (names,
//! short names, verbs, scope, versions, subresources) as a real 1.32 server
//! and the real CRDs report them, plus the per-kind server behaviour that the
//! store applies on every write (defaults, typed decoding, validation).
//!
//! Custom resources (SMI, Gateway API, Istio, Flagger) are only served when
//! their CRD group is "installed" in [`CrdGroups`], exactly like a cluster
//! where the CRDs were or were not applied.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Which optional CRD groups the simulated cluster has installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrdGroups {
    /// `split.smi-spec.io` TrafficSplit (v1alpha1, v1alpha2, v1alpha3).
    pub smi: bool,
    /// `gateway.networking.k8s.io` HTTPRoute (v1, v1beta1).
    pub gateway_api: bool,
    /// `networking.istio.io` VirtualService and DestinationRule.
    pub istio: bool,
    /// `flagger.app` Canary, MetricTemplate, AlertProvider: an in-cluster
    /// Flagger. Off by default.
    pub flagger: bool,
    /// `keda.sh` ScaledObject: KEDA's autoscaler.
    pub keda: bool,
    /// `kuma.io` TrafficRoute (cluster-scoped, as Kuma installs it). Off
    /// by default.
    pub kuma: bool,
    /// `apisix.apache.org` ApisixRoute (v2). Off by default.
    pub apisix: bool,
    /// `projectcontour.io` HTTPProxy: Contour. Off by default.
    pub contour: bool,
    /// `traefik.io` IngressRoute and TraefikService: Traefik. Off by
    /// default.
    pub traefik: bool,
    /// `gateway.solo.io` VirtualService and RouteTable, `gloo.solo.io`
    /// Upstream: Gloo Edge. Off by default.
    pub gloo: bool,
    /// `metrics.keptn.sh` KeptnMetric, Analysis and what an Analysis reads:
    /// Keptn's metrics operator (see [`crate::providers::keptn`]).
    pub keptn: bool,
    /// `serving.knative.dev` Service and Revision: Knative Serving, whose
    /// controller makes a Revision for each template and routes the
    /// Service's host between them (see [`crate::controller`]). Off by
    /// default.
    pub knative: bool,
}

impl Default for CrdGroups {
    fn default() -> Self {
        Self {
            smi: true,
            gateway_api: true,
            istio: true,
            flagger: false,
            keda: true,
            kuma: false,
            apisix: false,
            contour: false,
            traefik: false,
            gloo: false,
            keptn: true,
            knative: false,
        }
    }
}

/// An optional CRD group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdGroup {
    Smi,
    GatewayApi,
    Istio,
    Flagger,
    Keda,
    Kuma,
    Apisix,
    Contour,
    Traefik,
    Gloo,
    Keptn,
    Knative,
}

/// One served resource.
#[derive(Debug)]
pub struct KindInfo {
    /// API group, "" for the core group.
    pub group: &'static str,
    /// Served versions, most preferred first.
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub status_subresource: bool,
    pub scale_subresource: bool,
    /// `Some` for custom resources: served only when the group is installed.
    pub crd: Option<CrdGroup>,
    /// Whether the server maintains `metadata.generation`.
    pub has_generation: bool,
    /// A PUT of a missing object creates it (Events, Leases).
    pub create_on_update: bool,
    /// DELETE answers with the object rather than a `Status` (Pods, Services).
    pub returns_deleted_object: bool,
    /// Writes are refused with 403, as for a user without RBAC on it (CRDs).
    pub read_only: bool,
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NO_COLLECTION_DELETE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

macro_rules! kind {
    ($group:expr, $versions:expr, $kind:expr, $plural:expr, $singular:expr) => {
        KindInfo {
            group: $group,
            versions: $versions,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[],
            categories: &[],
            namespaced: true,
            verbs: ALL_VERBS,
            status_subresource: false,
            scale_subresource: false,
            crd: None,
            has_generation: false,
            create_on_update: false,
            returns_deleted_object: false,
            read_only: false,
        }
    };
}

/// Every kind the sim knows, in discovery order.
pub static ALL_KINDS: &[KindInfo] = &[
    KindInfo {
        namespaced: false,
        short_names: &["ns"],
        verbs: NO_COLLECTION_DELETE,
        status_subresource: true,
        returns_deleted_object: true,
        ..kind!("", &["v1"], "Namespace", "namespaces", "namespace")
    },
    KindInfo {
        short_names: &["svc"],
        categories: &["all"],
        verbs: NO_COLLECTION_DELETE,
        status_subresource: true,
        returns_deleted_object: true,
        ..kind!("", &["v1"], "Service", "services", "service")
    },
    KindInfo {
        short_names: &["cm"],
        ..kind!("", &["v1"], "ConfigMap", "configmaps", "configmap")
    },
    kind!("", &["v1"], "Secret", "secrets", "secret"),
    KindInfo {
        short_names: &["sa"],
        ..kind!(
            "",
            &["v1"],
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount"
        )
    },
    KindInfo {
        short_names: &["ev"],
        create_on_update: true,
        ..kind!("", &["v1"], "Event", "events", "event")
    },
    KindInfo {
        short_names: &["po"],
        categories: &["all"],
        status_subresource: true,
        returns_deleted_object: true,
        ..kind!("", &["v1"], "Pod", "pods", "pod")
    },
    KindInfo {
        short_names: &["deploy"],
        categories: &["all"],
        status_subresource: true,
        scale_subresource: true,
        has_generation: true,
        ..kind!("apps", &["v1"], "Deployment", "deployments", "deployment")
    },
    KindInfo {
        short_names: &["rs"],
        categories: &["all"],
        status_subresource: true,
        scale_subresource: true,
        has_generation: true,
        ..kind!("apps", &["v1"], "ReplicaSet", "replicasets", "replicaset")
    },
    KindInfo {
        short_names: &["ds"],
        categories: &["all"],
        status_subresource: true,
        has_generation: true,
        ..kind!("apps", &["v1"], "DaemonSet", "daemonsets", "daemonset")
    },
    KindInfo {
        create_on_update: true,
        ..kind!("events.k8s.io", &["v1"], "Event", "events", "event")
    },
    KindInfo {
        short_names: &["hpa"],
        categories: &["all"],
        status_subresource: true,
        ..kind!(
            "autoscaling",
            &["v2"],
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler"
        )
    },
    KindInfo {
        create_on_update: true,
        ..kind!("coordination.k8s.io", &["v1"], "Lease", "leases", "lease")
    },
    KindInfo {
        short_names: &["ing"],
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "networking.k8s.io",
            &["v1"],
            "Ingress",
            "ingresses",
            "ingress"
        )
    },
    KindInfo {
        namespaced: false,
        has_generation: true,
        ..kind!(
            "networking.k8s.io",
            &["v1"],
            "IngressClass",
            "ingressclasses",
            "ingressclass"
        )
    },
    KindInfo {
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status_subresource: true,
        has_generation: true,
        read_only: true,
        ..kind!(
            "apiextensions.k8s.io",
            &["v1"],
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition"
        )
    },
    KindInfo {
        short_names: &["ts"],
        crd: Some(CrdGroup::Smi),
        has_generation: true,
        ..kind!(
            "split.smi-spec.io",
            &["v1alpha3", "v1alpha2", "v1alpha1"],
            "TrafficSplit",
            "trafficsplits",
            "trafficsplit"
        )
    },
    KindInfo {
        categories: &["gateway-api"],
        crd: Some(CrdGroup::GatewayApi),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "gateway.networking.k8s.io",
            &["v1", "v1beta1"],
            "HTTPRoute",
            "httproutes",
            "httproute"
        )
    },
    KindInfo {
        short_names: &["vs"],
        categories: &["istio-io", "networking-istio-io"],
        crd: Some(CrdGroup::Istio),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "networking.istio.io",
            &["v1", "v1beta1", "v1alpha3"],
            "VirtualService",
            "virtualservices",
            "virtualservice"
        )
    },
    KindInfo {
        short_names: &["dr"],
        categories: &["istio-io", "networking-istio-io"],
        crd: Some(CrdGroup::Istio),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "networking.istio.io",
            &["v1", "v1beta1", "v1alpha3"],
            "DestinationRule",
            "destinationrules",
            "destinationrule"
        )
    },
    KindInfo {
        short_names: &["kservice", "ksvc"],
        categories: &["all", "knative", "serving"],
        crd: Some(CrdGroup::Knative),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "serving.knative.dev",
            &["v1"],
            "Service",
            "services",
            "service"
        )
    },
    KindInfo {
        short_names: &["rev"],
        categories: &["all", "knative", "serving"],
        crd: Some(CrdGroup::Knative),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "serving.knative.dev",
            &["v1"],
            "Revision",
            "revisions",
            "revision"
        )
    },
    KindInfo {
        short_names: &["proxy", "proxies"],
        crd: Some(CrdGroup::Contour),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "projectcontour.io",
            &["v1"],
            "HTTPProxy",
            "httpproxies",
            "httpproxy"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Traefik),
        has_generation: true,
        ..kind!(
            "traefik.io",
            &["v1alpha1"],
            "IngressRoute",
            "ingressroutes",
            "ingressroute"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Traefik),
        has_generation: true,
        ..kind!(
            "traefik.io",
            &["v1alpha1"],
            "TraefikService",
            "traefikservices",
            "traefikservice"
        )
    },
    // Gloo Edge's VirtualService is served without Istio's `vs` short
    // name, which the simulated cluster gives Istio's.
    KindInfo {
        crd: Some(CrdGroup::Gloo),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "gateway.solo.io",
            &["v1"],
            "VirtualService",
            "virtualservices",
            "virtualservice"
        )
    },
    KindInfo {
        short_names: &["rt"],
        crd: Some(CrdGroup::Gloo),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "gateway.solo.io",
            &["v1"],
            "RouteTable",
            "routetables",
            "routetable"
        )
    },
    KindInfo {
        short_names: &["us"],
        crd: Some(CrdGroup::Gloo),
        status_subresource: true,
        has_generation: true,
        ..kind!("gloo.solo.io", &["v1"], "Upstream", "upstreams", "upstream")
    },
    KindInfo {
        categories: &["all"],
        crd: Some(CrdGroup::Flagger),
        status_subresource: true,
        has_generation: true,
        ..kind!("flagger.app", &["v1beta1"], "Canary", "canaries", "canary")
    },
    KindInfo {
        crd: Some(CrdGroup::Flagger),
        has_generation: true,
        ..kind!(
            "flagger.app",
            &["v1beta1"],
            "MetricTemplate",
            "metrictemplates",
            "metrictemplate"
        )
    },
    KindInfo {
        short_names: &["so"],
        categories: &["keda", "all"],
        crd: Some(CrdGroup::Keda),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "keda.sh",
            &["v1alpha1"],
            "ScaledObject",
            "scaledobjects",
            "scaledobject"
        )
    },
    KindInfo {
        short_names: &["ar"],
        categories: &["apisix-ingress-controller"],
        crd: Some(CrdGroup::Apisix),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "apisix.apache.org",
            &["v2"],
            "ApisixRoute",
            "apisixroutes",
            "apisixroute"
        )
    },
    KindInfo {
        categories: &["kuma"],
        namespaced: false,
        crd: Some(CrdGroup::Kuma),
        has_generation: true,
        ..kind!(
            "kuma.io",
            &["v1alpha1"],
            "TrafficRoute",
            "trafficroutes",
            "trafficroute"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Flagger),
        has_generation: true,
        ..kind!(
            "flagger.app",
            &["v1beta1"],
            "AlertProvider",
            "alertproviders",
            "alertprovider"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Keptn),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "metrics.keptn.sh",
            &["v1beta1"],
            "KeptnMetricsProvider",
            "keptnmetricsproviders",
            "keptnmetricsprovider"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Keptn),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "metrics.keptn.sh",
            &["v1beta1"],
            "KeptnMetric",
            "keptnmetrics",
            "keptnmetric"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Keptn),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "metrics.keptn.sh",
            &["v1beta1"],
            "AnalysisValueTemplate",
            "analysisvaluetemplates",
            "analysisvaluetemplate"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Keptn),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "metrics.keptn.sh",
            &["v1beta1"],
            "AnalysisDefinition",
            "analysisdefinitions",
            "analysisdefinition"
        )
    },
    KindInfo {
        crd: Some(CrdGroup::Keptn),
        status_subresource: true,
        has_generation: true,
        ..kind!(
            "metrics.keptn.sh",
            &["v1beta1"],
            "Analysis",
            "analyses",
            "analysis"
        )
    },
];

impl KindInfo {
    /// The preferred (and storage) version.
    pub fn preferred_version(&self) -> &'static str {
        self.versions[0]
    }

    /// `apps/v1`, `v1`: the apiVersion of the preferred version.
    pub fn api_version(&self) -> String {
        group_version(self.group, self.preferred_version())
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }

    /// `deployments.apps`, `services`: how error messages name the resource.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, `Service`: how validation errors name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }
}

/// `group/version`, or just `version` for the core group.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The kind whose storage a kind shares: `events.k8s.io/v1` Events are the
/// core `v1` Events seen through another schema, as on a real server.
pub fn storage_kind(k: &'static KindInfo) -> &'static KindInfo {
    if (k.group, k.kind) == ("events.k8s.io", "Event") {
        ALL_KINDS
            .iter()
            .find(|x| x.group.is_empty() && x.kind == "Event")
            .expect("core events")
    } else {
        k
    }
}

/// Whether two kinds are stored together.
pub fn same_storage(a: &'static KindInfo, b: &'static KindInfo) -> bool {
    std::ptr::eq(storage_kind(a), storage_kind(b))
}

const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename_fields(mut obj: Value, from_new: bool, api_version: &str) -> Value {
    if let Some(m) = obj.as_object_mut() {
        for (new, core) in EVENT_FIELDS {
            let (from, to) = if from_new { (new, core) } else { (core, new) };
            if let Some(v) = m.remove(*from) {
                m.insert(to.to_string(), v);
            }
        }
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!("Event"));
    }
    obj
}

/// An `events.k8s.io/v1` Event in its stored (core `v1`) form.
pub fn event_to_core(obj: Value) -> Value {
    rename_fields(obj, true, "v1")
}

/// A stored (core `v1`) Event as `events.k8s.io/v1`.
pub fn event_from_core(obj: Value) -> Value {
    rename_fields(obj, false, "events.k8s.io/v1")
}

/// What the real server requires of an `events.k8s.io/v1` Event.
pub fn validate_new_event(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if obj["eventTime"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("eventTime", ""));
    }
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        match obj[f].as_str() {
            None | Some("") => errs.push(FieldError::required(f, "")),
            Some(v) if v.len() > 128 && f != "reportingController" => errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: f.into(),
                message: "Too long: may not be more than 128 bytes".into(),
            }),
            _ => {}
        }
    }
    if let Some(t) = obj["type"].as_str()
        && t != "Normal"
        && t != "Warning"
    {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "type".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"Normal\", \"Warning\"",
                go_quote(t)
            ),
        });
    }
    errs
}

/// Splits an apiVersion into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The kinds served by one simulated cluster.
#[derive(Debug, Clone)]
pub struct Kinds {
    served: Vec<&'static KindInfo>,
}

impl Kinds {
    pub fn new(installed: CrdGroups) -> Self {
        let served = ALL_KINDS
            .iter()
            .filter(|k| match k.crd {
                None => true,
                Some(CrdGroup::Smi) => installed.smi,
                Some(CrdGroup::GatewayApi) => installed.gateway_api,
                Some(CrdGroup::Istio) => installed.istio,
                Some(CrdGroup::Flagger) => installed.flagger,
                Some(CrdGroup::Keda) => installed.keda,
                Some(CrdGroup::Kuma) => installed.kuma,
                Some(CrdGroup::Apisix) => installed.apisix,
                Some(CrdGroup::Contour) => installed.contour,
                Some(CrdGroup::Traefik) => installed.traefik,
                Some(CrdGroup::Gloo) => installed.gloo,
                Some(CrdGroup::Keptn) => installed.keptn,
                Some(CrdGroup::Knative) => installed.knative,
            })
            .collect();
        Self { served }
    }

    /// Every served kind, in discovery order.
    pub fn served(&self) -> &[&'static KindInfo] {
        &self.served
    }

    /// The resource served at `/apis/GROUP/VERSION/PLURAL`.
    pub fn by_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static KindInfo> {
        self.served
            .iter()
            .copied()
            .find(|k| k.group == group && k.plural == plural && k.serves_version(version))
    }

    /// The kind named by an object's `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&'static KindInfo> {
        let (group, version) = split_api_version(api_version);
        self.served
            .iter()
            .copied()
            .find(|k| k.group == group && k.kind == kind && k.serves_version(version))
    }

    /// Served (group, versions) in discovery order, groups deduplicated.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for k in &self.served {
            if k.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, versions)) => {
                    for v in k.versions {
                        if !versions.contains(v) {
                            versions.push(v);
                        }
                    }
                }
                None => out.push((k.group, k.versions.to_vec())),
            }
        }
        out
    }

    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.served
            .iter()
            .any(|k| k.group == group && k.serves_version(version))
    }

    fn in_group_version(&self, group: &str, version: &str) -> Vec<&'static KindInfo> {
        self.served
            .iter()
            .copied()
            .filter(|k| k.group == group && k.serves_version(version))
            .collect()
    }

    /// The `APIResourceList` of `/api/v1` or `/apis/GROUP/VERSION`.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Value {
        let mut resources = Vec::new();
        for k in self.in_group_version(group, version) {
            let mut r = json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": k.verbs,
            });
            if !k.short_names.is_empty() {
                r["shortNames"] = json!(k.short_names);
            }
            if !k.categories.is_empty() {
                r["categories"] = json!(k.categories);
            }
            resources.push(r);
            for (sub, sub_group, sub_version, sub_kind, verbs) in subresources(k) {
                let mut s = json!({
                    "name": format!("{}/{}", k.plural, sub),
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": sub_kind,
                    "verbs": verbs,
                });
                if let Some(g) = sub_group {
                    s["group"] = json!(g);
                    s["version"] = json!(sub_version);
                }
                resources.push(s);
            }
        }
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": resources,
        })
    }

    /// The `APIGroupList` of `/apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(g, versions)| {
                let vs: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": vs, "preferredVersion": vs[0].clone()})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// The aggregated discovery document (`apidiscovery.k8s.io/v2`) of `/api`
    /// (`core == true`) or `/apis`.
    pub fn aggregated_discovery(&self, core: bool) -> Value {
        let groups: Vec<(&str, Vec<&str>)> = if core {
            vec![("", vec!["v1"])]
        } else {
            self.groups()
        };
        let items: Vec<Value> = groups
            .into_iter()
            .map(|(g, versions)| {
                let vs: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self
                            .in_group_version(g, v)
                            .into_iter()
                            .map(|k| {
                                let mut r = json!({
                                    "resource": k.plural,
                                    "responseKind": {"group": k.group, "version": v, "kind": k.kind},
                                    "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": k.singular,
                                    "verbs": k.verbs,
                                });
                                if !k.short_names.is_empty() {
                                    r["shortNames"] = json!(k.short_names);
                                }
                                if !k.categories.is_empty() {
                                    r["categories"] = json!(k.categories);
                                }
                                let subs: Vec<Value> = subresources(k)
                                    .into_iter()
                                    .map(|(sub, sg, sv, sk, verbs)| {
                                        json!({
                                            "subresource": sub,
                                            "responseKind": {
                                                "group": sg.unwrap_or(k.group),
                                                "version": sv.unwrap_or(v),
                                                "kind": sk,
                                            },
                                            "verbs": verbs,
                                        })
                                    })
                                    .collect();
                                if !subs.is_empty() {
                                    r["subresources"] = json!(subs);
                                }
                                r
                            })
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }

    /// The CustomResourceDefinition objects of the installed CRD groups.
    pub fn crd_objects(&self, created: &str) -> Vec<Value> {
        self.served
            .iter()
            .filter(|k| k.is_custom())
            .map(|k| crd_object(k, created))
            .collect()
    }
}

type Subresource = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static [&'static str],
);

fn subresources(k: &KindInfo) -> Vec<Subresource> {
    const GPU: &[&str] = &["get", "patch", "update"];
    let mut out = Vec::new();
    if k.status_subresource {
        out.push(("status", None, None, k.kind, GPU));
    }
    if k.scale_subresource {
        out.push(("scale", Some("autoscaling"), Some("v1"), "Scale", GPU));
    }
    if k.group.is_empty() && k.plural == "services" {
        out.push((
            "proxy",
            None,
            None,
            "ServiceProxyOptions",
            &["create", "delete", "get", "patch", "update"][..],
        ));
    }
    out
}

/// The `openAPIV3Schema` of a custom resource version: a structural
/// schema for Flagger's Canary, and for the others an open object (their
/// CRDs as the sim installs them keep every field).
pub fn crd_schema(k: &KindInfo, version: &str) -> Value {
    static CANARY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    static SCALED_OBJECT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    match (k.group, k.kind, version) {
        ("keda.sh", "ScaledObject", "v1alpha1") => SCALED_OBJECT
            .get_or_init(|| {
                serde_yaml::from_str(include_str!("crds/scaledobject.yaml"))
                    .expect("the ScaledObject schema is valid YAML")
            })
            .clone(),
        ("flagger.app", "Canary", "v1beta1") => CANARY
            .get_or_init(|| {
                serde_yaml::from_str(include_str!("crds/canary.yaml"))
                    .expect("the Canary schema is valid YAML")
            })
            .clone(),
        _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    }
}

/// Drops the fields of `v` that `schema` does not declare (where it does
/// not preserve unknown fields), recording their paths: what the real
/// server's pruning does to custom resources.
fn prune(schema: &Value, v: &mut Value, path: &str, out: &mut Vec<String>) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut unknown = Vec::new();
            for (key, child) in m.iter_mut() {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (props.and_then(|ps| ps.get(key)), additional) {
                    (Some(s), _) | (None, Some(s)) => prune(s, child, &p, out),
                    (None, None) if !preserve && props.is_some() => {
                        out.push(p);
                        unknown.push(key.clone());
                    }
                    (None, None) => {}
                }
            }
            for key in unknown {
                m.shift_remove(&key);
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (n, item) in items.iter_mut().enumerate() {
                    prune(s, item, &format!("{path}[{n}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// One key of a JSON body, in document order: its first occurrence, or a
/// repeat (a duplicate field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKey {
    First(String),
    Repeat(String),
}

/// The keys of a JSON body, in document order, with the paths the strict
/// decoding messages use (`spec.template.spec.containers[0].image`). A
/// body that is not JSON has none.
pub fn body_keys(body: &[u8]) -> Vec<BodyKey> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Walk<'a> {
        path: String,
        out: &'a mut Vec<BodyKey>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let p = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if seen.insert(key) {
                    self.out.push(BodyKey::First(p.clone()));
                    map.next_value_seed(Walk {
                        path: p,
                        out: self.out,
                    })?;
                } else {
                    self.out.push(BodyKey::Repeat(p));
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{n}]", self.path),
                    out: self.out,
                })?
                .is_some()
            {
                n += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    if (Walk {
        path: String::new(),
        out: &mut out,
    })
    .deserialize(&mut de)
    .is_err()
    {
        return Vec::new();
    }
    out
}

/// The strict-decoding problems of a write as the real server lists them:
/// `duplicate field "metadata.name"`, `unknown field "spec.foo"`. For a
/// create or update, in document order, a field both unknown and repeated
/// (or below an unknown one) reported as unknown only; for a patch, the
/// patch's duplicates first, then the unknown fields of the result, sorted.
pub fn strict_problems(keys: &[BodyKey], unknown: &[String], patch: bool) -> Vec<String> {
    if patch {
        let mut out: Vec<String> = keys
            .iter()
            .filter_map(|k| match k {
                BodyKey::Repeat(p) => Some(format!("duplicate field {}", go_quote(p))),
                BodyKey::First(_) => None,
            })
            .collect();
        let mut unknown = unknown.to_vec();
        unknown.sort();
        out.extend(
            unknown
                .iter()
                .map(|u| format!("unknown field {}", go_quote(u))),
        );
        return out;
    }
    let under_unknown = |p: &str| {
        unknown.iter().any(|u| {
            p == u
                || p.strip_prefix(u.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    };
    let mut out = Vec::new();
    let mut reported = std::collections::HashSet::new();
    for key in keys {
        match key {
            BodyKey::First(p) if unknown.contains(p) => {
                reported.insert(p.clone());
                out.push(format!("unknown field {}", go_quote(p)));
            }
            BodyKey::Repeat(p) if !under_unknown(p) => {
                out.push(format!("duplicate field {}", go_quote(p)));
            }
            _ => {}
        }
    }
    for u in unknown {
        if !reported.contains(u) {
            out.push(format!("unknown field {}", go_quote(u)));
        }
    }
    out
}

fn crd_object(k: &KindInfo, created: &str) -> Value {
    let name = format!("{}.{}", k.plural, k.group);
    let versions: Vec<Value> = k
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut ver = json!({
                "name": v,
                "served": true,
                "storage": i == 0,
                "schema": {"openAPIV3Schema": crd_schema(k, v)},
            });
            if k.status_subresource {
                ver["subresources"] = json!({"status": {}});
            }
            ver
        })
        .collect();
    let mut names = json!({"plural": k.plural, "singular": k.singular, "kind": k.kind, "listKind": k.list_kind()});
    if !k.short_names.is_empty() {
        names["shortNames"] = json!(k.short_names);
    }
    if !k.categories.is_empty() {
        names["categories"] = json!(k.categories);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": name,
            "uid": crate::store::stable_uid(&name),
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {
            "group": k.group,
            "names": names,
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
            "conversion": {"strategy": "None"},
        },
        "status": {
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": created, "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": created, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            ],
            "storedVersions": [k.preferred_version()],
        },
    })
}

// ---------------------------------------------------------------------------
// Server-side behaviour per kind: defaults, typed decoding, validation.
// ---------------------------------------------------------------------------

/// One field error, rendered as the real server renders `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`...
    pub reason: &'static str,
    pub field: String,
    /// The part after "field: ", e.g. `Required value` or
    /// `Invalid value: 70000: must be between 1 and 65535, inclusive`.
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// `value` is rendered as Go's `%#v` would: strings quoted, numbers bare.
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        }
    }

    pub fn immutable(field: impl Into<String>, value: &str) -> Self {
        Self::invalid(field, value, "field is immutable")
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Go's `%q` of a string.
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// How a kind's object names are validated.
fn name_errors(k: &KindInfo, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match (k.group, k.kind) {
        ("", "Service") => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            if !is_dns1035_label(name) {
                out.push(DNS1035_LABEL_MSG.to_string());
            }
        }
        ("", "Namespace") => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            if !is_dns1123_label(name) {
                out.push(DNS1123_LABEL_MSG.to_string());
            }
        }
        _ => {
            if name.len() > 253 {
                out.push("must be no more than 253 characters".to_string());
            }
            if !is_dns1123_subdomain(name) {
                out.push(DNS1123_SUBDOMAIN_MSG.to_string());
            }
        }
    }
    out
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && (p.is_empty() || !is_dns1123_subdomain(p))
    {
        return false;
    }
    is_label_value(name) && !name.is_empty()
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// Validation of `metadata` common to every kind.
pub fn validate_metadata(k: &KindInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_errors(k, name) {
            errs.push(FieldError::invalid("metadata.name", &go_quote(name), &msg));
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (key, v) in labels {
            if !is_qualified_name(key) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &go_quote(key),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                ));
            }
            let value = v.as_str().unwrap_or("");
            if !is_label_value(value) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &go_quote(value),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: may not be more than 262144 bytes".to_string(),
            });
        }
        for key in ann.keys() {
            if !is_qualified_name(&key.to_ascii_lowercase()) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &go_quote(key),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                ));
            }
        }
    }
}

/// Go's `%#v` of a `map[string]string`.
fn go_string_map(v: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = v.as_object() {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        for k in keys {
            parts.push(format!(
                "{}:{}",
                go_quote(k),
                go_quote(m[k].as_str().unwrap_or(""))
            ));
        }
    }
    if parts.is_empty() && v.is_null() {
        return "map[string]string(nil)".to_string();
    }
    format!("map[string]string{{{}}}", parts.join(", "))
}

/// Whether a `LabelSelector` value selects `labels`.
pub fn label_selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector["matchLabels"].as_object() {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = selector["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e["operator"].as_str().unwrap_or("") {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// A `LabelSelector` as the string form `a=b,c in (d)`.
pub fn label_selector_string(selector: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = selector["matchLabels"].as_object() {
        let mut keys: Vec<&String> = ml.keys().collect();
        keys.sort();
        for k in keys {
            parts.push(format!("{k}={}", ml[k].as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = selector["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e["operator"].as_str().unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            });
        }
    }
    parts.join(",")
}

fn selector_is_empty(sel: &Value) -> bool {
    sel["matchLabels"].as_object().is_none_or(Map::is_empty)
        && sel["matchExpressions"].as_array().is_none_or(Vec::is_empty)
}

fn validate_port(field: String, v: &Value, errs: &mut Vec<FieldError>) {
    if let Some(p) = v.as_i64()
        && !(1..=65535).contains(&p)
    {
        errs.push(FieldError::invalid(
            field,
            &p.to_string(),
            "must be between 1 and 65535, inclusive",
        ));
    }
}

fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let containers = spec["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
        return;
    }
    let mut names = Vec::new();
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        let name = c["name"].as_str().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{cp}.name"),
                &go_quote(name),
                DNS1123_LABEL_MSG,
            ));
        } else if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{cp}.name"), &go_quote(name)));
        }
        names.push(name);
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            errs.push(FieldError::required(format!("{cp}.image"), ""));
        }
        for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            if p["containerPort"].is_null() {
                errs.push(FieldError::required(
                    format!("{cp}.ports[{j}].containerPort"),
                    "",
                ));
            }
            validate_port(
                format!("{cp}.ports[{j}].containerPort"),
                &p["containerPort"],
                errs,
            );
        }
    }
}

fn validate_workload(obj: &Value, errs: &mut Vec<FieldError>, old: Option<&Value>) {
    let spec = &obj["spec"];
    let selector = &spec["selector"];
    let labels = &spec["template"]["metadata"]["labels"];
    if selector.is_null() || selector_is_empty(selector) {
        errs.push(FieldError::required("spec.selector", ""));
    }
    if selector.is_null()
        || selector_is_empty(selector)
        || !label_selector_matches(selector, labels)
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(r) = spec["replicas"].as_i64()
        && r < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            &r.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", errs);
    if let Some(old) = old
        && old["spec"]["selector"] != *selector
    {
        errs.push(FieldError::immutable(
            "spec.selector",
            &label_selector_go(selector),
        ));
    }
}

fn label_selector_go(sel: &Value) -> String {
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}",
        go_string_map(&sel["matchLabels"])
    )
}

fn validate_service(obj: &Value, errs: &mut Vec<FieldError>, old: Option<&Value>) {
    let spec = &obj["spec"];
    let typ = spec["type"].as_str().unwrap_or("ClusterIP");
    let ports = spec["ports"].as_array();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if typ != "ExternalName" && !headless && ports.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&typ) {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.type".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                go_quote(typ)
            ),
        });
    }
    let ports = ports.map(Vec::as_slice).unwrap_or_default();
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{pp}.name"), ""));
        } else if !name.is_empty() {
            if !is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    format!("{pp}.name"),
                    &go_quote(name),
                    DNS1123_LABEL_MSG,
                ));
            } else if names.contains(&name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), &go_quote(name)));
            }
        }
        names.push(name);
        match p["port"].as_i64() {
            None => errs.push(FieldError::required(format!("{pp}.port"), "")),
            Some(_) => validate_port(format!("{pp}.port"), &p["port"], errs),
        }
        if p["targetPort"].is_i64() {
            validate_port(format!("{pp}.targetPort"), &p["targetPort"], errs);
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            errs.push(FieldError {
                reason: "FieldValueNotSupported",
                field: format!("{pp}.protocol"),
                message: format!(
                    "Unsupported value: {}: supported values: \"SCTP\", \"TCP\", \"UDP\"",
                    go_quote(proto)
                ),
            });
        }
    }
    if let Some(old) = old {
        let (o, n) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
        if !o.is_null() && o != n && o.as_str() != Some("") {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &format!("[]string{{{}}}", go_quote(n.as_str().unwrap_or(""))),
                "may not change once set",
            ));
        }
    }
}

fn validate_hpa(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let target = &spec["scaleTargetRef"];
    if target["kind"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    if let Some(min) = spec["minReplicas"].as_i64() {
        if min < 1 {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                &min.to_string(),
                "must be greater than or equal to 1",
            ));
        } else if min > max && max >= 1 {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &max.to_string(),
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
}

fn validate_config_keys(obj: &Value, errs: &mut Vec<FieldError>) {
    for field in ["data", "binaryData", "stringData"] {
        if let Some(m) = obj[field].as_object() {
            for key in m.keys() {
                let ok = !key.is_empty()
                    && key.len() <= 253
                    && key
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
                if !ok {
                    errs.push(FieldError::invalid(
                        field,
                        &go_quote(key),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
            }
        }
    }
}

/// Validation of a whole object (after defaults), `old` on update.
pub fn validate(k: &KindInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_metadata(k, obj, &mut errs);
    match (k.group, k.kind) {
        ("apps", "Deployment") | ("apps", "DaemonSet") | ("apps", "ReplicaSet") => {
            validate_workload(obj, &mut errs, old)
        }
        ("", "Service") => validate_service(obj, &mut errs, old),
        ("", "Pod") => validate_pod_spec(&obj["spec"], "spec", &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => validate_hpa(obj, &mut errs),
        ("", "ConfigMap") | ("", "Secret") => {
            validate_config_keys(obj, &mut errs);
            if let Some(old) = old
                && old["immutable"] == json!(true)
                && (old["data"] != obj["data"] || old["binaryData"] != obj["binaryData"])
            {
                errs.push(FieldError::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        ("", "Event") if obj["involvedObject"].is_null() && obj["eventTime"].is_null() => {
            errs.push(FieldError::required("involvedObject", ""));
        }
        ("split.smi-spec.io", "TrafficSplit")
            if obj["spec"]["service"].as_str().is_none_or(str::is_empty) =>
        {
            errs.push(FieldError::required("spec.service", ""));
        }
        ("gateway.networking.k8s.io", "HTTPRoute") => validate_http_route(obj, &mut errs),
        ("serving.knative.dev", "Service") => {
            if let Some((field, why)) = crate::knative::validate_traffic(obj) {
                errs.push(FieldError {
                    reason: "FieldValueInvalid",
                    field,
                    message: format!("Invalid value: {why}"),
                });
            }
        }
        ("networking.istio.io", "VirtualService") => validate_virtual_service(obj, &mut errs),
        ("networking.istio.io", "DestinationRule")
            if obj["spec"]["host"].as_str().is_none_or(str::is_empty) =>
        {
            errs.push(FieldError::required("spec.host", ""));
        }
        _ => {}
    }
    errs
}

/// Istio's `StringMatch`: one of `exact`, `prefix` or `regex` (an RE2
/// expression). Istio has no `suffix`: a real API server prunes the
/// unknown field and leaves a match on the header's presence, so it is
/// refused here rather than silently turned into something else.
fn validate_string_match(path: &str, m: &Value, errs: &mut Vec<FieldError>) {
    let Some(o) = m.as_object() else {
        errs.push(FieldError::invalid(
            path,
            &m.to_string(),
            "must be an object",
        ));
        return;
    };
    for (k, v) in o {
        match k.as_str() {
            "exact" | "prefix" => {}
            "regex" => {
                if let Some(r) = v.as_str()
                    && regex::Regex::new(r).is_err()
                {
                    errs.push(FieldError::invalid(
                        format!("{path}.regex"),
                        &go_quote(r),
                        "\"regex\" must be a valid RE2 regular expression",
                    ));
                }
            }
            other => errs.push(FieldError {
                reason: "FieldValueInvalid",
                field: format!("{path}.{other}"),
                message: "Invalid value: unknown field: Istio's StringMatch has only exact, \
                          prefix and regex"
                    .to_string(),
            }),
        }
    }
    if o.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            &m.to_string(),
            "only one of exact, prefix or regex may be set",
        ));
    }
}

/// What istiod's validating webhook checks of a VirtualService, for the
/// fields a canary router writes.
fn validate_virtual_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let empty = |k: &str| spec[k].as_array().is_none_or(Vec::is_empty);
    if empty("hosts") && !empty("gateways") {
        errs.push(FieldError::forbidden(
            "spec.gateways",
            "a delegate virtual service (no hosts) must not have gateways",
        ));
    }
    if empty("http") && empty("tcp") && empty("tls") {
        errs.push(FieldError::required(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        ));
    }
    for (i, r) in spec["http"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.http[{i}]");
        let dests = r["route"].as_array().map(Vec::as_slice).unwrap_or_default();
        if dests.is_empty() && r["redirect"].is_null() && r["directResponse"].is_null() {
            errs.push(FieldError::required(
                format!("{path}.route"),
                "HTTP route, redirect or direct_response is required",
            ));
        }
        for (j, d) in dests.iter().enumerate() {
            let dp = format!("{path}.route[{j}]");
            if d["destination"]["host"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{dp}.destination.host"), ""));
            }
            match &d["weight"] {
                Value::Null => {}
                w if w.as_i64().is_some_and(|w| (0..=100).contains(&w)) => {}
                w => errs.push(FieldError::invalid(
                    format!("{dp}.weight"),
                    &w.to_string(),
                    "weight must be an integer between 0 and 100",
                )),
            }
        }
        if !r["mirror"].is_null() && r["mirror"]["host"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("{path}.mirror.host"), ""));
        }
        if !r["mirrorPercentage"].is_null()
            && !r["mirrorPercentage"]["value"]
                .as_f64()
                .is_some_and(|v| (0.0..=100.0).contains(&v))
        {
            errs.push(FieldError::invalid(
                format!("{path}.mirrorPercentage.value"),
                &r["mirrorPercentage"]["value"].to_string(),
                "mirror_percentage must have a max value of 100",
            ));
        }
        for (k, m) in r["match"].as_array().into_iter().flatten().enumerate() {
            let mp = format!("{path}.match[{k}]");
            for f in ["uri", "scheme", "method", "authority"] {
                if !m[f].is_null() {
                    validate_string_match(&format!("{mp}.{f}"), &m[f], errs);
                }
            }
            for f in ["headers", "withoutHeaders", "queryParams"] {
                for (name, sm) in m[f].as_object().into_iter().flatten() {
                    validate_string_match(&format!("{mp}.{f}.{name}"), sm, errs);
                }
            }
        }
    }
}

/// A few of the Gateway API CRD's schema and CEL rules (after defaults).
fn validate_http_route(obj: &Value, errs: &mut Vec<FieldError>) {
    let rules = obj["spec"]["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rules.len() > 16 {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: "spec.rules".into(),
            message: format!("Too many: {}: must have at most 16 items", rules.len()),
        });
    }
    for (i, rule) in rules.iter().enumerate() {
        for (j, b) in rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("spec.rules[{i}].backendRefs[{j}]");
            if b["name"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{path}.name"), ""));
            }
            let is_service = b["group"].as_str().unwrap_or("").is_empty()
                && b["kind"].as_str().unwrap_or("Service") == "Service";
            if is_service && b["port"].is_null() {
                errs.push(FieldError::invalid(
                    path.clone(),
                    "\"object\"",
                    "Must have port for Service reference",
                ));
            }
            if let Some(w) = b["weight"].as_i64()
                && !(0..=1_000_000).contains(&w)
            {
                let detail = if w < 0 {
                    "should be greater than or equal to 0"
                } else {
                    "should be less than or equal to 1000000"
                };
                errs.push(FieldError::invalid(
                    format!("{path}.weight"),
                    &w.to_string(),
                    detail,
                ));
            }
            if !b["weight"].is_null() && !b["weight"].is_i64() {
                errs.push(FieldError::invalid(
                    format!("{path}.weight"),
                    &b["weight"].to_string(),
                    "spec.rules.backendRefs.weight in body must be of type integer",
                ));
            }
        }
    }
}

/// The defaults of the Gateway API HTTPRoute CRD schema (v1.x), which the
/// real server applies on every write: a tool that compares its desired
/// route with the live one must expect them.
fn default_http_route(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    for p in spec["parentRefs"].as_array_mut().into_iter().flatten() {
        set_default(p, "group", json!("gateway.networking.k8s.io"));
        set_default(p, "kind", json!("Gateway"));
    }
    let default_match = json!({"path": {"type": "PathPrefix", "value": "/"}});
    set_default(spec, "rules", json!([{"matches": [default_match.clone()]}]));
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        set_default(rule, "matches", json!([default_match.clone()]));
        for m in rule["matches"].as_array_mut().into_iter().flatten() {
            if m.as_object().is_some_and(|o| o.is_empty()) {
                *m = default_match.clone();
            }
            if m["path"].is_object() {
                set_default(&mut m["path"], "type", json!("PathPrefix"));
                set_default(&mut m["path"], "value", json!("/"));
            }
            for field in ["headers", "queryParams"] {
                for h in m[field].as_array_mut().into_iter().flatten() {
                    set_default(h, "type", json!("Exact"));
                }
            }
        }
        for b in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            set_default(b, "group", json!(""));
            set_default(b, "kind", json!("Service"));
            set_default(b, "weight", json!(1));
        }
    }
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    if let Some(cs) = spec["containers"].as_array_mut() {
        for c in cs {
            if !c.is_object() {
                continue;
            }
            let image = c["image"].as_str().unwrap_or("").to_string();
            let tag = image
                .rsplit('/')
                .next()
                .unwrap_or("")
                .split_once(':')
                .map(|(_, t)| t.to_string());
            let pull = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            };
            set_default(c, "resources", json!({}));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "imagePullPolicy", json!(pull));
            if let Some(ps) = c["ports"].as_array_mut() {
                for p in ps {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// The defaults the real server fills in (a subset: those a tool comparing
/// objects is likely to trip over).
pub fn apply_defaults(k: &KindInfo, obj: &mut Value) {
    match (k.group, k.kind) {
        ("apps", "Deployment") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                set_default(&mut spec["strategy"], "rollingUpdate", json!({}));
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxSurge",
                    json!("25%"),
                );
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "DaemonSet") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("", "Pod") => default_pod_spec(&mut obj["spec"]),
        ("gateway.networking.k8s.io", "HTTPRoute") => default_http_route(obj),
        ("apps", "ReplicaSet") if obj["spec"].is_object() => {
            set_default(&mut obj["spec"], "replicas", json!(1));
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            }
            if let Some(ps) = spec["ports"].as_array_mut() {
                for p in ps {
                    set_default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
        }
        ("", "Secret") => {
            set_default(obj, "type", json!("Opaque"));
            // stringData is write-only: merged into data (base64) and dropped.
            if let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
                && let Some(sd) = sd.as_object()
            {
                set_default(obj, "data", json!({}));
                for (key, v) in sd {
                    let s = v.as_str().unwrap_or("");
                    obj["data"][key] = json!(BASE64_STANDARD.encode(s));
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let spec = &mut obj["spec"];
            if !spec.is_object() {
                return;
            }
            set_default(spec, "minReplicas", json!(1));
            if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        ("", "Namespace") => {
            // An empty `spec`/`status` (as typed clients send them) gets
            // the defaults too.
            set_default(obj, "spec", json!({}));
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            set_default(obj, "status", json!({}));
            set_default(&mut obj["status"], "phase", json!("Active"));
            let name = obj["metadata"]["name"].clone();
            if let Some(labels) = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert(json!({})))
            {
                labels["kubernetes.io/metadata.name"] = name;
            }
        }
        _ => {}
    }
}

/// Decoding into the real Go-shaped type: what the server does to every
/// built-in object. Wrong types fail (400), unknown fields are dropped and
/// reported (for `fieldValidation`).
pub struct Decoded {
    pub object: Value,
    /// Paths of fields the type does not declare, e.g. `spec.replicaz`.
    pub unknown_fields: Vec<String>,
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        // k8s-openapi makes some fields required that Go decodes as zero
        // values (a Deployment's `spec`, `spec.selector`, a PodSpec's
        // `containers`): those are validation errors (422), not decoding
        // errors, so they are left to `validate`.
        if e.inner().to_string().starts_with("missing field") {
            return MISSING_FIELD.to_string();
        }
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    None if !v.is_null() => out.push(p),
                    Some(ov) => unknown_fields(v, ov, &p, out),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                unknown_fields(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes a built-in object through its k8s-openapi type; custom resources
/// (whose CRDs preserve unknown fields) pass through unchanged.
pub fn decode(k: &KindInfo, obj: &Value) -> Result<Decoded, String> {
    match decode_typed(k, obj) {
        Err(e) if e == MISSING_FIELD => Ok(Decoded {
            object: obj.clone(),
            unknown_fields: Vec::new(),
        }),
        other => other,
    }
}

const MISSING_FIELD: &str = "\u{0}missing field";

fn decode_typed(k: &KindInfo, obj: &Value) -> Result<Decoded, String> {
    use k8s_openapi::api::{apps, autoscaling, coordination, core, events, networking};
    let out = match (k.group, k.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(obj)?,
        ("", "Service") => roundtrip::<core::v1::Service>(obj)?,
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj)?,
        ("", "Secret") => roundtrip::<core::v1::Secret>(obj)?,
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj)?,
        ("", "Event") => roundtrip::<core::v1::Event>(obj)?,
        ("", "Pod") => roundtrip::<core::v1::Pod>(obj)?,
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(obj)?,
        ("apps", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(obj)?,
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(obj)?,
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(obj)?,
        ("autoscaling", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(obj)?
        }
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(obj)?,
        ("networking.k8s.io", "Ingress") => roundtrip::<networking::v1::Ingress>(obj)?,
        ("networking.k8s.io", "IngressClass") => roundtrip::<networking::v1::IngressClass>(obj)?,
        _ => {
            let mut object = obj.clone();
            let mut unknown_fields = Vec::new();
            if !obj["metadata"].is_null() {
                let typed =
                    roundtrip::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                        &obj["metadata"],
                    )
                    .map_err(|e| format!("metadata.{e}"))?;
                // Custom resources keep only the fields ObjectMeta has.
                if k.is_custom()
                    && let Some(m) = object["metadata"].as_object_mut()
                {
                    m.retain(|key, v| {
                        let known = v.is_null() || typed.get(key).is_some();
                        if !known {
                            unknown_fields.push(format!("metadata.{key}"));
                        }
                        known
                    });
                }
            }
            if k.is_custom() {
                // The CRD's schema below the standard fields.
                let schema = crd_schema(k, k.preferred_version());
                if let (Value::Object(m), Some(props)) =
                    (&mut object, schema["properties"].as_object())
                {
                    for (key, child) in m.iter_mut() {
                        if let Some(s) = props.get(key)
                            && !matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                        {
                            prune(s, child, key, &mut unknown_fields);
                        }
                    }
                }
            }
            return Ok(Decoded {
                object,
                unknown_fields,
            });
        }
    };
    let mut unknown = Vec::new();
    unknown_fields(obj, &out, "", &mut unknown);
    Ok(Decoded {
        object: out,
        unknown_fields: unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_stored_as_padded_base64() {
        let secret = Kinds::new(CrdGroups::default())
            .by_kind("v1", "Secret")
            .unwrap();
        let mut obj = json!({"stringData": {"a": "hello", "b": "hi", "c": "abc"}});
        apply_defaults(secret, &mut obj);
        assert_eq!(
            obj["data"],
            json!({"a": "aGVsbG8=", "b": "aGk=", "c": "YWJj"})
        );
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn names_are_checked_per_kind() {
        assert!(is_dns1123_subdomain("podinfo.v2"));
        assert!(!is_dns1035_label("1abc"));
        assert!(is_dns1123_label("1abc"));
        assert!(!is_dns1123_subdomain("Foo"));
    }
}
