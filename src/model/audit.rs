//! Authentication events: the login log.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{EventId, OrgId, UserId};
use crate::{Error, Timestamp};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthEventKind {
    /// A new account was created.
    SignUp,
    /// A sign-in completed.
    SignIn,
    /// A sign-in attempt failed.
    SignInFailed,
    /// A first factor passed and the MFA step began.
    MfaChallenged,
    /// A session ended by sign-out.
    SignOut,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// An already-rotated refresh token was presented: the session was revoked.
    RefreshTokenReused,
    /// A session was revoked.
    SessionRevoked,
    /// A request was refused by a rate limit or attempt budget.
    RateLimited,
    /// An account was locked after repeated failures.
    AccountLocked,
    /// A credential or factor was added.
    FactorAdded,
    /// A credential or factor was removed.
    FactorRemoved,
    /// A password was set, changed or reset.
    PasswordChanged,
    /// A user was blocked.
    UserBlocked,
    /// A block was lifted.
    UserUnblocked,
    /// An administrator changed a user.
    UserUpdated,
    /// A user was deleted.
    UserDeleted,
    /// A sign-in ceremony began for the account: a link or code was sent.
    CeremonyStarted,
    /// An administrator changed an organization, its apps, roles, permissions or API
    /// credentials (the reason names the action: `org_updated`, `role_deleted`…).
    AdminAction,
    /// A client's failure or sign-up budget was spent: it is throttled for the window (the
    /// reason names the budget).
    IpThrottled,
    /// A lockout or an address's throttle was lifted (reason `owner` or `admin`).
    LockoutLifted,
    /// A bot check was asked for and not passed (reason `missing`, `invalid`,
    /// `unavailable`).
    BotCheckFailed,
    /// A sign-in that looks unusual (reason `new_device`, `after_failures`,
    /// `impossible_travel`).
    SuspiciousSignIn,
    /// A password found breached at sign-in (reason `warned`, `change_required`), or a
    /// breach checker that could not answer (`checker_unavailable`).
    BreachedPassword,
    /// A request from a network on the installation's denylist was refused.
    IpDenied,
}

impl AuthEventKind {
    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthEventKind::SignUp => "sign_up",
            AuthEventKind::SignIn => "sign_in",
            AuthEventKind::SignInFailed => "sign_in_failed",
            AuthEventKind::MfaChallenged => "mfa_challenged",
            AuthEventKind::SignOut => "sign_out",
            AuthEventKind::TokenRefreshed => "token_refreshed",
            AuthEventKind::RefreshTokenReused => "refresh_token_reused",
            AuthEventKind::SessionRevoked => "session_revoked",
            AuthEventKind::RateLimited => "rate_limited",
            AuthEventKind::AccountLocked => "account_locked",
            AuthEventKind::FactorAdded => "factor_added",
            AuthEventKind::FactorRemoved => "factor_removed",
            AuthEventKind::PasswordChanged => "password_changed",
            AuthEventKind::UserBlocked => "user_blocked",
            AuthEventKind::UserUnblocked => "user_unblocked",
            AuthEventKind::UserUpdated => "user_updated",
            AuthEventKind::UserDeleted => "user_deleted",
            AuthEventKind::CeremonyStarted => "ceremony_started",
            AuthEventKind::AdminAction => "admin_action",
            AuthEventKind::IpThrottled => "ip_throttled",
            AuthEventKind::LockoutLifted => "lockout_lifted",
            AuthEventKind::BotCheckFailed => "bot_check_failed",
            AuthEventKind::SuspiciousSignIn => "suspicious_sign_in",
            AuthEventKind::BreachedPassword => "breached_password",
            AuthEventKind::IpDenied => "ip_denied",
        }
    }

    const ALL: [AuthEventKind; 25] = [
        AuthEventKind::SignUp,
        AuthEventKind::SignIn,
        AuthEventKind::SignInFailed,
        AuthEventKind::MfaChallenged,
        AuthEventKind::SignOut,
        AuthEventKind::TokenRefreshed,
        AuthEventKind::RefreshTokenReused,
        AuthEventKind::SessionRevoked,
        AuthEventKind::RateLimited,
        AuthEventKind::AccountLocked,
        AuthEventKind::FactorAdded,
        AuthEventKind::FactorRemoved,
        AuthEventKind::PasswordChanged,
        AuthEventKind::UserBlocked,
        AuthEventKind::UserUnblocked,
        AuthEventKind::UserUpdated,
        AuthEventKind::UserDeleted,
        AuthEventKind::CeremonyStarted,
        AuthEventKind::AdminAction,
        AuthEventKind::IpThrottled,
        AuthEventKind::LockoutLifted,
        AuthEventKind::BotCheckFailed,
        AuthEventKind::SuspiciousSignIn,
        AuthEventKind::BreachedPassword,
        AuthEventKind::IpDenied,
    ];
}

impl FromStr for AuthEventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid("event_kind", "unknown event kind"))
    }
}

impl fmt::Display for AuthEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded authentication event. Holds no secret: reasons are error codes, methods
/// are `amr` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthEvent {
    /// The event's id (time-ordered).
    pub id: EventId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: AuthEventKind,
    /// Whom it concerns, when known.
    pub user_id: Option<UserId>,
    /// The organization it ran in.
    pub org_id: Option<OrgId>,
    /// The method involved (`pwd`, `otp`, `hwk`, `email`…).
    pub method: Option<String>,
    /// Why it failed: an [`Error::code`] or a short reason code.
    pub reason: Option<String>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The event before this one in its user's log: each user's events form a chain.
    /// `None` for a user's first event, and for events that name no user.
    #[serde(default)]
    pub prev: Option<EventId>,
    /// The previous event's seal (hex): an edited or removed event breaks the chain
    /// ([`Audit::verify_chain`](crate::Audit::verify_chain)).
    #[serde(default)]
    pub prev_hash: Option<String>,
    /// The engine's keyed hash of the personal data (address and user agent, hex): it
    /// stands in for them in the chain, so they can be forgotten without breaking it.
    #[serde(default)]
    pub personal_digest: Option<String>,
    /// The engine's keyed hash of this event (hex): every field but the personal data
    /// (its digest stands in) and the seal itself.
    #[serde(default)]
    pub seal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuthEventKind::ALL {
            assert_eq!(kind.as_str().parse::<AuthEventKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("nope".parse::<AuthEventKind>().is_err());
    }
}
