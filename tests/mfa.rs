//! TOTP, backup codes and the MFA step: RFC 6238 and RFC 4226 vectors, enrolment with a
//! QR code, replay refusal, single-use backup codes under racing, the failure budget, and
//! sealed secrets that do not move between users.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::crypto::{BackupCode, MfaToken, OneTimeCode};
use portcullis::mfa::totp::code_at;
use portcullis::model::{FactorStatus, User, UserId};
use portcullis::store::UserStore;
use portcullis::testing::race;
use portcullis::{AuthMethod, Error, MfaProof, SignIn};
use support::{Harness, app_code, base32_decode, enable_totp, harness};

use support::ctx;

/// RFC 6238 Appendix B, all 18 rows (SECURITY-CHECKLIST V-1).
#[test]
fn rfc6238_appendix_b() {
    let sha1 = b"12345678901234567890".as_slice();
    let sha256 = b"12345678901234567890123456789012".as_slice();
    let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
    let rows: [(u64, [&str; 3]); 6] = [
        (59, ["94287082", "46119246", "90693936"]),
        (1111111109, ["07081804", "68084774", "25091201"]),
        (1111111111, ["14050471", "67062674", "99943326"]),
        (1234567890, ["89005924", "91819424", "93441116"]),
        (2000000000, ["69279037", "90698825", "38618901"]),
        (20000000000, ["65353130", "77737706", "47863826"]),
    ];
    for (time, [a, b, c]) in rows {
        assert_eq!(code_at(sha1, time, "SHA1", 8).unwrap(), a, "SHA1 at {time}");
        assert_eq!(
            code_at(sha256, time, "SHA256", 8).unwrap(),
            b,
            "SHA256 at {time}"
        );
        assert_eq!(
            code_at(sha512, time, "SHA512", 8).unwrap(),
            c,
            "SHA512 at {time}"
        );
    }
}

/// RFC 4226 Appendix D (SECURITY-CHECKLIST V-2): HOTP at count c is TOTP at c × 30 s.
#[test]
fn rfc4226_appendix_d() {
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (count, want) in expected.into_iter().enumerate() {
        let code = code_at(b"12345678901234567890", count as u64 * 30, "SHA1", 6).unwrap();
        assert_eq!(code, want, "count {count}");
    }
}

/// A user with an active TOTP factor: returns the user, the app's secret and the
/// backup codes.
async fn enrolled(h: &Harness) -> (User, Vec<u8>, Vec<BackupCode>) {
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    user.email_verified = true;
    h.store.create_user(&user).await.unwrap();
    let (secret, codes) = enable_totp(h, user.id).await;
    (user, secret, codes)
}

async fn first_factor(h: &Harness, user: UserId) -> MfaToken {
    match h
        .auth
        .complete_first_factor(user, AuthMethod::Email, None, &ctx())
        .await
        .unwrap()
    {
        SignIn::MfaRequired(challenge) => challenge.mfa_token,
        other => panic!("expected the MFA step, got {other:?}"),
    }
}

use support::tokens;

#[tokio::test]
async fn enrolment_gives_a_uri_a_qr_code_and_a_sealed_secret() {
    let h = harness();
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    let enrollment = h.auth.mfa().totp().enroll(user.id, &ctx()).await.unwrap();
    assert_eq!(enrollment.secret_base32.len(), 32, "20 bytes in base32");
    let uri = enrollment.otpauth_uri.as_str();
    assert!(
        uri.starts_with("otpauth://totp/portcullis:ana%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={}", enrollment.secret_base32.as_str())));
    assert!(uri.contains("issuer=portcullis"));
    assert_eq!(&enrollment.qr_png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(!format!("{enrollment:?}").contains(enrollment.secret_base32.as_str()));

    let stored = h.store.list_totp_factors(user.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, FactorStatus::Pending);
    let secret = base32_decode(&enrollment.secret_base32);
    let dump = h.store.dump();
    assert!(
        !dump.windows(secret.len()).any(|w| w == secret.as_slice()),
        "the secret is stored sealed"
    );
    assert!(!String::from_utf8_lossy(&dump).contains(enrollment.secret_base32.as_str()));

    // Pending factors ask for nothing at sign-in.
    assert!(matches!(
        h.auth
            .complete_first_factor(user.id, AuthMethod::Email, None, &ctx())
            .await
            .unwrap(),
        SignIn::Complete(_)
    ));
    // A wrong first code does not confirm.
    let wrong = OneTimeCode::new("000000");
    let right = app_code(&h, &secret);
    if wrong.secret() != right.secret() {
        assert!(matches!(
            h.auth.mfa().totp().confirm(user.id, &wrong, &ctx()).await,
            Err(Error::InvalidCredentials)
        ));
    }
    let codes = h
        .auth
        .mfa()
        .totp()
        .confirm(user.id, &right, &ctx())
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert!(matches!(
        h.auth.mfa().totp().enroll(user.id, &ctx()).await,
        Err(Error::Conflict { what: "totp" })
    ));
}

#[tokio::test]
async fn the_mfa_step_signs_in_with_a_totp_code_once() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    h.clock.advance(Duration::from_secs(30));
    let token = first_factor(&h, user.id).await;
    let set = tokens(
        h.auth
            .mfa()
            .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
            .await
            .unwrap(),
    );
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(claims.amr, ["email", "otp", "mfa"]);
    assert_eq!(claims.acr, "aal2");
    // The MFA token is spent.
    assert!(matches!(
        h.auth
            .mfa()
            .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
            .await,
        Err(Error::InvalidToken)
    ));
    // The same code in a new sign-in is a replay.
    let again = first_factor(&h, user.id).await;
    assert!(matches!(
        h.auth
            .mfa()
            .verify(&again, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
            .await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn totp_accepts_one_step_of_drift_and_never_an_earlier_step() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    let at = |offset: i64| {
        let now = h.auth.now().unix_secs() + offset;
        OneTimeCode::new(code_at(&secret, now as u64, "SHA1", 6).unwrap())
    };
    h.clock.advance(Duration::from_secs(300));
    let verify = |code: OneTimeCode| {
        let h = &h;
        async move {
            let token = first_factor(h, user.id).await;
            h.auth
                .mfa()
                .verify(&token, &MfaProof::Totp(code), &ctx())
                .await
        }
    };
    for (offset, accepted) in [
        (-60, false),
        (60, false),
        (-30, true),
        (0, true),
        (30, true),
    ] {
        let code = at(offset);
        // Each try needs a step not accepted yet; only the last succeeding step counts.
        let result = verify(code).await;
        assert_eq!(result.is_ok(), accepted, "offset {offset}: {result:?}");
    }
    // The step at +30 s was accepted: now and -30 s lie behind it.
    assert!(verify(at(0)).await.is_err());
}

#[tokio::test]
async fn totp04_a_code_for_an_earlier_step_is_refused_even_if_never_used() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    h.clock.advance(Duration::from_secs(300));
    let code_at_offset = |offset: i64| {
        let now = h.auth.now().unix_secs() + offset;
        OneTimeCode::new(code_at(&secret, now as u64, "SHA1", 6).unwrap())
    };
    let ahead = code_at_offset(30);
    let (now, behind) = (code_at_offset(0), code_at_offset(-30));
    let token = first_factor(&h, user.id).await;
    h.auth
        .mfa()
        .verify(&token, &MfaProof::Totp(ahead), &ctx())
        .await
        .unwrap();
    for never_used in [now, behind] {
        let token = first_factor(&h, user.id).await;
        let result = h
            .auth
            .mfa()
            .verify(&token, &MfaProof::Totp(never_used), &ctx())
            .await;
        assert!(
            matches!(result, Err(Error::InvalidCredentials)),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_code_works_once_under_16_racers() {
    let h = harness();
    let (user, _, codes) = enrolled(&h).await;
    assert_eq!(codes[0].secret().len(), 19);
    let auth = h.auth.clone();
    let mut tokens_ = Vec::new();
    for _ in 0..16 {
        tokens_.push(first_factor(&h, user.id).await);
    }
    let code = codes[0].clone();
    let results = race(16, |i| {
        let auth = auth.clone();
        let token = tokens_[i].clone();
        let proof = MfaProof::BackupCode(code.clone());
        async move { auth.mfa().verify(&token, &proof, &ctx()).await }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        h.auth
            .mfa()
            .backup_codes()
            .remaining(user.id)
            .await
            .unwrap(),
        9
    );
    // The 15 losers presented a spent code: failures (or refused once the budget was
    // spent). Whether the budget is still spent now depends on whether the winner's
    // sign-in, which empties it, finished before or after them; wait it out either way.
    for loser in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(loser.code(), "invalid_credentials" | "rate_limited"),
            "{loser:?}"
        );
    }
    h.clock.advance(Duration::from_secs(30 * 60));

    // Typed sloppily, another code still works; regenerating kills the rest.
    let sloppy = BackupCode::new(codes[1].secret().to_lowercase().replace('-', " "));
    let token = first_factor(&h, user.id).await;
    h.auth
        .mfa()
        .verify(&token, &MfaProof::BackupCode(sloppy), &ctx())
        .await
        .unwrap();
    let fresh = h
        .auth
        .mfa()
        .backup_codes()
        .regenerate(user.id, &ctx())
        .await
        .unwrap();
    let token = first_factor(&h, user.id).await;
    assert!(
        h.auth
            .mfa()
            .verify(&token, &MfaProof::BackupCode(codes[2].clone()), &ctx())
            .await
            .is_err()
    );
    h.auth
        .mfa()
        .verify(&token, &MfaProof::BackupCode(fresh[0].clone()), &ctx())
        .await
        .unwrap();
    let dump = String::from_utf8_lossy(&h.store.dump()).into_owned();
    for code in fresh.iter().chain(&codes) {
        assert!(!dump.contains(code.secret()));
        assert!(!dump.contains(&code.secret().replace('-', "")));
    }
}

#[tokio::test]
async fn wrong_second_factors_spend_the_account_budget() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    // A token takes five wrong proofs; two sign-ins' worth fill the account's budget.
    let mut token = first_factor(&h, user.id).await;
    for i in 0..10 {
        if i == 5 {
            token = first_factor(&h, user.id).await;
        }
        let err = h
            .auth
            .mfa()
            .verify(
                &token,
                &MfaProof::BackupCode(BackupCode::new("0000-0000-0000-0000")),
                &ctx(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    }
    h.clock.advance(Duration::from_secs(30));
    let token = first_factor(&h, user.id).await;
    let err = h
        .auth
        .mfa()
        .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited", "even the right code waits");
}

#[tokio::test]
async fn mfa_tokens_expire_and_unknown_ones_are_invalid() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    let token = first_factor(&h, user.id).await;
    h.clock.advance(Duration::from_secs(5 * 60));
    assert!(matches!(
        h.auth
            .mfa()
            .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
            .await,
        Err(Error::InvalidToken)
    ));
    for junk in ["", "x", &"a".repeat(1000)] {
        assert!(matches!(
            h.auth
                .mfa()
                .verify(
                    &MfaToken::new(junk),
                    &MfaProof::Totp(OneTimeCode::new("1")),
                    &ctx()
                )
                .await,
            Err(Error::InvalidToken)
        ));
    }
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_user_does_not_open() {
    let h = harness();
    let (ana, secret, _) = enrolled(&h).await;
    let mut bo = User::new(UserId::generate(), h.auth.now());
    bo.email = Some("bo@example.com".parse().unwrap());
    h.store.create_user(&bo).await.unwrap();
    let mut stolen = h.store.list_totp_factors(ana.id).await.unwrap().remove(0);
    stolen.id = portcullis::model::FactorId::generate();
    stolen.user_id = bo.id;
    h.store.put_totp_factor(&stolen).await.unwrap();
    let token = first_factor(&h, bo.id).await;
    h.clock.advance(Duration::from_secs(30));
    let err = h
        .auth
        .mfa()
        .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
        .await
        .unwrap_err();
    // The copied secret does not open under bo's ids, so it cannot sign bo in.
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn authenticators_list_what_a_user_has() {
    let h = harness();
    let (user, _, _) = enrolled(&h).await;
    let list = h.auth.mfa().authenticators(user.id).await.unwrap();
    assert_eq!(list.totp.len(), 1);
    assert_eq!(list.totp[0].status, FactorStatus::Active);
    assert_eq!(list.backup_codes_remaining, 10);
    assert!(list.passkeys.is_empty());
    assert_eq!(list.phone, None);
    assert!(
        h.auth
            .mfa()
            .totp()
            .remove(user.id, list.totp[0].id, &ctx())
            .await
            .unwrap()
    );
    assert!(matches!(
        h.auth
            .complete_first_factor(user.id, AuthMethod::Email, None, &ctx())
            .await
            .unwrap(),
        SignIn::Complete(_)
    ));
}

#[tokio::test]
async fn passwords_and_second_factors_fill_one_budget() {
    let h = harness();
    let (user, _, _) = enrolled(&h).await;
    let good = portcullis::crypto::Password::new("correct horse battery staple");
    let mut with_password = h.store.get_user(user.id).await.unwrap().unwrap();
    with_password.password_hash = h
        .store
        .get_user(
            match support::password_sign_up(&h, "other@example.com", good.secret(), &ctx())
                .await
                .unwrap()
            {
                SignIn::Complete(t) => t.user_id,
                _ => unreachable!(),
            },
        )
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    h.store.update_user(&with_password).await.unwrap();

    let wrong = portcullis::crypto::Password::new("not the right one");
    for _ in 0..5 {
        let err = h
            .auth
            .passwords()
            .sign_in("ana@example.com", &wrong, &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials));
    }
    let token = match h
        .auth
        .passwords()
        .sign_in("ana@example.com", &good, &ctx())
        .await
        .unwrap()
    {
        SignIn::MfaRequired(c) => c.mfa_token,
        other => panic!("{other:?}"),
    };
    for _ in 0..5 {
        let proof = MfaProof::BackupCode(BackupCode::new("0000-0000-0000-0000"));
        assert!(h.auth.mfa().verify(&token, &proof, &ctx()).await.is_err());
    }
    let err = h
        .auth
        .passwords()
        .sign_in("ana@example.com", &good, &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "rate_limited",
        "5 + 5 failures spent the one budget"
    );
}

/// A user with TOTP and a verified phone.
async fn enrolled_with_phone(h: &Harness) -> User {
    let (user, _, _) = enrolled(h).await;
    let mut with_phone = h.store.get_user(user.id).await.unwrap().unwrap();
    with_phone.phone = Some("+15550109999".parse().unwrap());
    with_phone.phone_verified = true;
    h.store.update_user(&with_phone).await.unwrap();
    with_phone
}

fn sms_on() -> Harness {
    let mut config = portcullis::Config::new("https://app.example.com");
    config.mfa.sms = true;
    support::harness_with(config)
}

#[tokio::test]
async fn texted_second_factors_are_off_by_default() {
    let h = harness();
    let user = enrolled_with_phone(&h).await;
    let token = first_factor(&h, user.id).await;
    let err = h
        .auth
        .mfa()
        .challenge(&token, portcullis::MfaMethod::Sms, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
}

#[tokio::test]
async fn a_texted_code_can_be_the_second_factor_but_never_after_an_sms_first_factor() {
    let h = sms_on();
    let user = enrolled_with_phone(&h).await;

    // A code sent for another sign-in of the same user does not answer this one.
    let other = first_factor(&h, user.id).await;
    let other_sent = h
        .auth
        .mfa()
        .challenge(&other, portcullis::MfaMethod::Sms, &ctx())
        .await
        .unwrap()
        .unwrap();
    let other_code = support::code_of(&h.texts().await.pop().unwrap().message);
    let token = first_factor(&h, user.id).await;
    let crossed = h
        .auth
        .mfa()
        .verify(
            &token,
            &MfaProof::Sms(other_sent.request_id, other_code),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(matches!(crossed, Error::InvalidCredentials), "{crossed:?}");
    h.clock.advance(Duration::from_secs(30));
    let sent = h
        .auth
        .mfa()
        .challenge(&token, portcullis::MfaMethod::Sms, &ctx())
        .await
        .unwrap()
        .expect("a code was texted");
    let code = support::code_of(&h.texts().await.pop().unwrap().message);
    // The texted code answers only its own request and purpose.
    let sign_in_code = h
        .auth
        .codes()
        .sms()
        .verify(sent.request_id, &code, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(sign_in_code, Error::InvalidCredentials));
    let set = tokens(
        h.auth
            .mfa()
            .verify(&token, &MfaProof::Sms(sent.request_id, code), &ctx())
            .await
            .unwrap(),
    );
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(claims.amr, ["email", "sms", "mfa"]);

    // After an SMS first factor, SMS is not offered again; email is off by default.
    let SignIn::MfaRequired(step) = h
        .auth
        .complete_first_factor(user.id, AuthMethod::Sms, None, &ctx())
        .await
        .unwrap()
    else {
        panic!("expected the MFA step");
    };
    assert_eq!(
        step.methods,
        [
            portcullis::MfaMethod::Totp,
            portcullis::MfaMethod::BackupCode
        ]
    );
    for method in [portcullis::MfaMethod::Sms, portcullis::MfaMethod::Email] {
        let err = h
            .auth
            .mfa()
            .challenge(&step.mfa_token, method, &ctx())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{method:?}");
    }
    assert!(
        h.auth
            .mfa()
            .challenge(&step.mfa_token, portcullis::MfaMethod::Totp, &ctx())
            .await
            .unwrap()
            .is_none(),
        "nothing to send for TOTP"
    );
}

#[tokio::test]
async fn a_second_factor_code_sent_for_another_user_proves_nothing() {
    let h = sms_on();
    let (ana, _, _) = enrolled(&h).await;
    let mut bo = User::new(UserId::generate(), h.auth.now());
    bo.email = Some("bo@example.com".parse().unwrap());
    bo.phone = Some("+15550108888".parse().unwrap());
    bo.phone_verified = true;
    h.store.create_user(&bo).await.unwrap();
    let enrollment = h.auth.mfa().totp().enroll(bo.id, &ctx()).await.unwrap();
    let secret = base32_decode(&enrollment.secret_base32);
    h.auth
        .mfa()
        .totp()
        .confirm(bo.id, &app_code(&h, &secret), &ctx())
        .await
        .unwrap();
    let mut ana_phone = h.store.get_user(ana.id).await.unwrap().unwrap();
    ana_phone.phone = Some("+15550109999".parse().unwrap());
    ana_phone.phone_verified = true;
    h.store.update_user(&ana_phone).await.unwrap();

    let bo_token = first_factor(&h, bo.id).await;
    let ana_token = first_factor(&h, ana.id).await;
    let bo_sent = h
        .auth
        .mfa()
        .challenge(&bo_token, portcullis::MfaMethod::Sms, &ctx())
        .await
        .unwrap()
        .unwrap();
    let bo_code = support::code_of(&h.texts().await.pop().unwrap().message);
    let err = h
        .auth
        .mfa()
        .verify(
            &ana_token,
            &MfaProof::Sms(bo_sent.request_id, bo_code),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn an_mfa_token_dies_after_five_wrong_proofs() {
    let h = harness();
    let (user, secret, _) = enrolled(&h).await;
    let token = first_factor(&h, user.id).await;
    let mfa = h.auth.mfa();
    for _ in 0..5 {
        let wrong = MfaProof::Totp(OneTimeCode::new("000000"));
        let refused = mfa.verify(&token, &wrong, &ctx()).await;
        assert!(
            matches!(refused, Err(Error::InvalidCredentials)),
            "{refused:?}"
        );
    }
    // The right code is too late for this token; a new sign-in works (the account's
    // budget of 10 still has room).
    let late = mfa
        .verify(&token, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
        .await;
    assert!(matches!(late, Err(Error::InvalidToken)), "{late:?}");
    h.clock.advance(Duration::from_secs(30));
    let fresh = first_factor(&h, user.id).await;
    mfa.verify(&fresh, &MfaProof::Totp(app_code(&h, &secret)), &ctx())
        .await
        .unwrap();
}
