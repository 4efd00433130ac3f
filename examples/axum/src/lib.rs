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
use axum::extract::{Query, Request, State};
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
const SETUP: &str = include_str!("../static/setup.html");
const SETUP_SCRIPT: &str = include_str!("../static/setup.js");
const STYLE: &str = include_str!("../static/style.css");
const ADMIN: &str = include_str!("../static/admin.html");
const ADMIN_SCRIPT: &str = include_str!("../static/admin.js");
const ADMIN_STYLE: &str = include_str!("../static/admin.css");
/// The browser SDK (`sdk/js`), served as one ES module.
const SDK: &str = include_str!("../../../sdk/js/portcullis.js");
/// The login widget (`<portcullis-login>`), which imports the SDK beside it.
const WIDGET: &str = include_str!("../../../sdk/js/widget.js");

/// The whole application around `api`.
pub fn app(api: Api) -> Router {
    Router::new()
        .nest("/api/v1", portcullis_axum::routes(api.clone()))
        .merge(portcullis_axum::well_known(api.clone()))
        .route("/api/v1/demo/invoices", get(list_invoices))
        .route("/", get(page))
        .route("/magic-link", get(page))
        .route("/unblock", get(page))
        .route("/setup", get(setup_page))
        .route("/admin", get(|| async { html(ADMIN) }))
        .route("/admin/config.json", get(admin_config))
        .route(
            "/admin.js",
            get(|| asset("text/javascript; charset=utf-8", ADMIN_SCRIPT)),
        )
        .route(
            "/admin.css",
            get(|| asset("text/css; charset=utf-8", ADMIN_STYLE)),
        )
        .route("/login-page.json", get(login_page_config))
        .route(
            "/setup.js",
            get(|| asset("text/javascript; charset=utf-8", SETUP_SCRIPT)),
        )
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/sdk/portcullis.js", get(|| sdk_asset(SDK)))
        .route("/sdk/widget.js", get(|| sdk_asset(WIDGET)))
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
    html(INDEX)
}

/// The IT-admin setup page a setup link opens (`/setup?token=`).
async fn setup_page() -> Response {
    html(SETUP)
}

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The name of the login page's own app in the default organization.
const LOGIN_PAGE_APP: &str = "Login page";

/// `GET /login-page.json?org_id=`: `{client_id}` of the login page's own (public) app in
/// the organization (the default one when none is named), whose one redirect URI is the
/// page itself: SSO and Google sign-ins come back to it with an authorization code
/// (PKCE), for a session in the organization of the connection. Made on first use, and
/// only in the default organization or one with an active SSO connection.
async fn login_page_config(
    State(api): State<Api>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let org = match query
        .get("org_id")
        .map(|id| id.parse::<portcullis::OrgId>())
    {
        Some(Ok(org)) => Some(org),
        Some(Err(err)) => return portcullis_axum::respond(HttpError::from(err).into_response()),
        None => None,
    };
    match login_page_app(&api.auth, org).await {
        Ok(client_id) => Json(serde_json::json!({ "client_id": client_id })).into_response(),
        Err(err) => portcullis_axum::respond(HttpError::from(err).into_response()),
    }
}

/// The login page's app: found by name and redirect URI, or created.
pub async fn login_page_app(
    auth: &portcullis::Portcullis,
    org: Option<portcullis::OrgId>,
) -> Result<String, portcullis::Error> {
    let redirect = format!("{}/", auth.public_origin().as_str().trim_end_matches('/'));
    let org = match org {
        Some(org) => {
            let active = auth
                .sso()
                .connections(org)
                .await?
                .iter()
                .any(|c| c.status == portcullis::model::ConnectionStatus::Active);
            if !active {
                return Err(portcullis::Error::NotFound {
                    what: "sso_connection",
                });
            }
            org
        }
        None => auth.orgs().default_org().await?.id,
    };
    page_app(auth, org, LOGIN_PAGE_APP, redirect).await
}

/// The client id of the app `name` redirecting to `redirect` in `org`, made on first use:
/// a page signs people in through it, in that organization.
async fn page_app(
    auth: &portcullis::Portcullis,
    org: portcullis::OrgId,
    name: &str,
    redirect: String,
) -> Result<String, portcullis::Error> {
    let apps = auth.orgs().apps(org).await?;
    if let Some(app) = apps
        .iter()
        .find(|a| a.name == name && a.redirect_uris == [redirect.clone()])
    {
        return Ok(app.client_id.as_str().to_owned());
    }
    let mut new = portcullis::directory::NewApp::default();
    new.name = name.into();
    new.redirect_uris = vec![redirect];
    let created = auth.orgs().create_app(org, &new).await?;
    Ok(created.app.client_id.as_str().to_owned())
}

/// What the dashboard (`/admin?org=<slug>`) signs in with: the organization (the default
/// one without a slug) and the client id of its dashboard app.
async fn admin_config(
    State(api): State<Api>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let found = match query.get("org") {
        Some(slug) => api.auth.orgs().get_by_slug(slug).await,
        None => api.auth.orgs().default_org().await,
    };
    let org = match found {
        Ok(org) => org,
        Err(err) => return portcullis_axum::respond(HttpError::from(err).into_response()),
    };
    let default = api.auth.orgs().default_org().await.map(|d| d.id == org.id);
    let redirect = format!(
        "{}/admin",
        api.auth.public_origin().as_str().trim_end_matches('/')
    );
    match (
        page_app(&api.auth, org.id, "Dashboard", redirect).await,
        default,
    ) {
        (Ok(client_id), Ok(default)) => Json(serde_json::json!({
            "client_id": client_id,
            "org_id": org.id.to_string(),
            "org_name": org.name,
            "default": default,
        }))
        .into_response(),
        (Err(err), _) | (_, Err(err)) => {
            portcullis_axum::respond(HttpError::from(err).into_response())
        }
    }
}

/// The SDK and the widget: public scripts that pages on other sites load as modules (so
/// with CORS, and no credentials).
async fn sdk_asset(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
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
