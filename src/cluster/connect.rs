//! Connecting to the cluster, as kubectl and kube's `Config::infer` do:
//! `--kubeconfig`, else `KUBECONFIG` (a list of files, merged), else
//! `~/.kube/config`, else (inside a Pod) the Pod's service account.
//! `--context` picks a kubeconfig's context; `-n` overrides its namespace.
//!
//! Which of these applies is decided by the command from its flags and the
//! environment ([`ConfigSource`]); this module loads it and says which one
//! it was when it fails.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::{ClusterError, ConnectCause, Result};

/// Where Kubernetes mounts a Pod's service account.
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the client's settings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The file `--kubeconfig` names.
    File(PathBuf),
    /// kubectl's default: `$KUBECONFIG` or `~/.kube/config`, described for
    /// messages (kube reads them itself).
    Kubeconfig(String),
    /// No kubeconfig: the Pod's service account under
    /// [`SERVICE_ACCOUNT_DIR`] and the API server of
    /// `KUBERNETES_SERVICE_HOST`/`PORT`, read by kube's `Config::incluster`.
    InCluster,
    /// The same from another directory and API server: how the tests play
    /// a Pod, since kube reads the service account from a fixed path.
    ServiceAccount {
        dir: PathBuf,
        host: Option<String>,
        port: Option<String>,
    },
}

impl ConfigSource {
    /// Whether this is the configuration a Pod gets: then cluster DNS
    /// resolves Service names (see `proxy::Via`).
    pub fn is_in_cluster(&self) -> bool {
        matches!(
            self,
            ConfigSource::InCluster | ConfigSource::ServiceAccount { .. }
        )
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "kubeconfig {}", path.display()),
            ConfigSource::Kubeconfig(what) => write!(f, "kubeconfig {what}"),
            ConfigSource::InCluster => write!(
                f,
                "in-cluster config (service account in {SERVICE_ACCOUNT_DIR}, API server from \
                 KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)"
            ),
            ConfigSource::ServiceAccount { dir, .. } => write!(
                f,
                "in-cluster config (service account in {}, API server from \
                 KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)",
                dir.display()
            ),
        }
    }
}

/// A client and the namespace commands default to.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// The resolved configuration, for clients with other settings (the
    /// HTTP edge uses one without kube's retries).
    pub config: kube::Config,
    /// Where it came from: in-cluster URLs are reached differently inside
    /// a Pod.
    pub source: ConfigSource,
    /// The context's namespace (in a Pod, the service account's), or
    /// `default`.
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
    /// The kubeconfig's user, for messages.
    pub user: Option<String>,
    /// The clients of the HTTP edge (`proxy::HttpEdge`), built once and
    /// shared by every edge of this connection: each driver of a run has
    /// an edge, and clients of their own would each keep connections and
    /// TLS settings of their own.
    pub(crate) edge_clients: std::sync::Arc<std::sync::Mutex<Option<super::proxy::EdgeClients>>>,
}

/// The requests one client has in flight at once: the API server's, and
/// the HTTP edge's metric queries and notifications (webhooks, which may
/// take as long as their `timeout`, are not counted).
///
/// kube's client and reqwest speak HTTP/1.1 from a pool of connections,
/// where a request that finds no idle connection opens one more, with its
/// TLS session and buffers, kept for a minute and a half. A run driving a
/// hundred canaries on one interval sends each round's requests in one
/// burst; unbounded, every burst would open a connection per canary, a few
/// hundred in all. With this bound a burst waits its turn by milliseconds:
/// at an API server's usual latency that is still hundreds of requests a
/// second, more than Flagger's own client allows itself (100 a second).
/// A watch holds its place only until its answer starts.
pub(crate) const IN_FLIGHT: usize = 32;

/// How long connecting may take unless `--request-timeout` says otherwise:
/// kube's own connect timeout, and the first failure reported within it.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects with the configuration `source` names, and asks the API server
/// its version within `timeout` (`None`: no limit), so that an unreachable
/// server, an untrusted certificate or refused credentials are reported
/// first, as kubectl reports them, and not as what a later call made of
/// them.
pub async fn connect(
    source: &ConfigSource,
    context: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Connection> {
    let conn = load(source, context, timeout).await?;
    probe(&conn, timeout).await?;
    Ok(conn)
}

/// The user the credentials belong to, as the kubeconfig names it.
fn user_of(kc: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())?;
    let ctx = kc.contexts.iter().find(|c| c.name == name)?;
    ctx.context.as_ref()?.user.clone()
}

/// Whether exec credential plugins may ask the user anything: not while
/// completing a command line, where nobody can answer and nothing may be
/// printed.
static NON_INTERACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Exec credential plugins run without a terminal from now on.
pub(crate) fn set_non_interactive() {
    NON_INTERACTIVE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The kubeconfig `source` names, read as kubectl reads it: a
/// `KUBECONFIG` list is merged, first file first, and a file of the list
/// that does not exist is skipped. `None` for the in-cluster sources.
pub(crate) fn read_kubeconfig(
    source: &ConfigSource,
) -> Option<std::result::Result<Kubeconfig, String>> {
    match source {
        ConfigSource::File(path) => Some(Kubeconfig::read_from(path).map_err(|e| e.to_string())),
        ConfigSource::Kubeconfig(_) => {
            let list = std::env::var_os("KUBECONFIG").unwrap_or_default();
            Some(merge_list(&list))
        }
        ConfigSource::InCluster | ConfigSource::ServiceAccount { .. } => None,
    }
}

/// The files of a `KUBECONFIG` value, merged; missing ones skipped.
fn merge_list(list: &std::ffi::OsStr) -> std::result::Result<Kubeconfig, String> {
    let paths: Vec<PathBuf> = std::env::split_paths(list)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let present: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if present.is_empty() {
        return Err(format!(
            "none of the files it lists exists ({})",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut merged = Kubeconfig::default();
    for p in present {
        let next = Kubeconfig::read_from(p).map_err(|e| format!("{}: {e}", p.display()))?;
        merged = merged.merge(next).map_err(|e| e.to_string())?;
    }
    Ok(merged)
}

/// What kube leaves to the caller, done as kubectl does it, for the user of
/// the context in use: a token file's token is trimmed (a file written
/// with `echo` ends in a newline, which is no part of the token), and an
/// exec plugin that is not installed is named before anything runs.
fn prepare(kc: &mut Kubeconfig, context: Option<&str>) -> std::result::Result<(), String> {
    let Some(user) = user_of(kc, context) else {
        return Ok(());
    };
    let Some(info) = kc
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_mut())
    else {
        return Ok(());
    };
    if info.token.is_none()
        && let Some(file) = &info.token_file
        && let Ok(text) = std::fs::read_to_string(file)
        && text.trim() != text
    {
        // Read once for this run: kube re-reads a token file only when it
        // keeps it, and would send the newline.
        info.token = Some(text.trim().to_string().into());
        info.token_file = None;
    }
    if let Some(exec) = info.exec.as_mut() {
        if let Some(command) = &exec.command
            && !on_path(command)
        {
            return Err(format!(
                "exec plugin \"{command}\" of user `{user}` not found on PATH (executable \
                 {command} not found); install it, or correct users[].user.exec.command in the \
                 kubeconfig"
            ));
        }
        if NON_INTERACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
            exec.interactive_mode = Some(kube::config::ExecInteractiveMode::Never);
        }
    }
    Ok(())
}

/// Whether `command` runs: a path that exists, or a name found on `PATH`.
fn on_path(command: &str) -> bool {
    let path = Path::new(command);
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH").is_some_and(|dirs| {
        std::env::split_paths(&dirs).any(|d| {
            let candidate = d.join(command);
            candidate.is_file() || (cfg!(windows) && candidate.with_extension("exe").is_file())
        })
    })
}

/// `GET /version` within `timeout`, its failure said as kubectl says it.
async fn probe(conn: &Connection, timeout: Option<Duration>) -> Result<()> {
    let fail = |cause: ConnectCause| ClusterError::Connect {
        server: conn.server.clone(),
        config: conn.source.to_string(),
        cause,
    };
    let url = &conn.config.cluster_url;
    let host = url.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let limit = timeout.unwrap_or(Duration::MAX);
    // A name that does not resolve fails here, told apart from a server
    // that does not answer; a proxy resolves the name itself.
    if conn.config.proxy_url.is_none() && host.parse::<std::net::IpAddr>().is_err() {
        let lookup = async {
            tokio::net::lookup_host((host, port))
                .await
                .map(|mut a| a.next().is_some())
        };
        match tokio::time::timeout(limit, lookup).await {
            Ok(Ok(true)) => {}
            Ok(_) => return Err(fail(ConnectCause::NoSuchHost(host.to_string()))),
            Err(_) => return Err(fail(ConnectCause::TimedOut(limit))),
        }
    }
    match tokio::time::timeout(limit, conn.client.apiserver_version()).await {
        Err(_) => Err(fail(ConnectCause::TimedOut(limit))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => Err(fail(ConnectCause::Unauthorized {
            user: conn.user.clone(),
        })),
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => Err(fail(ConnectCause::Forbidden {
            user: conn.user.clone(),
            message: s.message.clone(),
        })),
        // Any other answer is an answer: the server is there.
        Ok(Err(kube::Error::Api(_))) => Ok(()),
        Ok(Err(e)) => Err(fail(classify(&e, limit))),
    }
}

/// What stopped a connection, from the error's causes.
fn classify(e: &kube::Error, limit: Duration) -> ConnectCause {
    use std::io::ErrorKind;
    use tokio_rustls::rustls;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return ConnectCause::Refused,
                ErrorKind::TimedOut => return ConnectCause::TimedOut(limit),
                _ => {}
            }
            // An I/O error's own source skips the error it wraps (which
            // may be another I/O error, wrapping the TLS one).
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return ConnectCause::Tls(tls_words(tls));
        }
        next = err.source();
    }
    ConnectCause::Other(
        super::error::exec_failure(e, None).unwrap_or_else(|| super::error::chain(e)),
    )
}

/// A certificate failure as kubectl (Go's crypto/x509) words it.
fn tls_words(e: &tokio_rustls::rustls::Error) -> String {
    use tokio_rustls::rustls::{CertificateError, Error};
    match e {
        // Go says the same of an issuer of the right name whose signature
        // does not verify: a CA other than the server's.
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | Error::InvalidCertificate(CertificateError::BadSignature) => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .to_string()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
                .to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "tls: failed to verify certificate: x509: certificate is not valid for this server's name"
                .to_string()
        }
        other => format!("tls: failed to verify certificate: {other}"),
    }
}

/// Loads the configuration and builds a client, without a request.
async fn load(
    source: &ConfigSource,
    context: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Connection> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let failed =
        |e: &dyn fmt::Display| ClusterError::Config(format!("failed to load {source}: {e}"));
    if let (Some(context), true) = (context, source.is_in_cluster()) {
        return Err(ClusterError::Config(format!(
            "--context {context} names a kubeconfig context, and there is no kubeconfig (no \
             --kubeconfig, KUBECONFIG is unset and ~/.kube/config does not exist); inside a Pod \
             canary uses its service account"
        )));
    }
    let mut user = None;
    let config = match source {
        ConfigSource::File(_) | ConfigSource::Kubeconfig(_) => {
            let mut kc = read_kubeconfig(source)
                .expect("a kubeconfig source")
                .map_err(|e| failed(&e))?;
            user = user_of(&kc, context);
            prepare(&mut kc, context).map_err(ClusterError::Config)?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| failed(&e))?
        }
        ConfigSource::InCluster => kube::Config::incluster().map_err(|e| {
            ClusterError::Config(format!(
                "failed to load the {source}, used because there is no kubeconfig (no \
                 --kubeconfig, KUBECONFIG is unset and ~/.kube/config does not exist): {e}; \
                 outside a cluster, pass --kubeconfig"
            ))
        })?,
        ConfigSource::ServiceAccount { dir, host, port } => {
            service_account(dir, host.as_deref(), port.as_deref())
                .await
                .map_err(|e| failed(&e))?
        }
    };
    let mut config = config;
    crate::secrets::learn_kube(&config);
    // kube's own connect timeout (30 s) is the default; `--request-timeout`
    // sets it, `0` lifts it.
    config.connect_timeout = timeout;
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    // kube's own retries (429, 503, 504) give way to ours, which also
    // retry a read's 500s and broken connections (`retry.rs`).
    config.default_retry = false;
    let failed = |e: kube::Error| {
        let why = super::error::exec_failure(&e, user.as_deref())
            .unwrap_or_else(|| super::error::chain(&e));
        ClusterError::Config(format!("failed to build a client from the {source}: {why}"))
    };
    // kube's authentication runs above a layer that teaches the redactor
    // each credential it adds (`credentials.rs`).
    let auth = super::credentials::auth_layer(&config).map_err(failed)?;
    let client =
        kube::client::ClientBuilder::try_from(super::credentials::without_header_auth(&config))
            .map_err(failed)?
            .with_layer(&super::credentials::Learn::default())
            // kube's token refresh sends through a cloneable service.
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            // Each try of a request waits for its place.
            .with_layer(&tower::limit::ConcurrencyLimitLayer::new(IN_FLIGHT))
            .with_layer(&tower::util::option_layer(auth))
            // A request is sent again through a cloneable service.
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&super::retry::Transient::layer())
            .build();
    if source.is_in_cluster() {
        user = Some("the Pod's service account".to_string());
    }
    Ok(Connection {
        client,
        config,
        source: source.clone(),
        namespace,
        server,
        user,
        edge_clients: Default::default(),
    })
}

/// What `Config::incluster` makes of a service account, read from `dir`:
/// the CA and the token by file (kube re-reads both, as they rotate), the
/// namespace from the `namespace` file. Built through a kubeconfig so that
/// kube itself reads the files.
async fn service_account(
    dir: &Path,
    host: Option<&str>,
    port: Option<&str>,
) -> std::result::Result<kube::Config, String> {
    let (Some(host), Some(port)) = (host, port) else {
        return Err("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set".into());
    };
    let port: u16 = port
        .parse()
        .map_err(|e| format!("KUBERNETES_SERVICE_PORT `{port}`: {e}"))?;
    // An IPv6 address needs its brackets in a URL.
    let server = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        _ => format!("https://{host}:{port}"),
    };
    let namespace_file = dir.join("namespace");
    let namespace = std::fs::read_to_string(&namespace_file)
        .map_err(|e| format!("failed to read {}: {e}", namespace_file.display()))?;
    let ca = dir.join("ca.crt");
    let token = dir.join("token");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": server,
            "certificate-authority": ca,
        }}],
        "users": [{"name": "service-account", "user": {"tokenFile": token}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster",
            "user": "service-account",
            "namespace": namespace.trim(),
        }}],
        "current-context": "in-cluster",
    });
    let kc: Kubeconfig = serde_json::from_value(kubeconfig).map_err(|e| e.to_string())?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    // As `Config::incluster` sets it: the CA file is re-read as it rotates.
    config.root_cert_file = Some(ca);
    Ok(config)
}
