//! Delivery traits: how codes and links reach people.

use std::fmt;

use async_trait::async_trait;

use crate::DeliveryError;
use crate::model::{Email, Phone};

/// An email to send. Its subject and bodies may carry a code or a link, so `Debug` shows
/// only the recipient and sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body, when there is one.
    pub html: Option<String>,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to)
            .field("subject", &format_args!("{} bytes", self.subject.len()))
            .field("text", &format_args!("{} bytes", self.text.len()))
            .field("html", &self.html.as_ref().map(|h| h.len()))
            .finish()
    }
}

/// A text message to send. `Debug` hides the body.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// Recipient.
    pub to: Phone,
    /// Body.
    pub body: String,
}

impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("to", &self.to)
            .field("body", &format_args!("{} bytes", self.body.len()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bodies() {
        let mail = EmailMessage {
            to: Email::parse("a@example.com").unwrap(),
            subject: "Your code 123456".into(),
            text: "Code: 123456".into(),
            html: None,
        };
        let sms = SmsMessage {
            to: Phone::parse("+15550109999").unwrap(),
            body: "Code: 123456".into(),
        };
        let printed = format!("{mail:?} {sms:?}");
        assert!(!printed.contains("123456"), "{printed}");
        assert!(printed.contains("a@example.com"));
    }
}
