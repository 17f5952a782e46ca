//! SMI TrafficSplit (`split.smi-spec.io`), as Flagger writes it for
//! Linkerd (v1alpha2), OSM (v1alpha3) and the `smi:` providers: one object
//! named after the apex Service, with the primary and canary Services as
//! weighted backends. A TrafficSplit only splits by weight: it cannot
//! route matching requests to the canary (A/B testing) nor mirror them, so
//! those routings are refused instead of being written as weights.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Router;
use crate::cluster::cache::{self, Watched};
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::MANAGED_BY;
use crate::cluster::managed::{self, Removal};
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

pub(crate) struct SmiRouter {
    client: kube::Client,
    version: String,
    /// The TrafficSplit, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<DynamicObject>>,
}

impl SmiRouter {
    pub(crate) fn new(client: kube::Client, version: &'static str) -> Self {
        SmiRouter {
            client,
            version: version.to_string(),
            watched: std::sync::OnceLock::new(),
        }
    }

    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("split.smi-spec.io", &self.version, "TrafficSplit"),
            "trafficsplits",
        )
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.resource())
    }

    /// A weight as the version writes it: v1alpha1 uses quantities.
    fn weight(&self, w: u32) -> serde_json::Value {
        if self.version == "v1alpha1" {
            json!(w.to_string())
        } else {
            json!(w)
        }
    }

    fn backends(&self, c: &ResolvedCanary, (primary, canary): (u32, u32)) -> serde_json::Value {
        json!([
            {"service": names::canary(&c.service), "weight": self.weight(canary)},
            {"service": names::primary(&c.service), "weight": self.weight(primary)},
        ])
    }

    fn object(&self, c: &ResolvedCanary) -> String {
        format!("trafficsplit/{} in {}", c.service, c.namespace)
    }
}

/// The (primary, canary) weights a TrafficSplit carries for `routing`, or
/// what it cannot do.
fn weights_of(routing: &Routing) -> std::result::Result<(u32, u32), &'static str> {
    match routing {
        Routing::Matched { .. } => Err(
            "route requests by match (A/B testing): an SMI TrafficSplit only splits traffic by \
             weight",
        ),
        Routing::Mirrored { .. } => {
            Err("mirror traffic to the canary: an SMI TrafficSplit only splits traffic by weight")
        }
        other => other
            .weights()
            .ok_or("express this routing: an SMI TrafficSplit only splits traffic by weight"),
    }
}

/// Reads a backend weight: an integer, or (v1alpha1) a quantity string.
fn parse_weight(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(|n| n as u32),
        serde_json::Value::String(s) => {
            let s = s.trim();
            match s.strip_suffix('m') {
                Some(milli) => milli.parse::<u64>().ok().map(|m| (m / 1000) as u32),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

impl Router for SmiRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let api = self.api(&c.namespace);
        let object = self.object(c);
        // From the watch, when it is listed by now: the first round reads
        // the routing from it anyway.
        if cache::get_opt(self.watched.get(), &api, &c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
            .is_some()
        {
            return Ok(());
        }
        let mut ts = DynamicObject::new(&c.service, &self.resource()).within(&c.namespace);
        ts.metadata.labels = Some(
            [(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]
                .into_iter()
                .collect(),
        );
        ts.data = json!({
            "spec": {
                "service": c.service,
                "backends": self.backends(c, (100, 0)),
            }
        });
        let created = api
            .create(&PostParams::default(), &ts)
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
        let Some(ts) = cache::get_opt(self.watched.get(), &self.api(&c.namespace), &c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(None);
        };
        let mut primary = None;
        let mut canary = None;
        for b in ts.data["spec"]["backends"].as_array().into_iter().flatten() {
            let service = b["service"].as_str().unwrap_or_default();
            let w = parse_weight(&b["weight"]);
            if service == names::primary(&c.service) {
                primary = w;
            } else if service == names::canary(&c.service) {
                canary = w;
            }
        }
        match (primary, canary) {
            (Some(primary), Some(canary)) => Ok(Some(Routing::Weighted { primary, canary })),
            _ => Err(ClusterError::Invalid(format!(
                "{object} has no {0}-primary and {0}-canary backends; delete it so canary \
                 recreates it",
                c.service
            ))),
        }
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let weights = weights_of(routing)
            .map_err(|why| ClusterError::Refused(format!("{} cannot {why}", self.object(c))))?;
        let patch = json!({"spec": {"backends": self.backends(c, weights)}});
        let patched = self
            .api(&c.namespace)
            .patch(&c.service, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ClusterError::api("update", self.object(c), e))?;
        super::saw(self.watched.get(), &patched);
        Ok(())
    }

    /// Deletes the TrafficSplit `canary` created; one a user made is left
    /// alone (and reported), as Flagger's garbage collection would only
    /// take the one its Canary owns.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let removal = managed::delete(&self.api(&c.namespace), &c.service, &self.object(c)).await?;
        Ok(vec![(format!("trafficsplit/{}", c.service), removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_as_integers_or_quantities() {
        assert_eq!(parse_weight(&json!(95)), Some(95));
        assert_eq!(parse_weight(&json!("5")), Some(5));
        assert_eq!(parse_weight(&json!("500m")), Some(0));
        assert_eq!(parse_weight(&json!("100000m")), Some(100));
        assert_eq!(parse_weight(&json!(null)), None);
    }

    #[test]
    fn matching_and_mirroring_are_refused_never_written_as_weights() {
        assert_eq!(weights_of(&Routing::weighted(5)), Ok((95, 5)));
        assert_eq!(weights_of(&Routing::CanaryService), Ok((100, 0)));
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
