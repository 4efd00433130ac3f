//! [`Portcullis`], the engine, and [`PortcullisBuilder`], which checks everything once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::audit::Audit;
use crate::config::{Config, ValidConfig};
use crate::crypto::{Keyring, Pepper, SecretHasher};
use crate::delivery::{Dispatcher, Mailer, SmsSender};
use crate::flows::codes::Codes;
use crate::flows::magic_link::MagicLinks;
use crate::protect::RateLimiter;
use crate::sessions::Sessions;
use crate::store::{
    AuditLog, ChallengeStore, KeyStore, OrgStore, SessionStore, Storage, UserStore,
};
use crate::templates::Templates;
use crate::tokens::{KeySet, KeyState, SigningKey, Tokens, VerifiedCache};
use crate::{Clock, Error, SystemClock, Timestamp};

/// The authentication engine. Cheap to clone (one `Arc` inside), `Send + Sync`: build it
/// once and share it.
///
/// Each capability is a light handle borrowed from it (`auth.limits()`, `auth.audit()`…).
#[derive(Clone)]
pub struct Portcullis {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ValidConfig,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) orgs: Arc<dyn OrgStore>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) key_store: Arc<dyn KeyStore>,
    pub(crate) challenges: Arc<dyn ChallengeStore>,
    pub(crate) audit_log: Arc<dyn AuditLog>,
    /// Sends every recorded event to `Portcullis::events` subscribers.
    pub(crate) events: tokio::sync::broadcast::Sender<crate::model::AuthEvent>,
    /// Links login-log events (shared with the chained log that writes them).
    pub(crate) audit_chain: crate::audit::Chain,
    pub(crate) mailer: Option<Arc<dyn Mailer>>,
    pub(crate) sms: Option<Arc<dyn SmsSender>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: SecretHasher,
    pub(crate) keyring: Keyring,
    pub(crate) keys: KeyState,
    pub(crate) verified: VerifiedCache,
    pub(crate) templates: Templates,
    pub(crate) dispatcher: Dispatcher,
    /// Bounds how many password hashes run at once.
    pub(crate) password_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) breached: Option<Arc<dyn crate::BreachedPasswords>>,
    /// Names the place an address is at, for confirm pages (none by default).
    pub(crate) locate: Option<Arc<dyn crate::Locate>>,
    /// Tells people from scripts where a shared budget runs low (none by default).
    pub(crate) bot_check: Option<Arc<dyn crate::protect::BotCheck>>,
    /// The built-in proof of work, when on (it is then `bot_check` too, unless another
    /// was given).
    pub(crate) pow: Option<Arc<crate::protect::ProofOfWork>>,
    /// The WebAuthn relying party, built once from the configuration.
    pub(crate) webauthn: webauthn_rs_core::WebauthnCore,
    /// The one client for URLs a tenant named (SSO discovery, JWKS, token endpoints).
    pub(crate) outbound: crate::Outbound,
    /// Looks up the TXT records that prove domains (none by default).
    pub(crate) dns: Option<Arc<dyn crate::DomainVerifier>>,
    /// SSO connections' signing keys.
    pub(crate) jwks: crate::flows::sso::JwksCache,
    /// Where the SSO callback routes are served (`{origin}/api/v1` by default).
    pub(crate) sso_base: Url,
}

impl Inner {
    /// The live record a presented secret names, looked up under each pepper of the ring
    /// in turn (a secret made before a rotation still works): read (`take` false) or taken
    /// exactly once (`take` true). Returns the key it was found under.
    pub(crate) async fn secret_record(
        &self,
        kind: crate::model::ChallengeKind,
        purpose: crate::crypto::SecretPurpose,
        secret: &[u8],
        take: bool,
    ) -> Result<Option<(crate::model::ChallengeKey, crate::model::ChallengeRecord)>, Error> {
        let now = self.clock.now();
        for hash in self.hasher.hashes(purpose, &[secret]) {
            let key = crate::model::ChallengeKey::hashed(kind, &hash);
            let found = match take {
                true => self.challenges.take(&key, now).await?,
                false => self.challenges.get(&key, now).await?,
            };
            if let Some(record) = found {
                return Ok(Some((key, record)));
            }
        }
        Ok(None)
    }
}

impl Portcullis {
    /// Starts building an engine from `config`.
    pub fn builder(config: Config) -> PortcullisBuilder {
        PortcullisBuilder {
            config,
            users: None,
            orgs: None,
            sessions: None,
            key_store: None,
            challenges: None,
            audit_log: None,
            mailer: None,
            sms: None,
            clock: None,
            pepper: None,
            previous_peppers: Vec::new(),
            proof_of_work: false,
            keyring: None,
            signing_pems: Vec::new(),
            templates: Templates::new(),
            breached: None,
            locate: None,
            bot_check: None,
            outbound_policy: crate::OutboundPolicy::default(),
            host_resolver: None,
            dns: None,
            sso_base: None,
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Access tokens, refresh tokens, authorization codes, signing keys.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens::new(&self.inner)
    }

    /// The OpenID provider: discovery, `/oauth2/authorize`, the token endpoint,
    /// UserInfo, revocation, introspection, logout, and people's consents.
    pub fn provider(&self) -> crate::provider::Provider<'_> {
        crate::provider::Provider::new(&self.inner)
    }

    /// Lockouts and throttles (list, lift, the owner's unblock link) and the built-in
    /// proof of work's challenges.
    pub fn protection(&self) -> crate::protect::Shield<'_> {
        crate::protect::Shield::new(&self.inner)
    }

    /// Every login-log event as it is recorded, for a SIEM or a webhook: a Tokio broadcast
    /// receiver. A receiver that falls more than 1024 events behind loses the oldest
    /// (it then reads `RecvError::Lagged`); the login log keeps them all.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<crate::model::AuthEvent> {
        self.inner.events.subscribe()
    }

    /// Users' sessions.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(&self.inner)
    }

    /// Magic links: send, resend, peek, verify, and the asking tab's status.
    pub fn magic_links(&self) -> MagicLinks<'_> {
        MagicLinks::new(&self.inner)
    }

    /// One-time codes by email and SMS.
    pub fn codes(&self) -> Codes<'_> {
        Codes::new(&self.inner)
    }

    /// Users, as an administrator manages them.
    pub fn users(&self) -> crate::directory::Users<'_> {
        crate::directory::Users::new(&self.inner)
    }

    /// Organizations, their apps and settings.
    pub fn orgs(&self) -> crate::directory::Orgs<'_> {
        crate::directory::Orgs::new(&self.inner)
    }

    /// Machine credentials for the management API.
    pub fn api_keys(&self) -> crate::directory::ApiKeys<'_> {
        crate::directory::ApiKeys::new(&self.inner)
    }

    /// Roles, permissions and memberships per organization.
    pub fn rbac(&self) -> crate::directory::Rbac<'_> {
        crate::directory::Rbac::new(&self.inner)
    }

    /// Passkeys: WebAuthn registration and sign-in, and a user's passkeys.
    pub fn passkeys(&self) -> crate::flows::passkey::Passkeys<'_> {
        crate::flows::passkey::Passkeys::new(&self.inner)
    }

    /// Sign-ups waiting for the code emailed to their address.
    pub fn sign_ups(&self) -> crate::flows::sign_up::SignUps<'_> {
        crate::flows::sign_up::SignUps::new(&self.inner)
    }

    /// Passwords: sign-up, sign-in, change.
    pub fn passwords(&self) -> crate::flows::password::Passwords<'_> {
        crate::flows::password::Passwords::new(&self.inner)
    }

    /// Multi-factor authentication: TOTP, backup codes, and the MFA step of a sign-in.
    pub fn mfa(&self) -> crate::mfa::Mfa<'_> {
        crate::mfa::Mfa::new(&self.inner)
    }

    /// Waits until every message handed to the mailer or SMS sender in the background
    /// ([`Delivery::Background`](crate::Delivery::Background)) has been sent or has
    /// failed. Call it before shutting down, so no code or link is lost in flight.
    pub async fn flush_deliveries(&self) {
        self.inner.dispatcher.flush().await;
    }

    /// The templates messages are rendered with.
    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    /// The configuration, as validated.
    pub fn config(&self) -> &Config {
        &self.inner.config.config
    }

    /// The public origin links are built from.
    pub fn public_origin(&self) -> &Url {
        &self.inner.config.origin
    }

    /// The WebAuthn relying-party id in force.
    pub fn rp_id(&self) -> &str {
        &self.inner.config.rp_id
    }

    /// The engine clock's current time.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Single sign-on: connections, domain proofs, and sign-in through identity providers.
    pub fn sso(&self) -> crate::flows::sso::Sso<'_> {
        crate::flows::sso::Sso::new(&self.inner)
    }

    /// Rate limits and attempt budgets.
    pub fn limits(&self) -> RateLimiter<'_> {
        RateLimiter::new(&self.inner)
    }

    /// The login log.
    pub fn audit(&self) -> Audit<'_> {
        Audit::new(&self.inner)
    }

    /// The engine's raw parts: its hasher, keyring and stores, beneath every rule the
    /// engine keeps. See [`danger`](crate::danger) before using them.
    pub fn danger(&self) -> crate::danger::Danger<'_> {
        crate::danger::Danger::new(&self.inner)
    }

    /// The mailer, or a configuration error when none was given.
    pub fn mailer(&self) -> Result<&Arc<dyn Mailer>, Error> {
        self.inner
            .mailer
            .as_ref()
            .ok_or_else(|| Error::Config("no mailer configured".into()))
    }

    /// The SMS sender, or a configuration error when none was given.
    pub fn sms(&self) -> Result<&Arc<dyn SmsSender>, Error> {
        self.inner
            .sms
            .as_ref()
            .ok_or_else(|| Error::Config("no SMS sender configured".into()))
    }

    /// Physically removes expired challenges, counters and sessions. Reads already ignore
    /// them; call this now and then (a timer) to reclaim space. Returns how many went.
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        let now = self.now();
        let challenges = self.inner.challenges.purge_expired(now).await?;
        let sessions = self.inner.sessions.purge_expired_sessions(now).await?;
        Ok(challenges + sessions)
    }

    /// Sweeps expired records ([`purge_expired`](Self::purge_expired)) every `every` on a
    /// task of the current tokio runtime, until the [`Sweeper`] is stopped or dropped or
    /// the engine is gone (the task does not keep the engine alive). The engine owns
    /// sweeping: storage adapters only provide the purge.
    pub fn sweep_every(&self, every: Duration) -> Sweeper {
        let engine = Arc::downgrade(&self.inner);
        let every = every.max(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                if let Err(e) = (Portcullis { inner }).purge_expired().await {
                    tracing::warn!(code = e.code(), error = %e, "sweeping expired records failed");
                }
            }
        });
        Sweeper { task: Some(task) }
    }
}

/// The background sweep of [`Portcullis::sweep_every`]; dropping it stops the sweep.
#[derive(Debug)]
pub struct Sweeper {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sweeper {
    /// Stops the sweep and waits until it has stopped (a purge under way stops between
    /// store calls, each of which is atomic).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Portcullis")
            .field("origin", &self.inner.config.origin.as_str())
            .field("rp_id", &self.inner.config.rp_id)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Portcullis`]. Nothing is checked until [`build`](Self::build), which checks
/// everything.
#[must_use]
pub struct PortcullisBuilder {
    config: Config,
    users: Option<Arc<dyn UserStore>>,
    orgs: Option<Arc<dyn OrgStore>>,
    sessions: Option<Arc<dyn SessionStore>>,
    key_store: Option<Arc<dyn KeyStore>>,
    challenges: Option<Arc<dyn ChallengeStore>>,
    audit_log: Option<Arc<dyn AuditLog>>,
    mailer: Option<Arc<dyn Mailer>>,
    sms: Option<Arc<dyn SmsSender>>,
    clock: Option<Arc<dyn Clock>>,
    pepper: Option<Pepper>,
    previous_peppers: Vec<Pepper>,
    proof_of_work: bool,
    keyring: Option<Keyring>,
    signing_pems: Vec<String>,
    templates: Templates,
    breached: Option<Arc<dyn crate::BreachedPasswords>>,
    locate: Option<Arc<dyn crate::Locate>>,
    bot_check: Option<Arc<dyn crate::protect::BotCheck>>,
    outbound_policy: crate::OutboundPolicy,
    host_resolver: Option<Arc<dyn crate::HostResolver>>,
    dns: Option<Arc<dyn crate::DomainVerifier>>,
    sso_base: Option<Url>,
}

impl PortcullisBuilder {
    /// What requests to tenant-named URLs (SSO discovery, JWKS, token endpoints) may
    /// reach. The default: public addresses over `https` on port 443 only.
    pub fn outbound_policy(mut self, policy: crate::OutboundPolicy) -> Self {
        self.outbound_policy = policy;
        self
    }

    /// How outbound requests resolve host names (the operating system's resolver by
    /// default).
    pub fn host_resolver(mut self, resolver: Arc<dyn crate::HostResolver>) -> Self {
        self.host_resolver = Some(resolver);
        self
    }

    /// Looks up the DNS TXT records that prove an organization's domains
    /// ([`HickoryDns`](crate::HickoryDns) with the `dns` feature). Without one, domain
    /// verification is a configuration error.
    pub fn domain_verifier(mut self, verifier: Arc<dyn crate::DomainVerifier>) -> Self {
        self.dns = Some(verifier);
        self
    }

    /// The URL the SSO routes are served under, from which the redirect URIs registered at
    /// providers are made (`{base}/sso/callback`, `{base}/social/google/callback`).
    /// Default: the public origin with `/api/v1`.
    pub fn sso_base(mut self, base: Url) -> Self {
        self.sso_base = Some(base);
        self
    }

    /// One adapter for all five stores.
    pub fn store<S: Storage + 'static>(self, store: S) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// One shared adapter for all five stores, when the application keeps a handle too.
    pub fn shared_store<S: Storage + 'static>(mut self, store: Arc<S>) -> Self {
        self.users = Some(store.clone());
        self.orgs = Some(store.clone());
        self.sessions = Some(store.clone());
        self.key_store = Some(store.clone());
        self.challenges = Some(store.clone());
        self.audit_log = Some(store);
        self
    }

    /// Overrides the user store (mixing adapters, e.g. challenges in a faster one).
    pub fn user_store(mut self, store: Arc<dyn UserStore>) -> Self {
        self.users = Some(store);
        self
    }

    /// Overrides the organization store.
    pub fn org_store(mut self, store: Arc<dyn OrgStore>) -> Self {
        self.orgs = Some(store);
        self
    }

    /// Overrides the session store.
    pub fn session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.sessions = Some(store);
        self
    }

    /// Overrides the store of token-signing keys.
    pub fn key_store(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(store);
        self
    }

    /// Overrides the challenge store.
    pub fn challenge_store(mut self, store: Arc<dyn ChallengeStore>) -> Self {
        self.challenges = Some(store);
        self
    }

    /// Overrides the audit log.
    pub fn audit_log(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// How email is sent.
    pub fn mailer(mut self, mailer: impl Mailer + 'static) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// How text messages are sent.
    pub fn sms(mut self, sms: impl SmsSender + 'static) -> Self {
        self.sms = Some(Arc::new(sms));
        self
    }

    /// The clock (the system clock by default; tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The key for hashing secrets. Required. Keep it outside the database: without it, a
    /// stolen database yields no usable token or code.
    pub fn pepper(mut self, pepper: Pepper) -> Self {
        self.pepper = Some(pepper);
        self
    }

    /// Peppers that hashed secrets before a rotation, newest first: codes, refresh tokens,
    /// API keys and backup codes made under them keep working, and the last one anchors
    /// the identifiers that must never change (see [`SecretHasher`]). At most 7.
    pub fn previous_pepper(mut self, pepper: Pepper) -> Self {
        self.previous_peppers.push(pepper);
        self
    }

    /// Turns on the built-in proof of work ([`ProofOfWork`](crate::protect::ProofOfWork)):
    /// challenges from `auth.protection().proof_of_work()`, and the bot check for every
    /// place one is asked for, unless [`bot_check`](Self::bot_check) gave another.
    pub fn proof_of_work(mut self) -> Self {
        self.proof_of_work = true;
        self
    }

    /// The keys for encryption at rest. Required.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Signs tokens with a key from PEM (PKCS#8 `PRIVATE KEY`, Ed25519 or P-256) instead
    /// of keys kept in the store. Call it again to add older keys that still verify; the
    /// last one given signs. Rotate such keys in configuration.
    ///
    /// Without it, keys live in the store (sealed with the keyring): created on first use,
    /// kept across restarts, rotated with
    /// [`rotate_signing_key`](crate::tokens::Tokens::rotate_signing_key).
    pub fn signing_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.signing_pems.push(pem.into());
        self
    }

    /// The templates messages are rendered with (the built-in ones by default), with
    /// overrides per organization and language.
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = templates;
        self
    }

    /// Screens every new password against a list of common or breached ones (sign-up,
    /// change, reset), e.g. a [`PasswordList`](crate::PasswordList).
    pub fn breached_passwords(mut self, checker: impl crate::BreachedPasswords + 'static) -> Self {
        self.breached = Some(Arc::new(checker));
        self
    }

    /// Verifies bot checks (see [`BotCheck`](crate::protect::BotCheck)): at sign-up, sends
    /// and password sign-ins once a risk rule fires, and where a budget shared by
    /// everyone runs low. None by default (then no bot check is asked for, but
    /// [`proof_of_work`](Self::proof_of_work) gives the built-in one).
    pub fn bot_check(mut self, check: impl crate::protect::BotCheck + 'static) -> Self {
        self.bot_check = Some(Arc::new(check));
        self
    }

    /// Names the approximate place of an address (from the application's own GeoIP data),
    /// so a magic link's confirm page can say where the request came from
    /// ([`LinkPeek::place`](crate::LinkPeek::place)). None by default: then pages show the
    /// address only. See [`Locate`](crate::Locate) for what it must promise.
    pub fn locate(mut self, locate: impl crate::Locate + 'static) -> Self {
        self.locate = Some(Arc::new(locate));
        self
    }

    /// Checks the configuration and assembles the engine.
    ///
    /// Fails with [`Error::Config`] naming the first problem: an invalid origin or policy, a
    /// missing store, pepper or keyring.
    pub fn build(self) -> Result<Portcullis, Error> {
        let missing = |what: &str| Error::Config(format!("no {what} was given to the builder"));
        let config = self.config.validate()?;
        let pepper = self.pepper.ok_or_else(|| missing("pepper"))?;
        ensure_jwt_crypto()?;
        let fixed_keys = self
            .signing_pems
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                // Order of configuration is age: the last key given signs.
                let created = Timestamp::from_unix_millis(i64::try_from(i).unwrap_or(i64::MAX));
                SigningKey::from_pem(pem, created).map(|(key, _)| key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fixed_keys = match fixed_keys.is_empty() {
            true => None,
            false => Some(KeySet::new(fixed_keys)?),
        };
        let cache_capacity = config.config.tokens.cache_capacity;
        let sso_base = match self.sso_base {
            Some(base) => base,
            None => config
                .origin
                .join("api/v1")
                .map_err(|_| Error::Config("the public origin cannot hold /api/v1".into()))?,
        };
        let resolver = self
            .host_resolver
            .unwrap_or_else(|| Arc::new(crate::SystemResolver));
        let webauthn = crate::flows::passkey::relying_party(&config);
        let hasher = SecretHasher::ring(&pepper, &self.previous_peppers)?;
        let (events, _) = tokio::sync::broadcast::channel(crate::audit::EVENT_BACKLOG);
        let chain = crate::audit::Chain::new(hasher.clone());
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let challenges = self.challenges.ok_or_else(|| missing("challenge store"))?;
        let protection = &config.config.protection;
        let pow = self.proof_of_work.then(|| {
            Arc::new(crate::protect::ProofOfWork::new(
                clock.clone(),
                hasher.clone(),
                challenges.clone(),
                protection.proof_of_work_difficulty,
                protection.proof_of_work_ttl,
            ))
        });
        let bot_check = match (self.bot_check, &pow) {
            (Some(check), _) => Some(check),
            (None, Some(pow)) => Some(pow.clone() as Arc<dyn crate::protect::BotCheck>),
            (None, None) => None,
        };
        let inner = Inner {
            webauthn,
            config,
            users: self.users.ok_or_else(|| missing("user store"))?,
            orgs: self.orgs.ok_or_else(|| missing("organization store"))?,
            sessions: self.sessions.ok_or_else(|| missing("session store"))?,
            key_store: self.key_store.ok_or_else(|| missing("key store"))?,
            challenges,
            audit_log: Arc::new(crate::audit::ChainedLog::new(
                self.audit_log.ok_or_else(|| missing("audit log"))?,
                chain.clone(),
                events.clone(),
            )),
            events,
            audit_chain: chain,
            mailer: self.mailer,
            sms: self.sms,
            clock,
            hasher,
            keyring: self.keyring.ok_or_else(|| missing("keyring"))?,
            keys: KeyState::new(fixed_keys),
            verified: VerifiedCache::new(cache_capacity),
            templates: self.templates,
            dispatcher: Dispatcher::default(),
            password_slots: crate::flows::password::slots(),
            breached: self.breached,
            locate: self.locate,
            bot_check,
            pow,
            outbound: crate::Outbound::new(self.outbound_policy, resolver),
            dns: self.dns,
            jwks: crate::flows::sso::JwksCache::default(),
            sso_base,
        };
        Ok(Portcullis {
            inner: Arc::new(inner),
        })
    }
}

/// jsonwebtoken signs and verifies through a process-wide crypto provider. It picks
/// aws-lc-rs by itself unless another crate in the build also enabled its RustCrypto
/// backend; then we install aws-lc-rs ourselves, and report (rather than panic) if that is
/// impossible.
fn ensure_jwt_crypto() -> Result<(), Error> {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_some() {
        return Ok(());
    }
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    CryptoProvider::try_get_default()
        .map(|_| ())
        .ok_or_else(|| Error::Config("jsonwebtoken has no crypto provider".into()))
}

impl fmt::Debug for PortcullisBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortcullisBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
