//! The primary's autoscaler: `<name>-primary`, a copy of the target's
//! HorizontalPodAutoscaler (autoscaling/v2) or KEDA ScaledObject
//! (keda.sh/v1alpha1) that scales the primary, as Flagger makes it, until
//! `canary revert` deletes it.
//!
//! The copy follows the target's autoscaler: every round of `canary run`
//! compares the copy's spec with the one made from the target's now, and
//! updates it when they differ, as Flagger's scaler reconciler does at
//! each of its ticks. `autoscalerRef.primaryScalerReplicas` overrides the
//! copied replica bounds. A ScaledObject's trigger queries are rewritten
//! for the primary: the one `autoscalerRef.primaryScalerQueries` gives
//! for the trigger's name, else the query with the target's name (and
//! `<target>-canary`) replaced by `<target>-primary`.
//!
//! KEDA would scale the target back up while it is meant to have no
//! pods: as Flagger does, the target's ScaledObject is paused at zero
//! replicas (annotation `autoscaling.keda.sh/paused-replicas: "0"`) while
//! the target is scaled to zero, and resumed when it is scaled up for an
//! analysis, or given back by `canary revert`.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::error::{ClusterError, Result};
use super::managed::MANAGED_BY;
use canary_core::spec::types::AutoscalerReference;

/// The annotation with which KEDA holds a ScaledObject's target at a
/// number of replicas.
pub(crate) const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// The kinds of autoscaler a canary may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scaler {
    Hpa,
    ScaledObject,
}

impl Scaler {
    /// The kind of `autoscalerRef.kind` (the spec check refuses others).
    pub(crate) fn of(kind: &str) -> Scaler {
        match kind {
            "ScaledObject" => Scaler::ScaledObject,
            _ => Scaler::Hpa,
        }
    }

    /// How `kubectl` names the kind.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Scaler::Hpa => "horizontalpodautoscaler",
            Scaler::ScaledObject => "scaledobject",
        }
    }
}

fn scaled_objects(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// What [`reconcile_primary`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconciled {
    Created,
    Updated,
    Unchanged,
}

/// Creates `<name>-primary` from the target's autoscaler, scaling the
/// workload `primary`, or updates it when its spec differs from the one
/// made from the target's autoscaler now.
pub(crate) async fn reconcile_primary(
    client: &kube::Client,
    namespace: &str,
    target: &str,
    autoscaler: &AutoscalerReference,
    primary: &str,
) -> Result<Reconciled> {
    let name = autoscaler.name.clone().unwrap_or_default();
    match Scaler::of(autoscaler.kind.as_deref().unwrap_or_default()) {
        Scaler::Hpa => reconcile_hpa(client, namespace, &name, autoscaler, primary).await,
        Scaler::ScaledObject => {
            reconcile_scaled_object(client, namespace, target, &name, autoscaler, primary).await
        }
    }
}

async fn reconcile_hpa(
    client: &kube::Client,
    namespace: &str,
    hpa: &str,
    autoscaler: &AutoscalerReference,
    primary: &str,
) -> Result<Reconciled> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let object = format!("horizontalpodautoscaler/{hpa} in {namespace}");
    let source = api
        .get_opt(hpa)
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
        .ok_or(ClusterError::NotFound {
            object: object.clone(),
        })?;
    let name = canary_core::names::primary(hpa);
    let mut labels = source.metadata.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    let mut spec = source.spec.clone();
    spec.scale_target_ref.name = primary.to_string();
    if let Some(r) = &autoscaler.primary_scaler_replicas {
        if let Some(min) = r.min_replicas {
            spec.min_replicas = Some(min);
        }
        if let Some(max) = r.max_replicas {
            spec.max_replicas = max;
        }
    }
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
    // Read, compare, replace: a conflict (another writer, or the HPA
    // controller's status) is read again.
    for _ in 0..5 {
        match api
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        {
            Some(live) if live.spec == copy.spec => return Ok(Reconciled::Unchanged),
            Some(live) => {
                copy.metadata.resource_version = live.metadata.resource_version;
                match api.replace(&name, &pp, &copy).await {
                    Ok(_) => return Ok(Reconciled::Updated),
                    Err(e) => {
                        let e = ClusterError::api("update", &object, e);
                        if !e.is_conflict() {
                            return Err(e);
                        }
                    }
                }
            }
            None => {
                api.create(&pp, &copy)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
                return Ok(Reconciled::Created);
            }
        }
    }
    Err(ClusterError::Conflict { object })
}

/// The primary's ScaledObject spec made from the target's, with the
/// fields Flagger carries over: the scale target is the primary, the
/// trigger queries are the primary's, the replica bounds those of
/// `primaryScalerReplicas` when given, and a named HPA of KEDA's
/// (`advanced.horizontalPodAutoscalerConfig.name`) gets `-primary`, so the
/// two ScaledObjects do not share one.
pub(crate) fn primary_scaled_object_spec(
    source: &Value,
    target: &str,
    autoscaler: &AutoscalerReference,
    primary: &str,
) -> Value {
    let mut spec = serde_json::Map::new();
    let mut scale_target = serde_json::Map::new();
    scale_target.insert("name".into(), json!(primary));
    for key in ["kind", "apiVersion", "envSourceContainerName"] {
        if let Some(v) = source["scaleTargetRef"].get(key) {
            scale_target.insert(key.into(), v.clone());
        }
    }
    spec.insert("scaleTargetRef".into(), Value::Object(scale_target));
    for key in [
        "pollingInterval",
        "cooldownPeriod",
        "minReplicaCount",
        "maxReplicaCount",
        "advanced",
        "triggers",
        "fallback",
        "idleReplicaCount",
    ] {
        if let Some(v) = source.get(key).filter(|v| !v.is_null()) {
            spec.insert(key.into(), v.clone());
        }
    }
    let mut spec = Value::Object(spec);
    if let Some(name) = spec["advanced"]["horizontalPodAutoscalerConfig"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(canary_core::names::primary)
    {
        spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] = json!(name);
    }
    if let Some(triggers) = spec["triggers"].as_array_mut() {
        for t in triggers {
            let given = t["name"]
                .as_str()
                .and_then(|n| autoscaler.primary_scaler_queries.get(n))
                .cloned();
            let rewritten = if autoscaler.primary_scaler_queries.is_empty() {
                t["metadata"]["query"]
                    .as_str()
                    .map(|q| primary_query(q, target))
            } else {
                given
            };
            if let Some(q) = rewritten
                && t["metadata"].is_object()
            {
                t["metadata"]["query"] = json!(q);
            }
        }
    }
    if let Some(r) = &autoscaler.primary_scaler_replicas {
        if let Some(min) = r.min_replicas {
            spec["minReplicaCount"] = json!(min);
        }
        if let Some(max) = r.max_replicas {
            spec["maxReplicaCount"] = json!(max);
        }
    }
    spec
}

/// `query` with every `<target>-canary` and every other `<target>`
/// replaced by `<target>-primary`, in one pass, so that no name is
/// replaced twice.
pub(crate) fn primary_query(query: &str, target: &str) -> String {
    if target.is_empty() {
        return query.to_string();
    }
    let primary = canary_core::names::primary(target);
    let canary = canary_core::names::canary(target);
    let mut out = String::with_capacity(query.len() + 16);
    let mut rest = query;
    while let Some(at) = rest.find(target) {
        out.push_str(&rest[..at]);
        out.push_str(&primary);
        rest = &rest[at..];
        rest = if rest.starts_with(&canary) {
            &rest[canary.len()..]
        } else {
            &rest[target.len()..]
        };
    }
    out.push_str(rest);
    out
}

async fn reconcile_scaled_object(
    client: &kube::Client,
    namespace: &str,
    target: &str,
    so: &str,
    autoscaler: &AutoscalerReference,
    primary: &str,
) -> Result<Reconciled> {
    let api = scaled_objects(client, namespace);
    let object = format!("scaledobject/{so} in {namespace}");
    let source = api
        .get_opt(so)
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
        .ok_or(ClusterError::NotFound {
            object: object.clone(),
        })?;
    let spec = primary_scaled_object_spec(&source.data["spec"], target, autoscaler, primary);
    let name = canary_core::names::primary(so);
    let object = format!("scaledobject/{name} in {namespace}");
    let pp = PostParams::default();
    for _ in 0..5 {
        match api
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        {
            Some(live) if live.data["spec"] == spec => return Ok(Reconciled::Unchanged),
            Some(mut live) => {
                live.data["spec"] = spec.clone();
                match api.replace(&name, &pp, &live).await {
                    Ok(_) => return Ok(Reconciled::Updated),
                    Err(e) => {
                        let e = ClusterError::api("update", &object, e);
                        if !e.is_conflict() {
                            return Err(e);
                        }
                    }
                }
            }
            None => {
                let mut labels = source.metadata.labels.clone().unwrap_or_default();
                labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
                // The target's annotations go with it, as Flagger carries
                // them, but not its pause nor kubectl's record of it.
                let mut annotations = source.metadata.annotations.clone().unwrap_or_default();
                annotations.remove(PAUSED_REPLICAS);
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                let mut copy = DynamicObject {
                    types: source.types.clone(),
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(labels),
                        annotations: Some(annotations).filter(|a| !a.is_empty()),
                        ..ObjectMeta::default()
                    },
                    data: json!({ "spec": spec }),
                };
                if copy.types.is_none() {
                    copy.types = Some(kube::api::TypeMeta {
                        api_version: "keda.sh/v1alpha1".into(),
                        kind: "ScaledObject".into(),
                    });
                }
                api.create(&pp, &copy)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
                return Ok(Reconciled::Created);
            }
        }
    }
    Err(ClusterError::Conflict { object })
}

/// Pauses the target's ScaledObject `name` at zero replicas, as Flagger
/// does while the target is scaled to zero; nothing for an HPA (the HPA
/// controller leaves a Deployment at zero replicas alone). `true` when it
/// was written.
pub(crate) async fn pause_target(
    client: &kube::Client,
    namespace: &str,
    scaler: Scaler,
    name: &str,
) -> Result<bool> {
    set_paused(client, namespace, scaler, name, Some("0")).await
}

/// Resumes the target's ScaledObject `name` (see [`pause_target`]).
/// `true` when it was paused.
pub(crate) async fn resume_target(
    client: &kube::Client,
    namespace: &str,
    scaler: Scaler,
    name: &str,
) -> Result<bool> {
    set_paused(client, namespace, scaler, name, None).await
}

async fn set_paused(
    client: &kube::Client,
    namespace: &str,
    scaler: Scaler,
    name: &str,
    value: Option<&str>,
) -> Result<bool> {
    if scaler != Scaler::ScaledObject {
        return Ok(false);
    }
    let api = scaled_objects(client, namespace);
    let object = format!("scaledobject/{name} in {namespace}");
    let Some(live) = api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
    else {
        return Ok(false);
    };
    let now = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_REPLICAS))
        .map(String::as_str);
    if now == value {
        return Ok(false);
    }
    let patch = json!({"metadata": {"annotations": {PAUSED_REPLICAS: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("update", &object, e))?;
    Ok(true)
}

/// Deletes `<name>-primary`, the copy made from the target's autoscaler
/// `name`, if `canary` made it; the target's own autoscaler stays and
/// scales the target again.
pub(crate) async fn delete_primary(
    client: &kube::Client,
    namespace: &str,
    scaler: Scaler,
    name: &str,
) -> Result<super::managed::Removal> {
    let primary = canary_core::names::primary(name);
    let object = format!("{}/{primary}", scaler.noun());
    match scaler {
        Scaler::Hpa => {
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
            super::managed::delete(&api, &primary, &object).await
        }
        Scaler::ScaledObject => {
            super::managed::delete(&scaled_objects(client, namespace), &primary, &object).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_the_primary_and_never_twice() {
        assert_eq!(
            primary_query(
                r#"sum(rate(http_requests_total{deployment="podinfo"}[1m])) + sum(up{pod=~"podinfo-canary-.*"})"#,
                "podinfo"
            ),
            r#"sum(rate(http_requests_total{deployment="podinfo-primary"}[1m])) + sum(up{pod=~"podinfo-primary-.*"})"#
        );
        assert_eq!(primary_query("no name here", "podinfo"), "no name here");
    }

    #[test]
    fn the_primary_scaled_object_scales_the_primary_with_its_own_queries() {
        let source = json!({
            "scaleTargetRef": {"name": "podinfo"},
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "initialCooldownPeriod": 30,
            "advanced": {"horizontalPodAutoscalerConfig": {"name": "keda-hpa-podinfo"}},
            "triggers": [
                {"type": "prometheus", "name": "rps", "metadata": {"query": "sum(rate(x{app=\"podinfo\"}[1m]))", "threshold": "10"}},
                {"type": "cpu", "metadata": {"value": "60"}}
            ]
        });
        let mut a = AutoscalerReference::default();
        let spec = primary_scaled_object_spec(&source, "podinfo", &a, "podinfo-primary");
        assert_eq!(spec["scaleTargetRef"], json!({"name": "podinfo-primary"}));
        assert!(spec.get("initialCooldownPeriod").is_none());
        assert_eq!(
            spec["advanced"]["horizontalPodAutoscalerConfig"]["name"],
            "keda-hpa-podinfo-primary"
        );
        assert_eq!(
            spec["triggers"][0]["metadata"]["query"],
            "sum(rate(x{app=\"podinfo-primary\"}[1m]))"
        );
        assert_eq!(spec["triggers"][1]["metadata"], json!({"value": "60"}));
        // Queries given by trigger name replace the rewriting.
        a.primary_scaler_queries
            .insert("rps".into(), "sum(rate(y[1m]))".into());
        a.primary_scaler_replicas = Some(canary_core::spec::types::ScalerReplicas {
            min_replicas: Some(2),
            max_replicas: None,
        });
        let spec = primary_scaled_object_spec(&source, "podinfo", &a, "podinfo-primary");
        assert_eq!(spec["triggers"][0]["metadata"]["query"], "sum(rate(y[1m]))");
        assert_eq!(spec["minReplicaCount"], 2);
        assert_eq!(spec["maxReplicaCount"], 4);
    }
}
