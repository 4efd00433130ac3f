//! The shared storage conformance suite, run against the memory adapter.

latchkey::conformance_tests!(|| async { latchkey_memory::MemoryStore::new() });
