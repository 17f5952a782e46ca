//! The driver loop of `canary run`: observe, decide, execute, persist,
//! wait. The only place that loops.
//!
//! Each round reads the target, the primary (with the state annotation)
//! and the router's weights, asks the engine what to do (answering its
//! questions by calling webhooks and querying metrics), applies the effects
//! in order, and writes the new state guarded by the primary's
//! resourceVersion. A conflict means someone else wrote in between: the
//! round is thrown away and decided again from a fresh read.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::configs::{self, Tracked};
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::proxy::HttpEdge;
use crate::cluster::{services, state as statestore, workload};
use crate::engine::decide::{
    self, Action, Analysis, Answers, HookOutcome, MetricValue, Next, Observed, Question, Scale,
    Step, Verdict,
};
use crate::engine::state::{Lease, State, Time};
use crate::hooks::Hooks;
use crate::metrics::prometheus::{self, MetricError, MetricServer};
use crate::metrics::{builtin, template};
use crate::router::{AnyRouter, Router};
use crate::spec::resolve::{HookType, MetricSource, ResolvedCanary, ResolvedMetric};
use crate::spec::types::MetricTemplate;

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
}

/// A line for people, with the canary it concerns.
pub trait Reporter: Send + Sync {
    fn event(&self, canary: &str, message: &str);
}

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
}

/// The wall clock, as the engine's time.
pub fn now() -> Time {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Time(ms)
}

impl<'a> Driver<'a> {
    pub fn new(
        conn: &'a Connection,
        canary: ResolvedCanary,
        templates: Vec<MetricTemplate>,
        settings: &'a Settings,
        reporter: &'a dyn Reporter,
    ) -> Result<Self, RunError> {
        let provider = canary.provider.clone().unwrap_or_default();
        let router = AnyRouter::for_provider(&conn.client, &provider).map_err(RunError::Setup)?;
        let edge = HttpEdge::from_config(conn.config.clone(), canary.namespace.clone())
            .map_err(|e| RunError::Setup(e.to_string()))?;
        let deployments = Api::namespaced(conn.client.clone(), &canary.namespace);
        Ok(Driver {
            conn,
            canary,
            templates,
            settings,
            reporter,
            edge,
            router,
            deployments,
        })
    }

    fn id(&self) -> String {
        format!("{}.{}", self.canary.name, self.canary.namespace)
    }

    fn primary_name(&self) -> String {
        workload::primary_name(&self.canary.target.name)
    }

    fn say(&self, msg: &str) {
        self.reporter.event(&self.id(), msg);
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
            self.set_image().await?;
        }
        let mut waited_since: Option<Time> = None;
        loop {
            let snap = self.observe().await?;
            let mut answers = Answers::default();
            let decision = loop {
                match decide::decide(&self.canary, &snap.state, &snap.observed, &answers) {
                    Step::Act(d) => break *d,
                    Step::Ask(q) => self.answer(q, &snap, &mut answers).await,
                }
            };

            // --wait-for-change: nothing to do yet, so wait for a change.
            if decision.next == Next::Done(Verdict::NoChange)
                && let Some(limit) = self.settings.wait_for_change
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
            if let Some(rv) = rv
                && !self.persist(&rv, &snap.state, &state).await?
            {
                // Another writer changed the state: decide again from it.
                continue;
            }
            for e in &decision.events {
                self.say(e);
            }
            self.notify_events(&decision.events, &state).await;
            match decision.next {
                Next::Now => {}
                Next::At(t) => self.sleep_until(t).await?,
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
    async fn persist(&self, rv: &str, based_on: &State, state: &State) -> Result<bool, RunError> {
        let name = self.primary_name();
        let mut rv = rv.to_string();
        for _ in 0..10 {
            match statestore::write(&self.deployments, &name, &rv, state).await {
                Ok(_) => return Ok(true),
                Err(e) if e.is_conflict() => {
                    let fresh =
                        self.deployments.get(&name).await.map_err(|e| {
                            ClusterError::api("read", format!("deployment/{name}"), e)
                        })?;
                    let current = statestore::read(&fresh)?;
                    let unchanged = match &current {
                        // A primary created this round carries the state it
                        // was created with.
                        Some(c) => same_state(c, based_on) || same_state(c, state),
                        None => false,
                    };
                    if !unchanged {
                        return Ok(false);
                    }
                    rv = fresh.metadata.resource_version.unwrap_or_default();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
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
        let dep = self
            .deployments
            .get(target)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{target}"), e))?;
        let containers: Vec<String> = dep
            .spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let mut patch_containers = Vec::new();
        for (name, image) in &self.settings.set_image {
            if !containers.contains(name) {
                return Err(RunError::Setup(format!(
                    "--set-image: deployment/{target} has no container `{name}` (it has: {})",
                    containers.join(", ")
                )));
            }
            patch_containers.push(json!({"name": name, "image": image}));
        }
        let patch = json!({"spec": {"template": {"spec": {"containers": patch_containers}}}});
        self.deployments
            .patch(target, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| {
                ClusterError::api("set the image of", format!("deployment/{target}"), e)
            })?;
        for (name, image) in &self.settings.set_image {
            self.say(&format!("Set image of {target}/{name} to {image}"));
        }
        Ok(())
    }

    async fn observe(&self) -> Result<Snapshot, RunError> {
        let target_name = &self.canary.target.name;
        let target = self
            .deployments
            .get_opt(target_name)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{target_name}"), e))?
            .ok_or_else(|| ClusterError::NotFound {
                object: format!(
                    "deployment/{target_name} in namespace {}",
                    self.canary.namespace
                ),
            })?;
        let label = workload::selector_label(&target)?;
        let primary_name = self.primary_name();
        let primary = self
            .deployments
            .get_opt(&primary_name)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{primary_name}"), e))?;
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
        let routes = match &primary {
            Some(_) => self.router.get_routes(&self.canary).await?,
            None => None,
        };
        let observed = Observed {
            now,
            revision,
            target: workload::observe(&target),
            primary: primary.as_ref().map(workload::observe),
            routes,
            retry: self.settings.retry,
        };
        Ok(Snapshot {
            target,
            primary,
            primary_rv,
            state,
            tracked,
            observed,
            label,
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
    async fn measure(&self, m: &ResolvedMetric) -> Result<f64, String> {
        let (query, server) = self.query_for(m).await?;
        match prometheus::query(&self.edge, &server, &query, None).await {
            Ok(v) => Ok(v),
            Err(MetricError::NoValues) => Err("no values found".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn default_server(&self) -> Result<String, String> {
        self.canary
            .metrics_server
            .clone()
            .or_else(|| {
                self.canary
                    .provider
                    .as_deref()
                    .and_then(crate::engine::plan::default_metrics_server)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                "no metrics server: set spec.metricsServer or --metrics-server".to_string()
            })
    }

    async fn query_for(&self, m: &ResolvedMetric) -> Result<(String, MetricServer), String> {
        let c = &self.canary;
        let model = c.template_model(m);
        let render = |t: &str| template::render(t, &model).map_err(|e| e.to_string());
        match &m.source {
            MetricSource::Builtin => {
                let provider = c.provider.as_deref().unwrap_or_default();
                let b = builtin::builtin_query(provider, &m.name).ok_or_else(|| {
                    format!("provider {provider} has no built-in metric `{}`", m.name)
                })?;
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
                let spec = t.spec.clone().unwrap_or_default();
                let provider = spec.provider.clone().unwrap_or_default();
                let kind = provider.r#type.as_deref().unwrap_or("prometheus");
                if kind != "prometheus" {
                    return Err(format!(
                        "MetricTemplate {namespace}/{name}: provider `{kind}` is not supported \
                         yet (prometheus is)"
                    ));
                }
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
        let ar = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("flagger.app", "v1beta1", "MetricTemplate"),
            "metrictemplates",
        );
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.conn.client.clone(), namespace, &ar);
        let obj = api
            .get_opt(name)
            .await
            .map_err(|e| format!("failed to read MetricTemplate {namespace}/{name}: {e}"))?
            .ok_or_else(|| format!("MetricTemplate {namespace}/{name} not found"))?;
        let value = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
        serde_json::from_value(value)
            .map_err(|e| format!("MetricTemplate {namespace}/{name} is invalid: {e}"))
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
                    let primary = workload::build_primary(
                        &snap.target,
                        label,
                        value,
                        &snap.tracked.refs(),
                        (crate::engine::state::ANNOTATION, state.to_annotation()),
                    );
                    let created = self
                        .deployments
                        .create(&PostParams::default(), &primary)
                        .await
                        .map_err(|e| {
                            ClusterError::api(
                                "create",
                                format!("deployment/{}", self.primary_name()),
                                e,
                            )
                        })?;
                    rv = created.metadata.resource_version;
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
                let patch = json!({"spec": {"replicas": replicas}});
                self.deployments
                    .patch(target, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| ClusterError::api("scale", format!("deployment/{target}"), e))?;
                Ok(None)
            }
            Action::SetRoutes(r) => {
                self.router.set_routes(c, *r).await?;
                Ok(None)
            }
            Action::Promote => {
                configs::copy_to_primary(&self.conn.client, &c.namespace, &snap.tracked).await?;
                let name = self.primary_name();
                let template = workload::primary_template(
                    &snap.target,
                    label,
                    &workload::primary_name(value),
                    &snap.tracked.refs(),
                );
                let replicas = if c.autoscaler.is_none() {
                    snap.target.spec.replicas.filter(|r| *r > 0)
                } else {
                    None
                };
                // Read, modify, replace: the controller's status updates
                // move the resourceVersion, so a conflict is read again.
                for _ in 0..10 {
                    let mut primary =
                        self.deployments.get(&name).await.map_err(|e| {
                            ClusterError::api("read", format!("deployment/{name}"), e)
                        })?;
                    primary.spec.template = template.clone();
                    if let Some(r) = replicas {
                        primary.spec.replicas = Some(r);
                    }
                    match self
                        .deployments
                        .replace(&name, &PostParams::default(), &primary)
                        .await
                    {
                        Ok(updated) => return Ok(updated.metadata.resource_version),
                        Err(e) => {
                            let e =
                                ClusterError::api("promote to", format!("deployment/{name}"), e);
                            if !e.is_conflict() {
                                return Err(e.into());
                            }
                        }
                    }
                }
                Err(ClusterError::Conflict {
                    object: format!("deployment/{name}"),
                }
                .into())
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
                    self.say(&w);
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

    async fn notify_events(&self, events: &[String], state: &State) {
        if self.canary.hooks(HookType::Event).next().is_none() {
            return;
        }
        let hooks = Hooks::new(&self.edge, &self.canary);
        let revision = state.last_applied_spec.clone().unwrap_or_default();
        for e in events {
            let kind = if e.starts_with("Halt") || e.starts_with("Rolling back") {
                "Warning"
            } else {
                "Normal"
            };
            for w in hooks
                .notify(
                    HookType::Event,
                    state.phase.as_str(),
                    &revision,
                    Some((kind, e)),
                )
                .await
            {
                self.say(&w);
            }
        }
    }

    /// Sleeps until `t`, renewing the lease on the way.
    async fn sleep_until(&self, t: Time) -> Result<(), RunError> {
        loop {
            let left = t.since(now());
            if left.is_zero() {
                return Ok(());
            }
            let chunk = left.min(LEASE / 3);
            tokio::time::sleep(chunk).await;
            if chunk < left {
                self.renew_lease().await?;
            }
        }
    }

    async fn renew_lease(&self) -> Result<(), RunError> {
        let name = self.primary_name();
        let Some(p) = self
            .deployments
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{name}"), e))?
        else {
            return Ok(());
        };
        let Some(mut state) = statestore::read(&p)? else {
            return Ok(());
        };
        if state
            .lease
            .as_ref()
            .is_some_and(|l| l.holder != self.settings.holder && l.is_live(now()))
        {
            return Err(RunError::Refused(format!(
                "{} was taken over by {}",
                self.id(),
                state.lease.map(|l| l.holder).unwrap_or_default()
            )));
        }
        state.lease = Some(self.lease());
        let rv = p.metadata.resource_version.unwrap_or_default();
        match statestore::write(&self.deployments, &name, &rv, &state).await {
            Ok(_) => Ok(()),
            // Renewal lost a race: the next round re-reads everything.
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the target's revision differs from `revision` or `until`
    /// passes: woken by a watch on the target, and every few seconds
    /// anyway, since a change to one of its ConfigMaps or Secrets is a new
    /// revision too.
    async fn wait_for_target_change(&self, revision: &str, until: Time) -> Result<(), RunError> {
        use futures::StreamExt;
        use kube::runtime::watcher;
        let config = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.canary.target.name));
        let mut events = std::pin::pin!(watcher::watcher(self.deployments.clone(), config));
        while now() < until {
            let left = until.since(now()).min(Duration::from_secs(5));
            tokio::select! {
                _ = events.next() => {}
                _ = tokio::time::sleep(left) => {}
            }
            let snap = self.observe().await?;
            if snap.observed.revision != revision {
                return Ok(());
            }
        }
        Ok(())
    }
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
    let name = workload::primary_name(target);
    for _ in 0..5 {
        let Some(p) = api
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", format!("deployment/{name}"), e))?
        else {
            return Ok(());
        };
        let Some(mut state) = statestore::read(&p)? else {
            return Ok(());
        };
        if state.lease.as_ref().is_none_or(|l| l.holder != holder) {
            return Ok(());
        }
        state.lease = None;
        let rv = p.metadata.resource_version.unwrap_or_default();
        match statestore::write(&api, &name, &rv, &state).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether two states are the same apart from lease renewal times.
fn same_state(a: &State, b: &State) -> bool {
    let strip = |s: &State| {
        let mut s = s.clone();
        if let Some(l) = s.lease.as_mut() {
            l.renew_time = Time(0);
        }
        s
    };
    strip(a) == strip(b)
}

/// Picks the mesh from what is installed: Linkerd when its namespace and
/// the SMI TrafficSplit CRD are there, Istio when its namespace and
/// VirtualService CRD are. Says which and why.
pub async fn detect_provider(client: &kube::Client) -> Result<(String, String), RunError> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let has_crd = |name: &'static str| {
        let crds = crds.clone();
        async move { crds.get_opt(name).await.ok().flatten().is_some() }
    };
    let has_ns = |name: &'static str| {
        let namespaces = namespaces.clone();
        async move { namespaces.get_opt(name).await.ok().flatten().is_some() }
    };
    let mut found = Vec::new();
    if has_ns("linkerd").await && has_crd("trafficsplits.split.smi-spec.io").await {
        found.push((
            "linkerd",
            "namespace linkerd and CRD trafficsplits.split.smi-spec.io exist",
        ));
    }
    if has_ns("istio-system").await && has_crd("virtualservices.networking.istio.io").await {
        found.push((
            "istio",
            "namespace istio-system and CRD virtualservices.networking.istio.io exist",
        ));
    }
    match found.as_slice() {
        [(p, why)] => Ok((p.to_string(), why.to_string())),
        [] => Err(RunError::Setup(
            "no provider in the spec and none detected (no Linkerd or Istio found); \
             name one with --mesh-provider (or spec.provider)"
                .to_string(),
        )),
        many => Err(RunError::Setup(format!(
            "several meshes found ({}); choose one with --mesh-provider (or spec.provider)",
            many.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Who this driver is, for leases and messages: `CANARY_LEASE_HOLDER`
/// when set (a retried CI job with the same identity takes its own lease
/// back at once), else `user@host pid N`.
pub fn holder() -> String {
    if let Ok(h) = std::env::var("CANARY_LEASE_HOLDER")
        && !h.trim().is_empty()
    {
        return h;
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host} pid {}", std::process::id())
}
