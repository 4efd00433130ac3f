//! Custom login domains (checklist ADM-18): an organization's proven domain serves it,
//! links in its messages point there, and no other `Host` names an organization or
//! builds a link.

use super::common::{ADMIN_KEY, Answer, TestApp, assert_error};
use http::{Method, StatusCode};
use portcullis::store::OrgStore;
use portcullis::{Clock, OrgId};
use serde_json::{Value, json};

const LOGIN: &str = "login.acme.example";

/// Claims `domain` for `org` over the API and marks it proven (what the DNS check does
/// when the TXT record is there).
async fn prove(test: &TestApp, org: OrgId, domain: &str) {
    let claimed = test
        .post(
            &format!("/api/v1/organizations/{org}/domains"),
            json!({"domain": domain}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{}", claimed.body);
    let token = claimed.str("txt_value");
    let now = test.clock.now();
    assert!(
        test.store()
            .verify_domain_claim(org, domain, &token, now)
            .await
            .unwrap()
    );
}

async fn set_login_domain(test: &TestApp, org: OrgId, domain: Option<&str>) -> Answer {
    let settings = test
        .get(&format!("/api/v1/organizations/{org}"), Some(ADMIN_KEY))
        .await;
    let mut settings: Value = settings.body["settings"].clone();
    if settings.is_null() {
        settings = json!({});
    }
    settings["login_domain"] = json!(domain);
    test.patch(
        &format!("/api/v1/organizations/{org}"),
        json!({"settings": settings}),
        Some(ADMIN_KEY),
    )
    .await
}

/// Asks for a magic link to `email` with `Host: host`; answers the link emailed.
async fn link_via(test: &TestApp, host: &str, email: &str) -> url::Url {
    test.advance(test.auth.config().limits.send_cooldown);
    let sent = test
        .call_with(
            Method::POST,
            "/api/v1/auth/passwordless/magic-link",
            Some(json!({"email": email})),
            None,
            &[("host", host)],
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{host}: {}", sent.body);
    url::Url::parse(&test.last_link(email)).unwrap()
}

#[tokio::test]
async fn adm18_only_a_proven_login_domain_names_an_organization_and_its_links() {
    let test = TestApp::relaxed();
    let acme = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    let other = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Other", "other"))
        .await
        .unwrap()
        .id;

    // Not proven: refused as a login domain. A claim waiting for its record: still not.
    let refused = set_login_domain(&test, acme, Some(LOGIN)).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    let claimed = test
        .post(
            &format!("/api/v1/organizations/{acme}/domains"),
            json!({"domain": LOGIN}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED);
    assert_error(
        &set_login_domain(&test, acme, Some(LOGIN)).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_eq!(
        link_via(&test, LOGIN, "ann@example.com").await.host_str(),
        Some("localhost")
    );
    let now = test.clock.now();
    assert!(
        test.store()
            .verify_domain_claim(acme, LOGIN, &claimed.str("txt_value"), now)
            .await
            .unwrap()
    );
    // Another organization cannot take a domain Acme proved.
    assert_error(
        &set_login_domain(&test, other, Some(LOGIN)).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    let bad = set_login_domain(&test, acme, Some("Login.Acme.Example:443")).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
    let set = set_login_domain(&test, acme, Some(LOGIN)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);

    // On the login domain: Acme's organization, and its links go there.
    let link = link_via(&test, LOGIN, "bob@example.com").await;
    assert_eq!(link.scheme(), "http", "the public origin's scheme");
    assert_eq!(link.host_str(), Some(LOGIN));
    assert_eq!(link.port(), None);
    assert_eq!(link.path(), "/magic-link");
    let sent = test.mail.last().unwrap();
    assert_eq!(sent.message.org_id, Some(acme));
    assert!(
        sent.text
            .contains(&format!("http://{LOGIN}/magic-link?token=")),
        "{}",
        sent.text
    );
    // With a port, and in any case, the Host names the same domain.
    let link = link_via(&test, "LOGIN.acme.example:8443", "cy@example.com").await;
    assert_eq!(link.host_str(), Some(LOGIN));
    assert_eq!(test.mail.last().unwrap().message.org_id, Some(acme));

    // Any other Host: no organization, and links on the public origin.
    for host in [
        "evil.example",
        "acme.example",
        "login.acme.example.evil.com",
        "localhost:8080",
    ] {
        let link = link_via(&test, host, "dee@example.com").await;
        assert_eq!(link.host_str(), Some("localhost"), "{host}");
        assert_eq!(link.port(), Some(8080), "{host}");
        assert_ne!(
            test.mail.last().unwrap().message.org_id,
            Some(acme),
            "{host}"
        );
    }
    // An app of another organization on Acme's domain: refused, not mixed.
    let app = test.app_in(other, "https://other.example/cb").await;
    let mixed = test
        .call_with(
            Method::POST,
            &format!("/api/v1/auth/passwordless/email-code?client_id={app}"),
            Some(json!({"email": "eve@example.com"})),
            None,
            &[("host", LOGIN)],
            None,
        )
        .await;
    assert_error(&mixed, StatusCode::BAD_REQUEST, "invalid_input");

    // The proof withdrawn: the domain names nobody, and links leave it at once.
    assert!(test.store().delete_domain_claim(acme, LOGIN).await.unwrap());
    let link = link_via(&test, LOGIN, "fay@example.com").await;
    assert_eq!(link.host_str(), Some("localhost"));
    assert_ne!(test.mail.last().unwrap().message.org_id, Some(acme));
    // Acme's own sign-ins (by its app) no longer link to the domain either.
    let acme_app = test.app_in(acme, "https://acme.example/cb").await;
    test.advance(test.auth.config().limits.send_cooldown);
    let sent = test
        .post(
            &format!("/api/v1/auth/passwordless/magic-link?client_id={acme_app}"),
            json!({"email": "gus@example.com"}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let link = url::Url::parse(&test.last_link("gus@example.com")).unwrap();
    assert_eq!(link.host_str(), Some("localhost"));
}

/// Proven again, an organization's own app's links (no `Host` of the domain needed) go to
/// its login domain too: the domain is the organization's, not the request's.
#[tokio::test]
async fn adm18_an_organizations_messages_link_to_its_login_domain_from_anywhere() {
    let test = TestApp::relaxed();
    let acme = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    prove(&test, acme, LOGIN).await;
    assert_eq!(
        set_login_domain(&test, acme, Some(LOGIN)).await.status,
        StatusCode::OK
    );
    let app = test.app_in(acme, "https://acme.example/cb").await;
    let sent = test
        .post(
            &format!("/api/v1/auth/passwordless/magic-link?client_id={app}"),
            json!({"email": "hal@example.com"}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let link = url::Url::parse(&test.last_link("hal@example.com")).unwrap();
    assert_eq!(link.host_str(), Some(LOGIN));
    // The login domain's own page: the public configuration by domain works there.
    assert_eq!(
        set_login_domain(&test, acme, None).await.status,
        StatusCode::OK
    );
    test.advance(test.auth.config().limits.send_cooldown);
    test.post(
        &format!("/api/v1/auth/passwordless/magic-link?client_id={app}"),
        json!({"email": "hal@example.com"}),
        None,
    )
    .await;
    let link = url::Url::parse(&test.last_link("hal@example.com")).unwrap();
    assert_eq!(
        link.host_str(),
        Some("localhost"),
        "unset: the public origin again"
    );
}
