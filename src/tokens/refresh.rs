//! Refresh-token rotation with reuse detection (security invariant 4, RFC 9700 §4.14).

use crate::crypto::{RefreshToken, SecretPurpose, random_token};
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, Session};
use crate::signin::TokenSet;
use crate::{Error, RequestContext};

pub(crate) async fn refresh(
    inner: &Inner,
    token: &RefreshToken,
    ctx: &RequestContext,
) -> Result<TokenSet, Error> {
    Ok(refresh_as(inner, token, None, ctx).await?.0)
}

/// Rotates a refresh token: one of the API's own sessions (`client` `None`), or one the
/// OpenID provider issued to `client`, whose grant comes back with the tokens. A client's
/// token presented by another client is refused and left alone.
pub(crate) async fn refresh_as(
    inner: &Inner,
    token: &RefreshToken,
    client: Option<&crate::model::ClientId>,
    ctx: &RequestContext,
) -> Result<(TokenSet, Option<crate::provider::Grant>), Error> {
    let now = inner.clock.now();
    let purpose = match client {
        Some(_) => SecretPurpose::OAuthRefreshToken,
        None => SecretPurpose::RefreshToken,
    };
    // Under each pepper of the ring: a token issued before a rotation still refreshes
    // (and its successor is hashed under the newest).
    let mut found = None;
    for hash in inner.hasher.hashes(purpose, &[token.secret().as_bytes()]) {
        if let Some(session) = inner.sessions.find_by_refresh_hash(&hash, now).await? {
            found = Some((session, hash));
            break;
        }
    }
    let Some((session, presented)) = found else {
        return Err(Error::InvalidToken);
    };
    if session.revoked_at.is_some() {
        return Err(Error::InvalidToken);
    }
    let grant = match client {
        Some(client) => {
            let grant = crate::provider::load_grant(inner, &session)
                .await?
                .ok_or(Error::InvalidToken)?;
            if grant.client_id != *client {
                return Err(Error::InvalidToken);
            }
            Some(grant)
        }
        None => None,
    };
    if !session.refresh_hash.ct_eq(&presented) {
        // A token of this family that was already rotated: someone holds a copy.
        return Err(reuse_detected(inner, &session, ctx).await);
    }
    if now >= session.last_seen_at + inner.config.config.ttl.session_idle {
        inner.sessions.revoke_session(session.id, now).await?;
        return Err(Error::Expired);
    }
    let user = inner.users.get_user(session.user_id).await?;
    if user.is_none_or(|u| u.blocked) {
        inner.sessions.revoke_session(session.id, now).await?;
        return Err(Error::InvalidToken);
    }
    // Everything that can fail is done before the rotation: once the stored hash moves on,
    // the client must receive the new token, or its retry would look like reuse.
    let access_token = crate::tokens::mint(inner, &session, grant.as_ref()).await?;
    let next = random_token()?;
    let next_hash = inner.hasher.hash(purpose, next.as_bytes());
    let Some(rotated) = inner
        .sessions
        .rotate_refresh(session.id, &presented, &next_hash, now)
        .await?
    else {
        return Err(lost_rotation(inner, &session, ctx).await);
    };
    // The login-log entry is best effort: failing here would strand the new token.
    let event = AuthEvent::new(AuthEventKind::TokenRefreshed, ctx, now).with_user(session.user_id);
    let _ = inner.audit_log.append(&event).await;
    let tokens = TokenSet {
        access_token,
        refresh_token: RefreshToken::new(next.as_str()),
        token_type: "Bearer",
        expires_in: inner.config.config.ttl.access_token,
        user_id: rotated.user_id,
        session_id: rotated.id,
    };
    Ok((tokens, grant))
}

/// The compare-and-swap failed. If the session moved on to another token, a concurrent
/// refresh used this same token: one token, two uses. If it was revoked or ended
/// meanwhile, that is all.
async fn lost_rotation(inner: &Inner, session: &Session, ctx: &RequestContext) -> Error {
    let now = inner.clock.now();
    match inner.sessions.get_session(session.id, now).await {
        Ok(Some(current)) if current.is_active(now) => reuse_detected(inner, session, ctx).await,
        Ok(_) => Error::InvalidToken,
        Err(err) => err.into(),
    }
}

/// Revokes the session and records why. Returns the error the caller answers with (store
/// failures while revoking win: the caller must not believe the session is dead if it
/// is not).
async fn reuse_detected(inner: &Inner, session: &Session, ctx: &RequestContext) -> Error {
    let now = inner.clock.now();
    if let Err(err) = inner.sessions.revoke_session(session.id, now).await {
        return err.into();
    }
    let event = AuthEvent::new(AuthEventKind::RefreshTokenReused, ctx, now)
        .with_user(session.user_id)
        .with_reason("refresh_token_reused");
    if let Err(err) = inner.audit_log.append(&event).await {
        return err.into();
    }
    Error::InvalidToken
}
