//! `SessionStore` and `KeyStore`: sessions with every refresh-token hash they have had
//! (`refresh_hashes`, unique), and the token-signing keys.

use async_trait::async_trait;
use portcullis::crypto::{Sealed, SecretHash};
use portcullis::model::{OrgId, Session, SessionId, StoredSigningKey, UserId};
use portcullis::store::{KeyStore, SessionStore, StoreResult};
use portcullis::{StoreError, Timestamp};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::rows::{Run, col, int, parse, secret_hash, ts, ts_opt, uint};
use crate::{Db, PURGE_BATCH, PgStore};

macro_rules! session_columns {
    () => {
        "id, user_id, org_id, refresh_hash, generation, amr, aal, ip, \
     user_agent, created_at, last_seen_at, expires_at, revoked_at"
    };
}

fn session(row: &PgRow) -> StoreResult<Session> {
    const W: &str = "session";
    Ok(Session {
        id: SessionId::from_uuid(col(row, "id", W)?),
        user_id: UserId::from_uuid(col(row, "user_id", W)?),
        org_id: col::<Option<Uuid>>(row, "org_id", W)?.map(OrgId::from_uuid),
        refresh_hash: secret_hash(col(row, "refresh_hash", W)?, W)?,
        generation: uint(row, "generation", W)?,
        amr: col(row, "amr", W)?,
        aal: u8::try_from(col::<i16>(row, "aal", W)?)
            .map_err(|_| StoreError::Corrupt { what: W })?,
        ip: col::<Option<String>>(row, "ip", W)?
            .map(|ip| parse(&ip, W))
            .transpose()?,
        user_agent: col(row, "user_agent", W)?,
        created_at: ts(row, "created_at", W)?,
        last_seen_at: ts(row, "last_seen_at", W)?,
        expires_at: ts(row, "expires_at", W)?,
        revoked_at: ts_opt(row, "revoked_at", W)?,
    })
}

fn signing_key(row: &PgRow) -> StoreResult<StoredSigningKey> {
    const W: &str = "signing_key";
    Ok(StoredSigningKey {
        kid: col(row, "kid", W)?,
        algorithm: col(row, "algorithm", W)?,
        private_key: Sealed::from_bytes(col(row, "private_key", W)?),
        public_key: col(row, "public_key", W)?,
        created_at: ts(row, "created_at", W)?,
    })
}

/// Deletes rows of `table` (keyed by the columns `key`) that expired at or before `now`, a batch per
/// statement, skipping rows another purge holds. Returns how many.
pub(crate) async fn purge(
    store: &PgStore,
    table: &'static str,
    key: &'static str,
    now: Timestamp,
) -> StoreResult<u64> {
    let statement = format!(
        "DELETE FROM {table} WHERE ({key}) IN (\
           SELECT {key} FROM {table} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED\
         ) AND expires_at <= $1"
    );
    let mut total = 0;
    loop {
        // Table and key names come from this crate's constants, never from input.
        let deleted = sqlx::query(AssertSqlSafe(statement.as_str()))
            .bind(now.unix_millis())
            .bind(PURGE_BATCH)
            .execute(&store.pool)
            .await
            .db()?
            .rows_affected();
        total += deleted;
        if deleted < PURGE_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        // The session and the first entry of its hash history, in one statement.
        sqlx::query(concat!(
            "WITH created AS (\
               INSERT INTO sessions (",
            session_columns!(),
            ") \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id\
             ) \
             INSERT INTO refresh_hashes (hash, session_id) SELECT $4, id FROM created"
        ))
        .bind(s.id.as_uuid())
        .bind(s.user_id.as_uuid())
        .bind(s.org_id.map(|o| *o.as_uuid()))
        .bind(&s.refresh_hash.as_bytes()[..])
        .bind(int(s.generation)?)
        .bind(&s.amr)
        .bind(i16::from(s.aal))
        .bind(s.ip.map(|ip| ip.to_string()))
        .bind(s.user_agent.as_deref())
        .bind(s.created_at.unix_millis())
        .bind(s.last_seen_at.unix_millis())
        .bind(s.expires_at.unix_millis())
        .bind(s.revoked_at.map(|t| t.unix_millis()))
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_session(&self, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1 AND expires_at > $2"
        ))
        .bind(id.as_uuid())
        .bind(now.unix_millis())
        .one(&self.pool, session)
        .await
    }

    async fn find_by_refresh_hash(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions \
             WHERE id = (SELECT session_id FROM refresh_hashes WHERE hash = $1) \
               AND expires_at > $2"
        ))
        .bind(&hash.as_bytes()[..])
        .bind(now.unix_millis())
        .one(&self.pool, session)
        .await
    }

    async fn rotate_refresh(
        &self,
        id: SessionId,
        expected: &SecretHash,
        new: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        // Compare-and-swap on the current hash, and the new hash into the history, in one
        // statement: of racing rotations the row lock lets one through, and the others
        // re-check `refresh_hash = $2` against what it wrote.
        sqlx::query(concat!(
            "WITH rotated AS (\
               UPDATE sessions SET refresh_hash = $3, generation = generation + 1, \
                 last_seen_at = $4 \
               WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL AND expires_at > $4 \
               RETURNING ",
            session_columns!(),
            "\
             ), remembered AS (\
               INSERT INTO refresh_hashes (hash, session_id) SELECT $3, id FROM rotated\
             ) \
             SELECT ",
            session_columns!(),
            " FROM rotated"
        ))
        .bind(id.as_uuid())
        .bind(&expected.as_bytes()[..])
        .bind(&new.as_bytes()[..])
        .bind(now.unix_millis())
        .one(&self.pool, session)
        .await
    }

    async fn revoke_session(&self, id: SessionId, now: Timestamp) -> StoreResult<bool> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id.as_uuid())
        .bind(now.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(revoked == 1)
    }

    async fn revoke_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(user.as_uuid())
        .bind(now.unix_millis())
        .affected(&self.pool)
        .await
    }

    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(user.as_uuid())
        .bind(now.unix_millis())
        .all(&self.pool, session)
        .await
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        // refresh_hashes' foreign key takes the history with them.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.as_uuid())
            .affected(&self.pool)
            .await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        purge(self, "sessions", "id", now).await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn add_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        // Announced to every instance following key changes, when (and only if) it commits.
        sqlx::query(concat!(
            "WITH added AS (\
               INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
               VALUES ($1, $2, $3, $4, $5) RETURNING kid\
             ) SELECT pg_notify(",
            key_channel!(),
            ", kid) FROM added"
        ))
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(key.private_key.as_bytes())
        .bind(&key.public_key)
        .bind(key.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        sqlx::query(
            "SELECT kid, algorithm, private_key, public_key, created_at FROM signing_keys \
             ORDER BY created_at, kid",
        )
        .all(&self.pool, signing_key)
        .await
    }

    async fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let deleted = sqlx::query(concat!(
            "WITH gone AS (DELETE FROM signing_keys WHERE kid = $1 RETURNING kid) \
             SELECT pg_notify(",
            key_channel!(),
            ", kid) FROM gone"
        ))
        .bind(kid)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(deleted.is_some())
    }
}
