//! [`Response`] and [`Reply`]: what a handler answers, framework-neutral.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::error::HttpError;
use crate::extract::Json;

/// An answer: status, headers and body, which a framework crate turns into its own. Its
/// `Debug` shows the status, header names and the body's size: a sign-in's tokens never
/// print.
#[derive(Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for `204`).
    pub body: Bytes,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(|name| name.as_str()).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Response {
    /// An answer with no body.
    pub fn empty(status: StatusCode) -> Self {
        Response {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// `value` as JSON; a value that cannot be written is a 500.
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => Self::bytes(status, "application/json", bytes),
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be written as JSON");
                let body = r#"{"error":{"code":"internal","message":"the server could not complete the request"}}"#;
                Self::bytes(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    body.as_bytes().to_vec(),
                )
            }
        }
    }

    /// `body` with its content type.
    pub fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Self {
        Self::empty(status)
            .header(CONTENT_TYPE, content_type)
            .with_body(body)
    }

    /// The same with a header set (a value that is not a valid header is left out).
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(value) = HeaderValue::from_str(value.as_ref()) {
            self.headers.insert(name, value);
        }
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = Bytes::from(body);
        self
    }
}

/// What a handler may return.
pub trait Reply {
    /// The answer.
    fn into_response(self) -> Response;
}

impl Reply for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: Serialize> Reply for Json<T> {
    fn into_response(self) -> Response {
        Response::json(StatusCode::OK, &self.0)
    }
}

impl<T: Serialize> Reply for (StatusCode, Json<T>) {
    fn into_response(self) -> Response {
        Response::json(self.0, &self.1.0)
    }
}

impl Reply for StatusCode {
    fn into_response(self) -> Response {
        Response::empty(self)
    }
}

impl Reply for HttpError {
    fn into_response(self) -> Response {
        HttpError::into_response(self)
    }
}
