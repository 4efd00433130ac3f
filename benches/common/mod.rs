//! What the benches share: the engine's own signing key, read back from the store, so a
//! raw jsonwebtoken baseline signs with the same key, header and claims as the engine.

#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::Portcullis;
use portcullis::crypto::AccessToken;
use portcullis::store::KeyStore;
use portcullis::testing::test_keyring;
use portcullis::tokens::Claims;
use portcullis_memory::MemoryStore;

/// The engine's signing key and an access token's claims, for jsonwebtoken alone.
pub struct RawSigner {
    pub encoding: EncodingKey,
    pub header: Header,
    pub claims: Claims,
    /// The key's public half (DER), for a raw verification baseline.
    pub public_key: Vec<u8>,
}

impl RawSigner {
    /// Reads the engine's first signing key (sealed with the test keyring) and the claims
    /// of `token`, which it issued.
    pub async fn of(store: &MemoryStore, auth: &Portcullis, token: &AccessToken) -> Self {
        let stored = store.list_signing_keys().await.unwrap();
        let aad = [
            b"portcullis/signing-key/".as_slice(),
            stored[0].kid.as_bytes(),
        ]
        .concat();
        let pkcs8 = test_keyring().open(&stored[0].private_key, &aad).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(stored[0].kid.clone());
        RawSigner {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            header,
            claims: auth.tokens().verify(token).await.unwrap(),
            public_key: stored[0].public_key.clone(),
        }
    }

    /// One signature, as jsonwebtoken makes it.
    pub fn sign(&self) -> String {
        jsonwebtoken::encode(&self.header, &self.claims, &self.encoding).unwrap()
    }
}
