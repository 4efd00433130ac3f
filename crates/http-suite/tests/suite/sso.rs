//! Single sign-on through the whole app: the REST routes against a real OpenID provider
//! (npm's `oidc-provider`) and a DNS server on loopback, who may manage connections
//! (ADM-02), and IT-admin setup links (ADM-09).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use portcullis::directory::NewApiKey;
use portcullis::{HickoryDns, OutboundPolicy};
use portcullis_test_support::dns::DnsServer;
use portcullis_test_support::idp::Idp;
use serde_json::{Value, json};

use super::common::{ADMIN_KEY, Answer, TestApp, assert_error};

const SECRET: &str = "a-client-secret-of-at-least-32-characters";
const CALLBACK: &str = "http://localhost:8080/api/v1/sso/callback";
pub(super) const APP_REDIRECT: &str = "https://app.example.com/after-sso";

/// Claims `domain` for `org` and proves it by its TXT record, served by `dns`.
pub(super) async fn prove_domain(test: &TestApp, dns: &DnsServer, org: &str, domain: &str) {
    let domains = format!("/api/v1/organizations/{org}/domains");
    let claim = test
        .post(&domains, json!({"domain": domain}), Some(ADMIN_KEY))
        .await;
    assert_eq!(claim.body["verified"], false);
    assert_eq!(
        claim.str("txt_name"),
        format!("_portcullis-challenge.{domain}")
    );
    dns.set_txt(&claim.str("txt_name"), vec![vec![claim.str("txt_value")]]);
    let verified = test
        .post(
            &format!("{domains}/{domain}/verify"),
            json!({}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(verified.body["verified"], true, "{}", verified.body);
}

/// A redirect flow of an app of `org` through connection `id`: the app's client id, the
/// PKCE verifier, and the path that starts it (with `state=app-state`).
pub(super) async fn app_authorize(test: &TestApp, org: &str, id: &str) -> (String, String, String) {
    let client = test.app_in(org.parse().unwrap(), APP_REDIRECT).await;
    let (verifier, challenge) = super::auth::pkce();
    let path = format!(
        "/api/v1/sso/{id}/authorize?redirect_uri={APP_REDIRECT}&client_id={client}\
         &code_challenge={challenge}&code_challenge_method=S256&state=app-state"
    );
    (client, verifier, path)
}

/// The app redeems its authorization code (PKCE) and reads who it signs in as.
pub(super) async fn redeem(test: &TestApp, code: &str, verifier: &str, client: &str) -> Answer {
    let tokens = test
        .post(
            "/api/v1/token",
            json!({
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "client_id": client,
                "redirect_uri": APP_REDIRECT,
            }),
            None,
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    test.status_of(&tokens.str("token")).await
}

/// The provider's answer to a test sign-in sent the browser back to the setup page and
/// signed nobody in (the tester is `it@acme.test`); then the connection is activated.
pub(super) async fn activate_after_test(
    test: &TestApp,
    tested: &Answer,
    connections: &str,
    id: &str,
) {
    assert_eq!(tested.status, StatusCode::FOUND, "{}", tested.body);
    assert_eq!(
        tested.header("location"),
        Some(format!("http://localhost:8080/setup?tested={id}").as_str())
    );
    assert!(
        test.auth
            .users()
            .get_by_email("it@acme.test")
            .await
            .is_err()
    );
    let active = test
        .patch(
            &format!("{connections}/{id}"),
            json!({"status": "active"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(active.status, StatusCode::OK, "{}", active.body);
}

pub(super) async fn create_org(test: &TestApp, slug: &str) -> String {
    let created = test
        .post(
            "/api/v1/organizations",
            json!({"name": slug, "slug": slug}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.str("id")
}

/// Settings that never reach the network when saved: endpoints given by hand, on a
/// public address (checked, not contacted).
pub(super) fn offline_connection() -> Value {
    json!({
        "issuer": "https://8.8.8.8",
        "client_id": "portcullis",
        "client_secret": SECRET,
        "endpoints": {
            "authorization": "https://8.8.8.8/authorize",
            "token": "https://8.8.8.8/token",
            "jwks_uri": "https://8.8.8.8/jwks",
        },
    })
}

pub(super) fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// `GET path` with the browser's SSO cookie.
async fn get_with_cookie(test: &TestApp, path: &str, cookie: &str) -> Answer {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("cookie", cookie)
        .body(Vec::new())
        .unwrap();
    test.request(request).await
}

/// The `name=value` part of the answer's `Set-Cookie`.
pub(super) fn cookie_of(answer: &Answer) -> String {
    let set = answer.header("set-cookie").expect("a binding cookie");
    set.split(';').next().unwrap().to_owned()
}

// ADM-02, SSRF-11: creating (like every other connection route) needs `sso:manage` in the
// organization; anyone else is refused before anything is written or fetched.
#[tokio::test]
async fn adm02_only_the_orgs_sso_managers_create_connections() {
    let test = TestApp::new();
    let a = create_org(&test, "acme").await;
    let b = create_org(&test, "bravo").await;
    let path = format!("/api/v1/organizations/{a}/sso-connections");
    // Nobody.
    let anonymous = test.post(&path, offline_connection(), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A member of the organization without the permission.
    let client = test
        .app_in(a.parse().unwrap(), "https://app.example.com/cb")
        .await;
    let member = test.token_via("member@acme.test", Some(&client)).await;
    let refused = test.post(&path, offline_connection(), Some(&member)).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    // Another organization's administrator.
    let other_admin = test
        .auth
        .api_keys()
        .create(
            b.parse().unwrap(),
            &NewApiKey::new("b admin", &["sso:manage"]),
        )
        .await
        .unwrap();
    let key = other_admin.secret.secret().to_owned();
    let refused = test.post(&path, offline_connection(), Some(&key)).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let listed = test.get(&path, Some(&key)).await;
    assert_error(&listed, StatusCode::FORBIDDEN, "forbidden");
    // Nothing was written.
    let all = test.get(&path, Some(ADMIN_KEY)).await;
    assert_eq!(all.body["items"], json!([]));
    // Its own administrator may; the secret never comes back.
    let own = test
        .auth
        .api_keys()
        .create(
            a.parse().unwrap(),
            &NewApiKey::new("a admin", &["sso:manage"]),
        )
        .await
        .unwrap();
    let created = test
        .post(&path, offline_connection(), Some(own.secret.secret()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "draft");
    assert_eq!(created.body["has_client_secret"], true);
    assert!(!created.body.to_string().contains(SECRET));
    assert_eq!(created.body["redirect_uri"], CALLBACK);
}

// ADM-09: a setup link is single-use and expires; its session reaches the organization's
// domains and one connection, nothing else; revoking ends the session.
#[tokio::test]
async fn adm09_setup_links_open_one_scoped_session() {
    let test = TestApp::new();
    let a = create_org(&test, "acme").await;
    let b = create_org(&test, "bravo").await;
    let links = format!("/api/v1/organizations/{a}/setup-links");
    let made = test.post(&links, json!({}), Some(ADMIN_KEY)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let url = made.str("url");
    assert!(
        url.starts_with("http://localhost:8080/setup?token=pcl_"),
        "{url}"
    );
    let token = query_of(&url)["token"].clone();
    let opened = test
        .post("/api/v1/setup/session", json!({"token": token}), None)
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["org_id"], a.as_str());
    assert_eq!(opened.body["redirect_uri"], CALLBACK);
    let session = opened.str("session_token");
    // Single use.
    let again = test
        .post("/api/v1/setup/session", json!({"token": token}), None)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    // Its one connection: created once, then bound.
    let connections = format!("/api/v1/organizations/{a}/sso-connections");
    let created = test
        .post(&connections, offline_connection(), Some(&session))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mine = created.str("id");
    let second = test
        .post(&connections, offline_connection(), Some(&session))
        .await;
    assert_error(&second, StatusCode::FORBIDDEN, "forbidden");
    let scope = test.get("/api/v1/setup/session", Some(&session)).await;
    assert_eq!(scope.body["connection_id"], mine.as_str());
    let patched = test
        .patch(
            &format!("{connections}/{mine}"),
            json!({"name": "Acme Okta"}),
            Some(&session),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    // The organization's domains.
    let claimed = test
        .post(
            &format!("/api/v1/organizations/{a}/domains"),
            json!({"domain": "acme.test"}),
            Some(&session),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{}", claimed.body);
    // Nothing else: another connection of the organization, another organization, users,
    // roles, new setup links.
    let theirs = test
        .post(&connections, offline_connection(), Some(ADMIN_KEY))
        .await
        .str("id");
    for (method, path) in [
        (Method::GET, format!("{connections}/{theirs}")),
        (Method::PATCH, format!("{connections}/{theirs}")),
        (Method::DELETE, format!("{connections}/{theirs}")),
        (Method::POST, format!("{connections}/{theirs}/test")),
        (
            Method::GET,
            format!("/api/v1/organizations/{b}/sso-connections"),
        ),
        (Method::POST, format!("/api/v1/organizations/{b}/domains")),
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::GET, format!("/api/v1/organizations/{a}/roles")),
        (Method::GET, format!("/api/v1/organizations/{a}")),
        (Method::POST, links.clone()),
        (Method::DELETE, links.clone()),
    ] {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| {
            if path.ends_with("/domains") {
                json!({"domain": "x.test"})
            } else {
                json!({"name": "x"})
            }
        });
        let answer = test.call(method.clone(), &path, body, Some(&session)).await;
        assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    }
    let listed = test.get(&connections, Some(&session)).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
    // Revoking ends the open session.
    let revoked = test.delete(&links, Some(ADMIN_KEY)).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = test.get("/api/v1/setup/session", Some(&session)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // A link that expired does not open.
    let made = test.post(&links, json!({}), Some(ADMIN_KEY)).await;
    let token = query_of(&made.str("url"))["token"].clone();
    test.advance(portcullis::flows::sso::setup::SETUP_LINK_TTL + Duration::from_secs(1));
    let late = test
        .post("/api/v1/setup/session", json!({"token": token}), None)
        .await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
}

// RP-20: the whole setup and sign-in over the REST API against the real provider: prove
// the domain, create the connection, test it, activate it, discover it by email, and
// sign in with a redirect flow that ends in an authorization code for the app.
#[tokio::test]
async fn rp20_setup_and_sign_in_over_the_rest_api() {
    let Some(idp) = Idp::start(json!({
        "clients": [{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
        "accounts": {
            "it": { "email": "it@acme.test", "email_verified": true },
            "alice": { "email": "alice@acme.test", "email_verified": true, "name": "Alice" },
        },
    }))
    .await
    else {
        return;
    };
    let dns = DnsServer::start().await;
    let resolver = Arc::new(HickoryDns::with_servers(&[dns.addr()]).unwrap());
    let test = TestApp::with_builder(|b| {
        b.outbound_policy(OutboundPolicy::default().allow_loopback())
            .domain_verifier(resolver)
    });
    let a = create_org(&test, "acme").await;
    prove_domain(&test, &dns, &a, "acme.test").await;
    // The connection, from the issuer's discovery document.
    let connections = format!("/api/v1/organizations/{a}/sso-connections");
    let created = test
        .post(
            &connections,
            json!({
                "issuer": idp.issuer,
                "client_id": "portcullis",
                "client_secret": SECRET,
                "domains": ["acme.test"],
                "jit_provisioning": true,
            }),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["endpoints"]["iss_in_response"], true);
    let id = created.str("id");
    // A draft is not discovered and does not start.
    let hidden = test
        .get("/api/v1/sso/discover?email=alice@acme.test", None)
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    // The test sign-in: through the provider and back to the setup page.
    let started = test
        .post(
            &format!("{connections}/{id}/test"),
            json!({}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let cookie = cookie_of(&started);
    let back = idp
        .authorize(&format!("{}&login_hint=it", started.str("url")))
        .await
        .unwrap();
    assert!(back.as_str().starts_with(CALLBACK), "{back}");
    let path = &back.as_str()["http://localhost:8080".len()..];
    let tested = get_with_cookie(&test, path, &cookie).await;
    activate_after_test(&test, &tested, &connections, &id).await;
    // Home-realm discovery, then a redirect flow for the app.
    let found = test
        .get("/api/v1/sso/discover?email=Alice@ACME.test", None)
        .await;
    assert_eq!(
        found.body,
        json!({"connection_id": id, "kind": "oidc", "org_id": a})
    );
    let (client, verifier, authorize_path) = app_authorize(&test, &a, &id).await;
    // The browser goes to the provider and back: its cookie and the callback's path.
    let round_trip = || async {
        let authorize = test.get(&authorize_path, None).await;
        assert_eq!(authorize.status, StatusCode::FOUND, "{}", authorize.body);
        let to_idp = authorize.header("location").unwrap().to_owned();
        assert!(to_idp.starts_with(&idp.issuer));
        let back = idp
            .authorize(&format!("{to_idp}&login_hint=alice"))
            .await
            .unwrap();
        let path = back.as_str()["http://localhost:8080".len()..].to_owned();
        (cookie_of(&authorize), path)
    };
    // Without the browser's cookie the callback is refused, says nothing of the person,
    // and spends the state: the right cookie cannot use it afterwards.
    let (cookie, path) = round_trip().await;
    let elsewhere = test.get(&path, None).await;
    assert_error(&elsewhere, StatusCode::UNAUTHORIZED, "sso_failed");
    assert!(!elsewhere.bytes.windows(5).any(|w| w == b"alice"));
    let refused = get_with_cookie(&test, &path, &cookie).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "sso_failed");
    // A fresh start, in this browser, all the way.
    let (cookie, path) = round_trip().await;
    let done = get_with_cookie(&test, &path, &cookie).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let location = done.header("location").unwrap();
    assert!(location.starts_with(APP_REDIRECT), "{location}");
    let returned = query_of(location);
    assert_eq!(returned["state"], "app-state");
    let status = redeem(&test, &returned["code"], &verifier, &client).await;
    assert_eq!(status.body["email"], "alice@acme.test");
    assert_eq!(status.body["org_id"], a.as_str());
}

// RP-17: discovery answers a claimed-but-unproven domain exactly as an unknown one, and
// one client's lookups are throttled.
#[tokio::test]
async fn rp17_discovery_says_nothing_of_unproven_domains_and_is_throttled() {
    let test = TestApp::new();
    let a = create_org(&test, "acme").await;
    let claimed = test
        .post(
            &format!("/api/v1/organizations/{a}/domains"),
            json!({"domain": "acme.test"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED);
    let peer: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let lookup = |email: &str| {
        Request::builder()
            .uri(format!("/api/v1/sso/discover?email={email}"))
            .body(Vec::new())
            .unwrap()
    };
    let unproven = test.send(lookup("alice@acme.test"), Some(peer)).await;
    let unknown = test.send(lookup("alice@unknown.test"), Some(peer)).await;
    assert_eq!(unproven.status, StatusCode::NOT_FOUND);
    assert_eq!(unproven.status, unknown.status);
    assert_eq!(unproven.body, unknown.body);
    let limit = portcullis::Limits::default().sso_lookups_per_ip.max;
    for _ in 2..limit {
        let answer = test.send(lookup("bob@unknown.test"), Some(peer)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    let throttled = test.send(lookup("bob@unknown.test"), Some(peer)).await;
    assert_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another client is not.
    let other: std::net::SocketAddr = "192.0.2.8:40000".parse().unwrap();
    let answer = test.send(lookup("bob@unknown.test"), Some(other)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
