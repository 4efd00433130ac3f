//! [`RequestContext`]: who is calling, from where, for which organization.

use std::net::IpAddr;

use crate::model::{ClientId, OrgId};

/// Facts about the request a person made, taken by every call they trigger: for rate
/// limits, login logs and choosing the organization whose settings apply.
///
/// The application fills it from its HTTP layer. It must take the IP from the socket or
/// from a trusted proxy's header only: the engine believes what it is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's user agent (cut to 512 bytes).
    pub user_agent: Option<String>,
    /// The organization the request runs in; `None` means the default organization.
    pub org_id: Option<OrgId>,
    /// The app that made the request.
    pub client_id: Option<ClientId>,
    /// The person's language (a BCP 47 tag such as `de` or `pt-BR`), for messages.
    pub locale: Option<String>,
    /// The client's answer to a bot check (a CAPTCHA token), when the page gave one: what
    /// the configured [`BotCheck`](crate::protect::BotCheck) verifies once a budget asks
    /// for it.
    pub bot_proof: Option<crate::crypto::BotProof>,
    /// This request already passed a bot check: later steps of it (a sign-up's code, sent
    /// after the sign-up's own check) do not ask again. The engine sets it after a check
    /// passes; an application that verified a CAPTCHA itself may set it too. Never take it
    /// from the client.
    pub bot_checked: bool,
    /// The organization's login domain the request came on (its `Host`), when the HTTP
    /// layer found it proven ([`Orgs::for_host`](crate::Orgs::for_host)): passkey
    /// ceremonies then run with that domain as the WebAuthn relying party. The engine
    /// checks it again; any other value is ignored.
    pub site: Option<String>,
}

impl RequestContext {
    /// The longest user agent kept.
    pub const MAX_USER_AGENT: usize = 512;

    /// A context with nothing known (a background job, a CLI).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the client's answer to a bot check (cut to 4 KiB).
    pub fn with_bot_proof(mut self, proof: &str) -> Self {
        let mut end = proof.len().min(4096);
        while !proof.is_char_boundary(end) {
            end -= 1;
        }
        self.bot_proof = Some(crate::crypto::BotProof::new(&proof[..end]));
        self
    }

    /// Sets the client address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Sets the user agent, cut to [`MAX_USER_AGENT`](Self::MAX_USER_AGENT) bytes on a
    /// character boundary.
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        let mut end = user_agent.len().min(Self::MAX_USER_AGENT);
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        self.user_agent = Some(user_agent[..end].to_owned());
        self
    }

    /// Sets the organization.
    pub fn with_org(mut self, org: OrgId) -> Self {
        self.org_id = Some(org);
        self
    }

    /// Sets the login domain the request came on (see [`site`](Self::site)).
    pub fn with_site(mut self, host: impl Into<String>) -> Self {
        self.site = Some(host.into());
        self
    }

    /// Sets the calling app.
    pub fn with_client(mut self, client_id: ClientId) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets the language from a BCP 47 tag (`de`, `pt-BR`; an `Accept-Language` header's
    /// first entry). A value that is not such a tag is ignored, so header junk never
    /// reaches a template lookup.
    pub fn with_locale(mut self, tag: &str) -> Self {
        let tag = tag.trim();
        let valid = (2..=35).contains(&tag.len())
            && tag.split('-').all(|part| {
                (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        self.locale = valid.then(|| tag.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_user_agents_are_cut_on_a_char_boundary() {
        let ua = "é".repeat(400); // 800 bytes
        let ctx = RequestContext::new().with_user_agent(&ua);
        let kept = ctx.user_agent.unwrap();
        assert!(kept.len() <= RequestContext::MAX_USER_AGENT);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(kept.len(), 512);
    }

    #[test]
    fn only_language_tags_become_locales() {
        assert_eq!(
            RequestContext::new().with_locale("pt-BR").locale.as_deref(),
            Some("pt-BR")
        );
        for junk in ["", "x", "de;q=0.9", "../../etc", "en_US", "a-toolongpart1"] {
            assert_eq!(
                RequestContext::new().with_locale(junk).locale,
                None,
                "{junk:?}"
            );
        }
    }
}
