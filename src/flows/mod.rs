//! The ceremonies. Passwordless ones share the machinery here: a *request* record that
//! holds one secret at a time (a link or a code) with its attempt budget, the send guard,
//! and the account a verified address signs in or signs up.
//!
//! A request lives in the challenge store under its [`RequestId`]. Every change to it is a
//! compare-and-swap on the record's version, so of racing verifies exactly one claims it,
//! a resend never resets its wrong-attempt count, and no wrong attempt on a live request
//! is lost.
//!
//! # Proving an address
//!
//! A verified sign-in code or link proves its address. On an account where the address
//! was never proven, that decides who the account belongs to: see the rules on
//! `account_for` below — in short, an account holding nothing proven (at most a password)
//! becomes the prover's alone, with its password, backup codes and sessions gone; an
//! account holding something proven (another verified identifier, a passkey, an active
//! TOTP factor) keeps it, loses the unproven address, and the prover signs up with that
//! address as a new account.

pub mod codes;
pub(crate) mod email_change;
pub mod magic_link;
pub mod passkey;
pub mod password;
mod requester;
pub mod sign_up;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use crate::protect::failures::{
    account_subject, check_client_failures, check_failures, clear_account_failures, count_attempt,
    log_failure, record_failure, record_failure_because,
};

use crate::config::RateLimit;
use crate::crypto::SecretHash;
use crate::delivery::{Message, MessageKind, Outgoing, Recipient};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, Email, Membership, OrgId, Phone,
    RequestId, User, UserId,
};
use crate::store::StoreResult;
use crate::tokens::AuthCodeRequest;
use crate::{Error, RequestContext, StoreError, Timestamp};

pub(crate) use requester::place_of;
pub use requester::{Locate, Requester};

/// A message request that was accepted. The same shape whether or not the address has
/// an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Names the request in later calls (resend, verify).
    pub request_id: RequestId,
    /// How long the code or link stays valid.
    pub expires_in: Duration,
}

/// What a verified code or link proves, and so what it may be used for. Part of the
/// code's hash: a code sent for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Purpose {
    /// Signing in (or up) with the address.
    SignIn,
    /// Proving that a signed-in user receives mail or texts at their address.
    Verify,
    /// Resetting a forgotten password.
    PasswordReset,
    /// The second factor of a sign-in under way.
    SecondFactor,
    /// Proving the address of an account still to be made (a sign-up with a password or
    /// a passkey): the account exists only once the code comes back.
    SignUp,
    /// Confirming a new address for a user's account (the address the code went to).
    EmailChange,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::Verify => "verify",
            Purpose::PasswordReset => "password_reset",
            Purpose::SecondFactor => "second_factor",
            Purpose::SignUp => "sign_up",
            Purpose::EmailChange => "email_change",
        }
    }
}

/// Where a request's secret goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Channel {
    MagicLink,
    EmailCode,
    SmsCode,
}

impl Channel {
    fn kind(self, purpose: Purpose) -> MessageKind {
        match (self, purpose) {
            (Channel::MagicLink, _) => MessageKind::MagicLink,
            (Channel::EmailCode, Purpose::SignIn | Purpose::SecondFactor | Purpose::SignUp) => {
                MessageKind::EmailCode
            }
            (Channel::EmailCode, Purpose::Verify) => MessageKind::EmailVerification,
            (Channel::SmsCode, Purpose::SignIn | Purpose::SecondFactor | Purpose::SignUp) => {
                MessageKind::SmsCode
            }
            (Channel::SmsCode, Purpose::Verify) => MessageKind::SmsVerification,
            (_, Purpose::PasswordReset) => MessageKind::PasswordReset,
            (_, Purpose::EmailChange) => MessageKind::EmailChange,
        }
    }

    fn ttl(self, inner: &Inner) -> Duration {
        match self {
            Channel::MagicLink => inner.config.config.ttl.magic_link,
            Channel::EmailCode | Channel::SmsCode => inner.config.config.ttl.one_time_code,
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    /// Waiting for its secret.
    Pending,
    /// A verify won the request and is signing the person in.
    Claimed,
    /// Verified: the asking tab may collect a sign-in (magic links), while the account
    /// keeps the security stamp it had then.
    Verified {
        user_id: UserId,
        #[serde(default)]
        stamp: Option<u64>,
    },
}

/// A request as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestState {
    pub(crate) channel: Channel,
    pub(crate) purpose: Purpose,
    /// The normalized email or E.164 number.
    pub(crate) identifier: String,
    /// For [`Purpose::Verify`] and [`Purpose::EmailChange`]: the user proving the address.
    pub(crate) user_id: Option<UserId>,
    /// Whether messages go out: `false` for an address with no account when sign-up is
    /// off (and for blocked accounts). Such requests behave like the others, minus mail.
    pub(crate) deliverable: bool,
    pub(crate) org_id: Option<OrgId>,
    pub(crate) locale: Option<String>,
    pub(crate) code_request: Option<AuthCodeRequest>,
    /// The keyed hash of the current link token or code.
    pub(crate) secret: SecretHash,
    /// Wrong secrets (codes, device codes) so far: never reset by a resend.
    pub(crate) attempts: u32,
    pub(crate) sends: u32,
    pub(crate) poll: Option<SecretHash>,
    pub(crate) device_code: Option<SecretHash>,
    pub(crate) requester: Requester,
    pub(crate) stage: Stage,
    /// The security stamp of the account the secret went to, when there was one: the
    /// request dies when it moves (DESIGN invariant 13).
    #[serde(default)]
    pub(crate) stamp: Option<u64>,
    /// For [`Purpose::SignUp`]: the account to make once the address is proven, sealed
    /// (it may hold a password hash).
    #[serde(default)]
    pub(crate) pending: Option<crate::crypto::Sealed>,
}

impl RequestState {
    pub(crate) fn recipient(&self) -> Result<Recipient, Error> {
        Ok(match self.channel {
            Channel::MagicLink | Channel::EmailCode => {
                Recipient::Email(Email::parse(&self.identifier)?)
            }
            Channel::SmsCode => Recipient::Phone(Phone::parse(&self.identifier)?),
        })
    }
}

fn request_key(id: RequestId) -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::Request, id.to_string())
}

fn corrupt(_: serde_json::Error) -> Error {
    Error::Store(StoreError::Corrupt { what: "request" })
}

/// A request read back with the version its next update must name.
pub(crate) struct Loaded {
    pub(crate) id: RequestId,
    pub(crate) version: u64,
    pub(crate) expires_at: Timestamp,
    pub(crate) state: RequestState,
}

pub(crate) async fn load(inner: &Inner, id: RequestId) -> Result<Option<Loaded>, Error> {
    let now = inner.clock.now();
    let Some(record) = inner.challenges.get(&request_key(id), now).await? else {
        return Ok(None);
    };
    let state = serde_json::from_slice(&record.value).map_err(corrupt)?;
    Ok(Some(Loaded {
        id,
        version: record.version,
        expires_at: record.expires_at,
        state,
    }))
}

pub(crate) async fn insert(
    inner: &Inner,
    id: RequestId,
    state: &RequestState,
    expires_at: Timestamp,
) -> Result<(), Error> {
    let value = serde_json::to_vec(state).map_err(corrupt)?;
    let now = inner.clock.now();
    if !inner
        .challenges
        .insert(&request_key(id), &value, expires_at, now)
        .await?
    {
        return Err(Error::Conflict { what: "request" });
    }
    Ok(())
}

/// Writes `state` over the version `loaded` was read at. `false`: it changed meanwhile.
pub(crate) async fn replace(
    inner: &Inner,
    loaded: &Loaded,
    state: &RequestState,
    expires_at: Timestamp,
) -> StoreResult<bool> {
    let value = serde_json::to_vec(state).map_err(|_| StoreError::Corrupt { what: "request" })?;
    let now = inner.clock.now();
    inner
        .challenges
        .update(
            &request_key(loaded.id),
            loaded.version,
            &value,
            expires_at,
            now,
        )
        .await
}

/// Writes `value` at `key` for `ttl`: inserted when absent, otherwise swapped over the
/// stored version (retried on a racing write), unless `keep` says the stored value stands.
pub(crate) async fn put_record(
    inner: &Inner,
    key: &ChallengeKey,
    value: &[u8],
    ttl: Duration,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<(), Error> {
    let challenges = &inner.challenges;
    for _ in 0..MAX_RETRIES {
        let now = inner.clock.now();
        let written = match challenges.get(key, now).await? {
            Some(record) if keep(&record.value) => return Ok(()),
            Some(record) => {
                challenges
                    .update(key, record.version, value, now + ttl, now)
                    .await?
            }
            None => challenges.insert(key, value, now + ttl, now).await?,
        };
        if written {
            return Ok(());
        }
    }
    Err(Error::Conflict { what: "record" })
}

pub(crate) async fn remove(inner: &Inner, id: RequestId) -> Result<(), Error> {
    let now = inner.clock.now();
    inner.challenges.delete(&request_key(id), now).await?;
    Ok(())
}

/// Whether the account a claimed request was sent for still has the credentials it had
/// then (DESIGN invariant 13): `false` once its security stamp moved.
pub(crate) async fn stamp_holds(inner: &Inner, state: &RequestState) -> Result<bool, Error> {
    let Some(stamp) = state.stamp else {
        return Ok(true);
    };
    let account = match state.user_id {
        Some(id) => inner.users.get_user(id).await?,
        None => find_user(inner, &state.recipient()?).await?,
    };
    Ok(account.is_none_or(|u| u.security_stamp == stamp))
}

/// Whether a request can still be answered: pending, with attempts left.
pub(crate) fn usable(inner: &Inner, state: &RequestState) -> bool {
    state.stage == Stage::Pending && state.attempts < inner.config.config.codes.max_attempts
}

/// How a presented secret compares with a request.
pub(crate) enum Judgement {
    /// Right: claim the request.
    Accept,
    /// Wrong: count an attempt.
    Wrong,
    /// Unusable whatever was presented (used, of another kind, out of attempts).
    Refuse(Error),
}

/// How a claim ended, when the request was usable.
pub(crate) enum Claimed {
    /// This call won the request (now [`Stage::Claimed`]).
    Won(Loaded),
    /// The secret was wrong; the attempt is counted.
    Wrong(RequestState),
}

/// Claims a request for the presented secret, exactly once. `judge` decides from each
/// fresh read; a wrong secret is counted with a compare-and-swap (retried, never lost),
/// and the attempt that spends the budget kills the request. Racing claims: one wins, the
/// others see it claimed.
pub(crate) async fn claim(
    inner: &Inner,
    id: RequestId,
    missing: fn() -> Error,
    judge: impl Fn(&RequestState) -> Judgement,
) -> Result<Claimed, Error> {
    let max = inner.config.config.codes.max_attempts;
    for _ in 0..MAX_RETRIES {
        let mut loaded = load(inner, id).await?.ok_or_else(missing)?;
        if !usable(inner, &loaded.state) {
            return Err(missing());
        }
        match judge(&loaded.state) {
            Judgement::Refuse(err) => return Err(err),
            Judgement::Accept => {
                let mut state = loaded.state.clone();
                state.stage = Stage::Claimed;
                if replace(inner, &loaded, &state, loaded.expires_at).await? {
                    loaded.version += 1;
                    loaded.state = state;
                    return Ok(Claimed::Won(loaded));
                }
            }
            Judgement::Wrong => {
                let mut state = loaded.state.clone();
                state.attempts += 1;
                if replace(inner, &loaded, &state, loaded.expires_at).await? {
                    if state.attempts >= max {
                        // The budget is spent: the request is dead for everyone.
                        remove(inner, id).await?;
                    }
                    return Ok(Claimed::Wrong(state));
                }
            }
        }
    }
    Err(Error::Conflict { what: "request" })
}

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
async fn spend_send_budget(
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
    let mut budgets = Vec::with_capacity(3);
    if let Some(ip) = &ip {
        budgets.push((if sms { "sms_ip" } else { "send_ip" }, ip.as_str(), per_ip));
    }
    budgets.push(("send_cooldown", cooldown_subject.as_str(), &cooldown));
    budgets.push((
        "send_recipient_client",
        recipient_subject.as_str(),
        per_recipient,
    ));
    for (scope, subject, limit) in budgets {
        limits.hit(scope, subject, limit).await.inspect_err(|_| {
            tracing::info!(scope, "send refused by a rate limit");
        })?;
    }
    let mut known = None;
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
async fn known_device(
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
            let subject = crate::protect::ip_subject(ip);
            match find_user(inner, &recipient).await? {
                None => false,
                Some(user) => inner
                    .sessions
                    .list_user_sessions(user.id, inner.clock.now())
                    .await?
                    .iter()
                    .any(|s| {
                        s.revoked_at.is_none()
                            && s.ip.map(crate::protect::ip_subject).as_deref() == Some(&subject)
                    }),
            }
        }
    };
    *known = Some(answer);
    Ok(answer)
}

/// A send past a shared budget's soft level: through with a bot check passed, otherwise
/// [`Error::BotCheckRequired`] (or `refused` when no bot check is configured).
async fn pass_bot_check(inner: &Inner, ctx: &RequestContext, refused: Error) -> Result<(), Error> {
    let Some(check) = &inner.bot_check else {
        return Err(refused);
    };
    match &ctx.bot_proof {
        Some(proof) if check.verify(proof, ctx).await? => Ok(()),
        _ => Err(Error::BotCheckRequired),
    }
}

/// Renders and hands over the message for a request's new secret.
async fn deliver(
    inner: &Inner,
    id: RequestId,
    state: &RequestState,
    link: Option<crate::delivery::SecretLink>,
    code: Option<crate::crypto::OneTimeCode>,
) -> Result<(), Error> {
    let channel = state.channel;
    let kind = channel.kind(state.purpose);
    // Read for every request, deliverable or not: an address with no account must not
    // answer faster.
    let settings = crate::directory::orgs::message_settings(inner, state.org_id, kind).await?;
    if !state.deliverable {
        tracing::debug!(request_id = %id, "nothing sent: no account for the address");
        return Ok(());
    }
    let message = Message {
        kind,
        to: state.recipient()?,
        link,
        code,
        expires_in: channel.ttl(inner),
        locale: state.locale.clone(),
        org_id: state.org_id,
        request_id: id,
    };
    send_rendered(inner, &settings, message).await
}

/// Renders a message and hands it to the mailer or SMS sender, as
/// [`Passwordless::delivery`](crate::Passwordless::delivery) says.
pub(crate) async fn send_message(inner: &Inner, message: Message) -> Result<(), Error> {
    let settings =
        crate::directory::orgs::message_settings(inner, message.org_id, message.kind).await?;
    send_rendered(inner, &settings, message).await
}

/// [`send_message`] with the organization's settings in hand.
async fn send_rendered(
    inner: &Inner,
    settings: &crate::directory::OrgSettings,
    message: Message,
) -> Result<(), Error> {
    let rendered = crate::directory::orgs::render(inner, settings, &message);
    let outgoing = match &message.to {
        Recipient::Email(email) => {
            let mailer = inner
                .mailer
                .clone()
                .ok_or_else(|| Error::Config("no mailer configured".into()))?;
            Outgoing::Email(
                mailer,
                crate::delivery::EmailMessage {
                    to: email.clone(),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    message,
                },
            )
        }
        Recipient::Phone(phone) => {
            let sender = inner
                .sms
                .clone()
                .ok_or_else(|| Error::Config("no SMS sender configured".into()))?;
            Outgoing::Sms(
                sender,
                crate::delivery::SmsMessage {
                    to: phone.clone(),
                    body: rendered.text,
                    message,
                },
            )
        }
    };
    inner
        .dispatcher
        .dispatch(inner.config.config.passwordless.delivery, outgoing)
        .await
}

/// The account an address belongs to, before anything is sent: `(user, deliverable)`.
/// Blocked accounts, and unknown addresses when sign-up is off, get no message.
async fn account_at_send(
    inner: &Inner,
    recipient: &Recipient,
) -> Result<(Option<User>, bool), Error> {
    let user = find_user(inner, recipient).await?;
    let deliverable = match &user {
        Some(user) => !user.blocked,
        None => inner.config.config.passwordless.sign_up,
    };
    Ok((user, deliverable))
}

async fn find_user(inner: &Inner, recipient: &Recipient) -> Result<Option<User>, Error> {
    Ok(match recipient {
        Recipient::Email(email) => inner.users.get_user_by_email(email).await?,
        Recipient::Phone(phone) => inner.users.get_user_by_phone(phone).await?,
    })
}

/// The account a verified address signs in to: the one that has it (now marked verified),
/// or a new one when sign-up is on. `None`: no account and no sign-up.
///
/// An account whose address was never proven may have been set up by someone else (a
/// pre-account takeover: register the victim's address with your own password, wait), or
/// the address may be a typo of its owner's. Proving the address decides, by what else the
/// account holds:
///
/// - Nothing but, at most, a password (and unconfirmed factors): the account becomes the
///   prover's alone. The password, backup codes, pending factors and the account's other
///   unproven identifier are removed, and its sessions end.
/// - Something proven or strong — another verified identifier, a passkey, an active TOTP
///   factor: that belongs to whoever set it up, who keeps the account; the unproven address
///   is taken off it, and the prover signs up with it as a new account (if sign-up is on).
///
/// A blocked account is refused ([`Error::InvalidCredentials`]) before anything changes.
pub(crate) async fn account_for(
    inner: &Inner,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<Option<UserId>, Error> {
    for _ in 0..MAX_RETRIES {
        let now = inner.clock.now();
        match find_user(inner, recipient).await? {
            Some(user) if user.blocked => return Err(Error::InvalidCredentials),
            Some(user) => match mark_verified(inner, user, recipient, Proof::SignIn, ctx).await {
                // Changed under us, or the address was just taken off an account: look again.
                Err(Error::Store(StoreError::Stale)) | Ok(None) => continue,
                Ok(Some(id)) => return Ok(Some(id)),
                Err(err) => return Err(err),
            },
            None if inner.config.config.passwordless.sign_up => {
                match sign_up(inner, recipient, ctx, now).await? {
                    Some(id) => return Ok(Some(id)),
                    // Someone signed up with the address meanwhile: sign in to theirs.
                    None => continue,
                }
            }
            None => return Ok(None),
        }
    }
    Err(Error::Conflict { what: "user" })
}

/// How often a compare-and-swap is retried before the engine gives up with
/// [`Error::Conflict`] (only a misbehaving store, or a storm of writes to one record, gets
/// there).
pub(crate) const MAX_RETRIES: usize = 32;

/// Creates the account of a proven address. `None`: the address was taken meanwhile.
async fn sign_up(
    inner: &Inner,
    recipient: &Recipient,
    ctx: &RequestContext,
    now: Timestamp,
) -> Result<Option<UserId>, Error> {
    let mut user = User::new(UserId::generate(), now);
    match recipient {
        Recipient::Email(email) => {
            user.email = Some(email.clone());
            user.email_verified = true;
        }
        Recipient::Phone(phone) => {
            user.phone = Some(phone.clone());
            user.phone_verified = true;
        }
    }
    let method = match recipient {
        Recipient::Email(_) => "email",
        Recipient::Phone(_) => "sms",
    };
    if !create_account(inner, &user, method, ctx).await? {
        return Ok(None);
    }
    tracing::debug!(user_id = %user.id, "signed up by a verified address");
    Ok(Some(user.id))
}

/// Stores a new account, joins it to the request's organization (no roles) and logs the
/// sign-up, all or nothing: a failure after the insert deletes the account again, since
/// half an account would be refused in its organization forever. `false`: the email or
/// phone is taken.
pub(crate) async fn create_account(
    inner: &Inner,
    user: &User,
    method: &str,
    ctx: &RequestContext,
) -> Result<bool, Error> {
    match inner.users.create_user(user).await {
        Err(StoreError::Conflict { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
        Ok(()) => {}
    }
    let now = user.created_at;
    let event = AuthEvent::new(AuthEventKind::SignUp, ctx, now)
        .with_user(user.id)
        .with_method(method);
    let joined = async {
        join_org(inner, user.id, ctx.org_id, now).await?;
        inner.audit_log.append(&event).await?;
        Ok::<(), Error>(())
    };
    if let Err(err) = joined.await {
        if let Err(undo) = inner.users.delete_user(user.id).await {
            tracing::warn!(user_id = %user.id, error = %undo, "could not undo a failed sign-up");
        }
        return Err(err);
    }
    Ok(true)
}

/// A new account made inside an organization joins it, with no roles.
async fn join_org(
    inner: &Inner,
    user: UserId,
    org: Option<OrgId>,
    now: Timestamp,
) -> Result<(), Error> {
    if let Some(org_id) = org {
        let membership = Membership {
            user_id: user,
            org_id,
            role_ids: Vec::new(),
            created_at: now,
            self_joined: true,
        };
        inner.orgs.put_membership(&membership).await?;
    }
    Ok(())
}

/// Who is proving an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Someone signing in with it: may claim an account nobody proved (see [`account_for`]).
    SignIn,
    /// The signed-in owner of the account confirming it: nothing else changes.
    Owner,
    /// A password reset: claims an account nobody proved, like a sign-in, but never takes
    /// the address off an account that holds something proven (the reset is refused
    /// instead: whoever holds the address must not lock that account's owner out).
    Reset,
}

/// Records that `recipient` (which must still be the user's) was proven. Returns the id,
/// or `None` when the address was taken off the account instead (see [`account_for`]).
pub(crate) async fn mark_verified(
    inner: &Inner,
    mut user: User,
    recipient: &Recipient,
    proof: Proof,
    ctx: &RequestContext,
) -> Result<Option<UserId>, Error> {
    let now = inner.clock.now();
    let (already, other_proven) = match recipient {
        Recipient::Email(email) if user.email.as_ref() == Some(email) => (
            user.email_verified,
            user.phone.is_some() && user.phone_verified,
        ),
        Recipient::Phone(phone) if user.phone.as_ref() == Some(phone) => (
            user.phone_verified,
            user.email.is_some() && user.email_verified,
        ),
        // The address moved to another account after the code was sent.
        _ => return Err(Error::InvalidCredentials),
    };
    if already {
        return Ok(Some(user.id));
    }
    if proof != Proof::Owner {
        let strong = other_proven || has_strong_factor(inner, user.id).await?;
        match (strong, proof) {
            (true, Proof::Reset) => return Err(Error::InvalidCredentials),
            (true, _) => {
                detach(inner, user, recipient, ctx).await?;
                return Ok(None);
            }
            (false, _) => claim_account(inner, &mut user, recipient, ctx).await?,
        }
    }
    match recipient {
        Recipient::Email(_) => user.email_verified = true,
        Recipient::Phone(_) => user.phone_verified = true,
    }
    // A first proof decides whose the account is: whatever was under way for it before
    // (MFA and enrolment tokens, ceremonies, codes) stops here.
    user.rotate_security_stamp();
    user.updated_at = now;
    inner.users.update_user(&user).await.map_err(Error::Store)?;
    Ok(Some(user.id))
}

/// A passkey or an active TOTP factor: a credential whose owner proved something.
async fn has_strong_factor(inner: &Inner, user: UserId) -> Result<bool, Error> {
    if !inner.users.list_passkeys(user).await?.is_empty() {
        return Ok(true);
    }
    let factors = inner.users.list_totp_factors(user).await?;
    Ok(factors
        .iter()
        .any(|f| f.status == crate::model::FactorStatus::Active))
}

/// Takes an unproven address off an account that someone else proved, so its prover can
/// have it.
async fn detach(
    inner: &Inner,
    mut user: User,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    match recipient {
        Recipient::Email(_) => user.email = None,
        Recipient::Phone(_) => user.phone = None,
    }
    user.rotate_security_stamp();
    user.updated_at = now;
    inner.users.update_user(&user).await.map_err(Error::Store)?;
    let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, now)
        .with_user(user.id)
        .with_reason("unproven_address_proven_by_another");
    inner.audit_log.append(&event).await?;
    tracing::info!(user_id = %user.id, "an unproven address was taken off an account by its prover");
    Ok(())
}

/// Makes an account nobody proved its prover's alone. The password and the other unproven
/// identifier go first, in one compare-and-swap that also moves the security stamp, so
/// nothing signs in with them from then on and every token, ceremony and pending sign-in
/// made for the account dies; then factors set up meanwhile, backup codes, sessions, and
/// the memberships whoever set the account up chose (the organization the prover signs in
/// to, if any, keeps them as a new sign-up there would). The caller marks the address
/// verified last, so a failure part-way leaves it all to the next attempt.
async fn claim_account(
    inner: &Inner,
    user: &mut User,
    recipient: &Recipient,
    ctx: &RequestContext,
) -> Result<(), Error> {
    let now = inner.clock.now();
    let id = user.id;
    let had_password = user.password_hash.take().is_some();
    match recipient {
        Recipient::Email(_) if !user.phone_verified => user.phone = None,
        Recipient::Phone(_) if !user.email_verified => user.email = None,
        _ => {}
    }
    user.rotate_security_stamp();
    user.updated_at = now;
    user.revision = inner.users.update_user(user).await.map_err(Error::Store)?;
    let users = &inner.users;
    let mut removed = 0usize;
    for passkey in users.list_passkeys(id).await? {
        removed += usize::from(users.delete_passkey(id, &passkey.id).await?);
    }
    for factor in users.list_totp_factors(id).await? {
        removed += usize::from(users.delete_totp_factor(id, factor.id).await?);
    }
    users.replace_backup_codes(id, &[]).await?;
    let revoked = inner.sessions.revoke_user_sessions(id, now).await?;
    for membership in inner.orgs.list_memberships(id).await? {
        if membership.self_joined && Some(membership.org_id) != ctx.org_id {
            removed += usize::from(inner.orgs.delete_membership(id, membership.org_id).await?);
        }
    }
    if !users.list_passkeys(id).await?.is_empty() || !users.list_totp_factors(id).await?.is_empty()
    {
        // A factor arrived while we cleaned: start over from a fresh read.
        return Err(Error::Store(StoreError::Stale));
    }
    if had_password || removed > 0 || revoked > 0 {
        let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, now)
            .with_user(id)
            .with_reason("unproven_account_claimed");
        inner.audit_log.append(&event).await?;
        tracing::info!(
            user_id = %id,
            had_password,
            removed,
            revoked,
            "an unproven account was claimed by its address's prover"
        );
    }
    Ok(())
}

/// Logs that a sign-in link or code went out to an account. Sends to addresses with no
/// account (or a blocked one, which gets no message) are not logged: they concern nobody.
/// The line is written alongside the delivery — in the background by default — so the
/// caller's answer takes as long, and reads the same, whether or not there is an account.
pub(crate) async fn log_started(
    inner: &Inner,
    account: Option<&User>,
    method: &str,
    ctx: &RequestContext,
) {
    let Some(user) = account.filter(|u| !u.blocked) else {
        return;
    };
    let event = AuthEvent::new(AuthEventKind::CeremonyStarted, ctx, inner.clock.now())
        .with_user(user.id)
        .with_method(method);
    let log = inner.audit_log.clone();
    let work = async move { Ok(log.append(&event).await?) };
    inner
        .dispatcher
        .run_alongside(inner.config.config.passwordless.delivery, "audit", work)
        .await;
}
