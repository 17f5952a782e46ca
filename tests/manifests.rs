//! Manifests as people keep them: a Canary next to its Deployment and
//! Service, a directory of files, standard input; and the Deployment of
//! the input checked against the Canary that targets it.

use crate::util::{canary, root, stderr, stdout};

fn manifest() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/manifest-podinfo.yaml")).unwrap()
}

/// The fixture with one line changed.
fn manifest_with(from: &str, to: &str) -> String {
    let text = manifest();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

#[test]
fn a_canary_next_to_its_deployment_and_service_validates_and_says_what_was_skipped() {
    let out = canary()
        .args(["validate", "tests/fixtures/manifest-podinfo.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok  podinfo.test"), "{text}");
    assert!(
        text.contains("skipped 2 documents that are not Flagger's: 1 Deployment, 1 Service"),
        "{text}"
    );
    let json = canary()
        .args([
            "validate",
            "-o",
            "json",
            "tests/fixtures/manifest-podinfo.yaml",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["skipped"],
        serde_json::json!({"Deployment": 1, "Service": 1})
    );
}

#[test]
fn standard_input_is_read_with_a_dash_and_named_stdin() {
    let out = canary()
        .args(["validate", "-"])
        .write_stdin(manifest())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("(<stdin>)"), "{}", stdout(&out));

    let bad = manifest_with("stepWeight: 10", "stepWeight: 101");
    let out = canary()
        .args(["validate", "-"])
        .write_stdin(bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--> <stdin>:"), "{}", stderr(&out));

    let out = canary()
        .args(["plan", "-"])
        .write_stdin(manifest())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Canary podinfo.test"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn standard_input_without_a_canary_is_an_error_naming_it() {
    let only_deployment = manifest().split("---").next().unwrap().to_string();
    for args in [
        &["validate", "-"][..],
        &["plan", "-"],
        &["run", "-", "--kubeconfig", "/nonexistent"],
        &["status", "-f", "-", "--kubeconfig", "/nonexistent"],
        &["abort", "-f", "-", "--kubeconfig", "/nonexistent"],
    ] {
        let out = canary()
            .args(args)
            .write_stdin(only_deployment.clone())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("<stdin>")
                && stderr(&out).contains("holds no Canary document; skipped 1 Deployment"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn standard_input_keeps_the_size_and_document_limits() {
    let big = format!("# {}\n{}", "x".repeat(4096), manifest());
    let out = canary()
        .args(["validate", "--max-input-size", "1KiB", "-"])
        .write_stdin(big)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<stdin>") && stderr(&out).contains("larger than 1 KiB"),
        "{}",
        stderr(&out)
    );
    let many = "---\na: 1\n".repeat(20_000);
    let out = canary()
        .args(["validate", "-"])
        .write_stdin(many)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<stdin>") && stderr(&out).contains("YAML documents"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dash_given_twice_is_refused() {
    let out = canary()
        .args(["validate", "-", "-"])
        .write_stdin(manifest())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`-` is given twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_directory_is_read_as_kubectl_apply_reads_it_and_subdirectories_with_r() {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest();
    let mut parts = text.split("---\n");
    let (deployment, service, canary_doc) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    std::fs::write(dir.path().join("deployment.yaml"), deployment).unwrap();
    std::fs::write(dir.path().join("service.yml"), service).unwrap();
    std::fs::write(dir.path().join("README.md"), "# not read: not YAML\n").unwrap();
    std::fs::create_dir(dir.path().join("canary")).unwrap();
    std::fs::write(dir.path().join("canary/canary.yaml"), canary_doc).unwrap();

    // Without -R, the subdirectory is not read: no canary.
    let out = canary().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds no Canary document; skipped 1 Deployment, 1 Service"),
        "{}",
        stderr(&out)
    );

    let out = canary()
        .args(["validate", "-R"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok  podinfo.test"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 Deployment, 1 Service"));

    // The Deployment of another file of the directory is checked too.
    std::fs::write(
        dir.path().join("deployment.yaml"),
        deployment.replace("containerPort: 9898", "containerPort: 8080"),
    )
    .unwrap();
    let out = canary()
        .args(["plan", "--recursive"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("service.port 9898 is not a container port of Deployment `podinfo`")
            && err.contains("deployment.yaml:18:11")
            && err.contains("canary.yaml:"),
        "{err}"
    );
}

#[test]
fn a_service_port_no_container_declares_is_an_error_naming_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.yaml");
    std::fs::write(
        &f,
        manifest_with("containerPort: 9898", "containerPort: 8080"),
    )
    .unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("service.port 9898 is not a container port of Deployment `podinfo`")
            && err.contains("app.yaml:18:11)")
            && err.contains("its container ports: 8080 (http)")
            && err.contains("--> ")
            && err.contains("app.yaml:43:11 (spec.service.port)"),
        "{err}"
    );
    assert!(!stdout(&out).contains("ok  podinfo"), "{}", stdout(&out));
}

#[test]
fn a_target_port_is_matched_by_number_or_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.yaml");
    let by_name = manifest_with(
        "    port: 9898\n  analysis",
        "    port: 80\n    targetPort: http\n  analysis",
    );
    std::fs::write(&f, &by_name).unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    std::fs::write(
        &f,
        by_name.replace("targetPort: http", "targetPort: metrics"),
    )
    .unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("service.targetPort `metrics` names no container port"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&f, by_name.replace("targetPort: http", "targetPort: 9898")).unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn pod_template_labels_that_miss_the_selector_are_an_error_naming_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.yaml");
    std::fs::write(
        &f,
        manifest_with("        app: podinfo", "        app: other"),
    )
    .unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("has `app: other`; its selector wants `app: podinfo`")
            && err.contains("the target of canary `podinfo` (")
            && err.contains("app.yaml:41:11")
            && err.contains("app.yaml:12:7 (spec.template.metadata.labels)"),
        "{err}"
    );

    let no_selector_label = manifest()
        .replace(
            "      app: podinfo\n  template",
            "      tier: web\n  template",
        )
        .replace(
            "        app: podinfo\n    spec",
            "        tier: web\n    spec",
        );
    std::fs::write(&f, no_selector_label).unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no selector label"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_deployment_not_in_the_input_is_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.yaml");
    // Another Deployment of the input is not the target.
    std::fs::write(
        &f,
        manifest_with(
            "  name: podinfo\n  namespace: test\nspec:\n  selector",
            "  name: backend\n  namespace: test\nspec:\n  selector",
        )
        .replace("containerPort: 9898", "containerPort: 1"),
    )
    .unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
