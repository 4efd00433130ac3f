//! Passwords, the bearer's session, sign-out and sessions.

use http::StatusCode;
use portcullis::{Portcullis, RequestContext};

use portcullis::SessionId;
use portcullis::crypto::{EmailRevertToken, OneTimeCode, Password};
use portcullis::model::RequestId;
use serde::{Deserialize, Serialize};

use crate::error::HttpResult;
use crate::extract::{Bearer, Json, Path, parse_id};
use crate::routes::passwordless::{EmailCodeRequest, SentBody, VerifyCodeRequest};
use crate::views::{List, SessionView, SignInBody};

/// `POST /auth/password/signup` and `/login`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordRequest {
    /// The account's email.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: String,
    /// The password (15 to 256 characters when it is the only factor).
    #[cfg_attr(feature = "openapi", schema(format = Password, min_length = 15, max_length = 128))]
    pub password: String,
}

/// Start a sign-up with a password: a code goes to the address, and
/// `POST /auth/signup/verify` with it makes the account. The same answer whether or not
/// the address has an account (its owner is told someone tried).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/signup", tag = "password",
    request_body = PasswordRequest, responses((status = 202, body = SentBody))))]
pub async fn signup(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<PasswordRequest>,
) -> HttpResult<(StatusCode, Json<SentBody>)> {
    let password = Password::new(body.password);
    let sent = auth
        .passwords()
        .sign_up(&body.email, &password, &ctx)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

/// Finish a sign-up (password or passkey) with the code emailed for it: the account is
/// made, its address proven, and signed in.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/signup/verify", tag = "password",
    request_body = VerifyCodeRequest, responses((status = 201, body = SignInBody))))]
pub async fn signup_verify(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<VerifyCodeRequest>,
) -> HttpResult<(StatusCode, Json<SignInBody>)> {
    let id: RequestId = parse_id(&body.request_id)?;
    let sign_in = auth
        .sign_ups()
        .confirm(id, &OneTimeCode::new(body.code), &ctx)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SignInBody::from_sign_in(&sign_in)?),
    ))
}

/// Sign in with email and password: tokens or the MFA step.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/login", tag = "password",
    request_body = PasswordRequest, responses((status = 200, body = SignInBody))))]
pub async fn login(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<PasswordRequest>,
) -> HttpResult<Json<SignInBody>> {
    let password = Password::new(body.password);
    let sign_in = auth
        .passwords()
        .sign_in(&body.email, &password, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// `POST /auth/password/change`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRequest {
    /// The password now.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub current_password: String,
    /// The new one.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub new_password: String,
}

/// Change the bearer's password; every other session of the account ends.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/change", tag = "password",
    request_body = ChangeRequest, responses((status = 204)), security(("bearer" = []))))]
pub async fn change(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Json(body)): (Bearer, Json<ChangeRequest>),
) -> HttpResult<StatusCode> {
    let (current, new) = (
        Password::new(body.current_password),
        Password::new(body.new_password),
    );
    let claims = &bearer.claims;
    auth.passwords()
        .change(claims.sub, &current, &new, Some(claims.sid), &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a password-reset code. The same answer whether or not the account exists.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/reset", tag = "password",
    request_body = EmailCodeRequest, responses((status = 200, body = SentBody))))]
pub async fn reset(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<EmailCodeRequest>,
) -> HttpResult<Json<SentBody>> {
    Ok(Json(
        auth.passwords().send_reset(&body.email, &ctx).await?.into(),
    ))
}

/// `POST /auth/password/reset/confirm`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetConfirmRequest {
    /// The reset request.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: String,
    /// The emailed code.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: String,
    /// The new password.
    #[cfg_attr(feature = "openapi", schema(format = Password))]
    pub new_password: String,
}

/// Set a new password with the emailed code: signs in (through the MFA step when the
/// account has one; the password changes only once it is passed) and ends every other
/// session.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/reset/confirm", tag = "password",
    request_body = ResetConfirmRequest, responses((status = 200, body = SignInBody))))]
pub async fn reset_confirm(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ResetConfirmRequest>,
) -> HttpResult<Json<SignInBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let new = Password::new(body.new_password);
    let sign_in = auth
        .passwords()
        .reset(id, &OneTimeCode::new(body.code), &new, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// The bearer's session.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Role names held in the session's organization.
    pub roles: Vec<String>,
    /// Permissions held there (wildcards as granted); empty when the token had to leave
    /// them out (then ask the management routes, which check the roles now).
    pub permissions: Vec<String>,
}

/// Who the bearer is and how they signed in.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/status", tag = "sessions",
    responses((status = 200, body = AuthStatusBody)), security(("bearer" = []))))]
pub async fn status(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<AuthStatusBody>> {
    // The bearer's session was read as the bearer was checked: not read again.
    let session_expires_at = match bearer.session_expires_at {
        Some(end) => end,
        None => {
            auth.tokens()
                .status(&bearer.token)
                .await?
                .session_expires_at
        }
    };
    let claims = bearer.claims;
    let user = auth.users().get(claims.sub).await?;
    Ok(Json(AuthStatusBody {
        user_id: claims.sub.to_string(),
        email: user.email.map(|e| e.as_str().to_owned()),
        phone: user.phone.map(|p| p.as_str().to_owned()),
        org_id: claims.org.map(|o| o.to_string()),
        session_id: claims.sid.to_string(),
        expires_at: claims.expires_at().unix_millis(),
        session_expires_at: session_expires_at.unix_millis(),
        amr: claims.amr,
        acr: claims.acr,
        roles: claims.roles,
        permissions: claims.perms.iter().map(|p| p.as_str().to_owned()).collect(),
    }))
}

/// End the bearer's session.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/logout", tag = "sessions",
    responses((status = 204)), security(("bearer" = []))))]
pub async fn logout(
    auth: &Portcullis,
    ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<StatusCode> {
    auth.sessions().sign_out(&bearer.token, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bearer's live sessions.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/sessions", tag = "sessions",
    responses((status = 200, body = List<SessionView>)), security(("bearer" = []))))]
pub async fn sessions(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<List<SessionView>>> {
    let claims = &bearer.claims;
    let sessions = auth.sessions().list(claims.sub).await?;
    Ok(Json(List::all(
        sessions
            .iter()
            .map(|s| SessionView::new(s, claims.sid))
            .collect(),
    )))
}

/// End one of the bearer's sessions.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "session id", format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn revoke_session(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Path(id)): (Bearer, Path<String>),
) -> HttpResult<StatusCode> {
    let id: SessionId = parse_id(&id)?;
    auth.sessions().revoke(bearer.claims.sub, id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/email/change`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailChangeRequest {
    /// The new address.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: String,
}

/// Ask to change the bearer's email address: a code goes to the new address, and nothing
/// changes until it comes back (checklist ACC-01). The same answer whether or not another
/// account has the address (it then gets no code, and confirming fails). Needs a recent
/// sign-in (401 `reauth_required`): a stolen access token alone cannot move the account.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/email/change", tag = "account",
    request_body = EmailChangeRequest, responses((status = 200, body = SentBody)),
    security(("bearer" = []))))]
pub async fn email_change(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Json(body)): (Bearer, Json<EmailChangeRequest>),
) -> HttpResult<Json<SentBody>> {
    let user = crate::routes::mfa::fresh_user(auth, &bearer).await?;
    let sent = auth
        .users()
        .request_email_change(user, &body.email, &ctx)
        .await?;
    Ok(Json(sent.into()))
}

/// `POST /auth/email/change/confirm`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailChangeConfirm {
    /// From `POST /auth/email/change`.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: String,
    /// The code the new address received.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: String,
}

/// The account's address after a confirmed or reverted change.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailChanged {
    /// The new address (verified).
    pub email: Option<String>,
}

/// Confirm an email change with the code the new address received: the address becomes
/// the bearer's, verified; every other session of the account ends; the old address gets
/// a link that undoes the change. Every failure is `401 invalid_credentials`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/email/change/confirm", tag = "account",
    request_body = EmailChangeConfirm, responses((status = 200, body = EmailChanged)),
    security(("bearer" = []))))]
pub async fn email_change_confirm(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Json(body)): (Bearer, Json<EmailChangeConfirm>),
) -> HttpResult<Json<EmailChanged>> {
    let request_id: RequestId = parse_id(&body.request_id)?;
    let claims = &bearer.claims;
    let user = auth
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
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailRevertRequest {
    /// The token from the link mailed to the old address.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token: String,
}

/// Undo an email change with the token mailed to the old address (no bearer: the old
/// mailbox is the proof). The old address comes back and every session of the account
/// ends. The answer names the address restored. An unknown, used or expired token: `401
/// invalid_credentials`; the old address taken by another account meanwhile: `409
/// conflict`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/email/change/revert", tag = "account",
    request_body = EmailRevertRequest, responses((status = 200, body = EmailChanged))))]
pub async fn email_change_revert(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<EmailRevertRequest>,
) -> HttpResult<Json<EmailChanged>> {
    let users = auth.users();
    let id = users
        .revert_email_change(&EmailRevertToken::new(body.token), &ctx)
        .await?;
    let user = users.get(id).await?;
    Ok(Json(EmailChanged {
        email: user.email.map(|e| e.as_str().to_owned()),
    }))
}
