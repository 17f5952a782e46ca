//! Formatting shared by the renderings of a run's events: numbers in the
//! unit of their metric, short durations, colour and fitting a line into
//! a number of terminal columns. Everything here is pure.

use std::time::Duration;

use canary_core::engine::state::MetricRecord;
use canary_core::event::{MetricInfo, RunInfo};
use canary_core::time::Time;

/// A colour (or weight) for a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paint {
    Green,
    Red,
    Yellow,
    Cyan,
    Dim,
    Bold,
}

/// `text` with ANSI styling when `on`, unchanged otherwise.
pub(crate) fn paint(text: &str, p: Paint, on: bool) -> String {
    if !on || text.is_empty() {
        return text.to_string();
    }
    let style = console::Style::new().force_styling(true);
    let style = match p {
        Paint::Green => style.green(),
        Paint::Red => style.red(),
        Paint::Yellow => style.yellow(),
        Paint::Cyan => style.cyan(),
        Paint::Dim => style.dim(),
        Paint::Bold => style.bold(),
    };
    style.apply_to(text).to_string()
}

/// Display columns of `s`, escape codes not counted.
pub(crate) fn width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// `s` cut to at most `cols` display columns, with `…` where it was cut.
pub(crate) fn fit(s: &str, cols: usize) -> String {
    if width(s) <= cols {
        return s.to_string();
    }
    if cols == 0 {
        return String::new();
    }
    console::truncate_str(s, cols, "…").into_owned()
}

/// `s` padded with spaces to `cols` display columns (never cut).
pub(crate) fn pad(s: &str, cols: usize) -> String {
    let w = width(s);
    if w >= cols {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(cols - w))
    }
}

/// `s` right-aligned in `cols` display columns (never cut).
pub(crate) fn pad_left(s: &str, cols: usize) -> String {
    let w = width(s);
    if w >= cols {
        s.to_string()
    } else {
        format!("{}{s}", " ".repeat(cols - w))
    }
}

/// RFC 3339 in whole seconds, UTC: `2026-11-26T17:40:03Z`.
pub(crate) fn timestamp(t: Time) -> String {
    let st = std::time::UNIX_EPOCH + Duration::from_millis(t.0.max(0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

/// A number without trailing zeros: `99`, `99.5`, `0.125`.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A measured value in its unit: `99.87%`, `212ms`, `3.5`.
pub(crate) fn value(v: f64, unit: &str) -> String {
    match unit {
        "%" => format!("{v:.2}%"),
        "ms" if v.abs() >= 10.0 => format!("{v:.0}ms"),
        "ms" => format!("{v:.1}ms"),
        "" => number(v),
        u => format!("{} {u}", number(v)),
    }
}

/// A threshold in its unit: `99%`, `500ms`.
pub(crate) fn bound(v: f64, unit: &str) -> String {
    match unit {
        "" => number(v),
        "%" | "ms" => format!("{}{unit}", number(v)),
        u => format!("{} {u}", number(v)),
    }
}

/// The unit a metric's values are in, from the rollout's description.
pub(crate) fn unit_of<'a>(run: Option<&'a RunInfo>, metric: &str) -> &'a str {
    run.and_then(|r| r.metrics.iter().find(|m| m.name == metric))
        .map(|m: &MetricInfo| m.unit.as_str())
        .unwrap_or("")
}

/// `min 99%`, `max 500ms`, `min 1, max 5`, or empty.
pub(crate) fn thresholds(min: Option<f64>, max: Option<f64>, unit: &str) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("min {}, max {}", bound(lo, unit), bound(hi, unit)),
        (Some(lo), None) => format!("min {}", bound(lo, unit)),
        (None, Some(hi)) => format!("max {}", bound(hi, unit)),
        (None, None) => String::new(),
    }
}

/// A metric's value, or why it has none: `99.87%`, `no value (timeout)`.
pub(crate) fn metric_value(m: &MetricRecord, unit: &str) -> String {
    match (m.value, &m.error) {
        (Some(v), _) => value(v, unit),
        (None, Some(e)) => format!("no value ({e})"),
        (None, None) => "no value".to_string(),
    }
}

/// A short span: `450ms`, `42s`, `1m 10s`, `2m`, `1h 5m`.
pub(crate) fn span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 && ms > 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        let frac = ms % 1000;
        if s < 10 && frac >= 100 {
            return format!("{s}.{}s", frac / 100);
        }
        return format!("{s}s");
    }
    if s < 3600 {
        return match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m {r}s", s / 60),
        };
    }
    match (s % 3600) / 60 {
        0 => format!("{}h", s / 3600),
        m => format!("{}h {m}m", s / 3600),
    }
}

/// A span given in (possibly fractional) seconds.
pub(crate) fn span_secs(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0s".to_string();
    }
    span(Duration::from_millis((secs * 1000.0).round() as u64))
}

/// `5 steps 10% → 50%`, `10 iterations`, or empty; the rollout's shape.
pub(crate) fn steps(run: &RunInfo) -> String {
    if run.iterations > 0 {
        return format!(
            "{} iteration{}",
            run.iterations,
            plural(run.iterations as usize)
        );
    }
    match (run.weights.first(), run.weights.last()) {
        (Some(first), Some(last)) if run.weights.len() > 1 => {
            format!("{} steps {first}% → {last}%", run.weights.len())
        }
        (Some(only), _) => format!("1 step to {only}%"),
        _ => String::new(),
    }
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A rate of requests: `9.8 req/s`, `120 req/s`.
pub(crate) fn rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0} req/s"),
        Some(v) => format!("{v:.1} req/s"),
        None => "- req/s".to_string(),
    }
}

/// A success rate: `99.87%`.
pub(crate) fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}%"))
        .unwrap_or_else(|| "-".to_string())
}

/// A latency in milliseconds: `45ms`.
pub(crate) fn millis(v: Option<f64>) -> String {
    v.map(|v| value(v, "ms")).unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lose_their_trailing_zeros() {
        assert_eq!(number(99.0), "99");
        assert_eq!(number(99.5), "99.5");
        assert_eq!(number(0.1254), "0.125");
        assert_eq!(number(-0.0001), "0");
    }

    #[test]
    fn values_are_shown_in_their_unit() {
        assert_eq!(value(99.8712, "%"), "99.87%");
        assert_eq!(value(212.4, "ms"), "212ms");
        assert_eq!(value(2.35, "ms"), "2.4ms");
        assert_eq!(value(3.0, ""), "3");
        assert_eq!(value(3.0, "req"), "3 req");
        assert_eq!(thresholds(Some(99.0), None, "%"), "min 99%");
        assert_eq!(thresholds(Some(1.0), Some(5.0), ""), "min 1, max 5");
    }

    #[test]
    fn spans_are_short() {
        assert_eq!(span(Duration::from_millis(450)), "450ms");
        assert_eq!(span(Duration::from_secs(0)), "0s");
        assert_eq!(span(Duration::from_secs(42)), "42s");
        assert_eq!(span(Duration::from_millis(2500)), "2.5s");
        assert_eq!(span(Duration::from_secs(70)), "1m 10s");
        assert_eq!(span(Duration::from_secs(120)), "2m");
        assert_eq!(span(Duration::from_secs(3900)), "1h 5m");
        assert_eq!(span_secs(60.0), "1m");
    }

    #[test]
    fn fitting_cuts_with_an_ellipsis_and_keeps_escapes_balanced() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("abc", 0), "");
        let red = paint("abcdef", Paint::Red, true);
        let cut = fit(&red, 4);
        assert_eq!(width(&cut), 4);
        assert!(cut.ends_with("\u{1b}[0m"), "{cut:?}");
        // Wide characters count two columns.
        assert_eq!(width(&fit("日本語テキスト", 5)), 5);
    }

    #[test]
    fn painting_off_leaves_the_text_alone() {
        assert_eq!(paint("ok", Paint::Green, false), "ok");
        assert_ne!(paint("ok", Paint::Green, true), "ok");
    }
}
