//! The driver of `canary run`: the one loop that observes, decides,
//! executes, persists, reports and waits, until a verdict.
//!
//! Each round reads the target, the primary (with the state annotation)
//! and the router's routing (`observe.rs`; the two Deployments and the
//! router's object from watches kept while driving, `cluster::cache`),
//! asks the engine what to do, answering its questions by calling webhooks and querying metrics
//! (`answer.rs`), applies the actions in order and writes the new state
//! guarded by the primary's resourceVersion (`execute.rs`). A conflict
//! means someone else wrote in between: the round is thrown away and
//! decided again from a fresh read. What happened is reported as typed
//! events ([`canary_core::event`]) to one reporter (`report.rs`); the
//! round's messages also go, in the background, to the alert targets
//! ([`crate::alerts`]) and as Kubernetes Events to the target
//! ([`crate::events`]), and neither can change a verdict. The driver
//! never prints and never builds a patch: its Kubernetes calls are
//! functions of [`crate::cluster`].
//!
//! Between rounds the driver sleeps (`lease.rs`) on three things: its
//! clock, renewing its lease on the way; a watch of the primary (an
//! operator's request, written there by `canary abort` and friends, wakes
//! it at once; the request is cleared by the same guarded write that
//! stores the round's state); and the run's stop signal (`--timeout`,
//! Ctrl-C). Requests and stops are inputs of the engine like any
//! observation.
//!
//! Each round also lets the cluster correct the state: the router is the
//! truth for the routing and the workloads for what runs, so a round whose
//! effects were applied and whose state write was lost is repaired by the
//! next (the engine restores the step's routing and scales up a canary
//! found at zero). A round that fails on a transient cluster error (the
//! API server's 429 or 5xx, a broken connection, after the client's own
//! per-request retries) is tried again from a fresh read, within
//! `--api-retry-window` of the last round that read the cluster.

mod answer;
mod execute;
pub(crate) mod lease;
mod observe;
mod report;
pub(crate) use report::run_info;

use std::time::Duration;

use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::proxy::{HttpEdge, Via};
use crate::router::{AnyRouter, Router as _};
use canary_core::engine::decide::{self, Answers, Next, Request, RequestKind, Step, Verdict};
use canary_core::engine::state::{Phase, State};
use canary_core::event::Reporter;
use canary_core::spec::resolve::ResolvedCanary;
use canary_core::spec::types::MetricTemplate;
use canary_core::time::Time;

pub(crate) use lease::{
    RENEW_EVERY, claim, hold, release_all_held, release_lease, release_on_panic, unhold,
};

/// Settings of one `canary run`, resolved by the command from flags and
/// environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub wait_for_change: Option<Duration>,
    pub set_image: Vec<(String, String)>,
    pub retry: bool,
    /// How long rounds failing on transient cluster errors are tried
    /// again, since the last round that got through (`--api-retry-window`).
    pub api_retry_window: Duration,
    /// Who drives, for the lease: `user@host pid N`, or the Pod's name.
    pub holder: String,
    /// How in-cluster URLs are reached, when `--route-via` says; else
    /// as the connection implies (see `proxy::Via::choose`).
    pub route_via: Option<Via>,
    /// `--proxy-allow`: the namespaces, besides the canary's own, whose
    /// Services webhooks and metrics servers may name; `None` for any.
    pub proxy_allow: Option<Vec<String>>,
    /// Record each message as a Kubernetes Event on the target
    /// (`--no-events` turns it off).
    pub events: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wait_for_change: None,
            set_image: Vec::new(),
            retry: false,
            api_retry_window: Duration::from_secs(60),
            holder: String::new(),
            route_via: None,
            proxy_allow: None,
            events: true,
        }
    }
}

/// Why a run stopped without a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Setup(String),
    /// The run was told to stop and left the rollout as it was.
    #[error("stopped; the state is kept")]
    Stopped,
}

/// Why a run stops before its verdict (`--timeout`, Ctrl-C).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Leave the rollout as it is; a later run resumes it.
    Leave,
    /// Roll back a rollout under way, for this reason.
    RollBack(String),
}

/// What the rounds of one run carry from one to the next.
struct Rounds {
    wake: lease::Wake,
    /// Since when `--wait-for-change` waits.
    waited_since: Option<Time>,
    started: bool,
    /// A request to act on in the first round.
    first_request: Option<Request>,
    /// When a round last read the cluster without error.
    ok_at: std::time::Instant,
}

/// How a driver is told to stop.
pub(crate) type StopSignal = tokio::sync::watch::Receiver<Option<Stop>>;

/// One canary being driven.
pub struct Driver<'a> {
    conn: &'a Connection,
    canary: ResolvedCanary,
    templates: Vec<MetricTemplate>,
    /// The spec file's Secrets, for the MetricTemplates' `secretRef`.
    secrets: Vec<k8s_openapi::api::core::v1::Secret>,
    settings: &'a Settings,
    reporter: &'a dyn Reporter,
    edge: HttpEdge,
    router: AnyRouter,
    workloads: crate::cluster::workload::Workloads,
    /// The spec to store on the primary for `abort`/`promote` without a
    /// driver, when not yet stored there.
    spec: Option<String>,
    stop: Option<StopSignal>,
    /// A request to act on in the first round (`canary abort` with no
    /// running driver).
    request: Option<Request>,
    /// Said once the rollout is started (how the provider was chosen).
    note: Option<String>,
    /// What was last shown: the state, and what the rollout waits for.
    shown: std::sync::Mutex<(State, Option<String>)>,
    /// Posts the canary's alerts, when they go anywhere.
    alerter: Option<crate::alerts::Alerter>,
    /// Records the messages as Kubernetes Events on the target.
    events: Option<crate::events::Recorder>,
    /// When this process last wrote its lease (milliseconds, as [`Time`]):
    /// rounds that change nothing write nothing, so the lease is renewed
    /// by the clock of its last write.
    renewed: std::sync::atomic::AtomicI64,
    /// The target and the primary as watches hold them, while driving.
    watched: Option<observe::WatchedPair>,
}

impl<'a> Driver<'a> {
    /// A driver for `canary`; a canary whose provider `canary run` cannot
    /// drive is refused here, before anything is read.
    pub fn new(
        conn: &'a Connection,
        canary: ResolvedCanary,
        templates: Vec<MetricTemplate>,
        settings: &'a Settings,
        reporter: &'a dyn Reporter,
    ) -> Result<Self, RunError> {
        let provider = canary.provider.ok_or_else(|| {
            RunError::Setup("no provider: name one with --mesh-provider".to_string())
        })?;
        let router = AnyRouter::for_provider(&conn.client, provider).map_err(RunError::Setup)?;
        let edge = HttpEdge::for_connection(conn, canary.namespace.clone(), settings.route_via)
            .map_err(|e| RunError::Setup(e.to_string()))?
            .with_proxy_allow(settings.proxy_allow.clone());
        let kind = crate::cluster::workload::Kind::of(&canary.target.kind).ok_or_else(|| {
            RunError::Setup(format!(
                "`canary run` drives Deployments and DaemonSets; {} is a {}",
                canary.target.name, canary.target.kind
            ))
        })?;
        let workloads =
            crate::cluster::workload::Workloads::new(&conn.client, &canary.namespace, kind);
        let shown = std::sync::Mutex::new((State::new(now()), None));
        Ok(Driver {
            conn,
            canary,
            templates,
            secrets: Vec::new(),
            settings,
            reporter,
            edge,
            router,
            workloads,
            spec: None,
            stop: None,
            request: None,
            note: None,
            shown,
            alerter: None,
            events: None,
            renewed: std::sync::atomic::AtomicI64::new(0),
            watched: None,
        })
    }

    /// Reads a MetricTemplate's `secretRef` from `secrets` (the spec
    /// file's) when it is there, before the cluster.
    pub(crate) fn with_secrets(mut self, secrets: Vec<k8s_openapi::api::core::v1::Secret>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Sends the canary's alerts to `targets`.
    pub(crate) fn with_alerts(mut self, targets: crate::alerts::Targets) -> Self {
        if targets.0.is_empty() {
            return self;
        }
        let edge = HttpEdge::for_connection(
            self.conn,
            self.canary.namespace.clone(),
            self.settings.route_via,
        )
        .map(|e| e.with_proxy_allow(self.settings.proxy_allow.clone()));
        match edge {
            Ok(e) => {
                self.alerter = Some(crate::alerts::Alerter::new(targets, std::sync::Arc::new(e)))
            }
            Err(e) => self.report_warning(&format!("alerts will not be sent: {e}")),
        }
        self
    }

    /// Starts sending the alerts of a round's messages, and reports the
    /// alerts of earlier rounds that could not be delivered.
    async fn send_alerts(&self, before: Phase, events: &[canary_core::engine::Message]) {
        let Some(a) = &self.alerter else { return };
        a.send(&self.canary, before, events);
        for w in a.finished().await {
            self.report_warning(&w);
        }
    }

    /// Waits for the alerts and Events still being sent, reporting those
    /// that could not be delivered.
    async fn flush_alerts(&self) {
        if let Some(a) = &self.alerter {
            for w in a.flush().await {
                self.report_warning(&w);
            }
        }
        if let Some(r) = &self.events {
            for w in r.flush().await {
                self.report_warning(&w);
            }
        }
    }

    /// Starts recording a round's messages as Events on the target, and
    /// reports Events of earlier rounds that could not be recorded.
    fn record_events(
        &self,
        target: &crate::cluster::workload::Object,
        messages: &[canary_core::engine::Message],
    ) {
        let Some(r) = &self.events else { return };
        if !messages.is_empty() {
            use crate::cluster::state::Annotated;
            let t = &self.canary.target;
            let regarding = crate::events::reference(
                &t.api_version,
                &t.kind,
                &self.canary.namespace,
                &t.name,
                target.meta().uid.clone(),
            );
            r.record(messages, &regarding);
        }
        for w in r.warnings() {
            self.report_warning(&w);
        }
    }

    /// Records the rollout's messages as Kubernetes Events on the target,
    /// when the settings say so.
    pub(crate) fn with_events(mut self) -> Self {
        if self.settings.events {
            self.events = Some(crate::events::Recorder::new(
                self.conn.client.clone(),
                &self.settings.holder,
            ));
        }
        self
    }

    /// Stores `spec` (a Canary document, with its provider resolved) on the
    /// primary, for `canary abort` and `canary promote` without a driver.
    pub(crate) fn with_spec(mut self, spec: String) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Says `note` right after the rollout is started.
    pub(crate) fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// Listens to `stop` (`--timeout`, Ctrl-C): the next round acts on it,
    /// and a sleep between rounds is cut short.
    pub(crate) fn with_stop(mut self, stop: StopSignal) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Acts on `request` in the first round.
    pub(crate) fn with_request(mut self, request: Request) -> Self {
        self.request = Some(request);
        self
    }

    fn stop_requested(&self) -> Option<Stop> {
        self.stop.as_ref().and_then(|s| s.borrow().clone())
    }

    fn id(&self) -> String {
        format!("{}.{}", self.canary.name, self.canary.namespace)
    }

    fn primary_name(&self) -> String {
        self.workloads.kind.primary_name(&self.canary.target.name)
    }

    /// Whether the target is a Knative Service, its own primary.
    fn knative(&self) -> bool {
        self.workloads.kind == crate::cluster::workload::Kind::Knative
    }

    /// Drives the canary to a verdict.
    pub async fn drive(&mut self) -> Result<Verdict, RunError> {
        self.learn_lookbacks().await;
        let mut image_written = None;
        if !self.settings.set_image.is_empty() {
            if self.canary.suspended {
                // A suspended canary is not touched at all, its target
                // included.
                self.report_warning("spec.suspend is set: --set-image was not applied");
            } else {
                image_written = self.set_image().await?;
            }
        }
        // From here on the target and the primary are read from watches,
        // once those are current (see `observe.rs`). The watches follow
        // Deployments; a DaemonSet's rounds read as before.
        self.watched = (self.workloads.kind == crate::cluster::workload::Kind::Deployment)
            .then(|| observe::WatchedPair::start(self));
        if let (Some(w), Some(rv)) = (&self.watched, &image_written) {
            w.target.saw(Some(rv));
        }
        self.router.watch(&self.canary);
        let mut rounds = Rounds {
            wake: self.wake(),
            waited_since: None,
            started: false,
            first_request: self.request.take(),
            ok_at: std::time::Instant::now(),
        };
        let mut backoff = Duration::ZERO;
        let mut failed_after: Option<std::time::Instant> = None;
        loop {
            match self.rounds(&mut rounds).await {
                // The API server failed or was busy, or the connection
                // broke: every round starts from a fresh read and its
                // effects are idempotent, so the round is tried again, as
                // long as some round got through within the budget.
                Err(RunError::Cluster(e))
                    if e.is_transient()
                        && rounds.ok_at.elapsed() < self.settings.api_retry_window
                        && self.stop_requested() != Some(Stop::Leave) =>
                {
                    // Half a second after a round got through since the
                    // last failure; twice as long each time it did not.
                    backoff = if failed_after == Some(rounds.ok_at) {
                        (backoff * 2).min(Duration::from_secs(8))
                    } else {
                        Duration::from_millis(500)
                    };
                    failed_after = Some(rounds.ok_at);
                    self.report_warning(&format!(
                        "{e}; trying again in {}",
                        humantime::format_duration(backoff)
                    ));
                    tokio::time::sleep(backoff).await;
                }
                other => {
                    // The run is over: the alerts still being sent are
                    // given their time limit, so none is lost unsaid.
                    self.flush_alerts().await;
                    return other;
                }
            }
        }
    }

    /// Rounds until a verdict, or the first error.
    async fn rounds(&mut self, r: &mut Rounds) -> Result<Verdict, RunError> {
        let Rounds {
            wake,
            waited_since,
            started,
            first_request,
            ok_at,
        } = r;
        loop {
            let stop = self.stop_requested();
            if stop == Some(Stop::Leave) {
                return Err(RunError::Stopped);
            }
            let mut snap = self.observe().await?;
            *ok_at = std::time::Instant::now();
            if !*started {
                *started = true;
                // The router's objects follow the spec as it is now (a
                // changed `service.timeout`, traffic policy, hosts ...);
                // the routing in place is kept. Flagger does this at every
                // tick; a run does it once, as it starts.
                if snap.observed.routing.is_some() && !self.canary.suspended {
                    self.router.reconcile(&self.canary).await?;
                }
                self.report_started(&snap.state);
            }
            if stop.is_some() && matches!(snap.state.phase, Phase::Promoting | Phase::Finalising) {
                // A promotion under way is not rolled back: the primary may
                // already run the new version. It is left as it is, for the
                // next run to finish, so that a stop takes effect at once.
                return Err(RunError::Stopped);
            }
            snap.observed.request = match &stop {
                Some(Stop::RollBack(reason)) => Some(Request {
                    kind: RequestKind::RollBack(reason.clone()),
                    by: self.settings.holder.clone(),
                    at: snap.observed.now,
                }),
                _ => first_request.take().or(snap.stored_request.take()),
            };
            let mut answers = Answers::default();
            let decision = loop {
                match decide::decide(&self.canary, &snap.state, &snap.observed, &answers) {
                    Step::Act(d) => break *d,
                    Step::Ask(q) => self.answer(q, &snap, &mut answers).await,
                }
            };
            if decision.next == Next::Done(Verdict::Suspended) {
                // Left exactly as it is: no state write, no lease.
                return Ok(Verdict::Suspended);
            }

            // --wait-for-change: nothing to do yet, so wait for a change.
            if decision.next == Next::Done(Verdict::NoChange)
                && let Some(limit) = self.settings.wait_for_change
                && stop.is_none()
            {
                let since = match *waited_since {
                    Some(t) => t,
                    None => {
                        self.report_progress(&format!(
                            "Waiting up to {} for a change to {}",
                            humantime::format_duration(limit),
                            self.workloads.object(&self.canary.target.name)
                        ));
                        *waited_since.insert(now())
                    }
                };
                if now().since(since) < limit {
                    self.wait_for_target_change(&snap.observed.revision, since.plus(limit))
                        .await?;
                    continue;
                }
            }

            // Nothing is changed without this process's own lease, taken
            // with a guarded write: a second process, even one with the
            // same holder name, finds it and stops.
            if !decision.actions.is_empty()
                && snap.primary.is_some()
                && !snap
                    .state
                    .lease
                    .as_ref()
                    .is_some_and(|l| lease::is_mine(l, &self.settings.holder))
                && self.take_lease().await?
            {
                // An operator's request is acted on in the next round.
                *first_request = snap.observed.request.take().or(first_request.take());
                continue;
            }
            // The primary's autoscaler follows the target's at every
            // round, as Flagger's scaler reconciler does at every tick
            // (writing only when they differ); a revert under way is left
            // to remove it.
            if snap.primary.is_some()
                && snap.state.phase != Phase::Terminating
                && self.canary.autoscaler.is_some()
            {
                self.reconcile_autoscaler().await?;
            }
            let mut rv = snap.primary_rv.clone();
            for action in &decision.actions {
                if let Some(new_rv) = self.execute(action, &snap, &decision.state).await? {
                    if let Some(w) = &self.watched {
                        w.primary.saw(Some(&new_rv));
                    }
                    rv = Some(new_rv);
                }
            }
            let done = matches!(decision.next, Next::Done(_));
            let mut state = decision.state.clone();
            state.lease = if done { None } else { Some(self.lease()) };
            state.canary = Some(self.canary.name.clone());
            if let Some(rv) = rv
                && !self.persist(&rv, &snap, &state).await?
            {
                // Another writer changed the state: decide again from it.
                continue;
            }
            self.report_round(&snap, &decision, &answers, &state).await;
            self.call_event_hooks(&decision.events, &state).await;
            self.send_alerts(snap.state.phase, &decision.events).await;
            self.record_events(&snap.target, &decision.events);
            if stop.is_some() && !done {
                return Err(RunError::Stopped);
            }
            match decision.next {
                Next::Now => {}
                Next::At(t) => self.sleep_until(t, wake).await?,
                Next::Done(v) => return Ok(v),
            }
        }
    }
}
