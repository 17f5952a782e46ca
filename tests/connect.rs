//! Connection failures said as kubectl says them, with the server's
//! address, and always a cluster error (exit 3), never a spec error: a
//! closed port, a server that never answers, a certificate signed by
//! another CA, a wrong token, and a detection the credentials may not do.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use canary_sim::rbac::Rules;
use canary_sim::server::{Sim, SimConfig};

use crate::util::{canary, stderr};

const SPEC: &str = "tests/fixtures/manifest-podinfo.yaml";

/// The spec without its `provider`, so that `run` detects one.
fn spec_without_provider(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(crate::util::root().join(SPEC)).unwrap();
    let p = dir.join("no-provider.yaml");
    std::fs::write(&p, text.replace("  provider: linkerd\n", "")).unwrap();
    p
}

/// `canary ARGS --kubeconfig KC --request-timeout 2s`, timed.
async fn within_2s(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = canary();
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout", "2s"]);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("{args:?}: exit {:?} after {took:?}", out.status.code());
    assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    out
}

/// Every command that talks to the cluster, on the same kubeconfig, exits
/// 3 with a message holding each of `words`.
async fn every_command_says(kubeconfig: &Path, dir: &Path, words: &[&str]) {
    let detect = spec_without_provider(dir);
    let detect = detect.to_str().unwrap();
    for args in [
        &["status"][..],
        &["abort", "podinfo"],
        &["run", SPEC, "--mesh-provider", "linkerd"],
        &["run", detect],
    ] {
        let out = within_2s(kubeconfig, args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?} says {w:?}: {err}");
        }
        assert!(!err.contains("no provider"), "{args:?}: {err}");
    }
}

/// A kubeconfig for `server`, user `alice` with a token.
fn kubeconfig(server: &str, _ca: Option<&str>, token: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {server}
contexts:
- name: c
  context: {{cluster: c, user: alice, namespace: {namespace}}}
current-context: c
users:
- name: alice
  user: {{token: {token}}}
"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_refused_connection_naming_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // A port just closed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig(&format!("https://127.0.0.1:{port}"), None, "t0ken", "test"),
    );
    let server = format!("https://127.0.0.1:{port}");
    every_command_says(&kc, dir.path(), &[&server, "was refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_within_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts every connection and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let server = format!("https://{addr}");
    let kc = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig(&server, None, "t0ken", "test"),
    );
    every_command_says(
        &kc,
        dir.path(),
        &[&server, "i/o timeout", "no answer within 2s"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_is_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write(
        dir.path(),
        "kubeconfig",
        &kubeconfig("https://no-such-host.invalid:6443", None, "t", "test"),
    );
    every_command_says(
        &kc,
        dir.path(),
        &[
            "no-such-host.invalid:6443",
            "lookup no-such-host.invalid: no such host",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_named_as_kubectl_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let other = Sim::start(SimConfig::default()).await.unwrap();
    // The other sim's kubeconfig (its CA), pointed at this sim.
    let text = other
        .kubeconfig_yaml()
        .replace(&other.https_url(), &sim.https_url());
    let kc = write(dir.path(), "kubeconfig", &text);
    every_command_says(
        &kc,
        dir.path(),
        &[
            &sim.https_url(),
            "x509: certificate signed by unknown authority",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_unauthorized_naming_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let text = sim.kubeconfig_yaml().replace(sim.token(), "not-the-token");
    let kc = write(dir.path(), "kubeconfig", &text);
    every_command_says(
        &kc,
        dir.path(),
        &[&sim.https_url(), "Unauthorized, HTTP 401", "as user `sim`"],
    )
    .await;
}

/// An OIDC user (kube's `oidc` support sends the id-token) whose token the
/// server refuses is named as any other user is, not left a bare 401, and
/// the token never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_user_the_server_refuses_is_named() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    // Unexpired (2100), so that it is sent as it is, without a refresh.
    let id_token = format!(
        "{}.{}.c2lnbmF0dXJl",
        part(r#"{"alg":"RS256"}"#),
        part(r#"{"iss":"https://idp.example.com","exp":4102444800}"#)
    );
    let user = format!(
        "    auth-provider:
      name: oidc
      config:
        client-id: canary
        idp-issuer-url: https://idp.example.com
        id-token: {id_token}
"
    );
    let kc = write(dir.path(), "kubeconfig", &with_user(&sim, &user));
    every_command_says(
        &kc,
        dir.path(),
        &[&sim.https_url(), "Unauthorized, HTTP 401", "as user `sim`"],
    )
    .await;
    let out = within_2s(&kc, &["status"]).await;
    assert!(!stderr(&out).contains(&id_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detection_the_credentials_may_not_do_is_a_cluster_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    // May read Deployments, not Namespaces or CRDs.
    let rules = Rules::from_yaml(
        "kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: reader, namespace: test}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get]
",
    )
    .unwrap();
    sim.restrict(Some(rules));
    let kc = write(dir.path(), "kubeconfig", &sim.kubeconfig_yaml());
    let detect = spec_without_provider(dir.path());
    let out = within_2s(&kc, &["run", detect.to_str().unwrap()]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("--mesh-provider"),
        "{err}"
    );
}

/// The sim's kubeconfig with its user's `token:` line replaced by `user`
/// (YAML lines indented under `user:`).
fn with_user(sim: &Sim, user: &str) -> String {
    let token_line = format!(
        "    token: {}\n",
        serde_json::to_string(sim.token()).unwrap()
    );
    let text = sim.kubeconfig_yaml();
    assert!(text.contains(&token_line), "{text}");
    text.replace(&token_line, user)
}

/// `canary status` with `KUBECONFIG` set to `list`, timed as the others.
async fn status_with_kubeconfig_env(list: &std::ffi::OsStr) -> Output {
    let mut cmd = canary();
    cmd.args(["status", "--request-timeout", "5s"])
        .env("KUBECONFIG", list);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_list_skips_the_files_that_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let kc = write(dir.path(), "kubeconfig", &sim.kubeconfig_yaml());
    let missing = dir.path().join("no-such-kubeconfig");
    let list = std::env::join_paths([&missing, &kc]).unwrap();
    let out = status_with_kubeconfig_env(&list).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // With every file missing, the message says so and names them.
    let list = std::env::join_paths([&missing]).unwrap();
    let out = status_with_kubeconfig_env(&list).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("none of the files it lists exists") && err.contains("no-such-kubeconfig"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_ending_in_a_newline_is_read_as_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let token = write(dir.path(), "token", &format!("{}\n", sim.token()));
    let user = format!(
        "    tokenFile: {}\n",
        serde_json::to_string(&token).unwrap()
    );
    let kc = write(dir.path(), "kubeconfig", &with_user(&sim, &user));
    let out = within_2s(&kc, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains(sim.token()), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_plugin_that_is_not_installed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let user = "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: canary-test-no-such-login
      interactiveMode: Never
";
    let kc = write(dir.path(), "kubeconfig", &with_user(&sim, user));
    for args in [&["status"][..], &["abort", "podinfo"]] {
        let out = within_2s(&kc, args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("exec plugin \"canary-test-no-such-login\"")
                && err.contains("not found on PATH")
                && err.contains("user `sim`"),
            "{args:?}: {err}"
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_exec_plugin_reports_its_exit_code_and_stderr_never_its_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let plugin = write(
        dir.path(),
        "login",
        "#!/bin/sh\necho 'SECRET-TOKEN-7f3a'\necho 'login expired, run login again' >&2\nexit 7\n",
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Both modes: kube hands a plugin the terminal's stderr unless it
    // may not ask anything.
    for mode in ["Never", "IfAvailable"] {
        let user = format!(
            "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {}
      interactiveMode: {mode}
",
            plugin.display()
        );
        let kc = write(dir.path(), "kubeconfig", &with_user(&sim, &user));
        let out = within_2s(&kc, &["status"]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{mode}: {err}");
        assert!(err.contains("exit code 7"), "{mode}: {err}");
        assert!(
            err.contains("login expired, run login again"),
            "{mode}: {err}"
        );
        assert!(!err.contains("SECRET-TOKEN-7f3a"), "{mode}: {err}");
        assert!(!stdout_of(&out).contains("SECRET-TOKEN-7f3a"), "{mode}");
    }
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP CONNECT proxy on loopback: tunnels each connection to the
/// address it is asked for, and counts the tunnels.
async fn connect_proxy() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut client = tokio::io::BufReader::new(client);
                let mut request = String::new();
                client.read_line(&mut request).await.ok()?;
                let target = request
                    .strip_prefix("CONNECT ")?
                    .split(' ')
                    .next()?
                    .to_string();
                // The headers, up to the empty line.
                loop {
                    let mut line = String::new();
                    client.read_line(&mut line).await.ok()?;
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut upstream = tokio::net::TcpStream::connect(&target).await.ok()?;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .ok()?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .ok()
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_proxy_url_is_used_to_reach_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (proxy, tunnels) = connect_proxy().await;
    let server_line = format!(
        "    server: {}\n",
        serde_json::to_string(&sim.https_url()).unwrap()
    );
    let text = sim.kubeconfig_yaml();
    assert!(text.contains(&server_line), "{text}");
    let text = text.replace(
        &server_line,
        &format!("{server_line}    proxy-url: http://{proxy}\n"),
    );
    let kc = write(dir.path(), "kubeconfig", &text);
    let out = within_2s(&kc, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let through = tunnels.load(std::sync::atomic::Ordering::SeqCst);
    assert!(through >= 1);

    // With no proxy-url, HTTPS_PROXY, as kubectl takes it.
    let kc = write(dir.path(), "plain", &sim.kubeconfig_yaml());
    let mut cmd = canary();
    cmd.args(["status", "--request-timeout", "5s", "--kubeconfig"])
        .arg(&kc)
        .env("HTTPS_PROXY", format!("http://{proxy}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(tunnels.load(std::sync::atomic::Ordering::SeqCst) > through);
}

/// An API server that refuses every request, quoting the credential it
/// was sent without its scheme, as a misconfigured proxy might.
async fn echoing_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                loop {
                    let mut credential = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.ok()? == 0 {
                            return Some(());
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("authorization")
                        {
                            let value = value.trim();
                            credential = value.split_once(' ').map_or(value, |(_, t)| t).into();
                        }
                    }
                    let body = serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Forbidden", "code": 403,
                        "message": format!("credential {credential} is not allowed here"),
                    })
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    stream.get_mut().write_all(response.as_bytes()).await.ok()?;
                }
            });
        }
    });
    addr
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_an_exec_plugin_fetched_never_reaches_the_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = echoing_server().await;
    let token = "EXECTOKEN-5b1f2e9c77";
    let plugin = write(
        dir.path(),
        "login",
        &format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\
             \"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n"
        ),
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: 'http://{server}'}}
contexts:
- name: c
  context: {{cluster: c, user: alice, namespace: prod}}
current-context: c
users:
- name: alice
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {}
      interactiveMode: Never
",
            plugin.display()
        ),
    );
    for args in [&["status"][..], &["abort", "podinfo"]] {
        let out = within_2s(&kc, args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        // The server's words come through, its quote of the token does not.
        assert!(err.contains("is not allowed here"), "{args:?}: {err}");
        assert!(!err.contains(token), "{args:?}: {err}");
        assert!(!stdout_of(&out).contains(token), "{args:?}");
    }
}
