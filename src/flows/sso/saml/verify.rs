//! A SAML Response, read so that only what its identity provider signed is believed
//! (checklist SAML-01…SAML-10).
//!
//! 1. The message is size-capped and parsed once by roxmltree, which refuses any DTD;
//!    processing instructions are refused anywhere.
//! 2. Its shape must be unambiguous: exactly one assertion, a direct child of the
//!    Response, nowhere else (not in `Extensions`, `StatusDetail`, `Advice`…); no ID
//!    value twice; every signature a direct child of the Response or of the assertion,
//!    with one `SignedInfo` holding one `Reference` to its parent's ID, exclusive c14n and
//!    the enveloped-signature transform only, SHA-2 digests and RSA or ECDSA with SHA-2.
//!    The assertion must be signed, or the whole Response when the connection accepts
//!    that.
//! 3. libxmlsec1, through samael, verifies every signature with the connection's
//!    configured certificates only (never a key from the message) and returns the
//!    canonical bytes the signature covers. No canonicalization or signature code is ours.
//! 4. Values are read from those signed bytes alone, parsed again, from the element whose
//!    ID the checked reference names: [`VerifiedAssertion`] is made nowhere else.

use std::collections::BTreeMap;

use base64::Engine as _;
use roxmltree::{Document, Node};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};

use super::xml::{self, DSIG, SAML, SAMLP, XENC, failed, is, only_child};
use crate::{Error, Timestamp};

/// The most a posted `SAMLResponse` may be, base64 included (checklist SAML-01).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Signature algorithms accepted, with the digest each implies (checklist SAML-10): SHA-1
/// and MD5 never.
const ALLOWED: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What the Response around the assertion says. Unsigned unless the Response is signed:
/// used only to refuse, never to accept or to identify anyone.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub success: bool,
    /// Whether the Response itself is signed (then `Destination` is required).
    pub signed: bool,
}

/// A bearer `SubjectConfirmation`'s data.
#[derive(Debug)]
pub(crate) struct Confirmation {
    pub recipient: Option<String>,
    pub in_response_to: Option<String>,
    pub not_on_or_after: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
}

/// An assertion whose signature libxmlsec1 verified, read from the signed bytes only.
/// Only [`verify`] makes one (checklist SAML-02).
#[derive(Debug)]
pub(crate) struct VerifiedAssertion {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// The bearer confirmations (other methods are left out).
    pub bearer: Vec<Confirmation>,
    pub not_before: Option<Timestamp>,
    pub not_on_or_after: Option<Timestamp>,
    /// Each `AudienceRestriction`'s audiences.
    pub audiences: Vec<Vec<String>>,
    pub authn_statement: bool,
    pub authn_context: Option<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    _only_verify_makes_me: (),
}

/// The XML of a posted `SAMLResponse` (HTTP-POST binding: base64, no compression).
pub(crate) fn decode(posted: &str) -> Result<String, Error> {
    if posted.len() > MAX_RESPONSE_BYTES {
        return Err(failed("the SAML response is too large"));
    }
    let compact: Vec<u8> = posted
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| failed("the SAML response is not base64"))?;
    String::from_utf8(bytes).map_err(|_| failed("the SAML response is not UTF-8"))
}

/// What the pre-check found: where the signatures are and which element is the assertion.
struct Shape {
    assertion_id: String,
    response_signed: bool,
    assertion_signed: bool,
    envelope: Envelope,
}

/// Verifies `doc` with `certificates` (base64 DER) and reads its one assertion.
/// `response_signature_only`: whether a Response signature covering an unsigned
/// assertion is enough. `decrypt` replaces an `EncryptedAssertion` by its plaintext
/// (see `encryption`); an encrypted assertion must carry its own signature, and a Response
/// signature beside it is verified over the encrypted form first.
pub(crate) fn verify(
    doc: &str,
    certificates: &[String],
    response_signature_only: bool,
    decrypt: impl FnOnce(String) -> Result<String, Error>,
) -> Result<(VerifiedAssertion, Envelope), Error> {
    let certs = certificates
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .map(CertificateDer::from)
                .map_err(|_| Error::Internal("a stored SAML certificate is not base64"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(failed("the connection has no signing certificate"));
    }
    let parsed = xml::parse(doc)?;
    let mut outer = None;
    let decrypted;
    let (doc, shape) = if xml::children(parsed.root_element(), SAML, "EncryptedAssertion")
        .next()
        .is_some()
    {
        outer = verify_outer_signature(&parsed, doc, &certs)?;
        let plain = decrypt(doc.to_owned())?;
        decrypted = if outer.is_some() {
            without_response_signature(&plain)?
        } else {
            plain
        };
        let shape = check_shape(&xml::parse(&decrypted)?)?;
        (decrypted.as_str(), shape)
    } else {
        (doc, check_shape(&parsed)?)
    };
    if outer.is_some() && !shape.assertion_signed {
        return Err(failed("an encrypted SAML assertion must be signed itself"));
    }
    if !(shape.assertion_signed || shape.response_signed && response_signature_only) {
        // SAML-08: a signature must cover what is read.
        return Err(failed("the SAML assertion is not signed"));
    }
    let signed = signed_bytes(doc, &certs)?;
    let signed_doc = xml::parse(&signed)?;
    let root = signed_doc.root_element();
    let assertion = if is(root, SAML, "Assertion") {
        root
    } else if is(root, SAMLP, "Response") && shape.response_signed {
        only_child(
            root,
            SAML,
            "Assertion",
            "the signed response holds no assertion",
        )?
    } else {
        return Err(failed("the SAML signature covers something else"));
    };
    // The signed element is the very one the shape check saw (no second copy).
    if assertion.attribute("ID") != Some(shape.assertion_id.as_str()) {
        return Err(failed("the SAML signature covers another assertion"));
    }
    let envelope = if is(root, SAMLP, "Response") {
        // Signed: the Response's own values come from the signed bytes too.
        read_envelope(root, true)?
    } else {
        outer.unwrap_or(shape.envelope)
    };
    Ok((read_assertion(assertion, shape.assertion_id)?, envelope))
}

/// libxmlsec1's verification of every signature in `doc` with `certs`: the canonical
/// bytes the (outermost) signature covers.
fn signed_bytes(doc: &str, certs: &[CertificateDer]) -> Result<String, Error> {
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        doc,
        certs,
        ReduceMode::PreDigest,
        Some(&ALLOWED),
    )
    .map_err(|err| {
        tracing::debug!(error = %err, "SAML signature refused");
        failed("the SAML signature is not valid")
    })
}

/// A Response signature over an encrypted assertion, verified before decryption: the
/// Response's values, signed, or `None` when the Response is not signed.
fn verify_outer_signature(
    parsed: &Document<'_>,
    doc: &str,
    certs: &[CertificateDer],
) -> Result<Option<Envelope>, Error> {
    let root = parsed.root_element();
    let mut signatures = xml::children(root, DSIG, "Signature");
    let Some(signature) = signatures.next() else {
        return Ok(None);
    };
    if signatures.next().is_some() {
        return Err(failed("an element is signed twice"));
    }
    let id = root
        .attribute("ID")
        .ok_or(failed("a signed SAML element has no ID"))?;
    check_signature(signature, id)?;
    let signed = signed_bytes(doc, certs)?;
    let signed_doc = xml::parse(&signed)?;
    let signed_root = signed_doc.root_element();
    if !is(signed_root, SAMLP, "Response") || signed_root.attribute("ID") != Some(id) {
        return Err(failed("the SAML signature covers something else"));
    }
    read_envelope(signed_root, true).map(Some)
}

/// `doc` without the Response's own signature (verified over the encrypted form).
fn without_response_signature(doc: &str) -> Result<String, Error> {
    let parsed = xml::parse(doc)?;
    let Some(signature) = xml::children(parsed.root_element(), DSIG, "Signature").next() else {
        return Ok(doc.to_owned());
    };
    let range = signature.range();
    Ok(format!("{}{}", &doc[..range.start], &doc[range.end..]))
}

fn check_shape(parsed: &Document<'_>) -> Result<Shape, Error> {
    let root = parsed.root_element();
    if !is(root, SAMLP, "Response") {
        return Err(failed("the SAML message is not a Response"));
    }
    let mut ids = std::collections::HashSet::new();
    let mut assertions = Vec::new();
    let mut signatures = Vec::new();
    for node in parsed.descendants() {
        if node.is_pi() {
            return Err(failed("the SAML message holds a processing instruction"));
        }
        if !node.is_element() {
            continue;
        }
        for attr in node.attributes() {
            // SAML-05: one declaration per identifier, whatever the attribute's spelling.
            if attr.namespace().is_none()
                && matches!(attr.name(), "ID" | "Id" | "id")
                && !ids.insert(attr.value())
            {
                return Err(failed("an ID appears twice in the SAML message"));
            }
        }
        if is(node, SAML, "Assertion") || is(node, SAML, "EncryptedAssertion") {
            assertions.push(node);
        }
        if is(node, DSIG, "Signature") {
            signatures.push(node);
        }
        if node.tag_name().namespace() == Some(XENC) && node.tag_name().name() == "EncryptedData" {
            return Err(failed("encrypted SAML assertions are not accepted"));
        }
    }
    // SAML-04: exactly one assertion, right under the Response.
    let [assertion] = assertions[..] else {
        return Err(failed("the SAML response must hold exactly one assertion"));
    };
    if assertion.parent_element() != Some(root) || !is(assertion, SAML, "Assertion") {
        return Err(failed("the SAML assertion is out of place"));
    }
    let assertion_id = assertion
        .attribute("ID")
        .ok_or(failed("the SAML assertion has no ID"))?
        .to_owned();
    let mut response_signed = false;
    let mut assertion_signed = false;
    for signature in signatures {
        let parent = signature.parent_element();
        let flag = if parent == Some(root) {
            &mut response_signed
        } else if parent == Some(assertion) {
            &mut assertion_signed
        } else {
            return Err(failed("a SAML signature is out of place"));
        };
        if *flag {
            return Err(failed("an element is signed twice"));
        }
        *flag = true;
        let parent_id = parent
            .and_then(|p| p.attribute("ID"))
            .ok_or(failed("a signed SAML element has no ID"))?;
        check_signature(signature, parent_id)?;
    }
    let envelope = read_envelope(root, response_signed)?;
    Ok(Shape {
        assertion_id,
        response_signed,
        assertion_signed,
        envelope,
    })
}

/// SAML-05, SAML-10: one `SignedInfo`, one `Reference` to the parent's ID, exclusive
/// c14n and the enveloped transform only, SHA-2 only.
fn check_signature(signature: Node<'_, '_>, parent_id: &str) -> Result<(), Error> {
    let malformed = "the SAML signature is malformed";
    // SAML-06: digest and signature values are the elements' own text; a comment
    // anywhere in the signature (a decoy value) is refused rather than interpreted.
    if signature.descendants().any(|n| n.is_comment()) {
        return Err(failed("the SAML signature holds a comment"));
    }
    let signed_info = only_child(signature, DSIG, "SignedInfo", malformed)?;
    let c14n = only_child(signed_info, DSIG, "CanonicalizationMethod", malformed)?;
    if c14n.attribute("Algorithm") != Some(EXC_C14N) {
        return Err(failed(
            "the SAML signature's canonicalization is not accepted",
        ));
    }
    let method = only_child(signed_info, DSIG, "SignatureMethod", malformed)?;
    let method = method.attribute("Algorithm").unwrap_or_default();
    if !ALLOWED.iter().any(|a| a.signature_uri() == method) {
        return Err(failed("the SAML signature algorithm is not accepted"));
    }
    let reference = only_child(signed_info, DSIG, "Reference", malformed)?;
    if reference.attribute("URI") != Some(&format!("#{parent_id}")) {
        return Err(failed("the SAML signature references another element"));
    }
    if let Some(transforms) = xml::children(reference, DSIG, "Transforms").next() {
        for transform in transforms.children().filter(|n| n.is_element()) {
            let algorithm = transform.attribute("Algorithm").unwrap_or_default();
            if !is(transform, DSIG, "Transform") || ![ENVELOPED, EXC_C14N].contains(&algorithm) {
                return Err(failed("a SAML signature transform is not accepted"));
            }
        }
    }
    let digest = only_child(reference, DSIG, "DigestMethod", malformed)?;
    let digest = digest.attribute("Algorithm").unwrap_or_default();
    if !ALLOWED.iter().any(|a| a.digest_uri() == digest) {
        return Err(failed("the SAML digest algorithm is not accepted"));
    }
    Ok(())
}

fn read_envelope(response: Node<'_, '_>, signed: bool) -> Result<Envelope, Error> {
    let issuer = match xml::children(response, SAML, "Issuer").next() {
        Some(node) => Some(xml::text(node)?),
        None => None,
    };
    let success = xml::children(response, SAMLP, "Status")
        .next()
        .and_then(|s| xml::children(s, SAMLP, "StatusCode").next())
        .and_then(|c| c.attribute("Value"))
        == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
    Ok(Envelope {
        destination: response.attribute("Destination").map(str::to_owned),
        in_response_to: response.attribute("InResponseTo").map(str::to_owned),
        issuer,
        success,
        signed,
    })
}

fn instant(node: Node<'_, '_>, name: &str) -> Result<Option<Timestamp>, Error> {
    node.attribute(name).map(xml::parse_instant).transpose()
}

fn read_assertion(assertion: Node<'_, '_>, id: String) -> Result<VerifiedAssertion, Error> {
    let shape = "the SAML assertion is malformed";
    let issuer = xml::text(only_child(assertion, SAML, "Issuer", shape)?)?;
    let subject = only_child(
        assertion,
        SAML,
        "Subject",
        "the SAML assertion has no subject",
    )?;
    let name_id = only_child(subject, SAML, "NameID", "the SAML assertion has no NameID")?;
    let mut bearer = Vec::new();
    for confirmation in xml::children(subject, SAML, "SubjectConfirmation") {
        if confirmation.attribute("Method") != Some("urn:oasis:names:tc:SAML:2.0:cm:bearer") {
            continue;
        }
        for data in xml::children(confirmation, SAML, "SubjectConfirmationData") {
            bearer.push(Confirmation {
                recipient: data.attribute("Recipient").map(str::to_owned),
                in_response_to: data.attribute("InResponseTo").map(str::to_owned),
                not_on_or_after: instant(data, "NotOnOrAfter")?,
                not_before: instant(data, "NotBefore")?,
            });
        }
    }
    let mut not_before = None;
    let mut not_on_or_after = None;
    let mut audiences = Vec::new();
    let mut conditions = xml::children(assertion, SAML, "Conditions");
    if let Some(node) = conditions.next() {
        if conditions.next().is_some() {
            return Err(failed(shape));
        }
        not_before = instant(node, "NotBefore")?;
        not_on_or_after = instant(node, "NotOnOrAfter")?;
        for restriction in xml::children(node, SAML, "AudienceRestriction") {
            audiences.push(
                xml::children(restriction, SAML, "Audience")
                    .map(xml::text)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    let mut authn_statement = false;
    let mut authn_context = None;
    for statement in xml::children(assertion, SAML, "AuthnStatement") {
        authn_statement = true;
        // Read to refuse a malformed one; the session's own lifetime applies.
        instant(statement, "SessionNotOnOrAfter")?;
        authn_context = xml::children(statement, SAML, "AuthnContext")
            .next()
            .and_then(|c| xml::children(c, SAML, "AuthnContextClassRef").next())
            .map(xml::text)
            .transpose()?;
    }
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in xml::children(assertion, SAML, "AttributeStatement") {
        for attribute in xml::children(statement, SAML, "Attribute") {
            let Some(name) = attribute.attribute("Name") else {
                continue;
            };
            let values = attributes.entry(name.to_owned()).or_default();
            for value in xml::children(attribute, SAML, "AttributeValue") {
                values.push(xml::text(value)?);
            }
        }
    }
    Ok(VerifiedAssertion {
        id,
        issuer,
        name_id: xml::text(name_id)?,
        name_id_format: name_id.attribute("Format").map(str::to_owned),
        bearer,
        not_before,
        not_on_or_after,
        audiences,
        authn_statement,
        authn_context,
        attributes,
        _only_verify_makes_me: (),
    })
}
