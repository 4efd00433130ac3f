//! The SMTP mailer against a real SMTP server (mailin-embedded) on loopback: the messages
//! are read as they arrived over SMTP, and the code and link in them sign in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use portcullis::crypto::{MagicLinkToken, OneTimeCode};
use portcullis::smtp::SmtpMailer;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{Config, DeviceProof, LinkOptions, Portcullis, RequestContext, SignIn};
use portcullis_memory::MemoryStore;

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

/// Keeps every message the server accepts.
#[derive(Clone, Default)]
struct Inbox {
    current: Received,
    delivered: Arc<Mutex<Vec<Received>>>,
}

impl Handler for Inbox {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Received {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
        };
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.delivered.lock().unwrap().push(self.current.clone());
        response::OK
    }
}

/// Starts an SMTP server on a free loopback port; it runs until the test process ends.
fn smtp_server() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Inbox::default();
    let delivered = inbox.delivered.clone();
    let mut server = Server::new(inbox);
    server
        .with_name("mx.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, delivered)
}

/// Undoes quoted-printable (RFC 2045 §6.7): soft line breaks and `=XX` escapes.
fn unquote(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn engine(port: u16) -> Portcullis {
    let mailer = SmtpMailer::from_url(
        &format!("smtp://127.0.0.1:{port}"),
        "Acme Login <login@acme.example>",
    )
    .unwrap();
    Portcullis::builder(Config::new("https://app.example.com"))
        .store(MemoryStore::new())
        .mailer(mailer)
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap()
}

#[tokio::test]
async fn codes_and_links_arrive_over_smtp_and_sign_in() {
    let (port, delivered) = smtp_server();
    let auth = engine(port);
    let ctx = RequestContext::new();

    let sent = auth
        .codes()
        .email()
        .send("Ana@Example.com", &ctx)
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let mail = delivered
        .lock()
        .unwrap()
        .pop()
        .expect("the server got a message");
    assert_eq!(mail.from, "login@acme.example");
    assert_eq!(mail.to, ["ana@example.com"]);
    let data = unquote(&String::from_utf8(mail.data).unwrap());
    assert!(
        data.contains("From: \"Acme Login\" <login@acme.example>"),
        "{data}"
    );
    assert!(data.contains("To: ana@example.com"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/html"), "{data}");
    let subject = data
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .expect("a subject");
    let code = subject.split(' ').next().unwrap();
    assert_eq!(subject, format!("{code} is your portcullis code"));
    assert!(data.contains(&format!("Your portcullis sign-in code is {code}.")));
    let signed_in = auth
        .codes()
        .email()
        .verify(sent.request_id, &OneTimeCode::new(code), &ctx)
        .await
        .unwrap();
    assert!(matches!(signed_in, SignIn::Complete(_)));

    let sent = auth
        .magic_links()
        .send("bo@example.com", &LinkOptions::new(), &ctx)
        .await
        .unwrap();
    auth.flush_deliveries().await;
    let mail = delivered
        .lock()
        .unwrap()
        .pop()
        .expect("the server got a message");
    let data = unquote(&String::from_utf8(mail.data).unwrap());
    let start = data
        .find("https://app.example.com/magic-link?token=")
        .expect("the link arrived");
    let link: String = data[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let token = link.rsplit("token=").next().unwrap();
    let proof = DeviceProof::none().with_poll_token(sent.poll_token.clone());
    auth.magic_links()
        .verify(&MagicLinkToken::new(token), &proof, &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_delivery_error_inline() {
    // Port 1 (tcpmux): nothing listens there, and unlike a freed ephemeral port, no other
    // test can grab it meanwhile.
    let port = 1;
    let mut config = Config::new("https://app.example.com");
    config.passwordless.delivery = portcullis::Delivery::Inline;
    let auth = Portcullis::builder(config)
        .store(MemoryStore::new())
        .mailer(
            SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), "a@acme.example").unwrap(),
        )
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let err = auth
        .codes()
        .email()
        .send("ana@example.com", &RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "delivery");
}
