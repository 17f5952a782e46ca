//! Kuma (`kuma.io/v1alpha1` TrafficRoute), as Flagger v1.44 drives it: one
//! cluster-scoped TrafficRoute named after the apex Service, in the mesh
//! the Canary's `kuma.io/mesh` annotation names (`default` without it),
//! sending every source's traffic (`kuma.io/service: "*"`) for the apex
//! Service's Kuma service `<apex>_<namespace>_svc_<port>` to the primary
//! and canary Kuma services by weight. Flagger still writes TrafficRoute
//! for Kuma, not the newer MeshHTTPRoute.
//!
//! A TrafficRoute written this way only splits by weight: matching
//! requests (A/B testing) and mirroring are refused, never written as
//! weights.

use std::collections::BTreeMap;

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

/// The Canary annotation naming the Kuma mesh.
const MESH_ANNOTATION: &str = "kuma.io/mesh";

pub(crate) struct KumaRouter {
    client: kube::Client,
    /// The TrafficRoute, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kuma.io", "v1alpha1", "TrafficRoute"),
        "trafficroutes",
    )
}

/// A Service's Kuma service name: `<name>_<namespace>_svc_<port>`.
fn kuma_service(name: &str, c: &ResolvedCanary) -> String {
    format!("{name}_{}_svc_{}", c.namespace, c.port)
}

fn object(c: &ResolvedCanary) -> String {
    format!("trafficroute/{} (cluster-scoped)", c.service)
}

/// The TrafficRoute's `spec` at (primary, canary) weights.
pub(crate) fn spec(c: &ResolvedCanary, (primary, canary): (u32, u32)) -> Value {
    json!({
        "sources": [{"match": {"kuma.io/service": "*"}}],
        "destinations": [{"match": {"kuma.io/service": kuma_service(&c.service, c)}}],
        "conf": {"split": [
            {"weight": primary, "destination": {"kuma.io/service": kuma_service(&names::primary(&c.service), c)}},
            {"weight": canary, "destination": {"kuma.io/service": kuma_service(&names::canary(&c.service), c)}},
        ]},
    })
}

/// The mesh the TrafficRoute belongs to.
fn mesh(c: &ResolvedCanary) -> String {
    c.annotations
        .get(MESH_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| "default".to_string())
}

/// The annotations Flagger puts on the TrafficRoute: the apex metadata's,
/// or, when it has none, the port's protocol (`<port>.service.kuma.io:
/// http`).
fn annotations(c: &ResolvedCanary) -> BTreeMap<String, String> {
    let apex = c
        .service_spec
        .apex
        .as_ref()
        .map(|m| m.annotations.clone())
        .unwrap_or_default();
    if apex.is_empty() {
        return BTreeMap::from([(format!("{}.service.kuma.io", c.port), "http".to_string())]);
    }
    apex.into_iter()
        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
        .collect()
}

/// The (primary, canary) weights for `routing`, or what a TrafficRoute
/// cannot do.
fn weights_of(routing: &Routing) -> std::result::Result<(u32, u32), &'static str> {
    match routing {
        Routing::Matched { .. } => Err(
            "route requests by match (A/B testing): a Kuma TrafficRoute written by canary only \
             splits traffic by weight",
        ),
        Routing::Mirrored { .. } => {
            Err("mirror traffic to the canary: a Kuma TrafficRoute only splits traffic by weight")
        }
        other => other
            .weights()
            .ok_or("express this routing: a Kuma TrafficRoute only splits traffic by weight"),
    }
}

/// The routing a TrafficRoute carries, read as Flagger reads it: the
/// primary's weight, the canary the rest.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let primary = names::primary(&c.service);
    spec["conf"]["split"]
        .as_array()?
        .iter()
        .find(|s| {
            s["destination"]["kuma.io/service"]
                .as_str()
                .and_then(|d| d.split('_').next())
                == Some(primary.as_str())
        })
        .and_then(|s| s["weight"].as_u64())
        .map(|w| {
            let w = w.min(100) as u32;
            Routing::Weighted {
                primary: w,
                canary: 100 - w,
            }
        })
}

impl KumaRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        KumaRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &resource())
    }
}

impl Router for KumaRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let api = self.api();
        let object = object(c);
        let want = spec(c, (100, 0));
        match api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        {
            None => {
                let mut tr = DynamicObject::new(&c.service, &resource());
                tr.metadata.labels = Some(BTreeMap::from([(
                    MANAGED_BY.0.to_string(),
                    MANAGED_BY.1.to_string(),
                )]));
                tr.metadata.annotations = Some(annotations(c));
                tr.data = json!({"mesh": mesh(c), "spec": want});
                let created = api
                    .create(&PostParams::default(), &tr)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
                super::saw(self.watched.get(), &created);
            }
            // Sources or destinations changed (the Service's port): put
            // them back, keeping the weights, as Flagger does.
            Some(existing) => {
                let mut live = existing.data["spec"].clone();
                let mut wanted = want.clone();
                for s in [&mut live, &mut wanted] {
                    for split in s["conf"]["split"].as_array_mut().into_iter().flatten() {
                        split["weight"] = Value::Null;
                    }
                }
                if live != wanted {
                    let routing = routing_of(c, &existing.data["spec"])
                        .and_then(|r| r.weights())
                        .unwrap_or((100, 0));
                    super::merge_spec(
                        self.watched.get(),
                        &api,
                        &c.service,
                        &object,
                        spec(c, routing),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    fn watch(&self, c: &ResolvedCanary) {
        self.watched
            .get_or_init(|| Watched::start_with(&self.api(), &c.service, resource()));
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        super::watched_routing(
            self.watched.get(),
            &self.api(),
            &c.service,
            &object(c),
            |spec| routing_of(c, spec),
            || format!("split to {}", kuma_service(&names::primary(&c.service), c)),
        )
        .await
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let weights = weights_of(routing)
            .map_err(|why| ClusterError::Refused(format!("{} cannot {why}", object(c))))?;
        let conf = json!({"conf": spec(c, weights)["conf"].clone()});
        super::merge_spec(
            self.watched.get(),
            &self.api(),
            &c.service,
            &object(c),
            conf,
        )
        .await
    }

    /// Deletes the TrafficRoute `canary` created; one a user made is left
    /// alone (and reported).
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let removal = managed::delete(&self.api(), &c.service, &object(c)).await?;
        Ok(vec![(format!("trafficroute/{}", c.service), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(metadata: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: test{metadata}}}
spec:
  provider: kuma
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service:
    port: 9898
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
"
        );
        let file = canary_core::spec::load_str("c.yaml", &yaml).expect("valid spec");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    /// The TrafficRoute after a 50/50 step, as Flagger's router builds it:
    /// every source, the apex's Kuma service, two weighted splits.
    #[test]
    fn the_traffic_route_is_the_one_flagger_writes() {
        let c = canary("");
        let s = spec(&c, (50, 50));
        assert_eq!(
            s,
            json!({
                "sources": [{"match": {"kuma.io/service": "*"}}],
                "destinations": [{"match": {"kuma.io/service": "podinfo_test_svc_9898"}}],
                "conf": {"split": [
                    {"weight": 50, "destination": {"kuma.io/service": "podinfo-primary_test_svc_9898"}},
                    {"weight": 50, "destination": {"kuma.io/service": "podinfo-canary_test_svc_9898"}},
                ]},
            })
        );
        assert_eq!(routing_of(&c, &s), Some(Routing::weighted(50)));
        assert_eq!(
            routing_of(&c, &spec(&c, (100, 0))),
            Some(Routing::all_primary())
        );
        assert_eq!(mesh(&c), "default");
        assert_eq!(
            annotations(&c),
            BTreeMap::from([("9898.service.kuma.io".to_string(), "http".to_string())])
        );
        let other = canary(", annotations: {kuma.io/mesh: payments}");
        assert_eq!(mesh(&other), "payments");
    }

    #[test]
    fn matching_and_mirroring_are_refused_never_written_as_weights() {
        assert_eq!(weights_of(&Routing::weighted(5)), Ok((95, 5)));
        let ab = Routing::Matched {
            matches: vec![Default::default()],
        };
        assert!(weights_of(&ab).unwrap_err().contains("A/B testing"));
        let mirrored = Routing::Mirrored {
            mirror_weight: None,
        };
        assert!(weights_of(&mirrored).unwrap_err().contains("mirror"));
    }
}
