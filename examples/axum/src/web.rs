//! The application around the API: pages, the OpenAPI document, the JWKS, security
//! headers, body limits and JSON errors for whatever the router itself refuses.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The largest request body accepted (WebAuthn answers are a few KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The page's Content-Security-Policy: its own script and style only, QR codes as data
/// URLs, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

const INDEX: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");

pub(crate) fn app(state: AppState) -> Router {
    let (api, doc) = crate::routes::api();
    let doc: Arc<str> = match doc.to_pretty_json() {
        Ok(json) => json.into(),
        Err(_) => "{}".into(),
    };
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .route("/.well-known/jwks.json", get(jwks))
        .route("/", get(page))
        .route("/magic-link", get(page))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .layer(middleware::from_fn(headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The public keys that verify access tokens (RFC 7517).
async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.auth.tokens().jwks().await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(keys),
    )
        .into_response())
}

/// Security headers on every response; `no-store` on every API answer; and a JSON error
/// body for the router's own refusals (405, 413…), which axum sends as plain text.
async fn headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.as_u16() >= 400 && !is_json {
        let allow = response.headers().get(header::ALLOW).cloned();
        response = ApiError::from_status(status).into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    let h = response.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if api {
        h.insert("pragma", HeaderValue::from_static("no-cache"));
    }
    response
}
