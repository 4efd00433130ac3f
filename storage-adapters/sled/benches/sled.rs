//! sled beside memory: challenge insert + take, refresh rotation, with and without a
//! flush per security-critical write, and group commit under 8 concurrent writers.
//!
//! `cargo bench -p portcullis-sled`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::crypto::SecretHash;
use portcullis::model::{ChallengeKey, ChallengeKind, Session, SessionId, UserId};
use portcullis::store::{ChallengeStore, Storage};
use portcullis::{Clock, SystemClock};
use portcullis_memory::MemoryStore;
use portcullis_sled::{Durability, SledConfig, SledStore};
use tokio::runtime::Runtime;

fn sled(durability: Durability) -> SledStore {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-sled-bench")
        .tempdir()
        .unwrap()
        .keep();
    SledStore::with_config(SledConfig::new(dir).temporary(true).durability(durability)).unwrap()
}

fn hash(n: u64) -> SecretHash {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    SecretHash::from_bytes(bytes)
}

fn insert_take<S: Storage + 'static>(c: &mut Criterion, rt: &Runtime, name: &str, store: Arc<S>) {
    let n = AtomicU64::new(0);
    c.bench_function(&format!("{name}: insert + take"), |b| {
        b.to_async(rt).iter(|| async {
            let now = SystemClock.now();
            let key = ChallengeKey::new(
                ChallengeKind::OneTimeCode,
                n.fetch_add(1, Ordering::Relaxed).to_string(),
            );
            store
                .insert(&key, b"code state", now + Duration::from_secs(600), now)
                .await
                .unwrap();
            store.take(&key, now).await.unwrap().unwrap()
        })
    });
}

fn rotate<S: Storage + 'static>(c: &mut Criterion, rt: &Runtime, name: &str, store: Arc<S>) {
    let now = SystemClock.now();
    let session = Session {
        id: SessionId::generate(),
        user_id: UserId::generate(),
        org_id: None,
        refresh_hash: hash(0),
        generation: 0,
        amr: vec!["pwd".into()],
        aal: 1,
        ip: None,
        user_agent: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::from_secs(86_400),
        revoked_at: None,
    };
    rt.block_on(store.create_session(&session)).unwrap();
    let generation = AtomicU64::new(0);
    c.bench_function(&format!("{name}: rotate refresh"), |b| {
        b.to_async(rt).iter(|| async {
            let g = generation.fetch_add(1, Ordering::Relaxed);
            store
                .rotate_refresh(session.id, &hash(g), &hash(g + 1), SystemClock.now())
                .await
                .unwrap()
                .unwrap()
        })
    });
}

fn eight_concurrent(c: &mut Criterion, rt: &Runtime, name: &str, store: Arc<SledStore>) {
    let n = AtomicU64::new(0);
    c.bench_function(
        &format!("{name}: 8 concurrent insert + take (per batch of 8)"),
        |b| {
            b.to_async(rt).iter(|| async {
                let base = n.fetch_add(8, Ordering::Relaxed);
                let tasks: Vec<_> = (0..8)
                    .map(|j| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let now = SystemClock.now();
                            let key = ChallengeKey::new(
                                ChallengeKind::OneTimeCode,
                                (base + j).to_string(),
                            );
                            store
                                .insert(&key, b"x", now + Duration::from_secs(60), now)
                                .await
                                .unwrap();
                            store.take(&key, now).await.unwrap().unwrap();
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        },
    );
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    insert_take(c, &rt, "memory", Arc::new(MemoryStore::new()));
    insert_take(
        c,
        &rt,
        "sled, background flush",
        Arc::new(sled(Durability::Background)),
    );
    insert_take(
        c,
        &rt,
        "sled, flush per critical write",
        Arc::new(sled(Durability::SecurityCritical)),
    );
    rotate(c, &rt, "memory", Arc::new(MemoryStore::new()));
    rotate(
        c,
        &rt,
        "sled, background flush",
        Arc::new(sled(Durability::Background)),
    );
    rotate(
        c,
        &rt,
        "sled, flush per critical write",
        Arc::new(sled(Durability::SecurityCritical)),
    );
    eight_concurrent(
        c,
        &rt,
        "sled, background flush",
        Arc::new(sled(Durability::Background)),
    );
    eight_concurrent(
        c,
        &rt,
        "sled, flush per critical write",
        Arc::new(sled(Durability::SecurityCritical)),
    );
    // What one flush costs on its own, for comparison.
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let n = AtomicU64::new(0);
    c.bench_function("sled: one write + flush_async", |b| {
        b.to_async(&rt).iter(|| async {
            db.insert(n.fetch_add(1, Ordering::Relaxed).to_be_bytes(), b"x")
                .unwrap();
            db.flush_async().await.unwrap()
        })
    });
}

criterion_group! {
    name = sled_benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sled_benches);
