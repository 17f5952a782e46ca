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
    }
}
