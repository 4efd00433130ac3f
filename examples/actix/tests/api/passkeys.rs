//! Passkeys through the API with a real software authenticator (webauthn-authenticator-rs's
//! `SoftPasskey`): sign-up, sign-in, ceremony status and replay, the bearer's passkeys, and
//! adding one to a signed-in account.

use std::time::Duration;

use actix_web::http::StatusCode;
use portcullis::flows::passkey::{CreationChallengeResponse, RequestChallengeResponse};
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::common::{ORIGIN, TestApp, assert_error};

const PK: &str = "/api/v1/auth/passwordless/passkey";

/// The authenticator's answer to a registration's `options`, as a browser posts it.
fn register(soft: &mut SoftPasskey, options: &Value) -> Value {
    let options: CreationChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    let credential = soft
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    serde_json::to_value(credential).unwrap()
}

/// The authenticator's answer to a sign-in's `options`.
fn assert_with(soft: &mut SoftPasskey, options: &Value) -> Value {
    let options: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    let credential = soft
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    serde_json::to_value(credential).unwrap()
}

async fn ceremony(test: &TestApp, auth_code: &str) -> Value {
    let status = test
        .get(&format!("{PK}/status?auth_code={auth_code}"), None)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    status.body["status"].clone()
}

#[actix_web::test]
async fn passkey_sign_up_sign_in_and_management() {
    let test = TestApp::new();
    let mut soft = SoftPasskey::new(true);

    let begun = test
        .get(
            &format!("{PK}/register?identifier=ana@example.com&name=Ana"),
            None,
        )
        .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let auth_code = begun.str("auth_code");
    let options = &begun.body["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "ana@example.com");
    assert_eq!(ceremony(&test, &auth_code).await, "pending");
    let nobody = test.get(&format!("{PK}/register"), None).await;
    assert_error(&nobody, StatusCode::BAD_REQUEST, "invalid_input");

    let passkey = register(&mut soft, &begun.body["options"]);
    let path = format!("{PK}/register?auth_code={auth_code}&identifier=ana@example.com");
    let registered = test
        .post(&path, json!({"passkey": passkey, "name": "Laptop"}), None)
        .await;
    assert_eq!(
        registered.status,
        StatusCode::ACCEPTED,
        "{}",
        registered.body
    );
    assert_eq!(registered.body["passkey"]["name"], "Laptop");
    let passkey_id = registered.body["passkey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ceremony(&test, &auth_code).await, "completed");
    // The emailed code makes the account with the passkey and signs it in.
    let done = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": registered.str("request_id"),
                "code": test.last_email_code("ana@example.com")}),
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.body["token_type"], "Bearer");
    let replay = test
        .post(&path, json!({"passkey": passkey, "name": "Laptop"}), None)
        .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "expired");

    // Sign in.
    let login = test
        .get(&format!("{PK}/login?identifier=ana@example.com"), None)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let assertion = assert_with(&mut soft, &login.body["options"]);
    let login_path = format!("{PK}/login?auth_code={}", login.str("auth_code"));
    let signed_in = test
        .post(&login_path, json!({"passkey": assertion}), None)
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["user_id"], done.body["user_id"]);
    let token = signed_in.str("token");
    assert_eq!(test.status_of(&token).await.body["acr"], "aal2");
    let unknown = test
        .get(&format!("{PK}/status?auth_code=no-such-ceremony"), None)
        .await;
    assert_eq!(unknown.body["status"], "expired");

    // The bearer's passkeys: list, rename, delete.
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"][0]["id"], passkey_id.as_str());
    assert!(list.body["items"][0]["last_used_at"].as_i64().is_some());
    let renamed = test
        .patch(
            &format!("/api/v1/auth/passkeys/{passkey_id}"),
            json!({"name": "Work laptop"}),
            Some(&token),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Work laptop");
    let bad_id = test
        .patch(
            "/api/v1/auth/passkeys/***",
            json!({"name": "x"}),
            Some(&token),
        )
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
    let other = test.token_for("bo@example.com").await;
    let foreign = test
        .delete(&format!("/api/v1/auth/passkeys/{passkey_id}"), Some(&other))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    let deleted = test
        .delete(&format!("/api/v1/auth/passkeys/{passkey_id}"), Some(&token))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.body["items"], json!([]));
}

#[actix_web::test]
async fn a_signed_in_account_adds_a_passkey_only_soon_after_signing_in() {
    let test = TestApp::new();
    let token = test.token_for("cy@example.com").await;
    let begun = test.get(&format!("{PK}/register"), Some(&token)).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    assert_eq!(
        begun.body["options"]["publicKey"]["user"]["name"],
        "cy@example.com"
    );
    let mut soft = SoftPasskey::new(true);
    let passkey = register(&mut soft, &begun.body["options"]);
    let added = test
        .post(
            &format!("{PK}/register?auth_code={}", begun.str("auth_code")),
            json!({"passkey": passkey}),
            None,
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert!(added.body.get("token").is_none(), "{}", added.body);
    let listed = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert_eq!(
        listed.body["items"][0]["type"], "passkey",
        "{}",
        listed.body
    );

    test.advance(test.auth.config().passkeys.fresh_sign_in + Duration::from_secs(1));
    let stale = test.get(&format!("{PK}/register"), Some(&token)).await;
    assert_error(&stale, StatusCode::UNAUTHORIZED, "reauth_required");
    // A bad bearer is an error, never an anonymous sign-up.
    let bad = test
        .get(
            &format!("{PK}/register?identifier=new@example.com"),
            Some("garbage"),
        )
        .await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(bad.header("www-authenticate"), Some("Bearer"));
}
