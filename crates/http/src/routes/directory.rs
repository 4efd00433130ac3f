//! Management routes: organizations, roles, permissions, users.
//!
//! Each needs an API credential (`lk_…`), the bootstrap key, or a user token holding the
//! permission named in its description; see [`Caller::require`] for which organization
//! a credential acts for.

use crate::{Reply, Response};
use http::StatusCode;
use portcullis::{Portcullis, RequestContext};

use portcullis::crypto::OneTimeCode;
use portcullis::model::{
    Membership, OrgId, Organization, PermissionDef, PermissionId, RequestId, Role, RoleId, UserId,
};
use portcullis::store::UserQuery;
use portcullis::{NewOrg, NewUser, OrgSettings, OrgUpdate, RoleSpec, UserStatus, UserUpdate};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Bearer, Caller, Json, Path, Query, parse_id};
use crate::routes::passwordless::SentBody;
use crate::views::{List, LoginEvent, PageQuery, UserView};

type Created<T> = HttpResult<(StatusCode, Json<T>)>;

/// `POST /organizations`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgRequest {
    /// Display name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// URL-safe unique name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
    )]
    pub slug: String,
    /// Custom domains (unique across organizations).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Vec<crate::views::items::HostName>))]
    pub domains: Vec<String>,
    /// Sign-in methods, MFA rule, branding, session lifetime, templates.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<OrgSettings>,
}

/// `PATCH /organizations/{id}`: only the fields given change.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgPatch {
    /// Display name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// URL-safe unique name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
    )]
    pub slug: Option<String>,
    /// Custom domains (replaces the list).
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Option<Vec<crate::views::items::HostName>>))]
    pub domains: Option<Vec<String>>,
    /// Settings (replaces them).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<OrgSettings>,
}

fn org_id(text: &str) -> HttpResult<OrgId> {
    parse_id(text)
}

/// Create an organization (`organizations:write`, default organization's credential).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations", tag = "organizations",
    request_body = OrgRequest, responses((status = 201, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn create_org(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Json(body)): (Caller, Json<OrgRequest>),
) -> Created<Organization> {
    caller.require(auth, "organizations:write", None).await?;
    let mut new = NewOrg::new(body.name, body.slug);
    new.domains = body.domains;
    new.settings = body.settings.unwrap_or_default();
    Ok((StatusCode::CREATED, Json(auth.orgs().create(new).await?)))
}

/// Page through organizations (`organizations:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations", tag = "organizations",
    params(PageQuery), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn list_orgs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Query(query)): (Caller, Query<PageQuery>),
) -> HttpResult<Json<List<serde_json::Value>>> {
    caller.require(auth, "organizations:read", None).await?;
    let page = auth.orgs().list(&query.page()?).await?;
    Ok(Json(List::page(page, |org| {
        serde_json::to_value(org).unwrap_or_default()
    })))
}

/// One organization (`organizations:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn get_org(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<Organization>> {
    let id = org_id(&id)?;
    caller.require(auth, "organizations:read", Some(id)).await?;
    Ok(Json(auth.orgs().get(id).await?))
}

/// Change an organization (`organizations:write`).
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, format = Uuid)), request_body = OrgPatch,
    responses((status = 200, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn update_org(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<OrgPatch>),
) -> HttpResult<Json<Organization>> {
    let id = org_id(&id)?;
    caller
        .require(auth, "organizations:write", Some(id))
        .await?;
    let mut update = OrgUpdate::default();
    update.name = body.name;
    update.slug = body.slug;
    update.domains = body.domains;
    update.settings = body.settings;
    Ok(Json(auth.orgs().update(id, &update).await?))
}

/// Delete an organization, its roles, memberships and sessions (`organizations:write`,
/// default organization's credential).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}", tag = "organizations",
    params(("id" = String, Path, format = Uuid)), responses((status = 204)), security(("bearer" = []))))]
pub async fn delete_org(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<StatusCode> {
    let id = org_id(&id)?;
    caller.require(auth, "organizations:write", None).await?;
    auth.orgs().delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public configuration of an organization's app: sign-in methods and branding.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/by-client-id/{client_id}/config", tag = "organizations",
    params(("client_id" = String, Path, pattern = r"^[!-~]{1,128}$")), responses((status = 200, body = serde_json::Value))))]
pub async fn config_by_client_id(
    auth: &Portcullis,
    _ctx: RequestContext,
    Path(client_id): Path<String>,
) -> HttpResult<Json<portcullis::directory::PublicConfig>> {
    Ok(Json(auth.orgs().config_by_client_id(&client_id).await?))
}

/// The public configuration of the organization on a custom domain.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/by-domain/{domain}/config", tag = "organizations",
    params(("domain" = String, Path)), responses((status = 200, body = serde_json::Value))))]
pub async fn config_by_domain(
    auth: &Portcullis,
    _ctx: RequestContext,
    Path(domain): Path<String>,
) -> HttpResult<Json<portcullis::directory::PublicConfig>> {
    Ok(Json(auth.orgs().config_by_domain(&domain).await?))
}

/// `POST /organizations/{id}/roles`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleRequest {
    /// Unique in the organization.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// What it is for.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub description: Option<String>,
    /// Permission names (`invoices:read`, or `invoices:*`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, value_type = Vec<crate::views::items::Grant>))]
    pub permissions: Vec<String>,
}

/// `PATCH /organizations/{id}/roles/{role_id}`: only the fields given change.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolePatch {
    /// New name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// New description.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub description: Option<String>,
    /// New permission names (replaces them).
    #[cfg_attr(feature = "openapi", schema(max_items = 100, value_type = Option<Vec<crate::views::items::Grant>>))]
    pub permissions: Option<Vec<String>>,
}

fn spec(name: String, description: Option<String>, permissions: &[String]) -> RoleSpec {
    let names: Vec<&str> = permissions.iter().map(String::as_str).collect();
    let spec = RoleSpec::new(name, &names);
    match description {
        Some(d) => spec.describe(d),
        None => spec,
    }
}

/// A role as the API shows it: the names of what it grants (its permissions as they are
/// called now, and its wildcards).
#[derive(Serialize)]
pub struct RoleView {
    /// The role's id.
    pub id: RoleId,
    /// Its organization.
    pub org_id: OrgId,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// What it grants, by name.
    pub permissions: Vec<portcullis::model::Permission>,
    /// When it was created.
    pub created_at: portcullis::Timestamp,
    /// When it last changed.
    pub updated_at: portcullis::Timestamp,
}

impl RoleView {
    fn of(role: Role, defined: &[PermissionDef]) -> Self {
        RoleView {
            permissions: role.grants(defined),
            id: role.id,
            org_id: role.org_id,
            name: role.name,
            description: role.description,
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// The organization's roles (`roles:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/roles", tag = "roles",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn list_roles(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<serde_json::Value>>> {
    let org = org_id(&id)?;
    caller.require(auth, "roles:read", Some(org)).await?;
    auth.orgs().get(org).await?; // a deleted organization has no roles to list: 404
    let roles = auth.rbac().roles(org).await?;
    let defined = auth.rbac().permissions(org).await?;
    Ok(Json(List::all(
        roles
            .into_iter()
            .map(|r| serde_json::to_value(RoleView::of(r, &defined)).unwrap_or_default())
            .collect(),
    )))
}

/// Create a role (`roles:write`).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/roles", tag = "roles",
    params(("id" = String, Path, format = Uuid)), request_body = RoleRequest,
    responses((status = 201, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn create_role(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<RoleRequest>),
) -> Created<RoleView> {
    let org = org_id(&id)?;
    caller.require(auth, "roles:write", Some(org)).await?;
    let spec = spec(body.name, body.description, &body.permissions);
    let role = auth.rbac().create_role(org, &spec).await?;
    let defined = auth.rbac().permissions(org).await?;
    Ok((StatusCode::CREATED, Json(RoleView::of(role, &defined))))
}

/// Change a role (`roles:write`); its holders' next tokens carry the change.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/organizations/{id}/roles/{role_id}", tag = "roles",
    params(("id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)), request_body = RolePatch,
    responses((status = 200, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn update_role(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, role_id)), Json(body)): (Caller, Path<(String, String)>, Json<RolePatch>),
) -> HttpResult<Json<RoleView>> {
    let org = org_id(&id)?;
    caller.require(auth, "roles:write", Some(org)).await?;
    let role_id: RoleId = parse_id(&role_id)?;
    let role = auth.rbac().role(org, role_id).await?;
    let defined = auth.rbac().permissions(org).await?;
    let permissions = match body.permissions {
        Some(p) => p,
        None => role
            .grants(&defined)
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    };
    let spec = spec(
        body.name.unwrap_or(role.name),
        body.description.or(role.description),
        &permissions,
    );
    let role = auth.rbac().update_role(org, role_id, &spec).await?;
    Ok(Json(RoleView::of(role, &defined)))
}

/// Delete a role (`roles:write`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/roles/{role_id}", tag = "roles",
    params(("id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn delete_role(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, role_id))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let org = org_id(&id)?;
    caller.require(auth, "roles:write", Some(org)).await?;
    auth.rbac().delete_role(org, parse_id(&role_id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /organizations/{id}/permissions`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionRequest {
    /// `resource:action`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}$")
    )]
    pub name: String,
    /// What it allows.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub description: Option<String>,
}

/// `PATCH /organizations/{id}/permissions/{perm_id}`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionPatch {
    /// The new description (`null` clears it).
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub description: Option<String>,
}

/// The organization's permissions (`permissions:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/permissions", tag = "permissions",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn list_permissions(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<serde_json::Value>>> {
    let org = org_id(&id)?;
    caller.require(auth, "permissions:read", Some(org)).await?;
    auth.orgs().get(org).await?; // a deleted organization has no permissions to list: 404
    let defs = auth.rbac().permissions(org).await?;
    Ok(Json(List::all(
        defs.iter()
            .map(|d| serde_json::to_value(d).unwrap_or_default())
            .collect(),
    )))
}

/// Define a permission (`permissions:write`).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/permissions", tag = "permissions",
    params(("id" = String, Path, format = Uuid)), request_body = PermissionRequest,
    responses((status = 201, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn create_permission(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<PermissionRequest>),
) -> Created<PermissionDef> {
    let org = org_id(&id)?;
    caller.require(auth, "permissions:write", Some(org)).await?;
    let def = auth
        .rbac()
        .define_permission(org, &body.name, body.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(def)))
}

/// Change a permission's description (`permissions:write`).
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/organizations/{id}/permissions/{perm_id}", tag = "permissions",
    params(("id" = String, Path, format = Uuid), ("perm_id" = String, Path, format = Uuid)), request_body = PermissionPatch,
    responses((status = 200, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn update_permission(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, perm_id)), Json(body)): (
        Caller,
        Path<(String, String)>,
        Json<PermissionPatch>,
    ),
) -> HttpResult<Json<PermissionDef>> {
    let org = org_id(&id)?;
    caller.require(auth, "permissions:write", Some(org)).await?;
    let perm: PermissionId = parse_id(&perm_id)?;
    let def = auth
        .rbac()
        .describe_permission(org, perm, body.description.as_deref())
        .await?;
    Ok(Json(def))
}

/// Delete a permission (`permissions:write`); roles that name it lose it.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/permissions/{perm_id}", tag = "permissions",
    params(("id" = String, Path, format = Uuid), ("perm_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn delete_permission(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, perm_id))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let org = org_id(&id)?;
    caller.require(auth, "permissions:write", Some(org)).await?;
    auth.rbac()
        .delete_permission(org, parse_id(&perm_id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users` filters and paging.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct UserListQuery {
    /// Items per page (1 to 100; default 20).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[cfg_attr(feature = "openapi", param(min_length = 1))]
    pub cursor: Option<String>,
    /// Only users whose email starts with this.
    pub email: Option<String>,
}

/// Page through users (`users:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users", tag = "users",
    params(UserListQuery), responses((status = 200, body = List<UserView>)),
    security(("bearer" = []))))]
pub async fn list_users(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Query(query)): (Caller, Query<UserListQuery>),
) -> HttpResult<Json<List<UserView>>> {
    caller.require(auth, "users:read", None).await?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let filter = match query.email {
        Some(prefix) => UserQuery::email_prefix(prefix.trim().to_lowercase()),
        None => UserQuery::all(),
    };
    let users = auth.users().list(&filter, &page).await?;
    Ok(Json(List::page(users, |u| UserView::from(u))))
}

fn user_id(text: &str) -> HttpResult<UserId> {
    parse_id(text)
}

/// One user (`users:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = UserView)),
    security(("bearer" = []))))]
pub async fn get_user(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<UserView>> {
    caller.require(auth, "users:read", None).await?;
    Ok(Json(UserView::from(
        &auth.users().get(user_id(&id)?).await?,
    )))
}

/// One user by email (`users:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/by-email/{email}", tag = "users",
    params(("email" = String, Path, format = Email)), responses((status = 200, body = UserView)),
    security(("bearer" = []))))]
pub async fn get_user_by_email(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(email)): (Caller, Path<String>),
) -> HttpResult<Json<UserView>> {
    caller.require(auth, "users:read", None).await?;
    Ok(Json(UserView::from(
        &auth.users().get_by_email(&email).await?,
    )))
}

/// `POST /users`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRequest {
    /// Email (unique).
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: Option<String>,
    /// Phone, E.164 (unique).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{6,14}$"))]
    pub phone: Option<String>,
    /// Display name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// Application data.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Mark the email verified (you checked it yourself).
    #[serde(default)]
    pub email_verified: bool,
    /// Mark the phone verified.
    #[serde(default)]
    pub phone_verified: bool,
}

/// Create a user (`users:write`).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/users", tag = "users",
    request_body = UserRequest, responses((status = 201, body = UserView)),
    security(("bearer" = []))))]
pub async fn create_user(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Json(body)): (Caller, Json<UserRequest>),
) -> Created<UserView> {
    caller.require(auth, "users:write", None).await?;
    let mut new = NewUser::default();
    new.email = body.email;
    new.phone = body.phone;
    new.name = body.name;
    new.metadata = body.metadata.unwrap_or(serde_json::Value::Null);
    new.email_verified = body.email_verified;
    new.phone_verified = body.phone_verified;
    let user = auth.users().create(new, &ctx).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// A field that may be absent (unchanged), `null` (cleared) or a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /users/{id}`: absent fields stay, `null` clears.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    /// Email (`null` removes it). A new address is not set at once: it receives a code,
    /// and the change waits for it (`202`, see [`update_user`]).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: Option<Option<String>>,
    /// Phone (`null` removes it).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{6,14}$"))]
    pub phone: Option<Option<String>>,
    /// Display name (`null` removes it).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"))]
    pub name: Option<Option<String>>,
    /// Application data (replaces it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Whether the current address is verified.
    pub email_verified: Option<bool>,
    /// Phone verified.
    pub phone_verified: Option<bool>,
    /// Block (`true`: ends every session) or unblock.
    pub blocked: Option<bool>,
}

/// A `PATCH /users/{id}` that asked for a new email address: the other changes are made,
/// the address is pending.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatched {
    /// The user, still with the old address.
    pub user: UserView,
    /// The pending change: confirm it with `POST /users/{id}/email/confirm` and the code
    /// the new address received.
    pub email_change: SentBody,
}

/// Change a user (`users:write`). A new email address is not set at once (checklist
/// ACC-01): a code goes to it, the other changes are made, and the answer is `202` with
/// the pending request; `POST /users/{id}/email/confirm` with that code applies it, and the
/// old address then gets a link that undoes it. Otherwise `200` with the user.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid)), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 202, body = UserPatched)),
    security(("bearer" = []))))]
pub async fn update_user(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<UserPatch>),
) -> HttpResult<Response> {
    caller.require(auth, "users:write", None).await?;
    let id = user_id(&id)?;
    let users = auth.users();
    let current = users.get(id).await?;
    // A new address waits for its owner; the same address again is no change.
    let new_email = match &body.email {
        Some(Some(text)) => {
            let email = portcullis::Email::parse(text)?;
            (current.email.as_ref() != Some(&email)).then_some(email)
        }
        _ => None,
    };
    let mut update = UserUpdate::default();
    if new_email.is_none() {
        update.email = body.email;
    }
    update.phone = body.phone;
    update.name = body.name;
    update.metadata = body.metadata;
    update.email_verified = body.email_verified;
    update.phone_verified = body.phone_verified;
    let changes_fields = update.email.is_some()
        || update.phone.is_some()
        || update.name.is_some()
        || update.metadata.is_some()
        || update.email_verified.is_some()
        || update.phone_verified.is_some();
    if changes_fields {
        users.update(id, &update, &ctx).await?;
    }
    match body.blocked {
        Some(true) => users.block(id, &ctx).await?,
        Some(false) => users.unblock(id, &ctx).await?,
        None => {}
    }
    let pending = match new_email {
        Some(email) => Some(users.request_email_change(id, email.as_str(), &ctx).await?),
        None => None,
    };
    let user = UserView::from(&users.get(id).await?);
    Ok(match pending {
        Some(sent) => (
            StatusCode::ACCEPTED,
            Json(UserPatched {
                user,
                email_change: sent.into(),
            }),
        )
            .into_response(),
        None => Json(user).into_response(),
    })
}

/// `POST /users/{id}/email/confirm`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailConfirmRequest {
    /// From the `202` of `PATCH /users/{id}`.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: String,
    /// The code the new address received.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: String,
}

/// Apply a pending email change with the code the new address received (`users:write`):
/// the address becomes the user's, verified; every session of the user ends; the old
/// address gets a link that undoes the change. A wrong code, an unknown or used request,
/// or an address another account holds: `401 invalid_credentials`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/users/{id}/email/confirm", tag = "users",
    params(("id" = String, Path, format = Uuid)), request_body = EmailConfirmRequest,
    responses((status = 200, body = UserView)), security(("bearer" = []))))]
pub async fn confirm_user_email(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<EmailConfirmRequest>),
) -> HttpResult<Json<UserView>> {
    caller.require(auth, "users:write", None).await?;
    let id = user_id(&id)?;
    let request_id: RequestId = parse_id(&body.request_id)?;
    let user = auth
        .users()
        .confirm_email_change(id, request_id, &OneTimeCode::new(body.code), None, &ctx)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// Delete a user and everything of theirs (`users:write`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 204)), security(("bearer" = []))))]
pub async fn delete_user(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<StatusCode> {
    caller.require(auth, "users:write", None).await?;
    auth.users().delete(user_id(&id)?, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's verified, blocked and locked state, and their factors (`users:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/{id}/status", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn user_status(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<UserStatus>> {
    caller.require(auth, "users:read", None).await?;
    Ok(Json(auth.users().status(user_id(&id)?).await?))
}

/// `PUT /users/{id}/organizations/{org_id}/roles`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolesRequest {
    /// Role names in the organization (replaces the user's roles there).
    #[cfg_attr(feature = "openapi", schema(max_items = 100, value_type = Vec<crate::views::items::RoleName>))]
    pub roles: Vec<String>,
}

/// A user's membership of an organization.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipView {
    /// The organization.
    pub org_id: String,
    /// Its name.
    pub org_name: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Joined (Unix ms).
    pub created_at: i64,
}

async fn membership_view(auth: &Portcullis, m: &Membership) -> HttpResult<MembershipView> {
    let roles = auth.rbac().roles(m.org_id).await?;
    let org = auth.orgs().get(m.org_id).await.ok();
    Ok(MembershipView {
        org_id: m.org_id.to_string(),
        org_name: org.map(|o| o.name),
        roles: roles
            .into_iter()
            .filter(|r| m.role_ids.contains(&r.id))
            .map(|r| r.name)
            .collect(),
        created_at: m.created_at.unix_millis(),
    })
}

/// Set a user's roles in an organization, by name (`roles:write`).
#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/users/{id}/organizations/{org_id}/roles", tag = "users",
    params(("id" = String, Path, format = Uuid), ("org_id" = String, Path, format = Uuid)), request_body = RolesRequest,
    responses((status = 200, body = MembershipView)), security(("bearer" = []))))]
pub async fn set_roles(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path((id, org)), Json(body)): (Caller, Path<(String, String)>, Json<RolesRequest>),
) -> HttpResult<Json<MembershipView>> {
    let (user, org) = (user_id(&id)?, org_id(&org)?);
    caller.require(auth, "roles:write", Some(org)).await?;
    let ids = role_ids(auth, org, &body.roles).await?;
    let rbac = auth.rbac();
    let membership = match rbac.set_roles(user, org, &ids, &ctx).await {
        // Joining someone to an organization without asking them is the installation's
        // call alone; an organization's administrators invite.
        Err(portcullis::Error::NotFound { what: "membership" }) => {
            caller.require(auth, "users:write", None).await?;
            rbac.add_member(user, org, &ids, &ctx).await?
        }
        other => other?,
    };
    Ok(Json(membership_view(auth, &membership).await?))
}

/// The ids of an organization's roles, by name.
async fn role_ids(auth: &Portcullis, org: OrgId, names: &[String]) -> HttpResult<Vec<RoleId>> {
    let defined = auth.rbac().roles(org).await?;
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let role = defined.iter().find(|r| &r.name == name).ok_or_else(|| {
            HttpError::invalid(format!("no role named {name:?} in this organization"))
        })?;
        ids.push(role.id);
    }
    Ok(ids)
}

/// `POST /organizations/{id}/invitations`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationRequest {
    /// Whom to invite: only a user who proved this address can accept.
    #[cfg_attr(feature = "openapi", schema(format = "email"))]
    pub email: String,
    /// Role names in the organization, given on joining.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, value_type = Vec<crate::views::items::RoleName>))]
    pub roles: Vec<String>,
}

/// An invitation just made.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationView {
    /// Give it to the person invited; it is shown only here.
    pub token: String,
    /// The organization.
    pub org_id: String,
    /// The invited address.
    pub email: String,
    /// Seconds it can be accepted for.
    pub expires_in: u64,
}

/// Invite someone into an organization (`roles:write`): they join by accepting it, signed
/// in with the invited address proven.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/invitations", tag = "organizations",
    params(("id" = String, Path, format = Uuid)), request_body = InvitationRequest,
    responses((status = 201, body = InvitationView)), security(("bearer" = []))))]
pub async fn invite(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<InvitationRequest>),
) -> Created<InvitationView> {
    let org = org_id(&id)?;
    caller.require(auth, "roles:write", Some(org)).await?;
    let ids = role_ids(auth, org, &body.roles).await?;
    let made = auth.rbac().invite(org, &body.email, &ids, &ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationView {
            token: made.token.secret().to_owned(),
            org_id: made.org_id.to_string(),
            email: made.email.as_str().to_owned(),
            expires_in: made.expires_in.as_secs(),
        }),
    ))
}

/// `POST /invitations/accept`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptInvitation {
    /// The invitation's token.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token: String,
}

/// Accept an invitation: the bearer joins its organization, if their verified address is
/// the invited one (403 otherwise).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/invitations/accept", tag = "organizations",
    request_body = AcceptInvitation, responses((status = 200, body = MembershipView)),
    security(("bearer" = []))))]
pub async fn accept_invitation(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Json(body)): (Bearer, Json<AcceptInvitation>),
) -> HttpResult<Json<MembershipView>> {
    let token = portcullis::crypto::InvitationToken::new(&body.token);
    let membership = auth
        .rbac()
        .accept_invitation(bearer.claims.sub, &token, &ctx)
        .await?;
    Ok(Json(membership_view(auth, &membership).await?))
}

/// A user's organizations and roles (`users:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/{id}/organizations", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = List<MembershipView>)),
    security(("bearer" = []))))]
pub async fn user_orgs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<MembershipView>>> {
    caller.require(auth, "users:read", None).await?;
    let user = auth.users().get(user_id(&id)?).await?; // a deleted user: 404
    let memberships = auth.rbac().memberships(user.id).await?;
    let mut items = Vec::with_capacity(memberships.len());
    for m in &memberships {
        items.push(membership_view(auth, m).await?);
    }
    Ok(Json(List::all(items)))
}

/// A user's login events, newest first (`users:read`, or the user themself).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/{id}/login-logs", tag = "users",
    params(("id" = String, Path, format = Uuid), PageQuery), responses((status = 200, body = List<LoginEvent>)),
    security(("bearer" = []))))]
pub async fn login_logs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Query(query)): (Caller, Path<String>, Query<PageQuery>),
) -> HttpResult<Json<List<LoginEvent>>> {
    let id = user_id(&id)?;
    if caller.user().is_none_or(|claims| claims.sub != id) {
        caller.require(auth, "users:read", None).await?;
    }
    let page = auth.audit().login_log(id, &query.page()?).await?;
    Ok(Json(List::page(page, |e| LoginEvent::from(e))))
}
