//! The foundation's hot paths beside the primitives they are built on: what a single-use
//! secret, a rate-limit hit and a sealed record cost on top of the crypto underneath.
//!
//! `cargo bench --bench primitives`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::crypto::{SecretPurpose, numeric_code, random_token};
use portcullis::model::{ChallengeKey, ChallengeKind, User, UserId};
use portcullis::store::{ChallengeStore, UserStore};
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Config, Email, Portcullis, RateLimit};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

fn engine(store: MemoryStore) -> Portcullis {
    Portcullis::builder(Config::new("https://app.example.com"))
        .store(store)
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap()
}

fn crypto(c: &mut Criterion) {
    let auth = engine(MemoryStore::new());
    let mut g = c.benchmark_group("crypto");
    g.bench_function("random_token (32 B, getrandom)", |b| {
        b.iter(|| random_token().unwrap())
    });
    g.bench_function("numeric_code (6 digits)", |b| {
        b.iter(|| numeric_code(6).unwrap())
    });
    g.bench_function("secret hash (HMAC-SHA256, 43 B)", |b| {
        let token = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c";
        b.iter(|| {
            auth.danger()
                .hasher()
                .hash(SecretPurpose::MagicLink, black_box(token.as_bytes()))
        })
    });
    let owner = UserId::generate();
    g.bench_function("keyring seal (20 B, XChaCha20-Poly1305)", |b| {
        b.iter(|| {
            auth.danger()
                .keyring()
                .seal(black_box(&[7u8; 20]), owner.as_bytes())
                .unwrap()
        })
    });
    let sealed = auth
        .danger()
        .keyring()
        .seal(&[7u8; 20], owner.as_bytes())
        .unwrap();
    g.bench_function("keyring open (20 B)", |b| {
        b.iter(|| {
            auth.danger()
                .keyring()
                .open(black_box(&sealed), owner.as_bytes())
                .unwrap()
        })
    });
    g.finish();
}

fn memory_store(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let auth = engine(store.clone());
    let n = AtomicU64::new(0);
    let mut g = c.benchmark_group("memory");

    g.bench_function("single-use secret: hash + insert + take", |b| {
        b.to_async(&rt).iter(|| async {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let hash = auth
                .danger()
                .hasher()
                .hash(SecretPurpose::MagicLink, &i.to_le_bytes());
            let key = ChallengeKey::hashed(ChallengeKind::MagicLink, &hash);
            let now = auth.now();
            store
                .insert(&key, b"payload", now + Duration::from_secs(900), now)
                .await
                .unwrap();
            store.take(&key, now).await.unwrap().unwrap()
        })
    });
    g.bench_function("counter incr", |b| {
        b.to_async(&rt).iter(|| async {
            let now = auth.now();
            store
                .incr("rl:bench", now + Duration::from_secs(60), now)
                .await
                .unwrap()
        })
    });
    let limit = RateLimit::sliding(u32::MAX / 2, Duration::from_secs(3600));
    g.bench_function("rate limit hit (sliding: hash + incr + read)", |b| {
        b.to_async(&rt).iter(|| async {
            auth.limits()
                .hit("bench", "alice@example.com", &limit)
                .await
                .unwrap()
        })
    });
    g.bench_function("create user (email index)", |b| {
        b.to_async(&rt).iter(|| async {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let mut user = User::new(UserId::generate(), auth.now());
            user.email = Some(Email::parse(&format!("u{i}@example.com")).unwrap());
            store.create_user(&user).await.unwrap()
        })
    });
    g.finish();

    // Eight tasks redeeming distinct secrets at once: shards keep them from queueing on one
    // lock. Reported per batch of 8 redemptions.
    let store = Arc::new(store);
    let mut g = c.benchmark_group("memory, 8 concurrent tasks");
    g.bench_function("8 x (insert + take)", |b| {
        b.to_async(&rt).iter(|| async {
            let base = n.fetch_add(8, Ordering::Relaxed);
            let now = auth.now();
            let tasks: Vec<_> = (0..8)
                .map(|j| {
                    let store = store.clone();
                    let key = ChallengeKey::new(ChallengeKind::OneTimeCode, (base + j).to_string());
                    tokio::spawn(async move {
                        store
                            .insert(&key, b"x", now + Duration::from_secs(60), now)
                            .await
                            .unwrap();
                        store.take(&key, now).await.unwrap().unwrap()
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, crypto, memory_store);
criterion_main!(benches);
