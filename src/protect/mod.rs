//! Attack protection: rate limits and attempt budgets over
//! [`ChallengeStore::incr`](crate::store::ChallengeStore::incr), bot checks, and
//! breached-password checks ([`BreachedPasswords`]: the bundled common-password list and,
//! with feature `hibp`, the Pwned Passwords range API).
//!
//! Every flow counts through [`RateLimiter`]; nothing else counts attempts. Failure
//! budgets (`failures`) are its typed scopes for wrong secrets.

pub(crate) mod bot;
mod breached;
#[cfg(feature = "captcha")]
pub mod captcha;
pub(crate) mod failures;
pub(crate) mod guard;
#[cfg(feature = "hibp")]
pub mod hibp;
mod limiter;
mod pow;
pub(crate) mod sends;
pub(crate) mod signals;

pub use bot::BotCheck;
pub use breached::{BreachedPasswords, CommonPasswords, PasswordList};
pub use guard::{Block, BlockKind, MAX_LISTED_BLOCKS, Shield, Unblocked};
pub use limiter::RateLimiter;
pub use pow::{PowChallenge, ProofOfWork, solve};
pub use signals::{Coordinates, device_name};

use std::net::IpAddr;

/// The subject a client address is counted under: an IPv4 address as is (also when it
/// arrives IPv4-mapped in IPv6), an IPv6 address by its /64 — one customer's allocation,
/// whose 2^64 addresses would otherwise each get a budget of their own.
pub fn ip_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let subject = |text: &str| ip_subject(text.parse().unwrap());
        assert_eq!(subject("203.0.113.7"), "203.0.113.7");
        assert_eq!(subject("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(subject("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(subject("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:3::1"), subject("2001:db8:1:2::1"));
    }
}
