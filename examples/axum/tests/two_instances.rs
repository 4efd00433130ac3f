//! Two server processes of this example on one PostgreSQL database, as two replicas behind
//! a load balancer: a magic link asked for on A is opened on B while A polls; a refresh
//! token issued by A rotates on B; a session ended on A is refused on B; a signing key
//! rotated on A verifies on B; a rate limit is counted across both.
//!
//! Needs the test PostgreSQL (see `portcullis_test_support::postgres`): skipped loudly
//! without it, failed under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::crypto::{EncryptionKey, Pepper};
use portcullis_test_support::postgres;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN_KEY: &str = "two-instances-admin-key-0123456789abcdef";

/// One server process and everything it printed.
struct Server {
    base: String,
    printed: Arc<Mutex<String>>,
    _child: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the example on `port` with the shared database, secrets and public URL.
async fn start(port: u16, shared: &[(&str, String)], dir: &std::path::Path) -> Server {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_example-axum"));
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("PORTCULLIS_")) {
        command.env_remove(name);
    }
    command
        .envs(shared.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORTCULLIS_ADDR", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_DATA_DIR", dir.join(format!("data-{port}")))
        .env(
            "PORTCULLIS_SECRETS_DIR",
            dir.join(format!("secrets-{port}")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the example starts");
    let printed = Arc::new(Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sink = printed.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{base}/")).send().await.is_ok() {
            return Server {
                base,
                printed,
                _child: child,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the server on {port} did not answer: {}",
        printed.lock().unwrap()
    );
}

impl Server {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = match method {
            "GET" => client.get(url),
            _ => client.post(url),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
        self.call("POST", path, Some(body), bearer).await
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        self.call("GET", path, None, bearer).await
    }

    /// The last email this process printed to `to`, waiting for it: mail goes out in the
    /// background after the request that asked for it has been answered.
    async fn last_email(&self, to: &str, after: usize) -> String {
        let marker = format!("---- email to {to} ----");
        for _ in 0..200 {
            let printed = self.printed.lock().unwrap().clone();
            if let Some(start) = printed.rfind(&marker).filter(|at| *at >= after) {
                let mail = &printed[start..];
                // The whole message: up to the closing line.
                if let Some(end) = mail[marker.len()..].find("\n----") {
                    return mail[..marker.len() + end].to_owned();
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no email to {to}: {}", self.printed.lock().unwrap());
    }

    /// How much the process has printed so far: mail printed after this is new.
    fn mark(&self) -> usize {
        self.printed.lock().unwrap().len()
    }

    /// The six-digit code in the first email to `to` printed after `after`.
    async fn last_code(&self, to: &str, after: usize) -> String {
        let mail = self.last_email(to, after).await;
        mail.split(|c: char| !c.is_ascii_digit())
            .find(|word| word.len() == 6)
            .unwrap_or_else(|| panic!("no code in {mail}"))
            .to_owned()
    }

    /// The token of the magic link emailed to `to` after `after`.
    async fn last_link_token(&self, to: &str, after: usize) -> String {
        let mail = self.last_email(to, after).await;
        let at = mail
            .find("token=")
            .unwrap_or_else(|| panic!("no link in {mail}"))
            + 6;
        mail[at..]
            .split(|c: char| c.is_whitespace() || c == '&')
            .next()
            .unwrap()
            .to_owned()
    }
}

fn kid_of(token: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_database_act_as_one() {
    if !postgres::available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    // One site behind a load balancer: the same public URL, database and secrets.
    let shared = [
        ("PORTCULLIS_STORE", postgres::url()),
        ("PORTCULLIS_PG_SCHEMA", postgres::unique_schema()),
        (
            "PORTCULLIS_PUBLIC_URL",
            format!("http://localhost:{port_a}"),
        ),
        (
            "PORTCULLIS_PEPPER",
            Pepper::generate().unwrap().to_base64().to_string(),
        ),
        (
            "PORTCULLIS_ENCRYPTION_KEY",
            EncryptionKey::generate().unwrap().to_base64().to_string(),
        ),
        ("PORTCULLIS_ADMIN_KEY", ADMIN_KEY.to_owned()),
    ];
    // A migrates the empty schema; B starts against it at once.
    let a = start(port_a, &shared, dir.path()).await;
    let b = start(port_b, &shared, dir.path()).await;

    // A magic link asked for on A, opened on B (another browser, with the device code
    // shown on A) while A polls: A's poll collects the session.
    let before = a.mark();
    let (status, sent) = a
        .post(
            "/auth/passwordless/magic-link",
            json!({"email": "ana@example.com"}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let poll = format!(
        "/auth/passwordless/magic-link/status?request_id={}&poll_token={}",
        sent["request_id"].as_str().unwrap(),
        sent["poll_token"].as_str().unwrap()
    );
    assert_eq!(a.get(&poll, None).await.1["status"], "pending");
    let token = a.last_link_token("ana@example.com", before).await;
    let mut verify = json!({"token": token});
    if let Some(code) = sent["device_code"].as_str() {
        verify["device_code"] = json!(code);
    }
    let (status, opened) = b
        .post("/auth/passwordless/magic-link/verify", verify, None)
        .await;
    assert_eq!(status, 200, "{opened}");
    let (status, collected) = a.get(&poll, None).await;
    assert_eq!(status, 200, "{collected}");
    assert_eq!(collected["status"], "verified", "{collected}");
    let first_refresh = collected["refresh_token"].as_str().unwrap().to_owned();

    // A refresh token issued by A rotates on B; the rotated one, replayed on A, is reuse:
    // the session ends on both.
    let (status, rotated) = b
        .post(
            "/token/refresh",
            json!({"refresh_token": first_refresh}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let access = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(a.get("/auth/status", Some(&access)).await.0, 200);
    let (status, reused) = a
        .post(
            "/token/refresh",
            json!({"refresh_token": first_refresh}),
            None,
        )
        .await;
    assert_eq!(status, 401, "{reused}");
    assert_eq!(b.get("/auth/status", Some(&access)).await.0, 401);

    // A password account, signed up on A (its code in A's output).
    let password = "a long and right passphrase";
    let before = a.mark();
    let (status, pending) = a
        .post(
            "/auth/password/signup",
            json!({"email": "bo@example.com", "password": password}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{pending}");
    let code = a.last_code("bo@example.com", before).await;
    let (status, signed_up) = a
        .post(
            "/auth/signup/verify",
            json!({"request_id": pending["request_id"], "code": code}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{signed_up}");
    let access = signed_up["token"].as_str().unwrap().to_owned();

    // A session ended on A is refused by B's live check at once.
    assert_eq!(b.get("/auth/status", Some(&access)).await.0, 200);
    let (status, body) = a.post("/auth/logout", json!({}), Some(&access)).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(b.get("/auth/status", Some(&access)).await.0, 401);

    // A signing key rotated on A: A signs with it, and B verifies its tokens at once (an
    // unknown kid makes B read the keys again).
    let (status, rotated) = a
        .post("/signing-keys/rotate", json!({}), Some(ADMIN_KEY))
        .await;
    assert_eq!(status, 201, "{rotated}");
    let kid = rotated["kid"].as_str().unwrap();
    let login = json!({"email": "bo@example.com", "password": password});
    let (status, signed_in) = a.post("/auth/password/login", login.clone(), None).await;
    assert_eq!(status, 200, "{signed_in}");
    let access = signed_in["token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&access), kid);
    let (status, seen) = b.get("/auth/status", Some(&access)).await;
    assert_eq!(status, 200, "{seen}");
    // B heard of the rotation (LISTEN/NOTIFY) and signs with the new key too, well before
    // its own minute-long refresh would have read it.
    let mut b_kid = String::new();
    for _ in 0..50 {
        let (status, signed_in) = b.post("/auth/password/login", login.clone(), None).await;
        assert_eq!(status, 200, "{signed_in}");
        b_kid = kid_of(signed_in["token"].as_str().unwrap());
        if b_kid == kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b_kid, kid, "B signs with the key rotated on A");

    // A third instance with another encryption key cannot open the stored signing keys:
    // it refuses to start instead of failing at the first sign-in.
    let mut wrong_key = shared.clone();
    for (name, value) in &mut wrong_key {
        if *name == "PORTCULLIS_ENCRYPTION_KEY" {
            *value = EncryptionKey::generate().unwrap().to_base64().to_string();
        }
    }
    let third = tokio::process::Command::new(env!("CARGO_BIN_EXE_example-axum"))
        .envs(wrong_key.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORTCULLIS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("PORTCULLIS_DATA_DIR", dir.path().join("data-wrong"))
        .env("PORTCULLIS_SECRETS_DIR", dir.path().join("secrets-wrong"))
        .kill_on_drop(true)
        .output();
    // A server that started anyway would never exit: the guard turns that into a failure.
    let output = tokio::time::timeout(Duration::from_secs(60), third)
        .await
        .expect("an instance with the wrong key started and kept running")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("PORTCULLIS_ENCRYPTION_KEY"), "{stderr}");

    // One client's failure budget for the account (10), spent alternately on A and B: the
    // right password is then refused on both.
    let wrong = json!({"email": "bo@example.com", "password": "a long and wrong passphrase"});
    for attempt in 0..10 {
        let server = if attempt % 2 == 0 { &a } else { &b };
        let (status, body) = server
            .post("/auth/password/login", wrong.clone(), None)
            .await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    for server in [&a, &b] {
        let (status, body) = server
            .post("/auth/password/login", login.clone(), None)
            .await;
        assert_eq!(status, 429, "{body}");
    }
}
