//! The Splunk metric provider end to end: the built binary against the
//! simulated cluster, whose simulated Splunk checks the token on its REST
//! API (Flagger's `IsOnline` check) and on the SignalFlow WebSocket, and
//! streams the program's values from the traffic series. A healthy
//! release is promoted and a faulty one rolled back through the template
//! alone, the token read from the template's Secret in the cluster and
//! never shown; a wrong token fails every check with the service's
//! refusal.

use canary_sim::providers::Kind;

use crate::providers::{
    assert_never_shown, case, cluster, promotes_the_healthy_and_rolls_back_the_faulty, quiet,
};
use crate::run::assert_exit;
use crate::util::{stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_promotes_the_healthy_and_rolls_back_the_faulty() {
    promotes_the_healthy_and_rolls_back_the_faulty(Kind::Splunk).await;
}

/// Each check asks the REST API first, then runs the rendered program on
/// the WebSocket, authenticated with the Secret's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_asks_the_api_then_runs_the_program_on_the_stream() {
    let c = case(Kind::Splunk);
    let (cluster, credentials) = cluster(&c).await;
    cluster.initialise().await;
    quiet(&cluster).await;
    cluster.set_image("3.1.1");
    let out = cluster.run(&[]).await;
    assert_exit(&out, 0);
    assert_never_shown(&out, &credentials);
    let asked = cluster.world.metric_providers().requests();
    let online = asked
        .iter()
        .filter(|r| r.path == "/v2/metric" && r.query == "limit=1" && r.status == 200)
        .count();
    let programs: Vec<&str> = asked
        .iter()
        .filter(|r| r.status == 101 && r.query != "authenticate")
        .map(|r| r.query.as_str())
        .collect();
    let authenticated = asked.iter().filter(|r| r.query == "authenticate").count();
    assert!(online > 0, "{asked:?}");
    assert_eq!(programs.len(), online, "{asked:?}");
    assert_eq!(authenticated, online, "{asked:?}");
    // The block scalar of the template keeps its final newline.
    assert!(
        programs.iter().all(|p| p.trim_end() == c.rendered),
        "{programs:?}"
    );
    assert!(asked.iter().all(|r| r.refused.is_none()), "{asked:?}");
    cluster.world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_the_checks_with_the_services_refusal() {
    let c = case(Kind::Splunk);
    let (cluster, credentials) = cluster(&c).await;
    let services = cluster.world.metric_providers();
    services.set_credentials(
        Kind::Splunk,
        [("sf_token_key".to_string(), "not-the-token-5678".to_string())].into(),
    );
    cluster.initialise().await;
    cluster.set_image("3.1.1");
    let out = cluster.run(&[]).await;
    assert_exit(&out, 1);
    assert_never_shown(&out, &credentials);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("Unauthorized"), "{text}");
    assert_eq!(
        cluster.image("podinfo-primary").await,
        "ghcr.io/stefanprodan/podinfo:3.1.0"
    );
    let asked = services.requests();
    assert!(
        asked
            .iter()
            .all(|r| r.refused.as_deref() == Some("wrong or missing X-SF-Token")),
        "{asked:?}"
    );
    cluster.world.shutdown().await;
}
