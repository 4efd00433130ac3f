//! # portcullis-memory
//!
//! The reference storage adapter for [portcullis]: everything in process memory, nothing on
//! disk. Fast, and exactly as strict as the durable adapters (the same conformance suite
//! proves it), so tests and demos that pass on it mean something.
//!
//! - Challenges and counters, the hot path of every sign-in, live in 32 shards, each
//!   behind its own mutex; users, organizations, sessions and the log each sit behind one
//!   read-write lock. No lock is ever held across an `.await`: every method does its work
//!   synchronously inside one critical section, which is what makes each promise atomic.
//! - Expired records are invisible at once (reads compare with the engine's `now`); they
//!   are swept from a shard when it has doubled in size since its last sweep, and by
//!   `purge_expired`.
//! - Everything is lost when the process exits. For data that must survive, use
//!   `portcullis-sled` or `portcullis-postgres`.
//!
//! ```
//! use portcullis_memory::MemoryStore;
//! use portcullis::{Config, Portcullis, crypto::{Pepper, Keyring, EncryptionKey}};
//!
//! let auth = Portcullis::builder(Config::new("http://localhost:8080"))
//!     .store(MemoryStore::new())
//!     .pepper(Pepper::generate()?)
//!     .keyring(Keyring::new(1, EncryptionKey::generate()?))
//!     .build()?;
//! # Ok::<(), portcullis::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod challenges;
mod orgs;
mod sessions;
mod shards;
mod users;

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use portcullis::StoreError;
use portcullis::model::{Cursor, Page, PageRequest};

/// All five portcullis stores in memory. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    users: Arc<RwLock<users::Tables>>,
    orgs: Arc<RwLock<orgs::Tables>>,
    sessions: Arc<RwLock<sessions::Tables>>,
    challenges: Arc<challenges::Tables>,
    audit: Arc<RwLock<audit::Tables>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every byte the store holds, as text: users, organizations, sessions and login
    /// events as JSON, challenge records with their raw payloads, counters. For tests
    /// that look for leaked secrets ("no plaintext code is ever stored") and for
    /// debugging; it holds hashes and sealed data, so treat it as confidential.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        read(&self.users).dump_into(&mut out);
        read(&self.orgs).dump_into(&mut out);
        read(&self.sessions).dump_into(&mut out);
        read(&self.audit).dump_into(&mut out);
        self.challenges.dump_into(&mut out);
        out
    }
}

/// Appends one record as a line of JSON, for [`MemoryStore::dump`].
fn dump_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    match serde_json::to_vec(value) {
        Ok(json) => out.extend_from_slice(&json),
        Err(err) => out.extend_from_slice(format!("<unserializable: {err}>").as_bytes()),
    }
    out.push(b'\n');
}

// Every critical section leaves its tables consistent before anything can panic, so a
// poisoned lock still guards consistent data: recover it rather than fail every later call.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Parses a cursor this adapter issued (an id's text).
fn parse_cursor<T: std::str::FromStr>(page: &PageRequest) -> Result<Option<T>, StoreError> {
    page.cursor
        .as_ref()
        .map(|c| c.as_str().parse().map_err(|_| StoreError::InvalidCursor))
        .transpose()
}

/// Takes one page from an iterator already positioned after the cursor; the cursor of the
/// next page is the key of the last item returned.
fn paginate<T, K: ToString>(
    items: impl Iterator<Item = T>,
    page: &PageRequest,
    key: impl Fn(&T) -> K,
) -> Page<T> {
    let limit = page.effective_limit();
    let mut items: Vec<T> = items.take(limit + 1).collect();
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match items.last() {
        Some(last) if more => Some(Cursor::new(key(last).to_string())),
        _ => None,
    };
    Page { items, next_cursor }
}
