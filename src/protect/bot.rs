//! [`BotCheck`]: a challenge a person passes and a script does not.

use async_trait::async_trait;

use crate::crypto::BotProof;
use crate::{Error, RequestContext};

/// Verifies a client's answer to a bot check (a CAPTCHA or a proof-of-work token), which
/// the page sends and the application puts in
/// [`RequestContext::bot_proof`](crate::RequestContext::bot_proof).
///
/// The engine asks for one where a risk rule fires, never from a device the account
/// signed in from before:
///
/// - a password sign-in, once the client or the account has
///   [`Protection::bot_check_after`](crate::Protection::bot_check_after) failures in their
///   budgets' windows;
/// - a sign-up, or a link or code sent, once the client has used half its budget of them
///   ([`Limits::sign_ups_per_ip`](crate::Limits::sign_ups_per_ip),
///   [`Limits::sends_per_ip`](crate::Limits::sends_per_ip));
/// - every one of these, for an organization whose
///   [`SecuritySettings::bot_check`](crate::directory::SecuritySettings::bot_check) is
///   `always`;
/// - a text to an unknown device past [`SmsPolicy::global_soft`](crate::SmsPolicy::global_soft).
///
/// Without a `BotCheck` none is asked for (texts past the soft level then wait until the
/// budget drains). The built-in one is [`ProofOfWork`](crate::protect::ProofOfWork);
/// feature `captcha` adds Turnstile, hCaptcha and reCAPTCHA.
#[async_trait]
pub trait BotCheck: Send + Sync + std::fmt::Debug {
    /// Whether `proof` shows a person is behind the request. An error (the checking
    /// service is down) refuses the request.
    async fn verify(&self, proof: &BotProof, ctx: &RequestContext) -> Result<bool, Error>;
}

/// Asks for a bot check when `risky` (a risk rule fired, or the organization always
/// asks) and one is configured: a missing or refused proof, or a checking service that
/// cannot answer (fail closed), is [`Error::BotCheckRequired`], logged as
/// `bot_check_failed` with `missing`, `invalid` or `unavailable`. Returns whether a proof
/// was checked and passed (a request that already passed one is not asked again).
pub(crate) async fn gate(
    inner: &crate::engine::Inner,
    risky: bool,
    user: Option<crate::model::UserId>,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    let (true, Some(check), false) = (risky, &inner.bot_check, ctx.bot_checked) else {
        return Ok(false);
    };
    let reason = match &ctx.bot_proof {
        None => "missing",
        Some(proof) => match check.verify(proof, ctx).await {
            Ok(true) => return Ok(true),
            Ok(false) => "invalid",
            Err(err) => {
                tracing::warn!(error = %err, "the bot check could not answer: refused");
                "unavailable"
            }
        },
    };
    let mut event = crate::model::AuthEvent::new(
        crate::model::AuthEventKind::BotCheckFailed,
        ctx,
        inner.clock.now(),
    )
    .with_reason(reason);
    if let Some(user) = user {
        event = event.with_user(user);
    }
    super::guard::log_refusal(inner, event).await?;
    Err(Error::BotCheckRequired)
}

/// The bot check of a sign-up or a send, counted against the client's budget `scope`:
/// asked for once the client used half of it, or always where the organization says so.
/// Returns whether a proof was checked and passed.
pub(crate) async fn gate_client(
    inner: &crate::engine::Inner,
    scope: &str,
    limit: &crate::RateLimit,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    if inner.bot_check.is_none() {
        return Ok(false);
    }
    let always = crate::directory::Orgs::new(inner)
        .settings(ctx.org_id)
        .await?
        .security
        .bot_check
        == crate::directory::BotCheckRule::Always;
    let risky = always || half_spent(inner, scope, limit, ctx).await?;
    gate(inner, risky, None, ctx).await
}

/// Whether a client has used at least half of a per-address budget: the risk rule for
/// sign-ups and sends.
async fn half_spent(
    inner: &crate::engine::Inner,
    scope: &str,
    limit: &crate::RateLimit,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    let Some(ip) = ctx.ip else {
        return Ok(false);
    };
    let used = super::RateLimiter::new(inner)
        .used(scope, &super::ip_subject(ip), limit)
        .await?;
    Ok(used >= f64::from(limit.max) / 2.0)
}
