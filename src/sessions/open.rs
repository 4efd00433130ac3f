//! Opening a session: where every sign-in ends once its factors are done. The session's
//! lifetime follows its organization; the account's stamp is checked again after the
//! session is written, so a sign-in racing a credential change opens nothing.

use std::time::Duration;

use crate::crypto::{RefreshToken, SecretPurpose, random_token};
use crate::directory::OrgSettings;
use crate::engine::Inner;
use crate::model::{OrgId, Session, SessionId, User};
use crate::signin::TokenSet;
use crate::{Error, RequestContext};

/// How long a new session under an organization's `settings` lasts: the engine's lifetime,
/// or the organization's when shorter.
pub(crate) fn session_lifetime(inner: &Inner, settings: &OrgSettings) -> Duration {
    let engine = inner.config.config.ttl.session;
    settings
        .session_lifetime_secs
        .map_or(engine, |secs| engine.min(Duration::from_secs(secs)))
}

/// Opens a session in an organization (`None`: none) for a lifetime, with a fresh refresh
/// token, and signs its first access token; with a grant, the session is a client's of the
/// OpenID provider (its refresh tokens are the provider's, its access tokens name the
/// client and scope).
pub(crate) async fn open_session(
    inner: &Inner,
    user: &User,
    amr: Vec<String>,
    aal: u8,
    (org_id, lifetime): (Option<OrgId>, Duration),
    (id, grant): (SessionId, Option<&crate::provider::Grant>),
    ctx: &RequestContext,
) -> Result<TokenSet, Error> {
    let now = inner.clock.now();
    let refresh = random_token()?;
    // A client's refresh tokens are hashed for its purpose alone: the JSON `/token/refresh`
    // never finds them, so only the token endpoint (which authenticates the client) can
    // rotate them.
    let purpose = match grant {
        Some(_) => SecretPurpose::OAuthRefreshToken,
        None => SecretPurpose::RefreshToken,
    };
    let session = Session {
        id,
        user_id: user.id,
        org_id,
        refresh_hash: inner.hasher.hash(purpose, refresh.as_bytes()),
        generation: 0,
        amr,
        aal,
        ip: ctx.ip,
        user_agent: ctx.user_agent.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
    };
    // Signed first: a failure leaves no session behind.
    let access_token = crate::tokens::mint(inner, &session, grant).await?;
    if let Some(grant) = grant {
        crate::provider::save_grant(inner, session.id, grant, session.expires_at).await?;
    }
    inner.sessions.create_session(&session).await?;
    // A block, deletion or credential change that landed while this sign-in ran revoked
    // the sessions that existed then; this one must not outlive it. Every such change
    // writes the user (moving the stamp) before it revokes, so either this read sees the
    // change, or the change's revocation sees this session.
    let current = inner.users.get_user(user.id).await?;
    if current.is_none_or(|u| u.blocked || u.security_stamp != user.security_stamp) {
        inner.sessions.revoke_session(session.id, now).await?;
        return Err(Error::InvalidCredentials);
    }
    Ok(TokenSet {
        access_token,
        refresh_token: RefreshToken::new(refresh.as_str()),
        token_type: "Bearer",
        expires_in: inner.config.config.ttl.access_token,
        user_id: user.id,
        session_id: session.id,
    })
}
