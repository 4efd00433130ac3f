//! Real sled files: reopening, unclean shutdowns, corrupt records, the sweeper.

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use portcullis::model::{ChallengeKey, ChallengeKind, User, UserId};
use portcullis::store::{ChallengeStore, UserStore};
use portcullis::{Clock, ManualClock, StoreError};
mod support;

use portcullis_sled::{Durability, SledConfig, SledStore};
use support::retry;

fn open(dir: &Path, clock: &ManualClock) -> SledStore {
    retry(|| SledStore::with_config(SledConfig::new(dir).clock(clock.clone()).sweep_every(None)))
}

fn raw(dir: &Path) -> sled::Db {
    retry(|| sled::open(dir))
}

fn code(id: &str) -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::OneTimeCode, id)
}

async fn seed(store: &SledStore, clock: &ManualClock) -> UserId {
    let mut user = User::new(UserId::generate(), clock.now());
    user.email = Some("alice@example.com".parse().unwrap());
    store.create_user(&user).await.unwrap();
    let now = clock.now();
    store
        .insert(&code("live"), b"v", now + Duration::from_secs(600), now)
        .await
        .unwrap();
    user.id
}

#[tokio::test]
async fn a_clean_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let store = open(dir.path(), &clock);
    let user = seed(&store, &clock).await;
    store.close().unwrap();
    let store = open(dir.path(), &clock);
    assert!(!store.recovered_from_crash());
    assert!(store.get_user(user).await.unwrap().is_some());
    assert!(
        store
            .get(&code("live"), clock.now())
            .await
            .unwrap()
            .is_some()
    );
}

/// DUR-01: after an unclean shutdown every outstanding challenge is void — whatever was
/// spent just before the crash may not have reached the disk as spent.
#[tokio::test]
async fn an_unclean_shutdown_voids_outstanding_challenges_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let store = open(dir.path(), &clock);
    let user = seed(&store, &clock).await;
    let now = clock.now();
    let tombstone = ChallengeKey::new(ChallengeKind::SpentAuthCode, "spent");
    store
        .insert(&tombstone, b"s", now + Duration::from_secs(3600), now)
        .await
        .unwrap();
    // A roles revision is what makes tokens signed before a role change stale: losing it
    // would make them current again (issue 16, item 11).
    let revision = ChallengeKey::new(ChallengeKind::RolesRevision, "org:acme");
    store
        .insert(&revision, b"r1", now + Duration::from_secs(3600), now)
        .await
        .unwrap();
    store
        .incr("rl:kept", now + Duration::from_secs(3600), now)
        .await
        .unwrap();
    store.close().unwrap();
    // What a crash leaves behind: the open marker, never replaced by a clean one.
    {
        let db = raw(dir.path());
        db.open_tree("meta")
            .unwrap()
            .insert("state", "open")
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path(), &clock);
    assert!(store.recovered_from_crash());
    assert!(
        store
            .get(&code("live"), clock.now())
            .await
            .unwrap()
            .is_none(),
        "voided"
    );
    for kept in [&tombstone, &revision] {
        assert!(
            store.get(kept, clock.now()).await.unwrap().is_some(),
            "{kept:?} survives the crash"
        );
    }
    assert!(
        store.get_user(user).await.unwrap().is_some(),
        "durable data stays"
    );
}

/// Records that do not decode fail closed: an error, never a valid record.
#[tokio::test]
async fn corrupt_records_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let store = open(dir.path(), &clock);
    let user = seed(&store, &clock).await;
    store.close().unwrap();
    {
        let db = raw(dir.path());
        db.open_tree("challenges")
            .unwrap()
            .insert("one_time_code:live", &b"\x01garbage"[..])
            .unwrap();
        db.open_tree("challenges")
            .unwrap()
            .insert("one_time_code:future", &b"\x09future format"[..])
            .unwrap();
        db.open_tree("users")
            .unwrap()
            .insert(user.as_bytes(), &b"\x01{not json"[..])
            .unwrap();
        db.open_tree("counters")
            .unwrap()
            .insert("rl:x", &b"\x01"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path(), &clock);
    let now = clock.now();
    for id in ["live", "future"] {
        assert!(
            matches!(
                store.take(&code(id), now).await,
                Err(StoreError::Corrupt { .. })
            ),
            "{id}"
        );
        assert!(
            matches!(
                store.get(&code(id), now).await,
                Err(StoreError::Corrupt { .. })
            ),
            "{id}"
        );
        let insert = store
            .insert(&code(id), b"fresh", now + Duration::from_secs(60), now)
            .await;
        assert!(
            matches!(insert, Err(StoreError::Corrupt { .. })),
            "an unreadable record is not overwritten as if expired"
        );
    }
    assert!(matches!(
        store.get_user(user).await,
        Err(StoreError::Corrupt { what: "user" })
    ));
    let email = "alice@example.com".parse().unwrap();
    assert!(matches!(
        store.get_user_by_email(&email).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.incr("rl:x", now + Duration::from_secs(60), now).await,
        Err(StoreError::Corrupt { .. })
    ));
    let err = portcullis::Error::from(store.get(&code("live"), now).await.unwrap_err());
    assert_eq!(err.code(), "store");
}

/// Expired records are removed by the sweeper (and at open): a steady stream of codes
/// does not grow the database without bound.
#[tokio::test]
async fn the_sweeper_removes_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let config = SledConfig::new(dir.path())
        .clock(clock.clone())
        .durability(Durability::Background)
        .sweep_every(Some(Duration::from_millis(20)));
    let store = SledStore::with_config(config).unwrap();
    let now = clock.now();
    for i in 0..500 {
        let key = code(&format!("c{i}"));
        store
            .insert(&key, b"v", now + Duration::from_secs(600), now)
            .await
            .unwrap();
        store
            .incr(&format!("rl:{i}"), now + Duration::from_secs(600), now)
            .await
            .unwrap();
    }
    store
        .insert(&code("long"), b"v", now + Duration::from_secs(3600), now)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(600));
    assert_eq!(store.stats().challenges, 501);
    // The sweeper runs every 20 ms; give it up to 5 s on a loaded machine. Nothing here
    // removes records but the sweeper.
    let mut stats = store.stats();
    for _ in 0..250 {
        if stats.challenges == 1 && stats.counters == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = store.stats();
    }
    assert_eq!(
        (stats.challenges, stats.counters),
        (1, 0),
        "the sweeper removed everything expired"
    );
    assert!(
        store
            .get(&code("long"), clock.now())
            .await
            .unwrap()
            .is_some()
    );

    // Expired records left by a process that ran without a sweeper go at the next open.
    store
        .insert(
            &code("short"),
            b"v",
            clock.now() + Duration::from_secs(1),
            clock.now(),
        )
        .await
        .unwrap();
    store.close().unwrap();
    clock.advance(Duration::from_secs(2));
    let store = open(dir.path(), &clock);
    assert_eq!(
        store.purge_expired(clock.now()).await.unwrap(),
        0,
        "purged at open"
    );
}

#[tokio::test]
async fn every_durability_mode_keeps_data_across_a_clean_close() {
    for durability in [
        Durability::Always,
        Durability::SecurityCritical,
        Durability::Background,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::fixed();
        let config = SledConfig::new(dir.path())
            .clock(clock.clone())
            .durability(durability);
        let store = SledStore::with_config(config).unwrap();
        let user = seed(&store, &clock).await;
        assert!(
            store
                .take(&code("live"), clock.now())
                .await
                .unwrap()
                .is_some()
        );
        store.close().unwrap();
        let store = open(dir.path(), &clock);
        assert!(
            store.get_user(user).await.unwrap().is_some(),
            "{durability:?}"
        );
        assert!(
            store
                .get(&code("live"), clock.now())
                .await
                .unwrap()
                .is_none(),
            "{durability:?}"
        );
    }
}
