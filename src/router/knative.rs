//! Knative (`serving.knative.dev/v1` Service), as Flagger drives it: the
//! Knative Service is both the target and the router. Its annotation
//! [`PRIMARY_REVISION`] names the promoted ("primary") revision, and its
//! `spec.traffic` splits the requests between the latest revision
//! (`latestRevision: true`, the canary) and that one, by percent. There is
//! no primary workload and no Services of `canary`'s own: promotion moves
//! the annotation to the latest created revision, a rollback sends all the
//! traffic back to the revision it names, which keeps running.
//!
//! The routing is read back from `status.traffic`, what Knative made of
//! the spec, as Flagger reads it; the primary's share is that of the entry
//! naming the primary revision that is not the `latestRevision` entry, so
//! that after a promotion (when both name the same revision) the primary's
//! 100 is read, not the latest entry's 0. Between the promotion and the
//! next traffic write, the annotation names the latest revision while the
//! traffic still names the revision promoted before: that entry is read as
//! the primary's share. While Knative has not caught
//! up with the spec (`status.observedGeneration` behind), the spec's
//! traffic is what it is about to do and is read instead.

use std::sync::Mutex;

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::Router;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::knative::{KnativeServices, finalize_patch, primary_revision, resource};
use crate::cluster::managed::Removal;
use canary_core::engine::schedule::Routing;
use canary_core::spec::resolve::ResolvedCanary;

/// The annotation naming the primary revision (Flagger's).
pub(crate) const PRIMARY_REVISION: &str = "flagger.app/primary-revision";

/// The `spec.traffic` Flagger writes for `routing`: the latest revision
/// first, then the primary revision. Only weights can be written.
pub(crate) fn traffic_for(
    primary_revision: &str,
    routing: &Routing,
) -> std::result::Result<Value, &'static str> {
    let (primary, canary) = match routing {
        Routing::Matched { .. } => {
            return Err(
                "route requests by match (A/B testing): a Knative Service only splits traffic \
                 between revisions by percent",
            );
        }
        Routing::Mirrored { .. } => {
            return Err("mirror traffic: a Knative Service only splits traffic by percent");
        }
        other => other.weights().unwrap_or((100, 0)),
    };
    Ok(json!([
        {"latestRevision": true, "percent": canary},
        {"revisionName": primary_revision, "percent": primary},
    ]))
}

/// The routing a Knative Service's `status` carries, given the primary
/// revision; `None` when its traffic lacks either entry or a percent.
pub(crate) fn routing_of(primary_revision: &str, status: &Value) -> Option<Routing> {
    let traffic = status["traffic"].as_array()?;
    let latest = |t: &&Value| t["latestRevision"].as_bool() == Some(true);
    let canary = traffic.iter().find(latest)?["percent"].as_u64()?;
    // The entry of the primary revision; right after a promotion the
    // annotation names the new revision while the traffic still names the
    // one promoted before, the only other entry.
    let others: Vec<&Value> = traffic
        .iter()
        .filter(|t| !latest(t) && t["revisionName"].is_string())
        .collect();
    let primary_entry = match others
        .iter()
        .find(|t| t["revisionName"] == primary_revision)
    {
        Some(t) => *t,
        None if others.len() == 1 => others[0],
        None => return None,
    };
    let primary = primary_entry["percent"].as_u64()?;
    if primary + canary != 100 {
        return None;
    }
    Some(Routing::weighted(canary.min(100) as u32))
}

/// The routing a Knative Service carries: its status's when Knative has
/// caught up with its spec and the status has Flagger's shape, else its
/// spec's; `None` when neither has.
pub(crate) fn routing_of_service(service: &Value) -> Option<Routing> {
    let primary = primary_revision(service)?;
    let generation = service["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = service["status"]["observedGeneration"]
        .as_i64()
        .unwrap_or(0);
    let from_status = (observed >= generation)
        .then(|| routing_of(primary, &service["status"]))
        .flatten();
    from_status.or_else(|| routing_of(primary, &service["spec"]))
}

/// Knative: the traffic of the Knative Service the canary targets.
pub(crate) struct KnativeRouter {
    client: kube::Client,
    /// The resourceVersion of this router's last write, which the state
    /// written on the same Knative Service is guarded on next.
    written: Mutex<Option<String>>,
}

impl KnativeRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        KnativeRouter {
            client,
            written: Mutex::new(None),
        }
    }

    fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &resource("Service"))
    }

    /// The resourceVersion of the last write since the last call.
    pub(crate) fn take_written(&self) -> Option<String> {
        self.written.lock().map(|mut w| w.take()).unwrap_or(None)
    }

    async fn read(&self, c: &ResolvedCanary) -> Result<Option<Value>> {
        KnativeServices::new(&self.client, &c.namespace)
            .get(&c.target.name)
            .await
    }

    async fn patch(&self, c: &ResolvedCanary, patch: &Value) -> Result<()> {
        let name = &c.target.name;
        let patched = self
            .api(&c.namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| ClusterError::api("update", KnativeServices::object(name), e))?;
        if let Ok(mut w) = self.written.lock() {
            *w = patched.metadata.resource_version;
        }
        Ok(())
    }
}

impl Router for KnativeRouter {
    /// The Knative Service is initialised with the target (the annotation
    /// and the traffic at 100/0); there is nothing else to make.
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        match self.read(c).await? {
            Some(_) => Ok(()),
            None => Err(ClusterError::NotFound {
                object: KnativeServices::object(&c.target.name),
            }),
        }
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let Some(service) = self.read(c).await? else {
            return Ok(None);
        };
        if primary_revision(&service).is_none() {
            return Ok(None);
        }
        routing_of_service(&service).map(Some).ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{} has no traffic split between its latest revision and the revision \
                 its annotation {PRIMARY_REVISION} names; run `canary revert` and start again",
                KnativeServices::object(&c.target.name)
            ))
        })
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let object = KnativeServices::object(&c.target.name);
        let service = self.read(c).await?.ok_or_else(|| ClusterError::NotFound {
            object: object.clone(),
        })?;
        let primary = primary_revision(&service).ok_or_else(|| {
            ClusterError::Invalid(format!("{object} has no annotation {PRIMARY_REVISION}"))
        })?;
        let traffic = traffic_for(primary, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        self.patch(c, &json!({"spec": {"traffic": traffic}})).await
    }

    /// Removes the annotation and the traffic split: Knative routes to the
    /// latest ready revision again.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        let what = format!(
            "{} annotation {PRIMARY_REVISION} and spec.traffic",
            KnativeServices::object(&c.target.name)
        );
        let removal = match self.read(c).await? {
            Some(s) if primary_revision(&s).is_some() => {
                self.patch(c, &finalize_patch()).await?;
                Removal::Deleted
            }
            _ => Removal::Absent,
        };
        Ok(vec![(what, removal)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_written_as_flagger_writes_them() {
        assert_eq!(
            traffic_for("podinfo-00001", &Routing::weighted(30)).unwrap(),
            json!([
                {"latestRevision": true, "percent": 30},
                {"revisionName": "podinfo-00001", "percent": 70},
            ])
        );
        assert_eq!(
            traffic_for("podinfo-00002", &Routing::all_primary()).unwrap(),
            json!([
                {"latestRevision": true, "percent": 0},
                {"revisionName": "podinfo-00002", "percent": 100},
            ])
        );
    }

    #[test]
    fn the_routing_is_read_from_the_status() {
        let status = json!({"traffic": [
            {"revisionName": "podinfo-00002", "latestRevision": true, "percent": 40},
            {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 60},
        ]});
        assert_eq!(
            routing_of("podinfo-00001", &status),
            Some(Routing::weighted(40))
        );
        // After a promotion both entries name the promoted revision.
        let promoted = json!({"traffic": [
            {"revisionName": "podinfo-00002", "latestRevision": true, "percent": 0},
            {"revisionName": "podinfo-00002", "latestRevision": false, "percent": 100},
        ]});
        assert_eq!(
            routing_of("podinfo-00002", &promoted),
            Some(Routing::all_primary())
        );
        // Traffic set by someone else: no routing of Flagger's shape.
        let other = json!({"traffic": [
            {"revisionName": "podinfo-00001", "latestRevision": true, "percent": 100},
        ]});
        assert_eq!(routing_of("podinfo-00001", &other), None);
        // Just promoted: the annotation names podinfo-00002, the traffic
        // still splits between it as the latest and podinfo-00001.
        let just_promoted = json!({"traffic": [
            {"revisionName": "podinfo-00002", "latestRevision": true, "percent": 80},
            {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 20},
        ]});
        assert_eq!(
            routing_of("podinfo-00002", &just_promoted),
            Some(Routing::weighted(80))
        );
    }

    #[test]
    fn the_spec_is_read_while_knative_catches_up() {
        let service = |observed: i64| {
            json!({
                "metadata": {"generation": 3, "annotations": {PRIMARY_REVISION: "podinfo-00001"}},
                "spec": {"traffic": [
                    {"latestRevision": true, "percent": 20},
                    {"revisionName": "podinfo-00001", "percent": 80},
                ]},
                "status": {"observedGeneration": observed, "traffic": [
                    {"revisionName": "podinfo-00002", "latestRevision": true, "percent": 10},
                    {"revisionName": "podinfo-00001", "latestRevision": false, "percent": 90},
                ]},
            })
        };
        assert_eq!(routing_of_service(&service(3)), Some(Routing::weighted(10)));
        assert_eq!(routing_of_service(&service(2)), Some(Routing::weighted(20)));
        // Knative caught up, but the status has not Flagger's shape yet
        // (a revision not ready): the spec is read.
        let mut s = service(3);
        s["status"]["traffic"] =
            json!([{"revisionName": "podinfo-00001", "latestRevision": true, "percent": 100}]);
        assert_eq!(routing_of_service(&s), Some(Routing::weighted(20)));
    }
}
