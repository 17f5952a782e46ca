//! What the engine tells people, as values.
//!
//! Each round's [`Message`]s say what happened in Flagger's words: their
//! [`Display`](fmt::Display) is the exact text Flagger records (and the
//! history, the live view, the log lines and the JSON events show), and
//! [`Message::severity`] is the event type Flagger records it with
//! (`recordEventWarningf` or `recordEventInfof`), which the `event`
//! webhooks receive. Code that reacts to a message matches its variant;
//! nothing decides on the text.

use std::fmt;

use super::schedule::Advance;
use crate::spec::resolve::HookType;

/// The type of a Kubernetes event, as Flagger records a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    /// `Normal` or `Warning`, as in an event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// How a metric's failures are worded: Flagger words its two built-in
/// checks apart from every other metric, and a MetricTemplate's missing
/// values and failed queries apart from an inline query's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// `success rate 91.20% < 99%`.
    SuccessRate,
    /// `request duration 1.2s > 500ms` (values in milliseconds).
    Duration,
    /// A MetricTemplate's: `error-rate 3.50 > 1`.
    Plain,
    /// A Canary's own `query`: out of range as [`Wording::Plain`].
    Inline,
}

/// Why a rollout is rolled back, as a value: what an alert says depends
/// on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackCause {
    /// The failed checks reached the threshold; how many there were.
    Threshold(u32),
    /// The canary did not become ready within its progress deadline.
    ProgressDeadline,
    /// A `rollback` webhook asked for it.
    Webhook,
    /// The run itself was told to stop and roll back (`--timeout`).
    Requested,
}

/// One message of a round. `canary` is `NAME.NAMESPACE` of the Canary,
/// `target` the same of its target workload, as Flagger prints them.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The first run creates the primary (`primary` is its name), the
    /// services and the router.
    Initializing {
        canary: String,
        primary: String,
    },
    Initialized {
        canary: String,
    },
    NewRevision {
        target: String,
    },
    /// A new revision arrived while an analysis was under way.
    Restarting {
        target: String,
    },
    Starting {
        target: String,
    },
    PreRolloutPassed {
        hook: String,
    },
    /// A step of the schedule was applied.
    Advanced {
        canary: String,
        advance: Advance,
    },
    /// A gate is closed; `hooks` names its webhooks.
    WaitingForApproval {
        canary: String,
        gate: HookType,
        hooks: String,
    },
    PreRolloutFailed {
        canary: String,
        hook: String,
        reason: String,
    },
    /// A rollout webhook failed: the check fails without querying metrics.
    HookFailed {
        canary: String,
        hook: String,
        reason: String,
    },
    /// A metric query returned no data. `canary` is the target's
    /// `NAME.NAMESPACE` here, as Flagger prints it.
    NoValues {
        canary: String,
        /// The provider the built-in queries are read for, or `metrics`.
        provider: String,
        metric: String,
        wording: Wording,
    },
    QueryFailed {
        canary: String,
        metric: String,
        wording: Wording,
        error: String,
    },
    /// `canary`'s own: the first check waits until the metrics' window
    /// holds only the new revision's requests.
    FirstCheckAfterWindow {
        canary: String,
        wait: std::time::Duration,
    },
    /// `canary`'s own: a webhook or metrics server could not be reached
    /// (the API server's service proxy failed, or the connection did),
    /// after retries: no evidence either way, so the check is not counted
    /// and is made again one interval later.
    Unreachable {
        canary: String,
        /// `webhook NAME` or `metric NAME`.
        what: String,
        error: String,
    },
    /// `canary`'s own: metrics without values while the canary has had
    /// traffic for less than the window their queries look back over, so
    /// the check is not counted (Flagger counts it as failed).
    AwaitingData {
        canary: String,
        metrics: Vec<String>,
        /// How long the canary has had traffic, and the window.
        since: std::time::Duration,
        window: std::time::Duration,
    },
    /// A metric value is outside its bounds (in the metric's unit).
    OutOfRange {
        canary: String,
        metric: String,
        wording: Wording,
        value: f64,
        bound: f64,
        /// Above the maximum (else below the minimum).
        above: bool,
    },
    /// The canary is being rolled back, and why (`reason` in words,
    /// `cause` as a value).
    RollingBack {
        canary: String,
        reason: String,
        cause: RollbackCause,
    },
    Failed {
        target: String,
    },
    /// `canary abort`: traffic back to the primary.
    Aborting {
        canary: String,
        by: String,
    },
    Aborted {
        target: String,
    },
    PromotionRequested {
        canary: String,
        by: String,
    },
    Paused {
        canary: String,
        canary_weight: u32,
        by: String,
    },
    Resumed {
        canary: String,
        by: String,
    },
    /// A request that does not fit the phase.
    Ignored {
        canary: String,
        request: String,
        by: String,
        why: String,
    },
    AnalysisSkipped {
        target: String,
    },
    /// Promotion: the target's spec is copied to `primary`.
    Copying {
        target: String,
        primary: String,
    },
    RoutingAllToPrimary,
    /// A shift of a gradual promotion.
    PrimaryWeight {
        canary: String,
        weight: u32,
    },
    Completed {
        target: String,
    },
    /// The canary was found scaled to zero while its analysis is under
    /// way: the effects of a round (a rollback, a promotion) were applied
    /// but its state was never written. It is scaled up again and the
    /// analysis goes on from the state.
    CanaryScaledDown {
        target: String,
    },
    /// The router was found routing otherwise than the step the state
    /// holds (a lost state write, or a hand edit): the step's routing is
    /// applied again.
    RoutingRestored {
        canary: String,
        found: u32,
        weight: u32,
    },
}

impl Message {
    /// How Flagger records the message: the `Halt …`, `Rolling back …` and
    /// `Canary failed! …` lines are warnings; so are their counterparts
    /// for `canary abort`, which takes a rollout away as a rollback does.
    pub fn severity(&self) -> Severity {
        match self {
            Message::WaitingForApproval { .. }
            | Message::PreRolloutFailed { .. }
            | Message::HookFailed { .. }
            | Message::NoValues { .. }
            | Message::QueryFailed { .. }
            | Message::Unreachable { .. }
            | Message::OutOfRange { .. }
            | Message::RollingBack { .. }
            | Message::Failed { .. }
            | Message::Aborting { .. }
            | Message::Aborted { .. }
            | Message::CanaryScaledDown { .. }
            | Message::RoutingRestored { .. } => Severity::Warning,
            Message::AwaitingData { .. }
            | Message::FirstCheckAfterWindow { .. }
            | Message::Initializing { .. }
            | Message::Initialized { .. }
            | Message::NewRevision { .. }
            | Message::Restarting { .. }
            | Message::Starting { .. }
            | Message::PreRolloutPassed { .. }
            | Message::Advanced { .. }
            | Message::PromotionRequested { .. }
            | Message::Paused { .. }
            | Message::Resumed { .. }
            | Message::Ignored { .. }
            | Message::AnalysisSkipped { .. }
            | Message::Copying { .. }
            | Message::RoutingAllToPrimary
            | Message::PrimaryWeight { .. }
            | Message::Completed { .. } => Severity::Normal,
        }
    }

    pub fn is_warning(&self) -> bool {
        self.severity() == Severity::Warning
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Initializing { canary, primary } => write!(
                f,
                "Initializing {canary}: creating {primary}, services and router"
            ),
            Message::Initialized { canary } => write!(f, "Initialization done! {canary}"),
            Message::NewRevision { target } => {
                write!(f, "New revision detected! Scaling up {target}")
            }
            Message::Restarting { target } => {
                write!(f, "New revision detected! Restarting analysis for {target}")
            }
            Message::Starting { target } => write!(f, "Starting canary analysis for {target}"),
            Message::PreRolloutPassed { hook } => write!(f, "Pre-rollout check {hook} passed"),
            Message::Advanced { canary, advance } => match advance {
                Advance::Weight(w) => write!(f, "Advance {canary} canary weight {w}"),
                Advance::Mirror => write!(f, "Advance {canary} mirroring traffic to the canary"),
                Advance::Iteration { number, of } => {
                    write!(f, "Advance {canary} canary iteration {number}/{of}")
                }
                Advance::AllToCanary {
                    after_mirroring: true,
                } => f.write_str("Stop traffic mirroring and route all traffic to canary"),
                Advance::AllToCanary {
                    after_mirroring: false,
                } => f.write_str("Routing all traffic to canary"),
            },
            Message::WaitingForApproval {
                canary,
                gate,
                hooks,
            } => {
                let what = match gate {
                    HookType::ConfirmPromotion => "promotion approval",
                    HookType::ConfirmTrafficIncrease => "traffic increase approval",
                    _ => "approval",
                };
                write!(f, "Halt {canary} advancement waiting for {what} {hooks}")
            }
            Message::PreRolloutFailed {
                canary,
                hook,
                reason,
            } => write!(
                f,
                "Halt {canary} advancement pre-rollout check {hook} failed {reason}"
            ),
            Message::HookFailed {
                canary,
                hook,
                reason,
            } => write!(
                f,
                "Halt {canary} advancement external check {hook} failed {reason}"
            ),
            Message::NoValues {
                canary,
                provider,
                metric,
                wording,
            } => match wording {
                Wording::SuccessRate => write!(
                    f,
                    "Halt advancement no values found for {provider} metric {metric} probably \
                     {canary} is not receiving traffic: no values found"
                ),
                Wording::Duration => write!(
                    f,
                    "Halt advancement no values found for {provider} metric {metric} probably \
                     {canary} is not receiving traffic"
                ),
                Wording::Plain => write!(
                    f,
                    "Halt advancement no values found for custom metric: {metric}: no values found"
                ),
                Wording::Inline => {
                    write!(f, "Halt advancement no values found for metric: {metric}")
                }
            },
            Message::QueryFailed {
                metric,
                wording,
                error,
                ..
            } => match wording {
                Wording::SuccessRate | Wording::Duration => {
                    write!(f, "Prometheus query failed: {error}")
                }
                Wording::Plain => write!(f, "Metric query failed for {metric}: {error}"),
                Wording::Inline => write!(f, "Prometheus query failed for {metric}: {error}"),
            },
            Message::FirstCheckAfterWindow { canary, wait } => write!(
                f,
                "First check of {canary} in {}s, when the metrics window has cleared",
                wait.as_secs()
            ),
            Message::Unreachable {
                canary,
                what,
                error,
            } => write!(
                f,
                "{canary}: {what} could not be reached: {error}; not counted as a failed \
                 check, checking again at the next interval"
            ),
            Message::AwaitingData {
                canary,
                metrics,
                since,
                window,
            } => write!(
                f,
                "No values yet for {}: {canary} has had traffic for {}s of the {}s its queries \
                 look back over; not counted as a failed check",
                metrics.join(", "),
                since.as_secs(),
                window.as_secs()
            ),
            Message::OutOfRange {
                canary,
                metric,
                wording,
                value,
                bound,
                above,
            } => {
                let op = if *above { ">" } else { "<" };
                match wording {
                    Wording::SuccessRate => write!(
                        f,
                        "Halt {canary} advancement success rate {value:.2}% {op} {}%",
                        fmt_num(*bound)
                    ),
                    Wording::Duration => write!(
                        f,
                        "Halt {canary} advancement request duration {} {op} {}",
                        fmt_ms(*value),
                        fmt_ms(*bound)
                    ),
                    Wording::Plain | Wording::Inline => write!(
                        f,
                        "Halt {canary} advancement {metric} {value:.2} {op} {}",
                        fmt_num(*bound)
                    ),
                }
            }
            Message::RollingBack { canary, reason, .. } => {
                write!(f, "Rolling back {canary} {reason}")
            }
            Message::Failed { target } => write!(f, "Canary failed! Scaling down {target}"),
            Message::Aborting { canary, by } => write!(
                f,
                "Aborting {canary} as requested by {by}: routing all traffic to the primary"
            ),
            Message::Aborted { target } => write!(f, "Canary aborted! Scaling down {target}"),
            Message::PromotionRequested { canary, by } => write!(
                f,
                "Promotion of {canary} requested by {by}: skipping the rest of the analysis"
            ),
            Message::Paused {
                canary,
                canary_weight,
                by,
            } => write!(
                f,
                "Paused {canary} at canary weight {canary_weight} as requested by {by}"
            ),
            Message::Resumed { canary, by } => write!(f, "Resumed {canary} as requested by {by}"),
            Message::Ignored {
                canary,
                request,
                by,
                why,
            } => write!(f, "Ignored {request} requested by {by} for {canary}: {why}"),
            Message::AnalysisSkipped { target } => {
                write!(f, "Promotion with analysis skipped for {target}")
            }
            Message::Copying { target, primary } => {
                write!(f, "Copying {target} template spec to {primary}")
            }
            Message::RoutingAllToPrimary => f.write_str("Routing all traffic to primary"),
            Message::PrimaryWeight { canary, weight } => {
                write!(f, "Advance {canary} primary weight {weight}")
            }
            Message::Completed { target } => {
                write!(f, "Promotion completed! Scaling down {target}")
            }
            Message::CanaryScaledDown { target } => write!(
                f,
                "{target} was scaled to zero during the analysis; scaling it up again"
            ),
            Message::RoutingRestored {
                canary,
                found,
                weight,
            } => write!(
                f,
                "Restoring {canary} canary weight {weight} (the router had {found})"
            ),
        }
    }
}

/// A number as Flagger's `%v` prints a float: no trailing zeros.
pub(crate) fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Milliseconds the way Go prints a `time.Duration`: `500ms`, `1.2s`.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", fmt_num(ms / 1000.0))
    } else {
        format!("{}ms", fmt_num(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go format string filled in as `fmt.Sprintf` would: `%s`/`%v`
    /// take the next argument as it is, `%.2f` the next as a number with
    /// two decimals, `%%` is `%`.
    fn sprintf(format: &str, args: &[&str]) -> String {
        let mut out = String::new();
        let mut args = args.iter();
        let mut rest = format;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%.2f") {
                let v: f64 = args.next().expect("an argument").parse().unwrap();
                out.push_str(&format!("{v:.2}"));
                rest = r;
            } else {
                out.push_str(args.next().expect("an argument"));
                rest = &rest[2..];
            }
        }
        out.push_str(rest);
        assert!(args.next().is_none(), "too many arguments for {format}");
        out
    }

    /// Each message Flagger records, as its controller formats it
    /// (`pkg/controller/scheduler*.go`, v1.44), with the arguments of one
    /// rollout, against the message `canary` says in its place. Scripts
    /// that grep Flagger's event lines find the same lines.
    #[test]
    fn the_messages_are_flaggers_words() {
        let c = || "podinfo.prod".to_string();
        let hook = || "acceptance-test".to_string();
        let cases: Vec<(&str, &[&str], Message)> = vec![
            (
                "Initialization done! %s.%s",
                &["podinfo", "prod"],
                Message::Initialized { canary: c() },
            ),
            (
                "New revision detected! Scaling up %s.%s",
                &["podinfo", "prod"],
                Message::NewRevision { target: c() },
            ),
            (
                "New revision detected! Restarting analysis for %s.%s",
                &["podinfo", "prod"],
                Message::Restarting { target: c() },
            ),
            (
                "Starting canary analysis for %s.%s",
                &["podinfo", "prod"],
                Message::Starting { target: c() },
            ),
            (
                "Pre-rollout check %s passed",
                &["acceptance-test"],
                Message::PreRolloutPassed { hook: hook() },
            ),
            (
                "Halt %s.%s advancement pre-rollout check %s failed %v",
                &["podinfo", "prod", "acceptance-test", "exit status 1"],
                Message::PreRolloutFailed {
                    canary: c(),
                    hook: hook(),
                    reason: "exit status 1".into(),
                },
            ),
            (
                "Halt %s.%s advancement external check %s failed %v",
                &["podinfo", "prod", "load-test", "timeout"],
                Message::HookFailed {
                    canary: c(),
                    hook: "load-test".into(),
                    reason: "timeout".into(),
                },
            ),
            (
                "Advance %s.%s canary weight %v",
                &["podinfo", "prod", "5"],
                Message::Advanced {
                    canary: c(),
                    advance: Advance::Weight(5),
                },
            ),
            (
                "Advance %s.%s canary iteration %v/%v",
                &["podinfo", "prod", "1", "10"],
                Message::Advanced {
                    canary: c(),
                    advance: Advance::Iteration { number: 1, of: 10 },
                },
            ),
            (
                "Routing all traffic to canary",
                &[],
                Message::Advanced {
                    canary: c(),
                    advance: Advance::AllToCanary {
                        after_mirroring: false,
                    },
                },
            ),
            (
                "Stop traffic mirroring and route all traffic to canary",
                &[],
                Message::Advanced {
                    canary: c(),
                    advance: Advance::AllToCanary {
                        after_mirroring: true,
                    },
                },
            ),
            (
                "Halt %s.%s advancement waiting for approval %s",
                &["podinfo", "prod", "approval"],
                Message::WaitingForApproval {
                    canary: c(),
                    gate: HookType::ConfirmRollout,
                    hooks: "approval".into(),
                },
            ),
            (
                "Halt %s.%s advancement waiting for traffic increase approval %s",
                &["podinfo", "prod", "approval"],
                Message::WaitingForApproval {
                    canary: c(),
                    gate: HookType::ConfirmTrafficIncrease,
                    hooks: "approval".into(),
                },
            ),
            (
                "Halt %s.%s advancement waiting for promotion approval %s",
                &["podinfo", "prod", "approval"],
                Message::WaitingForApproval {
                    canary: c(),
                    gate: HookType::ConfirmPromotion,
                    hooks: "approval".into(),
                },
            ),
            (
                "Halt advancement no values found for %s metric %s probably %s.%s is not receiving traffic: %v",
                &[
                    "linkerd",
                    "request-success-rate",
                    "podinfo",
                    "prod",
                    "no values found",
                ],
                Message::NoValues {
                    canary: c(),
                    provider: "linkerd".into(),
                    metric: "request-success-rate".into(),
                    wording: Wording::SuccessRate,
                },
            ),
            (
                "Halt advancement no values found for %s metric %s probably %s.%s is not receiving traffic",
                &["linkerd", "request-duration", "podinfo", "prod"],
                Message::NoValues {
                    canary: c(),
                    provider: "linkerd".into(),
                    metric: "request-duration".into(),
                    wording: Wording::Duration,
                },
            ),
            (
                "Halt advancement no values found for custom metric: %s: %v",
                &["error-rate", "no values found"],
                Message::NoValues {
                    canary: c(),
                    provider: "metrics".into(),
                    metric: "error-rate".into(),
                    wording: Wording::Plain,
                },
            ),
            (
                "Halt advancement no values found for metric: %s",
                &["error-rate"],
                Message::NoValues {
                    canary: c(),
                    provider: "metrics".into(),
                    metric: "error-rate".into(),
                    wording: Wording::Inline,
                },
            ),
            (
                "Prometheus query failed: %v",
                &["bad_data"],
                Message::QueryFailed {
                    canary: c(),
                    metric: "request-success-rate".into(),
                    wording: Wording::SuccessRate,
                    error: "bad_data".into(),
                },
            ),
            (
                "Metric query failed for %s: %v",
                &["error-rate", "bad_data"],
                Message::QueryFailed {
                    canary: c(),
                    metric: "error-rate".into(),
                    wording: Wording::Plain,
                    error: "bad_data".into(),
                },
            ),
            (
                "Prometheus query failed for %s: %v",
                &["error-rate", "bad_data"],
                Message::QueryFailed {
                    canary: c(),
                    metric: "error-rate".into(),
                    wording: Wording::Inline,
                    error: "bad_data".into(),
                },
            ),
            (
                "Halt %s.%s advancement success rate %.2f%% < %v%%",
                &["podinfo", "prod", "91.2", "99"],
                Message::OutOfRange {
                    canary: c(),
                    metric: "request-success-rate".into(),
                    wording: Wording::SuccessRate,
                    value: 91.2,
                    bound: 99.0,
                    above: false,
                },
            ),
            (
                "Halt %s.%s advancement request duration %v > %v",
                &["podinfo", "prod", "1.2s", "500ms"],
                Message::OutOfRange {
                    canary: c(),
                    metric: "request-duration".into(),
                    wording: Wording::Duration,
                    value: 1200.0,
                    bound: 500.0,
                    above: true,
                },
            ),
            (
                "Halt %s.%s advancement %s %.2f > %v",
                &["podinfo", "prod", "error-rate", "3.5", "1"],
                Message::OutOfRange {
                    canary: c(),
                    metric: "error-rate".into(),
                    wording: Wording::Plain,
                    value: 3.5,
                    bound: 1.0,
                    above: true,
                },
            ),
            (
                "Halt %s.%s advancement %s %.2f < %v",
                &["podinfo", "prod", "throughput", "12", "20.5"],
                Message::OutOfRange {
                    canary: c(),
                    metric: "throughput".into(),
                    wording: Wording::Inline,
                    value: 12.0,
                    bound: 20.5,
                    above: false,
                },
            ),
            (
                "Rolling back %s.%s failed checks threshold reached %v",
                &["podinfo", "prod", "5"],
                Message::RollingBack {
                    canary: c(),
                    reason: "failed checks threshold reached 5".into(),
                    cause: RollbackCause::Threshold(5),
                },
            ),
            (
                "Rolling back %s.%s manual webhook invoked",
                &["podinfo", "prod"],
                Message::RollingBack {
                    canary: c(),
                    reason: "manual webhook invoked".into(),
                    cause: RollbackCause::Webhook,
                },
            ),
            (
                "Canary failed! Scaling down %s.%s",
                &["podinfo", "prod"],
                Message::Failed { target: c() },
            ),
            (
                "Copying %s.%s template spec to %s.%s",
                &["podinfo", "prod", "podinfo-primary", "prod"],
                Message::Copying {
                    target: c(),
                    primary: "podinfo-primary.prod".into(),
                },
            ),
            (
                "Routing all traffic to primary",
                &[],
                Message::RoutingAllToPrimary,
            ),
            (
                "Advance %s.%s primary weight %v",
                &["podinfo", "prod", "60"],
                Message::PrimaryWeight {
                    canary: c(),
                    weight: 60,
                },
            ),
            (
                "Promotion completed! Scaling down %s.%s",
                &["podinfo", "prod"],
                Message::Completed { target: c() },
            ),
        ];
        for (format, args, message) in cases {
            assert_eq!(message.to_string(), sprintf(format, args), "{format}");
        }
    }

    #[test]
    fn duration_formatting_follows_go() {
        assert_eq!(fmt_ms(500.0), "500ms");
        assert_eq!(fmt_ms(1200.0), "1.2s");
        assert_eq!(fmt_ms(1450.0), "1.45s");
        assert_eq!(fmt_num(99.0), "99");
        assert_eq!(fmt_num(0.5), "0.5");
    }

    #[test]
    fn halts_rollbacks_and_failures_are_warnings_as_in_flagger() {
        let canary = "podinfo.prod".to_string();
        let target = "podinfo.prod".to_string();
        let warnings = [
            Message::OutOfRange {
                canary: canary.clone(),
                metric: "request-success-rate".into(),
                wording: Wording::SuccessRate,
                value: 91.2,
                bound: 99.0,
                above: false,
            },
            Message::RollingBack {
                canary: canary.clone(),
                reason: "failed checks threshold reached 5".into(),
                cause: RollbackCause::Threshold(5),
            },
            Message::Failed {
                target: target.clone(),
            },
        ];
        let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "Halt podinfo.prod advancement success rate 91.20% < 99%",
                "Rolling back podinfo.prod failed checks threshold reached 5",
                "Canary failed! Scaling down podinfo.prod",
            ]
        );
        assert!(warnings.iter().all(Message::is_warning));

        let normal = [
            Message::NewRevision {
                target: target.clone(),
            },
            Message::Advanced {
                canary: canary.clone(),
                advance: Advance::Weight(5),
            },
            Message::Completed { target },
        ];
        let texts: Vec<String> = normal.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "New revision detected! Scaling up podinfo.prod",
                "Advance podinfo.prod canary weight 5",
                "Promotion completed! Scaling down podinfo.prod",
            ]
        );
        assert!(normal.iter().all(|m| m.severity() == Severity::Normal));
    }
}
