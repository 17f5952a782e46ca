//! What one release of the seed's canary costs the API server: the
//! requests and the bytes of one promoted 20-step analysis, counted in the
//! simulated cluster's request log. Counts, not times: a slow machine
//! makes a run slower, not busier (the benchmark, `cargo bench --bench
//! seed_run`, prints the figures).

use crate::run::Cluster;
use crate::util::stdout;
use canary_sim::server::RequestRecord;

/// examples/podinfo.yaml, the walkthrough's canary (20 steps of 5%, two
/// metrics, a pre-rollout and a rollout webhook), at a 1 s interval.
fn seed_spec() -> String {
    std::fs::read_to_string(crate::util::path("examples/podinfo.yaml"))
        .unwrap()
        .replace("interval: 10s", "interval: 1s")
}

fn proxied(r: &RequestRecord, service: &str) -> bool {
    r.path.contains("/proxy") && r.path.contains(service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_seed_release_stays_within_its_request_and_byte_budget() {
    let c = Cluster::start_with(&seed_spec()).await;
    let out = c.run(&["-q", "--mesh-provider", "linkerd"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    c.set_image("3.1.1");
    c.world.sim().clear_request_log();
    let out = c.run(&["-o", "json", "--mesh-provider", "linkerd"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("\"promoted\""), "{}", stdout(&out));
    let log = c.world.sim().request_log();
    let p = c
        .world
        .store()
        .get("apps/v1", "Deployment", "prod", "podinfo-primary")
        .unwrap();
    for (k, v) in p["metadata"]["annotations"].as_object().unwrap() {
        if k.ends_with("/state") || k.ends_with("/lease") || k.ends_with("history.10") {
            eprintln!("{k} = {v}");
        }
    }

    // The Kubernetes Events are a record for people, one small write per
    // message of the rollout: bounded on their own, and apart from the
    // cost of driving it.
    let is_event = |r: &RequestRecord| r.path.contains("/apis/events.k8s.io/");
    let events: Vec<&RequestRecord> = log.iter().filter(|r| is_event(r)).collect();
    let messages = stdout(&out)
        .lines()
        .filter(|l| l.contains("\"type\":\"progress\""))
        .count();
    assert!(
        events.len() <= messages,
        "{} Event requests for {messages} messages",
        events.len()
    );
    assert!(
        events.iter().all(|r| r.body_bytes <= 1024),
        "an Event over 1 KiB"
    );
    let log: Vec<RequestRecord> = log.iter().filter(|r| !is_event(r)).cloned().collect();
    let queries = log.iter().filter(|r| proxied(r, "prometheus")).count();
    let hooks = log.iter().filter(|r| proxied(r, "loadtester")).count();
    let api: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| !proxied(r, "prometheus") && !proxied(r, "loadtester"))
        .collect();
    let writes: Vec<&&RequestRecord> = api.iter().filter(|r| r.is_write()).collect();
    let written: u64 = writes.iter().map(|r| r.body_bytes).sum();
    let largest = writes.iter().map(|r| r.body_bytes).max().unwrap_or(0);
    let summary = format!(
        "{} requests: {} API ({} writes, {written} bytes, largest {largest}), \
         {queries} metric queries, {hooks} webhook calls",
        log.len(),
        api.len(),
        writes.len()
    );
    eprintln!("{summary}");
    // The requests in order, each with its offset from the first, so a
    // budget that fails shows what the run did when.
    let t0 = log.first().map(|r| r.at).unwrap_or(std::time::UNIX_EPOCH);
    for r in &log {
        let at = r.at.duration_since(t0).unwrap_or_default().as_secs_f64();
        eprintln!(
            "{at:>7.2} s {:>4} {:>5} B  {} {}",
            r.status, r.body_bytes, r.method, r.path
        );
    }
    let mut by_kind = std::collections::BTreeMap::<(String, String), (usize, u64)>::new();
    for r in &log {
        let path = r.path.split('?').next().unwrap_or_default().to_string();
        let e = by_kind.entry((r.method.clone(), path)).or_default();
        e.0 += 1;
        e.1 += r.body_bytes;
    }
    for ((method, path), (n, bytes)) in &by_kind {
        eprintln!("{n:>4} {bytes:>7} B  {method} {path}");
    }

    // Two checks a step and nothing for the traffic view nobody sees.
    assert!(queries <= 2 * 21, "{summary}");
    // Per step the weight, the state, two checks and the webhook; the
    // Deployments and the TrafficSplit from watches; besides, the
    // preflight's rules reviews, the lease renewed every 20 s of the
    // minute the first check waits for the metrics window, and the
    // promotion (120 when this was written).
    assert!(log.len() <= 120, "{summary}");
    // The permissions are asked for with one rules review a namespace
    // (prod, and linkerd-viz of the Prometheus proxied to).
    let reviews = log
        .iter()
        .filter(|r| r.path.contains("/selfsubject"))
        .count();
    assert!(reviews <= 2, "{reviews} reviews: {summary}");
    // The routing is read from the TrafficSplit's watch, not at each step.
    let router_reads = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/trafficsplits/podinfo"))
        .count();
    assert!(
        router_reads <= 2,
        "{router_reads} TrafficSplit reads: {summary}"
    );
    // No write carries the whole history: a state write is the progress
    // and the entries it adds (about 0.75 kB), the promotion's update the
    // primary once.
    assert!(written <= 60 * 1024, "{summary}");
    assert!(largest <= 16 * 1024, "{summary}");
    let state_writes: Vec<u64> = writes
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/deployments/podinfo-primary"))
        .map(|r| r.body_bytes)
        .collect();
    eprintln!("state writes (bytes): {state_writes:?}");
    let largest_state = state_writes.iter().max().copied().unwrap_or(0);
    assert!(
        largest_state <= 3 * 1024,
        "a state write of {largest_state} bytes: {state_writes:?}"
    );
    // While the first check waits, the lease is renewed with writes of the
    // lease annotation alone, not of the state.
    // A step's write leaves the document out: the progress annotation
    // (weight, step, its times) and the step's history entries, and every
    // fourth step the lease (738 and 924 bytes when this was written).
    let mut steps: Vec<u64> = state_writes.iter().copied().filter(|&b| b > 400).collect();
    steps.sort_unstable();
    let median = steps.get(steps.len() / 2).copied().unwrap_or(0);
    assert!(
        median <= 800,
        "a step's state write of {median} bytes: {state_writes:?}"
    );
    let renewals = state_writes.iter().filter(|&&b| b <= 400).count();
    assert!(
        renewals >= 2,
        "{renewals} lease-only writes among {state_writes:?}"
    );
}
