//! # portcullis-http
//!
//! portcullis over HTTP, written once for every web framework: the REST API's request and
//! response types, one handler per route as a plain
//! `async fn(&Portcullis, RequestContext, Req) -> Result<Resp, HttpError>`, [`HttpError`]
//! (status, JSON body, `Retry-After`, `WWW-Authenticate`), the client's address behind
//! trusted proxies, bearer parsing, and (feature `env`) a server's settings from the
//! environment. `portcullis-axum` and `portcullis-actix` mount [`routes()`] in their
//! framework; an application mounts those.
//!
//! A framework crate turns its request into a [`Call`] and the [`Response`] back:
//!
//! ```
//! # async fn demo(auth: portcullis::Portcullis) {
//! use portcullis_http::{Api, Call, routes};
//!
//! let api = Api::new(auth);
//! let route = routes().into_iter().find(|r| r.path == "/auth/status").unwrap();
//! let response = (route.handler)(api, Call::new()).await;
//! assert_eq!(response.status, http::StatusCode::UNAUTHORIZED); // no bearer
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ops::Deref;
use std::sync::Arc;

use portcullis::Portcullis;

pub mod browser;
mod call;
pub mod cors;
mod error;
mod extract;
pub mod net;
mod reply;

/// The largest request body the framework crates accept: a SAML response with many
/// attributes (WebAuthn answers are a few KiB).
pub const BODY_LIMIT: usize = 256 * 1024;
pub mod routes;
mod table;
pub mod views;

#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "env")]
pub mod settings;
#[cfg(feature = "env")]
pub mod sms;

pub use call::{Call, param_names};
pub use error::{ErrorBody, ErrorDetail, HttpError, HttpResult, scrub_values};
pub use extract::{
    Bearer, Caller, Check, FromCall, Json, OptionalJson, Path, Permission, Query, bearer_token,
    claims_allow, parse_id, require_permission,
};
pub use ipnet::IpNet;
pub use reply::{Reply, Response};
pub use table::{Handler, Route, routes, well_known};

/// The headers every API answer carries unless it set its own: no caching of tokens or
/// account data, no sniffing, no framing, no referrer.
pub const API_HEADERS: [(&str, &str); 5] = [
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
];

/// What every route shares: the engine and the HTTP layer's own settings. Cheap to clone.
#[derive(Clone)]
pub struct Api(Arc<Shared>);

/// The inside of [`Api`].
pub struct Shared {
    /// The engine.
    pub auth: Portcullis,
    /// Networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The bootstrap management key (`PORTCULLIS_ADMIN_KEY`), if any: a bearer equal to it
    /// may call every management route.
    admin_key: Option<AdminKey>,
    /// Where `/oauth2/authorize` sends a browser that must sign in (`?interaction=` is
    /// added): the login page, `/` by default.
    pub login_page: String,
    /// Origins whose pages may call the API from a browser ([`cors`]), normalized.
    pub allowed_origins: Vec<String>,
}

/// The bootstrap management key: compared in constant time, never printed.
#[derive(Clone)]
pub struct AdminKey(String);

impl AdminKey {
    /// The shortest key accepted.
    pub const MIN_LEN: usize = 32;

    /// A key of at least [`MIN_LEN`](Self::MIN_LEN) characters.
    pub fn new(key: impl Into<String>) -> Result<AdminKey, portcullis::Error> {
        let key = key.into();
        if key.len() < Self::MIN_LEN {
            return Err(portcullis::Error::Config(format!(
                "the admin key must be at least {} characters",
                Self::MIN_LEN
            )));
        }
        Ok(AdminKey(key))
    }

    /// Whether `presented` is this key (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        portcullis::crypto::ct_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey([redacted])")
    }
}

impl Api {
    /// The API around `auth`, trusting no proxy and with no bootstrap key.
    pub fn new(auth: Portcullis) -> Self {
        Api(Arc::new(Shared {
            auth,
            trusted_proxies: Vec::new(),
            admin_key: None,
            login_page: "/".into(),
            allowed_origins: Vec::new(),
        }))
    }

    /// The same, believing `X-Forwarded-For` from these networks.
    pub fn trusting(self, proxies: Vec<IpNet>) -> Self {
        self.change(|shared| shared.trusted_proxies = proxies)
    }

    /// The same, accepting `key` as a bootstrap management credential.
    pub fn admin_key(self, key: Option<AdminKey>) -> Self {
        self.change(|shared| shared.admin_key = key)
    }

    /// The same, sending browsers that must sign in at `/oauth2/authorize` to this login
    /// page (a path, or a URL on the issuer's origin).
    pub fn login_page(self, page: impl Into<String>) -> Self {
        let page = page.into();
        self.change(|shared| shared.login_page = page)
    }

    /// The same, letting pages on these origins call the API from a browser ([`cors`]):
    /// each a scheme, host and port, matched exactly. [`Error::Config`] for a wildcard,
    /// a path, or `http` off loopback.
    ///
    /// [`Error::Config`]: portcullis::Error::Config
    pub fn allowed_origins(self, origins: &[&str]) -> Result<Self, portcullis::Error> {
        let origins = origins
            .iter()
            .map(|o| cors::parse_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.change(|shared| shared.allowed_origins = origins))
    }

    fn change(self, edit: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = match Arc::try_unwrap(self.0) {
            Ok(shared) => shared,
            Err(arc) => Shared {
                auth: arc.auth.clone(),
                trusted_proxies: arc.trusted_proxies.clone(),
                admin_key: arc.admin_key.clone(),
                login_page: arc.login_page.clone(),
                allowed_origins: arc.allowed_origins.clone(),
            },
        };
        edit(&mut shared);
        Api(Arc::new(shared))
    }
}

impl Deref for Api {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl From<Portcullis> for Api {
    fn from(auth: Portcullis) -> Self {
        Api::new(auth)
    }
}
