//! `UserStore`: users with their email and phone indexes, and what each user owns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::crypto::SecretHash;
use portcullis::model::{
    CredentialId, Email, FactorId, FederatedIdentity, Page, PageRequest, PasskeyCredential,
    PasskeyUse, Phone, TotpFactor, User, UserId,
};
use portcullis::store::{StoreResult, UserQuery, UserStore};

use crate::{MemoryStore, paginate, parse_cursor, read, write};

#[derive(Debug, Default)]
pub(crate) struct Tables {
    users: BTreeMap<UserId, User>,
    by_email: HashMap<Email, UserId>,
    by_phone: HashMap<Phone, UserId>,
    /// Credential id → owner, across all users (the uniqueness index).
    passkey_owner: HashMap<CredentialId, UserId>,
    /// TOTP factor id → owner.
    totp_owner: HashMap<FactorId, UserId>,
    /// `(provider, subject)` → the link, across all users (the uniqueness index); ordered so
    /// that a provider's links are one range.
    identities: BTreeMap<IdentityKey, FederatedIdentity>,
    owned: HashMap<UserId, Owned>,
}

/// A federated identity's key: `(provider, subject)`, compared byte for byte.
type IdentityKey = (String, String);

/// What a user owns; removed with the user in one step.
#[derive(Debug, Default)]
struct Owned {
    passkeys: BTreeMap<CredentialId, PasskeyCredential>,
    totp: BTreeMap<FactorId, TotpFactor>,
    backup_codes: HashSet<SecretHash>,
    identities: BTreeSet<IdentityKey>,
}

impl Tables {
    /// Every user and what they own, for [`MemoryStore::dump`].
    pub(crate) fn dump_into(&self, out: &mut Vec<u8>) {
        for user in self.users.values() {
            crate::dump_json(out, user);
        }
        for owned in self.owned.values() {
            for passkey in owned.passkeys.values() {
                crate::dump_json(out, passkey);
            }
            for factor in owned.totp.values() {
                crate::dump_json(out, factor);
            }
            for code in &owned.backup_codes {
                crate::dump_json(out, code);
            }
        }
        for identity in self.identities.values() {
            crate::dump_json(out, identity);
        }
    }
}

impl Tables {
    /// Refuses when `email` or `phone` belongs to a user other than `me`.
    fn check_unique(
        &self,
        me: UserId,
        email: Option<&Email>,
        phone: Option<&Phone>,
    ) -> StoreResult<()> {
        if email
            .and_then(|e| self.by_email.get(e))
            .is_some_and(|id| *id != me)
        {
            return Err(StoreError::Conflict { what: "email" });
        }
        if phone
            .and_then(|p| self.by_phone.get(p))
            .is_some_and(|id| *id != me)
        {
            return Err(StoreError::Conflict { what: "phone" });
        }
        Ok(())
    }

    fn owned_mut(&mut self, user: UserId) -> StoreResult<&mut Owned> {
        if !self.users.contains_key(&user) {
            return Err(StoreError::Missing { what: "user" });
        }
        Ok(self.owned.entry(user).or_default())
    }

    fn passkey_mut(&mut self, user: UserId, id: &CredentialId) -> Option<&mut PasskeyCredential> {
        self.owned.get_mut(&user)?.passkeys.get_mut(id)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let mut t = write(&self.users);
        if t.users.contains_key(&user.id) {
            return Err(StoreError::Conflict { what: "user" });
        }
        t.check_unique(user.id, user.email.as_ref(), user.phone.as_ref())?;
        if let Some(email) = &user.email {
            t.by_email.insert(email.clone(), user.id);
        }
        if let Some(phone) = &user.phone {
            t.by_phone.insert(phone.clone(), user.id);
        }
        t.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        Ok(read(&self.users).users.get(&id).cloned())
    }

    async fn get_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let t = read(&self.users);
        Ok(t.by_email
            .get(email)
            .and_then(|id| t.users.get(id))
            .cloned())
    }

    async fn get_user_by_phone(&self, phone: &Phone) -> StoreResult<Option<User>> {
        let t = read(&self.users);
        Ok(t.by_phone
            .get(phone)
            .and_then(|id| t.users.get(id))
            .cloned())
    }

    async fn update_user(&self, user: &User) -> StoreResult<u64> {
        let mut t = write(&self.users);
        let stored = t
            .users
            .get(&user.id)
            .ok_or(StoreError::Missing { what: "user" })?;
        if stored.revision != user.revision {
            return Err(StoreError::Stale);
        }
        t.check_unique(user.id, user.email.as_ref(), user.phone.as_ref())?;
        let (old_email, old_phone) = (stored.email.clone(), stored.phone.clone());
        if let Some(old) = old_email {
            t.by_email.remove(&old);
        }
        if let Some(old) = old_phone {
            t.by_phone.remove(&old);
        }
        if let Some(email) = &user.email {
            t.by_email.insert(email.clone(), user.id);
        }
        if let Some(phone) = &user.phone {
            t.by_phone.insert(phone.clone(), user.id);
        }
        let revision = user.revision.saturating_add(1);
        let mut updated = user.clone();
        updated.revision = revision;
        t.users.insert(user.id, updated);
        Ok(revision)
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let Some(user) = t.users.remove(&id) else {
            return Ok(false);
        };
        if let Some(email) = &user.email {
            t.by_email.remove(email);
        }
        if let Some(phone) = &user.phone {
            t.by_phone.remove(phone);
        }
        if let Some(owned) = t.owned.remove(&id) {
            for credential in owned.passkeys.keys() {
                t.passkey_owner.remove(credential);
            }
            for factor in owned.totp.keys() {
                t.totp_owner.remove(factor);
            }
            for identity in &owned.identities {
                t.identities.remove(identity);
            }
        }
        Ok(true)
    }

    async fn list_users(&self, query: &UserQuery, page: &PageRequest) -> StoreResult<Page<User>> {
        let after: Option<UserId> = parse_cursor(page)?;
        let t = read(&self.users);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let items = t
            .users
            .range((start, Bound::Unbounded))
            .map(|(_, u)| u)
            .filter(|u| query.matches(u))
            .cloned();
        Ok(paginate(items, page, |u| u.id))
    }

    async fn add_passkey(&self, credential: &PasskeyCredential) -> StoreResult<()> {
        let mut t = write(&self.users);
        if t.passkey_owner.contains_key(&credential.id) {
            return Err(StoreError::Conflict { what: "credential" });
        }
        t.owned_mut(credential.user_id)?
            .passkeys
            .insert(credential.id.clone(), credential.clone());
        t.passkey_owner
            .insert(credential.id.clone(), credential.user_id);
        Ok(())
    }

    async fn get_passkey(&self, id: &CredentialId) -> StoreResult<Option<PasskeyCredential>> {
        let t = read(&self.users);
        let owner = t.passkey_owner.get(id);
        Ok(owner
            .and_then(|user| t.owned.get(user))
            .and_then(|owned| owned.passkeys.get(id))
            .cloned())
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyCredential>> {
        let t = read(&self.users);
        let mut keys: Vec<_> = t
            .owned
            .get(&user)
            .map(|o| o.passkeys.values().cloned().collect())
            .unwrap_or_default();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn record_passkey_use(&self, id: &CredentialId, use_: &PasskeyUse) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let Some(&owner) = t.passkey_owner.get(id) else {
            return Ok(false);
        };
        let Some(credential) = t.passkey_mut(owner, id) else {
            return Ok(false);
        };
        Ok(credential.record_use(use_))
    }

    async fn rename_passkey(
        &self,
        user: UserId,
        id: &CredentialId,
        name: &str,
    ) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let Some(credential) = t.passkey_mut(user, id) else {
            return Ok(false);
        };
        credential.name = name.to_owned();
        Ok(true)
    }

    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let removed = t
            .owned
            .get_mut(&user)
            .and_then(|o| o.passkeys.remove(id))
            .is_some();
        if removed {
            t.passkey_owner.remove(id);
        }
        Ok(removed)
    }

    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let mut t = write(&self.users);
        if t.totp_owner
            .get(&factor.id)
            .is_some_and(|u| *u != factor.user_id)
        {
            return Err(StoreError::Conflict { what: "factor" });
        }
        let totp = &mut t.owned_mut(factor.user_id)?.totp;
        let stored = factor.merged_over(totp.get(&factor.id));
        totp.insert(factor.id, stored);
        t.totp_owner.insert(factor.id, factor.user_id);
        Ok(())
    }

    async fn list_totp_factors(&self, user: UserId) -> StoreResult<Vec<TotpFactor>> {
        let t = read(&self.users);
        let mut factors: Vec<_> = t
            .owned
            .get(&user)
            .map(|o| o.totp.values().cloned().collect())
            .unwrap_or_default();
        factors.sort_by_key(|f| f.created_at);
        Ok(factors)
    }

    async fn advance_totp_step(
        &self,
        user: UserId,
        factor: FactorId,
        step: u64,
    ) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let Some(stored) = t.owned.get_mut(&user).and_then(|o| o.totp.get_mut(&factor)) else {
            return Ok(false);
        };
        Ok(stored.advance_step(step))
    }

    async fn delete_totp_factor(&self, user: UserId, factor: FactorId) -> StoreResult<bool> {
        let mut t = write(&self.users);
        let removed = t
            .owned
            .get_mut(&user)
            .and_then(|o| o.totp.remove(&factor))
            .is_some();
        if removed {
            t.totp_owner.remove(&factor);
        }
        Ok(removed)
    }

    async fn replace_backup_codes(&self, user: UserId, codes: &[SecretHash]) -> StoreResult<()> {
        let mut t = write(&self.users);
        t.owned_mut(user)?.backup_codes = codes.iter().copied().collect();
        Ok(())
    }

    async fn consume_backup_code(&self, user: UserId, code: &SecretHash) -> StoreResult<bool> {
        let mut t = write(&self.users);
        Ok(t.owned
            .get_mut(&user)
            .is_some_and(|o| o.backup_codes.remove(code)))
    }

    async fn count_backup_codes(&self, user: UserId) -> StoreResult<usize> {
        let t = read(&self.users);
        Ok(t.owned.get(&user).map_or(0, |o| o.backup_codes.len()))
    }

    async fn link_identity(&self, identity: &FederatedIdentity) -> StoreResult<()> {
        let mut t = write(&self.users);
        let key = (identity.provider.clone(), identity.subject.clone());
        if t.identities.contains_key(&key) {
            return Err(StoreError::Conflict { what: "identity" });
        }
        t.owned_mut(identity.user_id)?
            .identities
            .insert(key.clone());
        t.identities.insert(key, identity.clone());
        Ok(())
    }

    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentity>> {
        let t = read(&self.users);
        let key = (provider.to_owned(), subject.to_owned());
        Ok(t.identities.get(&key).cloned())
    }

    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<FederatedIdentity>> {
        let t = read(&self.users);
        let mut identities: Vec<FederatedIdentity> = t
            .owned
            .get(&user)
            .map(|o| {
                o.identities
                    .iter()
                    .filter_map(|key| t.identities.get(key).cloned())
                    .collect()
            })
            .unwrap_or_default();
        identities.sort_by(|a, b| {
            (a.created_at, &a.provider, &a.subject).cmp(&(b.created_at, &b.provider, &b.subject))
        });
        Ok(identities)
    }

    async fn count_identities(&self, provider: &str) -> StoreResult<u64> {
        let t = read(&self.users);
        // The empty subject is the smallest: the range starts at the provider's first link.
        let from = (provider.to_owned(), String::new());
        let count = t
            .identities
            .range(from..)
            .take_while(|((p, _), _)| p == provider)
            .count();
        Ok(count as u64)
    }
}
