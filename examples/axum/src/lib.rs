//! # example-axum
//!
//! portcullis behind axum: the REST API of `API.md` under `/api/v1`, its OpenAPI document
//! (generated from the handlers), the JWKS, and a login page with an account page. `main.rs`
//! reads the environment ([`settings`]) and serves [`app`]; tests build the same [`app`]
//! around their own engine.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use portcullis::Portcullis;

pub mod error;
pub mod extract;
pub mod routes;
pub mod settings;
pub mod sms;
pub mod views;
pub mod web;

pub use settings::{Cidr, Settings};

/// What every handler shares: the engine and the HTTP layer's own settings.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The inside of [`AppState`].
pub struct Shared {
    /// The engine.
    pub auth: Portcullis,
    /// Networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The bootstrap management key (`PORTCULLIS_ADMIN_KEY`), if set.
    pub admin_key: Option<String>,
}

impl AppState {
    /// State around `auth`, trusting no proxy and with no bootstrap key.
    pub fn new(auth: Portcullis) -> Self {
        AppState(Arc::new(Shared {
            auth,
            trusted_proxies: Vec::new(),
            admin_key: None,
        }))
    }

    /// The same with proxies to trust and a bootstrap key.
    pub fn with(auth: Portcullis, trusted_proxies: Vec<Cidr>, admin_key: Option<String>) -> Self {
        AppState(Arc::new(Shared {
            auth,
            trusted_proxies,
            admin_key,
        }))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole application: API, OpenAPI document, JWKS and pages, with security headers,
/// body limits and JSON errors.
pub fn app(state: AppState) -> Router {
    web::app(state)
}
