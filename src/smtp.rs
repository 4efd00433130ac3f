//! [`SmtpMailer`]: email over SMTP (feature `smtp`), with lettre on rustls.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::delivery::{EmailMessage, Mailer};
use crate::{DeliveryError, Error};

/// Sends email through an SMTP server.
///
/// Configured by URL, as lettre reads it:
///
/// | URL | connection |
/// |---|---|
/// | `smtps://user:pass@smtp.example.com` | TLS from the start (port 465) |
/// | `smtp://user:pass@smtp.example.com:587?tls=required` | STARTTLS, required |
/// | `smtp://127.0.0.1:2525` | plain text: loopback only (a local relay or test server) |
///
/// Plain-text and opportunistic-TLS connections to other hosts are refused: the messages
/// carry sign-in links and codes. Credentials in the URL are percent-encoded.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for the server at `url`, sending as `from` (`"Acme <login@acme.example>"`
    /// or a bare address). Nothing is contacted until the first message.
    pub fn from_url(url: &str, from: &str) -> Result<Self, Error> {
        // Neither value is echoed: the URL may hold a password.
        let bad = |what: &str| Error::Config(format!("the SMTP URL {what}"));
        let parsed = url::Url::parse(url).map_err(|_| bad("is not a URL"))?;
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let encrypted = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", None) => true,
            ("smtp", Some("required")) => true,
            ("smtp", None | Some("opportunistic")) => false,
            _ => return Err(bad("must be smtps:// or smtp:// (with ?tls=required)")),
        };
        if !encrypted && !loopback {
            return Err(bad(
                "must use TLS (smtps:// or ?tls=required) unless the server is on loopback",
            ));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| bad("is not a valid SMTP URL"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from
            .parse()
            .map_err(|_| Error::Config("the sender address is not a valid mailbox".into()))?;
        Ok(SmtpMailer { transport, from })
    }
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        // Errors name the stage, never the message (it carries the secret).
        let fail = |what: &'static str| DeliveryError::new("email", what);
        let to: Mailbox = message
            .to
            .as_str()
            .parse()
            .map_err(|_| fail("the recipient is not a valid mailbox"))?;
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone());
        let email = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(message.text.clone()),
            ),
        }
        .map_err(|_| fail("the message could not be built"))?;
        self.transport.send(email).await.map_err(|err| {
            // lettre's errors carry the server's reply and the kind of failure, never the
            // message itself.
            DeliveryError::new("email", format!("SMTP: {err}"))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_smtp_is_for_loopback_only() {
        let from = "login@example.com";
        assert!(SmtpMailer::from_url("smtp://127.0.0.1:2525", from).is_ok());
        assert!(SmtpMailer::from_url("smtp://localhost:2525", from).is_ok());
        assert!(SmtpMailer::from_url("smtps://u:p@smtp.example.com", from).is_ok());
        assert!(SmtpMailer::from_url("smtp://smtp.example.com:587?tls=required", from).is_ok());
        for bad in [
            "smtp://smtp.example.com:25",
            "smtp://u:secret-pw@smtp.example.com?tls=opportunistic",
            "http://smtp.example.com",
            "smtp://",
            "not a url",
        ] {
            let err = SmtpMailer::from_url(bad, from).unwrap_err();
            assert_eq!(err.code(), "config", "{bad}");
            assert!(!err.to_string().contains("secret-pw"), "{err}");
        }
        assert!(SmtpMailer::from_url("smtp://127.0.0.1:2525", "not a mailbox").is_err());
    }
}
