//! The engine on sled across a restart: signing keys, sessions and refresh rotation
//! survive; a spent refresh token stays spent.

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use latchkey::model::{User, UserId};
use latchkey::store::UserStore;
use latchkey::testing::{test_keyring, test_pepper};
use latchkey::{AuthMethod, Config, Latchkey, ManualClock, RequestContext, SignIn};
mod support;

use latchkey_sled::{SledConfig, SledStore};
use support::retry;

fn engine(dir: &Path, clock: &ManualClock) -> (Latchkey, SledStore) {
    let store = retry(|| SledStore::with_config(SledConfig::new(dir).clock(clock.clone())));
    let auth = Latchkey::builder(Config::new("https://app.example.com"))
        .store(store.clone())
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
    let mut alice = User::new(UserId::generate(), latchkey::Clock::now(&clock));
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
        .verify_live(second.access_token.secret())
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
