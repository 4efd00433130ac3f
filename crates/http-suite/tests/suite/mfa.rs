//! Multi-factor routes through the whole app: TOTP enrolment with its QR code, the MFA
//! step after a first factor, backup codes, the bearer's authenticators, and enrolment
//! during sign-in in an organization that requires MFA.

use std::time::Duration;

use super::common::{ADMIN_KEY, TestApp, assert_error};
use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// What an authenticator app holding `secret` (base32) shows now.
fn app_code(test: &TestApp, secret: &str) -> String {
    let secret = portcullis::mfa::totp::decode_base32(secret).unwrap();
    let now = u64::try_from(test.auth.now().unix_secs()).unwrap();
    portcullis::mfa::totp::code_at(&secret, now, "SHA1", 6).unwrap()
}

/// A six-digit code that is not `code`.
fn other_than(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_owned()
}

async fn amr(test: &TestApp, token: &str) -> Vec<String> {
    let status = test.status_of(token).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    serde_json::from_value(status.body["amr"].clone()).unwrap()
}

/// Enrols and confirms TOTP for the bearer: the secret, the factor id and the backup codes.
async fn enable_totp(test: &TestApp, token: &str) -> (String, String, Vec<String>) {
    let enrolled = test
        .call(Method::POST, "/api/v1/mfa/totp/enroll", None, Some(token))
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let secret = enrolled.str("secret");
    let confirmed = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": app_code(test, &secret)}),
            Some(token),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let codes = serde_json::from_value(confirmed.body["backup_codes"].clone()).unwrap();
    (secret, enrolled.str("factor_id"), codes)
}

/// Signs in by email code and expects the MFA step: its `mfa_token`.
async fn mfa_step(test: &TestApp, email: &str) -> String {
    let answer = test.sign_in_via(email, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
    assert!(answer.body.get("token").is_none());
    answer.str("mfa_token")
}

#[tokio::test]
async fn totp_enrolment_the_mfa_step_and_backup_codes() {
    let test = TestApp::relaxed();
    let token = test.token_via("mo@example.com", None).await;

    // Enrol: secret, URI and QR code; the QR code also by itself.
    let enrolled = test
        .call(Method::POST, "/api/v1/mfa/totp/enroll", None, Some(&token))
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let secret = enrolled.str("secret");
    assert_eq!(
        portcullis::mfa::totp::decode_base32(&secret).unwrap().len(),
        20
    );
    let uri = enrolled.str("otpauth_uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let png = base64::engine::general_purpose::STANDARD
        .decode(enrolled.str("qr_png_base64"))
        .unwrap();
    assert!(png.starts_with(PNG_SIGNATURE));
    let qr = test.get("/api/v1/mfa/totp/qr.png", Some(&token)).await;
    assert_eq!(qr.status, StatusCode::OK);
    assert_eq!(qr.header("content-type"), Some("image/png"));
    assert!(qr.bytes.starts_with(PNG_SIGNATURE));
    assert_eq!(qr.header("cache-control"), Some("no-store"));
    let anonymous = test.get("/api/v1/mfa/totp/qr.png", None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    let pending = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert_eq!(pending.body["items"][0]["type"], "totp");
    assert_eq!(pending.body["items"][0]["status"], "pending");

    // Confirm: a wrong code is refused, the app's code gives 10 backup codes.
    let now_code = app_code(&test, &secret);
    let wrong = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": other_than(&now_code)}),
            Some(&token),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let confirmed = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": now_code}),
            Some(&token),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let backup: Vec<String> =
        serde_json::from_value(confirmed.body["backup_codes"].clone()).unwrap();
    assert_eq!(backup.len(), 10);
    assert!(confirmed.body.get("token").is_none());
    let no_pending = test.get("/api/v1/mfa/totp/qr.png", Some(&token)).await;
    assert_error(&no_pending, StatusCode::NOT_FOUND, "not_found");

    // The next sign-in stops at the MFA step.
    let mfa_token = mfa_step(&test, "mo@example.com").await;
    let answer = test.sign_in_via("mo@example.com", None).await;
    let methods: Vec<String> = serde_json::from_value(answer.body["methods"].clone()).unwrap();
    assert_eq!(methods, ["totp", "backup_code"]);
    assert_eq!(answer.body["expires_in"], 300);

    let challenge = test
        .post(
            "/api/v1/mfa/challenge",
            json!({"mfa_token": mfa_token}),
            None,
        )
        .await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.body);
    assert_eq!(challenge.body, json!({"method": "totp"}));
    let not_offered = test
        .post(
            "/api/v1/mfa/challenge",
            json!({"mfa_token": mfa_token, "method": "sms"}),
            None,
        )
        .await;
    assert_error(&not_offered, StatusCode::BAD_REQUEST, "invalid_input");
    let unknown_method = test
        .post(
            "/api/v1/mfa/challenge",
            json!({"mfa_token": mfa_token, "method": "carrier-pigeon"}),
            None,
        )
        .await;
    assert_error(&unknown_method, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_token = test
        .post("/api/v1/mfa/challenge", json!({"mfa_token": "nope"}), None)
        .await;
    assert_error(&bad_token, StatusCode::UNAUTHORIZED, "invalid_token");

    // The step confirming used is spent: a later step's code.
    test.advance(Duration::from_secs(30));
    let code = app_code(&test, &secret);
    let both = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": mfa_token, "code": code, "backup_code": backup[0]}),
            None,
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST, "invalid_input");
    let wrong = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": mfa_token, "code": other_than(&code)}),
            None,
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let verified = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": mfa_token, "code": code}),
            None,
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let strong = verified.str("token");
    assert_eq!(amr(&test, &strong).await, ["email", "otp", "mfa"]);
    assert_eq!(test.status_of(&strong).await.body["acr"], "aal2");
    let spent = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": mfa_token, "code": code}),
            None,
        )
        .await;
    assert_error(&spent, StatusCode::UNAUTHORIZED, "invalid_token");

    // A backup code works once.
    let step = mfa_step(&test, "mo@example.com").await;
    let by_backup = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": backup[0]}),
            None,
        )
        .await;
    assert_eq!(by_backup.status, StatusCode::OK, "{}", by_backup.body);
    assert!(
        amr(&test, &by_backup.str("token"))
            .await
            .contains(&"mfa".to_owned())
    );
    let step = mfa_step(&test, "mo@example.com").await;
    let again = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": backup[0]}),
            None,
        )
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // New backup codes: the old ones die.
    let anonymous = test.post("/api/v1/mfa/backup-codes", json!({}), None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    let renewed = test
        .call(
            Method::POST,
            "/api/v1/mfa/backup-codes",
            None,
            Some(&strong),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let fresh: Vec<String> = serde_json::from_value(renewed.body["backup_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !backup.contains(c)));
    let old = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": backup[1]}),
            None,
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let new = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": fresh[0]}),
            None,
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);

    // The bearer's factors.
    let list = test.get("/api/v1/mfa/authenticators", Some(&strong)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["totp", "backup_codes"]);
    assert_eq!(items[0]["status"], "active");
    assert_eq!(items[0]["id"], enrolled.body["factor_id"]);
    assert_eq!(items[1]["remaining"], 9);
}

#[tokio::test]
async fn removing_an_authenticator() {
    let test = TestApp::relaxed();
    let token = test.token_via("ned@example.com", None).await;
    let (_, factor_id, _) = enable_totp(&test, &token).await;

    let garbage = test
        .delete("/api/v1/mfa/authenticators/***", Some(&token))
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_input");
    let anonymous = test
        .delete(&format!("/api/v1/mfa/authenticators/{factor_id}"), None)
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    let other = test.token_via("oz@example.com", None).await;
    let foreign = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor_id}"),
            Some(&other),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");

    let removed = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor_id}"),
            Some(&token),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let list = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] != "totp"),
        "{}",
        list.body
    );
    let again = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor_id}"),
            Some(&token),
        )
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
    // Without it, signing in needs no second factor again.
    let after = test.sign_in_via("ned@example.com", None).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert!(after.body.get("mfa_required").is_none(), "{}", after.body);
}

#[tokio::test]
async fn removing_an_authenticator_needs_a_fresh_sign_in() {
    let test = TestApp::relaxed();
    let token = test.token_via("pia@example.com", None).await;
    let (_, factor_id, _) = enable_totp(&test, &token).await;
    // Still within the access token's life, but the sign-in is old.
    test.advance(test.auth.config().mfa.fresh_sign_in + Duration::from_secs(1));
    assert_eq!(test.status_of(&token).await.status, StatusCode::OK);
    let stale = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor_id}"),
            Some(&token),
        )
        .await;
    assert_error(&stale, StatusCode::UNAUTHORIZED, "reauth_required");
    assert_eq!(
        stale.header("www-authenticate"),
        None,
        "the token itself is fine"
    );
    let list = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert_eq!(list.body["items"][0]["type"], "totp", "{}", list.body);
    // Nor may a stale sign-in mint backup codes, or enrol and read a new secret.
    let codes = test
        .post("/api/v1/mfa/backup-codes", json!({}), Some(&token))
        .await;
    assert_error(&codes, StatusCode::UNAUTHORIZED, "reauth_required");
    let other = test.token_via("quentin@example.com", None).await;
    test.advance(test.auth.config().mfa.fresh_sign_in + Duration::from_secs(1));
    let enrol = test
        .post("/api/v1/mfa/totp/enroll", json!({}), Some(&other))
        .await;
    assert_error(&enrol, StatusCode::UNAUTHORIZED, "reauth_required");
    // The token is fine; a new sign-in is needed, not a refresh.
    assert_eq!(enrol.header("www-authenticate"), None);
    let qr = test.get("/api/v1/mfa/totp/qr.png", Some(&other)).await;
    assert_error(&qr, StatusCode::UNAUTHORIZED, "reauth_required");
    let confirm = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": "123456"}),
            Some(&other),
        )
        .await;
    assert_error(&confirm, StatusCode::UNAUTHORIZED, "reauth_required");
}

#[tokio::test]
async fn an_organization_that_requires_mfa_enrols_during_sign_in() {
    let test = TestApp::relaxed();
    let created = test
        .post(
            "/api/v1/organizations",
            json!({"name": "Acme", "slug": "acme", "settings": {"mfa": "required"}}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let org_id = created.str("id");
    let client = test
        .app_in(org_id.parse().unwrap(), "https://acme.example.com/cb")
        .await;

    let answer = test.sign_in_via("quin@example.com", Some(&client)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["mfa_enrollment_required"], true,
        "{}",
        answer.body
    );
    assert!(answer.body.get("token").is_none());
    let mfa_token = answer.str("mfa_token");
    // An enrolment token is no MFA step's token.
    let verify = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": mfa_token, "code": "123456"}),
            None,
        )
        .await;
    assert_error(&verify, StatusCode::UNAUTHORIZED, "invalid_token");
    let nobody = test
        .call(Method::POST, "/api/v1/mfa/totp/enroll", None, None)
        .await;
    assert_error(&nobody, StatusCode::UNAUTHORIZED, "invalid_token");

    let enrolled = test
        .post(
            "/api/v1/mfa/totp/enroll",
            json!({"mfa_token": mfa_token}),
            None,
        )
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let secret = enrolled.str("secret");
    let code = app_code(&test, &secret);
    let wrong = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"mfa_token": mfa_token, "code": other_than(&code)}),
            None,
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let confirmed = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"mfa_token": mfa_token, "code": code}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["backup_codes"].as_array().unwrap().len(), 10);
    let token = confirmed.str("token");
    assert_eq!(confirmed.body["token_type"], "Bearer");
    let status = test.status_of(&token).await;
    assert_eq!(status.body["org_id"], org_id.as_str());
    assert_eq!(status.body["acr"], "aal2");
    let amr: Vec<String> = serde_json::from_value(status.body["amr"].clone()).unwrap();
    assert_eq!(amr, ["email", "otp", "mfa"]);
    let used = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"mfa_token": mfa_token, "code": code}),
            None,
        )
        .await;
    assert_error(&used, StatusCode::UNAUTHORIZED, "invalid_token");

    // From now on the organization's sign-in asks for the factor.
    let next = test.sign_in_via("quin@example.com", Some(&client)).await;
    assert_eq!(next.body["mfa_required"], true, "{}", next.body);
    assert_eq!(next.body.get("mfa_enrollment_required"), None::<&Value>);
}
