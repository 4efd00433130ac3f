//! [`BotCheck`]: a challenge a person passes and a script does not.

use async_trait::async_trait;

use crate::crypto::BotProof;
use crate::{Error, RequestContext};

/// Verifies a client's answer to a bot check (a CAPTCHA or a proof-of-work token), which
/// the page sends and the application puts in
/// [`RequestContext::bot_proof`](crate::RequestContext::bot_proof).
///
/// The engine asks for one only where a budget shared by everyone is running out: past
/// [`SmsPolicy::global_soft`](crate::SmsPolicy::global_soft), a text goes out to a device
/// the recipient never signed in from only with a proof this accepts. Without a
/// `BotCheck`, such texts wait until the budget drains, and devices the recipient signed
/// in from are still served.
#[async_trait]
pub trait BotCheck: Send + Sync + std::fmt::Debug {
    /// Whether `proof` shows a person is behind the request. An error (the checking
    /// service is down) refuses the request.
    async fn verify(&self, proof: &BotProof, ctx: &RequestContext) -> Result<bool, Error>;
}
