//! Completions and man pages are committed; they must match what the clap
//! definition generates today.

use crate::util::root;

#[test]
fn generated_completions_and_man_pages_are_up_to_date() {
    let regenerate = std::env::var_os("CANARY_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, contents) in canary::generate::all() {
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
