//! The apex, primary and canary Services, named and selecting as Flagger's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::PostParams;

use super::error::{ClusterError, Result};
use super::workload::MANAGED_BY;
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

/// Creates the three Services, or points existing ones at the right pods.
/// The apex Service selects the primary's pods, like the primary Service;
/// the canary Service selects the target's.
pub(crate) async fn reconcile(
    client: &kube::Client,
    c: &ResolvedCanary,
    label: &str,
    label_value: &str,
) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), &c.namespace);
    let primary_selector = BTreeMap::from([(label.to_string(), names::primary(label_value))]);
    let canary_selector = BTreeMap::from([(label.to_string(), label_value.to_string())]);
    for (name, selector) in [
        (c.service.clone(), &primary_selector),
        (names::primary(&c.service), &primary_selector),
        (names::canary(&c.service), &canary_selector),
    ] {
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
