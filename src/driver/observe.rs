//! What one round of the driver sees: the target, the primary and the
//! state on it, the configs the target uses, and the router's routing,
//! as the engine's [`Observed`] plus what executing the round needs.

use k8s_openapi::api::apps::v1::Deployment;

use crate::cluster::cache::Watched;
use crate::cluster::workload::Object;

use super::{Driver, RunError};
use crate::clock::now;
use crate::cluster::configs::{self, Tracked};
use crate::cluster::error::ClusterError;
use crate::cluster::state as statestore;
use crate::router::Router;
use canary_core::engine::decide::{Observed, Request, RequestKind};
use canary_core::engine::state::{Phase, State};

/// The target and the primary, watched while a driver drives: a round
/// reads them from the watches when these hold the newest version the
/// driver knows of, and from the API server otherwise.
pub(super) struct WatchedPair {
    pub(super) target: Watched<Deployment>,
    pub(super) primary: Watched<Deployment>,
}

impl WatchedPair {
    pub(super) fn start(d: &Driver<'_>) -> Self {
        WatchedPair {
            target: Watched::start(d.workloads.deployments(), &d.canary.target.name),
            primary: Watched::start(d.workloads.deployments(), &d.primary_name()),
        }
    }
}

/// What one round observed, beyond what the engine sees.
pub(super) struct Snapshot {
    pub(super) target: Object,
    pub(super) primary: Option<Object>,
    pub(super) primary_rv: Option<String>,
    pub(super) state: State,
    pub(super) tracked: Tracked,
    pub(super) observed: Observed,
    pub(super) label: (String, String),
    /// The request annotation as read, and whether the spec annotation
    /// needs writing.
    pub(super) raw_request: Option<String>,
    pub(super) spec_stored: bool,
    /// The operator's request the annotation holds, when it reads as one.
    pub(super) stored_request: Option<Request>,
}

impl Driver<'_> {
    /// The workload `name`, from its watch when that is current (the
    /// watches follow Deployments), else read.
    async fn workload(
        &self,
        name: &str,
        which: fn(&WatchedPair) -> &Watched<Deployment>,
    ) -> Result<Option<Object>, RunError> {
        if let Some(w) = &self.watched
            && let Some(hit) = which(w)
                .current_within(crate::cluster::cache::CATCH_UP)
                .await
        {
            return Ok(hit.map(Object::Deployment));
        }
        let read = self.workloads.get(name).await?;
        if let Some(w) = &self.watched {
            use crate::cluster::state::Annotated;
            which(w).saw(
                read.as_ref()
                    .and_then(|o| o.meta().resource_version.as_deref()),
            );
        }
        Ok(read)
    }

    /// Reads what one round decides from: the target, the primary with
    /// the state, the configs the target uses, and the router's routing.
    /// A primary Flagger owns, a canary `canary revert` is taking apart,
    /// or a live lease held by another driver, stops the run.
    pub(super) async fn observe(&self) -> Result<Snapshot, RunError> {
        let target_name = &self.canary.target.name;
        let target = self
            .workload(target_name, |w| &w.target)
            .await?
            .ok_or_else(|| ClusterError::NotFound {
                object: format!(
                    "{} in namespace {}",
                    self.workloads.object(target_name),
                    self.canary.namespace
                ),
            })?;
        let label = target.selector_label()?;
        let primary_name = self.primary_name();
        let primary = if self.knative() {
            // The Knative Service read again, as a primary once its
            // annotation names a revision.
            self.workloads.get_primary(target_name).await?
        } else {
            self.workload(&primary_name, |w| &w.primary).await?
        };
        let now = now();
        let mut state = State::new(now);
        let mut primary_rv = None;
        if let Some(p) = &primary {
            if let Some(owner) = p.flagger_owner() {
                return Err(RunError::Refused(format!(
                    "{} is managed by Flagger (Canary {owner} owns it); \
                     canary will not drive a canary that Flagger also drives",
                    self.workloads.object(&primary_name)
                )));
            }
            primary_rv = p.resource_version();
            if let Some(s) = statestore::read(p)? {
                state = s;
            }
            if state.phase == Phase::Terminating {
                // Driving it would build up again what the revert took
                // down; the revert is finished by running it again.
                return Err(RunError::Refused(format!(
                    "{} is being reverted (`canary revert`{}); run `canary revert {} -n {}` to \
                     finish it, and `canary run` initialises it anew afterwards",
                    self.id(),
                    state
                        .lease
                        .as_ref()
                        .map(|l| format!(" by {}", l.holder))
                        .unwrap_or_default(),
                    self.canary.name,
                    self.canary.namespace
                )));
            }
            if let Some(lease) = &state.lease
                && let Some(why) =
                    super::lease::refusal(lease, &self.settings.holder, &self.id(), now)
            {
                return Err(RunError::Refused(why));
            }
        }
        let tracked = configs::track(
            &self.conn.client,
            &self.canary.namespace,
            &target.template(),
        )
        .await?;
        let revision = target.revision(&tracked.hashes);
        let routing = match &primary {
            Some(_) => self.router.current_routing(&self.canary).await?,
            None => None,
        };
        let observed = Observed {
            now,
            revision,
            target: target.observe(),
            primary: primary.as_ref().map(Object::observe_primary),
            routing,
            retry: self.settings.retry,
            request: None,
        };
        let raw_request = primary.as_ref().and_then(statestore::raw_request);
        let stored_request = primary
            .as_ref()
            .and_then(statestore::read_request)
            .and_then(|r| {
                Some(Request {
                    kind: RequestKind::from_action(&r.action)?,
                    by: r.by,
                    at: r.at,
                })
            });
        let spec_stored = match (&primary, &self.spec) {
            (Some(p), Some(spec)) => statestore::read_spec(p).as_deref() == Some(spec.as_str()),
            _ => true,
        };
        Ok(Snapshot {
            target,
            primary,
            primary_rv,
            state,
            tracked,
            observed,
            label,
            raw_request,
            spec_stored,
            stored_request,
        })
    }
}
