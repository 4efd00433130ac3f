//! Cross-origin calls from pages on other sites (the login widget, a single-page app on
//! its own domain): allowed for the installation's explicit list of origins only.
//!
//! An origin is a scheme, host and port (`https://shop.example`, `http://localhost:5173`),
//! matched exactly: no wildcard, no prefix or suffix matching, never `null`. A listed
//! origin gets `Access-Control-Allow-Origin: <origin>` with `Vary: Origin`, never `*` and
//! never credentials: such pages hold bearer tokens, and cookie sessions
//! ([`browser`](crate::browser)) stay with the site's own pages (their headers are not
//! allowed across origins). A preflight from any other origin is refused (403 `cors`).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::HttpError;
use crate::{Api, Call, Response};

/// The request headers a listed origin may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, x-client-id, x-bot-proof";

/// Checks and normalizes an allowed origin: `http` or `https`, a host, an optional port,
/// nothing else (`http` only on loopback). Refuses wildcards, paths, `null`.
pub fn parse_origin(text: &str) -> Result<String, portcullis::Error> {
    let bad = |why: &str| portcullis::Error::Config(format!("allowed origin {text:?}: {why}"));
    if text.contains('*') {
        return Err(bad("wildcards are not allowed: list each origin"));
    }
    let url = url::Url::parse(text.trim()).map_err(|_| bad("not a URL"))?;
    let path_ok = url.path() == "/" && !text.trim().trim_end_matches('/').ends_with("/.");
    if !path_ok || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("an origin is a scheme, host and port only"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost" || host.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("https (http only on loopback)")),
    }
    Ok(url.origin().ascii_serialization())
}

/// The request's `Origin`, if it is one of the allowed.
fn allowed<'h>(api: &Api, headers: &'h HeaderMap) -> Option<&'h str> {
    let origin = headers.get(ORIGIN)?.to_str().ok()?;
    api.allowed_origins
        .iter()
        .any(|allowed| allowed == origin)
        .then_some(origin)
}

/// An answer with the CORS headers of a listed origin (and `Vary: Origin` always, so no
/// cache hands one origin's answer to another).
pub fn decorate(api: &Api, headers: &HeaderMap, mut response: Response) -> Response {
    if api.allowed_origins.is_empty() {
        return response;
    }
    response
        .headers
        .append(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed(api, headers).and_then(|o| HeaderValue::from_str(o).ok()) {
        response.headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after, www-authenticate, next-cursor"),
        );
    }
    response
}

/// The answer to a preflight (`OPTIONS`): allowed for a listed origin, 403 `cors` for any
/// other.
pub fn preflight(api: &Api, call: &Call) -> Response {
    let Some(origin) = allowed(api, &call.headers).and_then(|o| HeaderValue::from_str(o).ok())
    else {
        let refused = HttpError::new(
            StatusCode::FORBIDDEN,
            "cors",
            "this origin may not call the API from a browser",
        )
        .into_response();
        return decorate(api, &call.headers, refused);
    };
    let mut response = Response::empty(StatusCode::NO_CONTENT);
    let headers = &mut response.headers;
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.append(VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adm12_origins_are_exact_and_https_off_loopback() {
        for (given, normal) in [
            ("https://shop.example", "https://shop.example"),
            ("https://shop.example/", "https://shop.example"),
            ("https://Shop.Example:8443", "https://shop.example:8443"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("http://shop.localhost:3000", "http://shop.localhost:3000"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ] {
            assert_eq!(parse_origin(given).unwrap(), normal, "{given}");
        }
        for bad in [
            "https://*.example",
            "*",
            "null",
            "http://shop.example",
            "https://shop.example/path",
            "https://shop.example?x=1",
            "https://user@shop.example",
            "ftp://shop.example",
            "shop.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
