//! A password sign-in beside the Argon2id verification it is made of, and the MFA step
//! with a TOTP code beside totp-rs checking the code.
//!
//! `cargo bench --bench passwords`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use portcullis::crypto::{OneTimeCode, Password};
use portcullis::mfa::totp::code_at;
use portcullis::store::UserStore;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Config, ManualClock, MfaProof, Portcullis, RequestContext, SignIn};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

const PASSWORD: &str = "correct horse battery staple";

fn passwords(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::fixed();
    let mailer = portcullis::testing::CapturingMailer::new();
    let auth = Portcullis::builder(Config::new("https://app.example.com"))
        .store(store.clone())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new();
    let password = Password::new(PASSWORD);
    // A sign-up finishes with the code emailed for it.
    let sign_up = |email: &'static str| {
        let (auth, mailer, password) = (auth.clone(), mailer.clone(), password.clone());
        async move {
            let started = auth
                .passwords()
                .sign_up(email, &password, &RequestContext::new())
                .await
                .unwrap();
            auth.flush_deliveries().await;
            let code = mailer.last().unwrap().message.code.unwrap();
            auth.sign_ups()
                .confirm(started.request_id, &code, &RequestContext::new())
                .await
                .unwrap()
        }
    };
    let (phc, mfa_user_secret) = rt.block_on(async {
        let SignIn::Complete(set) = sign_up("ana@example.com").await else {
            panic!("no MFA")
        };
        let phc = store
            .get_user(set.user_id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        // A second account with TOTP, for the MFA step.
        sign_up("bo@example.com").await;
        let bo = store
            .get_user_by_email(&"bo@example.com".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let enrollment = auth.mfa().totp().enroll(bo.id, &ctx).await.unwrap();
        let secret = portcullis::mfa::totp::decode_base32(&enrollment.secret_base32)
            .unwrap()
            .to_vec();
        let now = auth.now().unix_secs() as u64;
        let code = OneTimeCode::new(code_at(&secret, now, "SHA1", 6).unwrap());
        auth.mfa().totp().confirm(bo.id, &code, &ctx).await.unwrap();
        (phc.as_str().to_owned(), secret)
    });
    let argon2 = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, None).unwrap(),
    );
    let parsed = PasswordHash::new(&phc).unwrap();

    let mut g = c.benchmark_group("passwords");
    g.sample_size(20);
    g.bench_function("raw argon2 verify_password (m=19456, t=2, p=1)", |b| {
        b.iter(|| {
            argon2
                .verify_password(black_box(PASSWORD.as_bytes()), &parsed)
                .unwrap()
        })
    });
    g.bench_function("auth.passwords().sign_in → session (memory)", |b| {
        b.iter(|| {
            rt.block_on(auth.passwords().sign_in("ana@example.com", &password, &ctx))
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("totp");
    let totp = totp_rs::Builder::new()
        .with_secret(mfa_user_secret.as_slice())
        .with_account_name("bo")
        .build()
        .unwrap();
    let now = auth.now().unix_secs() as u64;
    let code = code_at(&mfa_user_secret, now, "SHA1", 6).unwrap();
    g.bench_function("raw totp-rs check (±1 step)", |b| {
        b.iter(|| totp.check(black_box(&code), now))
    });
    g.bench_function("auth.mfa().verify with TOTP → session (memory)", |b| {
        b.iter_batched(
            || {
                // A new step each time: a step is accepted once.
                clock.advance(Duration::from_secs(30));
                let now = auth.now().unix_secs() as u64;
                let code = OneTimeCode::new(code_at(&mfa_user_secret, now, "SHA1", 6).unwrap());
                let token = rt.block_on(async {
                    let bo = store
                        .get_user_by_email(&"bo@example.com".parse().unwrap())
                        .await
                        .unwrap()
                        .unwrap();
                    match auth
                        .complete_first_factor(bo.id, portcullis::AuthMethod::Email, None, &ctx)
                        .await
                        .unwrap()
                    {
                        SignIn::MfaRequired(challenge) => challenge.mfa_token,
                        other => panic!("{other:?}"),
                    }
                });
                (token, MfaProof::Totp(code))
            },
            |(token, proof)| {
                rt.block_on(auth.mfa().verify(&token, &proof, &ctx))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, passwords);
criterion_main!(benches);
