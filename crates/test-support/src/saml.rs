//! The SAML fixture kit: a test IdP's key ([`IdpKey`]), SAML 2.0 Responses built from a
//! [`ResponseSpec`] and signed through samael's XML-DSig (libxmlsec1, never our own
//! canonicalization or signature code), and attack variants of them ([`mutate`]).
//!
//! ```no_run
//! use portcullis_test_support::saml::{self, IdpKey, ResponseSpec};
//! let key = IdpKey::generate("idp.test");
//! let xml = ResponseSpec::new(
//!     "https://idp.test/metadata",
//!     "https://sp.test/metadata",
//!     "https://sp.test/acs",
//!     "alice@example.com",
//!     1_700_000_000,
//! )
//! .attribute("groups", &["admins", "staff"])
//! .sign(&key);
//! let form_field = saml::encode(&xml);
//! let attack = saml::mutate::xsw(3, &xml, "mallory@example.com");
//! # let _ = (form_field, attack);
//! ```
//!
//! The mutators cut and splice the bytes of the document they are given, guided by the byte
//! ranges roxmltree reports, so everything they do not touch stays byte for byte as signed.

use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use roxmltree::Node;
use samael::crypto::{Crypto, CryptoProvider};

/// The SAML 2.0 protocol namespace (prefix `samlp:`).
pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// The SAML 2.0 assertion namespace (prefix `saml:`).
pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The XML-DSig namespace (prefix `ds:`).
pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The ID an attack gives the evil Response where it needs a fresh one (XSW1, XSW2).
pub const EVIL_RESPONSE_ID: &str = "_evil_response_ID";
/// The ID an attack gives the evil Assertion where it needs a fresh one.
pub const EVIL_ASSERTION_ID: &str = "_evil_assertion_ID";

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const XPATH: &str = "http://www.w3.org/TR/1999/REC-xpath-19991116";

/// A test IdP's signing key: RSA-2048 and a self-signed X.509 certificate, made fresh.
#[derive(Clone)]
pub struct IdpKey {
    /// The RSA private key, PKCS#1 DER (what samael's own IdP hands `sign_xml`).
    private_key_der: Vec<u8>,
    cert_der: Vec<u8>,
}

impl fmt::Debug for IdpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpKey")
            .field("cert_der", &format_args!("{} bytes", self.cert_der.len()))
            .finish_non_exhaustive()
    }
}

impl IdpKey {
    /// A fresh RSA-2048 key and a self-signed SHA-256 certificate for `CN=<common_name>`,
    /// valid from 2000 to 2100 (so a manual clock anywhere in between is fine).
    pub fn generate(common_name: &str) -> IdpKey {
        let rsa = Rsa::generate(2048).unwrap();
        let private_key_der = rsa.private_key_to_der().unwrap();
        let pkey = PKey::from_rsa(rsa).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .unwrap();
        let name = name.build();
        let mut serial = BigNum::new().unwrap();
        serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
        let mut cert = X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&pkey).unwrap();
        cert.set_not_before(&Asn1Time::from_unix(946_684_800).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::from_unix(4_102_444_800).unwrap())
            .unwrap();
        cert.sign(&pkey, MessageDigest::sha256()).unwrap();
        let cert_der = cert.build().to_der().unwrap();
        IdpKey {
            private_key_der,
            cert_der,
        }
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate as standard base64 of the DER, on one line, no PEM armour (as in
    /// metadata's `<ds:X509Certificate>`).
    pub fn cert_base64(&self) -> String {
        STANDARD.encode(&self.cert_der)
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        let pem = X509::from_der(&self.cert_der).unwrap().to_pem().unwrap();
        String::from_utf8(pem).unwrap()
    }

    /// The private key, PKCS#1 DER.
    pub fn private_key_der(&self) -> &[u8] {
        &self.private_key_der
    }
}

/// The signature algorithm of a Signature template (SignatureMethod and DigestMethod).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigAlg {
    /// rsa-sha256 with a sha256 digest.
    RsaSha256,
    /// rsa-sha512 with a sha512 digest.
    RsaSha512,
    /// rsa-sha1 with a sha1 digest (libxmlsec1 1.2 still signs it).
    RsaSha1,
    /// rsa-sha256 with an md5 digest (libxmlsec1 1.2 on OpenSSL still computes it).
    RsaSha256Md5Digest,
}

impl SigAlg {
    /// The SignatureMethod Algorithm URI.
    pub fn signature_uri(self) -> &'static str {
        match self {
            SigAlg::RsaSha256 | SigAlg::RsaSha256Md5Digest => {
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
            }
            SigAlg::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            SigAlg::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        }
    }

    /// The DigestMethod Algorithm URI.
    pub fn digest_uri(self) -> &'static str {
        match self {
            SigAlg::RsaSha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            SigAlg::RsaSha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
            SigAlg::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            SigAlg::RsaSha256Md5Digest => "http://www.w3.org/2001/04/xmldsig-more#md5",
        }
    }
}

/// Everything in a Response, with defaults that a correct SP accepts.
#[derive(Clone, Debug)]
pub struct ResponseSpec {
    /// Response/@ID; default `_r` + 32 random hex digits.
    pub response_id: String,
    /// Assertion/@ID; default `_a` + 32 random hex digits.
    pub assertion_id: String,
    /// The IdP's entity id, the Issuer of both the Response and the Assertion.
    pub issuer: String,
    /// Response/@Destination; default `Some(acs_url)`.
    pub destination: Option<String>,
    /// Response/@InResponseTo and SubjectConfirmationData/@InResponseTo; default `None`.
    pub in_response_to: Option<String>,
    /// SubjectConfirmationData/@Recipient; default the ACS URL.
    pub recipient: String,
    /// The Audience values of one AudienceRestriction (none when empty); default the SP's
    /// entity id.
    pub audiences: Vec<String>,
    /// The Subject's NameID.
    pub name_id: String,
    /// NameID/@Format; default the emailAddress format.
    pub name_id_format: String,
    /// The AttributeStatement (none when empty): name and values; default empty.
    pub attributes: Vec<(String, Vec<String>)>,
    /// IssueInstant of both, and AuthnInstant, in unix seconds.
    pub issue_instant: i64,
    /// Conditions/@NotBefore; default `issue_instant - 60`.
    pub not_before: i64,
    /// Conditions/@NotOnOrAfter and SubjectConfirmationData/@NotOnOrAfter; default
    /// `issue_instant + 300`.
    pub not_on_or_after: i64,
    /// AuthnStatement/@SessionNotOnOrAfter; default `None`.
    pub session_not_on_or_after: Option<i64>,
    /// AuthnStatement/@SessionIndex; default `Some("_s" + 32 random hex digits)`.
    pub session_index: Option<String>,
    /// The top-level StatusCode/@Value; default Success.
    pub status: String,
    /// Sign the Response; default false.
    pub sign_response: bool,
    /// Sign the Assertion; default true.
    pub sign_assertion: bool,
    /// The algorithm of every signature; default [`SigAlg::RsaSha256`].
    pub alg: SigAlg,
}

/// What [`ResponseSpec::render`] changes in the template for some attacks.
#[derive(Default)]
struct Render<'a> {
    /// An `<saml:Advice>` (or any fragment) placed right after the Conditions.
    advice: Option<&'a str>,
    /// Reference/@URI of the Response's signature instead of `#<response_id>`.
    response_uri: Option<&'a str>,
    /// Reference/@URI of the Assertion's signature instead of `#<assertion_id>`.
    assertion_uri: Option<&'a str>,
}

impl ResponseSpec {
    /// Defaults for a response from `idp_entity_id` to the SP `sp_entity_id` with ACS
    /// `acs_url`, for `name_id`, issued at `now` (unix seconds).
    pub fn new(
        idp_entity_id: &str,
        sp_entity_id: &str,
        acs_url: &str,
        name_id: &str,
        now: i64,
    ) -> ResponseSpec {
        ResponseSpec {
            response_id: format!("_r{}", random_hex()),
            assertion_id: format!("_a{}", random_hex()),
            issuer: idp_entity_id.to_owned(),
            destination: Some(acs_url.to_owned()),
            in_response_to: None,
            recipient: acs_url.to_owned(),
            audiences: vec![sp_entity_id.to_owned()],
            name_id: name_id.to_owned(),
            name_id_format: EMAIL_FORMAT.to_owned(),
            attributes: Vec::new(),
            issue_instant: now,
            not_before: now - 60,
            not_on_or_after: now + 300,
            session_not_on_or_after: None,
            session_index: Some(format!("_s{}", random_hex())),
            status: SUCCESS.to_owned(),
            sign_response: false,
            sign_assertion: true,
            alg: SigAlg::RsaSha256,
        }
    }

    /// Adds an attribute with these values to the AttributeStatement.
    pub fn attribute(mut self, name: &str, values: &[&str]) -> Self {
        self.attributes.push((
            name.to_owned(),
            values.iter().map(|value| (*value).to_owned()).collect(),
        ));
        self
    }

    /// The unsigned XML with Signature templates where signing is asked for: the
    /// Assertion's right after its Issuer, the Response's right after its Issuer; exclusive
    /// c14n, enveloped-signature and exc-c14n transforms, Reference URI `#<ID>`, KeyInfo
    /// with the X509Certificate. `samlp:` and `saml:` are declared on the Response, `saml:`
    /// again on the Assertion and `ds:` on each Signature, so moved copies keep them.
    pub fn template(&self, key: &IdpKey) -> String {
        self.render(key, &Render::default())
    }

    /// The signed XML (libxml2's serialization, with an XML declaration).
    pub fn sign(&self, key: &IdpKey) -> String {
        sign_xml(&self.template(key), key)
    }

    fn render(&self, key: &IdpKey, render: &Render<'_>) -> String {
        let instant = xs_datetime(self.issue_instant);
        let not_on_or_after = xs_datetime(self.not_on_or_after);
        let mut a = String::new();
        a += &format!(
            "<saml:Assertion xmlns:saml=\"{SAML}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{instant}\">\n",
            portcullis::escape_html(&self.assertion_id)
        );
        a += &format!(
            "<saml:Issuer Format=\"{ENTITY_FORMAT}\">{}</saml:Issuer>\n",
            portcullis::escape_html(&self.issuer)
        );
        if self.sign_assertion {
            let uri = match render.assertion_uri {
                Some(uri) => uri.to_owned(),
                None => format!("#{}", self.assertion_id),
            };
            a += &signature_template(&uri, self.alg, key);
        }
        a += "<saml:Subject>\n";
        a += &format!(
            "<saml:NameID Format=\"{}\">{}</saml:NameID>\n",
            portcullis::escape_html(&self.name_id_format),
            portcullis::escape_html(&self.name_id)
        );
        a += "<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\n";
        a += &format!(
            "<saml:SubjectConfirmationData NotOnOrAfter=\"{not_on_or_after}\" Recipient=\"{}\"",
            portcullis::escape_html(&self.recipient)
        );
        if let Some(in_response_to) = &self.in_response_to {
            a += &format!(
                " InResponseTo=\"{}\"",
                portcullis::escape_html(in_response_to)
            );
        }
        a += "/>\n</saml:SubjectConfirmation>\n</saml:Subject>\n";
        a += &format!(
            "<saml:Conditions NotBefore=\"{}\" NotOnOrAfter=\"{not_on_or_after}\">\n",
            xs_datetime(self.not_before)
        );
        if !self.audiences.is_empty() {
            a += "<saml:AudienceRestriction>\n";
            for audience in &self.audiences {
                a += &format!(
                    "<saml:Audience>{}</saml:Audience>\n",
                    portcullis::escape_html(audience)
                );
            }
            a += "</saml:AudienceRestriction>\n";
        }
        a += "</saml:Conditions>\n";
        if let Some(advice) = render.advice {
            a += advice;
            a += "\n";
        }
        a += &format!("<saml:AuthnStatement AuthnInstant=\"{instant}\"");
        if let Some(session_index) = &self.session_index {
            a += &format!(
                " SessionIndex=\"{}\"",
                portcullis::escape_html(session_index)
            );
        }
        if let Some(session_end) = self.session_not_on_or_after {
            a += &format!(" SessionNotOnOrAfter=\"{}\"", xs_datetime(session_end));
        }
        a += ">\n<saml:AuthnContext>\n<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>\n</saml:AuthnContext>\n</saml:AuthnStatement>\n";
        if !self.attributes.is_empty() {
            a += "<saml:AttributeStatement>\n";
            for (name, values) in &self.attributes {
                a += &format!(
                    "<saml:Attribute Name=\"{}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:basic\">\n",
                    portcullis::escape_html(name)
                );
                for value in values {
                    a += &format!(
                        "<saml:AttributeValue>{}</saml:AttributeValue>\n",
                        portcullis::escape_html(value)
                    );
                }
                a += "</saml:Attribute>\n";
            }
            a += "</saml:AttributeStatement>\n";
        }
        a += "</saml:Assertion>";

        let mut r = format!(
            "<samlp:Response xmlns:samlp=\"{SAMLP}\" xmlns:saml=\"{SAML}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{instant}\"",
            portcullis::escape_html(&self.response_id)
        );
        if let Some(destination) = &self.destination {
            r += &format!(" Destination=\"{}\"", portcullis::escape_html(destination));
        }
        if let Some(in_response_to) = &self.in_response_to {
            r += &format!(
                " InResponseTo=\"{}\"",
                portcullis::escape_html(in_response_to)
            );
        }
        r += ">\n";
        r += &format!(
            "<saml:Issuer Format=\"{ENTITY_FORMAT}\">{}</saml:Issuer>\n",
            portcullis::escape_html(&self.issuer)
        );
        if self.sign_response {
            let uri = match render.response_uri {
                Some(uri) => uri.to_owned(),
                None => format!("#{}", self.response_id),
            };
            r += &signature_template(&uri, self.alg, key);
        }
        r += &format!(
            "<samlp:Status>\n<samlp:StatusCode Value=\"{}\"/>\n</samlp:Status>\n",
            portcullis::escape_html(&self.status)
        );
        r += &a;
        r += "\n</samlp:Response>\n";
        r
    }
}

/// A `<ds:Signature>` template over `uri`, with the certificate in KeyInfo.
fn signature_template(uri: &str, alg: SigAlg, key: &IdpKey) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"{DS}\">\n<ds:SignedInfo>\n\
         <ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>\n\
         <ds:SignatureMethod Algorithm=\"{}\"/>\n\
         <ds:Reference URI=\"{}\">\n<ds:Transforms>\n\
         <ds:Transform Algorithm=\"{ENVELOPED}\"/>\n\
         <ds:Transform Algorithm=\"{EXC_C14N}\"/>\n\
         </ds:Transforms>\n\
         <ds:DigestMethod Algorithm=\"{}\"/>\n\
         <ds:DigestValue></ds:DigestValue>\n\
         </ds:Reference>\n</ds:SignedInfo>\n\
         <ds:SignatureValue></ds:SignatureValue>\n\
         <ds:KeyInfo>\n<ds:X509Data>\n<ds:X509Certificate>{}</ds:X509Certificate>\n</ds:X509Data>\n</ds:KeyInfo>\n\
         </ds:Signature>\n",
        alg.signature_uri(),
        portcullis::escape_html(uri),
        alg.digest_uri(),
        key.cert_base64()
    )
}

/// Base64 (standard alphabet, padded) for the HTTP-POST binding's `SAMLResponse` field.
pub fn encode(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}

/// The local name a signature is renamed to while another one is signed.
const HIDDEN: &str = "PortcullisHiddenSignature";

/// Signs every Signature template (a `ds:Signature` with an empty SignatureValue) in `xml`
/// with `key`, through samael's `Crypto::sign_xml` (libxmlsec1).
///
/// libxmlsec1 signs the first `ds:Signature` in document order only, so templates are
/// signed innermost first (one whose reference holds no other template), and the
/// signatures before it in document order are renamed away for that call and back after
/// it (none of them may lie inside the reference being signed). Attributes named `ID` are
/// the ones registered as XML IDs. Panics if libxmlsec1 refuses.
pub fn sign_xml(xml: &str, key: &IdpKey) -> String {
    let mut doc = xml.to_owned();
    let mut remaining = usize::MAX;
    loop {
        let Some((hidden, templates)) = hide_all_but_next_template(&doc) else {
            return doc;
        };
        assert!(
            templates < remaining,
            "signing did not fill a Signature template:\n{doc}"
        );
        remaining = templates;
        let signed = Crypto::sign_xml(hidden.as_str(), &key.private_key_der)
            .unwrap_or_else(|error| panic!("libxmlsec1 could not sign: {error:?}\n{hidden}"));
        doc = signed.replace(HIDDEN, "Signature");
    }
}

/// The document with the signatures before the next template to sign renamed away, and
/// how many templates it holds; `None` when it holds none.
fn hide_all_but_next_template(doc: &str) -> Option<(String, usize)> {
    let parsed = parse(doc);
    let signatures: Vec<Node<'_, '_>> = parsed
        .descendants()
        .filter(|node| is(*node, DS, "Signature"))
        .collect();
    let templates: Vec<Node<'_, '_>> = signatures
        .iter()
        .copied()
        .filter(|signature| is_template(*signature))
        .collect();
    if templates.is_empty() {
        return None;
    }
    let target = templates
        .iter()
        .copied()
        .find(|template| {
            let reference = referenced(*template).range();
            templates
                .iter()
                .all(|other| other == template || !contains(&reference, &other.range()))
        })
        .unwrap_or_else(|| panic!("Signature templates reference each other:\n{doc}"));
    let reference = referenced(target).range();
    let mut edits = Vec::new();
    for signature in &signatures {
        if signature.range().start >= target.range().start {
            continue;
        }
        assert!(
            !contains(&reference, &signature.range()),
            "a signature inside the reference precedes its template: cannot sign:\n{doc}"
        );
        edits.extend(rename_signature(doc, *signature));
    }
    Some((splice(doc, 0..doc.len(), edits), templates.len()))
}

/// Whether this `ds:Signature` is an unsigned template.
fn is_template(signature: Node<'_, '_>) -> bool {
    child(signature, DS, "SignatureValue")
        .map(|value| value.text().unwrap_or("").trim().is_empty())
        .unwrap_or(false)
}

/// The element a signature's first Reference points at: `#id` the element with that `ID`,
/// anything else the whole document.
fn referenced<'a, 'i>(signature: Node<'a, 'i>) -> Node<'a, 'i> {
    let uri = child(signature, DS, "SignedInfo")
        .and_then(|signed_info| child(signed_info, DS, "Reference"))
        .and_then(|reference| reference.attribute("URI"))
        .unwrap_or("");
    let root = signature.document().root_element();
    match uri.strip_prefix('#') {
        Some(id) => root
            .descendants()
            .find(|node| node.attribute("ID") == Some(id))
            .unwrap_or_else(|| panic!("no element has ID {id:?}")),
        None => root,
    }
}

/// Renames a `ds:Signature` element's start and end tag to [`HIDDEN`].
fn rename_signature(xml: &str, signature: Node<'_, '_>) -> Vec<(Range<usize>, String)> {
    let range = signature.range();
    let qname_end = xml[range.start + 1..]
        .find([' ', '\t', '\r', '\n', '/', '>'])
        .map(|end| range.start + 1 + end)
        .unwrap();
    let mut edits = vec![(qname_end - "Signature".len()..qname_end, HIDDEN.to_owned())];
    let element = &xml[range.clone()];
    if !element.ends_with("/>") {
        let close = range.start + element.rfind("</").unwrap();
        let close_end = close + xml[close..].find(['>', ' ', '\t', '\r', '\n']).unwrap();
        edits.push((close_end - "Signature".len()..close_end, HIDDEN.to_owned()));
    }
    edits
}

/// How [`encrypt_assertion`] encrypts: content cipher and key transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncAlg {
    /// AES-128-GCM content, RSA-OAEP (MGF1, SHA-1) key transport: what a careful IdP sends.
    Aes128GcmOaep,
    /// AES-128-CBC content (the padding-oracle mode), RSA-OAEP key transport.
    Aes128CbcOaep,
    /// AES-128-GCM content, RSA PKCS#1 v1.5 key transport (Bleichenbacher's oracle).
    Aes128GcmRsa15,
}

/// `signed` with its Assertion replaced by an `EncryptedAssertion` for the SP whose
/// certificate is `sp_cert` (base64 DER), as an IdP encrypts (XML Encryption 1.1: the
/// content's IV, ciphertext and tag in one CipherValue). The assertion's own signature
/// stays inside the ciphertext.
pub fn encrypt_assertion(signed: &str, sp_cert: &str, alg: EncAlg) -> String {
    use openssl::rsa::Padding;
    use openssl::symm::Cipher;
    let doc = parse(signed);
    let assertion = doc
        .descendants()
        .find(|n| is(*n, SAML, "Assertion"))
        .expect("an assertion to encrypt");
    let range = assertion.range();
    let plaintext = &signed[range.clone()];
    let mut key = [0u8; 16];
    openssl::rand::rand_bytes(&mut key).unwrap();
    let (content_method, content) = match alg {
        EncAlg::Aes128GcmOaep | EncAlg::Aes128GcmRsa15 => {
            let mut iv = [0u8; 12];
            openssl::rand::rand_bytes(&mut iv).unwrap();
            let mut tag = [0u8; 16];
            let ciphertext = openssl::symm::encrypt_aead(
                Cipher::aes_128_gcm(),
                &key,
                Some(&iv),
                &[],
                plaintext.as_bytes(),
                &mut tag,
            )
            .unwrap();
            (
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                [&iv[..], &ciphertext, &tag].concat(),
            )
        }
        EncAlg::Aes128CbcOaep => {
            let mut iv = [0u8; 16];
            openssl::rand::rand_bytes(&mut iv).unwrap();
            let ciphertext = openssl::symm::encrypt(
                Cipher::aes_128_cbc(),
                &key,
                Some(&iv),
                plaintext.as_bytes(),
            )
            .unwrap();
            (
                "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                [&iv[..], &ciphertext].concat(),
            )
        }
    };
    let cert = X509::from_der(&STANDARD.decode(sp_cert).unwrap()).unwrap();
    let rsa = cert.public_key().unwrap().rsa().unwrap();
    let (transport, padding) = match alg {
        EncAlg::Aes128GcmRsa15 => ("http://www.w3.org/2001/04/xmlenc#rsa-1_5", Padding::PKCS1),
        _ => (
            "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            Padding::PKCS1_OAEP,
        ),
    };
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa.public_encrypt(&key, &mut wrapped, padding).unwrap();
    wrapped.truncate(n);
    let encrypted = format!(
        concat!(
            r#"<saml:EncryptedAssertion xmlns:saml="{saml}">"#,
            r#"<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" "#,
            r#"Type="http://www.w3.org/2001/04/xmlenc#Element">"#,
            r#"<xenc:EncryptionMethod Algorithm="{content_method}"/>"#,
            r#"<ds:KeyInfo xmlns:ds="{ds}"><xenc:EncryptedKey>"#,
            r#"<xenc:EncryptionMethod Algorithm="{transport}"/>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData>"#,
            r#"</xenc:EncryptedKey></ds:KeyInfo>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{content}</xenc:CipherValue></xenc:CipherData>"#,
            r#"</xenc:EncryptedData></saml:EncryptedAssertion>"#
        ),
        saml = SAML,
        ds = DS,
        content_method = content_method,
        transport = transport,
        wrapped = STANDARD.encode(wrapped),
        content = STANDARD.encode(content),
    );
    splice(signed, 0..signed.len(), vec![(range, encrypted)])
}

/// Parses a document, DTDs allowed (roxmltree expands no external entity).
fn parse(xml: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(xml, options)
        .unwrap_or_else(|error| panic!("not well-formed XML ({error}):\n{xml}"))
}

fn is(node: Node<'_, '_>, namespace: &str, local: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == local
        && node.tag_name().namespace() == Some(namespace)
}

fn child<'a, 'i>(node: Node<'a, 'i>, namespace: &str, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|child| is(*child, namespace, local))
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// `xml[span]` with the edits (absolute, non-overlapping byte ranges inside `span`, an empty
/// range being an insertion) applied.
fn splice(xml: &str, span: Range<usize>, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(xml.len());
    let mut at = span.start;
    for (range, with) in edits {
        assert!(
            at <= range.start && range.end <= span.end,
            "overlapping edits"
        );
        out.push_str(&xml[at..range.start]);
        out.push_str(&with);
        at = range.end;
    }
    out.push_str(&xml[at..span.end]);
    out
}

/// 32 random hex digits.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Unix seconds as an `xs:dateTime` in UTC: `2023-11-14T22:13:20Z`.
fn xs_datetime(unix: i64) -> String {
    portcullis::Timestamp::from_unix_secs(unix).to_rfc3339()
}

/// Attack variants. Each takes a *validly signed* response (from [`ResponseSpec::sign`])
/// and returns the attack document; they panic when the input lacks what they need.
pub mod mutate {
    use std::ops::Range;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use roxmltree::Node;

    use super::{
        DS, EVIL_ASSERTION_ID, EVIL_RESPONSE_ID, IdpKey, Render, ResponseSpec, SAML, SAMLP, XPATH,
        child, is, parse, sign_xml, splice,
    };

    /// Somorovsky et al. "On Breaking SAML" XSW1..XSW8, as SAML Raider's `XSWHelpers`
    /// builds them; `n` in 1..=8. The original signed content stays (so the signature may
    /// still verify) while the evil copy carries `victim` as NameID:
    ///
    /// - 1: the Response becomes evil (ID [`EVIL_RESPONSE_ID`], victim NameID); an
    ///   unsigned copy of the original Response goes inside its Signature, as last child.
    /// - 2: the same, the original copy placed right before the Signature instead.
    /// - 3: an unsigned evil Assertion copy (ID [`EVIL_ASSERTION_ID`]) before the signed one.
    /// - 4: an unsigned evil Assertion copy (ID [`EVIL_ASSERTION_ID`]) at the end of the
    ///   Response, with the signed Assertion moved inside it as its last child.
    /// - 5: the signed Assertion becomes evil in place (ID [`EVIL_ASSERTION_ID`], keeps the
    ///   Signature); an unsigned copy of the original goes at the end of the Response.
    /// - 6: the same, the unsigned original copy placed inside the Signature as last child.
    /// - 7: an unqualified `<Extensions>` before the signed Assertion holding an unsigned
    ///   evil copy that keeps the original ID (so two elements share it).
    /// - 8: the signed Assertion becomes evil in place (ID unchanged, keeps the Signature);
    ///   an unsigned original copy (same ID) goes in an unqualified `<Object>` as the
    ///   Signature's last child.
    ///
    /// XSW1–2 need a signed Response (`spec.sign_response = true`), XSW3–8 a signed
    /// Assertion.
    pub fn xsw(n: u8, signed: &str, victim: &str) -> String {
        let doc = parse(signed);
        let response = response(&doc);
        let assertion = assertion(&doc);
        let whole = 0..signed.len();
        match n {
            1 | 2 => {
                let signature = child(response, DS, "Signature")
                    .expect("XSW1 and XSW2 need a signed Response (sign_response = true)");
                let original = splice(
                    signed,
                    response.range(),
                    vec![(signature.range(), String::new())],
                );
                let at = if n == 1 {
                    end_tag_start(signed, signature)
                } else {
                    signature.range().start
                };
                splice(
                    signed,
                    whole,
                    vec![
                        (id_value(response), EVIL_RESPONSE_ID.to_owned()),
                        (name_id_text(assertion), portcullis::escape_html(victim)),
                        (at..at, original),
                    ],
                )
            }
            3..=8 => {
                let signature = child(assertion, DS, "Signature")
                    .expect("XSW3 to XSW8 need a signed Assertion (sign_assertion = true)");
                let unsigned_original = copy_assertion(signed, assertion, None, None);
                let edits = match n {
                    3 => {
                        let evil = copy_assertion(
                            signed,
                            assertion,
                            Some(EVIL_ASSERTION_ID),
                            Some(victim),
                        );
                        let at = assertion.range().start;
                        vec![(at..at, evil)]
                    }
                    4 => {
                        let evil = copy_assertion(
                            signed,
                            assertion,
                            Some(EVIL_ASSERTION_ID),
                            Some(victim),
                        );
                        let close = evil.rfind("</").unwrap();
                        let wrapped = format!(
                            "{}{}{}",
                            &evil[..close],
                            &signed[assertion.range()],
                            &evil[close..]
                        );
                        let at = end_tag_start(signed, response);
                        vec![(assertion.range(), String::new()), (at..at, wrapped)]
                    }
                    5 | 6 => {
                        let at = if n == 5 {
                            end_tag_start(signed, response)
                        } else {
                            end_tag_start(signed, signature)
                        };
                        vec![
                            (id_value(assertion), EVIL_ASSERTION_ID.to_owned()),
                            (name_id_text(assertion), portcullis::escape_html(victim)),
                            (at..at, unsigned_original),
                        ]
                    }
                    7 => {
                        let evil = copy_assertion(signed, assertion, None, Some(victim));
                        let at = assertion.range().start;
                        vec![(at..at, format!("<Extensions>{evil}</Extensions>\n"))]
                    }
                    _ => {
                        let at = end_tag_start(signed, signature);
                        vec![
                            (name_id_text(assertion), portcullis::escape_html(victim)),
                            (at..at, format!("<Object>{unsigned_original}</Object>\n")),
                        ]
                    }
                };
                splice(signed, whole, edits)
            }
            _ => panic!("XSW variants are 1 to 8, not {n}"),
        }
    }

    /// Inserts `<!---->` into the NameID text at byte `at` of the (escaped) text, the Duo
    /// comment trick: the signature still verifies, as exc-c14n drops comments.
    pub fn comment_in_name_id(signed: &str, at: usize) -> String {
        let doc = parse(signed);
        insert_in_text(signed, name_id_text(assertion(&doc)), at, "<!---->")
    }

    /// Inserts `<!---->` into the first value of attribute `name` at byte `at` of its text.
    pub fn comment_in_attribute(signed: &str, name: &str, at: usize) -> String {
        let doc = parse(signed);
        insert_in_text(signed, attribute_text(&doc, name), at, "<!---->")
    }

    /// Replaces the first value of attribute `name` (the signature then fails).
    pub fn tamper_attribute(signed: &str, name: &str, value: &str) -> String {
        let doc = parse(signed);
        let range = attribute_text(&doc, name);
        splice(
            signed,
            0..signed.len(),
            vec![(range, portcullis::escape_html(value))],
        )
    }

    /// Adds a DOCTYPE whose internal subset holds an ATTLIST that changes nothing
    /// (`<!ATTLIST saml:NameID Format CDATA #IMPLIED>`): the signature still verifies, so
    /// only refusing DTDs catches it.
    pub fn doctype_attlist(signed: &str) -> String {
        with_doctype(signed, "<!ATTLIST saml:NameID Format CDATA #IMPLIED>", None)
    }

    /// Adds a DOCTYPE declaring the external entity `xxe` (SYSTEM `url`), and makes the
    /// NameID's text `&xxe;`.
    pub fn external_entity(signed: &str, url: &str) -> String {
        assert!(!url.contains('"'), "the URL cannot hold a double quote");
        with_doctype(
            signed,
            &format!("<!ENTITY xxe SYSTEM \"{url}\">"),
            Some("&xxe;"),
        )
    }

    /// Adds a DOCTYPE with the billion-laughs entities (`lol9` expands to 10^9 "lol"), and
    /// makes the NameID's text `&lol9;`.
    pub fn billion_laughs(signed: &str) -> String {
        let mut subset = String::from("<!ENTITY lol \"lol\">");
        for level in 1..=9 {
            let previous = if level == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", level - 1)
            };
            subset += &format!(
                "\n<!ENTITY lol{level} \"{}\">",
                format!("&{previous};").repeat(10)
            );
        }
        with_doctype(signed, &subset, Some("&lol9;"))
    }

    /// A processing instruction (`<?portcullis split?>`) in the middle of NameID's text
    /// (c14n keeps PIs, so the signature fails).
    pub fn pi_in_name_id(signed: &str) -> String {
        let doc = parse(signed);
        let range = name_id_text(assertion(&doc));
        let text = &signed[range.clone()];
        let mut middle = text.len() / 2;
        while !text.is_char_boundary(middle) {
            middle += 1;
        }
        insert_in_text(signed, range, middle, "<?portcullis split?>")
    }

    /// An unsigned copy of the signed assertion (NameID = `victim`, ID
    /// [`EVIL_ASSERTION_ID`], no Signature) inserted right before it (the XSW3 document).
    pub fn extra_assertion_before(signed: &str, victim: &str) -> String {
        let doc = parse(signed);
        let assertion = assertion(&doc);
        let evil = copy_assertion(signed, assertion, Some(EVIL_ASSERTION_ID), Some(victim));
        let at = assertion.range().start;
        splice(signed, 0..signed.len(), vec![(at..at, format!("{evil}\n"))])
    }

    /// The same evil copy in a `<samlp:Extensions>` placed before `samlp:Status`, where
    /// the schema has it.
    pub fn assertion_in_extensions(signed: &str, victim: &str) -> String {
        let doc = parse(signed);
        let assertion = assertion(&doc);
        let status = child(response(&doc), SAMLP, "Status").expect("the Response has a Status");
        let evil = copy_assertion(signed, assertion, Some(EVIL_ASSERTION_ID), Some(victim));
        let at = status.range().start;
        let extensions = format!("<samlp:Extensions>{evil}</samlp:Extensions>\n");
        splice(signed, 0..signed.len(), vec![(at..at, extensions)])
    }

    /// The same evil copy in a `<samlp:StatusDetail>` at the end of `samlp:Status`.
    pub fn assertion_in_status_detail(signed: &str, victim: &str) -> String {
        let doc = parse(signed);
        let assertion = assertion(&doc);
        let status = child(response(&doc), SAMLP, "Status").expect("the Response has a Status");
        let evil = copy_assertion(signed, assertion, Some(EVIL_ASSERTION_ID), Some(victim));
        let at = end_tag_start(signed, status);
        let detail = format!("<samlp:StatusDetail>{evil}</samlp:StatusDetail>\n");
        splice(signed, 0..signed.len(), vec![(at..at, detail)])
    }

    /// The response of `spec`, with a `<saml:Advice>` after the Conditions holding an
    /// unsigned second assertion (NameID = `victim`, ID [`EVIL_ASSERTION_ID`]), signed
    /// afterwards with `key`: the assertion's signature is valid and covers the Advice.
    pub fn assertion_in_advice(spec: &ResponseSpec, key: &IdpKey, victim: &str) -> String {
        let template = spec.template(key);
        let doc = parse(&template);
        let evil = copy_assertion(
            &template,
            assertion(&doc),
            Some(EVIL_ASSERTION_ID),
            Some(victim),
        );
        let advice = format!("<saml:Advice>{evil}</saml:Advice>");
        let render = Render {
            advice: Some(&advice),
            ..Render::default()
        };
        sign_xml(&spec.render(key, &render), key)
    }

    /// Two elements sharing an ID value: an unsigned copy of the signed assertion (no
    /// Signature, same ID, same NameID) inserted right before it.
    pub fn duplicate_id(signed: &str) -> String {
        let doc = parse(signed);
        let assertion = assertion(&doc);
        let copy = copy_assertion(signed, assertion, None, None);
        let at = assertion.range().start;
        splice(signed, 0..signed.len(), vec![(at..at, format!("{copy}\n"))])
    }

    /// A copy of the SignedInfo right after it, in the assertion's Signature (the
    /// Response's when the assertion is unsigned).
    pub fn two_signed_info(signed: &str) -> String {
        let doc = parse(signed);
        let signed_info = signed_info(&doc);
        let at = signed_info.range().end;
        let copy = signed[signed_info.range()].to_owned();
        splice(signed, 0..signed.len(), vec![(at..at, copy)])
    }

    /// A copy of the Reference right after it, in the same SignedInfo (so the
    /// SignatureValue no longer matches).
    pub fn two_references(signed: &str) -> String {
        let doc = parse(signed);
        let reference = reference(&doc);
        let at = reference.range().end;
        let copy = signed[reference.range()].to_owned();
        splice(signed, 0..signed.len(), vec![(at..at, copy)])
    }

    /// The response of `spec`, signed validly with Reference URI="" (the whole document)
    /// on the outermost signature asked for: the Response's when `sign_response`, else the
    /// Assertion's.
    pub fn empty_reference_uri(spec: &ResponseSpec, key: &IdpKey) -> String {
        assert!(
            spec.sign_response || spec.sign_assertion,
            "the spec signs nothing"
        );
        let render = if spec.sign_response {
            Render {
                response_uri: Some(""),
                ..Render::default()
            }
        } else {
            Render {
                assertion_uri: Some(""),
                ..Render::default()
            }
        };
        sign_xml(&spec.render(key, &render), key)
    }

    /// An XPath transform (`not(ancestor-or-self::*[local-name()='NameID'])`) added after
    /// the enveloped-signature transform of the signature's Reference (unsigned, so the
    /// SignatureValue no longer matches).
    pub fn xpath_transform(signed: &str) -> String {
        let doc = parse(signed);
        let reference = reference(&doc);
        let transforms = child(reference, DS, "Transforms").expect("the Reference has Transforms");
        let first = child(transforms, DS, "Transform").expect("Transforms holds a Transform");
        let p = prefix(signed, first);
        let transform = format!(
            "<{p}Transform Algorithm=\"{XPATH}\"><{p}XPath>not(ancestor-or-self::*[local-name()='NameID'])</{p}XPath></{p}Transform>"
        );
        let at = first.range().end;
        splice(signed, 0..signed.len(), vec![(at..at, transform)])
    }

    /// A decoy digest (zero bytes, base64, as long as the real one) in a comment as the
    /// first child of the DigestValue, the xml-crypto CVE-2025-29775 shape (a verifier
    /// reading the first child takes the decoy; c14n drops it).
    pub fn digest_in_comment(signed: &str) -> String {
        let doc = parse(signed);
        let (range, decoy) = digest(signed, &doc);
        let at = range.start;
        splice(
            signed,
            0..signed.len(),
            vec![(at..at, format!("<!--{decoy}-->"))],
        )
    }

    /// Decoy DigestValues elsewhere in the signature: one commented out right before the
    /// SignedInfo, one in a `<ds:Object>` appended to the Signature (neither is signed:
    /// the signature still verifies).
    pub fn digest_elsewhere(signed: &str) -> String {
        let doc = parse(signed);
        let (_, decoy) = digest(signed, &doc);
        let signed_info = signed_info(&doc);
        let signature = signed_info.parent().unwrap();
        let p = prefix(signed, signed_info);
        let element = format!("<{p}DigestValue>{decoy}</{p}DigestValue>");
        let before = signed_info.range().start;
        let end = end_tag_start(signed, signature);
        splice(
            signed,
            0..signed.len(),
            vec![
                (before..before, format!("<!--{element}-->")),
                (end..end, format!("<{p}Object>{element}</{p}Object>")),
            ],
        )
    }

    /// The root, which must be a `samlp:Response`.
    fn response<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Node<'a, 'i> {
        let root = doc.root_element();
        assert!(is(root, SAMLP, "Response"), "not a samlp:Response");
        root
    }

    /// The first `saml:Assertion` of the document.
    fn assertion<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Node<'a, 'i> {
        doc.descendants()
            .find(|node| is(*node, SAML, "Assertion"))
            .expect("the document holds a saml:Assertion")
    }

    /// The range of the value of the element's `ID` attribute.
    fn id_value(node: Node<'_, '_>) -> Range<usize> {
        node.attributes()
            .find(|attribute| attribute.name() == "ID" && attribute.namespace().is_none())
            .expect("the element has an ID")
            .range_value()
    }

    /// The range of the text of an element holding one text node.
    fn text_of(node: Node<'_, '_>) -> Range<usize> {
        let mut children = node.children();
        match (children.next(), children.next()) {
            (Some(text), None) if text.is_text() => text.range(),
            _ => panic!("<{}> does not hold just text", node.tag_name().name()),
        }
    }

    /// The range of the assertion's Subject/NameID text.
    fn name_id_text(assertion: Node<'_, '_>) -> Range<usize> {
        let name_id = child(assertion, SAML, "Subject")
            .and_then(|subject| child(subject, SAML, "NameID"))
            .expect("the assertion has a Subject/NameID");
        text_of(name_id)
    }

    /// The range of the first value of attribute `name`.
    fn attribute_text(doc: &roxmltree::Document<'_>, name: &str) -> Range<usize> {
        let attribute = doc
            .descendants()
            .find(|node| is(*node, SAML, "Attribute") && node.attribute("Name") == Some(name))
            .unwrap_or_else(|| panic!("no attribute {name:?}"));
        let value = child(attribute, SAML, "AttributeValue")
            .unwrap_or_else(|| panic!("attribute {name:?} has no value"));
        text_of(value)
    }

    /// Where the element's end tag starts (it must not be self-closing).
    fn end_tag_start(xml: &str, node: Node<'_, '_>) -> usize {
        let element = &xml[node.range()];
        assert!(!element.ends_with("/>"), "a self-closing element");
        node.range().start + element.rfind("</").unwrap()
    }

    /// The element's prefix with its colon (`ds:`), or "" when unprefixed.
    fn prefix(xml: &str, node: Node<'_, '_>) -> String {
        let start = node.range().start + 1;
        let end = xml[start..]
            .find([' ', '\t', '\r', '\n', '/', '>'])
            .map_or(xml.len(), |end| start + end);
        match xml[start..end].rfind(':') {
            Some(colon) => xml[start..=start + colon].to_owned(),
            None => String::new(),
        }
    }

    /// The bytes of `assertion` without its own Signature, with the ID and NameID replaced
    /// when asked.
    fn copy_assertion(
        xml: &str,
        assertion: Node<'_, '_>,
        id: Option<&str>,
        name_id: Option<&str>,
    ) -> String {
        let mut edits = Vec::new();
        if let Some(signature) = child(assertion, DS, "Signature") {
            edits.push((signature.range(), String::new()));
        }
        if let Some(id) = id {
            edits.push((id_value(assertion), portcullis::escape_html(id)));
        }
        if let Some(name_id) = name_id {
            edits.push((name_id_text(assertion), portcullis::escape_html(name_id)));
        }
        splice(xml, assertion.range(), edits)
    }

    fn insert_in_text(xml: &str, text: Range<usize>, at: usize, what: &str) -> String {
        assert!(
            at <= text.len() && xml.is_char_boundary(text.start + at),
            "byte {at} is not a char boundary inside the text {:?}",
            &xml[text.clone()]
        );
        let at = text.start + at;
        splice(xml, 0..xml.len(), vec![(at..at, what.to_owned())])
    }

    /// Prepends `<!DOCTYPE <root> [subset]>` to the root element, and replaces the NameID
    /// text when asked (raw, so it may reference entities).
    fn with_doctype(signed: &str, subset: &str, name_id: Option<&str>) -> String {
        let doc = parse(signed);
        let root = response(&doc);
        let start = root.range().start;
        let p = prefix(signed, root);
        let mut edits = vec![(
            start..start,
            format!("<!DOCTYPE {p}Response [\n{subset}\n]>\n"),
        )];
        if let Some(name_id) = name_id {
            edits.push((name_id_text(assertion(&doc)), name_id.to_owned()));
        }
        splice(signed, 0..signed.len(), edits)
    }

    /// The SignedInfo of the assertion's Signature, or of the Response's.
    fn signed_info<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Node<'a, 'i> {
        child(assertion(doc), DS, "Signature")
            .or_else(|| child(response(doc), DS, "Signature"))
            .and_then(|signature| child(signature, DS, "SignedInfo"))
            .expect("the assertion or the Response is signed")
    }

    /// The first Reference of [`signed_info`].
    fn reference<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Node<'a, 'i> {
        child(signed_info(doc), DS, "Reference").expect("the SignedInfo has a Reference")
    }

    /// The range of the Reference's DigestValue text, and a decoy of the same length.
    fn digest(xml: &str, doc: &roxmltree::Document<'_>) -> (Range<usize>, String) {
        let value = child(reference(doc), DS, "DigestValue").expect("the Reference has a digest");
        let range = text_of(value);
        let compact: String = xml[range.clone()]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let length = STANDARD
            .decode(compact)
            .expect("the digest is base64")
            .len();
        (range, STANDARD.encode(vec![0u8; length]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use samael::crypto::{
        AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
    };

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn key() -> &'static IdpKey {
        static KEY: OnceLock<IdpKey> = OnceLock::new();
        KEY.get_or_init(|| IdpKey::generate("idp.test"))
    }

    fn other_key() -> &'static IdpKey {
        static KEY: OnceLock<IdpKey> = OnceLock::new();
        KEY.get_or_init(|| IdpKey::generate("other.test"))
    }

    fn spec() -> ResponseSpec {
        ResponseSpec::new(
            "https://idp.test/metadata",
            "https://sp.test/metadata",
            "https://sp.test/acs",
            "alice@example.com",
            NOW,
        )
        .attribute("groups", &["admins", "staff"])
        .attribute("email", &["alice@example.com"])
    }

    fn response_signed() -> ResponseSpec {
        ResponseSpec {
            sign_response: true,
            sign_assertion: false,
            ..spec()
        }
    }

    /// samael's strict check: every signature valid under `key`, SHA-2 only; the pre-digest
    /// (the signed bytes) of the one reference, or of the Response's.
    fn verify_with(xml: &str, key: &IdpKey) -> Result<String, String> {
        Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            &[CertificateDer::from(key.cert_der().to_vec())],
            ReduceMode::PreDigest,
            Some(&[
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha512,
            ]),
        )
        .map_err(|error| format!("{error:?}"))
    }

    fn verify(xml: &str) -> Result<String, String> {
        verify_with(xml, key())
    }

    /// samael's check with every algorithm allowed.
    fn verify_any_alg(xml: &str) -> Result<String, String> {
        Crypto::reduce_xml_to_signed(
            xml,
            &[CertificateDer::from(key().cert_der().to_vec())],
            ReduceMode::PreDigest,
        )
        .map_err(|error| format!("{error:?}"))
    }

    #[test]
    fn xs_datetime_formats_utc() {
        assert_eq!(xs_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(xs_datetime(NOW), "2023-11-14T22:13:20Z");
        assert_eq!(xs_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(xs_datetime(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(xs_datetime(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn key_exports_certificate() {
        let key = key();
        assert!(key.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(STANDARD.decode(key.cert_base64()).unwrap(), key.cert_der());
        let cert = X509::from_der(key.cert_der()).unwrap();
        assert!(cert.verify(&cert.public_key().unwrap()).unwrap());
    }

    #[test]
    fn template_is_well_formed_with_templates_where_asked() {
        let spec = ResponseSpec {
            sign_response: true,
            in_response_to: Some("_req".into()),
            session_not_on_or_after: Some(NOW + 3600),
            ..spec()
        };
        let xml = spec.template(key());
        let doc = parse(&xml);
        let signatures: Vec<_> = doc
            .descendants()
            .filter(|node| is(*node, DS, "Signature"))
            .collect();
        assert_eq!(signatures.len(), 2);
        assert!(signatures.iter().all(|signature| is_template(*signature)));
        assert!(xml.contains("IssueInstant=\"2023-11-14T22:13:20Z\""));
        assert!(xml.contains("NotBefore=\"2023-11-14T22:12:20Z\""));
        assert!(xml.contains("InResponseTo=\"_req\""));
    }

    #[test]
    fn signed_assertion_verifies() {
        let xml = spec().sign(key());
        let predigest = verify(&xml).unwrap();
        assert!(predigest.starts_with("<saml:Assertion"));
        assert!(predigest.contains(">alice@example.com</saml:NameID>"));
        assert!(verify_with(&xml, other_key()).is_err());
    }

    #[test]
    fn signed_response_verifies() {
        let xml = response_signed().sign(key());
        let predigest = verify(&xml).unwrap();
        assert!(predigest.starts_with("<samlp:Response"));
        assert!(predigest.contains(">alice@example.com</saml:NameID>"));
        assert!(verify_with(&xml, other_key()).is_err());
    }

    #[test]
    fn signed_response_and_assertion_verify() {
        let spec = ResponseSpec {
            sign_response: true,
            ..spec()
        };
        let xml = spec.sign(key());
        assert_eq!(xml.matches("<ds:SignatureValue>").count(), 2);
        let predigest = verify(&xml).unwrap();
        assert!(predigest.starts_with("<samlp:Response"));
        assert!(predigest.contains(">alice@example.com</saml:NameID>"));
        assert!(verify_with(&xml, other_key()).is_err());
    }

    #[test]
    fn every_algorithm_signs() {
        let sha512 = ResponseSpec {
            alg: SigAlg::RsaSha512,
            sign_response: true,
            ..spec()
        };
        verify(&sha512.sign(key())).unwrap();
        for alg in [SigAlg::RsaSha1, SigAlg::RsaSha256Md5Digest] {
            let xml = ResponseSpec { alg, ..spec() }.sign(key());
            assert!(xml.contains(alg.digest_uri()));
            // Valid, but refused as soon as only SHA-2 is allowed.
            verify_any_alg(&xml).unwrap();
            assert!(verify(&xml).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn comment_in_name_id_still_verifies() {
        let xml = spec().sign(key());
        let attack = mutate::comment_in_name_id(&xml, 5);
        assert!(attack.contains(">alice<!---->@example.com</saml:NameID>"));
        let predigest = verify(&attack).unwrap();
        assert!(predigest.contains(">alice@example.com</saml:NameID>"));
        let attack = mutate::comment_in_attribute(&xml, "groups", 3);
        assert!(attack.contains(">adm<!---->ins</saml:AttributeValue>"));
        verify(&attack).unwrap();
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let xml = spec().sign(key());
        let attack = mutate::tamper_attribute(&xml, "groups", "superadmins");
        assert!(attack.contains(">superadmins</saml:AttributeValue>"));
        assert!(verify(&attack).is_err());
        let attack = mutate::pi_in_name_id(&xml);
        assert!(attack.contains("<?portcullis split?>"));
        assert!(verify(&attack).is_err());
    }

    #[test]
    fn xsw_variants() {
        let victim = "victim@example.com";
        let assertion_signed = spec().sign(key());
        let response_signed = response_signed().sign(key());
        // What samael's check alone (strict, PreDigest) makes of each variant, so what an SP
        // must catch on its own:
        // - XSW1, XSW2 fail: the copied Response repeats the Assertion's ID
        //   (XmlDuplicateIdAttribute).
        // - XSW3, XSW4, XSW5 verify: the pre-digest is the untouched original assertion, while
        //   the document also holds an evil one (before it / wrapping it / in its place).
        // - XSW6 fails (VerifyError): libxmlsec1 refuses an Assertion as a child of the
        //   Signature ("unexpected node").
        // - XSW7, XSW8 fail: the evil and the original copy share the ID
        //   (XmlDuplicateIdAttribute).
        let expected = [false, false, true, true, true, false, false, false];
        let mut outcomes = Vec::new();
        for n in 1..=8u8 {
            let signed = if n <= 2 {
                &response_signed
            } else {
                &assertion_signed
            };
            let attack = mutate::xsw(n, signed, victim);
            assert_ne!(&attack, signed, "XSW{n}");
            assert!(
                attack.contains(&format!(">{victim}</saml:NameID>")),
                "XSW{n}"
            );
            let signature_value = signed
                .split("<ds:SignatureValue>")
                .nth(1)
                .unwrap()
                .split("</ds:SignatureValue>")
                .next()
                .unwrap();
            assert!(attack.contains(signature_value), "XSW{n}");
            parse(&attack);
            let verified = verify(&attack);
            if let Ok(predigest) = &verified {
                // What verifies is the original content, never the victim.
                assert!(!predigest.contains(victim), "XSW{n}");
            }
            outcomes.push(verified);
        }
        let verified: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
        assert_eq!(verified, expected, "{outcomes:#?}");
    }

    #[test]
    fn wrapped_assertions() {
        let victim = "victim@example.com";
        let xml = spec().sign(key());
        for attack in [
            mutate::extra_assertion_before(&xml, victim),
            mutate::assertion_in_extensions(&xml, victim),
            mutate::assertion_in_status_detail(&xml, victim),
        ] {
            parse(&attack);
            assert_eq!(attack.matches("<saml:Assertion ").count(), 2);
            assert!(attack.contains(victim));
            // The signed assertion is untouched: samael's check alone passes.
            assert!(!verify(&attack).unwrap().contains(victim));
        }
        let attack = mutate::assertion_in_advice(&spec(), key(), victim);
        assert!(attack.contains("<saml:Advice><saml:Assertion"));
        let predigest = verify(&attack).unwrap();
        assert!(predigest.contains(victim));
        assert!(predigest.contains(">alice@example.com</saml:NameID>"));
    }

    #[test]
    fn structural_attacks() {
        let xml = spec().sign(key());
        let attack = mutate::duplicate_id(&xml);
        let id = format!(
            "ID=\"{}\"",
            parse(&xml)
                .descendants()
                .find(|n| is(*n, SAML, "Assertion"))
                .unwrap()
                .attribute("ID")
                .unwrap()
        );
        assert_eq!(attack.matches(&id).count(), 2);
        assert!(verify(&attack).is_err());

        let attack = mutate::two_signed_info(&xml);
        assert_eq!(attack.matches("<ds:SignedInfo>").count(), 2);
        assert!(verify(&attack).is_err());

        let attack = mutate::two_references(&xml);
        assert_eq!(attack.matches("<ds:Reference ").count(), 2);
        assert!(verify(&attack).is_err());

        let attack = mutate::xpath_transform(&xml);
        assert!(attack.contains("<ds:XPath>"));
        assert!(verify(&attack).is_err());

        // Signed validly over the whole document: samael's check alone passes.
        for spec in [
            spec(),
            response_signed(),
            ResponseSpec {
                sign_response: true,
                ..spec()
            },
        ] {
            let attack = mutate::empty_reference_uri(&spec, key());
            assert!(attack.contains("<ds:Reference URI=\"\">"));
            let predigest = verify(&attack).unwrap();
            assert!(predigest.starts_with("<samlp:Response"));
        }

        // Comments are not signed: samael's check alone passes both.
        let attack = mutate::digest_in_comment(&xml);
        assert!(attack.contains("<ds:DigestValue><!--AAAA"));
        verify(&attack).unwrap();
        let attack = mutate::digest_elsewhere(&xml);
        assert!(attack.contains("<ds:Object><ds:DigestValue>AAAA"));
        verify(&attack).unwrap();
    }

    #[test]
    fn doctype_attacks() {
        let xml = spec().sign(key());
        let attack = mutate::doctype_attlist(&xml);
        assert!(attack.contains("<!DOCTYPE samlp:Response [\n<!ATTLIST"));
        assert!(roxmltree::Document::parse(&attack).is_err());
        // Harmless declarations: samael's check alone passes, so the SP must refuse DTDs.
        verify(&attack).unwrap();
        let attack = mutate::external_entity(&xml, "http://127.0.0.1:9/xxe");
        assert!(attack.contains("<!ENTITY xxe SYSTEM \"http://127.0.0.1:9/xxe\">"));
        assert!(attack.contains(">&xxe;</saml:NameID>"));
        // libxml2 keeps the entity reference unexpanded; its c14n fails on it.
        assert!(verify(&attack).is_err());
        let attack = mutate::billion_laughs(&xml);
        assert!(attack.contains("<!ENTITY lol9 \"&lol8;&lol8;"));
        assert!(attack.contains(">&lol9;</saml:NameID>"));
        // Unexpanded, so the digest does not match.
        assert!(verify(&attack).is_err());
        assert!(roxmltree::Document::parse(&attack).is_err());
    }

    #[test]
    fn encode_is_standard_base64() {
        assert_eq!(encode("<a/>"), "PGEvPg==");
    }
}
