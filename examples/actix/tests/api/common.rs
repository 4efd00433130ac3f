//! Test support: the actix app around an in-memory engine with capturing delivery and a
//! hand-moved clock, called in process with `actix_web::test`.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::{HttpResponse, web};
use example_actix::{AppState, Authenticated, AuthenticatedLive, Cidr};
use portcullis::testing::{CapturingMailer, CapturingSms, test_keyring, test_pepper};
use portcullis::{Config, ManualClock, Portcullis, PortcullisBuilder};
use portcullis_memory::MemoryStore;
use serde_json::{Value, json};

/// The origin the tests' engine serves (and their software authenticator uses).
pub const ORIGIN: &str = "http://localhost:8080";

pub struct TestApp {
    pub state: AppState,
    pub auth: Portcullis,
    pub store: MemoryStore,
    pub mail: CapturingMailer,
    pub sms: CapturingSms,
    pub clock: ManualClock,
}

/// An answer: status, headers, and the body as JSON (`Null` when empty or not JSON).
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

/// Asserts a refusal: its status, code, a message, JSON, and nothing but `error`.
#[track_caller]
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.code(), code, "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "a message: {}", answer.body);
    assert_eq!(answer.body.as_object().map(|o| o.len()), Some(1));
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        answer.headers
    );
}

/// Asserts a finished sign-in: the token fields of `API.md`.
#[track_caller]
pub fn assert_tokens(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["token"].as_str().is_some_and(|t| t.len() > 20));
    assert!(answer.body["refresh_token"].as_str().is_some());
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    assert!(answer.body["user_id"].as_str().is_some());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

/// Two routes the API does not have, for the extractors by themselves: they answer the
/// verified user's id.
fn probes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/probe/stateless",
        web::get().to(|user: Authenticated| async move {
            HttpResponse::Ok().json(json!({"user_id": user.claims.sub.to_string()}))
        }),
    )
    .route(
        "/probe/live",
        web::get().to(|user: AuthenticatedLive| async move {
            HttpResponse::Ok().json(json!({"user_id": user.claims.sub.to_string()}))
        }),
    );
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// Send limits loosened, for tests that sign one person in many times.
    pub fn relaxed() -> Self {
        Self::with_config(|config| {
            config.limits.send_cooldown = Duration::from_secs(1);
            config.limits.sends_per_recipient = portcullis::RateLimit::sliding(1000, HOUR);
        })
    }

    pub fn with_config(change: impl FnOnce(&mut Config)) -> Self {
        Self::build(change, |builder| builder)
    }

    /// With an optional policy set on the engine's builder (a `Locate` hook).
    pub fn with_builder(extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder) -> Self {
        Self::build(|_| {}, extra)
    }

    fn build(
        change: impl FnOnce(&mut Config),
        extra: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
    ) -> Self {
        let mail = CapturingMailer::new();
        let sms = CapturingSms::new();
        let clock = ManualClock::new(portcullis::Clock::now(&portcullis::SystemClock));
        let store = MemoryStore::new();
        let mut config = test_config();
        change(&mut config);
        let builder = Portcullis::builder(config)
            .store(store.clone())
            .pepper(test_pepper())
            .keyring(test_keyring())
            .mailer(mail.clone())
            .sms(sms.clone())
            .clock(clock.clone());
        let auth = extra(builder).build().unwrap();
        let proxies = vec![Cidr::parse("10.0.0.0/8").unwrap()];
        TestApp {
            state: AppState::with_proxies(auth.clone(), proxies),
            auth,
            store,
            mail,
            sms,
            clock,
        }
    }

    /// Another engine on the same store, keys and clock, with `change` made to its
    /// configuration: it signs with the same keys.
    pub fn sibling(&self, change: impl FnOnce(&mut Config)) -> Portcullis {
        let mut config = test_config();
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

    pub async fn request(&self, request: TestRequest) -> Answer {
        let app =
            test::init_service(example_actix::app(self.state.clone()).configure(probes)).await;
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = test::read_body(response).await.to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Answer {
        self.call_with(method, path, body, bearer, &[], None).await
    }

    /// A request with extra headers and, optionally, the socket's peer address.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        peer: Option<SocketAddr>,
    ) -> Answer {
        let mut request = TestRequest::default().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        if let Some(body) = body {
            request = request
                .insert_header(("content-type", "application/json"))
                .set_payload(body.to_string());
        }
        if let Some(peer) = peer {
            request = request.peer_addr(peer);
        }
        self.request(request).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, bearer).await
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), bearer).await
    }

    pub async fn patch(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::PATCH, path, Some(body), bearer).await
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

    /// The token of the last magic link to `to`.
    pub fn last_link_token(&self, to: &str) -> String {
        let mail = self
            .mail
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to && m.message.link.is_some())
            .unwrap_or_else(|| panic!("no link to {to}"));
        let link = mail.message.link.expect("a link");
        let url = url::Url::parse(link.secret()).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    /// Signs `email` in by email code, in the organization of `client_id` when given, the
    /// clock first moved past the send cooldown: the sign-in's answer.
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

    pub async fn token_for(&self, email: &str) -> String {
        self.token_via(email, None).await
    }

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

    pub async fn default_org(&self) -> portcullis::OrgId {
        self.auth.orgs().default_org().await.unwrap().id
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn test_config() -> Config {
    let mut config = Config::new(ORIGIN);
    config.rp_name = "portcullis test".into();
    config.passwordless.delivery = portcullis::Delivery::Inline;
    config
}
