//! [`Settings`]: the environment `cargo run -p example-actix` reads, and the engine built
//! from it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use latchkey::crypto::{EncryptionKey, Keyring, Pepper};
use latchkey::{Config, ConsoleMailer, ConsoleSms, Latchkey};
use latchkey_sled::SledStore;

/// Everything `main` reads from the environment. Secrets print as `[set]` or `[unset]`.
#[derive(Clone)]
pub struct Settings {
    /// `LATCHKEY_ACTIX_ADDR`: where to listen (`127.0.0.1:8081`).
    pub addr: SocketAddr,
    /// `LATCHKEY_PUBLIC_URL`: the origin people use, for links and WebAuthn
    /// (`http://localhost:8081`).
    pub public_url: String,
    /// `LATCHKEY_DATA_DIR`: the sled store and generated secrets (`./latchkey-actix-data`).
    pub data_dir: PathBuf,
    /// `LATCHKEY_STORE`: `sled` (the default) or `memory`.
    pub persistent: bool,
    /// `LATCHKEY_SMTP_URL`: email over SMTP; unset prints emails to the console.
    pub smtp_url: Option<String>,
    /// `LATCHKEY_SMTP_FROM`: the sender (`latchkey <no-reply@localhost>`).
    pub smtp_from: String,
    /// `LATCHKEY_TRUSTED_PROXIES`: comma-separated networks whose `X-Forwarded-For` is
    /// believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `LATCHKEY_PEPPER` (base64); generated into the data directory when unset.
    pub pepper: Option<String>,
    /// `LATCHKEY_ENCRYPTION_KEY` (base64 of 32 bytes); generated when unset.
    pub encryption_key: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |secret: &Option<String>| match secret {
            Some(_) => "[set]",
            None => "[unset]",
        };
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("persistent", &self.persistent)
            // An SMTP URL may carry a password.
            .field("smtp_url", &shown(&self.smtp_url))
            .field("smtp_from", &self.smtp_from)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("pepper", &shown(&self.pepper))
            .field("encryption_key", &shown(&self.encryption_key))
            .finish()
    }
}

impl Settings {
    /// Reads the process environment (empty values count as unset).
    pub fn from_env() -> Result<Settings, String> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads settings through `var` (the environment, or a test's table).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let addr_text = var("LATCHKEY_ACTIX_ADDR").unwrap_or_else(|| "127.0.0.1:8081".into());
        let addr = addr_text.parse().map_err(|_| {
            format!("LATCHKEY_ACTIX_ADDR={addr_text:?}: expected an address such as 127.0.0.1:8081")
        })?;
        let persistent = match var("LATCHKEY_STORE").as_deref() {
            None | Some("sled") => true,
            Some("memory") => false,
            Some(other) => {
                return Err(format!(
                    "LATCHKEY_STORE={other:?}: the actix example runs on sled or memory"
                ));
            }
        };
        let mut trusted_proxies = Vec::new();
        for net in var("LATCHKEY_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            trusted_proxies.push(Cidr::parse(net).ok_or_else(|| {
                format!("LATCHKEY_TRUSTED_PROXIES: {net:?} is not a network such as 10.0.0.0/8")
            })?);
        }
        Ok(Settings {
            addr,
            public_url: var("LATCHKEY_PUBLIC_URL")
                .unwrap_or_else(|| "http://localhost:8081".into()),
            data_dir: var("LATCHKEY_DATA_DIR")
                .unwrap_or_else(|| "./latchkey-actix-data".into())
                .into(),
            persistent,
            smtp_url: var("LATCHKEY_SMTP_URL"),
            smtp_from: var("LATCHKEY_SMTP_FROM")
                .unwrap_or_else(|| "latchkey <no-reply@localhost>".into()),
            trusted_proxies,
            pepper: var("LATCHKEY_PEPPER"),
            encryption_key: var("LATCHKEY_ENCRYPTION_KEY"),
        })
    }

    /// The engine these settings describe, and the sled store (to close at shutdown).
    pub fn build(&self) -> Result<(Latchkey, Option<Arc<SledStore>>), String> {
        let mut config = Config::new(self.public_url.clone());
        config.rp_name = "latchkey actix demo".into();
        if self.persistent {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
        }
        let pepper_text = match &self.pepper {
            Some(text) => text.clone(),
            None => self.generated("pepper", "LATCHKEY_PEPPER", || {
                Pepper::generate().map(|p| p.to_base64().to_string())
            })?,
        };
        let pepper = Pepper::from_base64(&pepper_text).map_err(|e| format!("pepper: {e}"))?;
        let key_text = match &self.encryption_key {
            Some(text) => text.clone(),
            None => self.generated("encryption-key", "LATCHKEY_ENCRYPTION_KEY", || {
                EncryptionKey::generate().map(|k| k.to_base64().to_string())
            })?,
        };
        let key =
            EncryptionKey::from_base64(&key_text).map_err(|e| format!("encryption key: {e}"))?;
        let builder = Latchkey::builder(config)
            .pepper(pepper)
            .keyring(Keyring::new(1, key))
            .sms(ConsoleSms);
        let (builder, sled) = if self.persistent {
            let path = self.data_dir.join("db");
            let store = SledStore::open(&path)
                .map_err(|e| format!("cannot open the sled store in {}: {e}", path.display()))?;
            let store = Arc::new(store);
            (builder.shared_store(store.clone()), Some(store))
        } else {
            (builder.store(latchkey_memory::MemoryStore::new()), None)
        };
        let builder = match &self.smtp_url {
            Some(url) => builder.mailer(
                latchkey::smtp::SmtpMailer::from_url(url, &self.smtp_from)
                    .map_err(|e| format!("LATCHKEY_SMTP_URL: {e}"))?,
            ),
            None => builder.mailer(ConsoleMailer),
        };
        let auth = builder.build().map_err(|e| format!("configuration: {e}"))?;
        Ok((auth, sled))
    }

    /// A secret read from `name` in the data directory, or made and written there (owner
    /// only) with a warning. On the memory store it is made fresh each run.
    fn generated(
        &self,
        name: &str,
        variable: &str,
        make: impl Fn() -> Result<String, latchkey::Error>,
    ) -> Result<String, String> {
        if !self.persistent {
            return make().map_err(|e| e.to_string());
        }
        let path = self.data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let text = make().map_err(|e| e.to_string())?;
        write_owner_only(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "warning: generated a new {name} in {}; in production set {variable} and keep it secret",
            path.display()
        );
        Ok(text)
    }
}

fn write_owner_only(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A network (`10.0.0.0/8`, `2001:db8::/32`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u128,
    mask: u128,
    v4: bool,
}

impl Cidr {
    /// Parses `address/prefix` or `address`; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let ip: IpAddr = addr.trim().parse().ok()?;
        let (bits, v4) = match ip {
            IpAddr::V4(_) => (32, true),
            IpAddr::V6(_) => (128, false),
        };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return None;
        }
        // Left-aligned in 128 bits, so one mask serves both families.
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Some(Cidr {
            base: aligned(ip) & mask,
            mask,
            v4,
        })
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.v4 && aligned(ip) & self.mask == self.base
    }
}

fn aligned(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let odd = Cidr::parse("192.168.0.0/23").unwrap();
        assert!(odd.contains(ip("192.168.1.255")) && !odd.contains(ip("192.168.2.0")));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains(ip("::1")) && !host.contains(ip("127.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn settings_have_their_own_defaults_and_hide_secrets() {
        let s = Settings::from_vars(|_| None).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.public_url, "http://localhost:8081");
        assert_eq!(s.data_dir, PathBuf::from("./latchkey-actix-data"));
        assert!(s.persistent);
        let with = |name: &'static str, value: &'static str| {
            Settings::from_vars(move |n| (n == name).then(|| value.to_owned()))
        };
        let secret = with("LATCHKEY_SMTP_URL", "smtps://user:hunter2@mail").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(with("LATCHKEY_ACTIX_ADDR", "nowhere").is_err());
        assert!(with("LATCHKEY_STORE", "mongo").is_err());
        assert!(!with("LATCHKEY_STORE", "memory").unwrap().persistent);
        assert!(with("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, 1.2.3.4/99").is_err());
        let proxies = with("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, ::1").unwrap();
        assert_eq!(proxies.trusted_proxies.len(), 2);
    }
}
