//! A real DNS server on loopback for the domain-verification tests: UDP and TCP on the same
//! ephemeral port of 127.0.0.1, speaking the wire format through `hickory-proto` (the
//! release hickory-resolver is built on), answering from records the test sets.
//!
//! Every answer has TTL 0, so a caching resolver asks again after each change. A name with
//! no records set is NXDOMAIN; a name with records, but none of the asked type, is an empty
//! NOERROR answer (NODATA). Negative answers carry an SOA with TTL and minimum 0. Names match
//! case-insensitively, with or without the trailing dot, and are echoed back as asked. A UDP
//! answer larger than the client accepts (512 bytes, or its EDNS payload size) is sent
//! truncated (TC set), so a resolver retries over TCP.
//!
//! ```no_run
//! # async fn example() {
//! use portcullis_test_support::dns::DnsServer;
//! let dns = DnsServer::start().await;
//! dns.set_txt("_portcullis.acme.test", vec![vec!["portcullis-verify=abc".into()]]);
//! // Point the resolver under test at `dns.addr()` (UDP and TCP), then:
//! assert!(dns.queries().iter().any(|q| q == "_portcullis.acme.test."));
//! # }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hickory_proto::op::{Edns, Message, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The EDNS payload size the server announces, the DNS Flag Day 2020 value.
const EDNS_PAYLOAD: u16 = 1232;

/// A DNS server on `127.0.0.1:<ephemeral>` (UDP and TCP), stopped when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The records by normalized name, and every name asked.
#[derive(Default)]
struct Zone {
    names: HashMap<String, Records>,
    queries: Vec<String>,
}

#[derive(Default)]
struct Records {
    txt: Vec<Vec<String>>,
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same free port of 127.0.0.1 and starts answering, on the
    /// caller's tokio runtime.
    pub async fn start() -> DnsServer {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("the UDP socket has an address");
        let zone = Arc::new(Mutex::new(Zone::default()));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone())),
        ];
        DnsServer { addr, zone, tasks }
    }

    /// The address to query, over UDP or TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the TXT records of `name`: one record per inner list, each holding that
    /// list's character-strings (at most 255 bytes each, as on the wire). An empty list
    /// leaves the name existing with no TXT record (NODATA).
    pub fn set_txt(&self, name: &str, values: Vec<Vec<String>>) {
        for value in values.iter().flatten() {
            assert!(
                value.len() <= 255,
                "a TXT character-string holds at most 255 bytes; split {value:?} into several"
            );
        }
        self.zone().names.entry(normalize(name)).or_default().txt = values;
    }

    /// Replaces the A records of `name`.
    pub fn set_a(&self, name: &str, addrs: Vec<Ipv4Addr>) {
        self.zone().names.entry(normalize(name)).or_default().a = addrs;
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, addrs: Vec<Ipv6Addr>) {
        self.zone().names.entry(normalize(name)).or_default().aaaa = addrs;
    }

    /// Removes every record of `name`: it is NXDOMAIN again.
    pub fn clear(&self, name: &str) {
        self.zone().names.remove(&normalize(name));
    }

    /// Every name asked so far, in order, as received (absolute, with the trailing dot,
    /// in the case the client sent). A query retried over TCP after truncation is there
    /// twice.
    pub fn queries(&self) -> Vec<String> {
        self.zone().queries.clone()
    }

    fn zone(&self) -> MutexGuard<'_, Zone> {
        lock(&self.zone)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(zone: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    // A test that panicked while holding it left the zone consistent: every write is whole.
    zone.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lower case, without the trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A UDP socket and a TCP listener on the same port: resolvers use one address for both.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a UDP socket on 127.0.0.1");
        let port = udp
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(tcp) => return (udp, tcp),
            // Someone holds that TCP port: try another.
            Err(err) => last_error = Some(err),
        }
    }
    panic!("no port of 127.0.0.1 was free for both UDP and TCP: {last_error:?}")
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&zone, &buf[..len], Transport::Udp) {
            // A client that went away is no failure of the server.
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>) {
    // Connections end with the server: dropping the set (on abort) aborts them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, zone.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Length-prefixed messages (RFC 1035 4.2.2) until the client closes the connection.
async fn serve_connection(mut stream: TcpStream, zone: Arc<Mutex<Zone>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(reply) = answer(&zone, &request, Transport::Tcp) else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(reply_len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Udp,
    Tcp,
}

/// The encoded answer to `request`, or nothing for what is not a query.
fn answer(zone: &Mutex<Zone>, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let request = match Message::from_vec(request) {
        Ok(request) => request,
        Err(_) => {
            let id = u16::from_be_bytes([*request.first()?, *request.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if request.metadata.message_type != hickory_proto::op::MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.authoritative = true;
    response.add_queries(request.queries.iter().cloned());
    if let Some(edns) = &request.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(ours);
        if edns.version() > 0 {
            response.metadata.response_code = ResponseCode::BADVERS;
            return response.to_vec().ok();
        }
    }
    if request.metadata.op_code != OpCode::Query || request.queries.len() != 1 {
        response.metadata.response_code = if request.metadata.op_code == OpCode::Query {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        };
        return response.to_vec().ok();
    }
    let query = &request.queries[0];
    respond_to(&mut lock(zone), query, &mut response);

    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(
            request
                .edns
                .as_ref()
                .map_or(512, |e| e.max_payload().max(512)),
        ),
    };
    let encoded = match response.to_vec() {
        Ok(encoded) => encoded,
        Err(_) => {
            let mut failure = Message::response(request.metadata.id, request.metadata.op_code);
            failure.metadata = response.metadata;
            failure.metadata.response_code = ResponseCode::ServFail;
            failure.add_queries(request.queries.iter().cloned());
            return failure.to_vec().ok();
        }
    };
    if encoded.len() <= limit {
        return Some(encoded);
    }
    response.truncate().to_vec().ok()
}

/// Fills `response` from the zone, and records the name asked.
fn respond_to(zone: &mut Zone, query: &Query, response: &mut Message) {
    let name = query.name();
    zone.queries.push(name.to_string());
    let Some(records) = zone.names.get(&normalize(&name.to_ascii())) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(negative_soa());
        return;
    };
    let qtype = query.query_type();
    let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
    // The owner name as asked: resolvers that randomize case (0x20) compare it.
    let mut answers = Vec::new();
    if wants(RecordType::TXT) {
        answers.extend(records.txt.iter().map(|strings| {
            Record::from_rdata(name.clone(), 0, RData::TXT(TXT::new(strings.clone())))
        }));
    }
    if wants(RecordType::A) {
        answers.extend(
            records
                .a
                .iter()
                .map(|ip| Record::from_rdata(name.clone(), 0, RData::A(A(*ip)))),
        );
    }
    if wants(RecordType::AAAA) {
        answers.extend(
            records
                .aaaa
                .iter()
                .map(|ip| Record::from_rdata(name.clone(), 0, RData::AAAA(AAAA(*ip)))),
        );
    }
    if answers.is_empty() {
        response.add_authority(negative_soa());
    }
    response.add_answers(answers);
}

/// The SOA of negative answers: owned by the root, so it is above every name, and with
/// minimum 0, so nothing caches the absence.
fn negative_soa() -> Record {
    let ns = Name::from_ascii("ns.portcullis.test.").expect("a valid name");
    let mailbox = Name::from_ascii("hostmaster.portcullis.test.").expect("a valid name");
    Record::from_rdata(
        Name::root(),
        0,
        RData::SOA(SOA::new(ns, mailbox, 1, 0, 0, 0, 0)),
    )
}
