//! Metric servers: [`prometheus`] runs a rendered query against a
//! Prometheus-compatible server, reached directly or through the API
//! server's service proxy; [`provider`] runs one against the other
//! services a MetricTemplate can name ([`datadog`], [`newrelic`],
//! [`graphite`], [`dynatrace`], [`influxdb`], [`cloudwatch`] with the AWS
//! credential chain of [`aws`], [`stackdriver`], [`splunk`] over a
//! SignalFlow WebSocket); [`templates`] reads the
//! MetricTemplates a spec file does not hold. The queries themselves and
//! their rendering are in `canary_core::queries`.

pub(crate) mod aws;
pub(crate) mod cloudwatch;
pub(crate) mod datadog;
pub(crate) mod dynatrace;
pub(crate) mod externalmetrics;
pub(crate) mod graphite;
pub(crate) mod influxdb;
pub(crate) mod keptn;
pub(crate) mod newrelic;
pub(crate) mod prometheus;
pub(crate) mod provider;
pub(crate) mod splunk;
pub(crate) mod stackdriver;
pub(crate) mod templates;
