//! Single sign-on: an organization's connections to identity providers, the email domains
//! it has proven, and the federated identities that sign in through them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::crypto::Sealed;
use crate::model::{ConnectionId, OrgId, UserId};

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectionKind {
    /// OpenID Connect, authorization-code flow with PKCE.
    Oidc,
    /// SAML 2.0 Web Browser SSO: HTTP-Redirect AuthnRequest, HTTP-POST response.
    Saml,
}

impl ConnectionKind {
    /// The name API.md uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Oidc => "oidc",
            ConnectionKind::Saml => "saml",
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Being set up: only test sign-ins run through it.
    Draft,
    /// People sign in through it.
    Active,
    /// Switched off: nothing runs through it.
    Disabled,
}

impl ConnectionStatus {
    /// The name API.md uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Draft => "draft",
            ConnectionStatus::Active => "active",
            ConnectionStatus::Disabled => "disabled",
        }
    }
}

/// A provider's endpoints: written by an administrator, or read from its discovery
/// document when the connection was saved (and re-checked on every use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcEndpoints {
    /// Where the browser goes to sign in.
    pub authorization: String,
    /// Where the code is exchanged (back channel).
    pub token: String,
    /// The provider's signing keys.
    pub jwks_uri: String,
    /// Whether the provider sends `iss` with the authorization response (RFC 9207); the
    /// callback then requires it.
    #[serde(default)]
    pub iss_in_response: bool,
}

/// Which ID-token claims (or, for SAML, which attributes) carry what the engine needs.
/// The identity itself is never mapped: it is the `sub` claim or the SAML `NameID`
/// (checklist SAML-18), so an unknown field here is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimMapping {
    /// The email address (`email`).
    pub email: String,
    /// The display name (`name`).
    pub name: String,
    /// The groups, a list of strings (`groups`).
    pub groups: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }
}

/// The `NameID` format a SAML connection asks for and accepts. Transient identifiers are
/// never accepted: they change at every sign-in, so nothing lasting can be keyed by them
/// (checklist SAML-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NameIdFormat {
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:persistent`: an opaque, stable identifier.
    #[default]
    Persistent,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress`.
    Email,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified`: whatever stable value the
    /// provider sends.
    Unspecified,
}

impl NameIdFormat {
    /// The format's URI.
    pub fn uri(self) -> &'static str {
        match self {
            NameIdFormat::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            NameIdFormat::Email => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            NameIdFormat::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }
    }
}

/// What a SAML connection trusts: the identity provider's entity id is the connection's
/// [`issuer`](SsoConnection::issuer); the attribute names come from its
/// [`claims`](SsoConnection::claims) mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SamlSettings {
    /// The provider's `SingleSignOnService` for the HTTP-Redirect binding.
    pub sso_url: String,
    /// Its signing certificates, base64 DER, several during a rotation. Only these verify
    /// a response: a certificate inside the message is never used.
    pub certificates: Vec<String>,
    /// The `NameID` format asked for and required.
    pub name_id_format: NameIdFormat,
    /// Whether a signature on the whole Response, covering an unsigned assertion, is
    /// enough. Off (the default): the assertion itself must be signed.
    pub response_signature_only: bool,
    /// Whether sign-ins the provider starts (unsolicited responses) are accepted, each
    /// after an explicit confirmation by the person. Off by default.
    pub idp_initiated: bool,
    /// Where the provider's metadata was fetched from, when it was imported by URL.
    pub metadata_url: Option<String>,
    /// Our certificate for this connection (base64 DER), published in our metadata so
    /// that the provider can encrypt assertions to us.
    #[serde(default)]
    pub sp_certificate: Option<String>,
    /// Its private key (DER), sealed with the keyring; never shown.
    #[serde(default)]
    pub sp_key: Option<Sealed>,
}

impl SamlSettings {
    /// Settings for a provider with this SSO URL and certificates, the rest defaulted.
    pub fn new(sso_url: String, certificates: Vec<String>) -> Self {
        SamlSettings {
            sso_url,
            certificates,
            name_id_format: NameIdFormat::default(),
            response_signature_only: false,
            idp_initiated: false,
            metadata_url: None,
            sp_certificate: None,
            sp_key: None,
        }
    }
}

/// Which social provider a connection stands for, when it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// Google: issuer `https://accounts.google.com`, `email_verified` required, `hd`
    /// checked against [`SsoConnection::hosted_domain`].
    Google,
}

/// An organization's connection to an identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SsoConnection {
    /// Its id; also the key of the identities that sign in through it.
    pub id: ConnectionId,
    /// The organization it signs people in to.
    pub org_id: OrgId,
    /// The protocol.
    pub kind: ConnectionKind,
    /// A name for administrators.
    pub name: String,
    /// Draft, active or disabled.
    pub status: ConnectionStatus,
    /// The provider's issuer identifier, compared byte for byte with the ID token's `iss`.
    pub issuer: String,
    /// Whether the endpoints come from the issuer's discovery document.
    pub discovery: bool,
    /// The endpoints in force.
    pub endpoints: OidcEndpoints,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret there, sealed with the keyring (associated data: the connection
    /// id). `None` for a public client.
    pub client_secret: Option<Sealed>,
    /// The scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// Which claims carry email, name and groups.
    pub claims: ClaimMapping,
    /// Provider group → role names in this organization.
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// The email domains this connection serves (each must be a verified domain of the
    /// organization to route or link).
    pub domains: Vec<String>,
    /// Whether people unknown here get an account at their first sign-in.
    pub jit_provisioning: bool,
    /// Role names every person provisioned through it gets.
    pub default_roles: Vec<String>,
    /// The ID-token signature algorithms accepted.
    pub algorithms: Vec<String>,
    /// IdP `amr` values that satisfy the organization's second factor; empty: none does.
    pub mfa_amr: Vec<String>,
    /// The Google preset's Workspace domain (`hd`), when sign-in is restricted to one.
    pub hosted_domain: Option<String>,
    /// The social provider it stands for, if any.
    pub preset: Option<Preset>,
    /// A SAML connection's provider settings (`None` for OpenID Connect).
    #[serde(default)]
    pub saml: Option<SamlSettings>,
    /// When a test sign-in last succeeded under the current settings.
    pub tested_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Compare-and-swap revision, set by the store.
    pub revision: u64,
}

/// An organization's claim to an email domain, proven by a DNS TXT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DomainClaim {
    /// The organization claiming it.
    pub org_id: OrgId,
    /// The domain, lowercase ASCII (IDNA), without a trailing dot.
    pub domain: String,
    /// The value the TXT record must hold, whole. Not a secret: it is published.
    pub token: String,
    /// When the claim was made.
    pub created_at: Timestamp,
    /// Until when the token may be proven; a verified claim keeps its status.
    pub expires_at: Timestamp,
    /// When the record was found; `None` while unproven.
    pub verified_at: Option<Timestamp>,
}

impl DomainClaim {
    /// The DNS name the TXT record is published at.
    pub fn txt_name(&self) -> String {
        format!("{}.{}", DOMAIN_CHALLENGE_LABEL, self.domain)
    }
}

/// The label in front of a claimed domain where its TXT record goes.
pub const DOMAIN_CHALLENGE_LABEL: &str = "_portcullis-challenge";

/// A person's account at an identity provider, linked to a user here. Keyed by the
/// connection (`provider`) and the provider's `sub`, never by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FederatedIdentity {
    /// The connection's id (its string form).
    pub provider: String,
    /// The provider's subject identifier, compared case-sensitively.
    pub subject: String,
    /// The user it signs in as.
    pub user_id: UserId,
    /// When it was linked.
    pub created_at: Timestamp,
}

impl FederatedIdentity {
    /// A new link of `(provider, subject)` to `user_id`.
    pub fn new(
        provider: impl Into<String>,
        subject: impl Into<String>,
        user_id: UserId,
        created_at: Timestamp,
    ) -> Self {
        FederatedIdentity {
            provider: provider.into(),
            subject: subject.into(),
            user_id,
            created_at,
        }
    }
}

impl DomainClaim {
    /// A new, unproven claim.
    pub fn new(
        org_id: OrgId,
        domain: impl Into<String>,
        token: impl Into<String>,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        DomainClaim {
            org_id,
            domain: domain.into(),
            token: token.into(),
            created_at,
            expires_at,
            verified_at: None,
        }
    }
}
