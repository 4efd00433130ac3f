//! [`ApiError`]: every failure as `{"error": {"code", "message"}}` with the status the axum
//! example gives it, as an actix [`ResponseError`].

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A refused request: from a [`portcullis::Error`], or from the HTTP layer itself (a body
/// that does not parse, a missing bearer, an unknown route).
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    challenge: bool,
    allow: Option<String>,
}

/// The JSON body of an error.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// A stable snake_case code ([`portcullis::Error::code`] or the HTTP layer's own).
    pub code: &'a str,
    /// Text safe to show to the person.
    pub message: &'a str,
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: false,
            allow: None,
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 401 `invalid_token` for a missing or unusable `Authorization` header, with its
    /// `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message).with_challenge()
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        portcullis::Error::Forbidden.into()
    }

    /// 404 for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 405 for a route that exists with other methods, naming them in `Allow`.
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        );
        err.allow = Some(allow.into());
        err
    }

    /// The JSON error for a status actix produced by itself (a payload error, a panic
    /// caught by the server…), with a generic message.
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

    /// 400 `invalid_input` from a deserializer's message. Whatever value the message
    /// quotes is cut out first: a mistyped field may hold a code or a token, and error
    /// bodies end up in logs.
    pub fn unparsable(what: &str, detail: &str) -> Self {
        Self::invalid(format!("{what}: {}", redact_values(detail)))
    }

    /// Marks a failure of the request's own credential (its `Authorization` header) with
    /// `WWW-Authenticate: Bearer`, so a client refreshes its access token only when that
    /// would help. Only 401s are marked: a spent code in a body is no reason to refresh.
    pub fn with_challenge(mut self) -> Self {
        self.challenge = self.status == StatusCode::UNAUTHORIZED;
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// serde's messages quote the offending value (``invalid type: integer `918273`, expected
/// a string``): keep what was expected, drop what was sent.
fn redact_values(detail: &str) -> String {
    const MARKERS: [&str; 4] = [
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown variant ",
    ];
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    while let Some((at, marker)) = MARKERS
        .iter()
        .filter_map(|m| rest.find(m).map(|i| (i, *m)))
        .min_by_key(|(i, _)| *i)
    {
        let value_start = at + marker.len();
        out.push_str(&rest[..value_start]);
        out.push_str("(value not shown)");
        rest = &rest[value_start..];
        rest = match rest.find(", expected") {
            Some(end) => &rest[end..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
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
            // Store and delivery errors carry hosts and paths: those go to the log only.
            tracing::error!(code = err.code(), error = ?err, "request failed");
            "the server could not complete the request".to_owned()
        } else {
            err.to_string()
        };
        let retry_after = match &err {
            // Whole seconds, rounded up, never 0 (a client would retry at once).
            E::RateLimited { retry_after } => Some(
                retry_after
                    .as_secs()
                    .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                    .max(1),
            ),
            _ => None,
        };
        ApiError {
            retry_after,
            ..ApiError::new(status, err.code(), message)
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        })
    }
}

/// The `Allow` value for a set of methods.
pub(crate) fn allow_list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_cut_from_parser_messages() {
        let text =
            redact_values("invalid type: integer `918273`, expected a string at line 1 column 40");
        assert_eq!(
            text,
            "invalid type: (value not shown), expected a string at line 1 column 40"
        );
        let text = redact_values("invalid value: string \"abc\", expected x; invalid length 3");
        assert!(!text.contains("abc") && !text.contains(" 3"), "{text}");
        assert_eq!(
            redact_values("missing field `code`"),
            "missing field `code`"
        );
    }

    #[test]
    fn rate_limits_round_retry_after_up() {
        let err: ApiError = portcullis::Error::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
        }
        .into();
        assert_eq!(err.retry_after, Some(2));
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
    }
}
