//! An email code's whole round trip — send, then verify into a signed-in session — on the
//! memory adapter, beside the primitives it is made of: a keyed hash, a 256-bit random
//! token, and an EdDSA signature of the access token. A magic link's round trip too.
//!
//! `cargo bench --bench passwordless`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::crypto::{MagicLinkToken, OneTimeCode, SecretPurpose, random_token};
use portcullis::model::{User, UserId};
use portcullis::store::UserStore;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{
    Config, Delivery, DeliveryError, DeviceProof, EmailMessage, LinkOptions, Mailer, ManualClock,
    Portcullis, RequestContext, SignIn,
};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

mod common;
use common::RawSigner;

/// Keeps only the newest message's code or link, so the bench can answer it.
#[derive(Debug, Clone, Default)]
struct LastSecret {
    code: Arc<Mutex<Option<OneTimeCode>>>,
    link: Arc<Mutex<Option<MagicLinkToken>>>,
}

#[async_trait]
impl Mailer for LastSecret {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        if let Some(code) = &message.message.code {
            *self.code.lock().unwrap() = Some(code.clone());
        }
        if let Some(link) = &message.message.link {
            let token = link.secret().rsplit("token=").next().unwrap_or_default();
            *self.link.lock().unwrap() = Some(MagicLinkToken::new(token));
        }
        Ok(())
    }
}

const USERS: usize = 2000;

fn passwordless(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::fixed();
    let mailer = LastSecret::default();
    let mut config = Config::new("https://app.example.com");
    // Inline, so the code is in hand when `send` returns; the bench's mailer costs nothing.
    config.passwordless.delivery = Delivery::Inline;
    let auth = Portcullis::builder(config)
        .store(store.clone())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new();
    let emails: Vec<String> = (0..USERS).map(|i| format!("user{i}@example.com")).collect();
    rt.block_on(async {
        for email in &emails {
            let mut user = User::new(UserId::generate(), auth.now());
            user.email = Some(email.parse().unwrap());
            user.email_verified = true;
            store.create_user(&user).await.unwrap();
        }
    });
    // Each address comes round again only after its cooldown and hourly budget allow it:
    // the clock moves 2 s per round trip, USERS addresses take turns.
    let mut next = 0usize;
    let mut turn = || {
        clock.advance(Duration::from_secs(2));
        next = (next + 1) % USERS;
        emails[next].as_str()
    };

    // The primitives: the same key, claims and algorithm as the engine's.
    let raw = rt.block_on(async {
        let sent = auth.codes().email().send(&emails[0], &ctx).await.unwrap();
        let code = mailer.code.lock().unwrap().take().unwrap();
        let SignIn::Complete(set) = auth
            .codes()
            .email()
            .verify(sent.request_id, &code, &ctx)
            .await
            .unwrap()
        else {
            panic!("no MFA")
        };
        RawSigner::of(&store, &auth, &set.access_token).await
    });

    let mut g = c.benchmark_group("passwordless");
    g.bench_function("primitive: HMAC-SHA256 keyed hash", |b| {
        b.iter(|| {
            auth.danger().hasher().hash(
                SecretPurpose::EmailCode,
                black_box(b"user0@example.com 123456"),
            )
        })
    });
    g.bench_function("primitive: 256-bit random token", |b| {
        b.iter(|| random_token().unwrap())
    });
    g.bench_function("primitive: JWT sign (EdDSA, raw jsonwebtoken)", |b| {
        b.iter(|| jsonwebtoken::encode(&raw.header, black_box(&raw.claims), &raw.encoding).unwrap())
    });
    g.bench_function("email code: send + verify to a session (memory)", |b| {
        b.iter(|| {
            let email = turn();
            rt.block_on(async {
                let sent = auth.codes().email().send(email, &ctx).await.unwrap();
                let code = mailer.code.lock().unwrap().take().unwrap();
                let signed_in = auth
                    .codes()
                    .email()
                    .verify(sent.request_id, &code, &ctx)
                    .await
                    .unwrap();
                assert!(matches!(signed_in, SignIn::Complete(_)));
            })
        })
    });
    g.bench_function("magic link: send + verify to a session (memory)", |b| {
        b.iter(|| {
            let email = turn();
            rt.block_on(async {
                let links = auth.magic_links();
                let sent = links.send(email, &LinkOptions::new(), &ctx).await.unwrap();
                let token = mailer.link.lock().unwrap().take().unwrap();
                let proof = DeviceProof::none().with_poll_token(sent.poll_token);
                links.verify(&token, &proof, &ctx).await.unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, passwordless);
criterion_main!(benches);
