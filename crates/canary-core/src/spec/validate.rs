//! Flagger's semantic rules, checked on typed documents, each problem tied
//! to the field path (and so the line) that caused it.

use super::resolve::{HookType, matches_flagger_pattern, parse_duration};
use super::source::Span;
use super::types::{
    ALERT_PROVIDERS, ALERT_SEVERITIES, AUTOSCALER_KINDS, AlertProvider, BUILTIN_METRICS, Canary,
    CanaryAnalysis, INGRESS_KINDS, MetricTemplate, ROUTE_KINDS, TARGET_KINDS, UPSTREAM_KINDS,
    WEBHOOK_TYPES,
};
use super::{Diagnostic, Doc, SpecFile, elide};
use crate::provider::{MetricProvider, Provider};
use crate::queries::template;
use crate::suggest::did_you_mean;

/// Every semantic problem of a file.
pub fn file(file: &SpecFile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for doc in &file.canaries {
        let mut c = Checker::new(file, doc);
        canary(&mut c, file);
        out.extend(c.out);
    }
    for doc in &file.metric_templates {
        let mut c = Checker::new(file, doc);
        metric_template(&mut c);
        out.extend(c.out);
    }
    for doc in &file.alert_providers {
        let mut c = Checker::new(file, doc);
        alert_provider(&mut c);
        out.extend(c.out);
    }
    out
}

/// Canaries that more than one document names, across every file of one
/// command: one process would drive the same canary (or the same target)
/// twice, each driver undoing the other's steps. Each repeat is reported
/// where it is, naming where the canary was first seen.
///
/// A canary that names no namespace is in `default_namespace` (the one
/// `run` takes from `-n` or the context); while that is not known, such
/// canaries are compared with each other only.
///
/// With `same_target`, two canaries of one target are refused too: `run`
/// would drive that target twice. Files checked side by side (`plan`
/// of one of several alternatives) may well share a target.
pub fn duplicates(
    files: &[&SpecFile],
    default_namespace: Option<&str>,
    same_target: bool,
) -> Vec<Diagnostic> {
    use std::collections::HashMap;
    type Ns = Option<String>;
    let mut canaries: HashMap<(Ns, String), String> = HashMap::new();
    let mut targets: HashMap<(Ns, String, String), (String, String)> = HashMap::new();
    let id = |name: &str, ns: &Ns| match ns {
        Some(ns) => format!("{}.{}", elide(name), elide(ns)),
        None => elide(name),
    };
    let mut out = Vec::new();
    for file in files {
        for doc in &file.canaries {
            let c = &doc.value;
            let ns: Ns = c
                .explicit_namespace()
                .or(default_namespace)
                .map(str::to_string);
            let name = c.name().to_string();
            let here = file.diagnostic_at(doc, "metadata.name", "");
            let place = here.location();
            if let Some(first) = canaries.get(&(ns.clone(), name.clone())) {
                out.push(
                    file.diagnostic_at(
                        doc,
                        "metadata.name",
                        &format!(
                            "canary `{}` is defined twice; it is also at {first}",
                            id(&name, &ns)
                        ),
                    )
                    .with_help("one canary is driven by one spec: keep one of the two documents"),
                );
                continue;
            }
            canaries.insert((ns.clone(), name.clone()), place.clone());
            if !same_target {
                continue;
            }
            let Some(t) = c.spec.as_ref().and_then(|s| s.target_ref.as_ref()) else {
                continue;
            };
            let (kind, target) = (
                t.kind.clone().unwrap_or_default(),
                t.name.clone().unwrap_or_default(),
            );
            if target.is_empty() {
                continue;
            }
            let key = (ns.clone(), kind.clone(), target.clone());
            if let Some((other, first)) = targets.get(&key) {
                out.push(
                    file.diagnostic_at(
                        doc,
                        "spec.targetRef.name",
                        &format!(
                            "canary `{}` drives {} `{}`, as canary `{}` at {first} does",
                            id(&name, &ns),
                            elide(&kind),
                            elide(&target),
                            id(other, &ns)
                        ),
                    )
                    .with_help("a target is driven by one canary: keep one of the two"),
                );
                continue;
            }
            targets.insert(key, (name, place));
        }
    }
    out
}

struct Checker<'a, T> {
    file: &'a SpecFile,
    doc: &'a Doc<T>,
    out: Vec<Diagnostic>,
}

impl<'a, T> Checker<'a, T> {
    fn new(file: &'a SpecFile, doc: &'a Doc<T>) -> Self {
        Checker {
            file,
            doc,
            out: Vec::new(),
        }
    }

    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.push(path, message.into(), None);
    }

    fn err_help(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.push(path, message.into(), Some(help.into()));
    }

    fn push(&mut self, path: &str, message: String, help: Option<String>) {
        if self.doc.is_poisoned(path) || self.doc.has_poisoned_child(path) {
            return;
        }
        // A value's problem points at the value; a missing field at the
        // mapping that lacks it.
        let span = self.doc.spans.locate_value(path);
        let mut d = self.file.diagnostic(span, message).with_path(path);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.out.push(d);
    }

    fn missing(&mut self, parent: &str, field: &str) {
        let path = join(parent, field);
        if self.doc.is_poisoned(&path) || self.doc.has_poisoned_child(parent) {
            return;
        }
        // `spec:` with nothing under it reads as null: say it is empty, at
        // the key that is there.
        if let Some(n) = self.doc.spans.get(&path) {
            let span = n.key.unwrap_or(n.value);
            self.out.push(
                self.file
                    .diagnostic(span, format!("`{field}` is empty"))
                    .with_path(path),
            );
            return;
        }
        let where_ = if parent.is_empty() {
            "the document".to_string()
        } else {
            format!("`{parent}`")
        };
        let span = self.doc.spans.locate(parent);
        self.out.push(
            self.file
                .diagnostic(
                    span,
                    format!("missing required field `{field}` in {where_}"),
                )
                .with_path(path),
        );
    }

    /// A query template's error, placed on the line and column of the
    /// mistake inside the (often multi-line) query.
    fn template_err(&mut self, path: &str, query: &str, e: &template::TemplateError) {
        if self.doc.is_poisoned(path) {
            return;
        }
        let base = self.doc.spans.locate_value(path);
        let before = &query[..e.offset().min(query.len())];
        let line_in_query = before.matches('\n').count();
        let col_in_line = before.rsplit('\n').next().unwrap_or("").chars().count();
        let query_line = query.lines().nth(line_in_query).unwrap_or("");
        let line_count = self.file.lines.count(&self.file.text);
        // The query starts on the value's line (plain or quoted) or just
        // after it (`|`, `>`): find the first source line at or after the
        // expected one that holds this line of the query.
        let needle = query_line.trim_start();
        let lead = query_line.len() - needle.len();
        let first = base.start.line + line_in_query;
        let mut span = base;
        if !needle.is_empty() {
            for l in first..=(first + 1).min(line_count) {
                let source = self.file.line(l).unwrap_or_default();
                if let Some(i) = source.find(needle) {
                    let col = source[..i].chars().count() + col_in_line.saturating_sub(lead);
                    span = Span::point(l, col + 1);
                    break;
                }
            }
        }
        let help = match e {
            template::TemplateError::UnknownFunction { name, .. } => {
                match did_you_mean(name, template::FUNCTIONS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known: {}", template::FUNCTIONS.join(", ")),
                }
            }
            _ => "placeholders look like {{ namespace }}, {{ target }}, {{ interval }} or \
                  {{ variables.name }}"
                .to_string(),
        };
        let d = self
            .file
            .diagnostic(span, format!("invalid query template: {e}"))
            .with_path(path)
            .with_help(help);
        self.out.push(d);
    }

    fn one_of(&mut self, path: &str, what: &str, value: &str, known: &[&str]) {
        if known.contains(&value) {
            return;
        }
        let help = match did_you_mean(value, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        };
        self.err_help(path, format!("unknown {what} `{}`", elide(value)), help);
    }

    fn duration(&mut self, path: &str, value: Option<&str>) {
        self.check_duration(path, value, false);
    }

    /// A duration Flagger's CRD also constrains to `^[0-9]+(m|s)`.
    fn flagger_duration(&mut self, path: &str, value: Option<&str>) {
        self.check_duration(path, value, true);
    }

    fn check_duration(&mut self, path: &str, value: Option<&str>, flagger_pattern: bool) {
        let Some(v) = value else { return };
        match parse_duration(v) {
            Err(e) => self.err_help(
                path,
                format!("invalid duration `{}`: {e}", elide(v)),
                "write a number and a unit without spaces, such as 30s, 1m or 1m30s",
            ),
            Ok(d) if d.is_zero() => {
                self.err(path, format!("`{}` must be longer than zero", elide(v)))
            }
            Ok(_) if flagger_pattern && !matches_flagger_pattern(v) => self.err_help(
                path,
                format!(
                    "duration `{}` is not accepted by Flagger's schema",
                    elide(v)
                ),
                "Flagger wants whole seconds or minutes here, such as 30s, 5m or 1m30s",
            ),
            Ok(_) => {}
        }
    }

    fn percent(&mut self, path: &str, value: Option<i64>, min: i64) {
        if let Some(v) = value
            && !(min..=100).contains(&v)
        {
            self.err(path, format!("must be between {min} and 100, found {v}"));
        }
    }

    fn required_str(&mut self, parent: &str, field: &str, value: Option<&str>) -> bool {
        match value {
            Some(v) if !v.trim().is_empty() => true,
            Some(_) => {
                self.err(&join(parent, field), format!("`{field}` must not be empty"));
                false
            }
            None => {
                self.missing(parent, field);
                false
            }
        }
    }

    fn url(&mut self, path: &str, value: &str) {
        if let Err(why) = check_url(value) {
            self.err_help(
                path,
                format!(
                    "invalid URL `{}`: {why}",
                    elide(&crate::redact::redact_url(value))
                ),
                "expected an http:// or https:// URL with a host, and a port between 1 and 65535",
            );
        }
    }

    /// A Kubernetes object name (`kind` says which rules, for the help).
    fn name(&mut self, path: &str, value: Option<&str>, kind: NameKind) {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        if kind.accepts(v) {
            return;
        }
        self.err_help(
            path,
            format!("invalid {} `{}`", kind.what(), elide(v)),
            kind.rule(),
        );
    }
}

/// The naming rules Kubernetes applies (its `validation.IsDNS1123Subdomain`
/// and friends). A name that breaks them is refused by the API server, and
/// one with `/`, `..` or `?` would change the API path it is put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Most objects: DNS-1123 subdomain, up to 253 characters.
    Object,
    /// Namespaces: DNS-1123 label, up to 63 characters.
    Namespace,
    /// Services: DNS-1035 label (starts with a letter), up to 63.
    Service,
}

impl NameKind {
    pub fn accepts(self, name: &str) -> bool {
        match self {
            NameKind::Object => is_dns_subdomain(name),
            NameKind::Namespace => is_dns_label(name),
            NameKind::Service => {
                is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
            }
        }
    }

    fn what(self) -> &'static str {
        match self {
            NameKind::Object => "name",
            NameKind::Namespace => "namespace",
            NameKind::Service => "service name",
        }
    }

    pub fn rule(self) -> &'static str {
        match self {
            NameKind::Object => {
                "use at most 253 lowercase letters, digits, '-' and '.', starting and ending \
                 with a letter or digit"
            }
            NameKind::Namespace => {
                "use at most 63 lowercase letters, digits and '-', starting and ending with a \
                 letter or digit"
            }
            NameKind::Service => {
                "use at most 63 lowercase letters, digits and '-', starting with a letter and \
                 ending with a letter or digit"
            }
        }
    }
}

/// Why `value` is not a URL `canary` can call: it must parse (a closed
/// `[` around an IPv6 address, a port that fits in 16 bits), be http or
/// https, name a host, and not name the API server's own Service
/// ([`names_api_server`]). The same parser sends the request, so what
/// passes here does not fail for its form during a run.
pub fn check_url(value: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(value.trim()).map_err(|e| match e {
        url::ParseError::InvalidPort => "the port must be a number from 1 to 65535".to_string(),
        url::ParseError::InvalidIpv6Address => {
            "the IPv6 address is not valid (or its `]` is missing)".to_string()
        }
        url::ParseError::RelativeUrlWithoutBase => {
            "it has no scheme: start it with http:// or https://".to_string()
        }
        other => other.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme `{}` is not http or https",
            elide(parsed.scheme())
        ));
    }
    match parsed.host_str() {
        None | Some("") => return Err("it names no host".to_string()),
        Some(h) if names_api_server(h) => {
            return Err(format!(
                "`{}` is the Kubernetes API server's own Service: through the API server's \
                 service proxy a request there would carry the runner's credentials, so no \
                 webhook or metrics server may name it",
                elide(h)
            ));
        }
        Some(_) => {}
    }
    if parsed.port() == Some(0) {
        return Err("the port must be a number from 1 to 65535".to_string());
    }
    Ok(parsed)
}

/// Whether `host` names the API server's own Service, `kubernetes` in
/// the `default` namespace: `kubernetes.default`, `kubernetes.default.svc`
/// and `kubernetes.default.svc.<cluster domain>` (any domain). The bare
/// `kubernetes` is that Service only for a canary in `default`, which the
/// run checks once the namespace is known.
pub fn names_api_server(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "kubernetes.default"
        || host == "kubernetes.default.svc"
        || host.starts_with("kubernetes.default.svc.")
}

fn join(parent: &str, field: &str) -> String {
    super::source::join_key(parent, field)
}

/// A DNS-1123 label: what namespaces (and Services) are named.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1123 subdomain: what most objects are named.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn metadata<T>(c: &mut Checker<'_, T>, name: Option<&str>, namespace: Option<&str>) {
    if c.required_str("metadata", "name", name) {
        c.name("metadata.name", name, NameKind::Object);
    }
    c.name("metadata.namespace", namespace, NameKind::Namespace);
}

fn canary(c: &mut Checker<'_, Canary>, file: &SpecFile) {
    let doc = &c.doc.value;
    let meta = doc.metadata.as_ref();
    if meta.is_none() {
        c.missing("", "metadata");
    } else {
        metadata(
            c,
            meta.and_then(|m| m.name.as_deref()),
            meta.and_then(|m| m.namespace.as_deref()),
        );
    }
    let Some(spec) = &doc.spec else {
        c.missing("", "spec");
        return;
    };

    let provider = spec.provider.as_deref().filter(|p| !p.is_empty());
    if let Some(p) = provider {
        c.one_of("spec.provider", "provider", p, &Provider::names());
    }
    if let Some(m) = &spec.metrics_server {
        c.url("spec.metricsServer", m);
    }

    match &spec.target_ref {
        None => c.missing("spec", "targetRef"),
        Some(t) => {
            if c.required_str("spec.targetRef", "name", t.name.as_deref()) {
                c.name("spec.targetRef.name", t.name.as_deref(), NameKind::Object);
            }
            match t.kind.as_deref() {
                None => c.missing("spec.targetRef", "kind"),
                Some(k) => c.one_of("spec.targetRef.kind", "target kind", k, TARGET_KINDS),
            }
        }
    }
    if let Some(a) = &spec.autoscaler_ref {
        if c.required_str("spec.autoscalerRef", "name", a.name.as_deref()) {
            c.name(
                "spec.autoscalerRef.name",
                a.name.as_deref(),
                NameKind::Object,
            );
        }
        match a.kind.as_deref() {
            None => c.missing("spec.autoscalerRef", "kind"),
            Some(k) => c.one_of(
                "spec.autoscalerRef.kind",
                "autoscaler kind",
                k,
                AUTOSCALER_KINDS,
            ),
        }
    }
    if let Some(i) = &spec.ingress_ref {
        if c.required_str("spec.ingressRef", "name", i.name.as_deref()) {
            c.name("spec.ingressRef.name", i.name.as_deref(), NameKind::Object);
        }
        if let Some(k) = i.kind.as_deref() {
            c.one_of("spec.ingressRef.kind", "ingress kind", k, INGRESS_KINDS);
        }
    }
    if let Some(r) = &spec.route_ref {
        if c.required_str("spec.routeRef", "name", r.name.as_deref()) {
            c.name("spec.routeRef.name", r.name.as_deref(), NameKind::Object);
        }
        if let Some(k) = r.kind.as_deref() {
            c.one_of("spec.routeRef.kind", "route kind", k, ROUTE_KINDS);
        }
    }
    if let Some(u) = &spec.upstream_ref {
        if c.required_str("spec.upstreamRef", "name", u.name.as_deref()) {
            c.name("spec.upstreamRef.name", u.name.as_deref(), NameKind::Object);
        }
        if let Some(k) = u.kind.as_deref() {
            c.one_of("spec.upstreamRef.kind", "upstream kind", k, UPSTREAM_KINDS);
        }
    }
    if matches!(provider, Some("nginx") | Some("skipper")) && spec.ingress_ref.is_none() {
        c.err_help(
            "spec.provider",
            format!(
                "provider `{}` needs `spec.ingressRef`",
                provider.unwrap_or_default()
            ),
            "name the Ingress whose traffic is split",
        );
    }
    if provider == Some("apisix") && spec.route_ref.is_none() {
        c.err_help(
            "spec.provider",
            "provider `apisix` needs `spec.routeRef`",
            "name the ApisixRoute whose traffic is split",
        );
    }
    if let Some(d) = spec.progress_deadline_seconds
        && d < 0
    {
        c.err(
            "spec.progressDeadlineSeconds",
            format!("must not be negative, found {d}"),
        );
    }

    // A Knative Canary's traffic is split by the Knative Service itself,
    // between its revisions: there are no primary and canary Services to
    // describe, so Flagger does not ask for `spec.service`.
    let knative = provider == Some("knative")
        || spec
            .target_ref
            .as_ref()
            .and_then(|t| t.api_version.as_deref())
            .is_some_and(|v| v.starts_with("serving.knative.dev/"));
    match &spec.service {
        None if knative => {}
        None => c.missing("spec", "service"),
        Some(s) => {
            c.name("spec.service.name", s.name.as_deref(), NameKind::Service);
            match s.port {
                None => c.missing("spec.service", "port"),
                Some(p) if !(1..=65535).contains(&p) => c.err(
                    "spec.service.port",
                    format!("port must be between 1 and 65535, found {p}"),
                ),
                Some(_) => {}
            }
            if let Some(t) = &s.target_port
                && let Some(n) = t.as_int()
                && !(1..=65535).contains(&n)
            {
                c.err(
                    "spec.service.targetPort",
                    format!("port must be between 1 and 65535, found {n}"),
                );
            }
            c.duration("spec.service.timeout", s.timeout.as_deref());
            c.duration("spec.service.backendTimeout", s.backend_timeout.as_deref());
            if provider.is_some_and(|p| p.starts_with("gatewayapi")) && s.gateway_refs.is_empty() {
                c.err_help(
                    "spec.service",
                    "provider gatewayapi needs `spec.service.gatewayRefs`",
                    "name the Gateway(s) the HTTPRoute attaches to",
                );
            }
        }
    }

    let (path, analysis) = match (&spec.analysis, &spec.canary_analysis) {
        (Some(a), None) => ("spec.analysis", a),
        (None, Some(a)) => ("spec.canaryAnalysis", a),
        (Some(a), Some(_)) => {
            c.err_help(
                "spec.canaryAnalysis",
                "both `analysis` and the older `canaryAnalysis` are set",
                "keep `analysis` only",
            );
            ("spec.analysis", a)
        }
        (None, None) => {
            c.missing("spec", "analysis");
            return;
        }
    };
    analysis_rules(
        c,
        path,
        analysis,
        provider,
        spec.skip_analysis.unwrap_or(false),
        file,
    );
}

fn analysis_rules(
    c: &mut Checker<'_, Canary>,
    path: &str,
    a: &CanaryAnalysis,
    provider: Option<&str>,
    skip: bool,
    file: &SpecFile,
) {
    let p = |f: &str| join(path, f);
    c.flagger_duration(&p("interval"), a.interval.as_deref());

    let mut kinds = Vec::new();
    if a.step_weight.is_some_and(|w| w != 0) {
        kinds.push("stepWeight");
    }
    if !a.step_weights.is_empty() {
        kinds.push("stepWeights");
    }
    if a.iterations.is_some_and(|i| i != 0) {
        kinds.push("iterations");
    }
    match kinds.len() {
        0 if skip || provider == Some("kubernetes") => {}
        0 => c.err_help(
            path,
            "no analysis steps: set one of `stepWeight`, `stepWeights` or `iterations`",
            "stepWeight/stepWeights shift traffic progressively; iterations run A/B testing \
             (with `match`) or blue/green",
        ),
        1 => {}
        _ => c.err_help(
            &p(kinds[1]),
            format!("`{}` and `{}` are both set", kinds[0], kinds[1]),
            "set exactly one of `stepWeight`, `stepWeights` or `iterations`",
        ),
    }
    c.percent(&p("stepWeight"), a.step_weight, 0);
    c.percent(&p("maxWeight"), a.max_weight, 0);
    c.percent(&p("stepWeightPromotion"), a.step_weight_promotion, 0);
    c.percent(&p("mirrorWeight"), a.mirror_weight, 0);
    c.percent(&p("primaryReadyThreshold"), a.primary_ready_threshold, 0);
    c.percent(&p("canaryReadyThreshold"), a.canary_ready_threshold, 0);
    if let Some(i) = a.iterations
        && i < 0
    {
        c.err(&p("iterations"), format!("must not be negative, found {i}"));
    }
    for (i, w) in a.step_weights.iter().enumerate() {
        let wp = format!("{}[{i}]", p("stepWeights"));
        if !(1..=100).contains(w) {
            c.err(&wp, format!("must be between 1 and 100, found {w}"));
        } else if i > 0 && *w <= a.step_weights[i - 1] {
            c.err_help(
                &wp,
                format!(
                    "step weights must increase, but {w} follows {}",
                    a.step_weights[i - 1]
                ),
                "list the weights in increasing order, e.g. [1, 5, 10, 50]",
            );
        }
    }
    if let (Some(s), Some(m)) = (a.step_weight, a.max_weight)
        && s > m
        && m > 0
        && s <= 100
    {
        c.err(
            &p("stepWeight"),
            format!("stepWeight {s} is above maxWeight {m}"),
        );
    }
    if a.mirror_weight.is_some() && a.mirror != Some(true) {
        c.err_help(
            &p("mirrorWeight"),
            "`mirrorWeight` is set but `mirror` is not",
            "add `mirror: true`",
        );
    }
    if !a.r#match.is_empty() && a.iterations.unwrap_or(0) == 0 && a.step_weight.is_none() {
        c.err_help(
            &p("match"),
            "`match` routes A/B traffic, which needs `iterations`",
            "add `iterations: N`",
        );
    }
    if let Some(s) = &a.session_affinity {
        let sp = p("sessionAffinity");
        c.required_str(&sp, "cookieName", s.cookie_name.as_deref());
        if s.cookie_name.is_some() && s.cookie_name == s.primary_cookie_name {
            c.err(
                &join(&sp, "primaryCookieName"),
                "`primaryCookieName` must differ from `cookieName`",
            );
        }
    }

    for (i, m) in a.metrics.iter().enumerate() {
        let mp = format!("{}[{i}]", p("metrics"));
        let name_ok = c.required_str(&mp, "name", m.name.as_deref());
        c.flagger_duration(&join(&mp, "interval"), m.interval.as_deref());
        if let Some(r) = &m.threshold_range
            && let (Some(lo), Some(hi)) = (r.min, r.max)
            && lo > hi
        {
            c.err(
                &join(&mp, "thresholdRange.min"),
                format!("min {lo} is above max {hi}"),
            );
        }
        let has_query = m.query.as_deref().is_some_and(|q| !q.trim().is_empty());
        match &m.template_ref {
            Some(t) => {
                let tp = join(&mp, "templateRef");
                c.name(
                    &join(&tp, "namespace"),
                    t.namespace.as_deref(),
                    NameKind::Namespace,
                );
                if c.required_str(&tp, "name", t.name.as_deref()) {
                    c.name(&join(&tp, "name"), t.name.as_deref(), NameKind::Object);
                    let ns = t
                        .namespace
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(c.doc.value.namespace());
                    let name = t.name.as_deref().unwrap_or_default();
                    let found = file
                        .metric_templates
                        .iter()
                        .find(|d| d.value.name() == name && d.value.namespace() == ns);
                    if let Some(q) = found.and_then(|d| d.value.spec.as_ref()?.query.as_deref())
                        && let Ok(used) = template::placeholders(q)
                    {
                        for v in used.iter().filter_map(|u| u.strip_prefix("variables.")) {
                            if !m.template_variables.contains_key(v) {
                                c.err_help(
                                    &join(&mp, "templateVariables"),
                                    format!(
                                        "MetricTemplate {ns}/{name} uses `variables.{v}`, \
                                             which is not set here"
                                    ),
                                    format!("add `templateVariables: {{{v}: ...}}`"),
                                );
                            }
                        }
                    }
                }
            }
            None if has_query => {
                let q = m.query.as_deref().unwrap_or_default();
                if let Err(e) = template::placeholders(q) {
                    c.template_err(&join(&mp, "query"), q, &e);
                }
            }
            None if name_ok => {
                let n = m.name.as_deref().unwrap_or_default();
                if !BUILTIN_METRICS.contains(&n) {
                    let help = match did_you_mean(n, BUILTIN_METRICS.iter().copied()) {
                        Some(s) => format!("did you mean the built-in `{s}`?"),
                        None => "add a `templateRef` to a MetricTemplate, or use a built-in \
                                 (request-success-rate, request-duration)"
                            .to_string(),
                    };
                    c.err_help(
                        &join(&mp, "name"),
                        format!(
                            "`{}` is not a built-in metric and has no templateRef or query",
                            elide(n)
                        ),
                        help,
                    );
                }
            }
            None => {}
        }
        if !m.template_variables.is_empty() && m.template_ref.is_none() {
            c.err_help(
                &join(&mp, "templateVariables"),
                "`templateVariables` only apply to a metric with a `templateRef`",
                "add a templateRef or remove templateVariables",
            );
        }
    }

    for (i, w) in a.webhooks.iter().enumerate() {
        let wp = format!("{}[{i}]", p("webhooks"));
        c.required_str(&wp, "name", w.name.as_deref());
        if c.required_str(&wp, "url", w.url.as_deref()) {
            c.url(&join(&wp, "url"), w.url.as_deref().unwrap_or_default());
        }
        if let Some(t) = w.r#type.as_deref().filter(|t| !t.is_empty())
            && HookType::parse(Some(t)).is_none()
        {
            c.one_of(&join(&wp, "type"), "webhook type", t, WEBHOOK_TYPES);
        }
        c.flagger_duration(&join(&wp, "timeout"), w.timeout.as_deref());
        if let Some(r) = w.retries
            && r < 0
        {
            c.err(
                &join(&wp, "retries"),
                format!("must not be negative, found {r}"),
            );
        }
    }

    for (i, al) in a.alerts.iter().enumerate() {
        let ap = format!("{}[{i}]", p("alerts"));
        c.required_str(&ap, "name", al.name.as_deref());
        match &al.provider_ref {
            None => c.missing(&ap, "providerRef"),
            Some(r) => {
                let rp = join(&ap, "providerRef");
                if c.required_str(&rp, "name", r.name.as_deref()) {
                    c.name(&join(&rp, "name"), r.name.as_deref(), NameKind::Object);
                }
                c.name(
                    &join(&rp, "namespace"),
                    r.namespace.as_deref(),
                    NameKind::Namespace,
                );
            }
        }
        if let Some(s) = al.severity.as_deref().filter(|s| !s.is_empty()) {
            c.one_of(
                &join(&ap, "severity"),
                "alert severity",
                s,
                ALERT_SEVERITIES,
            );
        }
    }
}

fn metric_template(c: &mut Checker<'_, MetricTemplate>) {
    let doc = &c.doc.value;
    match doc.metadata.as_ref() {
        None => c.missing("", "metadata"),
        Some(m) => metadata(c, m.name.as_deref(), m.namespace.as_deref()),
    }
    let Some(spec) = &doc.spec else {
        c.missing("", "spec");
        return;
    };
    match &spec.provider {
        None => c.missing("spec", "provider"),
        Some(p) => {
            match p.r#type.as_deref() {
                None => c.missing("spec.provider", "type"),
                Some(t) => c.one_of(
                    "spec.provider.type",
                    "metric provider",
                    t,
                    &MetricProvider::names(),
                ),
            }
            if let Some(a) = p.address.as_deref().filter(|a| !a.is_empty()) {
                c.url("spec.provider.address", a);
            }
            if let Some(r) = &p.secret_ref {
                c.name(
                    "spec.provider.secretRef.name",
                    r.name.as_deref(),
                    NameKind::Object,
                );
            }
        }
    }
    let q = spec.query.as_deref().unwrap_or_default();
    if c.required_str("spec", "query", spec.query.as_deref())
        && let Err(e) = template::placeholders(q)
    {
        c.template_err("spec.query", q, &e);
    }
}

fn alert_provider(c: &mut Checker<'_, AlertProvider>) {
    let doc = &c.doc.value;
    match doc.metadata.as_ref() {
        None => c.missing("", "metadata"),
        Some(m) => metadata(c, m.name.as_deref(), m.namespace.as_deref()),
    }
    let Some(spec) = &doc.spec else {
        c.missing("", "spec");
        return;
    };
    match spec.r#type.as_deref() {
        None => c.missing("spec", "type"),
        Some(t) => c.one_of("spec.type", "alert provider", t, ALERT_PROVIDERS),
    }
    let address = spec.address.as_deref().filter(|a| !a.is_empty());
    if let Some(a) = address {
        c.url("spec.address", a);
    }
    if let Some(r) = &spec.secret_ref {
        c.name("spec.secretRef.name", r.name.as_deref(), NameKind::Object);
    }
    if address.is_none() && spec.secret_ref.is_none() {
        c.err_help(
            "spec",
            "an AlertProvider needs `address` or `secretRef`",
            "put the webhook URL in `address`, or in a Secret's `address` key named by `secretRef`",
        );
    }
}
