//! Edge proxies configured by their own custom resources: Contour's
//! Envoy, driven by `projectcontour.io/v1` HTTPProxy objects, and Traefik,
//! driven by `traefik.io/v1alpha1` IngressRoutes and TraefikServices.
//!
//! A request for a host name reaches Contour when a root HTTPProxy (one
//! with `spec.virtualhost.fqdn`) names that host. Its routes, and those of
//! the HTTPProxies it includes (with the include's conditions put before
//! theirs), are the candidates; the matching route with the longest path
//! prefix wins, then the one with more header conditions, as Contour
//! orders Envoy's routes. The route's Services share its requests by
//! weight (all equally when none has a weight). An HTTPProxy that no root
//! includes serves nothing, as in Contour.
//!
//! Envoy's upstream series are recorded for each answer:
//! `envoy_cluster_upstream_rq` (by `envoy_response_code`) and the
//! `envoy_cluster_upstream_rq_time` histogram (milliseconds), with
//! Contour's cluster name `<namespace>_<service>_<port>` in
//! `envoy_cluster_name`, the label Flagger's Contour queries select on.
//!
//! Traefik serves a host named by an IngressRoute rule's `Host(...)` (with
//! an optional `PathPrefix(...)`); the route's services are Kubernetes
//! Services or TraefikServices, whose weighted round robin picks one of
//! their Services (weight 1 when none is written). Traefik records
//! `traefik_service_requests_total` and the
//! `traefik_service_request_duration_seconds` histogram (its default
//! buckets) with `service` `<namespace>-<service>-<port>@kubernetescrd`,
//! as Flagger's Traefik queries select it.
//!
//! Knative Serving answers for the host of a `serving.knative.dev/v1`
//! Service (`<name>.<namespace>.svc.cluster.local`, the shorter cluster
//! forms, and the external `<name>.<namespace>.example.com` of its
//! `status.url`): Kourier's Envoy picks a revision by the percents of the
//! Service's `status.traffic` (what Knative's controller made of
//! `spec.traffic`, see [`crate::knative`]) and sends the request to the
//! revision's pods. Envoy's series name the revision's cluster
//! `<namespace>/<revision>`, as Flagger's Knative queries select it.

use std::time::Instant;

use serde_json::Value;

use super::{
    Cluster, ISTIO_BUCKETS, Inner, Recorder, Request, Response, Rng, Traffic, answer_503,
    pick_weighted,
};

/// The Envoy of an edge proxy, where its series come from.
const ENVOY_POD: (&str, &str) = ("projectcontour", "envoy-sim01");

/// The Envoy of Knative's ingress (Kourier).
const KOURIER_POD: (&str, &str) = ("kourier-system", "3scale-kourier-gateway-sim01");

/// A request an edge proxy sends to a Service.
pub(super) struct EdgeHit {
    namespace: String,
    service: String,
    port: u16,
    host: String,
    proxy: Proxy,
}

/// Which proxy sent it, for its series.
#[derive(Clone, Copy)]
enum Proxy {
    Envoy,
    Traefik,
    /// Kourier, Knative's Envoy: the Service is a revision's.
    Kourier,
}

/// Traefik's default request duration buckets (seconds).
const TRAEFIK_BUCKETS: &[f64] = &[0.1, 0.3, 1.2, 5.0];

/// How many levels of includes are followed (Contour refuses cycles).
const MAX_INCLUDE_DEPTH: usize = 4;

/// One route as the root sees it: the conditions of the includes on the
/// way and its own, and its Services.
struct Candidate<'a> {
    namespace: &'a str,
    conditions: Vec<&'a Value>,
    services: &'a [Value],
}

fn proxy<'a>(c: &'a Cluster, ns: &str, name: &str) -> Option<&'a Value> {
    c.edge(EdgeKind::HttpProxy)
        .iter()
        .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == name)
}

fn collect<'a>(
    c: &'a Cluster,
    p: &'a Value,
    inherited: Vec<&'a Value>,
    depth: usize,
    out: &mut Vec<Candidate<'a>>,
) {
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
    for r in p["spec"]["routes"].as_array().into_iter().flatten() {
        let mut conditions = inherited.clone();
        conditions.extend(r["conditions"].as_array().into_iter().flatten());
        if let Some(services) = r["services"].as_array() {
            out.push(Candidate {
                namespace: ns,
                conditions,
                services,
            });
        }
    }
    if depth >= MAX_INCLUDE_DEPTH {
        return;
    }
    for inc in p["spec"]["includes"].as_array().into_iter().flatten() {
        let name = inc["name"].as_str().unwrap_or("");
        let inc_ns = inc["namespace"].as_str().unwrap_or(ns);
        if let Some(child) = proxy(c, inc_ns, name) {
            let mut conditions = inherited.clone();
            conditions.extend(inc["conditions"].as_array().into_iter().flatten());
            collect(c, child, conditions, depth + 1, out);
        }
    }
}

/// The path prefix of a route's conditions (concatenated along includes,
/// as Contour joins them) and its header conditions, if the request
/// matches them all.
fn matches(conditions: &[&Value], req: &Request, path: &str) -> Option<(usize, usize)> {
    let mut prefix = String::new();
    let mut headers = 0;
    for cond in conditions {
        if let Some(p) = cond["prefix"].as_str() {
            // A `/` below an include keeps the include's prefix.
            let p = p.trim_start_matches('/');
            if !p.is_empty() {
                prefix = format!("{}/{p}", prefix.trim_end_matches('/'));
            }
        }
        if cond["header"].is_object() {
            headers += 1;
            if !header_matches(&cond["header"], req) {
                return None;
            }
        }
    }
    let prefix = if prefix.is_empty() { "/" } else { &prefix };
    path.starts_with(prefix).then_some((prefix.len(), headers))
}

/// A Contour header condition.
fn header_matches(h: &Value, req: &Request) -> bool {
    let value = req.header(h["name"].as_str().unwrap_or(""));
    let s = |k: &str| h[k].as_str().filter(|v| !v.is_empty());
    if let Some(v) = s("exact") {
        return value == Some(v);
    }
    if let Some(v) = s("notexact") {
        return value != Some(v);
    }
    if let Some(v) = s("contains") {
        return value.is_some_and(|x| x.contains(v));
    }
    if let Some(v) = s("notcontains") {
        return !value.is_some_and(|x| x.contains(v));
    }
    if h["present"] == true {
        return value.is_some();
    }
    // A condition without a test matches nothing Contour would accept.
    false
}

/// Where Contour sends a request for `host`: `None` when no root HTTPProxy
/// names the host; `Some(Err)` when one does but no route matches (Envoy's
/// 404) or every weight is 0.
pub(super) fn contour_route(
    c: &Cluster,
    host: &str,
    req: &Request,
    rng: &mut Rng,
) -> Option<Result<EdgeHit, u16>> {
    let root = c.edge(EdgeKind::HttpProxy).iter().find(|p| {
        p["spec"]["virtualhost"]["fqdn"]
            .as_str()
            .is_some_and(|f| f.eq_ignore_ascii_case(host))
    })?;
    let mut candidates = Vec::new();
    collect(c, root, Vec::new(), 0, &mut candidates);
    let path = req.path.split('?').next().unwrap_or("/");
    let best = candidates
        .iter()
        .filter_map(|cand| matches(&cand.conditions, req, path).map(|rank| (rank, cand)))
        .max_by_key(|(rank, _)| *rank);
    let Some((_, route)) = best else {
        return Some(Err(404));
    };
    let any_weight = route.services.iter().any(|s| s["weight"].is_number());
    let weighted: Vec<(&Value, f64)> = route
        .services
        .iter()
        .map(|s| {
            let w = if any_weight {
                s["weight"].as_f64().unwrap_or(0.0)
            } else {
                1.0
            };
            (s, w)
        })
        .collect();
    let Some(chosen) = pick_weighted(&weighted, rng) else {
        return Some(Err(503));
    };
    Some(Ok(EdgeHit {
        namespace: route.namespace.to_string(),
        service: chosen["name"].as_str().unwrap_or("").to_string(),
        port: chosen["port"].as_u64().unwrap_or(80) as u16,
        host: host.to_string(),
        proxy: Proxy::Envoy,
    }))
}

/// The arguments of each `Name(`...`)` in a Traefik rule.
fn rule_args<'a>(rule: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = rule;
    let open = format!("{name}(");
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(end) = rest.find(')') else { break };
        for arg in rest[..end].split(',') {
            out.push(arg.trim().trim_matches(|c| c == '`' || c == '"'));
        }
        rest = &rest[end..];
    }
    out
}

/// Where Traefik sends a request for `host`: `None` when no IngressRoute
/// names the host; `Some(Err)` when one does but no route matches (404)
/// or no service has a weight (503).
pub(super) fn traefik_route(
    c: &Cluster,
    host: &str,
    req: &Request,
    rng: &mut Rng,
) -> Option<Result<EdgeHit, u16>> {
    let path = req.path.split('?').next().unwrap_or("/");
    let mut host_known = false;
    let mut best: Option<(usize, &Value, &str)> = None;
    for ir in c.edge(EdgeKind::IngressRoute) {
        let ns = ir["metadata"]["namespace"].as_str().unwrap_or("");
        for r in ir["spec"]["routes"].as_array().into_iter().flatten() {
            let rule = r["match"].as_str().unwrap_or("");
            if !rule_args(rule, "Host")
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
            {
                continue;
            }
            host_known = true;
            let prefixes = rule_args(rule, "PathPrefix");
            let len = if prefixes.is_empty() {
                Some(0)
            } else {
                prefixes
                    .iter()
                    .filter(|p| path.starts_with(**p))
                    .map(|p| p.len())
                    .max()
            };
            if let Some(len) = len
                && best.is_none_or(|(l, _, _)| len > l)
            {
                best = Some((len, r, ns));
            }
        }
    }
    if !host_known {
        return None;
    }
    let Some((_, route, ns)) = best else {
        return Some(Err(404));
    };
    let weighted = |services: &[Value], default_ns: &str| -> Vec<((String, Value), f64)> {
        services
            .iter()
            .map(|s| {
                let ns = s["namespace"].as_str().unwrap_or(default_ns).to_string();
                ((ns, s.clone()), s["weight"].as_f64().unwrap_or(1.0))
            })
            .collect()
    };
    let Some((svc_ns, chosen)) = pick_weighted(
        &weighted(route["services"].as_array().map_or(&[], Vec::as_slice), ns),
        rng,
    ) else {
        return Some(Err(503));
    };
    let (svc_ns, chosen) = if chosen["kind"] == "TraefikService" {
        let name = chosen["name"].as_str().unwrap_or("");
        let Some(ts) = c.edge(EdgeKind::TraefikService).iter().find(|t| {
            t["metadata"]["namespace"] == svc_ns.as_str() && t["metadata"]["name"] == name
        }) else {
            return Some(Err(404));
        };
        let services = ts["spec"]["weighted"]["services"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        match pick_weighted(&weighted(services, &svc_ns), rng) {
            Some(x) => x,
            None => return Some(Err(503)),
        }
    } else {
        (svc_ns, chosen)
    };
    Some(Ok(EdgeHit {
        namespace: svc_ns,
        service: chosen["name"].as_str().unwrap_or("").to_string(),
        port: chosen["port"].as_u64().unwrap_or(80) as u16,
        host: host.to_string(),
        proxy: Proxy::Traefik,
    }))
}

/// The host names a Knative Service answers for, in the cluster and out.
fn knative_hosts(ns: &str, name: &str) -> [String; 4] {
    [
        format!("{name}.{ns}.svc.cluster.local"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.example.com"),
    ]
}

/// Where Knative sends a request for `host`: `None` when no Knative
/// Service answers for it; 503 when it routes to no revision yet (no
/// revision ready, every percent 0).
pub(super) fn knative_route(
    c: &Cluster,
    host: &str,
    rng: &mut Rng,
) -> Option<Result<EdgeHit, u16>> {
    let ksvc = c.edge(EdgeKind::KnativeService).iter().find(|s| {
        let ns = s["metadata"]["namespace"].as_str().unwrap_or("");
        let name = s["metadata"]["name"].as_str().unwrap_or("");
        knative_hosts(ns, name).iter().any(|h| h == host)
    })?;
    let ns = ksvc["metadata"]["namespace"].as_str().unwrap_or("");
    let targets: Vec<(String, f64)> = ksvc["status"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let rev = t["revisionName"].as_str()?;
            let pct = t["percent"].as_f64().unwrap_or(0.0);
            (pct > 0.0).then(|| (rev.to_string(), pct))
        })
        .collect();
    let Some(revision) = pick_weighted(&targets, rng) else {
        return Some(Err(503));
    };
    Some(Ok(EdgeHit {
        namespace: ns.to_string(),
        service: revision,
        port: crate::knative::REVISION_PORT,
        host: host.to_string(),
        proxy: Proxy::Kourier,
    }))
}

/// The custom resources of the edge proxies the traffic follows./// The custom resources of the edge proxies the traffic follows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(super) enum EdgeKind {
    HttpProxy,
    IngressRoute,
    TraefikService,
    KnativeService,
}

impl EdgeKind {
    pub(super) const ALL: [EdgeKind; 4] = [
        EdgeKind::HttpProxy,
        EdgeKind::IngressRoute,
        EdgeKind::TraefikService,
        EdgeKind::KnativeService,
    ];

    /// Group, versions (preferred first) and kind.
    pub(super) fn kind(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            EdgeKind::HttpProxy => ("projectcontour.io", &["v1"], "HTTPProxy"),
            EdgeKind::IngressRoute => ("traefik.io", &["v1alpha1"], "IngressRoute"),
            EdgeKind::TraefikService => ("traefik.io", &["v1alpha1"], "TraefikService"),
            EdgeKind::KnativeService => ("serving.knative.dev", &["v1"], "Service"),
        }
    }
}

/// The series' help texts.
pub(super) const HELP: &[(&str, &str)] = &[
    (
        "envoy_cluster_upstream_rq",
        "Total upstream requests by response code",
    ),
    (
        "envoy_cluster_upstream_rq_time",
        "Upstream request time in milliseconds",
    ),
    (
        "traefik_service_requests_total",
        "How many HTTP requests processed on a service, partitioned by status code, protocol, and method.",
    ),
    (
        "traefik_service_request_duration_seconds",
        "How long it took to process the request on a service, partitioned by status code, protocol, and method.",
    ),
];

impl Traffic {
    /// A request an edge proxy routed: the Service's pods answer, and the
    /// proxy records its series.
    pub(super) fn through_edge(
        &self,
        g: &mut Inner,
        c: &Cluster,
        req: &Request,
        hit: Result<EdgeHit, u16>,
        now: Instant,
        rec: &mut Recorder,
    ) -> Response {
        let hit = match hit {
            Ok(hit) => hit,
            // No route matched (404) or every weight is 0 (503): Envoy
            // answers itself.
            Err(status) => {
                return Response {
                    status,
                    ..answer_503("")
                };
            }
        };
        let has_pods = c
            .service_port(&hit.namespace, &hit.service, Some(hit.port))
            .is_some_and(|(svc, _)| !c.endpoints(&hit.namespace, svc).is_empty());
        if !has_pods {
            return answer_503("no healthy upstream");
        }
        let answer = self.to_service(
            g,
            c,
            req,
            &hit.namespace,
            &hit.service,
            Some(hit.port),
            &hit.host,
            None,
            now,
            rec,
        );
        if answer.error.is_none() {
            let ms = answer.latency.as_secs_f64() * 1000.0;
            match hit.proxy {
                Proxy::Envoy => {
                    let cluster = format!("{}_{}_{}", hit.namespace, hit.service, hit.port);
                    rec.envoy(ENVOY_POD, &cluster, answer.status, ms);
                }
                Proxy::Kourier => {
                    let cluster = format!("{}/{}", hit.namespace, hit.service);
                    rec.envoy(KOURIER_POD, &cluster, answer.status, ms);
                }
                Proxy::Traefik => {
                    let service = format!(
                        "{}-{}-{}@kubernetescrd",
                        hit.namespace, hit.service, hit.port
                    );
                    rec.traefik(&service, &req.method, answer.status, ms);
                }
            }
        }
        answer
    }
}

impl Recorder {
    /// Traefik's service series for one answer.
    fn traefik(&mut self, service: &str, method: &str, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let labels = [
            ("namespace", "traefik"),
            ("pod", "traefik-sim01"),
            ("service", service),
            ("code", code.as_str()),
            ("method", method),
            ("protocol", "http"),
        ];
        self.count("traefik_service_requests_total", &labels);
        self.observe(
            "traefik_service_request_duration_seconds",
            &labels,
            TRAEFIK_BUCKETS,
            latency_ms / 1000.0,
        );
    }

    /// Envoy's upstream cluster series for one answer.
    fn envoy(&mut self, pod: (&str, &str), cluster: &str, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let base = [
            ("namespace", pod.0),
            ("pod", pod.1),
            ("envoy_cluster_name", cluster),
        ];
        let mut with_code = base.to_vec();
        with_code.push(("envoy_response_code", code.as_str()));
        self.count("envoy_cluster_upstream_rq", &with_code);
        self.observe(
            "envoy_cluster_upstream_rq_time",
            &base,
            ISTIO_BUCKETS,
            latency_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Target;
    use serde_json::json;
    use std::collections::{BTreeMap, HashMap, HashSet};

    fn cluster(kind: EdgeKind, objects: Vec<Value>) -> Cluster {
        Cluster {
            namespaces: HashMap::new(),
            services: HashMap::new(),
            pods: HashMap::new(),
            pod_uids: HashSet::new(),
            splits: Vec::new(),
            httproutes: Vec::new(),
            virtualservices: Vec::new(),
            ingresses: Vec::new(),
            trafficroutes: Vec::new(),
            apisixroutes: Vec::new(),
            edge: BTreeMap::from([(kind, objects)]),
        }
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut r = Request::get(
            Target::Host {
                host: "www.example.com".into(),
                port: None,
                namespace: "prod".into(),
            },
            path,
        );
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }

    fn proxy(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "prod"}, "spec": spec})
    }

    /// The Service a request for `www.example.com` reaches, or the status
    /// the proxy answers.
    fn reached(c: &Cluster, route: RouteFn, req: &Request) -> Option<Result<String, u16>> {
        let mut rng = Rng::new(3);
        route(c, "www.example.com", req, &mut rng).map(|r| r.map(|h| h.service))
    }

    type RouteFn = fn(&Cluster, &str, &Request, &mut Rng) -> Option<Result<EdgeHit, u16>>;

    #[test]
    fn contour_follows_the_root_includes_prefixes_and_header_conditions() {
        let c = cluster(
            EdgeKind::HttpProxy,
            vec![
                proxy(
                    "www",
                    json!({
                        "virtualhost": {"fqdn": "www.example.com"},
                        "includes": [{"name": "podinfo", "conditions": [{"prefix": "/api"}]}]
                    }),
                ),
                proxy(
                    "podinfo",
                    json!({"routes": [
                        {
                            "conditions": [{"prefix": "/", "header": {"name": "x-canary", "exact": "insider"}}],
                            "services": [
                                {"name": "podinfo-primary", "port": 9898},
                                {"name": "podinfo-canary", "port": 9898, "weight": 100}
                            ]
                        },
                        {
                            "conditions": [{"prefix": "/"}],
                            "services": [
                                {"name": "podinfo-primary", "port": 9898, "weight": 100},
                                {"name": "podinfo-canary", "port": 9898}
                            ]
                        }
                    ]}),
                ),
            ],
        );
        let route: RouteFn = contour_route;
        assert_eq!(
            reached(&c, route, &request("/api/info", &[("x-canary", "insider")])),
            Some(Ok("podinfo-canary".into()))
        );
        assert_eq!(
            reached(&c, route, &request("/api/info", &[("x-canary", "other")])),
            Some(Ok("podinfo-primary".into()))
        );
        assert_eq!(
            reached(&c, route, &request("/api", &[])),
            Some(Ok("podinfo-primary".into()))
        );
        assert_eq!(reached(&c, route, &request("/", &[])), Some(Err(404)));
        let mut rng = Rng::new(3);
        assert!(contour_route(&c, "other.example.com", &request("/", &[]), &mut rng).is_none());
    }

    #[test]
    fn traefik_reads_host_and_prefix_rules_and_weighs_a_traefikservice() {
        assert_eq!(
            rule_args(
                "Host(`a.example.com`, `b.example.com`) && PathPrefix(`/api`)",
                "Host"
            ),
            ["a.example.com", "b.example.com"]
        );
        let mut c = cluster(
            EdgeKind::IngressRoute,
            vec![proxy(
                "podinfo",
                json!({"routes": [{
                    "match": "Host(`www.example.com`) && PathPrefix(`/`)",
                    "kind": "Rule",
                    "services": [{"name": "podinfo", "kind": "TraefikService"}]
                }]}),
            )],
        );
        c.edge.insert(
            EdgeKind::TraefikService,
            vec![proxy(
                "podinfo",
                json!({"weighted": {"services": [
                    {"name": "podinfo-primary", "namespace": "prod", "port": 80, "weight": 100}
                ]}}),
            )],
        );
        let route: RouteFn = traefik_route;
        for _ in 0..20 {
            assert_eq!(
                reached(&c, route, &request("/", &[])),
                Some(Ok("podinfo-primary".into()))
            );
        }
        c.edge.insert(EdgeKind::TraefikService, Vec::new());
        assert_eq!(reached(&c, route, &request("/", &[])), Some(Err(404)));
    }
}
