//! Many application instances on one database: two engines, each with its own pool, on one
//! schema of a real PostgreSQL. Every single-use secret is raced 32 times across both
//! (CON-01): exactly one redemption wins, whichever instance it lands on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::crypto::Password;
use portcullis::testing::{race, test_keyring, test_pepper};
use portcullis::{
    AuthMethod, Config, DeviceProof, Error, LinkOptions, MfaProof, Portcullis, SignIn,
};
use portcullis_postgres::PgStore;
use portcullis_test_support::{self as support, Harness, code_of, ctx, link_token, scenarios};

use std::time::Duration;

const RACERS: usize = 32;

fn config() -> Config {
    Config::new("https://app.example.com")
}

/// Instance A (the harness: its mailer and clock) and instance B: another engine with its
/// own pool on A's schema, sharing A's secrets, mailer and clock.
async fn two_instances() -> Option<(Harness<PgStore>, Portcullis)> {
    let a = support::pg_harness_built(config(), |b| b).await?;
    let store_b = support::postgres::second_instance(&a.store).await;
    let b = Portcullis::builder(config())
        .store(store_b)
        .mailer(a.mailer.clone())
        .sms(a.sms.clone())
        .clock(a.clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    Some((a, b))
}

/// The engine racer `i` uses: even ones A, odd ones B.
fn pick(a: &Portcullis, b: &Portcullis, i: usize) -> Portcullis {
    if i.is_multiple_of(2) {
        a.clone()
    } else {
        b.clone()
    }
}

/// Races `RACERS` barrier-started calls of `call(engine, i)`, even racers on A and odd ones
/// on B: exactly one succeeds, and every other fails with an error of one of `losers`.
async fn exactly_one_wins<T, F, Fut>(a: &Portcullis, b: &Portcullis, losers: &[&str], call: F)
where
    F: Fn(Portcullis, usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    T: std::fmt::Debug + Send + 'static,
{
    let results = race(RACERS, |i| call(pick(a, b, i), i)).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for loser in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(losers.contains(&loser.code()), "{loser:?} in {results:?}");
    }
}

/// Signs `email` in with an emailed code on A: its tokens.
async fn signed_in(h: &Harness<PgStore>, email: &str) -> portcullis::TokenSet {
    let channel = h.auth.codes().email();
    let sent = channel.send(email, &ctx()).await.unwrap();
    let code = code_of(&h.last_mail().await.message);
    support::tokens(
        channel
            .verify(sent.request_id, &code, &ctx())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_email_code_raced_on_two_instances_signs_in_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let sent = h
        .auth
        .codes()
        .email()
        .send("ana@example.com", &ctx())
        .await
        .unwrap();
    let code = code_of(&h.last_mail().await.message);
    let losers = ["invalid_credentials", "rate_limited"];
    exactly_one_wins(&h.auth, &b, &losers, |auth, _| {
        let code = code.clone();
        async move {
            auth.codes()
                .email()
                .verify(sent.request_id, &code, &ctx())
                .await
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_magic_link_raced_on_two_instances_opens_one_session() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let sent = h
        .auth
        .magic_links()
        .send("ana@example.com", &LinkOptions::new(), &ctx())
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    exactly_one_wins(
        &h.auth,
        &b,
        &["invalid_token", "rate_limited"],
        |auth, _| {
            let token = token.clone();
            let proof = DeviceProof::none().with_poll_token(sent.poll_token.clone());
            async move { auth.magic_links().verify(&token, &proof, &ctx()).await }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_refresh_token_raced_on_two_instances_rotates_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let tokens = signed_in(&h, "ana@example.com").await;
    let refresh = tokens.refresh_token.clone();
    exactly_one_wins(&h.auth, &b, &["invalid_token"], |auth, _| {
        let refresh = refresh.clone();
        async move { auth.tokens().refresh(&refresh, &ctx()).await }
    })
    .await;
    // The losers presented a rotated token: reuse, which ends the session on both.
    for auth in [&h.auth, &b] {
        assert!(
            auth.tokens()
                .verify_live(&tokens.access_token)
                .await
                .is_err(),
            "the raced session is revoked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_authorization_code_raced_on_two_instances_is_spent_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    scenarios::auth_code_raced_across_instances(&[&h.auth, &b], RACERS, &h.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_revoked_on_one_instance_is_refused_live_on_the_other() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let tokens = signed_in(&h, "ana@example.com").await;
    b.tokens().verify_live(&tokens.access_token).await.unwrap();
    h.auth
        .sessions()
        .revoke(tokens.user_id, tokens.session_id, &ctx())
        .await
        .unwrap();
    let refused = b.tokens().verify_live(&tokens.access_token).await;
    assert!(matches!(refused, Err(Error::SessionRevoked)), "{refused:?}");
    let refreshed = b.tokens().refresh(&tokens.refresh_token, &ctx()).await;
    assert!(refreshed.is_err(), "{refreshed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signing_key_rotated_on_one_instance_verifies_on_the_other_at_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    // B has read the keys (and caches them) before A rotates.
    let before = signed_in(&h, "ana@example.com").await;
    b.tokens().verify(&before.access_token).await.unwrap();
    let kid = h.auth.tokens().rotate_signing_key().await.unwrap();
    let after = signed_in(&h, "bo@example.com").await;
    let header = after
        .access_token
        .secret()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let header = URL_SAFE_NO_PAD.decode(header).unwrap();
    let header = String::from_utf8(header).unwrap();
    assert!(header.contains(&kid), "A signs with the new key: {header}");
    // An unknown kid makes B read the keys again (at most once a second).
    b.tokens().verify(&after.access_token).await.unwrap();
    b.tokens().verify(&before.access_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_are_counted_across_instances() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    support::password_sign_up(&h, "ana@example.com", "a long and right passphrase", &ctx())
        .await
        .unwrap();
    let right = Password::new("a long and right passphrase");
    let wrong = Password::new("a long and wrong passphrase");
    // One client's failure budget for one account (10 per 15 minutes), spent half on A and
    // half on B: the count is one row in the database, so the right password is refused
    // next, on either instance. Counted per instance, each would have 5 left.
    let budget = h.auth.config().limits.failures_per_account_ip.max;
    for attempt in 0..budget {
        let auth = if attempt.is_multiple_of(2) {
            &h.auth
        } else {
            &b
        };
        let failed = auth
            .passwords()
            .sign_in("ana@example.com", &wrong, &ctx())
            .await;
        assert!(
            matches!(failed, Err(Error::InvalidCredentials)),
            "{attempt}: {failed:?}"
        );
    }
    for auth in [&h.auth, &b] {
        let refused = auth
            .passwords()
            .sign_in("ana@example.com", &right, &ctx())
            .await;
        assert!(
            matches!(refused, Err(Error::RateLimited { .. })),
            "{refused:?}"
        );
    }
}

/// Without following, B would accept a token of a key A retired for up to a minute
/// (`KEY_REFRESH`) and sign with A's old key as long; following (LISTEN/NOTIFY), it refuses
/// and switches within milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_hears_of_rotations_and_retirements_at_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let store_c = support::postgres::second_instance(&h.store).await;
    let c = Portcullis::builder(config())
        .store(store_c)
        .mailer(h.mailer.clone())
        .clock(h.clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let old = signed_in(&h, "ana@example.com").await;
    let old_kid = kid_of(&old.access_token);
    // B and C have read the keys (and verified a token under the old one).
    b.tokens().verify(&old.access_token).await.unwrap();
    c.tokens().verify(&old.access_token).await.unwrap();
    let pg_b = support::postgres::second_instance(&h.store).await;
    let follower = pg_b.follow_key_changes(b.clone()).await.unwrap();

    let new_kid = h.auth.tokens().rotate_signing_key().await.unwrap();
    let session = signed_in(&h, "bo@example.com").await.session_id;
    let mut signed_by_b = String::new();
    for _ in 0..100 {
        signed_by_b = kid_of(&b.tokens().issue_for_session(session).await.unwrap());
        if signed_by_b == new_kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(signed_by_b, new_kid, "B signs with the rotated key");
    let signed_by_c = kid_of(&c.tokens().issue_for_session(session).await.unwrap());
    assert_eq!(
        signed_by_c, old_kid,
        "C, not following, still signs with the old key"
    );

    h.auth.tokens().retire_key(&old_kid).await.unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if b.tokens().verify(&old.access_token).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "B refuses a token of the retired key");
    c.tokens().verify(&old.access_token).await.unwrap();
    follower.stop();
}

fn kid_of(token: &portcullis::crypto::AccessToken) -> String {
    let header = token.secret().split('.').next().unwrap().to_owned();
    let header = URL_SAFE_NO_PAD.decode(header).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A user with TOTP on A, and an MFA step token for each of `n` first-factor sign-ins,
/// each made on A or B alternately.
async fn mfa_steps(
    h: &Harness<PgStore>,
    b: &Portcullis,
    n: usize,
) -> (
    portcullis::UserId,
    Vec<u8>,
    Vec<portcullis::crypto::BackupCode>,
    Vec<portcullis::crypto::MfaToken>,
) {
    let user = support::tokens(
        support::password_sign_up(h, "mfa@example.com", "a long and right passphrase", &ctx())
            .await
            .unwrap(),
    )
    .user_id;
    let (secret, codes) = support::enable_totp(h, user).await;
    let mut steps = Vec::with_capacity(n);
    for i in 0..n {
        let auth = pick(&h.auth, b, i);
        match auth
            .complete_first_factor(user, AuthMethod::Email, None, &ctx())
            .await
            .unwrap()
        {
            SignIn::MfaRequired(challenge) => steps.push(challenge.mfa_token),
            other => panic!("expected the MFA step, got {other:?}"),
        }
    }
    (user, secret, codes, steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_backup_code_raced_on_two_instances_works_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let (user, _, codes, steps) = mfa_steps(&h, &b, RACERS).await;
    let proof = MfaProof::BackupCode(codes[0].clone());
    let losers = ["invalid_credentials", "rate_limited"];
    exactly_one_wins(&h.auth, &b, &losers, |auth, i| {
        let (step, proof) = (steps[i].clone(), proof.clone());
        async move { auth.mfa().verify(&step, &proof, &ctx()).await }
    })
    .await;
    assert_eq!(b.mfa().backup_codes().remaining(user).await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_one_totp_code_raced_on_two_instances_works_once() {
    let Some((h, b)) = two_instances().await else {
        return;
    };
    let (_, secret, _, steps) = mfa_steps(&h, &b, RACERS).await;
    // Past the time step the enrolment was confirmed with: the code below is a new one.
    h.clock.advance(Duration::from_secs(30));
    let code = support::app_code(&h, &secret);
    let proof = MfaProof::Totp(code);
    let losers = ["invalid_credentials", "rate_limited"];
    exactly_one_wins(&h.auth, &b, &losers, |auth, i| {
        let (step, proof) = (steps[i].clone(), proof.clone());
        async move { auth.mfa().verify(&step, &proof, &ctx()).await }
    })
    .await;
}

/// The follower listens on a connection of its own: a pool of one still serves the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_takes_no_connection_from_the_pool() {
    let Some(store) = support::postgres::store_with(|config| {
        config
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(500))
    })
    .await
    else {
        return;
    };
    let auth = Portcullis::builder(config())
        .store(store.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let follower = store.follow_key_changes(auth.clone()).await.unwrap();
    let user = portcullis::store::UserStore::get_user(&store, portcullis::UserId::generate()).await;
    assert!(matches!(user, Ok(None)), "{user:?}");
    follower.stop();
}
