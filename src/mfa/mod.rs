//! Multi-factor authentication: TOTP authenticators, backup codes, and the MFA step that
//! finishes a sign-in whose first factor asked for a second
//! ([`SignIn::MfaRequired`]).

pub mod backup;
pub mod totp;

use std::fmt;

use serde::Serialize;

use crate::crypto::{BackupCode, MfaToken, OneTimeCode, SecretPurpose};
use crate::delivery::Recipient;
use crate::engine::Inner;
use crate::flows::passkey::PasskeyInfo;
use crate::model::RequestId;
use crate::model::{ChallengeKey, ChallengeKind, FactorId, FactorStatus, Phone, UserId};
use crate::signin::{MfaMethod, PendingMfa, SignIn, finish};
use crate::{Error, RequestContext, StoreError, Timestamp};

pub use backup::BackupCodes;
pub use totp::{Totp, TotpEnrollment};

/// One of a user's authenticators, named for [`Mfa::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthenticatorId {
    /// A TOTP authenticator (active or pending).
    Totp(FactorId),
    /// A passkey.
    Passkey(crate::model::CredentialId),
}

/// Whether an organization `user` may sign in to requires MFA: the default one, the
/// session's, or any they are a member of.
async fn mfa_required_anywhere(
    inner: &Inner,
    user: UserId,
    session_org: Option<crate::OrgId>,
) -> Result<bool, Error> {
    use crate::directory::MfaRequirement;
    let orgs = crate::directory::Orgs::new(inner);
    let mut candidates = vec![None, session_org];
    candidates.extend(
        inner
            .orgs
            .list_memberships(user)
            .await?
            .into_iter()
            .map(|m| Some(m.org_id)),
    );
    for org in candidates {
        if orgs.settings(org).await?.mfa == MfaRequirement::Required {
            return Ok(true);
        }
    }
    Ok(false)
}

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
    /// The code [`Mfa::challenge`] texted, with the request it answers.
    Sms(RequestId, OneTimeCode),
    /// The code [`Mfa::challenge`] emailed, with the request it answers.
    Email(RequestId, OneTimeCode),
}

impl MfaProof {
    fn method(&self) -> MfaMethod {
        match self {
            MfaProof::Totp(_) => MfaMethod::Totp,
            MfaProof::BackupCode(_) => MfaMethod::BackupCode,
            MfaProof::Sms(..) => MfaMethod::Sms,
            MfaProof::Email(..) => MfaMethod::Email,
        }
    }
}

impl fmt::Debug for MfaProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MfaProof::{:?}([redacted])", self.method())
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
            .map(PasskeyInfo::from)
            .collect();
        Ok(Authenticators {
            totp,
            backup_codes_remaining: users.count_backup_codes(user).await?,
            passkeys,
            phone: account.phone.filter(|_| account.phone_verified),
        })
    }

    /// Removes one of the signed-in user's authenticators, by the session of their
    /// verified access token (`claims.sid`).
    ///
    /// The session's sign-in must be recent ([`MfaPolicy::fresh_sign_in`], 10 minutes by
    /// default), or the answer is [`Error::ReauthRequired`]: a stolen access token alone
    /// must not strip the account's second factor. When any organization the user may
    /// sign in to requires MFA (the default organization, the session's, or one they are a
    /// member of), their last active TOTP authenticator cannot go ([`Error::Forbidden`]):
    /// it is what a password or emailed-code sign-in asks for, and without it the next
    /// such sign-in would let whoever holds the first factor enrol their own. A passkey
    /// that is the last way to sign in at all is [`Error::Conflict`] (see
    /// [`Passkeys::delete`]); an unknown authenticator [`Error::NotFound`]; an ended
    /// session [`Error::SessionRevoked`].
    ///
    /// [`MfaPolicy::fresh_sign_in`]: crate::MfaPolicy::fresh_sign_in
    /// [`Passkeys::delete`]: crate::Passkeys::delete
    pub async fn remove(
        &self,
        session: crate::SessionId,
        which: &AuthenticatorId,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let inner = self.inner;
        let window = inner.config.config.mfa.fresh_sign_in;
        let (session, user) = crate::sessions::fresh_session(inner, session, window).await?;
        match which {
            AuthenticatorId::Totp(id) => {
                let factors = inner.users.list_totp_factors(user.id).await?;
                let active: Vec<_> = factors
                    .iter()
                    .filter(|f| f.status == FactorStatus::Active)
                    .collect();
                let last = matches!(active.as_slice(), [only] if only.id == *id);
                if last && mfa_required_anywhere(inner, user.id, session.org_id).await? {
                    return Err(Error::Forbidden);
                }
                if !Totp::new(inner).remove(user.id, *id, ctx).await? {
                    return Err(Error::NotFound {
                        what: "authenticator",
                    });
                }
                Ok(())
            }
            AuthenticatorId::Passkey(id) => {
                crate::flows::passkey::Passkeys::new(inner)
                    .delete(user.id, id, ctx)
                    .await
            }
        }
    }

    /// Starts one of the second factors a sign-in offered: for [`MfaMethod::Sms`] and
    /// [`MfaMethod::Email`] it sends a code to the user's verified number or address and
    /// returns the request to answer with [`MfaProof::Sms`] / [`MfaProof::Email`]; for
    /// TOTP and backup codes there is nothing to send (`None`). A method the step did not
    /// offer is [`Error::InvalidInput`]; an unknown, used or expired MFA token
    /// [`Error::InvalidToken`]. Sends are budgeted like every code.
    pub async fn challenge(
        &self,
        mfa_token: &MfaToken,
        method: MfaMethod,
        ctx: &RequestContext,
    ) -> Result<Option<crate::Sent>, Error> {
        let inner = self.inner;
        let (key, record, mut pending) = pending(inner, mfa_token, false).await?;
        if !offered(&pending).contains(&method) {
            return Err(Error::invalid("method", "is not offered for this sign-in"));
        }
        let user = signed_in_user(inner, &pending).await?;
        let codes = crate::flows::codes::Codes::new(inner);
        let unverified = || Error::invalid("method", "needs a verified phone or address");
        let sent = match method {
            MfaMethod::Sms => {
                let phone = user
                    .phone
                    .clone()
                    .filter(|_| user.phone_verified)
                    .ok_or_else(unverified)?;
                codes
                    .sms()
                    .send_second_factor(&user, Recipient::Phone(phone), ctx)
                    .await?
            }
            MfaMethod::Email => {
                let email = user
                    .email
                    .clone()
                    .filter(|_| user.email_verified)
                    .ok_or_else(unverified)?;
                codes
                    .email()
                    .send_second_factor(&user, Recipient::Email(email), ctx)
                    .await?
            }
            _ => return Ok(None),
        };
        // This step accepts only the code it sent last: not one sent for another sign-in
        // of the same user.
        pending.challenge = Some(sent.request_id);
        let value = serde_json::to_vec(&pending)
            .map_err(|_| Error::Internal("serializing an enrolment"))?;
        let now = inner.clock.now();
        if !inner
            .challenges
            .update(&key, record.version, &value, record.expires_at, now)
            .await?
        {
            return Err(Error::Conflict { what: "mfa_token" });
        }
        Ok(Some(sent))
    }

    /// Finishes a sign-in with its second factor: tokens (or the authorization code the
    /// first factor was asked for), with `amr` adding `otp` and `mfa`.
    ///
    /// The MFA token works once, on success, and for `ttl.mfa_token` (5 minutes). A wrong
    /// code counts against the account's failure budget, after which
    /// [`Error::RateLimited`] answers until the window passes, and against the token:
    /// the fifth wrong one ([`CodePolicy::max_attempts`](crate::CodePolicy::max_attempts))
    /// ends it, so the person signs in again. A TOTP code is accepted once
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
        let (key, _, pending) = pending(inner, mfa_token, false).await?;
        if !offered(&pending).contains(&proof.method()) {
            return Err(Error::invalid("method", "is not offered for this sign-in"));
        }
        let user_id = pending.user_id;
        // Read once: for the budget's subject and, after the proof, to check again that
        // the account was not blocked, locked or removed from the organization since the
        // first factor.
        let user = inner
            .users
            .get_user(user_id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if pending.stamp != Some(user.security_stamp) {
            return Err(Error::InvalidToken);
        }
        let subject = crate::flows::account_subject(&user);
        let counted = crate::flows::count_attempt(inner, &subject, Some(user_id), ctx).await?;
        // Counted against the token before the proof is judged (CON-02): of a burst of
        // proofs, only as many as the token allows are ever judged.
        let attempt = spend_attempt(inner, &key).await?;

        let (accepted, method) = match proof {
            MfaProof::Sms(request, code) | MfaProof::Email(request, code) => {
                let channel = match proof {
                    MfaProof::Sms(..) => crate::flows::codes::Codes::new(inner).sms(),
                    _ => crate::flows::codes::Codes::new(inner).email(),
                };
                let (state, _) = channel
                    .redeem(*request, code, crate::flows::Purpose::SecondFactor, ctx)
                    .await?;
                // Only the code this step sent proves anything about it.
                let own = state.user_id == Some(user_id) && pending.challenge == Some(*request);
                let name = if matches!(proof, MfaProof::Sms(..)) {
                    "sms"
                } else {
                    "email"
                };
                (own, name)
            }
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
            if attempt >= inner.config.config.codes.max_attempts {
                // That was the token's last try: it dies now.
                inner.challenges.delete(&key, inner.clock.now()).await?;
            }
            crate::flows::log_failure(inner, &counted, Some(user_id), ctx, method).await?;
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
        let factor_amr = match proof.method() {
            MfaMethod::Sms => "sms",
            MfaMethod::Email => "email",
            _ => "otp",
        };
        complete_step(inner, &user, &pending, method, factor_amr, ctx).await
    }

    /// Starts enrolling TOTP with an enrolment-only token
    /// ([`SignIn::MfaEnrollmentRequired`]): the QR code and secret for the user's app. The
    /// token stays valid for [`confirm_totp_for_sign_in`](Self::confirm_totp_for_sign_in).
    pub async fn enroll_totp_for_sign_in(
        &self,
        enrollment_token: &MfaToken,
        ctx: &RequestContext,
    ) -> Result<TotpEnrollment, Error> {
        let inner = self.inner;
        let (_, _, pending) = pending(inner, enrollment_token, true).await?;
        signed_in_user(inner, &pending).await?;
        Totp::new(inner).enroll(pending.user_id, ctx).await
    }

    /// Confirms the TOTP enrolment with a first code and finishes the sign-in the token
    /// carries, as the MFA step would (`amr` gains `otp` and `mfa`). Returns the new backup
    /// codes (show them once) and the sign-in. The token is claimed before the factor is
    /// activated, so of racing confirmations one proceeds; a wrong code gives it back.
    pub async fn confirm_totp_for_sign_in(
        &self,
        enrollment_token: &MfaToken,
        code: &OneTimeCode,
        ctx: &RequestContext,
    ) -> Result<(Vec<BackupCode>, SignIn), Error> {
        let inner = self.inner;
        let (key, record, pending) = pending(inner, enrollment_token, true).await?;
        let user = signed_in_user(inner, &pending).await?;
        let now = inner.clock.now();
        if inner.challenges.take(&key, now).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        let backup_codes = match Totp::new(inner).confirm(pending.user_id, code, ctx).await {
            Ok(codes) => codes,
            Err(err) => {
                // Given back for another try, with the time it had left.
                let now = inner.clock.now();
                inner
                    .challenges
                    .insert(&key, &record.value, record.expires_at, now)
                    .await?;
                return Err(err);
            }
        };
        let sign_in = complete_step(inner, &user, &pending, "totp", "otp", ctx).await?;
        Ok((backup_codes, sign_in))
    }
}

/// Counts a proof against an MFA token before it is judged and returns its number: the
/// token allows [`CodePolicy::max_attempts`](crate::CodePolicy::max_attempts) (5 by
/// default), whatever the account's budget still allows, and a proof past them is
/// [`Error::InvalidToken`]. Compare-and-swap on the record, so racing proofs are each
/// counted once and get distinct numbers.
async fn spend_attempt(inner: &Inner, key: &ChallengeKey) -> Result<u32, Error> {
    let max = inner.config.config.codes.max_attempts;
    for _ in 0..crate::flows::MAX_RETRIES {
        let now = inner.clock.now();
        let Some(record) = inner.challenges.get(key, now).await? else {
            return Err(Error::InvalidToken);
        };
        let corrupt = |_| Error::Store(StoreError::Corrupt { what: "mfa_token" });
        let mut pending: PendingMfa = serde_json::from_slice(&record.value).map_err(corrupt)?;
        if pending.attempts >= max {
            inner.challenges.delete(key, now).await?;
            return Err(Error::InvalidToken);
        }
        pending.attempts += 1;
        let value = serde_json::to_vec(&pending).map_err(corrupt)?;
        if inner
            .challenges
            .update(key, record.version, &value, record.expires_at, now)
            .await?
        {
            return Ok(pending.attempts);
        }
    }
    Err(Error::Conflict { what: "mfa_token" })
}

/// The user an MFA or enrolment-only token belongs to, if they may still sign in, in the
/// organization the sign-in started in, with the credentials the first factor was proven
/// against (the security stamp has not moved): checked before anything is sent or
/// enrolled.
async fn signed_in_user(inner: &Inner, pending: &PendingMfa) -> Result<crate::model::User, Error> {
    let user = inner
        .users
        .get_user(pending.user_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    crate::signin::may_sign_in(inner, &user)?;
    if pending.stamp != Some(user.security_stamp) {
        tracing::info!(user_id = %user.id, "an MFA token from before a credential change was refused");
        return Err(Error::InvalidToken);
    }
    crate::signin::still_member(inner, &user, pending.org_id).await?;
    Ok(user)
}

/// Ends a sign-in whose second factor was just proven (or enrolled): the account must
/// still be able to sign in, in the organization it started in; `amr` gains the factor's
/// value and `mfa`.
async fn complete_step(
    inner: &Inner,
    user: &crate::model::User,
    pending: &PendingMfa,
    method: &str,
    factor_amr: &str,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    crate::signin::may_sign_in(inner, user)?;
    crate::signin::still_member(inner, user, pending.org_id).await?;
    let mut amr = pending.amr.clone();
    for value in [factor_amr, "mfa"] {
        if !amr.iter().any(|a| a == value) {
            amr.push(value.to_owned());
        }
    }
    let mut ctx = ctx.clone();
    ctx.org_id = pending.org_id;
    let settings = crate::directory::Orgs::new(inner)
        .settings(pending.org_id)
        .await?;
    let end = crate::signin::Ending {
        amr,
        aal: 2,
        org_id: pending.org_id,
        settings: &settings,
        code_request: pending.code_request.as_ref(),
        method,
        deferred: &pending.deferred,
    };
    finish(inner, user, end, &ctx).await
}

/// The sign-in an MFA token carries, and the key it is stored under. `enrollment` says
/// which kind of token the caller takes: an enrolment-only token proves nothing, and an
/// MFA step's token enrols nothing.
async fn pending(
    inner: &Inner,
    mfa_token: &MfaToken,
    enrollment: bool,
) -> Result<(ChallengeKey, crate::model::ChallengeRecord, PendingMfa), Error> {
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
    if pending.enrollment != enrollment {
        return Err(Error::InvalidToken);
    }
    Ok((key, record, pending))
}

/// The methods a pending step offers (records from before the list was kept offer the
/// app-based ones).
fn offered(pending: &PendingMfa) -> Vec<MfaMethod> {
    match pending.methods.is_empty() {
        true => vec![MfaMethod::Totp, MfaMethod::BackupCode],
        false => pending.methods.clone(),
    }
}

/// The subject a user's failure budget is kept under: their email address (or phone,
/// or id), the same subject the password and passwordless flows count under, so wrong
/// passwords, codes and second factors all fill one per-account budget, and any
/// successful sign-in empties it.
async fn account_subject(inner: &Inner, user: UserId) -> Result<String, Error> {
    let account = inner.users.get_user(user).await?;
    Ok(account.map_or_else(|| user.to_string(), |u| crate::flows::account_subject(&u)))
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
