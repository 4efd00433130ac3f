//! `AuditLog` over sled: events by id, and each user's event ids.

use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::model::{AuthEvent, Cursor, EventId, Page, PageRequest, UserId};
use portcullis::store::{AuditLog, StoreResult};
use sled::Transactional;

use crate::codec::{cat, dec, enc};
use crate::{Class, SledStore};

#[async_trait]
impl AuditLog for SledStore {
    async fn append(&self, event: &AuthEvent) -> StoreResult<()> {
        let inner = &self.inner;
        // The log has no lock of its own: sled's serializable transaction settles two
        // appends of one id, and two appends racing for one user's head.
        let t = &inner.t;
        let value = enc(event)?;
        let result = (&t.events, &t.user_events, &t.user_heads).transaction(
            |(events, user_events, heads)| {
                if events.get(event.id.as_bytes())?.is_some() {
                    return sled::transaction::abort("event");
                }
                if let Some(user) = event.user_id {
                    let head = heads.get(user.as_bytes())?;
                    let expected = event.prev.as_ref().map(|id| id.as_bytes().as_slice());
                    if head.as_deref() != expected {
                        return sled::transaction::abort("chain");
                    }
                    heads.insert(user.as_bytes(), event.id.as_bytes())?;
                    user_events.insert(cat(user.as_bytes(), event.id.as_bytes()), &[] as &[u8])?;
                }
                events.insert(event.id.as_bytes(), value.as_slice())?;
                Ok(())
            },
        );
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Abort(what)) => {
                return Err(StoreError::Conflict { what });
            }
            Err(sled::transaction::TransactionError::Storage(err)) => {
                return Err(crate::backend(err));
            }
        }
        inner.durable(Class::Ordinary).await
    }

    async fn list_user_events(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let before = page
            .cursor
            .as_ref()
            .map(|c| {
                c.as_str()
                    .parse::<EventId>()
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let t = &self.inner.t;
        let end = match before {
            Some(id) => Bound::Excluded(cat(user.as_bytes(), id.as_bytes())),
            None => Bound::Excluded(cat(user.as_bytes(), &[0xff; 17])),
        };
        let limit = page.effective_limit();
        let mut items = Vec::new();
        let mut more = false;
        for key in t
            .user_events
            .range((Bound::Included(user.as_bytes().to_vec()), end))
            .keys()
            .rev()
        {
            let key = key.map_err(crate::backend)?;
            if items.len() == limit {
                more = true;
                break;
            }
            let raw = t
                .events
                .get(key.get(16..).unwrap_or_default())
                .map_err(crate::backend)?;
            items.push(dec::<AuthEvent>(
                &raw.ok_or(StoreError::Corrupt {
                    what: "event index",
                })?,
                "event",
            )?);
        }
        let next_cursor = items
            .last()
            .filter(|_| more)
            .map(|e| Cursor::new(e.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>> {
        let t = &self.inner.t;
        let Some(id) = t.user_heads.get(user.as_bytes()).map_err(crate::backend)? else {
            return Ok(None);
        };
        // A head that names no event would refuse every later append: corrupt, not empty.
        let raw = t
            .events
            .get(id)
            .map_err(crate::backend)?
            .ok_or(StoreError::Corrupt { what: "event head" })?;
        dec(&raw, "event").map(Some)
    }

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        let inner = &self.inner;
        let t = &inner.t;
        let mut changed = 0;
        for key in t.user_events.scan_prefix(user.as_bytes()).keys() {
            let key = key.map_err(crate::backend)?;
            let id = key.get(16..).unwrap_or_default();
            // Each event on its own: a compare-and-swap against a concurrent rewrite.
            loop {
                let Some(raw) = t.events.get(id).map_err(crate::backend)? else {
                    break;
                };
                let mut event: AuthEvent = dec(&raw, "event")?;
                if event.ip.is_none() && event.user_agent.is_none() {
                    break;
                }
                event.ip = None;
                event.user_agent = None;
                let swapped = t
                    .events
                    .compare_and_swap(id, Some(raw), Some(enc(&event)?))
                    .map_err(crate::backend)?;
                if swapped.is_ok() {
                    changed += 1;
                    break;
                }
            }
        }
        inner.durable(Class::Critical).await?;
        Ok(changed)
    }
}
