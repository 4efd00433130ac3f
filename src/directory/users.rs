//! Users, as an administrator manages them (`auth.users()`).
//!
//! These calls trust their caller: they are the management API's, to be reached only with
//! an API credential or a user token holding the matching permission. A person's own
//! ceremonies (sign-up, proving an address) are in [`flows`](crate::flows).
//!
//! # Changing an email address
//!
//! No call here puts a new address on an account at once, whoever makes it (checklist
//! ACC-01): [`Users::update`] refuses a new address, and
//! [`request_email_change`](Users::request_email_change) sends a code to it instead, which
//! [`confirm_email_change`](Users::confirm_email_change) redeems. The old address then
//! receives a link that [`revert_email_change`](Users::revert_email_change) honours for
//! `ttl.email_change_revert` (7 days by default): it puts the old address back and ends
//! every session. Only creating a user ([`NewUser`]) sets an address directly.

use crate::crypto::{EmailRevertToken, OneTimeCode};
use crate::delivery::{Message, MessageKind, Recipient};
use crate::engine::Inner;
use crate::flows::{MAX_RETRIES, send_message};
use crate::model::{
    AuthEvent, AuthEventKind, Email, FactorStatus, Membership, OrgId, Page, PageRequest, Phone,
    RequestId, SessionId, User, UserId, checked_label,
};
use crate::store::UserQuery;
use crate::{Error, RequestContext, Sent, StoreError, Timestamp};

/// What a new user starts with.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewUser {
    /// Email address (normalized; unique).
    pub email: Option<String>,
    /// Phone number, E.164 (unique).
    pub phone: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Application data, returned as stored.
    pub metadata: serde_json::Value,
    /// Set when the administrator knows the address is the person's.
    pub email_verified: bool,
    /// Set when the administrator knows the number is the person's.
    pub phone_verified: bool,
    /// Create the account blocked.
    pub blocked: bool,
}

impl NewUser {
    /// A user with this email address.
    pub fn with_email(email: impl Into<String>) -> Self {
        NewUser {
            email: Some(email.into()),
            ..Self::default()
        }
    }

    /// A user with this phone number.
    pub fn with_phone(phone: impl Into<String>) -> Self {
        NewUser {
            phone: Some(phone.into()),
            ..Self::default()
        }
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UserUpdate {
    /// `Some(None)` removes the address (the old one is told it was taken off);
    /// `Some(Some(address))` may only repeat the current address: a new one is refused
    /// ([`Error::InvalidInput`]), since it must be confirmed by its owner first — use
    /// [`Users::request_email_change`].
    pub email: Option<Option<String>>,
    /// A new number (`Some(None)` removes it), as for `email`.
    pub phone: Option<Option<String>>,
    /// A new display name (`Some(None)` removes it).
    pub name: Option<Option<String>>,
    /// New application data (replaces the old).
    pub metadata: Option<serde_json::Value>,
    /// Sets whether the account's current address is verified (the administrator vouches
    /// for it, or takes the proof back).
    pub email_verified: Option<bool>,
    /// Sets whether the number is verified.
    pub phone_verified: Option<bool>,
}

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserStatus {
    /// Whether the person proved the address.
    pub email_verified: bool,
    /// Whether the person proved the number.
    pub phone_verified: bool,
    /// Blocked: cannot sign in, has no live session.
    pub blocked: bool,
    /// Locked by brute-force protection until then.
    pub locked_until: Option<Timestamp>,
    /// Whether the account has a password.
    pub password: bool,
    /// Whether it has an active TOTP authenticator.
    pub totp: bool,
    /// How many passkeys it has.
    pub passkeys: usize,
    /// How many unused backup codes it has.
    pub backup_codes: usize,
}

/// Users (`auth.users()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Users<'a> {
    inner: &'a Inner,
}

impl<'a> Users<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Users { inner }
    }

    /// Creates a user with an email address, a phone number or both. Joins the
    /// organization `ctx` names, if any.
    ///
    /// Errors: [`Error::InvalidInput`] for a bad address, number or name, or neither
    /// given; [`Error::Conflict`] (`"email"` / `"phone"`) when one is taken.
    pub async fn create(&self, new: NewUser, ctx: &RequestContext) -> Result<User, Error> {
        let inner = self.inner;
        let mut user = User::new(UserId::generate(), inner.clock.now());
        user.email = new.email.as_deref().map(Email::parse).transpose()?;
        user.phone = new.phone.as_deref().map(Phone::parse).transpose()?;
        if user.email.is_none() && user.phone.is_none() {
            return Err(Error::invalid(
                "email",
                "an email address or a phone number is required",
            ));
        }
        user.email_verified = new.email_verified && user.email.is_some();
        user.phone_verified = new.phone_verified && user.phone.is_some();
        user.name = new
            .name
            .as_deref()
            .map(|n| checked_label(n, "name", 200))
            .transpose()?;
        user.metadata = checked_metadata(new.metadata)?;
        user.blocked = new.blocked;
        inner.users.create_user(&user).await?;
        if let Some(org) = ctx.org_id {
            let membership = Membership {
                user_id: user.id,
                org_id: org,
                role_ids: Vec::new(),
                created_at: user.created_at,
                self_joined: false,
            };
            if let Err(err) = inner.orgs.put_membership(&membership).await {
                inner.users.delete_user(user.id).await?;
                return Err(err.into());
            }
        }
        admin_event(inner, AuthEventKind::SignUp, user.id, ctx, "admin_created").await?;
        Ok(user)
    }

    /// The user with this id. [`Error::NotFound`] (`"user"`) if none.
    pub async fn get(&self, id: UserId) -> Result<User, Error> {
        self.inner
            .users
            .get_user(id)
            .await?
            .ok_or(Error::NotFound { what: "user" })
    }

    /// The user with this email address (normalized first).
    pub async fn get_by_email(&self, email: &str) -> Result<User, Error> {
        let email = Email::parse(email)?;
        self.inner
            .users
            .get_user_by_email(&email)
            .await?
            .ok_or(Error::NotFound { what: "user" })
    }

    /// The user with this phone number (normalized first).
    pub async fn get_by_phone(&self, phone: &str) -> Result<User, Error> {
        let phone = Phone::parse(phone)?;
        self.inner
            .users
            .get_user_by_phone(&phone)
            .await?
            .ok_or(Error::NotFound { what: "user" })
    }

    /// Users in creation order, filtered, a page at a time. The cursor stays valid while
    /// users come and go.
    pub async fn list(&self, query: &UserQuery, page: &PageRequest) -> Result<Page<User>, Error> {
        Ok(self.inner.users.list_users(query, page).await?)
    }

    /// The members of `org` that pass `query`, in creation order, a page of members at a
    /// time: a page can hold fewer users than asked for when some fail the filters, so go
    /// on while there is a next cursor.
    pub async fn list_in_org(
        &self,
        org: OrgId,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, Error> {
        let members = self.inner.orgs.list_members(org, page).await?;
        let mut items = Vec::with_capacity(members.items.len());
        for member in &members.items {
            // Deleted meanwhile: not listed.
            if let Some(user) = self.inner.users.get_user(member.user_id).await?
                && query.matches(&user)
            {
                items.push(user);
            }
        }
        Ok(Page {
            items,
            next_cursor: members.next_cursor,
        })
    }

    /// Changes a user. A removed address, or a changed or removed number, receives a
    /// notice that it no longer signs in; a new number starts unverified (unless the
    /// update says it is verified). A new email address is not set here: see
    /// [`request_email_change`](Self::request_email_change) and the
    /// [module docs](self). Retried on concurrent changes; the update applies whole or not
    /// at all.
    ///
    /// Errors: [`Error::NotFound`]; [`Error::InvalidInput`] for a bad value, a new email
    /// address, or an update that would leave neither address nor number;
    /// [`Error::Conflict`] when the new number belongs to another user.
    pub async fn update(
        &self,
        id: UserId,
        update: &UserUpdate,
        ctx: &RequestContext,
    ) -> Result<User, Error> {
        let inner = self.inner;
        let email = parse_change(update.email.as_ref(), Email::parse)?;
        let phone = parse_change(update.phone.as_ref(), Phone::parse)?;
        let name = match &update.name {
            Some(Some(name)) => Some(Some(checked_label(name, "name", 200)?)),
            Some(None) => Some(None),
            None => None,
        };
        for _ in 0..MAX_RETRIES {
            let before = self.get(id).await?;
            let mut user = before.clone();
            match &email {
                Some(Some(email)) if user.email.as_ref() != Some(email) => {
                    return Err(Error::invalid(
                        "email",
                        "a new address is set only once its owner confirms it: \
                         request an email change",
                    ));
                }
                Some(None) => {
                    user.email = None;
                    user.email_verified = false;
                }
                _ => {}
            }
            if let Some(phone) = &phone
                && user.phone != *phone
            {
                user.phone = phone.clone();
                user.phone_verified = false;
            }
            if user.email.is_none() && user.phone.is_none() {
                return Err(Error::invalid(
                    "email",
                    "a user keeps an email address or a phone number",
                ));
            }
            if let Some(name) = &name {
                user.name = name.clone();
            }
            if let Some(metadata) = &update.metadata {
                user.metadata = checked_metadata(metadata.clone())?;
            }
            if let Some(verified) = update.email_verified {
                user.email_verified = verified && user.email.is_some();
            }
            if let Some(verified) = update.phone_verified {
                user.phone_verified = verified && user.phone.is_some();
            }
            if user.email != before.email || user.phone != before.phone {
                // Whatever was under way for the old address or number stops here.
                user.rotate_security_stamp();
            }
            user.updated_at = inner.clock.now();
            match inner.users.update_user(&user).await {
                Err(StoreError::Stale) => continue,
                Err(err) => return Err(err.into()),
                Ok(revision) => user.revision = revision,
            }
            notify_replaced(inner, &before, &user, ctx).await;
            admin_event(inner, AuthEventKind::UserUpdated, id, ctx, "admin_updated").await?;
            return Ok(user);
        }
        Err(Error::Conflict { what: "revision" })
    }

    /// Starts changing `user`'s email address to `new_email`, for the user (from their
    /// session) or for an administrator: sends a code to the new address and changes
    /// nothing yet. [`confirm_email_change`](Self::confirm_email_change) applies the change
    /// with that code, within `ttl.one_time_code`, for this user and this address only.
    ///
    /// Answers the same whether or not another account has the address (checklist
    /// ENUM-03): then the code is never sent and the change cannot be confirmed. A blocked
    /// account's code is not sent either. The send budgets of sign-in codes apply (per
    /// client, per address, the cooldown).
    ///
    /// Errors: [`Error::NotFound`] (`"user"`); [`Error::InvalidInput`] for a malformed
    /// address or the account's own; [`Error::RateLimited`]; [`Error::Config`] without a
    /// mailer.
    pub async fn request_email_change(
        &self,
        user: UserId,
        new_email: &str,
        ctx: &RequestContext,
    ) -> Result<Sent, Error> {
        crate::flows::email_change::request(self.inner, user, new_email, ctx).await
    }

    /// Applies a pending email change with the code sent to the new address: the address
    /// becomes the account's, verified; the security stamp moves (every token, ceremony,
    /// code and MFA step made for the account dies), and every session of the user but
    /// `keep` (the caller's own, when the user confirms from a session) ends. The old
    /// address receives a notice with a link that undoes the change
    /// ([`revert_email_change`](Self::revert_email_change)) for `ttl.email_change_revert`.
    ///
    /// Every failure — a wrong code, an unknown, used or expired request, a request of
    /// another user or purpose, a new address another account holds, a change of the
    /// account's credentials since the request, a blocked account — is
    /// [`Error::InvalidCredentials`]; [`Error::RateLimited`] once the account or the client
    /// failed too often. A request allows `codes.max_attempts` wrong codes.
    pub async fn confirm_email_change(
        &self,
        user: UserId,
        request_id: RequestId,
        code: &OneTimeCode,
        keep: Option<SessionId>,
        ctx: &RequestContext,
    ) -> Result<User, Error> {
        crate::flows::email_change::confirm(self.inner, user, request_id, code, keep, ctx).await
    }

    /// Undoes a confirmed email change with the token mailed to the old address (no
    /// sign-in needed: the old mailbox is the proof). The old address comes back, verified;
    /// the security stamp moves and every session of the account ends, so whoever made
    /// the change is signed out; the address taken off is told. The token works once.
    ///
    /// Errors: [`Error::InvalidCredentials`] for an unknown, used or expired token (or a
    /// deleted account); [`Error::Conflict`] (`"email"`) while another account holds the
    /// old address (the token stays usable until it expires); [`Error::RateLimited`] when
    /// the client failed too often.
    pub async fn revert_email_change(
        &self,
        token: &EmailRevertToken,
        ctx: &RequestContext,
    ) -> Result<UserId, Error> {
        crate::flows::email_change::revert(self.inner, token, ctx).await
    }

    /// Where the account stands: verification, block, lockout, and what it signs in with.
    pub async fn status(&self, id: UserId) -> Result<UserStatus, Error> {
        let inner = self.inner;
        let user = self.get(id).await?;
        let totp = inner
            .users
            .list_totp_factors(id)
            .await?
            .iter()
            .any(|f| f.status == FactorStatus::Active);
        Ok(UserStatus {
            email_verified: user.email_verified,
            phone_verified: user.phone_verified,
            blocked: user.blocked,
            locked_until: user.locked_until.filter(|until| *until > inner.clock.now()),
            password: user.password_hash.is_some(),
            totp,
            passkeys: inner.users.list_passkeys(id).await?.len(),
            backup_codes: inner.users.count_backup_codes(id).await?,
        })
    }

    /// Blocks a user: no sign-in succeeds, and every session (with its refresh tokens)
    /// ends at once, so [`verify_live`](crate::tokens::Tokens::verify_live) and refreshing
    /// fail from now on. Access tokens already issued pass the stateless
    /// [`verify`](crate::tokens::Tokens::verify) until they expire.
    pub async fn block(&self, id: UserId, ctx: &RequestContext) -> Result<(), Error> {
        self.set_blocked(id, true, ctx).await
    }

    /// Lifts a block.
    pub async fn unblock(&self, id: UserId, ctx: &RequestContext) -> Result<(), Error> {
        self.set_blocked(id, false, ctx).await
    }

    async fn set_blocked(
        &self,
        id: UserId,
        blocked: bool,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let inner = self.inner;
        for _ in 0..MAX_RETRIES {
            let mut user = self.get(id).await?;
            user.blocked = blocked;
            if blocked {
                user.rotate_security_stamp();
            }
            user.updated_at = inner.clock.now();
            match inner.users.update_user(&user).await {
                Err(StoreError::Stale) => continue,
                Err(err) => return Err(err.into()),
                Ok(_) => {}
            }
            let (kind, reason) = match blocked {
                true => (AuthEventKind::UserBlocked, "blocked"),
                false => (AuthEventKind::UserUnblocked, "unblocked"),
            };
            if blocked {
                // After the flag: a sign-in racing the block opens no session that outlives it.
                let now = inner.clock.now();
                inner.sessions.revoke_user_sessions(id, now).await?;
            }
            admin_event(inner, kind, id, ctx, reason).await?;
            return Ok(());
        }
        Err(Error::Conflict { what: "revision" })
    }

    /// Deletes a user and everything that is theirs: passkeys, TOTP factors, backup codes,
    /// sessions and refresh tokens, memberships. The login log keeps its events under the
    /// user id, without the personal data (addresses, user agents). Half-finished
    /// ceremonies die with the account: an MFA step or a pending registration finds no
    /// user; a magic link or code sent to the old address signs in (or up) only as a new
    /// account, by proving the mailbox again.
    ///
    /// [`Error::NotFound`] when there is no such user.
    pub async fn delete(&self, id: UserId, ctx: &RequestContext) -> Result<(), Error> {
        let inner = self.inner;
        self.get(id).await?;
        // Sessions first: from here on no token of theirs verifies live or refreshes.
        let now = inner.clock.now();
        inner.sessions.revoke_user_sessions(id, now).await?;
        inner.sessions.delete_user_sessions(id).await?;
        inner.orgs.delete_memberships_of_user(id).await?;
        // Forgotten before the account goes: should this fail, a retry still finds the
        // user and finishes the job.
        inner.audit_log.forget_user(id).await?;
        if !inner.users.delete_user(id).await? {
            return Err(Error::NotFound { what: "user" });
        }
        admin_event(inner, AuthEventKind::UserDeleted, id, ctx, "admin_deleted").await
    }
}

/// A changed address or number, parsed: `Some(None)` removes it.
fn parse_change<T>(
    change: Option<&Option<String>>,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Option<Option<T>>, Error> {
    Ok(match change {
        Some(Some(text)) => Some(Some(parse(text)?)),
        Some(None) => Some(None),
        None => None,
    })
}

/// The most application data one user may carry, as JSON.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Application data: a JSON object of at most 16 KiB (`null` for none).
fn checked_metadata(metadata: serde_json::Value) -> Result<serde_json::Value, Error> {
    if !(metadata.is_object() || metadata.is_null()) {
        return Err(Error::invalid("metadata", "must be a JSON object"));
    }
    let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid("metadata", "must be at most 16 KiB of JSON"));
    }
    // Refused on every adapter alike, since a SQL database cannot hold it in text or JSON.
    if holds_nul(&metadata) {
        return Err(Error::invalid(
            "metadata",
            "must not contain the NUL character (\\u0000)",
        ));
    }
    Ok(metadata)
}

/// Whether a key or string anywhere in `value` holds U+0000.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Tells an address or number taken off an account that it no longer signs in to it.
/// Best effort: the change stands even when the notice cannot be sent.
pub(crate) async fn notify_replaced(
    inner: &Inner,
    before: &User,
    after: &User,
    ctx: &RequestContext,
) {
    let mut gone = Vec::new();
    if let Some(email) = before
        .email
        .as_ref()
        .filter(|e| after.email.as_ref() != Some(*e))
    {
        gone.push(Recipient::Email(email.clone()));
    }
    if let Some(phone) = before
        .phone
        .as_ref()
        .filter(|p| after.phone.as_ref() != Some(*p))
    {
        gone.push(Recipient::Phone(phone.clone()));
    }
    for to in gone {
        let reachable = match &to {
            Recipient::Email(_) => inner.mailer.is_some(),
            Recipient::Phone(_) => inner.sms.is_some(),
        };
        if !reachable {
            continue;
        }
        let message = Message {
            kind: MessageKind::ContactChanged,
            to,
            link: None,
            code: None,
            expires_in: std::time::Duration::ZERO,
            locale: ctx.locale.clone(),
            org_id: ctx.org_id,
            request_id: RequestId::generate(),
            activity: None,
        };
        if let Err(err) = send_message(inner, message).await {
            tracing::warn!(user_id = %after.id, error = %err, "could not send a contact-change notice");
        }
    }
}

/// Logs an administrator's action on a user.
async fn admin_event(
    inner: &Inner,
    kind: AuthEventKind,
    user: UserId,
    ctx: &RequestContext,
    reason: &str,
) -> Result<(), Error> {
    let event = AuthEvent::new(kind, ctx, inner.clock.now())
        .with_user(user)
        .with_reason(reason);
    Ok(inner.audit_log.append(&event).await?)
}
