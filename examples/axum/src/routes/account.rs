//! Passwords, the bearer's session, sign-out and sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis::SessionId;
use portcullis::crypto::{EmailRevertToken, OneTimeCode, Password};
use portcullis::model::RequestId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Bearer, Ctx, parse_id};
use crate::routes::passwordless::{EmailCodeRequest, SentBody, VerifyCodeRequest};
use crate::views::{List, SessionView, SignInBody};

/// `POST /auth/password/signup` and `/login`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    /// The account's email.
    pub email: String,
    /// The password (15 to 256 characters when it is the only factor).
    #[schema(format = Password)]
    pub password: String,
}

/// Start a sign-up with a password: a code goes to the address, and
/// `POST /auth/signup/verify` with it makes the account. The same answer whether or not
/// the address has an account (its owner is told someone tried).
#[utoipa::path(post, path = "/auth/password/signup", tag = "password",
    request_body = PasswordRequest, responses((status = 202, body = SentBody)))]
pub async fn signup(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> ApiResult<(StatusCode, Json<SentBody>)> {
    let password = Password::new(body.password);
    let sent = state
        .auth
        .passwords()
        .sign_up(&body.email, &password, &ctx)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

/// Finish a sign-up (password or passkey) with the code emailed for it: the account is
/// made, its address proven, and signed in.
#[utoipa::path(post, path = "/auth/signup/verify", tag = "password",
    request_body = VerifyCodeRequest, responses((status = 201, body = SignInBody)))]
pub async fn signup_verify(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<VerifyCodeRequest>,
) -> ApiResult<(StatusCode, Json<SignInBody>)> {
    let id: RequestId = parse_id(&body.request_id)?;
    let sign_in = state
        .auth
        .sign_ups()
        .confirm(id, &OneTimeCode::new(body.code), &ctx)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SignInBody::from_sign_in(&sign_in)?),
    ))
}

/// Sign in with email and password: tokens or the MFA step.
#[utoipa::path(post, path = "/auth/password/login", tag = "password",
    request_body = PasswordRequest, responses((status = 200, body = SignInBody)))]
pub async fn login(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> ApiResult<Json<SignInBody>> {
    let password = Password::new(body.password);
    let sign_in = state
        .auth
        .passwords()
        .sign_in(&body.email, &password, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// `POST /auth/password/change`.
#[derive(Deserialize, ToSchema)]
pub struct ChangeRequest {
    /// The password now.
    #[schema(format = Password)]
    pub current_password: String,
    /// The new one.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Change the bearer's password; every other session of the account ends.
#[utoipa::path(post, path = "/auth/password/change", tag = "password",
    request_body = ChangeRequest, responses((status = 204)), security(("bearer" = [])))]
pub async fn change(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    bearer: Bearer,
    ApiJson(body): ApiJson<ChangeRequest>,
) -> ApiResult<StatusCode> {
    let (current, new) = (
        Password::new(body.current_password),
        Password::new(body.new_password),
    );
    let claims = &bearer.claims;
    state
        .auth
        .passwords()
        .change(claims.sub, &current, &new, Some(claims.sid), &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a password-reset code. The same answer whether or not the account exists.
#[utoipa::path(post, path = "/auth/password/reset", tag = "password",
    request_body = EmailCodeRequest, responses((status = 200, body = SentBody)))]
pub async fn reset(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<EmailCodeRequest>,
) -> ApiResult<Json<SentBody>> {
    Ok(Json(
        state
            .auth
            .passwords()
            .send_reset(&body.email, &ctx)
            .await?
            .into(),
    ))
}

/// `POST /auth/password/reset/confirm`.
#[derive(Deserialize, ToSchema)]
pub struct ResetConfirmRequest {
    /// The reset request.
    pub request_id: String,
    /// The emailed code.
    pub code: String,
    /// The new password.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Set a new password with the emailed code: signs in (through the MFA step when the
/// account has one; the password changes only once it is passed) and ends every other
/// session.
#[utoipa::path(post, path = "/auth/password/reset/confirm", tag = "password",
    request_body = ResetConfirmRequest, responses((status = 200, body = SignInBody)))]
pub async fn reset_confirm(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<ResetConfirmRequest>,
) -> ApiResult<Json<SignInBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let new = Password::new(body.new_password);
    let sign_in = state
        .auth
        .passwords()
        .reset(id, &OneTimeCode::new(body.code), &new, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// The bearer's session.
#[derive(Serialize, ToSchema)]
pub struct AuthStatusBody {
    /// The user.
    pub user_id: String,
    /// Their email.
    pub email: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// The organization the session runs in.
    pub org_id: Option<String>,
    /// The session.
    pub session_id: String,
    /// How they signed in (RFC 8176: `pwd`, `otp`, `hwk`, `mfa`…).
    pub amr: Vec<String>,
    /// Assurance level: `aal1` or `aal2`.
    pub acr: String,
    /// The access token expires (Unix ms).
    pub expires_at: i64,
    /// The session ends (Unix ms).
    pub session_expires_at: i64,
}

/// Who the bearer is and how they signed in.
#[utoipa::path(get, path = "/auth/status", tag = "sessions",
    responses((status = 200, body = AuthStatusBody)), security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    bearer: Bearer,
) -> ApiResult<Json<AuthStatusBody>> {
    let status = state.auth.tokens().status(&bearer.token).await?;
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

/// End the bearer's session.
#[utoipa::path(post, path = "/auth/logout", tag = "sessions",
    responses((status = 204)), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    bearer: Bearer,
) -> ApiResult<StatusCode> {
    state.auth.sessions().sign_out(&bearer.token, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bearer's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions",
    responses((status = 200, body = List<SessionView>)), security(("bearer" = [])))]
pub async fn sessions(
    State(state): State<AppState>,
    bearer: Bearer,
) -> ApiResult<Json<List<SessionView>>> {
    let claims = &bearer.claims;
    let sessions = state.auth.sessions().list(claims.sub).await?;
    Ok(Json(List::all(
        sessions
            .iter()
            .map(|s| SessionView::new(s, claims.sid))
            .collect(),
    )))
}

/// End one of the bearer's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204)), security(("bearer" = [])))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    bearer: Bearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id: SessionId = parse_id(&id)?;
    state
        .auth
        .sessions()
        .revoke(bearer.claims.sub, id, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/email/change`.
#[derive(Deserialize, ToSchema)]
pub struct EmailChangeRequest {
    /// The new address.
    pub email: String,
}

/// Ask to change the bearer's email address: a code goes to the new address, and nothing
/// changes until it comes back (checklist ACC-01). The same answer whether or not another
/// account has the address (it then gets no code, and confirming fails). Needs a recent
/// sign-in (401 `reauth_required`): a stolen access token alone cannot move the account.
#[utoipa::path(post, path = "/auth/email/change", tag = "account",
    request_body = EmailChangeRequest, responses((status = 200, body = SentBody)),
    security(("bearer" = [])))]
pub async fn email_change(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    bearer: Bearer,
    ApiJson(body): ApiJson<EmailChangeRequest>,
) -> ApiResult<Json<SentBody>> {
    let user = crate::routes::mfa::fresh_user(&state, &bearer).await?;
    let sent = state
        .auth
        .users()
        .request_email_change(user, &body.email, &ctx)
        .await?;
    Ok(Json(sent.into()))
}

/// `POST /auth/email/change/confirm`.
#[derive(Deserialize, ToSchema)]
pub struct EmailChangeConfirm {
    /// From `POST /auth/email/change`.
    pub request_id: String,
    /// The code the new address received.
    pub code: String,
}

/// The account's address after a confirmed or reverted change.
#[derive(Serialize, ToSchema)]
pub struct EmailChanged {
    /// The new address (verified).
    pub email: Option<String>,
}

/// Confirm an email change with the code the new address received: the address becomes
/// the bearer's, verified; every other session of the account ends; the old address gets
/// a link that undoes the change. Every failure is `401 invalid_credentials`.
#[utoipa::path(post, path = "/auth/email/change/confirm", tag = "account",
    request_body = EmailChangeConfirm, responses((status = 200, body = EmailChanged)),
    security(("bearer" = [])))]
pub async fn email_change_confirm(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    bearer: Bearer,
    ApiJson(body): ApiJson<EmailChangeConfirm>,
) -> ApiResult<Json<EmailChanged>> {
    let request_id: RequestId = parse_id(&body.request_id)?;
    let claims = &bearer.claims;
    let user = state
        .auth
        .users()
        .confirm_email_change(
            claims.sub,
            request_id,
            &OneTimeCode::new(body.code),
            Some(claims.sid),
            &ctx,
        )
        .await?;
    Ok(Json(EmailChanged {
        email: user.email.map(|e| e.as_str().to_owned()),
    }))
}

/// `POST /auth/email/change/revert`.
#[derive(Deserialize, ToSchema)]
pub struct EmailRevertRequest {
    /// The token from the link mailed to the old address.
    pub token: String,
}

/// Undo an email change with the token mailed to the old address (no bearer: the old
/// mailbox is the proof). The old address comes back and every session of the account
/// ends. The answer names the address restored. An unknown, used or expired token: `401
/// invalid_credentials`; the old address taken by another account meanwhile: `409
/// conflict`.
#[utoipa::path(post, path = "/auth/email/change/revert", tag = "account",
    request_body = EmailRevertRequest, responses((status = 200, body = EmailChanged)))]
pub async fn email_change_revert(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<EmailRevertRequest>,
) -> ApiResult<Json<EmailChanged>> {
    let users = state.auth.users();
    let id = users
        .revert_email_change(&EmailRevertToken::new(body.token), &ctx)
        .await?;
    let user = users.get(id).await?;
    Ok(Json(EmailChanged {
        email: user.email.map(|e| e.as_str().to_owned()),
    }))
}
