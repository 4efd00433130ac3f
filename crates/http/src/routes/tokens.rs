//! Refresh tokens, authorization codes and the JWKS.

use http::StatusCode;
use portcullis::{Portcullis, RequestContext};

use crate::Response;

use portcullis::crypto::{AuthCode, ClientSecret, CodeVerifier, RefreshToken};
use portcullis::model::ClientId;
use portcullis::tokens::CodeExchange;
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Caller, Json};
use crate::views::SignInBody;

/// `POST /token/refresh`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// The current refresh token.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub refresh_token: String,
}

/// The refresh token a refresh presents: the body's, or in cookie mode (no body) the
/// refresh cookie, checked against CSRF ([`browser`](crate::browser)).
pub struct Presented(String);

impl crate::FromCall for Presented {
    async fn from_call(call: &crate::Call, api: &crate::Api) -> HttpResult<Self> {
        if call.body.is_empty()
            && let Some(token) =
                crate::browser::refresh_cookie(&call.method, &call.headers, &api.auth).await?
        {
            return Ok(Presented(token.to_owned()));
        }
        let Json(body) = Json::<RefreshRequest>::from_call(call, api).await?;
        Ok(Presented(body.refresh_token))
    }
}

/// Rotate: a new access and refresh token. Presenting an old refresh token again ends
/// the session. In cookie mode, send no body: the refresh cookie is used and the new
/// tokens are set as cookies.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/token/refresh", tag = "tokens",
    request_body = RefreshRequest, responses((status = 200, body = SignInBody))))]
pub async fn refresh(
    auth: &Portcullis,
    ctx: RequestContext,
    Presented(token): Presented,
) -> HttpResult<Json<SignInBody>> {
    rotate(auth, token, &ctx).await
}

async fn rotate(
    auth: &Portcullis,
    refresh_token: String,
    ctx: &portcullis::RequestContext,
) -> HttpResult<Json<SignInBody>> {
    let token = RefreshToken::new(refresh_token);
    let set = auth.tokens().refresh(&token, ctx).await?;
    Ok(Json(SignInBody::tokens(&set)))
}

/// What `POST /token` exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// An authorization code, with its PKCE verifier.
    AuthorizationCode,
    /// A refresh token (as `POST /token/refresh`).
    RefreshToken,
}

/// `POST /token`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// `authorization_code` (or `refresh_token`, as `POST /token/refresh`).
    pub grant_type: GrantType,
    /// The authorization code.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub code: Option<String>,
    /// The PKCE verifier.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._~-]{43,128}$"))]
    pub code_verifier: Option<String>,
    /// The app.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[!-~]{1,128}$"))]
    pub client_id: Option<String>,
    /// The redirect URI the code was issued for.
    #[cfg_attr(feature = "openapi", schema(format = "uri", max_length = 2048))]
    pub redirect_uri: Option<String>,
    /// A confidential app's secret.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub client_secret: Option<String>,
    /// With `grant_type=refresh_token`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub refresh_token: Option<String>,
}

/// Exchange an authorization code (PKCE S256) for tokens.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/token", tag = "tokens",
    request_body = TokenRequest, responses((status = 200, body = SignInBody))))]
pub async fn token(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<TokenRequest>,
) -> HttpResult<Json<SignInBody>> {
    let need = |field: Option<String>, name: &str| {
        field.ok_or_else(|| HttpError::invalid(format!("{name} is required")))
    };
    let set = match body.grant_type {
        GrantType::AuthorizationCode => {
            let exchange = CodeExchange {
                code: AuthCode::new(need(body.code, "code")?),
                code_verifier: CodeVerifier::new(need(body.code_verifier, "code_verifier")?),
                client_id: ClientId::new(need(body.client_id, "client_id")?)?,
                redirect_uri: need(body.redirect_uri, "redirect_uri")?,
                client_secret: body.client_secret.map(ClientSecret::new),
            };
            auth.tokens().exchange_code(&exchange, &ctx).await?
        }
        GrantType::RefreshToken => {
            return rotate(auth, need(body.refresh_token, "refresh_token")?, &ctx).await;
        }
    };
    Ok(Json(SignInBody::tokens(&set)))
}

/// The signing key a rotation made.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedKey {
    /// Its key id: the `kid` of the tokens it signs.
    pub kid: String,
}

/// Rotate the token-signing key (`signing_keys:rotate`, a credential of the default
/// organization): the new key signs from now on, on other instances within a minute, and
/// verifies everywhere at once; tokens the older keys signed keep verifying.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/signing-keys/rotate", tag = "tokens",
    responses((status = 201, body = RotatedKey)), security(("bearer" = []))))]
pub async fn rotate_signing_key(
    auth: &Portcullis,
    _ctx: RequestContext,
    caller: Caller,
) -> HttpResult<(StatusCode, Json<RotatedKey>)> {
    caller.require(auth, "signing_keys:rotate", None).await?;
    let kid = auth.tokens().rotate_signing_key().await?;
    Ok((StatusCode::CREATED, Json(RotatedKey { kid })))
}

/// The public keys that verify access tokens (RFC 7517), cacheable for five minutes.
pub async fn jwks(auth: &Portcullis, _ctx: RequestContext, (): ()) -> HttpResult<Response> {
    let keys = auth.tokens().jwks().await?;
    // Anyone may read it, from any page, without credentials (checklist OP-18).
    Ok(Response::json(StatusCode::OK, &keys)
        .header(http::header::CACHE_CONTROL, "public, max-age=300")
        .header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
}
