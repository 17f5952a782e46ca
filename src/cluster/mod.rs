//! Kubernetes client work: the objects `canary` reads, writes and (for
//! `canary revert`) deletes, the state annotation, and reaching in-cluster
//! services from outside.
//!
//! Every function here is one idempotent operation on the cluster; the
//! decisions about which to call live in `engine`, the loop in `driver/`.
//! `preflight` only reads (and asks the API server what the user may do):
//! the checks `canary run` makes before its first write.

pub(crate) mod autoscaler;
pub(crate) mod cache;
pub(crate) mod configs;
pub(crate) mod connect;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod hash;
pub(crate) mod knative;
pub(crate) mod managed;
pub(crate) mod preflight;
pub(crate) mod proxy;
pub(crate) mod retry;
pub(crate) mod services;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod workload;
