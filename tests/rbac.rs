//! Least privilege: the simulated API server enforces RBAC like a real one,
//! and `canary` runs end to end under exactly the rules of
//! `examples/rbac.yaml`, which must allow every request it makes and hold
//! no rule it does not use; only `canary revert` deletes.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use canary_sim::rbac::{Attributes, Rules};
use canary_sim::scenario::Scenario;
use canary_sim::server::{Sim, SimConfig};
use canary_sim::store::Subresource;
use canary_sim::world::World;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::run::assert_exit;
use crate::util::{finish, interrupt, stderr, stdout};
use canary_sim::kubectl::{self, Kubectl};

/// Who the example's bindings name: the ServiceAccount `canary` of `prod`.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:prod:canary";

/// Permissions the example grants for commands this test cannot run yet.
/// Empty it as they land.
const NOT_EXERCISED_YET: &[&str] = &[];

fn example_rules() -> Rules {
    let text = std::fs::read_to_string(crate::util::path("examples/rbac.yaml")).unwrap();
    Rules::from_yaml(&text)
        .expect("examples/rbac.yaml loads")
        .with_user(SERVICE_ACCOUNT)
}

// ---------------------------------------------------------------------------
// The refusal, through the kube client and kubectl.
// ---------------------------------------------------------------------------

/// A sim in namespace `test` holding `podinfo-primary`, whose token may
/// only read Deployments in `test`.
async fn read_only_sim() -> (Sim, kube::Client) {
    let sim = Sim::start(SimConfig {
        namespace: "test".to_string(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.store()
        .create(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}
        }))
        .unwrap();
    sim.store()
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo-primary", "namespace": "test"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "podinfo-primary"}},
                "template": {"metadata": {"labels": {"app": "podinfo-primary"}},
                    "spec": {"containers": [{"name": "podinfod", "image": "podinfo:1"}]}},
            },
        }))
        .unwrap();
    let rules = Rules::from_yaml(
        "kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: reader, namespace: test}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get]
",
    )
    .unwrap();
    sim.restrict(Some(rules));
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    (sim, client)
}

async fn raw(client: &kube::Client, method: &str, path: &str, body: &str) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/merge-patch+json")
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_gets_the_real_servers_403() {
    let (sim, client) = read_only_sim().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert!(api.get("podinfo-primary").await.is_ok());

    let err = api
        .patch(
            "podinfo-primary",
            &PatchParams::default(),
            &Patch::Merge(&patch_body()),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "deployments.apps \"podinfo-primary\" is forbidden: User \"canary\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"test\""
    );

    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/test/deployments/podinfo-primary",
        "{}",
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"podinfo-primary\" is forbidden: User \"canary\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"test\"","reason":"Forbidden","details":{"name":"podinfo-primary","group":"apps","kind":"deployments"},"code":403}"#
    );

    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/linkerd-viz/services/http:prometheus:9090/proxy/api/v1/query?query=up",
        "",
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "services \"http:prometheus:9090\" is forbidden: User \"canary\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"linkerd-viz\""
    );
    assert_eq!(
        body["details"],
        json!({"name": "http:prometheus:9090", "kind": "services"})
    );

    let (code, body) = raw(&client, "GET", "/apis/apps/v1/deployments", "").await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "deployments.apps is forbidden: User \"canary\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
    );

    // Discovery stays open; the log records what each request asked for.
    let (code, _) = raw(&client, "GET", "/apis/apps/v1", "").await;
    assert_eq!(code, 200);
    let log = sim.request_log();
    let patch = log.iter().find(|r| r.method == "PATCH").unwrap();
    assert!(!patch.allowed);
    assert_eq!(patch.status, 403);
    assert_eq!(
        patch.attributes,
        Attributes::from_request(
            "PATCH",
            "/apis/apps/v1/namespaces/test/deployments/podinfo-primary"
        )
    );
    assert_eq!(
        (
            patch.attributes.verb.as_str(),
            patch.attributes.api_group.as_str(),
            patch.attributes.resource.as_str(),
            patch.attributes.namespace.as_str(),
            patch.attributes.name.as_str()
        ),
        ("patch", "apps", "deployments", "test", "podinfo-primary")
    );
    assert!(log.iter().filter(|r| r.method == "GET").any(|r| r.allowed));

    // Lifted, everything passes again.
    sim.restrict(None);
    api.patch(
        "podinfo-primary",
        &PatchParams::default(),
        &Patch::Merge(&patch_body()),
    )
    .await
    .unwrap();
    sim.shutdown().await;
}

fn patch_body() -> Value {
    json!({"metadata": {"annotations": {"a": "b"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reports_the_refusal_as_a_real_cluster_would() {
    if !kubectl::available() {
        eprintln!("SKIPPED: kubectl not on PATH");
        return;
    }
    let (sim, _client) = read_only_sim().await;
    let k = Kubectl::new(&sim).unwrap();

    let (ok, out, err) = k.run(&["get", "deployment", "podinfo-primary"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("podinfo-primary"), "{out}");

    let (ok, _, err) = k.run(&["get", "deployments"]).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): deployments.apps is forbidden: User \"canary\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"test\""
    );

    let (ok, _, err) = k
        .run(&["annotate", "deployment", "podinfo-primary", "a=b"])
        .await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): deployments.apps \"podinfo-primary\" is forbidden: User \"canary\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"test\""
    );

    let (ok, _, err) = k
        .run(&["scale", "deployment", "podinfo-primary", "--replicas=2"])
        .await;
    assert!(!ok);
    assert!(
        err.contains(
            "deployments.apps \"podinfo-primary\" is forbidden: User \"canary\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"test\""
        ),
        "{err}"
    );

    let (ok, _, err) = k.run(&["get", "namespace", "linkerd"]).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): namespaces \"linkerd\" is forbidden: User \"canary\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"linkerd\""
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// The least-privilege check.
// ---------------------------------------------------------------------------

/// The seed world, fast, with everything `canary run` can touch: Istio's
/// namespace (so detection looks for both meshes), an existing apex
/// Service, a ConfigMap and a Secret the target uses, HPAs, and an
/// in-cluster MetricTemplate with credentials. A second application,
/// `backend`, has a stale copy of its HPA from an earlier install, which
/// its first run brings in line (where podinfo's first run creates one).
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
  - {name: istio-system}
  - {name: kuma-system}
  - {name: ingress-nginx}
deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 2
    labels: {app: podinfo}
    ports:
      - {name: http, containerPort: 9898}
  - name: backend
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    replicas: 1
    labels: {app: backend}
    ports:
      - {name: http, containerPort: 9898}
services:
  - name: podinfo
    namespace: prod
    selector: {app: podinfo}
    ports: [{name: http, port: 9898}]
behaviours:
  \"3.1.0\": {successRate: 100%, latency: {median: 9ms, p99: 35ms}}
  \"3.1.1\": {successRate: 100%, latency: {median: 8ms, p99: 30ms}}
loadtester: {name: flagger-loadtester, namespace: prod, port: 80}
prometheus: {name: prometheus, namespace: linkerd-viz, port: 9090}
traffic:
  - {service: podinfo, namespace: prod, port: 9898, rps: 10}
";

/// The second application: initialised only.
const BACKEND: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: backend
  namespace: prod
spec:
  provider: linkerd
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: backend}
  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: backend}
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 50
    threshold: 1
";

/// No provider (it is detected), an autoscaler, a built-in metric and one
/// from the cluster, webhooks through the service proxy; 1 s steps.
const SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 25
    maxWeight: 50
    threshold: 3
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
        metadata:
          type: bash
          cmd: \"curl -sd 'test' http://podinfo-canary.prod:9898/token | grep token\"
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.prod/
        metadata:
          cmd: \"hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/\"
";

fn hpa(name: &str, target: &str, max: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 2, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 90}}}],
        },
    })
}

/// The requests of `log` the rules refused (or the server answered 401 or
/// 403), one line each.
fn refused(log: &[canary_sim::server::RequestRecord]) -> Vec<String> {
    log.iter()
        .filter(|r| !r.allowed || r.status == 403 || r.status == 401)
        .map(|r| format!("{} {} -> {} ({})", r.method, r.path, r.status, r.attributes))
        .collect()
}

async fn world() -> World {
    let scenario = Scenario::from_yaml("rbac-scenario.yaml", SCENARIO).unwrap();
    let world = World::start(scenario).await.unwrap();
    let store = world.store();
    for obj in [
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "podinfo-config", "namespace": "prod"},
            "data": {"color": "blue"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "podinfo-secret", "namespace": "prod"},
            "data": {"key": "czNjcjN0"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "prom-auth", "namespace": "prod"},
            "data": {"token": "cHJvbS10b2tlbg=="}}),
        hpa("podinfo", "podinfo", 4),
        hpa("backend", "backend", 4),
        hpa("backend-primary", "backend-primary", 3),
        json!({"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "success-percentage", "namespace": "prod"},
        "spec": {
            "provider": {"type": "prometheus",
                "address": "http://prometheus.linkerd-viz:9090",
                "secretRef": {"name": "prom-auth"}},
            "query": "sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", classification!=\"failure\", direction=\"inbound\"}[{{ interval }}])) / sum(rate(response_total{namespace=\"{{ namespace }}\", deployment=\"{{ target }}\", direction=\"inbound\"}[{{ interval }}])) * 100",
        }}),
    ] {
        store.create(obj).unwrap();
    }
    store
        .modify(
            "apps/v1",
            "Deployment",
            "prod",
            "podinfo",
            Subresource::Main,
            |d| {
                d["spec"]["template"]["spec"]["containers"][0]["envFrom"] = json!([
                    {"configMapRef": {"name": "podinfo-config"}},
                    {"secretRef": {"name": "podinfo-secret"}},
                ]);
            },
        )
        .unwrap();
    world
}

struct Files {
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    spec: PathBuf,
    backend: PathBuf,
}

fn files(world: &World) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let spec = dir.path().join("podinfo.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let backend = dir.path().join("backend.yaml");
    std::fs::write(&backend, BACKEND).unwrap();
    Files {
        _dir: dir,
        kubeconfig,
        spec,
        backend,
    }
}

/// Runs the built `canary` with ARGS and `--kubeconfig`.
async fn canary(f: &Files, args: &[&str]) -> Output {
    let mut cmd = crate::util::canary();
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(&f.kubeconfig)
        .timeout(Duration::from_secs(120));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Starts the built `canary` with ARGS and `--kubeconfig`.
fn spawn(f: &Files, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&f.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until podinfo's TrafficSplit sends the canary some traffic.
async fn wait_for_analysis(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::util::podinfo_weights(world).is_none_or(|(_, canary)| canary <= 0) {
        assert!(Instant::now() < deadline, "the analysis never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_needs_exactly_the_permissions_of_the_rbac_example() {
    let started = Instant::now();
    let world = world().await;
    let f = files(&world);
    let rules = example_rules();
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap();
    let backend = f.backend.to_str().unwrap();

    // The first run detects the mesh and initialises both.
    let out = canary(&f, &["run", spec, backend]).await;
    assert_exit(&out, 0);
    let copy = world
        .store()
        .get(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "prod",
            "backend-primary",
        )
        .unwrap();
    assert_eq!(copy["spec"]["maxReplicas"], 4);
    assert!(
        stderr(&out).contains("Using provider linkerd"),
        "{}",
        stderr(&out)
    );
    // Nothing changed: wait briefly for a change, then stop.
    let out = canary(&f, &["run", spec, "--wait-for-change", "1s"]).await;
    assert_exit(&out, 0);
    // A new image, analysed and promoted.
    let image = "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1";
    let out = canary(&f, &["run", spec, "--set-image", image]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    let primary = world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .unwrap();
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    for args in [&["status"][..], &["status", "-A"][..]] {
        let out = canary(&f, args).await;
        assert_exit(&out, 0);
        assert!(stdout(&out).contains("podinfo"), "{}", stdout(&out));
    }

    // An operator pauses, resumes and promotes a running rollout, with
    // `status -A -w` watching from a third terminal.
    let watch = spawn(&f, &["status", "-A", "-w"]);
    let run = spawn(
        &f,
        &[
            "run",
            spec,
            "--set-image",
            "podinfod=ghcr.io/stefanprodan/podinfo:3.1.0",
        ],
    );
    wait_for_analysis(&world).await;
    for action in ["pause", "resume", "promote"] {
        let out = canary(&f, &[action, "podinfo", "-n", "prod"]).await;
        assert_exit(&out, 0);
    }
    assert_exit(&finish(run).await, 0);
    interrupt(&watch);
    let out = finish(watch).await;
    assert!(stdout(&out).contains("Succeeded"), "{}", stdout(&out));
    // With no driver left (Ctrl-C), abort does the work itself, and
    // revert gives podinfo back.
    let run = spawn(
        &f,
        &[
            "run",
            spec,
            "--set-image",
            "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1",
        ],
    );
    wait_for_analysis(&world).await;
    interrupt(&run);
    assert_exit(&finish(run).await, 130);
    let out = canary(&f, &["abort", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);

    // Nothing so far deleted anything: the deletes are revert's alone,
    // and their Role is optional.
    let before_revert = world.sim().request_log().len();
    let out = canary(&f, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: reverted"),
        "{}",
        stdout(&out)
    );
    for (api_version, kind, name) in [
        ("apps/v1", "Deployment", "podinfo-primary"),
        ("v1", "ConfigMap", "podinfo-config-primary"),
        ("split.smi-spec.io/v1alpha2", "TrafficSplit", "podinfo"),
    ] {
        assert!(
            world.store().get(api_version, kind, "prod", name).is_none(),
            "{kind} {name}"
        );
    }

    let log = world.sim().request_log();
    let deleted_before: Vec<String> = log[..before_revert]
        .iter()
        .filter(|r| r.attributes.verb == "delete")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        deleted_before.is_empty(),
        "only revert deletes, but:\n{}",
        deleted_before.join("\n")
    );
    let refused = refused(&log);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions for:\n{}",
        refused.join("\n")
    );

    let mut asked: Vec<Attributes> = log.iter().map(|r| r.attributes.clone()).collect();
    world.shutdown().await;
    // The same rules drive a canary on Istio.
    asked.extend(istio_requests(&rules).await);
    // The Gateway API, Kuma, APISIX, NGINX, Contour, Traefik, Skipper and Gloo
    // routers,
    // each in a cluster of its own.
    for (crds, spec, ingress) in [
        ("gatewayApi", router_spec("gatewayapi:v1", ""), false),
        ("kuma", router_spec("kuma", ""), false),
        (
            "apisix",
            router_spec(
                "apisix",
                "  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}\n",
            ),
            false,
        ),
        (
            "smi",
            router_spec(
                "nginx",
                "  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n",
            ),
            true,
        ),
        // Contour detected by its namespace and CRD.
        (
            "contour",
            router_spec("contour", "").replace("  provider: contour\n", ""),
            false,
        ),
        ("traefik", router_spec("traefik", ""), false),
        (
            "smi",
            router_spec(
                "skipper",
                "  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n",
            ),
            true,
        ),
        ("gloo", router_spec("gloo", ""), false),
    ] {
        asked.extend(router_lifecycle(&rules, crds, &spec, ingress).await);
    }
    // A DaemonSet target: its primary DaemonSet, from first run to revert.
    asked.extend(daemonset_lifecycle(&rules).await);
    // A Knative Service target, from first run to revert.
    asked.extend(knative_lifecycle(&rules).await);
    // A gate held closed: the message said at every round is one Event
    // whose series is counted up.
    asked.extend(closed_gate(&rules).await);
    let unused: Vec<String> = rules
        .unused(&asked)
        .iter()
        .map(|p| p.to_string())
        .filter(|p| !NOT_EXERCISED_YET.contains(&p.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "examples/rbac.yaml grants what no command used:\n{}",
        unused.join("\n")
    );
    // An entry of the allow-list that is used now must leave it.
    let still_unused: Vec<String> = rules.unused(&asked).iter().map(|p| p.to_string()).collect();
    for p in NOT_EXERCISED_YET {
        assert!(
            still_unused.iter().any(|u| u == p),
            "`{p}` is used now: remove it from NOT_EXERCISED_YET"
        );
    }
    eprintln!(
        "least-privilege run: {} requests in {:?}",
        log.len(),
        started.elapsed()
    );
}

/// A weighted canary of podinfo on `provider`, without metrics or hooks.
fn router_spec(provider: &str, extra: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: {provider}
{extra}  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service:
    port: 9898
    hosts: [www.example.com]
    gatewayRefs: [{{name: gateway, namespace: gateway-system}}]
  analysis:
    interval: 1s
    stepWeight: 50
    threshold: 1
"
    )
}

/// Initialises, promotes and reverts `spec` under `rules` in a cluster
/// with `crds` (and the user's Ingress when `ingress`); every request must
/// be allowed. Returns what the requests asked for.
async fn router_lifecycle(rules: &Rules, crds: &str, spec: &str, ingress: bool) -> Vec<Attributes> {
    let scenario = Scenario::from_yaml(
        "rbac-routers.yaml",
        &format!(
            "
namespace: prod
readinessDelay: 200ms
crds: [{crds}]
namespaces:
  - {{name: prod}}
  - {{name: projectcontour}}
deployments:
  - name: podinfo
    namespace: prod
    image: ghcr.io/stefanprodan/podinfo:3.1.0
    container: podinfod
    labels: {{app: podinfo}}
    ports: [{{name: http, containerPort: 9898}}]
traffic:
  - {{host: www.example.com, namespace: prod, rps: 10}}
"
        ),
    )
    .unwrap();
    let world = World::start(scenario).await.unwrap();
    if ingress {
        world
            .store()
            .create(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "podinfo", "namespace": "prod"},
                "spec": {"rules": [{"host": "www.example.com", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}
                }]}}]}
            }))
            .unwrap();
    }
    if crds == "apisix" {
        world
            .store()
            .create(json!({
                "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
                "metadata": {"name": "podinfo", "namespace": "prod"},
                "spec": {"http": [{"name": "rule1",
                    "match": {"hosts": ["www.example.com"], "paths": ["/*"]},
                    "backends": [{"serviceName": "podinfo", "servicePort": 9898}]}]}
            }))
            .unwrap();
    }
    let f = files(&world);
    std::fs::write(&f.spec, spec).unwrap();
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap();
    assert_exit(&canary(&f, &["run", spec]).await, 0);
    let image = "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1";
    let out = canary(&f, &["run", spec, "--set-image", image]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("promoted"), "{}", stdout(&out));
    let out = canary(&f, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    let log = world.sim().request_log();
    let refused = refused(&log);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions for:\n{}",
        refused.join("\n")
    );
    world.shutdown().await;
    log.iter().map(|r| r.attributes.clone()).collect()
}

/// Initialises, promotes, shows and reverts a canary of a DaemonSet
/// (podinfo as a DaemonSet, on Linkerd) under `rules`; every request must
/// be allowed. Returns what the requests asked for.
async fn daemonset_lifecycle(rules: &Rules) -> Vec<Attributes> {
    let scenario = Scenario::from_yaml(
        "rbac-daemonset.yaml",
        "
namespace: prod
readinessDelay: 200ms
crds: [smi]
namespaces:
  - {name: prod}
  - {name: linkerd}
",
    )
    .unwrap();
    let world = World::start(scenario).await.unwrap();
    world
        .store()
        .create(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "podinfo", "namespace": "prod", "labels": {"app": "podinfo"}},
            "spec": {
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfod",
                        "image": "ghcr.io/stefanprodan/podinfo:3.1.0",
                        "ports": [{"name": "http", "containerPort": 9898}]}]}
                }
            }
        }))
        .unwrap();
    let f = files(&world);
    std::fs::write(
        &f.spec,
        router_spec("linkerd", "").replace("kind: Deployment", "kind: DaemonSet"),
    )
    .unwrap();
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap();
    assert_exit(&canary(&f, &["run", spec]).await, 0);
    let image = "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1";
    let out = canary(&f, &["run", spec, "--set-image", image]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("promoted"), "{}", stdout(&out));
    let out = canary(&f, &["status", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("podinfo"), "{}", stdout(&out));
    let out = canary(&f, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    assert!(
        world
            .store()
            .get("apps/v1", "DaemonSet", "prod", "podinfo-primary")
            .is_none()
    );
    let log = world.sim().request_log();
    let refused = refused(&log);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions for a DaemonSet:\n{}",
        refused.join("\n")
    );
    world.shutdown().await;
    log.iter().map(|r| r.attributes.clone()).collect()
}

/// A Knative Service canary under the example's rules, from the first run
/// through a promoted release to its revert; the requests it made.
async fn knative_lifecycle(rules: &Rules) -> Vec<Attributes> {
    let scenario = Scenario::from_yaml(
        "rbac-knative.yaml",
        "
namespace: prod
readinessDelay: 200ms
crds: [knative]
namespaces:
  - {name: prod}
",
    )
    .unwrap();
    let world = World::start(scenario).await.unwrap();
    world
        .store()
        .create(json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "podinfo", "namespace": "prod"},
            "spec": {"template": {"spec": {"containers": [{"name": "podinfod",
                "image": "ghcr.io/stefanprodan/podinfo:3.1.0",
                "ports": [{"containerPort": 9898}]}]}}},
        }))
        .unwrap();
    let f = files(&world);
    std::fs::write(
        &f.spec,
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: knative
  targetRef: {apiVersion: serving.knative.dev/v1, kind: Service, name: podinfo}
  analysis:
    interval: 1s
    threshold: 2
    stepWeight: 50
    maxWeight: 50
",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while world
        .store()
        .get("serving.knative.dev/v1", "Service", "prod", "podinfo")
        .is_none_or(|s| s["status"]["latestReadyRevisionName"] != "podinfo-00001")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "revision 1 never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap();
    assert_exit(&canary(&f, &["run", spec]).await, 0);
    // Nothing changed: the run watches the Knative Service briefly.
    assert_exit(
        &canary(&f, &["run", spec, "--wait-for-change", "1s"]).await,
        0,
    );
    let image = "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1";
    let out = canary(&f, &["run", spec, "--set-image", image]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("promoted"), "{}", stdout(&out));
    let out = canary(&f, &["revert", "-f", spec]).await;
    assert_exit(&out, 0);
    let s = world
        .store()
        .get("serving.knative.dev/v1", "Service", "prod", "podinfo")
        .unwrap();
    assert!(
        s["metadata"]["annotations"]["flagger.app/primary-revision"].is_null(),
        "{s}"
    );
    let log = world.sim().request_log();
    let refused = refused(&log);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions for a Knative Service:\n{}",
        refused.join("\n")
    );
    world.shutdown().await;
    log.iter().map(|r| r.attributes.clone()).collect()
}

/// A release held at a closed confirm-promotion gate until its Event has
/// been repeated, under the example's rules; the requests it made.
async fn closed_gate(rules: &Rules) -> Vec<Attributes> {
    let world = world().await;
    let f = files(&world);
    std::fs::write(
        &f.spec,
        SPEC.replace(
            "    webhooks:\n",
            "    webhooks:\n      - name: approval\n        type: confirm-promotion\n        \
             url: http://flagger-loadtester.prod/gate/check\n",
        ),
    )
    .unwrap();
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap();
    assert_exit(&canary(&f, &["run", spec]).await, 0);
    let run = spawn(
        &f,
        &[
            "run",
            spec,
            "--set-image",
            "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let repeated = || {
        world
            .store()
            .list("v1", "Event", Some("prod"))
            .iter()
            .any(|e| e["series"]["count"].as_i64().is_some_and(|n| n >= 2))
    };
    while !repeated() {
        assert!(
            Instant::now() < deadline,
            "no Event was repeated at the gate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    interrupt(&run);
    assert_exit(&finish(run).await, 130);
    let log = world.sim().request_log();
    // The closed gate itself answers 403 through the proxy, which the
    // rules allowed.
    let other: Vec<_> = log
        .iter()
        .filter(|r| !(r.allowed && r.path.ends_with("/gate/check")))
        .cloned()
        .collect();
    let refused = refused(&other);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions at a gate:\n{}",
        refused.join("\n")
    );
    world.shutdown().await;
    log.iter().map(|r| r.attributes.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_optional_cluster_role_run_needs_a_provider_and_status_a_namespace() {
    let text = std::fs::read_to_string(crate::util::path("examples/rbac.yaml")).unwrap();
    let namespaced: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: ClusterRole"))
        .collect();
    let rules = Rules::from_yaml(&namespaced.join("\n---\n"))
        .unwrap()
        .with_user(SERVICE_ACCOUNT);
    assert!(
        rules
            .grants()
            .iter()
            .all(|g| g.scope != canary_sim::rbac::Scope::Cluster)
    );
    let world = world().await;
    let f = files(&world);
    world.restrict(Some(rules));
    let spec = f.spec.to_str().unwrap();

    let out = canary(&f, &["run", spec, "--mesh-provider", "linkerd"]).await;
    assert_exit(&out, 0);
    let out = canary(&f, &["status"]).await;
    assert_exit(&out, 0);
    let out = canary(&f, &["status", "-A"]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains(&format!(
            "deployments.apps is forbidden: User \"{SERVICE_ACCOUNT}\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        )),
        "{}",
        stderr(&out)
    );
    world.shutdown().await;
}

/// An Istio world: podinfo in `prod` with Istio's sidecars, Istio's
/// namespace and CRDs (no Linkerd), the Prometheus where the Role
/// `canary-metrics` allows it.
const ISTIO_SCENARIO: &str = "
seed: 20200518
namespace: prod
readinessDelay: 200ms
trafficInterval: 200ms
crds: [istio]
namespaces:
  - {name: prod, mesh: istio}
  - {name: istio-system}
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
  \"3.1.1\": {successRate: 100%, latency: {median: 8ms, p99: 30ms}}
prometheus:
  name: prometheus
  namespace: linkerd-viz
  port: 9090
traffic:
  - {service: podinfo, namespace: prod, port: 9898, rps: 20}
";

/// No provider (Istio is detected), 1 s steps.
const ISTIO_SPEC: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  metricsServer: http://prometheus.linkerd-viz:9090
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 50
    threshold: 3
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 10s
";

/// What `canary` asks of an Istio cluster under `rules`: detection, a
/// first run, a release, a changed `service` (the router's objects are
/// updated), and a revert. Every request must be allowed.
async fn istio_requests(rules: &Rules) -> Vec<Attributes> {
    let scenario = Scenario::from_yaml("rbac-istio.yaml", ISTIO_SCENARIO).unwrap();
    let world = World::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let spec = dir.path().join("podinfo.yaml");
    std::fs::write(&spec, ISTIO_SPEC).unwrap();
    let f = Files {
        kubeconfig,
        spec: spec.clone(),
        backend: spec.clone(),
        _dir: dir,
    };
    world.restrict(Some(rules.clone()));
    world.sim().clear_request_log();
    let spec = f.spec.to_str().unwrap().to_string();
    let out = canary(&f, &["run", &spec]).await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Using provider istio"),
        "{}",
        stderr(&out)
    );
    let image = "podinfod=ghcr.io/stefanprodan/podinfo:3.1.1";
    let out = canary(&f, &["run", &spec, "--set-image", image]).await;
    assert_exit(&out, 0);
    // A new timeout and traffic policy reach the VirtualService and the
    // DestinationRules on the next run.
    std::fs::write(
        &f.spec,
        ISTIO_SPEC.replace(
            "    port: 9898\n",
            "    port: 9898\n    timeout: 10s\n    trafficPolicy:\n      tls: {mode: ISTIO_MUTUAL}\n",
        ),
    )
    .unwrap();
    let out = canary(&f, &["run", &spec]).await;
    assert_exit(&out, 0);
    let vs = world
        .store()
        .get(
            "networking.istio.io/v1beta1",
            "VirtualService",
            "prod",
            "podinfo",
        )
        .unwrap();
    assert_eq!(vs["spec"]["http"][0]["timeout"], "10s");
    let out = canary(&f, &["revert", "podinfo", "-n", "prod"]).await;
    assert_exit(&out, 0);
    for (kind, name) in [
        ("VirtualService", "podinfo"),
        ("DestinationRule", "podinfo-primary"),
        ("DestinationRule", "podinfo-canary"),
    ] {
        assert!(
            world
                .store()
                .get("networking.istio.io/v1beta1", kind, "prod", name)
                .is_none(),
            "{kind} {name}"
        );
    }
    let log = world.sim().request_log();
    let refused = refused(&log);
    assert!(
        refused.is_empty(),
        "examples/rbac.yaml is missing permissions on Istio for:\n{}",
        refused.join("\n")
    );
    world.shutdown().await;
    log.iter().map(|r| r.attributes.clone()).collect()
}
