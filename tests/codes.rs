//! One-time codes by email and SMS: checklist rows OOB-01…06, SMS-01/02, RL-12, ENUM-04.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::crypto::OneTimeCode;
use portcullis::model::{RequestId, User};
use portcullis::store::UserStore;
use portcullis::testing::race;
use portcullis::{Config, Error, RateLimit, RequestContext, Sent, SignIn, UserId};
use support::{Harness, code_of, harness, harness_with};

use support::ctx;

use support::tokens;

/// A code other than `code`, of the same width.
fn wrong(code: &OneTimeCode) -> OneTimeCode {
    let n: u64 = code.secret().parse().unwrap();
    let width = code.secret().len();
    OneTimeCode::new(format!("{:0width$}", (n + 1) % 10u64.pow(width as u32)))
}

async fn send_email(h: &Harness, email: &str) -> (Sent, OneTimeCode) {
    let sent = h.auth.codes().email().send(email, &ctx()).await.unwrap();
    let code = code_of(&h.last_mail().await.message);
    (sent, code)
}

async fn verify(h: &Harness, sent: &Sent, code: &OneTimeCode) -> Result<SignIn, Error> {
    h.auth
        .codes()
        .email()
        .verify(sent.request_id, code, &ctx())
        .await
}

#[tokio::test]
async fn oob01_an_email_code_signs_in_with_six_random_digits() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    assert_eq!(sent.expires_in, Duration::from_secs(600));
    assert_eq!(code.secret().len(), 6);
    assert!(code.secret().bytes().all(|b| b.is_ascii_digit()));
    let mail = h.last_mail().await;
    assert_eq!(
        mail.subject,
        format!("{} is your portcullis code", code.secret())
    );
    assert!(mail.text.contains(code.secret()));

    // People type codes with spaces.
    let spaced = OneTimeCode::new(format!("{} {}", &code.secret()[..3], &code.secret()[3..]));
    let set = tokens(verify(&h, &sent, &spaced).await.unwrap());
    let user = h.store.get_user(set.user_id).await.unwrap().unwrap();
    assert!(user.email_verified);
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(claims.amr, vec!["email"]);
}

#[tokio::test]
async fn codes_have_the_configured_width() {
    let mut config = Config::new("https://app.example.com");
    config.codes.digits = 8;
    let h = harness_with(config);
    let (sent, code) = send_email(&h, "ana@example.com").await;
    assert_eq!(code.secret().len(), 8);
    verify(&h, &sent, &code).await.unwrap();
}

#[tokio::test]
async fn oob03_a_code_is_accepted_once() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    verify(&h, &sent, &code).await.unwrap();
    assert!(matches!(
        verify(&h, &sent, &code).await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn con01_sixteen_concurrent_verifies_of_one_code_sign_in_once() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    let auth = h.auth.clone();
    let results = race(16, |_| {
        let auth = auth.clone();
        let code = code.clone();
        let id = sent.request_id;
        async move { auth.codes().email().verify(id, &code, &ctx()).await }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    // Every attempt is counted before it is judged (CON-02), so past the budget of one
    // client for one account (10) the rest are refused before their code is looked at.
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::InvalidCredentials | Error::RateLimited { .. })),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_are_all_counted() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    let bad = wrong(&code);
    let auth = h.auth.clone();
    // Four racing wrong codes: every one is counted, none lost to a race.
    let results = race(4, |_| {
        let auth = auth.clone();
        let bad = bad.clone();
        let id = sent.request_id;
        async move { auth.codes().email().verify(id, &bad, &ctx()).await }
    })
    .await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::InvalidCredentials)))
    );
    // The fifth wrong code spends the budget, so the right one is refused after it.
    assert!(verify(&h, &sent, &bad).await.is_err());
    assert!(matches!(
        verify(&h, &sent, &code).await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn oob05_five_wrong_codes_then_the_right_one_is_refused() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    for _ in 0..5 {
        assert!(matches!(
            verify(&h, &sent, &wrong(&code)).await,
            Err(Error::InvalidCredentials)
        ));
    }
    assert!(matches!(
        verify(&h, &sent, &code).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        h.auth.codes().email().resend(sent.request_id, &ctx()).await,
        Err(Error::Expired)
    ));
}

#[tokio::test]
async fn oob05_oob06_a_resend_kills_the_old_code_but_keeps_the_attempt_count() {
    let h = harness();
    let (sent, first) = send_email(&h, "ana@example.com").await;
    for _ in 0..3 {
        assert!(verify(&h, &sent, &wrong(&first)).await.is_err());
    }
    h.clock.advance(Duration::from_secs(30));
    let resent = h
        .auth
        .codes()
        .email()
        .resend(sent.request_id, &ctx())
        .await
        .unwrap();
    assert_eq!(resent.request_id, sent.request_id);
    let second = code_of(&h.last_mail().await.message);
    assert_eq!(h.mails().await.len(), 2);
    if first.secret() != second.secret() {
        assert!(
            verify(&h, &sent, &first).await.is_err(),
            "the old code died"
        );
    } else {
        assert!(verify(&h, &sent, &wrong(&second)).await.is_err());
    }
    // 3 + 1 wrong so far: one more spends the budget the resend did not refill.
    assert!(verify(&h, &sent, &wrong(&second)).await.is_err());
    assert!(matches!(
        verify(&h, &sent, &second).await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn a_resent_code_signs_in() {
    let h = harness();
    let (sent, _) = send_email(&h, "ana@example.com").await;
    h.clock.advance(Duration::from_secs(30));
    h.auth
        .codes()
        .email()
        .resend(sent.request_id, &ctx())
        .await
        .unwrap();
    let second = code_of(&h.last_mail().await.message);
    verify(&h, &sent, &second).await.unwrap();
}

#[tokio::test]
async fn rl01_the_account_budget_survives_new_requests() {
    let h = harness();
    // Two requests, five wrong codes each: the account's ten failures are spent.
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(30));
        let (sent, code) = send_email(&h, "ana@example.com").await;
        for _ in 0..5 {
            assert!(verify(&h, &sent, &wrong(&code)).await.is_err());
        }
    }
    h.clock.advance(Duration::from_secs(30));
    let (sent, code) = send_email(&h, "ana@example.com").await;
    let err = verify(&h, &sent, &code).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited", "{err:?}");
}

#[tokio::test]
async fn oob04_a_code_is_bound_to_its_request_and_purpose() {
    let h = harness();
    let (a, code_a) = send_email(&h, "ana@example.com").await;
    let (b, code_b) = send_email(&h, "bo@example.com").await;
    if code_a.secret() != code_b.secret() {
        assert!(verify(&h, &b, &code_a).await.is_err(), "A's code in B");
    }
    // A code sent by email is not an SMS code of the same request.
    let err = h
        .auth
        .codes()
        .sms()
        .verify(a.request_id, &code_a, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
    // A sign-in code cannot confirm an address.
    assert!(matches!(
        h.auth
            .codes()
            .email()
            .confirm(a.request_id, &code_a, &ctx())
            .await,
        Err(Error::InvalidCredentials)
    ));
    verify(&h, &a, &code_a).await.unwrap();
}

#[tokio::test]
async fn a_verification_code_confirms_the_address_and_cannot_sign_in() {
    let h = harness();
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    let email = h.auth.codes().email();
    let sent = email.send_verification(user.id, &ctx()).await.unwrap();
    let code = code_of(&h.last_mail().await.message);
    assert!(matches!(
        email.verify(sent.request_id, &code, &ctx()).await,
        Err(Error::InvalidCredentials)
    ));
    // The refused sign-in spent nothing: the request is still usable for its purpose.
    assert_eq!(
        email.confirm(sent.request_id, &code, &ctx()).await.unwrap(),
        user.id
    );
    assert!(
        h.store
            .get_user(user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    let unknown = email.send_verification(UserId::generate(), &ctx()).await;
    assert!(matches!(unknown, Err(Error::NotFound { what: "user" })));
}

#[tokio::test]
async fn oob02_codes_expire_after_ten_minutes() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    h.clock.advance(Duration::from_secs(601));
    assert!(matches!(
        verify(&h, &sent, &code).await,
        Err(Error::InvalidCredentials)
    ));
    let mut config = Config::new("https://app.example.com");
    config.ttl.one_time_code = Duration::from_secs(601);
    let err = portcullis::Portcullis::builder(config).build().unwrap_err();
    assert!(err.to_string().contains("one_time_code"), "{err}");
}

#[tokio::test]
async fn enum04_failures_read_the_same_for_known_and_unknown_addresses() {
    let mut config = Config::new("https://app.example.com");
    config.passwordless.sign_up = false;
    let h = harness_with(config);
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("known@example.com".parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    let email = h.auth.codes().email();
    let known = email.send("known@example.com", &ctx()).await.unwrap();
    let unknown = email.send("unknown@example.com", &ctx()).await.unwrap();
    assert_eq!(known.expires_in, unknown.expires_in);
    let guess = OneTimeCode::new("123456");
    let a = email.verify(known.request_id, &guess, &ctx()).await;
    let b = email.verify(unknown.request_id, &guess, &ctx()).await;
    let c = email.verify(RequestId::generate(), &guess, &ctx()).await;
    let text = |r: Result<SignIn, Error>| r.map(|_| ()).unwrap_err().to_string();
    let (a, b, c) = (text(a), text(b), text(c));
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(h.mails().await.len(), 1, "only the account got a code");
}

#[tokio::test]
async fn rl05_empty_and_malformed_codes_count_as_wrong() {
    let h = harness();
    let (sent, code) = send_email(&h, "ana@example.com").await;
    for bad in ["", "abcdef", "１２３４５６", "12"] {
        let err = verify(&h, &sent, &OneTimeCode::new(bad)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{bad:?}: {err:?}");
    }
    let err = verify(&h, &sent, &OneTimeCode::new("1".repeat(100)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "too long to be a code at all");
    // Four spent; one left.
    verify(&h, &sent, &code).await.unwrap();
}

#[tokio::test]
async fn confirming_an_address_leaves_the_owners_password_and_sessions_alone() {
    let h = harness();
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    user.password_hash = Some(portcullis::model::PasswordHash::new("$argon2id$v=19$x"));
    h.store.create_user(&user).await.unwrap();
    let session = tokens(
        h.auth
            .complete_first_factor(user.id, portcullis::AuthMethod::Password, None, &ctx())
            .await
            .unwrap(),
    );
    let email = h.auth.codes().email();
    let sent = email.send_verification(user.id, &ctx()).await.unwrap();
    let code = code_of(&h.last_mail().await.message);
    email.confirm(sent.request_id, &code, &ctx()).await.unwrap();
    let after = h.store.get_user(user.id).await.unwrap().unwrap();
    assert!(after.email_verified);
    assert!(after.password_hash.is_some());
    h.auth
        .tokens()
        .verify_live(&session.access_token)
        .await
        .unwrap();
}

fn sms_config() -> Config {
    let mut config = Config::new("https://app.example.com");
    config.sms.allowed_prefixes = vec!["1".into(), "46".into()];
    config
}

#[tokio::test]
async fn an_sms_code_signs_up_and_marks_the_phone_verified() {
    let h = harness_with(sms_config());
    let sms = h.auth.codes().sms();
    let sent = sms.send("+1 (555) 010-9999", &ctx()).await.unwrap();
    let texts = h.texts().await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].to.as_str(), "+15550109999");
    let code = code_of(&texts[0].message);
    assert!(
        texts[0].body.starts_with(code.secret()),
        "{}",
        texts[0].body
    );
    let set = tokens(sms.verify(sent.request_id, &code, &ctx()).await.unwrap());
    let user = h.store.get_user(set.user_id).await.unwrap().unwrap();
    assert_eq!(user.phone.unwrap().as_str(), "+15550109999");
    assert!(user.phone_verified);
    assert!(user.email.is_none());
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(claims.amr, vec!["sms"]);
}

#[tokio::test]
async fn sms01_numbers_outside_the_allowlist_are_refused_before_sending() {
    let h = harness_with(sms_config());
    let err = h
        .auth
        .codes()
        .sms()
        .send("+44 20 7946 0000", &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(h.texts().await.is_empty());
}

#[tokio::test]
async fn sms02_the_sixth_text_to_one_number_in_a_day_is_refused() {
    let h = harness_with(sms_config());
    let sms = h.auth.codes().sms();
    for i in 0..5 {
        sms.send("+46700000001", &ctx())
            .await
            .unwrap_or_else(|e| panic!("text {i}: {e:?}"));
        h.clock.advance(Duration::from_secs(3600));
    }
    let err = sms.send("+46700000001", &ctx()).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(
        h.texts().await.len(),
        5,
        "refused before the sender was called"
    );
}

#[tokio::test]
async fn rl12_a_number_has_a_cooldown_between_texts() {
    let h = harness_with(sms_config());
    let sms = h.auth.codes().sms();
    let sent = sms.send("+15550100001", &ctx()).await.unwrap();
    let Err(Error::RateLimited { retry_after }) = sms.resend(sent.request_id, &ctx()).await else {
        panic!("the cooldown refuses");
    };
    assert_eq!(retry_after, Duration::from_secs(30));
    h.clock.advance(retry_after);
    sms.resend(sent.request_id, &ctx()).await.unwrap();
    assert_eq!(h.texts().await.len(), 2);
}

#[tokio::test]
async fn sms02_per_ip_and_global_budgets_refuse_before_sending() {
    let mut config = sms_config();
    config.sms.per_ip = RateLimit::fixed(3, Duration::from_secs(3600));
    let h = harness_with(config);
    let sms = h.auth.codes().sms();
    // One client walking a block of adjacent numbers.
    for i in 0..3 {
        sms.send(&format!("+4670000010{i}"), &ctx()).await.unwrap();
    }
    let err = sms.send("+46700000103", &ctx()).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(h.texts().await.len(), 3);

    let mut config = sms_config();
    config.sms.global = RateLimit::fixed(2, Duration::from_secs(3600));
    let h = harness_with(config);
    let sms = h.auth.codes().sms();
    for i in 0..2 {
        let from = RequestContext::new().with_ip(format!("192.0.2.{i}").parse().unwrap());
        sms.send(&format!("+1555010000{i}"), &from).await.unwrap();
    }
    let from = RequestContext::new().with_ip("192.0.2.99".parse().unwrap());
    let err = sms.send("+15550100009", &from).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(h.texts().await.len(), 2);
    // Email is not affected by the SMS budget.
    h.auth
        .codes()
        .email()
        .send("ana@example.com", &from)
        .await
        .unwrap();
}

#[tokio::test]
async fn inline_delivery_reports_a_failing_mailer() {
    #[derive(Debug)]
    struct Down;
    #[async_trait::async_trait]
    impl portcullis::Mailer for Down {
        async fn send(
            &self,
            _: &portcullis::EmailMessage,
        ) -> Result<(), portcullis::DeliveryError> {
            Err(portcullis::DeliveryError::new(
                "email",
                "connection refused",
            ))
        }
    }
    for (mode, expect_error) in [
        (portcullis::Delivery::Inline, true),
        (portcullis::Delivery::Background, false),
    ] {
        let mut config = Config::new("https://app.example.com");
        config.passwordless.delivery = mode;
        let auth = portcullis::Portcullis::builder(config)
            .store(portcullis_memory::MemoryStore::new())
            .mailer(Down)
            .pepper(portcullis::testing::test_pepper())
            .keyring(portcullis::testing::test_keyring())
            .build()
            .unwrap();
        let result = auth.codes().email().send("ana@example.com", &ctx()).await;
        auth.flush_deliveries().await;
        assert_eq!(result.is_err(), expect_error, "{mode:?}: {result:?}");
        if let Err(err) = result {
            assert_eq!(err.code(), "delivery");
        }
    }
}

#[tokio::test]
async fn a_client_over_its_budget_cannot_spend_a_victims() {
    let mut config = Config::new("https://app.example.com");
    config.limits.sends_per_ip = RateLimit::fixed(1, Duration::from_secs(3600));
    let h = harness_with(config);
    let email = h.auth.codes().email();
    let attacker = RequestContext::new().with_ip("192.0.2.66".parse().unwrap());
    email.send("someone@example.com", &attacker).await.unwrap();
    for _ in 0..10 {
        h.clock.advance(Duration::from_secs(31));
        let err = email.send("ana@example.com", &attacker).await.unwrap_err();
        assert_eq!(err.code(), "rate_limited");
    }
    // Ana's own address budget and cooldown were never touched.
    email.send("ana@example.com", &ctx()).await.unwrap();
    // IPv6 clients count by their /64.
    let a = RequestContext::new().with_ip("2001:db8:1:2::1".parse().unwrap());
    let b = RequestContext::new().with_ip("2001:db8:1:2::beef".parse().unwrap());
    email.send("x@example.com", &a).await.unwrap();
    let err = email.send("y@example.com", &b).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
}

#[tokio::test]
async fn an_sms_code_gives_an_unproven_number_to_its_prover() {
    let h = harness_with(sms_config());
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("owner@example.com".parse().unwrap());
    user.email_verified = true;
    user.phone = Some("+15550109999".parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    let sms = h.auth.codes().sms();
    let sent = sms.send("+15550109999", &ctx()).await.unwrap();
    let code = code_of(&h.texts().await[0].message);
    let set = tokens(sms.verify(sent.request_id, &code, &ctx()).await.unwrap());
    assert_ne!(set.user_id, user.id);
    let new = h.store.get_user(set.user_id).await.unwrap().unwrap();
    assert!(new.phone_verified && new.email.is_none());
    assert_eq!(
        h.store.get_user(user.id).await.unwrap().unwrap().phone,
        None
    );
}

#[tokio::test]
async fn verification_codes_use_their_own_templates() {
    let h = harness();
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    h.auth
        .codes()
        .email()
        .send_verification(user.id, &ctx())
        .await
        .unwrap();
    let mail = h.last_mail().await;
    assert_eq!(
        mail.message.kind,
        portcullis::MessageKind::EmailVerification
    );
    assert!(
        mail.subject.starts_with("Confirm your email address"),
        "{}",
        mail.subject
    );
    assert!(mail.text.contains("does not sign anyone in"));
}

#[tokio::test]
async fn rl07_one_client_cannot_lock_the_owner_out_from_elsewhere() {
    let h = harness();
    let attacker = RequestContext::new().with_ip("192.0.2.66".parse().unwrap());
    let email = h.auth.codes().email();
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(30));
        let sent = email.send("ana@example.com", &attacker).await.unwrap();
        let code = code_of(&h.last_mail().await.message);
        for _ in 0..5 {
            assert!(
                email
                    .verify(sent.request_id, &wrong(&code), &attacker)
                    .await
                    .is_err()
            );
        }
    }
    h.clock.advance(Duration::from_secs(30));
    let (sent, code) = send_email(&h, "ana@example.com").await;
    // The attacker's client is shut out; ana, from her own address, is not.
    let theirs = email
        .verify(sent.request_id, &code, &attacker)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), "rate_limited");
    verify(&h, &sent, &code).await.unwrap();
}
