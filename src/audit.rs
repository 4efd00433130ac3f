//! Recording authentication events and reading the login log.
//!
//! Every event the engine records goes through [`ChainedLog`], which links it to the
//! previous event of its user (a keyed hash of it, so only the engine can make a link)
//! and emits it as a `tracing` event (target `latchkey::audit`, no secrets).
//! [`Audit::verify_chain`] walks a user's log and reports the first event that was
//! removed or edited.

use std::collections::{HashMap, HashSet};
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

    /// Checks a user's log: from the head the store names back to the first event, each
    /// event must link to the one before it by a keyed hash only the engine can make, with
    /// nothing left off the chain (events appended while it runs join it at the head).
    /// A removed event leaves a link to nothing or events off the chain; an edited one no
    /// longer matches its successor's link, or its address and user agent no longer match
    /// their digest. The newest event's other fields are covered once a later event links
    /// to it; removing the newest events together with the head pointer is the one edit
    /// a log cannot show by itself (keep the head's id elsewhere to catch it).
    pub async fn verify_chain(&self, user: UserId) -> Result<ChainStatus, Error> {
        let log = &self.inner.audit_log;
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
        let chain = &self.inner.audit_chain;
        let mut on_chain = HashSet::new();
        if let Some(head) = head
            && let Err(status) = chain.walk(&events, head.id, &mut on_chain, None)
        {
            return Ok(status);
        }
        // Events appended after the head was read must lead back to it.
        let mut strays: Vec<EventId> = events
            .keys()
            .filter(|id| !on_chain.contains(*id))
            .copied()
            .collect();
        strays.sort();
        for stray in strays.into_iter().rev() {
            if on_chain.contains(&stray) {
                continue;
            }
            let joined = on_chain.clone();
            if let Err(status) = chain.walk(&events, stray, &mut on_chain, Some(&joined)) {
                return Ok(status);
            }
        }
        Ok(ChainStatus::Intact {
            events: on_chain.len(),
        })
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

/// Makes and checks the links between a user's events.
#[derive(Clone)]
pub(crate) struct Chain {
    hasher: SecretHasher,
}

impl Chain {
    pub(crate) fn new(hasher: SecretHasher) -> Self {
        Chain { hasher }
    }

    /// The keyed hash of an event, as its successor records it: every field but the
    /// personal data, which its digest stands in for.
    pub(crate) fn link(&self, event: &AuthEvent) -> String {
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

    /// Follows the links back from `from`, checking each, into `on_chain`. With `join`,
    /// the walk must reach one of those events; without, it must reach a first event.
    fn walk(
        &self,
        events: &HashMap<EventId, AuthEvent>,
        from: EventId,
        on_chain: &mut HashSet<EventId>,
        join: Option<&HashSet<EventId>>,
    ) -> Result<(), ChainStatus> {
        let mut id = from;
        loop {
            let Some(event) = events.get(&id) else {
                return Err(broken(id, "an event was removed"));
            };
            if !self.personal_data_matches(event) {
                return Err(broken(id, "an event was edited"));
            }
            if !on_chain.insert(id) {
                return Err(broken(id, "the chain loops"));
            }
            let Some(prev_id) = event.prev else {
                return match join {
                    None => Ok(()),
                    Some(_) => Err(broken(id, "an event is off the chain")),
                };
            };
            let Some(prev) = events.get(&prev_id) else {
                return Err(broken(id, "the event before it was removed"));
            };
            if event.prev_hash.as_deref() != Some(self.link(prev).as_str()) {
                return Err(broken(prev_id, "an event was edited"));
            }
            if join.is_some_and(|joined| joined.contains(&prev_id)) {
                return Ok(());
            }
            id = prev_id;
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
}

impl ChainedLog {
    pub(crate) fn new(log: Arc<dyn AuditLog>, chain: Chain) -> Self {
        ChainedLog { log, chain }
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
        tracing::info!(
            target: "latchkey::audit",
            event_id = %event.id,
            kind = %event.kind,
            user_id = ?event.user_id,
            org_id = ?event.org_id,
            method = event.method.as_deref(),
            reason = event.reason.as_deref(),
            ip = ?event.ip,
            "auth event"
        );
        let Some(user) = event.user_id else {
            return self.log.append(&event).await;
        };
        // Appends for one user race for its head; the loser links to the winner.
        for _ in 0..crate::flows::MAX_RETRIES {
            let head = self.log.user_head(user).await?;
            event.prev = head.as_ref().map(|h| h.id);
            event.prev_hash = head.as_ref().map(|h| self.chain.link(h));
            match self.log.append(&event).await {
                Err(StoreError::Conflict { what: "chain" }) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict { what: "chain" })
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

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        self.log.forget_user(user).await
    }
}
