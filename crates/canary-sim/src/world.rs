//! A whole simulated world from a [`Scenario`]: the API server ([`Sim`]),
//! the Deployment controller and kubelet, the traffic model, the load
//! tester and the Prometheus (both behind the API server's service proxy,
//! and on the Pod network for clients that reach them as a Pod would),
//! a `/metrics` endpoint a real Prometheus can scrape, the chat services
//! alerts go to and the metric services besides Prometheus (each on a
//! loopback port of its own, as public services), and the faults; plus
//! the banner `canary demo --serve` prints about it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::alerts::{AlertReceiver, ReceivedAlert};
use crate::controller::{self, ControllerConfig};
use crate::exposition;
use crate::loadtester::{LoadTester, LoadTesterConfig, WebhookCall};
use crate::promql::PrometheusApi;
use crate::providers::MetricProviders;
use crate::scenario::{Mesh, Scenario};
use crate::series::{SeriesStore, StoreConfig};
use crate::server::{ApiError, FaultStatus, Faults, Sim, SimConfig, Store};
use crate::store::Subresource;
use crate::traffic::{self, Flow, Traffic};

/// A running simulated world.
pub struct World {
    sim: Sim,
    scenario: Scenario,
    loadtester: Option<Arc<LoadTester>>,
    traffic: Arc<Traffic>,
    metrics_addr: SocketAddr,
    alerts: Arc<AlertReceiver>,
    alerts_addr: SocketAddr,
    providers: Arc<MetricProviders>,
    providers_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl World {
    /// Starts everything the scenario describes (needs a tokio runtime).
    pub async fn start(scenario: Scenario) -> anyhow::Result<World> {
        let sim = Sim::start(SimConfig {
            crds: scenario.crd_groups(),
            namespace: scenario.namespace.clone(),
            ..SimConfig::default()
        })
        .await?;
        seed_objects(sim.store(), &scenario)
            .map_err(|e| anyhow::anyhow!("failed to create the scenario's objects: {e}"))?;

        let series = Arc::new(SeriesStore::new(StoreConfig::realtime()));
        let behaviours = Arc::new(scenario.behaviours());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        tasks.push(controller::spawn(
            sim.store().clone(),
            behaviours.clone(),
            ControllerConfig {
                readiness_delay: scenario.readiness_delay.0,
                seed: scenario.seed,
                ..ControllerConfig::default()
            },
            shutdown_rx.clone(),
        ));

        tasks.push(crate::providers::keptn::spawn(
            sim.store().clone(),
            series.clone(),
            shutdown_rx.clone(),
        ));

        let traffic = Traffic::new(
            sim.store().clone(),
            series.clone(),
            behaviours.clone(),
            scenario.seed,
        );
        for t in &scenario.traffic {
            traffic.add_flow(Flow::from_spec(t));
        }
        tasks.push(traffic::spawn(
            traffic.clone(),
            scenario.traffic_interval.0,
            shutdown_rx.clone(),
        ));

        let loadtester = match &scenario.loadtester {
            Some(l) => {
                let lt = LoadTester::new(
                    traffic.clone(),
                    LoadTesterConfig {
                        name: l.name.clone(),
                        namespace: l.namespace.clone(),
                        timeout: l.timeout.0,
                        namespace_regexp: l
                            .namespace_regexp
                            .as_deref()
                            .and_then(|r| regex::Regex::new(r).ok()),
                    },
                );
                sim.register_service_backend(&l.namespace, &l.name, l.port, lt.router());
                Some(lt)
            }
            None => None,
        };

        if let Some(p) = &scenario.prometheus {
            sim.register_service_backend(
                &p.namespace,
                &p.name,
                p.port,
                prometheus_router(series.clone(), sim.faults().clone()),
            );
        }

        // `/metrics` on a loopback port of its own, for a real Prometheus.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let metrics_addr = listener.local_addr()?;
        let mut rx = shutdown_rx.clone();
        let app = exposition::router(series.clone());
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        }));

        // The chat services alerts are posted to, on a loopback port of
        // their own, as public services are reached.
        let alerts = AlertReceiver::new();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let alerts_addr = listener.local_addr()?;
        let mut rx = shutdown_rx.clone();
        let app = alerts.router();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        }));

        // The metric services besides Prometheus, on a loopback port of
        // their own too, answering from the same series.
        let providers = MetricProviders::new(series.clone());
        sim.serve_external_metrics(providers.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let providers_addr = listener.local_addr()?;
        let mut rx = shutdown_rx.clone();
        let app = providers.router();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        }));

        let f = &scenario.faults;
        let faults = sim.faults();
        faults.set_metrics_outage(f.metrics_outage);
        if let Some(rate) = f.api_error_rate {
            let status = match f.api_error_status {
                Some(429) => FaultStatus::TooManyRequests {
                    retry_after_secs: 1,
                },
                _ => FaultStatus::InternalError,
            };
            faults.set_error_rate(rate.0, status);
        }
        if let Some(l) = f.api_latency {
            faults.set_latency(l.0);
        }
        if let Some(d) = f.api_drop_rate {
            faults.set_drop_rate(d.0);
        }

        Ok(World {
            sim,
            scenario,
            loadtester,
            traffic,
            metrics_addr,
            alerts,
            alerts_addr,
            providers,
            providers_addr,
            shutdown_tx,
            tasks,
        })
    }

    /// Sends one request through the cluster's routing now, as a client
    /// would (recorded like any other): which pod answered, and how.
    pub fn request(&self, req: &traffic::Request) -> traffic::Response {
        self.traffic.request(req)
    }

    /// The API server.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    pub fn store(&self) -> &Arc<Store> {
        self.sim.store()
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The load tester, when the scenario has one.
    pub fn loadtester(&self) -> Option<&Arc<LoadTester>> {
        self.loadtester.as_ref()
    }

    /// Sends one GET to Service `namespace/service` on `port` with
    /// `headers`, from a pod of workload `source` (`(namespace, name)`),
    /// through the cluster's routing now: the pod that answered, or why
    /// none did.
    pub fn answering_pod(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
        headers: &[(&str, &str)],
        source: (&str, &str),
    ) -> Result<String, String> {
        let mut req = traffic::Request::get(
            traffic::Target::Service {
                namespace: namespace.to_string(),
                name: service.to_string(),
                port: Some(port),
            },
            "/",
        );
        req.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        req.source = traffic::Source {
            namespace: source.0.to_string(),
            workload: source.1.to_string(),
        };
        let r = self.traffic.request(&req);
        r.pod.ok_or_else(|| {
            r.error
                .unwrap_or_else(|| format!("status {}: {}", r.status, r.body))
        })
    }

    /// Every request the load tester received, oldest first.
    pub fn webhook_calls(&self) -> Vec<WebhookCall> {
        self.loadtester
            .as_ref()
            .map(|l| l.calls())
            .unwrap_or_default()
    }

    /// The API fault switches (including the metrics outage).
    pub fn faults(&self) -> &Arc<Faults> {
        self.sim.faults()
    }

    /// Holds the API server's token to `rules` (`None`: no restriction);
    /// see [`Sim::restrict`].
    pub fn restrict(&self, rules: Option<crate::rbac::Rules>) {
        self.sim.restrict(rules);
    }

    /// Makes the Prometheus answer 503 (or recover).
    pub fn set_metrics_outage(&self, down: bool) {
        self.sim.faults().set_metrics_outage(down);
    }

    pub fn kubeconfig_yaml(&self) -> String {
        self.sim.kubeconfig_yaml()
    }

    /// Writes the kubeconfig (mode 0600).
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        self.sim.write_kubeconfig(path)
    }

    /// A `kube` client for this world.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// `http://127.0.0.1:PORT/metrics`: the series in Prometheus' text
    /// format.
    /// The base URL of the chat services' webhooks: alerts are posted to
    /// `BASE/alerts/TYPE/...` (see [`crate::alerts`]).
    pub fn alerts_url(&self) -> String {
        format!("http://{}", self.alerts_addr)
    }

    /// Every alert the chat services accepted, oldest first.
    pub fn alerts_received(&self) -> Vec<ReceivedAlert> {
        self.alerts.received()
    }

    /// Every alert request the chat services refused: path and why.
    pub fn alerts_refused(&self) -> Vec<(String, String)> {
        self.alerts.refused()
    }

    /// The base URL of the metric services besides Prometheus: each is at
    /// `BASE/TYPE` (`BASE/datadog`, ...; see [`crate::providers`]).
    pub fn providers_url(&self) -> String {
        format!("http://{}", self.providers_addr)
    }

    /// The metric services besides Prometheus: their credentials, their
    /// query tables and the requests they received.
    pub fn metric_providers(&self) -> &Arc<MetricProviders> {
        &self.providers
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// The API path of the Prometheus through the service proxy, e.g.
    /// `/api/v1/namespaces/linkerd-viz/services/prometheus:9090/proxy`.
    pub fn prometheus_proxy_path(&self) -> Option<String> {
        self.scenario.prometheus.as_ref().map(|p| {
            format!(
                "/api/v1/namespaces/{}/services/{}:{}/proxy",
                p.namespace, p.name, p.port
            )
        })
    }

    /// The load tester's API path through the service proxy.
    pub fn loadtester_proxy_path(&self) -> Option<String> {
        self.scenario.loadtester.as_ref().map(|l| {
            format!(
                "/api/v1/namespaces/{}/services/{}:{}/proxy",
                l.namespace, l.name, l.port
            )
        })
    }

    /// What `kubectl set image deployment/NAME CONTAINER=IMAGE` does.
    pub fn set_image(
        &self,
        namespace: &str,
        deployment: &str,
        container: &str,
        image: &str,
    ) -> Result<(), ApiError> {
        let mut found = false;
        self.store().modify(
            "apps/v1",
            "Deployment",
            namespace,
            deployment,
            Subresource::Main,
            |d| {
                for c in d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if c["name"] == container {
                        c["image"] = json!(image);
                        found = true;
                    }
                }
            },
        )?;
        if found {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "unable to find container named \"{container}\""
            )))
        }
    }

    /// Stops every task, then the API server.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.sim.shutdown().await;
    }
}

/// The Prometheus query API, answering 503 while the sim's metrics outage
/// switch is on.
fn prometheus_router(series: Arc<SeriesStore>, faults: Arc<Faults>) -> Router {
    let api = PrometheusApi::new(series);
    let inner = api.router();
    Router::new().fallback(move |req: axum::extract::Request| {
        let (api, inner, faults) = (api.clone(), inner.clone(), faults.clone());
        async move {
            api.set_outage(faults.metrics_outage());
            match inner.oneshot(req).await {
                Ok(r) => r.into_response(),
                Err(never) => match never {},
            }
        }
    })
}

fn labels_json(m: &std::collections::BTreeMap<String, String>) -> Value {
    json!(m)
}

/// Creates the scenario's namespaces, Deployments and Services, and those
/// of the load tester and the Prometheus.
fn seed_objects(store: &Store, s: &Scenario) -> Result<(), ApiError> {
    let mut namespaces: Vec<(String, Mesh, Value, Value)> = s
        .namespaces
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                n.mesh,
                labels_json(&n.labels),
                labels_json(&n.annotations),
            )
        })
        .collect();
    let referenced = s
        .deployments
        .iter()
        .map(|d| d.namespace.clone())
        .chain(s.services.iter().map(|x| x.namespace.clone()))
        .chain(s.loadtester.iter().map(|l| l.namespace.clone()))
        .chain(s.prometheus.iter().map(|p| p.namespace.clone()))
        .chain(std::iter::once(s.namespace.clone()));
    for ns in referenced {
        if !namespaces.iter().any(|(n, ..)| *n == ns) {
            namespaces.push((ns, Mesh::None, json!({}), json!({})));
        }
    }
    for (name, mesh, mut labels, mut annotations) in namespaces {
        match mesh {
            Mesh::Linkerd => annotations["linkerd.io/inject"] = json!("enabled"),
            Mesh::Istio => labels["istio-injection"] = json!("enabled"),
            Mesh::Kuma => labels["kuma.io/sidecar-injection"] = json!("enabled"),
            Mesh::None => {}
        }
        let exists = store.get("v1", "Namespace", "", &name).is_some();
        if exists {
            store.modify("v1", "Namespace", "", &name, Subresource::Main, |o| {
                for (k, v) in labels.as_object().into_iter().flatten() {
                    o["metadata"]["labels"][k] = v.clone();
                }
                if annotations.as_object().is_some_and(|a| !a.is_empty()) {
                    if !o["metadata"]["annotations"].is_object() {
                        o["metadata"]["annotations"] = json!({});
                    }
                    for (k, v) in annotations.as_object().into_iter().flatten() {
                        o["metadata"]["annotations"][k] = v.clone();
                    }
                }
            })?;
        } else {
            let mut meta = json!({"name": name, "labels": labels});
            if annotations.as_object().is_some_and(|a| !a.is_empty()) {
                meta["annotations"] = annotations;
            }
            store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}))?;
        }
    }
    for d in &s.deployments {
        let labels = if d.labels.is_empty() {
            json!({"app": d.name})
        } else {
            labels_json(&d.labels)
        };
        let ports: Vec<Value> = d
            .ports
            .iter()
            .map(|p| {
                let mut v = json!({"containerPort": p.container_port, "protocol": "TCP"});
                if let Some(n) = &p.name {
                    v["name"] = json!(n);
                }
                v
            })
            .collect();
        let container = d.container.clone().unwrap_or_else(|| d.name.clone());
        store.create(workload(
            &d.name,
            &d.namespace,
            &labels,
            &d.annotations,
            &container,
            &d.image,
            ports,
            d.replicas,
            d.progress_deadline_seconds,
        ))?;
    }
    for svc in &s.services {
        let ports: Vec<Value> = svc
            .ports
            .iter()
            .map(|p| {
                let mut v = json!({
                    "port": p.port,
                    "protocol": "TCP",
                    "targetPort": p.target_port.clone().unwrap_or(json!(p.port)),
                });
                if let Some(n) = &p.name {
                    v["name"] = json!(n);
                }
                v
            })
            .collect();
        store.create(service(
            &svc.name,
            &svc.namespace,
            json!(svc.selector),
            ports,
        ))?;
    }
    if let Some(l) = &s.loadtester {
        let labels = json!({"app": l.name});
        store.create(workload(
            &l.name,
            &l.namespace,
            &labels,
            &Default::default(),
            "loadtester",
            &l.image,
            vec![json!({"name": "http", "containerPort": 8080, "protocol": "TCP"})],
            1,
            None,
        ))?;
        store.create(service(
            &l.name,
            &l.namespace,
            labels,
            vec![json!({"name": "http", "port": l.port, "protocol": "TCP", "targetPort": "http"})],
        ))?;
    }
    if let Some(p) = &s.prometheus {
        let labels = json!({"component": p.name});
        store.create(workload(
            &p.name,
            &p.namespace,
            &labels,
            &Default::default(),
            "prometheus",
            "prom/prometheus:v2.48.1",
            vec![json!({"name": "admin-http", "containerPort": 9090, "protocol": "TCP"})],
            1,
            None,
        ))?;
        store.create(service(
            &p.name,
            &p.namespace,
            labels,
            vec![json!({"name": "admin-http", "port": p.port, "protocol": "TCP", "targetPort": 9090})],
        ))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn workload(
    name: &str,
    namespace: &str,
    labels: &Value,
    annotations: &std::collections::BTreeMap<String, String>,
    container: &str,
    image: &str,
    ports: Vec<Value>,
    replicas: i32,
    progress_deadline: Option<i32>,
) -> Value {
    let mut c = json!({"name": container, "image": image});
    if !ports.is_empty() {
        c["ports"] = Value::Array(ports);
    }
    let mut template_meta = json!({"labels": labels});
    if !annotations.is_empty() {
        template_meta["annotations"] = json!(annotations);
    }
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": template_meta, "spec": {"containers": [c]}},
        },
    });
    if let Some(p) = progress_deadline {
        d["spec"]["progressDeadlineSeconds"] = json!(p);
    }
    d
}

fn service(name: &str, namespace: &str, selector: Value, ports: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    })
}

/// What `canary demo --serve` prints once the world is up.
pub fn demo_banner(world: &World, kubeconfig: &Path) -> String {
    use std::fmt::Write as _;
    let s = world.scenario();
    let kc = kubeconfig.display();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "canary demo: a simulated Kubernetes cluster is running at {}\n",
        world.sim().https_url()
    );
    let mut rows: Vec<(String, String)> = Vec::new();
    for d in &s.deployments {
        rows.push((
            format!("deployment {}/{}", d.namespace, d.name),
            format!(
                "{} ({} replica{})",
                d.image,
                d.replicas,
                if d.replicas == 1 { "" } else { "s" }
            ),
        ));
    }
    if let Some(l) = &s.loadtester {
        rows.push((
            format!("load tester {}/{}", l.namespace, l.name),
            format!("http://{}.{}/", l.name, l.namespace),
        ));
    }
    if let Some(p) = &s.prometheus {
        rows.push((
            format!("prometheus {}/{}", p.namespace, p.name),
            format!("http://{}.{}:{}", p.name, p.namespace, p.port),
        ));
    }
    for t in &s.traffic {
        let to = match (&t.service, &t.host) {
            (Some(svc), _) => format!(
                "service {}/{}{}",
                t.namespace,
                svc,
                t.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
            (None, Some(h)) => format!("host {h}"),
            _ => continue,
        };
        rows.push((
            "traffic".to_string(),
            format!("{} req/s to {to} (once it exists)", t.rps),
        ));
    }
    let behaviours = s.behaviours();
    for key in s.behaviours.keys() {
        let b = behaviours.for_image(&format!("x/x:{key}"));
        let what = if b.broken {
            "never becomes ready".to_string()
        } else {
            let a = b.answer;
            let fail = (1.0 - a.success_rate) * 100.0;
            let errors = if fail > 0.0 {
                format!("{fail:.0}% errors, ")
            } else {
                String::new()
            };
            format!(
                "{errors}median {} ms, p99 {} ms",
                a.median_ms.round(),
                a.p99_ms.round()
            )
        };
        rows.push((format!("version {key}"), what));
    }
    rows.push(("kubeconfig".to_string(), kc.to_string()));
    rows.push((
        "metric services".to_string(),
        format!(
            "{}/TYPE (datadog, newrelic, graphite, dynatrace, influxdb: a MetricTemplate's address)",
            world.providers_url()
        ),
    ));
    rows.push((
        "metrics".to_string(),
        format!("{} (for a real Prometheus)", world.metrics_url()),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    let _ = writeln!(out, "\nFrom another terminal:\n");
    let _ = writeln!(out, "  export KUBECONFIG={kc}");
    if let Some(d) = s.deployments.first() {
        let _ = writeln!(out, "  kubectl get deploy -n {}", d.namespace);
        let current_tag = d.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        let next = s.behaviours.iter().find(|(k, b)| {
            k.as_str() != current_tag && !b.broken && b.success_rate.is_none_or(|r| r.0 >= 0.999)
        });
        if let (Some((tag, _)), Some((repo, _))) = (next, d.image.rsplit_once(':')) {
            let container = d.container.clone().unwrap_or_else(|| d.name.clone());
            let _ = writeln!(
                out,
                "  kubectl -n {} set image deployment/{} {container}={repo}:{tag}",
                d.namespace, d.name
            );
        }
    }
    let _ = writeln!(out, "\nPress Ctrl-C to stop.");
    out
}
