//! The engine's purge on PostgreSQL: expired rows go in bounded batches (more than one
//! batch here), live ones stay, and two instances purging at once neither fail nor count a
//! row twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use portcullis::Timestamp;
use portcullis::model::{ChallengeKey, ChallengeKind};
use portcullis::store::ChallengeStore;
use portcullis_postgres::PURGE_BATCH;
use portcullis_test_support::postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_purge_many_batches_once() {
    let Some(a) = postgres::store().await else {
        return;
    };
    let b = postgres::second_instance(&a).await;
    let t0 = Timestamp::from_unix_secs(1_767_225_600);
    let expired = u64::try_from(PURGE_BATCH).unwrap() * 2 + 500;
    // Inserted in bulk: one statement, the rows the store would have written one by one.
    sqlx::query(
        "INSERT INTO challenges (kind, id, value, expires_at, version) \
         SELECT 'one_time_code', 'old-' || n, '\\x00', $1, 0 FROM generate_series(1, $2) n",
    )
    .bind(t0.unix_millis())
    .bind(i64::try_from(expired).unwrap())
    .execute(a.pool())
    .await
    .unwrap();
    let live = ChallengeKey::new(ChallengeKind::OneTimeCode, "live");
    a.insert(&live, b"x", t0 + Duration::from_secs(3600), t0)
        .await
        .unwrap();
    a.incr("counter", t0 + Duration::from_secs(1), t0)
        .await
        .unwrap();

    let now = t0 + Duration::from_secs(2);
    let (from_a, from_b) = tokio::join!(a.purge_expired(now), b.purge_expired(now));
    let purged = from_a.unwrap() + from_b.unwrap();
    assert_eq!(
        purged,
        expired + 1,
        "every expired record and counter, once"
    );
    assert!(
        a.get(&live, now).await.unwrap().is_some(),
        "the live record stays"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM challenges")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(left, 1);
}
