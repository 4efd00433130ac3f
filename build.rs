#![allow(clippy::panic)] // A build script reports failure by panicking: the build stops with the message.

//! Turns the bundled list of common passwords (`data/common-passwords.txt`) into sorted
//! 64-bit hashes of each entry's lowercase form, which `CommonPasswords` binary-searches:
//! 8 bytes per password, no text compiled in, nothing to build at run time.

use std::path::PathBuf;

fn main() {
    let list = "data/common-passwords.txt";
    println!("cargo::rerun-if-changed={list}");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/fnv.rs");
    let text = std::fs::read_to_string(list).unwrap_or_else(|e| panic!("reading {list}: {e}"));
    let mut hashes: Vec<u64> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| fnv1a(line.to_lowercase().as_bytes()))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}")));
    std::fs::write(out.join("common_passwords.bin"), bytes)
        .unwrap_or_else(|e| panic!("writing the hashes: {e}"));
}

include!("src/fnv.rs");
