//! Errors of the cluster layer, with the object they concern.

/// A failed cluster operation.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration did not load; the message names which one.
    #[error("{0}")]
    Config(String),
    /// The API server could not be reached or refused the credentials,
    /// said as kubectl says it.
    #[error("{}", connect_message(server, cause, config))]
    Connect {
        server: String,
        /// Which configuration named the server.
        config: String,
        cause: ConnectCause,
    },
    #[error("failed to {action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{object} not found")]
    NotFound { object: String },
    /// The API server refused the request; its own words.
    #[error("failed to {action} {object}: {message} ({reason}, HTTP {code})")]
    Refusal {
        action: &'static str,
        object: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The credentials lack a permission (RBAC).
    #[error(
        "failed to {action} {object}: permission denied: {message} \
         (examples/rbac.yaml lists the permissions canary needs)"
    )]
    Forbidden {
        action: &'static str,
        object: String,
        message: String,
    },
    /// Someone else changed the object since it was read.
    #[error("{object} changed while it was being updated")]
    Conflict { object: String },
    /// The cluster is in a state `canary` must not act on.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
}

impl ClusterError {
    /// Wraps a kube error, keeping 404 and 409 apart.
    pub fn api(action: &'static str, object: impl Into<String>, e: kube::Error) -> Self {
        let object = object.into();
        if let Some(words) = exec_failure(&e, None) {
            return ClusterError::Config(format!("failed to {action} {object}: {words}"));
        }
        if let kube::Error::Api(s) = &e {
            if s.code == 404 {
                return ClusterError::NotFound { object };
            }
            if s.code == 409 && s.reason == "Conflict" {
                return ClusterError::Conflict { object };
            }
            if s.code == 403 {
                // The API server's message names the user, the verb and the
                // resource: `... cannot patch resource "deployments" ...`.
                return ClusterError::Forbidden {
                    action,
                    object,
                    message: s.message.clone(),
                };
            }
            if !s.message.is_empty() {
                return ClusterError::Refusal {
                    action,
                    object,
                    code: s.code,
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                };
            }
        }
        ClusterError::Api {
            action,
            object,
            source: Box::new(e),
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ClusterError::Conflict { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::NotFound { .. })
    }

    /// Whether trying again later may succeed: the API server was busy or
    /// failed (429, 5xx) or the connection broke. A refusal that names a
    /// reason (403, 422, a missing object) is not.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Refusal { code, .. } => *code == 429 || *code >= 500,
            ClusterError::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => s.code == 429 || s.code >= 500,
                kube::Error::HyperError(_) | kube::Error::Service(_) => true,
                kube::Error::ReadEvents(_) => true,
                _ => false,
            },
            _ => false,
        }
    }
}

/// Why a connection to the API server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectCause {
    Refused,
    TimedOut(std::time::Duration),
    NoSuchHost(String),
    /// The server's certificate failed verification: kubectl's words.
    Tls(String),
    Unauthorized {
        user: Option<String>,
    },
    Forbidden {
        user: Option<String>,
        message: String,
    },
    Other(String),
}

fn connect_message(server: &str, cause: &ConnectCause, source: &str) -> String {
    let user = |u: &Option<String>| match u {
        Some(u) => format!(" as user `{u}`"),
        None => String::new(),
    };
    match cause {
        ConnectCause::Refused => format!(
            "the connection to the server {server} was refused - did you specify the right host or port? (from the {source})"
        ),
        ConnectCause::TimedOut(t) if *t == std::time::Duration::MAX => {
            format!("unable to connect to the server {server}: i/o timeout (from the {source})")
        }
        ConnectCause::TimedOut(t) => format!(
            "unable to connect to the server {server}: i/o timeout: no answer within {} (--request-timeout) (from the {source})",
            humantime::format_duration(*t)
        ),
        ConnectCause::NoSuchHost(host) => format!(
            "unable to connect to the server {server}: lookup {host}: no such host (from the {source})"
        ),
        ConnectCause::Tls(words) => format!(
            "unable to connect to the server {server}: {words} (check the cluster's certificate-authority in the {source})"
        ),
        ConnectCause::Unauthorized { user: u } => format!(
            "you must be logged in to the server {server} (Unauthorized, HTTP 401): it refused the credentials{} of the {source}; the token or certificate is wrong or expired",
            user(u)
        ),
        ConnectCause::Forbidden { user: u, message } => format!(
            "the server {server} refused access{} (Forbidden, HTTP 403): {message}",
            user(u)
        ),
        ConnectCause::Other(e) => {
            format!("unable to connect to the server {server}: {e} (from the {source})")
        }
    }
}

/// An exec credential plugin's failure, in words that hold its exit status
/// and what it wrote to stderr, and never what it wrote to stdout: that is
/// where a plugin prints the token. kube's own message holds both.
pub(crate) fn exec_failure(
    e: &(dyn std::error::Error + 'static),
    user: Option<&str>,
) -> Option<String> {
    use kube::client::AuthError;
    let of_user = user.map(|u| format!(" of user `{u}`")).unwrap_or_default();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        match err.downcast_ref::<AuthError>() {
            Some(AuthError::AuthExecRun { cmd, out }) => {
                let status = match out.status.code() {
                    Some(code) => format!("exit code {code}"),
                    None => out.status.to_string(),
                };
                let stderr = String::from_utf8_lossy(&out.stderr);
                let stderr = stderr.trim();
                let said = if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                };
                return Some(format!(
                    "exec plugin {cmd}{of_user} failed with {status}{said}"
                ));
            }
            Some(AuthError::AuthExecStart(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                return Some(format!(
                    "exec plugin{of_user} not found on PATH (executable not found): {io}"
                ));
            }
            Some(AuthError::AuthExecParse(_)) => {
                return Some(format!(
                    "exec plugin{of_user} printed something that is not an ExecCredential"
                ));
            }
            _ => {}
        }
        next = err.source();
    }
    None
}

/// An error and its causes, `: `-joined, each said once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(words) = exec_failure(e, None) {
        return words;
    }
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

pub(crate) type Result<T> = std::result::Result<T, ClusterError>;
