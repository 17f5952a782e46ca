//! The seed's canary (examples/podinfo.yaml) with a 1 s interval, released
//! on the simulated cluster through the same driver as `canary run`; prints
//! what one analysis costs: API requests per steady step (reads and
//! writes), Prometheus queries per step, and the run time against the
//! ideal `steps x interval`. Run with `cargo bench --bench seed_run`.

use std::time::{Duration, Instant};

use canary::{ConfigSource, connect};
use canary::{Driver, Settings};
use canary_core::engine::decide::Verdict;
use canary_core::event::{Event, Reporter};
use canary_core::spec::resolve::{Overrides, resolve};
use canary_sim::scenario::{Dur, Scenario};
use canary_sim::world::World;

struct Quiet;

impl Reporter for Quiet {
    fn emit(&self, _event: &Event) {}
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let mut scenario = Scenario::seed();
    scenario.readiness_delay = Dur(Duration::from_millis(500));
    let world = World::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    world.write_kubeconfig(&kubeconfig).unwrap();
    let conn = connect(&ConfigSource::File(kubeconfig), None, None)
        .await
        .unwrap();

    let text = std::fs::read_to_string("examples/podinfo.yaml")
        .unwrap()
        .replace("interval: 10s", "interval: 1s");
    let file = canary_core::spec::load_str("podinfo.yaml", &text).unwrap();
    let overrides = Overrides {
        mesh_provider: Some(canary_core::provider::Provider::Linkerd),
        ..Overrides::default()
    };
    let canary = resolve(&file, &file.canaries[0], &overrides);
    let steps = canary_core::engine::schedule::Schedule::of(&canary)
        .steps
        .len() as u64;
    let settings = Settings {
        holder: "bench".into(),
        ..Settings::default()
    };

    let mut driver = Driver::new(&conn, canary.clone(), Vec::new(), &settings, &Quiet).unwrap();
    assert_eq!(driver.drive().await.unwrap(), Verdict::Initialized);

    world
        .set_image(
            "prod",
            "podinfo",
            "podinfod",
            "ghcr.io/stefanprodan/podinfo:3.1.1",
        )
        .unwrap();
    world.sim().clear_request_log();
    let started = Instant::now();
    let mut driver = Driver::new(&conn, canary.clone(), Vec::new(), &settings, &Quiet).unwrap();
    let verdict = driver.drive().await.unwrap();
    let took = started.elapsed();
    let log = world.sim().request_log();
    assert!(matches!(verdict, Verdict::Promoted), "{verdict:?}");

    let is_prom = |p: &str| p.contains("/services/") && p.contains("prometheus");
    let is_hook = |p: &str| p.contains("/services/") && p.contains("loadtester");
    let api: Vec<_> = log
        .iter()
        .filter(|r| !is_prom(&r.path) && !is_hook(&r.path))
        .collect();
    let reads = api.iter().filter(|r| r.method == "GET").count() as u64;
    let writes = api.len() as u64 - reads;
    let queries = log.iter().filter(|r| is_prom(&r.path)).count() as u64;
    let hooks = log.iter().filter(|r| is_hook(&r.path)).count() as u64;
    let ideal = Duration::from_secs(steps);
    println!("seed schedule at a 1 s interval: {steps} steps, promoted");
    println!(
        "  API requests: {} in all ({reads} reads, {writes} writes), {:.1} reads and {:.1} writes per step",
        api.len(),
        reads as f64 / steps as f64,
        writes as f64 / steps as f64
    );
    println!(
        "  Prometheus queries: {queries} in all, {:.1} per step",
        queries as f64 / steps as f64
    );
    println!("  webhook calls: {hooks}");
    println!(
        "  run time: {:.1} s against the ideal {:.1} s (steps x interval); {:.1} s of readiness, promotion and checks",
        took.as_secs_f64(),
        ideal.as_secs_f64(),
        took.as_secs_f64() - ideal.as_secs_f64()
    );
    let mut latencies: Vec<Duration> = api.iter().map(|r| r.duration).collect();
    latencies.sort();
    if !latencies.is_empty() {
        println!(
            "  API latency on loopback: median {:?}, p99 {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100]
        );
    }
    world.shutdown().await;
}
