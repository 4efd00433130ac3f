//! [`app`]: the actix `App` around the routes: the engine as app data, JSON errors for
//! bodies, queries and paths that do not parse and for unknown routes, body limits,
//! security headers, and the JWKS.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{self, Next};
use actix_web::{App, HttpResponse, ResponseError, web};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::Endpoint;

/// The largest request body accepted (a WebAuthn answer is a few KiB): larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The whole application around `state`: give it to `HttpServer::new(move ||
/// app(state.clone()))`, or to `actix_web::test::init_service`. More services can be
/// added to it (`.service(..)`); they get the same headers and JSON errors.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(BODY_LIMIT)
                .error_handler(|err, _| json_error(err).into()),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|err, _| {
                ApiError::unparsable("invalid query", &err.to_string()).into()
            }),
        )
        .app_data(
            web::PathConfig::default().error_handler(|err, _| {
                ApiError::unparsable("invalid path", &err.to_string()).into()
            }),
        )
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .configure(crate::routes::configure)
        .service(Endpoint::at("/.well-known/jwks.json").get(jwks).done())
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::no_route())
        }))
        .wrap(middleware::from_fn(headers))
}

/// A JSON body that could not be read: 413, 415, or 400 with serde's reason (values cut).
fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::unparsable("the JSON body does not fit this route", &e.to_string())
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::unparsable("malformed JSON body", &e.to_string())
        }
        // actix answers 400 for these; the API (as the axum example) 415.
        JsonPayloadError::ContentType => {
            ApiError::from_status(actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
        }
        other => ApiError::from_status(other.status_code()),
    }
}

/// The public keys that verify access tokens (RFC 7517).
async fn jwks(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let keys = state.auth.tokens().jwks().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(keys))
}

/// Security headers on every answer and `no-store` on the API's; and whatever error actix
/// answered by itself in plain text (an oversized raw body, say) becomes a JSON error.
async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Actix routes on the percent-decoded path ("/%61pi/v1/…" reaches the API), so the
    // decoded path decides too.
    let api = req.path().starts_with("/api/") || req.match_info().as_str().starts_with("/api/");
    // Handlers, extractors and the guard answer their errors as responses, so an `Err`
    // here is actix's own and rare; it is answered by actix as usual. (The request cannot
    // be kept to build a response from: routing needs it unshared.)
    // JSON is `application/json` or `application/…+json`, as axum requires; actix's own
    // check takes any `…/json` (`text/json`), so such a body is refused here.
    let mut res = if json_of_another_type(&req) {
        let unsupported = actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let refused = ApiError::from_status(unsupported).error_response();
        req.into_response(refused).map_into_boxed_body()
    } else {
        next.call(req).await?.map_into_boxed_body()
    };
    let status = res.status();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.as_u16() >= 400 && !json {
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut replaced = ApiError::from_status(status).error_response();
        if let Some(allow) = allow {
            replaced.headers_mut().insert(header::ALLOW, allow);
        }
        res = res.into_response(replaced);
    }
    let h = res.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if api {
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(res)
}

/// A body labelled JSON (`…/json`, `…/…+json`) whose type is not `application`.
fn json_of_another_type(req: &ServiceRequest) -> bool {
    use actix_web::mime;
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
                && m.type_() != mime::APPLICATION
        })
}
