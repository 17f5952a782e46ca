//! The object store of the simulated API server: one global resourceVersion
//! counter, objects by kind/namespace/name, a bounded history of changes for
//! watches (older versions answer 410 Gone, as after an etcd compaction) and
//! consistent snapshots for paginated lists.
//!
//! All Kubernetes write semantics live here, not in the HTTP layer, so that
//! the sim's own controllers writing through [`Store`] get the same
//! treatment as clients over HTTP: uid/creationTimestamp/generation,
//! resourceVersion preconditions (409), the status subresource split,
//! defaults, typed decoding, validation (422), finalizers, owner-reference
//! garbage collection and namespace lifecycle.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::kinds::{self, FieldError, KindInfo, Kinds};
use crate::patch as engine;

// ---------------------------------------------------------------------------
// Errors: the `Status` objects of the real server.
// ---------------------------------------------------------------------------

/// An API error, rendered over HTTP as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (`name`, `group`, `kind`, `causes`...).
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn resource_details(k: &KindInfo, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !k.group.is_empty() {
        d.insert("group".into(), json!(k.group));
    }
    d.insert("kind".into(), json!(k.plural));
    Value::Object(d)
}

impl ApiError {
    fn new(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details,
        }
    }

    pub fn not_found(k: &KindInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!(
                "{} {} not found",
                k.qualified_resource(),
                kinds::go_quote(name)
            ),
            Some(resource_details(k, name)),
        )
    }

    /// 404 for a path the server does not serve at all.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    pub fn already_exists(k: &KindInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} {} already exists",
                k.qualified_resource(),
                kinds::go_quote(name)
            ),
            Some(resource_details(k, name)),
        )
    }

    /// The stale-write 409 of an update or patch.
    pub fn conflict(k: &KindInfo, name: &str) -> Self {
        Self::conflict_because(
            k,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_because(k: &KindInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: {why}",
                k.qualified_resource(),
                kinds::go_quote(name)
            ),
            Some(resource_details(k, name)),
        )
    }

    pub fn invalid(k: &KindInfo, name: &str, errs: &[FieldError]) -> Self {
        let list = if errs.len() == 1 {
            errs[0].to_string()
        } else {
            format!(
                "[{}]",
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        let mut details = serde_json::Map::new();
        if !name.is_empty() {
            details.insert("name".into(), json!(name));
        }
        if !k.group.is_empty() {
            details.insert("group".into(), json!(k.group));
        }
        details.insert("kind".into(), json!(k.kind));
        details.insert("causes".into(), json!(causes));
        Self::new(
            422,
            "Invalid",
            format!(
                "{} {} is invalid: {list}",
                k.qualified_kind(),
                kinds::go_quote(name)
            ),
            Some(Value::Object(details)),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    pub fn forbidden(k: &KindInfo, name: &str, message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message, Some(resource_details(k, name)))
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message, Some(json!({})))
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message, Some(json!({})))
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    pub fn internal(message: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            Some(json!({"retryAfterSeconds": retry_after})),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message, None)
    }

    pub fn timeout(message: impl Into<String>, retry_after: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            message,
            Some(json!({"retryAfterSeconds": retry_after})),
        )
    }

    /// Seconds for a `Retry-After` header (429, 504), from the details.
    pub fn retry_after(&self) -> Option<u64> {
        self.details.as_ref()?.get("retryAfterSeconds")?.as_u64()
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        // An unknown reason is omitted, as Go's `omitempty` does.
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

// ---------------------------------------------------------------------------
// Selectors.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

fn valid_label_key(k: &str) -> bool {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && k.rsplit_once('/')
            .is_none_or(|(p, _)| kinds::is_dns1123_subdomain(p))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for raw in split_top_level(s) {
            let part = raw.trim();
            let bad =
                || format!("unable to parse requirement: found '{part}', expected: identifier");
            let key_ok = |k: &str| -> Result<String, String> {
                let k = k.trim();
                if valid_label_key(k) {
                    Ok(k.to_string())
                } else {
                    Err(format!(
                        "unable to parse requirement: invalid label key {}",
                        kinds::go_quote(k)
                    ))
                }
            };
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let rest = rest.trim();
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!("unable to parse requirement: found '{rest}', expected: '('")
                    })?;
                Ok(inner
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect())
            };
            if part.is_empty() {
                return Err(bad());
            }
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(key_ok(k)?));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelReq::NotEq(key_ok(k)?, v.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(LabelReq::Eq(key_ok(k)?, v.trim().to_string()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(LabelReq::Eq(key_ok(k)?, v.trim().to_string()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(LabelReq::NotIn(key_ok(k)?, set(rest)?));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(LabelReq::In(key_ok(k)?, set(rest)?));
            } else if part.contains(' ') || part.contains('(') {
                return Err(bad());
            } else {
                reqs.push(LabelReq::Exists(key_ok(part)?));
            }
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The fields a kind can be selected on, besides `metadata.name` and
/// `metadata.namespace`.
fn extra_fields(k: &KindInfo) -> &'static [&'static str] {
    match (k.group, k.kind) {
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ],
        ("", "Secret") => &["type"],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "Namespace") => &["status.phase"],
        _ => &[],
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    if path == "source" {
        return obj["source"]["component"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    let mut cur = obj;
    for seg in path.split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    pub fn parse(k: &KindInfo, s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in s.split(',') {
            let part = part.trim();
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !extra_fields(k).contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(f, eq, v)| (field_value(obj, f) == *v) == *eq)
    }
}

/// Label and field selectors together.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

// ---------------------------------------------------------------------------
// Changes and watches.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as kept in the watch history.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource_version: u64,
    pub kind: &'static KindInfo,
    pub namespace: String,
    pub name: String,
    pub change: ChangeType,
    /// The object after the change (for a deletion: its last state, carrying
    /// the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, if it existed.
    pub old: Option<Value>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// `resourceVersion` unset or "0": synthetic ADDED events for the current
    /// state, then changes.
    Current,
    /// Changes after this resourceVersion.
    After(u64),
}

/// A started watch: the backlog to send first, then the live receiver.
pub struct WatchFeed {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store's resourceVersion when the watch started.
    pub started_at: u64,
}

// ---------------------------------------------------------------------------
// Write options and outcomes.
// ---------------------------------------------------------------------------

/// `fieldValidation` of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The server default: unknown fields are dropped with a warning.
    #[default]
    Warn,
    Strict,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: everything but persisting.
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    /// The keys of the request body in document order, for the duplicate
    /// fields that `fieldValidation` reports (empty: none known).
    pub body_keys: Vec<kinds::BodyKey>,
    /// The write is a patch: the body's duplicates are listed before the
    /// unknown fields of the patched object, and the error is not prefixed
    /// with the kind.
    pub patch: bool,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub object: Value,
    /// `Warning` headers for the client (unknown fields).
    pub warnings: Vec<String>,
    /// Whether the object was created (201 rather than 200).
    pub created: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub propagation: Propagation,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// Removed now; the last state of the object.
    Deleted(Value),
    /// Marked for deletion (finalizers pending); the object as it stands.
    Pending(Value),
}

// ---------------------------------------------------------------------------
// The store.
// ---------------------------------------------------------------------------

type KindKey = (&'static str, &'static str);
type ObjKey = (String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<KindKey, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    /// Every change with a resourceVersion above this is in `history`.
    compacted: u64,
    history_limit: usize,
    next_ip: u32,
    next_node_port: u32,
}

/// The objects of one simulated cluster. Cheap to share (`Arc<Store>`).
pub struct Store {
    kinds: Kinds,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    created: String,
}

fn format_uid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub fn new_uid() -> String {
    format_uid(fastrand::u64(..), fastrand::u64(..))
}

/// A uid derived from a name (for fixed objects such as CRDs).
pub fn stable_uid(name: &str) -> String {
    let h = fnv64(name);
    format_uid(h, h.rotate_left(17) ^ 0x5bd1_e995)
}

/// FNV-1a, 64 bits: a stable hash for the ids the sim derives from names.
pub(crate) fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Now as the API's `metav1.Time`.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBADAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwprdWJlcm5l\ndGVzMB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAwMDAwMFowFTETMBEGA1UEAxMK\na3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHNpbXVsYXRlZCBj\n-----END CERTIFICATE-----\n";

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

fn parse_rv(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// The object with everything but `metadata` and (if `status_apart`) `status`.
fn spec_part(obj: &Value, status_apart: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_apart {
            m.remove("status");
        }
    }
    o
}

/// The object without its resourceVersion and without the timestamps of
/// its managedFields: a write that changes nothing else is a no-op, as on
/// the real server.
fn without_volatile_meta(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    o
}

fn tracking<'a>(opts: &'a WriteOptions, sub: Subresource) -> engine::PatchOptions<'a> {
    engine::PatchOptions {
        field_manager: opts.field_manager.as_deref(),
        subresource: (sub == Subresource::Status).then_some("status"),
        ..Default::default()
    }
}

impl Store {
    pub fn new(kinds: Kinds) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let store = Self {
            kinds,
            inner: Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                history_limit: 10_000,
                next_ip: 10,
                next_node_port: 0,
            }),
            tx,
            created: now_rfc3339(),
        };
        for ns in DEFAULT_NAMESPACES {
            store
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .expect("default namespace");
        }
        store
            .create(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }))
            .expect("kubernetes service");
        store
    }

    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Resolves `apiVersion` + `kind` to a served kind (404 otherwise).
    pub fn kind(&self, api_version: &str, kind: &str) -> Result<&'static KindInfo, ApiError> {
        self.kinds
            .by_kind(api_version, kind)
            .ok_or_else(ApiError::no_route)
    }

    /// Sets how many changes the watch history keeps (default 10 000).
    pub fn set_history_limit(&self, n: usize) {
        let mut g = self.lock();
        g.history_limit = n.max(1);
        g.trim();
    }

    /// Forgets the whole watch history, as an etcd compaction would: every
    /// watch or continue token from before now answers 410 Gone.
    pub fn compact(&self) {
        let mut g = self.lock();
        g.compacted = g.rv;
        g.history.clear();
    }

    /// Every committed change, for controllers that react to writes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    // -- reads -------------------------------------------------------------

    fn crd_list(&self) -> Vec<Value> {
        self.kinds.crd_objects(&self.created)
    }

    /// One object, converted to `version`.
    pub fn get_in(
        &self,
        k: &'static KindInfo,
        version: &str,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        if k.read_only {
            return self
                .crd_list()
                .into_iter()
                .find(|o| meta_str(o, "name") == name)
                .ok_or_else(|| ApiError::not_found(k, name));
        }
        let g = self.lock();
        g.get(kinds::storage_kind(k), ns, name)
            .map(|o| convert(k, version, o.clone()))
            .ok_or_else(|| ApiError::not_found(k, name))
    }

    /// Objects of a kind (all namespaces if `ns` is `None`), in key order,
    /// optionally as they were at an older resourceVersion, with the
    /// resourceVersion of the list.
    pub fn list_in(
        &self,
        k: &'static KindInfo,
        version: &str,
        ns: Option<&str>,
        at: Option<u64>,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        if k.read_only {
            let rv = self.resource_version();
            return Ok((self.crd_list(), rv));
        }
        let g = self.lock();
        let sk = kinds::storage_kind(k);
        let items = match at {
            None => g
                .kind_map(sk)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            Some(rv) => g.snapshot(sk, rv)?,
        };
        let items = items
            .into_iter()
            .filter(|o| ns.is_none_or(|n| meta_str(o, "namespace") == n))
            .map(|o| convert(k, version, o))
            .collect();
        Ok((items, at.unwrap_or(g.rv)))
    }

    /// Every stored object of every kind served, each in its preferred
    /// version: what a test reads to check what a run left in the cluster.
    pub fn all_objects(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for k in self.kinds().served() {
            if k.read_only {
                continue;
            }
            let version = k.versions.first().copied().unwrap_or("v1");
            if let Ok((items, _)) = self.list_in(k, version, None, None) {
                out.extend(items);
            }
        }
        out
    }

    /// Starts a watch on a kind.
    pub fn watch_in(
        &self,
        k: &'static KindInfo,
        ns: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchFeed, ApiError> {
        let g = self.lock();
        let live = self.tx.subscribe();
        let in_ns = |c: &Change| ns.is_none_or(|n| c.namespace == n);
        let backlog = match start {
            WatchStart::Current => {
                let mut out = Vec::new();
                if k.read_only {
                    for o in self.crd_list() {
                        out.push(Arc::new(Change {
                            resource_version: 1,
                            kind: k,
                            namespace: String::new(),
                            name: meta_str(&o, "name").to_string(),
                            change: ChangeType::Added,
                            object: o,
                            old: None,
                        }));
                    }
                }
                for ((n, name), o) in g.kind_map(kinds::storage_kind(k)).into_iter().flatten() {
                    if ns.is_none_or(|x| x == n) {
                        out.push(Arc::new(Change {
                            resource_version: parse_rv(meta_str(o, "resourceVersion")).unwrap_or(0),
                            kind: k,
                            namespace: n.clone(),
                            name: name.clone(),
                            change: ChangeType::Added,
                            object: o.clone(),
                            old: None,
                        }));
                    }
                }
                out
            }
            WatchStart::After(rv) => {
                if rv < g.compacted {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        g.compacted + 1
                    )));
                }
                if rv > g.rv {
                    return Err(too_large_rv(rv, g.rv));
                }
                g.history
                    .iter()
                    .filter(|c| {
                        c.resource_version > rv && kinds::same_storage(c.kind, k) && in_ns(c)
                    })
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchFeed {
            backlog,
            live,
            started_at: g.rv,
        })
    }

    // -- writes ------------------------------------------------------------

    /// Creates an object in `ns` ("" for cluster-scoped kinds).
    pub fn create_in(
        &self,
        k: &'static KindInfo,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, ApiError> {
        if k.read_only {
            return Err(forbidden_write(k, "create", ""));
        }
        let obj = to_storage(k, obj)?;
        let mut g = self.lock();
        g.create(kinds::storage_kind(k), ns, obj, opts, &self.tx, true)
            .map_err(|e| served_error(k, e))
    }

    /// Replaces an object (PUT), or its status.
    pub fn update_in(
        &self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, ApiError> {
        if k.read_only {
            return Err(forbidden_write(k, "update", name));
        }
        let obj = to_storage(k, obj)?;
        let served = k;
        let k = kinds::storage_kind(k);
        let mut g = self.lock();
        let Some(old) = g.get(k, ns, name).cloned() else {
            if k.create_on_update && sub == Subresource::Main {
                return g
                    .create(k, ns, obj, opts, &self.tx, true)
                    .map_err(|e| served_error(served, e));
            }
            return Err(ApiError::not_found(served, name));
        };
        g.update(k, ns, name, old, obj, sub, opts, &self.tx, true)
            .map_err(|e| served_error(served, e))
    }

    /// Read-modify-write under the store lock: `f` gets the live object
    /// (`None` if missing) and returns the new one. A `None` live object is
    /// created from the result (server-side apply); otherwise the result is
    /// an update whose `metadata.resourceVersion`, if changed by `f`, is a
    /// precondition like a PUT's.
    pub fn patch_in(
        &self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        sub: Subresource,
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<WriteOutcome, ApiError> {
        if k.read_only {
            return Err(forbidden_write(k, "patch", name));
        }
        let served = k;
        let k = kinds::storage_kind(k);
        let f = |live: Option<&Value>| f(live).and_then(|o| to_storage(served, o));
        let mut g = self.lock();
        match g.get(k, ns, name).cloned() {
            None => {
                let obj = f(None)?;
                let mut out = g
                    .create(k, ns, obj, opts, &self.tx, false)
                    .map_err(|e| served_error(served, e))?;
                out.created = true;
                Ok(out)
            }
            Some(old) => {
                let new = f(Some(&old))?;
                g.update(k, ns, name, old, new, sub, opts, &self.tx, false)
                    .map_err(|e| served_error(served, e))
            }
        }
    }

    pub fn delete_in(
        &self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        if k.read_only {
            return Err(forbidden_write(k, "delete", name));
        }
        let mut g = self.lock();
        g.delete(kinds::storage_kind(k), ns, name, opts, &self.tx)
            .map_err(|e| served_error(k, e))
    }

    // -- convenience for controllers and tests ---------------------------

    /// One object by `apiVersion`/`kind` ("" namespace for cluster-scoped).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let k = self.kind(api_version, kind).ok()?;
        let (_, version) = kinds::split_api_version(api_version);
        self.get_in(k, version, namespace, name).ok()
    }

    /// Objects of a kind, in one namespace or all.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Ok(k) = self.kind(api_version, kind) else {
            return Vec::new();
        };
        let (_, version) = kinds::split_api_version(api_version);
        self.list_in(k, version, namespace, None)
            .map(|(v, _)| v)
            .unwrap_or_default()
    }

    /// The objects of a kind in namespace `namespace` that `keep` accepts.
    /// Only those are copied out: what a controller reads to find the few
    /// objects it owns among many.
    pub fn list_where(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let Ok(k) = self.kind(api_version, kind) else {
            return Vec::new();
        };
        if k.read_only {
            return Vec::new();
        }
        let (_, version) = kinds::split_api_version(api_version);
        let g = self.lock();
        let Some(m) = g.kind_map(kinds::storage_kind(k)) else {
            return Vec::new();
        };
        m.range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .filter(|(_, o)| keep(o))
            .map(|(_, o)| convert(k, version, o.clone()))
            .collect()
    }

    fn kind_of(&self, obj: &Value) -> Result<(&'static KindInfo, String), ApiError> {
        let k = self.kind(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
        )?;
        Ok((k, meta_str(obj, "namespace").to_string()))
    }

    /// Creates an object (kind and namespace from the object itself).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let (k, ns) = self.kind_of(&obj)?;
        self.create_in(k, &ns, obj, &controller_write())
            .map(|o| o.object)
    }

    /// Atomically changes an object (never a conflict): `f` edits a copy of
    /// the live object, which is then written as an update of `sub`.
    pub fn modify(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        sub: Subresource,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let k = self.kind(api_version, kind)?;
        let opts = controller_write();
        self.patch_in(k, namespace, name, sub, &opts, |live| {
            let live = live.ok_or_else(|| ApiError::not_found(k, name))?;
            let mut o = live.clone();
            f(&mut o);
            Ok(engine::record_update(
                k.kind,
                Some(live),
                o,
                &tracking(&opts, sub),
            ))
        })
        .map(|o| o.object)
    }
}

/// How the sim's own controllers (and other direct users of [`Store`])
/// write: under the field manager of the real controller manager.
pub fn controller_write() -> WriteOptions {
    WriteOptions {
        field_manager: Some("kube-controller-manager".to_string()),
        ..Default::default()
    }
}

fn forbidden_write(k: &KindInfo, verb: &str, name: &str) -> ApiError {
    let what = if name.is_empty() {
        k.qualified_resource()
    } else {
        format!("{} {}", k.qualified_resource(), kinds::go_quote(name))
    };
    ApiError::forbidden(
        k,
        name,
        format!(
            "{what} is forbidden: User \"sim\" cannot {verb} resource \"{}\" in API group \"{}\" at the cluster scope",
            k.plural, k.group
        ),
    )
}

/// An error about a stored object, named as the kind the client asked for.
fn served_error(k: &'static KindInfo, mut e: ApiError) -> ApiError {
    let sk = kinds::storage_kind(k);
    if !std::ptr::eq(sk, k) {
        e.message = e
            .message
            .replacen(&sk.qualified_resource(), &k.qualified_resource(), 1)
            .replacen(&sk.qualified_kind(), &k.qualified_kind(), 1);
        if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut)
            && d.contains_key("kind")
        {
            d.insert("group".into(), json!(k.group));
        }
    }
    e
}

/// An object of a served kind in the form its storage keeps (events.k8s.io
/// Events become core Events, after their own validation).
fn to_storage(k: &'static KindInfo, obj: Value) -> Result<Value, ApiError> {
    if std::ptr::eq(kinds::storage_kind(k), k) || obj["apiVersion"] == "v1" {
        return Ok(obj);
    }
    let errs = kinds::validate_new_event(&obj);
    if !errs.is_empty() {
        let name = meta_str(&obj, "name").to_string();
        return Err(ApiError::invalid(k, &name, &errs));
    }
    Ok(kinds::event_to_core(obj))
}

fn too_large_rv(asked: u64, current: u64) -> ApiError {
    ApiError::timeout(
        format!("Timeout: Too large resource version: {asked}, current: {current}"),
        1,
    )
}

/// Converts a stored object to a served version (conversion strategy None:
/// only `apiVersion` changes).
pub fn convert(k: &KindInfo, version: &str, mut obj: Value) -> Value {
    if (k.group, k.kind) == ("events.k8s.io", "Event") && obj["apiVersion"] == "v1" {
        return kinds::event_from_core(obj);
    }
    if k.serves_version(version) && k.versions.len() > 1 {
        obj["apiVersion"] = json!(kinds::group_version(k.group, version));
    }
    obj
}

impl Inner {
    fn kind_map(&self, k: &KindInfo) -> Option<&BTreeMap<ObjKey, Value>> {
        self.objects.get(&(k.group, k.plural))
    }

    fn get(&self, k: &KindInfo, ns: &str, name: &str) -> Option<&Value> {
        self.kind_map(k)?.get(&(ns.to_string(), name.to_string()))
    }

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.resource_version;
            }
        }
    }

    /// The objects of a kind as they were at `rv`.
    fn snapshot(&self, k: &'static KindInfo, rv: u64) -> Result<Vec<Value>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.compacted + 1
            )));
        }
        if rv > self.rv {
            return Err(too_large_rv(rv, self.rv));
        }
        let mut state: BTreeMap<ObjKey, Value> = self.kind_map(k).cloned().unwrap_or_default();
        for c in self.history.iter().rev() {
            if c.resource_version <= rv {
                break;
            }
            if !kinds::same_storage(c.kind, k) {
                continue;
            }
            let key = (c.namespace.clone(), c.name.clone());
            match &c.old {
                Some(o) => {
                    state.insert(key, o.clone());
                }
                None => {
                    state.remove(&key);
                }
            }
        }
        Ok(state.into_values().collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        change: ChangeType,
        mut object: Value,
        old: Option<Value>,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let map = self.objects.entry((k.group, k.plural)).or_default();
        let key = (ns.to_string(), name.to_string());
        if change == ChangeType::Deleted {
            map.remove(&key);
        } else {
            map.insert(key, object.clone());
        }
        let c = Arc::new(Change {
            resource_version: self.rv,
            kind: k,
            namespace: ns.to_string(),
            name: name.to_string(),
            change,
            object: object.clone(),
            old,
        });
        self.history.push_back(c.clone());
        self.trim();
        let _ = tx.send(c);
        object
    }

    /// NodePort and LoadBalancer Services get a node port (30000-32767) per
    /// port; one a client leaves out on update is carried over.
    fn allocate_node_ports(&mut self, svc: &mut Value, old: Option<&Value>, dry_run: bool) {
        let typ = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if typ != "NodePort" && typ != "LoadBalancer" {
            return;
        }
        let Some(ports) = svc["spec"]["ports"].as_array_mut() else {
            return;
        };
        for p in ports {
            if !p["nodePort"].is_null() || !p.is_object() {
                continue;
            }
            let carried = old.and_then(|o| {
                o["spec"]["ports"].as_array()?.iter().find_map(|op| {
                    (op["port"] == p["port"]
                        && op["protocol"].as_str().unwrap_or("TCP")
                            == p["protocol"].as_str().unwrap_or("TCP"))
                    .then(|| op["nodePort"].as_i64())
                    .flatten()
                })
            });
            let port = carried.unwrap_or_else(|| {
                if dry_run {
                    return 32767;
                }
                let n = 30000 + i64::from(self.next_node_port % 2768);
                self.next_node_port += 1;
                n
            });
            p["nodePort"] = json!(port);
        }
    }

    fn allocate_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip += 1;
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    /// Defaults, typed decoding, validation: the common tail of every write.
    fn finish(
        &self,
        k: &'static KindInfo,
        mut obj: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let name = meta_str(&obj, "name").to_string();
        kinds::apply_defaults(k, &mut obj);
        let decoded = kinds::decode(k, &obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {} cannot be handled as a {}: {e}",
                k.kind,
                kinds::go_quote(k.preferred_version()),
                k.kind
            ))
        })?;
        let mut warnings = Vec::new();
        let problems = kinds::strict_problems(&opts.body_keys, &decoded.unknown_fields, opts.patch);
        if !problems.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict if opts.patch => {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        problems.join(", ")
                    )));
                }
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version {} cannot be handled as a {}: strict decoding error: {}",
                        k.kind,
                        kinds::go_quote(k.preferred_version()),
                        k.kind,
                        problems.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings = problems,
                FieldValidation::Ignore => {}
            }
        }
        let obj = decoded.object;
        let errs = kinds::validate(k, &obj, old);
        if !errs.is_empty() {
            return Err(ApiError::invalid(k, &name, &errs));
        }
        Ok((obj, warnings))
    }

    fn check_type(k: &KindInfo, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is not a JSON object",
            ));
        }
        let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        if !av.is_empty() {
            let (g, v) = kinds::split_api_version(&av);
            if g != k.group || !k.serves_version(v) {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    k.api_version()
                )));
            }
        }
        if !kind.is_empty() && kind != k.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                k.kind
            )));
        }
        // Stored in the preferred (storage) version.
        obj["apiVersion"] = json!(k.api_version());
        obj["kind"] = json!(k.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        Ok(())
    }

    fn check_namespace(&self, k: &KindInfo, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
        let body_ns = meta_str(obj, "namespace").to_string();
        if k.namespaced {
            if ns.is_empty() {
                return Err(ApiError::bad_request(
                    "the server could not find the requested resource",
                ));
            }
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        Ok(())
    }

    fn create(
        &mut self,
        k: &'static KindInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        tx: &broadcast::Sender<Arc<Change>>,
        track: bool,
    ) -> Result<WriteOutcome, ApiError> {
        Self::check_type(k, &mut obj)?;
        self.check_namespace(k, ns, &mut obj)?;
        if track {
            if !meta_str(&obj, "resourceVersion").is_empty() {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            obj = engine::record_update(k.kind, None, obj, &tracking(opts, Subresource::Main));
        }
        if meta_str(&obj, "name").is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if !prefix.is_empty() {
                const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let suffix: String = (0..5)
                    .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
                    .collect();
                let base: String = prefix.chars().take(58).collect();
                obj["metadata"]["name"] = json!(format!("{base}{suffix}"));
            }
        }
        let name = meta_str(&obj, "name").to_string();
        if k.namespaced && !ns.is_empty() && self.get(namespace_kind(), "", ns).is_none() {
            return Err(ApiError::not_found(namespace_kind(), ns));
        }
        if k.namespaced
            && let Some(nso) = self.get(namespace_kind(), "", ns)
            && !nso["metadata"]["deletionTimestamp"].is_null()
        {
            return Err(ApiError::forbidden(
                k,
                &name,
                format!(
                    "{} {} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    k.qualified_resource(),
                    kinds::go_quote(&name)
                ),
            ));
        }
        {
            let m = obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            m.insert("uid".into(), json!(new_uid()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
            if k.has_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if k.status_subresource {
            match (k.group, k.kind) {
                ("", "Namespace") => {}
                ("", "Service") => obj["status"] = json!({"loadBalancer": {}}),
                ("", "Pod") => {
                    // Status is the kubelet's; only the QoS class is derived
                    // here (requests and limits: Burstable, a simplification).
                    let has_resources = obj["spec"]["containers"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["resources"]["requests"]
                                .as_object()
                                .is_some_and(|m| !m.is_empty())
                                || c["resources"]["limits"]
                                    .as_object()
                                    .is_some_and(|m| !m.is_empty())
                        })
                    });
                    let qos = if has_resources {
                        "Burstable"
                    } else {
                        "BestEffort"
                    };
                    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
                }
                _ if k.is_custom() => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
                _ => obj["status"] = json!({}),
            }
        }
        if (k.group, k.kind) == ("", "Service")
            && obj["spec"]["type"].as_str() != Some("ExternalName")
            && obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty)
            && obj["spec"].is_object()
        {
            let ip = if opts.dry_run {
                "10.96.255.254".to_string()
            } else {
                self.allocate_ip()
            };
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
        if (k.group, k.kind) == ("", "Service") {
            self.allocate_node_ports(&mut obj, None, opts.dry_run);
        }
        let (obj, warnings) = self.finish(k, obj, None, opts)?;
        if self.get(k, ns, &name).is_some() {
            return Err(ApiError::already_exists(k, &name));
        }
        if opts.dry_run {
            return Ok(WriteOutcome {
                object: obj,
                warnings,
                created: true,
            });
        }
        let ns_key = if k.namespaced { ns } else { "" };
        let out = self.commit(k, ns_key, &name, ChangeType::Added, obj, None, tx);
        if (k.group, k.kind) == ("", "Namespace") {
            let cm = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": name,
                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ROOT_CA},
            });
            let cmk = configmap_kind();
            let _ = self.create(cmk, &name, cm, &controller_write(), tx, true);
        }
        Ok(WriteOutcome {
            object: out,
            warnings,
            created: true,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        old: Value,
        mut obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
        tx: &broadcast::Sender<Arc<Change>>,
        is_put: bool,
    ) -> Result<WriteOutcome, ApiError> {
        Self::check_type(k, &mut obj)?;
        self.check_namespace(k, ns, &mut obj)?;
        let body_name = meta_str(&obj, "name").to_string();
        if body_name.is_empty() {
            obj["metadata"]["name"] = json!(name);
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        // Preconditions.
        let old_rv = meta_str(&old, "resourceVersion").to_string();
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(rv) if !rv.is_empty() => {
                if parse_rv(rv).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "invalid resource version: {rv}"
                    )));
                }
                if rv != old_rv {
                    return Err(ApiError::conflict(k, name));
                }
            }
            _ if is_put && k.is_custom() => {
                return Err(ApiError::invalid(
                    k,
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        "0x0",
                        "must be specified for an update",
                    )],
                ));
            }
            _ => {}
        }
        if let Some(uid) = obj["metadata"]["uid"].as_str()
            && !uid.is_empty()
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict_because(
                k,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        // What this write may change.
        let mut new = match sub {
            Subresource::Status => {
                let mut n = old.clone();
                match obj.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                if let Some(mf) = obj["metadata"].get("managedFields") {
                    n["metadata"]["managedFields"] = mf.clone();
                }
                n
            }
            Subresource::Main => {
                let mut n = obj;
                if k.status_subresource {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        {
            let om = &old["metadata"];
            let m = new["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match om.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            m.remove("selfLink");
            if (k.group, k.kind) == ("", "Namespace") {
                // Namespaces keep their name label.
            }
        }
        if (k.group, k.kind) == ("", "Service") && new["spec"].is_object() {
            // Allocated values a client left out are carried over.
            for f in ["clusterIP", "clusterIPs"] {
                if new["spec"][f].is_null()
                    || new["spec"][f] == json!("")
                    || new["spec"][f] == json!([])
                {
                    new["spec"][f] = old["spec"][f].clone();
                }
            }
            self.allocate_node_ports(&mut new, Some(&old), opts.dry_run);
        }
        if is_put {
            new = engine::record_update(k.kind, Some(&old), new, &tracking(opts, sub));
        }
        let (mut new, warnings) = self.finish(k, new, Some(&old), opts)?;
        if k.has_generation {
            let apart = k.status_subresource;
            if spec_part(&new, apart) != spec_part(&old, apart) {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                new["metadata"]["generation"] = json!(g);
            }
        }
        new["metadata"]["resourceVersion"] = json!(old_rv);
        if without_volatile_meta(&new) == without_volatile_meta(&old) {
            // A no-op write: nothing is stored, the resourceVersion stays.
            return Ok(WriteOutcome {
                object: convert(k, k.preferred_version(), old),
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(WriteOutcome {
                object: new,
                warnings,
                created: false,
            });
        }
        let finalized = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if finalized {
            let out = self.commit(k, ns, name, ChangeType::Deleted, new, Some(old), tx);
            return Ok(WriteOutcome {
                object: out,
                warnings,
                created: false,
            });
        }
        let out = self.commit(k, ns, name, ChangeType::Modified, new, Some(old), tx);
        Ok(WriteOutcome {
            object: out,
            warnings,
            created: false,
        })
    }

    fn delete(
        &mut self,
        k: &'static KindInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        tx: &broadcast::Sender<Arc<Change>>,
    ) -> Result<DeleteOutcome, ApiError> {
        let ns = if k.namespaced { ns } else { "" };
        let Some(old) = self.get(k, ns, name).cloned() else {
            return Err(ApiError::not_found(k, name));
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict_because(
                k,
                name,
                &format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_resource_version
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict_because(
                k,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        if (k.group, k.kind) == ("", "Namespace")
            && ["default", "kube-system", "kube-public"].contains(&name)
        {
            return Err(ApiError::forbidden(
                k,
                name,
                format!(
                    "namespaces {} is forbidden: this namespace may not be deleted",
                    kinds::go_quote(name)
                ),
            ));
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Deleted(old));
        }
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Ok(DeleteOutcome::Pending(old));
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let out = self.commit(k, ns, name, ChangeType::Modified, new, Some(old), tx);
            return Ok(DeleteOutcome::Pending(out));
        }
        let uid = meta_str(&old, "uid").to_string();
        if (k.group, k.kind) == ("", "Namespace") {
            // Namespace lifecycle, done at once: its content goes first.
            let keys: Vec<(KindKey, ObjKey)> = self
                .objects
                .iter()
                .flat_map(|(kk, m)| {
                    m.keys()
                        .filter(|(n, _)| n == name)
                        .map(move |ok| (*kk, ok.clone()))
                })
                .collect();
            for ((g, p), (n, nm)) in keys {
                if let Some(kk) = kinds::ALL_KINDS
                    .iter()
                    .find(|x| x.group == g && x.plural == p)
                    && let Some(o) = self.get(kk, &n, &nm).cloned()
                {
                    self.commit(kk, &n, &nm, ChangeType::Deleted, o.clone(), Some(o), tx);
                }
            }
        }
        let mut last = old.clone();
        if (k.group, k.kind) == ("", "Namespace") {
            last["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            last["status"]["phase"] = json!("Terminating");
        }
        let out = self.commit(k, ns, name, ChangeType::Deleted, last, Some(old), tx);
        self.collect_dependents(&uid, opts.propagation, tx);
        Ok(DeleteOutcome::Deleted(out))
    }

    /// Owner-reference garbage collection after `uid` was deleted.
    fn collect_dependents(
        &mut self,
        uid: &str,
        propagation: Propagation,
        tx: &broadcast::Sender<Arc<Change>>,
    ) {
        let mut dependents = Vec::new();
        for ((g, p), m) in &self.objects {
            for ((n, nm), o) in m {
                let owned = o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)));
                if owned {
                    dependents.push(((*g, *p), n.clone(), nm.clone()));
                }
            }
        }
        for ((g, p), n, nm) in dependents {
            let Some(kk) = kinds::ALL_KINDS
                .iter()
                .find(|x| x.group == g && x.plural == p)
            else {
                continue;
            };
            let Some(o) = self.get(kk, &n, &nm).cloned() else {
                continue;
            };
            if propagation == Propagation::Orphan {
                let mut new = o.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"].as_str() != Some(uid));
                    if refs.is_empty()
                        && let Some(m) = new["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                }
                self.commit(kk, &n, &nm, ChangeType::Modified, new, Some(o), tx);
            } else {
                // Only when every owner is gone.
                let other_owner_alive = o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| {
                        let ruid = r["uid"].as_str().unwrap_or("");
                        ruid != uid
                            && self
                                .objects
                                .values()
                                .any(|m| m.values().any(|x| meta_str(x, "uid") == ruid))
                    });
                if other_owner_alive {
                    continue;
                }
                let _ = self.delete(
                    kk,
                    &n,
                    &nm,
                    &DeleteOptions {
                        propagation,
                        ..Default::default()
                    },
                    tx,
                );
            }
        }
    }
}

fn namespace_kind() -> &'static KindInfo {
    kinds::ALL_KINDS
        .iter()
        .find(|k| k.group.is_empty() && k.kind == "Namespace")
        .expect("namespaces")
}

fn configmap_kind() -> &'static KindInfo {
    kinds::ALL_KINDS
        .iter()
        .find(|k| k.group.is_empty() && k.kind == "ConfigMap")
        .expect("configmaps")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::CrdGroups;

    fn store() -> Store {
        Store::new(Kinds::new(CrdGroups::default()))
    }

    fn deployment(name: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "img:1"}]}},
            },
        })
    }

    #[test]
    fn label_selectors_parse_every_operator() {
        let s = LabelSelector::parse("a=b,c!=d,e in (f, g),h notin (i),j,!k").unwrap();
        let o = json!({"metadata": {"labels": {"a": "b", "c": "x", "e": "g", "j": ""}}});
        assert!(s.matches(&o));
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(!LabelSelector::parse("!a").unwrap().matches(&o));
    }

    #[test]
    fn snapshots_see_the_past() {
        let s = store();
        let d = s.create(deployment("a")).unwrap();
        let rv = parse_rv(meta_str(&d, "resourceVersion")).unwrap();
        s.create(deployment("b")).unwrap();
        let k = s.kind("apps/v1", "Deployment").unwrap();
        let (items, _) = s.list_in(k, "v1", None, Some(rv)).unwrap();
        assert_eq!(items.len(), 1);
        s.compact();
        assert_eq!(s.list_in(k, "v1", None, Some(rv)).unwrap_err().code, 410);
    }

    #[test]
    fn generation_moves_with_the_spec_only() {
        let s = store();
        let d = s.create(deployment("a")).unwrap();
        assert_eq!(d["metadata"]["generation"], 1);
        let d = s
            .modify(
                "apps/v1",
                "Deployment",
                "default",
                "a",
                Subresource::Main,
                |d| d["metadata"]["labels"] = json!({"x": "y"}),
            )
            .unwrap();
        assert_eq!(d["metadata"]["generation"], 1);
        let d = s
            .modify(
                "apps/v1",
                "Deployment",
                "default",
                "a",
                Subresource::Main,
                |d| d["spec"]["replicas"] = json!(3),
            )
            .unwrap();
        assert_eq!(d["metadata"]["generation"], 2);
    }
}
