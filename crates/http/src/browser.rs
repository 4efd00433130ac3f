//! Cookie sessions for first-party web apps: a browser mode in which a session's tokens
//! live in cookies the page's scripts cannot read, instead of in the page's storage.
//!
//! A sign-in (or a refresh) sent with `Portcullis-Session: cookie` answers without the
//! tokens in its body; they are set as cookies instead:
//!
//! | cookie | holds | attributes |
//! |---|---|---|
//! | `__Host-portcullis-at` | the access token | `HttpOnly; Secure; SameSite=Lax; Path=/`, for the token's lifetime |
//! | `__Host-portcullis-rt` | the refresh token | `HttpOnly; Secure; SameSite=Strict; Path=/`, for the session's |
//! | `__Host-portcullis-csrf` | the anti-CSRF token | `Secure; SameSite=Strict; Path=/` (readable: the page echoes it) |
//!
//! On plain `http` on loopback (development) the names drop `__Host-` and the cookies drop
//! `Secure`, which browsers refuse there. The body carries `csrf_token` and
//! `session: "cookie"`.
//!
//! A request without `Authorization` is authenticated by the access cookie. When it
//! changes state (any method but `GET`, `HEAD`, `OPTIONS`), it must also come from the
//! installation's own origin (`Origin`, or `Sec-Fetch-Site: same-origin` when a browser
//! sends no `Origin`) and echo the anti-CSRF cookie in `X-CSRF-Token`; otherwise it is
//! refused with 403 `csrf`. Bearer tokens (`Authorization`) stay as they are, for APIs
//! and native apps. `POST /auth/logout` in cookie mode clears the cookies.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use portcullis::Portcullis;

use crate::Response;
use crate::error::{HttpError, HttpResult};

/// The request header that asks for cookie mode: `Portcullis-Session: cookie`.
pub const MODE_HEADER: &str = "portcullis-session";
/// The request header that echoes the anti-CSRF cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The three cookies' names on an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    /// The access token's.
    pub access: &'static str,
    /// The refresh token's.
    pub refresh: &'static str,
    /// The anti-CSRF token's.
    pub csrf: &'static str,
}

/// Whether the installation is served on plain `http` on loopback (development), where
/// browsers refuse `Secure` and `__Host-` cookies.
pub fn insecure_loopback(auth: &Portcullis) -> bool {
    let origin = auth.public_origin();
    origin.scheme() == "http"
        && match origin.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        }
}

/// The cookie names on this installation.
pub fn cookie_names(auth: &Portcullis) -> CookieNames {
    if insecure_loopback(auth) {
        CookieNames {
            access: "portcullis-at",
            refresh: "portcullis-rt",
            csrf: "portcullis-csrf",
        }
    } else {
        CookieNames {
            access: "__Host-portcullis-at",
            refresh: "__Host-portcullis-rt",
            csrf: "__Host-portcullis-csrf",
        }
    }
}

/// The value of cookie `name` in `headers`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `value` for `max_age` seconds (`None` clears the cookie).
pub fn set_cookie(
    auth: &Portcullis,
    name: &str,
    value: Option<(&str, u64)>,
    http_only: bool,
    same_site: &str,
) -> String {
    let secure = if insecure_loopback(auth) {
        ""
    } else {
        "; Secure"
    };
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let (value, age) = value.unwrap_or(("", 0));
    format!("{name}={value}; Path=/{http_only}; SameSite={same_site}; Max-Age={age}{secure}")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request comes from the installation's own origin, or from the
/// organization's login domain it was sent to (`site`, proven), as a browser says it.
fn same_origin(headers: &HeaderMap, auth: &Portcullis, site: Option<&str>) -> bool {
    let own = auth.public_origin().origin().ascii_serialization();
    match headers.get(http::header::ORIGIN).map(HeaderValue::to_str) {
        Some(Ok(origin)) => {
            origin == own || site.is_some_and(|site| origin == format!("https://{site}"))
        }
        Some(Err(_)) => false,
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|site| site == "same-origin"),
    }
}

/// The proven login domain a request was sent to (its `Host`), with its organization:
/// the one other site whose own pages may use cookie sessions. `None` for the public
/// origin's host and every host no organization proved.
pub async fn login_site(
    auth: &Portcullis,
    headers: &HeaderMap,
) -> HttpResult<Option<(portcullis::OrgId, String)>> {
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return Ok(None);
    };
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
        .to_ascii_lowercase();
    if auth.public_origin().host_str() == Some(name.as_str()) {
        return Ok(None);
    }
    Ok(auth.orgs().for_host(&name).await?.map(|org| (org, name)))
}

/// Refuses (403 `csrf`) a state-changing request that cookies authenticate unless it comes
/// from the installation's own origin and echoes the anti-CSRF cookie.
async fn check_csrf(method: &Method, headers: &HeaderMap, auth: &Portcullis) -> HttpResult<()> {
    if !changes_state(method) {
        return Ok(());
    }
    let refused = || {
        HttpError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a cookie-authenticated change must come from this site with X-CSRF-Token",
        )
    };
    if !same_origin(headers, auth, None) {
        let site = login_site(auth, headers).await?.map(|(_, site)| site);
        if !same_origin(headers, auth, site.as_deref()) {
            return Err(refused());
        }
    }
    let names = cookie_names(auth);
    let (Some(cookie), Some(echo)) = (
        cookie(headers, names.csrf),
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    ) else {
        return Err(refused());
    };
    if portcullis::crypto::ct_eq(cookie.as_bytes(), echo.as_bytes()) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The access token a request presents: `Authorization: Bearer`, or else the access
/// cookie (checked against CSRF when the request changes state).
pub async fn access_token<'h>(
    method: &Method,
    headers: &'h HeaderMap,
    auth: &Portcullis,
) -> HttpResult<Option<&'h str>> {
    if let Some(token) = crate::extract::bearer_token(headers)? {
        return Ok(Some(token));
    }
    match cookie(headers, cookie_names(auth).access) {
        Some(token) => {
            check_csrf(method, headers, auth).await?;
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

/// Whether a request presents an access token at all (header or cookie).
pub fn presents_token(headers: &HeaderMap, auth: &Portcullis) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
        || cookie(headers, cookie_names(auth).access).is_some()
}

/// The refresh cookie of a request in cookie mode, checked against CSRF.
pub async fn refresh_cookie<'h>(
    method: &Method,
    headers: &'h HeaderMap,
    auth: &Portcullis,
) -> HttpResult<Option<&'h str>> {
    match cookie(headers, cookie_names(auth).refresh) {
        Some(token) => {
            check_csrf(method, headers, auth).await?;
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

fn wants_cookies(headers: &HeaderMap) -> bool {
    headers
        .get(MODE_HEADER)
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

/// Refuses (403 `csrf`) a request that asks for cookie mode from another site, before it
/// runs: a sign-in from elsewhere must not spend a code or open a session it cannot have.
pub fn check_mode(auth: &Portcullis, headers: &HeaderMap, site: Option<&str>) -> HttpResult<()> {
    if wants_cookies(headers) && !same_origin(headers, auth, site) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "cookie sessions are for this site's own pages",
        ));
    }
    Ok(())
}

/// Turns an API answer into its cookie-mode form when the request asked for it: a body
/// with `token` and `refresh_token` loses them to cookies (and gains `csrf_token`); a
/// sign-out clears the cookies. Other answers pass unchanged.
pub fn finish(
    auth: &Portcullis,
    headers: &HeaderMap,
    path: &str,
    site: Option<&str>,
    response: Response,
) -> Response {
    let names = cookie_names(auth);
    if path == "/auth/logout"
        && response.status.is_success()
        && cookie(headers, names.access).is_some()
    {
        return clear(auth, response);
    }
    if !wants_cookies(headers) || !response.status.is_success() {
        return response;
    }
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return response;
    };
    let (Some(access), Some(refresh)) = (
        body.get("token")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        body.get("refresh_token")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    ) else {
        return response;
    };
    // Cookies are set for the site's own pages only: a sign-in sent from elsewhere (login
    // CSRF) gets none. (Another site cannot send the mode header without CORS letting it.)
    if !same_origin(headers, auth, site) {
        return HttpError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "cookie sessions are for this site's own pages",
        )
        .into_response();
    }
    let Ok(csrf) = portcullis::crypto::random_token() else {
        return HttpError::from(portcullis::Error::Internal("randomness")).into_response();
    };
    let access_age = body
        .get("expires_in")
        .and_then(|v| v.as_u64())
        .unwrap_or(900);
    let session_age = auth.config().ttl.session.as_secs();
    if let Some(object) = body.as_object_mut() {
        object.remove("token");
        object.remove("refresh_token");
        object.insert("csrf_token".into(), csrf.as_str().into());
        object.insert("session".into(), "cookie".into());
    }
    let mut sealed = Response::json(response.status, &body);
    for (name, value) in &response.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            sealed.headers.append(name, value.clone());
        }
    }
    let cookies = [
        set_cookie(auth, names.access, Some((&access, access_age)), true, "Lax"),
        set_cookie(
            auth,
            names.refresh,
            Some((&refresh, session_age)),
            true,
            "Strict",
        ),
        set_cookie(
            auth,
            names.csrf,
            Some((csrf.as_str(), session_age)),
            false,
            "Strict",
        ),
    ];
    append_cookies(sealed, &cookies)
}

/// The same answer with the three cookies cleared.
pub fn clear(auth: &Portcullis, response: Response) -> Response {
    let names = cookie_names(auth);
    let cookies = [
        set_cookie(auth, names.access, None, true, "Lax"),
        set_cookie(auth, names.refresh, None, true, "Strict"),
        set_cookie(auth, names.csrf, None, false, "Strict"),
    ];
    append_cookies(response, &cookies)
}

fn append_cookies(mut response: Response, cookies: &[String]) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers.append(SET_COOKIE, value);
        }
    }
    response
}
