//! Traefik (`traefik.io/v1alpha1` TraefikService), as Flagger drives it:
//! one TraefikService named after the apex Service, a weighted round robin
//! over the primary Service and, while it has a share, the canary Service.
//! The user's IngressRoute sends its traffic to the TraefikService (a
//! service of kind `TraefikService`). A TraefikService only splits by
//! weight: routing matching requests (A/B testing) or mirroring is refused
//! rather than written as weights.

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

pub(crate) struct TraefikRouter {
    client: kube::Client,
    /// The TraefikService, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

impl TraefikRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        TraefikRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn resource() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("traefik.io", "v1alpha1", "TraefikService"),
            "traefikservices",
        )
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &Self::resource())
    }
}

fn object(c: &ResolvedCanary) -> String {
    format!("traefikservice/{} in {}", c.service, c.namespace)
}

/// The weighted services for `routing`, as Flagger's `SetRoutes` writes
/// them: the primary always, the canary only with a share.
pub(crate) fn spec_for(
    c: &ResolvedCanary,
    routing: &Routing,
) -> std::result::Result<Value, &'static str> {
    let (primary, canary) = match routing {
        Routing::Matched { .. } => {
            return Err(
                "route requests by match (A/B testing): a TraefikService only splits traffic by \
                 weight",
            );
        }
        Routing::Mirrored { .. } => {
            return Err("mirror traffic: a TraefikService only splits traffic by weight");
        }
        other => other.weights().unwrap_or((100, 0)),
    };
    let service = |name: String, weight: u32| {
        let mut s = json!({"name": name, "namespace": c.namespace, "port": c.port});
        if weight > 0 {
            s["weight"] = json!(weight);
        }
        s
    };
    let mut services = vec![service(names::primary(&c.service), primary)];
    if canary > 0 {
        services.push(service(names::canary(&c.service), canary));
    }
    Ok(json!({"weighted": {"services": services}}))
}

/// The routing a TraefikService carries, read as Flagger reads it: the
/// primary's weight, the canary gets the rest.
fn routing_of(c: &ResolvedCanary, spec: &Value) -> Option<Routing> {
    let services = spec["weighted"]["services"].as_array()?;
    let primary = services
        .iter()
        .find(|s| s["name"] == names::primary(&c.service).as_str())?;
    let primary = match &primary["weight"] {
        Value::Null => 0,
        w => u32::try_from(w.as_u64()?).ok()?.min(100),
    };
    Some(Routing::weighted(100 - primary))
}

/// The services without their weights (and without the canary, which is
/// there only while it has a share), to compare what they point at.
fn targets(spec: &Value, canary: &str) -> Vec<Value> {
    spec["weighted"]["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] != canary)
        .map(|s| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("weight");
            }
            s
        })
        .collect()
}

impl Router for TraefikRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let api = self.api(&c.namespace);
        let object = object(c);
        let at_rest = spec_for(c, &Routing::all_primary()).expect("weights are writable");
        let Some(existing) = api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            let mut ts = DynamicObject::new(&c.service, &Self::resource()).within(&c.namespace);
            ts.metadata.labels = Some(
                [(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]
                    .into_iter()
                    .collect(),
            );
            ts.data = json!({"spec": at_rest});
            let created = api
                .create(&PostParams::default(), &ts)
                .await
                .map_err(|e| ClusterError::api("create", &object, e))?;
            super::saw(self.watched.get(), &created);
            return Ok(());
        };
        let canary = names::canary(&c.service);
        let live = &existing.data["spec"];
        if targets(live, &canary) == targets(&at_rest, &canary) {
            return Ok(());
        }
        // The port or the names changed: rewrite at the current weights.
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
            || format!("weighted service {}", names::primary(&c.service)),
        )
        .await
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let object = object(c);
        let spec = spec_for(c, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        super::merge_spec(
            self.watched.get(),
            &self.api(&c.namespace),
            &c.service,
            &object,
            spec,
        )
        .await
    }

    /// Deletes the TraefikService `canary` created; the user's
    /// IngressRoute is left as it is.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let removal = managed::delete(&self.api(&c.namespace), &c.service, &object(c)).await?;
        Ok(vec![(format!("traefikservice/{}", c.service), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary() -> ResolvedCanary {
        let yaml = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: default}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
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

    #[test]
    fn the_traefikservice_is_the_one_flagger_writes() {
        let c = canary();
        let split = spec_for(&c, &Routing::weighted(10)).unwrap();
        assert_eq!(
            split,
            json!({"weighted": {"services": [
                {"name": "podinfo-primary", "namespace": "default", "port": 80, "weight": 90},
                {"name": "podinfo-canary", "namespace": "default", "port": 80, "weight": 10},
            ]}})
        );
        assert_eq!(routing_of(&c, &split), Some(Routing::weighted(10)));
        // At rest the canary is not listed at all.
        let rest = spec_for(&c, &Routing::all_primary()).unwrap();
        assert_eq!(
            rest,
            json!({"weighted": {"services": [
                {"name": "podinfo-primary", "namespace": "default", "port": 80, "weight": 100},
            ]}})
        );
        assert_eq!(routing_of(&c, &rest), Some(Routing::all_primary()));
        assert_eq!(
            targets(&rest, "podinfo-canary"),
            targets(&split, "podinfo-canary")
        );
        assert!(
            spec_for(
                &c,
                &Routing::Matched {
                    matches: Vec::new()
                }
            )
            .is_err()
        );
    }
}
