//! The shared storage conformance suite, run against the memory adapter.

portcullis::conformance_tests!(|| async { portcullis_memory::MemoryStore::new() });
