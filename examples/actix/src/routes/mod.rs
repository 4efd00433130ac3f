//! The routes under `/api/v1`: the authentication routes of `API.md` (the axum example's
//! paths and bodies; management routes are served by the axum example only) and the
//! protected demo resource.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};

use crate::error::{ApiError, allow_list};
use crate::guard::RequirePermission;

pub mod account;
pub mod demo;
pub mod mfa;
pub mod passkeys;
pub mod passwordless;
pub mod tokens;

/// A path with its methods; any other method answers 405 with `Allow`, as JSON.
pub(crate) struct Endpoint {
    resource: Resource,
    methods: Vec<Method>,
}

impl Endpoint {
    pub(crate) fn at(path: &str) -> Self {
        Endpoint {
            resource: web::resource(path),
            methods: Vec::new(),
        }
    }

    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }

    /// GET, and HEAD with the same handler (actix sends no body for HEAD).
    pub(crate) fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler.clone())
            .on(Method::HEAD, handler)
    }

    /// GET and HEAD behind `RequirePermission(permission)`. The guard sits on those
    /// routes, not the resource, so another method still answers 405 first.
    fn get_guarded<F, Args>(mut self, handler: F, permission: &'static str) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        for method in [Method::GET, Method::HEAD] {
            let route = web::method(method.clone())
                .to(handler.clone())
                .wrap(RequirePermission(permission));
            self.resource = self.resource.route(route);
            self.methods.push(method);
        }
        self
    }

    fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    pub(crate) fn done(self) -> Resource {
        let allow = allow_list(&self.methods);
        self.resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) }
        }))
    }
}

/// Registers every route under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use self::{account as a, mfa as m, passkeys as pk, passwordless as pw, tokens as t};
    const ML: &str = "/auth/passwordless/magic-link";
    const EC: &str = "/auth/passwordless/email-code";
    const SC: &str = "/auth/passwordless/sms-code";
    const PK: &str = "/auth/passwordless/passkey";
    let endpoints = [
        Endpoint::at(ML).post(pw::magic_link),
        Endpoint::at(&format!("{ML}/resend")).post(pw::magic_link_resend),
        Endpoint::at(&format!("{ML}/verify"))
            .get(pw::magic_link_peek)
            .post(pw::magic_link_verify),
        Endpoint::at(&format!("{ML}/status")).get(pw::magic_link_status),
        Endpoint::at(EC).post(pw::email_code),
        Endpoint::at(&format!("{EC}/resend")).post(pw::email_code_resend),
        Endpoint::at(&format!("{EC}/verify")).post(pw::email_code_verify),
        Endpoint::at(SC).post(pw::sms_code),
        Endpoint::at(&format!("{SC}/resend")).post(pw::sms_code_resend),
        Endpoint::at(&format!("{SC}/verify")).post(pw::sms_code_verify),
        Endpoint::at(&format!("{PK}/register"))
            .get(pk::register_begin)
            .post(pk::register_finish),
        Endpoint::at(&format!("{PK}/login"))
            .get(pk::login_begin)
            .post(pk::login_finish),
        Endpoint::at(&format!("{PK}/status")).get(pk::status),
        Endpoint::at("/auth/passkeys").get(pk::list),
        Endpoint::at("/auth/passkeys/{id}")
            .on(Method::PATCH, pk::rename)
            .on(Method::DELETE, pk::delete),
        Endpoint::at("/auth/password/signup").post(a::signup),
        Endpoint::at("/auth/signup/verify").post(a::signup_verify),
        Endpoint::at("/auth/password/login").post(a::login),
        Endpoint::at("/auth/password/change").post(a::change),
        Endpoint::at("/auth/password/reset").post(a::reset),
        Endpoint::at("/auth/password/reset/confirm").post(a::reset_confirm),
        Endpoint::at("/auth/status").get(a::status),
        Endpoint::at("/auth/logout").post(a::logout),
        Endpoint::at("/auth/sessions").get(a::sessions),
        Endpoint::at("/auth/sessions/{id}").on(Method::DELETE, a::revoke_session),
        Endpoint::at("/token/refresh").post(t::refresh),
        Endpoint::at("/token").post(t::token),
        Endpoint::at("/mfa/authenticators").get(m::authenticators),
        Endpoint::at("/mfa/authenticators/{id}").on(Method::DELETE, m::remove),
        Endpoint::at("/mfa/totp/enroll").post(m::totp_enroll),
        Endpoint::at("/mfa/totp/qr.png").get(m::totp_qr),
        Endpoint::at("/mfa/totp/confirm").post(m::totp_confirm),
        Endpoint::at("/mfa/challenge").post(m::challenge),
        Endpoint::at("/mfa/verify").post(m::verify),
        Endpoint::at("/mfa/backup-codes").post(m::backup_codes),
    ];
    let mut scope = web::scope("/api/v1");
    for endpoint in endpoints {
        scope = scope.service(endpoint.done());
    }
    let invoices = Endpoint::at("/demo/invoices")
        .get_guarded(demo::invoices, "invoices:read")
        .done();
    cfg.service(scope.service(invoices));
}
