//! Request bodies in the Kubernetes protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), as client-go's typed clients
//! send them for built-in kinds (`kubectl create configmap|secret|
//! namespace|serviceaccount`).
//!
//! A body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown`
//! message whose `raw` bytes are the kind's own message. The messages are
//! decoded with `k8s-pb` (prost) and turned into the JSON object the store
//! takes, field by field. Every field of a supported message is converted:
//! the conversions destructure the messages exhaustively, so a field added
//! to `k8s-pb` fails the build until it is handled, and a body carrying
//! field numbers that `k8s-pb` does not know (a newer client) is refused
//! with 415 rather than stored without them.
//!
//! Go writes the non-pointer fields of a message even when they hold the
//! zero value, and leaves them out of JSON (`omitempty`); the conversion
//! does the same, so an empty `metadata.namespace` or a zero
//! `metadata.generation` is simply absent.

use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{Map, Value, json};

use base64::prelude::{BASE64_STANDARD, Engine as _};

use crate::kinds::KindInfo;
use crate::store::ApiError;

/// The media type of a protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every protobuf-encoded object.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The core kinds whose protobuf bodies are decoded.
pub const KINDS: &[&str] = &["ConfigMap", "Secret", "Namespace", "ServiceAccount"];

/// Whether a `Content-Type` names the protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Whether protobuf bodies of this kind are decoded.
pub fn supports(k: &KindInfo) -> bool {
    k.group.is_empty() && KINDS.contains(&k.kind)
}

/// The 415 answer for a protobuf body of a kind that is only taken as
/// JSON or YAML.
fn kind_not_supported(k: &KindInfo) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "the body of the request was in an unknown format - {} bodies of {} are not accepted by this server: \
         protobuf is accepted for {} and DeleteOptions; application/json and application/yaml are accepted for every kind",
        MEDIA_TYPE,
        k.qualified_kind(),
        KINDS.join(", "),
    ))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("failed to decode protobuf body: {message}"))
}

/// A field that is set but that the conversion does not carry over.
fn unconverted(kind: &str, field: &str) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "the protobuf body of the {kind} sets {field}, which this server does not convert; send the object as application/json"
    ))
}

/// The length of a varint.
fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// How many more bytes Go writes for a map than prost: Go writes the key
/// and value of every entry even when empty, prost leaves empty ones out.
fn map_extra<V: AsRef<[u8]>>(m: &BTreeMap<String, V>) -> usize {
    let field = |n: usize| if n == 0 { 0 } else { 1 + varint_len(n) + n };
    m.iter()
        .map(|(k, v)| {
            let (k, v) = (k.len(), v.as_ref().len());
            let prost = field(k) + field(v);
            let go = prost + 2 * (usize::from(k == 0) + usize::from(v == 0));
            go - prost + varint_len(go) - varint_len(prost)
        })
        .sum()
}

/// The same for the maps of an object's metadata (field 1 of every kind
/// here), whose length prefix grows with them.
fn meta_extra(m: Option<&meta::ObjectMeta>) -> usize {
    let Some(m) = m else {
        return 0;
    };
    let extra = map_extra(&m.labels) + map_extra(&m.annotations);
    let prost = m.encoded_len();
    extra + varint_len(prost + extra) - varint_len(prost)
}

/// The bytes Go writes beyond prost's encoding of the same message.
trait GoLength: Message {
    fn go_extra(&self) -> usize {
        0
    }
}

impl GoLength for Unknown {}
impl GoLength for meta::DeleteOptions {}

impl GoLength for core::ConfigMap {
    fn go_extra(&self) -> usize {
        meta_extra(self.metadata.as_ref()) + map_extra(&self.data) + map_extra(&self.binary_data)
    }
}

impl GoLength for core::Secret {
    fn go_extra(&self) -> usize {
        meta_extra(self.metadata.as_ref()) + map_extra(&self.data) + map_extra(&self.string_data)
    }
}

impl GoLength for core::Namespace {
    fn go_extra(&self) -> usize {
        meta_extra(self.metadata.as_ref())
    }
}

impl GoLength for core::ServiceAccount {
    fn go_extra(&self) -> usize {
        meta_extra(self.metadata.as_ref())
    }
}

/// Decodes `M` and checks that every byte was understood: prost skips
/// field numbers it does not know, and the length of the message as Go
/// encodes it shows they were there. (Checked for the message and its
/// metadata; the maps are the only fields whose encodings differ.)
fn decode_exact<M: GoLength + Default>(bytes: &[u8], what: &str) -> Result<M, ApiError> {
    let m = M::decode(bytes).map_err(|e| bad(format!("{what}: {e}")))?;
    if m.encoded_len() + m.go_extra() != bytes.len() {
        return Err(ApiError::unsupported_media_type(format!(
            "the protobuf {what} carries fields this server does not know (a newer client?); send it as application/json"
        )));
    }
    Ok(m)
}

/// Splits a body into its envelope's type and the raw message.
fn envelope(body: &[u8]) -> Result<(TypeMeta, Vec<u8>), ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(bad("the body does not start with the k8s protobuf prefix"));
    };
    let Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    } = decode_exact::<Unknown>(rest, "envelope")?;
    if content_encoding.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(unconverted("envelope", "contentEncoding"));
    }
    if content_type
        .as_deref()
        .is_some_and(|c| !c.is_empty() && !is_protobuf(c))
    {
        return Err(unconverted("envelope", "contentType"));
    }
    Ok((type_meta.unwrap_or_default(), raw.unwrap_or_default()))
}

/// Decodes a create or update body of kind `k` into the JSON object the
/// store takes.
pub fn decode_object(k: &KindInfo, body: &[u8]) -> Result<Value, ApiError> {
    if !supports(k) {
        return Err(kind_not_supported(k));
    }
    let (tm, raw) = envelope(body)?;
    let TypeMeta { api_version, kind } = tm;
    let mut obj = match k.kind {
        "ConfigMap" => config_map(decode_exact(&raw, "ConfigMap")?)?,
        "Secret" => secret(decode_exact(&raw, "Secret")?)?,
        "Namespace" => namespace(decode_exact(&raw, "Namespace")?)?,
        "ServiceAccount" => service_account(decode_exact(&raw, "ServiceAccount")?)?,
        _ => return Err(kind_not_supported(k)),
    };
    let mut head = Map::new();
    if let Some(av) = api_version.filter(|s| !s.is_empty()) {
        head.insert("apiVersion".into(), json!(av));
    }
    if let Some(kind) = kind.filter(|s| !s.is_empty()) {
        head.insert("kind".into(), json!(kind));
    }
    if let Value::Object(m) = &mut obj {
        head.append(m);
    }
    Ok(Value::Object(head))
}

/// Decodes a protobuf `DeleteOptions` body into its JSON form.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let (tm, raw) = envelope(body)?;
    if tm
        .kind
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != "DeleteOptions")
    {
        return Err(bad(format!(
            "expected DeleteOptions, got {}",
            tm.kind.unwrap_or_default()
        )));
    }
    let meta::DeleteOptions {
        grace_period_seconds,
        preconditions,
        orphan_dependents,
        propagation_policy,
        dry_run,
        ignore_store_read_error_with_cluster_breaking_potential,
    } = decode_exact(&raw, "DeleteOptions")?;
    let mut o = Map::new();
    put_opt(&mut o, "gracePeriodSeconds", grace_period_seconds);
    if let Some(meta::Preconditions {
        uid,
        resource_version,
    }) = preconditions
    {
        let mut p = Map::new();
        put_opt(&mut p, "uid", uid);
        put_opt(&mut p, "resourceVersion", resource_version);
        o.insert("preconditions".into(), Value::Object(p));
    }
    put_opt(&mut o, "orphanDependents", orphan_dependents);
    put_opt(&mut o, "propagationPolicy", propagation_policy);
    put_list(&mut o, "dryRun", dry_run);
    if ignore_store_read_error_with_cluster_breaking_potential == Some(true) {
        return Err(unconverted(
            "DeleteOptions",
            "ignoreStoreReadErrorWithClusterBreakingPotential",
        ));
    }
    Ok(Value::Object(o))
}

// ---------------------------------------------------------------------------
// Field helpers: Go's `omitempty` for the fields Go always writes, and the
// pointer fields kept as sent.

fn put_str(o: &mut Map<String, Value>, key: &str, v: Option<String>) {
    if let Some(s) = v.filter(|s| !s.is_empty()) {
        o.insert(key.into(), json!(s));
    }
}

fn put_opt<T: Into<Value>>(o: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        o.insert(key.into(), v.into());
    }
}

fn put_list(o: &mut Map<String, Value>, key: &str, v: Vec<String>) {
    if !v.is_empty() {
        o.insert(key.into(), json!(v));
    }
}

fn put_map(o: &mut Map<String, Value>, key: &str, v: BTreeMap<String, String>) {
    if !v.is_empty() {
        o.insert(key.into(), json!(v));
    }
}

fn put_bytes_map(o: &mut Map<String, Value>, key: &str, v: BTreeMap<String, Vec<u8>>) {
    if !v.is_empty() {
        let m: Map<String, Value> = v
            .into_iter()
            .map(|(k, b)| (k, json!(BASE64_STANDARD.encode(b))))
            .collect();
        o.insert(key.into(), Value::Object(m));
    }
}

/// `metav1.Time` as JSON has it (RFC 3339, whole seconds); the zero time
/// (an empty message) is absent.
fn time(t: Option<meta::Time>) -> Result<Option<String>, ApiError> {
    let Some(meta::Time { seconds, nanos }) = t else {
        return Ok(None);
    };
    let (s, n) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if s == 0 && n == 0 {
        return Ok(None);
    }
    let dt = chrono::DateTime::from_timestamp(s, 0)
        .ok_or_else(|| bad(format!("timestamp out of range: {s}")))?;
    Ok(Some(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn put_time(o: &mut Map<String, Value>, key: &str, t: Option<meta::Time>) -> Result<(), ApiError> {
    put_opt(o, key, time(t)?);
    Ok(())
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Result<Value, ApiError> {
    let Some(meta::ObjectMeta {
        name,
        generate_name,
        namespace,
        self_link,
        uid,
        resource_version,
        generation,
        creation_timestamp,
        deletion_timestamp,
        deletion_grace_period_seconds,
        labels,
        annotations,
        owner_references,
        finalizers,
        managed_fields,
    }) = m
    else {
        return Ok(json!({}));
    };
    let mut o = Map::new();
    put_str(&mut o, "name", name);
    put_str(&mut o, "generateName", generate_name);
    put_str(&mut o, "namespace", namespace);
    put_str(&mut o, "selfLink", self_link);
    put_str(&mut o, "uid", uid);
    put_str(&mut o, "resourceVersion", resource_version);
    put_opt(&mut o, "generation", generation.filter(|g| *g != 0));
    put_time(&mut o, "creationTimestamp", creation_timestamp)?;
    put_time(&mut o, "deletionTimestamp", deletion_timestamp)?;
    put_opt(
        &mut o,
        "deletionGracePeriodSeconds",
        deletion_grace_period_seconds,
    );
    put_map(&mut o, "labels", labels);
    put_map(&mut o, "annotations", annotations);
    if !owner_references.is_empty() {
        let refs: Vec<Value> = owner_references
            .into_iter()
            .map(|r| {
                let meta::OwnerReference {
                    api_version,
                    kind,
                    name,
                    uid,
                    controller,
                    block_owner_deletion,
                } = r;
                let mut o = Map::new();
                put_str(&mut o, "apiVersion", api_version);
                put_str(&mut o, "kind", kind);
                put_str(&mut o, "name", name);
                put_str(&mut o, "uid", uid);
                put_opt(&mut o, "controller", controller);
                put_opt(&mut o, "blockOwnerDeletion", block_owner_deletion);
                Value::Object(o)
            })
            .collect();
        o.insert("ownerReferences".into(), Value::Array(refs));
    }
    put_list(&mut o, "finalizers", finalizers);
    if !managed_fields.is_empty() {
        let mut entries = Vec::new();
        for e in managed_fields {
            let meta::ManagedFieldsEntry {
                manager,
                operation,
                api_version,
                time: at,
                fields_type,
                fields_v1,
                subresource,
            } = e;
            let mut o = Map::new();
            put_str(&mut o, "manager", manager);
            put_str(&mut o, "operation", operation);
            put_str(&mut o, "apiVersion", api_version);
            put_time(&mut o, "time", at)?;
            put_str(&mut o, "fieldsType", fields_type);
            if let Some(meta::FieldsV1 { raw: Some(raw) }) = fields_v1
                && !raw.is_empty()
            {
                let v: Value = serde_json::from_slice(&raw)
                    .map_err(|e| bad(format!("metadata.managedFields.fieldsV1: {e}")))?;
                o.insert("fieldsV1".into(), v);
            }
            put_str(&mut o, "subresource", subresource);
            entries.push(Value::Object(o));
        }
        o.insert("managedFields".into(), Value::Array(entries));
    }
    Ok(Value::Object(o))
}

fn config_map(m: core::ConfigMap) -> Result<Value, ApiError> {
    let core::ConfigMap {
        metadata,
        immutable,
        data,
        binary_data,
    } = m;
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(metadata)?);
    put_opt(&mut o, "immutable", immutable);
    put_map(&mut o, "data", data);
    put_bytes_map(&mut o, "binaryData", binary_data);
    Ok(Value::Object(o))
}

fn secret(m: core::Secret) -> Result<Value, ApiError> {
    let core::Secret {
        metadata,
        immutable,
        data,
        string_data,
        r#type,
    } = m;
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(metadata)?);
    put_opt(&mut o, "immutable", immutable);
    put_bytes_map(&mut o, "data", data);
    put_map(&mut o, "stringData", string_data);
    put_str(&mut o, "type", r#type);
    Ok(Value::Object(o))
}

fn namespace(m: core::Namespace) -> Result<Value, ApiError> {
    let core::Namespace {
        metadata,
        spec,
        status,
    } = m;
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(metadata)?);
    if let Some(core::NamespaceSpec { finalizers }) = spec {
        let mut s = Map::new();
        put_list(&mut s, "finalizers", finalizers);
        o.insert("spec".into(), Value::Object(s));
    }
    if let Some(core::NamespaceStatus { phase, conditions }) = status {
        let mut s = Map::new();
        put_str(&mut s, "phase", phase);
        if !conditions.is_empty() {
            let mut list = Vec::new();
            for c in conditions {
                let core::NamespaceCondition {
                    r#type,
                    status,
                    last_transition_time,
                    reason,
                    message,
                } = c;
                let mut m = Map::new();
                put_str(&mut m, "type", r#type);
                put_str(&mut m, "status", status);
                put_time(&mut m, "lastTransitionTime", last_transition_time)?;
                put_str(&mut m, "reason", reason);
                put_str(&mut m, "message", message);
                list.push(Value::Object(m));
            }
            s.insert("conditions".into(), Value::Array(list));
        }
        o.insert("status".into(), Value::Object(s));
    }
    Ok(Value::Object(o))
}

fn service_account(m: core::ServiceAccount) -> Result<Value, ApiError> {
    let core::ServiceAccount {
        metadata,
        secrets,
        image_pull_secrets,
        automount_service_account_token,
    } = m;
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(metadata)?);
    if !secrets.is_empty() {
        let list: Vec<Value> = secrets
            .into_iter()
            .map(|r| {
                let core::ObjectReference {
                    kind,
                    namespace,
                    name,
                    uid,
                    api_version,
                    resource_version,
                    field_path,
                } = r;
                let mut m = Map::new();
                put_str(&mut m, "kind", kind);
                put_str(&mut m, "namespace", namespace);
                put_str(&mut m, "name", name);
                put_str(&mut m, "uid", uid);
                put_str(&mut m, "apiVersion", api_version);
                put_str(&mut m, "resourceVersion", resource_version);
                put_str(&mut m, "fieldPath", field_path);
                Value::Object(m)
            })
            .collect();
        o.insert("secrets".into(), Value::Array(list));
    }
    if !image_pull_secrets.is_empty() {
        let list: Vec<Value> = image_pull_secrets
            .into_iter()
            .map(|core::LocalObjectReference { name }| {
                let mut m = Map::new();
                put_str(&mut m, "name", name);
                Value::Object(m)
            })
            .collect();
        o.insert("imagePullSecrets".into(), Value::Array(list));
    }
    put_opt(
        &mut o,
        "automountServiceAccountToken",
        automount_service_account_token,
    );
    Ok(Value::Object(o))
}

/// Encodes `msg` as a protobuf body of `api_version`/`kind`, as client-go
/// does: for tests and for clients of the sim that want to send one.
pub fn encode<M: Message>(api_version: &str, kind: &str, msg: &M) -> Vec<u8> {
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(envelope.encode_to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{CrdGroups, Kinds};

    fn kind(api_version: &str, kind: &str) -> &'static KindInfo {
        Kinds::new(CrdGroups::default())
            .by_kind(api_version, kind)
            .unwrap()
    }

    fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(String::new()),
            generate_name: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: [("app".to_string(), "podinfo".to_string())].into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_config_map_keeps_every_field_and_drops_go_zero_values() {
        let cm = core::ConfigMap {
            metadata: meta_named("settings"),
            immutable: Some(false),
            data: [("a".to_string(), "b".to_string())].into(),
            binary_data: [("bin".to_string(), vec![0u8, 1, 2])].into(),
        };
        let body = encode("v1", "ConfigMap", &cm);
        let v = decode_object(kind("v1", "ConfigMap"), &body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "podinfo"}},
                "immutable": false, "data": {"a": "b"}, "binaryData": {"bin": "AAEC"}})
        );
    }

    #[test]
    fn secret_data_becomes_base64_and_string_data_stays_text() {
        let s = core::Secret {
            metadata: meta_named("creds"),
            immutable: None,
            data: [("token".to_string(), b"s3cr3t".to_vec())].into(),
            string_data: [("plain".to_string(), "x".to_string())].into(),
            r#type: Some("Opaque".into()),
        };
        let v = decode_object(kind("v1", "Secret"), &encode("v1", "Secret", &s)).unwrap();
        assert_eq!(v["data"], json!({"token": "czNjcjN0"}));
        assert_eq!(v["stringData"], json!({"plain": "x"}));
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn namespaces_and_service_accounts_convert() {
        let ns = core::Namespace {
            metadata: meta_named("prod"),
            spec: Some(core::NamespaceSpec {
                finalizers: vec!["kubernetes".into()],
            }),
            status: None,
        };
        let v = decode_object(kind("v1", "Namespace"), &encode("v1", "Namespace", &ns)).unwrap();
        assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(v["metadata"]["name"], "prod");

        let sa = core::ServiceAccount {
            metadata: meta_named("deployer"),
            secrets: vec![],
            image_pull_secrets: vec![core::LocalObjectReference {
                name: Some("registry".into()),
            }],
            automount_service_account_token: Some(false),
        };
        let v = decode_object(
            kind("v1", "ServiceAccount"),
            &encode("v1", "ServiceAccount", &sa),
        )
        .unwrap();
        assert_eq!(v["imagePullSecrets"], json!([{"name": "registry"}]));
        assert_eq!(v["automountServiceAccountToken"], false);
    }

    #[test]
    fn times_read_as_rfc3339() {
        let t = meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(5),
        };
        assert_eq!(
            time(Some(t)).unwrap().as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(time(Some(meta::Time::default())).unwrap(), None);
    }

    #[test]
    fn other_kinds_are_refused_naming_the_ones_accepted() {
        let err = decode_object(kind("apps/v1", "Deployment"), b"k8s\0").unwrap_err();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("Deployment.apps"), "{}", err.message);
        assert!(
            err.message
                .contains("protobuf is accepted for ConfigMap, Secret, Namespace, ServiceAccount"),
            "{}",
            err.message
        );
    }

    #[test]
    fn fields_unknown_to_the_schema_are_refused_not_dropped() {
        let mut raw = core::ConfigMap {
            metadata: meta_named("x"),
            ..Default::default()
        }
        .encode_to_vec();
        // Field 99, varint 1: what a newer client could add.
        raw.extend([0x98, 0x06, 0x01]);
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            raw: Some(raw),
            content_encoding: None,
            content_type: None,
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        let err = decode_object(kind("v1", "ConfigMap"), &body).unwrap_err();
        assert_eq!(err.code, 415, "{}", err.message);
        assert!(err.message.contains("ConfigMap"), "{}", err.message);
    }

    #[test]
    fn empty_map_values_as_go_writes_them_are_not_unknown_fields() {
        // Go writes an entry's empty value (tag 2, length 0); prost leaves
        // it out. `data: {"a": ""}`, labels `{"tier": ""}`.
        let entry = |key: &[u8]| {
            let mut e = vec![0x0a, key.len() as u8];
            e.extend(key);
            e.extend([0x12, 0x00]);
            e
        };
        let mut metadata = vec![0x0a, 0x01, b'x'];
        let label = entry(b"tier");
        metadata.extend([0x5a, label.len() as u8]);
        metadata.extend(label);
        let mut raw = vec![0x0a, metadata.len() as u8];
        raw.extend(metadata);
        let data = entry(b"a");
        raw.extend([0x12, data.len() as u8]);
        raw.extend(data);
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            raw: Some(raw),
            content_encoding: None,
            content_type: None,
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        let v = decode_object(kind("v1", "ConfigMap"), &body).unwrap();
        assert_eq!(v["data"], json!({"a": ""}));
        assert_eq!(v["metadata"]["labels"], json!({"tier": ""}));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        let err = decode_object(kind("v1", "ConfigMap"), b"{}").unwrap_err();
        assert_eq!(err.code, 400);
        let err = decode_object(kind("v1", "ConfigMap"), b"k8s\0\xff\xff").unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn delete_options_convert() {
        let d = meta::DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            dry_run: vec!["All".into()],
            preconditions: Some(meta::Preconditions {
                uid: Some("u1".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let v = decode_delete_options(&encode("v1", "DeleteOptions", &d)).unwrap();
        assert_eq!(
            v,
            json!({"preconditions": {"uid": "u1"}, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }
}
