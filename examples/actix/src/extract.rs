//! Extractors: the caller's [`RequestContext`] ([`Ctx`]) and the bearer's verified claims
//! ([`Authenticated`], [`AuthenticatedLive`], [`MaybeAuthenticated`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use portcullis::model::ClientId;
use portcullis::tokens::Claims;
use portcullis::{Error, RequestContext};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// What extractors here return: a boxed future, since they ask the engine.
pub type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The engine's state registered on the app.
pub(crate) fn state(req: &HttpRequest) -> ApiResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("example_actix::AppState is not registered as app data");
            ApiError::from_status(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
        })
}

// ---------------------------------------------------------------------------------------
// The request's context

/// The context every engine call takes: the client's address (the socket's, or from
/// `X-Forwarded-For` when the socket is a trusted proxy), user agent, language, and the
/// organization of the app named by `client_id` (query) or `X-Client-Id` (header).
#[derive(Debug)]
pub struct Ctx(pub RequestContext);

#[derive(Deserialize)]
struct ClientIdQuery {
    client_id: Option<String>,
}

impl FromRequest for Ctx {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { context(&req).await.map(Ctx) })
    }
}

async fn context(req: &HttpRequest) -> ApiResult<RequestContext> {
    let state = state(req)?;
    let mut ctx = RequestContext::new();
    if let Some(ip) = client_ip(req, &state) {
        ctx = ctx.with_ip(ip);
    }
    if let Some(agent) = header_str(req, header::USER_AGENT) {
        ctx = ctx.with_user_agent(agent);
    }
    if let Some(first) = header_str(req, header::ACCEPT_LANGUAGE)
        .and_then(|list| list.split([',', ';']).next())
        .filter(|tag| !tag.trim().is_empty())
    {
        ctx = ctx.with_locale(first.trim());
    }
    let named = web::Query::<ClientIdQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().client_id)
        .or_else(|| header_str(req, "x-client-id").map(str::to_owned));
    let Some(named) = named else {
        return Ok(ctx);
    };
    let client_id = ClientId::new(named)?;
    let app = match state
        .auth
        .orgs()
        .config_by_client_id(client_id.as_str())
        .await
    {
        Ok(app) => app,
        Err(Error::NotFound { .. }) => {
            return Err(ApiError::invalid("client_id is not a registered app"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ctx.with_org(app.org_id).with_client(client_id))
}

fn header_str(req: &HttpRequest, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The socket's peer, or, when that peer is a trusted proxy, the right-most
/// `X-Forwarded-For` hop that is not a trusted proxy itself. (actix's
/// `ConnectionInfo::realip_remote_addr` believes the header from anyone, so it is not
/// used.)
fn client_ip(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !state.is_trusted_proxy(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match parse_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
        if !state.is_trusted_proxy(client) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry, bare or with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let bracketed = hop.strip_prefix('[')?;
    bracketed.split_once(']')?.0.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The bearer

/// What a verification found, kept in the request's extensions so that a guard's work is
/// not repeated by the handler's extractor.
#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) claims: Claims,
    pub(crate) token: String,
    /// The session was checked in the store too.
    pub(crate) live: bool,
}

/// The access token of `Authorization: Bearer <token>`: `Ok(None)` without the header,
/// an error for any other scheme or an empty token.
pub(crate) fn bearer(req: &HttpRequest) -> ApiResult<Option<&str>> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "expected Authorization: Bearer <access token>",
        ));
    }
    Ok(Some(token))
}

/// Verifies the request's bearer (statelessly, or with its session when `live`), reusing
/// a verification a guard already made for this request.
pub(crate) async fn verify(req: &HttpRequest, live: bool) -> ApiResult<Verified> {
    if let Some(done) = req.extensions().get::<Verified>()
        && (done.live || !live)
    {
        return Ok(done.clone());
    }
    let token = bearer(req)?.ok_or_else(|| ApiError::unauthorized("sign in first"))?;
    let state = state(req)?;
    let tokens = state.auth.tokens();
    let checked = if live {
        tokens.verify_live(token).await
    } else {
        tokens.verify(token).await
    };
    // The request's own credential failed: challenge for a new one.
    let claims = checked.map_err(|e| ApiError::from(e).with_challenge())?;
    let verified = Verified {
        claims,
        token: token.to_owned(),
        live,
    };
    req.extensions_mut().insert(verified.clone());
    Ok(verified)
}

/// A signed-in caller: `Authorization: Bearer <access token>`, its signature, issuer,
/// audience and lifetime verified, with no store access (fast; a revoked session's token
/// still passes until it expires, 15 minutes by default). Use [`AuthenticatedLive`] where
/// a sign-out must count at once.
///
/// Refuses with 401 and `WWW-Authenticate: Bearer`: `invalid_token` (missing, malformed,
/// bad signature, wrong audience) or `expired`.
pub struct Authenticated {
    /// The verified claims: user (`sub`), session (`sid`), organization, roles,
    /// permissions, how they signed in (`amr`, `acr`).
    pub claims: Claims,
    token: String,
}

/// A signed-in caller whose session is still live in the store: as [`Authenticated`], and
/// also refused (401 `session_revoked`) once the session was signed out, revoked, ended
/// or went idle. Every protected route of the API takes this one.
pub struct AuthenticatedLive {
    /// The verified claims.
    pub claims: Claims,
    token: String,
}

/// The bearer when there is one: `None` without an `Authorization` header; a header that
/// does not verify is refused, never taken as an anonymous request (actix's own
/// `Option<T>` would swallow the error).
pub struct MaybeAuthenticated(pub Option<AuthenticatedLive>);

macro_rules! bearer_accessors {
    ($ty:ident) => {
        impl $ty {
            /// The raw access token. It is a credential: DO NOT log it or send it
            /// anywhere but to the engine.
            pub fn token(&self) -> &str {
                &self.token
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("user", &self.claims.sub)
                    .field("session", &self.claims.sid)
                    .field("token", &"[redacted]")
                    .finish()
            }
        }
    };
}

bearer_accessors!(Authenticated);
bearer_accessors!(AuthenticatedLive);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Verified { claims, token, .. } = verify(&req, false).await?;
            Ok(Authenticated { claims, token })
        })
    }
}

impl FromRequest for AuthenticatedLive {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Verified { claims, token, .. } = verify(&req, true).await?;
            Ok(AuthenticatedLive { claims, token })
        })
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if !req.headers().contains_key(header::AUTHORIZATION) {
                return Ok(MaybeAuthenticated(None));
            }
            let Verified { claims, token, .. } = verify(&req, true).await?;
            Ok(MaybeAuthenticated(Some(AuthenticatedLive {
                claims,
                token,
            })))
        })
    }
}

/// Parses a path or body field into an engine id (`SessionId`, `RequestId`…): a 400 when
/// it is not one.
pub fn parse_id<T: std::str::FromStr<Err = Error>>(text: &str) -> ApiResult<T> {
    Ok(text.parse::<T>()?)
}

#[cfg(test)]
mod tests {
    use super::parse_hop;

    #[test]
    fn forwarded_hops_with_and_without_ports() {
        let parsed = |hop: &str| parse_hop(hop).map(|ip| ip.to_string());
        assert_eq!(parsed(" 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
        assert_eq!(parsed("203.0.113.7:4711").as_deref(), Some("203.0.113.7"));
        assert_eq!(parsed("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(parsed("[2001:db8::1]:4711").as_deref(), Some("2001:db8::1"));
        assert_eq!(parsed("[2001:db8::1]").as_deref(), Some("2001:db8::1"));
        assert_eq!(parsed("unknown"), None);
    }
}
