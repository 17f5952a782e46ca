//! Answering the engine's questions: gates and rollback requests through
//! webhooks, the pre-rollout hooks, and an analysis (the rollout hooks,
//! then every metric's query, built-in, inline or from a MetricTemplate).

use super::Driver;
use super::observe::Snapshot;
use crate::hooks::Hooks;
use std::collections::BTreeMap;

use crate::metrics::prometheus::{self, MetricError, MetricServer};
use crate::metrics::provider::{self, Source};
use canary_core::engine::decide::{
    Analysis, Answers, HookOutcome, MetricFailure, MetricValue, Question,
};
use canary_core::provider::MetricProvider;
use canary_core::queries::{builtin, template};
use canary_core::spec::resolve::{HookType, MetricSource, ResolvedMetric};
use canary_core::spec::types::MetricTemplate;
use canary_core::spec::types::MetricTemplateProvider;

impl Driver<'_> {
    /// Answers one question of the engine.
    pub(super) async fn answer(&self, q: Question, snap: &Snapshot, answers: &mut Answers) {
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
                    let route = self.revision_route(snap);
                    let mut out = Vec::new();
                    for m in &self.canary.metrics {
                        out.push(MetricValue {
                            name: m.name.clone(),
                            value: self.measure(m, route).await,
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

    /// The `route` of the queries when it is a revision rather than a
    /// name of the spec: for Knative, as in Flagger, the latest created
    /// revision, which is what the observed revision of a Knative Service
    /// target is.
    fn revision_route<'s>(&self, snap: &'s Snapshot) -> Option<&'s str> {
        (self.canary.provider == Some(canary_core::provider::Provider::Knative))
            .then_some(snap.observed.revision.as_str())
    }

    /// Renders and runs one metric's query; `route`, when given, replaces
    /// the spec's (see [`Self::revision_route`]).
    async fn measure(&self, m: &ResolvedMetric, route: Option<&str>) -> Result<f64, MetricFailure> {
        let (query, backend) = self
            .query_for(m, route)
            .await
            .map_err(MetricFailure::Query)?;
        let result = match backend {
            Backend::Prometheus(server) => {
                prometheus::query(&self.edge, &server, &query, None).await
            }
            Backend::Other {
                kind,
                provider,
                credentials,
            } => {
                let interval = canary_core::spec::resolve::parse_duration(&m.interval)
                    .map_err(|e| MetricFailure::Query(format!("metric interval: {e}")))?;
                let src = Source {
                    provider: &provider,
                    credentials: credentials.as_ref(),
                    interval,
                    now_ms: crate::clock::now().0,
                };
                if provider::through_cluster(kind) {
                    provider::query_cluster(&self.conn.client, &self.edge, kind, &src, &query).await
                } else {
                    provider::query(&self.edge, kind, &src, &query).await
                }
            }
        };
        match result {
            Ok(v) => Ok(v),
            Err(MetricError::NoValues) => Err(MetricFailure::NoValues),
            // The service proxy or the connection failed, not the metrics
            // server: no evidence, the check is made again.
            Err(MetricError::Transport(e)) if e.is_unreachable() => {
                Err(MetricFailure::Unreachable(e.to_string()))
            }
            Err(e) => Err(MetricFailure::Query(e.to_string())),
        }
    }

    /// The metrics server of the built-in and inline queries.
    pub(super) fn default_server(&self) -> Result<String, String> {
        self.canary.metrics_server_or_default().ok_or_else(|| {
            "no metrics server: set spec.metricsServer or --metrics-server".to_string()
        })
    }

    /// A metric's query, rendered, and the server to ask.
    async fn query_for(
        &self,
        m: &ResolvedMetric,
        route: Option<&str>,
    ) -> Result<(String, Backend), String> {
        let c = &self.canary;
        let mut model = c.template_model(m);
        if let Some(route) = route {
            model.route = route.to_string();
        }
        let render = |t: &str| template::render(t, &model).map_err(|e| e.to_string());
        match &m.source {
            MetricSource::Builtin => {
                let b = c
                    .provider
                    .and_then(|p| builtin::builtin_query(p, &m.name))
                    .ok_or_else(|| format!("no built-in metric `{}` for this provider", m.name))?;
                Ok((
                    b.render(&model).map_err(|e| e.to_string())?,
                    Backend::Prometheus(MetricServer::new(self.default_server()?)),
                ))
            }
            MetricSource::Inline { query } => Ok((
                render(query)?,
                Backend::Prometheus(MetricServer::new(self.default_server()?)),
            )),
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
                let query = render(spec.query.as_deref().unwrap_or_default())?;
                let kind = provider
                    .r#type
                    .as_deref()
                    .and_then(MetricProvider::parse)
                    .unwrap_or(MetricProvider::Prometheus);
                if kind != MetricProvider::Prometheus {
                    let credentials =
                        match provider.secret_ref.as_ref().and_then(|s| s.name.clone()) {
                            Some(secret) => Some(self.secret_data(namespace, &secret).await?),
                            None => None,
                        };
                    return Ok((
                        query,
                        Backend::Other {
                            kind,
                            provider,
                            credentials,
                        },
                    ));
                }
                let address = match provider.address.filter(|a| !a.is_empty()) {
                    Some(a) => a,
                    None => self.default_server()?,
                };
                let mut server = MetricServer::new(address);
                if let Some(secret) = provider.secret_ref.and_then(|s| s.name) {
                    let data = self.secret_data(namespace, &secret).await?;
                    server.auth = Some(
                        prometheus::auth_from_data(&data, namespace, &secret)
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok((query, Backend::Prometheus(server)))
            }
        }
    }

    /// Sets how many intervals each MetricTemplate metric's provider looks
    /// back over ([`ResolvedMetric::lookback_intervals`]), for the wait
    /// before the first check. A template that cannot be read is left at
    /// one interval: its checks say why it cannot be used.
    pub(super) async fn learn_lookbacks(&mut self) {
        let mut found = Vec::new();
        for (i, m) in self.canary.metrics.iter().enumerate() {
            let MetricSource::Template {
                name, namespace, ..
            } = &m.source
            else {
                continue;
            };
            if let Ok(t) = self.template(name, namespace).await {
                let n = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.provider.as_ref())
                    .and_then(|p| p.r#type.as_deref())
                    .and_then(MetricProvider::parse)
                    .map(MetricProvider::lookback_intervals)
                    .unwrap_or(1);
                found.push((i, n));
            }
        }
        for (i, n) in found {
            self.canary.metrics[i].lookback_intervals = n;
        }
    }

    /// The data of Secret `namespace/name`, from the spec file when it
    /// holds it, else from the cluster.
    async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let in_file = self
            .secrets
            .iter()
            .find(|s| crate::alerts::is_secret(s, namespace, name));
        match in_file {
            Some(s) => Ok(crate::alerts::secret_strings(s)
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect()),
            None => prometheus::secret_data(&self.conn.client, namespace, name)
                .await
                .map_err(|e| e.to_string()),
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
}

/// Where a metric's query goes.
enum Backend {
    Prometheus(MetricServer),
    /// A MetricTemplate provider other than Prometheus, with its Secret's
    /// data.
    Other {
        kind: MetricProvider,
        provider: MetricTemplateProvider,
        credentials: Option<BTreeMap<String, Vec<u8>>>,
    },
}
