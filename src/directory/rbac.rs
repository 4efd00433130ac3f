//! Roles and permissions per organization, and who holds them (`auth.rbac()`).
//!
//! A permission is a `resource:action` name an organization defines (`invoices:write`). A
//! role is a named set of them; a role may also hold a wildcard, `invoices:*`, which grants
//! every action on that resource (one the organization has defined permissions for). A
//! membership ties a user to an organization with some of its roles. Deleting a
//! permission takes it out of every role, and deleting a role takes it out of every
//! membership, in the same atomic step.
//!
//! An access token for a session in an organization carries the role names and the
//! permissions they grant (`roles`, `perms`), so most checks need no I/O:
//! [`Claims::has_permission`](crate::tokens::Claims::has_permission). A token's claims
//! stay within [`MAX_CLAIMS_BYTES`](crate::tokens::MAX_CLAIMS_BYTES) (5 KiB, about 150
//! permissions of 30 characters); past that it carries no roles or permissions and sets
//! `perms_omitted`, so `has_permission` answers `false` and the application asks
//! [`Rbac::check`]. A token
//! reflects the roles of when it was signed (at most one access-token lifetime ago);
//! [`Rbac::check`] reads the store, for decisions that must see a change at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::{InvitationToken, SecretPurpose, random_token};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, Email, Membership, OrgId, Permission,
    PermissionDef, PermissionId, Role, RoleId, UserId, checked_label,
};
use crate::{Error, RequestContext};

/// An invitation just made: give the token to the person invited (show it nowhere else).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invitation {
    /// The secret that lets the addressee join; stored only as a keyed hash.
    pub token: InvitationToken,
    /// The organization.
    pub org_id: OrgId,
    /// Whom it is for: only a user who proved this address can accept it.
    pub email: Email,
    /// How long it can be accepted.
    pub expires_in: Duration,
}

/// An invitation as stored (under its token's hash).
#[derive(Serialize, Deserialize)]
struct InvitationRecord {
    org_id: OrgId,
    email: String,
    role_ids: Vec<RoleId>,
}

/// A role to create, or a role's new contents.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RoleSpec {
    /// Unique within the organization; 1 to 64 characters.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Permission names it grants: defined in the organization, or `resource:*`.
    pub permissions: Vec<String>,
}

impl RoleSpec {
    /// A role called `name` granting `permissions`.
    pub fn new(name: impl Into<String>, permissions: &[&str]) -> Self {
        RoleSpec {
            name: name.into(),
            description: None,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// With a description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Roles, permissions and memberships (`auth.rbac()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Rbac<'a> {
    inner: &'a Inner,
}

impl<'a> Rbac<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Rbac { inner }
    }

    /// Defines a permission in an organization.
    ///
    /// Errors: [`Error::InvalidInput`] for a name that is not `resource:action` (or is a
    /// wildcard); [`Error::Conflict`] (`"permission"`) when it is defined already;
    /// [`Error::NotFound`] (`"organization"`).
    pub async fn define_permission(
        &self,
        org: OrgId,
        name: &str,
        description: Option<&str>,
    ) -> Result<PermissionDef, Error> {
        let name = Permission::new(name)?;
        if name.as_str().ends_with(":*") {
            return Err(Error::invalid(
                "permission",
                "a wildcard is granted by roles, not defined",
            ));
        }
        let def = PermissionDef {
            id: PermissionId::generate(),
            org_id: org,
            name,
            description: description.map(checked_description).transpose()?,
            created_at: self.inner.clock.now(),
        };
        self.inner.orgs.put_permission(&def).await?;
        super::log_admin(self.inner, org, "permission_defined").await;
        Ok(def)
    }

    /// Changes a permission's description (its name is what roles and tokens hold: define
    /// a new one and delete the old instead of renaming).
    pub async fn describe_permission(
        &self,
        org: OrgId,
        id: PermissionId,
        description: Option<&str>,
    ) -> Result<PermissionDef, Error> {
        let mut def = self
            .permissions(org)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(Error::NotFound { what: "permission" })?;
        def.description = description.map(checked_description).transpose()?;
        self.inner.orgs.put_permission(&def).await?;
        super::log_admin(self.inner, org, "permission_updated").await;
        Ok(def)
    }

    /// An organization's permissions.
    pub async fn permissions(&self, org: OrgId) -> Result<Vec<PermissionDef>, Error> {
        Ok(self.inner.orgs.list_permissions(org).await?)
    }

    /// Deletes a permission; every role that granted it stops granting it, atomically.
    pub async fn delete_permission(&self, org: OrgId, id: PermissionId) -> Result<(), Error> {
        if !self.inner.orgs.delete_permission(org, id).await? {
            return Err(Error::NotFound { what: "permission" });
        }
        crate::tokens::bump_roles_revision(self.inner, org, None).await?;
        super::log_admin(self.inner, org, "permission_deleted").await;
        Ok(())
    }

    /// Creates a role.
    ///
    /// Errors: [`Error::InvalidInput`] for a bad name or a permission the organization
    /// does not define; [`Error::Conflict`] (`"role"`) for a name in use;
    /// [`Error::NotFound`] (`"organization"`).
    pub async fn create_role(&self, org: OrgId, spec: &RoleSpec) -> Result<Role, Error> {
        let now = self.inner.clock.now();
        let role = Role {
            id: RoleId::generate(),
            org_id: org,
            name: checked_label(&spec.name, "name", 64)?,
            description: spec
                .description
                .as_deref()
                .map(checked_description)
                .transpose()?,
            permission_ids: Vec::new(),
            wildcards: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let mut role = role;
        (role.permission_ids, role.wildcards) = self.granted(org, &spec.permissions).await?;
        self.inner.orgs.put_role(&role).await?;
        super::log_admin(self.inner, org, "role_created").await;
        Ok(role)
    }

    /// Replaces a role's name, description and permissions. Tokens issued from now on
    /// carry the change; [`check`](Self::check) sees it at once.
    pub async fn update_role(
        &self,
        org: OrgId,
        id: RoleId,
        spec: &RoleSpec,
    ) -> Result<Role, Error> {
        let mut role = self.role(org, id).await?;
        role.name = checked_label(&spec.name, "name", 64)?;
        role.description = spec
            .description
            .as_deref()
            .map(checked_description)
            .transpose()?;
        (role.permission_ids, role.wildcards) = self.granted(org, &spec.permissions).await?;
        role.updated_at = self.inner.clock.now();
        self.inner.orgs.put_role(&role).await?;
        crate::tokens::bump_roles_revision(self.inner, org, None).await?;
        super::log_admin(self.inner, org, "role_updated").await;
        Ok(role)
    }

    /// One role. [`Error::NotFound`] (`"role"`).
    pub async fn role(&self, org: OrgId, id: RoleId) -> Result<Role, Error> {
        self.inner
            .orgs
            .get_role(org, id)
            .await?
            .ok_or(Error::NotFound { what: "role" })
    }

    /// An organization's roles.
    pub async fn roles(&self, org: OrgId) -> Result<Vec<Role>, Error> {
        Ok(self.inner.orgs.list_roles(org).await?)
    }

    /// Deletes a role; every member who held it loses it, atomically.
    pub async fn delete_role(&self, org: OrgId, id: RoleId) -> Result<(), Error> {
        if !self.inner.orgs.delete_role(org, id).await? {
            return Err(Error::NotFound { what: "role" });
        }
        crate::tokens::bump_roles_revision(self.inner, org, None).await?;
        super::log_admin(self.inner, org, "role_deleted").await;
        Ok(())
    }

    /// Sets the roles `user` holds in `org`, where they are already a member. Nobody is
    /// made a member here: joining needs the person's consent
    /// ([`invite`](Self::invite), then [`accept_invitation`](Self::accept_invitation)) or
    /// an installation-level decision ([`add_member`](Self::add_member)).
    ///
    /// Errors: [`Error::NotFound`] (`"membership"`) when `user` is not a member of `org`,
    /// (`"role"`) for a role that is not one of `org`'s.
    pub async fn set_roles(
        &self,
        user: UserId,
        org: OrgId,
        roles: &[RoleId],
        ctx: &RequestContext,
    ) -> Result<Membership, Error> {
        let existing = self
            .inner
            .orgs
            .get_membership(user, org)
            .await?
            .ok_or(Error::NotFound { what: "membership" })?;
        // A member who joined by signing up stays one: roles an organization gives do not
        // make the membership the account owner's choice.
        let joined = (existing.created_at, existing.self_joined);
        self.put_member(user, org, roles, joined, "roles_set", ctx)
            .await
    }

    /// Makes `user` a member of `org` with `roles` (or sets their roles if they are one).
    ///
    /// SECURITY: this joins someone to an organization without asking them. Call it only
    /// on the say-so of the installation's own administrators (DESIGN invariant 16), never
    /// of an organization's: those [`invite`](Self::invite).
    ///
    /// Errors: [`Error::NotFound`] for an unknown user, organization or role.
    pub async fn add_member(
        &self,
        user: UserId,
        org: OrgId,
        roles: &[RoleId],
        ctx: &RequestContext,
    ) -> Result<Membership, Error> {
        let inner = self.inner;
        if inner.users.get_user(user).await?.is_none() {
            return Err(Error::NotFound { what: "user" });
        }
        if inner.orgs.get_org(org).await?.is_none() {
            return Err(Error::NotFound {
                what: "organization",
            });
        }
        let created_at = match inner.orgs.get_membership(user, org).await? {
            Some(existing) => existing.created_at,
            None => inner.clock.now(),
        };
        self.put_member(user, org, roles, (created_at, false), "member_added", ctx)
            .await
    }

    /// Invites whoever proves `email` into `org` with `roles`. The token goes to the
    /// person (the application delivers it); it is stored only as a keyed hash, and lets
    /// only a signed-in user whose verified address is `email` join, once, within
    /// [`Ttl::invitation`](crate::Ttl::invitation).
    ///
    /// Errors: [`Error::InvalidInput`] for a bad address; [`Error::NotFound`] for an
    /// unknown organization or role.
    pub async fn invite(
        &self,
        org: OrgId,
        email: &str,
        roles: &[RoleId],
        ctx: &RequestContext,
    ) -> Result<Invitation, Error> {
        let inner = self.inner;
        let email = Email::parse(email)?;
        if inner.orgs.get_org(org).await?.is_none() {
            return Err(Error::NotFound {
                what: "organization",
            });
        }
        let role_ids = self.checked_roles(org, roles).await?;
        let token = random_token()?;
        let hash = inner
            .hasher
            .hash(SecretPurpose::Invitation, token.as_bytes());
        let record = InvitationRecord {
            org_id: org,
            email: email.as_str().to_owned(),
            role_ids,
        };
        let value = serde_json::to_vec(&record)
            .map_err(|_| Error::Internal("serializing an invitation"))?;
        let now = inner.clock.now();
        let ttl = inner.config.config.ttl.invitation;
        let key = ChallengeKey::hashed(ChallengeKind::Invitation, &hash);
        if !inner
            .challenges
            .insert(&key, &value, now + ttl, now)
            .await?
        {
            return Err(Error::Conflict { what: "invitation" });
        }
        tracing::debug!(org_id = %org, ip = ?ctx.ip, "invitation made");
        super::log_admin(inner, org, "member_invited").await;
        Ok(Invitation {
            token: InvitationToken::new(token.as_str()),
            org_id: org,
            email,
            expires_in: ttl,
        })
    }

    /// Joins `user` to the organization an invitation names, with its roles (added to any
    /// they hold there), if their verified address is the one it was sent to: the
    /// person's consent. The token works once.
    ///
    /// Errors: [`Error::InvalidToken`] for an unknown, used or expired invitation;
    /// [`Error::Forbidden`] when the user has not proven the invited address (the
    /// invitation stays usable by its addressee).
    pub async fn accept_invitation(
        &self,
        user: UserId,
        token: &InvitationToken,
        ctx: &RequestContext,
    ) -> Result<Membership, Error> {
        let inner = self.inner;
        if token.secret().len() > 128 {
            return Err(Error::InvalidToken);
        }
        let now = inner.clock.now();
        let (key, record) = inner
            .secret_record(
                ChallengeKind::Invitation,
                SecretPurpose::Invitation,
                token.secret().as_bytes(),
                false,
            )
            .await?
            .ok_or(Error::InvalidToken)?;
        let invitation: InvitationRecord = serde_json::from_slice(&record.value)
            .map_err(|_| Error::Store(crate::StoreError::Corrupt { what: "invitation" }))?;
        let account = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::InvalidToken)?;
        let addressee = account.email_verified
            && account
                .email
                .as_ref()
                .is_some_and(|e| e.as_str() == invitation.email);
        if !addressee {
            return Err(Error::Forbidden);
        }
        if inner.challenges.take(&key, now).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        let org = invitation.org_id;
        let (mut roles, created_at) = match inner.orgs.get_membership(user, org).await? {
            Some(existing) => (existing.role_ids, existing.created_at),
            None => (Vec::new(), now),
        };
        roles.extend(invitation.role_ids);
        self.put_member(
            user,
            org,
            &roles,
            (created_at, false),
            "invitation_accepted",
            ctx,
        )
        .await
    }

    /// The roles given, each checked to be one of `org`'s, sorted without repeats.
    async fn checked_roles(&self, org: OrgId, roles: &[RoleId]) -> Result<Vec<RoleId>, Error> {
        let mut role_ids = roles.to_vec();
        role_ids.sort();
        role_ids.dedup();
        if !role_ids.is_empty() {
            let defined = self.inner.orgs.list_roles(org).await?;
            if let Some(stranger) = role_ids
                .iter()
                .find(|id| !defined.iter().any(|r| r.id == **id))
            {
                tracing::debug!(role_id = %stranger, "not a role of the organization");
                return Err(Error::NotFound { what: "role" });
            }
        }
        Ok(role_ids)
    }

    async fn put_member(
        &self,
        user: UserId,
        org: OrgId,
        roles: &[RoleId],
        (created_at, self_joined): (crate::Timestamp, bool),
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<Membership, Error> {
        let inner = self.inner;
        let membership = Membership {
            user_id: user,
            org_id: org,
            role_ids: self.checked_roles(org, roles).await?,
            created_at,
            self_joined,
        };
        inner.orgs.put_membership(&membership).await?;
        crate::tokens::bump_roles_revision(inner, org, Some(user)).await?;
        let event = AuthEvent::new(AuthEventKind::UserUpdated, ctx, inner.clock.now())
            .with_user(user)
            .with_reason(reason);
        inner.audit_log.append(&event).await?;
        Ok(membership)
    }

    /// Takes `user` out of `org` (and so out of its roles); their sessions in it end.
    /// Returns whether they were a member.
    pub async fn remove_member(&self, user: UserId, org: OrgId) -> Result<bool, Error> {
        let was = self.inner.orgs.delete_membership(user, org).await?;
        crate::tokens::bump_roles_revision(self.inner, org, Some(user)).await?;
        super::end_sessions_in(self.inner, user, org).await?;
        Ok(was)
    }

    /// The members of `org` with their roles, oldest first, a page at a time.
    pub async fn members(
        &self,
        org: OrgId,
        page: &crate::model::PageRequest,
    ) -> Result<crate::model::Page<Membership>, Error> {
        Ok(self.inner.orgs.list_members(org, page).await?)
    }

    /// Every organization `user` belongs to, with the roles held there.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, Error> {
        Ok(self.inner.orgs.list_memberships(user).await?)
    }

    /// Whether `user`'s roles in `org` grant `permission` (wildcards included), read from
    /// the store now. An unparsable permission is never granted.
    pub async fn check(&self, user: UserId, org: OrgId, permission: &str) -> Result<bool, Error> {
        let Ok(wanted) = Permission::new(permission) else {
            return Ok(false);
        };
        let Some(membership) = self.inner.orgs.get_membership(user, org).await? else {
            return Ok(false);
        };
        let roles = self.inner.orgs.list_roles(org).await?;
        let defined = self.inner.orgs.list_permissions(org).await?;
        Ok(roles
            .iter()
            .filter(|role| membership.role_ids.contains(&role.id))
            .flat_map(|role| role.grants(&defined))
            .any(|held| held.grants(&wanted)))
    }

    /// Checks that every permission a role is to grant is defined in `org` (kept by id),
    /// or is a wildcard over a resource with defined permissions (kept by name). Sorted,
    /// without repeats.
    async fn granted(
        &self,
        org: OrgId,
        names: &[String],
    ) -> Result<(Vec<PermissionId>, Vec<Permission>), Error> {
        let defined = self.permissions(org).await?;
        let (mut ids, mut wildcards) = (Vec::new(), Vec::new());
        for name in names {
            let permission = Permission::new(name.as_str())?;
            if let Some(def) = defined.iter().find(|d| d.name == permission) {
                ids.push(def.id);
            } else if defined.iter().any(|d| permission.grants(&d.name)) {
                wildcards.push(permission);
            } else {
                return Err(Error::invalid(
                    "permissions",
                    format!("{permission} is not defined in this organization"),
                ));
            }
        }
        ids.sort();
        ids.dedup();
        wildcards.sort();
        wildcards.dedup();
        Ok((ids, wildcards))
    }
}

fn checked_description(text: &str) -> Result<String, Error> {
    if text.chars().count() > 500 || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            "description",
            "must be at most 500 characters, without control characters",
        ));
    }
    Ok(text.trim().to_owned())
}
