//! Output policy: results to stdout, problems to stderr; tables for people,
//! one JSON document for machines. Commands hand values to these functions
//! and never print themselves. `canary run` renders its events through
//! [`output::RunOutput`] (live view, plain lines, JSON events, summary).
//! Every byte goes through the process's redactor ([`crate::secrets`]):
//! [`stdout`] and [`stderr`] are the only writers.

#[cfg(test)]
mod fixtures;
mod fmt;
pub(crate) mod jsonpath;
pub(crate) mod lines;
pub(crate) mod live;
pub(crate) mod output;
pub(crate) mod status;
pub(crate) mod summary;

pub(crate) use output::RunOutput;

use std::io::{self, Write};

use crate::secrets::Redacting;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, ContentArrangement, Table};
use serde::Serialize;

use canary_core::engine::plan::Plan;
use canary_core::engine::schedule::Routing;
use canary_core::provider::Provider;
use canary_core::spec::Diagnostic;
use canary_core::spec::resolve::ProviderSource;

/// One valid canary, as `validate` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidCanary {
    pub file: String,
    pub name: String,
    pub namespace: String,
    pub strategy: String,
    pub provider: Option<Provider>,
    /// Traffic steps or iterations of the analysis.
    pub steps: usize,
    /// Weights in order, for a progressive canary.
    pub weights: Vec<u32>,
    pub notes: Vec<String>,
    /// What `validate` accepts but `run` will not carry out (a provider
    /// past its end of support).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// With `--cluster`: what was checked in the cluster, all passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidateReport {
    pub valid: bool,
    pub canaries: Vec<ValidCanary>,
    pub metric_templates: usize,
    pub alert_providers: usize,
    pub errors: Vec<Diagnostic>,
    /// The documents that are not Flagger's, by kind.
    pub skipped: std::collections::BTreeMap<String, usize>,
}

/// Standard output through the process's redactor: every line a command
/// prints goes through this or [`stderr`].
pub(crate) fn stdout() -> Redacting<io::StdoutLock<'static>> {
    Redacting::new(io::stdout().lock())
}

/// Standard error through the process's redactor.
pub(crate) fn stderr() -> Redacting<io::StderrLock<'static>> {
    Redacting::new(io::stderr().lock())
}

/// Writes a value as pretty JSON to stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) {
    let mut out = stdout();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// Writes diagnostics to stderr, followed by a count.
pub(crate) fn diagnostics(errors: &[Diagnostic]) {
    let mut err = stderr();
    for d in errors {
        let _ = writeln!(err, "{}", d.render());
    }
    let files: std::collections::BTreeSet<&str> = errors.iter().map(|d| d.file.as_str()).collect();
    let _ = writeln!(
        err,
        "{} problem{} in {} file{}; nothing was changed",
        errors.len(),
        plural(errors.len()),
        files.len(),
        plural(files.len())
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `validate`'s human output: one line per valid canary on stdout, every
/// problem on stderr.
pub(crate) fn validate_report(r: &ValidateReport) {
    let mut out = stdout();
    for c in &r.canaries {
        let provider = c
            .provider
            .map(|p| format!("provider {p}"))
            .unwrap_or_else(|| "provider chosen at run time".to_string());
        let steps = match (c.weights.first(), c.weights.last()) {
            (Some(first), Some(last)) => {
                format!("{} step{} ({first}% → {last}%)", c.steps, plural(c.steps))
            }
            _ => format!("{} step{}", c.steps, plural(c.steps)),
        };
        let _ = writeln!(
            out,
            "ok  {}.{}  {}  {}  {}  ({})",
            c.name, c.namespace, c.strategy, provider, steps, c.file
        );
        for n in &c.notes {
            let _ = writeln!(out, "    note: {n}");
        }
        for w in &c.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
        if let Some(checked) = &c.cluster {
            let _ = writeln!(out, "    cluster: checked {}", checked.join(", "));
        }
    }
    if !r.skipped.is_empty() {
        let n: usize = r.skipped.values().sum();
        let _ = writeln!(
            out,
            "skipped {n} document{} that {} not Flagger's: {}",
            plural(n),
            if n == 1 { "is" } else { "are" },
            canary_core::spec::manifest::describe_kinds(&r.skipped)
        );
    }
    drop(out);
    if !r.errors.is_empty() {
        diagnostics(&r.errors);
    }
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if let Some((w, _)) = terminal_width() {
        t.set_width(w);
    } else {
        t.set_width(120);
    }
    t
}

fn terminal_width() -> Option<(u16, u16)> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return None;
    }
    let t = Table::new();
    t.width().map(|w| (w, 0))
}

fn fmt_duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `plan`'s human output.
pub(crate) fn plan_table(p: &Plan) {
    let mut out = stdout();
    let provider = match (&p.provider, p.provider_source) {
        (Some(pr), ProviderSource::Spec) => format!("{pr} (spec.provider)"),
        (Some(pr), ProviderSource::Flag) => format!("{pr} (--mesh-provider)"),
        _ => "chosen at run time (detected from the cluster; or pass --mesh-provider)".to_string(),
    };
    let _ = writeln!(out, "Canary {}.{}", p.canary, p.namespace);
    let _ = writeln!(out, "  strategy        {}", p.strategy);
    let _ = writeln!(out, "  target          {}", p.target);
    let _ = writeln!(out, "  service         {}", p.service);
    let _ = writeln!(out, "  provider        {provider}");
    if let Some(m) = &p.metrics_server {
        let _ = writeln!(out, "  metrics server  {m}");
    }
    let _ = writeln!(
        out,
        "  interval        {}, rollback after {} failed check{}",
        fmt_duration(p.interval),
        p.threshold,
        plural(p.threshold as usize)
    );
    let _ = writeln!(out);

    let _ = writeln!(out, "Start");
    for (i, s) in p.start.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
    }
    let _ = writeln!(out);

    if !p.steps.is_empty() {
        let _ = writeln!(
            out,
            "Steps ({}; each runs its hooks and checks one interval after its routing)",
            p.steps.len()
        );
        let any_before = p.steps.iter().any(|s| !s.gates.is_empty());
        let mut t = table();
        let mut header = vec!["step", "at", "primary", "canary", "routing"];
        if any_before {
            header.push("before the step");
        }
        header.push("one interval later");
        t.set_header(header);
        for s in &p.steps {
            let routing = match &s.routing {
                Routing::Weighted { .. } => "weighted".to_string(),
                Routing::Mirrored {
                    mirror_weight: None,
                } => "mirrored to canary".to_string(),
                Routing::Mirrored {
                    mirror_weight: Some(w),
                } => format!("{w}% mirrored to canary"),
                Routing::Matched { .. } => "matching requests to canary".to_string(),
                Routing::CanaryService => "canary service only".to_string(),
            };
            let mut row = vec![
                Cell::new(s.number),
                Cell::new(fmt_duration(s.at)),
                Cell::new(format!("{}%", s.primary_weight)),
                Cell::new(format!("{}%", s.canary_weight)),
                Cell::new(routing),
            ];
            if any_before {
                let gates: Vec<String> = s.gates.iter().map(ToString::to_string).collect();
                row.push(Cell::new(gates.join(", ")));
            }
            // The checks are the same every step and listed below; name the
            // hooks and count the checks.
            let checks = s.checks.len();
            let mut later: Vec<String> = s.hooks.iter().map(ToString::to_string).collect();
            if checks > 0 {
                later.push(format!("{checks} check{}", plural(checks)));
            }
            row.push(Cell::new(later.join(", ")));
            t.add_row(row);
        }
        let _ = writeln!(out, "{t}");
        let _ = writeln!(out);
    }

    if !p.checks.is_empty() {
        let _ = writeln!(out, "Checks");
        let mut t = table();
        t.set_header(vec!["metric", "pass when", "window", "source", "query"]);
        for c in &p.checks {
            let q = match (&c.query, &c.note) {
                (Some(q), _) => q.clone(),
                (None, Some(n)) => format!("({n})"),
                (None, None) => String::new(),
            };
            t.add_row(vec![
                Cell::new(&c.name),
                Cell::new(&c.condition),
                Cell::new(&c.interval),
                Cell::new(&c.source),
                Cell::new(q),
            ]);
        }
        let _ = writeln!(out, "{t}");
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "Promotion");
    for (i, s) in p.promotion.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Rollback");
    for s in &p.rollback {
        let _ = writeln!(out, "  - {s}");
    }
    let _ = writeln!(out);

    if !p.alerts.is_empty() {
        let _ = writeln!(out, "Alerts");
        for a in &p.alerts {
            let _ = writeln!(
                out,
                "  {} via AlertProvider {} (severity {}):",
                a.name,
                a.provider,
                a.severity.as_str()
            );
            for s in &a.sends {
                let _ = writeln!(out, "    - {s}");
            }
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "Objects");
    let mut t = table();
    t.set_header(vec!["kind", "name", "action"]);
    for o in &p.objects {
        t.add_row(vec![
            Cell::new(&o.kind),
            Cell::new(&o.name),
            Cell::new(&o.action),
        ]);
    }
    let _ = writeln!(out, "{t}");
    let _ = writeln!(out);

    let extra = ((p.min_duration.as_millis() / p.interval.as_millis().max(1)) as u64)
        .saturating_sub(p.steps.len() as u64);
    let promotion_steps = if extra > 0 {
        format!(
            ", plus {extra} gradual promotion interval{}",
            plural(extra as usize)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "Minimum duration: {} from a ready canary to promotion ({} step{} × {}{promotion_steps}), \
         plus readiness and promotion time; a failing canary is rolled back after at least {}.",
        fmt_duration(p.min_duration),
        p.steps.len(),
        plural(p.steps.len()),
        fmt_duration(p.interval),
        fmt_duration(p.min_rollback)
    );
    for n in &p.notes {
        let _ = writeln!(out, "note: {n}");
    }
}

/// A command's result for people, on stdout (`canary pause` ...).
pub(crate) fn result(message: &str) {
    let _ = writeln!(stdout(), "{message}");
}

/// An error for people, on stderr.
pub(crate) fn error(message: &str) {
    let _ = writeln!(stderr(), "error: {message}");
}

/// Something a person should know before the command goes on, on stderr.
pub(crate) fn warning(message: &str) {
    let _ = writeln!(stderr(), "warning: {message}");
}

/// What a command is waiting for, on stderr.
pub(crate) fn progress(message: &str) {
    let _ = writeln!(stderr(), "{message}");
}

fn initialised_line(canary: &str, target: &str) -> String {
    format!("{canary}: initialised; the next change to {target} starts an analysis")
}

fn no_change_line(canary: &str, target: &str) -> String {
    format!("{canary}: nothing to do; {target} runs the promoted revision")
}

fn already_failed_line(canary: &str, detail: Option<&str>) -> String {
    let detail = detail.map(|d| format!(" {d}")).unwrap_or_default();
    format!("{canary}: this revision already failed{detail}; run with --retry to analyse it again")
}

/// The stdout line of a `verdict` event, as `canary run` prints it;
/// `target` is the `started` event's (`deployment/podinfo`). `None` for
/// an error: it is told on stderr with [`error`].
pub(crate) fn outcome_line(
    canary: &str,
    target: Option<&str>,
    o: &canary_core::event::OutcomeInfo,
) -> Option<String> {
    let target = target.unwrap_or("the target");
    let line = match o.result.as_str() {
        "initialized" => initialised_line(canary, target),
        "noChange" => no_change_line(canary, target),
        "alreadyFailed" => already_failed_line(
            canary,
            o.reason.as_deref().map(|r| format!("({r})")).as_deref(),
        ),
        "error" => return None,
        _ => format!("{canary}: {}", outcome_words(o)),
    };
    Some(line)
}

/// How a run ended, in a few words: `promoted`, `rolled back (reason)`.
pub(crate) fn outcome_words(o: &canary_core::event::OutcomeInfo) -> String {
    let with = |w: &str| match o.reason.as_deref() {
        Some(r) if !r.is_empty() => format!("{w} ({r})"),
        _ => w.to_string(),
    };
    match o.result.as_str() {
        "promoted" => "promoted".to_string(),
        "rolledBack" => with("rolled back"),
        "initialized" => "initialised".to_string(),
        "noChange" => "nothing to do".to_string(),
        "alreadyFailed" => with("this revision already failed"),
        "aborted" => with("aborted"),
        "timedOut" => with("timed out"),
        "interrupted" => with("interrupted"),
        "error" => with("stopped by an error"),
        other => with(other),
    }
}
