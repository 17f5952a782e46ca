//! The HTTP edge against the simulated cluster: webhooks and Prometheus
//! named by in-cluster URLs, reached through the API server's service
//! proxy with the kubeconfig's credentials, as from a laptop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use canary::edge::{
    self as prometheus, Auth, EdgeError, Hooks, HttpEdge, HttpRequest, MetricError, MetricServer,
};
use canary_core::engine::decide::HookOutcome;
use canary_core::spec::resolve::{HookType, Overrides, ResolvedCanary, ResolvedWebhook, resolve};
use canary_sim::server::{Sim, SimConfig};
use http::Method;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// One request as a backend saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A sim, a client for its kubeconfig, and that kubeconfig's config.
async fn start() -> (Sim, kube::Client, kube::Config) {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let kc = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config.clone()).expect("client");
    (sim, client, config)
}

fn service(sim: &Sim, namespace: &str, name: &str, port: u16) {
    let _ = sim.store().create(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
    }));
    sim.store()
        .create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": 8080}]}
        }))
        .expect("service created");
}

/// A backend that records each request and answers `respond(path)`.
fn backend(log: Log, respond: fn(&str) -> (u16, String)) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let log = log.clone();
        async move {
            let authorization = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string());
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let path = req.uri().path().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            log.lock().unwrap().push(Seen {
                method,
                uri,
                authorization,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let (status, text) = respond(&path);
            (StatusCode::from_u16(status).unwrap(), text)
        }
    })
}

/// flagger-loadtester's gate API: `/gate/check` closed, `/gate/approve`
/// open, anything else runs the command.
fn loadtester(path: &str) -> (u16, String) {
    match path {
        "/gate/check" => (403, "Forbidden".to_string()),
        "/gate/approve" => (200, "Approved".to_string()),
        "/busy" => (503, "busy".to_string()),
        _ => (200, "ok".to_string()),
    }
}

fn prometheus_api(_: &str) -> (u16, String) {
    (
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}"#
            .to_string(),
    )
}

fn hook(name: &str, kind: HookType, url: &str) -> ResolvedWebhook {
    ResolvedWebhook {
        name: name.to_string(),
        kind,
        url: url.to_string(),
        timeout: Duration::from_secs(5),
        retries: 0,
        mute_alert: false,
        disable_tls: false,
        metadata: [(
            "cmd".to_string(),
            "hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/".to_string(),
        )]
        .into_iter()
        .collect(),
    }
}

fn podinfo(webhooks: Vec<ResolvedWebhook>) -> ResolvedCanary {
    let file =
        canary_core::spec::load_str("podinfo.yaml", include_str!("../examples/podinfo.yaml"))
            .expect("the example is valid");
    let mut c = resolve(&file, &file.canaries[0], &Overrides::default());
    c.webhooks = webhooks;
    c
}

#[tokio::test]
async fn webhooks_reach_the_load_tester_through_the_service_proxy_without_the_token() {
    let (sim, _client, config) = start().await;
    service(&sim, "prod", "flagger-loadtester", 80);
    let log: Log = Arc::default();
    sim.register_service_backend(
        "prod",
        "flagger-loadtester",
        80,
        backend(log.clone(), loadtester),
    );
    let c = podinfo(vec![
        hook(
            "acceptance-test",
            HookType::PreRollout,
            "http://flagger-loadtester.prod/",
        ),
        hook(
            "load-test",
            HookType::Rollout,
            "http://flagger-loadtester.prod.svc.cluster.local/",
        ),
        hook(
            "approve",
            HookType::ConfirmPromotion,
            "http://flagger-loadtester.prod/gate/approve",
        ),
        hook(
            "hold",
            HookType::ConfirmRollout,
            "http://flagger-loadtester/gate/check",
        ),
    ]);
    let edge = HttpEdge::from_config(config, "default").unwrap();
    let hooks = Hooks::new(&edge, &c);
    assert_eq!(
        hooks.run(HookType::PreRollout, "Progressing", "rev1").await,
        HookOutcome::Passed
    );
    assert_eq!(
        hooks.run(HookType::Rollout, "Progressing", "rev1").await,
        HookOutcome::Passed
    );
    assert!(
        hooks
            .gate(HookType::ConfirmPromotion, "Progressing", "rev1")
            .await
    );
    // The single-label host is a Service in the canary's namespace (prod).
    let closed = hooks
        .check_gate(HookType::ConfirmRollout, "Succeeded", "rev1")
        .await
        .unwrap_err();
    assert_eq!(
        (closed.hook.as_str(), closed.reason.as_str()),
        ("hold", "HTTP 403: Forbidden")
    );

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.method == "POST" && s.authorization.is_none()),
        "{seen:?}"
    );
    assert!(!format!("{seen:?}").contains(sim.token()));
    assert_eq!(seen[0].uri, "/");
    assert_eq!(seen[2].uri, "/gate/approve");
    let payload: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        payload,
        json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing", "checksum": "rev1",
               "metadata": {"cmd": "hey -z 1m -q 10 -c 2 http://podinfo-canary.prod:9898/"}})
    );
    let payload: Value = serde_json::from_str(&seen[3].body).unwrap();
    assert_eq!(payload["phase"], "Succeeded");
}

#[tokio::test]
async fn a_backend_503_through_the_proxy_is_the_hooks_answer_not_retried_by_the_client() {
    let (sim, _client, config) = start().await;
    service(&sim, "prod", "flagger-loadtester", 80);
    let log: Log = Arc::default();
    sim.register_service_backend(
        "prod",
        "flagger-loadtester",
        80,
        backend(log.clone(), loadtester),
    );
    let c = podinfo(vec![hook(
        "busy",
        HookType::Rollout,
        "http://flagger-loadtester.prod/busy",
    )]);
    let edge = HttpEdge::from_config(config, "prod").unwrap();
    let started = std::time::Instant::now();
    let out = Hooks::new(&edge, &c)
        .run(HookType::Rollout, "Progressing", "rev1")
        .await;
    assert_eq!(
        out,
        HookOutcome::Failed {
            hook: "busy".to_string(),
            reason: "HTTP 503: busy".to_string()
        }
    );
    assert_eq!(log.lock().unwrap().len(), 1, "retries: 0 means one call");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_missing_service_and_a_service_without_endpoints_are_told_apart() {
    let (sim, _client, config) = start().await;
    service(&sim, "prod", "flagger-loadtester", 80);
    let edge = HttpEdge::from_config(config, "prod").unwrap();
    let send = |url: &'static str| {
        let edge = &edge;
        async move {
            edge.send(HttpRequest::new(Method::POST, url, Duration::from_secs(5)))
                .await
                .unwrap_err()
        }
    };
    let e = send("http://flagger-loadtester.prod/").await;
    assert!(matches!(e, EdgeError::NoEndpoints { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("service prod/flagger-loadtester has no ready endpoints"),
        "{e}"
    );
    assert!(e.is_retryable());

    let e = send("http://missing.prod.svc/").await;
    assert!(matches!(e, EdgeError::ServiceNotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("service prod/missing does not exist"),
        "{e}"
    );
    assert!(!e.is_retryable());

    // `name.namespace` could be a public name: it is tried directly too,
    // which fails here (no such host, or no network), and both reasons are
    // given.
    let e = edge
        .send(HttpRequest::new(
            Method::POST,
            "http://missing.prod/",
            Duration::from_secs(2),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, EdgeError::NotReachable { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("there is no service prod/missing in the cluster, and failed to"),
        "{e}"
    );
}

#[tokio::test]
async fn prometheus_in_the_cluster_is_queried_through_the_service_proxy() {
    let (sim, _client, config) = start().await;
    service(&sim, "linkerd-viz", "prometheus", 9090);
    let log: Log = Arc::default();
    sim.register_service_backend(
        "linkerd-viz",
        "prometheus",
        9090,
        backend(log.clone(), prometheus_api),
    );
    let edge = HttpEdge::from_config(config, "prod").unwrap();
    let server = MetricServer::new("http://prometheus.linkerd-viz:9090");
    let v = prometheus::query(
        &edge,
        &server,
        "sum(rate(response_total{namespace=\"prod\"}[1m]))",
        None,
    )
    .await
    .unwrap();
    assert_eq!(v, 99.5);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].uri,
        "/api/v1/query?query=sum%28rate%28response_total%7Bnamespace%3D%22prod%22%7D%5B1m%5D%29%29"
    );

    // Credentials cannot pass the proxy: never sent there.
    let mut with_auth = server.clone();
    with_auth.auth = Some(Auth::Bearer("s3cr3t".to_string()));
    prometheus::query(&edge, &with_auth, "up", None)
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap()[1].authorization, None);

    // Metrics outage: no endpoints behind the Service.
    sim.unregister_service_backend("linkerd-viz", "prometheus", 9090);
    let e = prometheus::ready(&edge, &server).await.unwrap_err();
    assert!(
        matches!(e, MetricError::Transport(EdgeError::NoEndpoints { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn prometheus_credentials_come_from_a_secret() {
    let (sim, client, _config) = start().await;
    let b64 = |s: &str| {
        // "flagger" / "pa55" / "tok" in base64, as the API stores them.
        match s {
            "flagger" => "ZmxhZ2dlcg==",
            "pa55" => "cGE1NQ==",
            _ => "dG9r",
        }
    };
    sim.store()
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-basic", "namespace": "default"},
            "data": {"username": b64("flagger"), "password": b64("pa55")}}))
        .unwrap();
    sim.store()
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-token", "namespace": "default"},
            "data": {"token": b64("tok")}}))
        .unwrap();
    let basic = prometheus::auth_from_secret(&client, "default", "prom-basic")
        .await
        .unwrap();
    assert_eq!(
        basic,
        Auth::Basic {
            username: "flagger".into(),
            password: "pa55".into()
        }
    );
    let token = prometheus::auth_from_secret(&client, "default", "prom-token")
        .await
        .unwrap();
    assert_eq!(token, Auth::Bearer("tok".into()));
    let e = prometheus::auth_from_secret(&client, "default", "missing")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("failed to read secret default/missing"),
        "{e}"
    );
}
