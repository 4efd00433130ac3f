//! Machine credentials for the management API (`auth.api_keys()`).
//!
//! A credential belongs to one organization and holds scopes: permission names such as
//! `users:read` or `users:*`. Its secret (`lk_` and 256 random bits) is shown once, when
//! it is made; the store keeps only its keyed hash, so [`ApiKeys::verify`] is one hash and
//! one indexed lookup, with the final comparison in constant time. A credential may
//! expire; a revoked one never works again. Its last use is recorded to the minute.

use std::time::Duration;

use serde::Serialize;

use crate::crypto::{ApiKey, SecretPurpose, random_token};
use crate::engine::Inner;
use crate::model::{ApiCredential, ApiCredentialId, OrgId, Permission, checked_label};
use crate::{Error, Timestamp};

/// The prefix of every API key secret: easy to spot in a leaked log or repository.
pub const API_KEY_PREFIX: &str = "lk_";

/// Longer presented keys are refused before any hashing.
const MAX_KEY_LEN: usize = 128;

/// How stale the recorded last use may get before a verification rewrites it.
const LAST_USE_RESOLUTION: Duration = Duration::from_secs(60);

/// A credential to make.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewApiKey {
    /// What it is for (1 to 100 characters).
    pub name: String,
    /// The permissions it holds.
    pub scopes: Vec<String>,
    /// It stops working this long after it is made, if set.
    pub expires_in: Option<Duration>,
}

impl NewApiKey {
    /// A credential called `name` holding `scopes`.
    pub fn new(name: impl Into<String>, scopes: &[&str]) -> Self {
        NewApiKey {
            name: name.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_in: None,
        }
    }
}

/// A credential as listed: everything but its secret's hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyInfo {
    /// The public client id.
    pub id: ApiCredentialId,
    /// The organization it acts for.
    pub org_id: OrgId,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Permission>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

impl From<ApiCredential> for ApiKeyInfo {
    fn from(c: ApiCredential) -> Self {
        ApiKeyInfo {
            id: c.id,
            org_id: c.org_id,
            name: c.name,
            scopes: c.scopes,
            created_at: c.created_at,
            expires_at: c.expires_at,
            last_used_at: c.last_used_at,
            revoked_at: c.revoked_at,
        }
    }
}

impl ApiKeyInfo {
    /// Whether the credential's scopes grant `permission` (`users:*` grants
    /// `users:write`).
    pub fn allows(&self, permission: &str) -> bool {
        Permission::new(permission)
            .is_ok_and(|wanted| self.scopes.iter().any(|held| held.grants(&wanted)))
    }
}

/// A credential just made: the secret is in this value only.
#[derive(Debug, Clone)]
pub struct ApiKeyCreated {
    /// The credential.
    pub info: ApiKeyInfo,
    /// Its secret: hand it over now, it cannot be read back.
    pub secret: ApiKey,
}

/// API credentials (`auth.api_keys()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct ApiKeys<'a> {
    inner: &'a Inner,
}

impl<'a> ApiKeys<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        ApiKeys { inner }
    }

    /// Makes a credential for `org`.
    ///
    /// Errors: [`Error::InvalidInput`] for a bad name or scope;
    /// [`Error::NotFound`] (`"organization"`).
    pub async fn create(&self, org: OrgId, new: &NewApiKey) -> Result<ApiKeyCreated, Error> {
        let inner = self.inner;
        let name = checked_label(&new.name, "name", 100)?;
        let mut scopes = new
            .scopes
            .iter()
            .map(|s| Permission::new(s.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        let now = inner.clock.now();
        let secret = ApiKey::new(format!("{API_KEY_PREFIX}{}", random_token()?.as_str()));
        let credential = ApiCredential {
            id: ApiCredentialId::generate(),
            org_id: org,
            name,
            secret_hash: secret_hash(inner, &secret),
            scopes,
            created_at: now,
            expires_at: new.expires_in.map(|ttl| now + ttl),
            last_used_at: None,
            revoked_at: None,
        };
        inner.orgs.create_api_credential(&credential).await?;
        super::log_admin(inner, org, "api_key_created").await;
        Ok(ApiKeyCreated {
            info: credential.into(),
            secret,
        })
    }

    /// An organization's credentials, oldest first.
    pub async fn list(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, Error> {
        let credentials = self.inner.orgs.list_api_credentials(org).await?;
        Ok(credentials.into_iter().map(ApiKeyInfo::from).collect())
    }

    /// Revokes a credential of `org` for good. [`Error::NotFound`] (`"api_key"`).
    pub async fn revoke(&self, org: OrgId, id: ApiCredentialId) -> Result<(), Error> {
        let inner = self.inner;
        let mut credential = inner
            .orgs
            .list_api_credentials(org)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(Error::NotFound { what: "api_key" })?;
        credential.revoked_at = Some(inner.clock.now());
        if !inner.orgs.update_api_credential(&credential).await? {
            return Err(Error::NotFound { what: "api_key" });
        }
        super::log_admin(inner, org, "api_key_revoked").await;
        Ok(())
    }

    /// The credential a presented secret belongs to, if it is live (not revoked, not
    /// expired). Every failure is [`Error::InvalidCredentials`], whatever the reason.
    pub async fn verify(&self, secret: &ApiKey) -> Result<ApiKeyInfo, Error> {
        let inner = self.inner;
        let text = secret.secret();
        if text.len() > MAX_KEY_LEN || !text.starts_with(API_KEY_PREFIX) {
            return Err(Error::InvalidCredentials);
        }
        // Under each pepper of the ring: a key issued before a rotation still works.
        let mut found = None;
        for hash in inner
            .hasher
            .hashes(SecretPurpose::ApiKey, &[secret.secret().as_bytes()])
        {
            found = inner
                .orgs
                .get_api_credential_by_hash(&hash)
                .await?
                .filter(|c| c.secret_hash.ct_eq(&hash));
            if found.is_some() {
                break;
            }
        }
        let mut credential = found.ok_or(Error::InvalidCredentials)?;
        let now = inner.clock.now();
        let expired = credential.expires_at.is_some_and(|at| now >= at);
        if credential.revoked_at.is_some() || expired {
            return Err(Error::InvalidCredentials);
        }
        let stale = credential
            .last_used_at
            .is_none_or(|at| now.duration_since(at) >= LAST_USE_RESOLUTION);
        if stale {
            credential.last_used_at = Some(now);
            inner.orgs.update_api_credential(&credential).await?;
        }
        Ok(credential.into())
    }
}

fn secret_hash(inner: &Inner, secret: &ApiKey) -> crate::crypto::SecretHash {
    inner
        .hasher
        .hash(SecretPurpose::ApiKey, secret.secret().as_bytes())
}
