//! The tests' DNS server answers real DNS messages over UDP and TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use portcullis_test_support::dns::DnsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn query(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut ours = Edns::new();
        ours.set_max_payload(1232);
        message.set_edns(ours);
    }
    message
}

async fn over_udp(server: SocketAddr, request: &Message) -> Message {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket
        .send_to(&request.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.recv_from(&mut buf),
    )
    .await
    .expect("an answer within 5 s")
    .unwrap();
    let response = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(response.metadata.id, request.metadata.id);
    response
}

async fn over_tcp(server: SocketAddr, request: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = request.to_vec().unwrap();
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn txt_records(response: &Message) -> Vec<Vec<String>> {
    response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::TXT(txt) => txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8(s.to_vec()).unwrap())
                .collect(),
            other => panic!("not TXT: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn txt_records_with_several_strings_are_answered_over_udp_with_ttl_0() {
    let dns = DnsServer::start().await;
    dns.set_txt(
        "_portcullis-challenge.acme.test.",
        vec![
            vec!["portcullis-verification=".into(), "abc123".into()],
            vec!["v=spf1 -all".into()],
        ],
    );

    let response = over_udp(
        dns.addr(),
        &query("_Portcullis-Challenge.ACME.test.", RecordType::TXT, false),
    )
    .await;

    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    let mut records = txt_records(&response);
    records.sort();
    assert_eq!(
        records,
        vec![
            vec!["portcullis-verification=".to_owned(), "abc123".to_owned()],
            vec!["v=spf1 -all".to_owned()],
        ]
    );
    for record in &response.answers {
        assert_eq!(record.ttl, 0);
        // Echoed in the case it was asked.
        assert_eq!(record.name.to_string(), "_Portcullis-Challenge.ACME.test.");
    }
    assert_eq!(dns.queries(), vec!["_Portcullis-Challenge.ACME.test."]);
}

#[tokio::test]
async fn unknown_names_are_nxdomain_and_known_names_without_the_type_are_nodata() {
    let dns = DnsServer::start().await;
    dns.set_a("www.acme.test", vec![Ipv4Addr::new(192, 0, 2, 10)]);

    let unknown = over_udp(dns.addr(), &query("nope.acme.test.", RecordType::TXT, true)).await;
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
    assert!(unknown.answers.is_empty());
    assert_eq!(unknown.authorities.len(), 1, "an SOA for negative caching");
    assert!(unknown.edns.is_some(), "EDNS answered with EDNS");

    let nodata = over_udp(dns.addr(), &query("www.acme.test.", RecordType::TXT, true)).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());

    dns.clear("WWW.acme.test.");
    let cleared = over_udp(dns.addr(), &query("www.acme.test.", RecordType::A, true)).await;
    assert_eq!(cleared.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn a_and_aaaa_records_are_answered_over_tcp_too() {
    let dns = DnsServer::start().await;
    dns.set_a(
        "idp.acme.test",
        vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)],
    );
    dns.set_aaaa("idp.acme.test", vec![Ipv6Addr::LOCALHOST]);

    let a = over_tcp(dns.addr(), &query("idp.acme.test.", RecordType::A, false)).await;
    let ips: Vec<_> = a
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not A: {other:?}"),
        })
        .collect();
    assert_eq!(
        ips,
        vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)]
    );

    let aaaa = over_udp(
        dns.addr(),
        &query("idp.acme.test.", RecordType::AAAA, false),
    )
    .await;
    assert!(
        matches!(aaaa.answers[0].data, RData::AAAA(ip) if ip.0 == Ipv6Addr::LOCALHOST),
        "{aaaa:?}"
    );
}

#[tokio::test]
async fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let dns = DnsServer::start().await;
    let big: Vec<Vec<String>> = (0..8)
        .map(|i| vec![format!("{i}{}", "x".repeat(200))])
        .collect();
    dns.set_txt("big.acme.test", big.clone());

    let udp = over_udp(dns.addr(), &query("big.acme.test.", RecordType::TXT, false)).await;
    assert!(udp.metadata.truncation, "over 512 bytes without EDNS");
    assert!(udp.answers.is_empty());

    let tcp = over_tcp(dns.addr(), &query("big.acme.test.", RecordType::TXT, false)).await;
    assert!(!tcp.metadata.truncation);
    let mut records = txt_records(&tcp);
    records.sort();
    assert_eq!(records, big);
    assert_eq!(dns.queries().len(), 2);
}

/// The resolver the core uses, configured as the core configures it, pointed at `dns`.
fn resolver(dns: &DnsServer) -> hickory_resolver::TokioResolver {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.addr().port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.addr().port();
    let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
        dns.addr().ip(),
        true,
        vec![udp, tcp],
    )]);
    let mut builder = hickory_resolver::Resolver::builder_with_config(
        config,
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    builder.options_mut().ndots = 0;
    builder.build().unwrap()
}

fn joined(lookup: &hickory_resolver::lookup::Lookup) -> Vec<String> {
    let mut values: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    values.sort();
    values
}

#[tokio::test]
async fn hickory_resolver_reads_txt_records_changes_and_long_answers_over_tcp() {
    let dns = DnsServer::start().await;
    let resolver = resolver(&dns);
    dns.set_txt(
        "_portcullis.acme.test",
        vec![vec!["portcullis-verification=".into(), "abc".into()]],
    );

    let first = resolver.txt_lookup("_portcullis.acme.test.").await.unwrap();
    assert_eq!(joined(&first), vec!["portcullis-verification=abc"]);

    // TTL 0: the change is seen at once.
    dns.set_txt("_portcullis.acme.test", vec![vec!["other".into()]]);
    let second = resolver.txt_lookup("_portcullis.acme.test.").await.unwrap();
    assert_eq!(joined(&second), vec!["other"]);

    let big: Vec<Vec<String>> = (0..12)
        .map(|i| vec![format!("{i:02}{}", "y".repeat(250))])
        .collect();
    dns.set_txt("big.acme.test", big.clone());
    let long = resolver.txt_lookup("big.acme.test.").await.unwrap();
    assert_eq!(joined(&long), big.into_iter().flatten().collect::<Vec<_>>());
    let asked = dns
        .queries()
        .iter()
        .filter(|q| *q == "big.acme.test.")
        .count();
    assert_eq!(asked, 2, "truncated over UDP, then asked again over TCP");

    dns.clear("_portcullis.acme.test");
    let gone = resolver.txt_lookup("_portcullis.acme.test.").await;
    assert!(gone.is_err(), "{gone:?}");
    assert!(
        dns.queries().iter().all(|q| q.ends_with(".acme.test.")),
        "{:?}",
        dns.queries()
    );
}
