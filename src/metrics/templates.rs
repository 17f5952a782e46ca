//! MetricTemplates a canary uses but its spec file does not hold, read
//! from the cluster as Flagger reads them. That each exists and names a
//! metric provider `canary` queries is checked before a run changes
//! anything, by the preflight (`cluster::preflight`).

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use canary_core::spec::types::MetricTemplate;

/// Reads MetricTemplate `namespace/name` from the cluster.
pub(crate) async fn get(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<MetricTemplate, String> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", "MetricTemplate"),
        "metrictemplates",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let obj = api
        .get_opt(name)
        .await
        .map_err(|e| format!("failed to read MetricTemplate {namespace}/{name}: {e}"))?
        .ok_or_else(|| format!("MetricTemplate {namespace}/{name} not found"))?;
    let value = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
    let t: MetricTemplate = serde_json::from_value(value)
        .map_err(|e| format!("MetricTemplate {namespace}/{name} is invalid: {e}"))?;
    crate::secrets::redactor().learn_template(&t);
    Ok(t)
}
