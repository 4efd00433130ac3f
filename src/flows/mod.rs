//! The ceremonies, one module each. What passwordless ones share has a module of its own:
//! the request record (`request`) and which account a proven address signs in to or up
//! (`account`); send and failure budgets are in [`crate::protect`], sending a message in
//! `crate::delivery`.

pub(crate) mod account;
pub mod codes;
pub(crate) mod email_change;
pub mod magic_link;
pub mod passkey;
pub mod password;
pub(crate) mod request;
mod requester;
pub mod sign_up;
pub mod sso;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use crate::protect::failures::{
    Attempt, account_subject, check_client_failures, check_failures, clear_account_failures,
    count_attempt, count_attempt_in, failures_so_far, known_device, log_failure, record_failure,
    record_failure_because,
};

use crate::RequestContext;
use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, RequestId, User};

pub(crate) use self::account::*;
pub(crate) use self::request::*;
pub(crate) use crate::delivery::send::*;
pub(crate) use crate::protect::sends::*;
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

/// How often a compare-and-swap is retried before the engine gives up with
/// [`Error::Conflict`] (only a misbehaving store, or a storm of writes to one record, gets
/// there).
pub(crate) const MAX_RETRIES: usize = 32;

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
