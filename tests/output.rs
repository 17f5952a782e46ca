//! What `canary run` shows, pinned by snapshots of real rollouts on the
//! simulated cluster: the JSON events (decoded strictly), the log lines,
//! the live view's frames at 80 and 200 columns, the summary and its
//! Markdown for `GITHUB_STEP_SUMMARY`, and `canary status`.
//!
//! Timestamps, durations and measured values differ from run to run: the
//! recorded events get fixed ones before they are rendered, and the
//! binary's own text (status, the step summary) has them redacted;
//! everything else (which events, phases, weights, verdicts, which checks
//! passed, messages, layout) is pinned. `waiting` events are left out:
//! whether a run sees the canary not yet ready depends on timing.

use std::process::Output;

use canary_core::event::{Event, Kind};
use canary_sim::scenario::Scenario;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::{stderr, stdout};

/// Redacts what differs between runs: times, durations, measured values.
fn redact(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
        (r"\d+(\.\d+)?(ms|s)\b", "[dur]"),
        (r"\b\d+m( [dur])?", "[dur]"),
        (r"\d+\.\d+", "[n]"),
        (r"pid \d+", "pid [pid]"),
    ];
    let mut out = text.to_string();
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// The seed world made predictable: ten times the traffic, and a 3.1.2
/// that answers fast but fails half its requests, so its success rate
/// fails every check while its latency passes.
fn predictable() -> Scenario {
    let text = canary_sim::scenario::SEED
        .replace("rps: 10", "rps: 100")
        .replace(
            "successRate: 60%\n    latency: {median: 1s, p99: 1500ms}",
            "successRate: 50%\n    latency: {median: 9ms, p99: 35ms}",
        );
    assert!(text.contains("rps: 100") && !text.contains("60%"));
    Scenario::from_yaml("predictable.yaml", &text).expect("scenario parses")
}

/// Three 40% steps every 3 s (the Prometheus of the simulated cluster
/// scrapes every second, so even the first check has two samples of the
/// canary's series to rate), with the load test but without the
/// acceptance test, which a failing release would fail before any check.
fn spec() -> String {
    let spec = FAST
        .replace("interval: 1s", "interval: 3s")
        .replace("stepWeight: 20", "stepWeight: 40");
    let start = spec.find("      - name: acceptance-test").unwrap();
    let end = spec.find("      - name: load-test").unwrap();
    format!("{}{}", &spec[..start], &spec[end..])
}

/// The events of a `-o json` run, each line decoded strictly (an unknown
/// field is an error), without the timing-dependent `waiting` events.
pub fn events(out: &Output) -> Vec<Event> {
    stdout(out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Event>(l).unwrap_or_else(|e| panic!("{e}: not an event: {l}"))
        })
        .filter(|e| e.kind != Kind::Waiting)
        .collect()
}

/// Every event a run printed, waiting ones included.
fn all_events(out: &Output) -> Vec<Event> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).expect("an event"))
        .collect()
}

/// The events with what differs between runs set to fixed values before
/// anything is rendered (so table layouts hold still too): times count
/// seconds from a fixed start, metric values are a passing or a failing
/// value, traffic figures are fixed, durations in messages are redacted.
fn normalized(events: &[Event]) -> Vec<Event> {
    use canary_core::time::Time;
    let t0 = Time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap().0;
    let at = |i: usize| Time(t0 + 1000 * i as i64);
    let fixed = canary_core::event::VersionStats {
        request_rate: Some(10.0),
        success_rate: Some(100.0),
        latency_p99_ms: Some(30.0),
    };
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e.time = at(i);
            e.next_check = e.next_check.map(|_| at(i + 3));
            for m in &mut e.metrics {
                m.value = m.value.map(|_| match (m.name.as_str(), m.passed) {
                    ("request-duration", true) => 30.0,
                    ("request-duration", false) => 1000.0,
                    (_, true) => 100.0,
                    (_, false) => 50.0,
                });
            }
            if let Some(t) = &mut e.traffic {
                let keep = |v: &canary_core::event::VersionStats| {
                    if v.request_rate.is_some() {
                        fixed.clone()
                    } else {
                        v.clone()
                    }
                };
                t.primary = keep(&t.primary);
                t.canary = keep(&t.canary);
            }
            if let Some(r) = &mut e.request {
                r.requested_at = at(i);
                r.reacted_after_ms = 10;
            }
            e.message = e.message.map(|m| redact(&m));
            e
        })
        .collect()
}

fn json_lines(events: &[Event]) -> String {
    let lines: Vec<String> = events.iter().map(Event::to_json_line).collect();
    lines.join("\n")
}

fn log_lines(events: &[Event]) -> String {
    let mut lines = canary::render::Lines::new();
    let out: Vec<String> = events.iter().filter_map(|e| lines.line(e, false)).collect();
    out.join("\n")
}

/// The live view after each check and at the end, as a terminal of
/// `width` columns shows it.
fn frames(events: &[Event], width: usize) -> String {
    let mut board = canary::render::Board::default();
    let mut out = String::new();
    for e in events {
        board.apply(e);
        if matches!(e.kind, Kind::Check | Kind::Verdict) {
            out.push_str(&format!("── after {} ──\n", e.kind.as_str()));
            for line in board.render(e.time, width, false) {
                assert!(unicode_width(&line) <= width, "wider than {width}: {line}");
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

fn unicode_width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// `canary run -o json`, appending its summary to `summary` as a CI job's
/// step summary.
async fn run_json(c: &Cluster, summary: &std::path::Path) -> Output {
    let mut cmd = crate::util::canary();
    cmd.arg("run")
        .arg(&c.spec)
        .args(["-o", "json", "--traffic", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .env("GITHUB_STEP_SUMMARY", summary);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

async fn status(c: &Cluster, args: &[&str]) -> String {
    let out = crate::util::canary()
        .arg("status")
        .args(["-n", "prod", "--exit-zero", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    redact(&stdout(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_and_a_rolled_back_rollout_as_every_output_shows_them() {
    let c = Cluster::start_in(predictable(), &spec()).await;
    c.initialise().await;
    let summary = c.spec.with_file_name("step-summary.md");

    c.set_image("3.1.1");
    let promoted_out = run_json(&c, &summary).await;
    assert_exit(&promoted_out, 0);
    let promoted = events(&promoted_out);
    assert_eq!(promoted.first().map(|e| e.kind), Some(Kind::Started));
    assert_eq!(
        promoted
            .last()
            .and_then(|e| e.outcome.as_ref())
            .map(|o| o.result.as_str()),
        Some("promoted")
    );
    let promoted = normalized(&promoted);
    insta::assert_snapshot!("promoted_json", json_lines(&promoted));
    insta::assert_snapshot!("promoted_lines", log_lines(&promoted));
    insta::assert_snapshot!("promoted_frames_80", frames(&promoted, 80));
    insta::assert_snapshot!("promoted_frames_200", frames(&promoted, 200));
    insta::assert_snapshot!(
        "promoted_summary",
        canary::render::summary_table(&promoted, 100)
    );
    insta::assert_snapshot!("promoted_status", status(&c, &[]).await);

    c.set_image("3.1.2");
    let out = run_json(&c, &summary).await;
    assert_exit(&out, 1);
    let rolled_back = events(&out);
    // What each version served, as the metrics server measured it: the
    // primary (3.1.1) answers every request, the canary (3.1.2) half.
    let seen = rolled_back
        .iter()
        .filter_map(|e| e.traffic.clone())
        .find(|t| t.canary.success_rate.is_some())
        .expect("a traffic event with the canary's success rate");
    let (primary, canary) = (seen.primary, seen.canary);
    assert!(primary.success_rate.unwrap() > 99.9, "{primary:?}");
    assert!(canary.success_rate.unwrap() < 95.0, "{canary:?}");
    assert!(primary.request_rate.unwrap() > 0.0 && canary.request_rate.unwrap() > 0.0);
    assert!(canary.latency_p99_ms.unwrap() < 100.0, "{canary:?}");
    let rolled_back = normalized(&rolled_back);
    insta::assert_snapshot!("rolled_back_json", json_lines(&rolled_back));
    insta::assert_snapshot!("rolled_back_lines", log_lines(&rolled_back));
    insta::assert_snapshot!("rolled_back_frames_80", frames(&rolled_back, 80));
    insta::assert_snapshot!("rolled_back_frames_200", frames(&rolled_back, 200));
    insta::assert_snapshot!(
        "rolled_back_summary",
        canary::render::summary_table(&rolled_back, 100)
    );
    insta::assert_snapshot!("rolled_back_status", status(&c, &[]).await);

    // Both runs appended their summary for the CI job's page, rendered
    // from the very events they printed. A row holds what happened within
    // one second, so the snapshot is rendered from the events with fixed
    // times: whether the primary's pods turn ready in the second the
    // traffic returns to it is the simulated cluster's timing.
    let markdown = std::fs::read_to_string(&summary).expect("step summary written");
    let printed = [&promoted_out, &out].map(|o| canary::render::step_summary(&all_events(o)));
    assert_eq!(markdown, printed.concat());
    let fixed = [promoted, rolled_back].map(|e| canary::render::step_summary(&e));
    insta::assert_snapshot!("step_summary_markdown", redact(&fixed.concat()));
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_the_run_prints_lines_then_the_verdict_and_the_summary() {
    let c = Cluster::start_in(predictable(), &spec()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    // Append-only lines: no carriage returns, no cursor movement.
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let event_line = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ podinfo\.prod ").unwrap();
    for line in err.lines() {
        assert!(
            event_line.is_match(line),
            "not a timestamped event line: {line}"
        );
    }
    let text = stdout(&out);
    // The verdict once, with how long it took, then the summary.
    assert!(text.starts_with("podinfo.prod: promoted in "), "{text}");
    assert_eq!(text.matches("promoted").count(), 1, "{text}");
    assert!(text.contains(" passed, hooks load-test"), "{text}");

    // A run with nothing to do says so in one line.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stdout(&out).starts_with("podinfo.prod: nothing to do"));

    // -q: nothing but the exit code.
    c.set_image("3.1.0");
    let out = c.run(&["-q"]).await;
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    c.world.shutdown().await;
}

/// A metric whose query finds no series: while the canary has had traffic
/// for less than the metric's window, a round that finds no values is no
/// check (neither counted nor shown as one, only said); once the window has
/// passed, each such round is a failed check, and the threshold of them
/// rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_without_values_before_the_window_has_passed_are_not_checks() {
    let template = "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: nothing
  namespace: prod
spec:
  provider:
    type: prometheus
    address: http://prometheus.linkerd-viz:9090
  query: sum(rate(no_such_series_total{namespace=\"{{ namespace }}\"}[{{ interval }}]))
---
";
    let metric = "      - name: nothing
        templateRef:
          name: nothing
        thresholdRange:
          min: 1
        interval: 10s
    webhooks:
";
    let spec = FAST.replacen("    webhooks:\n", metric, 1);
    assert_ne!(spec, FAST);
    let c = Cluster::start_in(predictable(), &format!("{template}{spec}")).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut cmd = crate::util::canary();
    cmd.arg("run")
        .arg(&c.spec)
        .args(["-o", "json", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .timeout(std::time::Duration::from_secs(120));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 1);
    let events = events(&out);
    let said = |e: &&Event| {
        e.kind == Kind::Progress
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("No values yet for nothing"))
    };
    assert!(events.iter().any(|e| said(&e)), "{}", stdout(&out));
    let without_values: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind == Kind::Check
                && e.metrics
                    .iter()
                    .any(|m| m.name == "nothing" && m.value.is_none())
        })
        .collect();
    // FAST's threshold: three checks without values once the window has
    // passed, each counted, and no others.
    assert_eq!(without_values.len(), 3, "{}", stdout(&out));
    let counted: Vec<u32> = without_values.iter().map(|e| e.failed_checks).collect();
    assert_eq!(counted, [1, 2, 3], "{}", stdout(&out));
    c.world.shutdown().await;
}

/// A spec without a provider: the run detects it, which is a note of its
/// own, and still has nothing else to say when there is nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_nothing_to_do_prints_one_line_when_it_detected_the_provider() {
    let detected = FAST.replace("  provider: linkerd\n", "");
    assert_ne!(detected, FAST);
    let c = Cluster::start_in(predictable(), &detected).await;
    c.initialise().await;
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Using provider linkerd"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("podinfo.prod: nothing to do"),
        "{}",
        stdout(&out)
    );
    c.world.shutdown().await;
}

/// `canary run` on a terminal, as a person sees it: Ctrl-C is said by the
/// live view and then by the one verdict line, never by an `error:`; the
/// run that resumes it ends with one `promoted` line above its summary.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_ctrl_c_and_the_verdict_are_each_said_once() {
    let c = Cluster::start_in(predictable(), &spec()).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let on_terminal = || {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"));
        cmd.arg("run")
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS")
            .env("TERM", "xterm-256color");
        crate::util::Terminal::spawn(cmd, 80)
    };

    let run = on_terminal();
    c.wait_for_analysis().await;
    crate::util::interrupt(&run.child);
    let (code, screen) = run.finish().await;
    assert_eq!(code, Some(130), "{screen}");
    assert!(!screen.contains("error:"), "{screen}");
    // The verdict line, once, at the left margin.
    let verdict = screen
        .lines()
        .filter(|l| l.starts_with("podinfo.prod: interrupted ("))
        .count();
    assert_eq!(verdict, 1, "{screen}");
    // The acknowledgement is the view's message, not a line of its own.
    assert!(
        !screen.lines().any(|l| l.starts_with("interrupted")),
        "{screen}"
    );
    assert_eq!(
        screen.matches("interrupted: stopping").count(),
        screen.matches("› interrupted: stopping").count(),
        "{screen}"
    );

    // Resumed on a terminal to its promotion.
    let run = on_terminal();
    let (code, screen) = run.finish().await;
    assert_eq!(code, Some(0), "{screen}");
    let lines: Vec<&str> = screen.lines().collect();
    let verdicts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("podinfo.prod: promoted in "))
        .collect();
    assert_eq!(verdicts.len(), 1, "{screen}");
    // Below the last frame: the summary table and nothing else that
    // says `promoted` again.
    let table = lines.iter().position(|l| l.starts_with('┌')).unwrap();
    assert!(table > verdicts[0], "{screen}");
    assert!(
        lines[table..].iter().all(|l| !l.contains("promoted")),
        "{screen}"
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_twenty_step_run_fits_in_25_lines_of_80_columns() {
    // Two seconds a step: the first check already has two scrapes of the
    // canary's traffic to rate.
    let twenty = FAST
        .replace("stepWeight: 20", "stepWeight: 5")
        .replace("interval: 1s", "interval: 2s");
    let c = Cluster::start_in(predictable(), &twenty).await;
    c.initialise().await;
    c.set_image("3.1.1");
    let mut cmd = crate::util::canary();
    cmd.arg("run")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env("COLUMNS", "80")
        .timeout(std::time::Duration::from_secs(120));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 0);
    let text = stdout(&out);
    eprintln!("{text}");
    assert!(
        text.contains(" passed, hooks load-test"),
        "healthy steps not folded:\n{text}"
    );
    assert!(
        text.lines().count() <= 25,
        "{} lines:\n{text}",
        text.lines().count()
    );
    for l in text.lines() {
        assert!(
            console::measure_text_width(l) <= 80,
            "wider than 80 columns: {l}"
        );
    }
    c.world.shutdown().await;
}
