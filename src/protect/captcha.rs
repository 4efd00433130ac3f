//! [`Captcha`]: Cloudflare Turnstile, hCaptcha and Google reCAPTCHA as a
//! [`BotCheck`] (feature `captcha`).
//!
//! The page shows the provider's widget with the site key; its token comes back as the
//! request's bot proof, and the engine asks the provider's `siteverify` endpoint, with the
//! secret key and the client's address, whether it is good (a token is single use at the
//! provider). A provider that does not answer in time, answers with an error status or
//! with something that is not its JSON refuses the request (fails closed), unless
//! [`fail_open`](Captcha::fail_open) was asked for.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::BotCheck;
use crate::crypto::BotProof;
use crate::{BoxError, Error, RequestContext};

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provider {
    /// Cloudflare Turnstile.
    Turnstile,
    /// hCaptcha.
    HCaptcha,
    /// Google reCAPTCHA (v2, or v3 with a minimum score).
    ReCaptcha,
}

impl Provider {
    /// The provider's verification endpoint.
    pub fn verify_url(self) -> &'static str {
        match self {
            Provider::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
            Provider::HCaptcha => "https://api.hcaptcha.com/siteverify",
            Provider::ReCaptcha => "https://www.google.com/recaptcha/api/siteverify",
        }
    }
}

/// A CAPTCHA provider's verification (see the [module docs](self)).
pub struct Captcha {
    provider: Provider,
    secret: zeroize::Zeroizing<String>,
    url: String,
    min_score: Option<f64>,
    fail_open: bool,
    client: reqwest::Client,
}

impl std::fmt::Debug for Captcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captcha")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("min_score", &self.min_score)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

/// What `siteverify` answers (the fields the three providers share, and reCAPTCHA v3's
/// score).
#[derive(Deserialize)]
struct Verdict {
    success: bool,
    #[serde(default)]
    score: Option<f64>,
}

impl Captcha {
    /// Verification with `provider`, using the secret key it issued.
    pub fn new(provider: Provider, secret: impl Into<String>) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|_| Error::Config("cannot build the CAPTCHA client".into()))?;
        Ok(Captcha {
            provider,
            secret: zeroize::Zeroizing::new(secret.into()),
            url: provider.verify_url().to_owned(),
            min_score: None,
            fail_open: false,
            client,
        })
    }

    /// Cloudflare Turnstile.
    pub fn turnstile(secret: impl Into<String>) -> Result<Self, Error> {
        Self::new(Provider::Turnstile, secret)
    }

    /// hCaptcha.
    pub fn hcaptcha(secret: impl Into<String>) -> Result<Self, Error> {
        Self::new(Provider::HCaptcha, secret)
    }

    /// Google reCAPTCHA.
    pub fn recaptcha(secret: impl Into<String>) -> Result<Self, Error> {
        Self::new(Provider::ReCaptcha, secret)
    }

    /// Another verification endpoint (a proxy, an enterprise endpoint, a test server).
    pub fn verify_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// reCAPTCHA v3: refuse answers scoring below `score` (0.0 to 1.0).
    pub fn min_score(mut self, score: f64) -> Self {
        self.min_score = Some(score);
        self
    }

    /// Let requests through when the provider cannot answer (logged). Off by default:
    /// a provider that is down refuses them.
    pub fn fail_open(mut self, open: bool) -> Self {
        self.fail_open = open;
        self
    }

    async fn ask(&self, proof: &BotProof, ctx: &RequestContext) -> Result<bool, BoxError> {
        let ip = ctx.ip.map(|ip| ip.to_string());
        let mut form = vec![
            ("secret", self.secret.as_str()),
            ("response", proof.secret()),
        ];
        if let Some(ip) = &ip {
            form.push(("remoteip", ip));
        }
        let body = serde_urlencoded::to_string(&form)?;
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("siteverify answered {}", response.status()).into());
        }
        let bytes = response.bytes().await?;
        if bytes.len() > 64 * 1024 {
            return Err("siteverify answered too much".into());
        }
        let verdict: Verdict = serde_json::from_slice(&bytes)?;
        let score_ok = match (self.min_score, verdict.score) {
            (Some(min), Some(score)) => score >= min,
            (Some(_), None) => false,
            (None, _) => true,
        };
        Ok(verdict.success && score_ok)
    }
}

#[async_trait]
impl BotCheck for Captcha {
    async fn verify(&self, proof: &BotProof, ctx: &RequestContext) -> Result<bool, Error> {
        match self.ask(proof, ctx).await {
            Ok(verdict) => Ok(verdict),
            Err(source) if self.fail_open => {
                tracing::warn!(error = %source, "the CAPTCHA provider could not answer: let through");
                Ok(true)
            }
            Err(source) => Err(Error::Unavailable {
                service: "the CAPTCHA provider",
                source,
            }),
        }
    }
}
