//! [`RateLimiter`]: fixed and sliding windows over the challenge store's counters.

use std::time::Duration;

use crate::config::{RateLimit, Window};
use crate::crypto::SecretPurpose;
use crate::engine::Inner;
use crate::{Error, Timestamp};

/// Counts events per key in time windows and refuses with [`Error::RateLimited`] past a
/// [`RateLimit`].
///
/// A key is a `scope` (what is limited: `"signin_fail_account"`, `"send_recipient"`…) and a
/// `subject` (whom: a normalized email, an IP). The subject is stored only as a keyed hash,
/// so counters reveal no addresses. Two ways to count:
///
/// - [`hit`](Self::hit) counts a request and refuses it if it went over (sends, resends):
///   the check and the count are one atomic increment, so N racing requests get exactly as
///   many successes as the window has room for (M on an empty window of limit M). Refused
///   hits count too, so hammering a limit keeps it shut.
///
/// A limit passed in is checked like one in [`Limits`](crate::Limits): at least one event,
/// a window of 1 second to 30 days; otherwise [`Error::Config`].
/// - [`check`](Self::check) + [`record_failure`](Self::record_failure) for failure budgets
///   (wrong passwords, wrong codes): check before doing any expensive work, count only
///   failures, and [`reset`](Self::reset) on success.
#[derive(Clone, Copy)]
pub struct RateLimiter<'a> {
    inner: &'a Inner,
}

impl<'a> RateLimiter<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        RateLimiter { inner }
    }

    /// Counts one event and refuses it when the window now holds more than `limit.max`.
    pub async fn hit(&self, scope: &str, subject: &str, limit: &RateLimit) -> Result<(), Error> {
        self.hit_left(scope, subject, limit).await.map(|_| ())
    }

    /// [`hit`](Self::hit), returning how many more events the window allows (0: this one
    /// spent the budget).
    pub(crate) async fn hit_left(
        &self,
        scope: &str,
        subject: &str,
        limit: &RateLimit,
    ) -> Result<u32, Error> {
        let level = self.count_one(scope, subject, limit).await?;
        level.admit(0, limit)?;
        Ok(level.left(limit))
    }

    /// How many events the window holds (weighted, for a sliding window), counting nothing.
    pub(crate) async fn used(
        &self,
        scope: &str,
        subject: &str,
        limit: &RateLimit,
    ) -> Result<f64, Error> {
        Ok(self.level(scope, subject, limit).await?.count)
    }

    /// Counts one event, refusing nothing, and returns how many the window now holds.
    pub(crate) async fn count(
        &self,
        scope: &str,
        subject: &str,
        limit: &RateLimit,
    ) -> Result<f64, Error> {
        Ok(self.count_one(scope, subject, limit).await?.count)
    }

    /// Refuses when the budget is already spent (the window holds `limit.max` events or
    /// more), without counting anything. Cheap: call it before expensive work.
    pub async fn check(&self, scope: &str, subject: &str, limit: &RateLimit) -> Result<(), Error> {
        self.level(scope, subject, limit).await?.admit(1, limit)
    }

    /// Counts a failure. Returns how many more failures the window allows (0 = the next
    /// [`check`](Self::check) refuses).
    pub async fn record_failure(
        &self,
        scope: &str,
        subject: &str,
        limit: &RateLimit,
    ) -> Result<u32, Error> {
        let level = self.count_one(scope, subject, limit).await?;
        Ok(level.left(limit))
    }

    /// Forgets a subject's count (a success clears its failures).
    pub async fn reset(&self, scope: &str, subject: &str, limit: &RateLimit) -> Result<(), Error> {
        let now = self.inner.clock.now();
        let key = self.key(scope, subject);
        match limit.kind {
            Window::Fixed => {
                self.inner.challenges.reset_counter(&key, now).await?;
            }
            Window::Sliding => {
                let (current, previous) = self.sliding_keys(&key, limit, now);
                self.inner.challenges.reset_counter(&current, now).await?;
                self.inner.challenges.reset_counter(&previous, now).await?;
            }
        }
        Ok(())
    }

    /// Adds one to the subject's current counter and returns the level it reached. The
    /// level comes from the increment itself, not from a later read, so racing callers each
    /// see a distinct count and exactly `max` of them fit.
    async fn count_one(
        &self,
        scope: &str,
        subject: &str,
        limit: &RateLimit,
    ) -> Result<Level, Error> {
        limit.validate(scope, u32::MAX)?;
        let now = self.inner.clock.now();
        let key = self.key(scope, subject);
        let challenges = &self.inner.challenges;
        Ok(match limit.kind {
            Window::Fixed => {
                let counter = challenges.incr(&key, now + limit.window, now).await?;
                Level::fixed(counter.count, counter.expires_at, now)
            }
            Window::Sliding => {
                let (current, previous) = self.sliding_keys(&key, limit, now);
                // A bucket is read for two windows: as the current one, then as the previous.
                let expires_at = bucket_start(limit, now) + limit.window.saturating_mul(2);
                let cur = challenges.incr(&current, expires_at, now).await?;
                let prev = self.count_of(&previous, now).await?;
                Level::sliding(prev, cur.count, limit, now)
            }
        })
    }

    async fn level(&self, scope: &str, subject: &str, limit: &RateLimit) -> Result<Level, Error> {
        limit.validate(scope, u32::MAX)?;
        let now = self.inner.clock.now();
        let key = self.key(scope, subject);
        Ok(match limit.kind {
            Window::Fixed => match self.inner.challenges.counter(&key, now).await? {
                Some(counter) => Level::fixed(counter.count, counter.expires_at, now),
                None => Level::fixed(0, now, now),
            },
            Window::Sliding => {
                let (current, previous) = self.sliding_keys(&key, limit, now);
                let cur = self.count_of(&current, now).await?;
                let prev = self.count_of(&previous, now).await?;
                Level::sliding(prev, cur, limit, now)
            }
        })
    }

    async fn count_of(&self, key: &str, now: Timestamp) -> Result<u64, Error> {
        let counter = self.inner.challenges.counter(key, now).await?;
        Ok(counter.map_or(0, |c| c.count))
    }

    fn key(&self, scope: &str, subject: &str) -> String {
        let hash = self.inner.hasher.hash_parts(
            SecretPurpose::RateLimit,
            &[scope.as_bytes(), subject.as_bytes()],
        );
        format!("rl:{scope}:{}", hash.to_hex())
    }

    /// The counters of the bucket `now` falls in and of the one before it.
    fn sliding_keys(&self, key: &str, limit: &RateLimit, now: Timestamp) -> (String, String) {
        let index = bucket_index(limit, now);
        (
            format!("{key}:{index}"),
            format!("{key}:{}", index.saturating_sub(1)),
        )
    }
}

fn window_millis(limit: &RateLimit) -> i64 {
    i64::try_from(limit.window.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn bucket_index(limit: &RateLimit, now: Timestamp) -> i64 {
    now.unix_millis().div_euclid(window_millis(limit))
}

fn bucket_start(limit: &RateLimit, now: Timestamp) -> Timestamp {
    Timestamp::from_unix_millis(bucket_index(limit, now).saturating_mul(window_millis(limit)))
}

/// How full a window is, and how long until it drains by one.
#[derive(Debug)]
struct Level {
    /// Events in the window (weighted for sliding windows).
    count: f64,
    /// For fixed windows: when the window ends. For sliding: the counts behind `count`.
    shape: Shape,
}

#[derive(Debug)]
enum Shape {
    Fixed {
        resets_in: Duration,
    },
    Sliding {
        prev: f64,
        cur: f64,
        elapsed: f64,
        window: f64,
    },
}

impl Level {
    fn fixed(count: u64, expires_at: Timestamp, now: Timestamp) -> Self {
        Level {
            count: count as f64,
            shape: Shape::Fixed {
                resets_in: expires_at.duration_since(now),
            },
        }
    }

    fn sliding(prev: u64, cur: u64, limit: &RateLimit, now: Timestamp) -> Self {
        let window = window_millis(limit) as f64;
        let elapsed = now.duration_since(bucket_start(limit, now)).as_millis() as f64;
        let (prev, cur) = (prev as f64, cur as f64);
        Level {
            count: prev * (1.0 - elapsed / window) + cur,
            shape: Shape::Sliding {
                prev,
                cur,
                elapsed,
                window,
            },
        }
    }

    /// How many more events fit (0 once the window is full).
    fn left(&self, limit: &RateLimit) -> u32 {
        // The same tolerance as `admit`, so an exact fit reads as full, not one short.
        let used = (self.count - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32;
        limit.max.saturating_sub(used)
    }

    /// Admits when `count + extra <= max`; otherwise says how long until one more event
    /// would fit, if nothing else arrives meanwhile.
    fn admit(&self, extra: u32, limit: &RateLimit) -> Result<(), Error> {
        let max = f64::from(limit.max);
        let extra = f64::from(extra);
        // A tiny tolerance so that float weighting never refuses an exact fit.
        if self.count + extra <= max + 1e-9 {
            return Ok(());
        }
        // A retry adds one event to what is already counted (a refused hit included), so
        // the window must drain to `max - 1` before the retry fits.
        let target = max - 1.0;
        let wait_millis = match self.shape {
            Shape::Fixed { resets_in } => return Err(limited(resets_in)),
            Shape::Sliding {
                prev,
                cur,
                elapsed,
                window,
            } => {
                if cur <= target {
                    // The previous bucket's weight must decay until it fits.
                    (window * (1.0 - (target - cur) / prev) - elapsed).max(0.0)
                } else {
                    // Wait for this bucket to become the previous one, then for it to decay.
                    (window - elapsed) + window * (1.0 - target.max(0.0) / cur)
                }
            }
        };
        Err(limited(Duration::from_millis(wait_millis.ceil() as u64)))
    }
}

fn limited(retry_after: Duration) -> Error {
    Error::RateLimited {
        retry_after: retry_after.max(Duration::from_millis(1)),
    }
}
