//! portcullis as an OpenID provider for real relying-party libraries (checklist OP-20,
//! OP-01, OP-12): Authlib (PyPI) and `openid-client` (npm), each a child process against
//! the axum example served on loopback. Each does discovery, the code flow with PKCE,
//! validates the ID token on its own (signature from the JWKS, `iss`, `aud`, `exp`,
//! `nonce`, `at_hash`), refreshes, calls UserInfo and revokes; the test plays the browser
//! over HTTP (the login page's calls: an email code in the client's organization, the
//! hand-over that sets the provider's cookie, the resumed authorization).
//!
//! Under CI a missing library fails these tests; elsewhere they are skipped loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The app is the axum example's.
const FRAMEWORK: common::Framework = common::Framework::Axum;

#[path = "suite/common.rs"]
mod common;

use std::net::SocketAddr;

use portcullis::model::{ClientSettings, TokenAuthMethod};
use portcullis_test_support::rp::{self, Library};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

struct Server {
    origin: String,
    test: common::TestApp,
    http: reqwest::Client,
}

async fn serve() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let test = common::TestApp::for_browser(&origin, |builder| builder);
    let app = example_axum::app(test.api.clone());
    tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server { origin, test, http }
}

impl Server {
    async fn client(
        &self,
        confidential: bool,
        method: TokenAuthMethod,
    ) -> (String, Option<String>) {
        let org = self.test.default_org().await;
        let mut new = portcullis::directory::NewApp::default();
        new.name = "Relying Party".into();
        new.redirect_uris = vec![REDIRECT.into()];
        new.confidential = confidential;
        new.client = ClientSettings {
            token_endpoint_auth_method: Some(method),
            first_party: true,
            ..ClientSettings::default()
        };
        let made = self.test.auth.orgs().create_app(org, &new).await.unwrap();
        (
            made.app.client_id.as_str().to_owned(),
            made.client_secret.map(|s| s.secret().to_owned()),
        )
    }

    /// The browser: from the authorization URL to the client's redirect URI.
    async fn browse(&self, authorize: String, client_id: &str, email: &str) -> String {
        assert!(
            authorize.starts_with(&format!("{}/oauth2/authorize?", self.origin)),
            "{authorize}"
        );
        let sent = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(sent.status(), 303);
        let login = sent.headers()["location"].to_str().unwrap().to_owned();
        let interaction = url::Url::parse(&format!("{}{login}", self.origin))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "interaction")
            .unwrap()
            .1
            .into_owned();
        // The login page signs in by email code, in the client's organization.
        let api = format!("{}/api/v1", self.origin);
        let asked: Value = self
            .http
            .post(format!("{api}/auth/passwordless/email-code"))
            .header("x-client-id", client_id)
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = self.test.last_email_code(email);
        let signed_in: Value = self
            .http
            .post(format!("{api}/auth/passwordless/email-code/verify"))
            .header("x-client-id", client_id)
            .json(&json!({ "request_id": asked["request_id"], "code": code }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = signed_in["token"].as_str().expect("signed in").to_owned();
        let handed = self
            .http
            .post(format!("{}/oauth2/interaction", self.origin))
            .bearer_auth(&token)
            .json(&json!({ "interaction": interaction }))
            .send()
            .await
            .unwrap();
        assert_eq!(handed.status(), 200);
        let cookie = handed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = handed.json().await.unwrap();
        let resumed = self
            .http
            .get(format!(
                "{}{}",
                self.origin,
                body["redirect_to"].as_str().unwrap()
            ))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), 303);
        resumed.headers()["location"].to_str().unwrap().to_owned()
    }

    async fn run(&self, library: Library, method: TokenAuthMethod, email: &str) -> Value {
        let confidential = method != TokenAuthMethod::None;
        let (client_id, secret) = self.client(confidential, method).await;
        let config = json!({
            "issuer": self.origin,
            "client_id": client_id,
            "client_secret": secret,
            "auth_method": method.as_str(),
            "redirect_uri": REDIRECT,
            "scope": "openid profile email offline_access",
            "id_token_alg": "EdDSA",
            "authorize_params": {"max_age": "600"},
        });
        let result = rp::run(library, &config, |url| self.browse(url, &client_id, email)).await;
        assert_eq!(
            result["ok"],
            true,
            "{library:?} {}: {result}",
            method.as_str()
        );
        let claims = &result["id_token_claims"];
        assert_eq!(claims["iss"], self.origin.as_str(), "OP-01: one issuer");
        assert_eq!(claims["aud"], client_id.as_str());
        assert_eq!(claims["email"], email);
        assert!(claims["auth_time"].is_i64(), "max_age asks for auth_time");
        assert_eq!(result["userinfo"]["sub"], claims["sub"]);
        assert_eq!(result["userinfo"]["email"], email);
        assert_eq!(result["refreshed"], true, "{result}");
        assert_eq!(result["refreshed_id_token_claims"]["sub"], claims["sub"]);
        assert_eq!(result["revoked"], true);
        assert_eq!(result["refresh_after_revoke_error"], "invalid_grant");
        result
    }
}

#[tokio::test]
async fn authlib_signs_in_refreshes_and_revokes() {
    if !rp::available(Library::Authlib) {
        return;
    }
    let server = serve().await;
    server
        .run(
            Library::Authlib,
            TokenAuthMethod::ClientSecretBasic,
            "alice@example.com",
        )
        .await;
    server
        .run(
            Library::Authlib,
            TokenAuthMethod::ClientSecretPost,
            "bob@example.com",
        )
        .await;
}

#[tokio::test]
async fn openid_client_signs_in_refreshes_and_revokes() {
    if !rp::available(Library::OpenidClient) {
        return;
    }
    let server = serve().await;
    server
        .run(
            Library::OpenidClient,
            TokenAuthMethod::None,
            "carol@example.com",
        )
        .await;
    server
        .run(
            Library::OpenidClient,
            TokenAuthMethod::ClientSecretBasic,
            "dave@example.com",
        )
        .await;
}
