//! The primary's HorizontalPodAutoscaler: `<hpa>-primary`, a copy of the
//! target's HPA that scales the primary, as Flagger creates it, until
//! `canary revert` deletes it.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use super::error::{ClusterError, Result};
use super::managed::MANAGED_BY;

/// Creates or updates `<hpa>-primary` from the target's HPA `hpa`, scaling
/// the Deployment `primary`.
pub(crate) async fn reconcile_primary(
    client: &kube::Client,
    namespace: &str,
    hpa: &str,
    primary: &str,
) -> Result<()> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let object = format!("horizontalpodautoscaler/{hpa} in {namespace}");
    let source = api
        .get_opt(hpa)
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
        .ok_or(ClusterError::NotFound {
            object: object.clone(),
        })?;
    let name = format!("{hpa}-primary");
    let mut labels = source.metadata.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    let mut spec = source.spec.clone();
    spec.scale_target_ref.name = primary.to_string();
    let mut copy = HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: source.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let object = format!("horizontalpodautoscaler/{name} in {namespace}");
    let pp = PostParams::default();
    match api
        .get_opt(&name)
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
    {
        Some(live) if live.spec == copy.spec => {}
        Some(live) => {
            copy.metadata.resource_version = live.metadata.resource_version;
            api.replace(&name, &pp, &copy)
                .await
                .map_err(|e| ClusterError::api("update", &object, e))?;
        }
        None => {
            api.create(&pp, &copy)
                .await
                .map_err(|e| ClusterError::api("create", &object, e))?;
        }
    }
    Ok(())
}

/// Deletes `<hpa>-primary`, the copy made from the target's HPA `hpa`,
/// if `canary` made it; the target's own HPA stays and scales the target
/// again.
pub(crate) async fn delete_primary(
    client: &kube::Client,
    namespace: &str,
    hpa: &str,
) -> Result<super::managed::Removal> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let name = format!("{hpa}-primary");
    super::managed::delete(&api, &name, &format!("horizontalpodautoscaler/{name}")).await
}
