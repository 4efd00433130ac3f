//! Faults of a real PostgreSQL: a backend killed in the middle of a multi-statement write,
//! an exhausted pool, and every connection cut under load (`restart.rs` restarts the
//! server itself).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use portcullis::model::{OrgId, Organization, PermissionDef, PermissionId, Role, RoleId};
use portcullis::store::{OrgStore, UserStore};
use portcullis::{StoreError, Timestamp};
use portcullis_postgres::PgStore;
use portcullis_test_support::postgres;

fn t0() -> Timestamp {
    Timestamp::from_unix_secs(1_767_225_600)
}

/// A connection outside the store's pool, as an operator's psql session.
async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&postgres::url()).await.unwrap()
}

async fn org_with_role(store: &PgStore) -> (Role, PermissionDef) {
    let org = Organization {
        id: OrgId::generate(),
        name: "Acme".into(),
        slug: format!("acme-{}", OrgId::generate()),
        domains: vec![],
        settings: serde_json::json!({}),
        created_at: t0(),
        updated_at: t0(),
        revision: 0,
    };
    store.create_org(&org).await.unwrap();
    let mut permissions = Vec::new();
    for name in ["invoices:read", "invoices:write"] {
        let permission = PermissionDef {
            id: PermissionId::generate(),
            org_id: org.id,
            name: name.parse().unwrap(),
            description: None,
            created_at: t0(),
        };
        store.put_permission(&permission).await.unwrap();
        permissions.push(permission);
    }
    let role = Role {
        id: RoleId::generate(),
        org_id: org.id,
        name: "clerk".into(),
        description: None,
        permission_ids: vec![permissions[0].id],
        wildcards: vec![],
        created_at: t0(),
        updated_at: t0(),
    };
    store.put_role(&role).await.unwrap();
    (role, permissions.pop().unwrap())
}

/// `put_role` writes the role, clears its permissions and inserts the new ones in one
/// transaction. An operator's lock on a permission stops it inside that transaction, after
/// the role row is written; the backend is then killed: the call fails and the role is
/// exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_write_applies_nothing() {
    let Some(store) = postgres::store().await else {
        return;
    };
    let schema = store.schema_name().unwrap().to_owned();
    let (role, write) = org_with_role(&store).await;

    let mut operator = admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; SELECT 1 FROM \"{schema}\".permissions WHERE id = '{}' FOR UPDATE",
        write.id
    )))
    .execute(&mut operator)
    .await
    .unwrap();

    let mut changed = role.clone();
    changed.name = "senior clerk".into();
    changed.permission_ids = vec![write.id];
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.put_role(&changed).await })
    };
    // Wait until the write is blocked inside its transaction, then kill its backend.
    let mut killed = false;
    for _ in 0..200 {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
             AND wait_event_type = 'Lock'",
        )
        .bind(&schema)
        .fetch_all(&mut operator)
        .await
        .unwrap();
        if let Some(pid) = pids.first() {
            let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut operator)
                .await
                .unwrap();
            killed = done;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !killed {
        let seen: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT wait_event_type, state, query FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&schema)
        .fetch_all(&mut operator)
        .await
        .unwrap();
        panic!("the write never blocked on the operator's lock: {seen:?}");
    }
    let result = writer.await.unwrap();
    // The server says it terminated the connection (57P01): unavailable, try again.
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut operator)
        .await
        .unwrap();

    let stored = store.get_role(role.org_id, role.id).await.unwrap().unwrap();
    assert_eq!(stored, role, "nothing of the killed write is left");
    // The pool replaced the killed connection: the store keeps working.
    let mut retried = role.clone();
    retried.name = "senior clerk".into();
    store.put_role(&retried).await.unwrap();
    assert_eq!(
        store.get_role(role.org_id, role.id).await.unwrap().unwrap(),
        retried
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_out_instead_of_hanging() {
    let Some(store) = postgres::store_with(|config| {
        config
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(300))
    })
    .await
    else {
        return;
    };
    let held = store.pool().acquire().await.unwrap();
    // A guard against a hang, far above the configured timeout.
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        store.get_user(portcullis::UserId::generate()),
    )
    .await
    .expect("the store answered");
    match result {
        Err(StoreError::Unavailable(source)) => {
            let driver = source.downcast_ref::<sqlx::Error>();
            assert!(
                matches!(driver, Some(sqlx::Error::PoolTimedOut)),
                "{source:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Through the engine: unavailable (HTTP 503), not an internal failure (500).
    let auth = portcullis::Portcullis::builder(portcullis::Config::new("https://app.example.com"))
        .store(store.clone())
        .pepper(portcullis::testing::test_pepper())
        .keyring(portcullis::testing::test_keyring())
        .build()
        .unwrap();
    let refused = auth.users().get(portcullis::UserId::generate()).await;
    assert!(
        matches!(refused, Err(portcullis::Error::Unavailable { .. })),
        "{refused:?}"
    );
    drop(held);
    assert_eq!(
        store
            .get_user(portcullis::UserId::generate())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_connection_cut_under_load_recovers_without_a_restart() {
    let Some(store) = postgres::store_with(|config| {
        config
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
    })
    .await
    else {
        return;
    };
    let name = store.schema_name().unwrap().to_owned();
    postgres::recovers_under_load(store, async move {
        let mut operator = admin().await;
        // Every connection of this store (its application name is its schema's).
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
        )
        .bind(&name)
        .fetch_one(&mut operator)
        .await
        .unwrap();
        assert!(cut > 0, "no connection was cut");
    })
    .await;
}
