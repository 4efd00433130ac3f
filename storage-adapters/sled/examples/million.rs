//! Size on disk, open time and cold lookups with many users and sessions:
//! `cargo run --release -p portcullis-sled --example million -- [users] [dir] [sessions] [durability]`
//! (default 1 000 000 users and one session each, in a temporary directory, written with
//! `background` durability; `critical` is the store's default).
//!
//! Writes the users (email and name each), then the sessions (one per user, cycling), then
//! reopens the store and looks users up by email. Given a `dir` that already holds a store
//! (one written by an earlier release, say), it writes nothing and measures that directory
//! as it is; drop the file from the page cache first for truly cold lookups
//! (`dd of=DIR/db oflag=nocache conv=notrunc,fdatasync count=0`).
//!
//! The size on disk depends on how the data was written as much as on what it is: sled's
//! log falls far behind a bulk load without flushes, and its cleaning never catches up with
//! the garbage left behind, so a `background` load leaves a larger file than a `critical`
//! one for the same records (users alone: more than twice as large).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use portcullis::crypto::SecretHash;
use portcullis::model::{Session, SessionId, User, UserId};
use portcullis::store::{SessionStore, UserStore};
use portcullis::{Clock, Email, SystemClock};
use portcullis_sled::{Durability, SledConfig, SledStore};

/// Distinct users looked up after the reopen.
const LOOKUPS: u64 = 1000;

const MIB: f64 = 1024.0 * 1024.0;

fn email(i: u64) -> Email {
    Email::parse(&format!("user{i}@example.com")).unwrap()
}

fn session(user: UserId, i: u64) -> Session {
    let now = SystemClock.now();
    let mut hash = [7u8; 32];
    hash[..8].copy_from_slice(&i.to_be_bytes());
    Session {
        id: SessionId::generate(),
        user_id: user,
        org_id: None,
        refresh_hash: SecretHash::from_bytes(hash),
        generation: 0,
        amr: vec!["pwd".to_owned()],
        aal: 1,
        ip: Some(std::net::Ipv4Addr::from(i as u32).into()),
        user_agent: Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
                .to_owned(),
        ),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::from_secs(30 * 86_400),
        revoked_at: None,
    }
}

fn file_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("db")).map_or(0, |m| m.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let users: u64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a number of users"));
    let temp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let sessions: u64 = args
        .next()
        .map_or(users, |n| n.parse().expect("a number of sessions"));
    let durability = match args.next().as_deref() {
        None | Some("background") => Some(Durability::Background),
        Some("critical") => Some(Durability::SecurityCritical),
        Some("always") => Some(Durability::Always),
        Some(_) => None,
    }
    .expect("durability: background, critical or always");
    if !dir.join("db").exists() {
        write(&dir, users, sessions, durability).await;
    }
    reopen(&dir, users).await;
    records(&dir);
}

async fn write(dir: &Path, users: u64, sessions: u64, durability: Durability) {
    let store = open_for_loading(dir, durability);
    let mut ids = Vec::with_capacity(users as usize);
    let started = Instant::now();
    for i in 0..users {
        let mut user = User::new(UserId::generate(), SystemClock.now());
        user.email = Some(email(i));
        user.name = Some(format!("User {i}"));
        store.create_user(&user).await.unwrap();
        ids.push(user.id);
    }
    let wrote = started.elapsed();
    let size = closed(store, dir);
    println!(
        "{users} users: written in {:.1} s ({:.1} µs each), {:.0} MiB on disk ({:.0} B per user)",
        wrote.as_secs_f64(),
        wrote.as_secs_f64() * 1e6 / users as f64,
        size as f64 / MIB,
        size as f64 / users as f64,
    );

    if sessions == 0 {
        return;
    }
    let store = open_for_loading(dir, durability);
    let started = Instant::now();
    for (i, user) in (0..sessions).zip(ids.iter().cycle()) {
        store.create_session(&session(*user, i)).await.unwrap();
    }
    let wrote = started.elapsed();
    let added = closed(store, dir).saturating_sub(size);
    println!(
        "{sessions} sessions: written in {:.1} s ({:.1} µs each), {:.0} MiB more on disk ({:.0} B per session)",
        wrote.as_secs_f64(),
        wrote.as_secs_f64() * 1e6 / sessions as f64,
        added as f64 / MIB,
        added as f64 / sessions as f64,
    );
}

fn open_for_loading(dir: &Path, durability: Durability) -> SledStore {
    SledStore::with_config(SledConfig::new(dir).durability(durability)).unwrap()
}

/// The file's size once everything written is on disk: sled writes in the background, and
/// falls far behind a bulk load.
fn closed(store: SledStore, dir: &Path) -> u64 {
    store.close().unwrap();
    std::thread::sleep(Duration::from_millis(500)); // sled releases its lock
    file_size(dir)
}

async fn reopen(dir: &Path, users: u64) {
    let started = Instant::now();
    let store = SledStore::open(dir).unwrap();
    let opened = started.elapsed();
    let started = Instant::now();
    let found = store
        .get_user_by_email(&email(users / 2))
        .await
        .unwrap()
        .is_some();
    let first = started.elapsed();
    // Spread over the whole key space, so most of them read pages no lookup read before.
    let mut times = Vec::with_capacity(LOOKUPS as usize);
    for n in 0..LOOKUPS {
        let i = n * users / LOOKUPS;
        let started = Instant::now();
        let user = store.get_user_by_email(&email(i)).await.unwrap();
        times.push(started.elapsed());
        assert!(user.is_some(), "user{i}");
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / LOOKUPS as u32;
    println!(
        "reopened in {} ms; first lookup by email {} µs (found: {found}); \
         {LOOKUPS} more: mean {} µs, median {} µs, max {} µs",
        opened.as_millis(),
        first.as_micros(),
        mean.as_micros(),
        times[times.len() / 2].as_micros(),
        times.last().unwrap().as_micros(),
    );
    store.close().unwrap();
    std::thread::sleep(Duration::from_millis(500));
}

/// What the trees hold, as sled sees it: keys and values, against the file's size.
fn records(dir: &Path) {
    let db = sled::open(dir).unwrap();
    let mut logical = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        let (mut count, mut keys, mut values) = (0u64, 0u64, 0u64);
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            count += 1;
            keys += key.len() as u64;
            values += value.len() as u64;
        }
        logical += keys + values;
        if count > 0 {
            println!(
                "  {:<16} {count:>8} entries, key {:>5.1} B, value {:>6.1} B on average",
                String::from_utf8_lossy(&name),
                keys as f64 / count as f64,
                values as f64 / count as f64,
            );
        }
    }
    println!(
        "keys and values: {:.0} MiB; file: {:.0} MiB",
        logical as f64 / MIB,
        file_size(dir) as f64 / MIB,
    );
}
