//! Passwords: sign-up, sign-in and change, hashed with Argon2id (security invariant 10).
//!
//! - **Hashing.** Argon2id, m = 19 456 KiB, t = 2, p = 1 (OWASP's first choice), stored as
//!   PHC strings. A hash made with weaker parameters is replaced at the next successful
//!   sign-in. Hashing runs on Tokio's blocking pool, at most one per core at a time (each
//!   holds 19 MiB, kept by its thread for the next hash), so password traffic does not
//!   stall the executor; a caller that gives up keeps its slot until its hash is done.
//!   Stored hashes asking for more than 256 MiB, 10 passes or 16 lanes never match.
//! - **Policy** (NIST SP 800-63B rev. 4 §3.1.1.2): length counted in code points, at least
//!   15 when the password is the only factor and 8 when the account has a second one,
//!   at most `max_length` (refused before any hashing); no composition rules, no
//!   truncation. Refused: passwords made of one repeated character or one run
//!   (`aaaaaaaa…`, `123456789…`, `zyxwvu…`), and passwords that are or contain the
//!   account's address, name or the application's name.
//! - **Imports.** With feature `legacy-hashes`, hashes brought from other systems verify
//!   too — bcrypt (`$2a$`/`$2b$`/`$2y$`), Django's `pbkdf2_sha256$…`, better-auth's scrypt
//!   `salt:key` — and are replaced with Argon2id at the first successful sign-in. Store
//!   them as they are in [`User::password_hash`](crate::model::User::password_hash).
//! - **Timing.** Signing in to an unknown account, or one without a password, verifies
//!   against a dummy hash of the policy's cost: the answer and its time are the same as
//!   for a wrong password on an account hashed at the policy (an imported or weaker hash
//!   costs what it costs, until its first sign-in replaces it).
//! - **Budgets.** Every attempt is counted against the address's and the client's failure
//!   budgets before any hashing, in one atomic increment each, so racing guesses cannot
//!   slip past; while a budget is spent the answer is [`Error::RateLimited`]. A completed
//!   sign-in empties the address's budget.

mod hashing;

pub(crate) use hashing::slots;
pub use hashing::{M_COST, P_COST, T_COST};
use hashing::{Verdict, hash, normalized, up_to_policy, verify};

use serde::{Deserialize, Serialize};

use crate::crypto::{Password, PasswordChangeToken, SecretPurpose, random_token};
use crate::directory::orgs::{Method, allow};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, Email, FactorStatus, OrgId, UserId,
};
use crate::signin::{
    AuthMethod, Deferred, PasswordChangeChallenge, Proven, SignIn, complete_first_factor,
    complete_first_factor_then,
};
use crate::{Error, RequestContext, StoreError};

/// A sign-in waiting for a breached password's replacement.
#[derive(Serialize, Deserialize)]
struct PendingChange {
    user_id: UserId,
    /// The account's security stamp when the password was proven.
    stamp: u64,
    org_id: Option<OrgId>,
}

/// Holds a sign-in whose password was found breached until a new one is chosen
/// ([`Passwords::change_for_sign_in`]).
async fn change_required(
    inner: &Inner,
    user: &crate::model::User,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    let token = random_token()?;
    let hash = inner
        .hasher
        .hash(SecretPurpose::PasswordChange, token.as_bytes());
    let pending = PendingChange {
        user_id: user.id,
        stamp: user.security_stamp,
        org_id: ctx.org_id,
    };
    let value = serde_json::to_vec(&pending)
        .map_err(|_| Error::Internal("serializing a password change"))?;
    let ttl = inner.config.config.ttl.mfa_token;
    let now = inner.clock.now();
    let key = ChallengeKey::hashed(ChallengeKind::PasswordChange, &hash);
    if !inner
        .challenges
        .insert(&key, &value, now + ttl, now)
        .await?
    {
        return Err(Error::Conflict {
            what: "password_change",
        });
    }
    Ok(SignIn::PasswordChangeRequired(PasswordChangeChallenge {
        change_token: PasswordChangeToken::new(token.as_str()),
        expires_in: ttl,
    }))
}

/// What the breach lists say of a password.
enum Breach {
    Clean,
    Breached,
    /// The checker could not answer.
    Unknown,
}

/// The bot check of a password sign-in: always for an organization that asks, otherwise
/// once the client or the account has failed `bot_check_after` times; never from a device
/// the account signed in from before.
async fn bot_gate(
    inner: &Inner,
    settings: &crate::directory::SecuritySettings,
    identifier: &str,
    user: Option<UserId>,
    ctx: &RequestContext,
) -> Result<(), Error> {
    if inner.bot_check.is_none() {
        return Ok(());
    }
    let risky = match settings.bot_check {
        crate::directory::BotCheckRule::Always => true,
        _ => {
            super::failures_so_far(inner, identifier, ctx).await?
                >= f64::from(inner.config.config.protection.bot_check_after)
        }
    };
    // The account's sessions are read only when a check would be asked for.
    let known = risky && super::known_device(inner, user, ctx).await?;
    crate::protect::bot::gate(inner, risky && !known, user, ctx).await?;
    Ok(())
}

/// What a new password must not resemble.
#[derive(Debug, Default)]
struct Context<'a> {
    email: Option<&'a Email>,
    name: Option<&'a str>,
    app: &'a str,
}

/// Passwords (`auth.passwords()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Passwords<'a> {
    inner: &'a Inner,
}

impl<'a> Passwords<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Passwords { inner }
    }

    /// Starts a sign-up with an email address and a password: emails a code to the
    /// address, and [`SignUps::confirm`](crate::SignUps::confirm) with it makes the
    /// account (the address proven) and signs it in. No account exists before that, so
    /// nobody can hold one for an address they do not receive mail at. An address that
    /// has an account answers exactly the same (its owner gets a notice instead of a code,
    /// and the request never verifies): the answer tells nobody who has an account.
    ///
    /// Sign-ups are counted per client and for everyone before the password is screened
    /// or hashed ([`Error::RateLimited`]). Errors: [`Error::InvalidInput`] for a bad
    /// address or a password the policy refuses (the reason says which rule, the same for
    /// every address).
    pub async fn sign_up(
        &self,
        email: &str,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<crate::Sent, Error> {
        let inner = self.inner;
        allow(inner, ctx.org_id, Method::Password).await?;
        let email = Email::parse(email)?;
        crate::flows::sso::enforce_sso(inner, &email).await?;
        let ctx = &super::sign_up::spend_budget(inner, ctx).await?;
        let context = Context {
            email: Some(&email),
            name: None,
            app: &inner.config.config.rp_name,
        };
        self.check(password, false, &context)?;
        self.screen(password).await?;
        let account = super::sign_up::PendingAccount {
            user_id: UserId::generate(),
            name: None,
            password_hash: Some(hash(inner, password).await?),
            passkey: None,
        };
        super::sign_up::start(inner, email, &account, ctx).await
    }

    /// Signs in with an email address and a password. Every failure — unknown address, no
    /// password, wrong password, blocked account — is [`Error::InvalidCredentials`] after
    /// the same Argon2id work; [`Error::RateLimited`] (before any hashing) once the address
    /// or the client failed too often.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        let settings = allow(inner, ctx.org_id, Method::Password).await?.security;
        let Ok(email) = Email::parse(email) else {
            return Err(Error::InvalidCredentials);
        };
        crate::flows::sso::enforce_sso(inner, &email).await?;
        if password.secret().len() > inner.config.config.passwords.max_length * 4 {
            return Err(Error::InvalidCredentials);
        }
        let user = inner.users.get_user_by_email(&email).await?;
        let user_id = user.as_ref().map(|u| u.id);
        // Before anything is counted or hashed: a script without a proof spends nothing.
        bot_gate(inner, &settings, email.as_str(), user_id, ctx).await?;
        let attempt = super::count_attempt_in(
            inner,
            email.as_str(),
            user_id,
            settings.lockout_threshold,
            ctx,
        )
        .await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verdict = verify(inner, password, stored.as_ref()).await?;
        if verdict == Verdict::Mismatch {
            super::log_failure(inner, &attempt, user_id, ctx, "pwd").await?;
            return Err(Error::InvalidCredentials);
        }
        let Some(mut user) = user else {
            return Err(Error::InvalidCredentials);
        };
        crate::signin::may_sign_in(inner, &user)?;
        if self
            .breached_at_sign_in(&user, password, &settings, ctx)
            .await?
        {
            return change_required(inner, &user, ctx).await;
        }
        if verdict == Verdict::MatchedRaw || stored.is_some_and(|h| !up_to_policy(h.as_str())) {
            // A weaker (or imported) hash is replaced now that the password is in hand.
            user.password_hash = Some(hash(inner, password).await?);
            user.updated_at = inner.clock.now();
            match inner.users.update_user(&user).await {
                Ok(_) | Err(StoreError::Stale) => {}
                Err(err) => return Err(err.into()),
            }
        }
        // The password was checked against the account as read: if its credentials changed
        // since (a reset, a claim by the address's owner), this sign-in is void.
        complete_first_factor(inner, Proven::by(&user), AuthMethod::Password, None, ctx).await
    }

    /// Changes a signed-in user's password: the current one must be right (a wrong one
    /// counts like a failed sign-in), the new one must pass the policy. Every other
    /// session of the user ends; `keep` (the caller's own session) stays.
    pub async fn change(
        &self,
        user: UserId,
        current: &Password,
        new: &Password,
        keep: Option<crate::SessionId>,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let inner = self.inner;
        let mut account = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        let subject = super::account_subject(&account);
        let attempt = super::count_attempt(inner, &subject, Some(user), ctx).await?;
        if verify(inner, current, account.password_hash.as_ref()).await? == Verdict::Mismatch {
            super::log_failure(inner, &attempt, Some(user), ctx, "pwd").await?;
            return Err(Error::InvalidCredentials);
        }
        let has_mfa = self.has_second_factor(user).await?;
        let context = Context {
            email: account.email.as_ref(),
            name: account.name.as_deref(),
            app: &inner.config.config.rp_name,
        };
        self.check(new, has_mfa, &context)?;
        self.screen(new).await?;
        account.password_hash = Some(hash(inner, new).await?);
        account.rotate_security_stamp();
        account.updated_at = inner.clock.now();
        inner
            .users
            .update_user(&account)
            .await
            .map_err(Error::from)?;
        super::clear_account_failures(inner, &account, ctx).await?;
        let now = inner.clock.now();
        for session in inner.sessions.list_user_sessions(user, now).await? {
            if Some(session.id) != keep {
                inner.sessions.revoke_session(session.id, now).await?;
            }
        }
        let event = AuthEvent::new(AuthEventKind::PasswordChanged, ctx, now).with_user(user);
        inner.audit_log.append(&event).await?;
        Ok(())
    }

    /// Finishes a sign-in whose password was found breached
    /// ([`SignIn::PasswordChangeRequired`]): the new password must pass the policy and
    /// the breach lists; it is set once the whole sign-in succeeds (after the MFA step,
    /// when one is due), which ends every other session of the account. The token works
    /// once; a refused new password leaves it usable. [`Error::InvalidToken`] for an
    /// unknown, used or expired token, or one whose account changed credentials since.
    pub async fn change_for_sign_in(
        &self,
        token: &PasswordChangeToken,
        new: &Password,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        if token.secret().len() > 128 {
            return Err(Error::InvalidToken);
        }
        let (key, record) = inner
            .secret_record(
                ChallengeKind::PasswordChange,
                SecretPurpose::PasswordChange,
                token.secret().as_bytes(),
                false,
            )
            .await?
            .ok_or(Error::InvalidToken)?;
        let pending: PendingChange = serde_json::from_slice(&record.value).map_err(|_| {
            Error::Store(StoreError::Corrupt {
                what: "password change",
            })
        })?;
        let user = inner
            .users
            .get_user(pending.user_id)
            .await?
            .ok_or(Error::InvalidToken)?;
        if user.security_stamp != pending.stamp {
            return Err(Error::InvalidToken);
        }
        let context = Context {
            email: user.email.as_ref(),
            name: user.name.as_deref(),
            app: &inner.config.config.rp_name,
        };
        self.check(new, self.has_second_factor(user.id).await?, &context)?;
        self.screen(new).await?;
        if inner
            .challenges
            .take(&key, inner.clock.now())
            .await?
            .is_none()
        {
            return Err(Error::InvalidToken);
        }
        let hash = hash(inner, new).await?;
        let deferred = Deferred::new_password(inner, user.id, &hash)?;
        let mut ctx = ctx.clone();
        ctx.org_id = pending.org_id;
        complete_first_factor_then(
            inner,
            Proven::by(&user),
            AuthMethod::Password,
            None,
            &ctx,
            deferred,
        )
        .await
    }

    /// Emails a password-reset code. Answers the same whether or not the address has an
    /// account (only an existing, unblocked one gets mail), under the same send budgets as
    /// sign-in codes. [`reset`](Self::reset) uses the code.
    pub async fn send_reset(
        &self,
        email: &str,
        ctx: &RequestContext,
    ) -> Result<crate::Sent, Error> {
        allow(self.inner, ctx.org_id, Method::Password).await?;
        crate::flows::sso::enforce_sso(self.inner, &Email::parse(email)?).await?;
        crate::flows::codes::Codes::new(self.inner)
            .email()
            .send_reset(email, ctx)
            .await
    }

    /// Sets a new password with a reset code, then signs in — through the MFA step when
    /// the account has a second factor: a reset never bypasses MFA. Every session of the
    /// account ends. The rules that depend only on the request (length, the address, the
    /// application's name, the breach list) are checked before the code is used, so such
    /// a refusal leaves the code valid; the account's own (the longer minimum without a
    /// second factor, its name) after the code is judged but before anything changes, and
    /// such a refusal uses the code up. The code proves the address: an
    /// account holding nothing else proven becomes the prover's as with a sign-in by code
    /// (see [`flows`](crate::flows)); an account whose address was never proven but that
    /// holds something proven (another verified identifier, a passkey, an active TOTP
    /// factor) cannot be reset by that address ([`Error::InvalidCredentials`]).
    ///
    /// Errors: [`Error::InvalidInput`] for a password the policy refuses; otherwise those
    /// of [`CodeChannel::verify`](crate::CodeChannel::verify).
    pub async fn reset(
        &self,
        request_id: crate::model::RequestId,
        code: &crate::crypto::OneTimeCode,
        new: &Password,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        let pending = super::load(inner, request_id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let email = Email::parse(&pending.state.identifier)?;
        // Before the code is judged, only rules that come from the request itself: the
        // account's rules (its second factors, its name) would tell a guesser about it.
        let request_rules = Context {
            email: Some(&email),
            name: None,
            app: &inner.config.config.rp_name,
        };
        self.check(new, true, &request_rules)?;
        self.screen(new).await?;
        let codes = crate::flows::codes::Codes::new(inner);
        let (state, ctx) = codes
            .email()
            .redeem(request_id, code, super::Purpose::PasswordReset, ctx)
            .await?;
        let recipient = state.recipient()?;
        // The account's own rules (a longer minimum without a second factor, its name)
        // before anything about the account changes; the code is used up either way.
        let account = inner
            .users
            .get_user_by_email(&email)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let account_rules = Context {
            email: Some(&email),
            name: account.name.as_deref(),
            app: &inner.config.config.rp_name,
        };
        self.check(
            new,
            self.has_second_factor(account.id).await?,
            &account_rules,
        )?;
        let mut user = None;
        for _ in 0..super::MAX_RETRIES {
            let account = inner
                .users
                .get_user_by_email(&email)
                .await?
                .filter(|u| !u.blocked)
                .ok_or(Error::InvalidCredentials)?;
            match super::mark_verified(inner, account, &recipient, super::Proof::Reset, &ctx).await
            {
                Err(Error::Store(StoreError::Stale)) => continue,
                Ok(found) => {
                    user = found;
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        let user = user.ok_or(Error::InvalidCredentials)?;
        // The new password takes effect, and the sessions end, only when the sign-in
        // completes: after the MFA step when the account has a second factor.
        let deferred =
            crate::signin::Deferred::new_password(inner, user, &hash(inner, new).await?)?;
        crate::signin::complete_first_factor_then(
            inner,
            Proven::current(user),
            AuthMethod::Email,
            None,
            &ctx,
            deferred,
        )
        .await
    }

    /// Refuses a password on the bundled list of common ones (unless configured off) or
    /// that the configured checker knows to attackers. A checker that cannot answer lets
    /// the password through, with a warning.
    async fn screen(&self, password: &Password) -> Result<(), Error> {
        match self.breach(password).await {
            Breach::Breached => Err(Error::invalid(
                "password",
                "is too common or appeared in a data breach; choose another",
            )),
            Breach::Clean => Ok(()),
            Breach::Unknown => {
                tracing::warn!(
                    "the breached-password check could not answer; a new password was let through"
                );
                Ok(())
            }
        }
    }

    /// Whether a password is common (the bundled list, when
    /// [`refuse_common`](crate::PasswordPolicy::refuse_common)) or breached (the
    /// configured checker), or whether the checker could not say.
    async fn breach(&self, password: &Password) -> Breach {
        // What is hashed is the normalized form: screen that (a full-width "ｐａｓｓｗｏｒｄ"
        // is "password").
        let password = &Password::new(normalized(password).as_str());
        if self.inner.config.config.passwords.refuse_common
            && crate::CommonPasswords.contains(password)
        {
            return Breach::Breached;
        }
        let Some(checker) = &self.inner.breached else {
            return Breach::Clean;
        };
        match checker.is_breached(password).await {
            Ok(false) => Breach::Clean,
            Ok(true) => Breach::Breached,
            Err(err) => {
                tracing::warn!(error = %err, "the breached-password checker could not answer");
                Breach::Unknown
            }
        }
    }

    /// Checks a password that just signed in against the breach lists: logs what it found
    /// and returns whether the user must change it before a session opens (the
    /// organization's [`BreachedAction`](crate::directory::BreachedAction)). A checker that
    /// cannot answer is logged and, where the organization fails closed, refuses the
    /// sign-in ([`Error::Unavailable`]).
    async fn breached_at_sign_in(
        &self,
        user: &crate::model::User,
        password: &Password,
        settings: &crate::directory::SecuritySettings,
        ctx: &RequestContext,
    ) -> Result<bool, Error> {
        use crate::directory::{BreachedAction, FailMode};
        let inner = self.inner;
        let (reason, outcome) = match self.breach(password).await {
            Breach::Clean => return Ok(false),
            Breach::Breached => match settings.breached_password {
                BreachedAction::Require => ("change_required", Ok(true)),
                _ => ("warned", Ok(false)),
            },
            Breach::Unknown => match settings.breach_checker_down {
                FailMode::Closed => (
                    "checker_unavailable",
                    Err(Error::Unavailable {
                        service: "the breached-password checker",
                        source: "it could not answer and the organization fails closed".into(),
                    }),
                ),
                _ => ("checker_unavailable", Ok(false)),
            },
        };
        let event = AuthEvent::new(AuthEventKind::BreachedPassword, ctx, inner.clock.now())
            .with_user(user.id)
            .with_method("pwd")
            .with_reason(reason);
        inner.audit_log.append(&event).await?;
        outcome
    }

    /// Whether sign-in asks this account for a second factor: the same rule as the MFA
    /// step's (an active TOTP factor), so the shorter minimum never applies to a password
    /// that signs in alone.
    async fn has_second_factor(&self, user: UserId) -> Result<bool, Error> {
        Ok(self
            .inner
            .users
            .list_totp_factors(user)
            .await?
            .iter()
            .any(|f| f.status == FactorStatus::Active))
    }

    /// Checks a candidate password against the policy for an account with (`has_mfa`) or
    /// without a second factor, without hashing it. The reason names the rule.
    pub fn check_policy(
        &self,
        password: &Password,
        has_mfa: bool,
        email: Option<&Email>,
    ) -> Result<(), Error> {
        let context = Context {
            email,
            name: None,
            app: &self.inner.config.config.rp_name,
        };
        self.check(password, has_mfa, &context)
    }

    fn check(
        &self,
        password: &Password,
        has_mfa: bool,
        context: &Context<'_>,
    ) -> Result<(), Error> {
        let policy = &self.inner.config.config.passwords;
        let bad = |reason: String| Err(Error::invalid("password", reason));
        // The same byte cap as sign-in's, on the text as typed, before any work on it.
        if password.secret().len() > policy.max_length * 4 {
            return bad(format!("must be at most {} characters", policy.max_length));
        }
        let normalized = normalized(password);
        let text = normalized.as_str();
        // Counted both as typed and normalized, the stricter count deciding: one
        // character that NFKC expands to eighteen is still one.
        let (typed, compared) = (password.secret().chars().count(), text.chars().count());
        let min = if has_mfa {
            policy.min_length_with_mfa
        } else {
            policy.min_length
        };
        if typed.min(compared) < min {
            return bad(format!("must be at least {min} characters"));
        }
        if typed.max(compared) > policy.max_length {
            return bad(format!("must be at most {} characters", policy.max_length));
        }
        if trivial(text) {
            return bad("must not be one repeated character or a simple sequence".into());
        }
        let lower = text.to_lowercase();
        let mut words: Vec<String> = vec![context.app.to_lowercase()];
        if let Some(email) = context.email {
            words.push(email.as_str().to_owned());
            words.push(email.local_part().to_owned());
        }
        if let Some(name) = context.name {
            words.push(name.to_lowercase());
        }
        if words
            .iter()
            .any(|w| w.chars().count() >= 4 && lower.contains(w.as_str()))
        {
            return bad(
                "must not contain your address, your name or the application's name".into(),
            );
        }
        Ok(())
    }
}

/// One character repeated, or one steady run up or down (`abcdef…`, `987654…`).
pub(crate) fn trivial(text: &str) -> bool {
    let chars: Vec<u32> = text.chars().map(u32::from).collect();
    let Some(first) = chars.first() else {
        return true;
    };
    if chars.iter().all(|c| c == first) {
        return true;
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(w[1]) - i64::from(w[0]))
        .collect();
    steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_passwords_are_one_repeat_or_one_run() {
        for trivial_one in [
            "aaaaaaaaaaaaaaaa",
            "abcdefghijklmnop",
            "zyxwvutsrqponmlk",
            "9876543210",
        ] {
            assert!(trivial(trivial_one), "{trivial_one}");
        }
        // A run that wraps (9 → 0) or changes direction is not one run.
        for fine in [
            "123456789012345",
            "0123456789abcdef",
            "correct horse battery staple",
        ] {
            assert!(!trivial(fine), "{fine}");
        }
    }
}
