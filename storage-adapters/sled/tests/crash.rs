//! Crash test: a child process writes (creating users, consuming codes, rotating refresh
//! tokens) and reports every acknowledged write; the parent kills it with SIGKILL at
//! random moments, reopens the store, and checks that nothing acknowledged was lost and
//! nothing spent came back.

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis::crypto::SecretHash;
use portcullis::model::{
    ChallengeKey, ChallengeKind, PageRequest, Session, SessionId, User, UserId,
};
use portcullis::store::{ChallengeStore, SessionStore, UserQuery, UserStore};
use portcullis::{Clock, Email, SystemClock};
mod support;

use portcullis_sled::{Durability, SledConfig, SledStore};
use support::retry;

const CHILD_ENV: &str = "PORTCULLIS_SLED_CRASH_CHILD";
const ROUNDS: usize = 24;

fn open(dir: &Path) -> SledStore {
    retry(|| {
        let config = SledConfig::new(dir).durability(Durability::SecurityCritical);
        SledStore::with_config(config)
    })
}

fn hash(session: &SessionId, generation: u64) -> SecretHash {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(session.as_bytes());
    bytes[16..24].copy_from_slice(&generation.to_be_bytes());
    SecretHash::from_bytes(bytes)
}

/// The child: writes until it is killed, printing each write once it is acknowledged.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only runs as the parent's child
    };
    let round: u64 = std::env::var("PORTCULLIS_SLED_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = open(Path::new(&dir));
        println!("\nopened"); // on a line of its own, after the harness's "test crash_child ... "
        let now = SystemClock.now();
        let session = Session {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            org_id: None,
            refresh_hash: SecretHash::from_bytes([0; 32]),
            generation: 0,
            amr: vec!["pwd".into()],
            aal: 1,
            ip: None,
            user_agent: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::from_secs(86_400),
            revoked_at: None,
        };
        let mut session = session;
        session.refresh_hash = hash(&session.id, 0);
        store.create_session(&session).await.unwrap();
        println!("session {}", session.id);
        // Backup codes are durable records (challenges are voided by a crash anyway): their
        // consumption is what shows that a spent secret stays spent.
        let mut holder = User::new(UserId::generate(), SystemClock.now());
        holder.email = Some(Email::parse(&format!("r{round}-codes@crash.example.com")).unwrap());
        store.create_user(&holder).await.unwrap();
        let codes: Vec<SecretHash> = (0..500).map(|j| hash(&session.id, 1_000_000 + j)).collect();
        store.replace_backup_codes(holder.id, &codes).await.unwrap();
        println!("codes {} {}", holder.id, session.id);
        for i in 0u64.. {
            let mut user = User::new(UserId::generate(), SystemClock.now());
            user.email = Some(Email::parse(&format!("r{round}-u{i}@crash.example.com")).unwrap());
            store.create_user(&user).await.unwrap();
            println!("user {} {}", user.id, user.email.as_ref().unwrap());

            let key = ChallengeKey::new(ChallengeKind::OneTimeCode, format!("r{round}-c{i}"));
            let now = SystemClock.now();
            store
                .insert(&key, b"code", now + Duration::from_secs(600), now)
                .await
                .unwrap();
            store.take(&key, now).await.unwrap().unwrap();
            println!("taken {}", key.id);

            if let Some(code) = codes.get(i as usize) {
                assert!(store.consume_backup_code(holder.id, code).await.unwrap());
                println!("consumed {i}");
            }

            let rotated = store
                .rotate_refresh(
                    session.id,
                    &hash(&session.id, i),
                    &hash(&session.id, i + 1),
                    SystemClock.now(),
                )
                .await
                .unwrap();
            assert!(rotated.is_some());
            println!("rotated {}", i + 1);
        }
    });
}

fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(0u8) % n
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_spent_secrets_stay_spent() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total_users = 0;
    let mut opened = 0;
    let mut consumed_total = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("PORTCULLIS_SLED_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150 + random_below(350))).await;
        child.kill().unwrap(); // SIGKILL: no destructor, no clean-shutdown marker
        let status = child.wait().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
        let mut errors = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut errors).unwrap();
        // The child must have died of the kill, not of a failure of its own.
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "round {round}: {errors}"
        );
        assert!(
            !errors.contains("panicked"),
            "round {round}: the child failed: {errors}"
        );

        let store = open(dir.path());
        if lines.iter().any(|l| l == "opened") {
            assert!(
                store.recovered_from_crash(),
                "round {round}: the crash was noticed"
            );
            opened += 1;
        }
        let now = SystemClock.now();
        let mut session = None;
        let mut last_rotation = 0;
        let mut holder = None;
        let mut consumed = Vec::new();
        for line in &lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["session", id] => session = Some(id.parse::<SessionId>().unwrap()),
                ["user", id, email] => {
                    let id: UserId = id.parse().unwrap();
                    let user = store.get_user(id).await.unwrap();
                    assert!(user.is_some(), "round {round}: acknowledged user {id} lost");
                    let by_email = store
                        .get_user_by_email(&Email::parse(email).unwrap())
                        .await
                        .unwrap();
                    assert_eq!(
                        by_email.map(|u| u.id),
                        Some(id),
                        "round {round}: email index lost"
                    );
                    total_users += 1;
                }
                ["taken", code] => {
                    let key = ChallengeKey::new(ChallengeKind::OneTimeCode, *code);
                    assert!(
                        store.get(&key, now).await.unwrap().is_none(),
                        "round {round}: {code} came back"
                    );
                    assert!(store.take(&key, now).await.unwrap().is_none());
                }
                ["rotated", generation] => last_rotation = generation.parse().unwrap(),
                ["codes", user, sid] => {
                    holder = Some((
                        user.parse::<UserId>().unwrap(),
                        sid.parse::<SessionId>().unwrap(),
                    ));
                }
                ["consumed", j] => consumed.push(j.parse::<u64>().unwrap()),
                _ => {} // a line cut by the kill, or the test harness's own output
            }
        }
        if let Some(id) = session {
            let current = store
                .get_session(id, now)
                .await
                .unwrap()
                .expect("acknowledged session");
            assert!(
                current.generation >= last_rotation,
                "round {round}: a rotation was lost"
            );
            for generation in 0..current.generation {
                let replay = store
                    .rotate_refresh(
                        id,
                        &hash(&id, generation),
                        &hash(&id, u64::MAX - generation),
                        now,
                    )
                    .await
                    .unwrap();
                assert!(
                    replay.is_none(),
                    "round {round}: rotated token {generation} works again"
                );
            }
        }
        if let Some((user, sid)) = holder {
            for j in &consumed {
                let code = hash(&sid, 1_000_000 + j);
                let again = store.consume_backup_code(user, &code).await.unwrap();
                assert!(
                    !again,
                    "round {round}: consumed backup code {j} is valid again"
                );
            }
            let left = store.count_backup_codes(user).await.unwrap();
            assert!(
                left <= 500 - consumed.len(),
                "round {round}: consumed codes came back ({left} left, {} consumed)",
                consumed.len()
            );
            consumed_total += consumed.len();
        }
        // Records and indexes agree: every stored user is found by its email.
        let mut page = PageRequest::first(500);
        loop {
            let users = store.list_users(&UserQuery::all(), &page).await.unwrap();
            for user in &users.items {
                let email = user.email.as_ref().unwrap();
                let found = store.get_user_by_email(email).await.unwrap();
                assert_eq!(
                    found.map(|u| u.id),
                    Some(user.id),
                    "round {round}: index and record disagree"
                );
            }
            match users.next_cursor {
                Some(cursor) => page = PageRequest::after(500, cursor),
                None => break,
            }
        }
        // And the other way: no index entry without its record.
        store
            .check_indexes()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        store.close().unwrap();
    }
    assert!(
        opened > ROUNDS / 2,
        "most children got to write ({opened} of {ROUNDS})"
    );
    assert!(total_users > 0, "the children wrote something");
    assert!(consumed_total > 0, "codes were consumed before kills");
    println!(
        "{ROUNDS} kills, {opened} mid-write, {total_users} acknowledged users and {consumed_total} consumed codes checked"
    );
}
