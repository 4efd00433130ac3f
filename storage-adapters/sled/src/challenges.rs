//! `ChallengeStore`: lock-free, with `compare_and_swap` and `update_and_fetch`.
//!
//! Records and counters have a fixed binary layout (this is the hot path of every
//! sign-in): `0x01 ‖ expires_at (i64 BE) ‖ version or count (u64 BE) ‖ value`.

use async_trait::async_trait;
use portcullis::model::{ChallengeKey, ChallengeRecord, Counter};
use portcullis::store::{ChallengeStore, StoreResult};
use portcullis::{StoreError, Timestamp};
use sled::{IVec, Tree};

use crate::{Class, Inner, SledStore};

const V1: u8 = 1;
const HEADER: usize = 1 + 8 + 8;

fn key(k: &ChallengeKey) -> Vec<u8> {
    [k.kind.as_str().as_bytes(), b":", k.id.as_bytes()].concat()
}

fn encode(expires_at: Timestamp, number: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.push(V1);
    out.extend_from_slice(&expires_at.unix_millis().to_be_bytes());
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// `(expires_at, version or count, value)`; anything malformed fails closed.
fn decode<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(Timestamp, u64, &'a [u8]), StoreError> {
    let corrupt = StoreError::Corrupt { what };
    let (header, value) = bytes.split_at_checked(HEADER).ok_or(corrupt)?;
    let [
        V1,
        e0,
        e1,
        e2,
        e3,
        e4,
        e5,
        e6,
        e7,
        n0,
        n1,
        n2,
        n3,
        n4,
        n5,
        n6,
        n7,
    ] = *header
    else {
        return Err(StoreError::Corrupt { what });
    };
    let expires = i64::from_be_bytes([e0, e1, e2, e3, e4, e5, e6, e7]);
    let number = u64::from_be_bytes([n0, n1, n2, n3, n4, n5, n6, n7]);
    Ok((Timestamp::from_unix_millis(expires), number, value))
}

fn record(bytes: &[u8]) -> Result<ChallengeRecord, StoreError> {
    let (expires_at, version, value) = decode(bytes, "challenge")?;
    Ok(ChallengeRecord {
        value: value.to_vec(),
        expires_at,
        version,
    })
}

fn counter(bytes: &[u8]) -> Result<Counter, StoreError> {
    let (expires_at, count, _) = decode(bytes, "counter")?;
    Ok(Counter { count, expires_at })
}

fn get_live(tree: &Tree, k: &[u8], now: Timestamp) -> StoreResult<Option<(IVec, ChallengeRecord)>> {
    let Some(raw) = tree.get(k).map_err(crate::backend)? else {
        return Ok(None);
    };
    let rec = record(&raw)?;
    Ok((now < rec.expires_at).then_some((raw, rec)))
}

/// Swaps `old` for `new` if the key still holds `old`. `Ok(false)`: it changed meanwhile.
fn cas(tree: &Tree, k: &[u8], old: Option<&IVec>, new: Option<Vec<u8>>) -> StoreResult<bool> {
    let swapped = tree.compare_and_swap(k, old, new).map_err(crate::backend)?;
    Ok(swapped.is_ok())
}

impl Inner {
    fn take(&self, k: &ChallengeKey, now: Timestamp) -> StoreResult<Option<ChallengeRecord>> {
        let k = key(k);
        let tree = &self.t.challenges;
        loop {
            let Some(raw) = tree.get(&k).map_err(crate::backend)? else {
                return Ok(None);
            };
            let rec = record(&raw)?;
            // Whoever removes exactly these bytes took the record; a racer sees a change.
            if cas(tree, &k, Some(&raw), None)? {
                return Ok((now < rec.expires_at).then_some(rec));
            }
        }
    }
}

#[async_trait]
impl ChallengeStore for SledStore {
    async fn insert(
        &self,
        k: &ChallengeKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let tree = &self.inner.t.challenges;
        let class = match k.kind.survives_crash() {
            true => Class::Critical,
            false => Class::Ordinary,
        };
        let k = key(k);
        let new = encode(expires_at, 0, value);
        loop {
            let old = tree.get(&k).map_err(crate::backend)?;
            if let Some(raw) = &old {
                // A record that does not decode is never taken for expired: fail closed.
                if now < decode(raw, "challenge")?.0 {
                    return Ok(false);
                }
            }
            if cas(tree, &k, old.as_ref(), Some(new.clone()))? {
                self.inner.durable(class).await?;
                return Ok(true);
            }
        }
    }

    async fn get(&self, k: &ChallengeKey, now: Timestamp) -> StoreResult<Option<ChallengeRecord>> {
        Ok(get_live(&self.inner.t.challenges, &key(k), now)?.map(|(_, rec)| rec))
    }

    async fn take(&self, k: &ChallengeKey, now: Timestamp) -> StoreResult<Option<ChallengeRecord>> {
        let taken = self.inner.take(k, now)?;
        if taken.is_some() {
            self.inner.durable(Class::Critical).await?;
        }
        Ok(taken)
    }

    async fn update(
        &self,
        k: &ChallengeKey,
        expected_version: u64,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let tree = &self.inner.t.challenges;
        let k = key(k);
        let Some((raw, rec)) = get_live(tree, &k, now)? else {
            return Ok(false);
        };
        if rec.version != expected_version {
            return Ok(false);
        }
        let new = encode(expires_at, expected_version.saturating_add(1), value);
        // If anything changed since the read, the version moved on or the record went:
        // either way this update lost.
        let applied = cas(tree, &k, Some(&raw), Some(new))?;
        if applied {
            self.inner.durable(Class::Critical).await?;
        }
        Ok(applied)
    }

    async fn delete(&self, k: &ChallengeKey, now: Timestamp) -> StoreResult<bool> {
        let removed = self
            .inner
            .t
            .challenges
            .remove(key(k))
            .map_err(crate::backend)?;
        let live = match removed {
            Some(raw) => {
                now < decode(&raw, "challenge")
                    .map(|d| d.0)
                    .unwrap_or(Timestamp::EPOCH)
            }
            None => false,
        };
        self.inner.durable(Class::Critical).await?;
        Ok(live)
    }

    async fn incr(&self, k: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<Counter> {
        let updated = self
            .inner
            .t
            .counters
            .update_and_fetch(k, |old| match old.map(counter) {
                // An unreadable counter is left as it is and reported below: a rate limit
                // that cannot be read must not restart at zero.
                Some(Err(_)) => old.map(<[u8]>::to_vec),
                Some(Ok(c)) if now < c.expires_at => {
                    Some(encode(c.expires_at, c.count.saturating_add(1), &[]))
                }
                _ => Some(encode(expires_at, 1, &[])),
            })
            .map_err(crate::backend)?;
        let raw = updated.ok_or(StoreError::Corrupt { what: "counter" })?;
        let counted = counter(&raw)?;
        self.inner.durable(Class::Ordinary).await?;
        Ok(counted)
    }

    async fn counter(&self, k: &str, now: Timestamp) -> StoreResult<Option<Counter>> {
        let Some(raw) = self.inner.t.counters.get(k).map_err(crate::backend)? else {
            return Ok(None);
        };
        Ok(Some(counter(&raw)?).filter(|c| now < c.expires_at))
    }

    async fn reset_counter(&self, k: &str, now: Timestamp) -> StoreResult<bool> {
        let removed = self.inner.t.counters.remove(k).map_err(crate::backend)?;
        self.inner.durable(Class::Ordinary).await?;
        Ok(removed
            .and_then(|raw| counter(&raw).ok())
            .is_some_and(|c| now < c.expires_at))
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        purge(&self.inner, now)
    }
}

/// Removes expired challenges and counters. Unreadable ones stay (and keep failing closed).
pub(crate) fn purge(inner: &Inner, now: Timestamp) -> StoreResult<u64> {
    let mut removed = 0;
    for tree in [&inner.t.challenges, &inner.t.counters] {
        for entry in tree.iter() {
            let (k, raw) = entry.map_err(crate::backend)?;
            let expired =
                decode(&raw, "challenge").is_ok_and(|(expires_at, _, _)| expires_at <= now);
            if expired && cas(tree, &k, Some(&raw), None)? {
                removed += 1;
            }
        }
    }
    Ok(removed)
}
