//! The request record of passwordless sign-in: one secret at a time (a link or a code) with
//! its attempt budget, kept in the challenge store under its [`RequestId`]. Every change
//! is a compare-and-swap on the record's version, so of racing verifies exactly one claims
//! it, a resend never resets its wrong-attempt count, and no wrong attempt on a live
//! request is lost.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::SecretHash;
use crate::delivery::{Message, MessageKind, Recipient};
use crate::engine::Inner;
use crate::model::{ChallengeKey, ChallengeKind, Email, OrgId, Phone, RequestId, UserId};
use crate::store::StoreResult;
use crate::tokens::AuthCodeRequest;
use crate::{Error, StoreError, Timestamp};

use crate::flows::*;

/// Where a request's secret goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Channel {
    MagicLink,
    EmailCode,
    SmsCode,
}

impl Channel {
    pub(crate) fn kind(self, purpose: Purpose) -> MessageKind {
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

    pub(crate) fn ttl(self, inner: &Inner) -> Duration {
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

pub(crate) fn request_key(id: RequestId) -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::Request, id.to_string())
}

pub(crate) fn corrupt(_: serde_json::Error) -> Error {
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

/// Renders and hands over the message for a request's new secret.
pub(crate) async fn deliver(
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
    let settings = crate::delivery::send::message_settings(inner, state.org_id, kind).await?;
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
        activity: None,
    };
    send_rendered(inner, &settings, message).await
}
