//! Manifests as people keep them: a Canary next to its Deployment and
//! Service in one multi-document file, a directory of files (`kubectl
//! apply -f DIR`, `-R` for its subdirectories), or standard input
//! (`kustomize build | canary validate -`).
//!
//! The documents of other API groups are skipped by the loader; here they
//! serve the cross-checks: a Canary whose `targetRef` names a Deployment
//! of the same input is checked against it (its container ports, its
//! labels), as Flagger would find out only once running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::source::{join_index, join_key};
use super::types::{Canary, IntOrString};
use super::{Diagnostic, Doc, Limits, Other, SpecFile, elide, load_file_with, load_reader_with};

/// The name standard input goes by in messages.
pub const STDIN: &str = "<stdin>";

/// The file names read from a directory, as `kubectl apply -f DIR` reads.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Labels Flagger accepts as a target's selector label, in order.
pub const SELECTOR_LABELS: &[&str] = &["app", "name", "app.kubernetes.io/name"];

/// The files of `dir` ending in one of [`EXTENSIONS`], sorted by path;
/// those of its subdirectories too when `recursive`. Symbolic links to
/// directories are not followed (nor does kubectl), so a link cycle ends.
pub fn list_dir(dir: &Path, recursive: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            if recursive {
                out.extend(list_dir(&path, true)?);
            }
            continue;
        }
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if wanted && path.is_file() {
            out.push(path);
        }
    }
    Ok(out)
}

/// Reads one command-line input: a file, or the files of a directory.
/// Each file is loaded within `limits`; every problem of every file is
/// returned. An input that holds no Flagger document is refused.
pub fn load_path(
    path: &Path,
    recursive: bool,
    limits: &Limits,
) -> Result<Vec<SpecFile>, Vec<Diagnostic>> {
    let name = path.display().to_string();
    if !path.is_dir() {
        let file = load_file_with(path, limits)?;
        let files = vec![file];
        require_flagger(&name, &files)?;
        return Ok(files);
    }
    let paths = list_dir(path, recursive).map_err(|e| {
        vec![Diagnostic::file(
            &name,
            format!("failed to read the directory: {e}"),
        )]
    })?;
    if paths.is_empty() {
        let sub = if recursive {
            ""
        } else {
            " (subdirectories are read with `-R`)"
        };
        return Err(vec![
            Diagnostic::file(
                &name,
                format!("the directory holds no .yaml, .yml or .json file{sub}"),
            )
            .with_help("pass the directory that holds the Canary, or the file itself"),
        ]);
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        match load_file_with(p, limits) {
            Ok(f) => files.push(f),
            // A file of nothing but comments or blank lines says nothing
            // in a directory, as kubectl passes over it.
            Err(e) if e.len() == 1 && e[0].message == super::NO_DOCUMENTS => {}
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    require_flagger(&name, &files)?;
    Ok(files)
}

/// Reads standard input (or any reader) as one input named [`STDIN`].
pub fn load_stdin(
    reader: impl std::io::Read,
    limits: &Limits,
) -> Result<SpecFile, Vec<Diagnostic>> {
    let file = load_reader_with(STDIN, reader, limits)?;
    require_flagger(STDIN, std::slice::from_ref(&file))?;
    Ok(file)
}

/// The kinds of the documents skipped in `files`, and how many of each.
pub fn skipped<'a>(files: impl IntoIterator<Item = &'a SpecFile>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in files {
        for o in &f.others {
            *out.entry(o.kind.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// `1 Deployment, 2 Services`.
pub fn describe_kinds(kinds: &BTreeMap<String, usize>) -> String {
    kinds
        .iter()
        .map(|(k, n)| match *n {
            1 => format!("1 {}", elide(k)),
            n if k.ends_with('s') || k.ends_with('x') => format!("{n} {}es", elide(k)),
            n if k.ends_with('y') => format!("{n} {}ies", elide(&k[..k.len() - 1])),
            n => format!("{n} {}s", elide(k)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An input with no Flagger document is a mistake (the wrong file, an
/// overlay that lost its Canary), not an empty success.
fn require_flagger(name: &str, files: &[SpecFile]) -> Result<(), Vec<Diagnostic>> {
    let flagger = files.iter().any(|f| {
        !f.canaries.is_empty() || !f.metric_templates.is_empty() || !f.alert_providers.is_empty()
    });
    if flagger {
        return Ok(());
    }
    let kinds = skipped(files);
    let what = if kinds.is_empty() {
        String::new()
    } else {
        format!("; skipped {}", describe_kinds(&kinds))
    };
    Err(
        vec![Diagnostic::file(name, format!("holds no Canary document{what}")).with_help(
        "canary reads Canary, MetricTemplate and AlertProvider documents (flagger.app/v1beta1); \
         other objects next to them are skipped",
    )],
    )
}

/// Checks every Canary whose `targetRef` names a Deployment found among
/// `files` against that Deployment: the service's target port is one of
/// its container ports, and its labels carry a selector label that its pod
/// template has. A Deployment not in the input is not checked here.
pub fn cross_check(files: &[&SpecFile]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for file in files {
        for doc in &file.canaries {
            out.extend(check_target(files, file, doc));
        }
    }
    out
}

/// [`cross_check`] of one canary of `file`.
pub fn check_target(files: &[&SpecFile], file: &SpecFile, doc: &Doc<Canary>) -> Vec<Diagnostic> {
    let Some((dep_file, dep)) = target_in(files, &doc.value) else {
        return Vec::new();
    };
    let mut out = ports(file, doc, dep_file, dep);
    out.extend(labels(file, doc, dep_file, dep));
    out
}

/// The Deployment `canary` targets, when the input holds it.
fn target_in<'f>(files: &[&'f SpecFile], canary: &Canary) -> Option<(&'f SpecFile, &'f Other)> {
    let target = canary.spec.as_ref()?.target_ref.as_ref()?;
    if target.kind.as_deref() != Some("Deployment") {
        return None;
    }
    let name = target.name.as_deref()?;
    let ns = canary.explicit_namespace();
    files.iter().find_map(|f| {
        f.others
            .iter()
            .find(|o| {
                o.kind == "Deployment"
                    && o.api_version.starts_with("apps/")
                    && o.name() == name
                    // A document without a namespace goes where the other
                    // goes (`-n`, the context's), so it matches any.
                    && match (ns, o.namespace()) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }
            })
            .map(|o| (*f, o))
    })
}

/// Where `path` of `other` is, as `file:line:col`.
fn place(file: &SpecFile, other: &Other, path: &str) -> String {
    file.diagnostic(other.spans.locate(path), "").location()
}

fn ports(file: &SpecFile, doc: &Doc<Canary>, dep_file: &SpecFile, dep: &Other) -> Vec<Diagnostic> {
    let Some(svc) = doc.value.spec.as_ref().and_then(|s| s.service.as_ref()) else {
        return Vec::new();
    };
    let (wanted, at) = match (&svc.target_port, svc.port) {
        (Some(t), _) => (t.clone(), "spec.service.targetPort"),
        (None, Some(p)) => (IntOrString::Int(p.into()), "spec.service.port"),
        (None, None) => return Vec::new(),
    };
    // (number, name) of every container port.
    let mut declared: Vec<(Option<i64>, Option<&str>)> = Vec::new();
    let containers = "spec.template.spec.containers";
    if let Some(Value::Array(cs)) = dep.value.pointer("/spec/template/spec/containers") {
        for c in cs {
            if let Some(Value::Array(ps)) = c.get("ports") {
                for p in ps {
                    declared.push((
                        p.get("containerPort").and_then(Value::as_i64),
                        p.get("name").and_then(Value::as_str),
                    ));
                }
            }
        }
    }
    let found = match &wanted {
        IntOrString::Int(n) => declared.iter().any(|(p, _)| *p == Some(*n)),
        IntOrString::String(s) => declared.iter().any(|(_, name)| *name == Some(s.as_str())),
    };
    // Kubernetes forwards a port number whether or not a container
    // declares it; a name must be declared.
    let undeclared_number = declared.is_empty() && matches!(wanted, IntOrString::Int(_));
    if found || undeclared_number {
        return Vec::new();
    }
    let list = declared
        .iter()
        .map(|(p, n)| match (p, n) {
            (Some(p), Some(n)) => format!("{p} ({})", elide(n)),
            (Some(p), None) => p.to_string(),
            (None, Some(n)) => format!("({})", elide(n)),
            (None, None) => "?".to_string(),
        })
        .collect::<Vec<_>>();
    let (what, ports_path) = match list.is_empty() {
        true => (
            "it declares no container port".to_string(),
            containers.to_string(),
        ),
        false => (
            format!("its container ports: {}", list.join(", ")),
            first_ports_path(dep).unwrap_or_else(|| containers.to_string()),
        ),
    };
    let field = if at.ends_with("targetPort") {
        "service.targetPort"
    } else {
        "service.port"
    };
    let by = match &wanted {
        IntOrString::Int(n) => format!("{field} {n} is not a container port"),
        IntOrString::String(s) => format!("{field} `{}` names no container port", elide(s)),
    };
    vec![
        file.diagnostic_at_value(
            doc,
            at,
            &format!(
                "{by} of Deployment `{}` ({}); {what}",
                elide(dep.name()),
                place(dep_file, dep, &ports_path)
            ),
        )
        .with_help(
            "the generated services send traffic to this port of the pods: \
             set service.targetPort to a container port, or declare the port in the Deployment",
        ),
    ]
}

/// `spec.template.spec.containers[i].ports` of the first container that
/// declares ports.
fn first_ports_path(dep: &Other) -> Option<String> {
    let cs = dep
        .value
        .pointer("/spec/template/spec/containers")?
        .as_array()?;
    let i = cs.iter().position(|c| c.get("ports").is_some())?;
    Some(join_key(
        &join_index("spec.template.spec.containers", i),
        "ports",
    ))
}

fn labels(file: &SpecFile, doc: &Doc<Canary>, dep_file: &SpecFile, dep: &Other) -> Vec<Diagnostic> {
    let strings = |v: Option<&Value>| -> BTreeMap<String, String> {
        v.and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let selector = strings(dep.value.pointer("/spec/selector/matchLabels"));
    let template = strings(dep.value.pointer("/spec/template/metadata/labels"));
    let target_at = file
        .diagnostic_at_value(doc, "spec.targetRef.name", "")
        .location();
    let mut out = Vec::new();
    let name = elide(dep.name());
    if !SELECTOR_LABELS.iter().any(|l| selector.contains_key(*l)) {
        let path = if selector.is_empty() {
            "spec.selector"
        } else {
            "spec.selector.matchLabels"
        };
        out.push(
            dep_file
                .diagnostic(
                    dep.spans.locate(path),
                    format!(
                        "Deployment `{name}`, the target of canary `{}` ({target_at}), \
                         has no selector label",
                        elide(doc.value.name())
                    ),
                )
                .with_path(path)
                .with_help(format!(
                    "Flagger needs one of {} in spec.selector.matchLabels and the pod template's labels",
                    SELECTOR_LABELS.join(", ")
                )),
        );
    }
    for (k, v) in &selector {
        if template.get(k) == Some(v) {
            continue;
        }
        let path = if template.is_empty() {
            "spec.template.metadata"
        } else {
            "spec.template.metadata.labels"
        };
        let has = match template.get(k) {
            Some(other) => format!("has `{}: {}`", elide(k), elide(other)),
            None => format!("has no label `{}`", elide(k)),
        };
        out.push(
            dep_file
                .diagnostic(
                    dep.spans.locate(path),
                    format!(
                        "the pod template of Deployment `{name}`, the target of canary `{}` ({target_at}), \
                         {has}; its selector wants `{}: {}` ({})",
                        elide(doc.value.name()),
                        elide(k),
                        elide(v),
                        place(dep_file, dep, "spec.selector.matchLabels"),
                    ),
                )
                .with_path(path)
                .with_help("the pod template's labels must carry every label of spec.selector.matchLabels"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_in_plain_words() {
        let kinds: BTreeMap<String, usize> = [
            ("Deployment".to_string(), 1),
            ("Ingress".to_string(), 2),
            ("NetworkPolicy".to_string(), 3),
            ("Role".to_string(), 2),
        ]
        .into();
        assert_eq!(
            describe_kinds(&kinds),
            "1 Deployment, 2 Ingresses, 3 NetworkPolicies, 2 Roles"
        );
    }

    #[test]
    fn a_directory_gives_its_yaml_yml_and_json_files_and_subdirectories_with_recursive() {
        let dir = std::env::temp_dir().join(format!("canary-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["b.yaml", "a.yml", "c.json", "notes.txt", "sub/d.yaml"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let names = |r| {
            list_dir(&dir, r)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(false), ["a.yml", "b.yaml", "c.json"]);
        assert_eq!(names(true), ["a.yml", "b.yaml", "c.json", "sub/d.yaml"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_canary_with_its_deployment_in_one_text_is_cross_checked() {
        let text = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: web}
spec:
  provider: linkerd
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  service: {port: 80, targetPort: http}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
";
        let file = super::super::load_str("web.yaml", text).unwrap();
        assert_eq!(file.others.len(), 1);
        assert!(cross_check(&[&file]).is_empty());
        let bad = super::super::load_str(
            "web.yaml",
            &text.replace("targetPort: http", "targetPort: grpc"),
        )
        .unwrap();
        let errors = cross_check(&[&bad]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path.as_deref(), Some("spec.service.targetPort"));
        assert!(
            errors[0].message.contains("(web.yaml:11:11)"),
            "{}",
            errors[0].message
        );
    }
}
