//! Passkeys: the registration and sign-in ceremonies, and the bearer's own passkeys.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Json, Path, Query};
use portcullis::crypto::CeremonyToken;
use portcullis::flows::passkey::{PublicKeyCredential, RegisterPublicKeyCredential};
use portcullis::model::Email;
use portcullis::{AuthenticatorId, CeremonyStatus, Registrant};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthenticatedLive, Ctx, MaybeAuthenticated};
use crate::routes::passwordless::{SentBody, StatusBody};
use crate::views::{List, PasskeyView, SignInBody, credential_from_text};

/// Who registers or signs in.
#[derive(Deserialize)]
pub struct BeginQuery {
    /// An email (sign-in: or an E.164 phone). Registration without a bearer needs it;
    /// sign-in without it offers discoverable credentials.
    pub identifier: Option<String>,
    /// A new account's display name.
    pub name: Option<String>,
}

/// A ceremony begun.
#[derive(Serialize)]
pub struct CeremonyBody {
    /// Pass it back to finish the ceremony.
    pub auth_code: String,
    /// The WebAuthn options, `{"publicKey": {..}}`, binary fields in base64url.
    pub options: serde_json::Value,
}

fn ceremony(token: &CeremonyToken, options: &impl Serialize) -> ApiResult<Json<CeremonyBody>> {
    let options = serde_json::to_value(options).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not encode the options",
        )
    })?;
    Ok(Json(CeremonyBody {
        auth_code: token.secret().to_owned(),
        options,
    }))
}

/// Begins a registration: a new account by `identifier`, or a passkey for the bearer
/// (who must have signed in recently).
pub async fn register_begin(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    MaybeAuthenticated(bearer): MaybeAuthenticated,
    Query(query): Query<BeginQuery>,
) -> ApiResult<Json<CeremonyBody>> {
    let registrant = match (bearer, query.identifier) {
        (Some(bearer), _) => Registrant::Session(bearer.claims.sid),
        (None, Some(identifier)) => Registrant::NewUser {
            email: Email::parse(&identifier)?,
            name: query.name,
        },
        (None, None) => {
            return Err(ApiError::invalid(
                "identifier (an email) is required without a bearer token",
            ));
        }
    };
    let (token, options) = state
        .auth
        .passkeys()
        .start_registration(registrant, &ctx)
        .await?;
    ceremony(&token, &options)
}

/// Which ceremony to finish.
#[derive(Deserialize)]
pub struct FinishQuery {
    /// The `auth_code` the begin step gave.
    pub auth_code: String,
    /// Accepted and ignored: the ceremony knows whom it is for.
    pub identifier: Option<String>,
}

/// `POST /auth/passwordless/passkey/register`.
#[derive(Deserialize)]
pub struct RegisterRequest {
    /// The browser's `credential.toJSON()`.
    pub passkey: Box<RegisterPublicKeyCredential>,
    /// A name for it.
    pub name: Option<String>,
}

/// A passkey registered; on a sign-up, the request its emailed code finishes.
#[derive(Serialize)]
pub struct RegisteredBody {
    /// The passkey.
    pub passkey: PasskeyView,
    /// A sign-up's request (`request_id`, `expires_in`) for `POST /auth/signup/verify`.
    #[serde(flatten)]
    pub pending: Option<SentBody>,
}

/// Finishes a registration: 201.
pub async fn register_finish(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<FinishQuery>,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let token = CeremonyToken::new(query.auth_code);
    let done = state
        .auth
        .passkeys()
        .finish_registration(&token, &body.passkey, body.name.as_deref(), &ctx)
        .await?;
    // A sign-up is accepted and waits for its code; a signed-in user's passkey is made.
    let mut answer = match done.pending {
        Some(_) => HttpResponse::Accepted(),
        None => HttpResponse::Created(),
    };
    Ok(answer.json(RegisteredBody {
        passkey: PasskeyView::new(&done.passkey),
        pending: done.pending.map(SentBody::from),
    }))
}

/// Begins a passkey sign-in.
pub async fn login_begin(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<BeginQuery>,
) -> ApiResult<Json<CeremonyBody>> {
    let identifier = query.identifier.as_deref().map(str::trim);
    let identifier = identifier.filter(|i| !i.is_empty());
    let (token, options) = state.auth.passkeys().start_login(identifier, &ctx).await?;
    ceremony(&token, &options)
}

/// `POST /auth/passwordless/passkey/login`.
#[derive(Deserialize)]
pub struct LoginRequest {
    /// The browser's `credential.toJSON()`.
    pub passkey: Box<PublicKeyCredential>,
}

/// Finishes a passkey sign-in: tokens or the MFA step.
pub async fn login_finish(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<FinishQuery>,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Json<SignInBody>> {
    let token = CeremonyToken::new(query.auth_code);
    let sign_in = state
        .auth
        .passkeys()
        .finish_login(&token, &body.passkey, &ctx)
        .await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// `GET /auth/passwordless/passkey/status`.
#[derive(Deserialize)]
pub struct CeremonyQuery {
    /// The ceremony's `auth_code`.
    pub auth_code: String,
}

/// Where a ceremony stands.
pub async fn status(
    state: Data<AppState>,
    Query(query): Query<CeremonyQuery>,
) -> ApiResult<Json<StatusBody>> {
    let token = CeremonyToken::new(query.auth_code);
    let status = match state.auth.passkeys().status(&token).await? {
        CeremonyStatus::Pending => "pending",
        CeremonyStatus::Completed => "completed",
        CeremonyStatus::Failed => "failed",
        _ => "expired",
    };
    Ok(Json(StatusBody {
        status,
        sign_in: None,
    }))
}

/// The bearer's passkeys.
pub async fn list(
    state: Data<AppState>,
    bearer: AuthenticatedLive,
) -> ApiResult<Json<List<PasskeyView>>> {
    let passkeys = state.auth.passkeys().list(bearer.claims.sub).await?;
    Ok(Json(List::all(
        passkeys.iter().map(PasskeyView::new).collect(),
    )))
}

/// `PATCH /auth/passkeys/{id}`.
#[derive(Deserialize)]
pub struct RenameRequest {
    /// The new name.
    pub name: String,
}

/// Renames one of the bearer's passkeys.
pub async fn rename(
    state: Data<AppState>,
    bearer: AuthenticatedLive,
    id: Path<String>,
    Json(body): Json<RenameRequest>,
) -> ApiResult<Json<PasskeyView>> {
    let id = credential_from_text(&id)?;
    let user = bearer.claims.sub;
    let passkeys = state.auth.passkeys();
    passkeys.rename(user, &id, &body.name).await?;
    let all = passkeys.list(user).await?;
    let renamed = all
        .iter()
        .find(|p| p.id == id)
        .ok_or(portcullis::Error::NotFound { what: "passkey" })?;
    Ok(Json(PasskeyView::new(renamed)))
}

/// Deletes one of the bearer's passkeys, as removing any authenticator: it needs a recent
/// sign-in (401 `reauth_required`).
pub async fn delete(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let which = AuthenticatorId::Passkey(credential_from_text(&id)?);
    state
        .auth
        .mfa()
        .remove(bearer.claims.sid, &which, &ctx)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
