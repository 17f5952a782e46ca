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
