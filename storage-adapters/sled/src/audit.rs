//! `AuditLog` over sled: events by id, and each user's event ids.

use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::model::{AuthEvent, Cursor, EventId, Page, PageRequest, UserId};
use portcullis::store::{AuditLog, EventQuery, StoreResult};
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
        let result = (&t.events, &t.user_events, &t.user_heads, &t.org_events).transaction(
            |(events, user_events, heads, org_events)| {
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
                if let Some(org) = event.org_id {
                    org_events.insert(cat(org.as_bytes(), event.id.as_bytes()), &[] as &[u8])?;
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
        let t = &self.inner.t;
        let index = Index::Prefixed(&t.user_events, user.as_bytes());
        scan(t, index, &EventQuery::all().user(Some(user)), page)
    }

    async fn list_events(
        &self,
        query: &EventQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let t = &self.inner.t;
        // The narrowest index there is: the user's events, the organization's, or all.
        let index = match (&query.user, &query.org) {
            (Some(user), _) => Index::Prefixed(&t.user_events, user.as_bytes()),
            (None, Some(org)) => Index::Prefixed(&t.org_events, org.as_bytes()),
            (None, None) => Index::All,
        };
        scan(t, index, query, page)
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

/// Where a listing walks: an index keyed by a 16-byte id then the event id, or the events
/// themselves.
enum Index<'a> {
    Prefixed(&'a sled::Tree, &'a [u8; 16]),
    All,
}

/// Walks `index` newest first from the page's cursor, keeping the events `query` passes.
fn scan(
    t: &crate::tx::Trees,
    index: Index<'_>,
    query: &EventQuery,
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
    let ids: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = match index {
        Index::Prefixed(tree, prefix) => {
            let end = match before {
                Some(id) => Bound::Excluded(cat(prefix, id.as_bytes())),
                None => Bound::Excluded(cat(prefix, &[0xff; 17])),
            };
            Box::new(
                tree.range((Bound::Included(prefix.to_vec()), end))
                    .keys()
                    .rev(),
            )
        }
        Index::All => {
            let end = match before {
                Some(id) => Bound::Excluded(id.as_bytes().to_vec()),
                None => Bound::Unbounded,
            };
            Box::new(t.events.range((Bound::Unbounded, end)).keys().rev())
        }
    };
    let limit = page.effective_limit();
    let mut items = Vec::new();
    let mut more = false;
    for key in ids {
        let key = key.map_err(crate::backend)?;
        let id = if key.len() > 16 {
            key.get(16..).unwrap_or_default()
        } else {
            &key[..]
        };
        let raw = t.events.get(id).map_err(crate::backend)?;
        let event = dec::<AuthEvent>(
            &raw.ok_or(StoreError::Corrupt {
                what: "event index",
            })?,
            "event",
        )?;
        if !query.matches(&event) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(event);
    }
    let next_cursor = items
        .last()
        .filter(|_| more)
        .map(|e| Cursor::new(e.id.to_string()));
    Ok(Page { items, next_cursor })
}

/// The marker that the organization index holds every event: data directories written
/// before it existed are indexed once, at open.
const META_ORG_EVENTS: &[u8] = b"org_events_indexed";

/// Indexes every event by organization, once per data directory (those written before
/// the index existed have events but no entries).
pub(crate) fn index_org_events(t: &crate::tx::Trees) -> StoreResult<()> {
    if t.meta
        .get(META_ORG_EVENTS)
        .map_err(crate::backend)?
        .is_some()
    {
        return Ok(());
    }
    for entry in t.events.iter() {
        let (id, raw) = entry.map_err(crate::backend)?;
        let event: AuthEvent = dec(&raw, "event")?;
        if let Some(org) = event.org_id {
            t.org_events
                .insert(cat(org.as_bytes(), &id), &[] as &[u8])
                .map_err(crate::backend)?;
        }
    }
    t.meta
        .insert(META_ORG_EVENTS, &[] as &[u8])
        .map_err(crate::backend)?;
    Ok(())
}
