//! The verdict under faults: the API server's service proxy failing or
//! dropping connections, the API server failing during detection, and
//! leases under competing and failing runs. The built binary against the
//! simulated cluster, whose faults are switched from the test.

use canary_sim::server::FaultStatus;

use crate::run::{Cluster, FAST, assert_exit};
use crate::util::stderr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_during_mesh_detection_is_a_cluster_error() {
    let c = Cluster::start_with(&FAST.replace("  provider: linkerd\n", "")).await;
    let faults = c.world.faults();
    faults.set_only_paths(Some("customresourcedefinitions"));
    faults.set_error_rate(1.0, FaultStatus::InternalError);
    let out = c.run(&[]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("customresourcedefinition"),
        "{}",
        stderr(&out)
    );
    assert!(
        c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .is_none(),
        "nothing was changed"
    );
}

/// Releases `n` healthy revisions one after the other (3.1.1 and 3.1.0
/// take turns) and asserts each is promoted.
async fn healthy_releases_promote(c: &Cluster, n: usize) {
    for i in 0..n {
        c.set_image(if i % 2 == 0 { "3.1.1" } else { "3.1.0" });
        let out = c.run(&[]).await;
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("Promotion completed!"),
            "release {i}: {}",
            stderr(&out)
        );
    }
}

/// The seed's canary, initialised, with `fault` on a tenth of the
/// requests through the API server's service proxy (metric queries and
/// webhooks); other API calls are untouched.
async fn with_proxy_faults(fault: impl Fn(&canary_sim::server::Faults)) -> Cluster {
    let c = Cluster::start().await;
    c.initialise().await;
    let faults = c.world.faults();
    faults.set_only_paths(Some("/proxy/"));
    fault(faults);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_releases_are_promoted_through_a_throttling_service_proxy() {
    // A tenth of the requests at random, and the first one for certain:
    // a short run makes few enough that chance alone may throttle none.
    let c = with_proxy_faults(|f| {
        let throttle = FaultStatus::TooManyRequests {
            retry_after_secs: 1,
        };
        f.set_error_rate(0.1, throttle);
        f.fail_next(1, throttle);
    })
    .await;
    healthy_releases_promote(&c, 3).await;
    let throttled = c
        .world
        .sim()
        .request_log()
        .iter()
        .filter(|r| r.path.contains("/proxy/") && r.status == 429)
        .count();
    assert!(throttled > 0, "the proxy throttled some requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_releases_are_promoted_and_a_failing_one_rolled_back_through_a_failing_service_proxy()
 {
    let c = with_proxy_faults(|f| f.set_error_rate(0.1, FaultStatus::InternalError)).await;
    healthy_releases_promote(&c, 3).await;
    c.set_image("3.1.2");
    let out = c.run(&[]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("failed checks threshold reached 3"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_releases_are_promoted_when_proxied_connections_drop() {
    let c = with_proxy_faults(|f| f.set_drop_rate(0.1)).await;
    healthy_releases_promote(&c, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_proxy_that_keeps_failing_is_not_counted_against_the_release() {
    let c = with_proxy_faults(|_| {}).await;
    c.set_image("3.1.1");
    let faults = c.world.faults();
    let child = c.spawn(&[]);
    c.wait_for_analysis().await;
    // Every proxied request fails for a while, from before the first check
    // (once the 10 s metrics window has cleared) to well past the load
    // test's and the queries' timeouts, within which they are retried.
    faults.set_error_rate(1.0, FaultStatus::InternalError);
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    faults.set_error_rate(0.0, FaultStatus::InternalError);
    let out = crate::util::finish(child).await;
    assert_exit(&out, 0);
    let log = stderr(&out);
    assert!(log.contains("not counted as a failed check"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_with_one_holder_name_do_not_both_drive() {
    let c = Cluster::start().await;
    c.initialise().await;
    c.set_image("3.1.1");
    let first = c.spawn_as(&[], Some("ci-job"));
    let second = c.spawn_as(&[], Some("ci-job"));
    let (first, second) = tokio::join!(crate::util::finish(first), crate::util::finish(second));
    let mut codes = [first.status.code(), second.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(3)],
        "first:\n{}\nsecond:\n{}",
        stderr(&first),
        stderr(&second)
    );
    let refused = if first.status.code() == Some(3) {
        &first
    } else {
        &second
    };
    let log = stderr(refused);
    assert!(
        log.contains("another process with the same identity, ci-job"),
        "{log}"
    );
    let copies = [&first, &second]
        .iter()
        .map(|o| {
            stderr(o)
                .matches("Copying podinfo.prod template spec")
                .count()
        })
        .sum::<usize>();
    assert_eq!(copies, 1, "the template is copied to the primary once");
    // The driving run promoted the new revision.
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_an_api_error_gives_up_its_lease() {
    let c = Cluster::start_with(&FAST.replace("interval: 1s", "interval: 2s")).await;
    c.initialise().await;
    c.set_image("3.1.1");
    // Stopping at the first API error rather than trying again.
    let child = c.spawn_as(&["--api-retry-window", "0"], Some("first"));
    c.wait_for_analysis().await;
    // The router's object cannot be read: the run stops with exit 3.
    let faults = c.world.faults();
    faults.set_only_paths(Some("trafficsplits"));
    faults.set_error_rate(1.0, FaultStatus::InternalError);
    let out = crate::util::finish(child).await;
    assert_exit(&out, 3);
    faults.clear();
    let state = crate::util::stored_state(
        &c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .unwrap(),
    );
    assert!(!state.is_null());
    assert!(state["lease"].is_null(), "{state}");
    // Another identity continues at once.
    let out = c.run(&[]).await;
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("is being driven by"));
}

/// The state annotation on the primary, as stored.
fn stored_state(c: &Cluster) -> serde_json::Value {
    crate::util::stored_state(
        &c.world
            .store()
            .get("apps/v1", "Deployment", "prod", "podinfo-primary")
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_whose_state_write_was_lost_is_finished_by_the_next_run() {
    // Without the pre-rollout check, whose calls to the failing version
    // fail now and then: every failed check is a metrics check.
    let hook = "      - name: acceptance-test\n        type: pre-rollout\n";
    let spec = FAST.replace(hook, "      - name: acceptance-test\n        type: event\n");
    assert_ne!(spec, FAST);
    let c = Cluster::start_with(&spec).await;
    c.initialise().await;
    c.set_image("3.1.2");
    let child = c.spawn_as(&["--api-retry-window", "0"], Some("first"));
    // Two failed checks are stored (threshold 3) with the canary at its
    // first weight; the next check fails and rolls back. Its effects (traffic to the
    // primary, the canary scaled down) go through, and the write of its
    // state to the primary is lost.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !(stored_state(&c)["failedChecks"].as_u64() == Some(2)
        && stored_state(&c)["canaryWeight"].as_u64() > Some(0))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed check stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let faults = c.world.faults();
    faults.set_only_paths(Some("/deployments/podinfo-primary"));
    faults.set_only_writes(true);
    faults.set_error_rate(1.0, FaultStatus::InternalError);
    let out = crate::util::finish(child).await;
    assert_exit(&out, 3);
    faults.clear();
    // Stranded as the state has it: still analysing, yet the canary is
    // scaled down and all traffic is on the primary.
    let state = stored_state(&c);
    assert_eq!(state["phase"], "Progressing", "{state}");
    assert_eq!(c.replicas("podinfo").await, 0, "{}", stderr(&out));
    assert_eq!(c.weights(), (100, 0));

    // The lost write kept the lease too: the same holder (a CI job's
    // retry) takes it over once it has missed a renewal. The next run
    // scales the canary up, restores the step's weight and fails it
    // again; not stranded until the progress deadline (600 s), which
    // `--timeout` would turn into exit 5.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let out = crate::util::finish(c.spawn_as(&["--timeout", "90s"], Some("first"))).await;
    assert_exit(&out, 1);
    let text = stderr(&out) + &crate::util::stdout(&out);
    assert!(
        text.contains("was scaled to zero during the analysis; scaling it up again"),
        "{text}"
    );
    assert!(
        text.contains("Restoring podinfo.prod canary weight"),
        "{text}"
    );
    assert_eq!(
        c.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    assert_eq!(c.replicas("podinfo").await, 0);
    assert_eq!(c.weights(), (100, 0));
}
