//! The HTTP layer: every route is served, refusals are JSON errors (bodies, queries,
//! paths, unknown routes, wrong methods, oversized bodies), security headers, the JWKS,
//! and whose `X-Forwarded-For` is believed.

use std::net::SocketAddr;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error};

/// Every route the actix example serves: the authentication routes of `API.md` (with the
/// password reset pair the axum example has too) and the demo resource.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/passwordless/magic-link"),
    ("POST", "/auth/passwordless/magic-link/resend"),
    ("GET", "/auth/passwordless/magic-link/verify"),
    ("POST", "/auth/passwordless/magic-link/verify"),
    ("GET", "/auth/passwordless/magic-link/status"),
    ("POST", "/auth/passwordless/email-code"),
    ("POST", "/auth/passwordless/email-code/resend"),
    ("POST", "/auth/passwordless/email-code/verify"),
    ("POST", "/auth/passwordless/sms-code"),
    ("POST", "/auth/passwordless/sms-code/resend"),
    ("POST", "/auth/passwordless/sms-code/verify"),
    ("GET", "/auth/passwordless/passkey/register"),
    ("POST", "/auth/passwordless/passkey/register"),
    ("GET", "/auth/passwordless/passkey/login"),
    ("POST", "/auth/passwordless/passkey/login"),
    ("GET", "/auth/passwordless/passkey/status"),
    ("GET", "/auth/passkeys"),
    ("PATCH", "/auth/passkeys/x"),
    ("DELETE", "/auth/passkeys/x"),
    ("POST", "/auth/password/signup"),
    ("POST", "/auth/password/login"),
    ("POST", "/auth/password/change"),
    ("POST", "/auth/password/reset"),
    ("POST", "/auth/password/reset/confirm"),
    ("GET", "/auth/status"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions/x"),
    ("POST", "/token/refresh"),
    ("POST", "/token"),
    ("GET", "/mfa/authenticators"),
    ("POST", "/mfa/totp/enroll"),
    ("GET", "/mfa/totp/qr.png"),
    ("POST", "/mfa/totp/confirm"),
    ("POST", "/mfa/challenge"),
    ("POST", "/mfa/verify"),
    ("POST", "/mfa/backup-codes"),
    ("DELETE", "/mfa/authenticators/x"),
    ("GET", "/demo/invoices"),
];

#[actix_web::test]
async fn every_route_is_served_and_refuses_in_json() {
    let test = TestApp::new();
    for (method, path) in ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        let answer = test
            .call(method.clone(), &format!("/api/v1{path}"), body, None)
            .await;
        // Beginning a passkey sign-in needs nothing (discoverable credentials); anywhere
        // else `{}` or no bearer is wrong: a JSON refusal, never the router's.
        if *path == "/auth/passwordless/passkey/login" && method == Method::GET {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            continue;
        }
        assert!(
            answer.status.is_client_error(),
            "{method} {path}: {}",
            answer.status
        );
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            answer.body["error"]["message"] != "no such route",
            "{method} {path}"
        );
        assert!(answer.code() != "", "{method} {path}: {}", answer.body);
    }
    // The management routes are the axum example's.
    for path in ["/api/v1/users", "/api/v1/organizations"] {
        assert_error(
            &test.get(path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

fn raw(path: &str, content_type: Option<&str>, body: impl Into<String>) -> TestRequest {
    let mut request = TestRequest::post().uri(path);
    if let Some(t) = content_type {
        request = request.insert_header(("content-type", t));
    }
    request.set_payload(body.into())
}

#[actix_web::test]
async fn refusals_are_json_errors() {
    let test = TestApp::new();
    let path = "/api/v1/auth/passwordless/email-code";

    let malformed = test
        .request(raw(path, Some("application/json"), "{\"email\":"))
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_input");
    let wrong_shape = test
        .request(raw(path, Some("application/json"), "{\"mail\": 1}"))
        .await;
    assert_error(&wrong_shape, StatusCode::BAD_REQUEST, "invalid_input");
    // A mistyped value is described, never echoed: it may be a code or a token.
    let mistyped = test
        .post(
            "/api/v1/auth/passwordless/email-code/verify",
            json!({"request_id": "x", "code": 918273}),
            None,
        )
        .await;
    assert_error(&mistyped, StatusCode::BAD_REQUEST, "invalid_input");
    let text = mistyped.body["error"]["message"].as_str().unwrap();
    assert!(
        !text.contains("918273") && text.contains("value not shown"),
        "{text}"
    );

    // Only the request's own credential failing earns a bearer challenge.
    let bad_bearer = test.get("/api/v1/auth/status", Some("not-a-jwt")).await;
    assert_eq!(bad_bearer.header("www-authenticate"), Some("Bearer"));
    let bad_mfa = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": "spent", "code": "123456"}),
            None,
        )
        .await;
    assert_error(&bad_mfa, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(bad_mfa.header("www-authenticate"), None);

    let body = "{\"email\":\"a@example.com\"}";
    for content_type in [None, Some("text/plain")] {
        let refused = test.request(raw(path, content_type, body)).await;
        assert_error(
            &refused,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    let big = format!("{{\"email\":\"{}@example.com\"}}", "a".repeat(70 * 1024));
    let too_large = test
        .request(raw(path, Some("application/json"), big.clone()))
        .await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // The enrolment route reads its optional body itself, under the same limit.
    let enroll = "/api/v1/mfa/totp/enroll";
    let too_large = test.request(raw(enroll, None, big)).await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let broken = test.request(raw(enroll, None, "{")).await;
    assert_error(&broken, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(test.mail.sent().is_empty(), "nothing was sent");

    for unknown in ["/api/v1/no/such/route", "/no-such-page", "/api/v1"] {
        let answer = test.get(unknown, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let wrong_method = test.delete("/api/v1/auth/status", None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD"));
    assert_eq!(wrong_method.header("cache-control"), Some("no-store"));
    let both = test
        .delete("/api/v1/auth/passwordless/magic-link/verify", None)
        .await;
    assert_eq!(both.header("allow"), Some("GET, HEAD, POST"));

    let missing_query = test
        .get("/api/v1/auth/passwordless/magic-link/verify", None)
        .await;
    assert_error(&missing_query, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_client = test
        .post(
            &format!("{path}?client_id=app_unknown"),
            json!({"email": "a@example.com"}),
            None,
        )
        .await;
    assert_error(&bad_client, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_client = test
        .call_with(
            Method::POST,
            path,
            Some(json!({"email": "a@example.com"})),
            None,
            &[("x-client-id", "app_unknown")],
            None,
        )
        .await;
    assert_error(&bad_client, StatusCode::BAD_REQUEST, "invalid_input");
}

#[actix_web::test]
async fn security_headers_on_every_answer() {
    let test = TestApp::new();
    let token = test.token_for("hal@example.com").await;
    let answers = [
        test.get("/api/v1/auth/status", Some(&token)).await,
        test.get("/api/v1/auth/status", None).await,
        test.get("/api/v1/nothing/here", None).await,
        test.get("/api/v1/demo/invoices", Some(&token)).await,
        test.post("/api/v1/auth/logout", json!({}), Some(&token))
            .await,
    ];
    for answer in &answers {
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{}",
            answer.status
        );
        assert_eq!(answer.header("pragma"), Some("no-cache"));
        assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(answers[3].status, StatusCode::FORBIDDEN);
    assert_eq!(answers[4].status, StatusCode::NO_CONTENT);
    assert!(answers[4].bytes.is_empty());

    // Actix routes on the decoded path: "/%61pi/…" reaches the API, and its answer (tokens
    // here) must not be cacheable either.
    let again = test.token_for("ida@example.com").await;
    let encoded = test.get("/%61pi/v1/auth/status", Some(&again)).await;
    assert_eq!(encoded.status, StatusCode::OK, "{}", encoded.body);
    assert_eq!(encoded.header("cache-control"), Some("no-store"));
    assert_eq!(encoded.header("pragma"), Some("no-cache"));
}

#[actix_web::test]
async fn json_bodies_must_be_application_json() {
    let test = TestApp::new();
    let path = "/api/v1/auth/passwordless/email-code";
    let body = "{\"email\":\"a@example.com\"}";
    for refused in ["text/json", "text/plain", "application/xml"] {
        let answer = test.request(raw(path, Some(refused), body)).await;
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    let accepted = [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ];
    for (i, content_type) in accepted.into_iter().enumerate() {
        let body = format!("{{\"email\":\"ok{i}@example.com\"}}");
        let answer = test.request(raw(path, Some(content_type), body)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{content_type}: {}",
            answer.body
        );
    }
}

#[actix_web::test]
async fn the_jwks_has_the_signing_key() {
    let test = TestApp::new();
    let token = test.token_for("ida@example.com").await;
    let jwks = test.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(jwks.header("referrer-policy"), Some("no-referrer"));
    let keys = jwks.body["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );
    let claims = test.auth.tokens().verify(&token).await.unwrap();
    assert!(!claims.jti.is_empty());
}

/// Signs `email` in with the verify request from `peer`, `forwarded` as its
/// `X-Forwarded-For`: the address its session recorded.
async fn session_ip(test: &TestApp, peer: &str, forwarded: Option<&str>) -> Value {
    let email = "max@example.com";
    test.advance(test.auth.config().limits.send_cooldown);
    let sent = test
        .post(
            "/api/v1/auth/passwordless/email-code",
            json!({"email": email}),
            None,
        )
        .await;
    let code = test.last_email_code(email);
    let headers: Vec<(&str, &str)> = forwarded
        .map(|f| vec![("x-forwarded-for", f)])
        .unwrap_or_default();
    let peer: SocketAddr = peer.parse().unwrap();
    let answer = test
        .call_with(
            Method::POST,
            "/api/v1/auth/passwordless/email-code/verify",
            Some(json!({"request_id": sent.str("request_id"), "code": code})),
            None,
            &headers,
            Some(peer),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sessions = test
        .get("/api/v1/auth/sessions", Some(&answer.str("token")))
        .await;
    let items = sessions.body["items"].as_array().unwrap();
    items.iter().find(|s| s["current"] == true).unwrap()["ip"].clone()
}

#[actix_web::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let test = TestApp::relaxed();
    // The tests trust 10.0.0.0/8.
    let cases = [
        ("10.0.0.5:4000", Some("203.0.113.9"), "203.0.113.9"),
        (
            "10.0.0.5:4000",
            Some("192.0.2.1, 198.51.100.1, 10.0.0.7"),
            "198.51.100.1",
        ),
        ("192.0.2.44:5000", Some("203.0.113.9"), "192.0.2.44"),
        ("10.0.0.5:4000", None, "10.0.0.5"),
        ("10.0.0.5:4000", Some("not-an-ip"), "10.0.0.5"),
        ("[2001:db8::1]:443", Some("203.0.113.9"), "2001:db8::1"),
        ("10.0.0.5:4000", Some("203.0.113.10:51234"), "203.0.113.10"),
        ("10.0.0.5:4000", Some("[2001:db8::7]:443"), "2001:db8::7"),
    ];
    for (peer, forwarded, expected) in cases {
        assert_eq!(
            session_ip(&test, peer, forwarded).await,
            expected,
            "{peer} {forwarded:?}"
        );
    }
}
