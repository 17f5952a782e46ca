//! Knative Serving's controller, for `serving.knative.dev/v1` Services.
//!
//! Each template a Service is given becomes a Revision, named
//! `<service>-00001`, `-00002` … (or as `spec.template.metadata.name`
//! says), labelled with its Service, configuration and configuration
//! generation, and owned by the Service. A Revision runs as a Deployment
//! `<revision>-deployment` whose pods carry `serving.knative.dev/revision`,
//! behind a Service `<revision>` on port [`REVISION_PORT`]; it is Ready once
//! a pod of its Deployment is.
//!
//! The Service's status follows: `latestCreatedRevisionName` (the newest
//! Revision), `latestReadyRevisionName` (the newest Ready one), and
//! `traffic`, which is `spec.traffic` with every `latestRevision: true`
//! entry resolved to the latest ready Revision (a Service without
//! `spec.traffic` sends all to it). A `spec.traffic` naming a Revision that
//! does not exist, or not yet Ready, leaves the routing as it was, with the
//! Service not Ready, as Knative does. The traffic model routes the
//! Service's hosts by `status.traffic` (see `traffic/edge.rs`).
//!
//! Knative's webhook refuses a `spec.traffic` whose percents do not add up
//! to 100 or that names neither a revision nor the latest one
//! ([`validate_traffic`]).

use serde_json::{Value, json};

use crate::store::{ApiError, Store, Subresource, WriteOptions, now_rfc3339};

/// The port the Service of every Revision listens on.
pub(crate) const REVISION_PORT: u16 = 80;

const SERVING: &str = "serving.knative.dev/v1";
const SERVICE_LABEL: &str = "serving.knative.dev/service";
const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
const GENERATION_LABEL: &str = "serving.knative.dev/configurationGeneration";
const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// The template a Revision was made from (its hash), to tell a new
/// template from one already turned into a Revision.
const TEMPLATE_HASH: &str = "serving.knative.dev/template-hash";
/// The container port a Revision's pods serve on when none is named.
const DEFAULT_CONTAINER_PORT: u16 = 8080;

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: Some("controller".to_string()),
        ..WriteOptions::default()
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Brings every Knative Service's Revisions, their Deployments and
/// Services, and its status up to date. Errors (a conflict with another
/// writer) are left for the next pass.
pub(crate) fn sync(store: &Store) {
    if store.kind(SERVING, "Service").is_err() {
        return;
    }
    for ksvc in store.list(SERVING, "Service", None) {
        let _ = sync_service(store, &ksvc);
    }
}

/// Whether a change to an object of `group`/`kind` can change what
/// [`sync`] does: a Knative Service or Revision, or a Revision's
/// Deployment.
pub(crate) fn concerns(group: &str, kind: &str, object: &Value) -> bool {
    match (group, kind) {
        ("serving.knative.dev", _) => true,
        ("apps", "Deployment") => {
            !s(object, &format!("/metadata/labels/{}", esc(REVISION_LABEL))).is_empty()
        }
        _ => false,
    }
}

/// A label key as a JSON pointer segment.
fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn revisions_of(store: &Store, ns: &str, service: &str) -> Vec<Value> {
    let mut revs: Vec<Value> = store
        .list(SERVING, "Revision", Some(ns))
        .into_iter()
        .filter(|r| s(r, &format!("/metadata/labels/{}", esc(SERVICE_LABEL))) == service)
        .collect();
    revs.sort_by_key(generation_of);
    revs
}

fn generation_of(r: &Value) -> u64 {
    s(r, &format!("/metadata/labels/{}", esc(GENERATION_LABEL)))
        .parse()
        .unwrap_or(0)
}

fn is_ready(r: &Value) -> bool {
    r["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn sync_service(store: &Store, ksvc: &Value) -> Result<(), ApiError> {
    let ns = s(ksvc, "/metadata/namespace").to_string();
    let name = s(ksvc, "/metadata/name").to_string();
    let template = ksvc["spec"]["template"].clone();
    let hash = crate::controller::template_hash(&template);
    let mut revs = revisions_of(store, &ns, &name);
    let latest_hash = revs
        .last()
        .map(|r| s(r, &format!("/metadata/annotations/{}", esc(TEMPLATE_HASH))).to_string());
    if latest_hash.as_deref() != Some(hash.as_str()) {
        let n = revs.last().map_or(0, generation_of) + 1;
        let rev_name = match s(&template, "/metadata/name") {
            "" => format!("{name}-{n:05}"),
            given => given.to_string(),
        };
        let mut labels = template["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert(SERVICE_LABEL.into(), json!(name));
        labels.insert(CONFIGURATION_LABEL.into(), json!(name));
        labels.insert(GENERATION_LABEL.into(), json!(n.to_string()));
        let mut annotations = template["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        annotations.insert(TEMPLATE_HASH.into(), json!(hash));
        let rev = json!({
            "apiVersion": SERVING,
            "kind": "Revision",
            "metadata": {
                "name": rev_name,
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner(ksvc, "Service")],
            },
            "spec": template["spec"].clone(),
        });
        let k = store.kind(SERVING, "Revision")?;
        let created = store.create_in(k, &ns, rev, &opts())?;
        revs.push(created.object);
    }
    for r in &mut revs {
        sync_revision(store, &ns, r)?;
    }
    write_status(store, ksvc, &revs)
}

fn owner(o: &Value, kind: &str) -> Value {
    json!({
        "apiVersion": o["apiVersion"].as_str().unwrap_or(SERVING),
        "kind": kind,
        "name": s(o, "/metadata/name"),
        "uid": s(o, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The container port of a Revision's first container.
fn container_port(r: &Value) -> u16 {
    r["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .map_or(DEFAULT_CONTAINER_PORT, |p| p as u16)
}

/// The Deployment and Service of one Revision, and its readiness.
fn sync_revision(store: &Store, ns: &str, r: &mut Value) -> Result<(), ApiError> {
    let name = s(r, "/metadata/name").to_string();
    let deployment = format!("{name}-deployment");
    let mut labels = r["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(name));
    let dk = store.kind("apps/v1", "Deployment")?;
    let d = match store.get("apps/v1", "Deployment", ns, &deployment) {
        Some(d) => d,
        None => {
            let mut spec = r["spec"].clone();
            if let Some(o) = spec.as_object_mut() {
                o.remove("containerConcurrency");
                o.remove("timeoutSeconds");
                o.remove("responseStartTimeoutSeconds");
                o.remove("idleTimeoutSeconds");
            }
            // Knative names the one container it runs when the template
            // does not.
            for c in spec["containers"].as_array_mut().into_iter().flatten() {
                if c["name"].as_str().is_none_or(str::is_empty) {
                    c["name"] = json!("user-container");
                }
            }
            let d = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": deployment,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner(r, "Revision")],
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {REVISION_LABEL: name}},
                    "template": {"metadata": {"labels": labels}, "spec": spec},
                },
            });
            store.create_in(dk, ns, d, &opts())?.object
        }
    };
    if store.get("v1", "Service", ns, &name).is_none() {
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [owner(r, "Revision")],
            },
            "spec": {
                "selector": {REVISION_LABEL: name},
                "ports": [{"name": "http", "port": REVISION_PORT, "targetPort": container_port(r)}],
            },
        });
        let sk = store.kind("v1", "Service")?;
        store.create_in(sk, ns, svc, &opts())?;
    }
    let ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0;
    if ready == is_ready(r) && r["status"]["conditions"].is_array() {
        return Ok(());
    }
    let stamp = now_rfc3339();
    let (status, reason) = match ready {
        true => ("True", ""),
        false => ("Unknown", "Deploying"),
    };
    let mut updated = r.clone();
    updated["status"] = json!({
        "observedGeneration": r["metadata"]["generation"].clone(),
        "conditions": [
            {"type": "Ready", "status": status, "reason": reason, "lastTransitionTime": stamp},
            {"type": "ContainerHealthy", "status": status, "reason": reason, "lastTransitionTime": stamp},
            {"type": "ResourcesAvailable", "status": status, "reason": reason, "lastTransitionTime": stamp},
        ],
    });
    let rk = store.kind(SERVING, "Revision")?;
    let out = store.update_in(rk, ns, &name, updated, Subresource::Status, &opts())?;
    *r = out.object;
    Ok(())
}

/// The Service's status from its Revisions and `spec.traffic`.
fn write_status(store: &Store, ksvc: &Value, revs: &[Value]) -> Result<(), ApiError> {
    let ns = s(ksvc, "/metadata/namespace");
    let name = s(ksvc, "/metadata/name");
    let latest_created = revs.last().map(|r| s(r, "/metadata/name").to_string());
    let latest_ready = revs
        .iter()
        .rev()
        .find(|r| is_ready(r))
        .map(|r| s(r, "/metadata/name").to_string());
    let ready = |n: &str| {
        revs.iter()
            .any(|r| s(r, "/metadata/name") == n && is_ready(r))
    };
    let spec_traffic = ksvc["spec"]["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let resolved: Option<Vec<Value>> = if spec_traffic.is_empty() {
        latest_ready
            .as_ref()
            .map(|l| vec![json!({"revisionName": l, "latestRevision": true, "percent": 100})])
    } else {
        spec_traffic
            .iter()
            .map(|t| {
                let latest = t["latestRevision"].as_bool().unwrap_or(false);
                let rev = match latest {
                    true => latest_ready.clone()?,
                    false => t["revisionName"].as_str()?.to_string(),
                };
                ready(&rev).then(|| {
                    let mut out = json!({
                        "revisionName": rev,
                        "latestRevision": latest,
                        "percent": t["percent"].as_i64().unwrap_or(0),
                    });
                    if let Some(tag) = t["tag"].as_str() {
                        out["tag"] = json!(tag);
                    }
                    out
                })
            })
            .collect()
    };
    let routes_ready = resolved.is_some();
    let traffic = resolved.unwrap_or_else(|| {
        ksvc["status"]["traffic"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    });
    let all_ready = routes_ready && latest_created.is_some() && latest_created == latest_ready;
    let cond =
        |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "Unknown" }});
    let mut status = json!({
        "observedGeneration": ksvc["metadata"]["generation"].clone(),
        "url": format!("http://{name}.{ns}.example.com"),
        "address": {"url": format!("http://{name}.{ns}.svc.cluster.local")},
        "traffic": traffic,
        "conditions": [
            cond("ConfigurationsReady", latest_created.is_some() && latest_created == latest_ready),
            cond("Ready", all_ready),
            cond("RoutesReady", routes_ready),
        ],
    });
    if let Some(l) = &latest_created {
        status["latestCreatedRevisionName"] = json!(l);
    }
    if let Some(l) = &latest_ready {
        status["latestReadyRevisionName"] = json!(l);
    }
    if ksvc["status"] == status {
        return Ok(());
    }
    let mut updated = ksvc.clone();
    updated["status"] = status;
    let k = store.kind(SERVING, "Service")?;
    store.update_in(k, ns, name, updated, Subresource::Status, &opts())?;
    Ok(())
}

/// What Knative's webhook says of a Service's `spec.traffic`: each entry
/// names a revision or the latest one (not both), percents are within
/// 0–100 and add up to 100. `None` when it is acceptable.
pub(crate) fn validate_traffic(ksvc: &Value) -> Option<(String, String)> {
    let traffic = ksvc["spec"]["traffic"].as_array()?;
    if traffic.is_empty() {
        return None;
    }
    let mut total = 0;
    for (i, t) in traffic.iter().enumerate() {
        let latest = t["latestRevision"].as_bool().unwrap_or(false);
        let named = t["revisionName"].as_str().is_some_and(|n| !n.is_empty());
        if latest && named {
            return Some((
                format!("spec.traffic[{i}].revisionName"),
                "expected exactly one, got both: latestRevision, revisionName".into(),
            ));
        }
        if !latest && !named {
            return Some((
                format!("spec.traffic[{i}]"),
                "expected exactly one, got neither: latestRevision, revisionName".into(),
            ));
        }
        let p = t["percent"].as_i64().unwrap_or(0);
        if !(0..=100).contains(&p) {
            return Some((
                format!("spec.traffic[{i}].percent"),
                format!("expected 0 <= {p} <= 100"),
            ));
        }
        total += p;
    }
    (total != 100).then(|| {
        (
            "spec.traffic".to_string(),
            format!("Traffic targets sum to {total}, want 100"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_wants_percents_adding_up_to_100() {
        let svc = |traffic: Value| json!({"spec": {"traffic": traffic}});
        assert!(validate_traffic(&svc(json!([]))).is_none());
        assert!(
            validate_traffic(&svc(json!([
                {"latestRevision": true, "percent": 10},
                {"revisionName": "podinfo-00001", "percent": 90},
            ])))
            .is_none()
        );
        let (path, why) = validate_traffic(&svc(json!([
            {"latestRevision": true, "percent": 10},
            {"revisionName": "podinfo-00001", "percent": 80},
        ])))
        .unwrap();
        assert_eq!(path, "spec.traffic");
        assert!(why.contains("sum to 90"), "{why}");
        let (path, _) = validate_traffic(&svc(json!([
            {"latestRevision": true, "revisionName": "podinfo-00001", "percent": 100},
        ])))
        .unwrap();
        assert_eq!(path, "spec.traffic[0].revisionName");
    }
}
