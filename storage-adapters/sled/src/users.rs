//! `UserStore` over sled trees.

use std::ops::Bound;

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::crypto::SecretHash;
use portcullis::model::CredentialId;
use portcullis::model::{
    Cursor, Email, FactorId, FederatedIdentity, Page, PageRequest, PasskeyCredential, PasskeyUse,
    Phone, TotpFactor, User, UserId,
};
use portcullis::store::{StoreResult, UserQuery, UserStore};

use crate::codec::{cat, dec, dec_record, enc, enc_record, text};
use crate::tx::{Trees, WriteSet, keys_with_prefix};
use crate::{Class, SledStore};

/// A federated identity's key: the provider (length first), then the subject, byte for
/// byte. The provider's own encoding prefixes exactly its identities.
fn identity_key(provider: &str, subject: &str) -> Vec<u8> {
    cat(&text(provider), subject.as_bytes())
}

fn user_of(t: &Trees, w: &WriteSet, id: UserId) -> StoreResult<Option<User>> {
    w.get(&t.users, id.as_bytes())?
        .map(|raw| dec_record(&raw))
        .transpose()
}

/// Refuses when `email` or `phone` belongs to a user other than `me`.
fn check_unique(t: &Trees, w: &WriteSet, me: UserId, user: &User) -> StoreResult<()> {
    let owner = |raw: Vec<u8>| raw.as_slice() != me.as_bytes();
    if let Some(email) = &user.email
        && w.get(&t.users_by_email, email.as_str().as_bytes())?
            .is_some_and(owner)
    {
        return Err(StoreError::Conflict { what: "email" });
    }
    if let Some(phone) = &user.phone
        && w.get(&t.users_by_phone, phone.as_str().as_bytes())?
            .is_some_and(owner)
    {
        return Err(StoreError::Conflict { what: "phone" });
    }
    Ok(())
}

fn index_contacts(t: &Trees, w: &mut WriteSet, user: &User) {
    if let Some(email) = &user.email {
        w.put(
            &t.users_by_email,
            email.as_str().as_bytes(),
            user.id.as_bytes().to_vec(),
        );
    }
    if let Some(phone) = &user.phone {
        w.put(
            &t.users_by_phone,
            phone.as_str().as_bytes(),
            user.id.as_bytes().to_vec(),
        );
    }
}

fn unindex_contacts(t: &Trees, w: &mut WriteSet, user: &User) {
    if let Some(email) = &user.email {
        w.del(&t.users_by_email, email.as_str().as_bytes());
    }
    if let Some(phone) = &user.phone {
        w.del(&t.users_by_phone, phone.as_str().as_bytes());
    }
}

impl SledStore {
    /// The user an index entry points to, if the record still carries that key: reads
    /// take no lock, so a delete or an email change may land between the two reads.
    fn user_by_index(
        &self,
        index: &sled::Tree,
        key: &[u8],
        carries: impl Fn(&User) -> bool,
    ) -> StoreResult<Option<User>> {
        let Some(id) = index.get(key).map_err(crate::backend)? else {
            return Ok(None);
        };
        let Some(raw) = self.inner.t.users.get(id).map_err(crate::backend)? else {
            return Ok(None);
        };
        let user: User = dec_record(&raw)?;
        Ok(Some(user).filter(|u| carries(u)))
    }

    fn passkey_of(&self, id: &CredentialId) -> StoreResult<Option<PasskeyCredential>> {
        let raw = self
            .inner
            .t
            .passkeys
            .get(id.as_bytes())
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "passkey")).transpose()
    }
}

#[async_trait]
impl UserStore for SledStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                if w.get(&t.users, user.id.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict { what: "user" });
                }
                check_unique(t, w, user.id, user)?;
                index_contacts(t, w, user);
                w.put(&t.users, user.id.as_bytes().to_vec(), enc_record(user));
                Ok(())
            })
            .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let raw = self
            .inner
            .t
            .users
            .get(id.as_bytes())
            .map_err(crate::backend)?;
        raw.map(|raw| dec_record(&raw)).transpose()
    }

    async fn get_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.user_by_index(
            &self.inner.t.users_by_email,
            email.as_str().as_bytes(),
            |u| u.email.as_ref() == Some(email),
        )
    }

    async fn get_user_by_phone(&self, phone: &Phone) -> StoreResult<Option<User>> {
        self.user_by_index(
            &self.inner.t.users_by_phone,
            phone.as_str().as_bytes(),
            |u| u.phone.as_ref() == Some(phone),
        )
    }

    async fn update_user(&self, user: &User) -> StoreResult<u64> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let stored = user_of(t, w, user.id)?.ok_or(StoreError::Missing { what: "user" })?;
                if stored.revision != user.revision {
                    return Err(StoreError::Stale);
                }
                check_unique(t, w, user.id, user)?;
                unindex_contacts(t, w, &stored);
                index_contacts(t, w, user);
                let revision = user.revision.saturating_add(1);
                let mut updated = user.clone();
                updated.revision = revision;
                w.put(&t.users, user.id.as_bytes().to_vec(), enc_record(&updated));
                Ok(revision)
            })
            .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let Some(user) = user_of(t, w, id)? else {
                    return Ok(false);
                };
                unindex_contacts(t, w, &user);
                w.del(&t.users, id.as_bytes().to_vec());
                for key in keys_with_prefix(&t.user_passkeys, id.as_bytes())? {
                    w.del(&t.passkeys, key.get(16..).unwrap_or_default().to_vec());
                    w.del(&t.user_passkeys, key.to_vec());
                }
                for key in keys_with_prefix(&t.totp, id.as_bytes())? {
                    w.del(&t.totp_owner, key.get(16..).unwrap_or_default().to_vec());
                    w.del(&t.totp, key.to_vec());
                }
                w.del(&t.backup_codes, id.as_bytes().to_vec());
                for key in keys_with_prefix(&t.user_identities, id.as_bytes())? {
                    w.del(&t.identities, key.get(16..).unwrap_or_default().to_vec());
                    w.del(&t.user_identities, key.to_vec());
                }
                Ok(true)
            })
            .await
    }

    async fn list_users(&self, query: &UserQuery, page: &PageRequest) -> StoreResult<Page<User>> {
        let after = page
            .cursor
            .as_ref()
            .map(|c| {
                c.as_str()
                    .parse::<UserId>()
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let start = after.map_or(Bound::Unbounded, |id| {
            Bound::Excluded(id.as_bytes().to_vec())
        });
        let limit = page.effective_limit();
        let mut items = Vec::new();
        let mut more = false;
        for entry in self.inner.t.users.range((start, Bound::Unbounded)) {
            let (_, raw) = entry.map_err(crate::backend)?;
            let user: User = dec_record(&raw)?;
            if !query.matches(&user) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(user);
        }
        let next_cursor = match items.last() {
            Some(last) if more => Some(Cursor::new(last.id.to_string())),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    async fn add_passkey(&self, credential: &PasskeyCredential) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                if w.get(&t.passkeys, credential.id.as_bytes())?.is_some() {
                    return Err(StoreError::Conflict { what: "credential" });
                }
                if user_of(t, w, credential.user_id)?.is_none() {
                    return Err(StoreError::Missing { what: "user" });
                }
                w.put(
                    &t.passkeys,
                    credential.id.as_bytes().to_vec(),
                    enc(credential)?,
                );
                let owned = cat(credential.user_id.as_bytes(), credential.id.as_bytes());
                w.put(&t.user_passkeys, owned, Vec::new());
                Ok(())
            })
            .await
    }

    async fn get_passkey(&self, id: &CredentialId) -> StoreResult<Option<PasskeyCredential>> {
        self.passkey_of(id)
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyCredential>> {
        let mut keys = Vec::new();
        for key in keys_with_prefix(&self.inner.t.user_passkeys, user.as_bytes())? {
            let id =
                CredentialId::new(key.get(16..).unwrap_or_default().to_vec()).map_err(|_| {
                    StoreError::Corrupt {
                        what: "passkey index",
                    }
                })?;
            // Deleted between the two reads: gone.
            if let Some(passkey) = self.passkey_of(&id)?.filter(|p| p.user_id == user) {
                keys.push(passkey);
            }
        }
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn record_passkey_use(&self, id: &CredentialId, use_: &PasskeyUse) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.passkeys, id.as_bytes())? else {
                    return Ok(false);
                };
                let mut credential: PasskeyCredential = dec(&raw, "passkey")?;
                if !credential.record_use(use_) {
                    return Ok(false);
                }
                w.put(&t.passkeys, id.as_bytes().to_vec(), enc(&credential)?);
                Ok(true)
            })
            .await
    }

    async fn rename_passkey(
        &self,
        user: UserId,
        id: &CredentialId,
        name: &str,
    ) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Ordinary, |t, w| {
                let Some(raw) = w.get(&t.passkeys, id.as_bytes())? else {
                    return Ok(false);
                };
                let mut credential: PasskeyCredential = dec(&raw, "passkey")?;
                if credential.user_id != user {
                    return Ok(false);
                }
                credential.name = name.to_owned();
                w.put(&t.passkeys, id.as_bytes().to_vec(), enc(&credential)?);
                Ok(true)
            })
            .await
    }

    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.passkeys, id.as_bytes())? else {
                    return Ok(false);
                };
                let credential: PasskeyCredential = dec(&raw, "passkey")?;
                if credential.user_id != user {
                    return Ok(false);
                }
                w.del(&t.passkeys, id.as_bytes().to_vec());
                w.del(&t.user_passkeys, cat(user.as_bytes(), id.as_bytes()));
                Ok(true)
            })
            .await
    }

    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                if let Some(owner) = w.get(&t.totp_owner, factor.id.as_bytes())?
                    && owner.as_slice() != factor.user_id.as_bytes()
                {
                    return Err(StoreError::Conflict { what: "factor" });
                }
                if user_of(t, w, factor.user_id)?.is_none() {
                    return Err(StoreError::Missing { what: "user" });
                }
                let key = cat(factor.user_id.as_bytes(), factor.id.as_bytes());
                let previous: Option<TotpFactor> = w
                    .get(&t.totp, &key)?
                    .map(|raw| dec(&raw, "totp factor"))
                    .transpose()?;
                let stored = factor.merged_over(previous.as_ref());
                w.put(&t.totp, key, enc(&stored)?);
                w.put(
                    &t.totp_owner,
                    factor.id.as_bytes().to_vec(),
                    factor.user_id.as_bytes().to_vec(),
                );
                Ok(())
            })
            .await
    }

    async fn list_totp_factors(&self, user: UserId) -> StoreResult<Vec<TotpFactor>> {
        let mut factors: Vec<TotpFactor> = self
            .inner
            .t
            .totp
            .scan_prefix(user.as_bytes())
            .values()
            .map(|raw| dec(&raw.map_err(crate::backend)?, "totp factor"))
            .collect::<StoreResult<_>>()?;
        factors.sort_by_key(|f| f.created_at);
        Ok(factors)
    }

    async fn advance_totp_step(
        &self,
        user: UserId,
        factor: FactorId,
        step: u64,
    ) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let key = cat(user.as_bytes(), factor.as_bytes());
                let Some(raw) = w.get(&t.totp, &key)? else {
                    return Ok(false);
                };
                let mut stored: TotpFactor = dec(&raw, "totp factor")?;
                if !stored.advance_step(step) {
                    return Ok(false);
                }
                w.put(&t.totp, key, enc(&stored)?);
                Ok(true)
            })
            .await
    }

    async fn delete_totp_factor(&self, user: UserId, factor: FactorId) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let key = cat(user.as_bytes(), factor.as_bytes());
                if w.get(&t.totp, &key)?.is_none() {
                    return Ok(false);
                }
                w.del(&t.totp, key);
                w.del(&t.totp_owner, factor.as_bytes().to_vec());
                Ok(true)
            })
            .await
    }

    async fn replace_backup_codes(&self, user: UserId, codes: &[SecretHash]) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                if user_of(t, w, user)?.is_none() {
                    return Err(StoreError::Missing { what: "user" });
                }
                w.put(&t.backup_codes, user.as_bytes().to_vec(), enc(&codes)?);
                Ok(())
            })
            .await
    }

    async fn consume_backup_code(&self, user: UserId, code: &SecretHash) -> StoreResult<bool> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let Some(raw) = w.get(&t.backup_codes, user.as_bytes())? else {
                    return Ok(false);
                };
                let mut codes: Vec<SecretHash> = dec(&raw, "backup codes")?;
                let Some(i) = codes.iter().position(|c| c == code) else {
                    return Ok(false);
                };
                codes.swap_remove(i);
                w.put(&t.backup_codes, user.as_bytes().to_vec(), enc(&codes)?);
                Ok(true)
            })
            .await
    }

    async fn count_backup_codes(&self, user: UserId) -> StoreResult<usize> {
        let raw = self
            .inner
            .t
            .backup_codes
            .get(user.as_bytes())
            .map_err(crate::backend)?;
        Ok(raw
            .map(|raw| dec::<Vec<SecretHash>>(&raw, "backup codes"))
            .transpose()?
            .map_or(0, |c| c.len()))
    }

    async fn link_identity(&self, identity: &FederatedIdentity) -> StoreResult<()> {
        let inner = &self.inner;
        inner
            .write(&inner.users_lock, Class::Critical, |t, w| {
                let key = identity_key(&identity.provider, &identity.subject);
                if w.get(&t.identities, &key)?.is_some() {
                    return Err(StoreError::Conflict { what: "identity" });
                }
                if user_of(t, w, identity.user_id)?.is_none() {
                    return Err(StoreError::Missing { what: "user" });
                }
                w.put(
                    &t.user_identities,
                    cat(identity.user_id.as_bytes(), &key),
                    Vec::new(),
                );
                w.put(&t.identities, key, enc(identity)?);
                Ok(())
            })
            .await
    }

    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentity>> {
        let raw = self
            .inner
            .t
            .identities
            .get(identity_key(provider, subject))
            .map_err(crate::backend)?;
        raw.map(|raw| dec(&raw, "identity")).transpose()
    }

    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<FederatedIdentity>> {
        let t = &self.inner.t;
        let mut identities = Vec::new();
        for key in keys_with_prefix(&t.user_identities, user.as_bytes())? {
            let raw = t
                .identities
                .get(key.get(16..).unwrap_or_default())
                .map_err(crate::backend)?;
            let Some(raw) = raw else {
                // Deleted between the two reads: gone.
                continue;
            };
            let identity: FederatedIdentity = dec(&raw, "identity")?;
            if identity.user_id == user {
                identities.push(identity);
            }
        }
        identities.sort_by(|a, b| {
            (a.created_at, &a.provider, &a.subject).cmp(&(b.created_at, &b.provider, &b.subject))
        });
        Ok(identities)
    }

    async fn count_identities(&self, provider: &str) -> StoreResult<u64> {
        self.inner
            .t
            .identities
            .scan_prefix(text(provider))
            .keys()
            .try_fold(0, |n, key| key.map(|_| n + 1))
            .map_err(crate::backend)
    }
}

/// See [`SledStore::check_indexes`].
pub(crate) fn check_indexes(t: &Trees) -> StoreResult<()> {
    let broken = |what: &'static str| StoreError::Corrupt { what };
    for (index, what) in [
        (&t.users_by_email, "email index"),
        (&t.users_by_phone, "phone index"),
    ] {
        for entry in index.iter() {
            let (key, id) = entry.map_err(crate::backend)?;
            let raw = t
                .users
                .get(&id)
                .map_err(crate::backend)?
                .ok_or(broken(what))?;
            let user: User = dec_record(&raw)?;
            let carried = match what {
                "email index" => user.email.map(|e| e.as_str().as_bytes() == key.as_ref()),
                _ => user.phone.map(|p| p.as_str().as_bytes() == key.as_ref()),
            };
            if carried != Some(true) {
                return Err(broken(what));
            }
        }
    }
    for raw in t.users.iter().values() {
        let user: User = dec_record(&raw.map_err(crate::backend)?)?;
        let email_ok = match &user.email {
            Some(email) => {
                t.users_by_email
                    .get(email.as_str())
                    .map_err(crate::backend)?
                    .as_deref()
                    == Some(user.id.as_bytes().as_slice())
            }
            None => true,
        };
        let phone_ok = match &user.phone {
            Some(phone) => {
                t.users_by_phone
                    .get(phone.as_str())
                    .map_err(crate::backend)?
                    .as_deref()
                    == Some(user.id.as_bytes().as_slice())
            }
            None => true,
        };
        if !email_ok || !phone_ok {
            return Err(broken("user without its index entry"));
        }
    }
    for key in t.user_passkeys.iter().keys() {
        let key = key.map_err(crate::backend)?;
        if t.passkeys
            .get(key.get(16..).unwrap_or_default())
            .map_err(crate::backend)?
            .is_none()
        {
            return Err(broken("passkey index"));
        }
    }
    Ok(())
}
