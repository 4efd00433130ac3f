//! The REST API under `/api/v1`, registered with its OpenAPI description.

use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub mod account;
pub mod directory;
pub mod mfa;
pub mod passkeys;
pub mod passwordless;
pub mod tokens;

/// Every API route, and the OpenAPI document describing them (paths under `/api/v1`).
pub fn api() -> (axum::Router<AppState>, OpenApi) {
    use directory as d;
    let router = OpenApiRouter::<AppState>::new()
        .routes(routes!(passwordless::magic_link))
        .routes(routes!(passwordless::magic_link_resend))
        .routes(routes!(
            passwordless::magic_link_peek,
            passwordless::magic_link_verify
        ))
        .routes(routes!(passwordless::magic_link_status))
        .routes(routes!(passwordless::email_code))
        .routes(routes!(passwordless::email_code_resend))
        .routes(routes!(passwordless::email_code_verify))
        .routes(routes!(passwordless::sms_code))
        .routes(routes!(passwordless::sms_code_resend))
        .routes(routes!(passwordless::sms_code_verify))
        .routes(routes!(passkeys::register_begin, passkeys::register_finish))
        .routes(routes!(passkeys::login_begin, passkeys::login_finish))
        .routes(routes!(passkeys::status))
        .routes(routes!(passkeys::list))
        .routes(routes!(passkeys::rename, passkeys::delete))
        .routes(routes!(account::signup))
        .routes(routes!(account::signup_verify))
        .routes(routes!(account::login))
        .routes(routes!(account::change))
        .routes(routes!(account::reset))
        .routes(routes!(account::reset_confirm))
        .routes(routes!(account::status))
        .routes(routes!(account::logout))
        .routes(routes!(account::sessions))
        .routes(routes!(account::revoke_session))
        .routes(routes!(account::email_change))
        .routes(routes!(account::email_change_confirm))
        .routes(routes!(account::email_change_revert))
        .routes(routes!(tokens::refresh))
        .routes(routes!(tokens::token))
        .routes(routes!(mfa::authenticators))
        .routes(routes!(mfa::remove))
        .routes(routes!(mfa::totp_enroll))
        .routes(routes!(mfa::totp_qr))
        .routes(routes!(mfa::totp_confirm))
        .routes(routes!(mfa::challenge))
        .routes(routes!(mfa::verify))
        .routes(routes!(mfa::backup_codes))
        .routes(routes!(d::create_org, d::list_orgs))
        .routes(routes!(d::get_org, d::update_org, d::delete_org))
        .routes(routes!(d::config_by_client_id))
        .routes(routes!(d::config_by_domain))
        .routes(routes!(d::list_roles, d::create_role))
        .routes(routes!(d::update_role, d::delete_role))
        .routes(routes!(d::list_permissions, d::create_permission))
        .routes(routes!(d::update_permission, d::delete_permission))
        .routes(routes!(d::list_users, d::create_user))
        .routes(routes!(d::get_user, d::update_user, d::delete_user))
        .routes(routes!(d::get_user_by_email))
        .routes(routes!(d::user_status))
        .routes(routes!(d::confirm_user_email))
        .routes(routes!(d::set_roles))
        .routes(routes!(d::invite))
        .routes(routes!(d::accept_invitation))
        .routes(routes!(d::user_orgs))
        .routes(routes!(d::login_logs));
    let (router, mut doc) = OpenApiRouter::<AppState>::new()
        .nest("/api/v1", router)
        .split_for_parts();
    describe(&mut doc);
    (router, doc)
}

/// The document's title, security scheme and the error responses every route shares.
fn describe(doc: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
    doc.info.title = "portcullis example API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "The REST surface of portcullis's axum example (SSOJet-shaped). Errors answer \
         {\"error\": {\"code\", \"message\"}}; 429 carries Retry-After."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()).into(),
    );
    {
        use crate::error::ErrorBody;
        use utoipa::{PartialSchema, ToSchema};
        let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
        ErrorBody::schemas(&mut schemas);
        components.schemas.extend(schemas);
    }
    let error = ResponseBuilder::new()
        .description("an error: {\"error\": {\"code\", \"message\"}}")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build(),
        )
        .build();
    // Operation ids come from handler names, which repeat across modules (`status`,
    // `delete`…): OpenAPI wants them unique, so a repeated one gets its tag in front.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for op in operations(&mut doc.paths) {
        if let Some(id) = &op.operation_id {
            *seen.entry(id.clone()).or_default() += 1;
        }
    }
    for op in operations(&mut doc.paths) {
        let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
        if let (Some(id), Some(tag)) = (&op.operation_id, tag)
            && seen.get(id).is_some_and(|n| *n > 1)
        {
            op.operation_id = Some(format!("{tag}_{id}"));
        }
        for (status, response) in op.responses.responses.iter_mut() {
            if let RefOr::T(response) = response
                && response.description.is_empty()
            {
                response.description = match status.as_str() {
                    "200" => "OK",
                    "201" => "Created",
                    "202" => "Accepted",
                    "204" => "No Content",
                    _ => "Answer",
                }
                .into();
            }
        }
        for status in ["4XX", "5XX"] {
            op.responses
                .responses
                .entry(status.into())
                .or_insert_with(|| RefOr::T(error.clone()));
        }
    }
}

/// Every operation of the document.
fn operations(
    paths: &mut utoipa::openapi::Paths,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}
