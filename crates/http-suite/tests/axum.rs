//! The HTTP suite against the axum example (`portcullis-axum`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The framework under test.
const FRAMEWORK: suite::common::Framework = suite::common::Framework::Axum;

mod suite;
