//! The OpenID provider's endpoints, served at the issuer's root ([`portcullis::provider`]):
//! discovery, `/oauth2/authorize` with its browser cookie, login hand-over, consent and
//! logout pages, and the back-channel endpoints in the RFCs' shapes (form-encoded
//! requests, `{"error", "error_description"}` bodies, `WWW-Authenticate` on 401), never the
//! API's JSON errors.
//!
//! ## The browser cookie
//!
//! `/oauth2/authorize` knows the browser by one cookie, set by `POST /oauth2/interaction`
//! when the login page hands over the session it signed in with: `__Host-portcullis-op`
//! (`Path=/`, no `Domain`: host-only), `HttpOnly`, `Secure`, `SameSite=Lax`. An installation
//! served on plain `http` on loopback (development) gets `portcullis-op` without `Secure`
//! (browsers refuse `__Host-` cookies that are not `Secure`). The forms it could carry
//! (consent, logout) post a CSRF token derived from it; the hand-over itself takes the
//! access token as a bearer and a JSON body, which no cross-site form can send.

use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, LOCATION, ORIGIN, PRAGMA, SET_COOKIE, WWW_AUTHENTICATE,
};
use http::{Method, StatusCode};
use portcullis::Portcullis;
use portcullis::crypto::{AccessToken, ProviderCookie};
use portcullis::escape_html as escape;
use portcullis::provider::{Authorization, Logout, OAuthError};

use crate::{Api, Call, Response, Route};

/// The routes served at the issuer's root.
pub fn routes() -> Vec<Route> {
    macro_rules! raw {
        ($method:ident $path:literal => $handler:ident) => {
            Route {
                method: Method::$method,
                path: $path,
                handler: |api: Api, call: Call| Box::pin(async move { $handler(&api, call).await }),
            }
        };
    }
    vec![
        raw!(GET "/.well-known/openid-configuration" => discovery),
        raw!(GET "/.well-known/oauth-authorization-server" => discovery),
        raw!(GET "/oauth2/authorize" => authorize),
        raw!(GET "/oauth2/authorize/resume" => resume),
        raw!(GET "/oauth2/interaction" => interaction),
        raw!(POST "/oauth2/interaction" => establish),
        raw!(POST "/oauth2/consent" => consent),
        raw!(POST "/oauth2/token" => token),
        raw!(GET "/oauth2/userinfo" => userinfo),
        raw!(POST "/oauth2/userinfo" => userinfo),
        raw!(POST "/oauth2/revoke" => revoke),
        raw!(POST "/oauth2/introspect" => introspect),
        raw!(GET "/oauth2/logout" => logout),
        raw!(POST "/oauth2/logout" => confirm_logout),
    ]
}

/// The provider pages' policy: nothing loads but their own inline style, nothing frames
/// them.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The cookie's name on this installation.
pub fn cookie_name(auth: &Portcullis) -> &'static str {
    if crate::browser::insecure_loopback(auth) {
        "portcullis-op"
    } else {
        "__Host-portcullis-op"
    }
}

fn cookie(api: &Api, call: &Call) -> Option<ProviderCookie> {
    crate::browser::cookie(&call.headers, cookie_name(&api.auth)).map(ProviderCookie::new)
}

fn set_cookie(api: &Api, value: Option<&ProviderCookie>) -> String {
    let name = cookie_name(&api.auth);
    let secure = if crate::browser::insecure_loopback(&api.auth) {
        ""
    } else {
        "; Secure"
    };
    match value {
        Some(value) => format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            value.secret()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

fn no_store(response: Response) -> Response {
    response
        .header(CACHE_CONTROL, "no-store")
        .header(PRAGMA, "no-cache")
}

fn oauth_error(err: OAuthError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = no_store(Response::json(status, &err.body()));
    if let Some(challenge) = &err.challenge {
        response = response.header(WWW_AUTHENTICATE, challenge);
    }
    response
}

fn see_other(location: &str) -> Response {
    no_store(Response::empty(StatusCode::SEE_OTHER).header(LOCATION, location))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;\
         margin:4rem auto;padding:0 1rem;color:#1d2433}}button{{font:inherit;padding:.5rem 1rem;\
         margin-right:.5rem}}li{{margin:.25rem 0}}</style></head><body><h1>{title}</h1>{body}\
         </body></html>",
        title = escape(title)
    );
    no_store(
        Response::bytes(status, "text/html; charset=utf-8", html.into_bytes())
            .header(CONTENT_SECURITY_POLICY, PAGE_CSP)
            .header(http::header::X_FRAME_OPTIONS, "DENY")
            .header(http::header::REFERRER_POLICY, "no-referrer"),
    )
}

fn error_page(error: &str, description: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in cannot continue",
        &format!(
            "<p>{}</p><p><code>{}</code></p>",
            escape(description),
            escape(error)
        ),
    )
}

fn engine_error_page(err: portcullis::Error) -> Response {
    let status = crate::HttpError::from(err).status();
    page(
        status,
        "This sign-in cannot continue",
        "<p>Something went wrong. Go back to the app and try again.</p>",
    )
}

/// What an authorization step answers in the browser.
fn answer(api: &Api, outcome: Result<Authorization, portcullis::Error>) -> Response {
    match outcome {
        Ok(Authorization::Redirect(location)) => see_other(&location),
        Ok(Authorization::Login(interaction)) => {
            let login = api.login_page.as_str();
            let separator = if login.contains('?') { '&' } else { '?' };
            let query = serde_urlencoded::to_string([("interaction", interaction.id.as_str())])
                .unwrap_or_default();
            see_other(&format!("{login}{separator}{query}"))
        }
        Ok(Authorization::Consent(prompt)) => {
            let scopes: String = prompt
                .scopes
                .iter()
                .map(|(scope, what)| {
                    format!(
                        "<li>{} <small>({})</small></li>",
                        escape(what),
                        escape(scope)
                    )
                })
                .collect();
            let body = format!(
                "<p><strong>{name}</strong> asks to:</p><ul>{scopes}</ul>\
                 <form method=\"post\" action=\"/oauth2/consent\">\
                 <input type=\"hidden\" name=\"interaction\" value=\"{interaction}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button name=\"decision\" value=\"allow\" id=\"allow\">Allow</button>\
                 <button name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
                name = escape(&prompt.client_name),
                interaction = escape(&prompt.interaction),
                csrf = escape(&prompt.csrf),
            );
            page(StatusCode::OK, "Allow access?", &body)
        }
        Ok(Authorization::Refused { error, description }) => error_page(error, &description),
        Ok(_) => error_page("server_error", "unexpected answer"),
        Err(err) => engine_error_page(err),
    }
}

async fn discovery(api: &Api, _call: Call) -> Response {
    match api.auth.provider().discovery().await {
        Ok(doc) => Response::json(StatusCode::OK, &doc)
            .header(ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(CACHE_CONTROL, "public, max-age=300"),
        Err(err) => oauth_error(err.into()),
    }
}

async fn authorize(api: &Api, call: Call) -> Response {
    let cookie = cookie(api, &call);
    let outcome = api
        .auth
        .provider()
        .authorize(&call.query, cookie.as_ref())
        .await;
    answer(api, outcome)
}

fn query_value(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn resume(api: &Api, call: Call) -> Response {
    let cookie = cookie(api, &call);
    let id = query_value(&call.query, "interaction").unwrap_or_default();
    let outcome = api.auth.provider().resume(&id, cookie.as_ref()).await;
    answer(api, outcome)
}

/// `GET /oauth2/interaction?interaction=`: what the login page shows (JSON).
async fn interaction(api: &Api, call: Call) -> Response {
    let id = query_value(&call.query, "interaction").unwrap_or_default();
    match api.auth.provider().interaction(&id).await {
        Ok(found) => no_store(Response::json(
            StatusCode::OK,
            &serde_json::json!({
                "client_id": found.client_id.as_str(),
                "client_name": found.client_name,
                "org_id": found.org_id.to_string(),
                "login_hint": found.login_hint,
                "fresh_sign_in": found.fresh_sign_in,
            }),
        )),
        Err(err) => crate::HttpError::from(err).into_response(),
    }
}

/// `POST /oauth2/interaction` `{"interaction"}` with the login page's bearer access token:
/// sets the browser cookie and answers `{"redirect_to"}` (where the page sends the
/// browser next).
async fn establish(api: &Api, call: Call) -> Response {
    let json = call
        .header(CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/json"));
    let own_origin = call.header(ORIGIN).is_none_or(|origin| {
        origin.trim_end_matches('/') == api.auth.public_origin().as_str().trim_end_matches('/')
    });
    if !json || !own_origin {
        return crate::HttpError::forbidden().into_response();
    }
    let token = match crate::browser::access_token(&call.method, &call.headers, &api.auth).await {
        Ok(Some(token)) => AccessToken::new(token),
        Ok(None) => return crate::HttpError::unauthorized("sign in first").into_response(),
        Err(err) => return err.into_response(),
    };
    #[derive(serde::Deserialize)]
    struct Body {
        interaction: String,
    }
    let Ok(body) = serde_json::from_slice::<Body>(&call.body) else {
        return crate::HttpError::invalid("interaction is missing").into_response();
    };
    match api
        .auth
        .provider()
        .establish(&body.interaction, &token)
        .await
    {
        Ok(cookie) => {
            let query = serde_urlencoded::to_string([("interaction", body.interaction.as_str())])
                .unwrap_or_default();
            no_store(Response::json(
                StatusCode::OK,
                &serde_json::json!({ "redirect_to": format!("/oauth2/authorize/resume?{query}") }),
            ))
            .header(SET_COOKIE, set_cookie(api, Some(&cookie)))
        }
        Err(err) => crate::HttpError::from(err).into_response(),
    }
}

fn form_value(call: &Call, name: &str) -> Option<String> {
    query_value(std::str::from_utf8(&call.body).ok()?, name)
}

fn is_form(call: &Call) -> bool {
    call.header(CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
}

/// `POST /oauth2/consent` (form: `interaction`, `csrf`, `decision=allow|deny`).
async fn consent(api: &Api, call: Call) -> Response {
    if !is_form(&call) {
        return page(StatusCode::FORBIDDEN, "Refused", "<p>Not a form.</p>");
    }
    let cookie = cookie(api, &call);
    let id = form_value(&call, "interaction").unwrap_or_default();
    let csrf = form_value(&call, "csrf").unwrap_or_default();
    let allow = form_value(&call, "decision").as_deref() == Some("allow");
    let outcome = api
        .auth
        .provider()
        .consent(&id, cookie.as_ref(), &csrf, allow)
        .await;
    match outcome {
        Err(portcullis::Error::Forbidden) => page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form did not come from this browser's sign-in.</p>",
        ),
        other => answer(api, other),
    }
}

/// A back-channel request: a `POST` with a form body.
fn form_body(call: &Call) -> Result<&str, OAuthError> {
    if !is_form(call) {
        return Err(OAuthError {
            error: "invalid_request",
            description: "the body must be application/x-www-form-urlencoded".into(),
            status: 400,
            challenge: None,
        });
    }
    std::str::from_utf8(&call.body).map_err(|_| OAuthError {
        error: "invalid_request",
        description: "the body is not UTF-8".into(),
        status: 400,
        challenge: None,
    })
}

async fn token(api: &Api, call: Call) -> Response {
    let form = match form_body(&call) {
        Ok(form) => form,
        Err(err) => return oauth_error(err),
    };
    let ctx = call.client_context(api);
    match api
        .auth
        .provider()
        .token(form, call.header(AUTHORIZATION), &ctx)
        .await
    {
        Ok(body) => no_store(Response::json(StatusCode::OK, &body)),
        Err(err) => oauth_error(err),
    }
}

async fn userinfo(api: &Api, call: Call) -> Response {
    let header = call
        .header(AUTHORIZATION)
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let in_body = if call.method == Method::POST && is_form(&call) {
        form_value(&call, "access_token")
    } else {
        None
    };
    let token = match (header, in_body) {
        (Some(_), Some(_)) => {
            return oauth_error(OAuthError {
                error: "invalid_request",
                description: "send the access token once".into(),
                status: 400,
                challenge: Some("Bearer error=\"invalid_request\"".into()),
            });
        }
        (Some(token), None) | (None, Some(token)) => token,
        (None, None) => {
            return oauth_error(OAuthError {
                error: "invalid_token",
                description: "an access token is needed".into(),
                status: 401,
                challenge: Some("Bearer".into()),
            });
        }
    };
    match api.auth.provider().userinfo(&AccessToken::new(token)).await {
        Ok(claims) => no_store(Response::json(StatusCode::OK, &claims)),
        Err(err) => oauth_error(err),
    }
}

async fn revoke(api: &Api, call: Call) -> Response {
    let form = match form_body(&call) {
        Ok(form) => form,
        Err(err) => return oauth_error(err),
    };
    let ctx = call.client_context(api);
    match api
        .auth
        .provider()
        .revoke(form, call.header(AUTHORIZATION), &ctx)
        .await
    {
        Ok(()) => no_store(Response::empty(StatusCode::OK)),
        Err(err) => oauth_error(err),
    }
}

async fn introspect(api: &Api, call: Call) -> Response {
    let form = match form_body(&call) {
        Ok(form) => form,
        Err(err) => return oauth_error(err),
    };
    match api
        .auth
        .provider()
        .introspect(form, call.header(AUTHORIZATION))
        .await
    {
        Ok(body) => no_store(Response::json(StatusCode::OK, &body)),
        Err(err) => oauth_error(err),
    }
}

fn logout_answer(api: &Api, outcome: Result<Logout, portcullis::Error>) -> Response {
    let cleared = set_cookie(api, None);
    match outcome {
        Ok(Logout::Redirect(location)) => see_other(&location).header(SET_COOKIE, cleared),
        Ok(Logout::Confirm { csrf }) => page(
            StatusCode::OK,
            "Sign out?",
            &format!(
                "<form method=\"post\" action=\"/oauth2/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button id=\"sign-out\">Sign out</button></form>",
                escape(&csrf)
            ),
        ),
        Ok(Logout::Done) => page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>")
            .header(SET_COOKIE, cleared),
        Ok(Logout::Refused { description }) => error_page("invalid_request", &description),
        Ok(_) => error_page("server_error", "unexpected answer"),
        Err(portcullis::Error::Forbidden) => page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form did not come from this browser.</p>",
        ),
        Err(err) => engine_error_page(err),
    }
}

async fn logout(api: &Api, call: Call) -> Response {
    let ctx = call.client_context(api);
    let cookie = cookie(api, &call);
    let outcome = api
        .auth
        .provider()
        .logout(&call.query, cookie.as_ref(), &ctx)
        .await;
    logout_answer(api, outcome)
}

async fn confirm_logout(api: &Api, call: Call) -> Response {
    if !is_form(&call) {
        return page(StatusCode::FORBIDDEN, "Refused", "<p>Not a form.</p>");
    }
    let ctx = call.client_context(api);
    let cookie = cookie(api, &call);
    let csrf = form_value(&call, "csrf").unwrap_or_default();
    let outcome = api
        .auth
        .provider()
        .confirm_logout(cookie.as_ref(), &csrf, &ctx)
        .await;
    logout_answer(api, outcome)
}
