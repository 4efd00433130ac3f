//! [`Error`], the one error type of the engine, and the [`StoreError`] and
//! [`DeliveryError`] that adapters return.

use std::time::Duration;

/// A boxed error from an adapter's backend (a database driver, an SMTP client…).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a portcullis call can fail with.
///
/// Match on the variant, or on [`Error::code`], a stable snake_case string that HTTP layers
/// map to statuses. No variant ever carries a secret: messages are fixed texts or say which
/// field was wrong, never what it held.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input was malformed (an email without `@`, a phone that is not E.164…).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input was wrong.
        field: &'static str,
        /// Why, in words safe to show to the person who typed it.
        reason: String,
    },
    /// The credentials did not prove who the person is. Deliberately says nothing about
    /// whether the account exists or which part was wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A token or link is unknown, malformed, already used or was revoked.
    #[error("invalid or unknown token")]
    InvalidToken,
    /// A token, code, link or ceremony was valid once but its time has passed.
    #[error("expired")]
    Expired,
    /// The named thing does not exist (for management calls, never for sign-in).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for: `"user"`, `"organization"`…
        what: &'static str,
    },
    /// A unique value is taken (an email, a slug, a credential id) or a record changed
    /// under the caller.
    #[error("{what} conflicts with an existing record")]
    Conflict {
        /// What clashed: `"email"`, `"slug"`, `"revision"`…
        what: &'static str,
    },
    /// The caller is known but not allowed to do this.
    #[error("forbidden")]
    Forbidden,
    /// This request goes ahead only with a bot check passed
    /// ([`RequestContext::bot_proof`](crate::RequestContext::bot_proof)): a risk rule
    /// fired (failures from the client or for the account, many sign-ups or sends from
    /// the client, an organization that always asks), or sending is throttled for
    /// everyone. A proof that was missing, wrong, spent, or that the checking service
    /// could not judge gets this too (bot checks fail closed).
    #[error("a bot check is required")]
    BotCheckRequired,
    /// The client's network is on the installation's denylist
    /// ([`Protection::deny`](crate::Protection::deny)).
    #[error("requests from this network are refused")]
    IpBlocked,
    /// Too many attempts or requests: try again after `retry_after`.
    #[error("rate limited; retry after {} s", ceil_secs(*retry_after))]
    RateLimited {
        /// How long until the limit allows another attempt.
        retry_after: Duration,
    },
    /// The token is valid but its session was revoked, ended or went idle (from
    /// [`verify_live`](crate::tokens::Tokens::verify_live)).
    #[error("session revoked")]
    SessionRevoked,
    /// A first factor succeeded but a second one is required.
    #[error("multi-factor authentication required")]
    MfaRequired,
    /// The action needs a recent sign-in (adding a passkey, say): sign in again first.
    #[error("a recent sign-in is required")]
    ReauthRequired,
    /// The engine was configured wrongly; reported by [`PortcullisBuilder::build`](crate::PortcullisBuilder::build).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Sealed data could not be opened: wrong key, tampered ciphertext or associated data
    /// (or a TOTP secret that opened but is not one).
    #[error("decryption failed")]
    Crypto,
    /// The engine failed at something that is neither the request's fault nor sealed
    /// data's: serializing a record, the OS random source, hashing a password, signing a
    /// token. Names what failed; a server answers 500 and logs it.
    #[error("internal failure: {0}")]
    Internal(&'static str),
    /// A storage adapter failed.
    #[error("storage failed")]
    Store(#[source] StoreError),
    /// A mailer or SMS sender failed.
    #[error("delivery failed")]
    Delivery(#[source] DeliveryError),
    /// An outside service the engine asked could not answer (the Pwned Passwords range
    /// API, say).
    #[error("{service} is unavailable")]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The address belongs to an organization that requires single sign-on: this way of
    /// signing in is refused for it. Sign in through the organization's connection (its
    /// id, when one is active, says which).
    #[error("this address signs in with single sign-on")]
    SsoRequired {
        /// The organization's active connection, if there is one.
        connection_id: Option<crate::model::ConnectionId>,
    },
    /// A single sign-on did not prove who the person is: the identity provider's answer
    /// failed a check (state, nonce, issuer, audience, signature, freshness), or the
    /// connection is not usable. `reason` names the check, for logs and administrators;
    /// it never holds what the provider sent.
    #[error("single sign-on failed: {reason}")]
    SsoFailed {
        /// Which check failed.
        reason: &'static str,
    },
    /// An outbound request to a URL an administrator (or a document) named was refused
    /// before it was made: a scheme, port or address the installation does not allow
    /// (private, loopback, link-local, metadata), or a URL that hides its host.
    #[error("outbound request refused: {reason}")]
    OutboundRefused {
        /// Why.
        reason: &'static str,
    },
}

/// Whole seconds, rounded up, at least 1: what a `Retry-After` header should say.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl Error {
    /// A stable, snake_case name for the variant, for HTTP mapping and client code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidCredentials => "invalid_credentials",
            Error::InvalidToken => "invalid_token",
            Error::Expired => "expired",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Forbidden => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::BotCheckRequired => "bot_check_required",
            Error::IpBlocked => "ip_blocked",
            Error::SessionRevoked => "session_revoked",
            Error::MfaRequired => "mfa_required",
            Error::ReauthRequired => "reauth_required",
            Error::Config(_) => "config",
            Error::Crypto => "crypto",
            Error::Internal(_) => "internal",
            Error::Store(_) => "store",
            Error::Delivery(_) => "delivery",
            Error::Unavailable { .. } => "unavailable",
            Error::SsoRequired { .. } => "sso_required",
            Error::SsoFailed { .. } => "sso_failed",
            Error::OutboundRefused { .. } => "outbound_refused",
        }
    }

    /// For [`Error::RateLimited`]: whole seconds to wait, rounded up, at least 1 — what an
    /// HTTP `Retry-After` says, so that a client that waits that long is let in.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after } => Some(ceil_secs(*retry_after)),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

/// What a storage adapter reports. Adapters wrap their own errors in [`StoreError::Backend`]
/// so the engine never needs to know the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique constraint refused the write (email, phone, slug, credential id…).
    #[error("{what} already exists")]
    Conflict {
        /// Which unique value clashed.
        what: &'static str,
    },
    /// A compare-and-swap update found a different revision than expected.
    #[error("record changed concurrently")]
    Stale,
    /// The record a write refers to does not exist.
    #[error("{what} not found")]
    Missing {
        /// What was missing.
        what: &'static str,
    },
    /// A stored record could not be read. Adapters fail closed: an unreadable challenge is
    /// never treated as valid.
    #[error("stored {what} is corrupt or of an unknown version")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
    },
    /// A paging cursor that this adapter did not issue (it comes from clients, so this is
    /// bad input, not a failure).
    #[error("invalid cursor")]
    InvalidCursor,
    /// The backend itself failed (I/O, connection, driver).
    #[error("storage backend failed")]
    Backend(#[source] BoxError),
    /// The backend could not be reached in time: no connection came free within the pool's
    /// timeout, or the database did not answer. Trying again later may succeed; a write
    /// that failed this way may or may not have been applied.
    #[error("storage backend unavailable")]
    Unavailable(#[source] BoxError),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        StoreError::Backend(err.into())
    }

    /// A stable snake_case name for the variant.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "conflict",
            StoreError::Stale => "stale",
            StoreError::Missing { .. } => "missing",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::InvalidCursor => "invalid_cursor",
            StoreError::Backend(_) => "backend",
            StoreError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { what } => Error::Conflict { what },
            StoreError::Stale => Error::Conflict { what: "revision" },
            StoreError::Missing { what } => Error::NotFound { what },
            StoreError::InvalidCursor => Error::invalid("cursor", "was not issued by this listing"),
            StoreError::Unavailable(source) => Error::Unavailable {
                service: "the store",
                source,
            },
            other => Error::Store(other),
        }
    }
}

/// A mailer or SMS sender failed. The source is kept; portcullis never puts the message in it,
/// since the message carries the code or link being delivered (and adapters must not
/// either: see [`Mailer`](crate::Mailer)).
#[derive(Debug, thiserror::Error)]
#[error("{channel} delivery failed")]
pub struct DeliveryError {
    channel: &'static str,
    #[source]
    source: BoxError,
}

impl DeliveryError {
    /// A failure on `channel` (`"email"`, `"sms"`) caused by `source`.
    pub fn new(channel: &'static str, source: impl Into<BoxError>) -> Self {
        DeliveryError {
            channel,
            source: source.into(),
        }
    }

    /// The channel that failed.
    pub fn channel(&self) -> &'static str {
        self.channel
    }
}

impl From<DeliveryError> for Error {
    fn from(err: DeliveryError) -> Self {
        Error::Delivery(err)
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn store_sources_are_preserved() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::from(StoreError::backend(io));
        assert_eq!(err.code(), "store");
        let store = err.source().unwrap();
        assert!(store.source().unwrap().to_string().contains("disk on fire"));
    }

    #[test]
    fn an_unreachable_store_is_unavailable_not_a_failure() {
        let timeout = std::io::Error::other("pool timed out");
        let err = Error::from(StoreError::Unavailable(timeout.into()));
        assert_eq!(err.code(), "unavailable");
        assert!(err.source().unwrap().to_string().contains("pool timed out"));
    }

    #[test]
    fn internal_failures_are_not_crypto_failures() {
        let err = Error::Internal("signing a token");
        assert_eq!(err.code(), "internal");
        assert_eq!(Error::Crypto.code(), "crypto");
        assert!(err.to_string().contains("signing a token"));
    }

    #[test]
    fn store_conflicts_become_engine_conflicts() {
        let err = Error::from(StoreError::Conflict { what: "email" });
        assert!(matches!(err, Error::Conflict { what: "email" }));
        assert_eq!(Error::from(StoreError::Stale).code(), "conflict");
    }

    #[test]
    fn delivery_error_names_channel_not_message() {
        let err = Error::from(DeliveryError::new("sms", "gateway said 503"));
        assert_eq!(err.to_string(), "delivery failed");
        assert_eq!(err.source().unwrap().to_string(), "sms delivery failed");
    }

    #[test]
    fn rate_limited_reports_at_least_one_second() {
        let err = Error::RateLimited {
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(err.to_string(), "rate limited; retry after 1 s");
        let err = Error::RateLimited {
            retry_after: Duration::from_millis(1900),
        };
        assert_eq!(
            err.to_string(),
            "rate limited; retry after 2 s",
            "never tells a client to come back early"
        );
    }
}
