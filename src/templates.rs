//! [`Templates`]: how a [`Message`] becomes an email or a text, with built-in English
//! templates for every kind and overrides per organization and language.
//!
//! A template is text with `{{placeholders}}`:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{app_name}}` | [`Config::rp_name`](crate::Config::rp_name) |
//! | `{{link}}` | the sign-in link (magic links; required there) |
//! | `{{code}}` | the one-time code (code kinds; required there) |
//! | `{{minutes}}` | how many minutes the link or code stays valid |
//! | `{{recipient}}` | the address or number the message goes to |
//! | `{{time}}` | when the activity a notice reports happened (UTC, RFC 3339) |
//! | `{{ip}}` | the client address of that activity |
//! | `{{device}}` | its browser and system (`Firefox on Linux`) |
//!
//! Values are HTML-escaped in HTML bodies. An override with an unknown placeholder, or
//! without the link or code its kind must carry, is refused when it is set.

use std::collections::HashMap;

use crate::Error;
use crate::delivery::{Message, MessageKind};
use crate::model::OrgId;

/// One template: a subject and bodies. For text messages only `text` is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The subject line (email only).
    pub subject: String,
    /// The plain-text body; for text messages, the message.
    pub text: String,
    /// The HTML body (email only; `None` sends plain text alone).
    pub html: Option<String>,
}

impl Template {
    /// A template from its parts.
    pub fn new(subject: impl Into<String>, text: impl Into<String>, html: Option<String>) -> Self {
        Template {
            subject: subject.into(),
            text: text.into(),
            html,
        }
    }

    /// The built-in template of a kind.
    pub fn builtin(kind: MessageKind) -> Template {
        match kind {
            MessageKind::MagicLink => Template::new(
                "Your sign-in link for {{app_name}}",
                "Open this link to sign in to {{app_name}}:\n\n{{link}}\n\n\
                 It works once and expires in {{minutes}} minutes. If you did not ask for \
                 it, ignore this email: nobody can sign in without opening the link.",
                Some(html_page(
                    "<p>Sign in to {{app_name}}:</p>\
                     <p><a href=\"{{link}}\" style=\"display:inline-block;padding:10px 18px;\
                     background:#1f4fd1;color:#fff;border-radius:6px;text-decoration:none\">\
                     Sign in</a></p>\
                     <p>The link works once and expires in {{minutes}} minutes. If you did not \
                     ask for it, ignore this email.</p>",
                )),
            ),
            MessageKind::EmailCode => Template::new(
                "{{code}} is your {{app_name}} code",
                "Your {{app_name}} sign-in code is {{code}}.\n\nIt expires in {{minutes}} \
                 minutes. Never share it: {{app_name}} will never ask you for it.",
                Some(html_page(
                    "<p>Your {{app_name}} sign-in code:</p>\
                     <p style=\"font-size:28px;letter-spacing:4px;font-weight:bold\">{{code}}</p>\
                     <p>It expires in {{minutes}} minutes. Never share it.</p>",
                )),
            ),
            MessageKind::SmsCode => Template::new(
                "",
                "{{code}} is your {{app_name}} code. It expires in {{minutes}} min. \
                 Do not share it.",
                None,
            ),
            MessageKind::EmailVerification => Template::new(
                "Confirm your email address for {{app_name}}",
                "Enter {{code}} in {{app_name}} to confirm that {{recipient}} is your \
                 address.\n\nIt expires in {{minutes}} minutes. This code does not sign \
                 anyone in. If you did not ask for it, ignore this email.",
                Some(html_page(
                    "<p>Confirm {{recipient}} for {{app_name}} with this code:</p>\
                     <p style=\"font-size:28px;letter-spacing:4px;font-weight:bold\">{{code}}</p>\
                     <p>It expires in {{minutes}} minutes and does not sign anyone in.</p>",
                )),
            ),
            MessageKind::PasswordReset => Template::new(
                "Reset your {{app_name}} password",
                "Enter {{code}} in {{app_name}} to choose a new password.\n\nIt expires in \
                 {{minutes}} minutes. If you did not ask for it, ignore this email: your \
                 password stays as it is.",
                Some(html_page(
                    "<p>Your {{app_name}} password reset code:</p>\
                     <p style=\"font-size:28px;letter-spacing:4px;font-weight:bold\">{{code}}</p>\
                     <p>It expires in {{minutes}} minutes. If you did not ask for it, ignore \
                     this email.</p>",
                )),
            ),
            MessageKind::ContactChanged => Template::new(
                "Your {{app_name}} sign-in details changed",
                "{{recipient}} was taken off your {{app_name}} account and no longer signs in \
                 to it. If you did not make this change, contact {{app_name}} now.",
                None,
            ),
            MessageKind::SignUpAttempt => Template::new(
                "Someone tried to sign up to {{app_name}} as you",
                "Someone tried to create a {{app_name}} account with {{recipient}}, which \
                 already has one. If it was you, sign in instead, or reset your password if \
                 you forgot it. If it was not you, ignore this email: nothing changed.",
                None,
            ),
            MessageKind::SmsVerification => Template::new(
                "",
                "{{code}} confirms this number for {{app_name}}. It expires in {{minutes}} \
                 min. It does not sign anyone in.",
                None,
            ),
            MessageKind::EmailChange => Template::new(
                "Confirm your new email address for {{app_name}}",
                "Enter {{code}} in {{app_name}} to make {{recipient}} the address of your \
                 account.\n\nIt expires in {{minutes}} minutes. Nothing changes until the \
                 code is entered. If you did not ask for it, ignore this email.",
                Some(html_page(
                    "<p>Make {{recipient}} your {{app_name}} address with this code:</p>\
                     <p style=\"font-size:28px;letter-spacing:4px;font-weight:bold\">{{code}}</p>\
                     <p>It expires in {{minutes}} minutes. Nothing changes until it is \
                     entered.</p>",
                )),
            ),
            MessageKind::EmailChanged => Template::new(
                "Your {{app_name}} email address was changed",
                "{{recipient}} is no longer the address of your {{app_name}} account. If you \
                 did not make this change, open this link to undo it and sign every device \
                 out:\n\n{{link}}\n\nThe link works once, for a limited time.",
                Some(html_page(
                    "<p>{{recipient}} is no longer the address of your {{app_name}} account.</p>\
                     <p>If you did not make this change, undo it (every device is signed \
                     out):</p>\
                     <p><a href=\"{{link}}\" style=\"display:inline-block;padding:10px 18px;\
                     background:#1f4fd1;color:#fff;border-radius:6px;text-decoration:none\">\
                     Undo the change</a></p>\
                     <p>The link works once, for a limited time.</p>",
                )),
            ),
            MessageKind::AccountLocked => Template::new(
                "Sign-ins to your {{app_name}} account were paused",
                "Someone entered wrong sign-in details for your {{app_name}} account too \
                 often, so we stopped accepting them from {{ip}} ({{device}}) at {{time}}. \
                 Your passkeys and sign-in links still work.\n\nIf it was you, this link lets \
                 that device try again now. If it was not, it lets you choose a new \
                 password:\n\n{{link}}",
                Some(html_page(
                    "<p>Someone entered wrong sign-in details for your {{app_name}} account \
                     too often, so we stopped accepting them from {{ip}} ({{device}}) at \
                     {{time}}. Your passkeys and sign-in links still work.</p>\
                     <p><a href=\"{{link}}\" style=\"display:inline-block;padding:10px 18px;\
                     background:#1f4fd1;color:#fff;border-radius:6px;text-decoration:none\">\
                     Review this sign-in</a></p>\
                     <p>If it was you, the link lets that device try again now. If it was \
                     not, it lets you choose a new password.</p>",
                )),
            ),
            MessageKind::NewSignIn => Template::new(
                "New sign-in to your {{app_name}} account",
                "Your {{app_name}} account was signed in to at {{time}} from {{ip}} \
                 ({{device}}).\n\nIf it was you, there is nothing to do. If it was not, change \
                 your password and sign out every device from your account page.",
                None,
            ),
        }
    }

    pub(crate) fn validate(&self, kind: MessageKind) -> Result<(), Error> {
        let bodies = [Some(&self.subject), Some(&self.text), self.html.as_ref()];
        for body in bodies.into_iter().flatten() {
            for name in placeholders(body) {
                if !PLACEHOLDERS.contains(&name) {
                    return Err(Error::invalid(
                        "template",
                        format!("unknown placeholder {{{{{name}}}}}"),
                    ));
                }
            }
        }
        let required = match kind {
            MessageKind::MagicLink | MessageKind::EmailChanged | MessageKind::AccountLocked => {
                "link"
            }
            // A notice carries no secret.
            MessageKind::ContactChanged | MessageKind::SignUpAttempt | MessageKind::NewSignIn => {
                return Ok(());
            }
            _ => "code",
        };
        let missing = |body: &str| !placeholders(body).any(|name| name == required);
        if missing(&self.text) || self.html.as_deref().is_some_and(missing) {
            return Err(Error::invalid(
                "template",
                format!(
                    "every body of a {} template needs {{{{{required}}}}}",
                    kind.as_str()
                ),
            ));
        }
        Ok(())
    }
}

const PLACEHOLDERS: [&str; 8] = [
    "app_name",
    "link",
    "code",
    "minutes",
    "recipient",
    "time",
    "ip",
    "device",
];

/// The values of a notice's activity placeholders: `time`, `ip`, `device`.
struct ActivityText {
    time: String,
    ip: String,
    device: String,
}

impl ActivityText {
    fn of(message: &Message) -> Self {
        let activity = message.activity.as_ref();
        ActivityText {
            time: activity.map_or_else(String::new, |a| a.at.to_rfc3339()),
            ip: activity
                .and_then(|a| a.ip)
                .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string()),
            device: activity
                .and_then(|a| a.device.clone())
                .unwrap_or_else(|| "an unknown device".to_owned()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "time" => Some(&self.time),
            "ip" => Some(&self.ip),
            "device" => Some(&self.device),
            _ => None,
        }
    }
}

fn html_page(body: &str) -> String {
    format!(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;color:#1b1f24\">\
         {body}</body></html>"
    )
}

/// A piece of a template: literal text, or a placeholder's name.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template into its pieces: the one reading that validation and rendering share.
/// A `{{` without a closing `}}` is literal text.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push(Piece::Text(&rest[..start]));
        out.push(Piece::Placeholder(rest[start + 2..start + 2 + len].trim()));
        rest = &rest[start + 2 + len + 2..];
    }
    out.push(Piece::Text(rest));
    out
}

/// The names of the `{{placeholders}}` in a text.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    pieces(text).into_iter().filter_map(|piece| match piece {
        Piece::Placeholder(name) => Some(name),
        Piece::Text(_) => None,
    })
}

/// The rendering of a message. `Debug` shows sizes only: the bodies carry the secret.
pub(crate) struct Rendered {
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: Option<String>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject.len())
            .field("text", &self.text.len())
            .field("html", &self.html.as_ref().map(String::len))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: MessageKind,
    org: Option<OrgId>,
    locale: Option<String>,
}

/// The templates messages are rendered with: the built-in ones, and overrides for an
/// organization, a language, or both.
///
/// The most specific override wins: organization and language, then organization, then
/// language, then the engine-wide override, then the built-in template. A language matches
/// exactly (`pt-BR`, in any case) or by its primary tag (`pt`).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    custom: HashMap<Key, Template>,
}

impl Templates {
    /// The built-in templates only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the template of `kind` for `org` (`None`: every organization) and `locale`
    /// (`None`: every language). Refuses a template with an unknown placeholder or without
    /// the link or code its kind carries.
    pub fn set(
        &mut self,
        kind: MessageKind,
        org: Option<OrgId>,
        locale: Option<&str>,
        template: Template,
    ) -> Result<(), Error> {
        template.validate(kind)?;
        let locale = locale.map(str::to_ascii_lowercase);
        self.custom.insert(Key { kind, org, locale }, template);
        Ok(())
    }

    /// The template a message would be rendered with.
    pub fn resolve(&self, kind: MessageKind, org: Option<OrgId>, locale: Option<&str>) -> Template {
        let locale = locale.map(str::to_ascii_lowercase);
        let locale = locale.as_deref();
        let primary = locale.and_then(|l| l.split('-').next());
        let mut locales = vec![locale, primary];
        locales.dedup();
        let mut candidates = Vec::with_capacity(6);
        for org in [org, None] {
            for locale in locales.iter().copied().chain([None]) {
                candidates.push(Key {
                    kind,
                    org,
                    locale: locale.map(str::to_owned),
                });
            }
            if org.is_none() {
                break;
            }
        }
        candidates
            .iter()
            .find_map(|key| self.custom.get(key))
            .cloned()
            .unwrap_or_else(|| Template::builtin(kind))
    }

    pub(crate) fn render(&self, message: &Message, app_name: &str) -> Rendered {
        let template = self.resolve(message.kind, message.org_id, message.locale.as_deref());
        render_with(&template, message, app_name)
    }
}

/// Renders `message` with `template`.
pub(crate) fn render_with(template: &Template, message: &Message, app_name: &str) -> Rendered {
    let minutes = message.expires_in.as_secs().div_ceil(60).to_string();
    let activity = ActivityText::of(message);
    let value = |name: &str| -> &str {
        match name {
            "app_name" => app_name,
            "link" => message.link.as_ref().map_or("", |l| l.secret()),
            "code" => message.code.as_ref().map_or("", |c| c.secret()),
            "minutes" => &minutes,
            "recipient" => message.to.as_str(),
            other => activity.get(other).unwrap_or(""),
        }
    };
    Rendered {
        subject: fill(&template.subject, &value, false),
        text: fill(&template.text, &value, false),
        html: template
            .html
            .as_deref()
            .map(|html| fill(html, &value, true)),
    }
}

/// The placeholders an organization's wording may use: none carries a secret.
const WORDING_PLACEHOLDERS: [&str; 6] =
    ["app_name", "minutes", "recipient", "time", "ip", "device"];

/// Checks one field of an organization's wording: at most `max` characters, only the
/// placeholders that carry no secret, and no URL (every URL in a message is the engine's).
pub(crate) fn check_wording(text: &str, max: usize) -> Result<(), Error> {
    if text.chars().count() > max {
        return Err(Error::invalid(
            "templates",
            format!("each wording field holds at most {max} characters"),
        ));
    }
    if let Some(name) = placeholders(text).find(|n| !WORDING_PLACEHOLDERS.contains(n)) {
        return Err(Error::invalid(
            "templates",
            format!(
                "{{{{{name}}}}} cannot be used here: the engine places codes and links, and \
                 wording may name only app_name, minutes, recipient, time, ip and device"
            ),
        ));
    }
    let lower = text.to_ascii_lowercase();
    if ["://", "www.", "url(", "@import"]
        .iter()
        .any(|m| lower.contains(m))
    {
        return Err(Error::invalid(
            "templates",
            "wording cannot hold a URL: every link in a message is the engine's",
        ));
    }
    Ok(())
}

/// Renders a message in the engine's own layout with an organization's wording, logo and
/// colour. The wording is filled with values that carry no secret and then escaped as a
/// whole, so nothing it says can become markup, and the code or link is placed here, in
/// text or in the engine's own `href`.
pub(crate) fn render_wording(
    wording: &crate::directory::MessageWording,
    branding: &crate::directory::Branding,
    message: &Message,
    app_name: &str,
) -> Rendered {
    let kind = message.kind;
    let builtin = Template::builtin(kind);
    let minutes = message.expires_in.as_secs().div_ceil(60).to_string();
    let activity = ActivityText::of(message);
    let safe = |name: &str| -> &str {
        match name {
            "app_name" => app_name,
            "minutes" => &minutes,
            "recipient" => message.to.as_str(),
            other => activity.get(other).unwrap_or(""),
        }
    };
    let (intro, outro) = default_wording(kind);
    let words =
        |own: &Option<String>, default: &str| fill(own.as_deref().unwrap_or(default), &safe, false);
    let intro = words(&wording.intro, intro);
    let outro = words(&wording.outro, outro);
    let button = match kind {
        MessageKind::EmailChanged => words(&wording.button, "Undo the change"),
        MessageKind::AccountLocked => words(&wording.button, "Review this sign-in"),
        _ => words(&wording.button, "Sign in"),
    };
    let subject = match &wording.subject {
        Some(subject) => fill(subject, &safe, false),
        // The engine's own subject may carry the code: the engine placed it.
        None => render_with(&builtin, message, app_name).subject,
    };
    let link = message.link.as_ref().map(|l| l.secret());
    let code = message.code.as_ref().map(|c| c.secret());
    let secret = link.or(code).unwrap_or_default();
    let text = match kind {
        MessageKind::SmsCode | MessageKind::SmsVerification => {
            [intro.as_str(), secret, outro.as_str()]
                .join(" ")
                .trim()
                .to_owned()
        }
        _ => [intro.as_str(), secret, outro.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let notice = matches!(
        kind,
        MessageKind::ContactChanged | MessageKind::SignUpAttempt | MessageKind::NewSignIn
    );
    if builtin.html.is_none() && !notice {
        return Rendered {
            subject,
            text,
            html: None,
        };
    }
    let mut body = String::with_capacity(1024);
    if let Some(logo) = &branding.logo_url {
        body.push_str("<p><img src=\"");
        body.push_str(&escape_html(logo));
        body.push_str("\" alt=\"\" height=\"40\"></p>");
    }
    body.push_str("<p>");
    body.push_str(&escape_html(&intro));
    body.push_str("</p>");
    let color = branding.primary_color.as_deref().unwrap_or("#1f4fd1");
    match (link, code) {
        (Some(link), _) => {
            body.push_str("<p><a href=\"");
            body.push_str(&escape_html(link));
            body.push_str("\" style=\"display:inline-block;padding:10px 18px;background:");
            body.push_str(&escape_html(color));
            body.push_str(";color:#fff;border-radius:6px;text-decoration:none\">");
            body.push_str(&escape_html(&button));
            body.push_str("</a></p>");
        }
        (None, Some(code)) => {
            body.push_str("<p style=\"font-size:28px;letter-spacing:4px;font-weight:bold\">");
            body.push_str(&escape_html(code));
            body.push_str("</p>");
        }
        (None, None) => {}
    }
    if !outro.is_empty() {
        body.push_str("<p>");
        body.push_str(&escape_html(&outro));
        body.push_str("</p>");
    }
    Rendered {
        subject,
        text,
        html: Some(html_page(&body)),
    }
}

/// The engine's words around the code or link of each kind, for wording left out.
fn default_wording(kind: MessageKind) -> (&'static str, &'static str) {
    match kind {
        MessageKind::MagicLink => (
            "Sign in to {{app_name}}:",
            "The link works once and expires in {{minutes}} minutes. If you did not ask for \
             it, ignore this email.",
        ),
        MessageKind::EmailCode => (
            "Your {{app_name}} sign-in code:",
            "It expires in {{minutes}} minutes. Never share it.",
        ),
        MessageKind::SmsCode => (
            "Your {{app_name}} code:",
            "It expires in {{minutes}} min. Do not share it.",
        ),
        MessageKind::EmailVerification => (
            "Confirm {{recipient}} for {{app_name}} with this code:",
            "It expires in {{minutes}} minutes and does not sign anyone in.",
        ),
        MessageKind::SmsVerification => (
            "This code confirms this number for {{app_name}}:",
            "It expires in {{minutes}} min. It does not sign anyone in.",
        ),
        MessageKind::PasswordReset => (
            "Your {{app_name}} password reset code:",
            "It expires in {{minutes}} minutes. If you did not ask for it, ignore this email.",
        ),
        MessageKind::ContactChanged => (
            "{{recipient}} was taken off your {{app_name}} account and no longer signs in to it.",
            "If you did not make this change, contact {{app_name}} now.",
        ),
        MessageKind::SignUpAttempt => (
            "Someone tried to create a {{app_name}} account with {{recipient}}, which already \
             has one.",
            "If it was you, sign in instead, or reset your password if you forgot it. If it \
             was not you, ignore this email: nothing changed.",
        ),
        MessageKind::EmailChange => (
            "Make {{recipient}} your {{app_name}} address with this code:",
            "It expires in {{minutes}} minutes. Nothing changes until it is entered.",
        ),
        MessageKind::EmailChanged => (
            "{{recipient}} is no longer the address of your {{app_name}} account. If you did \
             not make this change, undo it (every device is signed out):",
            "The link works once, for a limited time.",
        ),
        MessageKind::AccountLocked => (
            "Someone entered wrong sign-in details for your {{app_name}} account too often, \
             so we stopped accepting them from {{ip}} ({{device}}) at {{time}}. Your \
             passkeys and sign-in links still work.",
            "If it was you, the link lets that device try again now. If it was not, it \
             lets you choose a new password.",
        ),
        MessageKind::NewSignIn => (
            "Your {{app_name}} account was signed in to at {{time}} from {{ip}} ({{device}}).",
            "If it was you, there is nothing to do. If it was not, change your password and \
             sign out every device from your account page.",
        ),
    }
}

/// Replaces each `{{name}}` with its value (HTML-escaped when `html`).
fn fill<'v>(template: &str, value: &impl Fn(&str) -> &'v str, html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder(name) if html => out.push_str(&escape_html(value(name))),
            Piece::Placeholder(name) => out.push_str(value(name)),
        }
    }
    out
}

/// `text` escaped for HTML or XML, in element content or a quoted attribute value.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crypto::OneTimeCode;
    use crate::delivery::{Recipient, SecretLink};
    use crate::model::{Email, RequestId};

    fn message(kind: MessageKind, org: Option<OrgId>, locale: Option<&str>) -> Message {
        Message {
            kind,
            to: Recipient::Email(Email::parse("ana@example.com").unwrap()),
            link: Some(SecretLink::new("https://a.example/m?token=t&x=<y>".into())),
            code: Some(OneTimeCode::new("042917")),
            expires_in: Duration::from_secs(590),
            locale: locale.map(str::to_owned),
            org_id: org,
            request_id: RequestId::generate(),
            activity: None,
        }
    }

    #[test]
    fn builtins_render_every_kind_with_escaping() {
        let templates = Templates::new();
        let link = templates.render(&message(MessageKind::MagicLink, None, None), "Acme & Co");
        assert_eq!(link.subject, "Your sign-in link for Acme & Co");
        assert!(link.text.contains("https://a.example/m?token=t&x=<y>"));
        assert!(
            link.text.contains("expires in 10 minutes"),
            "590 s rounds up"
        );
        let html = link.html.unwrap();
        assert!(html.contains("href=\"https://a.example/m?token=t&amp;x=&lt;y&gt;\""));
        assert!(html.contains("Acme &amp; Co"));
        let code = templates.render(&message(MessageKind::EmailCode, None, None), "Acme");
        assert_eq!(code.subject, "042917 is your Acme code");
        let sms = templates.render(&message(MessageKind::SmsCode, None, None), "Acme");
        assert!(sms.text.starts_with("042917 is your Acme code"));
        assert!(sms.html.is_none());
    }

    #[test]
    fn the_most_specific_override_wins() {
        let org = OrgId::generate();
        let mut t = Templates::new();
        let with = |s: &str| Template::new(s, "{{code}}", None);
        t.set(MessageKind::EmailCode, None, None, with("global"))
            .unwrap();
        t.set(MessageKind::EmailCode, None, Some("de"), with("de"))
            .unwrap();
        t.set(MessageKind::EmailCode, Some(org), None, with("org"))
            .unwrap();
        t.set(
            MessageKind::EmailCode,
            Some(org),
            Some("pt-BR"),
            with("org pt-BR"),
        )
        .unwrap();
        let subject = |o, l| t.resolve(MessageKind::EmailCode, o, l).subject;
        assert_eq!(subject(Some(org), Some("pt-BR")), "org pt-BR");
        assert_eq!(
            subject(Some(org), Some("pt-br")),
            "org pt-BR",
            "tags ignore case"
        );
        assert_eq!(
            subject(Some(org), Some("de-AT")),
            "org",
            "the org beats a language"
        );
        assert_eq!(subject(None, Some("de-AT")), "de", "primary tag");
        assert_eq!(subject(None, Some("fr")), "global");
        assert_eq!(subject(Some(OrgId::generate()), None), "global");
        assert_eq!(
            t.resolve(MessageKind::MagicLink, Some(org), None),
            Template::builtin(MessageKind::MagicLink)
        );
    }

    #[test]
    fn overrides_are_checked_when_set() {
        let mut t = Templates::new();
        let err = t
            .set(
                MessageKind::MagicLink,
                None,
                None,
                Template::new("s", "no link", None),
            )
            .unwrap_err();
        assert!(err.to_string().contains("{{link}}"), "{err}");
        let html_without = Template::new("s", "{{link}}", Some("<p>click</p>".into()));
        assert!(
            t.set(MessageKind::MagicLink, None, None, html_without)
                .is_err()
        );
        let unknown = Template::new("{{password}}", "{{code}}", None);
        assert!(t.set(MessageKind::SmsCode, None, None, unknown).is_err());
        let nested = Template::new("s", "{{a{{code}}", None);
        assert!(t.set(MessageKind::SmsCode, None, None, nested).is_err());
        let unclosed = Template::new("s", "{{code}} and {{ left open", None);
        t.set(MessageKind::SmsCode, None, None, unclosed).unwrap();
        let sms = t.render(&message(MessageKind::SmsCode, None, None), "A");
        assert_eq!(sms.text, "042917 and {{ left open");
        let fine = Template::new("Hi {{ recipient }}", "{{ code }}", None);
        t.set(MessageKind::SmsCode, None, None, fine).unwrap();
        let sms = t.render(&message(MessageKind::SmsCode, None, None), "A");
        assert_eq!(sms.text, "042917");
        assert_eq!(sms.subject, "Hi ana@example.com");
    }
}
