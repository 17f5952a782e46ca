//! Typed deserialization that reports every error of a document, not just
//! the first.
//!
//! serde stops at the first error. To report them all, the document is
//! deserialized, the offending node is taken out of the value (an unknown
//! key is removed, a mistyped value is removed so its default applies, a
//! mistyped list item is replaced by an empty one), and deserialization runs
//! again, until it succeeds. Every field of the spec types is optional at the
//! serde level, so removal always makes progress; required fields are
//! checked afterwards by validation, with locations.

use std::collections::BTreeSet;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::Value;
use serde_path_to_error::Segment;

use super::source::{join_index, join_key};
use crate::suggest::did_you_mean;

/// One serde error, translated: where, what, and a hint.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Path of the offending node (for an unknown field: the field itself).
    pub path: String,
    pub message: String,
    pub help: Option<String>,
    /// Whether the key (rather than the value) is what is wrong.
    pub at_key: bool,
}

/// The result of a tolerant deserialization.
#[derive(Debug)]
pub struct Deserialized<T> {
    /// The value with every offending node taken out; `None` when even that
    /// could not be built.
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
    /// Paths whose contents were dropped or replaced; later checks skip them
    /// so one mistake is not reported twice.
    pub poisoned: BTreeSet<String>,
}

/// Upper bound on errors collected from one document; beyond this the file
/// is too broken for more messages to help.
const MAX_ERRORS: usize = 50;

pub fn deserialize_all<T: DeserializeOwned>(mut value: Value) -> Deserialized<T> {
    let mut errors = Vec::new();
    let mut poisoned = BTreeSet::new();
    // Replacement attempts per list item: an empty mapping, then an empty
    // string, then the item is given up on with its whole list.
    let mut attempts: std::collections::HashMap<String, usize> = Default::default();
    loop {
        let result: Result<T, _> = serde_path_to_error::deserialize(Strict(&value));
        let err = match result {
            Ok(v) => {
                return Deserialized {
                    value: Some(v),
                    errors,
                    poisoned,
                };
            }
            Err(e) => e,
        };
        let mut segments: Vec<Segment> = err.path().iter().cloned().collect();
        let message = err.inner().to_string();
        // For an unknown field, serde_path_to_error's path already ends in
        // the unknown key; the error belongs to the mapping around it.
        if let Some(name) = unknown_field_name(&message)
            && matches!(segments.last(), Some(Segment::Map { key }) if *key == name)
        {
            segments.pop();
        }
        let parent = render_path(&segments);
        let fe = translate(&parent, &message);
        let target = if fe.at_key {
            fe.path.clone()
        } else {
            parent.clone()
        };
        let repeated = errors.last() == Some(&fe);
        if !repeated {
            errors.push(fe.clone());
        }
        poisoned.insert(target.clone());
        let n = attempts.entry(target.clone()).or_default();
        *n += 1;
        let fixed = if fe.at_key {
            let name = unknown_field_name(&message).unwrap_or_default();
            remove_key(&mut value, &segments, &name)
        } else {
            repair(&mut value, &segments, *n)
        };
        if !fixed || errors.len() >= MAX_ERRORS {
            return Deserialized {
                value: None,
                errors,
                poisoned,
            };
        }
    }
}

/// Renders serde_path_to_error segments in the spec's path notation.
fn render_path(segments: &[Segment]) -> String {
    let mut p = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => p = join_index(&p, *index),
            Segment::Map { key } => p = join_key(&p, key),
            Segment::Enum { variant } => p = join_key(&p, variant),
            Segment::Unknown => p = join_key(&p, "?"),
        }
    }
    p
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// The backticked names serde lists after "expected one of".
fn expected_fields(message: &str) -> Vec<&str> {
    let Some(i) = message.find("expected") else {
        return Vec::new();
    };
    message[i..].split('`').skip(1).step_by(2).collect()
}

/// Turns a serde message into one for people.
fn translate(path: &str, message: &str) -> FieldError {
    if let Some(name) = unknown_field_name(message) {
        let known = expected_fields(message);
        let help = match (
            did_you_mean(&name, known.iter().copied()),
            misplaced(path, &name),
        ) {
            (Some(s), _) => Some(format!("did you mean `{s}`?")),
            (None, Some(home)) => Some(format!("`{name}` belongs under `{home}`")),
            (None, None) if known.is_empty() => Some("this field takes no keys".to_string()),
            (None, None) => Some(format!("known fields here: {}", known.join(", "))),
        };
        let where_ = if path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{path}`")
        };
        return FieldError {
            path: join_key(path, &name),
            message: format!("unknown field `{}` {where_}", crate::spec::elide(&name)),
            help,
            at_key: true,
        };
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let field = last_segment(path);
        // A bare number where Flagger wants a duration string.
        let help = (expected == "a string"
            && (found.starts_with("integer") || found.starts_with("floating"))
            && matches!(field, "interval" | "timeout" | "backendTimeout"))
        .then(|| {
            let n = found.split('`').nth(1).unwrap_or("30");
            format!("durations are strings with a unit: write `{n}s` or `{n}m`")
        });
        return FieldError {
            path: path.to_string(),
            message: format!(
                "wrong type for `{field}`: expected {}, found {}",
                plain_type(expected),
                plain_found(found)
            ),
            help,
            at_key: false,
        };
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return FieldError {
            path: path.to_string(),
            message: format!(
                "invalid value for `{}`: expected {}, found {}",
                last_segment(path),
                plain_type(expected),
                plain_found(found)
            ),
            help: None,
            at_key: false,
        };
    }
    FieldError {
        path: path.to_string(),
        message: format!("invalid `{}`: {message}", last_segment(path)),
        help: None,
        at_key: false,
    }
}

/// Where a field that is unknown at `path` probably belongs.
fn misplaced(path: &str, name: &str) -> Option<&'static str> {
    const META: &[&str] = &["name", "namespace", "labels", "annotations"];
    const ANALYSIS: &[&str] = &[
        "interval",
        "threshold",
        "maxWeight",
        "stepWeight",
        "stepWeights",
        "stepWeightPromotion",
        "iterations",
        "metrics",
        "webhooks",
        "alerts",
        "mirror",
        "mirrorWeight",
        "sessionAffinity",
    ];
    const SERVICE: &[&str] = &["port", "portName", "targetPort", "hosts", "gateways"];
    match path {
        "" if META.contains(&name) => Some("metadata"),
        "" if name == "analysis" || name == "targetRef" => Some("spec"),
        "spec" if ANALYSIS.contains(&name) => Some("spec.analysis"),
        "spec" if SERVICE.contains(&name) => Some("spec.service"),
        _ => None,
    }
}

fn last_segment(path: &str) -> &str {
    if path.is_empty() {
        return "document";
    }
    let cut = path.rfind('.').map(|i| i + 1).unwrap_or(0);
    &path[cut..]
}

/// serde's Rust-flavoured expectations in YAML words.
fn plain_type(expected: &str) -> String {
    let e = expected.trim();
    let word = match e {
        "f64" | "f32" => "a number",
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "an integer"
        }
        "a boolean" | "bool" => "true or false",
        "a string" => "a string",
        "a sequence" => "a list",
        "a map" => "a mapping",
        _ if e.starts_with("struct ") => "a mapping",
        _ if e.starts_with("a sequence") => "a list",
        _ => return e.to_string(),
    };
    word.to_string()
}

fn plain_found(found: &str) -> String {
    crate::spec::elide(found)
        .replace("sequence", "a list")
        .replace("map", "a mapping")
        .replace("unit value", "null")
        .replace("integer", "the integer")
        .replace("floating point", "the number")
        .replace("boolean", "the boolean")
        .replace("string", "the string")
}

fn navigate<'v>(value: &'v mut Value, segments: &[Segment]) -> Option<&'v mut Value> {
    let mut v = value;
    for s in segments {
        v = match s {
            Segment::Seq { index } => v.as_array_mut()?.get_mut(*index)?,
            Segment::Map { key } => v.as_object_mut()?.get_mut(key)?,
            _ => return None,
        };
    }
    Some(v)
}

fn remove_key(value: &mut Value, parent: &[Segment], key: &str) -> bool {
    navigate(value, parent)
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(key))
        .is_some()
}

/// Takes the node at `segments` out of the way. The `attempt`th try for the
/// same node escalates, so the loop always ends.
fn repair(value: &mut Value, segments: &[Segment], attempt: usize) -> bool {
    let Some((last, parent)) = segments.split_last() else {
        return false;
    };
    match last {
        Segment::Map { key } => navigate(value, parent)
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove(key))
            .is_some(),
        Segment::Seq { index } => {
            // Removing the item would shift the indices of later items and
            // misplace their errors; replace it instead.
            let replacement = match attempt {
                1 => Value::Object(Default::default()),
                2 => Value::String(String::new()),
                _ => return repair(value, parent, 1),
            };
            match navigate(value, parent)
                .and_then(Value::as_array_mut)
                .and_then(|a| a.get_mut(*index))
            {
                Some(slot) => {
                    *slot = replacement;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// A deserializer over a `serde_json::Value` as strict as Kubernetes:
/// serde (and `serde_json::Value`'s own deserializer) accepts a struct
/// written as a list of its fields in order, which no Kubernetes client
/// would; here a struct must be a mapping.
struct Strict<'v>(&'v Value);

type DeError = serde::de::value::Error;

impl<'de> serde::Deserializer<'de> for Strict<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(a) => visitor.visit_seq(StrictSeq(a.iter())),
            Value::Object(m) => visitor.visit_map(StrictMap {
                iter: m.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.0
            .deserialize_enum(name, variants, visitor)
            .map_err(serde::de::Error::custom)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (_, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

struct StrictSeq<'v>(std::slice::Iter<'v, Value>);

impl<'de> SeqAccess<'de> for StrictSeq<'de> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap<'v> {
    iter: serde_json::map::Iter<'v>,
    value: Option<&'v Value>,
}

impl<'de> MapAccess<'de> for StrictMap<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(serde::de::Error::custom("value is missing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        step_weight: Option<i64>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Item {
        #[serde(default)]
        min: Option<f64>,
    }

    #[test]
    fn collects_every_error_with_its_path() {
        let v = json!({
            "name": 5,
            "stepweight": 1,
            "items": [{"min": "x"}, "oops", {"min": 1, "mx": 2}],
        });
        let d: Deserialized<Outer> = deserialize_all(v);
        let mut paths: Vec<&str> = d.errors.iter().map(|e| e.path.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "items[0].min",
                "items[1]",
                "items[2].mx",
                "name",
                "stepweight"
            ]
        );
        let by_path = |p: &str| d.errors.iter().find(|e| e.path == p).unwrap();
        assert_eq!(
            by_path("name").message,
            "wrong type for `name`: expected a string, found the integer `5`"
        );
        assert_eq!(
            by_path("stepweight").help.as_deref(),
            Some("did you mean `stepWeight`?")
        );
        assert_eq!(
            by_path("items[0].min").message,
            "wrong type for `min`: expected a number, found the string \"x\""
        );
        let value = d.value.unwrap();
        // Mistyped fields are dropped, so their defaults apply.
        assert_eq!(value.name, None);
        assert_eq!(value.step_weight, None);
        assert_eq!(value.items.len(), 3);
        assert_eq!(value.items[2].min, Some(1.0));
        assert!(d.poisoned.contains("items[1]"));
    }

    #[test]
    fn a_struct_written_as_a_list_is_refused() {
        let d: Deserialized<Outer> = deserialize_all(json!({"items": [[1.5]], "name": "x"}));
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert_eq!(d.errors[0].path, "items[0]");
        assert!(
            d.errors[0]
                .message
                .contains("expected a mapping, found a list"),
            "{:?}",
            d.errors
        );
    }
}
