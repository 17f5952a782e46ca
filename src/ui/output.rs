//! The output policy of `canary run`, decided once from the flags and the
//! terminal, then applied to every event of every canary:
//!
//! | mode  | stderr                        | stdout                            |
//! | ----- | ----------------------------- | --------------------------------- |
//! | Live  | the live view                 | verdict lines, then the summary   |
//! | Lines | one timestamped line an event | verdict lines, then the summary   |
//! | Json  | errors                        | one JSON event a line             |
//! | Quiet | errors                        | nothing                           |
//!
//! Each version's traffic (a metrics query an interval) is asked for only
//! in the live view, and with `--traffic` in the lines and JSON.
//!
//! Whatever the mode, the summary is also appended as Markdown to the file
//! `GITHUB_STEP_SUMMARY` names, so a CI job's page shows the rollout.
//!
//! Every event is redacted once, as it arrives ([`crate::secrets`]), before
//! it is kept or rendered; the two writers and the summary file also mask
//! what they write, so an error line carries no secret either.

use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::lines::Lines;
use super::live::Live;
use super::summary::{self, CanarySummary, Summaries};
use crate::secrets::Redacting;
use canary_core::event::{Event, Kind, Reporter};

/// How a run shows its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A redrawn view on an interactive stderr.
    Live,
    /// Append-only timestamped lines on stderr.
    Lines,
    /// One JSON event per line on stdout.
    Json,
    /// Nothing but errors.
    Quiet,
}

/// The mode for `--output json` (`json`), `--quiet` and whether stderr is
/// a terminal. JSON wins over quiet: a machine asked for the events.
pub(crate) fn choose(json: bool, quiet: bool, stderr_is_terminal: bool) -> Mode {
    if json {
        Mode::Json
    } else if quiet {
        Mode::Quiet
    } else if stderr_is_terminal {
        Mode::Live
    } else {
        Mode::Lines
    }
}

/// Whether to colour: only for people (Live and Lines), only on a
/// terminal, and not when `NO_COLOR` is set to anything but the empty
/// string (<https://no-color.org>).
pub(crate) fn color(mode: Mode, stream_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    matches!(mode, Mode::Live | Mode::Lines)
        && stream_is_terminal
        && no_color.is_none_or(|v| v.is_empty())
}

/// What a [`RunOutput`] needs to know besides its mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Colour the human output (see [`color`]).
    pub color: bool,
    /// Columns of the live view and the summary table; `None` asks the
    /// terminal each time.
    pub width: Option<usize>,
    /// Where to append the Markdown summary.
    pub step_summary: Option<PathBuf>,
    /// Every step on its own row in the summary table (`--summary full`).
    pub full_summary: bool,
    /// Report each version's traffic in the lines and JSON modes too
    /// (`--traffic`); the live view always shows it.
    pub traffic: bool,
}

impl Options {
    /// From the process' environment and terminals.
    pub(crate) fn from_env(mode: Mode) -> Options {
        let no_color = std::env::var_os("NO_COLOR");
        Options {
            color: color(mode, io::stderr().is_terminal(), no_color.as_deref()),
            width: None,
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            full_summary: false,
            traffic: false,
        }
    }
}

type Sink = Mutex<Box<dyn Write + Send>>;

/// The output of one `canary run`: renders the events of all its
/// canaries as the mode says, records them for the summary, and can be
/// shared by the tasks that drive them.
pub(crate) struct RunOutput {
    mode: Mode,
    options: Options,
    /// What the verdict lines and the summary need of the events so far.
    summaries: Mutex<Summaries>,
    lines: Mutex<Lines>,
    live: Option<Live>,
    out: Sink,
    err: Sink,
    finished: AtomicBool,
}

impl RunOutput {
    /// The output for `mode` on this process' stdout and stderr, with
    /// options from the environment.
    pub(crate) fn new(mode: Mode) -> RunOutput {
        RunOutput::with_options(mode, Options::from_env(mode))
    }

    pub(crate) fn with_options(mode: Mode, options: Options) -> RunOutput {
        let live = (mode == Mode::Live).then(|| Live::new(options.color, options.width));
        RunOutput::build(
            mode,
            options,
            live,
            Box::new(io::stdout()),
            Box::new(io::stderr()),
        )
    }

    /// The output written to `out` and `err` instead of stdout and stderr;
    /// the live view, which needs a terminal, is then drawn nowhere.
    #[cfg(test)]
    pub(crate) fn with_writers(
        mode: Mode,
        options: Options,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> RunOutput {
        let live = (mode == Mode::Live).then(|| {
            Live::to(
                indicatif::ProgressDrawTarget::hidden(),
                options.color,
                options.width,
            )
        });
        RunOutput::build(mode, options, live, out, err)
    }

    fn build(
        mode: Mode,
        options: Options,
        live: Option<Live>,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> RunOutput {
        RunOutput {
            mode,
            options,
            summaries: Mutex::new(Summaries::default()),
            lines: Mutex::new(Lines::new()),
            live,
            out: Mutex::new(Box::new(Redacting::new(out))),
            err: Mutex::new(Box::new(Redacting::new(err))),
            finished: AtomicBool::new(false),
        }
    }

    /// `error: msg` on stderr, in every mode, above the live view.
    pub(crate) fn error(&self, msg: &str) {
        self.above(&format!("error: {msg}"));
    }

    /// What the run does about a request of the user's (Ctrl-C), on
    /// stderr like an error but not called one, unless `-q`.
    pub(crate) fn notice(&self, msg: &str) {
        if self.mode != Mode::Quiet {
            self.above(msg);
        }
    }

    /// That the run stops, as the user asked (Ctrl-C, SIGTERM): in the
    /// live view, in place of its countdown and last message, so that
    /// the screen keeps one line about the stop, the verdict's; a line
    /// on stderr in the lines and JSON modes; nothing with `-q`.
    pub(crate) fn stopping(&self, msg: &str) {
        match (&self.live, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(live), _) => live.stopping(msg),
            (None, _) => self.above(msg),
        }
    }

    /// A line on stderr, in every mode, above the live view.
    fn above(&self, line: &str) {
        let write = || {
            if let Ok(mut err) = self.err.lock() {
                let _ = writeln!(err, "{line}");
                let _ = err.flush();
            }
        };
        match &self.live {
            Some(live) => live.suspend(write),
            None => write(),
        }
    }

    /// Ends the output: the live view stops with its last frame on screen,
    /// the summary goes to stdout (Live, Lines) and to the step summary
    /// file (every mode). Only the first call does anything.
    pub(crate) fn finish(&self) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let summaries = match self.summaries.lock() {
            Ok(mut s) => std::mem::take(&mut *s),
            Err(_) => Summaries::default(),
        };
        let summaries = summaries.all();
        if let Some(live) = &self.live {
            live.finish();
            if !summaries.is_empty()
                && let Ok(mut err) = self.err.lock()
            {
                // indicatif leaves the cursor at the end of the last frame
                // line: end that line so that what follows on the same
                // terminal starts below it.
                let _ = writeln!(err);
            }
        }
        if summaries.is_empty() {
            return;
        }
        if matches!(self.mode, Mode::Live | Mode::Lines) {
            let width = self
                .options
                .width
                .map(|w| w as u16)
                .unwrap_or_else(stdout_width);
            let table = summary::tables(summaries, width, self.options.full_summary);
            if !table.is_empty()
                && let Ok(mut out) = self.out.lock()
            {
                let _ = write!(out, "\n{table}");
                let _ = out.flush();
            }
        }
        if let Some(path) = &self.options.step_summary
            && let Err(e) = append(path, &summary::markdown_of(summaries))
        {
            self.error(&format!(
                "failed to write the step summary to {}: {e}",
                path.display()
            ));
        }
    }

    /// The stdout line of a verdict, with the target of its canary's
    /// `started` event; a promotion or a rollback says how long it took.
    /// `mine` is the canary's summary, the verdict folded in.
    fn verdict_line(&self, e: &Event, mine: Option<&CanarySummary>) -> Option<String> {
        let outcome = e.outcome.as_ref()?;
        if matches!(outcome.result.as_str(), "promoted" | "rolledBack") {
            return mine.map(summary::heading);
        }
        let target = mine.and_then(|s| s.run.as_ref()).map(|r| r.target.as_str());
        super::outcome_line(&e.id(), target, outcome)
    }

    fn write_out(&self, line: &str, flush: bool) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            if flush {
                let _ = out.flush();
            }
        }
    }
}

impl Reporter for RunOutput {
    /// The traffic of each version is only asked for where it is seen: in
    /// the live view, and with `--traffic` in the lines and JSON; the
    /// summary does not use it.
    fn wants(&self, kind: Kind) -> bool {
        match kind {
            Kind::Traffic => match self.mode {
                Mode::Live => true,
                Mode::Lines | Mode::Json => self.options.traffic,
                Mode::Quiet => false,
            },
            _ => true,
        }
    }

    fn emit(&self, e: &Event) {
        // Every message may quote a server's answer: masked before it is
        // kept, rendered, summarised or written as JSON.
        let e = &crate::secrets::redactor().redact_value(e);
        // Only a verdict needs its canary's summary (for its line).
        let mine = match self.summaries.lock() {
            Ok(mut all) => {
                all.add(e);
                (e.kind == Kind::Verdict)
                    .then(|| all.get(&e.id()).cloned())
                    .flatten()
            }
            Err(_) => None,
        };
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => self.write_out(&e.to_json_line(), true),
            Mode::Lines => {
                let line = self
                    .lines
                    .lock()
                    .ok()
                    .and_then(|mut l| l.line(e, self.options.color));
                if let Some(line) = line
                    && let Ok(mut err) = self.err.lock()
                {
                    let _ = writeln!(err, "{line}");
                }
                if e.kind == Kind::Verdict
                    && let Some(v) = self.verdict_line(e, mine.as_ref())
                {
                    self.write_out(&v, true);
                }
            }
            Mode::Live => {
                let Some(live) = &self.live else { return };
                // Warnings also stay above the view: the view only keeps
                // the last message.
                let warning = self
                    .lines
                    .lock()
                    .ok()
                    .and_then(|mut l| l.line(e, self.options.color))
                    .filter(|_| e.kind == Kind::Warning);
                live.apply(e);
                if let Some(w) = warning {
                    live.println(&w);
                }
                if e.kind == Kind::Verdict
                    && let Some(v) = self.verdict_line(e, mine.as_ref())
                {
                    live.suspend(|| self.write_out(&v, true));
                }
            }
        }
    }
}

impl Drop for RunOutput {
    fn drop(&mut self) {
        // The view must not stay half-drawn if the run ends early; the
        // summary is only for runs that reached `finish`.
        if let Some(live) = &self.live {
            live.finish();
        }
    }
}

/// Columns of stdout when it is a terminal; otherwise `COLUMNS` when set
/// (as `ls` honours it), else a fixed 120 for logs.
fn stdout_width() -> u16 {
    if io::stdout().is_terminal()
        && let Some((_, w)) = console::Term::stdout().size_checked()
    {
        return w;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(120)
}

fn append(path: &std::path::Path, text: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(crate::secrets::redact(text).as_bytes())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures;
    use std::sync::Arc;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn run(mode: Mode, options: Options, events: &[Event]) -> (String, String) {
        let (out, err) = (Buf::default(), Buf::default());
        let o =
            RunOutput::with_writers(mode, options, Box::new(out.clone()), Box::new(err.clone()));
        for e in events {
            o.emit(e);
        }
        o.finish();
        (out.text(), err.text())
    }

    fn wide() -> Options {
        Options {
            width: Some(100),
            ..Options::default()
        }
    }

    #[test]
    fn json_wins_then_quiet_then_the_terminal_decides() {
        assert_eq!(choose(true, true, true), Mode::Json);
        assert_eq!(choose(true, false, false), Mode::Json);
        assert_eq!(choose(false, true, true), Mode::Quiet);
        assert_eq!(choose(false, false, true), Mode::Live);
        assert_eq!(choose(false, false, false), Mode::Lines);
    }

    #[test]
    fn no_color_set_to_anything_but_empty_turns_colour_off() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(color(Mode::Live, true, None));
        assert!(color(Mode::Lines, true, empty));
        assert!(!color(Mode::Live, true, set));
        assert!(!color(Mode::Lines, true, Some(OsStr::new("0"))));
        assert!(!color(Mode::Lines, false, None));
        assert!(!color(Mode::Json, true, None));
        assert!(!color(Mode::Quiet, true, None));
    }

    #[test]
    fn lines_go_to_stderr_and_the_verdict_and_summary_to_stdout() {
        let (out, err) = run(Mode::Lines, wide(), &fixtures::rolled_back());
        assert!(
            err.contains("podinfo.test check failed: request-success-rate 91.20%"),
            "{err}"
        );
        assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
        assert_eq!(err.lines().count(), 12, "{err}");
        // The verdict once, then the table under the canary's name.
        assert!(
            out.starts_with(
                "podinfo.test: rolled back after 2m 1s (failed checks threshold reached 2)\n"
            ),
            "{out}"
        );
        assert_eq!(out.matches("rolled back").count(), 1, "{out}");
        assert!(out.contains(")\n\n┌"), "{out}");
    }

    #[test]
    fn json_is_one_event_per_line_and_nothing_else() {
        let events = fixtures::promoted();
        let (out, err) = run(Mode::Json, wide(), &events);
        assert_eq!(err, "");
        let back: Vec<Event> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, events);
    }

    #[test]
    fn quiet_prints_only_errors() {
        let (out, err) = (Buf::default(), Buf::default());
        let o = RunOutput::with_writers(
            Mode::Quiet,
            wide(),
            Box::new(out.clone()),
            Box::new(err.clone()),
        );
        for e in fixtures::promoted() {
            o.emit(&e);
        }
        o.error("podinfo.test: failed to reach the API server");
        o.finish();
        assert_eq!(out.text(), "");
        assert_eq!(
            err.text(),
            "error: podinfo.test: failed to reach the API server\n"
        );
    }

    #[test]
    fn the_live_mode_prints_verdicts_and_the_summary_on_stdout() {
        let (out, err) = run(Mode::Live, wide(), &fixtures::promoted());
        assert!(out.starts_with("podinfo.test: promoted in 6m\n"), "{out}");
        assert_eq!(out.matches("promoted").count(), 1, "{out}");
        assert_eq!(err, "\n");
    }

    #[test]
    fn a_requested_stop_is_said_in_the_live_view_and_once_on_stdout() {
        let (out, err) = (Buf::default(), Buf::default());
        let o = RunOutput::with_writers(
            Mode::Live,
            wide(),
            Box::new(out.clone()),
            Box::new(err.clone()),
        );
        let events = fixtures::promoted();
        for e in &events[..4] {
            o.emit(e);
        }
        o.stopping("interrupted: stopping, the state is kept (Ctrl-C again to exit at once)");
        // Nothing printed above the view: the view says it.
        assert_eq!(err.text(), "");
        let view = &o.live.as_ref().unwrap().board().canaries[0];
        assert!(view.stopping);
        let now = events[3].time;
        let frame = super::super::live::render(view, now, 100, false).join("\n");
        assert!(frame.contains("stopping…"), "{frame}");
        assert!(
            frame.contains("› interrupted: stopping, the state is kept"),
            "{frame}"
        );
        // The verdict: its line on stdout is the one line about the stop.
        let mut v = fixtures::ev(Kind::Verdict, "17:44:00");
        v.outcome = Some(canary_core::event::OutcomeInfo {
            result: "interrupted".into(),
            exit_code: 130,
            reason: Some("stopped with the rollout as it was".into()),
        });
        o.emit(&v);
        o.finish();
        let text = out.text();
        assert!(
            text.starts_with("podinfo.test: interrupted (stopped with the rollout as it was)\n"),
            "{text}"
        );
        assert_eq!(text.matches("interrupted").count(), 1, "{text}");
        assert_eq!(err.text(), "\n");
    }

    #[test]
    fn a_requested_stop_is_a_line_on_stderr_off_a_terminal_and_nothing_with_q() {
        for (mode, said) in [
            (Mode::Lines, true),
            (Mode::Json, true),
            (Mode::Quiet, false),
        ] {
            let (out, err) = (Buf::default(), Buf::default());
            let o =
                RunOutput::with_writers(mode, wide(), Box::new(out.clone()), Box::new(err.clone()));
            o.stopping("interrupted: stopping");
            assert_eq!(err.text() == "interrupted: stopping\n", said, "{mode:?}");
            assert_eq!(out.text(), "", "{mode:?}");
        }
    }

    #[test]
    fn the_initialised_verdict_names_the_target_of_the_started_event() {
        let mut events = fixtures::promoted();
        events.truncate(1);
        let mut v = fixtures::ev(Kind::Verdict, "17:40:04");
        v.outcome = Some(canary_core::event::OutcomeInfo {
            result: "initialized".into(),
            exit_code: 0,
            reason: None,
        });
        events.push(v);
        let (out, _) = run(Mode::Lines, wide(), &events);
        assert!(
            out.starts_with(
                "podinfo.test: initialised; the next change to deployment/podinfo starts an analysis\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn the_step_summary_is_appended_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "before\n").unwrap();
        for mode in [Mode::Quiet, Mode::Json] {
            let options = Options {
                step_summary: Some(path.clone()),
                ..wide()
            };
            run(mode, options, &fixtures::promoted());
        }
        let md = std::fs::read_to_string(&path).unwrap();
        assert!(
            md.starts_with("before\n### podinfo.test: promoted in 6m\n"),
            "{md}"
        );
        assert_eq!(md.matches("### podinfo.test").count(), 2);
    }

    #[test]
    fn finishing_twice_prints_the_summary_once() {
        let (out, err) = (Buf::default(), Buf::default());
        let o = RunOutput::with_writers(Mode::Lines, wide(), Box::new(out.clone()), Box::new(err));
        for e in fixtures::promoted() {
            o.emit(&e);
        }
        o.finish();
        o.finish();
        assert_eq!(out.text().matches("promoted in 6m").count(), 1);
    }

    #[test]
    fn concurrent_canaries_share_one_output() {
        let (out, err) = (Buf::default(), Buf::default());
        let o = Arc::new(RunOutput::with_writers(
            Mode::Lines,
            wide(),
            Box::new(out.clone()),
            Box::new(err.clone()),
        ));
        let threads: Vec<_> = [
            fixtures::promoted(),
            fixtures::renamed(fixtures::rolled_back(), "frontend", "prod"),
        ]
        .into_iter()
        .map(|events| {
            let o = Arc::clone(&o);
            std::thread::spawn(move || {
                for e in &events {
                    o.emit(e);
                }
            })
        })
        .collect();
        for t in threads {
            t.join().unwrap();
        }
        o.finish();
        // Whole lines only: no line of one canary cut into another's.
        for l in err.text().lines() {
            assert!(l.starts_with("2026-11-26T17:4"), "{l}");
        }
        assert!(
            out.text()
                .contains("frontend.prod: rolled back after 2m 1s (failed checks")
        );
        assert!(out.text().contains("podinfo.test: promoted in 6m\n"));
    }
}
