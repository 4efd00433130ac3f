//! [`Call`]: one request as every framework can describe it.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};
use portcullis::RequestContext;
use portcullis::model::ClientId;

use crate::error::{HttpError, HttpResult};
use crate::{Api, net};

/// A request, framework-neutral: what a framework crate hands to a [`Route`](crate::Route).
/// Its `Debug` names headers and sizes only: bearer tokens, query tokens and bodies with
/// passwords and codes never print.
#[derive(Clone, Default)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// The headers.
    pub headers: HeaderMap,
    /// The query string, without `?` (empty when there is none).
    pub query: String,
    /// The path parameters the router matched, by name, in path order.
    pub params: Vec<(String, String)>,
    /// The body, whole (the framework enforces the size limit).
    pub body: Bytes,
    /// The socket's peer address, when the framework knows it.
    pub peer: Option<IpAddr>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(|name| name.as_str()).collect();
        let params: Vec<&str> = self.params.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("headers", &headers)
            .field("query_bytes", &self.query.len())
            .field("params", &params)
            .field("body_bytes", &self.body.len())
            .field("peer", &self.peer)
            .finish()
    }
}

impl Call {
    /// An empty `GET`.
    pub fn new() -> Self {
        Call::default()
    }

    /// The same with the path parameters of `template` (`/organizations/{id}`), in path
    /// order, each looked up by name in what the router matched.
    pub fn with_params(mut self, template: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        self.params = param_names(template)
            .filter_map(|name| Some((name.to_owned(), lookup(name)?)))
            .collect();
        self
    }

    /// The value of header `name`, if it is present and text.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The context the engine is given: [`client_context`](Self::client_context), and the
    /// organization named by `client_id` (query) or `X-Client-Id` (header), which must be a
    /// registered app, or else the organization whose proven login domain the `Host` is
    /// ([`Orgs::for_host`](portcullis::directory::Orgs::for_host)); any other `Host` names
    /// no organization.
    pub async fn context(&self, api: &Api) -> HttpResult<RequestContext> {
        let mut ctx = self.client_context(api);
        let host_org = self.host_org(api).await?;
        let from_query = serde_urlencoded::from_str::<Vec<(String, String)>>(&self.query)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "client_id"))
            .map(|(_, v)| v);
        let client = from_query.or_else(|| self.header("x-client-id").map(str::to_owned));
        if let Some(client) = client {
            let client_id = ClientId::new(client)?;
            let config = match api
                .auth
                .orgs()
                .config_by_client_id(client_id.as_str())
                .await
            {
                Err(portcullis::Error::NotFound { .. }) => {
                    return Err(HttpError::invalid("client_id is not a registered app"));
                }
                other => other?,
            };
            if host_org
                .as_ref()
                .is_some_and(|(org, _)| *org != config.org_id)
            {
                return Err(HttpError::invalid(
                    "client_id is an app of another organization than this domain's",
                ));
            }
            ctx = ctx.with_org(config.org_id).with_client(client_id);
        } else if let Some((org, _)) = &host_org {
            ctx = ctx.with_org(*org);
        }
        if let Some((_, site)) = host_org {
            ctx = ctx.with_site(site);
        }
        Ok(ctx)
    }

    /// The organization whose proven login domain this request's `Host` is, and that
    /// domain: `None` for the public origin's host, and for every host no organization
    /// proved.
    async fn host_org(&self, api: &Api) -> HttpResult<Option<(portcullis::OrgId, String)>> {
        crate::browser::login_site(&api.auth, &self.headers).await
    }

    /// What the request says of its client, without any organization: the address (the
    /// socket's, or from `X-Forwarded-For` when the socket is a trusted proxy), user agent,
    /// bot-check answer and first language. The OpenID provider's routes use it as it is:
    /// a `client_id` there is the provider's to judge.
    pub fn client_context(&self, api: &Api) -> RequestContext {
        let mut ctx = RequestContext::new();
        if let Some(peer) = self.peer {
            let forwarded = self
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            ctx = ctx.with_ip(net::client_ip(peer, forwarded, &api.trusted_proxies));
        }
        if let Some(agent) = self.header(http::header::USER_AGENT) {
            ctx = ctx.with_user_agent(agent);
        }
        // The answer to a bot check the last response asked for (428 bot_check_required):
        // a solved proof-of-work challenge or a CAPTCHA widget's token.
        if let Some(proof) = self.header("x-bot-proof") {
            ctx = ctx.with_bot_proof(proof);
        }
        if let Some(language) = self.header(http::header::ACCEPT_LANGUAGE) {
            let first = language.split([',', ';']).next().unwrap_or_default();
            ctx = ctx.with_locale(first);
        }
        ctx
    }
}

/// The `{name}` parameters of a route's path, in order.
pub fn param_names(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_credential_or_body() {
        let mut call = Call::new();
        call.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer sekret-token"),
        );
        call.query = "token=sekret-link".into();
        call.body = bytes::Bytes::from_static(br#"{"password":"sekret-password"}"#);
        let printed = format!("{call:?}");
        assert!(!printed.contains("sekret"), "{printed}");
        assert!(printed.contains("authorization"), "{printed}");
        let response = crate::Response::json(
            http::StatusCode::OK,
            &serde_json::json!({"token": "sekret"}),
        );
        assert!(!format!("{response:?}").contains("sekret"));
    }
}
