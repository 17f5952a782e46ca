//! What `canary run` can carry out, checked before anything moves.
//!
//! A spec can be valid Flagger (see [`crate::spec::validate`]) and still
//! ask for something this version of `canary` does not do: a router it
//! does not drive, A/B matching on a router that can only split by weight,
//! a metric provider it does not query. Such a spec must be refused
//! up front with the field that needs it, not discovered after traffic has
//! moved. `validate`, `plan` and `run` all call [`check`] on the resolved
//! canary (with the provider as the command line and, for `run`, the
//! cluster settle it) and [`check_template`] on MetricTemplates, so the
//! three cannot disagree. The facts come from one table:
//! [`Provider::capabilities`] and [`MetricProvider::driven`].

use crate::provider::{Capabilities, DRIVEN_AUTOSCALERS, DRIVEN_TARGETS, MetricProvider, Provider};
use crate::queries::builtin;
use crate::spec::resolve::{MetricSource, ProviderSource, ResolvedCanary};
use crate::spec::source::{join_index, join_key};
use crate::spec::types::{Canary, HttpMatchRequest, MetricTemplate, StringMatch};
use crate::spec::{Diagnostic, Doc, SpecFile};

/// Everything in `c` (resolved from `doc` of `file`) that `canary run`
/// cannot carry out, each at the field that asks for it.
///
/// With no provider yet (`run` detects it from the cluster), a feature is
/// refused when no provider `canary run` drives has it, whichever is
/// detected; `run` checks again once it knows.
pub fn check(file: &SpecFile, doc: &Doc<Canary>, c: &ResolvedCanary) -> Vec<Diagnostic> {
    check_with(file, doc, c, false)
}

/// [`check`] for `validate`: a provider that has reached its end of
/// support ([`Provider::retired`]) is valid Flagger, so it is not refused
/// here; [`retired_warning`] says why `run` will not drive it.
pub fn check_accepting_retired(
    file: &SpecFile,
    doc: &Doc<Canary>,
    c: &ResolvedCanary,
) -> Vec<Diagnostic> {
    check_with(file, doc, c, true)
}

/// The warning for a Canary whose provider has reached its end of
/// support: accepted by `validate`, refused by `run` and `plan`.
pub fn retired_warning(c: &ResolvedCanary) -> Option<String> {
    let p = c.provider.filter(|p| p.retired())?;
    let why = p.capabilities().not_driven?;
    Some(format!(
        "provider `{p}`: {why}; `canary run` and `canary plan` refuse it"
    ))
}

fn check_with(
    file: &SpecFile,
    doc: &Doc<Canary>,
    c: &ResolvedCanary,
    accept_retired: bool,
) -> Vec<Diagnostic> {
    let mut out = Refusals {
        file,
        doc,
        out: Vec::new(),
    };
    let spec = doc.value.spec.clone().unwrap_or_default();
    let analysis_path = if spec.analysis.is_none() && spec.canary_analysis.is_some() {
        "spec.canaryAnalysis"
    } else {
        "spec.analysis"
    };
    let analysis = spec.analysis().cloned().unwrap_or_default();
    let at = |field: &str| join_key(analysis_path, field);

    let (caps, named) = match c.provider {
        Some(p) => {
            let caps = p.capabilities();
            let named = provider_words(p, c.provider_source);
            if let Some(why) = caps.not_driven {
                if accept_retired && p.retired() {
                    return out.out;
                }
                let drivable: Vec<&str> = Provider::driven().iter().map(|p| p.name()).collect();
                let help = format!("`canary run` drives: {}", drivable.join(", "));
                match c.provider_source {
                    ProviderSource::Spec => {
                        out.push("spec.provider", format!("{named}: {why}"), help)
                    }
                    _ => out.file_level(format!("{named}: {why}"), help),
                }
                return out.out;
            }
            (caps, named)
        }
        None => (any_driven(), String::new()),
    };
    // "provider `linkerd` cannot ...", or before the provider is known,
    // "no provider `canary run` drives can ...".
    let cannot = |what: &str| match c.provider {
        Some(_) => format!("{named} cannot {what}"),
        None => format!("no provider `canary run` drives can {what}"),
    };

    let kind = c.target.kind.as_str();
    if !kind.is_empty() && !caps.targets.contains(&kind) {
        out.push(
            "spec.targetRef.kind",
            match c.provider {
                Some(_) => format!("`canary run` does not drive a {kind} target with {named}"),
                None => format!("`canary run` does not drive a {kind} target"),
            },
            format!("supported: {}", caps.targets.join(", ")),
        );
    }
    if let Some(a) = &c.autoscaler
        && caps.targets.contains(&kind)
        && !crate::provider::SCALABLE_TARGETS.contains(&kind)
    {
        out.push(
            "spec.autoscalerRef",
            format!("a {kind} target has no replicas for {} to scale", a.kind),
            "remove `autoscalerRef`: a DaemonSet runs one pod on each node it selects",
        );
    } else if let Some(a) = &c.autoscaler
        && !caps.autoscalers.contains(&a.kind.as_str())
    {
        out.push(
            "spec.autoscalerRef.kind",
            format!("`canary run` does not copy a {} for the primary", a.kind),
            format!("supported: {}", caps.autoscalers.join(", ")),
        );
    }

    for (i, m) in analysis.r#match.iter().enumerate() {
        let cookie = m.headers.contains_key("cookie");
        let headers = m.headers.keys().any(|h| h != "cookie");
        let other = m.uri.is_some()
            || m.scheme.is_some()
            || m.method.is_some()
            || m.authority.is_some()
            || !m.without_headers.is_empty()
            || !m.query_params.is_empty();
        let cannot_match = !caps.header_match && !caps.cookie_match;
        let why = if cannot_match {
            let how = match c.provider {
                Some(p) if !p.routes_traffic() => ": it has no router",
                Some(_) => ": its router only splits traffic by weight",
                None => "",
            };
            Some(format!(
                "{}, so A/B testing (`match`) cannot run{how}",
                cannot("route requests by their content")
            ))
        } else if (headers || other) && !caps.header_match {
            Some(cannot("route requests by header"))
        } else if cookie && !caps.cookie_match {
            Some(cannot("route requests by cookie"))
        } else if !m.source_labels.is_empty() && !caps.source_labels {
            Some(cannot(
                "route requests by the caller's labels (`sourceLabels`)",
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let help = if c.provider == Some(Provider::Kubernetes) {
                // Flagger warns and drops the match; refused here, since
                // the run would not be the A/B test the spec asks for.
                "Flagger warns \"A/B testing is not supported when using the kubernetes \
                 provider\" and runs blue/green without the match; remove `match`, or use a \
                 provider that routes requests (istio, gatewayapi, nginx)"
                    .to_string()
            } else {
                match_help()
            };
            out.push(&join_index(&at("match"), i), why, help);
            // One refusal says it; the other entries would repeat it.
            if cannot_match {
                break;
            }
        }
    }

    if let Some(p) = c.provider
        && let Some(why) = partial_match(p, &analysis.r#match)
    {
        let (i, what) = why;
        out.push(
            &join_index(&at("match"), i),
            format!("{named} cannot {what}"),
            "write the match with the fields and string matches this router supports \
             (see README, \"What `canary run` drives\")",
        );
    }

    if analysis.mirror == Some(true) && !caps.mirroring {
        out.push(
            &at("mirror"),
            cannot("mirror traffic"),
            "remove `mirror`; Flagger mirrors with istio and gatewayapi",
        );
    }
    if analysis.mirror == Some(true)
        && analysis.mirror_weight.is_some()
        && caps.mirroring
        && c.provider.is_some_and(|p| !p.mirrors_a_share())
    {
        out.push(
            &at("mirrorWeight"),
            cannot("mirror a share of the requests: its mirror copies every request"),
            "remove `mirrorWeight` to mirror every request",
        );
    }
    if analysis.session_affinity.is_some() && !caps.session_affinity {
        out.push(
            &at("sessionAffinity"),
            cannot("keep a client on one version (session affinity)"),
            "remove `sessionAffinity`; Flagger supports it with istio and gatewayapi",
        );
    }

    let tcp = spec
        .service
        .as_ref()
        .and_then(|s| s.app_protocol.as_deref())
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"));
    if tcp && !caps.tcp {
        out.push(
            "spec.service.appProtocol",
            cannot("route a TCP service: its routes are written for HTTP"),
            "with a mesh that splits connections (linkerd, osm, smi) or the kubernetes \
             provider, a TCP service runs",
        );
    }

    if let Some(provider) = c.provider {
        for (i, m) in c.metrics.iter().enumerate() {
            if m.source != MetricSource::Builtin {
                continue;
            }
            match builtin::builtin_query(provider, &m.name) {
                None => out.push(
                    &join_key(&join_index(&at("metrics"), i), "name"),
                    format!("{named} has no built-in `{}` query", m.name),
                    "give the metric a `templateRef` to a MetricTemplate, or a `query`",
                ),
                // Flagger's query reads the series of a Deployment's pods;
                // a DaemonSet's pods are labelled `daemonset`, so it would
                // find no values and fail every check.
                Some(q) if kind != "Deployment" && q.template.contains("deployment=~") => out.push(
                    &join_key(&join_index(&at("metrics"), i), "name"),
                    format!(
                        "{named}'s built-in `{}` query selects a Deployment's series \
                         (`deployment=~`): a {kind} target would have no values",
                        m.name
                    ),
                    "give the metric a `query` or a MetricTemplate selecting the \
                     `daemonset` label",
                ),
                Some(_) => {}
            }
        }
    }
    out.out
}

/// The first match of `matches` that `p`'s router would write only in
/// part: its index and what the router cannot do.
fn partial_match(p: Provider, matches: &[HttpMatchRequest]) -> Option<(usize, String)> {
    let support = p.match_support()?;
    let kind = |m: &StringMatch| -> &'static str {
        if m.exact.is_some() {
            "exact"
        } else if m.regex.is_some() {
            "regex"
        } else if m.prefix.is_some() {
            "prefix"
        } else if m.suffix.is_some() {
            "suffix"
        } else {
            "empty"
        }
    };
    let (mut headers, mut cookies) = (0, 0);
    for (i, m) in matches.iter().enumerate() {
        let mut fields = Vec::new();
        if m.uri.is_some() {
            fields.push("uri");
        }
        if m.method.is_some() {
            fields.push("method");
        }
        if m.scheme.is_some() {
            fields.push("scheme");
        }
        if m.authority.is_some() {
            fields.push("authority");
        }
        if !m.without_headers.is_empty() {
            fields.push("withoutHeaders");
        }
        if !m.query_params.is_empty() && !support.query_params {
            fields.push("queryParams");
        }
        if let Some(f) = fields.first() {
            return Some((i, format!("route A/B requests by `{f}`")));
        }
        for (name, sm) in &m.headers {
            let (allowed, what) = if name == "cookie" {
                cookies += 1;
                (support.cookie_kinds, "a cookie")
            } else {
                headers += 1;
                (support.header_kinds, "a header")
            };
            let k = kind(sm);
            if !allowed.contains(&k) {
                return Some((
                    i,
                    format!(
                        "match {what} by `{k}` (only by {})",
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
        }
        for (name, sm) in &m.query_params {
            let k = kind(sm);
            if !support.header_kinds.contains(&k) {
                return Some((
                    i,
                    format!("match query parameter `{name}` by `{k}` (only by `exact` or `regex`)"),
                ));
            }
        }
        if support.one_header {
            if m.headers.len() > 1 {
                return Some((
                    i,
                    "require several headers (or a header and a cookie) in one match: \
                     it routes by one header, else by one cookie"
                        .to_string(),
                ));
            }
            if headers > 1 || cookies > 1 {
                return Some((
                    i,
                    "route by more than one header and one cookie".to_string(),
                ));
            }
        }
        if support.only_one && headers + cookies > 1 {
            return Some((
                i,
                "route by more than one header or cookie: it writes one header condition"
                    .to_string(),
            ));
        }
    }
    None
}

/// What at least one driven provider can do: the capabilities a spec may
/// ask for before its provider is known.
fn any_driven() -> Capabilities {
    let driven: Vec<Capabilities> = Provider::driven()
        .into_iter()
        .map(Provider::capabilities)
        .collect();
    let any = |f: fn(&Capabilities) -> bool| driven.iter().any(f);
    Capabilities {
        weights: any(|c| c.weights),
        header_match: any(|c| c.header_match),
        cookie_match: any(|c| c.cookie_match),
        source_labels: any(|c| c.source_labels),
        mirroring: any(|c| c.mirroring),
        session_affinity: any(|c| c.session_affinity),
        tcp: any(|c| c.tcp),
        targets: DRIVEN_TARGETS,
        autoscalers: DRIVEN_AUTOSCALERS,
        not_driven: None,
    }
}

/// A metric of `c` that no Prometheus is known for: a built-in or inline
/// query needs `spec.metricsServer`, `--metrics-server` or a provider whose
/// mesh installs one. A setting rather than a capability, so `validate`
/// (which has no `--metrics-server`) only notes it; `plan` and `run`
/// refuse it.
pub fn check_metrics_server(
    file: &SpecFile,
    doc: &Doc<Canary>,
    c: &ResolvedCanary,
) -> Option<Diagnostic> {
    if c.provider.is_none() || c.metrics_server_or_default().is_some() {
        return None;
    }
    let (i, m) = c.metrics.iter().enumerate().find(|(_, m)| {
        matches!(
            m.source,
            MetricSource::Builtin | MetricSource::Inline { .. }
        )
    })?;
    let spec = doc.value.spec.as_ref()?;
    let analysis = if spec.analysis.is_none() && spec.canary_analysis.is_some() {
        "spec.canaryAnalysis"
    } else {
        "spec.analysis"
    };
    let path = join_key(&join_index(&join_key(analysis, "metrics"), i), "name");
    Some(
        file.diagnostic_at(
            doc,
            &path,
            &format!(
                "metric `{}` has no Prometheus to query: provider `{}` does not say where \
                 its metrics are",
                m.name,
                c.provider.map(|p| p.name()).unwrap_or_default()
            ),
        )
        .with_help("set `spec.metricsServer`, or pass --metrics-server"),
    )
}

/// A MetricTemplate whose provider `canary run` does not query.
pub fn check_template(file: &SpecFile, doc: &Doc<MetricTemplate>) -> Vec<Diagnostic> {
    match template_refusal(&doc.value) {
        None => Vec::new(),
        Some((message, help)) => vec![
            file.diagnostic_at_value(doc, "spec.provider.type", &message)
                .with_help(help),
        ],
    }
}

/// Why `canary run` cannot query `t`, with a hint; for templates read from
/// a cluster as well as from files.
pub fn template_refusal(t: &MetricTemplate) -> Option<(String, String)> {
    let kind = t
        .spec
        .as_ref()
        .and_then(|s| s.provider.as_ref())
        .and_then(|p| p.r#type.as_deref())
        .unwrap_or("prometheus");
    if let Some(m) = MetricProvider::parse(kind) {
        return template_requirement(t, m);
    }
    Some((
        format!(
            "MetricTemplate {}/{}: metric provider `{kind}`: it is not a metric provider Flagger knows",
            t.namespace(),
            t.name()
        ),
        format!(
            "metric providers canary queries: {}",
            MetricProvider::names().join(", ")
        ),
    ))
}

/// What a template of a queried provider lacks that Flagger's provider
/// refuses to start without: an `address`, or a `secretRef`.
fn template_requirement(t: &MetricTemplate, m: MetricProvider) -> Option<(String, String)> {
    let provider = t.spec.as_ref().and_then(|s| s.provider.as_ref());
    let has_address = provider
        .and_then(|p| p.address.as_deref())
        .is_some_and(|a| !a.trim().is_empty());
    let has_secret = provider
        .and_then(|p| p.secret_ref.as_ref())
        .and_then(|s| s.name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let what = format!(
        "MetricTemplate {}/{}: metric provider `{m}`",
        t.namespace(),
        t.name()
    );
    if m.needs_address() && !has_address {
        return Some((
            format!("{what} needs `spec.provider.address`"),
            format!("set the address of the {m} API"),
        ));
    }
    let (keys, required) = m.secret_keys();
    if required && !has_secret {
        return Some((
            format!("{what} needs `spec.provider.secretRef`"),
            format!(
                "name a Secret in namespace {} holding {}",
                t.namespace(),
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ));
    }
    None
}

fn match_help() -> String {
    let can: Vec<&str> = Provider::ALL
        .into_iter()
        .filter(|p| p.capabilities().header_match)
        .map(Provider::name)
        .collect();
    format!(
        "A/B testing needs a router that matches requests ({} in Flagger); with a \
         weight-only router, drop `match` and `iterations` and shift traffic with `stepWeight`",
        can.join(", ")
    )
}

/// How a message names the provider and where it came from.
fn provider_words(p: Provider, source: ProviderSource) -> String {
    match source {
        ProviderSource::Spec => format!("provider `{p}`"),
        ProviderSource::Flag => format!("provider `{p}` (from --mesh-provider)"),
        ProviderSource::RunTime | ProviderSource::Detected => {
            format!("provider `{p}` (detected in the cluster)")
        }
    }
}

struct Refusals<'a> {
    file: &'a SpecFile,
    doc: &'a Doc<Canary>,
    out: Vec<Diagnostic>,
}

impl Refusals<'_> {
    fn push(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.out.push(
            self.file
                .diagnostic_at_value(self.doc, path, &message.into())
                .with_help(help),
        );
    }

    /// A refusal caused by the command line or the cluster rather than a
    /// field of the file: it points at the Canary document.
    fn file_level(&mut self, message: String, help: String) {
        self.out.push(
            self.file
                .diagnostic_at(self.doc, "kind", &message)
                .with_help(help),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::resolve::{Overrides, resolve};

    fn refusals(yaml: &str, flag: Option<Provider>) -> Vec<Diagnostic> {
        let file = crate::spec::load_str("c.yaml", yaml).expect("valid Flagger spec");
        let doc = &file.canaries[0];
        let c = resolve(
            &file,
            doc,
            &Overrides {
                mesh_provider: flag,
                ..Overrides::default()
            },
        );
        check(&file, doc, &c)
    }

    const AB: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 5
    iterations: 10
    match:
      - headers:
          x-canary: {exact: insider}
";

    #[test]
    fn a_tcp_service_is_refused_where_its_routes_would_be_written_for_http() {
        let tcp = AB.replace(
            "service: {port: 9898}",
            "service: {port: 9898, appProtocol: tcp}",
        );
        let d = refusals(&tcp, Some(Provider::Istio));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.service.appProtocol"));
        assert!(
            d[0].message.contains("cannot route a TCP service"),
            "{}",
            d[0].message
        );
        let weighted = tcp.replace(
            "    iterations: 10\n    match:\n      - headers:\n          x-canary: {exact: insider}\n",
            "    stepWeight: 10\n",
        );
        assert!(refusals(&weighted, Some(Provider::Linkerd)).is_empty());
    }

    #[test]
    fn ab_testing_on_a_traffic_split_is_refused_at_match() {
        let d = refusals(AB, Some(Provider::Linkerd));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.analysis.match[0]"));
        assert_eq!((d[0].line, d[0].column), (12, 9));
        assert!(
            d[0].message.starts_with(
                "provider `linkerd` (from --mesh-provider) cannot route requests by their content"
            ),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn ab_testing_on_kubernetes_is_refused_too() {
        let yaml = AB.replace("spec:\n", "spec:\n  provider: kubernetes\n");
        let d = refusals(&yaml, None);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(
            d[0].message.contains("it has no router"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn a_provider_canary_does_not_drive_is_refused_at_spec_provider() {
        let yaml = AB.replace("spec:\n", "spec:\n  provider: appmesh\n");
        let d = refusals(&yaml, None);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.provider"));
        assert!(d[0].help.as_deref().unwrap().contains("linkerd"));
        assert!(d[0].message.contains("AWS ended support for App Mesh"));
    }

    #[test]
    fn session_affinity_is_refused_only_where_no_driven_router_keeps_a_client() {
        // Istio matches requests, so A/B testing may run on a detected mesh.
        assert!(refusals(AB, None).is_empty());
        let affinity = AB.replace(
            "    match:\n",
            "    sessionAffinity:\n      cookieName: flagger-cookie\n    match:\n",
        );
        // Istio and the Gateway API keep clients on a version, so session
        // affinity may run on a detected mesh too...
        assert!(refusals(&affinity, None).is_empty());
        // ...but not on NGINX, as in Flagger.
        let d = refusals(&affinity, Some(Provider::Nginx));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.analysis.sessionAffinity"));
        for p in [
            Provider::Istio,
            Provider::GatewayApi(crate::provider::GatewayApiVersion::V1),
        ] {
            assert!(refusals(&affinity, Some(p)).is_empty(), "{p}");
        }
    }

    #[test]
    fn a_match_a_router_would_write_only_in_part_is_refused_at_the_match() {
        let prefix = AB.replace("{exact: insider}", "{prefix: ins}");
        let d = refusals(
            &prefix,
            Some(Provider::GatewayApi(crate::provider::GatewayApiVersion::V1)),
        );
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.analysis.match[0]"));
        assert!(
            d[0].message.contains("match a header by `prefix`"),
            "{}",
            d[0].message
        );
        let two = AB.replace(
            "          x-canary: {exact: insider}\n",
            "          x-canary: {exact: insider}\n          cookie: {exact: canary}\n",
        );
        let d = refusals(&two, Some(Provider::Nginx));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("in one match"), "{}", d[0].message);
        assert!(refusals(AB, Some(Provider::Nginx)).is_empty());
        // Contour: one header condition, matched exactly.
        assert!(refusals(AB, Some(Provider::Contour)).is_empty());
        let d = refusals(&two, Some(Provider::Contour));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(
            d[0].message.contains("one header condition"),
            "{}",
            d[0].message
        );
        let d = refusals(&prefix, Some(Provider::Contour));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("only by `exact`"), "{}", d[0].message);
        let mirror = AB.replace(
            "    iterations: 10\n    match:\n      - headers:\n          x-canary: {exact: insider}\n",
            "    iterations: 10\n    mirror: true\n    mirrorWeight: 50\n",
        );
        let d = refusals(
            &mirror,
            Some(Provider::GatewayApi(crate::provider::GatewayApiVersion::V1)),
        );
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path.as_deref(), Some("spec.analysis.mirrorWeight"));
    }

    #[test]
    fn the_table_decides_not_the_provider_name() {
        // Every provider the table says is not driven is refused, each
        // driven one is not (a weighted canary asks nothing special).
        let weighted = AB.replace("    iterations: 10\n    match:\n      - headers:\n          x-canary: {exact: insider}\n", "    stepWeight: 10\n");
        for p in Provider::ALL {
            let d = refusals(&weighted, Some(p));
            let refused = d.iter().any(|d| {
                d.message.contains("does not drive its router")
                    || d.message.contains("so `canary run` does not drive it")
            });
            assert_eq!(refused, !p.capabilities().is_driven(), "{p}: {d:#?}");
        }
    }
}
