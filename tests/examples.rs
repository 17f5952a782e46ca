//! Every spec example under `examples/` is a valid Flagger spec that
//! `canary validate` accepts, or names the field that asks for what
//! `canary run` does not carry out yet; the other examples (RBAC, CI
//! workflows) load as what they are.

use crate::util::{canary, root, stdout};

/// Examples that are not Canary spec files: the spec loader rightly
/// refuses their Kubernetes kinds.
const NOT_SPECS: &[&str] = &["rbac.yaml", "job.yaml", "cronjob.yaml"];

/// Examples of Flagger features `canary run` does not carry out yet, with
/// the fields `validate` refuses.
const NOT_RUN_YET: &[(&str, &[&str])] = &[
    ("ab-testing.yaml", &["spec.provider"]),
    ("alert-provider.yaml", &["spec.analysis.alerts"]),
    ("gateway-api.yaml", &["spec.provider"]),
    ("istio.yaml", &["spec.analysis.alerts", "spec.provider"]),
];

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
    let rules = canary_sim::rbac::Rules::from_yaml(&text).unwrap();
    assert!(!rules.grants().is_empty());
}

#[test]
fn every_example_validates_or_names_what_canary_does_not_run_yet() {
    let files = example_files();
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let out = canary().arg("validate").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        match NOT_RUN_YET.iter().find(|(n, _)| *n == name) {
            None => assert!(out.status.success(), "{name}:\n{err}"),
            Some((_, fields)) => {
                assert_eq!(out.status.code(), Some(2), "{name}:\n{err}");
                let named: Vec<&str> = err
                    .lines()
                    .filter_map(|l| l.rsplit_once(" (")?.1.strip_suffix(')'))
                    .collect();
                assert_eq!(named, *fields, "{name}:\n{err}");
            }
        }
    }
}

#[test]
fn validate_prints_one_line_per_canary_with_strategy_provider_and_steps() {
    let out = canary()
        .args([
            "validate",
            "examples/podinfo.yaml",
            "examples/metric-template.yaml",
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
        lines[1].contains("podinfo.prod  canary  provider linkerd  5 steps (10% → 50%)"),
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

/// The `canary ...` command lines of a workflow's `run:` steps, with
/// `${{ }}` expressions and shell variables replaced by placeholders and
/// the line cut at the first pipe, redirection or command separator.
fn canary_commands(workflow: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(workflow).unwrap();
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", workflow.display()));
    let expression = regex::Regex::new(r"\$\{\{[^}]*\}\}").unwrap();
    let variable = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    let mut out = Vec::new();
    let jobs = doc["jobs"].as_mapping().expect("a workflow has jobs");
    for job in jobs.values() {
        for step in job["steps"].as_sequence().into_iter().flatten() {
            let Some(script) = step["run"].as_str() else {
                continue;
            };
            for line in script.lines() {
                let line = line.trim();
                if !line.starts_with("canary ") {
                    continue;
                }
                let line = expression.replace_all(line, "PLACEHOLDER");
                let line = variable.replace_all(&line, "PLACEHOLDER");
                let command = line.split(['|', '>', ';', '&']).next().unwrap_or_default();
                out.push(shell_words(command));
            }
        }
    }
    out
}

/// Splits a command line into words as a shell would (quotes, no
/// expansion).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in `{line}`");
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn the_ci_workflows_use_only_flags_canary_has() {
    use clap::Parser;
    let dir = root().join("examples/ci");
    let mut workflows: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    workflows.sort();
    let names: Vec<String> = workflows
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["github-actions-gitops.yml", "github-actions-set-image.yml"]
    );
    for w in &workflows {
        let commands = canary_commands(w);
        assert!(!commands.is_empty(), "{}: no canary command", w.display());
        for argv in commands {
            if let Err(e) = canary::Cli::try_parse_from(&argv) {
                panic!("{}: `{}`:\n{e}", w.display(), argv.join(" "));
            }
        }
    }
    let set_image = canary_commands(&dir.join("github-actions-set-image.yml"));
    assert!(
        set_image
            .iter()
            .any(|a| a.contains(&"--set-image".to_string())),
        "{set_image:?}"
    );
    let gitops = canary_commands(&dir.join("github-actions-gitops.yml"));
    assert!(
        gitops
            .iter()
            .any(|a| a.contains(&"--wait-for-change".to_string())),
        "{gitops:?}"
    );
}

#[test]
fn command_lines_are_split_like_a_shell_and_a_wrong_flag_is_caught() {
    use clap::Parser;
    assert_eq!(
        shell_words("canary run 'a b.yaml' --timeout \"30m\""),
        ["canary", "run", "a b.yaml", "--timeout", "30m"]
    );
    let argv = shell_words("canary run deploy/canary.yaml --time-out 30m");
    assert!(canary::Cli::try_parse_from(&argv).is_err());
}
