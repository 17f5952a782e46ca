//! APISIX (`apisix.apache.org/v2` ApisixRoute), as Flagger v1.44 drives it:
//! the http route of the user's ApisixRoute (`spec.routeRef`) whose one
//! backend is the apex Service is copied, alone, into
//! `<route>-<apex>-canary`, at the highest priority (10000) so that APISIX
//! prefers it, with two weighted backends: the primary Service in place of
//! the apex one, and the canary Service on the same port. The weights of
//! the copy move at every step; the user's ApisixRoute is never changed.
//!
//! The copy only splits by weight: matching requests (A/B testing) and
//! mirroring are refused, never written as weights.

use std::collections::BTreeMap;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::Router;
use crate::cluster::cache::Watched;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{self, MANAGED_BY, Removal};
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

/// The priority Flagger gives the copied route.
const MAX_PRIORITY: u32 = 10000;

pub(crate) struct ApisixRouter {
    client: kube::Client,
    /// The canary ApisixRoute, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute"),
        "apisixroutes",
    )
}

/// The user's ApisixRoute named by `spec.routeRef`.
fn route_name(c: &ResolvedCanary) -> Result<&str> {
    c.route.as_deref().ok_or_else(|| {
        ClusterError::Invalid(format!(
            "canary {}.{} has no spec.routeRef, which the apisix provider needs",
            c.name, c.namespace
        ))
    })
}

/// `<route>-<apex>-canary`.
fn canary_route(route: &str, c: &ResolvedCanary) -> String {
    format!("{route}-{}", names::canary(&c.service))
}

fn object(c: &ResolvedCanary, name: &str) -> String {
    format!("apisixroute/{name} in {}", c.namespace)
}

/// The copy's `spec` at (primary, canary) weights, from the user's route
/// `spec`; `Err` says why the route cannot be copied.
pub(crate) fn canary_spec(
    c: &ResolvedCanary,
    user_spec: &Value,
    (primary, canary): (u32, u32),
) -> std::result::Result<Value, String> {
    let http = user_spec["http"]
        .as_array()
        .filter(|h| !h.is_empty())
        .ok_or("its spec.http is empty")?;
    let target = http
        .iter()
        .find(|h| {
            h["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| b["serviceName"] == c.service.as_str())
        })
        .ok_or_else(|| format!("no http route has the backend {}", c.service))?;
    let backends = target["backends"].as_array().cloned().unwrap_or_default();
    if backends.len() != 1 {
        return Err(format!(
            "its http route {} has {} backends; only one is supported",
            target["name"].as_str().unwrap_or(""),
            backends.len()
        ));
    }
    let mut route = target.clone();
    route["priority"] = json!(MAX_PRIORITY);
    let mut primary_backend = backends[0].clone();
    primary_backend["serviceName"] = json!(names::primary(&c.service));
    primary_backend["weight"] = json!(primary);
    let mut canary_backend = json!({
        "serviceName": names::canary(&c.service),
        "servicePort": backends[0]["servicePort"],
        "weight": canary,
    });
    for key in ["resolveGranularity", "subset"] {
        if !backends[0][key].is_null() {
            canary_backend[key] = backends[0][key].clone();
        }
    }
    route["backends"] = json!([primary_backend, canary_backend]);
    let mut spec = user_spec.clone();
    spec["http"] = json!([route]);
    Ok(spec)
}

/// The (primary, canary) weights for `routing`, or what the copy cannot
/// do.
fn weights_of(routing: &Routing) -> std::result::Result<(u32, u32), &'static str> {
    match routing {
        Routing::Matched { .. } => Err(
            "route requests by match (A/B testing): Flagger's APISIX route only splits traffic \
             by weight",
        ),
        Routing::Mirrored { .. } => Err(
            "mirror traffic to the canary: Flagger's APISIX route only splits traffic by weight",
        ),
        other => other
            .weights()
            .ok_or("express this routing: Flagger's APISIX route only splits traffic by weight"),
    }
}

/// The routing the copy carries, read as Flagger reads it: the primary
/// backend's weight, the canary the rest.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let primary = names::primary(&c.service);
    spec["http"]
        .as_array()?
        .iter()
        .flat_map(|h| h["backends"].as_array().into_iter().flatten())
        .find(|b| b["serviceName"] == primary.as_str())
        .and_then(|b| b["weight"].as_u64())
        .map(|w| {
            let w = w.min(100) as u32;
            Routing::Weighted {
                primary: w,
                canary: 100 - w,
            }
        })
}

impl ApisixRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        ApisixRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &resource())
    }
}

/// Backends without their weights, to compare a copy with its source.
fn without_weights(spec: &Value) -> Value {
    let mut s = spec.clone();
    for h in s["http"].as_array_mut().into_iter().flatten() {
        for b in h["backends"].as_array_mut().into_iter().flatten() {
            if let Some(m) = b.as_object_mut() {
                m.remove("weight");
            }
        }
    }
    s
}

impl Router for ApisixRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let name = route_name(c)?;
        let api = self.api(&c.namespace);
        let user_object = object(c, name);
        let user = api
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::api("read", &user_object, e))?
            .ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "{user_object} (spec.routeRef) does not exist; create it first"
                ))
            })?;
        let spec = canary_spec(c, &user.data["spec"], (100, 0)).map_err(|why| {
            ClusterError::Invalid(format!("{user_object} cannot be copied for canary: {why}"))
        })?;
        let copy = canary_route(name, c);
        let copy_object = object(c, &copy);
        match api
            .get_opt(&copy)
            .await
            .map_err(|e| ClusterError::api("read", &copy_object, e))?
        {
            None => {
                let mut ar = DynamicObject::new(&copy, &resource()).within(&c.namespace);
                let mut labels: BTreeMap<String, String> =
                    user.metadata.labels.clone().unwrap_or_default();
                labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
                ar.metadata.labels = Some(labels);
                ar.metadata.annotations = user.metadata.annotations.clone().map(|a| {
                    a.into_iter()
                        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
                        .collect()
                });
                ar.data = json!({"spec": spec});
                let created = api
                    .create(&PostParams::default(), &ar)
                    .await
                    .map_err(|e| ClusterError::api("create", &copy_object, e))?;
                super::saw(self.watched.get(), &created);
            }
            // The user's route changed: the copy follows, keeping its
            // weights, as in Flagger.
            Some(existing) => {
                if without_weights(&existing.data["spec"]) != without_weights(&spec) {
                    let weights = routing_of(c, &existing.data["spec"])
                        .and_then(|r| r.weights())
                        .unwrap_or((100, 0));
                    let spec = canary_spec(c, &user.data["spec"], weights)
                        .map_err(ClusterError::Invalid)?;
                    super::merge_spec(self.watched.get(), &api, &copy, &copy_object, spec).await?;
                }
            }
        }
        Ok(())
    }

    fn watch(&self, c: &ResolvedCanary) {
        let Ok(name) = route_name(c) else { return };
        let copy = canary_route(name, c);
        self.watched
            .get_or_init(|| Watched::start_with(&self.api(&c.namespace), &copy, resource()));
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let copy = canary_route(route_name(c)?, c);
        super::watched_routing(
            self.watched.get(),
            &self.api(&c.namespace),
            &copy,
            &object(c, &copy),
            |spec| routing_of(c, spec),
            || format!("weighted backend {}", names::primary(&c.service)),
        )
        .await
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let copy = canary_route(route_name(c)?, c);
        let copy_object = object(c, &copy);
        let (primary, canary) = weights_of(routing)
            .map_err(|why| ClusterError::Refused(format!("{copy_object} cannot {why}")))?;
        let api = self.api(&c.namespace);
        let ar = api
            .get(&copy)
            .await
            .map_err(|e| ClusterError::api("read", &copy_object, e))?;
        let mut spec = ar.data["spec"].clone();
        let (p, k) = (names::primary(&c.service), names::canary(&c.service));
        for h in spec["http"].as_array_mut().into_iter().flatten() {
            for b in h["backends"].as_array_mut().into_iter().flatten() {
                if b["serviceName"] == p.as_str() {
                    b["weight"] = json!(primary);
                } else if b["serviceName"] == k.as_str() {
                    b["weight"] = json!(canary);
                }
            }
        }
        let body = json!({
            "metadata": {"resourceVersion": ar.metadata.resource_version},
            "spec": {"http": spec["http"]},
        });
        let patched = api
            .patch(&copy, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| ClusterError::api("update", &copy_object, e))?;
        super::saw(self.watched.get(), &patched);
        Ok(())
    }

    /// Deletes the copy `canary` created; the user's ApisixRoute is left
    /// as it is.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let copy = canary_route(route_name(c)?, c);
        let removal = managed::delete(&self.api(&c.namespace), &copy, &object(c, &copy)).await?;
        Ok(vec![(format!("apisixroute/{copy}"), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary() -> ResolvedCanary {
        let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: apisix
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}
  service:
    port: 80
    targetPort: 9898
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
";
        let file = canary_core::spec::load_str("c.yaml", yaml).expect("valid spec");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    fn user_spec() -> Value {
        json!({"http": [
            {"name": "other", "match": {"hosts": ["other.example.com"], "paths": ["/*"]},
             "backends": [{"serviceName": "other", "servicePort": 80}]},
            {"name": "method", "match": {"hosts": ["app.example.com"], "paths": ["/*"],
                "methods": ["GET"]},
             "backends": [{"serviceName": "podinfo", "servicePort": 80, "resolveGranularity": "service"}]},
        ]})
    }

    /// The copy as Flagger's router builds it: the apex's http route
    /// alone, at priority 10000, the primary in place of the apex and the
    /// canary beside it.
    #[test]
    fn the_canary_route_is_the_one_flagger_writes() {
        let c = canary();
        let spec = canary_spec(&c, &user_spec(), (90, 10)).unwrap();
        assert_eq!(
            spec,
            json!({"http": [
                {"name": "method", "priority": 10000,
                 "match": {"hosts": ["app.example.com"], "paths": ["/*"], "methods": ["GET"]},
                 "backends": [
                    {"serviceName": "podinfo-primary", "servicePort": 80,
                     "resolveGranularity": "service", "weight": 90},
                    {"serviceName": "podinfo-canary", "servicePort": 80,
                     "resolveGranularity": "service", "weight": 10},
                 ]},
            ]})
        );
        assert_eq!(canary_route("podinfo", &c), "podinfo-podinfo-canary");
        assert_eq!(routing_of(&c, &spec), Some(Routing::weighted(10)));
    }

    #[test]
    fn a_route_without_a_single_apex_backend_is_refused() {
        let c = canary();
        let e = canary_spec(&c, &json!({"http": []}), (100, 0)).unwrap_err();
        assert!(e.contains("spec.http is empty"), "{e}");
        let two = json!({"http": [{"name": "r", "backends": [
            {"serviceName": "podinfo", "servicePort": 80},
            {"serviceName": "legacy", "servicePort": 80},
        ]}]});
        let e = canary_spec(&c, &two, (100, 0)).unwrap_err();
        assert!(e.contains("only one is supported"), "{e}");
        assert!(
            weights_of(&Routing::Mirrored {
                mirror_weight: None
            })
            .is_err()
        );
    }
}
