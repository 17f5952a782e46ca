//! The pure core of `canary`: everything that decides, and nothing that
//! does I/O.
//!
//! - [`spec`]: Flagger's `flagger.app/v1beta1` documents read with spans,
//!   diagnostics, validation, and Flagger's defaults applied;
//! - [`queries`]: Flagger's built-in metric queries per provider, the Go
//!   template subset their queries use, and the traffic view's queries;
//! - [`engine`]: the schedule of a rollout, the decision of each round,
//!   the state document and the plan;
//! - [`provider`]: traffic and metric providers, parsed once, and the one
//!   table of what each can do; [`support`] checks a spec against it;
//! - [`names`]: the objects a rollout creates, named as Flagger names them;
//! - [`preflight`]: what a rollout needs from the cluster (ports, Secret
//!   keys, permissions), decided from objects the binary has read;
//! - [`event`]: the events of a run, as every output renders them;
//! - [`time`]: time as a value passed in; the core never reads the clock;
//! - [`redact`]: credentials masked in every text shown or stored.
//!
//! No tokio, kube, k8s-openapi, reqwest, hyper or axum here: the binary
//! and the simulated cluster build on this crate, never the other way.

pub mod alerts;
pub mod engine;
pub mod event;
pub mod names;
pub mod preflight;
pub mod provider;
pub mod queries;
pub mod redact;
pub mod spec;
pub mod suggest;
pub mod support;
pub mod time;
