//! `ChallengeStore`: ephemeral records and windowed counters, each kept single-use or
//! exact by one statement.

use async_trait::async_trait;
use portcullis::Timestamp;
use portcullis::model::{ChallengeKey, ChallengeRecord, Counter};
use portcullis::store::{ChallengeStore, StoreResult};
use sqlx::postgres::PgRow;

use crate::rows::{Run, col, int, ts, uint};
use crate::sessions::purge;
use crate::{Db, PgStore};

fn record(row: &PgRow) -> StoreResult<ChallengeRecord> {
    const W: &str = "challenge";
    Ok(ChallengeRecord {
        value: col(row, "value", W)?,
        expires_at: ts(row, "expires_at", W)?,
        version: uint(row, "version", W)?,
    })
}

fn counter(row: &PgRow) -> StoreResult<Counter> {
    const W: &str = "counter";
    Ok(Counter {
        count: uint(row, "count", W)?,
        expires_at: ts(row, "expires_at", W)?,
    })
}

#[async_trait]
impl ChallengeStore for PgStore {
    async fn insert(
        &self,
        key: &ChallengeKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // An expired record under the key is replaced; a live one wins. Racing inserts
        // queue on the key's index entry and re-check the live record's expiry.
        let inserted = sqlx::query(
            "INSERT INTO challenges (kind, id, value, expires_at, version) \
             VALUES ($1, $2, $3, $4, 0) \
             ON CONFLICT (kind, id) DO UPDATE SET value = EXCLUDED.value, \
               expires_at = EXCLUDED.expires_at, version = 0 \
             WHERE challenges.expires_at <= $5",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(value)
        .bind(expires_at.unix_millis())
        .bind(now.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(inserted == 1)
    }

    async fn get(
        &self,
        key: &ChallengeKey,
        now: Timestamp,
    ) -> StoreResult<Option<ChallengeRecord>> {
        sqlx::query(
            "SELECT value, expires_at, version FROM challenges \
             WHERE kind = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(now.unix_millis())
        .one(&self.pool, record)
        .await
    }

    async fn take(
        &self,
        key: &ChallengeKey,
        now: Timestamp,
    ) -> StoreResult<Option<ChallengeRecord>> {
        sqlx::query(
            "DELETE FROM challenges WHERE kind = $1 AND id = $2 AND expires_at > $3 \
             RETURNING value, expires_at, version",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(now.unix_millis())
        .one(&self.pool, record)
        .await
    }

    async fn update(
        &self,
        key: &ChallengeKey,
        expected_version: u64,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE challenges SET value = $4, expires_at = $5, version = version + 1 \
             WHERE kind = $1 AND id = $2 AND version = $3 AND expires_at > $6",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(int(expected_version)?)
        .bind(value)
        .bind(expires_at.unix_millis())
        .bind(now.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    async fn delete(&self, key: &ChallengeKey, now: Timestamp) -> StoreResult<bool> {
        let live: Option<bool> = sqlx::query_scalar(
            "DELETE FROM challenges WHERE kind = $1 AND id = $2 RETURNING expires_at > $3",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .bind(now.unix_millis())
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(live == Some(true))
    }

    async fn incr(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<Counter> {
        // A live window counts on; an expired one starts again at 1 with the new expiry.
        sqlx::query(
            "INSERT INTO counters (key, count, expires_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN counters.expires_at > $3 THEN counters.count + 1 ELSE 1 END, \
               expires_at = CASE WHEN counters.expires_at > $3 THEN counters.expires_at \
                 ELSE EXCLUDED.expires_at END \
             RETURNING count, expires_at",
        )
        .bind(key)
        .bind(expires_at.unix_millis())
        .bind(now.unix_millis())
        .fetch_one(&self.pool)
        .await
        .db()
        .and_then(|row| counter(&row))
    }

    async fn counter(&self, key: &str, now: Timestamp) -> StoreResult<Option<Counter>> {
        sqlx::query("SELECT count, expires_at FROM counters WHERE key = $1 AND expires_at > $2")
            .bind(key)
            .bind(now.unix_millis())
            .one(&self.pool, counter)
            .await
    }

    async fn reset_counter(&self, key: &str, now: Timestamp) -> StoreResult<bool> {
        let live: Option<bool> =
            sqlx::query_scalar("DELETE FROM counters WHERE key = $1 RETURNING expires_at > $2")
                .bind(key)
                .bind(now.unix_millis())
                .fetch_optional(&self.pool)
                .await
                .db()?;
        Ok(live == Some(true))
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let records = purge(self, "challenges", "kind, id", now).await?;
        let counters = purge(self, "counters", "key", now).await?;
        Ok(records + counters)
    }
}
