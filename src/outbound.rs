//! Requests to URLs that someone other than the operator named (DESIGN invariant 15,
//! checklist 2.21): an SSO connection's discovery document, JWKS and token endpoint.
//!
//! Every such request goes through [`Outbound`], and nothing else in the engine builds an
//! HTTP client. A request:
//!
//! - is parsed once, by one parser ([`url::Url`], which also reads the numeric spellings of
//!   IPv4 addresses: `http://2130706433/`, `http://0x7f.1/`), and refused when the URL
//!   carries credentials or a scheme other than `https` (`http` only to an allowlisted
//!   address);
//! - resolves the host once, checks every address against the [`OutboundPolicy`]
//!   (loopback, private, shared, link-local and metadata, documentation, benchmarking,
//!   multicast, IPv6 unique-local and link-local, IPv4-mapped, NAT64 and 6to4 forms are
//!   refused unless allowlisted), and connects to exactly the addresses it checked, so a
//!   second answer from DNS cannot send it elsewhere;
//! - follows no redirect, has a connect and a total timeout, and reads at most
//!   [`OutboundPolicy::max_body`] bytes (no decompression is negotiated, so the cap is on
//!   what is parsed);
//! - never hands what came back to the caller of the engine's API: a failure names the
//!   check, never the upstream body.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use url::{Host, Url};

use crate::Error;

/// What outbound requests may reach. The default allows public addresses only, `https`
/// on port 443, a 3-second connect and a 10-second total timeout, and 64 KiB bodies.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allow: Vec<IpNet>,
    https_ports: Vec<u16>,
    connect_timeout: Duration,
    timeout: Duration,
    max_body: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow: Vec::new(),
            https_ports: vec![443],
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
        }
    }
}

impl OutboundPolicy {
    /// Allows an address or prefix that is not public (an identity provider on the
    /// installation's own network). Any port and plain `http` are then allowed to it.
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net);
        self
    }

    /// Allows loopback (`127.0.0.0/8`, `::1`): for tests and local development only.
    pub fn allow_loopback(self) -> Self {
        let v4 = ipnet::Ipv4Net::new(std::net::Ipv4Addr::LOCALHOST, 8).map(|net| net.trunc());
        let this = match v4 {
            Ok(net) => self.allow(IpNet::V4(net)),
            Err(_) => self,
        };
        this.allow(IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)))
    }

    /// The ports `https` requests may use on public addresses (default 443).
    pub fn https_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.https_ports = ports.into_iter().collect();
        self
    }

    /// The connect timeout and the total timeout of a request (body included).
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// The largest response body read, in bytes.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    fn allowlisted(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Whether an address is on the public internet: not loopback, unspecified, private
/// (RFC 1918), shared (CGNAT), link-local (the cloud metadata address among them),
/// documentation, benchmarking, multicast or reserved; for IPv6 also not unique-local,
/// link-local, or a form that embeds an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo).
pub fn is_public(ip: IpAddr) -> bool {
    const V4: &[(u32, u8)] = &[
        (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
        (0x0A00_0000, 8),  // 10/8
        (0x6440_0000, 10), // 100.64/10 shared (CGNAT)
        (0x7F00_0000, 8),  // 127/8 loopback
        (0xA9FE_0000, 16), // 169.254/16 link-local, metadata
        (0xAC10_0000, 12), // 172.16/12
        (0xC000_0000, 24), // 192.0.0/24 protocol assignments
        (0xC000_0200, 24), // 192.0.2/24 documentation
        (0xC058_6300, 24), // 192.88.99/24 6to4 relay
        (0xC0A8_0000, 16), // 192.168/16
        (0xC612_0000, 15), // 198.18/15 benchmarking
        (0xC633_6400, 24), // 198.51.100/24 documentation
        (0xCB00_7100, 24), // 203.0.113/24 documentation
        (0xE000_0000, 4),  // 224/4 multicast
        (0xF000_0000, 4),  // 240/4 reserved, broadcast
    ];
    const V6: &[(u128, u8)] = &[
        (0, 127),                                        // :: and ::1
        (0xffff_0000_0000, 96),                          // ::ffff:0:0/96 IPv4-mapped
        (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // NAT64
        (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // local NAT64
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // protocol assignments, Teredo
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
        (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 6to4
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local (deprecated)
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
    ];
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            !V4.iter()
                .any(|&(net, len)| (bits ^ net).checked_shr(32 - u32::from(len)) == Some(0))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            // Only global unicast (2000::/3) is public at all.
            bits >> 125 == 1
                && !V6
                    .iter()
                    .any(|&(net, len)| (bits ^ net).checked_shr(128 - u32::from(len)) == Some(0))
        }
    }
}

/// Turns a host name into addresses for outbound requests. The default,
/// [`SystemResolver`], asks the operating system; [`HickoryDns`](crate::HickoryDns)
/// (feature `dns`) asks name servers directly.
#[async_trait]
pub trait HostResolver: Send + Sync + fmt::Debug {
    /// The addresses of `host` (an ASCII host name, never an IP literal).
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Error>;
}

/// The operating system's resolver (`getaddrinfo`, `/etc/hosts` included).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Error> {
        let found = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|err| Error::Unavailable {
                service: "DNS",
                source: Box::new(err),
            })?;
        Ok(found.map(|addr| addr.ip()).collect())
    }
}

/// The one client for requests to URLs someone other than the operator named.
#[derive(Clone)]
pub struct Outbound {
    policy: OutboundPolicy,
    resolver: Arc<dyn HostResolver>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .field("resolver", &self.resolver)
            .finish()
    }
}

/// A URL that passed the policy, with the addresses the request will use.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) url: Url,
    addrs: Vec<SocketAddr>,
}

/// A response read within the limits: its status and body. `Debug` shows the body's size
/// only: a token response carries tokens.
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Fetched {
    /// The body as JSON of type `T`, or `reason` when it is not.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        reason: &'static str,
    ) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|_| Error::SsoFailed { reason })
    }
}

fn refused(reason: &'static str) -> Error {
    Error::OutboundRefused { reason }
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable {
        service: "the identity provider",
        source: Box::new(err),
    }
}

impl Outbound {
    /// A client under `policy`, resolving names with `resolver`.
    pub fn new(policy: OutboundPolicy, resolver: Arc<dyn HostResolver>) -> Self {
        Outbound { policy, resolver }
    }

    /// The policy in force.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Checks `url` against the policy (parsing it, resolving its host once and checking
    /// every address) without requesting it: what a connection's settings are checked
    /// with when they are saved. The request itself checks again.
    pub async fn check_url(&self, url: &str) -> Result<(), Error> {
        self.check(url).await.map(|_| ())
    }

    pub(crate) async fn check(&self, url: &str) -> Result<Checked, Error> {
        let parsed = Url::parse(url).map_err(|_| refused("not a URL"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(refused("only https URLs are fetched")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refused("URLs with credentials are not fetched"));
        }
        let port = parsed.port_or_known_default().ok_or(refused("no port"))?;
        let ips = match parsed.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if name.is_empty() {
                    return Err(refused("no host"));
                }
                let ips = self.resolver.resolve(name).await?;
                if ips.is_empty() {
                    return Err(refused("the host has no address"));
                }
                ips
            }
            None => return Err(refused("no host")),
        };
        let allowlisted = ips.iter().all(|ip| self.policy.allowlisted(*ip));
        if !allowlisted {
            if ips.iter().any(|ip| !is_public(*ip)) {
                return Err(refused("the host resolves to a non-public address"));
            }
            if !https {
                return Err(refused("only https URLs are fetched"));
            }
            if !self.policy.https_ports.contains(&port) {
                return Err(refused("the port is not allowed"));
            }
        }
        let addrs = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        Ok(Checked { url: parsed, addrs })
    }

    fn client(&self, checked: &Checked) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.policy.connect_timeout)
            .timeout(self.policy.timeout)
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(Host::Domain(name)) = checked.url.host() {
            // Connect to the addresses that were checked, never to a second answer.
            builder = builder.resolve_to_addrs(name, &checked.addrs);
        }
        builder.build().map_err(unavailable)
    }

    /// GETs `url` (checked first), reading at most the policy's body cap.
    pub(crate) async fn get(&self, url: &str) -> Result<Fetched, Error> {
        self.get_as(url, "application/json").await
    }

    /// The same, asking for `accept` (SAML metadata is XML).
    pub(crate) async fn get_as(&self, url: &str, accept: &str) -> Result<Fetched, Error> {
        let checked = self.check(url).await?;
        let request = self
            .client(&checked)?
            .get(checked.url.clone())
            .header("accept", accept);
        self.send(request).await
    }

    /// POSTs a form to `url` (checked first), with HTTP Basic credentials if given.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Fetched, Error> {
        let checked = self.check(url).await?;
        let body = serde_urlencoded::to_string(form).map_err(|_| Error::Internal("form"))?;
        let mut request = self
            .client(&checked)?
            .post(checked.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some((user, password)) = basic {
            request = request.basic_auth(form_encode(user), Some(form_encode(password)));
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Fetched, Error> {
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|len| len > self.policy.max_body as u64)
        {
            return Err(refused("the response is too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > self.policy.max_body {
                return Err(refused("the response is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, body })
    }
}

/// RFC 6749 §2.3.1: client credentials in Basic auth are form-encoded first.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(!is_public(ip), "{internal} counted as public");
        }
        for public in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} counted as internal");
        }
    }
}
