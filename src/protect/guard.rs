//! Lockouts and throttled addresses: when a failure budget is spent, what is recorded,
//! who is told, and how it is lifted ([`Shield`], `auth.protection()`).
//!
//! The budgets' counters (through [`RateLimiter`]) are what refuse; this module names the
//! moments they fill. A client whose failures spend an account's budget is locked out of
//! that account for the window: `account_locked` is logged, the owner gets one notice per
//! window and client (the time, the address, the device, and a link that lifts the
//! lockout and, if it was not them, starts a password reset), and the lockout is listed
//! for administrators until it ends or is lifted. A client that spends its own budget
//! (failed sign-ins, sign-ups or sends per address) is throttled the same way
//! (`ip_throttled`). Every refusal is logged (`rate_limited`, with the budget's name).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::RateLimit;
use crate::crypto::{SecretPurpose, UnblockToken, random_token};
use crate::delivery::{Activity, Message, MessageKind, Recipient, SecretLink};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, RequestId, User, UserId,
};
use crate::protect::failures::FailureScope;
use crate::protect::{RateLimiter, ip_subject};
use crate::{Error, RequestContext, StoreError, Timestamp};

/// How many lockouts and throttles the list for administrators holds; past it the oldest
/// leave the list (their counters still refuse until they drain).
pub const MAX_LISTED_BLOCKS: usize = 1000;

/// How long the link in a lockout notice works.
const UNBLOCK_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What kind of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlockKind {
    /// A client is locked out of one account (its failures spent the account's budget);
    /// with `network` `*`, every client is, for passwords and codes (the account's budget
    /// of all clients together, NIST's cap of 100).
    AccountLockout,
    /// A client address (an IPv6 client by its /64) spent its own budget.
    IpThrottle,
}

/// A lockout or throttle in force, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Block {
    /// Names it for [`Shield::lift`].
    pub id: String,
    /// Lockout or throttle.
    pub kind: BlockKind,
    /// The budget that was spent (`signin_fail_account_ip`, `signin_fail_ip`,
    /// `sign_up_ip`…).
    pub scope: String,
    /// The account, for a lockout.
    pub user_id: Option<UserId>,
    /// The address whose request spent the budget.
    pub ip: Option<IpAddr>,
    /// What is blocked: an address, an IPv6 /64, or `*` for every client.
    pub network: String,
    /// When the budget was spent.
    pub since: Timestamp,
    /// When it has drained, unless lifted sooner.
    pub until: Timestamp,
}

/// Where a client stands before any budget: refused, exempt from the per-address ones, or
/// neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// On the allowlist: per-address budgets do not apply.
    pub(crate) allowed: bool,
}

/// The client's address as it is matched against lists (IPv4-mapped IPv6 as IPv4).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Refuses a client on the installation's denylist ([`Error::IpBlocked`], logged), and
/// says whether it is on the allowlist.
pub(crate) async fn screen(inner: &Inner, ctx: &RequestContext) -> Result<Standing, Error> {
    let Some(ip) = ctx.ip.map(canonical) else {
        return Ok(Standing { allowed: false });
    };
    let lists = &inner.config.config.protection;
    if lists.deny.iter().any(|net| net.contains(&ip)) {
        let event =
            AuthEvent::new(AuthEventKind::IpDenied, ctx, inner.clock.now()).with_reason("denylist");
        log_refusal(inner, event).await?;
        return Err(Error::IpBlocked);
    }
    Ok(Standing {
        allowed: lists.allow.iter().any(|net| net.contains(&ip)),
    })
}

/// Logs a refusal by a budget: `rate_limited`, the budget's name as the reason.
pub(crate) async fn refused(
    inner: &Inner,
    scope: &str,
    user: Option<UserId>,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let mut event =
        AuthEvent::new(AuthEventKind::RateLimited, ctx, inner.clock.now()).with_reason(scope);
    if let Some(user) = user {
        event = event.with_user(user);
    }
    log_refusal(inner, event).await
}

/// Logs a refusal protection made. A flood of refusals must not become a flood of writes
/// to the login log (a throttled client costs microseconds, an append does not), so one
/// line a minute is written for each kind, reason and client, whichever accounts it tries
/// (a client without an address counts per account); the `tracing` log
/// (`portcullis::protect`) has every one.
pub(crate) async fn log_refusal(inner: &Inner, event: AuthEvent) -> Result<(), Error> {
    let reason = event.reason.as_deref().unwrap_or_default();
    tracing::info!(target: "portcullis::protect", kind = %event.kind, reason, "refused");
    let client = match event.ip {
        Some(ip) => ip_subject(ip),
        None => event.user_id.map(|u| u.to_string()).unwrap_or_default(),
    };
    let subject = format!("{}|{reason}|{client}", event.kind);
    let once = RateLimit::fixed(1, std::time::Duration::from_secs(60));
    if RateLimiter::new(inner)
        .hit("refusal_logged", &subject, &once)
        .await
        .is_ok()
    {
        inner.audit_log.append(&event).await?;
    }
    Ok(())
}

/// Counts a request against a per-address budget (sign-ups, sends): skipped for an
/// allowlisted client; the request that spends it throttles the address (`ip_throttled`,
/// listed); one past it is refused and logged.
pub(crate) async fn hit_client(
    inner: &Inner,
    scope: &'static str,
    limit: &RateLimit,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let Some(ip) = ctx.ip else {
        return Ok(());
    };
    if screen(inner, ctx).await?.allowed {
        return Ok(());
    }
    let network = ip_subject(ip);
    match RateLimiter::new(inner)
        .hit_left(scope, &network, limit)
        .await
    {
        Ok(0) => throttled(inner, scope, limit, ctx).await,
        Ok(_) => Ok(()),
        Err(err) => {
            refused(inner, scope, None, ctx).await?;
            Err(err)
        }
    }
}

/// A client just spent its own budget `scope`: logged and listed.
pub(crate) async fn throttled(
    inner: &Inner,
    scope: &str,
    limit: &RateLimit,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let Some(ip) = ctx.ip else {
        return Ok(());
    };
    let now = inner.clock.now();
    let event = AuthEvent::new(AuthEventKind::IpThrottled, ctx, now).with_reason(scope);
    inner.audit_log.append(&event).await?;
    tracing::warn!(scope, "a client address is throttled");
    let network = ip_subject(ip);
    listed(
        inner,
        Block {
            id: block_id(inner, BlockKind::IpThrottle, scope, &network, None),
            kind: BlockKind::IpThrottle,
            scope: scope.to_owned(),
            user_id: None,
            ip: Some(ip),
            network,
            since: now,
            until: now + limit.window,
        },
    )
    .await;
    Ok(())
}

/// A client's failures just spent `user`'s budget `scope`: logged, listed, and the owner
/// told (once per window and client).
pub(crate) async fn lock_out(
    inner: &Inner,
    scope: FailureScope,
    user: UserId,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    let limit = scope.limit(inner);
    let network = match scope {
        FailureScope::Account => "*".to_owned(),
        _ => ctx.ip.map_or_else(|| "unknown".to_owned(), ip_subject),
    };
    let event = AuthEvent::new(AuthEventKind::AccountLocked, ctx, now)
        .with_user(user)
        .with_reason(scope.as_str());
    inner.audit_log.append(&event).await?;
    let block = Block {
        id: block_id(
            inner,
            BlockKind::AccountLockout,
            scope.as_str(),
            &network,
            Some(user),
        ),
        kind: BlockKind::AccountLockout,
        scope: scope.as_str().to_owned(),
        user_id: Some(user),
        ip: ctx.ip,
        network,
        since: now,
        until: now + limit.window,
    };
    listed(inner, block.clone()).await;
    if inner.config.config.protection.lockout_notice {
        notify(inner, &block, limit, ctx).await?;
    }
    Ok(())
}

/// What an unblock link lifts.
#[derive(Serialize, Deserialize)]
struct UnblockRecord {
    block: Block,
    /// The account's security stamp when the notice went out.
    stamp: u64,
}

/// Sends the owner the lockout notice, unless this window's was sent.
async fn notify(
    inner: &Inner,
    block: &Block,
    limit: RateLimit,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let Some(user) = block.user_id else {
        return Ok(());
    };
    let Some(account) = inner.users.get_user(user).await? else {
        return Ok(());
    };
    let Some(email) = account.email.clone().filter(|_| account.email_verified) else {
        return Ok(());
    };
    if inner.mailer.is_none() {
        tracing::warn!(%user, "no mailer: the owner is not told of a lockout");
        return Ok(());
    }
    let now = inner.clock.now();
    let marker = inner
        .hasher
        .hash_parts(SecretPurpose::Unblock, &[b"notice", block.id.as_bytes()]);
    let once = ChallengeKey::hashed(ChallengeKind::LockoutNotice, &marker);
    if !inner
        .challenges
        .insert(&once, b"", now + limit.window, now)
        .await?
    {
        return Ok(());
    }
    let token = random_token()?;
    let record = UnblockRecord {
        block: block.clone(),
        stamp: account.security_stamp,
    };
    let value =
        serde_json::to_vec(&record).map_err(|_| Error::Internal("serializing an unblock link"))?;
    let hash = inner.hasher.hash(SecretPurpose::Unblock, token.as_bytes());
    let key = ChallengeKey::hashed(ChallengeKind::Unblock, &hash);
    if !inner
        .challenges
        .insert(&key, &value, now + UNBLOCK_TTL, now)
        .await?
    {
        return Err(Error::Conflict { what: "unblock" });
    }
    let mut url = inner.config.unblock_base.clone();
    url.query_pairs_mut().append_pair("token", token.as_str());
    let message = Message {
        kind: MessageKind::AccountLocked,
        to: Recipient::Email(email),
        link: Some(SecretLink::new(url.into())),
        code: None,
        expires_in: UNBLOCK_TTL,
        locale: ctx.locale.clone(),
        org_id: ctx.org_id,
        request_id: RequestId::generate(),
        activity: Some(activity(ctx, now)),
    };
    if let Err(err) = crate::delivery::send::send_message(inner, message).await {
        tracing::warn!(%user, error = %err, "could not send a lockout notice");
    }
    Ok(())
}

/// The activity a notice reports: now, the client's address and device.
pub(crate) fn activity(ctx: &RequestContext, at: Timestamp) -> Activity {
    Activity {
        at,
        ip: ctx.ip,
        device: ctx.user_agent.as_deref().map(super::signals::device_name),
    }
}

/// A block's stable id: the same lockout or throttle, listed again, replaces itself.
fn block_id(
    inner: &Inner,
    kind: BlockKind,
    scope: &str,
    network: &str,
    user: Option<UserId>,
) -> String {
    let kind = match kind {
        BlockKind::AccountLockout => "lockout",
        BlockKind::IpThrottle => "throttle",
    };
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    let hash = inner.hasher.hash_parts(
        SecretPurpose::RateLimit,
        &[
            kind.as_bytes(),
            scope.as_bytes(),
            network.as_bytes(),
            user.as_bytes(),
        ],
    );
    hash.to_hex()[..24].to_owned()
}

fn list_key() -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::Blocks, "all")
}

/// Changes the list of blocks (compare-and-swap, retried): drops ended ones, applies
/// `change`, keeps the newest [`MAX_LISTED_BLOCKS`].
async fn edit<T>(inner: &Inner, change: impl Fn(&mut Vec<Block>) -> T) -> Result<T, Error> {
    let key = list_key();
    for _ in 0..crate::flows::MAX_RETRIES * 4 {
        let now = inner.clock.now();
        let current = inner.challenges.get(&key, now).await?;
        let mut blocks: Vec<Block> = match &current {
            Some(record) => serde_json::from_slice(&record.value)
                .map_err(|_| Error::Store(StoreError::Corrupt { what: "blocks" }))?,
            None => Vec::new(),
        };
        blocks.retain(|b| b.until > now);
        let out = change(&mut blocks);
        blocks.sort_by_key(|b| std::cmp::Reverse(b.since));
        blocks.truncate(MAX_LISTED_BLOCKS);
        let expires_at = blocks
            .iter()
            .map(|b| b.until)
            .max()
            .unwrap_or(now + std::time::Duration::from_secs(1));
        let value =
            serde_json::to_vec(&blocks).map_err(|_| Error::Internal("serializing blocks"))?;
        let written = match &current {
            Some(record) => {
                inner
                    .challenges
                    .update(&key, record.version, &value, expires_at, now)
                    .await?
            }
            None => {
                inner
                    .challenges
                    .insert(&key, &value, expires_at, now)
                    .await?
            }
        };
        if written {
            return Ok(out);
        }
    }
    Err(Error::Conflict { what: "blocks" })
}

/// Puts a block on the list. The list only names what the counters enforce, so failing to
/// write it (a store error, a contended list) never fails the request: it is logged.
async fn listed(inner: &Inner, block: Block) {
    let written = edit(inner, |blocks| {
        blocks.retain(|b| b.id != block.id);
        blocks.push(block.clone());
    })
    .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, "a block could not be listed");
    }
}

/// A completed sign-in emptied the account's budgets for this client and of all clients:
/// the lockouts they held leave the list.
pub(crate) async fn cleared(inner: &Inner, user: UserId, ctx: &RequestContext) {
    let network = ctx.ip.map_or_else(|| "unknown".to_owned(), ip_subject);
    let ended = |b: &Block| b.user_id == Some(user) && (b.network == "*" || b.network == network);
    // One read on every sign-in; a write only when there is something to drop. The list
    // only names what the counters enforce: failing to tidy it never fails a sign-in.
    let tidied = match Shield::new(inner).blocks().await {
        Ok(blocks) if !blocks.iter().any(ended) => return,
        Ok(_) => edit(inner, |blocks| blocks.retain(|b| !ended(b))).await,
        Err(err) => Err(err),
    };
    if let Err(err) = tidied {
        tracing::warn!(error = %err, "the list of blocks could not be tidied");
    }
}

/// Empties the counters behind a block, so the next attempt is judged afresh.
async fn drain(inner: &Inner, block: &Block) -> Result<(), Error> {
    let limiter = RateLimiter::new(inner);
    match block.kind {
        BlockKind::AccountLockout => {
            let Some(user) = block.user_id else {
                return Ok(());
            };
            let account = inner.users.get_user(user).await?;
            let identifiers = account
                .as_ref()
                .map(super::failures::identifiers_of)
                .unwrap_or_else(|| vec![user.to_string()]);
            let scope = match block.scope.as_str() {
                "signin_fail_account" => FailureScope::Account,
                _ => FailureScope::AccountIp,
            };
            for identifier in identifiers {
                let subject = match scope {
                    FailureScope::Account => identifier,
                    _ => format!("{identifier}|{}", block.network),
                };
                limiter
                    .reset(scope.as_str(), &subject, &scope.limit(inner))
                    .await?;
            }
        }
        BlockKind::IpThrottle => {
            if let Some(limit) = client_limit(inner, &block.scope) {
                limiter.reset(&block.scope, &block.network, &limit).await?;
            }
        }
    }
    Ok(())
}

/// The per-address budget a throttle's scope names.
fn client_limit(inner: &Inner, scope: &str) -> Option<RateLimit> {
    let config = &inner.config.config;
    Some(match scope {
        "signin_fail_ip" => config.limits.failures_per_ip,
        "sign_up_ip" => config.limits.sign_ups_per_ip,
        "send_ip" => config.limits.sends_per_ip,
        "sms_ip" => config.sms.per_ip,
        _ => return None,
    })
}

/// What an owner's unblock link did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Unblocked {
    /// The account.
    pub user_id: UserId,
    /// The password reset it started, when asked to (its code went to the account's
    /// address, as [`Passwords::send_reset`](crate::Passwords::send_reset) sends it);
    /// `None` when none was asked for or it could not be sent now (a send budget).
    pub reset: Option<crate::Sent>,
}

/// Lockouts and throttles (`auth.protection()`): the list administrators see, lifting,
/// the owner's unblock link, and the built-in proof of work.
#[derive(Clone, Copy)]
pub struct Shield<'a> {
    inner: &'a Inner,
}

impl<'a> Shield<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Shield { inner }
    }

    /// The lockouts and throttles in force, newest first (at most
    /// [`MAX_LISTED_BLOCKS`]).
    pub async fn blocks(&self) -> Result<Vec<Block>, Error> {
        let now = self.inner.clock.now();
        let Some(record) = self.inner.challenges.get(&list_key(), now).await? else {
            return Ok(Vec::new());
        };
        let mut blocks: Vec<Block> = serde_json::from_slice(&record.value)
            .map_err(|_| Error::Store(StoreError::Corrupt { what: "blocks" }))?;
        blocks.retain(|b| b.until > now);
        Ok(blocks)
    }

    /// Lifts a block by its id: its counters are emptied, it leaves the list, and
    /// `lockout_lifted` is logged. [`Error::NotFound`] when no such block is in force.
    pub async fn lift(&self, id: &str, ctx: &RequestContext) -> Result<Block, Error> {
        let inner = self.inner;
        let block = self
            .blocks()
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or(Error::NotFound { what: "block" })?;
        drain(inner, &block).await?;
        edit(inner, |blocks| blocks.retain(|b| b.id != block.id)).await?;
        lifted(inner, &block, "admin", ctx).await?;
        Ok(block)
    }

    /// Redeems the link of a lockout notice, once: the lockout is lifted and, with
    /// `reset`, a password-reset code goes to the account's address. [`Error::InvalidToken`]
    /// for an unknown, used or expired link, or one made before the account's
    /// credentials changed.
    pub async fn unblock(
        &self,
        token: &UnblockToken,
        reset: bool,
        ctx: &RequestContext,
    ) -> Result<Unblocked, Error> {
        let inner = self.inner;
        if token.secret().len() > 128 {
            return Err(Error::InvalidToken);
        }
        let (_, record) = inner
            .secret_record(
                ChallengeKind::Unblock,
                SecretPurpose::Unblock,
                token.secret().as_bytes(),
                true,
            )
            .await?
            .ok_or(Error::InvalidToken)?;
        let record: UnblockRecord = serde_json::from_slice(&record.value)
            .map_err(|_| Error::Store(StoreError::Corrupt { what: "unblock" }))?;
        let user = record.block.user_id.ok_or(Error::InvalidToken)?;
        let account: User = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::InvalidToken)?;
        if account.security_stamp != record.stamp || account.blocked {
            return Err(Error::InvalidToken);
        }
        drain(inner, &record.block).await?;
        let id = record.block.id.clone();
        edit(inner, |blocks| blocks.retain(|b| b.id != id)).await?;
        lifted(inner, &record.block, "owner", ctx).await?;
        // The lockout is lifted whatever happens next: a reset that cannot be sent now (a
        // send budget) says so by its absence.
        let reset = match (reset, &account.email) {
            (true, Some(email)) => crate::Passwords::new(inner)
                .send_reset(email.as_str(), ctx)
                .await
                .inspect_err(
                    |err| tracing::warn!(%user, error = %err, "no reset code after an unblock"),
                )
                .ok(),
            _ => None,
        };
        Ok(Unblocked {
            user_id: user,
            reset,
        })
    }

    /// Whether `proof` passes the configured bot check (the built-in proof of work spends
    /// it), for an application's own endpoints. [`Error::Config`] when none is configured;
    /// an error of the checking service is returned as it is (refuse the request).
    pub async fn verify_bot_proof(
        &self,
        proof: &crate::crypto::BotProof,
        ctx: &RequestContext,
    ) -> Result<bool, Error> {
        match &self.inner.bot_check {
            Some(check) => check.verify(proof, ctx).await,
            None => Err(Error::Config("no bot check is configured".into())),
        }
    }

    /// A proof-of-work challenge for the client to solve
    /// ([`ProofOfWork`](crate::protect::ProofOfWork)). [`Error::Config`] when the engine
    /// was built without it.
    pub fn proof_of_work(&self) -> Result<crate::protect::PowChallenge, Error> {
        match &self.inner.pow {
            Some(pow) => pow.challenge(),
            None => Err(Error::Config(
                "the built-in proof of work is off (PortcullisBuilder::proof_of_work)".into(),
            )),
        }
    }
}

async fn lifted(inner: &Inner, block: &Block, by: &str, ctx: &RequestContext) -> Result<(), Error> {
    let mut event = AuthEvent::new(AuthEventKind::LockoutLifted, ctx, inner.clock.now())
        .with_reason(by)
        .with_method(&block.scope);
    if let Some(user) = block.user_id {
        event = event.with_user(user);
    }
    inner.audit_log.append(&event).await?;
    Ok(())
}
