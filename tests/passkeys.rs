//! Passkeys: real WebAuthn ceremonies with webauthn-authenticator-rs's `SoftPasskey`, and
//! the corners with the tests' own authenticator (`support::authenticator`): single-use
//! ceremonies, origins, user verification, credential ids unique under racing, cloned
//! authenticators, discoverable sign-in and user handles, plausible answers for unknown
//! users, and passkey management (SECURITY-CHECKLIST 2.6, WA-*).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::collections::HashSet;
use std::time::Duration;

use portcullis::crypto::{CeremonyToken, LoginToken, RegistrationToken};
use portcullis::flows::passkey::{CreationChallengeResponse, RequestChallengeResponse};
use portcullis::model::{
    AuthEventKind, CredentialId, OrgId, Organization, PageRequest, User, UserId,
};
use portcullis::store::{OrgStore, UserStore};
use portcullis::testing::{race, test_keyring, test_pepper};
use portcullis::{
    CeremonyStatus, Config, Error, PasskeyRegistered, Portcullis, Registrant, SignIn,
    UserVerification,
};
use support::authenticator::{BE, BS, TestKey, UP, UV};
use support::{Harness, enable_totp, harness, harness_with};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "https://app.example.com";

use support::ctx;

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

use support::tokens;

fn new_user(email: &str) -> Registrant {
    Registrant::NewUser {
        email: email.parse().unwrap(),
        name: Some("Ana".into()),
    }
}

/// Starts a registration for `who` and answers it with `key`.
async fn register_with(
    h: &Harness,
    who: Registrant,
    key: &mut TestKey,
) -> Result<PasskeyRegistered, Error> {
    let passkeys = h.auth.passkeys();
    let (token, options) = passkeys.start_registration(who, &ctx()).await.unwrap();
    passkeys
        .finish_registration(&token, &key.register(&options), None, &ctx())
        .await
}

/// Signs up `email` with `key`: the new account's id and its sign-in.
async fn sign_up(h: &Harness, email: &str, key: &mut TestKey) -> (UserId, SignIn) {
    let registered = register_with(h, new_user(email), key).await.unwrap();
    let sign_in = confirmed(h, &registered).await;
    let user = h
        .store
        .get_passkey(&registered.passkey.id)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    (user, sign_in)
}

/// Finishes a passkey sign-up with the code emailed for it.
async fn confirmed(h: &Harness, registered: &PasskeyRegistered) -> SignIn {
    let pending = registered
        .pending
        .as_ref()
        .expect("a sign-up waits for its code");
    support::confirm_sign_up(h, pending, &ctx()).await.unwrap()
}

/// Starts a passkey sign-up for `email`.
async fn start_sign_up(h: &Harness, email: &str) -> (RegistrationToken, CreationChallengeResponse) {
    h.auth
        .passkeys()
        .start_registration(new_user(email), &ctx())
        .await
        .unwrap()
}

async fn start_login(
    h: &Harness,
    identifier: Option<&str>,
) -> (LoginToken, RequestChallengeResponse) {
    h.auth
        .passkeys()
        .start_login(identifier, &ctx())
        .await
        .unwrap()
}

/// Starts a sign-in (by `name`, or discoverable with `None`) and answers it with `key`.
async fn login_with(h: &Harness, name: Option<&str>, key: &mut TestKey) -> Result<SignIn, Error> {
    let (token, options) = start_login(h, name).await;
    h.auth
        .passkeys()
        .finish_login(&token, &key.sign(&options), &ctx())
        .await
}

/// Refused as a wrong credential is: nothing told.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::InvalidCredentials)),
        "{result:?}"
    );
}

async fn claims_of(h: &Harness, sign_in: SignIn) -> portcullis::tokens::Claims {
    let set = tokens(sign_in);
    h.auth.tokens().verify(&set.access_token).await.unwrap()
}

#[tokio::test]
async fn soft_passkey_signs_up_and_signs_in_and_its_counter_rises() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut soft = SoftPasskey::new(true);

    let (token, options) = start_sign_up(&h, "ana@example.com").await;
    assert_eq!(
        passkeys.status(&token).await.unwrap(),
        CeremonyStatus::Pending
    );
    let answer = soft.do_registration(origin(), options).unwrap();
    let registered = passkeys
        .finish_registration(&token, &answer, Some("Soft key"), &ctx())
        .await
        .unwrap();
    assert_eq!(
        passkeys.status(&token).await.unwrap(),
        CeremonyStatus::Completed
    );
    assert_eq!(registered.passkey.name, "Soft key");
    let claims = claims_of(&h, confirmed(&h, &registered).await).await;
    assert!(claims.amr.contains(&"user".to_owned()), "{:?}", claims.amr);
    assert_eq!(claims.acr, "aal2");
    let user = h.store.get_user(claims.sub).await.unwrap().unwrap();
    assert!(user.email_verified, "the emailed code proved the mailbox");

    let mut counters = Vec::new();
    for _ in 0..3 {
        let (token, options) = start_login(&h, Some("ana@example.com")).await;
        let assertion = soft.do_authentication(origin(), options).unwrap();
        let claims = claims_of(
            &h,
            passkeys
                .finish_login(&token, &assertion, &ctx())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(claims.sub, user.id);
        assert_eq!(
            claims.acr, "aal2",
            "a verified passkey is two factors: no MFA step"
        );
        let stored = h
            .store
            .get_passkey(&registered.passkey.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.last_used_at, Some(h.auth.now()));
        counters.push(stored.counter);
    }
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "{counters:?}");
}

#[tokio::test]
async fn wa09_an_authenticator_that_does_not_verify_the_user_cannot_register() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    // The soft authenticator without user verification will not even answer.
    let (_, options) = start_sign_up(&h, "ana@example.com").await;
    assert!(
        SoftPasskey::new(false)
            .do_registration(origin(), options)
            .is_err()
    );
    // One that answers without the UV flag is refused.
    let (token, options) = start_sign_up(&h, "ana@example.com").await;
    let mut unverified = TestKey::new(ORIGIN);
    unverified.flags = UP;
    let answer = unverified.register(&options);
    let refused = passkeys
        .finish_registration(&token, &answer, None, &ctx())
        .await;
    assert_refused(refused);
    assert_eq!(
        passkeys.status(&token).await.unwrap(),
        CeremonyStatus::Failed
    );
    assert!(
        h.store
            .get_user_by_email(&"ana@example.com".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // Nor sign in with an assertion that lacks UV.
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "bo@example.com", &mut key).await;
    key.flags = UP;
    assert_refused(login_with(&h, Some("bo@example.com"), &mut key).await);
}

#[tokio::test]
async fn wa02_one_assertion_signs_in_once_and_a_failed_ceremony_is_spent() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut key).await;

    let (token, options) = start_login(&h, Some("ana@example.com")).await;
    let assertion = key.sign(&options);
    passkeys
        .finish_login(&token, &assertion, &ctx())
        .await
        .unwrap();
    let replay = passkeys.finish_login(&token, &assertion, &ctx()).await;
    assert!(matches!(replay, Err(Error::Expired)), "{replay:?}");
    // Replayed into a new ceremony, its challenge is wrong (WA-04).
    let (other, _) = start_login(&h, Some("ana@example.com")).await;
    let replay = passkeys.finish_login(&other, &assertion, &ctx()).await;
    assert_refused(replay);

    // A failed answer spends the ceremony: the right one afterwards finds nothing.
    let (token, options) = start_login(&h, Some("ana@example.com")).await;
    let mut tampered = key.sign(&options);
    tampered.response.signature[10] ^= 1;
    let fresh = key.sign(&options);
    let refused = passkeys.finish_login(&token, &tampered, &ctx()).await;
    assert_refused(refused);
    assert_eq!(
        passkeys.status(&token).await.unwrap(),
        CeremonyStatus::Failed
    );
    let late = passkeys.finish_login(&token, &fresh, &ctx()).await;
    assert!(matches!(late, Err(Error::Expired)), "{late:?}");
}

#[tokio::test]
async fn wa02_ceremonies_expire_with_their_timeout() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut key = TestKey::new(ORIGIN);
    let (token, options) = start_sign_up(&h, "ana@example.com").await;
    let options_json = serde_json::to_value(&options).unwrap();
    assert_eq!(options_json["publicKey"]["timeout"], 300_000);
    h.clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(
        passkeys.status(&token).await.unwrap(),
        CeremonyStatus::Expired
    );
    let late = passkeys
        .finish_registration(&token, &key.register(&options), None, &ctx())
        .await;
    assert!(matches!(late, Err(Error::Expired)), "{late:?}");
    let unknown = passkeys.status(&CeremonyToken::new("nope")).await.unwrap();
    assert_eq!(unknown, CeremonyStatus::Expired);
}

#[tokio::test]
async fn wa05_origins_are_matched_exactly() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut key).await;
    for wrong in [
        "http://app.example.com",
        "https://evil.com",
        "https://app.example.com.evil.com",
        "https://sub.app.example.com",
        "https://app.example.com:8443",
    ] {
        key.origin = wrong.to_owned();
        let refused = login_with(&h, Some("ana@example.com"), &mut key).await;
        assert!(
            matches!(refused, Err(Error::InvalidCredentials)),
            "{wrong}: {refused:?}"
        );

        let mut other = TestKey::new(wrong);
        let refused = register_with(&h, new_user("eve@example.com"), &mut other).await;
        assert!(
            matches!(refused, Err(Error::InvalidCredentials)),
            "{wrong}: {refused:?}"
        );
    }
    key.origin = ORIGIN.to_owned();
    login_with(&h, Some("ana@example.com"), &mut key)
        .await
        .unwrap();

    // What configuration adds is accepted, and only that.
    let mut config = Config::new(ORIGIN);
    config.passkeys.extra_origins = vec!["https://eu.app.example.com".into()];
    let h = harness_with(config);
    let mut key = TestKey::new("https://eu.app.example.com");
    sign_up(&h, "ana@example.com", &mut key).await;
    login_with(&h, Some("ana@example.com"), &mut key)
        .await
        .unwrap();
    key.origin = "https://us.app.example.com".into();
    assert_refused(login_with(&h, Some("ana@example.com"), &mut key).await);
}

#[tokio::test]
async fn wa03_wa07_wa08_wa10_malformed_assertions_are_refused() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut key).await;
    type Spoil = fn(&mut TestKey);
    let cases: [(&str, Spoil); 4] = [
        ("swapped client data type", |k| {
            k.client_data_type = Some("webauthn.create".into())
        }),
        ("no user presence", |k| k.flags = UV),
        ("backed up but not eligible", |k| k.flags = UP | UV | BS),
        ("backup eligibility changed", |k| k.flags = UP | UV | BE),
    ];
    for (case, spoil) in cases {
        let mut spoiled = key.clone_key();
        spoiled.counter = key.counter + 100;
        spoil(&mut spoiled);
        let refused = login_with(&h, Some("ana@example.com"), &mut spoiled).await;
        assert!(
            matches!(refused, Err(Error::InvalidCredentials)),
            "{case}: {refused:?}"
        );
    }
    // An RP id hash for another site (WA-07).
    let (token, options) = start_login(&h, Some("ana@example.com")).await;
    let mut json = serde_json::to_value(&options).unwrap();
    json["publicKey"]["rpId"] = "evil.com".into();
    let foreign: RequestChallengeResponse = serde_json::from_value(json).unwrap();
    let refused = passkeys
        .finish_login(&token, &key.sign(&foreign), &ctx())
        .await;
    assert_refused(refused);
    // Registration with the wrong client data type.
    let mut other = TestKey::new(ORIGIN);
    other.client_data_type = Some("webauthn.get".into());
    let refused = register_with(&h, new_user("bo@example.com"), &mut other).await;
    assert_refused(refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wa13_a_credential_id_is_registered_once_under_16_racing_registrations() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    // In an organization, so a half-made account would also leave a membership behind.
    let org = Organization {
        id: OrgId::generate(),
        name: "Acme".into(),
        slug: "acme".into(),
        domains: vec![],
        settings: serde_json::Value::Null,
        created_at: h.auth.now(),
        updated_at: h.auth.now(),
        revision: 0,
    };
    h.store.create_org(&org).await.unwrap();
    let in_org = ctx().with_org(org.id);
    let shared_id = TestKey::new(ORIGIN).credential_id;
    let mut answers = Vec::new();
    for i in 0..16 {
        let (token, options) = passkeys
            .start_registration(new_user(&format!("racer{i}@example.com")), &in_org)
            .await
            .unwrap();
        let mut key = TestKey::new(ORIGIN);
        key.credential_id = shared_id.clone();
        answers.push((token, key.register(&options)));
    }
    // Each finish waits for its address's code; the credential is bound when it comes.
    let mut confirms = Vec::new();
    for (token, answer) in &answers {
        let registered = passkeys
            .finish_registration(token, answer, None, &in_org)
            .await
            .unwrap();
        let pending = registered.pending.unwrap();
        let mail = h
            .mails()
            .await
            .into_iter()
            .find(|m| m.message.request_id == pending.request_id)
            .unwrap();
        confirms.push((pending.request_id, support::code_of(&mail.message)));
    }
    let confirms = std::sync::Arc::new(confirms);
    let auth = h.auth.clone();
    let results = race(16, move |i| {
        let (auth, confirms) = (auth.clone(), confirms.clone());
        async move {
            let (request, code) = &confirms[i];
            auth.sign_ups()
                .confirm(*request, code, &ctx())
                .await
                .map(|_| ())
        }
    })
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for result in &results {
        if let Err(err) = result {
            assert!(
                matches!(err, Error::Conflict { what: "credential" }),
                "{err:?}"
            );
        }
    }
    // The losers' half-made accounts were undone.
    let mut accounts = 0;
    for i in 0..16 {
        let email = format!("racer{i}@example.com").parse().unwrap();
        accounts += h.store.get_user_by_email(&email).await.unwrap().is_some() as usize;
    }
    assert_eq!(accounts, 1);
    let members = h
        .store
        .list_members(org.id, &PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1, "no membership outlives its account");

    // A signed-in user cannot take over someone's credential id either.
    let mut victim_key = TestKey::new(ORIGIN);
    sign_up(&h, "victim@example.com", &mut victim_key).await;
    let (_, sign_in) = sign_up(&h, "mallory@example.com", &mut TestKey::new(ORIGIN)).await;
    let session = tokens(sign_in).session_id;
    let (token, options) = passkeys
        .start_registration(Registrant::Session(session), &ctx())
        .await
        .unwrap();
    let mut copy = TestKey::new(ORIGIN);
    copy.credential_id = victim_key.credential_id.clone();
    let refused = passkeys
        .finish_registration(&token, &copy.register(&options), None, &ctx())
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict { what: "credential" })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn wa14_a_credential_id_over_1023_bytes_is_refused() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    key.credential_id = vec![7; 1024];
    let refused = register_with(&h, new_user("ana@example.com"), &mut key).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        h.store
            .get_user_by_email(&"ana@example.com".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn wa12_a_cloned_authenticator_is_refused_and_logged() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut key = TestKey::new(ORIGIN);
    let (user, _) = sign_up(&h, "ana@example.com", &mut key).await;
    let mut clone = key.clone_key();
    login_with(&h, Some("ana@example.com"), &mut key)
        .await
        .unwrap();

    // The clone reports the counter the original already used.
    assert_refused(login_with(&h, Some("ana@example.com"), &mut clone).await);
    let log = h
        .auth
        .audit()
        .login_log(user, &PageRequest::first(20))
        .await
        .unwrap();
    assert!(
        log.items
            .iter()
            .any(|e| e.kind == AuthEventKind::SignInFailed
                && e.reason.as_deref() == Some("possible_cloned_authenticator")),
        "{:?}",
        log.items
    );
    let stored = h
        .store
        .get_passkey(&CredentialId::new(key.credential_id.clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.counter, key.counter,
        "a refused sign-in changes nothing"
    );

    // Synced passkeys keep no counter (0 every time): that is no regression.
    let mut synced = TestKey::new(ORIGIN);
    synced.counter_step = 0;
    synced.flags = UP | UV | BE | BS;
    sign_up(&h, "bo@example.com", &mut synced).await;
    for _ in 0..3 {
        let (token, options) = start_login(&h, Some("bo@example.com")).await;
        let claims = claims_of(
            &h,
            passkeys
                .finish_login(&token, &synced.sign(&options), &ctx())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(claims.amr, ["swk", "user"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_sign_ins_with_one_counter_value_succeed_once() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut key).await;
    let mut answers = Vec::new();
    for _ in 0..8 {
        let (token, options) = start_login(&h, Some("ana@example.com")).await;
        let mut twin = key.clone_key();
        answers.push((token, twin.sign(&options)));
    }
    let answers = std::sync::Arc::new(answers);
    let auth = h.auth.clone();
    let results = race(8, move |i| {
        let (auth, answers) = (auth.clone(), answers.clone());
        async move {
            let (token, answer) = &answers[i];
            auth.passkeys()
                .finish_login(token, answer, &ctx())
                .await
                .is_ok()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
}

#[tokio::test]
async fn discoverable_sign_in_needs_the_owners_user_handle() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut soft = SoftPasskey::new(true);
    let (token, options) = start_sign_up(&h, "ana@example.com").await;
    let handle = serde_json::to_value(&options).unwrap()["publicKey"]["user"]["id"].clone();
    let handle = portcullis_b64(handle.as_str().unwrap());
    assert_eq!(handle.len(), 32, "WA-16: a 32-byte handle");
    let answer = soft.do_registration(origin(), options).unwrap();
    let registered = passkeys
        .finish_registration(&token, &answer, None, &ctx())
        .await
        .unwrap();
    let user = claims_of(&h, confirmed(&h, &registered).await).await.sub;
    assert!(
        !handle.windows(16).any(|w| w == user.as_bytes()),
        "the handle is not the id"
    );

    let (token, options) = start_login(&h, None).await;
    assert!(options.public_key.allow_credentials.is_empty());
    // A browser finds the resident credential itself; the soft authenticator needs its id
    // and returns no user handle, so the test client fills both in (neither is signed).
    let mut client_view = options.clone();
    client_view.public_key.allow_credentials =
        vec![webauthn_rs_core_allow(registered.passkey.id.as_bytes())];
    let mut assertion = soft
        .do_authentication(origin(), client_view.clone())
        .unwrap();
    assertion.response.user_handle = Some(handle.clone());
    let claims = claims_of(
        &h,
        passkeys
            .finish_login(&token, &assertion, &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(claims.sub, user);

    // Without a user handle, or with someone else's, a discoverable sign-in fails (WA-15).
    for bad in [None, Some(vec![0u8; 32])] {
        let (token, options) = start_login(&h, None).await;
        let mut client_view = options.clone();
        client_view.public_key.allow_credentials =
            vec![webauthn_rs_core_allow(registered.passkey.id.as_bytes())];
        let mut assertion = soft.do_authentication(origin(), client_view).unwrap();
        assertion.response.user_handle = bad;
        let refused = passkeys.finish_login(&token, &assertion, &ctx()).await;
        assert_refused(refused);
    }
}

fn portcullis_b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

fn webauthn_rs_core_allow(id: &[u8]) -> webauthn_rs_core::proto::AllowCredentials {
    webauthn_rs_core::proto::AllowCredentials {
        type_: "public-key".into(),
        id: id.to_vec(),
        transports: None,
    }
}

#[tokio::test]
async fn wa15_a_user_name_first_ceremony_accepts_only_that_users_passkeys() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut ana = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut ana).await;
    let mut bo = TestKey::new(ORIGIN);
    sign_up(&h, "bo@example.com", &mut bo).await;
    assert_refused(login_with(&h, Some("ana@example.com"), &mut bo).await);
    // Ana's credential with Bo's user handle.
    let (token, options) = start_login(&h, Some("ana@example.com")).await;
    let mut assertion = ana.sign(&options);
    assertion.response.user_handle = bo.user_handle.clone();
    let refused = passkeys.finish_login(&token, &assertion, &ctx()).await;
    assert_refused(refused);
}

#[tokio::test]
async fn wa17_unknown_names_get_plausible_stable_options() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    sign_up(&h, "ana@example.com", &mut key).await;
    let shape = |options: &RequestChallengeResponse| {
        let json = serde_json::to_value(options).unwrap();
        let mut keys: Vec<String> = json["publicKey"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        let allow = json["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .clone();
        for entry in &allow {
            let mut fields: Vec<&String> = entry.as_object().unwrap().keys().collect();
            fields.sort();
            assert_eq!(
                fields,
                ["id", "type"],
                "no transport hints to tell real from fake"
            );
        }
        keys
    };
    let (_, known) = start_login(&h, Some("ana@example.com")).await;
    let mut seen = HashSet::new();
    for name in [
        "nobody@example.com",
        "someone-else@example.org",
        "a@b.co",
        "+14155550123",
    ] {
        let (_, first) = start_login(&h, Some(name)).await;
        let (_, second) = start_login(&h, Some(name)).await;
        assert_eq!(shape(&first), shape(&known), "{name}");
        let ids = |o: &RequestChallengeResponse| -> Vec<Vec<u8>> {
            o.public_key
                .allow_credentials
                .iter()
                .map(|c| c.id.clone())
                .collect()
        };
        assert_eq!(
            ids(&first),
            ids(&second),
            "{name}: the same fake ids every time"
        );
        for id in ids(&first) {
            assert!((16..=128).contains(&id.len()), "{name}: a realistic length");
            seen.insert(id);
        }
        assert_ne!(first.public_key.challenge, second.public_key.challenge);
    }
    assert!(!seen.is_empty(), "some unknown name got fake credentials");
    // Spellings of one name get one answer, as they would for an account.
    let spellings = [
        "+1 415-555-0199",
        "+14155550199",
        "NoBody@Example.com",
        "nobody@example.com",
    ];
    for pair in spellings.chunks(2) {
        let (_, a) = start_login(&h, Some(pair[0])).await;
        let (_, b) = start_login(&h, Some(pair[1])).await;
        let ids = |o: &RequestChallengeResponse| -> Vec<Vec<u8>> {
            o.public_key
                .allow_credentials
                .iter()
                .map(|c| c.id.clone())
                .collect()
        };
        assert_eq!(ids(&a), ids(&b), "{pair:?}");
    }
    // Someone's own registered passkey answers a named ceremony only for that name: for
    // an unknown name, a blocked account and another account alike, it is refused.
    let mut mallory = TestKey::new(ORIGIN);
    sign_up(&h, "mallory@example.com", &mut mallory).await;
    let (blocked_id, _) = sign_up(&h, "blocked@example.com", &mut TestKey::new(ORIGIN)).await;
    let mut blocked = h.store.get_user(blocked_id).await.unwrap().unwrap();
    blocked.blocked = true;
    h.store.update_user(&blocked).await.unwrap();
    for name in [
        "nobody@example.com",
        "blocked@example.com",
        "ana@example.com",
    ] {
        let answer = login_with(&h, Some(name), &mut mallory).await;
        assert!(
            matches!(answer, Err(Error::InvalidCredentials)),
            "{name}: {answer:?}"
        );
    }
    // A failure for an unknown name and for a bad signature read the same.
    let (token, options) = start_login(&h, Some("nobody@example.com")).await;
    let mut stranger = TestKey::new(ORIGIN);
    let unknown = h
        .auth
        .passkeys()
        .finish_login(&token, &stranger.sign(&options), &ctx())
        .await;
    let (token, options) = start_login(&h, Some("ana@example.com")).await;
    let mut bad = key.sign(&options);
    bad.response.signature[12] ^= 1;
    let wrong = h.auth.passkeys().finish_login(&token, &bad, &ctx()).await;
    assert_eq!(unknown.unwrap_err().code(), wrong.unwrap_err().code());
}

#[tokio::test]
async fn wa01_challenges_are_32_random_bytes() {
    let h = harness();
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let (_, options) = start_login(&h, None).await;
        let challenge: Vec<u8> = options.public_key.challenge.to_vec();
        assert_eq!(challenge.len(), 32);
        assert!(seen.insert(challenge));
    }
}

#[tokio::test]
async fn wa21_adding_a_passkey_needs_a_recent_sign_in_and_excludes_existing_ones() {
    let h = harness();
    let passkeys = h.auth.passkeys();
    let mut first = TestKey::new(ORIGIN);
    let (user, sign_in) = sign_up(&h, "ana@example.com", &mut first).await;
    let session = tokens(sign_in).session_id;

    let (token, options) = passkeys
        .start_registration(Registrant::Session(session), &ctx())
        .await
        .unwrap();
    let excluded: Vec<Vec<u8>> = options_excluded(&options);
    assert_eq!(excluded, [first.credential_id.clone()]);
    let mut second = TestKey::new(ORIGIN);
    h.clock.advance(Duration::from_secs(1));
    let registered = passkeys
        .finish_registration(&token, &second.register(&options), Some("Laptop"), &ctx())
        .await
        .unwrap();
    assert!(
        registered.pending.is_none(),
        "a signed-in user's passkey is made at once"
    );
    assert_eq!(second.user_handle, first.user_handle, "one handle per user");
    let names: Vec<String> = passkeys
        .list(user)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Passkey", "Laptop"]);
    let log = h
        .auth
        .audit()
        .login_log(user, &PageRequest::first(20))
        .await
        .unwrap();
    assert_eq!(
        log.items
            .iter()
            .filter(|e| e.kind == AuthEventKind::FactorAdded)
            .count(),
        2
    );

    // Eleven minutes later the sign-in is too old to bind another.
    h.clock.advance(Duration::from_secs(11 * 60));
    let stale = passkeys
        .start_registration(Registrant::Session(session), &ctx())
        .await;
    assert!(matches!(stale, Err(Error::ReauthRequired)), "{stale:?}");
    // A revoked session cannot either.
    let (_, fresh) = start_and_sign_in(&h, &mut second).await;
    let fresh = tokens(fresh).session_id;
    h.auth.sessions().revoke(user, fresh, &ctx()).await.unwrap();
    let revoked = passkeys
        .start_registration(Registrant::Session(fresh), &ctx())
        .await;
    assert!(matches!(revoked, Err(Error::SessionRevoked)), "{revoked:?}");
}

async fn start_and_sign_in(h: &Harness, key: &mut TestKey) -> (LoginToken, SignIn) {
    let (token, options) = start_login(h, Some("ana@example.com")).await;
    let sign_in = h
        .auth
        .passkeys()
        .finish_login(&token, &key.sign(&options), &ctx())
        .await
        .unwrap();
    (token, sign_in)
}

fn options_excluded(options: &CreationChallengeResponse) -> Vec<Vec<u8>> {
    options
        .public_key
        .exclude_credentials
        .iter()
        .flatten()
        .map(|c| c.id.to_vec())
        .collect()
}

#[tokio::test]
async fn sign_up_answers_a_taken_address_alike_and_can_be_turned_off() {
    let h = harness();
    sign_up(&h, "ana@example.com", &mut TestKey::new(ORIGIN)).await;
    // Starting and finishing answer as for any address (no account oracle, ENUM-03); the
    // owner hears of it, and no code for the request makes an account.
    let (_, unknown) = start_sign_up(&h, "bo@example.com").await;
    let (_, known) = start_sign_up(&h, "ana@example.com").await;
    let shape = |o: &CreationChallengeResponse| {
        let mut json = serde_json::to_value(o).unwrap();
        let key = &mut json["publicKey"];
        key["challenge"] = serde_json::Value::Null;
        key["user"] = serde_json::Value::Null;
        json
    };
    assert_eq!(shape(&unknown), shape(&known));
    let taken = register_with(&h, new_user("ana@example.com"), &mut TestKey::new(ORIGIN))
        .await
        .unwrap();
    let pending = taken.pending.expect("answered like a free address");
    let notice = h.last_mail().await;
    assert_eq!(notice.message.kind, portcullis::MessageKind::SignUpAttempt);
    let refused = h
        .auth
        .sign_ups()
        .confirm(
            pending.request_id,
            &portcullis::crypto::OneTimeCode::new("123456"),
            &ctx(),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidCredentials)),
        "{refused:?}"
    );
    assert_eq!(
        h.store
            .list_passkeys(
                h.store
                    .get_user_by_email(&"ana@example.com".parse().unwrap())
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            )
            .await
            .unwrap()
            .len(),
        1
    );

    let mut config = Config::new(ORIGIN);
    config.passwordless.sign_up = false;
    let h = harness_with(config);
    let off = h
        .auth
        .passkeys()
        .start_registration(new_user("bo@example.com"), &ctx())
        .await;
    assert!(matches!(off, Err(Error::Forbidden)), "{off:?}");
}

#[tokio::test]
async fn without_user_verification_a_passkey_is_one_factor() {
    let mut config = Config::new(ORIGIN);
    config.passkeys.user_verification = UserVerification::Preferred;
    let h = harness_with(config);
    let mut key = TestKey::new(ORIGIN);
    key.flags = UP;
    let (user, sign_in) = sign_up(&h, "ana@example.com", &mut key).await;
    let claims = claims_of(&h, sign_in).await;
    assert_eq!(
        (claims.amr, claims.acr.as_str()),
        (vec!["hwk".to_owned()], "aal1")
    );

    // With TOTP on, the MFA step follows.
    enable_totp(&h, user).await;
    let next = login_with(&h, Some("ana@example.com"), &mut key)
        .await
        .unwrap();
    assert!(matches!(next, SignIn::MfaRequired(_)), "{next:?}");
}

/// WA-09: under `Preferred`, a passkey registered without user verification that later
/// asserts it stays one factor (no aal2, and the MFA step for a user with TOTP); one
/// registered with it is two factors.
#[tokio::test]
async fn wa09_a_passkey_registered_without_uv_stays_one_factor_when_it_asserts_uv() {
    let mut config = Config::new(ORIGIN);
    config.passkeys.user_verification = UserVerification::Preferred;
    let h = harness_with(config);
    support::scenarios::a_passkey_registered_without_uv_stays_one_factor(&h).await;
}

#[tokio::test]
async fn wa22_rename_and_delete_and_the_last_way_in_stays() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    let (user, signed_up) = sign_up(&h, "ana@example.com", &mut key).await;
    // An engine over the same store that sends no mail: the passkey is the only way in.
    let auth = Portcullis::builder(Config::new(ORIGIN))
        .store(h.store.clone())
        .clock(h.clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let passkeys = auth.passkeys();
    let id = passkeys.list(user).await.unwrap()[0].id.clone();

    passkeys.rename(user, &id, "  Phone  ").await.unwrap();
    assert_eq!(passkeys.list(user).await.unwrap()[0].name, "Phone");
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
        let refused = passkeys.rename(user, &id, bad).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{bad:?}: {refused:?}"
        );
    }
    let stranger = UserId::generate();
    assert!(matches!(
        passkeys.rename(stranger, &id, "Mine").await,
        Err(Error::NotFound { .. })
    ));

    let last = passkeys.delete(user, &id, &ctx()).await;
    assert!(
        matches!(
            last,
            Err(Error::Conflict {
                what: "last_sign_in_method"
            })
        ),
        "{last:?}"
    );
    assert!(matches!(
        passkeys.delete(stranger, &id, &ctx()).await,
        Err(Error::NotFound { .. })
    ));

    // With a second passkey the first can go, and it no longer signs in.
    let session = match signed_up {
        SignIn::Complete(t) => t.session_id,
        other => panic!("{other:?}"),
    };
    let (token, options) = passkeys
        .start_registration(Registrant::Session(session), &ctx())
        .await
        .unwrap();
    let mut spare = TestKey::new(ORIGIN);
    passkeys
        .finish_registration(&token, &spare.register(&options), None, &ctx())
        .await
        .unwrap();
    passkeys.delete(user, &id, &ctx()).await.unwrap();
    let (token, options) = passkeys
        .start_login(Some("ana@example.com"), &ctx())
        .await
        .unwrap();
    let refused = passkeys
        .finish_login(&token, &key.sign(&options), &ctx())
        .await;
    assert_refused(refused);
    let (token, options) = passkeys
        .start_login(Some("ana@example.com"), &ctx())
        .await
        .unwrap();
    passkeys
        .finish_login(&token, &spare.sign(&options), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_blocked_user_cannot_sign_in_with_a_passkey() {
    let h = harness();
    let mut key = TestKey::new(ORIGIN);
    let (user_id, _) = sign_up(&h, "ana@example.com", &mut key).await;
    let mut user: User = h.store.get_user(user_id).await.unwrap().unwrap();
    user.blocked = true;
    h.store.update_user(&user).await.unwrap();
    // Discoverable, since a user-name-first ceremony would not even offer the passkey.
    assert_refused(login_with(&h, None, &mut key).await);
}
