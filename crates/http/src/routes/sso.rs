//! Single sign-on: the redirect to an organization's identity provider and back, Google,
//! home-realm discovery, and the management of connections and domains (`sso:manage`,
//! for administrators of the organization or installation credentials).

use http::StatusCode;
use http::header::{LOCATION, SET_COOKIE};
use portcullis::flows::sso::ConnectionSettings;
use portcullis::model::{ConnectionId, DomainClaim, OrgId, Preset};
use portcullis::tokens::AuthCodeRequest;
use portcullis::{Portcullis, RequestContext, SignIn, SsoOptions, SsoTarget};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Caller, FromCall, Json, Path, Query, parse_id};
use crate::views::{List, SignInBody};
use crate::{Api, Call, Response};

/// The permission every connection and domain route needs in the organization.
pub const SSO_MANAGE: &str = "sso:manage";

/// The cookie that binds a started sign-in to its browser.
const BINDING_COOKIE: &str = "portcullis_sso";

/// The `Cookie` header's value for the SSO binding, if the browser sent one.
pub struct SsoCookie(Option<String>);

impl FromCall for SsoCookie {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        let found = call.header(http::header::COOKIE).and_then(|cookies| {
            cookies.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == BINDING_COOKIE).then(|| value.to_owned())
            })
        });
        Ok(SsoCookie(found))
    }
}

/// `GET /sso/{connection_id}/authorize`: how the sign-in should end.
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuthorizeQuery {
    /// End with an authorization code sent here (a redirect flow; needs `client_id` and
    /// a PKCE S256 `code_challenge`).
    pub redirect_uri: Option<String>,
    /// The app the code is for.
    pub client_id: Option<String>,
    /// `BASE64URL(SHA-256(code_verifier))`.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// The app's state, handed back with the code.
    pub state: Option<String>,
    /// `true`: a test sign-in through a draft connection, by its administrator.
    #[serde(default)]
    pub test: bool,
    /// Instead of a connection id (`/sso/discover/authorize`): the person's email.
    pub email: Option<String>,
}

fn options(query: AuthorizeQuery) -> HttpResult<SsoOptions> {
    let code_request =
        match query.redirect_uri {
            Some(redirect_uri) => Some(AuthCodeRequest::new(
                portcullis::model::ClientId::new(query.client_id.ok_or_else(|| {
                    HttpError::invalid("client_id is required with redirect_uri")
                })?)?,
                redirect_uri,
                query.code_challenge.unwrap_or_default(),
                query.code_challenge_method.as_deref().unwrap_or("S256"),
            )?),
            None => None,
        };
    Ok(SsoOptions {
        code_request,
        app_state: query.state,
        test: query.test,
    })
}

fn redirect(auth: &Portcullis, sso: portcullis::SsoRedirect) -> Response {
    let secure = if auth.public_origin().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BINDING_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
        sso.browser_binding.as_str()
    );
    Response::empty(StatusCode::FOUND)
        .header(LOCATION, &sso.url)
        .header(SET_COOKIE, cookie)
        .header(http::header::CACHE_CONTROL, "no-store")
}

/// Start a sign-in through a connection: a redirect to the identity provider.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/sso/{connection_id}/authorize", tag = "sso",
    params(("connection_id" = String, Path, format = Uuid), AuthorizeQuery),
    responses((status = 302, description = "to the identity provider"))))]
pub async fn authorize(
    auth: &Portcullis,
    ctx: RequestContext,
    (Path(id), Query(query)): (Path<String>, Query<AuthorizeQuery>),
) -> HttpResult<Response> {
    let id: ConnectionId = parse_id(&id)?;
    let started = auth
        .sso()
        .start(SsoTarget::Connection(id), options(query)?, &ctx)
        .await?;
    Ok(redirect(auth, started))
}

/// Start a Google sign-in: the organization's Google connection, else the installation's.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/social/google/authorize", tag = "sso",
    params(AuthorizeQuery), responses((status = 302, description = "to Google"))))]
pub async fn google_authorize(
    auth: &Portcullis,
    ctx: RequestContext,
    Query(query): Query<AuthorizeQuery>,
) -> HttpResult<Response> {
    let connection = auth.sso().social(Preset::Google, &ctx).await?;
    let started = auth
        .sso()
        .start(SsoTarget::Connection(connection.id), options(query)?, &ctx)
        .await?;
    Ok(redirect(auth, started))
}

/// `GET /sso/callback`: what the provider sends back.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// Our state.
    pub state: Option<String>,
    /// The issuer (RFC 9207).
    pub iss: Option<String>,
    /// The provider's error code, if it refused (never echoed back).
    pub error: Option<String>,
}

/// Finish a sign-in: tokens, an MFA step, or a redirect to the app with `code` and
/// `state`.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/sso/callback", tag = "sso",
    params(CallbackQuery), responses((status = 200, body = SignInBody), (status = 302, description = "to the app"))))]
pub async fn callback(
    auth: &Portcullis,
    ctx: RequestContext,
    (Query(query), SsoCookie(binding)): (Query<CallbackQuery>, SsoCookie),
) -> HttpResult<Response> {
    if query.error.is_some() {
        // RP-18: the provider's words are not repeated.
        return Err(portcullis::Error::SsoFailed {
            reason: "the identity provider refused the sign-in",
        }
        .into());
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return Err(HttpError::invalid("code and state are required"));
    };
    let done = auth
        .sso()
        .callback(
            &code,
            &state,
            query.iss.as_deref(),
            binding.as_deref(),
            &ctx,
        )
        .await?;
    let clear = format!("{BINDING_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let (SignIn::Code(code), Some(redirect_uri)) = (&done.sign_in, &done.redirect_uri) {
        // The redirect URI was checked against the app's registered ones at start.
        let mut query = vec![("code", code.secret())];
        if let Some(state) = &done.app_state {
            query.push(("state", state.as_str()));
        }
        let query = serde_urlencoded::to_string(&query)
            .map_err(|_| HttpError::invalid("the redirect cannot be built"))?;
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        let target = format!("{redirect_uri}{separator}{query}");
        return Ok(Response::empty(StatusCode::FOUND)
            .header(LOCATION, &target)
            .header(SET_COOKIE, clear)
            .header(http::header::CACHE_CONTROL, "no-store"));
    }
    let body = SignInBody::from_sign_in(&done.sign_in)?;
    Ok(Response::json(StatusCode::OK, &body)
        .header(SET_COOKIE, clear)
        .header(http::header::CACHE_CONTROL, "no-store"))
}

/// Finish a Google sign-in (the same as [`callback`], at the redirect URI registered
/// with Google).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/social/google/callback", tag = "sso",
    params(CallbackQuery), responses((status = 200, body = SignInBody), (status = 302, description = "to the app"))))]
pub async fn google_callback(
    auth: &Portcullis,
    ctx: RequestContext,
    input: (Query<CallbackQuery>, SsoCookie),
) -> HttpResult<Response> {
    callback(auth, ctx, input).await
}

/// `GET /sso/discover?email=`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct DiscoverQuery {
    /// The person's email address.
    pub email: String,
}

/// Which connection an address signs in through.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discovered {
    /// The connection.
    pub connection_id: String,
    /// `oidc`.
    pub kind: &'static str,
}

/// Home-realm discovery: the active connection of the address's proven domain, else 404
/// (unknown and unproven domains answer alike).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/sso/discover", tag = "sso",
    params(DiscoverQuery), responses((status = 200, body = Discovered), (status = 404))))]
pub async fn discover(
    auth: &Portcullis,
    _ctx: RequestContext,
    Query(query): Query<DiscoverQuery>,
) -> HttpResult<Json<Discovered>> {
    match auth.sso().discover(&query.email).await? {
        Some(c) => Ok(Json(Discovered {
            connection_id: c.id.to_string(),
            kind: c.kind.as_str(),
        })),
        None => Err(portcullis::Error::NotFound {
            what: "sso_connection",
        }
        .into()),
    }
}

fn org_id(id: &str) -> HttpResult<OrgId> {
    parse_id(id)
}

fn view(auth: &Portcullis, c: &portcullis::model::SsoConnection) -> serde_json::Value {
    let mut value = portcullis::flows::sso::view(c);
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "redirect_uri".into(),
            serde_json::Value::String(auth.sso().redirect_uri(c)),
        );
    }
    value
}

/// The organization's SSO connections (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/sso-connections", tag = "sso",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn list_connections(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<serde_json::Value>>> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let all = auth.sso().connections(org).await?;
    Ok(Json(List::all(all.iter().map(|c| view(auth, c)).collect())))
}

/// Create a connection, as a draft (`sso:manage`). The issuer's discovery document is
/// read now; the client secret is stored sealed and never returned.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/sso-connections", tag = "sso",
    params(("id" = String, Path, format = Uuid)), request_body = serde_json::Value,
    responses((status = 201, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn create_connection(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<ConnectionSettings>),
) -> HttpResult<(StatusCode, Json<serde_json::Value>)> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let created = auth.sso().create_connection(org, body).await?;
    Ok((StatusCode::CREATED, Json(view(auth, &created))))
}

/// One connection (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/sso-connections/{connection_id}", tag = "sso",
    params(("id" = String, Path, format = Uuid), ("connection_id" = String, Path, format = Uuid)),
    responses((status = 200, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn get_connection(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, connection))): (Caller, Path<(String, String)>),
) -> HttpResult<Json<serde_json::Value>> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let found = auth.sso().connection(org, parse_id(&connection)?).await?;
    Ok(Json(view(auth, &found)))
}

/// Change a connection (`sso:manage`); `status: "active"` only after a test sign-in.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/organizations/{id}/sso-connections/{connection_id}", tag = "sso",
    params(("id" = String, Path, format = Uuid), ("connection_id" = String, Path, format = Uuid)),
    request_body = serde_json::Value, responses((status = 200, body = serde_json::Value)), security(("bearer" = []))))]
pub async fn update_connection(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, connection)), Json(body)): (
        Caller,
        Path<(String, String)>,
        Json<ConnectionSettings>,
    ),
) -> HttpResult<Json<serde_json::Value>> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let updated = auth
        .sso()
        .update_connection(org, parse_id(&connection)?, body)
        .await?;
    Ok(Json(view(auth, &updated)))
}

/// Delete a connection (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/sso-connections/{connection_id}", tag = "sso",
    params(("id" = String, Path, format = Uuid), ("connection_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn delete_connection(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, connection))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    auth.sso()
        .delete_connection(org, parse_id(&connection)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /organizations/{id}/domains`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainRequest {
    /// The domain, such as `example.com`.
    pub domain: String,
}

/// A domain claim and how to prove it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainView {
    /// The domain.
    pub domain: String,
    /// Where the TXT record goes.
    pub txt_name: String,
    /// What it must hold, exactly.
    pub txt_value: String,
    /// Whether it was found.
    pub verified: bool,
}

impl From<&DomainClaim> for DomainView {
    fn from(c: &DomainClaim) -> Self {
        DomainView {
            domain: c.domain.clone(),
            txt_name: c.txt_name(),
            txt_value: c.token.clone(),
            verified: c.verified_at.is_some(),
        }
    }
}

/// Claim a domain (`sso:manage`): the TXT record to publish.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/domains", tag = "sso",
    params(("id" = String, Path, format = Uuid)), request_body = DomainRequest,
    responses((status = 201, body = DomainView)), security(("bearer" = []))))]
pub async fn claim_domain(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<DomainRequest>),
) -> HttpResult<(StatusCode, Json<DomainView>)> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let claim = auth.sso().claim_domain(org, &body.domain).await?;
    Ok((StatusCode::CREATED, Json(DomainView::from(&claim))))
}

/// The organization's domains (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/domains", tag = "sso",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = serde_json::Value)),
    security(("bearer" = []))))]
pub async fn list_domains(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<DomainView>>> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let claims = auth.sso().domains(org).await?;
    Ok(Json(List::all(
        claims.iter().map(DomainView::from).collect(),
    )))
}

/// Check the domain's TXT record now (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/domains/{domain}/verify", tag = "sso",
    params(("id" = String, Path, format = Uuid), ("domain" = String, Path)),
    responses((status = 200, body = DomainView)), security(("bearer" = []))))]
pub async fn verify_domain(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, domain))): (Caller, Path<(String, String)>),
) -> HttpResult<Json<DomainView>> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let claim = auth.sso().verify_domain(org, &domain).await?;
    Ok(Json(DomainView::from(&claim)))
}
