//! Gloo Edge (`gateway.solo.io/v1` RouteTable), as Flagger v1.44 drives
//! it: two `gloo.solo.io/v1` Upstreams, one for the primary Service
//! (`<namespace>-<apex>-primaryupstream-<port>`) and one for the canary
//! Service (`...-canaryupstream-...`), and a RouteTable named after the
//! apex Service with one route sending its requests to both by weight.
//!
//! The Upstreams are Kubernetes upstreams (`spec.kube`: the Service, its
//! namespace, the port and the Service's selector), so they work with
//! Gloo's discovery turned off. With `spec.upstreamRef`, the named
//! Upstream's connection settings (labels, TLS, circuit breakers,
//! connection and load balancer settings, HTTP/2, window sizes, proxy host
//! name) are copied into both. Like Flagger, `canary` creates them once
//! and never rewrites them.
//!
//! The RouteTable has no domain: the user's Gloo VirtualService delegates
//! a path to it, and its route inherits that path
//! (`inheritablePathMatchers`). It carries the service's apex labels and
//! annotations. For A/B testing the route gets one matcher with the
//! headers of `analysis.match` (`exact` as a value, `regex` as a regular
//! expression), and sends what matches to the canary while the analysis
//! runs. Flagger keeps that matcher on the route before and after the
//! analysis too, so requests without the headers only reach the app
//! through another route of the VirtualService (see `examples/gloo.yaml`).
//!
//! Flagger's Gloo router writes neither timeouts nor retries, and cannot
//! mirror: a mirrored routing is refused. Gloo's Envoy names an upstream's
//! cluster `<upstream>_<namespace>`, which the built-in Gloo queries
//! select by the target's name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::Router;
use crate::cluster::cache::Watched;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{self, MANAGED_BY, Removal};
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

/// The settings of `spec.upstreamRef`'s Upstream that Flagger copies.
const COPIED_SETTINGS: &[&str] = &[
    "labels",
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostName",
];

pub(crate) struct GlooRouter {
    client: kube::Client,
    /// The RouteTable, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

fn route_tables() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.solo.io", "v1", "RouteTable"),
        "routetables",
    )
}

fn upstreams() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gloo.solo.io", "v1", "Upstream"),
        "upstreams",
    )
}

fn object(c: &ResolvedCanary) -> String {
    format!("routetable/{} in {}", c.service, c.namespace)
}

fn upstream_object(c: &ResolvedCanary, name: &str) -> String {
    format!("upstream/{name} in {}", c.namespace)
}

/// The route's one matcher: every header of `analysis.match`, as Flagger
/// writes them (`exact` as the value, `regex` as a regular expression;
/// `validate` refuses the other kinds, which Flagger turns into a test of
/// presence). `None` without a match.
fn matchers(c: &ResolvedCanary) -> Option<Value> {
    let headers: Vec<Value> = c
        .matches
        .iter()
        .flat_map(|m| &m.headers)
        .map(|(name, sm)| match &sm.regex {
            Some(re) => json!({"name": name, "value": re, "regex": true}),
            None => match &sm.exact {
                Some(v) => json!({"name": name, "value": v}),
                None => json!({"name": name}),
            },
        })
        .collect();
    (!headers.is_empty()).then(|| json!([{"headers": headers}]))
}

/// One weighted destination. A weight of 0 is left out, as Go's
/// `omitempty` leaves it out of the object Flagger writes.
fn destination(c: &ResolvedCanary, upstream: String, weight: u32) -> Value {
    let mut d = json!({"destination": {"upstream": {"name": upstream, "namespace": c.namespace}}});
    if weight > 0 {
        d["weight"] = json!(weight);
    }
    d
}

/// The RouteTable's `spec` at (primary, canary) weights.
pub(crate) fn spec(c: &ResolvedCanary, (primary, canary): (u32, u32)) -> Value {
    let mut route = json!({
        "inheritablePathMatchers": true,
        "routeAction": {"multi": {"destinations": [
            destination(c, names::gloo_upstream(c, "primary"), primary),
            destination(c, names::gloo_upstream(c, "canary"), canary),
        ]}},
    });
    if let Some(m) = matchers(c) {
        route["matchers"] = m;
    }
    json!({"routes": [route]})
}

/// The (primary, canary) weights for `routing`, or what the RouteTable
/// cannot do.
fn weights_of(c: &ResolvedCanary, routing: &Routing) -> std::result::Result<(u32, u32), String> {
    match routing {
        Routing::Mirrored { .. } => Err(
            "mirror traffic to the canary: Flagger's Gloo RouteTable only splits or matches \
             requests"
                .to_string(),
        ),
        Routing::Matched { .. } if c.matches.is_empty() => {
            Err("route requests by match: the canary has no analysis.match".to_string())
        }
        Routing::Matched { .. } => Ok((0, 100)),
        other => other.weights().ok_or_else(|| {
            "express this routing: a Gloo RouteTable splits by weight or matches headers"
                .to_string()
        }),
    }
}

/// The routing a RouteTable carries, read as Flagger reads it: the weight
/// of the primary upstream on the first route (none written is 0), the
/// canary the rest; on an A/B canary, a route sending its matching
/// requests to the canary is the A/B routing.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let destinations = spec["routes"][0]["routeAction"]["multi"]["destinations"].as_array()?;
    if destinations.len() < 2 {
        return None;
    }
    let primary = names::gloo_upstream(c, "primary");
    let d = destinations
        .iter()
        .find(|d| d["destination"]["upstream"]["name"] == primary.as_str())?;
    let primary = match &d["weight"] {
        Value::Null => 0,
        w => u32::try_from(w.as_u64()?).ok()?.min(100),
    };
    let canary = 100 - primary;
    if !c.matches.is_empty() && canary > 0 {
        return Some(Routing::Matched {
            matches: c.matches.clone(),
        });
    }
    Some(Routing::weighted(canary))
}

/// The spec without the destinations' weights, to compare what the route
/// does apart from the split (Flagger's reconcile ignores the weights).
fn without_weights(spec: &Value) -> Value {
    let mut s = spec.clone();
    for r in s["routes"].as_array_mut().into_iter().flatten() {
        for d in r["routeAction"]["multi"]["destinations"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(o) = d.as_object_mut() {
                o.remove("weight");
            }
        }
    }
    s
}

/// The labels and annotations of the RouteTable: the apex metadata's,
/// without kubectl's annotations, plus `canary`'s label.
fn metadata(c: &ResolvedCanary) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let apex = c.service_spec.apex.clone().unwrap_or_default();
    let mut labels = apex.labels;
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    let annotations = apex
        .annotations
        .into_iter()
        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
        .collect();
    (labels, annotations)
}

/// An Upstream's `spec`: `config`'s copied settings (from
/// `spec.upstreamRef`) and the Kubernetes Service `service` with
/// `selector`.
pub(crate) fn upstream_spec(
    c: &ResolvedCanary,
    service: &str,
    selector: &BTreeMap<String, String>,
    config: Option<&Value>,
) -> Value {
    let mut spec = serde_json::Map::new();
    if let Some(config) = config {
        for key in COPIED_SETTINGS {
            let v = &config[*key];
            let empty = v.is_null()
                || v == &json!(false)
                || v == &json!(0)
                || v == &json!("")
                || v.as_object().is_some_and(|o| o.is_empty());
            if !empty {
                spec.insert(key.to_string(), v.clone());
            }
        }
    }
    let mut kube = json!({
        "serviceName": service,
        "serviceNamespace": c.namespace,
        "servicePort": c.port,
    });
    if !selector.is_empty() {
        kube["selector"] = json!(selector);
    }
    spec.insert("kube".to_string(), kube);
    Value::Object(spec)
}

impl GlooRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        GlooRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &route_tables())
    }

    fn upstream_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &upstreams())
    }

    /// The `spec` of `spec.upstreamRef`'s Upstream (in the canary's
    /// namespace unless another is named), when the canary names one.
    async fn config_upstream(&self, c: &ResolvedCanary) -> Result<Option<Value>> {
        let Some(r) = &c.upstream_ref else {
            return Ok(None);
        };
        let name = r.name.clone().unwrap_or_default();
        let ns = r.namespace.clone().unwrap_or_else(|| c.namespace.clone());
        let what = format!("upstream/{name} in {ns} (spec.upstreamRef)");
        let found = self
            .upstream_api(&ns)
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", &what, e))?
            .ok_or_else(|| ClusterError::Invalid(format!("{what} does not exist")))?;
        Ok(Some(found.data["spec"].clone()))
    }

    /// Creates the Upstream of `service` (the primary's or the canary's
    /// Service) when it does not exist; an existing one is left as it is,
    /// as Flagger leaves it.
    async fn ensure_upstream(
        &self,
        c: &ResolvedCanary,
        role: &str,
        service: &str,
        config: Option<&Value>,
    ) -> Result<()> {
        let name = names::gloo_upstream(c, role);
        let what = upstream_object(c, &name);
        let api = self.upstream_api(&c.namespace);
        if api
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", &what, e))?
            .is_some()
        {
            return Ok(());
        }
        let services: Api<Service> = Api::namespaced(self.client.clone(), &c.namespace);
        let svc_object = format!("service/{service} in {}", c.namespace);
        let svc = services
            .get_opt(service)
            .await
            .map_err(|e| ClusterError::api("read", &svc_object, e))?
            .ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "{svc_object} does not exist; the {what} routes to it"
                ))
            })?;
        let selector = svc
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut us = DynamicObject::new(&name, &upstreams()).within(&c.namespace);
        us.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            MANAGED_BY.1.to_string(),
        )]));
        us.data = json!({"spec": upstream_spec(c, service, &selector, config)});
        api.create(&PostParams::default(), &us)
            .await
            .map_err(|e| ClusterError::api("create", &what, e))?;
        Ok(())
    }
}

impl Router for GlooRouter {
    /// Creates the two Upstreams and the RouteTable at 100/0, or brings
    /// the RouteTable's route and metadata back to what the spec asks,
    /// keeping its weights (as Flagger does).
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let config = self.config_upstream(c).await?;
        self.ensure_upstream(c, "primary", &names::primary(&c.service), config.as_ref())
            .await?;
        self.ensure_upstream(c, "canary", &names::canary(&c.service), config.as_ref())
            .await?;
        let api = self.api(&c.namespace);
        let object = object(c);
        let at_rest = spec(c, (100, 0));
        let (labels, annotations) = metadata(c);
        let Some(existing) = api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            let mut rt = DynamicObject::new(&c.service, &route_tables()).within(&c.namespace);
            rt.metadata.labels = Some(labels);
            rt.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            rt.data = json!({"spec": at_rest});
            let created = api
                .create(&PostParams::default(), &rt)
                .await
                .map_err(|e| ClusterError::api("create", &object, e))?;
            super::saw(self.watched.get(), &created);
            return Ok(());
        };
        let live = &existing.data["spec"];
        let same_meta = existing.metadata.labels.clone().unwrap_or_default() == labels
            && existing.metadata.annotations.clone().unwrap_or_default() == annotations;
        if without_weights(live) == without_weights(&at_rest) && same_meta {
            return Ok(());
        }
        let weights = routing_of(c, live)
            .and_then(|r| weights_of(c, &r).ok())
            .unwrap_or((100, 0));
        if !same_meta {
            // Labels and annotations are replaced whole: a merge patch
            // removes a key by setting it to null.
            let mut meta = json!({"labels": labels, "annotations": annotations});
            for (key, want) in [
                ("labels", existing.metadata.labels.clone()),
                ("annotations", existing.metadata.annotations.clone()),
            ] {
                for k in want.unwrap_or_default().keys() {
                    if meta[key].get(k).is_none() {
                        meta[key][k] = Value::Null;
                    }
                }
            }
            let patched = api
                .patch(
                    &c.service,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&json!({"metadata": meta, "spec": spec(c, weights)})),
                )
                .await
                .map_err(|e| ClusterError::api("update", &object, e))?;
            super::saw(self.watched.get(), &patched);
            return Ok(());
        }
        super::merge_spec(
            self.watched.get(),
            &api,
            &c.service,
            &object,
            spec(c, weights),
        )
        .await
    }

    fn watch(&self, c: &ResolvedCanary) {
        self.watched.get_or_init(|| {
            Watched::start_with(&self.api(&c.namespace), &c.service, route_tables())
        });
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        super::watched_routing(
            self.watched.get(),
            &self.api(&c.namespace),
            &c.service,
            &object(c),
            |spec| routing_of(c, spec),
            || {
                format!(
                    "route to the upstreams {} and {}",
                    names::gloo_upstream(c, "primary"),
                    names::gloo_upstream(c, "canary")
                )
            },
        )
        .await
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let object = object(c);
        let weights = weights_of(c, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        // A merge patch replaces the routes whole.
        super::merge_spec(
            self.watched.get(),
            &self.api(&c.namespace),
            &c.service,
            &object,
            spec(c, weights),
        )
        .await
    }

    /// Deletes the RouteTable and the two Upstreams `canary` created; the
    /// user's VirtualService and `spec.upstreamRef`'s Upstream are left as
    /// they are.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let mut out = Vec::new();
        let removal = managed::delete(&self.api(&c.namespace), &c.service, &object(c)).await?;
        out.push((format!("routetable/{}", c.service), removal));
        let api = self.upstream_api(&c.namespace);
        for role in ["primary", "canary"] {
            let name = names::gloo_upstream(c, role);
            let removal = managed::delete(&api, &name, &upstream_object(c, &name)).await?;
            out.push((format!("upstream/{name}"), removal));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(extra: &str, analysis: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  provider: gloo
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
{extra}  service:
    port: 9898
  analysis:
    interval: 1m
    threshold: 5
{analysis}"
        );
        let file = canary_core::spec::load_str("c.yaml", &yaml).expect("valid spec");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    /// The RouteTable after a 50/50 step, as Flagger's router builds it:
    /// one route inheriting the VirtualService's path, two weighted
    /// upstreams named after the namespace, Service and port.
    #[test]
    fn the_route_table_is_the_one_flagger_writes() {
        let c = canary("", "    stepWeight: 10\n");
        let s = spec(&c, (50, 50));
        assert_eq!(
            s,
            json!({"routes": [{
                "inheritablePathMatchers": true,
                "routeAction": {"multi": {"destinations": [
                    {"destination": {"upstream": {"name": "test-podinfo-primaryupstream-9898", "namespace": "test"}}, "weight": 50},
                    {"destination": {"upstream": {"name": "test-podinfo-canaryupstream-9898", "namespace": "test"}}, "weight": 50},
                ]}},
            }]})
        );
        assert_eq!(routing_of(&c, &s), Some(Routing::weighted(50)));
        // At rest the canary's weight is left out, as Go leaves out a zero.
        let rest = spec(&c, (100, 0));
        assert!(rest["routes"][0]["routeAction"]["multi"]["destinations"][1]["weight"].is_null());
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
        assert_eq!(
            routing_of(&c, &spec(&c, (0, 100))),
            Some(Routing::weighted(100))
        );
        assert_eq!(without_weights(&rest), without_weights(&s));
    }

    #[test]
    fn an_ab_route_matches_the_headers_and_sends_them_to_the_canary() {
        let c = canary(
            "",
            "    iterations: 10
    match:
      - headers:
          x-canary: {exact: insider}
          cookie: {regex: \"^(.*?;)?(canary=always)(;.*)?$\"}
",
        );
        let routing = Routing::Matched {
            matches: c.matches.clone(),
        };
        let weights = weights_of(&c, &routing).unwrap();
        assert_eq!(weights, (0, 100));
        let s = spec(&c, weights);
        assert_eq!(
            s["routes"][0]["matchers"],
            json!([{"headers": [
                {"name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$", "regex": true},
                {"name": "x-canary", "value": "insider"},
            ]}])
        );
        assert!(s["routes"][0]["routeAction"]["multi"]["destinations"][0]["weight"].is_null());
        assert_eq!(routing_of(&c, &s), Some(routing));
        // Flagger keeps the matcher at rest too.
        let rest = spec(&c, (100, 0));
        assert_eq!(rest["routes"][0]["matchers"], s["routes"][0]["matchers"]);
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
        assert!(
            weights_of(
                &c,
                &Routing::Mirrored {
                    mirror_weight: None
                }
            )
            .unwrap_err()
            .contains("mirror")
        );
    }

    /// The generated Upstreams point at the primary and canary Services
    /// and copy the settings of `spec.upstreamRef`'s Upstream, not its
    /// kind of upstream.
    #[test]
    fn upstreams_copy_the_referenced_settings() {
        let c = canary(
            "  upstreamRef: {apiVersion: gloo.solo.io/v1, kind: Upstream, name: config}\n",
            "    stepWeight: 10\n",
        );
        assert_eq!(
            c.upstream_ref.as_ref().unwrap().name.as_deref(),
            Some("config")
        );
        let selector = BTreeMap::from([("app".to_string(), "podinfo-primary".to_string())]);
        let config = json!({
            "static": {"hosts": [{"addr": "example.com", "port": 80}]},
            "connectionConfig": {"maxRequestsPerConnection": 10},
            "useHttp2": true,
            "initialStreamWindowSize": 0,
        });
        assert_eq!(
            upstream_spec(&c, "podinfo-primary", &selector, Some(&config)),
            json!({
                "connectionConfig": {"maxRequestsPerConnection": 10},
                "useHttp2": true,
                "kube": {
                    "serviceName": "podinfo-primary",
                    "serviceNamespace": "test",
                    "servicePort": 9898,
                    "selector": {"app": "podinfo-primary"},
                },
            })
        );
        assert_eq!(
            names::gloo_upstream(&c, "canary"),
            "test-podinfo-canaryupstream-9898"
        );
    }
}
