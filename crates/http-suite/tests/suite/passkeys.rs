//! Passkeys through the API with a real software authenticator
//! (webauthn-authenticator-rs's `SoftPasskey`): sign-up, sign-in, ceremony status and
//! replay, the bearer's passkeys, and adding one to a signed-in account (fresh sign-in).

use std::time::Duration;

use super::common::{Answer, TestApp, assert_error};
use http::StatusCode;
use portcullis::flows::passkey::{CreationChallengeResponse, RequestChallengeResponse};
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const PK: &str = "/api/v1/auth/passwordless/passkey";

fn origin() -> Url {
    Url::parse("http://localhost:8080").unwrap()
}

/// The authenticator's answer to a registration's `options`, as the browser posts it.
fn register(soft: &mut SoftPasskey, options: &Value) -> Value {
    let options: CreationChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    let credential = soft.do_registration(origin(), options).unwrap();
    serde_json::to_value(credential).unwrap()
}

/// The authenticator's answer to a sign-in's `options`.
fn assert_with(soft: &mut SoftPasskey, options: &Value) -> Value {
    let options: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    let credential = soft.do_authentication(origin(), options).unwrap();
    serde_json::to_value(credential).unwrap()
}

async fn ceremony_status(test: &TestApp, auth_code: &str) -> Value {
    let status = test
        .get(&format!("{PK}/status?auth_code={auth_code}"), None)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    status.body["status"].clone()
}

/// Signs `email` up with a new passkey and the emailed code: the sign-up's answer, with the
/// passkey the registration answered.
async fn sign_up(test: &TestApp, email: &str, soft: &mut SoftPasskey) -> Answer {
    let begun = test
        .get(&format!("{PK}/register?identifier={email}&name=Ana"), None)
        .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let passkey = register(soft, &begun.body["options"]);
    let registered = test
        .post(
            &format!("{PK}/register?auth_code={}", begun.str("auth_code")),
            json!({"passkey": passkey, "name": "Laptop"}),
            None,
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::ACCEPTED,
        "{}",
        registered.body
    );
    let code = test.last_email_code(email);
    let mut verified = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": registered.str("request_id"), "code": code}),
            None,
        )
        .await;
    verified.body["passkey"] = registered.body["passkey"].clone();
    verified
}

#[tokio::test]
async fn passkey_sign_up_sign_in_and_management() {
    let test = TestApp::new();
    let mut soft = SoftPasskey::new(true);

    // Begin: the options a browser needs.
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
    assert_eq!(options["rp"]["name"], "portcullis test");
    assert_eq!(options["user"]["name"], "ana@example.com");
    assert_eq!(options["user"]["displayName"], "Ana");
    assert!(options["challenge"].as_str().is_some_and(|c| c.len() >= 22));
    assert_eq!(ceremony_status(&test, &auth_code).await, "pending");

    // Finish: 202 with the passkey and the request its emailed code finishes; then the
    // code makes the account and signs it in.
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
    assert_eq!(registered.body["expires_in"], 600);
    let passkey_id = registered.body["passkey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = test.last_email_code("ana@example.com");
    let done = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": registered.str("request_id"), "code": code}),
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert!(done.body["token"].as_str().is_some());
    assert_eq!(done.body["token_type"], "Bearer");
    let user_id = done.str("user_id");
    assert_eq!(ceremony_status(&test, &auth_code).await, "completed");
    let status = test.status_of(&done.str("token")).await;
    assert_eq!(status.body["email"], "ana@example.com");
    assert!(
        status.body["amr"]
            .as_array()
            .unwrap()
            .contains(&json!("user")),
        "{}",
        status.body
    );
    assert_eq!(status.body["acr"], "aal2");

    // The same answer again: the ceremony is spent.
    let replay = test
        .post(&path, json!({"passkey": passkey, "name": "Laptop"}), None)
        .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "expired");
    // A taken address starts and finishes a ceremony like any other (ENUM-03: no account
    // oracle); its owner is told, and no code makes a second account.
    test.advance(Duration::from_secs(31));
    let taken = test
        .get(&format!("{PK}/register?identifier=ana@example.com"), None)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    let mut other = SoftPasskey::new(true);
    let created = register(&mut other, &taken.body["options"]);
    let finish = format!("{PK}/register?auth_code={}", taken.str("auth_code"));
    let alike = test
        .post(&finish, json!({"passkey": created, "name": "Laptop"}), None)
        .await;
    assert_eq!(alike.status, registered.status, "{}", alike.body);
    let keys = |body: &Value| {
        body.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&alike.body), keys(&registered.body));
    let notice = test.mail.sent().pop().unwrap();
    assert_eq!(notice.message.kind, portcullis::MessageKind::SignUpAttempt);
    let refused = test
        .post(
            "/api/v1/auth/signup/verify",
            json!({"request_id": alike.str("request_id"), "code": "123456"}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let nobody = test.get(&format!("{PK}/register"), None).await;
    assert_error(&nobody, StatusCode::BAD_REQUEST, "invalid_input");

    // Sign in.
    let login = test
        .get(&format!("{PK}/login?identifier=ana@example.com"), None)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let login_code = login.str("auth_code");
    assert_eq!(ceremony_status(&test, &login_code).await, "pending");
    let assertion = assert_with(&mut soft, &login.body["options"]);
    let login_path = format!("{PK}/login?auth_code={login_code}");
    let signed_in = test
        .post(&login_path, json!({"passkey": assertion}), None)
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.str("user_id"), user_id);
    assert_eq!(signed_in.body["token_type"], "Bearer");
    // A passkey with user verification is two factors in one.
    let by_passkey = test.status_of(&signed_in.str("token")).await;
    assert_eq!(by_passkey.body["acr"], "aal2", "{}", by_passkey.body);
    assert_eq!(ceremony_status(&test, &login_code).await, "completed");
    let replay = test
        .post(&login_path, json!({"passkey": assertion}), None)
        .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "expired");
    let unknown = test
        .get(&format!("{PK}/status?auth_code=no-such-ceremony"), None)
        .await;
    assert_eq!(unknown.body["status"], "expired");

    // The bearer's passkeys: list, rename, delete.
    let token = signed_in.str("token");
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], passkey_id.as_str());
    assert_eq!(items[0]["name"], "Laptop");
    assert!(items[0]["last_used_at"].as_i64().is_some());
    assert_eq!(list.body["next_cursor"], Value::Null);

    let renamed = test
        .patch(
            &format!("/api/v1/auth/passkeys/{passkey_id}"),
            json!({"name": "Work laptop"}),
            Some(&token),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Work laptop");
    assert_eq!(renamed.body["id"], passkey_id.as_str());
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.body["items"][0]["name"], "Work laptop");
    let blank = test
        .patch(
            &format!("/api/v1/auth/passkeys/{passkey_id}"),
            json!({"name": ""}),
            Some(&token),
        )
        .await;
    assert_error(&blank, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_id = test
        .patch(
            "/api/v1/auth/passkeys/***",
            json!({"name": "x"}),
            Some(&token),
        )
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");

    // Someone else cannot touch it.
    let other = test.token_for("bo@example.com").await;
    let foreign = test
        .delete(&format!("/api/v1/auth/passkeys/{passkey_id}"), Some(&other))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    let anonymous = test.get("/api/v1/auth/passkeys", None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");

    // An assertion made before the deletion is refused after it.
    let login = test
        .get(&format!("{PK}/login?identifier=ana@example.com"), None)
        .await;
    let late_assertion = assert_with(&mut soft, &login.body["options"]);
    let deleted = test
        .delete(&format!("/api/v1/auth/passkeys/{passkey_id}"), Some(&token))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.body["items"], json!([]));
    let again = test
        .delete(&format!("/api/v1/auth/passkeys/{passkey_id}"), Some(&token))
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    let refused = test
        .post(
            &format!("{PK}/login?auth_code={}", login.str("auth_code")),
            json!({"passkey": late_assertion}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_signed_in_account_adds_a_passkey_only_soon_after_signing_in() {
    let test = TestApp::new();
    let token = test.token_for("cy@example.com").await;

    // Right after sign-in: the bearer's own account, no identifier needed.
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
    assert_eq!(added.body["passkey"]["name"], "Passkey");
    assert!(
        added.body.get("token").is_none(),
        "no new sign-in: {}",
        added.body
    );
    let list = test.get("/api/v1/auth/passkeys", Some(&token)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let factors = test.get("/api/v1/mfa/authenticators", Some(&token)).await;
    assert_eq!(
        factors.body["items"][0]["type"], "passkey",
        "{}",
        factors.body
    );

    // The authenticator now signs this account in.
    let login = test
        .get(&format!("{PK}/login?identifier=cy@example.com"), None)
        .await;
    let assertion = assert_with(&mut soft, &login.body["options"]);
    let signed_in = test
        .post(
            &format!("{PK}/login?auth_code={}", login.str("auth_code")),
            json!({"passkey": assertion}),
            None,
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let status = test.status_of(&token).await;
    assert_eq!(signed_in.body["user_id"], status.body["user_id"]);

    // Past `fresh_sign_in` (10 minutes), the same session must sign in again first.
    test.advance(test.auth.config().passkeys.fresh_sign_in + Duration::from_secs(1));
    assert_eq!(test.status_of(&token).await.status, StatusCode::OK);
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

#[tokio::test]
async fn a_second_sign_up_with_the_same_authenticator_gets_its_own_account() {
    let test = TestApp::new();
    let mut soft = SoftPasskey::new(true);
    let first = sign_up(&test, "dee@example.com", &mut soft).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = sign_up(&test, "eve@example.com", &mut soft).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_ne!(first.body["user_id"], second.body["user_id"]);
    assert_ne!(first.body["passkey"]["id"], second.body["passkey"]["id"]);
    // A tampered answer is refused and spends the ceremony.
    let begun = test
        .get(&format!("{PK}/register?identifier=fay@example.com"), None)
        .await;
    let mut passkey = register(&mut soft, &begun.body["options"]);
    passkey["response"]["clientDataJSON"] = json!("e30");
    let refused = test
        .post(
            &format!("{PK}/register?auth_code={}", begun.str("auth_code")),
            json!({"passkey": passkey}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        ceremony_status(&test, &begun.str("auth_code")).await,
        "failed"
    );
}
