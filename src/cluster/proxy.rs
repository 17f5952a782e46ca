//! Reaching the URLs a spec names, from outside the cluster or inside it.
//!
//! Specs are written for Flagger, which runs inside the cluster, so their
//! webhook and metrics URLs name cluster-internal hosts
//! (`http://flagger-loadtester.prod/`, `http://prometheus.linkerd-viz:9090`)
//! that do not resolve on a laptop or a CI runner. [`route`] decides, from
//! the host alone, whether a URL names a Service:
//!
//! | host                                   | route                                   |
//! |----------------------------------------|-----------------------------------------|
//! | `name`                                 | Service `name` in the canary's namespace |
//! | `name.namespace`                       | Service `name` in `namespace`, else direct (see below) |
//! | `name.namespace.svc`                   | Service `name` in `namespace`           |
//! | `name.namespace.svc.cluster.local`     | Service `name` in `namespace` (also with the configured cluster domain) |
//! | IP addresses, `localhost`, anything else | direct                                |
//!
//! How a Service is reached is the edge's [`Via`], decided once in
//! [`Via::choose`]: outside the cluster through the API server's service
//! proxy; inside it (with the in-cluster config, or `--route-via direct`)
//! straight to the URL, which cluster DNS resolves as it does for Flagger.
//!
//! Through the service proxy a Service is reached at
//! `/api/v1/namespaces/NS/services/SCHEME:NAME:PORT/proxy/PATH?QUERY`, with
//! the user's own kubeconfig (a `kube::Client` built without kube's
//! automatic retries, see [`HttpEdge::from_config`]), so its credentials,
//! TLS settings and exec plugins apply and nothing is installed in the
//! cluster.
//! The port is the URL's, else 80 or 443 by scheme, as a Pod resolving the
//! name would use. Everything else goes direct with `reqwest` (rustls),
//! which honours `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.
//!
//! Direct, a single-label host is qualified with the canary's namespace
//! (`http://loadtester/` becomes `http://loadtester.NS/`): a Pod's DNS
//! search path would try the Pod's own namespace, and the URL must mean
//! the same Service whichever way it is reached.
//!
//! `name.namespace` is ambiguous: inside the cluster the DNS search path
//! tries it as a Service first and as a public name second (`example.com`
//! is "Service `example` in namespace `com`" until that turns out not to
//! exist). [`HttpEdge::send`] does the same through the service proxy:
//! the proxy first, and when the API server says there is no such
//! Service, the URL directly.
//!
//! What may be reached is limited ([`reach_refusal`], checked before a run
//! and at every request): never the API server's own Service
//! (`kubernetes.default`, in any form, or the address a Pod is given for
//! it), since through the proxy that request would carry the runner's
//! credentials to the API; and with `--proxy-allow`, only Services of the
//! listed namespaces and the canary's own.
//!
//! Through the proxy the caller's `Authorization` header is never sent:
//! the API server authenticates the request with the kubeconfig's
//! credentials, and a second `Authorization` header would either be
//! refused or (after authentication) stripped before the backend sees it.
//! Errors name the URL without its userinfo and query and never carry a
//! header value.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderMap, PROXY_AUTHORIZATION, RETRY_AFTER};
use http::{Method, Request};
use http_body_util::BodyExt;
use reqwest::Url;
use tokio::sync::Semaphore;

/// The cluster domain Kubernetes uses unless configured otherwise.
pub(crate) const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// How in-cluster URLs are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the API server's service proxy, with the client's
    /// credentials: from outside the cluster.
    ServiceProxy,
    /// Straight to the URL, resolved by cluster DNS: from inside it.
    Direct,
}

impl Via {
    /// The one decision: what was asked for (`--route-via`), else direct
    /// with the in-cluster config, since a Pod resolves Service names
    /// itself and its service account needs no `services/proxy` grant,
    /// else the service proxy.
    pub fn choose(asked: Option<Via>, in_cluster: bool) -> Via {
        match (asked, in_cluster) {
            (Some(via), _) => via,
            (None, true) => Via::Direct,
            (None, false) => Via::ServiceProxy,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Through the API server's service proxy.
    Proxy(ServiceProxy),
    /// Straight to the URL.
    Direct(Url),
}

/// A Service reached through the API server's service proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProxy {
    pub namespace: String,
    pub service: String,
    /// `http` or `https`: how the API server talks to the Service.
    pub scheme: String,
    /// The Service port (its `port`, not the target port).
    pub port: u16,
    /// Path and query of the original URL; the path starts with `/`.
    pub path_and_query: String,
    /// The original URL when the host could also be a public name
    /// (`name.tld`): tried directly when the cluster has no such Service.
    pub public: Option<Url>,
    /// The URL as a Pod reaches the Service directly: the original, with
    /// a single-label host qualified by the namespace.
    pub direct: Url,
}

/// What is escaped in one segment of an API path: everything but the
/// characters a Kubernetes name or a scheme can hold, so a segment can
/// never become two (`/`), climb (`..` needs no escape once `/` has one,
/// and names never hold it), or start a query (`?`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn segment(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, SEGMENT)
}

impl ServiceProxy {
    /// The API path of the request, relative to the API server. The
    /// namespace and Service are DNS labels (see [`route_with_domain`]),
    /// and are escaped besides; the path and query come from the parsed
    /// URL, which has resolved every `.` and `..` segment (`%2e%2e` too)
    /// and escaped what a path cannot hold, so the request stays under
    /// `/proxy`.
    pub fn api_path(&self) -> String {
        let ns = segment(&self.namespace);
        let svc = segment(&self.service);
        let scheme = segment(&self.scheme);
        format!(
            "/api/v1/namespaces/{ns}/services/{scheme}:{svc}:{}/proxy{}",
            self.port, self.path_and_query
        )
    }
}

/// Why a request did not get an answer from its target.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("failed to reach {target}: no answer within {}", humantime::format_duration(*.timeout))]
    Timeout { target: String, timeout: Duration },
    #[error("failed to connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The way to the target failed: the connection to the API server
    /// (on the service proxy's way) was dropped or refused, the proxy
    /// could not reach the Service's Pod, or a direct connection dropped
    /// in the middle of the exchange.
    #[error("failed to reach {target}: {reason}")]
    Dropped { target: String, reason: String },
    /// The Service exists but no ready Pod backs it (the proxy's 503).
    #[error("failed to reach {target}: service {namespace}/{service} has no ready endpoints")]
    NoEndpoints {
        target: String,
        namespace: String,
        service: String,
    },
    /// The proxy's 404: no such Service (or namespace).
    #[error("failed to reach {target}: service {namespace}/{service} does not exist")]
    ServiceNotFound {
        target: String,
        namespace: String,
        service: String,
    },
    /// The API server itself refused or failed the proxied request
    /// (401, 403, 5xx with a Kubernetes `Status` body).
    #[error(
        "failed to reach {target} through the API server's service proxy: {message} (HTTP {status})"
    )]
    Proxy {
        target: String,
        status: u16,
        message: String,
        /// The proxy's `Retry-After` (a 429's).
        retry_after: Option<Duration>,
    },
    #[error(
        "failed to reach {target}: it names a cluster Service and no cluster connection is configured"
    )]
    NoCluster { target: String },
    /// A Service the run may not reach: the API server's own, or one
    /// outside `--proxy-allow` (see [`reach_refusal`]).
    #[error("refused to call {target}: {reason}")]
    Refused { target: String, reason: String },
    /// A user and password in a URL that goes through the service proxy,
    /// where the API server takes the `Authorization` header for itself.
    #[error(
        "failed to reach {target}: the user and password in its URL cannot pass the API server's \
         service proxy; reach the Service directly (`--route-via direct` inside the cluster, or \
         a port-forward or public address)"
    )]
    CredentialsThroughProxy { target: String },
    /// `name.namespace` was neither a Service nor reachable as a public name.
    #[error(
        "failed to reach {target}: there is no service {namespace}/{service} in the cluster, and {direct}"
    )]
    NotReachable {
        target: String,
        namespace: String,
        service: String,
        direct: Box<EdgeError>,
    },
    /// The target answered, with a status the caller does not accept.
    #[error("failed to call {target}: HTTP {status}{}", excerpt_suffix(.excerpt))]
    Status {
        target: String,
        status: u16,
        excerpt: String,
    },
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

impl EdgeError {
    /// Whether trying again may help: timeouts, connection failures and the
    /// proxy's 5xx (not 501) and 429, as go-retryablehttp's default policy
    /// (which Flagger's webhooks use) decides.
    pub fn is_retryable(&self) -> bool {
        match self {
            EdgeError::Timeout { .. } | EdgeError::Connect { .. } | EdgeError::Dropped { .. } => {
                true
            }
            EdgeError::NoEndpoints { .. } => true,
            EdgeError::Proxy { status, .. } | EdgeError::Status { status, .. } => {
                status_is_retryable(*status)
            }
            EdgeError::NotReachable { direct, .. } => direct.is_retryable(),
            EdgeError::InvalidUrl { .. }
            | EdgeError::ServiceNotFound { .. }
            | EdgeError::NoCluster { .. }
            | EdgeError::Refused { .. }
            | EdgeError::CredentialsThroughProxy { .. } => false,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, EdgeError::Timeout { .. })
    }

    /// Whether the way to the target failed rather than the target: the
    /// API server's service proxy answered an error of its own (a `Status`
    /// with 429 or 500-504: throttled, failed, or `error trying to reach
    /// service`), or a connection was dropped on the way
    /// ([`EdgeError::Dropped`]). Such a failure says nothing about the
    /// target, so it is retried and, if it lasts, is not held against the
    /// release. The target's own answers (any status), a direct connection
    /// the target's host refuses, a Service without ready endpoints or
    /// that does not exist, and a target that does not answer in time are
    /// not: the target is down or slow, as Flagger counts it.
    pub fn is_unreachable(&self) -> bool {
        match self {
            EdgeError::Dropped { .. } => true,
            EdgeError::Proxy { status, .. } => *status == 429 || (500..=504).contains(status),
            _ => false,
        }
    }
}

/// The first wait between two attempts of a request whose way to the
/// target failed; doubled at each attempt, up to [`RETRY_WAIT_MAX`].
pub(crate) const RETRY_WAIT_MIN: Duration = Duration::from_millis(100);
pub(crate) const RETRY_WAIT_MAX: Duration = Duration::from_secs(2);
/// No attempt is started with less time than this left of the budget.
const ATTEMPT_MIN: Duration = Duration::from_millis(50);

/// go-retryablehttp's `DefaultRetryPolicy` on a response: 429 and 5xx
/// except 501.
pub(crate) fn status_is_retryable(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 501)
}

/// What the target answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// The body, decoded lossily as UTF-8.
    pub body: String,
    /// `Retry-After` in seconds, when the answer carried one.
    pub retry_after: Option<Duration>,
}

/// How much of a body error messages quote.
pub(crate) const EXCERPT_LEN: usize = 200;

/// The start of `body` on one line: whitespace runs collapsed, cut at
/// `max` characters with an ellipsis.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub method: Method,
    pub url: &'a str,
    /// Namespace of single-label hosts; the edge's default when `None`.
    pub namespace: Option<&'a str>,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    /// For the whole exchange: connecting, sending, reading the answer.
    pub timeout: Duration,
    /// Skip TLS verification of a direct `https` target (`disableTLS`,
    /// `insecureSkipVerify`). The API server connection is never affected.
    pub insecure_skip_verify: bool,
    /// A webhook's call, which may take its whole `timeout` (a load
    /// test): not counted against the edge's requests in flight
    /// ([`super::connect::IN_FLIGHT`]), so that it keeps no metric query
    /// waiting, nor waits for them.
    pub long: bool,
}

impl<'a> HttpRequest<'a> {
    pub fn new(method: Method, url: &'a str, timeout: Duration) -> Self {
        HttpRequest {
            method,
            url,
            namespace: None,
            headers: HeaderMap::new(),
            body: None,
            timeout,
            insecure_skip_verify: false,
            long: false,
        }
    }
}

/// The clients an edge sends with, and the places of the requests they
/// have in flight ([`super::connect::IN_FLIGHT`]): shared by every edge of
/// a connection.
#[derive(Clone)]
pub(crate) struct EdgeClients {
    kube: kube::Client,
    direct: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

/// Sends requests to in-cluster and public URLs alike.
pub struct HttpEdge {
    kube: Option<kube::Client>,
    direct: reqwest::Client,
    /// The places of the requests in flight, shared with the other edges
    /// of the connection.
    in_flight: Arc<Semaphore>,
    insecure: OnceLock<reqwest::Client>,
    default_namespace: String,
    cluster_domain: String,
    via: Via,
    /// `name.tld` hosts the cluster said are not Services.
    public_hosts: Mutex<HashSet<String>>,
    /// `--proxy-allow`: the namespaces whose Services may be reached
    /// besides the canary's own; `None` for any.
    allow: Option<Vec<String>>,
}

impl std::fmt::Debug for HttpEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEdge")
            .field("cluster", &self.kube.is_some())
            .field("default_namespace", &self.default_namespace)
            .field("cluster_domain", &self.cluster_domain)
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

impl HttpEdge {
    /// An edge that reaches Services through the API server of `config`
    /// and everything else directly. Prefer this to [`Self::new`]: the
    /// client it builds does not retry.
    ///
    /// kube's default client retries every 429, 503 and 504 answer up to 15
    /// times with a growing backoff. Through the service proxy those are
    /// the backend's own answers (or the proxy's "no endpoints"), which
    /// must reach the caller at once: a webhook's retries are its
    /// `retries`, and a missing endpoint is an error to report, not a wait
    /// until the time limit.
    pub fn from_config(
        mut config: kube::Config,
        default_namespace: impl Into<String>,
    ) -> Result<Self, EdgeError> {
        config.default_retry = false;
        let kube = kube::Client::try_from(config).map_err(|e| EdgeError::Connect {
            target: "the API server".to_string(),
            reason: format!("failed to build a client: {}", error_chain(&e)),
        })?;
        Self::build(Some(kube), default_namespace.into())
    }

    /// The edge of a command's connection: [`Self::from_config`], reaching
    /// Services the way [`Via::choose`] picks for that connection and
    /// what was `asked` for. Its clients are built with the first edge of
    /// the connection and shared by the others (one per driver of a run),
    /// with their connection pools.
    pub fn for_connection(
        conn: &super::connect::Connection,
        default_namespace: impl Into<String>,
        asked: Option<Via>,
    ) -> Result<Self, EdgeError> {
        let via = Via::choose(asked, conn.source.is_in_cluster());
        let mut shared = conn.edge_clients.lock().unwrap_or_else(|e| e.into_inner());
        let clients = match &*shared {
            Some(clients) => clients.clone(),
            None => {
                let built = Self::from_config(conn.config.clone(), "")?;
                let clients = EdgeClients {
                    kube: built.kube.clone().expect("a cluster client"),
                    direct: built.direct,
                    in_flight: built.in_flight,
                };
                shared.insert(clients).clone()
            }
        };
        Ok(Self::with_clients(
            Some(clients.kube),
            clients.direct,
            clients.in_flight,
            default_namespace.into(),
        )
        .with_via(via))
    }

    /// An edge over an existing client. If that client was built with
    /// kube's default retries (`Config::default_retry`), a proxied 429,
    /// 503 or 504 is retried inside the client until the request's time
    /// limit: build it with `default_retry = false`, or use
    /// [`Self::from_config`].
    pub fn new(
        kube: kube::Client,
        default_namespace: impl Into<String>,
    ) -> Result<Self, EdgeError> {
        Self::build(Some(kube), default_namespace.into())
    }

    /// An edge with no cluster: in-cluster URLs fail with
    /// [`EdgeError::NoCluster`] (`name.tld` hosts go direct).
    pub fn direct_only(default_namespace: impl Into<String>) -> Result<Self, EdgeError> {
        Self::build(None, default_namespace.into())
    }

    fn build(kube: Option<kube::Client>, default_namespace: String) -> Result<Self, EdgeError> {
        Ok(Self::with_clients(
            kube,
            http_client(false)?,
            Arc::new(Semaphore::new(super::connect::IN_FLIGHT)),
            default_namespace,
        ))
    }

    fn with_clients(
        kube: Option<kube::Client>,
        direct: reqwest::Client,
        in_flight: Arc<Semaphore>,
        default_namespace: String,
    ) -> Self {
        HttpEdge {
            kube,
            direct,
            in_flight,
            insecure: OnceLock::new(),
            default_namespace,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            via: Via::ServiceProxy,
            public_hosts: Mutex::new(HashSet::new()),
            allow: None,
        }
    }

    /// Reaches only the Services of the default namespace and of `allow`
    /// (`--proxy-allow`); `None` for any. See [`reach_refusal`].
    pub fn with_proxy_allow(mut self, allow: Option<Vec<String>>) -> Self {
        self.allow = allow;
        self
    }

    /// Reaches Services `via` this way (the service proxy unless told
    /// otherwise); see [`Via::choose`].
    pub fn with_via(mut self, via: Via) -> Self {
        self.via = via;
        self
    }

    pub fn via(&self) -> Via {
        self.via
    }

    /// Also recognise `*.svc.<domain>` hosts (`cluster.local` always is).
    pub fn with_cluster_domain(mut self, domain: impl Into<String>) -> Self {
        self.cluster_domain = domain.into().trim_matches('.').to_ascii_lowercase();
        self
    }

    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    pub fn has_cluster(&self) -> bool {
        self.kube.is_some()
    }

    /// Where `url` goes; single-label hosts are Services in `namespace`
    /// (else the edge's default namespace).
    pub fn route(&self, url: &str, namespace: Option<&str>) -> Result<Route, EdgeError> {
        let namespace = namespace.unwrap_or(&self.default_namespace);
        let route = route_with_domain(url, namespace, &self.cluster_domain)?;
        // Checked before the run too; here for whatever changed since (a
        // MetricTemplate read from the cluster).
        let route = match allowed(route, namespace, self.allow.as_deref()) {
            Ok(r) => r,
            Err(reason) => {
                return Err(EdgeError::Refused {
                    target: display_url_str(url),
                    reason,
                });
            }
        };
        Ok(match (self.via, route) {
            (Via::Direct, Route::Proxy(p)) => Route::Direct(p.direct),
            (_, route) => route,
        })
    }

    /// Sends `req` and returns whatever the target answered, any status.
    /// Errors are about not getting that answer: the URL, the network, the
    /// time limit, or the API server's proxy.
    ///
    /// A failure of the way to the target ([`EdgeError::is_unreachable`])
    /// is tried again, after the proxy's `Retry-After` or an exponential
    /// backoff, as long as the request's timeout allows: the timeout
    /// bounds all attempts together, so a check never takes longer than
    /// its own time limit.
    pub async fn send(&self, req: HttpRequest<'_>) -> Result<HttpReply, EdgeError> {
        let started = tokio::time::Instant::now();
        let deadline = started + req.timeout;
        let mut wait = RETRY_WAIT_MIN;
        loop {
            let mut attempt = req.clone();
            attempt.timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = match self.send_once(attempt).await {
                Ok(reply) => return Ok(reply),
                // Said with the whole time limit, not what was left of it.
                Err(EdgeError::Timeout { target, .. }) => {
                    return Err(EdgeError::Timeout {
                        target,
                        timeout: req.timeout,
                    });
                }
                Err(e) => e,
            };
            if !e.is_unreachable() {
                return Err(e);
            }
            let pause = match &e {
                EdgeError::Proxy {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => wait,
            };
            if tokio::time::Instant::now() + pause + ATTEMPT_MIN >= deadline {
                return Err(e);
            }
            tokio::time::sleep(pause).await;
            wait = (wait * 2).min(RETRY_WAIT_MAX);
        }
    }

    /// One attempt of [`Self::send`], once the request has its place
    /// among those in flight (a webhook's call needs none); the wait for
    /// it counts in the request's time limit.
    async fn send_once(&self, mut req: HttpRequest<'_>) -> Result<HttpReply, EdgeError> {
        let _place = match req.long {
            true => None,
            // The semaphore is never closed.
            false => {
                let asked = tokio::time::Instant::now();
                let place = self.in_flight.acquire();
                match tokio::time::timeout(req.timeout, place).await {
                    Ok(place) => {
                        req.timeout = req.timeout.saturating_sub(asked.elapsed());
                        place.ok()
                    }
                    Err(_) => {
                        return Err(EdgeError::Timeout {
                            target: display_url_str(req.url),
                            timeout: req.timeout,
                        });
                    }
                }
            }
        };
        let route = self.route(req.url, req.namespace)?;
        let proxy = match route {
            Route::Direct(url) => return self.send_direct(&url, &req).await,
            Route::Proxy(p) => p,
        };
        let public = proxy.public.clone();
        if has_userinfo(&proxy.direct) {
            // Sent through the proxy, the credentials would be dropped
            // without a word. A `name.tld` host may well be public: that
            // is the only way it can be reached with them.
            return match &public {
                Some(url) => self.send_direct(url, &req).await,
                None => Err(EdgeError::CredentialsThroughProxy {
                    target: display_url_str(req.url),
                }),
            };
        }
        if let Some(url) = &public {
            let known_public = self
                .public_hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(url.host_str().unwrap_or_default());
            if known_public || self.kube.is_none() {
                return self.send_direct(url, &req).await;
            }
        }
        let Some(kube) = &self.kube else {
            return Err(EdgeError::NoCluster {
                target: display_url_str(req.url),
            });
        };
        match (send_proxied(kube, &proxy, &req).await, public) {
            (
                Err(EdgeError::ServiceNotFound {
                    target,
                    namespace,
                    service,
                }),
                Some(url),
            ) => match self.send_direct(&url, &req).await {
                Ok(reply) => {
                    self.public_hosts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(url.host_str().unwrap_or_default().to_string());
                    Ok(reply)
                }
                Err(direct) => Err(EdgeError::NotReachable {
                    target,
                    namespace,
                    service,
                    direct: Box::new(direct),
                }),
            },
            (other, _) => other,
        }
    }

    /// Sends `req` to `url` itself. A user and password in the URL are
    /// sent as basic auth, as Go's client (and so Flagger) sends them,
    /// unless the request has its own `Authorization` header.
    async fn send_direct(&self, url: &Url, req: &HttpRequest<'_>) -> Result<HttpReply, EdgeError> {
        let target = display_url(url);
        let (url, basic) = split_userinfo(url);
        let client = if req.insecure_skip_verify {
            match self.insecure.get() {
                Some(c) => c,
                None => {
                    let c = http_client(true)?;
                    self.insecure.get_or_init(|| c)
                }
            }
        } else {
            &self.direct
        };
        let mut headers = req.headers.clone();
        if let Some(basic) = basic
            && !headers.contains_key(AUTHORIZATION)
        {
            headers.insert(AUTHORIZATION, basic);
        }
        let mut builder = client.request(req.method.clone(), url).headers(headers);
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let exchange = async {
            let resp = builder.send().await?;
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>(HttpReply {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
                retry_after,
            })
        };
        match tokio::time::timeout(req.timeout, exchange).await {
            Err(_) => Err(EdgeError::Timeout {
                target,
                timeout: req.timeout,
            }),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) if e.is_timeout() => Err(EdgeError::Timeout {
                target,
                timeout: req.timeout,
            }),
            // Refused (or not resolved): the target's host is down.
            Ok(Err(e)) if e.is_connect() => Err(EdgeError::Connect {
                target,
                reason: error_chain(&e.without_url()),
            }),
            Ok(Err(e)) => Err(EdgeError::Dropped {
                target,
                reason: error_chain(&e.without_url()),
            }),
        }
    }
}

/// [`route_with_domain`] with the default cluster domain.
#[cfg(test)]
pub(crate) fn route(url: &str, default_namespace: &str) -> Result<Route, EdgeError> {
    route_with_domain(url, default_namespace, DEFAULT_CLUSTER_DOMAIN)
}

/// Where `url` goes: see the module documentation for the rules.
pub(crate) fn route_with_domain(
    url: &str,
    default_namespace: &str,
    cluster_domain: &str,
) -> Result<Route, EdgeError> {
    let invalid = |reason: &str| EdgeError::InvalidUrl {
        url: display_url_str(url),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let scheme = parsed.scheme().to_string();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    let Some(host) = parsed.domain() else {
        // IP addresses (and hostless URLs, which http(s) does not allow).
        return Ok(Route::Direct(parsed));
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let domain = cluster_domain.trim_matches('.').to_ascii_lowercase();
    let is_cluster_domain = |rest: &[&str]| {
        let rest = rest.join(".");
        rest == DEFAULT_CLUSTER_DOMAIN || (!domain.is_empty() && rest == domain)
    };
    let (service, namespace, ambiguous) = match labels.as_slice() {
        ["localhost"] => return Ok(Route::Direct(parsed)),
        [name] => (*name, default_namespace, false),
        [name, ns] => (*name, *ns, true),
        [name, ns, "svc"] => (*name, *ns, false),
        [name, ns, "svc", rest @ ..] if is_cluster_domain(rest) => (*name, *ns, false),
        _ => return Ok(Route::Direct(parsed)),
    };
    if !is_dns_label(service) || !is_dns_label(namespace) {
        return Ok(Route::Direct(parsed));
    }
    let mut direct = parsed.clone();
    if labels.len() == 1 {
        direct
            .set_host(Some(&format!("{service}.{namespace}")))
            .map_err(|e| invalid(&e.to_string()))?;
    }
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| invalid("no port"))?;
    let mut path_and_query = parsed.path().to_string();
    if !path_and_query.starts_with('/') {
        path_and_query.insert(0, '/');
    }
    if let Some(q) = parsed.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    Ok(Route::Proxy(ServiceProxy {
        namespace: namespace.to_string(),
        service: service.to_string(),
        scheme,
        port,
        path_and_query,
        public: ambiguous.then_some(parsed),
        direct,
    }))
}

/// Why a spec may not name `url`, for a canary in `namespace`, with the
/// namespaces of `--proxy-allow` (`None`: any): `None` when it may.
///
/// - The API server's own Service, `kubernetes` in `default`, whatever
///   form names it (`kubernetes.default.svc`, or `kubernetes` for a
///   canary in `default`), and the address a Pod is given for it
///   (`KUBERNETES_SERVICE_HOST` and `_PORT`): through the service proxy
///   the request would carry the runner's credentials to the API itself.
/// - With `allow`, a Service outside it and outside the canary's own
///   namespace. An ambiguous `name.tld` host counts as Service `name` in
///   namespace `tld`, as cluster DNS tries it first: a public host of two
///   labels needs its last label allowed.
///
/// The same rules hold before the run (`canary run` refuses such a spec,
/// exit 2) and at every request ([`HttpEdge::route`]).
pub(crate) fn reach_refusal(
    url: &str,
    namespace: &str,
    allow: Option<&[String]>,
) -> Option<String> {
    let route = route_with_domain(url, namespace, DEFAULT_CLUSTER_DOMAIN).ok()?;
    allowed(route, namespace, allow).err()
}

/// `route`, unless it is refused (see [`reach_refusal`]).
fn allowed(route: Route, namespace: &str, allow: Option<&[String]>) -> Result<Route, String> {
    match route {
        Route::Proxy(p) if p.namespace == "default" && p.service == "kubernetes" => Err(
            "it names the Kubernetes API server's own Service (default/kubernetes); no webhook \
             or metrics server may, since through the service proxy the request would carry \
             the runner's credentials"
                .to_string(),
        ),
        Route::Proxy(p)
            if allow.is_some_and(|a| p.namespace != namespace && !a.contains(&p.namespace)) =>
        {
            let public = match &p.public {
                Some(u) => format!(
                    " (if `{}` is a public name, add `{}` to --proxy-allow)",
                    u.host_str().unwrap_or_default(),
                    p.namespace
                ),
                None => String::new(),
            };
            Err(format!(
                "it names service {}/{}, and --proxy-allow allows only the Services of {}{public}",
                p.namespace,
                p.service,
                allowed_list(namespace, allow.unwrap_or_default())
            ))
        }
        Route::Direct(u) if is_api_server_address(&u) => Err(
            "it is the address of the Kubernetes API server's own Service \
             (KUBERNETES_SERVICE_HOST); no webhook or metrics server may name it"
                .to_string(),
        ),
        other => Ok(other),
    }
}

fn allowed_list(namespace: &str, allow: &[String]) -> String {
    let mut all: Vec<&str> = vec![namespace];
    all.extend(allow.iter().map(String::as_str).filter(|n| *n != namespace));
    match all.as_slice() {
        [one] => format!("the canary's namespace {one}"),
        _ => format!("the namespaces {}", all.join(", ")),
    }
}

/// Whether `url` is the API server's Service address a Pod is given
/// (`KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, port 443 unless
/// said).
fn is_api_server_address(url: &Url) -> bool {
    let Some(host) = std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    else {
        return false;
    };
    let port = std::env::var("KUBERNETES_SERVICE_PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(443);
    let url_host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    url_host == host.trim().trim_matches(['[', ']']) && url.port_or_known_default() == Some(port)
}

/// An RFC 1123 label, which Service and namespace names are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// `url` without its user and password, and those as a basic-auth
/// header: percent-decoded, as Go's `url.User` gives them.
fn split_userinfo(url: &Url) -> (Url, Option<http::HeaderValue>) {
    use base64::prelude::{BASE64_STANDARD, Engine as _};
    if !has_userinfo(url) {
        return (url.clone(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let token = BASE64_STANDARD.encode(format!("{user}:{password}"));
    // The user of a URL is a name; its password and the header are not.
    crate::secrets::redactor().learn(&password);
    crate::secrets::redactor().learn(&token);
    let mut value = http::HeaderValue::from_str(&format!("Basic {token}")).ok();
    if let Some(v) = &mut value {
        v.set_sensitive(true);
    }
    (bare, value)
}

/// A URL for messages: no userinfo, no query, no fragment.
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// [`display_url`] for a string that may not parse.
pub(crate) fn display_url_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => display_url(&u),
        // Do not echo what could be credentials: keep scheme and host-ish
        // part only.
        Err(_) => {
            let cut = url.find(['?', '#']).unwrap_or(url.len());
            let s = &url[..cut];
            match (s.find("://"), s.rfind('@')) {
                (Some(i), Some(j)) if j > i => format!("{}{}", &s[..i + 3], &s[j + 1..]),
                _ => s.to_string(),
            }
        }
    }
}

fn http_client(insecure: bool) -> Result<reqwest::Client, EdgeError> {
    // reqwest is built without a bundled crypto provider; use ring, as
    // kube and the simulated cluster do. Installing twice is harmless.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
        .tls_danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| EdgeError::Connect {
            target: "any URL".to_string(),
            reason: format!("failed to build the HTTP client: {}", error_chain(&e)),
        })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// An error and its sources on one line, each message once.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(words) = super::error::exec_failure(e, None) {
        return words;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}

async fn send_proxied(
    kube: &kube::Client,
    proxy: &ServiceProxy,
    req: &HttpRequest<'_>,
) -> Result<HttpReply, EdgeError> {
    let target = format!(
        "{} (service {}/{} port {} through the API server)",
        display_url_str(req.url),
        proxy.namespace,
        proxy.service,
        proxy.port
    );
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(proxy.api_path());
    for (name, value) in &req.headers {
        if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
            continue;
        }
        builder = builder.header(name, value);
    }
    let request = builder
        .body(kube::client::Body::from(
            req.body.clone().unwrap_or_default(),
        ))
        .map_err(|e| EdgeError::InvalidUrl {
            url: display_url_str(req.url),
            reason: e.to_string(),
        })?;
    let exchange = async {
        let resp = kube.send(request).await.map_err(|e| EdgeError::Dropped {
            target: target.clone(),
            reason: format!("the API server: {}", error_chain(&e)),
        })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| EdgeError::Dropped {
                target: target.clone(),
                reason: format!("failed to read the answer: {}", error_chain(&e)),
            })?
            .to_bytes();
        Ok(HttpReply {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            retry_after,
        })
    };
    let reply = match tokio::time::timeout(req.timeout, exchange).await {
        Err(_) => {
            return Err(EdgeError::Timeout {
                target,
                timeout: req.timeout,
            });
        }
        Ok(r) => r?,
    };
    match api_status(&reply) {
        None => Ok(reply),
        Some(s) => Err(proxy_error(
            target,
            proxy,
            reply.status,
            reply.retry_after,
            s,
        )),
    }
}

/// A Kubernetes `Status` the API server answered instead of the backend.
struct ApiStatus {
    reason: String,
    message: String,
    details_kind: String,
}

fn api_status(reply: &HttpReply) -> Option<ApiStatus> {
    if reply.status < 400 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
    if v["kind"] != "Status" || v["status"] != "Failure" {
        return None;
    }
    let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
    Some(ApiStatus {
        reason: s(&v["reason"]),
        message: s(&v["message"]),
        details_kind: s(&v["details"]["kind"]),
    })
}

fn proxy_error(
    target: String,
    proxy: &ServiceProxy,
    status: u16,
    retry_after: Option<Duration>,
    s: ApiStatus,
) -> EdgeError {
    let (namespace, service) = (proxy.namespace.clone(), proxy.service.clone());
    if status == 404
        && s.reason == "NotFound"
        && (s.details_kind == "services" || s.message.starts_with("services "))
    {
        return EdgeError::ServiceNotFound {
            target,
            namespace,
            service,
        };
    }
    if status == 503 && s.message.starts_with("no endpoints available") {
        return EdgeError::NoEndpoints {
            target,
            namespace,
            service,
        };
    }
    if status == 503 && s.message.contains("error trying to reach service") {
        return EdgeError::Dropped {
            target,
            reason: s.message,
        };
    }
    let message = if s.message.is_empty() {
        s.reason
    } else {
        s.message
    };
    EdgeError::Proxy {
        target,
        status,
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(url: &str, ns: &str) -> ServiceProxy {
        match route(url, ns).expect("valid") {
            Route::Proxy(p) => p,
            Route::Direct(u) => panic!("{url} went direct: {u}"),
        }
    }

    fn is_direct(url: &str) -> bool {
        matches!(route(url, "default").expect("valid"), Route::Direct(_))
    }

    #[test]
    fn a_namespaced_host_is_a_service_proxy_with_the_default_port() {
        let p = proxied("http://flagger-loadtester.prod/", "test");
        assert_eq!(p.namespace, "prod");
        assert_eq!(p.service, "flagger-loadtester");
        assert_eq!(p.scheme, "http");
        assert_eq!(p.port, 80);
        assert_eq!(p.path_and_query, "/");
        assert!(p.public.is_some(), "name.namespace could be public");
        assert_eq!(
            p.api_path(),
            "/api/v1/namespaces/prod/services/http:flagger-loadtester:80/proxy/"
        );
    }

    #[test]
    fn a_path_cannot_climb_out_of_the_proxy() {
        for url in [
            "http://svc.prod/a/../../../api/v1/secrets",
            "http://svc.prod/%2e%2e/%2E%2E/api/v1/secrets",
            "http://svc.prod/..%2f..%2fapi/v1/secrets",
            "http://svc.prod/a\\..\\..\\..\\api/v1/secrets",
            "http://svc.prod/./../a/./../../../../api/v1/namespaces?x=/../..",
            "http://svc.prod/%2E%2e/%2e./api/v1/secrets#/../..",
        ] {
            let path = proxied(url, "x").api_path();
            let (head, rest) = path.split_once("/proxy").unwrap();
            assert_eq!(
                head, "/api/v1/namespaces/prod/services/http:svc:80",
                "{url}"
            );
            assert!(rest.starts_with('/'), "{url}: {path}");
            // The path, that is: a query is the backend's, never resolved.
            let rest_path = rest.split('?').next().unwrap();
            assert!(
                !rest_path.split('/').any(|s| s == ".." || s == "."),
                "{url}: {path}"
            );
            assert!(!rest.contains('#'), "{url}: {path}");
        }
        // A segment made by hand is escaped, whatever it holds.
        let mut p = proxied("http://svc.prod/", "x");
        p.namespace = "../kube-system".to_string();
        p.service = "a?b/c".to_string();
        assert_eq!(
            p.api_path(),
            "/api/v1/namespaces/..%2Fkube-system/services/http:a%3Fb%2Fc:80/proxy/"
        );
    }

    #[test]
    fn the_api_servers_service_and_namespaces_outside_the_allow_list_are_refused() {
        let allow = vec!["monitoring".to_string()];
        for url in [
            "https://kubernetes.default/api/v1/secrets",
            "https://kubernetes.default.svc/",
            "https://kubernetes.default.svc.cluster.local:443/",
        ] {
            let why = reach_refusal(url, "prod", None).expect(url);
            assert!(why.contains("default/kubernetes"), "{url}: {why}");
        }
        // The bare name is that Service for a canary in `default` only.
        assert!(reach_refusal("https://kubernetes/", "default", None).is_some());
        assert_eq!(reach_refusal("https://kubernetes/", "prod", None), None);
        // Without --proxy-allow any other Service may be named.
        assert_eq!(reach_refusal("http://loadtester.test/", "prod", None), None);
        // With it: the canary's namespace and the listed ones only.
        for ok in [
            "http://loadtester/",
            "http://loadtester.prod/",
            "http://prometheus.monitoring:9090",
            "http://prometheus.monitoring.svc.cluster.local:9090",
            "https://hooks.example.com/x",
            "http://127.0.0.1:8080/",
        ] {
            assert_eq!(reach_refusal(ok, "prod", Some(&allow)), None, "{ok}");
        }
        let why = reach_refusal("http://admin.kube-system.svc/", "prod", Some(&allow)).unwrap();
        assert!(
            why.contains("kube-system/admin") && why.contains("prod, monitoring"),
            "{why}"
        );
        // `name.tld` is Service `name` in namespace `tld` first, as cluster
        // DNS tries it.
        let why = reach_refusal("http://prometheus.linkerd-viz:9090", "prod", Some(&allow));
        assert!(why.unwrap().contains("linkerd-viz/prometheus"));
        let why = reach_refusal("http://example.com/", "prod", Some(&allow)).unwrap();
        assert!(why.contains("add `com` to --proxy-allow"), "{why}");
        let edge = HttpEdge::direct_only("prod")
            .unwrap()
            .with_proxy_allow(Some(allow.clone()));
        let e = edge
            .route("http://admin.kube-system.svc/?token=x", None)
            .unwrap_err();
        assert!(matches!(e, EdgeError::Refused { .. }), "{e}");
        assert!(!e.to_string().contains("token=x"), "{e}");
        assert!(matches!(
            edge.route("http://kubernetes.default/", None),
            Err(EdgeError::Refused { .. })
        ));
    }

    #[test]
    fn an_explicit_port_path_and_query_are_kept() {
        let p = proxied(
            "http://prometheus.linkerd-viz:9090/api/v1/query?query=up%7Bjob%3D%22x%22%7D&time=1",
            "x",
        );
        assert_eq!(p.port, 9090);
        assert_eq!(
            p.api_path(),
            "/api/v1/namespaces/linkerd-viz/services/http:prometheus:9090/proxy/api/v1/query?query=up%7Bjob%3D%22x%22%7D&time=1"
        );
    }

    #[test]
    fn a_single_label_host_is_a_service_in_the_canary_namespace() {
        let p = proxied("https://loadtester/gate/check", "test");
        assert_eq!(
            (p.namespace.as_str(), p.service.as_str()),
            ("test", "loadtester")
        );
        assert_eq!((p.scheme.as_str(), p.port), ("https", 443));
        assert!(p.public.is_none());
    }

    #[test]
    fn svc_and_cluster_domain_forms_are_services() {
        for url in [
            "http://podinfo.test.svc:9898/",
            "http://podinfo.test.svc.cluster.local:9898/",
            "http://PODINFO.Test.svc.cluster.local.:9898/",
        ] {
            let p = proxied(url, "other");
            assert_eq!(
                (p.namespace.as_str(), p.service.as_str(), p.port),
                ("test", "podinfo", 9898)
            );
            assert!(p.public.is_none(), "{url}");
        }
        match route_with_domain("http://a.b.svc.corp.internal/", "x", "corp.internal").unwrap() {
            Route::Proxy(p) => assert_eq!((p.namespace.as_str(), p.service.as_str()), ("b", "a")),
            other => panic!("{other:?}"),
        }
        assert!(is_direct("http://a.b.svc.corp.internal/"));
    }

    #[test]
    fn public_hosts_ips_and_localhost_go_direct() {
        for url in [
            "https://hooks.slack.com/services/T/B/X",
            "http://127.0.0.1:9090/",
            "http://[::1]:9090/",
            "http://localhost:9090/",
            "http://a.b.c.d/",
            "http://under_score.ns/",
        ] {
            assert!(is_direct(url), "{url}");
        }
    }

    #[test]
    fn in_cluster_services_go_direct_unless_the_proxy_is_asked_for() {
        assert_eq!(Via::choose(None, true), Via::Direct);
        assert_eq!(Via::choose(None, false), Via::ServiceProxy);
        assert_eq!(
            Via::choose(Some(Via::ServiceProxy), true),
            Via::ServiceProxy
        );
        assert_eq!(Via::choose(Some(Via::Direct), false), Via::Direct);

        let edge = HttpEdge::direct_only("prod").unwrap().with_via(Via::Direct);
        let direct = |url: &str| match edge.route(url, None).unwrap() {
            Route::Direct(u) => u.to_string(),
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(
            direct("http://prometheus.linkerd-viz:9090/api/v1/query?query=up"),
            "http://prometheus.linkerd-viz:9090/api/v1/query?query=up"
        );
        assert_eq!(
            direct("http://podinfo.test.svc.cluster.local:9898/"),
            "http://podinfo.test.svc.cluster.local:9898/"
        );
        // A single label means the canary's namespace whichever way it goes.
        assert_eq!(
            direct("http://flagger-loadtester/gate/check"),
            "http://flagger-loadtester.prod/gate/check"
        );
        assert_eq!(
            direct("https://hooks.slack.com/x"),
            "https://hooks.slack.com/x"
        );
        match edge.route("http://loadtester/", Some("test")).unwrap() {
            Route::Direct(u) => assert_eq!(u.as_str(), "http://loadtester.test/"),
            other => panic!("{other:?}"),
        }

        let proxied = HttpEdge::direct_only("prod").unwrap();
        assert_eq!(proxied.via(), Via::ServiceProxy);
        assert!(matches!(
            proxied.route("http://flagger-loadtester/", None).unwrap(),
            Route::Proxy(_)
        ));
    }

    #[test]
    fn bad_urls_are_refused_without_their_credentials() {
        let e = route("ftp://x.y/", "d").unwrap_err();
        assert!(matches!(e, EdgeError::InvalidUrl { .. }), "{e}");
        let e = route("not a url with secret@host?token=abc", "d").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("token=abc"), "{msg}");
    }

    #[test]
    fn displayed_urls_drop_userinfo_and_query() {
        let u = Url::parse("https://user:pw@example.com/x?token=abc#f").unwrap();
        assert_eq!(display_url(&u), "https://example.com/x");
        assert_eq!(
            display_url_str("http://u:p@bad host/?q"),
            "http://bad host/"
        );
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  gate\n closed  ", 50), "gate closed");
        let long = "x".repeat(300);
        let e = excerpt(&long, 10);
        assert_eq!(e, format!("{}…", "x".repeat(10)));
    }

    #[tokio::test]
    async fn requests_in_flight_are_bounded_and_a_webhook_does_not_wait_for_a_place() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // `/hold` answers when the gate opens; `/free` at once.
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let app = {
            let (now, most) = (now.clone(), most.clone());
            axum::Router::new()
                .route(
                    "/hold",
                    axum::routing::get(move || {
                        let (now, most, mut gate) = (now.clone(), most.clone(), gate.clone());
                        async move {
                            most.fetch_max(
                                now.fetch_add(1, Ordering::SeqCst) + 1,
                                Ordering::SeqCst,
                            );
                            let _ = gate.wait_for(|open| *open).await;
                            now.fetch_sub(1, Ordering::SeqCst);
                            "held"
                        }
                    }),
                )
                .route("/free", axum::routing::get(|| async { "free" }))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let edge = Arc::new(HttpEdge::direct_only("test").unwrap());
        let hold = format!("http://{addr}/hold");
        let held: Vec<_> = (0..2 * super::super::connect::IN_FLIGHT)
            .map(|_| {
                let (edge, url) = (edge.clone(), hold.clone());
                tokio::spawn(async move {
                    edge.send(HttpRequest::new(Method::GET, &url, Duration::from_secs(30)))
                        .await
                })
            })
            .collect();
        let full = tokio::time::Instant::now() + Duration::from_secs(10);
        while now.load(Ordering::SeqCst) < super::super::connect::IN_FLIGHT {
            assert!(
                tokio::time::Instant::now() < full,
                "the places never filled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(now.load(Ordering::SeqCst), super::super::connect::IN_FLIGHT);

        // Every place taken: a query waits, and its wait is its time limit;
        // a webhook's call goes through.
        let free = format!("http://{addr}/free");
        let e = edge
            .send(HttpRequest::new(
                Method::GET,
                &free,
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        let mut hook = HttpRequest::new(Method::GET, &free, Duration::from_secs(5));
        hook.long = true;
        assert_eq!(edge.send(hook).await.unwrap().body, "free");

        open.send(true).unwrap();
        for h in held {
            assert_eq!(h.await.unwrap().unwrap().body, "held");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            super::super::connect::IN_FLIGHT
        );
    }

    /// A server that answers 200 with the `Authorization` header it got.
    async fn echo_authorization() -> String {
        use axum::Router;
        use axum::http::HeaderMap;
        use axum::routing::any;
        let app = Router::new().route(
            "/{*path}",
            any(|h: HeaderMap| async move {
                h.get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr.to_string()
    }

    #[tokio::test]
    async fn a_user_and_password_in_a_url_are_sent_as_basic_auth() {
        use base64::prelude::{BASE64_STANDARD, Engine as _};
        let addr = echo_authorization().await;
        let edge = HttpEdge::direct_only("test").unwrap();
        let url = format!("http://flagger:p%40ss@{addr}/gate");
        let reply = edge
            .send(HttpRequest::new(Method::POST, &url, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(
            reply.body,
            format!("Basic {}", BASE64_STANDARD.encode("flagger:p@ss"))
        );
        // The request's own header wins, as with Go's client.
        let mut req = HttpRequest::new(Method::GET, &url, Duration::from_secs(5));
        req.headers
            .insert(AUTHORIZATION, "Bearer t".parse().unwrap());
        assert_eq!(edge.send(req).await.unwrap().body, "Bearer t");
    }

    #[tokio::test]
    async fn a_user_and_password_cannot_pass_the_service_proxy_and_are_not_shown() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let edge = HttpEdge::from_config(config, "test").unwrap();
        let e = edge
            .send(HttpRequest::new(
                Method::POST,
                "http://flagger:s3cret@flagger-loadtester.prod.svc/",
                Duration::from_secs(1),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(e, EdgeError::CredentialsThroughProxy { .. }),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn without_a_cluster_an_in_cluster_url_is_a_clear_error() {
        let edge = HttpEdge::direct_only("test").unwrap();
        let e = edge
            .send(HttpRequest::new(
                Method::GET,
                "http://loadtester/",
                Duration::from_secs(1),
            ))
            .await
            .unwrap_err();
        assert!(matches!(e, EdgeError::NoCluster { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_slow_answer_are_told_apart() {
        // A port nothing listens on.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let edge = HttpEdge::direct_only("test").unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let e = edge
            .send(HttpRequest::new(Method::GET, &url, Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(e, EdgeError::Connect { .. }), "{e}");
        assert!(e.is_retryable());

        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let e = edge
            .send(HttpRequest::new(
                Method::GET,
                &url,
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.to_string().contains("no answer within 200ms"), "{e}");
        hold.abort();
    }
}
