//! What portcullis's tests and benches share (`publish = false`): an engine on the memory
//! adapter or on a real sled directory with a manual clock and capturing delivery
//! ([`Harness`]), the request context and sign-in helpers every test file used to copy,
//! the tests' own WebAuthn authenticator, attack scenarios written once for every
//! adapter, and for single sign-on a real OpenID provider ([`idp`]) and a real DNS server
//! ([`dns`]) on loopback.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Runs each scenario `async fn name<S>(h: Harness<S>)` of the test file on every durable
/// and in-memory adapter: as `on_memory::name`, `on_sled::name` (the file imports `harness`
/// and `sled_harness`) and `on_postgres::name` (a fresh schema on the test server; skipped
/// loudly without one, failed under CI).
#[macro_export]
macro_rules! on_both_adapters {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::harness()).await })*
        }
        mod on_sled {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::sled_harness()).await })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(h) = $crate::pg_harness().await {
                    super::$name(h).await
                }
            })*
        }
    };
}

pub mod authenticator;
pub mod dns;
pub mod fake_op;
pub mod idp;
pub mod postgres;
pub mod rp;
pub mod saml;
pub mod saml_idp;
pub mod scenarios;

use portcullis::{RequestContext, SignIn, TokenSet};

/// The request context of a test that does not care where it comes from.
pub fn ctx() -> RequestContext {
    RequestContext::new()
        .with_ip([198, 51, 100, 7].into())
        .with_user_agent("portcullis-tests/1.0")
}

/// The tokens of a sign-in that needed no second factor.
pub fn tokens(sign_in: SignIn) -> TokenSet {
    match sign_in {
        SignIn::Complete(tokens) => tokens,
        other => panic!("expected tokens, got {other:?}"),
    }
}

use portcullis::testing::{CapturingMailer, CapturingSms, test_keyring, test_pepper};
use portcullis::{Config, ManualClock, Portcullis, PortcullisBuilder};
use portcullis_memory::MemoryStore;

/// An engine and the handles a test needs to drive and observe it, on the memory adapter
/// or (`Harness<SledStore>`) on a real sled directory.
pub struct Harness<S = MemoryStore> {
    pub auth: Portcullis,
    pub clock: ManualClock,
    pub store: S,
    pub mailer: CapturingMailer,
    pub sms: CapturingSms,
    /// The sled directory, removed with the harness.
    pub dir: Option<tempfile::TempDir>,
}

/// A harness with `config`, its clock stopped at 2026-01-01T00:00:00Z.
pub fn harness_with(config: Config) -> Harness {
    harness_built(config, |builder| builder)
}

/// A harness with `config` and whatever else `extra` sets on the builder (an optional
/// policy such as a [`Locate`](portcullis::Locate)).
pub fn harness_built(
    config: Config,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Harness {
    harness_on(
        MemoryStore::new(),
        ManualClock::fixed(),
        config,
        None,
        extra,
    )
}

/// As [`harness_built`], with the manual clock starting at the real time now: for tests
/// that talk to outside parts that read the real clock (an OpenID provider's `iat`).
pub fn harness_now(
    config: Config,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Harness {
    use portcullis::Clock as _;
    let now = portcullis::SystemClock.now();
    harness_on(
        MemoryStore::new(),
        ManualClock::new(now),
        config,
        None,
        extra,
    )
}

/// A harness on a fresh sled directory, with the default configuration.
pub fn sled_harness() -> Harness<portcullis_sled::SledStore> {
    sled_harness_with(Config::new("https://app.example.com"))
}

/// A harness on a fresh sled directory, with `config`.
pub fn sled_harness_with(config: Config) -> Harness<portcullis_sled::SledStore> {
    sled_harness_built(config, |builder| builder)
}

/// A harness on a fresh sled directory, with `config` and whatever else `extra` sets.
pub fn sled_harness_built(
    config: Config,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Harness<portcullis_sled::SledStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let clock = ManualClock::fixed();
    let store = portcullis_sled::SledStore::open(dir.path()).expect("sled opens");
    harness_on(store, clock, config, Some(dir), extra)
}

/// A harness on a fresh schema of the test PostgreSQL, with the default configuration;
/// `None` (after a loud message) when the server is absent outside CI.
pub async fn pg_harness() -> Option<Harness<portcullis_postgres::PgStore>> {
    pg_harness_built(Config::new("https://app.example.com"), |builder| builder).await
}

/// A harness on a fresh schema of the test PostgreSQL, with `config` and whatever else
/// `extra` sets.
pub async fn pg_harness_built(
    config: Config,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Option<Harness<portcullis_postgres::PgStore>> {
    let store = postgres::store().await?;
    Some(harness_on(store, ManualClock::fixed(), config, None, extra))
}

/// A harness on `store` (opened by the caller, e.g. a sled directory reopened to test a
/// restart) with `clock`, `config` and whatever else `extra` sets.
pub fn harness_at<S: portcullis::store::Storage + Clone + 'static>(
    store: S,
    clock: ManualClock,
    config: Config,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Harness<S> {
    harness_on(store, clock, config, None, extra)
}

fn harness_on<S: portcullis::store::Storage + Clone + 'static>(
    store: S,
    clock: ManualClock,
    config: Config,
    dir: Option<tempfile::TempDir>,
    extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) -> Harness<S> {
    let mailer = CapturingMailer::new();
    let sms = CapturingSms::new();
    let builder = Portcullis::builder(config)
        .store(store.clone())
        .mailer(mailer.clone())
        .sms(sms.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring());
    let auth = extra(builder).build().expect("test engine builds");
    Harness {
        auth,
        clock,
        store,
        mailer,
        sms,
        dir,
    }
}

/// A harness with the default configuration for `https://app.example.com`.
pub fn harness() -> Harness {
    harness_with(Config::new("https://app.example.com"))
}

impl<S> Harness<S> {
    /// Every email sent so far, once background deliveries are done.
    pub async fn mails(&self) -> Vec<portcullis::EmailMessage> {
        self.auth.flush_deliveries().await;
        self.mailer.sent()
    }

    /// The newest email, once background deliveries are done.
    pub async fn last_mail(&self) -> portcullis::EmailMessage {
        self.mails().await.pop().expect("an email was sent")
    }

    /// Every text sent so far, once background deliveries are done.
    pub async fn texts(&self) -> Vec<portcullis::SmsMessage> {
        self.auth.flush_deliveries().await;
        self.sms.sent()
    }
}

/// The token in a magic-link email.
pub fn link_token(mail: &portcullis::EmailMessage) -> portcullis::crypto::MagicLinkToken {
    let link = mail
        .message
        .link
        .as_ref()
        .expect("the email carries a link");
    let url = url::Url::parse(link.secret()).expect("the link is a URL");
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .expect("the link has a token")
        .1
        .into_owned();
    portcullis::crypto::MagicLinkToken::new(token)
}

/// The code in a one-time-code email or text.
pub fn code_of(message: &portcullis::Message) -> portcullis::crypto::OneTimeCode {
    message.code.clone().expect("the message carries a code")
}

/// The raw secret of a TOTP enrolment.
pub fn base32_decode(text: &str) -> Vec<u8> {
    portcullis::mfa::totp::decode_base32(text).unwrap().to_vec()
}

/// What an authenticator app holding `secret` shows at the engine's current time.
pub fn app_code<S>(h: &Harness<S>, secret: &[u8]) -> portcullis::crypto::OneTimeCode {
    let now = h.auth.now().unix_secs() as u64;
    portcullis::crypto::OneTimeCode::new(
        portcullis::mfa::totp::code_at(secret, now, "SHA1", 6).unwrap(),
    )
}

/// Enrols and confirms TOTP for `user`: the app's secret and the backup codes.
pub async fn enable_totp<S>(
    h: &Harness<S>,
    user: portcullis::UserId,
) -> (Vec<u8>, Vec<portcullis::crypto::BackupCode>) {
    let ctx = portcullis::RequestContext::new();
    let totp = h.auth.mfa().totp();
    let enrollment = totp.enroll(user, &ctx).await.unwrap();
    let secret = base32_decode(&enrollment.secret_base32);
    let codes = totp
        .confirm(user, &app_code(h, &secret), &ctx)
        .await
        .unwrap();
    (secret, codes)
}

/// `password` hashed at the engine's policy (Argon2id, m = 19 456 KiB, t = 2, p = 1), as an
/// import would bring it: for accounts made outside the engine, such as ones whose
/// password sign-up would refuse (a common one).
pub fn policy_hash(password: &str) -> portcullis::model::PasswordHash {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let params = Params::new(
        portcullis::flows::password::M_COST,
        portcullis::flows::password::T_COST,
        portcullis::flows::password::P_COST,
        None,
    )
    .expect("the policy's parameters");
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("Argon2id hashes")
        .to_string();
    portcullis::model::PasswordHash::new(hash)
}

/// Signs `email` up with `password` and finishes with the code emailed for it: the new
/// account's sign-in.
pub async fn password_sign_up<S>(
    h: &Harness<S>,
    email: &str,
    password: &str,
    ctx: &portcullis::RequestContext,
) -> Result<portcullis::SignIn, portcullis::Error> {
    let password = portcullis::crypto::Password::new(password);
    let sent = h.auth.passwords().sign_up(email, &password, ctx).await?;
    confirm_sign_up(h, &sent, ctx).await
}

/// Finishes the sign-up `sent` started (a password's, or a passkey's
/// `PasskeyRegistered::pending`) with the code emailed for it.
pub async fn confirm_sign_up<S>(
    h: &Harness<S>,
    sent: &portcullis::Sent,
    ctx: &portcullis::RequestContext,
) -> Result<portcullis::SignIn, portcullis::Error> {
    let mail = h
        .mails()
        .await
        .into_iter()
        .rev()
        .find(|m| m.message.request_id == sent.request_id)
        .expect("a code was emailed for the sign-up");
    let signed_in = h
        .auth
        .sign_ups()
        .confirm(sent.request_id, &code_of(&mail.message), ctx)
        .await;
    // Past the send cooldown, so the test's next message to the address goes out.
    let cooldown = h.auth.config().limits.send_cooldown;
    h.clock
        .advance(cooldown + std::time::Duration::from_secs(1));
    signed_in
}
