//! Passkeys: registration and sign-in ceremonies, and the bearer's passkeys.

use http::StatusCode;
use portcullis::{Portcullis, RequestContext};

use base64::Engine as _;
use portcullis::crypto::{CeremonyToken, LoginToken, RegistrationToken};
use portcullis::flows::passkey::{PublicKeyCredential, RegisterPublicKeyCredential};
use portcullis::model::{CredentialId, Email};
use portcullis::{CeremonyStatus, Registrant};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Bearer, Json, Path, Query};
use crate::routes::passwordless::{SentBody, StatusBody};
use crate::views::{List, PasskeyView, SignInBody};

/// Who registers or signs in.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct BeginQuery {
    /// An email (or, for sign-in, an E.164 phone). Registration: required without a
    /// bearer (a new account). Sign-in: optional (without it, discoverable credentials).
    #[cfg_attr(
        feature = "openapi",
        param(
            max_length = 254,
            pattern = r"^(|(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}|\+[1-9][0-9]{6,14})$"
        )
    )]
    pub identifier: Option<String>,
    /// Display name of a new account.
    pub name: Option<String>,
}

/// A ceremony begun.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CeremonyBody {
    /// Names the ceremony: pass it back to finish it.
    pub auth_code: String,
    /// The WebAuthn options (`{"publicKey": {...}}`, binary fields base64url): give
    /// `options.publicKey` to `PublicKeyCredential.parseCreationOptionsFromJSON` or
    /// `parseRequestOptionsFromJSON`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: serde_json::Value,
}

fn ceremony_body(token: &str, options: &impl Serialize) -> HttpResult<Json<CeremonyBody>> {
    let options = serde_json::to_value(options).map_err(|_| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not encode options",
        )
    })?;
    Ok(Json(CeremonyBody {
        auth_code: token.to_owned(),
        options,
    }))
}

/// Begin registering a passkey: for a new account (`identifier`), or for the bearer.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passwordless/passkey/register", tag = "passkeys",
    params(BeginQuery), responses((status = 200, body = CeremonyBody)),
    security((), ("bearer" = []))))]
pub async fn register_begin(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Query(query)): (Option<Bearer>, Query<BeginQuery>),
) -> HttpResult<Json<CeremonyBody>> {
    let who = match (bearer, query.identifier) {
        (Some(bearer), _) => Registrant::Session(bearer.claims.sid),
        (None, Some(identifier)) => Registrant::NewUser {
            email: Email::parse(&identifier)?,
            name: query.name,
        },
        (None, None) => {
            return Err(HttpError::invalid(
                "identifier (an email) is required without a bearer token",
            ));
        }
    };
    let (token, options) = auth.passkeys().start_registration(who, &ctx).await?;
    ceremony_body(token.secret(), &options)
}

/// Which ceremony.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct CeremonyQuery {
    /// The `auth_code` the begin step returned.
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 128))]
    pub auth_code: String,
    /// Ignored (the ceremony remembers whom it is for); accepted for SSOJet clients.
    #[cfg_attr(
        feature = "openapi",
        param(
            max_length = 254,
            pattern = r"^(|(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}|\+[1-9][0-9]{6,14})$"
        )
    )]
    pub identifier: Option<String>,
}

/// `POST /auth/passwordless/passkey/register`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// The browser's `credential.toJSON()`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub passkey: Box<RegisterPublicKeyCredential>,
    /// A name for it ("MacBook", "YubiKey").
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
}

/// A passkey registered; on a sign-up, the code emailed to finish it with.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredBody {
    /// The new passkey.
    pub passkey: PasskeyView,
    /// For a sign-up: the request `POST /auth/signup/verify` finishes with the emailed
    /// code (`request_id`, `expires_in`).
    #[serde(flatten)]
    pub pending: Option<SentBody>,
}

/// Finish registering a passkey.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/passkey/register", tag = "passkeys",
    params(CeremonyQuery), request_body = RegisterRequest,
    responses((status = 201, body = RegisteredBody), (status = 202, body = RegisteredBody))))]
pub async fn register_finish(
    auth: &Portcullis,
    ctx: RequestContext,
    (Query(query), Json(body)): (Query<CeremonyQuery>, Json<RegisterRequest>),
) -> HttpResult<(StatusCode, Json<RegisteredBody>)> {
    let token = RegistrationToken::new(query.auth_code);
    let done = auth
        .passkeys()
        .finish_registration(&token, &body.passkey, body.name.as_deref(), &ctx)
        .await?;
    // A sign-up is accepted and waits for its code; a signed-in user's passkey is made.
    let status = match done.pending {
        Some(_) => StatusCode::ACCEPTED,
        None => StatusCode::CREATED,
    };
    Ok((
        status,
        Json(RegisteredBody {
            passkey: PasskeyView::new(&done.passkey),
            pending: done.pending.map(SentBody::from),
        }),
    ))
}

/// Begin signing in with a passkey.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passwordless/passkey/login", tag = "passkeys",
    params(BeginQuery), responses((status = 200, body = CeremonyBody))))]
pub async fn login_begin(
    auth: &Portcullis,
    ctx: RequestContext,
    Query(query): Query<BeginQuery>,
) -> HttpResult<Json<CeremonyBody>> {
    let identifier = query.identifier.as_deref().filter(|i| !i.trim().is_empty());
    let (token, options) = auth.passkeys().start_login(identifier, &ctx).await?;
    ceremony_body(token.secret(), &options)
}

/// `POST /auth/passwordless/passkey/login`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The browser's `credential.toJSON()`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub passkey: Box<PublicKeyCredential>,
}

/// Finish signing in with a passkey: tokens or the MFA step.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/passkey/login", tag = "passkeys",
    params(CeremonyQuery), request_body = LoginRequest,
    responses((status = 200, body = SignInBody))))]
pub async fn login_finish(
    auth: &Portcullis,
    ctx: RequestContext,
    (Query(query), Json(body)): (Query<CeremonyQuery>, Json<LoginRequest>),
) -> HttpResult<Json<SignInBody>> {
    let token = LoginToken::new(query.auth_code);
    let sign_in = auth
        .passkeys()
        .finish_login(&token, &body.passkey, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// Which ceremony.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct StatusQuery {
    /// The ceremony's `auth_code`.
    pub auth_code: String,
}

/// Where a passkey ceremony stands: `pending`, `completed`, `failed` or `expired`.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passwordless/passkey/status", tag = "passkeys",
    params(StatusQuery), responses((status = 200, body = StatusBody))))]
pub async fn status(
    auth: &Portcullis,
    _ctx: RequestContext,
    Query(query): Query<StatusQuery>,
) -> HttpResult<Json<StatusBody>> {
    let status = auth
        .passkeys()
        .status(&CeremonyToken::new(query.auth_code))
        .await?;
    let status = match status {
        CeremonyStatus::Pending => "pending",
        CeremonyStatus::Completed => "completed",
        CeremonyStatus::Failed => "failed",
        _ => "expired",
    };
    Ok(Json(StatusBody {
        status: status.to_owned(),
        sign_in: None,
    }))
}

/// The bearer's passkeys.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passkeys", tag = "passkeys",
    responses((status = 200, body = List<PasskeyView>)), security(("bearer" = []))))]
pub async fn list(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<List<PasskeyView>>> {
    let passkeys = auth.passkeys().list(bearer.claims.sub).await?;
    Ok(Json(List::all(
        passkeys.iter().map(PasskeyView::new).collect(),
    )))
}

/// `PATCH /auth/passkeys/{id}`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameRequest {
    /// The new name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
}

/// A credential id from the path (base64url, as the list shows it).
pub fn credential_id(text: &str) -> HttpResult<CredentialId> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| HttpError::invalid("id must be a base64url credential id"))?;
    Ok(CredentialId::new(bytes)?)
}

/// Rename one of the bearer's passkeys.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "credential id (base64url)", pattern = "^[A-Za-z0-9_-]+$")),
    request_body = RenameRequest, responses((status = 200, body = PasskeyView)),
    security(("bearer" = []))))]
pub async fn rename(
    auth: &Portcullis,
    _ctx: RequestContext,
    (bearer, Path(id), Json(body)): (Bearer, Path<String>, Json<RenameRequest>),
) -> HttpResult<Json<PasskeyView>> {
    let id = credential_id(&id)?;
    let user = bearer.claims.sub;
    auth.passkeys().rename(user, &id, &body.name).await?;
    let passkeys = auth.passkeys().list(user).await?;
    let renamed = passkeys
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| HttpError::not_found("passkey"))?;
    Ok(Json(PasskeyView::new(renamed)))
}

/// Delete one of the bearer's passkeys. Needs a recent sign-in (401 `reauth_required`),
/// as removing any authenticator does.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "credential id (base64url)", pattern = "^[A-Za-z0-9_-]+$")),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn delete(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Path(id)): (Bearer, Path<String>),
) -> HttpResult<StatusCode> {
    let which = portcullis::AuthenticatorId::Passkey(credential_id(&id)?);
    auth.mfa().remove(bearer.claims.sid, &which, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
