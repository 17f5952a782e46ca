//! What the simulated cluster costs with many applications: `N` Deployments
//! on Linkerd, each behind a Service taking 10 requests a second, and a
//! Prometheus answering Flagger's two Linkerd queries for each through the
//! API server's service proxy, as `canary run` asks them.
//!
//! ```sh
//! cargo run --release -p canary-rollouts-sim --example many -- [N] [SECONDS]
//! ```
//!
//! Prints the simulated cluster's CPU per second of wall time (traffic,
//! controllers, series), its memory, the number of series, and the time of
//! a round of queries (two per application). Defaults: 100 applications,
//! 10 seconds.

use std::time::{Duration, Instant};

use canary_sim::scenario::Scenario;
use canary_sim::world::World;

fn scenario(n: usize) -> String {
    let mut text = String::from(
        "seed: 7\nnamespace: prod\nreadinessDelay: 1s\ntrafficInterval: 200ms\ncrds: [smi]\n\
         namespaces:\n  - {name: prod, mesh: linkerd}\n  - {name: linkerd}\n  - {name: linkerd-viz}\n\
         prometheus: {name: prometheus, namespace: linkerd-viz, port: 9090}\n\
         behaviours:\n  \"1.0\": {successRate: 99.5%, latency: {median: 9ms, p99: 35ms}}\n\
         deployments:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: app-{i}, namespace: prod, image: example/app:1.0, container: app, \
             replicas: 2, labels: {{app: app-{i}}}, ports: [{{name: http, containerPort: 9898}}]}}\n"
        ));
    }
    text.push_str("services:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: app-{i}, namespace: prod, selector: {{app: app-{i}}}, \
             ports: [{{port: 9898, targetPort: 9898}}]}}\n"
        ));
    }
    text.push_str("traffic:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - {{service: app-{i}, namespace: prod, port: 9898, rps: 10}}\n"
        ));
    }
    text
}

/// CPU time (user + system) of this process so far.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line.
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 10)
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn queries(i: usize) -> [String; 2] {
    let sel = format!("namespace=\"prod\",deployment=~\"app-{i}\",direction=\"inbound\"");
    [
        format!(
            "sum(rate(response_total{{{sel},classification!=\"failure\"}}[1m])) / \
             sum(rate(response_total{{{sel}}}[1m])) * 100"
        ),
        format!(
            "histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{{{sel}}}[1m])) by (le))"
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let scenario =
        Scenario::from_yaml("many.yaml", &scenario(n)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let world = World::start(scenario).await?;
    println!(
        "{n} applications at 10 requests/s each; started in {:.1?}",
        started.elapsed()
    );
    // Pods turn ready, traffic flows, a minute of series is not needed for
    // the cost of a second.
    // Until the controllers are done (every pod ready): nothing written
    // for a second.
    let mut rv = world.store().resource_version();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = world.store().resource_version();
        if now == rv {
            break;
        }
        rv = now;
    }
    println!("settled after {:.1?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, wall0) = (cpu(), Instant::now());
    let rv0 = world.store().resource_version();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    println!(
        "objects written while idle: {} resource versions",
        world.store().resource_version() - rv0
    );
    let (busy, wall) = (cpu() - cpu0, wall0.elapsed());
    let per_second = busy.as_secs_f64() * 1000.0 / wall.as_secs_f64();
    println!(
        "idle world (traffic, controllers, series): {per_second:.0} ms CPU per second \
         ({:.2} ms per application), RSS {:.0} MiB",
        per_second / n as f64,
        rss_mib()
    );

    let client = world.client().await?;
    let proxy = world
        .prometheus_proxy_path()
        .ok_or_else(|| anyhow::anyhow!("no Prometheus in the scenario"))?;
    let mut took = Vec::new();
    let mut empty = 0;
    for round in 0..3 {
        let (cpu0, t0) = (cpu(), Instant::now());
        for i in 0..n {
            for q in queries(i) {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("query", &q)
                    .finish();
                let req =
                    http::Request::get(format!("{proxy}/api/v1/query?{query}")).body(Vec::new())?;
                let text = client.request_text(req).await?;
                if round == 0 && text.contains("\"result\":[]") {
                    empty += 1;
                }
            }
        }
        took.push((t0.elapsed(), cpu() - cpu0));
    }
    for (i, (wall, busy)) in took.iter().enumerate() {
        // The idle world keeps running meanwhile; its share is taken off.
        let idle = per_second * wall.as_secs_f64();
        let own = (busy.as_secs_f64() * 1000.0 - idle).max(0.0);
        println!(
            "query round {i}: {} queries in {:.0?} wall, {:.0?} CPU ({:.2} ms CPU per query; \
             {:.2} ms less the idle world's share)",
            2 * n,
            wall,
            busy,
            busy.as_secs_f64() * 1000.0 / (2 * n) as f64,
            own / (2 * n) as f64
        );
    }
    if empty > 0 {
        println!("warning: {empty} queries found no series");
    }
    println!("RSS after queries: {:.0} MiB", rss_mib());
    world.shutdown().await;
    Ok(())
}
