//! # portcullis-sled
//!
//! The embedded, durable storage adapter for [portcullis]: every store in one
//! [sled](https://docs.rs/sled/0.34.7) database directory, nothing to install.
//!
//! ```no_run
//! use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
//! use portcullis::{Config, Portcullis};
//! use portcullis_sled::SledStore;
//!
//! let auth = Portcullis::builder(Config::new("http://localhost:8080"))
//!     .store(SledStore::open("./portcullis-data")?)
//!     .pepper(Pepper::generate()?)
//!     .keyring(Keyring::new(1, EncryptionKey::generate()?))
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout
//!
//! One tree per record kind and one per index (email → user, phone → user, credential id
//! → user, slug / domain / client id → organization, refresh-token hash → session…). Every
//! value starts with a format version byte, so the format can migrate. Users, sessions and
//! organizations — the records there are millions of — are written in a compact binary
//! layout (version 2: raw ids and hashes, varints, length-prefixed text); the other kinds
//! are JSON (version 1). Users, sessions and organizations written as JSON by earlier
//! releases still read, and are rewritten compactly when they next change: a data
//! directory opens as it is, with no migration. A value that does not decode fails closed
//! with [`StoreError::Corrupt`](portcullis::StoreError) — a corrupted challenge is never
//! "valid".
//!
//! ## Atomicity
//!
//! Writes that touch several trees (a user and its email index, a cascade on deletion, a
//! role removed from memberships) are applied in one sled transaction, and writers of one
//! store kind are serialized, so the reads they are computed from cannot go stale.
//! Single-use records (`take`), compare-and-swap updates and counters use sled's lock-free
//! `compare_and_swap` / `update_and_fetch`: the hot path of every sign-in takes no lock.
//! Reads take no lock either; an index read and its record read may straddle a write, so
//! a record is returned only if it still carries the key it was found by.
//!
//! ## Durability
//!
//! sled writes to disk in the background every 500 ms, so an acknowledged write can be
//! lost in a crash. With [`Durability::SecurityCritical`] (the default), writes whose loss
//! would reopen a door — consuming a single-use secret, rotating or revoking refresh
//! tokens and sessions, adding or removing credentials and factors, changing or blocking a
//! user, signing keys — are flushed before they return. Concurrent durable writes share
//! one flush (group commit): each waits for the next flush to finish instead of issuing
//! its own. Rate-limit counters are ordinary writes: a crash may return up to 500 ms of
//! counted attempts (a few tries at most, against limits of tens per window). Dropping
//! the last handle flushes synchronously: drop it outside async tasks, or call
//! [`SledStore::close`] from `spawn_blocking`, if a millisecond of blocking matters.
//!
//! At open, an unclean shutdown (the marker a clean close removes is still there) voids
//! every outstanding challenge — links, codes, ceremony states, MFA tokens — so nothing
//! spent before a crash can come back. Expired records are invisible to reads and removed by
//! the engine's sweep (`Portcullis::sweep_every`), through the stores' `purge_expired`:
//! the adapter never reads a clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod challenges;
mod codec;
mod commit;
mod orgs;
mod records;
mod sessions;
mod tx;
mod users;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portcullis::StoreError;

use crate::commit::GroupCommit;
use crate::tx::Trees;

/// When writes reach the disk before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every write is flushed before it returns.
    Always,
    /// Security-critical writes are flushed before they return; the rest within sled's
    /// background flush (500 ms). The default.
    #[default]
    SecurityCritical,
    /// Nothing is flushed explicitly (tests, throwaway demos).
    Background,
}

/// Whether a write must be on disk before it is acknowledged (under
/// [`Durability::SecurityCritical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Critical,
    Ordinary,
}

/// How to open a [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledConfig {
    path: std::path::PathBuf,
    durability: Durability,
    temporary: bool,
}

impl SledConfig {
    /// A store in the directory `path` (created if missing), with security-critical
    /// durability.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SledConfig {
            path: path.as_ref().to_path_buf(),
            durability: Durability::default(),
            temporary: false,
        }
    }

    /// Deletes the directory when the store is dropped (tests, throwaway demos).
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// When writes reach the disk.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

/// Errors opening a [`SledStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SledError {
    /// sled could not open or write the database.
    #[error("sled failed")]
    Sled(#[from] sled::Error),
    /// A record in the database does not decode.
    #[error("stored data is unreadable")]
    Store(#[from] StoreError),
}

impl SledError {
    /// A stable name for the variant.
    pub fn code(&self) -> &'static str {
        match self {
            SledError::Sled(_) => "sled",
            SledError::Store(_) => "store",
        }
    }
}

impl From<SledError> for portcullis::Error {
    fn from(err: SledError) -> Self {
        match err {
            SledError::Store(store) => store.into(),
            SledError::Sled(sled) => StoreError::backend(sled).into(),
        }
    }
}

/// All five portcullis stores in one sled database. Clones share it.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) t: Trees,
    users_lock: Mutex<()>,
    orgs_lock: Mutex<()>,
    sessions_lock: Mutex<()>,
    durability: Durability,
    commit: GroupCommit,
    recovered_unclean: bool,
}

const META_STATE: &[u8] = b"state";
const STATE_OPEN: &[u8] = b"open";
const STATE_CLEAN: &[u8] = b"clean";

impl SledStore {
    /// Opens (or creates) a store in the directory `path` with the default configuration.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SledError> {
        Self::with_config(SledConfig::new(path))
    }

    /// Opens (or creates) a store.
    pub fn with_config(config: SledConfig) -> Result<Self, SledError> {
        let db = sled::Config::new()
            .path(&config.path)
            .temporary(config.temporary)
            .open()?;
        let t = Trees::open(&db)?;
        let unclean = t
            .meta
            .get(META_STATE)?
            .is_some_and(|s| s.as_ref() == STATE_OPEN);
        if unclean {
            void_challenges(&t)?;
        }
        audit::index_org_events(&t)?;
        t.meta.insert(META_STATE, STATE_OPEN)?;
        db.flush()?;
        let inner = Arc::new(Inner {
            commit: GroupCommit::new(db.clone()),
            db,
            t,
            users_lock: Mutex::new(()),
            orgs_lock: Mutex::new(()),
            sessions_lock: Mutex::new(()),
            durability: config.durability,
            recovered_unclean: unclean,
        });
        Ok(SledStore { inner })
    }

    /// Whether the last shutdown was unclean (so outstanding challenges were voided).
    pub fn recovered_from_crash(&self) -> bool {
        self.inner.recovered_unclean
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, SledError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// Checks that user indexes and records agree both ways: every email and phone entry
    /// points to a user carrying it, every user's email and phone are indexed, every
    /// passkey entry has its credential. Reports the first disagreement. A full scan: for
    /// operators and tests, not hot paths.
    pub fn check_indexes(&self) -> Result<(), StoreError> {
        users::check_indexes(&self.inner.t)
    }

    /// Counts the records in the main trees (a full scan: for monitoring, not hot paths).
    pub fn stats(&self) -> SledStats {
        let t = &self.inner.t;
        SledStats {
            users: t.users.len(),
            sessions: t.sessions.len(),
            challenges: t.challenges.len(),
            counters: t.counters.len(),
        }
    }

    /// Releases this handle: flushes everything and, if it is the last handle, marks the
    /// shutdown clean (what dropping the last handle also does; call
    /// this to see the error, if any). While other handles live, the store stays open and
    /// a crash is still recognised as one.
    pub fn close(self) -> Result<(), SledError> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.close(),
            Err(shared) => {
                shared.db.flush()?;
                Ok(())
            }
        }
    }
}

impl Inner {
    fn close(&self) -> Result<(), SledError> {
        self.db.flush()?;
        self.t.meta.insert(META_STATE, STATE_CLEAN)?;
        self.db.flush()?;
        Ok(())
    }

    /// Runs a write of one store kind: computed under that kind's lock from the committed
    /// state, applied in one transaction, then made durable per `class` (after the lock is
    /// released, so concurrent writers share the flush).
    pub(crate) async fn write<T>(
        &self,
        kind_lock: &Mutex<()>,
        class: Class,
        f: impl FnOnce(&Trees, &mut tx::WriteSet) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = {
            let _serialized = lock(kind_lock);
            let mut writes = tx::WriteSet::default();
            let value = f(&self.t, &mut writes)?;
            writes.commit()?;
            value
        };
        self.durable(class).await?;
        Ok(value)
    }

    /// Makes a write durable per the configured policy.
    pub(crate) async fn durable(&self, class: Class) -> Result<(), StoreError> {
        let flush = match self.durability {
            Durability::Always => true,
            Durability::SecurityCritical => class == Class::Critical,
            Durability::Background => false,
        };
        if flush {
            self.commit.flush().await?;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: an error here means the next open treats this as a crash, which
        // only voids outstanding challenges.
        let _ = self.close();
    }
}

/// After a crash, whatever was spent just before it may not be on disk as spent: every
/// outstanding challenge is voided, but for the kinds the contract says survive one
/// ([`ChallengeKind::survives_crash`](portcullis::model::ChallengeKind::survives_crash)),
/// which are flushed when written.
fn void_challenges(t: &Trees) -> Result<(), SledError> {
    let keep: Vec<String> = portcullis::model::ChallengeKind::ALL
        .into_iter()
        .filter(|kind| kind.survives_crash())
        .map(|kind| format!("{}:", kind.as_str()))
        .collect();
    for key in t.challenges.iter().keys() {
        let key = key?;
        if !keep.iter().any(|k| key.starts_with(k.as_bytes())) {
            t.challenges.remove(key)?;
        }
    }
    Ok(())
}

/// How many records a store holds, for monitoring (and for tests that watch the sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SledStats {
    /// Users.
    pub users: usize,
    /// Sessions, live or not yet swept.
    pub sessions: usize,
    /// Challenges (links, codes, ceremony states…), live or not yet swept.
    pub challenges: usize,
    /// Rate-limit counters, live or not yet swept.
    pub counters: usize,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn backend(err: impl Into<portcullis::BoxError>) -> StoreError {
    StoreError::backend(err)
}
