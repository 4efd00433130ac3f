//! Authorization codes with PKCE (security invariant 5, RFC 7636, RFC 9700 §2.1.1).
//!
//! A ceremony can end with a code instead of tokens (a redirect flow). The client must be a
//! registered [`App`](crate::model::App) and the redirect URI one of its registered URIs,
//! exactly (RFC 9700 §4.1.3: no open redirects). The code is single use, lives
//! `ttl.auth_code` (60 s by default), and is bound to the client, the redirect URI and an
//! S256 code challenge; a confidential client also authenticates with its secret.
//!
//! The first presentation of a code spends it by inserting its tombstone (insert if
//! absent: of racing exchanges exactly one does), which names the session it is about to
//! open, before anything is issued; the tombstone stays until an hour after the code
//! would have expired. Any later presentation — with or without the right verifier, from
//! any client — finds it, is refused, and revokes that session (RFC 6749 §4.1.2, RFC
//! 9700 §4.5): a stolen code that was exchanged first loses what it got once the real
//! client tries. A replay that lands while the first exchange is still in flight marks the
//! tombstone, and the first exchange looks at it again after opening its session and
//! revokes it too, so no ordering leaves that session live. A code found later in a
//! history or a log can therefore end the session it opened (within that hour); it can
//! never open one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::{AuthCode, ClientSecret, CodeVerifier, SecretPurpose, b64url, random_token};
use crate::engine::Inner;
use crate::model::{
    App, AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, ClientId, OrgId, SessionId, UserId,
};
use crate::signin::TokenSet;
use crate::{Error, RequestContext, StoreError};

/// What the client asked for when it started a redirect flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCodeRequest {
    /// The app the code is for.
    pub client_id: ClientId,
    /// Where the code is delivered; the exchange must name the same URI exactly.
    pub redirect_uri: String,
    /// `BASE64URL(SHA-256(code_verifier))`.
    pub code_challenge: String,
}

impl AuthCodeRequest {
    /// Checks a PKCE request. Only `S256` is accepted (`plain` offers no protection when
    /// the request can be observed, RFC 9700 §2.1.1), and the challenge must be what S256
    /// produces: 43 base64url characters.
    pub fn new(
        client_id: ClientId,
        redirect_uri: impl Into<String>,
        code_challenge: impl Into<String>,
        code_challenge_method: &str,
    ) -> Result<Self, Error> {
        if code_challenge_method != "S256" {
            return Err(Error::invalid("code_challenge_method", "must be S256"));
        }
        let code_challenge = code_challenge.into();
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if code_challenge.len() != 43 || !code_challenge.bytes().all(base64url) {
            return Err(Error::invalid(
                "code_challenge",
                "must be the 43-character base64url SHA-256 of the verifier",
            ));
        }
        let redirect_uri = redirect_uri.into();
        check_redirect_uri(&redirect_uri)?;
        Ok(AuthCodeRequest {
            client_id,
            redirect_uri,
            code_challenge,
        })
    }
}

/// A redirect URI must be absolute and written the way a URL parser writes it back (so
/// `https:evil.com`, `//evil.com` and `/\evil.com` are refused before any comparison), with
/// no fragment (RFC 6749 §3.1.2), no credentials and no script scheme. Which URIs a client
/// may use is decided by exact match with its registered ones, afterwards.
pub fn check_redirect_uri(uri: &str) -> Result<(), Error> {
    let bad = |reason: &str| Err(Error::invalid("redirect_uri", reason));
    if uri.is_empty() || uri.len() > 2048 {
        return bad("must be 1 to 2048 characters");
    }
    let Ok(url) = url::Url::parse(uri) else {
        return bad("must be an absolute URL");
    };
    if url.as_str() != uri {
        return bad("must be written in canonical form");
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return bad("must not have a fragment or credentials");
    }
    if matches!(
        url.scheme(),
        "javascript" | "data" | "vbscript" | "file" | "blob" | "about"
    ) {
        return bad("must not use a script or local scheme");
    }
    Ok(())
}

/// A client's request to exchange a code for tokens.
#[derive(Debug, Clone)]
pub struct CodeExchange {
    /// The code the client received.
    pub code: AuthCode,
    /// The PKCE verifier.
    pub code_verifier: CodeVerifier,
    /// The client exchanging it.
    pub client_id: ClientId,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
    /// The client's secret, required when the app has one (a confidential client).
    pub client_secret: Option<ClientSecret>,
}

/// `BASE64URL(SHA-256(ASCII(verifier)))`: the S256 code challenge (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
fn check_verifier(verifier: &str) -> Result<(), Error> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(Error::invalid(
            "code_verifier",
            "must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct PendingCode {
    user_id: UserId,
    /// The user's security stamp at issue: the code dies when it moves.
    #[serde(default)]
    stamp: Option<u64>,
    org_id: Option<OrgId>,
    amr: Vec<String>,
    aal: u8,
    request: AuthCodeRequest,
    /// Set for a code of the OpenID provider's `/oauth2/authorize`: redeemable only at its
    /// token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc: Option<crate::provider::CodeGrant>,
}

/// A code's tombstone: written when the code is first presented, before the session is
/// opened, and kept until an hour after the code would have expired.
#[derive(Serialize, Deserialize)]
struct SpentCode {
    /// The session the first exchange opens (chosen before it exists).
    session_id: SessionId,
    /// Whose it is, for the log (absent from tombstones written before it was recorded).
    #[serde(default)]
    user_id: Option<UserId>,
    /// Marked by the first replay (the record's version moves on with it).
    #[serde(default)]
    replayed: bool,
}

/// How long a spent code is remembered after it would have expired, to recognise a
/// replay.
const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The registered app a code request names, if the request may use it: the redirect URI
/// must be one the app registered, character for character, and the app must belong to
/// the organization the request runs in (when one is named).
pub(crate) async fn registered_app(
    inner: &Inner,
    request: &AuthCodeRequest,
    org: Option<OrgId>,
) -> Result<App, Error> {
    let app = inner
        .orgs
        .get_app(&request.client_id)
        .await?
        .ok_or_else(|| Error::invalid("client_id", "is not a registered client"))?;
    if !app.allows_redirect(&request.redirect_uri) {
        return Err(Error::invalid(
            "redirect_uri",
            "is not registered for this client",
        ));
    }
    if org.is_some_and(|org| org != app.org_id) {
        return Err(Error::invalid(
            "client_id",
            "belongs to another organization",
        ));
    }
    Ok(app)
}

pub(crate) async fn issue(
    inner: &Inner,
    user: &crate::model::User,
    org_id: Option<OrgId>,
    amr: Vec<String>,
    aal: u8,
    request: &AuthCodeRequest,
    oidc: Option<crate::provider::CodeGrant>,
) -> Result<AuthCode, Error> {
    let app = registered_app(inner, request, org_id).await?;
    let org_id = Some(app.org_id);
    let now = inner.clock.now();
    let code = random_token()?;
    let hash = inner.hasher.hash(SecretPurpose::AuthCode, code.as_bytes());
    let pending = PendingCode {
        user_id: user.id,
        stamp: Some(user.security_stamp),
        org_id,
        amr,
        aal,
        request: request.clone(),
        oidc,
    };
    let value = serde_json::to_vec(&pending)
        .map_err(|_| Error::Internal("serializing an authorization code"))?;
    let key = ChallengeKey::hashed(ChallengeKind::AuthCode, &hash);
    let expires_at = now + inner.config.config.ttl.auth_code;
    if !inner
        .challenges
        .insert(&key, &value, expires_at, now)
        .await?
    {
        return Err(Error::Conflict { what: "auth_code" });
    }
    Ok(AuthCode::new(code.as_str()))
}

pub(crate) async fn exchange(
    inner: &Inner,
    exchange: &CodeExchange,
    ctx: &RequestContext,
) -> Result<TokenSet, Error> {
    let (tokens, _) = exchange_for(inner, exchange, false, ctx).await?;
    Ok(tokens)
}

/// [`exchange_for`] at the OpenID provider's token endpoint, which authenticated the
/// client (by the method it registered) before.
pub(crate) async fn exchange_provider(
    inner: &Inner,
    exchange: &CodeExchange,
    ctx: &RequestContext,
) -> Result<(TokenSet, Option<crate::provider::CodeGrant>), Error> {
    exchange_for(inner, exchange, true, ctx).await
}

/// Exchanges a code: at the JSON `/token` (`provider` false) only codes of the redirect
/// flows, at the OpenID provider's token endpoint only codes of its `/oauth2/authorize`
/// (with what they granted). A code presented at the wrong one is spent and refused.
async fn exchange_for(
    inner: &Inner,
    exchange: &CodeExchange,
    provider: bool,
    ctx: &RequestContext,
) -> Result<(TokenSet, Option<crate::provider::CodeGrant>), Error> {
    let now = inner.clock.now();
    let hash = inner
        .hasher
        .hash(SecretPurpose::AuthCode, exchange.code.secret().as_bytes());
    let code_key = ChallengeKey::hashed(ChallengeKind::AuthCode, &hash);
    let Some(record) = inner.challenges.get(&code_key, now).await? else {
        revoke_if_spent(inner, &hash, ctx).await?;
        return Err(Error::InvalidToken);
    };
    if let Err(malformed) = check_verifier(exchange.code_verifier.secret()) {
        // A fresh code is not burnt by a request that could never succeed; a spent one
        // presented again is a replay, however it is presented.
        if revoke_if_spent(inner, &hash, ctx).await? {
            return Err(Error::InvalidToken);
        }
        return Err(malformed);
    }
    let pending: PendingCode =
        serde_json::from_slice(&record.value).map_err(|_| Error::InvalidToken)?;
    // The code is spent by writing its tombstone, before anything is issued: of racing
    // exchanges exactly one inserts it, and every other presentation, now or later, finds
    // it and revokes the session named in it. From here the code is spent, whatever the
    // outcome: one attempt per code.
    let session_id = SessionId::generate();
    let spent = SpentCode {
        session_id,
        user_id: Some(pending.user_id),
        replayed: false,
    };
    let spent =
        serde_json::to_vec(&spent).map_err(|_| Error::Internal("serializing a spent code"))?;
    let tombstone = ChallengeKey::hashed(ChallengeKind::SpentAuthCode, &hash);
    let remember_until = record.expires_at + TOMBSTONE_TTL;
    if !inner
        .challenges
        .insert(&tombstone, &spent, remember_until, now)
        .await?
    {
        revoke_if_spent(inner, &hash, ctx).await?;
        return Err(Error::InvalidToken);
    }
    // Only the tombstone's writer gets here; the live code goes (or has just expired).
    if inner.challenges.take(&code_key, now).await?.is_none() {
        return Err(Error::InvalidToken);
    }
    let challenge = pkce_s256(exchange.code_verifier.secret());
    let bound = pending.request.client_id == exchange.client_id
        && pending.request.redirect_uri == exchange.redirect_uri
        && crate::crypto::ct_eq(
            challenge.as_bytes(),
            pending.request.code_challenge.as_bytes(),
        );
    if !bound || pending.oidc.is_some() != provider {
        return Err(Error::InvalidToken);
    }
    if !provider {
        authenticate_client(inner, exchange).await?;
    }
    let user = inner
        .users
        .get_user(pending.user_id)
        .await?
        .filter(|u| !u.blocked && pending.stamp == Some(u.security_stamp))
        .ok_or(Error::InvalidToken)?;
    let settings = crate::directory::Orgs::new(inner)
        .settings(pending.org_id)
        .await?;
    let lifetime = crate::sessions::session_lifetime(inner, &settings);
    let tokens = crate::sessions::open_session(
        inner,
        &user,
        pending.amr,
        pending.aal,
        (pending.org_id, lifetime),
        (session_id, pending.oidc.as_ref().map(|code| &code.grant)),
        ctx,
    )
    .await?;
    // A replay that marked the tombstone before the session existed revoked nothing:
    // look again now that it exists. One that marks it after this read revokes the
    // session itself, so no ordering leaves it live.
    let untouched = inner
        .challenges
        .get(&tombstone, inner.clock.now())
        .await?
        .is_some_and(|record| record.version == 0);
    if !untouched {
        revoke(inner, session_id, Some(user.id), ctx).await?;
        return Err(Error::InvalidToken);
    }
    Ok((tokens, pending.oidc))
}

/// A confidential client (an app with a secret) must present it. Checked after the code
/// is taken, like every other binding: one attempt per code.
async fn authenticate_client(inner: &Inner, exchange: &CodeExchange) -> Result<(), Error> {
    let app = inner
        .orgs
        .get_app(&exchange.client_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let Some(expected) = app.secret_hash else {
        return Ok(());
    };
    let presented = exchange
        .client_secret
        .as_ref()
        .ok_or(Error::InvalidCredentials)?;
    // Under each pepper of the ring: a secret issued before a rotation still works.
    let parts: [&[u8]; 1] = [presented.secret().as_bytes()];
    if !inner
        .hasher
        .matches(SecretPurpose::ClientSecret, &parts, &expected)
    {
        return Err(Error::InvalidCredentials);
    }
    Ok(())
}

/// A presentation of a code that was already presented: if its tombstone is there, marks
/// it replayed (for an exchange still in flight to see) and revokes the session the
/// first exchange opened, or is about to open. Returns whether the code was spent.
async fn revoke_if_spent(
    inner: &Inner,
    hash: &crate::crypto::SecretHash,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    let now = inner.clock.now();
    let tombstone = ChallengeKey::hashed(ChallengeKind::SpentAuthCode, hash);
    let Some(record) = inner.challenges.get(&tombstone, now).await? else {
        return Ok(false);
    };
    let Ok(mut spent) = serde_json::from_slice::<SpentCode>(&record.value) else {
        return Err(StoreError::Corrupt { what: "auth_code" }.into());
    };
    if record.version == 0 {
        // Any update moves the version on, and the first exchange checks for exactly
        // that; if this one loses, another replay has marked it already.
        spent.replayed = true;
        let value =
            serde_json::to_vec(&spent).map_err(|_| Error::Internal("serializing a spent code"))?;
        inner
            .challenges
            .update(&tombstone, 0, &value, record.expires_at, now)
            .await?;
    }
    revoke(inner, spent.session_id, spent.user_id, ctx).await?;
    Ok(true)
}

/// Revokes the session a replayed code opened, and logs it.
async fn revoke(
    inner: &Inner,
    session_id: SessionId,
    user_id: Option<UserId>,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    let revoked = inner.sessions.revoke_session(session_id, now).await?;
    tracing::warn!(%session_id, revoked, "authorization code presented again");
    let mut event =
        AuthEvent::new(AuthEventKind::SessionRevoked, ctx, now).with_reason("auth_code_reused");
    event.user_id = user_id;
    inner.audit_log.append(&event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn redirect_uris_must_be_canonical_absolute_urls() {
        for good in [
            "https://app.example.com/callback",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
            "https://app.example.com/cb?tenant=a",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "//evil.com",
            "https:evil.com",
            "/\\evil.com",
            "/callback",
            "javascript:alert(1)",
            "data:text/html,x",
            "https://app.example.com",
            "https://APP.example.com/cb",
            "https://app.example.com/a/../b",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            " https://app.example.com/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    /// The negative vectors of SECURITY-CHECKLIST V-3 (Keycloak's PKCE tests).
    #[test]
    fn malformed_verifiers_and_challenges_are_refused() {
        assert!(
            check_verifier("ABCDEFGabcdefg1234567ABCDEFGabcdefg1234567").is_err(),
            "42 chars"
        );
        assert!(check_verifier(&"a".repeat(129)).is_err(), "129 chars");
        assert!(
            check_verifier("123456789.123456789-123456789~1234$6789_123").is_err(),
            "$"
        );
        assert!(check_verifier(&"a".repeat(43)).is_ok());
        assert!(check_verifier(&"~".repeat(128)).is_ok());
        let client = ClientId::new("app").unwrap();
        let bad = "1234567890123456789=12345678901234567890123";
        assert!(AuthCodeRequest::new(client.clone(), "https://a/cb", bad, "S256").is_err());
        let good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(AuthCodeRequest::new(client.clone(), "https://a/cb", good, "plain").is_err());
        assert!(AuthCodeRequest::new(client.clone(), "https://a/cb", good, "s256").is_err());
        assert!(AuthCodeRequest::new(client, "https://a/cb", good, "S256").is_ok());
    }
}
