//! The queries a canary analysis runs and how they are rendered.
//!
//! Flagger checks a canary with two kinds of metric:
//!
//! * the built-ins `request-success-rate` and `request-duration`, whose
//!   Prometheus queries depend on the mesh or ingress named by
//!   `spec.provider` (or Flagger's `--mesh-provider`); [`builtin`] holds
//!   those queries per provider together with the units and comparison
//!   rules Flagger applies to their results;
//! * custom metrics, from an inline `query` or a `MetricTemplate`'s
//!   `spec.query`, run against the metric provider the template names
//!   (Prometheus, Datadog, CloudWatch, ...).
//!
//! Both kinds are Go `text/template` strings that Flagger fills in from the
//! canary (name, namespace, target, interval, `templateVariables`, ...);
//! [`template`] renders the subset of that language Flagger's templates use.
//! [`traffic`] holds the queries of the live view's per-version traffic.

pub mod builtin;
pub mod template;
pub mod traffic;
