//! `SessionStore` over sled trees: sessions, an index of every refresh hash a family has
//! had (hash → session, and session ‖ hash for removal), each user's sessions, and the
//! signing keys. A rotation writes three small entries, however long the family.

use async_trait::async_trait;
use portcullis::crypto::SecretHash;
use portcullis::model::{Session, SessionId, StoredSigningKey, UserId};
use portcullis::store::{KeyStore, SessionStore, StoreResult};
use portcullis::{StoreError, Timestamp};

use crate::codec::{cat, dec, dec_record, enc, enc_record};
use crate::tx::{Trees, WriteSet, keys_with_prefix};
use crate::{Class, Inner, SledStore};

fn stored(t: &Trees, w: &WriteSet, id: &[u8]) -> StoreResult<Option<Session>> {
    w.get(&t.sessions, id)?
        .map(|raw| dec_record(&raw))
        .transpose()
}

fn add_hash(t: &Trees, w: &mut WriteSet, id: SessionId, hash: &SecretHash) {
    w.put(
        &t.refresh_hashes,
        hash.as_bytes().to_vec(),
        id.as_bytes().to_vec(),
    );
    w.put(
        &t.session_hashes,
        cat(id.as_bytes(), hash.as_bytes()),
        Vec::new(),
    );
}

fn remove(t: &Trees, w: &mut WriteSet, session: &Session) -> StoreResult<()> {
    for key in keys_with_prefix(&t.session_hashes, session.id.as_bytes())? {
        w.del(
            &t.refresh_hashes,
            key.get(16..).unwrap_or_default().to_vec(),
        );
        w.del(&t.session_hashes, key.to_vec());
    }
    w.del(
        &t.user_sessions,
        cat(session.user_id.as_bytes(), session.id.as_bytes()),
    );
    w.del(&t.sessions, session.id.as_bytes().to_vec());
    Ok(())
}

impl SledStore {
    fn session_at(&self, id: &[u8], now: Timestamp) -> StoreResult<Option<Session>> {
        let Some(raw) = self.inner.t.sessions.get(id).map_err(crate::backend)? else {
            return Ok(None);
        };
        let session: Session = dec_record(&raw)?;
        Ok(Some(session).filter(|s| now < s.expires_at))
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
                w.put(
                    &t.sessions,
                    session.id.as_bytes().to_vec(),
                    enc_record(session),
                );
                add_hash(t, w, session.id, &session.refresh_hash);
                let owner = cat(session.user_id.as_bytes(), session.id.as_bytes());
                w.put(&t.user_sessions, owner, Vec::new());
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
        let index = &self.inner.t.refresh_hashes;
        let Some(id) = index.get(hash.as_bytes()).map_err(crate::backend)? else {
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
                let Some(mut session) = stored(t, w, id.as_bytes())? else {
                    return Ok(None);
                };
                if !session.is_active(now) || !session.refresh_hash.ct_eq(expected) {
                    return Ok(None);
                }
                if w.get(&t.refresh_hashes, new.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict {
                        what: "refresh_token",
                    });
                }
                session.refresh_hash = *new;
                session.generation = session.generation.saturating_add(1);
                session.last_seen_at = now;
                add_hash(t, w, id, new);
                w.put(&t.sessions, id.as_bytes().to_vec(), enc_record(&session));
                Ok(Some(session))
            })
            .await
    }

    async fn revoke_session(&self, id: SessionId, now: Timestamp) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.sessions_lock, Class::Critical, |t, w| {
                let Some(mut session) = stored(t, w, id.as_bytes())? else {
                    return Ok(false);
                };
                if !session.is_active(now) {
                    return Ok(false);
                }
                session.revoked_at = Some(now);
                w.put(&t.sessions, id.as_bytes().to_vec(), enc_record(&session));
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
                    let Some(mut session) = stored(t, w, id)? else {
                        continue;
                    };
                    if session.is_active(now) {
                        session.revoked_at = Some(now);
                        w.put(&t.sessions, id.to_vec(), enc_record(&session));
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
                    if let Some(session) = stored(t, w, key.get(16..).unwrap_or_default())? {
                        remove(t, w, &session)?;
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
}

/// The signing keys, kept beside the sessions.
#[async_trait]
impl KeyStore for SledStore {
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

/// Removes sessions that ended at or before `now`, with their hash history. The scan
/// takes no lock; each batch of removals takes it briefly and checks again, so rotations
/// and revocations are never held up behind a full scan.
pub(crate) fn purge(inner: &Inner, now: Timestamp) -> StoreResult<u64> {
    let t = &inner.t;
    let mut ended = Vec::new();
    for entry in t.sessions.iter() {
        let (id, raw) = entry.map_err(crate::backend)?;
        // Unreadable sessions stay in place, failing closed on every read.
        if dec_record::<Session>(&raw).is_ok_and(|s| s.expires_at <= now) {
            ended.push(id);
        }
    }
    let mut removed = 0;
    for batch in ended.chunks(128) {
        let _serialized = crate::lock(&inner.sessions_lock);
        let mut w = WriteSet::default();
        for id in batch {
            if let Some(session) = stored(t, &w, id)?.filter(|s| s.expires_at <= now) {
                remove(t, &mut w, &session)?;
                removed += 1;
            }
        }
        w.commit()?;
    }
    Ok(removed)
}
