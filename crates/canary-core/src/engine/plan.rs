//! `canary plan`: what a rollout of one Canary will do, as data.
//!
//! Pure: a resolved spec and the MetricTemplates at hand in, a [`Plan`] out.
//! The steps, their routings and gates, the promotion gate and the
//! promotion's routings are read from the rollout's [`Schedule`], the same
//! value the engine walks, so the plan cannot drift from what `run` does;
//! this module only adds what a reader needs around it (timing, hooks and
//! checks by name, queries, objects).

use std::time::Duration;

use serde::Serialize;

use super::schedule::{Routing, Schedule, TOTAL_WEIGHT};
use crate::names;
use crate::provider::Provider;
use crate::queries::{builtin, template};
use crate::redact::redact_url;
use crate::spec::resolve::{
    HookType, MetricSource, ProviderSource, ResolvedCanary, ResolvedMetric,
};
use crate::spec::types::MetricTemplate;

/// The whole plan for one Canary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub canary: String,
    pub namespace: String,
    pub strategy: String,
    pub target: String,
    pub service: String,
    pub provider: Option<Provider>,
    pub provider_source: ProviderSource,
    pub metrics_server: Option<String>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub threshold: u32,
    /// Before the first step: readiness, gates, pre-rollout hooks.
    pub start: Vec<String>,
    pub steps: Vec<PlanStep>,
    /// The checks run at the end of every step.
    pub checks: Vec<PlanCheck>,
    /// From the last successful check to Succeeded.
    pub promotion: Vec<String>,
    /// The gate webhooks asked after the last step's checks, before the
    /// spec is copied to the primary.
    pub promotion_gates: Vec<PlanHook>,
    /// The routings set, in order, once the primary runs the new revision.
    pub promotion_routing: Vec<Routing>,
    /// What happens when `threshold` checks have failed.
    pub rollback: Vec<String>,
    /// Where alerts go and which (`analysis.alerts`); empty when the
    /// canary names none (a run's global notifier may still get them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<PlanAlert>,
    pub objects: Vec<PlanObject>,
    /// Shortest time from a ready canary to promotion, when every check
    /// passes and no gate waits.
    #[serde(serialize_with = "ser_duration")]
    pub min_duration: Duration,
    /// Shortest time to a rollback when every check fails.
    #[serde(serialize_with = "ser_duration")]
    pub min_rollback: Duration,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub number: usize,
    /// When the step's routing is applied, from the start of the analysis.
    #[serde(serialize_with = "ser_duration")]
    pub at: Duration,
    pub routing: Routing,
    /// The shares of all live traffic by weight (matched requests and
    /// mirrored copies are not counted: see `routing`).
    pub primary_weight: u32,
    pub canary_weight: u32,
    /// The gate webhooks that must all answer yes before the routing is
    /// applied; empty when the step is not gated.
    pub gates: Vec<PlanHook>,
    /// The webhooks called one interval later, before the checks.
    pub hooks: Vec<PlanHook>,
    /// The metrics checked one interval later, by name (see
    /// [`Plan::checks`]).
    pub checks: Vec<String>,
}

/// One `analysis.alerts` entry: its AlertProvider and the alerts of
/// its severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanAlert {
    pub name: String,
    /// `NAMESPACE/NAME` of the AlertProvider.
    pub provider: String,
    pub severity: crate::alerts::AlertSeverity,
    /// The alerts it is sent, as Flagger words them.
    pub sends: Vec<String>,
}

/// A webhook, by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanHook {
    #[serde(rename = "type")]
    pub kind: HookType,
    pub name: String,
}

impl std::fmt::Display for PlanHook {
    /// `confirm-promotion approve`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCheck {
    pub name: String,
    pub interval: String,
    /// `>= 99`, `<= 500`, `between 1 and 5`.
    pub condition: String,
    /// `built-in linkerd`, `template prod/error-rate`, `inline`.
    pub source: String,
    /// The rendered query, when it can be known offline.
    pub query: Option<String>,
    /// Why the query is not shown, or other remarks.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanObject {
    pub kind: String,
    pub name: String,
    pub action: String,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn hook_label(kind: HookType, name: &str) -> String {
    format!("{} {name}", kind.as_str())
}

/// Builds the plan.
pub fn plan(c: &ResolvedCanary, templates: &[&MetricTemplate]) -> Plan {
    let target = format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name);
    let mut notes = c.notes.clone();
    if c.provider.is_none() {
        notes.push(
            "no provider in the spec and no --mesh-provider: `canary run` detects the mesh from \
             the cluster; built-in queries and router objects depend on it"
                .to_string(),
        );
    }

    // A Knative Service is its own primary: its revisions run side by
    // side, Knative scales them, and promotion names the latest one.
    let knative = c.provider == Some(crate::provider::Provider::Knative);
    let mut start = Vec::new();
    for g in c.hooks(HookType::ConfirmRollout) {
        start.push(format!(
            "wait for gate {} ({}) to open",
            hook_label(HookType::ConfirmRollout, &g.name),
            redact_url(&g.url)
        ));
    }
    start.push(if knative {
        format!("wait until the latest revision of {target} is ready")
    } else {
        format!(
            "scale {target} up and wait until {}% of its pods are ready (deadline {}s)",
            c.canary_ready_threshold, c.progress_deadline_seconds
        )
    });
    for h in c.hooks(HookType::PreRollout) {
        start.push(format!(
            "call {} ({}, timeout {}); a failure counts as a failed check",
            hook_label(HookType::PreRollout, &h.name),
            redact_url(&h.url),
            humantime::format_duration(h.timeout)
        ));
    }

    let schedule = Schedule::of(c);
    let plan_hooks = |kind: Option<HookType>| -> Vec<PlanHook> {
        kind.map(|kind| {
            c.hooks(kind)
                .map(|h| PlanHook {
                    kind,
                    name: h.name.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let check_names: Vec<String> = c.metrics.iter().map(|m| m.name.clone()).collect();
    let steps: Vec<PlanStep> = schedule
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| PlanStep {
            number: s.number,
            at: c.interval * i as u32,
            routing: s.routing.clone(),
            primary_weight: s.routing.primary_weight(),
            canary_weight: s.routing.canary_weight(),
            gates: plan_hooks(s.gate),
            hooks: plan_hooks(Some(HookType::Rollout)),
            checks: check_names.clone(),
        })
        .collect();
    let checks = if c.skip_analysis {
        notes
            .push("skipAnalysis is set: the canary is promoted as soon as it is ready".to_string());
        Vec::new()
    } else {
        c.metrics.iter().map(|m| check(c, m, templates)).collect()
    };

    let promotion_gates = plan_hooks(schedule.promotion_gate);
    let mut promotion = Vec::new();
    if let Some(gate) = schedule.promotion_gate {
        for g in c.hooks(gate) {
            promotion.push(format!(
                "wait for gate {} ({}) to open",
                hook_label(gate, &g.name),
                redact_url(&g.url)
            ));
        }
    }
    if knative {
        promotion.push(format!(
            "name the latest revision of {target} the primary revision \
             (annotation flagger.app/primary-revision)"
        ));
        promotion.push("wait until the primary revision is ready".to_string());
    } else {
        promotion.push(format!(
            "copy the pod template of {target} (and the ConfigMaps/Secrets it uses) to {}-primary",
            target
        ));
        promotion.push(format!(
            "wait until {}% of the primary's pods are ready",
            c.primary_ready_threshold
        ));
    }
    let gradual = &schedule.promotion_weights;
    if !c.routes_traffic() {
        promotion.push("point the apex service back at the primary".to_string());
    } else if gradual.len() > 1 {
        let ws: Vec<String> = gradual.iter().map(|w| w.to_string()).collect();
        promotion.push(format!(
            "raise the primary's weight step by step, one interval apart: {}",
            ws.join(" → ")
        ));
    } else {
        promotion.push(format!(
            "route all traffic to the primary ({TOTAL_WEIGHT}/0)"
        ));
    }
    if !knative {
        promotion.push(format!("scale {target} to 0"));
    }
    for h in c.hooks(HookType::PostRollout) {
        promotion.push(format!(
            "call {}",
            hook_label(HookType::PostRollout, &h.name)
        ));
    }
    promotion.push("phase Succeeded".to_string());

    let mut rollback = vec![format!(
        "after {} failed check{} (a failed metric, a query error or no data each count one), \
         route all traffic to the primary{}",
        c.threshold,
        if c.threshold == 1 { "" } else { "s" },
        if knative {
            " revision, which kept running".to_string()
        } else {
            format!(" and scale {target} to 0")
        }
    )];
    for h in c.hooks(HookType::Rollback) {
        rollback.push(format!(
            "{} is asked during the analysis; when it answers 200 the canary is rolled back",
            hook_label(HookType::Rollback, &h.name)
        ));
    }
    for h in c.hooks(HookType::PostRollout) {
        rollback.push(format!(
            "call {} after the rollback",
            hook_label(HookType::PostRollout, &h.name)
        ));
    }

    let extra_promotion_steps = gradual.len().saturating_sub(1) as u32;
    let min_duration = c.interval * (steps.len() as u32 + extra_promotion_steps);
    let min_rollback = if c.skip_analysis {
        Duration::ZERO
    } else {
        c.interval * c.threshold
    };

    Plan {
        canary: c.name.clone(),
        namespace: c.namespace.clone(),
        strategy: c.strategy.label().to_string(),
        target,
        service: if knative {
            "none: Knative routes to the revisions".to_string()
        } else {
            format!("{}:{}", c.service, c.port)
        },
        provider: c.provider,
        provider_source: c.provider_source,
        metrics_server: c.metrics_server_or_default().map(|u| redact_url(&u)),
        interval: c.interval,
        threshold: c.threshold,
        start,
        steps,
        checks,
        promotion,
        promotion_gates,
        promotion_routing: schedule.promotion_routings(),
        rollback,
        objects: objects(c),
        min_duration,
        min_rollback,
        alerts: c
            .alerts
            .iter()
            .map(|a| PlanAlert {
                name: a.name.clone(),
                provider: format!("{}/{}", a.provider_namespace, a.provider),
                severity: a.severity,
                sends: crate::alerts::ALERTS
                    .iter()
                    .filter(|(_, s)| a.severity.receives(*s))
                    .map(|(text, _)| text.to_string())
                    .collect(),
            })
            .collect(),
        notes,
    }
}

fn condition(m: &ResolvedMetric) -> String {
    match (m.min, m.max) {
        (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => "any value".to_string(),
    }
}

fn check(c: &ResolvedCanary, m: &ResolvedMetric, templates: &[&MetricTemplate]) -> PlanCheck {
    let mut model = c.template_model(m);
    if c.provider == Some(crate::provider::Provider::Knative) {
        model.route = KNATIVE_ROUTE.to_string();
    }
    let render = |t: &str| match template::render(t, &model) {
        Ok(q) => (Some(template::compact(&q)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (source, (query, note)) = match &m.source {
        MetricSource::Inline { query } => ("inline query".to_string(), render(query)),
        MetricSource::Template {
            name, namespace, ..
        } => {
            let found = templates
                .iter()
                .find(|t| t.name() == name.as_str() && t.namespace() == namespace.as_str());
            let label = format!("MetricTemplate {namespace}/{name}");
            match found
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.query.clone())
            {
                Some(q) => (label, render(&q)),
                None => (
                    label,
                    (
                        None,
                        Some("not in this file; read from the cluster at run time".to_string()),
                    ),
                ),
            }
        }
        MetricSource::Builtin => match c.provider {
            None => (
                "built-in".to_string(),
                (
                    None,
                    Some("query depends on the provider chosen at run time".to_string()),
                ),
            ),
            Some(p) => match builtin::builtin_query(p, &m.name) {
                Some(b) => (
                    format!("built-in {}", b.provider),
                    match b.render(&model) {
                        Ok(q) => (Some(template::compact(&q)), None),
                        Err(e) => (None, Some(e.to_string())),
                    },
                ),
                None => (
                    format!("built-in {p}"),
                    (
                        None,
                        Some(format!("provider {p} has no built-in `{}`", m.name)),
                    ),
                ),
            },
        },
    };
    PlanCheck {
        name: m.name.clone(),
        interval: m.interval.clone(),
        condition: condition(m),
        source,
        query,
        note,
    }
}

/// What a run does to the Knative Service of a Knative Canary.
pub const KNATIVE_ACTION: &str = "update: annotation flagger.app/primary-revision names the \
     primary revision; spec.traffic splits between it and the latest revision; revisions kept";

/// The placeholder for `{{ route }}` of a Knative Canary in a plan: the
/// run reads the latest created revision of the Knative Service.
pub const KNATIVE_ROUTE: &str = "<latest revision>";

/// The objects a run creates or changes, named as Flagger names them.
fn objects(c: &ResolvedCanary) -> Vec<PlanObject> {
    let o = |kind: &str, name: String, action: &str| PlanObject {
        kind: kind.to_string(),
        name,
        action: action.to_string(),
    };
    let kind = c.target.kind.clone();
    let t = &c.target.name;
    let svc = &c.service;
    if c.provider == Some(crate::provider::Provider::Knative) {
        // The Knative Service splits the traffic between its own revisions:
        // nothing is created, no primary, no Services, no config copies.
        return names::router_objects(crate::provider::Provider::Knative, c)
            .into_iter()
            .map(|r| {
                o(
                    &format!("{} ({})", r.kind, r.api_version),
                    r.name,
                    KNATIVE_ACTION,
                )
            })
            .collect();
    }
    let mut out = vec![
        o(
            &kind,
            names::primary(t),
            "create: copy of the target, selector and labels suffixed -primary; holds canary's state",
        ),
        o(
            &kind,
            t.clone(),
            "scale: 0 when idle, up during an analysis; spec otherwise untouched",
        ),
        o(
            "Service",
            svc.clone(),
            "create or update: apex service, selects the primary pods",
        ),
        o("Service", names::primary(svc), "create"),
        o("Service", names::canary(svc), "create"),
    ];
    if let Some(a) = &c.autoscaler {
        out.push(o(
            &a.kind,
            names::primary(&a.name),
            "create: copy targeting the primary",
        ));
    }
    out.push(o(
        "ConfigMap/Secret",
        "<name>-primary".to_string(),
        "create: a copy of each one the target references (found at run time)",
    ));
    match c.provider {
        None => out.push(o(
            "router",
            svc.clone(),
            "depends on the provider chosen at run time",
        )),
        Some(p) => out.extend(names::router_objects(p, c).into_iter().map(|r| {
            o(
                &format!("{} ({})", r.kind, r.api_version),
                r.name,
                "create: traffic routing",
            )
        })),
    }
    out
}

#[cfg(test)]
mod knative_tests {
    use super::*;
    use crate::spec::resolve::{Overrides, resolve};

    #[test]
    fn a_knative_plan_changes_the_knative_service_only() {
        let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: prod}
spec:
  provider: knative
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
    maxWeight: 50
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
";
        let file = crate::spec::load_str("c.yaml", yaml).unwrap();
        let c = resolve(&file, &file.canaries[0], &Overrides::default());
        let p = plan(&c, &[]);
        let objects: Vec<_> = p
            .objects
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str(), o.action.as_str()))
            .collect();
        assert_eq!(
            objects,
            [(
                "Service (serving.knative.dev/v1)",
                "podinfo",
                KNATIVE_ACTION
            )]
        );
        let q = p.checks[0].query.as_deref().unwrap();
        assert!(
            q.contains(r#"envoy_cluster_name=~"prod/<latest revision>""#),
            "{q}"
        );
        // Nothing is copied nor scaled: the revisions run side by side.
        let said = [&p.start[..], &p.promotion[..], &p.rollback[..]].concat();
        assert!(
            said.iter()
                .all(|l| !l.contains("scale") && !l.contains("-primary")),
            "{said:?}"
        );
        assert!(
            p.promotion
                .iter()
                .any(|l| l.contains("flagger.app/primary-revision")),
            "{:?}",
            p.promotion
        );
    }
}
