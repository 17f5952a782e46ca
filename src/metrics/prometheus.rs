//! The Prometheus client: one instant query, read the way Flagger reads it.
//!
//! From `pkg/metrics/providers/prometheus.go` of fluxcd/flagger:
//!
//! * the query's whitespace runs (Go's `\s`) become one space
//!   ([`super::template::collapse_whitespace`]);
//! * `GET <address>/api/v1/query?query=<url.QueryEscape(query)>`, the
//!   address's own path kept as a prefix (`http://host/prom` queries
//!   `/prom/api/v1/query`), with a 5 second limit;
//! * credentials from the MetricTemplate's `secretRef`: the `token` key as
//!   a bearer token, else both `username` and `password` for basic auth
//!   (a Secret with neither is an error);
//! * a status of 400 or more is an error carrying the body;
//! * of the `result` samples, Flagger takes the **last** one whose value
//!   is a string (it loops over them all, overwriting); none, or `NaN`, is
//!   "no values found";
//! * the availability check runs `vector(1)` and wants `1`.
//!
//! Deliberate differences: a `scalar` result is read (Flagger fails to
//! decode it); a range-vector (`matrix`) result is a clear error (Flagger
//! panics on it); and an answer with several series is an error naming
//! them, not the last one's value: with Flagger, series 10 and 99.9
//! against `min: 50` pass, since only 99.9 is compared, whatever order
//! Prometheus lists them in. An infinite value is judged a failed check
//! by the engine ([`canary_core::engine::decide::judge_metric`]), where
//! Flagger lets `+Inf` pass a `min`.
//!
//! The server is reached through [`HttpEdge`], so an in-cluster address
//! goes through the API server's service proxy. Credentials cannot travel
//! that way (the API server consumes the `Authorization` header), so a
//! server that needs them must be reachable directly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::prelude::{BASE64_STANDARD, Engine as _};

use http::Method;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::cluster::proxy::{
    EXCERPT_LEN, EdgeError, HttpEdge, HttpRequest, Route, display_url_str, excerpt,
};
use canary_core::queries::template::collapse_whitespace;
use canary_core::time::Time;

/// Flagger's per-query time limit.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The query Flagger's `IsOnline` runs; the answer must be 1.
pub(crate) const ONLINE_QUERY: &str = "vector(1)";

/// Credentials for the metrics server. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { .. } => {
                f.write_str("Basic { username: <redacted>, password: <redacted> }")
            }
        }
    }
}

impl Auth {
    fn header(&self) -> Result<HeaderValue, MetricError> {
        let value = match self {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::Basic { username, password } => format!(
                "Basic {}",
                BASE64_STANDARD.encode(format!("{username}:{password}"))
            ),
        };
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            MetricError::Query(
                "the credentials contain characters not allowed in an HTTP header (a trailing newline in the Secret?)"
                    .to_string(),
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// A Prometheus-compatible server to query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricServer {
    /// `http(s)://host[:port][/prefix]`.
    pub address: String,
    pub auth: Option<Auth>,
    /// The MetricTemplate provider's extra `headers`.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The provider's `insecureSkipVerify`.
    pub insecure_skip_verify: bool,
    pub timeout: Duration,
    /// Namespace of a single-label address; the edge's default when `None`.
    pub namespace: Option<String>,
}

impl MetricServer {
    pub fn new(address: impl Into<String>) -> Self {
        MetricServer {
            address: address.into(),
            auth: None,
            headers: BTreeMap::new(),
            insecure_skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
            namespace: None,
        }
    }
}

/// Why a query has no value.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The query matched nothing (or yielded `NaN`): usually no traffic.
    #[error("no values found")]
    NoValues,
    /// Prometheus refused or failed the query, or answered something that
    /// is not a query result.
    #[error("{0}")]
    Query(String),
    /// No answer from the server.
    #[error(transparent)]
    Transport(#[from] EdgeError),
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("failed to read secret {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("secret {namespace}/{name} has no `token` key and no `{missing}` key")]
    Missing {
        namespace: String,
        name: String,
        missing: &'static str,
    },
}

/// Runs `query` (at `at`, else now) and returns its value.
pub async fn query(
    edge: &HttpEdge,
    server: &MetricServer,
    query: &str,
    at: Option<Time>,
) -> Result<f64, MetricError> {
    parse_value(&fetch(edge, server, query, at).await?)
}

/// Runs `query` now and returns each sample of its instant vector by the
/// values of `labels`, in order (samples without one of them are left
/// out).
pub(crate) async fn query_by(
    edge: &HttpEdge,
    server: &MetricServer,
    query: &str,
    labels: &[&str],
) -> Result<BTreeMap<Vec<String>, f64>, MetricError> {
    let body = fetch(edge, server, query, None).await?;
    if let Some(msg) = error_message(&body) {
        return Err(MetricError::Query(msg));
    }
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| MetricError::Query(format!("failed to decode the answer: {e}")))?;
    let mut out = BTreeMap::new();
    for s in v["data"]["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key: Option<Vec<String>> = labels
            .iter()
            .map(|l| s["metric"][*l].as_str().map(str::to_string))
            .collect();
        if let (Some(key), Some(text)) = (key, s["value"][1].as_str()) {
            out.insert(key, parse_float(text)?);
        }
    }
    Ok(out)
}

/// Sends `query` to `server` with its headers and credentials and returns
/// the answer's body; a refusal or an error status is a [`MetricError`].
async fn fetch(
    edge: &HttpEdge,
    server: &MetricServer,
    query: &str,
    at: Option<Time>,
) -> Result<String, MetricError> {
    let url = query_url(&server.address, &collapse_whitespace(query), at)?;
    let mut req = HttpRequest::new(Method::GET, &url, server.timeout);
    req.namespace = server.namespace.as_deref();
    req.insecure_skip_verify = server.insecure_skip_verify;
    for (name, values) in &server.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            MetricError::Query(format!(
                "invalid header name `{name}` in the provider's headers"
            ))
        })?;
        for v in values {
            let v = HeaderValue::from_str(v).map_err(|_| {
                MetricError::Query(format!(
                    "invalid value for header `{name}` in the provider's headers"
                ))
            })?;
            req.headers.append(name.clone(), v);
        }
    }
    if let Some(auth) = &server.auth {
        req.headers.insert(AUTHORIZATION, auth.header()?);
    }
    let reply = edge.send(req).await?;
    if reply.status >= 400 {
        if let Some(msg) = error_message(&reply.body) {
            return Err(MetricError::Query(msg));
        }
        if matches!(reply.status, 401 | 403)
            && server.auth.is_some()
            && matches!(
                edge.route(&server.address, server.namespace.as_deref()),
                Ok(Route::Proxy(_))
            )
        {
            return Err(MetricError::Query(format!(
                "HTTP {}: credentials cannot pass the API server's service proxy; \
                 give a metrics server address reachable directly (a public URL or a port-forward)",
                reply.status
            )));
        }
        return Err(EdgeError::Status {
            target: display_url_str(&url),
            status: reply.status,
            excerpt: excerpt(&reply.body, EXCERPT_LEN),
        }
        .into());
    }
    Ok(reply.body)
}

/// Checks that the server answers queries: a clear error before the
/// analysis starts rather than failed checks during it.
pub async fn ready(edge: &HttpEdge, server: &MetricServer) -> Result<(), MetricError> {
    let v = match query(edge, server, ONLINE_QUERY, None).await {
        Ok(v) => v,
        Err(MetricError::NoValues) => {
            return Err(MetricError::Query(format!(
                "{} answered no value for `{ONLINE_QUERY}`; is it a Prometheus API?",
                display_url_str(&server.address)
            )));
        }
        Err(e) => return Err(e),
    };
    if v != 1.0 {
        return Err(MetricError::Query(format!(
            "{} answered {v} for `{ONLINE_QUERY}` instead of 1",
            display_url_str(&server.address)
        )));
    }
    Ok(())
}

/// Reads Prometheus credentials from a Secret as Flagger does.
pub async fn auth_from_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Auth, CredentialsError> {
    let data = secret_data(client, namespace, name).await?;
    auth_from_data(&data, namespace, name)
}

/// The data of a MetricTemplate's Secret, every value taught to the
/// redactor.
pub(crate) async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, CredentialsError> {
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await.map_err(|e| CredentialsError::Read {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source: Box::new(e),
    })?;
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for v in data.values() {
        crate::secrets::redactor().learn(&String::from_utf8_lossy(v));
    }
    Ok(data)
}

/// The credentials in a Secret's data: `token`, else `username` and
/// `password`. Values are used as stored (Flagger does not trim them).
pub(crate) fn auth_from_data(
    data: &BTreeMap<String, Vec<u8>>,
    namespace: &str,
    name: &str,
) -> Result<Auth, CredentialsError> {
    let text = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    // Every value of the Secret is a secret, whichever key it is under.
    for v in data.values() {
        crate::secrets::redactor().learn(&String::from_utf8_lossy(v));
    }
    if let Some(token) = text("token") {
        return Ok(Auth::Bearer(token));
    }
    let missing = |missing| CredentialsError::Missing {
        namespace: namespace.to_string(),
        name: name.to_string(),
        missing,
    };
    let username = text("username").ok_or_else(|| missing("username"))?;
    let password = text("password").ok_or_else(|| missing("password"))?;
    crate::secrets::redactor().learn_basic(
        &username,
        &password,
        &BASE64_STANDARD.encode(format!("{username}:{password}")),
    );
    Ok(Auth::Basic { username, password })
}

/// `<address>/api/v1/query?query=...[&time=...]`.
fn query_url(address: &str, query: &str, at: Option<Time>) -> Result<String, MetricError> {
    let mut url = reqwest::Url::parse(address).map_err(|e| EdgeError::InvalidUrl {
        url: display_url_str(address),
        reason: e.to_string(),
    })?;
    let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    let mut q = format!("query={}", query_escape(query));
    if let Some(t) = at {
        q.push_str(&format!(
            "&time={}.{:03}",
            t.0.div_euclid(1000),
            t.0.rem_euclid(1000)
        ));
    }
    url.set_query(Some(&q));
    url.set_fragment(None);
    Ok(url.to_string())
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space is `+`, the rest
/// is `%XX`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `errorType: error` from Prometheus' error JSON.
fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    if v["status"] != "error" {
        return None;
    }
    let error = v["error"].as_str().unwrap_or("unknown error");
    Some(match v["errorType"].as_str() {
        Some(t) if !t.is_empty() => format!("{t}: {error}"),
        _ => error.to_string(),
    })
}

/// The value of a successful answer, as Flagger reads it.
fn parse_value(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| {
        MetricError::Query(format!(
            "failed to decode the answer: {e}: {}",
            excerpt(body, EXCERPT_LEN)
        ))
    })?;
    if let Some(msg) = error_message(body) {
        return Err(MetricError::Query(msg));
    }
    let data = &v["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") | None => {
            let samples = data["result"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let valued: Vec<&Value> = samples
                .iter()
                .filter(|s| s["value"][1].as_str().is_some())
                .collect();
            if valued.len() > 1 {
                return Err(MetricError::Query(several_series(&valued)));
            }
            match valued.first() {
                Some(s) => Some(parse_float(s["value"][1].as_str().unwrap_or_default())?),
                None => None,
            }
        }
        Some("scalar") => match data["result"][1].as_str() {
            Some(text) => Some(parse_float(text)?),
            None => None,
        },
        Some("matrix") => {
            return Err(MetricError::Query(
                "the query returns a range vector; it must return an instant vector or a scalar"
                    .to_string(),
            ));
        }
        Some(other) => {
            return Err(MetricError::Query(format!(
                "the query returns a {other}; it must return an instant vector or a scalar"
            )));
        }
    };
    match value {
        Some(v) if !v.is_nan() => Ok(v),
        _ => Err(MetricError::NoValues),
    }
}

/// Why an answer of several series cannot be judged, naming a few of
/// them by their labels and values.
fn several_series(samples: &[&Value]) -> String {
    const SHOWN: usize = 3;
    let shown: Vec<String> = samples
        .iter()
        .take(SHOWN)
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let value = s["value"][1].as_str().unwrap_or("?");
            excerpt(&format!("{{{labels}}} {value}"), 120)
        })
        .collect();
    let more = if samples.len() > SHOWN {
        format!(", and {} more", samples.len() - SHOWN)
    } else {
        String::new()
    };
    format!(
        "the query returned {} series ({}{more}); a check needs exactly one value: \
         aggregate the query, e.g. with sum(...) or max(...)",
        samples.len(),
        shown.join("; ")
    )
}

/// Go's `strconv.ParseFloat` on Prometheus' sample strings (`+Inf`, `NaN`).
fn parse_float(text: &str) -> Result<f64, MetricError> {
    text.parse::<f64>()
        .map_err(|_| MetricError::Query(format!("the sample value `{text}` is not a number")))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    use super::*;

    #[derive(Default)]
    struct Prom {
        /// (path, raw query, Authorization header) of each request.
        seen: Mutex<Vec<(String, String, Option<String>)>>,
        /// The answer: status and body.
        answer: Mutex<(u16, String)>,
    }

    async fn handler(
        State(p): State<Arc<Prom>>,
        uri: axum::http::Uri,
        RawQuery(q): RawQuery,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        p.seen
            .lock()
            .unwrap()
            .push((uri.path().to_string(), q.unwrap_or_default(), auth));
        let (status, body) = p.answer.lock().unwrap().clone();
        (StatusCode::from_u16(status).unwrap(), body)
    }

    async fn serve() -> (String, Arc<Prom>) {
        let p = Arc::new(Prom::default());
        let app = Router::new()
            .route("/{*path}", get(handler))
            .with_state(p.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, p)
    }

    fn answer(p: &Prom, status: u16, body: &str) {
        *p.answer.lock().unwrap() = (status, body.to_string());
    }

    fn vector(values: &[&str]) -> String {
        let samples: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"metric":{{"pod":"x"}},"value":[1700000000.5,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            samples.join(",")
        )
    }

    async fn run(p: &Prom, base: &str, status: u16, body: &str) -> Result<f64, MetricError> {
        answer(p, status, body);
        let edge = HttpEdge::direct_only("test").unwrap();
        query(&edge, &MetricServer::new(base), "up", None).await
    }

    #[tokio::test]
    async fn a_vector_of_one_series_gives_its_value() {
        let (base, p) = serve().await;
        assert_eq!(run(&p, &base, 200, &vector(&["99.5"])).await.unwrap(), 99.5);
        // Read as it is; the engine judges an infinite value a failure.
        assert_eq!(
            run(&p, &base, 200, &vector(&["+Inf"])).await.unwrap(),
            f64::INFINITY
        );
    }

    #[tokio::test]
    async fn several_series_are_an_error_not_the_last_value() {
        // Flagger would compare 99.9 only, and pass `min: 50`.
        let (base, p) = serve().await;
        let e = run(&p, &base, 200, &vector(&["10", "99.9"]))
            .await
            .unwrap_err();
        let MetricError::Query(why) = &e else {
            panic!("{e:?}")
        };
        assert!(why.starts_with("the query returned 2 series"), "{why}");
        assert!(why.contains("{pod=x} 10; {pod=x} 99.9"), "{why}");
        assert!(why.contains("sum(...)"), "{why}");
        let many: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = run(&p, &base, 200, &vector(&many)).await.unwrap_err();
        assert!(e.to_string().contains("and 7 more"), "{e}");
    }

    #[tokio::test]
    async fn a_scalar_is_read() {
        let (base, p) = serve().await;
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42"]}}"#;
        assert_eq!(run(&p, &base, 200, body).await.unwrap(), 42.0);
    }

    #[tokio::test]
    async fn empty_and_nan_results_are_no_values() {
        let (base, p) = serve().await;
        for body in [vector(&[]), vector(&["NaN"])] {
            let e = run(&p, &base, 200, &body).await.unwrap_err();
            assert!(matches!(e, MetricError::NoValues), "{body}: {e}");
            assert_eq!(e.to_string(), "no values found");
        }
    }

    #[tokio::test]
    async fn prometheus_errors_and_bad_answers_are_query_errors() {
        let (base, p) = serve().await;
        let bad = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
        let e = run(&p, &base, 400, bad).await.unwrap_err();
        assert!(matches!(e, MetricError::Query(_)), "{e}");
        assert_eq!(
            e.to_string(),
            r#"bad_data: 1:5: parse error: unexpected "}""#
        );

        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
        let e = run(&p, &base, 200, matrix).await.unwrap_err();
        assert!(e.to_string().contains("range vector"), "{e}");

        let e = run(&p, &base, 200, "<html>login</html>").await.unwrap_err();
        assert!(
            e.to_string().starts_with("failed to decode the answer"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unavailable_server_is_a_transport_error() {
        let (base, p) = serve().await;
        let e = run(&p, &base, 503, "Service Unavailable")
            .await
            .unwrap_err();
        let MetricError::Transport(EdgeError::Status { status, .. }) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 503);
        assert!(
            e.to_string().contains("HTTP 503: Service Unavailable"),
            "{e}"
        );

        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        let edge = HttpEdge::direct_only("test").unwrap();
        let e = ready(&edge, &MetricServer::new(dead)).await.unwrap_err();
        assert!(
            matches!(e, MetricError::Transport(EdgeError::Connect { .. })),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_request_is_flaggers_get_with_escaped_collapsed_query() {
        let (base, p) = serve().await;
        answer(&p, 200, &vector(&["1"]));
        let edge = HttpEdge::direct_only("test").unwrap();
        let server = MetricServer::new(format!("{base}/prom/"));
        let q =
            "sum(rate(response_total{namespace=\"test\",\n    classification!=\"failure\"}[1m]))";
        query(&edge, &server, q, Some(Time(1_700_000_000_250)))
            .await
            .unwrap();
        let (path, raw, auth) = p.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(path, "/prom/api/v1/query");
        assert_eq!(
            raw,
            "query=sum%28rate%28response_total%7Bnamespace%3D%22test%22%2C+classification%21%3D%22failure%22%7D%5B1m%5D%29%29&time=1700000000.250"
        );
        assert_eq!(auth, None);
    }

    #[tokio::test]
    async fn credentials_are_sent_and_never_shown() {
        let (base, p) = serve().await;
        answer(&p, 200, &vector(&["1"]));
        let edge = HttpEdge::direct_only("test").unwrap();
        let mut server = MetricServer::new(base.clone());
        server.auth = Some(Auth::Bearer("s3cr3t".to_string()));
        ready(&edge, &server).await.unwrap();
        server.auth = Some(Auth::Basic {
            username: "flagger".to_string(),
            password: "pa55".to_string(),
        });
        query(&edge, &server, "vector(1)", None).await.unwrap();
        let seen = p.seen.lock().unwrap().clone();
        assert_eq!(seen[0].2.as_deref(), Some("Bearer s3cr3t"));
        assert_eq!(seen[1].2.as_deref(), Some("Basic ZmxhZ2dlcjpwYTU1"));
        let shown = format!("{server:?}");
        assert!(
            !shown.contains("pa55") && !shown.contains("flagger\""),
            "{shown}"
        );
        assert!(!format!("{:?}", Auth::Bearer("s3cr3t".into())).contains("s3cr3t"));
    }

    #[tokio::test]
    async fn readiness_wants_one_for_vector_one() {
        let (base, p) = serve().await;
        let edge = HttpEdge::direct_only("test").unwrap();
        answer(&p, 200, &vector(&["1"]));
        ready(&edge, &MetricServer::new(base.clone()))
            .await
            .unwrap();
        let (_, raw, _) = p.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(raw, "query=vector%281%29");
        answer(&p, 200, &vector(&["0"]));
        let e = ready(&edge, &MetricServer::new(base)).await.unwrap_err();
        assert!(e.to_string().contains("instead of 1"), "{e}");
    }

    #[test]
    fn secrets_give_a_token_or_username_and_password() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let a = auth_from_data(&data(&[("token", "t"), ("username", "u")]), "ns", "s").unwrap();
        assert_eq!(a, Auth::Bearer("t".to_string()));
        let a = auth_from_data(&data(&[("username", "u"), ("password", "p")]), "ns", "s").unwrap();
        assert_eq!(
            a,
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        let e = auth_from_data(&data(&[("password", "p")]), "ns", "s").unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret ns/s has no `token` key and no `username` key"
        );
        let e = auth_from_data(&data(&[("username", "u")]), "ns", "s").unwrap_err();
        assert!(e.to_string().contains("no `password` key"), "{e}");
    }

    #[test]
    fn a_trailing_newline_in_a_token_is_a_clear_error() {
        let e = Auth::Bearer("abc\n".to_string()).header().unwrap_err();
        assert!(e.to_string().contains("trailing newline"), "{e}");
        assert!(!e.to_string().contains("abc"));
    }
}
