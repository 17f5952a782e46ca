//! Plain event lines: one append-only, timestamped line per event, for
//! logs and terminals that are not interactive (CI, `| tee`). A line never
//! needs the one before it to be read, and nothing is ever redrawn.
//!
//! A check's line names the rollback threshold and each metric's unit,
//! which only the canary's `started` event knows: [`Lines`] keeps that per
//! canary, [`line`] takes it as an argument.

use std::collections::HashMap;

use super::fmt::{self, Paint, paint};
use canary_core::event::{Event, Kind, RunInfo, Traffic, VersionStats};

/// Renders the events of several canaries, remembering each one's rollout.
#[derive(Debug, Default)]
pub struct Lines {
    runs: HashMap<String, RunInfo>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines::default()
    }

    /// The line of `e`, in the context of its canary's last `started` event.
    pub fn line(&mut self, e: &Event, color: bool) -> Option<String> {
        if let Some(run) = &e.run {
            self.runs.insert(e.id(), run.clone());
        }
        line(e, self.runs.get(&e.id()), color)
    }
}

/// `2026-11-26T17:40:03Z podinfo.test <what happened>`, or `None` for an
/// event with nothing to say here: a verdict (its line goes to stdout,
/// see [`super::outcome_line`]) or a progress event without a message.
///
/// `run` is the rollout the canary's last `started` event described; without
/// it, checks show no threshold count and values no unit.
pub(crate) fn line(e: &Event, run: Option<&RunInfo>, color: bool) -> Option<String> {
    let what = match e.kind {
        Kind::Started => started(e, run),
        Kind::Progress => e.message.clone()?,
        Kind::Check => check(e, run, color),
        Kind::Traffic => traffic(e.traffic.as_ref()?),
        Kind::Waiting => match &e.waiting_for {
            Some(w) => format!("waiting for: {w}"),
            None => "no longer waiting".to_string(),
        },
        Kind::Request => match &e.request {
            Some(r) => format!(
                "{} requested by {} acted on after {}",
                r.action,
                r.by,
                fmt::span(std::time::Duration::from_millis(r.reacted_after_ms))
            ),
            None => e.message.clone()?,
        },
        Kind::Warning => paint(
            &format!("warning: {}", e.message.as_deref().unwrap_or("")),
            Paint::Yellow,
            color,
        ),
        Kind::Verdict => return None,
    };
    Some(format!("{} {} {what}", fmt::timestamp(e.time), e.id()))
}

fn started(e: &Event, run: Option<&RunInfo>) -> String {
    let Some(run) = e.run.as_ref().or(run) else {
        return e.message.clone().unwrap_or_else(|| "started".to_string());
    };
    let mut parts = vec![format!("{} strategy with {}", run.strategy, run.provider)];
    let steps = fmt::steps(run);
    let every = fmt::span_secs(run.interval_seconds);
    if steps.is_empty() {
        parts.push(format!("checks every {every}"));
    } else {
        parts.push(format!("{steps}, one every {every}"));
    }
    if run.iterations == 0 && run.max_weight > 0 {
        parts.push(format!("max weight {}%", run.max_weight));
    }
    parts.push(format!(
        "rollback after {} failed check{}",
        run.threshold,
        fmt::plural(run.threshold as usize)
    ));
    let mut s = format!("rollout of {}: {}", run.target, parts.join(", "));
    if !run.metrics.is_empty() {
        let checks: Vec<String> = run
            .metrics
            .iter()
            .map(|m| {
                let t = fmt::thresholds(m.min, m.max, &m.unit);
                if t.is_empty() {
                    m.name.clone()
                } else {
                    format!("{} ({t})", m.name)
                }
            })
            .collect();
        s.push_str("; checks ");
        s.push_str(&checks.join(", "));
    }
    s
}

fn check(e: &Event, run: Option<&RunInfo>, color: bool) -> String {
    let passed = e.metrics.iter().all(|m| m.passed) && e.hooks.iter().all(|h| h.result != "failed");
    let mut s = if passed {
        paint("check passed", Paint::Green, color)
    } else {
        paint("check failed", Paint::Red, color)
    };
    let mut parts = Vec::new();
    for m in &e.metrics {
        let unit = fmt::unit_of(run, &m.name);
        let t = fmt::thresholds(m.min, m.max, unit);
        let verdict = if m.passed {
            paint("ok", Paint::Green, color)
        } else {
            paint("FAILED", Paint::Red, color)
        };
        let mut p = format!("{} {}", m.name, fmt::metric_value(m, unit));
        if !t.is_empty() {
            p.push_str(&format!(" ({t})"));
        }
        p.push(' ');
        p.push_str(&verdict);
        parts.push(p);
    }
    for h in &e.hooks {
        let result = match h.result.as_str() {
            "passed" => paint("ok", Paint::Green, color),
            "failed" => paint("FAILED", Paint::Red, color),
            other => other.to_string(),
        };
        let mut p = format!("hook {} {result}", h.name);
        if let Some(m) = h.message.as_deref().filter(|m| !m.is_empty()) {
            p.push_str(&format!(" ({m})"));
        }
        parts.push(p);
    }
    if !parts.is_empty() {
        s.push_str(": ");
        s.push_str(&parts.join(", "));
    }
    match run {
        Some(r) => s.push_str(&format!(
            "; failed checks {}/{}",
            e.failed_checks, r.threshold
        )),
        None => s.push_str(&format!("; failed checks {}", e.failed_checks)),
    }
    s
}

fn traffic(t: &Traffic) -> String {
    let v = |name: &str, s: &VersionStats| {
        format!(
            "{name} {} {} p99 {}",
            fmt::rate(s.request_rate),
            fmt::percent(s.success_rate),
            fmt::millis(s.latency_p99_ms)
        )
    };
    let canary = if t.canary_direct.is_empty() {
        "canary"
    } else {
        "canary (+ load tester)"
    };
    format!(
        "traffic ({}): {} | {}",
        fmt::span(std::time::Duration::from_secs(t.window_seconds)),
        v("primary", &t.primary),
        v(canary, &t.canary)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures;

    fn all(events: &[Event]) -> String {
        let mut l = Lines::new();
        events
            .iter()
            .filter_map(|e| l.line(e, false))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_promoted_rollout_reads_as_a_log() {
        insta::assert_snapshot!(all(&fixtures::promoted()));
    }

    #[test]
    fn a_rolled_back_rollout_names_the_failed_metric_and_the_threshold() {
        let text = all(&fixtures::rolled_back());
        assert!(
            text.contains("request-success-rate 91.20% (min 99%) FAILED"),
            "{text}"
        );
        assert!(text.contains("failed checks 2/2"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_check_line_has_the_documented_shape() {
        let e = &fixtures::promoted()[3];
        let run = fixtures::run_info();
        assert_eq!(
            line(e, Some(&run), false).unwrap(),
            "2026-11-26T17:41:03Z podinfo.test check passed: request-success-rate 99.87% \
             (min 99%) ok, request-duration 212ms (max 500ms) ok; failed checks 0/5"
        );
    }

    #[test]
    fn without_its_started_event_a_check_has_no_threshold_count() {
        let e = &fixtures::promoted()[3];
        let l = line(e, None, false).unwrap();
        assert!(l.ends_with("; failed checks 0"), "{l}");
    }

    #[test]
    fn a_metric_without_a_value_says_why() {
        let text = all(&fixtures::rolled_back());
        assert!(
            text.contains("request-duration no value (no data in the last 1m) (max 500ms) FAILED"),
            "{text}"
        );
    }

    #[test]
    fn missing_traffic_values_are_dashes() {
        let mut e = fixtures::promoted()
            .into_iter()
            .find(|e| e.kind == Kind::Traffic)
            .unwrap();
        e.traffic.as_mut().unwrap().canary = VersionStats::default();
        let l = line(&e, None, false).unwrap();
        assert!(
            l.ends_with("| canary (+ load tester) - req/s - p99 -"),
            "{l}"
        );
    }

    #[test]
    fn verdicts_have_no_line_here_and_colour_is_only_added_on_request() {
        let events = fixtures::rolled_back();
        let v = events.last().unwrap();
        assert_eq!(v.kind, Kind::Verdict);
        assert_eq!(line(v, None, false), None);
        let run = fixtures::run_info();
        let failed = events.iter().find(|e| e.kind == Kind::Check).unwrap();
        assert!(!line(failed, Some(&run), false).unwrap().contains('\u{1b}'));
        assert!(line(failed, Some(&run), true).unwrap().contains('\u{1b}'));
    }

    #[test]
    fn lines_are_single_lines() {
        for e in fixtures::promoted().iter().chain(&fixtures::rolled_back()) {
            if let Some(l) = line(e, Some(&fixtures::run_info()), false) {
                assert!(!l.contains('\n') && !l.contains('\r'), "{l}");
            }
        }
    }
}
