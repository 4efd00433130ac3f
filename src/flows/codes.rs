//! One-time codes by email and SMS: send, resend, verify (security invariant 3).
//!
//! A code is 6 to 8 digits from the OS RNG ([`CodePolicy`](crate::CodePolicy)), lives 10
//! minutes by default, and is stored only as a keyed hash over the request id, the address,
//! the purpose and the code: a code verifies only for the request, address and purpose it
//! was sent for. A request allows `codes.max_attempts` wrong codes (5 by default) over its
//! whole life: a resend replaces the code (the old one dies) but keeps the count, and every
//! wrong code also counts against the address's and the client's failure budgets.

use super::{
    Channel, Claimed, Judgement, Proof, Purpose, RequestState, Requester, Sent, Stage,
    account_at_send, account_for, claim, count_attempt, deliver, load, log_failure, record_failure,
    spend_send_budget,
};
use crate::crypto::{OneTimeCode, SecretHash, SecretPurpose, numeric_code};
use crate::delivery::Recipient;
use crate::directory::orgs::{Method, allow};
use crate::engine::Inner;
use crate::model::{Email, Phone, RequestId, UserId};
use crate::signin::{AuthMethod, Proven, SignIn, complete_first_factor};
use crate::{Error, RequestContext};

/// One-time codes: [`email`](Self::email) and [`sms`](Self::sms).
#[derive(Clone, Copy)]
pub struct Codes<'a> {
    inner: &'a Inner,
}

impl<'a> Codes<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Codes { inner }
    }

    /// Codes sent by email, through the [`Mailer`](crate::Mailer).
    pub fn email(&self) -> CodeChannel<'a> {
        CodeChannel {
            inner: self.inner,
            channel: Channel::EmailCode,
        }
    }

    /// Codes sent by text message, through the [`SmsSender`](crate::SmsSender), behind the
    /// SMS pumping guard ([`SmsPolicy`](crate::SmsPolicy)).
    pub fn sms(&self) -> CodeChannel<'a> {
        CodeChannel {
            inner: self.inner,
            channel: Channel::SmsCode,
        }
    }
}

/// Email or SMS codes (from [`Codes`]).
#[derive(Clone, Copy)]
pub struct CodeChannel<'a> {
    inner: &'a Inner,
    channel: Channel,
}

/// A request to start, beside its recipient.
pub(crate) struct NewRequest {
    pub(crate) purpose: Purpose,
    /// The user proving the address (for purposes that name one).
    pub(crate) user_id: Option<UserId>,
    /// The security stamp of the account the secret goes to, when there is one.
    pub(crate) stamp: Option<u64>,
    /// Whether the code goes out (see [`RequestState::deliverable`]).
    pub(crate) deliverable: bool,
    /// For a sign-up: the account to make, sealed.
    pub(crate) pending: Option<crate::crypto::Sealed>,
}

impl NewRequest {
    /// A deliverable request for `purpose`, carrying `account`'s stamp.
    pub(crate) fn new(
        purpose: Purpose,
        user_id: Option<UserId>,
        account: Option<&crate::model::User>,
    ) -> Self {
        NewRequest {
            purpose,
            user_id,
            stamp: account.map(|u| u.security_stamp),
            deliverable: true,
            pending: None,
        }
    }
}

impl CodeChannel<'_> {
    /// Sends a sign-in code to an email address or (for SMS) an E.164 number.
    ///
    /// Answers the same whether or not an account has the address. Without one, the code
    /// signs the person up when [`Passwordless::sign_up`](crate::Passwordless::sign_up) is
    /// on; otherwise nothing is sent. Refusals come before anything is sent:
    /// [`Error::InvalidInput`] for a malformed address, or (SMS) a number outside
    /// [`SmsPolicy::allowed_prefixes`](crate::SmsPolicy::allowed_prefixes);
    /// [`Error::RateLimited`] when the client, the address or (SMS) all texts together
    /// used their budget — a spent global SMS budget is also logged at `error` level, so
    /// the application can offer another method; [`Error::Config`] without a sender.
    pub async fn send(&self, to: &str, ctx: &RequestContext) -> Result<Sent, Error> {
        let method = match self.channel {
            Channel::SmsCode => Method::SmsCode,
            _ => Method::EmailCode,
        };
        allow(self.inner, ctx.org_id, method).await?;
        let recipient = self.recipient(to)?;
        if let Recipient::Email(email) = &recipient {
            crate::flows::sso::enforce_sso(self.inner, email).await?;
        }
        spend_send_budget(self.inner, self.channel, recipient.as_str(), false, ctx).await?;
        let (account, deliverable) = account_at_send(self.inner, &recipient).await?;
        let request = NewRequest {
            deliverable,
            ..NewRequest::new(Purpose::SignIn, None, account.as_ref())
        };
        let sent = self.start(recipient, request, ctx).await?;
        let method = match self.channel {
            Channel::SmsCode => "sms",
            _ => "email",
        };
        super::log_started(self.inner, account.as_ref(), method, ctx).await;
        Ok(sent)
    }

    /// Sends a code that proves `user` receives mail (or texts) at the address on their
    /// account; [`confirm`](Self::confirm) marks it verified. A sign-in code cannot
    /// confirm, nor this code sign in.
    pub async fn send_verification(
        &self,
        user: UserId,
        ctx: &RequestContext,
    ) -> Result<Sent, Error> {
        let account = self
            .inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::NotFound { what: "user" })?;
        let recipient = match self.channel {
            Channel::SmsCode => account.phone.clone().map(Recipient::Phone),
            _ => account.email.clone().map(Recipient::Email),
        }
        .ok_or_else(|| Error::invalid("user", "has no address for this channel"))?;
        spend_send_budget(self.inner, self.channel, recipient.as_str(), false, ctx).await?;
        let request = NewRequest {
            deliverable: !account.blocked,
            ..NewRequest::new(Purpose::Verify, Some(user), Some(&account))
        };
        self.start(recipient, request, ctx).await
    }

    /// Sends a password-reset code to an account's address. The same answer whether or
    /// not an account has it; only an existing, unblocked account gets mail. No account is
    /// created.
    pub(crate) async fn send_reset(&self, to: &str, ctx: &RequestContext) -> Result<Sent, Error> {
        let recipient = self.recipient(to)?;
        spend_send_budget(self.inner, self.channel, recipient.as_str(), false, ctx).await?;
        let (user, _) = account_at_send(self.inner, &recipient).await?;
        let request = NewRequest {
            deliverable: user.as_ref().is_some_and(|u| !u.blocked),
            ..NewRequest::new(Purpose::PasswordReset, None, user.as_ref())
        };
        self.start(recipient, request, ctx).await
    }

    /// Sends the code that proves the address of an account still to be made
    /// ([`SignUps`](crate::SignUps)); `deliverable` is `false` for a taken address, whose
    /// request then answers like any other and never verifies.
    pub(crate) async fn send_sign_up(
        &self,
        recipient: Recipient,
        deliverable: bool,
        pending: crate::crypto::Sealed,
        ctx: &RequestContext,
    ) -> Result<Sent, Error> {
        spend_send_budget(self.inner, self.channel, recipient.as_str(), false, ctx).await?;
        // No account yet (or not the sender's): nothing to carry a stamp of.
        let request = NewRequest {
            deliverable,
            pending: Some(pending),
            ..NewRequest::new(Purpose::SignUp, None, None)
        };
        self.start(recipient, request, ctx).await
    }

    /// Sends the code of a second factor to `user`'s own address or number.
    pub(crate) async fn send_second_factor(
        &self,
        user: &crate::model::User,
        recipient: Recipient,
        ctx: &RequestContext,
    ) -> Result<Sent, Error> {
        spend_send_budget(self.inner, self.channel, recipient.as_str(), true, ctx).await?;
        let request = NewRequest::new(Purpose::SecondFactor, Some(user.id), Some(user));
        self.start(recipient, request, ctx).await
    }

    /// Stores a new request and sends its first code (the budgets are the caller's).
    pub(crate) async fn start(
        &self,
        recipient: Recipient,
        request: NewRequest,
        ctx: &RequestContext,
    ) -> Result<Sent, Error> {
        let inner = self.inner;
        let now = inner.clock.now();
        let id = RequestId::generate();
        let code = OneTimeCode::new(numeric_code(inner.config.config.codes.digits)?.as_str());
        let identifier = recipient.as_str().to_owned();
        let NewRequest {
            purpose,
            user_id,
            stamp,
            deliverable,
            pending,
        } = request;
        let state = RequestState {
            channel: self.channel,
            purpose,
            secret: self.hash(id, &identifier, purpose, &code),
            identifier,
            user_id,
            deliverable,
            org_id: ctx.org_id,
            locale: ctx.locale.clone(),
            code_request: None,
            attempts: 0,
            sends: 1,
            poll: None,
            device_code: None,
            requester: Requester {
                ip: ctx.ip,
                user_agent: ctx.user_agent.clone(),
                at: now,
            },
            stage: Stage::Pending,
            stamp,
            pending,
        };
        let ttl = self.channel.ttl(inner);
        super::insert(inner, id, &state, now + ttl).await?;
        tracing::debug!(request_id = %id, channel = ?self.channel, "code request started");
        deliver(inner, id, &state, None, Some(code)).await?;
        Ok(Sent {
            request_id: id,
            expires_in: ttl,
        })
    }

    /// Sends a new code for the same request: the old code stops working, the request's
    /// wrong-attempt count carries over, and the same send limits apply as to
    /// [`send`](Self::send). A request that is unknown, used up or expired gives
    /// [`Error::Expired`]: start again with `send`.
    pub async fn resend(&self, request_id: RequestId, ctx: &RequestContext) -> Result<Sent, Error> {
        let inner = self.inner;
        let first = load(inner, request_id).await?.ok_or(Error::Expired)?;
        if first.state.channel != self.channel || !super::usable(inner, &first.state) {
            return Err(Error::Expired);
        }
        let proven = first.state.purpose == Purpose::SecondFactor;
        spend_send_budget(inner, self.channel, &first.state.identifier, proven, ctx).await?;
        let ttl = self.channel.ttl(inner);
        for _ in 0..super::MAX_RETRIES {
            let loaded = load(inner, request_id).await?.ok_or(Error::Expired)?;
            if !super::usable(inner, &loaded.state) {
                return Err(Error::Expired);
            }
            let code = OneTimeCode::new(numeric_code(inner.config.config.codes.digits)?.as_str());
            let mut state = loaded.state.clone();
            state.secret = self.hash(request_id, &state.identifier, state.purpose, &code);
            state.sends += 1;
            if super::replace(inner, &loaded, &state, inner.clock.now() + ttl).await? {
                tracing::debug!(%request_id, "code resent");
                deliver(inner, request_id, &state, None, Some(code)).await?;
                return Ok(Sent {
                    request_id,
                    expires_in: ttl,
                });
            }
        }
        Err(Error::Conflict { what: "request" })
    }

    /// Signs in (or up) with a sign-in code. Every failure — wrong code, unknown or used
    /// request, a code for another purpose, a blocked account — is
    /// [`Error::InvalidCredentials`], the same whether or not the address has an account;
    /// [`Error::RateLimited`] once the address or the client failed too often;
    /// [`Error::InvalidInput`] for input too long to be a code; [`Error::Forbidden`] when
    /// the request ran in an organization the account is not a member of. Of concurrent
    /// verifies of one code exactly one succeeds. See
    /// [`flows`](crate::flows) for what proving an address does to an account that was
    /// never proven.
    pub async fn verify(
        &self,
        request_id: RequestId,
        code: &OneTimeCode,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let (state, ctx) = self.redeem(request_id, code, Purpose::SignIn, ctx).await?;
        let recipient = state.recipient()?;
        let user = account_for(self.inner, &recipient, &ctx)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let method = match self.channel {
            Channel::SmsCode => AuthMethod::Sms,
            _ => AuthMethod::Email,
        };
        complete_first_factor(self.inner, Proven::current(user), method, None, &ctx).await
    }

    /// Confirms a code from [`send_verification`](Self::send_verification): marks the
    /// address verified on the user's account and returns the user. The same errors as
    /// [`verify`](Self::verify); also [`Error::InvalidCredentials`] when the address is no
    /// longer the user's.
    pub async fn confirm(
        &self,
        request_id: RequestId,
        code: &OneTimeCode,
        ctx: &RequestContext,
    ) -> Result<UserId, Error> {
        let (state, ctx) = self.redeem(request_id, code, Purpose::Verify, ctx).await?;
        let user = state.user_id.ok_or(Error::InvalidCredentials)?;
        let recipient = state.recipient()?;
        for _ in 0..super::MAX_RETRIES {
            let account = self
                .inner
                .users
                .get_user(user)
                .await?
                .ok_or(Error::InvalidCredentials)?;
            match super::mark_verified(self.inner, account, &recipient, Proof::Owner, &ctx).await {
                Err(Error::Store(crate::StoreError::Stale)) => continue,
                Ok(Some(user)) => return Ok(user),
                // An owner's proof never takes the address away.
                Ok(None) => return Err(Error::InvalidCredentials),
                Err(err) => return Err(err),
            }
        }
        Err(Error::Conflict { what: "user" })
    }

    /// Checks the budgets, then claims the request with the code: exactly once.
    pub(crate) async fn redeem(
        &self,
        request_id: RequestId,
        code: &OneTimeCode,
        purpose: Purpose,
        ctx: &RequestContext,
    ) -> Result<(RequestState, RequestContext), Error> {
        let inner = self.inner;
        let code = normalize(code)?;
        let method = match self.channel {
            Channel::SmsCode => "sms",
            _ => "email",
        };
        let Some(first) = load(inner, request_id).await? else {
            // Guessing at request ids costs the client like a wrong code.
            record_failure(inner, None, None, ctx, method).await?;
            return Err(Error::InvalidCredentials);
        };
        let identifier = first.state.identifier.clone();
        // Counted before the code is judged, in one atomic step, so a burst of guesses
        // cannot all pass a check made before any was recorded (CON-02).
        let attempt = count_attempt(inner, &identifier, first.state.user_id, ctx).await?;
        let judge = |state: &RequestState| {
            if state.channel != self.channel || state.purpose != purpose {
                return Judgement::Refuse(Error::InvalidCredentials);
            }
            let presented = code_matches(
                &inner.hasher,
                self.channel,
                request_id,
                &state.identifier,
                state.purpose,
                &code,
                &state.secret,
            );
            match presented {
                true => Judgement::Accept,
                false => Judgement::Wrong,
            }
        };
        match claim(inner, request_id, || Error::InvalidCredentials, judge).await? {
            Claimed::Won(loaded) => {
                super::remove(inner, request_id).await?;
                if !super::stamp_holds(inner, &loaded.state).await? {
                    tracing::info!(%request_id, "a code from before a credential change was refused");
                    return Err(Error::InvalidCredentials);
                }
                let mut ctx = ctx.clone();
                ctx.org_id = loaded.state.org_id;
                Ok((loaded.state, ctx))
            }
            Claimed::Wrong(state) => {
                log_failure(inner, &attempt, state.user_id, ctx, method).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }

    fn recipient(&self, to: &str) -> Result<Recipient, Error> {
        Ok(match self.channel {
            Channel::SmsCode => Recipient::Phone(Phone::parse(to)?),
            _ => Recipient::Email(Email::parse(to)?),
        })
    }

    fn hash(
        &self,
        id: RequestId,
        identifier: &str,
        purpose: Purpose,
        code: &OneTimeCode,
    ) -> SecretHash {
        code_hash(
            &self.inner.hasher,
            self.channel,
            id,
            identifier,
            purpose,
            code,
        )
    }
}

/// Whether `stored` is the stored form of `code` under any pepper of the ring (a code sent
/// before a rotation still works), compared in constant time.
pub(crate) fn code_matches(
    hasher: &crate::crypto::SecretHasher,
    channel: Channel,
    id: RequestId,
    identifier: &str,
    purpose: Purpose,
    code: &OneTimeCode,
    stored: &SecretHash,
) -> bool {
    let parts = code_parts(&id, identifier, purpose, code);
    hasher.matches(code_purpose(channel), &parts, stored)
}

/// What a code's hash binds: its request, address and purpose, then the code.
fn code_parts<'a>(
    id: &'a RequestId,
    identifier: &'a str,
    purpose: Purpose,
    code: &'a OneTimeCode,
) -> [&'a [u8]; 4] {
    [
        id.as_bytes(),
        identifier.as_bytes(),
        purpose.as_str().as_bytes(),
        code.secret().as_bytes(),
    ]
}

fn code_purpose(channel: Channel) -> SecretPurpose {
    match channel {
        Channel::SmsCode => SecretPurpose::SmsCode,
        _ => SecretPurpose::EmailCode,
    }
}

/// The stored form of a code: bound to its channel, request, address and purpose.
pub(crate) fn code_hash(
    hasher: &crate::crypto::SecretHasher,
    channel: Channel,
    id: RequestId,
    identifier: &str,
    purpose: Purpose,
    code: &OneTimeCode,
) -> SecretHash {
    let parts = code_parts(&id, identifier, purpose, code);
    hasher.hash_parts(code_purpose(channel), &parts)
}

/// A code as typed, without the spaces or hyphens people put in it. Anything else that is
/// not the code (letters, an empty string) is simply a wrong code and counts as one
/// (checklist RL-05: a missing credential is a failure); only input too long to be a code
/// at all is refused as malformed, unhashed.
pub(crate) fn normalize(code: &OneTimeCode) -> Result<OneTimeCode, Error> {
    if code.secret().len() > 64 {
        return Err(Error::invalid("code", "is too long"));
    }
    Ok(OneTimeCode::new(
        code.secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Pepper, SecretHasher};

    /// OOB-04: the same code hashes differently for another request, address, purpose or
    /// channel, so it verifies only where it was sent.
    #[test]
    fn a_code_hash_binds_request_address_purpose_and_channel() {
        let hasher = SecretHasher::new(&Pepper::from_bytes([3u8; 32]).unwrap()).unwrap();
        let id = RequestId::generate();
        let code = OneTimeCode::new("123456");
        let base =
            |channel, id, who: &str, purpose| code_hash(&hasher, channel, id, who, purpose, &code);
        let a = base(Channel::EmailCode, id, "a@example.com", Purpose::SignIn);
        assert_eq!(
            a,
            base(Channel::EmailCode, id, "a@example.com", Purpose::SignIn)
        );
        for other in [
            base(
                Channel::EmailCode,
                RequestId::generate(),
                "a@example.com",
                Purpose::SignIn,
            ),
            base(Channel::EmailCode, id, "b@example.com", Purpose::SignIn),
            base(Channel::EmailCode, id, "a@example.com", Purpose::Verify),
            base(Channel::SmsCode, id, "a@example.com", Purpose::SignIn),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn typed_codes_lose_their_spacing_and_overlong_input_is_refused() {
        let code = normalize(&OneTimeCode::new(" 123-456 ")).unwrap();
        assert_eq!(code.secret(), "123456");
        assert_eq!(normalize(&OneTimeCode::new("")).unwrap().secret(), "");
        assert!(normalize(&OneTimeCode::new("1".repeat(65))).is_err());
    }
}
