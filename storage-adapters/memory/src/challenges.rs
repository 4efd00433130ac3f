//! `ChallengeStore`: sharded records and counters.

use async_trait::async_trait;
use portcullis::Timestamp;
use portcullis::model::{ChallengeKey, ChallengeRecord, Counter};
use portcullis::store::{ChallengeStore, StoreResult};

use crate::MemoryStore;
use crate::shards::{Expiring, Shards};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    records: Shards<ChallengeKey, ChallengeRecord>,
    counters: Shards<String, Counter>,
}

impl Expiring for ChallengeRecord {
    fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

impl Expiring for Counter {
    fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

impl Tables {
    /// Every key and raw value, for [`MemoryStore::dump`].
    pub(crate) fn dump_into(&self, out: &mut Vec<u8>) {
        self.records.for_each(|key, record| {
            out.extend_from_slice(format!("{key:?} ").as_bytes());
            out.extend_from_slice(&record.value);
            out.push(b'\n');
        });
        self.counters.for_each(|key, counter| {
            out.extend_from_slice(format!("{key} {}\n", counter.count).as_bytes());
        });
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn insert(
        &self,
        key: &ChallengeKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut shard = self.challenges.records.lock(key);
        shard.maybe_sweep(now);
        if shard.map.get(key).is_some_and(|r| r.is_live(now)) {
            return Ok(false);
        }
        let record = ChallengeRecord {
            value: value.to_vec(),
            expires_at,
            version: 0,
        };
        shard.map.insert(key.clone(), record);
        Ok(true)
    }

    async fn get(
        &self,
        key: &ChallengeKey,
        now: Timestamp,
    ) -> StoreResult<Option<ChallengeRecord>> {
        let shard = self.challenges.records.lock(key);
        Ok(shard.map.get(key).filter(|r| r.is_live(now)).cloned())
    }

    async fn take(
        &self,
        key: &ChallengeKey,
        now: Timestamp,
    ) -> StoreResult<Option<ChallengeRecord>> {
        let mut shard = self.challenges.records.lock(key);
        Ok(shard.map.remove(key).filter(|r| r.is_live(now)))
    }

    async fn update(
        &self,
        key: &ChallengeKey,
        expected_version: u64,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut shard = self.challenges.records.lock(key);
        let Some(record) = shard.map.get_mut(key).filter(|r| r.is_live(now)) else {
            return Ok(false);
        };
        if record.version != expected_version {
            return Ok(false);
        }
        record.value = value.to_vec();
        record.expires_at = expires_at;
        record.version = expected_version.saturating_add(1);
        Ok(true)
    }

    async fn delete(&self, key: &ChallengeKey, now: Timestamp) -> StoreResult<bool> {
        let mut shard = self.challenges.records.lock(key);
        Ok(shard.map.remove(key).is_some_and(|r| r.is_live(now)))
    }

    async fn incr(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<Counter> {
        let mut shard = self.challenges.counters.lock(key);
        shard.maybe_sweep(now);
        let counter = match shard.map.get_mut(key).filter(|c| c.is_live(now)) {
            Some(live) => {
                live.count = live.count.saturating_add(1);
                *live
            }
            None => {
                let fresh = Counter {
                    count: 1,
                    expires_at,
                };
                shard.map.insert(key.to_owned(), fresh);
                fresh
            }
        };
        Ok(counter)
    }

    async fn counter(&self, key: &str, now: Timestamp) -> StoreResult<Option<Counter>> {
        let shard = self.challenges.counters.lock(key);
        Ok(shard.map.get(key).filter(|c| c.is_live(now)).copied())
    }

    async fn reset_counter(&self, key: &str, now: Timestamp) -> StoreResult<bool> {
        let mut shard = self.challenges.counters.lock(key);
        Ok(shard.map.remove(key).is_some_and(|c| c.is_live(now)))
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(self.challenges.records.purge(now) + self.challenges.counters.purge(now))
    }
}
