//! Completions and man pages are committed; they must match what the clap
//! definition generates today.

use crate::util::root;

#[test]
fn generated_completions_and_man_pages_are_up_to_date() {
    let regenerate = std::env::var_os("CANARY_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, contents) in canary::generated_files() {
        let path = root().join(&rel);
        let current = std::fs::read(&path).unwrap_or_default();
        if current != contents {
            if regenerate {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &contents).unwrap();
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are out of date: {}\nregenerate them with: \
         CANARY_REGENERATE=1 cargo test generated",
        stale.join(", ")
    );
}

/// The README's table of what `canary run` drives says what the capability
/// table says, provider by provider.
#[test]
fn the_readme_provider_table_agrees_with_the_capability_table() {
    use canary_core::provider::Provider;
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## What `canary run` drives")
        .nth(1)
        .expect("README has the section");
    let rows: Vec<&str> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .collect();
    for p in Provider::ALL {
        let name = p.name();
        // `smi:v1alpha1`–`v1alpha3` stands for the three SMI versions.
        let row = rows
            .iter()
            .find(|r| {
                r.split('|').nth(1).is_some_and(|cell| {
                    cell.contains(&format!("`{name}`"))
                        || (name.starts_with("smi:") && cell.contains("`smi:v1alpha1`"))
                })
            })
            .unwrap_or_else(|| panic!("the README table has no row for {name}"));
        let refused = row.contains("refused");
        assert_eq!(
            refused,
            !p.capabilities().is_driven(),
            "README says {name} is {}: {row}",
            if refused { "refused" } else { "driven" }
        );
        for kind in p.capabilities().targets {
            assert!(
                row.contains(&format!("{kind}s")),
                "README row of {name} names no {kind}s: {row}"
            );
        }
        for kind in p.capabilities().autoscalers {
            let said = match *kind {
                "HorizontalPodAutoscaler" => "HPA",
                other => other,
            };
            assert!(
                row.contains(said),
                "README row of {name} names no {said}: {row}"
            );
        }
    }
}

/// The EXIT STATUS section of a man page: its codes, in order.
fn exit_codes(page: &str) -> Vec<String> {
    let section = page
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .expect("an EXIT STATUS section")
        .split("\n.SH ")
        .next()
        .unwrap();
    let lines: Vec<&str> = section.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1].to_string())
        .collect()
}

/// Each man page has its command's own exit codes, environment and
/// examples, the same that `--help` shows.
#[test]
fn each_man_page_has_its_own_exit_codes_environment_and_examples() {
    let man = |name: &str| std::fs::read_to_string(root().join("man").join(name)).unwrap();
    let status = man("canary-status.1");
    assert_eq!(
        exit_codes(&status),
        ["0", "1", "2", "3", "4", "5", "130", "143"]
    );
    assert!(status.contains("\\-\\-exit\\-zero"), "{status}");
    assert!(
        !status.contains("CANARY_LEASE_HOLDER"),
        "status takes no lease"
    );
    assert_eq!(exit_codes(&man("canary-validate.1")), ["0", "2", "3"]);
    assert_eq!(exit_codes(&man("canary-plan.1")), ["0", "2"]);
    assert_eq!(exit_codes(&man("canary-pause.1")), ["0", "2", "3"]);
    let run = man("canary-run.1");
    assert_eq!(exit_codes(&run).len(), 8);
    for var in [
        "CANARY_LEASE_HOLDER",
        "CANARY_MESH_PROVIDER",
        "KUBECONFIG",
        "NO_COLOR",
        "GITHUB_STEP_SUMMARY",
        "COLUMNS",
    ] {
        assert!(
            run.contains(&format!("\\fB{var}")),
            "canary-run.1 lacks {var}"
        );
    }
    for page in [
        "canary.1",
        "canary-run.1",
        "canary-status.1",
        "canary-abort.1",
        "canary-promote.1",
        "canary-pause.1",
        "canary-resume.1",
        "canary-revert.1",
        "canary-validate.1",
        "canary-plan.1",
        "canary-demo.1",
        "canary-completions.1",
    ] {
        let text = man(page);
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES"] {
            assert_eq!(text.matches(section).count(), 1, "{page}: {section}");
        }
    }
}

#[test]
fn long_help_lists_the_environment_each_command_reads() {
    use crate::util::{canary, stdout};
    let help = |cmd: &str| stdout(&canary().args([cmd, "--help"]).output().unwrap());
    let run = help("run");
    assert!(
        run.contains("Environment:") && run.contains("CANARY_LEASE_HOLDER"),
        "{run}"
    );
    assert!(run.contains("Examples:\n  $ canary run"), "{run}");
    let validate = help("validate");
    assert!(validate.contains("CANARY_MAX_INPUT_SIZE"), "{validate}");
    // It reads a cluster only with --cluster, and says so.
    assert!(validate.contains("KUBECONFIG"), "{validate}");
    assert!(
        validate.contains("with --cluster: the cluster could not"),
        "{validate}"
    );
    let plan = help("plan");
    assert!(
        !plan.contains("KUBECONFIG"),
        "plan reads no cluster: {plan}"
    );
    assert!(!validate.contains("\n  130 "), "{validate}");
    // Short help stays short.
    let short = stdout(&canary().args(["run", "-h"]).output().unwrap());
    assert!(!short.contains("Environment:"), "{short}");
}
