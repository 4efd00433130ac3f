//! Single sign-on over OpenID Connect: an organization's connections to its identity
//! provider, Google and other social providers, domain proofs, and the authorization-code
//! flow with PKCE (checklist 2.17).
//!
//! [`Sso::start`] makes the provider's authorization URL with a fresh `state`, `nonce`
//! and PKCE S256 verifier, kept server-side and single-use in the
//! [`ChallengeStore`](crate::store::ChallengeStore), bound to the browser that started
//! (the caller keeps [`SsoRedirect::browser_binding`] in a cookie) and to the connection
//! as it was. [`Sso::callback`] spends the transaction before any request to the provider,
//! exchanges the code at that connection's token endpoint, validates the ID token
//! (`id_token`), decides who it signs in as ([`federate`]: the one linking and
//! provisioning policy), and ends like every first factor: the organization's MFA policy
//! still applies.
//!
//! The relying party is built on jsonwebtoken (already the engine's JOSE library) for the
//! ID token and on the engine's one guarded HTTP client ([`Outbound`](crate::Outbound))
//! for every request, rather than on the `openidconnect` crate: that crate brings a second
//! generation of the RustCrypto stack (sha2 0.10, hmac 0.12, rsa 0.9, rand 0.8) and its own
//! HTTP abstraction, which would have to be wrapped to keep the outbound policy anyway.

pub(crate) mod connections;
mod domains;
pub mod federate;
mod id_token;
#[cfg(feature = "saml")]
mod saml;
mod saml_flow;
pub mod setup;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

pub use connections::{ConnectionSettings, GOOGLE_ISSUER, SamlInput, view};
pub use domains::CLAIM_TTL;
pub use federate::Assertion;
pub use saml_flow::CONFIRM_TTL;

pub(crate) use domains::enforce as enforce_sso;
pub(crate) use id_token::JwksCache;

use crate::crypto::{SecretPurpose, random_token};
use crate::engine::Inner;
use crate::model::{
    ChallengeKey, ChallengeKind, ConnectionId, ConnectionKind, ConnectionStatus, DomainClaim,
    OrgId, Preset, SessionId, SsoConnection, UserId,
};
use crate::signin::{AuthMethod, Proven, SignIn};
use crate::tokens::AuthCodeRequest;
use crate::{Email, Error, RequestContext};

/// How long a started sign-in waits for the provider's answer.
pub const STATE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

fn failed(reason: &'static str) -> Error {
    Error::SsoFailed { reason }
}

/// Which connection a sign-in goes through.
#[derive(Debug, Clone)]
pub enum SsoTarget {
    /// This connection.
    Connection(ConnectionId),
    /// The active connection for this address's proven domain (home-realm discovery).
    Email(String),
}

/// How a sign-in through SSO should end.
#[derive(Debug, Clone, Default)]
pub struct SsoOptions {
    /// End with an authorization code for this app (a redirect flow) instead of tokens.
    pub code_request: Option<AuthCodeRequest>,
    /// The app's own `state`, handed back with the code.
    pub app_state: Option<String>,
    /// A test sign-in by the connection's administrator: runs through a `draft`
    /// connection, and a success lets the connection become `active`.
    pub test: bool,
}

/// Where to send the browser, and what it must bring back.
#[derive(Clone)]
pub struct SsoRedirect {
    /// The provider's authorization URL.
    pub url: String,
    /// Binds the sign-in to this browser: keep it in a cookie (`HttpOnly`,
    /// `SameSite=Lax`) and pass it to [`Sso::callback`].
    pub browser_binding: Zeroizing<String>,
    /// The connection it goes through.
    pub connection_id: ConnectionId,
}

impl std::fmt::Debug for SsoRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoRedirect")
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

/// A finished SSO sign-in.
#[derive(Debug)]
#[non_exhaustive]
pub enum SsoDone {
    /// Someone signed in.
    SignedIn {
        /// Tokens, an MFA step, or an authorization code.
        sign_in: SignIn,
        /// The app's `state` given at start.
        app_state: Option<String>,
        /// Where the code goes, for a redirect flow.
        redirect_uri: Option<String>,
    },
    /// A test sign-in passed: the provider's answer checked out, nobody was signed in or
    /// provisioned, and the connection may now become active.
    Tested(SsoTested),
    /// A signed-in user linked their account at the provider ([`Sso::start_link`]).
    Linked {
        /// The user.
        user_id: UserId,
        /// The connection.
        connection_id: ConnectionId,
    },
    /// The person must confirm a sign-in their SAML identity provider started (checklist
    /// SAML-16): show them who they would sign in as, and on their say-so pass `token` to
    /// [`Sso::saml_confirm`].
    Confirm {
        /// The connection.
        connection_id: ConnectionId,
        /// Single-use, short-lived: the confirmation form's hidden field.
        token: ConfirmToken,
        /// The email the provider asserted, to show.
        email: Option<String>,
    },
}

/// The token of a sign-in waiting for the person's confirmation ([`SsoDone::Confirm`]).
/// As secret as a session while it lives: redacted `Debug`.
pub struct ConfirmToken(Zeroizing<String>);

impl ConfirmToken {
    /// The token.
    ///
    /// SECURITY: it signs someone in; put it only in the confirmation form.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ConfirmToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmToken([redacted])")
    }
}

/// What a test sign-in saw.
#[derive(Debug, Clone)]
pub struct SsoTested {
    /// The connection tested.
    pub connection_id: ConnectionId,
    /// The provider's subject for the person who signed in there.
    pub subject: String,
    /// Their email, as the provider asserted it.
    pub email: Option<String>,
    /// Whether the provider said the email is verified.
    pub email_verified: bool,
}

/// A sign-in under way, as stored (keyed by the state's hash, which for SAML is the
/// `RelayState`).
#[derive(Serialize, Deserialize)]
struct Transaction {
    connection: ConnectionId,
    /// The connection's revision at start: any change since voids the sign-in.
    revision: u64,
    issuer: String,
    /// OpenID Connect: the nonce's keyed hash (the nonce itself went to the browser).
    #[serde(default)]
    nonce: Option<crate::crypto::SecretHash>,
    /// OpenID Connect: the PKCE verifier, sealed (only the token request needs it again).
    #[serde(default)]
    verifier: Option<crate::crypto::Sealed>,
    /// SAML: the `AuthnRequest` ID the response must answer.
    #[serde(default)]
    saml_request: Option<String>,
    browser: crate::crypto::SecretHash,
    redirect_uri: String,
    #[serde(flatten)]
    ending: Ending,
}

/// How a sign-in ends once the provider vouched for the person.
#[derive(Serialize, Deserialize, Default)]
struct Ending {
    code_request: Option<AuthCodeRequest>,
    app_state: Option<String>,
    test: bool,
    /// For a link: the signed-in user and the security stamp their session was made
    /// under (a credential change meanwhile voids the link).
    #[serde(default)]
    link: Option<(UserId, u64)>,
}

/// Single sign-on: connections, domains, and the sign-in itself.
pub struct Sso<'a> {
    inner: &'a Inner,
}

impl<'a> Sso<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Sso { inner }
    }

    /// Creates a connection for `org`, as a `draft`. With an issuer and no endpoints, the
    /// issuer's discovery document is read now (through the outbound policy) and must
    /// name the issuer exactly. Call only for an administrator of `org`.
    pub async fn create_connection(
        &self,
        org: OrgId,
        settings: ConnectionSettings,
    ) -> Result<SsoConnection, Error> {
        connections::create(self.inner, org, settings).await
    }

    /// A connection of `org`.
    pub async fn connection(&self, org: OrgId, id: ConnectionId) -> Result<SsoConnection, Error> {
        connections::get(self.inner, org, id).await
    }

    /// The connections of `org`.
    pub async fn connections(&self, org: OrgId) -> Result<Vec<SsoConnection>, Error> {
        Ok(self.inner.orgs.list_sso_connections(org).await?)
    }

    /// Changes a connection. Changing its issuer or client id once identities are linked
    /// through it is [`Error::Conflict`]; changing what it trusts (issuer, endpoints,
    /// client id, domains, algorithms) takes an active connection back to `draft` until a
    /// test sign-in passes.
    pub async fn update_connection(
        &self,
        org: OrgId,
        id: ConnectionId,
        settings: ConnectionSettings,
    ) -> Result<SsoConnection, Error> {
        connections::update(self.inner, org, id, settings).await
    }

    /// Deletes a connection of `org`.
    pub async fn delete_connection(&self, org: OrgId, id: ConnectionId) -> Result<(), Error> {
        if !self.inner.orgs.delete_sso_connection(org, id).await? {
            return Err(Error::NotFound {
                what: "sso_connection",
            });
        }
        crate::directory::log_admin(self.inner, org, "sso_connection_deleted").await;
        Ok(())
    }

    /// A setup link for `org`'s IT administrator (optionally for one existing connection):
    /// opening it gives a session that reaches only the organization's domains and that
    /// connection (or the first one it creates). Call only for an administrator of `org`.
    pub async fn create_setup_link(
        &self,
        org: OrgId,
        connection: Option<ConnectionId>,
    ) -> Result<setup::SetupLinkCreated, Error> {
        setup::create(self.inner, org, connection).await
    }

    /// Spends a setup link and opens its session ([`Error::InvalidToken`] when the link
    /// is unknown, used, expired or revoked).
    pub async fn open_setup_link(&self, link: &str) -> Result<setup::SetupSessionOpened, Error> {
        setup::open(self.inner, link).await
    }

    /// What a live setup session reaches ([`Error::InvalidToken`] otherwise).
    pub async fn setup_scope(&self, session: &str) -> Result<setup::SetupScope, Error> {
        setup::scope(self.inner, session).await
    }

    /// Creates the connection of a setup session that has none yet, and binds the session
    /// to it ([`Error::Forbidden`] when the session already has one).
    pub async fn create_connection_in_setup(
        &self,
        session: &str,
        settings: ConnectionSettings,
    ) -> Result<SsoConnection, Error> {
        let scope = setup::scope(self.inner, session).await?;
        if scope.connection_id.is_some() {
            return Err(Error::Forbidden);
        }
        let created = connections::create(self.inner, scope.org_id, settings).await?;
        if let Err(err) = setup::bind(self.inner, session, created.id).await {
            // Lost a race with another create of the same session: undo this one.
            self.inner
                .orgs
                .delete_sso_connection(scope.org_id, created.id)
                .await?;
            return Err(err);
        }
        Ok(created)
    }

    /// Ends every setup link and setup session of `org`.
    pub async fn revoke_setup_links(&self, org: OrgId) -> Result<(), Error> {
        setup::revoke(self.inner, org).await
    }

    /// Claims `domain` for `org`: publish the returned claim's `token` as a TXT record at
    /// its [`txt_name`](DomainClaim::txt_name), then [`verify_domain`](Self::verify_domain).
    pub async fn claim_domain(&self, org: OrgId, domain: &str) -> Result<DomainClaim, Error> {
        domains::claim(self.inner, org, domain).await
    }

    /// Looks the claim's TXT record up; verified when a record is exactly the token.
    pub async fn verify_domain(&self, org: OrgId, domain: &str) -> Result<DomainClaim, Error> {
        domains::verify(self.inner, org, domain).await
    }

    /// The domains `org` has claimed.
    pub async fn domains(&self, org: OrgId) -> Result<Vec<DomainClaim>, Error> {
        Ok(self.inner.orgs.list_domain_claims(org).await?)
    }

    /// Home-realm discovery: the active connection for the address's proven domain.
    /// Unknown and claimed-but-unproven domains answer alike (`None`). Rate-limited per
    /// client IP ([`Limits::sso_lookups_per_ip`](crate::Limits::sso_lookups_per_ip)).
    pub async fn discover(
        &self,
        email: &str,
        ctx: &RequestContext,
    ) -> Result<Option<SsoConnection>, Error> {
        let email = Email::parse(email)?;
        self.limit_lookups(ctx).await?;
        domains::discover(self.inner, &email).await
    }

    async fn limit_lookups(&self, ctx: &RequestContext) -> Result<(), Error> {
        if let Some(ip) = ctx.ip {
            let limit = &self.inner.config.config.limits.sso_lookups_per_ip;
            crate::protect::RateLimiter::new(self.inner)
                .hit("sso_lookup_ip", &crate::protect::ip_subject(ip), limit)
                .await?;
        }
        Ok(())
    }

    /// The social connection of `preset` for the request's organization, else the
    /// installation's (the default organization's).
    pub async fn social(
        &self,
        preset: Preset,
        ctx: &RequestContext,
    ) -> Result<SsoConnection, Error> {
        let orgs = crate::directory::Orgs::new(self.inner);
        let mut candidates = Vec::new();
        if let Some(org) = ctx.org_id {
            candidates.push(org);
        }
        candidates.push(orgs.default_org().await?.id);
        for org in candidates {
            if let Some(found) = self
                .inner
                .orgs
                .list_sso_connections(org)
                .await?
                .into_iter()
                .find(|c| c.preset == Some(preset) && c.status == ConnectionStatus::Active)
            {
                return Ok(found);
            }
        }
        Err(Error::NotFound {
            what: "sso_connection",
        })
    }

    /// The redirect URI registered at the provider for `connection`.
    pub fn redirect_uri(&self, connection: &SsoConnection) -> String {
        self.callback_url(connection.preset)
    }

    /// The callback URL for connections of `preset` (`None`: enterprise connections).
    pub fn callback_url(&self, preset: Option<Preset>) -> String {
        let path = match preset {
            Some(Preset::Google) => "social/google/callback",
            None => "sso/callback",
        };
        let base = self.inner.sso_base.as_str().trim_end_matches('/');
        format!("{base}/{path}")
    }

    /// Starts a sign-in through `target`: the provider's authorization URL, with `state`,
    /// `nonce` and a PKCE S256 challenge whose secrets stay here.
    pub async fn start(
        &self,
        target: SsoTarget,
        options: SsoOptions,
        ctx: &RequestContext,
    ) -> Result<SsoRedirect, Error> {
        self.begin(target, options, None, ctx).await
    }

    /// Starts linking the signed-in user of `session` to their account at `connection`'s
    /// provider: the explicit way in when [`callback`](Self::callback) refused to link
    /// an account by email. The session's sign-in must be recent
    /// ([`MfaPolicy::fresh_sign_in`](crate::MfaPolicy::fresh_sign_in); otherwise
    /// [`Error::ReauthRequired`]), and the user's credentials must not change before the
    /// provider answers. The callback then answers [`SsoDone::Linked`].
    pub async fn start_link(
        &self,
        connection: ConnectionId,
        session: SessionId,
        ctx: &RequestContext,
    ) -> Result<SsoRedirect, Error> {
        let window = self.inner.config.config.mfa.fresh_sign_in;
        let (_, user) = crate::sessions::fresh_session(self.inner, session, window).await?;
        let link = Some((user.id, user.security_stamp));
        let target = SsoTarget::Connection(connection);
        self.begin(target, SsoOptions::default(), link, ctx).await
    }

    async fn begin(
        &self,
        target: SsoTarget,
        options: SsoOptions,
        link: Option<(UserId, u64)>,
        ctx: &RequestContext,
    ) -> Result<SsoRedirect, Error> {
        let inner = self.inner;
        let (connection, hint) = match target {
            SsoTarget::Connection(id) => (
                inner
                    .orgs
                    .get_sso_connection(id)
                    .await?
                    .ok_or(Error::NotFound {
                        what: "sso_connection",
                    })?,
                None,
            ),
            SsoTarget::Email(email) => {
                let email = Email::parse(&email)?;
                self.limit_lookups(ctx).await?;
                let found = domains::discover(inner, &email)
                    .await?
                    .ok_or(Error::NotFound {
                        what: "sso_connection",
                    })?;
                (found, Some(email))
            }
        };
        if !usable(&connection, options.test) {
            return Err(failed("the connection is not active"));
        }
        if options.test {
            let limit = &inner.config.config.limits.sso_tests_per_org;
            crate::protect::RateLimiter::new(inner)
                .hit("sso_test_org", &connection.org_id.to_string(), limit)
                .await?;
        }
        if let Some(request) = &options.code_request {
            // The app and its redirect URI are checked now, not after the provider.
            crate::tokens::auth_code::registered_app(inner, request, Some(connection.org_id))
                .await?;
        }
        if options.app_state.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(Error::invalid("state", "at most 512 bytes"));
        }
        let state = random_token()?;
        let binding = random_token()?;
        let redirect_uri = self.redirect_uri(&connection);
        let mut transaction = Transaction {
            connection: connection.id,
            revision: connection.revision,
            issuer: connection.issuer.clone(),
            nonce: None,
            verifier: None,
            saml_request: None,
            browser: inner
                .hasher
                .hash(SecretPurpose::SsoState, binding.as_bytes()),
            redirect_uri: redirect_uri.clone(),
            ending: Ending {
                code_request: options.code_request,
                app_state: options.app_state,
                test: options.test,
                link,
            },
        };
        let url = match connection.kind {
            ConnectionKind::Saml => {
                let (url, request) = self.saml_request(&connection, &state)?;
                transaction.saml_request = Some(request);
                url
            }
            _ => {
                let nonce = random_token()?;
                let verifier = random_token()?;
                transaction.nonce = Some(nonce_hash(inner, &nonce));
                transaction.verifier = Some(inner.keyring.seal(verifier.as_bytes(), PKCE_AAD)?);
                let mut url = Url::parse(&connection.endpoints.authorization)
                    .map_err(|_| failed("the authorization endpoint is not a URL"))?;
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &connection.client_id)
                    .append_pair("redirect_uri", &redirect_uri)
                    .append_pair("scope", &connection.scopes.join(" "))
                    .append_pair("state", &state)
                    .append_pair("nonce", &nonce)
                    .append_pair("code_challenge", &crate::tokens::pkce_s256(&verifier))
                    .append_pair("code_challenge_method", "S256");
                if let Some(email) = &hint {
                    query.append_pair("login_hint", email.as_str());
                }
                if let Some(hd) = &connection.hosted_domain {
                    // Only a hint to Google's page: the `hd` claim is what is checked.
                    query.append_pair("hd", hd);
                }
                drop(query);
                url.into()
            }
        };
        let value = serde_json::to_vec(&transaction).map_err(|_| Error::Internal("sso state"))?;
        let now = inner.clock.now();
        if !inner
            .challenges
            .insert(&state_key(inner, &state), &value, now + STATE_TTL, now)
            .await?
        {
            return Err(Error::Internal("state collision"));
        }
        tracing::debug!(connection = %connection.id, ip = ?ctx.ip, "SSO sign-in started");
        Ok(SsoRedirect {
            url,
            browser_binding: binding,
            connection_id: connection.id,
        })
    }

    /// Finishes a sign-in: `code` and `state` from the provider's redirect, its `iss` if
    /// it sent one (RFC 9207), and the browser binding from the cookie.
    pub async fn callback(
        &self,
        code: &str,
        state: &str,
        iss: Option<&str>,
        browser_binding: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SsoDone, Error> {
        let inner = self.inner;
        if code.is_empty() || code.len() > 2048 || state.len() > 256 {
            return Err(failed("malformed callback"));
        }
        let (tx, connection) = take_transaction(inner, state, browser_binding).await?;
        if connection.kind != ConnectionKind::Oidc {
            return Err(failed("the connection is not an OpenID Connect connection"));
        }
        // RFC 9207: the response names its issuer; a mix-up is caught before the code
        // goes anywhere.
        match iss {
            Some(iss) if iss != tx.issuer => {
                return Err(failed("the response comes from another issuer"));
            }
            None if connection.endpoints.iss_in_response => {
                return Err(failed("the response does not name its issuer"));
            }
            _ => {}
        }
        let (id_token, access_token) = exchange(inner, &connection, code, &tx).await?;
        let verified = id_token::validate(
            inner,
            &connection,
            &id_token,
            tx.nonce.as_ref().ok_or(Error::Internal("sso state"))?,
            access_token.as_deref(),
        )
        .await?;
        if connection.preset == Some(Preset::Google) {
            if verified.claims.get("email_verified") != Some(&Value::Bool(true)) {
                return Err(failed("Google did not verify the email"));
            }
            if let Some(hd) = &connection.hosted_domain
                && verified.claims.get("hd").and_then(Value::as_str) != Some(hd.as_str())
            {
                return Err(failed(
                    "the account is outside the allowed Workspace domain",
                ));
            }
        }
        let assertion =
            Assertion::from_claims(&connection, verified.subject.clone(), &verified.claims);
        let amr: Vec<&str> = verified
            .claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|values| values.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mfa = connection
            .mfa_amr
            .iter()
            .any(|wanted| amr.contains(&wanted.as_str()));
        finish(inner, &connection, &assertion, mfa, tx.ending, ctx).await
    }
}

/// Spends the sign-in `state` names (whatever happens next, it works once) and checks it
/// was started in this browser, for a connection still as it was.
async fn take_transaction(
    inner: &Inner,
    state: &str,
    browser_binding: Option<&str>,
) -> Result<(Transaction, SsoConnection), Error> {
    let now = inner.clock.now();
    let record = inner
        .challenges
        .take(&state_key(inner, state), now)
        .await?
        .ok_or(failed("unknown, expired or used state"))?;
    let tx: Transaction =
        serde_json::from_slice(&record.value).map_err(|_| Error::Internal("sso state"))?;
    let presented = inner.hasher.hash(
        SecretPurpose::SsoState,
        browser_binding.unwrap_or_default().as_bytes(),
    );
    if browser_binding.is_none() || !presented.ct_eq(&tx.browser) {
        return Err(failed("the sign-in was started in another browser"));
    }
    let connection = inner
        .orgs
        .get_sso_connection(tx.connection)
        .await?
        .ok_or(failed("the connection is gone"))?;
    if !usable(&connection, tx.ending.test)
        || connection.revision != tx.revision
        || connection.issuer != tx.issuer
    {
        return Err(failed("the connection changed or was disabled"));
    }
    Ok((tx, connection))
}

/// Whether sign-ins run through `connection` (tests also through a draft).
fn usable(connection: &SsoConnection, test: bool) -> bool {
    match connection.status {
        ConnectionStatus::Active => true,
        ConnectionStatus::Draft => test,
        ConnectionStatus::Disabled => false,
    }
}

/// How every sign-in through a provider ends, whatever the protocol: a test, a link, or
/// the one linking and provisioning policy and then the organization's MFA policy.
async fn finish(
    inner: &Inner,
    connection: &SsoConnection,
    assertion: &Assertion,
    mfa: bool,
    ending: Ending,
    ctx: &RequestContext,
) -> Result<SsoDone, Error> {
    if ending.test {
        // A test checks the provider's answer end to end; it signs nobody in.
        connections::mark_tested(inner, connection).await?;
        crate::directory::log_admin(inner, connection.org_id, "sso_connection_tested").await;
        return Ok(SsoDone::Tested(SsoTested {
            connection_id: connection.id,
            subject: assertion.subject.clone(),
            email: assertion.email.as_ref().map(|e| e.as_str().to_owned()),
            email_verified: assertion.email_verified,
        }));
    }
    if let Some((user, stamp)) = ending.link {
        federate::link_explicitly(inner, connection, &assertion.subject, user, stamp).await?;
        return Ok(SsoDone::Linked {
            user_id: user,
            connection_id: connection.id,
        });
    }
    let mut org_ctx = ctx.clone();
    org_ctx.org_id = Some(connection.org_id);
    let user = federate::federate(inner, connection, assertion, &org_ctx).await?;
    let sign_in = crate::signin::complete_first_factor(
        inner,
        Proven::by(&user),
        AuthMethod::Federated { mfa },
        ending.code_request.as_ref(),
        &org_ctx,
    )
    .await?;
    Ok(SsoDone::SignedIn {
        sign_in,
        app_state: ending.app_state,
        redirect_uri: ending.code_request.map(|r| r.redirect_uri),
    })
}

/// The associated data the PKCE verifier is sealed under.
const PKCE_AAD: &[u8] = b"portcullis sso pkce verifier";

pub(crate) fn nonce_hash(inner: &Inner, nonce: &str) -> crate::crypto::SecretHash {
    inner
        .hasher
        .hash_parts(SecretPurpose::SsoState, &[b"nonce", nonce.as_bytes()])
}

fn state_key(inner: &Inner, state: &str) -> ChallengeKey {
    let hash = inner.hasher.hash(SecretPurpose::SsoState, state.as_bytes());
    ChallengeKey::hashed(ChallengeKind::SsoState, &hash)
}

/// The code exchange at the connection's own token endpoint (RFC 6749 §4.1.3, with the
/// PKCE verifier): the ID token, and the access token for `at_hash`.
async fn exchange(
    inner: &Inner,
    connection: &SsoConnection,
    code: &str,
    tx: &Transaction,
) -> Result<(String, Option<String>), Error> {
    let secret = match &connection.client_secret {
        Some(sealed) => Some(Zeroizing::new(
            String::from_utf8(
                inner
                    .keyring
                    .open(sealed, connection.id.as_bytes())?
                    .to_vec(),
            )
            .map_err(|_| Error::Crypto)?,
        )),
        None => None,
    };
    let sealed = tx.verifier.as_ref().ok_or(Error::Internal("sso state"))?;
    let verifier = inner.keyring.open(sealed, PKCE_AAD)?;
    let verifier = std::str::from_utf8(&verifier).map_err(|_| Error::Crypto)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", tx.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    if secret.is_none() {
        form.push(("client_id", connection.client_id.as_str()));
    }
    let basic = secret
        .as_ref()
        .map(|s| (connection.client_id.as_str(), s.as_str()));
    let fetched = inner
        .outbound
        .post_form(&connection.endpoints.token, &form, basic)
        .await?;
    if fetched.status != 200 {
        tracing::info!(connection = %connection.id, status = fetched.status, "the provider refused the code");
        return Err(failed("the provider refused the code"));
    }
    let body: Value = fetched.json("the token response is not JSON")?;
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or(failed("the token response has no ID token"))?
        .to_owned();
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((id_token, access_token))
}
