//! The SAML side of [`Sso`]: our metadata, the `AuthnRequest` at start, the assertion
//! consumer service, and the confirmation of sign-ins the identity provider started.
//! Built with feature `saml`; without it these answer [`Error::SsoFailed`].

#[cfg(feature = "saml")]
use serde::{Deserialize, Serialize};

#[cfg(feature = "saml")]
use super::{Assertion, ConfirmToken, Ending, finish, saml, take_transaction, usable};
use super::{Sso, SsoDone, failed};
use crate::model::{ConnectionId, ConnectionKind, SsoConnection};
use crate::{Error, RequestContext};

#[cfg(feature = "saml")]
use crate::crypto::{SecretPurpose, random_token};
#[cfg(feature = "saml")]
use crate::model::{ChallengeKey, ChallengeKind};

/// How long a sign-in started by the identity provider waits for the person's
/// confirmation.
pub const CONFIRM_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// A sign-in the identity provider started, waiting for the person's confirmation.
#[cfg(feature = "saml")]
#[derive(Serialize, Deserialize)]
struct Pending {
    connection: ConnectionId,
    revision: u64,
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Vec<String>,
    mfa: bool,
}

#[cfg(not(feature = "saml"))]
fn not_built() -> Error {
    failed("SAML support is not built in (feature `saml`)")
}

impl Sso<'_> {
    /// Our SAML entity ID for `connection`: the URL of its metadata.
    pub fn sp_entity_id(&self, connection: ConnectionId) -> String {
        format!("{}/sso/{connection}/saml/metadata", self.base())
    }

    /// Our assertion consumer service for `connection` (HTTP-POST binding).
    pub fn acs_url(&self, connection: ConnectionId) -> String {
        format!("{}/sso/{connection}/saml/acs", self.base())
    }

    /// Where the page confirming a sign-in the provider started posts its token.
    pub fn saml_confirm_url(&self) -> String {
        format!("{}/sso/saml/confirm", self.base())
    }

    fn base(&self) -> &str {
        self.inner.sso_base.as_str().trim_end_matches('/')
    }

    async fn saml_connection(&self, id: ConnectionId) -> Result<SsoConnection, Error> {
        match self.inner.orgs.get_sso_connection(id).await? {
            Some(c) if c.kind == ConnectionKind::Saml && c.saml.is_some() => Ok(c),
            _ => Err(Error::NotFound {
                what: "sso_connection",
            }),
        }
    }

    /// Our metadata for a SAML connection, to hand to its identity provider (served at
    /// [`sp_entity_id`](Self::sp_entity_id)).
    pub async fn saml_metadata(&self, id: ConnectionId) -> Result<String, Error> {
        let connection = self.saml_connection(id).await?;
        #[cfg(feature = "saml")]
        {
            let (entity_id, acs_url) = (self.sp_entity_id(id), self.acs_url(id));
            let sp = saml::Sp {
                entity_id: &entity_id,
                acs_url: &acs_url,
            };
            let settings = connection
                .saml
                .as_ref()
                .ok_or(Error::Internal("a SAML connection without settings"))?;
            Ok(saml::sp_metadata(
                &sp,
                settings.name_id_format,
                settings.sp_certificate.as_deref(),
            ))
        }
        #[cfg(not(feature = "saml"))]
        {
            let _ = connection;
            Err(not_built())
        }
    }

    /// The identity provider's URL for a new `AuthnRequest`, and the request's ID.
    #[cfg(feature = "saml")]
    pub(super) fn saml_request(
        &self,
        connection: &SsoConnection,
        relay_state: &str,
    ) -> Result<(String, String), Error> {
        let settings = connection
            .saml
            .as_ref()
            .ok_or(Error::Internal("a SAML connection without settings"))?;
        if connection.issuer.is_empty()
            || settings.sso_url.is_empty()
            || settings.certificates.is_empty()
        {
            return Err(failed(
                "the identity provider's entity ID, SSO URL and certificate are not set yet",
            ));
        }
        let request = saml::request_id()?;
        let (entity_id, acs_url) = (
            self.sp_entity_id(connection.id),
            self.acs_url(connection.id),
        );
        let sp = saml::Sp {
            entity_id: &entity_id,
            acs_url: &acs_url,
        };
        let url = saml::authn_request_url(
            &sp,
            &settings.sso_url,
            settings.name_id_format,
            &request,
            relay_state,
            self.inner.clock.now(),
        )?;
        Ok((url, request))
    }

    #[cfg(not(feature = "saml"))]
    pub(super) fn saml_request(
        &self,
        _: &SsoConnection,
        _: &str,
    ) -> Result<(String, String), Error> {
        Err(not_built())
    }

    /// The assertion consumer service: `SAMLResponse` and `RelayState` as the browser
    /// posted them to [`acs_url`](Self::acs_url), and the browser binding from the cookie
    /// set at start.
    ///
    /// The response must answer the outstanding request that `RelayState` names, started
    /// in this browser for this connection (checklist SAML-11); its signature is verified
    /// by libxmlsec1 with the connection's certificates only and only signed content is
    /// read (SAML-01…10); then destination, recipient, audience, issuer and time window
    /// (SAML-12, 13, 15), and the assertion ID is spent (SAML-14). A response nobody asked
    /// for is refused, unless the connection accepts sign-ins its provider starts: then
    /// the answer is [`SsoDone::Confirm`] (SAML-16).
    pub async fn saml_acs(
        &self,
        connection: ConnectionId,
        saml_response: &str,
        relay_state: Option<&str>,
        browser_binding: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SsoDone, Error> {
        #[cfg(feature = "saml")]
        {
            self.consume(connection, saml_response, relay_state, browser_binding, ctx)
                .await
        }
        #[cfg(not(feature = "saml"))]
        {
            let _ = (connection, saml_response, relay_state, browser_binding, ctx);
            Err(not_built())
        }
    }

    #[cfg(feature = "saml")]
    async fn consume(
        &self,
        id: ConnectionId,
        saml_response: &str,
        relay_state: Option<&str>,
        browser_binding: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SsoDone, Error> {
        let inner = self.inner;
        let document = saml::verify::decode(saml_response)?;
        // SAML-17: RelayState is an opaque handle, never a URL.
        let relay_state = relay_state.filter(|r| !r.is_empty());
        if relay_state.is_some_and(|r| r.len() > 80) {
            return Err(failed("the RelayState is not one of ours"));
        }
        let tx = match relay_state {
            Some(state) => {
                let (tx, connection) = take_transaction(inner, state, browser_binding).await?;
                if connection.id != id || tx.saml_request.is_none() {
                    return Err(failed("the SAML response was posted to another connection"));
                }
                Some((tx, connection))
            }
            None => None,
        };
        let connection = match &tx {
            Some((_, connection)) => connection.clone(),
            None => {
                let connection = self.saml_connection(id).await?;
                if !usable(&connection, false) {
                    return Err(failed("the connection is not active"));
                }
                connection
            }
        };
        let settings = connection
            .saml
            .as_ref()
            .ok_or(Error::Internal("a SAML connection without settings"))?;
        let (verified, envelope) = saml::verify::verify(
            &document,
            &settings.certificates,
            settings.response_signature_only,
            |encrypted| {
                saml::encryption::decrypt(
                    encrypted,
                    &inner.keyring,
                    connection.id,
                    settings.sp_key.as_ref(),
                )
            },
        )?;
        let request_id = tx.as_ref().and_then(|(tx, _)| tx.saml_request.as_deref());
        if request_id.is_none() && !settings.idp_initiated {
            return Err(failed("the SAML response answers no request of ours"));
        }
        let (entity_id, acs_url) = (self.sp_entity_id(id), self.acs_url(id));
        let now = inner.clock.now();
        let expected = saml::Expected {
            sp: saml::Sp {
                entity_id: &entity_id,
                acs_url: &acs_url,
            },
            idp_entity_id: &connection.issuer,
            format: settings.name_id_format,
            request_id,
            now,
            skew: inner.config.config.ttl.saml_clock_skew,
        };
        let remember_until = saml::check(&verified, &envelope, &expected)?;
        // SAML-14: each assertion once, across every endpoint, until it expires.
        let spent = ChallengeKey::hashed(
            ChallengeKind::SamlAssertion,
            &inner.hasher.hash_parts(
                SecretPurpose::SsoState,
                &[
                    b"saml assertion",
                    connection.id.as_bytes(),
                    verified.id.as_bytes(),
                ],
            ),
        );
        if !inner
            .challenges
            .insert(&spent, b"spent", remember_until, now)
            .await?
        {
            return Err(failed("the SAML assertion was already used"));
        }
        let assertion = saml::to_assertion(&connection, &verified);
        let mfa = saml::multi_factor(&connection, &verified);
        match tx {
            Some((tx, connection)) => {
                finish(inner, &connection, &assertion, mfa, tx.ending, ctx).await
            }
            None => self.pend(&connection, assertion, mfa).await,
        }
    }

    /// Keeps a sign-in the provider started until the person confirms it.
    #[cfg(feature = "saml")]
    async fn pend(
        &self,
        connection: &SsoConnection,
        assertion: Assertion,
        mfa: bool,
    ) -> Result<SsoDone, Error> {
        let inner = self.inner;
        let token = random_token()?;
        let email = assertion.email.as_ref().map(|e| e.as_str().to_owned());
        let pending = Pending {
            connection: connection.id,
            revision: connection.revision,
            subject: assertion.subject,
            email: email.clone(),
            email_verified: assertion.email_verified,
            name: assertion.name,
            groups: assertion.groups,
            mfa,
        };
        let value = serde_json::to_vec(&pending).map_err(|_| Error::Internal("saml pending"))?;
        let now = inner.clock.now();
        if !inner
            .challenges
            .insert(&confirm_key(inner, &token), &value, now + CONFIRM_TTL, now)
            .await?
        {
            return Err(Error::Internal("confirmation collision"));
        }
        Ok(SsoDone::Confirm {
            connection_id: connection.id,
            token: ConfirmToken(token),
            email,
        })
    }

    /// Signs in the person who confirmed a sign-in their identity provider started
    /// ([`SsoDone::Confirm`]). The token works once; a connection changed since voids it.
    pub async fn saml_confirm(&self, token: &str, ctx: &RequestContext) -> Result<SsoDone, Error> {
        #[cfg(feature = "saml")]
        {
            let inner = self.inner;
            if token.len() > 256 {
                return Err(Error::InvalidToken);
            }
            let now = inner.clock.now();
            let record = inner
                .challenges
                .take(&confirm_key(inner, token), now)
                .await?
                .ok_or(Error::InvalidToken)?;
            let pending: Pending = serde_json::from_slice(&record.value)
                .map_err(|_| Error::Internal("saml pending"))?;
            let connection = self.saml_connection(pending.connection).await?;
            if !usable(&connection, false) || connection.revision != pending.revision {
                return Err(failed("the connection changed or was disabled"));
            }
            let assertion = Assertion {
                subject: pending.subject,
                email: pending
                    .email
                    .as_deref()
                    .and_then(|e| crate::Email::parse(e).ok()),
                email_verified: pending.email_verified,
                name: pending.name,
                groups: pending.groups,
            };
            finish(
                inner,
                &connection,
                &assertion,
                pending.mfa,
                Ending::default(),
                ctx,
            )
            .await
        }
        #[cfg(not(feature = "saml"))]
        {
            let _ = (token, ctx);
            Err(not_built())
        }
    }
}

#[cfg(feature = "saml")]
fn confirm_key(inner: &crate::engine::Inner, token: &str) -> ChallengeKey {
    let hash = inner.hasher.hash_parts(
        SecretPurpose::SsoState,
        &[b"saml confirmation", token.as_bytes()],
    );
    ChallengeKey::hashed(ChallengeKind::SamlConfirmation, &hash)
}
