//! The HTTP suite against the actix-web example (`portcullis-actix`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The framework under test.
const FRAMEWORK: suite::common::Framework = suite::common::Framework::Actix;

mod suite;
