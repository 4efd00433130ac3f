//! A software authenticator the tests control byte by byte: ES256 keys (aws-lc-rs),
//! `none` attestation, and knobs for what real authenticators rarely do on purpose —
//! a chosen credential id, a counter that repeats, missing flags, another origin. Its
//! answers are the WebAuthn JSON a browser posts, parsed by the engine's own types.
//!
//! The real ceremonies run with webauthn-authenticator-rs's `SoftPasskey`; this one
//! reaches the corners.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::flows::passkey::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use serde_cbor_2::Value;
use serde_json::json;

/// User present.
pub const UP: u8 = 0x01;
/// User verified.
pub const UV: u8 = 0x04;
/// Backup eligible.
pub const BE: u8 = 0x08;
/// Backed up.
pub const BS: u8 = 0x10;
/// Attested credential data included.
const AT: u8 = 0x40;

/// One credential on a software authenticator.
pub struct TestKey {
    pkcs8: Vec<u8>,
    /// The credential id it registers and signs with.
    pub credential_id: Vec<u8>,
    /// The signature counter it will report next, before `counter_step` is added.
    pub counter: u32,
    /// Added to the counter before each signature: 1 like a security key, 0 like a
    /// synced passkey.
    pub counter_step: u32,
    /// The flags it reports (AT is added on registration).
    pub flags: u8,
    /// The origin its client data names.
    pub origin: String,
    /// The user handle it returns with assertions.
    pub user_handle: Option<Vec<u8>>,
    /// Overrides the client data type (`webauthn.create` / `webauthn.get`).
    pub client_data_type: Option<String>,
}

impl TestKey {
    /// A new credential for `origin`: random 32-byte id, counter counting up, UP and UV.
    pub fn new(origin: &str) -> Self {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .expect("a P-256 key");
        let mut id = [0u8; 32];
        aws_lc_rs::rand::fill(&mut id).expect("randomness");
        TestKey {
            pkcs8: document.as_ref().to_vec(),
            credential_id: id.to_vec(),
            counter: 0,
            counter_step: 1,
            flags: UP | UV,
            origin: origin.to_owned(),
            user_handle: None,
            client_data_type: None,
        }
    }

    /// The same key material and counter: a cloned authenticator.
    pub fn clone_key(&self) -> Self {
        TestKey {
            pkcs8: self.pkcs8.clone(),
            credential_id: self.credential_id.clone(),
            counter: self.counter,
            counter_step: self.counter_step,
            flags: self.flags,
            origin: self.origin.clone(),
            user_handle: self.user_handle.clone(),
            client_data_type: None,
        }
    }

    fn key(&self) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8).expect("our key")
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        let kind = self.client_data_type.as_deref().unwrap_or(kind);
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    /// Answers `navigator.credentials.create()` with these options. Remembers the user
    /// handle the options carry.
    pub fn register(&mut self, options: &CreationChallengeResponse) -> RegisterPublicKeyCredential {
        let options = serde_json::to_value(options).unwrap();
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().unwrap();
        let challenge = public_key["challenge"].as_str().unwrap();
        let handle = public_key["user"]["id"].as_str().unwrap();
        self.user_handle = Some(URL_SAFE_NO_PAD.decode(handle).unwrap());

        let public = self.key().public_key().as_ref().to_vec();
        let (x, y) = (public[1..33].to_vec(), public[33..65].to_vec());
        let cose = Value::Map(
            [
                (Value::Integer(1), Value::Integer(2)),
                (Value::Integer(3), Value::Integer(-7)),
                (Value::Integer(-1), Value::Integer(1)),
                (Value::Integer(-2), Value::Bytes(x)),
                (Value::Integer(-3), Value::Bytes(y)),
            ]
            .into_iter()
            .collect(),
        );
        let mut auth_data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth_data.push(self.flags | AT);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&serde_cbor_2::to_vec(&cose).unwrap());
        let attestation = Value::Map(
            [
                (Value::Text("fmt".into()), Value::Text("none".into())),
                (
                    Value::Text("attStmt".into()),
                    Value::Map(Default::default()),
                ),
                (Value::Text("authData".into()), Value::Bytes(auth_data)),
            ]
            .into_iter()
            .collect(),
        );
        let id = URL_SAFE_NO_PAD.encode(&self.credential_id);
        serde_json::from_value(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(serde_cbor_2::to_vec(&attestation).unwrap()),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(self.client_data("webauthn.create", challenge)),
            },
            "extensions": {},
        }))
        .expect("the engine parses a browser's registration JSON")
    }

    /// Answers `navigator.credentials.get()` with these options, whatever they allow.
    pub fn sign(&mut self, options: &RequestChallengeResponse) -> PublicKeyCredential {
        let options = serde_json::to_value(options).unwrap();
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().unwrap();
        let challenge = public_key["challenge"].as_str().unwrap();
        self.counter += self.counter_step;

        let mut auth_data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth_data.push(self.flags);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
        let signature = self
            .key()
            .sign(&SystemRandom::new(), &signed)
            .expect("a signature");
        let id = URL_SAFE_NO_PAD.encode(&self.credential_id);
        serde_json::from_value(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data),
                "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
                "userHandle": self.user_handle.as_ref().map(|h| URL_SAFE_NO_PAD.encode(h)),
            },
            "extensions": {},
        }))
        .expect("the engine parses a browser's assertion JSON")
    }
}
