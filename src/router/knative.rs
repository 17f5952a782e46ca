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
//! 100 is read, not the latest entry's 0.

use serde_json::{Value, json};

use canary_core::engine::schedule::Routing;

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
    let primary = traffic
        .iter()
        .find(|t| !latest(t) && t["revisionName"] == primary_revision)?["percent"]
        .as_u64()?;
    if primary + canary != 100 {
        return None;
    }
    Some(Routing::weighted(canary.min(100) as u32))
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
    }
}
