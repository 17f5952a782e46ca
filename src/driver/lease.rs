//! The driver's lease on a canary, and the waits between rounds that
//! keep it: the lease is renewed while the driver sleeps and given up
//! when it stops, so a lost driver is taken over once its lease runs out.

use std::time::Duration;

use super::{Driver, RunError, StopSignal};
use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::workload;
use canary_core::engine::state::Lease;
use canary_core::time::Time;

/// How long a driver's claim on a canary holds without renewal. Renewed
/// every [`RENEW_EVERY`], which leaves a renewal held up by a slow API
/// server 10 s to land; a driver that is gone keeps others off the canary
/// for at most this long.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// How often a driver renews its lease: every two thirds of [`LEASE`],
/// which costs a write every 20 s while a driver waits (the minute before
/// the first check, a closed gate).
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(LEASE.as_secs() * 2 / 3);

/// How long after its last renewal a lease of this process's holder
/// name, written by another process (another token) that is not known to
/// be gone, is still respected:
/// a live driver renews every [`RENEW_EVERY`], so one that has missed
/// its renewal by 5 seconds is taken to be gone. A CI job retried with
/// the same holder resumes after at most this long, not the whole
/// [`LEASE`]; the price is that a driver stalled longer than this (a
/// round waiting on a slow webhook) can be taken over by another process
/// with its name, and stops at its next renewal.
pub(crate) const SAME_HOLDER_GRACE: Duration = Duration::from_secs(RENEW_EVERY.as_secs() + 5);

/// This process's lease token: random, made once.
pub(crate) fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{:016x}", fastrand::u64(..)))
}

/// A claim on a canary by `holder`, from now: a driver's, or that of a
/// command acting on the canary without one (`canary revert`).
pub(crate) fn claim(holder: &str) -> Lease {
    Lease {
        holder: holder.to_string(),
        renew_time: now(),
        duration_seconds: LEASE.as_secs(),
        token: Some(token().to_string()),
        host: host(),
        pid: Some(std::process::id()),
    }
}

/// This machine's host name (in a Pod, the Pod's name), when known.
fn host() -> Option<String> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    })
    .clone()
}

/// Whether the process that wrote `lease` is known to be gone: it ran on
/// this host and its process id is no longer running, or is this very
/// process (a container restarted in its Pod gets the same ids again).
/// Unknown (another host, no `/proc`) is not gone.
fn holder_is_gone(lease: &Lease) -> bool {
    let (Some(h), Some(pid), Some(me)) = (&lease.host, lease.pid, host()) else {
        return false;
    };
    if *h != me || !std::path::Path::new("/proc/self").exists() {
        return false;
    }
    pid == std::process::id() || !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `lease` is this process's: its holder name, and its token (a
/// lease without one, written before tokens existed, goes by the name).
pub(crate) fn is_mine(lease: &Lease, holder: &str) -> bool {
    lease.holder == holder && lease.token.as_deref().is_none_or(|t| t == token())
}

/// Why `lease` keeps this process (`holder`) off the canary `id` at
/// `now`, if it does: another holder's live lease, or a lease of the same
/// holder name that another process renewed within
/// [`SAME_HOLDER_GRACE`].
pub(crate) fn refusal(lease: &Lease, holder: &str, id: &str, now: Time) -> Option<String> {
    if lease.holder != holder {
        return lease.is_live(now).then(|| {
            format!(
                "{id} is being driven by {} (lease renewed {}, valid until {}); wait for it to \
                 finish: a lease that is not renewed expires and is taken over",
                lease.holder,
                lease.renew_time.to_rfc3339(),
                lease.expires().to_rfc3339()
            )
        });
    }
    if is_mine(lease, holder)
        || now.since(lease.renew_time) >= SAME_HOLDER_GRACE
        || holder_is_gone(lease)
    {
        return None;
    }
    Some(format!(
        "{id} is being driven by another process with the same identity, {holder} (lease \
         renewed {}); two runs with one CANARY_LEASE_HOLDER cannot both drive: wait for it to \
         finish (a process that is gone is taken over {}s after its last renewal), or give each \
         run its own CANARY_LEASE_HOLDER",
        lease.renew_time.to_rfc3339(),
        SAME_HOLDER_GRACE.as_secs()
    ))
}

/// What wakes a sleeping driver besides its clock.
pub(super) struct Wake {
    /// Requests landing on the primary.
    /// Each carries the primary's resourceVersion with the request.
    requests: futures::stream::BoxStream<'static, Option<String>>,
    /// `false` once the stream ended: only the clock wakes the driver then.
    open: bool,
}

impl Driver<'_> {
    /// This driver's claim on the canary, from now.
    pub(super) fn lease(&self) -> Lease {
        claim(&self.settings.holder)
    }

    /// Notes that the lease stored on the primary was renewed at `at`.
    pub(super) fn lease_written(&self, at: Time) {
        self.renewed
            .fetch_max(at.0, std::sync::atomic::Ordering::Relaxed);
    }

    /// What wakes the driver between rounds besides its clock: changes to
    /// the primary are how an operator's request reaches it.
    pub(super) fn wake(&self) -> Wake {
        use futures::StreamExt;
        let requests = match &self.watched {
            // The primary's watch that the rounds read from.
            Some(w) => w
                .primary
                .changes()
                .filter_map(|p| async move {
                    use crate::cluster::state::Annotated;
                    crate::cluster::state::raw_request(&p)
                        .is_some()
                        .then(|| p.meta().resource_version.clone())
                })
                .boxed(),
            None => self.workloads.watch_requests(&self.primary_name()),
        };
        Wake {
            requests,
            open: true,
        }
    }

    /// Sleeps until `t`, renewing the lease on the way; returns early when
    /// a request lands on the primary or the run is told to stop.
    pub(super) async fn sleep_until(&self, t: Time, wake: &mut Wake) -> Result<(), RunError> {
        use futures::StreamExt;
        let mut renewed = Time(self.renewed.load(std::sync::atomic::Ordering::Relaxed));
        loop {
            let left = t.since(now());
            if left.is_zero() {
                return Ok(());
            }
            let until_renewal = RENEW_EVERY.saturating_sub(now().since(renewed));
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
                    Some(rv) => {
                        // The round after the wake must see the request,
                        // even before the primary's watch delivers it.
                        if let Some(w) = &self.watched {
                            w.primary.saw(rv.as_deref());
                        }
                        return Ok(());
                    }
                    None => wake.open = false,
                },
                _ = stop_changed(stop.as_mut()) => return Ok(()),
            }
            if now().since(renewed) >= RENEW_EVERY && !t.since(now()).is_zero() {
                self.renew_lease().await?;
                renewed = now();
                self.lease_written(renewed);
            }
        }
    }

    /// Renews the lease unless another driver took the canary over
    /// meanwhile, which ends this run.
    async fn renew_lease(&self) -> Result<(), RunError> {
        let mut taken_by = None;
        let held = self
            .watched
            .as_ref()
            .and_then(|w| w.primary.current())
            .flatten();
        let renewed = self
            .workloads
            .update_state_at(&self.primary_name(), held, 1, |state| {
                if let Some(l) = &state.lease
                    && refusal(l, &self.settings.holder, "", now()).is_some()
                {
                    taken_by = Some(l.holder.clone());
                    return false;
                }
                state.lease = Some(self.lease());
                true
            })
            .await;
        if let Some(holder) = taken_by {
            let who = if holder == self.settings.holder {
                format!("another process with the same identity, {holder}")
            } else {
                holder
            };
            return Err(RunError::Refused(format!(
                "{} was taken over by {who}",
                self.id()
            )));
        }
        match renewed {
            // Renewal lost a race: the next round re-reads everything.
            Err(e) if e.is_conflict() => Ok(()),
            Ok(rv) => {
                if let (Some(rv), Some(w)) = (rv, &self.watched) {
                    w.primary.saw(Some(&rv));
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the lease with a write guarded by the primary's
    /// resourceVersion, before a round changes anything: of two processes
    /// that read the canary free at once, only one writes its lease, and
    /// the other finds it on its next read. `false` when there was no
    /// state to hold a lease in, or the write lost a race (the round is
    /// then decided again from a fresh read).
    pub(super) async fn take_lease(&self) -> Result<bool, RunError> {
        let mut refused = None;
        let id = self.id();
        // From the watch's copy when it is current: a copy older than the
        // primary is refused by the write's precondition, and read again.
        let held = self
            .watched
            .as_ref()
            .and_then(|w| w.primary.current())
            .flatten();
        let taken = self
            .workloads
            .update_state_at(&self.primary_name(), held, 1, |state| {
                if let Some(l) = &state.lease
                    && let Some(why) = refusal(l, &self.settings.holder, &id, now())
                {
                    refused = Some(why);
                    return false;
                }
                state.lease = Some(self.lease());
                true
            })
            .await;
        if let Some(why) = refused {
            return Err(RunError::Refused(why));
        }
        match taken {
            Err(e) if e.is_conflict() => Ok(true),
            Ok(rv) => {
                if let (Some(rv), Some(w)) = (&rv, &self.watched) {
                    w.primary.saw(Some(rv));
                }
                Ok(rv.is_some())
            }
            Err(e) => Err(e.into()),
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
        let mut changes = self.workloads.watch_changes(&self.canary.target.name);
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
    (kind, target): (&str, &str),
    holder: &str,
) -> Result<(), RunError> {
    release_with(&conn.client, namespace, (kind, target), holder).await
}

/// A canary whose lease this process may hold: what a panic needs to give
/// it up.
#[derive(Clone)]
struct Held {
    config: kube::Config,
    namespace: String,
    kind: String,
    target: String,
    holder: String,
}

static HELD: std::sync::Mutex<Vec<Held>> = std::sync::Mutex::new(Vec::new());

/// Notes that this process may take the lease of `target`'s canary, for
/// [`release_on_panic`].
pub(crate) fn hold(conn: &Connection, namespace: &str, (kind, target): (&str, &str), holder: &str) {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.push(Held {
        config: conn.config.clone(),
        namespace: namespace.to_string(),
        kind: kind.to_string(),
        target: target.to_string(),
        holder: holder.to_string(),
    });
}

/// Forgets [`hold`]: the lease was given up or the run ended cleanly.
pub(crate) fn unhold(namespace: &str, target: &str) {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|h| h.namespace != namespace || h.target != target);
}

/// Gives up every lease this process may still hold, within `limit`;
/// best effort, for a process about to exit.
pub(crate) fn release_all_held(limit: Duration) {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if held.is_empty() {
        return;
    }
    // A thread with its own runtime and clients: the caller may be inside
    // the run's runtime, or unwinding out of it.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async {
                for h in held {
                    if let Ok(client) = kube::Client::try_from(h.config) {
                        let _ =
                            release_with(&client, &h.namespace, (&h.kind, &h.target), &h.holder)
                                .await;
                    }
                }
            });
        }
        let _ = done.send(());
    });
    let _ = finished.recv_timeout(limit);
}

/// Installs a panic hook that gives up the leases this process holds
/// (best effort, a few seconds at most) after the usual report, so that a
/// crash does not keep another run off for the lease's duration.
pub(crate) fn release_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        release_all_held(Duration::from_secs(5));
    }));
}

async fn release_with(
    client: &kube::Client,
    namespace: &str,
    (kind, target): (&str, &str),
    holder: &str,
) -> Result<(), RunError> {
    let Some(kind) = workload::Kind::of(kind) else {
        return Ok(());
    };
    let workloads = workload::Workloads::new(client, namespace, kind);
    let name = kind.primary_name(target);
    let released = workloads
        .update_state(&name, 5, |state| {
            if state.lease.as_ref().is_none_or(|l| !is_mine(l, holder)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, token: &str, renewed: Time) -> Lease {
        Lease {
            holder: holder.to_string(),
            renew_time: renewed,
            duration_seconds: LEASE.as_secs(),
            token: Some(token.to_string()),
            // Another host: whether the process lives cannot be told.
            host: Some("elsewhere.invalid".to_string()),
            pid: Some(1),
        }
    }

    #[test]
    fn a_lease_of_the_same_name_from_another_process_is_respected_for_a_few_seconds() {
        let t0 = Time(1_700_000_000_000);
        let other = lease("ci", "0123", t0);
        let why = refusal(
            &other,
            "ci",
            "podinfo.prod",
            t0.plus(Duration::from_secs(3)),
        )
        .expect("refused");
        assert!(
            why.contains("another process with the same identity, ci"),
            "{why}"
        );
        assert!(refusal(&other, "ci", "podinfo.prod", t0.plus(SAME_HOLDER_GRACE)).is_none());
        // Another name waits for the whole lease.
        assert!(refusal(&other, "bob", "x", t0.plus(SAME_HOLDER_GRACE)).is_some());
        assert!(refusal(&other, "bob", "x", t0.plus(LEASE)).is_none());
        // This process's own lease, and one written before tokens existed.
        assert!(refusal(&lease("ci", token(), t0), "ci", "x", t0).is_none());
        let mut old = other.clone();
        old.token = None;
        assert!(refusal(&old, "ci", "x", t0).is_none());
    }

    #[test]
    fn a_lease_of_a_process_gone_from_this_host_is_taken_at_once() {
        let t0 = Time(1_700_000_000_000);
        let mut gone = lease("ci", "0123", t0);
        gone.host = host();
        // Process ids stay far below this.
        gone.pid = Some(u32::MAX - 1);
        if host().is_some() && std::path::Path::new("/proc/self").exists() {
            assert!(refusal(&gone, "ci", "x", t0).is_none());
            gone.pid = Some(std::process::id());
            assert!(refusal(&gone, "ci", "x", t0).is_none(), "this very process");
        }
    }
}
