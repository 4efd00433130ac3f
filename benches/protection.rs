//! Attack protection's costs: checking a proof of work, a refused (throttled) sign-in
//! beside a judged one, and the limiter's memory under a million distinct client
//! addresses (printed, not timed: resident memory before, at the peak and after the
//! window has passed and expired counters were swept).
//!
//! `cargo bench --bench protection`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::crypto::{BotProof, Password};
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Config, ManualClock, Portcullis, RateLimit, RequestContext};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

/// An engine with the built-in proof of work at `difficulty`, or without bot checks.
fn engine(store: MemoryStore, clock: ManualClock, pow: Option<u8>) -> Portcullis {
    let mut config = Config::new("https://app.example.com");
    let builder = match pow {
        Some(difficulty) => {
            config.protection.proof_of_work_difficulty = difficulty;
            Portcullis::builder(config).proof_of_work()
        }
        None => Portcullis::builder(config),
    };
    builder
        .store(store)
        .clock(clock)
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap()
}

fn proof_of_work(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    // Checking costs the same at any difficulty; 8 keeps the untimed solving short.
    let auth = engine(MemoryStore::new(), ManualClock::fixed(), Some(8));
    let pow = auth.protection();
    let mut g = c.benchmark_group("proof_of_work");
    g.bench_function("challenge (seal)", |b| {
        b.iter(|| pow.proof_of_work().unwrap())
    });
    g.bench_function("check a solution (SHA-256, seal, spend)", |b| {
        b.iter_batched(
            || {
                let c = pow.proof_of_work().unwrap();
                portcullis::protect::solve(&c.challenge, c.difficulty)
            },
            |answer| {
                let proof = BotProof::new(answer);
                let ok = rt
                    .block_on(pow.verify_bot_proof(&proof, &RequestContext::new()))
                    .unwrap();
                assert!(black_box(ok));
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn throttled_sign_in(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    // No bot check: the throttle is what refuses.
    let auth = engine(store, ManualClock::fixed(), None);
    let ip: IpAddr = Ipv4Addr::new(203, 0, 113, 66).into();
    let ctx = RequestContext::new().with_ip(ip);
    let password = Password::new("Summer2026!Summer2026!");
    // Spend the address's budget of 100 failures (each one judged: an Argon2id run).
    rt.block_on(async {
        for n in 0..100 {
            let _ = auth
                .passwords()
                .sign_in(&format!("nobody{n}@example.com"), &password, &ctx)
                .await;
        }
    });
    let mut g = c.benchmark_group("sign_in");
    g.bench_function("throttled address (refused before Argon2id)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let err = auth
                    .passwords()
                    .sign_in("nobody@example.com", &password, &ctx)
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), "rate_limited");
            })
        })
    });
    g.sample_size(10);
    let mut n = 0u32;
    g.bench_function("judged wrong password (Argon2id)", |b| {
        b.iter(|| {
            // A new account and address each time: no budget refuses, every try is judged.
            n += 1;
            let fresh = RequestContext::new().with_ip(Ipv4Addr::from(0x0e00_0000 + n).into());
            rt.block_on(async {
                let err = auth
                    .passwords()
                    .sign_in(&format!("judged{n}@example.com"), &password, &fresh)
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), "invalid_credentials");
            })
        })
    });
    g.finish();
}

/// Resident memory in bytes (Linux), for the limiter's memory report.
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn limiter_memory(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::fixed();
    let auth = engine(store.clone(), clock.clone(), None);
    let limit = RateLimit::sliding(100, Duration::from_secs(86_400));
    const ADDRESSES: u32 = 1_000_000;
    let before = resident().unwrap_or(0);
    let started = std::time::Instant::now();
    rt.block_on(async {
        for n in 0..ADDRESSES {
            let ip = Ipv4Addr::from(0x0b00_0000 + n).to_string();
            auth.limits()
                .record_failure("signin_fail_ip", &ip, &limit)
                .await
                .unwrap();
        }
    });
    let filled = started.elapsed();
    let peak = resident().unwrap_or(0);
    clock.advance(Duration::from_secs(3 * 86_400));
    let swept = rt.block_on(auth.purge_expired()).unwrap();
    let after = resident().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "limiter memory: {ADDRESSES} distinct addresses counted in {:.1} s; resident {:.0} MiB \
         before, {:.0} MiB at the peak ({:.0} B per address), {:.0} MiB after the window \
         passed ({swept} counters swept; freed memory stays with the allocator for reuse)",
        filled.as_secs_f64(),
        mib(before),
        mib(peak),
        peak.saturating_sub(before) as f64 / f64::from(ADDRESSES),
        mib(after),
    );
    // A second million reuses what the first one freed: the peak does not grow.
    rt.block_on(async {
        for n in 0..ADDRESSES {
            let ip = Ipv4Addr::from(0x0c00_0000 + n).to_string();
            auth.limits()
                .record_failure("signin_fail_ip", &ip, &limit)
                .await
                .unwrap();
        }
    });
    println!(
        "limiter memory: resident {:.0} MiB after a second million in the next window",
        mib(resident().unwrap_or(0))
    );
    let mut g = c.benchmark_group("limiter");
    let mut n = 0u32;
    g.bench_function("record a failure for a new address", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = Ipv4Addr::from(0x0d00_0000 + n).to_string();
            rt.block_on(auth.limits().record_failure("signin_fail_ip", &ip, &limit))
                .unwrap()
        })
    });
    g.finish();
}

// The memory report first, in a process nothing else has grown yet.
criterion_group!(benches, limiter_memory, proof_of_work, throttled_sign_in);
criterion_main!(benches);
