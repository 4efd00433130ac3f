//! Which account a proven address signs in to, or signs up.
//!
//! A verified sign-in code or link proves its address. On an account where the address
//! was never proven, that decides who the account belongs to: see the rules on
//! [`account_for`] — in short, an account holding nothing proven (at most a password)
//! becomes the prover's alone, with its password, backup codes and sessions gone; an
//! account holding something proven (another verified identifier, a passkey, an active
//! TOTP factor) keeps it, loses the unproven address, and the prover signs up with that
//! address as a new account.

use crate::delivery::Recipient;
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, Membership, OrgId, User, UserId};
use crate::{Error, RequestContext, StoreError, Timestamp};

use crate::flows::*;

/// The account an address belongs to, before anything is sent: `(user, deliverable)`.
/// Blocked accounts, and unknown addresses when sign-up is off, get no message.
pub(crate) async fn account_at_send(
    inner: &Inner,
    recipient: &Recipient,
) -> Result<(Option<User>, bool), Error> {
    let user = find_user(inner, recipient).await?;
    let deliverable = match &user {
        Some(user) => !user.blocked,
        None => inner.config.config.passwordless.sign_up,
    };
    Ok((user, deliverable))
}

pub(crate) async fn find_user(inner: &Inner, recipient: &Recipient) -> Result<Option<User>, Error> {
    Ok(match recipient {
        Recipient::Email(email) => inner.users.get_user_by_email(email).await?,
        Recipient::Phone(phone) => inner.users.get_user_by_phone(phone).await?,
    })
}

/// The account a verified address signs in to: the one that has it (now marked verified),
/// or a new one when sign-up is on. `None`: no account and no sign-up.
///
/// An account whose address was never proven may have been set up by someone else (a
/// pre-account takeover: register the victim's address with your own password, wait), or
/// the address may be a typo of its owner's. Proving the address decides, by what else the
/// account holds:
///
/// - Nothing but, at most, a password (and unconfirmed factors): the account becomes the
///   prover's alone. The password, backup codes, pending factors and the account's other
///   unproven identifier are removed, and its sessions end.
/// - Something proven or strong — another verified identifier, a passkey, an active TOTP
///   factor: that belongs to whoever set it up, who keeps the account; the unproven address
///   is taken off it, and the prover signs up with it as a new account (if sign-up is on).
///
/// A blocked account is refused ([`Error::InvalidCredentials`]) before anything changes.
pub(crate) async fn account_for(
    inner: &Inner,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<Option<UserId>, Error> {
    for _ in 0..MAX_RETRIES {
        let now = inner.clock.now();
        match find_user(inner, recipient).await? {
            Some(user) if user.blocked => return Err(Error::InvalidCredentials),
            Some(user) => match mark_verified(inner, user, recipient, Proof::SignIn, ctx).await {
                // Changed under us, or the address was just taken off an account: look again.
                Err(Error::Store(StoreError::Stale)) | Ok(None) => continue,
                Ok(Some(id)) => return Ok(Some(id)),
                Err(err) => return Err(err),
            },
            None if inner.config.config.passwordless.sign_up => {
                match sign_up(inner, recipient, ctx, now).await? {
                    Some(id) => return Ok(Some(id)),
                    // Someone signed up with the address meanwhile: sign in to theirs.
                    None => continue,
                }
            }
            None => return Ok(None),
        }
    }
    Err(Error::Conflict { what: "user" })
}

/// Creates the account of a proven address. `None`: the address was taken meanwhile.
pub(crate) async fn sign_up(
    inner: &Inner,
    recipient: &Recipient,
    ctx: &RequestContext,
    now: Timestamp,
) -> Result<Option<UserId>, Error> {
    let mut user = User::new(UserId::generate(), now);
    match recipient {
        Recipient::Email(email) => {
            user.email = Some(email.clone());
            user.email_verified = true;
        }
        Recipient::Phone(phone) => {
            user.phone = Some(phone.clone());
            user.phone_verified = true;
        }
    }
    let method = match recipient {
        Recipient::Email(_) => "email",
        Recipient::Phone(_) => "sms",
    };
    if !create_account(inner, &user, method, ctx).await? {
        return Ok(None);
    }
    tracing::debug!(user_id = %user.id, "signed up by a verified address");
    Ok(Some(user.id))
}

/// Stores a new account, joins it to the request's organization (no roles) and logs the
/// sign-up, all or nothing: a failure after the insert deletes the account again, since
/// half an account would be refused in its organization forever. `false`: the email or
/// phone is taken.
pub(crate) async fn create_account(
    inner: &Inner,
    user: &User,
    method: &str,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    match inner.users.create_user(user).await {
        Err(StoreError::Conflict { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
        Ok(()) => {}
    }
    let now = user.created_at;
    let event = AuthEvent::new(AuthEventKind::SignUp, ctx, now)
        .with_user(user.id)
        .with_method(method);
    let joined = async {
        join_org(inner, user.id, ctx.org_id, now).await?;
        inner.audit_log.append(&event).await?;
        Ok::<(), Error>(())
    };
    if let Err(err) = joined.await {
        if let Err(undo) = inner.users.delete_user(user.id).await {
            tracing::warn!(user_id = %user.id, error = %undo, "could not undo a failed sign-up");
        }
        return Err(err);
    }
    Ok(true)
}

/// A new account made inside an organization joins it, with no roles.
pub(crate) async fn join_org(
    inner: &Inner,
    user: UserId,
    org: Option<OrgId>,
    now: Timestamp,
) -> Result<(), Error> {
    if let Some(org_id) = org {
        let membership = Membership {
            user_id: user,
            org_id,
            role_ids: Vec::new(),
            created_at: now,
            self_joined: true,
        };
        inner.orgs.put_membership(&membership).await?;
    }
    Ok(())
}

/// Who is proving an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Someone signing in with it: may claim an account nobody proved (see [`account_for`]).
    SignIn,
    /// The signed-in owner of the account confirming it: nothing else changes.
    Owner,
    /// A password reset: claims an account nobody proved, like a sign-in, but never takes
    /// the address off an account that holds something proven (the reset is refused
    /// instead: whoever holds the address must not lock that account's owner out).
    Reset,
}

/// Records that `recipient` (which must still be the user's) was proven. Returns the id,
/// or `None` when the address was taken off the account instead (see [`account_for`]).
pub(crate) async fn mark_verified(
    inner: &Inner,
    mut user: User,
    recipient: &Recipient,
    proof: Proof,
    ctx: &RequestContext,
) -> Result<Option<UserId>, Error> {
    let now = inner.clock.now();
    let (already, other_proven) = match recipient {
        Recipient::Email(email) if user.email.as_ref() == Some(email) => (
            user.email_verified,
            user.phone.is_some() && user.phone_verified,
        ),
        Recipient::Phone(phone) if user.phone.as_ref() == Some(phone) => (
            user.phone_verified,
            user.email.is_some() && user.email_verified,
        ),
        // The address moved to another account after the code was sent.
        _ => return Err(Error::InvalidCredentials),
    };
    if already {
        return Ok(Some(user.id));
    }
    if proof != Proof::Owner {
        let strong = other_proven || has_strong_factor(inner, user.id).await?;
        match (strong, proof) {
            (true, Proof::Reset) => return Err(Error::InvalidCredentials),
            (true, _) => {
                detach(inner, user, recipient, ctx).await?;
                return Ok(None);
            }
            (false, _) => claim_account(inner, &mut user, recipient, ctx).await?,
        }
    }
    match recipient {
        Recipient::Email(_) => user.email_verified = true,
        Recipient::Phone(_) => user.phone_verified = true,
    }
    // A first proof decides whose the account is: whatever was under way for it before
    // (MFA and enrolment tokens, ceremonies, codes) stops here.
    user.rotate_security_stamp();
    user.updated_at = now;
    inner.users.update_user(&user).await.map_err(Error::Store)?;
    Ok(Some(user.id))
}

/// A passkey or an active TOTP factor: a credential whose owner proved something.
pub(crate) async fn has_strong_factor(inner: &Inner, user: UserId) -> Result<bool, Error> {
    if !inner.users.list_passkeys(user).await?.is_empty() {
        return Ok(true);
    }
    let factors = inner.users.list_totp_factors(user).await?;
    Ok(factors
        .iter()
        .any(|f| f.status == crate::model::FactorStatus::Active))
}

/// Takes an unproven address off an account that someone else proved, so its prover can
/// have it.
pub(crate) async fn detach(
    inner: &Inner,
    mut user: User,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    match recipient {
        Recipient::Email(_) => user.email = None,
        Recipient::Phone(_) => user.phone = None,
    }
    user.rotate_security_stamp();
    user.updated_at = now;
    inner.users.update_user(&user).await.map_err(Error::Store)?;
    let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, now)
        .with_user(user.id)
        .with_reason("unproven_address_proven_by_another");
    inner.audit_log.append(&event).await?;
    tracing::info!(user_id = %user.id, "an unproven address was taken off an account by its prover");
    Ok(())
}

/// Makes an account nobody proved its prover's alone. The password and the other unproven
/// identifier go first, in one compare-and-swap that also moves the security stamp, so
/// nothing signs in with them from then on and every token, ceremony and pending sign-in
/// made for the account dies; then factors set up meanwhile, backup codes, sessions, and
/// the memberships whoever set the account up chose (the organization the prover signs in
/// to, if any, keeps them as a new sign-up there would). The caller marks the address
/// verified last, so a failure part-way leaves it all to the next attempt.
pub(crate) async fn claim_account(
    inner: &Inner,
    user: &mut User,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    let id = user.id;
    let had_password = user.password_hash.take().is_some();
    match recipient {
        Recipient::Email(_) if !user.phone_verified => user.phone = None,
        Recipient::Phone(_) if !user.email_verified => user.email = None,
        _ => {}
    }
    user.rotate_security_stamp();
    user.updated_at = now;
    user.revision = inner.users.update_user(user).await.map_err(Error::Store)?;
    let users = &inner.users;
    let mut removed = 0usize;
    for passkey in users.list_passkeys(id).await? {
        removed += usize::from(users.delete_passkey(id, &passkey.id).await?);
    }
    for factor in users.list_totp_factors(id).await? {
        removed += usize::from(users.delete_totp_factor(id, factor.id).await?);
    }
    users.replace_backup_codes(id, &[]).await?;
    let revoked = inner.sessions.revoke_user_sessions(id, now).await?;
    for membership in inner.orgs.list_memberships(id).await? {
        if membership.self_joined && Some(membership.org_id) != ctx.org_id {
            removed += usize::from(inner.orgs.delete_membership(id, membership.org_id).await?);
        }
    }
    if !users.list_passkeys(id).await?.is_empty() || !users.list_totp_factors(id).await?.is_empty()
    {
        // A factor arrived while we cleaned: start over from a fresh read.
        return Err(Error::Store(StoreError::Stale));
    }
    if had_password || removed > 0 || revoked > 0 {
        let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, now)
            .with_user(id)
            .with_reason("unproven_account_claimed");
        inner.audit_log.append(&event).await?;
        tracing::info!(
            user_id = %id,
            had_password,
            removed,
            revoked,
            "an unproven account was claimed by its address's prover"
        );
    }
    Ok(())
}
