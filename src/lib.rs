//! The `canary` binary's code. `main.rs` parses the command line and
//! dispatches through [`run`]; the integration tests and the benchmark
//! reach the few pieces they exercise directly through the public items
//! below. Every module is private, so the compiler reports anything the
//! product itself does not use.

#![warn(unreachable_pub)]

mod alerts;
mod cli;
mod clock;
mod cluster;
mod commands;
mod complete;
mod driver;
mod events;
mod exit;
mod generate;
mod help;
mod hooks;
mod metrics;
mod router;
mod secrets;
mod ui;

pub use cli::{Cli, command_for, exit_on_error};
pub use commands::run;
/// Completion of the command line by the binary (`COMPLETE=SHELL canary`,
/// and kubectl's `kubectl_complete-canary`).
pub use complete::{KUBECTL_COMPLETER, VAR as COMPLETE_VAR, is_kubectl_completer, kubectl_plugin};
/// Completions and man pages as they are generated today, by path.
pub use generate::all as generated_files;

/// The driver, for the benchmark that measures a whole rollout in-process.
pub use cluster::connect::{ConfigSource, connect};
pub use driver::{Driver, Settings};

/// The HTTP edge: webhooks and metric servers named by in-cluster URLs,
/// reached through the API server's service proxy, or directly from inside.
pub mod edge {
    pub use crate::cluster::proxy::{EdgeError, HttpEdge, HttpRequest};
    pub use crate::hooks::Hooks;
    pub use crate::metrics::prometheus::{
        Auth, MetricError, MetricServer, auth_from_secret, query, ready,
    };
}

/// The renderers of a run's events, for snapshot tests of real runs.
pub mod render {
    pub use crate::ui::lines::Lines;
    pub use crate::ui::live::Board;
    pub use crate::ui::summary::markdown as step_summary;
    pub use crate::ui::summary::table as summary_table;
}
