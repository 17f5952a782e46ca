//! Errors of the cluster layer, with the object they concern.

/// A failed cluster operation.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration did not load; the message names which one.
    #[error("{0}")]
    Config(String),
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
}

pub(crate) type Result<T> = std::result::Result<T, ClusterError>;
