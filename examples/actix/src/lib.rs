//! # example-actix
//!
//! portcullis behind actix-web 4: the same engine the axum example serves, wired in with the
//! pieces an actix application would copy into its own code.
//!
//! - [`Authenticated`] and [`AuthenticatedLive`]: extractors that turn
//!   `Authorization: Bearer <access token>` into verified [`Claims`](portcullis::tokens::Claims)
//!   (the second also checks that the session is still live);
//! - [`RequirePermission`]: middleware that lets a request through only with a permission
//!   (`.wrap(RequirePermission("invoices:read"))`);
//! - [`ApiError`]: [`portcullis::Error`] as actix responses, `{"error": {"code", "message"}}`
//!   with the statuses of the axum example;
//! - [`app()`]: the authentication routes of `API.md` under `/api/v1`, the JWKS, and a
//!   protected demo resource, `GET /api/v1/demo/invoices`.
//!
//! ```rust,ignore
//! use actix_web::{HttpServer, web};
//! use example_actix::{AppState, Authenticated, RequirePermission};
//!
//! async fn invoices(user: Authenticated) -> String {
//!     format!("invoices for {}", user.claims.sub)
//! }
//!
//! let state = AppState::new(auth); // auth: portcullis::Portcullis
//! HttpServer::new(move || {
//!     example_actix::app(state.clone()).service(
//!         web::resource("/invoices")
//!             .wrap(RequirePermission("invoices:read"))
//!             .get(invoices),
//!     )
//! });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;

use portcullis::Portcullis;

pub mod app;
pub mod error;
pub mod extract;
pub mod guard;
pub mod routes;
pub mod settings;
pub mod views;

pub use app::{BODY_LIMIT, app};
pub use error::{ApiError, ApiResult};
pub use extract::{Authenticated, AuthenticatedLive, Ctx, MaybeAuthenticated};
pub use guard::RequirePermission;
pub use settings::{Cidr, Settings};

/// What handlers and extractors share, registered as `web::Data<AppState>`: the engine and
/// the proxies whose `X-Forwarded-For` is believed. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub auth: Portcullis,
    trusted_proxies: Arc<[Cidr]>,
}

impl AppState {
    /// State around `auth`, trusting no proxy: the socket's address is the client's.
    pub fn new(auth: Portcullis) -> Self {
        Self::with_proxies(auth, Vec::new())
    }

    /// State around `auth`, believing `X-Forwarded-For` from `trusted_proxies`.
    pub fn with_proxies(auth: Portcullis, trusted_proxies: Vec<Cidr>) -> Self {
        AppState {
            auth,
            trusted_proxies: trusted_proxies.into(),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}
