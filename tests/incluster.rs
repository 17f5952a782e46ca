//! `canary` inside the cluster: the built binary in a Pod's environment
//! against the simulated cluster. No kubeconfig: the sim's service-account
//! files (`CANARY_SERVICEACCOUNT_DIR`, since kube reads them from a fixed
//! path) and `KUBERNETES_SERVICE_HOST`/`PORT`; webhooks and metrics servers
//! reached directly, by their cluster names, through the sim's Pod network
//! (an HTTP forward proxy, named by `HTTP_PROXY`), never through the API
//! server's service proxy. The Job example run as written, under its own
//! RBAC; SIGTERM as a Pod gets it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use canary_sim::rbac::Rules;
use canary_sim::world::World;
use serde_json::Value;

use crate::run::{Cluster, assert_exit};
use crate::util::{finish, stderr, stdout, terminate};

/// A Pod's filesystem and environment for the built binary: the service
/// account where `CANARY_SERVICEACCOUNT_DIR` says, an empty home (no
/// `~/.kube/config`), and nothing else of the test's environment (no
/// `USER`, as in most containers).
struct Pod {
    dir: tempfile::TempDir,
}

impl Pod {
    fn new(world: &World) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        world
            .sim()
            .write_service_account(dir.path().join("serviceaccount"))
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Pod { dir }
    }

    /// `program` as the container of Pod `name` runs it.
    fn command(&self, world: &World, name: &str, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("HOSTNAME", name)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env(
                "KUBERNETES_SERVICE_PORT",
                world.sim().addr().port().to_string(),
            )
            .env(
                "CANARY_SERVICEACCOUNT_DIR",
                self.dir.path().join("serviceaccount"),
            )
            // Cluster DNS, as the Pod network's proxy resolves it.
            .env("HTTP_PROXY", world.sim().pod_network_url())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "120")
            .current_dir(crate::util::root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The built `canary ARGS...` in Pod `name`.
    fn canary(&self, world: &World, name: &str, args: &[&str]) -> Command {
        let mut cmd = self.command(world, name, &assert_cmd::cargo::cargo_bin("canary"));
        cmd.args(args);
        cmd
    }

    async fn run(&self, world: &World, name: &str, args: &[&str]) -> Output {
        finish(self.canary(world, name, args).spawn().unwrap()).await
    }
}

/// The state annotation of `podinfo-primary`.
fn primary_state(world: &World) -> Value {
    let p = world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .expect("primary exists");
    let state = crate::util::stored_state(&p);
    assert!(!state.is_null(), "state annotation");
    state
}

/// Fails when a webhook or a metric query went through the API server's
/// service proxy; returns the requests that went direct.
fn went_direct(world: &World) -> Vec<canary_sim::server::PodRequest> {
    let proxied: Vec<String> = world
        .sim()
        .request_log()
        .iter()
        .filter(|r| r.attributes.subresource == "proxy")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        proxied.is_empty(),
        "went through the service proxy:\n{}",
        proxied.join("\n")
    );
    world.sim().pod_network_log()
}

fn reached(
    direct: &[canary_sim::server::PodRequest],
    method: &str,
    host: &str,
    path: &str,
) -> bool {
    direct
        .iter()
        .any(|r| r.method == method && r.host == host && r.path.starts_with(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pod_canary_uses_its_service_account_and_reaches_services_directly() {
    let c = Cluster::start().await;
    let pod = Pod::new(&c.world);
    let spec = c.spec.to_str().unwrap();
    c.world.sim().clear_request_log();

    let out = pod.run(&c.world, "release-1", &["run", spec]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: initialised"),
        "{}",
        stdout(&out)
    );

    c.set_image("3.1.1");
    let out = pod.run(&c.world, "release-2", &["run", spec]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Pre-rollout check acceptance-test passed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );

    c.set_image("3.1.2");
    let out = pod.run(&c.world, "release-3", &["run", spec]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("Rolling back podinfo.prod failed checks threshold reached 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );

    // Every API request carried the service account's token; no webhook
    // and no query went through the API server.
    let log = c.world.sim().request_log();
    assert!(
        log.iter().all(|r| r.status != 401),
        "unauthenticated requests"
    );
    let direct = went_direct(&c.world);
    assert!(
        reached(&direct, "GET", "prometheus.linkerd-viz", "/api/v1/query?"),
        "{direct:#?}"
    );
    assert!(
        reached(&direct, "POST", "flagger-loadtester.prod", "/"),
        "{direct:#?}"
    );
    assert!(
        direct.iter().all(|r| r.status != 502),
        "a name did not resolve: {direct:#?}"
    );
    assert!(!c.world.webhook_calls().is_empty());
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_run_like_ctrl_c_with_exit_143_and_the_next_pod_resumes_at_once() {
    let c = Cluster::start().await;
    let pod = Pod::new(&c.world);
    let spec = c.spec.to_str().unwrap();
    assert_exit(&pod.run(&c.world, "release-a", &["run", spec]).await, 0);
    c.set_image("3.1.1");

    let child = pod
        .canary(&c.world, "release-a", &["run", spec])
        .spawn()
        .unwrap();
    c.wait_for_analysis().await;
    // The Pod's name holds the lease.
    assert_eq!(primary_state(&c.world)["lease"]["holder"], "release-a");
    terminate(&child);
    let out = finish(child).await;
    assert_exit(&out, 143);
    assert!(
        stderr(&out).contains("terminated (SIGTERM): stopping, the state is kept"),
        "{}",
        stderr(&out)
    );
    // The verdict and the summary of the steps taken, as for Ctrl-C.
    let summary = stdout(&out);
    assert!(
        summary.contains(
            "podinfo.prod: interrupted (terminated by SIGTERM with the rollout as it was"
        ) && summary.contains("resumes it, `canary abort podinfo -n prod` rolls it back")
            && summary.contains("Advance podinfo.prod canary weight 20"),
        "{summary}"
    );
    let state = primary_state(&c.world);
    assert!(state["lease"].is_null(), "the lease is released: {state}");
    assert_eq!(state["phase"], "Progressing");
    let (_, weight) = c.weights();
    assert!(weight > 0, "the rollout was left where it was");

    // Another Pod (another identity) takes over at once: a live lease
    // would refuse it (exit 3).
    let started = Instant::now();
    let out = pod.run(&c.world, "release-b", &["run", spec]).await;
    assert_exit(&out, 0);
    assert!(
        !stderr(&out).contains("New revision detected"),
        "resumed, not restarted:\n{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    eprintln!(
        "the next Pod finished the rollout in {:?}",
        started.elapsed()
    );
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_stops_on_sigterm_with_exit_0() {
    let c = Cluster::start().await;
    let pod = Pod::new(&c.world);
    assert_exit(
        &pod.run(&c.world, "release", &["run", c.spec.to_str().unwrap()])
            .await,
        0,
    );
    let child = pod
        .canary(&c.world, "watcher", &["status", "-w"])
        .spawn()
        .unwrap();
    // Namespace `prod` comes from the service account's namespace file.
    tokio::time::sleep(Duration::from_secs(2)).await;
    terminate(&child);
    let out = finish(child).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Initialized"), "{}", stdout(&out));
    c.world.shutdown().await;
}

#[test]
fn with_no_kubeconfig_outside_a_pod_the_error_names_the_in_cluster_config() {
    let home = tempfile::tempdir().unwrap();
    let out = crate::util::canary()
        .args(["status"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(
            "failed to load the in-cluster config (service account in \
             /var/run/secrets/kubernetes.io/serviceaccount, API server from \
             KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT), used because there is no \
             kubeconfig"
        ) && err.contains("outside a cluster, pass --kubeconfig"),
        "{err}"
    );

    let out = crate::util::canary()
        .args(["status", "--context", "prod"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_exit(&out, 3);
    assert!(
        stderr(&out)
            .contains("--context prod names a kubeconfig context, and there is no kubeconfig"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// The Job and CronJob examples.
// ---------------------------------------------------------------------------

/// Who the examples' bindings name.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:prod:canary-in-cluster";

fn documents(example: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(crate::util::path(example)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn document<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The container of a Pod template as the kubelet would start it: the
/// program and arguments, the environment, and the ConfigMap files at
/// their mount paths, here under `root`. `shorten` edits the spec files
/// (the tests cannot wait for the walkthrough's 10 s steps).
struct Container {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn container(
    pod_spec: &Value,
    config_maps: &[&Value],
    pod_name: &str,
    root: &Path,
    shorten: impl Fn(&str) -> String,
) -> Container {
    let c = &pod_spec["containers"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let command = strings(&c["command"]);
    assert_eq!(command.len(), 1, "{command:?}");
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume = pod_spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let cm_name = volume["configMap"]["name"].as_str().unwrap();
        let cm = config_maps
            .iter()
            .find(|cm| cm["metadata"]["name"] == cm_name)
            .unwrap_or_else(|| panic!("no ConfigMap {cm_name}"));
        let dir = root.join(cm_name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in cm["data"].as_object().unwrap() {
            std::fs::write(dir.join(file), shorten(text.as_str().unwrap())).unwrap();
        }
        mounts.push((m["mountPath"].as_str().unwrap().to_string(), dir));
    }
    let args = strings(&c["args"])
        .into_iter()
        .map(|a| {
            for (at, dir) in &mounts {
                if let Some(rest) = a.strip_prefix(at.as_str()) {
                    return format!("{}{rest}", dir.display());
                }
            }
            a
        })
        .collect();
    let env = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::String(f)) if f == "metadata.name" => pod_name.to_string(),
                other => panic!("{name}: {other:?}"),
            };
            (name, value)
        })
        .collect();
    Container {
        program: command[0].clone(),
        args,
        env,
    }
}

impl Container {
    /// Runs it in `pod`, with the built binary for the image's `canary`.
    async fn run(&self, pod: &Pod, world: &World, name: &str) -> Output {
        assert_eq!(self.program, "canary");
        let mut cmd = pod.command(world, name, &assert_cmd::cargo::cargo_bin("canary"));
        cmd.args(&self.args).envs(self.env.iter().cloned());
        finish(cmd.spawn().unwrap()).await
    }
}

/// The walkthrough's steps, one second each.
fn shorten(spec: &str) -> String {
    assert!(spec.contains("    interval: 10s\n"), "{spec}");
    spec.replace("    interval: 10s\n", "    interval: 1s\n")
}

#[test]
fn the_job_and_cronjob_examples_share_their_rbac_and_the_walkthroughs_canary() {
    let job = documents("examples/job.yaml");
    let cron = documents("examples/cronjob.yaml");
    for kind in ["ServiceAccount", "Role", "RoleBinding", "ConfigMap"] {
        assert_eq!(document(&job, kind), document(&cron, kind), "{kind}");
    }
    // The ConfigMap holds examples/podinfo.yaml's Canary.
    let walkthrough: Value = serde_yaml::from_str(
        &std::fs::read_to_string(crate::util::path("examples/podinfo.yaml")).unwrap(),
    )
    .unwrap();
    let held: Value = serde_yaml::from_str(
        document(&job, "ConfigMap")["data"]["podinfo.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(held, walkthrough);
    // Nothing goes through the service proxy, and nothing is deleted.
    let text = std::fs::read_to_string(crate::util::path("examples/job.yaml")).unwrap();
    let rules = Rules::from_yaml(&text).unwrap();
    assert!(!rules.grants().is_empty());
    for g in rules.grants() {
        let resources = g.rule.resources.clone().unwrap_or_default();
        assert!(!resources.iter().any(|r| r.contains('/')), "{resources:?}");
        assert!(
            !g.rule.verbs.iter().any(|v| v == "delete" || v == "*"),
            "{:?}",
            g.rule
        );
    }
    // Both run the image of this release line, as the release workflow
    // tags it (MAJOR.MINOR).
    let version = env!("CARGO_PKG_VERSION");
    let line = &version[..version.rfind('.').unwrap()];
    let image = format!("ghcr.io/canary-rs/canary:{line}");
    let job_pod = &document(&job, "Job")["spec"]["template"]["spec"];
    let cron_pod = &document(&cron, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for pod in [job_pod, cron_pod] {
        assert_eq!(pod["containers"][0]["image"].as_str(), Some(image.as_str()));
    }
    // Neither is a Canary spec.
    for example in ["examples/job.yaml", "examples/cronjob.yaml"] {
        let out = crate::util::canary()
            .args(["validate", example])
            .output()
            .unwrap();
        assert_exit(&out, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_example_runs_as_written_under_its_own_rbac() {
    let job = documents("examples/job.yaml");
    let cron = documents("examples/cronjob.yaml");
    let config_map = document(&job, "ConfigMap");
    let c = Cluster::start().await;
    let pod = Pod::new(&c.world);
    let files = tempfile::tempdir().unwrap();
    let release = container(
        &document(&job, "Job")["spec"]["template"]["spec"],
        &[config_map],
        "podinfo-release-x7k2p",
        &files.path().join("job"),
        shorten,
    );
    let scheduled = container(
        &document(&cron, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        &[config_map],
        "podinfo-canary-29170485-q8w2m",
        &files.path().join("cronjob"),
        shorten,
    );
    let text = std::fs::read_to_string(crate::util::path("examples/job.yaml")).unwrap();
    c.world.restrict(Some(
        Rules::from_yaml(&text).unwrap().with_user(SERVICE_ACCOUNT),
    ));
    c.world.sim().clear_request_log();

    // The first Job initialises; the next, after a new image, promotes it.
    let out = release.run(&pod, &c.world, "podinfo-release-x7k2p").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: initialised"),
        "{}",
        stdout(&out)
    );
    c.set_image("3.1.1");
    let out = release.run(&pod, &c.world, "podinfo-release-x7k2p").await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("podinfo.prod: promoted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    // The scheduled run finds nothing to do.
    let out = scheduled
        .run(&pod, &c.world, "podinfo-canary-29170485-q8w2m")
        .await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    // A bad release is rolled back: the Job fails with exit 1, and so does
    // every scheduled run while that revision stays, which is the alert.
    c.set_image("3.1.2");
    let out = release.run(&pod, &c.world, "podinfo-release-x7k2p").await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("podinfo.prod: rolled back"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
    let out = scheduled
        .run(&pod, &c.world, "podinfo-canary-29170486-b5n9c")
        .await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("podinfo.prod"), "{}", stdout(&out));

    let refused: Vec<String> = c
        .world
        .sim()
        .request_log()
        .iter()
        .filter(|r| !r.allowed)
        .map(|r| format!("{} {} -> {} ({})", r.method, r.path, r.status, r.attributes))
        .collect();
    assert!(
        refused.is_empty(),
        "examples/job.yaml is missing permissions for:\n{}",
        refused.join("\n")
    );
    let direct = went_direct(&c.world);
    assert!(
        reached(&direct, "GET", "prometheus.linkerd-viz", "/api/v1/query?"),
        "{direct:#?}"
    );
    assert!(
        reached(&direct, "POST", "flagger-loadtester.prod", "/"),
        "{direct:#?}"
    );
    c.world.shutdown().await;
}
