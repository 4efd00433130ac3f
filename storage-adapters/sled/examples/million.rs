//! Size on disk and open time with many users:
//! `cargo run --release -p portcullis-sled --example million -- [users] [dir]`
//! (default 1 000 000 users in a temporary directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use portcullis::model::{User, UserId};
use portcullis::store::UserStore;
use portcullis::{Clock, Email, SystemClock};
use portcullis_sled::{Durability, SledConfig, SledStore};

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

    let config = SledConfig::new(&dir).durability(Durability::Background);
    let store = SledStore::with_config(config).unwrap();
    let started = Instant::now();
    for i in 0..users {
        let mut user = User::new(UserId::generate(), SystemClock.now());
        user.email = Some(Email::parse(&format!("user{i}@example.com")).unwrap());
        user.name = Some(format!("User {i}"));
        store.create_user(&user).await.unwrap();
    }
    let wrote = started.elapsed();
    let size = store.size_on_disk().unwrap();
    store.close().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500)); // sled releases its lock

    let started = Instant::now();
    let store = SledStore::open(&dir).unwrap();
    let opened = started.elapsed();
    let probe = Email::parse(&format!("user{}@example.com", users / 2)).unwrap();
    let started = Instant::now();
    let found = store.get_user_by_email(&probe).await.unwrap().is_some();
    let lookup = started.elapsed();
    println!(
        "{users} users: written in {:.1} s ({:.1} µs each), {:.0} MiB on disk, opened in {} ms, lookup by email {} µs (found: {found})",
        wrote.as_secs_f64(),
        wrote.as_secs_f64() * 1e6 / users as f64,
        size as f64 / (1024.0 * 1024.0),
        opened.as_millis(),
        lookup.as_micros()
    );
}
