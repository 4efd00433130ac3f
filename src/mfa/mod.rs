//! Multi-factor authentication: TOTP authenticators, backup codes, and the MFA step that
//! finishes a sign-in whose first factor asked for a second
//! ([`SignIn::MfaRequired`]).

pub mod backup;
pub mod totp;

use std::fmt;

use serde::Serialize;

use crate::crypto::{BackupCode, MfaToken, OneTimeCode, SecretPurpose};
use crate::engine::Inner;
use crate::model::{
    ChallengeKey, ChallengeKind, CredentialId, FactorId, FactorStatus, Phone, UserId,
};
use crate::signin::{PendingMfa, SignIn, finish};
use crate::{Error, RequestContext, StoreError, Timestamp};

pub use backup::BackupCodes;
pub use totp::{Totp, TotpEnrollment};

/// Multi-factor authentication (`auth.mfa()`).
#[derive(Clone, Copy)]
pub struct Mfa<'a> {
    inner: &'a Inner,
}

/// What completes the MFA step.
#[derive(Clone)]
#[non_exhaustive]
pub enum MfaProof {
    /// A code from the user's authenticator app.
    Totp(OneTimeCode),
    /// One of the user's backup codes.
    BackupCode(BackupCode),
}

impl fmt::Debug for MfaProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MfaProof::Totp(_) => "MfaProof::Totp([redacted])",
            MfaProof::BackupCode(_) => "MfaProof::BackupCode([redacted])",
        })
    }
}

/// A TOTP authenticator, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpInfo {
    /// The factor's id.
    pub id: FactorId,
    /// Whether it is confirmed.
    pub status: FactorStatus,
    /// When it was enrolled.
    pub created_at: Timestamp,
}

/// A passkey, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyInfo {
    /// The credential id.
    pub id: CredentialId,
    /// The name the user gave it.
    pub name: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
}

/// Everything a user can prove themselves with beyond a first factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authenticators {
    /// TOTP authenticators (at most one active).
    pub totp: Vec<TotpInfo>,
    /// Unused backup codes.
    pub backup_codes_remaining: usize,
    /// Passkeys.
    pub passkeys: Vec<PasskeyInfo>,
    /// The verified phone number, if any.
    pub phone: Option<Phone>,
}

impl<'a> Mfa<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Mfa { inner }
    }

    /// TOTP authenticators: enrol, confirm, remove.
    pub fn totp(&self) -> Totp<'a> {
        Totp::new(self.inner)
    }

    /// Backup codes: regenerate, count.
    pub fn backup_codes(&self) -> BackupCodes<'a> {
        BackupCodes::new(self.inner)
    }

    /// A user's second factors.
    pub async fn authenticators(&self, user: UserId) -> Result<Authenticators, Error> {
        let users = &self.inner.users;
        let account = users
            .get_user(user)
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        let totp = users
            .list_totp_factors(user)
            .await?
            .into_iter()
            .map(|f| TotpInfo {
                id: f.id,
                status: f.status,
                created_at: f.created_at,
            })
            .collect();
        let passkeys = users
            .list_passkeys(user)
            .await?
            .into_iter()
            .map(|p| PasskeyInfo {
                id: p.id,
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect();
        Ok(Authenticators {
            totp,
            backup_codes_remaining: users.count_backup_codes(user).await?,
            passkeys,
            phone: account.phone.filter(|_| account.phone_verified),
        })
    }

    /// Finishes a sign-in with its second factor: tokens (or the authorization code the
    /// first factor was asked for), with `amr` adding `otp` and `mfa`.
    ///
    /// The MFA token works once, on success, and for `ttl.mfa_token` (5 minutes); a wrong
    /// code leaves it usable but counts against the account's failure budget, after which
    /// [`Error::RateLimited`] answers until the window passes. A TOTP code is accepted once
    /// (a replay is a wrong code); a backup code once, ever. Errors: [`Error::InvalidToken`]
    /// for an unknown, used or expired MFA token; [`Error::InvalidCredentials`] for a wrong
    /// code or a blocked user.
    pub async fn verify(
        &self,
        mfa_token: &MfaToken,
        proof: &MfaProof,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        if mfa_token.secret().len() > 128 {
            return Err(Error::InvalidToken);
        }
        let hash = inner
            .hasher
            .hash(SecretPurpose::MfaToken, mfa_token.secret().as_bytes());
        let key = ChallengeKey::hashed(ChallengeKind::MfaToken, &hash);
        let record = inner
            .challenges
            .get(&key, inner.clock.now())
            .await?
            .ok_or(Error::InvalidToken)?;
        let pending: PendingMfa = serde_json::from_slice(&record.value)
            .map_err(|_| Error::Store(StoreError::Corrupt { what: "mfa_token" }))?;
        let user_id = pending.user_id;
        let subject = account_subject(inner, user_id).await?;
        crate::flows::count_attempt(inner, &subject, ctx).await?;

        let (accepted, method) = match proof {
            MfaProof::Totp(code) => {
                let factors = inner.users.list_totp_factors(user_id).await?;
                let mut accepted = false;
                for factor in factors.iter().filter(|f| f.status == FactorStatus::Active) {
                    match Totp::new(inner).accept(factor, code).await {
                        Ok(true) => {
                            accepted = true;
                            break;
                        }
                        Ok(false) => {}
                        // A factor whose secret does not open (tampered, or sealed under a
                        // retired key) cannot be used; the others still can.
                        Err(Error::Crypto) => {
                            tracing::warn!(user_id = %user_id, factor_id = %factor.id, "a TOTP secret does not open");
                        }
                        Err(err) => return Err(err),
                    }
                }
                (accepted, "totp")
            }
            MfaProof::BackupCode(code) => {
                (backup::consume(inner, user_id, code).await?, "backup_code")
            }
        };
        if !accepted {
            crate::flows::log_failure(inner, Some(user_id), ctx, method).await?;
            return Err(Error::InvalidCredentials);
        }
        // Single use: of two proofs racing on one token, one signs in.
        if inner
            .challenges
            .take(&key, inner.clock.now())
            .await?
            .is_none()
        {
            return Err(Error::InvalidToken);
        }
        // Checked again: the account may have been blocked, locked or removed from the
        // organization since the first factor.
        let user = inner
            .users
            .get_user(user_id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        crate::signin::may_sign_in(inner, &user)?;
        crate::signin::still_member(inner, &user, pending.org_id).await?;
        let mut amr = pending.amr.clone();
        for value in ["otp", "mfa"] {
            if !amr.iter().any(|a| a == value) {
                amr.push(value.to_owned());
            }
        }
        let mut ctx = ctx.clone();
        ctx.org_id = pending.org_id;
        let end = crate::signin::Ending {
            amr,
            aal: 2,
            org_id: pending.org_id,
            code_request: pending.code_request.as_ref(),
            method,
            deferred: &pending.deferred,
        };
        finish(inner, &user, end, &ctx).await
    }
}

/// The subject a user's failure budget is kept under: their email address (or phone,
/// or id), the same subject the password and passwordless flows count under, so wrong
/// passwords, codes and second factors all fill one per-account budget, and any
/// successful sign-in empties it.
async fn account_subject(inner: &Inner, user: UserId) -> Result<String, Error> {
    let account = inner.users.get_user(user).await?;
    Ok(account
        .and_then(|u| {
            u.email
                .map(|e| e.as_str().to_owned())
                .or_else(|| u.phone.map(|p| p.as_str().to_owned()))
        })
        .unwrap_or_else(|| user.to_string()))
}

/// Refuses while the user's or the client's failure budget is spent.
pub(crate) async fn check_failures(
    inner: &Inner,
    user: UserId,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let subject = account_subject(inner, user).await?;
    crate::flows::check_failures(inner, &subject, ctx).await
}

/// Counts a wrong second factor against the user's and the client's failure budgets.
pub(crate) async fn record_failure(
    inner: &Inner,
    user: UserId,
    ctx: &RequestContext,
    method: &str,
) -> Result<(), Error> {
    let subject = account_subject(inner, user).await?;
    crate::flows::record_failure(inner, Some(&subject), Some(user), ctx, method).await
}
