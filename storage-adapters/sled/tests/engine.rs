//! The engine on sled across a restart: signing keys, sessions and refresh rotation
//! survive; a spent refresh token stays spent. (The core's attack tests run on sled too:
//! `tests/takeovers.rs` at the workspace root.)

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use portcullis::model::{User, UserId};
use portcullis::store::UserStore;
use portcullis::testing::{CapturingMailer, race, test_keyring, test_pepper};
use portcullis::{AuthMethod, Config, ManualClock, Portcullis, RequestContext, SignIn};
mod support;

use portcullis_sled::{SledConfig, SledStore};
use support::retry;

fn engine(dir: &Path, clock: &ManualClock) -> (Portcullis, SledStore) {
    engine_with(dir, clock, &CapturingMailer::new())
}

fn engine_with(
    dir: &Path,
    clock: &ManualClock,
    mailer: &CapturingMailer,
) -> (Portcullis, SledStore) {
    let store = retry(|| SledStore::with_config(SledConfig::new(dir)));
    let auth = Portcullis::builder(Config::new("https://app.example.com"))
        .store(store.clone())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    (auth, store)
}

#[tokio::test]
async fn sessions_and_signing_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let ctx = RequestContext::new();
    let (auth, store) = engine(dir.path(), &clock);
    let mut alice = User::new(UserId::generate(), portcullis::Clock::now(&clock));
    alice.email = Some("alice@example.com".parse().unwrap());
    store.create_user(&alice).await.unwrap();
    let SignIn::Complete(first) = auth
        .complete_first_factor(alice.id, AuthMethod::Email, None, &ctx)
        .await
        .unwrap()
    else {
        panic!("no MFA")
    };
    let second = auth
        .tokens()
        .refresh(&first.refresh_token, &ctx)
        .await
        .unwrap();
    let jwks = auth.tokens().jwks().await.unwrap();
    drop((auth, store));

    let (auth, _store) = engine(dir.path(), &clock);
    assert_eq!(
        auth.tokens().jwks().await.unwrap(),
        jwks,
        "the same signing keys"
    );
    auth.tokens()
        .verify_live(&second.access_token)
        .await
        .unwrap();
    let err = auth
        .tokens()
        .refresh(&first.refresh_token, &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "invalid_token",
        "a spent refresh token stays spent"
    );
    let err = auth
        .tokens()
        .refresh(&second.refresh_token, &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "invalid_token",
        "and its reuse revoked the session"
    );
}

/// Invariant 2 on real files: a pending code survives a restart, and 16 concurrent
/// verifies of it, or of a magic link, open exactly one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwordless_secrets_are_single_use_on_sled_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let mailer = CapturingMailer::new();
    let ctx = RequestContext::new();
    let (auth, store) = engine_with(dir.path(), &clock, &mailer);
    let sent = auth
        .codes()
        .email()
        .send("ana@example.com", &ctx)
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let code = mailer.last().unwrap().message.code.unwrap();
    drop((auth, store));

    let (auth, _store) = engine_with(dir.path(), &clock, &mailer);
    let results = race(16, |_| {
        let auth = auth.clone();
        let code = code.clone();
        async move {
            auth.codes()
                .email()
                .verify(sent.request_id, &code, &RequestContext::new())
                .await
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );

    clock.advance(std::time::Duration::from_secs(60));
    let sent = auth
        .magic_links()
        .send("ana@example.com", &portcullis::LinkOptions::new(), &ctx)
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let link = mailer.last().unwrap().message.link.unwrap();
    let token =
        portcullis::crypto::MagicLinkToken::new(link.secret().rsplit("token=").next().unwrap());
    let proof = portcullis::DeviceProof::none().with_poll_token(sent.poll_token.clone());
    let results = race(16, |_| {
        let auth = auth.clone();
        let token = token.clone();
        let proof = proof.clone();
        async move {
            auth.magic_links()
                .verify(&token, &proof, &RequestContext::new())
                .await
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_register_and_sign_in_on_sled_across_a_restart() {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let ctx = RequestContext::new();
    let origin = url::Url::parse("https://app.example.com").unwrap();
    let mut soft = SoftPasskey::new(true);
    let mailer = CapturingMailer::new();
    let (auth, store) = engine_with(dir.path(), &clock, &mailer);
    let who = portcullis::Registrant::NewUser {
        email: "ana@example.com".parse().unwrap(),
        name: None,
    };
    let (token, options) = auth.passkeys().start_registration(who, &ctx).await.unwrap();
    let answer = soft.do_registration(origin.clone(), options).unwrap();
    let registered = auth
        .passkeys()
        .finish_registration(&token, &answer, None, &ctx)
        .await
        .unwrap();
    // The account is made once the emailed code comes back.
    let pending = registered.pending.clone().unwrap();
    auth.flush_deliveries().await;
    let code = mailer.last().unwrap().message.code.clone().unwrap();
    auth.sign_ups()
        .confirm(pending.request_id, &code, &ctx)
        .await
        .unwrap();
    // A sign-in ceremony started before the restart is finished after it, once.
    let (token, options) = auth
        .passkeys()
        .start_login(Some("ana@example.com"), &ctx)
        .await
        .unwrap();
    let assertion = soft.do_authentication(origin, options).unwrap();
    drop((auth, store));

    let (auth, store) = engine(dir.path(), &clock);
    let stored = store.get_passkey(&registered.passkey.id).await.unwrap();
    assert_eq!(stored.map(|p| p.counter), Some(0));
    let results = race(16, |_| {
        let auth = auth.clone();
        let (token, assertion) = (token.clone(), assertion.clone());
        async move {
            auth.passkeys()
                .finish_login(&token, &assertion, &RequestContext::new())
                .await
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let stored = store.get_passkey(&registered.passkey.id).await.unwrap();
    assert!(stored.is_some_and(|p| p.counter > 0 && p.last_used_at.is_some()));
    let stored = store.get_passkey(&registered.passkey.id).await.unwrap();
    assert!(
        stored.is_some_and(|p| p.registered_with_uv),
        "how it was registered survives the restart and the use"
    );
}

#[tokio::test]
async fn deleting_a_user_on_sled_leaves_no_orphan_and_an_intact_anonymous_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let ctx = RequestContext::new()
        .with_ip("198.51.100.4".parse().unwrap())
        .with_user_agent("Firefox");
    let (auth, store) = engine(dir.path(), &clock);
    let org = auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap();
    let in_acme = ctx.clone().with_org(org.id);
    let ana = auth
        .users()
        .create(portcullis::NewUser::with_email("ana@example.com"), &in_acme)
        .await
        .unwrap();
    let SignIn::Complete(set) = auth
        .complete_first_factor(ana.id, AuthMethod::Email, None, &in_acme)
        .await
        .unwrap()
    else {
        panic!("no MFA")
    };
    auth.users().delete(ana.id, &ctx).await.unwrap();
    drop((auth, store));

    let (auth, store) = engine(dir.path(), &clock);
    use portcullis::store::{AuditLog, OrgStore, SessionStore};
    assert!(store.get_user(ana.id).await.unwrap().is_none());
    assert!(store.list_memberships(ana.id).await.unwrap().is_empty());
    let now = portcullis::Clock::now(&clock);
    assert!(
        store
            .list_user_sessions(ana.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        auth.tokens()
            .refresh(&set.refresh_token, &ctx)
            .await
            .is_err()
    );
    let log = store
        .list_user_events(ana.id, &portcullis::model::PageRequest::first(50))
        .await
        .unwrap();
    assert!(
        log.items
            .iter()
            .skip(1)
            .all(|e| e.ip.is_none() && e.user_agent.is_none())
    );
    assert!(matches!(
        auth.audit().verify_chain(ana.id).await.unwrap(),
        portcullis::ChainStatus::Intact { .. }
    ));
}
