//! The decision core of `canary run`: from the resolved spec, the stored
//! state and what the driver observed, decide what happens next.
//!
//! Pure and synchronous: no I/O and no clock (the time is an input). A
//! round starts with no answers; while the engine needs to know something
//! only the outside world can tell (is a gate open, did the pre-rollout
//! hooks pass, what do the metrics say), [`decide`] returns
//! [`Step::Ask`] and the driver calls it again with the answer added. When
//! it has what it needs it returns [`Step::Act`]: the effects to apply, in
//! order, the new state to persist, the events to show, and when to decide
//! again. Asking changes nothing, so a round interrupted half way simply
//! starts again.
//!
//! The rules are Flagger's (strategy, weights, thresholds, gates, hook
//! semantics), with its timing improved: the first weight is set as soon as
//! the canary is ready and the pre-rollout hooks pass, and promotion follows
//! the last successful check at once, so an analysis takes
//! `steps x interval` instead of Flagger's `steps + 4` intervals.

use std::collections::BTreeMap;
use std::time::Duration;

use super::schedule::{self, TOTAL_WEIGHT};
use super::state::{Failure, MetricRecord, Phase, State};
use crate::queries::builtin;
use crate::spec::resolve::{HookType, MetricSource, ResolvedCanary, ResolvedMetric, Strategy};
use crate::time::Time;

/// How often readiness is re-checked while waiting (the driver also wakes
/// on watch events).
pub const READINESS_POLL: Duration = Duration::from_secs(1);

/// How often a closed gate is asked again, at most.
pub const GATE_POLL: Duration = Duration::from_secs(5);

/// A workload as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// Desired replicas (`spec.replicas`).
    pub desired: u32,
    /// Replicas running the current template and ready.
    pub ready: u32,
    /// Whether the controller has seen the latest spec and rolled it out
    /// to every replica.
    pub rolled_out: bool,
    /// The workload reports `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
}

impl Workload {
    /// Ready by Flagger's `*ReadyThreshold` percentage.
    pub fn is_ready(&self, threshold_percent: u32) -> bool {
        if !self.rolled_out {
            return false;
        }
        if self.desired == 0 {
            return false;
        }
        self.ready * 100 >= self.desired * threshold_percent.min(100)
    }
}

/// The router's current weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    pub primary: u32,
    pub canary: u32,
    pub mirrored: bool,
}

/// Everything the driver observed for this round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub now: Time,
    /// Revision of the target: canonical hash of its pod template and the
    /// ConfigMaps and Secrets it references.
    pub revision: String,
    pub target: Workload,
    /// `None` before initialisation created it.
    pub primary: Option<Workload>,
    /// `None` when the router object does not exist yet.
    pub routes: Option<Routes>,
    /// `--retry`: analyse a revision that already failed.
    pub retry: bool,
    /// An operator's request (`canary abort` ...) or the run's own stop
    /// (`--timeout`, Ctrl-C with rollback), to act on in this round.
    pub request: Option<Request>,
}

/// A request to act on a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: RequestKind,
    /// Who asked: `user@host pid N`, or the run itself.
    pub by: String,
    pub at: Time,
}

/// What a [`Request`] asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// Route all traffic to the primary, scale the canary down, end as
    /// `Aborted`.
    Abort,
    /// Skip the remaining analysis (and an unapproved promotion gate).
    Promote,
    /// Hold the weight; no checks until resumed.
    Pause,
    Resume,
    /// Roll back for this reason, as a failed analysis would.
    RollBack(String),
}

impl RequestKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestKind::Abort => "abort",
            RequestKind::Promote => "promote",
            RequestKind::Pause => "pause",
            RequestKind::Resume => "resume",
            RequestKind::RollBack(_) => "rollback",
        }
    }

    /// An operator's request by its [`as_str`](Self::as_str) name, as
    /// stored on the primary (the run's own rollback is never stored).
    pub fn from_action(action: &str) -> Option<RequestKind> {
        match action {
            "abort" => Some(RequestKind::Abort),
            "promote" => Some(RequestKind::Promote),
            "pause" => Some(RequestKind::Pause),
            "resume" => Some(RequestKind::Resume),
            _ => None,
        }
    }

    /// Whether a canary in `phase` (paused or not) can honour the request;
    /// `Err` says why not.
    pub fn applies(&self, phase: Phase, paused: bool) -> Result<(), String> {
        let analysing = matches!(
            phase,
            Phase::Waiting | Phase::Progressing | Phase::WaitingPromotion
        );
        let promoting = matches!(phase, Phase::Promoting | Phase::Finalising);
        match self {
            RequestKind::Abort | RequestKind::RollBack(_) | RequestKind::Promote if analysing => {
                Ok(())
            }
            RequestKind::Abort | RequestKind::RollBack(_) if promoting => Err(format!(
                "it is {}: the primary already runs the new revision",
                phase.as_str()
            )),
            RequestKind::Promote if promoting => {
                Err(format!("it is already being promoted ({})", phase.as_str()))
            }
            RequestKind::Pause if analysing && paused => Err("it is already paused".into()),
            RequestKind::Pause if analysing => Ok(()),
            RequestKind::Resume if paused => Ok(()),
            RequestKind::Resume if analysing => Err("it is not paused".into()),
            _ => Err(format!(
                "no analysis is under way (it is {})",
                phase.as_str()
            )),
        }
    }
}

/// Something only the outside world can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Question {
    /// Are all gates of this type open?
    Gate(HookType),
    /// Does any rollback hook ask to roll back?
    Rollback,
    /// Do the pre-rollout hooks pass?
    PreRollout,
    /// Run the rollout hooks, then query every metric.
    Analysis,
}

/// A hook call's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Passed,
    /// Which hook failed and why.
    Failed {
        hook: String,
        reason: String,
    },
}

/// One metric's raw query result.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub name: String,
    /// The query's value, or why there is none (error, no data).
    pub value: Result<f64, String>,
}

/// The answer to [`Question::Analysis`].
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The rollout hooks' outcome; metrics are not queried when one fails.
    pub hooks: HookOutcome,
    pub metrics: Vec<MetricValue>,
}

/// Answers gathered during one round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answers {
    pub gates: BTreeMap<HookType, bool>,
    pub rollback: Option<bool>,
    pub pre_rollout: Option<HookOutcome>,
    pub analysis: Option<Analysis>,
}

/// What scaling the target means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Back to the replicas it needs for an analysis.
    Up,
    Zero,
}

/// An effect for the driver to apply. Every effect is idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create what is missing: `<target>-primary` as a copy of the target,
    /// the apex, primary and canary Services, the primary autoscaler, the
    /// router at 100/0.
    Initialize,
    ScaleTarget(Scale),
    SetRoutes(Routes),
    /// Copy the target's pod template (and the ConfigMaps and Secrets it
    /// references) to the primary.
    Promote,
    /// Notify-only hooks (`post-rollout`); failures are reported, not acted on.
    RunHooks(HookType),
}

/// Why a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Initialisation finished; the next change starts an analysis.
    Initialized,
    /// The target runs the promoted revision: nothing to do.
    NoChange,
    Promoted,
    RolledBack {
        reason: String,
    },
    /// This revision failed before; `--retry` analyses it again.
    AlreadyFailed(Failure),
    /// `canary abort`: traffic back on the primary, the canary scaled down.
    Aborted {
        by: String,
    },
    /// `spec.suspend` is set: nothing was initialised or analysed.
    Suspended,
}

/// When to decide again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Right after applying the actions (and observing again).
    Now,
    At(Time),
    Done(Verdict),
}

/// The outcome of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub state: State,
    pub actions: Vec<Action>,
    /// Messages for people, in Flagger's words.
    pub events: Vec<String>,
    pub next: Next,
    /// What the rollout waits for besides time (readiness, a gate, a
    /// resume), for people.
    pub waiting: Option<String>,
}

/// What [`decide`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Ask(Question),
    Act(Box<Decision>),
}

/// Decides the next step of one canary.
pub fn decide(c: &ResolvedCanary, prev: &State, o: &Observed, a: &Answers) -> Step {
    Round {
        c,
        o,
        a,
        d: Decision {
            state: prev.clone(),
            actions: Vec::new(),
            events: Vec::new(),
            next: Next::Now,
            waiting: None,
        },
    }
    .run()
}

struct Round<'a> {
    c: &'a ResolvedCanary,
    o: &'a Observed,
    a: &'a Answers,
    d: Decision,
}

/// Internal: either a question or a finished decision.
type Flow = Result<(), Question>;

impl Round<'_> {
    fn run(mut self) -> Step {
        match self.step() {
            Ok(()) => Step::Act(Box::new(self.d)),
            Err(q) => Step::Ask(q),
        }
    }

    fn id(&self) -> String {
        format!("{}.{}", self.c.name, self.c.namespace)
    }

    fn target_id(&self) -> String {
        format!("{}.{}", self.c.target.name, self.c.namespace)
    }

    fn now(&self) -> Time {
        self.o.now
    }

    fn event(&mut self, msg: impl Into<String>) {
        self.d.events.push(msg.into());
    }

    fn phase(&mut self, p: Phase) {
        let now = self.now();
        self.d.state.set_phase(p, now);
    }

    fn wait(&mut self, d: Duration) {
        self.d.next = Next::At(self.now().plus(d));
    }

    fn gate(&self, kind: HookType) -> Result<bool, Question> {
        if self.c.hooks(kind).next().is_none() {
            return Ok(true);
        }
        self.a.gates.get(&kind).copied().ok_or(Question::Gate(kind))
    }

    fn step(&mut self) -> Flow {
        if self.c.suspended {
            // As Flagger: a suspended canary is not reconciled at all, and
            // an analysis under way holds where it is until unsuspended.
            self.d.next = Next::Done(Verdict::Suspended);
            return Ok(());
        }
        let s = &self.d.state;
        if self.o.primary.is_none() || s.phase == Phase::Initializing {
            return self.initialize();
        }
        if let Some(r) = &self.o.request
            && self.request(r)
        {
            return Ok(());
        }
        if let Some(p) = &self.d.state.paused
            && self.d.state.phase.is_active()
        {
            // Hold everything, the progress deadline included; the driver
            // wakes on the resume request.
            self.d.waiting = Some(format!("`canary resume` (paused by {})", p.by));
            self.wait(GATE_POLL);
            return Ok(());
        }
        let s = &self.d.state;
        match s.phase {
            Phase::Initializing => unreachable!("handled above"),
            Phase::Initialized
            | Phase::Succeeded
            | Phase::Failed
            | Phase::Aborted
            | Phase::Waiting => self.idle(),
            Phase::Progressing | Phase::WaitingPromotion => self.progressing(),
            Phase::Promoting => self.promoting(),
            Phase::Finalising => {
                self.finalise();
                Ok(())
            }
        }
    }

    /// Acts on a request; `true` when that decided the round.
    fn request(&mut self, r: &Request) -> bool {
        let id = self.id();
        let phase = self.d.state.phase;
        if let Err(why) = r.kind.applies(phase, self.d.state.paused.is_some()) {
            if matches!(r.kind, RequestKind::RollBack(_)) {
                // The run's own stop: nothing under way to roll back.
                return false;
            }
            self.event(format!(
                "Ignored {} requested by {} for {id}: {why}",
                r.kind.as_str(),
                r.by
            ));
            return false;
        }
        let now = self.now();
        match &r.kind {
            RequestKind::Abort => {
                self.event(format!(
                    "Aborting {id} as requested by {}: routing all traffic to the primary",
                    r.by
                ));
                self.roll_back(format!("aborted by {}", r.by), Phase::Aborted);
                self.d.next = Next::Done(Verdict::Aborted { by: r.by.clone() });
                true
            }
            RequestKind::RollBack(reason) => {
                self.event(format!("Rolling back {id} {reason}"));
                self.rollback(reason.clone());
                true
            }
            RequestKind::Promote => {
                self.d.state.paused = None;
                self.event(format!(
                    "Promotion of {id} requested by {}: skipping the rest of the analysis",
                    r.by
                ));
                self.promote();
                true
            }
            RequestKind::Pause => {
                self.d.state.paused = Some(super::state::Paused {
                    by: r.by.clone(),
                    since: now,
                });
                let msg = format!(
                    "Paused {id} at canary weight {} as requested by {}",
                    self.d.state.canary_weight, r.by
                );
                self.d.state.record(now, &msg, Vec::new());
                self.event(msg);
                self.d.waiting = Some(format!("`canary resume` (paused by {})", r.by));
                self.wait(GATE_POLL);
                true
            }
            RequestKind::Resume => {
                self.d.state.paused = None;
                // A full interval at the current weight before the next checks.
                if self.d.state.next_check.is_some() {
                    self.d.state.next_check = Some(now.plus(self.c.interval));
                }
                let msg = format!("Resumed {id} as requested by {}", r.by);
                self.d.state.record(now, &msg, Vec::new());
                self.event(msg);
                false
            }
        }
    }

    fn initialize(&mut self) -> Flow {
        self.phase(Phase::Initializing);
        let Some(primary) = &self.o.primary else {
            self.d.actions.push(Action::Initialize);
            self.event(format!(
                "Initializing {}: creating {}-primary, services and router",
                self.id(),
                self.c.target.name
            ));
            return Ok(());
        };
        // Re-applying is idempotent and repairs a half-finished first run.
        if self.o.routes.is_none() {
            self.d.actions.push(Action::Initialize);
            return Ok(());
        }
        if !primary.is_ready(self.c.primary_ready_threshold) {
            self.d.waiting = Some(readiness("primary", primary));
            self.wait(READINESS_POLL);
            return Ok(());
        }
        self.d.actions.push(Action::ScaleTarget(Scale::Zero));
        let rev = self.o.revision.clone();
        self.d.state.last_applied_spec = Some(rev.clone());
        self.d.state.last_promoted_spec = Some(rev);
        self.phase(Phase::Initialized);
        let msg = format!("Initialization done! {}", self.id());
        self.d.state.record(self.now(), &msg, Vec::new());
        self.event(msg);
        self.d.next = Next::Done(Verdict::Initialized);
        Ok(())
    }

    /// No analysis under way: start one if the target changed.
    fn idle(&mut self) -> Flow {
        let s = &self.d.state;
        let rev = &self.o.revision;
        if s.last_promoted_spec.as_ref() == Some(rev) {
            // Back to the promoted revision (or never changed): as Flagger,
            // nothing to analyse. A Waiting canary whose change was reverted
            // goes back to rest.
            if s.phase == Phase::Waiting {
                self.phase(Phase::Succeeded);
            }
            self.d.next = Next::Done(Verdict::NoChange);
            return Ok(());
        }
        if matches!(s.phase, Phase::Failed | Phase::Aborted)
            && s.last_applied_spec.as_ref() == Some(rev)
            && !self.o.retry
            && let Some(f) = s.failure.clone()
        {
            self.d.next = Next::Done(Verdict::AlreadyFailed(f));
            return Ok(());
        }
        if !self.gate(HookType::ConfirmRollout)? {
            if self.d.state.phase != Phase::Waiting {
                self.event(format!(
                    "Halt {} advancement waiting for approval {}",
                    self.id(),
                    hook_names(self.c, HookType::ConfirmRollout)
                ));
            }
            self.phase(Phase::Waiting);
            self.d.waiting = Some(format!(
                "rollout approval ({})",
                hook_names(self.c, HookType::ConfirmRollout)
            ));
            self.wait(GATE_POLL.min(self.c.interval));
            return Ok(());
        }
        self.start_analysis();
        Ok(())
    }

    fn start_analysis(&mut self) {
        let now = self.now();
        let s = &mut self.d.state;
        s.canary_weight = 0;
        s.failed_checks = 0;
        s.iterations = 0;
        s.last_applied_spec = Some(self.o.revision.clone());
        s.rollout_started = Some(now);
        s.step_started = None;
        s.next_check = None;
        s.awaiting_gate = None;
        s.failure = None;
        self.phase(Phase::Progressing);
        self.d.actions.push(Action::ScaleTarget(Scale::Up));
        let msg = format!("New revision detected! Scaling up {}", self.target_id());
        self.d.state.record(now, &msg, Vec::new());
        self.event(msg);
    }

    fn progressing(&mut self) -> Flow {
        // A new revision during the analysis starts it over.
        if self.d.state.last_applied_spec.as_ref() != Some(&self.o.revision) {
            self.d.actions.push(Action::SetRoutes(all_primary()));
            self.event(format!(
                "New revision detected! Restarting analysis for {}",
                self.target_id()
            ));
            self.start_analysis();
            return Ok(());
        }
        // The router is the truth for the current weight.
        if let Some(r) = self.o.routes {
            self.d.state.canary_weight = r.canary;
        }

        if !self.o.target.is_ready(self.c.canary_ready_threshold) {
            let started = self.d.state.rollout_started.unwrap_or(self.now());
            let deadline = Duration::from_secs(self.c.progress_deadline_seconds);
            if self.o.target.deadline_exceeded || self.now().since(started) > deadline {
                let reason = format!(
                    "progress deadline exceeded: {} is not ready after {}s",
                    self.target_id(),
                    self.c.progress_deadline_seconds
                );
                self.event(format!("Rolling back {} {reason}", self.id()));
                self.rollback(reason);
                return Ok(());
            }
            self.d.waiting = Some(readiness("canary", &self.o.target));
            self.wait(READINESS_POLL);
            return Ok(());
        }

        if self.c.skip_analysis {
            self.event(format!(
                "Promotion with analysis skipped for {}",
                self.target_id()
            ));
            self.d.actions.push(Action::SetRoutes(all_primary()));
            self.promote();
            return Ok(());
        }

        let Some(next_check) = self.d.state.next_check else {
            return self.first_step();
        };
        if self.now() < next_check {
            if let Some(g) = self.d.state.awaiting_gate {
                // The last checks passed; only the gate holds the step.
                return self.after_gate(g);
            }
            self.d.next = Next::At(next_check);
            return Ok(());
        }
        self.d.state.awaiting_gate = None;

        if self.c.hooks(HookType::Rollback).next().is_some() {
            let roll_back = self.a.rollback.ok_or(Question::Rollback)?;
            if roll_back {
                self.event(format!("Rolling back {} manual webhook invoked", self.id()));
                self.rollback("a rollback webhook asked for it".to_string());
                return Ok(());
            }
        }
        let analysis = self.a.analysis.clone().ok_or(Question::Analysis)?;
        let (passed, records, halts) = self.judge(&analysis);
        if !passed {
            self.d.state.failed_checks += 1;
            for h in &halts {
                self.event(h.clone());
            }
            let msg = halts.join("; ");
            self.d.state.record(self.now(), msg, records);
            if self.d.state.failed_checks >= self.c.threshold {
                self.event(format!(
                    "Rolling back {} failed checks threshold reached {}",
                    self.id(),
                    self.d.state.failed_checks
                ));
                self.rollback(format!(
                    "failed checks threshold reached {}",
                    self.d.state.failed_checks
                ));
                return Ok(());
            }
            self.schedule_check();
            return Ok(());
        }
        self.d.state.record(self.now(), "checks passed", records);
        self.advance()
    }

    /// Pre-rollout hooks, then the first routing.
    fn first_step(&mut self) -> Flow {
        if self.c.hooks(HookType::PreRollout).next().is_some() {
            match self.a.pre_rollout.clone().ok_or(Question::PreRollout)? {
                HookOutcome::Passed => {
                    for h in self.c.hooks(HookType::PreRollout) {
                        self.d
                            .events
                            .push(format!("Pre-rollout check {} passed", h.name));
                    }
                }
                HookOutcome::Failed { hook, reason } => {
                    self.d.state.failed_checks += 1;
                    let msg = format!(
                        "Halt {} advancement pre-rollout check {hook} failed {reason}",
                        self.id()
                    );
                    self.event(msg.clone());
                    self.d.state.record(self.now(), msg, Vec::new());
                    if self.d.state.failed_checks >= self.c.threshold {
                        self.event(format!(
                            "Rolling back {} failed checks threshold reached {}",
                            self.id(),
                            self.d.state.failed_checks
                        ));
                        self.rollback(format!("pre-rollout check {hook} failed"));
                        return Ok(());
                    }
                    // Try again one interval later.
                    self.wait(self.c.interval);
                    return Ok(());
                }
            }
        }
        self.event(format!("Starting canary analysis for {}", self.target_id()));
        self.advance()
    }

    fn schedule_check(&mut self) {
        let at = self.now().plus(self.c.interval);
        self.d.state.next_check = Some(at);
        self.d.next = Next::At(at);
    }

    /// The checks of the current step passed (or there is no step yet):
    /// move to the next step, or promote.
    fn advance(&mut self) -> Flow {
        match self.next_move() {
            Move::Route {
                routes,
                gate,
                message,
            } => {
                if let Some(g) = gate
                    && !self.gate_open_or_wait(g)?
                {
                    return Ok(());
                }
                self.apply_route(routes, message);
                Ok(())
            }
            Move::Promote => {
                if !self.gate_open_or_wait(HookType::ConfirmPromotion)? {
                    return Ok(());
                }
                self.promote();
                Ok(())
            }
            Move::PromoteUngated => {
                self.promote();
                Ok(())
            }
        }
    }

    /// Asks a gate; when closed, holds the step and polls it.
    fn gate_open_or_wait(&mut self, g: HookType) -> Result<bool, Question> {
        if self.gate(g)? {
            return Ok(true);
        }
        if self.d.state.awaiting_gate != Some(g) {
            let what = match g {
                HookType::ConfirmPromotion => "promotion approval",
                HookType::ConfirmTrafficIncrease => "traffic increase approval",
                _ => "approval",
            };
            self.event(format!(
                "Halt {} advancement waiting for {what} {}",
                self.id(),
                hook_names(self.c, g)
            ));
        }
        if g == HookType::ConfirmPromotion {
            self.phase(Phase::WaitingPromotion);
        }
        self.d.state.awaiting_gate = Some(g);
        self.d.waiting = Some(gate_wait(self.c, g));
        if self.d.state.next_check.is_none_or(|t| t <= self.now()) {
            self.d.state.next_check = Some(self.now().plus(self.c.interval));
        }
        let poll = self.now().plus(GATE_POLL.min(self.c.interval));
        let check = self.d.state.next_check.unwrap_or(poll);
        self.d.next = Next::At(poll.min(check));
        Ok(false)
    }

    /// Re-asks the gate a passed step waits for.
    fn after_gate(&mut self, g: HookType) -> Flow {
        if !self.gate(g)? {
            self.d.waiting = Some(gate_wait(self.c, g));
            let poll = self.now().plus(GATE_POLL.min(self.c.interval));
            let check = self.d.state.next_check.unwrap_or(poll);
            self.d.next = Next::At(poll.min(check));
            return Ok(());
        }
        self.d.state.awaiting_gate = None;
        if self.d.state.phase == Phase::WaitingPromotion {
            self.phase(Phase::Progressing);
        }
        self.advance()
    }

    fn apply_route(&mut self, routes: Routes, message: String) {
        self.d.state.awaiting_gate = None;
        self.d.state.canary_weight = routes.canary;
        if matches!(
            self.c.strategy,
            Strategy::AbTesting | Strategy::BlueGreen { .. }
        ) {
            self.d.state.iterations += 1;
        }
        self.d.state.step_started = Some(self.now());
        self.d.actions.push(Action::SetRoutes(routes));
        self.d.state.record(self.now(), &message, Vec::new());
        self.event(message);
        self.schedule_check();
    }

    fn next_move(&self) -> Move {
        let s = &self.d.state;
        let id = self.id();
        match self.c.strategy {
            Strategy::Canary { mirror } => {
                let current = s.canary_weight;
                let mirrored = self.o.routes.is_some_and(|r| r.mirrored);
                if mirror && current == 0 && !mirrored {
                    return Move::Route {
                        routes: Routes {
                            primary: TOTAL_WEIGHT,
                            canary: 0,
                            mirrored: true,
                        },
                        gate: None,
                        message: format!("Advance {id} mirroring traffic to the canary"),
                    };
                }
                if current < self.c.max_weight {
                    let next = schedule::canary_weights(
                        self.c.step_weight,
                        &self.c.step_weights,
                        self.c.max_weight,
                    )
                    .into_iter()
                    .find(|w| *w > current)
                    .unwrap_or(TOTAL_WEIGHT);
                    return Move::Route {
                        routes: Routes {
                            primary: TOTAL_WEIGHT - next,
                            canary: next,
                            mirrored: false,
                        },
                        gate: Some(HookType::ConfirmTrafficIncrease),
                        message: format!("Advance {id} canary weight {next}"),
                    };
                }
                Move::Promote
            }
            Strategy::AbTesting => {
                if s.iterations < self.c.iterations {
                    Move::Route {
                        routes: Routes {
                            primary: 0,
                            canary: TOTAL_WEIGHT,
                            mirrored: false,
                        },
                        gate: None,
                        message: format!(
                            "Advance {id} canary iteration {}/{}",
                            s.iterations + 1,
                            self.c.iterations
                        ),
                    }
                } else {
                    Move::Promote
                }
            }
            Strategy::BlueGreen { mirror } => {
                let n = self.c.iterations;
                if s.iterations < n {
                    let routes = if mirror && self.c.routes_traffic() {
                        Routes {
                            primary: TOTAL_WEIGHT,
                            canary: 0,
                            mirrored: true,
                        }
                    } else {
                        all_primary()
                    };
                    Move::Route {
                        routes,
                        gate: None,
                        message: format!("Advance {id} canary iteration {}/{n}", s.iterations + 1),
                    }
                } else if s.iterations == n && self.c.routes_traffic() {
                    // Flagger checks once more with all traffic on the
                    // canary before promoting; the gate guards that switch.
                    Move::Route {
                        routes: Routes {
                            primary: 0,
                            canary: TOTAL_WEIGHT,
                            mirrored: false,
                        },
                        gate: Some(HookType::ConfirmPromotion),
                        message: if mirror {
                            "Stop traffic mirroring and route all traffic to canary".to_string()
                        } else {
                            "Routing all traffic to canary".to_string()
                        },
                    }
                } else if self.c.routes_traffic() {
                    Move::PromoteUngated
                } else {
                    Move::Promote
                }
            }
        }
    }

    fn promote(&mut self) {
        self.d.state.awaiting_gate = None;
        // The first gradual promotion shift follows the primary's readiness
        // at once.
        self.d.state.next_check = None;
        self.d.actions.push(Action::Promote);
        self.phase(Phase::Promoting);
        let msg = format!(
            "Copying {} template spec to {}-primary.{}",
            self.target_id(),
            self.c.target.name,
            self.c.namespace
        );
        self.d.state.record(self.now(), &msg, Vec::new());
        self.event(msg);
        self.d.next = Next::Now;
    }

    /// The primary runs the new template: once it is ready, route traffic
    /// back to it, at once or by `stepWeightPromotion`.
    fn promoting(&mut self) -> Flow {
        let primary = self.o.primary.clone().unwrap_or_default();
        if !primary.is_ready(self.c.primary_ready_threshold) {
            self.d.waiting = Some(readiness("primary", &primary));
            self.wait(READINESS_POLL);
            return Ok(());
        }
        let current = self.o.routes.map(|r| r.canary).unwrap_or(0);
        let step = self.c.step_weight_promotion;
        if !self.c.routes_traffic() || step == 0 || current == 0 {
            if current > 0 || self.o.routes.is_some_and(|r| r.mirrored) {
                self.event("Routing all traffic to primary");
            }
            self.d.actions.push(Action::SetRoutes(all_primary()));
            self.d.state.canary_weight = 0;
            self.phase(Phase::Finalising);
            self.d.next = Next::Now;
            return Ok(());
        }
        if let Some(due) = self.d.state.next_check
            && self.now() < due
        {
            self.d.next = Next::At(due);
            return Ok(());
        }
        let canary = current.saturating_sub(step);
        let routes = Routes {
            primary: TOTAL_WEIGHT - canary,
            canary,
            mirrored: false,
        };
        self.d.actions.push(Action::SetRoutes(routes));
        self.d.state.canary_weight = canary;
        self.d.state.step_started = Some(self.now());
        self.event(format!(
            "Advance {} primary weight {}",
            self.id(),
            routes.primary
        ));
        if canary == 0 {
            self.phase(Phase::Finalising);
            self.d.next = Next::Now;
        } else {
            self.schedule_check();
        }
        Ok(())
    }

    fn finalise(&mut self) {
        self.d.actions.push(Action::ScaleTarget(Scale::Zero));
        if self.c.hooks(HookType::PostRollout).next().is_some() {
            self.d.actions.push(Action::RunHooks(HookType::PostRollout));
        }
        self.d.state.last_promoted_spec = self.d.state.last_applied_spec.clone();
        self.d.state.canary_weight = 0;
        self.d.state.next_check = None;
        self.d.state.step_started = None;
        self.phase(Phase::Succeeded);
        let msg = format!("Promotion completed! Scaling down {}", self.target_id());
        self.d.state.record(self.now(), &msg, Vec::new());
        self.event(msg);
        self.d.next = Next::Done(Verdict::Promoted);
    }

    fn rollback(&mut self, reason: String) {
        self.roll_back(reason.clone(), Phase::Failed);
        self.d.next = Next::Done(Verdict::RolledBack { reason });
    }

    /// Traffic back on the primary and the canary scaled down, ending in
    /// `phase` (`Failed`, or `Aborted`).
    fn roll_back(&mut self, reason: String, phase: Phase) {
        self.d.actions.push(Action::SetRoutes(all_primary()));
        self.d.actions.push(Action::ScaleTarget(Scale::Zero));
        if self.c.hooks(HookType::PostRollout).next().is_some() {
            self.d.actions.push(Action::RunHooks(HookType::PostRollout));
        }
        let now = self.now();
        let s = &mut self.d.state;
        s.canary_weight = 0;
        s.next_check = None;
        s.step_started = None;
        s.awaiting_gate = None;
        s.paused = None;
        s.failure = Some(Failure {
            revision: self.o.revision.clone(),
            time: now,
            reason,
        });
        self.phase(phase);
        let msg = if phase == Phase::Aborted {
            format!("Canary aborted! Scaling down {}", self.target_id())
        } else {
            format!("Canary failed! Scaling down {}", self.target_id())
        };
        self.d.state.record(now, &msg, Vec::new());
        self.event(msg);
    }

    /// Judges an analysis: passed, the records for the history, and
    /// Flagger's "Halt" lines for what failed.
    fn judge(&self, a: &Analysis) -> (bool, Vec<MetricRecord>, Vec<String>) {
        let id = self.id();
        if let HookOutcome::Failed { hook, reason } = &a.hooks {
            return (
                false,
                Vec::new(),
                vec![format!(
                    "Halt {id} advancement external check {hook} failed {reason}"
                )],
            );
        }
        let mut records = Vec::new();
        let mut halts = Vec::new();
        for m in &self.c.metrics {
            let raw = a
                .metrics
                .iter()
                .find(|v| v.name == m.name)
                .map(|v| v.value.clone())
                .unwrap_or_else(|| Err("not queried".to_string()));
            let (record, halt) = judge_metric(self.c, m, raw, &id);
            records.push(record);
            halts.extend(halt);
        }
        (halts.is_empty(), records, halts)
    }
}

enum Move {
    Route {
        routes: Routes,
        gate: Option<HookType>,
        message: String,
    },
    Promote,
    /// Promotion whose gate was already passed (blue/green's switch).
    PromoteUngated,
}

fn all_primary() -> Routes {
    Routes {
        primary: TOTAL_WEIGHT,
        canary: 0,
        mirrored: false,
    }
}

/// "canary ready (1/2 replicas)", for what a rollout waits for.
fn readiness(which: &str, w: &Workload) -> String {
    if w.rolled_out {
        format!("{which} ready ({}/{} replicas)", w.ready, w.desired)
    } else {
        format!("{which} rollout ({}/{} replicas ready)", w.ready, w.desired)
    }
}

fn gate_wait(c: &ResolvedCanary, g: HookType) -> String {
    let what = match g {
        HookType::ConfirmPromotion => "promotion approval",
        HookType::ConfirmTrafficIncrease => "traffic increase approval",
        _ => "approval",
    };
    format!("{what} ({}) or `canary promote`", hook_names(c, g))
}

fn hook_names(c: &ResolvedCanary, kind: HookType) -> String {
    c.hooks(kind)
        .map(|h| h.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The built-in query Flagger runs for metric `m` of `c`, if it is one.
pub fn builtin_of(
    c: &ResolvedCanary,
    m: &ResolvedMetric,
) -> Option<&'static builtin::BuiltinQuery> {
    match m.source {
        MetricSource::Builtin => c.provider.and_then(|p| builtin::builtin_query(p, &m.name)),
        _ => None,
    }
}

/// A metric's bounds in the unit its values are compared in (whole
/// milliseconds for a built-in duration).
pub fn thresholds(
    builtin: Option<&builtin::BuiltinQuery>,
    m: &ResolvedMetric,
) -> (Option<f64>, Option<f64>) {
    match builtin {
        Some(b) if b.unit == "ms" => (
            m.min.map(builtin::duration_threshold_ms),
            m.max.map(builtin::duration_threshold_ms),
        ),
        _ => (m.min, m.max),
    }
}

/// Checks one metric value against its thresholds as Flagger does, and
/// words a failure the way Flagger's log does.
pub fn judge_metric(
    c: &ResolvedCanary,
    m: &ResolvedMetric,
    raw: Result<f64, String>,
    id: &str,
) -> (MetricRecord, Option<String>) {
    let builtin = builtin_of(c, m);
    let (min, max) = thresholds(builtin, m);
    let value = match raw {
        Ok(v) if v.is_nan() => Err("no values found".to_string()),
        other => other,
    };
    let value = match value {
        Ok(v) => v,
        Err(e) => {
            let halt = if e.contains("no values") {
                format!(
                    "Halt advancement no values found for {} metric {} probably {id} is not \
                     receiving traffic",
                    c.provider.map(|p| p.name()).unwrap_or("metrics"),
                    m.name
                )
            } else {
                format!("Halt {id} advancement {} query failed: {e}", m.name)
            };
            return (
                MetricRecord {
                    name: m.name.clone(),
                    value: None,
                    passed: false,
                    error: Some(e),
                    min,
                    max,
                },
                Some(halt),
            );
        }
    };
    let value = match builtin {
        Some(b) => b.value_in_unit(value),
        None => value,
    };
    let below = min.is_some_and(|lo| value < lo);
    let above = max.is_some_and(|hi| value > hi);
    let passed = !below && !above;
    let record = MetricRecord {
        name: m.name.clone(),
        value: Some(value),
        passed,
        error: None,
        min,
        max,
    };
    if passed {
        return (record, None);
    }
    let (op, bound) = if below {
        ("<", min.unwrap_or_default())
    } else {
        (">", max.unwrap_or_default())
    };
    let halt = match builtin.map(|b| b.metric) {
        Some("request-success-rate") => format!(
            "Halt {id} advancement success rate {:.2}% {op} {}%",
            value,
            fmt_num(bound)
        ),
        Some("request-duration") => format!(
            "Halt {id} advancement request duration {} {op} {}",
            fmt_ms(value),
            fmt_ms(bound)
        ),
        _ => format!(
            "Halt {id} advancement {} {} {op} {}",
            m.name,
            fmt_num(value),
            fmt_num(bound)
        ),
    };
    (record, Some(halt))
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Milliseconds the way Go prints a `time.Duration`: `500ms`, `1.2s`.
fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", fmt_num(ms / 1000.0))
    } else {
        format!("{}ms", fmt_num(ms))
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
