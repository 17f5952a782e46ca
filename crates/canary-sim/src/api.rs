//! The HTTP face of the simulated API server: authentication, RBAC
//! authorization (when rules are enforced, see `rbac`), fault injection,
//! the request log, discovery (legacy and aggregated), CRUD,
//! patch, watch, the scale and status subresources, server-side Table
//! printing for `kubectl get`, the service proxy and the OpenAPI documents
//! (built in `openapi`). Bodies are JSON, YAML or, for the kinds `protobuf`
//! converts, the Kubernetes protobuf encoding. Errors are `Status` objects
//! shaped exactly like the real server's.
//!
//! Routing is done by hand on the path segments rather than with axum
//! routes: the Kubernetes URL grammar (optional `namespaces/NS`, legacy
//! `watch/` prefix, subresources, proxy tails) is easier to follow that way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::providers::externalmetrics;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use base64::engine::general_purpose::{self, GeneralPurpose};
use base64::{Engine as _, alphabet};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::patch::{self as engine, PatchType};

use crate::kinds::{self, KindInfo};
use crate::openapi;
use crate::protobuf;
use crate::rbac::{self, Attributes, Rules};
use crate::store::{
    self, ApiError, ChangeType, DeleteOptions, DeleteOutcome, FieldSelector, FieldValidation,
    LabelSelector, Propagation, Selectors, Store, Subresource, WatchStart, WriteOptions,
    WriteOutcome,
};

/// The simulated cluster's own endpoint for its fault switches, reachable
/// from any process with the kubeconfig (`kubectl get --raw`).
pub const FAULTS_PATH: &str = "/canary-sim/faults";

/// Largest request body the server accepts (the real limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Fault injection.
// ---------------------------------------------------------------------------

/// The status an injected API error answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultStatus {
    /// 500 InternalError.
    #[default]
    InternalError,
    /// 429 TooManyRequests with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
}

/// The current fault settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSettings {
    /// Fraction (0..=1) of requests answered with `error_status`.
    pub error_rate: f64,
    pub error_status: FaultStatus,
    /// The next N requests fail with `fail_next_status`, whatever the rate.
    pub fail_next: u32,
    pub fail_next_status: FaultStatus,
    /// Every write (POST, PUT, PATCH, DELETE) to a resource answers 409.
    pub conflict_on_writes: bool,
    /// Added before every request is handled.
    pub latency: Duration,
    /// Fraction (0..=1) of requests whose connection is dropped unanswered.
    pub drop_rate: f64,
    /// The next N requests have their connection dropped.
    pub drop_next: u32,
    /// When set, only requests whose path contains this text are touched
    /// by the faults above (`/proxy/` for the service proxy alone).
    pub only_paths: Option<String>,
    /// When set, only writes (POST, PUT, PATCH, DELETE) are touched: a
    /// write lost while the reads around it succeed.
    pub only_writes: bool,
}

/// Switchable faults, shared by the server and whoever injects them.
#[derive(Debug, Default)]
pub struct Faults {
    settings: Mutex<FaultSettings>,
    metrics_outage: AtomicBool,
}

/// What the fault layer decided for one request.
enum FaultAction {
    None,
    Drop,
    Fail(FaultStatus),
}

impl Faults {
    fn with<R>(&self, f: impl FnOnce(&mut FaultSettings) -> R) -> R {
        f(&mut self.settings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, settings: FaultSettings) {
        self.with(|s| *s = settings);
    }

    /// Clears every API fault (not the metrics outage).
    pub fn clear(&self) {
        self.set(FaultSettings::default());
    }

    pub fn set_error_rate(&self, rate: f64, status: FaultStatus) {
        self.with(|s| {
            s.error_rate = rate.clamp(0.0, 1.0);
            s.error_status = status;
        });
    }

    pub fn fail_next(&self, n: u32, status: FaultStatus) {
        self.with(|s| {
            s.fail_next = n;
            s.fail_next_status = status;
        });
    }

    pub fn set_conflict_on_writes(&self, on: bool) {
        self.with(|s| s.conflict_on_writes = on);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }

    pub fn set_drop_rate(&self, rate: f64) {
        self.with(|s| s.drop_rate = rate.clamp(0.0, 1.0));
    }

    pub fn drop_next(&self, n: u32) {
        self.with(|s| s.drop_next = n);
    }

    /// Limits the faults to requests whose path contains `part`; `None`
    /// puts every request back in their reach.
    pub fn set_only_paths(&self, part: Option<&str>) {
        self.with(|s| s.only_paths = part.map(str::to_string));
    }

    /// Limits the faults to writes (`true`), or puts reads back in their
    /// reach.
    pub fn set_only_writes(&self, on: bool) {
        self.with(|s| s.only_writes = on);
    }

    /// The settings as the admin endpoint shows them (`GET
    /// /canary-sim/faults`).
    pub fn to_json(&self) -> Value {
        self.with(|s| {
            let (status, retry_after) = match s.error_status {
                FaultStatus::InternalError => (500, None),
                FaultStatus::TooManyRequests { retry_after_secs } => (429, Some(retry_after_secs)),
            };
            json!({
                "errorRate": s.error_rate,
                "errorStatus": status,
                "retryAfterSeconds": retry_after,
                "latencyMs": s.latency.as_millis() as u64,
                "dropRate": s.drop_rate,
                "onlyPaths": s.only_paths,
                "onlyWrites": s.only_writes,
                "metricsOutage": self.metrics_outage(),
            })
        })
    }

    /// Sets the faults from the admin endpoint's JSON (`PUT
    /// /canary-sim/faults`, e.g. `kubectl replace --raw /canary-sim/faults
    /// -f faults.json`): the fields given replace the current settings,
    /// those left out are cleared. Every field is checked before any is
    /// applied.
    pub fn set_json(&self, v: &Value) -> Result<(), String> {
        let Some(obj) = v.as_object() else {
            return Err("the faults must be a JSON object".to_string());
        };
        let known = [
            "errorRate",
            "errorStatus",
            "retryAfterSeconds",
            "latencyMs",
            "dropRate",
            "onlyPaths",
            "onlyWrites",
            "metricsOutage",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "unknown field \"{k}\" (known: {})",
                known.join(", ")
            ));
        }
        let rate = |k: &str| -> Result<f64, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(0.0),
                Some(v) => v
                    .as_f64()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{k}: a number from 0 to 1, not {v}")),
            }
        };
        let error_rate = rate("errorRate")?;
        let drop_rate = rate("dropRate")?;
        let retry_after_secs = match obj.get("retryAfterSeconds") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("retryAfterSeconds: a whole number, not {v}"))?,
        };
        let error_status = match obj.get("errorStatus").and_then(Value::as_u64) {
            None | Some(500) => FaultStatus::InternalError,
            Some(429) => FaultStatus::TooManyRequests { retry_after_secs },
            Some(other) => return Err(format!("errorStatus: 500 or 429, not {other}")),
        };
        let latency = match obj.get("latencyMs") {
            None | Some(Value::Null) => Duration::ZERO,
            Some(v) => Duration::from_millis(
                v.as_u64()
                    .ok_or_else(|| format!("latencyMs: a whole number, not {v}"))?,
            ),
        };
        let only_paths = match obj.get("onlyPaths") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(v) => return Err(format!("onlyPaths: a string, not {v}")),
        };
        let flag = |k: &str| -> Result<bool, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(format!("{k}: true or false, not {v}")),
            }
        };
        let only_writes = flag("onlyWrites")?;
        let metrics_outage = flag("metricsOutage")?;
        self.set(FaultSettings {
            error_rate,
            error_status,
            latency,
            drop_rate,
            only_paths,
            only_writes,
            ..FaultSettings::default()
        });
        self.set_metrics_outage(metrics_outage);
        Ok(())
    }

    /// The metrics server is down (read by the metrics side of the sim).
    pub fn set_metrics_outage(&self, on: bool) {
        self.metrics_outage.store(on, Ordering::SeqCst);
    }

    pub fn metrics_outage(&self) -> bool {
        self.metrics_outage.load(Ordering::SeqCst)
    }

    fn conflict_on_writes(&self) -> bool {
        self.with(|s| s.conflict_on_writes)
    }

    fn decide(&self, method: &str, path: &str) -> (Duration, FaultAction) {
        let chance = |rate: f64| rate > 0.0 && fastrand::f64() < rate;
        let write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
        self.with(|s| {
            if s.only_paths.as_deref().is_some_and(|p| !path.contains(p))
                || (s.only_writes && !write)
            {
                return (Duration::ZERO, FaultAction::None);
            }
            let action = if s.drop_next > 0 {
                s.drop_next -= 1;
                FaultAction::Drop
            } else if chance(s.drop_rate) {
                FaultAction::Drop
            } else if s.fail_next > 0 {
                s.fail_next -= 1;
                FaultAction::Fail(s.fail_next_status)
            } else if chance(s.error_rate) {
                FaultAction::Fail(s.error_status)
            } else {
                FaultAction::None
            };
            (s.latency, action)
        })
    }
}

// ---------------------------------------------------------------------------
// Request log.
// ---------------------------------------------------------------------------

/// One served request. The bearer token is never recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// Path with query, e.g. `/apis/apps/v1/namespaces/default/deployments?limit=500`.
    pub path: String,
    /// 0 when the connection was dropped by a fault.
    pub status: u16,
    /// Until the response head (for watches: until the stream opened).
    pub duration: Duration,
    /// What the request asked for, as the authorizer sees it (derived for
    /// every request, whether or not rules are enforced), so a log can be
    /// checked against rules after the fact.
    pub attributes: Attributes,
    /// Whether authentication and authorization let the request through:
    /// `false` for a 401 and for a 403 of the enforced rules.
    pub allowed: bool,
    /// Bytes of the request's body the server read.
    pub body_bytes: u64,
    /// When the request arrived.
    pub at: std::time::SystemTime,
}

impl RequestRecord {
    /// Whether the request could change what the server stores: any method
    /// but a read, except asking what one may do (a self review is
    /// created, answered and never stored).
    pub fn is_write(&self) -> bool {
        let read = matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let review = self.attributes.api_group == "authorization.k8s.io"
            && self.attributes.resource.starts_with("self");
        !read && !review
    }
}

/// The log of every request the server received.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<RequestRecord>>,
}

const LOG_LIMIT: usize = 100_000;

impl RequestLog {
    fn push(&self, r: RequestRecord) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() >= LOG_LIMIT {
            e.drain(..LOG_LIMIT / 10);
        }
        e.push(r);
    }

    pub fn entries(&self) -> Vec<RequestRecord> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

// ---------------------------------------------------------------------------
// Shared state.
// ---------------------------------------------------------------------------

/// Backends of the service proxy, by (namespace, service, service port).
pub type Backends = RwLock<HashMap<(String, String, u16), Router>>;

/// Everything a request handler needs.
pub struct ApiState {
    pub store: Arc<Store>,
    pub token: String,
    pub faults: Arc<Faults>,
    pub log: Arc<RequestLog>,
    pub backends: Backends,
    /// `v1.32.4`: what `/version` reports.
    pub server_version: String,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Flips to true when the server shuts down; open watches end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The rules the token is held to; `None`: everything is allowed.
    pub rules: RwLock<Option<Arc<Rules>>>,
    /// The OpenAPI documents, built on first request.
    pub openapi: openapi::Cache,
    /// The external metrics API, once registered.
    pub external_metrics: RwLock<Option<Arc<crate::providers::MetricProviders>>>,
}

/// Handles one request. `None` means: drop the connection (fault).
pub async fn handle(state: Arc<ApiState>, req: Request<Body>) -> Option<Response<Body>> {
    let started = Instant::now();
    let at = std::time::SystemTime::now();
    // The body's bytes are counted as the handler reads them.
    let body_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let req = {
        let count = body_bytes.clone();
        req.map(|b| {
            Body::new(http_body_util::BodyExt::map_frame(b, move |f| {
                if let Some(d) = f.data_ref() {
                    count.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                f
            }))
        })
    };
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    // The admin endpoint is out of the faults' reach: they can always be
    // switched off again.
    let (latency, action) = if path.starts_with(FAULTS_PATH) {
        (Duration::ZERO, FaultAction::None)
    } else {
        state.faults.decide(&method, &path)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Authorization needs nothing but the method and URL, as in the real
    // server, where it runs before any handler looks at the request.
    let attributes = Attributes::from_request(&method, &path);
    let authenticated = authorized(&state.token, req.headers());
    let rules = state
        .rules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let permitted = rules.as_ref().is_none_or(|r| r.allows(&attributes));
    let allowed = authenticated && permitted;
    let record = |status: u16| RequestRecord {
        method: method.clone(),
        path: path.clone(),
        status,
        duration: started.elapsed(),
        attributes: attributes.clone(),
        allowed,
        body_bytes: body_bytes.load(std::sync::atomic::Ordering::Relaxed),
        at,
    };
    if let FaultAction::Drop = action {
        state.log.push(record(0));
        return None;
    }
    let resp = if !authenticated {
        status_response(&ApiError::unauthorized())
    } else if let Some(r) = rules.as_ref().filter(|_| !permitted) {
        status_response(&rbac::forbidden(r.user(), &attributes))
    } else if let FaultAction::Fail(s) = action {
        status_response(&match s {
            FaultStatus::InternalError => ApiError::internal("injected fault"),
            FaultStatus::TooManyRequests { retry_after_secs } => {
                ApiError::too_many_requests(retry_after_secs)
            }
        })
    } else {
        match route(&state, req).await {
            Ok(r) => r,
            Err(e) => status_response(&e),
        }
    };
    state.log.push(record(resp.status().as_u16()));
    Some(resp)
}

fn authorized(token: &str, headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, t)) = v.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(t.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------
// Responses.
// ---------------------------------------------------------------------------

fn base_response(code: u16) -> axum::http::response::Builder {
    Response::builder()
        .status(code)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .header("Audit-Id", store::new_uid())
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_response_with(code, v, "application/json", &[])
}

fn json_response_with(
    code: u16,
    v: &Value,
    content_type: &str,
    warnings: &[String],
) -> Response<Body> {
    let mut b = base_response(code).header(header::CONTENT_TYPE, content_type);
    for w in warnings {
        if let Ok(hv) = HeaderValue::from_str(&format!("299 - {}", kinds::go_quote(w))) {
            b = b.header(header::WARNING, hv);
        }
    }
    b.body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

/// A `Status` error response.
pub fn status_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.status());
    if let Some(s) = e.retry_after()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn success_status(k: &KindInfo, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name});
    if !k.group.is_empty() {
        details["group"] = json!(k.group);
    }
    details["kind"] = json!(k.plural);
    details["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

// ---------------------------------------------------------------------------
// Query parameters.
// ---------------------------------------------------------------------------

/// The parameters of a query string, decoded as a form (`+` is a space).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True" | "TRUE"))
    }
}

fn write_options(q: &Query, k: &KindInfo, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                k,
                "",
                &[kinds::FieldError {
                    reason: "FieldValueNotSupported",
                    field: "dryRun".into(),
                    message: format!(
                        "Unsupported value: {}: supported values: \"All\"",
                        kinds::go_quote(other)
                    ),
                }],
            ));
        }
    };
    let field_validation = match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Invalid value: {}: fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\"",
                kinds::go_quote(other)
            )));
        }
    };
    if let Some(fm) = q.get("fieldManager")
        && fm.len() > 128
    {
        return Err(ApiError::invalid(
            &PATCH_OPTIONS,
            "",
            &[kinds::FieldError {
                reason: "FieldValueTooLong",
                field: "fieldManager".into(),
                message: "Too long: may not be more than 128 bytes".into(),
            }],
        ));
    }
    let _ = k;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let field_manager = Some(engine::manager_or_user_agent(
        q.get("fieldManager"),
        user_agent,
    ));
    Ok(WriteOptions {
        dry_run,
        field_manager,
        field_validation,
        ..WriteOptions::default()
    })
}

// ---------------------------------------------------------------------------
// Routing.
// ---------------------------------------------------------------------------

fn accepts_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.contains("as=APIGroupDiscoveryList")
                && m.contains("g=apidiscovery.k8s.io")
                && m.contains("v=v2")
                && !m.contains("v=v2beta1")
        })
}

fn accepts_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.contains("as=Table")
                && m.contains("g=meta.k8s.io")
                && m.contains("v=v1")
                && !m.contains("v=v1beta1")
        })
}

/// Whether the client accepts JSON at all (protobuf-only clients get 406).
/// The protobuf form of the OpenAPI v2 document, as kubectl asks for it,
/// and as the API server labels it (`@` is no character of a media type).
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const OPENAPI_V2_PROTOBUF_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an `Accept` header names `media` (parameters aside).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.trim().starts_with(media))
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let vals: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    vals.is_empty()
        || vals.iter().flat_map(|v| v.split(',')).any(|m| {
            let m = m.trim();
            m.is_empty()
                || m.starts_with("application/json")
                || m.starts_with("*/*")
                || m.starts_with("application/*")
                || m.starts_with("application/yaml")
        })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok(b),
        Err(_) => Err(ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("Request entity too large: limit is {MAX_BODY}"),
            details: None,
        }),
    }
}

async fn route(state: &Arc<ApiState>, req: Request<Body>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        // As Go's `URL.Path` has them: `+` stays a plus, unlike in a query.
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let kinds = state.store.kinds();
    let get_only = |m: &Method| {
        if m == Method::GET || m == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => {
            get_only(req.method())?;
            Ok(json_response(200, &version_info(&state.server_version)))
        }
        ["canary-sim", "faults"] => {
            if req.method() == Method::GET {
                return Ok(json_response(200, &state.faults.to_json()));
            }
            if req.method() != Method::PUT {
                return Err(ApiError::method_not_allowed());
            }
            let body = read_body(req.into_body()).await?;
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the faults are not JSON: {e}")))?;
            state.faults.set_json(&v).map_err(ApiError::bad_request)?;
            Ok(json_response(200, &state.faults.to_json()))
        }
        ["healthz" | "livez" | "readyz"] => Ok(base_response(200)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("ok"))
            .expect("response")),
        ["api"] => {
            get_only(req.method())?;
            if accepts_aggregated(req.headers()) {
                return Ok(aggregated(&kinds.aggregated_discovery(true)));
            }
            Ok(json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
            ))
        }
        ["apis"] => {
            get_only(req.method())?;
            let external = external_metrics(state).is_some();
            if accepts_aggregated(req.headers()) {
                let mut doc = kinds.aggregated_discovery(false);
                if external && let Some(items) = doc["items"].as_array_mut() {
                    items.push(externalmetrics::aggregated_group());
                }
                return Ok(aggregated(&doc));
            }
            let mut list = kinds.api_group_list();
            if external && let Some(groups) = list["groups"].as_array_mut() {
                groups.push(externalmetrics::api_group());
            }
            Ok(json_response(200, &list))
        }
        ["apis", externalmetrics::GROUP, rest @ ..] if external_metrics(state).is_some() => {
            external_metrics_api(state, rest, &req)
        }
        ["api", "v1"] => {
            get_only(req.method())?;
            Ok(json_response(200, &kinds.api_resource_list("", "v1")))
        }
        ["apis", group] => {
            get_only(req.method())?;
            let groups = kinds.api_group_list();
            let g = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|g| g["name"] == *group))
                .ok_or_else(ApiError::no_route)?;
            let mut g = g.clone();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            Ok(json_response(200, &g))
        }
        ["apis", group, version] => {
            get_only(req.method())?;
            if !kinds.serves_group_version(group, version) {
                return Err(ApiError::no_route());
            }
            Ok(json_response(200, &kinds.api_resource_list(group, version)))
        }
        ["apis", "authorization.k8s.io", "v1", review]
            if *review == "selfsubjectaccessreviews" || *review == "selfsubjectrulesreviews" =>
        {
            if req.method() != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let rules_review = *review == "selfsubjectrulesreviews";
            let headers = req.headers().clone();
            let body = decode_review(&headers, &read_body(req.into_body()).await?)?;
            let rules = state
                .rules
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let answer = if rules_review {
                rbac::rules_review(rules.as_deref(), &body)?
            } else {
                rbac::review(rules.as_deref(), &body)?
            };
            Ok(json_response(201, &answer))
        }
        ["openapi", "v2"] => {
            get_only(req.method())?;
            if !accepts_json(req.headers()) {
                if accepts(req.headers(), OPENAPI_V2_PROTOBUF) {
                    // kubectl asks for v2, in protobuf only, to validate a
                    // kind the v3 documents lack: one this server does not
                    // serve, which the full v2 document would not describe
                    // either. The empty document (a message without fields
                    // is zero bytes) describes no kind, so kubectl goes on
                    // to say, as against any cluster, that there is no such
                    // kind, instead of failing to read the document.
                    return Ok(base_response(200)
                        .header(header::CONTENT_TYPE, OPENAPI_V2_PROTOBUF_TYPE)
                        .body(Body::empty())
                        .expect("response"));
                }
                return Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json",
                ));
            }
            Ok(openapi_response(&state.openapi.v2(kinds)))
        }
        ["openapi", "v3"] => {
            get_only(req.method())?;
            Ok(openapi_response(&state.openapi.v3_index(kinds)))
        }
        ["openapi", "v3", "api", version] => {
            get_only(req.method())?;
            let doc = state
                .openapi
                .v3_group_version(kinds, "", version)
                .ok_or_else(ApiError::no_route)?;
            Ok(openapi_response(&doc))
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only(req.method())?;
            let doc = state
                .openapi
                .v3_group_version(kinds, group, version)
                .ok_or_else(ApiError::no_route)?;
            Ok(openapi_response(&doc))
        }
        ["api", "v1", rest @ ..] => resource(state, "", "v1", rest, req).await,
        ["apis", group, version, rest @ ..] => {
            if !kinds.serves_group_version(group, version) {
                return Err(ApiError::no_route());
            }
            let (g, v) = (group.to_string(), version.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            resource(state, &g, &v, &rest, req).await
        }
        _ => Err(ApiError::no_route()),
    }
}

fn external_metrics(state: &ApiState) -> Option<Arc<crate::providers::MetricProviders>> {
    state
        .external_metrics
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The external metrics API group ([`externalmetrics`]).
fn external_metrics_api(
    state: &ApiState,
    rest: &[&str],
    req: &Request<Body>,
) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let Some(p) = external_metrics(state) else {
        return Err(ApiError::no_route());
    };
    match rest {
        [] => {
            let mut g = externalmetrics::api_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            Ok(json_response(200, &g))
        }
        [externalmetrics::VERSION] => Ok(json_response(200, &externalmetrics::api_resource_list())),
        [externalmetrics::VERSION, "namespaces", ns, metric] => {
            let selector = req
                .uri()
                .query()
                .and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "labelSelector")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            p.external_metric_list(ns, metric, &selector)
                .map(|list| json_response(200, &list))
                .ok_or_else(ApiError::no_route)
        }
        _ => Err(ApiError::no_route()),
    }
}

fn openapi_response(doc: &[u8]) -> Response<Body> {
    base_response(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(doc.to_vec()))
        .expect("response")
}

fn aggregated(v: &Value) -> Response<Body> {
    json_response_with(
        200,
        v,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        &[],
    )
}

fn version_info(v: &str) -> Value {
    let parts: Vec<&str> = v.trim_start_matches('v').split('.').collect();
    let major = parts.first().copied().unwrap_or("1");
    let minor = parts.get(1).copied().unwrap_or("32");
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": (minor.parse::<u32>().unwrap_or(32).saturating_sub(1)).to_string(),
        "gitVersion": v,
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:03:39Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A parsed resource path.
struct Target {
    kind: &'static KindInfo,
    version: String,
    /// Namespace from the path; `None` for cluster-scoped kinds or
    /// all-namespaces lists.
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// Path tail after `proxy/`.
    tail: Vec<String>,
    legacy_watch: bool,
}

fn parse_target(
    state: &ApiState,
    group: &str,
    version: &str,
    segs: &[&str],
) -> Result<Target, ApiError> {
    let kinds = state.store.kinds();
    let mut segs = segs.to_vec();
    let legacy_watch = segs.first() == Some(&"watch");
    if legacy_watch {
        segs.remove(0);
    }
    let find = |plural: &str| {
        kinds
            .by_resource(group, version, plural)
            .ok_or_else(ApiError::no_route)
    };
    let (namespace, rest): (Option<String>, &[&str]) = if segs.len() >= 3
        && segs[0] == "namespaces"
        && kinds
            .by_resource(group, version, segs[2])
            .is_some_and(|k| k.namespaced)
    {
        (Some(segs[1].to_string()), &segs[2..])
    } else {
        (None, &segs[..])
    };
    let Some(plural) = rest.first() else {
        return Err(ApiError::no_route());
    };
    let kind = find(plural)?;
    if namespace.is_some() && !kind.namespaced {
        return Err(ApiError::no_route());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).map(|s| s.to_string());
    let tail: Vec<String> = rest.iter().skip(3).map(|s| s.to_string()).collect();
    match sub.as_deref() {
        None => {}
        Some("status") if kind.status_subresource && tail.is_empty() => {}
        Some("scale") if kind.scale_subresource && tail.is_empty() => {}
        Some("proxy") if kind.plural == "services" && kind.group.is_empty() => {}
        _ => return Err(ApiError::no_route()),
    }
    if legacy_watch && (sub.is_some()) {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        kind,
        version: version.to_string(),
        namespace,
        name,
        sub,
        tail,
        legacy_watch,
    })
}

async fn resource(
    state: &Arc<ApiState>,
    group: &str,
    version: &str,
    segs: &[&str],
    req: Request<Body>,
) -> Result<Response<Body>, ApiError> {
    let t = parse_target(state, group, version, segs)?;
    let k = t.kind;
    let q = Query::parse(req.uri().query());
    let method = req.method().clone();
    if t.sub.as_deref() == Some("proxy") {
        return proxy(state, &t, req).await;
    }
    if !accepts_json(req.headers()) {
        // Protobuf is read in requests but never written in answers.
        return Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json",
        ));
    }
    let is_write = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if is_write && state.faults.conflict_on_writes() {
        return Err(ApiError::conflict(k, t.name.as_deref().unwrap_or("")));
    }
    if k.namespaced && t.namespace.is_none() && !(method == Method::GET && t.name.is_none()) {
        // Namespaced objects are only addressed inside a namespace; only a
        // list (or watch) may span all of them.
        return Err(ApiError::no_route());
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let table = accepts_table(req.headers());
    match (&method, t.name.as_deref(), t.sub.as_deref()) {
        (&Method::GET, None, _) => {
            if t.legacy_watch || q.flag("watch") {
                watch(state, &t, &q, table).await
            } else {
                list(state, &t, &q, table)
            }
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            if t.legacy_watch {
                let mut q = q;
                q.0.push(("fieldSelector".into(), format!("metadata.name={name}")));
                return watch(state, &t, &q, table).await;
            }
            let obj = state.store.get_in(k, &t.version, &ns, name)?;
            if table {
                return Ok(json_response(200, &tables::table(k, &[obj], &q, None)));
            }
            Ok(json_response(200, &obj))
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let obj = state.store.get_in(k, &t.version, &ns, name)?;
            Ok(json_response(200, &scale_of(&obj)))
        }
        (&Method::POST, None, None) => {
            let mut opts = write_options(&q, k, req.headers())?;
            let headers = req.headers().clone();
            let raw = read_body(req.into_body()).await?;
            let body = decode_body(k, &headers, &raw)?;
            opts.body_keys = json_body_keys(&headers, &raw);
            let out = state.store.create_in(k, &ns, body, &opts)?;
            Ok(write_response(k, &t.version, out, 201))
        }
        (&Method::PUT, Some(name), None | Some("status")) => {
            let mut opts = write_options(&q, k, req.headers())?;
            let headers = req.headers().clone();
            let raw = read_body(req.into_body()).await?;
            let body = decode_body(k, &headers, &raw)?;
            opts.body_keys = json_body_keys(&headers, &raw);
            let sub = if t.sub.is_some() {
                Subresource::Status
            } else {
                Subresource::Main
            };
            let out = state.store.update_in(k, &ns, name, body, sub, &opts)?;
            let code = if out.created { 201 } else { 200 };
            Ok(write_response(k, &t.version, out, code))
        }
        (&Method::PUT, Some(name), Some("scale")) => {
            let mut opts = write_options(&q, k, req.headers())?;
            let headers = req.headers().clone();
            let raw = read_body(req.into_body()).await?;
            let body = decode_body(k, &headers, &raw)?;
            opts.body_keys = json_body_keys(&headers, &raw);
            let out = write_scale(state, k, &ns, name, &opts, move |_| Ok(body))?;
            Ok(json_response(200, &out))
        }
        (&Method::PATCH, Some(name), sub) => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let pt = PatchType::from_content_type(&ct).ok_or_else(|| {
                patch_error(k, name, engine::PatchError::unsupported_media_type(k.kind))
            })?;
            let opts = write_options(&q, k, req.headers())?;
            let force = match q.get("force") {
                None | Some("") | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "force: Invalid value: {}: must be a boolean",
                        kinds::go_quote(other)
                    )));
                }
            };
            // Apply needs the parameter itself; other patches fall back to
            // the User-Agent.
            let manager = if pt == PatchType::Apply {
                q.get("fieldManager").map(str::to_string)
            } else {
                opts.field_manager.clone()
            };
            let body = read_body(req.into_body()).await?;
            let mut opts = opts;
            if matches!(pt, PatchType::Merge | PatchType::StrategicMerge) {
                opts.body_keys = kinds::body_keys(&body);
            }
            opts.patch = true;
            let version = t.version.clone();
            match sub {
                Some("scale") => {
                    let out = write_scale(state, k, &ns, name, &opts, |live_scale| {
                        run_patch(
                            &SCALE,
                            name,
                            Some(live_scale),
                            &body,
                            pt,
                            manager.as_deref(),
                            force,
                            None,
                        )
                    })?;
                    Ok(json_response(200, &out))
                }
                _ => {
                    let (sub, sub_name) = if sub == Some("status") {
                        (Subresource::Status, Some("status"))
                    } else {
                        (Subresource::Main, None)
                    };
                    let name_owned = name.to_string();
                    let ns_owned = ns.clone();
                    let out = state.store.patch_in(k, &ns, name, sub, &opts, |live| {
                        let live = live.map(|l| store::convert(k, &version, l.clone()));
                        if live.is_none() && (pt != PatchType::Apply || sub != Subresource::Main) {
                            return Err(ApiError::not_found(k, &name_owned));
                        }
                        let mut o = run_patch(k, &name_owned, live.as_ref(), &body, pt, manager.as_deref(), force, sub_name)?;
                        if live.is_none() {
                            let namespace = k.namespaced.then_some(ns_owned.as_str());
                            engine::check_identity(&mut o, &name_owned, namespace)
                                .map_err(|e| patch_error(k, &name_owned, e))?;
                            if o["metadata"]["name"].as_str() != Some(name_owned.as_str()) {
                                return Err(ApiError::bad_request(format!(
                                    "the name of the object ({}) does not match the name on the URL ({name_owned})",
                                    o["metadata"]["name"].as_str().unwrap_or("")
                                )));
                            }
                        }
                        Ok(o)
                    })?;
                    let code = if out.created { 201 } else { 200 };
                    Ok(write_response(k, &t.version, out, code))
                }
            }
        }
        (&Method::DELETE, Some(name), None) => {
            let headers = req.headers().clone();
            let body = read_body(req.into_body()).await?;
            let opts = delete_options(&q, &headers, &body)?;
            match state.store.delete_in(k, &ns, name, &opts)? {
                DeleteOutcome::Pending(obj) => {
                    Ok(json_response(200, &store::convert(k, &t.version, obj)))
                }
                DeleteOutcome::Deleted(obj) => {
                    if k.returns_deleted_object {
                        Ok(json_response(200, &store::convert(k, &t.version, obj)))
                    } else {
                        let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
                        Ok(json_response(200, &success_status(k, name, uid)))
                    }
                }
            }
        }
        (&Method::DELETE, None, None) if k.verbs.contains(&"deletecollection") => {
            let headers = req.headers().clone();
            let body = read_body(req.into_body()).await?;
            let opts = delete_options(&q, &headers, &body)?;
            let sels = selectors(k, &q)?;
            let (items, _) = state
                .store
                .list_in(k, &t.version, t.namespace.as_deref(), None)?;
            let mut deleted = Vec::new();
            for o in items.into_iter().filter(|o| sels.matches(o)) {
                let ons = o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let oname = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                match state.store.delete_in(k, &ons, &oname, &opts) {
                    Ok(DeleteOutcome::Deleted(v) | DeleteOutcome::Pending(v)) => {
                        deleted.push(store::convert(k, &t.version, v))
                    }
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = state.store.resource_version();
            Ok(json_response(
                200,
                &json!({"kind": k.list_kind(), "apiVersion": kinds::group_version(k.group, &t.version),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn write_response(k: &KindInfo, version: &str, out: WriteOutcome, code: u16) -> Response<Body> {
    json_response_with(
        code,
        &store::convert(k, version, out.object),
        "application/json",
        &out.warnings,
    )
}

/// Decodes a create/update body: JSON, YAML when so declared, or protobuf
/// for the kinds `protobuf` converts.
/// The body of a SelfSubjectAccessReview: JSON or YAML (it is no stored
/// kind, and protobuf bodies are taken for a few stored kinds only).
fn decode_review(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let parsed = if ct.starts_with("application/yaml") {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else if ct.starts_with("application/json") || ct.is_empty() || ct.starts_with("*/*") {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    } else {
        return Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml"
                .to_string(),
        ));
    };
    parsed.map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; {e}")))
}

fn decode_body(k: &KindInfo, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let v: Value = if protobuf::is_protobuf(ct) {
        protobuf::decode_object(k, body)?
    } else if ct.starts_with("application/yaml") {
        serde_yaml::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; yaml parse error: {e}"))
        })?
    } else if ct.starts_with("application/json") || ct.is_empty() || ct.starts_with("*/*") {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    } else {
        return Err(ApiError::unsupported_media_type(unknown_format(k)));
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            json_type_name(&v)
        )));
    }
    Ok(v)
}

/// The keys of a JSON create or update body, for its duplicate fields.
fn json_body_keys(headers: &HeaderMap, raw: &[u8]) -> Vec<kinds::BodyKey> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.starts_with("application/json") || ct.is_empty() {
        kinds::body_keys(raw)
    } else {
        Vec::new()
    }
}

/// The 415 message for a body in a media type the server does not read;
/// protobuf is only named for the kinds it is accepted for.
fn unknown_format(k: &KindInfo) -> String {
    let mut types = vec!["application/json", "application/yaml"];
    if protobuf::supports(k) {
        types.push(protobuf::MEDIA_TYPE);
    }
    format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        types.join(", ")
    )
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Object(_) => "object",
    }
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if protobuf::is_protobuf(ct) {
        protobuf::decode_delete_options(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))?
    };
    let propagation = match q
        .get("propagationPolicy")
        .or(b["propagationPolicy"].as_str())
    {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\"",
                kinds::go_quote(other)
            )));
        }
    };
    let propagation = if b["orphanDependents"] == json!(true) {
        Propagation::Orphan
    } else {
        propagation
    };
    let dry_run = q.get("dryRun") == Some("All")
        || b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        dry_run,
        precondition_uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_resource_version: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        propagation,
    })
}

fn selectors(k: &KindInfo, q: &Query) -> Result<Selectors, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(k, q.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok(Selectors { labels, fields })
}

fn list_options_invalid(errs: &[kinds::FieldError]) -> ApiError {
    ApiError::invalid(&LIST_OPTIONS, "", errs)
}

static PATCH_OPTIONS: KindInfo = KindInfo {
    kind: "PatchOptions",
    plural: "patchoptions",
    ..LIST_OPTIONS
};

static LIST_OPTIONS: KindInfo = KindInfo {
    group: "meta.k8s.io",
    versions: &["v1"],
    kind: "ListOptions",
    plural: "listoptions",
    singular: "",
    short_names: &[],
    categories: &[],
    namespaced: false,
    verbs: &[],
    status_subresource: false,
    scale_subresource: false,
    crd: None,
    has_generation: false,
    create_on_update: false,
    returns_deleted_object: false,
    read_only: true,
};

/// A continue token in the real server's format.
fn encode_continue(rv: u64, start: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    CONTINUE_TOKEN.encode(raw)
}

fn decode_continue(token: &str) -> Option<(u64, String)> {
    // A padded token is taken too.
    let raw = CONTINUE_TOKEN.decode(token.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v["v"] != "meta.k8s.io/v1" {
        return None;
    }
    Some((v["rv"].as_u64()?, v["start"].as_str()?.to_string()))
}

/// Go's `base64.RawURLEncoding`, which the API server writes its tokens
/// with. Decoding, like Go's, does not insist that the unused bits of the
/// last character are zero.
const CONTINUE_TOKEN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
);

fn obj_key(o: &Value) -> String {
    let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
    let name = o["metadata"]["name"].as_str().unwrap_or("");
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

fn list(state: &ApiState, t: &Target, q: &Query, table: bool) -> Result<Response<Body>, ApiError> {
    let k = t.kind;
    let sels = selectors(k, q)?;
    let rv_param = q.get("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let limit: Option<usize> = match q.get("limit").filter(|s| !s.is_empty()) {
        None => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "limit: Invalid value: {}",
                    kinds::go_quote(l)
                )));
            }
        },
    };
    let cont = q.get("continue").filter(|s| !s.is_empty());
    if rv_match.is_some() && rv_param.is_none() {
        return Err(list_options_invalid(&[kinds::FieldError::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )]));
    }
    if cont.is_some() && rv_param.is_some_and(|r| r != "0") {
        return Err(list_options_invalid(&[kinds::FieldError::forbidden(
            "resourceVersion",
            "specifying resource version is not allowed when using continue",
        )]));
    }
    let parse_rv = |s: &str| -> Result<u64, ApiError> {
        s.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
    };
    let (at, start) = if let Some(c) = cont {
        let (rv, start) = decode_continue(c).ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
        (Some(rv), Some(start))
    } else {
        let at = match (rv_param, rv_match) {
            (None, _) | (Some("0"), _) => None,
            (Some(rv), Some("Exact")) => Some(parse_rv(rv)?),
            (Some(rv), None | Some("NotOlderThan")) => {
                let n = parse_rv(rv)?;
                let cur = state.store.resource_version();
                if n > cur {
                    return Err(ApiError::timeout(
                        format!("Timeout: Too large resource version: {n}, current: {cur}"),
                        1,
                    ));
                }
                None
            }
            (Some(_), Some(other)) => {
                return Err(list_options_invalid(&[kinds::FieldError {
                    reason: "FieldValueNotSupported",
                    field: "resourceVersionMatch".into(),
                    message: format!(
                        "Unsupported value: {}: supported values: \"Exact\", \"NotOlderThan\", \"\"",
                        kinds::go_quote(other)
                    ),
                }]));
            }
        };
        (at, None)
    };
    let (items, rv) = match state
        .store
        .list_in(k, &t.version, t.namespace.as_deref(), at)
    {
        Ok(x) => x,
        Err(e) if e.code == 410 && cont.is_some() => {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ));
        }
        Err(e) => return Err(e),
    };
    let mut matching: Vec<Value> = items
        .into_iter()
        .filter(|o| start.as_deref().is_none_or(|s| obj_key(o).as_str() > s))
        .filter(|o| sels.matches(o))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(l) = limit
        && matching.len() > l
    {
        let remaining = matching.len() - l;
        matching.truncate(l);
        let last = obj_key(matching.last().expect("limit > 0"));
        meta["continue"] = json!(encode_continue(rv, &last));
        if sels.labels.is_empty() && sels.fields.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if table {
        return Ok(json_response(
            200,
            &tables::table(k, &matching, q, Some(meta)),
        ));
    }
    // Lists of built-in kinds carry no per-item kind/apiVersion.
    if !k.is_custom() && !k.read_only {
        for o in &mut matching {
            if let Some(m) = o.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
        }
    }
    Ok(json_response(
        200,
        &json!({"kind": k.list_kind(), "apiVersion": kinds::group_version(k.group, &t.version), "metadata": meta, "items": matching}),
    ))
}

// ---------------------------------------------------------------------------
// Watch.
// ---------------------------------------------------------------------------

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn watch(
    state: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    table: bool,
) -> Result<Response<Body>, ApiError> {
    let k = t.kind;
    let sels = selectors(k, q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let rv_param = q.get("resourceVersion").filter(|s| !s.is_empty());
    match send_initial {
        Some(_) => {
            let mut errs = Vec::new();
            if rv_match != Some("NotOlderThan") {
                errs.push(kinds::FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !bookmarks && send_initial == Some(true) {
                errs.push(kinds::FieldError::forbidden(
                    "allowWatchBookmarks",
                    "sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
            if !errs.is_empty() {
                return Err(list_options_invalid(&errs));
            }
        }
        None if rv_match.is_some() => {
            return Err(list_options_invalid(&[kinds::FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )]));
        }
        None => {}
    }
    let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let start = match (rv_param, send_initial) {
        (None, _) | (Some("0"), _) => WatchStart::Current,
        (Some(_), Some(true)) => WatchStart::Current,
        (Some(rv), _) => WatchStart::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let initial_end = send_initial == Some(true);
    let version = t.version.clone();
    let ns = t.namespace.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let feed = match state.store.watch_in(k, ns.as_deref(), start) {
        Ok(f) => f,
        Err(e) if e.code == 410 => {
            // The real server answers 200 and one ERROR event.
            let _ = tx.try_send(watch_line("ERROR", &e.status()));
            drop(tx);
            return Ok(stream_response(rx));
        }
        Err(e) => return Err(e),
    };
    let mut shutdown = state.shutdown.clone();
    let bookmark_every = state.bookmark_interval;
    let api_version = kinds::group_version(k.group, &version);
    let q_table = Query(q.0.clone());
    tokio::spawn(async move {
        let mut first_table = true;
        let mut render = |typ: &str, obj: Value| -> Bytes {
            let obj = store::convert(k, &version, obj);
            if table {
                let mut tbl = tables::table(k, &[obj], &q_table, None);
                if !first_table && let Some(m) = tbl.as_object_mut() {
                    m.insert("columnDefinitions".into(), Value::Null);
                }
                first_table = false;
                watch_line(typ, &tbl)
            } else {
                watch_line(typ, &obj)
            }
        };
        let in_scope = |c: &store::Change| {
            kinds::same_storage(c.kind, k) && ns.as_deref().is_none_or(|n| c.namespace == n)
        };
        // What a change looks like through the selectors.
        let version_for_match = version.clone();
        let translate = |c: &store::Change| -> Option<(&'static str, Value)> {
            // Selectors see the object as served (field names differ for
            // events.k8s.io Events).
            let served = |o: &Value| store::convert(k, &version_for_match, o.clone());
            let now = sels.matches(&served(&c.object));
            let before = c.old.as_ref().is_some_and(|o| sels.matches(&served(o)));
            match c.change {
                ChangeType::Added => now.then_some(("ADDED", c.object.clone())),
                ChangeType::Deleted => (before || now).then_some(("DELETED", c.object.clone())),
                ChangeType::Modified => match (before, now) {
                    (true, true) => Some(("MODIFIED", c.object.clone())),
                    (false, true) => Some(("ADDED", c.object.clone())),
                    (true, false) => Some(("DELETED", c.object.clone())),
                    (false, false) => None,
                },
            }
        };
        let mut seen = feed.started_at;
        for c in &feed.backlog {
            if let Some((typ, obj)) = translate(c)
                && tx.send(render(typ, obj)).await.is_err()
            {
                return;
            }
        }
        let bookmark = |rv: u64, end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            watch_line(
                "BOOKMARK",
                &json!({"kind": k.kind, "apiVersion": api_version, "metadata": meta}),
            )
        };
        if initial_end && tx.send(bookmark(seen, true)).await.is_err() {
            return;
        }
        let mut live = feed.live;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.changed() => break,
                _ = tx.closed() => break,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(seen, false)).await.is_err() { break; }
                }
                msg = live.recv() => match msg {
                    Ok(c) => {
                        if c.resource_version <= seen { continue; }
                        seen = c.resource_version;
                        if !in_scope(&c) { continue; }
                        if let Some((typ, obj)) = translate(&c)
                            && tx.send(render(typ, obj)).await.is_err()
                        {
                            break;
                        }
                    }
                    // Too slow a consumer: end the watch; the client resumes
                    // from its last resourceVersion.
                    Err(_) => break,
                }
            }
        }
    });
    Ok(stream_response(rx))
}

fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    base_response(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .expect("response")
}

// ---------------------------------------------------------------------------
// Scale subresource.
// ---------------------------------------------------------------------------

fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": kinds::label_selector_string(&obj["spec"]["selector"]),
        },
    })
}

static SCALE: KindInfo = KindInfo {
    group: "autoscaling",
    versions: &["v1"],
    kind: "Scale",
    plural: "scale",
    singular: "",
    short_names: &[],
    categories: &[],
    namespaced: true,
    verbs: &[],
    status_subresource: false,
    scale_subresource: false,
    crd: None,
    has_generation: false,
    create_on_update: false,
    returns_deleted_object: false,
    read_only: true,
};

/// Writes through `/scale`: `f` turns the live Scale into the new one.
fn write_scale(
    state: &ApiState,
    k: &'static KindInfo,
    ns: &str,
    name: &str,
    opts: &WriteOptions,
    f: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let out = state
        .store
        .patch_in(k, ns, name, Subresource::Main, opts, |live| {
            let live = live.ok_or_else(|| ApiError::not_found(k, name))?;
            let scale = f(&scale_of(live))?;
            if scale["kind"].as_str().is_some_and(|s| s != "Scale") {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({}) does not match the expected kind (Scale)",
                    scale["kind"].as_str().unwrap_or("")
                )));
            }
            if let Some(rv) = scale["metadata"]["resourceVersion"].as_str()
                && !rv.is_empty()
                && Some(rv) != live["metadata"]["resourceVersion"].as_str()
            {
                return Err(ApiError::conflict(k, name));
            }
            let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    &SCALE,
                    name,
                    &[kinds::FieldError::invalid(
                        "spec.replicas",
                        &replicas.to_string(),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = live.clone();
            new["spec"]["replicas"] = json!(replicas);
            let track = engine::PatchOptions {
                field_manager: opts.field_manager.as_deref(),
                subresource: Some("scale"),
                ..Default::default()
            };
            let new = engine::record_update(k.kind, Some(live), new, &track);
            Ok(new)
        })?;
    Ok(scale_of(&out.object))
}

// ---------------------------------------------------------------------------
// Service proxy.
// ---------------------------------------------------------------------------

async fn proxy(
    state: &Arc<ApiState>,
    t: &Target,
    req: Request<Body>,
) -> Result<Response<Body>, ApiError> {
    let k = t.kind;
    let ns = t.namespace.clone().ok_or_else(ApiError::no_route)?;
    let spec = t.name.clone().unwrap_or_default();
    // [scheme:]name[:port]
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, port) = match parts.as_slice() {
        [n] => (*n, ""),
        [n, p] if *n != "http" && *n != "https" => (*n, *p),
        [_, n] => (*n, ""),
        [_, n, p] => (*n, *p),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid service request {}",
                kinds::go_quote(&spec)
            )));
        }
    };
    let svc = state.store.get_in(k, "v1", &ns, name)?;
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let chosen = if port.is_empty() {
        ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or("").is_empty())
    } else if let Ok(n) = port.parse::<i64>() {
        ports.iter().find(|p| p["port"].as_i64() == Some(n))
    } else {
        ports.iter().find(|p| p["name"].as_str() == Some(port))
    };
    let Some(chosen) = chosen else {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service {}",
            kinds::go_quote(name)
        )));
    };
    let port_num = chosen["port"].as_i64().unwrap_or(0) as u16;
    let backend = state
        .backends
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(ns.clone(), name.to_string(), port_num))
        .cloned();
    let Some(router) = backend else {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service {}",
            kinds::go_quote(name)
        )));
    };
    let mut path = format!("/{}", t.tail.join("/"));
    if req.uri().path().ends_with('/') && !t.tail.is_empty() {
        path.push('/');
    }
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    let (parts, body) = req.into_parts();
    let mut fwd = Request::builder().method(parts.method).uri(path);
    for (h, v) in &parts.headers {
        if h == header::AUTHORIZATION || h == header::CONNECTION || h == "proxy-authorization" {
            continue;
        }
        fwd = fwd.header(h, v);
    }
    let fwd = fwd
        .body(body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match router.oneshot(fwd).await {
        Ok(r) => Ok(r),
        Err(never) => match never {},
    }
}

// ---------------------------------------------------------------------------
// Patches: the engine is `sim::patch`; this maps its errors to `Status`.
// ---------------------------------------------------------------------------

fn patch_error(k: &KindInfo, name: &str, e: engine::PatchError) -> ApiError {
    if let engine::PatchError::NotFound = e {
        return ApiError::not_found(k, name);
    }
    let causes: Vec<Value> = e
        .causes()
        .into_iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    ApiError {
        code: e.status_code(),
        reason: e.reason(),
        message: e.to_string(),
        details: (!causes.is_empty()).then(|| json!({"causes": causes})),
    }
}

/// Runs one patch. `live` is in the request's version; `None` only for a
/// server-side apply that creates.
#[allow(clippy::too_many_arguments)]
fn run_patch(
    k: &KindInfo,
    name: &str,
    live: Option<&Value>,
    body: &[u8],
    pt: PatchType,
    manager: Option<&str>,
    force: bool,
    sub: Option<&str>,
) -> Result<Value, ApiError> {
    let opts = engine::PatchOptions {
        field_manager: manager,
        force,
        subresource: sub,
        now: None,
    };
    engine::apply_patch_with(k.kind, live, body, pt, &opts).map_err(|e| patch_error(k, name, e))
}

// ---------------------------------------------------------------------------
// Server-side printing (`Accept: ...;as=Table`), as `kubectl get` asks.
// ---------------------------------------------------------------------------

mod tables {
    use super::*;

    fn col(name: &str, typ: &str, format: &str, priority: u8, description: &str) -> Value {
        json!({"name": name, "type": typ, "format": format, "description": description, "priority": priority})
    }

    /// `duration.HumanDuration` of the real printers.
    pub fn human_duration(secs: i64) -> String {
        if secs < -1 {
            return "<invalid>".into();
        }
        let s = secs.max(0);
        let (m, h) = (s / 60, s / 3600);
        let d = h / 24;
        let y = d / 365;
        if s < 120 {
            format!("{s}s")
        } else if m < 10 {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        } else if m < 180 {
            format!("{m}m")
        } else if h < 8 {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        } else if h < 48 {
            format!("{h}h")
        } else if h < 24 * 8 {
            if h % 24 == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{}h", h % 24)
            }
        } else if h < 24 * 365 * 2 {
            format!("{d}d")
        } else if h < 24 * 365 * 8 {
            if d % 365 == 0 {
                format!("{y}y")
            } else {
                format!("{y}y{}d", d % 365)
            }
        } else {
            format!("{y}y")
        }
    }

    fn age(ts: &Value) -> String {
        let Some(s) = ts.as_str() else {
            return "<unknown>".into();
        };
        match s.parse::<k8s_openapi::jiff::Timestamp>() {
            Ok(t) => {
                human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second())
            }
            Err(_) => "<unknown>".into(),
        }
    }

    fn int(v: &Value) -> Value {
        json!(v.as_i64().unwrap_or(0))
    }

    fn or_none(s: String) -> String {
        if s.is_empty() { "<none>".into() } else { s }
    }

    fn joined(v: &Value, field: &str) -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c[field].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    }

    fn columns_and_cells(k: &KindInfo, o: &Value) -> (Vec<Value>, Vec<Value>) {
        const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
        const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
        let name = json!(o["metadata"]["name"].as_str().unwrap_or(""));
        let created_age = json!(age(&o["metadata"]["creationTimestamp"]));
        let (spec, status) = (&o["spec"], &o["status"]);
        match (k.group, k.kind) {
            ("apps", "Deployment") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col(
                        "Ready",
                        "string",
                        "",
                        0,
                        "Number of the pod with ready state",
                    ),
                    col(
                        "Up-to-date",
                        "string",
                        "",
                        0,
                        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    ),
                    col(
                        "Available",
                        "string",
                        "",
                        0,
                        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                    col(
                        "Containers",
                        "string",
                        "",
                        1,
                        "Names of each container in the template.",
                    ),
                    col(
                        "Images",
                        "string",
                        "",
                        1,
                        "Images referenced by each container in the template.",
                    ),
                    col(
                        "Selector",
                        "string",
                        "",
                        1,
                        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                    ),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        status["readyReplicas"].as_i64().unwrap_or(0),
                        spec["replicas"].as_i64().unwrap_or(0)
                    )),
                    int(&status["updatedReplicas"]),
                    int(&status["availableReplicas"]),
                    created_age,
                    json!(joined(&spec["template"]["spec"]["containers"], "name")),
                    json!(joined(&spec["template"]["spec"]["containers"], "image")),
                    json!(or_none(kinds::label_selector_string(&spec["selector"]))),
                ],
            ),
            ("", "Service") => {
                let ports = spec["ports"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                format!(
                                    "{}/{}",
                                    p["port"].as_i64().unwrap_or(0),
                                    p["protocol"].as_str().unwrap_or("TCP")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let selector = spec["selector"]
                    .as_object()
                    .map(|m| {
                        let mut v: Vec<String> = m
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect();
                        v.sort();
                        v.join(",")
                    })
                    .unwrap_or_default();
                (
                    vec![
                        col("Name", "string", "name", 0, NAME_DESC),
                        col(
                            "Type",
                            "string",
                            "",
                            0,
                            "type determines how the Service is exposed.",
                        ),
                        col(
                            "Cluster-IP",
                            "string",
                            "",
                            0,
                            "clusterIP is the IP address of the service.",
                        ),
                        col(
                            "External-IP",
                            "string",
                            "",
                            0,
                            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                        ),
                        col(
                            "Port(s)",
                            "string",
                            "",
                            0,
                            "The list of ports that are exposed by this service.",
                        ),
                        col("Age", "string", "", 0, AGE_DESC),
                        col(
                            "Selector",
                            "string",
                            "",
                            1,
                            "Route service traffic to pods with label keys and values matching this selector.",
                        ),
                    ],
                    vec![
                        name,
                        json!(spec["type"].as_str().unwrap_or("ClusterIP")),
                        json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                        json!("<none>"),
                        json!(or_none(ports)),
                        created_age,
                        json!(or_none(selector)),
                    ],
                )
            }
            ("", "Pod") => {
                let cs = status["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let total = spec["containers"].as_array().map_or(0, Vec::len);
                let ready = cs.iter().filter(|c| c["ready"] == json!(true)).count();
                let restarts: i64 = cs
                    .iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum();
                let reason = cs
                    .iter()
                    .find_map(|c| c["state"]["waiting"]["reason"].as_str())
                    .or(status["reason"].as_str())
                    .or(status["phase"].as_str())
                    .unwrap_or("Pending");
                (
                    vec![
                        col("Name", "string", "name", 0, NAME_DESC),
                        col(
                            "Ready",
                            "string",
                            "",
                            0,
                            "The aggregate readiness state of this pod for accepting traffic.",
                        ),
                        col(
                            "Status",
                            "string",
                            "",
                            0,
                            "The aggregate status of the containers in this pod.",
                        ),
                        col(
                            "Restarts",
                            "string",
                            "",
                            0,
                            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                        ),
                        col("Age", "string", "", 0, AGE_DESC),
                        col(
                            "IP",
                            "string",
                            "",
                            1,
                            "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                        ),
                        col(
                            "Node",
                            "string",
                            "",
                            1,
                            "NodeName is a request to schedule this pod onto a specific node.",
                        ),
                    ],
                    vec![
                        name,
                        json!(format!("{ready}/{total}")),
                        json!(reason),
                        json!(restarts.to_string()),
                        created_age,
                        json!(status["podIP"].as_str().unwrap_or("<none>")),
                        json!(spec["nodeName"].as_str().unwrap_or("<none>")),
                    ],
                )
            }
            ("apps", "ReplicaSet") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col(
                        "Desired",
                        "integer",
                        "",
                        0,
                        "Replicas is the number of desired pods.",
                    ),
                    col(
                        "Current",
                        "integer",
                        "",
                        0,
                        "Replicas is the most recently observed number of replicas.",
                    ),
                    col(
                        "Ready",
                        "integer",
                        "",
                        0,
                        "The number of ready replicas for this replica set.",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                    col(
                        "Containers",
                        "string",
                        "",
                        1,
                        "Names of each container in the template.",
                    ),
                    col(
                        "Images",
                        "string",
                        "",
                        1,
                        "Images referenced by each container in the template.",
                    ),
                    col(
                        "Selector",
                        "string",
                        "",
                        1,
                        "Selector is a label query over pods that should match the replica count.",
                    ),
                ],
                vec![
                    name,
                    int(&spec["replicas"]),
                    int(&status["replicas"]),
                    int(&status["readyReplicas"]),
                    created_age,
                    json!(joined(&spec["template"]["spec"]["containers"], "name")),
                    json!(joined(&spec["template"]["spec"]["containers"], "image")),
                    json!(or_none(kinds::label_selector_string(&spec["selector"]))),
                ],
            ),
            ("apps", "DaemonSet") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col(
                        "Desired",
                        "integer",
                        "",
                        0,
                        "The total number of nodes that should be running the daemon pod.",
                    ),
                    col(
                        "Current",
                        "integer",
                        "",
                        0,
                        "The number of nodes that are running at least 1 daemon pod.",
                    ),
                    col(
                        "Ready",
                        "integer",
                        "",
                        0,
                        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                    ),
                    col(
                        "Up-to-date",
                        "integer",
                        "",
                        0,
                        "The total number of nodes that are running updated daemon pod.",
                    ),
                    col(
                        "Available",
                        "integer",
                        "",
                        0,
                        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                    ),
                    col(
                        "Node Selector",
                        "string",
                        "",
                        0,
                        "NodeSelector is a selector which must be true for the pod to fit on a node.",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    int(&status["desiredNumberScheduled"]),
                    int(&status["currentNumberScheduled"]),
                    int(&status["numberReady"]),
                    int(&status["updatedNumberScheduled"]),
                    int(&status["numberAvailable"]),
                    json!(or_none(
                        spec["template"]["spec"]["nodeSelector"]
                            .as_object()
                            .map(|m| m
                                .iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(","))
                            .unwrap_or_default()
                    )),
                    created_age,
                ],
            ),
            ("", "Namespace") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col("Status", "string", "", 0, "The status of the namespace"),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(status["phase"].as_str().unwrap_or("Active")),
                    created_age,
                ],
            ),
            ("", "ServiceAccount") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col(
                        "Secrets",
                        "string",
                        "",
                        0,
                        "The secrets listed on the service account.",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(o["secrets"].as_array().map_or(0, Vec::len)),
                    created_age,
                ],
            ),
            ("", "ConfigMap") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col(
                        "Data",
                        "string",
                        "",
                        0,
                        "Data contains the configuration data.",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(
                        o["data"].as_object().map_or(0, |m| m.len())
                            + o["binaryData"].as_object().map_or(0, |m| m.len())
                    ),
                    created_age,
                ],
            ),
            ("", "Secret") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col("Type", "string", "", 0, "The type of the secret"),
                    col(
                        "Data",
                        "string",
                        "",
                        0,
                        "The number of entries in the secret",
                    ),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(o["data"].as_object().map_or(0, |m| m.len())),
                    created_age,
                ],
            ),
            ("autoscaling", "HorizontalPodAutoscaler") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col("Reference", "string", "", 0, "reference to scaled resource"),
                    col("Targets", "string", "", 0, "current/target metric values"),
                    col("MinPods", "string", "", 0, "minimum number of replicas"),
                    col("MaxPods", "string", "", 0, "maximum number of replicas"),
                    col("Replicas", "string", "", 0, "current number of replicas"),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        spec["scaleTargetRef"]["kind"].as_str().unwrap_or(""),
                        spec["scaleTargetRef"]["name"].as_str().unwrap_or("")
                    )),
                    json!("<unknown>"),
                    json!(spec["minReplicas"].as_i64().unwrap_or(1).to_string()),
                    int(&spec["maxReplicas"]),
                    int(&status["currentReplicas"]),
                    created_age,
                ],
            ),
            ("coordination.k8s.io", "Lease") => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col("Holder", "string", "", 0, "The holder of the lease"),
                    col("Age", "string", "", 0, AGE_DESC),
                ],
                vec![
                    name,
                    json!(spec["holderIdentity"].as_str().unwrap_or("")),
                    created_age,
                ],
            ),
            ("", "Event") => (
                vec![
                    col(
                        "Last Seen",
                        "string",
                        "",
                        0,
                        "Time when this event was last seen",
                    ),
                    col(
                        "Type",
                        "string",
                        "",
                        0,
                        "Type of this event (Normal, Warning)",
                    ),
                    col(
                        "Reason",
                        "string",
                        "",
                        0,
                        "Reason for the transition into the object's current status",
                    ),
                    col(
                        "Object",
                        "string",
                        "",
                        0,
                        "The object that this event is about",
                    ),
                    col(
                        "Message",
                        "string",
                        "",
                        0,
                        "A human-readable description of the status of this operation",
                    ),
                ],
                vec![
                    json!(age(if o["lastTimestamp"].is_string() {
                        &o["lastTimestamp"]
                    } else {
                        &o["metadata"]["creationTimestamp"]
                    })),
                    json!(o["type"].as_str().unwrap_or("")),
                    json!(o["reason"].as_str().unwrap_or("")),
                    json!(format!(
                        "{}/{}",
                        o["involvedObject"]["kind"]
                            .as_str()
                            .unwrap_or("")
                            .to_lowercase(),
                        o["involvedObject"]["name"].as_str().unwrap_or("")
                    )),
                    json!(o["message"].as_str().unwrap_or("")),
                ],
            ),
            _ => (
                vec![
                    col("Name", "string", "name", 0, NAME_DESC),
                    col("Age", "string", "date", 0, AGE_DESC),
                ],
                vec![name, created_age],
            ),
        }
    }

    /// A `meta.k8s.io/v1` Table of `objects`.
    pub fn table(k: &KindInfo, objects: &[Value], q: &Query, list_meta: Option<Value>) -> Value {
        let include = q.get("includeObject").unwrap_or("Metadata");
        let mut columns = None;
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let (cols, cells) = columns_and_cells(k, o);
                columns.get_or_insert(cols);
                let object = match include {
                    "None" => Value::Null,
                    "Object" => o.clone(),
                    _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
                };
                let mut row = json!({"cells": cells});
                if !object.is_null() {
                    row["object"] = object;
                }
                row
            })
            .collect();
        let columns = columns.unwrap_or_else(|| columns_and_cells(k, &json!({"metadata": {}})).0);
        let mut meta = list_meta.unwrap_or_else(|| json!({}));
        if meta.get("resourceVersion").is_none()
            && let Some(rv) = objects
                .first()
                .and_then(|o| o["metadata"]["resourceVersion"].as_str())
        {
            meta["resourceVersion"] = json!(rv);
        }
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn ages_read_like_kubectl() {
            assert_eq!(super::human_duration(5), "5s");
            assert_eq!(super::human_duration(200), "3m20s");
            assert_eq!(super::human_duration(3600 * 5), "5h");
            assert_eq!(super::human_duration(86400 * 3 + 3600), "3d1h");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/b");
        assert_eq!(decode_continue(&t), Some((42, "default/b".to_string())));
    }

    #[test]
    fn continue_tokens_are_url_safe_base64_without_padding() {
        let t = encode_continue(42, "a/~~~");
        assert_eq!(
            t,
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0IjoiYS9-fn4ifQ"
        );
        let padded = format!("{t}==");
        assert_eq!(decode_continue(&padded), Some((42, "a/~~~".to_string())));
        assert_eq!(decode_continue("not base64!"), None);
    }

    #[test]
    fn percent_decoding_handles_selectors() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dpodinfo%2Cx+in+%28a%29&limit=100%",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=podinfo,x in (a)"));
        assert_eq!(q.get("limit"), Some("100%"));
    }
}
