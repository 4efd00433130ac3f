//! # portcullis-actix
//!
//! portcullis in [actix-web](actix_web): [`scope`] is the whole REST API as a scope to
//! mount under any prefix, [`well_known`] serves the JWKS at the site's root, and the
//! extractors ([`Authenticated`], [`AuthenticatedLive`], [`Permitted`] and the optional
//! [`MaybeAuthenticated`], [`MaybeAuthenticatedLive`]) guard an application's own routes.
//! Everything else (the handlers, errors, client addresses) is [`portcullis_http`]'s,
//! shared with every other framework.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use portcullis_actix::{Api, AuthenticatedLive};
//!
//! async fn me(user: AuthenticatedLive) -> String {
//!     user.0.sub.to_string()
//! }
//!
//! # async fn serve(auth: portcullis::Portcullis) -> std::io::Result<()> {
//! let api = Api::new(auth);
//! HttpServer::new(move || {
//!     App::new()
//!         .app_data(web::Data::new(api.clone()))
//!         .service(portcullis_actix::scope("/api/v1", api.clone()))
//!         .configure(portcullis_actix::well_known(api.clone()))
//!         .route("/me", web::get().to(me))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode as ActixStatus;
use actix_web::http::header::{HeaderName as ActixName, HeaderValue as ActixValue};
use actix_web::middleware::{self, Next};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Scope, web};
use portcullis::tokens::Claims;
use portcullis_http::{API_HEADERS, BODY_LIMIT, Bearer, Call, Check, Response, Route};
pub use portcullis_http::{Api, HttpError, Permission, permission};

/// The REST API (`portcullis_http::routes`) as a scope at `prefix` (`/api/v1`); with
/// feature `openapi`, the document of the routes at `GET {prefix}/openapi.json`. Refusals
/// of the router itself (404, 405 with `Allow`, 413) are JSON errors too, and every
/// answer carries `Cache-Control: no-store` (unless it set its own) and the security
/// headers.
pub fn scope(
    prefix: &str,
    api: impl Into<Api>,
) -> Scope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let api = api.into();
    #[cfg(feature = "openapi")]
    let doc = portcullis_http::openapi::json(prefix);
    let scope = web::scope(prefix);
    #[cfg(feature = "openapi")]
    let scope = scope.route(
        "/openapi.json",
        web::get().to(move || {
            let doc = doc.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(doc)
            }
        }),
    );
    scope
        .configure(mount(api, portcullis_http::routes()))
        .default_service(web::to(|| async {
            respond(HttpError::not_found("route").into_response())
        }))
        .wrap(middleware::from_fn(json_errors))
        .wrap(api_headers())
}

/// The routes at the site's root (`GET /.well-known/jwks.json`):
/// `App::new().configure(well_known(api))`.
pub fn well_known(api: impl Into<Api>) -> impl FnOnce(&mut web::ServiceConfig) {
    mount(api.into(), portcullis_http::well_known())
}

/// The security headers (`Referrer-Policy`, `X-Content-Type-Options`, `X-Frame-Options`)
/// on every answer of the app, for `App::new().wrap(security_headers())`.
pub fn security_headers() -> middleware::DefaultHeaders {
    API_HEADERS
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "cache-control" | "pragma"))
        .fold(middleware::DefaultHeaders::new(), |headers, header| {
            headers.add(header)
        })
}

/// The API's headers (`Cache-Control: no-store`, `Pragma: no-cache` and the security
/// headers) for an app's own API resources: `web::resource(..).wrap(api_headers())`.
pub fn api_headers() -> middleware::DefaultHeaders {
    API_HEADERS
        .into_iter()
        .fold(middleware::DefaultHeaders::new(), |headers, header| {
            headers.add(header)
        })
}

fn mount(api: Api, table: Vec<Route>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let mut by_path: BTreeMap<&'static str, Vec<Route>> = BTreeMap::new();
        for route in table {
            by_path.entry(route.path).or_default().push(route);
        }
        for (path, routes) in by_path {
            let mut allow: Vec<String> = Vec::new();
            let mut resource = web::resource(path);
            for route in routes {
                let mut methods = vec![route.method.as_str().to_owned()];
                if route.method == http::Method::GET {
                    methods.push("HEAD".to_owned());
                }
                for method in methods {
                    let Ok(actix_method) = method.parse() else {
                        continue;
                    };
                    let (api, route) = (api.clone(), route.clone());
                    resource = resource.route(web::method(actix_method).to(
                        move |req: HttpRequest, payload: web::Payload| {
                            serve(api.clone(), route.clone(), req, payload)
                        },
                    ));
                    allow.push(method);
                }
            }
            allow.sort();
            let allow = allow.join(", ");
            resource = resource.default_service(web::to(move || {
                let refused = HttpError::from_status(http::StatusCode::METHOD_NOT_ALLOWED)
                    .into_response()
                    .header(http::header::ALLOW, allow.clone());
                async move { respond(refused) }
            }));
            config.service(resource);
        }
    }
}

/// One request through a route of the table.
async fn serve(api: Api, route: Route, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let body = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return respond(
                HttpError::invalid("the request body could not be read").into_response(),
            );
        }
        Err(_) => {
            return respond(
                HttpError::from_status(http::StatusCode::PAYLOAD_TOO_LARGE).into_response(),
            );
        }
    };
    let call = Call {
        method: method_of(&req),
        headers: headers_of(&req),
        query: req.query_string().to_owned(),
        params: Vec::new(),
        body,
        peer: req.peer_addr().map(|addr| addr.ip()),
    }
    .with_params(route.path, |name| {
        // Actix's path keeps `%`, `/` and `+` encoded: decoded here, as axum does.
        let raw = req.match_info().get(name)?;
        Some(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
        )
    });
    respond((route.handler)(api, call).await)
}

/// A neutral [`Response`] (a [`HttpError`]'s, say) as actix's.
pub fn respond(response: Response) -> HttpResponse {
    let status = ActixStatus::from_u16(response.status.as_u16())
        .unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
    let mut built = HttpResponse::build(status);
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            ActixName::from_bytes(name.as_str().as_bytes()),
            ActixValue::from_bytes(value.as_bytes()),
        ) {
            built.append_header((name, value));
        }
    }
    built.body(response.body)
}

/// Whatever actix answered by itself in plain text (404, 405, 413…) becomes a JSON error,
/// keeping `Allow`: `App::new().wrap(middleware::from_fn(json_errors))` for an app's own
/// routes.
pub async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    // JSON errors, and the OpenID provider's own error pages, stand as they are.
    let answered = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !status.is_client_error() || answered {
        return Ok(res);
    }
    let allow = res.headers().get(actix_web::http::header::ALLOW).cloned();
    let status = http::StatusCode::from_u16(status.as_u16()).unwrap_or_default();
    let mut replaced = respond(HttpError::from_status(status).into_response());
    if let Some(allow) = allow {
        replaced
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, allow);
    }
    Ok(res.into_response(replaced))
}

/// A signed-in user, by the bearer access token's signature and lifetime alone: no store
/// read, so a session revoked since the token was issued passes until it expires (minutes).
/// Use [`AuthenticatedLive`] where that matters. Needs `web::Data<Api>` in the app.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// A signed-in user whose session is still live and whose roles have not changed since
/// the token was signed (one store read).
#[derive(Debug, Clone)]
pub struct AuthenticatedLive(pub Claims);

/// [`Authenticated`] when the request has an `Authorization` header, `None` without one;
/// a header that does not verify is refused (actix's `Option<T>` would take it as
/// anonymous).
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Claims>);

/// [`AuthenticatedLive`] when the request has an `Authorization` header, `None` without.
#[derive(Debug, Clone)]
pub struct MaybeAuthenticatedLive(pub Option<Claims>);

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
#[derive(Debug)]
pub struct Refusal(HttpError);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> ActixStatus {
        ActixStatus::from_u16(self.0.status().as_u16())
            .unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        respond(self.0.clone().into_response())
    }
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, Refusal>>>>;

/// The request's headers as the `http` crate's.
fn headers_of(req: &HttpRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// The request's method as the `http` crate's.
fn method_of(req: &HttpRequest) -> http::Method {
    http::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or_default()
}

/// The request's method and headers as the `http` crate's, and the app's [`Api`].
fn parts(req: &HttpRequest) -> Result<(http::Method, http::HeaderMap, Api), Refusal> {
    let api = req
        .app_data::<web::Data<Api>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| {
            Refusal(HttpError::from(portcullis::Error::Config(
                "the app has no web::Data<Api>: add .app_data(web::Data::new(api))".into(),
            )))
        })?;
    Ok((method_of(req), headers_of(req), api))
}

/// The bearer as `check` requires it, from the app's `web::Data<Api>`.
fn verified(req: &HttpRequest, check: Check) -> Extracting<Claims> {
    let parts = parts(req);
    Box::pin(async move {
        let (method, headers, api) = parts?;
        let bearer = Bearer::check(&method, &headers, &api.auth, check)
            .await
            .map_err(Refusal)?;
        Ok(bearer.claims)
    })
}

/// Whether the request presents an access token at all (`Authorization`, or the access
/// cookie of [`browser`](portcullis_http::browser) mode).
fn has_authorization(req: &HttpRequest) -> bool {
    parts(req).is_ok_and(|(_, headers, api)| {
        portcullis_http::browser::presents_token(&headers, &api.auth)
    })
}

impl FromRequest for Authenticated {
    type Error = Refusal;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifying = verified(req, Check::Stateless);
        Box::pin(async move { Ok(Authenticated(verifying.await?)) })
    }
}

impl FromRequest for AuthenticatedLive {
    type Error = Refusal;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifying = verified(req, Check::Live);
        Box::pin(async move { Ok(AuthenticatedLive(verifying.await?)) })
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = Refusal;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !has_authorization(req) {
            return Box::pin(async { Ok(MaybeAuthenticated(None)) });
        }
        let verifying = Authenticated::from_request(req, payload);
        Box::pin(async move { Ok(MaybeAuthenticated(Some(verifying.await?.0))) })
    }
}

impl FromRequest for MaybeAuthenticatedLive {
    type Error = Refusal;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !has_authorization(req) {
            return Box::pin(async { Ok(MaybeAuthenticatedLive(None)) });
        }
        let verifying = AuthenticatedLive::from_request(req, payload);
        Box::pin(async move { Ok(MaybeAuthenticatedLive(Some(verifying.await?.0))) })
    }
}

impl<P: Permission> FromRequest for Permitted<P> {
    type Error = Refusal;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifying = verified(req, Check::Permission(P::NAME));
        Box::pin(async move { Ok(Permitted(verifying.await?, PhantomData)) })
    }
}
