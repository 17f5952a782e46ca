//! The MetricTemplate providers other than Prometheus, queried as
//! Flagger's `pkg/metrics/providers` queries them: [`super::datadog`],
//! [`super::newrelic`], [`super::graphite`], [`super::dynatrace`],
//! [`super::influxdb`], [`super::cloudwatch`], [`super::stackdriver`] and
//! [`super::splunk`]. Each builds its request from the template's
//! `provider` (address, credentials from its `secretRef` Secret, by
//! Flagger's keys), the metric's `interval` and the clock, and reads its
//! service's answer; this module sends the request through the
//! [`HttpEdge`], as Prometheus queries go.
//!
//! Common to all, as in Flagger: an answer without a value is "no values
//! found"; a status the service answers for a refusal is an error quoting
//! the body. Where Flagger would take one of several series (the first,
//! or the last) the answer is an error naming how many there were, as
//! for Prometheus ([`super::prometheus`]): a check needs exactly one
//! value. A `null` or `NaN` value is "no values found" (Flagger's Go
//! decoder reads a JSON `null` as 0).

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use http::header::{HeaderName, HeaderValue};

use super::prometheus::MetricError;
use super::{
    cloudwatch, datadog, dynatrace, externalmetrics, graphite, influxdb, keptn, newrelic, splunk,
    stackdriver,
};
use crate::cluster::proxy::{
    EXCERPT_LEN, EdgeError, HttpEdge, HttpRequest, display_url_str, excerpt,
};
use canary_core::provider::MetricProvider;
use canary_core::spec::types::MetricTemplateProvider;

/// What a provider builds its request from.
pub(crate) struct Source<'a> {
    pub provider: &'a MetricTemplateProvider,
    /// The `secretRef` Secret's data; `None` when the template has none.
    pub credentials: Option<&'a BTreeMap<String, Vec<u8>>>,
    /// The metric's `interval`.
    pub interval: Duration,
    /// Now, in Unix milliseconds.
    pub now_ms: i64,
}

impl Source<'_> {
    /// The template's `address`, when set.
    pub(crate) fn address(&self) -> Option<&str> {
        self.provider.address.as_deref().filter(|a| !a.is_empty())
    }

    /// The Secret's value under `key`, as stored (Flagger does not trim
    /// it); the error words it as Flagger does.
    pub(crate) fn key(&self, provider: &str, key: &str) -> Result<String, MetricError> {
        self.credentials
            .and_then(|c| c.get(key))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| {
                MetricError::Query(format!("{provider} credentials does not contain {key}"))
            })
    }
}

/// A request to a metric service.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: String,
    /// Name, value, and whether the value is a credential.
    pub headers: Vec<(&'static str, String, bool)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Outgoing {
    pub(crate) fn get(url: String) -> Outgoing {
        Outgoing {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            timeout: super::prometheus::DEFAULT_TIMEOUT,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: String, secret: bool) -> Outgoing {
        self.headers.push((name, value, secret));
        self
    }
}

/// Go's `url.Values.Encode`: keys sorted, keys and values query-escaped.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    sorted
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                super::prometheus::query_escape(k),
                super::prometheus::query_escape(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The request `kind` sends for `query`.
pub(crate) fn request(
    kind: MetricProvider,
    src: &Source,
    query: &str,
) -> Result<Outgoing, MetricError> {
    match kind {
        MetricProvider::Datadog => datadog::request(src, query),
        MetricProvider::Newrelic => newrelic::request(src, query),
        MetricProvider::Graphite => graphite::request(src, query),
        MetricProvider::Dynatrace => dynatrace::request(src, query),
        MetricProvider::Influxdb => influxdb::request(src, query),
        other => Err(MetricError::Query(format!(
            "metric provider `{other}` is not queried by this version"
        ))),
    }
}

/// The value in `kind`'s answer.
pub(crate) fn parse(kind: MetricProvider, body: &str) -> Result<f64, MetricError> {
    let v = match kind {
        MetricProvider::Datadog => datadog::parse(body),
        MetricProvider::Newrelic => newrelic::parse(body),
        MetricProvider::Graphite => graphite::parse(body),
        MetricProvider::Dynatrace => dynatrace::parse(body),
        MetricProvider::Influxdb => influxdb::parse(body),
        MetricProvider::Cloudwatch => cloudwatch::parse(body),
        MetricProvider::Stackdriver => stackdriver::parse(body),
        other => Err(MetricError::Query(format!(
            "metric provider `{other}` is not queried by this version"
        ))),
    }?;
    if v.is_nan() {
        return Err(MetricError::NoValues);
    }
    Ok(v)
}

/// Runs `query` on `kind`'s service and returns its value.
pub(crate) async fn query(
    edge: &HttpEdge,
    kind: MetricProvider,
    src: &Source<'_>,
    query: &str,
) -> Result<f64, MetricError> {
    if kind == MetricProvider::Splunk {
        // Flagger checks the API answers (`IsOnline`) before each query,
        // which streams over a WebSocket rather than one request.
        send(edge, src, splunk::online_request(src)?).await?;
        return splunk::run(edge, src, query).await;
    }
    // Signed or authorised requests look their credentials up first.
    let out = match kind {
        MetricProvider::Cloudwatch => cloudwatch::request(edge, src, query).await?,
        MetricProvider::Stackdriver => stackdriver::request(src, query).await?,
        _ => request(kind, src, query)?,
    };
    let body = send(edge, src, out).await?;
    parse(kind, &body)
}

/// Sends `out` and returns the body of a successful answer.
async fn send(edge: &HttpEdge, src: &Source<'_>, out: Outgoing) -> Result<String, MetricError> {
    let mut req = HttpRequest::new(out.method.clone(), &out.url, out.timeout);
    req.insecure_skip_verify = src.provider.insecure_skip_verify.unwrap_or(false);
    for (name, value, secret) in &out.headers {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            MetricError::Query(format!(
                "the value of header {name} contains characters not allowed in an HTTP header \
                 (a trailing newline in the Secret?)"
            ))
        })?;
        v.set_sensitive(*secret);
        req.headers.append(HeaderName::from_static(name), v);
    }
    req.body = out.body.clone();
    let reply = edge.send(req).await?;
    if !(200..300).contains(&reply.status) {
        return Err(EdgeError::Status {
            target: display_url_str(&out.url),
            status: reply.status,
            excerpt: excerpt(&reply.body, EXCERPT_LEN),
        }
        .into());
    }
    Ok(reply.body)
}

/// Whether `kind` is read through the Kubernetes API (objects or an
/// aggregated API of the cluster) rather than a service's own HTTP API.
pub(crate) fn through_cluster(kind: MetricProvider) -> bool {
    matches!(
        kind,
        MetricProvider::Keptn | MetricProvider::ExternalMetrics
    )
}

/// Runs `query` on a provider read through the Kubernetes API
/// ([`through_cluster`]) and returns its value.
pub(crate) async fn query_cluster(
    client: &kube::Client,
    edge: &HttpEdge,
    kind: MetricProvider,
    src: &Source<'_>,
    query: &str,
) -> Result<f64, MetricError> {
    let v = match kind {
        MetricProvider::Keptn => keptn::query(client, query).await,
        MetricProvider::ExternalMetrics => {
            let q = externalmetrics::parse_query(query)?;
            match externalmetrics::request(src, &q) {
                Some(out) => externalmetrics::parse(&send(edge, src, out).await?),
                None => externalmetrics::query(client, &q).await,
            }
        }
        other => Err(MetricError::Query(format!(
            "metric provider `{other}` is not queried by this version"
        ))),
    }?;
    if v.is_nan() {
        return Err(MetricError::NoValues);
    }
    Ok(v)
}

/// The error of an answer that is not the service's JSON.
pub(crate) fn undecodable(e: impl std::fmt::Display, body: &str) -> MetricError {
    MetricError::Query(format!(
        "error unmarshaling result: {e}, '{}'",
        excerpt(body, EXCERPT_LEN)
    ))
}

/// The error of an answer with `n` series where one is wanted.
pub(crate) fn several(n: usize, what: &str) -> MetricError {
    MetricError::Query(format!(
        "the query returned {n} {what}; a check needs exactly one value: aggregate the query"
    ))
}
