//! Test support: the example's app around an in-memory engine with capturing delivery
//! and a hand-moved clock, and a way to call it in-process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use example_axum::{AppState, app};
use http_body_util::BodyExt;
use latchkey::testing::{CapturingMailer, CapturingSms, test_keyring, test_pepper};
use latchkey::{Config, Latchkey, ManualClock};
use serde_json::Value;
use tower::ServiceExt;

/// The bootstrap key the tests' app accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";

pub struct TestApp {
    pub app: Router,
    pub auth: Latchkey,
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

    pub fn with_origin(origin: &str, change: impl FnOnce(&mut Config)) -> Self {
        let mail = CapturingMailer::new();
        let sms = CapturingSms::new();
        let clock = ManualClock::new(latchkey::Clock::now(&latchkey::SystemClock));
        let mut config = Config::new(origin);
        config.rp_name = "latchkey test".into();
        config.passwordless.delivery = latchkey::Delivery::Inline;
        change(&mut config);
        let auth = Latchkey::builder(config)
            .store(latchkey_memory::MemoryStore::new())
            .pepper(test_pepper())
            .keyring(test_keyring())
            .mailer(mail.clone())
            .sms(sms.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let state = AppState::with(
            auth.clone(),
            vec![example_axum::Cidr::parse("10.0.0.0/8").unwrap()],
            Some(ADMIN_KEY.to_owned()),
        );
        TestApp {
            app: app(state),
            auth,
            mail,
            sms,
            clock,
        }
    }

    pub async fn request(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
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
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
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

    /// The token of the last magic link to `to`.
    pub fn last_link_token(&self, to: &str) -> String {
        let mail = self
            .mail
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to)
            .unwrap_or_else(|| panic!("no email to {to}"));
        let link = mail.message.link.expect("a link");
        let url = url::Url::parse(link.secret()).unwrap();
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

    /// An access token for `email`, signed in by email code.
    pub async fn token_for(&self, email: &str) -> String {
        let answer = self.sign_in_by_code(email).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.str("token")
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}
