//! Size on disk under a steady stream of one-time codes: each round issues and expires
//! a batch, the sweep removes them, and the size must level off rather than grow.
//! `cargo run --release -p portcullis-sled --example steady -- [rounds] [codes per round]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use portcullis::model::{ChallengeKey, ChallengeKind};
use portcullis::store::ChallengeStore;
use portcullis::{Clock, ManualClock};
use portcullis_sled::{Durability, SledConfig, SledStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().map_or(10, |n| n.parse().expect("rounds"));
    let per_round: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("codes per round"));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let config = SledConfig::new(dir.path()).durability(Durability::Background);
    let store = SledStore::with_config(config).unwrap();
    for round in 0..rounds {
        let now = clock.now();
        for i in 0..per_round {
            let key = ChallengeKey::new(ChallengeKind::OneTimeCode, format!("r{round}-c{i}"));
            store
                .insert(&key, &[7u8; 96], now + Duration::from_secs(600), now)
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(600));
        let swept = store.purge_expired(clock.now()).await.unwrap();
        let size = store.size_on_disk().unwrap();
        println!(
            "round {round}: {per_round} codes issued, {swept} swept, {} live, {:.0} MiB on disk",
            store.stats().challenges,
            size as f64 / (1024.0 * 1024.0)
        );
    }
}
