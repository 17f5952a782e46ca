//! The integration test binary: every test that runs the built `canary`
//! lives in a module here, so the crate links one test executable.

mod util;

mod alerts;
mod autoscaler;
mod budget;
mod cli;
mod completion;
mod connect;
mod daemonset;
mod demo;
mod edge;
mod events;
mod examples;
mod faults;
mod generated;
mod hostile;
mod incluster;
mod istio;
mod malformed;
mod manifests;
mod operate;
mod output;
mod plan;
mod preflight;
mod providers;
mod providers_splunk;
mod rbac;
mod revert;
mod routers;
mod routers_gloo;
mod routers_knative;
mod routers_rta;
mod routers_rtb;
mod routers_skipper;
mod run;
mod secrets;
mod soak;
mod status;
mod support;
