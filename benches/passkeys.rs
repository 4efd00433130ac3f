//! A passkey sign-in's finish — verify the assertion, advance the stored counter, open a
//! session and sign its access token — on the memory adapter, beside what it is made of:
//! webauthn-rs's own `finish_passkey_authentication` plus one JWT signature.
//!
//! Each iteration answers a fresh ceremony (started and signed outside the timing) with
//! the tests' software authenticator (ES256).
//!
//! `cargo bench --bench passkeys`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Config, ManualClock, Portcullis, Registrant, RequestContext, SignIn};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;
use webauthn_rs::prelude::{Url, Uuid, WebauthnBuilder};

mod common;

use common::RawSigner;
use portcullis_test_support::authenticator::TestKey;

const ORIGIN: &str = "https://app.example.com";

fn passkeys(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let mailer = portcullis::testing::CapturingMailer::new();
    let auth = Portcullis::builder(Config::new(ORIGIN))
        .store(store.clone())
        .mailer(mailer.clone())
        .clock(ManualClock::fixed())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new();
    let mut key = TestKey::new(ORIGIN);
    let raw_jwt = rt.block_on(async {
        let who = Registrant::NewUser {
            email: "ana@example.com".parse().unwrap(),
            name: None,
        };
        let (token, options) = auth.passkeys().start_registration(who, &ctx).await.unwrap();
        let registered = auth
            .passkeys()
            .finish_registration(&token, &key.register(&options), None, &ctx)
            .await
            .unwrap();
        // The account is made when the code emailed for the sign-up comes back.
        let pending = registered.pending.unwrap();
        auth.flush_deliveries().await;
        let code = mailer.last().unwrap().message.code.unwrap();
        let sign_ups = auth.sign_ups();
        let confirmed = sign_ups.confirm(pending.request_id, &code, &ctx).await;
        let SignIn::Complete(set) = confirmed.unwrap() else {
            panic!("a sign-up signs in")
        };
        RawSigner::of(&store, &auth, &set.access_token).await
    });

    // webauthn-rs on its own, with the same relying party and the same kind of key.
    let origin = Url::parse(ORIGIN).unwrap();
    let webauthn = WebauthnBuilder::new("app.example.com", &origin)
        .unwrap()
        .build()
        .unwrap();
    let mut raw_key = TestKey::new(ORIGIN);
    let (options, state) = webauthn
        .start_passkey_registration(Uuid::new_v4(), "ana", "Ana", None)
        .unwrap();
    let passkey = std::cell::RefCell::new(
        webauthn
            .finish_passkey_registration(&raw_key.register(&options), &state)
            .unwrap(),
    );

    let mut g = c.benchmark_group("passkeys");
    g.bench_function(
        "raw: webauthn-rs finish_passkey_authentication + JWT sign",
        |b| {
            b.iter_batched(
                || {
                    let (options, state) = webauthn
                        .start_passkey_authentication(std::slice::from_ref(&*passkey.borrow()))
                        .unwrap();
                    (raw_key.sign(&options), state)
                },
                |(assertion, state)| {
                    let result = webauthn
                        .finish_passkey_authentication(&assertion, &state)
                        .unwrap();
                    passkey.borrow_mut().update_credential(&result);
                    raw_jwt.sign()
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.bench_function("auth.passkeys().finish_login to a session (memory)", |b| {
        b.iter_batched(
            || {
                let (token, options) = rt
                    .block_on(auth.passkeys().start_login(Some("ana@example.com"), &ctx))
                    .unwrap();
                (token, key.sign(&options))
            },
            |(token, assertion)| {
                let signed_in = rt
                    .block_on(auth.passkeys().finish_login(&token, &assertion, &ctx))
                    .unwrap();
                assert!(matches!(signed_in, SignIn::Complete(_)));
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, passkeys);
criterion_main!(benches);
