//! Turning what a driver did into [`Event`]s for its [`Reporter`], the
//! driver's only output. Four verbs, each for one thing:
//! `report_started` once, `report_round` after every round that was
//! written, and `report_progress` and `report_warning` for what happens
//! between rounds, shown with the state of the last round.

use std::time::Duration;

use super::Driver;
use super::observe::Snapshot;
use crate::clock::now;
use crate::metrics::prometheus::{self, MetricServer};
use canary_core::engine::decide::{self, Answers, Decision, HookOutcome, RequestKind};
use canary_core::engine::message::Message;
use canary_core::engine::state::State;
use canary_core::event::{self, Event, Kind};
use canary_core::queries::traffic;
use canary_core::spec::resolve::HookType;

impl Driver<'_> {
    /// The run is under way: what it drives and how, then the note on how
    /// its provider was chosen, if any.
    pub(super) fn report_started(&mut self, state: &State) {
        let mut e = self.event(Kind::Started, state);
        e.run = Some(run_info(&self.canary));
        self.send(e);
        if let Some(n) = self.note.take() {
            self.send(self.event(Kind::Progress, state).with_message(n));
        }
        // What Flagger warns of for this spec (the kubernetes provider
        // running a canary analysis as blue/green).
        for w in &self.canary.warnings {
            self.send(self.event(Kind::Warning, state).with_message(w.clone()));
        }
    }

    /// What a round did, from the state it wrote: the request it acted
    /// on, its checks, its messages, what it now waits for, and the
    /// traffic the checks saw.
    pub(super) async fn report_round(
        &self,
        snap: &Snapshot,
        d: &Decision,
        answers: &Answers,
        state: &State,
    ) {
        if let Some(r) = &snap.observed.request
            && !matches!(r.kind, RequestKind::RollBack(_))
        {
            let mut e = self.event(Kind::Request, state);
            e.request = Some(event::RequestInfo {
                action: r.kind.as_str().to_string(),
                by: r.by.clone(),
                requested_at: r.at,
                reacted_after_ms: now().since(r.at).as_millis() as u64,
            });
            self.send(e);
        }
        if let Some(pre) = &answers.pre_rollout {
            let mut e = self.event(Kind::Check, state);
            e.hooks = self.hook_records(HookType::PreRollout, pre);
            self.send(e);
        }
        // Metrics without values while the canary's traffic cannot have
        // filled their window yet are no evidence either way: the decision
        // does not count that check, and it is not shown as one (checked
        // and failed); the decision's message says what it waits for.
        let awaiting_data = d
            .events
            .iter()
            .any(|m| matches!(m, Message::AwaitingData { .. }));
        if let Some(a) = &answers.analysis
            && !awaiting_data
        {
            let mut e = self.event(Kind::Check, state);
            // The checks were made at the weight before this round moved it.
            e.canary_weight = snap.state.canary_weight;
            e.hooks = self.hook_records(HookType::Rollout, &a.hooks);
            if let Some(judged) = state
                .history
                .iter()
                .rev()
                .take_while(|h| h.time == snap.observed.now)
                .find(|h| !h.metrics.is_empty())
            {
                e.metrics = judged.metrics.clone();
            }
            self.send(e);
        }
        for m in &d.events {
            self.send(
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
            self.send(e);
        }
        if answers.analysis.is_some()
            && self.reporter.wants(Kind::Traffic)
            && let Some(e) = self.traffic(state).await
        {
            self.send(e);
        }
    }

    /// A step of the run between rounds (an image set, a wait begun).
    pub(super) fn report_progress(&self, msg: &str) {
        self.between_rounds(Kind::Progress, msg);
    }

    /// Something that went wrong without stopping the run (a webhook that
    /// could not be notified, a flag that was not applied).
    pub(super) fn report_warning(&self, msg: &str) {
        self.between_rounds(Kind::Warning, msg);
    }

    /// The state last reported, and what the rollout waited for then.
    pub(crate) fn last_shown(&self) -> (State, Option<String>) {
        self.shown
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| (State::new(now()), None))
    }

    /// A message of `kind` between rounds, with the state last reported.
    fn between_rounds(&self, kind: Kind, msg: &str) {
        let (state, waiting) = self.last_shown();
        let mut e = self.event(kind, &state).with_message(msg);
        e.waiting_for = waiting;
        self.send(e);
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

    /// The one place events leave the driver.
    fn send(&self, e: Event) {
        self.reporter.emit(&e);
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
                    HookOutcome::Unreachable { hook, reason } if *hook == h.name => {
                        failed_seen = true;
                        ("unreachable", Some(reason.clone()))
                    }
                    HookOutcome::Failed { .. } | HookOutcome::Unreachable { .. } if failed_seen => {
                        ("skipped", None)
                    }
                    HookOutcome::Failed { .. } | HookOutcome::Unreachable { .. } => {
                        ("passed", None)
                    }
                };
                event::HookRecord {
                    name: h.name.clone(),
                    result: result.to_string(),
                    message,
                }
            })
            .collect()
    }

    /// Request rate, success rate and p99 of the primary and the canary;
    /// `None` when the provider has no traffic queries or no server is
    /// known.
    async fn traffic(&self, state: &State) -> Option<Event> {
        let c = &self.canary;
        let provider = c.provider?;
        let address = self.default_server().ok()?;
        let server = MetricServer::new(address);
        // One interval, as the checks see it; ten seconds at least, for
        // Prometheus to have two samples to rate.
        let window = c.interval.max(Duration::from_secs(10));
        let window_text = format!("{}s", window.as_secs());
        let primary_name = self.primary_name();
        let q = traffic::queries(
            provider,
            &c.namespace,
            &primary_name,
            &c.target.name,
            c.ingress.as_deref().unwrap_or(&c.target.name),
            &window_text,
        )?;
        // One query an interval for the three figures of both versions.
        let answer = prometheus::query_by(
            &self.edge,
            &server,
            &q.one(),
            &[q.label, traffic::STAT_LABEL],
        )
        .await
        .unwrap_or_default();
        let stats = |w: &str| {
            let figure = |stat: &str| {
                answer
                    .get(&[w.to_string(), stat.to_string()][..])
                    .copied()
                    .filter(|v| v.is_finite())
            };
            event::VersionStats {
                request_rate: figure(traffic::RATE),
                success_rate: figure(traffic::SUCCESS),
                latency_p99_ms: figure(traffic::P99),
            }
        };
        let primary = stats(&primary_name);
        let canary = stats(&c.target.name);
        let mut e = self.event(Kind::Traffic, state);
        e.traffic = Some(event::Traffic {
            window_seconds: window.as_secs(),
            primary,
            canary,
            canary_direct: direct_load(c),
        });
        Some(e)
    }
}

/// The rollout webhooks whose metadata (a load tester's `cmd`) names the
/// canary's Service, `<service>-canary`: their requests reach the canary
/// past the router, whatever its weight.
fn direct_load(c: &canary_core::spec::resolve::ResolvedCanary) -> Vec<String> {
    let host = format!("{}-canary", c.service);
    c.webhooks
        .iter()
        .filter(|h| h.kind == HookType::Rollout)
        .filter(|h| h.metadata.values().any(|v| names_host(v, &host)))
        .map(|h| h.name.clone())
        .collect()
}

/// Whether `text` holds `host` as a whole name: `podinfo-canary.prod`,
/// `http://podinfo-canary:9898/`, but not `podinfo-canary-v2`.
fn names_host(text: &str, host: &str) -> bool {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.match_indices(host).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + host.len()..].chars().next();
        !before.is_some_and(name_char) && !after.is_some_and(name_char)
    })
}

/// What a `started` event says of the rollout of `c`: its target, router,
/// steps and checks.
pub(crate) fn run_info(c: &canary_core::spec::resolve::ResolvedCanary) -> event::RunInfo {
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
    event::RunInfo {
        target: format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name),
        provider: c.provider.map(|p| p.name().to_string()).unwrap_or_default(),
        strategy: c.strategy.label().to_string(),
        interval_seconds: c.interval.as_secs_f64(),
        threshold: c.threshold,
        weights,
        max_weight: c.max_weight,
        iterations: c.iterations,
        metrics,
    }
}

#[cfg(test)]
mod direct_tests {
    use super::names_host;

    #[test]
    fn a_load_tester_command_names_the_canary_service_as_a_whole_name() {
        let host = "podinfo-canary";
        assert!(names_host(
            "hey -z 2m -q 10 -c 2 http://podinfo-canary.prod:9898/",
            host
        ));
        assert!(names_host("curl http://podinfo-canary:9898/token", host));
        assert!(names_host("podinfo-canary", host));
        assert!(!names_host("hey http://podinfo-canary-v2.prod/", host));
        assert!(!names_host("hey http://my-podinfo-canary.prod/", host));
        assert!(!names_host("hey http://podinfo.prod:9898/", host));
    }
}
