//! Sessions and their refresh-token family.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{OrgId, SessionId, UserId};
use crate::Timestamp;
use crate::crypto::{Sealed, SecretHash};

/// A signed-in session. Its refresh token rotates on every use; the session keeps the hash
/// of the current one and its generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id (the `sid` claim of its access tokens).
    pub id: SessionId,
    /// Who is signed in.
    pub user_id: UserId,
    /// The organization the session runs in.
    pub org_id: Option<OrgId>,
    /// Keyed hash of the current refresh token.
    pub refresh_hash: SecretHash,
    /// How many times the refresh token has rotated.
    pub generation: u64,
    /// Authentication methods used (`pwd`, `otp`, `hwk`…, RFC 8176).
    pub amr: Vec<String>,
    /// Authenticator assurance level reached (1, 2 or 3).
    pub aal: u8,
    /// Client address at sign-in.
    pub ip: Option<IpAddr>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// When the person signed in.
    pub created_at: Timestamp,
    /// When the session was last refreshed.
    pub last_seen_at: Timestamp,
    /// Absolute end: no refresh extends the session past this.
    pub expires_at: Timestamp,
    /// When it was revoked (sign-out, reuse detected, user blocked).
    pub revoked_at: Option<Timestamp>,
}

impl Session {
    /// Whether the session can still be used at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A token-signing key as stored: the private key sealed with the engine's keyring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    /// The key id (`kid` header of every token it signs), unique.
    pub kid: String,
    /// The JWS algorithm: `"EdDSA"` or `"ES256"`.
    pub algorithm: String,
    /// The private key (PKCS#8 DER), sealed; the associated data binds it to `kid`.
    pub private_key: Sealed,
    /// The public key (Ed25519: 32 bytes; P-256: the 65-byte uncompressed point).
    pub public_key: Vec<u8>,
    /// When it was made. The newest key signs; older ones only verify.
    pub created_at: Timestamp,
}
