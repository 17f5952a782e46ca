//! Which mesh or ingress a cluster runs, for canaries whose spec and
//! command line name no provider (Flagger reads its own `-mesh-provider`
//! install flag there).
//!
//! Each candidate is found by two things it installs: Linkerd by its
//! namespace and the SMI TrafficSplit CRD, Istio by its namespace and the
//! VirtualService CRD, Kuma by the `kuma-system` namespace and the
//! TrafficRoute CRD, Contour by the `projectcontour` namespace and the
//! HTTPProxy CRD, NGINX by the `ingress-nginx` namespace and the `nginx`
//! IngressClass, the Gateway API by the HTTPRoute CRD (`v1` when the CRD
//! serves it, else `v1beta1`). Exactly one must be found; with none
//! or several, the user names one.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use crate::cluster::error::ClusterError;
use canary_core::provider::{GatewayApiVersion, Provider};

/// A provider found in the cluster, and why it was chosen.
#[derive(Debug, Clone)]
pub(crate) struct Detected {
    pub provider: Provider,
    pub why: String,
}

/// The meshes looked for: the provider, its namespace and its CRD.
const MESHES: &[(Provider, &str, &str)] = &[
    (
        Provider::Linkerd,
        "linkerd",
        "trafficsplits.split.smi-spec.io",
    ),
    (
        Provider::Istio,
        "istio-system",
        "virtualservices.networking.istio.io",
    ),
    (Provider::Kuma, "kuma-system", "trafficroutes.kuma.io"),
    (
        Provider::Contour,
        "projectcontour",
        "httpproxies.projectcontour.io",
    ),
];

/// NGINX: the namespace and IngressClass ingress-nginx installs.
const NGINX: (&str, &str) = ("ingress-nginx", "nginx");

/// The Gateway API's HTTPRoute CRD.
const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";

/// Why no provider was detected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DetectError {
    /// None or several found: the user names one.
    #[error("{0}")]
    Ambiguous(String),
    /// The cluster did not answer what is installed.
    #[error("{0}; or name the provider with --mesh-provider (or spec.provider)")]
    Cluster(#[from] ClusterError),
}

/// Picks the mesh from what is installed. An object that does not exist
/// is an answer; any other API error stops the detection, since what is
/// installed is then unknown.
pub(crate) async fn detect(client: &kube::Client) -> Result<Detected, DetectError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let classes: Api<IngressClass> = Api::all(client.clone());
    let has_ns = async |name: &str| -> Result<bool, ClusterError> {
        namespaces
            .get_opt(name)
            .await
            .map(|n| n.is_some())
            .map_err(|e| ClusterError::api("get", format!("namespace/{name}"), e))
    };
    let get_crd = async |name: &str| -> Result<Option<CustomResourceDefinition>, ClusterError> {
        crds.get_opt(name)
            .await
            .map_err(|e| ClusterError::api("get", format!("customresourcedefinition/{name}"), e))
    };
    let mut found = Vec::new();
    for (provider, namespace, crd) in MESHES {
        if has_ns(namespace).await? && get_crd(crd).await?.is_some() {
            found.push(Detected {
                provider: *provider,
                why: format!("namespace {namespace} and CRD {crd} exist"),
            });
        }
    }
    let (namespace, class) = NGINX;
    if has_ns(namespace).await?
        && classes
            .get_opt(class)
            .await
            .map_err(|e| ClusterError::api("get", format!("ingressclass/{class}"), e))?
            .is_some()
    {
        found.push(Detected {
            provider: Provider::Nginx,
            why: format!("namespace {namespace} and IngressClass {class} exist"),
        });
    }
    if let Some(crd) = get_crd(HTTPROUTE_CRD).await? {
        let serves_v1 = crd.spec.versions.iter().any(|v| v.name == "v1" && v.served);
        let version = if serves_v1 {
            GatewayApiVersion::V1
        } else {
            GatewayApiVersion::V1Beta1
        };
        found.push(Detected {
            provider: Provider::GatewayApi(version),
            why: format!("CRD {HTTPROUTE_CRD} exists and serves {}", version.as_str()),
        });
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(DetectError::Ambiguous(
            "no provider in the spec and none detected (no Linkerd, Istio, Kuma, Contour, NGINX or \
             Gateway API found); name one with --mesh-provider (or spec.provider)"
                .to_string(),
        )),
        _ => Err(DetectError::Ambiguous(format!(
            "several providers found ({}); choose one with --mesh-provider (or spec.provider)",
            found
                .iter()
                .map(|d| format!("{} ({})", d.provider.name(), d.why))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
