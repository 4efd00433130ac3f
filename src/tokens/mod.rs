//! Tokens: signed access tokens (JWT, RFC 9068) and their keys, rotating refresh tokens,
//! and authorization codes with PKCE.
//!
//! ## `verify` or `verify_live`
//!
//! [`Tokens::verify`] is stateless: signature, issuer, audience, expiry. It reads no
//! session (a repeated token is answered from a cache in microseconds; the store is read
//! only to load signing keys, at start and about once a minute), so it suits every request
//! — but a token stays valid until it expires even if its session was revoked a moment
//! ago. Access tokens live 15 minutes by default, which bounds that window.
//!
//! Signing keys rotate and retire through the store: the instance that does it sees the
//! change at once, other instances within a minute ([`KEY_REFRESH`]), or at once when
//! they meet a token signed by a key they have not seen.
//! [`Tokens::verify_live`] also reads the session from the store and refuses a revoked,
//! idle or ended one with [`Error::SessionRevoked`]: one key lookup more, for the requests
//! where a revocation must bite at once (payments, account changes, admin actions).
//!
//! The same split holds for roles. An access token carries the roles and permissions its
//! subject held in its organization when it was signed. `verify` trusts them until the
//! token expires; `verify_live` also refuses a token signed before the subject's roles
//! there were set, a role of the organization was edited or deleted, or a permission was
//! deleted ([`Error::InvalidToken`]: the client refreshes and gets the roles held now).
//! Use `verify` where a permission granted a few minutes ago is acceptable (reads), and
//! `verify_live` wherever a signed-out session, a revoked role or a blocked user must be
//! refused at once; [`Rbac::check`](crate::Rbac::check) reads the roles from the store
//! for a single decision.

pub(crate) mod auth_code;
mod cache;
mod jwt;
mod keys;
pub(crate) mod refresh;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

pub use auth_code::{AuthCodeRequest, CodeExchange, check_redirect_uri, pkce_s256};
pub(crate) use cache::VerifiedCache;
pub use jwt::{Claims, MAX_TOKEN_BYTES};
pub use keys::{Jwk, Jwks};
pub(crate) use keys::{KeySet, SigningKey};

use crate::crypto::{AccessToken, RefreshToken, random_bytes};
use crate::engine::Inner;
use crate::model::{ChallengeKey, ChallengeKind, OrgId, Session, SessionId, UserId};
use crate::signin::TokenSet;
use crate::{Error, RequestContext, Timestamp};

/// The engine's signing keys: fixed from PEM, or kept in the store (loaded on first use,
/// created if there are none, read again every [`KEY_REFRESH`] and when a token names a kid
/// we do not know — another instance may have rotated or retired a key).
pub(crate) struct KeyState {
    fixed: Option<Arc<KeySet>>,
    /// The store's keys, when they were read, and the ticket of the load that read them.
    loaded: RwLock<Option<Loaded>>,
    /// Hands out load tickets: a load that started earlier never replaces a later one.
    tickets: AtomicU64,
    /// One caller refreshes stale keys; the others keep using them meanwhile.
    refreshing: AtomicBool,
    last_reload: Mutex<Option<Timestamp>>,
}

struct Loaded {
    keys: Arc<KeySet>,
    at: Timestamp,
    ticket: u64,
}

/// Signing keys read from the store are read again after this long, so a rotation or retirement
/// on another instance reaches this one within it.
pub const KEY_REFRESH: Duration = Duration::from_secs(60);

/// Unknown kids trigger at most one reload per this interval, so forged kids cannot turn
/// verification into a store flood.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl KeyState {
    pub(crate) fn new(fixed: Option<KeySet>) -> Self {
        KeyState {
            fixed: fixed.map(Arc::new),
            loaded: RwLock::new(None),
            tickets: AtomicU64::new(1),
            refreshing: AtomicBool::new(false),
            last_reload: Mutex::new(None),
        }
    }

    /// The keys held now, and whether they are due to be read again.
    fn cached(&self, now: Timestamp) -> Option<(Arc<KeySet>, bool)> {
        if let Some(fixed) = &self.fixed {
            return Some((fixed.clone(), false));
        }
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        loaded
            .as_ref()
            .map(|l| (l.keys.clone(), now >= l.at + KEY_REFRESH))
    }

    /// Installs keys read by load `ticket`, unless a later load already installed its own.
    /// Returns the keys in force afterwards and whether a key known before is gone.
    fn set(&self, keys: Arc<KeySet>, now: Timestamp, ticket: u64) -> (Arc<KeySet>, bool) {
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(newer) = loaded.as_ref().filter(|l| l.ticket > ticket) {
            return (newer.keys.clone(), false);
        }
        let retired = loaded
            .as_ref()
            .is_some_and(|l| l.keys.kids().any(|kid| keys.find(kid).is_none()));
        *loaded = Some(Loaded {
            keys: keys.clone(),
            at: now,
            ticket,
        });
        (keys, retired)
    }

    /// Claims the right to reload now, if the last reload is long enough ago.
    fn may_reload(&self, now: Timestamp) -> bool {
        let mut last = self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now < at + RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// The keys in force, loading (or creating) them from the store on first use and reading
/// them again when they are stale (one caller reads; the others use the stale keys
/// meanwhile).
async fn keyset(inner: &Inner) -> Result<Arc<KeySet>, Error> {
    let state = &inner.keys;
    match state.cached(inner.clock.now()) {
        Some((keys, false)) => Ok(keys),
        Some((keys, true)) => {
            if state.refreshing.swap(true, Ordering::AcqRel) {
                return Ok(keys);
            }
            // Reset even if this future is dropped mid-load.
            let _refreshing = ResetOnDrop(&state.refreshing);
            load_keys(inner).await
        }
        None => load_keys(inner).await,
    }
}

struct ResetOnDrop<'a>(&'a AtomicBool);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn load_keys(inner: &Inner) -> Result<Arc<KeySet>, Error> {
    let ticket = inner.keys.tickets.fetch_add(1, Ordering::AcqRel);
    let mut stored = inner.key_store.list_signing_keys().await?;
    if stored.is_empty() {
        // Two instances starting at once may both add a key: both are kept, the newer
        // signs, and each instance learns of the other's at its next read.
        let (key, pkcs8) =
            SigningKey::generate(inner.config.config.tokens.algorithm, inner.clock.now())?;
        match inner
            .key_store
            .add_signing_key(&key.to_stored(&pkcs8, &inner.keyring)?)
            .await
        {
            Ok(()) | Err(crate::StoreError::Conflict { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        stored = inner.key_store.list_signing_keys().await?;
    }
    let keys = stored
        .iter()
        .map(|s| SigningKey::from_stored(s, &inner.keyring))
        .collect::<Result<Vec<_>, _>>()?;
    let (keys, retired) = inner
        .keys
        .set(Arc::new(KeySet::new(keys)?), inner.clock.now(), ticket);
    if retired {
        // Tokens a retired key signed must not be answered from the cache.
        inner.verified.clear();
    }
    Ok(keys)
}

/// Signs an access token for `session`, with the roles and permissions its user holds in
/// its organization now (and, for a client of the OpenID provider, its `client_id` and
/// granted `scope`).
pub(crate) async fn mint(
    inner: &Inner,
    session: &Session,
    grant: Option<&crate::provider::Grant>,
) -> Result<AccessToken, Error> {
    let keys = keyset(inner).await?;
    let key = keys
        .current()
        .ok_or(Error::Config("no signing key".into()))?;
    // The revision is read before the roles: a change landing between the two reads
    // leaves a token that verify_live already refuses, never a stale one that passes.
    let (rev, roles, perms) = match session.org_id {
        Some(org) => {
            let rev = roles_revision(inner, session.user_id, org).await?;
            let (roles, perms) = roles_and_permissions(inner, session.user_id, org).await?;
            (rev, roles, perms)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    let config = &inner.config.config;
    let now = inner.clock.now().unix_secs();
    let jti = crate::crypto::b64url(random_bytes::<16>()?.as_ref());
    let claims = Claims {
        iss: config.issuer.clone(),
        sub: session.user_id,
        aud: config.audience.clone(),
        exp: now
            .saturating_add(i64::try_from(config.ttl.access_token.as_secs()).unwrap_or(i64::MAX)),
        iat: now,
        nbf: now,
        jti,
        sid: session.id,
        org: session.org_id,
        roles,
        perms,
        perms_omitted: false,
        amr: session.amr.clone(),
        acr: format!("aal{}", session.aal),
        rev,
        client_id: grant.map(|g| g.client_id.clone()),
        scope: grant.map(|g| g.scope.join(" ")),
    };
    let mut claims = claims;
    let size = serde_json::to_vec(&claims).map_or(usize::MAX, |json| json.len());
    if size > MAX_CLAIMS_BYTES {
        claims.roles.clear();
        claims.perms.clear();
        claims.perms_omitted = true;
    }
    Ok(AccessToken::new(jwt::sign(key, &claims)?))
}

/// Signs an ID token (`typ` `JWT`) with the current signing key: `claims` is given that
/// key's algorithm name (for `at_hash`). Returns the token and the algorithm.
pub(crate) async fn sign_id_token(
    inner: &Inner,
    claims: impl FnOnce(&str) -> serde_json::Value,
) -> Result<(String, &'static str), Error> {
    let keys = keyset(inner).await?;
    let key = keys
        .current()
        .ok_or(Error::Config("no signing key".into()))?;
    let alg = key.algorithm.as_str();
    Ok((jwt::sign_typed(key, "JWT", &claims(alg))?, alg))
}

/// The claims of an ID token we signed, whatever its expiry (an `id_token_hint`): its
/// signature under a key in force and its issuer are checked, nothing else.
pub(crate) async fn verify_id_token_hint(
    inner: &Inner,
    token: &str,
) -> Result<serde_json::Value, Error> {
    let keys = keyset(inner).await?;
    let claims = jwt::verify_payload(jwt::parse_typed(token, &keys, "JWT")?)?;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(inner.config.config.issuer.as_str()) {
        return Err(Error::InvalidToken);
    }
    Ok(claims)
}

/// The name of the algorithm the current key signs with (`EdDSA`, `ES256`).
pub(crate) async fn signing_algorithm(inner: &Inner) -> Result<&'static str, Error> {
    let keys = keyset(inner).await?;
    Ok(keys
        .current()
        .map_or(inner.config.config.tokens.algorithm.as_str(), |k| {
            k.algorithm.as_str()
        }))
}

/// Where the revision of an organization's roles (no `user`), or of one member's, is kept.
fn revision_key(org: OrgId, user: Option<UserId>) -> ChallengeKey {
    let id = match user {
        Some(user) => format!("member:{org}:{user}"),
        None => format!("org:{org}"),
    };
    ChallengeKey::new(ChallengeKind::RolesRevision, id)
}

/// The current revision of `user`'s roles in `org`: `None` while neither the
/// organization's roles nor the membership changed within an access token's lifetime.
pub(crate) async fn roles_revision(
    inner: &Inner,
    user: UserId,
    org: OrgId,
) -> Result<Option<String>, Error> {
    let now = inner.clock.now();
    let mut parts = Vec::with_capacity(2);
    for key in [revision_key(org, None), revision_key(org, Some(user))] {
        let record = inner.challenges.get(&key, now).await?;
        parts.push(record.map(|r| String::from_utf8_lossy(&r.value).into_owned()));
    }
    Ok(match parts.as_slice() {
        [None, None] => None,
        [org, member] => Some(format!(
            "{}.{}",
            org.as_deref().unwrap_or("-"),
            member.as_deref().unwrap_or("-")
        )),
        _ => None,
    })
}

/// Makes every access token signed for `org` (or, with `user`, for that member in it)
/// stale: a new random revision, kept as long as such a token can live. Random rather
/// than counted, so a revision that expired and came back can never match an old token.
pub(crate) async fn bump_roles_revision(
    inner: &Inner,
    org: OrgId,
    user: Option<UserId>,
) -> Result<(), Error> {
    let value = crate::crypto::b64url(random_bytes::<12>()?.as_ref());
    // Past an access token's lifetime and verification's leeway, no token signed before
    // the change is left to refuse.
    let ttl = inner.config.config.ttl.access_token + Duration::from_secs(120);
    let key = revision_key(org, user);
    crate::flows::put_record(inner, &key, value.as_bytes(), ttl, |_| false).await
}

/// The largest claims (as JSON) an access token carries: past it the token carries no
/// roles and no permissions, and says so ([`Claims::perms_omitted`]). 5 KiB of claims make
/// a token of under 7.5 KiB, inside the 8 KiB that verification accepts: room for about
/// 150 permissions of 30 characters.
pub const MAX_CLAIMS_BYTES: usize = 5 * 1024;

pub(crate) async fn roles_and_permissions(
    inner: &Inner,
    user: UserId,
    org: OrgId,
) -> Result<(Vec<String>, Vec<crate::model::Permission>), Error> {
    let Some(membership) = inner.orgs.get_membership(user, org).await? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut roles = Vec::new();
    let mut perms = Vec::new();
    let defined = inner.orgs.list_permissions(org).await?;
    for role in inner.orgs.list_roles(org).await? {
        if membership.role_ids.contains(&role.id) {
            perms.extend(role.grants(&defined));
            roles.push(role.name);
        }
    }
    perms.sort();
    perms.dedup();
    Ok((roles, perms))
}

/// What `GET /auth/status` answers: the bearer's session.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthStatus {
    /// The signed-in user.
    pub user_id: UserId,
    /// Their session.
    pub session_id: SessionId,
    /// The organization it runs in.
    pub org_id: Option<OrgId>,
    /// Methods used to sign in.
    pub amr: Vec<String>,
    /// Assurance level (`aal1`, `aal2`).
    pub acr: String,
    /// When the access token expires.
    pub expires_at: Timestamp,
    /// When the session itself ends (absolute).
    pub session_expires_at: Timestamp,
}

/// Access tokens, refresh tokens, authorization codes and signing keys.
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    inner: &'a Inner,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Tokens { inner }
    }

    /// The public keys, for `/.well-known/jwks.json`. Newest (the signing key) first.
    pub async fn jwks(&self) -> Result<Jwks, Error> {
        Ok(keyset(self.inner).await?.jwks())
    }

    /// Verifies an access token statelessly: signature under one of our keys, `typ`,
    /// issuer, audience, `exp` and `nbf` (with the configured leeway). See the module docs
    /// for when to use [`verify_live`](Self::verify_live) instead.
    ///
    /// Failures: [`Error::Expired`] for an expired token, [`Error::InvalidToken`] for
    /// anything else.
    pub async fn verify(&self, token: &AccessToken) -> Result<Claims, Error> {
        let token = token.secret();
        let inner = self.inner;
        let now = inner.clock.now();
        let leeway = i64::try_from(inner.config.config.tokens.leeway.as_secs()).unwrap_or(0);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidToken);
        }
        let cache_key = VerifiedCache::key(token);
        if let Some(hit) = inner.verified.get(&cache_key) {
            // A hit still needs its key in force (a retired key's tokens are dead) and its
            // time window.
            let key_in_force = keyset(inner).await?.find(&hit.kid).is_some();
            if key_in_force {
                if let Err(expired) = jwt::check_time(&hit.claims, now, leeway) {
                    inner.verified.remove(&cache_key);
                    return Err(expired);
                }
                return Ok(hit.claims.clone());
            }
            inner.verified.remove(&cache_key);
        }
        let verified = self.verify_signature(token).await?;
        jwt::check_time(&verified.claims, now, leeway)?;
        let claims = verified.claims.clone();
        inner.verified.insert(cache_key, Arc::new(verified));
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<jwt::Verified, Error> {
        let inner = self.inner;
        let config = &inner.config.config;
        let expect = jwt::Expect {
            issuer: &config.issuer,
            audience: &config.audience,
        };
        let keys = keyset(inner).await?;
        match jwt::parse(token, &keys)? {
            jwt::Parsed::UnknownKid if inner.keys.fixed.is_none() => {
                if !inner.keys.may_reload(inner.clock.now()) {
                    return Err(Error::InvalidToken);
                }
                let keys = load_keys(inner).await?;
                jwt::verify(jwt::parse(token, &keys)?, &expect)
            }
            parsed => jwt::verify(parsed, &expect),
        }
    }

    /// Verifies an access token and checks its session in the store: a revoked, idle or
    /// ended session (signed out, blocked, credentials changed) fails with
    /// [`Error::SessionRevoked`]; a token of a session in an organization whose roles
    /// changed since it was signed (the subject's roles set, a role edited or deleted, a
    /// permission deleted) fails with [`Error::InvalidToken`]: refreshing signs one with
    /// the roles held now.
    pub async fn verify_live(&self, token: &AccessToken) -> Result<Claims, Error> {
        self.verify_live_session(token)
            .await
            .map(|(claims, _)| claims)
    }

    /// [`verify_live`](Self::verify_live), with the session it read (when it ends, when it
    /// was last refreshed): what [`status`](Self::status) tells, without a second look.
    pub async fn verify_live_session(
        &self,
        token: &AccessToken,
    ) -> Result<(Claims, Session), Error> {
        let claims = self.verify(token).await?;
        let session = self.live_session(&claims).await?;
        if let Some(org) = claims.org
            && roles_revision(self.inner, claims.sub, org).await? != claims.rev
        {
            return Err(Error::InvalidToken);
        }
        Ok((claims, session))
    }

    async fn live_session(&self, claims: &Claims) -> Result<Session, Error> {
        let session = self.live_session_by_id(claims.sid).await?;
        if session.user_id != claims.sub {
            return Err(Error::SessionRevoked);
        }
        Ok(session)
    }

    /// A session that is unrevoked, before its end and not idle.
    async fn live_session_by_id(&self, id: SessionId) -> Result<Session, Error> {
        let now = self.inner.clock.now();
        let session = self
            .inner
            .sessions
            .get_session(id, now)
            .await?
            .ok_or(Error::SessionRevoked)?;
        let idle = now >= session.last_seen_at + self.inner.config.config.ttl.session_idle;
        if !session.is_active(now) || idle {
            return Err(Error::SessionRevoked);
        }
        Ok(session)
    }

    /// Signs a fresh access token for a live session, with the roles and permissions its
    /// user holds now (after a role change, say). The refresh token is not touched.
    pub async fn issue_for_session(&self, session: SessionId) -> Result<AccessToken, Error> {
        let session = self.live_session_by_id(session).await?;
        let blocked = self.inner.users.get_user(session.user_id).await?;
        if blocked.is_none_or(|u| u.blocked) {
            return Err(Error::SessionRevoked);
        }
        let grant = crate::provider::load_grant(self.inner, &session).await?;
        mint(self.inner, &session, grant.as_ref()).await
    }

    /// The bearer's session (SSOJet "GET Auth Status"): checked live.
    pub async fn status(&self, token: &AccessToken) -> Result<AuthStatus, Error> {
        let claims = self.verify(token).await?;
        let session = self.live_session(&claims).await?;
        Ok(AuthStatus {
            user_id: claims.sub,
            session_id: claims.sid,
            org_id: claims.org,
            amr: claims.amr.clone(),
            acr: claims.acr.clone(),
            expires_at: claims.expires_at(),
            session_expires_at: session.expires_at,
        })
    }

    /// Rotates a refresh token: a new refresh token and access token for the same session.
    ///
    /// A refresh token works once. Presenting one that was already rotated — by a thief or
    /// by a client replaying an old response — revokes the whole session (RFC 9700 §4.14)
    /// and is recorded in the login log; so does losing a race of concurrent refreshes with
    /// the same token. A session idle for longer than `ttl.session_idle`, or past its
    /// absolute end, cannot be refreshed.
    pub async fn refresh(
        &self,
        token: &RefreshToken,
        ctx: &RequestContext,
    ) -> Result<TokenSet, Error> {
        refresh::refresh(self.inner, token, ctx).await
    }

    /// Exchanges an authorization code for tokens (PKCE S256 required). A code works once:
    /// any second presentation, with or without the verifier, fails and revokes the
    /// session the first one opened, also while that exchange is still running (then
    /// neither gets tokens).
    pub async fn exchange_code(
        &self,
        exchange: &CodeExchange,
        ctx: &RequestContext,
    ) -> Result<TokenSet, Error> {
        auth_code::exchange(self.inner, exchange, ctx).await
    }

    /// Adds a new signing key, which signs from now on (on other instances within
    /// [`KEY_REFRESH`]); older keys keep verifying until retired. Returns the new key's kid.
    /// Keys from PEM configuration are rotated in configuration instead.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let inner = self.inner;
        if inner.keys.fixed.is_some() {
            return Err(Error::Config(
                "signing keys come from PEM configuration".into(),
            ));
        }
        let mut now = inner.clock.now();
        // Read the store first: another instance may have rotated since our last read.
        if let Some(newest) = load_keys(inner).await?.current() {
            // The newest key signs: make sure the new one sorts after it.
            now = now.max(newest.created_at + Duration::from_millis(1));
        }
        let (key, pkcs8) = SigningKey::generate(inner.config.config.tokens.algorithm, now)?;
        inner
            .key_store
            .add_signing_key(&key.to_stored(&pkcs8, &inner.keyring)?)
            .await?;
        load_keys(inner).await?;
        Ok(key.kid)
    }

    /// Reads the signing keys from the store now, as every instance does on its own within
    /// [`KEY_REFRESH`]: for an adapter that hears of a rotation or retirement on another
    /// instance as it happens (`portcullis_postgres::PgStore::follow_key_changes`). Tokens
    /// of a key no longer stored stop verifying at once; a new newest key signs from now on.
    pub async fn reload_signing_keys(&self) -> Result<(), Error> {
        if self.inner.keys.fixed.is_some() {
            return Ok(());
        }
        load_keys(self.inner).await.map(|_| ())
    }

    /// Retires a key: tokens it signed stop verifying at once on this instance (cached or
    /// not), on others within [`KEY_REFRESH`]. The current signing key cannot be retired
    /// (rotate first, and let other instances pick the new key up before retiring the old).
    pub async fn retire_key(&self, kid: &str) -> Result<(), Error> {
        let inner = self.inner;
        if inner.keys.fixed.is_some() {
            return Err(Error::Config(
                "signing keys come from PEM configuration".into(),
            ));
        }
        let keys = load_keys(inner).await?;
        if keys.current().is_some_and(|k| k.kid == kid) {
            return Err(Error::Conflict {
                what: "current signing key",
            });
        }
        if !inner.key_store.delete_signing_key(kid).await? {
            return Err(Error::NotFound {
                what: "signing key",
            });
        }
        load_keys(inner).await?;
        Ok(())
    }
}
