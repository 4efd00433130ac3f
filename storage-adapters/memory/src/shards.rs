//! A map split into shards, each behind its own mutex, with lazy sweeping of expired
//! entries.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

use portcullis::Timestamp;

const SHARDS: usize = 32;
const MIN_SWEEP: usize = 1024;

/// Something that expires.
pub(crate) trait Expiring {
    fn expires_at(&self) -> Timestamp;

    fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }
}

#[derive(Debug)]
pub(crate) struct Shard<K, V> {
    pub(crate) map: HashMap<K, V>,
    sweep_at: usize,
}

impl<K: Eq + Hash, V: Expiring> Shard<K, V> {
    /// Drops expired entries once the shard has doubled since the last sweep, so memory
    /// stays bounded by the live set without a background task. Amortised O(1).
    pub(crate) fn maybe_sweep(&mut self, now: Timestamp) {
        if self.map.len() < self.sweep_at {
            return;
        }
        self.map.retain(|_, v| v.is_live(now));
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
    }

    pub(crate) fn purge(&mut self, now: Timestamp) -> u64 {
        let before = self.map.len();
        self.map.retain(|_, v| v.is_live(now));
        (before - self.map.len()) as u64
    }
}

#[derive(Debug)]
pub(crate) struct Shards<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    hasher: RandomState,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Shards {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Eq + Hash, V: Expiring> Shards<K, V> {
    /// The locked shard that holds `key`.
    pub(crate) fn lock<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        lock(&self.shards[index])
    }

    pub(crate) fn purge(&self, now: Timestamp) -> u64 {
        self.shards.iter().map(|s| lock(s).purge(now)).sum()
    }

    /// Calls `f` with every entry, expired or not, one shard at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for shard in &self.shards {
            for (k, v) in &lock(shard).map {
                f(k, v);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
