//! Magic links: send, peek, verify, resend, status, same-device binding, redirects, and the
//! checklist rows ML-01…ML-11 and ENUM-03 that the engine owns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::net::IpAddr;
use std::time::Duration;

use portcullis::crypto::{CodeVerifier, MagicLinkToken, PollToken};
use portcullis::model::{App, ClientId, Membership, Organization, PasswordHash, User};
use portcullis::store::{OrgStore, SessionStore, UserStore};
use portcullis::testing::race;
use portcullis::tokens::{AuthCodeRequest, CodeExchange, pkce_s256};
use portcullis::{
    Config, DeviceProof, Error, LinkOptions, LinkSent, LinkStatus, Locate, OrgId, RequestContext,
    SignIn, UserId,
};
use support::{Harness, harness, harness_built, harness_with, link_token};

fn ctx() -> RequestContext {
    RequestContext::new()
        .with_ip("203.0.113.7".parse().unwrap())
        .with_user_agent("Firefox/140")
}

use support::tokens;

/// The asking browser's proof of being itself.
fn same_browser(sent: &LinkSent) -> DeviceProof {
    DeviceProof::none().with_poll_token(sent.poll_token.clone())
}

async fn send(h: &Harness, email: &str) -> (LinkSent, MagicLinkToken) {
    let sent = h
        .auth
        .magic_links()
        .send(email, &LinkOptions::new(), &ctx())
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    (sent, token)
}

async fn existing_user(h: &Harness, email: &str) -> User {
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some(email.parse().unwrap());
    h.store.create_user(&user).await.unwrap();
    user
}

#[tokio::test]
async fn a_link_signs_up_a_new_address_and_marks_it_verified() {
    let h = harness();
    let (sent, token) = send(&h, "New.Person@Example.com").await;
    let mail = h.last_mail().await;
    assert_eq!(mail.to.as_str(), "new.person@example.com");
    let link = mail.message.link.as_ref().unwrap().secret().to_owned();
    assert!(
        link.starts_with("https://app.example.com/magic-link?token="),
        "{link}"
    );
    assert!(
        mail.html
            .unwrap()
            .contains("href=\"https://app.example.com/magic-link?token=")
    );
    assert_eq!(sent.expires_in, Duration::from_secs(600));

    let set = tokens(
        h.auth
            .magic_links()
            .verify(&token, &same_browser(&sent), &ctx())
            .await
            .unwrap(),
    );
    let user = h.store.get_user(set.user_id).await.unwrap().unwrap();
    assert_eq!(user.email.unwrap().as_str(), "new.person@example.com");
    assert!(user.email_verified);
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(claims.amr, vec!["email"]);
    let log = h
        .auth
        .audit()
        .login_log(set.user_id, &Default::default())
        .await
        .unwrap();
    let kinds: Vec<_> = log.items.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["sign_in", "sign_up"]);
}

#[tokio::test]
async fn ml01_tokens_are_256_bit_and_unique() {
    let h = harness();
    let mut seen = std::collections::HashSet::new();
    for i in 0..20 {
        h.clock.advance(Duration::from_secs(60));
        let (_, token) = send(&h, &format!("u{i}@example.com")).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.secret())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(seen.insert(token.secret().to_owned()));
    }
}

#[tokio::test]
async fn enum03_known_and_unknown_addresses_get_the_same_answer() {
    for sign_up in [true, false] {
        let mut config = Config::new("https://app.example.com");
        config.passwordless.sign_up = sign_up;
        let h = harness_with(config);
        existing_user(&h, "known@example.com").await;
        let links = h.auth.magic_links();
        let known = links
            .send("known@example.com", &LinkOptions::new(), &ctx())
            .await
            .unwrap();
        let unknown = links
            .send("unknown@example.com", &LinkOptions::new(), &ctx())
            .await
            .unwrap();
        // Same fields, same sizes, same lifetime: nothing tells them apart.
        let shape = |s: &LinkSent| {
            (
                s.request_id.to_string().len(),
                s.poll_token.secret().len(),
                s.device_code.as_ref().map(|c| c.secret().len()),
                s.expires_in,
            )
        };
        assert_eq!(shape(&known), shape(&unknown));
        // Both requests poll the same way.
        for sent in [&known, &unknown] {
            let status = links
                .status(sent.request_id, &sent.poll_token, &ctx())
                .await
                .unwrap();
            assert!(matches!(status, LinkStatus::Pending));
        }
        let recipients: Vec<_> = h.mails().await.into_iter().map(|m| m.to).collect();
        match sign_up {
            true => assert_eq!(recipients.len(), 2),
            false => assert_eq!(
                recipients.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                ["known@example.com"],
                "with sign-up off an unknown address receives nothing"
            ),
        }
    }
}

/// A mailer that holds every message until released: a send that waited for it would
/// never return.
#[derive(Debug, Clone)]
struct Held {
    release: std::sync::Arc<tokio::sync::Semaphore>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl portcullis::Mailer for Held {
    async fn send(&self, _: &portcullis::EmailMessage) -> Result<(), portcullis::DeliveryError> {
        self.release.acquire().await.unwrap().forget();
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn enum03_sending_does_not_wait_for_the_mailer() {
    let mut config = Config::new("https://app.example.com");
    config.passwordless.sign_up = false;
    let store = portcullis_memory::MemoryStore::new();
    let held = Held {
        release: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        sent: Default::default(),
    };
    let auth = portcullis::Portcullis::builder(config)
        .store(store.clone())
        .mailer(held.clone())
        .pepper(portcullis::testing::test_pepper())
        .keyring(portcullis::testing::test_keyring())
        .build()
        .unwrap();
    let mut known = User::new(UserId::generate(), auth.now());
    known.email = Some("known@example.com".parse().unwrap());
    store.create_user(&known).await.unwrap();
    let mut blocked = User::new(UserId::generate(), auth.now());
    blocked.email = Some("blocked@example.com".parse().unwrap());
    blocked.blocked = true;
    store.create_user(&blocked).await.unwrap();

    for email in [
        "known@example.com",
        "unknown@example.com",
        "blocked@example.com",
    ] {
        // Returns although the known address's message is stuck in the mailer.
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            auth.magic_links().send(email, &LinkOptions::new(), &ctx()),
        )
        .await
        .expect("send returned without waiting for the mailer")
        .unwrap();
        assert_eq!(sent.expires_in, Duration::from_secs(600));
    }
    assert_eq!(held.sent.load(std::sync::atomic::Ordering::SeqCst), 0);
    held.release.add_permits(10);
    auth.flush_deliveries().await;
    assert_eq!(
        held.sent.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the known, unblocked account got mail"
    );
}

/// The application's answer to "where is this address?": here, one documentation network
/// is a known town and everything else unknown.
#[derive(Debug)]
struct OneTown;

impl Locate for OneTown {
    fn place(&self, ip: IpAddr) -> Option<String> {
        match ip {
            IpAddr::V4(v4) if v4.octets()[..3] == [203, 0, 113] => {
                Some("Springfield, Freedonia".to_owned())
            }
            _ => None,
        }
    }
}

// ML-11: a device code defends only if the person asked to type it can tell that someone
// else asked, so the confirm step learns who asked: browser, place (from the application's
// hook), address and time.
#[tokio::test]
async fn ml11_peek_tells_who_asked_browser_place_and_time() {
    let h = harness_built(Config::new("https://app.example.com"), |b| {
        b.locate(OneTown)
    });
    let asked_at = h.auth.now();
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                  Gecko) Chrome/138.0.0.0 Safari/537.36";
    let links = h.auth.magic_links();
    links
        .send(
            "ana@example.com",
            &LinkOptions::new(),
            &ctx().with_user_agent(chrome),
        )
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    h.clock.advance(Duration::from_secs(90));
    let peek = links.peek(&token, &DeviceProof::none()).await.unwrap();
    assert_eq!(
        peek.requested_by.browser().as_deref(),
        Some("Chrome on Windows")
    );
    assert_eq!(peek.place.as_deref(), Some("Springfield, Freedonia"));
    assert_eq!(peek.requested_by.ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(
        peek.requested_by.at, asked_at,
        "when it was asked, not when peeked"
    );

    // An address the hook does not know, and no hook at all: no place, the rest as before.
    let elsewhere = RequestContext::new().with_ip("198.51.100.1".parse().unwrap());
    links
        .send("bo@example.com", &LinkOptions::new(), &elsewhere)
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    let peek = links.peek(&token, &DeviceProof::none()).await.unwrap();
    assert_eq!(peek.place, None);
    assert_eq!(peek.requested_by.browser(), None, "no user agent, no label");
    let plain = harness();
    let (_, token) = send(&plain, "cy@example.com").await;
    let peek = plain
        .auth
        .magic_links()
        .peek(&token, &DeviceProof::none())
        .await
        .unwrap();
    assert_eq!(peek.place, None, "no hook: no place");
}

/// A hook's answer reaches a page: it is cut short and loses control characters.
#[derive(Debug)]
struct Rambling;

impl Locate for Rambling {
    fn place(&self, _: IpAddr) -> Option<String> {
        Some(format!("Far\u{1b}[31m\naway{}", "x".repeat(10_000)))
    }
}

#[tokio::test]
async fn a_hooks_place_is_bounded_and_printable() {
    let h = harness_built(Config::new("https://app.example.com"), |b| {
        b.locate(Rambling)
    });
    let (_, token) = send(&h, "ana@example.com").await;
    let peek = h
        .auth
        .magic_links()
        .peek(&token, &DeviceProof::none())
        .await
        .unwrap();
    let place = peek.place.unwrap();
    assert!(place.starts_with("Far [31m away"), "{place:?}");
    assert!(
        place.chars().count() <= portcullis::LinkPeek::MAX_PLACE,
        "{}",
        place.len()
    );
    assert!(!place.chars().any(char::is_control), "{place:?}");
}

#[tokio::test]
async fn ml10_peek_consumes_nothing_and_verify_consumes_once() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let links = h.auth.magic_links();
    h.clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        let peek = links.peek(&token, &DeviceProof::none()).await.unwrap();
        assert_eq!(peek.expires_in, Duration::from_secs(540));
        assert!(
            peek.needs_device_code,
            "another browser needs the device code"
        );
        assert_eq!(peek.requested_by.user_agent.as_deref(), Some("Firefox/140"));
        assert_eq!(peek.requested_by.ip, Some("203.0.113.7".parse().unwrap()));
    }
    let peek = links.peek(&token, &same_browser(&sent)).await.unwrap();
    assert!(!peek.needs_device_code);

    links
        .verify(&token, &same_browser(&sent), &ctx())
        .await
        .unwrap();
    for again in [
        links
            .verify(&token, &same_browser(&sent), &ctx())
            .await
            .err(),
        links.peek(&token, &same_browser(&sent)).await.err(),
    ] {
        assert!(matches!(again, Some(Error::InvalidToken)), "{again:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ml02_sixteen_concurrent_verifies_open_exactly_one_session() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let auth = h.auth.clone();
    let results = race(16, |_| {
        let auth = auth.clone();
        let token = token.clone();
        let proof = same_browser(&sent);
        async move { auth.magic_links().verify(&token, &proof, &ctx()).await }
    })
    .await;
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::InvalidToken)),
        "{results:?}"
    );
    let user = h
        .store
        .get_user_by_email(&"ana@example.com".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let sessions = h
        .store
        .list_user_sessions(user.id, h.auth.now())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn ml11_another_browser_needs_the_device_code_of_the_asking_tab() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let links = h.auth.magic_links();
    let device_code = sent.device_code.clone().expect("binding is on by default");
    assert_eq!(device_code.secret().len(), 6);
    let phone = RequestContext::new().with_user_agent("Safari/iPhone");

    let err = links
        .verify(&token, &DeviceProof::none(), &phone)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("device_code"), "{err}");

    let wrong = DeviceProof::none().with_device_code("000000".to_owned().into());
    let wrong = if device_code.secret() == "000000" {
        DeviceProof::none().with_device_code("111111".to_owned().into())
    } else {
        wrong
    };
    assert!(matches!(
        links.verify(&token, &wrong, &phone).await,
        Err(Error::InvalidCredentials)
    ));
    // A poll token of another request does not make this browser the asking one.
    let (other, _) = send(&h, "bo@example.com").await;
    let foreign = DeviceProof::none().with_poll_token(other.poll_token.clone());
    assert!(
        links
            .peek(&token, &foreign)
            .await
            .unwrap()
            .needs_device_code
    );

    // The status stays pending until the link is used, and only the poll token reads it.
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    assert!(matches!(status, LinkStatus::Pending));
    let stolen = links
        .status(sent.request_id, &other.poll_token, &ctx())
        .await;
    assert!(matches!(stolen, Err(Error::InvalidToken)));

    let right = DeviceProof::none().with_device_code(device_code);
    let phone_set = tokens(links.verify(&token, &right, &phone).await.unwrap());

    // The asking tab collects its own session, once.
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    let LinkStatus::Verified(sign_in) = status else {
        panic!("expected verified, got {status:?}");
    };
    let tab_set = tokens(sign_in);
    assert_eq!(tab_set.user_id, phone_set.user_id);
    assert_ne!(tab_set.session_id, phone_set.session_id);
    let again = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    assert!(matches!(again, LinkStatus::Expired));
}

#[tokio::test]
async fn wrong_device_codes_spend_the_link() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let links = h.auth.magic_links();
    let right = sent.device_code.clone().unwrap();
    let wrong = format!(
        "{:06}",
        (right.secret().parse::<u32>().unwrap() + 1) % 1_000_000
    );
    for _ in 0..5 {
        let proof = DeviceProof::none().with_device_code(wrong.clone().into());
        let err = links.verify(&token, &proof, &ctx()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    }
    let proof = DeviceProof::none().with_device_code(right);
    assert!(matches!(
        links.verify(&token, &proof, &ctx()).await,
        Err(Error::InvalidToken)
    ));
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    assert!(matches!(status, LinkStatus::Expired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_polling_delivers_the_session_exactly_once() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let links = h.auth.magic_links();
    links
        .verify(&token, &same_browser(&sent), &ctx())
        .await
        .unwrap();
    let auth = h.auth.clone();
    let results = race(16, |_| {
        let auth = auth.clone();
        let poll = sent.poll_token.clone();
        let id = sent.request_id;
        async move { auth.magic_links().status(id, &poll, &ctx()).await.unwrap() }
    })
    .await;
    let verified = results
        .iter()
        .filter(|s| matches!(s, LinkStatus::Verified(_)))
        .count();
    assert_eq!(verified, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|s| matches!(s, LinkStatus::Verified(_) | LinkStatus::Expired))
    );
}

#[tokio::test]
async fn without_binding_any_browser_may_open_the_link() {
    let mut config = Config::new("https://app.example.com");
    config.passwordless.bind_device = false;
    let h = harness_with(config);
    let (sent, token) = send(&h, "ana@example.com").await;
    assert!(sent.device_code.is_none());
    let links = h.auth.magic_links();
    assert!(
        !links
            .peek(&token, &DeviceProof::none())
            .await
            .unwrap()
            .needs_device_code
    );
    links
        .verify(&token, &DeviceProof::none(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn resend_kills_the_earlier_link_and_respects_the_cooldown() {
    let h = harness();
    let (sent, first) = send(&h, "ana@example.com").await;
    let links = h.auth.magic_links();

    let err = links.resend(sent.request_id, &ctx()).await.unwrap_err();
    let Error::RateLimited { retry_after } = err else {
        panic!("expected the cooldown, got {err:?}");
    };
    assert_eq!(retry_after, Duration::from_secs(30));
    assert_eq!(h.mails().await.len(), 1, "refused before anything was sent");

    h.clock.advance(Duration::from_secs(30));
    let resent = links.resend(sent.request_id, &ctx()).await.unwrap();
    assert_eq!(resent.request_id, sent.request_id);
    let second = link_token(&h.last_mail().await);
    assert_eq!(h.mails().await.len(), 2);

    let proof = same_browser(&sent);
    assert!(matches!(
        links.verify(&first, &proof, &ctx()).await,
        Err(Error::InvalidToken)
    ));
    // The poll token and the device code still belong to the request.
    links.verify(&second, &proof, &ctx()).await.unwrap();
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    assert!(matches!(status, LinkStatus::Verified(_)));
    assert!(matches!(
        links.resend(sent.request_id, &ctx()).await,
        Err(Error::Expired)
    ));
}

#[tokio::test]
async fn sends_per_address_are_limited_whatever_the_account() {
    let h = harness();
    let links = h.auth.magic_links();
    for i in 0..5 {
        h.clock.advance(Duration::from_secs(31));
        links
            .send("nobody@example.com", &LinkOptions::new(), &ctx())
            .await
            .unwrap_or_else(|e| panic!("send {i}: {e:?}"));
    }
    h.clock.advance(Duration::from_secs(31));
    let err = links
        .send("nobody@example.com", &LinkOptions::new(), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(h.mails().await.len(), 5);
}

#[tokio::test]
async fn ml03_links_expire() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    h.clock.advance(Duration::from_secs(600));
    let links = h.auth.magic_links();
    assert!(matches!(
        links.verify(&token, &same_browser(&sent), &ctx()).await,
        Err(Error::InvalidToken)
    ));
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx())
        .await
        .unwrap();
    assert!(matches!(status, LinkStatus::Expired));
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_invalid_tokens() {
    let h = harness();
    let links = h.auth.magic_links();
    for token in ["", "x", &"a".repeat(5000), "%00", "../../etc/passwd"] {
        let token = MagicLinkToken::new(token);
        assert!(matches!(
            links.verify(&token, &DeviceProof::none(), &ctx()).await,
            Err(Error::InvalidToken)
        ));
    }
    let unknown = links
        .status(
            portcullis::model::RequestId::generate(),
            &PollToken::new("p"),
            &ctx(),
        )
        .await
        .unwrap();
    assert!(matches!(unknown, LinkStatus::Expired));
    let bad = links
        .send("not-an-email", &LinkOptions::new(), &ctx())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "invalid_input");
}

#[tokio::test]
async fn a_blocked_account_receives_nothing_and_gets_the_same_answer() {
    let h = harness();
    let mut user = existing_user(&h, "blocked@example.com").await;
    user.blocked = true;
    h.store.update_user(&user).await.unwrap();
    h.auth
        .magic_links()
        .send("blocked@example.com", &LinkOptions::new(), &ctx())
        .await
        .unwrap();
    assert!(h.mails().await.is_empty());
}

#[tokio::test]
async fn proving_an_address_takes_it_off_an_account_with_strong_factors() {
    let h = harness();
    // Someone set up an account on ana's address, never proven, with a passkey and TOTP.
    let user = existing_user(&h, "ana@example.com").await;
    let now = h.auth.now();
    let passkey = portcullis::model::PasskeyCredential {
        id: portcullis::model::CredentialId::new(vec![7u8; 16]).unwrap(),
        user_id: user.id,
        name: "their key".into(),
        passkey: vec![1, 2, 3],
        counter: 0,
        backup_eligible: false,
        backup_state: false,
        registered_with_uv: true,
        created_at: now,
        last_used_at: None,
        rp_id: None,
    };
    h.store.add_passkey(&passkey).await.unwrap();
    let factor = portcullis::model::TotpFactor {
        id: portcullis::model::FactorId::generate(),
        user_id: user.id,
        secret: h
            .auth
            .danger()
            .keyring()
            .seal(b"0123456789abcdefghij", b"aad")
            .unwrap(),
        status: portcullis::model::FactorStatus::Active,
        last_step: None,
        created_at: now,
    };
    h.store.put_totp_factor(&factor).await.unwrap();

    let (sent, token) = send(&h, "ana@example.com").await;
    let set = tokens(
        h.auth
            .magic_links()
            .verify(&token, &same_browser(&sent), &ctx())
            .await
            .unwrap(),
    );
    // Ana gets a fresh account with her address; the other keeps its factors, not her
    // address, and neither can reach the other.
    assert_ne!(set.user_id, user.id);
    let ana = h.store.get_user(set.user_id).await.unwrap().unwrap();
    assert_eq!(ana.email.unwrap().as_str(), "ana@example.com");
    assert!(ana.email_verified);
    let theirs = h.store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!(theirs.email, None);
    assert_eq!(h.store.list_passkeys(user.id).await.unwrap().len(), 1);
    assert_eq!(h.store.list_totp_factors(user.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unproven_email_on_an_account_with_a_verified_phone_goes_to_its_prover() {
    let h = harness();
    // An account proven by its phone, with someone else's address typed in, unproven.
    let mut user = existing_user(&h, "typo@example.com").await;
    user.phone = Some("+15550109999".parse().unwrap());
    user.phone_verified = true;
    user.password_hash = Some(PasswordHash::new(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    ));
    h.store.update_user(&user).await.unwrap();
    let owner = tokens(
        h.auth
            .complete_first_factor(user.id, portcullis::AuthMethod::Sms, None, &ctx())
            .await
            .unwrap(),
    );

    let (sent, token) = send(&h, "typo@example.com").await;
    let set = tokens(
        h.auth
            .magic_links()
            .verify(&token, &same_browser(&sent), &ctx())
            .await
            .unwrap(),
    );
    assert_ne!(set.user_id, user.id, "the address's owner signs up anew");
    let kept = h.store.get_user(user.id).await.unwrap().unwrap();
    assert!(
        kept.password_hash.is_some(),
        "the phone owner's password stays"
    );
    assert_eq!(kept.email, None, "the unproven address left their account");
    h.auth
        .tokens()
        .verify_live(&owner.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_blocked_account_is_refused_before_anything_changes() {
    let h = harness();
    let (sent, token) = send(&h, "ana@example.com").await;
    let mut user = existing_user(&h, "ana@example.com").await;
    user.password_hash = Some(PasswordHash::new("$argon2id$v=19$x"));
    user.blocked = true;
    h.store.update_user(&user).await.unwrap();
    let err = h
        .auth
        .magic_links()
        .verify(&token, &same_browser(&sent), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    let after = h.store.get_user(user.id).await.unwrap().unwrap();
    assert!(after.password_hash.is_some() && !after.email_verified);
}

#[tokio::test]
async fn a_lockout_never_refuses_a_right_link_to_the_owners_mailbox() {
    let mut config = Config::new("https://app.example.com");
    config.ttl.magic_link = Duration::from_secs(3600);
    let h = harness_with(config);
    let (sent, token) = send(&h, "ana@example.com").await;
    // Ten wrong email codes from this client spend its budget for ana's account.
    let email = h.auth.codes().email();
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(30));
        let request = email.send("ana@example.com", &ctx()).await.unwrap();
        let code = support::code_of(&h.last_mail().await.message);
        let wrong = portcullis::crypto::OneTimeCode::new(format!(
            "{:06}",
            (code.secret().parse::<u32>().unwrap() + 1) % 1_000_000
        ));
        for _ in 0..5 {
            assert!(
                email
                    .verify(request.request_id, &wrong, &ctx())
                    .await
                    .is_err()
            );
        }
    }
    // The client is locked out of ana's codes (RL-01)…
    h.clock.advance(Duration::from_secs(30));
    let request = email.send("ana@example.com", &ctx()).await.unwrap();
    let code = support::code_of(&h.last_mail().await.message);
    let err = email
        .verify(request.request_id, &code, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    // …but a link to her mailbox is no guess: the lockout must not keep her out (RL-07).
    let signed_in = h
        .auth
        .magic_links()
        .verify(&token, &same_browser(&sent), &ctx())
        .await
        .unwrap();
    assert!(matches!(signed_in, portcullis::SignIn::Complete(_)));
}

#[tokio::test]
async fn verifying_an_email_clears_a_password_set_before_it_was_proven() {
    let h = harness();
    // Someone registered ana's address with their own password and never proved it.
    let mut user = existing_user(&h, "ana@example.com").await;
    user.password_hash = Some(PasswordHash::new(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    ));
    h.store.update_user(&user).await.unwrap();
    let squatter = h
        .auth
        .complete_first_factor(user.id, portcullis::AuthMethod::Password, None, &ctx())
        .await
        .unwrap();
    let squatter = tokens(squatter);

    let backup = h
        .auth
        .danger()
        .hasher()
        .hash(portcullis::crypto::SecretPurpose::BackupCode, b"theirs");
    h.store
        .replace_backup_codes(user.id, &[backup])
        .await
        .unwrap();
    let mut with_phone = h.store.get_user(user.id).await.unwrap().unwrap();
    with_phone.phone = Some("+15550100000".parse().unwrap());
    h.store.update_user(&with_phone).await.unwrap();

    let (sent, token) = send(&h, "ana@example.com").await;
    let set = tokens(
        h.auth
            .magic_links()
            .verify(&token, &same_browser(&sent), &ctx())
            .await
            .unwrap(),
    );
    assert_eq!(
        set.user_id, user.id,
        "nothing proven on it: the account is ana's"
    );
    let user = h.store.get_user(user.id).await.unwrap().unwrap();
    assert!(user.email_verified);
    assert!(
        user.password_hash.is_none(),
        "the squatter's password is gone"
    );
    assert_eq!(user.phone, None, "and their unproven phone");
    assert_eq!(h.store.count_backup_codes(user.id).await.unwrap(), 0);
    let err = h
        .auth
        .tokens()
        .verify_live(&squatter.access_token)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "session_revoked",
        "the squatter's session ended"
    );
    h.auth
        .tokens()
        .verify_live(&set.access_token)
        .await
        .unwrap();
}

async fn client_org(h: &Harness) -> OrgId {
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
    let app = App {
        client_id: ClientId::new("web-app").unwrap(),
        org_id: org.id,
        name: "Web".into(),
        secret_hash: None,
        redirect_uris: vec!["https://app.example.com/callback".into()],
        created_at: h.auth.now(),
        client: Default::default(),
    };
    h.store.create_app(&app).await.unwrap();
    org.id
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn redirect(uri: &str) -> Result<AuthCodeRequest, Error> {
    AuthCodeRequest::new(
        ClientId::new("web-app").unwrap(),
        uri,
        pkce_s256(VERIFIER),
        "S256",
    )
}

#[tokio::test]
async fn ml08_only_a_registered_redirect_is_accepted() {
    let h = harness();
    client_org(&h).await;
    let links = h.auth.magic_links();
    for uri in [
        "http://malicious.com",
        "https://app.example.com.evil.com/callback",
        "//evil.com",
        "https:evil.com",
        "/\\evil.com",
        "javascript:alert(1)",
        "https://app.example.com/callback/../evil",
        "https://app.example.com/callback?next=https://evil.com",
        "https://APP.example.com/callback",
        "https://app.example.com/callback#x",
    ] {
        let refused = match redirect(uri) {
            Err(err) => err,
            Ok(request) => links
                .send(
                    "ana@example.com",
                    &LinkOptions::new().with_redirect(request),
                    &ctx(),
                )
                .await
                .unwrap_err(),
        };
        assert_eq!(refused.code(), "invalid_input", "{uri}");
    }
    assert!(
        h.mails().await.is_empty(),
        "nothing was sent for a bad redirect"
    );
}

#[tokio::test]
async fn a_redirect_flow_ends_in_an_auth_code_for_the_client() {
    let h = harness();
    let org = client_org(&h).await;
    let request = redirect("https://app.example.com/callback").unwrap();
    let links = h.auth.magic_links();
    let sent = links
        .send(
            "ana@example.com",
            &LinkOptions::new().with_redirect(request),
            &ctx(),
        )
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    let SignIn::Code(code) = links
        .verify(&token, &same_browser(&sent), &ctx())
        .await
        .unwrap()
    else {
        panic!("expected an authorization code");
    };
    let set = h
        .auth
        .tokens()
        .exchange_code(
            &CodeExchange {
                code,
                code_verifier: CodeVerifier::new(VERIFIER),
                client_id: ClientId::new("web-app").unwrap(),
                redirect_uri: "https://app.example.com/callback".into(),
                client_secret: None,
            },
            &ctx(),
        )
        .await
        .unwrap();
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert_eq!(
        claims.org,
        Some(org),
        "the new user joined the client's organization"
    );
    let member: Option<Membership> = h.store.get_membership(set.user_id, org).await.unwrap();
    assert!(member.is_some());
}

#[tokio::test]
async fn the_link_path_comes_from_configuration() {
    let mut config = Config::new("https://login.example.com");
    config.passwordless.link_path = "/auth/confirm".into();
    let h = harness_with(config);
    h.auth
        .magic_links()
        .send("ana@example.com", &LinkOptions::new(), &ctx())
        .await
        .unwrap();
    let mail = h.last_mail().await;
    let link = mail.message.link.as_ref().unwrap().secret();
    assert!(
        link.starts_with("https://login.example.com/auth/confirm?token="),
        "{link}"
    );
}
