//! What a client does, over HTTP as any client would: each scenario's one operation,
//! and the accounts each worker holds for them.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis::flows::passkey::{CreationChallengeResponse, RequestChallengeResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::preload::{population_email, worker_email};
use crate::server::Outbox;

/// One thing a client does, timed as one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `GET /auth/status` with a bearer: the check an API makes on every request.
    Status,
    /// `POST /token/refresh`: one rotation of a refresh token.
    Refresh,
    /// An email-code sign-in end to end: ask for the code, read it from the mailer,
    /// verify it (two requests), as a different existing user each time.
    EmailCode,
    /// `POST /auth/password/login` (Argon2id at the engine's defaults).
    Password,
    /// A passkey sign-in: begin, the authenticator signs, finish (two requests).
    Passkey,
}

impl Scenario {
    /// Every scenario, in the report's order.
    pub const ALL: [Scenario; 5] = [
        Scenario::Status,
        Scenario::Refresh,
        Scenario::EmailCode,
        Scenario::Password,
        Scenario::Passkey,
    ];

    /// The name the report and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Status => "status",
            Scenario::Refresh => "refresh",
            Scenario::EmailCode => "email-code",
            Scenario::Password => "password",
            Scenario::Passkey => "passkey",
        }
    }

    /// The scenario named `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The password of every worker's password account (no secret: a load test's account).
const PASSWORD: &str = "loadgen correct horse battery staple";

/// The HTTP side: where the server is, and the mailer's codes.
#[derive(Clone)]
pub(crate) struct Driver {
    addr: std::net::SocketAddr,
    host: String,
    origin: Url,
    outbox: Outbox,
    /// Existing users the email-code scenario signs in, `user{n}@load.test`.
    users: u64,
}

/// One HTTP/1.1 connection, kept alive: a client's own, as a browser or an SDK holds one.
pub(crate) struct Conn(SendRequest<Full<Bytes>>);

/// What one worker holds: a connection, a session (status, refresh) and accounts of its
/// own.
pub(crate) struct Worker {
    conn: Conn,
    index: usize,
    access: String,
    refresh: String,
    passkey: SoftPasskey,
}

impl Driver {
    pub(crate) fn new(
        addr: std::net::SocketAddr,
        origin: &str,
        outbox: Outbox,
        users: u64,
    ) -> Result<Arc<Self>, String> {
        let origin = Url::parse(origin).map_err(|e| format!("origin: {e}"))?;
        Ok(Arc::new(Driver {
            addr,
            host: addr.to_string(),
            origin,
            outbox,
            users,
        }))
    }

    /// A new connection to the server.
    pub(crate) async fn connect(&self) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Conn(send))
    }

    async fn call(
        &self,
        conn: &mut Conn,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("{path}: {e}"))?;
        conn.0
            .ready()
            .await
            .map_err(|e| format!("{path}: connection: {e}"))?;
        let response = conn
            .0
            .send_request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| format!("{path}: not JSON: {e}"))?
        };
        Ok((status, value))
    }

    /// Calls and expects `want`; the body.
    async fn expect(
        &self,
        conn: &mut Conn,
        want: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Result<Value, String> {
        let (status, value) = self.call(conn, method, path, body, bearer).await?;
        if status != want {
            return Err(format!("{path}: {status} (expected {want}): {value}"));
        }
        Ok(value)
    }

    /// Signs in with a one-time code emailed to `email`: the tokens.
    async fn email_code(&self, conn: &mut Conn, email: &str) -> Result<Value, String> {
        let sent = self
            .expect(
                conn,
                StatusCode::OK,
                Method::POST,
                "/api/v1/auth/passwordless/email-code",
                Some(json!({ "email": email })),
                None,
            )
            .await?;
        let request_id = text(&sent, "request_id")?;
        let code = self.outbox.take(&request_id).await?;
        let tokens = self
            .expect(
                conn,
                StatusCode::OK,
                Method::POST,
                "/api/v1/auth/passwordless/email-code/verify",
                Some(json!({ "request_id": request_id, "code": code })),
                None,
            )
            .await?;
        text(&tokens, "token")?;
        Ok(tokens)
    }

    /// Finishes a sign-up the server answered with 202: the emailed code.
    async fn finish_sign_up(&self, conn: &mut Conn, accepted: &Value) -> Result<(), String> {
        let request_id = text(accepted, "request_id")?;
        let code = self.outbox.take(&request_id).await?;
        let done = self
            .expect(
                conn,
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/auth/signup/verify",
                Some(json!({ "request_id": request_id, "code": code })),
                None,
            )
            .await?;
        text(&done, "token").map(drop)
    }

    /// Worker `index`'s session and accounts: an email-code sign-in to its preloaded
    /// user, a password account and a passkey account signed up through the API.
    pub(crate) async fn worker(&self, index: usize) -> Result<Worker, String> {
        let mut own = self.connect().await?;
        let conn = &mut own;
        let tokens = self.email_code(conn, &worker_email(index)).await?;
        let accepted = self
            .expect(
                conn,
                StatusCode::ACCEPTED,
                Method::POST,
                "/api/v1/auth/password/signup",
                Some(json!({ "email": password_email(index), "password": PASSWORD })),
                None,
            )
            .await?;
        self.finish_sign_up(conn, &accepted).await?;

        let mut passkey = SoftPasskey::new(true);
        let email = passkey_email(index);
        let begun = self
            .expect(
                conn,
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/auth/passwordless/passkey/register?identifier={email}"),
                None,
                None,
            )
            .await?;
        let options: CreationChallengeResponse =
            serde_json::from_value(begun["options"].clone())
                .map_err(|e| format!("registration options: {e}"))?;
        let credential = passkey
            .do_registration(self.origin.clone(), options)
            .map_err(|e| format!("authenticator: {e:?}"))?;
        let accepted = self
            .expect(
                conn,
                StatusCode::ACCEPTED,
                Method::POST,
                &format!(
                    "/api/v1/auth/passwordless/passkey/register?auth_code={}&identifier={email}",
                    text(&begun, "auth_code")?
                ),
                Some(json!({ "passkey": credential, "name": "loadgen" })),
                None,
            )
            .await?;
        self.finish_sign_up(conn, &accepted).await?;
        Ok(Worker {
            conn: own,
            index,
            access: text(&tokens, "token")?,
            refresh: text(&tokens, "refresh_token")?,
            passkey,
        })
    }

    /// Operation number `n` of `scenario` by `worker`.
    pub(crate) async fn once(
        &self,
        scenario: Scenario,
        worker: &mut Worker,
        n: u64,
    ) -> Result<(), String> {
        match scenario {
            Scenario::Status => {
                let status = self
                    .expect(
                        &mut worker.conn,
                        StatusCode::OK,
                        Method::GET,
                        "/api/v1/auth/status",
                        None,
                        Some(&worker.access),
                    )
                    .await?;
                text(&status, "user_id").map(drop)
            }
            Scenario::Refresh => {
                let tokens = self
                    .expect(
                        &mut worker.conn,
                        StatusCode::OK,
                        Method::POST,
                        "/api/v1/token/refresh",
                        Some(json!({ "refresh_token": worker.refresh })),
                        None,
                    )
                    .await?;
                worker.refresh = text(&tokens, "refresh_token")?;
                worker.access = text(&tokens, "token")?;
                Ok(())
            }
            Scenario::EmailCode => {
                // Spread over the population (a stride coprime with any population that is
                // not a multiple of it), so lookups land all over the store.
                let user = n.wrapping_mul(STRIDE) % self.users.max(1);
                self.email_code(&mut worker.conn, &population_email(user))
                    .await
                    .map(drop)
            }
            Scenario::Password => {
                let tokens = self
                    .expect(
                        &mut worker.conn,
                        StatusCode::OK,
                        Method::POST,
                        "/api/v1/auth/password/login",
                        Some(json!({
                            "email": password_email(worker.index),
                            "password": PASSWORD,
                        })),
                        None,
                    )
                    .await?;
                text(&tokens, "token").map(drop)
            }
            Scenario::Passkey => {
                let email = passkey_email(worker.index);
                let begun = self
                    .expect(
                        &mut worker.conn,
                        StatusCode::OK,
                        Method::GET,
                        &format!("/api/v1/auth/passwordless/passkey/login?identifier={email}"),
                        None,
                        None,
                    )
                    .await?;
                let options: RequestChallengeResponse =
                    serde_json::from_value(begun["options"].clone())
                        .map_err(|e| format!("sign-in options: {e}"))?;
                let credential = worker
                    .passkey
                    .do_authentication(self.origin.clone(), options)
                    .map_err(|e| format!("authenticator: {e:?}"))?;
                let tokens = self
                    .expect(
                        &mut worker.conn,
                        StatusCode::OK,
                        Method::POST,
                        &format!(
                            "/api/v1/auth/passwordless/passkey/login?auth_code={}&identifier={email}",
                            text(&begun, "auth_code")?
                        ),
                        Some(json!({ "passkey": credential })),
                        None,
                    )
                    .await?;
                text(&tokens, "token").map(drop)
            }
        }
    }
}

/// A large prime: `n * STRIDE mod users` visits every user before any twice.
const STRIDE: u64 = 1_000_003;

fn password_email(index: usize) -> String {
    format!("password{index}@load.test")
}

fn passkey_email(index: usize) -> String {
    format!("passkey{index}@load.test")
}

fn text(body: &Value, field: &str) -> Result<String, String> {
    body[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {field} in {body}"))
}
