//! [`Sim`]: a running simulated API server on 127.0.0.1 with a generated
//! kubeconfig (and the service-account files a Pod would get instead),
//! direct access to its [`Store`], the request log, switchable RBAC
//! enforcement, switchable faults, service-proxy backends, the Pod network
//! (see `podnet`) and graceful shutdown.
//!
//! One port speaks both plain HTTP ([`Sim::url`]) and HTTPS
//! ([`Sim::https_url`], with a CA made per sim): the first byte of a
//! connection tells them apart. The kubeconfig uses HTTPS because client-go
//! (so `kubectl`) never sends a bearer token over plain HTTP.
//!
//! The accept loop is hyper's own (not `axum::serve`) so that a fault can
//! drop a connection without answering, as a real network failure would.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::api::{self, ApiState, RequestLog};
pub use crate::api::{FaultStatus, Faults, RequestRecord};
pub use crate::kinds::CrdGroups;
use crate::kinds::Kinds;
use crate::kubeconfig;
pub use crate::podnet::PodRequest;
use crate::podnet::{self, PodLog};
use crate::rbac::Rules;
pub use crate::store::{ApiError, Store};

/// How to start a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Which optional CRD groups are installed (SMI, Gateway API, Istio all
    /// by default; Flagger not).
    pub crds: CrdGroups,
    /// The namespace of the kubeconfig's context.
    pub namespace: String,
    /// What `/version` reports; `kubectl` on the build machines picks its
    /// own minor version from it.
    pub server_version: String,
    /// How often watches that allow bookmarks receive one (the real server:
    /// about a minute).
    pub bookmark_interval: Duration,
    /// How many changes the watch history keeps before older
    /// resourceVersions answer 410 Gone.
    pub watch_history: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            crds: CrdGroups::default(),
            namespace: "default".to_string(),
            server_version: "v1.32.4".to_string(),
            bookmark_interval: Duration::from_secs(1),
            watch_history: 10_000,
        }
    }
}

/// A running simulated cluster API server.
pub struct Sim {
    state: Arc<ApiState>,
    ca_pem: String,
    addr: SocketAddr,
    namespace: String,
    shutdown_tx: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    connections: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
    pod_addr: SocketAddr,
    pod_log: Arc<PodLog>,
    pod_network: Option<JoinHandle<()>>,
}

impl Sim {
    /// Binds 127.0.0.1 on a free port and starts serving (needs a tokio
    /// runtime).
    pub async fn start(config: SimConfig) -> anyhow::Result<Sim> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store::new(Kinds::new(config.crds)));
        store.set_history_limit(config.watch_history);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let token = format!("sim-{:032x}", fastrand::u128(..));
        let state = Arc::new(ApiState {
            store,
            token,
            faults: Arc::new(Faults::default()),
            log: Arc::new(RequestLog::default()),
            backends: RwLock::default(),
            server_version: config.server_version.clone(),
            bookmark_interval: config.bookmark_interval,
            shutdown: shutdown_rx.clone(),
            rules: RwLock::default(),
            openapi: Default::default(),
            external_metrics: RwLock::default(),
        });
        let (acceptor, ca_pem) = make_tls()?;
        let connections = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            acceptor,
            state.clone(),
            shutdown_rx.clone(),
            connections.clone(),
        ));
        let pod_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let pod_addr = pod_listener.local_addr()?;
        let pod_log = Arc::new(PodLog::default());
        let app = podnet::router(state.clone(), pod_log.clone(), config.namespace.clone());
        let mut rx = shutdown_rx;
        let pod_network = tokio::spawn(async move {
            let _ = axum::serve(pod_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(Sim {
            state,
            ca_pem,
            addr,
            namespace: config.namespace,
            shutdown_tx,
            accept: Some(accept),
            connections,
            pod_addr,
            pod_log,
            pod_network: Some(pod_network),
        })
    }

    /// `http://127.0.0.1:PORT`: the API over plain HTTP (a bearer token is
    /// still required).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`: the same API over TLS, as the kubeconfig
    /// names it; the certificate is signed by the CA the kubeconfig holds.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token every API request must carry.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// A kubeconfig for this cluster (context `sim`, the configured
    /// namespace).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(
            &self.https_url(),
            Some(&self.ca_pem),
            &self.state.token,
            &self.namespace,
        )
    }

    /// Writes the kubeconfig to `path` (mode 0600 on Unix).
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig_yaml())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// Writes what Kubernetes mounts into a Pod at
    /// `/var/run/secrets/kubernetes.io/serviceaccount/`: `token` (this
    /// sim's bearer token, mode 0600 on Unix), `ca.crt` (the CA the
    /// kubeconfig embeds) and `namespace` (the kubeconfig's). With
    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set to
    /// [`Self::addr`], a client's in-cluster configuration reaches this sim.
    pub fn write_service_account(&self, dir: impl AsRef<Path>) -> std::io::Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let token = dir.join("token");
        std::fs::write(&token, &self.state.token)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::write(dir.join("ca.crt"), &self.ca_pem)?;
        std::fs::write(dir.join("namespace"), &self.namespace)
    }

    /// `http://127.0.0.1:PORT`: the Pod network as an HTTP forward proxy
    /// (for `HTTP_PROXY`), through which `http://NAME.NAMESPACE:PORT/`
    /// reaches a Service's backend directly, as from inside a Pod.
    pub fn pod_network_url(&self) -> String {
        format!("http://{}", self.pod_addr)
    }

    /// Every request that reached the Pod network, oldest first; the API
    /// server's [`Self::request_log`] does not hold them.
    pub fn pod_network_log(&self) -> Vec<PodRequest> {
        self.pod_log.entries()
    }

    /// Direct access to the objects, for controllers and tests.
    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.state.log.entries()
    }

    pub fn clear_request_log(&self) {
        self.state.log.clear()
    }

    /// Holds the token to `rules` from the next request on (RBAC as the
    /// real API server enforces it, see [`crate::rbac`]); `None`
    /// lifts every restriction again, which is how a sim starts.
    pub fn restrict(&self, rules: Option<Rules>) {
        *self.state.rules.write().unwrap_or_else(|e| e.into_inner()) = rules.map(Arc::new);
    }

    /// The switchable faults (also holds the metrics-outage flag).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.state.faults
    }

    /// Serves `router` behind the service proxy for `namespace/service` on
    /// the Service port `port` (its `port` number, which a proxy URL may
    /// name by number or by the port's name).
    pub fn register_service_backend(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
        router: Router,
    ) {
        self.state
            .backends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), service.to_string(), port), router);
    }

    /// Serves the external metrics API group (`external.metrics.k8s.io`)
    /// from `providers`' table, as an aggregated API server would
    /// ([`crate::providers::externalmetrics`]).
    pub fn serve_external_metrics(&self, providers: Arc<crate::providers::MetricProviders>) {
        *self
            .state
            .external_metrics
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(providers);
    }

    pub fn unregister_service_backend(&self, namespace: &str, service: &str, port: u16) {
        self.state
            .backends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), service.to_string(), port));
    }

    /// Stops accepting, ends open watches, lets in-flight requests finish
    /// (up to 5 s), then closes every connection.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        if let Some(mut pods) = self.pod_network.take() {
            // A client's idle keep-alive connection would hold a graceful
            // shutdown open: a short grace, then it is ended.
            if tokio::time::timeout(Duration::from_secs(1), &mut pods)
                .await
                .is_err()
            {
                pods.abort();
            }
        }
        let mut conns = self.connections.lock().await;
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            conns.abort_all();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        if let Some(pods) = self.pod_network.take() {
            pods.abort();
        }
        if let Ok(mut c) = self.connections.try_lock() {
            c.abort_all();
        }
    }
}

/// The error a service returns to make hyper drop the connection.
#[derive(Debug)]
struct DroppedByFault;

impl std::fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedByFault {}

/// A CA and a server certificate for 127.0.0.1 and localhost, new for every
/// sim; returns the TLS acceptor and the CA's PEM.
fn make_tls() -> anyhow::Result<(TlsAcceptor, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sim-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), ca_pem))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
    connections: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let conn_shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        let mut set = connections.lock().await;
        // Reap finished connections so the set does not grow.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            // A TLS connection opens with a handshake record (0x16).
            let mut first = [0u8; 1];
            let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
            if is_tls {
                let handshake =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                if let Ok(Ok(tls)) = handshake {
                    serve_connection(tls, state, conn_shutdown).await;
                }
            } else {
                serve_connection(stream, state, conn_shutdown).await;
            }
        });
    }
}

async fn serve_connection<I>(io: I, state: Arc<ApiState>, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let state = state.clone();
        async move {
            let req = req.map(Body::new);
            match api::handle(state, req).await {
                Some(resp) => Ok(resp),
                None => Err(DroppedByFault),
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
