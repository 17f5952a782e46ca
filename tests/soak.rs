//! The soak harness: rollouts of healthy and failing releases under API
//! faults (10 % 500s, 10 % 429s, 5 % dropped connections, 200 ms latency,
//! and 500s switched on mid-rollout), a metrics server that answers 503
//! for a second mid-rollout, and SIGKILLs of `canary run` with
//! restarts, half of them under another identity. An observer reads the
//! simulated cluster every 20 ms and checks the invariants: the weights
//! sum to 100, the primary exists with a ready pod, a failing version is
//! never promoted; and each trial must end with the right verdict before
//! its deadline (not stuck). A run that stops with exit 3 (a cluster error
//! outlasting its retries, or a live lease of a killed run) is run again,
//! as a CI job would be.
//!
//! The suite runs a short form (faults switched on mid-rollout, 429s,
//! and a kill with a restart by each identity). The long form:
//!
//! ```sh
//! CANARY_SOAK_TRIALS=210 cargo test --test tests soak -- --nocapture
//! ```
//!
//! prints `N passed, M failed` and the figures. 210 trials are 70 kills
//! (half restarted under another identity) and 20 rollouts under each
//! fault and without one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_sim::server::FaultStatus;

use crate::run::{Cluster, FAST};
use crate::util::{stderr, stdout};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Errors,
    Throttling,
    Drops,
    Latency,
    ErrorsMidRollout,
    /// The metrics server answers 503 for a second once the analysis
    /// runs: fewer failed checks than the threshold, so a healthy
    /// release is still promoted.
    MetricsOutage,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kill {
    No,
    /// Killed, and run again by the same identity (a retried job).
    SameIdentity,
    /// Killed, and run again by someone else.
    OtherIdentity,
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    healthy: bool,
    fault: Fault,
    kill: Kill,
}

/// What one trial counted.
#[derive(Debug, Default)]
struct Figures {
    runs: u32,
    /// Runs that stopped on a cluster error outlasting their retries.
    cluster_errors: u32,
    /// Runs refused while a killed run's lease was still live.
    lease_waits: u32,
    polls: u64,
    took: Duration,
}

fn switch_on(c: &Cluster, fault: Fault) {
    let f = c.world.faults();
    match fault {
        Fault::None => {}
        Fault::Errors | Fault::ErrorsMidRollout => {
            f.set_error_rate(0.10, FaultStatus::InternalError);
        }
        Fault::Throttling => f.set_error_rate(
            0.10,
            FaultStatus::TooManyRequests {
                retry_after_secs: 1,
            },
        ),
        Fault::Drops => f.set_drop_rate(0.05),
        Fault::Latency => f.set_latency(Duration::from_millis(200)),
        Fault::MetricsOutage => f.set_metrics_outage(true),
    }
}

/// Watches the cluster until told to stop; returns the violations seen
/// and how many times it looked.
fn observe(c: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Vec<String>, u64)> {
    let store = c.world.store().clone();
    std::thread::spawn(move || {
        let mut violations = Vec::new();
        let mut polls = 0;
        while !stop.load(Ordering::SeqCst) {
            polls += 1;
            let split = store.get(
                "split.smi-spec.io/v1alpha2",
                "TrafficSplit",
                "prod",
                "podinfo",
            );
            if let Some(ts) = &split {
                let sum: i64 = ts["spec"]["backends"]
                    .as_array()
                    .map(|b| b.iter().filter_map(|b| b["weight"].as_i64()).sum())
                    .unwrap_or(0);
                if sum != 100 {
                    violations.push(format!("weights sum to {sum}: {}", ts["spec"]));
                }
            }
            match store.get("apps/v1", "Deployment", "prod", "podinfo-primary") {
                None => violations.push("the primary is gone".to_string()),
                Some(p) => {
                    let image = p["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if image.ends_with(":3.1.2") {
                        violations.push("the failing 3.1.2 reached the primary".to_string());
                    }
                    if split.is_some() && p["status"]["readyReplicas"].as_i64().unwrap_or(0) < 1 {
                        violations.push("traffic is routed to a primary with no ready pod".into());
                    }
                }
            }
            violations.dedup();
            std::thread::sleep(Duration::from_millis(20));
        }
        (violations, polls)
    })
}

/// Runs until a verdict, as a CI job retried on exit 3 would: the same
/// identity, or (after a kill) another one. Returns the last output.
async fn run_to_verdict(
    c: &Cluster,
    holder: &str,
    deadline: Instant,
    figures: &mut Figures,
) -> std::process::Output {
    loop {
        figures.runs += 1;
        let out = crate::util::finish(c.spawn_as(&["--timeout", "5m"], Some(holder))).await;
        if out.status.code() != Some(3) || Instant::now() > deadline {
            return out;
        }
        if stderr(&out).contains("is being driven by") {
            figures.lease_waits += 1;
        } else {
            figures.cluster_errors += 1;
            let text = stderr(&out);
            eprintln!(
                "soak: a run stopped with exit 3: {}",
                text.lines()
                    .rfind(|l| l.contains("error"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn trial(t: Trial, seed: u64) -> Result<Figures, String> {
    let started = Instant::now();
    let c = Cluster::start_with(FAST).await;
    c.initialise().await;
    let mut figures = Figures::default();
    let stop = Arc::new(AtomicBool::new(false));
    let observer = observe(&c, stop.clone());
    c.set_image(if t.healthy { "3.1.1" } else { "3.1.2" });
    let mid_rollout = matches!(t.fault, Fault::ErrorsMidRollout | Fault::MetricsOutage);
    if !mid_rollout {
        switch_on(&c, t.fault);
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    if t.kill != Kill::No || mid_rollout {
        figures.runs += 1;
        let mut child = c.spawn_as(&[], Some("soak"));
        if mid_rollout {
            c.wait_for_analysis().await;
            switch_on(&c, t.fault);
        }
        if t.fault == Fault::MetricsOutage {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.world.faults().set_metrics_outage(false);
        }
        if t.kill != Kill::No {
            // Anywhere from the canary's scale-up to the promotion.
            let after = Duration::from_millis(500 + seed % 9_000);
            tokio::time::sleep(after).await;
            let _ = child.kill();
        }
        let out = crate::util::finish(child).await;
        if t.kill == Kill::No {
            if out.status.code() != Some(3) {
                return finish_trial(&c, t, out, stop, observer, figures, started);
            }
            figures.cluster_errors += 1;
        }
    }
    let holder = if t.kill == Kill::OtherIdentity {
        "other"
    } else {
        "soak"
    };
    let out = run_to_verdict(&c, holder, deadline, &mut figures).await;
    finish_trial(&c, t, out, stop, observer, figures, started)
}

fn finish_trial(
    c: &Cluster,
    t: Trial,
    out: std::process::Output,
    stop: Arc<AtomicBool>,
    observer: std::thread::JoinHandle<(Vec<String>, u64)>,
    mut figures: Figures,
    started: Instant,
) -> Result<Figures, String> {
    c.world.faults().clear();
    c.world.faults().set_metrics_outage(false);
    stop.store(true, Ordering::SeqCst);
    let (violations, polls) = observer.join().expect("the observer ran");
    figures.polls = polls;
    figures.took = started.elapsed();
    let expected = if t.healthy { 0 } else { 1 };
    let mut problems = violations;
    if out.status.code() != Some(expected) {
        problems.push(format!(
            "exit {:?}, expected {expected}:\n{}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        ));
    }
    let primary = c
        .world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .and_then(|p| {
            p["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let want = if t.healthy { ":3.1.1" } else { ":3.1.0" };
    if !primary.ends_with(want) {
        problems.push(format!("the primary runs {primary}, expected {want}"));
    }
    if problems.is_empty() {
        Ok(figures)
    } else {
        Err(problems.join("\n"))
    }
}

/// The trials of a soak of `n` trials: every fault with healthy and
/// failing releases, and kills with restarts by either identity.
fn trials(n: usize) -> Vec<Trial> {
    let faults = [
        Fault::None,
        Fault::Errors,
        Fault::Throttling,
        Fault::Drops,
        Fault::Latency,
        Fault::ErrorsMidRollout,
        Fault::MetricsOutage,
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let healthy = i % 2 == 0;
        if i % 3 == 2 {
            let kill = if (i / 3) % 2 == 0 {
                Kill::SameIdentity
            } else {
                Kill::OtherIdentity
            };
            out.push(Trial {
                healthy,
                fault: Fault::None,
                kill,
            });
        } else {
            out.push(Trial {
                healthy,
                fault: faults[(i / 2) % faults.len()],
                kill: Kill::No,
            });
        }
        i += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let short = [
        Trial {
            healthy: false,
            fault: Fault::Throttling,
            kill: Kill::No,
        },
        Trial {
            healthy: true,
            fault: Fault::ErrorsMidRollout,
            kill: Kill::No,
        },
        Trial {
            healthy: true,
            fault: Fault::MetricsOutage,
            kill: Kill::No,
        },
        Trial {
            healthy: true,
            fault: Fault::None,
            kill: Kill::SameIdentity,
        },
        Trial {
            healthy: false,
            fault: Fault::None,
            kill: Kill::OtherIdentity,
        },
    ];
    let plan: Vec<Trial> = match std::env::var("CANARY_SOAK_TRIALS") {
        Ok(n) => trials(n.parse().expect("CANARY_SOAK_TRIALS is a number")),
        Err(_) => short.to_vec(),
    };
    let seed = AtomicU64::new(
        std::env::var("CANARY_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7),
    );
    let failures = Mutex::new(Vec::new());
    let mut passed = 0;
    let (mut runs, mut cluster_errors, mut lease_waits, mut polls, mut kills) = (0, 0, 0, 0, 0);
    let mut longest = Duration::ZERO;
    let mut per_fault = std::collections::BTreeMap::<String, u32>::new();
    let started = Instant::now();
    for (i, t) in plan.iter().enumerate() {
        let s = seed.fetch_add(7_919, Ordering::SeqCst);
        let result = trial(*t, s).await;
        if let Ok(f) = &result {
            eprintln!("soak: trial {i} {t:?}: {:.1?}, {} runs", f.took, f.runs);
        }
        match result {
            Ok(f) => {
                passed += 1;
                runs += f.runs;
                cluster_errors += f.cluster_errors;
                lease_waits += f.lease_waits;
                polls += f.polls;
                longest = longest.max(f.took);
                kills += u32::from(t.kill != Kill::No);
                if t.kill == Kill::No {
                    *per_fault.entry(format!("{:?}", t.fault)).or_default() += 1;
                }
            }
            Err(why) => failures
                .lock()
                .unwrap()
                .push(format!("trial {i} {t:?}: {why}")),
        }
    }
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "soak: {passed} passed, {} failed in {:.0?} ({runs} runs, {kills} kills, \
         {lease_waits} refused while a killed run's lease was live, {cluster_errors} stopped \
         by a cluster error and run again, {polls} invariant checks, longest trial {:.1?})",
        failures.len(),
        started.elapsed(),
        longest
    );
    let per_fault: Vec<String> = per_fault.iter().map(|(f, n)| format!("{f} {n}")).collect();
    eprintln!("soak: rollouts passed per fault: {}", per_fault.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Transient API errors are tried again within the run.
    assert_eq!(cluster_errors, 0, "runs stopped by transient API errors");
}
