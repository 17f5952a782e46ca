//! The target Deployment and its `-primary` copy: readiness, revision, the
//! primary's construction, promotion and deletion, scaling, and setting
//! images.
//!
//! Names and labels are Flagger's, so a team can move between Flagger and
//! `canary` without renaming anything: the primary is `<target>-primary`,
//! its selector label (the first of `app`, `name`, `app.kubernetes.io/name`
//! the target selects on) carries `<value>-primary`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::configs::{ConfigRef, rewrite_refs};
use super::error::{ClusterError, Result};
use super::managed::MANAGED_BY;
use canary_core::engine::decide::Workload;
use canary_core::engine::state::State;

/// Labels Flagger accepts as the selector label, in order.
pub(crate) use canary_core::spec::manifest::SELECTOR_LABELS;

/// The selector label of a target and its value.
pub(crate) fn selector_label(dep: &Deployment) -> Result<(String, String)> {
    let name = dep.metadata.name.clone().unwrap_or_default();
    let labels = dep.spec.selector.match_labels.clone().unwrap_or_default();
    SELECTOR_LABELS
        .iter()
        .find_map(|l| labels.get(*l).map(|v| (l.to_string(), v.clone())))
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "deployment/{name} selects its pods by none of the labels {}; \
                 add one of them to spec.selector.matchLabels",
                SELECTOR_LABELS.join(", ")
            ))
        })
}

/// Readiness as the engine sees it.
pub(crate) fn observe(dep: &Deployment) -> Workload {
    let desired = dep.spec.replicas.unwrap_or(1).max(0) as u32;
    let status = dep.status.clone().unwrap_or_default();
    let generation = dep.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0).max(0) as u32;
    let total = status.replicas.unwrap_or(0).max(0) as u32;
    let ready = status.ready_replicas.unwrap_or(0).max(0) as u32;
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    Workload {
        desired,
        ready: ready.min(updated),
        // Every replica runs the latest template the controller has seen,
        // and it has seen the latest spec.
        rolled_out: observed >= generation && updated >= desired && total <= updated,
        deadline_exceeded,
    }
}

/// The revision of a target: its pod template plus the data of the
/// ConfigMaps and Secrets it uses.
pub(crate) fn revision(dep: &Deployment, configs: &BTreeMap<String, String>) -> String {
    let template = serde_json::to_value(&dep.spec.template).unwrap_or_default();
    super::hash::canonical_hash(&template, configs)
}

/// The primary's pod template: the target's, with the selector label
/// pointing at the primary and tracked configs renamed to their copies.
pub(crate) fn primary_template(
    target: &Deployment,
    label: &str,
    primary_value: &str,
    tracked: &BTreeSet<ConfigRef>,
) -> PodTemplateSpec {
    let mut template = target.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(label.to_string(), primary_value.to_string());
    rewrite_refs(&mut template, tracked);
    template
}

/// A new primary Deployment for a target.
pub(crate) fn build_primary(
    target: &Deployment,
    label: &str,
    label_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    state_annotations: Vec<(String, String)>,
) -> Deployment {
    let name = target.metadata.name.clone().unwrap_or_default();
    let primary = canary_core::names::primary(&name);
    let primary_value = canary_core::names::primary(label_value);
    let mut labels = target.metadata.labels.clone().unwrap_or_default();
    labels.insert(label.to_string(), primary_value.clone());
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    let annotations: BTreeMap<String, String> = state_annotations.into_iter().collect();
    let spec = target.spec.clone();
    let replicas = spec.replicas.filter(|r| *r > 0).unwrap_or(1);
    Deployment {
        metadata: ObjectMeta {
            name: Some(primary),
            namespace: target.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: k8s_openapi::api::apps::v1::DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(label.to_string(), primary_value.clone())])),
                match_expressions: None,
            },
            template: primary_template(target, label, &primary_value, tracked),
            ..spec
        },
        status: None,
    }
}

/// A Deployment by name; `None` when there is none.
pub(crate) async fn get(api: &Api<Deployment>, name: &str) -> Result<Option<Deployment>> {
    api.get_opt(name)
        .await
        .map_err(|e| ClusterError::api("read", format!("deployment/{name}"), e))
}

/// Creates the primary of `target` (see [`build_primary`]) carrying
/// `state`; returns its resourceVersion.
pub(crate) async fn create_primary(
    api: &Api<Deployment>,
    target: &Deployment,
    label: &str,
    label_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    state: &State,
) -> Result<Option<String>> {
    let primary = build_primary(
        target,
        label,
        label_value,
        tracked,
        super::state::annotations(state),
    );
    let name = primary.metadata.name.clone().unwrap_or_default();
    let created = api
        .create(&PostParams::default(), &primary)
        .await
        .map_err(|e| ClusterError::api("create", format!("deployment/{name}"), e))?;
    Ok(created.metadata.resource_version)
}

/// Gives the primary of `target` the target's pod template (see
/// [`primary_template`]) and, when given, `replicas`; returns the primary's
/// new resourceVersion.
pub(crate) async fn promote(
    api: &Api<Deployment>,
    target: &Deployment,
    label: &str,
    label_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    replicas: Option<i32>,
) -> Result<Option<String>> {
    let name = canary_core::names::primary(target.metadata.name.as_deref().unwrap_or_default());
    let template = primary_template(
        target,
        label,
        &canary_core::names::primary(label_value),
        tracked,
    );
    // Read, modify, replace: the controller's status updates move the
    // resourceVersion, so a conflict is read again.
    for _ in 0..10 {
        let mut primary = api
            .get(&name)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{name}"), e))?;
        primary.spec.template = template.clone();
        // Left out of an update, the server keeps them: not sent back.
        primary.metadata.managed_fields = None;
        if let Some(r) = replicas {
            primary.spec.replicas = Some(r);
        }
        match api.replace(&name, &PostParams::default(), &primary).await {
            Ok(updated) => return Ok(updated.metadata.resource_version),
            Err(e) => {
                let e = ClusterError::api("promote to", format!("deployment/{name}"), e);
                if !e.is_conflict() {
                    return Err(e);
                }
            }
        }
    }
    Err(ClusterError::Conflict {
        object: format!("deployment/{name}"),
    })
}

/// Sets the replicas of a Deployment, and nothing else; returns its new
/// resourceVersion.
pub(crate) async fn scale(
    api: &Api<Deployment>,
    name: &str,
    replicas: i32,
) -> Result<Option<String>> {
    let patch = json!({"spec": {"replicas": replicas}});
    let updated = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("scale", format!("deployment/{name}"), e))?;
    Ok(updated.metadata.resource_version)
}

/// The names of a Deployment's containers.
pub(crate) async fn containers(api: &Api<Deployment>, name: &str) -> Result<Vec<String>> {
    let dep = api
        .get(name)
        .await
        .map_err(|e| ClusterError::api("read", format!("deployment/{name}"), e))?;
    Ok(dep
        .spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default())
}

/// Sets the image of containers by name, with the strategic merge patch
/// `kubectl set image` sends.
pub(crate) async fn set_images(
    api: &Api<Deployment>,
    name: &str,
    images: &[(String, String)],
) -> Result<()> {
    let containers: Vec<_> = images
        .iter()
        .map(|(container, image)| json!({"name": container, "image": image}))
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| ClusterError::api("set the image of", format!("deployment/{name}"), e))?;
    Ok(())
}

/// The Deployments carrying `canary`'s managed-by label in the namespace
/// of `api`: the primaries of its canaries.
pub(crate) async fn managed(api: &Api<Deployment>) -> Result<Vec<Deployment>> {
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ClusterError::api("list", "deployments", e))?;
    Ok(list.items)
}

/// Deletes the primary `name` if `canary` made it; its ReplicaSets and
/// Pods follow in the background, and with it goes the state.
pub(crate) async fn delete_primary(
    api: &Api<Deployment>,
    name: &str,
) -> Result<super::managed::Removal> {
    super::managed::delete(api, name, &format!("deployment/{name}")).await
}

/// Whether a Flagger installed in the cluster owns this primary.
pub(crate) fn flagger_owner(primary: &Deployment) -> Option<String> {
    primary
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Canary" && o.api_version.starts_with("flagger.app/"))
        .map(|o| o.name.clone())
}

/// The changes to one Deployment, by name, as a stream that starts with
/// its current state; a failing watch retries with a backoff rather than
/// spinning.
pub(crate) fn watch_one(
    api: &kube::Api<Deployment>,
    name: &str,
) -> futures::stream::BoxStream<
    'static,
    std::result::Result<kube::runtime::watcher::Event<Deployment>, kube::runtime::watcher::Error>,
> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    watcher::watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .boxed()
}

/// Wakes once for every change to one Deployment (see [`watch_one`]).
pub(crate) fn watch_changes(
    api: &Api<Deployment>,
    name: &str,
) -> futures::stream::BoxStream<'static, ()> {
    use futures::StreamExt;
    watch_one(api, name).map(|_| ()).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "prod", "labels": {"app": "podinfo"}, "generation": 3},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfod", "image": "podinfo:3.1.0",
                        "envFrom": [{"configMapRef": {"name": "settings"}}]}]}
                }
            },
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}
        }))
        .unwrap()
    }

    #[test]
    fn the_primary_selects_its_own_pods_and_uses_config_copies() {
        let t = target();
        let tracked = BTreeSet::from([ConfigRef::config_map("settings")]);
        let p = build_primary(
            &t,
            "app",
            "podinfo",
            &tracked,
            vec![("a".into(), "{}".into())],
        );
        assert_eq!(p.metadata.name.as_deref(), Some("podinfo-primary"));
        let spec = p.spec;
        assert_eq!(
            spec.selector.match_labels.unwrap()["app"],
            "podinfo-primary"
        );
        let tpl = spec.template;
        assert_eq!(
            tpl.metadata.unwrap().labels.unwrap()["app"],
            "podinfo-primary"
        );
        let c = &tpl.spec.unwrap().containers[0];
        assert_eq!(
            c.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name,
            "settings-primary"
        );
    }

    #[test]
    fn revisions_change_with_the_template_and_the_configs_only() {
        let t = target();
        let r1 = revision(&t, &BTreeMap::new());
        let mut t2 = t.clone();
        t2.spec.replicas = Some(0);
        assert_eq!(r1, revision(&t2, &BTreeMap::new()));
        let configs = BTreeMap::from([("configmap/settings".to_string(), "abc".to_string())]);
        assert_ne!(r1, revision(&t, &configs));
        t2.spec.template.spec.as_mut().unwrap().containers[0].image = Some("podinfo:3.1.1".into());
        assert_ne!(r1, revision(&t2, &BTreeMap::new()));
    }

    #[test]
    fn readiness_needs_the_latest_generation_rolled_out() {
        let t = target();
        assert!(observe(&t).is_ready(100));
        let mut stale = t.clone();
        stale.metadata.generation = Some(4);
        assert!(!observe(&stale).is_ready(100));
    }
}
