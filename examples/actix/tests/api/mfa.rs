//! Multi-factor routes: TOTP enrolment and its QR code, the MFA step, backup codes, the
//! bearer's authenticators and their removal, the fresh sign-in they need, and enrolment
//! during sign-in in an organization that requires MFA.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use base64::Engine as _;
use portcullis::directory::{MfaRequirement, NewOrg};
use serde_json::json;

use crate::common::{TestApp, assert_error};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

/// What an authenticator app holding `secret` shows now.
fn app_code(test: &TestApp, secret: &str) -> String {
    let secret = portcullis::mfa::totp::decode_base32(secret).unwrap();
    let now = u64::try_from(test.auth.now().unix_secs()).unwrap();
    portcullis::mfa::totp::code_at(&secret, now, "SHA1", 6).unwrap()
}

fn other_than(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_owned()
}

/// Signs in by email code and expects the MFA step: its `mfa_token`.
async fn mfa_step(test: &TestApp, email: &str) -> String {
    let answer = test.sign_in_via(email, None).await;
    assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
    assert!(answer.body.get("token").is_none());
    answer.str("mfa_token")
}

#[actix_web::test]
async fn totp_enrolment_the_mfa_step_backup_codes_and_removal() {
    let test = TestApp::relaxed();
    let token = test.token_for("mo@example.com").await;

    let enrolled = test
        .call(Method::POST, "/api/v1/mfa/totp/enroll", None, Some(&token))
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let secret = enrolled.str("secret");
    assert!(enrolled.str("otpauth_uri").starts_with("otpauth://totp/"));
    let png = base64::engine::general_purpose::STANDARD
        .decode(enrolled.str("qr_png_base64"))
        .unwrap();
    assert!(png.starts_with(PNG));
    let qr = test.get("/api/v1/mfa/totp/qr.png", Some(&token)).await;
    assert_eq!(qr.status, StatusCode::OK);
    assert_eq!(qr.header("content-type"), Some("image/png"));
    assert!(qr.bytes.starts_with(PNG));
    assert_eq!(qr.header("cache-control"), Some("no-store"));
    let pending = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert_eq!(pending.body["items"][0]["type"], "totp");
    assert_eq!(pending.body["items"][0]["status"], "pending");

    let code = app_code(&test, &secret);
    let wrong = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": other_than(&code)}),
            Some(&token),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let confirmed = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let backup: Vec<String> =
        serde_json::from_value(confirmed.body["backup_codes"].clone()).unwrap();
    assert_eq!(backup.len(), 10);

    // The next sign-in stops at the MFA step.
    let step = mfa_step(&test, "mo@example.com").await;
    let challenge = test
        .post("/api/v1/mfa/challenge", json!({"mfa_token": step}), None)
        .await;
    assert_eq!(challenge.body, json!({"method": "totp"}));
    let unknown = test
        .post(
            "/api/v1/mfa/challenge",
            json!({"mfa_token": step, "method": "pigeon"}),
            None,
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_input");
    test.advance(Duration::from_secs(30));
    let code = app_code(&test, &secret);
    let both = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "code": code, "backup_code": backup[0]}),
            None,
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST, "invalid_input");
    let verified = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "code": code}),
            None,
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let strong = verified.str("token");
    let status = test.status_of(&strong).await;
    assert_eq!(status.body["amr"], json!(["email", "otp", "mfa"]));
    assert_eq!(status.body["acr"], "aal2");
    let spent = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "code": code}),
            None,
        )
        .await;
    assert_error(&spent, StatusCode::UNAUTHORIZED, "invalid_token");

    // A backup code, once; new ones kill the old.
    let step = mfa_step(&test, "mo@example.com").await;
    let by_backup = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": backup[0]}),
            None,
        )
        .await;
    assert_eq!(by_backup.status, StatusCode::OK, "{}", by_backup.body);
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
    assert!(fresh.iter().all(|c| !backup.contains(c)));
    let step = mfa_step(&test, "mo@example.com").await;
    let old = test
        .post(
            "/api/v1/mfa/verify",
            json!({"mfa_token": step, "backup_code": backup[1]}),
            None,
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");

    let list = test.get("/api/v1/mfa/authenticators", Some(&strong)).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items[0]["status"], "active");
    assert_eq!(items[1]["type"], "backup_codes");
    assert_eq!(items[1]["remaining"], 10);

    // Removal: garbage, someone else's, then the real thing.
    let factor = enrolled.str("factor_id");
    let garbage = test
        .delete("/api/v1/mfa/authenticators/***", Some(&strong))
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_input");
    let stranger = test.token_for("oz@example.com").await;
    let foreign = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor}"),
            Some(&stranger),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    let removed = test
        .delete(
            &format!("/api/v1/mfa/authenticators/{factor}"),
            Some(&strong),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let after = test.sign_in_via("mo@example.com", None).await;
    assert!(after.body.get("mfa_required").is_none(), "{}", after.body);
}

#[actix_web::test]
async fn authenticator_changes_need_a_fresh_sign_in() {
    let test = TestApp::relaxed();
    let token = test.token_for("pia@example.com").await;
    test.advance(test.auth.config().mfa.fresh_sign_in + Duration::from_secs(1));
    assert_eq!(test.status_of(&token).await.status, StatusCode::OK);
    let enrol = test
        .post("/api/v1/mfa/totp/enroll", json!({}), Some(&token))
        .await;
    assert_error(&enrol, StatusCode::UNAUTHORIZED, "reauth_required");
    assert_eq!(
        enrol.header("www-authenticate"),
        None,
        "the token itself is fine"
    );
    let qr = test.get("/api/v1/mfa/totp/qr.png", Some(&token)).await;
    assert_error(&qr, StatusCode::UNAUTHORIZED, "reauth_required");
    let confirm = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"code": "123456"}),
            Some(&token),
        )
        .await;
    assert_error(&confirm, StatusCode::UNAUTHORIZED, "reauth_required");
    let codes = test
        .post("/api/v1/mfa/backup-codes", json!({}), Some(&token))
        .await;
    assert_error(&codes, StatusCode::UNAUTHORIZED, "reauth_required");
    let nobody = test
        .call(Method::POST, "/api/v1/mfa/totp/enroll", None, None)
        .await;
    assert_error(&nobody, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[actix_web::test]
async fn an_organization_that_requires_mfa_enrols_during_sign_in() {
    let test = TestApp::relaxed();
    let mut new = NewOrg::new("Acme", "acme");
    new.settings.mfa = MfaRequirement::Required;
    let org = test.auth.orgs().create(new).await.unwrap();
    let client = test.app_in(org.id, "https://acme.example.com/cb").await;

    let answer = test.sign_in_via("quin@example.com", Some(&client)).await;
    assert_eq!(
        answer.body["mfa_enrollment_required"], true,
        "{}",
        answer.body
    );
    let mfa_token = answer.str("mfa_token");
    let enrolled = test
        .post(
            "/api/v1/mfa/totp/enroll",
            json!({"mfa_token": mfa_token}),
            None,
        )
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let code = app_code(&test, &enrolled.str("secret"));
    let confirmed = test
        .post(
            "/api/v1/mfa/totp/confirm",
            json!({"mfa_token": mfa_token, "code": code}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["backup_codes"].as_array().unwrap().len(), 10);
    let status = test.status_of(&confirmed.str("token")).await;
    assert_eq!(status.body["org_id"], org.id.to_string().as_str());
    assert_eq!(status.body["acr"], "aal2");
}
