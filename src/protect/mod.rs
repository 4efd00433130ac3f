//! Attack protection: rate limits and attempt budgets over
//! [`ChallengeStore::incr`](crate::store::ChallengeStore::incr).
//!
//! Every flow counts through [`RateLimiter`]; nothing else counts attempts.

mod limiter;

pub use limiter::RateLimiter;
