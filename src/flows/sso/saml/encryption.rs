//! Encrypted assertions (XML Encryption 1.1): our key per connection, and the decryption
//! of an `EncryptedAssertion` before the signature work. Key transport RSA-OAEP and
//! content AES-128-GCM only (checklist SAML-10): RSA 1.5 (Bleichenbacher), 3DES and CBC
//! modes (the padding oracle of "How to Break XML Encryption", Jager and Somorovsky, 2011)
//! are refused. The arithmetic is samael's (OpenSSL); the decrypted assertion then goes
//! through every check a plain one does, including its own signature (SAML-08).

use base64::Engine as _;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use samael::crypto::{Crypto, CryptoProvider};
use samael::schema::CipherValue;

use super::xml::{self, DSIG, SAML, XENC, failed, only_child};
use crate::crypto::{Keyring, Sealed};
use crate::model::ConnectionId;
use crate::{Error, Timestamp};

const RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
/// AES-GCM's IV and tag, as XML Encryption 1.1 lays them out around the ciphertext.
const GCM_IV: usize = 12;
const GCM_TAG: usize = 16;

/// The algorithms our metadata offers the provider.
pub(crate) const OFFERED: [&str; 2] = [AES128_GCM, RSA_OAEP];

fn aad(connection: ConnectionId) -> Vec<u8> {
    [b"portcullis saml sp key ".as_slice(), connection.as_bytes()].concat()
}

fn internal(_: openssl::error::ErrorStack) -> Error {
    Error::Internal("the SAML encryption key could not be made")
}

/// A new RSA-2048 key and a self-signed certificate for it (valid ten years from `now`):
/// the certificate (base64 DER) and the key, sealed under the connection's id.
pub(crate) fn new_sp_key(
    keyring: &Keyring,
    connection: ConnectionId,
    now: Timestamp,
) -> Result<(String, Sealed), Error> {
    let key = PKey::from_rsa(Rsa::generate(2048).map_err(internal)?).map_err(internal)?;
    let mut name = X509NameBuilder::new().map_err(internal)?;
    name.append_entry_by_text("CN", "portcullis SAML service provider")
        .map_err(internal)?;
    let name = name.build();
    let serial = crate::crypto::random_bytes::<16>()?;
    let serial = BigNum::from_slice(&serial[..]).map_err(internal)?;
    let mut cert = X509Builder::new().map_err(internal)?;
    cert.set_version(2).map_err(internal)?;
    let serial = Asn1Integer::from_bn(&serial).map_err(internal)?;
    cert.set_serial_number(&serial).map_err(internal)?;
    cert.set_subject_name(&name).map_err(internal)?;
    cert.set_issuer_name(&name).map_err(internal)?;
    cert.set_pubkey(&key).map_err(internal)?;
    let from = now.unix_secs();
    let not_before = Asn1Time::from_unix(from).map_err(internal)?;
    let not_after = Asn1Time::from_unix(from + 10 * 365 * 86_400).map_err(internal)?;
    cert.set_not_before(&not_before).map_err(internal)?;
    cert.set_not_after(&not_after).map_err(internal)?;
    cert.sign(&key, MessageDigest::sha256()).map_err(internal)?;
    let cert = cert.build().to_der().map_err(internal)?;
    let private = zeroize::Zeroizing::new(key.private_key_to_der().map_err(internal)?);
    let sealed = keyring.seal(&private, &aad(connection))?;
    Ok((
        base64::engine::general_purpose::STANDARD.encode(cert),
        sealed,
    ))
}

/// `document` with its `EncryptedAssertion` (the Response's child) replaced by the
/// decrypted assertion, in place, so that the assertion keeps its namespace context and
/// its signature's canonical form.
pub(crate) fn decrypt(
    document: String,
    keyring: &Keyring,
    connection: ConnectionId,
    key: Option<&Sealed>,
) -> Result<String, Error> {
    let parsed = xml::parse(&document)?;
    // A second one, or one elsewhere, stays encrypted: the shape check refuses it.
    let encrypted = xml::children(parsed.root_element(), SAML, "EncryptedAssertion")
        .next()
        .ok_or(failed("the SAML response holds no encrypted assertion"))?;
    let key = key.ok_or(failed("the connection has no decryption key"))?;
    let malformed = "the encrypted SAML assertion is malformed";
    let data = only_child(encrypted, XENC, "EncryptedData", malformed)?;
    let method = |node| -> Result<&str, Error> {
        let method = only_child(node, XENC, "EncryptionMethod", malformed)?;
        Ok(method.attribute("Algorithm").unwrap_or_default())
    };
    if method(data)? != AES128_GCM {
        return Err(failed("the SAML assertion's encryption is not accepted"));
    }
    let key_info = only_child(data, DSIG, "KeyInfo", malformed)?;
    let encrypted_key = only_child(key_info, XENC, "EncryptedKey", malformed)?;
    let transport = only_child(encrypted_key, XENC, "EncryptionMethod", malformed)?;
    let digest = xml::children(transport, DSIG, "DigestMethod")
        .next()
        .and_then(|d| d.attribute("Algorithm"));
    if method(encrypted_key)? != RSA_OAEP || digest.is_some_and(|d| d != SHA1) {
        return Err(failed("the SAML assertion's key transport is not accepted"));
    }
    let cipher_value = |node| -> Result<CipherValue, Error> {
        let cipher = only_child(node, XENC, "CipherData", malformed)?;
        let value = only_child(cipher, XENC, "CipherValue", malformed)?;
        Ok(CipherValue {
            value: xml::text(value)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        })
    };
    let wrapped = cipher_value(encrypted_key)?;
    let content = cipher_value(data)?;
    // samael slices IV and tag off the content: too short a value must not reach it.
    let content_len = base64::engine::general_purpose::STANDARD
        .decode(&content.value)
        .map_err(|_| failed(malformed))?
        .len();
    if content_len < GCM_IV + GCM_TAG + 1 {
        return Err(failed(malformed));
    }
    let private = keyring.open(key, &aad(connection))?;
    let private = PKey::private_key_from_der(&private)
        .map_err(|_| Error::Internal("the SAML decryption key does not load"))?;
    let undecryptable = |_| failed("the SAML assertion could not be decrypted");
    let content_key = zeroize::Zeroizing::new(
        Crypto::decrypt_assertion_key_info(&wrapped, RSA_OAEP, &private).map_err(undecryptable)?,
    );
    if content_key.len() != 16 {
        return Err(failed("the SAML assertion could not be decrypted"));
    }
    let plain = Crypto::decrypt_assertion_value_info(&content, AES128_GCM, &content_key)
        .map_err(undecryptable)?;
    let plain = String::from_utf8(plain).map_err(|_| failed(malformed))?;
    let range = encrypted.range();
    Ok(format!(
        "{}{}{}",
        &document[..range.start],
        plain.trim(),
        &document[range.end..]
    ))
}
