//! Keyed hashing of the secrets people receive (security invariant 1).
//!
//! A secret is stored only as `HMAC-SHA256(pepper, label)`, where the label binds the
//! secret to its purpose and to whatever else the caller names (a request id, an
//! identifier). A stolen database is useless without the pepper, which lives in config,
//! and a hash computed for one purpose never matches a lookup for another.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{b64url_decode, random_bytes};
use crate::Error;

/// What a hashed secret is for. Part of every hash, so hashes of different purposes never
/// collide even for equal secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretPurpose {
    /// A magic-link token.
    MagicLink,
    /// A magic-link status poll token.
    PollToken,
    /// An email one-time code.
    EmailCode,
    /// An SMS one-time code.
    SmsCode,
    /// A refresh token.
    RefreshToken,
    /// An authorization code.
    AuthCode,
    /// An MFA step token.
    MfaToken,
    /// A backup code.
    BackupCode,
    /// A management API key.
    ApiKey,
    /// A password-reset token or code.
    PasswordReset,
    /// The subject of a rate limit (an email, an IP): counters never hold it in clear.
    RateLimit,
    /// A confidential client's secret.
    ClientSecret,
    /// The short code that binds a magic link to the browser that asked for it.
    DeviceCode,
    /// The handle naming a WebAuthn ceremony (registration or sign-in).
    PasskeyCeremony,
    /// Derives a user's WebAuthn user handle from their id: random-looking, no PII.
    UserHandle,
    /// Seeds the plausible credential ids shown for an unknown user name.
    FakeCredentials,
    /// Links a login-log event to the one before it, and stands in for its personal data.
    AuditChain,
    /// An invitation to join an organization.
    Invitation,
    /// The token that reverts a confirmed email change, sent to the old address.
    EmailChangeRevert,
    /// The `state` of an SSO sign-in.
    SsoState,
    /// A refresh token the OpenID provider issued to a client (never one of the API's own).
    OAuthRefreshToken,
    /// The OpenID provider's browser-session cookie.
    ProviderCookie,
    /// Derives the CSRF token of a provider page's form from its cookie.
    ProviderCsrf,
    /// An authorization request waiting for the person to sign in or consent.
    ProviderInteraction,
    /// An IT-admin setup link, and the setup session it opens.
    SetupLink,
    /// The link in a lockout notice.
    Unblock,
    /// A pending sign-in waiting for a breached password's replacement.
    PasswordChange,
    /// Seals the built-in proof-of-work challenges, and names spent ones.
    BotChallenge,
}

impl SecretPurpose {
    /// Whether this purpose names something rather than hiding a secret a person holds:
    /// such hashes must stay the same across pepper rotations (a passkey's user handle
    /// lives in the authenticator, counters and the login log's seals outlive a rotation),
    /// so they are made under the ring's oldest pepper, its anchor.
    pub const fn is_identifier(self) -> bool {
        matches!(
            self,
            SecretPurpose::RateLimit
                | SecretPurpose::UserHandle
                | SecretPurpose::FakeCredentials
                | SecretPurpose::AuditChain
        )
    }

    /// The stable label hashed in front of the secret.
    pub fn label(self) -> &'static str {
        match self {
            SecretPurpose::MagicLink => "magic_link",
            SecretPurpose::PollToken => "poll_token",
            SecretPurpose::EmailCode => "email_code",
            SecretPurpose::SmsCode => "sms_code",
            SecretPurpose::RefreshToken => "refresh_token",
            SecretPurpose::AuthCode => "auth_code",
            SecretPurpose::MfaToken => "mfa_token",
            SecretPurpose::BackupCode => "backup_code",
            SecretPurpose::ApiKey => "api_key",
            SecretPurpose::PasswordReset => "password_reset",
            SecretPurpose::RateLimit => "rate_limit",
            SecretPurpose::ClientSecret => "client_secret",
            SecretPurpose::DeviceCode => "device_code",
            SecretPurpose::PasskeyCeremony => "passkey_ceremony",
            SecretPurpose::UserHandle => "user_handle",
            SecretPurpose::FakeCredentials => "fake_credentials",
            SecretPurpose::AuditChain => "audit_chain",
            SecretPurpose::Invitation => "invitation",
            SecretPurpose::EmailChangeRevert => "email_change_revert",
            SecretPurpose::SsoState => "sso_state",
            SecretPurpose::OAuthRefreshToken => "oauth_refresh_token",
            SecretPurpose::ProviderCookie => "provider_cookie",
            SecretPurpose::ProviderCsrf => "provider_csrf",
            SecretPurpose::ProviderInteraction => "provider_interaction",
            SecretPurpose::SetupLink => "setup_link",
            SecretPurpose::Unblock => "unblock",
            SecretPurpose::PasswordChange => "password_change",
            SecretPurpose::BotChallenge => "bot_challenge",
        }
    }
}

/// The keyed hash of a secret: what stores keep and index instead of the secret.
///
/// Equality via `==` is fine for store lookups (the hash is keyed and not itself a
/// secret); compare a presented secret's hash with a stored one via [`SecretHash::ct_eq`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretHash(bytes)
    }

    /// The 32 bytes, for storage.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, for text keys.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            hex.push(char::from(DIGITS[usize::from(b >> 4)]));
            hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        hex
    }

    /// Compares in constant time.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first four bytes identify a hash in a log without helping anyone guess.
        let prefix: String = self.0[..4].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "SecretHash({prefix}…)")
    }
}

/// The engine's hashing key. At least 32 bytes; keep it outside the database.
#[derive(Clone)]
pub struct Pepper(Zeroizing<Vec<u8>>);

impl Pepper {
    /// The fewest bytes a pepper may have.
    pub const MIN_LEN: usize = 32;

    /// A pepper from raw bytes (at least 32).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < Self::MIN_LEN {
            return Err(Error::Config("the pepper must be at least 32 bytes".into()));
        }
        Ok(Pepper(bytes))
    }

    /// A pepper from base64url (no padding) text, as kept in an environment variable.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = b64url_decode(text.trim())
            .ok_or_else(|| Error::Config("the pepper is not base64url".into()))?;
        Self::from_bytes(bytes)
    }

    /// A fresh random 32-byte pepper.
    pub fn generate() -> Result<Self, Error> {
        Self::from_bytes(random_bytes::<32>()?.to_vec())
    }

    /// The pepper as base64url text, for saving a generated one.
    ///
    /// SECURITY: this is key material; store it like a password.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(super::b64url(&self.0))
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([secret key elided])")
    }
}

/// Hashes secrets under the engine's peppers: a ring, newest first, so the pepper can be
/// rotated without voiding what people hold.
///
/// - A new secret is hashed under the newest pepper ([`hash`](Self::hash)).
/// - A presented secret is looked up under each pepper in turn
///   ([`hashes`](Self::hashes)): one-time codes, refresh tokens, API keys, backup codes,
///   client secrets, invitations, email-change revert links, setup links, unblock links,
///   breached-password change tokens and proof-of-work challenges made before a rotation
///   keep working while their pepper is in the ring. Secrets that live minutes (magic
///   links, MFA-step tokens, authorization codes, passkey ceremonies, SSO states, setup
///   sessions) are looked up under the newest only: a rotation voids those in flight, and
///   their owners ask again.
/// - Identifiers that must not change ([`SecretPurpose::is_identifier`]: passkey user
///   handles, rate-limit subjects, the login log's seals) are made under the oldest
///   pepper, the ring's anchor, which therefore stays in the ring.
///
/// Rotation: put the new pepper first and keep the old ones after it. Refresh tokens move
/// to the new pepper as they rotate, codes and links expire within minutes; API keys and
/// backup codes made under an old pepper work as long as it is in the ring (re-issue them
/// before dropping it). Drop an old pepper, never the anchor, once nothing made under it
/// is still wanted.
#[derive(Clone)]
pub struct SecretHasher {
    // HMAC's keyed states, computed once, newest first: each hash clones one instead of
    // re-keying.
    ring: Vec<Hmac<Sha256>>,
}

impl SecretHasher {
    /// A hasher keyed with `pepper` alone.
    pub fn new(pepper: &Pepper) -> Result<Self, Error> {
        Self::ring(pepper, &[])
    }

    /// A hasher keyed with `current` for new secrets and `previous` (newest first; the
    /// last is the anchor) for secrets made before rotations. At most 8 peppers.
    pub fn ring(current: &Pepper, previous: &[Pepper]) -> Result<Self, Error> {
        if previous.len() > 7 {
            return Err(Error::Config(
                "the pepper ring holds at most 8 peppers".into(),
            ));
        }
        let peppers: Vec<&Pepper> = std::iter::once(current).chain(previous).collect();
        let mut ring = Vec::with_capacity(peppers.len());
        for (i, pepper) in peppers.iter().enumerate() {
            if peppers[..i]
                .iter()
                .any(|p| p.0.as_slice() == pepper.0.as_slice())
            {
                return Err(Error::Config("a pepper is in the ring twice".into()));
            }
            ring.push(
                <Hmac<Sha256> as KeyInit>::new_from_slice(&pepper.0)
                    .map_err(|_| Error::Config("the pepper cannot key HMAC-SHA256".into()))?,
            );
        }
        Ok(SecretHasher { ring })
    }

    /// How many peppers the ring holds.
    pub fn peppers(&self) -> usize {
        self.ring.len()
    }

    /// The hash of `secret` for `purpose`, under the newest pepper (the anchor, for an
    /// identifier).
    pub fn hash(&self, purpose: SecretPurpose, secret: &[u8]) -> SecretHash {
        self.hash_parts(purpose, &[secret])
    }

    /// The hash of several parts for `purpose`: binds a secret to its context, e.g.
    /// `[request_id, identifier, code]`. Each part is length-prefixed, so parts cannot
    /// be shifted into one another (`["ab", "c"]` and `["a", "bc"]` differ).
    pub fn hash_parts(&self, purpose: SecretPurpose, parts: &[&[u8]]) -> SecretHash {
        let key = match purpose.is_identifier() {
            true => self.ring.last(),
            false => self.ring.first(),
        };
        match key {
            Some(key) => Self::keyed(key, purpose, parts),
            None => unreachable!("a ring always holds its current pepper"),
        }
    }

    /// The hashes a presented secret may be stored under: one per pepper, newest first
    /// (one, for an identifier). Look each up in turn.
    pub fn hashes(&self, purpose: SecretPurpose, parts: &[&[u8]]) -> Vec<SecretHash> {
        if purpose.is_identifier() {
            return vec![self.hash_parts(purpose, parts)];
        }
        self.ring
            .iter()
            .map(|key| Self::keyed(key, purpose, parts))
            .collect()
    }

    /// Whether `stored` is the hash of `parts` under some pepper of the ring, compared in
    /// constant time (every pepper is tried, so the time tells nothing of which).
    pub fn matches(&self, purpose: SecretPurpose, parts: &[&[u8]], stored: &SecretHash) -> bool {
        self.hashes(purpose, parts)
            .iter()
            .fold(false, |found, hash| found | hash.ct_eq(stored))
    }

    fn keyed(key: &Hmac<Sha256>, purpose: SecretPurpose, parts: &[&[u8]]) -> SecretHash {
        let mut mac = key.clone();
        mac.update(b"portcullis/v1/");
        mac.update(purpose.label().as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        SecretHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher([secret key elided])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> SecretHasher {
        SecretHasher::new(&Pepper::from_bytes([7u8; 32]).unwrap()).unwrap()
    }

    #[test]
    fn hashes_are_keyed_and_purpose_bound() {
        let a = hasher().hash(SecretPurpose::MagicLink, b"token");
        assert_eq!(a, hasher().hash(SecretPurpose::MagicLink, b"token"));
        assert_ne!(a, hasher().hash(SecretPurpose::AuthCode, b"token"));
        let other = SecretHasher::new(&Pepper::from_bytes([8u8; 32]).unwrap()).unwrap();
        assert_ne!(a, other.hash(SecretPurpose::MagicLink, b"token"));
    }

    #[test]
    fn parts_cannot_shift_into_each_other() {
        let h = hasher();
        assert_ne!(
            h.hash_parts(SecretPurpose::EmailCode, &[b"ab", b"c"]),
            h.hash_parts(SecretPurpose::EmailCode, &[b"a", b"bc"])
        );
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // HMAC-SHA256(key = 32 x 0x07, "portcullis/v1/" "magic_link" u64be(5) "token"),
        // computed with Python's hmac module.
        let h = hasher().hash(SecretPurpose::MagicLink, b"token");
        assert_eq!(
            h.to_hex(),
            "b2e0c079107367a999ccf4094ca1be33f2e8a3bc4503e6664eb0be1e8fa478d8"
        );
    }

    #[test]
    fn short_or_malformed_peppers_are_config_errors() {
        assert_eq!(Pepper::from_bytes([1u8; 31]).unwrap_err().code(), "config");
        assert_eq!(Pepper::from_base64("!!").unwrap_err().code(), "config");
        let p = Pepper::generate().unwrap();
        let again = Pepper::from_base64(&p.to_base64()).unwrap();
        assert_eq!(
            SecretHasher::new(&p)
                .unwrap()
                .hash(SecretPurpose::ApiKey, b"k"),
            SecretHasher::new(&again)
                .unwrap()
                .hash(SecretPurpose::ApiKey, b"k")
        );
        assert_eq!(format!("{p:?}"), "Pepper([secret key elided])");
    }
}
