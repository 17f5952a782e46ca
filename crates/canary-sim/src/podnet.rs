//! The cluster's Pod network, as a process running in a Pod reaches it:
//! a Service name resolves through cluster DNS and the connection goes to
//! the Service's backends, without the API server.
//!
//! Cluster DNS names do not resolve on the machine the sim runs on, so the
//! Pod network is served as an HTTP forward proxy on a loopback port of its
//! own ([`crate::server::Sim::pod_network_url`]): a client pointed at it
//! with the standard `HTTP_PROXY` variable (as reqwest and curl honour it)
//! reaches `http://prometheus.linkerd-viz:9090/` as a Pod would. Names
//! resolve as the Pod's DNS search path resolves them:
//!
//! | host                                 | Service                          |
//! |--------------------------------------|----------------------------------|
//! | `name`                               | `name` in the Pod's namespace (the sim's) |
//! | `name.namespace`                     | `name` in `namespace`            |
//! | `name.namespace.svc`                 | `name` in `namespace`            |
//! | `name.namespace.svc.cluster.local`   | `name` in `namespace`            |
//!
//! A name that is no Service fails as DNS would (`no such host`), a port
//! the Service does not have or that no backend serves as a refused
//! connection, both as the proxy's 502. Only plain HTTP is carried (the
//! sim's in-cluster services speak nothing else): `CONNECT` is refused.
//!
//! Every request is recorded in a log of its own, apart from the API
//! server's, so a test can tell a request that went direct from one that
//! went through the service proxy. The API server's token, RBAC rules and
//! faults do not apply here: Pod-to-Service traffic never meets them
//! (the metrics outage does, being the Prometheus backend's own).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use tower::ServiceExt;

use crate::api::ApiState;

/// One request that reached the Pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRequest {
    pub method: String,
    /// The host as the client named it, e.g. `prometheus.linkerd-viz`.
    pub host: String,
    pub port: u16,
    /// Path with query, e.g. `/api/v1/query?query=up`.
    pub path: String,
    /// What the client got: the backend's status, or the proxy's 502.
    pub status: u16,
}

/// The Pod network's request log.
#[derive(Debug, Default)]
pub(crate) struct PodLog {
    entries: Mutex<Vec<PodRequest>>,
}

/// Bounded like the API server's log: a long demo must not grow it forever.
const LOG_LIMIT: usize = 100_000;

impl PodLog {
    fn push(&self, r: PodRequest) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() >= LOG_LIMIT {
            e.drain(..LOG_LIMIT / 10);
        }
        e.push(r);
    }

    pub(crate) fn entries(&self) -> Vec<PodRequest> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The forward proxy's router: every request, whatever its path, is one to
/// forward. `namespace` is the Pod's, for single-label names.
pub(crate) fn router(state: Arc<ApiState>, log: Arc<PodLog>, namespace: String) -> Router {
    let namespace = Arc::new(namespace);
    Router::new().fallback(move |req: Request<Body>| {
        let (state, log, namespace) = (state.clone(), log.clone(), namespace.clone());
        async move { forward(&state, &log, &namespace, req).await }
    })
}

async fn forward(
    state: &ApiState,
    log: &PodLog,
    pod_namespace: &str,
    req: Request<Body>,
) -> Response<Body> {
    let method = req.method().to_string();
    let host = req.uri().host().unwrap_or_default().to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let resp = if req.method() == Method::CONNECT {
        bad_gateway(format!(
            "the simulated Pod network carries plain HTTP only: no CONNECT to {host}:{port}"
        ))
    } else if req.uri().scheme_str() != Some("http") || host.is_empty() {
        // An origin-form request: someone took the proxy for a server.
        text(
            StatusCode::BAD_REQUEST,
            format!(
                "this is the simulated Pod network, an HTTP forward proxy: ask it for an \
                 absolute http:// URL, not {path}"
            ),
        )
    } else {
        match backend(state, pod_namespace, &host, port) {
            Ok(router) => send(router, req, &path).await,
            Err(message) => bad_gateway(message),
        }
    };
    log.push(PodRequest {
        method,
        host,
        port,
        path,
        status: resp.status().as_u16(),
    });
    resp
}

/// The backend a Pod connecting to `host:port` reaches, or why it reaches
/// none, in the words of Go's dialer (what a proxy in Go would answer).
fn backend(state: &ApiState, pod_namespace: &str, host: &str, port: u16) -> Result<Router, String> {
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let (name, namespace) = match labels.as_slice() {
        [name] => (*name, pod_namespace),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns),
        _ => return Err(format!("dial tcp: lookup {host}: no such host")),
    };
    let refused = || format!("dial tcp {host}:{port}: connect: connection refused");
    let Some(service) = state.store.get("v1", "Service", namespace, name) else {
        return Err(format!("dial tcp: lookup {host}: no such host"));
    };
    let has_port = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["port"].as_u64() == Some(u64::from(port)));
    if !has_port {
        return Err(refused());
    }
    state
        .backends
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(namespace.to_string(), name.to_string(), port))
        .cloned()
        .ok_or_else(refused)
}

/// Hands the request to the backend as the Pod sent it, less the headers
/// meant for the proxy itself. Unlike the API server's service proxy, the
/// caller's `Authorization` header goes through: the backend checks it.
async fn send(router: Router, req: Request<Body>, path: &str) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut fwd = Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        let hop_by_hop = name == header::CONNECTION
            || name == header::PROXY_AUTHORIZATION
            || name.as_str() == "proxy-connection"
            || name.as_str() == "keep-alive";
        if !hop_by_hop {
            fwd = fwd.header(name, value);
        }
    }
    match fwd.body(body) {
        Ok(fwd) => match router.oneshot(fwd).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

fn bad_gateway(message: String) -> Response<Body> {
    text(StatusCode::BAD_GATEWAY, message)
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
