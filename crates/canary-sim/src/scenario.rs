//! A scenario: the YAML file that seeds a simulated world (namespaces,
//! Deployments, Services, how each image version answers, the load tester,
//! the Prometheus, the traffic and the initial faults).
//!
//! Read with the spec loader's YAML reader so every error points at a file,
//! line and column; unknown fields are errors, as in Canary specs. The
//! world built from it is in [`super::world`]; [`SEED`] is the one
//! `canary demo` runs.
//!
//! ```yaml
//! seed: 7
//! namespace: prod              # the kubeconfig's default namespace
//! readinessDelay: 2s           # a new pod turns Ready after this
//! crds: [smi]                  # smi, gatewayApi, istio, flagger, keda, kuma, apisix, contour, traefik, gloo, keptn, knative
//! namespaces:
//!   - {name: prod, mesh: linkerd}
//! deployments:
//!   - name: podinfo
//!     namespace: prod
//!     image: ghcr.io/stefanprodan/podinfo:3.1.0
//!     container: podinfod
//!     replicas: 2
//!     ports: [{name: http, containerPort: 9898}]
//! behaviours:
//!   "3.1.2":
//!     successRate: 60%
//!     latency: {median: 1s, p99: 1500ms}
//!     changes: [{after: 20s, successRate: 30%}]
//!   "3.1.3": {broken: true}
//! traffic:
//!   - {service: podinfo, namespace: prod, rps: 10}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use crate::kinds::{self, CrdGroups};
use canary_core::spec::diagnostic::Diagnostic;
use canary_core::spec::source::{self, SpanIndex};

/// The scenario `canary demo` runs (podinfo in `prod` on Linkerd).
pub const SEED: &str = include_str!("seed.yaml");

/// The file name the embedded seed reports in errors.
pub const SEED_NAME: &str = "<built-in seed.yaml>";

// ---------------------------------------------------------------------------
// Value types with friendly YAML forms.
// ---------------------------------------------------------------------------

/// A duration written the Go way (`2s`, `150ms`, `1m30s`) or as a number
/// of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => parse_go_duration(&s).map(Dur).map_err(de::Error::custom),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() => Ok(Dur(Duration::from_secs_f64(f))),
                _ => Err(de::Error::custom(format!(
                    "invalid duration {n}: must not be negative"
                ))),
            },
            other => Err(de::Error::custom(format!(
                "invalid duration {other}: expected a string such as \"2s\" or \"150ms\""
            ))),
        }
    }
}

/// Parses a Go `time.Duration` string (`1m30s`, `1.5h`, `150ms`), as the
/// spec's durations are parsed.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    canary_core::spec::resolve::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration \"{s}\": {e}"))
}

/// A percentage, written `60`, `60%` or `"99.5%"`; kept as a fraction 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(Percent(p / 100.0)),
            Some(p) => Err(de::Error::custom(format!(
                "invalid percentage {p}: must be between 0 and 100"
            ))),
            None => Err(de::Error::custom(format!(
                "invalid percentage {v}: expected a number such as 99.5 or \"60%\""
            ))),
        }
    }
}

// ---------------------------------------------------------------------------
// The file's shape.
// ---------------------------------------------------------------------------

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice (pod names, request outcomes, latencies).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The default namespace of the generated kubeconfig.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a new pod takes to turn Ready.
    #[serde(default = "default_readiness_delay")]
    pub readiness_delay: Dur,
    /// How often the traffic model sends its requests.
    #[serde(default = "default_traffic_interval")]
    pub traffic_interval: Dur,
    /// Installed CRD groups: `smi`, `gatewayApi`, `istio`, `flagger`, `keda`, `contour`, `traefik`, `gloo`. When
    /// absent: SMI, Gateway API and Istio (the API server's default).
    #[serde(default)]
    pub crds: Option<Vec<CrdName>>,
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
    #[serde(default)]
    pub deployments: Vec<DeploymentSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// How each image answers, by full image (`ghcr.io/x/podinfo:3.1.2`),
    /// image name and tag (`podinfo:3.1.2`) or tag alone (`3.1.2`).
    #[serde(default)]
    pub behaviours: BTreeMap<String, BehaviourSpec>,
    /// How images without a behaviour answer.
    #[serde(default)]
    pub default_behaviour: Option<BehaviourSpec>,
    #[serde(default)]
    pub loadtester: Option<LoadTesterSpec>,
    #[serde(default)]
    pub prometheus: Option<PrometheusSpec>,
    #[serde(default)]
    pub traffic: Vec<TrafficSpec>,
    #[serde(default)]
    pub faults: FaultsSpec,
}

fn default_seed() -> u64 {
    1
}
fn default_namespace() -> String {
    "default".to_string()
}
fn default_readiness_delay() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_traffic_interval() -> Dur {
    Dur(Duration::from_millis(200))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CrdName {
    Smi,
    GatewayApi,
    Istio,
    Flagger,
    Keda,
    Kuma,
    Apisix,
    Contour,
    Traefik,
    Gloo,
    Keptn,
    Knative,
}

/// Which mesh injects the namespace's pods (decides which series the
/// traffic model records for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mesh {
    /// Annotation `linkerd.io/inject: enabled` on the namespace.
    Linkerd,
    /// Label `istio-injection: enabled` on the namespace.
    Istio,
    /// Label `kuma.io/sidecar-injection: enabled` on the namespace.
    Kuma,
    #[default]
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    pub name: String,
    #[serde(default)]
    pub mesh: Mesh,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub image: String,
    /// The container's name; the Deployment's name when absent.
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default = "one")]
    pub replicas: i32,
    /// Pod template labels and selector; `{app: NAME}` when absent.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub progress_deadline_seconds: Option<i32>,
}

fn one() -> i32 {
    1
}

/// A container port: `9898` or `{name: http, containerPort: 9898}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    pub name: Option<String>,
    pub container_port: u16,
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Full {
            #[serde(default)]
            name: Option<String>,
            container_port: u16,
        }
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .map(|p| PortSpec {
                    name: None,
                    container_port: p,
                })
                .ok_or_else(|| de::Error::custom(format!("invalid port {n}: must be 1 to 65535"))),
            v @ Value::Object(_) => {
                let f: Full = serde_json::from_value(v).map_err(de::Error::custom)?;
                Ok(PortSpec {
                    name: f.name,
                    container_port: f.container_port,
                })
            }
            other => Err(de::Error::custom(format!(
                "invalid port {other}: expected a number or {{name, containerPort}}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePortSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePortSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    /// A number or a container port name; `port` when absent.
    #[serde(default)]
    pub target_port: Option<Value>,
}

/// How one image version answers.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BehaviourSpec {
    #[serde(default)]
    pub success_rate: Option<Percent>,
    #[serde(default)]
    pub latency: Option<LatencySpec>,
    /// The status of a failed response (500 when absent).
    #[serde(default)]
    pub error_status: Option<u16>,
    /// Pods of this image never turn Ready (they crash-loop).
    #[serde(default)]
    pub broken: bool,
    /// Overrides the scenario's `readinessDelay` for this image.
    #[serde(default)]
    pub readiness_delay: Option<Dur>,
    /// Changes after the pod has been Ready for a while.
    #[serde(default)]
    pub changes: Vec<ChangeSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencySpec {
    pub median: Dur,
    /// The 99th percentile; twice the median when absent.
    #[serde(default)]
    pub p99: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeSpec {
    /// Time since the pod turned Ready.
    pub after: Dur,
    #[serde(default)]
    pub success_rate: Option<Percent>,
    #[serde(default)]
    pub latency: Option<LatencySpec>,
    #[serde(default)]
    pub error_status: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadTesterSpec {
    #[serde(default = "default_loadtester_name")]
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_loadtester_port")]
    pub port: u16,
    /// The loadtester's `-timeout` (how long a command may run).
    #[serde(default = "default_loadtester_timeout")]
    pub timeout: Dur,
    /// The loadtester's `-namespace-regexp`: payloads from other namespaces
    /// are answered 403.
    #[serde(default)]
    pub namespace_regexp: Option<String>,
    #[serde(default = "default_loadtester_image")]
    pub image: String,
}

fn default_loadtester_name() -> String {
    "flagger-loadtester".to_string()
}
fn default_loadtester_port() -> u16 {
    80
}
fn default_loadtester_timeout() -> Dur {
    Dur(Duration::from_secs(3600))
}
fn default_loadtester_image() -> String {
    "ghcr.io/fluxcd/flagger-loadtester:0.34.0".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSpec {
    #[serde(default = "default_prometheus_name")]
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_prometheus_port")]
    pub port: u16,
}

fn default_prometheus_name() -> String {
    "prometheus".to_string()
}
fn default_prometheus_port() -> u16 {
    9090
}

/// A steady stream of requests: to a Service (`service` + `namespace`) or
/// to a host name served by an Ingress, VirtualService or HTTPRoute
/// (`host`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSpec {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The Service port; its first port when absent.
    #[serde(default)]
    pub port: Option<u16>,
    pub rps: f64,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_path() -> String {
    "/".to_string()
}
fn default_method() -> String {
    "GET".to_string()
}

/// Faults switched on from the start.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultsSpec {
    /// Prometheus answers 503.
    #[serde(default)]
    pub metrics_outage: bool,
    /// Fraction of API requests that fail (a percentage).
    #[serde(default)]
    pub api_error_rate: Option<Percent>,
    /// 500 or 429.
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub api_latency: Option<Dur>,
    /// Fraction of API connections dropped unanswered (a percentage).
    #[serde(default)]
    pub api_drop_rate: Option<Percent>,
}

// ---------------------------------------------------------------------------
// Loading and checking.
// ---------------------------------------------------------------------------

/// Why a scenario could not be used: every problem, each located.
#[derive(Debug, Clone)]
pub struct ScenarioError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(d.render().trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// The built-in scenario of `canary demo`.
    pub fn seed() -> Scenario {
        Scenario::from_yaml(SEED_NAME, SEED).expect("the built-in seed scenario is valid")
    }

    /// Reads a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            diagnostics: vec![Diagnostic::file(
                &name,
                format!("failed to read the scenario: {e}"),
            )],
        })?;
        Scenario::from_yaml(&name, &text)
    }

    /// Parses and checks a scenario; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let fail = |d: Diagnostic| ScenarioError {
            diagnostics: vec![d],
        };
        let docs = source::parse_documents(text).map_err(|e| {
            let mut d = Diagnostic::at(file, text, e.span, e.message);
            if let Some(p) = e.path {
                d = d.with_path(p);
            }
            if let Some(h) = e.help {
                d = d.with_help(h);
            }
            fail(d)
        })?;
        let doc = match docs.as_slice() {
            [] => return Err(fail(Diagnostic::file(file, "the scenario is empty"))),
            [doc] => doc,
            [_, second, ..] => {
                return Err(fail(Diagnostic::at(
                    file,
                    text,
                    second.start,
                    "a scenario is one YAML document; found several",
                )));
            }
        };
        if !doc.value.is_object() {
            return Err(fail(Diagnostic::at(
                file,
                text,
                doc.start,
                "a scenario is a mapping (seed, namespaces, deployments, ...)",
            )));
        }
        let scenario: Scenario = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
            let path = render_path(e.path());
            let message = e.inner().to_string();
            let span = doc.spans.locate(&path);
            fail(Diagnostic::at(file, text, span, message).with_path(path))
        })?;
        let problems = scenario.check();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError {
                diagnostics: problems
                    .into_iter()
                    .map(|(path, msg)| locate(file, text, &doc.spans, &path, msg))
                    .collect(),
            })
        }
    }

    /// Meaning checks the types cannot express: (field path, message).
    fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut name_check = |path: String, name: &str, what: &str, dns1035: bool| {
            let ok = if dns1035 {
                kinds::is_dns1035_label(name)
            } else {
                kinds::is_dns1123_subdomain(name)
            };
            if !ok {
                out.push((
                    path,
                    format!("invalid {what} name \"{name}\": must be a lowercase DNS name"),
                ));
            }
        };
        for (i, n) in self.namespaces.iter().enumerate() {
            name_check(format!("namespaces[{i}].name"), &n.name, "namespace", false);
        }
        for (i, d) in self.deployments.iter().enumerate() {
            name_check(
                format!("deployments[{i}].name"),
                &d.name,
                "deployment",
                false,
            );
            name_check(
                format!("deployments[{i}].namespace"),
                &d.namespace,
                "namespace",
                false,
            );
        }
        for (i, s) in self.services.iter().enumerate() {
            name_check(format!("services[{i}].name"), &s.name, "service", true);
            name_check(
                format!("services[{i}].namespace"),
                &s.namespace,
                "namespace",
                false,
            );
        }
        if let Some(l) = &self.loadtester {
            name_check("loadtester.name".into(), &l.name, "service", true);
        }
        if let Some(p) = &self.prometheus {
            name_check("prometheus.name".into(), &p.name, "service", true);
        }
        for (i, d) in self.deployments.iter().enumerate() {
            if d.replicas < 0 {
                out.push((
                    format!("deployments[{i}].replicas"),
                    format!("replicas must not be negative (got {})", d.replicas),
                ));
            }
            if d.image.trim().is_empty() {
                out.push((
                    format!("deployments[{i}].image"),
                    "image must not be empty".into(),
                ));
            }
            if self.deployments[..i]
                .iter()
                .any(|o| o.name == d.name && o.namespace == d.namespace)
            {
                out.push((
                    format!("deployments[{i}].name"),
                    format!("deployment {}/{} is defined twice", d.namespace, d.name),
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.ports.is_empty() {
                out.push((
                    format!("services[{i}].ports"),
                    "a service needs at least one port".into(),
                ));
            }
        }
        for (key, b) in &self.behaviours {
            let path = format!("behaviours.{key}");
            out.extend(check_behaviour(&path, b));
        }
        if let Some(b) = &self.default_behaviour {
            out.extend(check_behaviour("defaultBehaviour", b));
        }
        for (i, t) in self.traffic.iter().enumerate() {
            let path = format!("traffic[{i}]");
            match (&t.service, &t.host) {
                (None, None) => out.push((
                    path.clone(),
                    "name a `service` or a `host` to send traffic to".into(),
                )),
                (Some(_), Some(_)) => out.push((
                    path.clone(),
                    "name either a `service` or a `host`, not both".into(),
                )),
                _ => {}
            }
            if !(t.rps.is_finite() && t.rps >= 0.0) {
                out.push((
                    format!("{path}.rps"),
                    format!("rps must be zero or more (got {})", t.rps),
                ));
            }
            if !t.path.starts_with('/') {
                out.push((
                    format!("{path}.path"),
                    format!("path must start with / (got \"{}\")", t.path),
                ));
            }
        }
        if let Some(l) = &self.loadtester
            && let Some(re) = &l.namespace_regexp
            && let Err(e) = regex::Regex::new(re)
        {
            out.push((
                "loadtester.namespaceRegexp".into(),
                format!("invalid regular expression: {e}"),
            ));
        }
        if let Some(s) = self.faults.api_error_status
            && s != 500
            && s != 429
        {
            out.push((
                "faults.apiErrorStatus".into(),
                format!("must be 500 or 429 (got {s})"),
            ));
        }
        if self.traffic_interval.0 < Duration::from_millis(10) {
            out.push(("trafficInterval".into(), "must be at least 10ms".into()));
        }
        out
    }

    /// The CRD groups to install.
    pub fn crd_groups(&self) -> CrdGroups {
        match &self.crds {
            None => CrdGroups::default(),
            Some(list) => CrdGroups {
                smi: list.contains(&CrdName::Smi),
                gateway_api: list.contains(&CrdName::GatewayApi),
                istio: list.contains(&CrdName::Istio),
                flagger: list.contains(&CrdName::Flagger),
                keda: list.contains(&CrdName::Keda),
                kuma: list.contains(&CrdName::Kuma),
                apisix: list.contains(&CrdName::Apisix),
                contour: list.contains(&CrdName::Contour),
                traefik: list.contains(&CrdName::Traefik),
                gloo: list.contains(&CrdName::Gloo),
                keptn: list.contains(&CrdName::Keptn),
                knative: list.contains(&CrdName::Knative),
            },
        }
    }

    /// The behaviour table for the traffic model and the controller.
    pub fn behaviours(&self) -> Behaviours {
        let default = self
            .default_behaviour
            .as_ref()
            .map(Behaviour::from_spec)
            .unwrap_or_default();
        Behaviours {
            rules: self
                .behaviours
                .iter()
                .map(|(k, v)| (k.clone(), Behaviour::from_spec(v)))
                .collect(),
            default,
        }
    }
}

fn check_behaviour(path: &str, b: &BehaviourSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lat = |p: &str, l: &LatencySpec, out: &mut Vec<(String, String)>| {
        if let Some(p99) = l.p99
            && p99.0 < l.median.0
        {
            out.push((
                format!("{p}.p99"),
                "p99 must not be below the median".into(),
            ));
        }
    };
    if let Some(l) = &b.latency {
        lat(&format!("{path}.latency"), l, &mut out);
    }
    let status = |p: String, s: Option<u16>, out: &mut Vec<(String, String)>| {
        if let Some(s) = s
            && !(100..=599).contains(&s)
        {
            out.push((p, format!("not an HTTP status: {s}")));
        }
    };
    status(format!("{path}.errorStatus"), b.error_status, &mut out);
    for (i, c) in b.changes.iter().enumerate() {
        if let Some(l) = &c.latency {
            lat(&format!("{path}.changes[{i}].latency"), l, &mut out);
        }
        status(
            format!("{path}.changes[{i}].errorStatus"),
            c.error_status,
            &mut out,
        );
        if i > 0 && c.after.0 < b.changes[i - 1].after.0 {
            out.push((
                format!("{path}.changes[{i}].after"),
                "changes must be in time order".into(),
            ));
        }
    }
    out
}

fn locate(file: &str, text: &str, spans: &SpanIndex, path: &str, msg: String) -> Diagnostic {
    Diagnostic::at(file, text, spans.locate(path), msg).with_path(path)
}

/// A serde_path_to_error path in the spec's notation (`a.b[2].c`).
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut p = String::new();
    for s in path.iter() {
        match s {
            Segment::Seq { index } => p = source::join_index(&p, *index),
            Segment::Map { key } => p = source::join_key(&p, key),
            Segment::Enum { variant } => p = source::join_key(&p, variant),
            Segment::Unknown => {}
        }
    }
    p
}

// ---------------------------------------------------------------------------
// Behaviours at run time.
// ---------------------------------------------------------------------------

/// How a version answers at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// Fraction of requests answered successfully.
    pub success_rate: f64,
    pub median_ms: f64,
    pub p99_ms: f64,
    /// The status of a failed request.
    pub error_status: u16,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            success_rate: 1.0,
            median_ms: 8.0,
            p99_ms: 30.0,
            error_status: 500,
        }
    }
}

/// How one image version answers, over its life.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behaviour {
    pub answer: Answer,
    /// `(time since Ready, answer from then on)`, in time order.
    pub changes: Vec<(Duration, Answer)>,
    /// Never turns Ready (crash-loops).
    pub broken: bool,
    pub readiness_delay: Option<Duration>,
}

impl Behaviour {
    pub fn from_spec(s: &BehaviourSpec) -> Self {
        let base = apply(
            Answer::default(),
            s.success_rate,
            s.latency.as_ref(),
            s.error_status,
        );
        let mut changes = Vec::new();
        let mut prev = base;
        for c in &s.changes {
            prev = apply(prev, c.success_rate, c.latency.as_ref(), c.error_status);
            changes.push((c.after.0, prev));
        }
        Behaviour {
            answer: base,
            changes,
            broken: s.broken,
            readiness_delay: s.readiness_delay.map(|d| d.0),
        }
    }

    /// The answer of a pod that has been Ready for `ready_for`.
    pub fn at(&self, ready_for: Duration) -> Answer {
        self.changes
            .iter()
            .rev()
            .find(|(after, _)| *after <= ready_for)
            .map_or(self.answer, |(_, a)| *a)
    }
}

fn apply(
    mut a: Answer,
    rate: Option<Percent>,
    latency: Option<&LatencySpec>,
    status: Option<u16>,
) -> Answer {
    if let Some(r) = rate {
        a.success_rate = r.0;
    }
    if let Some(l) = latency {
        a.median_ms = l.median.0.as_secs_f64() * 1000.0;
        a.p99_ms = l
            .p99
            .map_or(a.median_ms * 2.0, |p| p.0.as_secs_f64() * 1000.0);
    }
    if let Some(s) = status {
        a.error_status = s;
    }
    a
}

/// Behaviours by image, with a default.
#[derive(Debug, Clone, Default)]
pub struct Behaviours {
    rules: Vec<(String, Behaviour)>,
    pub default: Behaviour,
}

impl Behaviours {
    /// The behaviour of `image`: an exact rule, then `name:tag`, then the
    /// tag alone, then the default.
    pub fn for_image(&self, image: &str) -> &Behaviour {
        let last = image.rsplit('/').next().unwrap_or(image);
        let tag = last.split_once(':').map(|(_, t)| t);
        self.rules
            .iter()
            .find(|(k, _)| k == image)
            .or_else(|| self.rules.iter().find(|(k, _)| k == last))
            .or_else(|| tag.and_then(|t| self.rules.iter().find(|(k, _)| k == t)))
            .map_or(&self.default, |(_, b)| b)
    }
}

// ---------------------------------------------------------------------------
// Randomness.
// ---------------------------------------------------------------------------

/// SplitMix64: small, fast and deterministic under a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// An independent stream for one purpose, so adding draws in one part of
    /// the sim does not shift another's.
    pub fn derive(seed: u64, stream: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng::new(seed ^ h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A log-normal latency with this median and 99th percentile.
    pub fn latency_ms(&mut self, median: f64, p99: f64) -> f64 {
        if median <= 0.0 {
            return 0.0;
        }
        // z(0.99) of the standard normal.
        let sigma = if p99 > median {
            (p99 / median).ln() / 2.326_348
        } else {
            0.0
        };
        median * (sigma * self.normal()).exp()
    }

    /// `n` characters of Kubernetes' name-suffix alphabet.
    pub fn suffix(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| SAFE_ALPHABET[self.below(SAFE_ALPHABET.len())] as char)
            .collect()
    }
}

/// The alphabet Kubernetes uses for generated name suffixes and hashes (no
/// vowels, no confusable characters).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_go_duration("150ms").unwrap(),
            Duration::from_millis(150)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("2").is_err());
        assert!(parse_go_duration("2x").is_err());
        assert!(parse_go_duration("-1s").is_err());
    }

    #[test]
    fn the_seed_is_valid() {
        let s = Scenario::seed();
        assert_eq!(s.deployments[0].name, "podinfo");
        assert!(
            s.behaviours()
                .for_image("ghcr.io/stefanprodan/podinfo:3.1.2")
                .answer
                .success_rate
                < 0.9
        );
    }

    #[test]
    fn behaviours_match_image_then_name_then_tag() {
        let s = Scenario::from_yaml(
            "t.yaml",
            "behaviours:\n  \"3.1.2\": {successRate: 10}\n  \"podinfo:3.1.2\": {successRate: 20}\n  \"x/podinfo:3.1.2\": {successRate: 30}\n",
        )
        .unwrap();
        let b = s.behaviours();
        assert_eq!(b.for_image("x/podinfo:3.1.2").answer.success_rate, 0.3);
        assert_eq!(b.for_image("y/podinfo:3.1.2").answer.success_rate, 0.2);
        assert_eq!(b.for_image("y/other:3.1.2").answer.success_rate, 0.1);
        assert_eq!(b.for_image("y/other:3.1.3").answer.success_rate, 1.0);
    }

    #[test]
    fn errors_point_at_the_line() {
        let text = "seed: 1\ndeployments:\n  - name: podinfo\n    image: x:1\n    replicaz: 2\n";
        let e = Scenario::from_yaml("s.yaml", text).unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!((d.line, d.file.as_str()), (5, "s.yaml"), "{e}");
        assert!(d.message.contains("replicaz"), "{e}");

        let text = "behaviours:\n  \"3.1.2\":\n    successRate: 160\n";
        let e = Scenario::from_yaml("s.yaml", text).unwrap_err();
        assert_eq!(e.diagnostics[0].line, 3, "{e}");

        let text = "traffic:\n  - rps: 3\n";
        let e = Scenario::from_yaml("s.yaml", text).unwrap_err();
        assert_eq!(e.diagnostics[0].line, 2, "{e}");
        assert!(e.to_string().contains("s.yaml:2"), "{e}");
    }

    #[test]
    fn changes_apply_after_their_time() {
        let s = Scenario::from_yaml(
            "t.yaml",
            "behaviours:\n  \"1\":\n    successRate: 90\n    changes:\n      - {after: 20s, successRate: 60%}\n",
        )
        .unwrap();
        let b = s.behaviours();
        let b = b.for_image("x:1");
        assert_eq!(b.at(Duration::from_secs(5)).success_rate, 0.9);
        assert_eq!(b.at(Duration::from_secs(25)).success_rate, 0.6);
    }

    #[test]
    fn latency_draws_have_the_asked_median() {
        let mut r = Rng::new(3);
        let mut v: Vec<f64> = (0..20001).map(|_| r.latency_ms(100.0, 400.0)).collect();
        v.sort_by(f64::total_cmp);
        assert!((v[10000] - 100.0).abs() < 5.0, "{}", v[10000]);
        assert!((v[19800] - 400.0).abs() < 40.0, "{}", v[19800]);
    }
}
