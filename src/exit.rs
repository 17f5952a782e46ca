//! Exit codes: one enum, mapped to numbers in one place, and the one
//! mapping from every verdict and every error to it.
//!
//! A CI pipeline branches on these, so they are part of the interface and
//! documented in the README and the man page (`EXIT STATUS`). Commands
//! report an error and return `Outcome::from(&error)`; they never pick a
//! code for an error themselves.

use crate::cluster::error::ClusterError;
use crate::commands::act::ActError;
#[cfg(feature = "demo")]
use crate::commands::demo::DemoError;
use crate::commands::revert::RevertError;
use crate::driver::RunError;
use crate::router::detect::DetectError;
use canary_core::engine::decide::Verdict;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Promoted, reverted, valid, or nothing to do.
    Success,
    /// The canary failed its analysis and was rolled back.
    RolledBack,
    /// Usage or spec error; nothing was changed in the cluster.
    Usage,
    /// A cluster, API or metrics-server error stopped the run.
    Cluster,
    /// Aborted by `canary abort`.
    Aborted,
    /// The run exceeded its time limit.
    TimedOut,
    /// Interrupted; the state is kept and `canary run` resumes.
    Interrupted,
    /// Terminated by SIGTERM, as a Pod or a CI job is stopped; the state
    /// is kept and `canary run` resumes.
    Terminated,
}

impl Outcome {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::RolledBack => 1,
            Outcome::Usage => 2,
            Outcome::Cluster => 3,
            Outcome::Aborted => 4,
            Outcome::TimedOut => 5,
            Outcome::Interrupted => 130,
            // 128 + 15, what a shell reports for a process SIGTERM ended.
            Outcome::Terminated => 143,
        }
    }

    /// Every outcome with its meaning, for the README and the man page.
    pub const TABLE: &'static [(Outcome, &'static str)] = &[
        (Outcome::Success, "promoted, reverted, or nothing to do"),
        (
            Outcome::RolledBack,
            "the canary failed its analysis and was rolled back",
        ),
        (
            Outcome::Usage,
            "usage, spec or setup error (an object, Secret key, port or permission the \
             spec needs is missing); nothing was changed in the cluster",
        ),
        (
            Outcome::Cluster,
            "a cluster, API or metrics-server error stopped the run",
        ),
        (Outcome::Aborted, "aborted by `canary abort`"),
        (Outcome::TimedOut, "timed out"),
        (
            Outcome::Interrupted,
            "interrupted; the state is kept and `canary run` resumes",
        ),
        (
            Outcome::Terminated,
            "terminated by SIGTERM (a Pod or CI job stopped); the state is kept and `canary run` resumes",
        ),
    ];
}

impl From<&Verdict> for Outcome {
    fn from(v: &Verdict) -> Self {
        match v {
            Verdict::Initialized | Verdict::NoChange | Verdict::Promoted | Verdict::Suspended => {
                Outcome::Success
            }
            // A revision that failed before fails a pipeline again until it
            // is retried.
            Verdict::RolledBack { .. } | Verdict::AlreadyFailed(_) => Outcome::RolledBack,
            Verdict::Aborted { .. } => Outcome::Aborted,
        }
    }
}

impl From<&ClusterError> for Outcome {
    /// Every cluster error, a kubeconfig that does not load included.
    fn from(_: &ClusterError) -> Self {
        Outcome::Cluster
    }
}

impl From<&RunError> for Outcome {
    fn from(e: &RunError) -> Self {
        match e {
            RunError::Cluster(e) => e.into(),
            // A Flagger that owns the canary, another driver's live lease:
            // the cluster's state stopped the run.
            RunError::Refused(_) => Outcome::Cluster,
            // The spec or the flags ask for what `canary run` cannot do.
            RunError::Setup(_) => Outcome::Usage,
            // Left as it was, to be resumed; `canary run` tells a timeout
            // from an interrupt by what stopped it.
            RunError::Stopped => Outcome::Interrupted,
        }
    }
}

impl From<&DetectError> for Outcome {
    fn from(e: &DetectError) -> Self {
        match e {
            // None or several found: the user names one.
            DetectError::Ambiguous(_) => Outcome::Usage,
            // What is installed could not be read: nothing was changed,
            // but the spec is not at fault.
            DetectError::Cluster(e) => e.into(),
        }
    }
}

impl From<&ActError> for Outcome {
    fn from(e: &ActError) -> Self {
        match e {
            ActError::Usage(_) => Outcome::Usage,
            ActError::Cluster(e) => e.into(),
            ActError::Run(e) => e.into(),
        }
    }
}

impl From<&RevertError> for Outcome {
    fn from(e: &RevertError) -> Self {
        match e {
            // A live driver, a primary canary did not make, a missing
            // spec: refused before anything was written.
            RevertError::Usage(_) => Outcome::Usage,
            // The cluster did not make the target ready: the revert stopped
            // with traffic still on the primary.
            RevertError::NotReady(_) => Outcome::Cluster,
            RevertError::Cluster(e) => e.into(),
            RevertError::Act(e) => e.into(),
        }
    }
}

#[cfg(feature = "demo")]
impl From<&DemoError> for Outcome {
    fn from(e: &DemoError) -> Self {
        match e {
            DemoError::Spec(_) => Outcome::Usage,
            // The demo brings its own cluster and canary: whatever else
            // fails, the cluster did not do what the story needs.
            DemoError::Start(_)
            | DemoError::File { .. }
            | DemoError::Cluster(_)
            | DemoError::Run(_)
            | DemoError::Unexpected(_) => Outcome::Cluster,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> Self {
        std::process::ExitCode::from(o.code())
    }
}
