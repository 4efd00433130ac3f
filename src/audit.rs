//! Recording authentication events and reading the login log.

use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, EventId, Page, PageRequest, UserId};
use crate::{Error, RequestContext, Timestamp};

impl AuthEvent {
    /// An event of `kind` at `at`, with the client facts of `ctx`.
    pub fn new(kind: AuthEventKind, ctx: &RequestContext, at: Timestamp) -> Self {
        AuthEvent {
            id: EventId::generate(),
            at,
            kind,
            user_id: None,
            org_id: ctx.org_id,
            method: None,
            reason: None,
            ip: ctx.ip,
            user_agent: ctx.user_agent.clone(),
        }
    }

    /// Names the user the event concerns.
    pub fn with_user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    /// Names the method involved (an `amr` value: `pwd`, `otp`, `hwk`…).
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Says why it failed: an error code, never a secret or the input.
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }
}

/// The login log: what flows record and what users and admins read.
#[derive(Clone, Copy)]
pub struct Audit<'a> {
    inner: &'a Inner,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Audit { inner }
    }

    /// Starts an event of `kind` at the engine's current time.
    pub fn event(&self, kind: AuthEventKind, ctx: &RequestContext) -> AuthEvent {
        AuthEvent::new(kind, ctx, self.inner.clock.now())
    }

    /// Appends an event to the log.
    pub async fn record(&self, event: AuthEvent) -> Result<(), Error> {
        self.inner.audit_log.append(&event).await?;
        Ok(())
    }

    /// A user's events, newest first.
    pub async fn login_log(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Page<AuthEvent>, Error> {
        Ok(self.inner.audit_log.list_user_events(user, page).await?)
    }
}
