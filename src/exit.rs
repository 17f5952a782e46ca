//! Exit codes: one enum, mapped to numbers in one place.
//!
//! A CI pipeline branches on these, so they are part of the interface and
//! documented in the README and the man page (`EXIT STATUS`).

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Promoted, valid, or nothing to do.
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
        }
    }

    /// Every outcome with its meaning, for the README and the man page.
    pub const TABLE: &'static [(Outcome, &'static str)] = &[
        (Outcome::Success, "promoted, or nothing to do"),
        (
            Outcome::RolledBack,
            "the canary failed its analysis and was rolled back",
        ),
        (
            Outcome::Usage,
            "usage or spec error; nothing was changed in the cluster",
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
    ];
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> Self {
        std::process::ExitCode::from(o.code())
    }
}

/// The exit status table as plain text, for `--help` and the man page.
pub fn table_text() -> String {
    Outcome::TABLE
        .iter()
        .map(|(o, what)| format!("  {:<4}{what}\n", o.code()))
        .collect()
}
