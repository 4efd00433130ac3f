//! Changing a user's email address (checklist ACC-01; OWASP Authentication Cheat Sheet,
//! "Changing A User's Registered Email Address").
//!
//! Whoever asks — the user from a session, or an administrator — the change is pending
//! until the new address proves it receives mail: [`request`] sends a code there and
//! changes nothing; [`confirm`] with that code moves the address, marks it verified,
//! moves the security stamp (every token, ceremony and pending request made for the
//! account dies) and ends every other session. The old address is then told, with a link
//! carrying a revert token (stored only as its keyed hash) that for
//! `ttl.email_change_revert` puts the old address back and ends every session: a stolen
//! session that moved the account to its own mailbox loses it again from the owner's
//! mailbox.
//!
//! The code is a request like a sign-in code's (see [`flows`](super)): single use under
//! concurrency, expiring with `ttl.one_time_code`, at most `codes.max_attempts` wrong
//! codes, hashed together with the request, the new address and the purpose, and bound to
//! the user who asked. A new address another account already holds answers the request
//! exactly as a free one (checklist ENUM-03): the code is never sent, and confirming fails
//! as a wrong code does.

use serde::{Deserialize, Serialize};

use super::codes::{Codes, NewRequest, code_matches, normalize};
use super::{
    Channel, Claimed, Judgement, Purpose, RequestState, Sent, claim, count_attempt, load,
    log_failure, record_failure, spend_send_budget,
};
use crate::crypto::{EmailRevertToken, OneTimeCode, SecretPurpose, random_token};
use crate::delivery::{Message, MessageKind, Recipient, SecretLink};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, Email, RequestId, SessionId, User,
    UserId,
};
use crate::{Error, RequestContext, StoreError};

/// The way back from a confirmed change, stored under the revert token's hash.
#[derive(Serialize, Deserialize)]
struct Revert {
    user_id: UserId,
    /// The address to put back.
    email: String,
    /// When the change was confirmed: factors added since go with the revert, and a
    /// revert of an earlier change voids this one.
    changed_at: crate::Timestamp,
    /// A keyed hash of the password's hash at the change, if any: a password set since
    /// (a reset through the new address) goes with the revert.
    password: Option<String>,
}

/// Where the earliest change a revert undid is remembered, per user: the revert links of
/// later changes (a chain an attacker made, A to B to C) are void from then on.
fn reverted_key(user: UserId) -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::EmailChangeRevert, format!("reverted:{user}"))
}

/// A keyed fingerprint of a password hash, to tell later whether it changed.
fn password_mark(inner: &Inner, user: &User) -> Option<String> {
    user.password_hash.as_ref().map(|phc| {
        inner
            .hasher
            .hash(SecretPurpose::EmailChangeRevert, phc.as_str().as_bytes())
            .to_hex()
    })
}

/// The method named in the login log for failed confirmations and reverts.
const METHOD: &str = "email_change";

/// Sends a code to `new_email` that, given back to [`confirm`], makes it `user`'s address.
/// Nothing changes yet.
pub(crate) async fn request(
    inner: &Inner,
    user: UserId,
    new_email: &str,
    ctx: &RequestContext,
) -> Result<Sent, Error> {
    let email = Email::parse(new_email)?;
    let account = inner
        .users
        .get_user(user)
        .await?
        .ok_or(Error::NotFound { what: "user" })?;
    if account.email.as_ref() == Some(&email) {
        return Err(Error::invalid("email", "is already the account's address"));
    }
    spend_send_budget(inner, Channel::EmailCode, email.as_str(), false, ctx).await?;
    // Read for every request: a taken address must not answer faster or otherwise.
    let holder = inner.users.get_user_by_email(&email).await?;
    let deliverable = holder.is_none() && !account.blocked;
    // A password change, a block, another confirmed change… kills the request (stamp).
    let request = NewRequest {
        deliverable,
        ..NewRequest::new(Purpose::EmailChange, Some(user), Some(&account))
    };
    let sent = Codes::new(inner)
        .email()
        .start(Recipient::Email(email), request, ctx)
        .await?;
    log(inner, user, ctx, "email_change_requested").await?;
    Ok(sent)
}

/// Applies a pending change with its code: see the [module docs](self). Every session of
/// the user but `keep` ends. Returns the changed account.
pub(crate) async fn confirm(
    inner: &Inner,
    user: UserId,
    request_id: RequestId,
    code: &OneTimeCode,
    keep: Option<SessionId>,
    ctx: &RequestContext,
) -> Result<User, Error> {
    let code = normalize(code)?;
    if load(inner, request_id).await?.is_none() {
        // Guessing at request ids costs the client like a wrong code.
        record_failure(inner, None, Some(user), ctx, METHOD).await?;
        return Err(Error::InvalidCredentials);
    }
    // Counted against the account (by id: the new address may be another account's, whose
    // sign-in budget this must not spend) before the code is judged (CON-02).
    let attempt = count_attempt(inner, &user.to_string(), Some(user), ctx).await?;
    let judge = |state: &RequestState| {
        let ours = state.channel == Channel::EmailCode
            && state.purpose == Purpose::EmailChange
            && state.user_id == Some(user);
        if !ours {
            return Judgement::Refuse(Error::InvalidCredentials);
        }
        let presented = code_matches(
            &inner.hasher,
            state.channel,
            request_id,
            &state.identifier,
            state.purpose,
            &code,
            &state.secret,
        );
        // An address another account holds was never sent its code: nothing confirms it,
        // and trying costs an attempt, as a wrong code does.
        match presented && state.deliverable {
            true => Judgement::Accept,
            false => Judgement::Wrong,
        }
    };
    let state = match claim(inner, request_id, || Error::InvalidCredentials, judge).await? {
        Claimed::Won(loaded) => {
            super::remove(inner, request_id).await?;
            loaded.state
        }
        Claimed::Wrong(_) => {
            log_failure(inner, &attempt, Some(user), ctx, METHOD).await?;
            return Err(Error::InvalidCredentials);
        }
    };
    let new_email = Email::parse(&state.identifier)?;
    let (before, after) = apply(inner, user, state.stamp, new_email).await?;
    let now = inner.clock.now();
    for session in inner.sessions.list_user_sessions(user, now).await? {
        if Some(session.id) != keep {
            inner.sessions.revoke_session(session.id, now).await?;
        }
    }
    log(inner, user, ctx, "email_change_confirmed").await?;
    if let Some(old) = before.email.clone() {
        offer_revert(inner, &after, old, ctx).await?;
    }
    Ok(after)
}

/// Moves the account to the new address, verified, with a new security stamp, if the
/// account still has the stamp the request was made under. `(before, after)`.
async fn apply(
    inner: &Inner,
    user: UserId,
    stamp: Option<u64>,
    new_email: Email,
) -> Result<(User, User), Error> {
    for _ in 0..super::MAX_RETRIES {
        let before = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if before.blocked || stamp.is_some_and(|s| s != before.security_stamp) {
            tracing::info!(%user, "an email change from before a credential change was refused");
            return Err(Error::InvalidCredentials);
        }
        let mut after = before.clone();
        after.email = Some(new_email.clone());
        after.email_verified = true;
        after.rotate_security_stamp();
        after.updated_at = inner.clock.now();
        match inner.users.update_user(&after).await {
            Err(StoreError::Stale) => continue,
            // Taken by another account since the request: as a wrong code.
            Err(StoreError::Conflict { .. }) => return Err(Error::InvalidCredentials),
            Err(err) => return Err(err.into()),
            Ok(revision) => after.revision = revision,
        }
        return Ok((before, after));
    }
    Err(Error::Conflict { what: "user" })
}

/// Stores a revert token for `old` and mails it there. The change stands even when the
/// notice cannot be sent (it is logged).
async fn offer_revert(
    inner: &Inner,
    changed: &User,
    old: Email,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let user = changed.id;
    let token = EmailRevertToken::new(random_token()?.as_str());
    let record = Revert {
        user_id: user,
        email: old.as_str().to_owned(),
        changed_at: changed.updated_at,
        password: password_mark(inner, changed),
    };
    let value = serde_json::to_vec(&record)
        .map_err(|_| Error::Store(StoreError::Corrupt { what: "revert" }))?;
    let ttl = inner.config.config.ttl.email_change_revert;
    let now = inner.clock.now();
    if !inner
        .challenges
        .insert(&revert_key(inner, &token), &value, now + ttl, now)
        .await?
    {
        return Err(Error::Conflict { what: "revert" });
    }
    if inner.mailer.is_none() {
        tracing::warn!(%user, "no mailer: the old address is not told of its email change");
        return Ok(());
    }
    let mut url = inner.config.revert_base.clone();
    url.query_pairs_mut().append_pair("token", token.secret());
    let message = Message {
        kind: MessageKind::EmailChanged,
        to: Recipient::Email(old),
        link: Some(SecretLink::new(url.into())),
        code: None,
        expires_in: ttl,
        locale: ctx.locale.clone(),
        org_id: ctx.org_id,
        request_id: RequestId::generate(),
        activity: None,
    };
    if let Err(err) = super::send_message(inner, message).await {
        tracing::warn!(%user, error = %err, "could not send an email-change notice");
    }
    Ok(())
}

/// Puts back the address a revert token was sent to: verified, with a new security stamp,
/// every session ended. See [`Users::revert_email_change`](crate::directory::Users::revert_email_change).
pub(crate) async fn revert(
    inner: &Inner,
    token: &EmailRevertToken,
    ctx: &RequestContext,
) -> Result<UserId, Error> {
    if token.secret().len() > 128 {
        return Err(Error::invalid("token", "is too long"));
    }
    super::check_client_failures(inner, ctx).await?;
    let now = inner.clock.now();
    let found = inner
        .secret_record(
            ChallengeKind::EmailChangeRevert,
            SecretPurpose::EmailChangeRevert,
            token.secret().as_bytes(),
            false,
        )
        .await?;
    let Some((key, record)) = found else {
        record_failure(inner, None, None, ctx, METHOD).await?;
        return Err(Error::InvalidCredentials);
    };
    let revert: Revert = serde_json::from_slice(&record.value)
        .map_err(|_| Error::Store(StoreError::Corrupt { what: "revert" }))?;
    let email = Email::parse(&revert.email)?;
    let user = revert.user_id;
    // Refused, and the token kept, while another account holds the address.
    if taken_by_another(inner, &email, user).await? {
        return Err(Error::Conflict { what: "email" });
    }
    if inner.challenges.take(&key, now).await?.is_none() {
        // Used by a racing revert.
        return Err(Error::InvalidCredentials);
    }
    // An earlier change was undone already: this link came from a change after it.
    if let Some(earliest) = reverted_at(inner, user).await?
        && earliest <= revert.changed_at
    {
        tracing::info!(%user, "a revert link of a change after an undone one was refused");
        return Err(Error::InvalidCredentials);
    }
    remember_reverted(inner, user, revert.changed_at).await?;
    for _ in 0..super::MAX_RETRIES {
        let before = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let mut after = before.clone();
        after.email = Some(email.clone());
        after.email_verified = true;
        // A password set since the change (a reset through the address it moved to) is
        // whoever moved it's: the owner resets theirs through the address they got back.
        if password_mark(inner, &before) != revert.password {
            after.password_hash = None;
        }
        after.rotate_security_stamp();
        after.updated_at = inner.clock.now();
        match inner.users.update_user(&after).await {
            Err(StoreError::Stale) => continue,
            Err(StoreError::Conflict { .. }) => return Err(Error::Conflict { what: "email" }),
            Err(err) => return Err(err.into()),
            Ok(_) => {}
        }
        remove_factors_since(inner, user, revert.changed_at).await?;
        // Every session: whoever moved the address may hold one.
        inner
            .sessions
            .revoke_user_sessions(user, inner.clock.now())
            .await?;
        crate::directory::users::notify_replaced(inner, &before, &after, ctx).await;
        log(inner, user, ctx, "email_change_reverted").await?;
        return Ok(user);
    }
    Err(Error::Conflict { what: "user" })
}

/// The confirmation time of the earliest change a revert undid, while remembered.
async fn reverted_at(inner: &Inner, user: UserId) -> Result<Option<crate::Timestamp>, Error> {
    let now = inner.clock.now();
    let Some(record) = inner.challenges.get(&reverted_key(user), now).await? else {
        return Ok(None);
    };
    let millis =
        millis_in(&record.value).ok_or(Error::Store(StoreError::Corrupt { what: "revert" }))?;
    Ok(Some(crate::Timestamp::from_unix_millis(millis)))
}

/// The Unix milliseconds a remembered revert holds.
fn millis_in(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Remembers `changed_at` as undone (keeping the earliest), for as long as a revert link
/// of a later change could be used.
async fn remember_reverted(
    inner: &Inner,
    user: UserId,
    changed_at: crate::Timestamp,
) -> Result<(), Error> {
    let ttl = inner.config.config.ttl.email_change_revert;
    let value = changed_at.unix_millis().to_string();
    // The earliest undone change is what voids the links of the later ones.
    let earlier =
        |kept: &[u8]| millis_in(kept).is_some_and(|kept| kept <= changed_at.unix_millis());
    super::put_record(inner, &reverted_key(user), value.as_bytes(), ttl, earlier).await
}

/// Takes off the passkeys and authenticator apps added since `since`: whoever moved the
/// address may have added them, and the owner adds their own again.
async fn remove_factors_since(
    inner: &Inner,
    user: UserId,
    since: crate::Timestamp,
) -> Result<(), Error> {
    let users = &inner.users;
    for passkey in users.list_passkeys(user).await? {
        if passkey.created_at >= since {
            users.delete_passkey(user, &passkey.id).await?;
        }
    }
    let mut removed_totp = false;
    for factor in users.list_totp_factors(user).await? {
        if factor.created_at >= since {
            removed_totp |= users.delete_totp_factor(user, factor.id).await?;
        }
    }
    if removed_totp {
        users.replace_backup_codes(user, &[]).await?;
    }
    Ok(())
}

async fn taken_by_another(inner: &Inner, email: &Email, user: UserId) -> Result<bool, Error> {
    let holder = inner.users.get_user_by_email(email).await?;
    Ok(holder.is_some_and(|h| h.id != user))
}

fn revert_key(inner: &Inner, token: &EmailRevertToken) -> ChallengeKey {
    let hash = inner
        .hasher
        .hash(SecretPurpose::EmailChangeRevert, token.secret().as_bytes());
    ChallengeKey::hashed(ChallengeKind::EmailChangeRevert, &hash)
}

async fn log(inner: &Inner, user: UserId, ctx: &RequestContext, reason: &str) -> Result<(), Error> {
    let event = AuthEvent::new(AuthEventKind::UserUpdated, ctx, inner.clock.now())
        .with_user(user)
        .with_reason(reason);
    Ok(inner.audit_log.append(&event).await?)
}
