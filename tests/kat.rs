//! Known-answer tests: the primitives portcullis builds on, checked against their standards'
//! published vectors, and portcullis's own sealed format against an independent
//! implementation.

// A failed known answer is reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use portcullis::crypto::{EncryptionKey, Keyring, Sealed};
use sha2::Sha256;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 4231 §4.3, test case 2: the HMAC-SHA256 behind every stored secret hash.
#[test]
fn hmac_sha256_rfc4231_case_2() {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    let tag = mac.finalize().into_bytes();
    assert_eq!(
        tag.as_slice(),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}

/// draft-irtf-cfrg-xchacha-03 Appendix A.3.1: the AEAD behind the Keyring.
#[test]
fn xchacha20_poly1305_draft_a_3_1() {
    let key: Vec<u8> = (0x80..=0x9f).collect();
    let nonce: Vec<u8> = (0x40..=0x57).collect();
    let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let cipher = XChaCha20Poly1305::new_from_slice(&key).unwrap();
    let nonce = XNonce::try_from(nonce.as_slice()).unwrap();
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .unwrap();
    let expected_ct = hex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e",
    );
    let expected_tag = hex("c0875924c1c7987947deafd8780acf49");
    assert_eq!(&sealed[..plaintext.len()], expected_ct.as_slice());
    assert_eq!(&sealed[plaintext.len()..], expected_tag.as_slice());
}

/// The Keyring's format is `0x01 ‖ key id (u32, big-endian) ‖ nonce (24) ‖ ciphertext ‖
/// tag`, with `header ‖ associated data` as the AEAD's associated data. This value was
/// sealed in that format by libsodium (through PyNaCl), not by portcullis.
#[test]
fn keyring_opens_a_value_sealed_by_libsodium() {
    let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
    let ring = Keyring::new(7, EncryptionKey::from_bytes(key));
    let sealed = Sealed::from_bytes(hex(
        "0100000007404142434445464748494a4b4c4d4e4f5051525354555657bb4e20a302c3b00abe5a2798c5fec505a0b432642cb952183eacb34996993f70",
    ));
    assert_eq!(sealed.key_id(), Some(7));
    let opened = ring.open(&sealed, b"user:42").unwrap();
    assert_eq!(opened.as_slice(), b"JBSWY3DPEHPK3PXP");
    assert!(ring.open(&sealed, b"user:43").is_err());
}
