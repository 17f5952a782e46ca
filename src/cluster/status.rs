//! `canary status`: what `kubectl get canaries` shows, read from the state
//! annotations on the primaries, plus who drives each canary and whether
//! that driver is alive.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::state as statestore;
use canary_core::engine::state::{HistoryEntry, State};
use canary_core::time::Time;

/// One canary as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CanaryStatus {
    pub name: String,
    pub namespace: String,
    pub target: String,
    pub phase: String,
    pub weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
    pub last_transition_time: String,
    /// Who drives it, when a driver holds the lease.
    pub driver: Option<Driver>,
    pub revision: Option<String>,
    pub promoted_revision: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Driver {
    pub holder: String,
    pub renew_time: String,
    /// `false` when the lease ran out: the driver was lost (killed, or its
    /// machine went away); `canary run` takes over.
    pub alive: bool,
}

/// The status of one managed primary; `None` for a Deployment that is
/// not one. A state that cannot be read is shown as `Unknown`.
pub(crate) fn of_primary(d: &Deployment, now: Time) -> Option<CanaryStatus> {
    match statestore::read(d) {
        Ok(Some(state)) => Some(status_of(d, state, now)),
        Ok(None) => None,
        Err(_) => {
            let mut s = status_of(d, State::new(now), now);
            s.phase = "Unknown".to_string();
            Some(s)
        }
    }
}

/// The label selector of the primaries `canary` manages.
pub(crate) fn selector() -> String {
    format!(
        "{}={}",
        crate::cluster::managed::MANAGED_BY.0,
        crate::cluster::managed::MANAGED_BY.1
    )
}

/// What tells two rows of one canary apart.
pub(crate) type RowKey = (String, String, u32, u32, String, Option<(String, bool)>);

impl CanaryStatus {
    /// What a watcher prints a new row for: everything but the history
    /// and the lease's renewal ticks.
    pub(crate) fn row_key(&self) -> RowKey {
        (
            self.name.clone(),
            self.phase.clone(),
            self.weight,
            self.failed_checks,
            self.last_transition_time.clone(),
            self.driver.as_ref().map(|d| (d.holder.clone(), d.alive)),
        )
    }
}

fn status_of(primary: &Deployment, state: State, now: Time) -> CanaryStatus {
    let primary_name = primary.metadata.name.clone().unwrap_or_default();
    let target = primary_name
        .strip_suffix("-primary")
        .unwrap_or(&primary_name)
        .to_string();
    CanaryStatus {
        name: state.canary.clone().unwrap_or_else(|| target.clone()),
        namespace: primary.metadata.namespace.clone().unwrap_or_default(),
        target,
        phase: match &state.paused {
            Some(_) if state.phase.is_active() => format!("{} (paused)", state.phase.as_str()),
            _ => state.phase.as_str().to_string(),
        },
        weight: state.canary_weight,
        failed_checks: state.failed_checks,
        iterations: state.iterations,
        last_transition_time: state.last_transition_time.to_rfc3339(),
        driver: state.lease.as_ref().map(|l| Driver {
            holder: l.holder.clone(),
            renew_time: l.renew_time.to_rfc3339(),
            alive: l.is_live(now),
        }),
        revision: state.last_applied_spec.clone(),
        promoted_revision: state.last_promoted_spec.clone(),
        history: state.history,
    }
}

/// Every canary in `namespace` (all namespaces when `None`), by name.
pub(crate) async fn list(
    conn: &Connection,
    namespace: Option<&str>,
) -> Result<Vec<CanaryStatus>, ClusterError> {
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(conn.client.clone(), ns),
        None => Api::all(conn.client.clone()),
    };
    let selector = selector();
    let where_ = namespace
        .map(|n| format!("namespace {n}"))
        .unwrap_or_else(|| "all namespaces".to_string());
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ClusterError::api("list deployments in", where_, e))?;
    let now = now();
    let mut out = Vec::new();
    for d in list.items {
        out.extend(of_primary(&d, now));
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}
