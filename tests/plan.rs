//! `canary plan`: the seed's canary and the other strategies.

use crate::util::{canary, stdout};

fn plan_json(args: &[&str]) -> serde_json::Value {
    let out = canary()
        .arg("plan")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_seed_canary_on_linkerd_has_twenty_steps_and_linkerd_queries() {
    let p = plan_json(&["examples/podinfo.yaml", "--mesh-provider", "linkerd"]);
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 20);
    assert_eq!(steps[0]["canaryWeight"], 5);
    assert_eq!(steps[0]["primaryWeight"], 95);
    assert_eq!(steps[19]["canaryWeight"], 100);
    for s in steps {
        let sum = s["canaryWeight"].as_u64().unwrap() + s["primaryWeight"].as_u64().unwrap();
        assert_eq!(sum, 100);
        assert_eq!(
            s["hooks"],
            serde_json::json!([{"type": "rollout", "name": "load-test"}])
        );
        assert_eq!(
            s["checks"],
            serde_json::json!(["request-success-rate", "request-duration"])
        );
        assert_eq!(s["gates"], serde_json::json!([]));
    }
    assert_eq!(p["provider"], "linkerd");
    assert_eq!(p["providerSource"], "flag");
    assert_eq!(p["metricsServer"], "http://prometheus.linkerd-viz:9090");
    assert_eq!(p["minDuration"], "3m 20s");
    assert_eq!(p["minRollback"], "50s");
    let checks = p["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for c in checks {
        let q = c["query"].as_str().unwrap();
        assert!(
            q.contains("response_total") || q.contains("response_latency_ms_bucket"),
            "{q}"
        );
        assert!(q.contains(r#"namespace="prod""#), "{q}");
        assert!(q.contains(r#"deployment=~"podinfo""#), "{q}");
        assert!(q.contains("[1m]"), "{q}");
        assert!(!q.contains("{{"), "{q}");
    }
    assert_eq!(checks[0]["condition"], ">= 99");
    assert_eq!(checks[1]["condition"], "<= 500");
    let objects: Vec<(String, String)> = p["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (kind, name) in [
        ("Deployment", "podinfo-primary"),
        ("Deployment", "podinfo"),
        ("Service", "podinfo"),
        ("Service", "podinfo-primary"),
        ("Service", "podinfo-canary"),
        ("TrafficSplit (split.smi-spec.io/v1alpha2)", "podinfo"),
    ] {
        assert!(
            objects.iter().any(|(k, n)| k == kind && n == name),
            "{kind} {name} missing from {objects:?}"
        );
    }
    let start = p["start"].as_array().unwrap();
    assert!(
        start
            .iter()
            .any(|s| s.as_str().unwrap().contains("pre-rollout acceptance-test"))
    );
}

#[test]
fn the_seed_canary_plan_reads_well_as_a_table() {
    let out = canary()
        .args([
            "plan",
            "examples/podinfo.yaml",
            "--mesh-provider",
            "linkerd",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn the_mesh_provider_also_comes_from_the_environment() {
    let out = canary()
        .args(["plan", "examples/podinfo.yaml", "-o", "json"])
        .env("CANARY_MESH_PROVIDER", "linkerd")
        .output()
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["provider"], "linkerd");
}

#[test]
fn without_a_provider_the_plan_says_it_is_chosen_at_run_time() {
    let p = plan_json(&["examples/podinfo.yaml"]);
    assert_eq!(p["provider"], serde_json::Value::Null);
    assert_eq!(p["providerSource"], "runTime");
    assert_eq!(p["steps"].as_array().unwrap().len(), 20);
    assert!(p["checks"][0]["query"].is_null());
    assert!(
        p["checks"][0]["note"]
            .as_str()
            .unwrap()
            .contains("provider chosen at run time")
    );
    let table = stdout(
        &canary()
            .args(["plan", "examples/podinfo.yaml"])
            .output()
            .unwrap(),
    );
    assert!(table.contains("chosen at run time"), "{table}");
}

#[test]
fn an_unknown_mesh_provider_is_a_usage_error() {
    let out = canary()
        .args(["plan", "examples/podinfo.yaml", "--mesh-provider", "linkrd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `linkerd`?"));
}

#[test]
fn a_plan_lists_where_alerts_go_and_which_at_each_severity() {
    let out = canary()
        .args(["plan", "examples/alert-provider.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let alerts: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Alerts")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        alerts,
        [
            "  on-call via AlertProvider flagger/on-call (severity error):",
            "    - Failed checks threshold reached N",
            "    - Progress deadline exceeded …",
        ],
        "{text}"
    );
    let out = canary()
        .args(["plan", "examples/alert-provider.yaml", "-o", "json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["alerts"][0]["severity"], "error");
    assert_eq!(plan["alerts"][0]["provider"], "flagger/on-call");
}

#[test]
fn a_b_testing_on_a_weight_only_router_is_refused_naming_match() {
    let out = canary()
        .args([
            "plan",
            "examples/ab-testing.yaml",
            "--mesh-provider",
            "linkerd",
        ])
        .output()
        .unwrap();
    // The file names istio, which wins over the flag and matches requests.
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ab.yaml");
    let text = std::fs::read_to_string(crate::util::path("examples/ab-testing.yaml")).unwrap();
    std::fs::write(&f, text.replace("  provider: istio\n", "")).unwrap();
    let out = canary()
        .arg("plan")
        .arg(&f)
        .args(["--mesh-provider", "linkerd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(spec.analysis.match[0])"), "{err}");
    assert!(err.contains("A/B testing (`match`) cannot run"), "{err}");
}

#[test]
fn blue_green_with_kubernetes_tests_the_canary_service_alone() {
    let p = plan_json(&["examples/blue-green.yaml"]);
    assert_eq!(p["strategy"], "blue/green");
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert!(
        steps
            .iter()
            .all(|s| s["routing"]["kind"] == "canaryService")
    );
    let q = p["checks"][0]["query"].as_str().unwrap();
    assert!(q.contains(r#"job="podinfo-canary""#), "{q}");
    assert!(q.contains("[1m]"), "{q}");
    assert_eq!(p["checks"][0]["source"], "MetricTemplate test/error-rate");
}

#[test]
fn step_weights_and_a_gradual_promotion_are_planned_step_by_step() {
    // The Gateway API example's analysis, on Linkerd.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("steps.yaml");
    let text = std::fs::read_to_string(crate::util::path("examples/gateway-api.yaml")).unwrap();
    std::fs::write(
        &f,
        text.replace("provider: gatewayapi:v1", "provider: linkerd"),
    )
    .unwrap();
    let p = plan_json(&[f.to_str().unwrap()]);
    let weights: Vec<u64> = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["canaryWeight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [1, 5, 10, 25, 50]);
    let promotion: Vec<&str> = p["promotion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        promotion.iter().any(|s| s.contains("75 → 100")),
        "{promotion:?}"
    );
    // Five steps plus one more interval for the second promotion shift.
    assert_eq!(p["minDuration"], "6m");
    assert!(p["checks"][0]["note"].as_str().unwrap().contains("cluster"));
}

#[test]
fn metric_template_variables_are_substituted() {
    let p = plan_json(&["examples/metric-template.yaml"]);
    let q = p["checks"][1]["query"].as_str().unwrap();
    assert!(q.contains(r#"status_code!="404""#), "{q}");
    assert_eq!(
        p["checks"][1]["source"],
        "MetricTemplate prod/not-found-percentage"
    );
}

#[test]
fn plan_picks_a_canary_by_name_when_a_file_holds_several() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("two.yaml");
    let one = std::fs::read_to_string(crate::util::path("examples/podinfo.yaml")).unwrap();
    let two = one.replace(
        "name: podinfo\n  namespace: prod",
        "name: other\n  namespace: prod",
    );
    std::fs::write(&f, format!("{one}---\n{two}")).unwrap();
    let out = canary().arg("plan").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose one with --name"));
    let out = canary()
        .arg("plan")
        .arg(&f)
        .args(["--name", "other", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["canary"], "other");
}

/// Flagger's two warnings when a canary analysis (`stepWeight`) meets the
/// kubernetes provider, which cannot shift traffic.
const KUBERNETES_WARNINGS: [&str; 2] = [
    "Progressive traffic is not supported when using the kubernetes provider",
    "Setting canaryAnalysis.iterations: 10",
];

#[test]
fn a_canary_analysis_on_kubernetes_runs_as_blue_green_with_flaggers_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("podinfo.yaml");
    let text = std::fs::read_to_string("examples/podinfo.yaml")
        .unwrap()
        .replacen(
            "spec:\n",
            "spec:\n  provider: kubernetes\n  metricsServer: http://prometheus.monitoring:9090\n",
            1,
        );
    std::fs::write(&file, text).unwrap();
    let path = file.display().to_string();
    let args = [path.as_str()];
    let p = plan_json(&args);
    assert_eq!(p["strategy"], "blue/green");
    assert_eq!(p["steps"].as_array().unwrap().len(), 10);
    let notes: Vec<&str> = p["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for w in KUBERNETES_WARNINGS {
        assert!(notes.contains(&w), "{notes:?}");
    }
    let table = canary().arg("plan").args(args).output().unwrap();
    assert!(table.status.success());
    let validate = canary().arg("validate").args(args).output().unwrap();
    assert!(validate.status.success());
    for out in [&table, &validate] {
        let text = stdout(out) + &String::from_utf8_lossy(&out.stderr);
        for w in KUBERNETES_WARNINGS {
            assert!(text.contains(w), "{text}");
        }
    }
    // Blue/green as written gets no warning.
    let p = plan_json(&["examples/blue-green.yaml"]);
    let notes = p["notes"].to_string();
    assert!(!notes.contains("Progressive traffic"), "{notes}");
}
