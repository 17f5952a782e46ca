//! Kubernetes client work: the objects `canary` reads and writes, the state
//! annotation, and reaching in-cluster services from outside.
//!
//! Every function here is one idempotent operation on the cluster; the
//! decisions about which to call live in `engine`, the loop in `driver/`.

pub mod autoscaler;
pub mod configs;
pub mod connect;
pub mod error;
pub mod proxy;
pub mod services;
pub mod state;
pub mod status;
pub mod workload;
