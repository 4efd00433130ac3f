//! `UserStore`: users with unique email and phone; passkeys, TOTP factors, backup codes and
//! federated identities that go with their user (foreign keys, `ON DELETE CASCADE`).

use async_trait::async_trait;
use portcullis::StoreError;
use portcullis::crypto::{Sealed, SecretHash};
use portcullis::model::{
    CredentialId, Email, FactorId, FactorStatus, FederatedIdentity, Page, PageRequest,
    PasskeyCredential, PasskeyUse, PasswordHash, Phone, TotpFactor, User, UserId,
};
use portcullis::store::{StoreResult, UserQuery, UserStore};
use sqlx::postgres::PgRow;

use crate::rows::{Bound, Run, after, col, fetch_limit, int, page, ts, ts_opt, uint};
use crate::{Db, PgStore};

macro_rules! user_columns {
    () => {
        "id, email, email_verified, phone, phone_verified, name, metadata, \
     password_hash, blocked, locked_until, created_at, updated_at, revision, security_stamp"
    };
}

fn user(row: &PgRow) -> StoreResult<User> {
    const W: &str = "user";
    let email: Option<String> = col(row, "email", W)?;
    let phone: Option<String> = col(row, "phone", W)?;
    Ok(User {
        id: UserId::from_uuid(col(row, "id", W)?),
        email: email
            .map(|e| Email::parse(&e))
            .transpose()
            .map_err(|_| corrupt())?,
        email_verified: col(row, "email_verified", W)?,
        phone: phone
            .map(|p| Phone::parse(&p))
            .transpose()
            .map_err(|_| corrupt())?,
        phone_verified: col(row, "phone_verified", W)?,
        name: col(row, "name", W)?,
        metadata: col(row, "metadata", W)?,
        password_hash: col::<Option<String>>(row, "password_hash", W)?.map(PasswordHash::new),
        blocked: col(row, "blocked", W)?,
        locked_until: ts_opt(row, "locked_until", W)?,
        created_at: ts(row, "created_at", W)?,
        updated_at: ts(row, "updated_at", W)?,
        revision: uint(row, "revision", W)?,
        security_stamp: uint(row, "security_stamp", W)?,
    })
}

fn corrupt() -> StoreError {
    StoreError::Corrupt { what: "user" }
}

macro_rules! passkey_columns {
    () => {
        "credential_id, user_id, name, passkey, counter, backup_eligible, \
     backup_state, registered_with_uv, created_at, last_used_at, rp_id"
    };
}

fn passkey(row: &PgRow) -> StoreResult<PasskeyCredential> {
    const W: &str = "passkey";
    Ok(PasskeyCredential {
        id: CredentialId::new(col::<Vec<u8>>(row, "credential_id", W)?)
            .map_err(|_| StoreError::Corrupt { what: W })?,
        user_id: UserId::from_uuid(col(row, "user_id", W)?),
        name: col(row, "name", W)?,
        passkey: col(row, "passkey", W)?,
        counter: u32::try_from(col::<i64>(row, "counter", W)?)
            .map_err(|_| StoreError::Corrupt { what: W })?,
        backup_eligible: col(row, "backup_eligible", W)?,
        backup_state: col(row, "backup_state", W)?,
        registered_with_uv: col(row, "registered_with_uv", W)?,
        created_at: ts(row, "created_at", W)?,
        last_used_at: ts_opt(row, "last_used_at", W)?,
        rp_id: col(row, "rp_id", W)?,
    })
}

macro_rules! factor_columns {
    () => {
        "id, user_id, secret, status, last_step, created_at"
    };
}

fn factor(row: &PgRow) -> StoreResult<TotpFactor> {
    const W: &str = "totp_factor";
    let status = match col::<String>(row, "status", W)?.as_str() {
        "pending" => FactorStatus::Pending,
        "active" => FactorStatus::Active,
        _ => return Err(StoreError::Corrupt { what: W }),
    };
    let last_step = col::<Option<i64>>(row, "last_step", W)?
        .map(u64::try_from)
        .transpose()
        .map_err(|_| StoreError::Corrupt { what: W })?;
    Ok(TotpFactor {
        id: FactorId::from_uuid(col(row, "id", W)?),
        user_id: UserId::from_uuid(col(row, "user_id", W)?),
        secret: Sealed::from_bytes(col(row, "secret", W)?),
        status,
        last_step,
        created_at: ts(row, "created_at", W)?,
    })
}

macro_rules! identity_columns {
    () => {
        "provider, subject, user_id, created_at"
    };
}

fn identity(row: &PgRow) -> StoreResult<FederatedIdentity> {
    const W: &str = "identity";
    Ok(FederatedIdentity::new(
        col::<String>(row, "provider", W)?,
        col::<String>(row, "subject", W)?,
        UserId::from_uuid(col(row, "user_id", W)?),
        ts(row, "created_at", W)?,
    ))
}

fn status_name(status: FactorStatus) -> &'static str {
    match status {
        FactorStatus::Pending => "pending",
        FactorStatus::Active => "active",
    }
}

/// A `LIKE` pattern matching every text that starts with `prefix`.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Binds a user's columns as `$1` … `$14`, in the order of `user_columns!`, with
/// `revision` as the stored revision.
fn bind_user<'q>(query: Bound<'q>, u: &'q User, revision: u64) -> StoreResult<Bound<'q>> {
    Ok(query
        .bind(u.id.as_uuid())
        .bind(u.email.as_ref().map(Email::as_str))
        .bind(u.email_verified)
        .bind(u.phone.as_ref().map(Phone::as_str))
        .bind(u.phone_verified)
        .bind(u.name.as_deref())
        .bind(&u.metadata)
        .bind(u.password_hash.as_ref().map(PasswordHash::as_str))
        .bind(u.blocked)
        .bind(u.locked_until.map(|t| t.unix_millis()))
        .bind(u.created_at.unix_millis())
        .bind(u.updated_at.unix_millis())
        .bind(int(revision)?)
        .bind(int(u.security_stamp)?))
}

impl PgStore {
    /// The user a query of one parameter finds.
    async fn user_by(&self, sql: &'static str, key: &str) -> StoreResult<Option<User>> {
        sqlx::query(sql).bind(key).one(&self.pool, user).await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, u: &User) -> StoreResult<()> {
        let insert = sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ));
        bind_user(insert, u, u.revision)?
            .affected(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .one(&self.pool, user)
        .await
    }

    async fn get_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.user_by(
            concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
            email.as_str(),
        )
        .await
    }

    async fn get_user_by_phone(&self, phone: &Phone) -> StoreResult<Option<User>> {
        self.user_by(
            concat!("SELECT ", user_columns!(), " FROM users WHERE phone = $1"),
            phone.as_str(),
        )
        .await
    }

    async fn update_user(&self, u: &User) -> StoreResult<u64> {
        let revision = u.revision.saturating_add(1);
        // $1 … $14 as bind_user orders them; $15 the revision this update was read at.
        let update = sqlx::query(
            "UPDATE users SET email = $2, email_verified = $3, phone = $4, phone_verified = $5, \
             name = $6, metadata = $7, password_hash = $8, blocked = $9, locked_until = $10, \
             created_at = $11, updated_at = $12, revision = $13, security_stamp = $14 \
             WHERE id = $1 AND revision = $15",
        );
        let updated = bind_user(update, u, revision)?
            .bind(int(u.revision)?)
            .affected(&self.pool)
            .await?;
        if updated == 1 {
            return Ok(revision);
        }
        match self.get_user(u.id).await? {
            Some(_) => Err(StoreError::Stale),
            None => Err(StoreError::Missing { what: "user" }),
        }
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted > 0)
    }

    async fn list_users(&self, query: &UserQuery, req: &PageRequest) -> StoreResult<Page<User>> {
        let start: Option<UserId> = after(req)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users \
             WHERE ($1::uuid IS NULL OR id > $1) \
               AND ($2::text IS NULL OR email LIKE $2) \
               AND ($3::boolean IS NULL OR blocked = $3) \
               AND ($4::boolean IS NULL OR email_verified = $4) \
               AND ($5::bigint IS NULL OR created_at >= $5) \
               AND ($6::bigint IS NULL OR created_at < $6) \
             ORDER BY id LIMIT $7"
        ))
        .bind(start.map(|id| *id.as_uuid()))
        .bind(query.email_prefix.as_deref().map(prefix_pattern))
        .bind(query.blocked)
        .bind(query.email_verified)
        .bind(query.created_from.map(|t| t.unix_millis()))
        .bind(query.created_before.map(|t| t.unix_millis()))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let users = rows.iter().map(user).collect::<StoreResult<Vec<_>>>()?;
        Ok(page(users, req, |u| u.id))
    }

    async fn add_passkey(&self, p: &PasskeyCredential) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO passkeys (",
            passkey_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(p.id.as_bytes())
        .bind(p.user_id.as_uuid())
        .bind(&p.name)
        .bind(&p.passkey)
        .bind(i64::from(p.counter))
        .bind(p.backup_eligible)
        .bind(p.backup_state)
        .bind(p.registered_with_uv)
        .bind(p.created_at.unix_millis())
        .bind(p.last_used_at.map(|t| t.unix_millis()))
        .bind(p.rp_id.as_deref())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_passkey(&self, id: &CredentialId) -> StoreResult<Option<PasskeyCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM passkeys WHERE credential_id = $1"
        ))
        .bind(id.as_bytes())
        .one(&self.pool, passkey)
        .await
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyCredential>> {
        sqlx::query(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM passkeys WHERE user_id = $1 ORDER BY created_at, credential_id"
        ))
        .bind(user.as_uuid())
        .all(&self.pool, passkey)
        .await
    }

    async fn record_passkey_use(&self, id: &CredentialId, use_: &PasskeyUse) -> StoreResult<bool> {
        // The rule of PasskeyCredential::record_use, as one conditional update.
        let applied = sqlx::query(
            "UPDATE passkeys SET counter = $2, backup_state = $3, passkey = $4, last_used_at = $5 \
             WHERE credential_id = $1 AND ($2 > counter OR ($2 = 0 AND counter = 0))",
        )
        .bind(id.as_bytes())
        .bind(i64::from(use_.counter))
        .bind(use_.backup_state)
        .bind(&use_.passkey)
        .bind(use_.at.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(applied == 1)
    }

    async fn rename_passkey(
        &self,
        user: UserId,
        id: &CredentialId,
        name: &str,
    ) -> StoreResult<bool> {
        let renamed =
            sqlx::query("UPDATE passkeys SET name = $3 WHERE credential_id = $1 AND user_id = $2")
                .bind(id.as_bytes())
                .bind(user.as_uuid())
                .bind(name)
                .affected(&self.pool)
                .await?;
        Ok(renamed == 1)
    }

    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2")
            .bind(id.as_bytes())
            .bind(user.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn put_totp_factor(&self, f: &TotpFactor) -> StoreResult<()> {
        // The stored last step never moves back (GREATEST ignores NULL); a factor id owned
        // by another user matches no row of the update.
        let written = sqlx::query(concat!(
            "INSERT INTO totp_factors (",
            factor_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET secret = EXCLUDED.secret, status = EXCLUDED.status, \
               last_step = GREATEST(totp_factors.last_step, EXCLUDED.last_step), \
               created_at = EXCLUDED.created_at \
             WHERE totp_factors.user_id = EXCLUDED.user_id"
        ))
        .bind(f.id.as_uuid())
        .bind(f.user_id.as_uuid())
        .bind(f.secret.as_bytes())
        .bind(status_name(f.status))
        .bind(f.last_step.map(int).transpose()?)
        .bind(f.created_at.unix_millis())
        .affected(&self.pool)
        .await?;
        if written == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict { what: "factor" })
        }
    }

    async fn list_totp_factors(&self, user: UserId) -> StoreResult<Vec<TotpFactor>> {
        sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM totp_factors WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user.as_uuid())
        .all(&self.pool, factor)
        .await
    }

    async fn advance_totp_step(
        &self,
        user: UserId,
        factor: FactorId,
        step: u64,
    ) -> StoreResult<bool> {
        let advanced = sqlx::query(
            "UPDATE totp_factors SET last_step = $3 \
             WHERE id = $1 AND user_id = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(factor.as_uuid())
        .bind(user.as_uuid())
        .bind(int(step)?)
        .affected(&self.pool)
        .await?;
        Ok(advanced == 1)
    }

    async fn delete_totp_factor(&self, user: UserId, factor: FactorId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM totp_factors WHERE id = $1 AND user_id = $2")
            .bind(factor.as_uuid())
            .bind(user.as_uuid())
            .affected(&self.pool)
            .await?;
        Ok(deleted == 1)
    }

    async fn replace_backup_codes(&self, user: UserId, codes: &[SecretHash]) -> StoreResult<()> {
        let hashes: Vec<&[u8]> = codes.iter().map(|c| &c.as_bytes()[..]).collect();
        let mut tx = self.pool.begin().await.db()?;
        // The user row locked for the swap: one replacement at a time, none after deletion.
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        if exists.is_none() {
            return Err(StoreError::Missing { what: "user" });
        }
        sqlx::query("DELETE FROM backup_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(
            "INSERT INTO backup_codes (user_id, hash) SELECT $1, unnest($2::bytea[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user.as_uuid())
        .bind(&hashes)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn consume_backup_code(&self, user: UserId, code: &SecretHash) -> StoreResult<bool> {
        let consumed = sqlx::query("DELETE FROM backup_codes WHERE user_id = $1 AND hash = $2")
            .bind(user.as_uuid())
            .bind(&code.as_bytes()[..])
            .affected(&self.pool)
            .await?;
        Ok(consumed == 1)
    }

    async fn count_backup_codes(&self, user: UserId) -> StoreResult<usize> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM backup_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_one(&self.pool)
            .await
            .db()?;
        usize::try_from(count).map_err(|_| StoreError::Corrupt {
            what: "backup_code",
        })
    }

    async fn link_identity(&self, i: &FederatedIdentity) -> StoreResult<()> {
        // federated_identities_pkey: Conflict "identity"; the user's foreign key: Missing "user".
        sqlx::query(concat!(
            "INSERT INTO federated_identities (",
            identity_columns!(),
            ") VALUES ($1, $2, $3, $4)"
        ))
        .bind(&i.provider)
        .bind(&i.subject)
        .bind(i.user_id.as_uuid())
        .bind(i.created_at.unix_millis())
        .affected(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentity>> {
        sqlx::query(concat!(
            "SELECT ",
            identity_columns!(),
            " FROM federated_identities WHERE provider = $1 AND subject = $2"
        ))
        .bind(provider)
        .bind(subject)
        .one(&self.pool, identity)
        .await
    }

    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<FederatedIdentity>> {
        sqlx::query(concat!(
            "SELECT ",
            identity_columns!(),
            " FROM federated_identities WHERE user_id = $1 \
             ORDER BY created_at, provider COLLATE \"C\", subject COLLATE \"C\""
        ))
        .bind(user.as_uuid())
        .all(&self.pool, identity)
        .await
    }

    async fn count_identities(&self, provider: &str) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM federated_identities WHERE provider = $1")
                .bind(provider)
                .fetch_one(&self.pool)
                .await
                .db()?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt { what: "identity" })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn prefix_patterns_escape_like_wildcards() {
        assert_eq!(prefix_pattern("ann"), "ann%");
        assert_eq!(prefix_pattern("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
