//! Recording authentication events and reading the login log.
//!
//! Every event the engine records goes through [`ChainedLog`], which links it to the
//! previous event of its user (a keyed hash of it, so only the engine can make a link)
//! and emits it as a `tracing` event (target `portcullis::audit`, no secrets).
//! [`Audit::verify_chain`] walks a user's log and reports the first event that was
//! removed or edited.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::crypto::{SecretHasher, SecretPurpose};
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, EventId, Page, PageRequest, UserId};
use crate::store::{AuditLog, StoreResult};
use crate::{Error, RequestContext, StoreError, Timestamp};

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
            prev: None,
            prev_hash: None,
            personal_digest: None,
            seal: None,
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

    /// The events that pass `query`, newest first: an organization's log (or the
    /// installation's) for its administrators.
    pub async fn events(
        &self,
        query: &crate::store::EventQuery,
        page: &PageRequest,
    ) -> Result<Page<AuthEvent>, Error> {
        Ok(self.inner.audit_log.list_events(query, page).await?)
    }

    /// Checks a user's log. Every event carries a seal — a keyed hash, which only the
    /// engine can make, of all its fields but the personal data (a digest stands in for
    /// those) — and the seal of the event before it. Walking from the head the store names
    /// back to the first event, every seal must match its event and every link its
    /// predecessor, no two events may follow one event, and no event may be left over.
    /// So an edited, removed, inserted or re-linked event shows, as does one whose address
    /// or user agent changed (until they are forgotten). Removing the newest events
    /// together with the head pointer is the one change a log cannot show by itself: keep
    /// the head's id elsewhere to catch it. Events appended while this runs are taken in.
    pub async fn verify_chain(&self, user: UserId) -> Result<ChainStatus, Error> {
        let log = &self.inner.audit_log;
        for _ in 0..crate::flows::MAX_RETRIES {
            let head = log.user_head(user).await?;
            let mut events: HashMap<EventId, AuthEvent> = HashMap::new();
            let mut page = log.list_user_events(user, &PageRequest::first(500)).await?;
            loop {
                events.extend(page.items.drain(..).map(|e| (e.id, e)));
                let Some(cursor) = page.next_cursor.take() else {
                    break;
                };
                page = log
                    .list_user_events(user, &PageRequest::after(500, cursor))
                    .await?;
            }
            // Events appended meanwhile move the head: read again, over a settled log.
            if log.user_head(user).await?.map(|h| h.id) != head.as_ref().map(|h| h.id) {
                continue;
            }
            let head = head.map(|h| h.id);
            return Ok(self.inner.audit_chain.verify(user, &events, head));
        }
        Err(Error::Conflict { what: "audit_log" })
    }
}

fn broken(at: EventId, reason: &'static str) -> ChainStatus {
    ChainStatus::Broken { at, reason }
}

/// What [`Audit::verify_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainStatus {
    /// Every event is in place.
    Intact {
        /// How many events the chain holds.
        events: usize,
    },
    /// The log was changed.
    Broken {
        /// The event where the chain breaks.
        at: EventId,
        /// What the break looks like.
        reason: &'static str,
    },
}

/// How often an append may lose the race for a user's head.
const CHAIN_RETRIES: usize = 256;

/// Makes and checks the links between a user's events.
#[derive(Clone)]
pub(crate) struct Chain {
    hasher: SecretHasher,
}

impl Chain {
    pub(crate) fn new(hasher: SecretHasher) -> Self {
        Chain { hasher }
    }

    /// An event's seal: the keyed hash of every field but the personal data, which its
    /// digest stands in for (so the data can be forgotten), and but the seal itself.
    pub(crate) fn seal(&self, event: &AuthEvent) -> String {
        let fields = serde_json::json!([
            event.id,
            event.at,
            event.kind,
            event.user_id,
            event.org_id,
            event.method,
            event.reason,
            event.personal_digest,
            event.prev,
            event.prev_hash,
        ]);
        self.hasher
            .hash_parts(SecretPurpose::AuditChain, &[fields.to_string().as_bytes()])
            .to_hex()
    }

    /// Verifies a user's events, `events`, as a chain ending at `head`.
    fn verify(
        &self,
        user: UserId,
        events: &HashMap<EventId, AuthEvent>,
        head: Option<EventId>,
    ) -> ChainStatus {
        let mut successor_of: HashMap<EventId, EventId> = HashMap::new();
        for event in events.values() {
            if event.user_id != Some(user) {
                return broken(event.id, "an event of someone else is in the log");
            }
            if event.seal.as_deref() != Some(self.seal(event).as_str()) {
                return broken(event.id, "an event was edited or forged");
            }
            if !self.personal_data_matches(event) {
                return broken(event.id, "an event's personal data was changed");
            }
            if let Some(prev) = event.prev
                && successor_of.insert(prev, event.id).is_some()
            {
                return broken(prev, "two events follow one event");
            }
        }
        let mut walked = std::collections::HashSet::new();
        let mut next = head;
        while let Some(id) = next {
            let Some(event) = events.get(&id) else {
                return broken(id, "an event was removed");
            };
            if !walked.insert(id) {
                return broken(id, "the chain loops");
            }
            next = match event.prev {
                None => None,
                Some(prev_id) => match events.get(&prev_id) {
                    None => return broken(id, "the event before it was removed"),
                    Some(prev) if event.prev_hash != prev.seal => {
                        return broken(id, "its link does not match the event before it");
                    }
                    Some(_) => Some(prev_id),
                },
            };
        }
        if let Some(stray) = events.keys().find(|id| !walked.contains(*id)) {
            return broken(*stray, "an event is off the chain");
        }
        ChainStatus::Intact {
            events: walked.len(),
        }
    }

    /// The digest of an event's personal data.
    fn personal_digest(&self, event: &AuthEvent) -> String {
        let ip = event.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let agent = event.user_agent.clone().unwrap_or_default();
        self.hasher
            .hash_parts(
                SecretPurpose::AuditChain,
                &[b"personal", ip.as_bytes(), agent.as_bytes()],
            )
            .to_hex()
    }

    /// Whether an event's personal data, while it still has any, is what its digest says.
    fn personal_data_matches(&self, event: &AuthEvent) -> bool {
        if event.ip.is_none() && event.user_agent.is_none() {
            return true;
        }
        event.personal_digest.as_deref() == Some(self.personal_digest(event).as_str())
    }
}

/// The audit log as the engine writes it: each event chained to its user's previous one,
/// and emitted as a `tracing` event.
pub(crate) struct ChainedLog {
    log: Arc<dyn AuditLog>,
    chain: Chain,
    /// Every appended event goes out to subscribers too (`Portcullis::events`).
    events: tokio::sync::broadcast::Sender<AuthEvent>,
}

/// How many events a subscriber may fall behind before it loses the oldest.
pub(crate) const EVENT_BACKLOG: usize = 1024;

impl ChainedLog {
    pub(crate) fn new(
        log: Arc<dyn AuditLog>,
        chain: Chain,
        events: tokio::sync::broadcast::Sender<AuthEvent>,
    ) -> Self {
        ChainedLog { log, chain, events }
    }

    /// Appends at the head of the user's chain. Appends for one user race for its head;
    /// the loser links to the winner.
    async fn append_to_chain(&self, user: UserId, event: &mut AuthEvent) -> StoreResult<()> {
        // Each round some racer wins, so this bounds the appenders one user can have at
        // once, not the work.
        for _ in 0..CHAIN_RETRIES {
            let head = self.log.user_head(user).await?;
            event.prev = head.as_ref().map(|h| h.id);
            event.prev_hash = head.and_then(|h| h.seal);
            event.seal = Some(self.chain.seal(event));
            match self.log.append(event).await {
                Err(StoreError::Conflict { what: "chain" }) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict { what: "chain" })
    }
}

impl fmt::Debug for ChainedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedLog")
            .field("log", &self.log)
            .finish()
    }
}

#[async_trait]
impl AuditLog for ChainedLog {
    async fn append(&self, event: &AuthEvent) -> StoreResult<()> {
        let mut event = event.clone();
        event.personal_digest = Some(self.chain.personal_digest(&event));
        let appended = match event.user_id {
            None => {
                event.seal = Some(self.chain.seal(&event));
                self.log.append(&event).await
            }
            Some(user) => self.append_to_chain(user, &mut event).await,
        };
        if appended.is_ok() {
            tracing::info!(
                target: "portcullis::audit",
                event_id = %event.id,
                kind = %event.kind,
                user_id = ?event.user_id,
                org_id = ?event.org_id,
                method = event.method.as_deref(),
                reason = event.reason.as_deref(),
                "auth event"
            );
            // No subscriber is no error: the log has it.
            let _ = self.events.send(event);
        }
        appended
    }

    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>> {
        self.log.user_head(user).await
    }

    async fn list_user_events(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        self.log.list_user_events(user, page).await
    }

    async fn list_events(
        &self,
        query: &crate::store::EventQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        self.log.list_events(query, page).await
    }

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        self.log.forget_user(user).await
    }
}
