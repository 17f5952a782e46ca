//! `canary revert`: give a target back, as Flagger does when a Canary with
//! `revertOnDeletion: true` is deleted.
//!
//! The steps are Flagger's finaliser's, in its order: the target is scaled
//! up (a Deployment to the primary's replicas, a DaemonSet by removing the
//! scale-to-zero node selector, a KEDA ScaledObject of the target resumed
//! first) and waited for, the apex Service selects the target's pods, and
//! the router removes its objects. Where Flagger then relies on Kubernetes
//! to garbage-collect what the Canary owns, `canary` (which has no object
//! in the cluster to own anything) deletes what it created itself: the
//! primary's HPA or ScaledObject, the `-primary` and `-canary` Services,
//! the `-primary` ConfigMap and Secret copies, and last the primary
//! Deployment or DaemonSet, which holds the state. Only objects carrying
//! `canary`'s managed-by label are deleted.
//!
//! Nothing is written while a live driver holds the canary's lease: the
//! command says who, and what to do. Otherwise it takes the lease and marks
//! the canary `Terminating` once the target is ready (so no `canary run`
//! builds it up again). Every step can be repeated and the state goes
//! last, so a revert stopped at any point is finished by running it again;
//! once finished, running it again says there is nothing to revert. Ctrl-C
//! and SIGTERM stop it between two steps and give the lease up (exit 130
//! and 143), so that run again, by anyone, finishes it at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::act::{self, ActError, Named};
use crate::cli::ActArgs;
use crate::clock::now;
use crate::cluster::error::ClusterError;
use crate::cluster::managed::{self, Removal};
use crate::cluster::services::Apex;
use crate::cluster::workload::{Kind, Object, Workloads};
use crate::cluster::{autoscaler, configs, services, state as statestore};
use crate::driver::{RENEW_EVERY, claim};
use crate::exit::Outcome;
use crate::router::{AnyRouter, Router};
use crate::ui;
use canary_core::engine::state::Phase;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

/// How often the target's readiness is looked at.
const READY_POLL: Duration = Duration::from_millis(500);

/// Why a revert stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RevertError {
    /// Refused before anything was written.
    #[error("{0}")]
    Usage(String),
    /// The target did not become ready; traffic still goes to the primary.
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Finding the canary and its spec.
    #[error(transparent)]
    Act(#[from] ActError),
}

pub(crate) async fn revert(args: ActArgs) -> Outcome {
    match revert_inner(args).await {
        Ok(o) => o,
        Err(e) => {
            ui::error(&e.to_string());
            Outcome::from(&e)
        }
    }
}

async fn revert_inner(args: ActArgs) -> Result<Outcome, RevertError> {
    let from_file = args
        .file
        .as_deref()
        .map(|p| act::load(p, args.recursive))
        .transpose()?;
    let conn = super::connect(&args.cluster).await?;
    let named = match act::find(&conn, &args, from_file).await {
        Ok(n) => n,
        // Not among the canaries: maybe a target whose revert finished,
        // which is told from a name nothing answers to by its Deployment.
        Err(ActError::Usage(_)) if args.file.is_none() => {
            let name = args.name.clone().unwrap_or_default();
            Named {
                name: name.clone(),
                namespace: args
                    .cluster
                    .namespace
                    .clone()
                    .unwrap_or_else(|| conn.namespace.clone()),
                target: name,
                // A DaemonSet's primary is looked for too, below.
                kind: Kind::Deployment,
                spec: None,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let id = format!("{}.{}", named.name, named.namespace);
    let mut named = named;
    let primary_name = named.kind.primary_name(&named.target);

    // Everything is checked before the first write.
    let Some(primary) = find_primary(&conn, &mut named, &id).await? else {
        return Ok(Outcome::Success);
    };
    let api = named.workloads(&conn);
    if let Some(owner) = primary.flagger_owner() {
        return Err(RevertError::Usage(format!(
            "{} is managed by Flagger (Canary {owner} owns it); delete that Canary instead, \
             with `revertOnDeletion: true` Flagger reverts it",
            api.object(&primary_name)
        )));
    }
    let managed = match &primary {
        Object::Deployment(d) => managed::is_managed(d),
        Object::DaemonSet(d) => managed::is_managed(d),
        // The user's own object: canary's state on it is what counts.
        Object::Knative(_) => true,
    };
    let state = statestore::read(&primary)?
        .filter(|_| managed)
        .ok_or_else(|| {
            RevertError::Usage(format!(
                "{} was not made by canary (it lacks canary's label or state); nothing was \
                 changed",
                api.object(&primary_name)
            ))
        })?;
    let me = super::holder();
    if let Some(l) = state
        .lease
        .as_ref()
        .filter(|l| l.holder != me && l.is_live(now()))
    {
        let what = if state.phase == Phase::Terminating {
            format!(
                "{id} is being reverted by {} (lease valid until {}); let it finish, or run \
                 `canary revert` again once that lease runs out",
                l.holder,
                l.expires().to_rfc3339()
            )
        } else {
            format!(
                "{id} is driven by {} (lease valid until {}); stop that run first \
                 (`canary abort {} -n {}` rolls back an analysis under way and ends it, Ctrl-C \
                 ends a run that waits), then run `canary revert` again",
                l.holder,
                l.expires().to_rfc3339(),
                named.name,
                named.namespace
            )
        };
        return Err(RevertError::Usage(format!("{what}; nothing was changed")));
    }
    let (c, _) = act::stored_canary(
        &conn,
        &named,
        &id,
        "the revert needs the canary's spec (its Service, autoscaler and provider)",
    )
    .await?;
    if Kind::of(&c.target.kind) != Some(named.kind) {
        return Err(RevertError::Usage(format!(
            "{id}: the spec's target is a {} {}, but its primary is {}; nothing was changed",
            c.target.kind,
            c.target.name,
            api.object(&primary_name)
        )));
    }
    let provider = c.provider.ok_or_else(|| {
        RevertError::Usage(format!("{id}: the spec names no provider; pass -f FILE"))
    })?;
    let router = AnyRouter::for_provider(&conn.client, provider)
        .map_err(|e| RevertError::Usage(format!("{id}: {e}")))?;
    let target = api.get(&c.target.name).await?.ok_or_else(|| {
        RevertError::Usage(format!(
            "{id}: {} does not exist, so there is nothing to give the traffic back to; nothing \
             was changed",
            api.object(&c.target.name)
        ))
    })?;
    let label = target.selector_label()?;
    let tracked = configs::track(&conn.client, &c.namespace, &target.template()).await?;
    let revision = target.revision(&tracked.hashes);
    if let Some(promoted) = state
        .last_promoted_spec
        .as_deref()
        .filter(|p| *p != revision)
    {
        // As Flagger: the target is what the user declared, and it is
        // what serves once reverted. Said, so nobody is surprised.
        ui::warning(&format!(
            "{} runs revision {revision}, not the promoted {promoted} that {} serves (phase {}); \
             once reverted it serves all traffic",
            api.object(&c.target.name),
            api.object(&primary_name),
            state.phase.as_str()
        ));
    }

    let rev = Revert {
        conn: &conn,
        api: &api,
        c: &c,
        id: &id,
        me: &me,
        primary_name: &primary_name,
    };
    // Ctrl-C and SIGTERM stop the revert between two API calls, as a kill
    // would, but give the lease up on the way out: every step can be
    // repeated, so `canary revert` again, by anyone, finishes it at once.
    let mut interrupts = super::Interrupts::new();
    let work = async {
        rev.claim().await?;
        rev.run(&primary, &target, &label, &router).await
    };
    let done = tokio::select! {
        r = work => Ok(r),
        signal = interrupts.next() => Err(signal),
    };
    let result = match done {
        Ok(r) => r,
        Err(signal) => {
            let _ = crate::driver::release_lease(
                &conn,
                &c.namespace,
                (&c.target.kind, &c.target.name),
                &me,
            )
            .await;
            ui::error(&format!(
                "{id}: {}: the revert stopped part way; `canary revert {} -n {}` finishes it",
                signal.said(),
                named.name,
                named.namespace
            ));
            return Ok(signal.outcome());
        }
    };
    match result {
        Ok(pods) => {
            ui::result(&format!(
                "{id}: reverted: {} serves service/{} with {pods}, and canary no longer \
                 manages it",
                api.object(&c.target.name),
                c.service,
            ));
            Ok(Outcome::Success)
        }
        Err(e) => {
            // Whoever runs it again need not wait for the lease to run
            // out; if the cluster cannot be reached, it runs out anyway.
            let _ = crate::driver::release_lease(
                &conn,
                &c.namespace,
                (&c.target.kind, &c.target.name),
                &me,
            )
            .await;
            Err(e)
        }
    }
}

/// The primary of `named`, of its kind; for a name found among no
/// canaries, a DaemonSet's when there is no Deployment's, and `named`'s
/// kind set to it. `None` when there is nothing to revert (said).
async fn find_primary(
    conn: &crate::cluster::connect::Connection,
    named: &mut Named,
    id: &str,
) -> Result<Option<Object>, RevertError> {
    let primary_name = named.kind.primary_name(&named.target);
    let kinds = if named.spec.is_none() && named.kind == Kind::Deployment {
        vec![Kind::Deployment, Kind::DaemonSet]
    } else {
        vec![named.kind]
    };
    let mut target = None;
    for kind in &kinds {
        let api = Workloads::new(&conn.client, &named.namespace, *kind);
        let found = match api.get_primary(&named.target).await {
            Ok(p) => p,
            // A role without DaemonSets has no DaemonSet canaries.
            Err(ClusterError::Forbidden { .. }) if *kind == Kind::DaemonSet => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(p) = found {
            named.kind = *kind;
            return Ok(Some(p));
        }
        if target.is_none() && api.get(&named.target).await?.is_some() {
            target = Some(api.object(&named.target));
        }
    }
    let primary = Workloads::new(&conn.client, &named.namespace, named.kind).object(&primary_name);
    match target {
        Some(t) => {
            ui::result(&format!(
                "{id}: nothing to revert: there is no {primary}, so canary does not manage {t}"
            ));
            Ok(None)
        }
        None => Err(RevertError::Usage(format!(
            "no canary named `{}` in namespace {}, and no {} to revert; `canary status` lists \
             the canaries",
            named.name,
            named.namespace,
            Workloads::new(&conn.client, &named.namespace, named.kind).object(&named.target)
        ))),
    }
}

/// One revert under way.
struct Revert<'a> {
    conn: &'a crate::cluster::connect::Connection,
    api: &'a Workloads,
    c: &'a ResolvedCanary,
    id: &'a str,
    me: &'a str,
    primary_name: &'a str,
}

impl Revert<'_> {
    /// Says one thing done.
    fn done(&self, what: &str) {
        ui::result(&format!("{}: {what}", self.id));
    }

    fn removed(&self, object: &str, removal: Removal) {
        self.done(&match removal {
            Removal::Deleted => format!("{object} deleted"),
            Removal::Absent => format!("{object} already gone"),
            Removal::NotOurs => format!(
                "{object} left alone: canary did not create it (it has no {}={} label)",
                crate::cluster::managed::MANAGED_BY.0,
                crate::cluster::managed::MANAGED_BY.1
            ),
        });
    }

    /// Takes or renews the lease, unless another live holder got it since
    /// it was read.
    async fn claim(&self) -> Result<(), RevertError> {
        let mut taken_by = None;
        self.api
            .update_state(self.primary_name, 10, |state| {
                if let Some(l) = &state.lease
                    && l.holder != self.me
                    && l.is_live(now())
                {
                    taken_by = Some(l.holder.clone());
                    return false;
                }
                state.lease = Some(claim(self.me));
                true
            })
            .await?;
        match taken_by {
            Some(holder) => Err(RevertError::Usage(format!(
                "{} was taken by {holder} meanwhile; nothing more was changed",
                self.id
            ))),
            None => Ok(()),
        }
    }

    /// The steps, in order; returns the target's pods, in words.
    async fn run(
        &self,
        primary: &Object,
        target: &Object,
        (label, value): &(String, String),
        router: &AnyRouter,
    ) -> Result<String, RevertError> {
        let c = self.c;
        if let Object::Knative(_) = target {
            // A Knative Service keeps its revisions and Services, which are
            // Knative's: only the state, the annotation and the traffic
            // split go, and Knative routes to its latest ready revision.
            self.mark_terminating().await?;
            for (object, removal) in router.finalize(c).await? {
                self.removed(&object, removal);
            }
            let removal = self.api.delete_primary(self.primary_name).await?;
            self.removed(
                &format!("{} state annotations", self.api.object(self.primary_name)),
                removal,
            );
            return Ok("its latest ready revision".to_string());
        }
        // KEDA would hold the target at zero: its ScaledObject is resumed
        // first, so that it scales the target again.
        if let Some(a) = &c.autoscaler {
            let scaler = autoscaler::Scaler::of(&a.kind);
            if autoscaler::resume_target(&self.conn.client, &c.namespace, scaler, &a.name).await? {
                self.done(&format!(
                    "{}/{} resumed: it scales the target again",
                    scaler.noun(),
                    a.name
                ));
            }
        }
        let replicas = self.scale(primary, target).await?;
        self.wait_until_ready().await?;
        self.mark_terminating().await?;
        match services::point_apex_at_target(&self.conn.client, c, label, value).await? {
            Apex::Pointed(selector) => self.done(&format!(
                "service/{} selects the target's pods ({selector})",
                c.service
            )),
            Apex::Already(selector) => self.done(&format!(
                "service/{} already selects the target's pods ({selector})",
                c.service
            )),
            Apex::Missing => self.done(&format!(
                "service/{} does not exist: no Service to point at the target",
                c.service
            )),
        }
        for (object, removal) in router.finalize(c).await? {
            self.removed(&object, removal);
        }
        if let Some(a) = &c.autoscaler {
            let scaler = autoscaler::Scaler::of(&a.kind);
            let removal =
                autoscaler::delete_primary(&self.conn.client, &c.namespace, scaler, &a.name)
                    .await?;
            self.removed(
                &format!("{}/{}", scaler.noun(), names::primary(&a.name)),
                removal,
            );
        }
        for name in [names::primary(&c.service), names::canary(&c.service)] {
            let removal = services::delete(&self.conn.client, &c.namespace, &name).await?;
            self.removed(&format!("service/{name}"), removal);
        }
        self.delete_copies(primary, target).await?;
        let removal = self.api.delete_primary(self.primary_name).await?;
        self.removed(&self.api.object(self.primary_name), removal);
        Ok(replicas)
    }

    /// Scales the target as Flagger's finaliser does: a Deployment to the
    /// primary's replicas, else its own, else one; a DaemonSet by removing
    /// the scale-to-zero selector, so it runs where the primary runs.
    /// Returns the target's pods, in words.
    async fn scale(&self, primary: &Object, target: &Object) -> Result<String, RevertError> {
        let name = &self.c.target.name;
        let object = self.api.object(name);
        if let (Object::DaemonSet(_), Object::DaemonSet(p)) = (target, primary) {
            let nodes = p
                .status
                .as_ref()
                .map(|s| s.desired_number_scheduled)
                .unwrap_or(0);
            let pods = format!(
                "a pod on each node it selects ({nodes} node{} for {})",
                if nodes == 1 { "" } else { "s" },
                self.api.object(self.primary_name)
            );
            if !target.scaled_to_zero() {
                self.done(&format!(
                    "{object} already runs without the scale-to-zero selector"
                ));
                return Ok(pods);
            }
            self.api.scale(name, Some(1)).await?;
            self.done(&format!(
                "{object} scaled up: the scale-to-zero node selector is removed"
            ));
            return Ok(pods);
        }
        let own = target.replicas().filter(|r| *r > 0);
        let (want, source) = match primary.replicas().filter(|r| *r > 0) {
            Some(r) => (r, format!("as {}", self.api.object(self.primary_name))),
            None => (
                own.unwrap_or(1),
                format!("{} has none", self.api.object(self.primary_name)),
            ),
        };
        let words = format!("{want} replica{}", if want == 1 { "" } else { "s" });
        if target.replicas() == Some(want) {
            self.done(&format!("{object} already has {want} replicas ({source})"));
            return Ok(words);
        }
        self.api.scale(name, Some(want)).await?;
        self.done(&format!(
            "{object} scaled to {want} replicas from {} ({source})",
            target.replicas().unwrap_or(1)
        ));
        Ok(words)
    }

    /// Waits for the target to be ready, at most the canary's progress
    /// deadline, keeping the lease meanwhile. A target that does not
    /// become ready stops the revert before traffic moves.
    async fn wait_until_ready(&self) -> Result<(), RevertError> {
        let name = &self.c.target.name;
        let limit = Duration::from_secs(self.c.progress_deadline_seconds);
        let started = Instant::now();
        let mut renewed = Instant::now();
        let mut said = false;
        let object = self.api.object(name);
        loop {
            let target = self
                .api
                .get(name)
                .await?
                .ok_or_else(|| ClusterError::NotFound {
                    object: format!("{object} in namespace {}", self.c.namespace),
                })?;
            let w = target.observe();
            if w.is_ready(self.c.canary_ready_threshold) {
                self.done(&format!(
                    "{object} is ready ({}/{} replicas) after {:.1}s",
                    w.ready,
                    w.desired,
                    started.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            if started.elapsed() >= limit {
                return Err(RevertError::NotReady(format!(
                    "{}: {object} is not ready after {} ({}/{} replicas ready; the canary's \
                     progressDeadlineSeconds is {}): nothing else was changed, service/{} still \
                     sends traffic to {}; make the target ready and run `canary revert` again",
                    self.id,
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                    w.ready,
                    w.desired,
                    self.c.progress_deadline_seconds,
                    self.c.service,
                    self.api.object(self.primary_name)
                )));
            }
            if !said {
                said = true;
                ui::progress(&format!(
                    "{}: waiting up to {} for {object} to be ready",
                    self.id,
                    humantime::format_duration(limit)
                ));
            }
            if renewed.elapsed() >= RENEW_EVERY {
                self.claim().await?;
                renewed = Instant::now();
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// From here on traffic moves to the target: the phase says so, and
    /// no `canary run` builds the canary up again.
    async fn mark_terminating(&self) -> Result<(), RevertError> {
        let mut was = None;
        let mut taken_by = None;
        self.api
            .update_state(self.primary_name, 10, |state| {
                if let Some(l) = &state.lease
                    && l.holder != self.me
                    && l.is_live(now())
                {
                    taken_by = Some(l.holder.clone());
                    return false;
                }
                was = Some(state.phase);
                let now = now();
                if state.phase != Phase::Terminating {
                    state.phase = Phase::Terminating;
                    state.last_transition_time = now;
                    state.record(
                        now,
                        format!("Reverting as requested by {}", self.me),
                        Vec::new(),
                    );
                }
                state.paused = None;
                state.lease = Some(claim(self.me));
                true
            })
            .await?;
        if let Some(holder) = taken_by {
            return Err(RevertError::Usage(format!(
                "{} was taken by {holder} meanwhile; nothing more was changed",
                self.id
            )));
        }
        self.done(&match was {
            Some(Phase::Terminating) => "already Terminating: finishing an earlier revert".into(),
            Some(p) => format!(
                "phase Terminating (was {}): `canary run` refuses it until the revert is done",
                p.as_str()
            ),
            None => "phase Terminating".to_string(),
        });
        Ok(())
    }

    /// Deletes the `-primary` ConfigMap and Secret copies `canary` made,
    /// except one another canary's primary also uses (two targets sharing
    /// a ConfigMap share its copy).
    async fn delete_copies(&self, primary: &Object, target: &Object) -> Result<(), RevertError> {
        let copies = configs::copies(primary.raw_template(), target.raw_template());
        if copies.is_empty() {
            return Ok(());
        }
        // Another canary's primary of either kind may use a copy.
        let mut shared = BTreeSet::new();
        for kind in [Kind::Deployment, Kind::DaemonSet] {
            let api = Workloads::new(&self.conn.client, &self.c.namespace, kind);
            let others = match api.managed().await {
                Ok(o) => o,
                // A role without DaemonSets has no DaemonSet primaries.
                Err(ClusterError::Forbidden { .. }) if kind != self.api.kind => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            for other in others {
                let other_name = other.name();
                if kind == self.api.kind && other_name == self.primary_name {
                    continue;
                }
                for r in configs::referenced(other.raw_template()) {
                    if copies.contains(&r) {
                        shared.insert((r, api.object(&other_name)));
                    }
                }
            }
        }
        for r in &copies {
            if let Some((_, user)) = shared.iter().find(|(s, _)| s == r) {
                self.done(&format!("{} kept: {user} uses it too", r.key()));
                continue;
            }
            let removal = configs::delete_copy(&self.conn.client, &self.c.namespace, r).await?;
            self.removed(&r.key(), removal);
        }
        Ok(())
    }
}
