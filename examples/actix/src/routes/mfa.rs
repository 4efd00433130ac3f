//! The MFA step, TOTP enrolment, backup codes and the bearer's authenticators.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{Bytes, Data, Json, Path};
use base64::Engine as _;
use portcullis::crypto::{BackupCode, MfaToken, OneTimeCode};
use portcullis::mfa::TotpEnrollment;
use portcullis::model::{FactorId, RequestId};
use portcullis::{AuthenticatorId, MfaMethod, MfaProof, UserId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthenticatedLive, Ctx, MaybeAuthenticated, parse_id};
use crate::views::{BackupCodesBody, List, SignInBody, credential_from_text, credential_text};

/// One of the bearer's factors.
#[derive(Debug, Serialize)]
pub struct AuthenticatorView {
    /// A UUID (TOTP), a base64url credential id (passkey), `backup_codes` or `phone`.
    pub id: String,
    /// `totp`, `passkey`, `backup_codes` or `phone`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A passkey's name, or the phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `active` or `pending` (TOTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Added (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Backup codes left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<usize>,
}

impl AuthenticatorView {
    fn of(id: String, kind: &'static str) -> Self {
        AuthenticatorView {
            id,
            kind,
            name: None,
            status: None,
            created_at: None,
            remaining: None,
        }
    }
}

/// The bearer's factors: TOTP, passkeys, backup codes, phone.
pub async fn authenticators(
    state: Data<AppState>,
    bearer: AuthenticatedLive,
) -> ApiResult<Json<List<AuthenticatorView>>> {
    let all = state.auth.mfa().authenticators(bearer.claims.sub).await?;
    let mut items = Vec::new();
    for totp in &all.totp {
        let status = serde_json::to_value(totp.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        items.push(AuthenticatorView {
            status,
            created_at: Some(totp.created_at.unix_millis()),
            ..AuthenticatorView::of(totp.id.to_string(), "totp")
        });
    }
    for passkey in &all.passkeys {
        items.push(AuthenticatorView {
            name: Some(passkey.name.clone()),
            created_at: Some(passkey.created_at.unix_millis()),
            ..AuthenticatorView::of(credential_text(&passkey.id), "passkey")
        });
    }
    if all.backup_codes_remaining > 0 {
        items.push(AuthenticatorView {
            remaining: Some(all.backup_codes_remaining),
            ..AuthenticatorView::of("backup_codes".into(), "backup_codes")
        });
    }
    if let Some(phone) = &all.phone {
        items.push(AuthenticatorView {
            name: Some(phone.as_str().to_owned()),
            ..AuthenticatorView::of("phone".into(), "phone")
        });
    }
    Ok(Json(List::all(items)))
}

/// The bearer's user, if they signed in recently enough to change their factors
/// (`mfa.fresh_sign_in`; 401 `reauth_required` otherwise): a stolen access token alone
/// must not enrol a factor, read a pending secret or mint backup codes.
async fn recently_signed_in(state: &AppState, bearer: &AuthenticatedLive) -> ApiResult<UserId> {
    let window = state.auth.config().mfa.fresh_sign_in;
    let session = state
        .auth
        .sessions()
        .require_recent(bearer.claims.sid, window)
        .await?;
    Ok(session.user_id)
}

/// `POST /mfa/totp/enroll`: empty with a bearer, or the enrolment `mfa_token` of a
/// sign-in that must enrol first. No `Debug`: it holds a token.
#[derive(Default, Deserialize)]
pub struct EnrollRequest {
    /// The `mfa_token` of a sign-in that answered `mfa_enrollment_required`.
    pub mfa_token: Option<String>,
}

/// A pending TOTP enrolment, shown once. No `Debug`: it holds the secret.
#[derive(Serialize)]
pub struct EnrollmentBody {
    /// The factor being enrolled.
    pub factor_id: String,
    /// The secret, base32.
    pub secret: String,
    /// `otpauth://totp/…`.
    pub otpauth_uri: String,
    /// The QR code, a base64 PNG.
    pub qr_png_base64: String,
}

impl From<TotpEnrollment> for EnrollmentBody {
    fn from(e: TotpEnrollment) -> Self {
        EnrollmentBody {
            factor_id: e.factor_id.to_string(),
            secret: e.secret_base32.to_string(),
            otpauth_uri: e.otpauth_uri.to_string(),
            qr_png_base64: base64::engine::general_purpose::STANDARD.encode(&e.qr_png),
        }
    }
}

/// Starts a TOTP enrolment, pending until confirmed. The body is optional, so it is read
/// as bytes (no `Content-Type` needed when empty).
pub async fn totp_enroll(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    MaybeAuthenticated(bearer): MaybeAuthenticated,
    body: Bytes,
) -> ApiResult<Json<EnrollmentBody>> {
    let body: EnrollRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EnrollRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::unparsable("malformed JSON body", &e.to_string()))?
    };
    let enrollment = match (body.mfa_token, bearer) {
        (Some(token), _) => {
            state
                .auth
                .mfa()
                .enroll_totp_for_sign_in(&MfaToken::new(token), &ctx)
                .await?
        }
        (None, Some(bearer)) => {
            let user = recently_signed_in(&state, &bearer).await?;
            state.auth.mfa().totp().enroll(user, &ctx).await?
        }
        (None, None) => {
            return Err(ApiError::unauthorized(
                "sign in, or send the enrolment mfa_token",
            ));
        }
    };
    Ok(Json(enrollment.into()))
}

/// The pending enrolment's QR code, `image/png`.
pub async fn totp_qr(state: Data<AppState>, bearer: AuthenticatedLive) -> ApiResult<HttpResponse> {
    let user = recently_signed_in(&state, &bearer).await?;
    let png = state.auth.mfa().totp().pending_qr(user).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/png"))
        .body(png))
}

/// `POST /mfa/totp/confirm`.
#[derive(Deserialize)]
pub struct ConfirmRequest {
    /// The app's current code.
    pub code: String,
    /// During a sign-in that must enrol: its `mfa_token`.
    pub mfa_token: Option<String>,
}

/// Backup codes, and the sign-in when the enrolment finished one. No `Debug`.
#[derive(Serialize)]
pub struct ConfirmedBody {
    /// Ten single-use backup codes, shown once.
    pub backup_codes: Vec<String>,
    /// With an enrolment `mfa_token`: the sign-in.
    #[serde(flatten)]
    pub sign_in: Option<SignInBody>,
}

/// Activates TOTP with a first code; answers 10 backup codes.
pub async fn totp_confirm(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    MaybeAuthenticated(bearer): MaybeAuthenticated,
    Json(body): Json<ConfirmRequest>,
) -> ApiResult<Json<ConfirmedBody>> {
    let code = OneTimeCode::new(body.code);
    let mfa = state.auth.mfa();
    let (codes, sign_in) = match (body.mfa_token, bearer) {
        (Some(token), _) => {
            let (codes, sign_in) = mfa
                .confirm_totp_for_sign_in(&MfaToken::new(token), &code, &ctx)
                .await?;
            (codes, Some(SignInBody::new(&sign_in)?))
        }
        (None, Some(bearer)) => {
            let user = recently_signed_in(&state, &bearer).await?;
            (mfa.totp().confirm(user, &code, &ctx).await?, None)
        }
        (None, None) => {
            return Err(ApiError::unauthorized(
                "sign in, or send the enrolment mfa_token",
            ));
        }
    };
    Ok(Json(ConfirmedBody {
        backup_codes: BackupCodesBody::new(&codes).backup_codes,
        sign_in,
    }))
}

/// `POST /mfa/challenge`.
#[derive(Deserialize)]
pub struct ChallengeRequest {
    /// The sign-in's `mfa_token`.
    pub mfa_token: String,
    /// `totp` (default), `backup_code`, `sms` or `email`; the last two send a code.
    pub method: Option<String>,
}

/// What a challenge did.
#[derive(Debug, Serialize)]
pub struct ChallengeBody {
    /// The method.
    pub method: &'static str,
    /// For `sms` and `email`: the sent code's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds the sent code lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

fn mfa_method(name: &str) -> ApiResult<MfaMethod> {
    match name {
        "totp" => Ok(MfaMethod::Totp),
        "backup_code" => Ok(MfaMethod::BackupCode),
        "sms" => Ok(MfaMethod::Sms),
        "email" => Ok(MfaMethod::Email),
        _ => Err(ApiError::invalid(
            "method must be totp, backup_code, sms or email",
        )),
    }
}

/// Starts the MFA step with a method; for SMS and email factors, sends the code.
pub async fn challenge(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<ChallengeRequest>,
) -> ApiResult<Json<ChallengeBody>> {
    let method = mfa_method(body.method.as_deref().unwrap_or("totp"))?;
    let sent = state
        .auth
        .mfa()
        .challenge(&MfaToken::new(body.mfa_token), method, &ctx)
        .await?;
    Ok(Json(ChallengeBody {
        method: method.as_str(),
        request_id: sent.as_ref().map(|s| s.request_id.to_string()),
        expires_in: sent.map(|s| s.expires_in.as_secs()),
    }))
}

/// `POST /mfa/verify`.
#[derive(Deserialize)]
pub struct VerifyRequest {
    /// The sign-in's `mfa_token`.
    pub mfa_token: String,
    /// A TOTP code, or a code an SMS or email challenge sent (with `request_id`).
    pub code: Option<String>,
    /// A backup code.
    pub backup_code: Option<String>,
    /// With a sent code: its request.
    pub request_id: Option<String>,
    /// With a sent code: `sms` (default) or `email`.
    pub method: Option<String>,
}

/// Finishes the sign-in with the second factor: tokens.
pub async fn verify(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<VerifyRequest>,
) -> ApiResult<Json<SignInBody>> {
    let proof = match (body.backup_code, body.code, body.request_id) {
        (Some(backup), None, _) => MfaProof::BackupCode(BackupCode::new(backup)),
        (None, Some(code), None) => MfaProof::Totp(OneTimeCode::new(code)),
        (None, Some(code), Some(request)) => {
            let request: RequestId = parse_id(&request)?;
            match mfa_method(body.method.as_deref().unwrap_or("sms"))? {
                MfaMethod::Sms => MfaProof::Sms(request, OneTimeCode::new(code)),
                MfaMethod::Email => MfaProof::Email(request, OneTimeCode::new(code)),
                _ => {
                    return Err(ApiError::invalid(
                        "a request_id goes with method sms or email",
                    ));
                }
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "send exactly one of code and backup_code",
            ));
        }
    };
    let sign_in = state
        .auth
        .mfa()
        .verify(&MfaToken::new(body.mfa_token), &proof, &ctx)
        .await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// New backup codes for the bearer (a recent sign-in needed); the old ones die.
pub async fn backup_codes(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
) -> ApiResult<Json<BackupCodesBody>> {
    let user = recently_signed_in(&state, &bearer).await?;
    let codes = state
        .auth
        .mfa()
        .backup_codes()
        .regenerate(user, &ctx)
        .await?;
    Ok(Json(BackupCodesBody::new(&codes)))
}

/// Removes a TOTP authenticator (its UUID) or a passkey (its credential id). The engine
/// asks for a recent sign-in and keeps the last factor an organization requires.
pub async fn remove(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    bearer: AuthenticatedLive,
    id: Path<String>,
) -> ApiResult<HttpResponse> {
    let which = match id.parse::<FactorId>() {
        Ok(factor) => AuthenticatorId::Totp(factor),
        Err(_) => AuthenticatorId::Passkey(credential_from_text(&id)?),
    };
    state
        .auth
        .mfa()
        .remove(bearer.claims.sid, &which, &ctx)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
