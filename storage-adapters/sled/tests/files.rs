//! Real sled files: reopening, unclean shutdowns, corrupt records, purging expired records.

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

fn open(dir: &Path, _clock: &ManualClock) -> SledStore {
    retry(|| SledStore::with_config(SledConfig::new(dir)))
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
    // Every kind the contract says survives a crash: a spent code's tombstone, a roles
    // revision (losing it would make tokens signed before a role change current again,
    // issue 16 item 11), an email change's way back, a spent SAML assertion (a replay
    // after a crash would sign in again, SAML-14), a person's consents to the OpenID
    // provider's clients (a lost revocation would consent again).
    let kept: Vec<ChallengeKey> = ChallengeKind::ALL
        .into_iter()
        .filter(|kind| kind.survives_crash())
        .map(|kind| ChallengeKey::new(kind, "kept"))
        .collect();
    assert_eq!(kept.len(), 5);
    for key in &kept {
        store
            .insert(key, b"k", now + Duration::from_secs(3600), now)
            .await
            .unwrap();
    }
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
    for kept in &kept {
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

/// Expired records are removed by the purge the engine's sweep calls: a steady stream of
/// codes does not grow the database without bound, and expiry follows the clock passed in
/// (the adapter reads none).
#[tokio::test]
async fn the_purge_removes_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let config = SledConfig::new(dir.path()).durability(Durability::Background);
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
    assert_eq!(store.purge_expired(clock.now()).await.unwrap(), 0);
    clock.advance(Duration::from_secs(600));
    assert_eq!(store.stats().challenges, 501);
    assert_eq!(store.purge_expired(clock.now()).await.unwrap(), 1000);
    let stats = store.stats();
    assert_eq!((stats.challenges, stats.counters), (1, 0));
    assert!(
        store
            .get(&code("long"), clock.now())
            .await
            .unwrap()
            .is_some()
    );

    // Nothing is removed behind the engine's back: an expired record survives a reopen
    // (invisible to reads) until the next purge.
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
    assert!(
        store
            .get(&code("short"), clock.now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.purge_expired(clock.now()).await.unwrap(), 1);
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
        let config = SledConfig::new(dir.path()).durability(durability);
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

/// A data directory written before the organization index of the login log existed (its
/// events, no index entries, no marker) is indexed once when it opens: an organization's
/// log lists its old events and the new ones.
#[tokio::test]
async fn an_older_directory_gets_its_organization_log_indexed_at_open() {
    use portcullis::model::{AuthEvent, AuthEventKind, EventId, OrgId, PageRequest};
    use portcullis::store::{AuditLog, EventQuery};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::fixed();
    let org = OrgId::generate();
    let event = |org: Option<OrgId>| AuthEvent {
        id: EventId::generate(),
        at: clock.now(),
        kind: AuthEventKind::SignInFailed,
        user_id: None,
        org_id: org,
        method: None,
        reason: None,
        ip: None,
        user_agent: None,
        prev: None,
        prev_hash: None,
        personal_digest: None,
        seal: None,
    };
    let store = open(dir.path(), &clock);
    let old = [event(Some(org)), event(None), event(Some(org))];
    for e in &old {
        store.append(e).await.unwrap();
    }
    store.close().unwrap();
    // What the format before the index left on disk.
    let db = raw(dir.path());
    db.drop_tree("org_events").unwrap();
    db.open_tree("meta")
        .unwrap()
        .remove("org_events_indexed")
        .unwrap();
    db.flush().unwrap();
    drop(db);

    let store = open(dir.path(), &clock);
    let new = event(Some(org));
    store.append(&new).await.unwrap();
    let listed = store
        .list_events(&EventQuery::in_org(org), &PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<EventId> = listed.items.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![new.id, old[2].id, old[0].id]);
}
