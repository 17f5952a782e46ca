//! `canary`: Flagger-style progressive delivery driven from outside the cluster.
//!
//! The binary in `main.rs` is a thin shell over this library so that tests and
//! generators (completions, man pages) reach the same definitions.

pub mod cli;
mod clock;
pub mod cluster;
pub mod commands;
pub mod driver;
pub mod exit;
pub mod generate;
pub mod hooks;
pub mod metrics;
pub mod router;
pub mod ui;
