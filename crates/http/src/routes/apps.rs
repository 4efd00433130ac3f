//! An organization's apps (the OpenID provider's clients), administered (`apps:read`,
//! `apps:write`), and a person's own consents to them.

use http::StatusCode;
use portcullis::directory::{AppUpdate, NewApp};
use portcullis::model::{App, ApplicationType, ClientId, ClientSettings, OrgId, TokenAuthMethod};
use portcullis::{Portcullis, RequestContext};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Bearer, Caller, Json, Path, claims_allow, parse_id};
use crate::views::List;

/// Reading an organization's apps.
pub const APPS_READ: &str = "apps:read";
/// Creating, changing, deleting apps and rotating their secrets.
pub const APPS_WRITE: &str = "apps:write";

/// An app as the API shows it. The secret only once: at creation or rotation.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppView {
    /// The client id (`app_…`).
    pub client_id: String,
    /// Its organization.
    pub org_id: String,
    /// Display name (shown on the consent page).
    pub name: String,
    /// Whether it holds a secret.
    pub confidential: bool,
    /// `web` or `native`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub application_type: ApplicationType,
    /// How it authenticates at the token endpoint.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token_endpoint_auth_method: TokenAuthMethod,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes it may ask for.
    pub scopes: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// No consent screen.
    pub first_party: bool,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// The client secret: present only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl AppView {
    fn of(app: &App, secret: Option<&portcullis::crypto::ClientSecret>) -> Self {
        AppView {
            client_id: app.client_id.as_str().to_owned(),
            org_id: app.org_id.to_string(),
            name: app.name.clone(),
            confidential: app.is_confidential(),
            application_type: app.client.application_type,
            token_endpoint_auth_method: app.auth_method(),
            redirect_uris: app.redirect_uris.clone(),
            post_logout_redirect_uris: app.client.post_logout_redirect_uris.clone(),
            scopes: app.client.scopes.clone(),
            grant_types: app.client.grant_types.clone(),
            first_party: app.client.first_party,
            created_at: app.created_at.unix_secs(),
            client_secret: secret.map(|s| s.secret().to_owned()),
        }
    }
}

/// `POST /organizations/{id}/apps` (and, every field optional, `PATCH /apps/{client_id}`).
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    /// Display name, 1 to 100 characters.
    pub name: Option<String>,
    /// A confidential client (a server) gets a secret, shown once. Creation only.
    pub confidential: Option<bool>,
    /// `web` (default) or `native`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub application_type: Option<ApplicationType>,
    /// `client_secret_basic` (a confidential client's default), `client_secret_post`, or
    /// `none` (a public client's).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// Exact redirect URIs: `https` (a native app: loopback `http` on any port, or a
    /// private-use scheme), no wildcard, fragment or credentials.
    pub redirect_uris: Option<Vec<String>>,
    /// Exact post-logout redirect URIs, under the same rules.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Of `openid profile email phone offline_access roles` (default all but `roles`).
    pub scopes: Option<Vec<String>>,
    /// Of `authorization_code refresh_token` (default both).
    pub grant_types: Option<Vec<String>>,
    /// No consent screen: an installation administrator's call only.
    pub first_party: Option<bool>,
}

impl AppRequest {
    fn settings(&self, base: &ClientSettings) -> ClientSettings {
        let mut client = base.clone();
        if let Some(kind) = self.application_type {
            client.application_type = kind;
        }
        if let Some(method) = self.token_endpoint_auth_method {
            client.token_endpoint_auth_method = Some(method);
        }
        if let Some(uris) = &self.post_logout_redirect_uris {
            client.post_logout_redirect_uris = uris.clone();
        }
        if let Some(scopes) = &self.scopes {
            client.scopes = scopes.clone();
        }
        if let Some(grants) = &self.grant_types {
            client.grant_types = grants.clone();
        }
        if let Some(first_party) = self.first_party {
            client.first_party = first_party;
        }
        client
    }
}

/// Whether the caller administers the installation (not only an organization): the
/// bootstrap key, or `apps:write` held in the default organization. Only such a caller
/// may make an app first-party (checklist OP-07).
async fn installation_admin(auth: &Portcullis, caller: &Caller) -> HttpResult<bool> {
    let default = auth.orgs().default_org().await?.id;
    Ok(match caller {
        Caller::Bootstrap => true,
        Caller::Key(info) => info.org_id == default && info.allows(APPS_WRITE),
        Caller::User(claims) => matches!(
            claims_allow(auth, claims, APPS_WRITE).await?,
            Some((org, true)) if org == default
        ),
        Caller::Setup(_) => false,
    })
}

/// The app, if the caller may act on its organization's apps with `permission` (404 for
/// an app of an organization the caller cannot see, as for a missing one).
async fn app_for(
    auth: &Portcullis,
    caller: &Caller,
    client_id: &str,
    permission: &str,
) -> HttpResult<App> {
    let client_id = ClientId::new(client_id)?;
    let app = auth.orgs().app(&client_id).await?;
    if caller
        .require(auth, permission, Some(app.org_id))
        .await
        .is_err()
    {
        return Err(HttpError::from(portcullis::Error::NotFound { what: "app" }));
    }
    Ok(app)
}

/// An organization's apps (`apps:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/apps", tag = "apps",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = List<AppView>)),
    security(("bearer" = []))))]
pub async fn list(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<AppView>>> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, APPS_READ, Some(org)).await?;
    auth.orgs().get(org).await?;
    let apps = auth.orgs().apps(org).await?;
    Ok(Json(List::all(
        apps.iter().map(|a| AppView::of(a, None)).collect(),
    )))
}

/// Register an app (`apps:write`); a confidential one's secret is in this answer only.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/apps", tag = "apps",
    params(("id" = String, Path, format = Uuid)), request_body = AppRequest,
    responses((status = 201, body = AppView)), security(("bearer" = []))))]
pub async fn create(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<AppRequest>),
) -> HttpResult<(StatusCode, Json<AppView>)> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, APPS_WRITE, Some(org)).await?;
    if body.first_party == Some(true) && !installation_admin(auth, &caller).await? {
        return Err(HttpError::forbidden());
    }
    auth.orgs().get(org).await?;
    let mut new = NewApp::default();
    new.name = body.name.clone().unwrap_or_default();
    new.redirect_uris = body.redirect_uris.clone().unwrap_or_default();
    new.confidential = body.confidential.unwrap_or(false);
    new.client = body.settings(&ClientSettings::default());
    let created = auth.orgs().create_app(org, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(AppView::of(&created.app, created.client_secret.as_ref())),
    ))
}

/// One app (`apps:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/apps/{client_id}", tag = "apps",
    params(("client_id" = String, Path)), responses((status = 200, body = AppView)),
    security(("bearer" = []))))]
pub async fn get(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(client_id)): (Caller, Path<String>),
) -> HttpResult<Json<AppView>> {
    let app = app_for(auth, &caller, &client_id, APPS_READ).await?;
    Ok(Json(AppView::of(&app, None)))
}

/// Change an app (`apps:write`): what the body names is replaced; a change of redirect
/// URIs is logged.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/apps/{client_id}", tag = "apps",
    params(("client_id" = String, Path)), request_body = AppRequest,
    responses((status = 200, body = AppView)), security(("bearer" = []))))]
pub async fn update(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(client_id), Json(body)): (Caller, Path<String>, Json<AppRequest>),
) -> HttpResult<Json<AppView>> {
    let app = app_for(auth, &caller, &client_id, APPS_WRITE).await?;
    if body.confidential.is_some() {
        return Err(HttpError::invalid(
            "confidential is fixed at creation: register a new app",
        ));
    }
    if body
        .first_party
        .is_some_and(|first| first != app.client.first_party)
        && !installation_admin(auth, &caller).await?
    {
        return Err(HttpError::forbidden());
    }
    let mut update = AppUpdate::default();
    update.name = body.name.clone();
    update.redirect_uris = body.redirect_uris.clone();
    update.client = Some(body.settings(&app.client));
    let app = auth.orgs().update_app(&app.client_id, &update).await?;
    Ok(Json(AppView::of(&app, None)))
}

/// Delete an app (`apps:write`): its client id stops working at once.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/apps/{client_id}", tag = "apps",
    params(("client_id" = String, Path)), responses((status = 204)), security(("bearer" = []))))]
pub async fn delete(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(client_id)): (Caller, Path<String>),
) -> HttpResult<StatusCode> {
    let app = app_for(auth, &caller, &client_id, APPS_WRITE).await?;
    auth.orgs().delete_app(&app.client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a confidential app a new secret (`apps:write`), in this answer only; the old one
/// stops working at once.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/apps/{client_id}/secret", tag = "apps",
    params(("client_id" = String, Path)), responses((status = 200, body = AppView)),
    security(("bearer" = []))))]
pub async fn rotate_secret(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(client_id)): (Caller, Path<String>),
) -> HttpResult<Json<AppView>> {
    let app = app_for(auth, &caller, &client_id, APPS_WRITE).await?;
    let secret = auth.orgs().rotate_app_secret(&app.client_id).await?;
    Ok(Json(AppView::of(&app, Some(&secret))))
}

/// A consent the bearer gave an app.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentView {
    /// The app.
    pub client_id: String,
    /// The scopes consented to.
    pub scopes: Vec<String>,
    /// When (Unix seconds).
    pub granted_at: i64,
}

/// The bearer's consents to apps.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/consents", tag = "apps",
    responses((status = 200, body = List<ConsentView>)), security(("bearer" = []))))]
pub async fn consents(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<List<ConsentView>>> {
    let consents = auth.provider().consents(bearer.claims.sub).await?;
    Ok(Json(List::all(
        consents
            .into_iter()
            .map(|c| ConsentView {
                client_id: c.client_id.as_str().to_owned(),
                scopes: c.scopes,
                granted_at: c.granted_at.unix_secs(),
            })
            .collect(),
    )))
}

/// Revoke the bearer's consent to an app: it asks again next time.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/auth/consents/{client_id}", tag = "apps",
    params(("client_id" = String, Path)), responses((status = 204)), security(("bearer" = []))))]
pub async fn revoke_consent(
    auth: &Portcullis,
    _ctx: RequestContext,
    (bearer, Path(client_id)): (Bearer, Path<String>),
) -> HttpResult<StatusCode> {
    let client_id = ClientId::new(client_id)?;
    auth.provider()
        .revoke_consent(bearer.claims.sub, &client_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
