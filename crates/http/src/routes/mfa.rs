//! The MFA step, TOTP enrolment, backup codes and the bearer's authenticators.

use crate::Response;
use http::StatusCode;
use portcullis::{Portcullis, RequestContext};

use base64::Engine as _;
use portcullis::crypto::{BackupCode, MfaToken, OneTimeCode};
use portcullis::mfa::TotpEnrollment;
use portcullis::model::{FactorId, RequestId};
use portcullis::{AuthenticatorId, MfaMethod, MfaProof};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Bearer, Json, OptionalJson, Path, parse_id};
use crate::routes::passkeys::credential_id;
use crate::views::{BackupCodesBody, List, SignInBody, passkey_id};

/// One of the bearer's second factors.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthenticatorView {
    /// Its id: a UUID (TOTP), a base64url credential id (passkey), `backup_codes`, `phone`.
    pub id: String,
    /// `totp`, `passkey`, `backup_codes` or `phone`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A passkey's name, or the phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `active` or `pending` (TOTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Added (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Unused backup codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<usize>,
}

/// The bearer's factors: TOTP, backup codes, passkeys, phone.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/mfa/authenticators", tag = "mfa",
    responses((status = 200, body = List<AuthenticatorView>)), security(("bearer" = []))))]
pub async fn authenticators(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<List<AuthenticatorView>>> {
    let all = auth.mfa().authenticators(bearer.claims.sub).await?;
    let mut items = Vec::new();
    for totp in &all.totp {
        let status = serde_json::to_value(totp.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        items.push(AuthenticatorView {
            id: totp.id.to_string(),
            kind: "totp".into(),
            name: None,
            status,
            created_at: Some(totp.created_at.unix_millis()),
            remaining: None,
        });
    }
    for passkey in &all.passkeys {
        items.push(AuthenticatorView {
            id: passkey_id(&passkey.id),
            kind: "passkey".into(),
            name: Some(passkey.name.clone()),
            status: None,
            created_at: Some(passkey.created_at.unix_millis()),
            remaining: None,
        });
    }
    if all.backup_codes_remaining > 0 {
        items.push(AuthenticatorView {
            id: "backup_codes".into(),
            kind: "backup_codes".into(),
            name: None,
            status: None,
            created_at: None,
            remaining: Some(all.backup_codes_remaining),
        });
    }
    if let Some(phone) = &all.phone {
        items.push(AuthenticatorView {
            id: "phone".into(),
            kind: "phone".into(),
            name: Some(phone.as_str().to_owned()),
            status: None,
            created_at: None,
            remaining: None,
        });
    }
    Ok(Json(List::all(items)))
}

/// The bearer's user, if their sign-in is recent enough to change their authenticators
/// (`mfa.fresh_sign_in`; 401 `reauth_required` otherwise): a stolen access token alone
/// must not enrol a factor, read a pending secret or mint backup codes.
pub(crate) async fn fresh_user(
    auth: &Portcullis,
    bearer: &Bearer,
) -> HttpResult<portcullis::UserId> {
    let window = auth.config().mfa.fresh_sign_in;
    let session = auth
        .sessions()
        .require_recent(bearer.claims.sid, window)
        .await?;
    Ok(session.user_id)
}

/// `POST /mfa/totp/enroll`: empty with a bearer, or with the enrolment-only `mfa_token`
/// of a sign-in that must enrol first.
#[derive(Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The `mfa_token` of a sign-in that answered `mfa_enrollment_required`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: Option<String>,
}

/// A pending TOTP enrolment. Shown once; confirm it with a first code.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentBody {
    /// The factor being enrolled.
    pub factor_id: String,
    /// The secret in base32, to type into an app by hand.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as a base64 PNG.
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

/// Start a TOTP enrolment (pending until confirmed).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/mfa/totp/enroll", tag = "mfa",
    request_body(content = EnrollRequest, description = "empty with a bearer"),
    responses((status = 200, body = EnrollmentBody)), security(("bearer" = []), ())))]
pub async fn totp_enroll(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, OptionalJson(body)): (Option<Bearer>, OptionalJson<EnrollRequest>),
) -> HttpResult<Json<EnrollmentBody>> {
    let enrollment = match (body.mfa_token, bearer) {
        (Some(token), _) => {
            auth.mfa()
                .enroll_totp_for_sign_in(&MfaToken::new(token), &ctx)
                .await?
        }
        (None, Some(bearer)) => {
            let user = fresh_user(auth, &bearer).await?;
            auth.mfa().totp().enroll(user, &ctx).await?
        }
        (None, None) => {
            return Err(HttpError::unauthorized(
                "sign in, or send the enrolment mfa_token",
            ));
        }
    };
    Ok(Json(enrollment.into()))
}

/// The bearer's pending enrolment's QR code.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/mfa/totp/qr.png", tag = "mfa",
    responses((status = 200, content_type = "image/png", body = Vec<u8>)), security(("bearer" = []))))]
pub async fn totp_qr(
    auth: &Portcullis,
    _ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Response> {
    let user = fresh_user(auth, &bearer).await?;
    let png = auth.mfa().totp().pending_qr(user).await?;
    Ok(Response::bytes(StatusCode::OK, "image/png", png))
}

/// `POST /mfa/totp/confirm`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmRequest {
    /// The app's current code.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: String,
    /// For an enrolment during sign-in: the enrolment `mfa_token`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: Option<String>,
}

/// Backup codes, with the sign-in when the enrolment finished one.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmedBody {
    /// Ten single-use backup codes: shown once.
    pub backup_codes: Vec<String>,
    /// With an enrolment `mfa_token`: the sign-in it finishes.
    #[serde(flatten)]
    pub sign_in: Option<SignInBody>,
}

/// Activate TOTP with a first code; returns 10 backup codes once.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/mfa/totp/confirm", tag = "mfa",
    request_body = ConfirmRequest, responses((status = 200, body = ConfirmedBody)),
    security(("bearer" = []), ())))]
pub async fn totp_confirm(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Json(body)): (Option<Bearer>, Json<ConfirmRequest>),
) -> HttpResult<Json<ConfirmedBody>> {
    let code = OneTimeCode::new(body.code);
    let (codes, sign_in) = match (body.mfa_token, bearer) {
        (Some(token), _) => {
            let (codes, sign_in) = auth
                .mfa()
                .confirm_totp_for_sign_in(&MfaToken::new(token), &code, &ctx)
                .await?;
            (codes, Some(SignInBody::from_sign_in(&sign_in)?))
        }
        (None, Some(bearer)) => {
            let user = fresh_user(auth, &bearer).await?;
            (auth.mfa().totp().confirm(user, &code, &ctx).await?, None)
        }
        (None, None) => {
            return Err(HttpError::unauthorized(
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeRequest {
    /// The sign-in's `mfa_token`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: String,
    /// `totp`, `backup_code`, `sms` or `email` (default `totp`): for `sms` and `email`
    /// a code is sent.
    pub method: Option<MethodName>,
}

/// What a challenge did.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeBody {
    /// The method challenged.
    pub method: String,
    /// For `sms` and `email`: the request the sent code belongs to (pass it to verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds the sent code stays valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// A second factor, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    /// An authenticator app's code.
    Totp,
    /// One of the backup codes.
    BackupCode,
    /// A code by text message.
    Sms,
    /// A code by email.
    Email,
}

impl From<MethodName> for MfaMethod {
    fn from(name: MethodName) -> Self {
        match name {
            MethodName::Totp => MfaMethod::Totp,
            MethodName::BackupCode => MfaMethod::BackupCode,
            MethodName::Sms => MfaMethod::Sms,
            MethodName::Email => MfaMethod::Email,
        }
    }
}

/// Initiate the MFA step with a method; for SMS and email factors, sends the code.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/mfa/challenge", tag = "mfa",
    request_body = ChallengeRequest, responses((status = 200, body = ChallengeBody))))]
pub async fn challenge(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ChallengeRequest>,
) -> HttpResult<Json<ChallengeBody>> {
    let method = MfaMethod::from(body.method.unwrap_or(MethodName::Totp));
    let sent = auth
        .mfa()
        .challenge(&MfaToken::new(body.mfa_token), method, &ctx)
        .await?;
    Ok(Json(ChallengeBody {
        method: method.as_str().to_owned(),
        request_id: sent.as_ref().map(|s| s.request_id.to_string()),
        expires_in: sent.map(|s| s.expires_in.as_secs()),
    }))
}

/// `POST /mfa/verify`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyRequest {
    /// The sign-in's `mfa_token`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: String,
    /// A TOTP code, or the code an SMS/email challenge sent (with `request_id`).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: Option<String>,
    /// A backup code.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub backup_code: Option<String>,
    /// With a sent code: the challenge's request.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: Option<String>,
    /// With a sent code: `sms` (default) or `email`.
    pub method: Option<MethodName>,
}

/// Finish the sign-in with the second factor: tokens.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/mfa/verify", tag = "mfa",
    request_body = VerifyRequest, responses((status = 200, body = SignInBody))))]
pub async fn verify(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<VerifyRequest>,
) -> HttpResult<Json<SignInBody>> {
    let proof = match (body.backup_code, body.code, body.request_id) {
        (Some(backup), None, _) => MfaProof::BackupCode(BackupCode::new(backup)),
        (None, Some(code), None) => MfaProof::Totp(OneTimeCode::new(code)),
        (None, Some(code), Some(request)) => {
            let request: RequestId = parse_id(&request)?;
            match MfaMethod::from(body.method.unwrap_or(MethodName::Sms)) {
                MfaMethod::Email => MfaProof::Email(request, OneTimeCode::new(code)),
                MfaMethod::Sms => MfaProof::Sms(request, OneTimeCode::new(code)),
                _ => {
                    return Err(HttpError::invalid(
                        "a request_id goes with method sms or email",
                    ));
                }
            }
        }
        _ => {
            return Err(HttpError::invalid(
                "send exactly one of code and backup_code",
            ));
        }
    };
    let sign_in = auth
        .mfa()
        .verify(&MfaToken::new(body.mfa_token), &proof, &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// New backup codes for the bearer; the old ones stop working.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/mfa/backup-codes", tag = "mfa",
    responses((status = 200, body = BackupCodesBody)), security(("bearer" = []))))]
pub async fn backup_codes(
    auth: &Portcullis,
    ctx: RequestContext,
    bearer: Bearer,
) -> HttpResult<Json<BackupCodesBody>> {
    let user = fresh_user(auth, &bearer).await?;
    let codes = auth.mfa().backup_codes().regenerate(user, &ctx).await?;
    Ok(Json(BackupCodesBody::new(&codes)))
}

/// Remove one of the bearer's factors: a TOTP authenticator (its UUID) or a passkey (its
/// credential id). Needs a recent sign-in (401 `reauth_required` otherwise); the last
/// second factor in an organization that requires MFA cannot go (403).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/mfa/authenticators/{id}", tag = "mfa",
    params(("id" = String, Path, description = "factor id or passkey credential id")),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn remove(
    auth: &Portcullis,
    ctx: RequestContext,
    (bearer, Path(id)): (Bearer, Path<String>),
) -> HttpResult<StatusCode> {
    let which = match id.parse::<FactorId>() {
        Ok(factor) => AuthenticatorId::Totp(factor),
        Err(_) => AuthenticatorId::Passkey(credential_id(&id)?),
    };
    auth.mfa().remove(bearer.claims.sid, &which, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
