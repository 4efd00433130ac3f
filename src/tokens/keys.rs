//! Signing keys: generation, PEM import, sealing for storage, the [`KeySet`] and its JWKS.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::SigningAlgorithm;
use crate::crypto::{Keyring, b64url};
use crate::model::StoredSigningKey;
use crate::{Error, Timestamp};

/// The private half of a signing key, parsed once. (jsonwebtoken's `EncodingKey` keeps
/// the PKCS#8 document and parses it, deriving the public key again, for every signature:
/// as much work as the Ed25519 signature itself.)
enum Signer {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// One signing key: the private half signs (only the newest key does), the public half
/// verifies.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) algorithm: SigningAlgorithm,
    signer: Signer,
    pub(crate) decoding: DecodingKey,
    public_key: Vec<u8>,
    pub(crate) created_at: Timestamp,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the OS RNG, with its PKCS#8 document (to seal and store).
    pub(crate) fn generate(
        algorithm: SigningAlgorithm,
        now: Timestamp,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), Error> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        .map_err(|_| Error::Internal("generating a signing key"))?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let key = Self::from_pkcs8(algorithm, &pkcs8, now)?;
        Ok((key, pkcs8))
    }

    /// A key from a PKCS#8 private key; its kid is the RFC 7638 thumbprint of its JWK.
    pub(crate) fn from_pkcs8(
        algorithm: SigningAlgorithm,
        pkcs8: &[u8],
        created_at: Timestamp,
    ) -> Result<Self, Error> {
        let bad = || Error::Config(format!("not a valid {} private key", algorithm.as_str()));
        let (public_key, signer) = match algorithm {
            SigningAlgorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| bad())?;
                (pair.public_key().as_ref().to_vec(), Signer::Ed25519(pair))
            }
            SigningAlgorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| bad())?;
                (pair.public_key().as_ref().to_vec(), Signer::P256(pair))
            }
        };
        let decoding = match algorithm {
            SigningAlgorithm::EdDSA => DecodingKey::from_ed_der(&public_key),
            SigningAlgorithm::ES256 => DecodingKey::from_ec_der(&public_key),
        };
        let mut key = SigningKey {
            kid: String::new(),
            algorithm,
            signer,
            decoding,
            public_key,
            created_at,
        };
        key.kid = key.thumbprint();
        Ok(key)
    }

    /// A key from a PEM-encoded PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`, as
    /// `openssl genpkey` writes), Ed25519 or P-256.
    pub(crate) fn from_pem(
        pem: &str,
        created_at: Timestamp,
    ) -> Result<(Self, Zeroizing<Vec<u8>>), Error> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        let der = Zeroizing::new(STANDARD.decode(body).map_err(|_| {
            Error::Config("a signing key PEM must hold a PKCS#8 \"PRIVATE KEY\"".into())
        })?);
        for algorithm in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            if let Ok(key) = Self::from_pkcs8(algorithm, &der, created_at) {
                return Ok((key, der));
            }
        }
        Err(Error::Config(
            "a signing key PEM must be an Ed25519 or P-256 PKCS#8 private key".into(),
        ))
    }

    /// Seals the key for storage; the associated data binds it to its kid.
    pub(crate) fn to_stored(
        &self,
        pkcs8: &[u8],
        keyring: &Keyring,
    ) -> Result<StoredSigningKey, Error> {
        Ok(StoredSigningKey {
            kid: self.kid.clone(),
            algorithm: self.algorithm.as_str().to_owned(),
            private_key: keyring.seal(pkcs8, &sealing_context(&self.kid))?,
            public_key: self.public_key.clone(),
            created_at: self.created_at,
        })
    }

    /// Opens a stored key. Fails closed: a key that does not open, or whose kid or public
    /// key does not match its private key, is an error, never skipped silently.
    pub(crate) fn from_stored(stored: &StoredSigningKey, keyring: &Keyring) -> Result<Self, Error> {
        let algorithm = match stored.algorithm.as_str() {
            "EdDSA" => SigningAlgorithm::EdDSA,
            "ES256" => SigningAlgorithm::ES256,
            _ => {
                return Err(Error::Config(format!(
                    "stored signing key {} has an unknown algorithm",
                    stored.kid
                )));
            }
        };
        let pkcs8 = keyring
            .open(&stored.private_key, &sealing_context(&stored.kid))
            .map_err(|_| {
                Error::Config(format!(
                    "stored signing key {} does not open with the configured keyring",
                    stored.kid
                ))
            })?;
        let key = Self::from_pkcs8(algorithm, &pkcs8, stored.created_at)?;
        if key.kid != stored.kid || key.public_key != stored.public_key {
            return Err(Error::Config(format!(
                "stored signing key {} is inconsistent",
                stored.kid
            )));
        }
        Ok(key)
    }

    /// The JWS signature of `message` (for ES256 the fixed-width `r || s` of RFC 7518
    /// §3.4).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |_| Error::Internal("signing a token");
        Ok(match &self.signer {
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::P256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        })
    }

    pub(crate) fn jws_algorithm(&self) -> Algorithm {
        match self.algorithm {
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
            SigningAlgorithm::ES256 => Algorithm::ES256,
        }
    }

    /// The public JWK, built from the public key bytes.
    pub(crate) fn jwk(&self) -> Jwk {
        let (kty, crv, x, y) = self.jwk_members();
        Jwk {
            kty,
            crv,
            x,
            y,
            kid: self.kid.clone(),
            alg: self.algorithm.as_str(),
            use_: "sig",
        }
    }

    fn jwk_members(&self) -> (&'static str, &'static str, String, Option<String>) {
        match self.algorithm {
            SigningAlgorithm::EdDSA => ("OKP", "Ed25519", b64url(&self.public_key), None),
            SigningAlgorithm::ES256 => {
                // The uncompressed point: 0x04 ‖ x (32) ‖ y (32), checked by aws-lc on import.
                let x = self.public_key.get(1..33).unwrap_or_default();
                let y = self.public_key.get(33..65).unwrap_or_default();
                ("EC", "P-256", b64url(x), Some(b64url(y)))
            }
        }
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order.
    fn thumbprint(&self) -> String {
        let (kty, crv, x, y) = self.jwk_members();
        let canonical = match y {
            Some(y) => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}","y":"{y}"}}"#),
            None => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}"}}"#),
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }
}

fn sealing_context(kid: &str) -> Vec<u8> {
    [b"portcullis/signing-key/".as_slice(), kid.as_bytes()].concat()
}

/// A public key in JWK form (RFC 7517), as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519) or `EC` (P-256).
    pub kty: &'static str,
    /// Curve: `Ed25519` or `P-256`.
    pub crv: &'static str,
    /// The public key (Ed25519) or its x coordinate (P-256), base64url.
    pub x: String,
    /// The y coordinate (P-256 only), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The key id tokens name in their header: the key's RFC 7638 thumbprint.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// The JSON Web Key Set: serve it as `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwks {
    /// Every key that verifies, newest (the signing key) first.
    pub keys: Vec<Jwk>,
}

/// The keys in force: the newest signs, all verify.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Oldest first; never empty.
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    pub(crate) fn new(mut keys: Vec<SigningKey>) -> Result<Self, Error> {
        if keys.is_empty() {
            return Err(Error::Config("no signing key".into()));
        }
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(KeySet {
            keys: keys.into_iter().map(Arc::new).collect(),
        })
    }

    /// The key new tokens are signed with.
    pub(crate) fn current(&self) -> Option<&Arc<SigningKey>> {
        self.keys.last()
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    pub(crate) fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.iter().rev().map(|k| k.jwk()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_thumbprint_kids_and_public_jwks() {
        for algorithm in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            let (key, pkcs8) = SigningKey::generate(algorithm, Timestamp::EPOCH).unwrap();
            assert_eq!(key.kid.len(), 43, "base64url SHA-256");
            let again = SigningKey::from_pkcs8(algorithm, &pkcs8, Timestamp::EPOCH).unwrap();
            assert_eq!(again.kid, key.kid, "the kid is a function of the key");
            let jwk = serde_json::to_value(key.jwk()).unwrap();
            assert_eq!(jwk["kid"], key.kid.as_str());
            assert!(jwk.get("d").is_none(), "no private member");
        }
    }

    #[test]
    fn ed25519_thumbprint_matches_rfc8037_appendix_a3() {
        // RFC 8037 A.1's private key (seed 9d61b19d…7f60) as PKCS#8; its public key is
        // 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo and A.3 gives the thumbprint.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend((0..32).map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap()));
        let key =
            SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, &pkcs8, Timestamp::EPOCH).unwrap();
        assert_eq!(key.jwk().x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(key.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn sealed_keys_open_only_with_their_kid_and_keyring() {
        let ring =
            crate::crypto::Keyring::new(1, crate::crypto::EncryptionKey::from_bytes([4; 32]));
        let (key, pkcs8) = SigningKey::generate(SigningAlgorithm::EdDSA, Timestamp::EPOCH).unwrap();
        let stored = key.to_stored(&pkcs8, &ring).unwrap();
        assert_eq!(
            SigningKey::from_stored(&stored, &ring).unwrap().kid,
            key.kid
        );
        let mut moved = stored.clone();
        moved.kid = "another".into();
        assert_eq!(
            SigningKey::from_stored(&moved, &ring).unwrap_err().code(),
            "config"
        );
        let other =
            crate::crypto::Keyring::new(1, crate::crypto::EncryptionKey::from_bytes([5; 32]));
        assert_eq!(
            SigningKey::from_stored(&stored, &other).unwrap_err().code(),
            "config"
        );
    }

    #[test]
    fn pem_import_accepts_pkcs8_and_refuses_the_rest() {
        let (key, pkcs8) = SigningKey::generate(SigningAlgorithm::ES256, Timestamp::EPOCH).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&*pkcs8)
        );
        let (imported, _) = SigningKey::from_pem(&pem, Timestamp::EPOCH).unwrap();
        assert_eq!(imported.kid, key.kid);
        assert_eq!(imported.algorithm, SigningAlgorithm::ES256);
        assert!(
            SigningKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                Timestamp::EPOCH
            )
            .is_err()
        );
        assert!(SigningKey::from_pem("not a pem", Timestamp::EPOCH).is_err());
    }
}
