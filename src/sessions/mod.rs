//! A user's sessions: list and revoke.

mod open;

pub(crate) use open::{open_session, session_lifetime};

use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, Session, SessionId, User, UserId};
use crate::{Error, RequestContext};

/// A user's sessions (devices). Revoking a session kills its refresh token at once; its
/// access tokens fail [`verify_live`](crate::tokens::Tokens::verify_live) at once and
/// [`verify`](crate::tokens::Tokens::verify) when they expire.
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    inner: &'a Inner,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Sessions { inner }
    }

    /// The user's active sessions, newest first: device (user agent), ip, created, last
    /// refreshed, methods.
    pub async fn list(&self, user: UserId) -> Result<Vec<Session>, Error> {
        let now = self.inner.clock.now();
        Ok(self.inner.sessions.list_user_sessions(user, now).await?)
    }

    /// The live session `id`, if its sign-in is at most `within` old: the check before
    /// changes to an account's authenticators (enrolling TOTP, new backup codes) that a
    /// stolen access token alone must not make. [`MfaPolicy::fresh_sign_in`] is the usual
    /// window. [`Error::ReauthRequired`] when the sign-in is older;
    /// [`Error::SessionRevoked`] when the session ended or its user is blocked (a lockout
    /// after wrong guesses does not stop a live session).
    ///
    /// [`MfaPolicy::fresh_sign_in`]: crate::MfaPolicy::fresh_sign_in
    pub async fn require_recent(
        &self,
        id: SessionId,
        within: std::time::Duration,
    ) -> Result<Session, Error> {
        let (session, _) = fresh_session(self.inner, id, within).await?;
        Ok(session)
    }

    /// Revokes one of the user's sessions. Another user's session, or an unknown one, is
    /// [`Error::NotFound`].
    pub async fn revoke(
        &self,
        user: UserId,
        session: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let now = self.inner.clock.now();
        let owned = self
            .inner
            .sessions
            .get_session(session, now)
            .await?
            .is_some_and(|s| s.user_id == user && s.is_active(now));
        if !owned {
            return Err(Error::NotFound { what: "session" });
        }
        self.inner.sessions.revoke_session(session, now).await?;
        self.record(user, ctx, "revoked").await
    }

    /// Revokes every session of the user but `keep` (sign out other devices). Returns how
    /// many were revoked.
    pub async fn revoke_others(
        &self,
        user: UserId,
        keep: SessionId,
        ctx: &RequestContext,
    ) -> Result<u64, Error> {
        let now = self.inner.clock.now();
        let mut revoked = 0;
        for session in self.list(user).await? {
            if session.id != keep && self.inner.sessions.revoke_session(session.id, now).await? {
                revoked += 1;
            }
        }
        self.record(user, ctx, "others_revoked").await?;
        Ok(revoked)
    }

    /// Revokes every session of the user at once (password change, block, deletion).
    /// Returns how many were revoked.
    pub async fn revoke_all(&self, user: UserId, ctx: &RequestContext) -> Result<u64, Error> {
        let now = self.inner.clock.now();
        let revoked = self.inner.sessions.revoke_user_sessions(user, now).await?;
        self.record(user, ctx, "all_revoked").await?;
        Ok(revoked)
    }

    async fn record(&self, user: UserId, ctx: &RequestContext, reason: &str) -> Result<(), Error> {
        let event = AuthEvent::new(AuthEventKind::SessionRevoked, ctx, self.inner.clock.now())
            .with_user(user)
            .with_reason(reason);
        Ok(self.inner.audit_log.append(&event).await?)
    }

    /// Signs out of one session: the bearer of `access_token` ends their own session.
    pub async fn sign_out(
        &self,
        access_token: &crate::crypto::AccessToken,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let claims = crate::tokens::Tokens::new(self.inner)
            .verify(access_token)
            .await?;
        let now = self.inner.clock.now();
        self.inner.sessions.revoke_session(claims.sid, now).await?;
        let event = AuthEvent::new(AuthEventKind::SignOut, ctx, now).with_user(claims.sub);
        Ok(self.inner.audit_log.append(&event).await?)
    }
}

/// A live session whose sign-in is at most `window` old, and its user (not blocked): what
/// changes to an account's authenticators need. [`Error::SessionRevoked`] for a session
/// that ended or a blocked user, [`Error::ReauthRequired`] for one signed in too long ago.
pub(crate) async fn fresh_session(
    inner: &Inner,
    id: SessionId,
    window: std::time::Duration,
) -> Result<(crate::model::Session, User), Error> {
    let now = inner.clock.now();
    let session = inner
        .sessions
        .get_session(id, now)
        .await?
        .filter(|s| s.is_active(now))
        .ok_or(Error::SessionRevoked)?;
    if now.duration_since(session.created_at) > window {
        return Err(Error::ReauthRequired);
    }
    let user = inner
        .users
        .get_user(session.user_id)
        .await?
        .ok_or(Error::SessionRevoked)?;
    // A blocked user's sessions are over. A lockout is not: it stops guesses at a sign-in,
    // and a stranger's wrong passwords must not stop the signed-in owner.
    if user.blocked {
        return Err(Error::SessionRevoked);
    }
    Ok((session, user))
}
