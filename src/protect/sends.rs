//! Send budgets: how often a code or link may go to one address, from one client, and in
//! all (with the SMS soft and hard limits and the bot check), so sign-in cannot be used
//! to flood an inbox or a phone bill.

use crate::config::RateLimit;
use crate::delivery::Recipient;
use crate::engine::Inner;
use crate::model::{Email, Phone};
use crate::{Error, RequestContext};

use crate::flows::*;

/// The budgets a send spends, in order, before anything is generated or sent. Refused
/// sends count too, so hammering keeps the door shut. The client's own budget comes first:
/// a client past it cannot also spend a victim's per-address budgets.
///
/// No client can shut an address or number out for its owner (checklist RL-07): the
/// cooldown and the tight per-address budget count per address *and* client, and the
/// loose budget of all clients together, when spent, still serves a device the recipient
/// signed in from before (an active session from the same address). `proven`: the
/// requester already proved a factor of the recipient's account (an MFA step's code). The
/// global text budget degrades before it refuses: past its soft level a text goes to a
/// device the recipient never signed in from only with a bot check passed.
pub(crate) async fn spend_send_budget(
    inner: &Inner,
    channel: Channel,
    identifier: &str,
    proven: bool,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let config = &inner.config.config;
    let sms = channel == Channel::SmsCode;
    // Checked before anything else, so a missing sender is an error for every address
    // alike, not only for those that have accounts.
    let configured = match sms {
        true => inner.sms.is_some(),
        false => inner.mailer.is_some(),
    };
    if !configured {
        return Err(Error::Config(
            match sms {
                true => "no SMS sender configured",
                false => "no mailer configured",
            }
            .into(),
        ));
    }
    if sms && !config.sms.allows(identifier) {
        tracing::info!("text refused: number outside the allowed calling codes");
        return Err(Error::invalid(
            "phone",
            "texts cannot be sent to this country",
        ));
    }
    let limits = crate::protect::RateLimiter::new(inner);
    let cooldown = RateLimit::fixed(1, config.limits.send_cooldown);
    let (per_recipient, all_clients, per_ip) = match sms {
        true => (
            &config.sms.per_number,
            &config.sms.per_number_total,
            &config.sms.per_ip,
        ),
        false => (
            &config.limits.sends_per_recipient,
            &config.limits.sends_per_recipient_total,
            &config.limits.sends_per_ip,
        ),
    };
    // Texts cost money: a caller that gives no client address shares one budget with every
    // other such caller, rather than having none.
    let ip = match (ctx.ip, sms) {
        (Some(ip), _) => Some(crate::protect::ip_subject(ip)),
        (None, true) => Some("unknown".to_owned()),
        (None, false) => None,
    };
    let client = ip.as_deref().unwrap_or("unknown");
    // The cooldown is per channel, so asking for a code after a link is not refused; the
    // per-address budgets count every channel together.
    let kind = channel.kind(Purpose::SignIn).as_str();
    let cooldown_subject = format!("{kind}:{identifier}|{client}");
    let recipient_subject = format!("{identifier}|{client}");
    let mut known = None;
    match (ctx.ip, &ip) {
        (Some(_), _) => {
            let scope = if sms { "sms_ip" } else { "send_ip" };
            if inner.bot_check.is_some()
                && !known_device(inner, channel, identifier, proven, ctx, &mut known).await?
            {
                super::bot::gate_client(inner, scope, per_ip, ctx).await?;
            }
            crate::protect::guard::hit_client(inner, scope, per_ip, ctx).await?;
        }
        (None, Some(ip)) => limits.hit("sms_ip", ip, per_ip).await?,
        (None, None) => {}
    }
    let budgets = [
        ("send_cooldown", cooldown_subject.as_str(), &cooldown),
        (
            "send_recipient_client",
            recipient_subject.as_str(),
            per_recipient,
        ),
    ];
    for (scope, subject, limit) in budgets {
        limits.hit(scope, subject, limit).await.inspect_err(|_| {
            tracing::info!(scope, "send refused by a rate limit");
        })?;
    }
    let all = limits.hit("send_recipient", identifier, all_clients).await;
    if let Err(err) = all
        && !known_device(inner, channel, identifier, proven, ctx, &mut known).await?
    {
        tracing::info!("send refused: the address's budget of all clients is spent");
        return Err(err);
    }
    if sms {
        // The soft level first, so the sends it turns away do not spend the hard budget:
        // bots past it cannot turn texts off for everyone.
        let soft = limits
            .hit("sms_global_soft", "all", &config.sms.global_soft)
            .await;
        if let Err(err) = soft
            && !known_device(inner, channel, identifier, proven, ctx, &mut known).await?
        {
            tracing::warn!("texts to unknown devices need a bot check: the global budget runs low");
            pass_bot_check(inner, ctx, err).await?;
        }
        limits
            .hit("sms_global", "all", &config.sms.global)
            .await
            .inspect_err(|_| {
                tracing::error!("ALERT: the global SMS budget is spent; texts are off")
            })?;
    }
    Ok(())
}

/// Whether the requester is a device the recipient signed in from before: a live
/// session of the account at the address or number, from the same client address (or a
/// requester that proved a factor of it). Worked out once per send (`known`).
pub(crate) async fn known_device(
    inner: &Inner,
    channel: Channel,
    identifier: &str,
    proven: bool,
    ctx: &RequestContext,
    known: &mut Option<bool>,
) -> Result<bool, Error> {
    if let Some(answer) = *known {
        return Ok(answer);
    }
    let answer = match (proven, ctx.ip) {
        (true, _) => true,
        (false, None) => false,
        (false, Some(ip)) => {
            let recipient = match channel {
                Channel::SmsCode => Recipient::Phone(Phone::parse(identifier)?),
                Channel::MagicLink | Channel::EmailCode => {
                    Recipient::Email(Email::parse(identifier)?)
                }
            };
            match find_user(inner, &recipient).await? {
                None => false,
                Some(user) => has_session(inner, user.id, ip).await?,
            }
        }
    };
    *known = Some(answer);
    Ok(answer)
}

/// Whether `user` has a live session opened from the client's network (an IPv6 client's
/// /64): a device they signed in from before.
pub(crate) async fn has_session_from(
    inner: &Inner,
    user: crate::model::UserId,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    match ctx.ip {
        Some(ip) => has_session(inner, user, ip).await,
        None => Ok(false),
    }
}

async fn has_session(
    inner: &Inner,
    user: crate::model::UserId,
    ip: std::net::IpAddr,
) -> Result<bool, Error> {
    let subject = crate::protect::ip_subject(ip);
    Ok(inner
        .sessions
        .list_user_sessions(user, inner.clock.now())
        .await?
        .iter()
        .any(|s| {
            s.revoked_at.is_none()
                && s.ip.map(crate::protect::ip_subject).as_deref() == Some(&subject)
        }))
}

/// A send past a shared budget's soft level: through with a bot check passed, otherwise
/// [`Error::BotCheckRequired`] (or `refused` when no bot check is configured).
pub(crate) async fn pass_bot_check(
    inner: &Inner,
    ctx: &RequestContext,
    refused: Error,
) -> Result<(), Error> {
    let Some(check) = &inner.bot_check else {
        return Err(refused);
    };
    match &ctx.bot_proof {
        Some(proof) if check.verify(proof, ctx).await? => Ok(()),
        _ => Err(Error::BotCheckRequired),
    }
}
