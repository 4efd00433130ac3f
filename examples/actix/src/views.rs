//! Response bodies: the JSON shapes of `API.md`, field for field those of the axum example.

use actix_web::http::StatusCode;
use portcullis::model::{CredentialId, Session};
use portcullis::{PasskeyInfo, SessionId, SignIn, TokenSet};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// A sign-in's outcome: tokens, the MFA step, MFA enrolment, or an authorization code.
/// Fields not in play are left out. No `Debug`: it holds tokens.
#[derive(Default, Serialize)]
pub struct SignInBody {
    /// The access token (JWT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The refresh token (single use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Seconds until the access token, or the MFA token, expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Who signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A second factor is due: `POST /mfa/verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_required: Option<bool>,
    /// The organization requires MFA and the user has none: enrol first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_required: Option<bool>,
    /// Carries the half-done sign-in to the MFA step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// The second factors on offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<&'static str>>,
    /// An authorization code for `POST /token` (redirect flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl SignInBody {
    /// A finished sign-in.
    pub fn tokens(set: &TokenSet) -> Self {
        SignInBody {
            token: Some(set.access_token.secret().to_owned()),
            refresh_token: Some(set.refresh_token.secret().to_owned()),
            token_type: Some(set.token_type),
            expires_in: Some(set.expires_in.as_secs()),
            user_id: Some(set.user_id.to_string()),
            ..SignInBody::default()
        }
    }

    /// Any outcome of a sign-in.
    pub fn new(sign_in: &SignIn) -> ApiResult<Self> {
        Ok(match sign_in {
            SignIn::Complete(set) => Self::tokens(set),
            SignIn::MfaRequired(step) => SignInBody {
                mfa_required: Some(true),
                mfa_token: Some(step.mfa_token.secret().to_owned()),
                methods: Some(step.methods.iter().map(|m| m.as_str()).collect()),
                expires_in: Some(step.expires_in.as_secs()),
                ..SignInBody::default()
            },
            SignIn::MfaEnrollmentRequired(step) => SignInBody {
                mfa_enrollment_required: Some(true),
                mfa_token: Some(step.enrollment_token.secret().to_owned()),
                expires_in: Some(step.expires_in.as_secs()),
                ..SignInBody::default()
            },
            SignIn::Code(code) => SignInBody {
                code: Some(code.secret().to_owned()),
                ..SignInBody::default()
            },
            _ => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unsupported",
                    "this sign-in outcome is not supported by this server",
                ));
            }
        })
    }
}

/// A list in one page: `{"items": [..], "next_cursor": null}`.
#[derive(Debug, Serialize)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Always `null` here: these lists are short and whole.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// The whole list.
    pub fn all(items: Vec<T>) -> Self {
        List {
            items,
            next_cursor: None,
        }
    }
}

/// A session as its owner sees it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// The session id (`sid` of its tokens).
    pub id: String,
    /// Signed in (Unix ms).
    pub created_at: i64,
    /// Last refreshed (Unix ms).
    pub last_seen_at: i64,
    /// Ends (Unix ms).
    pub expires_at: i64,
    /// Address at sign-in.
    pub ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// How they signed in (RFC 8176).
    pub amr: Vec<String>,
    /// Whether it is the caller's own.
    pub current: bool,
}

impl SessionView {
    /// `session`, marked current when it is `current`.
    pub fn new(session: &Session, current: SessionId) -> Self {
        SessionView {
            id: session.id.to_string(),
            created_at: session.created_at.unix_millis(),
            last_seen_at: session.last_seen_at.unix_millis(),
            expires_at: session.expires_at.unix_millis(),
            ip: session.ip.map(|ip| ip.to_string()),
            user_agent: session.user_agent.clone(),
            amr: session.amr.clone(),
            current: session.id == current,
        }
    }
}

/// A passkey, without its public key.
#[derive(Debug, Serialize)]
pub struct PasskeyView {
    /// The credential id, base64url.
    pub id: String,
    /// Its name.
    pub name: String,
    /// May sync between devices.
    pub backup_eligible: bool,
    /// Is synced now.
    pub backup_state: bool,
    /// Registered (Unix ms).
    pub created_at: i64,
    /// Last used to sign in (Unix ms).
    pub last_used_at: Option<i64>,
}

impl PasskeyView {
    /// The view of `passkey`.
    pub fn new(passkey: &PasskeyInfo) -> Self {
        PasskeyView {
            id: credential_text(&passkey.id),
            name: passkey.name.clone(),
            backup_eligible: passkey.backup_eligible,
            backup_state: passkey.backup_state,
            created_at: passkey.created_at.unix_millis(),
            last_used_at: passkey.last_used_at.map(|t| t.unix_millis()),
        }
    }
}

/// A credential id as the API writes it: base64url without padding.
pub fn credential_text(id: &CredentialId) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// A credential id from a path segment (base64url, padded or not).
pub fn credential_from_text(text: &str) -> ApiResult<CredentialId> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| ApiError::invalid("id must be a base64url credential id"))?;
    Ok(CredentialId::new(bytes)?)
}

/// Fresh backup codes, shown once. No `Debug`: they are secrets.
#[derive(Serialize)]
pub struct BackupCodesBody {
    /// Ten single-use codes.
    pub backup_codes: Vec<String>,
}

impl BackupCodesBody {
    /// The body for `codes`.
    pub fn new(codes: &[portcullis::crypto::BackupCode]) -> Self {
        BackupCodesBody {
            backup_codes: codes.iter().map(|c| c.secret().to_owned()).collect(),
        }
    }
}
