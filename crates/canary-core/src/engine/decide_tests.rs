//! Table tests of every decision, and whole rollouts driven through a
//! small in-memory world. No I/O, no clock.

use super::*;
use crate::spec::resolve::{Overrides, resolve};

fn all_primary() -> Routing {
    Routing::all_primary()
}

/// The round's messages, as people read them.
fn said(d: &Decision) -> Vec<String> {
    d.events.iter().map(ToString::to_string).collect()
}

const SEED: &str = include_str!("../../fixtures/podinfo.yaml");

fn canary_from(yaml: &str) -> ResolvedCanary {
    let file = crate::spec::load_str("test.yaml", yaml).expect("valid spec");
    resolve(
        &file,
        &file.canaries[0],
        &Overrides {
            mesh_provider: Some(crate::provider::Provider::Linkerd),
            ..Overrides::default()
        },
    )
}

fn seed() -> ResolvedCanary {
    canary_from(SEED)
}

/// The seed with extra webhooks added to its analysis.
fn seed_with_hooks(hooks: &str) -> ResolvedCanary {
    let yaml = SEED.replace("    webhooks:\n", &format!("    webhooks:\n{hooks}"));
    canary_from(&yaml)
}

fn ready(n: u32) -> Workload {
    Workload {
        desired: n,
        ready: n,
        rolled_out: true,
        deadline_exceeded: false,
    }
}

fn observed(now: i64, revision: &str) -> Observed {
    Observed {
        now: Time(now),
        revision: revision.into(),
        target: ready(2),
        primary: Some(ready(2)),
        routing: Some(all_primary()),
        retry: false,
        request: None,
    }
}

fn initialized(rev: &str) -> State {
    let mut s = State::new(Time(0));
    s.phase = Phase::Initialized;
    s.last_applied_spec = Some(rev.into());
    s.last_promoted_spec = Some(rev.into());
    s
}

fn act(step: Step) -> Decision {
    match step {
        Step::Act(d) => *d,
        Step::Ask(q) => panic!("expected a decision, got question {q:?}"),
    }
}

fn passing() -> Analysis {
    Analysis {
        hooks: HookOutcome::Passed,
        metrics: vec![
            MetricValue {
                name: "request-success-rate".into(),
                value: Ok(100.0),
            },
            MetricValue {
                name: "request-duration".into(),
                value: Ok(12.0),
            },
        ],
    }
}

fn failing_success_rate(v: f64) -> Analysis {
    let mut a = passing();
    a.metrics[0].value = Ok(v);
    a
}

#[test]
fn a_first_run_creates_the_primary_services_and_router() {
    let mut o = observed(0, "r1");
    o.primary = None;
    o.routing = None;
    let d = act(decide(
        &seed(),
        &State::new(Time(0)),
        &o,
        &Answers::default(),
    ));
    assert_eq!(d.actions, vec![Action::Initialize]);
    assert_eq!(d.state.phase, Phase::Initializing);
    assert_eq!(d.next, Next::Now);
}

#[test]
fn initialisation_waits_for_the_primary_then_scales_the_target_to_zero() {
    let mut o = observed(1000, "r1");
    o.primary = Some(Workload {
        desired: 2,
        ready: 1,
        rolled_out: true,
        deadline_exceeded: false,
    });
    let s = State::new(Time(0));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::At(Time(1000).plus(READINESS_POLL)));

    o.primary = Some(ready(2));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(
        d.actions,
        vec![Action::Expose, Action::ScaleTarget(Scale::Zero)]
    );
    assert_eq!(d.state.phase, Phase::Initialized);
    assert_eq!(d.state.last_promoted_spec.as_deref(), Some("r1"));
    assert_eq!(said(&d), vec!["Initialization done! podinfo.prod"]);
    assert_eq!(d.next, Next::Done(Verdict::Initialized));
}

#[test]
fn a_canary_being_reverted_is_held_whatever_is_asked() {
    let c = seed();
    let mut s = initialized("r1");
    s.phase = Phase::Terminating;
    let mut o = observed(5000, "r2");
    o.routing = None;
    o.request = Some(Request {
        kind: RequestKind::Promote,
        by: "ops".to_string(),
        at: Time(5000),
    });
    let d = act(decide(&c, &s, &o, &Answers::default()));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.state, s);
    assert!(matches!(d.next, Next::At(_)), "{:?}", d.next);
}

#[test]
fn a_suspended_canary_is_neither_initialised_nor_analysed() {
    let mut c = seed();
    c.suspended = true;
    let mut o = observed(0, "r1");
    o.primary = None;
    o.routing = None;
    let d = act(decide(&c, &State::new(Time(0)), &o, &Answers::default()));
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::Done(Verdict::Suspended));

    // A new revision of an initialised canary is left alone too.
    let d = act(decide(
        &c,
        &initialized("r1"),
        &observed(5000, "r2"),
        &Answers::default(),
    ));
    assert!(d.actions.is_empty());
    assert_eq!(d.state, initialized("r1"));
    assert_eq!(d.next, Next::Done(Verdict::Suspended));
}

#[test]
fn an_unchanged_target_needs_nothing() {
    let d = act(decide(
        &seed(),
        &initialized("r1"),
        &observed(5000, "r1"),
        &Answers::default(),
    ));
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::Done(Verdict::NoChange));
}

#[test]
fn a_new_revision_scales_the_canary_up_and_starts_progressing() {
    let d = act(decide(
        &seed(),
        &initialized("r1"),
        &observed(5000, "r2"),
        &Answers::default(),
    ));
    assert_eq!(d.actions, vec![Action::ScaleTarget(Scale::Up)]);
    assert_eq!(d.state.phase, Phase::Progressing);
    assert_eq!(d.state.last_applied_spec.as_deref(), Some("r2"));
    assert_eq!(d.state.rollout_started, Some(Time(5000)));
    assert_eq!(
        said(&d),
        vec!["New revision detected! Scaling up podinfo.prod"]
    );
}

#[test]
fn a_closed_confirm_rollout_gate_waits_with_a_reason() {
    let c = seed_with_hooks(
        "      - name: approve\n        type: confirm-rollout\n        url: http://gate.prod/\n",
    );
    let s = initialized("r1");
    let o = observed(5000, "r2");
    assert_eq!(
        decide(&c, &s, &o, &Answers::default()),
        Step::Ask(Question::Gate(HookType::ConfirmRollout))
    );
    let mut a = Answers::default();
    a.gates.insert(HookType::ConfirmRollout, false);
    let d = act(decide(&c, &s, &o, &a));
    assert_eq!(d.state.phase, Phase::Waiting);
    assert!(d.actions.is_empty());
    assert_eq!(
        said(&d),
        vec!["Halt podinfo.prod advancement waiting for approval approve"]
    );
    assert_eq!(d.next, Next::At(Time(10_000)));

    a.gates.insert(HookType::ConfirmRollout, true);
    let d = act(decide(&c, &d.state, &observed(10_000, "r2"), &a));
    assert_eq!(d.state.phase, Phase::Progressing);
    assert_eq!(d.actions, vec![Action::ScaleTarget(Scale::Up)]);
}

fn progressing(rev: &str, started: i64) -> State {
    let mut s = initialized("r1");
    s.phase = Phase::Progressing;
    s.last_applied_spec = Some(rev.into());
    s.rollout_started = Some(Time(started));
    s
}

#[test]
fn an_unready_canary_is_waited_for_until_the_progress_deadline() {
    let s = progressing("r2", 0);
    let mut o = observed(1000, "r2");
    o.target = Workload {
        desired: 2,
        ready: 0,
        rolled_out: false,
        deadline_exceeded: false,
    };
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::At(Time(2000)));

    o.now = Time(601_000);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.state.phase, Phase::Failed);
    assert!(
        matches!(d.next, Next::Done(Verdict::RolledBack { ref reason }) if reason.contains("progress deadline"))
    );
    assert_eq!(
        d.actions,
        vec![
            Action::SetRouting(all_primary()),
            Action::ScaleTarget(Scale::Zero)
        ]
    );
}

#[test]
fn the_first_weight_follows_the_pre_rollout_hooks_at_once() {
    let s = progressing("r2", 0);
    let o = observed(3000, "r2");
    assert_eq!(
        decide(&seed(), &s, &o, &Answers::default()),
        Step::Ask(Question::PreRollout)
    );
    let a = Answers {
        pre_rollout: Some(HookOutcome::Passed),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.actions, vec![Action::SetRouting(Routing::weighted(5))]);
    assert_eq!(d.state.canary_weight, 5);
    assert_eq!(d.state.next_check, Some(Time(13_000)));
    assert_eq!(d.next, Next::At(Time(13_000)));
    assert_eq!(
        said(&d),
        vec![
            "Pre-rollout check acceptance-test passed",
            "Starting canary analysis for podinfo.prod",
            "Advance podinfo.prod canary weight 5"
        ]
    );
}

#[test]
fn a_failing_pre_rollout_hook_counts_a_failed_check_and_retries_an_interval_later() {
    let s = progressing("r2", 0);
    let a = Answers {
        pre_rollout: Some(HookOutcome::Failed {
            hook: "acceptance-test".into(),
            reason: "status 500".into(),
        }),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &observed(3000, "r2"), &a));
    assert_eq!(d.state.failed_checks, 1);
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::At(Time(13_000)));
    assert_eq!(
        said(&d),
        vec!["Halt podinfo.prod advancement pre-rollout check acceptance-test failed status 500"]
    );
}

fn at_weight(w: u32, next_check: i64) -> (State, Observed) {
    let mut s = progressing("r2", 0);
    s.canary_weight = w;
    s.next_check = Some(Time(next_check));
    s.step_started = Some(Time(next_check - 10_000));
    let mut o = observed(next_check, "r2");
    o.routing = Some(Routing::weighted(w));
    (s, o)
}

#[test]
fn nothing_happens_before_the_checks_are_due() {
    let (s, mut o) = at_weight(5, 20_000);
    o.now = Time(15_000);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty());
    assert_eq!(d.next, Next::At(Time(20_000)));
}

#[test]
fn passing_checks_advance_the_weight() {
    let (s, o) = at_weight(5, 20_000);
    assert_eq!(
        decide(&seed(), &s, &o, &Answers::default()),
        Step::Ask(Question::Analysis)
    );
    let a = Answers {
        analysis: Some(passing()),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.actions, vec![Action::SetRouting(Routing::weighted(10))]);
    assert_eq!(said(&d), vec!["Advance podinfo.prod canary weight 10"]);
    let last = &d.state.history[d.state.history.len() - 2];
    assert_eq!(last.metrics.len(), 2);
    assert!(last.metrics.iter().all(|m| m.passed));
}

#[test]
fn failing_checks_halt_and_then_roll_back_at_the_threshold() {
    let (mut s, o) = at_weight(15, 50_000);
    let a = Answers {
        analysis: Some(failing_success_rate(69.17)),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.state.failed_checks, 1);
    assert!(d.actions.is_empty());
    assert_eq!(d.state.canary_weight, 15);
    assert_eq!(
        said(&d),
        vec!["Halt podinfo.prod advancement success rate 69.17% < 99%"]
    );
    assert_eq!(d.next, Next::At(Time(60_000)));

    s.failed_checks = 4;
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.state.phase, Phase::Failed);
    assert_eq!(d.state.canary_weight, 0);
    assert_eq!(
        d.actions,
        vec![
            Action::SetRouting(all_primary()),
            Action::ScaleTarget(Scale::Zero)
        ]
    );
    assert_eq!(
        said(&d)[1..],
        [
            "Rolling back podinfo.prod failed checks threshold reached 5",
            "Canary failed! Scaling down podinfo.prod"
        ]
    );
    assert_eq!(d.state.failure.as_ref().unwrap().revision, "r2");
}

#[test]
fn slow_responses_halt_with_flagger_s_duration_wording() {
    let (s, o) = at_weight(15, 50_000);
    let mut a = passing();
    a.metrics[1].value = Ok(1200.7);
    let d = act(decide(
        &seed(),
        &s,
        &o,
        &Answers {
            analysis: Some(a),
            ..Answers::default()
        },
    ));
    assert_eq!(
        said(&d),
        vec!["Halt podinfo.prod advancement request duration 1.2s > 500ms"]
    );
}

#[test]
fn an_infinite_value_is_a_failed_check_where_flagger_would_pass_it() {
    // Flagger compares +Inf with `min: 99` and passes it.
    for (value, said_value) in [(f64::INFINITY, "+Inf"), (f64::NEG_INFINITY, "-Inf")] {
        let (s, o) = at_weight(15, 50_000);
        let mut a = passing();
        a.metrics[0].value = Ok(value);
        let d = act(decide(
            &seed(),
            &s,
            &o,
            &Answers {
                analysis: Some(a),
                ..Answers::default()
            },
        ));
        assert_eq!(d.state.failed_checks, 1, "{value}");
        assert_eq!(
            said(&d),
            [format!(
                "Prometheus query failed: the query answered {said_value}, which no threshold \
                 can judge"
            )]
        );
    }
}

#[test]
fn no_data_and_query_errors_are_failed_checks() {
    let (s, o) = at_weight(15, 50_000);
    let mut a = passing();
    a.metrics[0].value = Err(MetricFailure::NoValues);
    a.metrics[1].value = Err(MetricFailure::Query("connection refused".into()));
    let d = act(decide(
        &seed(),
        &s,
        &o,
        &Answers {
            analysis: Some(a),
            ..Answers::default()
        },
    ));
    assert_eq!(d.state.failed_checks, 1);
    assert_eq!(d.events.len(), 2);
    assert_eq!(
        said(&d),
        [
            "Halt advancement no values found for linkerd metric request-success-rate probably \
             podinfo.prod is not receiving traffic: no values found",
            "Prometheus query failed: connection refused"
        ]
    );
    let last = d.state.history.last().unwrap();
    assert_eq!(
        last.metrics[0].error.as_deref(),
        Some("no values found"),
        "the history keeps the failure as text"
    );
}

#[test]
fn no_values_before_the_window_holds_the_canary_s_traffic_are_not_counted() {
    // The canary has had traffic for 10 s; the seed's metrics look back 1m
    // and are checked every 10 s.
    let (mut s, o) = at_weight(15, 50_000);
    s.traffic_since = Some(Time(40_000));
    let mut a = passing();
    a.metrics[0].value = Err(MetricFailure::NoValues);
    a.metrics[1].value = Err(MetricFailure::NoValues);
    let answers = Answers {
        analysis: Some(a.clone()),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &answers));
    assert_eq!(d.state.failed_checks, 0);
    assert_eq!(d.state.canary_weight, 15, "no step either");
    assert_eq!(
        said(&d),
        [
            "No values yet for request-success-rate, request-duration: podinfo.prod has had \
          traffic for 10s of the 60s its queries look back over; not counted as a failed check"
        ]
    );
    assert_eq!(
        d.next,
        Next::At(Time(60_000)),
        "checked again an interval later"
    );

    // Once the window has passed, no values is a failed check, as in Flagger.
    s.traffic_since = Some(Time(-20_000));
    let d = act(decide(&seed(), &s, &o, &answers));
    assert_eq!(d.state.failed_checks, 1);

    // Any other failure is counted at once.
    s.traffic_since = Some(Time(40_000));
    let mut slow = a;
    slow.metrics[1].value = Ok(1200.0);
    let d = act(decide(
        &seed(),
        &s,
        &o,
        &Answers {
            analysis: Some(slow),
            ..Answers::default()
        },
    ));
    assert_eq!(d.state.failed_checks, 1);
}

#[test]
fn the_first_step_marks_when_the_canary_got_traffic() {
    let s = progressing("r2", 0);
    let o = observed(3000, "r2");
    let a = Answers {
        pre_rollout: Some(HookOutcome::Passed),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.state.traffic_since, Some(Time(3000)));
}

#[test]
fn a_failing_rollout_hook_is_a_failed_check() {
    let (s, o) = at_weight(15, 50_000);
    let a = Analysis {
        hooks: HookOutcome::Failed {
            hook: "load-test".into(),
            reason: "timeout".into(),
        },
        metrics: Vec::new(),
    };
    let d = act(decide(
        &seed(),
        &s,
        &o,
        &Answers {
            analysis: Some(a),
            ..Answers::default()
        },
    ));
    assert_eq!(d.state.failed_checks, 1);
    assert_eq!(
        said(&d),
        vec!["Halt podinfo.prod advancement external check load-test failed timeout"]
    );
}

#[test]
fn checks_passing_at_max_weight_promote() {
    let (s, o) = at_weight(100, 200_000);
    let a = Answers {
        analysis: Some(passing()),
        ..Answers::default()
    };
    let d = act(decide(&seed(), &s, &o, &a));
    assert_eq!(d.actions, vec![Action::Promote]);
    assert_eq!(d.state.phase, Phase::Promoting);
    assert_eq!(
        said(&d),
        vec!["Copying podinfo.prod template spec to podinfo-primary.prod"]
    );
}

#[test]
fn a_closed_promotion_gate_holds_and_is_polled_without_rerunning_checks() {
    let c = seed_with_hooks(
        "      - name: promote-gate\n        type: confirm-promotion\n        url: http://gate.prod/\n",
    );
    let (s, o) = at_weight(100, 200_000);
    let mut a = Answers {
        analysis: Some(passing()),
        ..Answers::default()
    };
    assert_eq!(
        decide(&c, &s, &o, &a),
        Step::Ask(Question::Gate(HookType::ConfirmPromotion))
    );
    a.gates.insert(HookType::ConfirmPromotion, false);
    let d = act(decide(&c, &s, &o, &a));
    assert_eq!(d.state.phase, Phase::WaitingPromotion);
    assert_eq!(d.state.awaiting_gate, Some(HookType::ConfirmPromotion));
    assert_eq!(d.next, Next::At(Time(205_000)));

    // Five seconds later only the gate is asked.
    let mut o2 = o.clone();
    o2.now = Time(205_000);
    assert_eq!(
        decide(&c, &d.state, &o2, &Answers::default()),
        Step::Ask(Question::Gate(HookType::ConfirmPromotion))
    );
    let mut open = Answers::default();
    open.gates.insert(HookType::ConfirmPromotion, true);
    let d2 = act(decide(&c, &d.state, &o2, &open));
    assert_eq!(d2.actions, vec![Action::Promote]);
    assert_eq!(d2.state.phase, Phase::Promoting);
}

#[test]
fn promotion_waits_for_the_primary_then_routes_back_and_finalises() {
    let mut s = progressing("r2", 0);
    s.phase = Phase::Promoting;
    s.canary_weight = 100;
    let mut o = observed(300_000, "r2");
    o.routing = Some(Routing::weighted(100));
    o.primary = Some(Workload {
        desired: 2,
        ready: 2,
        rolled_out: false,
        deadline_exceeded: false,
    });
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty());

    o.primary = Some(ready(2));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.actions, vec![Action::SetRouting(all_primary())]);
    assert_eq!(d.state.phase, Phase::Finalising);
    assert_eq!(said(&d), vec!["Routing all traffic to primary"]);

    o.routing = Some(all_primary());
    let d = act(decide(&seed(), &d.state, &o, &Answers::default()));
    assert_eq!(d.actions, vec![Action::ScaleTarget(Scale::Zero)]);
    assert_eq!(d.state.phase, Phase::Succeeded);
    assert_eq!(d.state.last_promoted_spec.as_deref(), Some("r2"));
    assert_eq!(
        said(&d),
        vec!["Promotion completed! Scaling down podinfo.prod"]
    );
    assert_eq!(d.next, Next::Done(Verdict::Promoted));
}

#[test]
fn a_new_revision_during_the_analysis_restarts_it() {
    let (s, mut o) = at_weight(30, 80_000);
    o.revision = "r3".into();
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(
        d.actions,
        vec![
            Action::SetRouting(all_primary()),
            Action::ScaleTarget(Scale::Up)
        ]
    );
    assert_eq!(d.state.canary_weight, 0);
    assert_eq!(d.state.last_applied_spec.as_deref(), Some("r3"));
    assert_eq!(d.state.next_check, None);
}

#[test]
fn a_revision_that_already_failed_is_reported_unless_retried() {
    let mut s = initialized("r1");
    s.phase = Phase::Failed;
    s.last_applied_spec = Some("r2".into());
    s.failure = Some(Failure {
        revision: "r2".into(),
        time: Time(1000),
        reason: "failed checks threshold reached 5".into(),
    });
    let mut o = observed(9000, "r2");
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(
        matches!(d.next, Next::Done(Verdict::AlreadyFailed(ref f)) if f.reason.contains("threshold"))
    );
    assert!(d.actions.is_empty());

    o.retry = true;
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.state.phase, Phase::Progressing);
    assert_eq!(d.state.failure, None);
}

#[test]
fn going_back_to_the_promoted_revision_does_nothing() {
    let mut s = initialized("r1");
    s.phase = Phase::Failed;
    s.last_applied_spec = Some("r2".into());
    let d = act(decide(
        &seed(),
        &s,
        &observed(9000, "r1"),
        &Answers::default(),
    ));
    assert_eq!(d.next, Next::Done(Verdict::NoChange));
}

#[test]
fn a_rollback_hook_that_answers_yes_rolls_back() {
    let c = seed_with_hooks(
        "      - name: stop\n        type: rollback\n        url: http://gate.prod/rollback/check\n",
    );
    let (s, o) = at_weight(15, 50_000);
    assert_eq!(
        decide(&c, &s, &o, &Answers::default()),
        Step::Ask(Question::Rollback)
    );
    let a = Answers {
        rollback: Some(true),
        ..Answers::default()
    };
    let d = act(decide(&c, &s, &o, &a));
    assert_eq!(d.state.phase, Phase::Failed);
    assert_eq!(
        said(&d)[0],
        "Rolling back podinfo.prod manual webhook invoked"
    );
}

/// A world that applies actions the way a cluster would, instantly.
struct World {
    revision: String,
    primary_revision: String,
    target_replicas: u32,
    routing: Routing,
    primary: bool,
    /// The apex Service and the router route to the primary.
    exposed: bool,
}

impl World {
    /// Revision r2 applied to a target whose primary runs r1.
    fn released() -> (World, State) {
        let world = World {
            revision: "r2".into(),
            primary_revision: "r1".into(),
            target_replicas: 0,
            routing: all_primary(),
            primary: true,
            exposed: true,
        };
        // Released an hour ago: the metrics' window holds no other
        // revision's requests.
        let mut state = initialized("r1");
        state.last_transition_time = Time(-3_600_000);
        (world, state)
    }

    fn observe(&self, now: i64) -> Observed {
        Observed {
            now: Time(now),
            revision: self.revision.clone(),
            target: if self.target_replicas > 0 {
                ready(self.target_replicas)
            } else {
                Workload::default()
            },
            primary: self.primary.then(|| ready(2)),
            routing: self.exposed.then(|| self.routing.clone()),
            retry: false,
            request: None,
        }
    }

    fn apply(&mut self, a: &Action) {
        match a {
            Action::Initialize => {
                self.primary = true;
                self.primary_revision = self.revision.clone();
            }
            Action::Expose => self.exposed = true,
            Action::ScaleTarget(Scale::Up) => self.target_replicas = 2,
            Action::ScaleTarget(Scale::Zero) => self.target_replicas = 0,
            Action::SetRouting(r) => self.routing = r.clone(),
            Action::Promote => self.primary_revision = self.revision.clone(),
            Action::RunHooks(_) => {}
        }
    }
}

/// One round: every question answered yes (gates open, no rollback
/// asked, hooks pass), the analysis by `analysis(weight)`.
fn round(
    c: &ResolvedCanary,
    state: &State,
    o: &Observed,
    analysis: &dyn Fn(u32) -> Analysis,
) -> Decision {
    let mut answers = Answers::default();
    loop {
        match decide(c, state, o, &answers) {
            Step::Act(d) => return *d,
            Step::Ask(Question::Gate(g)) => {
                answers.gates.insert(g, true);
            }
            Step::Ask(Question::Rollback) => answers.rollback = Some(false),
            Step::Ask(Question::PreRollout) => answers.pre_rollout = Some(HookOutcome::Passed),
            Step::Ask(Question::Analysis) => answers.analysis = Some(analysis(state.canary_weight)),
        }
    }
}

/// Drives one canary to a verdict, one [`round`] after another;
/// returns the verdict, the time it took and every weight set.
fn drive(
    c: &ResolvedCanary,
    world: &mut World,
    state: &mut State,
    start: i64,
    analysis: impl Fn(u32) -> Analysis,
) -> (Verdict, i64, Vec<Routing>) {
    let mut now = start;
    let mut weights = Vec::new();
    for _ in 0..10_000 {
        let o = world.observe(now);
        let d = round(c, state, &o, &analysis);
        for a in &d.actions {
            world.apply(a);
            if let Action::SetRouting(r) = a {
                weights.push(r.clone());
                if let Some((primary, canary)) = r.weights() {
                    assert_eq!(primary + canary, 100);
                }
            }
        }
        *state = d.state;
        match d.next {
            Next::Now => {}
            Next::At(t) => now = t.0.max(now),
            Next::Done(v) => return (v, now - start, weights),
        }
    }
    panic!("no verdict after 10000 rounds");
}

#[test]
fn the_seed_rollout_promotes_in_exactly_steps_times_interval() {
    let c = seed();
    let mut world = World {
        revision: "r1".into(),
        primary_revision: String::new(),
        target_replicas: 2,
        routing: all_primary(),
        primary: false,
        exposed: false,
    };
    let mut state = State::new(Time(0));
    let (v, _, _) = drive(&c, &mut world, &mut state, 0, |_| passing());
    assert_eq!(v, Verdict::Initialized);
    assert_eq!(world.target_replicas, 0);

    world.revision = "r2".into();
    let (v, took, weights) = drive(&c, &mut world, &mut state, 1_000_000, |_| passing());
    assert_eq!(v, Verdict::Promoted);
    // 20 steps of 10 s: the last check at weight 100 is followed by the
    // promotion at once.
    assert_eq!(took, 200_000);
    let canary: Vec<u32> = weights.iter().map(Routing::canary_weight).collect();
    let mut expected: Vec<u32> = (1..=20).map(|i| i * 5).collect();
    expected.push(0);
    assert_eq!(canary, expected);
    assert_eq!(world.primary_revision, "r2");
    assert_eq!(world.target_replicas, 0);
    assert_eq!(state.phase, Phase::Succeeded);

    // Nothing to do afterwards.
    let (v, _, _) = drive(&c, &mut world, &mut state, 2_000_000, |_| passing());
    assert_eq!(v, Verdict::NoChange);
}

#[test]
fn a_failing_release_rolls_back_after_threshold_checks_and_leaves_the_primary() {
    let c = seed();
    let (mut world, mut state) = World::released();
    // Healthy for the first two steps, then failing (as in the seed's log).
    let (v, took, weights) = drive(&c, &mut world, &mut state, 0, |w| {
        if w >= 15 {
            failing_success_rate(69.17)
        } else {
            passing()
        }
    });
    assert!(matches!(v, Verdict::RolledBack { .. }));
    let canary: Vec<u32> = weights.iter().map(Routing::canary_weight).collect();
    assert_eq!(canary, vec![5, 10, 15, 0]);
    // Two passing checks, then five failing ones, 10 s apart.
    assert_eq!(took, 70_000);
    assert_eq!(world.primary_revision, "r1");
    assert_eq!(world.target_replicas, 0);
    assert_eq!(state.failed_checks, 5);
}

#[test]
fn right_after_another_revision_the_first_check_waits_for_the_window() {
    let c = seed();
    // The last release ended 5 s before this one: the seed's 1m window
    // still holds its requests.
    let (mut world, mut state) = World::released();
    state.phase = Phase::Succeeded;
    state.last_transition_time = Time(-5_000);
    let (v, took, _) = drive(&c, &mut world, &mut state, 0, |_| passing());
    assert_eq!(v, Verdict::Promoted);
    // The first check at 55 s instead of 10 s, then 19 steps of 10 s.
    assert_eq!(took, 55_000 + 19 * 10_000);
    assert!(
        state
            .history
            .iter()
            .any(|h| h.message.starts_with("First check of podinfo.prod in 55s")),
        "{:#?}",
        state.history
    );
}

#[test]
fn a_b_testing_routes_matched_traffic_for_each_iteration() {
    let yaml = include_str!("../../fixtures/ab-testing.yaml").to_string();
    let c = canary_from(&yaml);
    let (mut world, mut state) = World::released();
    let (v, took, weights) = drive(&c, &mut world, &mut state, 0, |_| passing());
    assert_eq!(v, Verdict::Promoted);
    assert_eq!(took, 10 * 60_000);
    assert_eq!(weights.len(), 11);
    assert!(
        weights[..10]
            .iter()
            .all(|r| matches!(r, Routing::Matched { matches } if matches.len() == 2))
    );
    assert_eq!(weights[10], all_primary());
}

#[test]
fn blue_green_on_kubernetes_checks_iterations_then_promotes() {
    let yaml = include_str!("../../fixtures/blue-green.yaml").to_string();
    let c = canary_from(&yaml);
    assert!(!c.routes_traffic());
    let (mut world, mut state) = World::released();
    let metrics = |_| Analysis {
        hooks: HookOutcome::Passed,
        metrics: vec![MetricValue {
            name: "error-rate".into(),
            value: Ok(0.1),
        }],
    };
    let (v, took, weights) = drive(&c, &mut world, &mut state, 0, metrics);
    assert_eq!(v, Verdict::Promoted);
    assert_eq!(took, 10 * 30_000);
    assert!(weights.iter().all(|r| r.canary_weight() == 0));
}

#[test]
fn gradual_promotion_raises_the_primary_one_interval_apart() {
    let yaml = include_str!("../../fixtures/gateway-api.yaml").to_string();
    let c = canary_from(&yaml);
    let (mut world, mut state) = World::released();
    let metrics = |_| Analysis {
        hooks: HookOutcome::Passed,
        metrics: vec![
            MetricValue {
                name: "error-rate".into(),
                value: Ok(0.1),
            },
            MetricValue {
                name: "latency".into(),
                value: Ok(100.0),
            },
        ],
    };
    let (v, took, weights) = drive(&c, &mut world, &mut state, 0, metrics);
    assert_eq!(v, Verdict::Promoted);
    let canary: Vec<u32> = weights.iter().map(Routing::canary_weight).collect();
    assert_eq!(canary, vec![1, 5, 10, 25, 50, 25, 0]);
    // Five steps, then one interval between the two promotion shifts.
    assert_eq!(took, 6 * 60_000);
}

#[test]
fn resuming_from_any_persisted_state_reaches_the_same_verdict() {
    // Replays the seed rollout, and after every round starts a fresh
    // driver from the persisted state (a killed process resuming).
    let c = seed();
    for kill_after in 0..25 {
        let (mut world, mut state) = World::released();
        let mut now = 0;
        for _ in 0..kill_after {
            let o = world.observe(now);
            let d = round(&c, &state, &o, &|_| passing());
            // The process dies after applying the effects but before
            // persisting the state every other time.
            for a in &d.actions {
                world.apply(a);
            }
            if kill_after % 2 == 0 {
                state = d.state;
            }
            if let Next::At(t) = d.next {
                now = t.0;
            }
            if matches!(d.next, Next::Done(_)) {
                break;
            }
        }
        let (v, _, _) = drive(&c, &mut world, &mut state, now, |_| passing());
        assert!(
            v == Verdict::Promoted || v == Verdict::NoChange,
            "kill after {kill_after}: {v:?}"
        );
        assert_eq!(world.primary_revision, "r2", "kill after {kill_after}");
        assert_eq!(world.routing, all_primary(), "kill after {kill_after}");
    }
}

fn asked(kind: RequestKind, at: i64) -> Option<Request> {
    Some(Request {
        kind,
        by: "ops@laptop pid 1".into(),
        at: Time(at),
    })
}

#[test]
fn abort_routes_all_traffic_to_the_primary_and_ends_aborted() {
    let (s, mut o) = at_weight(15, 50_000);
    o.now = Time(45_000);
    o.request = asked(RequestKind::Abort, 44_900);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(
        d.actions,
        vec![
            Action::SetRouting(all_primary()),
            Action::ScaleTarget(Scale::Zero)
        ]
    );
    assert_eq!(d.state.phase, Phase::Aborted);
    assert_eq!(
        d.next,
        Next::Done(Verdict::Aborted {
            by: "ops@laptop pid 1".into()
        })
    );
    assert_eq!(
        d.state.failure.as_ref().map(|f| f.reason.as_str()),
        Some("aborted by ops@laptop pid 1")
    );
    // The aborted revision is reported, not analysed again, by later runs.
    let mut later = observed(60_000, "r2");
    later.routing = Some(all_primary());
    let again = act(decide(&seed(), &d.state, &later, &Answers::default()));
    assert!(matches!(again.next, Next::Done(Verdict::AlreadyFailed(_))));
}

#[test]
fn promote_skips_the_analysis_and_a_closed_promotion_gate() {
    let c = seed_with_hooks(
        "      - name: approve\n        type: confirm-promotion\n        url: http://gate.prod/gate/check\n",
    );
    let (mut s, mut o) = at_weight(30, 50_000);
    s.awaiting_gate = Some(HookType::ConfirmPromotion);
    s.phase = Phase::WaitingPromotion;
    o.now = Time(41_000);
    o.request = asked(RequestKind::Promote, 40_000);
    // No question asked: neither the gate nor the metrics.
    let d = act(decide(&c, &s, &o, &Answers::default()));
    assert_eq!(d.actions, vec![Action::Promote]);
    assert_eq!(d.state.phase, Phase::Promoting);
}

#[test]
fn pause_holds_the_weight_until_resumed() {
    let c = seed();
    let (s, mut o) = at_weight(15, 50_000);
    o.now = Time(45_000);
    o.request = asked(RequestKind::Pause, 45_000);
    let paused = act(decide(&c, &s, &o, &Answers::default()));
    assert!(paused.actions.is_empty());
    assert!(paused.state.paused.is_some());
    assert!(paused.waiting.as_deref().unwrap().contains("canary resume"));

    // Checks that fall due while paused do not run; nothing is asked.
    let mut later = o.clone();
    later.now = Time(500_000);
    later.request = None;
    let held = act(decide(&c, &paused.state, &later, &Answers::default()));
    assert!(held.actions.is_empty());
    assert_eq!(held.state.canary_weight, 15);

    // Resumed: a full interval at this weight before the next checks.
    later.request = asked(RequestKind::Resume, 500_000);
    let resumed = act(decide(&c, &held.state, &later, &Answers::default()));
    assert!(resumed.state.paused.is_none());
    assert_eq!(
        resumed.state.next_check,
        Some(Time(500_000).plus(c.interval))
    );
    assert_eq!(resumed.next, Next::At(Time(500_000).plus(c.interval)));
}

#[test]
fn the_runs_own_stop_rolls_back_like_a_failed_analysis() {
    let (s, mut o) = at_weight(15, 50_000);
    o.now = Time(45_000);
    o.request = asked(RequestKind::RollBack("timed out after 30m".into()), 45_000);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.state.phase, Phase::Failed);
    assert_eq!(
        d.next,
        Next::Done(Verdict::RolledBack {
            reason: "timed out after 30m".into()
        })
    );
    // With nothing under way, the stop changes nothing and says nothing.
    let mut idle = observed(45_000, "r1");
    idle.request = asked(RequestKind::RollBack("interrupted".into()), 45_000);
    let d = act(decide(
        &seed(),
        &initialized("r1"),
        &idle,
        &Answers::default(),
    ));
    assert_eq!(d.next, Next::Done(Verdict::NoChange));
    assert!(d.events.is_empty());
}

#[test]
fn requests_that_do_not_fit_the_phase_are_refused_with_a_reason() {
    assert!(
        RequestKind::Abort
            .applies(Phase::Progressing, false)
            .is_ok()
    );
    assert!(
        RequestKind::Abort
            .applies(Phase::Promoting, false)
            .unwrap_err()
            .contains("Promoting")
    );
    assert!(
        RequestKind::Promote
            .applies(Phase::Succeeded, false)
            .unwrap_err()
            .contains("no analysis")
    );
    assert!(
        RequestKind::Pause
            .applies(Phase::Progressing, true)
            .unwrap_err()
            .contains("already paused")
    );
    assert!(
        RequestKind::Resume
            .applies(Phase::Progressing, false)
            .unwrap_err()
            .contains("not paused")
    );
    assert!(
        RequestKind::Resume
            .applies(Phase::Progressing, true)
            .is_ok()
    );
    // A request that races a phase change is ignored, with an event.
    let (s, mut o) = at_weight(15, 50_000);
    o.now = Time(45_000);
    o.request = asked(RequestKind::Resume, 45_000);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(
        said(&d)[0].starts_with("Ignored resume requested by ops@laptop pid 1"),
        "{:?}",
        d.events
    );
    assert_eq!(d.next, Next::At(Time(50_000)));
}

#[test]
fn what_a_rollout_waits_for_is_said() {
    let (s, mut o) = at_weight(15, 50_000);
    o.now = Time(45_000);
    o.target = Workload {
        desired: 2,
        ready: 1,
        rolled_out: true,
        deadline_exceeded: false,
    };
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.waiting.as_deref(), Some("canary ready (1/2 replicas)"));
}

/// What a rollout did that a plan promises: each gate it asked and each
/// routing it set, in order.
#[derive(Debug, Clone, PartialEq)]
enum Done {
    Gate(HookType),
    Route(Routing),
}

/// Both step gates, for strategies to place.
const GATES: &str = "      - name: more\n        type: confirm-traffic-increase\n        url: http://gate.prod/more\n      - name: ship\n        type: confirm-promotion\n        url: http://gate.prod/ship\n";

/// The seed on `provider` with its weight settings replaced by the
/// `analysis` lines, and both step gates added.
fn seed_as(provider: &str, analysis: &str) -> ResolvedCanary {
    let yaml = SEED
        .replace("spec:\n", &format!("spec:\n  provider: {provider}\n"))
        .replace("    maxWeight: 100\n    stepWeight: 5\n", analysis)
        .replace("    webhooks:\n", &format!("    webhooks:\n{GATES}"));
    canary_from(&yaml)
}

/// An example file with both step gates added.
fn example_with_gates(yaml: &str) -> ResolvedCanary {
    canary_from(&yaml.replacen("    webhooks:\n", &format!("    webhooks:\n{GATES}"), 1))
}

/// Every metric of `c` within its bounds.
fn all_pass(c: &ResolvedCanary) -> Analysis {
    Analysis {
        hooks: HookOutcome::Passed,
        metrics: c
            .metrics
            .iter()
            .map(|m| MetricValue {
                name: m.name.clone(),
                value: Ok(m.min.unwrap_or(0.0)),
            })
            .collect(),
    }
}

/// Drives a release of `c` where every gate is open and every check
/// passes, and returns what it did.
fn run_through(c: &ResolvedCanary) -> Vec<Done> {
    let (mut world, mut state) = World::released();
    let mut done = Vec::new();
    let mut now = 0;
    for _ in 0..10_000 {
        let o = world.observe(now);
        let mut answers = Answers::default();
        let d = loop {
            match decide(c, &state, &o, &answers) {
                Step::Act(d) => break *d,
                Step::Ask(Question::Gate(g)) => {
                    done.push(Done::Gate(g));
                    answers.gates.insert(g, true);
                }
                Step::Ask(Question::Rollback) => answers.rollback = Some(false),
                Step::Ask(Question::PreRollout) => answers.pre_rollout = Some(HookOutcome::Passed),
                Step::Ask(Question::Analysis) => answers.analysis = Some(all_pass(c)),
            }
        };
        for a in &d.actions {
            world.apply(a);
            if let Action::SetRouting(r) = a {
                done.push(Done::Route(r.clone()));
            }
        }
        state = d.state;
        match d.next {
            Next::Now => {}
            Next::At(t) => now = t.0.max(now),
            Next::Done(v) => {
                assert_eq!(v, Verdict::Promoted);
                assert_eq!(world.primary_revision, "r2");
                return done;
            }
        }
    }
    panic!("no verdict after 10000 rounds");
}

/// What `canary plan` lists for `c`, in the same terms.
fn planned(c: &ResolvedCanary) -> Vec<Done> {
    let p = super::super::plan::plan(c, &[]);
    let mut out = Vec::new();
    for s in &p.steps {
        if let Some(g) = s.gates.first() {
            out.push(Done::Gate(g.kind));
        }
        out.push(Done::Route(s.routing.clone()));
    }
    if let Some(g) = p.promotion_gates.first() {
        out.push(Done::Gate(g.kind));
    }
    out.extend(p.promotion_routing.iter().cloned().map(Done::Route));
    out
}

fn gates(done: &[Done]) -> Vec<HookType> {
    done.iter()
        .filter_map(|d| match d {
            Done::Gate(g) => Some(*g),
            Done::Route(_) => None,
        })
        .collect()
}

#[test]
fn a_step_weight_canary_runs_as_planned() {
    let c = seed_as("linkerd", "    maxWeight: 50\n    stepWeight: 20\n");
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    assert_eq!(
        run,
        [
            Done::Gate(HookType::ConfirmTrafficIncrease),
            Done::Route(Routing::weighted(20)),
            Done::Gate(HookType::ConfirmTrafficIncrease),
            Done::Route(Routing::weighted(40)),
            Done::Gate(HookType::ConfirmTrafficIncrease),
            Done::Route(Routing::weighted(60)),
            Done::Gate(HookType::ConfirmPromotion),
            Done::Route(all_primary()),
        ]
    );
}

#[test]
fn a_step_weights_canary_runs_as_planned() {
    let c = seed_as("linkerd", "    stepWeights: [1, 2, 10, 80]\n");
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    let routes: Vec<u32> = run
        .iter()
        .filter_map(|d| match d {
            Done::Route(r) => Some(r.canary_weight()),
            Done::Gate(_) => None,
        })
        .collect();
    assert_eq!(routes, [1, 2, 10, 80, 0]);
}

#[test]
fn a_gradual_promotion_runs_as_planned() {
    let c = seed_as(
        "linkerd",
        "    maxWeight: 50\n    stepWeight: 20\n    stepWeightPromotion: 20\n",
    );
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    assert_eq!(
        run[run.len() - 4..],
        [
            Done::Gate(HookType::ConfirmPromotion),
            Done::Route(Routing::weighted(40)),
            Done::Route(Routing::weighted(20)),
            Done::Route(all_primary()),
        ]
    );
}

#[test]
fn a_mirroring_canary_runs_as_planned() {
    let c = seed_as(
        "istio",
        "    maxWeight: 30\n    stepWeight: 10\n    mirror: true\n    mirrorWeight: 50\n",
    );
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    // One interval of copies before any live traffic moves: no gate.
    assert_eq!(
        run[0],
        Done::Route(Routing::Mirrored {
            mirror_weight: Some(50)
        })
    );
    assert_eq!(run[1], Done::Gate(HookType::ConfirmTrafficIncrease));
}

#[test]
fn an_a_b_test_runs_as_planned_and_routes_only_matching_requests() {
    let c = example_with_gates(include_str!("../../fixtures/ab-testing.yaml"));
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    let matched = run
        .iter()
        .filter(|d| matches!(d, Done::Route(Routing::Matched { matches }) if matches.len() == 2))
        .count();
    assert_eq!(matched, 10);
    assert_eq!(gates(&run), [HookType::ConfirmPromotion]);
    assert_eq!(run.last(), Some(&Done::Route(all_primary())));
}

#[test]
fn a_blue_green_rollout_runs_as_planned_with_its_gate_on_the_switch() {
    let c = seed_as("linkerd", "    iterations: 3\n");
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    assert_eq!(
        run,
        [
            Done::Route(Routing::CanaryService),
            Done::Route(Routing::CanaryService),
            Done::Route(Routing::CanaryService),
            Done::Gate(HookType::ConfirmPromotion),
            Done::Route(Routing::weighted(100)),
            Done::Route(all_primary()),
        ]
    );
}

#[test]
fn a_mirroring_blue_green_rollout_runs_as_planned() {
    let c = seed_as("istio", "    iterations: 2\n    mirror: true\n");
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    let mirrored = Routing::Mirrored {
        mirror_weight: None,
    };
    assert_eq!(
        run,
        [
            Done::Route(mirrored.clone()),
            Done::Route(mirrored),
            Done::Gate(HookType::ConfirmPromotion),
            Done::Route(Routing::weighted(100)),
            Done::Route(all_primary()),
        ]
    );
}

#[test]
fn a_blue_green_rollout_on_the_kubernetes_provider_runs_as_planned() {
    let c = example_with_gates(include_str!("../../fixtures/blue-green.yaml"));
    assert!(!c.routes_traffic());
    let run = run_through(&c);
    assert_eq!(run, planned(&c));
    // No switch step: the promotion itself is gated.
    assert_eq!(run.len(), 12);
    assert_eq!(gates(&run), [HookType::ConfirmPromotion]);
    assert_eq!(run[10], Done::Gate(HookType::ConfirmPromotion));
}

#[test]
fn a_step_the_router_shows_but_the_state_missed_is_taken_as_applied_not_repeated() {
    // Step 1 (5%) is in place and checked; the round that set step 2
    // (10%) stopped before writing the state.
    let (mut s, mut o) = at_weight(5, 20_000);
    s.step = Some(1);
    o.routing = Some(Routing::weighted(10));
    o.now = Time(25_000);
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.events.is_empty(), "not announced twice: {:?}", d.events);
    assert_eq!(d.state.step, Some(2));
    assert_eq!(d.state.canary_weight, 10);
    // A full interval at the new weight before its checks.
    assert_eq!(d.state.next_check, Some(Time(25_000).plus(seed().interval)));
    assert_eq!(d.next, Next::At(Time(25_000).plus(seed().interval)));

    // The first step, set before the state said the analysis had begun.
    let (mut s, mut o) = at_weight(0, 20_000);
    s.step = Some(0);
    s.next_check = None;
    o.routing = Some(Routing::weighted(5));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.state.step, Some(1));

    // A router that matches the state is not a missed step.
    let (mut s, o) = at_weight(5, 20_000);
    s.step = Some(1);
    assert_eq!(
        decide(&seed(), &s, &o, &Answers::default()),
        Step::Ask(Question::Analysis)
    );
}

#[test]
fn a_state_written_before_the_step_was_kept_resumes_at_its_weight() {
    // A mirroring canary at weight 20 whose document has no `step`.
    let c = seed_as(
        "istio",
        "    maxWeight: 30\n    stepWeight: 10\n    mirror: true\n",
    );
    let (mut s, o) = at_weight(20, 50_000);
    let text = s.to_annotation();
    assert!(!text.contains("\"step\""), "{text}");
    s = State::from_annotation(&text).unwrap();
    let mut a = Answers {
        analysis: Some(all_pass(&c)),
        ..Answers::default()
    };
    a.gates.insert(HookType::ConfirmTrafficIncrease, true);
    let d = act(decide(&c, &s, &o, &a));
    assert_eq!(d.actions, vec![Action::SetRouting(Routing::weighted(30))]);
    assert_eq!(d.state.step, Some(4));

    // Blue/green counts iterations.
    let c = seed_as("linkerd", "    iterations: 3\n");
    let (mut s, mut o) = at_weight(0, 50_000);
    s.iterations = 3;
    o.routing = Some(all_primary());
    a.gates.insert(HookType::ConfirmPromotion, true);
    let d = act(decide(&c, &s, &o, &a));
    assert_eq!(d.actions, vec![Action::SetRouting(Routing::weighted(100))]);
    assert_eq!(d.state.iterations, 4);
}

#[test]
fn nothing_is_routed_to_the_primary_before_it_is_ready() {
    // The first run created the primary; the router's objects and the
    // apex Service wait for its pods.
    let mut o = observed(1000, "r1");
    o.routing = None;
    o.primary = Some(Workload {
        desired: 2,
        ready: 0,
        rolled_out: false,
        deadline_exceeded: false,
    });
    let s = State::new(Time(0));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.state.phase, Phase::Initializing);

    o.primary = Some(ready(2));
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(
        d.actions,
        vec![Action::Expose, Action::ScaleTarget(Scale::Zero)]
    );
    assert_eq!(d.next, Next::Done(Verdict::Initialized));
}

#[test]
fn a_canary_found_scaled_down_mid_analysis_is_scaled_up_and_routed_again() {
    // A rollback's effects were applied (traffic to the primary, the
    // canary scaled to zero) and its state write was lost.
    let (mut s, mut o) = at_weight(25, 50_000);
    s.step = Some(5);
    s.failed_checks = 4;
    o.target = Workload::default();
    o.routing = Some(all_primary());
    let d = act(decide(&seed(), &s, &o, &Answers::default()));
    assert_eq!(d.actions, vec![Action::ScaleTarget(Scale::Up)]);
    assert_eq!(
        said(&d),
        vec!["podinfo.prod was scaled to zero during the analysis; scaling it up again"]
    );
    assert_eq!(d.next, Next::At(Time(50_000).plus(READINESS_POLL)));

    // Ready again: the step's weight is restored, and its checks get a
    // full interval at that weight.
    o.target = ready(2);
    let d = act(decide(&seed(), &d.state, &o, &Answers::default()));
    assert_eq!(d.actions, vec![Action::SetRouting(Routing::weighted(25))]);
    assert_eq!(
        said(&d),
        vec!["Restoring podinfo.prod canary weight 25 (the router had 0)"]
    );
    assert_eq!(d.state.canary_weight, 25);
    assert_eq!(d.state.failed_checks, 4);
    assert_eq!(d.next, Next::At(Time(60_000)));
}

#[test]
fn blue_green_routing_read_back_as_all_primary_is_not_restored() {
    let c = seed_as("linkerd", "    iterations: 3\n");
    let (mut s, mut o) = at_weight(0, 50_000);
    s.step = Some(2);
    s.iterations = 2;
    o.routing = Some(all_primary());
    o.now = Time(45_000);
    let d = act(decide(&c, &s, &o, &Answers::default()));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
}

/// Drives a rollout whose state write is lost at the round `lost`
/// (counted from 0 among the rounds that act): the effects of that round
/// are applied, the state before it is kept, as after a failed write.
/// Returns the verdict and how long the rollout took.
fn drive_losing_a_write(
    c: &ResolvedCanary,
    world: &mut World,
    state: &mut State,
    lost: usize,
    analysis: impl Fn(u32) -> Analysis,
) -> (Verdict, i64) {
    let mut now = 0;
    let mut acting = 0;
    for _ in 0..10_000 {
        let o = world.observe(now);
        // The checks see the traffic the router gives the canary: none at
        // weight 0, which is no values.
        let weight = world.routing.canary_weight();
        let seen = |_| {
            let mut a = analysis(weight);
            if weight == 0 {
                for m in &mut a.metrics {
                    m.value = Err(MetricFailure::NoValues);
                }
            }
            a
        };
        let d = round(c, state, &o, &seen);
        for a in &d.actions {
            world.apply(a);
        }
        let lose = !d.actions.is_empty() && {
            acting += 1;
            acting - 1 == lost
        };
        if !lose {
            *state = d.state;
        }
        match d.next {
            Next::At(t) => now = t.0.max(now),
            Next::Done(v) if !lose => return (v, now),
            // The run that lost the write ended with an error; the next
            // run decides again a moment later.
            Next::Now | Next::Done(_) => now += 1_000,
        }
    }
    panic!("no verdict after 10000 rounds: a lost write stranded the rollout");
}

#[test]
fn whichever_state_write_is_lost_the_rollout_ends_right() {
    let c = seed();
    let failing = |w: u32| {
        if w >= 15 {
            failing_success_rate(69.17)
        } else {
            passing()
        }
    };
    // Every acting round of a failing and of a healthy release.
    for lost in 0..25 {
        let (mut world, mut state) = World::released();
        let (v, took) = drive_losing_a_write(&c, &mut world, &mut state, lost, failing);
        assert!(
            matches!(v, Verdict::RolledBack { .. }),
            "write {lost} lost: {v:?}"
        );
        // Not stranded until the progress deadline (600 s): 70 s without
        // a lost write, and at most one more interval or two with one.
        assert!(took <= 100_000, "write {lost} lost: took {took} ms");
        assert_eq!(world.primary_revision, "r1", "write {lost} lost");
        assert_eq!(world.target_replicas, 0, "write {lost} lost");
        assert_eq!(world.routing, all_primary(), "write {lost} lost");

        let (mut world, mut state) = World::released();
        let (v, took) = drive_losing_a_write(&c, &mut world, &mut state, lost, |_| passing());
        assert_eq!(v, Verdict::Promoted, "write {lost} lost");
        assert!(took <= 230_000, "write {lost} lost: took {took} ms");
        assert_eq!(world.primary_revision, "r2", "write {lost} lost");
        assert_eq!(world.target_replicas, 0, "write {lost} lost");
        assert_eq!(world.routing, all_primary(), "write {lost} lost");
    }
}

#[test]
fn a_healthy_release_whose_rollback_write_was_lost_is_analysed_on_and_promoted() {
    // `--timeout` rolled the release back, and the write of that state was
    // lost: the next run finds traffic on the primary and the canary
    // scaled down while the state says the analysis is under way. The
    // step's routing comes back before its checks, which would otherwise
    // see no canary traffic at all.
    let c = seed();
    for stop_at in [3, 8, 20] {
        let (mut world, mut state) = World::released();
        let mut now = 0;
        let mut verdict = None;
        for round_no in 0..10_000 {
            let mut o = world.observe(now);
            let lose = round_no == stop_at;
            if lose {
                o.request = Some(Request {
                    kind: RequestKind::RollBack("timed out".into()),
                    by: "run".into(),
                    at: o.now,
                });
            }
            let weight = world.routing.canary_weight();
            let d = round(&c, &state, &o, &|_| {
                let mut a = passing();
                if weight == 0 {
                    for m in &mut a.metrics {
                        m.value = Err(MetricFailure::NoValues);
                    }
                }
                a
            });
            for a in &d.actions {
                world.apply(a);
            }
            if lose {
                assert!(matches!(d.next, Next::Done(Verdict::RolledBack { .. })));
                now += 1_000;
                continue;
            }
            state = d.state;
            match d.next {
                Next::Now => {}
                Next::At(t) => now = t.0.max(now),
                Next::Done(v) => {
                    verdict = Some(v);
                    break;
                }
            }
        }
        assert_eq!(
            verdict,
            Some(Verdict::Promoted),
            "stopped at round {stop_at}"
        );
        assert_eq!(world.primary_revision, "r2");
    }
}

#[test]
fn the_metrics_window_counts_the_intervals_a_provider_looks_back_over() {
    let mut c = seed();
    let longest = metrics_window(&c);
    assert!(longest > Duration::ZERO);
    // A Datadog or Dynatrace template asks for the last ten intervals.
    c.metrics[0].lookback_intervals = crate::provider::MetricProvider::Datadog.lookback_intervals();
    let interval = crate::spec::resolve::parse_duration(&c.metrics[0].interval).unwrap();
    assert_eq!(metrics_window(&c), longest.max(interval * 10));
    c.metrics[0].lookback_intervals = 0;
    assert_eq!(metrics_window(&c), longest);
}
