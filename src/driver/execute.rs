//! Carrying out a round: applying the engine's actions in order, calling
//! the `event` webhooks, and writing the round's state. Every Kubernetes
//! call is a function of [`crate::cluster`]; what is left here is which
//! one to call, with what.

use super::observe::Snapshot;
use super::{Driver, RunError};
use crate::cluster::services::Which;
use crate::cluster::{configs, services, state as statestore, workload};
use crate::hooks::Hooks;
use crate::router::Router;
use canary_core::engine::Message;
use canary_core::engine::decide::{Action, Scale};
use canary_core::engine::state::State;
use canary_core::spec::resolve::HookType;

impl Driver<'_> {
    /// `--set-image`: a new revision of the target, before the first
    /// round sees it.
    pub(super) async fn set_image(&self) -> Result<(), RunError> {
        let target = &self.canary.target.name;
        let containers = workload::containers(&self.deployments, target).await?;
        for (name, _) in &self.settings.set_image {
            if !containers.contains(name) {
                return Err(RunError::Setup(format!(
                    "--set-image: deployment/{target} has no container `{name}` (it has: {})",
                    containers.join(", ")
                )));
            }
        }
        workload::set_images(&self.deployments, target, &self.settings.set_image).await?;
        for (name, image) in &self.settings.set_image {
            self.report_progress(&format!("Set image of {target}/{name} to {image}"));
        }
        Ok(())
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
                    configs::copy_to_primary(&self.conn.client, &c.namespace, &snap.tracked)
                        .await?;
                    let mut state = next_state.clone();
                    state.lease = Some(self.lease());
                    state.canary = Some(c.name.clone());
                    rv = workload::create_primary(
                        &self.deployments,
                        &snap.target,
                        label,
                        value,
                        &snap.tracked.refs(),
                        &state,
                    )
                    .await?;
                }
                services::reconcile(&self.conn.client, c, label, value, Which::Backends).await?;
                self.reconcile_autoscaler().await?;
                Ok(rv)
            }
            Action::Expose => {
                services::reconcile(&self.conn.client, c, label, value, Which::All).await?;
                self.reconcile_autoscaler().await?;
                self.router.reconcile(c).await?;
                Ok(None)
            }
            Action::ScaleTarget(scale) => {
                let replicas = match scale {
                    Scale::Zero => 0,
                    Scale::Up => {
                        let own = snap.target.spec.replicas.unwrap_or(0);
                        if own > 0 {
                            return Ok(None);
                        }
                        snap.primary
                            .as_ref()
                            .and_then(|p| p.spec.replicas)
                            .filter(|r| *r > 0)
                            .unwrap_or(1)
                    }
                };
                let rv = workload::scale(&self.deployments, target, replicas).await?;
                if let Some(w) = &self.watched {
                    w.target.saw(rv.as_deref());
                }
                Ok(None)
            }
            Action::SetRouting(r) => {
                self.router.set_routing(c, r).await?;
                Ok(None)
            }
            Action::Promote => {
                configs::copy_to_primary(&self.conn.client, &c.namespace, &snap.tracked).await?;
                let replicas = if c.autoscaler.is_none() {
                    snap.target.spec.replicas.filter(|r| *r > 0)
                } else {
                    None
                };
                Ok(workload::promote(
                    &self.deployments,
                    &snap.target,
                    label,
                    value,
                    &snap.tracked.refs(),
                    replicas,
                )
                .await?)
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

    /// The primary's HPA, when the canary names an autoscaler.
    async fn reconcile_autoscaler(&self) -> Result<(), RunError> {
        let Some(a) = &self.canary.autoscaler else {
            return Ok(());
        };
        if a.kind != "HorizontalPodAutoscaler" {
            return Err(RunError::Setup(format!(
                "autoscalerRef kind {} is not supported by `canary run` yet \
                 (HorizontalPodAutoscaler is)",
                a.kind
            )));
        }
        crate::cluster::autoscaler::reconcile_primary(
            &self.conn.client,
            &self.canary.namespace,
            &a.name,
            &self.primary_name(),
        )
        .await?;
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
                && crate::clock::now().since(l.renew_time) < super::LEASE / 3
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
        let written = statestore::write_decided(
            &self.deployments,
            &self.primary_name(),
            rv,
            snap.primary.as_ref(),
            &snap.state,
            snap.raw_request.as_deref(),
            state,
            &extra,
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
