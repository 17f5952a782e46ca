//! `canary status`: what `kubectl get canaries` shows, read from the state
//! annotations on the primaries, plus who drives each canary and whether
//! that driver is alive.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use kube::api::ListParams;
use std::collections::BTreeMap;

use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::state as statestore;
use crate::cluster::workload::{Kind, Object, Workloads};
use canary_core::engine::state::{Failure, HistoryEntry, Paused, Phase, State};
use canary_core::time::Time;

/// One canary as `status` shows it.
#[derive(Debug, Clone)]
pub(crate) struct CanaryStatus {
    pub name: String,
    pub namespace: String,
    pub target: String,
    /// The target's kind: a Deployment's primary is a Deployment, a
    /// DaemonSet's a DaemonSet.
    pub kind: Kind,
    /// `None` when the state annotation cannot be read (shown `Unknown`).
    pub phase: Option<Phase>,
    pub paused: Option<Paused>,
    pub weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
    pub last_transition_time: Time,
    /// Who drives it, when a driver holds the lease.
    pub driver: Option<Driver>,
    pub revision: Option<String>,
    pub promoted_revision: Option<String>,
    pub tracked_configs: BTreeMap<String, String>,
    /// Why the last analysis failed or was aborted.
    pub failure: Option<Failure>,
    pub history: Vec<HistoryEntry>,
    /// The Canary document the last driver ran, as stored on the primary
    /// (`None` before a driver stored one).
    pub document: Option<serde_json::Value>,
    /// The state as the driver wrote it (without its history, which is
    /// `history`): what the live view of `status -w NAME` is drawn from.
    pub state: State,
}

#[derive(Debug, Clone)]
pub(crate) struct Driver {
    pub holder: String,
    pub renew_time: Time,
    /// `false` when the lease ran out: the driver was lost (killed, or its
    /// machine went away); `canary run` takes over.
    pub alive: bool,
}

/// The status of one managed primary; `None` for a workload that is
/// not one. A state that cannot be read is shown as `Unknown`.
pub(crate) fn of_primary(d: &Object, now: Time) -> Option<CanaryStatus> {
    match statestore::read(d) {
        Ok(Some(state)) => Some(status_of(d, state, now)),
        Ok(None) => None,
        Err(_) => {
            let mut s = status_of(d, State::new(now), now);
            s.phase = None;
            Some(s)
        }
    }
}

/// The label selector of the primaries `canary` manages, narrowed by the
/// user's own (`-l`), which the API server applies to the primaries'
/// labels.
pub(crate) fn selector(user: Option<&str>) -> String {
    let managed = format!(
        "{}={}",
        crate::cluster::managed::MANAGED_BY.0,
        crate::cluster::managed::MANAGED_BY.1
    );
    match user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => format!("{managed},{u}"),
        None => managed,
    }
}

/// What tells two rows of one canary apart.
pub(crate) type RowKey = (String, String, u32, u32, Time, Option<(String, bool)>);

impl CanaryStatus {
    /// What a watcher prints a new row for: everything but the history
    /// and the lease's renewal ticks.
    pub(crate) fn row_key(&self) -> RowKey {
        (
            self.name.clone(),
            self.phase_text(),
            self.weight,
            self.failed_checks,
            self.last_transition_time,
            self.driver.as_ref().map(|d| (d.holder.clone(), d.alive)),
        )
    }

    /// The phase as the table shows it: `Progressing (paused)`, `Unknown`
    /// for a state that cannot be read.
    pub(crate) fn phase_text(&self) -> String {
        match (self.phase, &self.paused) {
            (None, _) => "Unknown".to_string(),
            (Some(p), Some(_)) if p.is_active() => format!("{} (paused)", p.as_str()),
            (Some(p), _) => p.as_str().to_string(),
        }
    }
}

fn status_of(primary: &Object, state: State, now: Time) -> CanaryStatus {
    let primary_name = primary.name();
    let target = primary_name
        .strip_suffix("-primary")
        .unwrap_or(&primary_name)
        .to_string();
    // The stored spec is the Canary document, then its MetricTemplates.
    let document = statestore::read_spec(primary).and_then(|text| {
        let first = text.split("\n---\n").next().unwrap_or_default().to_string();
        serde_json::from_str::<serde_json::Value>(&first).ok()
    });
    let mut bare = state.clone();
    bare.history.clear();
    CanaryStatus {
        state: bare,
        name: state.canary.clone().unwrap_or_else(|| target.clone()),
        namespace: statestore::Annotated::meta(primary)
            .namespace
            .clone()
            .unwrap_or_default(),
        target,
        kind: primary.kind(),
        phase: Some(state.phase),
        paused: state.paused.clone(),
        weight: state.canary_weight,
        failed_checks: state.failed_checks,
        iterations: state.iterations,
        last_transition_time: state.last_transition_time,
        driver: state.lease.as_ref().map(|l| Driver {
            holder: l.holder.clone(),
            renew_time: l.renew_time,
            alive: l.is_live(now),
        }),
        revision: state.last_applied_spec.clone(),
        promoted_revision: state.last_promoted_spec.clone(),
        tracked_configs: state.tracked_configs.clone(),
        failure: state.failure.clone(),
        history: state.history,
        document,
    }
}

/// Every canary in `namespace` (all namespaces when `None`), by name:
/// the managed Deployments and DaemonSets, and the Knative Services that
/// carry a state. DaemonSets and Knative Services that may not be listed
/// (a role granting only Deployments) are left out.
pub(crate) async fn list(
    conn: &Connection,
    namespace: Option<&str>,
    labels: Option<&str>,
) -> Result<Vec<CanaryStatus>, ClusterError> {
    let selector = selector(labels);
    let params = ListParams::default().labels(&selector);
    let where_ = namespace
        .map(|n| format!("namespace {n}"))
        .unwrap_or_else(|| "all namespaces".to_string());
    let (deployments, daemonsets): (Api<Deployment>, Api<DaemonSet>) = match namespace {
        Some(ns) => (
            Api::namespaced(conn.client.clone(), ns),
            Api::namespaced(conn.client.clone(), ns),
        ),
        None => (Api::all(conn.client.clone()), Api::all(conn.client.clone())),
    };
    let mut primaries: Vec<Object> = deployments
        .list(&params)
        .await
        .map_err(|e| ClusterError::api("list deployments in", &where_, e))?
        .items
        .into_iter()
        .map(Object::Deployment)
        .collect();
    match daemonsets.list(&params).await {
        Ok(list) => primaries.extend(list.items.into_iter().map(Object::DaemonSet)),
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => {}
        Err(e) => return Err(ClusterError::api("list daemonsets in", &where_, e)),
    }
    // Knative Services are the user's own, without canary's label: those
    // carrying canary's state are its canaries. Where Knative is not
    // installed, or may not be listed, there are none.
    let knative: Api<crate::cluster::knative::KnativeService> = match namespace {
        Some(ns) => Api::namespaced(conn.client.clone(), ns),
        None => Api::all(conn.client.clone()),
    };
    let user = labels.map(str::trim).filter(|u| !u.is_empty());
    let knative_params = match user {
        Some(u) => ListParams::default().labels(u),
        None => ListParams::default(),
    };
    match knative.list(&knative_params).await {
        Ok(list) => primaries.extend(list.items.into_iter().map(Object::knative_unobserved)),
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => {}
        Err(e) => return Err(ClusterError::api("list ksvc in", &where_, e)),
    }
    let now = now();
    let mut out: Vec<CanaryStatus> = primaries
        .iter()
        .filter_map(|d| of_primary(d, now))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// The revision the target runs now (its pod template and the configs it
/// tracks, hashed as `canary run` hashes them); `None` when the target is
/// gone. `status --wait` compares it with the state's to tell a change no
/// driver has picked up yet from a verdict.
pub(crate) async fn target_revision(
    conn: &Connection,
    namespace: &str,
    (kind, target): (Kind, &str),
) -> Result<Option<String>, ClusterError> {
    let Some(d) = Workloads::new(&conn.client, namespace, kind)
        .get(target)
        .await?
    else {
        return Ok(None);
    };
    let tracked = crate::cluster::configs::track(&conn.client, namespace, &d.template()).await?;
    Ok(Some(d.revision(&tracked.hashes)))
}
