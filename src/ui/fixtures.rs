//! Hand-built events of two rollouts of `podinfo.test`, at fixed times, for
//! the tests of every rendering: one promoted after a gate, one rolled back
//! by a failing metric after the operator paused and resumed it.

use canary_core::engine::state::{MetricRecord, Phase, State};
use canary_core::event::{
    Event, HookRecord, Kind, MetricInfo, OutcomeInfo, RequestInfo, RunInfo, Traffic, VersionStats,
};
use canary_core::time::Time;

/// `17:41:03` on the day of the fixtures.
pub(super) fn t(hms: &str) -> Time {
    Time::parse_rfc3339(&format!("2026-11-26T{hms}Z")).expect("fixture time")
}

/// An event of `podinfo.test` in phase Progressing with nothing else set.
pub(super) fn ev(kind: Kind, hms: &str) -> Event {
    let mut state = State::new(t(hms));
    state.phase = Phase::Progressing;
    Event::new(kind, t(hms), "podinfo", "test", &state)
}

pub(super) fn run_info() -> RunInfo {
    RunInfo {
        target: "deployment/podinfo".into(),
        provider: "linkerd".into(),
        strategy: "canary".into(),
        interval_seconds: 60.0,
        threshold: 5,
        weights: vec![10, 30, 50],
        max_weight: 50,
        iterations: 0,
        metrics: vec![
            MetricInfo {
                name: "request-success-rate".into(),
                min: Some(99.0),
                max: None,
                unit: "%".into(),
            },
            MetricInfo {
                name: "request-duration".into(),
                min: None,
                max: Some(500.0),
                unit: "ms".into(),
            },
        ],
    }
}

pub(super) fn success_rate(v: Option<f64>) -> MetricRecord {
    MetricRecord {
        name: "request-success-rate".into(),
        value: v,
        passed: v.is_some_and(|v| v >= 99.0),
        error: None,
        min: Some(99.0),
        max: None,
    }
}

pub(super) fn duration(v: Option<f64>) -> MetricRecord {
    MetricRecord {
        name: "request-duration".into(),
        value: v,
        passed: v.is_some_and(|v| v <= 500.0),
        error: None,
        min: None,
        max: Some(500.0),
    }
}

pub(super) fn traffic(canary_success: f64, canary_p99: f64) -> Traffic {
    Traffic {
        window_seconds: 60,
        primary: VersionStats {
            request_rate: Some(9.8),
            success_rate: Some(100.0),
            latency_p99_ms: Some(45.0),
        },
        canary: VersionStats {
            request_rate: Some(3.2),
            success_rate: Some(canary_success),
            latency_p99_ms: Some(canary_p99),
        },
        canary_direct: vec!["load-test".into()],
    }
}

fn step(mut e: Event, weight: u32, next: &str) -> Event {
    e.canary_weight = weight;
    e.next_check = Some(t(next));
    e
}

fn progress(hms: &str, weight: u32, next: &str, message: &str) -> Event {
    step(ev(Kind::Progress, hms), weight, next).with_message(message)
}

fn verdict(hms: &str, phase: Phase, result: &str, exit_code: u8, reason: Option<&str>) -> Event {
    let mut e = ev(Kind::Verdict, hms);
    e.phase = phase;
    e.outcome = Some(OutcomeInfo {
        result: result.into(),
        exit_code,
        reason: reason.map(String::from),
    });
    e
}

/// Three steps, a confirm-promotion gate, promotion.
pub(super) fn promoted() -> Vec<Event> {
    let mut started = step(ev(Kind::Started, "17:40:03"), 0, "17:41:03");
    started.run = Some(run_info());

    let mut check1 = step(ev(Kind::Check, "17:41:03"), 10, "17:42:03");
    check1.metrics = vec![success_rate(Some(99.8712)), duration(Some(212.4))];

    let mut traffic1 = step(ev(Kind::Traffic, "17:41:03"), 10, "17:42:03");
    traffic1.traffic = Some(traffic(99.87, 212.0));

    let mut check2 = step(ev(Kind::Check, "17:42:03"), 30, "17:43:03");
    check2.metrics = vec![success_rate(Some(99.95)), duration(Some(198.0))];
    check2.hooks = vec![HookRecord {
        name: "load-test".into(),
        result: "passed".into(),
        message: None,
    }];

    let mut check3 = step(ev(Kind::Check, "17:43:03"), 50, "17:44:03");
    check3.metrics = vec![success_rate(Some(100.0)), duration(Some(187.0))];

    let mut gate = step(ev(Kind::Waiting, "17:43:03"), 50, "17:44:03");
    gate.phase = Phase::WaitingPromotion;
    gate.waiting_for = Some("confirm-promotion gate approve-promotion".into());

    let mut open = step(ev(Kind::Waiting, "17:44:03"), 50, "17:45:03");
    open.phase = Phase::Promoting;

    let mut copy = progress(
        "17:44:03",
        50,
        "17:45:03",
        "Copying podinfo.test template spec to podinfo-primary.test",
    );
    copy.phase = Phase::Promoting;
    let mut route = progress("17:45:03", 0, "17:46:03", "Routing all traffic to primary");
    route.phase = Phase::Finalising;
    let mut done = progress(
        "17:46:03",
        0,
        "17:46:03",
        "Promotion completed! Scaling down podinfo.test",
    );
    done.phase = Phase::Succeeded;
    done.next_check = None;
    let mut v = verdict("17:46:03", Phase::Succeeded, "promoted", 0, None);
    v.next_check = None;

    vec![
        started,
        progress(
            "17:40:03",
            0,
            "17:41:03",
            "New revision detected! Scaling up podinfo.test",
        ),
        progress(
            "17:40:03",
            10,
            "17:41:03",
            "Advance podinfo.test canary weight 10",
        ),
        check1,
        traffic1,
        progress(
            "17:41:03",
            30,
            "17:42:03",
            "Advance podinfo.test canary weight 30",
        ),
        check2,
        progress(
            "17:42:03",
            50,
            "17:43:03",
            "Advance podinfo.test canary weight 50",
        ),
        check3,
        gate,
        open,
        copy,
        route,
        done,
        v,
    ]
}

/// Paused and resumed by an operator, then rolled back after two failed
/// checks (threshold 2), the second with a metric that has no value.
pub(super) fn rolled_back() -> Vec<Event> {
    let mut run = run_info();
    run.threshold = 2;
    let mut started = step(ev(Kind::Started, "17:40:03"), 0, "17:41:03");
    started.run = Some(run);

    let request = |hms: &str, action: &str, ms: u64, paused: bool| {
        let mut e = step(ev(Kind::Request, hms), 10, "17:41:03");
        e.paused = paused;
        e.request = Some(RequestInfo {
            action: action.into(),
            by: "alice@laptop pid 4242".into(),
            requested_at: t(hms),
            reacted_after_ms: ms,
        });
        e
    };
    let mut paused = request("17:40:30", "pause", 312, true);
    paused.next_check = None;
    let resumed = request("17:40:50", "resume", 280, false);

    let mut check1 = step(ev(Kind::Check, "17:41:03"), 10, "17:42:03");
    check1.failed_checks = 1;
    check1.metrics = vec![success_rate(Some(91.2)), duration(Some(212.0))];
    check1.hooks = vec![HookRecord {
        name: "load-test".into(),
        result: "passed".into(),
        message: None,
    }];

    let mut traffic1 = step(ev(Kind::Traffic, "17:41:03"), 10, "17:42:03");
    traffic1.failed_checks = 1;
    traffic1.traffic = Some(traffic(91.2, 212.0));

    let mut halt = progress(
        "17:41:03",
        10,
        "17:42:03",
        "Halt podinfo.test advancement request-success-rate 91.20% < 99%",
    );
    halt.failed_checks = 1;

    let mut warning = step(ev(Kind::Warning, "17:41:40"), 10, "17:42:03")
        .with_message("metrics server answered 503 Service Unavailable; trying again");
    warning.failed_checks = 1;

    let mut check2 = step(ev(Kind::Check, "17:42:03"), 10, "17:43:03");
    check2.failed_checks = 2;
    let mut no_value = duration(None);
    no_value.error = Some("no data in the last 1m".into());
    check2.metrics = vec![success_rate(Some(88.5)), no_value];

    let mut back = progress(
        "17:42:03",
        0,
        "17:43:03",
        "Rolling back podinfo.test failed checks threshold reached 2",
    );
    back.failed_checks = 2;
    back.phase = Phase::Failed;
    back.next_check = None;
    let mut down = back
        .clone()
        .with_message("Canary failed! Scaling down podinfo.test");
    down.time = t("17:42:04");
    let mut v = verdict(
        "17:42:04",
        Phase::Failed,
        "rolledBack",
        1,
        Some("failed checks threshold reached 2"),
    );
    v.failed_checks = 2;

    vec![
        started,
        progress(
            "17:40:03",
            0,
            "17:41:03",
            "New revision detected! Scaling up podinfo.test",
        ),
        progress(
            "17:40:03",
            10,
            "17:41:03",
            "Advance podinfo.test canary weight 10",
        ),
        paused,
        resumed,
        check1,
        traffic1,
        halt,
        warning,
        check2,
        back,
        down,
        v,
    ]
}

/// The events of `events` as if they were another canary's.
pub(super) fn renamed(events: Vec<Event>, canary: &str, namespace: &str) -> Vec<Event> {
    events
        .into_iter()
        .map(|mut e| {
            e.canary = canary.into();
            e.namespace = namespace.into();
            if let Some(m) = e.message.take() {
                e.message = Some(m.replace("podinfo.test", &format!("{canary}.{namespace}")));
            }
            e
        })
        .collect()
}

/// Two event lists merged in time order (stable: `a` first on ties).
pub(super) fn interleaved(a: Vec<Event>, b: Vec<Event>) -> Vec<Event> {
    let mut all: Vec<(usize, Event)> = a.into_iter().map(|e| (0, e)).collect();
    all.extend(b.into_iter().map(|e| (1, e)));
    all.sort_by_key(|(src, e)| (e.time, *src));
    all.into_iter().map(|(_, e)| e).collect()
}
