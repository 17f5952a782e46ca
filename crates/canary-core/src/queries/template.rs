//! Rendering of Flagger metric query templates.
//!
//! Flagger renders its built-in queries, inline `analysis.metrics[].query`
//! strings and `MetricTemplate.spec.query` the same way
//! (`RenderQuery` in `pkg/metrics/observers/render.go`): Go `text/template`
//! with the option `missingkey=error`, no data (`.` is nil) and the function
//! map of `MetricTemplateModel.TemplateFunctions()`:
//!
//! | function    | value (from `toMetricModel` in `pkg/controller/scheduler_metrics.go`) |
//! |-------------|--------------------------------------------------------------|
//! | `name`      | `metadata.name` of the Canary                                |
//! | `namespace` | `metadata.namespace` of the Canary                           |
//! | `target`    | `spec.targetRef.name`                                        |
//! | `service`   | `spec.service.name`, else `spec.targetRef.name`              |
//! | `ingress`   | `spec.ingressRef.name`, else `spec.targetRef.name`           |
//! | `route`     | `spec.routeRef.name`, else `spec.targetRef.name`; for Knative the latest created revision |
//! | `interval`  | the metric's `interval` exactly as written, else `"1m"`      |
//! | `variables` | the metric's `templateVariables` (a string map)              |
//!
//! The first seven take no arguments and return a string. `variables` returns
//! the map; Flagger's documentation and its own tests read it with a field
//! chain, `{{ variables.direction }}`, and Go's built-in `index` reaches keys
//! that are not identifiers: `{{ index variables "my-key" }}`.
//!
//! The interval is not parsed or normalised: whatever string the metric
//! carries (`"1m"`, `"30s"`, `"1m30s"`) lands between the brackets of the
//! range selector, so a bad interval surfaces as a PromQL error at query
//! time, as it does in Flagger. [`DEFAULT_INTERVAL`] is Flagger's fallback
//! (`Canary.GetMetricInterval`).
//!
//! # What this renderer accepts
//!
//! Go's engine accepts far more than the above (pipelines, `if`, `range`,
//! every `fmt` verb). Flagger's templates need only this subset, so that is all
//! [`render`] implements:
//!
//! * `{{ name }}` ... `{{ interval }}`, with or without inner spaces;
//! * `{{ variables.key }}` and `{{ index variables "key" }}` (or a raw
//!   `` `key` `` string);
//! * trim markers `{{- ` and ` -}}`, which like Go's drop all spaces, tabs
//!   and line breaks before or after the action (the dash must be separated
//!   from the action by whitespace, as in Go; `{{-3}}` is not a trim);
//! * comments `{{/* ... */}}`, also with trim markers;
//! * a template variable holding a `printf` of the string functions,
//!   `{{ $route := printf "kube_%s__%s" namespace ingress }}`, then
//!   `{{ $route }}` where its value is wanted. The declaration prints
//!   nothing; the format takes `%s` and `%%` only, with exactly one
//!   argument (a string function or a quoted string) per `%s`, so the
//!   result is what Go's `fmt.Sprintf` gives. A variable is used after its
//!   declaration, as Go's parser requires. Flagger's Skipper queries are
//!   written this way.
//!
//! Anything else is refused with [`TemplateError::Unsupported`] rather than
//! rendered differently from Flagger. One deliberate difference: Go's
//! `index` yields an empty string for a missing key, while `variables.key`
//! fails (`missingkey=error`); here both fail with
//! [`TemplateError::MissingVariable`], because an empty label value in a
//! query only shows up later as "no values found".

use std::collections::BTreeMap;

/// Interval Flagger uses when a metric does not set one.
pub const DEFAULT_INTERVAL: &str = "1m";

/// The functions Flagger's template model provides, in Flagger's order.
pub const FUNCTIONS: &[&str] = &[
    "name",
    "namespace",
    "target",
    "service",
    "ingress",
    "route",
    "interval",
    "variables",
];

/// The string-valued functions, i.e. [`FUNCTIONS`] without `variables`.
const STRING_FUNCTIONS: &[&str] = &[
    "name",
    "namespace",
    "target",
    "service",
    "ingress",
    "route",
    "interval",
];

/// Functions every Go template has; named so that using one gets a precise
/// "not supported here" rather than "unknown function".
const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "js", "len", "not", "or", "print", "printf", "println",
    "slice", "urlquery", "eq", "ne", "lt", "le", "gt", "ge",
];

/// Go template keywords and constants, refused for the same reason.
const GO_KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
    "nil", "true", "false",
];

/// What a query template is rendered from; see the module doc for where
/// Flagger takes each value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateModel {
    pub name: String,
    pub namespace: String,
    pub target: String,
    pub service: String,
    pub ingress: String,
    pub route: String,
    pub interval: String,
    pub variables: BTreeMap<String, String>,
}

impl TemplateModel {
    fn value(&self, function: &str) -> &str {
        match function {
            "name" => &self.name,
            "namespace" => &self.namespace,
            "target" => &self.target,
            "service" => &self.service,
            "ingress" => &self.ingress,
            "route" => &self.route,
            "interval" => &self.interval,
            // The parser only produces names from STRING_FUNCTIONS.
            _ => unreachable!("not a string function: {function}"),
        }
    }
}

/// Why a template could not be parsed or rendered. Offsets are byte offsets
/// of the action's opening `{{` in the template.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unclosed action: `{{{{` without `}}}}`")]
    UnclosedAction { offset: usize },
    #[error("unclosed comment: `{{{{/*` without `*/}}}}`")]
    UnclosedComment { offset: usize },
    #[error("unknown function `{name}` in {action}")]
    UnknownFunction {
        name: String,
        action: String,
        offset: usize,
    },
    #[error("variable `{name}` is not set in templateVariables ({action})")]
    MissingVariable {
        name: String,
        action: String,
        offset: usize,
    },
    #[error("failed to parse string literal in {action}: {reason}")]
    BadString {
        action: String,
        offset: usize,
        reason: String,
    },
    #[error("unsupported template syntax {action}: {reason}")]
    Unsupported {
        action: String,
        offset: usize,
        reason: String,
    },
}

impl TemplateError {
    /// Byte offset in the template where the problem starts.
    pub fn offset(&self) -> usize {
        match self {
            TemplateError::UnclosedAction { offset }
            | TemplateError::UnclosedComment { offset }
            | TemplateError::UnknownFunction { offset, .. }
            | TemplateError::MissingVariable { offset, .. }
            | TemplateError::BadString { offset, .. }
            | TemplateError::Unsupported { offset, .. } => *offset,
        }
    }
}

/// Renders `template` with the values in `model`.
pub fn render(template: &str, model: &TemplateModel) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut locals: Vec<(String, String)> = Vec::new();
    for node in parse(template)? {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(action) => match action.kind {
                Kind::Function(f) => out.push_str(model.value(f)),
                Kind::Declare { name, pieces } => {
                    let value = pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Text(t) => t.as_str(),
                            Piece::Function(f) => model.value(f),
                        })
                        .collect();
                    // A later declaration of the same name shadows it.
                    locals.retain(|(n, _)| *n != name);
                    locals.push((name, value));
                }
                Kind::Local(name) => {
                    // `parse` only lets through variables declared earlier.
                    if let Some((_, v)) = locals.iter().find(|(n, _)| *n == name) {
                        out.push_str(v);
                    }
                }
                Kind::Variable(key) => match model.variables.get(&key) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(TemplateError::MissingVariable {
                            name: key,
                            action: action.source.to_string(),
                            offset: action.offset,
                        });
                    }
                },
                Kind::Comment => {}
            },
        }
    }
    Ok(out)
}

/// The names a template uses, each once, in order of first use: function
/// names as written (`"namespace"`) and variables as `"variables.<key>"`.
/// Fails on the same syntax errors as [`render`], but not on unset
/// variables, since no model is involved.
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    for node in parse(template)? {
        let name = match node {
            Node::Action(Action {
                kind: Kind::Function(f),
                ..
            }) => f.to_string(),
            Node::Action(Action {
                kind: Kind::Declare { pieces, .. },
                ..
            }) => {
                for p in pieces {
                    if let Piece::Function(f) = p {
                        push(f.to_string());
                    }
                }
                continue;
            }
            Node::Action(Action {
                kind: Kind::Variable(key),
                ..
            }) => format!("variables.{key}"),
            _ => continue,
        };
        push(name);
    }
    Ok(names)
}

/// One-line form of a (rendered) query for display: whitespace runs become
/// one space, spaces right after `(`, `[`, `{` and right before `)`, `]`,
/// `}` go, as do leading and trailing spaces. Text inside `"..."`, `'...'`
/// and `` `...` `` is kept byte for byte.
///
/// Meant for rendered PromQL; on a raw template it also turns `{{ x }}` into
/// `{{x}}`, which Go reads the same way.
pub fn compact(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut pending_space = false;
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space
            && !out.is_empty()
            && !out.ends_with(['(', '[', '{'])
            && !matches!(c, ')' | ']' | '}')
        {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
        if matches!(c, '"' | '\'' | '`') {
            // Copy the literal through its closing quote; backslash escapes
            // only exist in the two interpreted quote styles.
            let escapes = c != '`';
            while let Some(d) = chars.next() {
                out.push(d);
                if escapes && d == '\\' {
                    if let Some(e) = chars.next() {
                        out.push(e);
                    }
                } else if d == c {
                    break;
                }
            }
        }
    }
    out
}

/// The exact string Flagger's Prometheus provider sends for `query`: every
/// run of Go's `\s` class (space, `\t`, `\n`, `\f`, `\r`) replaced by one
/// space (`trimQuery` in `pkg/metrics/providers/prometheus.go`). Unlike
/// [`compact`] it keeps leading and trailing spaces and does not spare
/// string literals.
pub fn collapse_whitespace(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut in_run = false;
    for c in query.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r') {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// A piece of a parsed template.
enum Node<'a> {
    /// Literal text, already trimmed by neighbouring trim markers.
    Text(&'a str),
    Action(Action<'a>),
}

struct Action<'a> {
    kind: Kind,
    /// Byte offset of the opening `{{`.
    offset: usize,
    /// The action as written, delimiters included, for error messages.
    source: &'a str,
}

enum Kind {
    Function(&'static str),
    Variable(String),
    Comment,
    /// `$name := printf "..." args...`: the format split at its verbs.
    Declare {
        name: String,
        pieces: Vec<Piece>,
    },
    /// `$name`, declared by an earlier action.
    Local(String),
}

/// A part of a `printf` result: literal text or a function's value.
enum Piece {
    Text(String),
    Function(&'static str),
}

/// The whitespace Go's template lexer trims and accepts around trim markers.
const TRIM_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

fn is_trim_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn parse(template: &str) -> Result<Vec<Node<'_>>, TemplateError> {
    let bytes = template.as_bytes();
    let mut nodes = Vec::new();
    let mut pos = 0;
    // Set by a ` -}}`: the next text loses its leading whitespace.
    let mut trim_next = false;
    // Template variables declared so far.
    let mut declared: Vec<String> = Vec::new();
    while let Some(found) = template[pos..].find("{{") {
        let start = pos + found;
        let mut text = &template[pos..start];
        if trim_next {
            text = text.trim_start_matches(TRIM_SPACE);
        }
        let mut inner = start + 2;
        // Go: a left trim marker is `-` followed by whitespace.
        let trim_left = bytes.get(inner) == Some(&b'-')
            && bytes.get(inner + 1).copied().is_some_and(is_trim_space);
        if trim_left {
            text = text.trim_end_matches(TRIM_SPACE);
            inner += 1;
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text));
        }

        // Go only recognises a comment right after `{{` or `{{- ` (the
        // marker plus exactly one whitespace character).
        let comment_start = if trim_left { inner + 1 } else { inner };
        let (end, trim_right, kind) = if template[comment_start..].starts_with("/*") {
            let close = template[comment_start + 2..]
                .find("*/")
                .ok_or(TemplateError::UnclosedComment { offset: start })?
                + comment_start
                + 2;
            let after = close + 2;
            let rest = &template[after..];
            let (end, trim_right) = if rest.starts_with("}}") {
                (after, false)
            } else if rest.len() >= 4
                && is_trim_space(rest.as_bytes()[0])
                && rest[1..].starts_with("-}}")
            {
                (after + 2, true)
            } else {
                let end = find_close(bytes, after).unwrap_or(template.len());
                return Err(TemplateError::Unsupported {
                    action: template[start..(end + 2).min(template.len())].to_string(),
                    offset: start,
                    reason: "a comment must be the whole action".to_string(),
                });
            };
            (end, trim_right, Kind::Comment)
        } else {
            let end =
                find_close(bytes, inner).ok_or(TemplateError::UnclosedAction { offset: start })?;
            let body = &template[inner..end];
            // Go: a right trim marker is whitespace followed by `-`.
            let trim_right = body.len() >= 2
                && body.ends_with('-')
                && is_trim_space(body.as_bytes()[body.len() - 2]);
            let body = if trim_right {
                &body[..body.len() - 1]
            } else {
                body
            };
            let source = &template[start..end + 2];
            let kind = interpret(body, source, start)?;
            match &kind {
                Kind::Declare { name, .. } => declared.push(name.clone()),
                Kind::Local(name) if !declared.contains(name) => {
                    return Err(TemplateError::Unsupported {
                        action: source.to_string(),
                        offset: start,
                        reason: format!("undefined variable `{name}`"),
                    });
                }
                _ => {}
            }
            (end, trim_right, kind)
        };
        nodes.push(Node::Action(Action {
            kind,
            offset: start,
            source: &template[start..end + 2],
        }));
        trim_next = trim_right;
        pos = end + 2;
    }
    let mut text = &template[pos..];
    if trim_next {
        text = text.trim_start_matches(TRIM_SPACE);
    }
    if !text.is_empty() {
        nodes.push(Node::Text(text));
    }
    Ok(nodes)
}

/// Byte index of the `}}` closing the action whose body starts at `from`,
/// skipping quoted strings as Go's lexer does (a `}}` inside `"..."` does not
/// close the action). `None` if the template ends first.
fn find_close(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            quote @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if quote != b'`' && bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

enum Token {
    /// An identifier, possibly with a field chain or a leading `.`/`$`.
    Word(String),
    /// A string literal, unquoted.
    Str(String),
    /// Any other character (`|`, `(`, `:`, `-`, ...).
    Other(char),
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$')
}

fn tokenize(body: &str, source: &str, offset: usize) -> Result<Vec<Token>, TemplateError> {
    let bad_string = |reason: &str| TemplateError::BadString {
        action: source.to_string(),
        offset,
        reason: reason.to_string(),
    };
    let mut tokens = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(bad_string("unterminated quoted string")),
                    Some((_, '"')) => break,
                    Some((_, '\n')) => return Err(bad_string("line break in quoted string")),
                    Some((_, '\\')) => {
                        value.push(unescape(&mut chars).map_err(|r| bad_string(&r))?)
                    }
                    Some((_, ch)) => value.push(ch),
                }
            }
            tokens.push(Token::Str(value));
        } else if c == '`' {
            chars.next();
            let rest = &body[i + 1..];
            let close = rest
                .find('`')
                .ok_or_else(|| bad_string("unterminated raw string"))?;
            tokens.push(Token::Str(rest[..close].to_string()));
            while chars.peek().is_some_and(|&(j, _)| j <= i + 1 + close) {
                chars.next();
            }
        } else if is_word_char(c) {
            let mut word = String::new();
            while let Some(&(_, ch)) = chars.peek() {
                if !is_word_char(ch) {
                    break;
                }
                word.push(ch);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else {
            tokens.push(Token::Other(c));
            chars.next();
        }
    }
    Ok(tokens)
}

/// Decodes one Go escape sequence, the backslash already consumed.
fn unescape(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Result<char, String> {
    let Some((_, c)) = chars.next() else {
        return Err("unterminated escape".to_string());
    };
    let hex = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, n: usize| {
        let digits: String = (0..n)
            .filter_map(|_| chars.next().map(|(_, d)| d))
            .collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("invalid escape \\{c}{digits}"))
    };
    Ok(match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        '"' => '"',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let mut digits = c.to_string();
            for _ in 0..2 {
                match chars.next() {
                    Some((_, d @ '0'..='7')) => digits.push(d),
                    _ => return Err(format!("invalid octal escape \\{digits}")),
                }
            }
            u32::from_str_radix(&digits, 8)
                .ok()
                .filter(|v| *v <= 0xff)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("invalid octal escape \\{digits}"))?
        }
        other => return Err(format!("unknown escape \\{other}")),
    })
}

/// Whether `key` can follow `variables.` in Go: letters, digits, `_`.
fn is_field_name(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Classifies the body of an action (delimiters and trim markers removed).
fn interpret(body: &str, source: &str, offset: usize) -> Result<Kind, TemplateError> {
    let unsupported = |reason: String| TemplateError::Unsupported {
        action: source.to_string(),
        offset,
        reason,
    };
    let tokens = tokenize(body, source, offset)?;
    match tokens.as_slice() {
        [] => Err(unsupported("empty action".to_string())),
        _ if tokens.iter().any(|t| matches!(t, Token::Other('|'))) => {
            Err(unsupported("pipelines are not supported".to_string()))
        }
        [Token::Word(word)] if word.starts_with('$') => {
            if is_local_name(word) {
                Ok(Kind::Local(word.clone()))
            } else {
                Err(unsupported(format!("`{word}` is not a variable name")))
            }
        }
        [Token::Word(word)] => interpret_word(word, source, offset),
        [
            Token::Word(name),
            Token::Other(':'),
            Token::Other('='),
            rest @ ..,
        ] if name.starts_with('$') => {
            if !is_local_name(name) {
                return Err(unsupported(format!("`{name}` is not a variable name")));
            }
            let pieces = declaration(rest).map_err(unsupported)?;
            Ok(Kind::Declare {
                name: name.clone(),
                pieces,
            })
        }
        [Token::Word(f), Token::Word(v), Token::Str(key)] if f == "index" && v == "variables" => {
            Ok(Kind::Variable(key.clone()))
        }
        [Token::Word(first), ..] => {
            if STRING_FUNCTIONS.contains(&first.as_str()) {
                Err(unsupported(format!("`{first}` takes no arguments")))
            } else if first == "index" {
                Err(unsupported(
                    "only `index variables \"key\"` is supported".to_string(),
                ))
            } else if first.starts_with("variables.") {
                Err(unsupported(
                    "for a key that is not a plain identifier use {{ index variables \"key\" }}"
                        .to_string(),
                ))
            } else {
                // Reuse the single-word diagnosis for the head of the command.
                interpret_word(first, source, offset).and(Err(unsupported(
                    "pipelines and arguments are not supported".to_string(),
                )))
            }
        }
        _ => Err(unsupported(
            "expected a function such as {{ namespace }}".to_string(),
        )),
    }
}

/// Whether `word` is a Go variable name: `$` and an identifier.
fn is_local_name(word: &str) -> bool {
    word.strip_prefix('$').is_some_and(|id| {
        !id.is_empty()
            && !id.starts_with(|c: char| c.is_ascii_digit())
            && id.chars().all(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The value of a variable declaration after `:=`: `printf` with a format
/// of `%s` and `%%` verbs and one string argument per `%s`.
fn declaration(tokens: &[Token]) -> Result<Vec<Piece>, String> {
    let [Token::Word(printf), Token::Str(format), args @ ..] = tokens else {
        return Err("a variable holds `printf \"format\" args...` only".to_string());
    };
    if printf != "printf" {
        return Err("a variable holds `printf \"format\" args...` only".to_string());
    }
    let mut args = args.iter();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => text.push('%'),
            Some('s') => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(match args.next() {
                    Some(Token::Str(s)) => Piece::Text(s.clone()),
                    Some(Token::Word(w)) => match STRING_FUNCTIONS.iter().find(|f| **f == w) {
                        Some(f) => Piece::Function(f),
                        None => {
                            return Err(format!(
                                "printf takes string functions or quoted strings, not `{w}`"
                            ));
                        }
                    },
                    Some(Token::Other(o)) => {
                        return Err(format!("unexpected `{o}` in printf's arguments"));
                    }
                    None => return Err("printf has fewer arguments than `%s` verbs".to_string()),
                });
            }
            Some(v) => return Err(format!("printf verb `%{v}` is not supported, only `%s`")),
            None => return Err("printf format ends with `%`".to_string()),
        }
    }
    if args.next().is_some() {
        return Err("printf has more arguments than `%s` verbs".to_string());
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn interpret_word(word: &str, source: &str, offset: usize) -> Result<Kind, TemplateError> {
    let unsupported = |reason: String| TemplateError::Unsupported {
        action: source.to_string(),
        offset,
        reason,
    };
    if let Some(f) = STRING_FUNCTIONS.iter().find(|f| **f == word) {
        return Ok(Kind::Function(f));
    }
    if word == "variables" {
        return Err(unsupported(
            "`variables` is a map: use {{ variables.key }} or {{ index variables \"key\" }}"
                .to_string(),
        ));
    }
    if let Some(key) = word.strip_prefix("variables.") {
        return if is_field_name(key) {
            Ok(Kind::Variable(key.to_string()))
        } else {
            Err(unsupported(format!(
                "`{key}` is not a single field name; for other keys use \
                 {{{{ index variables \"key\" }}}}"
            )))
        };
    }
    if word.starts_with('.') {
        return Err(unsupported(
            "Flagger renders templates without data, so `.` has no fields".to_string(),
        ));
    }
    if word.starts_with('$') {
        return Err(unsupported(
            "template variables ($x) are not supported".to_string(),
        ));
    }
    let head = word.split('.').next().unwrap_or(word);
    if STRING_FUNCTIONS.contains(&head) {
        return Err(unsupported(format!(
            "`{head}` returns a string, which has no fields"
        )));
    }
    if GO_BUILTINS.contains(&head) {
        return Err(unsupported(format!(
            "Go template function `{head}` is not supported"
        )));
    }
    if GO_KEYWORDS.contains(&head) {
        return Err(unsupported(format!("`{head}` is not supported")));
    }
    if head.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(unsupported("constants are not supported".to_string()));
    }
    Err(TemplateError::UnknownFunction {
        name: head.to_string(),
        action: source.to_string(),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::builtin;

    fn model() -> TemplateModel {
        TemplateModel {
            name: "podinfo".into(),
            namespace: "prod".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            variables: BTreeMap::from([
                ("direction".to_string(), "inbound".to_string()),
                ("my-key".to_string(), "x".to_string()),
            ]),
        }
    }

    #[test]
    fn renders_every_function() {
        let t = "{{name}} {{ namespace }} {{  target  }} {{ service }} {{ ingress }} {{ route }} [{{ interval }}]";
        assert_eq!(
            render(t, &model()).unwrap(),
            "podinfo prod podinfo podinfo-svc podinfo-ing podinfo-route [1m]"
        );
    }

    #[test]
    fn renders_variables_both_ways() {
        let t = r#"a="{{ variables.direction }}",b="{{ index variables "my-key" }}",c="{{ index variables `direction` }}""#;
        assert_eq!(
            render(t, &model()).unwrap(),
            r#"a="inbound",b="x",c="inbound""#
        );
    }

    #[test]
    fn unknown_function() {
        let err = render("sum(x{a=\"{{ foo }}\"})", &model()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownFunction {
                name: "foo".into(),
                action: "{{ foo }}".into(),
                offset: 9,
            }
        );
        assert_eq!(err.to_string(), "unknown function `foo` in {{ foo }}");
        assert_eq!(err.offset(), 9);
        // A field chain on an unknown head names the head, as Go does.
        assert!(matches!(
            render("{{ foo.bar }}", &model()),
            Err(TemplateError::UnknownFunction { name, .. }) if name == "foo"
        ));
    }

    #[test]
    fn unclosed_action() {
        let err = render("rate(x[{{ interval ])", &model()).unwrap_err();
        assert_eq!(err, TemplateError::UnclosedAction { offset: 7 });
        assert_eq!(err.to_string(), "unclosed action: `{{` without `}}`");
        assert_eq!(
            placeholders("{{ namespace }} {{"),
            Err(TemplateError::UnclosedAction { offset: 16 })
        );
    }

    #[test]
    fn missing_variable() {
        let mut m = model();
        m.variables.clear();
        let err = render("x{d=\"{{ variables.direction }}\"}", &m).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingVariable {
                name: "direction".into(),
                action: "{{ variables.direction }}".into(),
                offset: 5,
            }
        );
        assert!(
            err.to_string()
                .starts_with("variable `direction` is not set in templateVariables")
        );
        assert!(matches!(
            render(r#"{{ index variables "nope" }}"#, &m),
            Err(TemplateError::MissingVariable { name, .. }) if name == "nope"
        ));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for t in [
            "{{ }}",
            "{{ variables }}",
            "{{ .Name }}",
            "{{ $x }}",
            "{{ $x := namespace }}{{ $x }}",
            "{{ $x := printf \"%d\" namespace }}",
            "{{ $x := printf \"%s\" }}",
            "{{ $x := printf \"%s\" namespace name }}",
            "{{ $x := printf \"%s\" foo }}",
            "{{ $x }}{{ $x := printf \"a\" }}",
            "{{ printf \"%s\" namespace }}",
            "{{ namespace | printf \"%s\" }}",
            "{{ if true }}",
            "{{ namespace \"x\" }}",
            "{{ namespace.x }}",
            "{{ variables.a.b }}",
            "{{ variables.my-key }}",
            "{{-3}}",
            "{{/* c */ namespace }}",
        ] {
            assert!(
                matches!(render(t, &model()), Err(TemplateError::Unsupported { .. })),
                "{t} gave {:?}",
                render(t, &model())
            );
        }
        assert!(matches!(
            render(r#"{{ index variables "a\q" }}"#, &model()),
            Err(TemplateError::BadString { .. })
        ));
    }

    #[test]
    fn a_printf_variable_is_declared_then_used() {
        let t = "{{- $r := printf \"kube_%s__%s_%%_%s\" namespace ingress \"x\" }}\n\ta=\"{{ $r }}\",b=\"{{$r}}\"";
        assert_eq!(
            render(t, &model()).unwrap(),
            "\n\ta=\"kube_prod__podinfo-ing_%_x\",b=\"kube_prod__podinfo-ing_%_x\""
        );
        assert_eq!(
            placeholders(t).unwrap(),
            vec!["namespace".to_string(), "ingress".to_string()]
        );
        // A later declaration of the same name replaces the value.
        let t = r#"{{ $a := printf "1" }}{{ $a }}{{ $a := printf "%s" name }}{{ $a }}"#;
        assert_eq!(render(t, &model()).unwrap(), "1podinfo");
    }

    #[test]
    fn trim_markers_and_comments() {
        let t = "a  \n {{- namespace -}} \n\t b {{/* note */}}c {{- /* gone */ -}} d";
        assert_eq!(render(t, &model()).unwrap(), "aprodb cd");
        assert_eq!(
            render("x {{-  target  -}}\ny", &model()).unwrap(),
            "xpodinfoy"
        );
        assert_eq!(
            render("{{/* unclosed }}", &model()),
            Err(TemplateError::UnclosedComment { offset: 0 })
        );
    }

    #[test]
    fn closing_braces_inside_a_string_do_not_end_the_action() {
        let mut m = model();
        m.variables.insert("}}".into(), "braces".into());
        assert_eq!(
            render(r#"<{{ index variables "}}" }}>"#, &m).unwrap(),
            "<braces>"
        );
        assert_eq!(
            render(r#"{{ index variables "\x7d\u007d" }}"#, &m).unwrap(),
            "braces"
        );
    }

    #[test]
    fn text_outside_actions_is_kept() {
        let t = "sum(rate(x{a=\"}}\", b=~\"{c}\"}[5m])) # {{ target }}";
        assert_eq!(
            render(t, &model()).unwrap(),
            "sum(rate(x{a=\"}}\", b=~\"{c}\"}[5m])) # podinfo"
        );
    }

    #[test]
    fn placeholders_in_order_without_repeats() {
        let t = "{{ namespace }}{{ target }}{{ namespace }}{{/* c */}}{{ variables.direction }}\
                 {{ index variables \"my-key\" }}{{ interval }}";
        assert_eq!(
            placeholders(t).unwrap(),
            [
                "namespace",
                "target",
                "variables.direction",
                "variables.my-key",
                "interval"
            ]
        );
        // No model, so unset variables are not an error here.
        assert_eq!(placeholders("{{ variables.x }}").unwrap(), ["variables.x"]);
        assert!(matches!(
            placeholders("{{ foo }}"),
            Err(TemplateError::UnknownFunction { .. })
        ));
    }

    #[test]
    fn compact_makes_the_linkerd_query_one_line() {
        let q = builtin::builtin_query(crate::provider::Provider::Linkerd, "request-success-rate")
            .unwrap();
        let rendered = render(q.template, &model()).unwrap();
        assert!(rendered.contains('\n'));
        let one = compact(&rendered);
        assert!(!one.contains(['\n', '\t']));
        assert_eq!(
            one,
            "sum(rate(response_total{namespace=\"prod\", deployment=~\"podinfo\", \
             classification!=\"failure\", direction=\"inbound\"}[1m])) / \
             sum(rate(response_total{namespace=\"prod\", deployment=~\"podinfo\", \
             direction=\"inbound\"}[1m])) * 100"
        );
    }

    #[test]
    fn compact_leaves_string_literals_alone() {
        let q = "  sum (\n x{ a=\"two  spaces\\\" ( \", b='c  d', c=`e \n f` } ) ";
        assert_eq!(
            compact(q),
            "sum (x{a=\"two  spaces\\\" ( \", b='c  d', c=`e \n f`})"
        );
    }

    #[test]
    fn collapse_whitespace_matches_flagger() {
        assert_eq!(collapse_whitespace("\n\tsum(\n\t\tx \n\t)"), " sum( x )");
        assert_eq!(collapse_whitespace("a\"  b\""), "a\" b\"");
    }
}
