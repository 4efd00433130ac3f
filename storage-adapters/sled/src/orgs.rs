//! `OrgStore` over sled trees. Roles, permissions, members and domain claims are keyed by
//! organization first, so an organization's are one prefix scan.

use std::collections::BTreeSet;
use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::Timestamp;
use portcullis::crypto::SecretHash;
use portcullis::model::{
    ApiCredential, App, ClientId, ConnectionId, Cursor, DomainClaim, Membership, OrgId,
    Organization, Page, PageRequest, PermissionDef, PermissionId, Role, RoleId, SsoConnection,
    UserId,
};
use portcullis::store::{OrgStore, StoreResult};
use serde::de::DeserializeOwned;

use crate::codec::{cat, dec, dec_record, enc, enc_record, text};
use crate::tx::{Trees, WriteSet, keys_with_prefix};
use crate::{Class, SledStore};

fn org_of(t: &Trees, w: &WriteSet, id: OrgId) -> StoreResult<Option<Organization>> {
    w.get(&t.orgs, id.as_bytes())?
        .map(|raw| dec_record(&raw))
        .transpose()
}

fn require_org(t: &Trees, w: &WriteSet, id: OrgId) -> StoreResult<()> {
    match org_of(t, w, id)? {
        Some(_) => Ok(()),
        None => Err(StoreError::Missing {
            what: "organization",
        }),
    }
}

fn check_unique(t: &Trees, w: &WriteSet, org: &Organization) -> StoreResult<()> {
    let other = |raw: Vec<u8>| raw.as_slice() != org.id.as_bytes();
    if w.get(&t.orgs_by_slug, org.slug.as_bytes())?
        .is_some_and(other)
    {
        return Err(StoreError::Conflict { what: "slug" });
    }
    let distinct: BTreeSet<&String> = org.domains.iter().collect();
    if distinct.len() != org.domains.len() {
        return Err(StoreError::Conflict { what: "domain" });
    }
    for domain in &org.domains {
        if w.get(&t.orgs_by_domain, domain.as_bytes())?
            .is_some_and(other)
        {
            return Err(StoreError::Conflict { what: "domain" });
        }
    }
    Ok(())
}

fn index(t: &Trees, w: &mut WriteSet, org: &Organization) {
    w.put(
        &t.orgs_by_slug,
        org.slug.as_bytes(),
        org.id.as_bytes().to_vec(),
    );
    for domain in &org.domains {
        w.put(
            &t.orgs_by_domain,
            domain.as_bytes(),
            org.id.as_bytes().to_vec(),
        );
    }
}

fn unindex(t: &Trees, w: &mut WriteSet, org: &Organization) {
    w.del(&t.orgs_by_slug, org.slug.as_bytes());
    for domain in &org.domains {
        w.del(&t.orgs_by_domain, domain.as_bytes());
    }
}

fn connection_of(t: &Trees, w: &WriteSet, id: ConnectionId) -> StoreResult<Option<SsoConnection>> {
    w.get(&t.sso_connections, id.as_bytes())?
        .map(|raw| dec(&raw, "sso connection"))
        .transpose()
}

/// A claim's key: the organization, then the domain (so an organization's claims are listed
/// by domain).
fn claim_key(org: OrgId, domain: &str) -> Vec<u8> {
    cat(org.as_bytes(), domain.as_bytes())
}

/// A claimant's key: the domain (length first), then the organization.
fn claimant_key(domain: &str, org: OrgId) -> Vec<u8> {
    cat(&text(domain), org.as_bytes())
}

fn claim_of(t: &Trees, w: &WriteSet, org: OrgId, domain: &str) -> StoreResult<Option<DomainClaim>> {
    w.get(&t.domain_claims, &claim_key(org, domain))?
        .map(|raw| dec(&raw, "domain claim"))
        .transpose()
}

/// Refuses when an organization other than `org` holds a verified claim on `domain`.
fn check_unverified_elsewhere(
    t: &Trees,
    w: &WriteSet,
    org: OrgId,
    domain: &str,
) -> StoreResult<()> {
    let prefix = text(domain);
    for key in keys_with_prefix(&t.domain_claimants, &prefix)? {
        let other = key.get(prefix.len()..).unwrap_or_default();
        if other == org.as_bytes() {
            continue;
        }
        let raw = w.get(&t.domain_claims, &cat(other, domain.as_bytes()))?;
        let Some(raw) = raw else { continue };
        let claim: DomainClaim = dec(&raw, "domain claim")?;
        if claim.verified_at.is_some() {
            return Err(StoreError::Conflict { what: "domain" });
        }
    }
    Ok(())
}

/// Every value under a prefix, decoded.
fn values<T: DeserializeOwned>(
    tree: &sled::Tree,
    prefix: &[u8],
    what: &'static str,
) -> StoreResult<Vec<T>> {
    tree.scan_prefix(prefix)
        .values()
        .map(|raw| dec(&raw.map_err(crate::backend)?, what))
        .collect()
}

impl SledStore {
    /// The organization an index entry points to, if its record still carries the key
    /// (reads take no lock: a delete or an update may land between the two reads).
    fn org_by_index(
        &self,
        index: &sled::Tree,
        key: &[u8],
        carries: impl Fn(&Organization) -> bool,
    ) -> StoreResult<Option<Organization>> {
        let Some(id) = index.get(key).map_err(crate::backend)? else {
            return Ok(None);
        };
        let Some(raw) = self.inner.t.orgs.get(id).map_err(crate::backend)? else {
            return Ok(None);
        };
        let org: Organization = dec_record(&raw)?;
        Ok(Some(org).filter(|o| carries(o)))
    }
}

/// Whether `id` (the last 16 bytes of a key) is stored under an organization other than
/// `org`: ids are global, so a definition never moves between organizations.
fn in_other_org(tree: &sled::Tree, org: &[u8], id: &[u8]) -> StoreResult<bool> {
    for key in tree.iter().keys() {
        let key = key.map_err(crate::backend)?;
        if key.get(16..) == Some(id) && key.get(..16) != Some(org) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[async_trait]
impl OrgStore for SledStore {
    async fn create_org(&self, org: &Organization) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Ordinary, |t, w| {
                if org_of(t, w, org.id)?.is_some() {
                    return Err(StoreError::Conflict {
                        what: "organization",
                    });
                }
                check_unique(t, w, org)?;
                index(t, w, org);
                w.put(&t.orgs, org.id.as_bytes().to_vec(), enc_record(org));
                Ok(())
            })
            .await
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let raw = self
            .inner
            .t
            .orgs
            .get(id.as_bytes())
            .map_err(crate::backend)?;
        raw.map(|raw| dec_record(&raw)).transpose()
    }

    async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        self.org_by_index(&self.inner.t.orgs_by_slug, slug.as_bytes(), |o| {
            o.slug == slug
        })
    }

    async fn get_org_by_domain(&self, domain: &str) -> StoreResult<Option<Organization>> {
        self.org_by_index(&self.inner.t.orgs_by_domain, domain.as_bytes(), |o| {
            o.domains.iter().any(|d| d == domain)
        })
    }

    async fn update_org(&self, org: &Organization) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let stored = org_of(t, w, org.id)?.ok_or(StoreError::Missing {
                    what: "organization",
                })?;
                if stored.revision != org.revision {
                    return Err(StoreError::Stale);
                }
                check_unique(t, w, org)?;
                unindex(t, w, &stored);
                index(t, w, org);
                let revision = org.revision.saturating_add(1);
                let mut updated = org.clone();
                updated.revision = revision;
                w.put(&t.orgs, org.id.as_bytes().to_vec(), enc_record(&updated));
                Ok(revision)
            })
            .await
    }

    async fn delete_org(&self, id: OrgId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let Some(org) = org_of(t, w, id)? else {
                    return Ok(false);
                };
                unindex(t, w, &org);
                w.del(&t.orgs, id.as_bytes().to_vec());
                for key in keys_with_prefix(&t.org_apps, id.as_bytes())? {
                    w.del(&t.apps, key.get(16..).unwrap_or_default().to_vec());
                    w.del(&t.org_apps, key.to_vec());
                }
                for tree in [&t.roles, &t.permissions] {
                    for key in keys_with_prefix(tree, id.as_bytes())? {
                        w.del(tree, key.to_vec());
                    }
                }
                for key in keys_with_prefix(&t.members, id.as_bytes())? {
                    let user = key.get(16..).unwrap_or_default();
                    w.del(&t.member_orgs, cat(user, id.as_bytes()));
                    w.del(&t.members, key.to_vec());
                }
                for key in keys_with_prefix(&t.org_api_credentials, id.as_bytes())? {
                    let credential_id = key.get(16..).unwrap_or_default();
                    if let Some(raw) = w.get(&t.api_credentials, credential_id)? {
                        let credential: ApiCredential = dec(&raw, "api credential")?;
                        w.del(
                            &t.api_credential_hashes,
                            credential.secret_hash.as_bytes().to_vec(),
                        );
                    }
                    w.del(&t.api_credentials, credential_id.to_vec());
                    w.del(&t.org_api_credentials, key.to_vec());
                }
                for key in keys_with_prefix(&t.org_sso_connections, id.as_bytes())? {
                    w.del(
                        &t.sso_connections,
                        key.get(16..).unwrap_or_default().to_vec(),
                    );
                    w.del(&t.org_sso_connections, key.to_vec());
                }
                let claims: Vec<DomainClaim> =
                    values(&t.domain_claims, id.as_bytes(), "domain claim")?;
                for claim in claims {
                    w.del(&t.domain_claimants, claimant_key(&claim.domain, id));
                    w.del(&t.domain_claims, claim_key(id, &claim.domain));
                }
                Ok(true)
            })
            .await
    }

    async fn create_api_credential(&self, credential: &ApiCredential) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, credential.org_id)?;
                let hash = credential.secret_hash.as_bytes();
                if w.get(&t.api_credentials, credential.id.as_bytes())?
                    .is_some()
                    || w.get(&t.api_credential_hashes, hash)?.is_some()
                {
                    return Err(StoreError::Conflict {
                        what: "api_credential",
                    });
                }
                let id = credential.id.as_bytes();
                w.put(&t.api_credentials, id.to_vec(), enc(credential)?);
                w.put(&t.api_credential_hashes, hash.to_vec(), id.to_vec());
                w.put(
                    &t.org_api_credentials,
                    cat(credential.org_id.as_bytes(), id),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn get_api_credential_by_hash(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<ApiCredential>> {
        let t = &self.inner.t;
        let Some(id) = t
            .api_credential_hashes
            .get(hash.as_bytes())
            .map_err(crate::backend)?
        else {
            return Ok(None);
        };
        let raw = t.api_credentials.get(id).map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "api credential")).transpose()
    }

    async fn list_api_credentials(&self, org: OrgId) -> StoreResult<Vec<ApiCredential>> {
        let t = &self.inner.t;
        let mut credentials = Vec::new();
        for key in keys_with_prefix(&t.org_api_credentials, org.as_bytes())? {
            let raw = t
                .api_credentials
                .get(key.get(16..).unwrap_or_default())
                .map_err(crate::backend)?;
            if let Some(raw) = raw {
                credentials.push(dec::<ApiCredential>(&raw, "api credential")?);
            }
        }
        Ok(credentials)
    }

    async fn update_api_credential(&self, credential: &ApiCredential) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.api_credentials, credential.id.as_bytes())? else {
                    return Ok(false);
                };
                let mut stored: ApiCredential = dec(&raw, "api credential")?;
                if stored.org_id != credential.org_id {
                    return Ok(false);
                }
                stored.name = credential.name.clone();
                stored.last_used_at = credential.last_used_at.max(stored.last_used_at);
                stored.revoked_at = stored.revoked_at.or(credential.revoked_at);
                w.put(
                    &t.api_credentials,
                    credential.id.as_bytes().to_vec(),
                    enc(&stored)?,
                );
                Ok(true)
            })
            .await
    }

    async fn list_orgs(&self, page: &PageRequest) -> StoreResult<Page<Organization>> {
        let after = page
            .cursor
            .as_ref()
            .map(|c| {
                c.as_str()
                    .parse::<OrgId>()
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let start = after.map_or(Bound::Unbounded, |id| {
            Bound::Excluded(id.as_bytes().to_vec())
        });
        let limit = page.effective_limit();
        let mut items: Vec<Organization> = self
            .inner
            .t
            .orgs
            .range((start, Bound::Unbounded))
            .values()
            .take(limit + 1)
            .map(|raw| dec_record(&raw.map_err(crate::backend)?))
            .collect::<StoreResult<_>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = items
            .last()
            .filter(|_| more)
            .map(|o| Cursor::new(o.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, app.org_id)?;
                if w.get(&t.apps, app.client_id.as_str().as_bytes())?.is_some() {
                    return Err(StoreError::Conflict { what: "client_id" });
                }
                w.put(&t.apps, app.client_id.as_str().as_bytes(), enc(app)?);
                w.put(
                    &t.org_apps,
                    cat(app.org_id.as_bytes(), app.client_id.as_str().as_bytes()),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn get_app(&self, client_id: &ClientId) -> StoreResult<Option<App>> {
        let raw = self
            .inner
            .t
            .apps
            .get(client_id.as_str().as_bytes())
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "app")).transpose()
    }

    async fn list_apps(&self, org: OrgId) -> StoreResult<Vec<App>> {
        let mut apps = Vec::new();
        for key in keys_with_prefix(&self.inner.t.org_apps, org.as_bytes())? {
            let raw = self
                .inner
                .t
                .apps
                .get(key.get(16..).unwrap_or_default())
                .map_err(crate::backend)?;
            // Deleted between the two reads: gone.
            if let Some(raw) = raw {
                apps.push(dec::<App>(&raw, "app")?);
            }
        }
        apps.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(apps)
    }

    async fn update_app(&self, app: &App) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.apps, app.client_id.as_str().as_bytes())? else {
                    return Ok(false);
                };
                let stored: App = dec(&raw, "app")?;
                let updated = App {
                    org_id: stored.org_id,
                    created_at: stored.created_at,
                    ..app.clone()
                };
                w.put(&t.apps, app.client_id.as_str().as_bytes(), enc(&updated)?);
                Ok(true)
            })
            .await
    }

    async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.apps, client_id.as_str().as_bytes())? else {
                    return Ok(false);
                };
                let app: App = dec(&raw, "app")?;
                w.del(&t.apps, client_id.as_str().as_bytes());
                w.del(
                    &t.org_apps,
                    cat(app.org_id.as_bytes(), client_id.as_str().as_bytes()),
                );
                Ok(true)
            })
            .await
    }

    async fn put_permission(&self, permission: &PermissionDef) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, permission.org_id)?;
                let org = permission.org_id.as_bytes();
                let existing: Vec<PermissionDef> = values(&t.permissions, org, "permission")?;
                if existing
                    .iter()
                    .any(|p| p.name == permission.name && p.id != permission.id)
                {
                    return Err(StoreError::Conflict { what: "permission" });
                }
                // An id is global: refuse to move a definition to another organization.
                if in_other_org(&t.permissions, org, permission.id.as_bytes())? {
                    return Err(StoreError::Conflict { what: "permission" });
                }
                w.put(
                    &t.permissions,
                    cat(org, permission.id.as_bytes()),
                    enc(permission)?,
                );
                Ok(())
            })
            .await
    }

    async fn list_permissions(&self, org: OrgId) -> StoreResult<Vec<PermissionDef>> {
        values(&self.inner.t.permissions, org.as_bytes(), "permission")
    }

    async fn delete_permission(&self, org: OrgId, id: PermissionId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let key = cat(org.as_bytes(), id.as_bytes());
                if w.get(&t.permissions, &key)?.is_none() {
                    return Ok(false);
                }
                w.del(&t.permissions, key);
                for mut role in values::<Role>(&t.roles, org.as_bytes(), "role")? {
                    if role.permission_ids.contains(&id) {
                        role.permission_ids.retain(|p| *p != id);
                        w.put(
                            &t.roles,
                            cat(org.as_bytes(), role.id.as_bytes()),
                            enc(&role)?,
                        );
                    }
                }
                Ok(true)
            })
            .await
    }

    async fn put_role(&self, role: &Role) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, role.org_id)?;
                let org = role.org_id.as_bytes();
                let existing: Vec<Role> = values(&t.roles, org, "role")?;
                if existing
                    .iter()
                    .any(|r| r.name == role.name && r.id != role.id)
                {
                    return Err(StoreError::Conflict { what: "role" });
                }
                if in_other_org(&t.roles, org, role.id.as_bytes())? {
                    return Err(StoreError::Conflict { what: "role" });
                }
                w.put(&t.roles, cat(org, role.id.as_bytes()), enc(role)?);
                Ok(())
            })
            .await
    }

    async fn get_role(&self, org: OrgId, id: RoleId) -> StoreResult<Option<Role>> {
        let raw = self
            .inner
            .t
            .roles
            .get(cat(org.as_bytes(), id.as_bytes()))
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "role")).transpose()
    }

    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>> {
        values(&self.inner.t.roles, org.as_bytes(), "role")
    }

    async fn delete_role(&self, org: OrgId, id: RoleId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let key = cat(org.as_bytes(), id.as_bytes());
                if w.get(&t.roles, &key)?.is_none() {
                    return Ok(false);
                }
                w.del(&t.roles, key);
                for mut membership in
                    values::<Membership>(&t.members, org.as_bytes(), "membership")?
                {
                    if membership.role_ids.contains(&id) {
                        membership.role_ids.retain(|r| *r != id);
                        let key = cat(org.as_bytes(), membership.user_id.as_bytes());
                        w.put(&t.members, key, enc(&membership)?);
                    }
                }
                Ok(true)
            })
            .await
    }

    async fn put_membership(&self, membership: &Membership) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, membership.org_id)?;
                let org = membership.org_id.as_bytes();
                for role in &membership.role_ids {
                    if w.get(&t.roles, &cat(org, role.as_bytes()))?.is_none() {
                        return Err(StoreError::Missing { what: "role" });
                    }
                }
                w.put(
                    &t.members,
                    cat(org, membership.user_id.as_bytes()),
                    enc(membership)?,
                );
                w.put(
                    &t.member_orgs,
                    cat(membership.user_id.as_bytes(), org),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn get_membership(&self, user: UserId, org: OrgId) -> StoreResult<Option<Membership>> {
        let raw = self
            .inner
            .t
            .members
            .get(cat(org.as_bytes(), user.as_bytes()))
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "membership")).transpose()
    }

    async fn list_memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let mut memberships = Vec::new();
        for key in keys_with_prefix(&self.inner.t.member_orgs, user.as_bytes())? {
            let org = key.get(16..).unwrap_or_default();
            let raw = self
                .inner
                .t
                .members
                .get(cat(org, user.as_bytes()))
                .map_err(crate::backend)?;
            // Deleted between the two reads: gone.
            if let Some(raw) = raw {
                memberships.push(dec(&raw, "membership")?);
            }
        }
        Ok(memberships)
    }

    async fn list_members(&self, org: OrgId, page: &PageRequest) -> StoreResult<Page<Membership>> {
        let after = page
            .cursor
            .as_ref()
            .map(|c| {
                c.as_str()
                    .parse::<UserId>()
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let start = match after {
            Some(user) => Bound::Excluded(cat(org.as_bytes(), user.as_bytes())),
            None => Bound::Included(org.as_bytes().to_vec()),
        };
        let limit = page.effective_limit();
        let mut items = Vec::new();
        let mut more = false;
        for entry in self.inner.t.members.range((start, Bound::Unbounded)) {
            let (key, raw) = entry.map_err(crate::backend)?;
            if !key.starts_with(org.as_bytes()) {
                break;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(dec::<Membership>(&raw, "membership")?);
        }
        let next_cursor = items
            .last()
            .filter(|_| more)
            .map(|m| Cursor::new(m.user_id.to_string()));
        Ok(Page { items, next_cursor })
    }

    async fn delete_membership(&self, user: UserId, org: OrgId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let key = cat(org.as_bytes(), user.as_bytes());
                let existed = w.get(&t.members, &key)?.is_some();
                w.del(&t.members, key);
                w.del(&t.member_orgs, cat(user.as_bytes(), org.as_bytes()));
                Ok(existed)
            })
            .await
    }

    async fn delete_memberships_of_user(&self, user: UserId) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let keys = keys_with_prefix(&t.member_orgs, user.as_bytes())?;
                for key in &keys {
                    let org = key.get(16..).unwrap_or_default();
                    w.del(&t.members, cat(org, user.as_bytes()));
                    w.del(&t.member_orgs, key.to_vec());
                }
                Ok(keys.len() as u64)
            })
            .await
    }

    async fn create_sso_connection(&self, connection: &SsoConnection) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, connection.org_id)?;
                if connection_of(t, w, connection.id)?.is_some() {
                    return Err(StoreError::Conflict {
                        what: "sso_connection",
                    });
                }
                let id = connection.id.as_bytes();
                w.put(&t.sso_connections, id.to_vec(), enc(connection)?);
                w.put(
                    &t.org_sso_connections,
                    cat(connection.org_id.as_bytes(), id),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn get_sso_connection(&self, id: ConnectionId) -> StoreResult<Option<SsoConnection>> {
        let raw = self
            .inner
            .t
            .sso_connections
            .get(id.as_bytes())
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "sso connection")).transpose()
    }

    async fn list_sso_connections(&self, org: OrgId) -> StoreResult<Vec<SsoConnection>> {
        let t = &self.inner.t;
        let mut connections = Vec::new();
        for key in keys_with_prefix(&t.org_sso_connections, org.as_bytes())? {
            let raw = t
                .sso_connections
                .get(key.get(16..).unwrap_or_default())
                .map_err(crate::backend)?;
            let Some(raw) = raw else {
                // Deleted between the two reads: gone.
                continue;
            };
            let connection: SsoConnection = dec(&raw, "sso connection")?;
            // Deleted and its id reused elsewhere between the two reads: not this one's.
            if connection.org_id == org {
                connections.push(connection);
            }
        }
        Ok(connections)
    }

    async fn update_sso_connection(&self, connection: &SsoConnection) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let stored = connection_of(t, w, connection.id)?
                    .filter(|c| c.org_id == connection.org_id)
                    .ok_or(StoreError::Missing {
                        what: "sso_connection",
                    })?;
                if stored.revision != connection.revision {
                    return Err(StoreError::Stale);
                }
                let revision = connection.revision.saturating_add(1);
                let mut updated = connection.clone();
                updated.revision = revision;
                w.put(
                    &t.sso_connections,
                    connection.id.as_bytes().to_vec(),
                    enc(&updated)?,
                );
                Ok(revision)
            })
            .await
    }

    async fn delete_sso_connection(&self, org: OrgId, id: ConnectionId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                if connection_of(t, w, id)?.is_none_or(|c| c.org_id != org) {
                    return Ok(false);
                }
                w.del(&t.sso_connections, id.as_bytes().to_vec());
                w.del(&t.org_sso_connections, cat(org.as_bytes(), id.as_bytes()));
                Ok(true)
            })
            .await
    }

    async fn put_domain_claim(&self, claim: &DomainClaim) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                require_org(t, w, claim.org_id)?;
                check_unverified_elsewhere(t, w, claim.org_id, &claim.domain)?;
                w.put(
                    &t.domain_claims,
                    claim_key(claim.org_id, &claim.domain),
                    enc(claim)?,
                );
                w.put(
                    &t.domain_claimants,
                    claimant_key(&claim.domain, claim.org_id),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn domain_claims(&self, domain: &str) -> StoreResult<Vec<DomainClaim>> {
        let t = &self.inner.t;
        let prefix = text(domain);
        let mut claims = Vec::new();
        for key in keys_with_prefix(&t.domain_claimants, &prefix)? {
            let org = key.get(prefix.len()..).unwrap_or_default();
            let raw = t
                .domain_claims
                .get(cat(org, domain.as_bytes()))
                .map_err(crate::backend)?;
            // Deleted between the two reads: gone.
            if let Some(raw) = raw {
                claims.push(dec::<DomainClaim>(&raw, "domain claim")?);
            }
        }
        Ok(claims)
    }

    async fn list_domain_claims(&self, org: OrgId) -> StoreResult<Vec<DomainClaim>> {
        values(&self.inner.t.domain_claims, org.as_bytes(), "domain claim")
    }

    async fn verify_domain_claim(
        &self,
        org: OrgId,
        domain: &str,
        token: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                let Some(mut claim) = claim_of(t, w, org, domain)? else {
                    return Ok(false);
                };
                if claim.token != token {
                    return Ok(false);
                }
                check_unverified_elsewhere(t, w, org, domain)?;
                claim.verified_at = Some(at);
                w.put(&t.domain_claims, claim_key(org, domain), enc(&claim)?);
                Ok(true)
            })
            .await
    }

    async fn delete_domain_claim(&self, org: OrgId, domain: &str) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.orgs_lock, Class::Critical, |t, w| {
                if claim_of(t, w, org, domain)?.is_none() {
                    return Ok(false);
                }
                w.del(&t.domain_claims, claim_key(org, domain));
                w.del(&t.domain_claimants, claimant_key(domain, org));
                Ok(true)
            })
            .await
    }
}
