//! An OpenID provider the test scripts (checklist H-07): it serves a discovery document, a
//! JWKS and a token endpoint on loopback, and answers the token request with whatever ID
//! token the test asks for: wrong `iss`, `aud`, `azp`, `nonce`, `kid`, `alg`, times,
//! missing claims. A certified provider never mints those, so the relying party's refusals
//! of them are tested here; the real provider (`idp`) proves the flow itself.
//!
//! ```no_run
//! # async fn example() {
//! use portcullis_test_support::fake_op::{FakeOp, Minted};
//! let op = FakeOp::start().await;
//! // After the engine started a sign-in and the test read its nonce from the URL:
//! op.answer(Minted::valid(&op, "portcullis", "nonce-from-the-url", "alice"));
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An ES256 key: its private half for signing, its public JWK.
pub struct TestKey {
    /// The key id.
    pub kid: String,
    encoding: EncodingKey,
    /// The public key as a JWK.
    pub jwk: Value,
}

impl TestKey {
    /// A fresh P-256 key called `kid`.
    pub fn generate(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("the key just made");
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        TestKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    /// `claims` signed ES256 with this key, the header naming `kid` (or none) and any
    /// extra header fields (`jku`, `jwk`…).
    pub fn sign(&self, claims: &Value, kid: Option<&str>, extra: &[(&str, Value)]) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        for (name, value) in extra {
            match *name {
                "jku" => header.jku = value.as_str().map(str::to_owned),
                "jwk" => header.jwk = serde_json::from_value(value.clone()).ok(),
                other => panic!("unsupported header field {other}"),
            }
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed")
    }
}

/// What the token endpoint answers next.
#[derive(Clone, Debug)]
pub enum Minted {
    /// `{"id_token": .., "access_token": .., "token_type": "Bearer"}`.
    Tokens {
        /// The ID token, as given.
        id_token: String,
        /// The access token.
        access_token: String,
    },
    /// Any JSON body (a response without `id_token`, say).
    Body(Value),
}

impl Minted {
    /// The claims a correct ID token for `client_id`, `nonce` and `sub` has now.
    pub fn claims(op: &FakeOp, client_id: &str, nonce: &str, sub: &str) -> Map<String, Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let value = json!({
            "iss": op.issuer, "aud": client_id, "sub": sub, "nonce": nonce,
            "iat": now, "exp": now + 300,
            "email": format!("{sub}@acme.test"), "email_verified": true,
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    /// A correct ID token, signed by the provider's key.
    pub fn valid(op: &FakeOp, client_id: &str, nonce: &str, sub: &str) -> Minted {
        let claims = Value::Object(Self::claims(op, client_id, nonce, sub));
        Minted::signed(op.key.sign(&claims, Some(&op.key.kid), &[]))
    }

    /// An ID token as given, with an access token.
    pub fn signed(id_token: String) -> Minted {
        Minted::Tokens {
            id_token,
            access_token: "an-access-token".into(),
        }
    }
}

struct State {
    next: Option<Minted>,
    jwks: Vec<Value>,
}

/// The scripted provider, stopped when dropped.
pub struct FakeOp {
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// Its signing key (in its JWKS).
    pub key: TestKey,
    state: Arc<Mutex<State>>,
    token_calls: Arc<AtomicU64>,
    jwks_calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeOp {
    /// Starts the provider on an ephemeral port of 127.0.0.1.
    pub async fn start() -> FakeOp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key = TestKey::generate("op-key-1");
        let state = Arc::new(Mutex::new(State {
            next: None,
            jwks: vec![key.jwk.clone()],
        }));
        let token_calls = Arc::new(AtomicU64::new(0));
        let jwks_calls = Arc::new(AtomicU64::new(0));
        let served = (
            issuer.clone(),
            state.clone(),
            token_calls.clone(),
            jwks_calls.clone(),
        );
        let task = tokio::spawn(async move {
            let (issuer, state, token_calls, jwks_calls) = served;
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (issuer, state) = (issuer.clone(), state.clone());
                let (token_calls, jwks_calls) = (token_calls.clone(), jwks_calls.clone());
                tokio::spawn(async move {
                    let Some(path) = read_request(&mut socket).await else {
                        return;
                    };
                    let body = match path.as_str() {
                        "/.well-known/openid-configuration" => json!({
                            "issuer": issuer,
                            "authorization_endpoint": format!("{issuer}/authorize"),
                            "token_endpoint": format!("{issuer}/token"),
                            "jwks_uri": format!("{issuer}/jwks"),
                            "response_types_supported": ["code"],
                        }),
                        "/jwks" => {
                            jwks_calls.fetch_add(1, Ordering::SeqCst);
                            json!({ "keys": lock(&state).jwks })
                        }
                        "/token" => {
                            token_calls.fetch_add(1, Ordering::SeqCst);
                            match lock(&state).next.take() {
                                Some(Minted::Tokens {
                                    id_token,
                                    access_token,
                                }) => json!({
                                    "id_token": id_token, "access_token": access_token,
                                    "token_type": "Bearer", "expires_in": 300,
                                }),
                                Some(Minted::Body(body)) => body,
                                None => json!({"error": "invalid_grant"}),
                            }
                        }
                        _ => json!({"error": "not_found"}),
                    };
                    let body = body.to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FakeOp {
            issuer,
            key,
            state,
            token_calls,
            jwks_calls,
            task,
        }
    }

    /// What the next token request gets.
    pub fn answer(&self, minted: Minted) {
        lock(&self.state).next = Some(minted);
    }

    /// Replaces the JWKS.
    pub fn set_jwks(&self, keys: Vec<Value>) {
        lock(&self.state).jwks = keys;
    }

    /// Requests to the token endpoint so far.
    pub fn token_calls(&self) -> u64 {
        self.token_calls.load(Ordering::SeqCst)
    }

    /// Requests to the JWKS so far.
    pub fn jwks_calls(&self) -> u64 {
        self.jwks_calls.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request (head and `content-length` body); its path.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let target = head.split_whitespace().nth(1)?;
    Some(target.split('?').next().unwrap_or(target).to_owned())
}
