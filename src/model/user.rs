//! Users and the credentials and factors they own.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CredentialId, Email, FactorId, Phone, UserId};
use crate::Timestamp;
use crate::crypto::Sealed;

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// Email address, unique across users.
    pub email: Option<Email>,
    /// Whether the person proved they receive mail at `email`.
    pub email_verified: bool,
    /// Phone number, unique across users.
    pub phone: Option<Phone>,
    /// Whether the person proved they receive texts at `phone`.
    pub phone_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Application data, returned as stored.
    pub metadata: serde_json::Value,
    /// The password's PHC string, when the user has a password.
    pub password_hash: Option<PasswordHash>,
    /// A blocked user cannot sign in and has no live sessions.
    pub blocked: bool,
    /// Sign-in is refused until this time (brute-force lockout).
    pub locked_until: Option<Timestamp>,
    /// When the user was created.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
    /// Bumped by the store on every update; updates name the revision they read
    /// (compare-and-swap), so concurrent edits cannot silently overwrite each other.
    pub revision: u64,
    /// The revision of the user's credentials and proofs (DESIGN invariant 13). Every
    /// token, ceremony, MFA or enrolment token and pending sign-in carries the stamp it
    /// was made under, and is refused once the stamp moved: proving an address, changing
    /// or resetting the password, removing a factor, changing an identifier and blocking
    /// all move it ([`rotate_security_stamp`](Self::rotate_security_stamp)).
    #[serde(default)]
    pub security_stamp: u64,
}

impl User {
    /// A new, active user with no contact details, created at `now`.
    pub fn new(id: UserId, now: Timestamp) -> Self {
        User {
            id,
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            name: None,
            metadata: serde_json::Value::Null,
            password_hash: None,
            blocked: false,
            locked_until: None,
            created_at: now,
            updated_at: now,
            revision: 0,
            security_stamp: 0,
        }
    }

    /// Moves the security stamp: everything made under the old one stops working. An
    /// application that changes a credential in the store itself must call this in the
    /// same update.
    pub fn rotate_security_stamp(&mut self) {
        self.security_stamp = self.security_stamp.wrapping_add(1);
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$…`).
///
/// Not the password, but still offline-attackable: kept out of `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string.
    pub fn new(phc: impl Into<String>) -> Self {
        PasswordHash(phc.into())
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the algorithm id: in some formats (bcrypt) everything after it is salt+hash.
        let algorithm = self.0.split('$').nth(1).unwrap_or("?");
        write!(f, "PasswordHash(${algorithm}$…)")
    }
}

/// A WebAuthn credential (passkey) registered to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyCredential {
    /// The credential id, unique across all users.
    pub id: CredentialId,
    /// The owner.
    pub user_id: UserId,
    /// A name the user chose ("MacBook Touch ID").
    pub name: String,
    /// The WebAuthn library's serialized credential (public key, algorithm, flags), as
    /// registered. Opaque to stores. The counter and backup state below are the live ones.
    pub passkey: Vec<u8>,
    /// The authenticator's signature counter (0 when it keeps none).
    pub counter: u32,
    /// Whether the credential may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it is currently backed up (synced).
    pub backup_state: bool,
    /// Whether the authenticator verified the user (PIN, biometric) when the credential
    /// was registered. Only then can a verified sign-in with it count as two factors: an
    /// authenticator that skipped verification at registration proved nothing about who
    /// set it up, whatever it asserts later. Records written before this was kept read as
    /// `false` here; the engine then takes the registration's answer from the credential
    /// itself (`passkey`, which it never rewrites).
    #[serde(default)]
    pub registered_with_uv: bool,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
    /// The WebAuthn relying-party id it was registered under when that was an
    /// organization's login domain ([`OrgSettings::login_domain`]); `None` for the
    /// installation's. It signs in there only.
    ///
    /// [`OrgSettings::login_domain`]: crate::OrgSettings::login_domain
    #[serde(default)]
    pub rp_id: Option<String>,
}

impl PasskeyCredential {
    /// Records a sign-in if it may be recorded: the signature counter must grow, unless the
    /// authenticator keeps none (0 on both sides). Returns whether it applied; `false` is a
    /// counter regression, a possibly cloned authenticator. The rule every
    /// [`UserStore::record_passkey_use`](crate::store::UserStore::record_passkey_use) applies.
    pub fn record_use(&mut self, use_: &PasskeyUse) -> bool {
        let advances = use_.counter > self.counter || (use_.counter == 0 && self.counter == 0);
        if advances {
            self.counter = use_.counter;
            self.backup_state = use_.backup_state;
            self.passkey = use_.passkey.clone();
            self.last_used_at = Some(use_.at);
        }
        advances
    }
}

/// What a successful passkey sign-in changes on its credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyUse {
    /// The counter the authenticator reported.
    pub counter: u32,
    /// The backup state it reported.
    pub backup_state: bool,
    /// The credential blob to keep (the engine passes the registered one unchanged).
    pub passkey: Vec<u8>,
    /// When it was used.
    pub at: Timestamp,
}

/// Whether a TOTP factor is usable yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorStatus {
    /// Enrolled but not yet confirmed with a first code.
    Pending,
    /// Confirmed: required at sign-in.
    Active,
}

/// A TOTP authenticator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The factor's id.
    pub id: FactorId,
    /// The owner.
    pub user_id: UserId,
    /// The shared secret, sealed with the engine's keyring; associated data binds it to
    /// this user and factor.
    pub secret: Sealed,
    /// Pending until the first code confirms it.
    pub status: FactorStatus,
    /// The last accepted time step: a code for this step or an earlier one is a replay.
    pub last_step: Option<u64>,
    /// When it was enrolled.
    pub created_at: Timestamp,
}

impl TotpFactor {
    /// Accepts a time step if it is later than the last accepted one (a code for an earlier
    /// or equal step is a replay). Returns whether it did. The rule every
    /// [`UserStore::advance_totp_step`](crate::store::UserStore::advance_totp_step) applies.
    pub fn advance_step(&mut self, step: u64) -> bool {
        if self.last_step.is_some_and(|last| step <= last) {
            return false;
        }
        self.last_step = Some(step);
        true
    }

    /// This factor as it should be stored over `previous`: the last accepted step never
    /// moves back, so no write can make an accepted code replayable.
    pub fn merged_over(&self, previous: Option<&TotpFactor>) -> TotpFactor {
        let mut merged = self.clone();
        merged.last_step = merged.last_step.max(previous.and_then(|p| p.last_step));
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_debug_shows_parameters_not_hash() {
        let hash = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g");
        let printed = format!("{hash:?}");
        assert_eq!(printed, "PasswordHash($argon2id$…)");
        let bcrypt =
            PasswordHash::new("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW");
        assert_eq!(format!("{bcrypt:?}"), "PasswordHash($2b$…)");
    }

    /// WA-09: a passkey stored before `registered_with_uv` was kept reads as registered
    /// without user verification (one factor), never with it.
    #[test]
    fn a_passkey_stored_without_registered_with_uv_reads_as_unverified() {
        let passkey = PasskeyCredential {
            id: CredentialId::new(vec![1u8; 16]).unwrap(),
            user_id: UserId::generate(),
            name: "old".into(),
            passkey: vec![1],
            counter: 3,
            backup_eligible: false,
            backup_state: false,
            registered_with_uv: true,
            created_at: Timestamp::EPOCH,
            last_used_at: None,
            rp_id: None,
        };
        let mut old = serde_json::to_value(&passkey).unwrap();
        old.as_object_mut().unwrap().remove("registered_with_uv");
        let read: PasskeyCredential = serde_json::from_value(old).unwrap();
        assert!(!read.registered_with_uv);
        let kept: PasskeyCredential =
            serde_json::from_value(serde_json::to_value(&passkey).unwrap()).unwrap();
        assert!(kept.registered_with_uv);
    }
}
