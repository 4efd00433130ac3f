//! `OrgStore`: organizations with slug, domain and client-id indexes; roles, permissions,
//! memberships, SSO connections and domain claims.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::Timestamp;
use portcullis::crypto::SecretHash;
use portcullis::model::{
    ApiCredential, ApiCredentialId, App, ClientId, ConnectionId, DomainClaim, Membership, OrgId,
    Organization, Page, PageRequest, PermissionDef, PermissionId, Role, RoleId, SsoConnection,
    UserId,
};
use portcullis::store::{OrgStore, StoreResult};

use crate::{MemoryStore, paginate, parse_cursor, read, write};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    orgs: BTreeMap<OrgId, Organization>,
    by_slug: HashMap<String, OrgId>,
    by_domain: HashMap<String, OrgId>,
    apps: HashMap<ClientId, App>,
    roles: BTreeMap<RoleId, Role>,
    permissions: BTreeMap<PermissionId, PermissionDef>,
    members: BTreeMap<(OrgId, UserId), Membership>,
    /// `(user, org)` for every membership: a user's organizations without a scan.
    by_user: BTreeSet<(UserId, OrgId)>,
    api_credentials: BTreeMap<ApiCredentialId, ApiCredential>,
    api_by_hash: HashMap<SecretHash, ApiCredentialId>,
    sso_connections: BTreeMap<ConnectionId, SsoConnection>,
    /// Keyed by domain first: every organization's claim on a domain is one range.
    domain_claims: BTreeMap<(String, OrgId), DomainClaim>,
}

impl Tables {
    /// Every organization, app, role, permission, membership, API credential, SSO
    /// connection and domain claim, for [`MemoryStore::dump`].
    pub(crate) fn dump_into(&self, out: &mut Vec<u8>) {
        self.orgs.values().for_each(|v| crate::dump_json(out, v));
        self.apps.values().for_each(|v| crate::dump_json(out, v));
        self.roles.values().for_each(|v| crate::dump_json(out, v));
        self.permissions
            .values()
            .for_each(|v| crate::dump_json(out, v));
        self.members.values().for_each(|v| crate::dump_json(out, v));
        self.api_credentials
            .values()
            .for_each(|v| crate::dump_json(out, v));
        self.sso_connections
            .values()
            .for_each(|v| crate::dump_json(out, v));
        self.domain_claims
            .values()
            .for_each(|v| crate::dump_json(out, v));
    }
}

impl Tables {
    /// Refuses when the slug or a domain belongs to an organization other than `org`, or
    /// the organization names one domain twice.
    fn check_unique(&self, org: &Organization) -> StoreResult<()> {
        if self.by_slug.get(&org.slug).is_some_and(|id| *id != org.id) {
            return Err(StoreError::Conflict { what: "slug" });
        }
        let distinct: BTreeSet<&String> = org.domains.iter().collect();
        let clash = org
            .domains
            .iter()
            .any(|d| self.by_domain.get(d).is_some_and(|id| *id != org.id));
        if clash || distinct.len() != org.domains.len() {
            return Err(StoreError::Conflict { what: "domain" });
        }
        Ok(())
    }

    fn index(&mut self, org: &Organization) {
        self.by_slug.insert(org.slug.clone(), org.id);
        for domain in &org.domains {
            self.by_domain.insert(domain.clone(), org.id);
        }
    }

    fn unindex(&mut self, org: &Organization) {
        self.by_slug.remove(&org.slug);
        for domain in &org.domains {
            self.by_domain.remove(domain);
        }
    }

    fn require_org(&self, id: OrgId) -> StoreResult<()> {
        if self.orgs.contains_key(&id) {
            Ok(())
        } else {
            Err(StoreError::Missing {
                what: "organization",
            })
        }
    }

    fn org_members(&self, org: OrgId) -> impl Iterator<Item = &Membership> {
        // The nil UUID is the smallest id: the range starts at the organization's first member.
        let from = (org, UserId::from_uuid(Default::default()));
        self.members
            .range(from..)
            .take_while(move |((o, _), _)| *o == org)
            .map(|(_, m)| m)
    }

    fn claims_on<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = &'a DomainClaim> {
        // The nil UUID is the smallest id: the range starts at the domain's first claim.
        let from = (domain.to_owned(), OrgId::from_uuid(Default::default()));
        self.domain_claims
            .range(from..)
            .take_while(move |((d, _), _)| d == domain)
            .map(|(_, c)| c)
    }

    /// Refuses when an organization other than `org` holds a verified claim on `domain`.
    fn check_unverified_elsewhere(&self, org: OrgId, domain: &str) -> StoreResult<()> {
        if self
            .claims_on(domain)
            .any(|c| c.org_id != org && c.verified_at.is_some())
        {
            return Err(StoreError::Conflict { what: "domain" });
        }
        Ok(())
    }
}

#[async_trait]
impl OrgStore for MemoryStore {
    async fn create_org(&self, org: &Organization) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        if t.orgs.contains_key(&org.id) {
            return Err(StoreError::Conflict {
                what: "organization",
            });
        }
        t.check_unique(org)?;
        t.index(org);
        t.orgs.insert(org.id, org.clone());
        Ok(())
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        Ok(read(&self.orgs).orgs.get(&id).cloned())
    }

    async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        let t = read(&self.orgs);
        Ok(t.by_slug.get(slug).and_then(|id| t.orgs.get(id)).cloned())
    }

    async fn get_org_by_domain(&self, domain: &str) -> StoreResult<Option<Organization>> {
        let t = read(&self.orgs);
        Ok(t.by_domain
            .get(domain)
            .and_then(|id| t.orgs.get(id))
            .cloned())
    }

    async fn update_org(&self, org: &Organization) -> StoreResult<u64> {
        let mut t = write(&self.orgs);
        let stored = t.orgs.get(&org.id).cloned().ok_or(StoreError::Missing {
            what: "organization",
        })?;
        if stored.revision != org.revision {
            return Err(StoreError::Stale);
        }
        t.check_unique(org)?;
        t.unindex(&stored);
        t.index(org);
        let revision = org.revision.saturating_add(1);
        let mut updated = org.clone();
        updated.revision = revision;
        t.orgs.insert(org.id, updated);
        Ok(revision)
    }

    async fn delete_org(&self, id: OrgId) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        let Some(org) = t.orgs.remove(&id) else {
            return Ok(false);
        };
        t.unindex(&org);
        t.apps.retain(|_, app| app.org_id != id);
        t.roles.retain(|_, role| role.org_id != id);
        t.permissions.retain(|_, p| p.org_id != id);
        let users: Vec<UserId> = t.org_members(id).map(|m| m.user_id).collect();
        for user in users {
            t.members.remove(&(id, user));
            t.by_user.remove(&(user, id));
        }
        let credentials: Vec<ApiCredential> = t
            .api_credentials
            .values()
            .filter(|c| c.org_id == id)
            .cloned()
            .collect();
        for credential in credentials {
            t.api_credentials.remove(&credential.id);
            t.api_by_hash.remove(&credential.secret_hash);
        }
        t.sso_connections.retain(|_, c| c.org_id != id);
        t.domain_claims.retain(|_, c| c.org_id != id);
        Ok(true)
    }

    async fn create_api_credential(&self, credential: &ApiCredential) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(credential.org_id)?;
        if t.api_credentials.contains_key(&credential.id)
            || t.api_by_hash.contains_key(&credential.secret_hash)
        {
            return Err(StoreError::Conflict {
                what: "api_credential",
            });
        }
        t.api_by_hash.insert(credential.secret_hash, credential.id);
        t.api_credentials.insert(credential.id, credential.clone());
        Ok(())
    }

    async fn get_api_credential_by_hash(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<ApiCredential>> {
        let t = read(&self.orgs);
        Ok(t.api_by_hash
            .get(hash)
            .and_then(|id| t.api_credentials.get(id))
            .cloned())
    }

    async fn list_api_credentials(&self, org: OrgId) -> StoreResult<Vec<ApiCredential>> {
        let t = read(&self.orgs);
        Ok(t.api_credentials
            .values()
            .filter(|c| c.org_id == org)
            .cloned()
            .collect())
    }

    async fn update_api_credential(&self, credential: &ApiCredential) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        let Some(stored) = t
            .api_credentials
            .get_mut(&credential.id)
            .filter(|c| c.org_id == credential.org_id)
        else {
            return Ok(false);
        };
        stored.name = credential.name.clone();
        stored.last_used_at = credential.last_used_at.max(stored.last_used_at);
        stored.revoked_at = stored.revoked_at.or(credential.revoked_at);
        Ok(true)
    }

    async fn list_orgs(&self, page: &PageRequest) -> StoreResult<Page<Organization>> {
        let after: Option<OrgId> = parse_cursor(page)?;
        let t = read(&self.orgs);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let items = t
            .orgs
            .range((start, Bound::Unbounded))
            .map(|(_, o)| o.clone());
        Ok(paginate(items, page, |o| o.id))
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(app.org_id)?;
        if t.apps.contains_key(&app.client_id) {
            return Err(StoreError::Conflict { what: "client_id" });
        }
        t.apps.insert(app.client_id.clone(), app.clone());
        Ok(())
    }

    async fn get_app(&self, client_id: &ClientId) -> StoreResult<Option<App>> {
        Ok(read(&self.orgs).apps.get(client_id).cloned())
    }

    async fn list_apps(&self, org: OrgId) -> StoreResult<Vec<App>> {
        let t = read(&self.orgs);
        let mut apps: Vec<App> = t
            .apps
            .values()
            .filter(|a| a.org_id == org)
            .cloned()
            .collect();
        apps.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(apps)
    }

    async fn update_app(&self, app: &App) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        let Some(stored) = t.apps.get_mut(&app.client_id) else {
            return Ok(false);
        };
        *stored = App {
            org_id: stored.org_id,
            created_at: stored.created_at,
            ..app.clone()
        };
        Ok(true)
    }

    async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool> {
        Ok(write(&self.orgs).apps.remove(client_id).is_some())
    }

    async fn put_permission(&self, permission: &PermissionDef) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(permission.org_id)?;
        let clash = t.permissions.values().any(|p| {
            p.org_id == permission.org_id && p.name == permission.name && p.id != permission.id
        });
        let moved = t
            .permissions
            .get(&permission.id)
            .is_some_and(|p| p.org_id != permission.org_id);
        if clash || moved {
            return Err(StoreError::Conflict { what: "permission" });
        }
        t.permissions.insert(permission.id, permission.clone());
        Ok(())
    }

    async fn list_permissions(&self, org: OrgId) -> StoreResult<Vec<PermissionDef>> {
        let t = read(&self.orgs);
        Ok(t.permissions
            .values()
            .filter(|p| p.org_id == org)
            .cloned()
            .collect())
    }

    async fn delete_permission(&self, org: OrgId, id: PermissionId) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        if t.permissions.get(&id).is_none_or(|p| p.org_id != org) {
            return Ok(false);
        }
        if t.permissions.remove(&id).is_none() {
            return Ok(false);
        }
        for role in t.roles.values_mut().filter(|r| r.org_id == org) {
            role.permission_ids.retain(|p| *p != id);
        }
        Ok(true)
    }

    async fn put_role(&self, role: &Role) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(role.org_id)?;
        let clash = t
            .roles
            .values()
            .any(|r| r.org_id == role.org_id && r.name == role.name && r.id != role.id);
        let moved = t
            .roles
            .get(&role.id)
            .is_some_and(|r| r.org_id != role.org_id);
        if clash || moved {
            return Err(StoreError::Conflict { what: "role" });
        }
        t.roles.insert(role.id, role.clone());
        Ok(())
    }

    async fn get_role(&self, org: OrgId, id: RoleId) -> StoreResult<Option<Role>> {
        let t = read(&self.orgs);
        Ok(t.roles.get(&id).filter(|r| r.org_id == org).cloned())
    }

    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>> {
        let t = read(&self.orgs);
        Ok(t.roles
            .values()
            .filter(|r| r.org_id == org)
            .cloned()
            .collect())
    }

    async fn delete_role(&self, org: OrgId, id: RoleId) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        if t.roles.get(&id).is_none_or(|r| r.org_id != org) {
            return Ok(false);
        }
        t.roles.remove(&id);
        let keys: Vec<(OrgId, UserId)> =
            t.org_members(org).map(|m| (m.org_id, m.user_id)).collect();
        for key in keys {
            if let Some(membership) = t.members.get_mut(&key) {
                membership.role_ids.retain(|r| *r != id);
            }
        }
        Ok(true)
    }

    async fn put_membership(&self, membership: &Membership) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(membership.org_id)?;
        let foreign_role = membership.role_ids.iter().any(|id| {
            t.roles
                .get(id)
                .is_none_or(|r| r.org_id != membership.org_id)
        });
        if foreign_role {
            return Err(StoreError::Missing { what: "role" });
        }
        let key = (membership.org_id, membership.user_id);
        t.members.insert(key, membership.clone());
        t.by_user.insert((membership.user_id, membership.org_id));
        Ok(())
    }

    async fn get_membership(&self, user: UserId, org: OrgId) -> StoreResult<Option<Membership>> {
        Ok(read(&self.orgs).members.get(&(org, user)).cloned())
    }

    async fn list_memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let t = read(&self.orgs);
        Ok(t.by_user
            .range((user, OrgId::from_uuid(Default::default()))..)
            .take_while(|(u, _)| *u == user)
            .filter_map(|(u, o)| t.members.get(&(*o, *u)).cloned())
            .collect())
    }

    async fn list_members(&self, org: OrgId, page: &PageRequest) -> StoreResult<Page<Membership>> {
        let after: Option<UserId> = parse_cursor(page)?;
        let t = read(&self.orgs);
        let items = t
            .org_members(org)
            .filter(|m| after.is_none_or(|a| m.user_id > a))
            .cloned();
        Ok(paginate(items, page, |m| m.user_id))
    }

    async fn delete_membership(&self, user: UserId, org: OrgId) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        t.by_user.remove(&(user, org));
        Ok(t.members.remove(&(org, user)).is_some())
    }

    async fn delete_memberships_of_user(&self, user: UserId) -> StoreResult<u64> {
        let mut t = write(&self.orgs);
        let orgs: Vec<OrgId> = t
            .by_user
            .range((user, OrgId::from_uuid(Default::default()))..)
            .take_while(|(u, _)| *u == user)
            .map(|(_, o)| *o)
            .collect();
        for org in &orgs {
            t.by_user.remove(&(user, *org));
            t.members.remove(&(*org, user));
        }
        Ok(orgs.len() as u64)
    }

    async fn create_sso_connection(&self, connection: &SsoConnection) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(connection.org_id)?;
        if t.sso_connections.contains_key(&connection.id) {
            return Err(StoreError::Conflict {
                what: "sso_connection",
            });
        }
        t.sso_connections.insert(connection.id, connection.clone());
        Ok(())
    }

    async fn get_sso_connection(&self, id: ConnectionId) -> StoreResult<Option<SsoConnection>> {
        Ok(read(&self.orgs).sso_connections.get(&id).cloned())
    }

    async fn list_sso_connections(&self, org: OrgId) -> StoreResult<Vec<SsoConnection>> {
        let t = read(&self.orgs);
        Ok(t.sso_connections
            .values()
            .filter(|c| c.org_id == org)
            .cloned()
            .collect())
    }

    async fn update_sso_connection(&self, connection: &SsoConnection) -> StoreResult<u64> {
        let mut t = write(&self.orgs);
        let stored = t
            .sso_connections
            .get_mut(&connection.id)
            .filter(|c| c.org_id == connection.org_id)
            .ok_or(StoreError::Missing {
                what: "sso_connection",
            })?;
        if stored.revision != connection.revision {
            return Err(StoreError::Stale);
        }
        let revision = connection.revision.saturating_add(1);
        *stored = connection.clone();
        stored.revision = revision;
        Ok(revision)
    }

    async fn delete_sso_connection(&self, org: OrgId, id: ConnectionId) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        if t.sso_connections.get(&id).is_none_or(|c| c.org_id != org) {
            return Ok(false);
        }
        Ok(t.sso_connections.remove(&id).is_some())
    }

    async fn put_domain_claim(&self, claim: &DomainClaim) -> StoreResult<()> {
        let mut t = write(&self.orgs);
        t.require_org(claim.org_id)?;
        t.check_unverified_elsewhere(claim.org_id, &claim.domain)?;
        t.domain_claims
            .insert((claim.domain.clone(), claim.org_id), claim.clone());
        Ok(())
    }

    async fn domain_claims(&self, domain: &str) -> StoreResult<Vec<DomainClaim>> {
        Ok(read(&self.orgs).claims_on(domain).cloned().collect())
    }

    async fn list_domain_claims(&self, org: OrgId) -> StoreResult<Vec<DomainClaim>> {
        let t = read(&self.orgs);
        Ok(t.domain_claims
            .values()
            .filter(|c| c.org_id == org)
            .cloned()
            .collect())
    }

    async fn verify_domain_claim(
        &self,
        org: OrgId,
        domain: &str,
        token: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        let key = (domain.to_owned(), org);
        if t.domain_claims.get(&key).is_none_or(|c| c.token != token) {
            return Ok(false);
        }
        t.check_unverified_elsewhere(org, domain)?;
        let Some(claim) = t.domain_claims.get_mut(&key) else {
            return Ok(false);
        };
        claim.verified_at = Some(at);
        Ok(true)
    }

    async fn delete_domain_claim(&self, org: OrgId, domain: &str) -> StoreResult<bool> {
        let mut t = write(&self.orgs);
        Ok(t.domain_claims.remove(&(domain.to_owned(), org)).is_some())
    }
}
