//! Cryptographic building blocks: random tokens and codes, keyed hashing of secrets,
//! constant-time comparison and the [`Keyring`] for encryption at rest.
//!
//! All randomness comes from the operating system's RNG (`getrandom`).

mod hash;
mod keyring;
mod random;
mod secret;

pub use hash::{Pepper, SecretHash, SecretHasher, SecretPurpose};
pub use keyring::{EncryptionKey, KeyId, Keyring, Sealed};
pub use random::{numeric_code, random_bytes, random_token};
pub use secret::{
    AccessToken, ApiKey, AuthCode, BackupCode, BotProof, CeremonyToken, ClientSecret, CodeVerifier,
    EmailRevertToken, InvitationToken, LoginToken, MagicLinkToken, MfaToken, OneTimeCode, Password,
    PasswordChangeToken, PollToken, ProviderCookie, RefreshToken, RegistrationToken, UnblockToken,
};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Compares two byte strings in time that depends only on their lengths.
///
/// Use it for every comparison that involves a secret or a value derived from one.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Base64url without padding, the encoding of every token portcullis issues.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` on malformed input.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn b64url_round_trips() {
        let bytes = [0xfb, 0xff, 0x00, 0x10];
        let text = b64url(&bytes);
        assert_eq!(text, "-_8AEA");
        assert_eq!(b64url_decode(&text).unwrap(), bytes);
        assert!(b64url_decode("not base64!").is_none());
    }
}
