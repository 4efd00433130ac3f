//! Setting up connections: what an organization's administrator (or its IT administrator
//! through a setup link) writes, checked before it is stored (checklist RP-06, RP-11,
//! RP-19, SSRF-07, ADM-10).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::id_token::ALGORITHMS;
use crate::engine::Inner;
use crate::flows::MAX_RETRIES;
use crate::model::{
    ClaimMapping, ConnectionId, ConnectionKind, ConnectionStatus, NameIdFormat, OidcEndpoints,
    OrgId, Preset, SsoConnection, checked_label,
};
use crate::{Error, StoreError};

/// Google's issuer identifier.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The settings of a new connection. Missing fields take their defaults: discovery from
/// the issuer, scopes `openid email profile`, the standard claim names, no groups mapped,
/// provisioning off, the algorithms RS256, PS256, ES256 and EdDSA.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// A name for administrators.
    pub name: Option<String>,
    /// `oidc` (the default) or `saml`; fixed once created.
    pub kind: Option<ConnectionKind>,
    /// The issuer identifier. With `endpoints` absent, its discovery document is read.
    pub issuer: Option<String>,
    /// Endpoints given by hand instead of discovered.
    pub endpoints: Option<OidcEndpoints>,
    /// Our client id at the provider.
    pub client_id: Option<String>,
    /// Our client secret there (stored sealed, never returned).
    pub client_secret: Option<String>,
    /// Scopes; `openid` is added when missing.
    pub scopes: Option<Vec<String>>,
    /// Claim names.
    pub claims: Option<ClaimMapping>,
    /// Provider group → role names of the organization.
    pub group_roles: Option<BTreeMap<String, Vec<String>>>,
    /// Email domains served (each needs a verified domain claim to route or link).
    pub domains: Option<Vec<String>>,
    /// Whether unknown people get an account at their first sign-in.
    pub jit_provisioning: Option<bool>,
    /// Roles everyone provisioned through it gets.
    pub default_roles: Option<Vec<String>>,
    /// ID-token algorithms accepted (a subset of RS256, RS384, RS512, PS256, PS384, PS512,
    /// ES256, EdDSA).
    pub algorithms: Option<Vec<String>>,
    /// IdP `amr` values that count as the organization's second factor.
    pub mfa_amr: Option<Vec<String>>,
    /// Google: the Workspace domain (`hd`) sign-in is restricted to.
    pub hosted_domain: Option<String>,
    /// `google` for the Google preset (issuer defaults to Google's).
    pub preset: Option<Preset>,
    /// `draft`, `active` or `disabled`. A connection becomes `active` only after a test
    /// sign-in through it succeeded under its current settings.
    pub status: Option<ConnectionStatus>,
    /// For `kind: saml`: the identity provider, from its metadata or field by field. Its
    /// entity ID is the connection's `issuer`.
    pub saml: Option<SamlInput>,
}

/// A SAML identity provider's settings as an administrator gives them: its metadata
/// (pasted, or fetched by URL through the outbound policy), or the fields one by one.
/// Fields given beside metadata win over it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlInput {
    /// The provider's metadata document (`EntityDescriptor`), pasted.
    pub metadata_xml: Option<String>,
    /// Where to fetch the provider's metadata (same outbound policy as OIDC discovery).
    pub metadata_url: Option<String>,
    /// The `SingleSignOnService` URL (HTTP-Redirect binding).
    pub sso_url: Option<String>,
    /// Signing certificates, PEM or base64 DER; several during a rotation.
    pub certificates: Option<Vec<String>>,
    /// `persistent` (default), `email` or `unspecified`; transient is never accepted.
    pub name_id_format: Option<NameIdFormat>,
    /// Accept a signature on the whole Response that covers an unsigned assertion.
    pub response_signature_only: Option<bool>,
    /// Accept sign-ins the provider starts, each confirmed by the person.
    pub idp_initiated: Option<bool>,
}

/// A connection as administrators see it: every setting but the client secret (only
/// whether one is set), and whether a test sign-in passed.
pub fn view(connection: &SsoConnection) -> Value {
    let mut value = serde_json::to_value(connection).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("client_secret");
        map.remove("revision");
        if let Some(saml) = map.get_mut("saml").and_then(Value::as_object_mut) {
            saml.remove("sp_key");
        }
        map.insert(
            "has_client_secret".into(),
            Value::Bool(connection.client_secret.is_some()),
        );
        map.insert("tested".into(), Value::Bool(connection.tested_at.is_some()));
    }
    value
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret is never printed (DESIGN invariant 12).
        f.debug_struct("ConnectionSettings")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[elided]"),
            )
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn short_list(values: Vec<String>, field: &'static str, max: usize) -> Result<Vec<String>, Error> {
    if values.len() > max {
        return Err(Error::invalid(field, format!("at most {max} entries")));
    }
    values
        .into_iter()
        .map(|v| checked_label(&v, field, 200))
        .collect()
}

/// Lowercase ASCII domain names (IDNA), no wildcard, no IP literal, at least two labels.
pub(crate) fn checked_domain(domain: &str) -> Result<String, Error> {
    let reason = "must be a domain name such as example.com";
    let trimmed = domain.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['*', ',', ' ', '/', '@', ':']) {
        return Err(Error::invalid("domain", reason));
    }
    let ascii = url::Host::parse(trimmed).map_err(|_| Error::invalid("domain", reason))?;
    match ascii {
        url::Host::Domain(name) if name.contains('.') && name.len() <= 253 => {
            if name
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(Error::invalid("domain", reason));
            }
            Ok(name.to_ascii_lowercase())
        }
        _ => Err(Error::invalid("domain", reason)),
    }
}

/// An `https` URL (or any URL to an allowlisted address), checked against the outbound
/// policy now; every request checks it again.
async fn checked_endpoint(inner: &Inner, url: &str, field: &'static str) -> Result<String, Error> {
    if url.len() > 2048 {
        return Err(Error::invalid(field, "too long"));
    }
    inner.outbound.check_url(url).await?;
    Ok(url.to_owned())
}

/// Reads the issuer's discovery document (OpenID Connect Discovery §4) and trusts it only
/// if it names itself exactly and its endpoints pass the outbound policy (RP-11).
pub(crate) async fn discover(inner: &Inner, issuer: &str) -> Result<OidcEndpoints, Error> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let fetched = inner.outbound.get(&url).await?;
    if fetched.status != 200 {
        return Err(Error::SsoFailed {
            reason: "the provider's discovery document could not be read",
        });
    }
    let doc: Value = fetched.json("the provider's discovery document is not JSON")?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(Error::SsoFailed {
            reason: "the discovery document names another issuer",
        });
    }
    let endpoint = |name: &'static str| {
        doc.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Error::SsoFailed {
                reason: "the discovery document lacks a required endpoint",
            })
    };
    let endpoints = OidcEndpoints {
        authorization: checked_endpoint(
            inner,
            &endpoint("authorization_endpoint")?,
            "authorization_endpoint",
        )
        .await?,
        token: checked_endpoint(inner, &endpoint("token_endpoint")?, "token_endpoint").await?,
        jwks_uri: checked_endpoint(inner, &endpoint("jwks_uri")?, "jwks_uri").await?,
        iss_in_response: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(endpoints)
}

/// Applies `settings` to `connection`, checking each. Returns whether an
/// authentication-boundary setting changed (issuer, endpoints, client id, domains,
/// algorithms): then the connection needs a new test sign-in (ADM-10).
pub(crate) async fn apply(
    inner: &Inner,
    connection: &mut SsoConnection,
    settings: ConnectionSettings,
    linked: bool,
) -> Result<bool, Error> {
    let before = (
        connection.issuer.clone(),
        connection.endpoints.clone(),
        connection.client_id.clone(),
        connection.domains.clone(),
        connection.algorithms.clone(),
        connection.saml.clone(),
    );
    if let Some(name) = settings.name {
        connection.name = checked_label(&name, "name", 100)?;
    }
    if let Some(preset) = settings.preset {
        connection.preset = Some(preset);
    }
    if settings.kind.is_some_and(|kind| kind != connection.kind) {
        return Err(Error::invalid(
            "kind",
            "fixed when the connection is created",
        ));
    }
    let saml = connection.kind == ConnectionKind::Saml;
    let issuer_given = settings.issuer.is_some();
    if let Some(issuer) = settings.issuer {
        if issuer.len() > 2048 || !saml && url::Url::parse(&issuer).is_err() {
            return Err(Error::invalid("issuer", "must be a URL"));
        }
        // A SAML entity ID is a URI, often a URN: printable, no spaces.
        if issuer.is_empty() || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("issuer", "must be a URI"));
        }
        connection.issuer = issuer;
    }
    match (saml, settings.saml) {
        (true, Some(input)) => apply_saml(inner, connection, input, issuer_given).await?,
        (false, Some(_)) => {
            return Err(Error::invalid("saml", "only for connections of kind saml"));
        }
        _ => {}
    }
    if let Some(client_id) = settings.client_id {
        connection.client_id = checked_label(&client_id, "client_id", 255)?;
    }
    // RP-06: identities are keyed by this connection; who it trusts must not move under them.
    if linked && (connection.issuer != before.0 || connection.client_id != before.2) {
        return Err(Error::Conflict {
            what: "sso_connection_identities",
        });
    }
    if let Some(endpoints) = settings.endpoints {
        connection.endpoints = OidcEndpoints {
            authorization: checked_endpoint(
                inner,
                &endpoints.authorization,
                "endpoints.authorization",
            )
            .await?,
            token: checked_endpoint(inner, &endpoints.token, "endpoints.token").await?,
            jwks_uri: checked_endpoint(inner, &endpoints.jwks_uri, "endpoints.jwks_uri").await?,
            iss_in_response: endpoints.iss_in_response,
        };
        connection.discovery = false;
    } else if !saml
        && (issuer_given || connection.discovery && connection.endpoints.token.is_empty())
    {
        connection.endpoints = discover(inner, &connection.issuer).await?;
        connection.discovery = true;
    }
    if let Some(secret) = settings.client_secret {
        if secret.is_empty() || secret.len() > 1024 {
            return Err(Error::invalid("client_secret", "must be 1 to 1024 bytes"));
        }
        // RP-19: sealed, bound to this connection.
        connection.client_secret = Some(
            inner
                .keyring
                .seal(secret.as_bytes(), connection.id.as_bytes())?,
        );
    }
    if let Some(scopes) = settings.scopes {
        let mut scopes = short_list(scopes, "scopes", 20)?;
        if scopes.iter().any(|s| s.contains(char::is_whitespace)) {
            return Err(Error::invalid("scopes", "one scope per entry"));
        }
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        connection.scopes = scopes;
    }
    if let Some(claims) = settings.claims {
        for name in [&claims.email, &claims.name, &claims.groups] {
            checked_label(name, "claims", 100)?;
        }
        connection.claims = claims;
    }
    if let Some(map) = settings.group_roles {
        if map.len() > 100 {
            return Err(Error::invalid("group_roles", "at most 100 groups"));
        }
        let mut checked = BTreeMap::new();
        for (group, roles) in map {
            checked.insert(
                checked_label(&group, "group_roles", 200)?,
                short_list(roles, "group_roles", 20)?,
            );
        }
        connection.group_roles = checked;
    }
    if let Some(domains) = settings.domains {
        if domains.len() > 50 {
            return Err(Error::invalid("domains", "at most 50"));
        }
        let mut checked: Vec<String> = domains
            .iter()
            .map(|d| checked_domain(d))
            .collect::<Result<_, _>>()?;
        checked.sort();
        checked.dedup();
        connection.domains = checked;
    }
    if let Some(on) = settings.jit_provisioning {
        connection.jit_provisioning = on;
    }
    if let Some(roles) = settings.default_roles {
        connection.default_roles = short_list(roles, "default_roles", 20)?;
    }
    if let Some(algorithms) = settings.algorithms {
        if algorithms.is_empty() || algorithms.iter().any(|a| !ALGORITHMS.contains(&a.as_str())) {
            return Err(Error::invalid(
                "algorithms",
                format!("a non-empty subset of {}", ALGORITHMS.join(", ")),
            ));
        }
        connection.algorithms = algorithms;
    }
    if let Some(amr) = settings.mfa_amr {
        connection.mfa_amr = short_list(amr, "mfa_amr", 20)?;
    }
    if let Some(hd) = settings.hosted_domain {
        connection.hosted_domain = Some(checked_domain(&hd)?);
    }
    let boundary = before
        != (
            connection.issuer.clone(),
            connection.endpoints.clone(),
            connection.client_id.clone(),
            connection.domains.clone(),
            connection.algorithms.clone(),
            connection.saml.clone(),
        );
    if boundary {
        connection.tested_at = None;
    }
    match settings.status {
        Some(ConnectionStatus::Active) if connection.tested_at.is_none() => {
            return Err(Error::invalid(
                "status",
                "a connection becomes active only after a test sign-in through it succeeds",
            ));
        }
        Some(status) => connection.status = status,
        // A changed trust boundary takes an active connection back to draft until tested.
        None if boundary && connection.status == ConnectionStatus::Active => {
            connection.status = ConnectionStatus::Draft;
        }
        None => {}
    }
    Ok(boundary)
}

/// Applies a SAML provider's settings: its metadata first (pasted or fetched), then the
/// fields given one by one. The result must name an SSO URL and at least one certificate.
async fn apply_saml(
    inner: &Inner,
    connection: &mut SsoConnection,
    input: SamlInput,
    issuer_given: bool,
) -> Result<(), Error> {
    let mut settings = connection.saml.clone().unwrap_or_default();
    #[cfg(feature = "saml")]
    {
        let fetched;
        let metadata = match (&input.metadata_xml, &input.metadata_url) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "saml",
                    "give metadata_xml or metadata_url, not both",
                ));
            }
            (Some(xml), None) => Some(xml.as_str()),
            (None, Some(url)) => {
                let url = checked_endpoint(inner, url, "saml.metadata_url").await?;
                // SAML-19 / SSRF: through the outbound policy, capped at its body limit
                // (`OutboundPolicy::max_body`, 64 KiB unless raised).
                let accept = "application/samlmetadata+xml, application/xml;q=0.9";
                let got = inner.outbound.get_as(&url, accept).await?;
                if got.status != 200 {
                    return Err(Error::SsoFailed {
                        reason: "the identity provider's metadata could not be read",
                    });
                }
                fetched = String::from_utf8(got.body.to_vec()).map_err(|_| Error::SsoFailed {
                    reason: "the identity provider's metadata is not UTF-8",
                })?;
                settings.metadata_url = Some(url);
                Some(fetched.as_str())
            }
            (None, None) => None,
        };
        if let Some(text) = metadata {
            let read = super::saml::parse_idp_metadata(text)?;
            if !issuer_given {
                connection.issuer = read.entity_id;
            }
            settings.sso_url = read.sso_url;
            settings.certificates = read.certificates;
        }
    }
    #[cfg(not(feature = "saml"))]
    let _ = (issuer_given, &input.metadata_xml, &input.metadata_url);
    if let Some(url) = input.sso_url {
        settings.sso_url = url;
    }
    if !settings.sso_url.is_empty() {
        settings.sso_url = checked_endpoint(inner, &settings.sso_url, "saml.sso_url").await?;
    }
    if let Some(certificates) = input.certificates {
        if certificates.len() > 5 {
            return Err(Error::invalid("saml.certificates", "at most 5"));
        }
        settings.certificates = certificates
            .iter()
            .map(|c| checked_certificate(c))
            .collect::<Result<_, _>>()?;
    }
    if let Some(format) = input.name_id_format {
        settings.name_id_format = format;
    }
    if let Some(on) = input.response_signature_only {
        settings.response_signature_only = on;
    }
    if let Some(on) = input.idp_initiated {
        settings.idp_initiated = on;
    }
    #[cfg(feature = "saml")]
    if settings.sp_key.is_none() {
        // Our own key, for assertions the provider encrypts to us.
        let (certificate, key) =
            super::saml::encryption::new_sp_key(&inner.keyring, connection.id, inner.clock.now())?;
        settings.sp_certificate = Some(certificate);
        settings.sp_key = Some(key);
    }
    connection.saml = Some(settings);
    Ok(())
}

/// A certificate as an administrator pastes it (PEM or base64 DER), as base64 DER.
fn checked_certificate(text: &str) -> Result<String, Error> {
    use base64::Engine as _;
    let bad = || {
        Error::invalid(
            "saml.certificates",
            "each must be an X.509 certificate, PEM or base64 DER",
        )
    };
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect();
    if body.is_empty() || body.len() > 16 * 1024 {
        return Err(bad());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map_err(|_| bad())?;
    // A DER SEQUENCE; libxmlsec1 parses it whole at every verification.
    if der.len() < 64 || der[0] != 0x30 {
        return Err(bad());
    }
    Ok(body)
}

/// A new connection of `org` from `settings`.
pub(crate) async fn create(
    inner: &Inner,
    org: OrgId,
    mut settings: ConnectionSettings,
) -> Result<SsoConnection, Error> {
    inner.orgs.get_org(org).await?.ok_or(Error::NotFound {
        what: "organization",
    })?;
    if settings.preset == Some(Preset::Google) && settings.issuer.is_none() {
        settings.issuer = Some(GOOGLE_ISSUER.to_owned());
    }
    let kind = settings.kind.unwrap_or(ConnectionKind::Oidc);
    if kind == ConnectionKind::Saml {
        if !cfg!(feature = "saml") {
            return Err(Error::invalid(
                "kind",
                "SAML support is not built in (feature `saml`)",
            ));
        }
        // A SAML connection may start empty: its id names our entity ID and ACS, which
        // some providers want before they hand out their metadata.
        settings.saml.get_or_insert_with(SamlInput::default);
    } else {
        if settings.issuer.is_none() {
            return Err(Error::invalid("issuer", "required"));
        }
        if settings.client_id.is_none() {
            return Err(Error::invalid("client_id", "required"));
        }
    }
    let now = inner.clock.now();
    let mut connection = SsoConnection {
        id: ConnectionId::generate(),
        org_id: org,
        kind,
        name: "SSO".into(),
        status: ConnectionStatus::Draft,
        issuer: String::new(),
        discovery: true,
        endpoints: OidcEndpoints {
            authorization: String::new(),
            token: String::new(),
            jwks_uri: String::new(),
            iss_in_response: false,
        },
        client_id: String::new(),
        client_secret: None,
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        claims: ClaimMapping::default(),
        group_roles: BTreeMap::new(),
        domains: Vec::new(),
        jit_provisioning: false,
        default_roles: Vec::new(),
        algorithms: vec![
            "RS256".into(),
            "PS256".into(),
            "ES256".into(),
            "EdDSA".into(),
        ],
        mfa_amr: Vec::new(),
        hosted_domain: None,
        preset: None,
        saml: None,
        tested_at: None,
        created_at: now,
        updated_at: now,
        revision: 0,
    };
    if settings.status == Some(ConnectionStatus::Active) {
        return Err(Error::invalid(
            "status",
            "a connection becomes active only after a test sign-in through it succeeds",
        ));
    }
    apply(inner, &mut connection, settings, false).await?;
    inner.orgs.create_sso_connection(&connection).await?;
    crate::directory::log_admin(inner, org, "sso_connection_created").await;
    Ok(connection)
}

/// The connection `id` of `org` (another organization's is not found).
pub(crate) async fn get(
    inner: &Inner,
    org: OrgId,
    id: ConnectionId,
) -> Result<SsoConnection, Error> {
    match inner.orgs.get_sso_connection(id).await? {
        Some(c) if c.org_id == org => Ok(c),
        _ => Err(Error::NotFound {
            what: "sso_connection",
        }),
    }
}

/// Changes a connection (compare-and-swap, retried).
pub(crate) async fn update(
    inner: &Inner,
    org: OrgId,
    id: ConnectionId,
    settings: ConnectionSettings,
) -> Result<SsoConnection, Error> {
    for _ in 0..MAX_RETRIES {
        let mut connection = get(inner, org, id).await?;
        let linked = inner.users.count_identities(&id.to_string()).await? > 0;
        let boundary = apply(inner, &mut connection, settings.clone(), linked).await?;
        connection.updated_at = inner.clock.now();
        match inner.orgs.update_sso_connection(&connection).await {
            Err(StoreError::Stale) => continue,
            Err(err) => return Err(err.into()),
            Ok(revision) => {
                connection.revision = revision;
                let what = if boundary {
                    "sso_connection_boundary_changed"
                } else {
                    "sso_connection_updated"
                };
                crate::directory::log_admin(inner, org, what).await;
                return Ok(connection);
            }
        }
    }
    Err(Error::Conflict { what: "revision" })
}

/// Records a successful test sign-in under the connection's settings as of `revision`.
pub(crate) async fn mark_tested(inner: &Inner, connection: &SsoConnection) -> Result<(), Error> {
    let mut tested = connection.clone();
    tested.tested_at = Some(inner.clock.now());
    match inner.orgs.update_sso_connection(&tested).await {
        // Changed meanwhile: the test was of settings that are gone.
        Ok(_) | Err(StoreError::Stale) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
