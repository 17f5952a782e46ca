//! The state document on the primary: read, and written only when the
//! primary has not changed since it was read (its resourceVersion), so two
//! drivers never overwrite each other's decisions.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::error::{ClusterError, Result};
use crate::engine::state::{ANNOTATION, State};

/// The state stored on a primary, if any.
pub fn read(primary: &Deployment) -> Result<Option<State>> {
    let Some(text) = primary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
    else {
        return Ok(None);
    };
    State::from_annotation(text).map(Some).map_err(|e| {
        ClusterError::Invalid(format!(
            "deployment/{}: annotation {ANNOTATION}: {e}",
            primary.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

/// Writes the state if the primary is still at `resource_version`; returns
/// the new resourceVersion. A conflict is [`ClusterError::Conflict`]: the
/// caller re-reads and decides again.
pub async fn write(
    api: &Api<Deployment>,
    primary: &str,
    resource_version: &str,
    state: &State,
) -> Result<String> {
    // A merge patch carrying metadata.resourceVersion is a precondition: the
    // API server refuses it with 409 when the object moved on.
    let patch = json!({
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": { ANNOTATION: state.to_annotation() },
        }
    });
    let object = format!("deployment/{primary}");
    let updated = api
        .patch(primary, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("write the state of", &object, e))?;
    Ok(updated.metadata.resource_version.unwrap_or_default())
}
