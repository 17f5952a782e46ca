//! The simulated cluster seen from outside: the real `kube` client and
//! `kubectl` against its API server, its PromQL answers beside a real
//! Prometheus, and whole worlds started from scenarios. One test binary.

mod api;
mod kubectl;
mod promql;
mod world;
