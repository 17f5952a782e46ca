//! MetricTemplate providers other than Prometheus, end to end: the built
//! binary against the simulated cluster, whose Datadog, New Relic,
//! Graphite, Dynatrace and InfluxDB APIs check the credentials and the
//! request as the real services do and answer from the traffic series.
//! For each: a healthy release is promoted and a faulty one rolled back
//! through the template alone (no built-in metric), the credentials read
//! from the template's Secret in the cluster and never shown.

use std::collections::BTreeMap;

use canary_sim::providers::Kind;
use canary_sim::scenario::Scenario;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use crate::run::{Cluster, assert_exit};
use crate::util::{stderr, stdout};

/// The canary's mean latency in milliseconds over the last 3 s, as the
/// simulated services answer the templates' queries. (A mean latency, not
/// a success rate: Datadog's value is the oldest point of its window, made
/// of the canary's first few requests, which at the faulty release's 60%
/// success rate may all have succeeded; every one of them is slow.)
pub(crate) const LATENCY: &str = "sum(rate(response_latency_ms_sum{namespace=\"prod\",deployment=\"podinfo\",\
direction=\"inbound\"}[3s])) / \
sum(rate(response_latency_ms_count{namespace=\"prod\",deployment=\"podinfo\",direction=\"inbound\"}[3s]))";

/// The seed's podinfo canary, checked only by the MetricTemplate
/// `latency` (with the given provider section and query). The threshold
/// leaves room for the checks made before the canary's first requests
/// are counted (no values), as a real service would also answer.
pub(crate) fn spec(provider: &str, query: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: linkerd
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 50
    threshold: 6
    metrics:
      - name: latency
        templateRef:
          name: latency
        thresholdRange:
          max: 500
        interval: 1s
    webhooks:
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.prod/
        metadata:
          cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: prod
spec:
  provider:
{provider}    secretRef:
      name: metrics-credentials
  query: |
    {query}
"
    )
}

/// What a provider's test needs: the template's provider section (given
/// the service's address), its query as written and as rendered.
pub(crate) struct Case {
    kind: Kind,
    provider: fn(&str) -> String,
    query: &'static str,
    pub(crate) rendered: &'static str,
}

pub(crate) fn case(kind: Kind) -> Case {
    match kind {
        Kind::Datadog => Case {
            kind,
            provider: |a| format!("    type: datadog\n    address: {a}\n"),
            query: "avg:linkerd.response.latency{kube_deployment:{{ target }},kube_namespace:{{ namespace }}}",
            rendered: "avg:linkerd.response.latency{kube_deployment:podinfo,kube_namespace:prod}",
        },
        Kind::Newrelic => Case {
            kind,
            provider: |a| format!("    type: newrelic\n    address: {a}\n"),
            query: "SELECT average(duration) * 1000 FROM Transaction WHERE appName = '{{ target }}'",
            rendered: "SELECT average(duration) * 1000 FROM Transaction WHERE appName = 'podinfo'",
        },
        Kind::Graphite => Case {
            kind,
            provider: |a| format!("    type: graphite\n    address: {a}\n"),
            query: "target=averageSeries(stats.timers.{{ namespace }}.{{ target }}.mean)&from=-{{ interval }}",
            rendered: "averageSeries(stats.timers.prod.podinfo.mean)",
        },
        Kind::Dynatrace => Case {
            kind,
            provider: |a| format!("    type: dynatrace\n    address: {a}\n"),
            query: "builtin:service.response.time:filter(eq(\"dt.entity.service.name\",\"{{ target }}\"))",
            rendered: "builtin:service.response.time:filter(eq(\"dt.entity.service.name\",\"podinfo\"))",
        },
        Kind::Influxdb => Case {
            kind,
            provider: |a| format!("    type: influxdb\n    address: {a}\n"),
            query: "from(bucket: \"linkerd\") |> range(start: -10s) |> filter(fn: (r) => r._measurement == \"latency_ms\" and r.deployment == \"{{ target }}\") |> mean()",
            rendered: "from(bucket: \"linkerd\") |> range(start: -10s) |> filter(fn: (r) => r._measurement == \"latency_ms\" and r.deployment == \"podinfo\") |> mean()",
        },
        Kind::Cloudwatch => Case {
            kind,
            provider: |a| {
                format!("    type: cloudwatch\n    address: {a}\n    region: us-east-1\n")
            },
            query: CLOUDWATCH_QUERY,
            rendered: CLOUDWATCH_RENDERED,
        },
        Kind::Stackdriver => Case {
            kind,
            provider: |a| format!("    type: stackdriver\n    address: {a}\n"),
            query: "fetch k8s_container | metric 'linkerd.io/response_latency_ms' | filter resource.namespace_name == '{{ namespace }}' && resource.container_name == '{{ target }}' | align mean(1s) | every 1s",
            rendered: "fetch k8s_container | metric 'linkerd.io/response_latency_ms' | filter resource.namespace_name == 'prod' && resource.container_name == 'podinfo' | align mean(1s) | every 1s",
        },
        Kind::Splunk => Case {
            kind,
            provider: |a| format!("    type: splunk\n    address: {a}\n"),
            query: "data('response_latency_ms', filter=filter('deployment', '{{ target }}') and filter('namespace', '{{ namespace }}')).mean().publish()",
            rendered: "data('response_latency_ms', filter=filter('deployment', 'podinfo') and filter('namespace', 'prod')).mean().publish()",
        },
    }
}

/// A cluster whose `kind` service answers the case's query with the
/// canary's success rate, and holds its credentials in the Secret the
/// template names.
pub(crate) async fn cluster(c: &Case) -> (Cluster, BTreeMap<String, String>) {
    let scratch = Cluster::start_in(Scenario::seed(), "").await;
    let address = format!("{}/{}", scratch.world.providers_url(), c.kind.name());
    std::fs::write(&scratch.spec, spec(&(c.provider)(&address), c.query)).unwrap();
    let services = scratch.world.metric_providers();
    services.map_query(c.kind, c.rendered, LATENCY);
    let credentials = services.credentials(c.kind);
    let secrets: Api<Secret> = Api::namespaced(scratch.world.client().await.unwrap(), "prod");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "metrics-credentials", "namespace": "prod"},
        "stringData": credentials,
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    (scratch, credentials)
}

pub(crate) fn assert_never_shown(
    out: &std::process::Output,
    credentials: &BTreeMap<String, String>,
) {
    for v in credentials.values().filter(|v| v.len() > 7) {
        for (name, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
            assert!(!text.contains(v.as_str()), "`{v}` in {name}:\n{text}");
        }
    }
}

/// A release of `tag` through `kind`'s template: the run's output, and
/// the requests the service answered.
pub(crate) async fn release(
    kind: Kind,
    tag: &str,
) -> (Cluster, std::process::Output, BTreeMap<String, String>) {
    let c = case(kind);
    let (cluster, credentials) = cluster(&c).await;
    cluster.initialise().await;
    quiet(&cluster).await;
    cluster.set_image(tag);
    let out = cluster.run(&[]).await;
    assert_never_shown(&out, &credentials);
    (cluster, out, credentials)
}

/// Waits until no request to the canary's workload is left in the
/// longest window a service looks back over (Datadog's ten intervals and
/// the query's 3 s): the pods the first run scaled down served some, and
/// Datadog's value is the oldest point of the window, as in Flagger.
pub(crate) async fn quiet(c: &Cluster) {
    let services = c.world.metric_providers().clone();
    c.wait_until(
        "the canary's old requests never left the window",
        std::time::Duration::from_secs(40),
        move |_| services.recent_values(LATENCY, 14_000).is_empty(),
    )
    .await;
}

pub(crate) async fn promotes_the_healthy_and_rolls_back_the_faulty(kind: Kind) {
    let ((good, promoted, _), (bad, rolled_back, _)) =
        tokio::join!(release(kind, "3.1.1"), release(kind, "3.1.2"));
    assert_exit(&promoted, 0);
    assert!(
        stdout(&promoted).contains("promot"),
        "{}",
        stdout(&promoted)
    );
    let answered = good.world.metric_providers().requests();
    assert!(
        answered.iter().any(|r| r.kind == kind && r.status == 200),
        "{kind:?} was not asked: {answered:?}"
    );
    assert!(
        answered.iter().all(|r| r.refused.is_none()),
        "{kind:?} refused a request: {answered:?}"
    );
    assert_eq!(
        good.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );

    assert_exit(&rolled_back, 1);
    assert_eq!(
        bad.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0",
        "the primary is untouched"
    );
    // Rolled back on the values the service answered, not for want of
    // them (the first checks may come before the canary has traffic).
    let measured = regex::Regex::new(r"check failed: latency \d+(\.\d+)? \(max 500\)").unwrap();
    assert!(
        measured.is_match(&stderr(&rolled_back)),
        "{}",
        stderr(&rolled_back)
    );
    good.world.shutdown().await;
    bad.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Datadog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newrelic_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Newrelic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Graphite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynatrace_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Dynatrace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Influxdb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_the_checks_and_roll_back() {
    let c = case(Kind::Datadog);
    let (cluster, credentials) = cluster(&c).await;
    let mut wrong = credentials.clone();
    wrong.insert("datadog_application_key".into(), "not-the-key-1234".into());
    cluster
        .world
        .metric_providers()
        .set_credentials(Kind::Datadog, wrong);
    cluster.initialise().await;
    cluster.set_image("3.1.1");
    let out = cluster.run(&[]).await;
    assert_exit(&out, 1);
    assert_never_shown(&out, &credentials);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("HTTP 403"), "{text}");
    assert_eq!(
        cluster.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    cluster.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_a_key_its_provider_reads_is_refused_before_anything_is_written() {
    let c = case(Kind::Datadog);
    let (cluster, _) = cluster(&c).await;
    let secrets: Api<Secret> = Api::namespaced(cluster.world.client().await.unwrap(), "prod");
    let mut s = secrets.get("metrics-credentials").await.unwrap();
    s.data.as_mut().unwrap().remove("datadog_application_key");
    secrets
        .replace("metrics-credentials", &PostParams::default(), &s)
        .await
        .unwrap();
    cluster.world.sim().clear_request_log();
    let out = cluster.run(&[]).await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "Secret prod/metrics-credentials (secretRef of MetricTemplate prod/latency) has no \
             `datadog_application_key` key"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "metric provider `datadog` reads `datadog_api_key` and `datadog_application_key`"
        ),
        "{err}"
    );
    let writes: Vec<String> = cluster
        .world
        .sim()
        .request_log()
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "nothing is written");
    cluster.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_kept_in_the_spec_file_is_read_from_there() {
    let c = case(Kind::Newrelic);
    let cluster = Cluster::start_in(Scenario::seed(), "").await;
    let services = cluster.world.metric_providers();
    let address = format!("{}/{}", cluster.world.providers_url(), c.kind.name());
    services.map_query(c.kind, c.rendered, LATENCY);
    let credentials = services.credentials(c.kind);
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "metrics-credentials", "namespace": "prod"},
        "stringData": credentials,
    });
    let text = format!(
        "{}---\n{}",
        spec(&(c.provider)(&address), c.query),
        serde_yaml::to_string(&secret).unwrap()
    );
    std::fs::write(&cluster.spec, text).unwrap();
    cluster.initialise().await;
    quiet(&cluster).await;
    cluster.set_image("3.1.1");
    let out = cluster.run(&[]).await;
    assert_exit(&out, 0);
    assert_never_shown(&out, &credentials);
    let asked = services.requests();
    assert!(
        asked.iter().any(|r| r.status == 200) && asked.iter().all(|r| r.refused.is_none()),
        "{asked:?}"
    );
    cluster.world.shutdown().await;
}

/// Keptn's resources the keptn tests read: a Prometheus provider, a
/// KeptnMetric fetching the canary's latency every second, and an
/// AnalysisDefinition failing when that latency exceeds 500 ms.
fn keptn_objects() -> Vec<serde_json::Value> {
    use serde_json::json;
    let v = "metrics.keptn.sh/v1beta1";
    let meta = |name: &str| json!({"name": name, "namespace": "prod"});
    vec![
        json!({"apiVersion": v, "kind": "KeptnMetricsProvider", "metadata": meta("prometheus"),
            "spec": {"type": "prometheus", "targetServer": "http://prometheus.monitoring:9090"}}),
        json!({"apiVersion": v, "kind": "KeptnMetric", "metadata": meta("podinfo-latency"),
            "spec": {"provider": {"name": "prometheus"}, "query": LATENCY,
                "fetchIntervalSeconds": 1}}),
        json!({"apiVersion": v, "kind": "AnalysisValueTemplate", "metadata": meta("latency"),
            "spec": {"provider": {"name": "prometheus"},
                "query": LATENCY.replace("deployment=\"podinfo\"", "deployment=\"{{.workload}}\"")}}),
        json!({"apiVersion": v, "kind": "AnalysisDefinition", "metadata": meta("podinfo-latency"),
            "spec": {"objectives": [{"analysisValueTemplateRef": {"name": "latency"},
                "target": {"failure": {"greaterThan": {"fixedValue": "500"}}},
                "keyObjective": true}],
                "totalScore": {"passPercentage": 100, "warningPercentage": 50}}}),
    ]
}

/// A release of `tag` checked by a `keptn` template with `query`.
/// `range` replaces the template's threshold range when set.
async fn keptn_release(
    tag: &str,
    query: &str,
    range: Option<&str>,
) -> (Cluster, std::process::Output) {
    let mut scenario = Scenario::seed();
    scenario.crds = Some(vec![
        canary_sim::scenario::CrdName::Smi,
        canary_sim::scenario::CrdName::Keptn,
    ]);
    let scratch = Cluster::start_in(scenario, "").await;
    let mut text = spec("    type: keptn\n", query)
        .replace("    secretRef:\n      name: metrics-credentials\n", "");
    if let Some(r) = range {
        text = text.replace("max: 500", r);
    }
    std::fs::write(&scratch.spec, text).unwrap();
    let client = scratch.world.client().await.unwrap();
    for o in keptn_objects() {
        let (kind, plural) = match o["kind"].as_str().unwrap() {
            "KeptnMetricsProvider" => ("KeptnMetricsProvider", "keptnmetricsproviders"),
            "KeptnMetric" => ("KeptnMetric", "keptnmetrics"),
            "AnalysisValueTemplate" => ("AnalysisValueTemplate", "analysisvaluetemplates"),
            _ => ("AnalysisDefinition", "analysisdefinitions"),
        };
        let ar = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("metrics.keptn.sh", "v1beta1", kind),
            plural,
        );
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "prod", &ar);
        api.create(&PostParams::default(), &serde_json::from_value(o).unwrap())
            .await
            .unwrap();
    }
    scratch.initialise().await;
    quiet(&scratch).await;
    scratch.set_image(tag);
    let out = scratch.run(&[]).await;
    (scratch, out)
}

async fn keptn_promotes_the_healthy_and_rolls_back_the_faulty(query: &str, range: Option<&str>) {
    let ((good, promoted), (bad, rolled_back)) = tokio::join!(
        keptn_release("3.1.1", query, range),
        keptn_release("3.1.2", query, range)
    );
    assert_exit(&promoted, 0);
    assert_eq!(
        good.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_exit(&rolled_back, 1);
    assert_eq!(
        bad.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0",
        "the primary is untouched"
    );
    let measured = regex::Regex::new(r"check failed: latency \d+(\.\d+)?").unwrap();
    assert!(
        measured.is_match(&stderr(&rolled_back)),
        "{}",
        stderr(&rolled_back)
    );
    for c in [&good, &bad] {
        // Every Analysis created for a check was deleted after it.
        let analyses = c
            .world
            .store()
            .list("metrics.keptn.sh/v1beta1", "Analysis", None);
        assert!(analyses.is_empty(), "{analyses:?}");
    }
    good.world.shutdown().await;
    bad.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_metric_promotes_the_healthy_and_rolls_back_the_faulty() {
    keptn_promotes_the_healthy_and_rolls_back_the_faulty(
        "keptnmetric/{{ namespace }}/{{ target }}-latency",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_analysis_promotes_the_healthy_and_rolls_back_the_faulty() {
    // Keptn's value is 1 when the Analysis passed: the threshold is a minimum.
    keptn_promotes_the_healthy_and_rolls_back_the_faulty(
        "analysis/{{ namespace }}/{{ target }}-latency/3s/workload={{ target }}",
        Some("min: 1"),
    )
    .await;
}

/// A release of `tag` checked by an `externalmetrics` template: through
/// the cluster connection, or (`direct`) at the API server's address with
/// the token of the template's Secret.
async fn external_release(tag: &str, direct: bool) -> (Cluster, std::process::Output, String) {
    let scratch = Cluster::start_in(Scenario::seed(), "").await;
    let query = "{{ namespace }}/podinfo_latency_ms?labelSelector=app%3D{{ target }}";
    let token = scratch.world.sim().token().to_string();
    let text = if direct {
        let provider = format!(
            "    type: externalmetrics\n    address: {}\n    insecureSkipVerify: true\n",
            scratch.world.sim().https_url()
        );
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "metrics-credentials", "namespace": "prod"},
            "stringData": {"token": token},
        });
        format!(
            "{}---\n{}",
            spec(&provider, query),
            serde_yaml::to_string(&secret).unwrap()
        )
    } else {
        spec("    type: externalmetrics\n", query)
            .replace("    secretRef:\n      name: metrics-credentials\n", "")
    };
    std::fs::write(&scratch.spec, text).unwrap();
    scratch.world.metric_providers().map_external_metric(
        "prod",
        "podinfo_latency_ms",
        "app=podinfo",
        LATENCY,
    );
    scratch.initialise().await;
    quiet(&scratch).await;
    scratch.set_image(tag);
    let out = scratch.run(&[]).await;
    (scratch, out, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn externalmetrics_promotes_the_healthy_and_rolls_back_the_faulty() {
    let ((good, promoted, _), (bad, rolled_back, token)) = tokio::join!(
        external_release("3.1.1", false),
        external_release("3.1.2", true)
    );
    assert_exit(&promoted, 0);
    assert_eq!(
        good.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    let asked = |c: &Cluster| {
        c.world
            .sim()
            .request_log()
            .into_iter()
            .filter(|r| {
                r.path.starts_with(
                    "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/podinfo_latency_ms?labelSelector=app%3Dpodinfo",
                )
            })
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    let statuses = asked(&good);
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert_exit(&rolled_back, 1);
    assert_eq!(
        bad.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0",
        "the primary is untouched"
    );
    let statuses = asked(&bad);
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    let measured = regex::Regex::new(r"check failed: latency \d+(\.\d+)? \(max 500\)").unwrap();
    assert!(
        measured.is_match(&stderr(&rolled_back)),
        "{}",
        stderr(&rolled_back)
    );
    for text in [stdout(&rolled_back), stderr(&rolled_back)] {
        assert!(!text.contains(&token), "the token is shown:\n{text}");
    }
    good.world.shutdown().await;
    bad.world.shutdown().await;
}

/// Every example MetricTemplate of a simulated service, rendered for its
/// Canary as `canary run` renders it, has an entry in the tables
/// `canary demo --serve` gives the services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_the_example_templates_queries() {
    use canary_core::queries::template;
    use canary_core::spec::resolve::{MetricSource, Overrides, resolve};
    let world = canary_sim::world::World::start(Scenario::seed())
        .await
        .unwrap();
    let services = world.metric_providers();
    services.map_demo_queries();
    for kind in Kind::ALL {
        let path = crate::util::root().join(format!("examples/{}.yaml", kind.name()));
        let text = std::fs::read_to_string(&path).unwrap();
        let file = canary_core::spec::load_str(&path.display().to_string(), &text).unwrap();
        let doc = &file.canaries[0];
        let c = resolve(&file, doc, &Overrides::default());
        let m = &c.metrics[0];
        let MetricSource::Template { name, .. } = &m.source else {
            panic!("{kind:?}: the example's metric has a templateRef");
        };
        let t = file
            .metric_templates
            .iter()
            .find(|t| t.value.name() == name.as_str())
            .unwrap();
        let query = t.value.spec.as_ref().unwrap().query.clone().unwrap();
        let mut rendered = template::render(&query, &c.template_model(m)).unwrap();
        if kind == Kind::Graphite {
            // Graphite's table is keyed by the `target` parameter.
            rendered = rendered
                .trim()
                .trim_start_matches("target=")
                .split("&from=")
                .next()
                .unwrap()
                .to_string();
        }
        assert!(
            services.answers(kind, &rendered),
            "{kind:?} has no entry for {rendered}"
        );
    }
    world.shutdown().await;
}

/// A CloudWatch query as Flagger's examples write it: one metric, a
/// one-second period (CloudWatch's high resolution).
const CLOUDWATCH_QUERY: &str = "[{\"Id\": \"latency\", \"MetricStat\": {\"Metric\": {\"Namespace\": \"Linkerd\", \"MetricName\": \"response_latency_ms\", \"Dimensions\": [{\"Name\": \"deployment\", \"Value\": \"{{ target }}\"}, {\"Name\": \"namespace\", \"Value\": \"{{ namespace }}\"}]}, \"Period\": 1, \"Stat\": \"Average\"}}]";
const CLOUDWATCH_RENDERED: &str = "[{\"Id\": \"latency\", \"MetricStat\": {\"Metric\": {\"Namespace\": \"Linkerd\", \"MetricName\": \"response_latency_ms\", \"Dimensions\": [{\"Name\": \"deployment\", \"Value\": \"podinfo\"}, {\"Name\": \"namespace\", \"Value\": \"prod\"}]}, \"Period\": 1, \"Stat\": \"Average\"}}]";

/// How a CloudWatch run finds its AWS credentials.
#[derive(Clone, Copy, Debug)]
enum AwsChain {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A profile of a shared credentials file, named by `AWS_PROFILE`.
    Profile,
    /// A projected token file and a role, exchanged at the simulated STS.
    WebIdentity,
}

/// `canary run` with the AWS environment of `chain` (and nothing of the
/// caller's own), its files in `dir`.
async fn run_with_aws(
    c: &Cluster,
    chain: AwsChain,
    keys: &BTreeMap<String, String>,
    dir: &std::path::Path,
) -> std::process::Output {
    let mut cmd = crate::util::canary();
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
        .env("AWS_CONFIG_FILE", dir.join("config"));
    match chain {
        AwsChain::Environment => {
            cmd.env("AWS_ACCESS_KEY_ID", &keys["aws_access_key_id"])
                .env("AWS_SECRET_ACCESS_KEY", &keys["aws_secret_access_key"]);
        }
        AwsChain::Profile => {
            std::fs::write(
                dir.join("credentials"),
                format!(
                    "[default]\naws_access_key_id = AKIANOTTHISONE000000\n\
                     aws_secret_access_key = wrong\n\n[metrics]\naws_access_key_id = {}\n\
                     aws_secret_access_key = {}\n",
                    keys["aws_access_key_id"], keys["aws_secret_access_key"]
                ),
            )
            .unwrap();
            cmd.env("AWS_PROFILE", "metrics");
        }
        AwsChain::WebIdentity => {
            let token = dir.join("token");
            std::fs::write(&token, format!("{}\n", keys["web_identity_token"])).unwrap();
            cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
                .env("AWS_ROLE_ARN", &keys["role_arn"])
                .env(
                    "AWS_ENDPOINT_URL_STS",
                    format!("{}/cloudwatch/sts", c.world.providers_url()),
                );
        }
    }
    cmd.arg("run")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .timeout(std::time::Duration::from_secs(120));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A release of `tag` checked by a CloudWatch template, whose template
/// names no Secret (Flagger's CloudWatch reads none).
async fn cloudwatch_release(
    tag: &str,
    chain: AwsChain,
    wrong_secret: bool,
) -> (Cluster, std::process::Output) {
    let c = case(Kind::Cloudwatch);
    let cluster = Cluster::start_in(Scenario::seed(), "").await;
    let address = format!("{}/cloudwatch", cluster.world.providers_url());
    let text = spec(&(c.provider)(&address), c.query)
        .replace("    secretRef:\n      name: metrics-credentials\n", "");
    std::fs::write(&cluster.spec, text).unwrap();
    let services = cluster.world.metric_providers();
    services.map_query(Kind::Cloudwatch, c.rendered, LATENCY);
    let keys = services.credentials(Kind::Cloudwatch);
    let mut given = keys.clone();
    if wrong_secret {
        given.insert(
            "aws_secret_access_key".into(),
            "sim/not-the-secret-key-00000000000".into(),
        );
    }
    cluster.initialise().await;
    quiet(&cluster).await;
    cluster.set_image(tag);
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_aws(&cluster, chain, &given, dir.path()).await;
    let mut secrets = keys.clone();
    secrets.remove("role_arn");
    assert_never_shown(&out, &secrets);
    assert_never_shown(&out, &given);
    (cluster, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_promotes_the_healthy_and_rolls_back_the_faulty() {
    let ((good, promoted), (bad, rolled_back)) = tokio::join!(
        cloudwatch_release("3.1.1", AwsChain::Environment, false),
        cloudwatch_release("3.1.2", AwsChain::Environment, false)
    );
    assert_exit(&promoted, 0);
    let answered = good.world.metric_providers().requests();
    assert!(
        answered
            .iter()
            .any(|r| r.kind == Kind::Cloudwatch && r.status == 200),
        "CloudWatch was not asked: {answered:?}"
    );
    assert!(
        answered.iter().all(|r| r.refused.is_none()),
        "CloudWatch refused a request: {answered:?}"
    );
    assert_eq!(
        good.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_exit(&rolled_back, 1);
    assert_eq!(
        bad.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0",
        "the primary is untouched"
    );
    let measured = regex::Regex::new(r"check failed: latency \d+(\.\d+)? \(max 500\)").unwrap();
    assert!(
        measured.is_match(&stderr(&rolled_back)),
        "{}",
        stderr(&rolled_back)
    );
    good.world.shutdown().await;
    bad.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_signs_with_a_shared_profile_and_with_a_web_identity() {
    let ((profile, by_profile), (irsa, by_web_identity)) = tokio::join!(
        cloudwatch_release("3.1.1", AwsChain::Profile, false),
        cloudwatch_release("3.1.1", AwsChain::WebIdentity, false)
    );
    assert_exit(&by_profile, 0);
    assert_exit(&by_web_identity, 0);
    let asked = irsa.world.metric_providers().requests();
    assert!(
        asked
            .iter()
            .any(|r| r.path.starts_with("/sts") && r.status == 200),
        "STS was not asked: {asked:?}"
    );
    assert!(asked.iter().all(|r| r.refused.is_none()), "{asked:?}");
    // Signed with the temporary credentials STS issued, which CloudWatch
    // keeps under their access key.
    let issued = irsa.world.metric_providers().credentials(Kind::Cloudwatch);
    assert!(
        issued.keys().any(|k| k.starts_with("issued:ASIA")),
        "{:?}",
        issued.keys()
    );
    for v in issued.values() {
        assert!(!stdout(&by_web_identity).contains(v.split(' ').next().unwrap()));
    }
    assert_eq!(
        irsa.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_eq!(
        profile.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    profile.world.shutdown().await;
    irsa.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_refuses_a_wrong_secret_key_and_the_release_rolls_back() {
    let (cluster, out) = cloudwatch_release("3.1.1", AwsChain::Environment, true).await;
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("InvalidSignatureException"), "{text}");
    let refused = cluster.world.metric_providers().requests();
    assert!(refused.iter().all(|r| r.status == 403), "{refused:?}");
    assert_eq!(
        cluster.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    cluster.world.shutdown().await;
}

/// How a Stackdriver run finds its Google credentials.
#[derive(Clone, Copy, Debug)]
enum GoogleCredentials {
    /// The Secret's `serviceAccountKey`, as Flagger reads it.
    SecretKey,
    /// A key file named by `GOOGLE_APPLICATION_CREDENTIALS`, the Secret
    /// holding only the `project`.
    ApplicationDefault,
}

/// A release of `tag` checked by a Stackdriver template.
async fn stackdriver_release(tag: &str, how: GoogleCredentials) -> (Cluster, std::process::Output) {
    let c = case(Kind::Stackdriver);
    let cluster = Cluster::start_in(Scenario::seed(), "").await;
    let base = cluster.world.providers_url();
    let address = format!("{base}/stackdriver");
    std::fs::write(&cluster.spec, spec(&(c.provider)(&address), c.query)).unwrap();
    let services = cluster.world.metric_providers();
    services.map_query(Kind::Stackdriver, c.rendered, LATENCY);
    let key =
        canary_sim::providers::service_account_key(services, &format!("{base}/stackdriver/token"));
    let project = services.credentials(Kind::Stackdriver)["project"].clone();
    let mut data = serde_json::json!({ "project": project });
    if matches!(how, GoogleCredentials::SecretKey) {
        data["serviceAccountKey"] = key.clone().into();
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.world.client().await.unwrap(), "prod");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "metrics-credentials", "namespace": "prod"},
        "stringData": data,
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    cluster.initialise().await;
    quiet(&cluster).await;
    cluster.set_image(tag);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.json");
    let mut cmd = crate::util::canary();
    cmd.env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("HOME", dir.path())
        .env("CLOUDSDK_CONFIG", dir.path().join("gcloud"));
    if matches!(how, GoogleCredentials::ApplicationDefault) {
        std::fs::write(&key_file, &key).unwrap();
        cmd.env("GOOGLE_APPLICATION_CREDENTIALS", &key_file);
    }
    cmd.arg("run")
        .arg(&cluster.spec)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .timeout(std::time::Duration::from_secs(120));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let private: Vec<&str> = canary_sim::providers::stackdriver_private_key_lines();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for line in private {
        assert!(
            !text.contains(line),
            "a line of the private key in the output:\n{text}"
        );
    }
    let issued: BTreeMap<String, String> = services
        .credentials(Kind::Stackdriver)
        .into_iter()
        .filter(|(k, _)| k.starts_with("issued:"))
        .map(|(k, _)| (k.clone(), k.trim_start_matches("issued:").to_string()))
        .collect();
    assert_never_shown(&out, &issued);
    (cluster, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stackdriver_promotes_the_healthy_and_rolls_back_the_faulty() {
    let ((good, promoted), (bad, rolled_back)) = tokio::join!(
        stackdriver_release("3.1.1", GoogleCredentials::SecretKey),
        stackdriver_release("3.1.2", GoogleCredentials::SecretKey)
    );
    assert_exit(&promoted, 0);
    let answered = good.world.metric_providers().requests();
    assert!(
        answered
            .iter()
            .any(|r| r.path == "/token" && r.status == 200),
        "no token was asked for: {answered:?}"
    );
    assert!(
        answered
            .iter()
            .any(|r| r.path.ends_with("timeSeries:query") && r.status == 200),
        "Cloud Monitoring was not asked: {answered:?}"
    );
    assert!(answered.iter().all(|r| r.refused.is_none()), "{answered:?}");
    assert_eq!(
        good.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    assert_exit(&rolled_back, 1);
    assert_eq!(
        bad.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0",
        "the primary is untouched"
    );
    let measured = regex::Regex::new(r"check failed: latency \d+(\.\d+)? \(max 500\)").unwrap();
    assert!(
        measured.is_match(&stderr(&rolled_back)),
        "{}",
        stderr(&rolled_back)
    );
    good.world.shutdown().await;
    bad.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stackdriver_takes_application_default_credentials_without_a_key_in_the_secret() {
    let (cluster, out) = stackdriver_release("3.1.1", GoogleCredentials::ApplicationDefault).await;
    assert_exit(&out, 0);
    let answered = cluster.world.metric_providers().requests();
    assert!(
        answered
            .iter()
            .any(|r| r.path == "/token" && r.status == 200),
        "{answered:?}"
    );
    assert!(answered.iter().all(|r| r.refused.is_none()), "{answered:?}");
    cluster.world.shutdown().await;
}
