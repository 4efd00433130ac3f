//! Users, as an administrator manages them (`auth.users()`).
//!
//! These calls trust their caller: they are the management API's, to be reached only with
//! an API credential or a user token holding the matching permission. A person's own
//! ceremonies (sign-up, proving an address) are in [`flows`](crate::flows).

use crate::delivery::{Message, MessageKind, Recipient};
use crate::engine::Inner;
use crate::flows::{MAX_RETRIES, send_message};
use crate::model::{
    AuthEvent, AuthEventKind, Email, FactorStatus, Membership, OrgId, Page, PageRequest, Phone,
    RequestId, User, UserId, checked_label,
};
use crate::store::UserQuery;
use crate::{Error, RequestContext, StoreError, Timestamp};

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
    /// A new address (`Some(None)` removes it). A new address starts unverified unless
    /// `email_verified` says otherwise; the old one is told it was taken off.
    pub email: Option<Option<String>>,
    /// A new number (`Some(None)` removes it), as for `email`.
    pub phone: Option<Option<String>>,
    /// A new display name (`Some(None)` removes it).
    pub name: Option<Option<String>>,
    /// New application data (replaces the old).
    pub metadata: Option<serde_json::Value>,
    /// Sets whether the address is verified (the administrator vouches for it).
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

    /// Changes a user. A changed address or number starts unverified (unless the update
    /// says it is verified) and the old one receives a notice that it no longer signs in.
    /// Retried on concurrent changes; the update applies whole or not at all.
    ///
    /// Errors: [`Error::NotFound`]; [`Error::InvalidInput`] for a bad value or an update
    /// that would leave neither address nor number; [`Error::Conflict`] when the new
    /// address or number belongs to another user.
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
            if let Some(email) = &email
                && user.email != *email
            {
                user.email = email.clone();
                user.email_verified = false;
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

/// Application data of at most 16 KiB as JSON.
fn checked_metadata(metadata: serde_json::Value) -> Result<serde_json::Value, Error> {
    let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid("metadata", "must be at most 16 KiB of JSON"));
    }
    Ok(metadata)
}

/// Tells an address or number taken off an account that it no longer signs in to it.
/// Best effort: the change stands even when the notice cannot be sent.
async fn notify_replaced(inner: &Inner, before: &User, after: &User, ctx: &RequestContext) {
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
