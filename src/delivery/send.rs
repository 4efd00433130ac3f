//! Sending one message: rendered with the organization's layout and wording, then handed
//! to the mailer or SMS sender (in the background or inline, as configured).

use crate::Error;
use crate::delivery::{Message, MessageKind, Outgoing, Recipient, SecretLink};
use crate::directory::OrgSettings;
use crate::directory::orgs::Orgs;
use crate::engine::Inner;
use crate::model::OrgId;
use crate::templates::Rendered;

/// Renders a message and hands it to the mailer or SMS sender, as
/// [`Passwordless::delivery`](crate::Passwordless::delivery) says.
pub(crate) async fn send_message(inner: &Inner, message: Message) -> Result<(), Error> {
    let settings = message_settings(inner, message.org_id, message.kind).await?;
    send_rendered(inner, &settings, message).await
}

/// [`send_message`] with the organization's settings in hand.
pub(crate) async fn send_rendered(
    inner: &Inner,
    settings: &crate::directory::OrgSettings,
    message: Message,
) -> Result<(), Error> {
    let message = on_login_domain(inner, settings, message).await?;
    let rendered = render(inner, settings, &message);
    let outgoing = match &message.to {
        Recipient::Email(email) => {
            let mailer = inner
                .mailer
                .clone()
                .ok_or_else(|| Error::Config("no mailer configured".into()))?;
            Outgoing::Email(
                mailer,
                crate::delivery::EmailMessage {
                    to: email.clone(),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    message,
                },
            )
        }
        Recipient::Phone(phone) => {
            let sender = inner
                .sms
                .clone()
                .ok_or_else(|| Error::Config("no SMS sender configured".into()))?;
            Outgoing::Sms(
                sender,
                crate::delivery::SmsMessage {
                    to: phone.clone(),
                    body: rendered.text,
                    message,
                },
            )
        }
    };
    inner
        .dispatcher
        .dispatch(inner.config.config.passwordless.delivery, outgoing)
        .await
}

/// The settings messages of `org` are rendered with. Unreadable settings stop sign-in
/// messages (as they stop sign-ins), but not the notice that an address was taken off an
/// account: that goes out with the engine's own templates.
pub(crate) async fn message_settings(
    inner: &Inner,
    org: Option<OrgId>,
    kind: MessageKind,
) -> Result<OrgSettings, Error> {
    match Orgs::new(inner).settings(org).await {
        Err(err) if kind != MessageKind::ContactChanged => Err(err),
        Err(err) => {
            tracing::warn!(error = %err, "unreadable organization settings: built-in notice");
            Ok(OrgSettings::default())
        }
        Ok(settings) => Ok(settings),
    }
}

/// The message with its link on the organization's login domain, while that domain's DNS
/// proof stands: the same path and query (every link is built from the public origin) on
/// `https://` that domain (a login domain is served over TLS). Otherwise the message as it
/// is.
async fn on_login_domain(
    inner: &Inner,
    settings: &OrgSettings,
    message: Message,
) -> Result<Message, Error> {
    let (Some(org), Some(link), Some(domain)) = (
        message.org_id,
        message.link.as_ref(),
        settings.login_domain.as_deref(),
    ) else {
        return Ok(message);
    };
    if !Orgs::new(inner).proved(org, domain).await? {
        return Ok(message);
    }
    let Ok(mut url) = url::Url::parse(link.secret()) else {
        return Ok(message);
    };
    if url.set_scheme("https").is_err()
        || url.set_host(Some(domain)).is_err()
        || url.set_port(None).is_err()
    {
        return Ok(message);
    }
    Ok(Message {
        link: Some(SecretLink::new(url.into())),
        ..message
    })
}

/// Renders a message as its organization wants it: with the organization's own template
/// for the message's kind and language when it has one, and its display name.
pub(crate) fn render(inner: &Inner, settings: &OrgSettings, message: &Message) -> Rendered {
    let app_name = settings
        .branding
        .display_name
        .as_deref()
        .unwrap_or(&inner.config.config.rp_name);
    let locale = message.locale.as_deref().map(str::to_ascii_lowercase);
    let primary = locale
        .as_deref()
        .and_then(|l| l.split('-').next())
        .map(str::to_owned);
    let own = [locale, primary, None].into_iter().find_map(|wanted| {
        settings.templates.iter().find(|t| {
            let locale = t.locale.as_deref().map(str::to_ascii_lowercase);
            t.kind == message.kind && locale == wanted
        })
    });
    match own {
        Some(wording) => {
            crate::templates::render_wording(wording, &settings.branding, message, app_name)
        }
        None => inner.templates.render(message, app_name),
    }
}
