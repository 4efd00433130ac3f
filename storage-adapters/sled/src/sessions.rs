//! `SessionStore` over sled trees: sessions with the hashes of their whole refresh family,
//! an index of every such hash, each user's sessions, and the signing keys.

use async_trait::async_trait;
use latchkey::crypto::SecretHash;
use latchkey::model::{Session, SessionId, StoredSigningKey, UserId};
use latchkey::store::{SessionStore, StoreResult};
use latchkey::{StoreError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::codec::{cat, dec, enc};
use crate::tx::{Trees, WriteSet, keys_with_prefix};
use crate::{Class, Inner, SledStore};

#[derive(Serialize, Deserialize)]
struct Stored {
    session: Session,
    /// The family's hashes, oldest first; the last is current.
    hashes: Vec<SecretHash>,
}

fn stored(t: &Trees, w: &WriteSet, id: SessionId) -> StoreResult<Option<Stored>> {
    w.get(&t.sessions, id.as_bytes())?
        .map(|raw| dec(&raw, "session"))
        .transpose()
}

fn remove(t: &Trees, w: &mut WriteSet, s: &Stored) {
    for hash in &s.hashes {
        w.del(&t.refresh_hashes, hash.as_bytes().to_vec());
    }
    w.del(
        &t.user_sessions,
        cat(s.session.user_id.as_bytes(), s.session.id.as_bytes()),
    );
    w.del(&t.sessions, s.session.id.as_bytes().to_vec());
}

impl SledStore {
    fn session_at(&self, id: &[u8], now: Timestamp) -> StoreResult<Option<Session>> {
        let Some(raw) = self.inner.t.sessions.get(id).map_err(crate::backend)? else {
            return Ok(None);
        };
        let stored: Stored = dec(&raw, "session")?;
        Ok(Some(stored.session).filter(|s| now < s.expires_at))
    }
}

#[async_trait]
impl SessionStore for SledStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                if w.get(&t.sessions, session.id.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict { what: "session" });
                }
                if w.get(&t.refresh_hashes, session.refresh_hash.as_bytes())?
                    .is_some()
                {
                    return Err(StoreError::Conflict {
                        what: "refresh_token",
                    });
                }
                let record = Stored {
                    session: session.clone(),
                    hashes: vec![session.refresh_hash],
                };
                w.put(&t.sessions, session.id.as_bytes().to_vec(), enc(&record)?);
                w.put(
                    &t.refresh_hashes,
                    session.refresh_hash.as_bytes().to_vec(),
                    session.id.as_bytes().to_vec(),
                );
                w.put(
                    &t.user_sessions,
                    cat(session.user_id.as_bytes(), session.id.as_bytes()),
                    Vec::new(),
                );
                Ok(())
            })
            .await
    }

    async fn get_session(&self, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        self.session_at(id.as_bytes(), now)
    }

    async fn find_by_refresh_hash(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let Some(id) = self
            .inner
            .t
            .refresh_hashes
            .get(hash.as_bytes())
            .map_err(crate::backend)?
        else {
            return Ok(None);
        };
        self.session_at(&id, now)
    }

    async fn rotate_refresh(
        &self,
        id: SessionId,
        expected: &SecretHash,
        new: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let Some(mut record) = stored(t, w, id)? else {
                    return Ok(None);
                };
                if !record.session.is_active(now) || !record.session.refresh_hash.ct_eq(expected) {
                    return Ok(None);
                }
                if w.get(&t.refresh_hashes, new.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict {
                        what: "refresh_token",
                    });
                }
                record.hashes.push(*new);
                let session = &mut record.session;
                session.refresh_hash = *new;
                session.generation = session.generation.saturating_add(1);
                session.last_seen_at = now;
                w.put(
                    &t.refresh_hashes,
                    new.as_bytes().to_vec(),
                    id.as_bytes().to_vec(),
                );
                w.put(&t.sessions, id.as_bytes().to_vec(), enc(&record)?);
                Ok(Some(record.session))
            })
            .await
    }

    async fn revoke_session(&self, id: SessionId, now: Timestamp) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let Some(mut record) = stored(t, w, id)? else {
                    return Ok(false);
                };
                if !record.session.is_active(now) {
                    return Ok(false);
                }
                record.session.revoked_at = Some(now);
                w.put(&t.sessions, id.as_bytes().to_vec(), enc(&record)?);
                Ok(true)
            })
            .await
    }

    async fn revoke_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let mut revoked = 0;
                for key in keys_with_prefix(&t.user_sessions, user.as_bytes())? {
                    let id = key.get(16..).unwrap_or_default();
                    let Some(raw) = w.get(&t.sessions, id)? else {
                        continue;
                    };
                    let mut record: Stored = dec(&raw, "session")?;
                    if record.session.is_active(now) {
                        record.session.revoked_at = Some(now);
                        w.put(&t.sessions, id.to_vec(), enc(&record)?);
                        revoked += 1;
                    }
                }
                Ok(revoked)
            })
            .await
    }

    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let mut sessions = Vec::new();
        for key in keys_with_prefix(&self.inner.t.user_sessions, user.as_bytes())? {
            if let Some(session) = self.session_at(key.get(16..).unwrap_or_default(), now)?
                && session.is_active(now)
            {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(sessions)
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let mut removed = 0;
                for key in keys_with_prefix(&t.user_sessions, user.as_bytes())? {
                    if let Some(record) = stored_by_key(t, w, key.get(16..).unwrap_or_default())? {
                        remove(t, w, &record);
                        removed += 1;
                    }
                }
                Ok(removed)
            })
            .await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        purge(&self.inner, now)
    }

    async fn add_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                if w.get(&t.signing_keys, key.kid.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict { what: "kid" });
                }
                w.put(&t.signing_keys, key.kid.as_bytes(), enc(key)?);
                Ok(())
            })
            .await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut keys: Vec<StoredSigningKey> = self
            .inner
            .t
            .signing_keys
            .iter()
            .values()
            .map(|raw| dec(&raw.map_err(crate::backend)?, "signing key"))
            .collect::<StoreResult<_>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let existed = w.get(&t.signing_keys, kid.as_bytes())?.is_some();
                w.del(&t.signing_keys, kid.as_bytes());
                Ok(existed)
            })
            .await
    }
}

fn stored_by_key(t: &Trees, w: &WriteSet, id: &[u8]) -> StoreResult<Option<Stored>> {
    w.get(&t.sessions, id)?
        .map(|raw| dec(&raw, "session"))
        .transpose()
}

/// Removes sessions that ended at or before `now`, with their hash history.
pub(crate) fn purge(inner: &Inner, now: Timestamp) -> StoreResult<u64> {
    let _serialized = crate::lock(&inner.sessions_lock);
    let t = &inner.t;
    let mut w = WriteSet::default();
    let mut removed = 0;
    for raw in t.sessions.iter().values() {
        let record: Stored = match dec(&raw.map_err(crate::backend)?, "session") {
            Ok(record) => record,
            Err(_) => continue, // unreadable: left in place, failing closed on every read
        };
        if record.session.expires_at <= now {
            remove(t, &mut w, &record);
            removed += 1;
        }
    }
    w.commit()?;
    Ok(removed)
}
