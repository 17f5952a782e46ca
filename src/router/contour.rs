//! Contour (`projectcontour.io/v1` HTTPProxy), as Flagger drives it: one
//! HTTPProxy named after the apex Service, with one route sending the
//! route's path prefix (`service.match[0].uri.prefix`, else `/`) to the
//! primary and canary Services by weight. Each Service carries a
//! `l5d-dst-override` request header naming itself, so that a Linkerd
//! proxy behind Envoy keeps the split. `service.timeout` becomes the
//! route's timeout policy (with a 5m idle timeout) and `service.retries`
//! its retry policy.
//!
//! For A/B testing the HTTPProxy has two routes: the first carries the
//! `analysis.match` headers as header conditions and sends its requests to
//! the canary while the analysis runs; the second sends the rest to the
//! primary. Flagger repeats the path prefix in every header condition,
//! and Contour takes one prefix per route, so one header (or the Cookie
//! header) is matched, exactly (see
//! `canary_core::provider::Provider::match_support`).
//!
//! The HTTPProxy has no virtual host: it is a child meant to be included
//! by the user's root HTTPProxy, which owns the host name. It cannot
//! mirror traffic, so a mirrored routing is refused. Envoy names the
//! canary's upstream cluster `<namespace>_<service>-canary_<port>`, which
//! Flagger's built-in Contour queries select with the target's name: with
//! a `service.name` other than `targetRef.name` they find no series.

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

pub(crate) struct ContourRouter {
    client: kube::Client,
    /// The HTTPProxy, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

impl ContourRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        ContourRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn resource() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("projectcontour.io", "v1", "HTTPProxy"),
            "httpproxies",
        )
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &Self::resource())
    }
}

fn object(c: &ResolvedCanary) -> String {
    format!("httpproxy/{} in {}", c.service, c.namespace)
}

/// The path prefix of the routes: `service.match[0].uri.prefix`, else `/`.
fn prefix(c: &ResolvedCanary) -> String {
    c.service_spec
        .r#match
        .first()
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// The header conditions of the A/B route, one per header of each match:
/// `exact`, or `contains` for a `prefix` or `suffix` (as Flagger writes
/// them; `validate` refuses all but `exact`).
fn match_conditions(c: &ResolvedCanary) -> Vec<Value> {
    let prefix = prefix(c);
    let mut out = Vec::new();
    for m in &c.matches {
        for (name, sm) in &m.headers {
            let mut header = json!({"name": name});
            if let Some(v) = sm.prefix.as_ref().or(sm.suffix.as_ref()) {
                header["contains"] = json!(v);
            } else if let Some(v) = &sm.exact {
                header["exact"] = json!(v);
            }
            out.push(json!({"prefix": prefix, "header": header}));
        }
    }
    out
}

/// One weighted Service of a route. A weight of 0 is left out, as Go's
/// `omitempty` leaves it out of the object Flagger writes.
fn service(c: &ResolvedCanary, name: &str, weight: u32) -> Value {
    let mut s = json!({
        "name": name,
        "port": c.port,
        "requestHeadersPolicy": {"set": [{
            "name": "l5d-dst-override",
            "value": format!("{name}.{}.svc.cluster.local:{}", c.namespace, c.port),
        }]},
    });
    if weight > 0 {
        s["weight"] = json!(weight);
    }
    s
}

/// A route with `conditions`, the timeout and retry policies, and the
/// primary and canary Services at `weights`.
fn route(c: &ResolvedCanary, conditions: Vec<Value>, (primary, canary): (u32, u32)) -> Value {
    let mut r = json!({
        "conditions": conditions,
        "services": [
            service(c, &names::primary(&c.service), primary),
            service(c, &names::canary(&c.service), canary),
        ],
    });
    if let Some(t) = &c.service_spec.timeout {
        r["timeoutPolicy"] = json!({"response": t, "idle": "5m"});
    }
    if let Some(retries) = &c.service_spec.retries {
        let mut p = json!({"count": retries.attempts.unwrap_or(0).max(0)});
        if let Some(t) = &retries.per_try_timeout {
            p["perTryTimeout"] = json!(t);
        }
        r["retryPolicy"] = p;
    }
    r
}

/// The HTTPProxy spec for `routing`, as Flagger's `SetRoutes` writes it:
/// one weighted route, or for an A/B canary the matching route (at the
/// weights) before the route of the other requests (all to the primary).
pub(crate) fn spec_for(
    c: &ResolvedCanary,
    routing: &Routing,
) -> std::result::Result<Value, &'static str> {
    let weights = match routing {
        Routing::Mirrored { .. } => {
            return Err("mirror traffic: a Contour HTTPProxy only splits or matches requests");
        }
        Routing::Matched { .. } if c.matches.is_empty() => {
            return Err("route requests by match: the canary has no analysis.match");
        }
        Routing::Matched { .. } => (0, 100),
        other => other.weights().unwrap_or((100, 0)),
    };
    let by_prefix = vec![json!({"prefix": prefix(c)})];
    let routes = if c.matches.is_empty() {
        vec![route(c, by_prefix, weights)]
    } else {
        vec![
            route(c, match_conditions(c), weights),
            route(c, by_prefix, (100, 0)),
        ]
    };
    Ok(json!({"routes": routes}))
}

/// The spec without the Services' weights, to compare what the routes do
/// apart from the split (Flagger's `Reconcile` ignores the weights).
fn without_weights(spec: &Value) -> Value {
    let mut s = spec.clone();
    for r in s["routes"].as_array_mut().into_iter().flatten() {
        for svc in r["services"].as_array_mut().into_iter().flatten() {
            if let Some(o) = svc.as_object_mut() {
                o.remove("weight");
            }
        }
    }
    s
}

/// The routing an HTTPProxy's first route carries, read as Flagger reads
/// it (the primary's weight, the canary gets the rest); on an A/B canary,
/// a first route sending requests to the canary is the A/B routing.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let first = spec["routes"].get(0)?;
    let services = first["services"].as_array()?;
    if services.len() < 2 {
        return None;
    }
    let primary = services
        .iter()
        .find(|s| s["name"] == names::primary(&c.service).as_str())?;
    let primary = match &primary["weight"] {
        Value::Null => 0,
        w => u32::try_from(w.as_u64()?).ok()?.min(100),
    };
    let canary = 100 - primary;
    if !c.matches.is_empty() && canary > 0 && spec["routes"].as_array()?.len() > 1 {
        return Some(Routing::Matched {
            matches: c.matches.clone(),
        });
    }
    Some(Routing::weighted(canary))
}

impl Router for ContourRouter {
    /// Creates the HTTPProxy at 100/0, or brings its routes back to what
    /// the spec asks while keeping the weights (as Flagger does).
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let api = self.api(&c.namespace);
        let object = object(c);
        let at_rest = spec_for(c, &Routing::all_primary()).expect("weights are writable");
        let Some(existing) = api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            let mut proxy = DynamicObject::new(&c.service, &Self::resource()).within(&c.namespace);
            proxy.metadata.labels = Some(
                [(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]
                    .into_iter()
                    .collect(),
            );
            proxy.data = json!({"spec": at_rest});
            let created = api
                .create(&PostParams::default(), &proxy)
                .await
                .map_err(|e| ClusterError::api("create", &object, e))?;
            super::saw(self.watched.get(), &created);
            return Ok(());
        };
        let live = &existing.data["spec"];
        if without_weights(live) == without_weights(&at_rest) {
            return Ok(());
        }
        // The routes changed (a new timeout, match or prefix): rewrite them
        // at the weights the HTTPProxy carries now.
        let routing = routing_of(c, live).unwrap_or_else(Routing::all_primary);
        let spec = spec_for(c, &routing).unwrap_or(at_rest);
        super::merge_spec(self.watched.get(), &api, &c.service, &object, spec).await
    }

    fn watch(&self, c: &ResolvedCanary) {
        self.watched.get_or_init(|| {
            Watched::start_with(&self.api(&c.namespace), &c.service, Self::resource())
        });
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        super::watched_routing(
            self.watched.get(),
            &self.api(&c.namespace),
            &c.service,
            &object(c),
            |spec| routing_of(c, spec),
            || format!("route to {0}-primary and {0}-canary", c.service),
        )
        .await
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let object = object(c);
        let spec = spec_for(c, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        // A merge patch replaces the routes whole.
        super::merge_spec(
            self.watched.get(),
            &self.api(&c.namespace),
            &c.service,
            &object,
            spec,
        )
        .await
    }

    /// Deletes the HTTPProxy `canary` created; the user's root HTTPProxy
    /// that includes it is left as it is.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let removal = managed::delete(&self.api(&c.namespace), &c.service, &object(c)).await?;
        Ok(vec![(format!("httpproxy/{}", c.service), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(service: &str, analysis: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: default}}
spec:
  provider: contour
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service:
    port: 9898
{service}  analysis:
    interval: 1m
    threshold: 5
{analysis}"
        );
        let file = canary_core::spec::load_str("c.yaml", &yaml).expect("valid spec");
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

    const POLICIES: &str = "    timeout: 15s
    retries: {attempts: 10, perTryTimeout: 5s}
";

    #[test]
    fn the_weighted_httpproxy_is_the_one_flagger_writes() {
        let c = canary(POLICIES, "    stepWeight: 10\n");
        let spec = spec_for(&c, &Routing::weighted(10)).unwrap();
        assert_eq!(spec, fixture("httpproxy-weighted.yaml")["spec"]);
        assert_eq!(routing_of(&c, &spec), Some(Routing::weighted(10)));
        // At rest the canary's weight is left out, as Go leaves out a zero.
        let rest = spec_for(&c, &Routing::all_primary()).unwrap();
        assert!(rest["routes"][0]["services"][1].get("weight").is_none());
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
        assert_eq!(without_weights(&rest), without_weights(&spec));
    }

    #[test]
    fn the_ab_httpproxy_matches_the_header_before_the_default_route() {
        let c = canary(
            "",
            "    iterations: 10
    match:
      - headers:
          x-canary:
            exact: insider
",
        );
        let routing = Routing::Matched {
            matches: c.matches.clone(),
        };
        let spec = spec_for(&c, &routing).unwrap();
        assert_eq!(spec, fixture("httpproxy-ab.yaml")["spec"]);
        assert_eq!(routing_of(&c, &spec), Some(routing));
        let rest = spec_for(&c, &Routing::all_primary()).unwrap();
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
    }

    #[test]
    fn the_path_prefix_comes_from_the_service_match_and_mirroring_is_refused() {
        let c = canary(
            "    match:\n      - uri: {prefix: /api}\n",
            "    stepWeight: 10\n",
        );
        let spec = spec_for(&c, &Routing::weighted(20)).unwrap();
        assert_eq!(spec["routes"][0]["conditions"], json!([{"prefix": "/api"}]));
        assert!(
            spec_for(
                &c,
                &Routing::Mirrored {
                    mirror_weight: None
                }
            )
            .is_err()
        );
    }
}
