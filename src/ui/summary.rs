//! The end-of-run summary: per canary, how the run ended and its history
//! in one row per step, as a text table for stdout and as Markdown for a
//! CI job's summary page (`GITHUB_STEP_SUMMARY`).
//!
//! Rows come from checks, progress messages, operator requests and
//! warnings; progress messages of the same second join the row before
//! them, so a step (its check, then "Advance ... weight 30") is one row.
//! Waiting and traffic events make no rows: they would drown the steps of
//! a long rollout. Metrics and hooks are marked ✓ or ✗ in both forms.

use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table};

use super::fmt;
use canary_core::engine::state::Phase;
use canary_core::event::{Event, Kind, OutcomeInfo, RunInfo};
use canary_core::time::Time;

/// One canary's run, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CanarySummary {
    /// `name.namespace`.
    pub id: String,
    /// The rollout of the last `started` event.
    pub run: Option<RunInfo>,
    /// The first and the last event's time.
    pub start: Time,
    pub end: Time,
    pub outcome: Option<OutcomeInfo>,
    /// The state after the last event.
    pub phase: Phase,
    pub canary_weight: u32,
    pub failed_checks: u32,
    pub rows: Vec<Row>,
}

/// One step of the history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Since the canary's first event.
    pub offset: Duration,
    pub canary_weight: u32,
    pub iterations: u32,
    /// Each metric's name, its value (`99.87%`, `no value (why)`) and
    /// whether it passed.
    pub metrics: Vec<(String, String, bool)>,
    /// `load-test` and its result (`passed`, `failed`, `skipped`).
    pub hooks: Vec<(String, String)>,
    /// What happened, in order.
    pub notes: Vec<String>,
    /// Whether progress messages of the same second may join this row.
    joinable: bool,
    /// A row of checks (the analysis's verdict on one interval).
    check: bool,
    /// For a row that folds several steps: when the last one was, and
    /// the weight and iteration the first one started from.
    folded: Option<Folded>,
}

/// What a row folding several steps keeps of the first and the last.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Folded {
    pub until: Duration,
    pub from_weight: u32,
    pub from_iteration: u32,
}

/// The canaries of `events`, in the order they first appear.
pub(crate) fn summarize(events: &[Event]) -> Vec<CanarySummary> {
    let mut all = Summaries::default();
    for e in events {
        all.add(e);
    }
    all.all
}

/// Each canary's summary, folded event by event as a run goes: what a
/// run keeps of its events for the verdict lines and the summary, so a
/// long run or a hundred canaries do not keep every event.
#[derive(Debug, Default)]
pub(crate) struct Summaries {
    /// In the order the canaries first appeared.
    all: Vec<CanarySummary>,
    /// `name.namespace` to its place in `all`.
    index: std::collections::HashMap<String, usize>,
}

impl Summaries {
    /// The summaries, in the order the canaries first appeared.
    pub(crate) fn all(&self) -> &[CanarySummary] {
        &self.all
    }

    /// The summary of the canary `id` (`name.namespace`).
    pub(crate) fn get(&self, id: &str) -> Option<&CanarySummary> {
        self.index.get(id).map(|&i| &self.all[i])
    }

    /// Folds one more event into its canary's summary.
    pub(crate) fn add(&mut self, e: &Event) {
        let id = e.id();
        let i = match self.index.get(&id) {
            Some(&i) => i,
            None => {
                self.all.push(CanarySummary {
                    id: id.clone(),
                    run: None,
                    start: e.time,
                    end: e.time,
                    outcome: None,
                    phase: e.phase,
                    canary_weight: e.canary_weight,
                    failed_checks: e.failed_checks,
                    rows: Vec::new(),
                });
                self.index.insert(id, self.all.len() - 1);
                self.all.len() - 1
            }
        };
        let s = &mut self.all[i];
        s.end = s.end.max(e.time);
        s.phase = e.phase;
        s.canary_weight = e.canary_weight;
        let failed_before = std::mem::replace(&mut s.failed_checks, e.failed_checks);
        let offset = Duration::from_secs(e.time.since(s.start).as_secs());
        let new_row = |notes: Vec<String>, joinable: bool| Row {
            offset,
            canary_weight: e.canary_weight,
            iterations: e.iterations,
            metrics: Vec::new(),
            hooks: Vec::new(),
            notes,
            joinable,
            check: false,
            folded: None,
        };
        match e.kind {
            Kind::Started => {
                if e.run.is_some() {
                    s.run = e.run.clone();
                }
            }
            Kind::Progress => {
                let Some(m) = e.message.clone() else {
                    return;
                };
                match s.rows.last_mut() {
                    Some(r) if r.joinable && r.offset == offset => {
                        // A check's row keeps the weight it measured; a row
                        // of steps shows where they led.
                        if r.metrics.is_empty() {
                            r.canary_weight = e.canary_weight;
                            r.iterations = e.iterations;
                        }
                        r.notes.push(m);
                    }
                    _ => s.rows.push(new_row(vec![m], true)),
                }
            }
            Kind::Check => {
                let run = s.run.as_ref();
                let mut row = new_row(Vec::new(), true);
                row.check = true;
                row.metrics = e
                    .metrics
                    .iter()
                    .map(|m| {
                        let v = match m.value {
                            Some(v) => fmt::value(v, fmt::unit_of(run, &m.name)),
                            None => "no value".to_string(),
                        };
                        (m.name.clone(), v, m.passed)
                    })
                    .collect();
                row.hooks = e
                    .hooks
                    .iter()
                    .map(|h| (h.name.clone(), h.result.clone()))
                    .collect();
                let passed = e.metrics.iter().all(|m| m.passed)
                    && e.hooks.iter().all(|h| h.result != "failed");
                let threshold = run.map(|r| format!("/{}", r.threshold)).unwrap_or_default();
                if !passed && e.failed_checks <= failed_before {
                    // Not counted (no values yet): the message that says
                    // so joins the row.
                    s.rows.push(row);
                    return;
                }
                row.notes.push(if passed {
                    "checks passed".to_string()
                } else {
                    format!("checks failed ({}{threshold})", e.failed_checks)
                });
                // Why a metric has no value is too long for its cell.
                for m in &e.metrics {
                    if m.value.is_none() {
                        let why = m.error.as_deref().unwrap_or("no value");
                        row.notes.push(format!("{}: {why}", m.name));
                    }
                }
                if !e.hooks.is_empty() {
                    let hooks: Vec<String> = e
                        .hooks
                        .iter()
                        .map(|h| {
                            let why = h
                                .message
                                .as_deref()
                                .filter(|m| !m.is_empty())
                                .map(|m| format!(" ({m})"))
                                .unwrap_or_default();
                            format!("{} {}{why}", h.name, hook_mark(&h.result))
                        })
                        .collect();
                    row.notes.push(format!("hooks: {}", hooks.join(", ")));
                }
                s.rows.push(row);
            }
            Kind::Request => {
                let note = match &e.request {
                    Some(r) => format!(
                        "{} requested by {}, acted on after {}",
                        r.action,
                        r.by,
                        fmt::span(Duration::from_millis(r.reacted_after_ms))
                    ),
                    None => e.message.clone().unwrap_or_default(),
                };
                s.rows.push(new_row(vec![note], false));
            }
            Kind::Warning => {
                let note = format!("warning: {}", e.message.as_deref().unwrap_or_default());
                s.rows.push(new_row(vec![note], false));
            }
            Kind::Verdict => s.outcome = e.outcome.clone(),
            Kind::Traffic | Kind::Waiting => {}
        }
    }
}

/// Whether the run left this canary as it found it: nothing to do, a
/// revision that already failed, a suspended canary. Its verdict line says
/// all there is; the notes it gathered on the way (the provider it
/// detected) make no table.
fn did_nothing(s: &CanarySummary) -> bool {
    s.outcome.as_ref().is_some_and(|o| {
        matches!(
            o.result.as_str(),
            "noChange" | "alreadyFailed" | "suspended"
        )
    })
}

/// `podinfo.test: promoted in 6m`, `podinfo.test: rolled back after 2m 1s
/// (failed checks threshold reached 2)`.
pub(crate) fn heading(s: &CanarySummary) -> String {
    let took = fmt::span(Duration::from_secs(s.end.since(s.start).as_secs()));
    match &s.outcome {
        Some(o) => {
            let reason = o
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            match o.result.as_str() {
                "promoted" => format!("{}: promoted in {took}", s.id),
                "initialized" => format!("{}: initialised{reason}", s.id),
                "noChange" => format!("{}: nothing to do{reason}", s.id),
                "alreadyFailed" => format!("{}: this revision already failed{reason}", s.id),
                _ => {
                    let words = super::outcome_words(o);
                    let what = words.split(" (").next().unwrap_or_default();
                    format!("{}: {what} after {took}{reason}", s.id)
                }
            }
        }
        None => format!(
            "{}: no verdict after {took}; last {} at {}%",
            s.id,
            s.phase.as_str(),
            s.canary_weight
        ),
    }
}

fn by_iterations(s: &CanarySummary) -> bool {
    s.run.as_ref().is_some_and(|r| r.iterations > 0)
}

fn mark(passed: bool) -> &'static str {
    if passed { "✓" } else { "✗" }
}

fn hook_mark(result: &str) -> &'static str {
    match result {
        "passed" => "✓",
        "failed" => "✗",
        _ => "-",
    }
}

/// The columns of a canary's table: `short` ones (time, weights, one per
/// metric in the order they first appear, each cell a value and its mark)
/// and then what happened, which takes the rest of the width.
struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<Vec<String>>>,
}

fn grid(s: &CanarySummary) -> Grid {
    let iterations = by_iterations(s);
    let mut names: Vec<&str> = Vec::new();
    for r in &s.rows {
        for (name, _, _) in &r.metrics {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let mut header: Vec<String> = vec!["time".into(), "primary/canary".into()];
    if iterations {
        header.push("iteration".into());
    }
    header.extend(names.iter().map(|n| n.to_string()));
    header.push("what happened".into());
    let rows = s
        .rows
        .iter()
        .map(|r| {
            let weights = |w: u32| format!("{}/{}", 100u32.saturating_sub(w), w);
            let mut cells = match &r.folded {
                None => vec![
                    vec![format!("+{}", fmt::span(r.offset))],
                    vec![weights(r.canary_weight)],
                ],
                Some(f) => vec![
                    vec![
                        format!("+{}", fmt::span(r.offset)),
                        format!("…{}", fmt::span(f.until)),
                    ],
                    if f.from_weight == r.canary_weight {
                        vec![weights(r.canary_weight)]
                    } else {
                        vec![
                            weights(f.from_weight),
                            format!("→ {}", weights(r.canary_weight)),
                        ]
                    },
                ],
            };
            if iterations {
                cells.push(match &r.folded {
                    Some(f) if f.from_iteration != r.iterations => {
                        vec![f.from_iteration.to_string(), format!("→ {}", r.iterations)]
                    }
                    _ => vec![r.iterations.to_string()],
                });
            }
            for name in &names {
                cells.push(
                    r.metrics
                        .iter()
                        .filter(|(n, _, _)| n == name)
                        .map(|(_, v, passed)| format!("{v} {}", mark(*passed)))
                        .collect(),
                );
            }
            cells.push(r.notes.clone());
            cells
        })
        .collect();
    Grid { header, rows }
}

/// A long header broken after its dashes and slashes, so that a column
/// is as wide as its values rather than its name.
fn stacked(name: &str) -> String {
    if name.len() <= 10 {
        return name.to_string();
    }
    let mut out = String::new();
    let mut line = 0;
    for part in name.split_inclusive(['-', '/']) {
        if line > 0 && line + part.len() > 10 {
            out.push('\n');
            line = 0;
        }
        out.push_str(part);
        line += part.len();
    }
    out
}

/// The summary as text tables for a terminal of `width` columns, with
/// runs of healthy steps folded into one row each.
pub fn table(events: &[Event], width: u16) -> String {
    table_with(events, width, false)
}

/// The summary as text tables, every step on its own row when `full`.
/// It follows the verdict lines, which said how each run ended: with
/// several canaries each table is titled by its canary's name and the time
/// it took; a canary without steps (nothing to do) has no table.
pub(crate) fn table_with(events: &[Event], width: u16, full: bool) -> String {
    tables(&summarize(events), width, full)
}

/// [`table_with`] of summaries folded as the run went.
pub(crate) fn tables(summaries: &[CanarySummary], width: u16, full: bool) -> String {
    let mut out = String::new();
    let all: Vec<CanarySummary> = summaries
        .iter()
        .filter(|s| !s.rows.is_empty() && !did_nothing(s))
        .cloned()
        .collect();
    // One canary's table needs no title: its verdict line is just above.
    let titled = all.len() > 1;
    for mut s in all {
        if !full {
            s.rows = fold(&s.rows, by_iterations(&s), s.run.as_ref());
        }
        if !out.is_empty() {
            out.push('\n');
        }
        if titled {
            let took = fmt::span(Duration::from_secs(s.end.since(s.start).as_secs()));
            out.push_str(&format!("{}, {took}:\n", s.id));
        }
        let g = grid(&s);
        let short = g.header.len() - 1;
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .set_header(g.header.iter().map(|h| stacked(h)));
        for r in g.rows {
            t.add_row(r.into_iter().map(|c| c.join("\n")));
        }
        for i in 0..short {
            if let Some(c) = t.column_mut(i) {
                c.set_constraint(ColumnConstraint::ContentWidth);
                if i < 2 {
                    c.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

/// Runs of at least two healthy steps (checks passed, hooks passed, then
/// the advance they allowed), folded into one row each:
/// `checks 3–17 passed, weight 15 → 85`, with each metric's worst
/// value (`≥ 99.87%` for a minimum, `≤ 212ms` for a maximum; the range
/// when the run did not say). Everything else (the start, failed checks,
/// requests, warnings, promotion) keeps its own row.
fn fold(rows: &[Row], iterations: bool, run: Option<&RunInfo>) -> Vec<Row> {
    let step_note = |n: &String| n.starts_with("hooks: ") || n.starts_with("Advance ");
    let healthy = |r: &Row| {
        r.check
            && r.metrics.iter().all(|(_, _, passed)| *passed)
            && r.hooks.iter().all(|(_, result)| result != "failed")
            && r.notes.first().map(String::as_str) == Some("checks passed")
    };
    // What a healthy row says besides its step (Flagger's messages of the
    // same second: "Copying ...", "Pre-rollout check ... passed").
    let extras = |r: &Row| -> Vec<String> {
        r.notes[1..]
            .iter()
            .filter(|n| !step_note(n))
            .cloned()
            .collect()
    };
    let advance = |r: &Row| !r.check && r.joinable && r.notes.iter().all(step_note);
    let mut out = Vec::new();
    let mut checks_before = 0;
    let mut i = 0;
    while i < rows.len() {
        // A run of healthy steps; a row with more to say ends it.
        let mut j = i;
        while j < rows.len() && (healthy(&rows[j]) || advance(&rows[j])) {
            j += 1;
            if healthy(&rows[j - 1]) && !extras(&rows[j - 1]).is_empty() {
                break;
            }
        }
        let steps = &rows[i..j];
        let checks = steps.iter().filter(|r| r.check).count();
        if checks < 2 {
            let next = j.max(i + 1);
            for r in &rows[i..next] {
                checks_before += usize::from(r.check);
                let mut r = r.clone();
                // Hooks alone (pre-rollout) that passed: Flagger's message
                // of the same row says so.
                if healthy(&r) && r.metrics.is_empty() && !extras(&r).is_empty() {
                    r.notes = r.notes[1..]
                        .iter()
                        .filter(|n| !n.starts_with("hooks: "))
                        .cloned()
                        .collect();
                }
                out.push(r);
            }
            i = next;
            continue;
        }
        let (first, last) = (&steps[0], &steps[steps.len() - 1]);
        let mut metrics: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value, _) in steps.iter().flat_map(|r| &r.metrics) {
            match metrics.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value.clone()),
                None => metrics.push((name.clone(), vec![value.clone()])),
            }
        }
        let mut hooks: Vec<&str> = Vec::new();
        for (name, _) in steps.iter().flat_map(|r| &r.hooks) {
            if !hooks.contains(&name.as_str()) {
                hooks.push(name);
            }
        }
        let mut note = format!(
            "checks {}–{} passed",
            checks_before + 1,
            checks_before + checks
        );
        if !hooks.is_empty() {
            note.push_str(&format!(", hooks {} ✓", hooks.join(", ")));
        }
        if iterations {
            note.push_str(&format!(
                ", iteration {} → {}",
                first.iterations, last.iterations
            ));
        } else {
            note.push_str(&format!(
                ", weight {} → {}",
                first.canary_weight, last.canary_weight
            ));
        }
        out.push(Row {
            offset: first.offset,
            canary_weight: last.canary_weight,
            iterations: last.iterations,
            metrics: metrics
                .into_iter()
                .map(|(name, values)| {
                    let bound = run.and_then(|r| r.metrics.iter().find(|m| m.name == name));
                    let shown = match bound {
                        Some(m) if m.min.is_some() && m.max.is_none() => worst(&values, false),
                        Some(m) if m.max.is_some() && m.min.is_none() => worst(&values, true),
                        _ => range(&values),
                    };
                    (name, shown, true)
                })
                .collect(),
            hooks: Vec::new(),
            notes: vec![note],
            joinable: false,
            check: false,
            folded: Some(Folded {
                until: last.offset,
                from_weight: first.canary_weight,
                from_iteration: first.iterations,
            }),
        });
        let rest = if healthy(last) {
            extras(last)
        } else {
            Vec::new()
        };
        if !rest.is_empty() {
            out.push(Row {
                offset: last.offset,
                canary_weight: last.canary_weight,
                iterations: last.iterations,
                metrics: Vec::new(),
                hooks: Vec::new(),
                notes: rest,
                joinable: false,
                check: false,
                folded: None,
            });
        }
        checks_before += checks;
        i = j;
    }
    out
}

/// The highest of formatted values as `≤ 1.2s`, or the lowest as
/// `≥ 99.21%`; the value alone when they are all the same.
fn worst(values: &[String], highest: bool) -> String {
    let sorted = by_magnitude(values);
    match (sorted.first(), sorted.last()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (_, Some(hi)) if highest => format!("≤ {hi}"),
        (Some(lo), _) => format!("≥ {lo}"),
        _ => String::new(),
    }
}

/// The lowest and the highest of formatted values (`99.21%`, `30ms`,
/// `1.2s`), or the one value when they are all the same.
fn range(values: &[String]) -> String {
    let sorted = by_magnitude(values);
    match (sorted.first(), sorted.last()) {
        (Some(lo), Some(hi)) if lo != hi => format!("{lo}–{hi}"),
        (Some(one), _) => one.to_string(),
        _ => String::new(),
    }
}

/// Formatted values, distinct, from the smallest to the largest.
fn by_magnitude(values: &[String]) -> Vec<&String> {
    let magnitude = |v: &str| -> f64 {
        let digits: String = v
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        let n: f64 = digits.parse().unwrap_or(f64::NAN);
        let unit = &v[digits.len()..];
        match unit {
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    };
    let mut sorted: Vec<&String> = values.iter().collect();
    sorted.sort_by(|a, b| magnitude(a).total_cmp(&magnitude(b)));
    sorted.dedup();
    sorted
}

/// The summary as GitHub-flavoured Markdown: a heading and a table per
/// canary.
pub fn markdown(events: &[Event]) -> String {
    markdown_of(&summarize(events))
}

/// [`markdown`] of summaries folded as the run went.
pub(crate) fn markdown_of(summaries: &[CanarySummary]) -> String {
    let mut out = String::new();
    for s in summaries {
        out.push_str(&format!("### {}\n\n", md_escape(&heading(s))));
        if s.rows.is_empty() {
            continue;
        }
        let g = grid(s);
        let header: Vec<String> = g.header.iter().map(|h| md_escape(h)).collect();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        let align: Vec<&str> = (0..header.len())
            .map(|i| if i < 2 { "---:" } else { "---" })
            .collect();
        out.push_str(&format!("| {} |\n", align.join(" | ")));
        for r in g.rows {
            let cells: Vec<String> = r
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|l| md_escape(l))
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    }
    out
}

/// Text that stays text in a Markdown table cell.
fn md_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures;

    fn both() -> Vec<Event> {
        fixtures::interleaved(
            fixtures::promoted(),
            fixtures::renamed(fixtures::rolled_back(), "frontend", "prod"),
        )
    }

    #[test]
    fn headings_say_how_each_run_ended() {
        let all = summarize(&both());
        assert_eq!(all.len(), 2);
        assert_eq!(heading(&all[0]), "podinfo.test: promoted in 6m");
        assert_eq!(
            heading(&all[1]),
            "frontend.prod: rolled back after 2m 1s (failed checks threshold reached 2)"
        );
    }

    #[test]
    fn a_step_is_one_row_and_waiting_makes_none() {
        let s = &summarize(&fixtures::promoted())[0];
        let notes: Vec<String> = s.rows.iter().map(|r| r.notes.join(" / ")).collect();
        assert_eq!(
            notes,
            [
                "New revision detected! Scaling up podinfo.test / Advance podinfo.test canary weight 10",
                "checks passed / Advance podinfo.test canary weight 30",
                "checks passed / hooks: load-test ✓ / Advance podinfo.test canary weight 50",
                "checks passed",
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Routing all traffic to primary",
                "Promotion completed! Scaling down podinfo.test",
            ]
        );
        assert!(
            s.rows
                .iter()
                .all(|r| !r.notes.iter().any(|n| n.contains("waiting")))
        );
    }

    #[test]
    fn requests_and_warnings_have_rows_of_their_own() {
        let s = &summarize(&fixtures::rolled_back())[0];
        let notes: Vec<&str> = s
            .rows
            .iter()
            .flat_map(|r| r.notes.iter().map(String::as_str))
            .collect();
        assert!(notes.contains(&"pause requested by alice@laptop pid 4242, acted on after 312ms"));
        assert!(notes.contains(&"checks failed (2/2)"));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("warning: metrics server answered 503"))
        );
    }

    #[test]
    fn a_run_without_a_verdict_says_where_it_stopped() {
        let events = &fixtures::promoted()[..6];
        let s = &summarize(events)[0];
        assert_eq!(
            heading(s),
            "podinfo.test: no verdict after 1m; last Progressing at 30%"
        );
    }

    #[test]
    fn the_table_for_stdout() {
        insta::assert_snapshot!(table(&both(), 80));
    }

    #[test]
    fn the_full_table_keeps_every_step() {
        insta::assert_snapshot!(table_with(&both(), 80, true));
    }

    #[test]
    fn healthy_steps_fold_into_one_row_and_the_rest_stay() {
        let s = &summarize(&fixtures::promoted())[0];
        let full: Vec<String> = s.rows.iter().map(|r| r.notes.join(" / ")).collect();
        let folded: Vec<String> = fold(&s.rows, false, s.run.as_ref())
            .iter()
            .map(|r| r.notes.join(" / "))
            .collect();
        assert!(folded.len() < full.len(), "{folded:#?}");
        assert!(
            folded
                .iter()
                .any(|n| n.starts_with("checks 1–") && n.contains("weight ")),
            "{folded:#?}"
        );
        // What is not a healthy step is kept as it was.
        for kept in full
            .iter()
            .filter(|n| !n.starts_with("checks passed") && !n.starts_with("Advance "))
        {
            assert!(folded.contains(kept), "{kept} lost: {folded:#?}");
        }
        // A failed check is never folded away.
        let s = &summarize(&fixtures::rolled_back())[0];
        let folded = fold(&s.rows, false, s.run.as_ref());
        let failed = |rows: &[Row]| {
            rows.iter()
                .filter(|r| r.notes.iter().any(|n| n.starts_with("checks failed")))
                .count()
        };
        assert_eq!(failed(&folded), failed(&s.rows));
    }

    #[test]
    fn ranges_order_values_by_magnitude() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            range(&v(&["99.50%", "100.00%", "99.90%"])),
            "99.50%–100.00%"
        );
        assert_eq!(range(&v(&["980ms", "1.2s", "30ms"])), "30ms–1.2s");
        assert_eq!(range(&v(&["30ms", "30ms"])), "30ms");
        assert_eq!(worst(&v(&["99.50%", "100.00%"]), false), "≥ 99.50%");
        assert_eq!(worst(&v(&["980ms", "1.2s"]), true), "≤ 1.2s");
    }

    #[test]
    fn the_table_fits_a_narrow_terminal() {
        let text = table(&fixtures::rolled_back(), 60);
        for l in text.lines().skip(1) {
            assert!(fmt::width(l) <= 60, "{l}");
        }
    }

    #[test]
    fn the_markdown_for_a_ci_summary() {
        let md = markdown(&both());
        assert!(md.contains("91.20% &lt; 99%"), "{md}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(md_escape("a | b\nc <d>"), "a \\| b c &lt;d&gt;");
    }
}
