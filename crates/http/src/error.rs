//! [`HttpError`]: every failure as `{"error": {"code", "message"}}` with its HTTP status.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

use crate::reply::Response;

/// A failed request: built from a [`portcullis::Error`] or from the HTTP layer's own
/// refusals (a malformed body, a missing bearer, a route the router does not know).
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    bearer_challenge: bool,
}

/// A handler's result.
pub type HttpResult<T> = Result<T, HttpError>;

/// The error body.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable snake_case code (`portcullis::Error::code`).
    #[cfg_attr(feature = "openapi", schema(example = "invalid_input"))]
    pub code: String,
    /// Text safe to show to the person.
    pub message: String,
}

impl HttpError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
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
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message).challenge()
    }

    /// The same error with a `WWW-Authenticate: Bearer` challenge: for failures of the
    /// request's own credential (the `Authorization` header), never for a code or token
    /// in the body, so a client refreshes its access token only when that would help.
    /// Only a 401 is marked.
    pub fn challenge(mut self) -> Self {
        self.bearer_challenge = self.status == StatusCode::UNAUTHORIZED;
        self
    }

    /// A router's own refusal by status (404, 405, 413, 415…) as a JSON error.
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

    /// 400 `invalid_input` from a parser's message (serde's), with every submitted value it
    /// quotes taken out ([`scrub_values`]): a mistyped field must not echo a code or token.
    pub fn unparsable(what: &str, detail: &str) -> Self {
        Self::invalid(format!("{what}: {}", scrub_values(detail)))
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        portcullis::Error::Forbidden.into()
    }

    /// 404 `not_found` naming `what`.
    pub fn not_found(what: &'static str) -> Self {
        portcullis::Error::NotFound { what }.into()
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The answer: the JSON body with `Retry-After` (429) and `WWW-Authenticate` (401 of
    /// the request's own credential) where they apply.
    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = Response::json(self.status, &body);
        if let Some(secs) = self.retry_after {
            response = response.header(http::header::RETRY_AFTER, secs.to_string());
        }
        if self.bearer_challenge {
            response = response.header(http::header::WWW_AUTHENTICATE, "Bearer");
        }
        response
    }
}

/// serde's messages quote the offending value (``invalid type: string "918273", expected
/// u32``): keep what was expected, drop every value that was sent.
pub fn scrub_values(detail: &str) -> String {
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

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<portcullis::Error> for HttpError {
    fn from(err: portcullis::Error) -> Self {
        use portcullis::Error as E;
        let status = match &err {
            E::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            E::InvalidCredentials
            | E::InvalidToken
            | E::Expired
            | E::SessionRevoked
            | E::MfaRequired
            | E::ReauthRequired
            | E::SsoFailed { .. } => StatusCode::UNAUTHORIZED,
            E::Forbidden | E::SsoRequired { .. } | E::IpBlocked => StatusCode::FORBIDDEN,
            E::OutboundRefused { .. } => StatusCode::BAD_REQUEST,
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
        let retry_after = err.retry_after_secs();
        HttpError {
            status,
            code: err.code(),
            message,
            retry_after,
            bearer_challenge: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quoted_value_is_scrubbed() {
        let text = scrub_values(
            "invalid type: string \"918273\", expected u32 at line 1; \
             unknown variant `sekret`, expected one of `a`; invalid length 7, expected 6",
        );
        assert!(
            !text.contains("918273") && !text.contains("sekret"),
            "{text}"
        );
        assert_eq!(text.matches("(value not shown)").count(), 3, "{text}");
        assert!(text.contains("expected u32"));
    }

    #[test]
    fn internal_failures_are_500s_that_name_nothing() {
        let err = HttpError::from(portcullis::Error::Internal("signing a token"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code(), "internal");
        assert!(!err.message().contains("signing"), "{}", err.message());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let err = HttpError::from(portcullis::Error::RateLimited {
            retry_after: std::time::Duration::from_millis(1200),
        });
        let response = err.into_response();
        assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers[http::header::RETRY_AFTER], "2");
    }
}
