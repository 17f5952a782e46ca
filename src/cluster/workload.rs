//! The target workload (a Deployment or a DaemonSet) and its `-primary`
//! copy: readiness, revision, the primary's construction, promotion and
//! deletion, scaling, and setting images. Everything that differs between
//! the two kinds is here: the rest of the product holds a [`Object`] and
//! a [`Workloads`] handle.
//!
//! Names and labels are Flagger's, so a team can move between Flagger and
//! `canary` without renaming anything: the primary is `<target>-primary`,
//! its selector label (the first of `app`, `name`, `app.kubernetes.io/name`
//! the target selects on) carries `<value>-primary`. A DaemonSet has no
//! replicas: as Flagger does, its target is "scaled to zero" with a
//! `nodeSelector` no node matches ([`SCALE_TO_ZERO`]), which the revision,
//! the primary and promotion leave out.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::configs::{ConfigRef, rewrite_refs};
use super::error::{ClusterError, Result};
use super::knative::{KnativeService, KnativeServices};
use super::managed::MANAGED_BY;
use canary_core::engine::decide::Workload;
use canary_core::engine::state::State;

/// Labels Flagger accepts as the selector label, in order.
pub(crate) use canary_core::spec::manifest::SELECTOR_LABELS;

/// The selector label of a target and its value.
pub(crate) fn selector_label(dep: &Deployment) -> Result<(String, String)> {
    let name = dep.metadata.name.clone().unwrap_or_default();
    let labels = dep.spec.selector.match_labels.clone().unwrap_or_default();
    find_selector_label(&labels, &format!("deployment/{name}"))
}

fn find_selector_label(
    labels: &BTreeMap<String, String>,
    object: &str,
) -> Result<(String, String)> {
    SELECTOR_LABELS
        .iter()
        .find_map(|l| labels.get(*l).map(|v| (l.to_string(), v.clone())))
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{object} selects its pods by none of the labels {}; \
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
    pointed_at_primary(target.spec.template.clone(), label, primary_value, tracked)
}

/// `template` with the selector label pointing at the primary and tracked
/// configs renamed to their copies: what both kinds of primary run.
fn pointed_at_primary(
    mut template: PodTemplateSpec,
    label: &str,
    primary_value: &str,
    tracked: &BTreeSet<ConfigRef>,
) -> PodTemplateSpec {
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(label.to_string(), primary_value.to_string());
    rewrite_refs(&mut template, tracked);
    template
}

/// The metadata and the selector of the primary of a target with
/// `metadata`: named `<name>-primary`, its labels plus the selector label
/// pointing at the primary and the managed-by label, carrying the state
/// annotations.
fn primary_meta(
    metadata: &ObjectMeta,
    label: &str,
    primary_value: &str,
    state_annotations: Vec<(String, String)>,
) -> (ObjectMeta, LabelSelector) {
    let name = metadata.name.clone().unwrap_or_default();
    let mut labels = metadata.labels.clone().unwrap_or_default();
    labels.insert(label.to_string(), primary_value.to_string());
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    let meta = ObjectMeta {
        name: Some(canary_core::names::primary(&name)),
        namespace: metadata.namespace.clone(),
        labels: Some(labels),
        annotations: Some(state_annotations.into_iter().collect()),
        ..ObjectMeta::default()
    };
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            label.to_string(),
            primary_value.to_string(),
        )])),
        match_expressions: None,
    };
    (meta, selector)
}

/// A new primary Deployment for a target.
pub(crate) fn build_primary(
    target: &Deployment,
    label: &str,
    label_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    state_annotations: Vec<(String, String)>,
) -> Deployment {
    let primary_value = canary_core::names::primary(label_value);
    let (metadata, selector) =
        primary_meta(&target.metadata, label, &primary_value, state_annotations);
    let spec = target.spec.clone();
    let replicas = spec.replicas.filter(|r| *r > 0).unwrap_or(1);
    Deployment {
        metadata,
        spec: k8s_openapi::api::apps::v1::DeploymentSpec {
            replicas: Some(replicas),
            selector,
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
/// new resourceVersion. One strategic merge patch that replaces the
/// template whole (`$patch: replace`, as an update would): no read, and
/// no conflict with the controller's status updates, which a
/// read-modify-replace meets whenever one lands in between.
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
    let mut template = serde_json::to_value(&template).map_err(|e| {
        ClusterError::Config(format!(
            "the template of deployment/{name} does not serialise: {e}"
        ))
    })?;
    template["$patch"] = json!("replace");
    let mut patch = json!({"spec": {"template": template}});
    if let Some(r) = replicas {
        patch["spec"]["replicas"] = json!(r);
    }
    let updated = api
        .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| ClusterError::api("promote to", format!("deployment/{name}"), e))?;
    Ok(updated.metadata.resource_version)
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

/// Sets the image of containers by name, with the strategic merge patch
/// `kubectl set image` sends.
/// Sets container images of Deployment `name`; returns the
/// resourceVersion the change was written at.
pub(crate) async fn set_images(
    api: &Api<Deployment>,
    name: &str,
    images: &[(String, String)],
) -> Result<Option<String>> {
    let containers: Vec<_> = images
        .iter()
        .map(|(container, image)| json!({"name": container, "image": image}))
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    let written = api
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| ClusterError::api("set the image of", format!("deployment/{name}"), e))?;
    Ok(written.metadata.resource_version)
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

fn flagger_owner_of(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Canary" && o.api_version.starts_with("flagger.app/"))
        .map(|o| o.name.clone())
}

/// The changes to one Deployment, by name, as a stream that starts with
/// its current state; a failing watch retries with a backoff rather than
/// spinning.
pub(crate) fn watch_one<K: super::state::Primary>(
    api: &kube::Api<K>,
    name: &str,
) -> futures::stream::BoxStream<
    'static,
    std::result::Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
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

/// The `nodeSelector` entry with which Flagger scales a DaemonSet target
/// to zero: no node carries the label, so no pod is scheduled.
pub(crate) const SCALE_TO_ZERO: (&str, &str) = ("flagger.app/scale-to-zero", "true");

/// The kinds of target `canary run` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Deployment,
    DaemonSet,
    /// A Knative Service (`serving.knative.dev/v1`): its own primary, by
    /// the revision its annotation names (see [`super::knative`]).
    Knative,
}

impl Kind {
    /// The kind of `targetRef.kind`; `None` for a kind not driven (refused
    /// earlier by the capability table).
    pub(crate) fn of(kind: &str) -> Option<Kind> {
        match kind {
            "Deployment" => Some(Kind::Deployment),
            "DaemonSet" => Some(Kind::DaemonSet),
            "Service" => Some(Kind::Knative),
            _ => None,
        }
    }

    /// The kind as `targetRef.kind` names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::DaemonSet => "DaemonSet",
            Kind::Knative => "Service",
        }
    }

    /// How `kubectl` names the kind: `deployment`, `daemonset`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::DaemonSet => "daemonset",
            Kind::Knative => "ksvc",
        }
    }

    /// The object that holds the state of the canary of `target`: its
    /// `-primary` copy, or a Knative Service itself.
    pub(crate) fn primary_name(self, target: &str) -> String {
        match self {
            Kind::Knative => target.to_string(),
            _ => canary_core::names::primary(target),
        }
    }
}

/// A Knative Service target as read: the Service, and the readiness of
/// its latest created revision and of its primary revision.
#[derive(Debug, Clone)]
pub(crate) struct KnativeTarget {
    pub(crate) service: KnativeService,
    pub(crate) latest: Workload,
    pub(crate) primary: Workload,
    /// A Knative Service's pods are its revisions', out of `canary`'s
    /// reach: no template of its own to track configs in.
    no_template: PodTemplateSpec,
}

/// A target or primary of either kind.
#[derive(Debug, Clone)]
pub(crate) enum Object {
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    Knative(Box<KnativeTarget>),
}

impl super::state::Annotated for Object {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Deployment(d) => &d.metadata,
            Object::DaemonSet(d) => &d.metadata,
            Object::Knative(k) => &k.service.metadata,
        }
    }
}

impl Object {
    /// A Knative Service as a listing shows it: its revisions' readiness
    /// not read.
    pub(crate) fn knative_unobserved(service: KnativeService) -> Object {
        Object::Knative(Box::new(KnativeTarget {
            service,
            latest: Workload::default(),
            primary: Workload::default(),
            no_template: PodTemplateSpec::default(),
        }))
    }

    fn metadata(&self) -> &ObjectMeta {
        super::state::Annotated::meta(self)
    }

    /// The resourceVersion.
    pub(crate) fn resource_version(&self) -> Option<String> {
        self.metadata().resource_version.clone()
    }

    /// The pod template as the revision sees it: a DaemonSet's without
    /// the scale-to-zero selector.
    pub(crate) fn template(&self) -> PodTemplateSpec {
        match self {
            Object::Deployment(d) => d.spec.template.clone(),
            Object::DaemonSet(d) => {
                let mut t = d.spec.template.clone();
                without_scale_to_zero(&mut t);
                t
            }
            Object::Knative(k) => k.no_template.clone(),
        }
    }

    /// The replicas a Deployment asks for; `None` for a DaemonSet.
    pub(crate) fn replicas(&self) -> Option<i32> {
        match self {
            Object::Deployment(d) => d.spec.replicas,
            Object::DaemonSet(_) | Object::Knative(_) => None,
        }
    }

    /// Whether the target is scaled to zero (no replicas asked for, or a
    /// DaemonSet's scale-to-zero selector).
    pub(crate) fn scaled_to_zero(&self) -> bool {
        match self {
            Object::Deployment(d) => d.spec.replicas == Some(0),
            Object::DaemonSet(d) => d
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.node_selector.as_ref())
                .is_some_and(|n| {
                    n.get(SCALE_TO_ZERO.0).map(String::as_str) == Some(SCALE_TO_ZERO.1)
                }),
            Object::Knative(_) => false,
        }
    }

    /// The selector label and its value.
    pub(crate) fn selector_label(&self) -> Result<(String, String)> {
        match self {
            Object::Deployment(d) => selector_label(d),
            Object::DaemonSet(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                let labels = d.spec.selector.match_labels.clone().unwrap_or_default();
                find_selector_label(&labels, &format!("daemonset/{name}"))
            }
            // The label Knative gives the pods of every revision.
            Object::Knative(k) => Ok((
                "serving.knative.dev/service".to_string(),
                k.service.metadata.name.clone().unwrap_or_default(),
            )),
        }
    }

    /// Readiness as the engine sees it; a Knative Service's is that of its
    /// latest created revision.
    pub(crate) fn observe(&self) -> Workload {
        match self {
            Object::Deployment(d) => observe(d),
            Object::DaemonSet(d) => observe_daemonset(d),
            Object::Knative(k) => k.latest.clone(),
        }
    }

    /// Readiness of a primary as the engine sees it; a Knative Service's
    /// is that of the revision its annotation names.
    pub(crate) fn observe_primary(&self) -> Workload {
        match self {
            Object::Knative(k) => k.primary.clone(),
            _ => self.observe(),
        }
    }

    /// The revision: the pod template plus the data of the configs it uses.
    pub(crate) fn revision(&self, configs: &BTreeMap<String, String>) -> String {
        match self {
            Object::Deployment(d) => revision(d, configs),
            Object::DaemonSet(_) => {
                let template = serde_json::to_value(self.template()).unwrap_or_default();
                super::hash::canonical_hash(&template, configs)
            }
            // Flagger's: the name of the latest created revision.
            Object::Knative(k) => super::knative::latest_created_revision(&k.service.value())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The kind.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Object::Deployment(_) => Kind::Deployment,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::Knative(_) => Kind::Knative,
        }
    }

    /// The name.
    pub(crate) fn name(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }

    /// The pod template as stored, scale-to-zero selector included.
    pub(crate) fn raw_template(&self) -> &PodTemplateSpec {
        match self {
            Object::Deployment(d) => &d.spec.template,
            Object::DaemonSet(d) => &d.spec.template,
            Object::Knative(k) => &k.no_template,
        }
    }

    /// Whether a Flagger installed in the cluster owns this primary.
    pub(crate) fn flagger_owner(&self) -> Option<String> {
        flagger_owner_of(self.metadata())
    }
}

/// Removes the scale-to-zero selector from a pod template, and an empty
/// `nodeSelector` with it.
fn without_scale_to_zero(t: &mut PodTemplateSpec) {
    if let Some(spec) = t.spec.as_mut()
        && let Some(n) = spec.node_selector.as_mut()
    {
        n.remove(SCALE_TO_ZERO.0);
        if n.is_empty() {
            spec.node_selector = None;
        }
    }
}

/// Readiness of a DaemonSet, from the counts its controller reports:
/// every node it should run on has a pod of the latest template, ready.
pub(crate) fn observe_daemonset(d: &DaemonSet) -> Workload {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let desired = status.desired_number_scheduled.max(0) as u32;
    let updated = status.updated_number_scheduled.unwrap_or(0).max(0) as u32;
    let ready = status.number_ready.max(0) as u32;
    let current = status.current_number_scheduled.max(0) as u32;
    Workload {
        desired,
        ready: ready.min(updated),
        rolled_out: observed >= generation && updated >= desired && current <= desired,
        deadline_exceeded: false,
    }
}

/// The Kubernetes calls on the target and its primary, for the kind of
/// the target.
#[derive(Clone)]
pub(crate) struct Workloads {
    pub(crate) kind: Kind,
    deployments: Api<Deployment>,
    daemonsets: Api<DaemonSet>,
    knative: Api<KnativeService>,
    revisions: KnativeServices,
}

impl Workloads {
    pub(crate) fn new(client: &kube::Client, namespace: &str, kind: Kind) -> Self {
        Workloads {
            kind,
            deployments: Api::namespaced(client.clone(), namespace),
            daemonsets: Api::namespaced(client.clone(), namespace),
            knative: Api::namespaced(client.clone(), namespace),
            revisions: KnativeServices::new(client, namespace),
        }
    }

    /// `kind/name` for messages.
    pub(crate) fn object(&self, name: &str) -> String {
        format!("{}/{name}", self.kind.noun())
    }

    /// A workload of the kind by name; `None` when there is none.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Object>> {
        match self.kind {
            Kind::Deployment => Ok(get(&self.deployments, name).await?.map(Object::Deployment)),
            Kind::DaemonSet => Ok(self
                .daemonsets
                .get_opt(name)
                .await
                .map_err(|e| ClusterError::api("read", self.object(name), e))?
                .map(Object::DaemonSet)),
            Kind::Knative => {
                let Some(service) = self
                    .knative
                    .get_opt(name)
                    .await
                    .map_err(|e| ClusterError::api("read", self.object(name), e))?
                else {
                    return Ok(None);
                };
                Ok(Some(self.knative_target(service).await?))
            }
        }
    }

    /// A Knative Service with the readiness of its two revisions.
    async fn knative_target(&self, service: KnativeService) -> Result<Object> {
        let value = service.value();
        let latest = self
            .revisions
            .observe_revision(super::knative::latest_created_revision(&value))
            .await?;
        let primary = self
            .revisions
            .observe_revision(super::knative::primary_revision(&value))
            .await?;
        Ok(Object::Knative(Box::new(KnativeTarget {
            service,
            latest,
            primary,
            no_template: PodTemplateSpec::default(),
        })))
    }

    /// The object holding the state of the canary of `target` (see
    /// [`Kind::primary_name`]); `None` before it is initialised. A Knative
    /// Service is its own primary once its annotation names a revision (or
    /// while it carries `canary`'s state).
    pub(crate) async fn get_primary(&self, target: &str) -> Result<Option<Object>> {
        let found = self.get(&self.kind.primary_name(target)).await?;
        Ok(found.filter(|o| match o {
            Object::Knative(k) => {
                super::knative::primary_revision(&k.service.value()).is_some()
                    || super::state::Annotated::meta(o)
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(canary_core::engine::state::ANNOTATION))
            }
            _ => true,
        }))
    }

    /// Creates the primary of `target` carrying `state`; returns its
    /// resourceVersion.
    pub(crate) async fn create_primary(
        &self,
        target: &Object,
        label: &str,
        label_value: &str,
        tracked: &BTreeSet<ConfigRef>,
        state: &State,
    ) -> Result<Option<String>> {
        match target {
            Object::Deployment(d) => {
                create_primary(&self.deployments, d, label, label_value, tracked, state).await
            }
            Object::DaemonSet(d) => {
                let primary = build_primary_daemonset(
                    d,
                    label,
                    label_value,
                    tracked,
                    super::state::annotations(state),
                );
                let name = primary.metadata.name.clone().unwrap_or_default();
                let created = self
                    .daemonsets
                    .create(&PostParams::default(), &primary)
                    .await
                    .map_err(|e| ClusterError::api("create", self.object(&name), e))?;
                Ok(created.metadata.resource_version)
            }
            // The annotation names the latest created revision, which takes
            // all the traffic, and the state is stored beside it.
            Object::Knative(k) => {
                let name = target.name();
                let latest = super::knative::latest_created_revision(&k.service.value())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ClusterError::Invalid(format!(
                            "{} has no revision yet (status.latestCreatedRevisionName)",
                            self.object(&name)
                        ))
                    })?;
                let mut patch = super::knative::initialise_patch(&latest);
                for (k, v) in super::state::annotations(state) {
                    patch["metadata"]["annotations"][k] = json!(v);
                }
                self.revisions.patch(&name, &patch).await
            }
        }
    }

    /// Gives the primary the target's pod template (and a Deployment's
    /// `replicas`, when given); returns the primary's new resourceVersion.
    pub(crate) async fn promote(
        &self,
        target: &Object,
        label: &str,
        label_value: &str,
        tracked: &BTreeSet<ConfigRef>,
        replicas: Option<i32>,
    ) -> Result<Option<String>> {
        let d = match target {
            Object::Deployment(d) => {
                return promote(&self.deployments, d, label, label_value, tracked, replicas).await;
            }
            Object::DaemonSet(d) => d,
            // The annotation moves to the latest created revision.
            Object::Knative(k) => {
                let name = target.name();
                let Some(latest) =
                    super::knative::latest_created_revision(&k.service.value()).map(str::to_string)
                else {
                    return Err(ClusterError::Invalid(format!(
                        "{} has no revision to promote",
                        self.object(&name)
                    )));
                };
                return self
                    .revisions
                    .patch(&name, &super::knative::promote_patch(&latest))
                    .await;
            }
        };
        let name = canary_core::names::primary(d.metadata.name.as_deref().unwrap_or_default());
        let spec = d.spec.clone();
        let template = daemonset_primary_template(
            d,
            label,
            &canary_core::names::primary(label_value),
            tracked,
        );
        for _ in 0..10 {
            let mut primary = self
                .daemonsets
                .get(&name)
                .await
                .map_err(|e| ClusterError::api("read", self.object(&name), e))?;
            let p = &mut primary.spec;
            p.template = template.clone();
            p.min_ready_seconds = spec.min_ready_seconds;
            p.revision_history_limit = spec.revision_history_limit;
            p.update_strategy = spec.update_strategy.clone();
            match self
                .daemonsets
                .replace(&name, &PostParams::default(), &primary)
                .await
            {
                Ok(updated) => return Ok(updated.metadata.resource_version),
                Err(e) => {
                    let e = ClusterError::api("promote to", self.object(&name), e);
                    if !e.is_conflict() {
                        return Err(e);
                    }
                }
            }
        }
        Err(ClusterError::Conflict {
            object: self.object(&name),
        })
    }

    /// Scales the target `name` to zero, or up again: a Deployment to
    /// `replicas`, a DaemonSet by removing the scale-to-zero selector.
    /// Returns the target's resourceVersion after the write.
    pub(crate) async fn scale(&self, name: &str, up: Option<i32>) -> Result<Option<String>> {
        match self.kind {
            Kind::Deployment => scale(&self.deployments, name, up.unwrap_or(0)).await,
            Kind::DaemonSet => {
                let value = match up {
                    Some(_) => serde_json::Value::Null,
                    None => json!(SCALE_TO_ZERO.1),
                };
                let patch = json!({"spec": {"template": {"spec": {
                    "nodeSelector": {SCALE_TO_ZERO.0: value}
                }}}});
                let updated = self
                    .daemonsets
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| ClusterError::api("scale", self.object(name), e))?;
                Ok(updated.metadata.resource_version)
            }
            // Knative scales its revisions itself; Flagger leaves them.
            Kind::Knative => Ok(None),
        }
    }

    /// The names of the target's containers.
    pub(crate) async fn containers(&self, name: &str) -> Result<Vec<String>> {
        let Some(o) = self.get(name).await? else {
            return Err(ClusterError::NotFound {
                object: self.object(name),
            });
        };
        if let Object::Knative(k) = &o {
            return Ok(k.service.spec["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["name"].as_str().unwrap_or("user-container").to_string())
                .collect());
        }
        Ok(o.template()
            .spec
            .map(|s| s.containers.into_iter().map(|c| c.name).collect())
            .unwrap_or_default())
    }

    /// Sets the image of containers by name.
    /// Sets container images of the workload `name`; returns the
    /// resourceVersion the change was written at.
    pub(crate) async fn set_images(
        &self,
        name: &str,
        images: &[(String, String)],
    ) -> Result<Option<String>> {
        match self.kind {
            Kind::Deployment => set_images(&self.deployments, name, images).await,
            Kind::DaemonSet => {
                let containers: Vec<_> = images
                    .iter()
                    .map(|(container, image)| json!({"name": container, "image": image}))
                    .collect();
                let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
                let written = self
                    .daemonsets
                    .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                    .map_err(|e| ClusterError::api("set the image of", self.object(name), e))?;
                Ok(written.metadata.resource_version)
            }
            // A merge patch replaces the containers whole: they are read,
            // changed and written back.
            Kind::Knative => {
                let Some(Object::Knative(k)) = self.get(name).await? else {
                    return Err(ClusterError::NotFound {
                        object: self.object(name),
                    });
                };
                let mut containers = k.service.spec["template"]["spec"]["containers"].clone();
                for c in containers.as_array_mut().into_iter().flatten() {
                    let cname = c["name"].as_str().unwrap_or("user-container").to_string();
                    if let Some((_, image)) = images.iter().find(|(n, _)| *n == cname) {
                        c["image"] = json!(image);
                    }
                }
                let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
                self.revisions.patch(name, &patch).await
            }
        }
    }

    /// Wakes once for every change to the workload `name`.
    pub(crate) fn watch_changes(&self, name: &str) -> futures::stream::BoxStream<'static, ()> {
        use futures::StreamExt;
        match self.kind {
            Kind::Deployment => watch_changes(&self.deployments, name),
            Kind::DaemonSet => watch_one(&self.daemonsets, name).map(|_| ()).boxed(),
            Kind::Knative => watch_one(&self.knative, name).map(|_| ()).boxed(),
        }
    }

    /// The Deployments of the namespace (what the watches of a
    /// Deployment target follow).
    pub(crate) fn deployments(&self) -> &Api<Deployment> {
        &self.deployments
    }

    /// Wakes each time the primary `name` carries a request.
    pub(crate) fn watch_requests(
        &self,
        name: &str,
    ) -> futures::stream::BoxStream<'static, Option<String>> {
        match self.kind {
            Kind::Deployment => super::state::watch_requests(&self.deployments, name),
            Kind::DaemonSet => super::state::watch_requests(&self.daemonsets, name),
            Kind::Knative => super::state::watch_requests(&self.knative, name),
        }
    }

    /// [`super::state::update`] on the primary `name`.
    pub(crate) async fn update_state(
        &self,
        name: &str,
        tries: usize,
        change: impl FnMut(&mut State) -> bool,
    ) -> Result<bool> {
        Ok(self
            .update_state_at(name, None, tries, change)
            .await?
            .is_some())
    }

    /// [`super::state::update_at`] on the primary `name`, starting from
    /// `held` (a Deployment primary as its watch holds it) when given.
    pub(crate) async fn update_state_at(
        &self,
        name: &str,
        held: Option<Deployment>,
        tries: usize,
        change: impl FnMut(&mut State) -> bool,
    ) -> Result<Option<String>> {
        match self.kind {
            Kind::Deployment => {
                super::state::update_at(&self.deployments, name, held, tries, change).await
            }
            Kind::DaemonSet => {
                super::state::update_at(&self.daemonsets, name, None, tries, change).await
            }
            Kind::Knative => {
                super::state::update_at(&self.knative, name, None, tries, change).await
            }
        }
    }

    /// [`super::state::write_decided`] on the primary `name`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_decided(
        &self,
        name: &str,
        resource_version: &str,
        read: Option<&Object>,
        decided_from: &State,
        request_seen: Option<&str>,
        state: &State,
        extra: &super::state::Extra<'_>,
        watched: Option<&super::cache::Watched<Deployment>>,
    ) -> Result<Option<String>> {
        match self.kind {
            Kind::Deployment => {
                super::state::write_decided(
                    &self.deployments,
                    name,
                    resource_version,
                    match read {
                        Some(Object::Deployment(d)) => Some(d),
                        _ => None,
                    },
                    decided_from,
                    request_seen,
                    state,
                    extra,
                    watched,
                )
                .await
            }
            Kind::DaemonSet => {
                super::state::write_decided(
                    &self.daemonsets,
                    name,
                    resource_version,
                    match read {
                        Some(Object::DaemonSet(d)) => Some(d),
                        _ => None,
                    },
                    decided_from,
                    request_seen,
                    state,
                    extra,
                    None,
                )
                .await
            }
            Kind::Knative => {
                super::state::write_decided(
                    &self.knative,
                    name,
                    resource_version,
                    match read {
                        Some(Object::Knative(k)) => Some(&k.service),
                        _ => None,
                    },
                    decided_from,
                    request_seen,
                    state,
                    extra,
                    None,
                )
                .await
            }
        }
    }

    /// Deletes the primary `name` if `canary` made it.
    pub(crate) async fn delete_primary(&self, name: &str) -> Result<super::managed::Removal> {
        match self.kind {
            Kind::Deployment => delete_primary(&self.deployments, name).await,
            Kind::DaemonSet => {
                super::managed::delete(&self.daemonsets, name, &self.object(name)).await
            }
            // The Knative Service is the user's: only what `canary` wrote
            // on it goes (the state here, the traffic with the router).
            Kind::Knative => {
                let Some(Object::Knative(k)) = self.get(name).await? else {
                    return Ok(super::managed::Removal::Absent);
                };
                let ours: Vec<String> = k
                    .service
                    .metadata
                    .annotations
                    .iter()
                    .flatten()
                    .map(|(key, _)| key.clone())
                    .filter(|key| key.starts_with("canary.flagger.app/"))
                    .collect();
                if ours.is_empty() {
                    return Ok(super::managed::Removal::Absent);
                }
                let nulls: serde_json::Map<String, serde_json::Value> = ours
                    .into_iter()
                    .map(|key| (key, serde_json::Value::Null))
                    .collect();
                self.revisions
                    .patch(name, &json!({"metadata": {"annotations": nulls}}))
                    .await?;
                Ok(super::managed::Removal::Deleted)
            }
        }
    }

    /// [`super::state::write_request`] on the primary `name`.
    pub(crate) async fn write_request(
        &self,
        name: &str,
        request: &super::state::StoredRequest,
    ) -> Result<()> {
        match self.kind {
            Kind::Deployment => super::state::write_request(&self.deployments, name, request).await,
            Kind::DaemonSet => super::state::write_request(&self.daemonsets, name, request).await,
            Kind::Knative => super::state::write_request(&self.knative, name, request).await,
        }
    }

    /// [`super::state::clear_request`] on the primary `name`.
    pub(crate) async fn clear_request(&self, name: &str) -> Result<()> {
        match self.kind {
            Kind::Deployment => super::state::clear_request(&self.deployments, name).await,
            Kind::DaemonSet => super::state::clear_request(&self.daemonsets, name).await,
            Kind::Knative => super::state::clear_request(&self.knative, name).await,
        }
    }

    /// The workload `name` each time it changes, starting with its current
    /// state; `None` for an event that carries no object (a deletion, a
    /// failing watch).
    pub(crate) fn watch_objects(
        &self,
        name: &str,
    ) -> futures::stream::BoxStream<'static, Option<Object>> {
        use futures::StreamExt;
        use kube::runtime::watcher::Event;
        match self.kind {
            Kind::Deployment => watch_one(&self.deployments, name)
                .map(|e| match e {
                    Ok(Event::Apply(d) | Event::InitApply(d)) => Some(Object::Deployment(d)),
                    _ => None,
                })
                .boxed(),
            Kind::DaemonSet => watch_one(&self.daemonsets, name)
                .map(|e| match e {
                    Ok(Event::Apply(d) | Event::InitApply(d)) => Some(Object::DaemonSet(d)),
                    _ => None,
                })
                .boxed(),
            // The revisions' readiness is read along with the Service.
            Kind::Knative => {
                let me = self.clone();
                watch_one(&self.knative, name)
                    .then(move |e| {
                        let me = me.clone();
                        async move {
                            match e {
                                Ok(Event::Apply(s) | Event::InitApply(s)) => {
                                    me.knative_target(s).await.ok()
                                }
                                _ => None,
                            }
                        }
                    })
                    .boxed()
            }
        }
    }

    /// The workloads of the kind carrying `canary`'s managed-by label: the
    /// primaries of its canaries.
    pub(crate) async fn managed(&self) -> Result<Vec<Object>> {
        match self.kind {
            Kind::Deployment => Ok(managed(&self.deployments)
                .await?
                .into_iter()
                .map(Object::Deployment)
                .collect()),
            Kind::DaemonSet => {
                let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
                let list = self
                    .daemonsets
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| ClusterError::api("list", "daemonsets", e))?;
                Ok(list.items.into_iter().map(Object::DaemonSet).collect())
            }
            // The Knative Services whose annotation names a primary revision.
            Kind::Knative => {
                let list = self
                    .knative
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| ClusterError::api("list", "ksvc", e))?;
                let mut out = Vec::new();
                for s in list.items {
                    if super::knative::primary_revision(&s.value()).is_some() {
                        out.push(self.knative_target(s).await?);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// The primary DaemonSet's pod template: the target's, without the
/// scale-to-zero selector, with the selector label pointing at the primary
/// and tracked configs renamed to their copies.
fn daemonset_primary_template(
    target: &DaemonSet,
    label: &str,
    primary_value: &str,
    tracked: &BTreeSet<ConfigRef>,
) -> PodTemplateSpec {
    let mut template = target.spec.template.clone();
    without_scale_to_zero(&mut template);
    pointed_at_primary(template, label, primary_value, tracked)
}

/// A new primary DaemonSet for a target.
pub(crate) fn build_primary_daemonset(
    target: &DaemonSet,
    label: &str,
    label_value: &str,
    tracked: &BTreeSet<ConfigRef>,
    state_annotations: Vec<(String, String)>,
) -> DaemonSet {
    let primary_value = canary_core::names::primary(label_value);
    let (metadata, selector) =
        primary_meta(&target.metadata, label, &primary_value, state_annotations);
    let spec = target.spec.clone();
    DaemonSet {
        metadata,
        spec: k8s_openapi::api::apps::v1::DaemonSetSpec {
            selector,
            template: daemonset_primary_template(target, label, &primary_value, tracked),
            ..spec
        },
        status: None,
    }
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
