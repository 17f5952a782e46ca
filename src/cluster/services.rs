//! The apex, primary and canary Services, named and selecting as Flagger's,
//! and the apex pointed back at the target by `canary revert`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::PostParams;

use super::error::{ClusterError, Result};
use super::managed::MANAGED_BY;
use canary_core::names;
use canary_core::spec::resolve::ResolvedCanary;
use canary_core::spec::types;

fn port(c: &ResolvedCanary) -> ServicePort {
    let target_port = match &c.target_port {
        Some(types::IntOrString::Int(i)) => IntOrString::Int(*i as i32),
        Some(types::IntOrString::String(s)) => IntOrString::String(s.clone()),
        None => IntOrString::Int(c.port as i32),
    };
    ServicePort {
        name: Some(c.port_name.clone()),
        port: c.port as i32,
        target_port: Some(target_port),
        protocol: Some("TCP".to_string()),
        app_protocol: c.app_protocol.clone(),
        ..ServicePort::default()
    }
}

/// Which of the Services [`reconcile`] sees to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// The primary and canary Services only: what can exist before the
    /// primary is ready, as nothing routes to them yet.
    Backends,
    /// The apex Service too, which then selects the primary's pods: only
    /// once they are ready.
    All,
}

/// Creates the Services `which` names, or points existing ones at the
/// right pods. The apex Service selects the primary's pods, like the
/// primary Service; the canary Service selects the target's.
pub(crate) async fn reconcile(
    client: &kube::Client,
    c: &ResolvedCanary,
    label: &str,
    label_value: &str,
    which: Which,
) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), &c.namespace);
    let primary_selector = BTreeMap::from([(label.to_string(), names::primary(label_value))]);
    let canary_selector = BTreeMap::from([(label.to_string(), label_value.to_string())]);
    let apex = (which == Which::All).then(|| (c.service.clone(), &primary_selector));
    for (name, selector) in apex.into_iter().chain([
        (names::primary(&c.service), &primary_selector),
        (names::canary(&c.service), &canary_selector),
    ]) {
        let object = format!("service/{name} in {}", c.namespace);
        let live = api
            .get_opt(&name)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?;
        match live {
            Some(mut svc) => {
                let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
                let want_ports = vec![port(c)];
                if spec.selector.as_ref() == Some(selector)
                    && spec.ports.as_ref().is_some_and(|p| {
                        p.len() == 1
                            && p[0].port == want_ports[0].port
                            && p[0].name == want_ports[0].name
                    })
                {
                    continue;
                }
                spec.selector = Some(selector.clone());
                spec.ports = Some(want_ports);
                api.replace(&name, &PostParams::default(), &svc)
                    .await
                    .map_err(|e| ClusterError::api("update", &object, e))?;
            }
            None => {
                let svc = Service {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(c.namespace.clone()),
                        labels: Some(BTreeMap::from([
                            (label.to_string(), name.clone()),
                            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                        ])),
                        ..ObjectMeta::default()
                    },
                    spec: Some(ServiceSpec {
                        type_: Some("ClusterIP".to_string()),
                        selector: Some(selector.clone()),
                        ports: Some(vec![port(c)]),
                        ..ServiceSpec::default()
                    }),
                    status: None,
                };
                api.create(&PostParams::default(), &svc)
                    .await
                    .map_err(|e| ClusterError::api("create", &object, e))?;
            }
        }
    }
    Ok(())
}

/// kubectl's record of what was last applied to an object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Deletes the `-primary` or `-canary` Service `name` if `canary` made it.
pub(crate) async fn delete(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<super::managed::Removal> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    super::managed::delete(&api, name, &format!("service/{name}")).await
}

/// What pointing the apex Service at the target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Apex {
    /// It selects the target's pods now, by this selector (`app=podinfo`).
    Pointed(String),
    /// It already did.
    Already(String),
    /// There is no apex Service.
    Missing,
}

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The selector a Service was last applied with by kubectl, if any.
fn last_applied_selector(svc: &Service) -> Option<BTreeMap<String, String>> {
    let text = svc.metadata.annotations.as_ref()?.get(LAST_APPLIED)?;
    let applied: Service = serde_json::from_str(text).ok()?;
    applied.spec?.selector.filter(|s| !s.is_empty())
}

/// Points the apex Service of `c` at the target's pods, as Flagger's
/// Kubernetes router does on finalising: a Service the user applied with
/// kubectl gets back the selector it was applied with, any other selects
/// `label=value`. `canary`'s managed-by label comes off: the Service is
/// the application's own from now on and no revert deletes it, since its
/// clients keep using it. Repeating it changes nothing.
pub(crate) async fn point_apex_at_target(
    client: &kube::Client,
    c: &ResolvedCanary,
    label: &str,
    label_value: &str,
) -> Result<Apex> {
    let api: Api<Service> = Api::namespaced(client.clone(), &c.namespace);
    let object = format!("service/{} in {}", c.service, c.namespace);
    // Read, modify, replace: a conflict is read again.
    for _ in 0..5 {
        let Some(mut svc) = api
            .get_opt(&c.service)
            .await
            .map_err(|e| ClusterError::api("read", &object, e))?
        else {
            return Ok(Apex::Missing);
        };
        let ours = super::managed::is_managed(&svc);
        let selector = last_applied_selector(&svc)
            .filter(|_| !ours)
            .unwrap_or_else(|| BTreeMap::from([(label.to_string(), label_value.to_string())]));
        let text = selector_text(&selector);
        let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
        if spec.selector.as_ref() == Some(&selector) && !ours {
            return Ok(Apex::Already(text));
        }
        spec.selector = Some(selector);
        if let Some(labels) = svc.metadata.labels.as_mut() {
            labels.remove(MANAGED_BY.0);
        }
        match api.replace(&c.service, &PostParams::default(), &svc).await {
            Ok(_) => return Ok(Apex::Pointed(text)),
            Err(e) => {
                let e = ClusterError::api("update", &object, e);
                if !e.is_conflict() {
                    return Err(e);
                }
            }
        }
    }
    Err(ClusterError::Conflict { object })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_kubectl_applied_is_read_back() {
        let mut svc = Service::default();
        assert_eq!(last_applied_selector(&svc), None);
        svc.metadata.annotations = Some(BTreeMap::from([(
            LAST_APPLIED.to_string(),
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"podinfo"},"spec":{"selector":{"app":"podinfo","tier":"web"}}}"#.to_string(),
        )]));
        let selector = last_applied_selector(&svc).unwrap();
        assert_eq!(selector_text(&selector), "app=podinfo,tier=web");
    }
}
