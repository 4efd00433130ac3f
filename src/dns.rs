//! DNS for single sign-on: TXT records that prove an organization's domain
//! ([`DomainVerifier`]), and, with the `dns` feature, [`HickoryDns`], which asks name
//! servers directly (the system's, or ones given) and also resolves hosts for
//! [`Outbound`](crate::Outbound).

use std::fmt;

use async_trait::async_trait;

use crate::Error;

/// Looks up the TXT records that prove domains. Names are absolute: the engine passes
/// them with a trailing dot, so no search domain is ever appended.
#[async_trait]
pub trait DomainVerifier: Send + Sync + fmt::Debug {
    /// The TXT records at `name`, each record's character-strings joined into one string.
    /// A name with no such record (or that does not exist) answers an empty list.
    async fn txt_records(&self, name: &str) -> Result<Vec<String>, Error>;
}

#[cfg(feature = "dns")]
pub use hickory::HickoryDns;

#[cfg(feature = "dns")]
mod hickory {
    use std::net::{IpAddr, SocketAddr};

    use async_trait::async_trait;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::net::{DnsError, NetError};
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::{Resolver, TokioResolver};

    use super::DomainVerifier;
    use crate::Error;
    use crate::outbound::HostResolver;

    /// Domain proofs and host resolution on [hickory-resolver], without a cache (a
    /// removed record stops counting at the next check).
    ///
    /// [hickory-resolver]: https://docs.rs/hickory-resolver
    #[derive(Clone)]
    pub struct HickoryDns {
        resolver: TokioResolver,
    }

    impl std::fmt::Debug for HickoryDns {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("HickoryDns")
        }
    }

    fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Unavailable {
            service: "DNS",
            source: Box::new(err),
        }
    }

    impl HickoryDns {
        /// The name servers of the system's configuration (`/etc/resolv.conf`).
        pub fn system() -> Result<Self, Error> {
            let builder = TokioResolver::builder_tokio().map_err(unavailable)?;
            Self::finish(builder)
        }

        /// The name servers at `servers` (UDP, then TCP for long answers).
        pub fn with_servers(servers: &[SocketAddr]) -> Result<Self, Error> {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            let config = ResolverConfig::from_name_servers(name_servers);
            Self::finish(Resolver::builder_with_config(
                config,
                TokioRuntimeProvider::default(),
            ))
        }

        fn finish(
            mut builder: hickory_resolver::ResolverBuilder<TokioRuntimeProvider>,
        ) -> Result<HickoryDns, Error> {
            let options = builder.options_mut();
            options.cache_size = 0;
            options.ndots = 0;
            let resolver = builder.build().map_err(unavailable)?;
            Ok(HickoryDns { resolver })
        }
    }

    fn is_no_records(err: &NetError) -> bool {
        matches!(err, NetError::Dns(DnsError::NoRecordsFound(_)))
    }

    #[async_trait]
    impl DomainVerifier for HickoryDns {
        async fn txt_records(&self, name: &str) -> Result<Vec<String>, Error> {
            let lookup = match self.resolver.txt_lookup(name).await {
                Ok(lookup) => lookup,
                Err(err) if is_no_records(&err) => return Ok(Vec::new()),
                Err(err) => return Err(unavailable(err)),
            };
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect())
        }
    }

    #[async_trait]
    impl HostResolver for HickoryDns {
        async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Error> {
            let absolute = format!("{}.", host.trim_end_matches('.'));
            match self.resolver.lookup_ip(absolute.as_str()).await {
                Ok(found) => Ok(found.iter().collect()),
                Err(err) if is_no_records(&err) => Ok(Vec::new()),
                Err(err) => Err(unavailable(err)),
            }
        }
    }
}
