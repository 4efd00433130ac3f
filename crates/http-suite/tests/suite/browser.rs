//! Cookie sessions for first-party pages (`Portcullis-Session: cookie`): the tokens in
//! `HttpOnly` cookies, and every cookie-authenticated change held to the site's origin and
//! its anti-CSRF token (checklist ADM-04, ADM-19).

use super::common::{Answer, PROBES, TestApp, assert_error};
use http::{Method, StatusCode};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:8080";

/// The `Set-Cookie` headers of an answer.
fn set_cookies(answer: &Answer) -> Vec<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value a `Set-Cookie` list gives cookie `name`.
fn value_of(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} in {cookies:?}"))
        .to_owned()
}

/// A browser's cookie jar, as far as these tests need one.
struct Jar {
    access: String,
    refresh: String,
    csrf: String,
}

impl Jar {
    fn from(answer: &Answer, prefix: &str) -> Jar {
        let cookies = set_cookies(answer);
        Jar {
            access: value_of(&cookies, &format!("{prefix}portcullis-at")),
            refresh: value_of(&cookies, &format!("{prefix}portcullis-rt")),
            csrf: value_of(&cookies, &format!("{prefix}portcullis-csrf")),
        }
    }

    fn header(&self) -> String {
        format!(
            "portcullis-at={}; portcullis-rt={}; portcullis-csrf={}",
            self.access, self.refresh, self.csrf
        )
    }
}

/// Signs `email` in by email code in cookie mode, from `origin`.
async fn cookie_sign_in(test: &TestApp, email: &str, origin: &str) -> Answer {
    let sent = test
        .post(
            "/api/v1/auth/passwordless/email-code",
            json!({"email": email}),
            None,
        )
        .await;
    let code = test.last_email_code(email);
    test.call_with(
        Method::POST,
        "/api/v1/auth/passwordless/email-code/verify",
        Some(json!({"request_id": sent.str("request_id"), "code": code})),
        None,
        &[("portcullis-session", "cookie"), ("origin", origin)],
        None,
    )
    .await
}

async fn with_cookies(
    test: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    cookies: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut headers = vec![("cookie", cookies)];
    headers.extend_from_slice(extra);
    test.call_with(method, path, body, None, &headers, None)
        .await
}

#[tokio::test]
async fn adm04_a_cookie_session_keeps_its_tokens_from_scripts_and_its_changes_to_the_site() {
    let test = TestApp::new();
    let signed_in = cookie_sign_in(&test, "cora@example.com", ORIGIN).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    // No token in the body: only the anti-CSRF token a page must echo.
    assert!(signed_in.body.get("token").is_none(), "{}", signed_in.body);
    assert!(signed_in.body.get("refresh_token").is_none());
    assert_eq!(signed_in.body["session"], "cookie");
    let cookies = set_cookies(&signed_in);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    let flags = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap()
            .clone()
    };
    assert!(flags("portcullis-at").contains("; HttpOnly; SameSite=Lax"));
    assert!(flags("portcullis-rt").contains("; HttpOnly; SameSite=Strict"));
    let csrf_cookie = flags("portcullis-csrf");
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    assert!(
        cookies
            .iter()
            .all(|c| c.contains("Path=/") && !c.contains("Domain"))
    );
    let jar = Jar::from(&signed_in, "");
    assert_eq!(signed_in.str("csrf_token"), jar.csrf);

    // Reading needs the cookie alone; the API and the framework's extractors agree.
    let status = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &jar.header(),
        &[],
    )
    .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let probe = with_cookies(&test, Method::GET, PROBES[1], None, &jar.header(), &[]).await;
    assert_eq!(probe.status, StatusCode::OK, "{}", probe.body);

    // A change without the token, from another site, or with another token: refused.
    let forged: [&[(&str, &str)]; 5] = [
        &[("origin", ORIGIN)],
        &[("x-csrf-token", &jar.csrf)],
        &[
            ("origin", "https://evil.example"),
            ("x-csrf-token", &jar.csrf),
        ],
        &[
            ("sec-fetch-site", "cross-site"),
            ("x-csrf-token", &jar.csrf),
        ],
        &[("origin", ORIGIN), ("x-csrf-token", "guessed")],
    ];
    for headers in forged {
        for path in ["/api/v1/auth/logout", PROBES[1]] {
            let refused = with_cookies(
                &test,
                Method::POST,
                path,
                Some(json!({})),
                &jar.header(),
                headers,
            )
            .await;
            assert_error(&refused, StatusCode::FORBIDDEN, "csrf");
        }
    }
    let still = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &jar.header(),
        &[],
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "nothing was signed out");
    let same_site = [
        ("sec-fetch-site", "same-origin"),
        ("x-csrf-token", jar.csrf.as_str()),
    ];
    let probe = with_cookies(
        &test,
        Method::POST,
        PROBES[1],
        Some(json!({})),
        &jar.header(),
        &same_site,
    )
    .await;
    assert_eq!(probe.status, StatusCode::OK, "{}", probe.body);

    // Refresh from the cookie: new cookies; the old refresh token again ends the session.
    let own = [
        ("origin", ORIGIN),
        ("x-csrf-token", jar.csrf.as_str()),
        ("portcullis-session", "cookie"),
    ];
    let refreshed = with_cookies(
        &test,
        Method::POST,
        "/api/v1/token/refresh",
        None,
        &jar.header(),
        &own,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body.get("refresh_token").is_none());
    let next = Jar::from(&refreshed, "");
    assert_ne!(next.refresh, jar.refresh);
    let own_next = [("origin", ORIGIN), ("x-csrf-token", next.csrf.as_str())];
    let status = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &next.header(),
        &[],
    )
    .await;
    assert_eq!(status.status, StatusCode::OK);

    // Sign-out clears the cookies, and the session is over.
    let out = with_cookies(
        &test,
        Method::POST,
        "/api/v1/auth/logout",
        None,
        &next.header(),
        &own_next,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 3, "{cleared:?}");
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let gone = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &next.header(),
        &[],
    )
    .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
}

/// Login CSRF: a sign-in posted from another site in cookie mode sets no cookie. Without
/// the mode, a sign-in answers tokens as before, and bearer tokens need no CSRF token.
#[tokio::test]
async fn adm04_cookie_mode_is_for_the_sites_own_pages_and_bearers_are_unchanged() {
    let test = TestApp::new();
    let foreign = cookie_sign_in(&test, "dan@example.com", "https://evil.example").await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "csrf");
    assert!(set_cookies(&foreign).is_empty());
    let token = test.token_via("dan@example.com", None).await;
    let out = test
        .call_with(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(&token),
            &[("origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert!(set_cookies(&out).is_empty());
}

/// ADM-19: on an `https` installation the cookies are `__Host-` cookies: `Secure`, no
/// `Domain`, `Path=/`.
#[tokio::test]
async fn adm19_on_https_the_cookies_are_host_only_and_secure() {
    let origin = "https://auth.example.com";
    let test = TestApp::with_origin(origin, |_| {});
    let signed_in = cookie_sign_in(&test, "eve@example.com", origin).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let cookies = set_cookies(&signed_in);
    assert_eq!(cookies.len(), 3);
    for cookie in &cookies {
        assert!(cookie.starts_with("__Host-portcullis-"), "{cookie}");
        assert!(
            cookie.contains("; Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    let jar = Jar::from(&signed_in, "__Host-");
    // The loopback names do not count here.
    let unprefixed = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &jar.header(),
        &[],
    )
    .await;
    assert_eq!(
        unprefixed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        unprefixed.body
    );
    let cookie = format!("__Host-portcullis-at={}", jar.access);
    let status = with_cookies(
        &test,
        Method::GET,
        "/api/v1/auth/status",
        None,
        &cookie,
        &[],
    )
    .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
}

/// ADM-12: only an origin on the installation's list gets a CORS answer: its own origin
/// echoed with `Vary: Origin`, never `*` and never credentials; look-alike origins, other
/// schemes and ports, and `null` get none, and their preflights are refused.
#[tokio::test]
async fn adm12_only_listed_origins_get_cors_answers() {
    let mut test = TestApp::new();
    assert!(
        test.api
            .clone()
            .allowed_origins(&["https://*.shop.example"])
            .is_err(),
        "a wildcard is refused when the list is set"
    );
    test.api = test
        .api
        .clone()
        .allowed_origins(&["https://shop.example"])
        .unwrap();
    let token = test.token_via("fay@example.com", None).await;
    let preflight = |origin: &'static str| async {
        test.call_with(
            Method::OPTIONS,
            "/api/v1/auth/status",
            None,
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
            None,
        )
        .await
    };
    let allowed = preflight("https://shop.example").await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT, "{}", allowed.body);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(
        allowed
            .header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    assert!(allowed.header("access-control-allow-credentials").is_none());
    let status = test
        .call_with(
            Method::GET,
            "/api/v1/auth/status",
            None,
            Some(&token),
            &[("origin", "https://shop.example")],
            None,
        )
        .await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(
        status
            .headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    );
    assert!(status.header("access-control-allow-credentials").is_none());
    for stranger in [
        "https://shop.example.evil.com",
        "https://evilshop.example",
        "http://shop.example",
        "https://shop.example:8443",
        "null",
    ] {
        let refused = preflight(stranger).await;
        assert_error(&refused, StatusCode::FORBIDDEN, "cors");
        assert!(
            refused.header("access-control-allow-origin").is_none(),
            "{stranger}"
        );
        let answered = test
            .call_with(
                Method::GET,
                "/api/v1/auth/status",
                None,
                Some(&token),
                &[("origin", stranger)],
                None,
            )
            .await;
        assert!(
            answered.header("access-control-allow-origin").is_none(),
            "{stranger}"
        );
    }
    // Cookie sessions stay with the site's own pages: their headers are not allowed across.
    let headers = allowed.header("access-control-allow-headers").unwrap();
    assert!(!headers.contains("x-csrf-token") && !headers.contains("portcullis-session"));
}
