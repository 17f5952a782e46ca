//! Metric servers: [`prometheus`] runs a rendered query against a
//! Prometheus-compatible server, reached directly or through the API
//! server's service proxy; [`templates`] reads the MetricTemplates a spec
//! file does not hold. The queries themselves and their rendering are in
//! `canary_core::queries`.

pub(crate) mod prometheus;
pub(crate) mod templates;
