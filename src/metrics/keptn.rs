//! Keptn, as Flagger's `keptn.go` reads it: the query names a cluster
//! object of `metrics.keptn.sh/v1beta1`, read through the Kubernetes API
//! with the connection's credentials (no `address`, no `secretRef`):
//!
//! - `keptnmetric/<namespace>/<name>` (or `keptnmetrics/...`): the
//!   KeptnMetric's `status.value`, a number as text;
//! - `analysis/<namespace>/<analysisDefinition>[/<timeframe>[/<args>]]`
//!   (or `analyses/...`): an Analysis named `<analysisDefinition>-` and six
//!   random characters is created with `spec.timeframe.recent` the
//!   timeframe (default `1m`) and `spec.args` the `key=value` pairs of
//!   `<args>` separated by `;`; it is read every second until its
//!   `status.state` is `Completed` (value 1 when `status.pass`, else 0),
//!   for at most 10 s, and deleted afterwards whatever the outcome.
//!
//! As in Flagger, the query is lower-cased and trimmed before it is read,
//! so object names and argument values are read lower-case. Unlike
//! Flagger, a KeptnMetric without a value (no `status.value`, or an empty
//! one, which Keptn writes when its query failed) is "no values found",
//! with Keptn's `status.errMsg` when it has one.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::prometheus::MetricError;
use canary_core::preflight::MetricObject;

const GROUP: &str = "metrics.keptn.sh";
const VERSION: &str = "v1beta1";
/// How long Flagger waits for an Analysis to complete.
pub(crate) const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often it reads the Analysis meanwhile.
const POLL: Duration = Duration::from_secs(1);

const FORMAT: &str = "unexpected query format. query must be in the format \
<keptnmetric|analysis>/<namespace>/<resourceName>/<duration>/<arguments>";

/// What a Keptn query names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeptnQuery {
    Metric {
        namespace: String,
        name: String,
    },
    Analysis {
        namespace: String,
        definition: String,
        timeframe: String,
        args: BTreeMap<String, String>,
    },
}

/// Reads a query as Flagger's `parseQuery` does.
pub(crate) fn parse_query(query: &str) -> Result<KeptnQuery, MetricError> {
    let lower = query.to_lowercase();
    let clean = lower.strip_suffix('\n').unwrap_or(&lower).trim();
    let split: Vec<&str> = clean.split('/').collect();
    if split.len() < 3 {
        return Err(MetricError::Query(FORMAT.to_string()));
    }
    let (namespace, name) = (split[1].to_string(), split[2].to_string());
    match split[0] {
        "keptnmetric" | "keptnmetrics" => Ok(KeptnQuery::Metric { namespace, name }),
        "analysis" | "analyses" => {
            let timeframe = split.get(3).unwrap_or(&"1m").to_string();
            let mut args = BTreeMap::new();
            if let Some(list) = split.get(4) {
                for pair in list.split(';') {
                    let kv: Vec<&str> = pair.split('=').collect();
                    if let [k, v] = kv.as_slice() {
                        args.insert(k.to_string(), v.to_string());
                    }
                }
            }
            Ok(KeptnQuery::Analysis {
                namespace,
                definition: name,
                timeframe,
                args,
            })
        }
        _ => Err(MetricError::Query(
            "unexpected resource kind provided in the query. must be one of: \
             ['keptnmetric', 'analysis']"
                .to_string(),
        )),
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// A Kubernetes API error as Go's client words it: the Status message.
fn words(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// The value of a KeptnMetric object.
pub(crate) fn metric_value(obj: &Value, namespace: &str, name: &str) -> Result<f64, MetricError> {
    let status = &obj["status"];
    match status["value"].as_str() {
        Some(v) if !v.is_empty() => v.parse::<f64>().map_err(|e| {
            MetricError::Query(format!(
                "could not parse value of KeptnMetric {namespace}/{name} to float: {e}"
            ))
        }),
        _ => Err(MetricError::NoValues),
    }
}

/// The Analysis object Flagger creates for `q`.
pub(crate) fn analysis_object(
    namespace: &str,
    definition: &str,
    timeframe: &str,
    args: &BTreeMap<String, String>,
    suffix: &str,
) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Analysis",
        "metadata": {"name": format!("{definition}-{suffix}"), "namespace": namespace},
        "spec": {
            "analysisDefinition": {"name": definition},
            "timeframe": {"recent": timeframe},
            "args": args,
        },
    })
}

/// The outcome of a completed Analysis: `Some(1.0)` passed, `Some(0.0)`
/// failed, `None` not completed yet.
pub(crate) fn analysis_outcome(obj: &Value) -> Option<f64> {
    let status = &obj["status"];
    if status["state"].as_str() != Some("Completed") {
        return None;
    }
    status["pass"].as_bool().map(|p| if p { 1.0 } else { 0.0 })
}

/// Six lower-case hexadecimal characters, as the start of a random UUID.
fn suffix() -> String {
    (0..6)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Runs `query` against the cluster's Keptn resources.
pub(crate) async fn query(client: &kube::Client, query: &str) -> Result<f64, MetricError> {
    match parse_query(query)? {
        KeptnQuery::Metric { namespace, name } => {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &namespace,
                &resource("KeptnMetric", "keptnmetrics"),
            );
            let obj = api.get(&name).await.map_err(|e| {
                MetricError::Query(format!(
                    "could not retrieve KeptnMetric {namespace}/{name}: {}",
                    words(&e)
                ))
            })?;
            let v = serde_json::to_value(&obj).unwrap_or_default();
            match metric_value(&v, &namespace, &name) {
                Err(MetricError::NoValues) => match v["status"]["errMsg"].as_str() {
                    Some(why) if !why.is_empty() => Err(MetricError::Query(format!(
                        "no values found: KeptnMetric {namespace}/{name}: {why}"
                    ))),
                    _ => Err(MetricError::NoValues),
                },
                other => other,
            }
        }
        KeptnQuery::Analysis {
            namespace,
            definition,
            timeframe,
            args,
        } => {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &namespace,
                &resource("Analysis", "analyses"),
            );
            run_analysis(&api, &namespace, &definition, &timeframe, &args).await
        }
    }
}

async fn run_analysis(
    api: &Api<DynamicObject>,
    namespace: &str,
    definition: &str,
    timeframe: &str,
    args: &BTreeMap<String, String>,
) -> Result<f64, MetricError> {
    let object = analysis_object(namespace, definition, timeframe, args, &suffix());
    let object: DynamicObject = serde_json::from_value(object)
        .map_err(|e| MetricError::Query(format!("could not build the Analysis: {e}")))?;
    let created = tokio::time::timeout(
        ANALYSIS_TIMEOUT,
        api.create(&PostParams::default(), &object),
    )
    .await
    .map_err(|_| "timed out".to_string())
    .and_then(|r| r.map_err(|e| words(&e)))
    .map_err(|e| {
        MetricError::Query(format!(
            "could not create Keptn Analysis {namespace}/{definition}: {e}"
        ))
    })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let outcome = poll(api, &name, namespace, definition).await;
    // Deleted whatever the outcome, as Flagger does on leaving.
    let _ = api.delete(&name, &DeleteParams::default()).await;
    outcome
}

async fn poll(
    api: &Api<DynamicObject>,
    name: &str,
    namespace: &str,
    definition: &str,
) -> Result<f64, MetricError> {
    let deadline = tokio::time::Instant::now() + ANALYSIS_TIMEOUT;
    loop {
        let next = tokio::time::Instant::now() + POLL;
        if next > deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(MetricError::Query(format!(
                "encountered timeout while waiting for Keptn Analysis {namespace}/{definition} \
                 to be finished"
            )));
        }
        tokio::time::sleep_until(next).await;
        let got = tokio::time::timeout_at(deadline, api.get(name))
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| words(&e)))
            .map_err(|e| {
                MetricError::Query(format!(
                    "could not check status of created Keptn Analysis {namespace}/{definition}: {e}"
                ))
            })?;
        let v = serde_json::to_value(&got).unwrap_or_default();
        if let Some(outcome) = analysis_outcome(&v) {
            return Ok(outcome);
        }
    }
}

/// The permissions `query` (rendered) needs: `get` on the KeptnMetric it
/// names, or `create`, `get` and `delete` on Analyses of its namespace
/// (the Analysis' name is random). None for a query that cannot be read:
/// its checks say why.
pub(crate) fn permissions(query: &str, metric: &str) -> Vec<MetricObject> {
    let why = format!("to query metric {metric} (Keptn)");
    match parse_query(query) {
        Ok(KeptnQuery::Metric { namespace, name }) => vec![MetricObject {
            namespace,
            group: GROUP,
            resource: "keptnmetrics".to_string(),
            verb: "get",
            name: Some(name),
            why,
        }],
        Ok(KeptnQuery::Analysis { namespace, .. }) => ["create", "get", "delete"]
            .into_iter()
            .map(|verb| MetricObject {
                namespace: namespace.clone(),
                group: GROUP,
                resource: "analyses".to_string(),
                verb,
                name: None,
                why: why.clone(),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_as_flagger_reads_it() {
        assert_eq!(
            parse_query("keptnmetric/default/my-metric").unwrap(),
            KeptnQuery::Metric {
                namespace: "default".into(),
                name: "my-metric".into()
            }
        );
        assert_eq!(
            parse_query("  KeptnMetrics/Prod/Latency\n").unwrap(),
            KeptnQuery::Metric {
                namespace: "prod".into(),
                name: "latency".into()
            }
        );
        assert_eq!(
            parse_query("analysis/default/my-analysis/5m/foo=bar;bar=foo").unwrap(),
            KeptnQuery::Analysis {
                namespace: "default".into(),
                definition: "my-analysis".into(),
                timeframe: "5m".into(),
                args: BTreeMap::from([("bar".into(), "foo".into()), ("foo".into(), "bar".into())]),
            }
        );
        let KeptnQuery::Analysis {
            timeframe, args, ..
        } = parse_query("analysis/default/my-analysis").unwrap()
        else {
            panic!("an analysis");
        };
        assert_eq!((timeframe.as_str(), args.len()), ("1m", 0));
        // A pair without exactly one `=` is left out.
        let KeptnQuery::Analysis { args, .. } =
            parse_query("analyses/default/a/1m/x=1;y;z=2=3").unwrap()
        else {
            panic!("an analysis");
        };
        assert_eq!(args, BTreeMap::from([("x".into(), "1".into())]));
    }

    #[test]
    fn a_query_of_another_shape_is_refused_with_flaggers_words() {
        assert!(
            parse_query("invalid/default")
                .unwrap_err()
                .to_string()
                .starts_with("unexpected query format")
        );
        assert!(
            parse_query("invalid/default/my-metric")
                .unwrap_err()
                .to_string()
                .starts_with("unexpected resource kind provided in the query")
        );
    }

    #[test]
    fn a_metric_value_is_its_status_text() {
        let m = |status: Value| json!({ "status": status });
        assert_eq!(
            metric_value(&m(json!({"value": "3.0"})), "default", "my-metric").unwrap(),
            3.0
        );
        assert_eq!(
            metric_value(&m(json!({"value": "invalid"})), "default", "my-metric")
                .unwrap_err()
                .to_string(),
            "could not parse value of KeptnMetric default/my-metric to float: invalid float literal"
        );
        for none in [json!({}), json!({"value": ""}), Value::Null] {
            assert!(matches!(
                metric_value(&m(none), "default", "my-metric"),
                Err(MetricError::NoValues)
            ));
        }
    }

    #[test]
    fn the_analysis_is_flaggers_and_only_a_completed_one_counts() {
        let args = BTreeMap::from([("foo".to_string(), "bar".to_string())]);
        let a = analysis_object("default", "my-analysis", "5m", &args, "1a2b3c");
        assert_eq!(a["metadata"]["name"], "my-analysis-1a2b3c");
        assert_eq!(
            a["spec"],
            json!({"analysisDefinition": {"name": "my-analysis"},
                "args": {"foo": "bar"}, "timeframe": {"recent": "5m"}})
        );
        let s = |status: Value| json!({ "status": status });
        assert_eq!(
            analysis_outcome(&s(json!({"state": "Completed", "pass": true}))),
            Some(1.0)
        );
        assert_eq!(
            analysis_outcome(&s(json!({"state": "Completed", "pass": false}))),
            Some(0.0)
        );
        assert_eq!(
            analysis_outcome(&s(json!({"state": "Progressing", "pass": true}))),
            None
        );
        assert_eq!(analysis_outcome(&s(json!({"state": "Completed"}))), None);
        assert_eq!(suffix().len(), 6);
    }

    #[test]
    fn a_metric_needs_get_and_an_analysis_create_get_delete() {
        let p = permissions("keptnmetric/prod/latency", "latency");
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].resource.as_str(), p[0].verb, p[0].name.as_deref()),
            ("keptnmetrics", "get", Some("latency"))
        );
        let p = permissions("analysis/prod/check/1m", "latency");
        let verbs: Vec<&str> = p.iter().map(|o| o.verb).collect();
        assert_eq!(verbs, ["create", "get", "delete"]);
        assert!(
            p.iter()
                .all(|o| o.resource == "analyses" && o.name.is_none())
        );
        assert!(permissions("nonsense", "latency").is_empty());
    }
}
