//! The shared storage conformance suite, run against a real PostgreSQL: a fresh schema per
//! test, migrated from empty.

portcullis::conformance_tests!(optional: || async { portcullis_test_support::postgres::store().await });
