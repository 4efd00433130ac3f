//! Configuration from the environment, and the engine built from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
use portcullis::{Config, ConsoleMailer, ConsoleSms, Portcullis};
use portcullis_postgres::{KeyFollower, PgConfig, PgStore};
use portcullis_sled::SledStore;

use crate::{AdminKey, Api, IpNet};

/// Where data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// sled files in the data directory (the default).
    Sled,
    /// In memory: gone when the process ends.
    Memory,
    /// A PostgreSQL database (`postgres://…`), which many instances can share.
    Postgres {
        /// The connection URL (it may carry a password: never printed).
        url: String,
        /// `PORTCULLIS_PG_SCHEMA`: the schema of the tables (the URL's `search_path` when
        /// unset, normally `public`).
        schema: Option<String>,
        /// `PORTCULLIS_PG_MAX_CONNECTIONS`: this instance's pool size (10).
        max_connections: Option<u32>,
    },
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Sled => f.write_str("Sled"),
            StoreChoice::Memory => f.write_str("Memory"),
            StoreChoice::Postgres {
                schema,
                max_connections,
                ..
            } => f
                .debug_struct("Postgres")
                .field("url", &"[set]")
                .field("schema", schema)
                .field("max_connections", max_connections)
                .finish(),
        }
    }
}

/// Everything `main` reads from the environment.
#[derive(Clone)]
pub struct Settings {
    /// `PORTCULLIS_ADDR`: where to listen (`127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `PORTCULLIS_PUBLIC_URL`: the origin people see, for links and WebAuthn
    /// (`http://localhost:8080`).
    pub public_url: String,
    /// `PORTCULLIS_DATA_DIR`: the sled files (`./portcullis-data`).
    pub data_dir: PathBuf,
    /// `PORTCULLIS_SECRETS_DIR`: the generated pepper and encryption key
    /// (`./portcullis-secrets`), never the data directory nor inside it.
    pub secrets_dir: PathBuf,
    /// `PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR`: start even though a copy of the data
    /// directory would carry the secrets (the layout before the secrets directory).
    pub allow_secrets_in_data_dir: bool,
    /// `PORTCULLIS_STORE`: `sled`, `memory` or a `postgres://` URL.
    pub store: StoreChoice,
    /// `PORTCULLIS_SMTP_URL`: email over SMTP; unset prints emails to the console.
    pub smtp_url: Option<String>,
    /// `PORTCULLIS_SMTP_FROM`: the sender address (`portcullis <no-reply@localhost>`).
    pub smtp_from: String,
    /// `PORTCULLIS_SMS_WEBHOOK`: texts are POSTed here as `{"to", "body"}`; unset prints them.
    pub sms_webhook: Option<String>,
    /// `PORTCULLIS_ADMIN_KEY`: a bootstrap management credential.
    pub admin_key: Option<AdminKey>,
    /// `PORTCULLIS_TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `PORTCULLIS_ALLOWED_ORIGINS`: comma-separated origins whose pages may call the API
    /// (the login widget, an app on its own site); those under the WebAuthn RP id may also
    /// use passkeys.
    pub allowed_origins: Vec<String>,
    /// `PORTCULLIS_PEPPER`: base64; generated into the secrets directory when unset.
    pub pepper: Option<String>,
    /// `PORTCULLIS_PREVIOUS_PEPPERS`: comma-separated base64 peppers that hashed secrets
    /// before a rotation, newest first (the last one anchors identifiers: keep it).
    pub previous_peppers: Vec<String>,
    /// `PORTCULLIS_BOT_CHECK`: `pow` (default: the built-in proof of work), `off`, or
    /// (feature `captcha`) `turnstile`, `hcaptcha` or `recaptcha` with
    /// `PORTCULLIS_CAPTCHA_SECRET`.
    pub bot_check: BotCheckChoice,
    /// `PORTCULLIS_ALLOW_IPS`: comma-separated CIDRs no per-address throttle applies to.
    pub allow_ips: Vec<IpNet>,
    /// `PORTCULLIS_DENY_IPS`: comma-separated CIDRs refused outright.
    pub deny_ips: Vec<IpNet>,
    /// `PORTCULLIS_ENCRYPTION_KEY`: base64 of 32 bytes; generated when unset.
    pub encryption_key: Option<String>,
    /// `PORTCULLIS_OUTBOUND_ALLOW`: comma-separated addresses or CIDRs that SSO requests
    /// may reach although they are not public (an identity provider on the installation's
    /// own network; `127.0.0.0/8` for a local test provider). Empty by default.
    pub outbound_allow: Vec<IpNet>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("secrets_dir", &self.secrets_dir)
            .field("allow_secrets_in_data_dir", &self.allow_secrets_in_data_dir)
            .field("store", &self.store)
            .field("smtp_url", &set(&self.smtp_url))
            .field("smtp_from", &self.smtp_from)
            .field("sms_webhook", &set(&self.sms_webhook))
            .field(
                "admin_key",
                &self
                    .admin_key
                    .as_ref()
                    .map(|_| "[set]")
                    .unwrap_or("[unset]"),
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("allowed_origins", &self.allowed_origins)
            .field("pepper", &set(&self.pepper))
            .field("previous_peppers", &self.previous_peppers.len())
            .field("bot_check", &self.bot_check)
            .field("allow_ips", &self.allow_ips)
            .field("deny_ips", &self.deny_ips)
            .field("encryption_key", &set(&self.encryption_key))
            .finish()
    }
}

/// Which bot check the server asks for where a risk rule fires.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BotCheckChoice {
    /// None.
    Off,
    /// The built-in proof of work (`GET /protection/challenge`).
    ProofOfWork,
    /// A CAPTCHA provider's verification, with its secret key.
    #[cfg(feature = "captcha")]
    Captcha(portcullis::protect::captcha::Provider, String),
}

impl std::fmt::Debug for BotCheckChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BotCheckChoice::Off => f.write_str("Off"),
            BotCheckChoice::ProofOfWork => f.write_str("ProofOfWork"),
            #[cfg(feature = "captcha")]
            BotCheckChoice::Captcha(provider, _) => write!(f, "Captcha({provider:?}, [secret])"),
        }
    }
}

fn bot_check(lookup: &impl Fn(&str) -> Option<String>) -> Result<BotCheckChoice, String> {
    let choice = lookup("PORTCULLIS_BOT_CHECK");
    #[cfg(feature = "captcha")]
    {
        use portcullis::protect::captcha::Provider;
        let provider = match choice.as_deref() {
            Some("turnstile") => Some(Provider::Turnstile),
            Some("hcaptcha") => Some(Provider::HCaptcha),
            Some("recaptcha") => Some(Provider::ReCaptcha),
            _ => None,
        };
        if let Some(provider) = provider {
            let secret = lookup("PORTCULLIS_CAPTCHA_SECRET").ok_or_else(|| {
                "PORTCULLIS_BOT_CHECK names a CAPTCHA provider: set PORTCULLIS_CAPTCHA_SECRET"
                    .to_owned()
            })?;
            return Ok(BotCheckChoice::Captcha(provider, secret));
        }
    }
    match choice.as_deref() {
        None | Some("pow") => Ok(BotCheckChoice::ProofOfWork),
        Some("off") => Ok(BotCheckChoice::Off),
        Some(other) => Err(format!(
            "PORTCULLIS_BOT_CHECK={other:?}: expected pow, off, turnstile, hcaptcha or recaptcha \
             (the last three need the captcha feature)"
        )),
    }
}

fn networks(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Vec<IpNet>, String> {
    Ok(lookup(name)
        .map(|list| crate::net::parse_networks(&list).map_err(|e| format!("{name}: {e}")))
        .transpose()?
        .unwrap_or_default())
}

/// The shortest bootstrap key accepted.
pub const MIN_ADMIN_KEY: usize = AdminKey::MIN_LEN;

impl Settings {
    /// Reads the environment; unless it says otherwise, the server listens on port 8080
    /// and keeps its files in `./portcullis-data` and `./portcullis-secrets`.
    pub fn from_env() -> Result<Settings, String> {
        Self::from_env_on(8080, "portcullis")
    }

    /// Reads the environment; unless it says otherwise, the server listens on `port` and
    /// keeps its files in `./{name}-data` and `./{name}-secrets`.
    pub fn from_env_on(port: u16, name: &str) -> Result<Settings, String> {
        Self::from_lookup_on(
            |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()),
            port,
            name,
        )
    }

    /// Reads settings from `lookup` (the environment, or a test's map), with the defaults
    /// of [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        Self::from_lookup_on(lookup, 8080, "portcullis")
    }

    /// Reads settings from `lookup`, with the defaults of
    /// [`from_env_on`](Self::from_env_on).
    pub fn from_lookup_on(
        lookup: impl Fn(&str) -> Option<String>,
        port: u16,
        name: &str,
    ) -> Result<Settings, String> {
        let addr = lookup("PORTCULLIS_ADDR").unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let addr = addr.parse().map_err(|_| {
            format!("PORTCULLIS_ADDR={addr:?} is not an address such as 127.0.0.1:8080")
        })?;
        let store = match lookup("PORTCULLIS_STORE").as_deref() {
            None | Some("sled") => StoreChoice::Sled,
            Some("memory") => StoreChoice::Memory,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let max_connections = lookup("PORTCULLIS_PG_MAX_CONNECTIONS")
                    .map(|n| match n.parse::<u32>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!(
                            "PORTCULLIS_PG_MAX_CONNECTIONS={n:?}: expected a positive number"
                        )),
                    })
                    .transpose()?;
                StoreChoice::Postgres {
                    url: url.to_owned(),
                    schema: lookup("PORTCULLIS_PG_SCHEMA"),
                    max_connections,
                }
            }
            Some(_) => {
                // The value may be a mistyped URL with a password: not echoed.
                return Err("PORTCULLIS_STORE: expected sled, memory or a postgres:// URL".into());
            }
        };
        let trusted_proxies = lookup("PORTCULLIS_TRUSTED_PROXIES")
            .map(|list| {
                crate::net::parse_networks(&list)
                    .map_err(|e| format!("PORTCULLIS_TRUSTED_PROXIES: {e}"))
            })
            .transpose()?
            .unwrap_or_default();
        let admin_key = lookup("PORTCULLIS_ADMIN_KEY")
            .map(AdminKey::new)
            .transpose()
            .map_err(|_| {
                format!("PORTCULLIS_ADMIN_KEY must be at least {MIN_ADMIN_KEY} characters")
            })?;
        let allowed_origins = lookup("PORTCULLIS_ALLOWED_ORIGINS")
            .map(|list| {
                list.split(',')
                    .filter(|o| !o.trim().is_empty())
                    .map(|o| {
                        crate::cors::parse_origin(o)
                            .map_err(|e| format!("PORTCULLIS_ALLOWED_ORIGINS: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let allow_secrets_in_data_dir = match lookup(ALLOW_SECRETS_IN_DATA_DIR).as_deref() {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(other) => {
                return Err(format!(
                    "{ALLOW_SECRETS_IN_DATA_DIR}={other:?}: expected 1 or 0"
                ));
            }
        };
        Ok(Settings {
            addr,
            public_url: lookup("PORTCULLIS_PUBLIC_URL")
                .unwrap_or_else(|| format!("http://localhost:{port}")),
            data_dir: lookup("PORTCULLIS_DATA_DIR")
                .unwrap_or_else(|| format!("./{name}-data"))
                .into(),
            secrets_dir: lookup("PORTCULLIS_SECRETS_DIR")
                .unwrap_or_else(|| format!("./{name}-secrets"))
                .into(),
            allow_secrets_in_data_dir,
            store,
            smtp_url: lookup("PORTCULLIS_SMTP_URL"),
            smtp_from: lookup("PORTCULLIS_SMTP_FROM")
                .unwrap_or_else(|| "portcullis <no-reply@localhost>".into()),
            sms_webhook: lookup("PORTCULLIS_SMS_WEBHOOK"),
            admin_key,
            trusted_proxies,
            allowed_origins,
            pepper: lookup("PORTCULLIS_PEPPER"),
            previous_peppers: lookup("PORTCULLIS_PREVIOUS_PEPPERS")
                .map(|list| {
                    list.split(',')
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            bot_check: bot_check(&lookup)?,
            allow_ips: networks(&lookup, "PORTCULLIS_ALLOW_IPS")?,
            deny_ips: networks(&lookup, "PORTCULLIS_DENY_IPS")?,
            encryption_key: lookup("PORTCULLIS_ENCRYPTION_KEY"),
            outbound_allow: lookup("PORTCULLIS_OUTBOUND_ALLOW")
                .map(|list| {
                    crate::net::parse_networks(&list)
                        .map_err(|e| format!("PORTCULLIS_OUTBOUND_ALLOW: {e}"))
                })
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The engine these settings describe, and the store to close at shutdown. A Postgres
    /// store is connected and migrated (`PgStore::migrate`) first.
    pub async fn build(&self) -> Result<(Portcullis, Opened), String> {
        let mut config = Config::new(self.public_url.clone());
        config.rp_name = "portcullis demo".into();
        config.protection.allow = self.allow_ips.clone();
        config.protection.deny = self.deny_ips.clone();
        // Widget pages under the RP id may use passkeys too.
        let rp_host = url::Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        config.passkeys.extra_origins = self
            .allowed_origins
            .iter()
            .filter(|origin| {
                url::Url::parse(origin)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .is_some_and(|host| host == rp_host || host.ends_with(&format!(".{rp_host}")))
            })
            .cloned()
            .collect();
        // Secrets outlive the process whenever the data does.
        let persist = self.store != StoreChoice::Memory;
        if self.store == StoreChoice::Sled {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
            self.keep_secrets_apart()?;
        }
        let pepper = match &self.pepper {
            Some(text) => {
                Pepper::from_base64(text).map_err(|e| format!("PORTCULLIS_PEPPER: {e}"))?
            }
            None => {
                let text = self.secret_file("pepper", persist, || {
                    Pepper::generate().map(|p| p.to_base64().to_string())
                })?;
                Pepper::from_base64(&text).map_err(|e| format!("pepper file: {e}"))?
            }
        };
        let key = match &self.encryption_key {
            Some(text) => EncryptionKey::from_base64(text)
                .map_err(|e| format!("PORTCULLIS_ENCRYPTION_KEY: {e}"))?,
            None => {
                let text = self.secret_file("encryption-key", persist, || {
                    EncryptionKey::generate().map(|k| k.to_base64().to_string())
                })?;
                EncryptionKey::from_base64(&text)
                    .map_err(|e| format!("encryption key file: {e}"))?
            }
        };
        let outbound = self
            .outbound_allow
            .iter()
            .fold(portcullis::OutboundPolicy::default(), |policy, net| {
                policy.allow(*net)
            });
        let mut builder = Portcullis::builder(config).pepper(pepper);
        for (n, text) in self.previous_peppers.iter().enumerate() {
            let old = Pepper::from_base64(text)
                .map_err(|e| format!("PORTCULLIS_PREVIOUS_PEPPERS (number {}): {e}", n + 1))?;
            builder = builder.previous_pepper(old);
        }
        builder = match &self.bot_check {
            BotCheckChoice::Off => builder,
            BotCheckChoice::ProofOfWork => builder.proof_of_work(),
            #[cfg(feature = "captcha")]
            BotCheckChoice::Captcha(provider, secret) => builder.bot_check(
                portcullis::protect::captcha::Captcha::new(*provider, secret.clone())
                    .map_err(|e| format!("PORTCULLIS_BOT_CHECK: {e}"))?,
            ),
        };
        let mut builder = builder
            .keyring(Keyring::new(1, key))
            .outbound_policy(outbound);
        // Domain proofs ask the system's name servers; without a resolver configuration
        // the server still starts, and verifying a domain says why it cannot.
        match portcullis::HickoryDns::system() {
            Ok(dns) => builder = builder.domain_verifier(Arc::new(dns)),
            Err(err) => {
                tracing::warn!(error = %err, "no DNS configuration: domains cannot be verified")
            }
        }
        let opened;
        builder = match &self.store {
            StoreChoice::Sled => {
                let store = Arc::new(open_sled(&self.data_dir.join("db")).map_err(|e| {
                    format!(
                        "cannot open the sled store in {}: {e}",
                        self.data_dir.display()
                    )
                })?);
                opened = Opened::Sled(store.clone());
                builder.shared_store(store)
            }
            StoreChoice::Memory => {
                opened = Opened::Memory;
                builder.store(portcullis_memory::MemoryStore::new())
            }
            StoreChoice::Postgres {
                url,
                schema,
                max_connections,
            } => {
                let store = open_postgres(url, schema.as_deref(), *max_connections).await?;
                opened = Opened::Postgres(store.clone());
                builder.store(store)
            }
        };
        builder = match &self.smtp_url {
            Some(url) => builder.mailer(
                portcullis::smtp::SmtpMailer::from_url(url, &self.smtp_from)
                    .map_err(|e| format!("PORTCULLIS_SMTP_URL: {e}"))?,
            ),
            None => builder.mailer(ConsoleMailer),
        };
        builder = match &self.sms_webhook {
            Some(url) => builder.sms(crate::sms::WebhookSms::new(url)?),
            None => builder.sms(ConsoleSms),
        };
        let auth = builder.build().map_err(|e| format!("configuration: {e}"))?;
        Ok((auth, opened))
    }

    /// Builds the engine and makes it ready to serve: the default organization is made
    /// now (so that its errors show at start) and expired records are swept every ten
    /// minutes.
    pub async fn start(&self) -> Result<Started, String> {
        let (auth, store) = self.build().await?;
        auth.orgs()
            .default_org()
            .await
            .map_err(|e| format!("cannot read the default organization: {e}"))?;
        // The stored signing keys are sealed with the encryption key: opening them now makes
        // a different key (another instance's, a lost file) an error at start, not at the
        // first sign-in.
        auth.tokens().jwks().await.map_err(|e| {
            format!(
                "cannot open the stored signing keys ({e}): is this the encryption key the \
                 data was written with? Every instance on one database needs the same \
                 PORTCULLIS_ENCRYPTION_KEY"
            )
        })?;
        let sweeper = auth.sweep_every(std::time::Duration::from_secs(600));
        // Other instances' key rotations and retirements take effect here at once.
        let follower = match &store {
            Opened::Postgres(pg) => Some(
                pg.follow_key_changes(auth.clone())
                    .await
                    .map_err(|e| format!("cannot follow signing-key changes: {}", chain(&e)))?,
            ),
            _ => None,
        };
        Ok(Started {
            auth,
            store,
            sweeper,
            follower,
        })
    }

    /// The HTTP layer around `auth` with these settings' trusted proxies and bootstrap key.
    pub fn api(&self, auth: Portcullis) -> Api {
        let origins: Vec<&str> = self.allowed_origins.iter().map(String::as_str).collect();
        let api = Api::new(auth)
            .trusting(self.trusted_proxies.clone())
            .admin_key(self.admin_key.clone());
        // Checked when the settings were read.
        api.clone().allowed_origins(&origins).unwrap_or(api)
    }

    /// What `main` says at start about the secrets it keeps in files: where they are, and
    /// that they must not travel with the data. `None` when there are no such files.
    pub fn secrets_notice(&self) -> Option<String> {
        if self.store == StoreChoice::Memory {
            return None;
        }
        let files: Vec<String> = [
            (&self.pepper, SECRET_FILES[0].0),
            (&self.encryption_key, SECRET_FILES[1].0),
        ]
        .into_iter()
        .filter(|(given, _)| given.is_none())
        .map(|(_, name)| self.secret_path(name).display().to_string())
        .collect();
        if files.is_empty() {
            return None;
        }
        let mut notice = match &self.store {
            StoreChoice::Postgres { .. } => format!(
                "secrets kept in {}: every instance on this database needs the same ones \
                 (set PORTCULLIS_PEPPER and PORTCULLIS_ENCRYPTION_KEY); back them up \
                 separately from the database, never together",
                files.join(" and "),
            ),
            _ => format!(
                "secrets kept in {}: back them up separately from {}, never together",
                files.join(" and "),
                self.data_dir.display()
            ),
        };
        if self.allow_secrets_in_data_dir {
            notice.push_str(&format!(
                " ({ALLOW_SECRETS_IN_DATA_DIR} is set: a copy of the data may carry them)"
            ));
        }
        Some(notice)
    }

    /// Refuses to start where one copy of the data directory (a backup, a snapshot) would
    /// also carry the pepper and key that open its hashes, TOTP seeds and signing keys.
    fn keep_secrets_apart(&self) -> Result<(), String> {
        if self.allow_secrets_in_data_dir {
            return Ok(());
        }
        // Checked even when the variable is set now: a file left there is in every copy.
        for (name, variable) in SECRET_FILES {
            let path = self.data_dir.join(name);
            let found = path
                .try_exists()
                .map_err(|e| format!("cannot look for {}: {e}", path.display()))?;
            if found {
                return Err(format!(
                    "{} holds a secret inside the data directory, so every copy of that \
                     directory opens it. Move the file to {} (mode 0600), or set {variable} \
                     and delete it; or set {ALLOW_SECRETS_IN_DATA_DIR}=1 to start anyway",
                    path.display(),
                    self.secrets_dir.join(name).display()
                ));
            }
        }
        if self.pepper.is_some() && self.encryption_key.is_some() {
            return Ok(());
        }
        let data = resolved(&self.data_dir)
            .map_err(|e| format!("cannot resolve {}: {e}", self.data_dir.display()))?;
        let secrets = resolved(&self.secrets_dir)
            .map_err(|e| format!("cannot resolve {}: {e}", self.secrets_dir.display()))?;
        if secrets.starts_with(&data) || data.starts_with(&secrets) {
            return Err(format!(
                "PORTCULLIS_SECRETS_DIR ({}) and PORTCULLIS_DATA_DIR ({}) overlap, so one copy \
                 would carry both the data and its keys: choose directories apart, or set \
                 {ALLOW_SECRETS_IN_DATA_DIR}=1 to start anyway",
                self.secrets_dir.display(),
                self.data_dir.display()
            ));
        }
        Ok(())
    }

    /// Where a generated secret's file is: the secrets directory, or the data directory
    /// when the operator kept the old layout on purpose.
    fn secret_path(&self, name: &str) -> PathBuf {
        let old = self.data_dir.join(name);
        if self.allow_secrets_in_data_dir && old.exists() {
            return old;
        }
        self.secrets_dir.join(name)
    }

    /// A secret kept in the secrets directory, made on first run (with a warning). Without
    /// persistence (the memory store) it is made fresh each run.
    fn secret_file(
        &self,
        name: &str,
        persist: bool,
        generate: impl Fn() -> Result<String, portcullis::Error>,
    ) -> Result<String, String> {
        if !persist {
            return generate().map_err(|e| e.to_string());
        }
        let path = self.secret_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot read {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        let text = generate().map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        match write_private(&path, &text) {
            Ok(()) => {}
            // Another instance starting at the same moment wrote it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return read_complete(&path);
            }
            Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
        }
        eprintln!(
            "warning: generated a new {name} in {}; in production set PORTCULLIS_{} instead",
            path.display(),
            name.to_uppercase().replace('-', "_")
        );
        Ok(text)
    }
}

/// Reads a secret file another instance just created, waiting briefly for its contents.
fn read_complete(path: &Path) -> Result<String, String> {
    for _ in 0..50 {
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    Err(format!("{} stays empty", path.display()))
}

/// Connects to PostgreSQL and brings its schema up to date.
async fn open_postgres(
    url: &str,
    schema: Option<&str>,
    max_connections: Option<u32>,
) -> Result<PgStore, String> {
    let mut config = PgConfig::new(url);
    if let Some(schema) = schema {
        config = config.schema(schema);
    }
    if let Some(n) = max_connections {
        config = config.max_connections(n);
    }
    let store = config
        .connect()
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {}", chain(&e)))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the PostgreSQL schema: {}", chain(&e)))?;
    Ok(store)
}

/// An error and its sources, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens the sled store, trying again for up to two seconds: sled releases its directory
/// lock from a background thread just after the last handle of a previous run drops (a
/// quick restart, or a test that reopens).
fn open_sled(path: &Path) -> Result<SledStore, portcullis_sled::SledError> {
    let mut tries = 0;
    loop {
        match SledStore::open(path) {
            Ok(store) => return Ok(store),
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The secrets that are generated into files when their variable is unset.
const SECRET_FILES: [(&str, &str); 2] = [
    ("pepper", "PORTCULLIS_PEPPER"),
    ("encryption-key", "PORTCULLIS_ENCRYPTION_KEY"),
];

/// The operator's word that the secrets may share the data directory.
const ALLOW_SECRETS_IN_DATA_DIR: &str = "PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR";

/// `path` made absolute, with links resolved as far as it exists, so that `data/./keys` or
/// a link to the data directory is recognised before anything is created.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let mut missing = Vec::new();
    let mut existing = path.as_path();
    loop {
        match existing.canonicalize() {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(e);
                };
                missing.push(name);
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates `dir` (and its parents) so that only its owner can enter the new directories.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A started engine ([`Settings::start`]): serve [`auth`](Self::auth), then
/// [`stop`](Self::stop).
pub struct Started {
    /// The engine.
    pub auth: Portcullis,
    store: Opened,
    sweeper: portcullis::Sweeper,
    follower: Option<KeyFollower>,
}

/// The store [`Settings::build`] opened, to close at shutdown.
#[derive(Debug)]
pub enum Opened {
    /// The sled database (closed cleanly by [`Started::stop`]).
    Sled(Arc<SledStore>),
    /// Nothing to close.
    Memory,
    /// The pool (its connections closed by [`Started::stop`]).
    Postgres(PgStore),
}

impl Started {
    /// Prints where the data is, where the secrets are and where mail goes.
    pub fn describe(&self, settings: &Settings) {
        let store = match (&self.store, &settings.store) {
            (Opened::Sled(_), _) => format!("sled in {}", settings.data_dir.display()),
            (Opened::Postgres(_), StoreChoice::Postgres { schema, .. }) => format!(
                "PostgreSQL, schema {}",
                schema.as_deref().unwrap_or("from the URL's search_path")
            ),
            (Opened::Postgres(_), _) => "PostgreSQL".to_owned(),
            (Opened::Memory, _) => "memory (nothing is kept)".to_owned(),
        };
        println!(
            "  listening on {} ({store}); OpenAPI at {}/api/v1/openapi.json",
            settings.addr, settings.public_url
        );
        if let Some(notice) = settings.secrets_notice() {
            println!("  {notice}");
        }
        if settings.smtp_url.is_none() {
            println!("  emails are printed here (set PORTCULLIS_SMTP_URL to send them)");
        }
    }

    /// After the server stopped: finishes deliveries under way, stops the sweeper and
    /// closes the store cleanly (a crash is recovered from too, but more slowly).
    pub async fn stop(self) -> Result<(), String> {
        self.auth.flush_deliveries().await;
        self.sweeper.stop().await;
        drop(self.follower);
        drop(self.auth);
        match self.store {
            Opened::Sled(store) => match Arc::try_unwrap(store) {
                Ok(store) => store
                    .close()
                    .map_err(|e| format!("closing the store: {e}"))?,
                Err(_) => {
                    eprintln!("warning: the store is still in use; it will recover at next start")
                }
            },
            Opened::Postgres(store) => store.close().await,
            Opened::Memory => {}
        }
        println!("stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `vars` alone, as if they were the whole environment.
    fn settings(vars: &[(&str, String)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        Settings::from_lookup(move |name| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, value)| value.clone())
        })
    }

    /// A data and a secrets directory side by side in `root`, neither made yet.
    fn dirs(root: &Path) -> Vec<(&'static str, String)> {
        vec![
            (
                "PORTCULLIS_DATA_DIR",
                root.join("data").display().to_string(),
            ),
            (
                "PORTCULLIS_SECRETS_DIR",
                root.join("secrets").display().to_string(),
            ),
        ]
    }

    /// Builds the engine as `main` does, then lets go of the store so a later start can
    /// open it again.
    fn start(vars: &[(&str, String)]) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        let (auth, opened) = runtime.block_on(settings(vars)?.build())?;
        drop(auth);
        if let Opened::Sled(store) = opened
            && let Ok(store) = Arc::try_unwrap(store)
        {
            store.close().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn attack_protection_settings_are_read_and_checked() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.bot_check, BotCheckChoice::ProofOfWork);
        assert!(defaults.allow_ips.is_empty() && defaults.deny_ips.is_empty());
        assert!(defaults.previous_peppers.is_empty());
        let off = settings(&[("PORTCULLIS_BOT_CHECK", "off".into())]).unwrap();
        assert_eq!(off.bot_check, BotCheckChoice::Off);
        let wrong = settings(&[("PORTCULLIS_BOT_CHECK", "maybe".into())]).unwrap_err();
        assert!(wrong.contains("PORTCULLIS_BOT_CHECK"), "{wrong}");
        let lists = settings(&[
            ("PORTCULLIS_ALLOW_IPS", "10.0.0.0/8, 2001:db8::/32".into()),
            ("PORTCULLIS_DENY_IPS", "203.0.113.7".into()),
        ])
        .unwrap();
        assert_eq!(lists.allow_ips.len(), 2);
        assert_eq!(lists.deny_ips.len(), 1);
        assert!(settings(&[("PORTCULLIS_DENY_IPS", "nonsense".into())]).is_err());
        let pepper = Pepper::generate().unwrap().to_base64().to_string();
        let ring = settings(&[(
            "PORTCULLIS_PREVIOUS_PEPPERS",
            format!("{pepper}, {pepper}2"),
        )])
        .unwrap();
        assert_eq!(ring.previous_peppers.len(), 2);
        // The secret values never reach Debug.
        assert!(!format!("{ring:?}").contains(&pepper));
    }

    #[test]
    fn a_previous_pepper_that_is_not_a_pepper_stops_the_start() {
        let root = tempfile::tempdir().unwrap();
        let mut vars = dirs(root.path());
        vars.push(("PORTCULLIS_PREVIOUS_PEPPERS", "not-a-pepper".into()));
        let err = start(&vars).unwrap_err();
        assert!(err.contains("PORTCULLIS_PREVIOUS_PEPPERS"), "{err}");
        assert!(
            !err.contains("not-a-pepper"),
            "the value is not echoed: {err}"
        );
    }

    // PW-16, CR-05, TOTP-08: a copy of the data directory (a backup, a snapshot) must not
    // carry the pepper and the key that open its hashes, seeds and signing keys.
    #[test]
    fn generated_secrets_live_outside_the_data_dir_for_the_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let vars = dirs(root.path());
        start(&vars).unwrap();
        let data = root.path().join("data");
        assert_eq!(names_in(&data), ["db"], "only the store is in the data dir");
        let secrets = root.path().join("secrets");
        assert_eq!(names_in(&secrets), ["encryption-key", "pepper"]);
        #[cfg(unix)]
        {
            assert_eq!(mode(&secrets), 0o700);
            assert_eq!(mode(&secrets.join("pepper")), 0o600);
            assert_eq!(mode(&secrets.join("encryption-key")), 0o600);
        }
        let notice = settings(&vars).unwrap().secrets_notice().unwrap();
        assert!(notice.contains(&secrets.display().to_string()), "{notice}");
        assert!(notice.contains("never together"), "{notice}");
        // A restart reads them back rather than making new ones.
        let pepper = std::fs::read_to_string(secrets.join("pepper")).unwrap();
        start(&vars).unwrap();
        assert_eq!(
            std::fs::read_to_string(secrets.join("pepper")).unwrap(),
            pepper
        );
    }

    // PW-16: the old layout (secrets generated into the data dir) refuses to start until
    // the operator moves them, even where the variables now supply them.
    #[test]
    fn secrets_found_in_the_data_dir_refuse_to_start() {
        let pepper = Pepper::generate().unwrap().to_base64().to_string();
        let key = EncryptionKey::generate().unwrap().to_base64().to_string();
        for (name, text) in [("pepper", &pepper), ("encryption-key", &key)] {
            let root = tempfile::tempdir().unwrap();
            let data = root.path().join("data");
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join(name), text).unwrap();
            let err = start(&dirs(root.path())).unwrap_err();
            assert!(
                err.contains(&data.join(name).display().to_string()),
                "{err}"
            );
            assert!(
                err.contains("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR"),
                "{err}"
            );
            let mut given = dirs(root.path());
            given.push((
                "PORTCULLIS_PEPPER",
                Pepper::generate().unwrap().to_base64().to_string(),
            ));
            given.push((
                "PORTCULLIS_ENCRYPTION_KEY",
                EncryptionKey::generate().unwrap().to_base64().to_string(),
            ));
            assert!(
                start(&given).is_err(),
                "{name} is still in every copy of the data"
            );
        }
    }

    #[test]
    fn the_override_keeps_secrets_in_the_data_dir_working() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let pepper = Pepper::generate().unwrap().to_base64().to_string();
        let key = EncryptionKey::generate().unwrap().to_base64().to_string();
        std::fs::write(data.join("pepper"), &pepper).unwrap();
        std::fs::write(data.join("encryption-key"), &key).unwrap();
        let mut vars = dirs(root.path());
        vars.push(("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "1".into()));
        start(&vars).unwrap();
        // The old files are the ones in use: nothing new was generated beside them.
        assert!(!root.path().join("secrets").join("pepper").exists());
        assert_eq!(
            std::fs::read_to_string(data.join("pepper")).unwrap(),
            pepper
        );
    }

    #[test]
    fn a_secrets_dir_at_or_inside_the_data_dir_is_refused() {
        for inside in [".", "keys", "./keys"] {
            let root = tempfile::tempdir().unwrap();
            let data = root.path().join("data");
            let inside = data.join(inside);
            let vars = vec![
                ("PORTCULLIS_DATA_DIR", data.display().to_string()),
                ("PORTCULLIS_SECRETS_DIR", inside.display().to_string()),
            ];
            let err = start(&vars).unwrap_err();
            assert!(err.contains("PORTCULLIS_SECRETS_DIR"), "{err}");
            let mut allowed = vars.clone();
            allowed.push(("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "1".into()));
            start(&allowed).unwrap();
        }
        #[cfg(unix)]
        {
            let root = tempfile::tempdir().unwrap();
            let keys = root.path().join("data").join("keys");
            std::fs::create_dir_all(&keys).unwrap();
            std::os::unix::fs::symlink(&keys, root.path().join("secrets")).unwrap();
            let err = start(&dirs(root.path())).unwrap_err();
            assert!(
                err.contains("PORTCULLIS_SECRETS_DIR"),
                "a link into the data: {err}"
            );
        }
    }

    #[test]
    fn secrets_given_by_variable_write_no_file() {
        let root = tempfile::tempdir().unwrap();
        let mut vars = dirs(root.path());
        vars.push((
            "PORTCULLIS_PEPPER",
            Pepper::generate().unwrap().to_base64().to_string(),
        ));
        vars.push((
            "PORTCULLIS_ENCRYPTION_KEY",
            EncryptionKey::generate().unwrap().to_base64().to_string(),
        ));
        start(&vars).unwrap();
        assert_eq!(names_in(&root.path().join("data")), ["db"]);
        assert!(!root.path().join("secrets").exists());
    }

    #[test]
    fn settings_default_and_refuse_bad_values() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://localhost:8080");
        assert_eq!(s.store, StoreChoice::Sled);
        assert_eq!(s.secrets_dir, PathBuf::from("./portcullis-secrets"));
        assert!(!s.allow_secrets_in_data_dir);
        let secret =
            Settings::from_lookup(|name| (name == "PORTCULLIS_ADMIN_KEY").then(|| "k".repeat(40)))
                .unwrap();
        assert!(!format!("{secret:?}").contains("kkkk"), "{secret:?}");
        let with = |k: &'static str, v: &'static str| {
            Settings::from_lookup(move |name| (name == k).then(|| v.to_owned()))
        };
        assert!(with("PORTCULLIS_ADDR", "nowhere").is_err());
        let pg = with("PORTCULLIS_STORE", "postgres://app:hunter2@localhost/test").unwrap();
        assert!(matches!(pg.store, StoreChoice::Postgres { .. }), "{pg:?}");
        assert!(!format!("{pg:?}").contains("hunter2"), "{pg:?}");
        let typo = with("PORTCULLIS_STORE", "postgress://app:hunter2@localhost/test");
        assert!(!typo.unwrap_err().contains("hunter2"));
        assert!(with("PORTCULLIS_STORE", "mongo").is_err());
        assert!(with("PORTCULLIS_ADMIN_KEY", "short").is_err());
        assert!(with("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "maybe").is_err());
        assert!(
            with("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "1")
                .unwrap()
                .allow_secrets_in_data_dir
        );
        assert!(with("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 1.2.3.4/99").is_err());
        assert_eq!(
            with("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
                .unwrap()
                .trusted_proxies
                .len(),
            2
        );
        assert_eq!(
            with("PORTCULLIS_STORE", "memory").unwrap().store,
            StoreChoice::Memory
        );
    }
}
