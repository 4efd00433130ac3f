//! One HTTP test suite for every framework crate. The tests are in `tests/suite/`; each
//! framework's test target (`tests/axum.rs`, `tests/actix.rs`) runs all of them against its
//! example app, in process, so every route answers the same in both.

#![forbid(unsafe_code)]
