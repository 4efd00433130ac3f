//! Failure budgets: how many wrong secrets an account and a client may present before
//! sign-in attempts are refused (NIST SP 800-63B §5.2.2, checklist RL-07).
//!
//! Three budgets, each a [`FailureScope`]: the account with one client (tight, so one
//! client cannot lock the owner out from everywhere), the account from anywhere (loose: at
//! most 100, what many clients together can try), and the client (its failures only, since
//! a busy NAT signs many people in). Their counters live in the challenge store under
//! `rl:{scope}:…` through the [`RateLimiter`].

use crate::config::RateLimit;
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, User, UserId};
use crate::protect::{RateLimiter, ip_subject};
use crate::{Error, RequestContext};

/// Which failure budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureScope {
    /// One account from one client.
    AccountIp,
    /// One account from anywhere.
    Account,
    /// One client, whatever the account.
    Ip,
}

impl FailureScope {
    /// The counter's scope name (stored: changing one resets live budgets).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            FailureScope::AccountIp => "signin_fail_account_ip",
            FailureScope::Account => "signin_fail_account",
            FailureScope::Ip => "signin_fail_ip",
        }
    }

    /// Whether every attempt counts until a sign-in completes (the account's budgets), or
    /// only failures (the client's: a busy NAT signs many people in).
    const fn counts_every_attempt(self) -> bool {
        match self {
            FailureScope::AccountIp | FailureScope::Account => true,
            FailureScope::Ip => false,
        }
    }

    pub(crate) fn limit(self, inner: &Inner) -> RateLimit {
        let limits = &inner.config.config.limits;
        match self {
            FailureScope::AccountIp => limits.failures_per_account_ip,
            FailureScope::Account => limits.failures_per_account,
            FailureScope::Ip => limits.failures_per_ip,
        }
    }
}

/// One budget an attempt answers to: its scope and whom it counts.
struct Budget {
    scope: FailureScope,
    subject: String,
}

/// The budgets of an attempt on the account named by `identifier` (when known), and the
/// client's: the account's first.
fn budgets(identifier: Option<&str>, ctx: &RequestContext) -> Vec<Budget> {
    let mut budgets = Vec::with_capacity(3);
    if let Some(identifier) = identifier {
        budgets.push(Budget {
            scope: FailureScope::AccountIp,
            subject: account_ip_subject(identifier, ctx),
        });
        budgets.push(Budget {
            scope: FailureScope::Account,
            subject: identifier.to_owned(),
        });
    }
    budgets.extend(client_budget(ctx));
    budgets
}

/// The client's budget, when the client's address is known.
fn client_budget(ctx: &RequestContext) -> Option<Budget> {
    ctx.ip.map(|ip| Budget {
        scope: FailureScope::Ip,
        subject: ip_subject(ip),
    })
}

/// An attempt [`count_attempt`] counted: whose it is, and which of the account's budgets
/// it filled, so that its failure begins the lockout it completes.
#[derive(Debug)]
pub(crate) struct Attempt {
    user: Option<UserId>,
    spent: Vec<FailureScope>,
}

impl Attempt {
    /// An attempt counted against no account budget (a magic link's device code: the
    /// link's own attempts bound it).
    pub(crate) fn unbudgeted() -> Self {
        Attempt {
            user: None,
            spent: Vec::new(),
        }
    }
}

/// Counts an attempt against the account's and the client's failure budgets before the
/// secret is judged, refusing once a budget is spent: one atomic increment per budget, so
/// racing guesses cannot all slip past a check (checklist CON-02). A completed sign-in
/// empties the account's budget again ([`clear_account_failures`]); a wrong secret is
/// then only logged ([`log_failure`]), and locks the client out if this attempt filled
/// the account's budget.
///
/// `user` (when the caller knows the account) names the account in the login log, and a
/// known device (the account has a live session from the client's network) does not
/// answer to the account's budget of all clients: a crowd of guessing clients cannot lock
/// the owner out of the devices they use. A client on the denylist is refused first; one
/// on the allowlist answers to no per-address budget.
pub(crate) async fn count_attempt(
    inner: &Inner,
    identifier: &str,
    user: Option<UserId>,
    ctx: &RequestContext,
) -> Result<Attempt, Error> {
    count_attempt_in(inner, identifier, user, None, ctx).await
}

/// [`count_attempt`] with an organization's own lockout threshold (failures per account
/// and client), when it set one.
pub(crate) async fn count_attempt_in(
    inner: &Inner,
    identifier: &str,
    user: Option<UserId>,
    threshold: Option<u32>,
    ctx: &RequestContext,
) -> Result<Attempt, Error> {
    let standing = crate::protect::guard::screen(inner, ctx).await?;
    let limits = RateLimiter::new(inner);
    let mut spent = Vec::new();
    // The client's budget first: a throttled client spends nothing of the account's.
    let mut ordered = budgets(Some(identifier), ctx);
    ordered.sort_by_key(|budget| budget.scope != FailureScope::Ip);
    for budget in ordered {
        let (scope, mut limit) = (budget.scope, budget.scope.limit(inner));
        if let (FailureScope::AccountIp, Some(max)) = (scope, threshold) {
            limit.max = max;
        }
        if scope == FailureScope::Ip && standing.allowed {
            continue;
        }
        let counted = match scope.counts_every_attempt() {
            true => {
                limits
                    .hit_left(scope.as_str(), &budget.subject, &limit)
                    .await
            }
            false => limits
                .check(scope.as_str(), &budget.subject, &limit)
                .await
                .map(|()| 1),
        };
        match counted {
            Ok(0) => spent.push(scope),
            Ok(_) => {}
            // The account's budget of all clients is spent: its known devices still get in
            // (the sessions are read only now, on the refusal path).
            Err(_) if scope == FailureScope::Account && known_device(inner, user, ctx).await? => {}
            Err(err) => {
                crate::protect::guard::refused(inner, scope.as_str(), user, ctx).await?;
                return Err(err);
            }
        }
    }
    Ok(Attempt { user, spent })
}

/// Whether `user` (when known) has a live session from the client's network.
pub(crate) async fn known_device(
    inner: &Inner,
    user: Option<UserId>,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    match user {
        Some(user) => crate::protect::sends::has_session_from(inner, user, ctx).await,
        None => Ok(false),
    }
}

/// Logs a failed attempt that [`count_attempt`] already counted against the account, and
/// counts it against the client; locks the client out of the account if the attempt
/// filled its budget.
pub(crate) async fn log_failure(
    inner: &Inner,
    attempt: &Attempt,
    user: Option<UserId>,
    ctx: &RequestContext,
    method: &str,
) -> Result<(), Error> {
    if let Some(budget) = client_budget(ctx) {
        record(inner, &budget, None, ctx).await?;
    }
    audit_failure(inner, user, ctx, method, "invalid_credentials").await?;
    if let Some(user) = user.or(attempt.user) {
        for scope in &attempt.spent {
            crate::protect::guard::lock_out(inner, *scope, user, ctx).await?;
        }
    }
    Ok(())
}

/// Counts a wrong secret against the account's (when known) and the client's failure
/// budgets, and logs it.
pub(crate) async fn record_failure(
    inner: &Inner,
    identifier: Option<&str>,
    user: Option<UserId>,
    ctx: &RequestContext,
    method: &str,
) -> Result<(), Error> {
    record_failure_because(inner, identifier, user, ctx, method, "invalid_credentials").await
}

/// [`record_failure`], logged with `reason`.
pub(crate) async fn record_failure_because(
    inner: &Inner,
    identifier: Option<&str>,
    user: Option<UserId>,
    ctx: &RequestContext,
    method: &str,
    reason: &str,
) -> Result<(), Error> {
    audit_failure(inner, user, ctx, method, reason).await?;
    for budget in budgets(identifier, ctx) {
        record(inner, &budget, user, ctx).await?;
    }
    Ok(())
}

/// How many failures the client, or the account from anywhere, has in their windows (the
/// larger): the bot-check risk rule's measure.
pub(crate) async fn failures_so_far(
    inner: &Inner,
    identifier: &str,
    ctx: &RequestContext,
) -> Result<f64, Error> {
    let limiter = RateLimiter::new(inner);
    let mut most: f64 = 0.0;
    for budget in budgets(Some(identifier), ctx) {
        if budget.scope == FailureScope::AccountIp {
            continue;
        }
        let scope = budget.scope;
        let used = limiter
            .used(scope.as_str(), &budget.subject, &scope.limit(inner))
            .await?;
        most = most.max(used);
    }
    Ok(most)
}

/// Refuses before any work when the account's or the client's failure budget is spent.
pub(crate) async fn check_failures(
    inner: &Inner,
    identifier: &str,
    ctx: &RequestContext,
) -> Result<(), Error> {
    for budget in budgets(Some(identifier), ctx) {
        check(inner, &budget, ctx).await?;
    }
    Ok(())
}

/// Refuses before any work when the client's failure budget is spent (for ceremonies
/// that name no account up front: passkeys).
pub(crate) async fn check_client_failures(
    inner: &Inner,
    ctx: &RequestContext,
) -> Result<(), Error> {
    match client_budget(ctx) {
        Some(budget) => check(inner, &budget, ctx).await,
        None => Ok(()),
    }
}

/// A completed sign-in empties the account's failure budgets (NIST SP 800-63B §3.2.2):
/// called where every sign-in ends, never after a first factor that still needs a second
/// (clearing then would let someone with the password reset the count between guesses at
/// the second factor).
pub(crate) async fn clear_account_failures(
    inner: &Inner,
    user: &User,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let limits = RateLimiter::new(inner);
    for identifier in identifiers_of(user) {
        for budget in budgets(Some(&identifier), ctx) {
            let scope = budget.scope;
            if scope.counts_every_attempt() {
                limits
                    .reset(scope.as_str(), &budget.subject, &scope.limit(inner))
                    .await?;
            }
        }
    }
    crate::protect::guard::cleared(inner, user.id, ctx).await;
    Ok(())
}

/// Every identifier an account's budgets may be kept under: its address, its number, its
/// id.
pub(crate) fn identifiers_of(user: &User) -> Vec<String> {
    [
        user.email.as_ref().map(|e| e.as_str().to_owned()),
        user.phone.as_ref().map(|p| p.as_str().to_owned()),
        Some(user.id.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Counts a failure against one budget; the failure that fills it locks the client out
/// of the account (`user`'s), or throttles the client.
async fn record(
    inner: &Inner,
    budget: &Budget,
    user: Option<UserId>,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let scope = budget.scope;
    let limit = scope.limit(inner);
    if scope == FailureScope::Ip && crate::protect::guard::screen(inner, ctx).await?.allowed {
        return Ok(());
    }
    let level = RateLimiter::new(inner)
        .count(scope.as_str(), &budget.subject, &limit)
        .await?;
    // Exactly the failure that fills the budget: later ones find it full already.
    let max = f64::from(limit.max);
    let filled = level > max - 1.0 + 1e-9 && level <= max + 1e-9;
    if filled {
        match (scope, user) {
            (FailureScope::Ip, _) => {
                crate::protect::guard::throttled(inner, scope.as_str(), &limit, ctx).await?;
            }
            (_, Some(user)) => crate::protect::guard::lock_out(inner, scope, user, ctx).await?,
            (_, None) => {}
        }
    }
    Ok(())
}

async fn check(inner: &Inner, budget: &Budget, ctx: &RequestContext) -> Result<(), Error> {
    let scope = budget.scope;
    if scope == FailureScope::Ip && crate::protect::guard::screen(inner, ctx).await?.allowed {
        return Ok(());
    }
    let checked = RateLimiter::new(inner)
        .check(scope.as_str(), &budget.subject, &scope.limit(inner))
        .await;
    if checked.is_err() {
        crate::protect::guard::refused(inner, scope.as_str(), None, ctx).await?;
    }
    checked
}

async fn audit_failure(
    inner: &Inner,
    user: Option<UserId>,
    ctx: &RequestContext,
    method: &str,
    reason: &str,
) -> Result<(), Error> {
    let mut event = AuthEvent::new(AuthEventKind::SignInFailed, ctx, inner.clock.now())
        .with_method(method)
        .with_reason(reason);
    if let Some(user) = user {
        event = event.with_user(user);
    }
    inner.audit_log.append(&event).await?;
    Ok(())
}

/// The subject an account's failure budgets are kept under, whatever the method: its
/// email address, else its phone, else its id.
pub(crate) fn account_subject(user: &User) -> String {
    user.email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or_else(|| user.phone.as_ref().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| user.id.to_string())
}

/// An account together with the client's address (calls without one share one subject).
fn account_ip_subject(identifier: &str, ctx: &RequestContext) -> String {
    let ip = ctx.ip.map_or_else(|| "unknown".to_owned(), ip_subject);
    format!("{identifier}|{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_their_stored_names_and_only_the_client_counts_failures_alone() {
        // The names are part of stored counter keys: renaming one would reset budgets.
        assert_eq!(FailureScope::AccountIp.as_str(), "signin_fail_account_ip");
        assert_eq!(FailureScope::Account.as_str(), "signin_fail_account");
        assert_eq!(FailureScope::Ip.as_str(), "signin_fail_ip");
        assert!(FailureScope::AccountIp.counts_every_attempt());
        assert!(FailureScope::Account.counts_every_attempt());
        assert!(!FailureScope::Ip.counts_every_attempt());
    }

    #[test]
    fn an_attempt_answers_to_the_account_first_then_the_client() {
        let ctx = RequestContext::new().with_ip([203, 0, 113, 7].into());
        let scopes: Vec<FailureScope> = budgets(Some("ana@example.com"), &ctx)
            .iter()
            .map(|b| b.scope)
            .collect();
        assert_eq!(
            scopes,
            [
                FailureScope::AccountIp,
                FailureScope::Account,
                FailureScope::Ip
            ]
        );
        assert!(budgets(None, &RequestContext::new()).is_empty());
    }
}
