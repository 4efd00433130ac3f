//! Extractors: the request's [`RequestContext`], the bearer's verified claims, the caller
//! of a management route, and JSON, query and path input that fails as JSON errors.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use portcullis::crypto::{ApiKey, ct_eq};
use portcullis::directory::ApiKeyInfo;
use portcullis::model::{ClientId, OrgId};
use portcullis::tokens::Claims;
use portcullis::{Error, RequestContext};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The context every engine call carries: client address (from the socket, or from
/// `X-Forwarded-For` when the socket is a trusted proxy), user agent, language, and the
/// organization named by `client_id` (query) or `X-Client-Id` (header).
pub struct Ctx(pub RequestContext);

#[derive(Deserialize)]
struct ClientQuery {
    client_id: Option<String>,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let mut ctx = RequestContext::new();
        if let Some(ip) = client_ip(parts, state) {
            ctx = ctx.with_ip(ip);
        }
        if let Some(agent) = header(parts, "user-agent") {
            ctx = ctx.with_user_agent(agent);
        }
        if let Some(language) = header(parts, "accept-language") {
            let first = language.split([',', ';']).next().unwrap_or_default();
            ctx = ctx.with_locale(first);
        }
        let from_query = Query::<ClientQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.client_id);
        let client = from_query.or_else(|| header(parts, "x-client-id").map(str::to_owned));
        if let Some(client) = client {
            let client_id = ClientId::new(client)?;
            let config = match state
                .auth
                .orgs()
                .config_by_client_id(client_id.as_str())
                .await
            {
                Err(Error::NotFound { .. }) => {
                    return Err(ApiError::invalid("client_id is not a registered app"));
                }
                other => other?,
            };
            ctx = ctx.with_org(config.org_id).with_client(client_id);
        }
        Ok(Ctx(ctx))
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The socket's address, unless it is a trusted proxy: then the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())?;
    if !state.is_trusted_proxy(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let forwarded = parts.headers.get_all("x-forwarded-for");
    let hops: Vec<&str> = forwarded
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = hop_ip(hop) else {
            break;
        };
        client = ip;
        if !state.is_trusted_proxy(ip) {
            break;
        }
    }
    Some(client)
}

/// The address in one `X-Forwarded-For` hop: `203.0.113.7`, `2001:db8::1`, or with a
/// port as some proxies write it (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn hop_ip(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = hop.strip_prefix('[')?.split(']').next()?;
            inner.parse().ok()
        })
}

/// The `Authorization: Bearer` value, if any.
fn bearer_token(parts: &Parts) -> ApiResult<Option<&str>> {
    let Some(value) = parts.headers.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "expected Authorization: Bearer <token>",
        )),
    }
}

/// A signed-in user: the bearer access token, verified, with its session still live.
pub struct Bearer {
    /// The token's claims.
    pub claims: Claims,
    /// The token itself (for sign-out).
    pub token: String,
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer_token(parts)?.ok_or_else(|| ApiError::unauthorized("sign in first"))?;
        let claims = state
            .auth
            .tokens()
            .verify_live(token)
            .await
            .map_err(|e| ApiError::from(e).challenge())?;
        Ok(Bearer {
            claims,
            token: token.to_owned(),
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    /// No `Authorization` header is `None`; a header that does not verify is an error, never
    /// a silent anonymous request.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Option<Self>> {
        if parts.headers.contains_key("authorization") {
            <Bearer as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Who calls a management route: the bootstrap key (`PORTCULLIS_ADMIN_KEY`), an API
/// credential (`lk_…`) or a signed-in user.
pub enum Caller {
    /// The key from `PORTCULLIS_ADMIN_KEY`: everything.
    Bootstrap,
    /// An API credential of an organization.
    Key(ApiKeyInfo),
    /// A user's access token.
    User(Box<Claims>),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer_token(parts)?.ok_or_else(|| {
            ApiError::unauthorized("an API credential or access token is required")
        })?;
        if let Some(admin) = &state.admin_key
            && ct_eq(admin.as_bytes(), token.as_bytes())
        {
            return Ok(Caller::Bootstrap);
        }
        if token.starts_with(portcullis::directory::api_keys::API_KEY_PREFIX) {
            let info = state
                .auth
                .api_keys()
                .verify(&ApiKey::new(token))
                .await
                .map_err(|e| ApiError::from(e).challenge())?;
            return Ok(Caller::Key(info));
        }
        let claims = state
            .auth
            .tokens()
            .verify_live(token)
            .await
            .map_err(|e| ApiError::from(e).challenge())?;
        Ok(Caller::User(Box::new(claims)))
    }
}

impl Caller {
    /// Refuses (403) unless the caller holds `permission` and acts for `org`: a credential
    /// of the default organization acts for every organization and for the
    /// installation-wide routes (`org` `None`: users, creating organizations); any other
    /// credential only for its own organization.
    pub async fn require(
        &self,
        state: &AppState,
        permission: &str,
        org: Option<OrgId>,
    ) -> ApiResult<()> {
        let (held_in, allowed) = match self {
            Caller::Bootstrap => return Ok(()),
            Caller::Key(info) => (info.org_id, info.allows(permission)),
            // A token carries permissions only from a sign-in in an organization; one
            // without an organization holds none, whatever it says.
            Caller::User(claims) => match claims.org {
                Some(in_org) if claims.perms_omitted => (
                    in_org,
                    state
                        .auth
                        .rbac()
                        .check(claims.sub, in_org, permission)
                        .await?,
                ),
                Some(in_org) => (in_org, claims.has_permission(permission)),
                None => return Err(ApiError::forbidden()),
            },
        };
        if !allowed {
            return Err(ApiError::forbidden());
        }
        let default = state.auth.orgs().default_org().await?.id;
        if held_in == default || Some(held_in) == org {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// The signed-in user, if the caller is one.
    pub fn user(&self) -> Option<&Claims> {
        match self {
            Caller::User(claims) => Some(claims),
            _ => None,
        }
    }
}

/// A JSON body; a malformed one is a JSON error (400, 413 or 415), never plain text.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        status @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => {
            ApiError::from_status(status)
        }
        _ => ApiError::unparsable(&rejection.body_text()),
    }
}

/// Query parameters; bad ones are a 400 JSON error.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rejection: QueryRejection| ApiError::unparsable(&rejection.body_text()))
    }
}

/// Path parameters; bad ones are a 400 JSON error.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|rejection: PathRejection| ApiError::unparsable(&rejection.body_text()))
    }
}

/// Parses a path segment into an engine id (`UserId`, `OrgId`…).
pub fn parse_id<T: std::str::FromStr<Err = Error>>(text: &str) -> ApiResult<T> {
    Ok(text.parse::<T>()?)
}
