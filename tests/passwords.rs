//! Passwords: Argon2id (RFC 9106 vector), the NIST policy, sign-up, sign-in with the same
//! answer for every failure, the failure budget, rehashing, and changing a password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::crypto::Password;
use portcullis::model::{PasswordHash, User, UserId};
use portcullis::store::UserStore;
use portcullis::{Error, SignIn, TokenSet};
use support::{Harness, harness};

const GOOD: &str = "correct horse battery staple";

use support::ctx;

use support::tokens;

async fn sign_up(h: &Harness, email: &str) -> TokenSet {
    tokens(
        support::password_sign_up(h, email, GOOD, &ctx())
            .await
            .unwrap(),
    )
}

/// RFC 9106 §5.3 (SECURITY-CHECKLIST V-5): the Argon2id implementation underneath.
#[test]
fn rfc9106_argon2id_vector() {
    use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
    let params = ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .data(AssociatedData::new(&[4u8; 12]).unwrap())
        .output_len(32)
        .build()
        .unwrap();
    let argon2 =
        Argon2::new_with_secret(&[3u8; 8], Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut tag = [0u8; 32];
    argon2
        .hash_password_into(&[1u8; 32], &[2u8; 16], &mut tag)
        .unwrap();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    );
}

#[tokio::test]
async fn sign_up_proves_the_address_stores_an_argon2id_hash_and_signs_in() {
    let h = harness();
    let set = sign_up(&h, "Ana@Example.com").await;
    let user = h.store.get_user(set.user_id).await.unwrap().unwrap();
    let hash = user.password_hash.unwrap();
    assert!(
        hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash:?}"
    );
    assert!(user.email_verified, "the emailed code proved the address");
    assert!(!String::from_utf8_lossy(&h.store.dump()).contains(GOOD));

    let again = h
        .auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
    let claims = h
        .auth
        .tokens()
        .verify(&tokens(again).access_token)
        .await
        .unwrap();
    assert_eq!(claims.amr, ["pwd"]);
    // A taken address answers like a free one; its owner hears of it, and no code for
    // the request signs anyone up (ENUM-03).
    h.clock.advance(std::time::Duration::from_secs(61));
    let taken = h
        .auth
        .passwords()
        .sign_up("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
    assert_eq!(taken.expires_in, h.auth.config().ttl.one_time_code);
    let notice = h.last_mail().await;
    assert_eq!(notice.message.kind, portcullis::MessageKind::SignUpAttempt);
    assert!(notice.message.code.is_none());
    let refused = h
        .auth
        .sign_ups()
        .confirm(
            taken.request_id,
            &portcullis::crypto::OneTimeCode::new("123456"),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::InvalidCredentials), "{refused:?}");
}

#[tokio::test]
async fn every_failed_sign_in_reads_the_same() {
    let h = harness();
    sign_up(&h, "ana@example.com").await;
    let mut passwordless = User::new(UserId::generate(), h.auth.now());
    passwordless.email = Some("bo@example.com".parse().unwrap());
    h.store.create_user(&passwordless).await.unwrap();
    let mut blocked = User::new(UserId::generate(), h.auth.now());
    blocked.email = Some("cy@example.com".parse().unwrap());
    blocked.password_hash = h
        .store
        .get_user_by_email(&"ana@example.com".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    blocked.blocked = true;
    h.store.create_user(&blocked).await.unwrap();

    let passwords = h.auth.passwords();
    let attempts = [
        ("ana@example.com", "wrong password entirely"),
        ("nobody@example.com", GOOD),
        ("bo@example.com", GOOD),
        ("cy@example.com", GOOD),
        ("not an email", GOOD),
    ];
    for (email, password) in attempts {
        let err = passwords
            .sign_in(email, &Password::new(password), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{email}: {err:?}");
        assert_eq!(err.to_string(), "invalid credentials");
    }
}

#[tokio::test]
async fn wrong_passwords_spend_the_budget_before_any_hashing() {
    let h = harness();
    sign_up(&h, "ana@example.com").await;
    let passwords = h.auth.passwords();
    for _ in 0..10 {
        assert!(
            passwords
                .sign_in(
                    "ana@example.com",
                    &Password::new("not the password"),
                    &ctx()
                )
                .await
                .is_err()
        );
    }
    let err = passwords
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited", "even the right password waits");
    h.clock.advance(Duration::from_secs(30 * 60));
    passwords
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_policy_counts_code_points_and_refuses_the_obvious() {
    let h = harness();
    let passwords = h.auth.passwords();
    let email: portcullis::Email = "ana.lopez@example.com".parse().unwrap();
    let check = |p: &str, mfa: bool| passwords.check_policy(&Password::new(p), mfa, Some(&email));
    assert!(check("fourteen chars", false).is_err());
    assert!(check("fifteen chars!!", false).is_ok());
    assert!(check("eight ch", true).is_ok(), "8 with a second factor");
    assert!(check("seven c", true).is_err());
    assert!(
        check(&"é".repeat(15).replace("éé", "éa"), false).is_ok(),
        "15 code points"
    );
    assert!(check(&"x".repeat(128).replace("xx", "xy"), false).is_ok());
    assert!(check(&"xy".repeat(65), false).is_err(), "over 128");
    assert!(
        check(&"xy".repeat(10_000), false).is_err(),
        "refused before hashing"
    );
    for obvious in [
        "aaaaaaaaaaaaaaaa",
        "abcdefghijklmnopq",
        "my ana.lopez password",
        "ANA.LOPEZ@EXAMPLE.COM!",
        "portcullis is my password",
    ] {
        let err = check(obvious, false).unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{obvious}");
    }
    // Composition is never required.
    assert!(check("all lower case words here", false).is_ok());
}

#[tokio::test]
async fn a_weaker_hash_is_replaced_at_sign_in() {
    let h = harness();
    // The same password under Argon2id with a quarter of the memory.
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(4096, 2, 1, None).unwrap(),
    )
    .hash_password(GOOD.as_bytes())
    .unwrap()
    .to_string();
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    user.password_hash = Some(PasswordHash::new(weak.clone()));
    h.store.create_user(&user).await.unwrap();
    h.auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
    let stored = h.store.get_user(user.id).await.unwrap().unwrap();
    let stored = stored.password_hash.unwrap();
    assert_ne!(stored.as_str(), weak);
    assert!(
        stored
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    h.auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn changing_a_password_ends_the_other_sessions() {
    let h = harness();
    let first = sign_up(&h, "ana@example.com").await;
    let second = tokens(
        h.auth
            .passwords()
            .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
            .await
            .unwrap(),
    );
    let passwords = h.auth.passwords();
    let new = Password::new("an entirely new passphrase");
    let wrong = passwords
        .change(
            first.user_id,
            &Password::new("not it at all!!"),
            &new,
            None,
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::InvalidCredentials));
    let weak = passwords
        .change(
            first.user_id,
            &Password::new(GOOD),
            &Password::new("short"),
            None,
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(weak.code(), "invalid_input");
    passwords
        .change(
            first.user_id,
            &Password::new(GOOD),
            &new,
            Some(first.session_id),
            &ctx(),
        )
        .await
        .unwrap();
    let tokens_api = h.auth.tokens();
    tokens_api.verify_live(&first.access_token).await.unwrap();
    let ended = tokens_api
        .verify_live(&second.access_token)
        .await
        .unwrap_err();
    assert_eq!(ended.code(), "session_revoked");
    assert!(
        passwords
            .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
            .await
            .is_err()
    );
    passwords
        .sign_in("ana@example.com", &new, &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn with_a_second_factor_a_password_leads_to_the_mfa_step() {
    let h = harness();
    let set = sign_up(&h, "ana@example.com").await;
    support::enable_totp(&h, set.user_id).await;
    let again = h
        .auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
    let SignIn::MfaRequired(challenge) = again else {
        panic!("expected the MFA step, got {again:?}");
    };
    assert_eq!(
        challenge.methods,
        [
            portcullis::MfaMethod::Totp,
            portcullis::MfaMethod::BackupCode
        ]
    );
}

/// Hashes made by other systems' own implementations (Python's hashlib and the `bcrypt`
/// package), for the password "correct horse battery staple".
const IMPORTED: [(&str, &str); 4] = [
    (
        "django",
        "pbkdf2_sha256$10000$Zp5Qh3Kx9Lm2Nw7R$HhSqPupoK8q8WsRzgGzmqC+exVQOxcK3TmmEX7AtatY=",
    ),
    (
        "better-auth",
        "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c:3fb62230312f975f5b6dd332411c08a82787b3826f8e716d7babdf67c02f93ae65416c0110fcb4fae28ca3e1667c1863385f04252bd14961f75cec31d060fd5d",
    ),
    (
        "bcrypt 2b",
        "$2b$04$BNMFsefkMixxzw6zg1pRAeZMrntGyGsRsnfDv20soFHYJ5MsK2wza",
    ),
    (
        "bcrypt 2a",
        "$2a$04$880lhPUm03zxszPnxHuOJeoT8j9/PTtmNdcuqS6d76IYV.qztRBCC",
    ),
];

#[tokio::test]
async fn imported_hashes_sign_in_and_are_rehashed_to_argon2id() {
    let h = harness();
    for (i, (format, imported)) in IMPORTED.into_iter().enumerate() {
        let email = format!("user{i}@example.com");
        let mut user = User::new(UserId::generate(), h.auth.now());
        user.email = Some(email.parse().unwrap());
        user.password_hash = Some(PasswordHash::new(imported));
        h.store.create_user(&user).await.unwrap();
        let passwords = h.auth.passwords();
        let wrong = passwords
            .sign_in(
                &email,
                &Password::new("correct horse battery stapler"),
                &ctx(),
            )
            .await
            .unwrap_err();
        assert!(matches!(wrong, Error::InvalidCredentials), "{format}");
        passwords
            .sign_in(&email, &Password::new(GOOD), &ctx())
            .await
            .unwrap_or_else(|e| panic!("{format}: {e:?}"));
        let stored = h.store.get_user(user.id).await.unwrap().unwrap();
        let stored = stored.password_hash.unwrap();
        assert!(
            stored
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{format} was rehashed"
        );
        passwords
            .sign_in(&email, &Password::new(GOOD), &ctx())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn unknown_and_malformed_stored_hashes_never_match() {
    let h = harness();
    for (i, stored) in [
        "",
        "plaintext: correct horse battery staple",
        "correct horse battery staple",
        "$2b$31$BNMFsefkMixxzw6zg1pRAeZMrntGyGsRsnfDv20soFHYJ5MsK2wza",
        "pbkdf2_sha256$0$salt$HhSqPupoK8q8WsRzgGzmqC+exVQOxcK3TmmEX7AtatY=",
        // The right password, but more PBKDF2 rounds than an import may cost.
        "pbkdf2_sha256$1300000$Zp5Qh3Kx9Lm2Nw7R$wq11UoSckGNCn3qE4HPgXp3gnIeaut28tbxIq7arYjg=",
        "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c:zz",
        "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$md5$whatever",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("odd{i}@example.com");
        let mut user = User::new(UserId::generate(), h.auth.now());
        user.email = Some(email.parse().unwrap());
        user.password_hash = Some(PasswordHash::new(stored));
        h.store.create_user(&user).await.unwrap();
        let err = h
            .auth
            .passwords()
            .sign_in(&email, &Password::new(GOOD), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{stored:?}");
    }
}

#[tokio::test]
async fn a_reset_sets_a_new_password_ends_sessions_and_keeps_the_code_for_a_refused_one() {
    let h = harness();
    let before = sign_up(&h, "ana@example.com").await;
    let passwords = h.auth.passwords();
    let sent = passwords
        .send_reset("ana@example.com", &ctx())
        .await
        .unwrap();
    let mail = h.last_mail().await;
    assert_eq!(mail.message.kind, portcullis::MessageKind::PasswordReset);
    assert!(mail.subject.starts_with("Reset your"), "{}", mail.subject);
    let code = support::code_of(&mail.message);

    // The code is for resets only.
    let err = h
        .auth
        .codes()
        .email()
        .verify(sent.request_id, &code, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
    // A refused password uses nothing.
    let weak = passwords
        .reset(sent.request_id, &code, &Password::new("short"), &ctx())
        .await
        .unwrap_err();
    assert_eq!(weak.code(), "invalid_input");
    let new = Password::new("a brand new passphrase");
    let set = tokens(
        passwords
            .reset(sent.request_id, &code, &new, &ctx())
            .await
            .unwrap(),
    );
    assert_eq!(set.user_id, before.user_id);
    let ended = h
        .auth
        .tokens()
        .verify_live(&before.access_token)
        .await
        .unwrap_err();
    assert_eq!(ended.code(), "session_revoked");
    assert!(
        passwords
            .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
            .await
            .is_err()
    );
    passwords
        .sign_in("ana@example.com", &new, &ctx())
        .await
        .unwrap();
    assert!(
        h.store
            .get_user(set.user_id)
            .await
            .unwrap()
            .unwrap()
            .email_verified,
        "the code proved the address"
    );
    // Used once.
    assert!(
        passwords
            .reset(sent.request_id, &code, &new, &ctx())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn pw19_a_reset_never_bypasses_the_second_factor() {
    let h = harness();
    let set = sign_up(&h, "ana@example.com").await;
    let (secret, _) = support::enable_totp(&h, set.user_id).await;
    let passwords = h.auth.passwords();
    // While the address is unproven (as an application's import may leave it), it cannot
    // reset an account that holds a proven factor: whoever holds the address might not
    // be its owner.
    let mut unproven = h.store.get_user(set.user_id).await.unwrap().unwrap();
    unproven.email_verified = false;
    h.store.update_user(&unproven).await.unwrap();
    let sent = passwords
        .send_reset("ana@example.com", &ctx())
        .await
        .unwrap();
    let code = support::code_of(&h.last_mail().await.message);
    let refused = passwords
        .reset(sent.request_id, &code, &Password::new("eight+ch"), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::InvalidCredentials), "{refused:?}");
    let mut proven = h.store.get_user(set.user_id).await.unwrap().unwrap();
    proven.email_verified = true;
    h.store.update_user(&proven).await.unwrap();

    h.clock.advance(Duration::from_secs(30));
    let sent = passwords
        .send_reset("ana@example.com", &ctx())
        .await
        .unwrap();
    let code = support::code_of(&h.last_mail().await.message);
    let after = passwords
        .reset(sent.request_id, &code, &Password::new("eight+ch"), &ctx())
        .await
        .unwrap();
    let SignIn::MfaRequired(step) = after else {
        panic!("expected the MFA step, got {after:?}");
    };
    // The waiting new hash is sealed: the store holds one Argon2 hash, the current one.
    let dump = String::from_utf8_lossy(&h.store.dump()).into_owned();
    assert_eq!(dump.matches("$argon2id$").count(), 1);
    // Nothing changed yet for someone holding only the mailbox: the old password and the
    // owner's session stand until the second factor is given.
    h.auth
        .tokens()
        .verify_live(&set.access_token)
        .await
        .unwrap();
    passwords
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(30));
    let proof = portcullis::MfaProof::Totp(support::app_code(&h, &secret));
    tokens(
        h.auth
            .mfa()
            .verify(&step.mfa_token, &proof, &ctx())
            .await
            .unwrap(),
    );
    let ended = h
        .auth
        .tokens()
        .verify_live(&set.access_token)
        .await
        .unwrap_err();
    assert_eq!(ended.code(), "session_revoked");
    let old = passwords
        .sign_in("ana@example.com", &Password::new(GOOD), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(old, Error::InvalidCredentials));
    assert!(matches!(
        passwords
            .sign_in("ana@example.com", &Password::new("eight+ch"), &ctx())
            .await
            .unwrap(),
        SignIn::MfaRequired(_)
    ));
}

#[tokio::test]
async fn a_reset_for_an_unknown_address_answers_the_same_and_sends_nothing() {
    let h = harness();
    sign_up(&h, "ana@example.com").await;
    let before = h.mails().await.len();
    let passwords = h.auth.passwords();
    let known = passwords
        .send_reset("ana@example.com", &ctx())
        .await
        .unwrap();
    let unknown = passwords
        .send_reset("nobody@example.com", &ctx())
        .await
        .unwrap();
    assert_eq!(known.expires_in, unknown.expires_in);
    let mails = h.mails().await;
    assert_eq!(mails.len(), before + 1);
    assert_eq!(mails[before].to.as_str(), "ana@example.com");
    assert!(
        h.store
            .get_user_by_email(&"nobody@example.com".parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "a reset creates no account"
    );
}

#[tokio::test]
async fn a_password_list_refuses_common_passwords_everywhere_a_password_is_set() {
    let list = portcullis::PasswordList::from_lines(
        "correct horse battery staple\ntrustno1trustno1\niloveyouiloveyou\n",
    );
    let store = portcullis_memory::MemoryStore::new();
    let mailer = portcullis::testing::CapturingMailer::new();
    let clock = portcullis::ManualClock::fixed();
    let auth = portcullis::Portcullis::builder(portcullis::Config::new("https://app.example.com"))
        .store(store.clone())
        .mailer(mailer.clone())
        .clock(clock.clone())
        .pepper(portcullis::testing::test_pepper())
        .keyring(portcullis::testing::test_keyring())
        .breached_passwords(list)
        .build()
        .unwrap();
    let passwords = auth.passwords();
    let refused = passwords
        .sign_up(
            "ana@example.com",
            &Password::new("Correct Horse Battery Staple"),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_input");
    assert!(refused.to_string().contains("data breach"), "{refused}");
    let fine = Password::new("an uncommon passphrase indeed");
    let sent = passwords
        .sign_up("ana@example.com", &fine, &ctx())
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let code = support::code_of(&mailer.last().unwrap().message);
    let SignIn::Complete(set) = auth
        .sign_ups()
        .confirm(sent.request_id, &code, &ctx())
        .await
        .unwrap()
    else {
        panic!("no MFA yet");
    };
    let change = passwords
        .change(
            set.user_id,
            &fine,
            &Password::new("TrustNo1TrustNo1"),
            None,
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(change.code(), "invalid_input");
    clock.advance(std::time::Duration::from_secs(31));
    let sent = passwords
        .send_reset("ana@example.com", &ctx())
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let code = support::code_of(&mailer.last().unwrap().message);
    let reset = passwords
        .reset(
            sent.request_id,
            &code,
            &Password::new("iloveyouiloveyou"),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(reset.code(), "invalid_input");
    // A refused password left the reset code usable.
    passwords
        .reset(
            sent.request_id,
            &code,
            &Password::new("another fine passphrase"),
            &ctx(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_bundled_common_list_is_on_without_any_checker_and_can_be_turned_off() {
    let build = |refuse_common: bool| {
        let mut config = portcullis::Config::new("https://app.example.com");
        config.passwords.refuse_common = refuse_common;
        portcullis::Portcullis::builder(config)
            .store(portcullis_memory::MemoryStore::new())
            .mailer(portcullis::testing::CapturingMailer::new())
            .pepper(portcullis::testing::test_pepper())
            .keyring(portcullis::testing::test_keyring())
            .build()
            .unwrap()
    };
    // Fifteen characters, but a top-30,000 password with digits added.
    let stretched = Password::new("Baseball1234567");
    let auth = build(true);
    let refused = auth
        .passwords()
        .sign_up("ana@example.com", &stretched, &ctx())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_input");
    assert!(refused.to_string().contains("too common"), "{refused}");
    let off = build(false);
    let signed_up = off
        .passwords()
        .sign_up("ana@example.com", &stretched, &ctx())
        .await;
    assert!(signed_up.is_ok(), "{signed_up:?}");
}

#[tokio::test]
async fn passwords_are_compared_in_nfkc_and_a_hash_of_the_raw_form_is_replaced() {
    let h = harness();
    // "ﬁ" (U+FB01, a ligature) and "é" as "e" + U+0301 are, in NFKC, "fi" and "é".
    let typed_here = "the \u{FB01}ne caf\u{E9} on rue de rivoli";
    let typed_there = "the fine cafe\u{301} on rue de rivoli";
    let set = tokens(
        support::password_sign_up(&h, "ana@example.com", typed_here, &ctx())
            .await
            .unwrap(),
    );
    let signed_in = h
        .auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(typed_there), &ctx())
        .await;
    assert!(
        matches!(signed_in, Ok(SignIn::Complete(_))),
        "{signed_in:?}"
    );

    // A hash made of the raw, unnormalized text (before normalization, or imported)
    // still signs in, and is replaced by the normalized form's.
    use argon2::PasswordHasher;
    let raw = argon2::Argon2::default()
        .hash_password(typed_here.as_bytes())
        .unwrap()
        .to_string();
    let mut user = h.store.get_user(set.user_id).await.unwrap().unwrap();
    user.password_hash = Some(PasswordHash::new(raw.clone()));
    h.store.update_user(&user).await.unwrap();
    h.auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(typed_here), &ctx())
        .await
        .unwrap();
    let replaced = h
        .store
        .get_user(set.user_id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert_ne!(replaced.as_str(), raw);
    h.auth
        .passwords()
        .sign_in("ana@example.com", &Password::new(typed_there), &ctx())
        .await
        .unwrap();
    // Lengths count the stricter of the typed and normalized forms: five ligatures "ﬃ"
    // (fifteen letters in NFKC) are five characters; fifteen of them pass.
    let policy = |text: String| {
        h.auth
            .passwords()
            .check_policy(&Password::new(text), false, None)
    };
    let short = policy("\u{FB03}".repeat(5));
    assert!(short.is_err(), "{short:?}");
    let long = policy("\u{FB03}".repeat(15));
    assert!(long.is_ok(), "{long:?}");
    // Screening sees the normalized form: full-width "ｐａｓｓｗｏｒｄ１２３４５６７８" is a
    // common password stretched with a run.
    let full_width: String = "password12345678"
        .chars()
        .map(|c| char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap())
        .collect();
    let refused = h
        .auth
        .passwords()
        .sign_up("bo@example.com", &Password::new(full_width), &ctx())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("too common"), "{refused}");
}
