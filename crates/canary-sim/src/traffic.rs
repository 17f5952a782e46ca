//! The traffic model: requests flow from clients to Services, through
//! whichever router object exists (SMI TrafficSplit, Gateway API HTTPRoute,
//! Istio VirtualService, NGINX canary Ingress), to a Ready pod the chosen
//! Service selects. The pod's image decides the answer (success rate,
//! latency distribution, changes over time, from the scenario) and the
//! path can override it the way podinfo's API does (`/status/500`,
//! `/delay/1`, `/token`).
//!
//! Every answer is recorded in the [`SeriesStore`] as the destination's
//! mesh would: Linkerd's `response_total`, `request_total` and
//! `response_latency_ms` (for pods in a namespace annotated
//! `linkerd.io/inject: enabled`), Istio's `istio_requests_total` and
//! `istio_request_duration_milliseconds` (namespaces labelled
//! `istio-injection: enabled`), and, for requests entering through an
//! Ingress, the NGINX ingress controller's
//! `nginx_ingress_controller_requests`,
//! `nginx_ingress_controller_ingress_upstream_latency_seconds` and
//! `nginx_ingress_controller_response_duration_seconds` (with `canary` set
//! for the canary ingress's traffic). Pods in a Kuma namespace (labelled
//! `kuma.io/sidecar-injection: enabled`) record their sidecar's inbound
//! `envoy_cluster_upstream_rq` and `envoy_cluster_upstream_rq_time`, with
//! the `service` label Kuma's Prometheus discovery sets to the Kuma service
//! (`<svc>_<namespace>_svc_<port>`) the request was sent to; a Kuma
//! TrafficRoute for a Service's Kuma service splits the traffic aimed at
//! it. Requests for a host an ApisixRoute serves go through the APISIX
//! gateway: the matching route of highest priority picks a backend by
//! weight, and APISIX's `apisix_http_status` and `apisix_http_latency`
//! are recorded with the route's name as the ingress controller sets it
//! (`<namespace>_<ApisixRoute>_<http route>`). Skipper serves the
//! Ingresses of its class by host (see [`edge`]). Label sets are those
//! Flagger's built-in queries select on, plus the usual neighbours.
//!
//! The headers a route adds to the answer (Istio's `headers.response` on
//! the route and the chosen destination, the Gateway API's
//! `ResponseHeaderModifier` filters on the rule and the chosen backend)
//! come back in [`Response::headers`], so a client can keep a cookie a
//! route sets and send it again.
//!
//! Two sources of requests run on the traffic task's tick: steady flows
//! (the scenario's `traffic`) and load jobs (the load tester's `hey`),
//! whose workers pace themselves like hey's (`-q` per worker, never faster
//! than the answers come back). Single requests (`curl`) go through
//! [`Traffic::request`]. Random choices come from one seeded generator.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::watch;

use crate::scenario::{Behaviours, Rng, TrafficSpec};
use crate::series::{Matcher, SeriesStore, now_ms};
use crate::store::{Change, ChangeType, Store};

mod edge;
use edge::EdgeKind;

/// Linkerd proxy's latency histogram bounds (ms).
pub const LINKERD_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0,
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];

/// Istio's default `istio_request_duration_milliseconds` bounds.
pub const ISTIO_BUCKETS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Envoy's default histogram bounds (ms), as Kuma's sidecars export them.
pub const ENVOY_BUCKETS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// APISIX's default `http_latency` bounds (ms).
pub const APISIX_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0,
    60000.0,
];

/// ingress-nginx's `response_duration_seconds` bounds (Prometheus' defaults).
pub const NGINX_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Where a request is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A Service by name; `port` is a Service port (its first when `None`).
    Service {
        namespace: String,
        name: String,
        port: Option<u16>,
    },
    /// A URL's host as a pod in `namespace` resolves it: `svc`, `svc.ns`,
    /// `svc.ns.svc[.cluster.local]`, or a host name served by an Ingress,
    /// VirtualService or HTTPRoute. `port` 80 when `None`.
    Host {
        host: String,
        port: Option<u16>,
        namespace: String,
    },
}

/// The workload a request comes from (Istio's `source_*` labels).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    pub workload: String,
    pub namespace: String,
}

/// One HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub target: Target,
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub source: Source,
}

impl Request {
    pub fn get(target: Target, path: &str) -> Request {
        Request {
            target,
            method: "GET".to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            source: Source::default(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The HTTP status; 0 when no answer came (see `error`).
    pub status: u16,
    pub latency: Duration,
    pub body: String,
    /// Why no answer came, as Go's HTTP client words it.
    pub error: Option<String>,
    /// The pod that answered.
    pub pod: Option<String>,
    /// Headers the routers added to the answer (`Set-Cookie` ...).
    pub headers: Vec<(String, String)>,
}

impl Response {
    fn failed(error: String) -> Response {
        Response {
            status: 0,
            latency: Duration::ZERO,
            body: String::new(),
            error: Some(error),
            pod: None,
            headers: Vec::new(),
        }
    }
}

/// A steady stream of requests.
#[derive(Debug, Clone)]
pub struct Flow {
    pub request: Request,
    /// Requests per second.
    pub rps: f64,
    carry: f64,
}

impl Flow {
    pub fn new(request: Request, rps: f64) -> Flow {
        Flow {
            request,
            rps,
            carry: 0.0,
        }
    }

    pub fn from_spec(s: &TrafficSpec) -> Flow {
        let target = match (&s.service, &s.host) {
            (Some(svc), _) => Target::Service {
                namespace: s.namespace.clone(),
                name: svc.clone(),
                port: s.port,
            },
            (None, Some(host)) => Target::Host {
                host: host.clone(),
                port: s.port,
                namespace: s.namespace.clone(),
            },
            (None, None) => Target::Host {
                host: String::new(),
                port: None,
                namespace: s.namespace.clone(),
            },
        };
        let mut request = Request::get(target, &s.path);
        request.method = s.method.clone();
        request.headers = s
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        request.source = Source {
            workload: "unknown".to_string(),
            namespace: s.namespace.clone(),
        };
        Flow::new(request, s.rps)
    }
}

/// A hey-like load: `concurrency` workers, each at most `qps` requests per
/// second, for `duration` or until `requests` were sent.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub request: Request,
    pub concurrency: u32,
    /// Per worker; unlimited (as fast as answers come) when `None`.
    pub qps: Option<f64>,
    pub duration: Option<Duration>,
    /// Total requests when no duration is given (hey's `-n`, default 200).
    pub requests: u64,
    /// Per-request timeout (hey's `-t`, default 20 s).
    pub timeout: Duration,
}

/// What a load job saw, as hey summarises it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    pub total: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    pub latency_sum: Duration,
    pub fastest: Option<Duration>,
    pub slowest: Option<Duration>,
    pub elapsed: Duration,
    pub finished: bool,
}

impl LoadStats {
    fn add(&mut self, r: &Response) {
        self.total += 1;
        match &r.error {
            Some(e) => *self.errors.entry(e.clone()).or_default() += 1,
            None => {
                *self.by_status.entry(r.status).or_default() += 1;
                self.latency_sum += r.latency;
                self.fastest = Some(self.fastest.map_or(r.latency, |f| f.min(r.latency)));
                self.slowest = Some(self.slowest.map_or(r.latency, |s| s.max(r.latency)));
            }
        }
    }

    /// hey's summary text.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let answered: u64 = self.by_status.values().sum();
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        let avg = if answered > 0 {
            self.latency_sum.as_secs_f64() / answered as f64
        } else {
            0.0
        };
        let total = self.elapsed.as_secs_f64();
        let rps = if total > 0.0 {
            self.total as f64 / total
        } else {
            0.0
        };
        let mut out = String::new();
        let _ = writeln!(out, "\nSummary:");
        let _ = writeln!(out, "  Total:\t{total:.4} secs");
        let _ = writeln!(out, "  Slowest:\t{:.4} secs", secs(self.slowest));
        let _ = writeln!(out, "  Fastest:\t{:.4} secs", secs(self.fastest));
        let _ = writeln!(out, "  Average:\t{avg:.4} secs");
        let _ = writeln!(out, "  Requests/sec:\t{rps:.4}");
        let _ = writeln!(out, "\n\nStatus code distribution:");
        for (code, n) in &self.by_status {
            let _ = writeln!(out, "  [{code}]\t{n} responses");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (e, n) in &self.errors {
                let _ = writeln!(out, "  [{n}]\t{e}");
            }
        }
        out
    }
}

/// A running load job, shared with whoever started it.
#[derive(Debug, Clone)]
pub struct LoadHandle {
    stats: Arc<Mutex<LoadStats>>,
    done: watch::Receiver<bool>,
}

impl LoadHandle {
    pub fn stats(&self) -> LoadStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for the job to end and returns its statistics.
    pub async fn wait(&self) -> LoadStats {
        let mut rx = self.done.clone();
        let _ = rx.wait_for(|d| *d).await;
        self.stats()
    }
}

struct LoadJob {
    spec: LoadSpec,
    started: Instant,
    /// Next send time of each worker.
    workers: Vec<Instant>,
    /// When each worker's last answer arrives.
    busy_until: Vec<Instant>,
    sent: u64,
    stats: Arc<Mutex<LoadStats>>,
    done: watch::Sender<bool>,
}

/// The traffic model of one world.
pub struct Traffic {
    store: Arc<Store>,
    series: Arc<SeriesStore>,
    behaviours: Arc<Behaviours>,
    inner: Mutex<Inner>,
    /// The cluster as the routing sees it, kept up to date from the
    /// store's changes: a tick reads nothing that did not change.
    view: Mutex<View>,
}

struct View {
    cluster: Option<Arc<Cluster>>,
    changes: broadcast::Receiver<Arc<Change>>,
}

struct Inner {
    rng: Rng,
    flows: Vec<Flow>,
    loads: Vec<LoadJob>,
    /// When each pod (by uid) was first seen Ready.
    ready_seen: HashMap<String, Instant>,
    /// Pods with series, to end them (staleness) when the pod goes.
    pods_with_series: HashSet<(String, String)>,
    last_tick: Option<Instant>,
}

impl Traffic {
    pub fn new(
        store: Arc<Store>,
        series: Arc<SeriesStore>,
        behaviours: Arc<Behaviours>,
        seed: u64,
    ) -> Arc<Traffic> {
        for (name, help) in [
            ("response_total", "Total count of HTTP responses."),
            ("request_total", "Total count of HTTP requests."),
            (
                "response_latency_ms",
                "Elapsed times between a request's headers being received and its response stream completing",
            ),
            ("istio_requests_total", "requests_total"),
            (
                "istio_request_duration_milliseconds",
                "request_duration_milliseconds",
            ),
            (
                "nginx_ingress_controller_requests",
                "The total number of client requests",
            ),
            (
                "nginx_ingress_controller_ingress_upstream_latency_seconds",
                "Upstream service latency per Ingress",
            ),
            (
                "nginx_ingress_controller_response_duration_seconds",
                "The time spent on receiving the response from the upstream server",
            ),
            (
                "apisix_http_status",
                "HTTP status codes per service in APISIX",
            ),
            (
                "apisix_http_latency",
                "HTTP request latency in milliseconds per service in APISIX",
            ),
        ]
        .into_iter()
        .chain(edge::HELP.iter().copied())
        {
            series.set_help(name, help);
        }
        let changes = store.subscribe();
        Arc::new(Traffic {
            store,
            series,
            behaviours,
            view: Mutex::new(View {
                cluster: None,
                changes,
            }),
            inner: Mutex::new(Inner {
                rng: Rng::derive(seed, "traffic"),
                flows: Vec::new(),
                loads: Vec::new(),
                ready_seen: HashMap::new(),
                pods_with_series: HashSet::new(),
                last_tick: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster as the routing sees it, with every change committed so
    /// far: the changed objects are applied to the last view (read whole
    /// the first time, after a Namespace change, or when changes were
    /// missed).
    fn cluster(&self) -> Arc<Cluster> {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let mut whole = view.cluster.is_none();
        let mut changes = Vec::new();
        loop {
            match view.changes.try_recv() {
                Ok(c) => changes.push(c),
                Err(TryRecvError::Lagged(_)) => whole = true,
                Err(_) => break,
            }
        }
        if !whole && !changes.is_empty() {
            let cluster = view.cluster.as_mut().expect("read before");
            whole = !Arc::make_mut(cluster).apply(&self.store, &changes);
        }
        if whole {
            // Changes committed from here on are applied on top again,
            // which leaves each object as it last was.
            while view.changes.try_recv().is_ok() {}
            view.cluster = Some(Arc::new(Cluster::read(&self.store)));
        }
        view.cluster.clone().expect("read")
    }

    /// Adds a steady flow.
    pub fn add_flow(&self, flow: Flow) {
        self.lock().flows.push(flow);
    }

    /// Sends one request now and records it.
    pub fn request(&self, req: &Request) -> Response {
        let cluster = self.cluster();
        let now = Instant::now();
        let mut g = self.lock();
        note_ready(&mut g, &cluster, now);
        let mut rec = Recorder::default();
        let r = self.send(&mut g, &cluster, req, now, &mut rec);
        self.flush(&mut g, rec);
        r
    }

    /// Starts a load job (served on the traffic task's ticks).
    pub fn start_load(&self, spec: LoadSpec) -> LoadHandle {
        let (tx, rx) = watch::channel(false);
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let now = Instant::now();
        let workers = vec![now; spec.concurrency.max(1) as usize];
        self.lock().loads.push(LoadJob {
            spec,
            started: now,
            busy_until: workers.clone(),
            workers,
            sent: 0,
            stats: stats.clone(),
            done: tx,
        });
        LoadHandle { stats, done: rx }
    }

    /// Runs ticks every `interval` until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.stop_all();
                    return;
                }
                _ = ticker.tick() => self.tick(),
            }
        }
    }

    fn stop_all(&self) {
        let mut g = self.lock();
        for job in g.loads.drain(..) {
            if let Ok(mut s) = job.stats.lock() {
                s.finished = true;
                s.elapsed = job.started.elapsed();
            }
            let _ = job.done.send(true);
        }
    }

    /// One tick: the flows' requests since the last tick, the load jobs'
    /// due requests, then everything is recorded at once.
    pub fn tick(&self) {
        let cluster = self.cluster();
        let now = Instant::now();
        let mut g = self.lock();
        let dt = g
            .last_tick
            .map_or(Duration::ZERO, |t| now.duration_since(t));
        g.last_tick = Some(now);
        note_ready(&mut g, &cluster, now);
        let mut rec = Recorder::default();
        // Flows: rate × elapsed, the fraction carried over.
        let mut flows = std::mem::take(&mut g.flows);
        for f in &mut flows {
            f.carry += f.rps * dt.as_secs_f64();
            let n = f.carry.floor();
            f.carry -= n;
            for _ in 0..n as u64 {
                self.send(&mut g, &cluster, &f.request, now, &mut rec);
            }
        }
        g.flows = flows;
        // Load jobs: each worker sends whenever it is due and its previous
        // answer is back.
        let mut jobs = std::mem::take(&mut g.loads);
        for job in &mut jobs {
            let min_gap = job
                .spec
                .qps
                .filter(|q| *q > 0.0)
                .map_or(Duration::from_millis(5), |q| {
                    Duration::from_secs_f64(1.0 / q)
                });
            let end = job.spec.duration.map(|d| job.started + d);
            let more = |job: &LoadJob, at: Instant| match end {
                Some(e) => at < e,
                None => job.sent < job.spec.requests,
            };
            for w in 0..job.workers.len() {
                while job.workers[w] <= now && more(job, job.workers[w]) {
                    let at = job.workers[w];
                    let mut r = self.send(&mut g, &cluster, &job.spec.request, now, &mut rec);
                    if r.error.is_none() && r.latency > job.spec.timeout {
                        r = Response {
                            error: Some(format!(
                                "{} \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                                go_method(&job.spec.request.method),
                                describe_url(&job.spec.request)
                            )),
                            status: 0,
                            ..r
                        };
                    }
                    job.sent += 1;
                    let busy = if r.error.is_some() {
                        job.spec
                            .timeout
                            .min(r.latency)
                            .max(Duration::from_millis(1))
                    } else {
                        r.latency
                    };
                    job.busy_until[w] = at + busy;
                    job.workers[w] = (at + min_gap).max(at + busy);
                    job.stats.lock().unwrap_or_else(|e| e.into_inner()).add(&r);
                }
            }
            // Done when nothing more is due and the answers in flight are in.
            let sending_over = job.workers.iter().all(|t| !more(job, *t));
            let in_flight = job.busy_until.iter().any(|t| *t > now);
            if sending_over && !in_flight {
                let mut s = job.stats.lock().unwrap_or_else(|e| e.into_inner());
                s.finished = true;
                s.elapsed = now.duration_since(job.started);
                drop(s);
                let _ = job.done.send(true);
            }
        }
        jobs.retain(|j| !*j.done.borrow());
        g.loads = jobs;
        // Pods that went away: their series end, as when Prometheus loses
        // a scrape target.
        let gone: Vec<(String, String)> = g
            .pods_with_series
            .iter()
            .filter(|(ns, name)| cluster.pods.get(ns).is_none_or(|m| !m.contains_key(name)))
            .cloned()
            .collect();
        let at = now_ms();
        for (ns, pod) in gone {
            self.series.mark_stale(
                &[
                    Matcher::equal("namespace", &ns),
                    Matcher::equal("pod", &pod),
                ],
                at,
            );
            g.pods_with_series.remove(&(ns, pod));
        }
        g.ready_seen.retain(|uid, _| cluster.pod_uids.contains(uid));
        self.flush(&mut g, rec);
        self.series.advance_to(at);
    }

    /// Records what a tick (or a request) sent, in one batch.
    fn flush(&self, g: &mut Inner, rec: Recorder) {
        let at = now_ms();
        for (_, key) in rec.pods {
            g.pods_with_series.insert(key);
        }
        let mut batch = self.series.batch();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for e in &rec.entries {
            pairs.clear();
            pairs.extend(e.labels.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            match &e.what {
                Record::Count(n) => batch.counter_add(e.name, &pairs, *n, at),
                Record::Histogram(buckets, obs) => {
                    let obs: Vec<(f64, u64)> = obs.iter().map(|v| (*v, 1)).collect();
                    batch.histogram_observe_many(e.name, &pairs, &obs, buckets, at);
                }
                Record::Summary(obs) => {
                    for v in obs {
                        batch.summary_observe_many(e.name, &pairs, &[(*v, 1)], at);
                    }
                }
            }
        }
    }

    // -- one request ---------------------------------------------------------

    fn send(
        &self,
        g: &mut Inner,
        c: &Cluster,
        req: &Request,
        now: Instant,
        rec: &mut Recorder,
    ) -> Response {
        // Where an HTTPRoute rule mirrors the request: copies sent once the
        // answer is known, their answers dropped.
        let mut fx = Effects::default();
        let entry = match self.entry(c, req, &mut g.rng, &mut fx) {
            Ok(e) => e,
            Err(e) => return Response::failed(e),
        };
        let mut answer = self.send_entry(g, c, req, entry, now, rec, &mut fx);
        // The headers the route adds to an answer that came.
        if answer.error.is_none() {
            answer.headers.extend(fx.response_headers);
        }
        for (ns, svc, port) in fx.mirrors {
            let authority = format!("{svc}.{ns}.svc.cluster.local");
            let _ = self.to_service(g, c, req, &ns, &svc, port, &authority, None, now, rec);
        }
        answer
    }

    #[allow(clippy::too_many_arguments)]
    fn send_entry(
        &self,
        g: &mut Inner,
        c: &Cluster,
        req: &Request,
        entry: Entry,
        now: Instant,
        rec: &mut Recorder,
        fx: &mut Effects,
    ) -> Response {
        match entry {
            Entry::Service {
                ns,
                name,
                port,
                authority,
            } => {
                let Some((_, port)) = c.service_port(&ns, &name, port) else {
                    return Response::failed(refused(c, &ns, &name, port.unwrap_or(80)));
                };
                // The mesh's routers apply to traffic aimed at the apex.
                let backend = mesh_route(c, &ns, &name, req, &mut g.rng, fx);
                // A flow aimed at a Service that an NGINX Ingress serves
                // enters through the ingress controller.
                if backend.is_none()
                    && matches!(req.target, Target::Service { .. })
                    && let Some(hit) = c.ingress_to_service(&ns, &name)
                {
                    return self.through_ingress(g, c, req, hit, now, rec);
                }
                let (bns, bname) = match backend {
                    Some(Routed::To(bns, bname)) => (bns, bname),
                    Some(Routed::Nowhere) => {
                        return answer_503("no healthy upstream");
                    }
                    None => (ns.clone(), name.clone()),
                };
                let mirror = mesh_mirror(c, &ns, &name, req, &mut g.rng);
                let answer = self.to_service(
                    g,
                    c,
                    req,
                    &bns,
                    &bname,
                    Some(port),
                    &authority,
                    None,
                    now,
                    rec,
                );
                // The shadow copy: answered and recorded by the mirror's
                // pods, its answer dropped (Envoy adds `-shadow` to the
                // authority).
                if let Some((mns, mname)) = mirror {
                    self.to_service(
                        g,
                        c,
                        req,
                        &mns,
                        &mname,
                        Some(port),
                        &format!("{authority}-shadow"),
                        None,
                        now,
                        rec,
                    );
                }
                answer
            }
            Entry::Ingress(hit) => self.through_ingress(g, c, req, *hit, now, rec),
            Entry::Apisix(hit) => {
                let (ns, svc, port) = (hit.namespace.clone(), hit.service.clone(), hit.port);
                let r = self.to_service(g, c, req, &ns, &svc, port, &hit.host, None, now, rec);
                let status = if r.error.is_some() { 502 } else { r.status };
                rec.apisix(&hit, status, r.latency.as_secs_f64() * 1000.0);
                if r.error.is_some() {
                    return answer_503("502 Bad Gateway");
                }
                r
            }
            Entry::Routed {
                ns,
                name,
                port,
                authority,
            } => self.to_service(g, c, req, &ns, &name, port, &authority, None, now, rec),
            Entry::Edge(hit) => self.through_edge(g, c, req, *hit, now, rec),
        }
    }

    /// A request through the NGINX ingress controller: the canary Ingress
    /// decides, then the chosen backend Service's pods answer.
    fn through_ingress(
        &self,
        g: &mut Inner,
        c: &Cluster,
        req: &Request,
        hit: IngressHit,
        now: Instant,
        rec: &mut Recorder,
    ) -> Response {
        let canary = hit
            .canary
            .as_ref()
            .is_some_and(|cn| nginx_use_canary(cn, req, &mut g.rng));
        let (svc, port) = match (&hit.canary, canary) {
            (Some(cn), true) => (cn.service.clone(), cn.port.clone()),
            _ => (hit.service.clone(), hit.port.clone()),
        };
        let ns = hit.namespace.clone();
        let svc_port = match &port {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(pn) => c.services.get(&(ns.clone(), svc.clone())).and_then(|s| {
                s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == pn.as_str())
                    .and_then(|p| p["port"].as_u64())
                    .map(|p| p as u16)
            }),
        };
        let nginx = NginxHit {
            namespace: ns.clone(),
            ingress: hit.main.clone(),
            service: svc.clone(),
            canary: canary.then(|| format!("{ns}-{svc}-{}", svc_port.unwrap_or(80))),
            host: hit.host.clone(),
            path: hit.path.clone(),
        };
        let authority = hit.host.clone();
        self.to_service(
            g,
            c,
            req,
            &ns,
            &svc,
            svc_port,
            &authority,
            Some(nginx),
            now,
            rec,
        )
    }

    /// Where a request enters the cluster's routing.
    fn entry(
        &self,
        c: &Cluster,
        req: &Request,
        rng: &mut Rng,
        fx: &mut Effects,
    ) -> Result<Entry, String> {
        match &req.target {
            Target::Service {
                namespace,
                name,
                port,
            } => {
                let port = port.or_else(|| c.first_port(namespace, name));
                Ok(Entry::Service {
                    authority: format!(
                        "{name}.{namespace}.svc.cluster.local:{}",
                        port.unwrap_or(80)
                    ),
                    ns: namespace.clone(),
                    name: name.clone(),
                    port,
                })
            }
            Target::Host {
                host,
                port,
                namespace,
            } => {
                let host_header = req
                    .header("host")
                    .map(|h| h.split(':').next().unwrap_or(h).to_string());
                let path = req.path.split('?').next().unwrap_or("/");
                // A Host header naming an ingress host: the URL is the
                // ingress controller.
                if let Some(h) = &host_header
                    && h != host
                    && let Some(hit) = c.ingress_for(h, path)
                {
                    return Ok(Entry::Ingress(Box::new(hit)));
                }
                if let Some((ns, name)) = c.resolve_service(host, namespace) {
                    let p = port.unwrap_or(80);
                    return Ok(Entry::Service {
                        authority: format!("{host}:{p}"),
                        ns,
                        name,
                        port: Some(p),
                    });
                }
                if let Some(routed) = edge::skipper_route(c, host, req, rng) {
                    return Ok(Entry::Edge(Box::new(routed)));
                }
                if let Some(hit) = c.ingress_for(host, path) {
                    return Ok(Entry::Ingress(Box::new(hit)));
                }
                if let Some(hit) = apisix_route(c, host, path, rng) {
                    return Ok(Entry::Apisix(Box::new(hit)));
                }
                if let Some(routed) = edge::contour_route(c, host, req, rng) {
                    return Ok(Entry::Edge(Box::new(routed)));
                }
                if let Some(routed) = edge::traefik_route(c, host, req, rng) {
                    return Ok(Entry::Edge(Box::new(routed)));
                }
                if let Some(routed) = edge::gloo_route(c, host, req, rng) {
                    return Ok(Entry::Edge(Box::new(routed)));
                }
                if let Some(routed) = edge::knative_route(c, host, rng) {
                    return Ok(Entry::Edge(Box::new(routed)));
                }
                if let Some(routed) = gateway_route(c, host, req, rng, fx) {
                    return match routed {
                        (Routed::To(ns, name), p) => Ok(Entry::Routed {
                            authority: host.clone(),
                            ns,
                            name,
                            port: p,
                        }),
                        (Routed::Nowhere, _) => Err(format!(
                            "{} \"{}\": EOF",
                            go_method(&req.method),
                            describe_url(req)
                        )),
                    };
                }
                Err(format!(
                    "{} \"{}\": dial tcp: lookup {host} on 10.96.0.10:53: no such host",
                    go_method(&req.method),
                    describe_url(req)
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn to_service(
        &self,
        g: &mut Inner,
        c: &Cluster,
        req: &Request,
        ns: &str,
        svc_name: &str,
        port: Option<u16>,
        authority: &str,
        nginx: Option<NginxHit>,
        now: Instant,
        rec: &mut Recorder,
    ) -> Response {
        let Some((svc, port)) = c.service_port(ns, svc_name, port) else {
            if let Some(n) = &nginx {
                rec.nginx(n, req, 503, 0.0);
                return answer_503("503 Service Temporarily Unavailable");
            }
            return Response::failed(refused(c, ns, svc_name, port.unwrap_or(80)));
        };
        let endpoints = c.endpoints(ns, svc);
        if endpoints.is_empty() {
            if let Some(n) = &nginx {
                rec.nginx(n, req, 503, 0.0);
                return answer_503("503 Service Temporarily Unavailable");
            }
            if c.meshed(&req.source.namespace) {
                return answer_503("");
            }
            return Response::failed(refused(c, ns, svc_name, port));
        }
        let pod = endpoints[g.rng.below(endpoints.len())];
        let ready_for = g
            .ready_seen
            .get(&pod.uid)
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(*t));
        let image = pod.image_for_port(target_port(svc, port)).to_string();
        let answer = self.behaviours.for_image(&image).at(ready_for);
        let (status, latency_ms, body) = serve(pod, &image, req, answer, &mut g.rng);
        let target_port = pod_port(pod, svc, port);
        let fqdn = format!("{svc_name}.{ns}.svc.cluster.local");
        if pod.linkerd {
            rec.linkerd(pod, authority, target_port, status, latency_ms);
        }
        if pod.istio {
            rec.istio(
                pod,
                &fqdn,
                svc_name,
                ns,
                &req.source,
                c.istio(&req.source.namespace),
                status,
                latency_ms,
            );
        }
        if let Some(n) = &nginx {
            rec.nginx(n, req, status, latency_ms);
        }
        if pod.kuma {
            rec.kuma(pod, svc_name, port, target_port, status, latency_ms);
        }
        rec.pod(pod);
        Response {
            status,
            latency: Duration::from_secs_f64(latency_ms / 1000.0),
            body,
            error: None,
            pod: Some(pod.name.clone()),
            headers: Vec::new(),
        }
    }
}

/// Starts the traffic task with the scenario's flows.
pub fn spawn(
    traffic: Arc<Traffic>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(traffic.run(interval, shutdown))
}

fn answer_503(body: &str) -> Response {
    Response {
        status: 503,
        latency: Duration::from_millis(1),
        body: body.to_string(),
        error: None,
        pod: None,
        headers: Vec::new(),
    }
}

fn refused(c: &Cluster, ns: &str, svc: &str, port: u16) -> String {
    let ip = c
        .services
        .get(&(ns.to_string(), svc.to_string()))
        .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_string))
        .unwrap_or_else(|| "10.96.0.1".to_string());
    format!("dial tcp {ip}:{port}: connect: connection refused")
}

fn go_method(m: &str) -> String {
    let m = m.to_ascii_uppercase();
    // Go's client error text capitalises the method: `Get "http://..."`.
    let mut c = m.chars();
    match c.next() {
        Some(f) => f.to_string() + &c.as_str().to_ascii_lowercase(),
        None => "Get".to_string(),
    }
}

fn describe_url(req: &Request) -> String {
    match &req.target {
        Target::Service {
            namespace,
            name,
            port,
        } => {
            format!(
                "http://{name}.{namespace}:{}{}",
                port.unwrap_or(80),
                req.path
            )
        }
        Target::Host { host, port, .. } => match port {
            Some(p) => format!("http://{host}:{p}{}", req.path),
            None => format!("http://{host}{}", req.path),
        },
    }
}

fn note_ready(g: &mut Inner, c: &Cluster, now: Instant) {
    for p in c.pods.values().flat_map(BTreeMap::values) {
        if p.ready && !g.ready_seen.contains_key(&p.uid) {
            g.ready_seen.insert(p.uid.clone(), now);
        }
    }
}

// ---------------------------------------------------------------------------
// The cluster as one tick sees it.
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct PodInfo {
    name: String,
    namespace: String,
    uid: String,
    labels: Map<String, Value>,
    ready: bool,
    ip: String,
    /// (image, container ports as (name, number)).
    containers: Vec<(String, Vec<(String, u16)>)>,
    /// (label, name): ("deployment", "podinfo"), ("daemonset", ...).
    workload: Option<(&'static str, String)>,
    template_hash: String,
    linkerd: bool,
    istio: bool,
    kuma: bool,
}

impl PodInfo {
    fn image_for_port(&self, port: Option<u16>) -> &str {
        port.and_then(|p| {
            self.containers
                .iter()
                .find(|(_, ports)| ports.iter().any(|(_, n)| *n == p))
        })
        .or(self.containers.first())
        .map_or("", |(i, _)| i.as_str())
    }

    fn workload_name(&self) -> &str {
        self.workload
            .as_ref()
            .map_or(self.name.as_str(), |(_, n)| n.as_str())
    }

    fn label(&self, k: &str) -> &str {
        self.labels.get(k).and_then(Value::as_str).unwrap_or("")
    }
}

/// The kinds of router the traffic follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Router {
    TrafficSplit,
    HttpRoute,
    VirtualService,
    Ingress,
    TrafficRoute,
    ApisixRoute,
}

impl Router {
    const ALL: [Router; 6] = [
        Router::ApisixRoute,
        Router::TrafficSplit,
        Router::HttpRoute,
        Router::VirtualService,
        Router::Ingress,
        Router::TrafficRoute,
    ];

    /// Group, versions (preferred first) and kind.
    fn kind(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            Router::TrafficSplit => (
                "split.smi-spec.io",
                &["v1alpha3", "v1alpha2", "v1alpha1"],
                "TrafficSplit",
            ),
            Router::HttpRoute => ("gateway.networking.k8s.io", &["v1", "v1beta1"], "HTTPRoute"),
            Router::VirtualService => (
                "networking.istio.io",
                &["v1", "v1beta1", "v1alpha3"],
                "VirtualService",
            ),
            Router::Ingress => ("networking.k8s.io", &["v1"], "Ingress"),
            Router::TrafficRoute => ("kuma.io", &["v1alpha1"], "TrafficRoute"),
            Router::ApisixRoute => ("apisix.apache.org", &["v2"], "ApisixRoute"),
        }
    }
}

#[derive(Clone)]
struct Cluster {
    namespaces: HashMap<String, Value>,
    services: HashMap<(String, String), Value>,
    /// By namespace, then name.
    pods: HashMap<String, BTreeMap<String, PodInfo>>,
    pod_uids: HashSet<String>,
    splits: Vec<Value>,
    httproutes: Vec<Value>,
    virtualservices: Vec<Value>,
    ingresses: Vec<Value>,
    trafficroutes: Vec<Value>,
    apisixroutes: Vec<Value>,
    /// Edge proxies' resources, by kind.
    edge: BTreeMap<EdgeKind, Vec<Value>>,
}

impl Cluster {
    fn read(store: &Store) -> Cluster {
        let namespaces: HashMap<String, Value> = store
            .list("v1", "Namespace", None)
            .into_iter()
            .map(|n| (n["metadata"]["name"].as_str().unwrap_or("").to_string(), n))
            .collect();
        let services = store
            .list("v1", "Service", None)
            .into_iter()
            .map(|s| {
                (
                    (
                        s["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        s["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ),
                    s,
                )
            })
            .collect();
        let mut pods: HashMap<String, BTreeMap<String, PodInfo>> = HashMap::new();
        let mut pod_uids = HashSet::new();
        for p in store.list("v1", "Pod", None) {
            let info = pod_info(&p, &namespaces);
            pod_uids.insert(info.uid.clone());
            pods.entry(info.namespace.clone())
                .or_default()
                .insert(info.name.clone(), info);
        }
        let mut c = Cluster {
            namespaces,
            services,
            pods,
            pod_uids,
            splits: Vec::new(),
            httproutes: Vec::new(),
            virtualservices: Vec::new(),
            ingresses: Vec::new(),
            trafficroutes: Vec::new(),
            apisixroutes: Vec::new(),
            edge: BTreeMap::new(),
        };
        for r in Router::ALL {
            c.relist(store, r);
        }
        for k in EdgeKind::ALL {
            c.relist_edge(store, k);
        }
        c
    }

    /// Reads an edge proxy's resources of one kind again.
    fn relist_edge(&mut self, store: &Store, k: EdgeKind) {
        let (group, versions, kind) = k.kind();
        let items = versions
            .iter()
            .find_map(|v| {
                let av = format!("{group}/{v}");
                store
                    .kind(&av, kind)
                    .ok()
                    .map(|_| store.list(&av, kind, None))
            })
            .unwrap_or_default();
        self.edge.insert(k, items);
    }

    /// The edge proxy resources of one kind.
    fn edge(&self, k: EdgeKind) -> &[Value] {
        self.edge.get(&k).map_or(&[], Vec::as_slice)
    }

    /// Reads the routers of one kind again.
    fn relist(&mut self, store: &Store, router: Router) {
        let (group, versions, kind) = router.kind();
        let items = versions
            .iter()
            .find_map(|v| {
                let av = format!("{group}/{v}");
                store
                    .kind(&av, kind)
                    .ok()
                    .map(|_| store.list(&av, kind, None))
            })
            .unwrap_or_default();
        *match router {
            Router::TrafficSplit => &mut self.splits,
            Router::HttpRoute => &mut self.httproutes,
            Router::VirtualService => &mut self.virtualservices,
            Router::Ingress => &mut self.ingresses,
            Router::TrafficRoute => &mut self.trafficroutes,
            Router::ApisixRoute => &mut self.apisixroutes,
        } = items;
    }

    /// Brings the view up to date with committed changes, in order; false
    /// when it has to be read whole (a Namespace changed: every pod's mesh
    /// labels may have).
    fn apply(&mut self, store: &Store, changes: &[Arc<Change>]) -> bool {
        let mut relist = Vec::new();
        let mut relist_edge = Vec::new();
        for c in changes {
            let key = (c.namespace.clone(), c.name.clone());
            let deleted = c.change == ChangeType::Deleted;
            match (c.kind.group, c.kind.kind) {
                ("", "Namespace") => return false,
                ("", "Service") => {
                    if deleted {
                        self.services.remove(&key);
                    } else {
                        self.services.insert(key, c.object.clone());
                    }
                }
                ("", "Pod") => {
                    let pods = self.pods.entry(c.namespace.clone()).or_default();
                    if let Some(old) = pods.remove(&c.name) {
                        self.pod_uids.remove(&old.uid);
                    }
                    if !deleted {
                        let info = pod_info(&c.object, &self.namespaces);
                        self.pod_uids.insert(info.uid.clone());
                        pods.insert(c.name.clone(), info);
                    }
                }
                (group, kind) => {
                    if let Some(k) = EdgeKind::ALL.into_iter().find(|k| {
                        let (g, _, n) = k.kind();
                        (g, n) == (group, kind)
                    }) && !relist_edge.contains(&k)
                    {
                        relist_edge.push(k);
                    }
                    if let Some(r) = Router::ALL.into_iter().find(|r| {
                        let (g, _, k) = r.kind();
                        (g, k) == (group, kind)
                    }) && !relist.contains(&r)
                    {
                        relist.push(r);
                    }
                }
            }
        }
        for r in relist {
            self.relist(store, r);
        }
        for k in relist_edge {
            self.relist_edge(store, k);
        }
        true
    }

    fn meshed(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|n| {
            n["metadata"]["annotations"]["linkerd.io/inject"] == "enabled" || ns_istio(n)
        })
    }

    fn istio(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(ns_istio)
    }

    fn first_port(&self, ns: &str, name: &str) -> Option<u16> {
        self.services
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|s| s["spec"]["ports"][0]["port"].as_u64())
            .map(|p| p as u16)
    }

    /// The Service and the port asked for (its first when `None`), if both
    /// exist.
    fn service_port(&self, ns: &str, name: &str, port: Option<u16>) -> Option<(&Value, u16)> {
        let svc = self.services.get(&(ns.to_string(), name.to_string()))?;
        let ports = svc["spec"]["ports"].as_array()?;
        let chosen = match port {
            Some(p) => ports
                .iter()
                .find(|x| x["port"].as_u64() == Some(u64::from(p)))?,
            None => ports.first()?,
        };
        Some((svc, chosen["port"].as_u64()? as u16))
    }

    /// Ready pods the Service selects.
    fn endpoints(&self, ns: &str, svc: &Value) -> Vec<&PodInfo> {
        let Some(sel) = svc["spec"]["selector"]
            .as_object()
            .filter(|m| !m.is_empty())
        else {
            return Vec::new();
        };
        self.pods
            .get(ns)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|p| p.ready && sel.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect()
    }

    /// `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`, as a pod
    /// in `client_ns` resolves them.
    fn resolve_service(&self, host: &str, client_ns: &str) -> Option<(String, String)> {
        let h = host.trim_end_matches('.');
        let h = h
            .strip_suffix(".svc.cluster.local")
            .or_else(|| h.strip_suffix(".svc"))
            .unwrap_or(h);
        let parts: Vec<&str> = h.split('.').collect();
        let (ns, name) = match parts.as_slice() {
            [name] => (client_ns, *name),
            [name, ns] => (*ns, *name),
            _ => return None,
        };
        self.services
            .contains_key(&(ns.to_string(), name.to_string()))
            .then(|| (ns.to_string(), name.to_string()))
    }

    /// The Ingress (and NGINX canary Ingress) serving `host` + `path`.
    fn ingress_for(&self, host: &str, path: &str) -> Option<IngressHit> {
        let mut best: Option<(usize, IngressHit)> = None;
        for ing in self.ingresses.iter().filter(|i| is_nginx_main_ingress(i)) {
            let ns = ing["metadata"]["namespace"].as_str().unwrap_or("");
            let name = ing["metadata"]["name"].as_str().unwrap_or("");
            for (rule_host, rule_path, backend) in ingress_paths(ing) {
                if !host_matches(&rule_host, host) {
                    continue;
                }
                let Some(len) = path_match(&rule_path.0, &rule_path.1, path) else {
                    continue;
                };
                if best.as_ref().is_some_and(|(l, _)| *l >= len) {
                    continue;
                }
                let Some((svc, port)) = backend else { continue };
                let canary = self.canary_ingress(ns, &rule_host, &rule_path.0);
                best = Some((
                    len,
                    IngressHit {
                        namespace: ns.to_string(),
                        main: name.to_string(),
                        service: svc,
                        port,
                        host: host.to_string(),
                        path: rule_path.0.clone(),
                        canary,
                    },
                ));
            }
        }
        best.map(|(_, h)| h)
    }

    /// The main Ingress routing to Service `ns/svc` (its first such rule).
    fn ingress_to_service(&self, ns: &str, svc: &str) -> Option<IngressHit> {
        self.ingresses
            .iter()
            .filter(|i| is_nginx_main_ingress(i) && i["metadata"]["namespace"] == ns)
            .find_map(|ing| {
                ingress_paths(ing)
                    .into_iter()
                    .find_map(|(host, path, backend)| {
                        let (service, port) = backend?;
                        (service == svc).then(|| IngressHit {
                            namespace: ns.to_string(),
                            main: ing["metadata"]["name"].as_str().unwrap_or("").to_string(),
                            canary: self.canary_ingress(ns, &host, &path.0),
                            service,
                            port,
                            host: if host.is_empty() {
                                svc.to_string()
                            } else {
                                host
                            },
                            path: path.0,
                        })
                    })
            })
    }

    fn canary_ingress(&self, ns: &str, host: &str, path: &str) -> Option<CanaryIngress> {
        self.ingresses
            .iter()
            .filter(|i| is_canary_ingress(i) && i["metadata"]["namespace"] == ns)
            .find_map(|i| {
                let a = &i["metadata"]["annotations"];
                let ann = |k: &str| {
                    a[format!("nginx.ingress.kubernetes.io/{k}")]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                };
                ingress_paths(i).into_iter().find_map(|(h, p, backend)| {
                    (h == host && p.0 == path).then_some(())?;
                    let (service, port) = backend?;
                    Some(CanaryIngress {
                        service,
                        port,
                        weight: ann("canary-weight").parse().unwrap_or(0.0),
                        weight_total: ann("canary-weight-total").parse().unwrap_or(100.0),
                        header: ann("canary-by-header"),
                        header_value: ann("canary-by-header-value"),
                        header_pattern: ann("canary-by-header-pattern"),
                        cookie: ann("canary-by-cookie"),
                    })
                })
            })
    }
}

fn ns_istio(n: &Value) -> bool {
    n["metadata"]["labels"]["istio-injection"] == "enabled"
        || n["metadata"]["labels"]["istio.io/rev"].is_string()
}

fn pod_info(p: &Value, namespaces: &HashMap<String, Value>) -> PodInfo {
    let meta = &p["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("").to_string();
    let labels = meta["labels"].as_object().cloned().unwrap_or_default();
    let ready = meta["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let template_hash = labels
        .get("pod-template-hash")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let owner = meta["ownerReferences"]
        .as_array()
        .and_then(|r| r.iter().find(|o| o["controller"] == true).or(r.first()));
    let workload = owner.and_then(|o| {
        let name = o["name"].as_str()?;
        match o["kind"].as_str()? {
            "ReplicaSet" => Some((
                "deployment",
                name.strip_suffix(&format!("-{template_hash}"))
                    .unwrap_or(name)
                    .to_string(),
            )),
            "DaemonSet" => Some(("daemonset", name.to_string())),
            "StatefulSet" => Some(("statefulset", name.to_string())),
            _ => None,
        }
    });
    let containers = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let ports = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| {
                    Some((
                        x["name"].as_str().unwrap_or("").to_string(),
                        x["containerPort"].as_u64()? as u16,
                    ))
                })
                .collect();
            (c["image"].as_str().unwrap_or("").to_string(), ports)
        })
        .collect();
    let ns_obj = namespaces.get(&namespace);
    let ann = &meta["annotations"];
    let linkerd = ann["linkerd.io/inject"] != "disabled"
        && (ann["linkerd.io/inject"] == "enabled"
            || ns_obj
                .is_some_and(|n| n["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"));
    let istio = labels
        .get("sidecar.istio.io/inject")
        .and_then(Value::as_str)
        != Some("false")
        && (labels
            .get("sidecar.istio.io/inject")
            .and_then(Value::as_str)
            == Some("true")
            || ns_obj.is_some_and(ns_istio));
    let kuma = ann["kuma.io/sidecar-injection"] != "disabled"
        && ns_obj
            .is_some_and(|n| n["metadata"]["labels"]["kuma.io/sidecar-injection"] == "enabled");
    PodInfo {
        name: meta["name"].as_str().unwrap_or("").to_string(),
        uid: meta["uid"].as_str().unwrap_or("").to_string(),
        namespace,
        labels,
        ready,
        ip: p["status"]["podIP"].as_str().unwrap_or("").to_string(),
        containers,
        workload,
        template_hash,
        linkerd,
        istio,
        kuma,
    }
}

/// The Service's target port for a Service port, as a number if known.
fn target_port(svc: &Value, port: u16) -> Option<u16> {
    let p = svc["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|x| x["port"].as_u64() == Some(u64::from(port)))?;
    match &p["targetPort"] {
        Value::Number(n) => n.as_u64().map(|n| n as u16),
        Value::Null => Some(port),
        _ => None,
    }
}

/// The pod's port that a Service port lands on (named target ports
/// resolved through the pod's containers).
fn pod_port(pod: &PodInfo, svc: &Value, port: u16) -> u16 {
    let tp = svc["spec"]["ports"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|x| x["port"].as_u64() == Some(u64::from(port)))
        })
        .map(|p| p["targetPort"].clone())
        .unwrap_or(Value::Null);
    match tp {
        Value::Number(n) => n.as_u64().map_or(port, |n| n as u16),
        Value::String(name) => pod
            .containers
            .iter()
            .flat_map(|(_, ps)| ps.iter())
            .find(|(n, _)| *n == name)
            .map_or(port, |(_, p)| *p),
        _ => port,
    }
}

// ---------------------------------------------------------------------------
// Routers.
// ---------------------------------------------------------------------------

/// A routing destination: (namespace, service, port).
type Dest = (String, String, Option<u16>);

/// What the routes a request took do besides choosing its backend: the
/// copies they mirror, the headers they add to the answer.
#[derive(Default)]
struct Effects {
    mirrors: Vec<Dest>,
    response_headers: Vec<(String, String)>,
}

enum Entry {
    Service {
        ns: String,
        name: String,
        port: Option<u16>,
        authority: String,
    },
    Ingress(Box<IngressHit>),
    /// Through the APISIX gateway.
    Apisix(Box<ApisixHit>),
    /// Chosen by a gateway's route for a host name.
    Routed {
        ns: String,
        name: String,
        port: Option<u16>,
        authority: String,
    },
    /// Chosen by an edge proxy's resources for a host name, or the status
    /// the proxy answers itself.
    Edge(Box<Result<edge::EdgeHit, u16>>),
}

enum Routed {
    To(String, String),
    /// A router exists but sends nowhere (all weights 0, no match).
    Nowhere,
}

#[derive(Clone)]
enum PortRef {
    Number(u16),
    Name(String),
}

struct IngressHit {
    namespace: String,
    main: String,
    service: String,
    port: PortRef,
    host: String,
    path: String,
    canary: Option<CanaryIngress>,
}

struct CanaryIngress {
    service: String,
    port: PortRef,
    weight: f64,
    weight_total: f64,
    header: String,
    header_value: String,
    header_pattern: String,
    cookie: String,
}

struct NginxHit {
    namespace: String,
    ingress: String,
    service: String,
    canary: Option<String>,
    host: String,
    path: String,
}

fn is_canary_ingress(i: &Value) -> bool {
    i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] == "true"
        && !edge::is_skipper_ingress(i)
}

/// An Ingress the NGINX model serves that is not an NGINX canary Ingress
/// (Skipper's class is Skipper's).
fn is_nginx_main_ingress(i: &Value) -> bool {
    !is_canary_ingress(i) && !edge::is_skipper_ingress(i)
}

type IngressPath = (String, (String, String), Option<(String, PortRef)>);

/// (host, (path, pathType), backend) of every rule path, plus the default
/// backend as host "" path "/".
fn ingress_paths(i: &Value) -> Vec<IngressPath> {
    let backend = |b: &Value| -> Option<(String, PortRef)> {
        let s = &b["service"];
        let name = s["name"].as_str()?.to_string();
        let port = match (&s["port"]["number"], &s["port"]["name"]) {
            (Value::Number(n), _) => PortRef::Number(n.as_u64().unwrap_or(80) as u16),
            (_, Value::String(n)) => PortRef::Name(n.clone()),
            _ => PortRef::Number(80),
        };
        Some((name, port))
    };
    let mut out = Vec::new();
    for rule in i["spec"]["rules"].as_array().into_iter().flatten() {
        let host = rule["host"].as_str().unwrap_or("").to_string();
        for p in rule["http"]["paths"].as_array().into_iter().flatten() {
            out.push((
                host.clone(),
                (
                    p["path"].as_str().unwrap_or("/").to_string(),
                    p["pathType"]
                        .as_str()
                        .unwrap_or("ImplementationSpecific")
                        .to_string(),
                ),
                backend(&p["backend"]),
            ));
        }
    }
    if i["spec"]["defaultBackend"].is_object() {
        out.push((
            String::new(),
            ("/".to_string(), "Prefix".to_string()),
            backend(&i["spec"]["defaultBackend"]),
        ));
    }
    out
}

fn host_matches(rule: &str, host: &str) -> bool {
    if rule.is_empty() {
        return true;
    }
    if let Some(suffix) = rule.strip_prefix("*.") {
        return host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix);
    }
    rule.eq_ignore_ascii_case(host)
}

/// How much of `path` a rule path matches (longest wins), if at all.
fn path_match(rule: &str, kind: &str, path: &str) -> Option<usize> {
    match kind {
        "Exact" => (rule == path).then_some(rule.len()),
        "Prefix" => {
            let r = rule.trim_end_matches('/');
            if r.is_empty() {
                return Some(1);
            }
            (path == r || path.starts_with(&format!("{r}/"))).then_some(r.len())
        }
        _ => path.starts_with(rule).then_some(rule.len()),
    }
}

/// ingress-nginx's canary decision: header, then cookie, then weight.
fn nginx_use_canary(c: &CanaryIngress, req: &Request, rng: &mut Rng) -> bool {
    if !c.header.is_empty()
        && let Some(v) = req.header(&c.header)
    {
        if !c.header_value.is_empty() {
            if v == c.header_value {
                return true;
            }
        } else if !c.header_pattern.is_empty() {
            if regex::Regex::new(&c.header_pattern).is_ok_and(|re| re.is_match(v)) {
                return true;
            }
        } else if v == "always" {
            return true;
        } else if v == "never" {
            return false;
        }
    }
    if !c.cookie.is_empty()
        && let Some(cookies) = req.header("cookie")
    {
        for kv in cookies.split(';') {
            if let Some((k, v)) = kv.trim().split_once('=')
                && k == c.cookie
            {
                match v {
                    "always" => return true,
                    "never" => return false,
                    _ => {}
                }
            }
        }
    }
    let total = if c.weight_total > 0.0 {
        c.weight_total
    } else {
        100.0
    };
    c.weight > 0.0 && rng.f64() * total < c.weight
}

/// The query parameters of a path, undecoded, in order.
fn query_params(path: &str) -> Vec<(&str, String)> {
    path.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k, v.to_string()),
                    None => (kv, String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A weighted choice; `None` when every weight is 0.
fn pick_weighted<T: Clone>(items: &[(T, f64)], rng: &mut Rng) -> Option<T> {
    let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut r = rng.f64() * total;
    for (item, w) in items {
        let w = w.max(0.0);
        if r < w {
            return Some(item.clone());
        }
        r -= w;
    }
    items
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .map(|(i, _)| i.clone())
}

/// An SMI weight: an integer, or a Kubernetes quantity (`"500m"`).
fn smi_weight(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => {
            let s = s.trim();
            if let Some(m) = s.strip_suffix('m') {
                m.parse::<f64>().map_or(0.0, |x| x / 1000.0)
            } else if let Some(k) = s.strip_suffix('k') {
                k.parse::<f64>().map_or(0.0, |x| x * 1000.0)
            } else {
                s.parse().unwrap_or(0.0)
            }
        }
        _ => 0.0,
    }
}

/// The short Service name a router destination host means in `ns`.
fn dest_service(host: &str, ns: &str) -> Option<(String, String)> {
    let h = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    let parts: Vec<&str> = h.split('.').collect();
    match parts.as_slice() {
        [name] => Some((ns.to_string(), name.to_string())),
        [name, n] => Some((n.to_string(), name.to_string())),
        _ => None,
    }
}

fn names_service(host: &str, ns: &str, svc: &str) -> bool {
    dest_service(host, ns).is_some_and(|(n, s)| n == ns && s == svc)
}

/// The mesh's routing of traffic aimed at Service `ns/svc`: TrafficSplit,
/// then an HTTPRoute attached to the Service, then a mesh VirtualService.
fn mesh_route(
    c: &Cluster,
    ns: &str,
    svc: &str,
    req: &Request,
    rng: &mut Rng,
    fx: &mut Effects,
) -> Option<Routed> {
    if let Some(tr) = kuma_route(c, ns, svc) {
        let backends: Vec<((String, String), f64)> = tr["spec"]["conf"]["split"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let (name, ns) = kuma_service(s["destination"]["kuma.io/service"].as_str()?)?;
                Some(((ns, name), s["weight"].as_f64().unwrap_or(0.0)))
            })
            .collect();
        return Some(match pick_weighted(&backends, rng) {
            Some((n, s)) => Routed::To(n, s),
            None => Routed::Nowhere,
        });
    }
    if let Some(ts) = c.splits.iter().find(|t| {
        t["metadata"]["namespace"] == ns
            && t["spec"]["service"]
                .as_str()
                .is_some_and(|s| names_service(s, ns, svc))
    }) {
        let backends: Vec<((String, String), f64)> = ts["spec"]["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some((
                    dest_service(b["service"].as_str()?, ns)?,
                    smi_weight(&b["weight"]),
                ))
            })
            .collect();
        return Some(match pick_weighted(&backends, rng) {
            Some((n, s)) => Routed::To(n, s),
            None => Routed::Nowhere,
        });
    }
    if let Some(route) = c.httproutes.iter().find(|r| {
        r["metadata"]["namespace"] == ns
            && r["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["kind"] == "Service"
                        && p["name"] == svc
                        && (p["namespace"].is_null() || p["namespace"] == ns)
                })
    }) {
        return Some(
            httproute_pick(route, req, rng, fx)
                .map_or(Routed::Nowhere, |(n, s, _)| Routed::To(n, s)),
        );
    }
    if let Some(vs) = mesh_vs(c, ns, svc) {
        return Some(
            vs_pick(c, vs, req, rng, fx).map_or(Routed::Nowhere, |(n, s, _)| Routed::To(n, s)),
        );
    }
    // A gateway's router made for this Service (as Flagger names them
    // `<svc>`, with backends `<svc>-primary` and `<svc>-canary`) also
    // splits traffic aimed at it, so a scenario's flow follows whichever
    // router exists.
    let made_for = |r: &Value, backends: Vec<String>| {
        r["metadata"]["namespace"] == ns
            && (r["metadata"]["name"] == svc
                || backends
                    .iter()
                    .any(|b| *b == format!("{svc}-primary") || *b == format!("{svc}-canary")))
    };
    if let Some(route) = c.httproutes.iter().find(|r| {
        let names = r["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["backendRefs"].as_array().into_iter().flatten())
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect();
        made_for(r, names)
    }) {
        return Some(
            httproute_pick(route, req, rng, fx)
                .map_or(Routed::Nowhere, |(n, s, _)| Routed::To(n, s)),
        );
    }
    // A VirtualService bound only to gateways does not route the mesh's
    // traffic (Istio applies it to the sidecars only with `mesh`), so it
    // has no such fallback.
    None
}

/// A request's way through the APISIX gateway.
struct ApisixHit {
    namespace: String,
    /// `<namespace>_<ApisixRoute>_<http route>`.
    route: String,
    service: String,
    port: Option<u16>,
    host: String,
    uri: String,
}

/// Whether an ApisixRoute path (`/*` a prefix wildcard) matches `path`.
fn apisix_path(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

/// The http route of an ApisixRoute, of the highest priority, serving
/// `host` and `path`, and the backend its weights pick.
fn apisix_route(c: &Cluster, host: &str, path: &str, rng: &mut Rng) -> Option<ApisixHit> {
    let mut best: Option<(i64, &Value, &Value)> = None;
    for ar in &c.apisixroutes {
        for http in ar["spec"]["http"].as_array().into_iter().flatten() {
            let m = &http["match"];
            let hosts_ok = m["hosts"].as_array().is_none_or(|hs| {
                hs.iter()
                    .any(|h| h.as_str().is_some_and(|h| host_matches(h, host)))
            });
            let paths_ok = m["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p.as_str().is_some_and(|p| apisix_path(p, path)));
            let priority = http["priority"].as_i64().unwrap_or(0);
            if hosts_ok && paths_ok && best.as_ref().is_none_or(|(b, ..)| priority > *b) {
                best = Some((priority, ar, http));
            }
        }
    }
    let (_, ar, http) = best?;
    let ns = ar["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let backends: Vec<((String, Option<u16>), f64)> = http["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let port = b["servicePort"].as_u64().map(|p| p as u16);
            Some((
                (b["serviceName"].as_str()?.to_string(), port),
                b["weight"].as_f64().unwrap_or(100.0),
            ))
        })
        .collect();
    let (service, port) = pick_weighted(&backends, rng)?;
    Some(ApisixHit {
        route: format!(
            "{ns}_{}_{}",
            ar["metadata"]["name"].as_str().unwrap_or(""),
            http["name"].as_str().unwrap_or("")
        ),
        namespace: ns,
        service,
        port,
        host: host.to_string(),
        uri: path.to_string(),
    })
}

/// A Kuma service name, `<svc>_<namespace>_svc_<port>`, as (svc,
/// namespace).
fn kuma_service(s: &str) -> Option<(String, String)> {
    let mut parts = s.split('_');
    let (name, ns, svc, port) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (svc == "svc" && port.parse::<u16>().is_ok() && parts.next().is_none())
        .then(|| (name.to_string(), ns.to_string()))
}

/// The Kuma TrafficRoute whose destination is a Kuma service of Service
/// `ns/svc` (any of its ports).
fn kuma_route<'a>(c: &'a Cluster, ns: &str, svc: &str) -> Option<&'a Value> {
    c.trafficroutes.iter().find(|tr| {
        tr["spec"]["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["match"]["kuma.io/service"].as_str())
            .filter_map(kuma_service)
            .any(|(name, n)| name == svc && n == ns)
    })
}

/// The VirtualService the sidecars apply to traffic aimed at Service
/// `ns/svc`: one bound to `mesh` (or to no gateway) naming the Service
/// among its hosts.
fn mesh_vs<'a>(c: &'a Cluster, ns: &str, svc: &str) -> Option<&'a Value> {
    c.virtualservices.iter().find(|v| {
        let gateways: Vec<&str> = v["spec"]["gateways"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let vns = v["metadata"]["namespace"].as_str().unwrap_or("");
        (gateways.is_empty() || gateways.contains(&"mesh"))
            && v["spec"]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|h| dest_service(h, vns).is_some_and(|(n, s)| n == ns && s == svc))
    })
}

/// Where the mesh mirrors a request aimed at Service `ns/svc`: the matched
/// route's `mirror` host, for `mirrorPercentage` of the requests (all of
/// them when absent), as Envoy's shadowing does.
fn mesh_mirror(
    c: &Cluster,
    ns: &str,
    svc: &str,
    req: &Request,
    rng: &mut Rng,
) -> Option<(String, String)> {
    let vs = mesh_vs(c, ns, svc)?;
    let route = vs_route(c, vs, req)?;
    let host = route["mirror"]["host"].as_str()?;
    let vns = vs["metadata"]["namespace"].as_str().unwrap_or("");
    let percent = route["mirrorPercentage"]["value"].as_f64().unwrap_or(100.0);
    if rng.f64() * 100.0 >= percent {
        return None;
    }
    dest_service(host, vns)
}

/// A gateway's routing of a host name: an Istio VirtualService bound to a
/// gateway, or a Gateway API HTTPRoute with that host name.
fn gateway_route(
    c: &Cluster,
    host: &str,
    req: &Request,
    rng: &mut Rng,
    fx: &mut Effects,
) -> Option<(Routed, Option<u16>)> {
    if let Some(vs) = c.virtualservices.iter().find(|v| {
        v["spec"]["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|h| host_matches(h, host))
    }) {
        return Some(match vs_pick(c, vs, req, rng, fx) {
            Some((n, s, p)) => (Routed::To(n, s), p),
            None => (Routed::Nowhere, None),
        });
    }
    if let Some(r) = c.httproutes.iter().find(|r| {
        r["spec"]["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|h| host_matches(h, host))
    }) {
        return Some(match httproute_pick(r, req, rng, fx) {
            Some((n, s, p)) => (Routed::To(n, s), p),
            None => (Routed::Nowhere, None),
        });
    }
    None
}

fn string_match(m: &Value, v: Option<&str>) -> bool {
    let Some(v) = v else { return false };
    if let Some(e) = m["exact"].as_str() {
        return v == e;
    }
    if let Some(p) = m["prefix"].as_str() {
        return v.starts_with(p);
    }
    if let Some(r) = m["regex"].as_str() {
        return regex::Regex::new(&format!("^(?:{r})$")).is_ok_and(|re| re.is_match(v));
    }
    // An empty match (`{}`) matches the header's presence, as Envoy's
    // `present_match`.
    true
}

/// A query parameter's value, `""` for a bare `?key`.
fn query_param<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = path.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// Whether one of an Istio route's `match` entries matches the request.
fn istio_match(c: &Cluster, m: &Value, req: &Request) -> bool {
    let path = req.path.split('?').next().unwrap_or("/");
    let uri_ok = m["uri"].is_null() || {
        if m["ignoreUriCase"] == json!(true) {
            let lower = |v: &Value| match v.as_str() {
                Some(s) => json!(s.to_ascii_lowercase()),
                None => v.clone(),
            };
            let mut u = m["uri"].clone();
            for k in ["exact", "prefix"] {
                if !u[k].is_null() {
                    u[k] = lower(&u[k]);
                }
            }
            string_match(&u, Some(&path.to_ascii_lowercase()))
        } else {
            string_match(&m["uri"], Some(path))
        }
    };
    let method_ok = m["method"].is_null() || string_match(&m["method"], Some(&req.method));
    let headers_ok = m["headers"]
        .as_object()
        .is_none_or(|hs| hs.iter().all(|(k, cond)| string_match(cond, req.header(k))));
    let without_ok = m["withoutHeaders"]
        .as_object()
        .is_none_or(|hs| !hs.iter().any(|(k, cond)| string_match(cond, req.header(k))));
    let query_ok = m["queryParams"].as_object().is_none_or(|qs| {
        qs.iter()
            .all(|(k, cond)| string_match(cond, query_param(&req.path, k)))
    });
    let ns_ok = m["sourceNamespace"]
        .as_str()
        .is_none_or(|n| n == req.source.namespace);
    // The calling workload's pods carry the labels (Istio's
    // `sourceLabels`); a caller outside the cluster's workloads has none.
    let labels_ok = m["sourceLabels"].as_object().is_none_or(|want| {
        c.pods
            .get(&req.source.namespace)
            .into_iter()
            .flat_map(BTreeMap::values)
            .find(|p| p.workload_name() == req.source.workload)
            .is_some_and(|p| want.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
    });
    uri_ok && method_ok && headers_ok && without_ok && query_ok && ns_ok && labels_ok
}

/// The first HTTP route of a VirtualService matching the request.
fn vs_route<'a>(c: &Cluster, vs: &'a Value, req: &Request) -> Option<&'a Value> {
    vs["spec"]["http"].as_array()?.iter().find(|h| {
        let matches = h["match"].as_array().filter(|m| !m.is_empty());
        matches.is_none_or(|ms| ms.iter().any(|m| istio_match(c, m, req)))
    })
}

/// The first Istio HTTP route matching the request, then a destination by
/// weight: (namespace, service, port).
fn vs_pick(
    c: &Cluster,
    vs: &Value,
    req: &Request,
    rng: &mut Rng,
    fx: &mut Effects,
) -> Option<(String, String, Option<u16>)> {
    let ns = vs["metadata"]["namespace"].as_str().unwrap_or("");
    let route = vs_route(c, vs, req)?;
    let dests: Vec<&Value> = route["route"].as_array()?.iter().collect();
    let single = dests.len() == 1;
    let weighted: Vec<(Dest, f64)> = dests
        .iter()
        .filter_map(|d| {
            let (n, s) = dest_service(d["destination"]["host"].as_str()?, ns)?;
            let port = d["destination"]["port"]["number"]
                .as_u64()
                .map(|p| p as u16);
            // A lone destination takes all the route's traffic whatever
            // its weight says, as in Istio.
            let w = if single {
                100.0
            } else {
                d["weight"].as_f64().unwrap_or(0.0)
            };
            Some(((n, s, port), w))
        })
        .collect();
    let picked = pick_weighted(&weighted, rng)?;
    // The route's and the chosen destination's `headers.response`, as
    // Envoy applies them to the answer.
    let chosen = dests.iter().find(|d| {
        d["destination"]["host"]
            .as_str()
            .and_then(|h| dest_service(h, ns))
            .is_some_and(|(n, s)| n == picked.0 && s == picked.1)
    });
    for v in [Some(route), chosen.copied()].into_iter().flatten() {
        let ops = &v["headers"]["response"];
        for key in ["set", "add"] {
            for (k, val) in ops[key].as_object().into_iter().flatten() {
                if let Some(val) = val.as_str() {
                    fx.response_headers.push((k.clone(), val.to_string()));
                }
            }
        }
    }
    Some(picked)
}

/// The first HTTPRoute rule matching the request, then a backend by
/// weight: (namespace, service, port). The rule's `RequestMirror` filters
/// add their backends to `mirrors`, as a Gateway API implementation copies
/// the request to them.
fn httproute_pick(
    r: &Value,
    req: &Request,
    rng: &mut Rng,
    fx: &mut Effects,
) -> Option<(String, String, Option<u16>)> {
    let ns = r["metadata"]["namespace"].as_str().unwrap_or("");
    let path = req.path.split('?').next().unwrap_or("/");
    let rule = r["spec"]["rules"].as_array()?.iter().find(|rule| {
        let matches = rule["matches"].as_array().filter(|m| !m.is_empty());
        matches.is_none_or(|ms| {
            ms.iter().any(|m| {
                let path_ok = m["path"].is_null() || {
                    let v = m["path"]["value"].as_str().unwrap_or("/");
                    match m["path"]["type"].as_str().unwrap_or("PathPrefix") {
                        "Exact" => path == v,
                        "RegularExpression" => regex::Regex::new(&format!("^(?:{v})$"))
                            .is_ok_and(|re| re.is_match(path)),
                        _ => path_match(v, "Prefix", path).is_some(),
                    }
                };
                let headers_ok = m["headers"].as_array().into_iter().flatten().all(|h| {
                    let got = req.header(h["name"].as_str().unwrap_or(""));
                    let want = h["value"].as_str().unwrap_or("");
                    match h["type"].as_str().unwrap_or("Exact") {
                        "RegularExpression" => got.is_some_and(|g| {
                            regex::Regex::new(&format!("^(?:{want})$"))
                                .is_ok_and(|re| re.is_match(g))
                        }),
                        _ => got == Some(want),
                    }
                });
                let method_ok = m["method"]
                    .as_str()
                    .is_none_or(|mm| mm.eq_ignore_ascii_case(&req.method));
                let query = query_params(&req.path);
                let query_ok = m["queryParams"].as_array().into_iter().flatten().all(|q| {
                    let got = query
                        .iter()
                        .find(|(k, _)| *k == q["name"].as_str().unwrap_or(""))
                        .map(|(_, v)| v.as_str());
                    let want = q["value"].as_str().unwrap_or("");
                    match q["type"].as_str().unwrap_or("Exact") {
                        "RegularExpression" => got.is_some_and(|g| {
                            regex::Regex::new(&format!("^(?:{want})$"))
                                .is_ok_and(|re| re.is_match(g))
                        }),
                        _ => got == Some(want),
                    }
                });
                path_ok && headers_ok && method_ok && query_ok
            })
        })
    })?;
    for f in rule["filters"].as_array().into_iter().flatten() {
        let b = &f["requestMirror"]["backendRef"];
        if f["type"] == "RequestMirror"
            && (b["kind"].is_null() || b["kind"] == "Service")
            && let Some(name) = b["name"].as_str()
        {
            fx.mirrors.push((
                b["namespace"].as_str().unwrap_or(ns).to_string(),
                name.to_string(),
                b["port"].as_u64().map(|p| p as u16),
            ));
        }
    }
    let refs: Vec<&Value> = rule["backendRefs"]
        .as_array()?
        .iter()
        .filter(|b| b["kind"].is_null() || b["kind"] == "Service")
        .collect();
    let backends: Vec<((Dest, usize), f64)> = refs
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let n = b["namespace"].as_str().unwrap_or(ns).to_string();
            let port = b["port"].as_u64().map(|p| p as u16);
            Some((
                ((n, b["name"].as_str()?.to_string(), port), i),
                b["weight"].as_f64().unwrap_or(1.0),
            ))
        })
        .collect();
    let (picked, i) = pick_weighted(&backends, rng)?;
    // The rule's and the chosen backend's `ResponseHeaderModifier`
    // filters, as the gateway applies them to the answer.
    for v in [rule, refs[i]] {
        for f in v["filters"].as_array().into_iter().flatten() {
            if f["type"] != "ResponseHeaderModifier" {
                continue;
            }
            for key in ["set", "add"] {
                for h in f["responseHeaderModifier"][key]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let (Some(k), Some(val)) = (h["name"].as_str(), h["value"].as_str()) {
                        fx.response_headers.push((k.to_string(), val.to_string()));
                    }
                }
            }
        }
    }
    Some(picked)
}

// ---------------------------------------------------------------------------
// The pod's answer.
// ---------------------------------------------------------------------------

/// A podinfo-like answer: the behaviour's success roll and latency, then
/// podinfo's API paths.
fn serve(
    pod: &PodInfo,
    image: &str,
    req: &Request,
    a: crate::scenario::Answer,
    rng: &mut Rng,
) -> (u16, f64, String) {
    let latency = rng.latency_ms(a.median_ms, a.p99_ms);
    if rng.f64() >= a.success_rate {
        let s = a.error_status;
        return (
            s,
            latency,
            format!("{{\"code\":{s},\"message\":\"simulated failure of {image}\"}}"),
        );
    }
    let path = req.path.split('?').next().unwrap_or("/");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let tag = image
        .rsplit('/')
        .next()
        .and_then(|l| l.split_once(':'))
        .map_or("latest", |(_, t)| t);
    let post = req.method.eq_ignore_ascii_case("POST");
    match segs.as_slice() {
        [] | ["api", "info"] => (
            200,
            latency,
            json!({
                "hostname": pod.name,
                "version": tag,
                "revision": "",
                "color": "#34577c",
                "logo": "https://raw.githubusercontent.com/stefanprodan/podinfo/gh-pages/cuddle_clap.gif",
                "message": format!("greetings from podinfo v{tag}"),
                "goos": "linux",
                "goarch": "amd64",
                "runtime": "go1.13.1",
                "num_goroutine": "8",
                "num_cpu": "2",
            })
            .to_string(),
        ),
        ["status", code] => match code.parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => (c, latency, json!({"status": c}).to_string()),
            _ => (400, latency, "invalid status code\n".to_string()),
        },
        ["delay", secs] => match secs.parse::<f64>() {
            Ok(s) if s >= 0.0 => (200, latency + s * 1000.0, json!({"delay": s}).to_string()),
            _ => (400, latency, "invalid delay\n".to_string()),
        },
        ["token"] if post => {
            let token = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{:016x}.{:016x}", rng.next_u64(), rng.next_u64());
            (200, latency, json!({"token": token, "expires_at": "2030-01-01T00:00:00Z"}).to_string())
        }
        ["token"] => (405, latency, String::new()),
        ["healthz"] | ["readyz"] => (200, latency, json!({"status": "OK"}).to_string()),
        ["version"] => (200, latency, json!({"version": tag, "commit": ""}).to_string()),
        ["echo"] | ["api", "echo"] => (202, latency, req.body.clone().unwrap_or_default()),
        ["headers"] => {
            let h: Map<String, Value> = req.headers.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            (200, latency, Value::Object(h).to_string())
        }
        ["env"] => (200, latency, "[]".to_string()),
        _ => (404, latency, "404 page not found\n".to_string()),
    }
}

// ---------------------------------------------------------------------------
// Recording.
// ---------------------------------------------------------------------------

type LabelVec = Vec<(String, String)>;
type Buckets = &'static [f64];

/// What one tick sent, summed per series before it is recorded: a
/// request adds to an entry found by the hash of its name and labels,
/// allocating nothing when the entry exists.
#[derive(Default)]
struct Recorder {
    entries: Vec<Recorded>,
    /// Positions in `entries` by [`Recorder::hash`].
    index: HashMap<u64, Vec<usize>>,
    /// Pods that answered, by uid: (namespace, name).
    pods: HashMap<String, (String, String)>,
}

struct Recorded {
    name: &'static str,
    labels: LabelVec,
    what: Record,
}

enum Record {
    Count(f64),
    Histogram(Buckets, Vec<f64>),
    Summary(Vec<f64>),
}

impl Record {
    fn tag(&self) -> u8 {
        match self {
            Record::Count(_) => 0,
            Record::Histogram(..) => 1,
            Record::Summary(_) => 2,
        }
    }
}

fn lv(pairs: &[(&str, &str)]) -> LabelVec {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Recorder {
    fn hash(tag: u8, name: &str, pairs: &[(&str, &str)]) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        tag.hash(&mut h);
        name.hash(&mut h);
        for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            k.hash(&mut h);
            v.hash(&mut h);
        }
        h.finish()
    }

    /// The entry of series `name{pairs}` of the kind of `new`, created
    /// from `new` if missing.
    fn entry(
        &mut self,
        name: &'static str,
        pairs: &[(&str, &str)],
        new: impl FnOnce() -> Record,
    ) -> &mut Record {
        let new = new();
        let tag = new.tag();
        let hash = Self::hash(tag, name, pairs);
        let same = |e: &Recorded| {
            e.name == name
                && e.what.tag() == tag
                && e.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .eq(pairs.iter().copied().filter(|(_, v)| !v.is_empty()))
        };
        let found = self
            .index
            .get(&hash)
            .and_then(|list| list.iter().copied().find(|&i| same(&self.entries[i])));
        let i = match found {
            Some(i) => i,
            None => {
                self.entries.push(Recorded {
                    name,
                    labels: lv(pairs),
                    what: new,
                });
                let i = self.entries.len() - 1;
                self.index.entry(hash).or_default().push(i);
                i
            }
        };
        &mut self.entries[i].what
    }

    fn count(&mut self, name: &'static str, pairs: &[(&str, &str)]) {
        if let Record::Count(n) = self.entry(name, pairs, || Record::Count(0.0)) {
            *n += 1.0;
        }
    }

    fn observe(
        &mut self,
        name: &'static str,
        pairs: &[(&str, &str)],
        buckets: &'static [f64],
        v: f64,
    ) {
        if let Record::Histogram(_, obs) =
            self.entry(name, pairs, || Record::Histogram(buckets, Vec::new()))
        {
            obs.push(v);
        }
    }

    fn summary(&mut self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        if let Record::Summary(obs) = self.entry(name, pairs, || Record::Summary(Vec::new())) {
            obs.push(v);
        }
    }

    /// Notes that `pod` answered.
    fn pod(&mut self, pod: &PodInfo) {
        if !self.pods.contains_key(&pod.uid) {
            self.pods
                .insert(pod.uid.clone(), (pod.namespace.clone(), pod.name.clone()));
        }
    }

    /// The Linkerd proxy's inbound series, with the labels linkerd-viz's
    /// Prometheus adds from the pod.
    fn linkerd(&mut self, pod: &PodInfo, authority: &str, port: u16, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let class = if status >= 500 { "failure" } else { "success" };
        let port_s = port.to_string();
        let addr = format!("{}:{port}", pod.ip);
        let instance = format!("{}:4191", pod.ip);
        let (wk, wn) = pod
            .workload
            .as_ref()
            .map_or(("", ""), |(k, n)| (*k, n.as_str()));
        let base: Vec<(&str, &str)> = vec![
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.name.as_str()),
            (wk, wn),
            ("pod_template_hash", pod.template_hash.as_str()),
            ("control_plane_ns", "linkerd"),
            ("job", "linkerd-proxy"),
            ("instance", instance.as_str()),
            ("direction", "inbound"),
            ("authority", authority),
            ("target_addr", addr.as_str()),
            ("target_ip", pod.ip.as_str()),
            ("target_port", port_s.as_str()),
            ("tls", "true"),
        ];
        let base: Vec<(&str, &str)> = base.into_iter().filter(|(k, _)| !k.is_empty()).collect();
        self.count("request_total", &base);
        let mut full = base;
        full.push(("status_code", code.as_str()));
        full.push(("classification", class));
        self.count("response_total", &full);
        self.observe("response_latency_ms", &full, LINKERD_BUCKETS, latency_ms);
    }

    /// Istio's destination-reported series.
    #[allow(clippy::too_many_arguments)]
    fn istio(
        &mut self,
        pod: &PodInfo,
        fqdn: &str,
        svc: &str,
        svc_ns: &str,
        source: &Source,
        source_in_mesh: bool,
        status: u16,
        latency_ms: f64,
    ) {
        let code = status.to_string();
        let app = [pod.label("app"), pod.label("app.kubernetes.io/name")]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string();
        let version = Some(pod.label("version"))
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown");
        let canonical = Some(pod.label("service.istio.io/canonical-name"))
            .filter(|s| !s.is_empty())
            .unwrap_or(&app)
            .to_string();
        let source_workload = if source.workload.is_empty() {
            "unknown"
        } else {
            &source.workload
        };
        let source_ns = if source.namespace.is_empty() {
            "unknown"
        } else {
            &source.namespace
        };
        let labels = [
            ("namespace", pod.namespace.as_str()),
            ("pod", &pod.name),
            ("reporter", "destination"),
            ("source_workload", source_workload),
            ("source_workload_namespace", source_ns),
            ("destination_workload", pod.workload_name()),
            ("destination_workload_namespace", &pod.namespace),
            ("destination_app", &app),
            ("destination_version", version),
            ("destination_service", fqdn),
            ("destination_service_name", svc),
            ("destination_service_namespace", svc_ns),
            ("destination_canonical_service", &canonical),
            ("destination_canonical_revision", "latest"),
            ("destination_cluster", "Kubernetes"),
            ("request_protocol", "http"),
            ("response_code", &code),
            ("grpc_response_status", ""),
            ("response_flags", "-"),
            (
                "connection_security_policy",
                if source_in_mesh { "mutual_tls" } else { "none" },
            ),
        ];
        self.count("istio_requests_total", &labels);
        self.observe(
            "istio_request_duration_milliseconds",
            &labels,
            ISTIO_BUCKETS,
            latency_ms,
        );
    }

    /// A Kuma sidecar's inbound series, with the labels Kuma's Prometheus
    /// discovery adds (`mesh`, `dataplane`, `service`: the Kuma service the
    /// request was sent to).
    fn kuma(
        &mut self,
        pod: &PodInfo,
        svc: &str,
        port: u16,
        target_port: u16,
        status: u16,
        latency_ms: f64,
    ) {
        let service = format!("{svc}_{}_svc_{port}", pod.namespace);
        let dataplane = format!("{}.{}", pod.name, pod.namespace);
        let cluster = format!("localhost_{target_port}");
        let code = status.to_string();
        let class = format!("{}xx", status / 100);
        let base = [
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.name.as_str()),
            ("mesh", "default"),
            ("dataplane", dataplane.as_str()),
            ("service", service.as_str()),
            ("kuma_io_protocol", "http"),
            ("envoy_cluster_name", cluster.as_str()),
        ];
        let mut with_code = base.to_vec();
        with_code.extend([
            ("envoy_response_code", code.as_str()),
            ("envoy_response_code_class", class.as_str()),
        ]);
        self.count("envoy_cluster_upstream_rq", &with_code);
        self.observe(
            "envoy_cluster_upstream_rq_time",
            &base,
            ENVOY_BUCKETS,
            latency_ms,
        );
    }

    /// APISIX's series for a request through the gateway.
    fn apisix(&mut self, hit: &ApisixHit, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let service = format!(
            "{}_{}_{}",
            hit.namespace,
            hit.service,
            hit.port.unwrap_or(80)
        );
        let common = [
            ("route", hit.route.as_str()),
            ("service", service.as_str()),
            ("consumer", ""),
            ("node", ""),
        ];
        let mut status_labels = common.to_vec();
        status_labels.extend([
            ("code", code.as_str()),
            ("matched_host", hit.host.as_str()),
            ("matched_uri", hit.uri.as_str()),
        ]);
        self.count("apisix_http_status", &status_labels);
        let mut latency = common.to_vec();
        latency.push(("type", "request"));
        self.observe("apisix_http_latency", &latency, APISIX_BUCKETS, latency_ms);
    }

    /// The NGINX ingress controller's series for a request through it.
    fn nginx(&mut self, n: &NginxHit, req: &Request, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let canary = n.canary.clone().unwrap_or_default();
        let common: Vec<(&str, &str)> = vec![
            ("controller_class", "k8s.io/ingress-nginx"),
            ("controller_namespace", "ingress-nginx"),
            (
                "controller_pod",
                "ingress-nginx-controller-7d4db76476-sim01",
            ),
            ("namespace", &n.namespace),
            ("ingress", &n.ingress),
            ("service", &n.service),
            ("canary", &canary),
        ];
        let mut req_labels = common.clone();
        req_labels.extend([
            ("host", n.host.as_str()),
            ("path", n.path.as_str()),
            ("method", req.method.as_str()),
            ("status", code.as_str()),
        ]);
        self.count("nginx_ingress_controller_requests", &req_labels);
        if status != 503 || latency_ms > 0.0 {
            let secs = latency_ms / 1000.0;
            self.summary(
                "nginx_ingress_controller_ingress_upstream_latency_seconds",
                &common,
                secs,
            );
            self.observe(
                "nginx_ingress_controller_response_duration_seconds",
                &req_labels,
                NGINX_BUCKETS,
                secs,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_pick_in_proportion() {
        let mut rng = Rng::new(9);
        let items = vec![("a", 90.0), ("b", 10.0), ("c", 0.0)];
        let mut n = HashMap::new();
        for _ in 0..10_000 {
            *n.entry(pick_weighted(&items, &mut rng).unwrap())
                .or_insert(0) += 1;
        }
        assert!((n["a"] as f64 / 10_000.0 - 0.9).abs() < 0.02, "{n:?}");
        assert!(!n.contains_key("c"));
        assert!(pick_weighted(&[("a", 0.0)], &mut rng).is_none());
    }

    #[test]
    fn smi_weights_read_quantities() {
        assert_eq!(smi_weight(&json!(95)), 95.0);
        assert_eq!(smi_weight(&json!("95")), 95.0);
        assert_eq!(smi_weight(&json!("500m")), 0.5);
    }

    #[test]
    fn ingress_paths_match_like_kubernetes() {
        assert_eq!(path_match("/", "Prefix", "/anything"), Some(1));
        assert_eq!(path_match("/api", "Prefix", "/api/v1"), Some(4));
        assert_eq!(path_match("/api", "Prefix", "/apis"), None);
        assert_eq!(path_match("/x", "Exact", "/x"), Some(2));
        assert!(host_matches("*.example.com", "app.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
    }
}
