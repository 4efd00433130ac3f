//! TOTP (RFC 6238) authenticators: enrolment with an `otpauth://` URI and a QR code,
//! confirmation with a first code, and verification that refuses replays.
//!
//! Codes are HMAC-SHA1, 6 digits, 30-second steps: what every authenticator app supports.
//! A code is accepted for the current step and one step either side (RFC 6238 §5.2's
//! recommended network delay). ASVS 2.8.1 asks for a validity of at most 30 s, which would
//! mean no tolerance at all; phones drift and people type slowly, so we accept ±1 step,
//! and make the wider window harmless by accepting each step at most once: the factor
//! remembers the last step accepted, and a code for that step or an earlier one is a
//! replay (checklist TOTP rows, security invariant 7).
//!
//! The 20-byte secret comes from the OS RNG and is stored sealed with the engine's
//! [`Keyring`](crate::crypto::Keyring); the associated data names the user and the factor,
//! so a sealed secret copied onto another user's or factor's record does not open.

use std::fmt;

use totp_rs::{Algorithm, Builder};
use zeroize::Zeroizing;

use crate::crypto::{OneTimeCode, random_bytes};
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, FactorId, FactorStatus, TotpFactor, UserId};
use crate::{Error, RequestContext};

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u16 = 1;
/// Secret length, in bytes (RFC 4226 §4 recommends 160 bits).
pub const SECRET_BYTES: usize = 20;

/// A new TOTP authenticator, before its first code confirms it. Everything in it carries
/// the secret: show it to the user once, never log or store it.
pub struct TotpEnrollment {
    /// The factor to confirm.
    pub factor_id: FactorId,
    /// The secret in base32, for typing into an app by hand.
    pub secret_base32: Zeroizing<String>,
    /// `otpauth://totp/…` with issuer and account, what the QR code encodes.
    pub otpauth_uri: Zeroizing<String>,
    /// The QR code of `otpauth_uri`, as a PNG image.
    pub qr_png: Vec<u8>,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("factor_id", &self.factor_id)
            .field("secret", &"[redacted]")
            .field("qr_png", &format_args!("{} bytes", self.qr_png.len()))
            .finish()
    }
}

/// The code of `secret` at `unix_secs` (RFC 6238 with SHA-1, or SHA-256/SHA-512 as
/// `algorithm` names: `"SHA1"`, `"SHA256"`, `"SHA512"`), `digits` long. The generator the
/// engine verifies with, exposed for known-answer tests and for test authenticators.
pub fn code_at(
    secret: &[u8],
    unix_secs: u64,
    algorithm: &str,
    digits: u8,
) -> Result<String, Error> {
    let algorithm = match algorithm {
        "SHA1" => Algorithm::SHA1,
        "SHA256" => Algorithm::SHA256,
        "SHA512" => Algorithm::SHA512,
        _ => {
            return Err(Error::invalid(
                "algorithm",
                "must be SHA1, SHA256 or SHA512",
            ));
        }
    };
    let totp = Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_account_name("code")
        .build()
        .map_err(|_| Error::invalid("secret", "must be at least 16 bytes"))?;
    Ok(totp.generate(unix_secs).to_string())
}

/// The associated data a factor's secret is sealed with.
fn aad(user: UserId, factor: FactorId) -> Vec<u8> {
    [
        b"portcullis/totp/".as_slice(),
        user.as_bytes(),
        factor.as_bytes(),
    ]
    .concat()
}

fn engine(secret: &[u8], account: &str, issuer: &str) -> Result<totp_rs::Totp, Error> {
    // otpauth labels cannot hold ':' (it separates issuer and account).
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_account_name(clean(account))
        .with_issuer(Some(clean(issuer)))
        .build()
        .map_err(|_| Error::Crypto)
}

/// TOTP authenticators (from [`Mfa::totp`](super::Mfa::totp)).
#[derive(Clone, Copy)]
pub struct Totp<'a> {
    inner: &'a Inner,
}

impl<'a> Totp<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Totp { inner }
    }

    /// Starts enrolling an authenticator app for `user`: a pending factor with a fresh
    /// secret, its `otpauth://` URI and QR code. An earlier pending enrolment is replaced.
    /// A user already holding an active TOTP factor gets [`Error::Conflict`] (`"totp"`):
    /// remove it first.
    pub async fn enroll(
        &self,
        user: UserId,
        _ctx: &RequestContext,
    ) -> Result<TotpEnrollment, Error> {
        let inner = self.inner;
        let account = account(inner, user).await?;
        let existing = inner.users.list_totp_factors(user).await?;
        if existing.iter().any(|f| f.status == FactorStatus::Active) {
            return Err(Error::Conflict { what: "totp" });
        }
        for pending in existing {
            inner.users.delete_totp_factor(user, pending.id).await?;
        }
        let secret = random_bytes::<SECRET_BYTES>()?;
        let factor_id = FactorId::generate();
        let totp = self.labelled(&account, secret.as_ref())?;
        let otpauth_uri =
            Zeroizing::new(totp.to_url().map_err(|_| Error::Internal("otpauth URI"))?);
        let qr_png = qr_png(&totp)?;
        let now = inner.clock.now();
        let factor = TotpFactor {
            id: factor_id,
            user_id: user,
            secret: inner.keyring.seal(secret.as_ref(), &aad(user, factor_id))?,
            status: FactorStatus::Pending,
            last_step: None,
            created_at: now,
        };
        inner.users.put_totp_factor(&factor).await?;
        tracing::debug!(user_id = %user, factor_id = %factor_id, "TOTP enrolment started");
        Ok(TotpEnrollment {
            factor_id,
            secret_base32: Zeroizing::new(base32_encode(secret.as_ref())),
            otpauth_uri,
            qr_png,
        })
    }

    /// The QR code (PNG) of `user`'s pending enrolment, for showing it again (another
    /// device, a reloaded page) without starting over. [`Error::NotFound`] when no
    /// enrolment is pending.
    pub async fn pending_qr(&self, user: UserId) -> Result<Vec<u8>, Error> {
        let inner = self.inner;
        let account = account(inner, user).await?;
        let pending = pending_factor(inner, user).await?;
        let secret = inner
            .keyring
            .open(&pending.secret, &aad(user, pending.id))?;
        qr_png(&self.labelled(&account, &secret)?)
    }

    /// The generator for `secret`, labelled with the account's email (or phone, or id)
    /// and the relying party's name as issuer: what the otpauth URI and QR code carry.
    fn labelled(
        &self,
        account: &crate::model::User,
        secret: &[u8],
    ) -> Result<totp_rs::Totp, Error> {
        let label = account
            .email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .or_else(|| account.phone.as_ref().map(|p| p.as_str().to_owned()))
            .unwrap_or_else(|| account.id.to_string());
        engine(secret, &label, &self.inner.config.config.rp_name)
    }

    /// Confirms the pending enrolment with a first code from the app: the factor becomes
    /// active (required at every sign-in from now on) and the user's backup codes are
    /// (re)generated and returned, to be shown once. A wrong code is
    /// [`Error::InvalidCredentials`] and counts against the account's failure budget.
    pub async fn confirm(
        &self,
        user: UserId,
        code: &OneTimeCode,
        ctx: &RequestContext,
    ) -> Result<Vec<crate::crypto::BackupCode>, Error> {
        let inner = self.inner;
        super::check_failures(inner, user, ctx).await?;
        let pending = pending_factor(inner, user).await?;
        if !self.accept(&pending, code).await? {
            super::record_failure(inner, user, ctx, "totp").await?;
            return Err(Error::InvalidCredentials);
        }
        let mut active = pending.clone();
        active.status = FactorStatus::Active;
        inner.users.put_totp_factor(&active).await?;
        let codes = super::backup::generate(inner, user).await?;
        let event = AuthEvent::new(AuthEventKind::FactorAdded, ctx, inner.clock.now())
            .with_user(user)
            .with_method("totp");
        inner.audit_log.append(&event).await?;
        Ok(codes)
    }

    /// Removes a TOTP factor. Returns whether it existed.
    ///
    /// Administrative: no recent-sign-in or organization check. For a user's own request
    /// use [`Mfa::remove`](crate::Mfa::remove), which makes both.
    pub async fn remove(
        &self,
        user: UserId,
        factor: FactorId,
        ctx: &RequestContext,
    ) -> Result<bool, Error> {
        let inner = self.inner;
        let removed = inner.users.delete_totp_factor(user, factor).await?;
        if removed {
            crate::signin::rotate_stamp(inner, user).await?;
            let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, inner.clock.now())
                .with_user(user)
                .with_method("totp");
            inner.audit_log.append(&event).await?;
        }
        Ok(removed)
    }

    /// Checks a code against one factor and, if it matches a step not accepted before,
    /// records that step (atomically: of racing uses of one code exactly one is accepted).
    pub(crate) async fn accept(
        &self,
        factor: &TotpFactor,
        code: &OneTimeCode,
    ) -> Result<bool, Error> {
        let inner = self.inner;
        if code.secret().len() > 32 {
            return Ok(false);
        }
        let secret = inner
            .keyring
            .open(&factor.secret, &aad(factor.user_id, factor.id))?;
        let totp = engine(&secret, "check", "check")?;
        let typed: String = code
            .secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let typed = Zeroizing::new(typed);
        let now = u64::try_from(inner.clock.now().unix_secs()).unwrap_or(0);
        // The latest matching step in the window: a later code must never be shadowed by
        // an earlier step that happens to match as well.
        let origin = now / STEP_SECS;
        let window = origin.saturating_sub(u64::from(SKEW_STEPS))..=origin + u64::from(SKEW_STEPS);
        let mut matched = None;
        for step in window {
            let expected = Zeroizing::new(totp.generate(step * STEP_SECS).to_string());
            if crate::crypto::ct_eq(expected.as_bytes(), typed.as_bytes()) {
                matched = Some(step);
            }
        }
        let Some(step) = matched else {
            return Ok(false);
        };
        Ok(inner
            .users
            .advance_totp_step(factor.user_id, factor.id, step)
            .await?)
    }
}

/// `user`, or [`Error::NotFound`].
async fn account(inner: &Inner, user: UserId) -> Result<crate::model::User, Error> {
    inner
        .users
        .get_user(user)
        .await?
        .ok_or(Error::NotFound { what: "user" })
}

/// `user`'s enrolment awaiting its first code; [`Error::NotFound`] when there is none.
async fn pending_factor(inner: &Inner, user: UserId) -> Result<TotpFactor, Error> {
    inner
        .users
        .list_totp_factors(user)
        .await?
        .into_iter()
        .find(|f| f.status == FactorStatus::Pending)
        .ok_or(Error::NotFound {
            what: "totp enrolment",
        })
}

fn qr_png(totp: &totp_rs::Totp) -> Result<Vec<u8>, Error> {
    totp.to_qr_png()
        .map_err(|_| Error::invalid("rp_name", "too long for a QR code"))
}

/// RFC 4648 base32 without padding, as authenticator apps expect secrets typed by hand.
fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes a base32 TOTP secret as authenticator apps read it (RFC 4648; case, spaces and
/// padding forgiven), e.g. to compute codes in tests or to import an existing secret.
pub fn decode_base32(text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            b' ' | b'=' | b'-' => continue,
            _ => return Err(Error::invalid("secret", "is not base32")),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips() {
        let bytes = b"12345678901234567890";
        let text = base32_encode(bytes);
        assert_eq!(decode_base32(&text).unwrap().as_slice(), bytes);
        assert_eq!(
            decode_base32(&text.to_lowercase()).unwrap().as_slice(),
            bytes
        );
        assert!(decode_base32("not base32!").is_err());
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
