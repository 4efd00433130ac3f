//! The embedded migrations on a real PostgreSQL: applied once to an empty schema, by any
//! number of instances starting at once; a database migrated by a newer release or edited
//! since is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_postgres::{MIGRATIONS, PgConfig, PgError, PgStore};
use portcullis_test_support::postgres;

/// A store on a fresh schema, not migrated yet.
async fn unmigrated() -> Option<PgStore> {
    if !postgres::available().await {
        return None;
    }
    Some(
        PgConfig::new(postgres::url())
            .schema(postgres::unique_schema())
            .max_connections(2)
            .connect()
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_instances_starting_at_once_apply_each_migration_once() {
    let Some(first) = unmigrated().await else {
        return;
    };
    let schema = first.schema_name().unwrap().to_owned();
    let mut instances = vec![first];
    for _ in 1..8 {
        let config = PgConfig::new(postgres::url())
            .schema(&schema)
            .max_connections(2);
        instances.push(config.connect().await.unwrap());
    }
    let runs = instances.iter().map(|store| {
        let store = store.clone();
        tokio::spawn(async move { store.migrate().await })
    });
    let mut applied = 0;
    for run in runs {
        applied += run.await.unwrap().unwrap();
    }
    assert_eq!(
        applied,
        MIGRATIONS.len(),
        "each migration applied once in all"
    );
    assert_eq!(
        instances[0].migrate().await.unwrap(),
        0,
        "nothing left to apply"
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(instances[0].pool())
    .await
    .unwrap();
    for table in [
        "users",
        "sessions",
        "challenges",
        "counters",
        "auth_events",
        "portcullis_migrations",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_release_is_refused() {
    let Some(store) = unmigrated().await else {
        return;
    };
    store.migrate().await.unwrap();
    sqlx::query(
        "INSERT INTO portcullis_migrations (version, name, checksum) VALUES (999, 'future', '')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let refused = store.migrate().await;
    assert!(
        matches!(refused, Err(PgError::SchemaTooNew { found: 999, .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_migration_edited_since_is_refused() {
    let Some(store) = unmigrated().await else {
        return;
    };
    store.migrate().await.unwrap();
    sqlx::query("UPDATE portcullis_migrations SET checksum = '\\x00' WHERE version = 1")
        .execute(store.pool())
        .await
        .unwrap();
    let refused = store.migrate().await;
    assert!(
        matches!(refused, Err(PgError::ChecksumMismatch { version: 1 })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn schema_names_other_than_plain_identifiers_are_refused() {
    let refused = PgConfig::new(postgres::url())
        .schema("public; DROP TABLE users")
        .connect_lazy();
    assert!(
        matches!(refused, Err(PgError::InvalidSchema(_))),
        "{refused:?}"
    );
    let bad_url = PgConfig::new("postgres://app:hunter2@[::1").connect_lazy();
    match bad_url {
        Err(err @ PgError::InvalidUrl(_)) => assert!(!err.to_string().contains("hunter2")),
        other => panic!("{other:?}"),
    }
}
