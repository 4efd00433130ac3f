//! Tokens beside the library underneath: raw `jsonwebtoken` encode/decode of the same
//! claims with the same Ed25519 key, next to `auth.tokens()` issue and verify (uncached and
//! cached), and a refresh rotation on the memory adapter.
//!
//! `cargo bench --bench tokens`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis::model::{User, UserId};
use portcullis::store::UserStore;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::tokens::Claims;
use portcullis::{AuthMethod, Config, Portcullis, RequestContext, SignIn};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

mod common;
use common::RawSigner;

fn engine(store: &MemoryStore, cache_capacity: usize) -> Portcullis {
    let mut config = Config::new("https://app.example.com");
    config.tokens.cache_capacity = cache_capacity;
    Portcullis::builder(config)
        .store(store.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap()
}

fn tokens(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let cached = engine(&store, 10_000);
    let uncached = engine(&store, 0);
    let ctx = RequestContext::new();
    let (token, session_id, refresh) = rt.block_on(async {
        let mut user = User::new(UserId::generate(), cached.now());
        user.email = Some("bench@example.com".parse().unwrap());
        store.create_user(&user).await.unwrap();
        let SignIn::Complete(t) = cached
            .complete_first_factor(user.id, AuthMethod::Password, None, &ctx)
            .await
            .unwrap()
        else {
            panic!("no MFA")
        };
        (t.access_token, t.session_id, t.refresh_token)
    });

    // The same key and claims, through jsonwebtoken alone.
    let raw = rt.block_on(RawSigner::of(&store, &cached, &token));
    let decoding = DecodingKey::from_ed_der(&raw.public_key);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["https://app.example.com"]);
    validation.set_issuer(&["https://app.example.com"]);

    let mut g = c.benchmark_group("tokens");
    g.bench_function("raw jsonwebtoken::encode (EdDSA)", |b| {
        b.iter(|| jsonwebtoken::encode(&raw.header, black_box(&raw.claims), &raw.encoding).unwrap())
    });
    g.bench_function("auth.tokens().issue_for_session", |b| {
        b.to_async(&rt).iter(|| async {
            uncached
                .tokens()
                .issue_for_session(session_id)
                .await
                .unwrap()
        })
    });
    g.bench_function("raw jsonwebtoken::decode (EdDSA)", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Claims>(black_box(token.secret()), &decoding, &validation)
                .unwrap()
        })
    });
    g.bench_function("auth.tokens().verify, uncached", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.tokens().verify(black_box(&token)).await.unwrap() })
    });
    g.bench_function("auth.tokens().verify, cached repeat", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.tokens().verify(black_box(&token)).await.unwrap() })
    });
    g.bench_function("auth.tokens().verify_live, cached repeat", |b| {
        b.to_async(&rt).iter(|| async {
            cached
                .tokens()
                .verify_live(black_box(&token))
                .await
                .unwrap()
        })
    });
    let mut current = Some(refresh);
    g.bench_function("refresh rotation (memory adapter)", |b| {
        b.iter(|| {
            let presented = current.take().unwrap();
            let next = rt
                .block_on(cached.tokens().refresh(&presented, &ctx))
                .unwrap();
            current = Some(next.refresh_token);
        })
    });
    g.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
