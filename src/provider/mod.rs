//! portcullis as an OpenID provider: any OpenID Connect client library signs in through it.
//!
//! An organization's apps ([`App`](crate::model::App)) are the clients. [`Provider`] (`auth.provider()`) is
//! what the HTTP layer serves at the issuer's root:
//!
//! - [`discovery`](Provider::discovery): `/.well-known/openid-configuration` (and RFC
//!   8414's `/.well-known/oauth-authorization-server`);
//! - [`authorize`](Provider::authorize): the authorization-code flow with PKCE S256 (the
//!   only response type), `state`, `nonce`, `prompt`, `max_age`, `login_hint`,
//!   `id_token_hint`; every response carries `iss` (RFC 9207);
//! - [`token`](Provider::token): `authorization_code` and `refresh_token`, with
//!   `client_secret_basic`, `client_secret_post` or none (a public client);
//! - [`userinfo`](Provider::userinfo), [`revoke`](Provider::revoke) (RFC 7009),
//!   [`introspect`](Provider::introspect) (RFC 7662), and RP-initiated
//!   [`logout`](Provider::logout).
//!
//! ## The browser
//!
//! `/oauth2/authorize` must know whether this browser is signed in. The login page signs
//! in as it always does (every first factor, the organization's MFA step and SSO rules)
//! and hands its access token to [`establish`](Provider::establish), which answers with a
//! [`ProviderCookie`]: a 256-bit secret, stored hashed, standing for that session. The
//! HTTP layer sets it host-only, `HttpOnly`, `Secure` (except on loopback) and
//! `SameSite=Lax`. The forms that cookie could carry (consent, logout) take a CSRF token
//! derived from it and from the form's purpose ([`Provider::csrf_token`]).
//!
//! ## What a client gets
//!
//! A code opens a session of its own for the client, bound to it: its refresh tokens are
//! hashed for the provider alone (the JSON `/token/refresh` never finds them) and rotate on
//! every use; a refresh token comes only with `offline_access`. Access tokens keep the
//! API's format, with `client_id` and `scope` added (RFC 9068). The ID token (`typ`
//! `JWT`, signed with the same keys, published in the same JWKS) carries `iss`, `sub`,
//! `aud`, `exp`, `iat`, `auth_time`, `nonce` (when sent), `acr`, `amr`, `at_hash` and
//! `sid` (the browser's session), and the claims of the granted scopes.

mod authorize;
mod endpoints;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use authorize::{Authorization, ConsentPrompt, Interaction};
pub use endpoints::{Logout, OAuthError};

use crate::crypto::{ProviderCookie, SecretPurpose, b64url};
use crate::engine::Inner;
use crate::model::{ChallengeKey, ChallengeKind, ClientId, Session, SessionId, User, UserId};
use crate::{Error, Timestamp};

/// The OpenID provider (`auth.provider()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Provider<'a> {
    inner: &'a Inner,
}

/// What a client was granted, kept beside the session its code opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) client_id: ClientId,
    pub(crate) scope: Vec<String>,
    /// When the person signed in (Unix seconds): the ID token's `auth_time`.
    pub(crate) auth_time: i64,
    /// The browser's session at the provider: the ID token's `sid`.
    pub(crate) op_sid: SessionId,
    pub(crate) amr: Vec<String>,
    pub(crate) acr: String,
}

impl Grant {
    pub(crate) fn has(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// What a code of `/oauth2/authorize` carries beside the code itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CodeGrant {
    pub(crate) grant: Grant,
    pub(crate) nonce: Option<String>,
}

/// A consent a person gave a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The client.
    pub client_id: ClientId,
    /// The scopes consented to.
    pub scopes: Vec<String>,
    /// When it was given (or last widened).
    pub granted_at: Timestamp,
}

/// How long an authorization request waits for the person to sign in or consent.
pub const INTERACTION_TTL: Duration = Duration::from_secs(600);

/// How long a consent is remembered (until revoked).
const CONSENT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Keeps what `grant` gives beside session `id`, until the session's end.
pub(crate) async fn save_grant(
    inner: &Inner,
    id: SessionId,
    grant: &Grant,
    until: Timestamp,
) -> Result<(), Error> {
    let now = inner.clock.now();
    let value = serde_json::to_vec(grant).map_err(|_| Error::Internal("serializing a grant"))?;
    let key = ChallengeKey::new(ChallengeKind::OAuthGrant, id.to_string());
    if !inner.challenges.insert(&key, &value, until, now).await? {
        return Err(Error::Conflict { what: "grant" });
    }
    Ok(())
}

/// The grant beside a session, if a client of the provider holds it.
pub(crate) async fn load_grant(inner: &Inner, session: &Session) -> Result<Option<Grant>, Error> {
    let key = ChallengeKey::new(ChallengeKind::OAuthGrant, session.id.to_string());
    let Some(record) = inner.challenges.get(&key, inner.clock.now()).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&record.value)
        .map(Some)
        .map_err(|_| crate::StoreError::Corrupt { what: "grant" }.into())
}

/// What the provider's browser cookie stands for.
#[derive(Serialize, Deserialize)]
struct BrowserRecord {
    session_id: SessionId,
    user_id: UserId,
}

/// A browser signed in at the provider: its live session and user.
pub(crate) struct Browser {
    pub(crate) session: Session,
    pub(crate) user: User,
}

impl<'a> Provider<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Provider { inner }
    }

    /// The issuer: the `iss` of every token and response, and the root the endpoints are
    /// served under.
    pub fn issuer(&self) -> &str {
        self.inner.config.config.issuer.trim_end_matches('/')
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// The OpenID Provider Metadata (OpenID Connect Discovery §3; also RFC 8414's): only
    /// what is allowed is advertised (the code flow, S256, the signing key's algorithm).
    pub async fn discovery(&self) -> Result<serde_json::Value, Error> {
        let alg = crate::tokens::signing_algorithm(self.inner).await?;
        let methods = ["client_secret_basic", "client_secret_post", "none"];
        Ok(serde_json::json!({
            "issuer": self.issuer(),
            "authorization_endpoint": self.endpoint("/oauth2/authorize"),
            "token_endpoint": self.endpoint("/oauth2/token"),
            "userinfo_endpoint": self.endpoint("/oauth2/userinfo"),
            "jwks_uri": self.endpoint("/.well-known/jwks.json"),
            "revocation_endpoint": self.endpoint("/oauth2/revoke"),
            "introspection_endpoint": self.endpoint("/oauth2/introspect"),
            "end_session_endpoint": self.endpoint("/oauth2/logout"),
            "scopes_supported": crate::directory::KNOWN_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
            "userinfo_signing_alg_values_supported": ["none"],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "acr_values_supported": ["aal1", "aal2"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                "at_hash", "sid", "name", "email", "email_verified", "phone_number",
                "phone_number_verified", "roles", "permissions",
            ],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
        }))
    }

    /// The CSRF token of a provider form: derived from the browser's cookie and the form's
    /// purpose (an interaction id, `logout`), so that only a page the cookie's holder
    /// loaded can post it.
    pub fn csrf_token(&self, cookie: &ProviderCookie, purpose: &str) -> String {
        let hash = self.inner.hasher.hash_parts(
            SecretPurpose::ProviderCsrf,
            &[cookie.secret().as_bytes(), purpose.as_bytes()],
        );
        b64url(hash.as_bytes())
    }

    fn csrf_matches(&self, cookie: &ProviderCookie, purpose: &str, presented: &str) -> bool {
        crate::crypto::ct_eq(
            self.csrf_token(cookie, purpose).as_bytes(),
            presented.as_bytes(),
        )
    }

    /// The browser session a cookie stands for, if it is still live: the session not
    /// revoked, ended or idle, the user not blocked.
    pub(crate) async fn browser(
        &self,
        cookie: Option<&ProviderCookie>,
    ) -> Result<Option<Browser>, Error> {
        let Some(cookie) = cookie else {
            return Ok(None);
        };
        let inner = self.inner;
        let now = inner.clock.now();
        let hash = inner
            .hasher
            .hash(SecretPurpose::ProviderCookie, cookie.secret().as_bytes());
        let key = ChallengeKey::hashed(ChallengeKind::ProviderBrowser, &hash);
        let Some(record) = inner.challenges.get(&key, now).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<BrowserRecord>(&record.value) else {
            return Ok(None);
        };
        let Some(session) = inner.sessions.get_session(record.session_id, now).await? else {
            return Ok(None);
        };
        let idle = now >= session.last_seen_at + inner.config.config.ttl.session_idle;
        if !session.is_active(now) || idle || session.user_id != record.user_id {
            return Ok(None);
        }
        let Some(user) = inner.users.get_user(session.user_id).await? else {
            return Ok(None);
        };
        if user.blocked {
            return Ok(None);
        }
        Ok(Some(Browser { session, user }))
    }

    /// Forgets a browser cookie (the session it stood for is the caller's to end).
    async fn forget_browser(&self, cookie: &ProviderCookie) -> Result<(), Error> {
        let inner = self.inner;
        let hash = inner
            .hasher
            .hash(SecretPurpose::ProviderCookie, cookie.secret().as_bytes());
        let key = ChallengeKey::hashed(ChallengeKind::ProviderBrowser, &hash);
        inner.challenges.take(&key, inner.clock.now()).await?;
        Ok(())
    }

    /// The clients `user` consented to.
    pub async fn consents(&self, user: UserId) -> Result<Vec<Consent>, Error> {
        Ok(self.load_consents(user).await?.0.into_values().collect())
    }

    /// Revokes `user`'s consent to `client_id`: the next authorization asks again (and
    /// `prompt=none` answers `consent_required`). [`Error::NotFound`] (`"consent"`) when
    /// there is none.
    pub async fn revoke_consent(&self, user: UserId, client_id: &ClientId) -> Result<(), Error> {
        let removed = self
            .change_consents(user, |consents| consents.remove(client_id).is_some())
            .await?;
        if !removed {
            return Err(Error::NotFound { what: "consent" });
        }
        Ok(())
    }

    async fn load_consents(
        &self,
        user: UserId,
    ) -> Result<(BTreeMap<ClientId, Consent>, Option<u64>), Error> {
        let key = ChallengeKey::new(ChallengeKind::Consents, user.to_string());
        match self
            .inner
            .challenges
            .get(&key, self.inner.clock.now())
            .await?
        {
            None => Ok((BTreeMap::new(), None)),
            Some(record) => {
                let consents = serde_json::from_slice(&record.value)
                    .map_err(|_| crate::StoreError::Corrupt { what: "consents" })?;
                Ok((consents, Some(record.version)))
            }
        }
    }

    /// Applies `edit` to `user`'s consents (compare-and-swap); returns what `edit` did.
    async fn change_consents(
        &self,
        user: UserId,
        edit: impl Fn(&mut BTreeMap<ClientId, Consent>) -> bool,
    ) -> Result<bool, Error> {
        let inner = self.inner;
        let key = ChallengeKey::new(ChallengeKind::Consents, user.to_string());
        for _ in 0..crate::flows::MAX_RETRIES {
            let (mut consents, version) = self.load_consents(user).await?;
            if !edit(&mut consents) {
                return Ok(false);
            }
            let now = inner.clock.now();
            let value = serde_json::to_vec(&consents)
                .map_err(|_| Error::Internal("serializing consents"))?;
            let written = match version {
                Some(version) => {
                    inner
                        .challenges
                        .update(&key, version, &value, now + CONSENT_TTL, now)
                        .await?
                }
                None => {
                    inner
                        .challenges
                        .insert(&key, &value, now + CONSENT_TTL, now)
                        .await?
                }
            };
            if written {
                return Ok(true);
            }
        }
        Err(Error::Conflict { what: "consents" })
    }

    async fn consented(
        &self,
        user: UserId,
        client_id: &ClientId,
        scopes: &[String],
    ) -> Result<bool, Error> {
        let (consents, _) = self.load_consents(user).await?;
        Ok(consents
            .get(client_id)
            .is_some_and(|c| scopes.iter().all(|s| c.scopes.contains(s))))
    }
}
