//! The sign-in routes: magic links, email and SMS codes, passwords, the bearer's session
//! and sessions, refresh and authorization-code tokens.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, assert_error, assert_tokens};

const ML: &str = "/api/v1/auth/passwordless/magic-link";
const EC: &str = "/api/v1/auth/passwordless/email-code";
const SC: &str = "/api/v1/auth/passwordless/sms-code";

fn keys(body: &Value) -> BTreeSet<&str> {
    body.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn other_than(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

/// The application's GeoIP answer, here for one documentation network only.
#[derive(Debug)]
struct OneTown;

impl portcullis::Locate for OneTown {
    fn place(&self, ip: std::net::IpAddr) -> Option<String> {
        (ip.to_string() == "203.0.113.7").then(|| "Springfield, Freedonia".to_owned())
    }
}

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

/// Asks for a link to `email` from 203.0.113.7 with `user_agent`; the link's peek.
async fn peek_asked_by(test: &TestApp, email: &str, user_agent: &str) -> Answer {
    test.call_with(
        Method::POST,
        ML,
        Some(json!({"email": email})),
        None,
        &[("user-agent", user_agent)],
        Some("203.0.113.7:40000".parse().unwrap()),
    )
    .await;
    let token = test.last_link_token(email);
    test.get(&format!("{ML}/verify?token={token}"), None).await
}

// ML-11: the device code only defends a person who can tell the request was not theirs,
// so the peek says who asked: address, place (when the engine has a hook), browser, time.
#[actix_web::test]
async fn ml11_magic_link_peek_says_who_asked() {
    let test = TestApp::new();
    let asked_at = test.auth.now().unix_millis();
    let peek = peek_asked_by(&test, "ana@example.com", FIREFOX_LINUX).await;
    assert_eq!(peek.status, StatusCode::OK, "{}", peek.body);
    assert_eq!(
        peek.body["requested_by"],
        json!({"ip": "203.0.113.7", "place": null, "browser": "Firefox on Linux", "at": asked_at})
    );

    let located = TestApp::with_builder(|builder| builder.locate(OneTown));
    let peek = peek_asked_by(&located, "bo@example.com", FIREFOX_LINUX).await;
    assert_eq!(peek.body["requested_by"]["place"], "Springfield, Freedonia");

    // What the asker typed as its user agent never reaches the page.
    let hostile = "<img src=x onerror=alert(1)> Gecko/20100101";
    let peek = peek_asked_by(&test, "cy@example.com", hostile).await;
    assert_eq!(peek.body["requested_by"]["browser"], Value::Null);
    assert!(!String::from_utf8_lossy(&peek.bytes).contains("onerror"));
}

#[actix_web::test]
async fn magic_link_send_peek_verify_poll_and_resend() {
    let test = TestApp::new();
    let sent = test
        .post(ML, json!({"email": "ana@example.com"}), None)
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(
        keys(&sent.body),
        BTreeSet::from(["device_code", "expires_in", "poll_token", "request_id"])
    );
    assert_eq!(sent.body["expires_in"], 600);
    let (request_id, poll) = (sent.str("request_id"), sent.str("poll_token"));
    let token = test.last_link_token("ana@example.com");
    let status_path = format!("{ML}/status?request_id={request_id}&poll_token={poll}");

    // A peek spends nothing.
    for _ in 0..2 {
        let peek = test.get(&format!("{ML}/verify?token={token}"), None).await;
        assert_eq!(peek.status, StatusCode::OK, "{}", peek.body);
        assert_eq!(peek.body["valid"], true);
        assert_eq!(peek.body["needs_device_code"], true);
    }
    let pending = test.get(&status_path, None).await;
    assert_eq!(pending.body, json!({"status": "pending"}));
    let wrong_poll = test
        .get(
            &format!("{ML}/status?request_id={request_id}&poll_token=nope"),
            None,
        )
        .await;
    assert_error(&wrong_poll, StatusCode::UNAUTHORIZED, "invalid_token");

    // Within the cooldown a resend is refused, with Retry-After; after it, the old link dies.
    let early = test
        .post(
            &format!("{ML}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_error(&early, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = early.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    test.advance(Duration::from_secs(31));
    let resent = test
        .post(
            &format!("{ML}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert_eq!(resent.str("request_id"), request_id);
    let old = test.get(&format!("{ML}/verify?token={token}"), None).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_token");
    let token = test.last_link_token("ana@example.com");

    // Another browser needs the device code; the same browser its poll token.
    let no_code = test
        .post(&format!("{ML}/verify"), json!({"token": token}), None)
        .await;
    assert_error(&no_code, StatusCode::BAD_REQUEST, "invalid_input");
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "device_code": sent.str("device_code")}),
            None,
        )
        .await;
    assert_tokens(&verified);
    let collected = test.get(&status_path, None).await;
    assert_eq!(collected.body["status"], "verified", "{}", collected.body);
    assert_eq!(collected.body["user_id"], verified.body["user_id"]);
    let again = test.get(&status_path, None).await;
    assert_eq!(again.body, json!({"status": "expired"}));
    let reuse = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "poll_token": poll}),
            None,
        )
        .await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "invalid_token");
    let bad = test.post(ML, json!({"email": "not-an-email"}), None).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
}

#[actix_web::test]
async fn email_code_send_resend_verify_and_limits() {
    let test = TestApp::new();
    let sent = test
        .post(EC, json!({"email": "dee@example.com"}), None)
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(
        keys(&sent.body),
        BTreeSet::from(["expires_in", "request_id"])
    );
    let request_id = sent.str("request_id");
    let first = test.last_email_code("dee@example.com");
    let refused = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": other_than(&first)}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let soon = test
        .post(EC, json!({"email": "dee@example.com"}), None)
        .await;
    assert_error(&soon, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(soon.header("retry-after").is_some());

    test.advance(Duration::from_secs(31));
    let resent = test
        .post(
            &format!("{EC}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert_eq!(test.mail.sent().len(), 2);
    let code = test.last_email_code("dee@example.com");
    let ok = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": code}),
            None,
        )
        .await;
    assert_tokens(&ok);
    let status = test.status_of(&ok.str("token")).await;
    assert_eq!(status.body["email"], "dee@example.com");
    assert_eq!(status.body["amr"], json!(["email"]));
    let again = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": code}),
            None,
        )
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let bad_id = test
        .post(&format!("{EC}/resend"), json!({"request_id": "nope"}), None)
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
}

#[actix_web::test]
async fn sms_code_send_resend_verify() {
    let test = TestApp::new();
    let phone = "+15551234567";
    let sent = test.post(SC, json!({"phone": phone}), None).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let request_id = sent.str("request_id");
    let first = test.last_sms_code(phone);
    let refused = test
        .post(
            &format!("{SC}/verify"),
            json!({"request_id": request_id, "code": other_than(&first)}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    test.advance(Duration::from_secs(31));
    let resent = test
        .post(
            &format!("{SC}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert_eq!(test.sms.sent().len(), 2);
    let code = test.last_sms_code(phone);
    let ok = test
        .post(
            &format!("{SC}/verify"),
            json!({"request_id": request_id, "code": code}),
            None,
        )
        .await;
    assert_tokens(&ok);
    let status = test.status_of(&ok.str("token")).await;
    assert_eq!(status.body["phone"], phone);
    assert_eq!(status.body["amr"], json!(["sms"]));
    let bad = test.post(SC, json!({"phone": "555-1234"}), None).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
}

const PASSWORD: &str = "correct horse battery staple 42";

#[actix_web::test]
async fn password_signup_login_change_and_reset() {
    let test = TestApp::new();
    let short = test
        .post(
            "/api/v1/auth/password/signup",
            json!({"email": "pat@example.com", "password": "short1"}),
            None,
        )
        .await;
    assert_error(&short, StatusCode::BAD_REQUEST, "invalid_input");
    // 202, then the emailed code makes the account (201 with its sign-in).
    let started = test
        .post(
            "/api/v1/auth/password/signup",
            json!({"email": "pat@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let signup = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": started.str("request_id"),
                "code": test.last_email_code("pat@example.com")}),
            None,
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{}", signup.body);
    assert_eq!(
        test.status_of(&signup.str("token")).await.body["amr"],
        json!(["email"])
    );
    // A taken address answers as a free one (ENUM-03); no code for it verifies.
    test.advance(std::time::Duration::from_secs(31));
    let taken = test
        .post(
            "/api/v1/auth/password/signup",
            json!({"email": "pat@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    let refused = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": taken.str("request_id"), "code": "123456"}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    test.advance(std::time::Duration::from_secs(31));

    let login = |email: &'static str, password: &'static str| {
        let test = &test;
        async move {
            test.post(
                "/api/v1/auth/password/login",
                json!({"email": email, "password": password}),
                None,
            )
            .await
        }
    };
    let ok = login("pat@example.com", PASSWORD).await;
    assert_tokens(&ok);
    let wrong = login("pat@example.com", "not the password at all").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = login("nobody@example.com", "not the password at all").await;
    assert_eq!(
        unknown.body, wrong.body,
        "the same answer for an unknown email"
    );

    // Change: other sessions end.
    let token = ok.str("token");
    let changed = test
        .post(
            "/api/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "a new long passphrase 77"}),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert_eq!(test.status_of(&token).await.status, StatusCode::OK);
    let other = test.status_of(&signup.str("token")).await;
    assert_error(&other, StatusCode::UNAUTHORIZED, "session_revoked");
    let anonymous = test
        .post(
            "/api/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
            None,
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");

    // Reset by emailed code.
    let reset = test
        .post(
            "/api/v1/auth/password/reset",
            json!({"email": "pat@example.com"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let code = test.last_email_code("pat@example.com");
    let confirmed = test
        .post(
            "/api/v1/auth/password/reset/confirm",
            json!({"request_id": reset.str("request_id"), "code": code, "new_password": "reset to this passphrase 9"}),
            None,
        )
        .await;
    assert_tokens(&confirmed);
    assert_eq!(
        test.status_of(&token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_tokens(&login("pat@example.com", "reset to this passphrase 9").await);
}

#[actix_web::test]
async fn status_sessions_revoke_and_logout() {
    let test = TestApp::relaxed();
    let first = test.sign_in_via("gus@example.com", None).await;
    assert_tokens(&first);
    let a = first.str("token");
    let b = test.token_for("gus@example.com").await;

    let status = test.status_of(&a).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["user_id"], first.body["user_id"]);
    assert_eq!(status.body["email"], "gus@example.com");
    assert_eq!(status.body["org_id"], Value::Null);
    assert_eq!(status.body["acr"], "aal1");
    let a_sid = status.str("session_id");

    let list = test.get("/api/v1/auth/sessions", Some(&a)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(list.body["next_cursor"], Value::Null);
    let b_sid = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = test
        .delete(&format!("/api/v1/auth/sessions/{b_sid}"), Some(&a))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_eq!(test.status_of(&b).await.status, StatusCode::UNAUTHORIZED);
    let other = test.token_for("hal@example.com").await;
    let not_theirs = test
        .delete(&format!("/api/v1/auth/sessions/{a_sid}"), Some(&other))
        .await;
    assert_error(&not_theirs, StatusCode::NOT_FOUND, "not_found");
    let garbage = test
        .delete("/api/v1/auth/sessions/not-a-session", Some(&a))
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_input");

    let out = test.post("/api/v1/auth/logout", json!({}), Some(&a)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert_error(
        &test.status_of(&a).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    );
    let again = test.post("/api/v1/auth/logout", json!({}), Some(&a)).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "session_revoked");
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes() {
    let test = TestApp::relaxed();
    let signed_in = test.sign_in_via("ivy@example.com", None).await;
    let r1 = signed_in.str("refresh_token");
    let rotated = test
        .post("/api/v1/token/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_tokens(&rotated);
    assert_ne!(rotated.str("refresh_token"), r1);
    let a2 = rotated.str("token");
    let reuse = test
        .post("/api/v1/token/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(reuse.header("www-authenticate"), None);
    assert_eq!(test.status_of(&a2).await.status, StatusCode::UNAUTHORIZED);

    let fresh = test.sign_in_via("jo@example.com", None).await;
    let by_grant = test
        .post(
            "/api/v1/token",
            json!({"grant_type": "refresh_token", "refresh_token": fresh.str("refresh_token")}),
            None,
        )
        .await;
    assert_tokens(&by_grant);
    let bad_grant = test
        .post("/api/v1/token", json!({"grant_type": "password"}), None)
        .await;
    assert_error(&bad_grant, StatusCode::BAD_REQUEST, "invalid_input");
    let missing = test
        .post(
            "/api/v1/token",
            json!({"grant_type": "authorization_code"}),
            None,
        )
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_input");
}

#[actix_web::test]
async fn authorization_code_with_pkce_through_a_magic_link() {
    use portcullis::tokens::pkce_s256;
    let test = TestApp::new();
    let redirect = "https://app.example.com/callback";
    let client = test.app_in(test.default_org().await, redirect).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk0123456789";
    let challenge = pkce_s256(verifier);
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&challenge)
            .unwrap()
            .len(),
        32
    );

    let no_client = test
        .post(
            ML,
            json!({"email": "kai@example.com", "redirect_uri": redirect, "code_challenge": challenge}),
            None,
        )
        .await;
    assert_error(&no_client, StatusCode::BAD_REQUEST, "invalid_input");
    let sent = test
        .post(
            &format!("{ML}?client_id={client}"),
            json!({"email": "kai@example.com", "redirect_uri": redirect, "code_challenge": challenge, "code_challenge_method": "S256"}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": test.last_link_token("kai@example.com"), "poll_token": sent.str("poll_token")}),
            None,
        )
        .await;
    assert_eq!(
        keys(&verified.body),
        BTreeSet::from(["code"]),
        "{}",
        verified.body
    );
    let exchange = json!({
        "grant_type": "authorization_code",
        "code": verified.str("code"),
        "code_verifier": verifier,
        "client_id": client,
        "redirect_uri": redirect,
    });
    let tokens = test.post("/api/v1/token", exchange.clone(), None).await;
    assert_tokens(&tokens);
    let status = test.status_of(&tokens.str("token")).await;
    assert_eq!(
        status.body["org_id"],
        test.default_org().await.to_string().as_str()
    );
    let replay = test.post("/api/v1/token", exchange, None).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_token");
}
