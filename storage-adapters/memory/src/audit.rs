//! `AuditLog`: events by id, and each user's events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::model::{AuthEvent, EventId, OrgId, Page, PageRequest, UserId};
use portcullis::store::{AuditLog, EventQuery, StoreResult};

use crate::{MemoryStore, paginate, parse_cursor, read, write};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    events: BTreeMap<EventId, AuthEvent>,
    by_user: HashMap<UserId, BTreeSet<EventId>>,
    by_org: HashMap<OrgId, BTreeSet<EventId>>,
    /// Each user's last appended event.
    heads: HashMap<UserId, EventId>,
}

impl Tables {
    /// Every event, for [`MemoryStore::dump`].
    pub(crate) fn dump_into(&self, out: &mut Vec<u8>) {
        self.events.values().for_each(|v| crate::dump_json(out, v));
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append(&self, event: &AuthEvent) -> StoreResult<()> {
        let mut t = write(&self.audit);
        if t.events.contains_key(&event.id) {
            return Err(StoreError::Conflict { what: "event" });
        }
        if let Some(user) = event.user_id {
            if t.heads.get(&user) != event.prev.as_ref() {
                return Err(StoreError::Conflict { what: "chain" });
            }
            t.heads.insert(user, event.id);
            t.by_user.entry(user).or_default().insert(event.id);
        }
        if let Some(org) = event.org_id {
            t.by_org.entry(org).or_default().insert(event.id);
        }
        t.events.insert(event.id, event.clone());
        Ok(())
    }

    async fn list_user_events(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let before: Option<EventId> = parse_cursor(page)?;
        let t = read(&self.audit);
        let Some(ids) = t.by_user.get(&user) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let end = before.map_or(Bound::Unbounded, Bound::Excluded);
        let newest_first = ids
            .range((Bound::Unbounded, end))
            .rev()
            .filter_map(|id| t.events.get(id))
            .cloned();
        Ok(paginate(newest_first, page, |e| e.id))
    }

    async fn list_events(
        &self,
        query: &EventQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let before: Option<EventId> = parse_cursor(page)?;
        let t = read(&self.audit);
        let end = before.map_or(Bound::Unbounded, Bound::Excluded);
        let range = (Bound::Unbounded, end);
        // The narrowest index there is: the user's events, the organization's, or all.
        let ids: Box<dyn Iterator<Item = &EventId>> = match (query.user, query.org) {
            (Some(user), _) => Box::new(
                t.by_user
                    .get(&user)
                    .into_iter()
                    .flat_map(move |ids| ids.range(range).rev()),
            ),
            (None, Some(org)) => Box::new(
                t.by_org
                    .get(&org)
                    .into_iter()
                    .flat_map(move |ids| ids.range(range).rev()),
            ),
            (None, None) => Box::new(t.events.range(range).rev().map(|(id, _)| id)),
        };
        let newest_first = ids
            .filter_map(|id| t.events.get(id))
            .filter(|e| query.matches(e))
            .cloned();
        Ok(paginate(newest_first, page, |e| e.id))
    }

    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>> {
        let t = read(&self.audit);
        Ok(t.heads.get(&user).and_then(|id| t.events.get(id)).cloned())
    }

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        let mut t = write(&self.audit);
        let ids: Vec<EventId> = t
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let mut changed = 0;
        for id in ids {
            if let Some(event) = t.events.get_mut(&id)
                && (event.ip.is_some() || event.user_agent.is_some())
            {
                event.ip = None;
                event.user_agent = None;
                changed += 1;
            }
        }
        Ok(changed)
    }
}
