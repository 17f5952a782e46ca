//! The driver loop of `canary run`: observe, decide, execute, persist,
//! wait. The only place that loops.
//!
//! Each round reads the target, the primary (with the state annotation)
//! and the router's weights, asks the engine what to do (answering its
//! questions by calling webhooks and querying metrics), applies the effects
//! in order, and writes the new state guarded by the primary's
//! resourceVersion. A conflict means someone else wrote in between: the
//! round is thrown away and decided again from a fresh read.
//!
//! Between rounds the driver sleeps on three things: its clock, a watch of
//! the primary (an operator's request, written there by `canary abort` and
//! friends, wakes it at once; the request is cleared by the same guarded
//! write that stores the round's state), and the run's stop signal
//! (`--timeout`, Ctrl-C). Requests and stops are inputs of the engine like
//! any observation. What happens is reported as typed events
//! ([`canary_core::event`]) to one reporter.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::clock::now;
use crate::cluster::configs::{self, Tracked};
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::proxy::HttpEdge;
use crate::cluster::{services, state as statestore, workload};
use crate::hooks::Hooks;
use crate::metrics::prometheus::{self, MetricError, MetricServer};
use crate::router::{AnyRouter, Router};
use canary_core::engine::Message;
use canary_core::engine::decide::{
    self, Action, Analysis, Answers, Decision, HookOutcome, MetricFailure, MetricValue, Next,
    Observed, Question, Request, RequestKind, Scale, Step, Verdict,
};
use canary_core::engine::state::{Lease, State};
use canary_core::event::{self, Event, Kind, Reporter};
use canary_core::queries::{builtin, template};
use canary_core::spec::resolve::{HookType, MetricSource, ResolvedCanary, ResolvedMetric};
use canary_core::spec::types::MetricTemplate;
use canary_core::time::Time;

/// How long a driver's claim on a canary holds without renewal.
pub const LEASE: Duration = Duration::from_secs(15);

/// Settings of one `canary run`, resolved from flags and environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub wait_for_change: Option<Duration>,
    pub set_image: Vec<(String, String)>,
    pub retry: bool,
    /// Who drives, for the lease: `user@host pid N`.
    pub holder: String,
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
pub enum Stop {
    /// Leave the rollout as it is; a later run resumes it.
    Leave,
    /// Roll back a rollout under way, for this reason.
    RollBack(String),
}

/// How a driver is told to stop.
pub type StopSignal = tokio::sync::watch::Receiver<Option<Stop>>;

/// One canary being driven.
pub struct Driver<'a> {
    pub conn: &'a Connection,
    pub canary: ResolvedCanary,
    pub templates: Vec<MetricTemplate>,
    pub settings: &'a Settings,
    pub reporter: &'a dyn Reporter,
    edge: HttpEdge,
    router: AnyRouter,
    deployments: Api<Deployment>,
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
}

/// What one round observed, beyond what the engine sees.
struct Snapshot {
    target: Deployment,
    primary: Option<Deployment>,
    primary_rv: Option<String>,
    state: State,
    tracked: Tracked,
    observed: Observed,
    label: (String, String),
    /// The request annotation as read, and whether the spec annotation
    /// needs writing.
    raw_request: Option<String>,
    spec_stored: bool,
}

impl<'a> Driver<'a> {
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
        let edge = HttpEdge::from_config(conn.config.clone(), canary.namespace.clone())
            .map_err(|e| RunError::Setup(e.to_string()))?;
        let deployments = Api::namespaced(conn.client.clone(), &canary.namespace);
        let shown = std::sync::Mutex::new((State::new(now()), None));
        Ok(Driver {
            conn,
            canary,
            templates,
            settings,
            reporter,
            edge,
            router,
            deployments,
            spec: None,
            stop: None,
            request: None,
            note: None,
            shown,
        })
    }

    /// Stores `spec` (a Canary document, with its provider resolved) on the
    /// primary, for `canary abort` and `canary promote` without a driver.
    pub fn with_spec(mut self, spec: String) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Says `note` right after the rollout is started.
    pub fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    pub fn with_stop(mut self, stop: StopSignal) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Acts on `request` in the first round.
    pub fn with_request(mut self, request: Request) -> Self {
        self.request = Some(request);
        self
    }

    fn stop_requested(&self) -> Option<Stop> {
        self.stop.as_ref().and_then(|s| s.borrow().clone())
    }

    /// An event of `kind` carrying `state`.
    fn event(&self, kind: Kind, state: &State) -> Event {
        Event::new(
            kind,
            now(),
            &self.canary.name,
            &self.canary.namespace,
            state,
        )
    }

    fn emit(&self, e: Event) {
        self.reporter.emit(&e);
    }

    /// The state last shown, and what the rollout waited for then.
    pub fn last_shown(&self) -> (State, Option<String>) {
        self.shown
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| (State::new(now()), None))
    }

    /// A message of `kind` between rounds, with the state last shown.
    fn tell(&self, kind: Kind, msg: &str) {
        let (state, waiting) = self.last_shown();
        let mut e = self.event(kind, &state).with_message(msg);
        e.waiting_for = waiting;
        self.emit(e);
    }

    fn warn(&self, msg: &str) {
        self.tell(Kind::Warning, msg);
    }

    fn started(&self, state: &State) {
        let c = &self.canary;
        let weights = canary_core::engine::schedule::Schedule::of(c).progressive_weights();
        let metrics = c
            .metrics
            .iter()
            .map(|m| {
                let b = decide::builtin_of(c, m);
                let (min, max) = decide::thresholds(b, m);
                event::MetricInfo {
                    name: m.name.clone(),
                    min,
                    max,
                    unit: b.map(|b| b.unit.to_string()).unwrap_or_default(),
                }
            })
            .collect();
        let mut e = self.event(Kind::Started, state);
        e.run = Some(event::RunInfo {
            target: format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name),
            provider: c.provider.map(|p| p.name().to_string()).unwrap_or_default(),
            strategy: c.strategy.label().to_string(),
            interval_seconds: c.interval.as_secs_f64(),
            threshold: c.threshold,
            weights,
            max_weight: c.max_weight,
            iterations: c.iterations,
            metrics,
        });
        self.emit(e);
    }

    /// Shows what a round decided: its messages, its checks, what it now
    /// waits for.
    fn show(&self, d: &Decision, before: &State, state: &State, answers: &Answers, at: Time) {
        if let Some(pre) = &answers.pre_rollout {
            let mut e = self.event(Kind::Check, state);
            e.hooks = self.hook_records(canary_core::spec::resolve::HookType::PreRollout, pre);
            self.emit(e);
        }
        if let Some(a) = &answers.analysis {
            let mut e = self.event(Kind::Check, state);
            // The checks were made at the weight before this round moved it.
            e.canary_weight = before.canary_weight;
            e.hooks = self.hook_records(HookType::Rollout, &a.hooks);
            if let Some(judged) = state
                .history
                .iter()
                .rev()
                .take_while(|h| h.time == at)
                .find(|h| !h.metrics.is_empty())
            {
                e.metrics = judged.metrics.clone();
            }
            self.emit(e);
        }
        for m in &d.events {
            self.emit(
                self.event(Kind::Progress, state)
                    .with_message(m.to_string()),
            );
        }
        let changed = {
            let mut shown = match self.shown.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            let changed = shown.1 != d.waiting;
            *shown = (state.clone(), d.waiting.clone());
            changed
        };
        if changed {
            let mut e = self.event(Kind::Waiting, state);
            e.waiting_for = d.waiting.clone();
            self.emit(e);
        }
    }

    /// The hooks of `kind` as one check called them: all passed, or the
    /// ones before the failed one passed and the rest were not called.
    fn hook_records(&self, kind: HookType, outcome: &HookOutcome) -> Vec<event::HookRecord> {
        let mut failed_seen = false;
        self.canary
            .hooks(kind)
            .map(|h| {
                let (result, message) = match outcome {
                    HookOutcome::Passed => ("passed", None),
                    HookOutcome::Failed { hook, reason } if *hook == h.name => {
                        failed_seen = true;
                        ("failed", Some(reason.clone()))
                    }
                    HookOutcome::Failed { .. } if failed_seen => ("skipped", None),
                    HookOutcome::Failed { .. } => ("passed", None),
                };
                event::HookRecord {
                    name: h.name.clone(),
                    result: result.to_string(),
                    message,
                }
            })
            .collect()
    }

    /// Request rate, success rate and p99 of the primary and the canary.
    async fn traffic(&self, state: &State) {
        let c = &self.canary;
        let Some(provider) = c.provider else {
            return;
        };
        let Ok(address) = self.default_server() else {
            return;
        };
        let server = MetricServer::new(address);
        // One interval, as the checks see it; ten seconds at least, for
        // Prometheus to have two samples to rate.
        let window = c.interval.max(Duration::from_secs(10));
        let window_text = format!("{}s", window.as_secs());
        let primary_name = self.primary_name();
        let Some(q) = canary_core::queries::traffic::queries(
            provider,
            &c.namespace,
            &primary_name,
            &c.target.name,
            &window_text,
        ) else {
            return;
        };
        let ask = |query: String| {
            let server = server.clone();
            async move {
                prometheus::query_by(&self.edge, &server, &query, q.label)
                    .await
                    .unwrap_or_default()
            }
        };
        let rate = ask(q.request_rate.clone()).await;
        let success = ask(q.success_rate.clone()).await;
        let p99 = ask(q.latency_p99.clone()).await;
        let stats = |w: &str| {
            let finite = |m: &std::collections::BTreeMap<String, f64>| {
                m.get(w).copied().filter(|v| v.is_finite())
            };
            event::VersionStats {
                request_rate: finite(&rate),
                success_rate: finite(&success),
                latency_p99_ms: finite(&p99),
            }
        };
        let primary = stats(&primary_name);
        let canary = stats(&c.target.name);
        let mut e = self.event(Kind::Traffic, state);
        e.traffic = Some(event::Traffic {
            window_seconds: window.as_secs(),
            primary,
            canary,
        });
        self.emit(e);
    }

    fn id(&self) -> String {
        format!("{}.{}", self.canary.name, self.canary.namespace)
    }

    fn primary_name(&self) -> String {
        canary_core::names::primary(&self.canary.target.name)
    }

    fn say(&self, msg: &str) {
        self.tell(Kind::Progress, msg);
    }

    /// Drives the canary to a verdict.
    pub async fn drive(&mut self) -> Result<Verdict, RunError> {
        if self.canary.target.kind != "Deployment" {
            return Err(RunError::Setup(format!(
                "`canary run` drives Deployments; {} is a {}",
                self.canary.target.name, self.canary.target.kind
            )));
        }
        if !self.settings.set_image.is_empty() {
            if self.canary.suspended {
                // A suspended canary is not touched at all, its target
                // included.
                self.warn("spec.suspend is set: --set-image was not applied");
            } else {
                self.set_image().await?;
            }
        }
        // Changes to the primary wake the driver at once: that is how an
        // operator's request reaches it.
        let requests = statestore::watch_requests(&self.deployments, &self.primary_name());
        let mut wake = Wake {
            requests,
            open: true,
        };
        let mut waited_since: Option<Time> = None;
        let mut started = false;
        let mut first_request = self.request.take();
        loop {
            let stop = self.stop_requested();
            if stop == Some(Stop::Leave) {
                return Err(RunError::Stopped);
            }
            let mut snap = self.observe().await?;
            if !started {
                started = true;
                self.started(&snap.state);
                if let Some(n) = self.note.take() {
                    self.emit(self.event(Kind::Progress, &snap.state).with_message(n));
                }
            }
            let stored = snap.raw_request.as_deref().and_then(|t| {
                let r: statestore::StoredRequest = serde_json::from_str(t).ok()?;
                Some(Request {
                    kind: RequestKind::from_action(&r.action)?,
                    by: r.by,
                    at: r.at,
                })
            });
            snap.observed.request = match &stop {
                Some(Stop::RollBack(reason)) => Some(Request {
                    kind: RequestKind::RollBack(reason.clone()),
                    by: self.settings.holder.clone(),
                    at: snap.observed.now,
                }),
                _ => first_request.take().or(stored),
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
                let since = match waited_since {
                    Some(t) => t,
                    None => {
                        self.say(&format!(
                            "Waiting up to {} for a change to deployment/{}",
                            humantime::format_duration(limit),
                            self.canary.target.name
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

            let mut rv = snap.primary_rv.clone();
            for action in &decision.actions {
                if let Some(new_rv) = self.execute(action, &snap, &decision.state).await? {
                    rv = Some(new_rv);
                }
            }
            let done = matches!(decision.next, Next::Done(_));
            let mut state = decision.state.clone();
            state.lease = if done { None } else { Some(self.lease()) };
            state.canary = Some(self.canary.name.clone());
            let extra = statestore::Extra {
                clear_request: snap.raw_request.is_some(),
                spec: if snap.spec_stored {
                    None
                } else {
                    self.spec.as_deref()
                },
            };
            if let Some(rv) = rv
                && !self.persist(&rv, &snap, &state, &extra).await?
            {
                // Another writer changed the state: decide again from it.
                continue;
            }
            if let Some(r) = &snap.observed.request
                && !matches!(r.kind, RequestKind::RollBack(_))
            {
                let mut e = self.event(Kind::Request, &state);
                e.request = Some(event::RequestInfo {
                    action: r.kind.as_str().to_string(),
                    by: r.by.clone(),
                    requested_at: r.at,
                    reacted_after_ms: now().since(r.at).as_millis() as u64,
                });
                self.emit(e);
            }
            self.show(&decision, &snap.state, &state, &answers, snap.observed.now);
            if answers.analysis.is_some() {
                self.traffic(&state).await;
            }
            self.notify_events(&decision.events, &state).await;
            if stop.is_some()
                && !done
                && !matches!(
                    state.phase,
                    canary_core::engine::state::Phase::Promoting
                        | canary_core::engine::state::Phase::Finalising
                )
            {
                return Err(RunError::Stopped);
            }
            match decision.next {
                Next::Now => {}
                Next::At(t) => self.sleep_until(t, &mut wake).await?,
                Next::Done(v) => return Ok(v),
            }
        }
    }

    /// Writes the state, guarded by the primary's resourceVersion. The
    /// controller bumps that version with every status update, so on a
    /// conflict the primary is read again: when the state on it is still
    /// the one this round decided from, the write is repeated with the new
    /// version; when another writer changed the state, `false` is returned
    /// and the round is decided again.
    async fn persist(
        &self,
        rv: &str,
        snap: &Snapshot,
        state: &State,
        extra: &statestore::Extra<'_>,
    ) -> Result<bool, RunError> {
        Ok(statestore::write_decided(
            &self.deployments,
            &self.primary_name(),
            rv,
            &snap.state,
            snap.raw_request.as_deref(),
            state,
            extra,
        )
        .await?)
    }

    fn lease(&self) -> Lease {
        Lease {
            holder: self.settings.holder.clone(),
            renew_time: now(),
            duration_seconds: LEASE.as_secs(),
        }
    }

    async fn set_image(&self) -> Result<(), RunError> {
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
            self.say(&format!("Set image of {target}/{name} to {image}"));
        }
        Ok(())
    }

    async fn observe(&self) -> Result<Snapshot, RunError> {
        let target_name = &self.canary.target.name;
        let target = workload::get(&self.deployments, target_name)
            .await?
            .ok_or_else(|| ClusterError::NotFound {
                object: format!(
                    "deployment/{target_name} in namespace {}",
                    self.canary.namespace
                ),
            })?;
        let label = workload::selector_label(&target)?;
        let primary_name = self.primary_name();
        let primary = workload::get(&self.deployments, &primary_name).await?;
        let now = now();
        let mut state = State::new(now);
        let mut primary_rv = None;
        if let Some(p) = &primary {
            if let Some(owner) = workload::flagger_owner(p) {
                return Err(RunError::Refused(format!(
                    "deployment/{primary_name} is managed by Flagger (Canary {owner} owns it); \
                     canary will not drive a canary that Flagger also drives"
                )));
            }
            primary_rv = p.metadata.resource_version.clone();
            if let Some(s) = statestore::read(p)? {
                state = s;
            }
            if let Some(lease) = &state.lease
                && lease.holder != self.settings.holder
                && lease.is_live(now)
            {
                return Err(RunError::Refused(format!(
                    "{} is being driven by {} (lease renewed {}, valid until {}); \
                     wait for it to finish: a lease that is not renewed expires and is taken over",
                    self.id(),
                    lease.holder,
                    lease.renew_time.to_rfc3339(),
                    lease.expires().to_rfc3339()
                )));
            }
        }
        let tracked = configs::track(
            &self.conn.client,
            &self.canary.namespace,
            &target.spec.template,
        )
        .await?;
        let revision = workload::revision(&target, &tracked.hashes);
        let routing = match &primary {
            Some(_) => self.router.current_routing(&self.canary).await?,
            None => None,
        };
        let observed = Observed {
            now,
            revision,
            target: workload::observe(&target),
            primary: primary.as_ref().map(workload::observe),
            routing,
            retry: self.settings.retry,
            request: None,
        };
        let raw_request = primary.as_ref().and_then(statestore::raw_request);
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
        })
    }

    async fn answer(&self, q: Question, snap: &Snapshot, answers: &mut Answers) {
        let hooks = Hooks::new(&self.edge, &self.canary);
        let phase = snap.state.phase.as_str();
        let checksum = snap.observed.revision.as_str();
        match q {
            Question::Gate(kind) => {
                let open = hooks.gate(kind, phase, checksum).await;
                answers.gates.insert(kind, open);
            }
            Question::Rollback => {
                answers.rollback = Some(hooks.rollback_requested(phase, checksum).await);
            }
            Question::PreRollout => {
                answers.pre_rollout = Some(hooks.run(HookType::PreRollout, phase, checksum).await);
            }
            Question::Analysis => {
                let outcome = hooks.run(HookType::Rollout, phase, checksum).await;
                let metrics = if outcome == HookOutcome::Passed {
                    let mut out = Vec::new();
                    for m in &self.canary.metrics {
                        out.push(MetricValue {
                            name: m.name.clone(),
                            value: self.measure(m).await,
                        });
                    }
                    out
                } else {
                    Vec::new()
                };
                answers.analysis = Some(Analysis {
                    hooks: outcome,
                    metrics,
                });
            }
        }
    }

    /// Renders and runs one metric's query.
    async fn measure(&self, m: &ResolvedMetric) -> Result<f64, MetricFailure> {
        let (query, server) = self.query_for(m).await.map_err(MetricFailure::Query)?;
        match prometheus::query(&self.edge, &server, &query, None).await {
            Ok(v) => Ok(v),
            Err(MetricError::NoValues) => Err(MetricFailure::NoValues),
            Err(e) => Err(MetricFailure::Query(e.to_string())),
        }
    }

    fn default_server(&self) -> Result<String, String> {
        self.canary.metrics_server_or_default().ok_or_else(|| {
            "no metrics server: set spec.metricsServer or --metrics-server".to_string()
        })
    }

    async fn query_for(&self, m: &ResolvedMetric) -> Result<(String, MetricServer), String> {
        let c = &self.canary;
        let model = c.template_model(m);
        let render = |t: &str| template::render(t, &model).map_err(|e| e.to_string());
        match &m.source {
            MetricSource::Builtin => {
                let b = c
                    .provider
                    .and_then(|p| builtin::builtin_query(p, &m.name))
                    .ok_or_else(|| format!("no built-in metric `{}` for this provider", m.name))?;
                Ok((
                    render(b.template)?,
                    MetricServer::new(self.default_server()?),
                ))
            }
            MetricSource::Inline { query } => {
                Ok((render(query)?, MetricServer::new(self.default_server()?)))
            }
            MetricSource::Template {
                name, namespace, ..
            } => {
                let t = self.template(name, namespace).await?;
                // Refused before the run started; a template changed in the
                // cluster since then fails its checks rather than being
                // queried as something it is not.
                if let Some((why, _)) = canary_core::support::template_refusal(&t) {
                    return Err(why);
                }
                let spec = t.spec.clone().unwrap_or_default();
                let provider = spec.provider.clone().unwrap_or_default();
                let address = match provider.address.filter(|a| !a.is_empty()) {
                    Some(a) => a,
                    None => self.default_server()?,
                };
                let mut server = MetricServer::new(address);
                if let Some(secret) = provider.secret_ref.and_then(|s| s.name) {
                    server.auth = Some(
                        prometheus::auth_from_secret(&self.conn.client, namespace, &secret)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok((render(spec.query.as_deref().unwrap_or_default())?, server))
            }
        }
    }

    /// A MetricTemplate from the spec files, else from the cluster.
    async fn template(&self, name: &str, namespace: &str) -> Result<MetricTemplate, String> {
        if let Some(t) = self
            .templates
            .iter()
            .find(|t| t.name() == name && t.namespace() == namespace)
        {
            return Ok(t.clone());
        }
        crate::metrics::templates::get(&self.conn.client, namespace, name).await
    }

    /// Applies one effect; returns the primary's new resourceVersion when
    /// the effect changed the primary.
    async fn execute(
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
                services::reconcile(&self.conn.client, c, label, value).await?;
                self.reconcile_autoscaler().await?;
                self.router.reconcile(c).await?;
                Ok(rv)
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
                workload::scale(&self.deployments, target, replicas).await?;
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
                    self.warn(&w);
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

    async fn notify_events(&self, events: &[Message], state: &State) {
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
                self.warn(&w);
            }
        }
    }

    /// Sleeps until `t`, renewing the lease on the way; returns early when
    /// a request lands on the primary or the run is told to stop.
    async fn sleep_until(&self, t: Time, wake: &mut Wake) -> Result<(), RunError> {
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
    async fn wait_for_target_change(&self, revision: &str, until: Time) -> Result<(), RunError> {
        use futures::StreamExt;
        let mut changes = workload::watch_changes(&self.deployments, &self.canary.target.name);
        while now() < until {
            let left = until.since(now()).min(Duration::from_secs(5));
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = changes.next() => {}
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

/// What wakes a sleeping driver besides its clock.
struct Wake {
    /// Requests landing on the primary.
    requests: futures::stream::BoxStream<'static, ()>,
    /// `false` once the stream ended: only the clock wakes the driver then.
    open: bool,
}

/// Gives up this driver's lease on a canary, if it holds it, so another
/// run may continue at once.
pub async fn release_lease(
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
