//! SAML 2.0 Web Browser SSO, service-provider side (checklist 2.18): our metadata, the
//! HTTP-Redirect `AuthnRequest`, the identity provider's metadata read on import, and the
//! checks a verified assertion must pass before [`federate`](super::federate) sees it.
//! Signatures are libxmlsec1's business ([`verify`]).

pub(crate) mod encryption;
pub(crate) mod verify;
pub(crate) mod xml;

use std::io::Write as _;

use base64::Engine as _;
use url::Url;

use self::verify::{Envelope, VerifiedAssertion};
use self::xml::{MD, failed, is};
use crate::crypto::random_bytes;
use crate::model::{NameIdFormat, SsoConnection};
use crate::templates::escape_html;
use crate::{Error, Timestamp};

const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// The most an identity provider's metadata document may be.
pub(crate) const MAX_METADATA_BYTES: usize = 512 * 1024;

/// A fresh `AuthnRequest` ID: 128 random bits, hex, after an underscore so that it is a
/// valid `xs:ID` (checklist SAML-11).
pub(crate) fn request_id() -> Result<String, Error> {
    let bytes = random_bytes::<16>()?;
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes.iter() {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// Our side of a connection: the entity ID and the assertion consumer service.
pub(crate) struct Sp<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
}

/// The HTTP-Redirect binding URL of an `AuthnRequest` (bindings §3.4.4: raw DEFLATE,
/// base64, URL-encoded), unsigned: the request carries nothing the provider must trust.
pub(crate) fn authn_request_url(
    sp: &Sp<'_>,
    sso_url: &str,
    format: NameIdFormat,
    request_id: &str,
    relay_state: &str,
    now: Timestamp,
) -> Result<String, Error> {
    let request = format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" "#,
            r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{instant}" Destination="{destination}" "#,
            r#"AssertionConsumerServiceURL="{acs}" ProtocolBinding="{binding}">"#,
            r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
            r#"<samlp:NameIDPolicy Format="{format}" AllowCreate="true"/>"#,
            r#"</samlp:AuthnRequest>"#
        ),
        id = request_id,
        instant = now.to_rfc3339(),
        destination = escape_html(sso_url),
        acs = escape_html(sp.acs_url),
        binding = HTTP_POST,
        issuer = escape_html(sp.entity_id),
        format = format.uri(),
    );
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater
        .write_all(request.as_bytes())
        .map_err(|_| Error::Internal("deflate"))?;
    let deflated = deflater.finish().map_err(|_| Error::Internal("deflate"))?;
    let mut url = Url::parse(sso_url).map_err(|_| failed("the SSO URL is not a URL"))?;
    url.query_pairs_mut()
        .append_pair(
            "SAMLRequest",
            &base64::engine::general_purpose::STANDARD.encode(deflated),
        )
        .append_pair("RelayState", relay_state);
    Ok(url.into())
}

/// Our metadata for a connection: what its identity provider needs to trust us. We ask
/// for signed assertions; our requests are not signed. `encryption`: our certificate
/// (base64 DER), offered for encrypting assertions to us.
pub(crate) fn sp_metadata(sp: &Sp<'_>, format: NameIdFormat, encryption: Option<&str>) -> String {
    let key = encryption.map_or_else(String::new, |cert| {
        let methods: String = encryption::OFFERED
            .iter()
            .map(|m| format!("\n      <md:EncryptionMethod Algorithm=\"{m}\"/>"))
            .collect();
        format!(
            concat!(
                "\n    <md:KeyDescriptor use=\"encryption\">",
                "\n      <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
                "<ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>",
                "</ds:KeyInfo>{methods}\n    </md:KeyDescriptor>"
            ),
            cert = cert,
            methods = methods,
        )
    });
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">"#,
            "\n  ",
            r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" "#,
            r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
            "{key}\n    <md:NameIDFormat>{format}</md:NameIDFormat>\n    ",
            r#"<md:AssertionConsumerService Binding="{binding}" Location="{acs}" index="0" isDefault="true"/>"#,
            "\n  </md:SPSSODescriptor>\n</md:EntityDescriptor>\n"
        ),
        entity = escape_html(sp.entity_id),
        key = key,
        format = format.uri(),
        binding = HTTP_POST,
        acs = escape_html(sp.acs_url),
    )
}

/// What an identity provider's metadata says about signing in there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    /// Signing certificates, base64 DER.
    pub certificates: Vec<String>,
}

/// Reads an `EntityDescriptor` (or the first in an `EntitiesDescriptor` that has an
/// IdP role), parsed like any SAML message: no DTD, size-capped (checklist SAML-19).
pub(crate) fn parse_idp_metadata(text: &str) -> Result<IdpMetadata, Error> {
    let bad = |reason: &'static str| Error::invalid("saml.metadata_xml", reason);
    if text.len() > MAX_METADATA_BYTES {
        return Err(bad("too large"));
    }
    let doc = xml::parse(text).map_err(|_| bad("not well-formed XML without a DTD"))?;
    let entity = doc
        .descendants()
        .find(|n| {
            is(*n, MD, "EntityDescriptor") && xml::children(*n, MD, "IDPSSODescriptor").count() > 0
        })
        .ok_or(bad("no EntityDescriptor with an IDPSSODescriptor"))?;
    let entity_id = entity
        .attribute("entityID")
        .ok_or(bad("the EntityDescriptor has no entityID"))?
        .to_owned();
    let idp = xml::children(entity, MD, "IDPSSODescriptor")
        .next()
        .ok_or(bad("no IDPSSODescriptor"))?;
    let sso_url = xml::children(idp, MD, "SingleSignOnService")
        .find(|s| s.attribute("Binding") == Some(HTTP_REDIRECT))
        .and_then(|s| s.attribute("Location"))
        .ok_or(bad("no SingleSignOnService for the HTTP-Redirect binding"))?
        .to_owned();
    let mut certificates = Vec::new();
    for key in xml::children(idp, MD, "KeyDescriptor") {
        if key.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for cert in key
            .descendants()
            .filter(|n| is(*n, xml::DSIG, "X509Certificate"))
        {
            let text: String = xml::text(cert)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if !certificates.contains(&text) {
                certificates.push(text);
            }
        }
    }
    if certificates.is_empty() {
        return Err(bad("no signing certificate"));
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificates,
    })
}

/// What a response is checked against.
pub(crate) struct Expected<'a> {
    pub sp: Sp<'a>,
    pub idp_entity_id: &'a str,
    pub format: NameIdFormat,
    /// The outstanding request it must answer; `None`: an unsolicited response.
    pub request_id: Option<&'a str>,
    pub now: Timestamp,
    pub skew: std::time::Duration,
}

/// Checklist SAML-11…SAML-15 and SAML-18 on a verified assertion. Returns until when the
/// assertion ID must be remembered (SAML-14).
pub(crate) fn check(
    assertion: &VerifiedAssertion,
    envelope: &Envelope,
    expected: &Expected<'_>,
) -> Result<Timestamp, Error> {
    let now = expected.now;
    let skew = expected.skew;
    // SAML-15: status, issuer, shape.
    if !envelope.success {
        return Err(failed("the identity provider did not sign the person in"));
    }
    if assertion.issuer != expected.idp_entity_id
        || envelope
            .issuer
            .as_deref()
            .is_some_and(|i| i != expected.idp_entity_id)
    {
        return Err(failed(
            "the SAML assertion comes from another identity provider",
        ));
    }
    if !assertion.authn_statement {
        return Err(failed("the SAML assertion has no authentication statement"));
    }
    // SAML-12: addressed to us.
    match envelope.destination.as_deref() {
        Some(d) if d != expected.sp.acs_url => {
            return Err(failed("the SAML response is addressed to another service"));
        }
        None if envelope.signed => {
            return Err(failed("the signed SAML response names no destination"));
        }
        _ => {}
    }
    if assertion.audiences.is_empty()
        || !assertion
            .audiences
            .iter()
            .all(|a| a.iter().any(|aud| aud == expected.sp.entity_id))
    {
        return Err(failed("the SAML assertion is meant for another service"));
    }
    // SAML-11: bound to our request, in the Response and in the bearer confirmation.
    // The Response's own InResponseTo: unsigned unless the Response is signed, so it can
    // only refuse; a signed Response must carry it.
    match (envelope.in_response_to.as_deref(), expected.request_id) {
        (Some(got), wanted) if Some(got) != wanted => {
            return Err(failed("the SAML response answers another request"));
        }
        (None, Some(_)) if envelope.signed => {
            return Err(failed("the SAML response answers another request"));
        }
        _ => {}
    }
    let confirmed = assertion.bearer.iter().find(|c| {
        c.recipient.as_deref() == Some(expected.sp.acs_url)
            && c.in_response_to.as_deref() == expected.request_id
            && c.not_on_or_after.is_some_and(|t| now < t + skew)
            && c.not_before.is_none_or(|t| now + skew >= t)
    });
    let Some(confirmed) = confirmed else {
        return Err(failed(
            "the SAML assertion has no bearer confirmation for this request, recipient and time",
        ));
    };
    // SAML-13: the time window, with the skew allowed either way.
    if assertion.not_before.is_some_and(|t| now + skew < t) {
        return Err(failed("the SAML assertion is not valid yet"));
    }
    if assertion.not_on_or_after.is_some_and(|t| now >= t + skew) {
        return Err(failed("the SAML assertion has expired"));
    }
    // SAML-18: identity from a stable NameID of the configured format.
    let format = assertion.name_id_format.as_deref();
    if format == Some(TRANSIENT)
        || format.is_some_and(|f| f != expected.format.uri())
        || format.is_none() && expected.format != NameIdFormat::Unspecified
    {
        return Err(failed("the SAML NameID is not of the configured format"));
    }
    if assertion.name_id.is_empty() || assertion.name_id.len() > 1024 {
        return Err(failed("the SAML NameID is empty or too long"));
    }
    let until = [assertion.not_on_or_after, confirmed.not_on_or_after]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
    Ok(until + skew)
}

/// The engine's view of the person: identity from the `NameID`, the rest through the
/// connection's attribute mapping. SAML has no `email_verified`: an enterprise IdP's
/// email counts as verified only in a domain the connection serves (and the linking
/// policy also wants that domain proven by the organization).
pub(crate) fn to_assertion(
    connection: &SsoConnection,
    assertion: &VerifiedAssertion,
) -> super::Assertion {
    let first = |name: &str| {
        assertion
            .attributes
            .get(name)
            .and_then(|v| v.first())
            .cloned()
    };
    let email = first(&connection.claims.email)
        .or_else(|| {
            (assertion.name_id_format.as_deref() == Some(NameIdFormat::Email.uri()))
                .then(|| assertion.name_id.clone())
        })
        .filter(|e| e.len() <= 254)
        .and_then(|e| crate::Email::parse(&e).ok());
    let name = first(&connection.claims.name)
        .and_then(|n| crate::model::checked_label(&n, "name", 200).ok());
    let groups = assertion
        .attributes
        .get(&connection.claims.groups)
        .map(|groups| {
            groups
                .iter()
                .filter(|g| !g.is_empty() && g.len() <= 200)
                .take(200)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let email_verified = email
        .as_ref()
        .is_some_and(|e| connection.domains.iter().any(|d| d == e.domain()));
    super::Assertion {
        subject: assertion.name_id.clone(),
        email_verified,
        email,
        name,
        groups,
    }
}

/// Whether the provider's `AuthnContextClassRef` is one the connection counts as the
/// organization's second factor (its `mfa_amr` list, e.g.
/// `urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor`).
pub(crate) fn multi_factor(connection: &SsoConnection, assertion: &VerifiedAssertion) -> bool {
    assertion
        .authn_context
        .as_deref()
        .is_some_and(|c| connection.mfa_amr.iter().any(|wanted| wanted == c))
}
