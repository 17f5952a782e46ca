//! Carrying out a round: applying the engine's actions in order, calling
//! the `event` webhooks, and writing the round's state. Every Kubernetes
//! call is a function of [`crate::cluster`]; what is left here is which
//! one to call, with what.

use super::observe::Snapshot;
use super::{Driver, RunError};
use crate::cluster::autoscaler;
use crate::cluster::services::Which;
use crate::cluster::{configs, services, state as statestore};
use crate::hooks::Hooks;
use crate::router::Router;
use canary_core::engine::Message;
use canary_core::engine::decide::{Action, Scale};
use canary_core::engine::state::State;
use canary_core::spec::resolve::HookType;

impl Driver<'_> {
    /// `--set-image`: a new revision of the target, before the first
    /// round sees it; returns the target's resourceVersion with it, which
    /// the target's watch must bring before a round trusts its copy (the
    /// namespace's watch may have started before the change).
    pub(super) async fn set_image(&self) -> Result<Option<String>, RunError> {
        let target = &self.canary.target.name;
        let containers = self.workloads.containers(target).await?;
        for (name, _) in &self.settings.set_image {
            if !containers.contains(name) {
                return Err(RunError::Setup(format!(
                    "--set-image: {} has no container `{name}` (it has: {})",
                    self.workloads.object(target),
                    containers.join(", ")
                )));
            }
        }
        let written = self
            .workloads
            .set_images(target, &self.settings.set_image)
            .await?;
        for (name, image) in &self.settings.set_image {
            self.report_progress(&format!("Set image of {target}/{name} to {image}"));
        }
        Ok(written)
    }

    /// Applies one effect; returns the primary's new resourceVersion when
    /// the effect changed the primary.
    pub(super) async fn execute(
        &self,
        action: &Action,
        snap: &Snapshot,
        next_state: &State,
    ) -> Result<Option<String>, RunError> {
        let c = &self.canary;
        let target = &c.target.name;
        let (label, value) = (&snap.label.0, &snap.label.1);
        match action {
            Action::Initialize => {
                let mut rv = None;
                if snap.primary.is_none() {
                    if !self.knative() {
                        configs::copy_to_primary(&self.conn.client, &c.namespace, &snap.tracked)
                            .await?;
                    }
                    let mut state = next_state.clone();
                    state.lease = Some(self.lease());
                    state.canary = Some(c.name.clone());
                    rv = self
                        .workloads
                        .create_primary(&snap.target, label, value, &snap.tracked.refs(), &state)
                        .await?;
                }
                // A Knative Service's revisions have Services of Knative's.
                if !self.knative() {
                    services::reconcile(&self.conn.client, c, label, value, Which::Backends)
                        .await?;
                }
                self.reconcile_autoscaler().await?;
                Ok(rv)
            }
            Action::Expose => {
                if !self.knative() {
                    services::reconcile(&self.conn.client, c, label, value, Which::All).await?;
                }
                self.reconcile_autoscaler().await?;
                self.router.reconcile(c).await?;
                Ok(None)
            }
            Action::ScaleTarget(scale) => {
                let up = match scale {
                    Scale::Zero => None,
                    Scale::Up => {
                        // KEDA must not hold the target at zero meanwhile.
                        self.pause_target_scaler(false).await?;
                        if !snap.target.scaled_to_zero() {
                            return Ok(None);
                        }
                        Some(
                            snap.primary
                                .as_ref()
                                .and_then(|p| p.replicas())
                                .filter(|r| *r > 0)
                                .unwrap_or(1),
                        )
                    }
                };
                let rv = self.workloads.scale(target, up).await?;
                if let Some(w) = &self.watched {
                    w.target.saw(rv.as_deref());
                }
                if up.is_none() {
                    self.pause_target_scaler(true).await?;
                }
                Ok(None)
            }
            Action::SetRouting(r) => {
                self.router.set_routing(c, r).await?;
                // The traffic of a Knative Service is written on the object
                // holding the state: its new version is carried forward.
                Ok(match &self.router {
                    crate::router::AnyRouter::Knative(k) => k.take_written(),
                    _ => None,
                })
            }
            Action::Promote => {
                if !self.knative() {
                    configs::copy_to_primary(&self.conn.client, &c.namespace, &snap.tracked)
                        .await?;
                }
                let replicas = if c.autoscaler.is_none() {
                    snap.target.replicas().filter(|r| *r > 0)
                } else {
                    None
                };
                let rv = self
                    .workloads
                    .promote(&snap.target, label, value, &snap.tracked.refs(), replicas)
                    .await?;
                Ok(match rv {
                    Some(rv) => Some(self.after_promotion(rv, snap).await),
                    None => None,
                })
            }
            Action::RunHooks(kind) => {
                let hooks = Hooks::new(&self.edge, c);
                for w in hooks
                    .notify(
                        *kind,
                        next_state.phase.as_str(),
                        &snap.observed.revision,
                        None,
                    )
                    .await
                {
                    self.report_warning(&w);
                }
                Ok(None)
            }
        }
    }

    /// The primary's autoscaler, when the canary names one: created, or
    /// updated when the target's changed (see [`crate::cluster::autoscaler`]).
    pub(super) async fn reconcile_autoscaler(&self) -> Result<(), RunError> {
        let Some(a) = &self.canary.autoscaler_spec else {
            return Ok(());
        };
        if self.workloads.kind != crate::cluster::workload::Kind::Deployment {
            return Err(RunError::Setup(format!(
                "autoscalerRef: a {} has no replicas to scale",
                self.canary.target.kind
            )));
        }
        let done = autoscaler::reconcile_primary(
            &self.conn.client,
            &self.canary.namespace,
            &self.canary.target.name,
            a,
            &self.primary_name(),
        )
        .await?;
        if done == autoscaler::Reconciled::Updated {
            let name = a.name.clone().unwrap_or_default();
            let kind = autoscaler::Scaler::of(a.kind.as_deref().unwrap_or_default());
            self.report_progress(&format!(
                "{}/{} follows the change to {}/{name}",
                kind.noun(),
                canary_core::names::primary(&name),
                kind.noun()
            ));
        }
        Ok(())
    }

    /// Pauses (or resumes) the target's ScaledObject, as Flagger does while
    /// the target is scaled to zero; nothing for an HPA.
    async fn pause_target_scaler(&self, pause: bool) -> Result<(), RunError> {
        let Some(a) = &self.canary.autoscaler else {
            return Ok(());
        };
        let scaler = autoscaler::Scaler::of(&a.kind);
        let (client, ns) = (&self.conn.client, &self.canary.namespace);
        if pause {
            autoscaler::pause_target(client, ns, scaler, &a.name).await?;
        } else {
            autoscaler::resume_target(client, ns, scaler, &a.name).await?;
        }
        Ok(())
    }

    /// Writes the round's state to the primary at resourceVersion `rv`,
    /// clearing the request the round acted on and storing the spec when
    /// it is not there yet. `false`: another writer changed the state or
    /// the request meanwhile, and the round is decided again.
    pub(super) async fn persist(
        &self,
        rv: &str,
        snap: &Snapshot,
        state: &State,
    ) -> Result<bool, RunError> {
        let extra = statestore::Extra {
            clear_request: snap.raw_request.is_some(),
            spec: if snap.spec_stored {
                None
            } else {
                self.spec.as_deref()
            },
        };
        // A round that changed nothing (waiting for pods, a gate, the next
        // check) writes nothing: the lease is renewed on its own schedule,
        // every third of its duration, by the first round after that.
        let fresh_lease = snap.state.lease.as_ref().is_some_and(|l| {
            super::lease::is_mine(l, &self.settings.holder)
                && crate::clock::now().since(l.renew_time) < super::lease::RENEW_EVERY
        });
        if extra.spec.is_none()
            && !extra.clear_request
            && fresh_lease
            && state.lease.is_some()
            && statestore::same_state(&snap.state, &statestore::stored(state))
        {
            if let Some(lease) = &snap.state.lease {
                self.lease_written(lease.renew_time);
            }
            return Ok(true);
        }
        // A round that changes the state keeps a lease renewed less than a
        // sixth of its duration ago as it is, so its write does not carry
        // the lease again; an older one is renewed by this write, before
        // the sleep after it would renew it with a write of its own.
        let young_lease = snap.state.lease.as_ref().is_some_and(|l| {
            super::lease::is_mine(l, &self.settings.holder)
                && crate::clock::now().since(l.renew_time) < super::lease::RENEW_EVERY / 2
        });
        let mut kept;
        let state = match &snap.state.lease {
            Some(held) if young_lease && state.lease.is_some() => {
                kept = state.clone();
                kept.lease = Some(held.clone());
                &kept
            }
            _ => state,
        };
        let written = self
            .workloads
            .write_decided(
                &self.primary_name(),
                rv,
                snap.primary.as_ref(),
                &snap.state,
                snap.raw_request.as_deref(),
                state,
                &extra,
                self.watched.as_ref().map(|w| &w.primary),
            )
            .await?;
        if let (Some(rv), Some(w)) = (&written, &self.watched) {
            w.primary.saw(Some(rv));
        }
        if written.is_some()
            && let Some(lease) = &state.lease
        {
            self.lease_written(lease.renew_time);
        }
        Ok(written.is_some())
    }

    /// The primary's resourceVersion to guard the round's state write
    /// with after the promotion wrote `rv`: a new template is a new
    /// generation, which the Deployment controller answers at once with a
    /// status update, and a write guarded by `rv` would meet that and be
    /// refused. The version of that update is taken instead, from the
    /// primary's watch, when it is there within moments and nothing else
    /// changed meanwhile: the state and the request annotation are still
    /// those the round read. Otherwise `rv`, as the write's own conflict
    /// handling expects.
    async fn after_promotion(&self, rv: String, snap: &Snapshot) -> String {
        let Some(w) = &self.watched else { return rv };
        let written: Option<u64> = rv.parse().ok();
        let settled = w
            .primary
            .settled_within(crate::cluster::cache::CATCH_UP, |p| {
                let version = p.metadata.resource_version.as_deref();
                let newer = version.and_then(|v| v.parse::<u64>().ok()) >= written;
                let observed =
                    p.status.as_ref().and_then(|s| s.observed_generation) >= p.metadata.generation;
                newer
                    && observed
                    && statestore::raw_request(p) == snap.raw_request
                    && statestore::read(p).ok().flatten().as_ref() == Some(&snap.state)
            })
            .await;
        settled
            .and_then(|p| p.metadata.resource_version)
            .unwrap_or(rv)
    }

    /// Sends the round's messages to the `event` webhooks.
    pub(super) async fn call_event_hooks(&self, events: &[Message], state: &State) {
        if self.canary.hooks(HookType::Event).next().is_none() {
            return;
        }
        let hooks = Hooks::new(&self.edge, &self.canary);
        let revision = state.last_applied_spec.clone().unwrap_or_default();
        for e in events {
            let text = e.to_string();
            for w in hooks
                .notify(
                    HookType::Event,
                    state.phase.as_str(),
                    &revision,
                    Some((e.severity().as_str(), &text)),
                )
                .await
            {
                self.report_warning(&w);
            }
        }
    }
}
