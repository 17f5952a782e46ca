//! The pure half of the preflight: what a rollout needs from the cluster,
//! decided from the spec and from objects already read, so that the
//! binary's preflight (`src/cluster/preflight.rs`) only reads and asks.
//!
//! - [`match_port`]: whether the target's pod template serves the port the
//!   Services forward to, derived as Flagger's Kubernetes router derives
//!   it: `service.targetPort` when set, else `service.port`;
//! - [`metric_secret_problem`] and [`alert_secret_problem`]: whether a
//!   Secret holds the keys its provider reads;
//! - [`permissions`]: every API request a `canary run` of the canary
//!   makes, as the RBAC verb, resource and namespace the API server
//!   authorises it by, each with what it is for.

use std::collections::BTreeSet;
use std::fmt;

use crate::names;
use crate::provider::{MetricProvider, Provider};
use crate::spec::resolve::ResolvedCanary;
use crate::spec::types::IntOrString;

// ---------------------------------------------------------------------------
// Ports.
// ---------------------------------------------------------------------------

/// One port a container of the pod template declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub container: String,
    pub name: Option<String>,
    pub port: i64,
    /// `TCP` when not given, as Kubernetes defaults it.
    pub protocol: Option<String>,
}

impl ContainerPort {
    fn is_tcp(&self) -> bool {
        self.protocol.as_deref().is_none_or(|p| p == "TCP")
    }

    fn describe(&self) -> String {
        let proto = self.protocol.as_deref().unwrap_or("TCP");
        match &self.name {
            Some(n) => format!("{n} {}/{proto} in {}", self.port, self.container),
            None => format!("{}/{proto} in {}", self.port, self.container),
        }
    }
}

/// The container port the apex, primary and canary Services forward to:
/// `service.targetPort` when set (a number or a port name), else
/// `service.port`, as Flagger's Kubernetes router sets `targetPort`.
pub fn wanted_port(c: &ResolvedCanary) -> IntOrString {
    match &c.target_port {
        Some(IntOrString::Int(0)) | None => IntOrString::Int(i64::from(c.port)),
        Some(p) => p.clone(),
    }
}

/// How the wanted port was found in the pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// A container declares it: this one.
    Served(ContainerPort),
    /// A number, and no container declares any port: whether one listens
    /// on it cannot be told from the template (declaring ports is
    /// optional for a number; a name must be declared).
    Undeclared,
}

/// Whether the pod template's `ports` hold `wanted` (a TCP port with that
/// number, or with that name). `Err` says what is missing and what the
/// template declares instead.
pub fn match_port(wanted: &IntOrString, ports: &[ContainerPort]) -> Result<PortMatch, String> {
    let tcp: Vec<&ContainerPort> = ports.iter().filter(|p| p.is_tcp()).collect();
    let found = match wanted {
        IntOrString::Int(n) => tcp.iter().find(|p| p.port == *n),
        IntOrString::String(name) => tcp.iter().find(|p| p.name.as_deref() == Some(name)),
    };
    if let Some(p) = found {
        return Ok(PortMatch::Served((*p).clone()));
    }
    if ports.is_empty() {
        return match wanted {
            IntOrString::Int(_) => Ok(PortMatch::Undeclared),
            IntOrString::String(name) => Err(format!(
                "no container of the pod template declares a port named `{name}` (it declares no ports)"
            )),
        };
    }
    let declared: Vec<String> = ports.iter().map(ContainerPort::describe).collect();
    let what = match wanted {
        IntOrString::Int(n) => format!("no container of the pod template serves TCP port {n}"),
        IntOrString::String(name) => {
            format!("no container of the pod template has a TCP port named `{name}`")
        }
    };
    Err(format!("{what} (it declares {})", declared.join(", ")))
}

// ---------------------------------------------------------------------------
// Secrets.
// ---------------------------------------------------------------------------

/// What a MetricTemplate's `secretRef` Secret lacks for `provider`, given
/// the keys it has; `None` when it has what the provider reads.
pub fn metric_secret_problem(provider: MetricProvider, keys: &BTreeSet<String>) -> Option<String> {
    let has = |k: &str| keys.contains(k);
    match provider {
        // As Flagger's Prometheus provider: a bearer `token`, else basic
        // auth with both `username` and `password`.
        MetricProvider::Prometheus => {
            if has("token") || (has("username") && has("password")) {
                return None;
            }
            Some(
                match (has("username"), has("password")) {
                    (true, false) => "has a `username` key but no `password` key",
                    (false, true) => "has a `password` key but no `username` key",
                    _ => "has no `token` key, and no `username` and `password` keys",
                }
                .to_string(),
            )
        }
        // The keys Flagger's provider reads, each required.
        other => {
            let missing: Vec<String> = other
                .secret_keys()
                .0
                .iter()
                .filter(|k| !has(k))
                .map(|k| format!("`{k}`"))
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "has no {} key{}",
                    missing.join(" and no "),
                    if missing.len() == 1 { "" } else { "s" }
                )
            })
        }
    }
}

/// What an AlertProvider's `secretRef` Secret lacks: the webhook
/// `address`, unless the AlertProvider holds it itself.
pub fn alert_secret_problem(has_address: bool, keys: &BTreeSet<String>) -> Option<String> {
    (!has_address && !keys.contains("address"))
        .then(|| "has no `address` key, and the AlertProvider sets no `address`".to_string())
}

// ---------------------------------------------------------------------------
// Permissions.
// ---------------------------------------------------------------------------

/// One request the rollout makes, as RBAC authorises it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub namespace: String,
    pub group: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// `proxy`, or `""`.
    pub subresource: String,
    pub verb: String,
    /// The object's name, when the request names one.
    pub name: Option<String>,
    /// What the rollout does with it: `to create the primary`.
    pub why: String,
}

impl Access {
    /// `deployments.apps`, `services/proxy`.
    pub fn resource_words(&self) -> String {
        let mut r = self.resource.clone();
        if !self.group.is_empty() {
            r = format!("{r}.{}", self.group);
        }
        if !self.subresource.is_empty() {
            r = format!("{r}/{}", self.subresource);
        }
        r
    }
}

impl fmt::Display for Access {
    /// `patch deployments.apps "podinfo-primary" in namespace prod`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource_words())?;
        if let Some(n) = &self.name {
            write!(f, " \"{n}\"")?;
        }
        write!(f, " in namespace {}", self.namespace)
    }
}

/// A ConfigMap or Secret the target's pod template uses, which the
/// rollout copies for the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Config {
    ConfigMap(String),
    Secret(String),
}

/// A Service reached through the API server's service proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    pub namespace: String,
    /// `scheme:service:port`, as the proxy path names it.
    pub name: String,
    /// `create` for a POST (webhooks), `get` for a GET (metric queries).
    pub verb: &'static str,
    pub why: String,
}

/// What the rollout will touch besides what the spec alone says, found by
/// reading the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The primary exists: nothing is created any more (a run resumed or
    /// a canary initialised before).
    pub initialised: bool,
    pub configs: Vec<Config>,
    /// MetricTemplates read from the cluster: (namespace, name).
    pub cluster_templates: Vec<(String, String)>,
    /// MetricTemplate Secrets read for credentials: (namespace, name).
    pub template_secrets: Vec<(String, String)>,
    pub proxied: Vec<Proxied>,
    /// Objects a metric provider reads or writes through the Kubernetes
    /// API (Keptn's KeptnMetrics and Analyses).
    pub metric_objects: Vec<MetricObject>,
}

/// One permission a metric provider's query needs on cluster objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricObject {
    pub namespace: String,
    pub group: &'static str,
    /// The resource as the API server's authorizer sees it (for the
    /// external metrics API: the metric's name).
    pub resource: String,
    pub verb: &'static str,
    /// The object's name, when the query names it.
    pub name: Option<String>,
    pub why: String,
}

/// The objects a provider's router reads and writes, with the verbs, as
/// the routers of `src/router/` use them: (API group, resource, verbs).
pub fn router_resources(
    p: Provider,
) -> &'static [(&'static str, &'static str, &'static [&'static str])] {
    match p {
        Provider::Linkerd | Provider::Osm | Provider::Smi(_) => &[(
            "split.smi-spec.io",
            "trafficsplits",
            &["get", "create", "patch"],
        )],
        Provider::Istio => &[
            (
                "networking.istio.io",
                "virtualservices",
                &["get", "create", "update", "patch"],
            ),
            (
                "networking.istio.io",
                "destinationrules",
                &["get", "create", "update"],
            ),
        ],
        Provider::GatewayApi(_) => &[(
            "gateway.networking.k8s.io",
            "httproutes",
            &["get", "create", "patch"],
        )],
        Provider::Nginx => &[(
            "networking.k8s.io",
            "ingresses",
            &["get", "create", "patch"],
        )],
        _ => &[],
    }
}

/// The object of a provider's router that a driver watches, named after
/// the apex Service: (API group, resource).
pub fn router_watched(p: Provider) -> Option<(&'static str, &'static str)> {
    match p {
        Provider::Linkerd | Provider::Osm | Provider::Smi(_) => {
            Some(("split.smi-spec.io", "trafficsplits"))
        }
        Provider::Istio => Some(("networking.istio.io", "virtualservices")),
        Provider::GatewayApi(_) => Some(("gateway.networking.k8s.io", "httproutes")),
        _ => None,
    }
}

/// Every request `canary run` makes for `c`, given what it will touch.
///
/// Creates are left out once the canary is initialised (the objects
/// exist; a run resumed mid-rollout does not create them again). Deletes
/// are `canary revert`'s alone and are not asked for here. `canary` writes
/// no Events: its events are its output.
pub fn permissions(c: &ResolvedCanary, needs: &Needs) -> Vec<Access> {
    let mut out = Vec::new();
    let ns = c.namespace.as_str();
    let mut add =
        |ns: &str, group: &str, resource: &str, verb: &str, name: Option<&str>, why: &str| {
            let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
            out.push(Access {
                namespace: ns.to_string(),
                group: group.to_string(),
                resource: resource.to_string(),
                subresource: subresource.to_string(),
                verb: verb.to_string(),
                name: name.map(str::to_string),
                why: why.to_string(),
            });
        };
    let create = !needs.initialised;
    let target = c.target.name.as_str();
    let primary = names::primary(target);

    let knative = c.provider == Some(Provider::Knative);
    if knative {
        // The Knative Service is the target, the primary and the router:
        // read, watched for requests, and patched (the annotation naming
        // the primary revision, the traffic, the state); its revisions
        // are read for their readiness. Nothing is created.
        const SERVING: &str = "serving.knative.dev";
        for (verb, why) in [
            ("get", "to read the Knative Service and the rollout's state"),
            ("list", "to watch the Knative Service for requests"),
            ("watch", "to watch the Knative Service for requests"),
            (
                "patch",
                "to name the primary revision, split the traffic and store the state",
            ),
        ] {
            add(ns, SERVING, "services", verb, Some(target), why);
        }
        add(
            ns,
            SERVING,
            "revisions",
            "get",
            None,
            "to read whether the revisions are ready",
        );
    }

    if !knative {
        // The target and the primary, of the target's kind.
        let workloads = if c.target.kind == "DaemonSet" {
            "daemonsets"
        } else {
            "deployments"
        };
        add(
            ns,
            "apps",
            workloads,
            "get",
            Some(target),
            "to read the target",
        );
        add(
            ns,
            "apps",
            workloads,
            "patch",
            Some(target),
            "to scale the target",
        );
        add(
            ns,
            "apps",
            workloads,
            "get",
            Some(&primary),
            "to read the primary and the rollout's state",
        );
        add(
            ns,
            "apps",
            workloads,
            "list",
            Some(&primary),
            "to watch the primary for requests",
        );
        add(
            ns,
            "apps",
            workloads,
            "watch",
            Some(&primary),
            "to watch the primary for requests",
        );
        if create {
            add(
                ns,
                "apps",
                workloads,
                "create",
                None,
                "to create the primary",
            );
        }
        // A Deployment's template is promoted with a patch replacing it
        // whole; a DaemonSet's by writing the primary back.
        add(
            ns,
            "apps",
            workloads,
            if workloads == "deployments" {
                "patch"
            } else {
                "update"
            },
            Some(&primary),
            "to promote the target to the primary",
        );
        add(
            ns,
            "apps",
            workloads,
            "patch",
            Some(&primary),
            "to store the rollout's state and scale the primary",
        );

        // The apex, primary and canary Services.
        for svc in [
            c.service.clone(),
            names::primary(&c.service),
            names::canary(&c.service),
        ] {
            add(
                ns,
                "",
                "services",
                "get",
                Some(&svc),
                "to read the Services",
            );
            add(
                ns,
                "",
                "services",
                "update",
                Some(&svc),
                "to point the Services at their pods",
            );
        }
        if create {
            add(ns, "", "services", "create", None, "to create the Services");
        }

        // ConfigMaps and Secrets copied for the primary.
        for config in &needs.configs {
            let (resource, name) = match config {
                Config::ConfigMap(n) => ("configmaps", n),
                Config::Secret(n) => ("secrets", n),
            };
            add(
                ns,
                "",
                resource,
                "get",
                Some(name),
                "to copy what the target uses for the primary",
            );
            add(
                ns,
                "",
                resource,
                "update",
                Some(&names::primary(name)),
                "to update the primary's copy",
            );
            if create {
                add(
                    ns,
                    "",
                    resource,
                    "create",
                    None,
                    "to copy what the target uses for the primary",
                );
            }
        }

        // The autoscaler and its copy for the primary.
        if let Some(hpa) = &c.autoscaler {
            let (group, scalers) = if hpa.kind == "ScaledObject" {
                ("keda.sh", "scaledobjects")
            } else {
                ("autoscaling", "horizontalpodautoscalers")
            };
            add(
                ns,
                group,
                scalers,
                "get",
                Some(&hpa.name),
                "to copy the autoscaler for the primary",
            );
            let copy = names::primary(&hpa.name);
            add(
                ns,
                group,
                scalers,
                "get",
                Some(&copy),
                "to read the primary's autoscaler",
            );
            add(
                ns,
                group,
                scalers,
                "update",
                Some(&copy),
                "to update the primary's autoscaler",
            );
            if create {
                add(
                    ns,
                    group,
                    scalers,
                    "create",
                    None,
                    "to create the primary's autoscaler",
                );
            }
            if hpa.kind == "ScaledObject" {
                add(
                    ns,
                    group,
                    scalers,
                    "patch",
                    Some(&hpa.name),
                    "to pause the target's autoscaler while the target has no pods",
                );
            }
        }
    }

    // The router's objects.
    if let Some(p) = c.provider {
        for (group, resource, verbs) in router_resources(p) {
            for verb in *verbs {
                if *verb == "create" && !create {
                    continue;
                }
                add(
                    ns,
                    group,
                    resource,
                    verb,
                    None,
                    "to route traffic between primary and canary",
                );
            }
        }
        if let Some((group, resource)) = router_watched(p) {
            for verb in ["list", "watch"] {
                add(
                    ns,
                    group,
                    resource,
                    verb,
                    Some(&c.service),
                    "to watch the routing",
                );
            }
        }
    }

    // Metrics and webhooks.
    for (tns, name) in &needs.cluster_templates {
        add(
            tns,
            "flagger.app",
            "metrictemplates",
            "get",
            Some(name),
            "to read the MetricTemplate",
        );
    }
    for (sns, name) in &needs.template_secrets {
        add(
            sns,
            "",
            "secrets",
            "get",
            Some(name),
            "to read the metric server's credentials",
        );
    }
    for o in &needs.metric_objects {
        add(
            &o.namespace,
            o.group,
            &o.resource,
            o.verb,
            o.name.as_deref(),
            &o.why,
        );
    }
    for p in &needs.proxied {
        add(
            &p.namespace,
            "",
            "services/proxy",
            p.verb,
            Some(&p.name),
            &p.why,
        );
    }

    // One question per request: the first purpose given is kept.
    let mut seen = BTreeSet::new();
    out.retain(|a| {
        seen.insert((
            a.namespace.clone(),
            a.group.clone(),
            a.resource.clone(),
            a.subresource.clone(),
            a.verb.clone(),
            a.name.clone(),
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(
        container: &str,
        name: Option<&str>,
        port: i64,
        protocol: Option<&str>,
    ) -> ContainerPort {
        ContainerPort {
            container: container.to_string(),
            name: name.map(str::to_string),
            port,
            protocol: protocol.map(str::to_string),
        }
    }

    /// podinfo's Canary in `prod`, resolved.
    fn canary() -> ResolvedCanary {
        let text = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: prod}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50}
";
        let file = crate::spec::load_str("podinfo.yaml", text).unwrap();
        crate::spec::resolve::resolve(&file, &file.canaries[0], &Default::default())
    }

    fn podinfo() -> Vec<ContainerPort> {
        vec![
            port("podinfod", Some("http"), 9898, None),
            port("podinfod", Some("grpc"), 9999, Some("TCP")),
            port("podinfod", Some("dns"), 53, Some("UDP")),
        ]
    }

    /// The permissions asked for, as `verb group/resource name`.
    fn asked(c: &ResolvedCanary) -> Vec<String> {
        permissions(c, &Needs::default())
            .into_iter()
            .map(|a| {
                format!(
                    "{} {}/{} {}",
                    a.verb,
                    a.group,
                    a.resource,
                    a.name.unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn a_daemonset_target_asks_for_daemonsets_and_a_scaled_object_for_keda() {
        let mut c = canary();
        c.target.kind = "DaemonSet".into();
        let got = asked(&c);
        for p in [
            "get apps/daemonsets podinfo",
            "patch apps/daemonsets podinfo",
            "create apps/daemonsets ",
            "update apps/daemonsets podinfo-primary",
            "watch apps/daemonsets podinfo-primary",
        ] {
            assert!(got.contains(&p.to_string()), "{p} not in {got:#?}");
        }
        assert!(!got.iter().any(|p| p.contains("deployments")), "{got:#?}");

        let mut c = canary();
        c.autoscaler = Some(crate::spec::resolve::TargetRef {
            api_version: "keda.sh/v1alpha1".into(),
            kind: "ScaledObject".into(),
            name: "podinfo".into(),
        });
        let got = asked(&c);
        for p in [
            "get keda.sh/scaledobjects podinfo",
            "patch keda.sh/scaledobjects podinfo",
            "update keda.sh/scaledobjects podinfo-primary",
            "create keda.sh/scaledobjects ",
        ] {
            assert!(got.contains(&p.to_string()), "{p} not in {got:#?}");
        }
        assert!(
            !got.iter().any(|p| p.contains("horizontalpodautoscalers")),
            "{got:#?}"
        );
    }

    #[test]
    fn a_number_matches_a_declared_tcp_port() {
        let got = match_port(&IntOrString::Int(9898), &podinfo()).unwrap();
        assert_eq!(got, PortMatch::Served(podinfo()[0].clone()));
        let got = match_port(&IntOrString::Int(9999), &podinfo()).unwrap();
        assert_eq!(got, PortMatch::Served(podinfo()[1].clone()));
    }

    #[test]
    fn a_name_matches_a_declared_port_of_that_name() {
        let got = match_port(&IntOrString::String("grpc".into()), &podinfo()).unwrap();
        assert_eq!(got, PortMatch::Served(podinfo()[1].clone()));
    }

    #[test]
    fn a_port_the_template_does_not_serve_is_named_with_what_it_declares() {
        let e = match_port(&IntOrString::Int(8080), &podinfo()).unwrap_err();
        assert_eq!(
            e,
            "no container of the pod template serves TCP port 8080 (it declares http 9898/TCP in \
             podinfod, grpc 9999/TCP in podinfod, dns 53/UDP in podinfod)"
        );
        let e = match_port(&IntOrString::String("metrics".into()), &podinfo()).unwrap_err();
        assert!(
            e.starts_with("no container of the pod template has a TCP port named `metrics`"),
            "{e}"
        );
    }

    #[test]
    fn a_udp_port_does_not_serve_a_tcp_service() {
        assert!(match_port(&IntOrString::Int(53), &podinfo()).is_err());
        assert!(match_port(&IntOrString::String("dns".into()), &podinfo()).is_err());
    }

    #[test]
    fn without_declared_ports_a_number_cannot_be_told_but_a_name_is_missing() {
        assert_eq!(
            match_port(&IntOrString::Int(80), &[]).unwrap(),
            PortMatch::Undeclared
        );
        let e = match_port(&IntOrString::String("http".into()), &[]).unwrap_err();
        assert!(e.contains("declares no ports"), "{e}");
    }

    #[test]
    fn the_wanted_port_is_the_target_port_else_the_port() {
        let mut c = canary();
        c.port = 80;
        c.target_port = None;
        assert_eq!(wanted_port(&c), IntOrString::Int(80));
        c.target_port = Some(IntOrString::Int(0));
        assert_eq!(wanted_port(&c), IntOrString::Int(80));
        c.target_port = Some(IntOrString::Int(9898));
        assert_eq!(wanted_port(&c), IntOrString::Int(9898));
        c.target_port = Some(IntOrString::String("http".into()));
        assert_eq!(wanted_port(&c), IntOrString::String("http".into()));
    }

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_other_providers_want_every_key_flagger_reads() {
        let dd = MetricProvider::Datadog;
        assert_eq!(
            metric_secret_problem(dd, &keys(&["datadog_api_key", "datadog_application_key"])),
            None
        );
        assert_eq!(
            metric_secret_problem(dd, &keys(&["datadog_api_key"])).unwrap(),
            "has no `datadog_application_key` key"
        );
        assert_eq!(
            metric_secret_problem(MetricProvider::Newrelic, &keys(&[])).unwrap(),
            "has no `newrelic_account_id` and no `newrelic_query_key` keys"
        );
        assert_eq!(
            metric_secret_problem(MetricProvider::Influxdb, &keys(&["token"])).unwrap(),
            "has no `org` key"
        );
        assert_eq!(
            metric_secret_problem(MetricProvider::Dynatrace, &keys(&["dynatrace_token"])),
            None
        );
    }

    #[test]
    fn prometheus_credentials_are_a_token_or_a_user_and_password() {
        let p = MetricProvider::Prometheus;
        assert_eq!(metric_secret_problem(p, &keys(&["token"])), None);
        assert_eq!(
            metric_secret_problem(p, &keys(&["username", "password"])),
            None
        );
        assert_eq!(
            metric_secret_problem(p, &keys(&["username"])).unwrap(),
            "has a `username` key but no `password` key"
        );
        assert_eq!(
            metric_secret_problem(p, &keys(&["tokn"])).unwrap(),
            "has no `token` key, and no `username` and `password` keys"
        );
    }

    #[test]
    fn an_alert_secret_needs_an_address_unless_the_provider_has_one() {
        assert_eq!(alert_secret_problem(true, &keys(&[])), None);
        assert_eq!(alert_secret_problem(false, &keys(&["address"])), None);
        assert!(alert_secret_problem(false, &keys(&["token"])).is_some());
    }

    #[test]
    fn permissions_follow_the_provider_and_leave_creates_out_once_initialised() {
        let mut c = canary();
        c.provider = Some(Provider::Linkerd);
        let fresh = permissions(&c, &Needs::default());
        let said: Vec<String> = fresh.iter().map(|a| a.to_string()).collect();
        for want in [
            "create deployments.apps in namespace prod",
            "patch deployments.apps \"podinfo-primary\" in namespace prod",
            "watch deployments.apps \"podinfo-primary\" in namespace prod",
            "update services \"podinfo-canary\" in namespace prod",
            "create trafficsplits.split.smi-spec.io in namespace prod",
            "patch trafficsplits.split.smi-spec.io in namespace prod",
            "watch trafficsplits.split.smi-spec.io \"podinfo\" in namespace prod",
        ] {
            assert!(said.iter().any(|s| s == want), "{want} in {said:#?}");
        }
        assert!(said.iter().all(|s| !s.starts_with("delete")), "{said:#?}");
        let resumed = permissions(
            &c,
            &Needs {
                initialised: true,
                proxied: vec![Proxied {
                    namespace: "prod".into(),
                    name: "http:flagger-loadtester:80".into(),
                    verb: "create",
                    why: "to call webhook load-test".into(),
                }],
                ..Needs::default()
            },
        );
        assert!(
            resumed
                .iter()
                .all(|a| a.verb != "create" || a.subresource == "proxy")
        );
        let proxy = resumed.iter().find(|a| a.subresource == "proxy").unwrap();
        assert_eq!(
            proxy.to_string(),
            "create services/proxy \"http:flagger-loadtester:80\" in namespace prod"
        );
        // Each request is asked about once.
        let mut keys: Vec<String> = fresh.iter().map(|a| a.to_string()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), fresh.len());
    }
}
