//! ConfigMaps and Secrets a target uses: their hashes (a change to one is a
//! new revision, as in Flagger) and their `-primary` copies.
//!
//! References are found where Flagger looks: volumes (also projected),
//! `env[].valueFrom` and `envFrom`, of containers and init containers. A
//! ConfigMap or Secret annotated `flagger.app/config-tracking: disabled` is
//! left alone, as in Flagger. `canary revert` deletes the copies.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use super::error::{ClusterError, Result};
use super::hash::canonical_hash;
use super::managed::MANAGED_BY;
use super::managed::{self, Removal};

/// Flagger's opt-out annotation.
pub(crate) const TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConfigKind {
    ConfigMap,
    Secret,
}

/// A ConfigMap or Secret by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConfigRef {
    pub kind: ConfigKind,
    pub name: String,
}

impl ConfigRef {
    #[cfg(test)]
    pub(crate) fn config_map(name: &str) -> Self {
        ConfigRef {
            kind: ConfigKind::ConfigMap,
            name: name.to_string(),
        }
    }

    /// `configmap/NAME` or `secret/NAME`, the key in the state document.
    pub(crate) fn key(&self) -> String {
        match self.kind {
            ConfigKind::ConfigMap => format!("configmap/{}", self.name),
            ConfigKind::Secret => format!("secret/{}", self.name),
        }
    }
}

/// Every ConfigMap and Secret a pod template references.
pub(crate) fn referenced(template: &PodTemplateSpec) -> BTreeSet<ConfigRef> {
    let mut out = BTreeSet::new();
    let Some(spec) = &template.spec else {
        return out;
    };
    visit(spec, &mut |r| {
        out.insert(r.clone());
        None
    });
    out
}

/// Renames references to tracked configs to their `-primary` copies.
pub(crate) fn rewrite_refs(template: &mut PodTemplateSpec, tracked: &BTreeSet<ConfigRef>) {
    if let Some(spec) = template.spec.as_mut() {
        visit_mut(spec, &mut |r| {
            tracked.contains(r).then(|| format!("{}-primary", r.name))
        });
    }
}

fn visit(spec: &PodSpec, f: &mut dyn FnMut(&ConfigRef) -> Option<String>) {
    let mut copy = spec.clone();
    visit_mut(&mut copy, f);
}

/// Walks every config reference; `f` may return a new name.
fn visit_mut(spec: &mut PodSpec, f: &mut dyn FnMut(&ConfigRef) -> Option<String>) {
    let mut rename = |kind: ConfigKind, name: &mut String| {
        if let Some(n) = f(&ConfigRef {
            kind,
            name: name.clone(),
        }) {
            *name = n;
        }
    };
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = v.config_map.as_mut() {
            rename(ConfigKind::ConfigMap, &mut cm.name);
        }
        if let Some(s) = v.secret.as_mut()
            && let Some(n) = s.secret_name.as_mut()
        {
            rename(ConfigKind::Secret, n);
        }
        if let Some(p) = v.projected.as_mut() {
            for src in p.sources.iter_mut().flatten() {
                if let Some(cm) = src.config_map.as_mut() {
                    rename(ConfigKind::ConfigMap, &mut cm.name);
                }
                if let Some(s) = src.secret.as_mut() {
                    rename(ConfigKind::Secret, &mut s.name);
                }
            }
        }
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        for e in c.env.iter_mut().flatten() {
            if let Some(from) = e.value_from.as_mut() {
                if let Some(k) = from.config_map_key_ref.as_mut() {
                    rename(ConfigKind::ConfigMap, &mut k.name);
                }
                if let Some(k) = from.secret_key_ref.as_mut() {
                    rename(ConfigKind::Secret, &mut k.name);
                }
            }
        }
        for e in c.env_from.iter_mut().flatten() {
            if let Some(r) = e.config_map_ref.as_mut() {
                rename(ConfigKind::ConfigMap, &mut r.name);
            }
            if let Some(r) = e.secret_ref.as_mut() {
                rename(ConfigKind::Secret, &mut r.name);
            }
        }
    }
}

/// A tracked config's content.
#[derive(Debug, Clone)]
pub(crate) enum ConfigData {
    ConfigMap(ConfigMap),
    Secret(Secret),
}

/// The configs a target tracks: hashes by key, and their contents for
/// copying at promotion.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracked {
    pub hashes: BTreeMap<String, String>,
    pub objects: BTreeMap<ConfigRef, ConfigData>,
}

impl Tracked {
    pub(crate) fn refs(&self) -> BTreeSet<ConfigRef> {
        self.objects.keys().cloned().collect()
    }
}

fn tracking_disabled(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(TRACKING_ANNOTATION))
        .is_some_and(|v| v == "disabled")
}

/// Reads and hashes the configs a template references. Missing ones are
/// skipped (the pod would not start; readiness will say so).
pub(crate) async fn track(
    client: &kube::Client,
    namespace: &str,
    template: &PodTemplateSpec,
) -> Result<Tracked> {
    let mut out = Tracked::default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for r in referenced(template) {
        let object = format!("{} in {namespace}", r.key());
        match r.kind {
            ConfigKind::ConfigMap => {
                let Some(cm) = cms
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| ClusterError::api("read", &object, e))?
                else {
                    continue;
                };
                if tracking_disabled(&cm.metadata) {
                    continue;
                }
                let data = serde_json::json!({"data": cm.data, "binaryData": cm.binary_data});
                out.hashes
                    .insert(r.key(), canonical_hash(&data, &BTreeMap::new()));
                out.objects.insert(r, ConfigData::ConfigMap(cm));
            }
            ConfigKind::Secret => {
                let Some(s) = secrets
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| ClusterError::api("read", &object, e))?
                else {
                    continue;
                };
                if tracking_disabled(&s.metadata) {
                    continue;
                }
                let data = serde_json::json!({"data": s.data, "stringData": s.string_data, "type": s.type_});
                out.hashes
                    .insert(r.key(), canonical_hash(&data, &BTreeMap::new()));
                out.objects.insert(r, ConfigData::Secret(s));
            }
        }
    }
    Ok(out)
}

fn copy_meta(meta: &ObjectMeta) -> ObjectMeta {
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    ObjectMeta {
        name: meta.name.as_ref().map(|n| format!("{n}-primary")),
        namespace: meta.namespace.clone(),
        labels: Some(labels),
        annotations: meta.annotations.clone(),
        ..ObjectMeta::default()
    }
}

/// Creates or replaces the `-primary` copies of the tracked configs.
pub(crate) async fn copy_to_primary(
    client: &kube::Client,
    namespace: &str,
    tracked: &Tracked,
) -> Result<()> {
    for (r, data) in &tracked.objects {
        let object = format!("{}-primary in {namespace}", r.key());
        let name = format!("{}-primary", r.name);
        match data {
            ConfigData::ConfigMap(cm) => {
                let copy = ConfigMap {
                    metadata: copy_meta(&cm.metadata),
                    data: cm.data.clone(),
                    binary_data: cm.binary_data.clone(),
                    immutable: cm.immutable,
                };
                upsert(
                    &Api::namespaced(client.clone(), namespace),
                    &name,
                    copy,
                    &object,
                )
                .await?;
            }
            ConfigData::Secret(s) => {
                let copy = Secret {
                    metadata: copy_meta(&s.metadata),
                    data: s.data.clone(),
                    string_data: s.string_data.clone(),
                    type_: s.type_.clone(),
                    immutable: s.immutable,
                };
                upsert(
                    &Api::namespaced(client.clone(), namespace),
                    &name,
                    copy,
                    &object,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The `-primary` copies a primary may use: the references of its pod
/// template that name one, and the copies of what the target references
/// (made at initialisation, whether or not a promotion used them since).
pub(crate) fn copies(primary: &PodTemplateSpec, target: &PodTemplateSpec) -> BTreeSet<ConfigRef> {
    let of_primary = referenced(primary)
        .into_iter()
        .filter(|r| r.name.ends_with("-primary"));
    let of_target = referenced(target).into_iter().map(|r| ConfigRef {
        name: format!("{}-primary", r.name),
        ..r
    });
    of_primary.chain(of_target).collect()
}

/// Deletes the copy `r` (a `-primary` ConfigMap or Secret) if `canary`
/// made it.
pub(crate) async fn delete_copy(
    client: &kube::Client,
    namespace: &str,
    r: &ConfigRef,
) -> Result<Removal> {
    let object = r.key();
    match r.kind {
        ConfigKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            managed::delete(&api, &r.name, &object).await
        }
        ConfigKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            managed::delete(&api, &r.name, &object).await
        }
    }
}

/// Creates `copy`, or replaces the live object with it.
async fn upsert<K>(api: &Api<K>, name: &str, mut copy: K, object: &str) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let pp = PostParams::default();
    match api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::api("read", object, e))?
    {
        Some(live) => {
            copy.meta_mut().resource_version = live.meta().resource_version.clone();
            api.replace(name, &pp, &copy)
                .await
                .map_err(|e| ClusterError::api("update", object, e))?;
        }
        None => {
            api.create(&pp, &copy)
                .await
                .map_err(|e| ClusterError::api("create", object, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_everywhere_flagger_looks() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm-vol"}},
                    {"name": "b", "secret": {"secretName": "s-vol"}},
                    {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}]}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-init"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "x"}}}
                ]}]
            }
        }))
        .unwrap();
        let names: Vec<String> = referenced(&t).into_iter().map(|r| r.key()).collect();
        assert_eq!(
            names,
            [
                "configmap/cm-env",
                "configmap/cm-proj",
                "configmap/cm-vol",
                "secret/s-init",
                "secret/s-vol"
            ]
        );
    }
}
