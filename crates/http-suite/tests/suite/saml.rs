//! SAML 2.0 through the whole app, against a real identity provider: Debian's
//! SimpleSAMLphp on loopback (`portcullis_test_support::saml_idp`). Setup from the IdP's
//! metadata URL, our SP metadata, a test sign-in, activation, then a person's SP-initiated
//! sign-in over HTTP that ends in an authorization code for an app (checklist SAML-20).

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use portcullis::{HickoryDns, OutboundPolicy};
use portcullis_test_support::dns::DnsServer;
use portcullis_test_support::saml_idp::{NameIdFormat, PostedForm, SamlIdp, SamlUser, SpTrust};
use serde_json::json;

use super::common::{ADMIN_KEY, Answer, TestApp, assert_error};
use super::sso::{
    APP_REDIRECT, activate_after_test, app_authorize, cookie_of, create_org, prove_domain,
    query_of, redeem,
};

const ORIGIN: &str = "http://localhost:8080";

fn user(username: &str, email: &str, groups: &[&str]) -> SamlUser {
    SamlUser {
        username: username.into(),
        password: format!("{username}-password"),
        email: email.into(),
        name: username.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// Posts what the IdP's page would post, as the browser would: to our ACS, with the
/// binding cookie when the browser has it (and `extra` form fields).
async fn post_form(
    test: &TestApp,
    form: &PostedForm,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let path = form
        .action
        .strip_prefix(ORIGIN)
        .expect("the IdP posts to our ACS");
    let mut pairs = vec![("SAMLResponse", form.saml_response.as_str())];
    if let Some(relay) = &form.relay_state {
        pairs.push(("RelayState", relay));
    }
    pairs.extend_from_slice(extra);
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let body = serde_urlencoded::to_string(&pairs).unwrap().into_bytes();
    test.request(request.body(body).unwrap()).await
}

/// What the tests set up: SimpleSAMLphp with `it` and `alice`, the organization with its
/// proven domain acme.test, and an active SAML connection made from the IdP's metadata URL,
/// tested through the IdP's login page.
struct Setup {
    idp: SamlIdp,
    test: TestApp,
    org: String,
    id: String,
    acs_url: String,
    _dns: DnsServer,
}

async fn active_connection(idp_initiated: bool) -> Option<Setup> {
    let idp = SamlIdp::start(vec![
        user("it", "it@acme.test", &[]),
        user("alice", "alice@acme.test", &["engineering"]),
    ])
    .await?;
    let dns = DnsServer::start().await;
    let resolver = Arc::new(HickoryDns::with_servers(&[dns.addr()]).unwrap());
    let test = TestApp::with_builder(|b| {
        b.outbound_policy(OutboundPolicy::default().allow_loopback())
            .domain_verifier(resolver)
    });
    let a = create_org(&test, "acme").await;
    prove_domain(&test, &dns, &a, "acme.test").await;

    // The connection, from the IdP's metadata URL (fetched through the outbound policy).
    let connections = format!("/api/v1/organizations/{a}/sso-connections");
    let created = test
        .post(
            &connections,
            json!({
                "kind": "saml",
                "name": "Acme SAML",
                "saml": {
                    "metadata_url": idp.metadata_url,
                    "name_id_format": "persistent",
                    "idp_initiated": idp_initiated,
                },
                "domains": ["acme.test"],
                "jit_provisioning": true,
            }),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["kind"], "saml");
    assert_eq!(created.body["issuer"], idp.entity_id.as_str());
    assert_eq!(created.body["saml"]["sso_url"], idp.sso_url.as_str());
    use base64::Engine as _;
    let cert = base64::engine::general_purpose::STANDARD.encode(&idp.cert_der);
    assert_eq!(created.body["saml"]["certificates"], json!([cert]));
    let id = created.str("id");

    // Our metadata: entity ID and ACS, to hand to the IdP.
    let entity_id = format!("{ORIGIN}/api/v1/sso/{id}/saml/metadata");
    let acs_url = format!("{ORIGIN}/api/v1/sso/{id}/saml/acs");
    assert_eq!(created.body["sp_entity_id"], entity_id.as_str());
    assert_eq!(created.body["sp_metadata_url"], entity_id.as_str());
    assert_eq!(created.body["acs_url"], acs_url.as_str());
    assert!(created.body["saml"].get("sp_key").is_none());
    let metadata = test
        .get(&format!("/api/v1/sso/{id}/saml/metadata"), None)
        .await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(
        metadata.header("content-type"),
        Some("application/samlmetadata+xml")
    );
    let xml = String::from_utf8(metadata.bytes.clone()).unwrap();
    assert!(xml.contains(&format!("entityID=\"{entity_id}\"")), "{xml}");
    assert!(xml.contains(&format!("Location=\"{acs_url}\"")), "{xml}");
    assert!(xml.contains("WantAssertionsSigned=\"true\""), "{xml}");
    idp.trust_sp(SpTrust {
        entity_id: &entity_id,
        acs_url: &acs_url,
        sign_assertion: true,
        sign_response: false,
        name_id_format: NameIdFormat::Persistent,
    });

    // The test sign-in: at the IdP's login page and back to the setup page.
    let started = test
        .post(
            &format!("{connections}/{id}/test"),
            json!({}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let cookie = cookie_of(&started);
    let form = idp
        .sign_in(&started.str("url"), "it", "it-password")
        .await
        .unwrap();
    assert_eq!(form.action, acs_url);
    let tested = post_form(&test, &form, Some(&cookie), &[]).await;
    activate_after_test(&test, &tested, &connections, &id).await;
    Some(Setup {
        idp,
        test,
        org: a,
        id,
        acs_url,
        _dns: dns,
    })
}

// SAML-20 [ext: SimpleSAMLphp]: the SP-initiated flow over HTTP, set up from the IdP's
// metadata; SAML-11/14 on the way (no cookie, replay).
#[tokio::test]
async fn saml20_setup_and_sp_initiated_sign_in_against_simplesamlphp() {
    let Some(Setup {
        idp,
        test,
        org: a,
        id,
        ..
    }) = active_connection(false).await
    else {
        return;
    };
    let found = test
        .get("/api/v1/sso/discover?email=alice@acme.test", None)
        .await;
    assert_eq!(
        found.body,
        json!({"connection_id": id, "kind": "saml", "org_id": a})
    );

    // A person's sign-in for an app: authorize, the IdP's page, our ACS, the app's code.
    let (client, verifier, authorize_path) = app_authorize(&test, &a, &id).await;
    let round_trip = || async {
        let authorize = test.get(&authorize_path, None).await;
        assert_eq!(authorize.status, StatusCode::FOUND, "{}", authorize.body);
        let to_idp = authorize.header("location").unwrap().to_owned();
        assert!(to_idp.starts_with(&idp.sso_url), "{to_idp}");
        let form = idp
            .sign_in(&to_idp, "alice", "alice-password")
            .await
            .unwrap();
        (cookie_of(&authorize), form)
    };
    // The IdP's cross-site POST arrives without our cookie: a page re-posts it from our
    // origin. Re-posted without the cookie still (another browser), it is refused.
    let (cookie, form) = round_trip().await;
    let repost = post_form(&test, &form, None, &[]).await;
    assert_eq!(repost.status, StatusCode::OK);
    let page = String::from_utf8(repost.bytes.clone()).unwrap();
    assert!(page.contains("name=\"resubmitted\""), "{page}");
    assert!(
        repost
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("form-action 'self'"))
    );
    let elsewhere = post_form(&test, &form, None, &[("resubmitted", "1")]).await;
    assert_error(&elsewhere, StatusCode::UNAUTHORIZED, "sso_failed");
    // The handle was spent by that refusal: the right cookie cannot use it afterwards.
    let late = post_form(&test, &form, Some(&cookie), &[]).await;
    assert_error(&late, StatusCode::UNAUTHORIZED, "sso_failed");

    // A fresh start, in this browser, all the way.
    let (cookie, form) = round_trip().await;
    let done = post_form(&test, &form, Some(&cookie), &[]).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let location = done.header("location").unwrap();
    assert!(location.starts_with(APP_REDIRECT), "{location}");
    let returned = query_of(location);
    assert_eq!(returned["state"], "app-state");
    let status = redeem(&test, &returned["code"], &verifier, &client).await;
    assert_eq!(status.body["email"], "alice@acme.test");
    assert_eq!(status.body["org_id"], a.as_str());
    // SAML-14: the same response again is refused.
    let replayed = post_form(&test, &form, Some(&cookie), &[]).await;
    assert_error(&replayed, StatusCode::UNAUTHORIZED, "sso_failed");
}

// SAML-16 [ext: SimpleSAMLphp]: a sign-in the IdP starts (no request of ours, no cookie)
// waits on a confirmation page; the confirmation signs in once.
#[tokio::test]
async fn saml16_idp_initiated_sign_in_needs_the_persons_confirmation() {
    let Some(Setup {
        idp, test, acs_url, ..
    }) = active_connection(true).await
    else {
        return;
    };
    let entity_id = acs_url.replace("/acs", "/metadata");
    let unsolicited = format!(
        "{}?spentityid={}",
        idp.sso_url,
        url::form_urlencoded::byte_serialize(entity_id.as_bytes()).collect::<String>()
    );
    let form = idp
        .sign_in(&unsolicited, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(form.action, acs_url);
    let page = post_form(&test, &form, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = String::from_utf8(page.bytes.clone()).unwrap();
    assert!(html.contains("alice@acme.test"), "{html}");
    assert!(
        test.auth
            .users()
            .get_by_email("alice@acme.test")
            .await
            .is_err(),
        "nobody is signed in before the confirmation"
    );
    let start = html.find("name=\"token\" value=\"").unwrap() + "name=\"token\" value=\"".len();
    let token = &html[start..start + html[start..].find('"').unwrap()];
    let confirm = |token: String| {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/sso/saml/confirm")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}").into_bytes())
            .unwrap();
        test.request(request)
    };
    let done = confirm(token.to_owned()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let status = test.status_of(&done.str("token")).await;
    assert_eq!(status.body["email"], "alice@acme.test");
    let again = confirm(token.to_owned()).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_token");
    // SAML-14: the IdP's response cannot be posted again.
    let replay = post_form(&test, &form, None, &[]).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "sso_failed");
}
