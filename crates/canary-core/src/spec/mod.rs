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
pub mod resolve;
pub mod source;
pub mod types;
pub mod validate;

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use diagnostic::Diagnostic;
use source::{RawDocument, SpanIndex};
use types::{AlertProvider, Canary, MetricTemplate};

/// The API group and version of every document `canary` reads.
pub const API_VERSION: &str = "flagger.app/v1beta1";

/// The document kinds `canary` reads.
pub const KINDS: &[&str] = &["Canary", "MetricTemplate", "AlertProvider"];

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
    pub canaries: Vec<Doc<Canary>>,
    pub metric_templates: Vec<Doc<MetricTemplate>>,
    pub alert_providers: Vec<Doc<AlertProvider>>,
}

impl SpecFile {
    /// A diagnostic pointing at `path` in document `doc` of this file.
    pub fn diagnostic_at<T>(&self, doc: &Doc<T>, path: &str, message: &str) -> Diagnostic {
        Diagnostic::at(&self.name, &self.text, doc.spans.locate(path), message).with_path(path)
    }

    /// A diagnostic about the value at `path` (underlining the value
    /// rather than its key).
    pub fn diagnostic_at_value<T>(&self, doc: &Doc<T>, path: &str, message: &str) -> Diagnostic {
        Diagnostic::at(
            &self.name,
            &self.text,
            doc.spans.locate_value(path),
            message,
        )
        .with_path(path)
    }
}

/// Reads and validates one file. Every problem is returned, not just the
/// first.
pub fn load_file(path: &Path) -> Result<SpecFile, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return Err(vec![Diagnostic::file(
                    &name,
                    "failed to read spec: the file is not UTF-8 text",
                )]);
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(vec![Diagnostic::file(
                &name,
                "failed to read spec: no such file",
            )]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory || path.is_dir() => {
            return Err(vec![
                Diagnostic::file(&name, "failed to read spec: this is a directory")
                    .with_help("pass the YAML files themselves, e.g. `dir/*.yaml`"),
            ]);
        }
        Err(e) => {
            return Err(vec![Diagnostic::file(
                &name,
                format!("failed to read spec: {e}"),
            )]);
        }
    };
    load_str(&name, &text)
}

/// Reads and validates the text of one file named `name`.
pub fn load_str(name: &str, text: &str) -> Result<SpecFile, Vec<Diagnostic>> {
    let docs = match source::parse_documents(text) {
        Ok(d) => d,
        Err(e) => {
            let mut d = Diagnostic::at(name, text, e.span, e.message);
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
        return Err(vec![
            Diagnostic::file(name, "the file holds no YAML documents")
                .with_help("a spec file holds a `kind: Canary` document (flagger.app/v1beta1)"),
        ]);
    }
    let mut file = SpecFile {
        name: name.to_string(),
        text: text.to_string(),
        canaries: Vec::new(),
        metric_templates: Vec::new(),
        alert_providers: Vec::new(),
    };
    let mut errors = Vec::new();
    for doc in docs {
        match kind_of(&file, &doc) {
            Err(d) => errors.push(*d),
            Ok("Canary") => {
                if let Some(d) = typed::<Canary>(&file, doc, &mut errors) {
                    file.canaries.push(d);
                }
            }
            Ok("MetricTemplate") => {
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
    errors.extend(validate::file(&file));
    if errors.is_empty() {
        Ok(file)
    } else {
        errors.sort_by_key(|d| (d.line, d.column));
        errors.dedup();
        Err(errors)
    }
}

/// Checks `apiVersion` and `kind` of a document and names its kind.
fn kind_of(file: &SpecFile, doc: &RawDocument) -> Result<&'static str, Box<Diagnostic>> {
    let at = |path: &str, msg: String| {
        Diagnostic::at(&file.name, &file.text, doc.spans.locate_value(path), msg).with_path(path)
    };
    let nth = doc.index + 1;
    let Value::Object(map) = &doc.value else {
        let found = match &doc.value {
            Value::Array(_) => "a list".to_string(),
            Value::String(t) if t.contains(' ') => "plain text".to_string(),
            Value::String(t) => format!("the text `{t}`"),
            other => format!("the value `{other}`"),
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
    let Some(known) = KINDS.iter().copied().find(|k| *k == kind) else {
        let suggestion = crate::suggest::did_you_mean(kind, KINDS.iter().copied());
        let flagger_group = api.is_some_and(|a| a.starts_with("flagger.app/"));
        let message = if flagger_group || suggestion.is_some() {
            format!("unknown kind `{kind}`")
        } else {
            let what = match api {
                Some(a) => format!("{kind} ({a})"),
                None => kind.to_string(),
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
        Some(API_VERSION) => Ok(known),
        Some(other) => Err(Box::new(
            at(
                "apiVersion",
                format!("unsupported apiVersion `{other}` for {known}"),
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
        let mut d = Diagnostic::at(&file.name, &file.text, span, &e.message).with_path(&e.path);
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
