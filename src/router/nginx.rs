//! NGINX (ingress-nginx canary annotations), as Flagger drives it: the
//! user's Ingress (`spec.ingressRef`) is copied to `<ingress>-canary`, whose
//! paths to the apex Service go to `<service>-canary` instead, and the
//! copy's `nginx.ingress.kubernetes.io/canary*` annotations decide which
//! requests ingress-nginx sends there: a `canary-weight` percentage, or for
//! A/B testing a `canary-by-header` (with `-value` or `-pattern`) and a
//! `canary-by-cookie`. At rest the copy carries `canary: "false"` and no
//! other canary annotation.
//!
//! The user's Ingress is never changed: it sends its traffic to the apex
//! Service, which selects the primary's pods once the canary is
//! initialised. An NGINX canary Ingress cannot mirror traffic, so a
//! mirrored routing is refused.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::Router;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::managed::{self, MANAGED_BY, Removal};
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;

/// ingress-nginx's annotation prefix (Flagger's default
/// `-ingress-annotations-prefix`).
const PREFIX: &str = "nginx.ingress.kubernetes.io";

fn key(suffix: &str) -> String {
    format!("{PREFIX}/{suffix}")
}

pub(crate) struct NginxRouter {
    client: kube::Client,
}

impl NginxRouter {
    pub(crate) fn new(client: kube::Client) -> Self {
        NginxRouter { client }
    }

    fn api(&self, ns: &str) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), ns)
    }
}

/// The user's Ingress named by `spec.ingressRef` (for the Ingress
/// routers: NGINX and Skipper).
pub(crate) fn ingress_name(c: &ResolvedCanary) -> Result<&str> {
    c.ingress.as_deref().ok_or_else(|| {
        ClusterError::Invalid(format!(
            "canary {}.{} has no spec.ingressRef, which the {} provider needs",
            c.name,
            c.namespace,
            c.provider.map_or("nginx", |p| p.name())
        ))
    })
}

/// The user's Ingress `name`, which must exist, and how messages name it.
pub(crate) async fn user_ingress(
    api: &Api<Ingress>,
    c: &ResolvedCanary,
    name: &str,
) -> Result<(Ingress, String)> {
    let user_object = format!("ingress/{name} in {}", c.namespace);
    let user = api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::api("read", &user_object, e))?
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{user_object} (spec.ingressRef) does not exist; create it first"
            ))
        })?;
    Ok((user, user_object))
}

/// How messages name the canary copy of the user's Ingress `ingress`.
pub(crate) fn canary_object(c: &ResolvedCanary, ingress: &str) -> String {
    format!("ingress/{} in {}", names::canary(ingress), c.namespace)
}

/// Deletes the canary copy of the user's Ingress if `canary` made it (the
/// Ingress routers' revert); the user's Ingress is left as it is.
pub(crate) async fn delete_canary_ingress(
    api: &Api<Ingress>,
    c: &ResolvedCanary,
) -> Result<Vec<(String, Removal)>> {
    let name = ingress_name(c)?;
    let canary_name = names::canary(name);
    let removal = managed::delete(api, &canary_name, &canary_object(c, name)).await?;
    Ok(vec![(format!("ingress/{canary_name}"), removal)])
}

/// The user's Ingress spec with its paths to the apex Service sent to the
/// canary Service (the first such path of each rule, as Flagger does);
/// `None` when no path goes to the apex Service.
pub(crate) fn canary_spec(c: &ResolvedCanary, ingress_spec: &Value) -> Option<Value> {
    let mut spec = ingress_spec.clone();
    let mut found = false;
    for rule in spec["rules"].as_array_mut().into_iter().flatten() {
        for path in rule["http"]["paths"].as_array_mut().into_iter().flatten() {
            if path["backend"]["service"]["name"] == c.service.as_str() {
                path["backend"]["service"]["name"] = json!(names::canary(&c.service));
                found = true;
                break;
            }
        }
    }
    found.then_some(spec)
}

/// Annotations without any canary annotation (nor kubectl's record of the
/// last applied configuration), switched off: the canary Ingress at rest.
fn at_rest(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(k, _)| {
            !k.contains(&key("canary")) && !k.contains("kubectl.kubernetes.io/last-applied")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(key("canary"), "false".to_string());
    out
}

/// The canary Ingress's annotations for `routing`, from its current ones.
pub(crate) fn annotations_for(
    current: &BTreeMap<String, String>,
    routing: &Routing,
) -> std::result::Result<BTreeMap<String, String>, &'static str> {
    match routing {
        Routing::Mirrored { .. } => {
            Err("mirror traffic: an NGINX canary Ingress only splits or matches requests")
        }
        Routing::Matched { matches } => {
            let mut out = at_rest(current);
            let (mut header, mut value, mut pattern, mut cookie) =
                (None, None, None, None::<String>);
            for m in matches {
                for (name, sm) in &m.headers {
                    if name == "cookie" {
                        cookie = sm.exact.clone().or(cookie);
                    } else {
                        header = Some(name.clone());
                        value = sm.exact.clone();
                        pattern = sm.regex.clone();
                    }
                }
            }
            if header.is_none() && cookie.is_none() {
                return Err("route requests by a match with no header or cookie");
            }
            out.insert(key("canary"), "true".to_string());
            for (k, v) in [
                ("canary-by-cookie", cookie),
                ("canary-by-header", header),
                ("canary-by-header-value", value),
                ("canary-by-header-pattern", pattern),
            ] {
                if let Some(v) = v {
                    out.insert(key(k), v);
                }
            }
            Ok(out)
        }
        other => {
            let (_, canary) = other.weights().unwrap_or((100, 0));
            if canary == 0 {
                return Ok(at_rest(current));
            }
            let mut out = current.clone();
            out.insert(key("canary-weight"), canary.to_string());
            out.insert(key("canary"), "true".to_string());
            Ok(out)
        }
    }
}

/// The routing a canary Ingress's annotations carry, read as Flagger reads
/// them: a header or cookie annotation on an A/B canary is A/B testing,
/// else the weight (none is 0).
fn routing_of(c: &ResolvedCanary, annotations: &BTreeMap<String, String>) -> Option<Routing> {
    if !c.matches.is_empty()
        && (annotations.contains_key(&key("canary-by-cookie"))
            || annotations.contains_key(&key("canary-by-header")))
    {
        return Some(Routing::Matched {
            matches: c.matches.clone(),
        });
    }
    let weight = match annotations.get(&key("canary-weight")) {
        Some(w) => w.trim().parse::<u32>().ok()?,
        None => 0,
    };
    Some(Routing::weighted(weight))
}

impl Router for NginxRouter {
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
                        annotations: Some(at_rest(
                            &user.metadata.annotations.clone().unwrap_or_default(),
                        )),
                        ..ObjectMeta::default()
                    },
                    spec: serde_json::from_value(spec).map_err(|e| {
                        ClusterError::Invalid(format!("{user_object} has an invalid spec: {e}"))
                    })?,
                    status: None,
                };
                api.create(&PostParams::default(), &ing)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
            }
            // The user's Ingress changed: the copy follows, as in Flagger.
            Some(existing) => {
                let live = serde_json::to_value(&existing.spec).unwrap_or(Value::Null);
                if live != spec {
                    api.patch(
                        &canary_name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({ "spec": spec })),
                    )
                    .await
                    .map_err(|e| ClusterError::api("update", &object, e))?;
                }
            }
        }
        Ok(())
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        let name = ingress_name(c)?;
        let object = canary_object(c, name);
        let Some(ing) = self
            .api(&c.namespace)
            .get_opt(&names::canary(name))
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(None);
        };
        let annotations = ing.metadata.annotations.unwrap_or_default();
        routing_of(c, &annotations).map(Some).ok_or_else(|| {
            ClusterError::Invalid(format!(
                "{object} has a {} annotation that is not a whole number",
                key("canary-weight")
            ))
        })
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        let name = ingress_name(c)?;
        let object = canary_object(c, name);
        let api = self.api(&c.namespace);
        let canary_name = names::canary(name);
        let ing = api
            .get(&canary_name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?;
        let current = ing.metadata.annotations.clone().unwrap_or_default();
        let desired = annotations_for(&current, routing)
            .map_err(|why| ClusterError::Refused(format!("{object} cannot {why}")))?;
        // A merge patch removes an annotation set to null.
        let mut patch = serde_json::Map::new();
        for k in current.keys().filter(|k| !desired.contains_key(*k)) {
            patch.insert(k.clone(), Value::Null);
        }
        for (k, v) in &desired {
            patch.insert(k.clone(), json!(v));
        }
        let body = json!({"metadata": {
            "annotations": patch,
            "resourceVersion": ing.metadata.resource_version,
        }});
        api.patch(&canary_name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| ClusterError::api("update", &object, e))?;
        Ok(())
    }

    /// Deletes the canary Ingress `canary` created; the user's Ingress is
    /// left as it is.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        delete_canary_ingress(&self.api(&c.namespace), c).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(analysis: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  provider: nginx
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  ingressRef: {{apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}}
  service:
    port: 80
    targetPort: 9898
  analysis:
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

    /// The canary Ingress for the user's Ingress of the fixture, after
    /// `routing`, built the way `reconcile` and `set_routing` build it.
    fn canary_ingress(c: &ResolvedCanary, routing: &Routing) -> Value {
        let user = fixture("ingress.yaml");
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(user["metadata"]["annotations"].clone()).unwrap();
        let created = at_rest(&annotations);
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(user["metadata"]["labels"].clone()).unwrap();
        labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
        json!({
            "metadata": {
                "name": names::canary(user["metadata"]["name"].as_str().unwrap()),
                "labels": labels,
                "annotations": annotations_for(&created, routing).unwrap(),
            },
            "spec": canary_spec(c, &user["spec"]).unwrap(),
        })
    }

    #[test]
    fn the_weighted_canary_ingress_is_the_one_flagger_writes() {
        let c = canary("    stepWeight: 10\n");
        let mut want = fixture("ingress-canary-weighted.yaml");
        want["metadata"]["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
        assert_eq!(canary_ingress(&c, &Routing::weighted(10)), want);
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(want["metadata"]["annotations"].clone()).unwrap();
        assert_eq!(routing_of(&c, &annotations), Some(Routing::weighted(10)));
    }

    #[test]
    fn the_ab_canary_ingress_routes_by_header_and_cookie() {
        let c = canary(
            "    iterations: 10
    match:
      - headers:
          x-canary:
            regex: \".*insider.*\"
      - headers:
          cookie:
            exact: canary
",
        );
        let routing = Routing::Matched {
            matches: c.matches.clone(),
        };
        let mut want = fixture("ingress-canary-ab.yaml");
        want["metadata"]["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
        assert_eq!(canary_ingress(&c, &routing), want);
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(want["metadata"]["annotations"].clone()).unwrap();
        assert_eq!(routing_of(&c, &annotations), Some(routing));
    }

    #[test]
    fn promotion_switches_the_canary_ingress_off() {
        let c = canary("    stepWeight: 10\n");
        let on = annotations_for(&at_rest(&BTreeMap::new()), &Routing::weighted(50)).unwrap();
        let off = annotations_for(&on, &Routing::all_primary()).unwrap();
        assert_eq!(off, BTreeMap::from([(key("canary"), "false".to_string())]));
        assert_eq!(routing_of(&c, &off), Some(Routing::all_primary()));
        assert!(
            annotations_for(
                &on,
                &Routing::Mirrored {
                    mirror_weight: None
                }
            )
            .is_err()
        );
    }
}
