//! [`Latchkey`], the engine, and [`LatchkeyBuilder`], which checks everything once.

use std::fmt;
use std::sync::Arc;

use url::Url;

use crate::audit::Audit;
use crate::config::{Config, ValidConfig};
use crate::crypto::{Keyring, Pepper, SecretHasher};
use crate::delivery::{Mailer, SmsSender};
use crate::protect::RateLimiter;
use crate::store::{AuditLog, ChallengeStore, OrgStore, SessionStore, Storage, UserStore};
use crate::{Clock, Error, SystemClock, Timestamp};

/// The authentication engine. Cheap to clone (one `Arc` inside), `Send + Sync`: build it
/// once and share it.
///
/// Each capability is a light handle borrowed from it (`auth.limits()`, `auth.audit()`…).
#[derive(Clone)]
pub struct Latchkey {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ValidConfig,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) orgs: Arc<dyn OrgStore>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) challenges: Arc<dyn ChallengeStore>,
    pub(crate) audit_log: Arc<dyn AuditLog>,
    pub(crate) mailer: Option<Arc<dyn Mailer>>,
    pub(crate) sms: Option<Arc<dyn SmsSender>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: SecretHasher,
    pub(crate) keyring: Keyring,
}

impl Latchkey {
    /// Starts building an engine from `config`.
    pub fn builder(config: Config) -> LatchkeyBuilder {
        LatchkeyBuilder {
            config,
            users: None,
            orgs: None,
            sessions: None,
            challenges: None,
            audit_log: None,
            mailer: None,
            sms: None,
            clock: None,
            pepper: None,
            keyring: None,
        }
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

    /// Rate limits and attempt budgets.
    pub fn limits(&self) -> RateLimiter<'_> {
        RateLimiter::new(&self.inner)
    }

    /// The login log.
    pub fn audit(&self) -> Audit<'_> {
        Audit::new(&self.inner)
    }

    /// The keyed hasher for secrets people receive.
    pub fn hasher(&self) -> &SecretHasher {
        &self.inner.hasher
    }

    /// The keyring for data at rest.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The user store.
    pub fn user_store(&self) -> &Arc<dyn UserStore> {
        &self.inner.users
    }

    /// The organization store.
    pub fn org_store(&self) -> &Arc<dyn OrgStore> {
        &self.inner.orgs
    }

    /// The session store.
    pub fn session_store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.sessions
    }

    /// The challenge store.
    pub fn challenge_store(&self) -> &Arc<dyn ChallengeStore> {
        &self.inner.challenges
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
}

impl fmt::Debug for Latchkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latchkey")
            .field("origin", &self.inner.config.origin.as_str())
            .field("rp_id", &self.inner.config.rp_id)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Latchkey`]. Nothing is checked until [`build`](Self::build), which checks
/// everything.
#[must_use]
pub struct LatchkeyBuilder {
    config: Config,
    users: Option<Arc<dyn UserStore>>,
    orgs: Option<Arc<dyn OrgStore>>,
    sessions: Option<Arc<dyn SessionStore>>,
    challenges: Option<Arc<dyn ChallengeStore>>,
    audit_log: Option<Arc<dyn AuditLog>>,
    mailer: Option<Arc<dyn Mailer>>,
    sms: Option<Arc<dyn SmsSender>>,
    clock: Option<Arc<dyn Clock>>,
    pepper: Option<Pepper>,
    keyring: Option<Keyring>,
}

impl LatchkeyBuilder {
    /// One adapter for all five stores.
    pub fn store<S: Storage + 'static>(self, store: S) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// One shared adapter for all five stores, when the application keeps a handle too.
    pub fn shared_store<S: Storage + 'static>(mut self, store: Arc<S>) -> Self {
        self.users = Some(store.clone());
        self.orgs = Some(store.clone());
        self.sessions = Some(store.clone());
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

    /// The keys for encryption at rest. Required.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Checks the configuration and assembles the engine.
    ///
    /// Fails with [`Error::Config`] naming the first problem: an invalid origin or policy, a
    /// missing store, pepper or keyring.
    pub fn build(self) -> Result<Latchkey, Error> {
        let missing = |what: &str| Error::Config(format!("no {what} was given to the builder"));
        let config = self.config.validate()?;
        let pepper = self.pepper.ok_or_else(|| missing("pepper"))?;
        let inner = Inner {
            config,
            users: self.users.ok_or_else(|| missing("user store"))?,
            orgs: self.orgs.ok_or_else(|| missing("organization store"))?,
            sessions: self.sessions.ok_or_else(|| missing("session store"))?,
            challenges: self.challenges.ok_or_else(|| missing("challenge store"))?,
            audit_log: self.audit_log.ok_or_else(|| missing("audit log"))?,
            mailer: self.mailer,
            sms: self.sms,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            hasher: SecretHasher::new(&pepper)?,
            keyring: self.keyring.ok_or_else(|| missing("keyring"))?,
        };
        Ok(Latchkey {
            inner: Arc::new(inner),
        })
    }
}

impl fmt::Debug for LatchkeyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatchkeyBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
