//! The actix example through `actix_web::test`: the extractors and the permission guard,
//! every route, and the HTTP layer (JSON errors, headers, limits, proxies). One test
//! binary, to keep linking cheap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod auth;
mod extract;
mod http;
mod mfa;
mod passkeys;
