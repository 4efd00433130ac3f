//! The OpenAPI document of the REST API (feature `openapi`), generated from the handlers'
//! descriptions, with the paths under the prefix the API is mounted at.

use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::table::RoutesDoc;

/// The document, with every path under `prefix` (`/api/v1`).
pub fn document(prefix: &str) -> OpenApi {
    let mut doc = RoutesDoc::openapi();
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    describe(&mut doc);
    doc
}

/// The document as pretty JSON.
pub fn json(prefix: &str) -> String {
    document(prefix)
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
/// The document's title, security scheme and the error responses every route shares.
fn describe(doc: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
    doc.info.title = "portcullis REST API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "The REST surface of portcullis (SSOJet-shaped). Errors answer \
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
