//! The engine's raw parts, beneath its rules: the keyed hasher, the keyring and the stores.
//!
//! DANGER: nothing here checks a budget, a stamp, a session or a permission, writes the
//! login log or keeps a secret single-use. A record written through a store directly is
//! trusted as the engine's own. These are for migrations, operator tools, tests and
//! benchmarks that know the storage contract; an application signs people in through the
//! engine's handles ([`Portcullis::passwords`](crate::Portcullis::passwords),
//! [`Portcullis::tokens`](crate::Portcullis::tokens), …), never through these.

use std::sync::Arc;

use crate::crypto::{Keyring, SecretHasher};
use crate::engine::Inner;
use crate::store::{ChallengeStore, KeyStore, OrgStore, SessionStore, UserStore};

/// The engine's raw parts, from [`Portcullis::danger`](crate::Portcullis::danger).
#[derive(Clone, Copy)]
pub struct Danger<'a> {
    inner: &'a Inner,
}

impl<'a> Danger<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Danger { inner }
    }

    /// The keyed hasher for secrets people receive.
    pub fn hasher(&self) -> &'a SecretHasher {
        &self.inner.hasher
    }

    /// The keyring for data at rest.
    pub fn keyring(&self) -> &'a Keyring {
        &self.inner.keyring
    }

    /// The user store.
    pub fn user_store(&self) -> &'a Arc<dyn UserStore> {
        &self.inner.users
    }

    /// The organization store.
    pub fn org_store(&self) -> &'a Arc<dyn OrgStore> {
        &self.inner.orgs
    }

    /// The session store.
    pub fn session_store(&self) -> &'a Arc<dyn SessionStore> {
        &self.inner.sessions
    }

    /// The store of token-signing keys.
    pub fn key_store(&self) -> &'a Arc<dyn KeyStore> {
        &self.inner.key_store
    }

    /// The challenge store.
    pub fn challenge_store(&self) -> &'a Arc<dyn ChallengeStore> {
        &self.inner.challenges
    }
}
