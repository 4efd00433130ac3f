//! Rate limits and attempt budgets (security invariant 11), driven by the manual clock.

// Helpers in a test crate report failure by panicking, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::sync::Arc;
use std::time::Duration;

use portcullis::testing::race;
use portcullis::{Config, Error, RateLimit};

fn retry_after(result: Result<(), Error>) -> Duration {
    match result {
        Err(Error::RateLimited { retry_after }) => retry_after,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn fixed_window_admits_max_then_refuses_until_the_window_ends() {
    let h = support::harness();
    let limit = RateLimit::fixed(3, MINUTE);
    let limits = h.auth.limits();
    for _ in 0..3 {
        limits
            .hit("send", "alice@example.com", &limit)
            .await
            .unwrap();
    }
    h.clock.advance(Duration::from_secs(20));
    let wait = retry_after(limits.hit("send", "alice@example.com", &limit).await);
    assert_eq!(wait, Duration::from_secs(40));
    // Other subjects and other scopes have their own budgets.
    limits.hit("send", "bob@example.com", &limit).await.unwrap();
    limits
        .hit("resend", "alice@example.com", &limit)
        .await
        .unwrap();
    h.clock.advance(wait);
    limits
        .hit("send", "alice@example.com", &limit)
        .await
        .unwrap();
}

#[tokio::test]
async fn sliding_window_has_no_boundary_burst_and_reports_an_exact_retry() {
    let h = support::harness();
    let limit = RateLimit::sliding(5, MINUTE);
    let limits = h.auth.limits();
    // Spend the budget at the end of one window…
    h.clock.advance(Duration::from_secs(50));
    for _ in 0..5 {
        limits.hit("send", "ip-1", &limit).await.unwrap();
    }
    // …and a fixed window would allow 5 more right after the boundary; sliding does not.
    h.clock.advance(Duration::from_secs(15));
    let wait = retry_after(limits.check("send", "ip-1", &limit).await);
    // The previous window (5 events) must decay to 4: 5 * (1 - t/60) <= 4 ⇒ t >= 12 s
    // into the new window; we are 5 s in, so 7 s remain.
    assert_eq!(wait, Duration::from_secs(7));
    h.clock.advance(wait - Duration::from_millis(1));
    assert!(
        limits.check("send", "ip-1", &limit).await.is_err(),
        "not a moment early"
    );
    h.clock.advance(Duration::from_millis(1));
    limits.hit("send", "ip-1", &limit).await.unwrap();
}

#[tokio::test]
async fn refused_hits_count_so_hammering_keeps_the_limit_shut() {
    let h = support::harness();
    let limit = RateLimit::sliding(2, MINUTE);
    let limits = h.auth.limits();
    limits.hit("send", "x", &limit).await.unwrap();
    limits.hit("send", "x", &limit).await.unwrap();
    let first = retry_after(limits.hit("send", "x", &limit).await);
    let second = retry_after(limits.hit("send", "x", &limit).await);
    assert!(second > first, "{second:?} > {first:?}");
    h.clock.advance(second);
    limits.hit("send", "x", &limit).await.unwrap();
}

#[tokio::test]
async fn failure_budget_refuses_before_work_and_resets_on_success() {
    let h = support::harness();
    let limit = h.auth.config().limits.failures_per_account;
    let limits = h.auth.limits();
    let account = "alice@example.com";
    for used in 1..=limit.max {
        limits
            .check("signin_fail_account", account, &limit)
            .await
            .unwrap();
        let left = limits
            .record_failure("signin_fail_account", account, &limit)
            .await
            .unwrap();
        assert_eq!(left, limit.max - used);
    }
    let err = limits
        .check("signin_fail_account", account, &limit)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    // Checking does not count: the wait does not grow while someone keeps checking.
    let a = retry_after(limits.check("signin_fail_account", account, &limit).await);
    let b = retry_after(limits.check("signin_fail_account", account, &limit).await);
    assert_eq!(a, b);
    limits
        .reset("signin_fail_account", account, &limit)
        .await
        .unwrap();
    limits
        .check("signin_fail_account", account, &limit)
        .await
        .unwrap();
}

#[tokio::test]
async fn failure_budget_lasts_its_window_under_a_moving_clock() {
    let h = support::harness();
    let limit = RateLimit::sliding(10, Duration::from_secs(15 * 60));
    let limits = h.auth.limits();
    for _ in 0..10 {
        limits.record_failure("f", "acct", &limit).await.unwrap();
        h.clock.advance(Duration::from_secs(30));
    }
    let wait = retry_after(limits.check("f", "acct", &limit).await);
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(15 * 60),
        "{wait:?}"
    );
    h.clock.advance(wait);
    limits.check("f", "acct", &limit).await.unwrap();
    h.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        limits.record_failure("f", "acct", &limit).await.unwrap(),
        9,
        "old failures are gone"
    );
}

async fn racing_hits_admit_exactly_max(limit: RateLimit) {
    let h = support::harness();
    let auth = Arc::new(h.auth);
    let results = race(16, |_| {
        let auth = auth.clone();
        async move {
            auth.limits()
                .hit("send", "victim@example.com", &limit)
                .await
        }
    })
    .await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, limit.max as usize);
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::RateLimited { .. })))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_limit_admits_exactly_max_of_16_racing_requests() {
    racing_hits_admit_exactly_max(RateLimit::fixed(5, MINUTE)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sliding_limit_admits_exactly_max_of_16_racing_requests() {
    racing_hits_admit_exactly_max(RateLimit::sliding(5, MINUTE)).await;
}

#[tokio::test]
async fn unusable_limits_are_refused_not_silently_open() {
    let h = support::harness();
    let limits = h.auth.limits();
    let never = RateLimit::fixed(0, MINUTE);
    let instant = RateLimit::fixed(5, Duration::from_micros(10));
    for limit in [never, instant] {
        assert_eq!(
            limits.hit("s", "x", &limit).await.unwrap_err().code(),
            "config"
        );
        assert_eq!(
            limits.check("s", "x", &limit).await.unwrap_err().code(),
            "config"
        );
        let err = limits.record_failure("s", "x", &limit).await.unwrap_err();
        assert_eq!(err.code(), "config");
    }
}

#[tokio::test]
async fn default_limits_are_what_the_docs_say() {
    let limits = Config::new("https://a.example.com").limits;
    assert_eq!(
        limits.failures_per_account_ip,
        RateLimit::sliding(10, 15 * MINUTE)
    );
    assert_eq!(
        limits.failures_per_account,
        RateLimit::sliding(100, 24 * 60 * MINUTE)
    );
    assert!(
        limits.failures_per_account.max <= 100,
        "NIST SP 800-63B §3.2.2"
    );
    assert_eq!(
        limits.sends_per_recipient,
        RateLimit::sliding(5, 60 * MINUTE)
    );
}
