//! A validated Canary with Flagger's defaults applied: the model `plan` and
//! the engine work from, so no other code needs to know a default.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::{Canary, HttpMatchRequest, MetricTemplate};
use super::{Doc, SpecFile};
use crate::provider::Provider;

/// Flagger's defaults.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(60);
    pub const METRIC_INTERVAL: &str = "1m";
    pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
    pub const PROGRESS_DEADLINE_SECONDS: u64 = 600;
    pub const PORT_NAME: &str = "http";
    pub const READY_THRESHOLD: u32 = 100;
    /// Iterations Flagger falls back to when the `kubernetes` provider is
    /// given a progressive analysis it cannot route.
    pub const KUBERNETES_ITERATIONS: u32 = 10;
}

/// How traffic reaches the canary during the analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Strategy {
    /// Progressive traffic shifting (`stepWeight` / `stepWeights`), with an
    /// optional first mirrored step.
    Canary { mirror: bool },
    /// Requests matching `analysis.match` go to the canary (`iterations` +
    /// `match`).
    AbTesting,
    /// The canary is tested alone, then takes all traffic (`iterations`).
    BlueGreen { mirror: bool },
}

impl Strategy {
    pub fn label(&self) -> &'static str {
        match self {
            Strategy::Canary { mirror: false } => "canary",
            Strategy::Canary { mirror: true } => "canary with mirroring",
            Strategy::AbTesting => "A/B testing",
            Strategy::BlueGreen { mirror: false } => "blue/green",
            Strategy::BlueGreen { mirror: true } => "blue/green with mirroring",
        }
    }
}

/// Where the provider came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProviderSource {
    /// `spec.provider`.
    Spec,
    /// `--mesh-provider` or its environment variable.
    Flag,
    /// Neither: `canary run` detects it from the cluster.
    RunTime,
    /// Detected from the cluster by `canary run`.
    Detected,
}

/// Where a metric's query comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MetricSource {
    /// Flagger's built-in query for the provider.
    Builtin,
    /// A MetricTemplate, found in the same file or looked up in the cluster
    /// at run time.
    Template {
        name: String,
        namespace: String,
        in_file: bool,
    },
    /// `metrics[].query` written in the Canary itself.
    Inline { query: String },
}

/// One metric check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedMetric {
    pub name: String,
    /// As written (or the default), for the query's range selector.
    pub interval: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub source: MetricSource,
    pub template_variables: BTreeMap<String, String>,
    /// How many `interval`s the query looks back over: 1, or what the
    /// MetricTemplate's provider asks for
    /// ([`crate::provider::MetricProvider::lookback_intervals`]), set by
    /// the run once it has read the template.
    #[serde(skip)]
    pub lookback_intervals: u32,
}

/// A webhook's type, in Flagger's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    ConfirmRollout,
    PreRollout,
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }

    /// Flagger treats a webhook without `type` as a rollout hook.
    pub fn parse(s: Option<&str>) -> Option<HookType> {
        match s.unwrap_or("") {
            "" => Some(HookType::Rollout),
            other => HookType::ALL.into_iter().find(|h| h.as_str() == other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedWebhook {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: HookType,
    pub url: String,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub retries: u32,
    pub mute_alert: bool,
    pub disable_tls: bool,
    pub metadata: BTreeMap<String, String>,
}

/// One `analysis.alerts` entry: the alerts of at least `severity` go
/// through AlertProvider `provider_namespace/provider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedAlert {
    pub name: String,
    pub severity: crate::alerts::AlertSeverity,
    pub provider: String,
    /// The canary's namespace unless `providerRef.namespace` names one.
    pub provider_namespace: String,
}

/// The workload under analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// A Canary with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedCanary {
    pub name: String,
    pub namespace: String,
    pub target: TargetRef,
    pub autoscaler: Option<TargetRef>,
    /// `spec.autoscalerRef` as written: the primary's scaler queries and
    /// replica bounds.
    #[serde(skip)]
    pub autoscaler_spec: Option<super::types::AutoscalerReference>,
    pub ingress: Option<String>,
    pub route: Option<String>,
    /// `spec.upstreamRef`: the Gloo Upstream whose settings the generated
    /// upstreams copy.
    #[serde(skip)]
    pub upstream_ref: Option<super::types::CrossNamespaceObjectReference>,
    /// The Canary's own annotations (Kuma's router reads `kuma.io/mesh`).
    #[serde(skip)]
    pub annotations: BTreeMap<String, String>,
    /// Name of the apex Service (`spec.service.name`, else the target's).
    pub service: String,
    pub port: u32,
    pub port_name: String,
    /// The container port the Services forward to (default: `port`).
    pub target_port: Option<super::types::IntOrString>,
    pub app_protocol: Option<String>,
    /// `spec.service` as written: the route settings a router copies onto
    /// its objects (hosts, gateways, matches, retries, timeouts, headers,
    /// CORS and traffic policies ...).
    #[serde(skip)]
    pub service_spec: super::types::CanaryService,
    /// `None` when neither the spec nor `--mesh-provider` names one.
    pub provider: Option<Provider>,
    pub provider_source: ProviderSource,
    pub metrics_server: Option<String>,
    pub strategy: Strategy,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub threshold: u32,
    pub step_weight: u32,
    pub step_weights: Vec<u32>,
    pub max_weight: u32,
    pub step_weight_promotion: u32,
    pub iterations: u32,
    /// A/B testing: requests matching any of these go to the canary
    /// (`analysis.match`; empty for every other strategy).
    pub matches: Vec<HttpMatchRequest>,
    /// The percentage of requests copied to the canary while mirroring
    /// (`analysis.mirrorWeight`); `None` copies every request.
    pub mirror_weight: Option<u32>,
    /// `analysis.sessionAffinity`: the cookies that keep a client sent to
    /// the canary on the canary (Istio and the Gateway API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<super::types::SessionAffinity>,
    pub primary_ready_threshold: u32,
    pub canary_ready_threshold: u32,
    pub progress_deadline_seconds: u64,
    pub skip_analysis: bool,
    /// `spec.suspend`: leave the canary alone, as Flagger does.
    pub suspended: bool,
    pub metrics: Vec<ResolvedMetric>,
    pub webhooks: Vec<ResolvedWebhook>,
    /// `analysis.alerts`: where the canary's alerts go.
    pub alerts: Vec<ResolvedAlert>,
    /// Things Flagger would silently change, said out loud.
    pub notes: Vec<String>,
    /// The warnings Flagger records for this spec at each analysis, in its
    /// words (also among `notes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ResolvedCanary {
    /// Whether a traffic router takes part (the `kubernetes` provider only
    /// swaps Service selectors).
    pub fn routes_traffic(&self) -> bool {
        self.provider.is_none_or(Provider::routes_traffic)
    }

    /// What a metric's query template may refer to, as Flagger fills it:
    /// the ingress and route fall back to the target's name.
    pub fn template_model(&self, m: &ResolvedMetric) -> crate::queries::template::TemplateModel {
        crate::queries::template::TemplateModel {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            target: self.target.name.clone(),
            service: self.service.clone(),
            ingress: self
                .ingress
                .clone()
                .unwrap_or_else(|| self.target.name.clone()),
            route: self
                .route
                .clone()
                .unwrap_or_else(|| self.target.name.clone()),
            interval: m.interval.clone(),
            variables: m.template_variables.clone(),
        }
    }

    /// The Prometheus the built-in and inline queries go to: the one the
    /// spec or the command line names, else where the provider's mesh
    /// installs it.
    pub fn metrics_server_or_default(&self) -> Option<String> {
        self.metrics_server.clone().or_else(|| {
            self.provider
                .and_then(Provider::default_metrics_server)
                .map(str::to_string)
        })
    }

    pub fn hooks(&self, kind: HookType) -> impl Iterator<Item = &ResolvedWebhook> {
        self.webhooks.iter().filter(move |h| h.kind == kind)
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Parses a duration as Go's `time.ParseDuration` does (Flagger parses
/// every duration of a spec with it): a sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`), such as `30s`, `1m30s` or `1.5h`. Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || "expected a number and a unit, such as 30s, 1m or 1m30s".to_string();
    if s.is_empty() {
        return Err(expected());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(expected());
        }
        let value: f64 = num.parse().map_err(|_| expected())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit after `{num}`; {}", expected())),
            other => return Err(format!("unknown unit `{other}`; {}", expected())),
        };
        nanos += value * scale;
        rest = next;
    }
    if nanos > u64::MAX as f64 {
        return Err("is too long".to_string());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Whether a duration has the shape Flagger's CRD schema demands of
/// `analysis.interval`, `metrics[].interval` and `webhooks[].timeout`
/// (pattern `^[0-9]+(m|s)`): it starts with digits followed by `m` or `s`.
pub fn matches_flagger_pattern(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && matches!(s[digits..].chars().next(), Some('m') | Some('s'))
}

/// Settings from the command line that fill in what a spec leaves open.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub mesh_provider: Option<Provider>,
    pub metrics_server: Option<String>,
    /// Namespace of a canary whose metadata names none (kubectl's `-n`,
    /// else the kubeconfig context's); `default` when `None`.
    pub namespace: Option<String>,
}

/// Applies Flagger's defaults to a Canary that passed validation.
pub fn resolve(file: &SpecFile, doc: &Doc<Canary>, overrides: &Overrides) -> ResolvedCanary {
    let c = &doc.value;
    let spec = c.spec.clone().unwrap_or_default();
    let analysis = spec.analysis().cloned().unwrap_or_default();
    let service = spec.service.clone().unwrap_or_default();
    let target_ref = spec.target_ref.clone().unwrap_or_default();
    let mut notes = Vec::new();
    let mut warnings = Vec::new();

    // Validation has refused a name Flagger does not know.
    let spec_provider = spec
        .provider
        .as_deref()
        .and_then(|p| Provider::parse(p).ok());
    let (provider, provider_source) = match (spec_provider, overrides.mesh_provider) {
        (Some(p), _) => (Some(p), ProviderSource::Spec),
        (_, Some(p)) => (Some(p), ProviderSource::Flag),
        _ => (None, ProviderSource::RunTime),
    };
    let kubernetes = provider == Some(Provider::Kubernetes);

    let nonneg = |v: Option<i64>| v.unwrap_or(0).max(0) as u32;
    let step_weight = nonneg(analysis.step_weight);
    let step_weights: Vec<u32> = analysis
        .step_weights
        .iter()
        .map(|w| (*w).max(0) as u32)
        .collect();
    let max_weight = match step_weights.last() {
        Some(last) => (*last).min(100),
        None => match nonneg(analysis.max_weight) {
            0 => 100,
            m => m,
        },
    };
    let mut iterations = nonneg(analysis.iterations);
    let has_match = !analysis.r#match.is_empty();
    let mirror = analysis.mirror.unwrap_or(false);
    let strategy = if kubernetes {
        // `analysis.match` cannot be honoured without a router: Flagger
        // ignores it, `crate::support` refuses it.
        if iterations == 0 {
            // Flagger's two warnings (`scheduler.go`), then the analysis
            // runs as blue/green.
            warnings.push(
                "Progressive traffic is not supported when using the kubernetes provider"
                    .to_string(),
            );
            warnings.push(format!(
                "Setting canaryAnalysis.iterations: {}",
                defaults::KUBERNETES_ITERATIONS
            ));
            notes.extend(warnings.iter().cloned());
            iterations = defaults::KUBERNETES_ITERATIONS;
        }
        Strategy::BlueGreen { mirror: false }
    } else if iterations > 0 && has_match {
        Strategy::AbTesting
    } else if iterations > 0 {
        Strategy::BlueGreen { mirror }
    } else {
        Strategy::Canary { mirror }
    };

    if strategy == Strategy::AbTesting && analysis.session_affinity.is_some() {
        notes.push(
            "`sessionAffinity` is not used with `match`: A/B testing routes by its matches \
             alone (as Flagger does)"
                .to_string(),
        );
    }

    // Flagger's built-in Contour queries select the Envoy clusters of
    // `<target>-canary`, while its router sends the canary's traffic to
    // `<service.name>-canary`: with another apex name they find nothing.
    if provider == Some(Provider::Contour)
        && let Some(name) = service.name.as_deref()
        && let Some(target) = target_ref.name.as_deref()
        && name != target
        && analysis.metrics.iter().any(|m| {
            m.template_ref.is_none()
                && m.name
                    .as_deref()
                    .is_some_and(|n| ["request-success-rate", "request-duration"].contains(&n))
        })
    {
        notes.push(format!(
            "Contour's built-in metrics read the Envoy clusters of `{}-canary` (targetRef.name), \
             but the canary's traffic goes to `{name}-canary` (service.name): they find no \
             values; drop service.name or use a MetricTemplate",
            target
        ));
    }

    // Only an A/B analysis routes by request; Flagger drops the match
    // everywhere else (the kubernetes provider included).
    let matches = match strategy {
        Strategy::AbTesting => analysis.r#match.clone(),
        _ => Vec::new(),
    };
    let mirrors = matches!(
        strategy,
        Strategy::Canary { mirror: true } | Strategy::BlueGreen { mirror: true }
    );
    let mirror_weight = match analysis.mirror_weight {
        Some(w) if w > 0 && mirrors => Some((w as u32).min(100)),
        _ => None,
    };

    let threshold = match analysis.threshold.unwrap_or(0) {
        t if t <= 0 => 1,
        t => t as u32,
    };
    let interval = analysis
        .interval
        .as_deref()
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(defaults::INTERVAL);

    let templates_in_file: Vec<&Doc<MetricTemplate>> = file.metric_templates.iter().collect();
    let namespace = c
        .explicit_namespace()
        .or(overrides.namespace.as_deref())
        .unwrap_or("default")
        .to_string();
    let metrics = analysis
        .metrics
        .iter()
        .map(|m| {
            let (min, max) = match &m.threshold_range {
                Some(r) => (r.min, r.max),
                // The legacy `threshold`: a minimum for the success rate,
                // a maximum for everything else, as Flagger reads it.
                None => match m.threshold {
                    Some(t) if m.name.as_deref() == Some("request-success-rate") => (Some(t), None),
                    Some(t) => (None, Some(t)),
                    None => (None, None),
                },
            };
            let source = if let Some(q) = m.query.as_ref().filter(|q| !q.trim().is_empty()) {
                MetricSource::Inline { query: q.clone() }
            } else if let Some(t) = &m.template_ref {
                let name = t.name.clone().unwrap_or_default();
                let ns = t
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| namespace.clone());
                let in_file = templates_in_file
                    .iter()
                    .any(|d| d.value.name() == name && d.value.namespace() == ns);
                MetricSource::Template {
                    name,
                    namespace: ns,
                    in_file,
                }
            } else {
                MetricSource::Builtin
            };
            ResolvedMetric {
                name: m.name.clone().unwrap_or_default(),
                interval: m
                    .interval
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| defaults::METRIC_INTERVAL.to_string()),
                min,
                max,
                source,
                template_variables: m.template_variables.clone(),
                lookback_intervals: 1,
            }
        })
        .collect();

    let webhooks = analysis
        .webhooks
        .iter()
        .map(|w| ResolvedWebhook {
            name: w.name.clone().unwrap_or_default(),
            kind: HookType::parse(w.r#type.as_deref()).unwrap_or(HookType::Rollout),
            url: w.url.clone().unwrap_or_default(),
            timeout: w
                .timeout
                .as_deref()
                .and_then(|s| parse_duration(s).ok())
                .unwrap_or(defaults::WEBHOOK_TIMEOUT),
            retries: w.retries.map(|r| r.max(0) as u32).unwrap_or(0),
            mute_alert: w.mute_alert.unwrap_or(false),
            disable_tls: w.disable_tls.unwrap_or(false),
            metadata: w.metadata.clone(),
        })
        .collect();

    let alerts = analysis
        .alerts
        .iter()
        .map(|a| {
            let r = a.provider_ref.clone().unwrap_or_default();
            ResolvedAlert {
                name: a.name.clone().unwrap_or_default(),
                severity: crate::alerts::AlertSeverity::parse(a.severity.as_deref())
                    .unwrap_or_default(),
                provider: r.name.unwrap_or_default(),
                provider_namespace: r
                    .namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| namespace.clone()),
            }
        })
        .collect();

    let percent = |v: Option<f64>| match v {
        Some(p) if p > 0.0 => p.min(100.0) as u32,
        _ => defaults::READY_THRESHOLD,
    };
    ResolvedCanary {
        annotations: c
            .metadata
            .as_ref()
            .map(|m| m.annotations.clone())
            .unwrap_or_default(),
        name: c.name().to_string(),
        namespace,
        target: TargetRef {
            api_version: target_ref.api_version.clone().unwrap_or_default(),
            kind: target_ref.kind.clone().unwrap_or_default(),
            name: target_ref.name.clone().unwrap_or_default(),
        },
        autoscaler: spec.autoscaler_ref.as_ref().map(|a| TargetRef {
            api_version: a.api_version.clone().unwrap_or_default(),
            kind: a.kind.clone().unwrap_or_default(),
            name: a.name.clone().unwrap_or_default(),
        }),
        autoscaler_spec: spec.autoscaler_ref.clone(),
        ingress: spec.ingress_ref.as_ref().and_then(|r| r.name.clone()),
        route: spec.route_ref.as_ref().and_then(|r| r.name.clone()),
        upstream_ref: spec.upstream_ref.clone(),
        service: service
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| target_ref.name.clone())
            .unwrap_or_default(),
        port: service.port.map(|p| p.max(0) as u32).unwrap_or(0),
        port_name: service
            .port_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| defaults::PORT_NAME.to_string()),
        target_port: service.target_port.clone(),
        app_protocol: service.app_protocol.clone(),
        service_spec: service.clone(),
        provider,
        provider_source,
        metrics_server: overrides
            .metrics_server
            .clone()
            .or_else(|| spec.metrics_server.clone())
            .filter(|s| !s.is_empty()),
        strategy,
        interval,
        threshold,
        step_weight,
        step_weights,
        max_weight,
        step_weight_promotion: nonneg(analysis.step_weight_promotion),
        iterations,
        matches,
        mirror_weight,
        session_affinity: analysis.session_affinity.clone(),
        primary_ready_threshold: percent(analysis.primary_ready_threshold.map(|v| v as f64)),
        canary_ready_threshold: percent(analysis.canary_ready_threshold.map(|v| v as f64)),
        progress_deadline_seconds: spec
            .progress_deadline_seconds
            .filter(|s| *s > 0)
            .map(|s| s as u64)
            .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS),
        skip_analysis: spec.skip_analysis.unwrap_or(false),
        suspended: spec.suspend.unwrap_or(false),
        metrics,
        webhooks,
        alerts,
        notes,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_affinity_beside_an_ab_match_is_noted_as_unused() {
        let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: prod}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    iterations: 5
    sessionAffinity: {cookieName: flagger-cookie}
    match:
      - headers: {x-canary: {exact: insider}}
";
        let file = crate::spec::load_str("c.yaml", yaml).unwrap();
        let c = resolve(&file, &file.canaries[0], &Overrides::default());
        assert_eq!(c.strategy, Strategy::AbTesting);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("`sessionAffinity` is not used")),
            "{:?}",
            c.notes
        );
        let weighted = yaml
            .replace("    iterations: 5\n", "    stepWeight: 10\n")
            .replace(
                "    match:\n      - headers: {x-canary: {exact: insider}}\n",
                "",
            );
        let file = crate::spec::load_str("c.yaml", &weighted).unwrap();
        let c = resolve(&file, &file.canaries[0], &Overrides::default());
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        assert!(c.session_affinity.is_some());
    }

    #[test]
    fn contour_builtin_metrics_under_another_service_name_are_noted() {
        let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: prod}
spec:
  provider: contour
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {name: frontend, port: 9898}
  analysis:
    interval: 1m
    stepWeight: 10
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}}
";
        let file = crate::spec::load_str("c.yaml", yaml).unwrap();
        let c = resolve(&file, &file.canaries[0], &Overrides::default());
        assert!(
            c.notes.iter().any(|n| n.contains("`frontend-canary`")),
            "{:?}",
            c.notes
        );
        let same = yaml.replace("name: frontend, ", "");
        let file = crate::spec::load_str("c.yaml", &same).unwrap();
        let c = resolve(&file, &file.canaries[0], &Overrides::default());
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn durations_parse_as_go_does() {
        let ok = [
            ("30s", 30_000),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("300ms", 300),
            ("0", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(parse_duration(text).unwrap().as_millis(), ms, "{text}");
        }
        for bad in [
            "",
            "10",
            "10 seconds",
            "1d",
            "fast",
            "-5s",
            "1m 30s",
            "1..5s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn flagger_schema_pattern() {
        for good in ["10s", "1m", "1m30s", "300ms"] {
            assert!(matches_flagger_pattern(good), "{good}");
        }
        for bad in ["1h", "1.5m", "s", "10 s"] {
            assert!(!matches_flagger_pattern(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod knative_tests {
    const KNATIVE: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: prod}
spec:
  provider: knative
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  analysis: {interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50}
";

    fn paths(yaml: &str) -> Vec<String> {
        let diagnostics = match crate::spec::load_str("c.yaml", yaml) {
            Ok(file) => crate::spec::validate::file(&file),
            Err(refused) => refused,
        };
        diagnostics
            .into_iter()
            .map(|d| d.path.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_knative_canary_needs_no_service() {
        assert!(paths(KNATIVE).is_empty(), "{:?}", paths(KNATIVE));
        // Named by the target's API version alone, as with the provider
        // given on the command line.
        let by_target = KNATIVE.replace("  provider: knative\n", "");
        assert!(paths(&by_target).is_empty(), "{:?}", paths(&by_target));
        // Every other Canary still needs it, at the same place.
        let deployment = KNATIVE
            .replace("provider: knative", "provider: istio")
            .replace(
                "{apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}",
                "{apiVersion: apps/v1, kind: Deployment, name: podinfo}",
            );
        assert_eq!(paths(&deployment), ["spec.service"]);
    }
}
