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
/// ([`LatchkeyBuilder::breached_passwords`](crate::LatchkeyBuilder::breached_passwords)),
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
