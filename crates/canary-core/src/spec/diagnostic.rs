//! Errors about a spec file that a person can act on: file, line, column,
//! field path, what was expected, and a hint.

use std::fmt::Write as _;

use serde::Serialize;

use super::source::Span;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Field path such as `spec.analysis.metrics[1].thresholdRange.min`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// How many characters to underline on the line.
    #[serde(skip)]
    pub width: usize,
    /// The source line, for the excerpt.
    #[serde(skip)]
    pub source_line: Option<String>,
    /// The column of the caret in `source_line`, which is cut around the
    /// problem when the line is long.
    #[serde(skip)]
    pub excerpt_column: usize,
}

/// Longest source line shown whole in an excerpt; a longer one is cut to a
/// window around the column, so a huge value is never printed.
const EXCERPT_MAX: usize = 160;
/// How much of a long line is kept before the column.
const EXCERPT_BEFORE: usize = 40;

/// Where each line of a text starts, so a diagnostic finds its source line
/// without scanning the text from the start: with one scan per diagnostic,
/// a file with many problems would take time in the square of its size.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Line `n` (1-based) of `text` without its line break, as
    /// `str::lines` gives it.
    pub fn line<'t>(&self, text: &'t str, n: usize) -> Option<&'t str> {
        let start = *self.starts.get(n.checked_sub(1)?)?;
        if start >= text.len() {
            return None;
        }
        let end = self.starts.get(n).map(|e| e - 1).unwrap_or(text.len());
        let line = &text[start..end];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// How many lines `text` has, as `str::lines` counts them.
    pub fn count(&self, text: &str) -> usize {
        if text.ends_with('\n') || text.is_empty() {
            self.starts.len() - 1
        } else {
            self.starts.len()
        }
    }
}

/// `value` for a message: whole when short, else its first characters and
/// its length, so a huge value is never printed.
pub fn elide(value: &str) -> String {
    const KEEP: usize = 60;
    let mut chars = value.char_indices();
    match chars.nth(KEEP) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &value[..cut], value.chars().count()),
    }
}

/// A message cut short when some value in it is huge: the messages
/// elide the values they quote, and this is the net under them.
fn clip(message: String) -> String {
    const MAX: usize = 1000;
    if message.len() <= MAX {
        return message;
    }
    let mut cut = MAX / 2;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} characters)",
        &message[..cut],
        message.chars().count()
    )
}

impl Diagnostic {
    /// A diagnostic at a span of `text` (the whole file).
    pub fn at(file: &str, text: &str, span: Span, message: impl Into<String>) -> Self {
        let line = text.lines().nth(span.start.line.saturating_sub(1));
        Self::at_line(file, line, span, message)
    }

    /// A diagnostic at a span whose first line is `source_line`.
    pub fn at_line(
        file: &str,
        source_line: Option<&str>,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        let width = if span.end == span.start {
            1
        } else if span.end.line == span.start.line && span.end.column > span.start.column {
            span.end.column - span.start.column
        } else {
            source_line
                .map(|l| {
                    l.chars()
                        .count()
                        .saturating_sub(span.start.column.saturating_sub(1))
                })
                .unwrap_or(1)
        };
        let mut column = span.start.column;
        let mut width = width.max(1);
        let source_line = source_line.map(|l| {
            let l = crate::redact::mask_patterns(l);
            let (excerpt, col, w) = excerpt(&l, column, width);
            column = col;
            width = w;
            excerpt
        });
        Diagnostic {
            file: file.to_string(),
            line: span.start.line,
            column: span.start.column,
            path: None,
            message: clip(crate::redact::mask_patterns(&message.into()).into_owned()),
            help: None,
            width,
            source_line,
            excerpt_column: column,
        }
    }

    /// A diagnostic about the file as a whole (missing, unreadable, empty).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            path: None,
            message: clip(message.into()),
            help: None,
            width: 0,
            source_line: None,
            excerpt_column: 0,
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = (!p.is_empty()).then_some(p);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(clip(help.into()));
        self
    }

    /// `file:line:column`, or just the file when there is no position.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }

    /// The compiler-style block shown to people:
    ///
    /// ```text
    /// error: unknown field `stepweight`
    ///   --> podinfo.yaml:18:5 (spec.analysis.stepweight)
    ///    |
    /// 18 |     stepweight: 5
    ///    |     ^^^^^^^^^^
    ///    = help: did you mean `stepWeight`?
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        let gutter = if self.line == 0 {
            0
        } else {
            self.line.to_string().len()
        };
        let pad = " ".repeat(gutter);
        let _ = write!(out, "{pad}--> {}", self.location());
        if let Some(p) = &self.path {
            let _ = write!(out, " ({p})");
        }
        out.push('\n');
        if let Some(src) = &self.source_line {
            let src = src.replace('\t', " ");
            let lead = " ".repeat(self.excerpt_column.saturating_sub(1));
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {src}", self.line);
            let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(self.width));
        }
        if let Some(h) = &self.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
        out
    }
}

/// A long line cut to a window around `column`, with the caret's column
/// and width in the window.
fn excerpt(line: &str, column: usize, width: usize) -> (String, usize, usize) {
    let len = line.chars().count();
    if len <= EXCERPT_MAX {
        return (line.to_string(), column, width);
    }
    let from = column.saturating_sub(1).saturating_sub(EXCERPT_BEFORE);
    let to = (from + EXCERPT_MAX).min(len);
    let mut out = String::new();
    let mut col = column - from;
    if from > 0 {
        out.push('…');
        col += 1;
    }
    out.extend(line.chars().skip(from).take(to - from));
    if to < len {
        out.push('…');
    }
    let room = (to + 1).saturating_sub(column).max(1);
    (out, col, width.min(room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::source::Pos;

    #[test]
    fn renders_excerpt_with_caret_under_the_span() {
        let text = "spec:\n  analysis:\n    stepweight: 5\n";
        let span = Span {
            start: Pos { line: 3, column: 5 },
            end: Pos {
                line: 3,
                column: 15,
            },
        };
        let d = Diagnostic::at("c.yaml", text, span, "unknown field `stepweight`")
            .with_path("spec.analysis.stepweight")
            .with_help("did you mean `stepWeight`?");
        let r = d.render();
        assert!(
            r.contains("\n --> c.yaml:3:5 (spec.analysis.stepweight)"),
            "{r}"
        );
        assert!(
            r.contains("3 |     stepweight: 5\n  |     ^^^^^^^^^^\n"),
            "{r}"
        );
        assert!(r.ends_with("  = help: did you mean `stepWeight`?\n"), "{r}");
    }

    #[test]
    fn a_long_line_is_cut_around_the_problem() {
        let value = "x".repeat(50_000_000);
        let text = format!("a:\n  url: {value}y\n");
        let lines = LineIndex::new(&text);
        let span = Span {
            start: Pos {
                line: 2,
                column: 50_000_008,
            },
            end: Pos {
                line: 2,
                column: 50_000_009,
            },
        };
        let d = Diagnostic::at_line("c.yaml", lines.line(&text, 2), span, elide(&value));
        let r = d.render();
        assert!(r.len() < 1_000, "{}", r.len());
        assert!(r.contains("--> c.yaml:2:50000008"), "{r}");
        assert!(r.contains("(50000000 characters)"), "{r}");
        // The caret still sits under the `y`.
        let src = r.lines().find(|l| l.starts_with("2 |")).unwrap();
        let caret = r.lines().find(|l| l.contains('^')).unwrap();
        let at = caret.find('^').unwrap();
        assert_eq!(src.chars().nth(caret[..at].chars().count()), Some('y'));
    }

    #[test]
    fn passwords_in_urls_are_not_quoted() {
        let text = "    url: http://user:s3cret@loadtester.prod:8080/x?y=1\n";
        let d = Diagnostic::at(
            "c.yaml",
            text,
            Span::point(1, 10),
            "failed: http://u:p4ss@h/ and https://tok@h2",
        );
        let r = d.render();
        assert!(
            !r.contains("s3cret") && !r.contains("p4ss") && !r.contains("tok@"),
            "{r}"
        );
        assert!(r.contains("http://***@loadtester.prod:8080/x?y=1"), "{r}");
        assert!(r.contains("https://***@h2"), "{r}");
        assert_eq!(
            crate::redact::mask_patterns("a@b http://h/x@y"),
            "a@b http://h/x@y"
        );
    }

    #[test]
    fn the_line_index_agrees_with_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n", "a\n\nb\n"] {
            let idx = LineIndex::new(text);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(idx.count(text), lines.len(), "{text:?}");
            for n in 1..=lines.len() + 1 {
                assert_eq!(idx.line(text, n), lines.get(n - 1).copied(), "{text:?} {n}");
            }
            assert_eq!(idx.line(text, 0), None);
        }
    }
}
