//! Test support: the framework's example app around an in-memory engine with capturing
//! delivery and a hand-moved clock, and a way to call it in process.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::testing::{CapturingMailer, CapturingSms, test_keyring, test_pepper};
use portcullis::{Config, ManualClock, Portcullis, PortcullisBuilder};
use portcullis_http::Api;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The framework whose example app the suite drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// `portcullis-axum` in `examples/axum`.
    Axum,
    /// `portcullis-actix` in `examples/actix`.
    Actix,
}

/// Asserts a refusal: its status and code, a message, a body holding only `error`, and a
/// JSON content type.
#[track_caller]
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.code(), code, "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "an error message: {}", answer.body);
    assert_eq!(
        answer.body.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {}",
        answer.body
    );
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "a JSON error: {:?}",
        answer.headers
    );
}

/// Asserts a refusal of the request's own credential: 401 with `code` and the
/// `WWW-Authenticate: Bearer` challenge.
#[track_caller]
pub fn assert_challenged(answer: &Answer, code: &str) {
    assert_error(answer, StatusCode::UNAUTHORIZED, code);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
}

/// A request as the tests write it: any body, optionally from a peer address.
pub type Raw = Request<Vec<u8>>;

const HOUR: Duration = Duration::from_secs(3600);

/// The bootstrap key the tests' app accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";

/// Everything an organization's administrator role holds in the tests.
pub const ADMIN_PERMISSIONS: [&str; 14] = [
    "organizations:read",
    "organizations:write",
    "roles:read",
    "roles:write",
    "permissions:read",
    "permissions:write",
    "users:read",
    "users:write",
    "apps:read",
    "apps:write",
    "api_keys:read",
    "api_keys:write",
    "logs:read",
    "sso:manage",
];

pub struct TestApp {
    /// The engine's store, for [`sibling`](Self::sibling).
    store: portcullis_memory::MemoryStore,
    /// The engine's configuration.
    config: Config,
    /// The framework whose example app answers.
    pub framework: Framework,
    pub api: Api,
    pub auth: Portcullis,
    pub mail: CapturingMailer,
    pub sms: CapturingSms,
    pub clock: ManualClock,
}

/// An answer: status, headers and the JSON body (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field} in {}", self.body))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_origin("http://localhost:8080", |_| {})
    }

    pub fn with_config(change: impl FnOnce(&mut Config)) -> Self {
        Self::with_origin("http://localhost:8080", change)
    }

    /// Send limits loosened (1 s cooldown, 1000 sends per address), for tests that sign the
    /// same person in many times and are not about the limits.
    pub fn relaxed() -> Self {
        Self::with_config(|config| {
            config.limits.send_cooldown = Duration::from_secs(1);
            config.limits.sends_per_recipient = portcullis::RateLimit::sliding(1000, HOUR);
            config.sms.per_number = portcullis::RateLimit::sliding(1000, HOUR);
            config.sms.per_ip = portcullis::RateLimit::sliding(1000, HOUR);
        })
    }

    pub fn with_origin(origin: &str, change: impl FnOnce(&mut Config)) -> Self {
        Self::build(origin, change, false, |builder| builder)
    }

    /// With an optional policy set on the engine's builder (a `Locate` hook).
    pub fn with_builder(extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder) -> Self {
        Self::build("http://localhost:8080", |_| {}, false, extra)
    }

    /// For a real browser at `origin`: the system clock (the page computes TOTP codes
    /// from real time) and a 1 s send cooldown (the page asks for several codes), and
    /// whatever `extra` sets on the builder.
    pub fn for_browser(
        origin: &str,
        extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
    ) -> Self {
        Self::build(
            origin,
            |config| config.limits.send_cooldown = Duration::from_secs(1),
            true,
            extra,
        )
    }

    /// [`for_browser`](Self::for_browser) with a change of its configuration.
    pub fn for_browser_with(
        origin: &str,
        change: impl FnOnce(&mut Config),
        extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
    ) -> Self {
        Self::build(
            origin,
            |config| {
                config.limits.send_cooldown = Duration::from_secs(1);
                change(config);
            },
            true,
            extra,
        )
    }

    fn build(
        origin: &str,
        change: impl FnOnce(&mut Config),
        real_clock: bool,
        extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
    ) -> Self {
        let mail = CapturingMailer::new();
        let sms = CapturingSms::new();
        let clock = ManualClock::new(portcullis::Clock::now(&portcullis::SystemClock));
        let mut config = Config::new(origin);
        config.rp_name = "portcullis test".into();
        config.passwordless.delivery = portcullis::Delivery::Inline;
        change(&mut config);
        let store = portcullis_memory::MemoryStore::new();
        let auth = Portcullis::builder(config.clone())
            .store(store.clone())
            .pepper(test_pepper())
            .keyring(test_keyring())
            .mailer(mail.clone())
            .sms(sms.clone())
            .clock(clock.clone());
        let auth = if real_clock {
            auth.clock(portcullis::SystemClock)
        } else {
            auth
        };
        let auth = extra(auth).build().unwrap();
        let api = Api::new(auth.clone())
            .trusting(portcullis_http::net::parse_networks("10.0.0.0/8").unwrap())
            .admin_key(Some(portcullis_http::AdminKey::new(ADMIN_KEY).unwrap()));
        TestApp {
            store,
            config,
            framework: crate::FRAMEWORK,
            api,
            auth,
            mail,
            sms,
            clock,
        }
    }

    /// Sends `request` through the framework's app, from `peer` when given.
    pub async fn send(&self, request: Raw, peer: Option<SocketAddr>) -> Answer {
        // A server sends no body to HEAD; actix's in-process service still returns one.
        let head = request.method() == Method::HEAD;
        let (status, headers, bytes) = match self.framework {
            Framework::Axum => {
                let mut request = request.map(axum::body::Body::from);
                if let Some(peer) = peer {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                let app = example_axum::app(self.api.clone()).merge(axum_probes(&self.api));
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (status, headers, bytes.to_vec())
            }
            Framework::Actix => {
                use actix_web::test;
                let app = test::init_service(
                    example_actix::app(self.api.clone()).configure(actix_probes),
                )
                .await;
                let (parts, body) = request.into_parts();
                let mut sent = test::TestRequest::default()
                    .method(parts.method.as_str().parse().unwrap())
                    .uri(&parts.uri.to_string())
                    .set_payload(body);
                for (name, value) in &parts.headers {
                    sent = sent.append_header((name.as_str(), value.as_bytes()));
                }
                if let Some(peer) = peer {
                    sent = sent.peer_addr(peer);
                }
                let response = test::call_service(&app, sent.to_request()).await;
                let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
                let mut headers = HeaderMap::new();
                for (name, value) in response.headers() {
                    headers.append(
                        http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                        http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                    );
                }
                let bytes = test::read_body(response).await;
                (status, headers, bytes.to_vec())
            }
        };
        let bytes = if head { Vec::new() } else { bytes };
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    /// Another engine on the same store, keys and clock, with `change` made to its
    /// configuration: it signs with the same keys.
    pub fn sibling(&self, change: impl FnOnce(&mut Config)) -> Portcullis {
        let mut config = self.config.clone();
        change(&mut config);
        Portcullis::builder(config)
            .store(self.store.clone())
            .pepper(test_pepper())
            .keyring(test_keyring())
            .mailer(self.mail.clone())
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }

    /// The engine's store, for what no API shows (such as federated identities).
    pub fn store(&self) -> &portcullis_memory::MemoryStore {
        &self.store
    }

    /// The same engine and delivery, answered by `framework`'s app.
    pub fn on(mut self, framework: Framework) -> Self {
        self.framework = framework;
        self
    }

    /// Sends `request` with no peer address.
    pub async fn request(&self, request: Raw) -> Answer {
        self.send(request, None).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes()),
            None => request.body(Vec::new()),
        };
        self.request(request.unwrap()).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, bearer).await
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), bearer).await
    }

    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, None, bearer).await
    }

    /// The code in the last email to `to`.
    pub fn last_email_code(&self, to: &str) -> String {
        let mail = self
            .mail
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to)
            .unwrap_or_else(|| panic!("no email to {to}"));
        mail.message.code.expect("a code").secret().to_owned()
    }

    /// The last magic link emailed to `to`, whole.
    pub fn last_link(&self, to: &str) -> String {
        let mail = self
            .mail
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to && m.message.link.is_some())
            .unwrap_or_else(|| panic!("no magic link to {to}"));
        mail.message.link.expect("a link").secret().to_owned()
    }

    /// The token of the last magic link to `to`.
    pub fn last_link_token(&self, to: &str) -> String {
        let url = url::Url::parse(&self.last_link(to)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    /// Signs `email` in (or up) by email code; returns the sign-in answer.
    pub async fn sign_in_by_code(&self, email: &str) -> Answer {
        let sent = self
            .post(
                "/api/v1/auth/passwordless/email-code",
                serde_json::json!({"email": email}),
                None,
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        let code = self.last_email_code(email);
        self.post(
            "/api/v1/auth/passwordless/email-code/verify",
            serde_json::json!({"request_id": sent.str("request_id"), "code": code}),
            None,
        )
        .await
    }

    /// Signs `email` up with `password` and finishes with the emailed code: the answer of
    /// `POST /auth/signup/verify`.
    pub async fn password_signup(&self, email: &str, password: &str) -> Answer {
        let started = self
            .post(
                "/api/v1/auth/password/signup",
                serde_json::json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        let code = self.last_email_code(email);
        self.post(
            "/api/v1/auth/signup/verify",
            serde_json::json!({"request_id": started.str("request_id"), "code": code}),
            None,
        )
        .await
    }

    /// An access token for `email`, signed in by email code.
    pub async fn token_for(&self, email: &str) -> String {
        let answer = self.sign_in_by_code(email).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.str("token")
    }

    /// A request with extra headers and, optionally, the socket's peer address (what
    /// `into_make_service_with_connect_info` gives handlers).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        peer: Option<SocketAddr>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes()),
            None => request.body(Vec::new()),
        }
        .unwrap();
        self.send(request, peer).await
    }

    pub async fn put(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::PUT, path, Some(body), bearer).await
    }

    pub async fn patch(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::PATCH, path, Some(body), bearer).await
    }

    /// The code in the last text to `to`.
    pub fn last_sms_code(&self, to: &str) -> String {
        let sms = self
            .sms
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to)
            .unwrap_or_else(|| panic!("no text to {to}"));
        sms.message.code.expect("a code").secret().to_owned()
    }

    /// Signs `email` in by email code, in the organization of `client_id` when given, after
    /// moving the clock past the send cooldown (so it can be called again for one address).
    pub async fn sign_in_via(&self, email: &str, client_id: Option<&str>) -> Answer {
        self.advance(self.auth.config().limits.send_cooldown);
        let query = client_id.map_or(String::new(), |c| format!("?client_id={c}"));
        let sent = self
            .post(
                &format!("/api/v1/auth/passwordless/email-code{query}"),
                json!({"email": email}),
                None,
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        let code = self.last_email_code(email);
        self.post(
            &format!("/api/v1/auth/passwordless/email-code/verify{query}"),
            json!({"request_id": sent.str("request_id"), "code": code}),
            None,
        )
        .await
    }

    /// An access token for `email` (see [`sign_in_via`](Self::sign_in_via)).
    pub async fn token_via(&self, email: &str, client_id: Option<&str>) -> String {
        let answer = self.sign_in_via(email, client_id).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.str("token")
    }

    /// The bearer's `GET /auth/status`.
    pub async fn status_of(&self, token: &str) -> Answer {
        self.get("/api/v1/auth/status", Some(token)).await
    }

    /// A new public app in `org` redirecting to `redirect_uri`: its client id.
    pub async fn app_in(&self, org: portcullis::OrgId, redirect_uri: &str) -> String {
        let mut app = portcullis::directory::NewApp::default();
        app.name = "Test app".into();
        app.redirect_uris = vec![redirect_uri.to_owned()];
        let created = self.auth.orgs().create_app(org, &app).await.unwrap();
        created.app.client_id.as_str().to_owned()
    }

    /// The default organization's id.
    pub async fn default_org(&self) -> portcullis::OrgId {
        self.auth.orgs().default_org().await.unwrap().id
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Two routes the API does not have, for the extractors by themselves: they answer the
/// verified user's id, by the token alone (`/probe/stateless`) or with its session
/// (`/probe/live`).
pub const PROBES: [&str; 2] = ["/probe/stateless", "/probe/live"];

fn axum_probes(api: &Api) -> axum::Router {
    use portcullis_axum::{Authenticated, AuthenticatedLive};
    axum::Router::new()
        .route(
            PROBES[0],
            axum::routing::get(|Authenticated(claims): Authenticated| async move {
                axum::Json(serde_json::json!({"user_id": claims.sub.to_string()}))
            }),
        )
        .route(
            PROBES[1],
            axum::routing::get(|AuthenticatedLive(claims): AuthenticatedLive| async move {
                axum::Json(serde_json::json!({"user_id": claims.sub.to_string()}))
            })
            .post(|AuthenticatedLive(claims): AuthenticatedLive| async move {
                axum::Json(serde_json::json!({"user_id": claims.sub.to_string()}))
            }),
        )
        .with_state(api.clone())
}

fn actix_probes(config: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    use portcullis_actix::{Authenticated, AuthenticatedLive};
    config
        .route(
            PROBES[0],
            web::get().to(|user: Authenticated| async move {
                web::Json(serde_json::json!({"user_id": user.0.sub.to_string()}))
            }),
        )
        .route(
            PROBES[1],
            web::get().to(|user: AuthenticatedLive| async move {
                web::Json(serde_json::json!({"user_id": user.0.sub.to_string()}))
            }),
        )
        .route(
            PROBES[1],
            web::post().to(|user: AuthenticatedLive| async move {
                web::Json(serde_json::json!({"user_id": user.0.sub.to_string()}))
            }),
        );
}
