//! What an analysis costs, measured on the simulated cluster started in
//! this process, with the `canary` binary as it ships (`profile.bench`
//! has `profile.dist`'s settings: fat LTO, optimised for size): the
//! seed's canary (examples/podinfo.yaml: 20 steps, two Prometheus
//! metrics, one rollout webhook) at a 1 s interval, then 10, 50 and 100
//! such canaries in one `canary run --max-parallel N`, then the
//! same steps done by `scripts/kubectl-curl-canary.sh`.
//!
//! Printed: API requests per step by kind, from the simulated API server's
//! request log; request bytes written; the child's CPU time (user + system)
//! and peak RSS; the simulated cluster's CPU time (this process, less the
//! child); the verdicts; and the wall time before the first weight, during
//! the analysis and after the last check. Flagger's own figures stand
//! beside.
//!
//! Run with `cargo bench --bench seed_run`; `-- 1` (or `-- 1 10`) limits the
//! canary counts, and `CANARY_BENCH_WRAP` names a profiler to run the
//! `canary` child under (`CANARY_BENCH_WRAP=heaptrack`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use canary_core::event::{Event, Kind};
use canary_sim::scenario::Scenario;
use canary_sim::server::RequestRecord;
use canary_sim::world::World;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const STEPS: u64 = 20;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--measure-child") {
        measure_child(&argv[2..]);
        return;
    }
    let counts: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if args.is_empty() {
            vec![1, 10, 50, 100]
        } else {
            args
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for &n in &counts {
            bench(n).await;
        }
        script().await;
        println!();
        println!("Flagger, for comparison (its documentation and design):");
        println!("  per step: 14 reads + 2 writes of the API server from its control loop,");
        println!(
            "  and a Kubernetes Event for each message (\"Advance ... canary weight N\" every step)"
        );
        println!(
            "  wall time: steps + 4 intervals (initialisation, promotion, finalisation, cleanup)"
        );
        println!(
            "  for the seed at 1 s: {} s; at its 10 s interval: {} s",
            STEPS + 4,
            (STEPS + 4) * 10
        );
    });
}

/// The seed's scenario with `n` apps (`podinfo`, `app-01`, ...), each with
/// its own traffic, and pods that turn ready in half a second.
fn scenario(n: usize) -> Scenario {
    let mut text =
        canary_sim::scenario::SEED.replace("readinessDelay: 2s", "readinessDelay: 500ms");
    let rps = if n == 1 { 10 } else { 4 };
    text = text.replace("    rps: 10\n", &format!("    rps: {rps}\n"));
    let mut deployments = String::new();
    let mut traffic = String::new();
    for name in names(n).into_iter().skip(1) {
        deployments.push_str(&format!(
            "  - name: {name}\n    namespace: prod\n    image: ghcr.io/stefanprodan/podinfo:3.1.0\n    \
             container: podinfod\n    replicas: 1\n    labels: {{app: {name}}}\n    ports:\n      \
             - {{name: http, containerPort: 9898}}\n"
        ));
        traffic.push_str(&format!(
            "  - service: {name}\n    namespace: prod\n    port: 9898\n    rps: {rps}\n"
        ));
    }
    text = text.replacen("\nbehaviours:", &format!("{deployments}\nbehaviours:"), 1);
    text.push_str(&traffic);
    Scenario::from_yaml("bench.yaml", &text).expect("the bench's scenario parses")
}

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i == 0 {
                "podinfo".to_string()
            } else {
                format!("app-{i:02}")
            }
        })
        .collect()
}

/// examples/podinfo.yaml at a 1 s interval, once per app.
fn spec(n: usize) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/podinfo.yaml"))
        .unwrap()
        .replace("interval: 10s", "interval: 1s");
    names(n)
        .iter()
        .map(|name| text.replace("podinfo", name))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// What one child process cost.
struct Child {
    cpu: Duration,
    max_rss_kib: i64,
    started: SystemTime,
    ended: SystemTime,
    status: i32,
    stdout: String,
}

/// Runs `cmd` to its end and measures it: its CPU time and peak RSS,
/// including the children it waited for (kubectl, curl).
///
/// The figures come from `wait4` in a small process of their own, this
/// benchmark started again as `--measure-child`: a child spawned straight
/// from this process would report this process's peak RSS as its own
/// (Linux carries the memory high-water mark of the image a process had
/// before `exec` into its `ru_maxrss`, and this process holds the
/// simulated cluster), so a hundred canaries' driver would seem to use
/// what the cluster uses.
fn measure(cmd: Command) -> Child {
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut wrapper = Command::new(std::env::current_exe().unwrap());
    wrapper
        .arg("--measure-child")
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    wrapper.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let started = SystemTime::now();
    let mut child = wrapper.spawn().expect("the command starts");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    assert!(
        child.wait().unwrap().success(),
        "the measuring process failed"
    );
    let ended = SystemTime::now();
    let figures: Vec<i64> = std::fs::read_to_string(report.path())
        .unwrap()
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let [cpu_us, max_rss_kib, status] = figures[..] else {
        panic!("the measuring process reported {figures:?}")
    };
    Child {
        cpu: Duration::from_micros(cpu_us as u64),
        max_rss_kib,
        started,
        ended,
        status: status as i32,
        stdout: reader.join().unwrap(),
    }
}

/// `--measure-child REPORT PROGRAM ARGS...`: runs the program with this
/// process's standard streams, waits for it with `wait4` and writes its
/// CPU time (µs), peak RSS (KiB) and exit code to REPORT.
// `wait4` reaps the child; `Child::wait` would not give its usage.
#[allow(clippy::zombie_processes)]
fn measure_child(args: &[String]) {
    let [report, program, args @ ..] = args else {
        panic!("--measure-child REPORT PROGRAM ARGS...")
    };
    let child = Command::new(program)
        .args(args)
        .spawn()
        .expect("the command starts");
    let mut status = 0;
    // SAFETY: rusage is plain data, written by the kernel; the pid is this
    // process's own child, not yet waited for.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage);
        assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
        usage
    };
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    std::fs::write(
        report,
        format!(
            "{} {} {}",
            us(usage.ru_utime) + us(usage.ru_stime),
            usage.ru_maxrss,
            libc::WEXITSTATUS(status)
        ),
    )
    .unwrap();
}

fn canary(args: &[&str], spec: &Path, kubeconfig: &Path) -> Command {
    // `CANARY_BENCH_WRAP="heaptrack -o /tmp/run"` runs the child under a
    // profiler; its figures then include the profiler's own.
    let wrap = std::env::var("CANARY_BENCH_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut cmd = match wrap.next() {
        Some(tool) => {
            let mut cmd = Command::new(tool);
            cmd.args(wrap).arg(CANARY);
            cmd
        }
        None => Command::new(CANARY),
    };
    cmd.arg("run")
        .arg(spec)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--mesh-provider", "linkerd"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("GITHUB_STEP_SUMMARY");
    cmd
}

/// This process's CPU time so far (all its threads, not its children):
/// with the child measured apart, what the simulated cluster spent.
fn own_cpu() -> Duration {
    // SAFETY: rusage is plain data, written by the kernel.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Requests of a log by kind.
#[derive(Default)]
struct Counts {
    reads: u64,
    reviews: u64,
    watches: u64,
    writes: u64,
    events: u64,
    queries: u64,
    hooks: u64,
    written: u64,
    events_written: u64,
}

impl Counts {
    fn of<'a>(log: impl IntoIterator<Item = &'a RequestRecord>) -> Counts {
        let mut c = Counts::default();
        for r in log {
            let proxied = r.path.contains("/proxy");
            if proxied && r.path.contains("prometheus") {
                c.queries += 1;
            } else if proxied && r.path.contains("loadtester") {
                c.hooks += 1;
            } else if r.attributes.resource.starts_with("self") {
                c.reviews += 1;
            } else if r.path.contains("watch=true") || r.path.contains("watch=1") {
                c.watches += 1;
            } else if r.path.contains("/apis/events.k8s.io/") {
                c.events += 1;
                c.events_written += r.body_bytes;
            } else if r.is_write() {
                c.writes += 1;
                c.written += r.body_bytes;
            } else {
                c.reads += 1;
            }
        }
        c
    }

    /// What the analysis asks of the cluster: everything but the
    /// Kubernetes Events, which record its messages for people.
    fn analysis(&self) -> u64 {
        self.reads + self.reviews + self.watches + self.writes + self.queries + self.hooks
    }

    fn all(&self) -> u64 {
        self.analysis() + self.events
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn secs(from: i64, to: i64) -> f64 {
    (to - from).max(0) as f64 / 1000.0
}

async fn bench(n: usize) {
    let world = match World::start(scenario(n)).await {
        Ok(w) => w,
        Err(e) => {
            println!("\n{n} canaries: the simulated cluster did not start ({e:#}); skipped");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let spec_path = dir.path().join("canaries.yaml");
    std::fs::write(&spec_path, spec(n)).unwrap();
    let parallel = n.to_string();

    // Initialise every canary, then release 3.1.1 everywhere.
    let init = canary(
        &["-q", "--max-parallel", &parallel],
        &spec_path,
        &kubeconfig,
    );
    let init = blocking(move || measure(init)).await;
    if init.status != 0 {
        println!(
            "\n{n} canaries: initialisation exited {}; skipped",
            init.status
        );
        world.shutdown().await;
        return;
    }
    for name in names(n) {
        world
            .set_image(
                "prod",
                &name,
                "podinfod",
                "ghcr.io/stefanprodan/podinfo:3.1.1",
            )
            .unwrap();
    }
    world.sim().clear_request_log();
    let run = canary(
        &["-o", "json", "--max-parallel", &parallel],
        &spec_path,
        &kubeconfig,
    );
    let sim_cpu_before = own_cpu();
    let run = blocking(move || measure(run)).await;
    let sim_cpu = own_cpu().saturating_sub(sim_cpu_before);
    let log = world.sim().request_log();
    world.shutdown().await;

    let events: Vec<Event> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let promoted = events
        .iter()
        .filter(|e| e.outcome.as_ref().is_some_and(|o| o.result == "promoted"))
        .count();
    let mut verdicts: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in events.iter().filter_map(|e| e.outcome.as_ref()) {
        *verdicts.entry(o.result.as_str()).or_default() += 1;
    }
    let start = ms(run.started);
    let end = ms(run.ended);
    let first_weight = events
        .iter()
        .filter(|e| e.canary_weight > 0)
        .map(|e| e.time.0)
        .min()
        .unwrap_or(start);
    let last_check = events
        .iter()
        .filter(|e| e.kind == Kind::Check)
        .map(|e| e.time.0)
        .max()
        .unwrap_or(end);
    // A steady step: the writes between one check and the next (the
    // weight, the state); the median over the run's steps.
    let mut checks: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == Kind::Check && e.canary == "podinfo")
        .map(|e| e.time.0)
        .collect();
    checks.dedup();
    let mut per_step: Vec<u64> =
        checks
            .windows(2)
            .map(|w| {
                Counts::of(log.iter().filter(|r| {
                    r.path.contains("/podinfo") && (w[0] + 1..=w[1]).contains(&ms(r.at))
                }))
                .written
            })
            .collect();
    per_step.sort_unstable();
    let steady_step = per_step.get(per_step.len() / 2).copied().unwrap_or(0);
    let all = Counts::of(&log);
    let steps = (STEPS * n as u64) as f64;

    println!();
    println!(
        "{n} canar{} of the seed (20 steps at 1 s), one `canary run --max-parallel {n}`: {promoted}/{n} promoted, exit {}",
        if n == 1 { "y" } else { "ies" },
        run.status
    );
    if promoted != n {
        println!("  verdicts: {verdicts:?}");
    }
    println!(
        "  {:<34} {:>8} {:>10}",
        "API requests", "in all", "per step"
    );
    for (what, v) in [
        ("reads", all.reads),
        ("permission reviews (preflight)", all.reviews),
        ("watches opened", all.watches),
        ("writes", all.writes),
        ("metric queries (service proxy)", all.queries),
        ("webhook calls (service proxy)", all.hooks),
        ("the analysis", all.analysis()),
        ("Kubernetes Events (its messages)", all.events),
        ("all", all.all()),
    ] {
        println!("  {what:<34} {v:>8} {:>10.1}", v as f64 / steps);
    }
    println!(
        "  bytes written (request bodies): {:.1} KiB by the analysis and {:.1} KiB of Events, {steady_step} B in a steady step of podinfo (median of {})",
        all.written as f64 / 1024.0,
        all.events_written as f64 / 1024.0,
        per_step.len()
    );
    println!(
        "  driver: {:.0} ms CPU ({:.2} ms per step), peak RSS {:.1} MB",
        run.cpu.as_secs_f64() * 1000.0,
        run.cpu.as_secs_f64() * 1000.0 / steps,
        run.max_rss_kib as f64 / 1024.0
    );
    let wall = secs(start, end);
    println!(
        "  simulated cluster (API server, controllers, traffic, Prometheus): {:.0} ms CPU, {:.0}% of a core over the run",
        sim_cpu.as_secs_f64() * 1000.0,
        sim_cpu.as_secs_f64() * 100.0 / wall.max(0.001)
    );
    println!(
        "  wall: {:.1} s = {:.1} s before the first weight + {:.1} s analysis + {:.1} s after the last check\n        \
         (ideal analysis {} s; the first check waits for the metrics' 1 m window to clear)",
        wall,
        secs(start, first_weight),
        secs(first_weight, last_check),
        secs(last_check, end),
        STEPS
    );
}

/// The same 20 steps by `scripts/kubectl-curl-canary.sh`, on a seed
/// cluster whose podinfo canary was initialised by `canary run`.
async fn script() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let available = |tool: &str| {
        Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !available("kubectl") || !available("curl") {
        println!("\nSKIPPED: scripts/kubectl-curl-canary.sh needs kubectl and curl on PATH");
        return;
    }
    let world = World::start(scenario(1)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let spec_path = dir.path().join("canaries.yaml");
    std::fs::write(&spec_path, spec(1)).unwrap();
    let init = canary(&["-q"], &spec_path, &kubeconfig);
    let init = blocking(move || measure(init)).await;
    assert_eq!(init.status, 0, "initialisation");
    world.sim().clear_request_log();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/kubectl-curl-canary.sh"))
        .args(["prod", "podinfo", "5", "100", "1"])
        .env("KUBECONFIG", &kubeconfig);
    let run = blocking(move || measure(cmd)).await;
    let log = world.sim().request_log();
    world.shutdown().await;
    let c = Counts::of(&log);
    let steps = STEPS as f64;
    println!();
    println!(
        "scripts/kubectl-curl-canary.sh, the same 20 steps at 1 s (no decisions, no state): exit {}",
        run.status
    );
    println!(
        "  requests: {} in all ({:.1} per step: {:.1} reads, {:.1} writes, {:.1} queries, {:.1} webhooks)",
        c.all(),
        c.all() as f64 / steps,
        (c.reads + c.watches) as f64 / steps,
        (c.writes + c.events) as f64 / steps,
        c.queries as f64 / steps,
        c.hooks as f64 / steps
    );
    println!(
        "  CPU of bash, kubectl and curl: {:.0} ms ({:.1} ms per step), peak RSS {:.1} MB; wall {:.1} s",
        run.cpu.as_secs_f64() * 1000.0,
        run.cpu.as_secs_f64() * 1000.0 / steps,
        run.max_rss_kib as f64 / 1024.0,
        secs(ms(run.started), ms(run.ended))
    );
}
