//! Configuration from the environment, and the engine built from it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey::crypto::{EncryptionKey, Keyring, Pepper};
use latchkey::{Config, ConsoleMailer, ConsoleSms, Latchkey};
use latchkey_sled::SledStore;

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// sled files in the data directory (the default).
    Sled,
    /// In memory: gone when the process ends.
    Memory,
}

/// Everything `main` reads from the environment.
#[derive(Clone)]
pub struct Settings {
    /// `LATCHKEY_ADDR`: where to listen (`127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `LATCHKEY_PUBLIC_URL`: the origin people see, for links and WebAuthn
    /// (`http://localhost:8080`).
    pub public_url: String,
    /// `LATCHKEY_DATA_DIR`: sled files and generated keys (`./latchkey-data`).
    pub data_dir: PathBuf,
    /// `LATCHKEY_STORE`: `sled` or `memory`.
    pub store: StoreChoice,
    /// `LATCHKEY_SMTP_URL`: email over SMTP; unset prints emails to the console.
    pub smtp_url: Option<String>,
    /// `LATCHKEY_SMTP_FROM`: the sender address (`latchkey <no-reply@localhost>`).
    pub smtp_from: String,
    /// `LATCHKEY_SMS_WEBHOOK`: texts are POSTed here as `{"to", "body"}`; unset prints them.
    pub sms_webhook: Option<String>,
    /// `LATCHKEY_ADMIN_KEY`: a bootstrap management credential.
    pub admin_key: Option<String>,
    /// `LATCHKEY_TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `LATCHKEY_PEPPER`: base64; generated into the data directory when unset.
    pub pepper: Option<String>,
    /// `LATCHKEY_ENCRYPTION_KEY`: base64 of 32 bytes; generated when unset.
    pub encryption_key: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("store", &self.store)
            .field("smtp_url", &set(&self.smtp_url))
            .field("smtp_from", &self.smtp_from)
            .field("sms_webhook", &set(&self.sms_webhook))
            .field("admin_key", &set(&self.admin_key))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("pepper", &set(&self.pepper))
            .field("encryption_key", &set(&self.encryption_key))
            .finish()
    }
}

/// The shortest bootstrap key accepted.
pub const MIN_ADMIN_KEY: usize = 32;

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> Result<Settings, String> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads settings from `lookup` (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let addr = lookup("LATCHKEY_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let addr = addr.parse().map_err(|_| {
            format!("LATCHKEY_ADDR={addr:?} is not an address such as 127.0.0.1:8080")
        })?;
        let store = match lookup("LATCHKEY_STORE").as_deref() {
            None | Some("sled") => StoreChoice::Sled,
            Some("memory") => StoreChoice::Memory,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                return Err("LATCHKEY_STORE: the Postgres adapter is not part of latchkey yet; use sled or memory".into());
            }
            Some(other) => {
                return Err(format!("LATCHKEY_STORE={other:?}: expected sled or memory"));
            }
        };
        let trusted_proxies = lookup("LATCHKEY_TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let admin_key = lookup("LATCHKEY_ADMIN_KEY");
        if admin_key.as_ref().is_some_and(|k| k.len() < MIN_ADMIN_KEY) {
            return Err(format!(
                "LATCHKEY_ADMIN_KEY must be at least {MIN_ADMIN_KEY} characters"
            ));
        }
        Ok(Settings {
            addr,
            public_url: lookup("LATCHKEY_PUBLIC_URL")
                .unwrap_or_else(|| "http://localhost:8080".into()),
            data_dir: lookup("LATCHKEY_DATA_DIR")
                .unwrap_or_else(|| "./latchkey-data".into())
                .into(),
            store,
            smtp_url: lookup("LATCHKEY_SMTP_URL"),
            smtp_from: lookup("LATCHKEY_SMTP_FROM")
                .unwrap_or_else(|| "latchkey <no-reply@localhost>".into()),
            sms_webhook: lookup("LATCHKEY_SMS_WEBHOOK"),
            admin_key,
            trusted_proxies,
            pepper: lookup("LATCHKEY_PEPPER"),
            encryption_key: lookup("LATCHKEY_ENCRYPTION_KEY"),
        })
    }

    /// The engine these settings describe, and the sled store to close at shutdown.
    pub fn build(&self) -> Result<(Latchkey, Option<Arc<SledStore>>), String> {
        let mut config = Config::new(self.public_url.clone());
        config.rp_name = "latchkey demo".into();
        let persist = self.store == StoreChoice::Sled;
        if persist {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
        }
        let pepper = match &self.pepper {
            Some(text) => Pepper::from_base64(text).map_err(|e| format!("LATCHKEY_PEPPER: {e}"))?,
            None => {
                let text = self.secret_file("pepper", persist, || {
                    Pepper::generate().map(|p| p.to_base64().to_string())
                })?;
                Pepper::from_base64(&text).map_err(|e| format!("pepper file: {e}"))?
            }
        };
        let key = match &self.encryption_key {
            Some(text) => EncryptionKey::from_base64(text)
                .map_err(|e| format!("LATCHKEY_ENCRYPTION_KEY: {e}"))?,
            None => {
                let text = self.secret_file("encryption-key", persist, || {
                    EncryptionKey::generate().map(|k| k.to_base64().to_string())
                })?;
                EncryptionKey::from_base64(&text)
                    .map_err(|e| format!("encryption key file: {e}"))?
            }
        };
        let mut builder = Latchkey::builder(config)
            .pepper(pepper)
            .keyring(Keyring::new(1, key));
        let mut sled = None;
        builder = match self.store {
            StoreChoice::Sled => {
                let store = Arc::new(SledStore::open(self.data_dir.join("db")).map_err(|e| {
                    format!(
                        "cannot open the sled store in {}: {e}",
                        self.data_dir.display()
                    )
                })?);
                sled = Some(store.clone());
                builder.shared_store(store)
            }
            StoreChoice::Memory => builder.store(latchkey_memory::MemoryStore::new()),
        };
        builder = match &self.smtp_url {
            Some(url) => builder.mailer(
                latchkey::smtp::SmtpMailer::from_url(url, &self.smtp_from)
                    .map_err(|e| format!("LATCHKEY_SMTP_URL: {e}"))?,
            ),
            None => builder.mailer(ConsoleMailer),
        };
        builder = match &self.sms_webhook {
            Some(url) => builder.sms(crate::sms::WebhookSms::new(url)?),
            None => builder.sms(ConsoleSms),
        };
        let auth = builder.build().map_err(|e| format!("configuration: {e}"))?;
        Ok((auth, sled))
    }

    /// A secret kept in the data directory, made on first run (with a warning). Without
    /// persistence (the memory store) it is made fresh each run.
    fn secret_file(
        &self,
        name: &str,
        persist: bool,
        generate: impl Fn() -> Result<String, latchkey::Error>,
    ) -> Result<String, String> {
        if !persist {
            return generate().map_err(|e| e.to_string());
        }
        let path = self.data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot read {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        let text = generate().map_err(|e| e.to_string())?;
        write_private(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "warning: generated a new {name} in {}; set LATCHKEY_{} in production and keep it secret",
            path.display(),
            name.to_uppercase().replace('-', "_")
        );
        Ok(text)
    }
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

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `::1/128` (a bare address is a /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or `addr`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("LATCHKEY_TRUSTED_PROXIES: {text:?} is not a CIDR such as 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is inside the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let bits = usize::from(prefix);
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_networks() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let odd = Cidr::parse("192.168.0.0/23").unwrap();
        assert!(odd.contains("192.168.1.255".parse().unwrap()));
        assert!(!odd.contains("192.168.2.0".parse().unwrap()));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_default_and_refuse_bad_values() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://localhost:8080");
        assert_eq!(s.store, StoreChoice::Sled);
        let secret =
            Settings::from_lookup(|name| (name == "LATCHKEY_ADMIN_KEY").then(|| "k".repeat(40)))
                .unwrap();
        assert!(!format!("{secret:?}").contains("kkkk"), "{secret:?}");
        let with = |k: &'static str, v: &'static str| {
            Settings::from_lookup(move |name| (name == k).then(|| v.to_owned()))
        };
        assert!(with("LATCHKEY_ADDR", "nowhere").is_err());
        assert!(with("LATCHKEY_STORE", "postgres://localhost/test").is_err());
        assert!(with("LATCHKEY_STORE", "mongo").is_err());
        assert!(with("LATCHKEY_ADMIN_KEY", "short").is_err());
        assert!(with("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, 1.2.3.4/99").is_err());
        assert_eq!(
            with("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
                .unwrap()
                .trusted_proxies
                .len(),
            2
        );
        assert_eq!(
            with("LATCHKEY_STORE", "memory").unwrap().store,
            StoreChoice::Memory
        );
    }
}
