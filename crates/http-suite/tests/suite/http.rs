//! The HTTP layer around the API: the OpenAPI document and the JWKS, security headers,
//! JSON errors for what the router and the extractors refuse, and whose
//! `X-Forwarded-For` is believed.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::common::{ADMIN_KEY, Framework, TestApp, assert_error};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

/// Every route of `API.md` but SSO and social login, with the password reset pair
/// (`/auth/password/reset`, `/reset/confirm`), which the code has and `API.md` does not
/// list.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/organizations/{id}/apps"),
    ("post", "/organizations/{id}/apps"),
    ("get", "/apps/{client_id}"),
    ("patch", "/apps/{client_id}"),
    ("delete", "/apps/{client_id}"),
    ("post", "/apps/{client_id}/secret"),
    ("get", "/auth/consents"),
    ("delete", "/auth/consents/{client_id}"),
    ("get", "/organizations/{id}/api-keys"),
    ("post", "/organizations/{id}/api-keys"),
    ("delete", "/organizations/{id}/api-keys/{key_id}"),
    ("get", "/organizations/{id}/members"),
    ("delete", "/organizations/{id}/members/{user_id}"),
    ("get", "/organizations/{id}/members/{user_id}"),
    ("put", "/organizations/{id}/members/{user_id}/blocked"),
    ("get", "/users/{id}/sessions"),
    ("delete", "/users/{id}/sessions"),
    ("delete", "/users/{id}/sessions/{session_id}"),
    ("get", "/organizations/{id}/login-logs"),
    ("get", "/organizations/{id}/login-logs/export"),
    ("get", "/login-logs"),
    ("get", "/organizations/{id}/templates"),
    ("put", "/organizations/{id}/templates/{kind}"),
    ("delete", "/organizations/{id}/templates/{kind}"),
    ("post", "/organizations/{id}/templates/{kind}/preview"),
    ("post", "/auth/password/change-required"),
    ("post", "/auth/unblock"),
    ("get", "/protection/challenge"),
    ("get", "/protection/blocks"),
    ("delete", "/protection/blocks/{id}"),
    ("post", "/auth/email/change"),
    ("post", "/auth/email/change/confirm"),
    ("post", "/auth/email/change/revert"),
    ("post", "/users/{id}/email/confirm"),
    ("post", "/auth/passwordless/magic-link"),
    ("post", "/auth/passwordless/magic-link/resend"),
    ("get", "/auth/passwordless/magic-link/verify"),
    ("post", "/auth/passwordless/magic-link/verify"),
    ("get", "/auth/passwordless/magic-link/status"),
    ("post", "/auth/passwordless/email-code"),
    ("post", "/auth/passwordless/email-code/resend"),
    ("post", "/auth/passwordless/email-code/verify"),
    ("post", "/auth/passwordless/sms-code"),
    ("post", "/auth/passwordless/sms-code/resend"),
    ("post", "/auth/passwordless/sms-code/verify"),
    ("get", "/auth/passwordless/passkey/register"),
    ("post", "/auth/passwordless/passkey/register"),
    ("get", "/auth/passwordless/passkey/login"),
    ("post", "/auth/passwordless/passkey/login"),
    ("get", "/auth/passwordless/passkey/status"),
    ("get", "/auth/passkeys"),
    ("patch", "/auth/passkeys/{id}"),
    ("delete", "/auth/passkeys/{id}"),
    ("post", "/auth/password/signup"),
    ("post", "/auth/signup/verify"),
    ("post", "/auth/password/login"),
    ("post", "/auth/password/change"),
    ("post", "/auth/password/reset"),
    ("post", "/auth/password/reset/confirm"),
    ("get", "/auth/status"),
    ("post", "/auth/logout"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/{id}"),
    ("post", "/token/refresh"),
    ("post", "/token"),
    ("post", "/signing-keys/rotate"),
    ("get", "/mfa/authenticators"),
    ("post", "/mfa/totp/enroll"),
    ("get", "/mfa/totp/qr.png"),
    ("post", "/mfa/totp/confirm"),
    ("post", "/mfa/challenge"),
    ("post", "/mfa/verify"),
    ("post", "/mfa/backup-codes"),
    ("delete", "/mfa/authenticators/{id}"),
    ("post", "/organizations"),
    ("get", "/organizations"),
    ("get", "/organizations/{id}"),
    ("patch", "/organizations/{id}"),
    ("delete", "/organizations/{id}"),
    ("get", "/organizations/by-client-id/{client_id}/config"),
    ("get", "/organizations/by-domain/{domain}/config"),
    ("get", "/organizations/{id}/roles"),
    ("post", "/organizations/{id}/roles"),
    ("patch", "/organizations/{id}/roles/{role_id}"),
    ("delete", "/organizations/{id}/roles/{role_id}"),
    ("get", "/organizations/{id}/permissions"),
    ("post", "/organizations/{id}/permissions"),
    ("patch", "/organizations/{id}/permissions/{perm_id}"),
    ("delete", "/organizations/{id}/permissions/{perm_id}"),
    ("get", "/users"),
    ("get", "/users/{id}"),
    ("get", "/users/by-email/{email}"),
    ("post", "/users"),
    ("patch", "/users/{id}"),
    ("delete", "/users/{id}"),
    ("get", "/users/{id}/status"),
    ("put", "/users/{id}/organizations/{org_id}/roles"),
    ("post", "/organizations/{id}/invitations"),
    ("post", "/invitations/accept"),
    ("get", "/users/{id}/organizations"),
    ("get", "/users/{id}/login-logs"),
    ("get", "/sso/{connection_id}/authorize"),
    ("get", "/sso/callback"),
    ("get", "/sso/discover"),
    ("get", "/sso/{connection_id}/saml/metadata"),
    ("post", "/sso/{connection_id}/saml/acs"),
    ("post", "/sso/saml/confirm"),
    ("get", "/social/google/authorize"),
    ("get", "/social/google/callback"),
    ("get", "/organizations/{id}/sso-connections"),
    ("post", "/organizations/{id}/sso-connections"),
    ("get", "/organizations/{id}/sso-connections/{connection_id}"),
    (
        "patch",
        "/organizations/{id}/sso-connections/{connection_id}",
    ),
    (
        "delete",
        "/organizations/{id}/sso-connections/{connection_id}",
    ),
    ("get", "/organizations/{id}/domains"),
    ("post", "/organizations/{id}/domains"),
    ("post", "/organizations/{id}/domains/{domain}/verify"),
    (
        "post",
        "/organizations/{id}/sso-connections/{connection_id}/test",
    ),
    ("post", "/organizations/{id}/setup-links"),
    ("delete", "/organizations/{id}/setup-links"),
    ("post", "/setup/session"),
    ("get", "/setup/session"),
    ("post", "/auth/sso/{connection_id}/link"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let test = TestApp::new();
    let doc = test.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    let version = doc.body["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc.body["info"]["title"], "portcullis REST API");

    let mut found = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                found.insert(format!("{} {path}", method.to_uppercase()));
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(
                    operation_ids.insert(id),
                    "{method} {path}: operationId repeats"
                );
                // Every operation documents the shared error body, and every response
                // has a description (OpenAPI requires one).
                assert!(op["responses"].get("4XX").is_some(), "{method} {path}");
                for (status, response) in op["responses"].as_object().unwrap() {
                    let text = response["description"].as_str().unwrap_or("");
                    assert!(!text.is_empty(), "{method} {path} {status}");
                }
                // Path parameters are exactly the template's; the rest are in the query.
                let in_template: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                let mut declared = BTreeSet::new();
                for param in op["parameters"].as_array().into_iter().flatten() {
                    let name = param["name"].as_str().unwrap();
                    match param["in"].as_str().unwrap() {
                        "path" => {
                            declared.insert(name);
                            assert_eq!(param["required"], true, "{method} {path} {name}");
                        }
                        "query" => assert!(!in_template.contains(name), "{method} {path} {name}"),
                        other => panic!("{method} {path} {name} in {other}"),
                    }
                }
                assert_eq!(declared, in_template, "{method} {path}");
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES
        .iter()
        .map(|(method, path)| format!("{} /api/v1{path}", method.to_uppercase()))
        .collect();
    assert_eq!(found, expected);
    assert!(doc.body["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    // Each (method, path) answers with something other than the router's 404/405.
    let test = TestApp::new();
    for (method, path) in ROUTES {
        let path = format!("/api/v1{path}")
            .replace("{id}", "x")
            .replace("{client_id}", "x")
            .replace("{domain}", "x")
            .replace("{role_id}", "x")
            .replace("{connection_id}", "x")
            .replace("{perm_id}", "x")
            .replace("{email}", "x")
            .replace("{org_id}", "x")
            .replace("{key_id}", "x")
            .replace("{user_id}", "x")
            .replace("{session_id}", "x")
            .replace("{kind}", "x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        let answer = test.call(method.clone(), &path, body, None).await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            answer.code() != "not_found" || answer.body["error"]["message"] != "no such route",
            "{method} {path}: {}",
            answer.body
        );
        // Beginning a passkey sign-in needs nothing (discoverable credentials); anywhere
        // else `{}` or no bearer is wrong: a JSON refusal with its code.
        if path == "/api/v1/auth/passwordless/passkey/login" && method == Method::GET {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            continue;
        }
        assert!(
            answer.status.is_client_error(),
            "{method} {path}: {}",
            answer.status
        );
        assert!(
            !answer.code().is_empty(),
            "{method} {path}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn the_jwks_has_the_signing_key() {
    let test = TestApp::new();
    let jwks = test.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(jwks.header("referrer-policy"), Some("no-referrer"));
    let keys = jwks.body["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k["kid"].as_str().is_some()));
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );
    // The keys sign the tokens handed out.
    let token = test.token_for("kim@example.com").await;
    let header: Value = {
        use base64::Engine as _;
        let head = token.split('.').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]), "{header}");
}

/// The document says what the server accepts (issue 17, item 8): ids are UUIDs, phone
/// numbers E.164, codes digits, enumerations their values.
#[tokio::test]
async fn the_openapi_document_gives_formats_and_bounds() {
    let test = TestApp::new();
    let doc = test.get("/api/v1/openapi.json", None).await.body;
    let param = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(param("/api/v1/users/{id}", "get", "id")["format"], "uuid");
    assert_eq!(
        param(
            "/api/v1/organizations/{id}/roles/{role_id}",
            "delete",
            "role_id"
        )["format"],
        "uuid"
    );
    assert_eq!(
        param("/api/v1/organizations", "get", "limit")["maximum"],
        100
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SmsCodeRequest"]["properties"]["phone"]["pattern"],
        r"^\+[1-9][0-9]{6,14}$"
    );
    assert_eq!(
        schemas["VerifyCodeRequest"]["properties"]["request_id"]["format"],
        "uuid"
    );
    assert_eq!(
        schemas["VerifyCodeRequest"]["properties"]["code"]["pattern"],
        "^[0-9]{4,10}$"
    );
    assert_eq!(
        schemas["EmailCodeRequest"]["properties"]["email"]["format"],
        "email"
    );
    let grants: Vec<&str> = schemas["GrantType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
}

#[tokio::test]
async fn security_headers() {
    let test = TestApp::new();
    let token = test.token_for("lea@example.com").await;
    let answers = [
        test.get("/api/v1/openapi.json", None).await,
        test.get("/api/v1/auth/status", Some(&token)).await,
        test.get("/api/v1/auth/status", None).await,
        test.get("/api/v1/nothing/here", None).await,
        test.post("/api/v1/auth/logout", json!({}), Some(&token))
            .await,
        test.get("/api/v1/users", Some(ADMIN_KEY)).await,
    ];
    for answer in &answers {
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{}",
            answer.status
        );
        assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(answers[4].status, StatusCode::NO_CONTENT);

    assert_eq!(answers[5].header("pragma"), Some("no-cache"));
    if crate::FRAMEWORK != Framework::Axum {
        return;
    }
    // The login page is the axum example's.
    let page = test.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-security-policy"),
        Some(example_axum::CSP)
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_ne!(page.header("cache-control"), Some("no-store"));
    let landing = test.get("/magic-link?token=abc", None).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(landing.header("content-security-policy").is_some());
    let script = test.get("/app.js", None).await;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let style = test.get("/style.css", None).await;
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
}

fn raw(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> Request<Vec<u8>> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn refusals_are_json_errors() {
    let test = TestApp::new();
    let path = "/api/v1/auth/passwordless/email-code";

    let malformed = test
        .request(raw(
            Method::POST,
            path,
            Some("application/json"),
            "{\"email\":",
        ))
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_input");
    let wrong_shape = test
        .request(raw(
            Method::POST,
            path,
            Some("application/json"),
            "{\"mail\": 1}",
        ))
        .await;
    assert_error(&wrong_shape, StatusCode::BAD_REQUEST, "invalid_input");
    // A mistyped value is named, never echoed: it may be a code or a token.
    let mistyped = test
        .post(
            "/api/v1/auth/passwordless/email-code/verify",
            serde_json::json!({"request_id": "x", "code": 918273}),
            None,
        )
        .await;
    assert_error(&mistyped, StatusCode::BAD_REQUEST, "invalid_input");
    let text = mistyped.body["error"]["message"].as_str().unwrap();
    assert!(
        !text.contains("918273") && text.contains("value not shown"),
        "{text}"
    );

    // Only a failed credential of the request itself challenges for a new bearer token;
    // a spent code or token in the body does not (so clients refresh only when it helps).
    let bad_bearer = test.get("/api/v1/auth/status", Some("not-a-jwt")).await;
    assert_eq!(bad_bearer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_bearer.header("www-authenticate"), Some("Bearer"));
    let bad_mfa = test
        .post(
            "/api/v1/mfa/verify",
            serde_json::json!({"mfa_token": "spent", "code": "123456"}),
            None,
        )
        .await;
    assert_eq!(bad_mfa.status, StatusCode::UNAUTHORIZED, "{}", bad_mfa.body);
    assert_eq!(bad_mfa.header("www-authenticate"), None);
    let no_type = test
        .request(raw(
            Method::POST,
            path,
            None,
            "{\"email\":\"a@example.com\"}",
        ))
        .await;
    assert_error(
        &no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let text = test
        .request(raw(
            Method::POST,
            path,
            Some("text/plain"),
            "{\"email\":\"a@example.com\"}",
        ))
        .await;
    assert_error(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let big = format!(
        "{{\"email\":\"{}@example.com\"}}",
        "a".repeat(portcullis_http::BODY_LIMIT + 1)
    );
    let too_large = test
        .request(raw(Method::POST, path, Some("application/json"), big))
        .await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(test.mail.sent().is_empty(), "nothing was sent");
    // The enrolment route reads its optional body itself.
    let enroll = test
        .request(raw(Method::POST, "/api/v1/mfa/totp/enroll", None, "{"))
        .await;
    assert_error(&enroll, StatusCode::BAD_REQUEST, "invalid_input");

    let unknown = test.get("/api/v1/no/such/route", None).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let unknown = test.get("/no-such-page", None).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    let wrong_method = test.delete("/api/v1/auth/status", None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert!(wrong_method.header("allow").unwrap().contains("GET"));
    assert_eq!(wrong_method.header("cache-control"), Some("no-store"));
    let wrong_method = test.get(path, None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

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

/// Signs `email` in with the verify request coming from `peer`, with `forwarded` as its
/// `X-Forwarded-For`: the access token.
async fn sign_in_from(test: &TestApp, email: &str, peer: &str, forwarded: Option<&str>) -> String {
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
    answer.str("token")
}

/// The address the bearer's own session recorded at sign-in.
async fn session_ip(test: &TestApp, token: &str) -> Value {
    let sessions = test.get("/api/v1/auth/sessions", Some(token)).await;
    let items = sessions.body["items"].as_array().unwrap();
    items.iter().find(|s| s["current"] == true).unwrap()["ip"].clone()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let test = TestApp::relaxed();
    let email = "max@example.com";

    // From a trusted proxy (10.0.0.0/8): the client it names.
    let token = sign_in_from(&test, email, "10.0.0.5:4000", Some("203.0.113.9")).await;
    assert_eq!(session_ip(&test, &token).await, "203.0.113.9");
    let user = test.status_of(&token).await.str("user_id");
    let log = test
        .get(
            &format!("/api/v1/users/{user}/login-logs?limit=1"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(log.body["items"][0]["kind"], "sign_in");
    assert_eq!(log.body["items"][0]["ip"], "203.0.113.9");

    // Through two trusted proxies: the right-most address that is not one of them.
    let token = sign_in_from(
        &test,
        email,
        "10.0.0.5:4000",
        Some("192.0.2.1, 198.51.100.1, 10.0.0.7"),
    )
    .await;
    assert_eq!(session_ip(&test, &token).await, "198.51.100.1");

    // From anyone else the header is ignored: the socket's address.
    let token = sign_in_from(&test, email, "192.0.2.44:5000", Some("203.0.113.9")).await;
    assert_eq!(session_ip(&test, &token).await, "192.0.2.44");
    let log = test
        .get(
            &format!("/api/v1/users/{user}/login-logs?limit=1"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(log.body["items"][0]["ip"], "192.0.2.44");

    // A trusted proxy without the header, or with garbage in it: the proxy itself.
    let token = sign_in_from(&test, email, "10.0.0.5:4000", None).await;
    assert_eq!(session_ip(&test, &token).await, "10.0.0.5");
    let token = sign_in_from(&test, email, "10.0.0.5:4000", Some("not-an-ip")).await;
    assert_eq!(session_ip(&test, &token).await, "10.0.0.5");
    // IPv6 too.
    let token = sign_in_from(&test, email, "[2001:db8::1]:443", Some("203.0.113.9")).await;
    assert_eq!(session_ip(&test, &token).await, "2001:db8::1");
    // Hops written with ports, as some proxies do.
    let token = sign_in_from(&test, email, "10.0.0.5:4000", Some("203.0.113.10:51234")).await;
    assert_eq!(session_ip(&test, &token).await, "203.0.113.10");
    let token = sign_in_from(&test, email, "10.0.0.5:4000", Some("[2001:db8::7]:443")).await;
    assert_eq!(session_ip(&test, &token).await, "2001:db8::7");
}
