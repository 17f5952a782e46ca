//! Skipper (Zalando's ingress, `zalando.org/*` annotations), as Flagger
//! drives it: the user's Ingress (`spec.ingressRef`) is copied to
//! `<ingress>-canary`, in which every path to the apex Service goes to
//! `<service>-primary` instead and is followed by a copy of it to
//! `<service>-canary`. The copy's `zalando.org/backend-weights` annotation
//! (a JSON object of Service name to weight, which Skipper reads as
//! ratios) splits each such pair of paths.
//!
//! Both Ingresses serve the same host and paths, so the copy's
//! `zalando.org/skipper-predicate` starts with `Weight(100)`, which makes
//! Skipper prefer its routes over the user's. Once the canary's weight is
//! back to 0 the predicate starts with `False()` instead, which switches
//! the copy's routes off and leaves the traffic to the user's Ingress,
//! whose apex Service selects the primary's pods. The user's own
//! predicates are kept after the first one.
//!
//! The user's Ingress is never changed. When its spec changes, the copy
//! follows at 100/0, as Flagger's `Reconcile` rewrites it. The copy only
//! splits by weight: routing matching requests (A/B testing) or mirroring
//! is refused rather than written as weights.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::Router;
use super::nginx::{canary_object, ingress_name, user_ingress};
use crate::cluster::cache::Watched;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{MANAGED_BY, Removal};
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

/// The annotation carrying the split.
pub(crate) const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
/// The annotation carrying the routes' extra predicates.
pub(crate) const PREDICATE: &str = "zalando.org/skipper-predicate";
/// Makes the copy's routes win over the user's Ingress's.
const PREFER: &str = "Weight(100)";
/// Switches the copy's routes off.
const DISABLE: &str = "False()";

pub(crate) struct SkipperRouter {
    client: kube::Client,
    /// The canary Ingress, watched while a driver drives.
    watched: std::sync::OnceLock<Watched<Ingress>>,
}

impl SkipperRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        SkipperRouter {
            client,
            watched: std::sync::OnceLock::new(),
        }
    }

    fn api(&self, ns: &str) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn saw(&self, written: &Ingress) {
        if let Some(w) = self.watched.get() {
            w.saw(written.metadata.resource_version.as_deref());
        }
    }
}

/// The user's Ingress spec with each path to the apex Service sent to the
/// primary and followed by the same path to the canary Service; `None`
/// when no path goes to the apex Service.
pub(crate) fn canary_spec(c: &ResolvedCanary, ingress_spec: &Value) -> Option<Value> {
    let mut spec = ingress_spec.clone();
    let mut found = false;
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        let Some(paths) = rule["http"]["paths"].as_array_mut() else {
            continue;
        };
        let mut out = Vec::with_capacity(paths.len() + 1);
        let mut canaries = Vec::new();
        for path in paths.drain(..) {
            if path["backend"]["service"]["name"] == c.service.as_str() {
                let mut primary = path.clone();
                primary["backend"]["service"]["name"] = json!(names::primary(&c.service));
                let mut canary = path;
                canary["backend"]["service"]["name"] = json!(names::canary(&c.service));
                out.push(primary);
                canaries.push(canary);
                found = true;
            } else {
                out.push(path);
            }
        }
        // Flagger appends the canary paths after the rule's own.
        out.extend(canaries);
        *paths = out;
    }
    found.then_some(spec)
}

/// `insert` first, then the predicates of `raw` (split at `&&`) without
/// the empty ones and without either of the two the router writes.
pub(crate) fn insert_predicate(raw: &str, insert: &str) -> String {
    std::iter::once(insert)
        .chain(
            raw.split("&&")
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != PREFER && *p != DISABLE),
        )
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The canary Ingress's annotations for `(primary, canary)` weights, from
/// its current ones: the weights, `Weight(100)` first among the
/// predicates, or `False()` when the canary has no share.
pub(crate) fn annotations_for(
    c: &ResolvedCanary,
    current: &BTreeMap<String, String>,
    (primary, canary): (u32, u32),
) -> BTreeMap<String, String> {
    let mut out = current.clone();
    // Go's encoding/json writes a map's keys sorted, without spaces.
    let weights = BTreeMap::from([
        (names::primary(&c.service), primary),
        (names::canary(&c.service), canary),
    ]);
    out.insert(
        BACKEND_WEIGHTS.to_string(),
        serde_json::to_string(&weights).expect("a map of numbers serialises"),
    );
    let raw = current.get(PREDICATE).map_or("", String::as_str);
    let mut predicate = insert_predicate(raw, PREFER);
    if canary == 0 {
        predicate = insert_predicate(&predicate, DISABLE);
    }
    out.insert(PREDICATE.to_string(), predicate);
    out
}

/// The annotations the canary Ingress is created with: the user's (without
/// kubectl's record of the last applied configuration) at 100/0, its
/// routes preferred, as Flagger's `Reconcile` writes them.
fn created_annotations(
    c: &ResolvedCanary,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let user: BTreeMap<String, String> = user
        .iter()
        .filter(|(k, _)| !k.contains("kubectl.kubernetes.io/last-applied"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = annotations_for(c, &user, (100, 0));
    // Not switched off yet: the copy's routes send everything to the
    // primary until the first step.
    let raw = user.get(PREDICATE).map_or("", String::as_str);
    out.insert(PREDICATE.to_string(), insert_predicate(raw, PREFER));
    out
}

/// The routing the backend weights carry, read as Flagger reads them: both
/// Services must be there; `Err` says what is wrong.
fn routing_of(
    c: &ResolvedCanary,
    annotations: &BTreeMap<String, String>,
) -> std::result::Result<Routing, String> {
    let raw = annotations
        .get(BACKEND_WEIGHTS)
        .ok_or_else(|| format!("no {BACKEND_WEIGHTS} annotation"))?;
    let weights: BTreeMap<String, Value> = serde_json::from_str(raw)
        .map_err(|e| format!("a {BACKEND_WEIGHTS} annotation that is not a JSON object: {e}"))?;
    let weight = |name: String| {
        weights
            .get(&name)
            .and_then(Value::as_u64)
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| format!("no whole-number weight for {name} in {BACKEND_WEIGHTS}"))
    };
    Ok(Routing::Weighted {
        primary: weight(names::primary(&c.service))?,
        canary: weight(names::canary(&c.service))?,
    })
}

impl Router for SkipperRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        let name = ingress_name(c)?;
        let api = self.api(&c.namespace);
        let (user, user_object) = user_ingress(&api, c, name).await?;
        let user_spec = serde_json::to_value(&user.spec).unwrap_or(Value::Null);
        let spec = canary_spec(c, &user_spec).ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{user_object} has no path to the apex Service {}; point it at {} so canary \
                 can route its traffic",
                c.service, c.service
            ))
        })?;
        let typed_spec = serde_json::from_value(spec.clone()).map_err(|e| {
            ClusterError::Invalid(format!("{user_object} has an invalid spec: {e}"))
        })?;
        let annotations =
            created_annotations(c, &user.metadata.annotations.clone().unwrap_or_default());
        let canary_name = names::canary(name);
        let object = canary_object(c, name);
        match api
            .get_opt(&canary_name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        {
            None => {
                let mut labels: BTreeMap<String, String> =
                    user.metadata.labels.clone().unwrap_or_default();
                labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
                let ing = Ingress {
                    metadata: ObjectMeta {
                        name: Some(canary_name),
                        namespace: Some(c.namespace.clone()),
                        labels: Some(labels),
                        annotations: Some(annotations),
                        ..ObjectMeta::default()
                    },
                    spec: typed_spec,
                    status: None,
                };
                let created = api
                    .create(&PostParams::default(), &ing)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
                self.saw(&created);
            }
            // The user's Ingress changed: the copy follows, back at 100/0,
            // with the user's annotations, as in Flagger.
            Some(existing) => {
                let live = serde_json::to_value(&existing.spec).unwrap_or(Value::Null);
                if live != spec {
                    let current = existing.metadata.annotations.clone().unwrap_or_default();
                    let mut patch = serde_json::Map::new();
                    for k in current.keys().filter(|k| !annotations.contains_key(*k)) {
                        patch.insert(k.clone(), Value::Null);
                    }
                    for (k, v) in &annotations {
                        patch.insert(k.clone(), json!(v));
                    }
                    let body = json!({
                        "metadata": {
                            "annotations": patch,
                            "resourceVersion": existing.metadata.resource_version,
                        },
                        "spec": spec,
                    });
                    let patched = api
                        .patch(&canary_name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                        .map_err(|e| ClusterError::api("update", &object, e))?;
                    self.saw(&patched);
                }
            }
        }
        Ok(())
    }

    fn watch(&self, c: &ResolvedCanary) {
        let Ok(name) = ingress_name(c) else { return };
        self.watched
            .get_or_init(|| Watched::start(&self.api(&c.namespace), &names::canary(name)));
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let name = ingress_name(c)?;
        let object = canary_object(c, name);
        let Some(ing) = crate::cluster::cache::get_opt(
            self.watched.get(),
            &self.api(&c.namespace),
            &names::canary(name),
        )
        .await
        .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(None);
        };
        let annotations = ing.metadata.annotations.unwrap_or_default();
        routing_of(c, &annotations).map(Some).map_err(|why| {
            ClusterError::Invalid(format!(
                "{object} has {why}; delete it so canary recreates it"
            ))
        })
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let name = ingress_name(c)?;
        let object = canary_object(c, name);
        let weights = routing.weights().ok_or_else(|| {
            ClusterError::Refused(format!(
                "{object} cannot {}: a Skipper canary Ingress only splits traffic by weight",
                match routing {
                    Routing::Mirrored { .. } => "mirror traffic",
                    _ => "route requests by match (A/B testing)",
                }
            ))
        })?;
        let api = self.api(&c.namespace);
        let canary_name = names::canary(name);
        let ing = crate::cluster::cache::get_opt(self.watched.get(), &api, &canary_name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
            .ok_or_else(|| ClusterError::Invalid(format!("{object} does not exist")))?;
        let current = ing.metadata.annotations.clone().unwrap_or_default();
        let desired = annotations_for(c, &current, weights);
        let body = json!({"metadata": {
            "annotations": desired,
            "resourceVersion": ing.metadata.resource_version,
        }});
        let patched = api
            .patch(&canary_name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| ClusterError::api("update", &object, e))?;
        self.saw(&patched);
        Ok(())
    }

    /// Deletes the canary Ingress `canary` created; the user's Ingress is
    /// left as it is.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        super::nginx::delete_canary_ingress(&self.api(&c.namespace), c).await
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
  provider: skipper
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}
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

    /// `skipper_test.go`'s `Test_insertPredicate` cases.
    #[test]
    fn predicates_are_inserted_first_as_flagger_does() {
        let host = r#"Host(/^my-host-header\.example\.org$/) && Method("GET") && Path("/hello")"#;
        for (raw, insert, want) in [
            (host.to_string(), PREFER, format!("Weight(100) && {host}")),
            (String::new(), PREFER, "Weight(100)".to_string()),
            (
                format!("Weight(100) && {host}"),
                PREFER,
                format!("Weight(100) && {host}"),
            ),
            (
                r#"Host(/^my-host-header\.example\.org$/) && Method("GET") && Path("/hello")&&False()"#
                    .to_string(),
                DISABLE,
                format!("False() && {host}"),
            ),
            (
                r#"Host(/^my-host-header\.example\.org$/) &&  False() && Method("GET") && Path("/hello")"#
                    .to_string(),
                PREFER,
                format!("Weight(100) && {host}"),
            ),
        ] {
            assert_eq!(insert_predicate(&raw, insert), want, "{raw}");
        }
    }

    #[test]
    fn the_canary_ingress_is_the_one_flagger_writes() {
        let c = canary();
        let user = json!({
            "ingressClassName": "skipper",
            "rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/other", "pathType": "Prefix",
                 "backend": {"service": {"name": "other", "port": {"number": 80}}}},
            ]}}],
        });
        let spec = canary_spec(&c, &user).unwrap();
        let paths = &spec["rules"][0]["http"]["paths"];
        let backends: Vec<&str> = paths
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["backend"]["service"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(backends, ["podinfo-primary", "other", "podinfo-canary"]);
        assert_eq!(
            paths[2]["backend"]["service"]["port"],
            json!({"number": 80})
        );
        assert_eq!(spec["ingressClassName"], "skipper");
        assert!(canary_spec(&c, &json!({"rules": [{"http": {"paths": []}}]})).is_none());

        let user_annotations = BTreeMap::from([(PREDICATE.to_string(), "Method(\"GET\")".into())]);
        let created = created_annotations(&c, &user_annotations);
        assert_eq!(
            created[BACKEND_WEIGHTS],
            r#"{"podinfo-canary":0,"podinfo-primary":100}"#
        );
        assert_eq!(created[PREDICATE], "Weight(100) && Method(\"GET\")");
        assert_eq!(routing_of(&c, &created), Ok(Routing::all_primary()));

        // `Test_GetSetRoutes`: each step reads back as written.
        let mut current = created;
        for (primary, canary) in [(100, 0), (90, 10), (80, 20), (15, 85), (0, 100)] {
            current = annotations_for(&c, &current, (primary, canary));
            assert_eq!(
                routing_of(&c, &current),
                Ok(Routing::Weighted { primary, canary })
            );
            let first = if canary == 0 { DISABLE } else { PREFER };
            assert_eq!(current[PREDICATE], format!("{first} && Method(\"GET\")"));
        }
        assert_eq!(
            current[BACKEND_WEIGHTS],
            r#"{"podinfo-canary":100,"podinfo-primary":0}"#
        );
        let broken = BTreeMap::from([(BACKEND_WEIGHTS.to_string(), r#"{"x":1}"#.into())]);
        assert!(routing_of(&c, &broken).is_err());
        assert!(routing_of(&c, &BTreeMap::new()).is_err());
    }
}
