//! The real `kubectl` against the simulated cluster for what needs more
//! than JSON and discovery: `create` (protobuf bodies), `apply` with
//! server-side field validation, `explain` and `diff` (the OpenAPI
//! documents) and server-side apply.

use canary_sim::kubectl::{self, Kubectl};
use canary_sim::server::{CrdGroups, Sim, SimConfig};
use serde_json::Value;

/// A sim and kubectl pointed at it; `None` (after saying so) without kubectl.
async fn kubectl_and_sim(crds: CrdGroups) -> Option<(Sim, Kubectl)> {
    if !kubectl::available() {
        eprintln!("SKIPPED: kubectl not on PATH");
        return None;
    }
    let sim = Sim::start(SimConfig {
        crds,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    let k = Kubectl::new(&sim).expect("kubeconfig");
    Some((sim, k))
}

fn deployment(name: &str, image: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: prod
spec:
  replicas: 2
{extra_spec}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: {image}
"#
    )
}

async fn ok(k: &Kubectl, args: &[&str]) -> String {
    let (code, out, err) = k.run_with_code(args).await;
    assert_eq!(code, Some(0), "kubectl {args:?}: {err}{out}");
    out
}

async fn json_of(k: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&ok(k, args).await).expect("kubectl printed JSON")
}

#[tokio::test]
async fn kubectl_creates_configmaps_secrets_namespaces_and_service_accounts() {
    let Some((_sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    // kubectl's typed clients send these as protobuf.
    let out = ok(&k, &["create", "namespace", "prod"]).await;
    assert_eq!(out.trim(), "namespace/prod created");
    let ns = json_of(&k, &["get", "namespace", "prod", "-o", "json"]).await;
    assert_eq!(ns["status"]["phase"], "Active");

    let out = ok(
        &k,
        &[
            "create",
            "configmap",
            "x",
            "--from-literal=a=b",
            "-n",
            "prod",
        ],
    )
    .await;
    assert_eq!(out.trim(), "configmap/x created");
    let cm = json_of(&k, &["get", "configmap", "x", "-n", "prod", "-o", "json"]).await;
    assert_eq!(cm["data"]["a"], "b");

    // Go writes an empty value in full, prost leaves it out: not a field
    // the server would have dropped.
    ok(
        &k,
        &[
            "create",
            "configmap",
            "empty",
            "--from-literal=a=",
            "-n",
            "prod",
        ],
    )
    .await;
    let cm = json_of(
        &k,
        &["get", "configmap", "empty", "-n", "prod", "-o", "json"],
    )
    .await;
    assert_eq!(cm["data"]["a"], "");

    let out = ok(
        &k,
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=a=b",
            "-n",
            "prod",
        ],
    )
    .await;
    assert_eq!(out.trim(), "secret/s created");
    let s = json_of(&k, &["get", "secret", "s", "-n", "prod", "-o", "json"]).await;
    assert_eq!(s["data"]["a"], "Yg==");
    assert_eq!(s["type"], "Opaque");

    let out = ok(&k, &["create", "serviceaccount", "deployer", "-n", "prod"]).await;
    assert_eq!(out.trim(), "serviceaccount/deployer created");
    let out = ok(&k, &["get", "serviceaccounts", "-n", "prod"]).await;
    assert!(
        out.starts_with("NAME       SECRETS   AGE\ndeployer   0 "),
        "{out}"
    );

    // A name the server refuses is refused through protobuf too.
    let (code, _, err) = k
        .run_with_code(&["create", "configmap", "Bad_Name", "-n", "prod"])
        .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("Invalid value: \"Bad_Name\""), "{err}");

    let out = ok(&k, &["delete", "configmap", "x", "-n", "prod"]).await;
    assert_eq!(out.trim(), "configmap \"x\" deleted");
}

#[tokio::test]
async fn kubectl_apply_validates_fields_on_the_server() {
    let Some((_sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    ok(&k, &["create", "namespace", "prod"]).await;
    let dir = k.dir.path();
    let app = dir.join("app.yaml");
    std::fs::write(&app, deployment("podinfo", "img:1", "")).unwrap();
    let out = ok(&k, &["apply", "-f", app.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo created");

    // What `get -o yaml` prints applies back as it is.
    let live = ok(
        &k,
        &["get", "deploy", "podinfo", "-n", "prod", "-o", "yaml"],
    )
    .await;
    let copy = dir.join("live.yaml");
    std::fs::write(&copy, live).unwrap();
    let out = ok(&k, &["apply", "-f", copy.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo configured");

    // An unknown field is refused, as a real cluster refuses it, whether
    // the object is new (create) or exists (patch).
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, deployment("other", "img:1", "  foo: 1\n")).unwrap();
    let (code, _, err) = k
        .run_with_code(&["apply", "-f", bad.to_str().unwrap()])
        .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains(
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
        ),
        "{err}"
    );
    let (code, _, _) = k
        .run_with_code(&["get", "deploy", "other", "-n", "prod"])
        .await;
    assert_ne!(code, Some(0), "nothing was created");

    std::fs::write(&bad, deployment("podinfo", "img:1", "  foo: 1\n")).unwrap();
    let (code, _, err) = k
        .run_with_code(&["apply", "-f", bad.to_str().unwrap()])
        .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("strict decoding error: unknown field \"spec.foo\""),
        "{err}"
    );

    // `--validate=warn` applies with a warning, dropping the field.
    let (code, _, err) = k
        .run_with_code(&["apply", "--validate=warn", "-f", bad.to_str().unwrap()])
        .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("unknown field \"spec.foo\""), "{err}");

    // Server-side apply.
    std::fs::write(&app, deployment("podinfo", "img:3", "")).unwrap();
    let out = ok(
        &k,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            app.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.trim(), "deployment.apps/podinfo serverside-applied");
    let d = json_of(
        &k,
        &["get", "deploy", "podinfo", "-n", "prod", "-o", "json"],
    )
    .await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:3"
    );
}

#[tokio::test]
async fn kubectl_diff_shows_what_apply_would_change() {
    let Some((_sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    ok(&k, &["create", "namespace", "prod"]).await;
    let app = k.dir.path().join("app.yaml");
    std::fs::write(&app, deployment("podinfo", "img:1", "")).unwrap();
    ok(&k, &["apply", "-f", app.to_str().unwrap()]).await;

    let (code, out, err) = k
        .run_with_code(&["diff", "-f", app.to_str().unwrap()])
        .await;
    assert_eq!(code, Some(0), "no change: {err}{out}");
    assert_eq!(out, "");

    std::fs::write(&app, deployment("podinfo", "img:2", "")).unwrap();
    let (code, out, err) = k
        .run_with_code(&["diff", "-f", app.to_str().unwrap()])
        .await;
    assert_eq!(code, Some(1), "a change: {err}{out}");
    assert!(out.contains("\n-      - image: img:1\n"), "{out}");
    assert!(out.contains("\n+      - image: img:2\n"), "{out}");
    // Nothing was changed by the diff's dry run.
    let d = json_of(
        &k,
        &["get", "deploy", "podinfo", "-n", "prod", "-o", "json"],
    )
    .await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:1"
    );
}

#[tokio::test]
async fn kubectl_explain_reads_built_in_and_custom_resource_schemas() {
    let crds = CrdGroups {
        flagger: true,
        ..CrdGroups::default()
    };
    let Some((_sim, k)) = kubectl_and_sim(crds).await else {
        return;
    };
    let out = ok(&k, &["explain", "deployment"]).await;
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(
        out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(
        out.contains("Deployment enables declarative updates for Pods and ReplicaSets."),
        "{out}"
    );
    assert!(out.contains("  spec\t<DeploymentSpec>\n"), "{out}");
    assert!(out.contains("  metadata\t<ObjectMeta>\n"), "{out}");

    let out = ok(&k, &["explain", "deployment.spec.strategy"]).await;
    assert!(
        out.contains("FIELD: strategy <DeploymentStrategy>"),
        "{out}"
    );
    assert!(
        out.contains("The deployment strategy to use to replace existing pods with new"),
        "{out}"
    );
    assert!(
        out.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{out}"
    );

    let out = ok(&k, &["explain", "canary.spec.analysis"]).await;
    assert!(out.contains("GROUP:      flagger.app"), "{out}");
    assert!(out.contains("FIELD: analysis <Object>"), "{out}");
    assert!(out.contains("stepWeight\t<integer>"), "{out}");

    let out = ok(&k, &["explain", "configmap.data"]).await;
    assert!(out.contains("map[string]string"), "{out}");
}

#[tokio::test]
async fn kubectl_apply_validates_custom_resources_against_their_crd() {
    let crds = CrdGroups {
        flagger: true,
        ..CrdGroups::default()
    };
    let Some((_sim, k)) = kubectl_and_sim(crds).await else {
        return;
    };
    let manifest = |extra: &str| {
        format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
{extra}"
        )
    };
    let file = k.dir.path().join("canary.yaml");
    std::fs::write(&file, manifest("    maxWieght: 50\n")).unwrap();
    let (code, _, err) = k
        .run_with_code(&["apply", "-f", file.to_str().unwrap()])
        .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("strict decoding error: unknown field \"spec.analysis.maxWieght\""),
        "{err}"
    );
    std::fs::write(&file, manifest("    maxWeight: 50\n")).unwrap();
    let out = ok(&k, &["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "canary.flagger.app/podinfo created");
}

#[tokio::test]
async fn faults_are_switched_from_outside_the_process_with_kubectl() {
    let Some((sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    let file = k.dir.path().join("faults.json");
    std::fs::write(
        &file,
        r#"{"errorRate": 1, "errorStatus": 500, "onlyPaths": "/configmaps", "onlyWrites": true}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = k
        .run(&["replace", "--raw", "/canary-sim/faults", "-f", path])
        .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k.run(&["get", "--raw", "/canary-sim/faults"]).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errorStatus"], 500);
    assert_eq!(v["onlyWrites"], true);
    assert_eq!(sim.faults().to_json()["onlyPaths"], "/configmaps");

    // Writes to ConfigMaps fail; reads and other writes do not.
    let (ok, _, err) = k
        .run(&[
            "create",
            "configmap",
            "x",
            "-n",
            "default",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!ok && err.contains("injected fault"), "{err}");
    let (ok, _, err) = k.run(&["get", "configmaps", "-n", "default"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = k.run(&["create", "namespace", "other"]).await;
    assert!(ok, "{err}");

    // Bad settings are refused whole, naming the field.
    std::fs::write(&file, r#"{"errorRate": 2}"#).unwrap();
    let (ok, _, err) = k
        .run(&["replace", "--raw", "/canary-sim/faults", "-f", path])
        .await;
    assert!(!ok && err.contains("errorRate"), "{err}");
    assert_eq!(sim.faults().to_json()["errorRate"], 1.0);

    // An empty object clears them.
    std::fs::write(&file, "{}").unwrap();
    let (ok, _, err) = k
        .run(&["replace", "--raw", "/canary-sim/faults", "-f", path])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = k
        .run(&[
            "create",
            "configmap",
            "x",
            "-n",
            "default",
            "--from-literal=a=b",
        ])
        .await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn kubectl_apply_of_a_kind_the_cluster_does_not_serve_says_so() {
    let Some((_sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    let file = k.dir.path().join("canary.yaml");
    std::fs::write(
        &file,
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
",
    )
    .unwrap();
    let (code, _, err) = k
        .run_with_code(&["apply", "-f", file.to_str().unwrap()])
        .await;
    assert_ne!(code, Some(0));
    // What kubectl says against a cluster without Flagger's CRDs, not
    // that it could not read the OpenAPI document.
    assert!(
        err.contains("no matches for kind \"Canary\" in version \"flagger.app/v1beta1\""),
        "{err}"
    );
    assert!(!err.contains("content type"), "{err}");
}

#[tokio::test]
async fn kubectl_reads_the_external_metrics_api_and_finds_it_in_discovery() {
    use canary_sim::providers::MetricProviders;
    use canary_sim::series::{SeriesStore, StoreConfig};
    let Some((sim, k)) = kubectl_and_sim(CrdGroups::default()).await else {
        return;
    };
    let series = std::sync::Arc::new(SeriesStore::new(StoreConfig::realtime()));
    let providers = MetricProviders::new(series);
    providers.map_external_metric("prod", "queue_depth", "app=podinfo", "vector(1.5)");
    sim.serve_external_metrics(providers);
    let groups = json_of(&k, &["get", "--raw", "/apis"]).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "external.metrics.k8s.io"),
        "{groups}"
    );
    let out = ok(&k, &["api-versions"]).await;
    assert!(out.contains("external.metrics.k8s.io/v1beta1"), "{out}");
    let out = ok(
        &k,
        &["api-resources", "--api-group=external.metrics.k8s.io"],
    )
    .await;
    assert!(out.contains("externalmetrics"), "{out}");
    let list = json_of(
        &k,
        &[
            "get",
            "--raw",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/queue_depth?labelSelector=app%3Dpodinfo",
        ],
    )
    .await;
    assert_eq!(list["kind"], "ExternalMetricValueList");
    assert_eq!(list["items"][0]["value"], "1500m", "{list}");
    let (code, _, err) = k
        .run_with_code(&[
            "get",
            "--raw",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/unknown",
        ])
        .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("NotFound") || err.contains("not find"),
        "{err}"
    );
}
