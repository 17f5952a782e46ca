//! A flagger-loadtester for the simulated cluster, registered behind the
//! API server's service proxy as the scenario's load tester Service.
//!
//! The HTTP protocol is Flagger's (`pkg/loadtester/server.go`, `gate.go`,
//! `bash.go`, `task_shell.go`, `runner.go` of fluxcd/flagger): `POST /`
//! with the webhook payload `{name, namespace, phase, checksum, metadata}`
//! starts a task; `metadata.type` `cmd` (the default) runs in the
//! background and is answered 202 at once (a second identical command for
//! the same canary is skipped while the first runs), `bash` blocks and
//! answers 200 (body: the output when `returnCmdOutput` is true) or 500
//! with `command CMD failed: OUTPUT: exit status N`; the gates
//! `/gate/approve` (200 OK), `/gate/halt` (403 Forbidden), `/gate/check`
//! (200 Approved / 403 Forbidden), `/gate/open` and `/gate/close` (202),
//! and the same under `/rollback/` keep per-canary state keyed
//! `name.namespace` (`rollback.name.namespace`). Bodies that are not the
//! payload's JSON answer 400 with an empty body, a payload without
//! metadata 400 `metadata not found in payload`, an unknown task type 400
//! `unknown task type X`.
//!
//! Commands are interpreted, never executed: a small shell (words, quotes,
//! `|`, `&&`, `||`, `;`, `2>&1`, `> /dev/null`) runs `hey` (load through
//! the traffic model, paced like hey), `curl` (one request through the
//! traffic model, waiting its latency), `grep`, `echo`, `cat`, `sleep`,
//! `true`, `false` and `exit`. Anything else fails as an unknown command
//! does in bash (exit status 127) with a message saying what the simulated
//! load tester understands.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::scenario::parse_go_duration;
use crate::traffic::{LoadSpec, Request, Source, Target, Traffic};

/// How the load tester was started (its flags).
#[derive(Debug, Clone)]
pub struct LoadTesterConfig {
    /// Its Service name (the source workload of its requests).
    pub name: String,
    /// Its namespace: short host names resolve there, as in its pod.
    pub namespace: String,
    /// `-timeout`: how long a command may run (default 1 h).
    pub timeout: Duration,
    /// `-namespace-regexp`: payloads from other namespaces answer 403.
    pub namespace_regexp: Option<regex::Regex>,
}

impl Default for LoadTesterConfig {
    fn default() -> Self {
        LoadTesterConfig {
            name: "flagger-loadtester".to_string(),
            namespace: "default".to_string(),
            timeout: Duration::from_secs(3600),
            namespace_regexp: None,
        }
    }
}

/// One request the load tester received, with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookCall {
    pub at: SystemTime,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub body: String,
    /// The body as JSON, when it is JSON.
    pub payload: Option<Value>,
    pub status: u16,
    pub response: String,
}

/// One command the load tester ran (or skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// `name.namespace` of the canary.
    pub canary: String,
    /// `cmd` or `bash`.
    pub kind: String,
    pub command: String,
    pub started: SystemTime,
    /// `None` while running.
    pub ok: Option<bool>,
    pub exit_code: Option<i32>,
    /// Combined output.
    pub output: String,
    /// Not run because the same command was already running.
    pub skipped: bool,
}

/// The result of an interpreted command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exec {
    pub code: i32,
    /// Standard output and error, interleaved as written.
    pub output: String,
}

/// The simulated flagger-loadtester.
pub struct LoadTester {
    traffic: Arc<Traffic>,
    config: LoadTesterConfig,
    state: Mutex<LtState>,
}

#[derive(Default)]
struct LtState {
    calls: Vec<WebhookCall>,
    tasks: Vec<TaskRecord>,
    gates: HashMap<String, bool>,
    /// Running `cmd` tasks by canary + command (Flagger's task hash).
    running: HashMap<String, usize>,
}

impl LoadTester {
    pub fn new(traffic: Arc<Traffic>, config: LoadTesterConfig) -> Arc<LoadTester> {
        Arc::new(LoadTester {
            traffic,
            config,
            state: Mutex::new(LtState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LtState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP face, for the service proxy.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Every request received so far, oldest first.
    pub fn calls(&self) -> Vec<WebhookCall> {
        self.lock().calls.clone()
    }

    /// Every task started or skipped, oldest first.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        self.lock().tasks.clone()
    }

    /// Whether the confirm gate of `name.namespace` is open.
    pub fn gate_open(&self, name: &str, namespace: &str) -> bool {
        self.lock()
            .gates
            .get(&format!("{name}.{namespace}"))
            .copied()
            .unwrap_or(false)
    }

    fn authorized(&self, p: &Payload) -> bool {
        self.config
            .namespace_regexp
            .as_ref()
            .is_none_or(|re| re.is_match(&p.namespace))
    }

    async fn answer(self: &Arc<Self>, method: &Method, path: &str, body: &[u8]) -> (u16, String) {
        let gate = |key: String| -> (u16, String) {
            if self.lock().gates.get(&key).copied().unwrap_or(false) {
                (200, "Approved".to_string())
            } else {
                (403, "Forbidden".to_string())
            }
        };
        let _ = method;
        match path {
            "/healthz" => return (200, "OK".to_string()),
            "/metrics" => {
                return (
                    200,
                    "# the simulated flagger-loadtester exports no metrics\n".to_string(),
                );
            }
            "/gate/approve" => return (200, "OK".to_string()),
            "/gate/halt" => return (403, "Forbidden".to_string()),
            _ => {}
        }
        let payload = match decode_payload(body) {
            Ok(p) => p,
            Err(_) => return (400, String::new()),
        };
        if !self.authorized(&payload) {
            return (403, "Forbidden".to_string());
        }
        let canary = format!("{}.{}", payload.name, payload.namespace);
        match path {
            "/gate/check" => gate(canary),
            "/gate/open" | "/gate/close" => {
                let open = path == "/gate/open";
                self.lock().gates.insert(canary, open);
                (202, String::new())
            }
            "/rollback/check" => gate(format!("rollback.{canary}")),
            "/rollback/open" | "/rollback/close" => {
                let open = path == "/rollback/open";
                self.lock().gates.insert(format!("rollback.{canary}"), open);
                (202, String::new())
            }
            _ => self.new_task(payload, canary).await,
        }
    }

    /// `HandleNewTask`.
    async fn new_task(self: &Arc<Self>, payload: Payload, canary: String) -> (u16, String) {
        let Some(metadata) = payload.metadata.filter(|m| !m.is_empty()) else {
            return (400, "metadata not found in payload".to_string());
        };
        let typ = metadata
            .get("type")
            .cloned()
            .unwrap_or_else(|| "cmd".to_string());
        let return_output = metadata
            .get("returnCmdOutput")
            .is_some_and(|v| go_parse_bool(v));
        let cmd = metadata.get("cmd").cloned();
        match typ.as_str() {
            "bash" | "helm" | "helmv3" | "kubectl" => {
                let command = cmd.unwrap_or_default();
                // helm and kubectl tasks prefix their tool, as Flagger's do.
                let line = match typ.as_str() {
                    "helm" | "helmv3" => format!("helmv3 {command}"),
                    "kubectl" => format!("kubectl {command}"),
                    _ => command.clone(),
                };
                let idx = self.record_task(&canary, &typ, &line, false);
                let shell = if typ == "bash" { "bash" } else { "sh" };
                let exec = self.run_with_timeout(&line, shell).await;
                self.finish_task(idx, &exec);
                if exec.code == 0 {
                    (
                        200,
                        if return_output {
                            exec.output
                        } else {
                            String::new()
                        },
                    )
                } else {
                    let err = exit_error(exec.code);
                    (
                        500,
                        format!("command {line} failed: {}: {err}", exec.output),
                    )
                }
            }
            "cmd" => {
                let Some(command) = cmd else {
                    return (400, "cmd not found in metadata".to_string());
                };
                let key = format!("{canary}{command}");
                if self.lock().running.contains_key(&key) {
                    self.record_task(&canary, "cmd", &command, true);
                } else {
                    let idx = self.record_task(&canary, "cmd", &command, false);
                    self.lock().running.insert(key.clone(), idx);
                    let lt = self.clone();
                    tokio::spawn(async move {
                        let exec = lt.run_with_timeout(&command, "sh").await;
                        lt.finish_task(idx, &exec);
                        lt.lock().running.remove(&key);
                    });
                }
                (202, String::new())
            }
            "concord" | "ngrinder" => (
                400,
                format!("{typ} tasks are not simulated by the simulated flagger-loadtester"),
            ),
            other => (400, format!("unknown task type {other}")),
        }
    }

    fn record_task(&self, canary: &str, kind: &str, command: &str, skipped: bool) -> usize {
        let mut g = self.lock();
        g.tasks.push(TaskRecord {
            canary: canary.to_string(),
            kind: kind.to_string(),
            command: command.to_string(),
            started: SystemTime::now(),
            ok: skipped.then_some(true),
            exit_code: None,
            output: String::new(),
            skipped,
        });
        g.tasks.len() - 1
    }

    fn finish_task(&self, idx: usize, exec: &Exec) {
        if let Some(t) = self.lock().tasks.get_mut(idx) {
            t.ok = Some(exec.code == 0);
            t.exit_code = Some(exec.code);
            t.output = exec.output.clone();
        }
    }

    async fn run_with_timeout(self: &Arc<Self>, line: &str, shell: &str) -> Exec {
        match tokio::time::timeout(self.config.timeout, self.run(line, shell)).await {
            Ok(e) => e,
            Err(_) => Exec {
                code: -9,
                output: String::new(),
            },
        }
    }

    /// Interprets a command line as `shell -c LINE` would run it.
    pub async fn run(self: &Arc<Self>, line: &str, shell: &str) -> Exec {
        let list = match parse_line(line) {
            Ok(l) => l,
            Err(e) => {
                return Exec {
                    code: 2,
                    output: format!("{shell}: -c: line 1: {e}\n"),
                };
            }
        };
        let mut out = String::new();
        let mut code = 0;
        let mut skip = false;
        for (pipeline, op) in list {
            if !skip {
                let (c, o, exit) = self.run_pipeline(&pipeline, shell).await;
                code = c;
                out.push_str(&o);
                if exit {
                    break;
                }
            }
            skip = match op {
                Op::And => code != 0,
                Op::Or => code == 0,
                Op::Seq => false,
            };
        }
        Exec { code, output: out }
    }

    /// Runs a pipeline: each stage's stdout feeds the next; the exit code is
    /// the last stage's (no `pipefail`).
    async fn run_pipeline(self: &Arc<Self>, stages: &[Cmd], shell: &str) -> (i32, String, bool) {
        let mut stdin = String::new();
        let mut combined = String::new();
        let mut code = 0;
        for (i, cmd) in stages.iter().enumerate() {
            let last = i + 1 == stages.len();
            let r = self.builtin(cmd, &stdin, shell).await;
            code = r.code;
            let (mut stdout, stderr) = (r.stdout, r.stderr);
            if cmd.stderr_to_stdout {
                stdout.push_str(&stderr);
            } else if !cmd.stderr_null {
                combined.push_str(&stderr);
            }
            if cmd.stdout_null {
                stdout.clear();
            }
            if last {
                combined.push_str(&stdout);
            } else {
                stdin = stdout;
            }
            if r.exit && last {
                return (code, combined, true);
            }
        }
        (code, combined, false)
    }

    fn builtin<'a>(
        self: &'a Arc<Self>,
        cmd: &'a Cmd,
        stdin: &'a str,
        shell: &'a str,
    ) -> Pin<Box<dyn Future<Output = Out> + Send + 'a>> {
        Box::pin(async move {
            let Some(name) = cmd.argv.first() else {
                return Out::ok(String::new());
            };
            let args = &cmd.argv[1..];
            match name.as_str() {
                "hey" => self.hey(args).await,
                "curl" => self.curl(args).await,
                "grep" => grep(args, stdin),
                "echo" => {
                    let (newline, words) = match args.first().map(String::as_str) {
                        Some("-n") => (false, &args[1..]),
                        _ => (true, args),
                    };
                    Out::ok(words.join(" ") + if newline { "\n" } else { "" })
                }
                "cat" if args.is_empty() || args == ["-"] => Out::ok(stdin.to_string()),
                "true" | ":" => Out::ok(String::new()),
                "false" => Out::code(1, String::new()),
                "sleep" => match args.first().and_then(|a| parse_sleep(a)) {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        Out::ok(String::new())
                    }
                    None => Out::code(1, "sleep: missing or invalid operand\n".to_string()),
                },
                "exit" => {
                    let code = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                    Out {
                        code,
                        exit: true,
                        ..Out::ok(String::new())
                    }
                }
                other => {
                    let msg = match shell {
                        "bash" => format!("bash: line 1: {other}: command not found"),
                        _ => format!("sh: 1: {other}: not found"),
                    };
                    Out::code(
                        127,
                        format!(
                            "{msg} (the simulated flagger-loadtester interprets hey, curl, grep, echo, cat, sleep, true, false and exit; it runs nothing)\n"
                        ),
                    )
                }
            }
        })
    }

    fn source(&self) -> Source {
        Source {
            workload: self.config.name.clone(),
            namespace: self.config.namespace.clone(),
        }
    }

    /// `hey`: load through the traffic model, paced like hey.
    async fn hey(self: &Arc<Self>, args: &[String]) -> Out {
        let h = match parse_hey(args) {
            Ok(h) => h,
            Err((code, msg)) => return Out::code(code, msg),
        };
        let (target, path) = match url_target(&h.url, &self.config.namespace) {
            Ok(t) => t,
            Err(e) => {
                // hey sends every request and counts the error.
                let n = if h.duration.is_some() { 1 } else { h.requests };
                return Out::ok(format!(
                    "\nSummary:\n  Total:\t0.0000 secs\n\nError distribution:\n  [{n}]\t{e}\n"
                ));
            }
        };
        let mut headers = h.headers.clone();
        if let Some(host) = &h.host {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
            headers.push(("Host".to_string(), host.clone()));
        }
        let request = Request {
            target,
            method: h.method.clone(),
            path,
            headers,
            body: h.body.clone(),
            source: self.source(),
        };
        let handle = self.traffic.start_load(LoadSpec {
            request,
            concurrency: h.concurrency,
            qps: h.qps,
            duration: h.duration,
            requests: h.requests,
            timeout: h.timeout,
        });
        let stats = handle.wait().await;
        Out::ok(stats.summary())
    }

    /// `curl`: one request through the traffic model.
    async fn curl(self: &Arc<Self>, args: &[String]) -> Out {
        let c = match parse_curl(args) {
            Ok(c) => c,
            Err((code, msg)) => return Out::code(code, msg),
        };
        let show_errors = !c.silent || c.show_error;
        let err = |code: i32, msg: String| {
            Out::code(
                code,
                if show_errors {
                    format!("curl: ({code}) {msg}\n")
                } else {
                    String::new()
                },
            )
        };
        let Some(url) = c.url.clone() else {
            return Out::code(
                2,
                "curl: no URL specified\ncurl: try 'curl --help' for more information\n"
                    .to_string(),
            );
        };
        let url = if url.contains("://") {
            url
        } else {
            format!("http://{url}")
        };
        let (target, path) = match url_target(&url, &self.config.namespace) {
            Ok(t) => t,
            Err(e) => return err(3, format!("URL rejected: {e}")),
        };
        let (host, port) = match &target {
            Target::Host { host, port, .. } => (host.clone(), port.unwrap_or(80)),
            Target::Service { name, port, .. } => (name.clone(), port.unwrap_or(80)),
        };
        let request = Request {
            target,
            method: c.method.clone(),
            path,
            headers: c.headers.clone(),
            body: c.data.clone(),
            source: self.source(),
        };
        let r = self.traffic.request(&request);
        if let Some(e) = &r.error {
            if e.contains("no such host") {
                return err(6, format!("Could not resolve host: {host}"));
            }
            return err(
                7,
                format!(
                    "Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server"
                ),
            );
        }
        if let Some(max) = c.max_time
            && r.latency > max
        {
            tokio::time::sleep(max).await;
            return err(
                28,
                format!(
                    "Operation timed out after {} milliseconds with 0 bytes received",
                    max.as_millis()
                ),
            );
        }
        tokio::time::sleep(r.latency).await;
        if c.fail && r.status >= 400 {
            return err(
                22,
                format!("The requested URL returned error: {}", r.status),
            );
        }
        let mut stdout = String::new();
        if c.include || c.head {
            stdout.push_str(&format!("HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n", r.status, reason(r.status), r.body.len()));
        }
        if !c.head && !c.output_null {
            stdout.push_str(&r.body);
        }
        if let Some(w) = &c.write_out {
            stdout.push_str(
                &w.replace("%{http_code}", &r.status.to_string())
                    .replace("%{response_code}", &r.status.to_string())
                    .replace("%{time_total}", &format!("{:.6}", r.latency.as_secs_f64()))
                    .replace("\\n", "\n"),
            );
        }
        Out::ok(stdout)
    }
}

/// The axum handler: every path, every method, as Go's mux does for these
/// patterns; each call is logged.
async fn handle(
    State(lt): State<Arc<LoadTester>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (status, text) = lt.answer(&method, &path, &body).await;
    let call = WebhookCall {
        at: SystemTime::now(),
        method: method.to_string(),
        path: uri.path_and_query().map_or(path.clone(), |p| p.to_string()),
        body: String::from_utf8_lossy(&body).into_owned(),
        payload: serde_json::from_slice(&body).ok(),
        status,
        response: text.clone(),
    };
    lt.lock().calls.push(call);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if text.is_empty() {
        code.into_response()
    } else {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// Go's `exec.ExitError` text.
fn exit_error(code: i32) -> String {
    if code == -9 {
        "signal: killed".to_string()
    } else {
        format!("exit status {code}")
    }
}

/// Go's `strconv.ParseBool` (an error counts as false).
fn go_parse_bool(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

// ---------------------------------------------------------------------------
// The webhook payload, decoded as Go's encoding/json would.
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Payload {
    name: String,
    namespace: String,
    metadata: Option<HashMap<String, String>>,
}

/// `json.Unmarshal` into `CanaryWebhookPayload`: unknown fields ignored,
/// keys matched case-insensitively, `null` leaves a field empty, a wrong
/// type is an error.
fn decode_payload(body: &[u8]) -> Result<Payload, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        if body.iter().all(u8::is_ascii_whitespace) {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        }
    })?;
    let mut p = Payload::default();
    let obj = match v {
        Value::Null => return Ok(p),
        Value::Object(m) => m,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type v1beta1.CanaryWebhookPayload",
                go_type(&other)
            ));
        }
    };
    let string = |field: &str, v: &Value| -> Result<Option<String>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(format!(
                "json: cannot unmarshal {} into Go struct field CanaryWebhookPayload.{field} of type string",
                go_type(other)
            )),
        }
    };
    for (k, v) in &obj {
        match k.to_ascii_lowercase().as_str() {
            "name" => {
                if let Some(s) = string("name", v)? {
                    p.name = s;
                }
            }
            "namespace" => {
                if let Some(s) = string("namespace", v)? {
                    p.namespace = s;
                }
            }
            "phase" => {
                string("phase", v)?;
            }
            "checksum" => {
                string("checksum", v)?;
            }
            "metadata" => match v {
                Value::Null => {}
                Value::Object(m) => {
                    let mut out = HashMap::new();
                    for (mk, mv) in m {
                        match mv {
                            Value::String(s) => {
                                out.insert(mk.clone(), s.clone());
                            }
                            Value::Null => {
                                out.insert(mk.clone(), String::new());
                            }
                            other => {
                                return Err(format!(
                                    "json: cannot unmarshal {} into Go struct field CanaryWebhookPayload.metadata of type string",
                                    go_type(other)
                                ));
                            }
                        }
                    }
                    p.metadata = Some(out);
                }
                other => {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go struct field CanaryWebhookPayload.metadata of type map[string]string",
                        go_type(other)
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(p)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------
// The shell subset.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default)]
struct Cmd {
    argv: Vec<String>,
    stdout_null: bool,
    stderr_null: bool,
    stderr_to_stdout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    And,
    Or,
    Seq,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Pipe,
    And,
    Or,
    Semi,
    Redirect(String),
}

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => {
                            return Err("unexpected EOF while looking for matching `''".to_string());
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => {
                                return Err(
                                    "unexpected EOF while looking for matching `\"'".to_string()
                                );
                            }
                        },
                        Some(x) => cur.push(x),
                        None => {
                            return Err(
                                "unexpected EOF while looking for matching `\"'".to_string()
                            );
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            ' ' | '\t' => flush(&mut cur, &mut in_word, &mut out),
            '\n' | ';' => {
                flush(&mut cur, &mut in_word, &mut out);
                out.push(Tok::Semi);
            }
            '|' => {
                flush(&mut cur, &mut in_word, &mut out);
                if chars.peek() == Some(&'|') {
                    chars.next();
                    out.push(Tok::Or);
                } else {
                    out.push(Tok::Pipe);
                }
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                flush(&mut cur, &mut in_word, &mut out);
                out.push(Tok::And);
            }
            '>' => {
                // `2>&1`, `2>/dev/null`, `>/dev/null`, `> file`.
                let fd = if in_word && (cur == "1" || cur == "2") {
                    in_word = false;
                    std::mem::take(&mut cur)
                } else {
                    flush(&mut cur, &mut in_word, &mut out);
                    "1".to_string()
                };
                if chars.peek() == Some(&'>') {
                    chars.next();
                }
                out.push(Tok::Redirect(fd));
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut out);
    Ok(out)
}

fn parse_line(line: &str) -> Result<Vec<(Vec<Cmd>, Op)>, String> {
    let toks = tokenize(line)?;
    let mut list = Vec::new();
    let mut pipeline: Vec<Cmd> = Vec::new();
    let mut cmd = Cmd::default();
    let mut it = toks.into_iter().peekable();
    let end_cmd = |cmd: &mut Cmd, pipeline: &mut Vec<Cmd>, what: &str| -> Result<(), String> {
        if cmd.argv.is_empty() {
            return Err(format!("syntax error near unexpected token `{what}'"));
        }
        pipeline.push(std::mem::take(cmd));
        Ok(())
    };
    while let Some(t) = it.next() {
        match t {
            Tok::Word(w) => cmd.argv.push(w),
            Tok::Redirect(fd) => {
                let target = match it.next() {
                    Some(Tok::Word(w)) => w,
                    _ => return Err("syntax error near unexpected token `newline'".to_string()),
                };
                match (fd.as_str(), target.as_str()) {
                    ("2", "&1") => cmd.stderr_to_stdout = true,
                    ("2", _) => cmd.stderr_null = true,
                    (_, _) => cmd.stdout_null = true,
                }
            }
            Tok::Pipe => end_cmd(&mut cmd, &mut pipeline, "|")?,
            Tok::And | Tok::Or | Tok::Semi => {
                let (op, what) = match t {
                    Tok::And => (Op::And, "&&"),
                    Tok::Or => (Op::Or, "||"),
                    _ => (Op::Seq, ";"),
                };
                if cmd.argv.is_empty() && pipeline.is_empty() && op == Op::Seq {
                    continue;
                }
                end_cmd(&mut cmd, &mut pipeline, what)?;
                list.push((std::mem::take(&mut pipeline), op));
            }
        }
    }
    if !cmd.argv.is_empty() {
        pipeline.push(cmd);
    } else if !pipeline.is_empty() {
        return Err("syntax error: unexpected end of file".to_string());
    }
    if !pipeline.is_empty() {
        list.push((pipeline, Op::Seq));
    }
    Ok(list)
}

/// A builtin's result.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    exit: bool,
}

impl Out {
    fn ok(stdout: String) -> Out {
        Out {
            code: 0,
            stdout,
            stderr: String::new(),
            exit: false,
        }
    }

    fn code(code: i32, stderr: String) -> Out {
        Out {
            code,
            stdout: String::new(),
            stderr,
            exit: false,
        }
    }
}

/// GNU `sleep`'s operand: a number with an optional s/m/h/d suffix.
fn parse_sleep(a: &str) -> Option<Duration> {
    let (num, mult) = match a.chars().last()? {
        's' => (&a[..a.len() - 1], 1.0),
        'm' => (&a[..a.len() - 1], 60.0),
        'h' => (&a[..a.len() - 1], 3600.0),
        'd' => (&a[..a.len() - 1], 86400.0),
        _ => (a, 1.0),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0 && n.is_finite()).then(|| Duration::from_secs_f64(n * mult))
}

/// A URL's target as the load tester's pod resolves it, and its path.
fn url_target(url: &str, namespace: &str) -> Result<(Target, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        let scheme = url.split(':').next().unwrap_or("");
        return Err(format!(
            "Get \"{url}\": unsupported protocol scheme \"{scheme}\""
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "Get \"{url}\": unsupported protocol scheme \"{scheme}\""
        ));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("parse \"{url}\": invalid port \":{p}\" after host"))?,
            ),
        ),
        None => (authority.to_string(), None),
    };
    if host.is_empty() {
        return Err(format!("Get \"{url}\": http: no Host in request URL"));
    }
    let port = port.or(if scheme == "https" { Some(443) } else { None });
    Ok((
        Target::Host {
            host: host.to_ascii_lowercase(),
            port,
            namespace: namespace.to_string(),
        },
        path,
    ))
}

struct Hey {
    requests: u64,
    concurrency: u32,
    qps: Option<f64>,
    duration: Option<Duration>,
    timeout: Duration,
    method: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    host: Option<String>,
    url: String,
}

const HEY_USAGE: &str = "Usage: hey [options...] <url>\n\nOptions:\n  -n  Number of requests to run. Default is 200.\n  -c  Number of workers to run concurrently. Total number of requests cannot\n      be smaller than the concurrency level. Default is 50.\n  -q  Rate limit, in queries per second (QPS) per worker. Default is no rate limit.\n  -z  Duration of application to send requests. When duration is reached,\n      application stops and exits. If duration is specified, n is ignored.\n      Examples: -z 10s -z 3m.\n  -m  HTTP method, one of GET, POST, PUT, DELETE, HEAD, OPTIONS.\n  -H  Custom HTTP header. You can specify as many as needed by repeating the flag.\n  -t  Timeout for each request in seconds. Default is 20, use 0 for infinite.\n  -d  HTTP request body.\n  -T  Content-type, defaults to \"text/html\".\n  -host\tHTTP Host header.\n";

/// hey's flags, parsed as Go's `flag` package does.
fn parse_hey(args: &[String]) -> Result<Hey, (i32, String)> {
    let usage = |msg: &str| {
        let m = if msg.is_empty() {
            String::new()
        } else {
            format!("{msg}\n\n")
        };
        (1, format!("{m}{HEY_USAGE}"))
    };
    let mut h = Hey {
        requests: 200,
        concurrency: 50,
        qps: None,
        duration: None,
        timeout: Duration::from_secs(20),
        method: "GET".to_string(),
        headers: Vec::new(),
        body: None,
        host: None,
        url: String::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !a.starts_with('-') || a == "-" {
            break;
        }
        if a == "--" {
            i += 1;
            break;
        }
        let flag = a.trim_start_matches('-');
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let boolean = [
            "h2",
            "disable-compression",
            "disable-keepalive",
            "disable-redirects",
        ];
        if boolean.contains(&name) {
            i += 1;
            continue;
        }
        let known = [
            "n", "c", "q", "z", "o", "m", "H", "t", "A", "d", "D", "T", "a", "x", "host", "cpus",
        ];
        if !known.contains(&name) {
            return Err((
                2,
                format!("flag provided but not defined: -{name}\n{HEY_USAGE}"),
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| (2, format!("flag needs an argument: -{name}\n{HEY_USAGE}")))?
            }
        };
        let invalid = |what: &str| {
            (
                2,
                format!("invalid value \"{value}\" for flag -{name}: {what}\n{HEY_USAGE}"),
            )
        };
        match name {
            "n" => h.requests = value.parse().map_err(|_| invalid("parse error"))?,
            "c" => h.concurrency = value.parse().map_err(|_| invalid("parse error"))?,
            "q" => {
                let q: f64 = value.parse().map_err(|_| invalid("parse error"))?;
                h.qps = (q > 0.0).then_some(q);
            }
            "z" => {
                let d = parse_go_duration(&value).map_err(|_| invalid("parse error"))?;
                h.duration = (!d.is_zero()).then_some(d);
            }
            "t" => {
                let t: u64 = value.parse().map_err(|_| invalid("parse error"))?;
                h.timeout = if t == 0 {
                    Duration::from_secs(86400)
                } else {
                    Duration::from_secs(t)
                };
            }
            "m" => h.method = value.to_ascii_uppercase(),
            "H" => match value.split_once(':') {
                Some((k, v)) => h.headers.push((k.trim().to_string(), v.trim().to_string())),
                None => {
                    return Err(usage(&format!(
                        "could not parse the provided input; input = {value}"
                    )));
                }
            },
            "d" => h.body = Some(value),
            "T" => h.headers.push(("Content-Type".to_string(), value)),
            "A" => h.headers.push(("Accept".to_string(), value)),
            "host" => h.host = Some(value),
            _ => {}
        }
        i += 1;
    }
    let Some(url) = args.get(i) else {
        return Err(usage(""));
    };
    h.url = url.clone();
    if h.concurrency == 0 || (h.duration.is_none() && h.requests == 0) {
        return Err(usage("-n and -c cannot be smaller than 1."));
    }
    if h.duration.is_none() && h.requests < u64::from(h.concurrency) {
        return Err(usage("-n cannot be less than -c."));
    }
    Ok(h)
}

struct Curl {
    url: Option<String>,
    method: String,
    headers: Vec<(String, String)>,
    data: Option<String>,
    silent: bool,
    show_error: bool,
    fail: bool,
    include: bool,
    head: bool,
    output_null: bool,
    write_out: Option<String>,
    max_time: Option<Duration>,
}

/// curl's options (the ones load tests use).
fn parse_curl(args: &[String]) -> Result<Curl, (i32, String)> {
    let mut c = Curl {
        url: None,
        method: String::new(),
        headers: Vec::new(),
        data: None,
        silent: false,
        show_error: false,
        fail: false,
        include: false,
        head: false,
        output_null: false,
        write_out: None,
        max_time: None,
    };
    let unknown = |o: &str| {
        (
            2,
            format!(
                "curl: option {o}: is unknown\ncurl: try 'curl --help' or 'curl --manual' for more information\n"
            ),
        )
    };
    let mut i = 0;
    // Options taking a value.
    let takes_value = |o: &str| {
        matches!(
            o,
            "-d" | "--data"
                | "--data-raw"
                | "--data-binary"
                | "--data-urlencode"
                | "--data-ascii"
                | "-X"
                | "--request"
                | "-H"
                | "--header"
                | "-o"
                | "--output"
                | "-w"
                | "--write-out"
                | "-m"
                | "--max-time"
                | "--connect-timeout"
                | "--retry"
                | "--retry-delay"
                | "-u"
                | "--user"
                | "-A"
                | "--user-agent"
                | "-e"
                | "--referer"
                | "-b"
                | "--cookie"
                | "--url"
                | "--resolve"
                | "--cacert"
                | "-x"
                | "--proxy"
        )
    };
    let apply = |c: &mut Curl, opt: &str, value: Option<String>| -> Result<(), (i32, String)> {
        let v = value.unwrap_or_default();
        match opt {
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-urlencode"
            | "--data-ascii" => {
                c.data = Some(match c.data.take() {
                    Some(prev) => format!("{prev}&{v}"),
                    None => v,
                });
            }
            "-X" | "--request" => c.method = v.to_ascii_uppercase(),
            "-H" | "--header" => {
                if let Some((k, val)) = v.split_once(':') {
                    c.headers
                        .push((k.trim().to_string(), val.trim().to_string()));
                }
            }
            "-b" | "--cookie" => c.headers.push(("Cookie".to_string(), v)),
            "-A" | "--user-agent" => c.headers.push(("User-Agent".to_string(), v)),
            "-o" | "--output" => c.output_null = v != "-",
            "-w" | "--write-out" => c.write_out = Some(v),
            "-m" | "--max-time" => {
                let s: f64 = v.parse().map_err(|_| {
                    (
                        2,
                        "curl: option --max-time: expected a proper numerical parameter\n"
                            .to_string(),
                    )
                })?;
                c.max_time = Some(Duration::from_secs_f64(s.max(0.0)));
            }
            "--url" => c.url = Some(v),
            "-s" | "--silent" => c.silent = true,
            "-S" | "--show-error" => c.show_error = true,
            "-f" | "--fail" => c.fail = true,
            "-i" | "--include" => c.include = true,
            "-I" | "--head" => c.head = true,
            "-k" | "--insecure" | "-L" | "--location" | "-v" | "--verbose" | "--compressed"
            | "-G" | "--get" | "--fail-with-body" | "-N" | "--no-buffer" | "-4" | "-6"
            | "--http1.1" | "--http2" => {}
            _ if takes_value(opt) => {}
            other => return Err(unknown(other)),
        }
        Ok(())
    };
    while i < args.len() {
        let a = args[i].clone();
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (a.clone(), None),
            };
            if takes_value(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| {
                            (2, format!("curl: option {name}: requires parameter\n"))
                        })?
                    }
                };
                apply(&mut c, &name, Some(v))?;
            } else {
                apply(&mut c, &name, None)?;
            }
        } else if a.starts_with('-') && a.len() > 1 {
            // Short options cluster: `-sSf`, `-sd 'x'`, `-dvalue`.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let opt = format!("-{}", chars[j]);
                if takes_value(&opt) {
                    let rest: String = chars[j + 1..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| {
                            (2, format!("curl: option {opt}: requires parameter\n"))
                        })?
                    };
                    apply(&mut c, &opt, Some(v))?;
                    break;
                }
                apply(&mut c, &opt, None)?;
                j += 1;
            }
        } else {
            c.url = Some(a);
        }
        i += 1;
    }
    if c.method.is_empty() {
        c.method = if c.head {
            "HEAD".to_string()
        } else if c.data.is_some() {
            "POST".to_string()
        } else {
            "GET".to_string()
        };
    }
    Ok(c)
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// `grep [-qivcEFw] PATTERN [FILE]` over standard input.
fn grep(args: &[String], stdin: &str) -> Out {
    let (mut quiet, mut ignore_case, mut invert, mut count, mut fixed, mut extended, mut word) =
        (false, false, false, false, false, false, false);
    let mut rest = Vec::new();
    let mut pattern: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-e" {
            i += 1;
            pattern = args.get(i).cloned();
        } else if a.starts_with('-') && a.len() > 1 && pattern.is_none() && rest.is_empty() {
            for ch in a[1..].chars() {
                match ch {
                    'q' | 's' => quiet |= ch == 'q',
                    'i' => ignore_case = true,
                    'v' => invert = true,
                    'c' => count = true,
                    'F' => fixed = true,
                    'E' => extended = true,
                    'w' => word = true,
                    'o' | 'n' | 'h' | 'H' => {}
                    other => {
                        return Out::code(
                            2,
                            format!(
                                "grep: invalid option -- '{other}'\nUsage: grep [OPTION]... PATTERNS [FILE]...\n"
                            ),
                        );
                    }
                }
            }
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    let pattern = match pattern.or_else(|| (!rest.is_empty()).then(|| rest.remove(0))) {
        Some(p) => p,
        None => {
            return Out::code(
                2,
                "Usage: grep [OPTION]... PATTERNS [FILE]...\n".to_string(),
            );
        }
    };
    if let Some(f) = rest.first()
        && f != "-"
    {
        return Out::code(2, format!("grep: {f}: No such file or directory\n"));
    }
    let mut re = if fixed {
        regex::escape(&pattern)
    } else if extended {
        pattern.clone()
    } else {
        bre_to_ere(&pattern)
    };
    if word {
        re = format!(r"\b(?:{re})\b");
    }
    if ignore_case {
        re = format!("(?i){re}");
    }
    let re = match regex::Regex::new(&re) {
        Ok(r) => r,
        Err(_) => return Out::code(2, format!("grep: Invalid regular expression: {pattern}\n")),
    };
    let lines: Vec<&str> = stdin.lines().filter(|l| re.is_match(l) != invert).collect();
    let code = if lines.is_empty() { 1 } else { 0 };
    let stdout = if quiet {
        String::new()
    } else if count {
        format!("{}\n", lines.len())
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    Out {
        code,
        stdout,
        stderr: String::new(),
        exit: false,
    }
}

/// A POSIX basic regular expression in the regex crate's syntax: `+ ? | ( )
/// { }` are literal unless escaped.
fn bre_to_ere(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(x @ ('(' | ')' | '|' | '+' | '?' | '{' | '}')) => out.push(x),
                Some(x) => {
                    out.push('\\');
                    out.push(x);
                }
                None => out.push_str("\\\\"),
            },
            '(' | ')' | '|' | '+' | '?' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<Vec<String>>> {
        parse_line(line)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.into_iter().map(|c| c.argv).collect())
            .collect()
    }

    #[test]
    fn the_walkthrough_commands_parse() {
        assert_eq!(
            words("curl -sd 'test' http://podinfo-canary.prod:9898/token | grep token"),
            vec![vec![
                vec![
                    "curl",
                    "-sd",
                    "test",
                    "http://podinfo-canary.prod:9898/token"
                ]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
                vec!["grep".to_string(), "token".to_string()],
            ]]
        );
        let c = parse_curl(&["-sd".into(), "test".into(), "http://x:1/token".into()]).unwrap();
        assert_eq!(
            (c.method.as_str(), c.data.as_deref(), c.silent),
            ("POST", Some("test"), true)
        );
        let h = parse_hey(&[
            "-z".into(),
            "2m".into(),
            "-q".into(),
            "10".into(),
            "-c".into(),
            "2".into(),
            "http://podinfo-canary.prod:9898/".into(),
        ])
        .unwrap();
        assert_eq!(
            (h.duration, h.qps, h.concurrency),
            (Some(Duration::from_secs(120)), Some(10.0), 2)
        );
        assert!(parse_hey(&["-x2".into()]).is_err());
    }

    #[test]
    fn urls_name_their_service() {
        let (t, p) = url_target("http://podinfo-canary.prod:9898/status/500", "prod").unwrap();
        assert_eq!(p, "/status/500");
        assert_eq!(
            t,
            Target::Host {
                host: "podinfo-canary.prod".into(),
                port: Some(9898),
                namespace: "prod".into()
            }
        );
        assert!(
            url_target("podinfo:9898/", "prod")
                .unwrap_err()
                .contains("unsupported protocol scheme")
        );
    }

    #[test]
    fn payloads_decode_like_go() {
        let p = decode_payload(
            br#"{"Name":"podinfo","namespace":"prod","metadata":{"cmd":"x","n":null},"extra":1}"#,
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("podinfo", "prod"));
        assert_eq!(p.metadata.unwrap()["n"], "");
        assert!(decode_payload(b"").is_err());
        assert!(decode_payload(br#"{"metadata":{"a":1}}"#).is_err());
        assert!(decode_payload(b"null").unwrap().metadata.is_none());
        assert!(decode_payload(b"[1]").is_err());
    }

    #[test]
    fn grep_speaks_basic_regular_expressions() {
        assert_eq!(grep(&["token".into()], "{\"token\":1}\n").code, 0);
        assert_eq!(grep(&["token".into()], "{\"status\":500}\n").code, 1);
        assert_eq!(grep(&["a+".into()], "aa\n").code, 1);
        assert_eq!(grep(&["-E".into(), "a+".into()], "aa\n").code, 0);
        assert_eq!(grep(&["-qi".into(), "TOKEN".into()], "token\n").stdout, "");
    }
}
