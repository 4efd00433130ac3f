//! Ephemeral records (challenges) and counters, keyed by kind and id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::crypto::SecretHash;

/// What an ephemeral record is. Part of its key, so kinds never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChallengeKind {
    /// A magic link, keyed by its token's hash.
    MagicLink,
    /// A magic-link or code request, keyed by request id (status, resends).
    Request,
    /// An email or SMS one-time code.
    OneTimeCode,
    /// WebAuthn ceremony state.
    Webauthn,
    /// An authorization code.
    AuthCode,
    /// An MFA step token.
    MfaToken,
    /// A password-reset token.
    PasswordReset,
    /// A pending TOTP enrolment.
    TotpEnrolment,
    /// An authorization code already exchanged: remembers the session it opened, so a
    /// second exchange can revoke it.
    SpentAuthCode,
    /// An invitation to join an organization, keyed by its token's hash.
    Invitation,
    /// The current revision of an organization's roles, or of one member's: access
    /// tokens signed under another are stale.
    RolesRevision,
    /// The way back from a confirmed email change, keyed by the revert token's hash: the
    /// account and the address it had.
    EmailChangeRevert,
    /// An SSO sign-in under way (state, nonce, PKCE verifier), keyed by the state's hash.
    SsoState,
    /// An IT-admin setup link, keyed by its token's hash.
    SetupLink,
    /// The session a redeemed setup link opened, keyed by its token's hash.
    SetupSession,
    /// A SAML assertion already consumed, keyed by its connection and ID, kept until the
    /// assertion expires: a replay finds it (checklist SAML-14).
    SamlAssertion,
    /// A sign-in its SAML identity provider started, waiting for the person to confirm
    /// it, keyed by the confirmation token's hash (checklist SAML-16).
    SamlConfirmation,
    /// The list of lockouts and throttled addresses in force, for administrators (one
    /// record). The budgets' counters enforce them; this only names them.
    Blocks,
    /// Marks that an account's owner was told of a lockout from one client this window.
    LockoutNotice,
    /// The lockout a notice's link lifts, keyed by its token's hash.
    Unblock,
    /// A proof-of-work challenge already answered, kept until it expires.
    SpentProof,
    /// A sign-in waiting for a breached password's replacement, keyed by its token's hash.
    PasswordChange,
    /// An authorization request of the OpenID provider waiting for the person to sign in
    /// or consent, keyed by its interaction id's hash.
    ProviderInteraction,
    /// The provider's browser session: the session a cookie stands for, keyed by the
    /// cookie's hash.
    ProviderBrowser,
    /// What a client of the provider was granted (scopes, `auth_time`), keyed by the
    /// session its code opened.
    OAuthGrant,
    /// The clients a user consented to and for which scopes (one record per user).
    Consents,
}

impl ChallengeKind {
    /// Whether a record of this kind must survive a crash. An adapter that can lose
    /// acknowledged writes in a crash (sled flushes on a timer), or that voids outstanding
    /// challenges after one, makes an insert or update of such a kind durable before it
    /// returns and keeps such records when it voids the rest. Adapters whose acknowledged
    /// writes are all durable (Postgres) or that keep nothing across restarts (memory) need
    /// do nothing. The kinds that must:
    ///
    /// - [`SpentAuthCode`](Self::SpentAuthCode): the tombstone that makes a replayed code
    ///   revoke the session it opened;
    /// - [`RolesRevision`](Self::RolesRevision): what makes tokens signed before a role
    ///   change stale;
    /// - [`EmailChangeRevert`](Self::EmailChangeRevert): the owner's only way back from an
    ///   email change they did not make;
    /// - [`SamlAssertion`](Self::SamlAssertion): what refuses a replayed SAML assertion;
    /// - [`Consents`](Self::Consents): a revoked consent must stay revoked.
    ///
    /// Every other kind is a pending secret: losing it only means asking again, and a
    /// voided one cannot be replayed.
    pub const fn survives_crash(self) -> bool {
        match self {
            ChallengeKind::SpentAuthCode
            | ChallengeKind::RolesRevision
            | ChallengeKind::EmailChangeRevert
            | ChallengeKind::SamlAssertion
            | ChallengeKind::Consents => true,
            ChallengeKind::MagicLink
            | ChallengeKind::Request
            | ChallengeKind::OneTimeCode
            | ChallengeKind::Webauthn
            | ChallengeKind::AuthCode
            | ChallengeKind::MfaToken
            | ChallengeKind::PasswordReset
            | ChallengeKind::TotpEnrolment
            | ChallengeKind::Invitation
            | ChallengeKind::SsoState
            | ChallengeKind::SetupLink
            | ChallengeKind::SetupSession
            | ChallengeKind::SamlConfirmation
            | ChallengeKind::Blocks
            | ChallengeKind::LockoutNotice
            | ChallengeKind::Unblock
            | ChallengeKind::SpentProof
            | ChallengeKind::PasswordChange
            | ChallengeKind::ProviderInteraction
            | ChallengeKind::ProviderBrowser
            | ChallengeKind::OAuthGrant => false,
        }
    }

    /// A stable name, for text keys and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::MagicLink => "magic_link",
            ChallengeKind::Request => "request",
            ChallengeKind::OneTimeCode => "one_time_code",
            ChallengeKind::Webauthn => "webauthn",
            ChallengeKind::AuthCode => "auth_code",
            ChallengeKind::MfaToken => "mfa_token",
            ChallengeKind::PasswordReset => "password_reset",
            ChallengeKind::TotpEnrolment => "totp_enrolment",
            ChallengeKind::SpentAuthCode => "spent_auth_code",
            ChallengeKind::Invitation => "invitation",
            ChallengeKind::RolesRevision => "roles_revision",
            ChallengeKind::EmailChangeRevert => "email_change_revert",
            ChallengeKind::SsoState => "sso_state",
            ChallengeKind::SetupLink => "setup_link",
            ChallengeKind::SetupSession => "setup_session",
            ChallengeKind::SamlAssertion => "saml_assertion",
            ChallengeKind::SamlConfirmation => "saml_confirmation",
            ChallengeKind::Blocks => "blocks",
            ChallengeKind::LockoutNotice => "lockout_notice",
            ChallengeKind::Unblock => "unblock",
            ChallengeKind::SpentProof => "spent_proof",
            ChallengeKind::PasswordChange => "password_change",
            ChallengeKind::ProviderInteraction => "provider_interaction",
            ChallengeKind::ProviderBrowser => "provider_browser",
            ChallengeKind::OAuthGrant => "oauth_grant",
            ChallengeKind::Consents => "consents",
        }
    }

    /// Every kind, for adapters that keep one table or tree per kind.
    pub const ALL: [ChallengeKind; 26] = [
        ChallengeKind::MagicLink,
        ChallengeKind::Request,
        ChallengeKind::OneTimeCode,
        ChallengeKind::Webauthn,
        ChallengeKind::AuthCode,
        ChallengeKind::MfaToken,
        ChallengeKind::PasswordReset,
        ChallengeKind::TotpEnrolment,
        ChallengeKind::SpentAuthCode,
        ChallengeKind::Invitation,
        ChallengeKind::RolesRevision,
        ChallengeKind::EmailChangeRevert,
        ChallengeKind::SsoState,
        ChallengeKind::SetupLink,
        ChallengeKind::SetupSession,
        ChallengeKind::SamlAssertion,
        ChallengeKind::SamlConfirmation,
        ChallengeKind::Blocks,
        ChallengeKind::LockoutNotice,
        ChallengeKind::Unblock,
        ChallengeKind::SpentProof,
        ChallengeKind::PasswordChange,
        ChallengeKind::ProviderInteraction,
        ChallengeKind::ProviderBrowser,
        ChallengeKind::OAuthGrant,
        ChallengeKind::Consents,
    ];
}

/// The key of an ephemeral record: its kind and an id (a secret's hash in hex, or a
/// request id).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChallengeKey {
    /// The record's kind.
    pub kind: ChallengeKind,
    /// Its id within the kind.
    pub id: String,
}

impl ChallengeKey {
    /// A key from a kind and an id.
    pub fn new(kind: ChallengeKind, id: impl Into<String>) -> Self {
        ChallengeKey {
            kind,
            id: id.into(),
        }
    }

    /// The key of a record found by a secret: the secret's keyed hash.
    pub fn hashed(kind: ChallengeKind, hash: &SecretHash) -> Self {
        Self::new(kind, hash.to_hex())
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// An ephemeral record as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The payload, serialized by the flow that owns the kind. Opaque to stores.
    pub value: Vec<u8>,
    /// From this instant on the record is invisible to every read.
    pub expires_at: Timestamp,
    /// Starts at 0 and is bumped by every [`update`](crate::store::ChallengeStore::update).
    pub version: u64,
}

impl fmt::Debug for ChallengeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads may hold ceremony state; only their size is printed.
        f.debug_struct("ChallengeRecord")
            .field("value", &format_args!("{} bytes", self.value.len()))
            .field("expires_at", &self.expires_at)
            .field("version", &self.version)
            .finish()
    }
}

/// A counter in a time window (rate limits, attempt budgets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Increments so far in this window.
    pub count: u64,
    /// When the window ends and the count starts again from zero.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_that_survive_a_crash_are_the_ones_whose_loss_reopens_a_door() {
        let kept: Vec<ChallengeKind> = ChallengeKind::ALL
            .into_iter()
            .filter(|kind| kind.survives_crash())
            .collect();
        assert_eq!(
            kept,
            [
                ChallengeKind::SpentAuthCode,
                ChallengeKind::RolesRevision,
                ChallengeKind::EmailChangeRevert,
                ChallengeKind::SamlAssertion,
                ChallengeKind::Consents,
            ]
        );
    }
}
