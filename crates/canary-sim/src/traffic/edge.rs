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
//! Skipper serves the Ingresses of its class (`spec.ingressClassName` or
//! the `kubernetes.io/ingress.class` annotation `skipper`; the NGINX model
//! leaves them alone). Each path of such an Ingress is a route for its
//! host; the route whose path matches longest wins, then the one whose
//! Ingress's `zalando.org/skipper-predicate` carries the heavier
//! `Weight(n)`. A predicate with `False()` switches the Ingress's routes
//! off. The paths of the winning Ingress with the same host and path share
//! the requests by its `zalando.org/backend-weights` (ratios; a backend
//! missing from it gets none, all equally when none is listed). Skipper
//! records `skipper_serve_route_duration_seconds` and
//! `skipper_response_duration_seconds` (Prometheus' default buckets) by
//! `code`, `method` and `route`, the route id Skipper derives from the
//! Ingress, `kube_<namespace>__<ingress>__<host>__<path>__<service>` with
//! every non-word character written `_`, which Flagger's Skipper queries
//! select on.
//! Gloo Edge serves a host named in a `gateway.solo.io/v1` VirtualService's
//! `virtualHost.domains` (`*` for any). Its routes are tried in order, as
//! Gloo hands them to Envoy; a route delegating to a RouteTable
//! (`delegateAction`) stands for the RouteTable's routes, in their order.
//! A delegated route inherits the parent's path matcher when it sets
//! `inheritablePathMatchers`, and otherwise must match a path under the
//! parent's prefix; its header and method matchers are its own (plus the
//! parent's with `inheritableMatchers`). The first route whose matchers
//! match wins; a request no route matches gets Envoy's 404. A route sends
//! to one `gloo.solo.io/v1` Upstream (`single`) or to several by weight
//! (`multi`; a destination without a weight has 0), and a Kubernetes
//! Upstream (`spec.kube`) to its Service's port. Envoy's upstream series
//! are recorded as for Contour, with Gloo's cluster name
//! `<upstream>_<namespace>`, which Flagger's Gloo queries select.
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
    Cluster, ISTIO_BUCKETS, Inner, NGINX_BUCKETS, PortRef, Recorder, Request, Response, Rng,
    Traffic, answer_503, host_matches, ingress_paths, path_match, pick_weighted,
};

/// Contour's Envoy, where its series come from.
const ENVOY_POD: (&str, &str) = ("projectcontour", "envoy-sim01");

/// Gloo's gateway proxy (an Envoy), where its series come from.
const GLOO_POD: (&str, &str) = ("gloo-system", "gateway-proxy-sim01");
/// The Envoy of Knative's ingress (Kourier).
const KOURIER_POD: (&str, &str) = ("kourier-system", "3scale-kourier-gateway-sim01");

/// A request an edge proxy sends to a Service.
pub(super) struct EdgeHit {
    namespace: String,
    service: String,
    port: u16,
    host: String,
    proxy: Proxy,
    /// Skipper's route id; empty for the other proxies.
    route: String,
}

/// Which proxy sent it, for its series.
#[derive(Clone)]
enum Proxy {
    Envoy,
    Traefik,
    Skipper,
    /// Gloo's Envoy, with the cluster name of the Upstream.
    Gloo(String),
    /// Kourier, Knative's Envoy: the Service is a revision's.
    Kourier,
}

/// Where Skipper's series come from.
const SKIPPER_POD: (&str, &str) = ("kube-system", "skipper-ingress-sim01");

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
        route: String::new(),
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
        route: String::new(),
    }))
}

/// Whether Skipper serves the Ingress `i`.
pub(super) fn is_skipper_ingress(i: &Value) -> bool {
    i["spec"]["ingressClassName"] == "skipper"
        || i["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "skipper"
}

/// Skipper's route id part: every non-word character written `_`.
fn route_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `Weight(n)` of a Skipper predicate, and whether it has `False()`.
fn predicate_of(i: &Value) -> (u64, bool) {
    let raw = i["metadata"]["annotations"]["zalando.org/skipper-predicate"]
        .as_str()
        .unwrap_or("");
    let mut weight = 0;
    let mut off = false;
    for p in raw.split("&&").map(str::trim) {
        if p.replace(' ', "") == "False()" {
            off = true;
        } else if let Some(n) = p
            .strip_prefix("Weight(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.trim().parse::<u64>().ok())
        {
            weight += n;
        }
    }
    (weight, off)
}

/// Where Skipper sends a request for `host`: `None` when no Skipper
/// Ingress names the host; `Some(Err)` when one does but no route matches
/// (404) or no backend of the route has a weight (503).
pub(super) fn skipper_route(
    c: &Cluster,
    host: &str,
    req: &Request,
    rng: &mut Rng,
) -> Option<Result<EdgeHit, u16>> {
    let path = req.path.split('?').next().unwrap_or("/");
    let mut host_known = false;
    // (path match, predicate weight), the Ingress, the rule host and path.
    let mut best: Option<((usize, u64), &Value, String, String)> = None;
    for ing in c.ingresses.iter().filter(|i| is_skipper_ingress(i)) {
        let (weight, off) = predicate_of(ing);
        for (rule_host, rule_path, _) in ingress_paths(ing) {
            if rule_host.is_empty() || !host_matches(&rule_host, host) {
                continue;
            }
            host_known = true;
            if off {
                continue;
            }
            let Some(len) = path_match(&rule_path.0, &rule_path.1, path) else {
                continue;
            };
            if best.as_ref().is_none_or(|(rank, ..)| (len, weight) > *rank) {
                best = Some(((len, weight), ing, rule_host, rule_path.0));
            }
        }
    }
    if !host_known {
        return None;
    }
    let Some((_, ing, rule_host, rule_path)) = best else {
        return Some(Err(404));
    };
    let ns = ing["metadata"]["namespace"].as_str().unwrap_or("");
    let name = ing["metadata"]["name"].as_str().unwrap_or("");
    let weights: serde_json::Map<String, Value> =
        ing["metadata"]["annotations"]["zalando.org/backend-weights"]
            .as_str()
            .and_then(|w| serde_json::from_str(w).ok())
            .unwrap_or_default();
    let backends: Vec<((String, PortRef), f64)> = ingress_paths(ing)
        .into_iter()
        .filter(|(h, p, _)| *h == rule_host && p.0 == rule_path)
        .filter_map(|(_, _, backend)| backend)
        .map(|(svc, port)| {
            let w = if weights.is_empty() {
                1.0
            } else {
                weights.get(&svc).and_then(Value::as_f64).unwrap_or(0.0)
            };
            ((svc, port), w)
        })
        .collect();
    let Some((svc, port)) = pick_weighted(&backends, rng) else {
        return Some(Err(503));
    };
    let port = match port {
        PortRef::Number(n) => n,
        PortRef::Name(pn) => c
            .services
            .get(&(ns.to_string(), svc.clone()))
            .and_then(|s| {
                s["spec"]["ports"]
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == pn.as_str())?["port"]
                    .as_u64()
            })
            .unwrap_or(80) as u16,
    };
    let route = format!(
        "kube_{}__{}__{}__{}__{}",
        route_word(ns),
        route_word(name),
        route_word(&rule_host),
        route_word(&rule_path),
        route_word(&svc)
    );
    Some(Ok(EdgeHit {
        namespace: ns.to_string(),
        service: svc,
        port,
        host: host.to_string(),
        proxy: Proxy::Skipper,
        route,
    }))
}

/// One Gloo matcher (`matchers[]` of a route), against the request: the
/// path (`prefix`, `exact` or `regex`; `/` when none), the headers (a
/// `value`, a full-match `regex`, or presence without a value;
/// `invertMatch` turns the test around) and the methods.
fn gloo_matches(m: &Value, path_from: &Value, req: &Request, path: &str) -> bool {
    let s = |v: &Value, k: &str| v[k].as_str().map(str::to_string);
    let path_ok = if let Some(e) = s(path_from, "exact") {
        path == e
    } else if let Some(re) = s(path_from, "regex") {
        regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(path))
    } else {
        path.starts_with(s(path_from, "prefix").as_deref().unwrap_or("/"))
    };
    let headers_ok = m["headers"].as_array().into_iter().flatten().all(|h| {
        let value = req.header(h["name"].as_str().unwrap_or(""));
        let found = match (h["value"].as_str().filter(|v| !v.is_empty()), value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(got)) if h["regex"] == true => {
                regex::Regex::new(&format!("^(?:{want})$")).is_ok_and(|r| r.is_match(got))
            }
            (Some(want), Some(got)) => want == got,
        };
        found != (h["invertMatch"] == true)
    });
    let methods_ok = m["methods"].as_array().is_none_or(|ms| {
        ms.is_empty()
            || ms.iter().any(|x| {
                x.as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&req.method))
            })
    });
    path_ok && headers_ok && methods_ok
}

/// The matchers of a Gloo route; a route without any matches everything
/// (a `/` prefix).
fn gloo_matchers(route: &Value) -> Vec<Value> {
    match route["matchers"].as_array() {
        Some(ms) if !ms.is_empty() => ms.clone(),
        _ => vec![serde_json::json!({"prefix": "/"})],
    }
}

/// The RouteTable a VirtualService route delegates to: `delegateAction.ref`
/// or the older `delegateAction.{name,namespace}`.
fn gloo_delegate<'a>(c: &'a Cluster, route: &Value, ns: &str) -> Option<&'a Value> {
    let d = &route["delegateAction"];
    let r = if d["ref"].is_object() { &d["ref"] } else { d };
    let name = r["name"].as_str()?;
    let rns = r["namespace"].as_str().unwrap_or(ns);
    c.edge(EdgeKind::RouteTable)
        .iter()
        .find(|t| t["metadata"]["namespace"] == rns && t["metadata"]["name"] == name)
}

/// Where Gloo's gateway sends a request for `host`: `None` when no
/// VirtualService names the host; `Some(Err)` when one does but no route
/// matches (404) or the route's upstream cannot be reached (503).
pub(super) fn gloo_route(
    c: &Cluster,
    host: &str,
    req: &Request,
    rng: &mut Rng,
) -> Option<Result<EdgeHit, u16>> {
    let vs = c.edge(EdgeKind::GlooVirtualService).iter().find(|v| {
        v["spec"]["virtualHost"]["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d == "*" || d.as_str().is_some_and(|d| d.eq_ignore_ascii_case(host)))
    })?;
    let vs_ns = vs["metadata"]["namespace"].as_str().unwrap_or("");
    let path = req.path.split('?').next().unwrap_or("/");
    // The first route, delegated ones in place, whose matchers match, and
    // the namespace its upstream references default to.
    let mut chosen: Option<(&Value, &str)> = None;
    'routes: for route in vs["spec"]["virtualHost"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let parents = gloo_matchers(route);
        if route["delegateAction"].is_object() {
            let Some(table) = gloo_delegate(c, route, vs_ns) else {
                continue;
            };
            let rt_ns = table["metadata"]["namespace"].as_str().unwrap_or(vs_ns);
            for child in table["spec"]["routes"].as_array().into_iter().flatten() {
                let inherit_path = child["inheritablePathMatchers"] == true;
                let inherit_rest = child["inheritableMatchers"] == true;
                let hit = parents.iter().any(|p| {
                    gloo_matchers(child).iter().any(|m| {
                        let path_from = if inherit_path { p } else { m };
                        let parent_prefix = p["prefix"].as_str().unwrap_or("/");
                        let under_parent = inherit_path
                            || m["prefix"]
                                .as_str()
                                .or(m["exact"].as_str())
                                .unwrap_or("/")
                                .starts_with(parent_prefix);
                        under_parent
                            && gloo_matches(m, path_from, req, path)
                            && (!inherit_rest || gloo_matches(p, p, req, path))
                    })
                });
                if hit {
                    chosen = Some((child, rt_ns));
                    break 'routes;
                }
            }
        } else if parents.iter().any(|m| gloo_matches(m, m, req, path)) {
            chosen = Some((route, vs_ns));
            break;
        }
    }
    let Some((route, ns)) = chosen else {
        return Some(Err(404));
    };
    let action = &route["routeAction"];
    let upstream = if action["single"].is_object() {
        action["single"]["upstream"].clone()
    } else {
        let weighted: Vec<(&Value, f64)> = action["multi"]["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    &d["destination"]["upstream"],
                    d["weight"].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        match pick_weighted(&weighted, rng) {
            Some(u) => u.clone(),
            None => return Some(Err(503)),
        }
    };
    let us_name = upstream["name"].as_str().unwrap_or("");
    let us_ns = upstream["namespace"].as_str().unwrap_or(ns);
    let Some(us) = c
        .edge(EdgeKind::GlooUpstream)
        .iter()
        .find(|u| u["metadata"]["namespace"] == us_ns && u["metadata"]["name"] == us_name)
    else {
        return Some(Err(503));
    };
    let kube = &us["spec"]["kube"];
    let Some(service) = kube["serviceName"].as_str() else {
        return Some(Err(503));
    };
    Some(Ok(EdgeHit {
        namespace: kube["serviceNamespace"]
            .as_str()
            .unwrap_or(us_ns)
            .to_string(),
        service: service.to_string(),
        port: kube["servicePort"].as_u64().unwrap_or(80) as u16,
        host: host.to_string(),
        proxy: Proxy::Gloo(format!("{us_name}_{us_ns}")),
        route: String::new(),
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
        route: String::new(),
    }))
}

/// The custom resources of the edge proxies the traffic follows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(super) enum EdgeKind {
    HttpProxy,
    IngressRoute,
    TraefikService,
    GlooVirtualService,
    RouteTable,
    GlooUpstream,
    KnativeService,
}

impl EdgeKind {
    pub(super) const ALL: [EdgeKind; 7] = [
        EdgeKind::HttpProxy,
        EdgeKind::IngressRoute,
        EdgeKind::TraefikService,
        EdgeKind::GlooVirtualService,
        EdgeKind::RouteTable,
        EdgeKind::GlooUpstream,
        EdgeKind::KnativeService,
    ];

    /// Group, versions (preferred first) and kind.
    pub(super) fn kind(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            EdgeKind::HttpProxy => ("projectcontour.io", &["v1"], "HTTPProxy"),
            EdgeKind::IngressRoute => ("traefik.io", &["v1alpha1"], "IngressRoute"),
            EdgeKind::TraefikService => ("traefik.io", &["v1alpha1"], "TraefikService"),
            EdgeKind::GlooVirtualService => ("gateway.solo.io", &["v1"], "VirtualService"),
            EdgeKind::RouteTable => ("gateway.solo.io", &["v1"], "RouteTable"),
            EdgeKind::GlooUpstream => ("gloo.solo.io", &["v1"], "Upstream"),
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
        "skipper_serve_route_duration_seconds",
        "Duration in seconds of serving a route.",
    ),
    (
        "skipper_response_duration_seconds",
        "Duration in seconds of a response.",
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
            match &hit.proxy {
                Proxy::Envoy => {
                    let cluster = format!("{}_{}_{}", hit.namespace, hit.service, hit.port);
                    rec.envoy(ENVOY_POD, &cluster, answer.status, ms);
                }
                Proxy::Kourier => {
                    let cluster = format!("{}/{}", hit.namespace, hit.service);
                    rec.envoy(KOURIER_POD, &cluster, answer.status, ms);
                }
                Proxy::Gloo(cluster) => rec.envoy(GLOO_POD, cluster, answer.status, ms),
                Proxy::Traefik => {
                    let service = format!(
                        "{}-{}-{}@kubernetescrd",
                        hit.namespace, hit.service, hit.port
                    );
                    rec.traefik(&service, &req.method, answer.status, ms);
                }
                Proxy::Skipper => rec.skipper(&hit.route, &req.method, answer.status, ms),
            }
        }
        answer
    }
}

impl Recorder {
    /// Skipper's route series for one answer.
    fn skipper(&mut self, route: &str, method: &str, status: u16, latency_ms: f64) {
        let code = status.to_string();
        let labels = [
            ("namespace", SKIPPER_POD.0),
            ("pod", SKIPPER_POD.1),
            ("route", route),
            ("code", code.as_str()),
            ("method", method),
        ];
        for family in [
            "skipper_serve_route_duration_seconds",
            "skipper_response_duration_seconds",
        ] {
            self.observe(family, &labels, NGINX_BUCKETS, latency_ms / 1000.0);
        }
    }

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
    fn skipper_prefers_the_weighted_copy_splits_it_and_names_its_routes() {
        let ingress = |name: &str, annotations: Value, backends: &[&str]| {
            let paths: Vec<Value> = backends
                .iter()
                .map(|b| {
                    json!({"path": "/", "pathType": "Prefix",
                           "backend": {"service": {"name": b, "port": {"number": 80}}}})
                })
                .collect();
            json!({
                "metadata": {"name": name, "namespace": "prod", "annotations": annotations},
                "spec": {"ingressClassName": "skipper",
                         "rules": [{"host": "www.example.com", "http": {"paths": paths}}]},
            })
        };
        let apex = ingress("podinfo", json!({}), &["podinfo"]);
        let copy = |weights: &str, predicate: &str| {
            ingress(
                "podinfo-canary",
                json!({"zalando.org/backend-weights": weights,
                       "zalando.org/skipper-predicate": predicate}),
                &["podinfo-primary", "podinfo-canary"],
            )
        };
        let mut c = cluster(EdgeKind::HttpProxy, Vec::new());
        let req = request("/", &[]);
        let mut rng = Rng::new(3);
        let mut share = |c: &Cluster| {
            let mut n = BTreeMap::<String, usize>::new();
            for _ in 0..1000 {
                let hit = skipper_route(c, "www.example.com", &req, &mut rng)
                    .unwrap()
                    .ok()
                    .unwrap();
                *n.entry(hit.route).or_default() += 1;
            }
            n
        };
        c.ingresses = vec![
            apex.clone(),
            copy(
                r#"{"podinfo-canary":30,"podinfo-primary":70}"#,
                "Weight(100)",
            ),
        ];
        let n = share(&c);
        let canary = n["kube_prod__podinfo_canary__www_example_com_____podinfo_canary"];
        assert!((250..350).contains(&canary), "{n:?}");
        assert_eq!(n.len(), 2, "{n:?}");
        // Switched off: the user's Ingress serves everything.
        c.ingresses = vec![
            apex.clone(),
            copy(r#"{"podinfo-canary":0,"podinfo-primary":100}"#, "False()"),
        ];
        let n = share(&c);
        assert_eq!(
            n.keys().collect::<Vec<_>>(),
            ["kube_prod__podinfo__www_example_com_____podinfo"]
        );
        // Another class is not Skipper's.
        let mut nginx = apex.clone();
        nginx["spec"]["ingressClassName"] = json!("nginx");
        c.ingresses = vec![nginx];
        assert!(skipper_route(&c, "www.example.com", &req, &mut Rng::new(1)).is_none());
    }

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

    #[test]
    fn gloo_delegates_to_the_route_table_then_falls_through_to_the_next_route() {
        let upstream = |name: &str, service: &str| {
            proxy(
                name,
                json!({"kube": {"serviceName": service, "serviceNamespace": "prod", "servicePort": 9898}}),
            )
        };
        let mut c = cluster(
            EdgeKind::GlooVirtualService,
            vec![proxy(
                "www",
                json!({"virtualHost": {"domains": ["www.example.com"], "routes": [
                    {"matchers": [{"prefix": "/api"}],
                     "delegateAction": {"ref": {"name": "podinfo", "namespace": "prod"}}},
                    {"matchers": [{"prefix": "/"}],
                     "routeAction": {"single": {"upstream": {"name": "apex", "namespace": "prod"}}}}
                ]}}),
            )],
        );
        c.edge.insert(
            EdgeKind::RouteTable,
            vec![proxy(
                "podinfo",
                json!({"routes": [{
                    "inheritablePathMatchers": true,
                    "matchers": [{"headers": [
                        {"name": "x-canary", "value": "insider"},
                        {"name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$", "regex": true}
                    ]}],
                    "routeAction": {"multi": {"destinations": [
                        {"destination": {"upstream": {"name": "primary", "namespace": "prod"}}},
                        {"destination": {"upstream": {"name": "canary", "namespace": "prod"}}, "weight": 100}
                    ]}}
                }]}),
            )],
        );
        c.edge.insert(
            EdgeKind::GlooUpstream,
            vec![
                upstream("apex", "podinfo"),
                upstream("primary", "podinfo-primary"),
                upstream("canary", "podinfo-canary"),
            ],
        );
        let route: RouteFn = gloo_route;
        let both = [("x-canary", "insider"), ("cookie", "a=b;canary=always")];
        assert_eq!(
            reached(&c, route, &request("/api/info", &both)),
            Some(Ok("podinfo-canary".into()))
        );
        // The headers are all required, the path comes from the parent.
        assert_eq!(
            reached(&c, route, &request("/api/info", &both[..1])),
            Some(Ok("podinfo".into()))
        );
        assert_eq!(
            reached(&c, route, &request("/other", &both)),
            Some(Ok("podinfo".into()))
        );
        let mut rng = Rng::new(3);
        match gloo_route(&c, "www.example.com", &request("/api", &both), &mut rng) {
            Some(Ok(hit)) => assert!(matches!(&hit.proxy, Proxy::Gloo(n) if n == "canary_prod")),
            _ => panic!("routed to the canary upstream"),
        }
        assert!(gloo_route(&c, "other.example.com", &request("/", &[]), &mut rng).is_none());
        // A destination whose Upstream does not exist cannot be reached.
        c.edge.insert(EdgeKind::GlooUpstream, Vec::new());
        assert_eq!(reached(&c, route, &request("/", &[])), Some(Err(503)));
    }
}
