//! # example-axum
//!
//! portcullis in an axum app: the REST API of `API.md` mounted from `portcullis-axum`
//! under `/api/v1` with its OpenAPI document, the JWKS, a protected resource of the app's
//! own (`GET /api/v1/demo/invoices`, for holders of `invoices:read`), and a login page with
//! an account page. `main.rs` reads the environment and serves [`app`]; tests build the
//! same [`app`] around their own engine.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_axum::{Api, HttpError, Permitted};
use portcullis_http::views::List;

#[path = "../../demo/invoices.rs"]
pub mod invoices;

use invoices::{Invoice, InvoicesRead};

/// The page's Content-Security-Policy: its own script and style only, QR codes as data
/// URLs, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

const INDEX: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");

/// The whole application around `api`.
pub fn app(api: Api) -> Router {
    Router::new()
        .nest("/api/v1", portcullis_axum::routes(api.clone()))
        .merge(portcullis_axum::well_known(api.clone()))
        .route("/api/v1/demo/invoices", get(list_invoices))
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
        .fallback(|| async {
            portcullis_axum::respond(HttpError::not_found("route").into_response())
        })
        .layer(middleware::map_response(portcullis_axum::json_errors))
        .layer(middleware::from_fn(site_headers))
        .with_state(api)
}

/// `GET /api/v1/demo/invoices`: only for a signed-in user holding `invoices:read`.
async fn list_invoices(user: Permitted<InvoicesRead>) -> Json<List<Invoice>> {
    let _ = user.claims();
    Json(invoices::all())
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

/// The security headers on the pages too, and the API's headers on the app's own API
/// routes (the mounted API sets its own).
async fn site_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in portcullis_http::API_HEADERS {
        let page_header = !matches!(name, "cache-control" | "pragma");
        if (api || page_header) && !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
