//! Backup (recovery) codes: 10 per user, 80 bits each, shown once, stored as keyed hashes,
//! each usable once.
//!
//! A code is 16 characters of Crockford's base32 in four groups (`7KQ2-M9XD-4TRB-H3WN`):
//! no `I`, `L`, `O` or `U`, and typing is forgiving — case, spaces and hyphens are
//! ignored, `O` reads as `0` and `I`/`L` as `1`.

use crate::crypto::{BackupCode, SecretHash, SecretPurpose, random_bytes};
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, UserId};
use crate::{Error, RequestContext};

/// How many codes a user gets.
pub const COUNT: usize = 10;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh code: 10 random bytes (80 bits) as 16 base32 characters, grouped by four.
fn fresh() -> Result<BackupCode, Error> {
    let bytes = random_bytes::<10>()?;
    let mut bits = 0u128;
    for &b in bytes.iter() {
        bits = (bits << 8) | u128::from(b);
    }
    let mut code = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        let index = ((bits >> (75 - 5 * i)) & 31) as usize;
        code.push(char::from(CROCKFORD[index]));
    }
    Ok(BackupCode::new(code))
}

/// A code as typed, in canonical form: uppercase, no separators, look-alikes mapped.
/// `None` when it cannot be a code.
fn canonical(code: &BackupCode) -> Option<zeroize::Zeroizing<String>> {
    let mut out = zeroize::Zeroizing::new(String::with_capacity(16));
    for c in code.secret().chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if CROCKFORD.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        out.push(c);
        if out.len() > 16 {
            return None;
        }
    }
    (out.len() == 16).then_some(out)
}

fn hash(inner: &Inner, user: UserId, code: &str) -> SecretHash {
    inner.hasher.hash_parts(
        SecretPurpose::BackupCode,
        &[user.as_bytes(), code.as_bytes()],
    )
}

/// Replaces a user's codes with a fresh set and returns it (the only time the codes exist
/// in clear).
pub(crate) async fn generate(inner: &Inner, user: UserId) -> Result<Vec<BackupCode>, Error> {
    let codes = (0..COUNT).map(|_| fresh()).collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<SecretHash> = codes
        .iter()
        .filter_map(|code| canonical(code).map(|c| hash(inner, user, &c)))
        .collect();
    inner.users.replace_backup_codes(user, &hashes).await?;
    Ok(codes)
}

/// Uses one of a user's codes, atomically: of racing uses of one code exactly one gets
/// `true`.
pub(crate) async fn consume(inner: &Inner, user: UserId, code: &BackupCode) -> Result<bool, Error> {
    let Some(canonical) = canonical(code) else {
        return Ok(false);
    };
    // Under each pepper of the ring: codes made before a rotation still work.
    for hash in inner.hasher.hashes(
        SecretPurpose::BackupCode,
        &[user.as_bytes(), canonical.as_bytes()],
    ) {
        if inner.users.consume_backup_code(user, &hash).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Backup codes (from [`Mfa::backup_codes`](super::Mfa::backup_codes)).
#[derive(Clone, Copy)]
pub struct BackupCodes<'a> {
    inner: &'a Inner,
}

impl<'a> BackupCodes<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        BackupCodes { inner }
    }

    /// A new set of codes for `user`; the old set stops working in the same step. Show
    /// them once.
    pub async fn regenerate(
        &self,
        user: UserId,
        ctx: &RequestContext,
    ) -> Result<Vec<BackupCode>, Error> {
        let inner = self.inner;
        inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        let codes = generate(inner, user).await?;
        let event = AuthEvent::new(AuthEventKind::FactorAdded, ctx, inner.clock.now())
            .with_user(user)
            .with_method("backup_codes");
        inner.audit_log.append(&event).await?;
        Ok(codes)
    }

    /// How many unused codes `user` has.
    pub async fn remaining(&self, user: UserId) -> Result<usize, Error> {
        Ok(self.inner.users.count_backup_codes(user).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_80_bit_grouped_and_forgiving_to_type() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let code = fresh().unwrap();
            let text = code.secret();
            assert_eq!(text.len(), 19);
            assert_eq!(text.matches('-').count(), 3);
            assert!(seen.insert(text.to_owned()));
            let canon = canonical(&code).unwrap();
            let sloppy = BackupCode::new(text.to_lowercase().replace('-', " "));
            assert_eq!(canonical(&sloppy).unwrap(), canon);
        }
        let look_alikes = BackupCode::new("oooo-iiii-llll-0000");
        assert_eq!(
            canonical(&look_alikes).unwrap().as_str(),
            "0000111111110000"
        );
        for bad in [
            "",
            "ABCD",
            "ABCD-EFGH-JKMN-PQRSU",
            "ABCD-EFGH-JKMN-PQR!",
            "ÄBCD-EFGH-JKMN-PQRS",
        ] {
            assert!(canonical(&BackupCode::new(bad)).is_none(), "{bad}");
        }
    }
}
