//! MetricTemplates a canary uses but its spec file does not hold, read
//! from the cluster as Flagger reads them; and the check, before a run
//! changes anything, that each exists and names a metric provider `canary`
//! queries.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use canary_core::spec::resolve::{MetricSource, ResolvedCanary};
use canary_core::spec::source::{join_index, join_key};
use canary_core::spec::types::{Canary, MetricTemplate};
use canary_core::spec::{Diagnostic, Doc, SpecFile};
use canary_core::support;

/// Reads MetricTemplate `namespace/name` from the cluster.
pub(crate) async fn get(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<MetricTemplate, String> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", "MetricTemplate"),
        "metrictemplates",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let obj = api
        .get_opt(name)
        .await
        .map_err(|e| format!("failed to read MetricTemplate {namespace}/{name}: {e}"))?
        .ok_or_else(|| format!("MetricTemplate {namespace}/{name} not found"))?;
    let value = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
    let t: MetricTemplate = serde_json::from_value(value)
        .map_err(|e| format!("MetricTemplate {namespace}/{name} is invalid: {e}"))?;
    crate::secrets::redactor().learn_template(&t);
    Ok(t)
}

/// What stops canary `c` (document `doc` of `file`) from querying the
/// MetricTemplates it reads from the cluster, each at its `templateRef`.
pub(crate) async fn refusals(
    client: &kube::Client,
    file: &SpecFile,
    doc: &Doc<Canary>,
    c: &ResolvedCanary,
) -> Vec<Diagnostic> {
    let analysis = match &doc.value.spec {
        Some(s) if s.analysis.is_none() && s.canary_analysis.is_some() => "spec.canaryAnalysis",
        _ => "spec.analysis",
    };
    let mut out = Vec::new();
    for (i, m) in c.metrics.iter().enumerate() {
        let MetricSource::Template {
            name,
            namespace,
            in_file: false,
        } = &m.source
        else {
            continue;
        };
        let path = join_key(
            &join_index(&join_key(analysis, "metrics"), i),
            "templateRef",
        );
        let problem = match get(client, namespace, name).await {
            Ok(t) => support::template_refusal(&t).map(|(message, help)| (message, Some(help))),
            Err(e) => Some((e, None)),
        };
        if let Some((message, help)) = problem {
            let mut d = file.diagnostic_at(doc, &path, &message);
            if let Some(h) = help {
                d = d.with_help(h);
            }
            out.push(d);
        }
    }
    out
}
