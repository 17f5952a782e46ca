//! What `canary run` cannot carry out is refused by `validate`, `plan` and
//! `run` alike, with the field that asks for it, and `run` refuses it
//! before it writes anything to the cluster. The test walks the capability
//! table rather than a list of names, so a provider that becomes driven
//! (or stops being) is covered without touching it.

use std::path::Path;
use std::process::Output;

use canary_core::provider::MetricProvider;
use canary_sim::scenario::Scenario;
use canary_sim::world::World;

use crate::util::{canary, stderr, stdout};

/// A weighted canary of the seed's podinfo with `extra` under `spec:` and
/// `analysis` under `spec.analysis:`.
fn spec(extra: &str, analysis: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
{extra}  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
  ingressRef:
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    name: podinfo
  routeRef:
    apiVersion: apisix.apache.org/v2
    kind: ApisixRoute
    name: podinfo
  analysis:
    interval: 10s
    threshold: 5
{analysis}"
    )
}

const WEIGHTED: &str = "    stepWeight: 20\n";

const AB: &str = "    iterations: 10
    match:
      - headers:
          x-canary:
            exact: insider
";

pub(crate) struct Sim {
    pub(crate) world: World,
    dir: tempfile::TempDir,
}

impl Sim {
    pub(crate) async fn start() -> Sim {
        Sim::start_in(Scenario::seed()).await
    }

    async fn start_in(scenario: Scenario) -> Sim {
        let world = World::start(scenario).await.expect("world starts");
        let dir = tempfile::tempdir().unwrap();
        world
            .write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        Sim { world, dir }
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `canary ARGS...` with the world's kubeconfig for `run` and
    /// `validate --cluster`.
    pub(crate) async fn canary(&self, args: Vec<String>) -> Output {
        let kubeconfig = self.dir.path().join("kubeconfig");
        tokio::task::spawn_blocking(move || {
            let mut cmd = canary();
            cmd.args(&args);
            if args[0] == "run" || args.iter().any(|a| a == "--cluster") {
                cmd.arg("--kubeconfig").arg(&kubeconfig);
            }
            cmd.output().unwrap()
        })
        .await
        .unwrap()
    }

    /// Every request since the log was cleared that changed something.
    pub(crate) fn writes(&self) -> Vec<String> {
        self.world
            .sim()
            .request_log()
            .into_iter()
            .filter(|r| r.is_write())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// `validate FILE`, `plan FILE ARGS` and `run FILE ARGS` all exit 2 naming
/// `path` in a message containing `words`, and `run` writes nothing.
async fn refused_everywhere(sim: &Sim, file: &Path, args: &[&str], path: &str, words: &str) {
    let file = file.display().to_string();
    let with = |cmd: &str, flags: bool| {
        let mut v = vec![cmd.to_string(), file.clone()];
        if flags {
            v.extend(args.iter().map(|a| a.to_string()));
        }
        v
    };
    // `validate` has no --mesh-provider: with the provider on the command
    // line it cannot know, so it is only asked when the file names it.
    let mut commands = vec![with("plan", true), with("run", true)];
    if args.is_empty() {
        commands.insert(0, with("validate", false));
    }
    sim.world.sim().clear_request_log();
    for argv in commands {
        let out = sim.canary(argv.clone()).await;
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{argv:?}: {err}{}",
            stdout(&out)
        );
        assert!(
            err.contains(&format!("({path})")),
            "{argv:?} names {path}: {err}"
        );
        assert!(err.contains(words), "{argv:?} says {words:?}: {err}");
        assert!(err.contains("nothing was changed"), "{argv:?}: {err}");
    }
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_provider_flagger_does_not_know_is_refused_before_anything_is_written() {
    let sim = Sim::start().await;
    let analysis = format!(
        "{WEIGHTED}    metrics:
      - name: errors
        templateRef:
          name: errors
        thresholdRange:
          max: 1
"
    );
    let template = "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: errors
  namespace: prod
spec:
  provider:
    type: opentsdb
    address: https://metrics.example.com
  query: errors
---
";
    let file = sim.write(
        "template.yaml",
        &(template.to_string() + &spec("  provider: linkerd\n", &analysis)),
    );
    refused_everywhere(
        &sim,
        &file,
        &[],
        "spec.provider.type",
        "unknown metric provider `opentsdb`",
    )
    .await;
    sim.world.shutdown().await;
}

/// The weighted canary checked by MetricTemplate `errors` with the given
/// `provider:` lines.
fn with_template(provider: &str) -> String {
    let analysis = format!(
        "{WEIGHTED}    metrics:
      - name: errors
        templateRef:
          name: errors
        thresholdRange:
          max: 1
"
    );
    format!(
        "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: errors
  namespace: prod
spec:
  provider:
{provider}  query: errors
---
{}",
        spec("  provider: linkerd\n", &analysis)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queried_metric_provider_passes_validate_and_plan() {
    let sim = Sim::start().await;
    for m in MetricProvider::ALL {
        let file = sim.write(
            "queried.yaml",
            &with_template(&format!(
                "    type: {m}\n    address: https://metrics.example.com\n    secretRef:\n      name: creds\n"
            )),
        );
        for cmd in ["validate", "plan"] {
            let out = sim
                .canary(vec![cmd.into(), file.display().to_string()])
                .await;
            assert_eq!(out.status.code(), Some(0), "{cmd} {m}: {}", stderr(&out));
        }
    }
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_without_what_its_provider_needs_is_refused_before_anything_is_written() {
    let sim = Sim::start().await;
    // Flagger's Graphite, Dynatrace and InfluxDB have no default address.
    for m in ["graphite", "dynatrace", "influxdb"] {
        let file = sim.write(
            "no-address.yaml",
            &with_template(&format!("    type: {m}\n")),
        );
        refused_everywhere(
            &sim,
            &file,
            &[],
            "spec.provider.type",
            &format!("metric provider `{m}` needs `spec.provider.address`"),
        )
        .await;
    }
    // Datadog, New Relic and Dynatrace read their credentials from a Secret.
    for m in ["datadog", "newrelic", "dynatrace"] {
        let file = sim.write(
            "no-secret.yaml",
            &with_template(&format!(
                "    type: {m}\n    address: https://metrics.example.com\n"
            )),
        );
        refused_everywhere(
            &sim,
            &file,
            &[],
            "spec.provider.type",
            &format!("metric provider `{m}` needs `spec.provider.secretRef`"),
        )
        .await;
    }
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_template_in_the_cluster_is_checked_before_the_run_changes_anything() {
    use canary_sim::scenario::CrdName;
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let mut scenario = Scenario::seed();
    scenario.crds = Some(vec![CrdName::Smi, CrdName::Flagger]);
    let sim = Sim::start_in(scenario).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", "MetricTemplate"),
        "metrictemplates",
    );
    let api: Api<DynamicObject> =
        Api::namespaced_with(sim.world.client().await.unwrap(), "prod", &ar);
    let mut t = DynamicObject::new("errors", &ar).within("prod");
    t.data = serde_json::json!({"spec": {
        "provider": {"type": "opentsdb", "address": "https://metrics.example.com"},
        "query": "errors"
    }});
    api.create(&PostParams::default(), &t).await.unwrap();
    let analysis = format!(
        "{WEIGHTED}    metrics:
      - name: errors
        templateRef:
          name: errors
        thresholdRange:
          max: 1
      - name: latency
        templateRef:
          name: latency
        thresholdRange:
          max: 1
"
    );
    let file = sim.write(
        "cluster-template.yaml",
        &spec("  provider: linkerd\n", &analysis),
    );
    sim.world.sim().clear_request_log();
    let out = sim
        .canary(vec!["run".into(), file.display().to_string()])
        .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("MetricTemplate prod/errors: metric provider `opentsdb`"),
        "{err}"
    );
    assert!(
        err.contains("(spec.analysis.metrics[0].templateRef)"),
        "{err}"
    );
    assert!(
        err.contains("MetricTemplate prod/latency not found"),
        "{err}"
    );
    assert!(
        err.contains("(spec.analysis.metrics[1].templateRef)"),
        "{err}"
    );
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is written");
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_on_linkerd_is_refused_naming_match_and_changes_nothing() {
    let sim = Sim::start().await;
    // The provider on the command line, as the seed's walkthrough does.
    let file = sim.write("ab.yaml", &spec("", AB));
    refused_everywhere(
        &sim,
        &file,
        &["--mesh-provider", "linkerd"],
        "spec.analysis.match[0]",
        "A/B testing (`match`) cannot run",
    )
    .await;
    // Detected from the cluster: the seed runs Linkerd.
    sim.world.sim().clear_request_log();
    let out = sim
        .canary(vec!["run".into(), file.display().to_string()])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("provider `linkerd` (detected in the cluster) cannot route"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sim.writes(), Vec::<String>::new());
    // In the file, and on the kubernetes provider, which has no router.
    for provider in ["linkerd", "kubernetes"] {
        let file = sim.write(
            "ab-in-spec.yaml",
            &spec(&format!("  provider: {provider}\n"), AB),
        );
        refused_everywhere(&sim, &file, &[], "spec.analysis.match[0]", "cannot route").await;
    }
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_and_session_affinity_are_refused_where_they_cannot_work() {
    let sim = Sim::start().await;
    for (analysis, path, words) in [
        (
            format!("{WEIGHTED}    mirror: true\n"),
            "spec.analysis.mirror",
            "cannot mirror traffic",
        ),
        (
            format!("{WEIGHTED}    sessionAffinity:\n      cookieName: flagger-cookie\n"),
            "spec.analysis.sessionAffinity",
            "session affinity",
        ),
    ] {
        let file = sim.write("feature.yaml", &spec("  provider: linkerd\n", &analysis));
        refused_everywhere(&sim, &file, &[], path, words).await;
    }
    sim.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_canary_is_left_alone_and_the_run_says_so() {
    let sim = Sim::start().await;
    let file = sim.write(
        "suspended.yaml",
        &spec("  provider: linkerd\n  suspend: true\n", WEIGHTED),
    );
    sim.world.sim().clear_request_log();
    let out = sim
        .canary(vec![
            "run".into(),
            file.display().to_string(),
            "--set-image".into(),
            "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1".into(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("suspended"), "{}", stdout(&out));
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is initialised");
    sim.world.shutdown().await;
}
