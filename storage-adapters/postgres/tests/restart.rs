//! The database restarting under load, when `PORTCULLIS_TEST_PG_RESTART` is set (as
//! `.ci/run` does on CI's own machine): a test binary of its own, so that no other test's
//! connections are cut by it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use portcullis_test_support::postgres;

/// The real thing, on a machine whose PostgreSQL this run may restart (CI's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_restarting_under_load_recovers_without_a_restart() {
    if std::env::var_os("PORTCULLIS_TEST_PG_RESTART").is_none() {
        eprintln!(
            "=== SKIPPED: set PORTCULLIS_TEST_PG_RESTART=1 to let this test restart the \
             machine's PostgreSQL (pg_ctlcluster 15 main restart); .ci/run does ==="
        );
        return;
    }
    let Some(store) = postgres::store_with(|config| {
        config
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
    })
    .await
    else {
        return;
    };
    postgres::recovers_under_load(store, async {
        let status = tokio::process::Command::new("pg_ctlcluster")
            .args(["15", "main", "restart", "-m", "fast"])
            .status()
            .await
            .expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster restart: {status}");
    })
    .await;
}
