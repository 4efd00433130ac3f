//! [`BreachedPasswords`]: refusing passwords that attackers try first (NIST SP 800-63B
//! §3.1.1.2: "values known to be commonly used, expected, or compromised").

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::crypto::Password;

/// Says whether a password is known to attackers: on a list of common passwords, or in a
/// breach corpus. Given to the builder
/// ([`PortcullisBuilder::breached_passwords`](crate::PortcullisBuilder::breached_passwords)),
/// it screens every new password (sign-up, change, reset).
///
/// An implementation that cannot answer (a remote service down) returns an error; the
/// engine then lets the password through and logs a warning, so an outage of the checker
/// never stops people from signing up.
#[async_trait]
pub trait BreachedPasswords: Send + Sync + fmt::Debug {
    /// Whether `password` must be refused.
    async fn is_breached(&self, password: &Password) -> Result<bool, Error>;
}

/// The bundled list: the 30,000 most common passwords of leaked corpora, as zxcvbn ranks
/// them (`data/common-passwords.txt`, MIT; see `data/README.md`). It is compiled in as the
/// sorted 64-bit hashes of each lowercase entry (240 KB, no text), so a lookup is a binary
/// search with nothing to load, offline.
///
/// On by default ([`PasswordPolicy::refuse_common`](crate::PasswordPolicy::refuse_common)):
/// every new password is screened against it before any configured checker.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonPasswords;

static COMMON_HASHES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/common_passwords.bin"));

impl CommonPasswords {
    /// How many passwords the list holds.
    pub fn len(&self) -> usize {
        COMMON_HASHES.len() / 8
    }

    /// Never: the list is compiled in.
    pub fn is_empty(&self) -> bool {
        COMMON_HASHES.is_empty()
    }

    /// Whether `password`, ignoring case, is on the list, or is a listed password of 4+
    /// letters stretched to a length rule the usual way: up to 8 digits or symbols added at
    /// the end (`Sunshine2024!!!!`), or any number that run or repeat
    /// (`Monkey1234567890`, `Dragon!!!!!!!!!!`). A listed word followed by many random digits is a different
    /// matter and passes.
    pub fn contains(&self, password: &Password) -> bool {
        let lower = password.secret().to_lowercase();
        if listed(&lower) {
            return true;
        }
        let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
        let Some(suffix) = lower.get(stem.len()..).filter(|s| !s.is_empty()) else {
            return false;
        };
        // The digit row wraps: "1234567890" is a run to a person, if not to char codes.
        let padding = suffix.chars().count() <= 8
            || crate::flows::password::trivial(suffix)
            || "12345678901234567890".contains(suffix);
        padding && stem.chars().count() >= 4 && listed(stem)
    }
}

fn listed(lowercase: &str) -> bool {
    let wanted = fnv1a(lowercase.as_bytes());
    let count = COMMON_HASHES.len() / 8;
    let (mut low, mut high) = (0, count);
    while low < high {
        let mid = low + (high - low) / 2;
        let Some(chunk) = COMMON_HASHES.get(mid * 8..mid * 8 + 8) else {
            return false;
        };
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let hash = u64::from_le_bytes(bytes);
        match hash.cmp(&wanted) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
        }
    }
    false
}

include!("../fnv.rs");

#[async_trait]
impl BreachedPasswords for CommonPasswords {
    async fn is_breached(&self, password: &Password) -> Result<bool, Error> {
        Ok(self.contains(password))
    }
}

/// A list of passwords to refuse, held in memory as SHA-256 digests of their lowercase
/// form (so `Password1` is refused when `password1` is listed).
///
/// Load it from any list, one password per line — for example SecLists'
/// `10-million-password-list-top-100000.txt` (about 100 000 entries, 3.2 MiB in memory).
pub struct PasswordList {
    digests: HashSet<[u8; 32]>,
}

impl PasswordList {
    /// A list from text, one password per line; blank lines are skipped.
    pub fn from_lines(text: &str) -> Self {
        let digests = text
            .lines()
            .map(str::trim_end)
            .filter(|line| !line.is_empty())
            .map(digest)
            .collect();
        PasswordList { digests }
    }

    /// How many passwords it holds.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `password` is on the list (case-insensitively).
    pub fn contains(&self, password: &Password) -> bool {
        self.digests.contains(&digest(password.secret()))
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.to_lowercase().as_bytes()).into()
}

impl fmt::Debug for PasswordList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordList({} passwords)", self.digests.len())
    }
}

#[async_trait]
impl BreachedPasswords for PasswordList {
    async fn is_breached(&self, password: &Password) -> Result<bool, Error> {
        Ok(self.contains(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_refuses_common_passwords_and_their_stretched_forms() {
        let common = CommonPasswords;
        assert_eq!(common.len(), 30_000);
        for listed in [
            "123456",
            "password",
            "Password",
            "QWERTYUIOP",
            "iloveyou",
            "trustno1",
        ] {
            assert!(common.contains(&Password::new(listed)), "{listed}");
        }
        // A common word stretched to a length rule with digits and symbols.
        for stretched in ["monkey1234567890", "Sunshine2024!!!!", "dragon_________"] {
            assert!(common.contains(&Password::new(stretched)), "{stretched}");
        }
        for fine in [
            "correct horse battery staple",
            "correct horse battery staple 42",
            "dragon 7391 0462 8815 3307",
            "vq8-lamp-orbit-fjord",
            "9f3k2m8q7c1x5v",
            "xq1234567890123",
        ] {
            assert!(!common.contains(&Password::new(fine)), "{fine}");
        }
    }

    #[test]
    fn a_list_matches_whole_passwords_in_any_case() {
        let list = PasswordList::from_lines("password1\n\ncorrecthorsebatterystaple\r\niloveyou\n");
        assert_eq!(list.len(), 3);
        assert!(list.contains(&Password::new("Password1")));
        assert!(list.contains(&Password::new("CorrectHorseBatteryStaple")));
        assert!(!list.contains(&Password::new("password12")));
        assert!(!list.contains(&Password::new("")));
        assert_eq!(format!("{list:?}"), "PasswordList(3 passwords)");
    }
}
