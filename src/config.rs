//! [`Config`]: everything the engine is told, with defaults that are safe, checked once by
//! [`PortcullisBuilder::build`](crate::PortcullisBuilder::build).

use std::time::Duration;

use url::Url;

use crate::Error;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The engine's configuration. Start from [`Config::new`] and change what you need;
/// secrets (pepper, encryption keys) are given to the builder, not kept here.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The public origin of the application (`https://app.example.com`): links are built
    /// from it (never from a request's `Host`) and WebAuthn checks it. `http` is accepted
    /// only for `localhost`, `127.0.0.1` and `[::1]`.
    pub public_origin: String,
    /// The `iss` of issued tokens. Defaults to the public origin.
    pub issuer: String,
    /// The `aud` of issued access tokens. Defaults to the public origin.
    pub audience: String,
    /// The WebAuthn relying-party id: the origin's host or a parent domain of it with at
    /// least one dot (`example.com` for `login.example.com`; browsers also refuse public
    /// suffixes such as `co.uk`). `None` uses the origin's host.
    pub rp_id: Option<String>,
    /// The relying party's name, shown by authenticators.
    pub rp_name: String,
    /// How long things live.
    pub ttl: Ttl,
    /// One-time code shape.
    pub codes: CodePolicy,
    /// Rate limits and attempt budgets.
    pub limits: Limits,
    /// Access-token signing and verification.
    pub tokens: TokenPolicy,
    /// Magic links and one-time codes.
    pub passwordless: Passwordless,
    /// The SMS pumping guard.
    pub sms: SmsPolicy,
    /// What a password must be.
    pub passwords: PasswordPolicy,
    /// Which second factors the MFA step offers besides TOTP and backup codes.
    pub mfa: MfaPolicy,
    /// WebAuthn: accepted origins and what registrations ask authenticators for.
    pub passkeys: PasskeyPolicy,
    /// Attack protection beyond the budgets of [`Limits`]: address lists, lockout notices,
    /// when bot checks are asked for, proof of work.
    pub protection: Protection,
}

impl Config {
    /// A configuration for an app served at `public_origin`, with default lifetimes and
    /// limits.
    pub fn new(public_origin: impl Into<String>) -> Self {
        let public_origin = public_origin.into();
        Config {
            issuer: public_origin.clone(),
            audience: public_origin.clone(),
            public_origin,
            rp_id: None,
            rp_name: "portcullis".into(),
            ttl: Ttl::default(),
            codes: CodePolicy::default(),
            limits: Limits::default(),
            tokens: TokenPolicy::default(),
            passwordless: Passwordless::default(),
            sms: SmsPolicy::default(),
            passwords: PasswordPolicy::default(),
            mfa: MfaPolicy::default(),
            passkeys: PasskeyPolicy::default(),
            protection: Protection::default(),
        }
    }

    /// Checks every field and resolves the derived ones.
    pub(crate) fn validate(self) -> Result<ValidConfig, Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        let origin = parse_origin(&self.public_origin)?;
        let host = origin.host_str().unwrap_or_default().to_owned();
        let rp_id = self.rp_id.clone().unwrap_or_else(|| host.clone());
        let parent = host.ends_with(&format!(".{rp_id}")) && rp_id.contains('.');
        if rp_id != host && !parent {
            return bad(format!(
                "rp_id {rp_id:?} must be the origin's host {host:?} or a parent domain of it"
            ));
        }
        if self.issuer.trim().is_empty() || self.audience.trim().is_empty() {
            return bad("issuer and audience must not be empty".into());
        }
        if self.rp_name.trim().is_empty() {
            return bad("rp_name must not be empty".into());
        }
        self.ttl.validate()?;
        self.codes.validate()?;
        self.limits.validate()?;
        self.tokens.validate()?;
        self.passwordless.validate()?;
        self.sms.validate()?;
        self.passwords.validate()?;
        if self.mfa.fresh_sign_in < SECOND || self.mfa.fresh_sign_in > DAY {
            return Err(Error::Config(
                "mfa.fresh_sign_in must be between 1 s and 1 day".into(),
            ));
        }
        self.protection.validate()?;
        let passkey_origins = self.passkeys.validate(&origin, &rp_id)?;
        let link_base = origin
            .join(&self.passwordless.link_path)
            .map_err(|_| Error::Config("passwordless.link_path is not a path".into()))?;
        let revert_base = origin
            .join(&self.passwordless.revert_path)
            .map_err(|_| Error::Config("passwordless.revert_path is not a path".into()))?;
        let unblock_base = origin
            .join(&self.protection.unblock_path)
            .map_err(|_| Error::Config("protection.unblock_path is not a path".into()))?;
        Ok(ValidConfig {
            link_base,
            revert_base,
            unblock_base,
            passkey_origins,
            origin,
            rp_id,
            config: self,
        })
    }
}

fn parse_origin(text: &str) -> Result<Url, Error> {
    // The value is not echoed: a mistyped origin may carry credentials.
    let bad = |why: &str| Err(Error::Config(format!("public_origin {why}")));
    let Ok(url) = Url::parse(text) else {
        return bad("is not a URL");
    };
    let Some(host) = url.host_str() else {
        return bad("has no host");
    };
    // `*.localhost` is loopback too (RFC 6761 §6.3; browsers resolve it so).
    let loopback =
        matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.ends_with(".localhost");
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return bad("must use https (http is allowed only for localhost)"),
        _ => return bad("must be an https origin"),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return bad("must be an origin only, without path, query or fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not contain credentials");
    }
    Ok(url)
}

/// A [`Config`] that passed validation, with its derived values.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    pub(crate) config: Config,
    pub(crate) origin: Url,
    pub(crate) rp_id: String,
    /// The magic-link landing page: the origin joined with `passwordless.link_path`.
    pub(crate) link_base: Url,
    /// The page that undoes an email change: the origin joined with
    /// `passwordless.revert_path`.
    pub(crate) revert_base: Url,
    /// The page the link in a lockout notice opens: the origin joined with
    /// `protection.unblock_path`.
    pub(crate) unblock_base: Url,
    /// The origins WebAuthn accepts: the public origin, then `passkeys.extra_origins`.
    pub(crate) passkey_origins: Vec<Url>,
}

/// Attack protection that is not a budget of [`Limits`] (SSOJet's Security section; see
/// [`protect`](crate::protect) for the whole policy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Protection {
    /// Client networks no per-address throttle applies to (failed sign-ins, sign-ups and
    /// sends per IP): an office NAT, a monitoring probe. Per-account budgets still apply.
    pub allow: Vec<ipnet::IpNet>,
    /// Client networks refused outright ([`Error::IpBlocked`]) by every protected call.
    /// An address in both lists is refused.
    pub deny: Vec<ipnet::IpNet>,
    /// Whether the owner of an account locked out for a client gets a notice (at most one
    /// per account and client per window). Default on.
    pub lockout_notice: bool,
    /// The path of the page a lockout notice's link opens (it lifts the lockout and offers
    /// a password reset). Default `/unblock`; the link is `{origin}{unblock_path}?token=…`.
    pub unblock_path: String,
    /// The risk rule for bot checks: once a client or an account has this many failed
    /// sign-ins in their budget's window, or a client this many sign-ups or sends, the
    /// next one needs a passed [`BotCheck`](crate::protect::BotCheck) (when one is
    /// configured). Default 3; organizations can ask for one always.
    pub bot_check_after: u32,
    /// Leading zero bits the built-in proof of work asks for. Default 16 (about 65 000
    /// SHA-256 runs for the client, one for the server); 8 to 32.
    pub proof_of_work_difficulty: u8,
    /// How long a proof-of-work challenge may be answered. Default 5 minutes.
    pub proof_of_work_ttl: Duration,
    /// The speed (km/h) above which two sign-ins' places make "impossible travel". Needs
    /// a [`Locate`](crate::Locate) that knows coordinates. Default 1000.
    pub impossible_travel_kmh: u32,
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            allow: Vec::new(),
            deny: Vec::new(),
            lockout_notice: true,
            unblock_path: "/unblock".into(),
            bot_check_after: 3,
            proof_of_work_difficulty: 16,
            proof_of_work_ttl: 5 * MINUTE,
            impossible_travel_kmh: 1000,
        }
    }
}

impl Protection {
    fn validate(&self) -> Result<(), Error> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"/-._~".contains(&b);
        let path = &self.unblock_path;
        if !path.starts_with('/') || path.starts_with("//") || !path.bytes().all(plain) {
            return Err(Error::Config(
                "protection.unblock_path must be an absolute path of A-Z a-z 0-9 / - . _ ~".into(),
            ));
        }
        if !(8..=32).contains(&self.proof_of_work_difficulty) {
            return Err(Error::Config(
                "protection.proof_of_work_difficulty must be 8 to 32".into(),
            ));
        }
        if self.proof_of_work_ttl < 10 * SECOND || self.proof_of_work_ttl > HOUR {
            return Err(Error::Config(
                "protection.proof_of_work_ttl must be between 10 s and 1 hour".into(),
            ));
        }
        if self.bot_check_after == 0 || self.impossible_travel_kmh == 0 {
            return Err(Error::Config(
                "protection.bot_check_after and impossible_travel_kmh must be at least 1".into(),
            ));
        }
        if self.allow.len() + self.deny.len() > 10_000 {
            return Err(Error::Config(
                "protection.allow and deny hold at most 10 000 networks".into(),
            ));
        }
        Ok(())
    }
}

/// Lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ttl {
    /// Access tokens (JWT). Default 15 minutes; at most 24 hours.
    pub access_token: Duration,
    /// A session and its refresh tokens, from sign-in (absolute). Default 30 days.
    pub session: Duration,
    /// A session not refreshed for this long ends. Default 7 days; longer than
    /// `access_token`, at most `session`.
    pub session_idle: Duration,
    /// Magic links. Default 10 minutes (NIST SP 800-63B §3.1.3.2); at most 1 hour.
    pub magic_link: Duration,
    /// Email and SMS one-time codes. Default 10 minutes, which is also the most (NIST SP
    /// 800-63B §3.1.3.2).
    pub one_time_code: Duration,
    /// Authorization codes. Default 60 seconds; at most 10 minutes (RFC 6749 §4.1.2).
    pub auth_code: Duration,
    /// The MFA step after a first factor. Default 5 minutes; at most 30 minutes.
    pub mfa_token: Duration,
    /// A WebAuthn ceremony. Default 5 minutes; at most 30 minutes.
    pub webauthn_ceremony: Duration,
    /// How long an invitation to join an organization can be accepted (7 days).
    pub invitation: Duration,
    /// How long the old address can undo a confirmed email change (checklist ACC-01).
    /// Default 7 days; at most 30 days.
    pub email_change_revert: Duration,
    /// How far a SAML identity provider's clock may be from ours when its assertion's
    /// time window is checked (checklist SAML-13). Default 3 minutes; at most 5.
    pub saml_clock_skew: Duration,
}

impl Default for Ttl {
    fn default() -> Self {
        Ttl {
            access_token: 15 * MINUTE,
            session: 30 * DAY,
            session_idle: 7 * DAY,
            magic_link: 10 * MINUTE,
            one_time_code: 10 * MINUTE,
            auth_code: MINUTE,
            mfa_token: 5 * MINUTE,
            webauthn_ceremony: 5 * MINUTE,
            invitation: 7 * DAY,
            email_change_revert: 7 * DAY,
            saml_clock_skew: 3 * MINUTE,
        }
    }
}

impl Ttl {
    fn validate(&self) -> Result<(), Error> {
        let checks = [
            ("access_token", self.access_token, DAY),
            ("session", self.session, 400 * DAY),
            ("session_idle", self.session_idle, 400 * DAY),
            ("magic_link", self.magic_link, HOUR),
            ("one_time_code", self.one_time_code, 10 * MINUTE),
            ("auth_code", self.auth_code, 10 * MINUTE),
            ("mfa_token", self.mfa_token, 30 * MINUTE),
            ("webauthn_ceremony", self.webauthn_ceremony, 30 * MINUTE),
            ("invitation", self.invitation, 30 * DAY),
            ("email_change_revert", self.email_change_revert, 30 * DAY),
            ("saml_clock_skew", self.saml_clock_skew, 5 * MINUTE),
        ];
        for (name, value, max) in checks {
            if value < Duration::from_secs(1) || value > max {
                return Err(Error::Config(format!(
                    "ttl.{name} must be between 1 s and {} s",
                    max.as_secs()
                )));
            }
        }
        if self.access_token > self.session {
            return Err(Error::Config(
                "ttl.access_token must not outlive ttl.session".into(),
            ));
        }
        if self.session_idle > self.session || self.session_idle <= self.access_token {
            return Err(Error::Config(
                "ttl.session_idle must be longer than ttl.access_token and at most ttl.session"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The shape of one-time codes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodePolicy {
    /// Digits per code: 6 (default) to 8.
    pub digits: u8,
    /// Wrong tries a code request allows before it dies: 1 to 5 (default 5). Resends do not
    /// refill it.
    pub max_attempts: u32,
}

impl Default for CodePolicy {
    fn default() -> Self {
        CodePolicy {
            digits: 6,
            max_attempts: 5,
        }
    }
}

impl CodePolicy {
    fn validate(&self) -> Result<(), Error> {
        if !(6..=8).contains(&self.digits) {
            return Err(Error::Config("codes.digits must be 6 to 8".into()));
        }
        if !(1..=5).contains(&self.max_attempts) {
            return Err(Error::Config("codes.max_attempts must be 1 to 5".into()));
        }
        Ok(())
    }
}

/// The algorithm access tokens are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// EdDSA over Ed25519 (RFC 8037): small, fast, deterministic. The default.
    #[default]
    EdDSA,
    /// ECDSA over P-256 with SHA-256, for verifiers that cannot do EdDSA.
    ES256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
        }
    }
}

/// How access tokens are signed and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPolicy {
    /// The algorithm new signing keys use. Default EdDSA.
    pub algorithm: SigningAlgorithm,
    /// Clock skew tolerated on `exp` and `nbf`. Default 30 seconds; at most 5 minutes.
    pub leeway: Duration,
    /// How many verified tokens to remember, so a repeated token skips its signature
    /// check. Default 10 000; 0 turns the cache off.
    pub cache_capacity: usize,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            algorithm: SigningAlgorithm::EdDSA,
            leeway: Duration::from_secs(30),
            cache_capacity: 10_000,
        }
    }
}

impl TokenPolicy {
    fn validate(&self) -> Result<(), Error> {
        if self.leeway > 5 * MINUTE {
            return Err(Error::Config(
                "tokens.leeway must be at most 5 minutes".into(),
            ));
        }
        if self.cache_capacity > 10_000_000 {
            return Err(Error::Config(
                "tokens.cache_capacity must be at most 10 000 000".into(),
            ));
        }
        Ok(())
    }
}

/// How a [`RateLimit`] counts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Counts from the first hit for one window, then starts again. Cheapest; allows up to
    /// twice the limit across a window boundary.
    Fixed,
    /// Weighs the previous window by how much of it still overlaps the last `window`
    /// (two counters per key). Smooth; no boundary burst.
    Sliding,
}

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per window.
    pub max: u32,
    /// The window's length.
    pub window: Duration,
    /// How the window moves.
    pub kind: Window,
}

impl RateLimit {
    /// `max` per `window`, sliding.
    pub const fn sliding(max: u32, window: Duration) -> Self {
        RateLimit {
            max,
            window,
            kind: Window::Sliding,
        }
    }

    /// `max` per `window`, fixed.
    pub const fn fixed(max: u32, window: Duration) -> Self {
        RateLimit {
            max,
            window,
            kind: Window::Fixed,
        }
    }

    pub(crate) fn validate(&self, name: &str, most: u32) -> Result<(), Error> {
        if self.max == 0 || self.max > most {
            return Err(Error::Config(format!(
                "limits.{name}.max must be 1 to {most}"
            )));
        }
        if self.window < Duration::from_secs(1) || self.window > 30 * DAY {
            return Err(Error::Config(format!(
                "limits.{name}.window must be between 1 s and 30 days"
            )));
        }
        Ok(())
    }
}

/// Rate limits and attempt budgets applied by every flow (through
/// [`RateLimiter`](crate::protect::RateLimiter); nothing else counts attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Failed sign-ins per account and client IP, any method (Auth0's default: 10), after
    /// which that client is refused even the right credentials until the window passes.
    /// Default 10 per 15 minutes. Other clients are not affected, so one client cannot
    /// lock the owner out.
    pub failures_per_account_ip: RateLimit,
    /// Failed sign-ins per account from all clients together, any method. NIST SP 800-63B
    /// caps it at 100; default 100 per 24 hours.
    pub failures_per_account: RateLimit,
    /// Failed sign-ins per client IP (an IPv6 client by its /64), all accounts together:
    /// suspicious IP throttling, which also stops one address spraying a password across
    /// many accounts none of which reaches its own budget. Default 100 per day (Auth0's).
    /// [`Protection::allow`] lists addresses it does not apply to (an office NAT).
    pub failures_per_ip: RateLimit,
    /// Emails sent to one address at one client's request. Default 5 per hour.
    pub sends_per_recipient: RateLimit,
    /// Emails sent to one address at the request of all clients together. Default 20 per
    /// hour; once spent, a device the address's owner signed in from is still served.
    pub sends_per_recipient_total: RateLimit,
    /// Emails or texts requested from one client IP. Default 30 per hour.
    pub sends_per_ip: RateLimit,
    /// The least time between two sends of one kind (link, email code, text) to one
    /// address or number, a resend included. Default 30 seconds; at most 10 minutes.
    pub send_cooldown: Duration,
    /// Sign-ups (password or passkey) started from one client IP, counted before any
    /// password is hashed or screened. Default 50 per minute (Auth0's).
    pub sign_ups_per_ip: RateLimit,
    /// Sign-ups started by everyone together: a ceiling on the hashing an anonymous
    /// crowd can ask for. Default 600 per minute.
    pub sign_ups: RateLimit,
    /// SSO home-realm lookups (by email) from one client IP (checklist RP-17). Default 60
    /// per minute.
    pub sso_lookups_per_ip: RateLimit,
    /// Test sign-ins started per organization: each makes the engine call the provider
    /// (checklist SSRF-09). Default 20 per minute.
    pub sso_tests_per_org: RateLimit,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failures_per_account_ip: RateLimit::sliding(10, 15 * MINUTE),
            failures_per_account: RateLimit::sliding(100, DAY),
            failures_per_ip: RateLimit::sliding(100, DAY),
            sends_per_recipient: RateLimit::sliding(5, HOUR),
            sends_per_recipient_total: RateLimit::sliding(20, HOUR),
            sends_per_ip: RateLimit::sliding(30, HOUR),
            send_cooldown: 30 * SECOND,
            sign_ups_per_ip: RateLimit::sliding(50, MINUTE),
            sign_ups: RateLimit::sliding(600, MINUTE),
            sso_lookups_per_ip: RateLimit::sliding(60, MINUTE),
            sso_tests_per_org: RateLimit::sliding(20, MINUTE),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), Error> {
        self.failures_per_account
            .validate("failures_per_account", 100)?;
        self.failures_per_account_ip
            .validate("failures_per_account_ip", 100)?;
        self.failures_per_ip.validate("failures_per_ip", 100_000)?;
        self.sends_per_recipient
            .validate("sends_per_recipient", 1000)?;
        self.sends_per_recipient_total
            .validate("sends_per_recipient_total", 10_000)?;
        self.sends_per_ip.validate("sends_per_ip", 100_000)?;
        self.sign_ups_per_ip.validate("sign_ups_per_ip", 100_000)?;
        self.sign_ups.validate("sign_ups", 1_000_000)?;
        self.sso_lookups_per_ip
            .validate("sso_lookups_per_ip", 1_000_000)?;
        self.sso_tests_per_org
            .validate("sso_tests_per_org", 10_000)?;
        if self.send_cooldown < SECOND || self.send_cooldown > 10 * MINUTE {
            return Err(Error::Config(
                "limits.send_cooldown must be between 1 s and 10 minutes".into(),
            ));
        }
        Ok(())
    }
}

/// How magic links and one-time codes behave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Passwordless {
    /// Whether a verified link or code for an address no account has creates the account
    /// (sign-up). Default on. Off, such addresses receive nothing, and the response is the
    /// same as for a known address.
    pub sign_up: bool,
    /// Same-device binding for magic links (default on): a link opened in another browser
    /// than the one that asked also needs the short code shown in the asking tab. Without
    /// it, anyone who opens the link signs in the asking tab, which a phishing page can
    /// exploit by asking for a link to its victim's address.
    pub bind_device: bool,
    /// The path of the page that magic links open, on the public origin. Default
    /// `/magic-link`; the link is `{origin}{link_path}?token=…`.
    pub link_path: String,
    /// The path of the page the link in an email-change notice opens (it undoes the
    /// change). Default `/email-revert`; the link is `{origin}{revert_path}?token=…`.
    pub revert_path: String,
    /// When messages are handed to the mailer or SMS sender. Default
    /// [`Delivery::Background`].
    pub delivery: Delivery,
}

impl Default for Passwordless {
    fn default() -> Self {
        Passwordless {
            sign_up: true,
            bind_device: true,
            link_path: "/magic-link".into(),
            revert_path: "/email-revert".into(),
            delivery: Delivery::Background,
        }
    }
}

impl Passwordless {
    fn validate(&self) -> Result<(), Error> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"/-._~".contains(&b);
        for (name, path) in [
            ("link_path", &self.link_path),
            ("revert_path", &self.revert_path),
        ] {
            if !path.starts_with('/') || path.starts_with("//") || !path.bytes().all(plain) {
                return Err(Error::Config(format!(
                    "passwordless.{name} must be an absolute path of A-Z a-z 0-9 / - . _ ~"
                )));
            }
        }
        Ok(())
    }
}

/// When a message is handed to the [`Mailer`](crate::Mailer) or
/// [`SmsSender`](crate::SmsSender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// On a task of its own, on the caller's Tokio runtime: a "send me a link" call
    /// answers before the message goes out, so it does not wait for the mailer, whose
    /// latency would tell which addresses get mail (an unknown one gets none when sign-up
    /// is off). Failures are logged (`tracing`), not returned. Called outside a Tokio
    /// runtime, the message goes out inline as with [`Delivery::Inline`], with a warning.
    /// [`Portcullis::flush_deliveries`](crate::Portcullis::flush_deliveries) waits for the
    /// messages under way, e.g. before shutting down.
    Background,
    /// Within the call: delivery errors are returned as [`Error::Delivery`], and the
    /// call's latency includes the mailer's. Both differ between addresses that get a
    /// message and those that do not (no account with sign-up off, blocked accounts), so
    /// this reveals which addresses have accounts: use it for tests, benchmarks and
    /// applications with sign-up on and no blocked users.
    Inline,
}

/// Which out-of-band second factors the MFA step offers, to users who have TOTP (which is
/// what makes the step due) and a verified phone or address. Never the channel the first
/// factor used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MfaPolicy {
    /// A code by text message to the verified phone. Default off: offered beside TOTP it
    /// would let a SIM swap stand in for the authenticator app (NIST SP 800-63B §3.1.3.3
    /// calls SMS restricted). Turn it on for users who prefer texts.
    pub sms: bool,
    /// A code by email to the verified address. Default off: NIST SP 800-63B §3.1.3.1
    /// does not accept email as an authenticator (checklist OOB-08).
    pub email: bool,
    /// How recent a sign-in must be to remove an authenticator
    /// ([`Mfa::remove`](crate::Mfa::remove)): a stolen token alone must not strip an
    /// account's second factor. Default 10 minutes.
    pub fresh_sign_in: Duration,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        MfaPolicy {
            sms: false,
            email: false,
            fresh_sign_in: 10 * MINUTE,
        }
    }
}

/// WebAuthn relying-party settings (the id and name are [`Config::rp_id`] and
/// [`Config::rp_name`]; the ceremony lifetime is [`Ttl::webauthn_ceremony`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasskeyPolicy {
    /// Origins accepted besides [`Config::public_origin`], each matched exactly (scheme,
    /// host and port): another site of yours under the RP id (`https`, or `http` for
    /// loopback), or a native app's origin (`android:apk-key-hash:…`, taken as given).
    /// Default none.
    pub extra_origins: Vec<String>,
    /// Accept any subdomain of an accepted origin (`https://eu.app.example.com` for
    /// `https://app.example.com`). Default off.
    pub allow_subdomains: bool,
    /// Accept an accepted origin on any port. Default off.
    pub allow_any_port: bool,
    /// Whether authenticators must verify the user (PIN, biometric). Default
    /// [`UserVerification::Required`]: a verified passkey is two factors by itself.
    pub user_verification: UserVerification,
    /// Which authenticators registration asks for. Default any. A hint to the browser:
    /// the answer does not say which kind made it, so nothing is enforced.
    pub attachment: Option<Attachment>,
    /// Whether registration asks for a discoverable credential (one that can sign in with
    /// no user name: autofill, "sign in with a passkey"). Default
    /// [`ResidentKey::Preferred`].
    pub resident_key: ResidentKey,
    /// What registration asks about the authenticator's make. Default
    /// [`Attestation::None`]: nothing (no trust decision is made on attestation).
    pub attestation: Attestation,
    /// How recent a signed-in user's sign-in must be to add a passkey (adding an
    /// authenticator is binding a new way in: NIST SP 800-63B §4.1.2.1). Default 10
    /// minutes; 1 second to 1 day.
    pub fresh_sign_in: Duration,
}

impl Default for PasskeyPolicy {
    fn default() -> Self {
        PasskeyPolicy {
            extra_origins: Vec::new(),
            allow_subdomains: false,
            allow_any_port: false,
            user_verification: UserVerification::Required,
            attachment: None,
            resident_key: ResidentKey::Preferred,
            attestation: Attestation::None,
            fresh_sign_in: 10 * MINUTE,
        }
    }
}

impl PasskeyPolicy {
    fn validate(&self, public_origin: &Url, rp_id: &str) -> Result<Vec<Url>, Error> {
        if self.fresh_sign_in < SECOND || self.fresh_sign_in > DAY {
            return Err(Error::Config(
                "passkeys.fresh_sign_in must be between 1 s and 1 day".into(),
            ));
        }
        let mut origins = vec![public_origin.clone()];
        for text in &self.extra_origins {
            let bad = |why: &str| Error::Config(format!("passkeys.extra_origins: {why}"));
            let url = Url::parse(text).map_err(|_| bad("not a URL"))?;
            if matches!(url.scheme(), "http" | "https") {
                let checked = parse_origin(text).map_err(|_| {
                    bad("web origins must be https (http only for loopback), origin only")
                })?;
                let host = checked.host_str().unwrap_or_default();
                if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                    return Err(bad("a web origin must be the RP id or under it"));
                }
            }
            origins.push(url);
        }
        Ok(origins)
    }
}

/// Whether a WebAuthn authenticator must verify its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserVerification {
    /// Refuse ceremonies without user verification.
    Required,
    /// Ask for it, accept without: such a sign-in is one factor (`hwk`/`swk` without
    /// `user`), and the MFA step follows when the user has a second factor. So is every
    /// sign-in with a passkey registered without it, verified or not.
    Preferred,
}

/// Which kind of authenticator registration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attachment {
    /// Built into the device (Touch ID, Windows Hello, Android).
    Platform,
    /// Roaming: security keys, or a phone used from another device.
    CrossPlatform,
}

/// Whether registration asks for a discoverable credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResidentKey {
    /// Ask for one; accept a non-discoverable credential from authenticators without room.
    Preferred,
    /// Tell the browser a discoverable credential is required (it then refuses
    /// authenticators that cannot store one; the answer does not prove which it made).
    Required,
    /// Ask for a server-side credential (security keys with little storage).
    Discouraged,
}

/// What registration asks an authenticator to say about its make (attestation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attestation {
    /// Nothing: the usual choice for consumer passkeys.
    None,
    /// An attestation the client may anonymize.
    Indirect,
    /// The authenticator's own attestation. The statement's signature is checked and its
    /// format recorded; no certificate chain is required to be trusted.
    Direct,
}

/// Password rules (NIST SP 800-63B rev. 4 §3.1.1.2). Lengths count code points.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// The shortest password for an account with no second factor. Default 15 (NIST's
    /// minimum for a password used alone); at least `min_length_with_mfa`.
    pub min_length: usize,
    /// The shortest password for an account with a second factor. Default 8, the least
    /// NIST allows.
    pub min_length_with_mfa: usize,
    /// The longest password. Default 128; 64 to 256. Longer input is refused before any
    /// hashing.
    pub max_length: usize,
    /// Refuse the bundled list of the 30,000 most common passwords
    /// ([`CommonPasswords`](crate::CommonPasswords)), also with digits or symbols added at
    /// the end. Default on; works offline. A checker given to the builder
    /// ([`PortcullisBuilder::breached_passwords`](crate::PortcullisBuilder::breached_passwords))
    /// runs as well.
    pub refuse_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 15,
            min_length_with_mfa: 8,
            max_length: 128,
            refuse_common: true,
        }
    }
}

impl PasswordPolicy {
    fn validate(&self) -> Result<(), Error> {
        if self.min_length_with_mfa < 8 || self.min_length < self.min_length_with_mfa {
            return Err(Error::Config(
                "passwords.min_length_with_mfa must be at least 8, and min_length at least that"
                    .into(),
            ));
        }
        if !(64..=256).contains(&self.max_length) || self.max_length < self.min_length {
            return Err(Error::Config(
                "passwords.max_length must be 64 to 256 and at least min_length".into(),
            ));
        }
        Ok(())
    }
}

/// The SMS pumping guard (toll fraud): every budget is spent before the SMS sender is
/// called, so a refusal costs nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmsPolicy {
    /// Calling-code prefixes that may receive texts, without `+` (`"1"`, `"44"`,
    /// `"4670"`): a number must start with one of them. Empty (the default) allows all.
    pub allowed_prefixes: Vec<String>,
    /// Texts to one number at one client's request. Default 5 per 24 hours.
    pub per_number: RateLimit,
    /// Texts to one number at the request of all clients together. Default 20 per 24
    /// hours; once spent, a device the number's owner signed in from is still served.
    pub per_number_total: RateLimit,
    /// Texts requested from one client IP. Default 10 per hour. Calls whose
    /// [`RequestContext`](crate::RequestContext) has no IP share one such budget.
    pub per_ip: RateLimit,
    /// Texts in all, counted in the store (so shared by every engine on it). Default
    /// 1 000 per hour: past it SMS is off until the window drains, and each refusal is
    /// logged at `error` level as an alert.
    pub global: RateLimit,
    /// The level of all texts past which sending degrades before [`global`](Self::global)
    /// refuses: a text then goes to a device its number's owner never signed in from only
    /// with a [`BotCheck`](crate::protect::BotCheck) passed (refused when none is
    /// configured). Default 500 per hour.
    pub global_soft: RateLimit,
}

impl Default for SmsPolicy {
    fn default() -> Self {
        SmsPolicy {
            allowed_prefixes: Vec::new(),
            per_number: RateLimit::sliding(5, DAY),
            per_number_total: RateLimit::sliding(20, DAY),
            per_ip: RateLimit::sliding(10, HOUR),
            global: RateLimit::sliding(1000, HOUR),
            global_soft: RateLimit::sliding(500, HOUR),
        }
    }
}

impl SmsPolicy {
    fn validate(&self) -> Result<(), Error> {
        for prefix in &self.allowed_prefixes {
            let digits = prefix.bytes().all(|b| b.is_ascii_digit());
            if !(1..=6).contains(&prefix.len()) || !digits || prefix.starts_with('0') {
                return Err(Error::Config(
                    "sms.allowed_prefixes holds 1 to 6 digits each, without + or a leading 0"
                        .into(),
                ));
            }
        }
        self.per_number.validate("sms.per_number", 1000)?;
        self.per_number_total
            .validate("sms.per_number_total", 10_000)?;
        self.global_soft.validate("sms.global_soft", 10_000_000)?;
        self.per_ip.validate("sms.per_ip", 100_000)?;
        self.global.validate("sms.global", 10_000_000)
    }

    /// Whether texts may go to `phone` (E.164).
    pub(crate) fn allows(&self, phone: &str) -> bool {
        let digits = phone.trim_start_matches('+');
        self.allowed_prefixes.is_empty()
            || self
                .allowed_prefixes
                .iter()
                .any(|p| digits.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(config: Config) -> Result<ValidConfig, Error> {
        config.validate()
    }

    #[test]
    fn defaults_are_valid_and_derive_rp_id_from_origin() {
        let valid = check(Config::new("https://app.example.com")).unwrap();
        assert_eq!(valid.rp_id, "app.example.com");
        assert_eq!(valid.config.issuer, "https://app.example.com");
        assert_eq!(valid.config.ttl.auth_code, Duration::from_secs(60));
        assert_eq!(valid.config.codes.max_attempts, 5);
    }

    #[test]
    fn origins_must_be_https_origins() {
        assert!(check(Config::new("http://localhost:8080")).is_ok());
        assert!(check(Config::new("http://127.0.0.1:8080")).is_ok());
        for bad in [
            "app.example.com",
            "http://app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/login",
            "https://app.example.com/?x=1",
            "https://user:pw@app.example.com",
            "",
        ] {
            let err = check(Config::new(bad)).unwrap_err();
            assert_eq!(err.code(), "config", "{bad:?}");
            assert!(!err.to_string().contains("pw@"), "the value is not echoed");
        }
    }

    #[test]
    fn rp_id_must_cover_the_origin() {
        let mut config = Config::new("https://login.example.com");
        config.rp_id = Some("example.com".into());
        assert!(check(config.clone()).is_ok());
        config.rp_id = Some("ample.com".into());
        assert!(check(config.clone()).is_err());
        config.rp_id = Some("other.com".into());
        assert!(check(config.clone()).is_err());
        config.rp_id = Some("com".into());
        assert!(check(config).is_err(), "a bare TLD is never an rp_id");
    }

    #[test]
    fn extra_passkey_origins_stay_under_the_rp_id() {
        let mut config = Config::new("https://login.example.com");
        config.rp_id = Some("example.com".into());
        config.passkeys.extra_origins = vec![
            "https://example.com".into(),
            "https://eu.example.com:8443".into(),
            "android:apk-key-hash:AbCd-Ef".into(),
        ];
        let valid = check(config.clone()).unwrap();
        assert_eq!(valid.passkey_origins.len(), 4);
        for bad in [
            "https://evil.com",
            "https://example.com.evil.com",
            "http://eu.example.com",
            "https://eu.example.com/path",
            "not a url",
        ] {
            config.passkeys.extra_origins = vec![bad.into()];
            assert_eq!(check(config.clone()).unwrap_err().code(), "config", "{bad}");
        }
        // On loopback, plain http: `localhost` on another port, and `*.localhost`.
        let mut local = Config::new("http://localhost:8080");
        local.passkeys.extra_origins = vec![
            "http://localhost:3000".into(),
            "http://shop.localhost:3000".into(),
        ];
        assert_eq!(check(local.clone()).unwrap().passkey_origins.len(), 3);
        local.passkeys.extra_origins = vec!["http://shop.localhost.evil.com".into()];
        assert!(check(local).is_err());
    }

    #[test]
    fn out_of_range_policies_are_rejected() {
        let mut config = Config::new("https://a.example.com");
        config.limits.failures_per_account.max = 101;
        assert!(check(config).is_err(), "NIST caps failures at 100");

        let mut config = Config::new("https://a.example.com");
        config.codes.digits = 5;
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.codes.max_attempts = 6;
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.ttl.auth_code = Duration::from_secs(3600);
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.ttl.one_time_code = Duration::ZERO;
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.ttl.access_token = Duration::from_secs(7200);
        config.ttl.session = Duration::from_secs(3600);
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.limits.sends_per_ip.window = Duration::ZERO;
        assert!(check(config).is_err());

        let mut config = Config::new("https://a.example.com");
        config.limits.send_cooldown = Duration::from_secs(3600);
        assert!(check(config).is_err());
    }

    #[test]
    fn passwordless_settings_are_checked() {
        let valid = check(Config::new("https://a.example.com")).unwrap();
        assert_eq!(valid.link_base.as_str(), "https://a.example.com/magic-link");
        assert_eq!(valid.config.ttl.magic_link, Duration::from_secs(600));
        for bad in ["", "magic", "//evil.com/x", "/a?b", "/a#b", "/a b", "/é"] {
            let mut config = Config::new("https://a.example.com");
            config.passwordless.link_path = bad.into();
            assert!(check(config).is_err(), "{bad:?}");
        }
        let mut config = Config::new("https://a.example.com");
        config.ttl.magic_link = Duration::from_secs(7200);
        assert!(check(config).is_err());
        for bad in ["+1", "", "0", "1234567", "4a"] {
            let mut config = Config::new("https://a.example.com");
            config.sms.allowed_prefixes = vec![bad.into()];
            assert!(check(config).is_err(), "{bad:?}");
        }
        let mut config = Config::new("https://a.example.com");
        config.sms.allowed_prefixes = vec!["1".into(), "4670".into()];
        let sms = check(config).unwrap().config.sms;
        assert!(sms.allows("+15550109999"));
        assert!(sms.allows("+46701234567"));
        assert!(!sms.allows("+46812345678"));
        assert!(
            SmsPolicy::default().allows("+44123456789"),
            "empty allows all"
        );
    }
}
