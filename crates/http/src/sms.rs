//! [`WebhookSms`]: texts POSTed as JSON to a URL (`PORTCULLIS_SMS_WEBHOOK`), for a relay
//! to an SMS provider.

use std::time::Duration;

use async_trait::async_trait;
use portcullis::{DeliveryError, SmsMessage, SmsSender};

/// Sends each text as `POST {url}` with body `{"to": "+1…", "body": "…"}`; any status but
/// 2xx is a delivery failure.
pub struct WebhookSms {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl WebhookSms {
    /// A sender posting to `url` (http or https).
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("PORTCULLIS_SMS_WEBHOOK: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("PORTCULLIS_SMS_WEBHOOK must be an http or https URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("SMS webhook client: {e}"))?;
        Ok(WebhookSms { url, client })
    }
}

impl std::fmt::Debug for WebhookSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token in its query: show only where it goes.
        write!(f, "WebhookSms({})", self.url.host_str().unwrap_or("?"))
    }
}

#[async_trait]
impl SmsSender for WebhookSms {
    async fn send(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let body = serde_json::json!({"to": message.to.as_str(), "body": message.body});
        let response = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            // Without the URL: reqwest's errors name it, and it may hold a token.
            .map_err(|e| DeliveryError::new("sms", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::new(
                "sms",
                format!("webhook answered {}", response.status()),
            ))
        }
    }
}
