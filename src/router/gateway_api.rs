//! Gateway API HTTPRoute (`gateway.networking.k8s.io`, `v1` or `v1beta1`),
//! as Flagger writes it: one route named after the apex Service, attached
//! to `spec.service.gatewayRefs`, serving `spec.service.hosts`, whose rule
//! sends the requests matching `spec.service.match` (every path when there
//! is none) to the primary and canary Services by weight.
//!
//! A/B testing (`analysis.match`) gives the route two rules: the requests
//! matching the analysis's headers and query parameters (merged into each
//! service match) go to the canary, the rest to the primary. Mirroring adds
//! a `RequestMirror` filter copying the requests to the canary Service
//! while the primary answers. The two versions differ only in their
//! `apiVersion`: `v1beta1` is served by the same CRD with the same schema.
//!
//! Session affinity (`analysis.sessionAffinity`, [`sticky_rules`]) puts
//! rules matching the cookies before the weighted rule, whose backends set
//! them by `ResponseHeaderModifier` filters (see [`super::affinity`]).
//!
//! Where Flagger writes an empty request timeout on the A/B rule (which a
//! real API server refuses), no timeout is written; Flagger only mirrors
//! for blue/green, `canary` also for a canary's mirroring step.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::Router;
use super::affinity::{self, COOKIE, Cookies, SET_COOKIE};
use crate::cluster::cache::{self, Watched};
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{self, MANAGED_BY, Removal};
use canary_core::engine::schedule::{Routing, TOTAL_WEIGHT};
use canary_core::names;
use canary_core::provider::GatewayApiVersion;
use canary_core::spec::resolve::ResolvedCanary;
use canary_core::spec::types::{HttpMatchRequest, StringMatch};

pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

pub(crate) struct GatewayApiRouter {
    client: kube::Client,
    version: GatewayApiVersion,
    /// The HTTPRoute, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

impl GatewayApiRouter {
    pub(crate) fn new(client: kube::Client, version: GatewayApiVersion) -> Self {
        GatewayApiRouter {
            client,
            version,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, self.version.as_str(), "HTTPRoute"),
            "httproutes",
        )
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.resource())
    }

    fn object(&self, c: &ResolvedCanary) -> String {
        format!("httproute/{} in {}", c.service, c.namespace)
    }
}

/// How the route's weighted rule is set for a routing.
struct Split {
    primary: u32,
    canary: u32,
    mirror: bool,
}

fn split_of(routing: &Routing) -> Split {
    match routing {
        Routing::Weighted { primary, canary } => Split {
            primary: *primary,
            canary: *canary,
            mirror: false,
        },
        Routing::Mirrored { .. } => Split {
            primary: TOTAL_WEIGHT,
            canary: 0,
            mirror: true,
        },
        // The matched rule sends everything it matches to the canary;
        // the other requests reach the primary through the second rule.
        Routing::Matched { .. } => Split {
            primary: 0,
            canary: TOTAL_WEIGHT,
            mirror: false,
        },
        Routing::CanaryService => Split {
            primary: TOTAL_WEIGHT,
            canary: 0,
            mirror: false,
        },
    }
}

/// The HTTPRoute `spec` for canary `c` doing `routing`, as Flagger's
/// router writes it; `Err` says what the route cannot express.
pub(crate) fn route_spec(
    c: &ResolvedCanary,
    routing: &Routing,
) -> std::result::Result<Value, String> {
    if let Routing::Matched { matches } = routing
        && matches.is_empty()
    {
        return Err("route requests by match without any match".to_string());
    }
    let s = &c.service_spec;
    let mut service_matches = map_matches(&s.r#match)?;
    if service_matches.is_empty() {
        service_matches.push(json!({"path": {"type": "PathPrefix", "value": "/"}}));
    }
    let split = split_of(routing);
    let filters = filters(c);
    let primary = names::primary(&c.service);
    let canary = names::canary(&c.service);
    let timeouts = timeouts(c);

    let mut weighted = json!({
        "matches": service_matches,
        "backendRefs": [
            backend_ref(&primary, c.port, split.primary),
            backend_ref(&canary, c.port, split.canary),
        ],
    });
    let mut rule_filters = filters.clone();
    if split.mirror {
        rule_filters.push(json!({
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {
                "group": "", "kind": "Service", "name": canary, "port": c.port,
            }},
        }));
    }
    if !rule_filters.is_empty() {
        weighted["filters"] = json!(rule_filters);
    }
    if let Some(t) = &timeouts {
        weighted["timeouts"] = t.clone();
    }
    let mut rules = vec![weighted];

    // A/B testing: the analysis's matches go first, to the weighted rule;
    // a second rule keeps every other request on the primary.
    if !c.matches.is_empty() {
        let analysis = map_matches(&c.matches)?;
        rules[0]["matches"] = json!(merge_matches(&analysis, &service_matches));
        let mut rest = json!({
            "matches": service_matches,
            "backendRefs": [backend_ref(&primary, c.port, TOTAL_WEIGHT)],
        });
        if !filters.is_empty() {
            rest["filters"] = json!(filters);
        }
        if let Some(t) = &timeouts {
            rest["timeouts"] = t.clone();
        }
        rules.push(rest);
    } else if matches!(routing, Routing::Matched { .. }) {
        return Err("route requests by match: the canary has no `analysis.match`".to_string());
    }

    let mut spec = json!({
        "parentRefs": serde_json::to_value(&s.gateway_refs).unwrap_or(json!([])),
        "rules": rules,
    });
    // Cleared by the merge patch when the spec names no host.
    spec["hostnames"] = if s.hosts.is_empty() {
        Value::Null
    } else {
        json!(s.hosts)
    };
    Ok(spec)
}

/// A `ResponseHeaderModifier` filter adding `Set-Cookie: value`.
fn set_cookie_filter(value: String) -> Value {
    json!({
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": SET_COOKIE, "value": value}]},
    })
}

/// The rules with session affinity (see [`affinity`]), as Flagger's
/// `getSessionAffinityRouteRules` writes them: a rule matching the canary
/// cookie (a `Cookie` header `RegularExpression`) sending everything to
/// the canary while it has traffic, with `primaryCookieName` one matching
/// the primary cookie sending everything to the primary, then the weighted
/// rule whose backends set the cookies by `ResponseHeaderModifier`
/// filters. Once the canary has no traffic, the first rule expires the
/// last canary cookie (or is a copy of the weighted rule when there is
/// none). Rules without session affinity are returned as they are.
pub(crate) fn sticky_rules(
    c: &ResolvedCanary,
    rules: Vec<Value>,
    cookies: &Cookies,
) -> std::result::Result<Vec<Value>, String> {
    if !affinity::applies(c) || rules.len() != 1 {
        return Ok(rules);
    }
    let mut weighted = rules.into_iter().next().unwrap_or_default();
    let primary = names::primary(&c.service);
    let canary = names::canary(&c.service);
    // Flagger merges the cookie match into the service's matches as
    // written, without the default path prefix.
    let service_matches = map_matches(&c.service_spec.r#match)?;
    let cookie_matches = |cookie: &str| {
        let m = json!({"headers": [{
            "name": COOKIE,
            "type": "RegularExpression",
            "value": affinity::cookie_regex(cookie),
        }]});
        json!(merge_matches(&[m], &service_matches))
    };
    let add_filter = |rule: &mut Value, backend: &str, value: String| {
        if let Some(b) = rule["backendRefs"]
            .as_array_mut()
            .and_then(|refs| refs.iter_mut().find(|b| b["name"] == backend))
        {
            let mut filters = b["filters"].as_array().cloned().unwrap_or_default();
            filters.push(set_cookie_filter(value));
            b["filters"] = json!(filters);
        }
    };
    let mut out = Vec::new();
    if let Some(cookie) = &cookies.canary {
        let mut sticky = weighted.clone();
        sticky["matches"] = cookie_matches(cookie);
        sticky["backendRefs"] = json!([
            backend_ref(&primary, c.port, 0),
            backend_ref(&canary, c.port, TOTAL_WEIGHT)
        ]);
        out.push(sticky);
        if let Some(p) = &cookies.primary {
            let mut sticky = weighted.clone();
            sticky["matches"] = cookie_matches(p);
            sticky["backendRefs"] = json!([
                backend_ref(&primary, c.port, TOTAL_WEIGHT),
                backend_ref(&canary, c.port, 0)
            ]);
            out.push(sticky);
            add_filter(&mut weighted, &primary, affinity::primary_set_cookie(c, p));
        }
        add_filter(
            &mut weighted,
            &canary,
            affinity::canary_set_cookie(c, cookie),
        );
    } else {
        let mut sticky = weighted.clone();
        if let Some(previous) = &cookies.previous {
            sticky["matches"] = cookie_matches(previous);
            let mut filters = sticky["filters"].as_array().cloned().unwrap_or_default();
            filters.push(set_cookie_filter(affinity::expiry(previous)));
            sticky["filters"] = json!(filters);
        }
        out.push(sticky);
    }
    out.push(weighted);
    Ok(out)
}

/// The `Set-Cookie` values a rule's (or backend's) filters add.
fn set_cookies(v: &Value) -> Vec<String> {
    v["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["type"] == "ResponseHeaderModifier")
        .flat_map(|f| {
            f["responseHeaderModifier"]["add"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(SET_COOKIE))
        })
        .filter_map(|h| h["value"].as_str().map(str::to_string))
        .collect()
}

/// The cookies a live HTTPRoute carries: the `Set-Cookie` of the weighted
/// rule's canary backend, and the one the first rule expires.
fn live_cookies(c: &ResolvedCanary, spec: &Value) -> affinity::Live {
    let canary = names::canary(&c.service);
    let rules = spec["rules"].as_array().cloned().unwrap_or_default();
    let weighted = rules
        .iter()
        .rev()
        .find(|r| r["backendRefs"].as_array().is_some_and(|b| b.len() == 2));
    affinity::Live {
        canary: weighted
            .and_then(|r| r["backendRefs"].as_array())
            .into_iter()
            .flatten()
            .filter(|b| b["name"] == canary.as_str())
            .flat_map(set_cookies)
            .find(|v| !affinity::is_expiry(v))
            .map(|v| affinity::cookie_of(&v)),
        previous: rules
            .first()
            .into_iter()
            .flat_map(set_cookies)
            .find(|v| affinity::is_expiry(v))
            .map(|v| affinity::cookie_of(&v)),
    }
}

fn backend_ref(name: &str, port: u32, weight: u32) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

fn timeouts(c: &ResolvedCanary) -> Option<Value> {
    let s = &c.service_spec;
    let mut t = serde_json::Map::new();
    if let Some(r) = s.timeout.as_deref().filter(|t| !t.is_empty()) {
        t.insert("request".into(), json!(r));
    }
    if let Some(b) = s.backend_timeout.as_deref().filter(|t| !t.is_empty()) {
        t.insert("backendRequest".into(), json!(b));
    }
    (!t.is_empty()).then_some(Value::Object(t))
}

/// `service.headers`, `service.rewrite` and `service.mirror` as route
/// filters, in Flagger's order, header lists sorted by name.
fn filters(c: &ResolvedCanary) -> Vec<Value> {
    let s = &c.service_spec;
    let mut out = Vec::new();
    let modifier = |ops: &canary_core::spec::types::HeaderOperations| {
        let list = |m: &std::collections::BTreeMap<String, String>| -> Value {
            json!(
                m.iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
            )
        };
        let mut f = serde_json::Map::new();
        if !ops.set.is_empty() {
            f.insert("set".into(), list(&ops.set));
        }
        if !ops.add.is_empty() {
            f.insert("add".into(), list(&ops.add));
        }
        if !ops.remove.is_empty() {
            f.insert("remove".into(), json!(ops.remove));
        }
        Value::Object(f)
    };
    if let Some(h) = &s.headers {
        if let Some(r) = &h.request {
            out.push(
                json!({"type": "RequestHeaderModifier", "requestHeaderModifier": modifier(r)}),
            );
        }
        if let Some(r) = &h.response {
            out.push(
                json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": modifier(r)}),
            );
        }
    }
    if let Some(rw) = &s.rewrite {
        let mut u = serde_json::Map::new();
        if let Some(a) = rw.authority.as_deref().filter(|a| !a.is_empty()) {
            u.insert("hostname".into(), json!(a));
        }
        if let Some(uri) = rw.uri.as_deref().filter(|u| !u.is_empty()) {
            // Flagger replaces the full path unless told to replace the
            // matched prefix.
            let path = if rw.r#type.as_deref() == Some("ReplacePrefixMatch") {
                json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": uri})
            } else {
                json!({"type": "ReplaceFullPath", "replaceFullPath": uri})
            };
            u.insert("path".into(), path);
        }
        out.push(json!({"type": "URLRewrite", "urlRewrite": u}));
    }
    for m in &s.mirror {
        out.push(json!({
            "type": "RequestMirror",
            "requestMirror": serde_json::to_value(m).unwrap_or(json!({})),
        }));
    }
    out
}

/// Istio-style matches as HTTPRoute matches: paths, methods, headers and
/// query parameters by `exact` or `regex`; anything else is refused (the
/// spec check refuses it before a run starts).
fn map_matches(matches: &[HttpMatchRequest]) -> std::result::Result<Vec<Value>, String> {
    let value = |what: &str, name: &str, m: &StringMatch| -> std::result::Result<Value, String> {
        match (&m.exact, &m.regex) {
            (Some(e), _) => Ok(json!({"name": name, "type": "Exact", "value": e})),
            (None, Some(r)) => Ok(json!({"name": name, "type": "RegularExpression", "value": r})),
            _ => Err(format!(
                "match {what} `{name}` other than by `exact` or `regex`"
            )),
        }
    };
    let mut out = Vec::new();
    for m in matches {
        let mut o = serde_json::Map::new();
        if let Some(u) = &m.uri {
            let path = if let Some(r) = &u.regex {
                json!({"type": "RegularExpression", "value": r})
            } else if let Some(e) = &u.exact {
                json!({"type": "Exact", "value": e})
            } else if let Some(p) = &u.prefix {
                json!({"type": "PathPrefix", "value": p})
            } else {
                return Err("match a path other than by `exact`, `prefix` or `regex`".into());
            };
            o.insert("path".into(), path);
        }
        if let Some(method) = &m.method {
            match &method.exact {
                Some(e) => {
                    o.insert("method".into(), json!(e));
                }
                None => return Err("match a method other than by `exact`".into()),
            }
        }
        let headers = m
            .headers
            .iter()
            .map(|(k, v)| value("header", k, v))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if !headers.is_empty() {
            o.insert("headers".into(), json!(headers));
        }
        let params = m
            .query_params
            .iter()
            .map(|(k, v)| value("query parameter", k, v))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if !params.is_empty() {
            o.insert("queryParams".into(), json!(params));
        }
        if !o.is_empty() {
            out.push(Value::Object(o));
        }
    }
    Ok(out)
}

/// Every service match with each analysis match's headers and query
/// parameters, as Flagger merges them.
fn merge_matches(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    if analysis.is_empty() {
        return service.to_vec();
    }
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut out = Vec::new();
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            for field in ["headers", "queryParams"] {
                if a[field].as_array().is_some_and(|l| !l.is_empty()) {
                    m[field] = a[field].clone();
                }
            }
            out.push(m);
        }
    }
    out
}

/// The routing a live route carries for `c`, read as Flagger reads it:
/// the weights of the rule with both backends, a mirror filter to the
/// canary, and A/B testing when the matched rule sends everything to the
/// canary.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let primary_name = names::primary(&c.service);
    let canary_name = names::canary(&c.service);
    let mut weights = None;
    let mut mirrored = false;
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        if refs.len() == 2 {
            let w = |name: &str| {
                refs.iter()
                    .find(|b| b["name"] == name)
                    .map(|b| b["weight"].as_u64().unwrap_or(1) as u32)
            };
            if let (Some(p), Some(cw)) = (w(&primary_name), w(&canary_name)) {
                weights = Some((p, cw));
            }
        }
        mirrored |= rule["filters"].as_array().into_iter().flatten().any(|f| {
            f["type"] == "RequestMirror" && f["requestMirror"]["backendRef"]["name"] == canary_name
        });
    }
    let (primary, canary) = weights?;
    Some(if mirrored {
        Routing::Mirrored {
            mirror_weight: c.mirror_weight,
        }
    } else if !c.matches.is_empty() && canary > 0 {
        Routing::Matched {
            matches: c.matches.clone(),
        }
    } else {
        Routing::Weighted { primary, canary }
    })
}

impl Router for GatewayApiRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let api = self.api(&c.namespace);
        let object = self.object(c);
        if api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
            .is_some()
        {
            return Ok(());
        }
        let spec = route_spec(c, &Routing::all_primary())
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        let mut route = DynamicObject::new(&c.service, &self.resource()).within(&c.namespace);
        let mut labels: std::collections::BTreeMap<String, String> = c
            .service_spec
            .apex
            .as_ref()
            .map(|m| m.labels.clone().into_iter().collect())
            .unwrap_or_default();
        labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
        route.metadata.labels = Some(labels);
        if let Some(a) = c.service_spec.apex.as_ref().map(|m| &m.annotations)
            && !a.is_empty()
        {
            route.metadata.annotations = Some(a.clone().into_iter().collect());
        }
        let mut spec = spec;
        if spec["hostnames"].is_null()
            && let Some(o) = spec.as_object_mut()
        {
            o.remove("hostnames");
        }
        route.data = json!({ "spec": spec });
        let created = api
            .create(&PostParams::default(), &route)
            .await
            .map_err(|e| ClusterError::api("create", &object, e))?;
        super::saw(self.watched.get(), &created);
        Ok(())
    }

    fn watch(&self, c: &ResolvedCanary) {
        self.watched.get_or_init(|| {
            Watched::start_with(&self.api(&c.namespace), &c.service, self.resource())
        });
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let object = self.object(c);
        let Some(route) = cache::get_opt(self.watched.get(), &self.api(&c.namespace), &c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(None);
        };
        match routing_of(c, &route.data["spec"]) {
            Some(r) => Ok(Some(r)),
            None => Err(ClusterError::Invalid(format!(
                "{object} has no rule with {0}-primary and {0}-canary backends; delete it so \
                 canary recreates it",
                c.service
            ))),
        }
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let refused =
            |why: String| ClusterError::Refused(format!("{} cannot {why}", self.object(c)));
        let mut spec = route_spec(c, routing).map_err(refused)?;
        if affinity::applies(c) {
            // The cookies of the release in progress are the live
            // route's.
            let live = cache::get_opt(self.watched.get(), &self.api(&c.namespace), &c.service)
                .await
                .map_err(|e| ClusterError::api("read", self.object(c), e))?
                .map(|r| live_cookies(c, &r.data["spec"]))
                .unwrap_or_default();
            let cookies = affinity::next(c, routing.canary_weight(), live);
            let rules = spec["rules"].as_array().cloned().unwrap_or_default();
            spec["rules"] = json!(sticky_rules(c, rules, &cookies).map_err(refused)?);
        }
        let patch = json!({ "spec": spec });
        let patched = self
            .api(&c.namespace)
            .patch(&c.service, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ClusterError::api("update", self.object(c), e))?;
        super::saw(self.watched.get(), &patched);
        Ok(())
    }

    /// Deletes the HTTPRoute `canary` created; one a user made is left
    /// alone.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let removal = managed::delete(&self.api(&c.namespace), &c.service, &self.object(c)).await?;
        Ok(vec![(format!("httproute/{}", c.service), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(yaml: &str) -> ResolvedCanary {
        let file = canary_core::spec::load_str("c.yaml", yaml).expect("valid spec");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    fn fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/flagger")
                .join(name),
        )
        .unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    /// The Canary of Flagger's `gateway_api_test.go`-style fixtures.
    const CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: default}
spec:
  provider: gatewayapi:v1
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
    timeout: 30s
    hosts: [www.example.com]
    gatewayRefs:
      - name: podinfo
        namespace: public-gateway
    headers:
      request:
        add: {x-b: b, x-a: a}
        remove: [x-remove]
  analysis:
    interval: 1m
    threshold: 5
";

    #[test]
    fn the_weighted_route_is_the_one_flagger_writes_field_by_field() {
        let c = canary(&format!("{CANARY}    stepWeight: 10\n"));
        let spec = route_spec(&c, &Routing::weighted(10)).unwrap();
        assert_eq!(spec, fixture("httproute-weighted.yaml"));
    }

    #[test]
    fn the_ab_route_sends_matching_requests_to_the_canary_first() {
        let c = canary(&format!(
            "{CANARY}    iterations: 10\n    match:\n      - headers:\n          x-canary: {{exact: insider}}\n      - headers:\n          cookie: {{regex: \"^(.*?;)?(canary=always)(;.*)?$\"}}\n"
        ));
        let spec = route_spec(
            &c,
            &Routing::Matched {
                matches: c.matches.clone(),
            },
        )
        .unwrap();
        assert_eq!(spec, fixture("httproute-ab.yaml"));
        assert_eq!(
            routing_of(&c, &spec),
            Some(Routing::Matched {
                matches: c.matches.clone()
            })
        );
        // At rest the A/B rules stay, with the primary taking all.
        let rest = route_spec(&c, &Routing::all_primary()).unwrap();
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
    }

    #[test]
    fn mirroring_adds_a_mirror_filter_to_the_canary() {
        let c = canary(&format!("{CANARY}    iterations: 10\n    mirror: true\n"));
        let spec = route_spec(
            &c,
            &Routing::Mirrored {
                mirror_weight: None,
            },
        )
        .unwrap();
        assert_eq!(spec, fixture("httproute-mirrored.yaml"));
        assert_eq!(
            routing_of(&c, &spec),
            Some(Routing::Mirrored {
                mirror_weight: None
            })
        );
    }

    #[test]
    fn sticky_rules_come_first_and_the_cookies_read_back() {
        let yaml = format!(
            "{CANARY}    stepWeight: 10\n    sessionAffinity:\n      cookieName: flagger-cookie\n      \
             primaryCookieName: primary-cookie\n"
        );
        let c = canary(&yaml);
        let spec = route_spec(&c, &Routing::weighted(10)).unwrap();
        let cookies = Cookies {
            canary: Some("flagger-cookie=AbCdEfGhIj".into()),
            primary: Some("primary-cookie=KlMnOpQrSt".into()),
            previous: None,
        };
        let rules = sticky_rules(&c, spec["rules"].as_array().unwrap().clone(), &cookies).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0]["matches"],
            json!([{"headers": [{
                "name": "Cookie",
                "type": "RegularExpression",
                "value": ".*flagger-cookie.*AbCdEfGhIj.*",
            }]}])
        );
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 100);
        assert_eq!(rules[1]["backendRefs"][0]["weight"], 100);
        assert_eq!(
            set_cookies(&rules[2]["backendRefs"][1]),
            ["flagger-cookie=AbCdEfGhIj; Max-Age=86400"]
        );
        let mut sticky = spec.clone();
        sticky["rules"] = json!(rules);
        assert_eq!(routing_of(&c, &sticky), Some(Routing::weighted(10)));
        assert_eq!(
            live_cookies(&c, &sticky).canary.as_deref(),
            Some("flagger-cookie=AbCdEfGhIj")
        );
        // At 0 the first rule expires the cookie.
        let done = Cookies {
            previous: Some("flagger-cookie=AbCdEfGhIj".into()),
            ..Cookies::default()
        };
        let spec = route_spec(&c, &Routing::all_primary()).unwrap();
        let rules = sticky_rules(&c, spec["rules"].as_array().unwrap().clone(), &done).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            set_cookies(&rules[0]),
            ["flagger-cookie=AbCdEfGhIj; Max-Age=-1"]
        );
        let mut expired = spec.clone();
        expired["rules"] = json!(rules);
        assert_eq!(
            live_cookies(&c, &expired).previous.as_deref(),
            Some("flagger-cookie=AbCdEfGhIj")
        );
    }

    #[test]
    fn weights_read_back_as_written() {
        let c = canary(&format!("{CANARY}    stepWeight: 10\n"));
        for w in [0, 5, 50, 100] {
            let spec = route_spec(&c, &Routing::weighted(w)).unwrap();
            assert_eq!(routing_of(&c, &spec), Some(Routing::weighted(w)));
        }
    }
}
