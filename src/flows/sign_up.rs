//! Sign-ups that wait for their address (`auth.sign_ups()`).
//!
//! A sign-up with a password or a passkey makes no account at first: the engine emails a
//! code to the address and keeps the account to be (its password hash, its passkey)
//! sealed in the request. [`SignUps::confirm`] with that code makes the account, its
//! address proven, and signs it in. So nobody holds an account for an address they do
//! not receive mail at (no pre-registered account waits for its owner), and the answer
//! to a sign-up is the same whether or not the address has an account (checklist
//! ENUM-03): for a taken address the owner is told that someone tried, and no code for
//! that request ever verifies.
//!
//! Sign-ups are counted per client and for everyone together before any password is
//! screened or hashed ([`Limits::sign_ups_per_ip`](crate::Limits::sign_ups_per_ip),
//! [`Limits::sign_ups`](crate::Limits::sign_ups)), and spend the send budgets of any
//! emailed code.

use serde::{Deserialize, Serialize};

use super::codes::Codes;
use super::{Purpose, Sent, create_account, find_user};
use crate::crypto::OneTimeCode;
use crate::delivery::{Message, MessageKind, Recipient};
use crate::engine::Inner;
use crate::model::{Email, PasskeyCredential, PasswordHash, RequestId, User, UserId};
use crate::signin::{AuthMethod, Proven, SignIn, complete_first_factor};
use crate::{Error, RequestContext, StoreError};

/// The account a sign-up makes once its address is proven.
#[derive(Serialize, Deserialize)]
pub(crate) struct PendingAccount {
    pub(crate) user_id: UserId,
    pub(crate) name: Option<String>,
    pub(crate) password_hash: Option<PasswordHash>,
    pub(crate) passkey: Option<PasskeyCredential>,
}

/// Sign-ups waiting for their code (`auth.sign_ups()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct SignUps<'a> {
    inner: &'a Inner,
}

impl<'a> SignUps<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        SignUps { inner }
    }

    /// Finishes a sign-up with the code emailed for it: makes the account (its address
    /// proven, with the password or passkey given at the start) and signs it in, as any
    /// first factor does (an organization's MFA rule included).
    ///
    /// Every failure is [`Error::InvalidCredentials`] — a wrong, used or expired code, and
    /// a request for an address that already had an account (or took one meanwhile) —
    /// so the answer never tells who has an account; [`Error::RateLimited`] once the
    /// address or the client failed too often. Exactly once, also under concurrency.
    pub async fn confirm(
        &self,
        request_id: RequestId,
        code: &OneTimeCode,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        let (state, ctx) = Codes::new(inner)
            .email()
            .redeem(request_id, code, Purpose::SignUp, ctx)
            .await?;
        let (true, Some(sealed)) = (state.deliverable, state.pending.as_ref()) else {
            // The address had an account when the sign-up started: nothing to make.
            return Err(Error::InvalidCredentials);
        };
        let email = Email::parse(&state.identifier)?;
        let opened = inner.keyring.open(sealed, &aad(&email))?;
        let account: PendingAccount = serde_json::from_slice(&opened).map_err(|_| {
            Error::Store(StoreError::Corrupt {
                what: "pending sign-up",
            })
        })?;
        let mut user = User::new(account.user_id, inner.clock.now());
        user.email = Some(email);
        user.email_verified = true;
        user.name = account.name;
        user.password_hash = account.password_hash;
        let method = match &account.passkey {
            Some(passkey) => AuthMethod::Passkey {
                synced: passkey.backup_eligible,
                user_verified: passkey.registered_with_uv,
            },
            None => AuthMethod::Email,
        };
        let logged = match account.passkey.is_some() {
            true => "passkey",
            false => "pwd",
        };
        if !create_account(inner, &user, logged, &ctx).await? {
            // Taken since the sign-up started: the same answer as a wrong code.
            return Err(Error::InvalidCredentials);
        }
        if let Some(passkey) = &account.passkey
            && let Err(err) = super::passkey::add_passkey(inner, passkey, &ctx).await
        {
            super::passkey::undo_sign_up(inner, user.id).await;
            return Err(err);
        }
        tracing::debug!(user_id = %user.id, "signed up with a proven address");
        complete_first_factor(inner, Proven::by(&user), method, None, &ctx).await
    }
}

/// The associated data a pending account is sealed under: its address.
fn aad(email: &Email) -> Vec<u8> {
    [b"portcullis/sign-up/".as_slice(), email.as_str().as_bytes()].concat()
}

/// Counts a sign-up against the client's and everyone's budgets, before any work.
///
/// Returns the context the rest of the sign-up runs with: marked when it passed a bot
/// check here, so its code is not held up by another.
pub(crate) async fn spend_budget(
    inner: &Inner,
    ctx: &RequestContext,
) -> Result<RequestContext, Error> {
    let mut ctx = ctx.clone();
    let limits = &inner.config.config.limits;
    ctx.bot_checked |=
        crate::protect::bot::gate_client(inner, "sign_up_ip", &limits.sign_ups_per_ip, &ctx)
            .await?;
    // A caller that gives no client address (a server-side import) answers only to the
    // budget of everyone together, as for emailed codes.
    crate::protect::guard::hit_client(inner, "sign_up_ip", &limits.sign_ups_per_ip, &ctx).await?;
    crate::protect::RateLimiter::new(inner)
        .hit("sign_up_all", "all", &limits.sign_ups)
        .await
        .inspect_err(|_| tracing::warn!("the global sign-up budget is spent"))?;
    Ok(ctx)
}

/// Starts a sign-up for `email`: a code for a free address, a notice to the owner of a
/// taken one, and the same answer for both.
pub(crate) async fn start(
    inner: &Inner,
    email: Email,
    account: &PendingAccount,
    ctx: &RequestContext,
) -> Result<Sent, Error> {
    let recipient = Recipient::Email(email.clone());
    let owner = find_user(inner, &recipient).await?;
    let value =
        serde_json::to_vec(account).map_err(|_| Error::Internal("serializing a sign-up"))?;
    let sealed = inner.keyring.seal(&value, &aad(&email))?;
    let sent = Codes::new(inner)
        .email()
        .send_sign_up(recipient.clone(), owner.is_none(), sealed, ctx)
        .await?;
    if let Some(owner) = owner.filter(|u| !u.blocked) {
        let notice = Message {
            kind: MessageKind::SignUpAttempt,
            to: recipient,
            link: None,
            code: None,
            expires_in: std::time::Duration::ZERO,
            locale: ctx.locale.clone(),
            org_id: ctx.org_id,
            request_id: sent.request_id,
            activity: None,
        };
        // Delivered like the code a free address gets, so both answers take as long.
        if let Err(err) = super::send_message(inner, notice).await {
            tracing::warn!(user_id = %owner.id, error = %err, "could not send a sign-up notice");
        }
    }
    Ok(sent)
}
