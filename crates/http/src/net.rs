//! The client's address behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client's address: the socket's `peer`, unless it is a trusted proxy; then the
/// right-most address in `X-Forwarded-For` (all of its header lines, in order) that is not
/// itself a trusted proxy. A hop that is not an address stops the walk at the last good
/// one, so a client cannot hide behind garbage.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|line| line.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop_ip(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The address in one `X-Forwarded-For` hop: `203.0.113.7`, `2001:db8::1`, or with a
/// port as some proxies write it (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn hop_ip(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = hop.strip_prefix('[')?.split(']').next()?;
            inner.parse().ok()
        })
}

/// Parses a comma-separated list of networks (`10.0.0.0/8, ::1`); a bare address is a
/// network of one.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{text:?} is not a network such as 10.0.0.0/8"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = parse_networks("10.0.0.0/8").unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        // Behind a trusted proxy: the right-most untrusted hop, across header lines.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                ["198.51.100.1, 203.0.113.7", "10.0.0.3"],
                &trusted
            ),
            ip("203.0.113.7")
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["[2001:db8::1]:4711"], &trusted),
            ip("2001:db8::1")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["203.0.113.7, junk"], &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn networks_parse_with_and_without_a_prefix() {
        let nets = parse_networks("10.1.2.3/8, ::1,192.0.2.7").unwrap();
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert!(nets[1].contains(&ip("::1")));
        assert!(!nets[2].contains(&ip("192.0.2.8")));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("nope").is_err());
    }
}
