//! The sign-in routes through the whole app (`tower::oneshot`): magic links, email and SMS
//! codes with their send limits, passwords, sessions, refresh and authorization-code
//! tokens.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{Answer, TestApp, assert_error};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ML: &str = "/api/v1/auth/passwordless/magic-link";
const EC: &str = "/api/v1/auth/passwordless/email-code";
const SC: &str = "/api/v1/auth/passwordless/sms-code";

/// Asserts a finished sign-in: the token fields of `API.md`.
#[track_caller]
fn assert_tokens(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["token"].as_str().is_some_and(|t| t.len() > 20));
    assert!(answer.body["refresh_token"].as_str().is_some());
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    assert!(answer.body["user_id"].as_str().is_some());
    assert!(answer.body.get("mfa_required").is_none());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

fn keys(body: &Value) -> BTreeSet<String> {
    body.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Magic links

#[tokio::test]
async fn magic_link_answers_alike_for_known_and_unknown_addresses() {
    let test = TestApp::new();
    test.token_for("known@example.com").await;
    let known = test
        .post(ML, json!({"email": "known@example.com"}), None)
        .await;
    let unknown = test
        .post(ML, json!({"email": "nobody@example.com"}), None)
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.body);
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.body);
    let expected: BTreeSet<String> = ["device_code", "expires_in", "poll_token", "request_id"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(keys(&known.body), expected);
    assert_eq!(keys(&unknown.body), expected);
    assert_eq!(known.body["expires_in"], unknown.body["expires_in"]);
    assert_eq!(known.body["expires_in"], 600);
    assert_ne!(known.str("request_id"), unknown.str("request_id"));
    // Both addresses got a link (sign-up is on).
    assert!(!test.last_link_token("known@example.com").is_empty());
    assert!(!test.last_link_token("nobody@example.com").is_empty());

    let bad = test.post(ML, json!({"email": "not-an-email"}), None).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn magic_link_peek_verify_and_poll() {
    let test = TestApp::new();
    let sent = test
        .post(ML, json!({"email": "ana@example.com"}), None)
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let (request_id, poll) = (sent.str("request_id"), sent.str("poll_token"));
    let device_code = sent.str("device_code");
    let token = test.last_link_token("ana@example.com");
    let status_path = format!("{ML}/status?request_id={request_id}&poll_token={poll}");
    let peek_path = format!("{ML}/verify?token={token}");

    // Peeking consumes nothing, however often.
    for _ in 0..2 {
        let peek = test.get(&peek_path, None).await;
        assert_eq!(peek.status, StatusCode::OK, "{}", peek.body);
        assert_eq!(peek.body["valid"], true);
        assert_eq!(peek.body["expires_in"], 600);
        assert_eq!(peek.body["needs_device_code"], true);
    }
    let pending = test.get(&status_path, None).await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.body, json!({"status": "pending"}));
    let wrong_poll = test
        .get(
            &format!("{ML}/status?request_id={request_id}&poll_token=nope"),
            None,
        )
        .await;
    assert_error(&wrong_poll, StatusCode::UNAUTHORIZED, "invalid_token");

    // Opened in another browser, the link needs the device code shown in the asking tab.
    let no_code = test
        .post(&format!("{ML}/verify"), json!({"token": token}), None)
        .await;
    assert_error(&no_code, StatusCode::BAD_REQUEST, "invalid_input");
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "device_code": device_code}),
            None,
        )
        .await;
    assert_tokens(&verified);

    // The asking tab collects its own sign-in, once.
    let collected = test.get(&status_path, None).await;
    assert_eq!(collected.body["status"], "verified", "{}", collected.body);
    assert!(collected.body["token"].as_str().is_some());
    assert_eq!(collected.body["user_id"], verified.body["user_id"]);
    let status = test
        .status_of(collected.body["token"].as_str().unwrap())
        .await;
    assert_eq!(status.body["email"], "ana@example.com");
    assert_eq!(status.body["amr"], json!(["email"]));
    let again = test.get(&status_path, None).await;
    assert_eq!(again.body, json!({"status": "expired"}));

    // The link is spent.
    let reuse = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "device_code": device_code}),
            None,
        )
        .await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "invalid_token");
    let peek = test.get(&peek_path, None).await;
    assert_error(&peek, StatusCode::UNAUTHORIZED, "invalid_token");
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
#[tokio::test]
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

    // The OpenAPI document describes the same shape.
    let doc = test.get("/api/v1/openapi.json", None).await;
    let schemas = &doc.body["components"]["schemas"];
    assert_eq!(
        schemas["PeekBody"]["properties"]["requested_by"]["$ref"],
        "#/components/schemas/RequestedBy"
    );
    assert_eq!(
        keys(&schemas["RequestedBy"]["properties"]),
        BTreeSet::from(["at", "browser", "ip", "place"].map(String::from))
    );
}

#[tokio::test]
async fn magic_link_in_the_same_browser_needs_no_device_code() {
    let test = TestApp::new();
    let sent = test
        .post(ML, json!({"email": "bo@example.com"}), None)
        .await;
    let token = test.last_link_token("bo@example.com");
    let peek = test.get(&format!("{ML}/verify?token={token}"), None).await;
    assert_eq!(peek.body["needs_device_code"], true);
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "poll_token": sent.str("poll_token")}),
            None,
        )
        .await;
    assert_tokens(&verified);
    // Spent: the same-browser proof does not open it again.
    let reuse = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "poll_token": sent.str("poll_token")}),
            None,
        )
        .await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn magic_link_resend_kills_the_earlier_link_and_links_expire() {
    let test = TestApp::new();
    let sent = test
        .post(ML, json!({"email": "cy@example.com"}), None)
        .await;
    let request_id = sent.str("request_id");
    let first = test.last_link_token("cy@example.com");

    // Within the cooldown the resend is refused.
    let early = test
        .post(
            &format!("{ML}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_error(&early, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = early.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");

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
    assert_eq!(resent.body["expires_in"], 600);
    let second = test.last_link_token("cy@example.com");
    assert_ne!(first, second);
    let old = test.get(&format!("{ML}/verify?token={first}"), None).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_token");
    let new = test.get(&format!("{ML}/verify?token={second}"), None).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);

    // Past the link's lifetime nothing works, and the asking tab hears "expired".
    test.advance(test.auth.config().ttl.magic_link + Duration::from_secs(1));
    let late = test.get(&format!("{ML}/verify?token={second}"), None).await;
    assert_error(&late, StatusCode::UNAUTHORIZED, "invalid_token");
    let verify = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": second, "device_code": sent.str("device_code")}),
            None,
        )
        .await;
    assert_error(&verify, StatusCode::UNAUTHORIZED, "invalid_token");
    let status = test
        .get(
            &format!(
                "{ML}/status?request_id={request_id}&poll_token={}",
                sent.str("poll_token")
            ),
            None,
        )
        .await;
    assert_eq!(status.body, json!({"status": "expired"}));
    let resend = test
        .post(
            &format!("{ML}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_error(&resend, StatusCode::UNAUTHORIZED, "expired");
    let bad_id = test
        .post(&format!("{ML}/resend"), json!({"request_id": "nope"}), None)
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
}

// ---------------------------------------------------------------------------------------
// One-time codes

#[tokio::test]
async fn email_code_send_resend_verify() {
    let test = TestApp::new();
    let sent = test
        .post(EC, json!({"email": "dee@example.com"}), None)
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(keys(&sent.body).len(), 2, "{}", sent.body);
    assert_eq!(sent.body["expires_in"], 600);
    let request_id = sent.str("request_id");
    let first = test.last_email_code("dee@example.com");

    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": wrong}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");

    test.advance(Duration::from_secs(31));
    let resent = test
        .post(
            &format!("{EC}/resend"),
            json!({"request_id": request_id}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert_eq!(resent.str("request_id"), request_id);
    let second = test.last_email_code("dee@example.com");
    assert_eq!(test.mail.sent().len(), 2);

    if first != second {
        let old = test
            .post(
                &format!("{EC}/verify"),
                json!({"request_id": request_id, "code": first}),
                None,
            )
            .await;
        assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let ok = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": second}),
            None,
        )
        .await;
    assert_tokens(&ok);
    let status = test.status_of(&ok.str("token")).await;
    assert_eq!(status.body["email"], "dee@example.com");
    assert_eq!(status.body["amr"], json!(["email"]));
    assert_eq!(status.body["acr"], "aal1");
    // Used once.
    let again = test
        .post(
            &format!("{EC}/verify"),
            json!({"request_id": request_id, "code": second}),
            None,
        )
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let nope = test
        .post(&format!("{EC}/resend"), json!({"request_id": "nope"}), None)
        .await;
    assert_error(&nope, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn email_code_sends_are_rate_limited_with_retry_after() {
    let test = TestApp::new();
    // Start just after an hour's boundary, so every send below falls in one bucket of the
    // hour-long sliding window and the wait it asks for does not depend on the time of day.
    let now = test.auth.now().unix_secs();
    let next_hour = portcullis::Timestamp::from_unix_secs((now / 3600 + 1) * 3600 + 1);
    test.clock.set(next_hour);
    let first = test
        .post(EC, json!({"email": "eve@example.com"}), None)
        .await;
    assert_eq!(first.status, StatusCode::OK);

    // The per-address cooldown (30 s).
    let soon = test
        .post(EC, json!({"email": "eve@example.com"}), None)
        .await;
    assert_error(&soon, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = soon.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    let resend = test
        .post(
            &format!("{EC}/resend"),
            json!({"request_id": first.str("request_id")}),
            None,
        )
        .await;
    assert_error(&resend, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another address is not affected.
    let other = test
        .post(EC, json!({"email": "fay@example.com"}), None)
        .await;
    assert_eq!(other.status, StatusCode::OK);

    // The per-address budget: 5 an hour, the cooldown respected.
    for _ in 0..4 {
        test.advance(Duration::from_secs(31));
        let sent = test
            .post(EC, json!({"email": "eve@example.com"}), None)
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    }
    test.advance(Duration::from_secs(31));
    let spent = test
        .post(EC, json!({"email": "eve@example.com"}), None)
        .await;
    assert_error(&spent, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = spent.header("retry-after").unwrap().parse().unwrap();
    // The sliding estimate drains the refused attempts too: spent early in its bucket, the
    // budget asks for more than the rest of this hour, and never more than two windows.
    assert!(retry > 3000 && retry <= 7200, "Retry-After {retry}");
    assert_eq!(
        test.mail
            .sent()
            .iter()
            .filter(|m| m.to.as_str() == "eve@example.com")
            .count(),
        5
    );
}

#[tokio::test]
async fn sms_code_send_resend_verify_and_limit() {
    let test = TestApp::new();
    let phone = "+15551234567";
    let sent = test.post(SC, json!({"phone": phone}), None).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let request_id = sent.str("request_id");
    let first = test.last_sms_code(phone);

    let soon = test.post(SC, json!({"phone": phone}), None).await;
    assert_error(&soon, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = soon.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");

    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = test
        .post(
            &format!("{SC}/verify"),
            json!({"request_id": request_id, "code": wrong}),
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
    let second = test.last_sms_code(phone);
    let ok = test
        .post(
            &format!("{SC}/verify"),
            json!({"request_id": request_id, "code": second}),
            None,
        )
        .await;
    assert_tokens(&ok);
    let status = test.status_of(&ok.str("token")).await;
    assert_eq!(status.body["phone"], phone);
    assert_eq!(status.body["email"], Value::Null);
    assert_eq!(status.body["amr"], json!(["sms"]));

    let bad = test.post(SC, json!({"phone": "555-1234"}), None).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
    let unknown = test
        .post(
            &format!("{SC}/resend"),
            json!({"request_id": "0190e9a0-0000-7000-8000-000000000000"}),
            None,
        )
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "expired");
}

// ---------------------------------------------------------------------------------------
// Passwords

const PASSWORD: &str = "correct horse battery staple 42";

#[tokio::test]
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

    // The account is made when the emailed code comes back.
    let signup = test.password_signup("pat@example.com", PASSWORD).await;
    assert_eq!(signup.status, StatusCode::CREATED, "{}", signup.body);
    assert!(signup.body["token"].as_str().is_some());
    let status = test.status_of(&signup.str("token")).await;
    assert_eq!(status.body["amr"], json!(["email"]));
    let user = test
        .auth
        .users()
        .get_by_email("pat@example.com")
        .await
        .unwrap();
    assert!(user.email_verified, "the code proved the address");
    // A taken address answers as a free one would (ENUM-03); its code never verifies.
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
    assert_eq!(ok.body["user_id"], signup.body["user_id"]);
    let wrong = login("pat@example.com", "not the password at all").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = login("nobody@example.com", "not the password at all").await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(
        unknown.body, wrong.body,
        "the same answer for an unknown email"
    );

    // Change: the old password stops working; other sessions end.
    let token = ok.str("token");
    let other = signup.str("token");
    let bad_current = test
        .post(
            "/api/v1/auth/password/change",
            json!({"current_password": "wrong wrong wrong wrong", "new_password": "a new long passphrase 77"}),
            Some(&token),
        )
        .await;
    assert_error(
        &bad_current,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let changed = test
        .post(
            "/api/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "a new long passphrase 77"}),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert!(changed.bytes.is_empty());
    assert_eq!(test.status_of(&token).await.status, StatusCode::OK);
    assert_eq!(
        test.status_of(&other).await.status,
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    let old = login("pat@example.com", PASSWORD).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unauthenticated = test
        .post(
            "/api/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "another long passphrase"}),
            None,
        )
        .await;
    assert_error(&unauthenticated, StatusCode::UNAUTHORIZED, "invalid_token");

    // Reset by emailed code (past the cooldown the sign-up's message started).
    test.advance(std::time::Duration::from_secs(31));
    let reset = test
        .post(
            "/api/v1/auth/password/reset",
            json!({"email": "pat@example.com"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let unknown_reset = test
        .post(
            "/api/v1/auth/password/reset",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(keys(&unknown_reset.body), keys(&reset.body));
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
        StatusCode::UNAUTHORIZED,
        "a reset ends the other sessions"
    );
    let replay = test
        .post(
            "/api/v1/auth/password/reset/confirm",
            json!({"request_id": reset.str("request_id"), "code": code, "new_password": "and again another one 10"}),
            None,
        )
        .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let after = login("pat@example.com", "reset to this passphrase 9").await;
    assert_tokens(&after);
}

// ---------------------------------------------------------------------------------------
// The bearer's session

#[tokio::test]
async fn status_sessions_revoke_and_logout() {
    let test = TestApp::relaxed();
    let first = test.sign_in_via("gus@example.com", None).await;
    assert_tokens(&first);
    let a = first.str("token");
    let b = test.token_via("gus@example.com", None).await;

    let status = test.status_of(&a).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["user_id"], first.body["user_id"]);
    assert_eq!(status.body["email"], "gus@example.com");
    assert_eq!(status.body["org_id"], Value::Null);
    assert_eq!(status.body["acr"], "aal1");
    let now = test.auth.now().unix_millis();
    let expires_at = status.body["expires_at"].as_i64().unwrap();
    assert!(expires_at > now && expires_at <= now + 15 * 60 * 1000);
    assert!(status.body["session_expires_at"].as_i64().unwrap() > expires_at);
    let a_sid = status.str("session_id");

    let list = test.get("/api/v1/auth/sessions", Some(&a)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(list.body["next_cursor"], Value::Null);
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], a_sid.as_str());
    assert_eq!(current[0]["amr"], json!(["email"]));
    let b_sid = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ending B from A.
    let revoked = test
        .delete(&format!("/api/v1/auth/sessions/{b_sid}"), Some(&a))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let refused = test.status_of(&b).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "session_revoked");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    let list = test.get("/api/v1/auth/sessions", Some(&a)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // Someone else's session id is not theirs to end.
    let other = test.token_via("hal@example.com", None).await;
    let not_theirs = test
        .delete(&format!("/api/v1/auth/sessions/{a_sid}"), Some(&other))
        .await;
    assert_error(&not_theirs, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(test.status_of(&a).await.status, StatusCode::OK);
    let garbage = test
        .delete("/api/v1/auth/sessions/not-a-session", Some(&a))
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_input");

    // Signing out.
    let out = test.post("/api/v1/auth/logout", json!({}), Some(&a)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let after = test.status_of(&a).await;
    assert_error(&after, StatusCode::UNAUTHORIZED, "session_revoked");
    let sessions = test.get("/api/v1/auth/sessions", Some(&a)).await;
    assert_eq!(sessions.status, StatusCode::UNAUTHORIZED);
    let anonymous = test.get("/api/v1/auth/status", None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    let garbage = test.get("/api/v1/auth/status", Some("not.a.jwt")).await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    let scheme = test
        .call_with(
            Method::GET,
            "/api/v1/auth/status",
            None,
            None,
            &[("authorization", "Basic abc")],
            None,
        )
        .await;
    assert_error(&scheme, StatusCode::UNAUTHORIZED, "invalid_token");
}

// ---------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes() {
    let test = TestApp::new();
    let signed_in = test.sign_in_by_code("ivy@example.com").await;
    assert_tokens(&signed_in);
    let r1 = signed_in.str("refresh_token");

    let rotated = test
        .post("/api/v1/token/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_tokens(&rotated);
    let r2 = rotated.str("refresh_token");
    assert_ne!(r1, r2);
    assert_eq!(rotated.body["user_id"], signed_in.body["user_id"]);
    let a2 = rotated.str("token");
    assert_eq!(test.status_of(&a2).await.status, StatusCode::OK);

    // Presenting R1 again: refused, and the whole session ends.
    let reuse = test
        .post("/api/v1/token/refresh", json!({"refresh_token": r1}), None)
        .await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "invalid_token");
    // A refresh token in the body is no credential of the request: no challenge.
    assert_eq!(reuse.header("www-authenticate"), None);
    let later = test
        .post("/api/v1/token/refresh", json!({"refresh_token": r2}), None)
        .await;
    assert_error(&later, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(test.status_of(&a2).await.status, StatusCode::UNAUTHORIZED);

    // The generic token route also refreshes.
    let fresh = test.sign_in_by_code("jo@example.com").await;
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

pub(super) fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk0123456789".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::test]
async fn authorization_code_with_pkce_through_a_magic_link() {
    let test = TestApp::new();
    let redirect = "https://app.example.com/callback";
    let client = test.app_in(test.default_org().await, redirect).await;
    let (verifier, challenge) = pkce();

    // A redirect needs the app and a PKCE challenge.
    let no_client = test
        .post(
            ML,
            json!({"email": "kai@example.com", "redirect_uri": redirect, "code_challenge": challenge}),
            None,
        )
        .await;
    assert_error(&no_client, StatusCode::BAD_REQUEST, "invalid_input");
    let unknown_client = test
        .post(
            &format!("{ML}?client_id=app_nope"),
            json!({"email": "kai@example.com"}),
            None,
        )
        .await;
    assert_error(&unknown_client, StatusCode::BAD_REQUEST, "invalid_input");
    let unregistered = test
        .post(
            &format!("{ML}?client_id={client}"),
            json!({"email": "kai@example.com", "redirect_uri": "https://evil.example.com/cb", "code_challenge": challenge}),
            None,
        )
        .await;
    assert_error(&unregistered, StatusCode::BAD_REQUEST, "invalid_input");

    let sent = test
        .post(
            &format!("{ML}?client_id={client}"),
            json!({"email": "kai@example.com", "redirect_uri": redirect, "code_challenge": challenge, "code_challenge_method": "S256"}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let token = test.last_link_token("kai@example.com");
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": token, "poll_token": sent.str("poll_token")}),
            None,
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(keys(&verified.body), BTreeSet::from(["code".to_owned()]));
    let code = verified.str("code");

    let exchange = |verifier: &str| {
        json!({
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client,
            "redirect_uri": redirect,
        })
    };
    let tokens = test.post("/api/v1/token", exchange(&verifier), None).await;
    assert_tokens(&tokens);
    let access = tokens.str("token");
    let status = test.status_of(&access).await;
    assert_eq!(status.body["email"], "kai@example.com");
    assert_eq!(
        status.body["org_id"],
        test.default_org().await.to_string().as_str()
    );

    // The code works once; its replay also ends what the first exchange issued.
    let replay = test.post("/api/v1/token", exchange(&verifier), None).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(
        test.status_of(&access).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn authorization_code_refuses_a_wrong_verifier() {
    let test = TestApp::new();
    let redirect = "https://app.example.com/callback";
    let client = test.app_in(test.default_org().await, redirect).await;
    let (_, challenge) = pkce();
    let sent = test
        .post(
            &format!("{ML}?client_id={client}"),
            json!({"email": "lu@example.com", "redirect_uri": redirect, "code_challenge": challenge}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let verified = test
        .post(
            &format!("{ML}/verify"),
            json!({"token": test.last_link_token("lu@example.com"), "device_code": sent.str("device_code")}),
            None,
        )
        .await;
    let code = verified.str("code");
    let wrong = test
        .post(
            "/api/v1/token",
            json!({
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": "another-verifier-of-enough-length-0123456789abcdef",
                "client_id": client,
                "redirect_uri": redirect,
            }),
            None,
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_token");
}
