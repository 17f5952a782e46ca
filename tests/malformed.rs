//! Malformed specs under `tests/malformed/` are each rejected with exit code
//! 2 and exactly the expected problems.
//!
//! Each file states what it expects in leading comments, one problem a line:
//!
//! ```text
//! # expect: 14:7 spec.analysis.stepweight | unknown field `stepweight`
//! ```
//!
//! that is `LINE:COLUMN PATH | MESSAGE-FRAGMENT` (PATH `-` when the problem
//! has none). Every expected problem must be reported, and nothing else.

use crate::util::{canary, root, stderr};

#[derive(Debug)]
struct Expect {
    line: u64,
    column: u64,
    path: Option<String>,
    fragment: String,
}

fn expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (head, fragment) = e.split_once(" | ").expect("`LINE:COL PATH | MESSAGE`");
            let (pos, path) = head.split_once(' ').expect("`LINE:COL PATH`");
            let (line, column) = pos.split_once(':').expect("`LINE:COL`");
            Expect {
                line: line.parse().unwrap(),
                column: column.parse().unwrap(),
                path: (path != "-").then(|| path.to_string()),
                fragment: fragment.to_string(),
            }
        })
        .collect()
}

#[test]
fn every_malformed_spec_is_rejected_with_its_expected_problems() {
    let dir = root().join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} malformed specs", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} states no `# expect:`",
            f.display()
        );
        let out = canary()
            .args(["validate", "-o", "json"])
            .arg(f)
            .output()
            .unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, not 2", out.status.code()));
            continue;
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors = report["errors"].as_array().cloned().unwrap_or_default();
        for e in &expected {
            let hit = errors.iter().any(|d| {
                d["line"].as_u64() == Some(e.line)
                    && d["column"].as_u64() == Some(e.column)
                    && d["path"].as_str() == e.path.as_deref()
                    && d["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&e.fragment))
            });
            if !hit {
                failures.push(format!("{name}: expected {e:?}\n  got {errors:#?}"));
            }
        }
        if errors.len() != expected.len() {
            failures.push(format!(
                "{name}: {} problems reported, {} expected: {errors:#?}",
                errors.len(),
                expected.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn human_output_shows_the_line_and_a_caret_and_a_hint() {
    let out = canary()
        .args(["validate", "tests/malformed/unknown-field-typo.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    insta::assert_snapshot!(text);
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = canary()
        .args(["validate", "no/such/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("no/such/file.yaml") && text.contains("no such file"),
        "{text}"
    );
}

#[test]
fn an_empty_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.yaml");
    std::fs::write(&f, "# nothing here\n").unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("holds no YAML documents"));
}

#[test]
fn a_binary_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("image.yaml");
    std::fs::write(&f, [0xff, 0xd8, 0xff, 0xe0, 0x00]).unwrap();
    let out = canary().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"));
}

#[test]
fn a_directory_of_no_spec_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not read\n").unwrap();
    let out = canary().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the directory holds no .yaml, .yml or .json file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_rejects_a_malformed_spec_with_exit_2() {
    let out = canary()
        .args(["plan", "tests/malformed/min-above-max.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("min 99 is above max 50"));
    assert!(out.stdout.is_empty());
}
