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

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::{ClusterError, Result};

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
}

/// Connects with the configuration `source` names.
pub async fn connect(source: &ConfigSource, context: Option<&str>) -> Result<Connection> {
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
    let config = match source {
        ConfigSource::File(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| failed(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| failed(&e))?
        }
        ConfigSource::Kubeconfig(_) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| failed(&e))?,
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
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone()).map_err(|e| {
        ClusterError::Config(format!("failed to build a client from the {source}: {e}"))
    })?;
    Ok(Connection {
        client,
        config,
        source: source.clone(),
        namespace,
        server,
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
