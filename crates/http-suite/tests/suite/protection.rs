//! Attack protection over the REST API: lockouts listed and lifted by administrators,
//! the bot check a client answers with `X-Bot-Proof`, the lockout notice's unblock link,
//! and a breached password replaced before a session opens.

use std::net::SocketAddr;

use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::common::{ADMIN_KEY, Answer, TestApp, assert_error};

const GOOD: &str = "correct horse battery staple";
const WRONG: &str = "not the password at all, sorry";

/// A request from `peer` (the client address the engine counts), with `proof` as the
/// answer to a bot check when given.
async fn from(
    test: &TestApp,
    peer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    proof: Option<&str>,
    bearer: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(proof) = proof {
        request = request.header("x-bot-proof", proof);
    }
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes()),
        None => request.body(Vec::new()),
    };
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    test.send(request.unwrap(), Some(peer)).await
}

async fn login(test: &TestApp, peer: &str, password: &str, proof: Option<&str>) -> Answer {
    let body = json!({"email": "ana@example.com", "password": password});
    from(
        test,
        peer,
        Method::POST,
        "/api/v1/auth/password/login",
        Some(body),
        proof,
        None,
    )
    .await
}

#[tokio::test]
async fn a_lockout_is_refused_listed_and_lifted_over_the_rest_api() {
    let test = TestApp::new();
    let signed_up = test.password_signup("ana@example.com", GOOD).await;
    assert_eq!(signed_up.status, StatusCode::CREATED, "{}", signed_up.body);
    for _ in 0..10 {
        let answer = login(&test, "203.0.113.9", WRONG, None).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let locked = login(&test, "203.0.113.9", GOOD, None).await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(locked.header("retry-after").is_some());
    // The owner's notice went out with its link.
    let notice = test.mail.sent().into_iter().last().unwrap();
    assert_eq!(notice.message.kind, portcullis::MessageKind::AccountLocked);
    // Administrators see it, others do not.
    test.advance(std::time::Duration::from_secs(31));
    let anonymous = test.get("/api/v1/protection/blocks", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let user = test.token_for("ana@example.com").await;
    let mine = test.get("/api/v1/protection/blocks", Some(&user)).await;
    assert_error(&mine, StatusCode::FORBIDDEN, "forbidden");
    let listed = test.get("/api/v1/protection/blocks", Some(ADMIN_KEY)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", listed.body);
    assert_eq!(items[0]["kind"], "account_lockout");
    assert_eq!(items[0]["network"], "203.0.113.9");
    assert_eq!(items[0]["scope"], "signin_fail_account_ip");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let lifted = test
        .delete(&format!("/api/v1/protection/blocks/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.body);
    let again = login(&test, "203.0.113.9", GOOD, None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let gone = test
        .delete(&format!("/api/v1/protection/blocks/{id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_client_answers_the_bot_check_with_a_solved_challenge_once() {
    let test = TestApp::with_builder(|builder| builder.proof_of_work());
    test.password_signup("ana@example.com", GOOD).await;
    for _ in 0..3 {
        let answer = login(&test, "203.0.113.9", WRONG, None).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let asked = login(&test, "203.0.113.9", GOOD, None).await;
    assert_error(
        &asked,
        StatusCode::PRECONDITION_REQUIRED,
        "bot_check_required",
    );
    let challenge = test.get("/api/v1/protection/challenge", None).await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.body);
    assert_eq!(challenge.body["algorithm"], "sha256-hashcash");
    let difficulty = challenge.body["difficulty"].as_u64().unwrap() as u8;
    let proof = portcullis::protect::solve(&challenge.str("challenge"), difficulty);
    let passed = login(&test, "203.0.113.9", GOOD, Some(&proof)).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    // Spent: another risky client cannot use it.
    for _ in 0..3 {
        login(&test, "203.0.113.10", WRONG, None).await;
    }
    let replayed = login(&test, "203.0.113.10", GOOD, Some(&proof)).await;
    assert_error(
        &replayed,
        StatusCode::PRECONDITION_REQUIRED,
        "bot_check_required",
    );
    // A server without the proof of work hands out no challenge.
    let plain = TestApp::new();
    let none = plain.get("/api/v1/protection/challenge", None).await;
    assert_error(&none, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_unblock_link_lifts_the_lockout_and_starts_a_reset() {
    let test = TestApp::new();
    test.password_signup("ana@example.com", GOOD).await;
    for _ in 0..10 {
        login(&test, "203.0.113.9", WRONG, None).await;
    }
    let notice = test.mail.sent().into_iter().last().unwrap();
    let link = url::Url::parse(notice.message.link.as_ref().unwrap().secret()).unwrap();
    assert_eq!(link.path(), "/unblock");
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    test.advance(std::time::Duration::from_secs(31));
    let body = json!({"token": token, "reset": true});
    let unblocked = test.post("/api/v1/auth/unblock", body.clone(), None).await;
    assert_eq!(unblocked.status, StatusCode::OK, "{}", unblocked.body);
    assert_eq!(unblocked.body["unblocked"], true);
    let request_id = unblocked.str("reset_request_id");
    let code = test.last_email_code("ana@example.com");
    let reset = test
        .post(
            "/api/v1/auth/password/reset/confirm",
            json!({"request_id": request_id, "code": code, "new_password": "a brand new passphrase here"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let spent = test.post("/api/v1/auth/unblock", body, None).await;
    assert_error(&spent, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_breached_password_is_replaced_before_a_session_opens() {
    let test = TestApp::new();
    let mut user = portcullis::model::User::new(portcullis::UserId::generate(), test.auth.now());
    user.email = Some("ana@example.com".parse().unwrap());
    user.email_verified = true;
    user.password_hash = Some(portcullis_test_support::policy_hash("password123"));
    portcullis::store::UserStore::create_user(test.store(), &user)
        .await
        .unwrap();
    let held = login(&test, "198.51.100.7", "password123", None).await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    assert_eq!(held.body["password_change_required"], true);
    assert!(held.body.get("token").is_none(), "{}", held.body);
    let changed = test
        .post(
            "/api/v1/auth/password/change-required",
            json!({"change_token": held.str("change_token"), "new_password": GOOD}),
            None,
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body["token"].is_string());
    let again = login(&test, "198.51.100.7", GOOD, None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body["token"].is_string());
}
