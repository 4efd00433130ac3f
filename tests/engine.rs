//! Building the engine: configuration is checked once, at `build()`.

// Helpers in a test crate report failure by panicking, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::model::{AuthEventKind, ChallengeKey, ChallengeKind, PageRequest, UserId};
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Clock, Config, Error, Portcullis, RequestContext};
use portcullis_memory::MemoryStore;

fn config_error(result: Result<Portcullis, Error>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn build_requires_store_pepper_and_keyring() {
    let config = || Config::new("https://app.example.com");
    let no_store = Portcullis::builder(config())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build();
    assert!(config_error(no_store).contains("store"));
    let no_pepper = Portcullis::builder(config())
        .store(MemoryStore::new())
        .keyring(test_keyring())
        .build();
    assert!(config_error(no_pepper).contains("pepper"));
    let no_keyring = Portcullis::builder(config())
        .store(MemoryStore::new())
        .pepper(test_pepper())
        .build();
    assert!(config_error(no_keyring).contains("keyring"));
}

#[test]
fn build_rejects_invalid_configuration_with_a_clear_message() {
    let mut config = Config::new("http://app.example.com");
    config.rp_name = "Example".into();
    let err = Portcullis::builder(config)
        .store(MemoryStore::new())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build();
    let message = config_error(err);
    assert!(message.contains("https"), "{message}");

    let mut config = Config::new("https://app.example.com");
    config.limits.failures_per_account.max = 1000;
    let err = Portcullis::builder(config)
        .store(MemoryStore::new())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build();
    assert!(config_error(err).contains("failures_per_account"));
}

#[test]
fn built_engine_exposes_derived_configuration() {
    let h = support::harness();
    assert_eq!(h.auth.rp_id(), "app.example.com");
    assert_eq!(h.auth.public_origin().as_str(), "https://app.example.com/");
    assert_eq!(h.auth.config().ttl.access_token, Duration::from_secs(900));
    assert_eq!(h.auth.now(), h.clock.now());
    assert!(format!("{:?}", h.auth).contains("app.example.com"));
}

#[test]
fn engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Portcullis>();
}

#[tokio::test]
async fn login_log_records_context_newest_first() {
    let h = support::harness();
    let user = UserId::generate();
    let ctx = RequestContext::new()
        .with_ip([198, 51, 100, 4].into())
        .with_user_agent("Mozilla/5.0 (test)");
    let audit = h.auth.audit();
    audit
        .record(
            audit
                .event(AuthEventKind::SignInFailed, &ctx)
                .with_user(user)
                .with_reason("invalid_credentials"),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(5));
    audit
        .record(
            audit
                .event(AuthEventKind::SignIn, &ctx)
                .with_user(user)
                .with_method("pwd"),
        )
        .await
        .unwrap();
    let log = audit
        .login_log(user, &PageRequest::first(10))
        .await
        .unwrap();
    let kinds: Vec<_> = log.items.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![AuthEventKind::SignIn, AuthEventKind::SignInFailed]
    );
    assert_eq!(log.items[0].ip, ctx.ip);
    assert_eq!(
        log.items[0].user_agent.as_deref(),
        Some("Mozilla/5.0 (test)")
    );
    assert_eq!(log.items[0].at, h.clock.now());
    assert_eq!(log.items[1].reason.as_deref(), Some("invalid_credentials"));
}

#[tokio::test]
async fn forged_cursor_is_invalid_input_not_a_failure() {
    let h = support::harness();
    let page = PageRequest::after(10, portcullis::model::Cursor::new("garbage"));
    let err = h
        .auth
        .audit()
        .login_log(UserId::generate(), &page)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
}

#[tokio::test]
async fn purge_reclaims_only_what_the_engine_clock_says_expired() {
    let h = support::harness();
    let store = h.auth.danger().challenge_store();
    let now = h.auth.now();
    let short = ChallengeKey::new(ChallengeKind::MagicLink, "short");
    let long = ChallengeKey::new(ChallengeKind::MagicLink, "long");
    store
        .insert(&short, b"x", now + Duration::from_secs(60), now)
        .await
        .unwrap();
    store
        .insert(&long, b"x", now + Duration::from_secs(600), now)
        .await
        .unwrap();
    assert_eq!(h.auth.purge_expired().await.unwrap(), 0);
    h.clock.advance(Duration::from_secs(60));
    assert_eq!(h.auth.purge_expired().await.unwrap(), 1);
    assert!(store.get(&long, h.auth.now()).await.unwrap().is_some());
}

#[test]
fn missing_delivery_is_a_config_error_at_use() {
    let auth = Portcullis::builder(Config::new("https://app.example.com"))
        .store(MemoryStore::new())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    assert_eq!(auth.mailer().unwrap_err().code(), "config");
    assert_eq!(auth.sms().unwrap_err().code(), "config");
}
