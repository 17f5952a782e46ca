//! Patch semantics of the simulated API server, as pure functions on
//! `serde_json::Value`: JSON merge patch (RFC 7386) and JSON patch (RFC 6902)
//! for every kind, strategic merge patch for the built-in kinds, and
//! server-side apply with `metadata.managedFields`.
//!
//! The HTTP layer maps the `Content-Type` to a [`PatchType`], calls
//! [`apply_patch_with`] with the stored object, and turns a [`PatchError`]
//! into a `Status` body with [`PatchError::status_code`],
//! [`PatchError::reason`], the `Display` message and [`PatchError::causes`].
//! POST and PUT call [`record_update`] so that creators own their fields, as
//! on a real server.
//!
//! What the caller still does, as the real server does outside the patch code:
//! - `resourceVersion`: a `metadata.resourceVersion` set by the patch (or the
//!   applied configuration) is kept in the result. When it is non-empty and
//!   differs from the live one, answer 409 Conflict ("the object has been
//!   modified"); otherwise stamp the new resourceVersion.
//! - the status strategy: the result of a patch of the main resource may
//!   carry `status` changes, and a patch of `/status` may carry `spec` changes;
//!   reset them as the registry strategies do. Ownership already ignores them.
//! - server-side apply creating an object: check the name and namespace
//!   against the URL with [`check_identity`] (for an existing object it is
//!   checked here against the live object).
//!
//! Faithful to the real server (k8s.io/apiserver `handlers/patch.go`,
//! apimachinery `strategicpatch` and `managedfields`, structured-merge-diff):
//! - status codes and messages: an undecodable body is 400; a JSON patch
//!   operation that fails (a `test`, a missing path, an unknown `op`) is 422
//!   `Invalid` with the server's unhelpful fixed message (the detail is in
//!   [`PatchError::Unprocessable`]); strategic merge on a custom resource is
//!   415 `UnsupportedMediaType` listing the accepted media types; apply
//!   conflicts are 409 with `Apply failed with 1 conflict: conflict with
//!   "kubectl" using apps/v1: .spec.replicas`; errors that the real
//!   strategic-merge code returns untyped (a list item without its merge key,
//!   `$patch: merge`, an unknown `$patch`) are 500 with an empty reason, as
//!   there; `fieldManager` missing on apply or `force` on another patch type is
//!   422 on `PatchOptions.meta.k8s.io`.
//! - strategic merge: `$patch: replace|delete` on maps, `$patch:
//!   replace|delete` list items, `$retainKeys`, `$setElementOrder/<list>`,
//!   `$deleteFromPrimitiveList/<list>`, `null` deletes a key, scalar lists with
//!   a merge strategy merge as sets, lists without one are replaced, and the
//!   real ordering algorithm (patch order, then live order, new items first
//!   when no `$setElementOrder` is sent).
//! - identity: a patch may not rename (400), move to another namespace (400)
//!   or change `kind`/`apiVersion` (422 for JSON and merge patches, silently
//!   ignored for strategic merge); a removed namespace, kind or apiVersion is
//!   restored.
//! - server-side apply: the body is YAML or JSON; `kind`/`apiVersion` must
//!   match (400 `invalid object type: apps/v1beta1, Kind=Deployment`);
//!   `metadata.managedFields` must be absent; maps merge, associative lists
//!   merge by key, sets union, other lists are atomic; a field that another
//!   manager owns and the apply changes is a conflict unless `force`, which
//!   moves ownership; equal values are shared; fields the same applier set
//!   last time and omits now are removed unless another manager owns them;
//!   every write by a non-apply patch (or [`record_update`]) moves the changed
//!   fields to its `Update` manager; the kubectl applier keeps the
//!   last-applied annotation in sync when the object has one.
//!
//! The subset, and where it differs from the real server:
//! - No OpenAPI schema: patch strategies and list keys come from a table of
//!   the paths this project uses (pod template lists of Deployment, DaemonSet,
//!   ReplicaSet, StatefulSet, Job and Pod; container `env`, `ports`,
//!   `volumeMounts`, `volumeDevices`; Service `spec.ports`; `status.conditions`;
//!   `metadata.finalizers` and `ownerReferences`). Unknown fields are kept
//!   rather than dropped, and field types are not validated.
//! - Associative lists have one key; the real server keys container and
//!   Service ports by port and protocol (so `fieldsV1` shows
//!   `k:{"containerPort":80}` where the real one shows the protocol too).
//! - Server-side apply appends new list items after the live ones (the real
//!   merge interleaves by the applied order), treats `null` in the applied
//!   configuration as "remove this field" without recording ownership, does not
//!   version-convert managed fields, does not cap the number of Update
//!   managers, does not track struct nodes (only maps' leaves, list items and
//!   leaf values, so no `.` entry for new maps as the real Update entries
//!   show), and does not convert client-side-apply ownership to server-side
//!   apply (the real `LastAppliedManager`).
//! - Directives left inside newly added values are dropped, and nulls in them
//!   too (the real server drops them when it decodes into the typed object).
//! - Oddities of the real strategic merge (panics on malformed lists, empty
//!   lists with `$setElementOrder`) are answered leniently or with a 500.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::SystemTime;

use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// The annotation `kubectl apply` (client side) keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// More operations than this in one JSON patch is 413, as on the real server.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// The real server's `FieldManagerMaxLength`.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// Kinds compiled into the real API server: they accept strategic merge patch.
const BUILTIN_KINDS: &[&str] = &[
    "Deployment",
    "DaemonSet",
    "ReplicaSet",
    "StatefulSet",
    "Job",
    "Pod",
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "HorizontalPodAutoscaler",
    "Lease",
    "Event",
    "Ingress",
    "Namespace",
    "Scale",
];

/// Built-in kinds with a status subresource: the main resource does not own
/// `status`, and `/status` does not own `spec` (the registries' reset fields).
const STATUS_SUBRESOURCE_KINDS: &[&str] = &[
    "Deployment",
    "DaemonSet",
    "ReplicaSet",
    "StatefulSet",
    "Job",
    "Pod",
    "Service",
    "HorizontalPodAutoscaler",
    "Ingress",
    "Namespace",
];

/// Lists of a PodSpec that merge by key (`patchMergeKey`).
const POD_SPEC_LISTS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("imagePullSecrets", "name"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("schedulingGates", "name"),
    ("resourceClaims", "name"),
];

/// Lists of a Container that merge by key.
const CONTAINER_LISTS: &[(&str, &str)] = &[
    ("env", "name"),
    ("ports", "containerPort"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
];

const CONTAINER_KINDS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The patch formats of the `PATCH` verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`, RFC 7386.
    Merge,
    /// `application/json-patch+json`, RFC 6902.
    Json,
    /// `application/strategic-merge-patch+json`, built-in kinds only.
    StrategicMerge,
    /// `application/apply-patch+yaml`, server-side apply (YAML or JSON body).
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header, parameters ignored; `None`
    /// is answered with [`PatchError::unsupported_media_type`].
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Whether a kind accepts strategic merge patch (a built-in kind).
pub fn has_strategic_merge_schema(kind: &str) -> bool {
    BUILTIN_KINDS.contains(&kind)
}

/// A field that another manager owns and an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager as the real server prints it: `"kubectl" using apps/v1`
    /// for an Update manager, `"kubectl"` for an applier.
    pub manager: String,
    /// The field path as the real server prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
}

/// One entry of `Status.details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCause {
    /// The cause type, serialized as `reason`.
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

/// Why a patch was refused; each maps to the real server's status.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// 400: the body could not be decoded, a directive is malformed, or the
    /// patch renames or moves the object.
    #[error("{message}")]
    BadRequest { message: String },
    /// 422 `Invalid` with the fixed message of the real server (which drops
    /// the detail): a JSON patch operation failed, or a list of lists.
    #[error("the server rejected our request due to an error in our request")]
    Unprocessable { detail: String },
    /// 422 `Invalid`: the patched object is not an object of this kind, or the
    /// patch options are invalid.
    #[error("{message}")]
    Invalid { message: String },
    /// 415: the kind does not accept this patch type.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
    /// 409: server-side apply conflicts, grouped by manager.
    #[error("{}", conflict_message(.conflicts))]
    ApplyConflict { conflicts: Vec<FieldConflict> },
    /// 404: only server-side apply creates; the caller words the message.
    #[error("the object to patch does not exist")]
    NotFound,
    /// 413: more than 10000 JSON patch operations.
    #[error("{message}")]
    TooLarge { message: String },
    /// 500 with an empty reason: what the real server answers for errors the
    /// strategic merge and apply code return untyped.
    #[error("{message}")]
    Internal { message: String },
}

impl PatchError {
    /// The HTTP status the real API server answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest { .. } => 400,
            PatchError::Unprocessable { .. } | PatchError::Invalid { .. } => 422,
            PatchError::UnsupportedMediaType { .. } => 415,
            PatchError::ApplyConflict { .. } => 409,
            PatchError::NotFound => 404,
            PatchError::TooLarge { .. } => 413,
            PatchError::Internal { .. } => 500,
        }
    }

    /// The `Status.reason` (empty, `StatusReasonUnknown`, for a 500).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest { .. } => "BadRequest",
            PatchError::Unprocessable { .. } | PatchError::Invalid { .. } => "Invalid",
            PatchError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            PatchError::ApplyConflict { .. } => "Conflict",
            PatchError::NotFound => "NotFound",
            PatchError::TooLarge { .. } => "RequestEntityTooLarge",
            PatchError::Internal { .. } => "",
        }
    }

    /// `Status.details.causes`: one `FieldManagerConflict` per apply conflict.
    pub fn causes(&self) -> Vec<StatusCause> {
        match self {
            PatchError::ApplyConflict { conflicts } => conflicts
                .iter()
                .map(|c| StatusCause {
                    reason: "FieldManagerConflict",
                    message: format!("conflict with {}", c.manager),
                    field: c.field.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The 415 for a patch type this kind does not accept (strategic merge on
    /// a custom resource, or an unknown `Content-Type`).
    pub fn unsupported_media_type(kind: &str) -> PatchError {
        let mut accepted = vec![PatchType::Json, PatchType::Merge];
        if has_strategic_merge_schema(kind) {
            accepted.push(PatchType::StrategicMerge);
        }
        accepted.push(PatchType::Apply);
        let accepted: Vec<&str> = accepted.into_iter().map(PatchType::content_type).collect();
        PatchError::UnsupportedMediaType {
            accepted: accepted.join(", "),
        }
    }
}

fn conflict_message(conflicts: &[FieldConflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.field
        );
    }
    let mut lines = Vec::new();
    let mut current: Option<&str> = None;
    for c in conflicts {
        if current != Some(c.manager.as_str()) {
            lines.push(format!("conflicts with {}:", c.manager));
            current = Some(&c.manager);
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn bad_request(message: impl Into<String>) -> PatchError {
    PatchError::BadRequest {
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> PatchError {
    PatchError::Invalid {
        message: message.into(),
    }
}

fn internal(message: impl Into<String>) -> PatchError {
    PatchError::Internal {
        message: message.into(),
    }
}

/// The query parameters of a patch and what only the caller knows.
#[derive(Clone, Copy, Debug, Default)]
pub struct PatchOptions<'a> {
    /// `fieldManager`; required for apply. For other patches the real server
    /// falls back to the User-Agent: pass [`manager_or_user_agent`]. `None`
    /// is recorded as `unknown`, as for a request with neither.
    pub field_manager: Option<&'a str>,
    /// `force`, apply only.
    pub force: bool,
    /// `Some("status")` for `/status`: recorded in managedFields entries and
    /// selects which top-level field ownership ignores.
    pub subresource: Option<&'a str>,
    /// The managedFields timestamp; the system clock when `None`.
    pub now: Option<SystemTime>,
}

/// The field manager the real server records for a non-apply request: the
/// `fieldManager` parameter, else the User-Agent up to its first `/`.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(manager) = field_manager.filter(|m| !m.is_empty()) {
        return manager.to_string();
    }
    let mut out = String::new();
    for c in user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .chars()
    {
        if c.is_control() {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "unknown".to_string()
    } else {
        out
    }
}

/// Applies a patch of type `ty` to `live` (the stored object, `None` when
/// absent: only server-side apply creates) and returns the new object with
/// its managedFields updated. See the module documentation for what the
/// caller still checks.
pub fn apply_patch_with(
    kind: &str,
    live: Option<&Value>,
    patch: &[u8],
    ty: PatchType,
    opts: &PatchOptions<'_>,
) -> Result<Value, PatchError> {
    // The real server checks the media type first, then the options.
    if ty == PatchType::StrategicMerge && !has_strategic_merge_schema(kind) {
        return Err(PatchError::unsupported_media_type(kind));
    }
    validate_options(ty, opts)?;
    let now = timestamp(opts.now);
    if ty == PatchType::Apply {
        let mut result = server_side_apply(kind, live, patch, opts, &now)?;
        if let Some(live) = live {
            check_identity(&mut result, name_of(live), namespace_of(live))?;
        }
        return Ok(result);
    }
    let Some(live) = live else {
        return Err(PatchError::NotFound);
    };
    let patched = match ty {
        PatchType::Json => json_patch(live, patch)?,
        PatchType::Merge => merge_patch(live, patch)?,
        _ => strategic_merge_patch(kind, live, patch)?,
    };
    let mut result = keep_type_meta(live, patched, ty)?;
    check_identity(&mut result, name_of(live), namespace_of(live))?;
    normalize_empty_metadata(&mut result);
    track_update(kind, Some(live), &mut result, opts, &now);
    Ok(result)
}

/// Records a create (`live` is `None`) or an update (PUT) in managedFields as
/// the real server does: the manager owns every field it added or changed, as
/// an `Update` entry; managedFields sent in `new` are kept when non-empty.
pub fn record_update(
    kind: &str,
    live: Option<&Value>,
    mut new: Value,
    opts: &PatchOptions<'_>,
) -> Value {
    let now = timestamp(opts.now);
    track_update(kind, live, &mut new, opts, &now);
    new
}

/// Checks the object's name and namespace against the request's, as the
/// real server does after a patch: a missing namespace is set, a different
/// one is refused, and a cluster-scoped object (`namespace` `None`) loses it.
pub fn check_identity(
    obj: &mut Value,
    name: &str,
    namespace: Option<&str>,
) -> Result<(), PatchError> {
    let mut no_meta = Object::new();
    let meta = match obj.get_mut("metadata") {
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(invalid(
                "\"\" is invalid: patch: Invalid value: metadata must be an object",
            ));
        }
        None => &mut no_meta,
    };
    let own_namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match namespace.filter(|ns| !ns.is_empty()) {
        Some(ns) if own_namespace.is_empty() => {
            meta.insert("namespace".into(), Value::String(ns.into()));
        }
        Some(ns) if own_namespace != ns => {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Some(_) => {}
        None => {
            meta.shift_remove("namespace");
        }
    }
    let own_name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if own_name != name {
        return Err(bad_request(format!(
            "the name of the object ({own_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn timestamp(now: Option<SystemTime>) -> String {
    humantime::format_rfc3339_seconds(now.unwrap_or_else(SystemTime::now)).to_string()
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
}

fn str_at<'v>(obj: &'v Object, key: &str) -> &'v str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `ValidatePatchOptions`: 422 on `PatchOptions.meta.k8s.io`.
fn validate_options(ty: PatchType, opts: &PatchOptions<'_>) -> Result<(), PatchError> {
    let mut errs = Vec::new();
    if ty != PatchType::Apply {
        if opts.force {
            errs.push("force: Forbidden: may not be specified for non-apply patch".to_string());
        }
    } else if opts.field_manager.is_none_or(str::is_empty) {
        errs.push("fieldManager: Required value: is required for apply patch".to_string());
    }
    if let Some(manager) = opts.field_manager {
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errs.push(format!(
                "fieldManager: Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"
            ));
        }
        for (i, c) in manager.char_indices() {
            if c.is_control() {
                errs.push(format!(
                    "fieldManager: Invalid value: {}: invalid character U+{:04X} (at position {i})",
                    Value::String(manager.into()),
                    c as u32
                ));
            }
        }
    }
    match errs.as_slice() {
        [] => Ok(()),
        [one] => Err(invalid(format!(
            "PatchOptions.meta.k8s.io \"\" is invalid: {one}"
        ))),
        many => Err(invalid(format!(
            "PatchOptions.meta.k8s.io \"\" is invalid: [{}]",
            many.join(", ")
        ))),
    }
}

/// The name of a JSON value's type, as Go's decoder says it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The Go type of a decoded JSON value, for the real server's messages.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A value as Go's `%v` prints it, for the real server's messages.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_fmt).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => go_fmt_map(m),
        other => other.to_string(),
    }
}

fn go_fmt_map(m: &Object) -> String {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let entries: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
        .collect();
    format!("map[{}]", entries.join(" "))
}

// ---------------------------------------------------------------------------
// JSON patch and JSON merge patch (the json-patch crate)

fn json_patch(live: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| bad_request(e.to_string()))?;
    let ops = match parsed {
        Value::Array(ops) => ops,
        Value::Null => Vec::new(),
        other => {
            return Err(bad_request(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_type(&other)
            )));
        }
    };
    if let Some(op) = ops.iter().find(|op| !op.is_object()) {
        return Err(bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_type(op)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge {
            message: format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        });
    }
    // The real decoder accepts any objects and fails while applying: 422.
    let ops = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| {
            serde_json::from_value::<json_patch::PatchOperation>(op).map_err(|e| {
                PatchError::Unprocessable {
                    detail: format!("operation {i}: {e}"),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = live.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Unprocessable {
        detail: e.to_string(),
    })?;
    Ok(doc)
}

fn merge_patch(live: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|_| bad_request("Invalid JSON Patch"))?;
    match patch {
        Value::Object(_) => {
            let mut doc = live.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        // RFC 7386: a non-object patch replaces the document; the real server
        // then fails to decode it (422) unless it is not even a document (400).
        Value::Array(items) => Ok(Value::Array(items.into_iter().map(strip_nulls).collect())),
        _ => Err(bad_request("Invalid JSON Patch")),
    }
}

/// The real decoding of the patched object: it must be an object; a removed
/// `apiVersion`/`kind` is restored; a changed one is refused (422) by JSON and
/// merge patches and ignored by strategic merge, which decodes into the type.
fn keep_type_meta(live: &Value, patched: Value, ty: PatchType) -> Result<Value, PatchError> {
    let mut obj = match patched {
        Value::Object(obj) => obj,
        other => {
            return Err(invalid(format!(
                "\"\" is invalid: patch: Invalid value: {}: couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                Value::String(other.to_string()),
                json_type(&other)
            )));
        }
    };
    for field in ["apiVersion", "kind"] {
        let was = live.get(field);
        match obj.get(field) {
            Some(now) if Some(now) == was => {}
            Some(now) if !now.is_null() && ty != PatchType::StrategicMerge => {
                return Err(invalid(format!(
                    "\"\" is invalid: patch: Invalid value: {now}: {field} may not be changed by a patch (the object is {} {})",
                    live.get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    live.get("kind").and_then(Value::as_str).unwrap_or_default()
                )));
            }
            _ => {
                if let Some(was) = was {
                    obj.insert(field.into(), was.clone());
                }
            }
        }
    }
    Ok(Value::Object(obj))
}

/// Empty labels, annotations, finalizers and ownerReferences are omitted by
/// the real server's encoding (`omitempty`).
fn normalize_empty_metadata(obj: &mut Value) {
    for pointer in ["/metadata", "/spec/template/metadata"] {
        if let Some(Value::Object(meta)) = obj.pointer_mut(pointer) {
            for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                let empty = match meta.get(field) {
                    Some(Value::Object(m)) => m.is_empty(),
                    Some(Value::Array(a)) => a.is_empty(),
                    _ => false,
                };
                if empty {
                    meta.shift_remove(field);
                }
            }
        }
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------
// The schema table: how each list of the built-in kinds is patched

/// How a list field merges: `patchStrategy`/`patchMergeKey` for strategic
/// merge, `x-kubernetes-list-type`/`-list-map-keys` for server-side apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    /// Replaced as a whole.
    Atomic,
    /// A list of scalars merged as a set.
    Set,
    /// A list of objects merged by this key.
    Map(&'static str),
}

impl ListKind {
    fn merge_key(self) -> Option<&'static str> {
        match self {
            ListKind::Map(key) => Some(key),
            _ => None,
        }
    }
}

fn pod_spec_prefix(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment" | "DaemonSet" | "ReplicaSet" | "StatefulSet" | "Job" => {
            Some(&["spec", "template", "spec"])
        }
        "Pod" => Some(&["spec"]),
        _ => None,
    }
}

/// The strategic-merge metadata of the list at `fields` of a `kind`, as
/// the OpenAPI documents carry it: the patch strategy and the merge key
/// (`("merge", Some("name"))` for containers, `("merge", None)` for a list
/// of scalars merged as a set); `None` for a list replaced as a whole.
pub fn list_patch_meta<S: AsRef<str>>(
    kind: &str,
    fields: &[S],
) -> Option<(&'static str, Option<&'static str>)> {
    match list_kind(kind, fields) {
        ListKind::Atomic => None,
        ListKind::Set => Some(("merge", None)),
        ListKind::Map(key) => Some(("merge", Some(key))),
    }
}

/// The list kind of the field at `fields` (field names from the root; list
/// items do not count) of an object of `kind`.
fn list_kind<S: AsRef<str>>(kind: &str, fields: &[S]) -> ListKind {
    let f: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
    let pod = pod_spec_prefix(kind);
    let meta = match f.as_slice() {
        ["metadata", rest @ ..] => Some(rest),
        ["spec", "template", "metadata", rest @ ..] if pod.is_some_and(|p| p.len() == 3) => {
            Some(rest)
        }
        _ => None,
    };
    if let Some(rest) = meta {
        return match rest {
            ["finalizers"] => ListKind::Set,
            ["ownerReferences"] => ListKind::Map("uid"),
            _ => ListKind::Atomic,
        };
    }
    if !has_strategic_merge_schema(kind) {
        return ListKind::Atomic;
    }
    match f.as_slice() {
        ["status", "conditions"] if STATUS_SUBRESOURCE_KINDS.contains(&kind) => {
            return ListKind::Map("type");
        }
        ["spec", "ports"] if kind == "Service" => return ListKind::Map("port"),
        _ => {}
    }
    if let Some(prefix) = pod
        && f.len() > prefix.len()
        && f[..prefix.len()] == *prefix
    {
        let key = match &f[prefix.len()..] {
            [list] => POD_SPEC_LISTS.iter().find(|(name, _)| name == list),
            [container, list] if CONTAINER_KINDS.contains(container) => {
                CONTAINER_LISTS.iter().find(|(name, _)| name == list)
            }
            _ => None,
        };
        if let Some((_, key)) = key {
            return ListKind::Map(key);
        }
    }
    ListKind::Atomic
}

// ---------------------------------------------------------------------------
// Strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch)

fn strategic_merge_patch(kind: &str, live: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| bad_request(e.to_string()))?;
    let patch = match patch {
        Value::Object(m) => m,
        Value::Null => Object::new(),
        other => {
            return Err(bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_type(&other)
            )));
        }
    };
    let original = live.as_object().cloned().unwrap_or_default();
    let merged = Smp { kind }.merge_map(&[], original, patch)?;
    Ok(Value::Object(merged))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElemKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn elem_kind(v: &Value) -> ElemKind {
    match v {
        Value::Null => ElemKind::Null,
        Value::Bool(_) => ElemKind::Bool,
        Value::Number(_) => ElemKind::Number,
        Value::String(_) => ElemKind::String,
        Value::Array(_) => ElemKind::Array,
        Value::Object(_) => ElemKind::Object,
    }
}

/// `sliceElementType`: the one element type of these lists, `None` if empty.
fn slice_element_kind(lists: &[&[Value]]) -> Result<Option<ElemKind>, PatchError> {
    let mut prev = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let kind = elem_kind(v);
        match prev {
            None if kind == ElemKind::Array => {
                return Err(PatchError::Unprocessable {
                    detail: "lists of lists are not supported".into(),
                });
            }
            None => prev = Some(kind),
            Some(p) if p != kind => {
                let all: Vec<String> = lists
                    .iter()
                    .map(|l| go_fmt(&Value::Array(l.to_vec())))
                    .collect();
                return Err(internal(format!(
                    "list element types are not identical: {}",
                    all.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(prev)
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}

fn has_directive(v: &Value) -> bool {
    v.get(DIRECTIVE).is_some()
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// A value the patch adds where the live object has none: the real server
/// copies it with its directives and nulls, then drops both when it decodes
/// into the typed object. A `$patch: delete` item deletes nothing here.
fn clean(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(clean_object(m)),
        Value::Array(items) => Value::Array(clean_list(items)),
        other => other,
    }
}

fn clean_object(m: Object) -> Object {
    m.into_iter()
        .filter(|(k, v)| !is_directive_key(k) && !v.is_null())
        .map(|(k, v)| (k, clean(v)))
        .collect()
}

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .filter(|v| {
            !(is_delete_item(v)
                || (has_directive(v) && v.as_object().is_some_and(|m| m.len() == 1)))
        })
        .map(clean)
        .collect()
}

/// `extractKey`: `$setElementOrder/containers` is `containers`.
fn extract_key(key: &str, prefix: &str) -> Option<String> {
    let (head, rest) = key.split_once('/')?;
    (head == prefix).then(|| rest.to_string())
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    internal(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn no_merge_key(m: &Object, key: &str) -> PatchError {
    internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt_map(m)
    ))
}

fn bad_patch_type(directive: &Value, m: &Object) -> PatchError {
    internal(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt_map(m)
    ))
}

fn child(path: &[String], field: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(field.to_string());
    p
}

fn list_field(v: Option<&Value>) -> Result<Option<Vec<Value>>, PatchError> {
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(bad_arg_type("[]interface {}", other)),
    }
}

/// The merge key's value of a list item, or the item itself in a scalar list.
fn pick<'v>(v: &'v Value, key: Option<&str>, kind: ElemKind) -> Option<&'v Value> {
    if kind == ElemKind::Object {
        v.get(key?)
    } else {
        Some(v)
    }
}

fn position(list: &[Value], item: &Value, key: Option<&str>, kind: ElemKind) -> Option<usize> {
    let target = pick(item, key, kind);
    list.iter().position(|v| pick(v, key, kind) == target)
}

/// Splits `merged` into the items present in `by` (by merge key) and the rest.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in merged {
        let found = match key {
            None => by.contains(&v),
            Some(key) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad_arg_type("map[string]interface {}", &v))?;
                let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                let mut found = false;
                for (i, b) in by.iter().enumerate() {
                    let b = b
                        .as_object()
                        .ok_or_else(|| internal(format!("value for key {i} is not a map.")))?;
                    if b.get(key) == Some(value) {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        if found {
            present.push(v)
        } else {
            absent.push(v)
        }
    }
    Ok((present, absent))
}

/// `normalizeElementOrder`: patch items in patch order, server-only items in
/// live order, then interleaved by live order.
fn normalize_element_order(
    items: Vec<Value>,
    server_only: Vec<Value>,
    item_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    kind: ElemKind,
) -> Result<Vec<Value>, PatchError> {
    let items = normalize_slice_order(items, item_order, key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, key, kind)?;
    Ok(merge_sorted(server_only, items, server_order, key, kind))
}

fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
    kind: ElemKind,
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, deletes): (Vec<Value>, Vec<Value>) = if kind == ElemKind::Object {
        for v in to_sort.iter().chain(order) {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
            let key = key.unwrap_or_default();
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
        to_sort.into_iter().partition(|v| !is_delete_item(v))
    } else {
        (to_sort, Vec::new())
    };
    keep.sort_by_key(|v| position(order, v, key, kind).unwrap_or(usize::MAX));
    keep.extend(deletes);
    Ok(keep)
}

/// `mergeSortedSlice`: takes a server-only item first only when both are in
/// the live list and it comes first there; so new patch items lead.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
    kind: ElemKind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, key, kind), position(server_order, r, key, kind)),
                (Some(i), Some(j)) if i < j
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn merge_key_value_equal(l: &Value, r: &Value, key: Option<&str>) -> Result<bool, PatchError> {
    let Some(key) = key else {
        return Ok(l == r);
    };
    let lm = l
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", l))?;
    let rm = r
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", r))?;
    let lv = lm.get(key).ok_or_else(|| no_merge_key(lm, key))?;
    let rv = rm.get(key).ok_or_else(|| no_merge_key(rm, key))?;
    Ok(lv == rv)
}

/// `validatePatchWithSetOrderList`: the patch list must follow the order of
/// `$setElementOrder` (deletions aside).
fn validate_patch_with_set_order_list(
    patch_list: Option<&[Value]>,
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    let Some(list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() || list.is_empty() {
        return Ok(());
    }
    let mut non_delete = Vec::new();
    for v in list {
        if key.is_some() {
            if !v.is_object() {
                return Err(bad_arg_type("map[string]interface {}", v));
            }
            if is_delete_item(v) {
                continue;
            }
        }
        non_delete.push(v);
    }
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if has_directive(non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[pi], &order[si], key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// `mergeSliceWithSpecialElements`: applies `$patch: delete` items to the live
/// list; a `$patch: replace` item makes the other patch items the whole list.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Some(m) = v.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        match m.get(DIRECTIVE) {
            None => plain.push(v),
            Some(Value::String(d)) if d == "delete" => {
                let Some(value) = m.get(key) else {
                    return Err(no_merge_key(m, key));
                };
                if let Some(i) = original.iter().position(|o| !o.is_object()) {
                    return Err(internal(format!("value for key {i} is not a map.")));
                }
                original.retain(|o| o.get(key) != Some(value));
            }
            Some(Value::String(d)) if d == "replace" => replace = true,
            Some(Value::String(d)) if d == "merge" => {
                return Err(internal(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            Some(other) => return Err(bad_patch_type(other, m)),
        }
    }
    if replace {
        Ok((clean_list(plain), Vec::new()))
    } else {
        Ok((original, plain))
    }
}

struct Smp<'k> {
    kind: &'k str,
}

impl Smp<'_> {
    /// `mergeMap`: `path` holds the field names from the root.
    fn merge_map(
        &self,
        path: &[String],
        mut original: Object,
        mut patch: Object,
    ) -> Result<Object, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.shift_remove(DIRECTIVE);
                    Ok(clean_object(patch))
                }
                Some("delete") => Ok(Object::new()),
                _ => Err(bad_patch_type(directive, &patch)),
            };
        }
        if let Some(retain) = patch.shift_remove(RETAIN_KEYS) {
            let Value::Array(retain) = retain else {
                return Err(bad_request(ERR_RETAIN_KEYS));
            };
            let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
            for (k, v) in &patch {
                let directive =
                    k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX);
                if !v.is_null() && !directive && !listed(k) {
                    return Err(bad_request(ERR_RETAIN_KEYS));
                }
            }
            original.retain(|k, _| listed(k));
        }
        self.merge_ordered_lists(path, &mut original, &mut patch)?;
        // Deletions from primitive lists go last, after the list's additions.
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if key.starts_with(DELETE_PRIMITIVE_PREFIX) {
                deletions.push((key, value));
            } else {
                self.merge_field(path, &mut original, key, value, false)?;
            }
        }
        for (key, value) in deletions {
            let field = extract_key(&key, DELETE_PRIMITIVE_PREFIX)
                .ok_or_else(|| bad_request(ERR_PRIMITIVE_LIST))?;
            self.merge_field(path, &mut original, field, value, true)?;
        }
        Ok(original)
    }

    /// `mergePatchIntoOriginal`: each `$setElementOrder/<list>` with its list.
    fn merge_ordered_lists(
        &self,
        path: &[String],
        original: &mut Object,
        patch: &mut Object,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ORDER_PREFIX))
            .cloned()
            .collect();
        for key in keys {
            let order = patch.shift_remove(&key).unwrap_or_default();
            let field =
                extract_key(&key, SET_ORDER_PREFIX).ok_or_else(|| bad_request(ERR_SET_ORDER))?;
            let Value::Array(order) = order else {
                return Err(bad_request(ERR_SET_ORDER));
            };
            let original_list = list_field(original.get(&field))?;
            let patch_list = list_field(patch.get(&field))?;
            let field_path = child(path, &field);
            let merge_key = list_kind(self.kind, &field_path).merge_key();
            validate_patch_with_set_order_list(patch_list.as_deref(), &order, merge_key)?;
            let server_order = original_list.clone().unwrap_or_default();
            let kind =
                slice_element_kind(&[&server_order, patch_list.as_deref().unwrap_or_default()])?;
            let merged = match (original_list, patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => clean_list(p),
                (Some(o), Some(p)) => self.merge_list(&field_path, o, p, false)?,
                (None, None) => continue,
            };
            patch.shift_remove(&field);
            let merged = match kind {
                Some(kind) => {
                    let (items, server_only) = partition(merged, &order, merge_key)?;
                    normalize_element_order(
                        items,
                        server_only,
                        &order,
                        &server_order,
                        merge_key,
                        kind,
                    )?
                }
                None => merged,
            };
            original.insert(field, Value::Array(merged));
        }
        Ok(())
    }

    fn merge_field(
        &self,
        path: &[String],
        original: &mut Object,
        key: String,
        value: Value,
        delete_list: bool,
    ) -> Result<(), PatchError> {
        if value.is_null() {
            original.shift_remove(&key);
            return Ok(());
        }
        let field_path = child(path, &key);
        let merged = match (original.get_mut(&key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(self.merge_map(&field_path, std::mem::take(o), p)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Value::Array(self.merge_list(&field_path, std::mem::take(o), p, delete_list)?)
            }
            // Absent, or of another type: the patch value replaces it.
            (_, value) if !delete_list => clean(value),
            _ => return Ok(()),
        };
        original.insert(key, merged);
        Ok(())
    }

    /// `mergeSliceHandler`: merge lists by strategy, replace the others.
    fn merge_list(
        &self,
        path: &[String],
        original: Vec<Value>,
        patch: Vec<Value>,
        delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        let strategy = list_kind(self.kind, path);
        if !delete_list && strategy == ListKind::Atomic {
            return Ok(clean_list(patch));
        }
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let Some(kind) = slice_element_kind(&[&original, &patch])? else {
            return Ok(original);
        };
        let merge_key = strategy.merge_key();
        let (original, patch, merged) = if kind != ElemKind::Object {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(&patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            (original, patch, merged)
        } else {
            let Some(key) = merge_key else {
                return Err(internal(
                    "cannot merge lists without merge key for type struct",
                ));
            };
            let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
            let merged = self.merge_items(path, original.clone(), &patch, key)?;
            (original, patch, merged)
        };
        let (items, server_only) = partition(merged, &patch, merge_key)?;
        normalize_element_order(items, server_only, &patch, &original, merge_key, kind)
    }

    /// `mergeSliceWithoutSpecialElements`: merge items by key, append new ones.
    fn merge_items(
        &self,
        path: &[String],
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for v in patch {
            let Some(m) = v.as_object() else {
                return Err(bad_arg_type("map[string]interface {}", v));
            };
            let Some(value) = m.get(key) else {
                return Err(no_merge_key(m, key));
            };
            let mut found = None;
            for (i, o) in original.iter().enumerate() {
                let Some(om) = o.as_object() else {
                    return Err(internal(format!("value for key {i} is not a map.")));
                };
                if om.get(key) == Some(value) {
                    found = Some(i);
                    break;
                }
            }
            match found {
                Some(i) => {
                    let om = original[i]
                        .as_object_mut()
                        .map(std::mem::take)
                        .unwrap_or_default();
                    original[i] = Value::Object(self.merge_map(path, om, m.clone())?);
                }
                None => original.push(clean(v.clone())),
            }
        }
        Ok(original)
    }
}

// ---------------------------------------------------------------------------
// Field sets and managedFields (sigs.k8s.io/structured-merge-diff, simplified)

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Pe {
    /// A field of a map: `f:name`.
    Field(String),
    /// An associative list item by key fields, values as JSON: `k:{"name":"app"}`.
    Key(Vec<(String, String)>),
    /// A set item, as JSON: `v:"finalizer"`.
    Value(String),
}

type FPath = Vec<Pe>;
type FSet = BTreeSet<FPath>;

impl Pe {
    fn key(name: &str, value: &Value) -> Pe {
        Pe::Key(vec![(name.to_string(), value.to_string())])
    }

    /// The `fieldsV1` key.
    fn fields_v1(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(kv) => {
                let kv: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect();
                format!("k:{{{}}}", kv.join(","))
            }
            Pe::Value(v) => format!("v:{v}"),
        }
    }

    /// As in conflict messages: `.name`, `[name="app"]`, `[="x"]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(name) => format!(".{name}"),
            Pe::Key(kv) => {
                let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", kv.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
        }
    }

    fn parse(s: &str) -> Option<Pe> {
        if let Some(name) = s.strip_prefix("f:") {
            Some(Pe::Field(name.to_string()))
        } else if let Some(keys) = s.strip_prefix("k:") {
            let keys: Object = serde_json::from_str(keys).ok()?;
            let mut kv: Vec<(String, String)> =
                keys.into_iter().map(|(k, v)| (k, v.to_string())).collect();
            kv.sort();
            Some(Pe::Key(kv))
        } else if let Some(value) = s.strip_prefix("v:") {
            let value: Value = serde_json::from_str(value).ok()?;
            Some(Pe::Value(value.to_string()))
        } else {
            None
        }
    }

    /// Whether this step selects `item` of a list.
    // Steps hold canonical JSON text (so that paths are ordered), hence the
    // comparison through `to_string`.
    #[allow(clippy::cmp_owned)]
    fn matches(&self, item: &Value) -> bool {
        match self {
            Pe::Key(kv) => kv
                .iter()
                .all(|(k, v)| item.get(k).is_some_and(|x| x.to_string() == *v)),
            Pe::Value(v) => item.to_string() == *v,
            Pe::Field(_) => false,
        }
    }
}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

fn has_prefix_in(set: &FSet, path: &[Pe]) -> bool {
    (1..=path.len()).any(|n| set.contains(&path[..n]))
}

fn owns_path_or_below(fields: &FSet, path: &[Pe]) -> bool {
    fields
        .range::<[Pe], _>((Bound::Included(path), Bound::Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(path))
}

#[derive(Default)]
struct Trie {
    member: bool,
    children: BTreeMap<Pe, Trie>,
}

fn encode_fields(set: &FSet) -> Value {
    let mut root = Trie::default();
    for path in set {
        let mut node = &mut root;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }
    trie_to_json(&root)
}

fn trie_to_json(node: &Trie) -> Value {
    let mut m = Object::new();
    if node.member && !node.children.is_empty() {
        m.insert(".".into(), Value::Object(Object::new()));
    }
    for (pe, child) in &node.children {
        m.insert(pe.fields_v1(), trie_to_json(child));
    }
    Value::Object(m)
}

fn decode_fields(v: &Value, path: &mut FPath, out: &mut FSet) {
    let Some(m) = v.as_object() else {
        return;
    };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m {
        if k == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        let Some(pe) = Pe::parse(k) else {
            continue;
        };
        path.push(pe);
        decode_fields(child, path, out);
        path.pop();
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FSet,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, subresource: Option<&str>) -> Entry {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: None,
            subresource: subresource.filter(|s| !s.is_empty()).map(str::to_string),
            fields: FSet::new(),
        }
    }

    fn decode(v: &Value) -> Option<Entry> {
        let m = v.as_object()?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let mut fields = FSet::new();
        if m.get("fieldsType").is_none_or(|t| t == "FieldsV1")
            && let Some(f) = m.get("fieldsV1")
        {
            decode_fields(f, &mut Vec::new(), &mut fields);
        }
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").unwrap_or_default(),
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    /// In the real server's field order.
    fn encode(&self) -> Value {
        let mut m = Object::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.clone()));
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            m.insert("time".into(), Value::String(time.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), encode_fields(&self.fields));
        if let Some(subresource) = &self.subresource {
            m.insert("subresource".into(), Value::String(subresource.clone()));
        }
        Value::Object(m)
    }

    /// The real manager identity: appliers are one manager across versions.
    fn is(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref().unwrap_or_default() == subresource.unwrap_or_default()
            && (operation == APPLY || self.api_version == api_version)
    }

    /// `printManager`.
    fn describe(&self) -> String {
        let mut s = Value::String(self.manager.clone()).to_string();
        if let Some(subresource) = &self.subresource {
            s.push_str(&format!(
                " with subresource {}",
                Value::String(subresource.clone())
            ));
        }
        if self.operation == UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn identity(&self) -> (&str, &str, &str, &str) {
        let version = if self.operation == APPLY {
            ""
        } else {
            &self.api_version
        };
        (
            &self.manager,
            &self.operation,
            version,
            self.subresource.as_deref().unwrap_or_default(),
        )
    }
}

fn decode_managed(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Entry::decode).collect())
        .unwrap_or_default()
}

fn remove_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

/// Writes the entries back, dropping empty ones, in the real server's order.
fn set_managed(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        let key = |e: &Entry| {
            (
                e.operation.clone(),
                e.time.clone().unwrap_or_default(),
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Object::new()));
    if let Value::Object(meta) = meta {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

/// Fields never tracked (the real `stripMetaManager`), exact paths.
fn is_stripped(path: &[Pe]) -> bool {
    match path {
        [Pe::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "metadata"),
        [Pe::Field(m), Pe::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "creationTimestamp"
                | "selfLink"
                | "uid"
                | "clusterName"
                | "generation"
                | "managedFields"
                | "resourceVersion"
        ),
        _ => false,
    }
}

/// Computes field sets of an object of one kind.
struct Tracker<'k> {
    kind: &'k str,
    /// The top-level field this endpoint does not own (the reset fields).
    ignored: Option<&'static str>,
}

impl<'k> Tracker<'k> {
    fn new(kind: &'k str, subresource: Option<&str>) -> Self {
        let ignored = match subresource.filter(|s| !s.is_empty()) {
            None if STATUS_SUBRESOURCE_KINDS.contains(&kind) => Some("status"),
            Some("status") => Some("spec"),
            _ => None,
        };
        Tracker { kind, ignored }
    }

    fn list_kind(&self, path: &[Pe]) -> ListKind {
        let names: Vec<&str> = path
            .iter()
            .filter_map(|pe| match pe {
                Pe::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect();
        list_kind(self.kind, &names)
    }

    fn keep(&self, path: &[Pe]) -> bool {
        let ignored =
            matches!((path.first(), self.ignored), (Some(Pe::Field(f)), Some(i)) if f == i);
        !ignored && !is_stripped(path)
    }

    /// The leaf fields and list items of `v` (nulls are not owned).
    fn collect(&self, v: &Value, path: &mut FPath, out: &mut FSet) {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(Pe::Field(k.clone()));
                    self.collect(child, path, out);
                    path.pop();
                }
            }
            Value::Array(items) if !items.is_empty() => match self.list_kind(path) {
                ListKind::Map(key) if keyed(items, key).is_some() => {
                    for item in items {
                        path.push(Pe::key(key, &item[key]));
                        out.insert(path.clone());
                        self.collect(item, path, out);
                        path.pop();
                    }
                }
                ListKind::Set => {
                    for item in items {
                        path.push(Pe::Value(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                _ => {
                    out.insert(path.clone());
                }
            },
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }

    /// The fields added or changed, and removed, from `old` to `new`.
    fn diff_objects(&self, old: &Value, new: &Value) -> (FSet, FSet) {
        let (mut changed, mut removed) = (FSet::new(), FSet::new());
        self.diff(
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut changed,
            &mut removed,
        );
        changed.retain(|p| self.keep(p));
        removed.retain(|p| self.keep(p));
        (changed, removed)
    }

    fn diff(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &mut FPath,
        changed: &mut FSet,
        removed: &mut FSet,
    ) {
        match (old, new) {
            (None, None) => {}
            (Some(_), None) => {
                if !path.is_empty() {
                    removed.insert(path.clone());
                }
            }
            (None, Some(n)) => self.collect(n, path, changed),
            (Some(o), Some(n)) if o == n => {}
            (Some(Value::Object(o)), Some(Value::Object(n))) => {
                for (k, ov) in o {
                    path.push(Pe::Field(k.clone()));
                    self.diff(Some(ov), n.get(k), path, changed, removed);
                    path.pop();
                }
                for (k, nv) in n {
                    if !o.contains_key(k) {
                        path.push(Pe::Field(k.clone()));
                        self.collect(nv, path, changed);
                        path.pop();
                    }
                }
            }
            (Some(Value::Array(o)), Some(Value::Array(n))) => match self.list_kind(path) {
                ListKind::Map(key) => match (keyed(o, key), keyed(n, key)) {
                    (Some(old_items), Some(new_items)) => {
                        for (k, ni) in &new_items {
                            path.push(Pe::Key(vec![(key.to_string(), k.clone())]));
                            match old_items.iter().find(|(ok, _)| ok == k) {
                                Some((_, oi)) => {
                                    self.diff(Some(oi), Some(ni), path, changed, removed)
                                }
                                None => {
                                    changed.insert(path.clone());
                                    self.collect(ni, path, changed);
                                }
                            }
                            path.pop();
                        }
                        for (k, _) in &old_items {
                            if !new_items.iter().any(|(nk, _)| nk == k) {
                                path.push(Pe::Key(vec![(key.to_string(), k.clone())]));
                                removed.insert(path.clone());
                                path.pop();
                            }
                        }
                    }
                    _ => {
                        changed.insert(path.clone());
                    }
                },
                ListKind::Set => {
                    for v in n.iter().filter(|v| !o.contains(v)) {
                        path.push(Pe::Value(v.to_string()));
                        changed.insert(path.clone());
                        path.pop();
                    }
                    for v in o.iter().filter(|v| !n.contains(v)) {
                        path.push(Pe::Value(v.to_string()));
                        removed.insert(path.clone());
                        path.pop();
                    }
                }
                ListKind::Atomic => {
                    changed.insert(path.clone());
                }
            },
            (Some(o), Some(n)) => {
                if o.is_object() || o.is_array() {
                    removed.insert(path.clone());
                }
                self.collect(n, path, changed);
            }
        }
    }
}

/// The items of an associative list with their key as JSON, if every item is
/// an object with the key.
fn keyed<'v>(items: &'v [Value], key: &str) -> Option<Vec<(String, &'v Value)>> {
    items
        .iter()
        .map(|item| match item.get(key) {
            Some(k) if item.is_object() && !k.is_null() => Some((k.to_string(), item)),
            _ => None,
        })
        .collect()
}

/// Moves the fields an `Update` (a non-apply patch, POST or PUT) changed to
/// its manager, and drops removed fields from every manager.
fn track_update(
    kind: &str,
    live: Option<&Value>,
    new: &mut Value,
    opts: &PatchOptions<'_>,
    now: &str,
) {
    let manager = opts
        .field_manager
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown");
    let tracker = Tracker::new(kind, opts.subresource);
    let mut live_obj = live
        .cloned()
        .unwrap_or_else(|| Value::Object(Object::new()));
    // Managed fields sent with the request replace the stored ones unless
    // empty, so a client unaware of them cannot wipe them by accident.
    let sent = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let mut entries = if sent {
        decode_managed(new)
    } else {
        decode_managed(&live_obj)
    };
    remove_managed_fields(&mut live_obj);
    remove_managed_fields(new);
    let (changed, removed) = tracker.diff_objects(&live_obj, new);
    for e in &mut entries {
        e.fields
            .retain(|p| !changed.contains(p) && !has_prefix_in(&removed, p));
    }
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let index = match entries
            .iter()
            .position(|e| e.is(manager, UPDATE, &api_version, opts.subresource))
        {
            Some(i) => i,
            None => {
                entries.push(Entry::new(manager, UPDATE, &api_version, opts.subresource));
                entries.len() - 1
            }
        };
        entries[index].fields.extend(changed);
        entries[index].time = Some(now.to_string());
    }
    set_managed(new, entries);
}

// ---------------------------------------------------------------------------
// Server-side apply

fn parse_apply_body(body: &[u8]) -> Result<Object, PatchError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_yaml::from_slice(body)
            .map_err(|e| bad_request(format!("error decoding YAML: {e}")))?
    };
    match value {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Object::new()),
        other => Err(bad_request(format!(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(&other)
        ))),
    }
}

/// `schema.GroupVersionKind.String()`: `apps/v1, Kind=Deployment`, `/v1, Kind=Service`.
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// Associative list items must carry their key, once.
fn validate_applied(kind: &str, v: &Value, path: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                validate_applied(kind, child, path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            let key = list_kind(kind, path).merge_key();
            let mut seen: Vec<&Value> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(key) = key {
                    let Some(value) = item.get(key).filter(|v| !v.is_null()) else {
                        return Err(format!(
                            ".{}: element {i}: associative list with keys has an element that omits key field {} (and doesn't have default value)",
                            path.join("."),
                            Value::String(key.into())
                        ));
                    };
                    if seen.contains(&value) {
                        return Err(format!(
                            ".{}: duplicate entries for key [{key}={value}]",
                            path.join(".")
                        ));
                    }
                    seen.push(value);
                }
                validate_applied(kind, item, path)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Merges the applied configuration into the live object: maps merge,
/// associative lists merge by key, sets union, the rest is replaced.
fn merge_applied(kind: &str, live: &mut Object, applied: &Object, path: &mut Vec<String>) {
    for (k, av) in applied {
        if av.is_null() {
            live.shift_remove(k);
            continue;
        }
        path.push(k.clone());
        let list = list_kind(kind, path);
        let merged = match (live.get_mut(k), av) {
            (Some(Value::Object(lo)), Value::Object(ao)) => {
                merge_applied(kind, lo, ao, path);
                true
            }
            (Some(Value::Array(la)), Value::Array(aa)) if list != ListKind::Atomic => {
                for item in aa {
                    match list {
                        ListKind::Map(key) => {
                            let value = item.get(key);
                            match (
                                la.iter_mut()
                                    .find(|li| li.is_object() && li.get(key) == value),
                                item,
                            ) {
                                (Some(Value::Object(lo)), Value::Object(io)) => {
                                    merge_applied(kind, lo, io, path)
                                }
                                _ => la.push(strip_nulls(item.clone())),
                            }
                        }
                        _ => {
                            if !la.contains(item) {
                                la.push(item.clone());
                            }
                        }
                    }
                }
                true
            }
            _ => false,
        };
        if !merged {
            live.insert(k.clone(), strip_nulls(av.clone()));
        }
        path.pop();
    }
}

fn navigate_mut<'v>(mut cur: &'v mut Value, path: &[Pe]) -> Option<&'v mut Value> {
    for pe in path {
        cur = match (cur, pe) {
            (Value::Object(m), Pe::Field(f)) => m.get_mut(f)?,
            (Value::Array(items), pe) => items.iter_mut().find(|item| pe.matches(item))?,
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_path(obj: &mut Value, path: &[Pe]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match (navigate_mut(obj, parent), last) {
        (Some(Value::Object(m)), Pe::Field(f)) => {
            m.shift_remove(f);
        }
        (Some(Value::Array(items)), pe) => items.retain(|item| !pe.matches(item)),
        _ => {}
    }
}

fn sorted_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_json(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_json).collect()),
        other => other.clone(),
    }
}

/// The real `lastAppliedUpdater`: `kubectl apply --server-side` keeps the
/// client-side annotation in sync when the object has one.
fn update_last_applied(merged: &mut Value, applied: &Object) {
    let Some(Value::Object(annotations)) = merged.pointer_mut("/metadata/annotations") else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED_ANNOTATION) {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata")
        && let Some(Value::Object(a)) = meta.get_mut("annotations")
    {
        a.shift_remove(LAST_APPLIED_ANNOTATION);
    }
    let text = sorted_json(&Value::Object(config)).to_string();
    annotations.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(text));
}

fn server_side_apply(
    kind: &str,
    live: Option<&Value>,
    body: &[u8],
    opts: &PatchOptions<'_>,
    now: &str,
) -> Result<Value, PatchError> {
    let manager = opts.field_manager.unwrap_or_default();
    let applied = parse_apply_body(body)?;
    let api_version = str_at(&applied, "apiVersion");
    let applied_kind = str_at(&applied, "kind");
    let (want_version, want_kind) = match live.and_then(Value::as_object) {
        Some(l) => (str_at(l, "apiVersion"), str_at(l, "kind")),
        None => (api_version, kind),
    };
    if api_version.is_empty() || api_version != want_version || applied_kind != want_kind {
        return Err(bad_request(format!(
            "invalid object type: {}",
            gvk_string(api_version, applied_kind)
        )));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(bad_request("metadata.managedFields must be nil"));
    }
    if let Err(e) = validate_applied(kind, &Value::Object(applied.clone()), &mut Vec::new()) {
        let meta = applied.get("metadata");
        let text = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        return Err(internal(format!(
            "failed to create typed patch object ({}/{}; {}): {e}",
            text("namespace"),
            text("name"),
            gvk_string(api_version, applied_kind)
        )));
    }

    let tracker = Tracker::new(kind, opts.subresource);
    let mut live_obj = live
        .cloned()
        .unwrap_or_else(|| Value::Object(Object::new()));
    let mut entries = decode_managed(&live_obj);
    remove_managed_fields(&mut live_obj);

    let mut applied_set = FSet::new();
    tracker.collect(
        &Value::Object(applied.clone()),
        &mut Vec::new(),
        &mut applied_set,
    );
    applied_set.retain(|p| tracker.keep(p));
    let own = entries
        .iter()
        .position(|e| e.is(manager, APPLY, api_version, opts.subresource));

    let mut merged = live_obj.clone();
    if let Value::Object(m) = &mut merged {
        merge_applied(kind, m, &applied, &mut Vec::new());
    }
    // Fields this applier set last time and omits now go, unless another
    // manager owns them (or something below them).
    if let Some(own) = own {
        for path in entries[own].fields.difference(&applied_set) {
            let shared = entries
                .iter()
                .enumerate()
                .any(|(i, e)| i != own && owns_path_or_below(&e.fields, path));
            if !shared {
                remove_path(&mut merged, path);
            }
        }
    }
    normalize_empty_metadata(&mut merged);

    let (changed, removed) = tracker.diff_objects(&live_obj, &merged);
    let mut conflicts: Vec<(usize, FieldConflict)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == own {
            continue;
        }
        for path in e.fields.intersection(&changed) {
            conflicts.push((
                i,
                FieldConflict {
                    manager: e.describe(),
                    field: path_string(path),
                },
            ));
        }
    }
    if !conflicts.is_empty() && !opts.force {
        conflicts.sort_by(|a, b| entries[a.0].identity().cmp(&entries[b.0].identity()));
        return Err(PatchError::ApplyConflict {
            conflicts: conflicts.into_iter().map(|(_, c)| c).collect(),
        });
    }
    // Forced conflicts move to the applier; removed fields leave every owner.
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != own {
            e.fields
                .retain(|p| !changed.contains(p) && !has_prefix_in(&removed, p));
        }
    }
    let object_changed = merged != live_obj;
    let index = match own {
        Some(i) => i,
        None => {
            entries.push(Entry::new(manager, APPLY, api_version, opts.subresource));
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    entry.fields = applied_set;
    entry.api_version = api_version.to_string();
    if object_changed || entry.time.is_none() {
        entry.time = Some(now.to_string());
    }
    if manager == "kubectl" {
        update_last_applied(&mut merged, &applied);
    }
    set_managed(&mut merged, entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    const NOW: &str = "2024-01-02T03:04:05Z";

    fn now() -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(1_704_164_645))
    }

    /// A patch of the main resource at the system clock.
    fn apply_patch(
        kind: &str,
        live: Option<&Value>,
        patch: &[u8],
        ty: PatchType,
        field_manager: Option<&str>,
        force: bool,
    ) -> Result<Value, PatchError> {
        let opts = PatchOptions {
            field_manager,
            force,
            ..PatchOptions::default()
        };
        apply_patch_with(kind, live, patch, ty, &opts)
    }

    fn opts(manager: &str) -> PatchOptions<'_> {
        PatchOptions {
            field_manager: Some(manager),
            now: now(),
            ..PatchOptions::default()
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "prod",
                "resourceVersion": "7",
                "labels": {"app": "web"},
                "finalizers": ["a.example/x"],
                "ownerReferences": [{"uid": "u1", "kind": "Canary", "name": "web"}]
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "app:1",
                                "args": ["--a", "--b"],
                                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                "ports": [{"containerPort": 8080, "name": "http"}]
                            },
                            {"name": "proxy", "image": "proxy:1"}
                        ],
                        "tolerations": [{"key": "k1", "operator": "Exists"}],
                        "volumes": [{"name": "data", "emptyDir": {}}]
                    }
                }
            }
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]
            }
        })
    }

    fn traffic_split() -> Value {
        json!({
            "apiVersion": "split.smi-spec.io/v1alpha2",
            "kind": "TrafficSplit",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"service": "web", "backends": [{"service": "web-primary", "weight": 100}]}
        })
    }

    fn run(kind: &str, live: &Value, patch: &Value, ty: PatchType) -> Result<Value, PatchError> {
        apply_patch_with(
            kind,
            Some(live),
            patch.to_string().as_bytes(),
            ty,
            &opts("test"),
        )
    }

    fn without_managed(mut v: Value) -> Value {
        remove_managed_fields(&mut v);
        v
    }

    fn fields_of(obj: &Value, manager: &str) -> Option<Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| e["fieldsV1"].clone())
    }

    /// A patch and the values expected at JSON pointers (`None`: absent).
    struct Case {
        name: &'static str,
        live: Value,
        patch: Value,
        expect: Vec<(&'static str, Option<Value>)>,
    }

    fn check_cases(ty: PatchType, cases: Vec<Case>) {
        for case in cases {
            let kind = case.live["kind"].as_str().unwrap();
            let result = run(kind, &case.live, &case.patch, ty)
                .unwrap_or_else(|e| panic!("{}: unexpected error {e:?}", case.name));
            for (pointer, want) in &case.expect {
                assert_eq!(
                    result.pointer(pointer),
                    want.as_ref(),
                    "{}: at {pointer} in {result:#}",
                    case.name
                );
            }
        }
    }

    const CONTAINERS: &str = "/spec/template/spec/containers";

    #[test]
    fn strategic_merge_patches_behave_as_the_api_server() {
        let cases = vec![
            Case {
                name: "kubectl set image merges containers by name and leaves the others alone",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "proxy"}],
                    "containers": [{"image": "app:2", "name": "app"}]
                }}}}),
                expect: vec![
                    (
                        "/spec/template/spec/containers/0/image",
                        Some(json!("app:2")),
                    ),
                    (
                        "/spec/template/spec/containers/0/env",
                        Some(
                            deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
                                .clone(),
                        ),
                    ),
                    (
                        "/spec/template/spec/containers/1",
                        Some(json!({"name": "proxy", "image": "proxy:1"})),
                    ),
                    ("/spec/template/spec/containers/2", None),
                    ("/spec/replicas", Some(json!(3))),
                ],
            },
            Case {
                name: "set image without $setElementOrder keeps the live order",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "proxy:2"}]}}}}),
                expect: vec![
                    ("/spec/template/spec/containers/0/name", Some(json!("app"))),
                    (
                        "/spec/template/spec/containers/1/image",
                        Some(json!("proxy:2")),
                    ),
                ],
            },
            Case {
                name: "a scale-style patch sets replicas only",
                live: deployment(),
                patch: json!({"spec": {"replicas": 5}}),
                expect: vec![
                    ("/spec/replicas", Some(json!(5))),
                    (
                        "/spec/template/spec/containers/0/image",
                        Some(json!("app:1")),
                    ),
                ],
            },
            Case {
                name: "env vars are added, replaced and deleted by name",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                    {"name": "B", "value": "two"},
                    {"name": "C", "value": "3"},
                    {"$patch": "delete", "name": "A"}
                ]}]}}}}),
                expect: vec![(
                    "/spec/template/spec/containers/0/env",
                    Some(json!([{"name": "B", "value": "two"}, {"name": "C", "value": "3"}])),
                )],
            },
            Case {
                name: "$patch: delete removes a container",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "proxy"}]}}}}),
                expect: vec![
                    ("/spec/template/spec/containers/0/name", Some(json!("app"))),
                    ("/spec/template/spec/containers/1", None),
                ],
            },
            Case {
                name: "$setElementOrder reorders a list",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "proxy"}, {"name": "app"}]
                }}}}),
                expect: vec![
                    (
                        "/spec/template/spec/containers/0/name",
                        Some(json!("proxy")),
                    ),
                    ("/spec/template/spec/containers/1/name", Some(json!("app"))),
                    (
                        "/spec/template/spec/containers/1/image",
                        Some(json!("app:1")),
                    ),
                ],
            },
            Case {
                name: "lists without a merge key are replaced",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {
                    "tolerations": [{"key": "k2", "operator": "Exists"}],
                    "containers": [{"name": "app", "args": ["--c"]}]
                }}}}),
                expect: vec![
                    (
                        "/spec/template/spec/tolerations",
                        Some(json!([{"key": "k2", "operator": "Exists"}])),
                    ),
                    (
                        "/spec/template/spec/containers/0/args",
                        Some(json!(["--c"])),
                    ),
                    (
                        "/spec/template/spec/containers/0/image",
                        Some(json!("app:1")),
                    ),
                ],
            },
            Case {
                name: "null deletes a map key",
                live: deployment(),
                patch: json!({"metadata": {"labels": {"app": null, "tier": "web"}}}),
                expect: vec![("/metadata/labels", Some(json!({"tier": "web"})))],
            },
            Case {
                name: "$patch: replace replaces a map",
                live: deployment(),
                patch: json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
                expect: vec![("/spec/strategy", Some(json!({"type": "Recreate"})))],
            },
            Case {
                name: "$patch: delete on a map empties it",
                live: deployment(),
                patch: json!({"spec": {"selector": {"$patch": "delete"}}}),
                expect: vec![("/spec/selector", Some(json!({})))],
            },
            Case {
                name: "a $patch: replace item replaces the list",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "new", "image": "new:1"},
                    {"$patch": "replace"}
                ]}}}}),
                expect: vec![(CONTAINERS, Some(json!([{"name": "new", "image": "new:1"}])))],
            },
            Case {
                name: "$retainKeys clears the keys it does not list",
                live: deployment(),
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                expect: vec![("/spec/strategy", Some(json!({"type": "Recreate"})))],
            },
            Case {
                name: "finalizers merge as a set and $deleteFromPrimitiveList removes",
                live: deployment(),
                patch: json!({"metadata": {
                    "finalizers": ["b.example/y"],
                    "$deleteFromPrimitiveList/finalizers": ["a.example/x"]
                }}),
                expect: vec![("/metadata/finalizers", Some(json!(["b.example/y"])))],
            },
            Case {
                name: "finalizers are not duplicated",
                live: deployment(),
                patch: json!({"metadata": {"finalizers": ["a.example/x", "b.example/y"]}}),
                expect: vec![(
                    "/metadata/finalizers",
                    Some(json!(["a.example/x", "b.example/y"])),
                )],
            },
            Case {
                name: "container ports merge by containerPort, new items first as on the real server",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "ports": [{"containerPort": 9090, "name": "metrics"}]}
                ]}}}}),
                expect: vec![(
                    "/spec/template/spec/containers/0/ports",
                    Some(
                        json!([{"containerPort": 9090, "name": "metrics"}, {"containerPort": 8080, "name": "http"}]),
                    ),
                )],
            },
            Case {
                name: "volumes merge by name",
                live: deployment(),
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
                    "volumes": [{"name": "cfg", "configMap": {"name": "web"}}]
                }}}}),
                expect: vec![(
                    "/spec/template/spec/volumes",
                    Some(
                        json!([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "web"}}]),
                    ),
                )],
            },
            Case {
                name: "ownerReferences merge by uid",
                live: deployment(),
                patch: json!({"metadata": {"ownerReferences": [{"uid": "u2", "kind": "Canary", "name": "other"}]}}),
                expect: vec![
                    ("/metadata/ownerReferences/0/uid", Some(json!("u2"))),
                    ("/metadata/ownerReferences/1/uid", Some(json!("u1"))),
                ],
            },
            Case {
                name: "kubectl apply (client side) sends the annotation, the order and deletions",
                live: deployment(),
                patch: json!({
                    "metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{\"kind\":\"Deployment\"}\n"}},
                    "spec": {
                        "strategy": {"$retainKeys": ["rollingUpdate", "type"], "rollingUpdate": {"maxSurge": 2}},
                        "template": {"spec": {
                            "$setElementOrder/containers": [{"name": "app"}],
                            "containers": [{"$patch": "delete", "name": "proxy"}, {"image": "app:3", "name": "app"}],
                            "tolerations": null
                        }}
                    }
                }),
                expect: vec![
                    (
                        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                        Some(json!("{\"kind\":\"Deployment\"}\n")),
                    ),
                    (
                        "/spec/template/spec/containers/0/image",
                        Some(json!("app:3")),
                    ),
                    ("/spec/template/spec/containers/1", None),
                    ("/spec/template/spec/tolerations", None),
                    (
                        "/spec/strategy",
                        Some(
                            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}),
                        ),
                    ),
                ],
            },
            Case {
                name: "directives in new values are dropped",
                live: service(),
                patch: json!({"metadata": {"labels": {"$patch": "replace", "app": "web"}}}),
                expect: vec![("/metadata/labels", Some(json!({"app": "web"})))],
            },
        ];
        check_cases(PatchType::StrategicMerge, cases);

        let cases = vec![Case {
            name: "Service ports merge by port",
            live: service(),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "name": "https"}]}}),
            expect: vec![(
                "/spec/ports",
                Some(
                    json!([{"name": "http", "port": 80, "targetPort": 9090}, {"port": 443, "name": "https"}]),
                ),
            )],
        }];
        check_cases(PatchType::StrategicMerge, cases);
    }

    #[test]
    fn strategic_merge_errors_carry_the_real_status() {
        let live = deployment();
        let cases: Vec<(&str, &[u8], u16, &str)> = vec![
            ("malformed JSON", b"{\"spec\":", 400, "BadRequest"),
            ("a list body", b"[]", 400, "BadRequest"),
            ("$retainKeys not a list", br#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#, 400, "BadRequest"),
            (
                "a key outside $retainKeys",
                br#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
                400,
                "BadRequest",
            ),
            ("$setElementOrder not a list", br#"{"spec":{"$setElementOrder/x":{}}}"#, 400, "BadRequest"),
            ("$setElementOrder without a field", br#"{"spec":{"$setElementOrder":[]}}"#, 400, "BadRequest"),
            (
                "a container without its merge key",
                br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
                500,
                "",
            ),
            ("$patch: merge on a map", br#"{"spec":{"$patch":"merge"}}"#, 500, ""),
            (
                "$patch: merge on a list item",
                br#"{"spec":{"template":{"spec":{"containers":[{"name":"app","$patch":"merge"}]}}}}"#,
                500,
                "",
            ),
            ("an unknown $patch", br#"{"spec":{"$patch":"frobnicate"}}"#, 500, ""),
        ];
        for (name, body, status, reason) in cases {
            let err = apply_patch(
                "Deployment",
                Some(&live),
                body,
                PatchType::StrategicMerge,
                None,
                false,
            )
            .expect_err(name);
            assert_eq!(
                (err.status_code(), err.reason()),
                (status, reason),
                "{name}: {err:?}"
            );
        }
        let err = apply_patch(
            "Deployment",
            Some(&live),
            br#"{"spec":{"$patch":"merge"}}"#,
            PatchType::StrategicMerge,
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown patch type: merge in map: map[$patch:merge]"
        );

        let mut no_finalizers = deployment();
        no_finalizers["metadata"]["finalizers"] = json!([]);
        let err = apply_patch(
            "Deployment",
            Some(&no_finalizers),
            br#"{"metadata":{"finalizers":[["a"]]}}"#,
            PatchType::StrategicMerge,
            None,
            false,
        )
        .unwrap_err();
        assert_eq!((err.status_code(), err.reason()), (422, "Invalid"));
    }

    #[test]
    fn strategic_merge_on_a_custom_resource_is_unsupported_media_type() {
        let err = apply_patch(
            "TrafficSplit",
            Some(&traffic_split()),
            b"{}",
            PatchType::StrategicMerge,
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            (err.status_code(), err.reason()),
            (415, "UnsupportedMediaType")
        );
        assert_eq!(
            err.to_string(),
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        assert!(
            PatchError::unsupported_media_type("Deployment")
                .to_string()
                .ends_with("application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml")
        );
    }

    #[test]
    fn json_patches_apply_in_order_and_fail_whole() {
        let cases = vec![
            Case {
                name: "add, replace and remove",
                live: deployment(),
                patch: json!([
                    {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:2"},
                    {"op": "remove", "path": "/spec/template/spec/containers/0/env/0"}
                ]),
                expect: vec![
                    ("/metadata/labels/tier", Some(json!("web"))),
                    (
                        "/spec/template/spec/containers/0/image",
                        Some(json!("app:2")),
                    ),
                    (
                        "/spec/template/spec/containers/0/env",
                        Some(json!([{"name": "B", "value": "2"}])),
                    ),
                ],
            },
            Case {
                name: "a passing test guards a replace",
                live: traffic_split(),
                patch: json!([
                    {"op": "test", "path": "/spec/backends/0/weight", "value": 100},
                    {"op": "replace", "path": "/spec/backends/0/weight", "value": 90}
                ]),
                expect: vec![("/spec/backends/0/weight", Some(json!(90)))],
            },
        ];
        check_cases(PatchType::Json, cases);

        let live = deployment();
        let cases: Vec<(&str, &[u8], u16)> = vec![
            (
                "a failing test",
                br#"[{"op":"test","path":"/spec/replicas","value":4},{"op":"replace","path":"/spec/replicas","value":5}]"#,
                422,
            ),
            ("a missing path", br#"[{"op":"remove","path":"/spec/paused"}]"#, 422),
            ("an unknown op", br#"[{"op":"frobnicate","path":"/spec"}]"#, 422),
            ("not JSON", b"[{", 400),
            ("not a list", br#"{"op":"add"}"#, 400),
            ("a list of strings", br#"["add"]"#, 400),
        ];
        for (name, body, status) in cases {
            let err = apply_patch(
                "Deployment",
                Some(&live),
                body,
                PatchType::Json,
                None,
                false,
            )
            .expect_err(name);
            assert_eq!(err.status_code(), status, "{name}: {err:?}");
            if status == 422 {
                assert_eq!(err.reason(), "Invalid");
                assert_eq!(
                    err.to_string(),
                    "the server rejected our request due to an error in our request"
                );
            }
        }
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let cases = vec![
            Case {
                name: "null deletes, maps merge, lists are replaced",
                live: deployment(),
                patch: json!({
                    "metadata": {"labels": {"app": null, "tier": "web"}},
                    "spec": {"replicas": 1, "template": {"spec": {"tolerations": []}}}
                }),
                expect: vec![
                    ("/metadata/labels", Some(json!({"tier": "web"}))),
                    ("/spec/replicas", Some(json!(1))),
                    ("/spec/template/spec/tolerations", Some(json!([]))),
                    (
                        "/spec/template/spec/containers/1/name",
                        Some(json!("proxy")),
                    ),
                ],
            },
            Case {
                name: "the whole backend list of a TrafficSplit is replaced",
                live: traffic_split(),
                patch: json!({"spec": {"backends": [
                    {"service": "web-primary", "weight": 90},
                    {"service": "web-canary", "weight": 10}
                ]}}),
                expect: vec![
                    ("/spec/backends/1/weight", Some(json!(10))),
                    ("/spec/service", Some(json!("web"))),
                ],
            },
            Case {
                name: "removing the last label removes the map",
                live: deployment(),
                patch: json!({"metadata": {"labels": {"app": null}}}),
                expect: vec![("/metadata/labels", None)],
            },
        ];
        check_cases(PatchType::Merge, cases);

        let live = traffic_split();
        for (name, body, status) in [
            ("malformed", "{", 400),
            ("a scalar", "5", 400),
            ("a list", "[1]", 422),
        ] {
            let body = body.as_bytes();
            let err = apply_patch(
                "TrafficSplit",
                Some(&live),
                body,
                PatchType::Merge,
                None,
                false,
            )
            .expect_err(name);
            assert_eq!(err.status_code(), status, "{name}: {err:?}");
        }
    }

    #[test]
    fn patches_cannot_change_the_identity_of_the_object() {
        let live = deployment();
        let err = |body: &str, ty| {
            apply_patch("Deployment", Some(&live), body.as_bytes(), ty, None, false).unwrap_err()
        };
        let e = err(r#"{"metadata":{"name":"other"}}"#, PatchType::Merge);
        assert_eq!(
            (e.status_code(), e.to_string().as_str()),
            (
                400,
                "the name of the object (other) does not match the name on the URL (web)"
            )
        );
        let e = err(
            r#"{"metadata":{"namespace":"dev"}}"#,
            PatchType::StrategicMerge,
        );
        assert_eq!(e.status_code(), 400);
        let e = err(r#"{"kind":"DaemonSet"}"#, PatchType::Merge);
        assert_eq!((e.status_code(), e.reason()), (422, "Invalid"));
        let e = err(
            r#"[{"op":"replace","path":"/apiVersion","value":"apps/v1beta1"}]"#,
            PatchType::Json,
        );
        assert_eq!(e.status_code(), 422);

        let ok = |body: &str, ty| {
            apply_patch("Deployment", Some(&live), body.as_bytes(), ty, None, false).unwrap()
        };
        let result = ok(
            r#"[{"op":"remove","path":"/apiVersion"},{"op":"remove","path":"/metadata/namespace"}]"#,
            PatchType::Json,
        );
        assert_eq!(result["apiVersion"], "apps/v1");
        assert_eq!(result["metadata"]["namespace"], "prod");
        // Strategic merge decodes into the type: a changed kind is ignored.
        let result = ok(r#"{"kind":"Service"}"#, PatchType::StrategicMerge);
        assert_eq!(result["kind"], "Deployment");
        // A resourceVersion in the patch stays, for the caller's precondition.
        let result = ok(
            r#"{"metadata":{"resourceVersion":"3"},"spec":{"replicas":1}}"#,
            PatchType::Merge,
        );
        assert_eq!(result["metadata"]["resourceVersion"], "3");
        let result = ok(r#"{"spec":{"replicas":1}}"#, PatchType::Merge);
        assert_eq!(result["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn only_apply_creates_an_absent_object() {
        let err =
            apply_patch("Deployment", None, b"{}", PatchType::Merge, None, false).unwrap_err();
        assert_eq!((err.status_code(), err.reason()), (404, "NotFound"));
    }

    #[test]
    fn content_types_map_to_patch_types() {
        let cases = [
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/json-patch+json; charset=utf-8",
                Some(PatchType::Json),
            ),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/json", None),
            ("application/apply-patch+cbor", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
    }

    const APPLIED: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: app:1
        ports:
        - containerPort: 8080
";

    fn apply(
        live: Option<&Value>,
        body: &str,
        manager: &str,
        force: bool,
    ) -> Result<Value, PatchError> {
        let opts = PatchOptions {
            force,
            ..opts(manager)
        };
        apply_patch_with("Deployment", live, body.as_bytes(), PatchType::Apply, &opts)
    }

    #[test]
    fn server_side_apply_creates_and_records_the_applier() {
        let created = apply(None, APPLIED, "canary", false).unwrap();
        let applied: Value = serde_yaml::from_str(APPLIED).unwrap();
        assert_eq!(without_managed(created.clone()), applied);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{
                "manager": "canary",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": NOW,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {"f:matchLabels": {"f:app": {}}},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {"k:{\"containerPort\":8080}": {".": {}, "f:containerPort": {}}}
                            }}}
                        }
                    }
                }
            }])
        );
    }

    #[test]
    fn server_side_apply_merges_into_the_live_object() {
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"tier":"web"}},
            "spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"},{"name":"log","image":"log:1"}]}}}}"#;
        let result = apply(Some(&deployment()), body, "canary", false).unwrap();
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "web", "tier": "web"})
        );
        assert_eq!(result["metadata"]["namespace"], "prod");
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:2");
        assert_eq!(containers[0]["env"][1]["value"], "2");
        assert_eq!(containers[1]["name"], "proxy");
        assert_eq!(containers[2], json!({"name": "log", "image": "log:1"}));
        assert_eq!(result["spec"]["replicas"], 3);
    }

    /// The Deployment as created by `kubectl create` (an Update manager).
    fn created_by_kubectl() -> Value {
        record_update("Deployment", None, deployment(), &opts("kubectl"))
    }

    #[test]
    fn server_side_apply_conflicts_with_another_manager() {
        let live = created_by_kubectl();
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}}"#;
        let err = apply(Some(&live), body, "canary", false).unwrap_err();
        assert_eq!((err.status_code(), err.reason()), (409, "Conflict"));
        assert_eq!(
            err.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#
        );
        assert_eq!(
            err.causes(),
            vec![StatusCause {
                reason: "FieldManagerConflict",
                message: r#"conflict with "kubectl" using apps/v1"#.into(),
                field: ".spec.replicas".into(),
            }]
        );

        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5,
            "template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}"#;
        let err = apply(Some(&live), body, "canary", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl\" using apps/v1:\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"app\"].image"
        );

        // The same value is no conflict: both own the field.
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}}"#;
        let shared = apply(Some(&live), body, "canary", false).unwrap();
        assert!(fields_of(&shared, "kubectl").unwrap()["f:spec"]["f:replicas"].is_object());
        assert_eq!(
            fields_of(&shared, "canary").unwrap(),
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn forced_apply_takes_the_field_over() {
        let live = created_by_kubectl();
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}}"#;
        let result = apply(Some(&live), body, "canary", true).unwrap();
        assert_eq!(result["spec"]["replicas"], 5);
        assert_eq!(
            fields_of(&result, "canary").unwrap(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        let kubectl = fields_of(&result, "kubectl").unwrap();
        assert!(kubectl["f:spec"].get("f:replicas").is_none());
        assert!(kubectl["f:spec"]["f:strategy"]["f:type"].is_object());
        // Now a patch by kubectl conflicts no more: it takes the field back.
        let scaled = apply_patch(
            "Deployment",
            Some(&result),
            br#"{"spec":{"replicas":2}}"#,
            PatchType::Merge,
            Some("kubectl"),
            false,
        )
        .unwrap();
        assert!(fields_of(&scaled, "canary").is_none());
        assert!(fields_of(&scaled, "kubectl").unwrap()["f:spec"]["f:replicas"].is_object());
    }

    #[test]
    fn server_side_apply_removes_fields_it_no_longer_applies() {
        let first = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"a":"1","b":"2"}}}"#;
        let second = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"a":"1"}}}"#;
        let live = apply(Some(&deployment()), first, "canary", false).unwrap();
        let result = apply(Some(&live), second, "canary", false).unwrap();
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "web", "a": "1"})
        );

        // A field that another manager took over stays.
        let taken = apply_patch(
            "Deployment",
            Some(&live),
            br#"{"metadata":{"labels":{"b":"3"}}}"#,
            PatchType::Merge,
            Some("ops"),
            false,
        )
        .unwrap();
        let result = apply(Some(&taken), second, "canary", false).unwrap();
        assert_eq!(result["metadata"]["labels"]["b"], "3");

        // A container dropped from the configuration goes.
        let with = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
            "spec":{"template":{"spec":{"containers":[{"name":"log","image":"log:1"}]}}}}"#;
        let without = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}"#;
        let live = apply(Some(&deployment()), with, "canary", false).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"][2]["name"],
            "log"
        );
        let result = apply(Some(&live), without, "canary", false).unwrap();
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(fields_of(&result, "canary").is_none());
    }

    #[test]
    fn server_side_apply_errors_carry_the_real_status() {
        let live = deployment();
        let cases: Vec<(&str, &str, u16, &str)> = vec![
            (
                "another version",
                r#"{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"web"}}"#,
                400,
                "invalid object type: apps/v1beta1, Kind=Deployment",
            ),
            (
                "no type",
                r#"{"metadata":{"name":"web"}}"#,
                400,
                "invalid object type: /, Kind=",
            ),
            (
                "managedFields in the body",
                r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","managedFields":[]}}"#,
                400,
                "metadata.managedFields must be nil",
            ),
            (
                "a rename",
                r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"}}"#,
                400,
                "the name of the object (api) does not match the name on the URL (web)",
            ),
            (
                "a container without a name",
                r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
                500,
                "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)",
            ),
        ];
        for (name, body, status, message) in cases {
            let err = apply(Some(&live), body, "canary", false).expect_err(name);
            assert_eq!(
                (err.status_code(), err.to_string().as_str()),
                (status, message),
                "{name}"
            );
        }
        let err = apply(Some(&live), "spec: [\n", "canary", false).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(
            err.to_string().starts_with("error decoding YAML: "),
            "{err}"
        );
        let err = apply(Some(&live), "- a\n", "canary", false).unwrap_err();
        assert_eq!(err.status_code(), 400);

        let err = apply_patch(
            "Deployment",
            Some(&live),
            b"{}",
            PatchType::Apply,
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            (err.status_code(), err.to_string().as_str()),
            (
                422,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
            )
        );
        let err = apply_patch(
            "Deployment",
            Some(&live),
            b"{}",
            PatchType::Merge,
            None,
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
    }

    #[test]
    fn kubectl_server_side_apply_keeps_the_last_applied_annotation() {
        let mut live = deployment();
        live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{}"});
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}}"#;
        let result = apply(Some(&live), body, "kubectl", false).unwrap();
        assert_eq!(
            result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}}"#
        );
    }

    #[test]
    fn patches_record_their_manager_as_an_update() {
        let result = run(
            "Deployment",
            &deployment(),
            &json!({"spec": {"replicas": 4}}),
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(
            result["metadata"]["managedFields"],
            json!([{
                "manager": "test",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": NOW,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}
            }])
        );
        // A patch that changes nothing records nothing.
        let result = run(
            "Deployment",
            &deployment(),
            &json!({"spec": {"replicas": 3}}),
            PatchType::Merge,
        )
        .unwrap();
        assert!(result["metadata"].get("managedFields").is_none());
        // Status written through the main resource is not owned there.
        let result = run(
            "Deployment",
            &deployment(),
            &json!({"status": {"replicas": 3}}),
            PatchType::Merge,
        )
        .unwrap();
        assert!(result["metadata"].get("managedFields").is_none());
        // Managed fields can be cleared as on the real server.
        let live = created_by_kubectl();
        let result = run(
            "Deployment",
            &live,
            &json!({"metadata": {"managedFields": [{}]}}),
            PatchType::Merge,
        )
        .unwrap();
        assert!(result["metadata"].get("managedFields").is_none());
        assert_eq!(
            manager_or_user_agent(None, Some("kubectl/v1.30.0 (linux/amd64)")),
            "kubectl"
        );
        assert_eq!(manager_or_user_agent(None, None), "unknown");
    }
}
