//! Sending alerts: where each canary's alerts go, and posting them.
//!
//! What is alerted, with which text and severity, and the JSON each
//! provider type is sent, are decided in [`canary_core::alerts`]; this
//! module finds the addresses and sends.
//!
//! - [`Targets::resolve`]: a canary's `analysis.alerts`, each with its
//!   AlertProvider (from the spec files, else the cluster) and the
//!   provider's Secret (likewise): the `address` key overrides
//!   `spec.address`, the `proxy` key `spec.proxy`. Every address and proxy
//!   read is taught to the redactor. A canary without `analysis.alerts`
//!   uses the run's global notifier (`--slack-url`, `--msteams-url`), as
//!   Flagger does.
//! - [`Alerter`]: posts a round's alerts without holding up the driver:
//!   each post is a task of its own with a time limit of 5 s, and what
//!   failed comes back as a warning at the next round, or when the run
//!   ends (which waits for the posts still under way, within that limit).
//!   An alert that cannot be delivered never fails a check or changes the
//!   exit code.
//!
//! Addresses are never shown: a warning names the alert and its
//! AlertProvider, not the URL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use http::header::{CONTENT_TYPE, HeaderValue};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::cluster::connect::Connection;
use crate::cluster::error::{ClusterError, Result};
use crate::cluster::preflight::{Read, read_flagger};
use crate::cluster::proxy::{HttpEdge, HttpRequest};
use canary_core::alerts::{self as core, Alert, AlertSeverity, Sender};
use canary_core::engine::Message;
use canary_core::engine::state::Phase;
use canary_core::spec::SpecFile;
use canary_core::spec::resolve::ResolvedCanary;
use canary_core::spec::types::AlertProvider;

/// How long one alert may take to be delivered.
pub(crate) const ALERT_TIMEOUT: Duration = Duration::from_secs(5);

/// One place alerts go.
#[derive(Clone)]
pub(crate) struct Target {
    /// How it is named in warnings: `NAME (AlertProvider NS/NAME,
    /// slack)`, or `the global Slack notifier`.
    pub label: String,
    /// The least severity sent.
    pub severity: AlertSeverity,
    /// The provider type: `slack`, `msteams`, ...
    pub kind: String,
    url: String,
    proxy: Option<String>,
    sender: Sender,
    /// `--cluster-name`: attached to every alert as its first field.
    cluster: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("severity", &self.severity)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The run's global notifier (Flagger's `-slack-url`, `-msteams-url`):
/// the alerts of every canary that has no `analysis.alerts`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Global {
    target: Option<Target>,
    /// `--cluster-name`, for every alert of the run.
    cluster: Option<String>,
}

impl Global {
    /// From the flags: Microsoft Teams when its URL is given, else Slack
    /// when its URL is, else none. The URLs are taught to the redactor;
    /// an invalid one is an error that does not repeat it.
    pub(crate) fn from_args(a: &crate::cli::AlertArgs) -> std::result::Result<Global, String> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let cluster = given(&a.cluster_name);
        let (kind, flag, url, proxy, label) = match (given(&a.msteams_url), given(&a.slack_url)) {
            (Some(u), _) => (
                "msteams",
                "--msteams-url",
                u,
                given(&a.msteams_proxy_url),
                "the global Microsoft Teams notifier",
            ),
            (None, Some(u)) => (
                "slack",
                "--slack-url",
                u,
                given(&a.slack_proxy_url),
                "the global Slack notifier",
            ),
            (None, None) => {
                return Ok(Global {
                    target: None,
                    cluster,
                });
            }
        };
        learn_address(&url);
        if let Some(p) = &proxy {
            learn_address(p);
        }
        canary_core::spec::validate::check_url(&url)
            .map_err(|why| format!("{flag} is not a valid URL: {why}"))?;
        if let Some(p) = &proxy {
            canary_core::spec::validate::check_url(p)
                .map_err(|why| format!("the proxy URL of {flag} is not valid: {why}"))?;
        }
        Ok(Global {
            target: Some(Target {
                label: label.to_string(),
                severity: AlertSeverity::Info,
                kind: kind.to_string(),
                url,
                proxy,
                sender: Sender::new(a.slack_channel.as_deref(), a.slack_user.as_deref()),
                cluster: cluster.clone(),
            }),
            cluster,
        })
    }
}

/// Teaches the redactor an alert address: the whole URL, its path (a
/// chat webhook's secret is its path) and its credentials.
pub(crate) fn learn_address(url: &str) {
    let r = crate::secrets::redactor();
    r.learn(url);
    r.learn_url(url);
    if let Ok(u) = reqwest::Url::parse(url) {
        let path = u.path().trim_matches('/');
        if path.len() >= 12 {
            r.learn(path);
        }
    }
}

/// The places a canary's alerts go.
#[derive(Clone, Debug, Default)]
pub(crate) struct Targets(pub Vec<Target>);

impl Targets {
    /// Where the alerts of canary `c` (of `file`) go: its
    /// `analysis.alerts`, or else the global notifier. An entry whose
    /// AlertProvider or Secret cannot be found is left out (the preflight
    /// refuses such a spec before a run).
    pub(crate) async fn resolve(
        conn: &Connection,
        file: &SpecFile,
        c: &ResolvedCanary,
        global: &Global,
    ) -> Result<Targets> {
        if c.alerts.is_empty() {
            return Ok(Targets(global.target.iter().cloned().collect()));
        }
        let mut out = Vec::new();
        for a in &c.alerts {
            let ns = a.provider_namespace.as_str();
            let provider = match file
                .alert_providers
                .iter()
                .find(|p| p.value.name() == a.provider && p.value.namespace() == ns)
            {
                Some(p) => p.value.clone(),
                None => match read_flagger::<AlertProvider>(
                    &conn.client,
                    ns,
                    ("AlertProvider", "alertproviders"),
                    &a.provider,
                )
                .await?
                {
                    Read::Found(p) => p,
                    Read::Missing | Read::Forbidden(_) => continue,
                },
            };
            let spec = provider.spec.unwrap_or_default();
            let kind = spec.r#type.clone().unwrap_or_default();
            let mut url = spec.address.clone().filter(|s| !s.is_empty());
            let mut proxy = spec.proxy.clone().filter(|s| !s.is_empty());
            if let Some(secret) = spec.secret_ref.as_ref().and_then(|s| s.name.clone()) {
                let Some(data) = secret_data(conn, file, ns, &secret).await? else {
                    continue;
                };
                if let Some(v) = data.iter().find(|(k, _)| k == "address") {
                    url = Some(v.1.clone());
                }
                if let Some(v) = data.iter().find(|(k, _)| k == "proxy") {
                    proxy = Some(v.1.clone());
                }
            }
            let Some(url) = url else { continue };
            learn_address(&url);
            if let Some(p) = &proxy {
                learn_address(p);
            }
            out.push(Target {
                label: format!("{} (AlertProvider {ns}/{}, {kind})", a.name, a.provider),
                severity: a.severity,
                url: core::endpoint(&kind, &url),
                kind,
                proxy,
                sender: Sender::new(spec.channel.as_deref(), spec.username.as_deref()),
                cluster: global.cluster.clone(),
            });
        }
        Ok(Targets(out))
    }
}

/// The string values of Secret `ns/name`, from the spec files if one of
/// them holds it, else from the cluster; `None` when it is nowhere.
async fn secret_data(
    conn: &Connection,
    file: &SpecFile,
    ns: &str,
    name: &str,
) -> Result<Option<Vec<(String, String)>>> {
    let secret = match file_secret(file, ns, name) {
        Some(s) => s,
        None => {
            let api: Api<Secret> = Api::namespaced(conn.client.clone(), ns);
            match api.get_opt(name).await {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return match ClusterError::api("read", format!("secret/{name} in {ns}"), e) {
                        ClusterError::Forbidden { .. } | ClusterError::NotFound { .. } => Ok(None),
                        other => Err(other),
                    };
                }
            }
        }
    };
    Ok(Some(secret_strings(&secret)))
}

/// The Secret documents of `file` (`kind: Secret`, `apiVersion: v1`),
/// kept next to the Canary, its AlertProviders and MetricTemplates.
pub(crate) fn file_secrets(file: &SpecFile) -> impl Iterator<Item = Secret> + '_ {
    file.others
        .iter()
        .filter(|o| o.kind == "Secret" && o.api_version == "v1")
        .filter_map(|o| serde_json::from_value::<Secret>(o.value.clone()).ok())
}

/// Whether `s` is the Secret `ns/name`: one without a namespace is in the
/// namespace it is applied to.
pub(crate) fn is_secret(s: &Secret, ns: &str, name: &str) -> bool {
    s.metadata.name.as_deref() == Some(name)
        && s.metadata.namespace.as_deref().is_none_or(|n| n == ns)
}

/// The Secret document of `file` named `ns/name`.
pub(crate) fn file_secret(file: &SpecFile, ns: &str, name: &str) -> Option<Secret> {
    file_secrets(file).find(|s| is_secret(s, ns, name))
}

/// Every value of `s` as text, `data` decoded and `stringData` as is.
pub(crate) fn secret_strings(s: &Secret) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    out.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

/// A post under way: what it is, and its task.
type Pending = (
    String,
    tokio::task::JoinHandle<std::result::Result<(), String>>,
);

/// Posts a canary's alerts in the background.
pub(crate) struct Alerter {
    targets: Vec<Target>,
    edge: Arc<HttpEdge>,
    pending: Mutex<Vec<Pending>>,
}

impl Alerter {
    pub(crate) fn new(targets: Targets, edge: Arc<HttpEdge>) -> Alerter {
        Alerter {
            targets: targets.0,
            edge,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Starts posting the alerts of a round of `c` that started in phase
    /// `before` and whose messages were `messages`, each to the targets
    /// whose severity takes it.
    pub(crate) fn send(&self, c: &ResolvedCanary, before: Phase, messages: &[Message]) {
        if self.targets.is_empty() {
            return;
        }
        for alert in core::alerts_for(c, before, messages) {
            for t in self
                .targets
                .iter()
                .filter(|t| t.severity.receives(alert.severity))
            {
                self.post(c, t, &alert);
            }
        }
    }

    fn post(&self, c: &ResolvedCanary, t: &Target, alert: &Alert) {
        let what = format!("\"{}\" to {}", alert.message, t.label);
        let with_cluster;
        let alert = match &t.cluster {
            Some(name) => {
                with_cluster = core::with_cluster(alert, name);
                &with_cluster
            }
            None => alert,
        };
        let Some(body) = core::payload(&t.kind, &t.sender, &c.name, &c.namespace, alert) else {
            return;
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let (edge, t) = (self.edge.clone(), t.clone());
        let task = tokio::spawn(async move { deliver(&edge, &t, body).await });
        if let Ok(mut p) = self.pending.lock() {
            p.push((what, task));
        }
    }

    /// The warnings of the posts that have finished since last asked.
    pub(crate) async fn finished(&self) -> Vec<String> {
        let done: Vec<Pending> = match self.pending.lock() {
            Ok(mut p) => {
                let (done, rest) = p.drain(..).partition(|(_, t)| t.is_finished());
                *p = rest;
                done
            }
            Err(_) => Vec::new(),
        };
        let mut out = Vec::new();
        for (what, task) in done {
            if let Some(w) = warning(&what, task.await) {
                out.push(w);
            }
        }
        out
    }

    /// Waits for every post under way (each ends within its own time
    /// limit) and returns the warnings of those that failed.
    pub(crate) async fn flush(&self) -> Vec<String> {
        let all: Vec<Pending> = match self.pending.lock() {
            Ok(mut p) => p.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let mut out = Vec::new();
        for (what, task) in all {
            let r = tokio::time::timeout(ALERT_TIMEOUT + Duration::from_secs(1), task).await;
            let r = match r {
                Ok(joined) => joined,
                Err(_) => Ok(Err(format!(
                    "no answer within {}s",
                    ALERT_TIMEOUT.as_secs()
                ))),
            };
            if let Some(w) = warning(&what, r) {
                out.push(w);
            }
        }
        out
    }
}

fn warning(
    what: &str,
    r: std::result::Result<std::result::Result<(), String>, tokio::task::JoinError>,
) -> Option<String> {
    let why = match r {
        Ok(Ok(())) => return None,
        Ok(Err(why)) => why,
        Err(e) => e.to_string(),
    };
    Some(format!("alert {what} could not be delivered: {why}"))
}

/// Posts `body` to `t`, within [`ALERT_TIMEOUT`]; any 2xx answer is
/// delivered. The error never names the address.
async fn deliver(edge: &HttpEdge, t: &Target, body: Vec<u8>) -> std::result::Result<(), String> {
    let json = HeaderValue::from_static("application/json");
    let status_and_body = match &t.proxy {
        Some(proxy) => {
            let client = reqwest::Client::builder()
                .proxy(reqwest::Proxy::all(proxy).map_err(|_| "invalid proxy URL".to_string())?)
                .timeout(ALERT_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())?;
            let r = client
                .post(&t.url)
                .header(CONTENT_TYPE, json)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        format!("no answer within {}s", ALERT_TIMEOUT.as_secs())
                    } else {
                        "could not connect through the proxy".to_string()
                    }
                })?;
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        None => {
            let mut req = HttpRequest::new(Method::POST, &t.url, ALERT_TIMEOUT);
            req.headers.insert(CONTENT_TYPE, json);
            req.body = Some(body);
            match edge.send(req).await {
                Ok(reply) => (reply.status, reply.body),
                Err(e) if e.is_timeout() => {
                    return Err(format!("no answer within {}s", ALERT_TIMEOUT.as_secs()));
                }
                Err(e) => return Err(crate::secrets::redact(&e.to_string()).into_owned()),
            }
        }
    };
    let (status, body) = status_and_body;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let excerpt = crate::cluster::proxy::excerpt(&body, 120);
        Err(if excerpt.is_empty() {
            format!("the service answered {status}")
        } else {
            format!("the service answered {status}: {excerpt}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::AlertArgs;

    #[test]
    fn the_teams_url_takes_the_place_of_the_slack_one() {
        let args = AlertArgs {
            slack_url: Some("https://hooks.slack.example/services/T1/B1/slack-secret-1".into()),
            msteams_url: Some("https://teams.example/webhook/teams-secret-12".into()),
            ..AlertArgs::default()
        };
        let t = Global::from_args(&args).unwrap().target.unwrap();
        assert_eq!(t.kind, "msteams");
        assert_eq!(t.severity, AlertSeverity::Info);
        let slack_only = AlertArgs {
            slack_url: args.slack_url.clone(),
            slack_channel: Some("ops".into()),
            ..AlertArgs::default()
        };
        let t = Global::from_args(&slack_only).unwrap().target.unwrap();
        assert_eq!(
            (t.kind.as_str(), t.sender.channel.as_str()),
            ("slack", "ops")
        );
        assert_eq!(t.sender.username, "flagger");
        assert!(
            Global::from_args(&AlertArgs::default())
                .unwrap()
                .target
                .is_none()
        );
    }

    #[test]
    fn a_bad_global_url_is_refused_without_repeating_it() {
        let args = AlertArgs {
            slack_url: Some("hooks.slack.example/services/very-secret-path".into()),
            ..AlertArgs::default()
        };
        let err = Global::from_args(&args).unwrap_err();
        assert!(err.starts_with("--slack-url is not a valid URL"), "{err}");
        assert!(!err.contains("very-secret-path"), "{err}");
        // And it is masked anywhere it would be shown.
        assert_eq!(
            crate::secrets::redact("x hooks.slack.example/services/very-secret-path y"),
            "x *** y"
        );
    }

    #[test]
    fn a_secret_in_the_spec_file_is_found_by_namespace_and_name() {
        let file = canary_core::spec::load_str(
            "s.yaml",
            "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\n\
             metadata: {name: chat, namespace: prod}\nspec: {type: slack, secretRef: {name: url}}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {name: url, namespace: prod}\n\
             data: {address: aHR0cHM6Ly9leGFtcGxlLmNvbS9ob29r}\nstringData: {proxy: 'http://p:3128'}\n",
        )
        .unwrap();
        let s = file_secret(&file, "prod", "url").unwrap();
        let values = secret_strings(&s);
        assert!(values.contains(&("address".into(), "https://example.com/hook".into())));
        assert!(values.contains(&("proxy".into(), "http://p:3128".into())));
        assert!(file_secret(&file, "other", "url").is_none());
    }
}
