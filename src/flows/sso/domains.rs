//! Domains an organization proves by DNS TXT (checklist ADM-16, ADM-17, RP-17), and SSO
//! enforcement for them (RP-15).

use std::time::Duration;

use crate::crypto::random_token;
use crate::engine::Inner;
use crate::model::{ConnectionStatus, DomainClaim, OrgId, SsoConnection};
use crate::{Error, StoreError};

use super::connections::checked_domain;

/// How long a claim's token may be proven.
pub const CLAIM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Claims `domain` for `org`: a fresh token to publish at `_portcullis-challenge.<domain>`.
/// A domain the organization already proved keeps its proof (claiming it again changes
/// nothing); one another organization proved is [`Error::Conflict`]. Other domains of the
/// organization are untouched.
pub(crate) async fn claim(inner: &Inner, org: OrgId, domain: &str) -> Result<DomainClaim, Error> {
    let domain = checked_domain(domain)?;
    inner.orgs.get_org(org).await?.ok_or(Error::NotFound {
        what: "organization",
    })?;
    if let Some(existing) = find(inner, org, &domain).await?
        && (existing.verified_at.is_some() || existing.expires_at > inner.clock.now())
    {
        return Ok(existing);
    }
    let now = inner.clock.now();
    let token = format!("portcullis-verify={}", random_token()?.as_str());
    let claim = DomainClaim::new(org, domain, token, now, now + CLAIM_TTL);
    match inner.orgs.put_domain_claim(&claim).await {
        Err(StoreError::Conflict { .. }) => Err(Error::Conflict { what: "domain" }),
        Err(err) => Err(err.into()),
        Ok(()) => {
            crate::directory::log_admin(inner, org, "domain_claimed").await;
            Ok(claim)
        }
    }
}

async fn find(inner: &Inner, org: OrgId, domain: &str) -> Result<Option<DomainClaim>, Error> {
    Ok(inner
        .orgs
        .list_domain_claims(org)
        .await?
        .into_iter()
        .find(|c| c.domain == domain))
}

/// Looks the claim's TXT record up and, when one record is exactly its token, marks it
/// verified: only the claim as it was when the lookup started (a claim replaced or
/// removed meanwhile is not).
pub(crate) async fn verify(inner: &Inner, org: OrgId, domain: &str) -> Result<DomainClaim, Error> {
    let domain = checked_domain(domain)?;
    let mut claim = find(inner, org, &domain)
        .await?
        .ok_or(Error::NotFound { what: "domain" })?;
    if claim.verified_at.is_some() {
        return Ok(claim);
    }
    let now = inner.clock.now();
    if claim.expires_at <= now {
        return Err(Error::Expired);
    }
    let verifier = inner.dns.as_ref().ok_or_else(|| {
        Error::Config("no DomainVerifier: set one with PortcullisBuilder::domain_verifier".into())
    })?;
    // Absolute: no search domain is appended.
    let name = format!("{}.", claim.txt_name());
    let records = verifier.txt_records(&name).await?;
    if !records.contains(&claim.token) {
        return Ok(claim);
    }
    match inner
        .orgs
        .verify_domain_claim(org, &domain, &claim.token, now)
        .await
    {
        Ok(true) => {
            crate::directory::log_admin(inner, org, "domain_verified").await;
            claim.verified_at = Some(now);
            Ok(claim)
        }
        Ok(false) => Err(Error::Conflict { what: "domain" }),
        Err(StoreError::Conflict { .. }) => Err(Error::Conflict { what: "domain" }),
        Err(err) => Err(err.into()),
    }
}

/// The organization that proved `domain`, if one did.
pub(crate) async fn verified_org(inner: &Inner, domain: &str) -> Result<Option<OrgId>, Error> {
    Ok(inner
        .orgs
        .domain_claims(domain)
        .await?
        .into_iter()
        .find(|c| c.verified_at.is_some())
        .map(|c| c.org_id))
}

/// Whether `domain` is a proven domain of `org`.
pub(crate) async fn is_verified_for(
    inner: &Inner,
    org: OrgId,
    domain: &str,
) -> Result<bool, Error> {
    Ok(verified_org(inner, domain).await? == Some(org))
}

/// The active connection that serves `domain` in `org`.
pub(crate) async fn connection_for(
    inner: &Inner,
    org: OrgId,
    domain: &str,
) -> Result<Option<SsoConnection>, Error> {
    Ok(inner
        .orgs
        .list_sso_connections(org)
        .await?
        .into_iter()
        .find(|c| c.status == ConnectionStatus::Active && c.domains.iter().any(|d| d == domain)))
}

/// Home-realm discovery: the active connection for an email's proven domain.
pub(crate) async fn discover(
    inner: &Inner,
    email: &crate::Email,
) -> Result<Option<SsoConnection>, Error> {
    let domain = email.domain();
    match verified_org(inner, domain).await? {
        Some(org) => connection_for(inner, org, domain).await,
        None => Ok(None),
    }
}

/// Refuses a sign-in other than SSO for an address whose proven domain belongs to an
/// organization that requires SSO ([`Error::SsoRequired`]).
pub(crate) async fn enforce(inner: &Inner, email: &crate::Email) -> Result<(), Error> {
    let domain = email.domain();
    let Some(org) = verified_org(inner, domain).await? else {
        return Ok(());
    };
    let settings = crate::directory::Orgs::new(inner)
        .settings(Some(org))
        .await?;
    if !settings.sso_required {
        return Ok(());
    }
    let connection = connection_for(inner, org, domain).await?;
    Err(Error::SsoRequired {
        connection_id: connection.map(|c| c.id),
    })
}
