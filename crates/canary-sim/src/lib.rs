//! The simulated cluster used by `canary demo` and the tests.
//!
//! No real Kubernetes runs where `canary` is built and tested, so the
//! project carries its own: a Kubernetes API subset served over real HTTP
//! (reached through a generated kubeconfig by the real `kube` client and by
//! `kubectl`), controllers that move Deployments like the real ones, a
//! traffic model that turns router weights into Linkerd/Istio/NGINX series,
//! a PromQL evaluator over those series, and a flagger-loadtester compatible
//! webhook receiver. It is meant to be at least as strict as a real API
//! server wherever the tool touches it.
//!
//! Layout:
//! - `kinds`: the served resource kinds (discovery data);
//! - `store`: objects, resourceVersions, watch history;
//! - `patch`: merge, JSON and strategic-merge patches, server-side apply;
//! - `api`: the HTTP API (axum), `Status` errors, the service proxy, the
//!   request log and API fault injection (switched in the process, or from
//!   outside it through `/canary-sim/faults`);
//! - `openapi`: the OpenAPI v2 and v3 documents of the served kinds (for
//!   `kubectl explain`, `apply`'s server-side validation and `diff`);
//! - `protobuf`: request bodies in the Kubernetes protobuf encoding, as
//!   kubectl's typed clients send them;
//! - `rbac`: request attributes, RBAC rules and the 403 of a refusal;
//! - `kubeconfig`: the generated kubeconfig (and, in `server`, the
//!   service-account files a Pod gets instead);
//! - `podnet`: the Pod network, reaching Services directly as from inside
//!   a Pod, as an HTTP forward proxy;
//! - `kubectl`: the real kubectl pointed at a simulated cluster, for tests;
//! - `series`: time series samples recorded from the traffic model;
//! - `promql`: the PromQL evaluator and Prometheus' HTTP query API;
//! - `exposition`: the Prometheus text format at `/metrics`.
//! - `scenario`: the YAML that seeds a world (and the demo's `seed.yaml`);
//! - `controller`: Deployments and DaemonSets roll out, pods turn Ready;
//! - `traffic`: requests through the routers to pods, recorded as series;
//! - `loadtester`: a flagger-loadtester behind the service proxy;
//! - `providers`: the metric services a MetricTemplate names besides
//!   Prometheus (Datadog, New Relic, Graphite, Dynatrace, InfluxDB),
//!   answering from the same series;
//! - `alerts`: chat services' incoming webhooks (Slack, Teams, Discord,
//!   Rocket.Chat, Google Chat), strict about what they accept;
//! - `world`: all of it started from a scenario.
//!
//! It depends on `canary-core` (the spec reader, for scenario files) and
//! never on the `canary` binary.

// Public: the modules the binary, the tests and the benches name. The
// others stay private, so that rustc reports what no one uses.
pub mod alerts;
mod api;
mod controller;
pub mod exposition;
mod kinds;
mod knative;
mod kubeconfig;
pub mod kubectl;
mod loadtester;
mod openapi;
mod patch;
mod podnet;
pub mod promql;
pub mod protobuf;
pub mod providers;
pub mod rbac;
pub mod scenario;
pub mod series;
pub mod server;
pub mod store;
mod traffic;
pub mod world;

/// A request a test sends through the cluster's routing
/// ([`world::World::request`]), and its answer.
pub use traffic::{Request, Response, Target};
