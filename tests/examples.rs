//! Every spec example under `examples/` is a valid Flagger spec that
//! `canary validate` accepts, or names the field that asks for what
//! `canary run` does not carry out yet; the other examples (RBAC, CI
//! workflows) load as what they are. The GitHub Action (`action.yml`)
//! runs here under bash with stand-ins for `canary` and `curl`, and every
//! command line the CI examples make, directly or through the Action,
//! parses with canary's own clap definition.

use crate::util::{canary, root, stdout};
use std::path::Path;

/// Examples that are not Canary spec files: the spec loader rightly
/// refuses their Kubernetes kinds.
const NOT_SPECS: &[&str] = &["rbac.yaml", "job.yaml", "cronjob.yaml"];

/// Examples of Flagger features `canary run` does not carry out yet, with
/// the fields `validate` refuses.
const NOT_RUN_YET: &[(&str, &[&str])] = &[];

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
fn the_rbac_example_holds_no_canary_and_loads_as_rbac() {
    let out = canary()
        .args(["validate", "examples/rbac.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no Canary document; skipped"),
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

/// The core's unit tests read copies of some examples from
/// `crates/canary-core/fixtures/`, so that the published crate tests on its
/// own; the copies are the examples, byte for byte.
/// `CANARY_REGENERATE=1 cargo test generated` copies them again.
#[test]
fn the_core_fixtures_are_generated_copies_of_the_examples() {
    let regenerate = std::env::var_os("CANARY_REGENERATE").is_some();
    let dir = root().join("crates/canary-core/fixtures");
    let mut stale = Vec::new();
    let mut copies = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let fixture = entry.unwrap().path();
        let example = root().join("examples").join(fixture.file_name().unwrap());
        let original = std::fs::read(&example)
            .unwrap_or_else(|e| panic!("{} has no original: {e}", fixture.display()));
        copies += 1;
        if std::fs::read(&fixture).unwrap() != original {
            if regenerate {
                std::fs::write(&fixture, &original).unwrap();
            } else {
                stale.push(fixture.display().to_string());
            }
        }
    }
    assert!(copies >= 4, "{copies} fixtures in {}", dir.display());
    assert!(
        stale.is_empty(),
        "fixtures differ from examples/: {}\ncopy them again with: \
         CANARY_REGENERATE=1 cargo test generated",
        stale.join(", ")
    );
}

#[test]
fn validate_prints_one_line_per_canary_with_strategy_provider_and_steps() {
    // Two of them are alternatives for the canary podinfo.prod: checked
    // together they are refused as the same canary twice (see hostile.rs).
    let mut text = String::new();
    for f in [
        "examples/podinfo.yaml",
        "examples/metric-template.yaml",
        "examples/blue-green.yaml",
    ] {
        let out = canary().args(["validate", f]).output().unwrap();
        assert!(out.status.success(), "{f}");
        text.push_str(&stdout(&out));
    }
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

fn load_yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shell scripts of a CI file, wherever they are: GitHub's `run:` and
/// GitLab's `script:`, `before_script:` and `after_script:`.
fn scripts(node: &serde_yaml::Value) -> Vec<String> {
    use serde_yaml::Value;
    let mut out = Vec::new();
    match node {
        Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (
                        Some("run" | "script" | "before_script" | "after_script"),
                        Value::String(s),
                    ) => out.push(s.clone()),
                    (Some("script" | "before_script" | "after_script"), Value::Sequence(lines)) => {
                        out.extend(lines.iter().filter_map(|l| l.as_str().map(String::from)))
                    }
                    _ => out.extend(scripts(value)),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| out.extend(scripts(v))),
        _ => {}
    }
    out
}

/// The `canary ...` command lines of a CI file's scripts, with `${{ }}`
/// expressions and shell variables replaced by placeholders and the line
/// cut at the first pipe, redirection or command separator.
fn canary_commands(file: &Path) -> Vec<Vec<String>> {
    let expression = regex::Regex::new(r"\$\{\{[^}]*\}\}").unwrap();
    let variable = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    let mut out = Vec::new();
    for script in scripts(&load_yaml(file)) {
        for line in script.lines() {
            let line = line.trim().trim_start_matches("- ");
            if !line.starts_with("canary ") {
                continue;
            }
            let line = expression.replace_all(line, "PLACEHOLDER");
            let line = variable.replace_all(&line, "PLACEHOLDER");
            let command = line.split(['|', '>', ';', '&']).next().unwrap_or_default();
            out.push(shell_words(command));
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

/// The repository's GitHub Action, `action.yml`.
fn action() -> serde_yaml::Value {
    load_yaml(&root().join("action.yml"))
}

fn action_step(action: &serde_yaml::Value, id: &str) -> serde_yaml::Value {
    action["runs"]["steps"]
        .as_sequence()
        .expect("a composite action has steps")
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("action.yml has no step `{id}`"))
        .clone()
}

/// The action's inputs and their defaults.
fn action_inputs(action: &serde_yaml::Value) -> std::collections::BTreeMap<String, String> {
    action["inputs"]
        .as_mapping()
        .expect("the action has inputs")
        .iter()
        .map(|(name, input)| {
            let default = match &input["default"] {
                serde_yaml::Value::Null => String::new(),
                v => v.as_str().expect("defaults are strings").to_string(),
            };
            (name.as_str().unwrap().to_string(), default)
        })
        .collect()
}

/// The inputs each step of the action reads, by step id.
fn inputs_read_by(step: &serde_yaml::Value) -> Vec<String> {
    let reference = regex::Regex::new(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}").unwrap();
    let text = serde_yaml::to_string(step).unwrap();
    let mut names: Vec<String> = reference
        .captures_iter(&text)
        .map(|c| c[1].to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What a step of the action did.
#[cfg(unix)]
struct StepRun {
    /// `RUNNER_TEMP`, where the stand-ins keep what they saw.
    dir: tempfile::TempDir,
    status: Option<i32>,
    /// What the step wrote to `$GITHUB_OUTPUT` and `$GITHUB_PATH`.
    outputs: String,
    github_path: String,
    stdout: String,
    stderr: String,
}

#[cfg(unix)]
fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a step of the action as the runner does (`bash -e -o pipefail`
/// in a fresh `RUNNER_TEMP`, its `env:` with the given inputs and the
/// others at their defaults) on a Linux x64 runner, after `setup` has put
/// its stand-ins into `RUNNER_TEMP/bin`, which comes first on PATH.
#[cfg(unix)]
fn run_step(
    id: &str,
    inputs: &[(&str, &str)],
    env: &[(&str, &str)],
    setup: impl FnOnce(&Path),
) -> StepRun {
    let action = action();
    let declared = action_inputs(&action);
    for (name, _) in inputs {
        assert!(
            declared.contains_key(*name),
            "action.yml has no input `{name}`"
        );
    }
    let step = action_step(&action, id);
    assert_eq!(step["shell"].as_str(), Some("bash"));
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    setup(dir.path());
    let script = dir.path().join("step.sh");
    std::fs::write(&script, step["run"].as_str().unwrap()).unwrap();

    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .current_dir(dir.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CANARY_") {
            cmd.env_remove(key);
        }
    }
    let reference = regex::Regex::new(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}").unwrap();
    for (name, value) in step["env"].as_mapping().expect("the step has env") {
        let value = value.as_str().unwrap();
        let resolved = reference.replace_all(value, |c: &regex::Captures| {
            let input = &c[1];
            let default = declared
                .get(input)
                .unwrap_or_else(|| panic!("step {id} reads the undeclared input `{input}`"));
            inputs
                .iter()
                .find(|(n, _)| *n == input)
                .map_or(default.clone(), |(_, v)| v.to_string())
        });
        assert!(!resolved.contains("${{"), "{value}: inputs only");
        cmd.env(name.as_str().unwrap(), resolved.as_ref());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(paths).unwrap())
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TEMP", dir.path())
        .env("RUNNER_TOOL_CACHE", dir.path().join("tools"))
        .env("GITHUB_OUTPUT", dir.path().join("output"))
        .env("GITHUB_PATH", dir.path().join("path"))
        .env("GITHUB_REPOSITORY", "owner/app")
        .env("GITHUB_RUN_ID", "42")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    StepRun {
        status: out.status.code(),
        outputs: read("output"),
        github_path: read("path"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// What the action's `run` step did with a stand-in `canary`.
#[cfg(unix)]
struct ActionRun {
    /// canary's command line, `canary` first; empty if it did not run.
    argv: Vec<String>,
    status: Option<i32>,
    outputs: String,
    /// `CANARY_LEASE_HOLDER` as canary saw it.
    lease_holder: String,
    stderr: String,
}

/// Runs the action's `run` step with a stand-in `canary` that records its
/// arguments, prints `promoted` and exits with `exit`.
#[cfg(unix)]
fn run_action(inputs: &[(&str, &str)], exit: i32, env: &[(&str, &str)]) -> ActionRun {
    let exit = exit.to_string();
    let mut env = env.to_vec();
    env.push(("FAKE_EXIT", &exit));
    let run = run_step("run", inputs, &env, |dir| {
        write_executable(
            &dir.join("bin/canary"),
            "#!/bin/sh\n\
             printf '%s\\0' \"$@\" >\"$RUNNER_TEMP/argv\"\n\
             printf '%s' \"$CANARY_LEASE_HOLDER\" >\"$RUNNER_TEMP/lease\"\n\
             echo promoted\n\
             exit \"$FAKE_EXIT\"\n",
        )
    });
    let argv = match std::fs::read(run.dir.path().join("argv")) {
        Ok(bytes) => std::iter::once("canary".to_string())
            .chain(
                String::from_utf8(bytes)
                    .unwrap()
                    .split_terminator('\0')
                    .map(String::from),
            )
            .collect(),
        Err(_) => Vec::new(),
    };
    ActionRun {
        argv,
        status: run.status,
        outputs: run.outputs,
        lease_holder: std::fs::read_to_string(run.dir.path().join("lease")).unwrap_or_default(),
        stderr: run.stderr,
    }
}

/// A stand-in `curl` serving a release v0.1.0 from `RUNNER_TEMP/releases`
/// (archives for both Linux targets, with their `.sha256`; `corrupt`
/// spoils the x86_64 checksum) and logging each URL to `curl.log`.
#[cfg(unix)]
fn fake_release(dir: &Path, corrupt: bool) {
    write_executable(
        &dir.join("bin/curl"),
        r#"#!/bin/sh
out= format= url=
while [ $# -gt 0 ]; do
    case "$1" in
    -o) out=$2; shift ;;
    -w) format=$2; shift ;;
    --retry) shift ;;
    -*) ;;
    *) url=$1 ;;
    esac
    shift
done
echo "$url" >>"$RUNNER_TEMP/curl.log"
case "$url" in
*/releases/latest) [ -z "$format" ] || printf '%s' "${url%/latest}/tag/v0.1.0" ;;
*/releases/download/*)
    file="$RUNNER_TEMP/releases/${url##*/releases/download/}"
    [ -f "$file" ] || exit 22
    cp "$file" "$out" ;;
*) exit 22 ;;
esac
"#,
    );
    let status = std::process::Command::new("bash")
        .arg("-ec")
        .arg(
            r#"mkdir -p releases/v0.1.0 && cd releases/v0.1.0
            for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
                name=canary-0.1.0-$target
                mkdir "$name" && printf '#!/bin/sh\necho canary 0.1.0\n' >"$name/canary"
                chmod +x "$name/canary" && tar -czf "$name.tar.gz" "$name" && rm -r "$name"
                sha256sum "$name.tar.gz" >"$name.tar.gz.sha256" 2>/dev/null ||
                    shasum -a 256 "$name.tar.gz" >"$name.tar.gz.sha256"
            done
            if [ "$CORRUPT" = 1 ]; then
                echo "$(printf '0%.0s' $(seq 64))  canary-0.1.0-x86_64-unknown-linux-musl.tar.gz" \
                    >canary-0.1.0-x86_64-unknown-linux-musl.tar.gz.sha256
            fi"#,
        )
        .env("CORRUPT", if corrupt { "1" } else { "0" })
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn the_action_installs_the_release_for_the_runner_once_its_checksum_matches() {
    let tools = tempfile::tempdir().unwrap();
    let cache = tools.path().to_str().unwrap();
    let run = run_step(
        "install",
        &[("repository", "owner/canary")],
        &[("RUNNER_TOOL_CACHE", cache)],
        |dir| fake_release(dir, false),
    );
    assert_eq!(run.status, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.outputs, "version=v0.1.0\n");
    let installed = tools
        .path()
        .join("canary/0.1.0/x86_64-unknown-linux-musl/canary-0.1.0-x86_64-unknown-linux-musl");
    assert_eq!(run.github_path, format!("{}\n", installed.display()));
    let version = std::process::Command::new(installed.join("canary"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "canary 0.1.0\n");
    let log = std::fs::read_to_string(run.dir.path().join("curl.log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "https://github.com/owner/canary/releases/latest",
            "https://github.com/owner/canary/releases/download/v0.1.0/canary-0.1.0-x86_64-unknown-linux-musl.tar.gz",
            "https://github.com/owner/canary/releases/download/v0.1.0/canary-0.1.0-x86_64-unknown-linux-musl.tar.gz.sha256",
        ]
    );

    // A version without its `v`, already in the tool cache: no download.
    let again = run_step(
        "install",
        &[("repository", "owner/canary"), ("version", "0.1.0")],
        &[("RUNNER_TOOL_CACHE", cache)],
        |dir| fake_release(dir, false),
    );
    assert_eq!(again.status, Some(0), "{}", again.stderr);
    assert_eq!(again.outputs, "version=v0.1.0\n");
    assert_eq!(again.github_path, run.github_path);
    assert!(!again.dir.path().join("curl.log").exists());

    // The runner's architecture picks the archive.
    let arm = run_step(
        "install",
        &[("version", "v0.1.0")],
        &[("RUNNER_ARCH", "ARM64")],
        |dir| fake_release(dir, false),
    );
    assert_eq!(arm.status, Some(0), "{}", arm.stderr);
    assert!(
        arm.github_path
            .trim_end()
            .ends_with("/canary-0.1.0-aarch64-unknown-linux-musl"),
        "{}",
        arm.github_path
    );
}

#[cfg(unix)]
#[test]
fn the_action_installs_nothing_when_the_checksum_differs_or_the_runner_has_no_release() {
    let run = run_step("install", &[("version", "v0.1.0")], &[], |dir| {
        fake_release(dir, true)
    });
    assert_ne!(run.status, Some(0), "{}", run.stdout);
    assert_eq!(run.github_path, "");
    assert!(
        !run.dir
            .path()
            .join("tools/canary/0.1.0/x86_64-unknown-linux-musl/canary-0.1.0-x86_64-unknown-linux-musl")
            .exists()
    );

    let run = run_step("install", &[], &[("RUNNER_ARCH", "ARM")], |dir| {
        fake_release(dir, false)
    });
    assert_eq!(run.status, Some(1));
    assert!(
        run.stdout
            .contains("::error::canary has no release for Linux ARM"),
        "{}",
        run.stdout
    );
    assert_eq!(run.github_path, "");
}

/// The `canary run` arguments clap makes of a command line.
fn run_matches(argv: &[String]) -> clap::ArgMatches {
    use clap::CommandFactory;
    let matches = canary::Cli::command()
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| panic!("`{}`:\n{e}", argv.join(" ")));
    matches
        .subcommand_matches("run")
        .unwrap_or_else(|| panic!("not `canary run`: {argv:?}"))
        .clone()
}

/// The inputs of the action that become `canary run`'s arguments, and the
/// ones that choose the release to install.
const ACTION_RUN_INPUTS: &[&str] = &[
    "args",
    "files",
    "mesh-provider",
    "output-file",
    "set-image",
    "timeout",
];
const ACTION_INSTALL_INPUTS: &[&str] = &["repository", "version"];

#[test]
fn every_action_input_is_read_by_the_step_it_is_for() {
    let action = action();
    let declared: Vec<String> = action_inputs(&action).into_keys().collect();
    let mut expected: Vec<&str> = [ACTION_RUN_INPUTS, ACTION_INSTALL_INPUTS].concat();
    expected.sort();
    assert_eq!(declared, expected);
    assert_eq!(
        inputs_read_by(&action_step(&action, "run")),
        ACTION_RUN_INPUTS
    );
    assert_eq!(
        inputs_read_by(&action_step(&action, "install")),
        ACTION_INSTALL_INPUTS
    );
    assert_eq!(action["inputs"]["files"]["required"].as_bool(), Some(true));
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
}

#[cfg(unix)]
#[test]
fn the_action_passes_each_input_to_canary_run_as_its_flag() {
    use std::path::PathBuf;
    use std::time::Duration;
    let run = run_action(
        &[
            ("files", "deploy/a.yaml 'deploy/b c.yaml'\ndeploy/c.yaml\n"),
            (
                "set-image",
                "app=ghcr.io/owner/app:1.2.3\nproxy=ghcr.io/owner/proxy:2\n",
            ),
            ("timeout", "30m"),
            ("mesh-provider", "linkerd"),
            (
                "args",
                "--wait-for-change 15m -n prod --metrics-server 'http://prometheus.linkerd-viz:9090'",
            ),
        ],
        0,
        &[],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let m = run_matches(&run.argv);
    let files: Vec<&PathBuf> = m.get_many("files").unwrap().collect();
    assert_eq!(
        files,
        ["deploy/a.yaml", "deploy/b c.yaml", "deploy/c.yaml"]
            .map(PathBuf::from)
            .iter()
            .collect::<Vec<_>>()
    );
    let images: Vec<&(String, String)> = m.get_many("set_image").unwrap().collect();
    assert_eq!(
        images,
        [
            &("app".to_string(), "ghcr.io/owner/app:1.2.3".to_string()),
            &("proxy".to_string(), "ghcr.io/owner/proxy:2".to_string())
        ]
    );
    assert_eq!(
        m.get_one::<Duration>("timeout"),
        Some(&Duration::from_secs(30 * 60))
    );
    assert_eq!(
        m.get_one::<String>("mesh_provider").map(String::as_str),
        Some("linkerd")
    );
    assert_eq!(
        m.get_one::<Duration>("wait_for_change"),
        Some(&Duration::from_secs(15 * 60))
    );
    assert_eq!(
        m.get_one::<String>("namespace").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        m.get_one::<String>("metrics_server").map(String::as_str),
        Some("http://prometheus.linkerd-viz:9090")
    );
}

#[cfg(unix)]
#[test]
fn the_action_step_exits_with_canary_s_exit_code_and_reports_it() {
    for code in [0, 1, 3, 4, 5, 130] {
        let run = run_action(&[("files", "deploy/canary.yaml")], code, &[]);
        assert_eq!(run.status, Some(code), "{}", run.stderr);
        assert!(
            run.outputs
                .lines()
                .any(|l| l == format!("exit-code={code}")),
            "{}",
            run.outputs
        );
        assert_eq!(run.argv, ["canary", "run", "deploy/canary.yaml"]);
        assert_eq!(run.lease_holder, "github-actions owner/app run 42");
    }
    let kept = tempfile::tempdir().unwrap();
    let events = kept.path().join("events.jsonl");
    let run = run_action(
        &[
            ("files", "deploy/canary.yaml"),
            ("output-file", events.to_str().unwrap()),
        ],
        1,
        &[("CANARY_LEASE_HOLDER", "release bot")],
    );
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&events).unwrap(), "promoted\n");
    assert_eq!(run.lease_holder, "release bot");
}

#[cfg(unix)]
#[test]
fn the_action_refuses_missing_files_and_stray_quotes_without_running_canary() {
    for (input, value) in [
        ("files", ""),
        ("files", " \n "),
        ("files", "'deploy/canary.yaml"),
        ("args", "--namespace 'prod"),
    ] {
        let mut inputs = vec![("files", "deploy/canary.yaml")];
        inputs.retain(|(n, _)| *n != input);
        inputs.push((input, value));
        let run = run_action(&inputs, 0, &[]);
        assert_eq!(run.status, Some(2), "{input}={value:?}: {}", run.stderr);
        assert!(run.argv.is_empty(), "{:?}", run.argv);
    }
}

/// The action's scripts pass shellcheck, where it is installed (`.ci/run`
/// installs it; actionlint runs it on the workflows' scripts too).
#[test]
fn the_action_scripts_pass_shellcheck() {
    let found = std::process::Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: shellcheck is not on PATH");
        return;
    }
    let action = action();
    for id in ["install", "run"] {
        let step = action_step(&action, id);
        let mut child = std::process::Command::new("shellcheck")
            .args(["--shell=bash", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(step["run"].as_str().unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "step {id}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The `with:` inputs of the steps of a workflow that use the canary
/// action, with `${{ }}` expressions replaced by placeholders.
fn action_uses(workflow: &Path) -> Vec<Vec<(String, String)>> {
    let expression = regex::Regex::new(r"\$\{\{[^}]*\}\}").unwrap();
    let doc = load_yaml(workflow);
    let mut out = Vec::new();
    for job in doc["jobs"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, j)| j)
    {
        for step in job["steps"].as_sequence().into_iter().flatten() {
            let uses = step["uses"].as_str().unwrap_or_default();
            if !uses.starts_with("canary-rs/canary@") {
                continue;
            }
            let with = step["with"].as_mapping().expect("the action takes inputs");
            out.push(
                with.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().expect("string inputs");
                        let v = expression.replace_all(v, "PLACEHOLDER").into_owned();
                        (k.as_str().unwrap().to_string(), v)
                    })
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn the_ci_examples_use_only_flags_canary_has() {
    use clap::Parser;
    let dir = root().join("examples/ci");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "github-actions-gitops.yml",
            "github-actions-set-image.yml",
            "gitlab-ci.yml"
        ]
    );
    let mut commands = std::collections::BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut argvs = canary_commands(file);
        let uses = action_uses(file);
        if name.starts_with("github-actions-") {
            assert!(!uses.is_empty(), "{name}: the canary action is not used");
        }
        #[cfg(unix)]
        for with in uses {
            let inputs: Vec<(&str, &str)> =
                with.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let run = run_action(&inputs, 0, &[]);
            assert_eq!(run.status, Some(0), "{name}: {with:?}\n{}", run.stderr);
            argvs.push(run.argv);
        }
        assert!(!argvs.is_empty(), "{name}: no canary command");
        for argv in &argvs {
            if let Err(e) = canary::Cli::try_parse_from(argv) {
                panic!("{name}: `{}`:\n{e}", argv.join(" "));
            }
        }
        commands.insert(name, argvs);
    }
    let uses_flag = |file: &str, flag: &str| {
        commands[file]
            .iter()
            .any(|argv| argv.iter().any(|a| a == flag))
    };
    if cfg!(unix) {
        assert!(uses_flag("github-actions-set-image.yml", "--set-image"));
        assert!(uses_flag("github-actions-set-image.yml", "--timeout"));
        assert!(uses_flag("github-actions-gitops.yml", "--wait-for-change"));
    }
    assert!(uses_flag("gitlab-ci.yml", "--set-image"));
    assert!(uses_flag("gitlab-ci.yml", "--timeout"));
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

/// The release workflow builds, the krew manifest installs and the action
/// downloads archives for the same five targets, and the manifest's
/// platforms match them.
#[test]
fn the_release_the_krew_manifest_and_the_action_name_the_same_targets() {
    let expected = [
        "aarch64-apple-darwin",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "x86_64-pc-windows-msvc",
        "x86_64-unknown-linux-musl",
    ];
    let release = load_yaml(&root().join(".github/workflows/release.yml"));
    let mut built: Vec<&str> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("a build matrix")
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    built.sort();
    assert_eq!(built, expected);

    let action = action();
    let install = action_step(&action, "install");
    let target = regex::Regex::new(r"\btarget=([a-z0-9_]+-[a-z0-9_-]+)").unwrap();
    let script = install["run"].as_str().unwrap();
    let mut downloaded: Vec<&str> = target
        .captures_iter(script)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    downloaded.sort();
    assert_eq!(downloaded, expected);

    let krew = load_yaml(&root().join("plugins/canary.yaml"));
    assert_eq!(krew["kind"].as_str(), Some("Plugin"));
    assert_eq!(krew["metadata"]["name"].as_str(), Some("canary"));
    assert_eq!(krew["spec"]["version"].as_str(), Some("v__VERSION__"));
    let uri = regex::Regex::new(
        r"^https://github\.com/canary-rs/canary/releases/download/v__VERSION__/canary-__VERSION__-(.+)\.(tar\.gz|zip)$",
    )
    .unwrap();
    let mut installed = Vec::new();
    for platform in krew["spec"]["platforms"].as_sequence().unwrap() {
        let link = platform["uri"].as_str().unwrap();
        let c = uri.captures(link).unwrap_or_else(|| panic!("{link}"));
        let target = c[1].to_string();
        let windows = target.contains("windows");
        assert_eq!(&c[2], if windows { "zip" } else { "tar.gz" }, "{link}");
        assert_eq!(
            platform["sha256"].as_str(),
            Some(format!("__SHA256_{target}__").as_str())
        );
        let (os, arch) = (
            match target.split('-').nth(2) {
                Some("linux") => "linux",
                Some("darwin") => "darwin",
                Some("windows") => "windows",
                other => panic!("{other:?}"),
            },
            if target.starts_with("x86_64") {
                "amd64"
            } else {
                "arm64"
            },
        );
        let labels = &platform["selector"]["matchLabels"];
        assert_eq!(labels["os"].as_str(), Some(os), "{target}");
        assert_eq!(labels["arch"].as_str(), Some(arch), "{target}");
        let exe = if windows { ".exe" } else { "" };
        let bin = format!("kubectl-canary{exe}");
        assert_eq!(platform["bin"].as_str(), Some(bin.as_str()));
        let files = platform["files"].as_sequence().unwrap();
        assert!(
            files.iter().any(|f| f["from"].as_str()
                == Some(format!("canary-*/canary{exe}").as_str())
                && f["to"].as_str() == Some(bin.as_str())),
            "{target}: the binary is not installed as {bin}"
        );
        installed.push(target);
    }
    installed.sort();
    assert_eq!(installed, expected);
}

/// One example per router and strategy `canary run` drives: the file, the
/// provider `plan` gives it (`--mesh-provider` for a spec naming none)
/// and the strategy.
const EXAMPLE_PER_ROUTER: &[(&str, &str, &str)] = &[
    ("istio.yaml", "istio", "canary"),
    ("ab-testing.yaml", "istio", "A/B testing"),
    ("istio-blue-green.yaml", "istio", "blue/green"),
    ("istio-mirror.yaml", "istio", "blue/green with mirroring"),
    ("istio-session-affinity.yaml", "istio", "canary"),
    ("gateway-api.yaml", "gatewayapi:v1", "canary"),
    (
        "gateway-api-ab-testing.yaml",
        "gatewayapi:v1",
        "A/B testing",
    ),
    (
        "gateway-api-mirror.yaml",
        "gatewayapi:v1",
        "blue/green with mirroring",
    ),
    (
        "gateway-api-session-affinity.yaml",
        "gatewayapi:v1",
        "canary",
    ),
    ("nginx.yaml", "nginx", "canary"),
    ("nginx-ab-testing.yaml", "nginx", "A/B testing"),
    ("kuma.yaml", "kuma", "canary"),
    ("apisix.yaml", "apisix", "canary"),
    ("contour.yaml", "contour", "canary"),
    ("traefik.yaml", "traefik", "canary"),
    ("skipper.yaml", "skipper", "canary"),
    ("gloo.yaml", "gloo", "canary"),
    ("knative.yaml", "knative", "canary"),
    ("blue-green.yaml", "kubernetes", "blue/green"),
    ("podinfo.yaml", "linkerd", "canary"),
];

#[test]
fn every_router_and_strategy_has_an_example_that_plans_as_it_says() {
    for (file, provider, strategy) in EXAMPLE_PER_ROUTER {
        let path = root().join("examples").join(file);
        let out = canary()
            .arg("plan")
            .arg(&path)
            .args(["--mesh-provider", provider, "-o", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(p["provider"], *provider, "{file}");
        assert_eq!(p["strategy"], *strategy, "{file}");
        assert!(!p["steps"].as_array().unwrap().is_empty(), "{file}");
        // The spec's own provider, not the flag, where it names one.
        let text = std::fs::read_to_string(&path).unwrap();
        if *file != "podinfo.yaml" {
            assert!(
                text.contains(&format!("  provider: {provider}\n")),
                "{file}"
            );
        }
    }
    // Session affinity is what its examples are for.
    for file in [
        "istio-session-affinity.yaml",
        "gateway-api-session-affinity.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("examples").join(file)).unwrap();
        assert!(text.contains("sessionAffinity:"), "{file}");
    }
}
