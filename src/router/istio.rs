//! Istio (`networking.istio.io/v1beta1`), as Flagger's Istio router writes
//! it: a VirtualService named after the apex Service whose HTTP routes send
//! traffic to the `<svc>-primary` and `<svc>-canary` hosts, and one
//! DestinationRule per host carrying `spec.service.trafficPolicy`.
//!
//! The VirtualService is the truth for the routing: the weights of the
//! route that names the canary host, a `mirror` on the first route
//! (mirroring), or a first route carrying `analysis.match` that sends its
//! requests to the canary (A/B testing).
//!
//! With `analysis.sessionAffinity`, [`sticky_routes`] puts Flagger's
//! `sticky-route` (and, with `primaryCookieName`, a
//! `sticky-primary-route`) before the weighted route, whose destinations
//! set the cookies (see [`super::affinity`]).
//!
//! The objects are built by pure functions ([`virtual_service_spec`],
//! [`destination_rule_spec`]) that the unit tests compare with what
//! Flagger writes for the same Canary. Where Flagger writes something
//! Istio cannot take, this router does better and says so: a `suffix`
//! header match (Istio's `StringMatch` has no `suffix`) is written as the
//! equivalent anchored `regex`.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use super::Router;
use super::affinity::{self, COOKIE, Cookies, SET_COOKIE};
use crate::cluster::cache::{self, Watched};
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{self, MANAGED_BY, Removal};
use canary_core::engine::schedule::{Routing, TOTAL_WEIGHT};
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;
use canary_core::spec::types::{HttpMatchRequest, StringMatch};

const GROUP: &str = "networking.istio.io";
const VERSION: &str = "v1beta1";

/// Annotations Flagger keeps on a VirtualService it takes over: what
/// `kubectl apply` last wrote, and the spec it found there.
const KUBECTL_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const CONFIG_ANNOTATION: &str = "flagger.kubernetes.app/original-configuration";

pub(crate) struct IstioRouter {
    client: kube::Client,
    /// The VirtualService, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

fn virtual_services() -> ApiResource {
    resource("VirtualService", "virtualservices")
}

fn destination_rules() -> ApiResource {
    resource("DestinationRule", "destinationrules")
}

fn labels_managed() -> std::collections::BTreeMap<String, String> {
    [(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]
        .into_iter()
        .collect()
}

/// A `StringMatch` as Istio takes it: `suffix` becomes the anchored regex
/// matching the same values.
fn string_match(m: &StringMatch) -> Value {
    match (&m.exact, &m.prefix, &m.suffix, &m.regex) {
        (_, _, Some(suffix), None) if m.exact.is_none() && m.prefix.is_none() => {
            json!({"regex": format!(".*{}", regex_escape(suffix))})
        }
        _ => {
            let mut out = Map::new();
            for (k, v) in [
                ("exact", &m.exact),
                ("prefix", &m.prefix),
                ("regex", &m.regex),
            ] {
                if let Some(v) = v {
                    out.insert(k.to_string(), json!(v));
                }
            }
            Value::Object(out)
        }
    }
}

/// Escapes the characters RE2 gives a meaning.
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn string_matches(m: &std::collections::BTreeMap<String, StringMatch>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect(),
    )
}

/// An `HTTPMatchRequest` as the VirtualService carries it.
fn match_request(m: &HttpMatchRequest) -> Value {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    if let Some(n) = &m.name {
        put("name", json!(n));
    }
    for (k, v) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(v) = v {
            put(k, string_match(v));
        }
    }
    if !m.headers.is_empty() {
        put("headers", string_matches(&m.headers));
    }
    if let Some(p) = m.port.filter(|p| *p > 0) {
        put("port", json!(p));
    }
    if !m.source_labels.is_empty() {
        put("sourceLabels", json!(m.source_labels));
    }
    if !m.gateways.is_empty() {
        put("gateways", json!(m.gateways));
    }
    if !m.query_params.is_empty() {
        put("queryParams", string_matches(&m.query_params));
    }
    if m.ignore_uri_case == Some(true) {
        put("ignoreUriCase", json!(true));
    }
    if !m.without_headers.is_empty() {
        put("withoutHeaders", string_matches(&m.without_headers));
    }
    if let Some(ns) = m.source_namespace.as_ref().filter(|s| !s.is_empty()) {
        put("sourceNamespace", json!(ns));
    }
    Value::Object(out)
}

/// Flagger's `mergeMatchConditions`: every canary condition combined with
/// every condition of `spec.service.match`, the canary's headers and
/// source labels taking the place of the service's.
fn merge_matches(canary: &[HttpMatchRequest], service: &[HttpMatchRequest]) -> Vec<Value> {
    if service.is_empty() {
        return canary.iter().map(match_request).collect();
    }
    let mut out = Vec::new();
    for c in canary {
        for d in service {
            let mut m = d.clone();
            if !c.headers.is_empty() {
                m.headers = c.headers.clone();
            }
            if !c.source_labels.is_empty() {
                m.source_labels = c.source_labels.clone();
            }
            out.push(match_request(&m));
        }
    }
    out
}

/// One destination: the host, the port when an ingress gateway is named
/// with `portDiscovery` (or the VirtualService is delegated), the weight.
fn destination(c: &ResolvedCanary, host: String, weight: u32) -> Value {
    let s = &c.service_spec;
    let gateway = s.gateways.first().is_some_and(|g| g != "mesh");
    let delegation = s.delegation == Some(true);
    let mut dest = json!({"host": host});
    if s.port_discovery == Some(true) && (gateway || delegation) {
        dest["port"] = json!({"number": c.port});
    }
    json!({"destination": dest, "weight": weight})
}

/// A route with what `spec.service` gives every route, `matches` and the
/// destinations.
fn route(c: &ResolvedCanary, matches: Vec<Value>, destinations: Vec<Value>) -> Value {
    let s = &c.service_spec;
    let mut r = Map::new();
    if !matches.is_empty() {
        r.insert("match".into(), Value::Array(matches));
    }
    r.insert("route".into(), Value::Array(destinations));
    if let Some(rw) = &s.rewrite {
        // Istio's rewrite has the URI and authority; the rewrite `type` is
        // the Gateway API's.
        let mut w = Map::new();
        if let Some(u) = rw.uri.as_ref().filter(|u| !u.is_empty()) {
            w.insert("uri".into(), json!(u));
        }
        if let Some(a) = rw.authority.as_ref().filter(|a| !a.is_empty()) {
            w.insert("authority".into(), json!(a));
        }
        r.insert("rewrite".into(), Value::Object(w));
    }
    if let Some(t) = s.timeout.as_ref().filter(|t| !t.is_empty()) {
        r.insert("timeout".into(), json!(t));
    }
    if let Some(retries) = &s.retries {
        let mut v = serde_json::to_value(retries).unwrap_or_default();
        // Istio requires `attempts`; Flagger always writes it.
        if v.get("attempts").is_none() {
            v["attempts"] = json!(0);
        }
        r.insert("retries".into(), v);
    }
    if let Some(cors) = &s.cors_policy {
        let mut v = serde_json::to_value(cors).unwrap_or_default();
        if !cors.allow_origins.is_empty() {
            v["allowOrigins"] = Value::Array(cors.allow_origins.iter().map(string_match).collect());
        }
        r.insert("corsPolicy".into(), v);
    }
    if let Some(h) = &s.headers {
        r.insert(
            "headers".into(),
            serde_json::to_value(h).unwrap_or_default(),
        );
    }
    Value::Object(r)
}

/// The HTTP routes of the VirtualService for `routing`, as Flagger's
/// `SetRoutes` writes them. An A/B canary always has two routes: its
/// matched requests (to the canary while `routing` is `Matched`, else by
/// the weights) before the default route to the primary.
pub(crate) fn http_routes(
    c: &ResolvedCanary,
    routing: &Routing,
) -> std::result::Result<Vec<Value>, String> {
    let primary = names::primary(&c.service);
    let canary = names::canary(&c.service);
    let service_match: Vec<Value> = c.service_spec.r#match.iter().map(match_request).collect();
    let (p, w, mirror) = match routing {
        Routing::Weighted { primary, canary } => (*primary, *canary, None),
        Routing::CanaryService => (TOTAL_WEIGHT, 0, None),
        Routing::Mirrored { mirror_weight } => (TOTAL_WEIGHT, 0, Some(*mirror_weight)),
        Routing::Matched { matches } => {
            if matches.is_empty() {
                return Err("route requests by match: the Canary has no `analysis.match`".into());
            }
            (0, TOTAL_WEIGHT, None)
        }
    };
    let ab_matches: &[HttpMatchRequest] = match routing {
        Routing::Matched { matches } => matches,
        _ => &c.matches,
    };
    if !ab_matches.is_empty() {
        if mirror.is_some() {
            return Err("mirror traffic during A/B testing".into());
        }
        return Ok(vec![
            route(
                c,
                merge_matches(ab_matches, &c.service_spec.r#match),
                vec![
                    destination(c, primary.clone(), p),
                    destination(c, canary, w),
                ],
            ),
            route(c, service_match, vec![destination(c, primary, p)]),
        ]);
    }
    let mut weighted = route(
        c,
        service_match,
        vec![
            destination(c, primary, p),
            destination(c, canary.clone(), w),
        ],
    );
    if let Some(mirror_weight) = mirror {
        weighted["mirror"] = json!({"host": canary});
        if let Some(mw) = mirror_weight.filter(|w| *w > 0) {
            weighted["mirrorPercentage"] = json!({"value": mw});
        }
    }
    Ok(vec![weighted])
}

/// The VirtualService's spec for `routing`: the hosts (the apex Service
/// added to `service.hosts`), the gateways (`mesh` when none is named),
/// neither for a delegated VirtualService, and the HTTP routes.
pub(crate) fn virtual_service_spec(
    c: &ResolvedCanary,
    routing: &Routing,
) -> std::result::Result<Value, String> {
    let s = &c.service_spec;
    let (hosts, gateways) = if s.delegation == Some(true) {
        (Vec::new(), Vec::new())
    } else {
        let mut hosts = s.hosts.clone();
        if !hosts.iter().any(|h| *h == c.service || h == "*") {
            hosts.push(c.service.clone());
        }
        let mut gateways = s.gateways.clone();
        if gateways.is_empty() {
            gateways.push("mesh".to_string());
        }
        (hosts, gateways)
    };
    let mut spec = json!({"hosts": hosts, "http": http_routes(c, routing)?});
    if !gateways.is_empty() {
        spec["gateways"] = json!(gateways);
    }
    Ok(spec)
}

/// The name Flagger gives the route keeping clients on the canary.
const STICKY_ROUTE: &str = "sticky-route";
/// The route keeping clients on the primary (`primaryCookieName`).
const STICKY_PRIMARY_ROUTE: &str = "sticky-primary-route";

/// Sets `headers.response.add[name]` on a route or destination.
fn add_response_header(v: &mut Value, name: &str, value: String) {
    if !v["headers"].is_object() {
        v["headers"] = json!({});
    }
    if !v["headers"]["response"].is_object() {
        v["headers"]["response"] = json!({});
    }
    if !v["headers"]["response"]["add"].is_object() {
        v["headers"]["response"]["add"] = json!({});
    }
    v["headers"]["response"]["add"][name] = json!(value);
}

/// The destination of `host` in a route.
fn destination_mut<'a>(route: &'a mut Value, host: &str) -> Option<&'a mut Value> {
    route["route"]
        .as_array_mut()?
        .iter_mut()
        .find(|d| d["destination"]["host"] == host)
}

/// The HTTP routes with session affinity (see [`affinity`]), as Flagger's
/// `SetRoutes` writes them: a `sticky-route` first, sending the requests
/// carrying the canary cookie to the canary while the canary has traffic
/// (else expiring the last canary cookie, or a copy of the weighted route
/// when there is none), then with `primaryCookieName` a
/// `sticky-primary-route` keeping the primary's clients on it, then the
/// weighted route whose destinations set the cookies. Routes without
/// session affinity are returned as they are.
pub(crate) fn sticky_routes(
    c: &ResolvedCanary,
    routes: Vec<Value>,
    cookies: &Cookies,
) -> Vec<Value> {
    if !affinity::applies(c) || routes.len() != 1 {
        return routes;
    }
    let mut weighted = routes.into_iter().next().unwrap_or_default();
    let primary = names::primary(&c.service);
    let canary = names::canary(&c.service);
    let cookie_route = |base: &Value, name: &str, cookie: &str| {
        let m = HttpMatchRequest {
            headers: [(
                COOKIE.to_string(),
                StringMatch {
                    regex: Some(affinity::cookie_regex(cookie)),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let mut r = base.clone();
        r["name"] = json!(name);
        r["match"] = json!(merge_matches(&[m], &c.service_spec.r#match));
        r
    };
    let mut out = Vec::new();
    if let Some(cookie) = &cookies.canary {
        let mut sticky = cookie_route(&weighted, STICKY_ROUTE, cookie);
        sticky["route"] = json!([
            destination(c, primary.clone(), 0),
            destination(c, canary.clone(), TOTAL_WEIGHT)
        ]);
        out.push(sticky);
        if let Some(p) = &cookies.primary {
            let mut sticky = cookie_route(&weighted, STICKY_PRIMARY_ROUTE, p);
            sticky["route"] = json!([
                destination(c, primary.clone(), TOTAL_WEIGHT),
                destination(c, canary.clone(), 0)
            ]);
            out.push(sticky);
            if let Some(d) = destination_mut(&mut weighted, &primary) {
                add_response_header(d, SET_COOKIE, affinity::primary_set_cookie(c, p));
            }
        }
        if let Some(d) = destination_mut(&mut weighted, &canary) {
            add_response_header(d, SET_COOKIE, affinity::canary_set_cookie(c, cookie));
        }
    } else if let Some(previous) = &cookies.previous {
        let mut sticky = cookie_route(&weighted, STICKY_ROUTE, previous);
        add_response_header(&mut sticky, SET_COOKIE, affinity::expiry(previous));
        out.push(sticky);
    } else {
        let mut sticky = weighted.clone();
        sticky["name"] = json!(STICKY_ROUTE);
        out.push(sticky);
    }
    out.push(weighted);
    out
}

/// The cookies a live VirtualService carries: the `Set-Cookie` of the
/// weighted route's canary destination, and the one the sticky route
/// expires.
fn live_cookies(c: &ResolvedCanary, spec: &Value) -> affinity::Live {
    let canary = names::canary(&c.service);
    let http = spec["http"].as_array().cloned().unwrap_or_default();
    let set_cookie = |v: &Value| {
        v["headers"]["response"]["add"][SET_COOKIE]
            .as_str()
            .map(str::to_string)
    };
    let weighted = http.iter().rev().find(|r| {
        r["route"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["destination"]["host"] == canary.as_str())
    });
    affinity::Live {
        canary: weighted
            .and_then(|r| r["route"].as_array())
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["host"] == canary.as_str())
            .and_then(set_cookie)
            .filter(|v| !affinity::is_expiry(v))
            .map(|v| affinity::cookie_of(&v)),
        previous: http
            .iter()
            .find(|r| r["name"] == STICKY_ROUTE)
            .and_then(set_cookie)
            .filter(|v| affinity::is_expiry(v))
            .map(|v| affinity::cookie_of(&v)),
    }
}

/// A DestinationRule's spec: the host and `service.trafficPolicy`.
pub(crate) fn destination_rule_spec(c: &ResolvedCanary, host: &str) -> Value {
    let mut spec = json!({"host": host});
    if let Some(tp) = &c.service_spec.traffic_policy {
        spec["trafficPolicy"] = serde_json::to_value(tp).unwrap_or_default();
    }
    spec
}

/// The routing a VirtualService does, or why it cannot be read.
pub(crate) fn routing_of(c: &ResolvedCanary, spec: &Value) -> std::result::Result<Routing, String> {
    let primary = names::primary(&c.service);
    let canary = names::canary(&c.service);
    let http = spec["http"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // As Flagger: the last route that names the canary host carries the
    // weights.
    let Some(r) = http.iter().rev().find(|r| {
        r["route"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["destination"]["host"] == canary.as_str())
    }) else {
        return Err(format!("it has no route to {canary}"));
    };
    let weight = |host: &str| -> Option<u32> {
        r["route"]
            .as_array()?
            .iter()
            .find(|d| d["destination"]["host"] == host)
            .map(|d| d["weight"].as_u64().unwrap_or(0) as u32)
    };
    let (Some(p), Some(w)) = (weight(&primary), weight(&canary)) else {
        return Err(format!(
            "its route to {canary} has no {primary} destination"
        ));
    };
    if p + w != TOTAL_WEIGHT {
        return Err(format!(
            "its weights {p} and {w} do not add up to {TOTAL_WEIGHT}"
        ));
    }
    if r["mirror"]["host"].as_str().is_some_and(|h| !h.is_empty()) {
        let mirror_weight = r["mirrorPercentage"]["value"]
            .as_f64()
            .filter(|v| *v > 0.0)
            .map(|v| v.round() as u32);
        return Ok(Routing::Mirrored { mirror_weight });
    }
    let matched = !r["match"].as_array().is_none_or(Vec::is_empty) && http.len() > 1;
    if matched && !c.matches.is_empty() && w == TOTAL_WEIGHT {
        return Ok(Routing::Matched {
            matches: c.matches.clone(),
        });
    }
    Ok(Routing::Weighted {
        primary: p,
        canary: w,
    })
}

/// The spec without what the routing changes (weights, mirroring): two
/// VirtualServices equal by this route the same requests the same way.
fn shape(spec: &Value) -> Value {
    let mut s = spec.clone();
    // As Flagger: the sticky routes and the cookies set on destinations
    // change with the routing, not with the Canary.
    if let Some(http) = s["http"].as_array_mut() {
        http.retain(|r| r["name"] != STICKY_ROUTE && r["name"] != STICKY_PRIMARY_ROUTE);
    }
    for r in s["http"].as_array_mut().into_iter().flatten() {
        if let Some(o) = r.as_object_mut() {
            o.remove("mirror");
            o.remove("mirrorPercentage");
        }
        for d in r["route"].as_array_mut().into_iter().flatten() {
            if let Some(o) = d.as_object_mut() {
                o.remove("weight");
                o.remove("headers");
            }
        }
    }
    if let Some(o) = s.as_object_mut() {
        for k in ["hosts", "gateways", "http"] {
            if o.get(k)
                .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
            {
                o.remove(k);
            }
        }
    }
    s
}

impl IstioRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        IstioRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn vs_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &virtual_services())
    }

    fn dr_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &destination_rules())
    }

    fn vs_object(c: &ResolvedCanary) -> String {
        format!("virtualservice/{} in {}", c.service, c.namespace)
    }

    async fn reconcile_destination_rule(&self, c: &ResolvedCanary, host: String) -> Result<()> {
        let api = self.dr_api(&c.namespace);
        let object = format!("destinationrule/{host} in {}", c.namespace);
        let spec = destination_rule_spec(c, &host);
        match api
            .get_opt(&host)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        {
            None => {
                let mut dr = DynamicObject::new(&host, &destination_rules()).within(&c.namespace);
                dr.metadata.labels = Some(labels_managed());
                dr.data = json!({"spec": spec});
                api.create(&PostParams::default(), &dr)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
            }
            // As Flagger: the spec follows the Canary's traffic policy.
            Some(mut dr) if dr.data["spec"] != spec => {
                dr.data["spec"] = spec;
                api.replace(&host, &PostParams::default(), &dr)
                    .await
                    .map_err(|e| ClusterError::api("update", &object, e))?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn reconcile_virtual_service(&self, c: &ResolvedCanary) -> Result<()> {
        let s = &c.service_spec;
        let object = Self::vs_object(c);
        if s.delegation == Some(true) && (!s.hosts.is_empty() || !s.gateways.is_empty()) {
            return Err(ClusterError::Invalid(format!(
                "{object}: a delegated VirtualService (spec.service.delegation) cannot have \
                 hosts or gateways"
            )));
        }
        let api = self.vs_api(&c.namespace);
        let apex = s.apex.clone().unwrap_or_default();
        let Some(mut live) = api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            let spec = virtual_service_spec(c, &Routing::all_primary())
                .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
            let mut vs = DynamicObject::new(&c.service, &virtual_services()).within(&c.namespace);
            let mut labels = apex.labels.clone();
            labels.extend(labels_managed());
            vs.metadata.labels = Some(labels);
            if !apex.annotations.is_empty() {
                vs.metadata.annotations = Some(apex.annotations.clone());
            }
            vs.data = json!({"spec": spec});
            let created = api
                .create(&PostParams::default(), &vs)
                .await
                .map_err(|e| ClusterError::api("create", &object, e))?;
            super::saw(self.watched.get(), &created);
            return Ok(());
        };
        // Keep the routing in place (the router is its truth) while the
        // rest of the spec follows the Canary.
        let routing = routing_of(c, &live.data["spec"]).unwrap_or_else(|_| Routing::all_primary());
        let mut spec = virtual_service_spec(c, &routing)
            .or_else(|_| virtual_service_spec(c, &Routing::all_primary()))
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        let cookies = affinity::next(
            c,
            routing.canary_weight(),
            live_cookies(c, &live.data["spec"]),
        );
        let http = spec["http"].as_array().cloned().unwrap_or_default();
        spec["http"] = json!(sticky_routes(c, http, &cookies));
        let ours = managed::is_managed(&live);
        let mut labels = apex.labels.clone();
        if ours {
            labels.extend(labels_managed());
        }
        let old_annotations = live.metadata.annotations.clone().unwrap_or_default();
        let mut annotations = apex.annotations.clone();
        for k in [KUBECTL_ANNOTATION, CONFIG_ANNOTATION] {
            if let Some(v) = old_annotations.get(k) {
                annotations.insert(k.to_string(), v.clone());
            }
        }
        let spec_differs = shape(&spec) != shape(&live.data["spec"]);
        // As Flagger: the spec found on a VirtualService someone else wrote
        // is kept in an annotation, unless kubectl's is there already.
        if spec_differs
            && !ours
            && !annotations.contains_key(KUBECTL_ANNOTATION)
            && !annotations.contains_key(CONFIG_ANNOTATION)
        {
            annotations.insert(
                CONFIG_ANNOTATION.to_string(),
                serde_json::to_string(&live.data["spec"]).unwrap_or_default(),
            );
        }
        let old_labels = live.metadata.labels.clone().unwrap_or_default();
        if !spec_differs && labels == old_labels && annotations == old_annotations {
            return Ok(());
        }
        live.data["spec"] = spec;
        live.metadata.labels = Some(labels);
        live.metadata.annotations = Some(annotations);
        let replaced = api
            .replace(&c.service, &PostParams::default(), &live)
            .await
            .map_err(|e| ClusterError::api("update", &object, e))?;
        super::saw(self.watched.get(), &replaced);
        Ok(())
    }
}

impl Router for IstioRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        self.reconcile_destination_rule(c, names::canary(&c.service))
            .await?;
        self.reconcile_destination_rule(c, names::primary(&c.service))
            .await?;
        self.reconcile_virtual_service(c).await
    }

    fn watch(&self, c: &ResolvedCanary) {
        self.watched.get_or_init(|| {
            Watched::start_with(&self.vs_api(&c.namespace), &c.service, virtual_services())
        });
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let object = Self::vs_object(c);
        let Some(vs) = cache::get_opt(self.watched.get(), &self.vs_api(&c.namespace), &c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(None);
        };
        routing_of(c, &vs.data["spec"]).map(Some).map_err(|why| {
            ClusterError::Invalid(format!(
                "{object} cannot be read: {why}; delete it so canary recreates it"
            ))
        })
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let object = Self::vs_object(c);
        let mut http = http_routes(c, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        if affinity::applies(c) {
            // The cookies of the release in progress are the live
            // object's.
            let live = cache::get_opt(self.watched.get(), &self.vs_api(&c.namespace), &c.service)
                .await
                .map_err(|e| ClusterError::api("read", &object, e))?;
            let live = live
                .map(|vs| live_cookies(c, &vs.data["spec"]))
                .unwrap_or_default();
            let cookies = affinity::next(c, routing.canary_weight(), live);
            http = sticky_routes(c, http, &cookies);
        }
        // Only the HTTP routes change, as with Flagger's `SetRoutes`.
        let patch = json!({"spec": {"http": http}});
        let patched = self
            .vs_api(&c.namespace)
            .patch(&c.service, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ClusterError::api("update", &object, e))?;
        super::saw(self.watched.get(), &patched);
        Ok(())
    }

    /// Deletes the VirtualService and DestinationRules `canary` created;
    /// ones a user made are left alone (and reported).
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let mut out = Vec::new();
        let vs =
            managed::delete(&self.vs_api(&c.namespace), &c.service, &Self::vs_object(c)).await?;
        out.push((format!("virtualservice/{}", c.service), vs));
        for host in [names::primary(&c.service), names::canary(&c.service)] {
            let object = format!("destinationrule/{host} in {}", c.namespace);
            let r = managed::delete(&self.dr_api(&c.namespace), &host, &object).await?;
            out.push((format!("destinationrule/{host}"), r));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/istio")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn canary(case: &str) -> ResolvedCanary {
        let name = format!("{case}.canary.yaml");
        let file = canary_core::spec::load_str(&name, &fixture(&name)).expect("valid Canary");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    /// The routing a fixture asks for, checked against its serialized form.
    fn routing(c: &ResolvedCanary, v: &Value) -> Routing {
        let r = match v["kind"].as_str().unwrap() {
            "weighted" => Routing::Weighted {
                primary: v["primary"].as_u64().unwrap() as u32,
                canary: v["canary"].as_u64().unwrap() as u32,
            },
            "mirrored" => Routing::Mirrored {
                mirror_weight: v["mirrorWeight"].as_u64().map(|w| w as u32),
            },
            "matched" => Routing::Matched {
                matches: c.matches.clone(),
            },
            other => panic!("routing kind {other}"),
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), *v);
        r
    }

    /// Compares two values field by field, naming the first difference.
    fn same(path: &str, got: &Value, want: &Value) {
        match (got, want) {
            (Value::Object(g), Value::Object(w)) => {
                for (k, wv) in w {
                    let gv = g.get(k).unwrap_or(&Value::Null);
                    same(&format!("{path}.{k}"), gv, wv);
                }
                for k in g.keys() {
                    assert!(w.contains_key(k), "{path}.{k}: not in Flagger's object");
                }
            }
            (Value::Array(g), Value::Array(w)) => {
                assert_eq!(g.len(), w.len(), "{path}: length");
                for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                    same(&format!("{path}[{i}]"), gv, wv);
                }
            }
            _ => assert_eq!(got, want, "{path}"),
        }
    }

    #[test]
    fn the_objects_are_those_flagger_writes_for_the_same_canary() {
        for case in ["weighted", "ab", "mirror", "suffix"] {
            let c = canary(case);
            let expected: Value =
                serde_yaml::from_str(&fixture(&format!("{case}.expected.yaml"))).unwrap();
            let r = routing(&c, &expected["routing"]);
            let vs = virtual_service_spec(&c, &r).unwrap();
            same(
                &format!("{case}: virtualService"),
                &vs,
                &expected["virtualService"],
            );
            let drs = [names::canary(&c.service), names::primary(&c.service)]
                .map(|h| destination_rule_spec(&c, &h));
            same(
                &format!("{case}: destinationRules"),
                &json!(drs),
                &expected["destinationRules"],
            );
            // The router reads back what it wrote.
            assert_eq!(routing_of(&c, &vs), Ok(r), "{case}");
        }
    }

    #[test]
    fn an_ab_canary_at_rest_and_after_a_rollback_sends_its_matches_to_the_primary() {
        let c = canary("ab");
        let spec = virtual_service_spec(&c, &Routing::all_primary()).unwrap();
        let http = spec["http"].as_array().unwrap();
        assert_eq!(http.len(), 2);
        assert_eq!(http[0]["route"][0]["weight"], 100);
        assert_eq!(http[0]["route"][1]["weight"], 0);
        assert_eq!(routing_of(&c, &spec), Ok(Routing::all_primary()));
    }

    #[test]
    fn blue_green_steps_read_back_as_weights() {
        let c = canary("weighted");
        for r in [Routing::CanaryService, Routing::weighted(100)] {
            let spec = virtual_service_spec(&c, &r).unwrap();
            let (p, w) = r.weights().unwrap();
            assert_eq!(
                routing_of(&c, &spec),
                Ok(Routing::Weighted {
                    primary: p,
                    canary: w
                })
            );
        }
    }

    #[test]
    fn a_spec_change_is_seen_but_a_weight_change_is_not() {
        let c = canary("weighted");
        let a = virtual_service_spec(&c, &Routing::weighted(10)).unwrap();
        let b = virtual_service_spec(
            &c,
            &Routing::Mirrored {
                mirror_weight: Some(5),
            },
        )
        .unwrap();
        assert_eq!(shape(&a), shape(&b));
        let mut other = canary("weighted");
        other.service_spec.timeout = Some("1s".into());
        let d = virtual_service_spec(&other, &Routing::weighted(10)).unwrap();
        assert_ne!(shape(&a), shape(&d));
    }

    #[test]
    fn sticky_routes_come_first_and_are_no_spec_change() {
        let mut c = canary("weighted");
        c.session_affinity = Some(canary_core::spec::types::SessionAffinity {
            cookie_name: Some("flagger-cookie".into()),
            ..Default::default()
        });
        let plain = virtual_service_spec(&c, &Routing::weighted(10)).unwrap();
        let cookies = Cookies {
            canary: Some("flagger-cookie=AbCdEfGhIj".into()),
            ..Cookies::default()
        };
        let mut sticky = plain.clone();
        sticky["http"] = json!(sticky_routes(
            &c,
            plain["http"].as_array().unwrap().clone(),
            &cookies
        ));
        let http = sticky["http"].as_array().unwrap();
        assert_eq!(http.len(), 2);
        assert_eq!(http[0]["name"], STICKY_ROUTE);
        assert_eq!(
            http[0]["match"][0]["headers"]["Cookie"]["regex"],
            ".*flagger-cookie.*AbCdEfGhIj.*"
        );
        assert_eq!(http[0]["route"][1]["weight"], 100);
        assert_eq!(
            http[1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"],
            "flagger-cookie=AbCdEfGhIj; Max-Age=86400"
        );
        // The weights still read back, and the reconcile sees no change.
        assert_eq!(routing_of(&c, &sticky), Ok(Routing::weighted(10)));
        assert_eq!(shape(&sticky), shape(&plain));
        assert_eq!(
            live_cookies(&c, &sticky),
            affinity::Live {
                canary: Some("flagger-cookie=AbCdEfGhIj".into()),
                previous: None
            }
        );
    }

    #[test]
    fn suffix_is_written_as_an_anchored_regex() {
        let m = StringMatch {
            suffix: Some("a.b".into()),
            ..Default::default()
        };
        assert_eq!(string_match(&m), json!({"regex": ".*a\\.b"}));
    }
}
