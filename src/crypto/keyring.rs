//! Encryption at rest: XChaCha20-Poly1305 under a [`Keyring`] that rotates.
//!
//! Records that must be read back in clear (TOTP secrets, private signing keys) are sealed
//! with the current key; old keys stay in the ring to open what they sealed until it has
//! been resealed. The associated data names the record's owner (a user id and factor id,
//! say), so a sealed value copied onto another record fails to open.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{b64url, b64url_decode, random_bytes};
use crate::Error;

/// Names a key in a [`Keyring`]; written in front of every value it seals.
pub type KeyId = u32;

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 24;
const TAG_LEN: usize = 16;

/// A 256-bit encryption key.
#[derive(Clone)]
pub struct EncryptionKey(Zeroizing<[u8; 32]>);

impl EncryptionKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionKey(Zeroizing::new(bytes))
    }

    /// A key from base64url (no padding) text, as kept in an environment variable.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = b64url_decode(text.trim())
            .map(Zeroizing::new)
            .ok_or_else(|| Error::Config("the encryption key is not base64url".into()))?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::Config("the encryption key must be 32 bytes".into()))?;
        Ok(Self::from_bytes(array))
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, Error> {
        XChaCha20Poly1305::new_from_slice(self.0.as_ref())
            .map_err(|_| Error::Internal("encryption key"))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, Error> {
        Ok(EncryptionKey(random_bytes::<32>()?))
    }

    /// The key as base64url text, for saving a generated one.
    ///
    /// SECURITY: this is key material; store it like a password.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(b64url(self.0.as_ref()))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([secret key elided])")
    }
}

/// A sealed value: format version, key id, nonce, ciphertext and tag, as one byte string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps bytes read back from a store. They are checked when opened.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Sealed(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id of the key that sealed this value, if the header is well formed.
    pub fn key_id(&self) -> Option<KeyId> {
        match self.0.as_slice() {
            [FORMAT_V1, a, b, c, d, ..] if self.0.len() >= HEADER_LEN + TAG_LEN => {
                Some(u32::from_be_bytes([*a, *b, *c, *d]))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(key {:?}, {} bytes)", self.key_id(), self.0.len())
    }
}

/// The keys that seal and open data at rest: one current key, and older keys kept only
/// to open what they sealed.
#[derive(Clone)]
pub struct Keyring {
    current: KeyId,
    keys: BTreeMap<KeyId, EncryptionKey>,
}

impl Keyring {
    /// A ring whose current key is `key`, named `id`.
    pub fn new(id: KeyId, key: EncryptionKey) -> Self {
        Keyring {
            current: id,
            keys: BTreeMap::from([(id, key)]),
        }
    }

    /// Adds an older key that still opens what it sealed. Its id must differ from every
    /// key already in the ring.
    pub fn with_old_key(mut self, id: KeyId, key: EncryptionKey) -> Result<Self, Error> {
        if self.keys.contains_key(&id) {
            return Err(Error::Config(format!(
                "encryption key id {id} is used twice"
            )));
        }
        self.keys.insert(id, key);
        Ok(self)
    }

    /// Makes a new key current; the previous current key stays to open old data.
    pub fn rotate(mut self, id: KeyId, key: EncryptionKey) -> Result<Self, Error> {
        self = self.with_old_key(id, key)?;
        self.current = id;
        Ok(self)
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> KeyId {
        self.current
    }

    /// Encrypts `plaintext` with the current key, binding `associated_data` (the record's
    /// owner) and the header.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Sealed, Error> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or(Error::Internal("the current encryption key"))?;
        let nonce = random_bytes::<24>()?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(nonce.as_ref());
        let aad = [&out[..HEADER_LEN], associated_data].concat();
        let ciphertext = key
            .cipher()?
            .encrypt(
                &XNonce::try_from(nonce.as_slice()).map_err(|_| Error::Internal("nonce"))?,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Internal("sealing"))?;
        out.extend_from_slice(&ciphertext);
        Ok(Sealed(out))
    }

    /// Decrypts a sealed value with whichever key sealed it.
    ///
    /// Fails with [`Error::Crypto`] when the key is unknown, the value was altered, or
    /// `associated_data` differs from what it was sealed with.
    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let key_id = sealed.key_id().ok_or(Error::Crypto)?;
        let key = self.keys.get(&key_id).ok_or(Error::Crypto)?;
        let (header, ciphertext) = sealed.0.split_at(HEADER_LEN);
        let aad = [header, associated_data].concat();
        key.cipher()?
            .decrypt(
                &XNonce::try_from(&header[5..]).map_err(|_| Error::Crypto)?,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Crypto)
    }

    /// Whether `sealed` was sealed with an older key and should be resealed.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id() != Some(self.current)
    }

    /// Opens `sealed` and seals it again under the current key.
    pub fn reseal(&self, sealed: &Sealed, associated_data: &[u8]) -> Result<Sealed, Error> {
        let plaintext = self.open(sealed, associated_data)?;
        self.seal(&plaintext, associated_data)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: KeyId, byte: u8) -> Keyring {
        Keyring::new(id, EncryptionKey::from_bytes([byte; 32]))
    }

    #[test]
    fn seal_then_open_round_trips() {
        let ring = ring(1, 9);
        let sealed = ring.seal(b"JBSWY3DPEHPK3PXP", b"user-1/factor-1").unwrap();
        assert_eq!(sealed.key_id(), Some(1));
        assert!(
            !sealed
                .as_bytes()
                .windows(16)
                .any(|w| w == b"JBSWY3DPEHPK3PXP")
        );
        let opened = ring.open(&sealed, b"user-1/factor-1").unwrap();
        assert_eq!(opened.as_slice(), b"JBSWY3DPEHPK3PXP");
    }

    #[test]
    fn nonces_differ_between_seals() {
        let ring = ring(1, 9);
        assert_ne!(ring.seal(b"x", b"").unwrap(), ring.seal(b"x", b"").unwrap());
    }

    #[test]
    fn another_owner_cannot_open() {
        let ring = ring(1, 9);
        let sealed = ring.seal(b"secret", b"user-1").unwrap();
        assert!(matches!(ring.open(&sealed, b"user-2"), Err(Error::Crypto)));
    }

    #[test]
    fn tampering_anywhere_fails_closed() {
        let ring = ring(1, 9);
        let sealed = ring.seal(b"secret", b"owner").unwrap();
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            assert!(
                ring.open(&Sealed::from_bytes(bytes), b"owner").is_err(),
                "byte {i}"
            );
        }
        for len in [0, 1, 5, HEADER_LEN, HEADER_LEN + TAG_LEN - 1] {
            let short = Sealed::from_bytes(sealed.as_bytes()[..len].to_vec());
            assert!(ring.open(&short, b"owner").is_err());
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_reseals_with_the_new_key() {
        let old = ring(1, 9);
        let sealed = old.seal(b"secret", b"owner").unwrap();
        let rotated = old.rotate(2, EncryptionKey::from_bytes([3; 32])).unwrap();
        assert!(rotated.needs_reseal(&sealed));
        assert_eq!(
            rotated.open(&sealed, b"owner").unwrap().as_slice(),
            b"secret"
        );
        let resealed = rotated.reseal(&sealed, b"owner").unwrap();
        assert_eq!(resealed.key_id(), Some(2));
        assert!(!rotated.needs_reseal(&resealed));
        // A ring without the old key cannot read what it sealed.
        assert!(ring(2, 3).open(&sealed, b"owner").is_err());
        assert!(ring(2, 3).open(&resealed, b"owner").is_ok());
    }

    #[test]
    fn duplicate_key_ids_are_rejected() {
        let err = ring(1, 9)
            .with_old_key(1, EncryptionKey::from_bytes([1; 32]))
            .unwrap_err();
        assert_eq!(err.code(), "config");
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = EncryptionKey::generate().unwrap();
        let text = key.to_base64();
        assert!(EncryptionKey::from_base64(&text).is_ok());
        assert!(EncryptionKey::from_base64("c2hvcnQ").is_err());
        assert!(!format!("{key:?}").contains(text.as_str()));
        assert_eq!(
            format!("{:?}", ring(4, 1)),
            "Keyring { current: 4, key_ids: [4] }"
        );
    }
}
