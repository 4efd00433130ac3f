//! [`RequirePermission`]: middleware that lets a request through only when its bearer
//! holds a permission.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::ResponseError;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use portcullis::Portcullis;
use portcullis::tokens::Claims;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Extracting, state, verify};

/// Wrap a resource or scope with it: `web::resource("/invoices").wrap(RequirePermission(
/// "invoices:read"))`. The bearer is verified with its session (as
/// [`AuthenticatedLive`](crate::AuthenticatedLive)); a request without a usable token is
/// refused with 401 (`WWW-Authenticate: Bearer`), one whose user lacks the permission with
/// 403 `forbidden`. The handler behind it can take [`Authenticated`](crate::Authenticated)
/// or [`AuthenticatedLive`](crate::AuthenticatedLive) at no further cost: the verified
/// claims are kept in the request.
///
/// A permission is granted by the token's own `perms` (a held `invoices:*` grants
/// `invoices:read`). When the user held too many for the token (`perms_omitted`), the
/// organization's roles are asked instead.
#[derive(Debug, Clone, Copy)]
pub struct RequirePermission(pub &'static str);

/// Whether `claims` grant `permission`: from the token, or from the store when the token
/// had to leave its permissions out. Permissions exist only within an organization: a
/// token without one holds none.
pub async fn holds(auth: &Portcullis, claims: &Claims, permission: &str) -> ApiResult<bool> {
    match claims.org {
        Some(org) if claims.perms_omitted => {
            Ok(auth.rbac().check(claims.sub, org, permission).await?)
        }
        Some(_) => Ok(claims.has_permission(permission)),
        None => Ok(false),
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequirePermission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = PermissionMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PermissionMiddleware {
            service: Rc::new(service),
            permission: self.0,
        }))
    }
}

/// The service [`RequirePermission`] wraps around a resource.
pub struct PermissionMiddleware<S> {
    service: Rc<S>,
    permission: &'static str,
}

impl<S, B> Service<ServiceRequest> for PermissionMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let checking = authorize(req.request().clone(), self.permission);
        Box::pin(async move {
            match checking.await {
                Ok(()) => Ok(service.call(req).await?.map_into_left_body()),
                Err(refused) => {
                    let response = refused.error_response();
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

fn authorize(req: actix_web::HttpRequest, permission: &'static str) -> Extracting<()> {
    Box::pin(async move {
        let verified = verify(&req, true).await?;
        let state = state(&req)?;
        if !holds(&state.auth, &verified.claims, permission).await? {
            return Err(ApiError::forbidden());
        }
        // `verify` left the claims in the request's extensions, for the handler.
        Ok(())
    })
}
