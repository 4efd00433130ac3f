//! The verified-token cache: a repeated token skips its signature check.
//!
//! Keyed by SHA-256 of the token, so the cache holds no bearer token. Bounded: each shard
//! evicts its least recently used entry when full. Only tokens whose signature, issuer and
//! audience checked out are cached; expiry is checked on every hit by the caller, and the
//! cache is emptied whenever a key is retired.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use super::jwt::Verified;

const SHARDS: usize = 16;

type Key = [u8; 32];

pub(crate) struct VerifiedCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Key, (Arc<Verified>, u64)>,
    /// Last use → key; the first entry is the least recently used.
    recency: BTreeMap<u64, Key>,
    tick: u64,
}

impl VerifiedCache {
    /// A cache of at most about `capacity` tokens; 0 disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = if capacity == 0 { 0 } else { SHARDS };
        VerifiedCache {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            per_shard,
        }
    }

    pub(crate) fn key(token: &str) -> Key {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, key: &Key) -> Option<MutexGuard<'_, Shard>> {
        let shard = self
            .shards
            .get(usize::from(key[0]) % self.shards.len().max(1))?;
        Some(shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Verified>> {
        let mut shard = self.shard(key)?;
        shard.tick += 1;
        let tick = shard.tick;
        let (claims, last) = shard.entries.get_mut(key)?;
        let claims = claims.clone();
        let previous = std::mem::replace(last, tick);
        shard.recency.remove(&previous);
        shard.recency.insert(tick, *key);
        Some(claims)
    }

    pub(crate) fn insert(&self, key: Key, claims: Arc<Verified>) {
        let per_shard = self.per_shard;
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        shard.tick += 1;
        let tick = shard.tick;
        if let Some((_, last)) = shard.entries.insert(key, (claims, tick)) {
            shard.recency.remove(&last);
        }
        shard.recency.insert(tick, key);
        while shard.entries.len() > per_shard {
            let Some((_, oldest)) = shard.recency.pop_first() else {
                break;
            };
            shard.entries.remove(&oldest);
        }
    }

    pub(crate) fn remove(&self, key: &Key) {
        if let Some(mut shard) = self.shard(key)
            && let Some((_, last)) = shard.entries.remove(key)
        {
            shard.recency.remove(&last);
        }
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.entries.clear();
            shard.recency.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SessionId, UserId};

    fn claims(n: i64) -> Arc<Verified> {
        Arc::new(Verified {
            kid: "k".into(),
            claims: super::super::jwt::Claims {
                iss: "i".into(),
                sub: UserId::generate(),
                aud: "a".into(),
                exp: n,
                iat: 0,
                nbf: 0,
                jti: n.to_string(),
                sid: SessionId::generate(),
                org: None,
                roles: vec![],
                perms: vec![],
                perms_omitted: false,
                amr: vec![],
                acr: "aal1".into(),
                rev: None,
                client_id: None,
                scope: None,
            },
        })
    }

    #[test]
    fn bounded_and_evicts_the_least_recently_used() {
        let cache = VerifiedCache::new(16); // one entry per shard
        let a = [0u8; 32]; // shard 0
        let mut b = [0u8; 32];
        b[1] = 1; // also shard 0
        cache.insert(a, claims(1));
        cache.insert(b, claims(2));
        assert!(cache.get(&a).is_none(), "a was evicted");
        assert_eq!(cache.get(&b).unwrap().claims.exp, 2);
        for i in 0..200u8 {
            let mut k = [i; 32];
            k[31] = 7;
            cache.insert(k, claims(i64::from(i)));
        }
        assert!(cache.len() <= 16);
    }

    #[test]
    fn recently_used_entries_survive() {
        let cache = VerifiedCache::new(32); // two per shard
        let key = |n: u8| {
            let mut k = [0u8; 32];
            k[1] = n;
            k
        };
        cache.insert(key(1), claims(1));
        cache.insert(key(2), claims(2));
        assert!(cache.get(&key(1)).is_some());
        cache.insert(key(3), claims(3));
        assert!(cache.get(&key(1)).is_some(), "used recently");
        assert!(cache.get(&key(2)).is_none(), "least recently used");
        cache.remove(&key(1));
        assert!(cache.get(&key(1)).is_none());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = VerifiedCache::new(0);
        cache.insert([1; 32], claims(1));
        assert!(cache.get(&[1; 32]).is_none());
    }
}
