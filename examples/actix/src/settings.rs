//! [`Settings`]: the environment `cargo run -p example-actix` reads, and the engine built
//! from it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
use portcullis::{Config, ConsoleMailer, ConsoleSms, Portcullis};
use portcullis_sled::SledStore;

/// Everything `main` reads from the environment. Secrets print as `[set]` or `[unset]`.
#[derive(Clone)]
pub struct Settings {
    /// `PORTCULLIS_ACTIX_ADDR`: where to listen (`127.0.0.1:8081`).
    pub addr: SocketAddr,
    /// `PORTCULLIS_PUBLIC_URL`: the origin people use, for links and WebAuthn
    /// (`http://localhost:8081`).
    pub public_url: String,
    /// `PORTCULLIS_DATA_DIR`: the sled store (`./portcullis-actix-data`).
    pub data_dir: PathBuf,
    /// `PORTCULLIS_SECRETS_DIR`: the generated pepper and encryption key
    /// (`./portcullis-actix-secrets`), never the data directory nor inside it.
    pub secrets_dir: PathBuf,
    /// `PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR`: start even though a copy of the data
    /// directory would carry the secrets (the layout before the secrets directory).
    pub allow_secrets_in_data_dir: bool,
    /// `PORTCULLIS_STORE`: `sled` (the default) or `memory`.
    pub persistent: bool,
    /// `PORTCULLIS_SMTP_URL`: email over SMTP; unset prints emails to the console.
    pub smtp_url: Option<String>,
    /// `PORTCULLIS_SMTP_FROM`: the sender (`portcullis <no-reply@localhost>`).
    pub smtp_from: String,
    /// `PORTCULLIS_TRUSTED_PROXIES`: comma-separated networks whose `X-Forwarded-For` is
    /// believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `PORTCULLIS_PEPPER` (base64); generated into the secrets directory when unset.
    pub pepper: Option<String>,
    /// `PORTCULLIS_ENCRYPTION_KEY` (base64 of 32 bytes); generated when unset.
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
            .field("secrets_dir", &self.secrets_dir)
            .field("allow_secrets_in_data_dir", &self.allow_secrets_in_data_dir)
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
        let addr_text = var("PORTCULLIS_ACTIX_ADDR").unwrap_or_else(|| "127.0.0.1:8081".into());
        let addr = addr_text.parse().map_err(|_| {
            format!(
                "PORTCULLIS_ACTIX_ADDR={addr_text:?}: expected an address such as 127.0.0.1:8081"
            )
        })?;
        let persistent = match var("PORTCULLIS_STORE").as_deref() {
            None | Some("sled") => true,
            Some("memory") => false,
            Some(other) => {
                return Err(format!(
                    "PORTCULLIS_STORE={other:?}: the actix example runs on sled or memory"
                ));
            }
        };
        let mut trusted_proxies = Vec::new();
        for net in var("PORTCULLIS_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            trusted_proxies.push(Cidr::parse(net).ok_or_else(|| {
                format!("PORTCULLIS_TRUSTED_PROXIES: {net:?} is not a network such as 10.0.0.0/8")
            })?);
        }
        let allow_secrets_in_data_dir = match var(ALLOW_SECRETS_IN_DATA_DIR).as_deref() {
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
            public_url: var("PORTCULLIS_PUBLIC_URL")
                .unwrap_or_else(|| "http://localhost:8081".into()),
            data_dir: var("PORTCULLIS_DATA_DIR")
                .unwrap_or_else(|| "./portcullis-actix-data".into())
                .into(),
            secrets_dir: var("PORTCULLIS_SECRETS_DIR")
                .unwrap_or_else(|| "./portcullis-actix-secrets".into())
                .into(),
            allow_secrets_in_data_dir,
            persistent,
            smtp_url: var("PORTCULLIS_SMTP_URL"),
            smtp_from: var("PORTCULLIS_SMTP_FROM")
                .unwrap_or_else(|| "portcullis <no-reply@localhost>".into()),
            trusted_proxies,
            pepper: var("PORTCULLIS_PEPPER"),
            encryption_key: var("PORTCULLIS_ENCRYPTION_KEY"),
        })
    }

    /// The engine these settings describe, and the sled store (to close at shutdown).
    pub fn build(&self) -> Result<(Portcullis, Option<Arc<SledStore>>), String> {
        let mut config = Config::new(self.public_url.clone());
        config.rp_name = "portcullis actix demo".into();
        if self.persistent {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
            self.keep_secrets_apart()?;
        }
        let pepper_text = match &self.pepper {
            Some(text) => text.clone(),
            None => self.generated("pepper", "PORTCULLIS_PEPPER", || {
                Pepper::generate().map(|p| p.to_base64().to_string())
            })?,
        };
        let pepper = Pepper::from_base64(&pepper_text).map_err(|e| format!("pepper: {e}"))?;
        let key_text = match &self.encryption_key {
            Some(text) => text.clone(),
            None => self.generated("encryption-key", "PORTCULLIS_ENCRYPTION_KEY", || {
                EncryptionKey::generate().map(|k| k.to_base64().to_string())
            })?,
        };
        let key =
            EncryptionKey::from_base64(&key_text).map_err(|e| format!("encryption key: {e}"))?;
        let builder = Portcullis::builder(config)
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
            (builder.store(portcullis_memory::MemoryStore::new()), None)
        };
        let builder = match &self.smtp_url {
            Some(url) => builder.mailer(
                portcullis::smtp::SmtpMailer::from_url(url, &self.smtp_from)
                    .map_err(|e| format!("PORTCULLIS_SMTP_URL: {e}"))?,
            ),
            None => builder.mailer(ConsoleMailer),
        };
        let auth = builder.build().map_err(|e| format!("configuration: {e}"))?;
        Ok((auth, sled))
    }

    /// What `main` says at start about the secrets it keeps in files: where they are, and
    /// that they must not travel with the data. `None` when there are no such files.
    pub fn secrets_notice(&self) -> Option<String> {
        if !self.persistent {
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
        let mut notice = format!(
            "secrets kept in {}: back them up separately from {}, never together",
            files.join(" and "),
            self.data_dir.display()
        );
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

    /// A secret read from `name` in the secrets directory, or made and written there (owner
    /// only) with a warning. On the memory store it is made fresh each run.
    fn generated(
        &self,
        name: &str,
        variable: &str,
        make: impl Fn() -> Result<String, portcullis::Error>,
    ) -> Result<String, String> {
        if !self.persistent {
            return make().map_err(|e| e.to_string());
        }
        let path = self.secret_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let text = make().map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        write_owner_only(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "warning: generated a new {name} in {}; in production set {variable} instead",
            path.display()
        );
        Ok(text)
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

fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
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

    /// Settings from `vars` alone, as if they were the whole environment.
    fn settings(vars: &[(&str, String)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        Settings::from_vars(move |name| {
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
        let (auth, sled) = settings(vars)?.build()?;
        drop(auth);
        if let Some(store) = sled.and_then(|s| Arc::try_unwrap(s).ok()) {
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
    fn settings_have_their_own_defaults_and_hide_secrets() {
        let s = Settings::from_vars(|_| None).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.public_url, "http://localhost:8081");
        assert_eq!(s.data_dir, PathBuf::from("./portcullis-actix-data"));
        assert!(s.persistent);
        assert_eq!(s.secrets_dir, PathBuf::from("./portcullis-actix-secrets"));
        assert!(!s.allow_secrets_in_data_dir);
        let with = |name: &'static str, value: &'static str| {
            Settings::from_vars(move |n| (n == name).then(|| value.to_owned()))
        };
        let secret = with("PORTCULLIS_SMTP_URL", "smtps://user:hunter2@mail").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(with("PORTCULLIS_ACTIX_ADDR", "nowhere").is_err());
        assert!(with("PORTCULLIS_STORE", "mongo").is_err());
        assert!(!with("PORTCULLIS_STORE", "memory").unwrap().persistent);
        assert!(with("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "maybe").is_err());
        assert!(
            with("PORTCULLIS_ALLOW_SECRETS_IN_DATA_DIR", "1")
                .unwrap()
                .allow_secrets_in_data_dir
        );
        assert!(with("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 1.2.3.4/99").is_err());
        let proxies = with("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, ::1").unwrap();
        assert_eq!(proxies.trusted_proxies.len(), 2);
    }
}
