//! The route table: every route's method, path and handler, for a framework crate to
//! mount. Paths are relative to wherever the API is mounted (`/api/v1` in the examples),
//! with `{name}` parameters as axum and actix-web both write them.

use std::future::Future;
use std::pin::Pin;

use http::Method;

use crate::routes::{
    account, admin, apps, directory as d, mfa, passkeys, passwordless as pl, protection, sso,
    tokens,
};
use crate::{Api, Call, Response};

/// A route's handler, type-erased: takes the API and the request, always answers (a
/// refusal is a JSON error [`Response`]).
pub type Handler = fn(Api, Call) -> Pin<Box<dyn Future<Output = Response> + Send>>;

/// One route.
#[derive(Clone)]
pub struct Route {
    /// The method (a framework answers `HEAD` for every `GET`).
    pub method: Method,
    /// The path, relative to the API's mount point: `/organizations/{id}`.
    pub path: &'static str,
    /// The handler.
    pub handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Runs one typed handler: the request's context first, then its inputs in order, then
/// the handler; the first refusal answers.
macro_rules! route {
    ($method:ident $path:literal => $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            handler: |api: Api, call: Call| {
                Box::pin(async move {
                    let mut site = None;
                    let answer: crate::HttpResult<Response> = async {
                        let ctx = call.context(&api).await?;
                        site = ctx.site.clone();
                        crate::browser::check_mode(&api.auth, &call.headers, site.as_deref())?;
                        let input = input(&call, &api).await?;
                        let reply = $handler(&api.auth, ctx, input).await?;
                        Ok(crate::Reply::into_response(reply))
                    }
                    .await;
                    let response = answer.unwrap_or_else(crate::HttpError::into_response);
                    let response = crate::browser::finish(
                        &api.auth,
                        &call.headers,
                        $path,
                        site.as_deref(),
                        response,
                    );
                    crate::cors::decorate(&api, &call.headers, response)
                })
            },
        }
    };
}

/// A handler's input, read from the call (a function, so that its type is inferred from
/// the handler's parameter).
async fn input<T: crate::FromCall>(call: &Call, api: &Api) -> crate::HttpResult<T> {
    T::from_call(call, api).await
}

macro_rules! table {
    ($(#[$doc:meta])* $name:ident { $($method:ident $path:literal => $handler:path;)* }) => {
        $(#[$doc])*
        pub fn $name() -> Vec<Route> {
            vec![$(route!($method $path => $handler)),*]
        }
    };
    ($(#[$doc:meta])* $name:ident documented by $openapi:ident {
        $($method:ident $path:literal => $handler:path;)*
    }) => {
        table!($(#[$doc])* $name { $($method $path => $handler;)* });

        /// The OpenAPI description of the same routes, from each handler's `utoipa::path`.
        #[cfg(feature = "openapi")]
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),*))]
        pub(crate) struct $openapi;
    };
}

/// Every route of the REST API, relative to where it is mounted (`/api/v1`), and an
/// `OPTIONS` for each path: the CORS preflight ([`cors`](crate::cors)).
pub fn routes() -> Vec<Route> {
    let mut routes = api_routes();
    let mut paths: Vec<&'static str> = routes.iter().map(|r| r.path).collect();
    paths.sort_unstable();
    paths.dedup();
    routes.extend(paths.into_iter().map(|path| Route {
        method: Method::OPTIONS,
        path,
        handler: preflight,
    }));
    routes
}

fn preflight(api: Api, call: Call) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(async move { crate::cors::preflight(&api, &call) })
}

table! {
    /// The REST API's own routes (without the preflights).
    api_routes documented by RoutesDoc {
        POST "/auth/passwordless/magic-link" => pl::magic_link;
        POST "/auth/passwordless/magic-link/resend" => pl::magic_link_resend;
        GET "/auth/passwordless/magic-link/verify" => pl::magic_link_peek;
        POST "/auth/passwordless/magic-link/verify" => pl::magic_link_verify;
        GET "/auth/passwordless/magic-link/status" => pl::magic_link_status;
        POST "/auth/passwordless/email-code" => pl::email_code;
        POST "/auth/passwordless/email-code/resend" => pl::email_code_resend;
        POST "/auth/passwordless/email-code/verify" => pl::email_code_verify;
        POST "/auth/passwordless/sms-code" => pl::sms_code;
        POST "/auth/passwordless/sms-code/resend" => pl::sms_code_resend;
        POST "/auth/passwordless/sms-code/verify" => pl::sms_code_verify;
        GET "/auth/passwordless/passkey/register" => passkeys::register_begin;
        POST "/auth/passwordless/passkey/register" => passkeys::register_finish;
        GET "/auth/passwordless/passkey/login" => passkeys::login_begin;
        POST "/auth/passwordless/passkey/login" => passkeys::login_finish;
        GET "/auth/passwordless/passkey/status" => passkeys::status;
        GET "/auth/passkeys" => passkeys::list;
        PATCH "/auth/passkeys/{id}" => passkeys::rename;
        DELETE "/auth/passkeys/{id}" => passkeys::delete;
        POST "/auth/password/signup" => account::signup;
        POST "/auth/signup/verify" => account::signup_verify;
        POST "/auth/password/login" => account::login;
        POST "/auth/password/change" => account::change;
        POST "/auth/password/reset" => account::reset;
        POST "/auth/password/reset/confirm" => account::reset_confirm;
        POST "/auth/password/change-required" => protection::change_required;
        POST "/auth/unblock" => protection::unblock;
        GET "/protection/challenge" => protection::challenge;
        GET "/protection/blocks" => protection::blocks;
        DELETE "/protection/blocks/{id}" => protection::lift;
        GET "/auth/status" => account::status;
        POST "/auth/logout" => account::logout;
        GET "/auth/sessions" => account::sessions;
        DELETE "/auth/sessions/{id}" => account::revoke_session;
        POST "/auth/email/change" => account::email_change;
        POST "/auth/email/change/confirm" => account::email_change_confirm;
        POST "/auth/email/change/revert" => account::email_change_revert;
        POST "/token/refresh" => tokens::refresh;
        POST "/token" => tokens::token;
        POST "/signing-keys/rotate" => tokens::rotate_signing_key;
        GET "/mfa/authenticators" => mfa::authenticators;
        DELETE "/mfa/authenticators/{id}" => mfa::remove;
        POST "/mfa/totp/enroll" => mfa::totp_enroll;
        GET "/mfa/totp/qr.png" => mfa::totp_qr;
        POST "/mfa/totp/confirm" => mfa::totp_confirm;
        POST "/mfa/challenge" => mfa::challenge;
        POST "/mfa/verify" => mfa::verify;
        POST "/mfa/backup-codes" => mfa::backup_codes;
        POST "/organizations" => d::create_org;
        GET "/organizations" => d::list_orgs;
        GET "/organizations/{id}" => d::get_org;
        PATCH "/organizations/{id}" => d::update_org;
        DELETE "/organizations/{id}" => d::delete_org;
        GET "/organizations/by-client-id/{client_id}/config" => d::config_by_client_id;
        GET "/organizations/by-domain/{domain}/config" => d::config_by_domain;
        GET "/organizations/{id}/roles" => d::list_roles;
        POST "/organizations/{id}/roles" => d::create_role;
        PATCH "/organizations/{id}/roles/{role_id}" => d::update_role;
        DELETE "/organizations/{id}/roles/{role_id}" => d::delete_role;
        GET "/organizations/{id}/permissions" => d::list_permissions;
        POST "/organizations/{id}/permissions" => d::create_permission;
        PATCH "/organizations/{id}/permissions/{perm_id}" => d::update_permission;
        DELETE "/organizations/{id}/permissions/{perm_id}" => d::delete_permission;
        GET "/users" => d::list_users;
        POST "/users" => d::create_user;
        GET "/users/{id}" => d::get_user;
        PATCH "/users/{id}" => d::update_user;
        DELETE "/users/{id}" => d::delete_user;
        GET "/users/by-email/{email}" => d::get_user_by_email;
        GET "/users/{id}/status" => d::user_status;
        POST "/users/{id}/email/confirm" => d::confirm_user_email;
        PUT "/users/{id}/organizations/{org_id}/roles" => d::set_roles;
        POST "/organizations/{id}/invitations" => d::invite;
        POST "/invitations/accept" => d::accept_invitation;
        GET "/users/{id}/organizations" => d::user_orgs;
        GET "/users/{id}/login-logs" => d::login_logs;
        GET "/sso/{connection_id}/authorize" => sso::authorize;
        GET "/sso/callback" => sso::callback;
        GET "/sso/discover" => sso::discover;
        GET "/sso/{connection_id}/saml/metadata" => sso::saml_metadata;
        POST "/sso/{connection_id}/saml/acs" => sso::saml_acs;
        POST "/sso/saml/confirm" => sso::saml_confirm;
        GET "/social/google/authorize" => sso::google_authorize;
        GET "/social/google/callback" => sso::google_callback;
        GET "/organizations/{id}/sso-connections" => sso::list_connections;
        POST "/organizations/{id}/sso-connections" => sso::create_connection;
        GET "/organizations/{id}/sso-connections/{connection_id}" => sso::get_connection;
        PATCH "/organizations/{id}/sso-connections/{connection_id}" => sso::update_connection;
        DELETE "/organizations/{id}/sso-connections/{connection_id}" => sso::delete_connection;
        GET "/organizations/{id}/domains" => sso::list_domains;
        POST "/organizations/{id}/domains" => sso::claim_domain;
        POST "/organizations/{id}/domains/{domain}/verify" => sso::verify_domain;
        POST "/organizations/{id}/sso-connections/{connection_id}/test" => sso::test_connection;
        POST "/organizations/{id}/setup-links" => sso::create_setup_link;
        DELETE "/organizations/{id}/setup-links" => sso::revoke_setup_links;
        POST "/setup/session" => sso::open_setup;
        GET "/setup/session" => sso::setup_session;
        POST "/auth/sso/{connection_id}/link" => sso::link;
        GET "/organizations/{id}/apps" => apps::list;
        POST "/organizations/{id}/apps" => apps::create;
        GET "/apps/{client_id}" => apps::get;
        PATCH "/apps/{client_id}" => apps::update;
        DELETE "/apps/{client_id}" => apps::delete;
        POST "/apps/{client_id}/secret" => apps::rotate_secret;
        GET "/auth/consents" => apps::consents;
        DELETE "/auth/consents/{client_id}" => apps::revoke_consent;
        GET "/organizations/{id}/api-keys" => admin::list_api_keys;
        POST "/organizations/{id}/api-keys" => admin::create_api_key;
        DELETE "/organizations/{id}/api-keys/{key_id}" => admin::revoke_api_key;
        GET "/organizations/{id}/members" => admin::list_members;
        DELETE "/organizations/{id}/members/{user_id}" => admin::remove_member;
        GET "/organizations/{id}/members/{user_id}" => admin::get_member;
        PUT "/organizations/{id}/members/{user_id}/blocked" => admin::block_member;
        GET "/users/{id}/sessions" => admin::user_sessions;
        DELETE "/users/{id}/sessions" => admin::revoke_user_sessions;
        DELETE "/users/{id}/sessions/{session_id}" => admin::revoke_user_session;
        GET "/organizations/{id}/login-logs" => admin::org_logs;
        GET "/organizations/{id}/login-logs/export" => admin::export_logs;
        GET "/login-logs" => admin::all_logs;
        GET "/organizations/{id}/templates" => admin::templates;
        PUT "/organizations/{id}/templates/{kind}" => admin::set_template;
        DELETE "/organizations/{id}/templates/{kind}" => admin::remove_template;
        POST "/organizations/{id}/templates/{kind}/preview" => admin::preview_template;
    }
}

table! {
    /// The JWKS alone.
    jwks_route {
        GET "/.well-known/jwks.json" => tokens::jwks;
    }
}

/// The routes served at the site's root: `/.well-known/jwks.json`, and the OpenID
/// provider's (`/.well-known/openid-configuration`, `/oauth2/*`; see
/// [`routes::provider`](crate::routes::provider)).
pub fn well_known() -> Vec<Route> {
    let mut routes = jwks_route();
    routes.extend(crate::routes::provider::routes());
    routes
}
