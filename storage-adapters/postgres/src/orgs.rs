//! `OrgStore`: organizations with unique slugs and domains; apps, permissions, roles,
//! memberships, API credentials, SSO connections and domain claims that go with their
//! organization (foreign keys).

use async_trait::async_trait;
use portcullis::crypto::SecretHash;
use portcullis::model::{
    ApiCredential, ApiCredentialId, App, ClientId, ConnectionId, DomainClaim, Membership, OrgId,
    Organization, Page, PageRequest, Permission, PermissionDef, PermissionId, Role, RoleId,
    SsoConnection, UserId,
};
use portcullis::store::{OrgStore, StoreResult};
use portcullis::{StoreError, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::rows::{Run, after, col, fetch_limit, int, page, secret_hash, ts, ts_opt, uint};
use crate::{Db, PgStore};

macro_rules! org_columns {
    () => {
        "id, name, slug, domains, settings, created_at, updated_at, revision"
    };
}

fn org(row: &PgRow) -> StoreResult<Organization> {
    const W: &str = "organization";
    Ok(Organization {
        id: OrgId::from_uuid(col(row, "id", W)?),
        name: col(row, "name", W)?,
        slug: col(row, "slug", W)?,
        domains: col(row, "domains", W)?,
        settings: col(row, "settings", W)?,
        created_at: ts(row, "created_at", W)?,
        updated_at: ts(row, "updated_at", W)?,
        revision: uint(row, "revision", W)?,
    })
}

macro_rules! app_columns {
    () => {
        "client_id, org_id, name, secret_hash, redirect_uris, created_at, client"
    };
}

fn app(row: &PgRow) -> StoreResult<App> {
    const W: &str = "app";
    Ok(App {
        client_id: ClientId::new(col::<String>(row, "client_id", W)?)
            .map_err(|_| StoreError::Corrupt { what: W })?,
        org_id: OrgId::from_uuid(col(row, "org_id", W)?),
        name: col(row, "name", W)?,
        secret_hash: col::<Option<Vec<u8>>>(row, "secret_hash", W)?
            .map(|h| secret_hash(h, W))
            .transpose()?,
        redirect_uris: col(row, "redirect_uris", W)?,
        created_at: ts(row, "created_at", W)?,
        client: serde_json::from_value(col(row, "client", W)?)
            .map_err(|_| StoreError::Corrupt { what: W })?,
    })
}

fn client_json(a: &App) -> StoreResult<serde_json::Value> {
    serde_json::to_value(&a.client).map_err(|_| StoreError::Corrupt { what: "app" })
}

macro_rules! permission_columns {
    () => {
        "id, org_id, name, description, created_at"
    };
}

fn permission(row: &PgRow) -> StoreResult<PermissionDef> {
    const W: &str = "permission";
    Ok(PermissionDef {
        id: PermissionId::from_uuid(col(row, "id", W)?),
        org_id: OrgId::from_uuid(col(row, "org_id", W)?),
        name: names(vec![col(row, "name", W)?], W)?
            .pop()
            .ok_or(StoreError::Corrupt { what: W })?,
        description: col(row, "description", W)?,
        created_at: ts(row, "created_at", W)?,
    })
}

/// A role with its permission ids, in the role's order.
macro_rules! role_columns {
    () => {
        "r.id, r.org_id, r.name, r.description, r.wildcards, r.created_at, \
     r.updated_at, ARRAY(SELECT rp.permission_id FROM role_permissions rp \
       WHERE rp.role_id = r.id ORDER BY rp.position) AS permission_ids"
    };
}

fn role(row: &PgRow) -> StoreResult<Role> {
    const W: &str = "role";
    Ok(Role {
        id: RoleId::from_uuid(col(row, "id", W)?),
        org_id: OrgId::from_uuid(col(row, "org_id", W)?),
        name: col(row, "name", W)?,
        description: col(row, "description", W)?,
        permission_ids: col::<Vec<Uuid>>(row, "permission_ids", W)?
            .into_iter()
            .map(PermissionId::from_uuid)
            .collect(),
        wildcards: names(col(row, "wildcards", W)?, W)?,
        created_at: ts(row, "created_at", W)?,
        updated_at: ts(row, "updated_at", W)?,
    })
}

/// A membership with its role ids, in the membership's order.
macro_rules! membership_columns {
    () => {
        "m.org_id, m.user_id, m.created_at, m.self_joined, \
     ARRAY(SELECT mr.role_id FROM membership_roles mr \
       WHERE mr.org_id = m.org_id AND mr.user_id = m.user_id ORDER BY mr.position) AS role_ids"
    };
}

fn membership(row: &PgRow) -> StoreResult<Membership> {
    const W: &str = "membership";
    Ok(Membership {
        user_id: UserId::from_uuid(col(row, "user_id", W)?),
        org_id: OrgId::from_uuid(col(row, "org_id", W)?),
        role_ids: col::<Vec<Uuid>>(row, "role_ids", W)?
            .into_iter()
            .map(RoleId::from_uuid)
            .collect(),
        created_at: ts(row, "created_at", W)?,
        self_joined: col(row, "self_joined", W)?,
    })
}

macro_rules! credential_columns {
    () => {
        "id, org_id, name, secret_hash, scopes, created_at, expires_at, \
     last_used_at, revoked_at"
    };
}

fn credential(row: &PgRow) -> StoreResult<ApiCredential> {
    const W: &str = "api_credential";
    Ok(ApiCredential {
        id: ApiCredentialId::from_uuid(col(row, "id", W)?),
        org_id: OrgId::from_uuid(col(row, "org_id", W)?),
        name: col(row, "name", W)?,
        secret_hash: secret_hash(col(row, "secret_hash", W)?, W)?,
        scopes: names(col(row, "scopes", W)?, W)?,
        created_at: ts(row, "created_at", W)?,
        expires_at: ts_opt(row, "expires_at", W)?,
        last_used_at: ts_opt(row, "last_used_at", W)?,
        revoked_at: ts_opt(row, "revoked_at", W)?,
    })
}

/// A connection is stored whole as JSON; its organization and revision are columns too.
fn connection(row: &PgRow) -> StoreResult<SsoConnection> {
    const W: &str = "sso_connection";
    let Json(mut connection) = col::<Json<SsoConnection>>(row, "doc", W)?;
    // The columns are what the cascade and the compare-and-swap act on: they win.
    connection.org_id = OrgId::from_uuid(col(row, "org_id", W)?);
    connection.revision = uint(row, "revision", W)?;
    Ok(connection)
}

macro_rules! claim_columns {
    () => {
        "org_id, domain, token, created_at, expires_at, verified_at"
    };
}

fn claim(row: &PgRow) -> StoreResult<DomainClaim> {
    const W: &str = "domain_claim";
    let mut claim = DomainClaim::new(
        OrgId::from_uuid(col(row, "org_id", W)?),
        col::<String>(row, "domain", W)?,
        col::<String>(row, "token", W)?,
        ts(row, "created_at", W)?,
        ts(row, "expires_at", W)?,
    );
    claim.verified_at = ts_opt(row, "verified_at", W)?;
    Ok(claim)
}

fn names(texts: Vec<String>, what: &'static str) -> StoreResult<Vec<Permission>> {
    texts
        .into_iter()
        .map(|t| Permission::new(t).map_err(|_| StoreError::Corrupt { what }))
        .collect()
}

fn texts(permissions: &[Permission]) -> Vec<&str> {
    permissions.iter().map(Permission::as_str).collect()
}

/// The statements that replace an ordered list of ids one row owns: delete its links,
/// insert the new ones in order (each takes the organization and the owner as `$1`, `$2`).
struct Links {
    delete: &'static str,
    insert: &'static str,
}

const ROLE_PERMISSIONS: Links = Links {
    delete: "DELETE FROM role_permissions WHERE org_id = $1 AND role_id = $2",
    insert: "INSERT INTO role_permissions (org_id, role_id, permission_id, position) \
             SELECT $1, $2, l.id, l.position \
             FROM unnest($3::uuid[]) WITH ORDINALITY AS l(id, position) \
             ON CONFLICT DO NOTHING",
};

const MEMBERSHIP_ROLES: Links = Links {
    delete: "DELETE FROM membership_roles WHERE org_id = $1 AND user_id = $2",
    insert: "INSERT INTO membership_roles (org_id, user_id, role_id, position) \
             SELECT $1, $2, l.id, l.position \
             FROM unnest($3::uuid[]) WITH ORDINALITY AS l(id, position) \
             ON CONFLICT DO NOTHING",
};

/// Replaces the ids `owner` links to, keeping their order, within `tx`.
async fn replace_links<'a>(
    tx: &mut Transaction<'static, Postgres>,
    links: Links,
    org: OrgId,
    owner: &Uuid,
    ids: impl Iterator<Item = &'a Uuid>,
) -> StoreResult<()> {
    let ids: Vec<Uuid> = ids.copied().collect();
    sqlx::query(links.delete)
        .bind(org.as_uuid())
        .bind(owner)
        .execute(&mut **tx)
        .await
        .db()?;
    sqlx::query(links.insert)
        .bind(org.as_uuid())
        .bind(owner)
        .bind(ids)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(())
}

/// Replaces an organization's domains (unique across organizations: `org_domains_pkey`).
async fn index_domains(
    tx: &mut Transaction<'static, Postgres>,
    org: &Organization,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM org_domains WHERE org_id = $1")
        .bind(org.id.as_uuid())
        .execute(&mut **tx)
        .await
        .db()?;
    sqlx::query("INSERT INTO org_domains (domain, org_id) SELECT unnest($1::text[]), $2")
        .bind(&org.domains)
        .bind(org.id.as_uuid())
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(())
}

/// Makes `update` of an upsert that matched a row of another organization a conflict.
fn one_written(rows: u64, what: &'static str) -> StoreResult<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict { what })
    }
}

#[async_trait]
impl OrgStore for PgStore {
    async fn create_org(&self, o: &Organization) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(concat!(
            "INSERT INTO organizations (",
            org_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(o.id.as_uuid())
        .bind(&o.name)
        .bind(&o.slug)
        .bind(&o.domains)
        .bind(&o.settings)
        .bind(o.created_at.unix_millis())
        .bind(o.updated_at.unix_millis())
        .bind(int(o.revision)?)
        .execute(&mut *tx)
        .await
        .db()?;
        index_domains(&mut tx, o).await?;
        tx.commit().await.db()
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        sqlx::query(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .one(&self.pool, org)
        .await
    }

    async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        sqlx::query(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations WHERE slug = $1"
        ))
        .bind(slug)
        .one(&self.pool, org)
        .await
    }

    async fn get_org_by_domain(&self, domain: &str) -> StoreResult<Option<Organization>> {
        sqlx::query(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations \
             WHERE id = (SELECT org_id FROM org_domains WHERE domain = $1)"
        ))
        .bind(domain)
        .one(&self.pool, org)
        .await
    }

    async fn update_org(&self, o: &Organization) -> StoreResult<u64> {
        let revision = o.revision.saturating_add(1);
        let mut tx = self.pool.begin().await.db()?;
        let updated = sqlx::query(
            "UPDATE organizations SET name = $3, slug = $4, domains = $5, settings = $6, \
             created_at = $7, updated_at = $8, revision = $9 WHERE id = $1 AND revision = $2",
        )
        .bind(o.id.as_uuid())
        .bind(int(o.revision)?)
        .bind(&o.name)
        .bind(&o.slug)
        .bind(&o.domains)
        .bind(&o.settings)
        .bind(o.created_at.unix_millis())
        .bind(o.updated_at.unix_millis())
        .bind(int(revision)?)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if updated != 1 {
            drop(tx);
            return match self.get_org(o.id).await? {
                Some(_) => Err(StoreError::Stale),
                None => Err(StoreError::Missing {
                    what: "organization",
                }),
            };
        }
        index_domains(&mut tx, o).await?;
        tx.commit().await.db()?;
        Ok(revision)
    }

    async fn delete_org(&self, id: OrgId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(id.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn list_orgs(&self, req: &PageRequest) -> StoreResult<Page<Organization>> {
        let start: Option<OrgId> = after(req)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations WHERE ($1::uuid IS NULL OR id > $1) \
             ORDER BY id LIMIT $2"
        ))
        .bind(start.map(|id| *id.as_uuid()))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let orgs = rows.iter().map(org).collect::<StoreResult<Vec<_>>>()?;
        Ok(page(orgs, req, |o| o.id))
    }

    async fn create_app(&self, a: &App) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO apps (",
            app_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(a.client_id.as_str())
        .bind(a.org_id.as_uuid())
        .bind(&a.name)
        .bind(a.secret_hash.as_ref().map(|h| &h.as_bytes()[..]))
        .bind(&a.redirect_uris)
        .bind(a.created_at.unix_millis())
        .bind(client_json(a)?)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn update_app(&self, a: &App) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE apps SET name = $2, secret_hash = $3, redirect_uris = $4, client = $5 \
             WHERE client_id = $1",
        )
        .bind(a.client_id.as_str())
        .bind(&a.name)
        .bind(a.secret_hash.as_ref().map(|h| &h.as_bytes()[..]))
        .bind(&a.redirect_uris)
        .bind(client_json(a)?)
        .affected(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    async fn get_app(&self, client_id: &ClientId) -> StoreResult<Option<App>> {
        sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE client_id = $1"
        ))
        .bind(client_id.as_str())
        .one(&self.pool, app)
        .await
    }

    async fn list_apps(&self, org: OrgId) -> StoreResult<Vec<App>> {
        sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE org_id = $1 ORDER BY created_at, client_id"
        ))
        .bind(org.as_uuid())
        .all(&self.pool, app)
        .await
    }

    async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM apps WHERE client_id = $1")
            .bind(client_id.as_str())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn put_permission(&self, p: &PermissionDef) -> StoreResult<()> {
        let written = sqlx::query(concat!(
            "INSERT INTO permissions (",
            permission_columns!(),
            ") VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
               description = EXCLUDED.description, created_at = EXCLUDED.created_at \
             WHERE permissions.org_id = EXCLUDED.org_id"
        ))
        .bind(p.id.as_uuid())
        .bind(p.org_id.as_uuid())
        .bind(p.name.as_str())
        .bind(p.description.as_deref())
        .bind(p.created_at.unix_millis())
        .affected(&self.pool)
        .await?;
        one_written(written, "permission")
    }

    async fn list_permissions(&self, org: OrgId) -> StoreResult<Vec<PermissionDef>> {
        sqlx::query(concat!(
            "SELECT ",
            permission_columns!(),
            " FROM permissions WHERE org_id = $1 ORDER BY id"
        ))
        .bind(org.as_uuid())
        .all(&self.pool, permission)
        .await
    }

    async fn delete_permission(&self, org: OrgId, id: PermissionId) -> StoreResult<bool> {
        // role_permissions' foreign key removes the id from every role.
        let deleted = sqlx::query("DELETE FROM permissions WHERE id = $1 AND org_id = $2")
            .bind(id.as_uuid())
            .bind(org.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn put_role(&self, r: &Role) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        let written = sqlx::query(
            "INSERT INTO roles (id, org_id, name, description, wildcards, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
               description = EXCLUDED.description, wildcards = EXCLUDED.wildcards, \
               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at \
             WHERE roles.org_id = EXCLUDED.org_id",
        )
        .bind(r.id.as_uuid())
        .bind(r.org_id.as_uuid())
        .bind(&r.name)
        .bind(r.description.as_deref())
        .bind(texts(&r.wildcards))
        .bind(r.created_at.unix_millis())
        .bind(r.updated_at.unix_millis())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        one_written(written, "role")?;
        // A permission of another organization fails role_permissions_permission_fkey.
        let ids = r.permission_ids.iter().map(PermissionId::as_uuid);
        replace_links(&mut tx, ROLE_PERMISSIONS, r.org_id, r.id.as_uuid(), ids).await?;
        tx.commit().await.db()
    }

    async fn get_role(&self, org: OrgId, id: RoleId) -> StoreResult<Option<Role>> {
        sqlx::query(concat!(
            "SELECT ",
            role_columns!(),
            " FROM roles r WHERE r.id = $1 AND r.org_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .one(&self.pool, role)
        .await
    }

    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>> {
        sqlx::query(concat!(
            "SELECT ",
            role_columns!(),
            " FROM roles r WHERE r.org_id = $1 ORDER BY r.id"
        ))
        .bind(org.as_uuid())
        .all(&self.pool, role)
        .await
    }

    async fn delete_role(&self, org: OrgId, id: RoleId) -> StoreResult<bool> {
        // membership_roles' foreign key removes it from every membership.
        let deleted = sqlx::query("DELETE FROM roles WHERE id = $1 AND org_id = $2")
            .bind(id.as_uuid())
            .bind(org.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn put_membership(&self, m: &Membership) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, created_at, self_joined) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET created_at = EXCLUDED.created_at, \
               self_joined = EXCLUDED.self_joined",
        )
        .bind(m.org_id.as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.created_at.unix_millis())
        .bind(m.self_joined)
        .execute(&mut *tx)
        .await
        .db()?;
        // A role of another organization fails membership_roles_role_fkey: Missing "role".
        let ids = m.role_ids.iter().map(RoleId::as_uuid);
        replace_links(
            &mut tx,
            MEMBERSHIP_ROLES,
            m.org_id,
            m.user_id.as_uuid(),
            ids,
        )
        .await?;
        tx.commit().await.db()
    }

    async fn get_membership(&self, user: UserId, org: OrgId) -> StoreResult<Option<Membership>> {
        sqlx::query(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM memberships m WHERE m.org_id = $1 AND m.user_id = $2"
        ))
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .one(&self.pool, membership)
        .await
    }

    async fn list_memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        sqlx::query(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM memberships m WHERE m.user_id = $1 ORDER BY m.org_id"
        ))
        .bind(user.as_uuid())
        .all(&self.pool, membership)
        .await
    }

    async fn list_members(&self, org: OrgId, req: &PageRequest) -> StoreResult<Page<Membership>> {
        let start: Option<UserId> = after(req)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM memberships m \
             WHERE m.org_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2) \
             ORDER BY m.user_id LIMIT $3"
        ))
        .bind(org.as_uuid())
        .bind(start.map(|id| *id.as_uuid()))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let members = rows
            .iter()
            .map(membership)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page(members, req, |m| m.user_id))
    }

    async fn delete_membership(&self, user: UserId, org: OrgId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn create_api_credential(&self, c: &ApiCredential) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO api_credentials (",
            credential_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(c.id.as_uuid())
        .bind(c.org_id.as_uuid())
        .bind(&c.name)
        .bind(&c.secret_hash.as_bytes()[..])
        .bind(texts(&c.scopes))
        .bind(c.created_at.unix_millis())
        .bind(c.expires_at.map(|t| t.unix_millis()))
        .bind(c.last_used_at.map(|t| t.unix_millis()))
        .bind(c.revoked_at.map(|t| t.unix_millis()))
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_api_credential_by_hash(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<ApiCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM api_credentials WHERE secret_hash = $1"
        ))
        .bind(&hash.as_bytes()[..])
        .one(&self.pool, credential)
        .await
    }

    async fn list_api_credentials(&self, org: OrgId) -> StoreResult<Vec<ApiCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM api_credentials WHERE org_id = $1 ORDER BY id"
        ))
        .bind(org.as_uuid())
        .all(&self.pool, credential)
        .await
    }

    async fn update_api_credential(&self, c: &ApiCredential) -> StoreResult<bool> {
        // last_used_at only moves forward; a revocation is never cleared (GREATEST and
        // COALESCE skip NULLs).
        let updated = sqlx::query(
            "UPDATE api_credentials SET name = $3, \
               last_used_at = GREATEST(last_used_at, $4), \
               revoked_at = COALESCE(revoked_at, $5) \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(c.id.as_uuid())
        .bind(c.org_id.as_uuid())
        .bind(&c.name)
        .bind(c.last_used_at.map(|t| t.unix_millis()))
        .bind(c.revoked_at.map(|t| t.unix_millis()))
        .affected(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    async fn delete_memberships_of_user(&self, user: UserId) -> StoreResult<u64> {
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(user.as_uuid())
            .affected(&self.pool)
            .await
    }

    async fn create_sso_connection(&self, c: &SsoConnection) -> StoreResult<()> {
        // sso_connections_pkey: Conflict "sso_connection"; the organization's foreign key:
        // Missing "organization".
        sqlx::query(
            "INSERT INTO sso_connections (id, org_id, revision, doc) VALUES ($1, $2, $3, $4)",
        )
        .bind(c.id.as_uuid())
        .bind(c.org_id.as_uuid())
        .bind(int(c.revision)?)
        .bind(Json(c))
        .affected(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_sso_connection(&self, id: ConnectionId) -> StoreResult<Option<SsoConnection>> {
        sqlx::query("SELECT org_id, revision, doc FROM sso_connections WHERE id = $1")
            .bind(id.as_uuid())
            .one(&self.pool, connection)
            .await
    }

    async fn list_sso_connections(&self, org: OrgId) -> StoreResult<Vec<SsoConnection>> {
        sqlx::query(
            "SELECT org_id, revision, doc FROM sso_connections WHERE org_id = $1 ORDER BY id",
        )
        .bind(org.as_uuid())
        .all(&self.pool, connection)
        .await
    }

    async fn update_sso_connection(&self, c: &SsoConnection) -> StoreResult<u64> {
        let revision = c.revision.saturating_add(1);
        let mut updated = c.clone();
        updated.revision = revision;
        let written = sqlx::query(
            "UPDATE sso_connections SET revision = $4, doc = $5 \
             WHERE id = $1 AND org_id = $2 AND revision = $3",
        )
        .bind(c.id.as_uuid())
        .bind(c.org_id.as_uuid())
        .bind(int(c.revision)?)
        .bind(int(revision)?)
        .bind(Json(&updated))
        .affected(&self.pool)
        .await?;
        if written == 1 {
            return Ok(revision);
        }
        let exists = sqlx::query("SELECT 1 FROM sso_connections WHERE id = $1 AND org_id = $2")
            .bind(c.id.as_uuid())
            .bind(c.org_id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .db()?;
        match exists {
            Some(_) => Err(StoreError::Stale),
            None => Err(StoreError::Missing {
                what: "sso_connection",
            }),
        }
    }

    async fn delete_sso_connection(&self, org: OrgId, id: ConnectionId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM sso_connections WHERE id = $1 AND org_id = $2")
            .bind(id.as_uuid())
            .bind(org.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn put_domain_claim(&self, c: &DomainClaim) -> StoreResult<()> {
        // One statement: nothing is written while another organization's verified claim is
        // committed, and a verified claim written here meets domain_claims_verified.
        let written = sqlx::query(concat!(
            "INSERT INTO domain_claims (",
            claim_columns!(),
            ") SELECT $1::uuid, $2::text, $3::text, $4::bigint, $5::bigint, $6::bigint \
             WHERE NOT EXISTS (SELECT 1 FROM domain_claims \
               WHERE domain = $2 AND org_id <> $1 AND verified_at IS NOT NULL) \
             ON CONFLICT (org_id, domain) DO UPDATE SET token = EXCLUDED.token, \
               created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, \
               verified_at = EXCLUDED.verified_at"
        ))
        .bind(c.org_id.as_uuid())
        .bind(&c.domain)
        .bind(&c.token)
        .bind(c.created_at.unix_millis())
        .bind(c.expires_at.unix_millis())
        .bind(c.verified_at.map(|t| t.unix_millis()))
        .affected(&self.pool)
        .await?;
        if written == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict { what: "domain" })
        }
    }

    async fn domain_claims(&self, domain: &str) -> StoreResult<Vec<DomainClaim>> {
        sqlx::query(concat!(
            "SELECT ",
            claim_columns!(),
            " FROM domain_claims WHERE domain = $1 ORDER BY org_id"
        ))
        .bind(domain)
        .all(&self.pool, claim)
        .await
    }

    async fn list_domain_claims(&self, org: OrgId) -> StoreResult<Vec<DomainClaim>> {
        sqlx::query(concat!(
            "SELECT ",
            claim_columns!(),
            " FROM domain_claims WHERE org_id = $1 ORDER BY domain COLLATE \"C\""
        ))
        .bind(org.as_uuid())
        .all(&self.pool, claim)
        .await
    }

    async fn verify_domain_claim(
        &self,
        org: OrgId,
        domain: &str,
        token: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        // Another organization's verified claim fails domain_claims_verified: Conflict "domain".
        let verified = sqlx::query(
            "UPDATE domain_claims SET verified_at = $4 \
             WHERE org_id = $1 AND domain = $2 AND token = $3",
        )
        .bind(org.as_uuid())
        .bind(domain)
        .bind(token)
        .bind(at.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(verified == 1)
    }

    async fn delete_domain_claim(&self, org: OrgId, domain: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM domain_claims WHERE org_id = $1 AND domain = $2")
            .bind(org.as_uuid())
            .bind(domain)
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn permissions_of(&self, user: UserId, org: OrgId) -> StoreResult<Vec<Permission>> {
        // One round trip: the names of the member's roles' permissions and wildcards.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT p.name FROM membership_roles mr \
               JOIN role_permissions rp ON rp.role_id = mr.role_id \
               JOIN permissions p ON p.id = rp.permission_id \
             WHERE mr.org_id = $1 AND mr.user_id = $2 \
             UNION \
             SELECT unnest(r.wildcards) FROM membership_roles mr \
               JOIN roles r ON r.id = mr.role_id \
             WHERE mr.org_id = $1 AND mr.user_id = $2",
        )
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut granted = names(rows, "permission")?;
        granted.sort();
        granted.dedup();
        Ok(granted)
    }
}
