//! # example-actix
//!
//! portcullis in an actix-web app: the REST API of `API.md` mounted from
//! `portcullis-actix` under `/api/v1` with its OpenAPI document, the JWKS, and a protected
//! resource of the app's own (`GET /api/v1/demo/invoices`, for holders of
//! `invoices:read`). `main.rs` reads the environment and serves [`app`]; tests build the
//! same [`app`] around their own engine.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use portcullis_actix::{Api, HttpError, Permitted};

#[path = "../../demo/invoices.rs"]
pub mod invoices;

use invoices::InvoicesRead;

/// The whole application around `api`: give it to `HttpServer::new(move ||
/// app(api.clone()))`, or to `actix_web::test::init_service`.
pub fn app(
    api: Api,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(api.clone()))
        // The app's own routes under the API's prefix come before the API's scope.
        .service(
            web::resource("/api/v1/demo/invoices")
                .wrap(portcullis_actix::api_headers())
                .get(list_invoices),
        )
        .service(portcullis_actix::scope("/api/v1", api.clone()))
        .configure(portcullis_actix::well_known(api))
        .default_service(web::to(|| async {
            portcullis_actix::respond(HttpError::not_found("route").into_response())
        }))
        .wrap(actix_web::middleware::from_fn(
            portcullis_actix::json_errors,
        ))
        .wrap(portcullis_actix::security_headers())
}

/// `GET /api/v1/demo/invoices`: only for a signed-in user holding `invoices:read`.
async fn list_invoices(
    user: Permitted<InvoicesRead>,
) -> web::Json<portcullis_http::views::List<invoices::Invoice>> {
    let _ = user.claims();
    web::Json(invoices::all())
}
