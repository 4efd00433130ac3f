//! Organizations (tenants), their apps and settings (`auth.orgs()`).
//!
//! Every organization has a unique slug, any number of custom domains (each unique across
//! organizations), apps (each a public `client_id`, with a secret for confidential
//! clients) and [`OrgSettings`]. One organization, slug `default`, exists for
//! single-tenant applications: a request that names no organization runs there, and
//! [`Orgs::default_org`] makes it on first use.
//!
//! [`config_by_client_id`](Orgs::config_by_client_id) and
//! [`config_by_domain`](Orgs::config_by_domain) answer what a login page may know about
//! the organization it serves — [`PublicConfig`] — and nothing secret.

use serde::{Deserialize, Serialize};

use crate::crypto::{ClientSecret, SecretPurpose, random_token};
use crate::delivery::MessageKind;
use crate::engine::Inner;
use crate::flows::MAX_RETRIES;
use crate::model::{
    App, ApplicationType, ClientId, ClientSettings, OrgId, Organization, Page, PageRequest,
    TokenAuthMethod, checked_label,
};
use crate::{Error, StoreError};

/// The slug of the organization requests run in when they name none.
pub const DEFAULT_ORG_SLUG: &str = "default";

/// What an organization allows and how it looks. Stored with the organization as JSON;
/// fields missing from stored JSON take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OrgSettings {
    /// The ways members may sign in.
    pub sign_in_methods: SignInMethods,
    /// Whether members must, may or cannot use a second factor.
    pub mfa: MfaRequirement,
    /// Shown on the login page.
    pub branding: Branding,
    /// How long its members' sessions last from sign-in, in seconds, when shorter than
    /// [`Ttl::session`](crate::Ttl::session) (which bounds it). `None`: the engine's.
    pub session_lifetime_secs: Option<u64>,
    /// Its own wording of messages (see [`MessageWording`]: words only; the engine lays
    /// out the message and places the code and link). For a message, the wording of its
    /// kind for the recipient's language wins, then for the primary language tag, then one
    /// with no language; without one, [`Templates`](crate::Templates) decides. Messages
    /// name the organization by its branding's display name.
    pub templates: Vec<MessageWording>,
    /// Addresses at the organization's proven domains sign in only through its SSO
    /// connection: passwords, codes, links and passkeys are refused for them
    /// ([`Error::SsoRequired`]). An administrator of the organization, or an installation
    /// credential (break glass), turns it off again.
    pub sso_required: bool,
    /// Attack protection its members get (bot checks, breached passwords, sign-in
    /// notices, the lockout threshold).
    pub security: SecuritySettings,
    /// Its own login domain (`login.acme.example`, served over `https`): a host name it
    /// proved by DNS (a verified domain claim of exactly that name). While the proof
    /// stands, requests whose `Host` is that name run in this organization, passkey
    /// ceremonies there have it as their WebAuthn relying party (a passkey made there
    /// signs in only there), and the links in its messages point to `https://` it instead
    /// of the public origin. Links are never built from any other `Host`.
    pub login_domain: Option<String>,
}

/// An organization's attack-protection choices. Every field has a default, so `{}` is the
/// installation's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SecuritySettings {
    /// When password sign-ins, sign-ups and sends need a bot check (one must be
    /// configured): `risk` (default: once the risk rule fires) or `always`.
    pub bot_check: BotCheckRule,
    /// A password found breached at sign-in: `require` (default: the user chooses a new
    /// one before any session opens) or `warn` (the sign-in goes on, marked).
    pub breached_password: BreachedAction,
    /// When the breach checker cannot answer at sign-in: `open` (default: the sign-in goes
    /// on, logged) or `closed` (refused, [`Error::Unavailable`]).
    pub breach_checker_down: FailMode,
    /// Whether members get a "new sign-in to your account" email when a sign-in looks
    /// unusual (a new device, after many failures, impossible travel). Default off.
    pub new_sign_in_email: bool,
    /// Failed sign-ins per account and client before that client is locked out of the
    /// account, 1 to 100; `None` (default): the installation's
    /// [`Limits::failures_per_account_ip`](crate::Limits::failures_per_account_ip).
    pub lockout_threshold: Option<u32>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            bot_check: BotCheckRule::Risk,
            breached_password: BreachedAction::Require,
            breach_checker_down: FailMode::Open,
            new_sign_in_email: false,
            lockout_threshold: None,
        }
    }
}

/// When a bot check is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BotCheckRule {
    /// Once the risk rule fires ([`Protection::bot_check_after`](crate::Protection::bot_check_after)).
    Risk,
    /// For every password sign-in, sign-up and send (never for a known device's sign-in).
    Always,
}

/// What a breached password found at sign-in does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreachedAction {
    /// The sign-in goes on; the login log marks it.
    Warn,
    /// No session opens until the user chose a new password.
    Require,
}

/// What happens when a checking service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailMode {
    /// Go on without the check (logged).
    Open,
    /// Refuse.
    Closed,
}

/// An organization's wording of one kind of message (checklist ADM-07; DESIGN invariant
/// 14). An organization's administrators are not the engine's operator, so they choose
/// words, not markup: the engine lays the message out, places the code or the sign-in
/// link, and owns every URL in it. The wording is plain text (escaped in HTML bodies)
/// that may name `{{app_name}}`, `{{minutes}}` and `{{recipient}}`, never the code or the
/// link, and holds no URL; the organization's logo and colour come from its
/// [`Branding`]. A field left out takes the engine's wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MessageWording {
    /// The message it is for.
    pub kind: MessageKind,
    /// The language it is in (BCP 47, `de`, `pt-BR`); `None` for any.
    #[serde(default)]
    pub locale: Option<String>,
    /// The subject line (email).
    #[serde(default)]
    pub subject: Option<String>,
    /// The words before the code or the sign-in button.
    #[serde(default)]
    pub intro: Option<String>,
    /// The words after it.
    #[serde(default)]
    pub outro: Option<String>,
    /// The sign-in button's label (magic links).
    #[serde(default)]
    pub button: Option<String>,
}

/// A message rendered for an administrator to look at ([`Orgs::preview_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MessagePreview {
    /// The subject line (email).
    pub subject: String,
    /// The plain-text body (the whole SMS).
    pub text: String,
    /// The HTML body, for emails that have one.
    pub html: Option<String>,
}

impl MessageWording {
    /// The engine's wording for `kind` in `locale` (or any language); set the fields to
    /// change.
    pub fn new(kind: MessageKind, locale: Option<&str>) -> Self {
        MessageWording {
            kind,
            locale: locale.map(str::to_ascii_lowercase),
            subject: None,
            intro: None,
            outro: None,
            button: None,
        }
    }

    /// Checks the wording can carry nothing off: bounded plain text, only the placeholders
    /// that carry no secret, no URL, and no control characters in the subject (no header
    /// injection).
    fn validate(&self) -> Result<(), Error> {
        let locale_ok = self.locale.as_ref().is_none_or(|l| {
            (1..=35).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !locale_ok {
            return Err(Error::invalid(
                "templates",
                "each needs a language tag like pt-BR",
            ));
        }
        if self
            .subject
            .as_deref()
            .is_some_and(|s| s.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "templates",
                "a subject must not contain control characters",
            ));
        }
        let fields = [
            (&self.subject, 200),
            (&self.intro, 2000),
            (&self.outro, 2000),
            (&self.button, 40),
        ];
        for (field, max) in fields {
            if let Some(text) = field {
                crate::templates::check_wording(text, max)?;
            }
        }
        Ok(())
    }
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            sign_in_methods: SignInMethods::default(),
            mfa: MfaRequirement::Optional,
            branding: Branding::default(),
            security: SecuritySettings::default(),
            session_lifetime_secs: None,
            templates: Vec::new(),
            sso_required: false,
            login_domain: None,
        }
    }
}

/// Which sign-in methods an organization allows. All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SignInMethods {
    /// Passkeys.
    pub passkey: bool,
    /// Magic links by email.
    pub magic_link: bool,
    /// One-time codes by email.
    pub email_code: bool,
    /// One-time codes by SMS.
    pub sms_code: bool,
    /// Passwords.
    pub password: bool,
}

impl Default for SignInMethods {
    fn default() -> Self {
        SignInMethods {
            passkey: true,
            magic_link: true,
            email_code: true,
            sms_code: true,
            password: true,
        }
    }
}

/// An organization's second-factor rule. Whatever it says, a member who enrolled a
/// second factor is always asked for it: an organization cannot lower the protection a
/// person chose for their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MfaRequirement {
    /// Not required, and not offered: the login page (through [`PublicConfig::mfa`])
    /// hides enrolment.
    Off,
    /// Not required; offered to members who want it (the default).
    Optional,
    /// Every member completes a second factor; one without any must enrol first
    /// ([`SignIn::MfaEnrollmentRequired`](crate::SignIn::MfaEnrollmentRequired)).
    Required,
}

/// How an organization's login page looks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Branding {
    /// The name shown instead of the organization's.
    pub display_name: Option<String>,
    /// An `https` URL of its logo.
    pub logo_url: Option<String>,
    /// Its main color, `#rrggbb`.
    pub primary_color: Option<String>,
}

impl OrgSettings {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Error> {
        let b = &self.branding;
        if let Some(name) = &b.display_name {
            checked_label(name, "branding.display_name", 100)?;
        }
        if let Some(url) = &b.logo_url
            && (url.len() > 2048 || !url::Url::parse(url).is_ok_and(|u| u.scheme() == "https"))
        {
            return Err(Error::invalid("branding.logo_url", "must be an https URL"));
        }
        if self.templates.len() > 50 {
            return Err(Error::invalid("templates", "at most 50"));
        }
        for wording in &self.templates {
            wording.validate()?;
        }
        if let Some(color) = &b.primary_color {
            let hex = color.strip_prefix('#').unwrap_or_default();
            if hex.len() != 6 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::invalid("branding.primary_color", "must be #rrggbb"));
            }
        }
        Ok(())
    }

    /// An organization's settings. Unreadable ones (written to the store by other means)
    /// are an error, never the defaults: a broken setting must not turn a disabled method
    /// or a required second factor back off.
    fn of(org: &Organization) -> Result<OrgSettings, Error> {
        if org.settings.is_null() {
            return Ok(OrgSettings::default());
        }
        serde_json::from_value(org.settings.clone()).map_err(|_| {
            Error::Store(StoreError::Corrupt {
                what: "organization settings",
            })
        })
    }
}

/// What a login page may know about the organization it serves. Nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicConfig {
    /// The organization.
    pub org_id: OrgId,
    /// Its slug.
    pub slug: String,
    /// The name to show.
    pub name: String,
    /// The app asked for, when asked by client id.
    pub client_id: Option<ClientId>,
    /// The sign-in methods to offer.
    pub sign_in_methods: SignInMethods,
    /// Its second-factor rule.
    pub mfa: MfaRequirement,
    /// Logo and color.
    pub branding: Branding,
}

/// An organization to create.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewOrg {
    /// Display name.
    pub name: String,
    /// URL-safe name: 1 to 64 of `a-z`, `0-9`, `-`; unique.
    pub slug: String,
    /// Custom domains.
    pub domains: Vec<String>,
    /// Settings.
    pub settings: OrgSettings,
}

impl NewOrg {
    /// An organization called `name` with slug `slug`.
    pub fn new(name: impl Into<String>, slug: impl Into<String>) -> Self {
        NewOrg {
            name: name.into(),
            slug: slug.into(),
            ..Self::default()
        }
    }
}

/// Changes to an organization; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OrgUpdate {
    /// A new display name.
    pub name: Option<String>,
    /// A new slug.
    pub slug: Option<String>,
    /// The new list of custom domains.
    pub domains: Option<Vec<String>>,
    /// New settings (replace the old).
    pub settings: Option<OrgSettings>,
}

/// An app to create in an organization.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewApp {
    /// Display name.
    pub name: String,
    /// Its exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// A confidential client (a server): it gets a secret, shown once.
    pub confidential: bool,
    /// Its OpenID Connect client metadata (application type, scopes, grant types…).
    pub client: ClientSettings,
}

/// A change to an app: what is `Some` is replaced.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AppUpdate {
    /// A new display name.
    pub name: Option<String>,
    /// New redirect URIs (the whole list).
    pub redirect_uris: Option<Vec<String>>,
    /// New client metadata (the whole of it).
    pub client: Option<ClientSettings>,
}

/// An app just created: its secret, for a confidential one, is shown only here.
#[derive(Debug, Clone)]
pub struct AppCreated {
    /// The app.
    pub app: App,
    /// The client secret; store it now, it cannot be read back.
    pub client_secret: Option<ClientSecret>,
}

/// Organizations (`auth.orgs()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Orgs<'a> {
    inner: &'a Inner,
}

impl<'a> Orgs<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Orgs { inner }
    }

    /// Creates an organization.
    ///
    /// Errors: [`Error::InvalidInput`] for a bad name, slug, domain or setting;
    /// [`Error::Conflict`] (`"slug"`, `"domain"`) when taken.
    pub async fn create(&self, new: NewOrg) -> Result<Organization, Error> {
        self.check(&new.settings)?;
        if new.settings.login_domain.is_some() {
            // Nothing is proved yet: claim the domain, verify it, then set it.
            return Err(Error::invalid(
                "login_domain",
                "must be a domain this organization proved by DNS (a verified domain claim)",
            ));
        }
        let now = self.inner.clock.now();
        let org = Organization {
            id: OrgId::generate(),
            name: checked_label(&new.name, "name", 100)?,
            slug: checked_slug(&new.slug)?,
            domains: checked_domains(&new.domains)?,
            settings: serde_json::to_value(&new.settings)
                .map_err(|_| Error::Internal("serializing settings"))?,
            created_at: now,
            updated_at: now,
            revision: 0,
        };
        self.inner.orgs.create_org(&org).await?;
        super::log_admin(self.inner, org.id, "org_created").await;
        Ok(org)
    }

    /// Settings as this engine can apply them: valid, with sessions that outlive their
    /// first access token.
    fn check(&self, settings: &OrgSettings) -> Result<(), Error> {
        settings.validate()?;
        if let Some(domain) = &settings.login_domain
            && crate::flows::sso::connections::checked_domain(domain)
                .ok()
                .as_ref()
                != Some(domain)
        {
            return Err(Error::invalid(
                "login_domain",
                "must be a lowercase host name such as login.example.com",
            ));
        }
        if settings
            .security
            .lockout_threshold
            .is_some_and(|n| !(1..=100).contains(&n))
        {
            return Err(Error::invalid(
                "security.lockout_threshold",
                "must be 1 to 100 (NIST SP 800-63B caps failures at 100)",
            ));
        }
        let access = self.inner.config.config.ttl.access_token.as_secs();
        if settings
            .session_lifetime_secs
            .is_some_and(|secs| secs < access)
        {
            return Err(Error::invalid(
                "session_lifetime_secs",
                "must be at least the access-token lifetime",
            ));
        }
        Ok(())
    }

    /// The organization with this id. [`Error::NotFound`] (`"organization"`).
    pub async fn get(&self, id: OrgId) -> Result<Organization, Error> {
        self.inner.orgs.get_org(id).await?.ok_or(Error::NotFound {
            what: "organization",
        })
    }

    /// The organization with this slug.
    pub async fn get_by_slug(&self, slug: &str) -> Result<Organization, Error> {
        self.inner
            .orgs
            .get_org_by_slug(slug)
            .await?
            .ok_or(Error::NotFound {
                what: "organization",
            })
    }

    /// Organizations in creation order, a page at a time.
    pub async fn list(&self, page: &PageRequest) -> Result<Page<Organization>, Error> {
        Ok(self.inner.orgs.list_orgs(page).await?)
    }

    /// The default organization (slug `default`), made on first use. Requests that name
    /// no organization run under its settings.
    pub async fn default_org(&self) -> Result<Organization, Error> {
        if let Some(org) = self.inner.orgs.get_org_by_slug(DEFAULT_ORG_SLUG).await? {
            return Ok(org);
        }
        match self.create(NewOrg::new("Default", DEFAULT_ORG_SLUG)).await {
            // Made by a racing call meanwhile.
            Err(Error::Conflict { .. }) => self.get_by_slug(DEFAULT_ORG_SLUG).await,
            other => other,
        }
    }

    /// The settings of `org`, or of the default organization for `None`. The defaults
    /// when there is no such organization.
    pub async fn settings(&self, org: Option<OrgId>) -> Result<OrgSettings, Error> {
        let found = match org {
            Some(id) => self.inner.orgs.get_org(id).await?,
            None => self.inner.orgs.get_org_by_slug(DEFAULT_ORG_SLUG).await?,
        };
        match found {
            Some(org) => OrgSettings::of(&org),
            None => Ok(OrgSettings::default()),
        }
    }

    /// Saves `org`'s wording for one kind of message and language (`wording.kind`,
    /// `wording.locale`), in place of the one it had; its other settings stay as they are
    /// (compare-and-swap on the organization). [`Error::InvalidInput`] for wording that
    /// could carry a secret or a URL off.
    pub async fn set_template(
        &self,
        org: OrgId,
        wording: &MessageWording,
    ) -> Result<OrgSettings, Error> {
        wording.validate()?;
        self.change_settings(org, "template_saved", |settings| {
            settings
                .templates
                .retain(|t| !(t.kind == wording.kind && t.locale == wording.locale));
            settings.templates.push(wording.clone());
            Ok(())
        })
        .await
    }

    /// Removes `org`'s wording for `kind` in `locale`: the engine's is used again.
    /// [`Error::NotFound`] (`"template"`) when it had none.
    pub async fn remove_template(
        &self,
        org: OrgId,
        kind: MessageKind,
        locale: Option<&str>,
    ) -> Result<OrgSettings, Error> {
        let locale = locale.map(str::to_ascii_lowercase);
        self.change_settings(org, "template_removed", |settings| {
            let before = settings.templates.len();
            settings
                .templates
                .retain(|t| !(t.kind == kind && t.locale == locale));
            if settings.templates.len() == before {
                return Err(Error::NotFound { what: "template" });
            }
            Ok(())
        })
        .await
    }

    /// Whether `org` holds a verified claim of exactly `domain` now.
    pub(crate) async fn proved(&self, org: OrgId, domain: &str) -> Result<bool, Error> {
        Ok(self
            .inner
            .orgs
            .domain_claims(domain)
            .await?
            .iter()
            .any(|c| c.org_id == org && c.domain == domain && c.verified_at.is_some()))
    }

    /// The organization whose login domain `host` is (a `Host` header's name, any case,
    /// without its port), while its proof stands; `None` for every other host.
    pub async fn for_host(&self, host: &str) -> Result<Option<OrgId>, Error> {
        let Ok(host) = crate::flows::sso::connections::checked_domain(host) else {
            return Ok(None);
        };
        for claim in self.inner.orgs.domain_claims(&host).await? {
            if claim.domain != host || claim.verified_at.is_none() {
                continue;
            }
            let settings = self.settings(Some(claim.org_id)).await?;
            if settings.login_domain.as_deref() == Some(host.as_str()) {
                return Ok(Some(claim.org_id));
            }
        }
        Ok(None)
    }

    /// Changes `id`'s settings with `change`, retried on concurrent changes, and logs
    /// `action`.
    async fn change_settings(
        &self,
        id: OrgId,
        action: &'static str,
        change: impl Fn(&mut OrgSettings) -> Result<(), Error>,
    ) -> Result<OrgSettings, Error> {
        for _ in 0..MAX_RETRIES {
            let mut org = self.get(id).await?;
            let mut settings = OrgSettings::of(&org)?;
            change(&mut settings)?;
            self.check(&settings)?;
            org.settings = serde_json::to_value(&settings)
                .map_err(|_| Error::Internal("serializing settings"))?;
            org.updated_at = self.inner.clock.now();
            match self.inner.orgs.update_org(&org).await {
                Err(StoreError::Stale) => continue,
                Err(err) => return Err(err.into()),
                Ok(_) => {
                    super::log_admin(self.inner, id, action).await;
                    return Ok(settings);
                }
            }
        }
        Err(Error::Conflict { what: "revision" })
    }

    /// Renders a message of `wording.kind` in `wording.locale` as `org` would send it, with
    /// `wording` in place of the organization's own for that kind and language (its
    /// branding and display name as saved), to a sample recipient with a sample code or
    /// link: what an administrator sees before saving. Nothing is sent, and the sample code
    /// and link open nothing. [`Error::InvalidInput`] for wording that could not be saved.
    pub async fn preview_message(
        &self,
        org: OrgId,
        wording: &MessageWording,
    ) -> Result<MessagePreview, Error> {
        wording.validate()?;
        let mut settings = OrgSettings::of(&self.get(org).await?)?;
        settings
            .templates
            .retain(|t| !(t.kind == wording.kind && t.locale == wording.locale));
        settings.templates.push(wording.clone());
        let message = crate::delivery::Message::sample(
            wording.kind,
            &self.inner.config.config.public_origin,
            wording.locale.as_deref(),
            org,
            self.inner.clock.now(),
        )?;
        let rendered = crate::delivery::send::render(self.inner, &settings, &message);
        Ok(MessagePreview {
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        })
    }

    /// Changes an organization (compare-and-swap, retried on concurrent changes).
    pub async fn update(&self, id: OrgId, update: &OrgUpdate) -> Result<Organization, Error> {
        if let Some(settings) = &update.settings {
            self.check(settings)?;
            if let Some(domain) = &settings.login_domain
                && !self.proved(id, domain).await?
            {
                return Err(Error::invalid(
                    "login_domain",
                    "must be a domain this organization proved by DNS (a verified domain claim)",
                ));
            }
        }
        let name = update
            .name
            .as_deref()
            .map(|n| checked_label(n, "name", 100))
            .transpose()?;
        let slug = update.slug.as_deref().map(checked_slug).transpose()?;
        let domains = update.domains.as_deref().map(checked_domains).transpose()?;
        for _ in 0..MAX_RETRIES {
            let mut org = self.get(id).await?;
            if org.slug == DEFAULT_ORG_SLUG && slug.as_ref().is_some_and(|s| s != DEFAULT_ORG_SLUG)
            {
                return Err(Error::invalid(
                    "slug",
                    "the default organization keeps its slug",
                ));
            }
            if let Some(name) = &name {
                org.name = name.clone();
            }
            if let Some(slug) = &slug {
                org.slug = slug.clone();
            }
            if let Some(domains) = &domains {
                org.domains = domains.clone();
            }
            if let Some(settings) = &update.settings {
                org.settings = serde_json::to_value(settings)
                    .map_err(|_| Error::Internal("serializing settings"))?;
            }
            org.updated_at = self.inner.clock.now();
            match self.inner.orgs.update_org(&org).await {
                Err(StoreError::Stale) => continue,
                Err(err) => return Err(err.into()),
                Ok(revision) => {
                    org.revision = revision;
                    super::log_admin(self.inner, id, "org_updated").await;
                    return Ok(org);
                }
            }
        }
        Err(Error::Conflict { what: "revision" })
    }

    /// Deletes an organization with its apps, roles, permissions, memberships and API
    /// credentials; its members' sessions in it end (their accounts stay). The default
    /// organization cannot be deleted.
    pub async fn delete(&self, id: OrgId) -> Result<(), Error> {
        let org = self.get(id).await?;
        if org.slug == DEFAULT_ORG_SLUG {
            return Err(Error::Forbidden);
        }
        let mut members = Vec::new();
        let mut page = self
            .inner
            .orgs
            .list_members(id, &PageRequest::first(500))
            .await?;
        loop {
            members.extend(page.items.iter().map(|m| m.user_id));
            let Some(cursor) = page.next_cursor.take() else {
                break;
            };
            page = self
                .inner
                .orgs
                .list_members(id, &PageRequest::after(500, cursor))
                .await?;
        }
        if !self.inner.orgs.delete_org(id).await? {
            return Err(Error::NotFound {
                what: "organization",
            });
        }
        // Its members' sessions there end with it (their accounts stay).
        for user in members {
            super::end_sessions_in(self.inner, user, id).await?;
        }
        super::log_admin(self.inner, id, "org_deleted").await;
        Ok(())
    }

    /// Adds an app. A confidential one gets a 256-bit secret, returned once and stored
    /// as a keyed hash. Its client id is made here (`app_` and 22 random characters,
    /// never a user id), and its redirect URIs and metadata must pass the registration
    /// policy ([`check_client`]).
    pub async fn create_app(&self, org: OrgId, new: &NewApp) -> Result<AppCreated, Error> {
        check_client(
            &new.redirect_uris,
            &new.client,
            new.confidential,
            self.inner.config.origin.as_str(),
        )?;
        let token = random_token()?;
        let short = token.as_str().get(..22).unwrap_or_default();
        let client_id = ClientId::new(format!("app_{short}"))?;
        let client_secret = match new.confidential {
            true => Some(ClientSecret::new(random_token()?.as_str())),
            false => None,
        };
        let secret_hash = client_secret.as_ref().map(|secret| {
            self.inner
                .hasher
                .hash(SecretPurpose::ClientSecret, secret.secret().as_bytes())
        });
        let app = App {
            client_id,
            org_id: org,
            name: checked_label(&new.name, "name", 100)?,
            secret_hash,
            redirect_uris: new.redirect_uris.clone(),
            created_at: self.inner.clock.now(),
            client: new.client.clone(),
        };
        self.inner.orgs.create_app(&app).await?;
        super::log_admin(self.inner, org, "app_created").await;
        Ok(AppCreated { app, client_secret })
    }

    /// The app with this client id ([`Error::NotFound`] `"app"`).
    pub async fn app(&self, client_id: &ClientId) -> Result<App, Error> {
        self.inner
            .orgs
            .get_app(client_id)
            .await?
            .ok_or(Error::NotFound { what: "app" })
    }

    /// Changes an app's name, redirect URIs or client metadata, under the same policy as
    /// [`create_app`](Self::create_app). A change of redirect URIs is logged
    /// (`app_redirect_uris_changed`).
    pub async fn update_app(&self, client_id: &ClientId, update: &AppUpdate) -> Result<App, Error> {
        let mut app = self.app(client_id).await?;
        if let Some(name) = &update.name {
            app.name = checked_label(name, "name", 100)?;
        }
        let uris_changed = update
            .redirect_uris
            .as_ref()
            .is_some_and(|uris| *uris != app.redirect_uris);
        if let Some(uris) = &update.redirect_uris {
            app.redirect_uris = uris.clone();
        }
        if let Some(client) = &update.client {
            app.client = client.clone();
        }
        check_client(
            &app.redirect_uris,
            &app.client,
            app.is_confidential(),
            self.inner.config.origin.as_str(),
        )?;
        if !self.inner.orgs.update_app(&app).await? {
            return Err(Error::NotFound { what: "app" });
        }
        super::log_admin(self.inner, app.org_id, "app_updated").await;
        if uris_changed {
            super::log_admin(self.inner, app.org_id, "app_redirect_uris_changed").await;
        }
        Ok(app)
    }

    /// Gives a confidential app a new secret, returned once; the old one stops working at
    /// once. [`Error::Conflict`] (`"public_client"`) for a public app.
    pub async fn rotate_app_secret(&self, client_id: &ClientId) -> Result<ClientSecret, Error> {
        let mut app = self.app(client_id).await?;
        if !app.is_confidential() {
            return Err(Error::Conflict {
                what: "public_client",
            });
        }
        let secret = ClientSecret::new(random_token()?.as_str());
        app.secret_hash = Some(
            self.inner
                .hasher
                .hash(SecretPurpose::ClientSecret, secret.secret().as_bytes()),
        );
        if !self.inner.orgs.update_app(&app).await? {
            return Err(Error::NotFound { what: "app" });
        }
        super::log_admin(self.inner, app.org_id, "app_secret_rotated").await;
        Ok(secret)
    }

    /// An organization's apps.
    pub async fn apps(&self, org: OrgId) -> Result<Vec<App>, Error> {
        Ok(self.inner.orgs.list_apps(org).await?)
    }

    /// Deletes an app; its client id stops working at once.
    pub async fn delete_app(&self, client_id: &ClientId) -> Result<(), Error> {
        let app = self
            .inner
            .orgs
            .get_app(client_id)
            .await?
            .ok_or(Error::NotFound { what: "app" })?;
        if !self.inner.orgs.delete_app(client_id).await? {
            return Err(Error::NotFound { what: "app" });
        }
        super::log_admin(self.inner, app.org_id, "app_deleted").await;
        Ok(())
    }

    /// What the login page of an app needs: the organization's public configuration.
    /// [`Error::NotFound`] (`"app"`) for an unknown client id.
    pub async fn config_by_client_id(&self, client_id: &str) -> Result<PublicConfig, Error> {
        let client_id = ClientId::new(client_id)?;
        let app = self
            .inner
            .orgs
            .get_app(&client_id)
            .await?
            .ok_or(Error::NotFound { what: "app" })?;
        let org = self.get(app.org_id).await?;
        public_config(&org, Some(client_id))
    }

    /// The public configuration of the organization that owns a custom domain.
    pub async fn config_by_domain(&self, domain: &str) -> Result<PublicConfig, Error> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let org = self
            .inner
            .orgs
            .get_org_by_domain(&domain)
            .await?
            .ok_or(Error::NotFound {
                what: "organization",
            })?;
        public_config(&org, None)
    }
}

/// A way of signing in an organization may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Passkey,
    MagicLink,
    EmailCode,
    SmsCode,
    Password,
}

/// Refuses ([`Error::Forbidden`]) a sign-in method the organization turned off.
/// Refuses a sign-in method the organization turned off; otherwise returns its settings,
/// read once for the rest of the ceremony.
pub(crate) async fn allow(
    inner: &Inner,
    org: Option<OrgId>,
    method: Method,
) -> Result<OrgSettings, Error> {
    let settings = Orgs::new(inner).settings(org).await?;
    let methods = &settings.sign_in_methods;
    let allowed = match method {
        Method::Passkey => methods.passkey,
        Method::MagicLink => methods.magic_link,
        Method::EmailCode => methods.email_code,
        Method::SmsCode => methods.sms_code,
        Method::Password => methods.password,
    };
    match allowed {
        true => Ok(settings),
        false => Err(Error::Forbidden),
    }
}

fn public_config(org: &Organization, client_id: Option<ClientId>) -> Result<PublicConfig, Error> {
    let settings = OrgSettings::of(org)?;
    Ok(PublicConfig {
        org_id: org.id,
        slug: org.slug.clone(),
        name: settings
            .branding
            .display_name
            .clone()
            .unwrap_or_else(|| org.name.clone()),
        client_id,
        sign_in_methods: settings.sign_in_methods,
        mfa: settings.mfa,
        branding: settings.branding,
    })
}

fn checked_slug(slug: &str) -> Result<String, Error> {
    let ok = (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !ok {
        return Err(Error::invalid(
            "slug",
            "must be 1 to 64 of a-z, 0-9 and inner hyphens",
        ));
    }
    Ok(slug.to_owned())
}

/// The most domains an organization, or redirect URIs an app, may have.
const MAX_LIST: usize = 20;

/// The scopes an app may be allowed to ask for.
pub const KNOWN_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "phone",
    "offline_access",
    "roles",
];

/// The registration policy for an app's redirect URIs and metadata (RFC 9700 §2.1, §4.1;
/// RFC 8252 §7): every URI absolute, canonical, without fragment, credentials or wildcard
/// and not a script or local scheme; a web app's on `https` (or loopback `http` while the
/// installation itself is served on loopback `http`, for development); a native app's on
/// `https`, loopback `http` with an IP literal (any port at run time), or a private-use
/// scheme with a dot (`com.example.app:/cb`). A public app cannot authenticate with a
/// secret and a confidential one must. Scopes and grant types from the known ones;
/// `refresh_token` only with `authorization_code`.
pub fn check_client(
    redirect_uris: &[String],
    client: &ClientSettings,
    confidential: bool,
    installation_origin: &str,
) -> Result<(), Error> {
    if redirect_uris.len() > MAX_LIST || client.post_logout_redirect_uris.len() > MAX_LIST {
        return Err(Error::invalid("redirect_uris", "at most 20"));
    }
    let development = url::Url::parse(installation_origin).is_ok_and(|url| {
        url.scheme() == "http" && url.host().is_some_and(|host| is_loopback_host(&host))
    });
    for (field, uris) in [
        ("redirect_uris", redirect_uris),
        (
            "post_logout_redirect_uris",
            client.post_logout_redirect_uris.as_slice(),
        ),
    ] {
        for uri in uris {
            check_client_uri(uri, client.application_type, development)
                .map_err(|reason| Error::invalid(field, reason))?;
        }
    }
    match (client.token_endpoint_auth_method, confidential) {
        (Some(TokenAuthMethod::None), true) => {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "a confidential app authenticates with its secret",
            ));
        }
        (Some(TokenAuthMethod::ClientSecretBasic | TokenAuthMethod::ClientSecretPost), false) => {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "a public app has no secret: none",
            ));
        }
        _ => {}
    }
    if let Some(scope) = client
        .scopes
        .iter()
        .find(|s| !KNOWN_SCOPES.contains(&s.as_str()))
    {
        return Err(Error::invalid(
            "scopes",
            format!(
                "unknown scope {scope:?} (known: {})",
                KNOWN_SCOPES.join(" ")
            ),
        ));
    }
    let grants = &client.grant_types;
    if grants
        .iter()
        .any(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(Error::invalid(
            "grant_types",
            "only authorization_code and refresh_token (no implicit or password grant)",
        ));
    }
    if grants.iter().any(|g| g == "refresh_token")
        && !grants.iter().any(|g| g == "authorization_code")
    {
        return Err(Error::invalid(
            "grant_types",
            "refresh_token needs authorization_code",
        ));
    }
    Ok(())
}

fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => *name == "localhost",
    }
}

fn check_client_uri(
    uri: &str,
    kind: ApplicationType,
    development: bool,
) -> Result<(), &'static str> {
    crate::tokens::check_redirect_uri(uri).map_err(|_| {
        "must be an absolute URL in canonical form, without fragment, credentials or script scheme"
    })?;
    let url = url::Url::parse(uri).map_err(|_| "must be an absolute URL")?;
    if uri.contains('*') {
        return Err("must not hold a wildcard");
    }
    match (url.scheme(), kind) {
        ("https", _) => Ok(()),
        ("http", ApplicationType::Native) => match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err("a native app's http URI must be on 127.0.0.1 or [::1]"),
        },
        ("http", ApplicationType::Web) => match url.host() {
            Some(host) if development && is_loopback_host(&host) => Ok(()),
            _ => Err("a web app's URI must use https"),
        },
        (scheme, ApplicationType::Native) if scheme.contains('.') => Ok(()),
        (_, ApplicationType::Native) => {
            Err("a private-use scheme must be a reversed domain name (com.example.app)")
        }
        (_, ApplicationType::Web) => Err("a web app's URI must use https"),
    }
}

/// Lowercase host names with a dot, without repeats.
fn checked_domains(domains: &[String]) -> Result<Vec<String>, Error> {
    if domains.len() > MAX_LIST {
        return Err(Error::invalid("domains", "at most 20"));
    }
    let mut out = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let host_ok = domain.contains('.')
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !host_ok {
            return Err(Error::invalid(
                "domains",
                "each must be a host name like login.example.com",
            ));
        }
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}
