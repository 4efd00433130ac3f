//! A real PostgreSQL for tests: each store in a schema of its own, migrated, on the
//! server at [`url()`] (the machine's PostgreSQL on 127.0.0.1:5432 unless
//! `PORTCULLIS_TEST_POSTGRES_URL` says otherwise).
//!
//! When the server does not answer, [`store`] fails the test under CI (`CI` set) and
//! elsewhere returns `None` after saying loudly that the test is skipped.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use portcullis_postgres::{PgConfig, PgStore};

/// The server tests use when `PORTCULLIS_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server tests use.
pub fn url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema name no other test (of this or a concurrent run) uses: the process id keeps
/// runs apart, and lets a later run drop the schemas of runs that are gone.
pub fn unique_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "pct_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the server answers: `Ok(false)` (after a loud message) to skip, a panic under CI.
pub async fn available() -> bool {
    static CHECKED: OnceLock<bool> = OnceLock::new();
    if let Some(up) = CHECKED.get() {
        return *up;
    }
    let url = url();
    let probe = PgConfig::new(&url)
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect()
        .await;
    let up = match probe {
        Ok(store) => {
            drop_abandoned_schemas(&store).await;
            store.close().await;
            true
        }
        Err(err) if crate::idp::required() => {
            panic!(
                "PostgreSQL at {url} does not answer ({err}: {:?}) and CI is set: this test needs it. \
                 Start it (pg_ctlcluster 15 main start) or set PORTCULLIS_TEST_POSTGRES_URL.",
                std::error::Error::source(&err)
            )
        }
        Err(err) => {
            eprintln!(
                "\n=== SKIPPED: PostgreSQL at {url} does not answer ({err}); the Postgres tests \
                 did not run. Start it or set PORTCULLIS_TEST_POSTGRES_URL. ===\n"
            );
            false
        }
    };
    *CHECKED.get_or_init(|| up)
}

/// A migrated store in a fresh schema, with `configure` applied to its configuration; `None`
/// when the server is absent outside CI.
pub async fn store_with(configure: impl FnOnce(PgConfig) -> PgConfig) -> Option<PgStore> {
    if !available().await {
        return None;
    }
    // Named after its schema in pg_stat_activity, so a test can find its own connections.
    let schema = unique_schema();
    let config = configure(
        PgConfig::new(url())
            .application_name(&schema)
            .schema(schema),
    );
    let store = config.connect().await.expect("connect to PostgreSQL");
    store.migrate().await.expect("migrate a fresh schema");
    Some(store)
}

/// A migrated store in a fresh schema, with a pool of 8.
pub async fn store() -> Option<PgStore> {
    store_with(|config| config.max_connections(8)).await
}

/// Another pool on the schema of `store`: a second application instance.
pub async fn second_instance(store: &PgStore) -> PgStore {
    let schema = store.schema_name().expect("a test store has a schema");
    PgConfig::new(url())
        .schema(schema)
        .max_connections(8)
        .connect()
        .await
        .expect("connect a second instance")
}

/// Drops the schemas of test runs whose process is gone (`pct_<pid>_<n>`).
async fn drop_abandoned_schemas(store: &PgStore) {
    let schemas: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'pct\\_%'",
    )
    .fetch_all(store.pool())
    .await
    {
        Ok(schemas) => schemas,
        Err(_) => return,
    };
    for schema in schemas {
        let pid = schema.split('_').nth(1).unwrap_or_default();
        let alive = std::path::Path::new("/proc").join(pid).exists();
        let plain = schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !alive && plain {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            // Another run may be dropping it at the same moment: ignore failures.
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(store.pool())
                .await;
        }
    }
}

/// Counters incremented by 8 tasks while `outage` runs: every increment acknowledged before,
/// during or after it is counted, and the store answers again afterwards without being
/// rebuilt.
pub async fn recovers_under_load(store: PgStore, outage: impl std::future::Future<Output = ()>) {
    use portcullis::store::ChallengeStore;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let t0 = portcullis::Timestamp::from_unix_secs(1_767_225_600);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let far = t0 + Duration::from_secs(3600);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (store, acknowledged, failed, stop) = (
                store.clone(),
                acknowledged.clone(),
                failed.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match store.incr("load", far, t0).await {
                        Ok(_) => acknowledged.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    outage.await;
    // Back within 30 s: the pool opens new connections by itself.
    let mut recovered = false;
    for _ in 0..300 {
        if store.counter("probe", t0).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store did not recover");
    let before = acknowledged.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        acknowledged.load(Ordering::Relaxed) > before,
        "increments succeed again"
    );
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let count = store.counter("load", t0).await.unwrap().unwrap().count;
    let (acked, lost) = (
        acknowledged.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    // An increment whose acknowledgement the outage swallowed may have committed.
    assert!(
        acked <= count && count <= acked + lost,
        "count {count}, acknowledged {acked}, failed {lost}"
    );
}
