//! Delivery: the structured [`Message`] a flow wants sent, the [`Mailer`] and [`SmsSender`]
//! traits that send it once [`Templates`](crate::Templates) rendered it, the console sinks
//! for demos, and the dispatcher that hands messages over in the background.

pub(crate) mod send;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::config::Delivery;
use crate::crypto::OneTimeCode;
use crate::model::{Email, OrgId, Phone, RequestId};
use crate::{DeliveryError, Error};

/// What a message is for. Templates are chosen by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageKind {
    /// An email with a sign-in link.
    MagicLink,
    /// An email with a one-time code.
    EmailCode,
    /// A text message with a one-time code.
    SmsCode,
    /// An email with a code that confirms the address of a signed-in user.
    EmailVerification,
    /// A text message with a code that confirms the number of a signed-in user.
    SmsVerification,
    /// An email with a code that lets its recipient choose a new password.
    PasswordReset,
    /// A notice to an address or number that was taken off an account: it no longer
    /// signs in to it. Carries no link and no code.
    ContactChanged,
    /// A notice to an account's address that someone tried to sign up with it (the
    /// sign-up answered as for any address, so nobody learns the account exists).
    /// Carries no link and no code.
    SignUpAttempt,
    /// An email with a code that confirms a new address for an account: the change
    /// applies only once the code comes back.
    EmailChange,
    /// A notice to the old address that an email change was confirmed, with the link
    /// that undoes it (and ends every session of the account).
    EmailChanged,
    /// A notice to an account's address that a client was locked out of it after repeated
    /// failed sign-ins: when, from where, with what, and a link that lifts the lockout and,
    /// if it was not the owner, starts a password reset.
    AccountLocked,
    /// A notice to an account's address of a sign-in that looked unusual (a new device,
    /// after many failures, impossible travel): when, from where, with what. No link.
    NewSignIn,
}

impl MessageKind {
    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::MagicLink => "magic_link",
            MessageKind::EmailCode => "email_code",
            MessageKind::SmsCode => "sms_code",
            MessageKind::EmailVerification => "email_verification",
            MessageKind::SmsVerification => "sms_verification",
            MessageKind::PasswordReset => "password_reset",
            MessageKind::ContactChanged => "contact_changed",
            MessageKind::SignUpAttempt => "sign_up_attempt",
            MessageKind::EmailChange => "email_change",
            MessageKind::EmailChanged => "email_changed",
            MessageKind::AccountLocked => "account_locked",
            MessageKind::NewSignIn => "new_sign_in",
        }
    }

    /// Every kind.
    pub const ALL: [MessageKind; 12] = [
        MessageKind::MagicLink,
        MessageKind::EmailCode,
        MessageKind::SmsCode,
        MessageKind::EmailVerification,
        MessageKind::SmsVerification,
        MessageKind::PasswordReset,
        MessageKind::ContactChanged,
        MessageKind::SignUpAttempt,
        MessageKind::EmailChange,
        MessageKind::EmailChanged,
        MessageKind::AccountLocked,
        MessageKind::NewSignIn,
    ];
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipient {
    /// An email address.
    Email(Email),
    /// A phone number.
    Phone(Phone),
}

impl Recipient {
    /// The address or number as text.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Email(email) => email.as_str(),
            Recipient::Phone(phone) => phone.as_str(),
        }
    }
}

/// A sign-in link: the public origin, the landing path and a token. As secret as the token
/// in it: redacted `Debug`, no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretLink(String);

impl SecretLink {
    pub(crate) fn new(url: String) -> Self {
        SecretLink(url)
    }

    /// The URL.
    ///
    /// SECURITY: it signs someone in; put it only in the message to its owner.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretLink([redacted])")
    }
}

impl Drop for SecretLink {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What a flow wants delivered, before rendering: senders that render their own messages
/// (a provider's template API) use these fields; others send the rendered text beside it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Message {
    /// What the message is for.
    pub kind: MessageKind,
    /// Where it goes.
    pub to: Recipient,
    /// The sign-in link, for [`MessageKind::MagicLink`]; the revert link, for
    /// [`MessageKind::EmailChanged`]; the unblock link, for [`MessageKind::AccountLocked`].
    pub link: Option<SecretLink>,
    /// The one-time code, for the code kinds.
    pub code: Option<OneTimeCode>,
    /// How long the link or code stays valid.
    pub expires_in: Duration,
    /// The recipient's language, as the request said ([`RequestContext::locale`](crate::RequestContext::locale)).
    pub locale: Option<String>,
    /// The organization the request ran in.
    pub org_id: Option<OrgId>,
    /// The request the message belongs to.
    pub request_id: RequestId,
    /// What a notice is about ([`MessageKind::AccountLocked`], [`MessageKind::NewSignIn`]).
    pub activity: Option<Activity>,
}

impl Message {
    /// A message of `kind` for a preview: a sample recipient, and a sample code or link
    /// that opens nothing (the link goes to the public origin's `/preview`).
    pub(crate) fn sample(
        kind: MessageKind,
        public_origin: &str,
        locale: Option<&str>,
        org: OrgId,
        now: crate::Timestamp,
    ) -> Result<Message, Error> {
        let sms = matches!(kind, MessageKind::SmsCode | MessageKind::SmsVerification);
        let to = if sms {
            Recipient::Phone(Phone::parse("+15555550100")?)
        } else {
            Recipient::Email(Email::parse("jane.doe@example.com")?)
        };
        let linked = matches!(
            kind,
            MessageKind::MagicLink | MessageKind::EmailChanged | MessageKind::AccountLocked
        );
        let notice = matches!(
            kind,
            MessageKind::ContactChanged | MessageKind::SignUpAttempt | MessageKind::NewSignIn
        );
        let origin = public_origin.trim_end_matches('/');
        Ok(Message {
            kind,
            to,
            link: linked.then(|| SecretLink::new(format!("{origin}/preview"))),
            code: (!linked && !notice).then(|| OneTimeCode::new("123456")),
            expires_in: Duration::from_secs(600),
            locale: locale.map(str::to_owned),
            org_id: Some(org),
            request_id: RequestId::generate(),
            activity: matches!(kind, MessageKind::AccountLocked | MessageKind::NewSignIn).then(
                || Activity {
                    at: now,
                    ip: Some([192, 0, 2, 1].into()),
                    device: Some("Firefox on Linux".to_owned()),
                },
            ),
        })
    }
}

/// The sign-in activity a notice tells an account's owner about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// When it happened.
    pub at: crate::Timestamp,
    /// The client's address.
    pub ip: Option<std::net::IpAddr>,
    /// The client's browser and system, as a short name (`Firefox on Linux`), never the raw
    /// user agent (which the client chose).
    pub device: Option<String>,
}

/// An email to send: the [`Message`] and its rendering. `Debug` shows no secret.
#[derive(Clone)]
pub struct EmailMessage {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body, when there is one.
    pub html: Option<String>,
    /// What was rendered.
    pub message: Message,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to)
            .field("subject", &format_args!("{} bytes", self.subject.len()))
            .field("text", &format_args!("{} bytes", self.text.len()))
            .field("html", &self.html.as_ref().map(|h| h.len()))
            .field("message", &self.message)
            .finish()
    }
}

/// A text message to send: the [`Message`] and its rendering. `Debug` hides the body.
#[derive(Clone)]
pub struct SmsMessage {
    /// Recipient.
    pub to: Phone,
    /// Body.
    pub body: String,
    /// What was rendered.
    pub message: Message,
}

impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("to", &self.to)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .field("message", &self.message)
            .finish()
    }
}

/// Sends email (SMTP, a provider's API, a queue…).
///
/// Returning `Ok` means the message was accepted for delivery; the engine does not retry.
/// Implementations MUST NOT log message bodies or put them in their errors: they carry
/// sign-in secrets.
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    /// Sends one message.
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError>;
}

/// Sends text messages. The same rules as [`Mailer`] apply.
#[async_trait]
pub trait SmsSender: Send + Sync + fmt::Debug {
    /// Sends one message.
    async fn send(&self, message: &SmsMessage) -> Result<(), DeliveryError>;
}

/// Prints every email to standard output, link and code included: for demos and local
/// development only, never in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleMailer;

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        println!(
            "---- email to {} ----\nSubject: {}\n\n{}\n----",
            message.to, message.subject, message.text
        );
        Ok(())
    }
}

/// Prints every text message to standard output: for demos and local development only.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleSms;

#[async_trait]
impl SmsSender for ConsoleSms {
    async fn send(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        println!("---- text to {} ----\n{}\n----", message.to, message.body);
        Ok(())
    }
}

/// A rendered message and the sender it goes to.
pub(crate) enum Outgoing {
    Email(Arc<dyn Mailer>, EmailMessage),
    Sms(Arc<dyn SmsSender>, SmsMessage),
}

impl Outgoing {
    async fn send(&self) -> Result<(), DeliveryError> {
        match self {
            Outgoing::Email(mailer, message) => mailer.send(message).await,
            Outgoing::Sms(sender, message) => sender.send(message).await,
        }
    }

    fn describe(&self) -> (&'static str, RequestId) {
        let message = match self {
            Outgoing::Email(_, m) => &m.message,
            Outgoing::Sms(_, m) => &m.message,
        };
        (message.kind.as_str(), message.request_id)
    }
}

/// Hands rendered messages to their senders, inline or on tasks of their own, and counts
/// the ones under way.
#[derive(Debug, Default)]
pub(crate) struct Dispatcher {
    in_flight: Arc<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Counts one delivery under way for as long as it lives, even if its task is cancelled.
struct Ticket(Arc<InFlight>);

impl Ticket {
    fn new(in_flight: &Arc<InFlight>) -> Self {
        in_flight.count.fetch_add(1, Ordering::SeqCst);
        Ticket(in_flight.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Dispatcher {
    /// Sends `outgoing` as `mode` says. In the background, failures are logged, and the
    /// call returns at once.
    pub(crate) async fn dispatch(&self, mode: Delivery, outgoing: Outgoing) -> Result<(), Error> {
        let (kind, request_id) = outgoing.describe();
        let runtime = tokio::runtime::Handle::try_current().ok();
        match (mode, runtime) {
            (Delivery::Background, Some(runtime)) => {
                let ticket = Ticket::new(&self.in_flight);
                runtime.spawn(async move {
                    let _ticket = ticket;
                    if let Err(err) = outgoing.send().await {
                        tracing::warn!(%request_id, kind, error = %err, "message delivery failed");
                    } else {
                        tracing::debug!(%request_id, kind, "message delivered");
                    }
                });
                Ok(())
            }
            (mode, _) => {
                if mode == Delivery::Background {
                    tracing::warn!(
                        "no Tokio runtime: delivering inline, so this call waits for the sender"
                    );
                }
                let _ticket = Ticket::new(&self.in_flight);
                outgoing.send().await.map_err(|err| {
                    tracing::warn!(%request_id, kind, error = %err, "message delivery failed");
                    Error::Delivery(err)
                })?;
                tracing::debug!(%request_id, kind, "message delivered");
                Ok(())
            }
        }
    }

    /// Runs `work` (bookkeeping that goes with a delivery: its log line) the way a
    /// message in `mode` is sent: on a task of its own in the background, or inline. It
    /// counts as under way until done ([`flush`](Self::flush) waits for it); its failure
    /// is logged, never returned.
    pub(crate) async fn run_alongside(
        &self,
        mode: Delivery,
        what: &'static str,
        work: impl Future<Output = Result<(), Error>> + Send + 'static,
    ) {
        let ticket = Ticket::new(&self.in_flight);
        let run = async move {
            let _ticket = ticket;
            if let Err(err) = work.await {
                tracing::warn!(what, error = %err, "background work failed");
            }
        };
        match (mode, tokio::runtime::Handle::try_current()) {
            (Delivery::Background, Ok(runtime)) => {
                runtime.spawn(run);
            }
            _ => run.await,
        }
    }

    /// Waits until no delivery is under way.
    pub(crate) async fn flush(&self) {
        loop {
            let mut idle = std::pin::pin!(self.in_flight.idle.notified());
            idle.as_mut().enable();
            if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageKind, to: Recipient) -> Message {
        Message {
            kind,
            to,
            link: Some(SecretLink::new(
                "https://a.example/m?token=canary-link".into(),
            )),
            code: Some(OneTimeCode::new("123456")),
            expires_in: Duration::from_secs(600),
            locale: None,
            org_id: None,
            request_id: RequestId::generate(),
            activity: None,
        }
    }

    #[test]
    fn debug_hides_bodies_links_and_codes() {
        let email = Email::parse("a@example.com").unwrap();
        let phone = Phone::parse("+15550109999").unwrap();
        let mail = EmailMessage {
            to: email.clone(),
            subject: "Your code 123456".into(),
            text: "Code: 123456".into(),
            html: None,
            message: message(MessageKind::EmailCode, Recipient::Email(email)),
        };
        let sms = SmsMessage {
            to: phone.clone(),
            body: "Code: 123456".into(),
            message: message(MessageKind::SmsCode, Recipient::Phone(phone)),
        };
        let printed = format!("{mail:?} {sms:?}");
        assert!(!printed.contains("123456"), "{printed}");
        assert!(!printed.contains("canary-link"), "{printed}");
        assert!(printed.contains("a@example.com"));
    }
}
