//! YAML text to plain values, keeping where every node came from.
//!
//! serde deserializers report positions only for syntax and type errors and
//! forget them once a value is built, yet a semantic error ("min above max")
//! must point at the line that caused it. So the text is read once by
//! `saphyr`, a YAML 1.2 parser whose nodes carry spans, and each document is
//! turned into a `serde_json::Value` (what the typed structs deserialize
//! from) plus a [`SpanIndex`] from field path to the key and value spans.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Number, Value};

/// A position in a source file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A range in a source file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_saphyr(span: &saphyr_parser::Span) -> Self {
        let pos = |m: &saphyr::Marker| Pos {
            line: m.line(),
            column: m.col() + 1,
        };
        Span {
            start: pos(&span.start),
            end: pos(&span.end),
        }
    }

    /// A span covering a single position.
    pub fn point(line: usize, column: usize) -> Self {
        let p = Pos { line, column };
        Span { start: p, end: p }
    }
}

/// Where the node at one field path sits: its key (absent for the document
/// root and list items) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    pub key: Option<Span>,
    pub value: Span,
    /// Whether the value is a mapping or a list (its span then covers
    /// many lines, so its key is the better place to point at).
    pub collection: bool,
}

/// Field path (`spec.analysis.metrics[1].thresholdRange.min`; `""` for the
/// document root) to spans, for one document.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpan>,
}

impl SpanIndex {
    pub fn get(&self, path: &str) -> Option<&NodeSpan> {
        self.nodes.get(path)
    }

    /// The best span to show for a path: the key when there is one (that is
    /// what a reader scans for), else the value. Paths that do not exist (a
    /// missing field) fall back to their nearest existing ancestor.
    pub fn locate(&self, path: &str) -> Span {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return n.key.unwrap_or(n.value);
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return Span::point(1, 1),
            }
        }
    }

    /// The span of a scalar value at a path (the key, for a mapping or
    /// list), with the same fallback as [`locate`](Self::locate).
    pub fn locate_value(&self, path: &str) -> Span {
        match self.nodes.get(path) {
            Some(n) if n.collection => n.key.unwrap_or(n.value),
            Some(n) => n.value,
            None => self.locate(path),
        }
    }
}

/// The path one level up: `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> `""`.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Appends a map key to a path.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends a list index to a path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct RawDocument {
    /// 0-based position of the document in the file.
    pub index: usize,
    /// Where the document starts.
    pub start: Span,
    pub value: Value,
    pub spans: SpanIndex,
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub span: Span,
    pub path: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

/// Parses every document of a YAML stream. Empty documents (a stray `---`)
/// are skipped, as kubectl does.
pub fn parse_documents(text: &str) -> Result<Vec<RawDocument>, SyntaxError> {
    let docs = MarkedYamlOwned::load_from_str(text)
        .map_err(|e| explain_scan_error(text, e.marker().line(), e.marker().col() + 1, e.info()))?;
    let mut out = Vec::new();
    // Documents are numbered as a reader counts them: empty ones do not count.
    let non_empty = docs
        .iter()
        .filter(|n| !matches!(n.data, YamlDataOwned::Value(ScalarOwned::Null)));
    for (index, node) in non_empty.enumerate() {
        let mut spans = SpanIndex::default();
        let value = convert(node, "", None, &mut spans)?;
        out.push(RawDocument {
            index,
            start: Span::from_saphyr(&node.span),
            value,
            spans,
        });
    }
    Ok(out)
}

fn convert(
    node: &MarkedYamlOwned,
    path: &str,
    key: Option<Span>,
    spans: &mut SpanIndex,
) -> Result<Value, SyntaxError> {
    let span = Span::from_saphyr(&node.span);
    let collection = matches!(
        node.data,
        YamlDataOwned::Sequence(_) | YamlDataOwned::Mapping(_)
    );
    spans.nodes.insert(
        path.to_string(),
        NodeSpan {
            key,
            value: span,
            collection,
        },
    );
    let err = |message: String| SyntaxError {
        span,
        path: Some(path.to_string()),
        message,
        help: None,
    };
    Ok(match &node.data {
        YamlDataOwned::Value(s) => scalar(s).map_err(err)?,
        YamlDataOwned::Representation(raw, _, _) => Value::String(raw.clone()),
        YamlDataOwned::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, &join_index(path, i), None, spans)?);
            }
            Value::Array(out)
        }
        YamlDataOwned::Mapping(map) => {
            let mut out = Map::new();
            let mut merges = Vec::new();
            for (k, v) in map.iter() {
                let key_span = Span::from_saphyr(&k.span);
                let name = match &k.data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                    YamlDataOwned::Value(ScalarOwned::Integer(i)) => i.to_string(),
                    YamlDataOwned::Value(ScalarOwned::Boolean(b)) => b.to_string(),
                    YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => f.to_string(),
                    YamlDataOwned::Value(ScalarOwned::Null) => "null".to_string(),
                    _ => {
                        return Err(SyntaxError {
                            span: key_span,
                            path: Some(path.to_string()),
                            message: "mapping keys must be plain scalars".to_string(),
                            help: None,
                        });
                    }
                };
                // `<<: *anchor` merge keys, which kubectl's YAML reader
                // honours: resolved after the explicit keys, which win.
                if name == "<<" {
                    match &v.data {
                        YamlDataOwned::Mapping(_) => merges.push(v),
                        YamlDataOwned::Sequence(items)
                            if items
                                .iter()
                                .all(|i| matches!(i.data, YamlDataOwned::Mapping(_))) =>
                        {
                            merges.extend(items.iter())
                        }
                        _ => {
                            return Err(SyntaxError {
                                span: key_span,
                                path: Some(path.to_string()),
                                message: "a `<<` merge key needs a mapping or a list of mappings"
                                    .to_string(),
                                help: None,
                            });
                        }
                    }
                    continue;
                }
                let child = join_key(path, &name);
                let value = convert(v, &child, Some(key_span), spans)?;
                out.insert(name, value);
            }
            for source in merges {
                if let YamlDataOwned::Mapping(m) = &source.data {
                    for (k, v) in m.iter() {
                        let YamlDataOwned::Value(ScalarOwned::String(name)) = &k.data else {
                            continue;
                        };
                        if out.contains_key(name) {
                            continue;
                        }
                        let child = join_key(path, name);
                        let value = convert(v, &child, Some(Span::from_saphyr(&k.span)), spans)?;
                        out.insert(name.clone(), value);
                    }
                }
            }
            Value::Object(out)
        }
        YamlDataOwned::Tagged(tag, _) => {
            // Core-schema tags (`!!str 5`) were already resolved by the
            // parser; anything else is an application tag Kubernetes would
            // not understand either.
            return Err(err(format!("unsupported YAML tag `{tag}`")));
        }
        YamlDataOwned::Alias(_) => return Err(err("unresolved YAML alias".to_string())),
        YamlDataOwned::BadValue => {
            return Err(err(
                "value does not match its YAML tag or could not be read".to_string(),
            ));
        }
    })
}

/// Turns the parser's message into one that says what to fix, and points
/// at the place a person would look.
fn explain_scan_error(text: &str, line: usize, column: usize, info: &str) -> SyntaxError {
    let lines: Vec<&str> = text.lines().collect();
    // The parser may report a position past the end of the file.
    let (line, column) = if line > lines.len() && !lines.is_empty() {
        let last = lines.len();
        (last, lines[last - 1].chars().count().max(1))
    } else {
        (line.max(1), column)
    };
    let source = lines.get(line - 1).copied().unwrap_or("");
    let at = |l: usize, c: usize, message: String, help: Option<&str>| SyntaxError {
        span: Span::point(l, c),
        path: None,
        message,
        help: help.map(str::to_string),
    };
    if info.contains("tab")
        && let Some(i) = source.chars().position(|c| c == '\t')
    {
        return at(
            line,
            i + 1,
            "invalid YAML: a tab character is used for indentation".to_string(),
            Some("indent with spaces"),
        );
    }
    if info.contains("duplicated key") {
        let key: String = source
            .chars()
            .skip(column.saturating_sub(1))
            .take_while(|c| *c != ':')
            .collect();
        let key = key.trim().trim_matches(['"', '\'']);
        let first = lines[..line - 1]
            .iter()
            .rposition(|l| l.trim_start().starts_with(&format!("{key}:")))
            .map(|i| format!("the first `{key}` is on line {}", i + 1));
        return at(
            line,
            column,
            format!("invalid YAML: duplicate key `{key}`"),
            first.as_deref(),
        );
    }
    // An unclosed `[` or `{` makes the parser stumble on a later line;
    // point at the bracket instead.
    for l in (1..line).rev().take(3) {
        if let Some(c) = unclosed_bracket(lines[l - 1]) {
            let ch = lines[l - 1].chars().nth(c - 1).unwrap_or('[');
            let close = if ch == '[' { ']' } else { '}' };
            return at(
                l,
                c,
                format!("invalid YAML: this `{ch}` is never closed"),
                Some(&format!("add the closing `{close}`")),
            );
        }
        if !lines[l - 1].trim().is_empty() {
            break;
        }
    }
    if let Some(c) = unclosed_bracket(source).filter(|_| info.contains("flow")) {
        return at(
            line,
            c,
            "invalid YAML: this bracket is never closed".to_string(),
            None,
        );
    }
    let help = if info.contains("quoted scalar") {
        Some("a quoted string may be missing its closing quote")
    } else if info.contains("did not find expected key") || info.contains("mapping values") {
        Some("check the indentation of this line against the lines above it")
    } else {
        None
    };
    at(line, column, format!("invalid YAML: {info}"), help)
}

/// The 1-based column of the last `[` or `{` on a line that is not closed
/// on it, ignoring quoted text and comments.
fn unclosed_bracket(line: &str) -> Option<usize> {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    for (i, c) in line.chars().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[') | (None, '{') => stack.push(i + 1),
            (None, ']') | (None, '}') => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.last().copied()
}

fn scalar(s: &ScalarOwned) -> Result<Value, String> {
    Ok(match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::Number((*i).into()),
        ScalarOwned::FloatingPoint(f) => match Number::from_f64(f.into_inner()) {
            Some(n) => Value::Number(n),
            None => return Err(format!("`{}` is not a finite number", f.into_inner())),
        },
        ScalarOwned::String(s) => Value::String(s.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values_by_path() {
        let text = "a:\n  b:\n    - x: 1\n    - x: 2.5\n      y: true\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.value["a"]["b"][1]["x"], serde_json::json!(2.5));
        let n = d.spans.get("a.b[1].y").unwrap();
        assert_eq!(n.key.unwrap().start, Pos { line: 5, column: 7 });
        assert_eq!(
            n.value.start,
            Pos {
                line: 5,
                column: 10
            }
        );
        assert_eq!(d.spans.locate("a.b[1].missing").start.line, 4);
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 1);
        assert_eq!(docs[1].spans.locate("b").start.line, 5);
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_have_positions() {
        let e = parse_documents("a: [1, 2\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        let e = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.message, "invalid YAML: duplicate key `a`");
        assert_eq!(e.help.as_deref(), Some("the first `a` is on line 1"));
        assert_eq!(e.span.start.line, 3);
        let e = parse_documents("a:\n  b: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(e.message, "invalid YAML: this `[` is never closed");
        assert_eq!(e.span.start, Pos { line: 2, column: 6 });
    }

    #[test]
    fn quoted_and_tagged_scalars_stay_strings() {
        let docs = parse_documents("a: \"5\"\nb: !!str 6\nc: '1m'\n").unwrap();
        assert_eq!(docs[0].value["a"], serde_json::json!("5"));
        assert_eq!(docs[0].value["b"], serde_json::json!("6"));
        assert_eq!(docs[0].value["c"], serde_json::json!("1m"));
    }

    #[test]
    fn merge_keys_are_honoured_and_explicit_keys_win() {
        let text = "base: &b\n  x: 1\n  y: 2\nitem:\n  <<: *b\n  y: 3\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs[0].value["item"], serde_json::json!({"y": 3, "x": 1}));
        assert_eq!(docs[0].spans.locate("item.x").start.line, 2);
    }

    #[test]
    fn parent_paths_walk_up() {
        assert_eq!(parent_path("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
