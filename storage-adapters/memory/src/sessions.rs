//! `SessionStore`: sessions, the index of every refresh hash a family has had, and each
//! user's sessions.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use portcullis::crypto::SecretHash;
use portcullis::model::{Session, SessionId, StoredSigningKey, UserId};
use portcullis::store::{KeyStore, SessionStore, StoreResult};
use portcullis::{StoreError, Timestamp};

use crate::{MemoryStore, read, write};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    sessions: HashMap<SessionId, Stored>,
    /// Every refresh hash of every stored session, current or rotated away.
    by_hash: HashMap<SecretHash, SessionId>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    signing_keys: Vec<StoredSigningKey>,
}

#[derive(Debug)]
struct Stored {
    session: Session,
    /// The family's hashes, oldest first; the last is current.
    hashes: Vec<SecretHash>,
}

impl Tables {
    /// Every session with its refresh-hash history, and the signing keys, for
    /// [`MemoryStore::dump`].
    pub(crate) fn dump_into(&self, out: &mut Vec<u8>) {
        for stored in self.sessions.values() {
            crate::dump_json(out, &stored.session);
            crate::dump_json(out, &stored.hashes);
        }
        for key in &self.signing_keys {
            crate::dump_json(out, key);
        }
    }
}

impl Tables {
    fn live(&self, id: &SessionId, now: Timestamp) -> Option<&Session> {
        self.sessions
            .get(id)
            .map(|s| &s.session)
            .filter(|s| now < s.expires_at)
    }

    fn remove(&mut self, id: &SessionId) -> Option<Session> {
        let stored = self.sessions.remove(id)?;
        for hash in &stored.hashes {
            self.by_hash.remove(hash);
        }
        if let Some(ids) = self.by_user.get_mut(&stored.session.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&stored.session.user_id);
            }
        }
        Some(stored.session)
    }

    fn user_sessions(&self, user: UserId) -> Vec<SessionId> {
        self.by_user
            .get(&user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let mut t = write(&self.sessions);
        if t.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict { what: "session" });
        }
        if t.by_hash.contains_key(&session.refresh_hash) {
            return Err(StoreError::Conflict {
                what: "refresh_token",
            });
        }
        t.by_hash.insert(session.refresh_hash, session.id);
        t.by_user
            .entry(session.user_id)
            .or_default()
            .insert(session.id);
        let stored = Stored {
            session: session.clone(),
            hashes: vec![session.refresh_hash],
        };
        t.sessions.insert(session.id, stored);
        Ok(())
    }

    async fn get_session(&self, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        Ok(read(&self.sessions).live(&id, now).cloned())
    }

    async fn find_by_refresh_hash(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let t = read(&self.sessions);
        Ok(t.by_hash.get(hash).and_then(|id| t.live(id, now)).cloned())
    }

    async fn rotate_refresh(
        &self,
        id: SessionId,
        expected: &SecretHash,
        new: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let mut t = write(&self.sessions);
        let current = t.sessions.get(&id).map(|s| &s.session);
        let Some(current) = current.filter(|s| s.is_active(now)) else {
            return Ok(None);
        };
        if !current.refresh_hash.ct_eq(expected) {
            return Ok(None);
        }
        if t.by_hash.contains_key(new) {
            return Err(StoreError::Conflict {
                what: "refresh_token",
            });
        }
        t.by_hash.insert(*new, id);
        let Some(stored) = t.sessions.get_mut(&id) else {
            return Ok(None);
        };
        stored.hashes.push(*new);
        let session = &mut stored.session;
        session.refresh_hash = *new;
        session.generation = session.generation.saturating_add(1);
        session.last_seen_at = now;
        Ok(Some(session.clone()))
    }

    async fn revoke_session(&self, id: SessionId, now: Timestamp) -> StoreResult<bool> {
        let mut t = write(&self.sessions);
        match t.sessions.get_mut(&id).map(|s| &mut s.session) {
            Some(session) if session.is_active(now) => {
                session.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        let mut t = write(&self.sessions);
        let mut revoked = 0;
        for id in t.user_sessions(user) {
            if let Some(stored) = t.sessions.get_mut(&id)
                && stored.session.is_active(now)
            {
                stored.session.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let t = read(&self.sessions);
        let mut sessions: Vec<Session> = t
            .user_sessions(user)
            .iter()
            .filter_map(|id| t.sessions.get(id))
            .map(|s| &s.session)
            .filter(|s| s.is_active(now))
            .cloned()
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(sessions)
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        let mut t = write(&self.sessions);
        let ids = t.user_sessions(user);
        let removed = ids.iter().filter(|id| t.remove(id).is_some()).count();
        Ok(removed as u64)
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let mut t = write(&self.sessions);
        let expired: Vec<SessionId> = t
            .sessions
            .values()
            .filter(|s| s.session.expires_at <= now)
            .map(|s| s.session.id)
            .collect();
        for id in &expired {
            t.remove(id);
        }
        Ok(expired.len() as u64)
    }
}

/// The signing keys, kept beside the sessions.
#[async_trait]
impl KeyStore for MemoryStore {
    async fn add_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let mut t = write(&self.sessions);
        if t.signing_keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict { what: "kid" });
        }
        t.signing_keys.push(key.clone());
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut keys = read(&self.sessions).signing_keys.clone();
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let mut t = write(&self.sessions);
        let before = t.signing_keys.len();
        t.signing_keys.retain(|k| k.kid != kid);
        Ok(t.signing_keys.len() < before)
    }
}
