//! The Pwned Passwords checker (feature `hibp`) against a local server that speaks the
//! range API: only five hex characters of the SHA-1 leave the process, padding lines do
//! not count, and an outage lets sign-ups through.

#![cfg(feature = "hibp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use portcullis::crypto::Password;
use portcullis::hibp::PwnedPasswords;
use portcullis::{BreachedPasswords, RequestContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The uppercase hex SHA-1 of `text`, as the range API writes hashes.
fn sha1_hex(text: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A range API on loopback: answers `GET /range/{prefix}` from `seen` (full SHA-1 hex →
/// count) with padding lines, or 503 when `down`. Keeps every request it got.
struct RangeServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn range_server(seen: Vec<(String, &'static str)>, down: bool) -> RangeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/range/", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let request = String::from_utf8_lossy(&buffer).into_owned();
            log.lock().unwrap().push(request.clone());
            let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
            let prefix = path.trim_start_matches("/range/");
            let mut body = String::new();
            for (hash, count) in &seen {
                if hash.starts_with(prefix) {
                    body.push_str(&format!("{}:{count}\r\n", &hash[5..]));
                }
            }
            // Padding, as the real API adds it: random-looking suffixes with count 0.
            body.push_str(&format!("{}:0\r\n", &sha1_hex("padding")[5..]));
            let response = if down {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            socket.write_all(response.as_bytes()).await.unwrap();
            let _ = socket.shutdown().await;
        }
    });
    RangeServer { url, requests }
}

#[tokio::test]
async fn only_a_five_character_prefix_leaves_and_counts_decide() {
    let breached = "P@ssw0rd-from-a-breach";
    let rare = "seen once in a breach";
    let padded = "padding";
    let garbled = "an answer we cannot read";
    let server = range_server(
        vec![
            (sha1_hex(breached), "4242"),
            (sha1_hex(rare), "1"),
            (sha1_hex(padded), "0"),
            (sha1_hex(garbled), "many"),
        ],
        false,
    )
    .await;
    let checker = PwnedPasswords::with_base_url(&server.url).unwrap();
    assert_eq!(
        checker.times_seen(&Password::new(breached)).await.unwrap(),
        4242
    );
    assert!(checker.is_breached(&Password::new(breached)).await.unwrap());
    assert!(checker.is_breached(&Password::new(rare)).await.unwrap());
    // A padding line (count 0) is not a sighting, and an unknown password is not listed.
    assert!(!checker.is_breached(&Password::new(padded)).await.unwrap());
    assert!(
        !checker
            .is_breached(&Password::new("a passphrase no one has"))
            .await
            .unwrap()
    );
    // A sighting with an unreadable count is no clean bill: the service is "unavailable".
    let garbled_err = checker
        .times_seen(&Password::new(garbled))
        .await
        .unwrap_err();
    assert_eq!(garbled_err.code(), "unavailable");
    // A higher bar lets the rare one through.
    let strict = PwnedPasswords::with_base_url(&server.url)
        .unwrap()
        .min_count(10);
    assert!(!strict.is_breached(&Password::new(rare)).await.unwrap());
    assert!(strict.is_breached(&Password::new(breached)).await.unwrap());

    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 8);
    let hash = sha1_hex(breached);
    let first = &requests[0];
    assert!(
        first.starts_with(&format!("GET /range/{} HTTP/1.1\r\n", &hash[..5])),
        "{first}"
    );
    assert!(
        first.to_ascii_lowercase().contains("add-padding: true"),
        "{first}"
    );
    for request in &requests {
        // Nothing but the prefix: not the rest of the hash, not the password.
        assert!(!request.contains(&hash[5..]), "{request}");
        assert!(
            !request.contains(breached) && !request.contains(rare),
            "{request}"
        );
    }
}

#[tokio::test]
async fn the_engine_refuses_a_breached_password_and_lets_it_through_when_the_service_is_down() {
    let breached = "a long but breached passphrase";
    let build = |checker: PwnedPasswords| {
        portcullis::Portcullis::builder(portcullis::Config::new("https://app.example.com"))
            .store(portcullis_memory::MemoryStore::new())
            .mailer(portcullis::testing::CapturingMailer::new())
            .pepper(portcullis::testing::test_pepper())
            .keyring(portcullis::testing::test_keyring())
            .breached_passwords(checker)
            .build()
            .unwrap()
    };
    let up = range_server(vec![(sha1_hex(breached), "77")], false).await;
    let auth = build(PwnedPasswords::with_base_url(&up.url).unwrap());
    let ctx = RequestContext::new();
    let refused = auth
        .passwords()
        .sign_up("ana@example.com", &Password::new(breached), &ctx)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_input");
    assert!(refused.to_string().contains("data breach"), "{refused}");
    // It was the range API that refused it (the bundled list does not know it).
    assert_eq!(up.requests.lock().unwrap().len(), 1);
    assert!(!portcullis::CommonPasswords.contains(&Password::new(breached)));

    let down = range_server(vec![(sha1_hex(breached), "77")], true).await;
    let checker = PwnedPasswords::with_base_url(&down.url).unwrap();
    let err = checker
        .times_seen(&Password::new(breached))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable");
    let auth = build(checker);
    let signed_up = auth
        .passwords()
        .sign_up("ana@example.com", &Password::new(breached), &ctx)
        .await;
    assert!(signed_up.is_ok(), "{signed_up:?}");
}

#[test]
fn a_base_url_must_be_http_and_end_in_a_slash() {
    for bad in ["ftp://x/range/", "https://x/range", "nope"] {
        assert!(PwnedPasswords::with_base_url(bad).is_err(), "{bad}");
    }
    assert!(PwnedPasswords::new().is_ok());
}
