//! The decision core of `canary run`: from the resolved spec, the stored
//! state and what the driver observed, decide what happens next.
//!
//! Pure and synchronous: no I/O and no clock (the time is an input). A
//! round starts with no answers; while the engine needs to know something
//! only the outside world can tell (is a gate open, did the pre-rollout
//! hooks pass, what do the metrics say), [`decide`] returns
//! [`Step::Ask`] and the driver calls it again with the answer added. When
//! it has what it needs it returns [`Step::Act`]: the effects to apply, in
//! order, the new state to persist, the [`Message`]s to show, and when to
//! decide again. Asking changes nothing, so a round interrupted half way
//! simply starts again.
//!
//! What a rollout routes, and which gates it passes, is not decided here:
//! the engine walks the rollout's [`Schedule`] by the step number kept in
//! the state, applying each step's [`Routing`] once its gate is open and
//! its predecessor's checks passed, then promotes through the schedule's
//! promotion gate and promotion weights. The rules around the walk are
//! Flagger's (readiness, thresholds, hook semantics, rollback), with its
//! timing improved: the first step is applied as soon as the canary is
//! ready and the pre-rollout hooks pass, and promotion follows the last
//! successful check at once, so an analysis takes `steps x interval`
//! instead of Flagger's `steps + 4` intervals.

use std::collections::BTreeMap;
use std::time::Duration;

use super::message::{Message, RollbackCause, Wording};
use super::schedule::{self, Routing, Schedule};
use super::state::{Failure, MetricRecord, Phase, State};
use crate::queries::builtin;
use crate::spec::resolve::{HookType, MetricSource, ResolvedCanary, ResolvedMetric};
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
    /// What the router does now, as it reports it (it is the truth for
    /// the current weights, as in Flagger); `None` when the router object
    /// does not exist yet.
    pub routing: Option<Routing>,
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
    /// A hook could not be reached (the service proxy or the connection
    /// failed, not the hook): no verdict either way.
    Unreachable {
        hook: String,
        reason: String,
    },
}

/// One metric's raw query result.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub name: String,
    /// The query's value, or why there is none.
    pub value: Result<f64, MetricFailure>,
}

/// Why a metric has no value. No values and a failed query fail the
/// check, as in Flagger, worded apart; a server that could not be reached
/// does not count either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricFailure {
    /// The query ran and found no data: usually no traffic reached the
    /// canary.
    NoValues,
    /// The query could not be made or was refused; the error's text.
    Query(String),
    /// The metrics server could not be reached: the API server's service
    /// proxy failed, or the connection did. Not counted.
    Unreachable(String),
}

impl std::fmt::Display for MetricFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricFailure::NoValues => f.write_str("no values found"),
            MetricFailure::Query(e) | MetricFailure::Unreachable(e) => f.write_str(e),
        }
    }
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
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create what is missing of the backends: `<target>-primary` as a
    /// copy of the target, the primary and canary Services, the primary
    /// autoscaler. Traffic is not routed to them yet.
    Initialize,
    /// Route to the primary, once it is ready: the apex Service selects
    /// its pods and the router's objects send it all traffic (created at
    /// 100/0 when missing). Also repairs what a half-finished first run
    /// left out of [`Action::Initialize`].
    Expose,
    ScaleTarget(Scale),
    SetRouting(Routing),
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
    pub events: Vec<Message>,
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

    fn event(&mut self, m: Message) {
        self.d.events.push(m);
    }

    /// Says `m` and keeps it in the history.
    fn event_and_record(&mut self, m: Message) {
        self.d.state.record(self.now(), m.to_string(), Vec::new());
        self.event(m);
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
        if s.phase == Phase::Terminating {
            // `canary revert` is taking the canary apart: nothing may build
            // it up again, not even a request. The driver refuses such a
            // canary before asking; asked anyway, everything holds.
            self.d.waiting = Some("`canary revert` to finish".to_string());
            self.wait(GATE_POLL);
            return Ok(());
        }
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
            Phase::Initializing | Phase::Terminating => unreachable!("handled above"),
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
        let canary = self.id();
        let phase = self.d.state.phase;
        if let Err(why) = r.kind.applies(phase, self.d.state.paused.is_some()) {
            if matches!(r.kind, RequestKind::RollBack(_)) {
                // The run's own stop: nothing under way to roll back.
                return false;
            }
            self.event(Message::Ignored {
                canary,
                request: r.kind.as_str().to_string(),
                by: r.by.clone(),
                why,
            });
            return false;
        }
        let now = self.now();
        match &r.kind {
            RequestKind::Abort => {
                self.event(Message::Aborting {
                    canary,
                    by: r.by.clone(),
                });
                self.roll_back(format!("aborted by {}", r.by), Phase::Aborted);
                self.d.next = Next::Done(Verdict::Aborted { by: r.by.clone() });
                true
            }
            RequestKind::RollBack(reason) => {
                self.event(Message::RollingBack {
                    canary,
                    reason: reason.clone(),
                    cause: RollbackCause::Requested,
                });
                self.rollback(reason.clone());
                true
            }
            RequestKind::Promote => {
                self.d.state.paused = None;
                self.event(Message::PromotionRequested {
                    canary,
                    by: r.by.clone(),
                });
                self.promote();
                true
            }
            RequestKind::Pause => {
                self.d.state.paused = Some(super::state::Paused {
                    by: r.by.clone(),
                    since: now,
                });
                self.event_and_record(Message::Paused {
                    canary,
                    canary_weight: self.d.state.canary_weight,
                    by: r.by.clone(),
                });
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
                self.event_and_record(Message::Resumed {
                    canary,
                    by: r.by.clone(),
                });
                false
            }
        }
    }

    fn initialize(&mut self) -> Flow {
        self.phase(Phase::Initializing);
        let Some(primary) = &self.o.primary else {
            self.d.actions.push(Action::Initialize);
            self.event(Message::Initializing {
                canary: self.id(),
                primary: format!("{}-primary", self.c.target.name),
            });
            return Ok(());
        };
        // Nothing is routed to the primary before it is ready: until then
        // the apex Service keeps selecting the target's pods, which serve
        // as before (Flagger's order too).
        if !primary.is_ready(self.c.primary_ready_threshold) {
            self.d.waiting = Some(readiness("primary", primary));
            self.wait(READINESS_POLL);
            return Ok(());
        }
        // Idempotent: also points an apex Service that a router object of
        // the user's (made before the first run) left on the target.
        self.d.actions.push(Action::Expose);
        self.d.actions.push(Action::ScaleTarget(Scale::Zero));
        let rev = self.o.revision.clone();
        self.d.state.last_applied_spec = Some(rev.clone());
        self.d.state.last_promoted_spec = Some(rev);
        self.phase(Phase::Initialized);
        self.event_and_record(Message::Initialized { canary: self.id() });
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
                self.event(Message::WaitingForApproval {
                    canary: self.id(),
                    gate: HookType::ConfirmRollout,
                    hooks: hook_names(self.c, HookType::ConfirmRollout),
                });
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
        // Until when the target's series held requests of another revision:
        // the app itself before initialisation, the last canary, or the
        // revision an analysis under way was testing.
        s.old_traffic_until = match s.phase {
            Phase::Initialized | Phase::Succeeded | Phase::Failed | Phase::Aborted => {
                Some(s.last_transition_time)
            }
            Phase::Progressing | Phase::WaitingPromotion => Some(now),
            _ => None,
        };
        s.canary_weight = 0;
        s.failed_checks = 0;
        s.iterations = 0;
        s.step = Some(0);
        s.last_applied_spec = Some(self.o.revision.clone());
        s.rollout_started = Some(now);
        s.traffic_since = None;
        s.step_started = None;
        s.next_check = None;
        s.awaiting_gate = None;
        s.failure = None;
        self.phase(Phase::Progressing);
        self.d.actions.push(Action::ScaleTarget(Scale::Up));
        self.event_and_record(Message::NewRevision {
            target: self.target_id(),
        });
    }

    fn progressing(&mut self) -> Flow {
        // A new revision during the analysis starts it over.
        if self.d.state.last_applied_spec.as_ref() != Some(&self.o.revision) {
            self.d
                .actions
                .push(Action::SetRouting(Routing::all_primary()));
            self.event(Message::Restarting {
                target: self.target_id(),
            });
            self.start_analysis();
            return Ok(());
        }
        // The router is the truth for the current weight.
        if let Some(r) = &self.o.routing {
            self.d.state.canary_weight = r.canary_weight();
        }
        // The workloads are the truth too: a round whose rollback or
        // promotion scaled the canary down and whose state write was lost
        // left it at zero replicas with the analysis still under way. It
        // is scaled up again and the analysis goes on from the state (a
        // failing canary fails its next check again).
        if self.o.target.desired == 0 {
            self.d.actions.push(Action::ScaleTarget(Scale::Up));
            self.event(Message::CanaryScaledDown {
                target: self.target_id(),
            });
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
                self.event(Message::RollingBack {
                    canary: self.id(),
                    reason: reason.clone(),
                    cause: RollbackCause::ProgressDeadline,
                });
                self.rollback(reason);
                return Ok(());
            }
            self.d.waiting = Some(readiness("canary", &self.o.target));
            self.wait(READINESS_POLL);
            return Ok(());
        }

        if self.c.skip_analysis {
            self.event(Message::AnalysisSkipped {
                target: self.target_id(),
            });
            self.d
                .actions
                .push(Action::SetRouting(Routing::all_primary()));
            self.promote();
            return Ok(());
        }

        if self.adopt_applied_step() {
            return Ok(());
        }
        let Some(next_check) = self.d.state.next_check else {
            return self.first_step();
        };
        if self.restore_routing() {
            // The step's checks get a full interval at its routing.
            self.schedule_check();
            return Ok(());
        }
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
                self.event(Message::RollingBack {
                    canary: self.id(),
                    reason: "manual webhook invoked".to_string(),
                    cause: RollbackCause::Webhook,
                });
                self.rollback("a rollback webhook asked for it".to_string());
                return Ok(());
            }
        }
        let analysis = self.a.analysis.clone().ok_or(Question::Analysis)?;
        let (records, halts) = self.judge(&analysis);
        // A webhook or metrics server that could not be reached is no
        // evidence: unless something else failed, the check is made again
        // at the next interval without being counted.
        let (unreachable, halts): (Vec<_>, Vec<_>) = halts
            .into_iter()
            .partition(|m| matches!(m, Message::Unreachable { .. }));
        if halts.is_empty() && !unreachable.is_empty() {
            let msg = unreachable
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.d.state.record(self.now(), msg, records);
            self.d.events.extend(unreachable);
            self.schedule_check();
            return Ok(());
        }
        if let Some(waiting) = self.awaiting_data(&halts) {
            self.d
                .state
                .record(self.now(), waiting.to_string(), records);
            self.d.events.push(waiting);
            self.schedule_check();
            return Ok(());
        }
        if !halts.is_empty() {
            self.d.state.failed_checks += 1;
            let msg = halts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.d.events.extend(halts);
            self.d.state.record(self.now(), msg, records);
            if self.d.state.failed_checks >= self.c.threshold {
                let reason = format!(
                    "failed checks threshold reached {}",
                    self.d.state.failed_checks
                );
                self.event(Message::RollingBack {
                    canary: self.id(),
                    reason: reason.clone(),
                    cause: RollbackCause::Threshold(self.d.state.failed_checks),
                });
                self.rollback(reason);
                return Ok(());
            }
            self.schedule_check();
            return Ok(());
        }
        self.d.state.record(self.now(), "checks passed", records);
        self.advance()
    }

    /// Pre-rollout hooks, then the first step.
    fn first_step(&mut self) -> Flow {
        if self.c.hooks(HookType::PreRollout).next().is_some() {
            match self.a.pre_rollout.clone().ok_or(Question::PreRollout)? {
                HookOutcome::Passed => {
                    let passed: Vec<Message> = self
                        .c
                        .hooks(HookType::PreRollout)
                        .map(|h| Message::PreRolloutPassed {
                            hook: h.name.clone(),
                        })
                        .collect();
                    self.d.events.extend(passed);
                }
                HookOutcome::Failed { hook, reason } => {
                    self.d.state.failed_checks += 1;
                    self.event_and_record(Message::PreRolloutFailed {
                        canary: self.id(),
                        hook: hook.clone(),
                        reason,
                    });
                    if self.d.state.failed_checks >= self.c.threshold {
                        self.event(Message::RollingBack {
                            canary: self.id(),
                            cause: RollbackCause::Threshold(self.d.state.failed_checks),
                            reason: format!(
                                "failed checks threshold reached {}",
                                self.d.state.failed_checks
                            ),
                        });
                        self.rollback(format!("pre-rollout check {hook} failed"));
                        return Ok(());
                    }
                    // Try again one interval later.
                    self.wait(self.c.interval);
                    return Ok(());
                }
                HookOutcome::Unreachable { hook, reason } => {
                    self.event_and_record(Message::Unreachable {
                        canary: self.id(),
                        what: format!("pre-rollout webhook {hook}"),
                        error: reason,
                    });
                    self.wait(self.c.interval);
                    return Ok(());
                }
            }
        }
        self.event(Message::Starting {
            target: self.target_id(),
        });
        self.d.state.traffic_since = Some(self.now());
        self.advance()?;
        // The canary's series are named after its Deployment, whichever
        // revision served them: for one metrics' window after another
        // revision last served under that name, a query still counts its
        // requests (a failed release's errors, or a healthy one's
        // successes). The first check waits until the window holds only
        // this revision's; Flagger checks after one interval whatever the
        // window held.
        let window = metrics_window(self.c);
        if let (Some(next), Some(old)) = (self.d.state.next_check, self.d.state.old_traffic_until) {
            let first = old.plus(window);
            if first > next {
                self.d.state.next_check = Some(first);
                self.d.next = Next::At(first);
                self.event_and_record(Message::FirstCheckAfterWindow {
                    canary: self.id(),
                    wait: first.since(self.now()),
                });
            }
        }
        Ok(())
    }

    /// When every failure of a check is a metric without values and the
    /// canary has had traffic for less than the longest window those
    /// metrics' queries look back over, the window cannot hold its
    /// traffic yet: the check is not counted, as no evidence either way.
    /// Flagger counts it as failed, which fails healthy releases whose
    /// interval is shorter than the metrics' window. A canary that still
    /// has no values once the window has passed fails as in Flagger.
    fn awaiting_data(&self, halts: &[Message]) -> Option<Message> {
        let since = self.now().since(self.d.state.traffic_since?);
        if halts.is_empty() {
            return None;
        }
        let mut metrics = Vec::new();
        let mut window = Duration::ZERO;
        for h in halts {
            let Message::NoValues { metric, .. } = h else {
                return None;
            };
            let m = self.c.metrics.iter().find(|m| &m.name == metric)?;
            window = window.max(crate::spec::resolve::parse_duration(&m.interval).ok()?);
            metrics.push(metric.clone());
        }
        (since < window).then(|| Message::AwaitingData {
            canary: self.id(),
            metrics,
            since,
            window,
        })
    }

    fn schedule_check(&mut self) {
        let at = self.now().plus(self.c.interval);
        self.d.state.next_check = Some(at);
        self.d.next = Next::At(at);
    }

    /// How many steps of `schedule` are applied. A state document written
    /// before the step was kept says it by weight and iterations.
    fn steps_done(&self, schedule: &Schedule) -> usize {
        let s = &self.d.state;
        match s.step {
            Some(n) => n as usize,
            None if s.next_check.is_none() => 0,
            None => schedule.steps_reached(s.canary_weight, s.iterations),
        }
    }

    /// A round that set the next step's routing and stopped before its
    /// state was written (killed, or its write lost) leaves the router one
    /// step ahead of the state. The router is the truth: the step is taken
    /// as applied now, and its checks get a full interval, rather than
    /// being applied and announced a second time. `true` when it did.
    fn adopt_applied_step(&mut self) -> bool {
        let Some(observed) = &self.o.routing else {
            return false;
        };
        let schedule = Schedule::of(self.c);
        let done = self.steps_done(&schedule);
        let Some(next) = schedule.steps.get(done) else {
            return false;
        };
        let current = match done.checked_sub(1) {
            Some(i) => schedule.steps[i].routing.clone(),
            None => Routing::all_primary(),
        };
        if next.routing != *observed || current == *observed {
            return false;
        }
        let s = &mut self.d.state;
        s.awaiting_gate = None;
        s.step = Some(next.number as u32);
        s.canary_weight = next.routing.canary_weight();
        if let Some(i) = next.iteration {
            s.iterations = i;
        }
        s.step_started = Some(self.o.now);
        self.schedule_check();
        true
    }

    /// Applies the routing of the step the state holds again when the
    /// router does something else: a round that rolled back (or routed
    /// all traffic to the primary) and lost its state write, or a hand
    /// edit of the router's object. Checks are only meaningful at the
    /// step's routing. `true` when it did.
    fn restore_routing(&mut self) -> bool {
        let Some(observed) = &self.o.routing else {
            return false;
        };
        let schedule = Schedule::of(self.c);
        let done = self.steps_done(&schedule);
        let expected = match done.checked_sub(1).and_then(|i| schedule.steps.get(i)) {
            Some(step) => step.routing.clone(),
            None => Routing::all_primary(),
        };
        if observed.agrees_with(&expected) {
            return false;
        }
        let found = observed.canary_weight();
        self.d.state.canary_weight = expected.canary_weight();
        self.d.actions.push(Action::SetRouting(expected.clone()));
        self.event(Message::RoutingRestored {
            canary: self.id(),
            found,
            weight: expected.canary_weight(),
        });
        true
    }

    /// The checks of the current step passed (or there is no step yet):
    /// apply the next step of the schedule, or promote after the last.
    fn advance(&mut self) -> Flow {
        let schedule = Schedule::of(self.c);
        let done = self.steps_done(&schedule);
        match schedule.steps.get(done) {
            Some(step) => {
                if let Some(g) = step.gate
                    && !self.gate_open_or_wait(g)?
                {
                    return Ok(());
                }
                self.apply(step);
            }
            None => {
                if let Some(g) = schedule.promotion_gate
                    && !self.gate_open_or_wait(g)?
                {
                    return Ok(());
                }
                self.promote();
            }
        }
        Ok(())
    }

    /// Asks a gate; when closed, holds the step and polls it.
    fn gate_open_or_wait(&mut self, g: HookType) -> Result<bool, Question> {
        if self.gate(g)? {
            return Ok(true);
        }
        if self.d.state.awaiting_gate != Some(g) {
            self.event(Message::WaitingForApproval {
                canary: self.id(),
                gate: g,
                hooks: hook_names(self.c, g),
            });
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

    /// Applies one step of the schedule; its checks are due one interval
    /// later.
    fn apply(&mut self, step: &schedule::Step) {
        let s = &mut self.d.state;
        s.awaiting_gate = None;
        s.step = Some(step.number as u32);
        s.canary_weight = step.routing.canary_weight();
        if let Some(i) = step.iteration {
            s.iterations = i;
        }
        s.step_started = Some(self.o.now);
        self.d
            .actions
            .push(Action::SetRouting(step.routing.clone()));
        self.event_and_record(Message::Advanced {
            canary: self.id(),
            advance: step.advance,
        });
        self.schedule_check();
    }

    fn promote(&mut self) {
        self.d.state.awaiting_gate = None;
        // The first gradual promotion shift follows the primary's readiness
        // at once.
        self.d.state.next_check = None;
        self.d.actions.push(Action::Promote);
        self.phase(Phase::Promoting);
        self.event_and_record(Message::Copying {
            target: self.target_id(),
            primary: format!("{}-primary.{}", self.c.target.name, self.c.namespace),
        });
        self.d.next = Next::Now;
    }

    /// The primary runs the new template: once it is ready, route traffic
    /// back to it, through the schedule's promotion weights or at once.
    fn promoting(&mut self) -> Flow {
        let primary = self.o.primary.clone().unwrap_or_default();
        if !primary.is_ready(self.c.primary_ready_threshold) {
            self.d.waiting = Some(readiness("primary", &primary));
            self.wait(READINESS_POLL);
            return Ok(());
        }
        let schedule = Schedule::of(self.c);
        // The router says where the promotion stands: the next shift is the
        // first that gives the primary more than it has.
        let current = self
            .o
            .routing
            .as_ref()
            .map_or(schedule::TOTAL_WEIGHT, Routing::primary_weight);
        let Some(weight) = schedule
            .promotion_weights
            .iter()
            .copied()
            .find(|w| *w > current)
        else {
            if self
                .o
                .routing
                .as_ref()
                .is_some_and(|r| *r != Routing::all_primary())
            {
                self.event(Message::RoutingAllToPrimary);
            }
            self.d
                .actions
                .push(Action::SetRouting(Routing::all_primary()));
            self.d.state.canary_weight = 0;
            self.phase(Phase::Finalising);
            self.d.next = Next::Now;
            return Ok(());
        };
        if let Some(due) = self.d.state.next_check
            && self.now() < due
        {
            self.d.next = Next::At(due);
            return Ok(());
        }
        let routing = Routing::weighted(schedule::TOTAL_WEIGHT - weight);
        self.d.state.canary_weight = routing.canary_weight();
        self.d.actions.push(Action::SetRouting(routing));
        self.d.state.step_started = Some(self.now());
        self.event(Message::PrimaryWeight {
            canary: self.id(),
            weight,
        });
        if weight >= schedule::TOTAL_WEIGHT {
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
        self.event_and_record(Message::Completed {
            target: self.target_id(),
        });
        self.d.next = Next::Done(Verdict::Promoted);
    }

    fn rollback(&mut self, reason: String) {
        self.roll_back(reason.clone(), Phase::Failed);
        self.d.next = Next::Done(Verdict::RolledBack { reason });
    }

    /// Traffic back on the primary and the canary scaled down, ending in
    /// `phase` (`Failed`, or `Aborted`).
    fn roll_back(&mut self, reason: String, phase: Phase) {
        self.d
            .actions
            .push(Action::SetRouting(Routing::all_primary()));
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
        let target = self.target_id();
        self.event_and_record(if phase == Phase::Aborted {
            Message::Aborted { target }
        } else {
            Message::Failed { target }
        });
    }

    /// Judges an analysis: the records for the history, and Flagger's
    /// "Halt" messages for what failed (none when it passed).
    fn judge(&self, a: &Analysis) -> (Vec<MetricRecord>, Vec<Message>) {
        let id = self.id();
        if let HookOutcome::Unreachable { hook, reason } = &a.hooks {
            return (
                Vec::new(),
                vec![Message::Unreachable {
                    canary: id,
                    what: format!("webhook {hook}"),
                    error: reason.clone(),
                }],
            );
        }
        if let HookOutcome::Failed { hook, reason } = &a.hooks {
            return (
                Vec::new(),
                vec![Message::HookFailed {
                    canary: id,
                    hook: hook.clone(),
                    reason: reason.clone(),
                }],
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
                .unwrap_or_else(|| Err(MetricFailure::Query("not queried".to_string())));
            let (record, halt) = judge_metric(self.c, m, raw, &id);
            records.push(record);
            halts.extend(halt);
        }
        (records, halts)
    }
}

/// The longest window the metrics' queries look back over (`interval` of
/// each metric, times the intervals its provider looks back over); zero
/// without metrics.
pub fn metrics_window(c: &ResolvedCanary) -> Duration {
    c.metrics
        .iter()
        .filter_map(|m| {
            let i = crate::spec::resolve::parse_duration(&m.interval).ok()?;
            Some(i * m.lookback_intervals.max(1))
        })
        .max()
        .unwrap_or(Duration::ZERO)
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

/// How Flagger words the failures of metric `m`.
fn wording_of(builtin: Option<&builtin::BuiltinQuery>, m: &ResolvedMetric) -> Wording {
    match (builtin.map(|b| b.metric), &m.source) {
        (Some("request-success-rate"), _) => Wording::SuccessRate,
        (Some("request-duration"), _) => Wording::Duration,
        (_, MetricSource::Inline { .. }) => Wording::Inline,
        _ => Wording::Plain,
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
///
/// One difference: Flagger compares whatever float the query answered, so
/// `+Inf` passes any `min` (and `-Inf` any `max`): a ratio whose divisor
/// is zero would promote. Here an infinite value is a failed check that
/// says so. `NaN` is "no values", as in Flagger.
pub fn judge_metric(
    c: &ResolvedCanary,
    m: &ResolvedMetric,
    raw: Result<f64, MetricFailure>,
    id: &str,
) -> (MetricRecord, Option<Message>) {
    let builtin = builtin_of(c, m);
    let (min, max) = thresholds(builtin, m);
    let value = match raw {
        // Prometheus answers NaN when a ratio has no requests to divide.
        Ok(v) if v.is_nan() => Err(MetricFailure::NoValues),
        Ok(v) if v.is_infinite() => Err(MetricFailure::Query(format!(
            "the query answered {}, which no threshold can judge",
            if v > 0.0 { "+Inf" } else { "-Inf" }
        ))),
        other => other,
    };
    let value = match value {
        Ok(v) => v,
        Err(failure) => {
            let wording = wording_of(builtin, m);
            let halt = match &failure {
                MetricFailure::NoValues => Message::NoValues {
                    canary: format!("{}.{}", c.target.name, c.namespace),
                    wording,
                    provider: c
                        .provider
                        .map(|p| p.name())
                        .unwrap_or("metrics")
                        .to_string(),
                    metric: m.name.clone(),
                },
                MetricFailure::Query(e) => Message::QueryFailed {
                    canary: id.to_string(),
                    metric: m.name.clone(),
                    wording,
                    error: e.clone(),
                },
                MetricFailure::Unreachable(e) => Message::Unreachable {
                    canary: id.to_string(),
                    what: format!("the metrics server of {}", m.name),
                    error: e.clone(),
                },
            };
            return (
                MetricRecord {
                    name: m.name.clone(),
                    value: None,
                    passed: false,
                    error: Some(failure.to_string()),
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
    let bound = if below {
        min.unwrap_or_default()
    } else {
        max.unwrap_or_default()
    };
    let wording = wording_of(builtin, m);
    let halt = Message::OutOfRange {
        canary: id.to_string(),
        metric: m.name.clone(),
        wording,
        value,
        bound,
        above: !below,
    };
    (record, Some(halt))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
