//! The preflight: what used to be found only after traffic moved (a
//! MetricTemplate's missing Secret or key, a `service.port` the pods do not
//! serve, a missing target, a missing permission, a webhook Service that
//! does not exist) is refused by `canary run` before anything is written,
//! with exit 2 and the object named; `canary validate --cluster` makes the
//! same checks and lists every problem, or what it checked.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use canary_sim::rbac::Rules;
use canary_sim::scenario::Scenario;
use canary_sim::world::World;
use serde_json::json;

use crate::run::assert_exit;
use crate::util::{stderr, stdout};

/// podinfo in `prod` on Linkerd, with the load tester and Prometheus, and
/// the flagger CRDs for MetricTemplates.
const SCENARIO: &str = "
seed: 20200518
namespace: prod
readinessDelay: 200ms
trafficInterval: 200ms
crds: [smi, flagger]
namespaces:
  - {name: prod, mesh: linkerd}
  - {name: linkerd}
  - {name: linkerd-viz}
deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 1
    labels: {app: podinfo}
    ports:
      - {name: http, containerPort: 9898}
behaviours:
  \"3.1.0\": {successRate: 100%, latency: {median: 9ms, p99: 35ms}}
loadtester: {name: flagger-loadtester, namespace: prod, port: 80}
prometheus: {name: prometheus, namespace: linkerd-viz, port: 9090}
traffic:
  - {service: podinfo, namespace: prod, port: 9898, rps: 10}
";

/// A canary with a MetricTemplate from the cluster and two webhooks.
const SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: linkerd
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 50
    threshold: 1
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 10s
      - name: success-percentage
        templateRef: {name: success-percentage, namespace: prod}
        thresholdRange: {min: 99}
        interval: 10s
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.prod/
        timeout: 30s
        metadata: {type: bash, cmd: \"curl -s http://podinfo-canary.prod:9898/\"}
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.prod/
        metadata: {cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"}
";

/// The MetricTemplate `success-percentage`, with credentials from Secret
/// `prom-auth`.
fn template() -> serde_json::Value {
    json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
    "metadata": {"name": "success-percentage", "namespace": "prod"},
    "spec": {
        "provider": {"type": "prometheus",
            "address": "http://prometheus.linkerd-viz:9090",
            "secretRef": {"name": "prom-auth"}},
        "query": "sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", classification!=\"failure\", direction=\"inbound\"}[{{ interval }}])) / sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", direction=\"inbound\"}[{{ interval }}])) * 100",
    }})
}

fn secret(keys: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "prom-auth", "namespace": "prod"}, "data": keys})
}

struct Setup {
    world: World,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

/// The world of [`SCENARIO`] holding `objects`.
async fn setup(objects: Vec<serde_json::Value>) -> Setup {
    let scenario = Scenario::from_yaml("preflight.yaml", SCENARIO).unwrap();
    let world = World::start(scenario).await.unwrap();
    for o in objects {
        world.store().create(o).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let path = dir.path().to_path_buf();
    Setup {
        world,
        _dir: dir,
        kubeconfig,
        dir: path,
    }
}

/// The world with the template and a good Secret.
async fn healthy() -> Setup {
    setup(vec![
        template(),
        secret(json!({"token": "cHJvbS10b2tlbg=="})),
    ])
    .await
}

impl Setup {
    fn spec(&self, text: &str) -> String {
        let p = self.dir.join("podinfo.yaml");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// `canary ARGS --kubeconfig K`, with how long it took.
    async fn canary(&self, args: &[&str]) -> (Output, Duration) {
        let mut cmd = crate::util::canary();
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .timeout(Duration::from_secs(120));
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (out, started.elapsed())
    }

    /// Every write since the log was cleared.
    fn writes(&self) -> Vec<String> {
        self.world
            .sim()
            .request_log()
            .into_iter()
            .filter(|r| r.is_write())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// `canary run` of `spec` is refused with exit 2, saying every one of
    /// `words`, and writes nothing; so is `validate --cluster`.
    async fn refused(&self, spec: &str, words: &[&str]) {
        let file = self.spec(spec);
        for command in ["run", "validate"] {
            self.world.sim().clear_request_log();
            let args: Vec<&str> = match command {
                "run" => vec!["run", &file],
                _ => vec!["validate", "--cluster", &file],
            };
            let (out, took) = self.canary(&args).await;
            let err = stderr(&out);
            assert_exit(&out, 2);
            for w in words {
                assert!(err.contains(w), "{command} says {w:?}:\n{err}");
            }
            assert!(!err.contains("Status {"), "no debug dump:\n{err}");
            assert!(err.contains("nothing was changed"), "{err}");
            assert_eq!(
                self.writes(),
                Vec::<String>::new(),
                "{command} writes nothing"
            );
            eprintln!("{command} refused in {took:?}: {}", words[0]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_metric_template_secret_is_refused_before_any_write() {
    let s = setup(vec![template()]).await;
    s.refused(
        SPEC,
        &[
            "Secret prod/prom-auth (secretRef of MetricTemplate prod/success-percentage) not found",
            "(spec.analysis.metrics[1].templateRef)",
        ],
    )
    .await;
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_template_secret_without_the_key_is_refused_naming_the_keys() {
    let s = setup(vec![template(), secret(json!({"tokn": "eA=="}))]).await;
    s.refused(
        SPEC,
        &["Secret prod/prom-auth (secretRef of MetricTemplate prod/success-percentage) has no `token` key, and no `username` and `password` keys"],
    )
    .await;
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_the_pods_do_not_serve_is_refused_naming_what_they_do() {
    let s = healthy().await;
    s.refused(
        &SPEC.replace("    port: 9898\n", "    port: 8080\n"),
        &[
            "the Services would forward to port 8080 of deployment/podinfo's pods, but no container of the pod template serves TCP port 8080 (it declares http 9898/TCP in podinfod)",
            "(spec.service.port)",
        ],
    )
    .await;
    s.refused(
        &SPEC.replace(
            "    port: 9898\n",
            "    port: 80\n    targetPort: metrics\n",
        ),
        &[
            "no container of the pod template has a TCP port named `metrics`",
            "(spec.service.targetPort)",
        ],
    )
    .await;
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_is_refused() {
    let s = healthy().await;
    s.refused(
        &SPEC.replace("name: podinfo}", "name: podinf}"),
        &[
            "deployment/podinf not found in namespace prod",
            "(spec.targetRef.name)",
        ],
    )
    .await;
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_service_that_does_not_exist_is_refused() {
    let s = healthy().await;
    s.refused(
        &SPEC.replacen(
            "http://flagger-loadtester.prod/",
            "http://flagger-loadtest.prod/",
            1,
        ),
        &[
            "webhook `acceptance-test` calls service/flagger-loadtest in namespace prod, which does not exist",
            "(spec.analysis.webhooks[0].url)",
        ],
    )
    .await;
    s.refused(
        &SPEC.replacen(
            "http://flagger-loadtester.prod/",
            "http://flagger-loadtester.prod:8080/",
            1,
        ),
        &["webhook `acceptance-test` calls port 8080 of service/flagger-loadtester in namespace prod, which has no such port (its ports: 80)"],
    )
    .await;
    s.world.shutdown().await;
}

/// examples/rbac.yaml, for its service account, with `edit` applied to
/// its text.
fn example_rules(edit: impl Fn(String) -> String) -> Rules {
    let text = std::fs::read_to_string(crate::util::path("examples/rbac.yaml")).unwrap();
    Rules::from_yaml(&edit(text))
        .unwrap()
        .with_user("system:serviceaccount:prod:canary")
}

/// The example without creating Services, nor calling the load tester.
fn short_of_two(text: String) -> String {
    let cut = text.replacen(
        "  - apiGroups: [\"\"]\n    resources: [services]\n    verbs: [get, create, update]\n",
        "  - apiGroups: [\"\"]\n    resources: [services]\n    verbs: [get, update]\n",
        1,
    );
    assert_ne!(cut, text, "the example's Services rule changed");
    let cut2 = cut.replacen("    verbs: [create]\n", "    verbs: [get]\n", 1);
    assert_ne!(cut2, cut, "the example's service proxy rule changed");
    cut2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_refused_naming_verb_resource_and_namespace() {
    let s = healthy().await;
    s.world.restrict(Some(example_rules(short_of_two)));
    s.refused(
        SPEC,
        &[
            "missing permission: cannot create services in namespace prod (to create the Services)",
            "missing permission: cannot create services/proxy \"http:flagger-loadtester:80\" in namespace prod (to call webhook acceptance-test)",
            "examples/rbac.yaml lists every permission canary needs",
        ],
    )
    .await;
    // Nothing was refused on the way: the preflight asked, it did not try.
    let log = s.world.sim().request_log();
    let refused: Vec<String> = log
        .iter()
        .filter(|r| !r.allowed)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(refused, Vec::<String>::new());

    // A read the preflight itself is not allowed names the permission once.
    s.world.restrict(Some(example_rules(|t| {
        t.replacen(
            "resources: [configmaps, secrets]",
            "resources: [configmaps]",
            1,
        )
    })));
    let file = s.spec(SPEC);
    let (out, _) = s.canary(&["run", &file]).await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    let said = "missing permission: cannot get secrets \"prom-auth\" in namespace prod (to read the metric server's credentials)";
    assert_eq!(err.matches(said).count(), 1, "{err}");
    assert!(
        err.contains("1 problem in 1 file; nothing was changed"),
        "{err}"
    );
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_is_not_asked_to_create_what_exists() {
    let s = healthy().await;
    let file = s.spec(SPEC);
    // Initialised with every permission of the example.
    s.world.restrict(Some(example_rules(|t| t)));
    let (out, _) = s.canary(&["run", &file]).await;
    assert_exit(&out, 0);
    // Without any create, a run of the initialised canary goes on; the
    // preflight of a fresh one would have refused.
    s.world
        .restrict(Some(example_rules(|t| t.replace(", create", ""))));
    s.world.sim().clear_request_log();
    let (out, _) = s.canary(&["run", &file]).await;
    assert_exit(&out, 0);
    assert!(
        !stderr(&out).contains("missing permission"),
        "{}",
        stderr(&out)
    );
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_cluster_says_what_it_checked_and_changes_nothing() {
    let s = healthy().await;
    let file = s.spec(SPEC);
    s.world.sim().clear_request_log();
    let (out, took) = s.canary(&["validate", "--cluster", &file]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("ok  podinfo.prod  canary  provider linkerd"),
        "{text}"
    );
    let checked = text
        .lines()
        .find(|l| l.trim_start().starts_with("cluster: checked"))
        .unwrap_or_else(|| panic!("a line of what was checked:\n{text}"));
    for w in [
        "deployment/podinfo",
        "port 9898 (http in podinfod)",
        "secret/prom-auth",
        "1 MetricTemplate",
        "1 webhook Service",
        "permissions",
    ] {
        assert!(checked.contains(w), "{w} in {checked}");
    }
    assert_eq!(s.writes(), Vec::<String>::new());
    eprintln!("validate --cluster passed in {took:?}: {}", checked.trim());
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_cluster_lists_every_problem_at_once() {
    let s = setup(vec![template()]).await;
    let bad = SPEC
        .replace("    port: 9898\n", "    port: 8080\n")
        .replacen(
            "http://flagger-loadtester.prod/",
            "http://flagger-loadtest.prod/",
            1,
        );
    let file = s.spec(&bad);
    let (out, _) = s.canary(&["validate", "--cluster", &file]).await;
    assert_exit(&out, 2);
    let err = stderr(&out);
    for w in [
        "(spec.service.port)",
        "Secret prod/prom-auth (secretRef of MetricTemplate prod/success-percentage) not found",
        "service/flagger-loadtest in namespace prod, which does not exist",
        "3 problems in 1 file; nothing was changed",
    ] {
        assert!(err.contains(w), "{w}:\n{err}");
    }
    assert!(!stdout(&out).contains("ok  podinfo"), "{}", stdout(&out));
    eprintln!("{err}");
    s.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_cluster_without_a_cluster_is_a_cluster_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: prod}}}}]
current-context: c
"
        ),
    )
    .unwrap();
    let spec = dir.path().join("podinfo.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = crate::util::canary()
        .args(["validate", "--cluster", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg(&spec)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    // Offline, the same file is valid.
    let out = crate::util::canary()
        .arg("validate")
        .arg(&spec)
        .output()
        .unwrap();
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_fails_to_answer_the_preflight_is_a_cluster_error() {
    use canary_sim::server::FaultStatus;
    let s = healthy().await;
    let file = s.spec(SPEC);
    for (path, words) in [
        (
            "secrets/prom-auth",
            "failed to read secret/prom-auth in prod",
        ),
        // Both kinds of review: a rules review that fails is left for the
        // access reviews, whose failure is reported.
        (
            "selfsubject",
            "failed to ask the API server whether the user may ",
        ),
    ] {
        let faults = s.world.faults();
        faults.set_only_paths(Some(path));
        faults.set_error_rate(1.0, FaultStatus::InternalError);
        s.world.sim().clear_request_log();
        for args in [vec!["run", &file], vec!["validate", "--cluster", &file]] {
            let (out, _) = s.canary(&args).await;
            assert_exit(&out, 3);
            let err = stderr(&out);
            assert!(err.contains(words), "{args:?} says {words}:\n{err}");
            assert!(!err.contains("Status {"), "no debug dump:\n{err}");
            eprintln!("{err}");
        }
        assert_eq!(s.writes(), Vec::<String>::new());
        s.world.faults().clear();
    }
    s.world.shutdown().await;
}

/// SPEC for a DaemonSet target, without the built-in metric (its Linkerd
/// query selects a Deployment's series).
fn daemonset_spec() -> String {
    SPEC.replace("kind: Deployment", "kind: DaemonSet").replace(
        "      - name: request-success-rate\n        thresholdRange: {min: 99}\n        interval: 10s\n",
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_target_is_looked_for_as_one_and_its_permissions_asked_for() {
    let s = healthy().await;
    let spec = daemonset_spec();
    assert!(!spec.contains("request-success-rate"));
    s.refused(
        &spec,
        &[
            "daemonset/podinfo not found in namespace prod",
            "(spec.targetRef.name)",
        ],
    )
    .await;
    // Without the example's daemonsets rule, each permission a DaemonSet
    // canary needs is named.
    s.world.restrict(Some(example_rules(|t| {
        let cut = t.replacen(
            "  - apiGroups: [apps]\n    resources: [daemonsets]\n    verbs: [get, list, watch, create, update, patch]\n",
            "",
            1,
        );
        assert_ne!(cut, t, "the example's daemonsets rule changed");
        cut
    })));
    s.refused(
        &spec,
        &[
            "missing permission: cannot get daemonsets.apps \"podinfo\" in namespace prod (to read the target)",
            "missing permission: cannot create daemonsets.apps in namespace prod (to create the primary)",
            "missing permission: cannot update daemonsets.apps \"podinfo-primary\" in namespace prod",
        ],
    )
    .await;
    s.world.shutdown().await;
}
