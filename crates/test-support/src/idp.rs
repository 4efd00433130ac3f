//! A real OpenID provider for the SSO tests: npm's `oidc-provider` (a certified
//! implementation) in a child process, `node idp/idp.mjs`, on an ephemeral port of
//! 127.0.0.1. Its configuration is one JSON value, described at the top of `idp/idp.mjs`:
//!
//! ```no_run
//! # async fn example() {
//! use portcullis_test_support::idp::Idp;
//! let Some(idp) = Idp::start(serde_json::json!({
//!     "clients": [{
//!         "client_id": "app",
//!         "client_secret": "a-secret-of-at-least-32-characters!",
//!         "redirect_uris": ["https://app.example.com/sso/callback"],
//!         "token_endpoint_auth_method": "client_secret_post",
//!         "id_token_signed_response_alg": "ES256",
//!     }],
//!     "accounts": { "alice": { "email": "alice@acme.test", "email_verified": true } },
//!     "alg": ["RS256", "ES256"],
//!     "iss_in_response": true,
//! }))
//! .await else {
//!     return; // skipped loudly: no Node.js or no `npm ci` in crates/test-support/idp
//! };
//! # let authorization_url = String::new();
//! // The relying party under test builds an authorization URL with login_hint=alice:
//! let callback = idp.authorize(&authorization_url).await.unwrap();
//! # }
//! ```
//!
//! The provider needs Node.js 20 or newer and `npm ci` in `crates/test-support/idp`. When
//! either is missing, [`Idp::start`] fails the test under CI (`CI` set) and elsewhere
//! returns `None` after saying loudly that the test is skipped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// How long the provider may take to print `READY <port>`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How much of the provider's output [`Idp::logs`] keeps (the newest part).
const LOG_LIMIT: usize = 64 * 1024;

/// A running OpenID provider, stopped when dropped.
pub struct Idp {
    /// The issuer: `http://127.0.0.1:<port>` followed by the config's `issuer_path`.
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
    http: reqwest::Client,
    logs: Arc<Mutex<String>>,
    child: Child,
    /// The provider exits when this closes, even if this process dies without dropping.
    _lifeline: Option<ChildStdin>,
}

/// What the provider answered instead of redirecting off the issuer in [`Idp::authorize`]:
/// an error page, or its login page when `login_hint` names no account.
#[derive(Debug)]
pub struct IdpPage {
    /// The HTTP status.
    pub status: u16,
    /// The page.
    pub body: String,
}

/// The folder of `idp.mjs` and its `package.json`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("idp")
}

/// Whether a missing prerequisite must fail the test rather than skip it.
pub(crate) fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Why the provider cannot run here, if it cannot: Node.js 20+ and `npm ci` are needed.
fn missing() -> Option<String> {
    let version = std::process::Command::new("node").arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => return Some(format!("`node --version` failed ({})", out.status)),
        Err(err) => return Some(format!("Node.js is not on PATH ({err})")),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Some(format!("Node.js {version} is too old: 20 or newer"));
    }
    let module = dir().join("node_modules/oidc-provider/package.json");
    if !module.exists() {
        return Some(format!("{} is missing", module.display()));
    }
    None
}

/// Whether the provider can run: `false` (after a loud message) to skip, a panic under CI.
pub fn available() -> bool {
    static CHECKED: OnceLock<Option<String>> = OnceLock::new();
    let Some(reason) = CHECKED.get_or_init(missing) else {
        return true;
    };
    let fix = format!(
        "Install Node.js 20 or newer and run `npm ci` in {} (.ci/run does both).",
        dir().display()
    );
    skip_or_fail("the OpenID provider for the SSO tests", reason, &fix)
}

/// When `what` cannot run (`reason`): a panic under CI, else `false` after a loud message
/// that the test is skipped and how to fix it.
pub(crate) fn skip_or_fail(what: &str, reason: &str, fix: &str) -> bool {
    if required() {
        panic!("{what} cannot run: {reason}, and CI is set. {fix}");
    }
    eprintln!("\n=== SKIPPED: {what} cannot run: {reason}; the test did not run. {fix} ===\n");
    false
}

impl Idp {
    /// Starts a provider with `config` (the schema is at the top of `idp/idp.mjs`) and waits
    /// until it listens. `None` when Node.js or the npm install is missing, outside CI.
    ///
    /// # Panics
    ///
    /// Under CI when a prerequisite is missing, and always when the provider rejects the
    /// config or is not ready within 20 s (with its output in the message).
    pub async fn start(config: Value) -> Option<Idp> {
        if !available() {
            return None;
        }
        let mut child = Command::new("node")
            .arg("idp.mjs")
            .arg(config.to_string())
            .current_dir(dir())
            .env("PORTCULLIS_IDP_LIFELINE", "stdin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn `node idp.mjs`");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(collect(stderr, logs.clone()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout).lines();

        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(port) = line.strip_prefix("READY ") {
                    return port.trim().parse::<u16>().ok();
                }
                append(&logs, &line);
            }
            None
        })
        .await;
        let port = match ready {
            Ok(Some(port)) => port,
            Ok(None) => {
                let status = child.wait().await;
                // The last lines of stderr may still be on their way.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "the OpenID provider exited before it was ready ({status:?}):\n{}",
                    read(&logs)
                )
            }
            Err(_) => panic!(
                "the OpenID provider was not ready within {READY_TIMEOUT:?}:\n{}",
                read(&logs)
            ),
        };
        // Nothing else is printed on stdout, but should it be, it is kept and never blocks.
        let stdout_logs = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                append(&stdout_logs, &line);
            }
        });
        let path = config
            .get("issuer_path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let lifeline = child.stdin.take();
        Some(Idp {
            issuer: format!("http://127.0.0.1:{port}{path}"),
            port,
            http,
            logs,
            child,
            _lifeline: lifeline,
        })
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Replaces the signing keys, and so the JWKS, with new ones under new key ids: the
    /// new kids. Logins in flight carry over.
    pub async fn rotate_keys(&self) -> Vec<String> {
        let answer: Value = self
            .control(self.http.post(self.control_url("rotate")))
            .await;
        answer["kids"]
            .as_array()
            .expect("the rotation answers its kids")
            .iter()
            .map(|kid| kid.as_str().expect("a kid is a string").to_owned())
            .collect()
    }

    /// How many requests reached the token endpoint and the JWKS endpoint so far.
    pub async fn stats(&self) -> (u64, u64) {
        let answer: Value = self.control(self.http.get(self.control_url("stats"))).await;
        let count = |name: &str| answer[name].as_u64().expect("a count");
        (count("token"), count("jwks"))
    }

    /// Inserts the account `sub`, or replaces its claims (same schema as the config's
    /// `accounts`): the next sign-in gets them.
    pub async fn upsert_account(&self, sub: &str, claims: Value) {
        let body = serde_json::json!({ "sub": sub, "claims": claims });
        let response = self
            .http
            .post(self.control_url("accounts"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the OpenID provider answers");
        assert_eq!(
            response.status().as_u16(),
            204,
            "upsert_account: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Plays the browser at the provider: requests `authorization_url`, follows redirects
    /// with the provider's cookies while they stay on the issuer's origin, and returns the
    /// first one that leaves it: the relying party's redirect URI with `code`, `state` (and
    /// `iss`), or an `error`. Each call starts with no cookies, as a new browser would.
    ///
    /// The provider signs in without a page when the request's `login_hint` names a known
    /// account; otherwise it shows its login page, returned as the `Err`.
    pub async fn authorize(&self, authorization_url: &str) -> Result<url::Url, IdpPage> {
        let issuer = url::Url::parse(&self.issuer).expect("the issuer is a URL");
        let mut url = url::Url::parse(authorization_url).expect("an authorization URL");
        let mut cookies: Vec<(String, String)> = Vec::new();
        for _ in 0..10 {
            let cookie_header = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut request = self.http.get(url.clone());
            if !cookie_header.is_empty() {
                request = request.header("cookie", cookie_header);
            }
            let response = request.send().await.expect("the OpenID provider answers");
            for set in response.headers().get_all("set-cookie") {
                let Some((name, value)) = set
                    .to_str()
                    .ok()
                    .and_then(|set| set.split(';').next())
                    .and_then(|pair| pair.split_once('='))
                else {
                    continue;
                };
                cookies.retain(|(kept, _)| kept != name.trim());
                if !value.is_empty() {
                    cookies.push((name.trim().to_owned(), value.to_owned()));
                }
            }
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let Some(location) = location.filter(|_| response.status().is_redirection()) else {
                let body = response.text().await.unwrap_or_default();
                return Err(IdpPage { status, body });
            };
            url = url.join(&location).expect("a redirect to a URL");
            if url.origin() != issuer.origin() {
                return Ok(url);
            }
        }
        panic!("the OpenID provider redirected more than 10 times; last: {url}")
    }

    /// What the provider printed so far (its warnings, errors, and the errors it answered
    /// with), the newest 64 KiB.
    pub fn logs(&self) -> String {
        read(&self.logs)
    }

    /// Stops the provider now, as an outage would: its port refuses connections after.
    pub async fn stop(&mut self) {
        // Already gone is as good as stopped.
        let _ = self.child.kill().await;
    }

    fn control_url(&self, name: &str) -> String {
        format!("{}/__test/{name}", self.issuer)
    }

    async fn control(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("the OpenID provider answers");
        let status = response.status();
        let body = response.text().await.expect("a body");
        assert!(status.is_success(), "test control: {status} {body}");
        serde_json::from_str(&body).expect("a JSON answer")
    }
}

/// Appends every line of `stream` to `logs`.
async fn collect(stream: impl AsyncRead + Unpin, logs: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        append(&logs, &line);
    }
}

/// Appends `line` to `logs`, keeping the newest [`LOG_LIMIT`] bytes.
pub(crate) fn append(logs: &Mutex<String>, line: &str) {
    let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
    logs.push_str(line);
    logs.push('\n');
    if logs.len() > LOG_LIMIT {
        let mut cut = logs.len() - LOG_LIMIT;
        while !logs.is_char_boundary(cut) {
            cut += 1;
        }
        logs.drain(..cut);
    }
}

pub(crate) fn read(logs: &Mutex<String>) -> String {
    logs.lock().unwrap_or_else(PoisonError::into_inner).clone()
}
