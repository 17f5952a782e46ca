//! Flagger `flagger.app/v1beta1` documents: loading, validation, defaults.
//!
//! A spec file may hold several YAML documents (`Canary`, `MetricTemplate`,
//! `AlertProvider`). [`load_file`] reads one file and either returns every
//! document typed and validated, or every problem found in it, each with its
//! file, line, column and field path. The pipeline is:
//!
//! 1. [`source`]: YAML text to plain values plus a path-to-span index;
//! 2. [`deser`]: typed deserialization that collects all errors;
//! 3. [`validate`]: Flagger's semantic rules on the typed documents;
//! 4. [`resolve`]: Flagger's defaults applied, giving the model the plan and
//!    the engine work from.

pub mod deser;
pub mod diagnostic;
pub mod manifest;
pub mod resolve;
pub mod source;
pub mod types;
pub mod validate;

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use diagnostic::{Diagnostic, LineIndex, elide};
use source::{RawDocument, SpanIndex};
use types::{AlertProvider, Canary, MetricTemplate};

/// The API group and version of every document `canary` reads.
pub const API_VERSION: &str = "flagger.app/v1beta1";

/// The document kinds `canary` reads.
pub const KINDS: &[&str] = &["Canary", "MetricTemplate", "AlertProvider"];

/// The largest spec file read unless told otherwise: a Flagger spec is a
/// few kilobytes, and reading stops here rather than at the end of the
/// memory (`/dev/zero`).
pub const DEFAULT_MAX_INPUT_SIZE: u64 = 4 * 1024 * 1024;

/// Problems reported from one file before the rest of it is left unread:
/// past this, more messages do not help, and every one costs time.
pub const MAX_PROBLEMS: usize = 100;

/// What an input of no documents (blank, or only comments) is told.
pub const NO_DOCUMENTS: &str = "the file holds no YAML documents";

/// How much of a spec file is read before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub max_input_size: u64,
    pub yaml: source::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_size: DEFAULT_MAX_INPUT_SIZE,
            yaml: source::Limits::default(),
        }
    }
}

/// `n` bytes as people write them: `4 MiB`, `512 KiB`, `100 bytes`.
pub fn format_size(n: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= *size && n.is_multiple_of(*size) {
            return format!("{} {unit}", n / size);
        }
    }
    for (size, unit) in UNITS {
        if n >= *size {
            return format!("{:.1} {unit}", n as f64 / *size as f64);
        }
    }
    format!("{n} bytes")
}

/// A typed document and where its fields are in the file.
#[derive(Debug, Clone)]
pub struct Doc<T> {
    /// 0-based position of the document in its file.
    pub index: usize,
    pub value: T,
    pub spans: SpanIndex,
    /// Paths dropped because of type errors; validation stays quiet about
    /// them so one mistake is reported once.
    pub poisoned: BTreeSet<String>,
}

impl<T> Doc<T> {
    /// Whether a child of `path` was dropped for a type error; problems
    /// about `path` itself may then be echoes of that error.
    pub fn has_poisoned_child(&self, path: &str) -> bool {
        self.poisoned
            .iter()
            .any(|p| source::parent_path(p) == Some(path))
    }

    /// Whether `path` lies at or under a node dropped for a type error.
    pub fn is_poisoned(&self, path: &str) -> bool {
        self.poisoned.iter().any(|p| {
            path == p
                || (path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), Some(b'.') | Some(b'[')))
        })
    }
}

/// Everything one file holds, valid.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The path as the user gave it, for messages.
    pub name: String,
    pub text: String,
    /// Where each line of `text` starts.
    pub lines: LineIndex,
    pub canaries: Vec<Doc<Canary>>,
    pub metric_templates: Vec<Doc<MetricTemplate>>,
    pub alert_providers: Vec<Doc<AlertProvider>>,
    /// The documents that are not Flagger's (a Deployment, a Service kept
    /// next to the Canary), skipped but kept for the cross-checks.
    pub others: Vec<Other>,
}

/// A Kubernetes object of another API group, read but not checked.
#[derive(Debug, Clone)]
pub struct Other {
    /// 0-based position of the document in its file.
    pub index: usize,
    pub kind: String,
    pub api_version: String,
    pub value: Value,
    pub spans: SpanIndex,
}

impl Other {
    /// `metadata.name`, or "" when absent.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace` when the document names one.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
    }
}

impl SpecFile {
    /// Line `n` (1-based) of the file.
    pub fn line(&self, n: usize) -> Option<&str> {
        self.lines.line(&self.text, n)
    }

    /// A diagnostic at `span` of this file.
    pub fn diagnostic(&self, span: source::Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at_line(&self.name, self.line(span.start.line), span, message)
    }

    /// A diagnostic pointing at `path` in document `doc` of this file.
    pub fn diagnostic_at<T>(&self, doc: &Doc<T>, path: &str, message: &str) -> Diagnostic {
        self.diagnostic(doc.spans.locate(path), message)
            .with_path(path)
    }

    /// A diagnostic about the value at `path` (underlining the value
    /// rather than its key).
    pub fn diagnostic_at_value<T>(&self, doc: &Doc<T>, path: &str, message: &str) -> Diagnostic {
        self.diagnostic(doc.spans.locate_value(path), message)
            .with_path(path)
    }
}

/// Reads and validates one file. Every problem is returned, not just the
/// first.
pub fn load_file(path: &Path) -> Result<SpecFile, Vec<Diagnostic>> {
    load_file_with(path, &Limits::default())
}

/// [`load_file`] within other limits.
pub fn load_file_with(path: &Path, limits: &Limits) -> Result<SpecFile, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(vec![Diagnostic::file(
                &name,
                "failed to read spec: no such file",
            )]);
        }
        Err(e) => {
            return Err(vec![Diagnostic::file(
                &name,
                format!("failed to read spec: {e}"),
            )]);
        }
    };
    if path.is_dir() {
        return Err(vec![
            Diagnostic::file(&name, "failed to read spec: this is a directory")
                .with_help("pass the YAML files themselves, e.g. `dir/*.yaml`"),
        ]);
    }
    // A regular file says its size up front; a device or a pipe is read
    // only up to one byte past the limit.
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limits.max_input_size)
    {
        return Err(vec![too_big(&name, limits)]);
    }
    load_reader_with(&name, file, limits)
}

fn too_big(name: &str, limits: &Limits) -> Diagnostic {
    let what = if name == manifest::STDIN {
        "the input"
    } else {
        "the file"
    };
    Diagnostic::file(
        name,
        format!(
            "failed to read spec: {what} is larger than {}, the limit",
            format_size(limits.max_input_size)
        ),
    )
    .with_help("a spec file is a few kilobytes; raise the limit with `--max-input-size`")
}

/// Reads and validates what `reader` gives (standard input, a pipe),
/// named `name` in messages, within the same limits as a file: reading
/// stops one byte past the size limit.
pub fn load_reader_with(
    name: &str,
    reader: impl std::io::Read,
    limits: &Limits,
) -> Result<SpecFile, Vec<Diagnostic>> {
    let fail = |message: String| Err(vec![Diagnostic::file(name, message)]);
    let mut bytes = Vec::new();
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(reader, limits.max_input_size.saturating_add(1)),
        &mut bytes,
    );
    match read {
        Ok(_) if bytes.len() as u64 > limits.max_input_size => {
            return Err(vec![too_big(name, limits)]);
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return Err(vec![
                Diagnostic::file(name, "failed to read spec: this is a directory")
                    .with_help("pass the YAML files themselves, e.g. `dir/*.yaml`"),
            ]);
        }
        Err(e) => return fail(format!("failed to read spec: {e}")),
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Where the first byte that is not UTF-8 sits.
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let last_line = good.rsplit(|b| *b == b'\n').next().unwrap_or_default();
            let column = String::from_utf8_lossy(last_line).chars().count() + 1;
            let mut d = Diagnostic::file(name, "failed to read spec: the file is not UTF-8 text");
            d.line = line;
            d.column = column;
            return Err(vec![d]);
        }
    };
    load_text(name, text, limits)
}

/// Reads and validates the text of one file named `name`.
pub fn load_str(name: &str, text: &str) -> Result<SpecFile, Vec<Diagnostic>> {
    load_str_with(name, text, &Limits::default())
}

/// [`load_str`] within other limits (the size limit is for the caller
/// that reads the text).
pub fn load_str_with(name: &str, text: &str, limits: &Limits) -> Result<SpecFile, Vec<Diagnostic>> {
    load_text(name, text.to_string(), limits)
}

/// [`load_str_with`] keeping `text` rather than a copy of it.
fn load_text(name: &str, text: String, limits: &Limits) -> Result<SpecFile, Vec<Diagnostic>> {
    let lines = LineIndex::new(&text);
    let docs = match source::parse_documents_with(&text, &limits.yaml) {
        Ok(d) => d,
        Err(e) => {
            let mut d = Diagnostic::at_line(
                name,
                lines.line(&text, e.span.start.line),
                e.span,
                e.message,
            );
            if let Some(p) = e.path {
                d = d.with_path(p);
            }
            if let Some(h) = e.help {
                d = d.with_help(h);
            }
            return Err(vec![d]);
        }
    };
    if docs.is_empty() {
        return Err(vec![Diagnostic::file(name, NO_DOCUMENTS).with_help(
            "a spec file holds a `kind: Canary` document (flagger.app/v1beta1)",
        )]);
    }
    let mut file = SpecFile {
        name: name.to_string(),
        text,
        lines,
        canaries: Vec::new(),
        metric_templates: Vec::new(),
        alert_providers: Vec::new(),
        others: Vec::new(),
    };
    let mut errors = Vec::new();
    for doc in docs {
        if errors.len() >= MAX_PROBLEMS {
            let span = doc.start;
            errors.push(
                file.diagnostic(
                    span,
                    format!(
                        "stopped reading after {MAX_PROBLEMS} problems; the documents from here on were not checked"
                    ),
                )
                .with_help("fix the problems above and check the file again"),
            );
            break;
        }
        match kind_of(&file, &doc) {
            Err(d) => errors.push(*d),
            Ok(Kind::Other { kind, api_version }) => file.others.push(Other {
                index: doc.index,
                kind,
                api_version,
                value: doc.value,
                spans: doc.spans,
            }),
            Ok(Kind::Flagger("Canary")) => {
                if let Some(d) = typed::<Canary>(&file, doc, &mut errors) {
                    file.canaries.push(d);
                }
            }
            Ok(Kind::Flagger("MetricTemplate")) => {
                if let Some(d) = typed::<MetricTemplate>(&file, doc, &mut errors) {
                    file.metric_templates.push(d);
                }
            }
            Ok(_) => {
                if let Some(d) = typed::<AlertProvider>(&file, doc, &mut errors) {
                    file.alert_providers.push(d);
                }
            }
        }
    }
    if errors.len() <= MAX_PROBLEMS {
        errors.extend(validate::file(&file));
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        errors.sort_by_key(|d| (d.line, d.column));
        errors.dedup();
        Err(errors)
    }
}

/// What a document is: one of Flagger's, or an object of another API
/// group, which is skipped.
enum Kind {
    Flagger(&'static str),
    Other { kind: String, api_version: String },
}

/// Checks `apiVersion` and `kind` of a document and names its kind.
fn kind_of(file: &SpecFile, doc: &RawDocument) -> Result<Kind, Box<Diagnostic>> {
    let at = |path: &str, msg: String| {
        file.diagnostic(doc.spans.locate_value(path), msg)
            .with_path(path)
    };
    let nth = doc.index + 1;
    let Value::Object(map) = &doc.value else {
        let found = match &doc.value {
            Value::Array(_) => "a list".to_string(),
            Value::String(t) if t.contains(' ') => "plain text".to_string(),
            Value::String(t) => format!("the text `{}`", elide(t)),
            other => format!("the value `{}`", elide(&other.to_string())),
        };
        return Err(Box::new(
            at(
                "",
                format!("document {nth} is {found}, not a Kubernetes object"),
            )
            .with_help("a spec file holds YAML mappings such as `kind: Canary`"),
        ));
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(Box::new(at("kind", "`kind` must be a string".to_string()))),
        None => {
            return Err(Box::new(
                at("", format!("document {nth} has no `kind`"))
                    .with_help("a spec file holds `kind: Canary` documents"),
            ));
        }
    };
    let api = map.get("apiVersion").and_then(Value::as_str);
    // An object of another group kept next to the Canary (its Deployment,
    // its Service), as `kubectl apply -f` takes them: skipped here.
    if let Some(a) = api
        && !a.starts_with("flagger.app/")
        && !KINDS.contains(&kind)
    {
        return Ok(Kind::Other {
            kind: kind.to_string(),
            api_version: a.to_string(),
        });
    }
    let Some(known) = KINDS.iter().copied().find(|k| *k == kind) else {
        let suggestion = crate::suggest::did_you_mean(kind, KINDS.iter().copied());
        let flagger_group = api.is_some_and(|a| a.starts_with("flagger.app/"));
        let message = if flagger_group || suggestion.is_some() {
            format!("unknown kind `{}`", elide(kind))
        } else {
            let what = match api {
                Some(a) => format!("{} ({})", elide(kind), elide(a)),
                None => elide(kind),
            };
            format!("document {nth} is a {what}, not a Flagger document")
        };
        let help = match suggestion {
            Some(k) => format!("did you mean `{k}`?"),
            None => "canary reads Canary, MetricTemplate and AlertProvider documents \
                     (flagger.app/v1beta1); keep other objects in other files"
                .to_string(),
        };
        return Err(Box::new(at("kind", message).with_help(help)));
    };
    match api {
        Some(API_VERSION) => Ok(Kind::Flagger(known)),
        Some(other) => Err(Box::new(
            at(
                "apiVersion",
                format!("unsupported apiVersion `{}` for {known}", elide(other)),
            )
            .with_help(format!("use `apiVersion: {API_VERSION}`")),
        )),
        None => Err(Box::new(
            at("", format!("{known} document {nth} has no `apiVersion`"))
                .with_help(format!("add `apiVersion: {API_VERSION}`")),
        )),
    }
}

/// Deserializes one document, turning each serde error into a diagnostic.
fn typed<T: DeserializeOwned>(
    file: &SpecFile,
    doc: RawDocument,
    errors: &mut Vec<Diagnostic>,
) -> Option<Doc<T>> {
    let out = deser::deserialize_all::<T>(doc.value);
    for e in &out.errors {
        let span = match doc.spans.get(&e.path) {
            Some(n) if e.at_key => n.key.unwrap_or(n.value),
            Some(_) => doc.spans.locate_value(&e.path),
            None => doc.spans.locate(&e.path),
        };
        let mut d = file.diagnostic(span, &e.message).with_path(&e.path);
        if let Some(h) = &e.help {
            d = d.with_help(h);
        }
        errors.push(d);
    }
    out.value.map(|value| Doc {
        index: doc.index,
        value,
        spans: doc.spans,
        poisoned: out.poisoned,
    })
}

#[cfg(test)]
mod hostile_tests;
