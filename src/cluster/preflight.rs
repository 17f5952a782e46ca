//! The preflight: read-only checks against the live cluster that a canary
//! can be carried out, run before anything is written (by `canary run`,
//! for every canary of the run, and by `canary validate --cluster`).
//!
//! What is checked, each problem at the spec field that names the object:
//! - the target Deployment or DaemonSet exists, and the autoscaler
//!   `autoscalerRef` names (an HPA or a KEDA ScaledObject);
//! - its pod template serves the port the Services will forward to
//!   (`service.targetPort`, else `service.port`; see
//!   [`canary_core::preflight::match_port`]);
//! - every MetricTemplate a metric reads exists, names a metric provider
//!   `canary` queries, and its `secretRef` Secret exists with the keys
//!   that provider reads (only key names are looked at, never values);
//! - every AlertProvider `alerts` names exists, with its Secret;
//! - every webhook with an in-cluster address (`http://svc.ns/...`) names
//!   a Service that exists and has that port;
//! - every permission the run needs ([`canary_core::preflight::permissions`])
//!   is granted, asked of the API server so nothing is tried: one
//!   `SelfSubjectRulesReview` per namespace lists the rules that apply, and
//!   a permission they do not grant is asked about with a
//!   `SelfSubjectAccessReview` of its own. A read above that is not allowed is left to
//!   this check, which names the permission once.
//!
//! A suspended canary (`spec.suspend`) is not checked: the run leaves it
//! exactly as it is.
//!
//! Every problem is collected, then all are reported together; a problem
//! is a setup for the user to fix (exit 2), a missing permission too,
//! named by verb, resource and namespace. A cluster that cannot be read
//! is an error (exit 3). A canary already initialised (its primary
//! exists, as when a run resumes) is not asked for permissions to create
//! what exists.

use std::collections::BTreeSet;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};

use super::connect::Connection;
use super::error::{ClusterError, Result};
use super::proxy::{self, Route, Via};
use canary_core::preflight::{self as core, Access, Config, ContainerPort, Needs, Proxied};
use canary_core::provider::MetricProvider;
use canary_core::spec::resolve::{MetricSource, ResolvedCanary};
use canary_core::spec::source::{join_index, join_key};
use canary_core::spec::types::{self, AlertProvider, Canary, MetricTemplate};
use canary_core::spec::{Diagnostic, Doc, SpecFile};
use canary_core::support;

/// What the preflight of one canary found.
#[derive(Debug, Default)]
pub(crate) struct Preflight {
    /// Every problem, each at the field that names the object.
    pub problems: Vec<Diagnostic>,
    /// What was checked, a few words each, for `validate --cluster`.
    pub checked: Vec<String>,
}

/// The help of a missing permission.
const RBAC_HELP: &str = "grant it to the user of the kubeconfig (a Role and RoleBinding); \
                         examples/rbac.yaml lists every permission canary needs";

/// A read that found the object, found none, or was not allowed.
pub(crate) enum Read<T> {
    Found(T),
    Missing,
    /// The API server's words: `deployments.apps "x" is forbidden: ...`.
    Forbidden(String),
}

async fn read<K>(api: &Api<K>, name: &str, object: &str) -> Result<Read<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(o)) => Ok(Read::Found(o)),
        Ok(None) => Ok(Read::Missing),
        Err(e) => match ClusterError::api("read", object, e) {
            ClusterError::Forbidden { message, .. } => Ok(Read::Forbidden(message)),
            ClusterError::NotFound { .. } => Ok(Read::Missing),
            other => Err(other),
        },
    }
}

impl<T> Read<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Read::Found(t) => Read::Found(f(t)),
            Read::Missing => Read::Missing,
            Read::Forbidden(m) => Read::Forbidden(m),
        }
    }
}

/// How long the preflight waits for a watch that was just started to be
/// listed before it reads for itself.
const WATCH_LISTED: std::time::Duration = std::time::Duration::from_secs(2);

/// The workload `name` of the kind of `api`, as [`read`] reads.
async fn read_workload(
    api: &super::workload::Workloads,
    name: &str,
) -> Result<Read<super::workload::Object>> {
    // `canary run` keeps a watch of the namespace's Deployments going
    // (its drivers read from it): from there, once it is listed.
    if api.kind == super::workload::Kind::Deployment
        && let Some(w) = super::cache::Watched::join(api.deployments(), name)
        && let Some(hit) = w.current_within(WATCH_LISTED).await
    {
        return Ok(match hit {
            Some(d) => Read::Found(super::workload::Object::Deployment(d)),
            None => Read::Missing,
        });
    }
    match api.get(name).await {
        Ok(Some(o)) => Ok(Read::Found(o)),
        Ok(None) | Err(ClusterError::NotFound { .. }) => Ok(Read::Missing),
        Err(ClusterError::Forbidden { message, .. }) => Ok(Read::Forbidden(message)),
        Err(e) => Err(e),
    }
}

/// Where a problem of `doc` is reported: at `path`, with `help`.
struct Sink<'a> {
    file: &'a SpecFile,
    doc: &'a Doc<Canary>,
    out: Vec<Diagnostic>,
}

impl Sink<'_> {
    fn push(&mut self, path: &str, message: impl Into<String>, help: Option<String>) {
        let mut d = self.file.diagnostic_at(self.doc, path, &message.into());
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.out.push(d);
    }

    fn forbidden(&mut self, path: &str, message: &str) {
        self.push(
            path,
            format!("missing permission: {message}"),
            Some(RBAC_HELP.to_string()),
        );
    }
}

/// Checks canary `c` (document `doc` of `file`) against the cluster of
/// `conn`, reading only. In-cluster addresses are reached `route_via`, as
/// the run would reach them.
pub(crate) async fn check(
    conn: &Connection,
    file: &SpecFile,
    doc: &Doc<Canary>,
    c: &ResolvedCanary,
    route_via: Option<Via>,
) -> Result<Preflight> {
    if c.suspended {
        // Left exactly as it is by the run: nothing to check.
        return Ok(Preflight {
            problems: Vec::new(),
            checked: vec!["nothing (spec.suspend is set)".to_string()],
        });
    }
    let client = &conn.client;
    let ns = c.namespace.as_str();
    let mut sink = Sink {
        file,
        doc,
        out: Vec::new(),
    };
    let mut checked = Vec::new();
    let mut needs = Needs::default();
    let spec = doc.value.spec.clone().unwrap_or_default();
    let analysis_path = if spec.analysis.is_none() && spec.canary_analysis.is_some() {
        "spec.canaryAnalysis"
    } else {
        "spec.analysis"
    };

    // The target, and the port its pods serve.
    let kind =
        super::workload::Kind::of(&c.target.kind).unwrap_or(super::workload::Kind::Deployment);
    let workloads = super::workload::Workloads::new(client, ns, kind);
    let target = c.target.name.as_str();
    let target_object = workloads.object(target);
    match read_workload(&workloads, target).await? {
        Read::Missing => sink.push(
            "spec.targetRef.name",
            format!("{target_object} not found in namespace {ns}"),
            Some(format!(
                "apply the {} first, or name the one to analyse in `targetRef`",
                kind.as_str()
            )),
        ),
        // Reported with the permissions below.
        Read::Forbidden(_) => {}
        Read::Found(d) => {
            checked.push(target_object.clone());
            let template = Some(d.template());
            let ports = template.as_ref().map(container_ports).unwrap_or_default();
            let wanted = core::wanted_port(c);
            let path = match &c.target_port {
                Some(types::IntOrString::Int(0)) | None => "spec.service.port",
                Some(_) => "spec.service.targetPort",
            };
            match core::match_port(&wanted, &ports) {
                Ok(core::PortMatch::Served(p)) => checked.push(format!(
                    "port {} ({} in {})",
                    port_words(&wanted),
                    p.name.as_deref().unwrap_or("unnamed"),
                    p.container
                )),
                Ok(core::PortMatch::Undeclared) => checked.push(format!(
                    "port {} (not declared by the pod template)",
                    port_words(&wanted)
                )),
                Err(why) => sink.push(
                    path,
                    format!(
                        "the Services would forward to port {} of {target_object}'s pods, but \
                         {why}",
                        port_words(&wanted)
                    ),
                    Some(
                        "set `service.targetPort` to the container port (its number or name), \
                         or `service.port` when they are the same"
                            .into(),
                    ),
                ),
            }
            if let Some(t) = &template
                && !tracking_disabled_on(&d)
            {
                for r in super::configs::referenced(t) {
                    needs.configs.push(match r.kind {
                        super::configs::ConfigKind::ConfigMap => Config::ConfigMap(r.name),
                        super::configs::ConfigKind::Secret => Config::Secret(r.name),
                    });
                }
            }
        }
    }
    let primary = workloads.kind.primary_name(target);
    if let Read::Found(_) = read_workload(&workloads, &primary).await? {
        needs.initialised = true;
    }

    // The autoscaler.
    if let Some(hpa) = &c.autoscaler {
        let scaler = super::autoscaler::Scaler::of(&hpa.kind);
        let object = format!("{}/{} in {ns}", scaler.noun(), hpa.name);
        let found = match scaler {
            super::autoscaler::Scaler::Hpa => {
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
                read(&api, &hpa.name, &object).await?.map(|_| ())
            }
            super::autoscaler::Scaler::ScaledObject => {
                let ar = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
                    "scaledobjects",
                );
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                read(&api, &hpa.name, &object).await?.map(|_| ())
            }
        };
        match found {
            Read::Found(()) => checked.push(format!("{}/{}", scaler.noun(), hpa.name)),
            Read::Missing => sink.push(
                "spec.autoscalerRef.name",
                format!("{}/{} not found in namespace {ns}", scaler.noun(), hpa.name),
                Some("apply the autoscaler first, or remove `autoscalerRef`".into()),
            ),
            Read::Forbidden(_) => {}
        }
    }

    // MetricTemplates and their Secrets; where the metric servers are.
    let via = Via::choose(route_via, conn.source.is_in_cluster());
    // (address, what for, whether it is the provider's default)
    let mut servers: Vec<(String, String, bool)> = Vec::new();
    let mut templates = 0;
    for (i, m) in c.metrics.iter().enumerate() {
        let path = join_key(
            &join_index(&join_key(analysis_path, "metrics"), i),
            "templateRef",
        );
        let (name, tns, in_file) = match &m.source {
            MetricSource::Template {
                name,
                namespace,
                in_file,
            } => (name, namespace, *in_file),
            _ => {
                if let Some(s) = c.metrics_server_or_default() {
                    let default = c.metrics_server.is_none();
                    servers.push((s, format!("to query metric {}", m.name), default));
                }
                continue;
            }
        };
        let template = if in_file {
            file.metric_templates
                .iter()
                .find(|t| t.value.name() == name && t.value.namespace() == tns)
                .map(|t| t.value.clone())
        } else {
            needs.cluster_templates.push((tns.clone(), name.clone()));
            match read_flagger::<MetricTemplate>(
                client,
                tns,
                ("MetricTemplate", "metrictemplates"),
                name,
            )
            .await?
            {
                Read::Found(t) => {
                    if let Some((why, help)) = support::template_refusal(&t) {
                        sink.push(&path, why, Some(help));
                        continue;
                    }
                    Some(t)
                }
                Read::Missing => {
                    sink.push(
                        &path,
                        format!("MetricTemplate {tns}/{name} not found"),
                        Some(
                            "apply the MetricTemplate, or put it in the spec file next to the \
                             Canary"
                                .into(),
                        ),
                    );
                    None
                }
                Read::Forbidden(_) => None,
            }
        };
        let Some(t) = template else { continue };
        templates += 1;
        let provider = t
            .spec
            .as_ref()
            .and_then(|s| s.provider.clone())
            .unwrap_or_default();
        let kind = provider
            .r#type
            .as_deref()
            .and_then(MetricProvider::parse)
            .unwrap_or(MetricProvider::Prometheus);
        if kind == MetricProvider::ExternalMetrics
            && provider.address.as_deref().is_none_or(str::is_empty)
        {
            let query = t
                .spec
                .as_ref()
                .and_then(|s| s.query.as_deref())
                .unwrap_or("");
            if let Ok(q) = canary_core::queries::template::render(query, &c.template_model(m))
                && let Ok(q) = crate::metrics::externalmetrics::parse_query(&q)
            {
                needs.metric_objects.push(core::MetricObject {
                    namespace: q.namespace,
                    group: "external.metrics.k8s.io",
                    resource: q.metric,
                    verb: "get",
                    name: None,
                    why: format!("to query metric {} (external metrics API)", m.name),
                });
            }
        }
        if kind == MetricProvider::Keptn {
            let query = t
                .spec
                .as_ref()
                .and_then(|s| s.query.as_deref())
                .unwrap_or("");
            if let Ok(q) = canary_core::queries::template::render(query, &c.template_model(m)) {
                needs
                    .metric_objects
                    .extend(crate::metrics::keptn::permissions(&q, &m.name));
            }
        }
        match provider.address.clone().filter(|a| !a.is_empty()) {
            Some(a) => servers.push((a, format!("to query metric {}", m.name), false)),
            // Only Prometheus falls back to the canary's metrics server;
            // the others have their service's public address, or none.
            None if kind == MetricProvider::Prometheus => {
                if let Some(s) = c.metrics_server_or_default() {
                    let default = c.metrics_server.is_none();
                    servers.push((s, format!("to query metric {}", m.name), default));
                }
            }
            None => {}
        }
        if let Some(secret) = provider.secret_ref.and_then(|s| s.name) {
            let what = format!("Secret {tns}/{secret} (secretRef of MetricTemplate {tns}/{name})");
            // A Secret kept in the spec file is used as it is there.
            let read = match crate::alerts::file_secret(file, tns, &secret) {
                Some(s) => Read::Found(secret_keys(s)),
                None => {
                    needs.template_secrets.push((tns.clone(), secret.clone()));
                    read_secret_keys(client, tns, &secret).await?
                }
            };
            match read {
                Read::Found(keys) => {
                    if let Some(why) = core::metric_secret_problem(kind, &keys) {
                        sink.push(
                            &path,
                            format!("{what} {why}"),
                            Some(match kind {
                                MetricProvider::Prometheus => format!(
                                    "metric provider `{}` reads a bearer `token`, or `username` and \
                                     `password`",
                                    kind.name()
                                ),
                                other => format!(
                                    "metric provider `{other}` reads {}",
                                    other
                                        .secret_keys()
                                        .0
                                        .iter()
                                        .map(|k| format!("`{k}`"))
                                        .collect::<Vec<_>>()
                                        .join(" and ")
                                ),
                            }),
                        );
                    } else {
                        checked.push(format!("secret/{secret}"));
                    }
                }
                Read::Missing => sink.push(
                    &path,
                    format!("{what} not found"),
                    Some(format!("create the Secret in namespace {tns}")),
                ),
                Read::Forbidden(_) => {}
            }
        }
    }
    if templates > 0 {
        checked.push(format!(
            "{templates} MetricTemplate{}",
            if templates == 1 { "" } else { "s" }
        ));
    }

    // AlertProviders, when alerts are asked for at all.
    let analysis = spec.analysis().cloned().unwrap_or_default();
    for (i, alert) in analysis.alerts.iter().enumerate() {
        let path = join_key(
            &join_index(&join_key(analysis_path, "alerts"), i),
            "providerRef",
        );
        let Some(r) = &alert.provider_ref else {
            continue;
        };
        let Some(name) = r.name.as_deref() else {
            continue;
        };
        let ans = r.namespace.as_deref().unwrap_or(ns);
        let provider = match file
            .alert_providers
            .iter()
            .find(|p| p.value.name() == name && p.value.namespace() == ans)
        {
            Some(p) => Some(p.value.clone()),
            None => match read_flagger::<AlertProvider>(
                client,
                ans,
                ("AlertProvider", "alertproviders"),
                name,
            )
            .await?
            {
                Read::Found(p) => Some(p),
                Read::Missing => {
                    sink.push(
                        &path,
                        format!("AlertProvider {ans}/{name} not found"),
                        Some("apply the AlertProvider, or put it in the spec file".into()),
                    );
                    None
                }
                Read::Forbidden(msg) => {
                    sink.forbidden(&path, &msg);
                    None
                }
            },
        };
        let Some(p) = provider else { continue };
        let pspec = p.spec.unwrap_or_default();
        let has_address = pspec.address.as_deref().is_some_and(|a| !a.is_empty());
        if let Some(secret) = pspec.secret_ref.and_then(|s| s.name) {
            let what = format!("Secret {ans}/{secret} (secretRef of AlertProvider {ans}/{name})");
            // A Secret kept in the spec file is used as it is there.
            let found = match crate::alerts::file_secret(file, ans, &secret) {
                Some(s) => Read::Found(secret_keys(s)),
                None => read_secret_keys(client, ans, &secret).await?,
            };
            match found {
                Read::Found(keys) => {
                    if let Some(why) = core::alert_secret_problem(has_address, &keys) {
                        sink.push(&path, format!("{what} {why}"), None);
                    }
                }
                Read::Missing => sink.push(
                    &path,
                    format!("{what} not found"),
                    Some(format!("create the Secret in namespace {ans}")),
                ),
                Read::Forbidden(msg) => sink.forbidden(&path, &msg),
            }
        }
        checked.push(format!("alertprovider/{name}"));
    }

    // Webhooks at in-cluster addresses: the Service and its port.
    let mut hooks = BTreeSet::new();
    // Several webhooks of one Service (a pre-rollout and a rollout hook of
    // the load tester) are answered by one read.
    let mut reached: Vec<((String, String, u16), Reach)> = Vec::new();
    for (i, hook) in c.webhooks.iter().enumerate() {
        let path = join_key(&join_index(&join_key(analysis_path, "webhooks"), i), "url");
        let Ok(Route::Proxy(sp)) =
            proxy::route_with_domain(&hook.url, ns, proxy::DEFAULT_CLUSTER_DOMAIN)
        else {
            continue;
        };
        let key = (sp.namespace.clone(), sp.service.clone(), sp.port);
        let reach = match reached.iter().find(|(k, _)| *k == key) {
            Some((_, r)) => r.clone(),
            None => {
                let r = webhook_service(client, &sp, ns).await?;
                reached.push((key, r.clone()));
                r
            }
        };
        match reach {
            Reach::Serves => {
                hooks.insert((sp.namespace.clone(), sp.service.clone(), sp.port));
                needs_proxy(
                    &mut needs,
                    via,
                    &sp,
                    "create",
                    format!("to call webhook {}", hook.name),
                );
            }
            Reach::Public => {}
            Reach::NoService => sink.push(
                &path,
                format!(
                    "webhook `{}` calls service/{} in namespace {}, which does not exist",
                    hook.name, sp.service, sp.namespace
                ),
                Some("deploy the webhook's Service first, or correct the URL".into()),
            ),
            Reach::NoPort(ports) => sink.push(
                &path,
                format!(
                    "webhook `{}` calls port {} of service/{} in namespace {}, which has no \
                     such port (its ports: {ports})",
                    hook.name, sp.port, sp.service, sp.namespace
                ),
                Some("correct the port in the URL".into()),
            ),
            // The run needs no grant to read Services there: whether this
            // one exists cannot be told, and is not held against the URL.
            Reach::Unknown => {
                needs_proxy(
                    &mut needs,
                    via,
                    &sp,
                    "create",
                    format!("to call webhook {}", hook.name),
                );
            }
        }
    }
    if !hooks.is_empty() {
        checked.push(format!(
            "{} webhook Service{}",
            hooks.len(),
            if hooks.len() == 1 { "" } else { "s" }
        ));
    }

    // Metric servers reached through the service proxy need its grant. A
    // Service is not read for them (the checks report one that is
    // missing), so a `name.tld` address counts as in-cluster only when it
    // is the provider's own Prometheus.
    for (address, why, default) in servers {
        if let Ok(Route::Proxy(sp)) =
            proxy::route_with_domain(&address, ns, proxy::DEFAULT_CLUSTER_DOMAIN)
            && (sp.public.is_none() || default)
        {
            needs_proxy(&mut needs, via, &sp, "get", why);
        }
    }

    // Permissions, asked of the API server.
    let wanted = core::permissions(c, &needs);
    let asked = wanted.len();
    let answers = allowed_all(client, &wanted).await;
    for (a, answer) in wanted.iter().zip(answers) {
        if !answer? {
            sink.push(
                "metadata.name",
                format!("missing permission: cannot {a} ({})", a.why),
                Some(RBAC_HELP.to_string()),
            );
        }
    }
    checked.push(format!("{asked} permissions"));

    Ok(Preflight {
        problems: sink.out,
        checked,
    })
}

/// Adds the service-proxy grant a request to `sp` needs, when requests go
/// through the proxy.
fn needs_proxy(
    needs: &mut Needs,
    via: Via,
    sp: &proxy::ServiceProxy,
    verb: &'static str,
    why: String,
) {
    if via != Via::ServiceProxy {
        return;
    }
    let name = format!("{}:{}:{}", sp.scheme, sp.service, sp.port);
    if needs
        .proxied
        .iter()
        .any(|p| p.namespace == sp.namespace && p.name == name && p.verb == verb)
    {
        return;
    }
    needs.proxied.push(Proxied {
        namespace: sp.namespace.clone(),
        name,
        verb,
        why,
    });
}

/// Whether an in-cluster address can be reached.
#[derive(Clone)]
enum Reach {
    /// The Service exists and has the port.
    Serves,
    /// No such Service, but the host may be a public name (`name.tld`
    /// where no namespace `tld` exists): the run calls it directly.
    Public,
    NoService,
    /// The Service has other ports than the one asked for: these.
    NoPort(String),
    /// The Service could not be read (no permission to).
    Unknown,
}

async fn webhook_service(
    client: &kube::Client,
    sp: &proxy::ServiceProxy,
    ns: &str,
) -> Result<Reach> {
    let api: Api<Service> = Api::namespaced(client.clone(), &sp.namespace);
    let object = format!("service/{} in {}", sp.service, sp.namespace);
    match read(&api, &sp.service, &object).await? {
        Read::Found(svc) => {
            let ports: Vec<i32> = svc
                .spec
                .and_then(|s| s.ports)
                .unwrap_or_default()
                .iter()
                .map(|p| p.port)
                .collect();
            if ports.contains(&i32::from(sp.port)) {
                Ok(Reach::Serves)
            } else {
                let list: Vec<String> = ports.iter().map(i32::to_string).collect();
                Ok(Reach::NoPort(if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }))
            }
        }
        Read::Forbidden(_) => Ok(Reach::Unknown),
        Read::Missing if sp.public.is_none() || sp.namespace == ns => Ok(Reach::NoService),
        // `name.tld`: in-cluster only if namespace `tld` exists. A
        // namespace that cannot be read is not held against the URL.
        Read::Missing => {
            let api: Api<Namespace> = Api::all(client.clone());
            let object = format!("namespace/{}", sp.namespace);
            Ok(match read(&api, &sp.namespace, &object).await? {
                Read::Found(_) => Reach::NoService,
                Read::Missing | Read::Forbidden(_) => Reach::Public,
            })
        }
    }
}

/// Whether the user may make each request of `wanted`. The rules that
/// apply in each namespace are asked for once, with a
/// `SelfSubjectRulesReview` (what `kubectl auth can-i --list` asks); a
/// request they grant is allowed. A request they do not grant is asked
/// about on its own with a `SelfSubjectAccessReview`, the authoritative
/// answer: a rules review may list only part of what is granted (another
/// authorizer than RBAC, `status.incomplete`), or not be answered.
async fn allowed_all(client: &kube::Client, wanted: &[Access]) -> Vec<Result<bool>> {
    let namespaces: BTreeSet<&str> = wanted.iter().map(|a| a.namespace.as_str()).collect();
    let reviews = futures::future::join_all(namespaces.iter().map(|ns| rules_in(client, ns))).await;
    let rules: std::collections::BTreeMap<&str, Vec<ResourceRule>> =
        namespaces.into_iter().zip(reviews).collect();
    futures::future::join_all(wanted.iter().map(|a| {
        let granted = rules
            .get(a.namespace.as_str())
            .is_some_and(|rules| rules.iter().any(|r| rule_grants(r, a)));
        async move {
            if granted {
                Ok(true)
            } else {
                allowed(client, a).await
            }
        }
    }))
    .await
}

/// The rules that apply to the user in `namespace`, as a rules review
/// lists them; none when it cannot be asked.
async fn rules_in(client: &kube::Client, namespace: &str) -> Vec<ResourceRule> {
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..SelfSubjectRulesReview::default()
    };
    match api.create(&PostParams::default(), &review).await {
        Ok(r) => r.status.map(|s| s.resource_rules).unwrap_or_default(),
        // Every answer is then asked for with an access review, which
        // reports what is wrong with the cluster.
        Err(_) => Vec::new(),
    }
}

/// Whether `rule` grants request `a`, as the RBAC authorizer matches a
/// PolicyRule: the verb, the API group, the resource (`resource/sub` for a
/// subresource, `*/sub` for that subresource of any), and the name when
/// the rule names objects (a request without a name is not granted by a
/// rule that names objects).
fn rule_grants(rule: &ResourceRule, a: &Access) -> bool {
    let any = |list: Option<&Vec<String>>, want: &str| {
        list.into_iter().flatten().any(|x| x == "*" || x == want)
    };
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let name = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => a.name.as_ref().is_some_and(|n| names.contains(n)),
    };
    any(Some(&rule.verbs), &a.verb) && any(rule.api_groups.as_ref(), &a.group) && resource && name
}

/// Asks the API server whether the user may make request `a`.
async fn allowed(client: &kube::Client, a: &Access) -> Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(a.namespace.clone()),
                verb: Some(a.verb.clone()),
                group: Some(a.group.clone()),
                resource: Some(a.resource.clone()),
                subresource: Some(a.subresource.clone()).filter(|s| !s.is_empty()),
                name: a.name.clone(),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let object = format!("the API server whether the user may {a}");
    match api.create(&PostParams::default(), &review).await {
        Ok(r) => Ok(r.status.is_some_and(|s| s.allowed)),
        Err(e) => match ClusterError::api("ask", object, e) {
            // Not even allowed to ask: every user may on a real cluster,
            // so the request is not allowed either.
            ClusterError::Forbidden { .. } => Ok(false),
            other => Err(other),
        },
    }
}

/// The ports the pod template's containers declare.
fn container_ports(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Vec<ContainerPort> {
    t.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| {
            c.ports.iter().flatten().map(|p| ContainerPort {
                container: c.name.clone(),
                name: p.name.clone(),
                port: i64::from(p.container_port),
                protocol: p.protocol.clone(),
            })
        })
        .collect()
}

fn port_words(p: &types::IntOrString) -> String {
    match p {
        types::IntOrString::Int(n) => n.to_string(),
        types::IntOrString::String(s) => format!("`{s}`"),
    }
}

/// Flagger's opt-out of copying ConfigMaps and Secrets, on the target.
fn tracking_disabled_on(d: &super::workload::Object) -> bool {
    super::state::Annotated::meta(d)
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::configs::TRACKING_ANNOTATION))
        .is_some_and(|v| v == "disabled")
}

fn flagger_api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", kind),
        plural,
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// A Flagger object of `kind` (`plural`) read as `T`; one that does not
/// parse as `T` is invalid.
pub(crate) async fn read_flagger<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    ns: &str,
    (kind, plural): (&str, &str),
    name: &str,
) -> Result<Read<T>> {
    let api = flagger_api(client, ns, kind, plural);
    let object = format!("{kind} {ns}/{name}");
    Ok(match read(&api, name, &object).await? {
        Read::Found(o) => match serde_json::to_value(&o).and_then(serde_json::from_value) {
            Ok(t) => Read::Found(t),
            Err(e) => return Err(ClusterError::Invalid(format!("{object} is invalid: {e}"))),
        },
        Read::Missing => Read::Missing,
        Read::Forbidden(m) => Read::Forbidden(m),
    })
}

/// The key names of Secret `s`.
fn secret_keys(s: Secret) -> BTreeSet<String> {
    s.data
        .unwrap_or_default()
        .into_keys()
        .chain(s.string_data.unwrap_or_default().into_keys())
        .collect()
}

/// The key names of Secret `ns/name`; its values are never looked at.
async fn read_secret_keys(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Read<BTreeSet<String>>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let object = format!("secret/{name} in {ns}");
    Ok(match read(&api, name, &object).await? {
        Read::Found(s) => Read::Found(secret_keys(s)),
        Read::Missing => Read::Missing,
        Read::Forbidden(m) => Read::Forbidden(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(verb: &str, group: &str, resource: &str, name: Option<&str>) -> Access {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Access {
            namespace: "prod".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            verb: verb.into(),
            name: name.map(str::to_string),
            why: String::new(),
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> ResourceRule {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ResourceRule {
            verbs: list(verbs),
            api_groups: Some(list(groups)),
            resources: Some(list(resources)),
            resource_names: (!names.is_empty()).then(|| list(names)),
        }
    }

    #[test]
    fn a_listed_rule_grants_as_rbac_matches_it() {
        let deploys = rule(&["get", "patch"], &["apps"], &["deployments"], &[]);
        assert!(rule_grants(
            &deploys,
            &access("get", "apps", "deployments", Some("x"))
        ));
        assert!(!rule_grants(
            &deploys,
            &access("delete", "apps", "deployments", None)
        ));
        assert!(!rule_grants(
            &deploys,
            &access("get", "", "deployments", None)
        ));
        assert!(!rule_grants(
            &deploys,
            &access("get", "apps", "deployments/scale", None)
        ));
        let named = rule(
            &["watch"],
            &["apps"],
            &["deployments"],
            &["podinfo-primary"],
        );
        assert!(rule_grants(
            &named,
            &access("watch", "apps", "deployments", Some("podinfo-primary"))
        ));
        assert!(!rule_grants(
            &named,
            &access("watch", "apps", "deployments", Some("other"))
        ));
        assert!(!rule_grants(
            &named,
            &access("watch", "apps", "deployments", None)
        ));
        let proxy = rule(&["create"], &[""], &["services/proxy"], &[]);
        assert!(rule_grants(
            &proxy,
            &access("create", "", "services/proxy", Some("http:a:80"))
        ));
        assert!(!rule_grants(
            &proxy,
            &access("create", "", "services", None)
        ));
        let scale = rule(&["*"], &["*"], &["*/scale"], &[]);
        assert!(rule_grants(
            &scale,
            &access("update", "apps", "deployments/scale", None)
        ));
        assert!(!rule_grants(
            &scale,
            &access("update", "apps", "deployments", None)
        ));
        let all = rule(&["*"], &["*"], &["*"], &[]);
        assert!(rule_grants(&all, &access("delete", "x.io", "things", None)));
    }
}
