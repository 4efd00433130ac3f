//! [`ProofOfWork`]: the built-in bot check, hashcash-style, with no third party.
//!
//! The engine hands out a challenge (`auth.protection().proof_of_work()`), sealed with the
//! pepper so it needs no storage: `v1.{difficulty}.{expires_ms}.{nonce}.{seal}`. The
//! client finds a counter such that SHA-256 of `{challenge}:{counter}` starts with
//! `difficulty` zero bits (about 2^difficulty tries; 16 takes a browser well under a
//! second) and sends `{challenge}:{counter}` as its bot proof. Checking costs one SHA-256,
//! one HMAC and one store insert, which also spends the challenge: a solution works once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::BotCheck;
use crate::crypto::{BotProof, SecretHash, SecretHasher, SecretPurpose, b64url, random_bytes};
use crate::model::{ChallengeKey, ChallengeKind};
use crate::store::ChallengeStore;
use crate::{Clock, Error, RequestContext, Timestamp};

/// A challenge for the client to solve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PowChallenge {
    /// `sha256-hashcash`.
    pub algorithm: &'static str,
    /// The challenge text: answer with `{challenge}:{counter}`.
    pub challenge: String,
    /// Leading zero bits SHA-256 of the answer must have.
    pub difficulty: u8,
    /// How long the challenge may be answered.
    pub expires_in: Duration,
}

/// The built-in bot check, hashcash-style, with no third party; turned on with
/// [`PortcullisBuilder::proof_of_work`](crate::PortcullisBuilder::proof_of_work).
///
/// The engine hands out a challenge (`auth.protection().proof_of_work()`), sealed with the
/// pepper so it needs no storage: `v1.{difficulty}.{expires_ms}.{nonce}.{seal}`. The
/// client finds a counter such that SHA-256 of `{challenge}:{counter}` starts with
/// `difficulty` zero bits (about 2^difficulty tries; [`solve`] does it) and sends
/// `{challenge}:{counter}` as its bot proof. Checking costs one SHA-256, one HMAC and one
/// store insert, which also spends the challenge: a solution works once.
pub struct ProofOfWork {
    clock: Arc<dyn Clock>,
    hasher: SecretHasher,
    spent: Arc<dyn ChallengeStore>,
    difficulty: u8,
    ttl: Duration,
}

impl std::fmt::Debug for ProofOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofOfWork")
            .field("difficulty", &self.difficulty)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The longest answer read: the challenge and a counter of at most 20 digits.
const MAX_PROOF: usize = 200;

impl ProofOfWork {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        hasher: SecretHasher,
        spent: Arc<dyn ChallengeStore>,
        difficulty: u8,
        ttl: Duration,
    ) -> Self {
        ProofOfWork {
            clock,
            hasher,
            spent,
            difficulty,
            ttl,
        }
    }

    /// A fresh challenge.
    pub fn challenge(&self) -> Result<PowChallenge, Error> {
        let expires = self.clock.now() + self.ttl;
        let nonce = b64url(random_bytes::<16>()?.as_ref());
        let head = format!("v1.{}.{}.{nonce}", self.difficulty, expires.unix_millis());
        let seal = seal(
            &self
                .hasher
                .hash_parts(SecretPurpose::BotChallenge, &[head.as_bytes()]),
        );
        Ok(PowChallenge {
            algorithm: "sha256-hashcash",
            challenge: format!("{head}.{seal}"),
            difficulty: self.difficulty,
            expires_in: self.ttl,
        })
    }

    /// Whether `proof` answers a challenge of ours, unexpired and unspent, with enough
    /// work; spends it. `Ok(false)` for any wrong answer; `Err` only when the store fails.
    pub async fn check(&self, proof: &str) -> Result<bool, Error> {
        let Some(answer) = Answer::parse(proof) else {
            return Ok(false);
        };
        let sealed_ok = self
            .hasher
            .hashes(SecretPurpose::BotChallenge, &[answer.head.as_bytes()])
            .iter()
            .fold(false, |ok, hash| {
                ok | crate::crypto::ct_eq(seal(hash).as_bytes(), answer.seal.as_bytes())
            });
        let now = self.clock.now();
        if !sealed_ok
            || answer.difficulty < self.difficulty
            || now >= answer.expires
            || leading_zero_bits(&Sha256::digest(proof.as_bytes())) < u32::from(answer.difficulty)
        {
            return Ok(false);
        }
        let spent = self.hasher.hash_parts(
            SecretPurpose::BotChallenge,
            &[b"spent", answer.nonce.as_bytes()],
        );
        let key = ChallengeKey::hashed(ChallengeKind::SpentProof, &spent);
        Ok(self.spent.insert(&key, b"", answer.expires, now).await?)
    }
}

#[async_trait]
impl BotCheck for ProofOfWork {
    async fn verify(&self, proof: &BotProof, _ctx: &RequestContext) -> Result<bool, Error> {
        self.check(proof.secret()).await
    }
}

/// An answer taken apart: `v1.{difficulty}.{expires_ms}.{nonce}.{seal}:{counter}`.
struct Answer<'a> {
    head: &'a str,
    difficulty: u8,
    expires: Timestamp,
    nonce: &'a str,
    seal: &'a str,
}

impl<'a> Answer<'a> {
    fn parse(proof: &'a str) -> Option<Self> {
        if proof.len() > MAX_PROOF {
            return None;
        }
        let (challenge, counter) = proof.rsplit_once(':')?;
        if counter.is_empty() || counter.len() > 20 || !counter.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (head, seal) = challenge.rsplit_once('.')?;
        let mut parts = head.split('.');
        let (Some("v1"), Some(difficulty), Some(expires), Some(nonce), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Answer {
            head,
            difficulty: difficulty.parse().ok()?,
            expires: Timestamp::from_unix_millis(expires.parse().ok()?),
            nonce,
            seal,
        })
    }
}

/// A challenge's seal: the first 128 bits of its keyed hash.
fn seal(hash: &SecretHash) -> String {
    b64url(&hash.as_bytes()[..16])
}

/// How many zero bits `digest` starts with.
fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Solves a challenge (for tests, benchmarks and Rust clients): the answer to send as the
/// bot proof.
pub fn solve(challenge: &str, difficulty: u8) -> String {
    let mut counter: u64 = 0;
    loop {
        let answer = format!("{challenge}:{counter}");
        if leading_zero_bits(&Sha256::digest(answer.as_bytes())) >= u32::from(difficulty) {
            return answer;
        }
        counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x0f, 0xff]), 20);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn answers_that_are_not_ours_do_not_parse() {
        for junk in [
            "",
            ":",
            "v1.16.1.n.s:",
            "v1.16.1.n.s:12a",
            "v2.16.1.n.s:1",
            "v1.16.1.n:1",
        ] {
            assert!(Answer::parse(junk).is_none(), "{junk:?}");
        }
        let ok = Answer::parse("v1.16.1700000000000.abc.def:42").unwrap();
        assert_eq!((ok.difficulty, ok.nonce, ok.seal), (16, "abc", "def"));
        assert!(Answer::parse(&format!("v1.16.1.n.s:{}", "1".repeat(21))).is_none());
    }
}
