//! # portcullis
//!
//! An authentication engine you link into your application: passkeys, magic links,
//! one-time codes, passwords, TOTP and backup codes, JWT access tokens with rotating refresh
//! tokens, sessions, organizations with roles and permissions, login logs and attack
//! protection — as a library, over storage and delivery traits you choose.
//!
//! The engine owns the rules; your application owns HTTP, the database and email. They
//! meet at six storage traits ([`store::UserStore`], [`store::OrgStore`],
//! [`store::SessionStore`], [`store::KeyStore`], [`store::ChallengeStore`],
//! [`store::AuditLog`]) and two
//! delivery traits ([`Mailer`], [`SmsSender`]).
//!
//! ## Embedding
//!
//! ```
//! use std::time::Duration;
//! use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
//! use portcullis::{Config, Error, Portcullis, RequestContext, SignIn};
//! use portcullis_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # let mail = portcullis::testing::CapturingMailer::new();
//! // Secrets come from your secret store; generated here for the example.
//! let pepper = Pepper::generate()?;
//! let keyring = Keyring::new(1, EncryptionKey::generate()?);
//!
//! let mut config = Config::new("https://app.example.com");
//! config.rp_name = "Example".into();
//! config.ttl.access_token = Duration::from_secs(10 * 60);
//!
//! let auth = Portcullis::builder(config)
//!     .store(MemoryStore::new())   // any adapter implementing the six store traits
//!     .pepper(pepper)
//!     .keyring(keyring)
//!     .mailer(portcullis::ConsoleMailer) // or SmtpMailer, or your own
//! #   .mailer(mail.clone())
//!     .build()?;                    // validates everything once
//!
//! // Every call a person triggers carries a RequestContext (ip, user agent, org).
//! let ctx = RequestContext::new().with_ip([203, 0, 113, 7].into());
//!
//! // Sign in by emailed code: the same answer whether or not the account exists.
//! let sent = auth.codes().email().send("ana@example.com", &ctx).await?;
//! # auth.flush_deliveries().await;
//! # let code = mail.sent()[0].message.code.clone().unwrap();
//! // … the person types the code from the email …
//! let sign_in = auth.codes().email().verify(sent.request_id, &code, &ctx).await?;
//! match &sign_in {
//!     SignIn::Complete(tokens) => {
//!         // Each later request carries the access token; verify it (stateless, or
//!         // `verify_live` to also check that the session still stands).
//!         let claims = auth.tokens().verify(&tokens.access_token).await?;
//!         assert_eq!(claims.sub, tokens.user_id);
//!     }
//!     SignIn::MfaRequired(_) => { /* ask for a second factor */ }
//!     _ => {}
//! }
//! # assert!(matches!(sign_in, SignIn::Complete(_)));
//! # Ok(())
//! # }
//! ```
//!
//! ## Signing in
//!
//! Every ceremony ends in [`Portcullis::complete_first_factor`]: it decides whether a second
//! factor is due ([`SignIn::MfaRequired`]) and otherwise opens a session
//! ([`SignIn::Complete`] with a [`TokenSet`]) or issues an authorization code for a
//! redirect flow ([`SignIn::Code`]). [`tokens::Tokens`] verifies access tokens, rotates
//! refresh tokens, exchanges codes and manages signing keys; [`Sessions`] lists and revokes
//! a user's sessions.
//!
//! The passwordless ceremonies: [`MagicLinks`] (see [`flows::magic_link`] for the
//! peek-then-verify landing page, cross-device status and same-device binding) and
//! [`Codes`] for email and SMS one-time codes. Messages are rendered by [`Templates`] and
//! handed to the [`Mailer`] or [`SmsSender`], in the background by default
//! ([`Delivery`]). [`Passwords`] signs up, in, changes and resets passwords; [`Mfa`]
//! enrols TOTP authenticators, issues backup codes and finishes the MFA step.
//! [`Passkeys`] registers passkeys and signs in with them (see [`flows::passkey`]: what
//! is checked, user handles, and answers for unknown names).
//!
//! ## Features
//!
//! - `smtp`: `smtp::SmtpMailer`, email over SMTP (lettre on rustls).
//! - `hibp`: [`hibp::PwnedPasswords`], refusing passwords seen in breaches by the Pwned
//!   Passwords range API (k-anonymity: five hex characters of SHA-1 leave the process).
//! - `legacy-hashes`: sign-in with bcrypt, scrypt (better-auth) and PBKDF2-SHA256
//!   (Django) hashes imported from other systems, rehashed to Argon2id.
//! - `testing`: capturing mailer and SMS sender, a capturing log subscriber, fixed test
//!   secrets, the [`testing::race`] helper.
//! - `conformance`: the storage conformance suite ([`store::conformance`]) that every
//!   adapter runs.
//!
//! ## Security
//!
//! Secrets people receive are stored only as keyed hashes ([`crypto::SecretHasher`]);
//! secrets the engine must read back are sealed with XChaCha20-Poly1305
//! ([`crypto::Keyring`]); each kind of secret is its own type with a redacted `Debug`;
//! every failure is a typed [`Error`], never a panic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod clock;
mod config;
mod context;
pub mod crypto;
pub mod danger;
mod delivery;
pub mod directory;
mod dns;
mod engine;
mod error;
pub mod flows;
pub mod mfa;
pub mod model;
mod outbound;
pub mod protect;
pub mod provider;
mod sessions;
mod signin;
#[cfg(feature = "smtp")]
pub mod smtp;
pub mod store;
mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

pub use audit::{Audit, ChainStatus};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::{
    Attachment, Attestation, CodePolicy, Config, Delivery, Limits, MfaPolicy, PasskeyPolicy,
    PasswordPolicy, Passwordless, Protection, RateLimit, ResidentKey, SigningAlgorithm, SmsPolicy,
    TokenPolicy, Ttl, UserVerification, Window,
};
pub use context::RequestContext;
pub use delivery::{
    ConsoleMailer, ConsoleSms, EmailMessage, Mailer, Message, MessageKind, Recipient, SecretLink,
    SmsMessage, SmsSender,
};
pub use directory::{
    NewOrg, NewUser, OrgSettings, OrgUpdate, Orgs, Rbac, RoleSpec, UserStatus, UserUpdate, Users,
};
pub use dns::DomainVerifier;
#[cfg(feature = "dns")]
pub use dns::HickoryDns;
pub use engine::{Portcullis, PortcullisBuilder, Sweeper};
pub use error::{BoxError, DeliveryError, Error, Result, StoreError};
pub use flows::codes::{CodeChannel, Codes};
pub use flows::magic_link::{DeviceProof, LinkOptions, LinkPeek, LinkSent, LinkStatus, MagicLinks};
pub use flows::passkey::{CeremonyStatus, PasskeyInfo, PasskeyRegistered, Passkeys, Registrant};
pub use flows::password::Passwords;
pub use flows::sign_up::SignUps;
pub use flows::sso::{Sso, SsoDone, SsoOptions, SsoRedirect, SsoTarget, SsoTested};
pub use flows::{Locate, Purpose, Requester, Sent};
pub use mfa::{AuthenticatorId, Authenticators, Mfa, MfaProof};
pub use model::{Email, OrgId, Phone, SessionId, UserId};
pub use outbound::{HostResolver, Outbound, OutboundPolicy, SystemResolver, is_public};
#[cfg(feature = "hibp")]
pub use protect::hibp;
pub use protect::{BreachedPasswords, CommonPasswords, PasswordList};
pub use sessions::Sessions;
pub use signin::{
    AuthMethod, MfaChallenge, MfaEnrollmentChallenge, MfaMethod, PasswordChangeChallenge, SignIn,
    TokenSet,
};
pub use templates::{Template, Templates, escape_html};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
