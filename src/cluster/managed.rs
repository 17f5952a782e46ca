//! The objects `canary` created, known by its managed-by label, and their
//! removal by `canary revert`.
//!
//! Flagger's objects carry an owner reference to the Canary, so Kubernetes
//! garbage-collects them when the Canary is deleted. `canary` has no object
//! in the cluster to own them: it deletes them itself, and only those that
//! carry its label, so an object a user made (an apex Service, a
//! TrafficSplit) is never deleted because it has the name `canary` would
//! have given it.

use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::error::{ClusterError, Result};

/// Label marking the objects `canary` created.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "canary");

/// What became of an object `canary revert` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Deleted,
    /// There is none (an earlier revert deleted it, or it never existed).
    Absent,
    /// It exists without `canary`'s label: someone else made it, so it is
    /// left as it is.
    NotOurs,
}

/// Whether `object` carries `canary`'s managed-by label.
pub(crate) fn is_managed(object: &impl Resource) -> bool {
    object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// Deletes `name` if `canary` created it. The delete is conditional on the
/// UID read, so an object recreated in between (by someone else) is not
/// deleted unseen; dependents (a Deployment's ReplicaSets and Pods) go in
/// the background, as with `kubectl delete`. `object` names it in errors.
pub(crate) async fn delete<K>(api: &Api<K>, name: &str, object: &str) -> Result<Removal>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(live) = api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::api("read", object, e))?
    else {
        return Ok(Removal::Absent);
    };
    if !is_managed(&live) {
        return Ok(Removal::NotOurs);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: live.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Removal::Deleted),
        Err(e) => match ClusterError::api("delete", object, e) {
            // Gone meanwhile: what was asked is done.
            ClusterError::NotFound { .. } => Ok(Removal::Absent),
            other => Err(other),
        },
    }
}
