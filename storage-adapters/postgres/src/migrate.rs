//! The schema's versioned, forward-only migrations, embedded in the crate.

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use crate::{PgError, PgStore};

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version: applied in ascending order, each once.
    pub version: i32,
    /// A short name.
    pub name: &'static str,
    /// The SQL, run in one transaction with every other pending step.
    pub sql: &'static str,
}

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "sso",
        sql: include_str!("../migrations/0002_sso.sql"),
    },
    Migration {
        version: 3,
        name: "provider",
        sql: include_str!("../migrations/0003_provider.sql"),
    },
    Migration {
        version: 4,
        name: "org_log",
        sql: include_str!("../migrations/0004_org_log.sql"),
    },
    Migration {
        version: 5,
        name: "passkey_rp",
        sql: include_str!("../migrations/0005_passkey_rp.sql"),
    },
];

fn checksum(sql: &str) -> Vec<u8> {
    Sha256::digest(sql.as_bytes()).to_vec()
}

/// The advisory lock that serializes migrators of one schema across instances.
fn lock_key(schema: Option<&str>) -> i64 {
    let digest = Sha256::digest(format!("portcullis.migrate/{}", schema.unwrap_or("")));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl PgStore {
    /// Brings the schema up to date: creates the configured schema if missing, then applies
    /// every embedded migration the database has not had yet, all in one transaction, so a
    /// failure leaves the database as it was. Safe to call from every instance at start:
    /// concurrent callers wait for one another. Refuses a database migrated by a newer
    /// release ([`PgError::SchemaTooNew`]) or whose applied migrations differ from this
    /// build's ([`PgError::ChecksumMismatch`]). Returns how many migrations it applied.
    pub async fn migrate(&self) -> Result<usize, PgError> {
        let step = |version| move |source| PgError::Migrate { version, source };
        let mut tx = self.pool.begin().await.map_err(PgError::Connect)?;
        // A migration may build indexes over big tables, and waits for another instance's:
        // the pool's statement timeout does not apply here.
        sqlx::raw_sql("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(step(0))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(self.schema.as_deref()))
            .execute(&mut *tx)
            .await
            .map_err(step(0))?;
        if let Some(schema) = &self.schema {
            // Checked as a plain identifier when the store was configured.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(step(0))?;
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS portcullis_migrations (
                version     INTEGER PRIMARY KEY,
                name        TEXT NOT NULL,
                checksum    BYTEA NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut *tx)
        .await
        .map_err(step(0))?;
        let applied = sqlx::query("SELECT version, checksum FROM portcullis_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(step(0))?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        let mut done = Vec::with_capacity(applied.len());
        for row in &applied {
            let version: i32 = row.try_get("version").map_err(step(0))?;
            let sum: Vec<u8> = row.try_get("checksum").map_err(step(version))?;
            match MIGRATIONS.iter().find(|m| m.version == version) {
                Some(m) if checksum(m.sql) == sum => done.push(version),
                Some(_) => return Err(PgError::ChecksumMismatch { version }),
                None => {
                    return Err(PgError::SchemaTooNew {
                        found: version,
                        known,
                    });
                }
            }
        }
        let mut count = 0;
        for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(step(migration.version))?;
            sqlx::query(
                "INSERT INTO portcullis_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(checksum(migration.sql))
            .execute(&mut *tx)
            .await
            .map_err(step(migration.version))?;
            count += 1;
        }
        tx.commit().await.map_err(step(known))?;
        if count > 0 {
            tracing::info!(
                applied = count,
                version = known,
                "portcullis schema migrated"
            );
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }

    #[test]
    fn each_schema_has_its_own_lock() {
        assert_ne!(lock_key(Some("a")), lock_key(Some("b")));
        assert_ne!(lock_key(None), lock_key(Some("a")));
    }
}
