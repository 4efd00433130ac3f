//! [`ApiError`]: every failure as `{"error": {"code", "message"}}` with its HTTP status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A failed request. Built from a [`portcullis::Error`] or from the HTTP layer's own
/// refusals (a malformed body, a missing bearer).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    bearer_challenge: bool,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code (`portcullis::Error::code`).
    #[schema(example = "invalid_input")]
    pub code: String,
    /// Text safe to show to the person.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 401 `invalid_token` with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message);
        err.bearer_challenge = true;
        err
    }

    /// The same error with a `WWW-Authenticate: Bearer` challenge: for failures of the
    /// request's own credential (the `Authorization` header), never for a code or token
    /// in the body, so a client refreshes its access token only when that is the problem.
    pub fn challenge(mut self) -> Self {
        if self.status == StatusCode::UNAUTHORIZED {
            self.bearer_challenge = true;
        }
        self
    }

    /// The router's own refusals by status (413, 415, 405, 404…) as JSON errors.
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ),
            s if s.is_client_error() => ("invalid_input", "the request was not understood"),
            _ => ("internal", "the server could not complete the request"),
        };
        Self::new(status, code, message)
    }

    /// 400 `invalid_input` from a parser's message (serde's), with any submitted value
    /// it quotes taken out: a mistyped field must not echo a code or token back.
    pub fn unparsable(message: &str) -> Self {
        let mut text = message.to_owned();
        for marker in ["invalid type: ", "invalid value: ", "invalid length "] {
            if let Some(start) = text.find(marker) {
                let from = start + marker.len();
                let end = text[from..]
                    .find(", expected")
                    .map_or(text.len(), |i| from + i);
                text.replace_range(from..end, "(value not shown)");
            }
        }
        Self::invalid(text)
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        portcullis::Error::Forbidden.into()
    }

    /// 404 `not_found` naming `what`.
    pub fn not_found(what: &'static str) -> Self {
        portcullis::Error::NotFound { what }.into()
    }
}

impl From<portcullis::Error> for ApiError {
    fn from(err: portcullis::Error) -> Self {
        use portcullis::Error as E;
        let status = match &err {
            E::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            E::InvalidCredentials
            | E::InvalidToken
            | E::Expired
            | E::SessionRevoked
            | E::MfaRequired
            | E::ReauthRequired => StatusCode::UNAUTHORIZED,
            E::Forbidden => StatusCode::FORBIDDEN,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Conflict { .. } => StatusCode::CONFLICT,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::BotCheckRequired => StatusCode::PRECONDITION_REQUIRED,
            E::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status.is_server_error() {
            // The source chain may name hosts or paths: it goes to the log, not the client.
            tracing::error!(code = err.code(), error = ?err, "request failed");
            "the server could not complete the request".to_owned()
        } else {
            err.to_string()
        };
        let retry_after = match &err {
            E::RateLimited { retry_after } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            _ => None,
        };
        ApiError {
            status,
            code: err.code(),
            message,
            retry_after,
            bearer_challenge: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.bearer_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
