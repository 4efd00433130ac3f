//! The engine owns sweeping: `Portcullis::sweep_every` purges expired records through the
//! stores on a timer (tokio's clock, paused here), judging expiry by the engine's clock; the
//! adapters only provide the purge. Runs on the memory adapter and on real sled files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::Clock;
use portcullis::model::{ChallengeKey, ChallengeKind};
use portcullis::store::Storage;
use support::Harness;

async fn sweeps<S: Storage + Clone + 'static>(h: Harness<S>) {
    let now = h.clock.now();
    let key = |i: usize| ChallengeKey::new(ChallengeKind::OneTimeCode, format!("c{i}"));
    for i in 0..10 {
        h.store
            .insert(&key(i), b"v", now + Duration::from_secs(60), now)
            .await
            .unwrap();
    }
    let long = ChallengeKey::new(ChallengeKind::OneTimeCode, "long");
    h.store
        .insert(&long, b"v", now + Duration::from_secs(3600), now)
        .await
        .unwrap();
    let sweeper = h.auth.sweep_every(Duration::from_secs(600));
    // Expired by the engine's clock; the next sweep (tokio's clock) removes them.
    h.clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_secs(601)).await;
    assert_eq!(
        h.store.purge_expired(h.clock.now()).await.unwrap(),
        0,
        "already swept"
    );
    assert!(h.store.get(&long, h.clock.now()).await.unwrap().is_some());
    sweeper.stop().await;
    // Stopped: what expires now stays until someone purges.
    h.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(h.store.purge_expired(h.clock.now()).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_engine_sweeps_expired_records_on_memory() {
    sweeps(support::harness()).await;
}

#[tokio::test(start_paused = true)]
async fn the_engine_sweeps_expired_records_on_sled() {
    sweeps(support::sled_harness()).await;
}
