//! Request and response bodies: the JSON shapes of `API.md`, with their OpenAPI schemas.

use portcullis::model::{AuthEvent, Session, User};
use portcullis::{SignIn, TokenSet};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};

/// How a sign-in answers: tokens, the MFA step, MFA enrolment, an authorization code, or
/// a breached password to replace.
/// Only the fields of the case at hand are present.
#[derive(Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInBody {
    /// The access token (JWT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The refresh token (single use; rotates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer` with tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Seconds until the access token (or the MFA token) expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Who signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `true` when a second factor is due: finish with `POST /mfa/verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_required: Option<bool>,
    /// `true` when the organization requires MFA and the user has none: enrol with
    /// `POST /mfa/totp/enroll {mfa_token}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_required: Option<bool>,
    /// Carries the half-finished sign-in to the MFA step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// The second factors the user can use (`totp`, `backup_code`, `sms`, `email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// An authorization code for `POST /token` (redirect flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `true` when the password was found breached and a new one is required before any
    /// session opens: send it with `POST /auth/password/change-required {change_token}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_change_required: Option<bool>,
    /// Carries the held sign-in to `POST /auth/password/change-required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_token: Option<String>,
}

impl SignInBody {
    /// The body of a finished sign-in.
    pub fn tokens(set: &TokenSet) -> Self {
        SignInBody {
            token: Some(set.access_token.secret().to_owned()),
            refresh_token: Some(set.refresh_token.secret().to_owned()),
            token_type: Some(set.token_type.to_owned()),
            expires_in: Some(set.expires_in.as_secs()),
            user_id: Some(set.user_id.to_string()),
            ..Self::default()
        }
    }

    /// The body of any sign-in outcome.
    pub fn from_sign_in(sign_in: &SignIn) -> HttpResult<Self> {
        Ok(match sign_in {
            SignIn::Complete(set) => Self::tokens(set),
            SignIn::MfaRequired(challenge) => SignInBody {
                mfa_required: Some(true),
                mfa_token: Some(challenge.mfa_token.secret().to_owned()),
                methods: Some(
                    challenge
                        .methods
                        .iter()
                        .map(|m| m.as_str().to_owned())
                        .collect(),
                ),
                expires_in: Some(challenge.expires_in.as_secs()),
                ..Self::default()
            },
            SignIn::MfaEnrollmentRequired(challenge) => SignInBody {
                mfa_enrollment_required: Some(true),
                mfa_token: Some(challenge.enrollment_token.secret().to_owned()),
                expires_in: Some(challenge.expires_in.as_secs()),
                ..Self::default()
            },
            SignIn::Code(code) => SignInBody {
                code: Some(code.secret().to_owned()),
                ..Self::default()
            },
            SignIn::PasswordChangeRequired(challenge) => SignInBody {
                password_change_required: Some(true),
                change_token: Some(challenge.change_token.secret().to_owned()),
                expires_in: Some(challenge.expires_in.as_secs()),
                ..Self::default()
            },
            _ => {
                return Err(HttpError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "unsupported",
                    "this sign-in outcome is not supported by this server",
                ));
            }
        })
    }
}

/// A list, one page at a time.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct List<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A page of the engine's, each item turned into its view.
    pub fn page<U>(page: portcullis::model::Page<U>, view: impl Fn(&U) -> T) -> Self {
        List {
            items: page.items.iter().map(view).collect(),
            next_cursor: page.next_cursor.map(|c| c.as_str().to_owned()),
        }
    }

    /// A whole list in one page.
    pub fn all(items: Vec<T>) -> Self {
        List {
            items,
            next_cursor: None,
        }
    }
}

/// Paging parameters.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PageQuery {
    /// Items per page (1 to 100; default 20).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[cfg_attr(feature = "openapi", param(min_length = 1))]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The engine's page request.
    pub fn page(&self) -> HttpResult<portcullis::model::PageRequest> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(HttpError::invalid("limit must be between 1 and 100"));
        }
        use portcullis::model::{Cursor, PageRequest};
        Ok(match &self.cursor {
            Some(cursor) => PageRequest::after(limit, Cursor::new(cursor.clone())),
            None => PageRequest::first(limit),
        })
    }
}

/// A user, as management routes show it (no password hash).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// The user's id.
    pub id: String,
    /// Email address.
    pub email: Option<String>,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Phone number (E.164).
    pub phone: Option<String>,
    /// Whether the phone is verified.
    pub phone_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Application data (`null` when none was set).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: serde_json::Value,
    /// Whether the user has a password.
    pub has_password: bool,
    /// Whether sign-in is blocked.
    pub blocked: bool,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last changed (Unix ms).
    pub updated_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.as_ref().map(|e| e.as_str().to_owned()),
            email_verified: u.email_verified,
            phone: u.phone.as_ref().map(|p| p.as_str().to_owned()),
            phone_verified: u.phone_verified,
            name: u.name.clone(),
            metadata: u.metadata.clone(),
            has_password: u.password_hash.is_some(),
            blocked: u.blocked,
            created_at: u.created_at.unix_millis(),
            updated_at: u.updated_at.unix_millis(),
        }
    }
}

/// A session, as its owner sees it (no refresh-token hash).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Methods used (RFC 8176).
    pub amr: Vec<String>,
    /// Whether this is the caller's own session.
    pub current: bool,
}

impl SessionView {
    /// The view of `s`, marked current when it is `current`.
    pub fn new(s: &Session, current: portcullis::SessionId) -> Self {
        SessionView {
            id: s.id.to_string(),
            created_at: s.created_at.unix_millis(),
            last_seen_at: s.last_seen_at.unix_millis(),
            expires_at: s.expires_at.unix_millis(),
            ip: s.ip.map(|ip| ip.to_string()),
            user_agent: s.user_agent.clone(),
            amr: s.amr.clone(),
            current: s.id == current,
        }
    }
}

/// A login-log entry.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginEvent {
    /// The event id.
    pub id: String,
    /// When (Unix ms).
    pub at: i64,
    /// What happened (`sign_in`, `sign_in_failed`, …).
    pub kind: String,
    /// The method (`pwd`, `otp`, `hwk`, …).
    pub method: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Whom it concerns, when known.
    pub user_id: Option<String>,
    /// The organization it ran in.
    pub org_id: Option<String>,
}

impl From<&AuthEvent> for LoginEvent {
    fn from(e: &AuthEvent) -> Self {
        LoginEvent {
            id: e.id.to_string(),
            at: e.at.unix_millis(),
            kind: e.kind.as_str().to_owned(),
            method: e.method.clone(),
            reason: e.reason.clone(),
            ip: e.ip.map(|ip| ip.to_string()),
            user_agent: e.user_agent.clone(),
            user_id: e.user_id.map(|u| u.to_string()),
            org_id: e.org_id.map(|o| o.to_string()),
        }
    }
}

/// A passkey (everything but its public key).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyView {
    /// The credential id, base64url.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it may sync between devices.
    pub backup_eligible: bool,
    /// Whether it is synced now.
    pub backup_state: bool,
    /// Registered (Unix ms).
    pub created_at: i64,
    /// Last sign-in (Unix ms).
    pub last_used_at: Option<i64>,
}

impl PasskeyView {
    /// The view of `p`.
    pub fn new(p: &portcullis::PasskeyInfo) -> Self {
        PasskeyView {
            id: passkey_id(&p.id),
            name: p.name.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_at: p.created_at.unix_millis(),
            last_used_at: p.last_used_at.map(|t| t.unix_millis()),
        }
    }
}

/// A credential id as the API shows it (base64url, no padding).
pub fn passkey_id(id: &portcullis::model::CredentialId) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Backup codes, shown once.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Item types for the OpenAPI document only: what each string of a list must look like.
#[cfg(feature = "openapi")]
pub(crate) mod items {
    /// A host name, `login.example.com`.
    #[derive(utoipa::ToSchema)]
    #[schema(
        pattern = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        max_length = 253
    )]
    pub(crate) struct HostName(#[allow(dead_code)] String);

    /// A permission a role grants, `resource:action` or `resource:*`.
    #[derive(utoipa::ToSchema)]
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}:([a-z0-9_.-]{1,64}|\*)$")]
    pub(crate) struct Grant(#[allow(dead_code)] String);

    /// A role's name in its organization.
    #[derive(utoipa::ToSchema)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub(crate) struct RoleName(#[allow(dead_code)] String);
}
