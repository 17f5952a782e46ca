//! No credential in anything `canary` shows or stores. Secrets are planted
//! everywhere a spec and a cluster can hold them: a bearer token and a
//! basic-auth pair in the Secrets of two MetricTemplates, a password and
//! `?sig=` in a webhook URL, `?token=` in another, credentials in webhook
//! metadata; and the metrics server and the webhook echo every request
//! (its headers, URL and body) into their error answers, as some servers
//! do. Then `canary run` in every output mode with `GITHUB_STEP_SUMMARY`
//! set, `plan`, `status` in every `-o` format, and every object the
//! simulated cluster stores: none of the planted strings may appear.
//! Also: the API server's own Service and Services outside
//! `--proxy-allow` are refused before anything is written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::prelude::{BASE64_STANDARD, Engine as _};

use crate::run::Cluster;
use crate::support::Sim;
use crate::util::{stderr, stdout};

const BEARER: &str = "bearer-s3cr3t-71c4";
const BASIC_USER: &str = "basic-user-5e2a";
const BASIC_PASSWORD: &str = "basic-p4ss-90d1";
const HOOK_PASSWORD: &str = "hook-p4ss-c0f3";
const HOOK_SIG: &str = "hook-sig-8b7e";
const HOOK_TOKEN: &str = "hook-t0ken-41aa";
const META_KEY: &str = "meta-k3y-2d9c";
const META_PASSWORD: &str = "meta-p4ss-6f10";
const CMD_TOKEN: &str = "cmd-t0ken-b3e8";

/// Every planted string, with the forms a header carries them in.
fn planted() -> Vec<String> {
    let mut all: Vec<String> = [
        BEARER,
        BASIC_USER,
        BASIC_PASSWORD,
        HOOK_PASSWORD,
        HOOK_SIG,
        HOOK_TOKEN,
        META_KEY,
        META_PASSWORD,
        CMD_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.push(BASE64_STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}")));
    all.push(BASE64_STANDARD.encode(format!("hooker:{HOOK_PASSWORD}")));
    all
}

/// The seed's podinfo canary, fast, checked by two MetricTemplates whose
/// server at `echo` needs credentials, with webhooks that carry some.
fn spec(echo: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: prod
spec:
  provider: linkerd
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    stepWeight: 20
    threshold: 2
    metrics:
      - name: bearer-rate
        templateRef:
          name: bearer-rate
        thresholdRange:
          min: 1
        interval: 10s
      - name: basic-rate
        templateRef:
          name: basic-rate
        thresholdRange:
          min: 1
        interval: 10s
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.prod/?token={HOOK_TOKEN}
        metadata:
          type: cmd
          cmd: \"curl -H 'Authorization: Bearer {CMD_TOKEN}' http://podinfo-canary.prod:9898/\"
      - name: notify
        type: event
        url: http://hooker:{HOOK_PASSWORD}@{echo}/notify?sig={HOOK_SIG}&v=1
        metadata:
          apiKey: {META_KEY}
          password: {META_PASSWORD}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: bearer-rate
  namespace: prod
spec:
  provider:
    type: prometheus
    address: http://{echo}
    secretRef:
      name: prom-bearer
  query: sum(rate(request_total{{namespace=\"{{{{ namespace }}}}\"}}[1m]))
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: basic-rate
  namespace: prod
spec:
  provider:
    type: prometheus
    address: http://{echo}/basic
    secretRef:
      name: prom-basic
  query: sum(rate(request_total{{namespace=\"{{{{ namespace }}}}\"}}[1m]))
"
    )
}

/// A server that answers Prometheus's `vector(1)` and echoes every other
/// request, headers, URL and body, in an error; it keeps the
/// `Authorization` headers it saw.
async fn echo_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(move |req: Request<Body>| {
        let log = log.clone();
        async move {
            let uri = req.uri().to_string();
            let mut echo = format!("{} {uri}", req.method());
            for (name, value) in req.headers() {
                let value = value.to_str().unwrap_or_default().to_string();
                if name == "authorization" {
                    log.lock().unwrap().push(value.clone());
                    // Decoded too, as a helpful server might.
                    if let Some(b) = value.strip_prefix("Basic ")
                        && let Ok(raw) = BASE64_STANDARD.decode(b)
                    {
                        echo.push_str(&format!(" (user:password {})", String::from_utf8_lossy(&raw)));
                    }
                }
                echo.push_str(&format!("; {name}: {value}"));
            }
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            echo.push_str(&format!("; body {}", String::from_utf8_lossy(&body)));
            if uri.contains("vector%281%29") || uri.contains("vector(1)") {
                return (
                    axum::http::StatusCode::OK,
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#
                        .to_string(),
                );
            }
            let error = serde_json::json!({
                "status": "error",
                "errorType": "bad_data",
                "error": format!("refused {echo}"),
            });
            (
                axum::http::StatusCode::BAD_REQUEST,
                if uri.starts_with("/notify") {
                    echo
                } else {
                    error.to_string()
                },
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// The two Secrets the MetricTemplates name.
async fn plant_secrets(c: &Cluster) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(c.world.client().await.unwrap(), "prod");
    for (name, data) in [
        ("prom-bearer", vec![("token", BEARER)]),
        (
            "prom-basic",
            vec![("username", BASIC_USER), ("password", BASIC_PASSWORD)],
        ),
    ] {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        api.create(&Default::default(), &secret).await.unwrap();
    }
}

/// `canary ARGS...` against the cluster, with `envs`; standard output and
/// error as one text, and the exit code.
async fn canary(c: &Cluster, args: &[&str], envs: &[(&str, &str)]) -> (String, Option<i32>) {
    let mut cmd = crate::util::canary();
    cmd.args(args).timeout(Duration::from_secs(120));
    if !matches!(args[0], "plan" | "validate") {
        cmd.arg("--kubeconfig").arg(&c.kubeconfig);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        format!("{}{}", stdout(&out), stderr(&out)),
        out.status.code(),
    )
}

/// `canary run` on a terminal, for the live view: through `script`, which
/// gives it one. `None` where there is no `script`.
async fn run_on_a_terminal(c: &Cluster, envs: &[(&str, &str)]) -> Option<(String, Option<i32>)> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let bin = assert_cmd::cargo::cargo_bin("canary");
    let line = format!(
        "{} run {} --retry --kubeconfig {}",
        bin.display(),
        c.spec.display(),
        c.kubeconfig.display()
    );
    let mut cmd = std::process::Command::new(script);
    cmd.args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120")
        .env_remove("KUBECONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Some((
        format!("{}{}", stdout_of(&out), stderr_of(&out)),
        out.status.code(),
    ))
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every planted string found in `text`, for the message of a failure.
fn leaks(text: &str) -> Vec<String> {
    planted()
        .into_iter()
        .filter(|s| text.contains(s.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_secret_reaches_any_output_or_the_cluster() {
    let (echo, seen) = echo_server().await;
    let c = Cluster::start_with(&spec(&echo)).await;
    plant_secrets(&c).await;
    c.initialise().await;

    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step-summary.md");
    let summary_env = summary.to_str().unwrap().to_string();
    let envs = [("GITHUB_STEP_SUMMARY", summary_env.as_str())];
    let spec_path = c.spec.to_str().unwrap().to_string();
    let mut texts: Vec<(String, String)> = Vec::new();

    // Every output mode: plain lines, JSON events, quiet, the full
    // summary; each analyses a release that fails its checks (the server
    // refuses every query), so every path of an error is taken.
    for (i, mode) in [
        vec![],
        vec!["--output", "json"],
        vec!["--quiet"],
        vec!["--summary", "full"],
    ]
    .into_iter()
    .enumerate()
    {
        c.set_image(if i % 2 == 0 { "3.1.1" } else { "3.1.2" });
        let mut args = vec!["run", spec_path.as_str(), "--retry"];
        args.extend(mode.iter().copied());
        let (text, code) = canary(&c, &args, &envs).await;
        assert_eq!(code, Some(1), "{args:?} rolls back: {text}");
        texts.push((format!("run {mode:?}"), text));
    }
    // The live view, on a terminal.
    c.set_image("3.1.1");
    match run_on_a_terminal(&c, &envs).await {
        Some((text, code)) => {
            assert_eq!(code, Some(1), "the live run rolls back: {text}");
            texts.push(("run on a terminal".to_string(), text));
        }
        None => println!("SKIPPED: no `script` to give `canary run` a terminal"),
    }

    // What the servers were sent, so the test is not vacuous: they had
    // the credentials, and echoed them into what canary read.
    let authorizations = seen.lock().unwrap().clone();
    assert!(
        authorizations.iter().any(|a| a.contains(BEARER)),
        "{authorizations:?}"
    );
    assert!(
        authorizations.iter().any(|a| a.starts_with("Basic ")),
        "{authorizations:?}"
    );

    let (plan, code) = canary(&c, &["plan", &spec_path], &[]).await;
    assert_eq!(code, Some(0), "{plan}");
    texts.push(("plan".to_string(), plan));
    let (validate, _) = canary(&c, &["validate", &spec_path], &[]).await;
    texts.push(("validate".to_string(), validate));

    for format in [
        None,
        Some("wide"),
        Some("json"),
        Some("yaml"),
        Some("name"),
        Some("jsonpath={.status}"),
        Some("custom-columns=NAME:.metadata.name,STATUS:.status"),
    ] {
        for target in [vec!["podinfo", "-n", "prod"], vec!["-A"]] {
            let mut args = vec!["status", "--exit-zero"];
            args.extend(target.iter().copied());
            if let Some(f) = format {
                args.extend(["-o", f]);
            }
            let (text, code) = canary(&c, &args, &[]).await;
            assert_eq!(code, Some(0), "{args:?}: {text}");
            texts.push((format!("{args:?}"), text));
        }
    }

    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(markdown.contains("podinfo.prod"), "{markdown}");
    texts.push(("GITHUB_STEP_SUMMARY".to_string(), markdown));

    // Every object of the cluster but the Secrets themselves, the state
    // and spec annotations on the primary among them.
    let objects: Vec<serde_json::Value> = c
        .world
        .store()
        .all_objects()
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    let primary = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "podinfo-primary")
        .expect("the primary exists");
    let annotations = primary["metadata"]["annotations"].to_string();
    assert!(
        annotations.contains("canary.flagger.app/spec")
            && annotations.contains("refused GET /api/v1/query"),
        "the echoed errors are stored, masked: {annotations}"
    );
    texts.push((
        "the cluster's objects".to_string(),
        serde_json::to_string(&objects).unwrap(),
    ));

    let mut found = Vec::new();
    for (what, text) in &texts {
        let l = leaks(text);
        if !l.is_empty() {
            found.push(format!("{what}: {l:?}"));
        }
    }
    assert!(
        found.is_empty(),
        "secrets shown or stored:\n{}\n\nfirst leaking text:\n{}",
        found.join("\n"),
        texts
            .iter()
            .find(|(_, t)| !leaks(t).is_empty())
            .map(|(w, t)| format!("{w}:\n{t}"))
            .unwrap_or_default()
    );
    // Masked, not dropped: the echoed errors are there with `***`.
    let all: String = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("Bearer ***"), "the bearer header is masked");
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_with_no_driver_skips_a_hook_whose_credentials_were_masked() {
    let (echo, _) = echo_server().await;
    let c = Cluster::start_with(&spec(&echo).replace("threshold: 2", "threshold: 1000")).await;
    plant_secrets(&c).await;
    c.initialise().await;
    // An analysis under way, left by a stopped run: no driver.
    c.set_image("3.1.1");
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    crate::util::interrupt(&child);
    let out = crate::util::finish(child).await;
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // With no spec file, the stored spec's event hook lost its password
    // and its metadata credentials: skipped, with a warning that says how
    // to call it; the abort itself goes on.
    let (text, code) = canary(&c, &["abort", "podinfo", "-n", "prod"], &[]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("webhook `notify` (event) is skipped")
            && text.contains("pass the Canary file with -f FILE"),
        "{text}"
    );
    assert!(leaks(&text).is_empty(), "{text}");
    c.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_servers_service_and_namespaces_outside_proxy_allow_are_refused_up_front() {
    const PODINFO: &str = include_str!("../examples/podinfo.yaml");
    let sim = Sim::start().await;
    let hostile = sim.write(
        "hostile.yaml",
        &PODINFO.replace(
            "http://flagger-loadtester.prod/",
            "https://kubernetes.default.svc/api/v1/namespaces/kube-system/secrets",
        ),
    );
    assert!(
        std::fs::read_to_string(&hostile)
            .unwrap()
            .contains("kubernetes.default")
    );
    sim.world.sim().clear_request_log();
    for command in ["validate", "run"] {
        let out = sim
            .canary(vec![command.to_string(), hostile.display().to_string()])
            .await;
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the Kubernetes API server's own Service"),
            "{command}: {}",
            stderr(&out)
        );
    }

    // podinfo's hooks are Services of its own namespace `prod`: allowed.
    // The built-in metrics go to Linkerd's Prometheus in `linkerd-viz`.
    let spec = sim.write("podinfo.yaml", PODINFO);
    let command = |command: &str, allow: &str| {
        vec![
            command.to_string(),
            spec.display().to_string(),
            "--proxy-allow".to_string(),
            allow.to_string(),
            "--mesh-provider".to_string(),
            "linkerd".to_string(),
        ]
    };
    let run = |allow: &str| command("run", allow);
    let out = sim.canary(run("kube-system,monitoring")).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("prometheus.linkerd-viz")
            && err.contains("--proxy-allow allows only the Services of the namespaces prod, kube-system, monitoring"),
        "{err}"
    );
    assert!(!err.contains("flagger-loadtester"), "{err}");
    // `validate --cluster` refuses what `run` would.
    let mut validate = command("validate", "kube-system");
    validate.push("--cluster".to_string());
    let out = sim.canary(validate).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("prometheus.linkerd-viz"), "{err}");
    assert_eq!(sim.writes(), Vec::<String>::new(), "nothing is written");
    sim.world.shutdown().await;
}
