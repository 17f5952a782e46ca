//! The names of the objects a rollout creates or changes, as Flagger names
//! them, defined once: `plan` lists them, the cluster adapters and the
//! routers create them. A team moving between Flagger and `canary` finds
//! every object where it was.

use crate::provider::{AppMeshVersion, Provider};
use crate::spec::resolve::ResolvedCanary;

/// `<name>-primary`: the primary workload (and its autoscaler, and the
/// copies of the ConfigMaps and Secrets it uses), or the primary Service.
pub fn primary(name: &str) -> String {
    format!("{name}-primary")
}

/// `<service>-canary`: the Service selecting the canary's pods.
pub fn canary(service: &str) -> String {
    format!("{service}-canary")
}

/// One object a provider's router owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterObject {
    /// `split.smi-spec.io/v1alpha2`.
    pub api_version: String,
    pub kind: &'static str,
    pub name: String,
}

/// The objects `provider`'s router creates for canary `c`, as Flagger names
/// them; empty for `kubernetes`, which only switches Service selectors.
pub fn router_objects(provider: Provider, c: &ResolvedCanary) -> Vec<RouterObject> {
    let svc = &c.service;
    let o = |api_version: &str, kind: &'static str, name: String| RouterObject {
        api_version: api_version.to_string(),
        kind,
        name,
    };
    match provider {
        Provider::Kubernetes => Vec::new(),
        Provider::Linkerd | Provider::Osm | Provider::Smi(_) => vec![o(
            &format!("split.smi-spec.io/{}", smi_version(provider)),
            "TrafficSplit",
            svc.clone(),
        )],
        Provider::Istio => vec![
            o("networking.istio.io/v1beta1", "VirtualService", svc.clone()),
            o(
                "networking.istio.io/v1beta1",
                "DestinationRule",
                primary(svc),
            ),
            o(
                "networking.istio.io/v1beta1",
                "DestinationRule",
                canary(svc),
            ),
        ],
        Provider::GatewayApi(v) => vec![o(
            &format!("gateway.networking.k8s.io/{}", v.as_str()),
            "HTTPRoute",
            svc.clone(),
        )],
        Provider::Nginx | Provider::Skipper => {
            let ing = c.ingress.clone().unwrap_or_else(|| svc.clone());
            vec![o("networking.k8s.io/v1", "Ingress", canary(&ing))]
        }
        Provider::Contour => vec![o("projectcontour.io/v1", "HTTPProxy", svc.clone())],
        Provider::Gloo => vec![
            o("gloo.solo.io/v1", "Upstream", gloo_upstream(c, "primary")),
            o("gloo.solo.io/v1", "Upstream", gloo_upstream(c, "canary")),
            o("gateway.solo.io/v1", "RouteTable", svc.clone()),
        ],
        Provider::Traefik => vec![o("traefik.io/v1alpha1", "TraefikService", svc.clone())],
        Provider::Kuma => vec![o("kuma.io/v1alpha1", "TrafficRoute", svc.clone())],
        Provider::Apisix => {
            let route = c.route.clone().unwrap_or_else(|| svc.clone());
            vec![o(
                "apisix.apache.org/v2",
                "ApisixRoute",
                format!("{route}-{}", canary(svc)),
            )]
        }
        Provider::Knative => vec![o(
            "serving.knative.dev/v1",
            "Service",
            c.target.name.clone(),
        )],
        Provider::AppMesh(v) => {
            let api = match v {
                AppMeshVersion::V1Beta1 => "appmesh.k8s.aws/v1beta1",
                AppMeshVersion::V1Beta2 => "appmesh.k8s.aws/v1beta2",
            };
            vec![
                o(api, "VirtualNode", primary(svc)),
                o(api, "VirtualNode", canary(svc)),
                o(api, "VirtualService", svc.clone()),
                o(api, "VirtualRouter", svc.clone()),
            ]
        }
    }
}

/// `<namespace>-<service>-<role>upstream-<port>`: the Gloo Upstream
/// Flagger generates for the primary (`role` `primary`) or canary Service.
/// Gloo's Envoy names its cluster `<upstream>_<namespace>`, which the
/// built-in Gloo queries select.
pub fn gloo_upstream(c: &ResolvedCanary, role: &str) -> String {
    format!("{}-{}-{role}upstream-{}", c.namespace, c.service, c.port)
}

/// The TrafficSplit version Flagger writes for an SMI provider: v1alpha2
/// for Linkerd, v1alpha3 for OSM, the named one for `smi:*`.
pub fn smi_version(provider: Provider) -> &'static str {
    match provider {
        Provider::Smi(v) => v.as_str(),
        Provider::Osm => "v1alpha3",
        _ => "v1alpha2",
    }
}
