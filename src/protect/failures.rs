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

    fn limit(self, inner: &Inner) -> RateLimit {
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

/// Counts an attempt against the account's and the client's failure budgets before the
/// secret is judged, refusing once a budget is spent: one atomic increment per budget, so
/// racing guesses cannot all slip past a check (checklist CON-02). A completed sign-in
/// empties the account's budget again ([`clear_account_failures`]); a wrong secret is
/// then only logged ([`log_failure`]).
pub(crate) async fn count_attempt(
    inner: &Inner,
    identifier: &str,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let limits = RateLimiter::new(inner);
    for budget in budgets(Some(identifier), ctx) {
        let (scope, limit) = (budget.scope.as_str(), budget.scope.limit(inner));
        if budget.scope.counts_every_attempt() {
            limits.hit(scope, &budget.subject, &limit).await?;
        } else {
            limits.check(scope, &budget.subject, &limit).await?;
        }
    }
    Ok(())
}

/// Logs a failed attempt that [`count_attempt`] already counted against the account, and
/// counts it against the client.
pub(crate) async fn log_failure(
    inner: &Inner,
    user: Option<UserId>,
    ctx: &RequestContext,
    method: &str,
) -> Result<(), Error> {
    if let Some(budget) = client_budget(ctx) {
        record(inner, &budget).await?;
    }
    audit_failure(inner, user, ctx, method, "invalid_credentials").await
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
    for budget in budgets(identifier, ctx) {
        record(inner, &budget).await?;
    }
    audit_failure(inner, user, ctx, method, reason).await
}

/// Refuses before any work when the account's or the client's failure budget is spent.
pub(crate) async fn check_failures(
    inner: &Inner,
    identifier: &str,
    ctx: &RequestContext,
) -> Result<(), Error> {
    for budget in budgets(Some(identifier), ctx) {
        check(inner, &budget).await?;
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
        Some(budget) => check(inner, &budget).await,
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
    let identifiers = [
        user.email.as_ref().map(|e| e.as_str().to_owned()),
        user.phone.as_ref().map(|p| p.as_str().to_owned()),
        Some(user.id.to_string()),
    ];
    let limits = RateLimiter::new(inner);
    for identifier in identifiers.into_iter().flatten() {
        for budget in budgets(Some(&identifier), ctx) {
            let scope = budget.scope;
            if scope.counts_every_attempt() {
                limits
                    .reset(scope.as_str(), &budget.subject, &scope.limit(inner))
                    .await?;
            }
        }
    }
    Ok(())
}

async fn record(inner: &Inner, budget: &Budget) -> Result<(), Error> {
    let scope = budget.scope;
    RateLimiter::new(inner)
        .record_failure(scope.as_str(), &budget.subject, &scope.limit(inner))
        .await?;
    Ok(())
}

async fn check(inner: &Inner, budget: &Budget) -> Result<(), Error> {
    let scope = budget.scope;
    RateLimiter::new(inner)
        .check(scope.as_str(), &budget.subject, &scope.limit(inner))
        .await
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
