//! Every spec example under `examples/` is a valid spec; the other
//! examples (RBAC, CI workflows) load as what they are.

use crate::util::{canary, root, stdout};

/// Examples that are not Canary spec files: the spec loader rightly
/// refuses their Kubernetes kinds.
const NOT_SPECS: &[&str] = &["rbac.yaml"];

fn example_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| {
            !NOT_SPECS
                .iter()
                .any(|n| p.file_name().is_some_and(|f| f == *n))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_rbac_example_is_not_a_spec_and_loads_as_rbac() {
    let out = canary()
        .args(["validate", "examples/rbac.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a Flagger document"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(root().join("examples/rbac.yaml")).unwrap();
    let rules = canary::sim::rbac::Rules::from_yaml(&text).unwrap();
    assert!(!rules.grants().is_empty());
}

#[test]
fn every_example_validates() {
    let files = example_files();
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let out = canary().arg("validate").arg(&f).output().unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn validate_prints_one_line_per_canary_with_strategy_provider_and_steps() {
    let out = canary()
        .args([
            "validate",
            "examples/podinfo.yaml",
            "examples/ab-testing.yaml",
            "examples/blue-green.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("ok")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("podinfo.prod"), "{text}");
    assert!(lines[0].contains("canary"), "{text}");
    assert!(lines[0].contains("provider chosen at run time"), "{text}");
    assert!(lines[0].contains("20 steps (5% → 100%)"), "{text}");
    assert!(
        lines[1].contains("abtest.test  A/B testing  provider istio  10 steps"),
        "{text}"
    );
    assert!(
        lines[2].contains("blue/green  provider kubernetes  10 steps"),
        "{text}"
    );
}

#[test]
fn validate_json_is_one_document_for_machines() {
    let out = canary()
        .args(["validate", "-o", "json", "examples/metric-template.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["metricTemplates"], 1);
    assert_eq!(v["canaries"][0]["name"], "podinfo");
    assert_eq!(v["canaries"][0]["provider"], "linkerd");
    assert_eq!(v["canaries"][0]["steps"], 5);
    assert_eq!(
        v["canaries"][0]["weights"],
        serde_json::json!([10, 20, 30, 40, 50])
    );
}
