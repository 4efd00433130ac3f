//! Magic links, with cross-device status and same-device binding.
//!
//! [`send`](MagicLinks::send) emails a link to `{public_origin}{link_path}?token=…` (the
//! origin comes from configuration, never from a request) and answers with a request id, a
//! poll token for the asking tab and, with [`Passwordless::bind_device`] on, a short device
//! code for that tab to show. The token is 256 random bits, stored only as a keyed hash.
//!
//! # Opening a link: peek, then verify
//!
//! Mail scanners fetch links before people click them, so opening the link must not use
//! it. The landing page calls [`peek`](MagicLinks::peek) (a `GET` that changes nothing) to
//! render a confirm button, and only the button's `POST` calls
//! [`verify`](MagicLinks::verify), which consumes the link exactly once. The page should
//! answer with `Referrer-Policy: no-referrer` and drop the token from the address bar
//! (`history.replaceState`) so it leaks nowhere.
//!
//! # Cross-device status and binding
//!
//! The asking tab polls [`status`](MagicLinks::status) with its poll token: once the link
//! is verified — on this device or on a phone — the poll receives a sign-in of its own,
//! once. The poll token never leaves that tab, so nobody else can collect it.
//!
//! Because the asking tab is signed in by whoever opens the link, a phishing page could ask
//! for a link to its victim's address and wait for the victim to click. Same-device binding
//! (on by default) raises the bar: a link opened in a browser that cannot present the poll
//! token (the landing page reads it from the storage the asking tab wrote) must also be
//! given the device code shown in the asking tab. A victim who merely clicks signs nobody
//! in; the phishing page would have to persuade them to type its code, so the confirm
//! page should show prominently who asked ([`LinkPeek::requested_by`]: address, browser
//! and time, and [`LinkPeek::place`] where the application gave the builder a
//! [`Locate`](crate::Locate)) beside the code field. Wrong device codes spend the request's attempts like
//! wrong one-time codes.
//!
//! [`Passwordless::bind_device`]: crate::Passwordless::bind_device

use std::time::Duration;

use super::{
    Attempt, Channel, Claimed, Judgement, Purpose, RequestState, Requester, Sent, Stage,
    account_at_send, account_for, check_client_failures, claim, deliver, load, log_failure,
    spend_send_budget,
};
use crate::crypto::{
    MagicLinkToken, OneTimeCode, PollToken, SecretHash, SecretPurpose, numeric_code, random_token,
};
use crate::delivery::{Recipient, SecretLink};
use crate::directory::orgs::{Method, allow};
use crate::engine::Inner;
use crate::model::{ChallengeKey, ChallengeKind, Email, RequestId};
use crate::signin::{AuthMethod, Proven, SignIn, complete_first_factor};
use crate::tokens::AuthCodeRequest;
use crate::{Error, RequestContext};

/// Magic links (see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct MagicLinks<'a> {
    inner: &'a Inner,
}

/// Choices for one magic link.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LinkOptions {
    /// End in an authorization code for this client instead of tokens (a redirect flow):
    /// the redirect URI must be one the client registered, exactly (checked before
    /// anything is sent).
    pub redirect: Option<AuthCodeRequest>,
}

impl LinkOptions {
    /// No redirect: verifying signs in with tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends in an authorization code for `request`'s client and redirect URI.
    pub fn with_redirect(mut self, request: AuthCodeRequest) -> Self {
        self.redirect = Some(request);
        self
    }
}

/// A link request that was accepted. The same shape whether or not the address has an
/// account.
#[derive(Debug, Clone)]
pub struct LinkSent {
    /// Names the request in [`resend`](MagicLinks::resend) and
    /// [`status`](MagicLinks::status).
    pub request_id: RequestId,
    /// Lets the asking tab, and only it, poll the status. Keep it in that tab (and its
    /// browser's storage, so the landing page can prove it is the same browser).
    pub poll_token: PollToken,
    /// With same-device binding: the code the asking tab shows, for a link opened in
    /// another browser.
    pub device_code: Option<OneTimeCode>,
    /// How long the link stays valid.
    pub expires_in: Duration,
}

/// What a browser opening a link can show about being the one that asked.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeviceProof {
    /// The poll token the asking tab stored, when this is the same browser.
    pub poll_token: Option<PollToken>,
    /// The code shown in the asking tab, typed in another browser.
    pub device_code: Option<OneTimeCode>,
}

impl DeviceProof {
    /// No proof: another browser, no code (yet).
    pub fn none() -> Self {
        Self::default()
    }

    /// The poll token found in this browser's storage.
    pub fn with_poll_token(mut self, token: PollToken) -> Self {
        self.poll_token = Some(token);
        self
    }

    /// The device code the person typed.
    pub fn with_device_code(mut self, code: OneTimeCode) -> Self {
        self.device_code = Some(code);
        self
    }
}

/// What the landing page may show before the person confirms. Reading it consumes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkPeek {
    /// How long the link stays valid.
    pub expires_in: Duration,
    /// Whether [`verify`](MagicLinks::verify) will need the device code (another browser
    /// than the one that asked, with binding on).
    pub needs_device_code: bool,
    /// Who asked for the link: show it, so a person who did not ask can tell (its
    /// [`browser`](Requester::browser) label, not the raw user agent).
    pub requested_by: Requester,
    /// Roughly where the asker was, from the builder's [`Locate`](crate::Locate): at most
    /// [`MAX_PLACE`](Self::MAX_PLACE) printable characters. `None` without a hook, without
    /// an address, or when the hook did not know it.
    pub place: Option<String>,
}

impl LinkPeek {
    /// The longest place shown, in characters.
    pub const MAX_PLACE: usize = 64;
}

/// Where a link request stands, for the asking tab.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LinkStatus {
    /// Not verified yet.
    Pending,
    /// Verified: this is the asking tab's sign-in. Delivered once; later polls say
    /// [`LinkStatus::Expired`].
    Verified(SignIn),
    /// Expired, unknown, used up, or already collected.
    Expired,
}

impl<'a> MagicLinks<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        MagicLinks { inner }
    }

    /// Emails a sign-in link to `email`.
    ///
    /// Answers the same whether or not an account has the address: without one, the link
    /// signs the person up when [`Passwordless::sign_up`](crate::Passwordless::sign_up) is
    /// on, and nothing is sent otherwise. Refused with [`Error::InvalidInput`] for a bad
    /// address or a redirect the client did not register, and with [`Error::RateLimited`]
    /// when the address or client asked too often — before anything is sent.
    pub async fn send(
        &self,
        email: &str,
        options: &LinkOptions,
        ctx: &RequestContext,
    ) -> Result<LinkSent, Error> {
        let inner = self.inner;
        let email = Email::parse(email)?;
        crate::flows::sso::enforce_sso(inner, &email).await?;
        let mut org_id = ctx.org_id;
        if let Some(request) = &options.redirect {
            // The sign-in runs in the client's organization.
            let app = crate::tokens::auth_code::registered_app(inner, request, org_id).await?;
            org_id = Some(app.org_id);
        }
        allow(inner, org_id, Method::MagicLink).await?;
        spend_send_budget(inner, Channel::MagicLink, email.as_str(), false, ctx).await?;
        let recipient = Recipient::Email(email);
        let (account, deliverable) = account_at_send(inner, &recipient).await?;
        let stamp = account.as_ref().map(|u| u.security_stamp);

        let now = inner.clock.now();
        let id = RequestId::generate();
        let token = MagicLinkToken::new(random_token()?.as_str());
        let poll_token = PollToken::new(random_token()?.as_str());
        let device_code = match inner.config.config.passwordless.bind_device {
            true => Some(OneTimeCode::new(
                numeric_code(inner.config.config.codes.digits)?.as_str(),
            )),
            false => None,
        };
        let state = RequestState {
            channel: Channel::MagicLink,
            purpose: Purpose::SignIn,
            identifier: recipient.as_str().to_owned(),
            user_id: None,
            deliverable,
            org_id,
            locale: ctx.locale.clone(),
            code_request: options.redirect.clone(),
            secret: self.link_hash(&token),
            attempts: 0,
            sends: 1,
            poll: Some(self.poll_hash(id, &poll_token)),
            device_code: device_code.as_ref().map(|c| self.device_hash(id, c)),
            requester: Requester {
                ip: ctx.ip,
                user_agent: ctx.user_agent.clone(),
                at: now,
            },
            stage: Stage::Pending,
            stamp,
            pending: None,
        };
        let ttl = inner.config.config.ttl.magic_link;
        super::insert(inner, id, &state, now + ttl).await?;
        self.index_link(id, &state.secret, now + ttl).await?;
        tracing::debug!(request_id = %id, "magic link request started");
        deliver(inner, id, &state, Some(self.link(&token)), None).await?;
        let mut logged = ctx.clone();
        logged.org_id = org_id;
        super::log_started(inner, account.as_ref(), "email", &logged).await;
        Ok(LinkSent {
            request_id: id,
            poll_token,
            device_code,
            expires_in: ttl,
        })
    }

    /// Emails a new link for the same request; the earlier link stops working. The same
    /// send limits apply as to [`send`](Self::send). An unknown, used or expired request
    /// gives [`Error::Expired`].
    pub async fn resend(&self, request_id: RequestId, ctx: &RequestContext) -> Result<Sent, Error> {
        let inner = self.inner;
        let first = load(inner, request_id).await?.ok_or(Error::Expired)?;
        if first.state.channel != Channel::MagicLink || !super::usable(inner, &first.state) {
            return Err(Error::Expired);
        }
        spend_send_budget(
            inner,
            Channel::MagicLink,
            &first.state.identifier,
            false,
            ctx,
        )
        .await?;
        let ttl = inner.config.config.ttl.magic_link;
        for _ in 0..super::MAX_RETRIES {
            let loaded = load(inner, request_id).await?.ok_or(Error::Expired)?;
            if !super::usable(inner, &loaded.state) {
                return Err(Error::Expired);
            }
            let token = MagicLinkToken::new(random_token()?.as_str());
            let mut state = loaded.state.clone();
            state.secret = self.link_hash(&token);
            state.sends += 1;
            let expires_at = inner.clock.now() + ttl;
            if !super::replace(inner, &loaded, &state, expires_at).await? {
                continue;
            }
            // The old link's index goes; even if that failed, its hash no longer matches.
            let old = ChallengeKey::hashed(ChallengeKind::MagicLink, &loaded.state.secret);
            inner.challenges.delete(&old, inner.clock.now()).await?;
            self.index_link(request_id, &state.secret, expires_at)
                .await?;
            tracing::debug!(%request_id, "magic link resent");
            deliver(inner, request_id, &state, Some(self.link(&token)), None).await?;
            // The poll token and device code stay as they were, with the asking tab.
            return Ok(Sent {
                request_id,
                expires_in: ttl,
            });
        }
        Err(Error::Conflict { what: "request" })
    }

    /// What the landing page needs to render a confirm step. Consumes nothing: a mail
    /// scanner's prefetch is harmless. [`Error::InvalidToken`] for a link that is unknown,
    /// used, replaced by a resend or expired.
    pub async fn peek(
        &self,
        token: &MagicLinkToken,
        proof: &DeviceProof,
    ) -> Result<LinkPeek, Error> {
        let (loaded, _) = self.find(token).await?;
        let now = self.inner.clock.now();
        let requester = &loaded.state.requester;
        Ok(LinkPeek {
            expires_in: loaded.expires_at.duration_since(now),
            needs_device_code: self.needs_device_code(loaded.id, &loaded.state, proof),
            place: super::place_of(
                self.inner.locate.as_deref(),
                requester.ip,
                LinkPeek::MAX_PLACE,
            ),
            requested_by: requester.clone(),
        })
    }

    /// Uses the link: signs in (or up), or ends in an authorization code when the request
    /// carried a redirect. Exactly once, also under concurrency.
    ///
    /// Errors: [`Error::InvalidToken`] for a link that is unknown, used, replaced or
    /// expired (also when the address has no account and sign-up is off);
    /// [`Error::InvalidInput`] (`device_code`) when binding requires the device code and
    /// none was given; [`Error::InvalidCredentials`] for a wrong device code or a blocked
    /// account; [`Error::RateLimited`] while the client's failure budget
    /// is spent (the link stays usable); [`Error::Forbidden`] when the request ran in an
    /// organization the account is not a member of.
    pub async fn verify(
        &self,
        token: &MagicLinkToken,
        proof: &DeviceProof,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        let (first, link) = self.find(token).await?;
        let request_id = first.id;
        // A link proves the mailbox with a 256-bit token: no lockout of the account's
        // password or codes applies to it (a lockout must not keep the owner out). The
        // device code it may need is bounded by the request's own attempts (counted in
        // the claim, CON-02) and by the client's failure budget.
        check_client_failures(inner, ctx).await?;
        let device_code = match &proof.device_code {
            Some(code) => Some(super::codes::normalize(code)?),
            None => None,
        };
        let judge = |state: &RequestState| {
            if state.channel != Channel::MagicLink || !link.ct_eq(&state.secret) {
                return Judgement::Refuse(Error::InvalidToken);
            }
            if !self.needs_device_code(request_id, state, proof) {
                return Judgement::Accept;
            }
            let (Some(code), Some(expected)) = (&device_code, &state.device_code) else {
                return Judgement::Refuse(Error::invalid(
                    "device_code",
                    "this link was asked for in another browser: enter the code shown there",
                ));
            };
            match self.device_hash(request_id, code).ct_eq(expected) {
                true => Judgement::Accept,
                false => Judgement::Wrong,
            }
        };
        let loaded = match claim(inner, request_id, || Error::InvalidToken, judge).await? {
            Claimed::Won(loaded) => loaded,
            Claimed::Wrong(_) => {
                log_failure(inner, &Attempt::unbudgeted(), None, ctx, "email").await?;
                return Err(Error::InvalidCredentials);
            }
        };
        let mut ctx = ctx.clone();
        ctx.org_id = loaded.state.org_id;
        let user = match self.settle(&loaded, &link, &ctx).await {
            Ok(user) => user,
            Err(err) => {
                // The link is used up either way; the asking tab learns it is over.
                if let Err(undo) = super::remove(inner, request_id).await {
                    tracing::warn!(%request_id, error = %undo, "could not end a failed link request");
                }
                return Err(err);
            }
        };
        tracing::debug!(%request_id, "magic link verified");
        complete_first_factor(
            inner,
            Proven::current(user),
            AuthMethod::Email,
            loaded.state.code_request.as_ref(),
            &ctx,
        )
        .await
    }

    /// After a won claim: the link's index goes, the account is found (or made), and the
    /// request is marked verified for the asking tab to collect.
    async fn settle(
        &self,
        loaded: &super::Loaded,
        link: &SecretHash,
        ctx: &RequestContext,
    ) -> Result<crate::UserId, Error> {
        let inner = self.inner;
        let now = inner.clock.now();
        let key = ChallengeKey::hashed(ChallengeKind::MagicLink, link);
        inner.challenges.delete(&key, now).await?;
        if !super::stamp_holds(inner, &loaded.state).await? {
            tracing::info!(request_id = %loaded.id, "a link from before a credential change was refused");
            return Err(Error::InvalidToken);
        }
        let user = account_for(inner, &loaded.state.recipient()?, ctx)
            .await?
            .ok_or(Error::InvalidToken)?;
        let mut verified = loaded.state.clone();
        // The stamp after the proof: a reset, block or claim before the asking tab
        // collects its sign-in voids it.
        let stamp = inner.users.get_user(user).await?.map(|u| u.security_stamp);
        verified.stage = Stage::Verified {
            user_id: user,
            stamp,
        };
        let expires_at = now + inner.config.config.ttl.magic_link;
        // Only this call writes a claimed request, so the swap cannot lose; if the store
        // says otherwise, the asking tab must not be signed in from a state we did not write.
        if !super::replace(inner, loaded, &verified, expires_at).await? {
            return Err(Error::Conflict { what: "request" });
        }
        Ok(user)
    }

    /// The asking tab's poll. [`LinkStatus::Verified`] carries the tab's own sign-in,
    /// once. An unknown, expired or used-up request is [`LinkStatus::Expired`], whatever
    /// token comes with it; a live link request with a wrong poll token is
    /// [`Error::InvalidToken`].
    pub async fn status(
        &self,
        request_id: RequestId,
        poll_token: &PollToken,
        ctx: &RequestContext,
    ) -> Result<LinkStatus, Error> {
        let inner = self.inner;
        let Some(loaded) = load(inner, request_id).await? else {
            return Ok(LinkStatus::Expired);
        };
        let state = &loaded.state;
        let Some(expected) = state.poll.as_ref() else {
            // A code request: it has no status to poll.
            return Ok(LinkStatus::Expired);
        };
        if !self.poll_hash(request_id, poll_token).ct_eq(expected) {
            return Err(Error::InvalidToken);
        }
        if !matches!(state.stage, Stage::Verified { .. }) {
            return Ok(
                match super::usable(inner, state) || state.stage == Stage::Claimed {
                    true => LinkStatus::Pending,
                    false => LinkStatus::Expired,
                },
            );
        }
        // Verified is final, so whoever takes the record collects the sign-in.
        let key = ChallengeKey::new(ChallengeKind::Request, request_id.to_string());
        if inner
            .challenges
            .take(&key, inner.clock.now())
            .await?
            .is_none()
        {
            return Ok(LinkStatus::Expired);
        }
        let Stage::Verified { user_id, stamp } = state.stage else {
            return Ok(LinkStatus::Expired);
        };
        let mut ctx = ctx.clone();
        ctx.org_id = state.org_id;
        tracing::debug!(%request_id, "magic link sign-in collected by the asking tab");
        let sign_in = complete_first_factor(
            inner,
            Proven {
                user: user_id,
                stamp,
                read: None,
            },
            AuthMethod::Email,
            state.code_request.as_ref(),
            &ctx,
        )
        .await?;
        Ok(LinkStatus::Verified(sign_in))
    }

    /// The pending request a link token belongs to, and the token's hash.
    async fn find(&self, token: &MagicLinkToken) -> Result<(super::Loaded, SecretHash), Error> {
        let inner = self.inner;
        if token.secret().len() > 128 {
            return Err(Error::InvalidToken);
        }
        let hash = self.link_hash(token);
        let key = ChallengeKey::hashed(ChallengeKind::MagicLink, &hash);
        let record = inner
            .challenges
            .get(&key, inner.clock.now())
            .await?
            .ok_or(Error::InvalidToken)?;
        let id: RequestId = std::str::from_utf8(&record.value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(Error::InvalidToken)?;
        let loaded = load(inner, id).await?.ok_or(Error::InvalidToken)?;
        let usable = super::usable(inner, &loaded.state)
            && loaded.state.channel == Channel::MagicLink
            && hash.ct_eq(&loaded.state.secret);
        match usable {
            true => Ok((loaded, hash)),
            false => Err(Error::InvalidToken),
        }
    }

    fn needs_device_code(&self, id: RequestId, state: &RequestState, proof: &DeviceProof) -> bool {
        let same_browser = match (&proof.poll_token, &state.poll) {
            (Some(token), Some(expected)) => self.poll_hash(id, token).ct_eq(expected),
            _ => false,
        };
        state.device_code.is_some() && !same_browser
    }

    /// Finds a request by its link: the token's hash names the request id.
    async fn index_link(
        &self,
        id: RequestId,
        hash: &SecretHash,
        expires_at: crate::Timestamp,
    ) -> Result<(), Error> {
        let inner = self.inner;
        let key = ChallengeKey::hashed(ChallengeKind::MagicLink, hash);
        let value = id.to_string();
        if !inner
            .challenges
            .insert(&key, value.as_bytes(), expires_at, inner.clock.now())
            .await?
        {
            return Err(Error::Conflict { what: "magic_link" });
        }
        Ok(())
    }

    fn link(&self, token: &MagicLinkToken) -> SecretLink {
        let mut url = self.inner.config.link_base.clone();
        url.query_pairs_mut().append_pair("token", token.secret());
        SecretLink::new(url.into())
    }

    fn link_hash(&self, token: &MagicLinkToken) -> SecretHash {
        self.inner
            .hasher
            .hash(SecretPurpose::MagicLink, token.secret().as_bytes())
    }

    fn poll_hash(&self, id: RequestId, token: &PollToken) -> SecretHash {
        self.inner.hasher.hash_parts(
            SecretPurpose::PollToken,
            &[id.as_bytes(), token.secret().as_bytes()],
        )
    }

    fn device_hash(&self, id: RequestId, code: &OneTimeCode) -> SecretHash {
        self.inner.hasher.hash_parts(
            SecretPurpose::DeviceCode,
            &[id.as_bytes(), code.secret().as_bytes()],
        )
    }
}
