//! Connecting with the user's kubeconfig, as kubectl does: `--kubeconfig`,
//! else `KUBECONFIG` (a list of files, merged), else `~/.kube/config`;
//! `--context` picks the context; `-n` overrides its namespace.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::{ClusterError, Result};

/// A client and the namespace commands default to.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// The resolved configuration, for clients with other settings (the
    /// HTTP edge uses one without kube's retries).
    pub config: kube::Config,
    /// The context's namespace, or `default`.
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

/// Connects with the user's kubeconfig and settings.
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Connection> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            // kube's message names the file already.
            let kc =
                Kubeconfig::read_from(path).map_err(|e| ClusterError::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
    };
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| ClusterError::Config(format!("failed to build a client: {e}")))?;
    Ok(Connection {
        client,
        config,
        namespace,
        server,
    })
}
