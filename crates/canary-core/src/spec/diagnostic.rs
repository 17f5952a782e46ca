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
}

impl Diagnostic {
    /// A diagnostic at a span of `text` (the whole file).
    pub fn at(file: &str, text: &str, span: Span, message: impl Into<String>) -> Self {
        let source_line = text
            .lines()
            .nth(span.start.line.saturating_sub(1))
            .map(str::to_string);
        let width = if span.end == span.start {
            1
        } else if span.end.line == span.start.line && span.end.column > span.start.column {
            span.end.column - span.start.column
        } else {
            source_line
                .as_deref()
                .map(|l| {
                    l.chars()
                        .count()
                        .saturating_sub(span.start.column.saturating_sub(1))
                })
                .unwrap_or(1)
        };
        Diagnostic {
            file: file.to_string(),
            line: span.start.line,
            column: span.start.column,
            path: None,
            message: message.into(),
            help: None,
            width: width.max(1),
            source_line,
        }
    }

    /// A diagnostic about the file as a whole (missing, unreadable, empty).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            path: None,
            message: message.into(),
            help: None,
            width: 0,
            source_line: None,
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = (!p.is_empty()).then_some(p);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
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
            let lead = " ".repeat(self.column.saturating_sub(1));
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
}
