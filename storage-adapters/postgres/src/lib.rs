//! # portcullis-postgres
//!
//! The PostgreSQL storage adapter for [portcullis]: every store in one database, shared by
//! as many application instances as you run.
//!
//! ```no_run
//! use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
//! use portcullis::{Config, Portcullis};
//! use portcullis_postgres::PgStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect("postgres://app@db.internal/auth").await?;
//! store.migrate().await?;
//! let auth = Portcullis::builder(Config::new("https://auth.example.com"))
//!     .store(store)
//!     .pepper(Pepper::generate()?)
//!     .keyring(Keyring::new(1, EncryptionKey::generate()?))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! ## Driver
//!
//! [sqlx](https://docs.rs/sqlx) with runtime-checked queries (no query macros: a fresh
//! clone builds without a database), its connection pool, and TLS by rustls (never
//! OpenSSL). Use `sslmode=require` (or `verify-full`) in the URL to encrypt the
//! connection.
//!
//! ## Atomicity
//!
//! Every promise of the storage contract is kept by the database under its default READ
//! COMMITTED isolation, never by a lock in the application, so any number of instances
//! can share one database:
//!
//! - uniqueness (normalized email, phone, credential id, slug, domain, client id, refresh
//!   token hash, API credential hash, federated identity, the one verified claim on a
//!   domain) is a unique index;
//! - a single-use record is taken with `DELETE … RETURNING`;
//! - a refresh token rotates with `UPDATE … WHERE refresh_hash = $expected RETURNING`;
//! - insert-if-absent is `INSERT … ON CONFLICT DO UPDATE … WHERE expired`;
//! - counters are `INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`;
//! - cascades (a user's passkeys and federated identities, an organization's roles, SSO
//!   connections and domain claims, a deleted role leaving every membership) are foreign
//!   keys.
//!
//! Expiry compares with the engine's time, passed in, never with the database's `now()`:
//! a manual test clock works as it does on every adapter. The engine's purge
//! (`Portcullis::sweep_every`) deletes expired rows in batches of [`PURGE_BATCH`], each
//! batch its own short statement, skipping rows another instance's purge holds.
//!
//! ## Many instances
//!
//! Every instance sees every write at once, with one exception that is the engine's: the
//! signing keys, which each instance caches and reads again within a minute
//! (`portcullis::tokens::KEY_REFRESH`; a token with an unknown kid makes it read them at
//! once). [`PgStore::follow_key_changes`] closes that window: adding or deleting a key
//! announces it (`NOTIFY`, on commit), and each following instance reads the keys again
//! within milliseconds, so a rotation signs and a retirement refuses everywhere at once.
//!
//! ## Failures
//!
//! An operation that cannot get a connection within [`PgConfig::acquire_timeout`], loses
//! its connection, or finds the server shutting down fails with
//! [`portcullis::StoreError::Unavailable`] (the engine's
//! `Error::Unavailable`, HTTP 503), never hangs; a write of several statements runs in one
//! transaction, so it is applied whole or not at all. The pool replaces dead connections by
//! itself: after a database restart the next operations succeed without rebuilding the
//! store.
//!
//! ## Schema
//!
//! Versioned, forward-only migrations are embedded in the crate and applied by
//! [`PgStore::migrate`], which any number of instances may call at once (an advisory lock
//! serializes them). [`PgConfig::schema`] puts the tables in a schema of their own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The SQL of the channel signing-key changes are announced on: one per schema.
macro_rules! key_channel {
    () => {
        "'portcullis_signing_keys.' || current_schema()"
    };
}

mod audit;
mod challenges;
mod follow;
mod migrate;
mod orgs;
mod rows;
mod sessions;
mod users;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use portcullis::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use crate::follow::KeyFollower;
pub use crate::migrate::{MIGRATIONS, Migration};

/// How many expired rows one purge statement deletes at most.
pub const PURGE_BATCH: i64 = 1_000;

/// What can go wrong setting up the store (its operations return
/// [`portcullis::StoreError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL does not parse.
    #[error("invalid Postgres URL: {0}")]
    InvalidUrl(String),
    /// The schema name is not a plain lowercase identifier.
    #[error(
        "invalid schema name {0:?}: expected 1 to 63 of a-z, 0-9 and _, not starting with a digit"
    )]
    InvalidSchema(String),
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to Postgres")]
    Connect(#[source] sqlx::Error),
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} failed")]
    Migrate {
        /// The migration's version.
        version: i32,
        /// What the database said.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds a migration this build does not know: it was migrated by a newer
    /// release. Migrations are forward-only; run that release (or newer).
    #[error("the database schema is at version {found}, newer than this build's {known}")]
    SchemaTooNew {
        /// The newest version applied to the database.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// An applied migration differs from the one this build embeds (edited after release).
    #[error("migration {version} in the database differs from this build's")]
    ChecksumMismatch {
        /// The migration's version.
        version: i32,
    },
}

impl PgError {
    /// A stable snake_case name for the variant.
    pub fn code(&self) -> &'static str {
        match self {
            PgError::InvalidUrl(_) => "invalid_url",
            PgError::InvalidSchema(_) => "invalid_schema",
            PgError::Connect(_) => "connect",
            PgError::Migrate { .. } => "migrate",
            PgError::SchemaTooNew { .. } => "schema_too_new",
            PgError::ChecksumMismatch { .. } => "checksum_mismatch",
        }
    }
}

/// How to connect a [`PgStore`]: the URL, the pool and its timeouts, the schema.
#[derive(Clone)]
pub struct PgConfig {
    url: String,
    schema: Option<String>,
    application_name: String,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("PgConfig")
            .field("schema", &self.schema)
            .field("application_name", &self.application_name)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// A store at `url` (`postgres://user:password@host:port/database?sslmode=…`) with the
    /// defaults: at most 10 connections, none kept open when idle beyond 10 minutes, 5 s
    /// to get a connection (a free one, or a new one connected), 10 s per statement,
    /// tables in the URL's default schema (`search_path`, normally `public`).
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: None,
            application_name: "portcullis".to_owned(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }

    /// Puts (and looks for) the tables in this schema, created by [`PgStore::migrate`] if
    /// missing: several deployments, or each test, in one database. A plain lowercase
    /// identifier (`a-z`, `0-9`, `_`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The `application_name` its connections show in `pg_stat_activity` (default
    /// `portcullis`): name each instance to tell them apart.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// The most connections the pool opens (default 10). Each instance has its own pool:
    /// keep instances × this under the server's `max_connections`.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation may wait for a connection before it fails with a timeout
    /// error (default 5 s): for a free one when all are busy, and for a new one to be
    /// connected (this is also the connect timeout). A database that does not answer makes
    /// operations fail after this, never hang.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` of every connection (default 10 s; `None`
    /// leaves the server's setting).
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How long an unused connection stays open (default 10 minutes; `None`: forever).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Opens the pool (and one connection, to fail early when the database is unreachable).
    pub async fn connect(&self) -> Result<PgStore, PgError> {
        let pool = self
            .pool_options()
            .connect_with(self.connect_options()?)
            .await
            .map_err(PgError::Connect)?;
        Ok(PgStore::from_pool_in(pool, self.schema.clone()))
    }

    /// Makes the pool without connecting: connections open on first use.
    pub fn connect_lazy(&self) -> Result<PgStore, PgError> {
        let pool = self
            .pool_options()
            .connect_lazy_with(self.connect_options()?);
        Ok(PgStore::from_pool_in(pool, self.schema.clone()))
    }

    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections.min(self.max_connections))
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
    }

    fn connect_options(&self) -> Result<PgConnectOptions, PgError> {
        let mut options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| PgError::InvalidUrl(redact(&e.to_string())))?
            .application_name(&self.application_name);
        let mut settings: Vec<(&str, String)> = Vec::new();
        if let Some(schema) = &self.schema {
            check_schema(schema)?;
            settings.push(("search_path", schema.clone()));
        }
        if let Some(timeout) = self.statement_timeout {
            settings.push(("statement_timeout", format!("{}ms", timeout.as_millis())));
        }
        if !settings.is_empty() {
            options = options.options(settings);
        }
        Ok(options)
    }
}

/// Every store of portcullis on one PostgreSQL database (a pool of connections). Cheap to
/// clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with the defaults of [`PgConfig::new`].
    pub async fn connect(url: &str) -> Result<PgStore, PgError> {
        PgConfig::new(url).connect().await
    }

    /// A store over a pool you made. Its connections must resolve the tables: set their
    /// `search_path` to the schema [`migrate`](Self::migrate) used.
    pub fn from_pool(pool: PgPool) -> PgStore {
        Self::from_pool_in(pool, None)
    }

    fn from_pool_in(pool: PgPool, schema: Option<String>) -> PgStore {
        PgStore { pool, schema }
    }

    /// The pool underneath (for the application's own queries, or to watch it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the tables are in, when one was configured.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every connection, waiting for the ones in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Schema names go into `search_path` and `CREATE SCHEMA`: only plain identifiers.
fn check_schema(schema: &str) -> Result<(), PgError> {
    let valid = (1..=63).contains(&schema.len())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(PgError::InvalidSchema(schema.to_owned()))
    }
}

/// A URL parse error may quote the URL: drop anything between `://` and `@`.
fn redact(message: &str) -> String {
    match (message.find("://"), message.rfind('@')) {
        (Some(start), Some(end)) if start + 3 < end => {
            format!("{}://…{}", &message[..start], &message[end..])
        }
        _ => message.to_owned(),
    }
}

/// The `what` of each unique index and foreign key, for [`StoreError`]s.
const CONSTRAINTS: &[(&str, &str)] = &[
    ("users_pkey", "user"),
    ("users_email_key", "email"),
    ("users_phone_key", "phone"),
    ("passkeys_pkey", "credential"),
    ("passkeys_user_id_fkey", "user"),
    ("totp_factors_pkey", "factor"),
    ("totp_factors_user_id_fkey", "user"),
    ("backup_codes_user_id_fkey", "user"),
    ("organizations_pkey", "organization"),
    ("organizations_slug_key", "slug"),
    ("org_domains_pkey", "domain"),
    ("org_domains_org_id_fkey", "organization"),
    ("apps_pkey", "client_id"),
    ("apps_org_id_fkey", "organization"),
    ("permissions_pkey", "permission"),
    ("permissions_name_key", "permission"),
    ("permissions_org_id_fkey", "organization"),
    ("roles_pkey", "role"),
    ("roles_name_key", "role"),
    ("roles_org_id_fkey", "organization"),
    ("role_permissions_permission_fkey", "permission"),
    ("memberships_org_id_fkey", "organization"),
    ("membership_roles_role_fkey", "role"),
    ("api_credentials_pkey", "api_credential"),
    ("api_credentials_secret_hash_key", "api_credential"),
    ("api_credentials_org_id_fkey", "organization"),
    ("sessions_pkey", "session"),
    ("refresh_hashes_pkey", "refresh_token"),
    ("signing_keys_pkey", "kid"),
    ("auth_events_pkey", "event"),
    ("sso_connections_pkey", "sso_connection"),
    ("sso_connections_org_id_fkey", "organization"),
    ("domain_claims_org_id_fkey", "organization"),
    ("domain_claims_verified", "domain"),
    ("federated_identities_pkey", "identity"),
    ("federated_identities_user_id_fkey", "user"),
];

/// A driver error as the storage contract names it: a unique violation is a conflict, a
/// foreign-key violation a missing record, no connection in time (or none at all) the
/// backend being unavailable, anything else the backend's failure.
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    if matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    ) {
        return StoreError::Unavailable(err.into());
    }
    // Connection exceptions (08…) and the server shutting down or starting (57P01-57P03).
    let unreachable =
        |code: &str| code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    if let sqlx::Error::Database(db) = &err
        && db.code().as_deref().is_some_and(unreachable)
    {
        return StoreError::Unavailable(err.into());
    }
    if let sqlx::Error::Database(db) = &err {
        let what = db.constraint().and_then(|name| {
            CONSTRAINTS
                .iter()
                .find(|(constraint, _)| *constraint == name)
                .map(|(_, what)| *what)
        });
        match (db.code().as_deref(), what) {
            (Some("23505"), Some(what)) => return StoreError::Conflict { what },
            (Some("23503"), Some(what)) => return StoreError::Missing { what },
            _ => {}
        }
    }
    StoreError::backend(err)
}

/// `?` on driver results inside the adapter.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["portcullis", "t_01", "_x"] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Public",
            "a-b",
            "a;drop",
            "1abc",
            "a\"b",
            &"x".repeat(64),
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_debug_and_url_errors_hide_the_password() {
        let config = PgConfig::new("postgres://app:hunter2@db/auth");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            redact("bad url postgres://app:hunter2@db:x/auth"),
            "bad url postgres://…@db:x/auth"
        );
    }
}
