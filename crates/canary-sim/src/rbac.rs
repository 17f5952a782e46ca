//! Authorization in the simulated API server: Kubernetes' RBAC rule
//! semantics, so a test can run `canary` under exactly the permissions an
//! `examples/rbac.yaml` grants and see what a real cluster would refuse.
//!
//! Three parts, each as the real API server has them:
//! - [`Attributes`]: what a request asks for, derived from its method and
//!   URL alone (the apiserver's `RequestInfo`): verb, API group, resource,
//!   subresource, namespace, name, or a non-resource path;
//! - [`Rules`]: PolicyRules loaded from Role / ClusterRole documents (and
//!   their bindings) and matched like the RBAC authorizer does;
//! - [`forbidden`]: the 403 `Status` a refused request gets, worded as the
//!   real server words it.
//!
//! How documents grant (kept simple, but never more permissive than a real
//! cluster):
//! - the sim has one token, which stands for every subject a binding names
//!   (subjects are not compared);
//! - when the documents hold no binding, every Role grants in its own
//!   namespace and every ClusterRole everywhere, as if each were bound to
//!   the token;
//! - when they hold bindings, only bound roles grant: a RoleBinding grants
//!   its Role, or the rules of a ClusterRole, in the binding's namespace
//!   only; a ClusterRoleBinding grants a ClusterRole everywhere.
//!
//! Discovery (`/api`, `/apis`, group and version lists, `/version`,
//! `/openapi`, health checks) stays open to the token whatever the rules, as
//! the built-in `system:discovery` and `system:public-info-viewer` roles
//! keep it open to every authenticated user; so does asking what the token
//! may do (creating a `SelfSubjectAccessReview` or
//! `SelfSubjectRulesReview`), as the built-in `system:basic-user` role
//! allows every authenticated user. [`review`] answers an access review
//! and [`rules_review`] a rules review with the same rules.

use std::fmt;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::kinds;
use crate::store::ApiError;

/// The user name refused requests are reported for, unless changed with
/// [`Rules::with_user`].
pub const DEFAULT_USER: &str = "canary";

/// Non-resource URLs every authenticated user may GET (the built-in
/// `system:discovery` and `system:public-info-viewer` ClusterRoles).
const DISCOVERY_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
];

// ---------------------------------------------------------------------------
// Request attributes.
// ---------------------------------------------------------------------------

/// What one request asks for, as the API server's authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for a non-resource URL the lowercased HTTP
    /// method (`get`, `post`, ...).
    pub verb: String,
    /// Whether the URL names an API resource; `false` for discovery and
    /// other plain paths.
    pub resource_request: bool,
    /// `""` for the core group.
    pub api_group: String,
    pub api_version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// `status`, `scale`, `proxy`... or `""`.
    pub subresource: String,
    /// `""` for cluster-scoped requests and lists across all namespaces.
    pub namespace: String,
    /// The object's name; for a list or watch narrowed to one object by
    /// `fieldSelector=metadata.name=NAME`, that name.
    pub name: String,
    /// The URL path without its query.
    pub path: String,
}

impl Attributes {
    /// Derives the attributes of a request from its method and its path
    /// with query, following the API server's `RequestInfoFactory`.
    pub fn from_request(method: &str, path_and_query: &str) -> Attributes {
        let (raw_path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let path = percent_decode(raw_path);
        let mut a = Attributes {
            verb: method.to_ascii_lowercase(),
            path: path.clone(),
            ..Attributes::default()
        };
        let parts: Vec<String> = raw_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let mut parts: &[String] = &parts;
        // `/api/v1` and `/apis/GROUP/VERSION` are discovery, not resources.
        if parts.len() < 3 || !matches!(parts[0].as_str(), "api" | "apis") {
            return a;
        }
        let grouped = parts[0] == "apis";
        parts = &parts[1..];
        if grouped {
            if parts.len() < 3 {
                return a;
            }
            a.api_group = parts[0].clone();
            parts = &parts[1..];
        }
        a.resource_request = true;
        a.api_version = parts[0].clone();
        parts = &parts[1..];

        // `/watch/...` and `/proxy/...` name their verb in the path.
        if matches!(parts[0].as_str(), "watch" | "proxy") && parts.len() >= 2 {
            a.verb = parts[0].clone();
            parts = &parts[1..];
        } else {
            a.verb = match method.to_ascii_uppercase().as_str() {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }

        // `/namespaces/NS/RESOURCE/...`; `/namespaces/NS` and its own
        // subresources (`status`, `finalize`) are the namespace object,
        // whose namespace attribute is itself.
        if parts[0] == "namespaces" && parts.len() > 1 {
            a.namespace = parts[1].clone();
            if parts.len() > 2 && !matches!(parts[2].as_str(), "status" | "finalize") {
                parts = &parts[2..];
            }
        }
        // RESOURCE/NAME/SUBRESOURCE/anything-else
        if parts.len() >= 3 && a.verb != "proxy" {
            a.subresource = parts[2].clone();
        }
        if parts.len() >= 2 {
            a.name = parts[1].clone();
        }
        a.resource = parts[0].clone();

        if a.name.is_empty() && a.verb == "get" {
            // A query string, where `+` is a space too.
            let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let param = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v);
            let watch = param("watch")
                .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
            a.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(name) = param("fieldSelector").and_then(|s| exact_name(s)) {
                a.name = name;
            }
        }
        if a.name.is_empty() && a.verb == "delete" {
            a.verb = "deletecollection".to_string();
        }
        a
    }

    /// `deployments`, or `services/proxy` with a subresource: how rules and
    /// messages name what was asked for.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.resource_request {
            return write!(f, "{} path {}", self.verb, self.path);
        }
        write!(f, "{} {}", self.verb, self.combined_resource())?;
        if !self.api_group.is_empty() {
            write!(f, " ({})", self.api_group)?;
        }
        if !self.name.is_empty() {
            write!(f, " {}", kinds::go_quote(&self.name))?;
        }
        if self.namespace.is_empty() {
            write!(f, " at the cluster scope")
        } else {
            write!(f, " in {}", self.namespace)
        }
    }
}

/// The name a field selector pins, as `fields.RequiresExactMatch` reads it.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        term.strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))
            .filter(|n| !n.is_empty() && !n.starts_with('='))
            .map(str::to_string)
    })
}

/// `%XX` escapes decoded, as Go's `URL.Path` has them (`+` stays `+`).
fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

// ---------------------------------------------------------------------------
// Rules.
// ---------------------------------------------------------------------------

/// Where a granted rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace, cluster-scoped resources and non-resource URLs.
    Cluster,
    /// Requests in this namespace only.
    Namespace(String),
}

/// One PolicyRule granted to the token, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scope: Scope,
    pub rule: PolicyRule,
    /// E.g. `Role prod/canary` or `ClusterRole view (bound in prod)`.
    pub origin: String,
}

impl Grant {
    fn applies_to(&self, a: &Attributes) -> bool {
        let in_scope = match &self.scope {
            Scope::Cluster => true,
            // A namespaced grant covers resource requests in its namespace;
            // non-resource URLs have no namespace.
            Scope::Namespace(ns) => a.resource_request && a.namespace == *ns,
        };
        in_scope && rule_allows(&self.rule, a)
    }
}

/// Why RBAC documents could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("failed to parse RBAC document {index}: {message}")]
    Parse { index: usize, message: String },
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
}

/// The permissions the sim's token holds while enforcement is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    user: String,
    grants: Vec<Grant>,
}

impl Rules {
    /// No permission beyond discovery.
    pub fn none() -> Rules {
        Rules {
            user: DEFAULT_USER.to_string(),
            grants: Vec::new(),
        }
    }

    /// Loads Role, ClusterRole, RoleBinding and ClusterRoleBinding
    /// documents from multi-document YAML; other kinds (a ServiceAccount,
    /// say) are skipped. See the module documentation for how bindings
    /// decide where rules apply.
    pub fn from_yaml(text: &str) -> Result<Rules, RbacError> {
        use serde::Deserialize;
        let mut roles: Vec<(String, String, Vec<PolicyRule>)> = Vec::new();
        let mut cluster_roles: Vec<(String, Vec<PolicyRule>)> = Vec::new();
        let mut role_bindings: Vec<RoleBinding> = Vec::new();
        let mut cluster_bindings: Vec<ClusterRoleBinding> = Vec::new();
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let parse = |message: String| RbacError::Parse { index, message };
            let value = Value::deserialize(doc).map_err(|e| parse(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap_or("").to_string();
            match kind.as_str() {
                "Role" => {
                    let r: Role =
                        serde_json::from_value(value).map_err(|e| parse(format!("Role: {e}")))?;
                    let name = r.metadata.name.clone().unwrap_or_default();
                    let ns = r
                        .metadata
                        .namespace
                        .clone()
                        .ok_or_else(|| RbacError::Invalid {
                            object: format!("Role {name}"),
                            message:
                                "metadata.namespace is required: a Role grants in its own namespace"
                                    .to_string(),
                        })?;
                    let rules = r.rules.unwrap_or_default();
                    for (i, rule) in rules.iter().enumerate() {
                        validate_rule(rule, true)
                            .map_err(|m| invalid(format!("Role {ns}/{name}"), i, m))?;
                    }
                    roles.push((ns, name, rules));
                }
                "ClusterRole" => {
                    let r: ClusterRole = serde_json::from_value(value)
                        .map_err(|e| parse(format!("ClusterRole: {e}")))?;
                    let name = r.metadata.name.clone().unwrap_or_default();
                    let rules = r.rules.unwrap_or_default();
                    for (i, rule) in rules.iter().enumerate() {
                        validate_rule(rule, false)
                            .map_err(|m| invalid(format!("ClusterRole {name}"), i, m))?;
                    }
                    cluster_roles.push((name, rules));
                }
                "RoleBinding" => role_bindings.push(
                    serde_json::from_value(value)
                        .map_err(|e| parse(format!("RoleBinding: {e}")))?,
                ),
                "ClusterRoleBinding" => cluster_bindings.push(
                    serde_json::from_value(value)
                        .map_err(|e| parse(format!("ClusterRoleBinding: {e}")))?,
                ),
                _ => {}
            }
        }

        let mut grants = Vec::new();
        let mut grant = |scope: Scope, rules: &[PolicyRule], origin: String| {
            for rule in rules {
                grants.push(Grant {
                    scope: scope.clone(),
                    rule: rule.clone(),
                    origin: origin.clone(),
                });
            }
        };
        if role_bindings.is_empty() && cluster_bindings.is_empty() {
            for (ns, name, rules) in &roles {
                grant(
                    Scope::Namespace(ns.clone()),
                    rules,
                    format!("Role {ns}/{name}"),
                );
            }
            for (name, rules) in &cluster_roles {
                grant(Scope::Cluster, rules, format!("ClusterRole {name}"));
            }
        }
        let find_cluster_role = |binding: &str, name: &str| {
            cluster_roles
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r)
                .ok_or_else(|| RbacError::Invalid {
                    object: binding.to_string(),
                    message: format!(
                        "refers to ClusterRole {name}, which the documents do not hold"
                    ),
                })
        };
        for b in &role_bindings {
            let bname = b.metadata.name.clone().unwrap_or_default();
            let ns = b
                .metadata
                .namespace
                .clone()
                .ok_or_else(|| RbacError::Invalid {
                    object: format!("RoleBinding {bname}"),
                    message: "metadata.namespace is required".to_string(),
                })?;
            let object = format!("RoleBinding {ns}/{bname}");
            let target = &b.role_ref.name;
            match b.role_ref.kind.as_str() {
                "Role" => {
                    // A RoleBinding names a Role of its own namespace.
                    let rules = roles
                        .iter()
                        .find(|(rns, n, _)| *rns == ns && n == target)
                        .map(|(_, _, r)| r)
                        .ok_or_else(|| RbacError::Invalid {
                            object: object.clone(),
                            message: format!(
                                "refers to Role {ns}/{target}, which the documents do not hold"
                            ),
                        })?;
                    grant(
                        Scope::Namespace(ns.clone()),
                        rules,
                        format!("Role {ns}/{target}"),
                    );
                }
                "ClusterRole" => {
                    let rules = find_cluster_role(&object, target)?;
                    grant(
                        Scope::Namespace(ns.clone()),
                        rules,
                        format!("ClusterRole {target} (bound in {ns})"),
                    );
                }
                other => {
                    return Err(RbacError::Invalid {
                        object,
                        message: format!("roleRef.kind must be Role or ClusterRole, not {other}"),
                    });
                }
            }
        }
        for b in &cluster_bindings {
            let bname = b.metadata.name.clone().unwrap_or_default();
            let object = format!("ClusterRoleBinding {bname}");
            if b.role_ref.kind != "ClusterRole" {
                return Err(RbacError::Invalid {
                    object,
                    message: format!("roleRef.kind must be ClusterRole, not {}", b.role_ref.kind),
                });
            }
            let target = &b.role_ref.name;
            let rules = find_cluster_role(&object, target)?;
            grant(Scope::Cluster, rules, format!("ClusterRole {target}"));
        }
        Ok(Rules {
            user: DEFAULT_USER.to_string(),
            grants,
        })
    }

    /// Reports refusals for this user name, e.g.
    /// `system:serviceaccount:prod:canary`.
    pub fn with_user(mut self, user: impl Into<String>) -> Rules {
        self.user = user.into();
        self
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether the token may do what `a` asks.
    pub fn allows(&self, a: &Attributes) -> bool {
        self.allowed_by(a).is_some()
    }

    /// What lets the token do what `a` asks: the origin of the first grant
    /// that allows it (`Role prod/canary`), or the built-in role that
    /// keeps it open to every user; `None` when nothing does.
    pub fn allowed_by(&self, a: &Attributes) -> Option<String> {
        if discovery_allows(a) {
            return Some("ClusterRole system:discovery".to_string());
        }
        if self_review_allows(a) {
            return Some("ClusterRole system:basic-user".to_string());
        }
        self.grants
            .iter()
            .find(|g| g.applies_to(a))
            .map(|g| g.origin.clone())
    }

    /// Every single permission the grants hold (one verb on one resource of
    /// one group, one name when the rule lists names; or one verb on one
    /// URL) that none of `requests` used. Wildcards count as used when
    /// anything matched them.
    ///
    /// A request is put down to the namespaced grants that allow it, and
    /// to cluster-wide grants only when no namespaced grant does: a
    /// cluster-wide permission is used only by what needs the cluster
    /// scope, not by requests a Role already covers.
    pub fn unused(&self, requests: &[Attributes]) -> Vec<Permission> {
        let all: Vec<(Permission, Grant)> = self
            .grants
            .iter()
            .flat_map(|g| {
                permissions(g).into_iter().map(|p| {
                    let narrowed = Grant {
                        scope: g.scope.clone(),
                        rule: p.rule(),
                        origin: String::new(),
                    };
                    (p, narrowed)
                })
            })
            .collect();
        let mut used = vec![false; all.len()];
        for a in requests {
            let matching = |cluster: bool| -> Vec<usize> {
                all.iter()
                    .enumerate()
                    .filter(|(_, (_, g))| (g.scope == Scope::Cluster) == cluster && g.applies_to(a))
                    .map(|(i, _)| i)
                    .collect()
            };
            let mut by = matching(false);
            if by.is_empty() {
                by = matching(true);
            }
            for i in by {
                used[i] = true;
            }
        }
        all.into_iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|((p, _), _)| p)
            .collect()
    }
}

/// One permission of a grant: one verb on one thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub origin: String,
    pub scope: Scope,
    pub verb: String,
    /// Empty for a non-resource URL.
    pub api_group: String,
    /// `deployments`, `services/proxy`, `*`; or the URL of a non-resource
    /// rule.
    pub resource: String,
    pub name: Option<String>,
    pub non_resource: bool,
}

impl Permission {
    fn rule(&self) -> PolicyRule {
        if self.non_resource {
            return PolicyRule {
                verbs: vec![self.verb.clone()],
                non_resource_urls: Some(vec![self.resource.clone()]),
                ..PolicyRule::default()
            };
        }
        PolicyRule {
            verbs: vec![self.verb.clone()],
            api_groups: Some(vec![self.api_group.clone()]),
            resources: Some(vec![self.resource.clone()]),
            resource_names: self.name.clone().map(|n| vec![n]),
            non_resource_urls: None,
        }
    }
}

impl fmt::Display for Permission {
    /// `Role prod/canary: patch deployments.apps`,
    /// `ClusterRole canary: get namespaces "linkerd"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ", self.origin, self.verb)?;
        if self.non_resource {
            return write!(f, "path {}", self.resource);
        }
        f.write_str(&self.resource)?;
        if !self.api_group.is_empty() {
            write!(f, ".{}", self.api_group)?;
        }
        if let Some(n) = &self.name {
            write!(f, " {}", kinds::go_quote(n))?;
        }
        Ok(())
    }
}

fn permissions(g: &Grant) -> Vec<Permission> {
    let r = &g.rule;
    let base =
        |verb: &str, group: &str, resource: &str, name: Option<&String>, nr: bool| Permission {
            origin: g.origin.clone(),
            scope: g.scope.clone(),
            verb: verb.to_string(),
            api_group: group.to_string(),
            resource: resource.to_string(),
            name: name.cloned(),
            non_resource: nr,
        };
    let mut out = Vec::new();
    for verb in &r.verbs {
        for url in r.non_resource_urls.iter().flatten() {
            out.push(base(verb, "", url, None, true));
        }
        for group in r.api_groups.iter().flatten() {
            for resource in r.resources.iter().flatten() {
                match r.resource_names.as_deref() {
                    Some(names) if !names.is_empty() => {
                        for n in names {
                            out.push(base(verb, group, resource, Some(n), false));
                        }
                    }
                    _ => out.push(base(verb, group, resource, None, false)),
                }
            }
        }
    }
    out
}

fn invalid(object: String, index: usize, message: String) -> RbacError {
    RbacError::Invalid {
        object,
        message: format!("rules[{index}]: {message}"),
    }
}

/// The API server's validation of a PolicyRule.
fn validate_rule(rule: &PolicyRule, namespaced: bool) -> Result<(), String> {
    let has = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if rule.verbs.is_empty() {
        return Err("verbs: Required value: verbs must contain at least one value".to_string());
    }
    if has(&rule.non_resource_urls) {
        if namespaced {
            return Err(
                "nonResourceURLs: Invalid value: namespaced rules cannot apply to non-resource URLs"
                    .to_string(),
            );
        }
        if has(&rule.api_groups) || has(&rule.resources) || has(&rule.resource_names) {
            return Err(
                "nonResourceURLs: Invalid value: rules cannot apply to both regular resources and non-resource URLs"
                    .to_string(),
            );
        }
        return Ok(());
    }
    if !has(&rule.api_groups) {
        return Err(
            "apiGroups: Required value: resource rules must supply at least one api group"
                .to_string(),
        );
    }
    if !has(&rule.resources) {
        return Err(
            "resources: Required value: resource rules must supply at least one resource"
                .to_string(),
        );
    }
    Ok(())
}

/// The RBAC authorizer's `RuleAllows`.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    let verb_ok = rule.verbs.iter().any(|v| v == "*" || *v == a.verb);
    if !verb_ok {
        return false;
    }
    if !a.resource_request {
        return rule.non_resource_urls.iter().flatten().any(|u| {
            u == "*"
                || *u == a.path
                || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
        });
    }
    let group_ok = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || *g == a.api_group);
    let combined = a.combined_resource();
    let resource_ok = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            // `*/scale` matches the scale subresource of anything.
            || (!a.subresource.is_empty()
                && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let name_ok = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&a.name),
    };
    group_ok && resource_ok && name_ok
}

fn discovery_allows(a: &Attributes) -> bool {
    !a.resource_request
        && a.verb == "get"
        && DISCOVERY_URLS.iter().any(|u| match u.strip_suffix('*') {
            Some(prefix) => a.path.starts_with(prefix),
            None => a.path == *u,
        })
}

/// Asking what one may do: `system:basic-user` grants `create` on the
/// self reviews of `authorization.k8s.io` to every authenticated user.
fn self_review_allows(a: &Attributes) -> bool {
    a.resource_request
        && a.verb == "create"
        && a.api_group == "authorization.k8s.io"
        && a.subresource.is_empty()
        && matches!(
            a.resource.as_str(),
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
}

// ---------------------------------------------------------------------------
// SelfSubjectAccessReview.
// ---------------------------------------------------------------------------

/// Answers a `SelfSubjectAccessReview` (`authorization.k8s.io/v1`) as the
/// API server does: the review comes back with its `status` filled in:
/// `allowed`, and a `reason` naming what allowed it. With no rules
/// enforced (`None`) everything is allowed. A review that asks about
/// neither `resourceAttributes` nor `nonResourceAttributes`, or about
/// both, is refused with 422 as the server refuses it.
pub fn review(rules: Option<&Rules>, body: &Value) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let a = match (resource, non_resource) {
        (Some(r), None) => Attributes {
            verb: text(r, "verb"),
            resource_request: true,
            api_group: text(r, "group"),
            api_version: text(r, "version"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
            path: String::new(),
        },
        (None, Some(n)) => Attributes {
            verb: text(n, "verb"),
            path: text(n, "path"),
            ..Attributes::default()
        },
        (Some(_), Some(_)) => {
            return Err(review_invalid(
                "spec.nonResourceAttributes: Invalid value: \"nonResourceAttributes\": \
                 cannot be specified in combination with resourceAttributes",
            ));
        }
        (None, None) => {
            return Err(review_invalid(
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of \
                 nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let status = match rules {
        None => json!({"allowed": true}),
        Some(r) => match r.allowed_by(&a) {
            Some(origin) => json!({
                "allowed": true,
                "reason": format!("RBAC: allowed by {origin}"),
            }),
            None => json!({"allowed": false}),
        },
    };
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

// ---------------------------------------------------------------------------
// SelfSubjectRulesReview.
// ---------------------------------------------------------------------------

/// Answers a `SelfSubjectRulesReview` (`authorization.k8s.io/v1`, what
/// `kubectl auth can-i --list` asks) as the API server's RBAC authorizer
/// does: every rule that applies in `spec.namespace` (the namespace's
/// Roles and the ClusterRoles bound cluster-wide or in it), with the rules
/// every user has for discovery and self reviews, and `incomplete: false`,
/// since RBAC can list all it grants. With no rules enforced (`None`) one
/// rule grants everything. A review without a namespace is refused with
/// 422 as the server refuses it.
pub fn rules_review(rules: Option<&Rules>, body: &Value) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let namespace = spec["namespace"].as_str().unwrap_or_default();
    if namespace.is_empty() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "SelfSubjectRulesReview.authorization.k8s.io \"\" is invalid: \
                      spec.namespace: Required value: no namespace on request"
                .to_string(),
            details: Some(json!({
                "group": "authorization.k8s.io",
                "kind": "SelfSubjectRulesReview",
            })),
        });
    }
    let (resource_rules, mut non_resource_rules) = match rules {
        None => (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        ),
        Some(r) => {
            let mut resource_rules = vec![json!({
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            })];
            let mut non_resource_rules = Vec::new();
            for g in &r.grants {
                let applies = match &g.scope {
                    Scope::Cluster => true,
                    Scope::Namespace(ns) => ns == namespace,
                };
                if !applies {
                    continue;
                }
                let rule = &g.rule;
                if rule
                    .non_resource_urls
                    .as_ref()
                    .is_some_and(|u| !u.is_empty())
                {
                    // Non-resource URLs are granted cluster-wide only.
                    if g.scope == Scope::Cluster {
                        non_resource_rules.push(json!({
                            "verbs": rule.verbs,
                            "nonResourceURLs": rule.non_resource_urls,
                        }));
                    }
                    continue;
                }
                let mut out = json!({
                    "verbs": rule.verbs,
                    "apiGroups": rule.api_groups.clone().unwrap_or_default(),
                    "resources": rule.resources.clone().unwrap_or_default(),
                });
                if let Some(names) = rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
                    out["resourceNames"] = json!(names);
                }
                resource_rules.push(out);
            }
            (resource_rules, non_resource_rules)
        }
    };
    if rules.is_some() {
        non_resource_rules.insert(
            0,
            json!({"verbs": ["get"], "nonResourceURLs": DISCOVERY_URLS}),
        );
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        },
    }))
}

fn review_invalid(cause: &str) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: {cause}"),
        details: Some(json!({
            "group": "authorization.k8s.io",
            "kind": "SelfSubjectAccessReview",
        })),
    }
}

// ---------------------------------------------------------------------------
// The refusal.
// ---------------------------------------------------------------------------

/// The 403 the API server answers a request the authorizer refused: its
/// message names the user, verb, resource (with subresource), group and
/// namespace or cluster scope; `details` name the object, group and
/// resource.
pub fn forbidden(user: &str, a: &Attributes) -> ApiError {
    let user = kinds::go_quote(user);
    if !a.resource_request {
        return ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "forbidden: User {user} cannot {} path {}",
                a.verb,
                kinds::go_quote(&a.path)
            ),
            details: Some(json!({})),
        };
    }
    let what = format!(
        "User {user} cannot {} resource {} in API group {}",
        a.verb,
        kinds::go_quote(&a.combined_resource()),
        kinds::go_quote(&a.api_group)
    );
    let why = if a.namespace.is_empty() {
        format!("{what} at the cluster scope")
    } else {
        format!("{what} in the namespace {}", kinds::go_quote(&a.namespace))
    };
    // The object is named by resource and group, without the subresource.
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = match (qualified.is_empty(), a.name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{qualified} is forbidden: {why}"),
        (false, false) => format!(
            "{qualified} {} is forbidden: {why}",
            kinds::go_quote(&a.name)
        ),
    };
    let mut details = serde_json::Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), json!(a.name));
    }
    if !a.api_group.is_empty() {
        details.insert("group".into(), json!(a.api_group));
    }
    if !a.resource.is_empty() {
        details.insert("kind".into(), json!(a.resource));
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Value::Object(details)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str) -> Attributes {
        Attributes::from_request(method, path)
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    #[test]
    fn verbs_follow_the_method_and_whether_a_name_is_given() {
        let cases = [
            (
                "GET",
                "/apis/apps/v1/namespaces/prod/deployments/podinfo",
                "get",
            ),
            (
                "HEAD",
                "/apis/apps/v1/namespaces/prod/deployments/podinfo",
                "get",
            ),
            ("GET", "/apis/apps/v1/namespaces/prod/deployments", "list"),
            (
                "GET",
                "/apis/apps/v1/namespaces/prod/deployments?watch=true",
                "watch",
            ),
            (
                "GET",
                "/apis/apps/v1/namespaces/prod/deployments?watch=1&rv=3",
                "watch",
            ),
            (
                "GET",
                "/apis/apps/v1/namespaces/prod/deployments?watch=false",
                "list",
            ),
            (
                "GET",
                "/apis/apps/v1/watch/namespaces/prod/deployments",
                "watch",
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/prod/deployments",
                "create",
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/prod/deployments/podinfo",
                "update",
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/prod/deployments/podinfo",
                "patch",
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/prod/deployments/podinfo",
                "delete",
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/prod/deployments",
                "deletecollection",
            ),
        ];
        for (method, path, verb) in cases {
            let a = attrs(method, path);
            assert_eq!(a.verb, verb, "{method} {path}");
            assert!(a.resource_request);
            assert_eq!(
                (
                    a.api_group.as_str(),
                    a.resource.as_str(),
                    a.namespace.as_str()
                ),
                ("apps", "deployments", "prod"),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_field_selector_on_the_name_names_the_object_of_a_list_or_watch() {
        let a = attrs(
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments?fieldSelector=metadata.name%3Dpodinfo&watch=true",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "podinfo"));
        let a = attrs(
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments?labelSelector=app%3Dx",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", ""));
    }

    #[test]
    fn subresources_namespaces_and_cluster_scope_are_told_apart() {
        let a = attrs(
            "PUT",
            "/apis/apps/v1/namespaces/prod/deployments/podinfo/scale",
        );
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("deployments", "scale")
        );
        assert_eq!(a.combined_resource(), "deployments/scale");

        let a = attrs("GET", "/api/v1/namespaces/linkerd");
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "linkerd", "linkerd")
        );
        let a = attrs("PUT", "/api/v1/namespaces/prod/status");
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("namespaces", "status", "prod")
        );

        let a = attrs(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trafficsplits.split.smi-spec.io",
        );
        assert_eq!(a.namespace, "");
        assert_eq!(a.name, "trafficsplits.split.smi-spec.io");
        assert_eq!(a.api_group, "apiextensions.k8s.io");

        let a = attrs("GET", "/apis/apps/v1/deployments?labelSelector=x");
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
    }

    #[test]
    fn a_proxied_request_takes_its_verb_from_the_method() {
        let a = attrs(
            "GET",
            "/api/v1/namespaces/linkerd-viz/services/http:prometheus:9090/proxy/api/v1/query?query=up",
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.combined_resource().as_str(),
                a.name.as_str()
            ),
            ("get", "services/proxy", "http:prometheus:9090")
        );
        let a = attrs(
            "POST",
            "/api/v1/namespaces/prod/services/http:flagger-loadtester:80/proxy/",
        );
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("create", "prod"));
        // The older form names the verb in the path.
        let a = attrs("GET", "/api/v1/proxy/namespaces/prod/services/web/healthz");
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
            ("proxy", "services", "")
        );
    }

    #[test]
    fn discovery_paths_are_not_resource_requests() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3",
        ] {
            let a = attrs("GET", p);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
            assert!(Rules::none().allows(&a), "{p}");
        }
        assert!(!Rules::none().allows(&attrs("POST", "/apis")));
        assert!(!Rules::none().allows(&attrs("GET", "/metrics")));
    }

    #[test]
    fn rules_match_groups_resources_verbs_and_names_with_wildcards() {
        let a = attrs(
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/podinfo-primary",
        );
        assert!(rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &[]),
            &a
        ));
        assert!(rule_allows(&rule(&["*"], &["*"], &["*"], &[]), &a));
        assert!(rule_allows(
            &rule(
                &["patch"],
                &["apps"],
                &["deployments"],
                &["podinfo-primary"]
            ),
            &a
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &["other"]),
            &a
        ));
        assert!(!rule_allows(
            &rule(&["get"], &["apps"], &["deployments"], &[]),
            &a
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &[""], &["deployments"], &[]),
            &a
        ));
        // A resource rule does not cover its subresources, and back.
        let scale = attrs(
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/podinfo/scale",
        );
        assert!(!rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &[]),
            &scale
        ));
        assert!(rule_allows(
            &rule(&["patch"], &["apps"], &["deployments/scale"], &[]),
            &scale
        ));
        assert!(rule_allows(
            &rule(&["patch"], &["apps"], &["*/scale"], &[]),
            &scale
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &["apps"], &["deployments/*"], &[]),
            &scale
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &["apps"], &["deployments/scale"], &[]),
            &a
        ));
        // resourceNames cannot narrow a create (it has no name yet).
        let create = attrs("POST", "/apis/apps/v1/namespaces/prod/deployments");
        assert!(!rule_allows(
            &rule(&["create"], &["apps"], &["deployments"], &["x"]),
            &create
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let r = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/metrics".into(), "/logs/*".into()]),
            ..PolicyRule::default()
        };
        assert!(rule_allows(&r, &attrs("GET", "/metrics")));
        assert!(rule_allows(&r, &attrs("GET", "/logs/kube-apiserver.log")));
        assert!(!rule_allows(&r, &attrs("GET", "/metrics/x")));
        assert!(!rule_allows(&r, &attrs("POST", "/metrics")));
    }

    const DOCS: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: canary, namespace: prod}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: canary, namespace: prod}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: canary, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: canary}
subjects: [{kind: ServiceAccount, name: canary, namespace: prod}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secrets-reader}
rules:
  - apiGroups: ['']
    resources: [secrets]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: secrets, namespace: staging}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secrets-reader}
subjects: [{kind: ServiceAccount, name: canary, namespace: prod}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: unbound}
rules:
  - apiGroups: ['*']
    resources: ['*']
    verbs: ['*']
";

    #[test]
    fn bindings_decide_where_rules_apply() {
        let rules = Rules::from_yaml(DOCS).unwrap();
        let ok = |m: &str, p: &str| rules.allows(&attrs(m, p));
        assert!(ok(
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments/podinfo"
        ));
        assert!(!ok(
            "GET",
            "/apis/apps/v1/namespaces/staging/deployments/podinfo"
        ));
        assert!(!ok("GET", "/apis/apps/v1/deployments"));
        // A ClusterRole bound by a RoleBinding grants in that namespace only.
        assert!(ok("GET", "/api/v1/namespaces/staging/secrets/s"));
        assert!(!ok("GET", "/api/v1/namespaces/prod/secrets/s"));
        // An unbound role grants nothing.
        assert!(!ok("DELETE", "/api/v1/namespaces/prod/pods/x"));
        assert_eq!(rules.grants().len(), 2);
    }

    #[test]
    fn without_bindings_roles_grant_in_their_namespace_and_cluster_roles_everywhere() {
        let rules = Rules::from_yaml(
            "kind: Role
metadata: {name: r, namespace: prod}
rules: [{apiGroups: [''], resources: [services], verbs: [get]}]
---
kind: ClusterRole
metadata: {name: c}
rules:
  - {apiGroups: [apps], resources: [deployments], verbs: [list]}
  - {nonResourceURLs: [/metrics], verbs: [get]}
",
        )
        .unwrap();
        assert!(rules.allows(&attrs("GET", "/api/v1/namespaces/prod/services/a")));
        assert!(!rules.allows(&attrs("GET", "/api/v1/namespaces/test/services/a")));
        assert!(rules.allows(&attrs("GET", "/apis/apps/v1/deployments")));
        assert!(rules.allows(&attrs("GET", "/apis/apps/v1/namespaces/test/deployments")));
        assert!(rules.allows(&attrs("GET", "/metrics")));
    }

    #[test]
    fn a_self_review_is_answered_with_the_rules_and_open_to_everyone() {
        let rules = Rules::from_yaml(
            "kind: Role
metadata: {name: r, namespace: prod}
rules:
  - {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
  - {apiGroups: [''], resources: [services/proxy], resourceNames: ['http:hook:80'], verbs: [create]}
",
        )
        .unwrap();
        assert!(rules.allows(&attrs(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        )));
        let ask = |ns: &str, verb: &str, group: &str, resource: &str, sub: &str, name: &str| {
            review(
                Some(&rules),
                &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group,
                        "resource": resource, "subresource": sub, "name": name}}}),
            )
            .unwrap()["status"]
                .clone()
        };
        let yes = ask("prod", "patch", "apps", "deployments", "", "podinfo");
        assert_eq!(yes["allowed"], true);
        assert_eq!(yes["reason"], "RBAC: allowed by Role prod/r");
        assert_eq!(
            ask("prod", "create", "apps", "deployments", "", "")["allowed"],
            false
        );
        assert_eq!(
            ask("test", "get", "apps", "deployments", "", "podinfo")["allowed"],
            false
        );
        assert_eq!(
            ask("prod", "create", "", "services", "proxy", "http:hook:80")["allowed"],
            true
        );
        assert_eq!(
            ask("prod", "create", "", "services", "proxy", "http:other:80")["allowed"],
            false
        );
        // With no rules enforced, everything is allowed.
        let open = review(
            None,
            &json!({"spec": {"resourceAttributes": {"verb": "delete", "resource": "pods"}}}),
        )
        .unwrap();
        assert_eq!(open["status"], json!({"allowed": true}));
        assert_eq!(open["kind"], "SelfSubjectAccessReview");
        // Exactly one kind of attributes.
        let e = review(Some(&rules), &json!({"spec": {}})).unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let e = review(
            Some(&rules),
            &json!({"spec": {"resourceAttributes": {}, "nonResourceAttributes": {}}}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("cannot be specified in combination"),
            "{}",
            e.message
        );
        let path = review(
            Some(&rules),
            &json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/version"}}}),
        )
        .unwrap();
        assert_eq!(path["status"]["allowed"], true);
    }

    #[test]
    fn a_rules_review_lists_the_rules_that_apply_in_the_namespace() {
        let rules = Rules::from_yaml(
            "kind: Role
metadata: {name: r, namespace: prod}
rules:
  - {apiGroups: [apps], resources: [deployments], resourceNames: [podinfo], verbs: [get, patch]}
---
kind: Role
metadata: {name: t, namespace: test}
rules:
  - {apiGroups: [''], resources: [pods], verbs: [list]}
---
kind: ClusterRole
metadata: {name: c}
rules:
  - {apiGroups: [''], resources: [namespaces], verbs: [get]}
  - {nonResourceURLs: [/metrics], verbs: [get]}
",
        )
        .unwrap();
        let status =
            rules_review(Some(&rules), &json!({"spec": {"namespace": "prod"}})).unwrap()["status"]
                .clone();
        assert_eq!(status["incomplete"], false);
        let resource = status["resourceRules"].as_array().unwrap();
        assert!(
            resource.contains(&json!({"verbs": ["get", "patch"], "apiGroups": ["apps"],
            "resources": ["deployments"], "resourceNames": ["podinfo"]}))
        );
        assert!(
            resource.contains(
                &json!({"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"]})
            )
        );
        // Another namespace's Role does not apply.
        assert!(!resource.iter().any(|r| r["resources"] == json!(["pods"])));
        assert!(
            resource
                .iter()
                .any(|r| r["resources"][0] == "selfsubjectaccessreviews")
        );
        let urls = status["nonResourceRules"].as_array().unwrap();
        assert!(urls.contains(&json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})));
        // Every rule it lists is one the access review allows, and no more.
        for (verb, resource, name, allowed) in [
            ("get", "deployments", "podinfo", true),
            ("patch", "deployments", "other", false),
            ("list", "pods", "", false),
        ] {
            let group = if resource == "deployments" {
                "apps"
            } else {
                ""
            };
            let asked = review(
                Some(&rules),
                &json!({"spec": {"resourceAttributes": {"namespace": "prod", "verb": verb,
                    "group": group, "resource": resource, "name": name}}}),
            )
            .unwrap();
            assert_eq!(
                asked["status"]["allowed"], allowed,
                "{verb} {resource} {name}"
            );
        }
        let e = rules_review(Some(&rules), &json!({"spec": {}})).unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let open = rules_review(None, &json!({"spec": {"namespace": "prod"}})).unwrap();
        assert_eq!(open["status"]["resourceRules"][0]["verbs"], json!(["*"]));
    }

    #[test]
    fn invalid_rules_and_dangling_references_are_refused() {
        let e = Rules::from_yaml(
            "kind: Role
metadata: {name: r, namespace: prod}
rules: [{nonResourceURLs: [/metrics], verbs: [get]}]",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("namespaced rules cannot apply to non-resource URLs"),
            "{e}"
        );
        let e = Rules::from_yaml(
            "kind: ClusterRole
metadata: {name: c}
rules: [{resources: [pods], verbs: [get]}]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one api group"), "{e}");
        let e = Rules::from_yaml(
            "kind: RoleBinding
metadata: {name: b, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: missing}",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "RoleBinding prod/b: refers to Role prod/missing, which the documents do not hold"
        );
    }

    #[test]
    fn unused_permissions_are_listed_one_verb_and_name_at_a_time() {
        let rules = Rules::from_yaml(DOCS).unwrap();
        let used = [attrs(
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments/podinfo",
        )];
        let unused: Vec<String> = rules.unused(&used).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            unused,
            [
                "Role prod/canary: patch deployments.apps",
                "ClusterRole secrets-reader (bound in staging): get secrets",
            ]
        );
    }

    #[test]
    fn a_cluster_wide_permission_is_used_only_where_no_role_covers_the_request() {
        let rules = Rules::from_yaml(
            "kind: Role
metadata: {name: r, namespace: prod}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [list, watch]}]
---
kind: ClusterRole
metadata: {name: c}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [list, watch]}]
",
        )
        .unwrap();
        let used = [
            attrs("GET", "/apis/apps/v1/namespaces/prod/deployments?watch=1"),
            attrs("GET", "/apis/apps/v1/namespaces/prod/deployments"),
            attrs("GET", "/apis/apps/v1/deployments"),
        ];
        let unused: Vec<String> = rules.unused(&used).iter().map(|p| p.to_string()).collect();
        assert_eq!(unused, ["ClusterRole c: watch deployments.apps"]);
    }

    #[test]
    fn the_refusal_is_worded_as_the_api_server_words_it() {
        let e = forbidden(
            "canary",
            &attrs(
                "PATCH",
                "/apis/apps/v1/namespaces/test/deployments/podinfo-primary",
            ),
        );
        assert_eq!(
            e.status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"podinfo-primary\" is forbidden: User \"canary\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"test\"",
                "reason": "Forbidden",
                "details": {"name": "podinfo-primary", "group": "apps", "kind": "deployments"},
                "code": 403})
        );
        let e = forbidden("canary", &attrs("GET", "/apis/apps/v1/deployments"));
        assert_eq!(
            e.message,
            "deployments.apps is forbidden: User \"canary\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        let e = forbidden(
            "canary",
            &attrs(
                "GET",
                "/api/v1/namespaces/linkerd-viz/services/http:prometheus:9090/proxy/api/v1/query",
            ),
        );
        assert_eq!(
            e.message,
            "services \"http:prometheus:9090\" is forbidden: User \"canary\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"linkerd-viz\""
        );
        assert_eq!(
            e.details,
            Some(json!({"name": "http:prometheus:9090", "kind": "services"}))
        );
        let e = forbidden("canary", &attrs("GET", "/api/v1/namespaces/istio-system"));
        assert_eq!(
            e.message,
            "namespaces \"istio-system\" is forbidden: User \"canary\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"istio-system\""
        );
        let e = forbidden("canary", &attrs("POST", "/logs"));
        assert_eq!(
            e.message,
            "forbidden: User \"canary\" cannot post path \"/logs\""
        );
        assert_eq!(e.details, Some(json!({})));
    }
}
