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

/// Acme, with `LOGIN` proven and set as its login domain.
async fn acme_on_its_domain(test: &TestApp) -> OrgId {
    let acme = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    prove(test, acme, LOGIN).await;
    let set = set_login_domain(test, acme, Some(LOGIN)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    acme
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
    assert_eq!(link.scheme(), "https", "a login domain is served over TLS");
    assert_eq!(link.host_str(), Some(LOGIN));
    assert_eq!(link.port(), None);
    assert_eq!(link.path(), "/magic-link");
    let sent = test.mail.last().unwrap();
    assert_eq!(sent.message.org_id, Some(acme));
    assert!(
        sent.text
            .contains(&format!("https://{LOGIN}/magic-link?token=")),
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
    let acme = acme_on_its_domain(&test).await;
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

const PK: &str = "/api/v1/auth/passwordless/passkey";

/// A call with `Host: host` (none: the public origin's).
async fn on(
    test: &TestApp,
    host: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Answer {
    let headers: Vec<(&str, &str)> = host.map(|h| ("host", h)).into_iter().collect();
    test.call_with(method, path, body, bearer, &headers, None)
        .await
}

/// Registers a passkey for the bearer on `host`, the authenticator answering as `origin`.
async fn add_passkey(
    test: &TestApp,
    soft: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
    host: Option<&str>,
    origin: &str,
    bearer: &str,
) -> Value {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let begun = on(
        test,
        host,
        Method::GET,
        &format!("{PK}/register"),
        None,
        Some(bearer),
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let options: portcullis::flows::passkey::CreationChallengeResponse =
        serde_json::from_value(begun.body["options"].clone()).unwrap();
    let rp = options.public_key.rp.id.clone();
    let credential = soft
        .do_registration(url::Url::parse(origin).unwrap(), options)
        .unwrap();
    let done = on(
        test,
        host,
        Method::POST,
        &format!("{PK}/register?auth_code={}", begun.str("auth_code")),
        Some(json!({"passkey": credential, "name": "Key"})),
        Some(bearer),
    )
    .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    json!(rp)
}

/// Signs in with a passkey on `host`; the authenticator is asked for `rp_id` (the
/// options' own unless a test forges another) as `origin`.
async fn passkey_sign_in(
    test: &TestApp,
    soft: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
    host: Option<&str>,
    rp_id: Option<&str>,
    origin: &str,
) -> (String, Answer) {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let begun = on(
        test,
        host,
        Method::GET,
        &format!("{PK}/login?identifier=ivy@example.com"),
        None,
        None,
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let mut options: portcullis::flows::passkey::RequestChallengeResponse =
        serde_json::from_value(begun.body["options"].clone()).unwrap();
    let offered = options.public_key.rp_id.clone();
    if let Some(rp_id) = rp_id {
        options.public_key.rp_id = rp_id.to_owned();
    }
    let assertion = soft
        .do_authentication(url::Url::parse(origin).unwrap(), options)
        .unwrap();
    let answer = on(
        test,
        host,
        Method::POST,
        &format!("{PK}/login?auth_code={}", begun.str("auth_code")),
        Some(json!({"passkey": assertion})),
        None,
    )
    .await;
    (offered, answer)
}

/// Asks for an email code to `email` on the login domain.
async fn send_code_on(test: &TestApp, email: &str) -> Answer {
    let sent = on(
        test,
        Some(LOGIN),
        Method::POST,
        "/api/v1/auth/passwordless/email-code",
        Some(json!({"email": email})),
        None,
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    sent
}

/// ADM-14: on an organization's login domain, passkeys are made and used with that
/// domain as the relying party; a passkey made there never signs in on the installation's
/// host, nor one made there on the login domain.
#[tokio::test]
async fn adm14_passkeys_on_a_login_domain_belong_to_it() {
    let test = TestApp::relaxed();
    let acme = acme_on_its_domain(&test).await;
    let site = format!("https://{LOGIN}");

    // Ivy signs in on the login domain by email code, and makes a passkey there.
    let sent = send_code_on(&test, "ivy@example.com").await;
    let verified = on(
        &test,
        Some(LOGIN),
        Method::POST,
        "/api/v1/auth/passwordless/email-code/verify",
        Some(json!({"request_id": sent.str("request_id"), "code": test.last_email_code("ivy@example.com")})),
        None,
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let bearer = verified.str("token");
    assert_eq!(
        test.status_of(&bearer).await.body["org_id"],
        acme.to_string().as_str()
    );
    let mut soft = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let rp = add_passkey(&test, &mut soft, Some(LOGIN), &site, &bearer).await;
    assert_eq!(rp, LOGIN, "the login domain is the relying party");

    // It signs in there.
    let (offered, there) = passkey_sign_in(&test, &mut soft, Some(LOGIN), None, &site).await;
    assert_eq!(offered, LOGIN);
    assert_eq!(there.status, StatusCode::OK, "{}", there.body);
    assert!(there.body["token"].is_string());

    // Presented on the installation's host, it is refused.
    let (offered, here) = passkey_sign_in(&test, &mut soft, None, Some(LOGIN), &site).await;
    assert_eq!(offered, "localhost");
    assert_error(&here, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // A passkey made on the installation's host does not sign in on the login domain.
    let mut other = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    test.advance(std::time::Duration::from_secs(1));
    let rp = add_passkey(&test, &mut other, None, "http://localhost:8080", &bearer).await;
    assert_eq!(rp, "localhost");
    let (_, refused) = passkey_sign_in(
        &test,
        &mut other,
        Some(LOGIN),
        Some("localhost"),
        "http://localhost:8080",
    )
    .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (_, home) = passkey_sign_in(&test, &mut other, None, None, "http://localhost:8080").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);

    // The proof withdrawn: the login domain is no relying party any more; its passkeys
    // wait for it (they never sign in elsewhere).
    assert!(test.store().delete_domain_claim(acme, LOGIN).await.unwrap());
    let (offered, gone) = passkey_sign_in(&test, &mut soft, Some(LOGIN), Some(LOGIN), &site).await;
    assert_eq!(offered, "localhost");
    assert_error(&gone, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

/// Cookie sessions on a login domain: its own pages (`Origin: https://<domain>`, sent to
/// that `Host`) sign in and change state; the same origin sent to any other host is
/// another site's.
#[tokio::test]
async fn adm19_cookie_sessions_work_on_the_login_domain_for_its_own_pages_only() {
    let test = TestApp::relaxed();
    acme_on_its_domain(&test).await;
    let site = format!("https://{LOGIN}");
    let sent = send_code_on(&test, "jo@example.com").await;
    let body = json!({"request_id": sent.str("request_id"), "code": test.last_email_code("jo@example.com")});
    let verify = |host: &'static str, body: Value| {
        let site = site.clone();
        let test = &test;
        async move {
            test.call_with(
                Method::POST,
                "/api/v1/auth/passwordless/email-code/verify",
                Some(body),
                None,
                &[
                    ("host", host),
                    ("origin", &site),
                    ("portcullis-session", "cookie"),
                ],
                None,
            )
            .await
        }
    };
    // The login domain's origin sent to the installation's host: another site.
    let elsewhere = verify("localhost:8080", body.clone()).await;
    assert_error(&elsewhere, StatusCode::FORBIDDEN, "csrf");
    let signed_in = verify(LOGIN, body).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["session"], "cookie");
    let cookies: Vec<String> = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    let csrf = signed_in.str("csrf_token");
    let jar = cookies.join("; ");
    let out = |host: &'static str| {
        let (jar, csrf, site) = (jar.clone(), csrf.clone(), site.clone());
        let test = &test;
        async move {
            test.call_with(
                Method::POST,
                "/api/v1/auth/logout",
                None,
                None,
                &[
                    ("host", host),
                    ("origin", &site),
                    ("cookie", &jar),
                    ("x-csrf-token", &csrf),
                ],
                None,
            )
            .await
        }
    };
    assert_error(&out("localhost:8080").await, StatusCode::FORBIDDEN, "csrf");
    let done = out(LOGIN).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
}
