//! The shared storage conformance suite, run against sled: real files, a fresh temporary
//! directory per test, with the default (security-critical) durability.

// A failed set-up is reported by panicking, like any test.
#![allow(clippy::expect_used)]

use portcullis_sled::{SledConfig, SledStore};

fn fresh() -> SledStore {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-sled-conformance")
        .tempdir()
        .expect("temp dir")
        .keep();
    SledStore::with_config(SledConfig::new(dir).temporary(true)).expect("open sled")
}

portcullis::conformance_tests!(|| async { fresh() });
