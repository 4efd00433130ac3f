//! # portcullis-axum
//!
//! portcullis in [axum]: [`routes`] is the whole REST API as a router to nest under any
//! prefix, [`well_known`] serves the JWKS at the site's root, and the extractors
//! ([`Authenticated`], [`AuthenticatedLive`], [`Permitted`]) guard an application's own
//! routes. Everything else (the handlers, errors, client addresses) is
//! [`portcullis_http`]'s, shared with every other framework.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use portcullis_axum::{Api, AuthenticatedLive};
//!
//! async fn me(AuthenticatedLive(claims): AuthenticatedLive) -> Json<String> {
//!     Json(claims.sub.to_string())
//! }
//!
//! # async fn serve(auth: portcullis::Portcullis) {
//! let api = Api::new(auth);
//! let app = Router::new()
//!     .nest("/api/v1", portcullis_axum::routes(api.clone()))
//!     .merge(portcullis_axum::well_known(api.clone()))
//!     .route("/me", get(me))
//!     .with_state(api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//!     .await
//!     .unwrap();
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{
    ConnectInfo, FromRef, FromRequestParts, OptionalFromRequestParts, Path, Request,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{MethodFilter, on};
use portcullis::tokens::Claims;
use portcullis_http::{API_HEADERS, BODY_LIMIT, Bearer, Call, Check, Response, Route};
pub use portcullis_http::{Api, HttpError, Permission, permission};

/// The REST API (`portcullis_http::routes`), to nest under a prefix:
/// `Router::new().nest("/api/v1", routes(api))`. With feature `openapi`, the document of
/// the routes is at `GET {prefix}/openapi.json`. Refusals of the router itself (404, 405
/// with `Allow`, 413) are JSON errors too, and every answer carries `Cache-Control:
/// no-store` (unless it set its own) and the security headers.
pub fn routes<S: Clone + Send + Sync + 'static>(api: impl Into<Api>) -> Router<S> {
    let router = mount(api.into(), portcullis_http::routes());
    #[cfg(feature = "openapi")]
    let router = router.route(
        "/openapi.json",
        axum::routing::get(|prefix: axum::extract::NestedPath| async move {
            let doc = portcullis_http::openapi::json(prefix.as_str());
            ([(header::CONTENT_TYPE, "application/json")], doc)
        }),
    );
    router
        .fallback(|| async { Wrap(HttpError::not_found("route").into_response()) })
        .layer(axum::middleware::map_response(api_answer))
}

/// The routes at the site's root: `GET /.well-known/jwks.json` and the OpenID provider's
/// (`/.well-known/openid-configuration`, `/oauth2/*`). Merge it into the app.
pub fn well_known<S: Clone + Send + Sync + 'static>(api: impl Into<Api>) -> Router<S> {
    mount(api.into(), portcullis_http::well_known())
}

fn mount<S: Clone + Send + Sync + 'static>(api: Api, table: Vec<Route>) -> Router<S> {
    let mut by_path: BTreeMap<&'static str, Vec<Route>> = BTreeMap::new();
    for route in table {
        by_path.entry(route.path).or_default().push(route);
    }
    let mut router = Router::new();
    for (path, routes) in by_path {
        let mut methods: Option<axum::routing::MethodRouter<S>> = None;
        for route in routes {
            let Ok(filter) = MethodFilter::try_from(route.method.clone()) else {
                continue;
            };
            let api = api.clone();
            let handler = move |request: Request| serve(api, route, request);
            methods = Some(match methods {
                None => on(filter, handler),
                Some(m) => m.on(filter, handler),
            });
        }
        if let Some(methods) = methods {
            router = router.route(path, methods);
        }
    }
    router
}

/// One request through a route of the table.
async fn serve(api: Api, route: Route, request: Request) -> Wrap {
    let (mut parts, body) = request.into_parts();
    let params = <Path<HashMap<String, String>> as FromRequestParts<()>>::from_request_parts(
        &mut parts,
        &(),
    )
    .await
    .map(|Path(params)| params)
    .unwrap_or_default();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Wrap(HttpError::from_status(StatusCode::PAYLOAD_TOO_LARGE).into_response());
        }
    };
    let call = Call {
        method: parts.method.clone(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        headers: parts.headers,
        body,
        params: Vec::new(),
    }
    .with_params(route.path, |name| params.get(name).cloned());
    Wrap((route.handler)(api, call).await)
}

/// A neutral [`Response`] (a [`HttpError`]'s, say) as axum's.
pub fn respond(response: Response) -> AxumResponse {
    Wrap(response).into_response()
}

/// A neutral [`Response`] as axum's.
struct Wrap(Response);

impl IntoResponse for Wrap {
    fn into_response(self) -> AxumResponse {
        let Response {
            status,
            headers,
            body,
        } = self.0;
        let mut response = AxumResponse::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// A plain-text refusal of the router (404, 405, 413…) as a JSON error, keeping `Allow`:
/// `.layer(axum::middleware::map_response(json_errors))` on an app's own routes.
pub async fn json_errors(response: AxumResponse) -> AxumResponse {
    let status = response.status();
    // JSON errors, and the OpenID provider's own error pages, stand as they are.
    let answered = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !status.is_client_error() || answered {
        return response;
    }
    let mut refused = Wrap(HttpError::from_status(status).into_response()).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        refused.headers_mut().insert(header::ALLOW, allow.clone());
    }
    refused
}

/// JSON refusals, and the API's headers (`no-store`, `no-cache`, the security headers)
/// on every answer that did not set its own.
async fn api_answer(response: AxumResponse) -> AxumResponse {
    let mut response = json_errors(response).await;
    let headers = response.headers_mut();
    for (name, value) in API_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// A signed-in user, by the bearer access token's signature and lifetime alone: no store
/// read, so a session revoked since the token was issued passes until it expires (minutes).
/// Use [`AuthenticatedLive`] where that matters. `Option<Authenticated>` is `None` without
/// an `Authorization` header; a header that does not verify is refused either way.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// A signed-in user whose session is still live and whose roles have not changed since
/// the token was signed (one store read).
#[derive(Debug, Clone)]
pub struct AuthenticatedLive(pub Claims);

/// A signed-in user (live, as [`AuthenticatedLive`]) who holds permission `P`:
/// 401 without a usable token, 403 without the permission.
#[derive(Debug, Clone)]
pub struct Permitted<P: Permission>(pub Claims, PhantomData<P>);

impl<P: Permission> Permitted<P> {
    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.0
    }
}

/// Extraction's refusal: the JSON error.
pub struct Refusal(HttpError);

impl IntoResponse for Refusal {
    fn into_response(self) -> AxumResponse {
        Wrap(self.0.into_response()).into_response()
    }
}

/// The bearer as `check` requires it, from the app's [`Api`].
async fn verified<S>(parts: &Parts, state: &S, check: Check) -> Result<Claims, Refusal>
where
    Api: FromRef<S>,
{
    let api = Api::from_ref(state);
    let bearer = Bearer::check(&parts.method, &parts.headers, &api.auth, check)
        .await
        .map_err(Refusal)?;
    Ok(bearer.claims)
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated
where
    Api: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        verified(parts, state, Check::Stateless)
            .await
            .map(Authenticated)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedLive
where
    Api: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        verified(parts, state, Check::Live)
            .await
            .map(AuthenticatedLive)
    }
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Permitted<P>
where
    Api: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let claims = verified(parts, state, Check::Permission(P::NAME)).await?;
        Ok(Permitted(claims, PhantomData))
    }
}

macro_rules! optional {
    ($($extractor:ident),*) => {$(
        impl<S: Send + Sync> OptionalFromRequestParts<S> for $extractor
        where
            Api: FromRef<S>,
        {
            type Rejection = Refusal;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Option<Self>, Refusal> {
                let api = Api::from_ref(state);
                if !portcullis_http::browser::presents_token(&parts.headers, &api.auth) {
                    return Ok(None);
                }
                <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                    .await
                    .map(Some)
            }
        }
    )*};
}

optional!(Authenticated, AuthenticatedLive);
