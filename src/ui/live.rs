//! The live view of running canaries on an interactive terminal: per
//! canary, its phase and weight, the countdown to the next check, each
//! metric against its threshold, what each version serves, what the
//! rollout waits for and the last thing that happened.
//!
//! Two layers: [`CanaryView`] folds a canary's events and [`render`] turns
//! it into lines, both pure and snapshot-tested; [`Live`] only hands those
//! lines to indicatif, which owns the terminal (one progress bar per
//! canary whose message is the canary's lines) and redraws once a second
//! so the countdown moves.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::fmt::{self, Paint, paint};
use canary_core::engine::state::{MetricRecord, Phase};
use canary_core::event::{Event, HookRecord, Kind, OutcomeInfo, RunInfo, Traffic};
use canary_core::time::Time;

/// What the view knows about one canary: the fold of its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryView {
    /// `name.namespace`.
    pub id: String,
    /// The rollout described by the last `started` event.
    pub run: Option<RunInfo>,
    pub phase: Phase,
    pub canary_weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
    pub paused: bool,
    pub next_check: Option<Time>,
    pub waiting_for: Option<String>,
    /// The metrics and hooks of the last check.
    pub metrics: Vec<MetricRecord>,
    pub hooks: Vec<HookRecord>,
    /// The last traffic sample.
    pub traffic: Option<Traffic>,
    /// The last thing that happened, in words.
    pub message: Option<String>,
    pub outcome: Option<OutcomeInfo>,
    /// The user asked the run to stop (Ctrl-C): it does at the next safe
    /// point, and the view says so until the verdict.
    pub stopping: bool,
}

impl CanaryView {
    pub fn new(id: impl Into<String>) -> CanaryView {
        CanaryView {
            id: id.into(),
            ..CanaryView::default()
        }
    }

    /// Takes in one event of this canary.
    pub fn apply(&mut self, e: &Event) {
        // Every event carries the canary's state after it.
        self.phase = e.phase;
        self.canary_weight = e.canary_weight;
        self.failed_checks = e.failed_checks;
        self.iterations = e.iterations;
        self.paused = e.paused;
        self.next_check = e.next_check;
        self.waiting_for = e.waiting_for.clone();
        match e.kind {
            Kind::Started => {
                // A new analysis: what the last one measured no longer holds.
                self.run = e.run.clone().or(self.run.take());
                self.metrics.clear();
                self.hooks.clear();
                self.traffic = None;
                self.outcome = None;
                if e.message.is_some() {
                    self.message = e.message.clone();
                }
            }
            Kind::Check => {
                self.metrics = e.metrics.clone();
                self.hooks = e.hooks.clone();
            }
            Kind::Traffic => self.traffic = e.traffic.clone(),
            Kind::Progress | Kind::Waiting => {
                if e.message.is_some() {
                    self.message = e.message.clone();
                }
            }
            Kind::Request => {
                self.message = match &e.request {
                    Some(r) => Some(format!(
                        "{} requested by {}, acted on after {}",
                        r.action,
                        r.by,
                        fmt::span(Duration::from_millis(r.reacted_after_ms))
                    )),
                    None => e.message.clone(),
                }
            }
            Kind::Warning => {
                self.message = Some(format!(
                    "warning: {}",
                    e.message.as_deref().unwrap_or_default()
                ))
            }
            Kind::Verdict => {
                self.outcome = e.outcome.clone();
                if let Some(o) = &e.outcome {
                    self.message = Some(super::outcome_words(o));
                }
            }
        }
    }

    /// Whether the run ended for this canary.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }
}

/// The lines of one canary at `now`, each at most `width` display columns.
pub(crate) fn render(view: &CanaryView, now: Time, width: usize, color: bool) -> Vec<String> {
    let mut lines = header(view, now, width, color);
    let run = view.run.as_ref();

    // Checks: the threshold, then each metric against its own.
    let mut checks = format!("  failed checks {}", view.failed_checks);
    if let Some(r) = run {
        checks.push_str(&format!("/{}", r.threshold));
    }
    if view.failed_checks > 0 {
        checks = paint(&checks, Paint::Red, color);
    }
    if !view.hooks.is_empty() {
        let hooks: Vec<String> = view
            .hooks
            .iter()
            .map(|h| {
                let (mark, p) = match h.result.as_str() {
                    "passed" => ("✓", Paint::Green),
                    "failed" => ("✗", Paint::Red),
                    _ => ("-", Paint::Dim),
                };
                paint(&format!("{} {mark}", h.name), p, color)
            })
            .collect();
        checks.push_str(&format!("   hooks {}", hooks.join(", ")));
    }
    if view.run.is_some() || !view.metrics.is_empty() {
        lines.push(checks);
    }
    lines.extend(metric_lines(view, width, color));

    if let Some(t) = &view.traffic {
        let window = format!(
            "  traffic ({})",
            fmt::span(Duration::from_secs(t.window_seconds))
        );
        // The weights split the routed traffic only; a load tester that
        // calls the canary's Service adds its requests to the canary's row.
        let weighted = view
            .run
            .as_ref()
            .is_some_and(|r| r.iterations == 0 && r.max_weight > 0);
        let (primary_share, canary_share) = if weighted {
            (
                format!(" {}%", 100u32.saturating_sub(view.canary_weight)),
                format!(" {}%", view.canary_weight),
            )
        } else {
            (String::new(), String::new())
        };
        let direct = if t.canary_direct.is_empty() {
            ""
        } else {
            " (+ load tester)"
        };
        let rows = [
            (
                window,
                "req/s".to_string(),
                "success".to_string(),
                "p99".to_string(),
            ),
            row(&format!("  primary{primary_share}"), &t.primary),
            row(&format!("  canary{canary_share}{direct}"), &t.canary),
        ];
        let w0 = rows.iter().map(|r| fmt::width(&r.0)).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| fmt::width(&r.1)).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| fmt::width(&r.2)).max().unwrap_or(0);
        let w3 = rows.iter().map(|r| fmt::width(&r.3)).max().unwrap_or(0);
        for (i, (a, b, c, d)) in rows.iter().enumerate() {
            let line = format!(
                "{}  {}  {}  {}",
                fmt::pad(a, w0),
                fmt::pad_left(b, w1),
                fmt::pad_left(c, w2),
                fmt::pad_left(d, w3)
            );
            lines.push(if i == 0 {
                paint(&line, Paint::Dim, color)
            } else {
                line
            });
        }
    } else if let Some(p) = view
        .run
        .as_ref()
        .and_then(|r| canary_core::provider::Provider::parse(&r.provider).ok())
        .filter(|p| !canary_core::queries::traffic::tells_versions_apart(*p))
    {
        // Said once the analysis is under way, so that the panel's absence
        // is not read as no traffic.
        if !view.metrics.is_empty() {
            lines.push(paint(
                &format!("  no per-version traffic for this router ({p})"),
                Paint::Dim,
                color,
            ));
        }
    }

    if !view.is_done() {
        if view.paused {
            lines.push(paint(
                "  paused: no checks and no steps until resumed",
                Paint::Yellow,
                color,
            ));
        }
        if let Some(w) = &view.waiting_for {
            lines.push(paint(&format!("  waiting for {w}"), Paint::Yellow, color));
        }
    }
    if let Some(m) = &view.message {
        let m = format!("  › {m}");
        lines.push(match &view.outcome {
            Some(o) if o.exit_code == 0 => paint(&m, Paint::Green, color),
            Some(_) => paint(&m, Paint::Red, color),
            None => m,
        });
    }
    lines.iter().map(|l| fmt::fit(l, width)).collect()
}

/// `podinfo.test  Progressing  [████░░░░]  10%/50%  next check in 42s`,
/// with the bar taking what the rest leaves of `width`; when even that
/// does not fit, the countdown moves to a line of its own.
fn header(view: &CanaryView, now: Time, width: usize, color: bool) -> Vec<String> {
    let run = view.run.as_ref();
    let by_iterations = run.is_some_and(|r| r.iterations > 0);
    let (fraction, label) = if view.phase == Phase::Succeeded {
        (1.0, "done".to_string())
    } else if by_iterations {
        let total = run.map_or(0, |r| r.iterations);
        (
            view.iterations as f64 / total.max(1) as f64,
            format!("iteration {}/{total}", view.iterations),
        )
    } else {
        let max = run.map_or(100, |r| r.max_weight).max(1);
        (
            view.canary_weight as f64 / max as f64,
            format!("{}%/{max}%", view.canary_weight),
        )
    };
    let status = status(view, now);
    let phase_paint = match view.phase {
        Phase::Succeeded => Paint::Green,
        Phase::Failed | Phase::Aborted => Paint::Red,
        Phase::WaitingPromotion | Phase::Waiting => Paint::Yellow,
        _ => Paint::Cyan,
    };
    let left = format!(
        "{}  {}  ",
        paint(&view.id, Paint::Bold, color),
        paint(view.phase.as_str(), phase_paint, color)
    );
    let together = fmt::width(&left) + fmt::width(&label) + 2 + fmt::width(&status);
    if !status.is_empty() && together > width {
        return vec![
            fmt::fit(&format!("{left}{label}"), width),
            fmt::fit(&format!("  {status}"), width),
        ];
    }
    // The bar gets what is left, up to 30 columns, or goes when under 4.
    // Room is kept for the longest usual countdown so that the bar does
    // not change length from one second to the next.
    let reserved = match fmt::width(&status) {
        0 => 0,
        w => w.max(STATUS_COLUMNS) + 2,
    };
    let room = width
        .saturating_sub(fmt::width(&left) + fmt::width(&label) + reserved + 3)
        .min(30);
    let bar = if room >= 4 {
        let filled = ((fraction.clamp(0.0, 1.0) * room as f64).round() as usize).min(room);
        format!(
            "[{}{}] ",
            paint(&"█".repeat(filled), Paint::Green, color),
            "░".repeat(room - filled)
        )
    } else {
        String::new()
    };
    let right = if status.is_empty() {
        label
    } else {
        format!("{label}  {status}")
    };
    vec![fmt::fit(&format!("{left}{bar}{right}"), width)]
}

/// Columns kept for the countdown: `next check in 42s`.
const STATUS_COLUMNS: usize = 17;

/// What the canary does next: `next check in 42s`, `paused`, `promoted`.
fn status(view: &CanaryView, now: Time) -> String {
    if let Some(o) = &view.outcome {
        return super::outcome_words(o)
            .split(" (")
            .next()
            .unwrap_or_default()
            .to_string();
    }
    if view.stopping {
        return "stopping…".to_string();
    }
    if view.paused {
        return "paused".to_string();
    }
    if !view.phase.is_active() {
        return String::new();
    }
    match view.next_check {
        Some(next) if next > now => {
            // Round up: "in 0s" would say it is already due.
            let ms = (next.0 - now.0) as u64;
            let secs = ms.div_ceil(1000);
            format!("next check in {}", fmt::span(Duration::from_secs(secs)))
        }
        Some(_) => "checking…".to_string(),
        None => String::new(),
    }
}

/// One line per metric: `✓ request-success-rate  99.87%  min 99%`, with
/// the metrics of the last check, or before any the ones to come. Names
/// and values are aligned when that fits in `width`.
fn metric_lines(view: &CanaryView, width: usize, color: bool) -> Vec<String> {
    struct M {
        mark: &'static str,
        name: String,
        value: String,
        limits: String,
        why: Option<String>,
        passed: Option<bool>,
    }
    let run = view.run.as_ref();
    let rows: Vec<M> = if view.metrics.is_empty() {
        run.map(|r| {
            r.metrics
                .iter()
                .map(|m| M {
                    mark: "·",
                    name: m.name.clone(),
                    value: "-".to_string(),
                    limits: fmt::thresholds(m.min, m.max, &m.unit),
                    why: None,
                    passed: None,
                })
                .collect()
        })
        .unwrap_or_default()
    } else {
        view.metrics
            .iter()
            .map(|m| {
                let unit = fmt::unit_of(run, &m.name);
                M {
                    mark: if m.passed { "✓" } else { "✗" },
                    name: m.name.clone(),
                    value: m
                        .value
                        .map(|v| fmt::value(v, unit))
                        .unwrap_or_else(|| "no value".to_string()),
                    limits: fmt::thresholds(m.min, m.max, unit),
                    why: m.error.clone(),
                    passed: Some(m.passed),
                }
            })
            .collect()
    };
    let name_w = rows.iter().map(|r| fmt::width(&r.name)).max().unwrap_or(0);
    let value_w = rows.iter().map(|r| fmt::width(&r.value)).max().unwrap_or(0);
    let limits_w = rows
        .iter()
        .map(|r| fmt::width(&r.limits))
        .max()
        .unwrap_or(0);
    let aligned = 6 + name_w + 2 + value_w + 2 + limits_w <= width;
    rows.into_iter()
        .map(|m| {
            let (name, value, gap) = if aligned {
                (
                    fmt::pad(&m.name, name_w),
                    fmt::pad_left(&m.value, value_w),
                    "  ",
                )
            } else {
                (m.name, m.value, " ")
            };
            let text = format!("{} {name}{gap}{value}", m.mark);
            let text = match m.passed {
                Some(true) => paint(&text, Paint::Green, color),
                Some(false) => paint(&text, Paint::Red, color),
                None => text,
            };
            let mut line = format!("    {text}");
            if !m.limits.is_empty() {
                line.push_str(gap);
                line.push_str(&paint(&m.limits, Paint::Dim, color));
            }
            if let Some(why) = m.why {
                line.push_str(&format!(" ({why})"));
            }
            line
        })
        .collect()
}

fn row(name: &str, s: &canary_core::event::VersionStats) -> (String, String, String, String) {
    (
        name.to_string(),
        s.request_rate
            .map(|v| fmt::rate(Some(v)).trim_end_matches(" req/s").to_string())
            .unwrap_or_else(|| "-".into()),
        fmt::percent(s.success_rate),
        fmt::millis(s.latency_p99_ms),
    )
}

/// The canaries of a run, each in the order it first appeared.
#[derive(Debug, Default, Clone)]
pub struct Board {
    pub canaries: Vec<CanaryView>,
}

impl Board {
    /// Takes in an event; returns the index of its canary.
    pub fn apply(&mut self, e: &Event) -> usize {
        let id = e.id();
        let i = match self.canaries.iter().position(|c| c.id == id) {
            Some(i) => i,
            None => {
                self.canaries.push(CanaryView::new(id));
                self.canaries.len() - 1
            }
        };
        self.canaries[i].apply(e);
        i
    }

    /// The lines of every canary, one blank line between two canaries.
    pub fn render(&self, now: Time, width: usize, color: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.canaries.iter().enumerate() {
            if i > 0 {
                out.push(String::new());
            }
            out.extend(render(c, now, width, color));
        }
        out
    }
}

/// Replays `events` and returns the screen after each one, `now` being
/// the event's time: what a terminal of `width` columns showed.
#[cfg(test)]
pub(crate) fn frames(events: &[Event], width: usize, color: bool) -> String {
    let mut board = Board::default();
    let mut out = String::new();
    for e in events {
        board.apply(e);
        let time = fmt::timestamp(e.time);
        out.push_str(&format!(
            "── {} {} {}\n",
            &time[11..19],
            e.kind.as_str(),
            e.id()
        ));
        for l in board.render(e.time, width, color) {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// The indicatif layer: one progress bar per canary on stderr whose
/// message is that canary's rendered lines.
pub(crate) struct Live {
    multi: MultiProgress,
    inner: Arc<Mutex<Screen>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Screen {
    board: Board,
    bars: Vec<ProgressBar>,
    finished: Vec<bool>,
    color: bool,
    width: Option<usize>,
}

impl Screen {
    fn width(&self) -> usize {
        self.width.unwrap_or_else(|| {
            console::Term::stderr()
                .size_checked()
                .map(|(_, w)| w as usize)
                .unwrap_or(80)
        })
    }

    fn redraw(&self, i: usize) {
        if self.finished[i] {
            return;
        }
        let lines = render(
            &self.board.canaries[i],
            crate::clock::now(),
            self.width(),
            self.color,
        );
        // A blank line between two canaries, as `Board::render` has.
        let gap = if i > 0 { "\n" } else { "" };
        self.bars[i].set_message(format!("{gap}{}", lines.join("\n")));
    }
}

impl Live {
    /// The live view on stderr. `width` fixes the width instead of
    /// asking the terminal at each redraw.
    pub(crate) fn new(color: bool, width: Option<usize>) -> Live {
        Live::to(ProgressDrawTarget::stderr(), color, width)
    }

    /// The live view on `target` (a hidden one in tests).
    pub(crate) fn to(target: ProgressDrawTarget, color: bool, width: Option<usize>) -> Live {
        let inner = Arc::new(Mutex::new(Screen {
            board: Board::default(),
            bars: Vec::new(),
            finished: Vec::new(),
            color,
            width,
        }));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let ticker = {
            let inner = Arc::clone(&inner);
            let stop = Arc::clone(&stop);
            // A thread, not a task: the view must tick whichever runtime
            // (or none) its owner runs on, and sleeps between ticks.
            std::thread::Builder::new()
                .name("canary-live-view".into())
                .spawn(move || tick(&inner, &stop))
                .ok()
        };
        Live {
            multi: MultiProgress::with_draw_target(target),
            inner,
            stop,
            ticker: Mutex::new(ticker),
        }
    }

    /// Takes in an event and redraws its canary; a verdict freezes it.
    pub(crate) fn apply(&self, e: &Event) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        let i = s.board.apply(e);
        if i == s.bars.len() {
            let bar = self.multi.add(ProgressBar::no_length());
            bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            s.bars.push(bar);
            s.finished.push(false);
        }
        s.redraw(i);
        if e.kind == Kind::Verdict && !s.finished[i] {
            s.bars[i].finish();
            s.finished[i] = true;
        }
    }

    /// The run was asked to stop: every canary still under way says
    /// `stopping…` and `message` until its verdict, in place of a line
    /// above the view.
    pub(crate) fn stopping(&self, message: &str) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        for i in 0..s.board.canaries.len() {
            let view = &mut s.board.canaries[i];
            if view.is_done() {
                continue;
            }
            view.stopping = true;
            view.message = Some(message.to_string());
            s.redraw(i);
        }
    }

    /// Runs `f` (which prints) with the view cleared, then redraws it.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// A line above the view that stays when the view moves on.
    pub(crate) fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    /// Stops ticking and leaves the last frame of every canary on screen.
    pub(crate) fn finish(&self) {
        {
            let (stopped, wake) = &*self.stop;
            if let Ok(mut s) = stopped.lock() {
                *s = true;
            }
            wake.notify_all();
        }
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Ok(mut s) = self.inner.lock() {
            for i in 0..s.bars.len() {
                s.redraw(i);
                if !s.finished[i] {
                    s.bars[i].finish();
                    s.finished[i] = true;
                }
            }
        }
    }
}

/// `canary status -w NAME` on a terminal: the live view `canary run`
/// draws, of one canary whoever drives it, from what its driver stores on
/// the primary: the rollout from the stored spec, each step and check from
/// the history, the countdown from the state.
pub(crate) struct Follow {
    live: Live,
    /// The start of the rollout shown, once one was.
    rollout: Option<Option<Time>>,
    /// The time of the last history entry shown.
    shown: Option<Time>,
}

impl Follow {
    pub(crate) fn new(color: bool) -> Follow {
        Follow::to(ProgressDrawTarget::stderr(), color, None)
    }

    pub(crate) fn to(target: ProgressDrawTarget, color: bool, width: Option<usize>) -> Follow {
        Follow {
            live: Live::to(target, color, width),
            rollout: None,
            shown: None,
        }
    }

    /// Takes in the canary as its primary now says; `run` is its rollout
    /// (from the stored spec), `history` the entries of its state.
    pub(crate) fn show(
        &mut self,
        (name, namespace): (&str, &str),
        state: &canary_core::engine::state::State,
        history: &[canary_core::engine::state::HistoryEntry],
        run: Option<RunInfo>,
    ) {
        let now = crate::clock::now();
        let event = |kind| Event::new(kind, now, name, namespace, state);
        if self.rollout != Some(state.rollout_started) {
            self.rollout = Some(state.rollout_started);
            let mut e = event(Kind::Started);
            e.run = run;
            self.live.apply(&e);
        }
        for h in history
            .iter()
            .filter(|h| self.shown.is_none_or(|t| h.time > t))
        {
            if !h.metrics.is_empty() {
                let mut e = event(Kind::Check);
                e.metrics = h.metrics.clone();
                self.live.apply(&e);
            }
            self.live
                .apply(&event(Kind::Progress).with_message(h.message.clone()));
        }
        if let Some(last) = history.last() {
            self.shown = Some(last.time);
        }
        // The state itself: phase, weight, the countdown to the next check.
        self.live.apply(&event(Kind::Progress));
    }

    /// The canaries as the view shows them.
    #[cfg(test)]
    pub(crate) fn board(&self) -> Board {
        self.live.board()
    }
}

#[cfg(test)]
impl Live {
    /// The canaries as the view knows them.
    pub(crate) fn board(&self) -> Board {
        self.inner
            .lock()
            .map(|s| s.board.clone())
            .unwrap_or_default()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Redraws every canary once a second until told to stop.
fn tick(inner: &Mutex<Screen>, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let Ok(mut done) = stopped.lock() else {
        return;
    };
    loop {
        if *done {
            return;
        }
        match wake.wait_timeout(done, Duration::from_secs(1)) {
            Ok((d, _)) => done = d,
            Err(_) => return,
        }
        if *done {
            return;
        }
        if let Ok(s) = inner.lock() {
            for i in 0..s.bars.len() {
                s.redraw(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{self, ev, t};

    fn both() -> Vec<Event> {
        fixtures::interleaved(
            fixtures::promoted(),
            fixtures::renamed(fixtures::rolled_back(), "frontend", "prod"),
        )
    }

    #[test]
    fn every_line_fits_the_terminal_at_any_width() {
        for width in [20, 40, 80, 200] {
            for color in [false, true] {
                let mut board = Board::default();
                for e in both() {
                    board.apply(&e);
                    for l in board.render(e.time, width, color) {
                        assert!(
                            fmt::width(&l) <= width,
                            "{} > {width}: {l:?}",
                            fmt::width(&l)
                        );
                    }
                }
            }
        }
    }

    /// The traffic rows name each version's share of the routed traffic,
    /// and say when the canary's numbers also hold a load tester's
    /// requests, which reach it past the router.
    #[test]
    fn the_traffic_rows_say_what_reaches_the_canary_past_the_router() {
        let mut view = CanaryView::new("podinfo.prod");
        for e in fixtures::promoted() {
            view.apply(&e);
            if e.kind == Kind::Traffic {
                break;
            }
        }
        let w = view.canary_weight;
        assert!(w > 0 && w < 100, "{w}");
        let text =
            |view: &CanaryView| render(view, view.next_check.unwrap(), 120, false).join("\n");
        let with = text(&view);
        assert!(with.contains(&format!("  primary {}%", 100 - w)), "{with}");
        assert!(
            with.contains(&format!("  canary {w}% (+ load tester)")),
            "{with}"
        );
        view.traffic.as_mut().unwrap().canary_direct.clear();
        let without = text(&view);
        assert!(without.contains(&format!("  canary {w}% ")), "{without}");
        assert!(!without.contains("load tester"), "{without}");
        // A/B testing and blue/green route by iteration, not by weight.
        view.run.as_mut().unwrap().iterations = 10;
        let ab = text(&view);
        assert!(!ab.contains(&format!("canary {w}%")), "{ab}");
        assert!(!ab.contains(&format!("primary {}%", 100 - w)), "{ab}");
    }

    /// A router whose series do not tell the versions apart gets a line
    /// saying so in place of the rows, once the checks have started.
    #[test]
    fn a_router_without_per_version_series_says_so() {
        let mut view = CanaryView::new("podinfo.prod");
        for e in fixtures::promoted() {
            view.apply(&e);
            if e.kind == Kind::Traffic {
                break;
            }
        }
        let text =
            |view: &CanaryView| render(view, view.next_check.unwrap(), 120, false).join("\n");
        assert!(!text(&view).contains("no per-version traffic"));
        view.traffic = None;
        view.run.as_mut().unwrap().provider = "gatewayapi:v1".into();
        let none = text(&view);
        assert!(
            none.contains("  no per-version traffic for this router (gatewayapi:v1)"),
            "{none}"
        );
        view.run.as_mut().unwrap().provider = "nginx".into();
        assert!(!text(&view).contains("no per-version traffic"));
    }

    #[test]
    fn frames_at_80_columns() {
        insta::assert_snapshot!(frames(&both(), 80, false));
    }

    #[test]
    fn frames_at_200_columns() {
        insta::assert_snapshot!(frames(&fixtures::promoted(), 200, false));
    }

    #[test]
    fn frames_at_40_columns_cut_with_an_ellipsis() {
        let f = frames(&fixtures::rolled_back(), 40, false);
        assert!(f.contains('…'), "{f}");
        insta::assert_snapshot!(f);
    }

    #[test]
    fn the_countdown_follows_the_clock() {
        let mut v = CanaryView::new("podinfo.test");
        for e in &fixtures::promoted()[..3] {
            v.apply(e);
        }
        let at = |hms: &str| render(&v, t(hms), 80, false)[0].clone();
        assert!(
            at("17:40:03").ends_with("next check in 1m"),
            "{}",
            at("17:40:03")
        );
        assert!(
            at("17:40:21").ends_with("next check in 42s"),
            "{}",
            at("17:40:21")
        );
        assert!(at("17:41:03").ends_with("checking…"), "{}", at("17:41:03"));
        let mut late = render(&v, Time(t("17:41:02").0 + 500), 80, false);
        assert!(late.remove(0).ends_with("next check in 1s"));
    }

    #[test]
    fn the_bar_shrinks_and_then_goes() {
        let mut v = CanaryView::new("podinfo.test");
        for e in &fixtures::promoted()[..6] {
            v.apply(e);
        }
        let wide = render(&v, t("17:41:03"), 200, false)[0].clone();
        let narrow = render(&v, t("17:41:03"), 60, false)[0].clone();
        let tiny = render(&v, t("17:41:03"), 40, false)[0].clone();
        assert!(
            wide.contains(&format!("[{}{}]", "█".repeat(18), "░".repeat(12))),
            "{wide}"
        );
        let bar = |s: &str| s.chars().filter(|c| *c == '█' || *c == '░').count();
        assert!(bar(&narrow) < bar(&wide) && bar(&narrow) >= 4, "{narrow}");
        assert_eq!(bar(&tiny), 0, "{tiny}");
    }

    #[test]
    fn iterations_fill_the_bar_for_ab_tests() {
        let mut started = ev(Kind::Started, "17:40:03");
        let mut run = fixtures::run_info();
        run.strategy = "A/B testing".into();
        run.weights.clear();
        run.iterations = 10;
        started.run = Some(run);
        let mut check = ev(Kind::Check, "17:41:03");
        check.iterations = 5;
        let mut v = CanaryView::new("podinfo.test");
        v.apply(&started);
        v.apply(&check);
        let head = render(&v, t("17:41:03"), 80, false).remove(0);
        assert!(head.contains("iteration 5/10"), "{head}");
    }

    #[test]
    fn colour_marks_passed_and_failed_metrics_and_none_without_it() {
        let mut v = CanaryView::new("podinfo.test");
        for e in fixtures::rolled_back().iter().take(6) {
            v.apply(e);
        }
        let plain = render(&v, t("17:41:03"), 120, false).join("\n");
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let coloured = render(&v, t("17:41:03"), 120, true);
        let failed = coloured
            .iter()
            .find(|l| l.contains("request-success-rate"))
            .unwrap();
        let passed = coloured
            .iter()
            .find(|l| l.contains("request-duration"))
            .unwrap();
        assert!(failed.contains("\u{1b}[31m"), "{failed:?}");
        assert!(passed.contains("\u{1b}[32m"), "{passed:?}");
    }

    #[test]
    fn a_paused_canary_says_so_instead_of_counting_down() {
        let mut v = CanaryView::new("podinfo.test");
        for e in fixtures::rolled_back().iter().take(4) {
            v.apply(e);
        }
        let lines = render(&v, t("17:40:31"), 80, false);
        assert!(lines[0].ends_with("paused"), "{}", lines[0]);
        assert!(lines.iter().any(|l| l.contains("paused: no checks")));
        assert!(
            lines
                .last()
                .unwrap()
                .contains("pause requested by alice@laptop pid 4242, acted on after 312ms")
        );
    }

    #[test]
    fn a_new_analysis_forgets_the_last_ones_measurements() {
        let mut v = CanaryView::new("podinfo.test");
        for e in fixtures::rolled_back() {
            v.apply(&e);
        }
        assert!(v.is_done());
        v.apply(&fixtures::promoted()[0]);
        assert!(!v.is_done() && v.metrics.is_empty() && v.traffic.is_none());
    }

    #[test]
    fn the_terminal_layer_takes_events_from_several_threads() {
        let live = Arc::new(Live::to(ProgressDrawTarget::hidden(), false, Some(80)));
        let handles: Vec<_> = [
            fixtures::promoted(),
            fixtures::renamed(fixtures::rolled_back(), "frontend", "prod"),
        ]
        .into_iter()
        .map(|events| {
            let live = Arc::clone(&live);
            std::thread::spawn(move || {
                for e in &events {
                    live.apply(e);
                }
            })
        })
        .collect();
        for h in handles {
            h.join().unwrap();
        }
        live.finish();
        live.finish();
        let board = live.board();
        assert_eq!(board.canaries.len(), 2);
        assert!(board.canaries.iter().all(CanaryView::is_done));
    }

    #[test]
    fn following_a_stored_state_shows_its_rollout_checks_and_last_message() {
        use canary_core::engine::state::{HistoryEntry, State};
        let mut f = Follow::to(ProgressDrawTarget::hidden(), false, Some(100));
        let mut state = State::new(fixtures::t("17:40:00"));
        state.phase = Phase::Progressing;
        state.canary_weight = 30;
        state.rollout_started = Some(fixtures::t("17:40:00"));
        state.next_check = Some(fixtures::t("17:42:00"));
        let entry = |hms: &str, metrics: Vec<MetricRecord>, message: &str| HistoryEntry {
            time: fixtures::t(hms),
            phase: Phase::Progressing,
            canary_weight: 30,
            failed_checks: 0,
            metrics,
            message: message.into(),
        };
        let mut history = vec![entry(
            "17:40:00",
            vec![],
            "New revision detected! Scaling up podinfo.test",
        )];
        f.show(
            ("podinfo", "test"),
            &state,
            &history,
            Some(fixtures::run_info()),
        );
        history.push(entry(
            "17:41:00",
            vec![
                fixtures::success_rate(Some(99.5)),
                fixtures::duration(Some(40.0)),
            ],
            "checks passed",
        ));
        history.push(entry(
            "17:41:00",
            vec![],
            "Advance podinfo.test canary weight 30",
        ));
        f.show(
            ("podinfo", "test"),
            &state,
            &history,
            Some(fixtures::run_info()),
        );
        let board = f.board();
        assert_eq!(board.canaries.len(), 1);
        let view = &board.canaries[0];
        assert!(view.run.is_some());
        assert_eq!(view.canary_weight, 30);
        assert_eq!(view.metrics.len(), 2);
        let lines = render(view, fixtures::t("17:41:18"), 100, false).join("\n");
        assert!(lines.contains("next check in 42s"), "{lines}");
        assert!(lines.contains("✓ request-success-rate"), "{lines}");
        assert!(
            lines.contains("› Advance podinfo.test canary weight 30"),
            "{lines}"
        );
    }
}
