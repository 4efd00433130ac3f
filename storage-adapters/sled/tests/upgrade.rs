//! A data directory written before the compact record format opens as it is: users,
//! sessions and organizations stored as version 1 (a `1` byte, then the model as JSON) read
//! back through every lookup, and a record that changes is rewritten as version 2.

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use portcullis::crypto::SecretHash;
use portcullis::model::{
    OrgId, Organization, PageRequest, PasswordHash, Session, SessionId, User, UserId,
};
use portcullis::store::{OrgStore, SessionStore, UserQuery, UserStore};
use portcullis::{Clock, ManualClock, Timestamp};
use serde::Serialize;
mod support;

use portcullis_sled::{SledConfig, SledStore};
use support::retry;

fn open(dir: &Path) -> SledStore {
    retry(|| SledStore::with_config(SledConfig::new(dir)))
}

fn raw(dir: &Path) -> sled::Db {
    retry(|| sled::open(dir))
}

/// A record as the release before version 2 wrote it.
fn version_1(record: &impl Serialize) -> Vec<u8> {
    [&[1u8][..], &serde_json::to_vec(record).unwrap()].concat()
}

/// The format version of every record in a tree, by key.
fn versions(db: &sled::Db, tree: &str) -> Vec<(Vec<u8>, u8)> {
    let tree = db.open_tree(tree).unwrap();
    tree.iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.first().copied().unwrap_or_default())
        })
        .collect()
}

struct Old {
    users: Vec<User>,
    sessions: Vec<Session>,
    org: Organization,
}

fn old_records(now: Timestamp) -> Old {
    let mut ada = User::new(UserId::generate(), now);
    ada.email = Some("ada@example.com".parse().unwrap());
    ada.email_verified = true;
    ada.phone = Some("+442079460958".parse().unwrap());
    ada.name = Some("Ada".to_owned());
    ada.metadata = serde_json::json!({"plan": "pro"});
    ada.password_hash = Some(PasswordHash::new(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    ));
    ada.security_stamp = 4;
    let mut bob = User::new(UserId::generate(), now);
    bob.email = Some("bob@example.com".parse().unwrap());
    bob.locked_until = Some(now + Duration::from_secs(60));
    let nobody = User::new(UserId::generate(), now);
    let org = Organization {
        id: OrgId::generate(),
        name: "Acme".to_owned(),
        slug: "acme".to_owned(),
        domains: vec!["acme.example".to_owned()],
        settings: serde_json::json!({"mfa": "required"}),
        created_at: now,
        updated_at: now,
        revision: 2,
    };
    let session = |user: &User, hash: u8| Session {
        id: SessionId::generate(),
        user_id: user.id,
        org_id: None,
        refresh_hash: SecretHash::from_bytes([hash; 32]),
        generation: 0,
        amr: vec!["pwd".to_owned()],
        aal: 1,
        ip: None,
        user_agent: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::from_secs(86_400),
        revoked_at: None,
    };
    let in_org = Session {
        org_id: Some(org.id),
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent: Some("curl/8".to_owned()),
        generation: 3,
        ..session(&ada, 1)
    };
    let sessions = vec![in_org, session(&bob, 2)];
    Old {
        users: vec![ada, bob, nobody],
        sessions,
        org,
    }
}

/// Writes the records, with every index, through the store; then replaces each stored
/// record with its version 1 form, which is what the previous release left on disk (its
/// indexes were the same).
async fn write_old_directory(dir: &Path, old: &Old) {
    let store = open(dir);
    for user in &old.users {
        store.create_user(user).await.unwrap();
    }
    store.create_org(&old.org).await.unwrap();
    for session in &old.sessions {
        store.create_session(session).await.unwrap();
    }
    store.close().unwrap();

    let db = raw(dir);
    let rewrite = |tree: &str, records: Vec<([u8; 16], Vec<u8>)>| {
        let tree = db.open_tree(tree).unwrap();
        assert_eq!(tree.len(), records.len());
        for (id, record) in records {
            assert!(tree.insert(id, record).unwrap().is_some());
        }
    };
    rewrite(
        "users",
        old.users
            .iter()
            .map(|u| (*u.id.as_bytes(), version_1(u)))
            .collect(),
    );
    rewrite(
        "sessions",
        old.sessions
            .iter()
            .map(|s| (*s.id.as_bytes(), version_1(s)))
            .collect(),
    );
    rewrite("orgs", vec![(*old.org.id.as_bytes(), version_1(&old.org))]);
    db.flush().unwrap();
    for tree in ["users", "sessions", "orgs"] {
        assert!(versions(&db, tree).iter().all(|(_, v)| *v == 1), "{tree}");
    }
}

/// A directory the release before version 2 wrote, its records, and the time they are at.
async fn old_directory() -> (tempfile::TempDir, Old, Timestamp) {
    let dir = tempfile::tempdir().unwrap();
    let now = ManualClock::fixed().now();
    let old = old_records(now);
    write_old_directory(dir.path(), &old).await;
    (dir, old, now)
}

#[tokio::test]
async fn a_directory_written_before_the_compact_format_opens_and_reads() {
    let (dir, old, now) = old_directory().await;

    let store = open(dir.path());
    assert!(!store.recovered_from_crash());
    for user in &old.users {
        assert_eq!(store.get_user(user.id).await.unwrap().as_ref(), Some(user));
        if let Some(email) = &user.email {
            let found = store.get_user_by_email(email).await.unwrap();
            assert_eq!(found.as_ref(), Some(user));
        }
        if let Some(phone) = &user.phone {
            let found = store.get_user_by_phone(phone).await.unwrap();
            assert_eq!(found.as_ref(), Some(user));
        }
    }
    let listed = store
        .list_users(&UserQuery::all(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), old.users.len());
    for session in &old.sessions {
        let by_id = store.get_session(session.id, now).await.unwrap();
        assert_eq!(by_id.as_ref(), Some(session));
        let by_hash = store
            .find_by_refresh_hash(&session.refresh_hash, now)
            .await
            .unwrap();
        assert_eq!(by_hash.as_ref(), Some(session));
        let of_user = store
            .list_user_sessions(session.user_id, now)
            .await
            .unwrap();
        assert_eq!(of_user, std::slice::from_ref(session));
    }
    let org = Some(old.org.clone());
    assert_eq!(store.get_org(old.org.id).await.unwrap(), org);
    assert_eq!(store.get_org_by_slug("acme").await.unwrap(), org);
    assert_eq!(store.get_org_by_domain("acme.example").await.unwrap(), org);
    store.check_indexes().unwrap();
}

#[tokio::test]
async fn an_old_record_is_rewritten_compact_when_it_next_changes() {
    let (dir, old, now) = old_directory().await;

    let store = open(dir.path());
    let mut ada = old.users[0].clone();
    ada.name = Some("Ada Lovelace".to_owned());
    ada.revision = store.update_user(&ada).await.unwrap();
    let mut org = old.org.clone();
    org.domains.push("acme.test".to_owned());
    org.revision = store.update_org(&org).await.unwrap();
    let session = &old.sessions[0];
    let new_hash = SecretHash::from_bytes([9; 32]);
    let rotated = store
        .rotate_refresh(session.id, &session.refresh_hash, &new_hash, now)
        .await
        .unwrap()
        .expect("rotated");
    store.close().unwrap();

    {
        let db = raw(dir.path());
        let version_of = |tree: &str, id: &[u8; 16]| {
            versions(&db, tree)
                .into_iter()
                .find(|(key, _)| key == id)
                .map(|(_, version)| version)
        };
        assert_eq!(version_of("users", ada.id.as_bytes()), Some(2));
        assert_eq!(version_of("users", old.users[1].id.as_bytes()), Some(1));
        assert_eq!(version_of("orgs", org.id.as_bytes()), Some(2));
        assert_eq!(version_of("sessions", session.id.as_bytes()), Some(2));
        assert_eq!(
            version_of("sessions", old.sessions[1].id.as_bytes()),
            Some(1)
        );
    }

    let store = open(dir.path());
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(ada.clone()));
    let email = ada.email.as_ref().unwrap();
    assert_eq!(store.get_user_by_email(email).await.unwrap(), Some(ada));
    assert_eq!(
        store.get_org_by_domain("acme.test").await.unwrap(),
        Some(org)
    );
    let found = store.find_by_refresh_hash(&new_hash, now).await.unwrap();
    assert_eq!(found, Some(rotated));
    let bob = &old.users[1];
    assert_eq!(store.get_user(bob.id).await.unwrap().as_ref(), Some(bob));
    store.check_indexes().unwrap();
}
