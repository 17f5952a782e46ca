//! The driver's lease on a canary, and the waits between rounds that
//! keep it: the lease is renewed while the driver sleeps and given up
//! when it stops, so a lost driver is taken over once its lease runs out.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use super::{Driver, RunError, StopSignal};
use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::{state as statestore, workload};
use canary_core::engine::state::Lease;
use canary_core::time::Time;

/// How long a driver's claim on a canary holds without renewal; renewed
/// every third of it.
pub(crate) const LEASE: Duration = Duration::from_secs(15);

/// A claim on a canary by `holder`, from now: a driver's, or that of a
/// command acting on the canary without one (`canary revert`).
pub(crate) fn claim(holder: &str) -> Lease {
    Lease {
        holder: holder.to_string(),
        renew_time: now(),
        duration_seconds: LEASE.as_secs(),
    }
}

/// What wakes a sleeping driver besides its clock.
pub(super) struct Wake {
    /// Requests landing on the primary.
    requests: futures::stream::BoxStream<'static, ()>,
    /// `false` once the stream ended: only the clock wakes the driver then.
    open: bool,
}

impl Driver<'_> {
    /// This driver's claim on the canary, from now.
    pub(super) fn lease(&self) -> Lease {
        claim(&self.settings.holder)
    }

    /// What wakes the driver between rounds besides its clock: changes to
    /// the primary are how an operator's request reaches it.
    pub(super) fn wake(&self) -> Wake {
        Wake {
            requests: statestore::watch_requests(&self.deployments, &self.primary_name()),
            open: true,
        }
    }

    /// Sleeps until `t`, renewing the lease on the way; returns early when
    /// a request lands on the primary or the run is told to stop.
    pub(super) async fn sleep_until(&self, t: Time, wake: &mut Wake) -> Result<(), RunError> {
        use futures::StreamExt;
        let mut renewed = now();
        loop {
            let left = t.since(now());
            if left.is_zero() {
                return Ok(());
            }
            let until_renewal = (LEASE / 3).saturating_sub(now().since(renewed));
            let chunk = left.min(until_renewal);
            // A stop already given was acted on by the round (a promotion
            // under way finishes): only a new one cuts the sleep short.
            let mut stop = self
                .stop
                .clone()
                .filter(|_| self.stop_requested().is_none());
            tokio::select! {
                _ = tokio::time::sleep(chunk) => {}
                request = wake.requests.next(), if wake.open => match request {
                    Some(()) => return Ok(()),
                    None => wake.open = false,
                },
                _ = stop_changed(stop.as_mut()) => return Ok(()),
            }
            if now().since(renewed) >= LEASE / 3 && !t.since(now()).is_zero() {
                self.renew_lease().await?;
                renewed = now();
            }
        }
    }

    /// Renews the lease unless another driver took the canary over
    /// meanwhile, which ends this run.
    async fn renew_lease(&self) -> Result<(), RunError> {
        let mut taken_by = None;
        let renewed = statestore::update(&self.deployments, &self.primary_name(), 1, |state| {
            if let Some(l) = &state.lease
                && l.holder != self.settings.holder
                && l.is_live(now())
            {
                taken_by = Some(l.holder.clone());
                return false;
            }
            state.lease = Some(self.lease());
            true
        })
        .await;
        if let Some(holder) = taken_by {
            return Err(RunError::Refused(format!(
                "{} was taken over by {holder}",
                self.id()
            )));
        }
        match renewed {
            // Renewal lost a race: the next round re-reads everything.
            Err(e) if e.is_conflict() => Ok(()),
            other => other.map(|_| ()).map_err(RunError::from),
        }
    }

    /// Waits until the target's revision differs from `revision` or `until`
    /// passes: woken by a watch on the target, and every few seconds
    /// anyway, since a change to one of its ConfigMaps or Secrets is a new
    /// revision too.
    pub(super) async fn wait_for_target_change(
        &self,
        revision: &str,
        until: Time,
    ) -> Result<(), RunError> {
        use futures::StreamExt;
        let mut changes = workload::watch_changes(&self.deployments, &self.canary.target.name);
        let mut watching = true;
        while now() < until {
            let left = until.since(now()).min(Duration::from_secs(5));
            let mut stop = self.stop.clone();
            tokio::select! {
                // A watch that ended leaves the five-second look.
                change = changes.next(), if watching => watching = change.is_some(),
                _ = tokio::time::sleep(left) => {}
                _ = stop_changed(stop.as_mut()) => return Ok(()),
            }
            let snap = self.observe().await?;
            if snap.observed.revision != revision {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Resolves when the stop signal changes; never without one.
async fn stop_changed(stop: Option<&mut StopSignal>) {
    match stop {
        Some(s) => {
            let _ = s.changed().await;
        }
        None => std::future::pending().await,
    }
}

/// Gives up this driver's lease on a canary, if it holds it, so another
/// run may continue at once.
pub(crate) async fn release_lease(
    conn: &Connection,
    namespace: &str,
    target: &str,
    holder: &str,
) -> Result<(), RunError> {
    let api: Api<Deployment> = Api::namespaced(conn.client.clone(), namespace);
    let name = canary_core::names::primary(target);
    let released = statestore::update(&api, &name, 5, |state| {
        if state.lease.as_ref().is_none_or(|l| l.holder != holder) {
            return false;
        }
        state.lease = None;
        true
    })
    .await;
    match released {
        // Still contended after five tries: the lease runs out by itself.
        Err(e) if e.is_conflict() => Ok(()),
        other => other.map(|_| ()).map_err(RunError::from),
    }
}
