//! YAML text to plain values, keeping where every node came from.
//!
//! serde deserializers report positions only for syntax and type errors and
//! forget them once a value is built, yet a semantic error ("min above max")
//! must point at the line that caused it. So the text is read once by
//! `saphyr`, a YAML 1.2 parser whose nodes carry spans, and each document is
//! turned into a `serde_json::Value` (what the typed structs deserialize
//! from) plus a [`SpanIndex`] from field path to the key and value spans.

use std::collections::HashMap;

use saphyr::{MarkedYamlOwned, ScalarOwned, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, Parser, SpannedEventReceiver};
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

/// One step of a field path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key(Box<str>),
    Index(usize),
}

/// Field path (`spec.analysis.metrics[1].thresholdRange.min`; `""` for the
/// document root) to spans, for one document.
///
/// The nodes are kept as a tree (each node knows its parent and its own key)
/// rather than by full path: a full path per node costs the depth times the
/// key length for every node, which a hostile file of long keys nested
/// deep, with many nodes under them, turns into gigabytes.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: Vec<IndexedNode>,
    children: HashMap<(usize, Segment), usize>,
}

#[derive(Debug, Clone)]
struct IndexedNode {
    parent: Option<(usize, Segment)>,
    span: NodeSpan,
}

impl SpanIndex {
    /// Adds a node under `parent` (`None` for the root); returns its id.
    fn add(&mut self, parent: Option<(usize, Segment)>, span: NodeSpan) -> usize {
        let id = self.nodes.len();
        if let Some(p) = &parent {
            self.children.insert(p.clone(), id);
        }
        self.nodes.push(IndexedNode { parent, span });
        id
    }

    /// The path of node `id`, in the notation [`join_key`] and
    /// [`join_index`] write.
    fn path_of(&self, id: usize) -> String {
        let mut segments = Vec::new();
        let mut at = id;
        while let Some((parent, seg)) = self.nodes.get(at).and_then(|n| n.parent.as_ref()) {
            segments.push(seg);
            at = *parent;
        }
        let mut path = String::new();
        for seg in segments.into_iter().rev() {
            path = match seg {
                Segment::Key(k) => join_key(&path, k),
                Segment::Index(i) => join_index(&path, *i),
            };
        }
        path
    }

    /// The node at `rest` below node `id`. A key may itself hold `.` or
    /// `[` (`flagger.app/config`), so each place the key could end is tried.
    fn find(&self, id: usize, rest: &str, top: bool) -> Option<usize> {
        if rest.is_empty() {
            return Some(id);
        }
        if let Some(r) = rest.strip_prefix('[')
            && let Some(close) = r.find(']')
            && let Ok(i) = r[..close].parse::<usize>()
            && let Some(&child) = self.children.get(&(id, Segment::Index(i)))
            && let Some(found) = self.find(child, &r[close + 1..], false)
        {
            return Some(found);
        }
        let rest = if top { rest } else { rest.strip_prefix('.')? };
        let ends = rest
            .match_indices(['.', '['])
            .map(|(i, _)| i)
            .chain(std::iter::once(rest.len()));
        for end in ends {
            let key = Segment::Key(rest[..end].into());
            if let Some(&child) = self.children.get(&(id, key))
                && let Some(found) = self.find(child, &rest[end..], false)
            {
                return Some(found);
            }
        }
        None
    }

    pub fn get(&self, path: &str) -> Option<&NodeSpan> {
        if self.nodes.is_empty() {
            return None;
        }
        self.find(0, path, true).map(|id| &self.nodes[id].span)
    }

    /// The best span to show for a path: the key when there is one (that is
    /// what a reader scans for), else the value. Paths that do not exist (a
    /// missing field) fall back to their nearest existing ancestor.
    pub fn locate(&self, path: &str) -> Span {
        let mut p = path;
        loop {
            if let Some(n) = self.get(p) {
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
        match self.get(path) {
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

/// How much of a YAML stream is read before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of mappings and lists (aliases count at the depth
    /// they expand to).
    pub max_depth: usize,
    /// Most documents in one stream, empty ones included.
    pub max_documents: usize,
}

/// Nesting deeper than any Kubernetes object needs, yet shallow enough
/// that every recursive walk of a document (conversion, deserialization,
/// dropping it) stays far from the end of the stack.
pub const MAX_DEPTH: usize = 128;

const DEPTH_HELP: &str = "a Flagger spec nests about ten levels; this file is not one";

/// More documents than a spec file holds in practice.
pub const MAX_DOCUMENTS: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_documents: MAX_DOCUMENTS,
        }
    }
}

/// Parses every document of a YAML stream. Empty documents (a stray `---`)
/// are skipped, as kubectl does.
pub fn parse_documents(text: &str) -> Result<Vec<RawDocument>, SyntaxError> {
    parse_documents_with(text, &Limits::default())
}

/// [`parse_documents`] with other limits.
pub fn parse_documents_with(text: &str, limits: &Limits) -> Result<Vec<RawDocument>, SyntaxError> {
    let docs = load_events(text, limits)?;
    let mut out = Vec::new();
    // Documents are numbered as a reader counts them: empty ones do not count.
    let non_empty = docs
        .iter()
        .filter(|n| !matches!(n.data, YamlDataOwned::Value(ScalarOwned::Null)));
    for (index, node) in non_empty.enumerate() {
        let mut spans = SpanIndex::default();
        let value = convert(node, None, None, &mut spans)?;
        out.push(RawDocument {
            index,
            start: Span::from_saphyr(&node.span),
            value,
            spans,
        });
    }
    Ok(out)
}

/// Feeds the parser's events to saphyr's loader one at a time, refusing
/// the stream at the first event past a limit: before the tree that would
/// overflow the stack (parsing, converting and dropping a document all
/// recurse once per level) or fill the memory is built.
///
/// saphyr's own `Parser::load` recurses once per level of nesting too, so
/// the events are pulled here instead.
fn load_events(text: &str, limits: &Limits) -> Result<Vec<MarkedYamlOwned>, SyntaxError> {
    let scan_error = |e: &saphyr::ScanError| {
        explain_scan_error(text, e.marker().line(), e.marker().col() + 1, e.info())
    };
    let mut parser = Parser::new_from_str(text);
    let mut loader: YamlLoader<'_, MarkedYamlOwned> = YamlLoader::default();
    let mut guard = Guard::default();
    for event in &mut parser {
        let (event, span) = event.map_err(|e| scan_error(&e))?;
        guard.check(&event, &span, limits)?;
        loader.on_event(event, span);
        if let Some(e) = loader.error() {
            return Err(scan_error(e));
        }
    }
    Ok(loader.into_documents())
}

/// Depth and document count of the stream read so far.
#[derive(Default)]
struct Guard {
    documents: usize,
    /// Open collections: their anchor and the height of their tallest
    /// child so far.
    open: Vec<(usize, usize)>,
    /// The height of each anchored node of the current document.
    anchors: HashMap<usize, usize>,
}

impl Guard {
    fn check(
        &mut self,
        event: &Event<'_>,
        span: &saphyr_parser::Span,
        limits: &Limits,
    ) -> Result<(), SyntaxError> {
        let at = |message: String, help: &str| SyntaxError {
            span: Span::from_saphyr(span),
            path: None,
            message,
            help: Some(help.to_string()),
        };
        let too_deep = || {
            at(
                format!("the YAML nests more than {} levels deep", limits.max_depth),
                DEPTH_HELP,
            )
        };
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                self.anchors.clear();
                if self.documents > limits.max_documents {
                    return Err(at(
                        format!(
                            "the file holds more than {} YAML documents",
                            limits.max_documents
                        ),
                        "split the documents across several files",
                    ));
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let anchor = match event {
                    Event::SequenceStart(a, _) | Event::MappingStart(a, _) => *a,
                    _ => 0,
                };
                self.open.push((anchor, 0));
                if self.open.len() > limits.max_depth {
                    return Err(too_deep());
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, tallest)) = self.open.pop() {
                    self.placed(anchor, tallest + 1);
                }
            }
            Event::Scalar(_, _, anchor, _) => self.placed(*anchor, 0),
            Event::Alias(id) => {
                // The loader copies the anchored node here: its height
                // counts from this depth.
                let Some(&height) = self.anchors.get(id) else {
                    return Err(at(
                        "invalid YAML: this alias names no anchor of its document".to_string(),
                        "an alias (`*name`) refers to an anchor (`&name`) earlier in the same document",
                    ));
                };
                if self.open.len() + height > limits.max_depth {
                    return Err(too_deep());
                }
                self.placed(0, height);
            }
            _ => {}
        }
        Ok(())
    }

    /// A node of `height` is complete: its parent grows, its anchor is
    /// remembered.
    fn placed(&mut self, anchor: usize, height: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, height);
        }
        if let Some((_, tallest)) = self.open.last_mut() {
            *tallest = (*tallest).max(height);
        }
    }
}

fn convert(
    node: &MarkedYamlOwned,
    parent: Option<(usize, Segment)>,
    key: Option<Span>,
    spans: &mut SpanIndex,
) -> Result<Value, SyntaxError> {
    let span = Span::from_saphyr(&node.span);
    let collection = matches!(
        node.data,
        YamlDataOwned::Sequence(_) | YamlDataOwned::Mapping(_)
    );
    let id = spans.add(
        parent,
        NodeSpan {
            key,
            value: span,
            collection,
        },
    );
    let err = |spans: &SpanIndex, message: String| SyntaxError {
        span,
        path: Some(spans.path_of(id)),
        message,
        help: None,
    };
    Ok(match &node.data {
        YamlDataOwned::Value(s) => scalar(s).map_err(|m| err(spans, m))?,
        YamlDataOwned::Representation(raw, _, _) => Value::String(raw.clone()),
        YamlDataOwned::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, Some((id, Segment::Index(i))), None, spans)?);
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
                            path: Some(spans.path_of(id)),
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
                                path: Some(spans.path_of(id)),
                                message: "a `<<` merge key needs a mapping or a list of mappings"
                                    .to_string(),
                                help: None,
                            });
                        }
                    }
                    continue;
                }
                let child = Some((id, Segment::Key(name.as_str().into())));
                let value = convert(v, child, Some(key_span), spans)?;
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
                        let child = Some((id, Segment::Key(name.as_str().into())));
                        let value = convert(v, child, Some(Span::from_saphyr(&k.span)), spans)?;
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
            return Err(err(spans, format!("unsupported YAML tag `{tag}`")));
        }
        YamlDataOwned::Alias(_) => return Err(err(spans, "unresolved YAML alias".to_string())),
        YamlDataOwned::BadValue => {
            return Err(err(
                spans,
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
    // The scanner's own limit on `[` and `{` nesting (255), which it may
    // reach while looking ahead, before this reader counts the levels.
    if info.contains("recursion limit exceeded") {
        return at(
            line,
            column,
            format!("the YAML nests more than {MAX_DEPTH} levels deep"),
            Some(DEPTH_HELP),
        );
    }
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
            format!(
                "invalid YAML: duplicate key `{}`",
                super::diagnostic::elide(key)
            ),
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
