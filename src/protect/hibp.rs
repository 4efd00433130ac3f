//! [`PwnedPasswords`] (feature `hibp`): refusing passwords seen in data breaches, by Have I
//! Been Pwned's Pwned Passwords range API with k-anonymity: only the first five hex
//! characters of the password's SHA-1 leave the process.

use std::time::Duration;

use async_trait::async_trait;
use sha1::{Digest, Sha1};

use crate::crypto::Password;
use crate::{BreachedPasswords, Error};

/// The public range API.
pub const DEFAULT_BASE_URL: &str = "https://api.pwnedpasswords.com/range/";

/// The largest range answer read (real ones are about 30 KiB, 40 with padding).
const MAX_BODY: usize = 1024 * 1024;

/// A [`BreachedPasswords`] checker over the Pwned Passwords range API
/// (<https://haveibeenpwned.com/API/v3#PwnedPasswords>).
///
/// It sends `GET {base}{first 5 hex of SHA-1}` with `Add-Padding: true` (so the answer's
/// size says nothing either) and looks for the other 35 characters in the answer. A
/// password is refused when it was seen at least [`min_count`](Self::min_count) times
/// (default 1). When the service cannot answer, [`Error::Unavailable`] tells the engine
/// to let the password through with a warning: an outage never blocks sign-ups.
///
/// ```no_run
/// # fn build(config: portcullis::Config) -> Result<(), portcullis::Error> {
/// let auth = portcullis::Portcullis::builder(config)
///     // .store(…).pepper(…).keyring(…)
///     .breached_passwords(portcullis::hibp::PwnedPasswords::new()?);
/// # Ok(()) }
/// ```
pub struct PwnedPasswords {
    base: url::Url,
    client: reqwest::Client,
    min_count: u64,
}

impl PwnedPasswords {
    /// A checker on the public API, with a 5 s timeout.
    pub fn new() -> Result<Self, Error> {
        Self::with_base_url(DEFAULT_BASE_URL)
    }

    /// A checker on another server that speaks the range API (a mirror, a test server):
    /// `base` is joined with the prefix, so it ends in `/range/` or the like.
    pub fn with_base_url(base: &str) -> Result<Self, Error> {
        let base = url::Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.path().ends_with('/'))
            .ok_or_else(|| Error::Config("hibp base URL must be http(s) and end in '/'".into()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // The prefix goes where it was configured to go, and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("hibp client: {e}")))?;
        Ok(PwnedPasswords {
            base,
            client,
            min_count: 1,
        })
    }

    /// Refuse only passwords seen at least `count` times (at least 1).
    pub fn min_count(mut self, count: u64) -> Self {
        self.min_count = count.max(1);
        self
    }

    /// How many times the range API has seen `password` (0: never).
    pub async fn times_seen(&self, password: &Password) -> Result<u64, Error> {
        let digest = Sha1::digest(password.secret().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        let (prefix, suffix) = hex.split_at(5);
        let unavailable = |source: crate::BoxError| Error::Unavailable {
            service: "pwned passwords",
            source,
        };
        let url = self.base.join(prefix).map_err(|e| unavailable(e.into()))?;
        // reqwest's errors carry the URL, which holds the prefix: never keep it.
        let mut response = self
            .client
            .get(url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().into()))?;
        if !response.status().is_success() {
            return Err(unavailable(
                format!("range API answered {}", response.status()).into(),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.without_url().into()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(unavailable("range answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body);
        for line in text.lines() {
            let Some((seen_suffix, count)) = line.trim().split_once(':') else {
                continue;
            };
            if seen_suffix.eq_ignore_ascii_case(suffix) {
                // A sighting whose count cannot be read is an answer not understood, not
                // a clean bill.
                return count
                    .trim()
                    .parse()
                    .map_err(|_| unavailable("unreadable count in range answer".into()));
            }
        }
        Ok(0)
    }
}

impl std::fmt::Debug for PwnedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The base URL may carry credentials for a private mirror: only its host.
        f.debug_struct("PwnedPasswords")
            .field("host", &self.base.host_str().unwrap_or("?"))
            .field("min_count", &self.min_count)
            .finish()
    }
}

#[async_trait]
impl BreachedPasswords for PwnedPasswords {
    async fn is_breached(&self, password: &Password) -> Result<bool, Error> {
        Ok(self.times_seen(password).await? >= self.min_count)
    }
}
