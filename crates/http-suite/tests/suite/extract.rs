//! The framework crates' extractors by themselves (`Authenticated`, `AuthenticatedLive`,
//! `Permitted`): every way a bearer fails, and the guard in front of the examples' demo
//! invoices.

use std::time::Duration;

use http::{Method, StatusCode};
use portcullis::directory::{NewOrg, RoleSpec};
use portcullis::{AuthMethod, RequestContext, SignIn};
use serde_json::{Value, json};

use super::common::{Answer, PROBES, TestApp, assert_challenged, assert_error};

const INVOICES: &str = "/api/v1/demo/invoices";

async fn with_authorization(test: &TestApp, path: &str, value: &str) -> Answer {
    test.call_with(
        Method::GET,
        path,
        None,
        None,
        &[("authorization", value)],
        None,
    )
    .await
}

#[tokio::test]
async fn missing_and_malformed_bearers_are_refused_with_a_challenge() {
    let test = TestApp::new();
    let token = test.token_for("ann@example.com").await;
    for path in PROBES.iter().chain(&[INVOICES, "/api/v1/auth/status"]) {
        assert_challenged(&test.get(path, None).await, "invalid_token");
        for header in ["Basic YTpi", "Bearer", "Bearer    ", "bearer", "Token abc"] {
            let answer = with_authorization(&test, path, header).await;
            assert_challenged(&answer, "invalid_token");
        }
        let garbage = test.get(path, Some("not-a-jwt")).await;
        assert_challenged(&garbage, "invalid_token");
        let unsigned = test.get(path, Some("eyJhbGciOiJub25lIn0.e30.")).await;
        assert_challenged(&unsigned, "invalid_token");
        // A token with one character of its signature changed.
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_challenged(&test.get(path, Some(&forged)).await, "invalid_token");
    }
    // The scheme is case-insensitive, as RFC 9110 says.
    let lower = with_authorization(&test, PROBES[0], &format!("bearer {token}")).await;
    assert_eq!(lower.status, StatusCode::OK, "{}", lower.body);
    let user = test.status_of(&token).await.str("user_id");
    assert_eq!(lower.str("user_id"), user);
}

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    let test = TestApp::new();
    let token = test.token_for("ben@example.com").await;
    for path in PROBES {
        let fine = test.get(path, Some(&token)).await;
        assert_eq!(fine.status, StatusCode::OK, "{path}: {}", fine.body);
    }
    let config = test.auth.config();
    // Within the leeway it still passes; past it, it is expired.
    test.advance(config.ttl.access_token);
    assert_eq!(
        test.get(PROBES[0], Some(&token)).await.status,
        StatusCode::OK
    );
    test.advance(config.tokens.leeway + Duration::from_secs(1));
    for path in PROBES.iter().chain(&["/api/v1/auth/status"]) {
        assert_challenged(&test.get(path, Some(&token)).await, "expired");
    }
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let test = TestApp::new();
    let own = test.token_for("cat@example.com").await;
    let user: portcullis::UserId = test.status_of(&own).await.str("user_id").parse().unwrap();
    // Another engine over the same store signs with the same keys, for another audience.
    let other = test.sibling(|config| config.audience = "https://api.other.example".into());
    let SignIn::Complete(set) = other
        .complete_first_factor(user, AuthMethod::Email, None, &RequestContext::new())
        .await
        .unwrap()
    else {
        panic!("no MFA here");
    };
    let foreign = set.access_token.secret().to_owned();
    // The signature is good: the other engine accepts it, and its key is in our JWKS.
    let claims = other
        .tokens()
        .verify(&portcullis::crypto::AccessToken::new(foreign.clone()))
        .await
        .unwrap();
    assert_eq!(claims.aud, "https://api.other.example");
    let head: Value = {
        use base64::Engine as _;
        let head = foreign.split('.').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let jwks = test.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&Value> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(kids.contains(&&head["kid"]), "{head} {}", jwks.body);
    // Only the audience is wrong, and that is enough.
    for path in PROBES.iter().chain(&[INVOICES]) {
        assert_challenged(&test.get(path, Some(&foreign)).await, "invalid_token");
    }
    assert_eq!(test.get(PROBES[1], Some(&own)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_the_live_extractor_only() {
    let test = TestApp::relaxed();
    let token = test.token_for("dan@example.com").await;
    test.advance(Duration::from_secs(2));
    let other = test.token_for("dan@example.com").await;

    let out = test
        .post("/api/v1/auth/logout", json!({}), Some(&token))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert!(out.bytes.is_empty());
    assert_challenged(&test.get(PROBES[1], Some(&token)).await, "session_revoked");
    // A second sign-out with the same token: the session is gone.
    let again = test
        .post("/api/v1/auth/logout", json!({}), Some(&token))
        .await;
    assert_challenged(&again, "session_revoked");
    // The stateless extractor cannot know until the token expires.
    let stateless = test.get(PROBES[0], Some(&token)).await;
    assert_eq!(stateless.status, StatusCode::OK, "{}", stateless.body);

    // Ended from another session: the same.
    let sid = test.status_of(&other).await.str("session_id");
    test.advance(Duration::from_secs(2));
    let third = test.token_for("dan@example.com").await;
    let revoked = test
        .delete(&format!("/api/v1/auth/sessions/{sid}"), Some(&third))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_challenged(&test.get(PROBES[1], Some(&other)).await, "session_revoked");
    assert_challenged(&test.status_of(&other).await, "session_revoked");
    assert_eq!(
        test.get(PROBES[0], Some(&other)).await.status,
        StatusCode::OK
    );

    let config = test.auth.config();
    test.advance(config.ttl.access_token + config.tokens.leeway + Duration::from_secs(1));
    assert_challenged(&test.get(PROBES[0], Some(&token)).await, "expired");
}

/// An organization "acme" with an app, `invoices:read` and `invoices:write`, and roles
/// granting them: its client id, its id and the roles' ids (reader, wildcard).
async fn acme(test: &TestApp) -> (String, portcullis::OrgId, [portcullis::model::RoleId; 2]) {
    let org = test
        .auth
        .orgs()
        .create(NewOrg::new("Acme", "acme"))
        .await
        .unwrap();
    let client = test.app_in(org.id, "https://acme.example.com/cb").await;
    let rbac = test.auth.rbac();
    for name in ["invoices:read", "invoices:write"] {
        rbac.define_permission(org.id, name, None).await.unwrap();
    }
    let reader = rbac
        .create_role(org.id, &RoleSpec::new("reader", &["invoices:read"]))
        .await
        .unwrap();
    let all = rbac
        .create_role(org.id, &RoleSpec::new("accountant", &["invoices:*"]))
        .await
        .unwrap();
    (client, org.id, [reader.id, all.id])
}

#[tokio::test]
async fn the_invoices_need_invoices_read_in_the_token() {
    let test = TestApp::relaxed();
    let (client, org, [reader, accountant]) = acme(&test).await;
    let ctx = RequestContext::new();

    // No token, and no permission.
    assert_challenged(&test.get(INVOICES, None).await, "invalid_token");
    let eve = test.token_via("eve@example.com", Some(&client)).await;
    assert_error(
        &test.get(INVOICES, Some(&eve)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // With the role, a sign-in in the organization carries the permission.
    let user: portcullis::UserId = test.status_of(&eve).await.str("user_id").parse().unwrap();
    test.auth
        .rbac()
        .add_member(user, org, &[reader], &ctx)
        .await
        .unwrap();
    // A token signed before the roles changed is stale under the live check: the client
    // refreshes (the challenge says so) and gets the roles held now.
    assert_challenged(&test.get(INVOICES, Some(&eve)).await, "invalid_token");
    let fresh = test.token_via("eve@example.com", Some(&client)).await;
    let listed = test.get(INVOICES, Some(&fresh)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], "INV-1001");
    assert_eq!(listed.body["next_cursor"], Value::Null);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    assert_eq!(listed.header("x-content-type-options"), Some("nosniff"));
    // Outside the organization the same user holds nothing.
    let elsewhere = test.token_via("eve@example.com", None).await;
    assert_error(
        &test.get(INVOICES, Some(&elsewhere)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // `invoices:*` grants it too.
    let fay = test.token_via("fay@example.com", Some(&client)).await;
    let fay_id = test.status_of(&fay).await.str("user_id").parse().unwrap();
    test.auth
        .rbac()
        .add_member(fay_id, org, &[accountant], &ctx)
        .await
        .unwrap();
    let fay = test.token_via("fay@example.com", Some(&client)).await;
    assert_eq!(test.get(INVOICES, Some(&fay)).await.status, StatusCode::OK);

    // The guard checks the session: signed out, the token no longer opens it.
    let out = test
        .post("/api/v1/auth/logout", json!({}), Some(&fresh))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_challenged(&test.get(INVOICES, Some(&fresh)).await, "session_revoked");
    // Another method on the guarded path is a JSON 405.
    let post = test.post(INVOICES, json!({}), None).await;
    assert_error(&post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_token_without_its_permissions_is_checked_against_the_roles() {
    let test = TestApp::relaxed();
    let (client, org, [reader, _]) = acme(&test).await;
    let token = test.token_via("gil@example.com", Some(&client)).await;
    let mut claims = test
        .auth
        .tokens()
        .verify(&portcullis::crypto::AccessToken::new(token.clone()))
        .await
        .unwrap();
    let holds = async |claims: &portcullis::tokens::Claims, permission: &str| {
        portcullis_http::require_permission(&test.auth, claims, permission)
            .await
            .is_ok()
    };
    // What the engine signs when the permissions would make the token too large.
    claims.perms.clear();
    claims.perms_omitted = true;
    assert!(!holds(&claims, "invoices:read").await);
    test.auth
        .rbac()
        .add_member(claims.sub, org, &[reader], &RequestContext::new())
        .await
        .unwrap();
    assert!(holds(&claims, "invoices:read").await);
    assert!(!holds(&claims, "invoices:write").await);
    claims.org = None;
    assert!(!holds(&claims, "invoices:read").await);
}

#[tokio::test]
async fn json_bodies_must_be_labelled_json() {
    let test = TestApp::relaxed();
    let path = "/api/v1/auth/passwordless/email-code";
    let body = br#"{"email": "hal@example.com"}"#.to_vec();
    for (content_type, status) in [
        ("text/json", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("application/xml", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("application/json; charset=utf-8", StatusCode::OK),
        ("application/vnd.api+json", StatusCode::OK),
    ] {
        test.advance(Duration::from_secs(2));
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", content_type)
            .body(body.clone())
            .unwrap();
        let answer = test.request(request).await;
        if status == StatusCode::OK {
            assert_eq!(answer.status, status, "{content_type}: {}", answer.body);
        } else {
            assert_error(&answer, status, "unsupported_media_type");
        }
    }
    // Too large with no content type at all, on a route whose body is optional.
    let big = http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/mfa/totp/enroll")
        .body(vec![b'x'; portcullis_http::BODY_LIMIT + 1])
        .unwrap();
    assert_error(
        &test.request(big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // The API's root is no route.
    assert_error(
        &test.get("/api/v1", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // 405s name what the path allows (OPTIONS: the CORS preflight).
    let allowed = |answer: &Answer| -> std::collections::BTreeSet<String> {
        answer
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect()
    };
    let status = test.delete("/api/v1/auth/status", None).await;
    assert_error(
        &status,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(
        allowed(&status),
        ["GET", "HEAD", "OPTIONS"].map(String::from).into()
    );
    let verify = test
        .delete("/api/v1/auth/passwordless/magic-link/verify", None)
        .await;
    assert_eq!(
        allowed(&verify),
        ["GET", "HEAD", "OPTIONS", "POST"].map(String::from).into()
    );
}
