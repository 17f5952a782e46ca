//! `canary`: Flagger-style progressive delivery driven from outside the cluster.
//!
//! The binary in `main.rs` is a thin shell over this library so that tests and
//! generators (completions, man pages) reach the same definitions.

pub mod act;
pub mod app;
pub mod cli;
pub mod cluster;
#[cfg(feature = "demo")]
pub mod demo;

pub mod exit;
pub mod generate;
pub mod hooks;
pub mod metrics;
pub mod router;
pub mod run;

pub mod status;
pub mod ui;
