//! The state document on the primary: read, and written only when the
//! primary has not changed since it was read (its resourceVersion), so two
//! drivers never overwrite each other's decisions.
//!
//! Every state written goes through [`stored`], which masks the secrets
//! of the run in its history and messages ([`crate::secrets`]): anyone
//! who can read Deployments reads the annotation.
//!
//! The state is the document, its progress, the lease and the history
//! slots ([`State::to_annotations`]); a write sends only the annotations
//! that differ from the primary as it was read, so a step's write is the
//! progress and the entry it adds however long the history, and a lease
//! renewal sends the lease alone. When the primary was read at an older
//! version than the write's precondition (this process wrote it since),
//! the document, the progress and the lease are sent whatever the copy
//! says.

use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::error::{ClusterError, Result};
use canary_core::engine::state::{ANNOTATION, LEASE_ANNOTATION, PROGRESS_ANNOTATION, State};
use canary_core::time::Time;

/// The annotation holding an operator's request to a rollout
/// (`canary abort|promote|pause|resume`), until a driver acts on it.
pub(crate) const REQUEST_ANNOTATION: &str = "canary.flagger.app/request";

/// The annotation holding the Canary spec the last driver ran with, so that
/// `canary abort` and `canary promote` can act with no spec file and no
/// running driver.
pub(crate) const SPEC_ANNOTATION: &str = "canary.flagger.app/spec";

/// An operator's request as stored on the primary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredRequest {
    /// `abort`, `promote`, `pause` or `resume`.
    pub action: String,
    pub by: String,
    pub at: Time,
}

/// A primary of any workload kind, as its state is read from it.
pub(crate) trait Annotated {
    fn meta(&self) -> &ObjectMeta;
}

impl<K: kube::Resource> Annotated for K {
    fn meta(&self) -> &ObjectMeta {
        kube::Resource::meta(self)
    }
}

/// A primary's kind of workload, as the API serves it.
pub(crate) trait Primary:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Primary for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// `kind/name` of a primary in messages.
fn object<K: Primary>(name: &str) -> String {
    format!("{}/{name}", K::kind(&()).to_lowercase())
}

fn annotation<'a>(d: &'a impl Annotated, key: &str) -> Option<&'a String> {
    d.meta().annotations.as_ref().and_then(|a| a.get(key))
}

/// The raw request annotation, if any (compared as text to tell requests
/// apart).
pub(crate) fn raw_request(primary: &impl Annotated) -> Option<String> {
    annotation(primary, REQUEST_ANNOTATION).cloned()
}

/// The request stored on a primary; an unreadable one is ignored (and
/// cleared by the next state write).
pub(crate) fn read_request(primary: &impl Annotated) -> Option<StoredRequest> {
    raw_request(primary).and_then(|t| serde_json::from_str(&t).ok())
}

/// The spec stored on a primary, if any.
pub(crate) fn read_spec(primary: &impl Annotated) -> Option<String> {
    annotation(primary, SPEC_ANNOTATION).cloned()
}

/// Stores a request for the driver (no precondition: the latest request
/// wins, and the driver reads it under its own resourceVersion guard).
pub(crate) async fn write_request<K: Primary>(
    api: &Api<K>,
    primary: &str,
    request: &StoredRequest,
) -> Result<()> {
    let text = serde_json::to_string(request).expect("requests serialize");
    let patch = json!({ "metadata": { "annotations": { REQUEST_ANNOTATION: text } } });
    api.patch(primary, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("write a request to", object::<K>(primary), e))?;
    Ok(())
}

/// Changes the state on `primary` with `change`, read-modify-write under
/// the primary's resourceVersion, reading again after a conflict (up to
/// `tries` times). `change` returns `false` when there is nothing to
/// write. `Ok(None)`: no primary, no state, or nothing to write.
/// Starts from `held`, the primary as a watch holds it, when given (read
/// first otherwise); returns the primary's resourceVersion after the
/// write.
pub(crate) async fn update_at<K: Primary>(
    api: &Api<K>,
    primary: &str,
    mut held: Option<K>,
    tries: usize,
    mut change: impl FnMut(&mut State) -> bool,
) -> Result<Option<String>> {
    let object = object::<K>(primary);
    for _ in 0..tries + usize::from(held.is_some()) {
        let fetched = match held.take() {
            Some(p) => Some(p),
            None => api
                .get_opt(primary)
                .await
                .map_err(|e| ClusterError::api("read", &object, e))?,
        };
        let Some(p) = fetched else {
            return Ok(None);
        };
        let Some(mut state) = read(&p)? else {
            return Ok(None);
        };
        if !change(&mut state) {
            return Ok(None);
        }
        let rv = p.meta().resource_version.clone().unwrap_or_default();
        match write(api, primary, &rv, Some(&p), &state, &Extra::default()).await {
            Ok(rv) => return Ok(Some(rv)),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ClusterError::Conflict { object })
}

/// Removes a request no driver took up (its driver went away).
pub(crate) async fn clear_request<K: Primary>(api: &Api<K>, primary: &str) -> Result<()> {
    let patch = json!({ "metadata": { "annotations": { REQUEST_ANNOTATION: null } } });
    api.patch(primary, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("clear the request on", object::<K>(primary), e))?;
    Ok(())
}

/// Besides the state, what a write changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra<'a> {
    /// Remove the request annotation: the request was acted on.
    pub clear_request: bool,
    /// Store this spec text.
    pub spec: Option<&'a str>,
}

/// `state` as it is stored: every string masked by the process's
/// redactor. Stored states are compared in this form.
pub(crate) fn stored(state: &State) -> State {
    crate::secrets::redactor().redact_value(state)
}

/// The annotations of `state`, as every writer stores them.
pub(crate) fn annotations(state: &State) -> Vec<(String, String)> {
    stored(state).to_annotations()
}

/// The state stored on a primary, if any.
pub(crate) fn read(primary: &impl Annotated) -> Result<Option<State>> {
    let Some(text) = primary
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
    else {
        return Ok(None);
    };
    State::from_annotations(text, |k| annotation(primary, k).map(String::as_str))
        .map(Some)
        .map_err(|e| {
            ClusterError::Invalid(format!(
                "{}: annotation {ANNOTATION}: {e}",
                primary.meta().name.as_deref().unwrap_or_default()
            ))
        })
}

/// Writes the state if the primary is still at `resource_version`; returns
/// the new resourceVersion. `read` is the primary as read at that version
/// (or before, when only this process wrote since): history slots it holds
/// already are not sent again, nor, when it was read at that very
/// version, the document or the lease. A conflict is [`ClusterError::Conflict`]:
/// the caller re-reads and decides again.
pub(crate) async fn write<K: Primary>(
    api: &Api<K>,
    primary: &str,
    resource_version: &str,
    read: Option<&K>,
    state: &State,
    extra: &Extra<'_>,
) -> Result<String> {
    // A merge patch carrying metadata.resourceVersion is a precondition: the
    // API server refuses it with 409 when the object moved on.
    let mut annotations = serde_json::Map::new();
    // The copy read is the primary at the precondition's version: what it
    // holds is what the primary holds.
    let exact =
        read.is_some_and(|p| p.meta().resource_version.as_deref() == Some(resource_version));
    for (key, text) in self::annotations(state) {
        let held = read.and_then(|p| annotation(p, &key)) == Some(&text);
        let always =
            !exact && (key == ANNOTATION || key == LEASE_ANNOTATION || key == PROGRESS_ANNOTATION);
        if always || !held {
            annotations.insert(key, text.into());
        }
    }
    if state.lease.is_none()
        && (!exact || read.and_then(|p| annotation(p, LEASE_ANNOTATION)).is_some())
    {
        annotations.insert(LEASE_ANNOTATION.into(), serde_json::Value::Null);
    }
    if extra.clear_request {
        annotations.insert(REQUEST_ANNOTATION.into(), serde_json::Value::Null);
    }
    if let Some(spec) = extra.spec {
        annotations.insert(SPEC_ANNOTATION.into(), spec.into());
    }
    let patch = json!({
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": annotations,
        }
    });
    let object = object::<K>(primary);
    let updated = api
        .patch(primary, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ClusterError::api("write the state of", &object, e))?;
    Ok(updated.meta().resource_version.clone().unwrap_or_default())
}

/// Writes the state a driver decided from what it read on the primary
/// (`decided_from`, and the request annotation `request_seen`), guarded by
/// `resource_version`; returns whether it was written. The controller
/// bumps that version with every status update, so on a conflict the
/// primary is read again: when it still carries the request it had and
/// the state decided from (or the one being written), the write is
/// repeated with the new version; returns the primary's resourceVersion
/// after the write. `Ok(None)`: another writer changed the state or the
/// request, and the caller decides again from a fresh read.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_decided<K: Primary>(
    api: &Api<K>,
    primary: &str,
    resource_version: &str,
    read_primary: Option<&K>,
    decided_from: &State,
    request_seen: Option<&str>,
    state: &State,
    extra: &Extra<'_>,
    watched: Option<&super::cache::Watched<K>>,
) -> Result<Option<String>> {
    let mut rv = resource_version.to_string();
    let mut fresh_read: Option<K> = None;
    for _ in 0..10 {
        let held = fresh_read.as_ref().or(read_primary);
        match write(api, primary, &rv, held, state, extra).await {
            Ok(rv) => return Ok(Some(rv)),
            Err(e) if e.is_conflict() => {
                // The primary moved past `rv` (most often the controller's
                // status update after a promotion): its watch brings the
                // newer copy within milliseconds, else it is read.
                let watched_copy = match watched {
                    Some(w) => {
                        w.newer_than(&rv);
                        w.current_within(super::cache::CATCH_UP).await.flatten()
                    }
                    None => None,
                };
                let fresh = match watched_copy {
                    Some(fresh) => fresh,
                    None => {
                        let fresh = api
                            .get(primary)
                            .await
                            .map_err(|e| ClusterError::api("read", object::<K>(primary), e))?;
                        if let Some(w) = watched {
                            w.saw(fresh.meta().resource_version.as_deref());
                        }
                        fresh
                    }
                };
                let current = read(&fresh)?;
                // A request written since the driver read the primary must
                // not be cleared unseen.
                if raw_request(&fresh).as_deref() != request_seen {
                    return Ok(None);
                }
                let unchanged = match &current {
                    // A primary created this round carries the state it
                    // was created with.
                    Some(c) => {
                        same_state(c, &stored(decided_from)) || same_state(c, &stored(state))
                    }
                    None => false,
                };
                if !unchanged {
                    return Ok(None);
                }
                rv = fresh.meta().resource_version.clone().unwrap_or_default();
                fresh_read = Some(fresh);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether two states are the same apart from lease renewal times.
pub(crate) fn same_state(a: &State, b: &State) -> bool {
    let strip = |s: &State| {
        let mut s = s.clone();
        if let Some(l) = s.lease.as_mut() {
            l.renew_time = Time(0);
        }
        s
    };
    strip(a) == strip(b)
}

/// Wakes each time `primary` changes while it carries a request, so a
/// driver acts on an operator's request at once, with the primary's
/// resourceVersion then; ends when the watch does.
pub(crate) fn watch_requests<K: Primary>(
    api: &Api<K>,
    primary: &str,
) -> BoxStream<'static, Option<String>> {
    use futures::StreamExt;
    use kube::runtime::watcher::Event;
    super::workload::watch_one(api, primary)
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(p) | Event::InitApply(p)) if raw_request(&p).is_some() => {
                    Some(p.meta().resource_version.clone())
                }
                _ => None,
            }
        })
        .boxed()
}
