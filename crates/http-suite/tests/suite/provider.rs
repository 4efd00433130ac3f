//! portcullis as an OpenID provider, over HTTP: discovery, `/oauth2/authorize` with the
//! browser cookie and consent, the token endpoint's RFC 6749 shapes, UserInfo,
//! revocation, introspection and logout; each refusal the issue and SECURITY-CHECKLIST
//! 2.19 (OP-01…OP-19) name.

use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::common::{ADMIN_KEY, Answer, TestApp};

const REDIRECT: &str = "https://rp.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A registered client of the provider.
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
}

/// Registers an app over the admin API (bootstrap key): `body` adds to a web app with
/// one redirect URI.
pub async fn register(test: &TestApp, body: Value) -> Client {
    let org = test.default_org().await;
    let mut request = json!({
        "name": "Relying Party",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://rp.example/bye"],
        "scopes": ["openid", "profile", "email", "offline_access", "roles"],
    });
    for (k, v) in body.as_object().unwrap() {
        request[k] = v.clone();
    }
    let made = test
        .post(
            &format!("/api/v1/organizations/{org}/apps"),
            request,
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    Client {
        id: made.str("client_id"),
        secret: made.body["client_secret"].as_str().map(str::to_owned),
    }
}

/// The authorization request's query for `client` with PKCE, plus `extra`.
pub fn query(client: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={client}&redirect_uri={}&scope=openid%20email%20offline_access\
         &state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        urlencode(REDIRECT)
    )
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn get_with_cookie(test: &TestApp, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    test.request(request.body(Vec::new()).unwrap()).await
}

async fn form(
    test: &TestApp,
    path: &str,
    body: &str,
    basic: Option<(&str, &str)>,
    cookie: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        request = request.header("authorization", format!("Basic {pair}"));
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    test.request(request.body(body.as_bytes().to_vec()).unwrap())
        .await
}

fn location(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    answer.header("location").expect("a Location").to_owned()
}

/// A query parameter of an absolute URL or a path.
pub fn param(url: &str, name: &str) -> Option<String> {
    let base = url::Url::parse("http://x").unwrap();
    let url = base.join(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The cookie a `Set-Cookie` header sets, as a `Cookie` header value.
fn cookie_of(answer: &Answer) -> String {
    let set = answer.header("set-cookie").expect("a cookie");
    set.split(';').next().unwrap().to_owned()
}

/// Plays the browser: `/oauth2/authorize?{query}` sends it to the login page, which signs
/// `email` in (by email code, in the client's organization) and hands the session over;
/// returns the cookie and what the resumed authorization answered.
pub async fn sign_in(
    test: &TestApp,
    client: &Client,
    email: &str,
    query: &str,
) -> (String, Answer) {
    let sent = get_with_cookie(test, &format!("/oauth2/authorize?{query}"), None).await;
    let login = location(&sent);
    assert!(login.starts_with("/?interaction="), "{login}");
    let interaction = param(&login, "interaction").unwrap();
    let shown = test
        .get(
            &format!("/oauth2/interaction?interaction={interaction}"),
            None,
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.str("client_name"), "Relying Party");
    let token = test.token_via(email, Some(&client.id)).await;
    let (cookie, resumed) = hand_over(test, &interaction, &token).await;
    (cookie, resumed)
}

/// The login page's hand-over: `POST /oauth2/interaction` with its access token, then the
/// resumed authorization with the cookie it set.
pub async fn hand_over(test: &TestApp, interaction: &str, token: &str) -> (String, Answer) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/interaction")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(
            json!({ "interaction": interaction })
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let established = test.request(request).await;
    assert_eq!(established.status, StatusCode::OK, "{}", established.body);
    let set = established.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain"), "host-only: {set}");
    let cookie = cookie_of(&established);
    let resumed = get_with_cookie(test, &established.str("redirect_to"), Some(&cookie)).await;
    (cookie, resumed)
}

/// The value of a page's hidden form field `name`.
fn field(page: &Answer, name: &str) -> String {
    let html = String::from_utf8_lossy(&page.bytes);
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Answers the consent page's form (`allow` or `deny`); the redirect that follows.
pub async fn decide(test: &TestApp, page: &Answer, cookie: &str, decision: &str) -> String {
    assert_eq!(page.status, StatusCode::OK);
    let body = format!(
        "interaction={}&csrf={}&decision={decision}",
        field(page, "interaction"),
        field(page, "csrf")
    );
    location(&form(test, "/oauth2/consent", &body, None, Some(cookie)).await)
}

/// Allows the consent page's form; the redirect that follows.
pub async fn allow(test: &TestApp, page: &Answer, cookie: &str) -> String {
    decide(test, page, cookie, "allow").await
}

async fn exchange(test: &TestApp, client: &Client, code: &str, verifier: &str) -> Answer {
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}",
        urlencode(REDIRECT)
    );
    let basic = client.secret.as_deref().map(|s| (client.id.as_str(), s));
    let body = match basic {
        Some(_) => body,
        None => format!("{body}&client_id={}", client.id),
    };
    form(test, "/oauth2/token", &body, basic, None).await
}

/// A confidential client, first party (no consent), Alice signed in through it: the code.
async fn first_party_code(test: &TestApp) -> (Client, String, String) {
    let client = register(test, json!({"confidential": true, "first_party": true})).await;
    let (cookie, resumed) =
        sign_in(test, &client, "alice@example.com", &query(&client.id, "")).await;
    let back = location(&resumed);
    assert!(back.starts_with(REDIRECT), "{back}");
    (client, cookie, param(&back, "code").unwrap())
}

#[tokio::test]
async fn discovery_advertises_one_issuer_and_only_what_is_allowed() {
    let test = TestApp::new();
    let doc = test.get("/.well-known/openid-configuration", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let issuer = doc.str("issuer");
    assert_eq!(issuer, "http://localhost:8080");
    assert_eq!(doc.body["response_types_supported"], json!(["code"]));
    assert_eq!(
        doc.body["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        doc.body["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    assert_eq!(
        doc.body["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    let algs = doc.body["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.iter()
            .all(|a| a != "none" && !a.as_str().unwrap().starts_with("HS"))
    );
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
    ] {
        assert!(
            doc.str(endpoint).starts_with(&issuer),
            "{endpoint} under the issuer"
        );
    }
    assert_eq!(doc.header("access-control-allow-origin"), Some("*"));
    assert!(doc.header("access-control-allow-credentials").is_none());
    let oauth = test
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(
        oauth.body, doc.body,
        "RFC 8414 metadata is the same document"
    );
    let jwks = test.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.header("access-control-allow-origin"), Some("*"));
    for key in jwks.body["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "OP-18: no {private}");
        }
    }
}

/// OP-02 (Critical): an unknown client or a redirect URI that is not registered exactly
/// gets an error page at the provider, never a redirect.
#[tokio::test]
async fn unregistered_redirect_uris_get_an_error_page_never_a_redirect() {
    let test = TestApp::new();
    let client = register(&test, json!({})).await;
    let base = query(&client.id, "");
    let unknown = get_with_cookie(
        &test,
        &format!(
            "/oauth2/authorize?{}",
            base.replace(&client.id, "app_unknown")
        ),
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.header("location").is_none());
    assert!(
        unknown
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for wrong in [
        "https://rp.example/cb/",
        "https://rp.example/cB",
        "https://rp.example/cb?x=1",
        "https://rp.example:444/cb",
        "https://rp.example@evil.example/cb",
        "https://rp.example/c",
        "http://rp.example/cb",
    ] {
        let q = base.replace(&urlencode(REDIRECT), &urlencode(wrong));
        let answer = get_with_cookie(&test, &format!("/oauth2/authorize?{q}"), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{wrong}");
        assert!(
            answer.header("location").is_none(),
            "no redirect for {wrong}"
        );
        let csp = answer.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
    }
    let several = register(
        &test,
        json!({"redirect_uris": [REDIRECT, "https://rp.example/other"]}),
    )
    .await;
    let omitted = format!(
        "response_type=code&client_id={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        several.id
    );
    let answer = get_with_cookie(&test, &format!("/oauth2/authorize?{omitted}"), None).await;
    assert!(
        answer.header("location").is_none(),
        "omitted while several are registered"
    );
    // The exact registered value goes on to the login page.
    let exact = get_with_cookie(&test, &format!("/oauth2/authorize?{base}"), None).await;
    assert!(location(&exact).starts_with("/?interaction="));
}

/// OP-03, OP-04: request hygiene, with every error redirect carrying `state` and `iss`.
#[tokio::test]
async fn bad_requests_go_back_to_the_client_with_state_and_iss() {
    let test = TestApp::new();
    let client = register(&test, json!({})).await;
    let base = query(&client.id, "");
    let cases = [
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            base.replace("response_type=code", "response_type=id_token%20token"),
            "unsupported_response_type",
        ),
        (format!("{base}&scope=openid"), "invalid_request"),
        (format!("{base}&response_mode=fragment"), "invalid_request"),
        (
            base.replace(
                "scope=openid%20email%20offline_access",
                "scope=openid%20phone",
            ),
            "invalid_scope",
        ),
        (
            base.replace(
                "&code_challenge_method=S256",
                "&code_challenge_method=plain",
            ),
            "invalid_request",
        ),
        (
            base.replace(
                &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
                "",
            ),
            "invalid_request",
        ),
        (format!("{base}&prompt=none%20login"), "invalid_request"),
        (format!("{base}&max_age=-1"), "invalid_request"),
        (format!("{base}&prompt=none"), "login_required"),
    ];
    for (q, error) in cases {
        let back = location(&get_with_cookie(&test, &format!("/oauth2/authorize?{q}"), None).await);
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{q}");
        assert_eq!(param(&back, "state").as_deref(), Some("s1"));
        assert_eq!(
            param(&back, "iss").as_deref(),
            Some("http://localhost:8080")
        );
        assert!(param(&back, "code").is_none());
    }
}

/// The whole code flow: code, ID token, refresh, UserInfo; then the refusals of the token
/// endpoint (OP-09, OP-10).
#[tokio::test]
async fn code_flow_with_pkce_and_the_token_endpoints_refusals() {
    let test = TestApp::relaxed();
    let (client, _cookie, code) = first_party_code(&test).await;
    let secret = client.secret.clone().unwrap();
    // A wrong verifier spends the code.
    let wrong = exchange(&test, &client, &code, &"a".repeat(43)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.body,
        json!({"error": "invalid_grant", "error_description": wrong.body["error_description"]})
    );
    let (client, cookie, code) = {
        let q = query(&client.id, "");
        let again = get_with_cookie(&test, &format!("/oauth2/authorize?{q}"), Some(&_cookie)).await;
        let back = location(&again);
        (client, _cookie, param(&back, "code").unwrap())
    };
    // Wrong client secret: 401 invalid_client with WWW-Authenticate.
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
        urlencode(REDIRECT)
    );
    let bad = form(
        &test,
        "/oauth2/token",
        &body,
        Some((&client.id, "wrong")),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.body["error"], "invalid_client");
    assert!(bad.header("www-authenticate").unwrap().starts_with("Basic"));
    // Basic and a body secret together; a body client_id that differs from Basic's.
    let both = form(
        &test,
        "/oauth2/token",
        &format!("{body}&client_secret={secret}"),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(both.body["error"], "invalid_request");
    let differs = form(
        &test,
        "/oauth2/token",
        &format!("{body}&client_id=app_other"),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(differs.body["error"], "invalid_client");
    // client_secret_post for a client_secret_basic client.
    let posted = form(
        &test,
        "/oauth2/token",
        &format!("{body}&client_id={}&client_secret={secret}", client.id),
        None,
        None,
    )
    .await;
    assert_eq!(posted.body["error"], "invalid_client");
    // JSON body; GET.
    let json_body = test
        .post(
            "/oauth2/token",
            json!({"grant_type": "authorization_code"}),
            None,
        )
        .await;
    assert_eq!(json_body.body["error"], "invalid_request");
    let get = test.get("/oauth2/token", None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    // The code is still good after refusals that never reached it.
    let tokens = exchange(&test, &client, &code, VERIFIER).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.header("cache-control"), Some("no-store"));
    assert_eq!(tokens.str("token_type"), "Bearer");
    let id_token = tokens.str("id_token");
    let claims = decode(&id_token);
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["iss"], "http://localhost:8080");
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["amr"], json!(["email"]));
    assert!(claims["sid"].is_string() && claims["auth_time"].is_i64());
    assert_eq!(claims["at_hash"], at_hash(&tokens.str("access_token")));
    // Used twice: refused, and what it issued is revoked (OP-10).
    let replay = exchange(&test, &client, &code, VERIFIER).await;
    assert_eq!(replay.body["error"], "invalid_grant");
    let info = userinfo(&test, &tokens.str("access_token")).await;
    assert_eq!(
        info.status,
        StatusCode::UNAUTHORIZED,
        "the replay revoked the grant"
    );
    assert!(
        info.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let refreshed = form(
        &test,
        "/oauth2/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            tokens.str("refresh_token")
        ),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(refreshed.body["error"], "invalid_grant");
    // A fresh code: refresh, UserInfo, and the refresh token is useless elsewhere.
    let back = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "")),
            Some(&cookie),
        )
        .await,
    );
    let tokens = exchange(&test, &client, &param(&back, "code").unwrap(), VERIFIER).await;
    let refresh = tokens.str("refresh_token");
    let generic = test
        .post(
            "/api/v1/token/refresh",
            json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(
        generic.status,
        StatusCode::UNAUTHORIZED,
        "the API's own refresh never finds a client's token"
    );
    let no_secret = form(
        &test,
        "/oauth2/token",
        &format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id={}",
            client.id
        ),
        None,
        None,
    )
    .await;
    assert_eq!(
        no_secret.body["error"], "invalid_client",
        "a confidential client's refresh authenticates"
    );
    let refreshed = form(
        &test,
        "/oauth2/token",
        &format!(
            "grant_type=refresh_token&refresh_token={refresh}&scope=openid%20email%20offline_access"
        ),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let again = decode(&refreshed.str("id_token"));
    assert_eq!(
        again["auth_time"], claims["auth_time"],
        "auth_time kept across refresh"
    );
    assert!(again.get("nonce").is_none());
    let info = userinfo(&test, &refreshed.str("access_token")).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.body["sub"], claims["sub"]);
    assert_eq!(info.body["email"], "alice@example.com");
    // The ID token is no bearer token.
    let with_id_token = userinfo(&test, &refreshed.str("id_token")).await;
    assert_eq!(with_id_token.status, StatusCode::UNAUTHORIZED);
    // Introspection (OP-16), then revocation (OP-15).
    let access = refreshed.str("access_token");
    let active = form(
        &test,
        "/oauth2/introspect",
        &format!("token={access}"),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(active.body["active"], true, "{}", active.body);
    assert_eq!(active.body["client_id"], client.id.as_str());
    assert_eq!(active.header("cache-control"), Some("no-store"));
    let anonymous = form(
        &test,
        "/oauth2/introspect",
        &format!("token={access}"),
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let garbage = form(
        &test,
        "/oauth2/revoke",
        "token=garbage",
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(garbage.status, StatusCode::OK);
    let revoked = form(
        &test,
        "/oauth2/revoke",
        &format!(
            "token={}&token_type_hint=access_token",
            refreshed.str("refresh_token")
        ),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let inactive = form(
        &test,
        "/oauth2/introspect",
        &format!("token={access}"),
        Some((&client.id, &secret)),
        None,
    )
    .await;
    assert_eq!(inactive.body, json!({"active": false}));
    assert_eq!(
        userinfo(&test, &access).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// OP-10: a code redeemed by another client is refused; OP-11: public clients need PKCE
/// and never authenticate with a secret.
#[tokio::test]
async fn codes_are_bound_to_their_client_and_public_clients_use_pkce() {
    let test = TestApp::relaxed();
    let (client, _cookie, code) = first_party_code(&test).await;
    let other = register(&test, json!({"confidential": true, "first_party": true})).await;
    let stolen = exchange(&test, &other, &code, VERIFIER).await;
    assert_eq!(stolen.body["error"], "invalid_grant");
    let _ = client;
    let public = register(&test, json!({"first_party": true})).await;
    assert!(public.secret.is_none());
    let (_, resumed) = sign_in(&test, &public, "bob@example.com", &query(&public.id, "")).await;
    let code = param(&location(&resumed), "code").unwrap();
    let tokens = exchange(&test, &public, &code, VERIFIER).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    // Registration policy: forbidden redirect URIs are refused at registration.
    let org = test.default_org().await;
    for bad in [
        "javascript:alert(1)",
        "https://*.rp.example/cb",
        "https://rp.example/cb#f",
        "http://rp.example/cb",
        "http://2130706433/cb",
        "data:text/html,x",
    ] {
        let made = test
            .post(
                &format!("/api/v1/organizations/{org}/apps"),
                json!({"name": "x", "redirect_uris": [bad]}),
                Some(ADMIN_KEY),
            )
            .await;
        assert_eq!(made.status, StatusCode::BAD_REQUEST, "{bad}: {}", made.body);
    }
    let native = test.post(&format!("/api/v1/organizations/{org}/apps"),
        json!({"name": "cli", "application_type": "native", "redirect_uris": ["http://127.0.0.1/cb"]}),
        Some(ADMIN_KEY)).await;
    assert_eq!(native.status, StatusCode::CREATED, "{}", native.body);
    let q = query(native.body["client_id"].as_str().unwrap(), "").replace(
        &urlencode(REDIRECT),
        &urlencode("http://127.0.0.1:51234/cb"),
    );
    let any_port = get_with_cookie(&test, &format!("/oauth2/authorize?{q}"), None).await;
    assert!(
        location(&any_port).starts_with("/?interaction="),
        "a native loopback URI on any port (RFC 8252)"
    );
}

/// OP-05: `prompt=none` without a session, an elapsed `max_age` and `prompt=login` force
/// sign-in; `auth_time` moves forward.
#[tokio::test]
async fn prompt_and_max_age_force_a_fresh_sign_in() {
    let test = TestApp::relaxed();
    let (client, cookie, code) = first_party_code(&test).await;
    let first = decode(
        &exchange(&test, &client, &code, VERIFIER)
            .await
            .str("id_token"),
    );
    // Within max_age: straight back with a code.
    let within = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&max_age=600")),
            Some(&cookie),
        )
        .await,
    );
    assert!(param(&within, "code").is_some(), "{within}");
    test.advance(std::time::Duration::from_secs(120));
    let elapsed = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&max_age=60")),
            Some(&cookie),
        )
        .await,
    );
    assert!(elapsed.starts_with("/?interaction="), "{elapsed}");
    let none = location(
        &get_with_cookie(
            &test,
            &format!(
                "/oauth2/authorize?{}",
                query(&client.id, "&max_age=60&prompt=none")
            ),
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(param(&none, "error").as_deref(), Some("login_required"));
    let login = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=login")),
            Some(&cookie),
        )
        .await,
    );
    assert!(login.starts_with("/?interaction="));
    // Signing in again there gives a new auth_time.
    let interaction = param(&login, "interaction").unwrap();
    let token = test.token_via("alice@example.com", Some(&client.id)).await;
    let (_, resumed) = hand_over(&test, &interaction, &token).await;
    let code = param(&location(&resumed), "code").unwrap();
    let second = decode(
        &exchange(&test, &client, &code, VERIFIER)
            .await
            .str("id_token"),
    );
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
    // The old session's cookie no longer passes prompt=login without signing in.
    let stale = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=login")),
            Some(&cookie),
        )
        .await,
    );
    assert!(stale.starts_with("/?interaction="));
}

/// OP-07: a third-party client needs consent (remembered, revocable); refusal returns
/// `access_denied`; the consent form needs its CSRF token.
#[tokio::test]
async fn third_party_clients_need_consent() {
    let test = TestApp::relaxed();
    let client = register(&test, json!({"confidential": true})).await;
    let (cookie, page) = sign_in(&test, &client, "carol@example.com", &query(&client.id, "")).await;
    let html = String::from_utf8_lossy(&page.bytes).into_owned();
    assert!(
        html.contains("Relying Party") && html.contains("Your email address"),
        "{html}"
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // prompt=none before consent: consent_required.
    let none = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=none")),
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(param(&none, "error").as_deref(), Some("consent_required"));
    // A consent post without the CSRF token is refused.
    let interaction = field(&page, "interaction");
    let forged = form(
        &test,
        "/oauth2/consent",
        &format!("interaction={interaction}&csrf=forged&decision=allow"),
        None,
        Some(&cookie),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let back = allow(&test, &page, &cookie).await;
    assert!(param(&back, "code").is_some(), "{back}");
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some("http://localhost:8080")
    );
    // Remembered: prompt=none now gets a code.
    let silent = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=none")),
            Some(&cookie),
        )
        .await,
    );
    assert!(param(&silent, "code").is_some(), "{silent}");
    // Listed and revoked by the person.
    let token = test.token_via("carol@example.com", None).await;
    let listed = test.get("/api/v1/auth/consents", Some(&token)).await;
    assert_eq!(
        listed.body["items"][0]["client_id"],
        client.id.as_str(),
        "{}",
        listed.body
    );
    let revoked = test
        .delete(
            &format!("/api/v1/auth/consents/{}", client.id),
            Some(&token),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=none")),
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(param(&after, "error").as_deref(), Some("consent_required"));
    // Deny: access_denied back at the registered URI.
    let page = get_with_cookie(
        &test,
        &format!("/oauth2/authorize?{}", query(&client.id, "")),
        Some(&cookie),
    )
    .await;
    let denied = decide(&test, &page, &cookie, "deny").await;
    assert!(denied.starts_with(REDIRECT));
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    // Only an installation administrator makes a client first-party (OP-07, OP-19): an
    // organization's own credential may register apps there, not first-party ones, and
    // sees no other organization's apps.
    let org = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    let key = test
        .auth
        .api_keys()
        .create(
            org,
            &portcullis::directory::NewApiKey::new("ci", &["apps:write", "apps:read"]),
        )
        .await
        .unwrap();
    let key = key.secret.secret();
    let path = format!("/api/v1/organizations/{org}/apps");
    let app = json!({"name": "Acme app", "redirect_uris": ["https://acme.example/cb"]});
    let made = test.post(&path, app.clone(), Some(key)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let mut first = app;
    first["first_party"] = json!(true);
    assert_eq!(
        test.post(&path, first, Some(key)).await.status,
        StatusCode::FORBIDDEN
    );
    let promote = test
        .patch(
            &format!("/api/v1/apps/{}", made.str("client_id")),
            json!({"first_party": true}),
            Some(key),
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let theirs = test
        .get(&format!("/api/v1/apps/{}", client.id), Some(key))
        .await;
    assert_eq!(
        theirs.status,
        StatusCode::NOT_FOUND,
        "another organization's app"
    );
    let rotate = test
        .post(
            &format!("/api/v1/apps/{}/secret", client.id),
            json!({}),
            Some(key),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::NOT_FOUND);
}

/// OP-17: RP-initiated logout.
#[tokio::test]
async fn logout_with_a_valid_hint_ends_the_session_and_redirects() {
    let test = TestApp::relaxed();
    let (client, cookie, code) = first_party_code(&test).await;
    let id_token = exchange(&test, &client, &code, VERIFIER)
        .await
        .str("id_token");
    // No hint: a confirmation page, and the GET ends nothing.
    let confirm = get_with_cookie(&test, "/oauth2/logout", Some(&cookie)).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&confirm.bytes).contains("name=\"csrf\""));
    let still = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=none")),
            Some(&cookie),
        )
        .await,
    );
    assert!(param(&still, "code").is_some());
    // Unregistered URI, or one with an added query: no redirect.
    for bad in ["https://rp.example/other", "https://rp.example/bye?x=1"] {
        let answer = get_with_cookie(
            &test,
            &format!(
                "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
                urlencode(bad)
            ),
            Some(&cookie),
        )
        .await;
        assert!(answer.header("location").is_none(), "{bad}");
    }
    // An alg=none hint.
    let forged = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        id_token.split('.').nth(1).unwrap()
    );
    let answer = get_with_cookie(
        &test,
        &format!(
            "/oauth2/logout?id_token_hint={forged}&post_logout_redirect_uri={}",
            urlencode("https://rp.example/bye")
        ),
        Some(&cookie),
    )
    .await;
    assert!(answer.header("location").is_none());
    // Valid: signed out, back with state, cookie cleared.
    let out = get_with_cookie(
        &test,
        &format!(
            "/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye1",
            urlencode("https://rp.example/bye")
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(location(&out), "https://rp.example/bye?state=bye1");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = location(
        &get_with_cookie(
            &test,
            &format!("/oauth2/authorize?{}", query(&client.id, "&prompt=none")),
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(param(&after, "error").as_deref(), Some("login_required"));
}

/// A client's access token is for UserInfo and the client's own services, not a key to the
/// person's account: portcullis's API refuses it (a third-party app granted `openid
/// email` must not list, add or remove the person's passkeys, sessions or password).
#[tokio::test]
async fn a_clients_access_token_does_not_open_the_account_api() {
    let test = TestApp::relaxed();
    let client = register(&test, json!({"confidential": true})).await;
    let (cookie, page) = sign_in(&test, &client, "erin@example.com", &query(&client.id, "")).await;
    let code = param(&allow(&test, &page, &cookie).await, "code").unwrap();
    let tokens = exchange(&test, &client, &code, VERIFIER).await;
    let access = tokens.str("access_token");
    assert_eq!(userinfo(&test, &access).await.status, StatusCode::OK);
    for path in [
        "/api/v1/auth/status",
        "/api/v1/auth/passkeys",
        "/api/v1/auth/sessions",
        "/api/v1/mfa/authenticators",
    ] {
        let answer = test.get(path, Some(&access)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            answer.body
        );
    }
    let users = test.get("/api/v1/users", Some(&access)).await;
    assert_eq!(users.status, StatusCode::UNAUTHORIZED, "{}", users.body);
}

async fn userinfo(test: &TestApp, token: &str) -> Answer {
    test.get("/oauth2/userinfo", Some(token)).await
}

/// The payload of a JWT (not verified: the relying-party tests verify).
fn decode(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `at_hash` for the engine's default EdDSA keys: the left half of SHA-512.
fn at_hash(access_token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha512::digest(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..32])
}
