//! Single sign-on: the redirect to an organization's identity provider and back, Google,
//! home-realm discovery, and the management of connections and domains (`sso:manage`,
//! for administrators of the organization or installation credentials).

use http::StatusCode;
use http::header::{LOCATION, SET_COOKIE};
use portcullis::flows::sso::ConnectionSettings;
use portcullis::model::{ConnectionId, DomainClaim, OrgId, Preset};
use portcullis::tokens::AuthCodeRequest;
use portcullis::{Portcullis, RequestContext, SignIn, SsoDone, SsoOptions, SsoTarget, escape_html};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Bearer, Caller, Form, FromCall, Json, OptionalJson, Path, Query, parse_id};
use crate::views::{List, SignInBody};
use crate::{Api, Call, Response};

pub use crate::extract::SSO_MANAGE;

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
    // Test sign-ins start only from the management route (`…/test`).
    Ok(SsoOptions {
        code_request,
        app_state: query.state,
        test: false,
    })
}

/// The cookie that carries a started sign-in's browser binding (`SameSite=Lax`: it comes
/// back on the provider's top-level redirect).
fn binding_cookie(auth: &Portcullis, binding: &str) -> String {
    let secure = if auth.public_origin().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!("{BINDING_COOKIE}={binding}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}")
}

fn redirect(auth: &Portcullis, sso: portcullis::SsoRedirect) -> Response {
    let cookie = binding_cookie(auth, &sso.browser_binding);
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
    finished(auth, done)
}

/// The answer to a finished sign-in through a provider, whatever the protocol.
fn finished(auth: &Portcullis, done: SsoDone) -> HttpResult<Response> {
    let clear = format!("{BINDING_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    let found = |target: &str| {
        Response::empty(StatusCode::FOUND)
            .header(LOCATION, target)
            .header(SET_COOKIE, &clear)
            .header(http::header::CACHE_CONTROL, "no-store")
    };
    let (sign_in, app_state, redirect_uri) = match done {
        SsoDone::Tested(tested) => {
            // Back to the setup page, which shows the connection as tested.
            let target = auth
                .public_origin()
                .join(&format!("setup?tested={}", tested.connection_id))
                .map_err(|_| HttpError::invalid("the setup page cannot be named"))?;
            return Ok(found(target.as_str()));
        }
        SsoDone::Linked {
            user_id,
            connection_id,
        } => {
            let body = serde_json::json!({
                "linked": true,
                "user_id": user_id.to_string(),
                "connection_id": connection_id.to_string(),
            });
            return Ok(Response::json(StatusCode::OK, &body)
                .header(SET_COOKIE, &clear)
                .header(http::header::CACHE_CONTROL, "no-store"));
        }
        SsoDone::SignedIn {
            sign_in,
            app_state,
            redirect_uri,
        } => (sign_in, app_state, redirect_uri),
        SsoDone::Confirm { token, email, .. } => {
            return Ok(saml_confirm_page(auth, token.secret(), email));
        }
        _ => return Err(HttpError::invalid("unsupported sign-in outcome")),
    };
    if let Some(redirect_uri) = redirect_uri {
        // A redirect flow (the redirect URI was checked against the app's registered ones
        // at start): the code in the query, or the MFA step in the fragment, which the
        // browser keeps from servers and logs.
        let body = SignInBody::from_sign_in(&sign_in)?;
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let separator = match &sign_in {
            SignIn::Code(code) => {
                pairs.push(("code", code.secret().to_owned()));
                if redirect_uri.contains('?') { '&' } else { '?' }
            }
            _ => {
                for (name, value) in [
                    ("mfa_token", &body.mfa_token),
                    ("methods", &body.methods.as_ref().map(|m| m.join(" "))),
                ] {
                    if let Some(value) = value {
                        pairs.push((name, value.clone()));
                    }
                }
                if body.mfa_enrollment_required.is_some() {
                    pairs.push(("mfa_enrollment_required", "true".into()));
                }
                '#'
            }
        };
        if let Some(state) = app_state {
            pairs.push(("state", state));
        }
        let encoded = serde_urlencoded::to_string(&pairs)
            .map_err(|_| HttpError::invalid("the redirect cannot be built"))?;
        return Ok(found(&format!("{redirect_uri}{separator}{encoded}")));
    }
    let body = SignInBody::from_sign_in(&sign_in)?;
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

/// A page for the browser alone: HTML with a strict policy (no script but the one with
/// `nonce`, forms only to this origin, never framed).
fn page(status: StatusCode, html: String, nonce: Option<&str>) -> Response {
    let script = nonce.map_or("'none'".to_owned(), |n| format!("'nonce-{n}'"));
    let policy = format!(
        "default-src 'none'; script-src {script}; style-src 'unsafe-inline'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    Response::bytes(status, "text/html; charset=utf-8", html.into_bytes())
        .header(http::header::CONTENT_SECURITY_POLICY, policy)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::REFERRER_POLICY, "no-referrer")
}

/// Our SAML metadata for a connection: hand it (or its URL, which is also our entity
/// ID) to the identity provider.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/sso/{connection_id}/saml/metadata", tag = "sso",
    params(("connection_id" = String, Path, format = Uuid)),
    responses((status = 200, description = "SAML 2.0 metadata (`application/samlmetadata+xml`)"))))]
pub async fn saml_metadata(
    auth: &Portcullis,
    _: RequestContext,
    Path(id): Path<String>,
) -> HttpResult<Response> {
    let id: ConnectionId = parse_id(&id)?;
    let xml = auth.sso().saml_metadata(id).await?;
    Ok(Response::bytes(
        StatusCode::OK,
        "application/samlmetadata+xml",
        xml.into_bytes(),
    )
    .header(http::header::CACHE_CONTROL, "public, max-age=300"))
}

/// What the identity provider's page posts (HTTP-POST binding).
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SamlPost {
    /// The response, base64.
    #[serde(rename = "SAMLResponse")]
    pub saml_response: String,
    /// Our handle on the sign-in, as sent with the request.
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
    /// Set by our own re-post (see [`saml_acs`]).
    #[serde(default)]
    pub resubmitted: Option<String>,
}

/// The assertion consumer service. The provider's page posts here from its own site, and
/// browsers do not send our `SameSite=Lax` binding cookie with a cross-site POST: when
/// it is missing, the answer is a page that posts the same form again from our origin,
/// with the cookie. Then, as at the OIDC callback: tokens, an MFA step, a redirect to
/// the app, or a page to confirm a sign-in the provider started.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/sso/{connection_id}/saml/acs", tag = "sso",
    params(("connection_id" = String, Path, format = Uuid)),
    request_body(content = SamlPost, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = SignInBody), (status = 302, description = "to the app"))))]
pub async fn saml_acs(
    auth: &Portcullis,
    ctx: RequestContext,
    (Path(id), Form(post), SsoCookie(binding)): (Path<String>, Form<SamlPost>, SsoCookie),
) -> HttpResult<Response> {
    let id: ConnectionId = parse_id(&id)?;
    if binding.is_none() && post.relay_state.is_some() && post.resubmitted.is_none() {
        return Ok(saml_repost_page(auth, id, &post));
    }
    let done = auth
        .sso()
        .saml_acs(
            id,
            &post.saml_response,
            post.relay_state.as_deref(),
            binding.as_deref(),
            &ctx,
        )
        .await?;
    finished(auth, done)
}

fn saml_repost_page(auth: &Portcullis, id: ConnectionId, post: &SamlPost) -> Response {
    let nonce = portcullis::crypto::random_token()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let html = format!(
        concat!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signing in</title></head>",
            "<body><form method=\"post\" action=\"{action}\">",
            "<input type=\"hidden\" name=\"SAMLResponse\" value=\"{response}\">",
            "<input type=\"hidden\" name=\"RelayState\" value=\"{relay}\">",
            "<input type=\"hidden\" name=\"resubmitted\" value=\"1\">",
            "<noscript><button type=\"submit\">Continue</button></noscript></form>",
            "<script nonce=\"{nonce}\">document.forms[0].submit();</script></body></html>"
        ),
        action = escape_html(&auth.sso().acs_url(id)),
        response = escape_html(&post.saml_response),
        relay = escape_html(post.relay_state.as_deref().unwrap_or_default()),
        nonce = nonce,
    );
    page(StatusCode::OK, html, Some(&nonce))
}

fn saml_confirm_page(auth: &Portcullis, token: &str, email: Option<String>) -> Response {
    let who = email.map_or_else(String::new, |e| format!(" as <b>{}</b>", escape_html(&e)));
    let action = auth.sso().saml_confirm_url();
    let html = format!(
        concat!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Continue signing in?</title></head>",
            "<body><p>Your identity provider asks to sign you in{who}.</p>",
            "<p>Continue only if you just chose this app there.</p>",
            "<form method=\"post\" action=\"{action}\">",
            "<input type=\"hidden\" name=\"token\" value=\"{token}\">",
            "<button type=\"submit\">Continue</button></form></body></html>"
        ),
        who = who,
        action = escape_html(&action),
        token = escape_html(token),
    );
    page(StatusCode::OK, html, None)
}

/// The confirmation of a sign-in the identity provider started.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SamlConfirm {
    /// The token of the confirmation page's form.
    pub token: String,
}

/// Confirm a sign-in the SAML identity provider started (checklist SAML-16): the
/// confirmation page's form posts here. The token works once.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/sso/saml/confirm", tag = "sso",
    request_body(content = SamlConfirm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = SignInBody))))]
pub async fn saml_confirm(
    auth: &Portcullis,
    ctx: RequestContext,
    Form(form): Form<SamlConfirm>,
) -> HttpResult<Response> {
    let done = auth.sso().saml_confirm(&form.token, &ctx).await?;
    finished(auth, done)
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
    /// `oidc` or `saml`.
    pub kind: &'static str,
    /// The organization it signs people in to.
    pub org_id: String,
}

/// Home-realm discovery: the active connection of the address's proven domain, else 404
/// (unknown and unproven domains answer alike).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/sso/discover", tag = "sso",
    params(DiscoverQuery), responses((status = 200, body = Discovered), (status = 404))))]
pub async fn discover(
    auth: &Portcullis,
    ctx: RequestContext,
    Query(query): Query<DiscoverQuery>,
) -> HttpResult<Json<Discovered>> {
    match auth.sso().discover(&query.email, &ctx).await? {
        Some(c) => Ok(Json(Discovered {
            connection_id: c.id.to_string(),
            kind: c.kind.as_str(),
            org_id: c.org_id.to_string(),
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

/// A connection as administrators see it, with what to register at the provider: our
/// redirect URI (OIDC), or our entity ID (also our metadata's URL) and ACS (SAML).
fn view(auth: &Portcullis, c: &portcullis::model::SsoConnection) -> serde_json::Value {
    use serde_json::Value::String as Text;
    let mut value = portcullis::flows::sso::view(c);
    if let Some(map) = value.as_object_mut() {
        if c.kind == portcullis::model::ConnectionKind::Saml {
            map.insert("sp_entity_id".into(), Text(auth.sso().sp_entity_id(c.id)));
            map.insert(
                "sp_metadata_url".into(),
                Text(auth.sso().sp_entity_id(c.id)),
            );
            map.insert("acs_url".into(), Text(auth.sso().acs_url(c.id)));
        } else {
            map.insert("redirect_uri".into(), Text(auth.sso().redirect_uri(c)));
        }
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
    Ok(Json(List::all(
        all.iter()
            .filter(|c| caller.may_reach_connection(c.id).is_ok())
            .map(|c| view(auth, c))
            .collect(),
    )))
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
    let created = match &caller {
        // A setup session creates its one connection, and is bound to it.
        Caller::Setup(setup) => {
            auth.sso()
                .create_connection_in_setup(&setup.token, body)
                .await?
        }
        _ => auth.sso().create_connection(org, body).await?,
    };
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
    let connection = parse_id(&connection)?;
    caller.may_reach_connection(connection)?;
    let found = auth.sso().connection(org, connection).await?;
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
    let connection = parse_id(&connection)?;
    caller.may_reach_connection(connection)?;
    let updated = auth.sso().update_connection(org, connection, body).await?;
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
    let connection = parse_id(&connection)?;
    caller.may_reach_connection(connection)?;
    auth.sso().delete_connection(org, connection).await?;
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

/// Start a test sign-in through a connection (`sso:manage`): where to send the browser
/// (the binding cookie is set). Back at the callback, a passed test marks the connection
/// tested, signs nobody in, and returns to `{PUBLIC_URL}/setup?tested=`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/sso-connections/{connection_id}/test", tag = "sso",
    params(("id" = String, Path, format = Uuid), ("connection_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TestStarted)), security(("bearer" = []))))]
pub async fn test_connection(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path((id, connection))): (Caller, Path<(String, String)>),
) -> HttpResult<Response> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    let connection: ConnectionId = parse_id(&connection)?;
    caller.may_reach_connection(connection)?;
    auth.sso().connection(org, connection).await?;
    let options = SsoOptions {
        test: true,
        ..SsoOptions::default()
    };
    let started = auth
        .sso()
        .start(SsoTarget::Connection(connection), options, &ctx)
        .await?;
    let cookie = binding_cookie(auth, &started.browser_binding);
    Ok(
        Response::json(StatusCode::OK, &TestStarted { url: started.url })
            .header(SET_COOKIE, cookie)
            .header(http::header::CACHE_CONTROL, "no-store"),
    )
}

/// Where a test sign-in (or a link) goes.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestStarted {
    /// The provider's authorization URL: send the browser there.
    pub url: String,
}

/// `POST /organizations/{id}/setup-links`.
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupLinkRequest {
    /// Limit the link to this existing connection (otherwise the first it creates).
    pub connection_id: Option<String>,
}

/// A new setup link.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupLinkView {
    /// `{PUBLIC_URL}/setup?token=…`: send it to the IT administrator. Shown once.
    pub url: String,
    /// Seconds it may be opened in.
    pub expires_in: u64,
}

fn not_for_setup(caller: &Caller) -> HttpResult<()> {
    match caller {
        Caller::Setup(_) => Err(HttpError::forbidden()),
        _ => Ok(()),
    }
}

/// Create an IT-admin setup link (`sso:manage`; not from a setup session).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/setup-links", tag = "sso",
    params(("id" = String, Path, format = Uuid)), request_body = SetupLinkRequest,
    responses((status = 201, body = SetupLinkView)), security(("bearer" = []))))]
pub async fn create_setup_link(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), OptionalJson(body)): (Caller, Path<String>, OptionalJson<SetupLinkRequest>),
) -> HttpResult<(StatusCode, Json<SetupLinkView>)> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    not_for_setup(&caller)?;
    let connection = body.connection_id.as_deref().map(parse_id).transpose()?;
    let created = auth.sso().create_setup_link(org, connection).await?;
    let mut url = auth
        .public_origin()
        .join("setup")
        .map_err(|_| HttpError::invalid("the setup page cannot be named"))?;
    url.query_pairs_mut().append_pair("token", &created.token);
    Ok((
        StatusCode::CREATED,
        Json(SetupLinkView {
            url: url.into(),
            expires_in: created.expires_in.as_secs(),
        }),
    ))
}

/// Revoke every setup link and open setup session of the organization (`sso:manage`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/setup-links", tag = "sso",
    params(("id" = String, Path, format = Uuid)), responses((status = 204)), security(("bearer" = []))))]
pub async fn revoke_setup_links(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<StatusCode> {
    let org = org_id(&id)?;
    caller.require(auth, SSO_MANAGE, Some(org)).await?;
    not_for_setup(&caller)?;
    auth.sso().revoke_setup_links(org).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /setup/session`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupOpenRequest {
    /// The setup link's token.
    pub token: String,
}

/// A setup session: its bearer token and what it reaches.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupSessionView {
    /// The session's bearer token (`pcs_…`); only in the answer that opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// The organization.
    pub org_id: String,
    /// Its connection being set up, once there is one.
    pub connection_id: Option<String>,
    /// Where the provider must send people back: register it there.
    pub redirect_uri: String,
    /// Seconds the session lasts (in the answer that opens it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

fn session_view(
    auth: &Portcullis,
    scope: portcullis::flows::sso::setup::SetupScope,
) -> SetupSessionView {
    SetupSessionView {
        session_token: None,
        org_id: scope.org_id.to_string(),
        connection_id: scope.connection_id.map(|c| c.to_string()),
        redirect_uri: auth.sso().callback_url(None),
        expires_in: None,
    }
}

/// Open a setup link: spends it (single use) and answers a setup session.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/setup/session", tag = "sso",
    request_body = SetupOpenRequest, responses((status = 201, body = SetupSessionView))))]
pub async fn open_setup(
    auth: &Portcullis,
    _ctx: RequestContext,
    Json(body): Json<SetupOpenRequest>,
) -> HttpResult<(StatusCode, Json<SetupSessionView>)> {
    let opened = auth.sso().open_setup_link(&body.token).await?;
    let mut view = session_view(auth, opened.scope);
    view.session_token = Some(opened.token.to_string());
    view.expires_in = Some(opened.expires_in.as_secs());
    Ok((StatusCode::CREATED, Json(view)))
}

/// The calling setup session's scope.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/setup/session", tag = "sso",
    responses((status = 200, body = SetupSessionView)), security(("bearer" = []))))]
pub async fn setup_session(
    auth: &Portcullis,
    _ctx: RequestContext,
    caller: Caller,
) -> HttpResult<Json<SetupSessionView>> {
    match caller {
        Caller::Setup(setup) => {
            // Read again: the connection may have been bound since the caller was made.
            let scope = auth.sso().setup_scope(&setup.token).await?;
            Ok(Json(session_view(auth, scope)))
        }
        _ => Err(HttpError::forbidden()),
    }
}

/// Link the bearer's account to their account at a connection's provider (the way in
/// when a sign-in refused to link by email): where to send the browser (the binding
/// cookie is set). Needs a recent sign-in; the callback answers `{"linked": true, ..}`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/sso/{connection_id}/link", tag = "sso",
    params(("connection_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TestStarted)), security(("bearer" = []))))]
pub async fn link(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Path(connection)): (Bearer, Path<String>),
) -> HttpResult<Response> {
    let connection: ConnectionId = parse_id(&connection)?;
    let started = auth
        .sso()
        .start_link(connection, bearer.claims.sid, &ctx)
        .await?;
    let cookie = binding_cookie(auth, &started.browser_binding);
    Ok(
        Response::json(StatusCode::OK, &TestStarted { url: started.url })
            .header(SET_COOKIE, cookie)
            .header(http::header::CACHE_CONTROL, "no-store"),
    )
}
