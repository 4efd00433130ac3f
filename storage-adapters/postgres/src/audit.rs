//! `AuditLog`: the login log, each user's events a chain whose head (`auth_event_heads`)
//! moves by compare-and-swap.

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::model::{AuthEvent, AuthEventKind, EventId, OrgId, Page, PageRequest, UserId};
use portcullis::store::{AuditLog, EventQuery, StoreResult};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::rows::{Run, after, col, fetch_limit, page, parse, ts};
use crate::{Db, PgStore};

macro_rules! event_columns {
    () => {
        "e.id, e.at, e.kind, e.user_id, e.org_id, e.method, e.reason, e.ip, \
     e.user_agent, e.prev, e.prev_hash, e.personal_digest, e.seal"
    };
}

fn event(row: &PgRow) -> StoreResult<AuthEvent> {
    const W: &str = "event";
    Ok(AuthEvent {
        id: EventId::from_uuid(col(row, "id", W)?),
        at: ts(row, "at", W)?,
        kind: parse::<AuthEventKind>(&col::<String>(row, "kind", W)?, W)?,
        user_id: col::<Option<Uuid>>(row, "user_id", W)?.map(UserId::from_uuid),
        org_id: col::<Option<Uuid>>(row, "org_id", W)?.map(OrgId::from_uuid),
        method: col(row, "method", W)?,
        reason: col(row, "reason", W)?,
        ip: col::<Option<String>>(row, "ip", W)?
            .map(|ip| parse(&ip, W))
            .transpose()?,
        user_agent: col(row, "user_agent", W)?,
        prev: col::<Option<Uuid>>(row, "prev", W)?.map(EventId::from_uuid),
        prev_hash: col(row, "prev_hash", W)?,
        personal_digest: col(row, "personal_digest", W)?,
        seal: col(row, "seal", W)?,
    })
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(&self, e: &AuthEvent) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(
            "INSERT INTO auth_events (id, at, kind, user_id, org_id, method, reason, ip, \
               user_agent, prev, prev_hash, personal_digest, seal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.id.as_uuid())
        .bind(e.at.unix_millis())
        .bind(e.kind.as_str())
        .bind(e.user_id.map(|u| *u.as_uuid()))
        .bind(e.org_id.map(|o| *o.as_uuid()))
        .bind(e.method.as_deref())
        .bind(e.reason.as_deref())
        .bind(e.ip.map(|ip| ip.to_string()))
        .bind(e.user_agent.as_deref())
        .bind(e.prev.map(|p| *p.as_uuid()))
        .bind(e.prev_hash.as_deref())
        .bind(e.personal_digest.as_deref())
        .bind(e.seal.as_deref())
        .execute(&mut *tx)
        .await
        .db()?;
        if let Some(user) = e.user_id {
            // The head moves only from the one this event names: of racing appends on one
            // head, the second waits for the first's row lock and then matches nothing.
            let moved = match e.prev {
                None => sqlx::query(
                    "INSERT INTO auth_event_heads (user_id, event_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(user.as_uuid())
                .bind(e.id.as_uuid()),
                Some(prev) => sqlx::query(
                    "UPDATE auth_event_heads SET event_id = $2 \
                     WHERE user_id = $1 AND event_id = $3",
                )
                .bind(user.as_uuid())
                .bind(e.id.as_uuid())
                .bind(prev.as_uuid()),
            }
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if moved != 1 {
                return Err(StoreError::Conflict { what: "chain" });
            }
        }
        tx.commit().await.db()
    }

    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>> {
        sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM auth_event_heads h JOIN auth_events e ON e.id = h.event_id \
             WHERE h.user_id = $1"
        ))
        .bind(user.as_uuid())
        .one(&self.pool, event)
        .await
    }

    async fn list_user_events(
        &self,
        user: UserId,
        req: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let before: Option<EventId> = after(req)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM auth_events e \
             WHERE e.user_id = $1 AND ($2::uuid IS NULL OR e.id < $2) \
             ORDER BY e.id DESC LIMIT $3"
        ))
        .bind(user.as_uuid())
        .bind(before.map(|id| *id.as_uuid()))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let events = rows.iter().map(event).collect::<StoreResult<Vec<_>>>()?;
        Ok(page(events, req, |e| e.id))
    }

    async fn list_events(
        &self,
        query: &EventQuery,
        req: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let before: Option<EventId> = after(req)?;
        let kinds: Option<Vec<&str>> =
            (!query.kinds.is_empty()).then(|| query.kinds.iter().map(|k| k.as_str()).collect());
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM auth_events e \
             WHERE ($1::uuid IS NULL OR e.org_id = $1) \
               AND ($2::text[] IS NULL OR e.kind = ANY($2)) \
               AND ($3::uuid IS NULL OR e.user_id = $3) \
               AND ($4::text IS NULL OR e.ip = $4) \
               AND ($5::bigint IS NULL OR e.at >= $5) \
               AND ($6::bigint IS NULL OR e.at < $6) \
               AND ($7::uuid IS NULL OR e.id < $7) \
             ORDER BY e.id DESC LIMIT $8"
        ))
        .bind(query.org.map(|o| *o.as_uuid()))
        .bind(kinds)
        .bind(query.user.map(|u| *u.as_uuid()))
        .bind(query.ip.map(|ip| ip.to_string()))
        .bind(query.since.map(|t| t.unix_millis()))
        .bind(query.until.map(|t| t.unix_millis()))
        .bind(before.map(|id| *id.as_uuid()))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let events = rows.iter().map(event).collect::<StoreResult<Vec<_>>>()?;
        Ok(page(events, req, |e| e.id))
    }

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        sqlx::query(
            "UPDATE auth_events SET ip = NULL, user_agent = NULL \
             WHERE user_id = $1 AND (ip IS NOT NULL OR user_agent IS NOT NULL)",
        )
        .bind(user.as_uuid())
        .affected(&self.pool)
        .await
    }
}
