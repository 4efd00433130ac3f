//! Passwords, the bearer's session, signing out and sessions.

use actix_web::HttpResponse;
use actix_web::web::{Data, Json, Path};
use portcullis::SessionId;
use portcullis::crypto::{OneTimeCode, Password};
use portcullis::model::RequestId;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{AuthenticatedLive, Ctx, parse_id};
use crate::routes::passwordless::{CodeRequest, EmailRequest, SentBody};
use crate::views::{List, SessionView, SignInBody};

/// `POST /auth/password/signup` and `/login`. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct PasswordRequest {
    /// The account's email.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Starts a sign-up with a password: 202 with the request its emailed code finishes
/// (`POST /auth/signup/verify`); the same answer whether or not the address has an account.
pub async fn signup(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<PasswordRequest>,
) -> ApiResult<HttpResponse> {
    let password = Password::new(body.password);
    let sent = state
        .auth
        .passwords()
        .sign_up(&body.email, &password, &ctx)
        .await?;
    Ok(HttpResponse::Accepted().json(SentBody::from(sent)))
}

/// Finishes a sign-up (password or passkey) with its emailed code: 201 with the new
/// account's sign-in.
pub async fn signup_verify(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<CodeRequest>,
) -> ApiResult<HttpResponse> {
    let id: RequestId = parse_id(&body.request_id)?;
    let sign_in = state
        .auth
        .sign_ups()
        .confirm(id, &OneTimeCode::new(body.code), &ctx)
        .await?;
    Ok(HttpResponse::Created().json(SignInBody::new(&sign_in)?))
}

/// Signs in with email and password: tokens or the MFA step.
pub async fn login(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<PasswordRequest>,
) -> ApiResult<Json<SignInBody>> {
    let password = Password::new(body.password);
    let sign_in = state
        .auth
        .passwords()
        .sign_in(&body.email, &password, &ctx)
        .await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// `POST /auth/password/change`.
#[derive(Deserialize)]
pub struct ChangeRequest {
    /// The password now.
    pub current_password: String,
    /// The new one.
    pub new_password: String,
}

/// Changes the bearer's password; the account's other sessions end.
pub async fn change(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
    Json(body): Json<ChangeRequest>,
) -> ApiResult<HttpResponse> {
    let current = Password::new(body.current_password);
    let new = Password::new(body.new_password);
    let claims = &bearer.claims;
    state
        .auth
        .passwords()
        .change(claims.sub, &current, &new, Some(claims.sid), &ctx)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Emails a reset code; the same answer whether or not the account exists.
pub async fn reset(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<EmailRequest>,
) -> ApiResult<Json<SentBody>> {
    let sent = state.auth.passwords().send_reset(&body.email, &ctx).await?;
    Ok(Json(sent.into()))
}

/// `POST /auth/password/reset/confirm`.
#[derive(Deserialize)]
pub struct ResetConfirmRequest {
    /// The reset request.
    pub request_id: String,
    /// The emailed code.
    pub code: String,
    /// The new password.
    pub new_password: String,
}

/// Sets a new password with the emailed code and signs in (through the MFA step when the
/// account has one); the account's other sessions end.
pub async fn reset_confirm(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<ResetConfirmRequest>,
) -> ApiResult<Json<SignInBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let code = OneTimeCode::new(body.code);
    let new = Password::new(body.new_password);
    let sign_in = state.auth.passwords().reset(id, &code, &new, &ctx).await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// `GET /auth/status`.
#[derive(Debug, Serialize)]
pub struct AuthStatusBody {
    /// The user.
    pub user_id: String,
    /// Their email.
    pub email: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// The session's organization.
    pub org_id: Option<String>,
    /// The session.
    pub session_id: String,
    /// How they signed in (RFC 8176).
    pub amr: Vec<String>,
    /// `aal1` or `aal2`.
    pub acr: String,
    /// The access token expires (Unix ms).
    pub expires_at: i64,
    /// The session ends (Unix ms).
    pub session_expires_at: i64,
}

/// Who the bearer is and how they signed in.
pub async fn status(
    state: Data<AppState>,
    bearer: AuthenticatedLive,
) -> ApiResult<Json<AuthStatusBody>> {
    let status = state.auth.tokens().status(bearer.token()).await?;
    let user = state.auth.users().get(status.user_id).await?;
    Ok(Json(AuthStatusBody {
        user_id: status.user_id.to_string(),
        email: user.email.map(|e| e.as_str().to_owned()),
        phone: user.phone.map(|p| p.as_str().to_owned()),
        org_id: status.org_id.map(|o| o.to_string()),
        session_id: status.session_id.to_string(),
        amr: status.amr,
        acr: status.acr,
        expires_at: status.expires_at.unix_millis(),
        session_expires_at: status.session_expires_at.unix_millis(),
    }))
}

/// Ends the bearer's session.
pub async fn logout(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
) -> ApiResult<HttpResponse> {
    state.auth.sessions().sign_out(bearer.token(), &ctx).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The bearer's live sessions.
pub async fn sessions(
    state: Data<AppState>,
    bearer: AuthenticatedLive,
) -> ApiResult<Json<List<SessionView>>> {
    let claims = &bearer.claims;
    let sessions = state.auth.sessions().list(claims.sub).await?;
    let items = sessions
        .iter()
        .map(|s| SessionView::new(s, claims.sid))
        .collect();
    Ok(Json(List::all(items)))
}

/// Ends one of the bearer's sessions.
pub async fn revoke_session(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let id: SessionId = parse_id(&id)?;
    state
        .auth
        .sessions()
        .revoke(bearer.claims.sub, id, &ctx)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
