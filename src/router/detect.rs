//! Which mesh a cluster runs, for canaries whose spec and command line name
//! no provider (Flagger reads its own `-mesh-provider` install flag there).
//!
//! Linkerd is found by its namespace and the SMI TrafficSplit CRD, Istio by
//! its namespace and the VirtualService CRD. Exactly one must be found;
//! with none or both, the user names one.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use canary_core::provider::Provider;

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
];

/// Picks the mesh from what is installed; `Err` says why none could be.
pub(crate) async fn detect(client: &kube::Client) -> Result<Detected, String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut found = Vec::new();
    for (provider, namespace, crd) in MESHES {
        let has_ns = namespaces.get_opt(namespace).await.ok().flatten().is_some();
        if has_ns && crds.get_opt(crd).await.ok().flatten().is_some() {
            found.push(Detected {
                provider: *provider,
                why: format!("namespace {namespace} and CRD {crd} exist"),
            });
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(
            "no provider in the spec and none detected (no Linkerd or Istio found); \
                  name one with --mesh-provider (or spec.provider)"
                .to_string(),
        ),
        _ => Err(format!(
            "several meshes found ({}); choose one with --mesh-provider (or spec.provider)",
            found
                .iter()
                .map(|d| d.provider.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
