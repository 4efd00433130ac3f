//! The tests' OpenID provider runs a whole authorization-code flow with PKCE, rotates its
//! keys, counts requests, and takes accounts at run time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_test_support::idp::Idp;
use serde_json::{Value, json};
use sha2::Digest;

const SECRET: &str = "app-secret-app-secret-app-secret-0123";
const REDIRECT: &str = "http://127.0.0.1:9/sso/callback";

fn config(iss_in_response: bool, issuer_path: &str) -> Value {
    json!({
        "clients": [{
            "client_id": "app",
            "client_secret": SECRET,
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_post",
            "id_token_signed_response_alg": "ES256",
        }],
        "accounts": {
            "alice": {
                "email": "alice@acme.test",
                "email_verified": "true",
                "name": "Alice Liddell",
                "groups": ["admins", "eng"],
                "hd": "acme.test",
                "amr": ["pwd", "mfa"],
            }
        },
        "alg": ["RS256", "ES256"],
        "iss_in_response": iss_in_response,
        "issuer_path": issuer_path,
    })
}

async fn get_json(url: &str) -> Value {
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap()
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Signs `login_hint` in with PKCE and redeems the code: the callback URL and the ID token.
async fn sign_in(idp: &Idp, login_hint: &str) -> (url::Url, String) {
    let discovery = get_json(&idp.discovery_url()).await;
    let verifier = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut authorize =
        url::Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", "app")
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile groups")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st4te")
        .append_pair("nonce", "n0nce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", login_hint);
    let callback = idp.authorize(authorize.as_str()).await.unwrap();
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code in {callback}"))
        .1
        .into_owned();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("client_id", "app")
        .append_pair("client_secret", SECRET)
        .append_pair("code_verifier", &verifier)
        .finish();
    let response = reqwest::Client::new()
        .post(discovery["token_endpoint"].as_str().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let tokens: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no ID token: {tokens}\n{}", idp.logs()))
        .to_owned();
    (callback, id_token)
}

#[tokio::test]
async fn a_login_hint_signs_in_through_a_whole_code_flow_with_pkce() {
    let Some(idp) = Idp::start(config(true, "")).await else {
        return;
    };
    assert_eq!(idp.issuer, format!("http://127.0.0.1:{}", idp.port));
    let discovery = get_json(&idp.discovery_url()).await;
    assert_eq!(discovery["issuer"], idp.issuer.as_str());
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    let jwks = get_json(discovery["jwks_uri"].as_str().unwrap()).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");

    let (callback, id_token) = sign_in(&idp, "alice").await;

    let params: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "st4te");
    assert_eq!(params["iss"], idp.issuer);
    let header = jwt_part(&id_token, 0);
    assert_eq!(header["alg"], "ES256");
    assert!(kids.contains(&header["kid"].as_str().unwrap()));
    let claims = jwt_part(&id_token, 1);
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["email"], "alice@acme.test");
    assert_eq!(claims["email_verified"], "true", "passed through verbatim");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["groups"], json!(["admins", "eng"]));
    assert_eq!(claims["hd"], "acme.test");
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
    assert_eq!(idp.stats().await, (1, 1));
}

#[tokio::test]
async fn rotation_replaces_the_keys_and_accounts_can_be_added_at_run_time() {
    let Some(idp) = Idp::start(config(true, "")).await else {
        return;
    };
    let (_, before) = sign_in(&idp, "alice").await;
    let old_kid = jwt_part(&before, 0)["kid"].as_str().unwrap().to_owned();

    let new_kids = idp.rotate_keys().await;
    assert_eq!(new_kids.len(), 2);
    assert!(!new_kids.contains(&old_kid));
    let jwks = get_json(&format!("{}/jwks", idp.issuer)).await;
    let published: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, new_kids);

    idp.upsert_account(
        "bob",
        json!({ "email": "bob@other.test", "email_verified": false }),
    )
    .await;
    let (_, after) = sign_in(&idp, "bob").await;
    assert!(new_kids.contains(&jwt_part(&after, 0)["kid"].as_str().unwrap().to_owned()));
    let claims = jwt_part(&after, 1);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(idp.stats().await, (2, 1));
}

#[tokio::test]
async fn the_issuer_can_have_a_path_and_leave_iss_out_of_the_response() {
    let Some(idp) = Idp::start(config(false, "/tenant-a")).await else {
        return;
    };
    assert_eq!(
        idp.issuer,
        format!("http://127.0.0.1:{}/tenant-a", idp.port)
    );
    let discovery = get_json(&idp.discovery_url()).await;
    assert_eq!(discovery["issuer"], idp.issuer.as_str());
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        false
    );

    let (callback, id_token) = sign_in(&idp, "alice").await;

    assert!(
        callback.query_pairs().all(|(k, _)| k != "iss"),
        "{callback}"
    );
    assert_eq!(jwt_part(&id_token, 1)["iss"], idp.issuer.as_str());
}

#[tokio::test]
async fn without_a_known_login_hint_the_login_page_is_shown() {
    let Some(idp) = Idp::start(config(true, "")).await else {
        return;
    };
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"verifier"));
    let url = format!(
        "{}/auth?client_id=app&response_type=code&scope=openid&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        idp.issuer,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let page = idp.authorize(&url).await.unwrap_err();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"login\""), "{}", page.body);
}

#[tokio::test]
async fn a_bad_config_fails_the_start_with_the_providers_reason() {
    if !portcullis_test_support::idp::available() {
        return;
    }
    let mut bad = config(true, "");
    bad["clients"][0]["id_token_signed_response_alg"] = json!("PS256");

    let started = tokio::spawn(Idp::start(bad)).await;

    let panic = started.err().expect("the start panics").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("id_token_signed_response_alg must be 'RS256' or 'ES256'"),
        "{message}"
    );
}
