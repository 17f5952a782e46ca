//! A Knative Service (`serving.knative.dev/v1`) as a target, as Flagger's
//! Knative controller treats it. There is no primary workload: the
//! promoted ("primary") revision is the one the Service's annotation
//! [`PRIMARY_REVISION`] names, the canary is the latest created revision
//! (`status.latestCreatedRevisionName`), and both run side by side under
//! Knative's own control, so nothing is scaled and no config is copied.
//!
//! - revision: the latest created revision's name (what Flagger compares
//!   to decide the target changed);
//! - readiness: the revision's `Ready` condition, for the primary the
//!   revision the annotation names, for the canary the latest created one;
//! - initialise: the annotation names the latest created revision and
//!   `spec.traffic` sends it everything (0 to `latestRevision`, 100 to it);
//! - promote: the annotation moves to the latest created revision; the
//!   traffic stays with the router;
//! - rollback: the router sends all traffic back to the primary revision,
//!   which has kept running;
//! - revert: the annotation and the `spec.traffic` of `canary`'s making
//!   go, and Knative routes to its latest ready revision again.
//!
//! The state annotations live on the Knative Service itself, so a write
//! of the traffic changes the resourceVersion a state write is guarded
//! on: every write here returns the version it produced, for the caller
//! to carry forward.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::error::{ClusterError, Result};
use crate::router::knative::{PRIMARY_REVISION, traffic_for};
use canary_core::engine::decide::Workload;
use canary_core::engine::schedule::Routing;

/// The API group and version of Knative Serving.
const SERVING: (&str, &str) = ("serving.knative.dev", "v1");

/// The resource of a Knative Serving kind (`Service`, `Revision`).
pub(crate) fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Service" => "services",
        _ => "revisions",
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(SERVING.0, SERVING.1, kind), plural)
}

/// The latest created revision of a Knative Service; `None` before
/// Knative has created one.
pub(crate) fn latest_created_revision(service: &Value) -> Option<&str> {
    service["status"]["latestCreatedRevisionName"]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The primary revision a Knative Service's annotation names.
pub(crate) fn primary_revision(service: &Value) -> Option<&str> {
    service["metadata"]["annotations"][PRIMARY_REVISION]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Readiness of one revision as the engine sees it: one unit, ready once
/// its `Ready` condition is `True`; a revision Knative gave up on
/// (`Ready` `False` with `ProgressDeadlineExceeded`) reports the deadline.
/// A missing revision is not ready.
pub(crate) fn observe_revision(revision: Option<&Value>) -> Workload {
    let ready = revision.and_then(|r| {
        r["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
    });
    let is_ready = ready.as_ref().is_some_and(|c| c["status"] == "True");
    let deadline_exceeded = ready
        .as_ref()
        .is_some_and(|c| c["status"] == "False" && c["reason"] == "ProgressDeadlineExceeded");
    Workload {
        desired: 1,
        ready: u32::from(is_ready),
        rolled_out: is_ready,
        deadline_exceeded,
    }
}

/// The patch that initialises a Knative Service: the annotation names
/// `latest` as the primary revision, which takes all the traffic.
pub(crate) fn initialise_patch(latest: &str) -> Value {
    let traffic = traffic_for(latest, &Routing::all_primary())
        .expect("weights can always be written to a Knative Service");
    json!({
        "metadata": {"annotations": {PRIMARY_REVISION: latest}},
        "spec": {"traffic": traffic},
    })
}

/// The patch that promotes `latest`: the annotation names it.
pub(crate) fn promote_patch(latest: &str) -> Value {
    json!({"metadata": {"annotations": {PRIMARY_REVISION: latest}}})
}

/// The patch that removes what `canary` wrote on a Knative Service: the
/// annotation and the traffic split.
pub(crate) fn finalize_patch() -> Value {
    json!({
        "metadata": {"annotations": {PRIMARY_REVISION: null}},
        "spec": {"traffic": null},
    })
}

/// A Knative Service as the API serves it: its metadata typed (where the
/// state annotations live), its spec and status as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct KnativeService {
    #[serde(rename = "apiVersion", default)]
    pub(crate) api_version: String,
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: Value,
    #[serde(default)]
    pub(crate) status: Value,
}

impl kube::Resource for KnativeService {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Service".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        SERVING.0.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        SERVING.1.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "services".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl KnativeService {
    /// The Service as JSON, as the functions above read it.
    pub(crate) fn value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The Kubernetes calls on a Knative Service target and its revisions.
#[derive(Clone)]
pub(crate) struct KnativeServices {
    services: Api<DynamicObject>,
    revisions: Api<DynamicObject>,
}

impl KnativeServices {
    pub(crate) fn new(client: &kube::Client, namespace: &str) -> Self {
        KnativeServices {
            services: Api::namespaced_with(client.clone(), namespace, &resource("Service")),
            revisions: Api::namespaced_with(client.clone(), namespace, &resource("Revision")),
        }
    }

    /// `kind/name` for messages.
    pub(crate) fn object(name: &str) -> String {
        format!("services.serving.knative.dev/{name}")
    }

    /// The Knative Service `name` as JSON; `None` when there is none.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Value>> {
        let found = self
            .services
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::api("read", Self::object(name), e))?;
        Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default()))
    }

    /// The readiness of the revision `name` (not ready when missing).
    pub(crate) async fn observe_revision(&self, name: Option<&str>) -> Result<Workload> {
        let Some(name) = name else {
            return Ok(observe_revision(None));
        };
        let found = self
            .revisions
            .get_opt(name)
            .await
            .map_err(|e| {
                ClusterError::api("read", format!("revisions.serving.knative.dev/{name}"), e)
            })?
            .map(|o| serde_json::to_value(o).unwrap_or_default());
        Ok(observe_revision(found.as_ref()))
    }

    /// Merges `patch` into the Knative Service `name`; returns the
    /// resourceVersion it produced.
    pub(crate) async fn patch(&self, name: &str, patch: &Value) -> Result<Option<String>> {
        let patched = self
            .services
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| ClusterError::api("update", Self::object(name), e))?;
        Ok(patched.metadata.resource_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Value {
        json!({
            "metadata": {"name": "podinfo", "annotations": {PRIMARY_REVISION: "podinfo-00001"}},
            "status": {
                "latestCreatedRevisionName": "podinfo-00002",
                "latestReadyRevisionName": "podinfo-00001",
            },
        })
    }

    #[test]
    fn revisions_are_read_where_flagger_reads_them() {
        let s = service();
        assert_eq!(latest_created_revision(&s), Some("podinfo-00002"));
        assert_eq!(primary_revision(&s), Some("podinfo-00001"));
        assert_eq!(latest_created_revision(&json!({"status": {}})), None);
        assert_eq!(primary_revision(&json!({"metadata": {}})), None);
    }

    #[test]
    fn a_revision_is_ready_by_its_ready_condition() {
        let rev = |status: &str, reason: &str| {
            json!({"status": {"conditions": [
                {"type": "ContainerHealthy", "status": "True"},
                {"type": "Ready", "status": status, "reason": reason},
            ]}})
        };
        let ready = observe_revision(Some(&rev("True", "")));
        assert_eq!((ready.ready, ready.rolled_out), (1, true));
        let deploying = observe_revision(Some(&rev("Unknown", "Deploying")));
        assert_eq!((deploying.ready, deploying.rolled_out), (0, false));
        assert!(!deploying.deadline_exceeded);
        let failed = observe_revision(Some(&rev("False", "ProgressDeadlineExceeded")));
        assert!(failed.deadline_exceeded);
        let missing = observe_revision(None);
        assert_eq!((missing.ready, missing.rolled_out), (0, false));
    }

    #[test]
    fn initialisation_and_promotion_write_what_flagger_writes() {
        assert_eq!(
            initialise_patch("podinfo-00001"),
            json!({
                "metadata": {"annotations": {"flagger.app/primary-revision": "podinfo-00001"}},
                "spec": {"traffic": [
                    {"latestRevision": true, "percent": 0},
                    {"revisionName": "podinfo-00001", "percent": 100},
                ]},
            })
        );
        assert_eq!(
            promote_patch("podinfo-00002"),
            json!({"metadata": {"annotations": {"flagger.app/primary-revision": "podinfo-00002"}}})
        );
        let f = finalize_patch();
        assert!(f["metadata"]["annotations"][PRIMARY_REVISION].is_null());
        assert!(f["spec"]["traffic"].is_null());
    }
}
