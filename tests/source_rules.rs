//! Rules about the source itself that the compiler cannot enforce.

// A broken rule is reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn library_sources() -> Vec<(PathBuf, String)> {
    // Library code only: every crate's `src/` (tests, benches and examples may time things).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for adapter in fs::read_dir(root.join("storage-adapters")).unwrap() {
        rust_files(&adapter.unwrap().path().join("src"), &mut files);
    }
    assert!(files.len() > 10, "found the sources");
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// Checklist H-01: every expiry decision reads the injected clock, so nothing outside
/// `src/clock.rs` reads the system time.
#[test]
fn only_the_clock_reads_the_system_time() {
    for (path, text) in library_sources() {
        if path.ends_with("src/clock.rs") {
            continue;
        }
        for needle in [
            "SystemTime::now",
            "Instant::now",
            "Utc::now",
            "OffsetDateTime::now",
        ] {
            assert!(!text.contains(needle), "{} calls {needle}", path.display());
        }
    }
}

/// Checklist CR-01: secrets come from the OS RNG, never from UUIDs or a seeded RNG.
#[test]
fn secrets_never_come_from_uuids_or_seeded_rngs() {
    for (path, text) in library_sources() {
        for needle in [
            "new_v4",
            "thread_rng",
            "StdRng",
            "SmallRng",
            "seed_from_u64",
        ] {
            assert!(!text.contains(needle), "{} uses {needle}", path.display());
        }
    }
}

/// Every crate forbids unsafe code and warns on missing docs at its root.
#[test]
fn every_crate_root_forbids_unsafe_code() {
    for (path, text) in library_sources() {
        if path.ends_with("src/lib.rs") {
            assert!(
                text.contains("#![forbid(unsafe_code)]"),
                "{}",
                path.display()
            );
            assert!(
                text.contains("#![warn(missing_docs)]"),
                "{}",
                path.display()
            );
        }
    }
}
