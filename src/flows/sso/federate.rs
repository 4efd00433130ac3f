//! Who an identity from a provider signs in as: the one linking and provisioning policy,
//! written once for every kind of connection (checklist RP-06, RP-07, RP-09, RP-16).
//!
//! 1. An identity already linked — `(connection, sub)`, never the email — signs in as
//!    its user.
//! 2. Otherwise an existing user with the asserted email is linked only when the provider
//!    says the email is verified (JSON `true`, not `"true"`), the email's domain is a
//!    proven domain of the connection's organization and one the connection serves, and
//!    the user's own email is verified. Anything less: [`Error::SsoFailed`] ("sign in
//!    and link"), no session for that user.
//! 3. Otherwise, with just-in-time provisioning on, a new user is made (with the email
//!    only when the provider verified it) and joins the connection's organization.
//!
//! The user's roles in the connection's organization follow the connection's default
//! roles and group mapping, looked up by name in that organization only.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::engine::Inner;
use crate::model::{FederatedIdentity, SsoConnection, User, UserId, checked_label};
use crate::{Email, Error, RequestContext, StoreError};

use super::domains;

fn failed(reason: &'static str) -> Error {
    Error::SsoFailed { reason }
}

/// What a provider asserted about the person, read through the connection's mapping.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The provider's subject identifier.
    pub subject: String,
    /// The email address, if any (and readable).
    pub email: Option<Email>,
    /// Whether the provider verified it (JSON `true` only).
    pub email_verified: bool,
    /// The display name.
    pub name: Option<String>,
    /// The groups.
    pub groups: Vec<String>,
}

impl Assertion {
    /// Reads claims (an ID token's) through `connection`'s mapping. Over-long or
    /// malformed values are dropped, not trusted.
    pub(crate) fn from_claims(
        connection: &SsoConnection,
        subject: String,
        claims: &Map<String, Value>,
    ) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let email = text(&connection.claims.email)
            .filter(|e| e.len() <= 254)
            .and_then(|e| Email::parse(e).ok());
        let name = text(&connection.claims.name).and_then(|n| checked_label(n, "name", 200).ok());
        let groups = claims
            .get(&connection.claims.groups)
            .and_then(Value::as_array)
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|g| g.len() <= 200)
                    .take(200)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Assertion {
            subject,
            email,
            email_verified: claims.get("email_verified") == Some(&Value::Bool(true)),
            name,
            groups,
        }
    }
}

/// The user `assertion` signs in as through `connection` (linking or provisioning as the
/// policy allows), with its roles in the organization brought up to date.
pub(crate) async fn federate(
    inner: &Inner,
    connection: &SsoConnection,
    assertion: &Assertion,
    ctx: &RequestContext,
) -> Result<User, Error> {
    let provider = connection.id.to_string();
    let user = match inner
        .users
        .get_identity(&provider, &assertion.subject)
        .await?
    {
        Some(identity) => inner
            .users
            .get_user(identity.user_id)
            .await?
            .ok_or(failed("the linked account is gone"))?,
        None => link_or_provision(inner, connection, assertion, &provider, ctx).await?,
    };
    sync_roles(inner, connection, user.id, &assertion.groups, ctx).await?;
    Ok(user)
}

async fn link_or_provision(
    inner: &Inner,
    connection: &SsoConnection,
    assertion: &Assertion,
    provider: &str,
    ctx: &RequestContext,
) -> Result<User, Error> {
    let now = inner.clock.now();
    let existing = match &assertion.email {
        Some(email) => inner.users.get_user_by_email(email).await?,
        None => None,
    };
    if let Some(user) = existing {
        let domain_ok = match &assertion.email {
            Some(email) => {
                let domain = email.domain();
                connection.domains.iter().any(|d| d == domain)
                    && domains::is_verified_for(inner, connection.org_id, domain).await?
            }
            None => false,
        };
        if !(assertion.email_verified && domain_ok && user.email_verified) {
            tracing::info!(connection = %connection.id, "an SSO identity matched an account by email but may not link to it");
            return Err(failed(
                "an account with this email exists: sign in to it first, then link",
            ));
        }
        link(inner, provider, &assertion.subject, user.id, now).await?;
        return Ok(user);
    }
    if !connection.jit_provisioning {
        return Err(failed("no account, and this connection does not provision"));
    }
    let mut user = User::new(UserId::generate(), now);
    if assertion.email_verified {
        user.email = assertion.email.clone();
        user.email_verified = user.email.is_some();
    }
    user.name = assertion.name.clone();
    let mut joined_ctx = ctx.clone();
    joined_ctx.org_id = Some(connection.org_id);
    if !crate::flows::create_account(inner, &user, "sso", &joined_ctx).await? {
        return Err(failed("the account could not be made: its email is taken"));
    }
    if let Err(err) = link(inner, provider, &assertion.subject, user.id, now).await {
        if let Err(undo) = inner.users.delete_user(user.id).await {
            tracing::warn!(user_id = %user.id, error = %undo, "could not undo a failed provisioning");
        }
        return Err(err);
    }
    Ok(user)
}

/// Links `(connection, subject)` to `user`, who asked for it from a recent session made
/// under `stamp`: refused when the user's credentials changed since (DESIGN invariant 13)
/// or the identity is another user's. Logged.
pub(crate) async fn link_explicitly(
    inner: &Inner,
    connection: &SsoConnection,
    subject: &str,
    user: UserId,
    stamp: u64,
) -> Result<(), Error> {
    let found = inner
        .users
        .get_user(user)
        .await?
        .ok_or(failed("the account is gone"))?;
    if found.security_stamp != stamp || found.blocked {
        return Err(failed("the account changed since the link was started"));
    }
    let now = inner.clock.now();
    link(inner, &connection.id.to_string(), subject, user, now).await?;
    let ctx = RequestContext::new().with_org(connection.org_id);
    // A new way into the account, as a new factor is.
    let event = crate::model::AuthEvent::new(crate::model::AuthEventKind::FactorAdded, &ctx, now)
        .with_user(user)
        .with_method("sso");
    inner.audit_log.append(&event).await?;
    Ok(())
}

async fn link(
    inner: &Inner,
    provider: &str,
    subject: &str,
    user: UserId,
    now: crate::Timestamp,
) -> Result<(), Error> {
    let identity = FederatedIdentity::new(provider, subject, user, now);
    match inner.users.link_identity(&identity).await {
        // Linked by a racing sign-in of the same identity: fine if it is the same user.
        Err(StoreError::Conflict { .. }) => {
            match inner.users.get_identity(provider, subject).await? {
                Some(found) if found.user_id == user => Ok(()),
                _ => Err(failed("the identity is linked to another account")),
            }
        }
        other => Ok(other?),
    }
}

/// Sets the user's roles in the connection's organization: its default roles and the
/// roles its group mapping names for the asserted groups, looked up by name among that
/// organization's roles only (unknown names are ignored). Roles given by other means are
/// kept.
async fn sync_roles(
    inner: &Inner,
    connection: &SsoConnection,
    user: UserId,
    groups: &[String],
    ctx: &RequestContext,
) -> Result<(), Error> {
    let org = connection.org_id;
    let mut wanted: BTreeSet<&str> = connection
        .default_roles
        .iter()
        .map(String::as_str)
        .collect();
    for group in groups {
        if let Some(roles) = connection.group_roles.get(group) {
            wanted.extend(roles.iter().map(String::as_str));
        }
    }
    let roles = inner.orgs.list_roles(org).await?;
    let mapped: Vec<_> = roles
        .iter()
        .filter(|r| wanted.contains(r.name.as_str()))
        .map(|r| r.id)
        .collect();
    let existing = inner.orgs.get_membership(user, org).await?;
    let mut role_ids = existing
        .as_ref()
        .map(|m| m.role_ids.clone())
        .unwrap_or_default();
    let before = role_ids.len();
    for id in mapped {
        if !role_ids.contains(&id) {
            role_ids.push(id);
        }
    }
    // Signing in through the organization's own provider is the person's choice to be in
    // it (DESIGN invariant 16), as accepting an invitation is.
    if existing.is_none() || role_ids.len() != before {
        crate::directory::Rbac::new(inner)
            .add_member(user, org, &role_ids, ctx)
            .await?;
    }
    Ok(())
}
