//! A real SAML 2.0 identity provider for the SAML tests: Debian's SimpleSAMLphp 1.19 run by
//! PHP's built-in web server (`php -S 127.0.0.1:0`) in a child process, with its own
//! configuration, metadata, signing key and self-signed certificate in a temporary
//! directory per instance.
//!
//! ```no_run
//! # async fn example() {
//! use portcullis_test_support::saml_idp::{NameIdFormat, SamlIdp, SamlUser, SpTrust};
//! let Some(idp) = SamlIdp::start(vec![SamlUser {
//!     username: "alice".into(),
//!     password: "alice-password".into(),
//!     email: "alice@acme.test".into(),
//!     name: "Alice Liddell".into(),
//!     groups: vec!["admins".into(), "staff".into()],
//! }])
//! .await
//! else {
//!     return; // skipped loudly: no PHP or no SimpleSAMLphp here
//! };
//! idp.trust_sp(SpTrust {
//!     entity_id: "https://app.example.com/saml/metadata",
//!     acs_url: "https://app.example.com/saml/acs",
//!     sign_assertion: true,
//!     sign_response: false,
//!     name_id_format: NameIdFormat::Persistent,
//! });
//! # let authn_request_url = String::new();
//! // The SP under test redirects the browser to `idp.sso_url` with its AuthnRequest:
//! let form = idp.sign_in(&authn_request_url, "alice", "alice-password").await.unwrap();
//! // ...and `form.saml_response` is what the browser would POST to `form.action`.
//! # }
//! ```
//!
//! What the IdP is configured to do:
//!
//! * Users sign in on SimpleSAMLphp's own login form (an `exampleauth:UserPass` source).
//!   Each user has the attributes `uid` (the username), `email`, `name` and `groups` (one
//!   value per group, absent when there is none); an SP is released `email`, `name` and
//!   `groups` (`core:AttributeLimit`), named as they are with the `basic` name format.
//! * Signatures are RSA-SHA256 (`signature.algorithm`) with SHA-256 digests, by a fresh
//!   2048-bit key whose certificate is [`SamlIdp::cert_der`], embedded in each signature's
//!   `KeyInfo`. Per SP, `saml20.sign.assertion` and `saml20.sign.response` say what is
//!   signed (both, one, or neither), from [`SpTrust`].
//! * NameID: [`NameIdFormat::Persistent`] is `saml:PersistentNameID` over `uid`, an opaque
//!   SHA-1 of the instance's secret salt, both entity IDs and the username: the same for
//!   every sign-in of a user at an SP of one instance. [`NameIdFormat::Email`] is the user's
//!   email (`simplesaml.nameidattribute`) as `emailAddress`. The SP's metadata decides; a
//!   `NameIDPolicy` in the request for another format is not honoured.
//! * Assertions are not encrypted, AuthnRequests need not be signed, and the IdP answers
//!   with the HTTP-POST binding to the ACS URL registered for the SP.
//!
//! It needs `php` (with the `dom` and `openssl` extensions: Debian's `php-cli` and
//! `php-xml`), Debian's `simplesamlphp` in `/usr/share/simplesamlphp`, and the `openssl`
//! command. When one is missing, [`SamlIdp::start`] fails the test under CI (`CI` set) and
//! elsewhere returns `None` after saying loudly that the test is skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::idp::{append, read};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Where Debian's package installs SimpleSAMLphp.
const SIMPLESAMLPHP: &str = "/usr/share/simplesamlphp";

/// How long PHP may take to listen and SimpleSAMLphp to serve its metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The signature algorithm of everything the IdP signs.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// The HTTP-POST binding, by which the IdP answers.
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// A user who can sign in at the IdP.
#[derive(Clone, Debug)]
pub struct SamlUser {
    /// The login name, also the `uid` attribute. It may not contain `:`.
    pub username: String,
    pub password: String,
    /// The `email` attribute.
    pub email: String,
    /// The `name` attribute.
    pub name: String,
    /// The `groups` attribute, one value each; not sent when empty.
    pub groups: Vec<String>,
}

/// The NameID the IdP gives an SP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameIdFormat {
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:persistent`: opaque, the same for every
    /// sign-in of a user at this SP.
    Persistent,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress`: the user's email.
    Email,
}

impl NameIdFormat {
    /// The format's URI, as in the NameID's `Format`.
    pub fn uri(self) -> &'static str {
        match self {
            NameIdFormat::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            NameIdFormat::Email => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        }
    }
}

/// A service provider the IdP answers, as [`SamlIdp::trust_sp`] registers it.
#[derive(Clone, Copy, Debug)]
pub struct SpTrust<'a> {
    /// The SP's entity ID, the `Issuer` of its AuthnRequests.
    pub entity_id: &'a str,
    /// Its AssertionConsumerService (HTTP-POST binding).
    pub acs_url: &'a str,
    /// Whether the Assertion carries a signature (`saml20.sign.assertion`).
    pub sign_assertion: bool,
    /// Whether the Response carries a signature (`saml20.sign.response`).
    pub sign_response: bool,
    pub name_id_format: NameIdFormat,
}

/// The auto-POST form the IdP answers a sign-in with: what the browser would post.
#[derive(Clone, Debug)]
pub struct PostedForm {
    /// Where the form posts: the SP's ACS URL.
    pub action: String,
    /// The `SAMLResponse` field, base64 as posted.
    pub saml_response: String,
    /// The `RelayState` field, if the form has one.
    pub relay_state: Option<String>,
}

/// A running SimpleSAMLphp IdP, stopped when dropped. PHP is also killed when the thread
/// that started it ends (a parent-death signal, so that no server outlives a test process
/// killed outright): start and keep it within one test's runtime.
pub struct SamlIdp {
    /// `http://127.0.0.1:<port>/simplesaml/saml2/idp/metadata.php`.
    pub entity_id: String,
    /// Its SAML 2.0 metadata (XML): the same URL as the entity ID.
    pub metadata_url: String,
    /// Its SingleSignOnService for the HTTP-Redirect binding.
    pub sso_url: String,
    /// Its signing certificate (DER), self-signed.
    pub cert_der: Vec<u8>,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The trusted SPs: entity ID → its entry of `saml20-sp-remote.php`.
    sps: Mutex<BTreeMap<String, String>>,
    http: reqwest::Client,
    logs: Arc<Mutex<String>>,
    /// Dropped (killed) before `dir` is removed.
    _child: Child,
    dir: tempfile::TempDir,
}

/// Why the IdP cannot run here, if it cannot.
fn missing() -> Option<String> {
    let modules = std::process::Command::new("php").arg("-m").output();
    let modules = match modules {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => return Some(format!("`php -m` failed ({})", out.status)),
        Err(err) => return Some(format!("PHP is not on PATH ({err})")),
    };
    for module in ["dom", "openssl"] {
        if !modules.lines().any(|line| line.trim() == module) {
            return Some(format!("PHP lacks its `{module}` extension"));
        }
    }
    let include = Path::new(SIMPLESAMLPHP).join("www/_include.php");
    if !include.exists() {
        return Some(format!(
            "SimpleSAMLphp is not installed ({} is missing)",
            include.display()
        ));
    }
    match std::process::Command::new("openssl")
        .arg("version")
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("`openssl version` failed ({})", out.status)),
        Err(err) => Some(format!("the openssl command is not on PATH ({err})")),
    }
}

/// Whether the IdP can run: `false` (after a loud message) to skip, a panic under CI.
pub fn available() -> bool {
    static CHECKED: OnceLock<Option<String>> = OnceLock::new();
    let Some(reason) = CHECKED.get_or_init(missing) else {
        return true;
    };
    let fix = "Install Debian's simplesamlphp, php-cli and php-xml \
               (`apt-get install -y simplesamlphp php-cli php-xml`; .ci/run does it).";
    crate::idp::skip_or_fail(
        "the SAML IdP (SimpleSAMLphp) for the SAML tests",
        reason,
        fix,
    )
}

impl SamlIdp {
    /// Starts an IdP that knows `users` and no SP yet, and waits until it serves its
    /// metadata. `None` (after a loud message) when PHP or SimpleSAMLphp is missing, outside
    /// CI.
    ///
    /// # Panics
    ///
    /// Under CI when a prerequisite is missing; when a username contains `:`; and always
    /// when the IdP does not come up within 20 s (with its output in the message).
    pub async fn start(users: Vec<SamlUser>) -> Option<SamlIdp> {
        if !available() {
            return None;
        }
        for user in &users {
            assert!(
                !user.username.contains(':'),
                "a SimpleSAMLphp username cannot contain ':': {:?}",
                user.username
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("portcullis-saml-idp-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path();
        for sub in [
            "www", "config", "metadata", "cert", "data", "tmp", "sessions", "log",
        ] {
            std::fs::create_dir(path.join(sub)).expect("a directory in the IdP's tempdir");
        }
        // The document root serves SimpleSAMLphp's www/ under /simplesaml/ (PHP resolves the
        // symlink, so SimpleSAMLphp finds its own files where Debian put them).
        std::os::unix::fs::symlink(
            Path::new(SIMPLESAMLPHP).join("www"),
            path.join("www/simplesaml"),
        )
        .expect("a symlink to SimpleSAMLphp's www/");
        let cert_der = make_key_pair(&path.join("cert")).await;

        let mut command = if Path::new("/usr/bin/setpriv").exists() {
            // PHP is killed as well should this process die without dropping the IdP.
            let mut command = Command::new("/usr/bin/setpriv");
            command.args(["--pdeathsig", "KILL", "--", "php"]);
            command
        } else {
            Command::new("php")
        };
        let mut child = command
            // Every request reads the metadata files afresh, whatever trust_sp just wrote.
            .args(["-d", "opcache.enable=0", "-d", "opcache.enable_cli=0"])
            .args(["-d", "display_errors=0", "-d", "log_errors=1"])
            .args(["-S", "127.0.0.1:0", "-t"])
            .arg(path.join("www"))
            .env("SIMPLESAMLPHP_CONFIG_DIR", path.join("config"))
            .current_dir(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn `php -S`");
        let logs = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        tokio::spawn(collect(stdout, logs.clone(), None));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (port_tx, port_rx) = oneshot::channel();
        tokio::spawn(collect(stderr, logs.clone(), Some(port_tx)));

        let port = match tokio::time::timeout(READY_TIMEOUT, port_rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => {
                let status = child.wait().await;
                panic!(
                    "PHP's web server exited before it listened ({status:?}):\n{}",
                    read(&logs)
                )
            }
            Err(_) => panic!(
                "PHP's web server did not listen within {READY_TIMEOUT:?}:\n{}",
                read(&logs)
            ),
        };

        let base = format!("http://127.0.0.1:{port}/simplesaml/");
        let entity_id = format!("{base}saml2/idp/metadata.php");
        write(&path.join("config/config.php"), &config_php(path, &base));
        write(
            &path.join("config/authsources.php"),
            &authsources_php(&users),
        );
        write(
            &path.join("metadata/saml20-idp-hosted.php"),
            &idp_hosted_php(path, &entity_id),
        );
        write(&path.join("metadata/saml20-sp-remote.php"), "<?php\n");

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let idp = SamlIdp {
            metadata_url: entity_id.clone(),
            sso_url: format!("{base}saml2/idp/SSOService.php"),
            entity_id,
            cert_der,
            port,
            sps: Mutex::new(BTreeMap::new()),
            http,
            logs,
            _child: child,
            dir,
        };
        idp.wait_for_metadata().await;
        Some(idp)
    }

    /// Registers the SP `sp`, or replaces what was registered for its entity ID: the next
    /// request the IdP serves sees it (SimpleSAMLphp reads its metadata files per request).
    pub fn trust_sp(&self, sp: SpTrust<'_>) {
        let mut sps = self.sps.lock().unwrap_or_else(PoisonError::into_inner);
        sps.insert(sp.entity_id.to_owned(), sp_remote_entry(&sp));
        let mut file =
            String::from("<?php\n// Written by portcullis-test-support's SamlIdp::trust_sp.\n");
        for entry in sps.values() {
            file.push_str(entry);
        }
        write(
            &self.dir.path().join("metadata/saml20-sp-remote.php"),
            &file,
        );
    }

    /// Plays the browser with a fresh cookie jar: GETs `authn_request_url` (an SP's
    /// HTTP-Redirect AuthnRequest to [`SamlIdp::sso_url`]), follows redirects on the IdP to
    /// its login form, submits `username` and `password`, and returns the auto-POST form
    /// the IdP answers with, without posting it.
    ///
    /// `Err` when the IdP shows its login form again (wrong credentials), an error page
    /// (say, for an SP it does not trust), or redirects off itself; the message says what
    /// it showed, and [`SamlIdp::logs`] has more.
    pub async fn sign_in(
        &self,
        authn_request_url: &str,
        username: &str,
        password: &str,
    ) -> Result<PostedForm, String> {
        let origin = url::Url::parse(&self.entity_id)
            .expect("the entity ID is a URL")
            .origin();
        let mut url = url::Url::parse(authn_request_url)
            .map_err(|err| format!("not a URL: {authn_request_url:?} ({err})"))?;
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut body: Option<String> = None;
        let mut submitted = false;
        for _ in 0..20 {
            if url.origin() != origin {
                return Err(format!("the IdP sent the browser off itself, to {url}"));
            }
            let mut request = match body.take() {
                Some(form) => self
                    .http
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form),
                None => self.http.get(url.clone()),
            };
            if !cookies.is_empty() {
                let header = cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                request = request.header("cookie", header);
            }
            let response = request
                .send()
                .await
                .map_err(|err| format!("the IdP does not answer at {url}: {err}"))?;
            keep_cookies(&mut cookies, &response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| format!("a {status} without a Location at {url}"))?;
                url = url
                    .join(location)
                    .map_err(|err| format!("a redirect to {location:?}: {err}"))?;
                continue;
            }
            let page = response.text().await.unwrap_or_default();
            let forms = forms(&page);
            if let Some(form) = forms.iter().find(|f| f.field("SAMLResponse").is_some()) {
                let action = form.action.as_deref().unwrap_or_default();
                return Ok(PostedForm {
                    action: url
                        .join(action)
                        .map_or_else(|_| action.to_owned(), String::from),
                    saml_response: form.field("SAMLResponse").unwrap_or_default().to_owned(),
                    relay_state: form.field("RelayState").map(str::to_owned),
                });
            }
            let login = forms
                .into_iter()
                .find(|f| f.inputs.iter().any(|i| i.kind == "password"));
            match login {
                Some(login) if !submitted => {
                    submitted = true;
                    let mut fields = url::form_urlencoded::Serializer::new(String::new());
                    for input in &login.inputs {
                        let Some(name) = &input.name else { continue };
                        match (name.as_str(), input.kind.as_str()) {
                            ("username", _) => fields.append_pair(name, username),
                            ("password", _) => fields.append_pair(name, password),
                            (_, "submit" | "button" | "image" | "reset" | "file") => continue,
                            (_, "checkbox" | "radio") if !input.checked => continue,
                            _ => fields.append_pair(name, &input.value),
                        };
                    }
                    body = Some(fields.finish());
                    let action = login.action.as_deref().unwrap_or_default();
                    url = url
                        .join(action)
                        .map_err(|err| format!("the login form's action {action:?}: {err}"))?;
                }
                Some(_) => {
                    let why = element_text(&page, "strong")
                        .unwrap_or_else(|| "its login form came back".to_owned());
                    return Err(format!(
                        "the IdP did not sign {username:?} in: {why} (HTTP {status})"
                    ));
                }
                None => {
                    return Err(format!(
                        "the IdP answered HTTP {status} at {url} with neither a login form nor \
                         a SAMLResponse: {}",
                        excerpt(&page)
                    ));
                }
            }
        }
        Err(format!(
            "the IdP redirected more than 20 times; last: {url}"
        ))
    }

    /// What PHP and SimpleSAMLphp printed so far (requests, notices, errors), the newest
    /// 64 KiB.
    pub fn logs(&self) -> String {
        read(&self.logs)
    }

    /// Polls the metadata until SimpleSAMLphp serves it.
    async fn wait_for_metadata(&self) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self.http.get(&self.metadata_url).send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() && body.contains("EntityDescriptor") {
                        return;
                    }
                    last = format!("HTTP {status}: {}", excerpt(&body));
                }
                Err(err) => last = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "SimpleSAMLphp did not serve its metadata at {} within {READY_TIMEOUT:?} ({last}):\n{}",
            self.metadata_url,
            self.logs()
        )
    }
}

/// Generates the IdP's RSA key and self-signed certificate in `dir` (`idp.key`, `idp.crt`):
/// the certificate's DER.
async fn make_key_pair(dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "3650",
        ])
        .args(["-subj", "/CN=portcullis test SAML IdP"])
        .arg("-keyout")
        .arg(dir.join("idp.key"))
        .arg("-out")
        .arg(dir.join("idp.crt"))
        .output()
        .await
        .expect("run `openssl req`");
    assert!(
        out.status.success(),
        "`openssl req` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(dir.join("idp.crt")).expect("the certificate");
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("a PEM certificate")
}

/// `config.php`: everything under `dir`, URLs under `base`, logs on stderr.
fn config_php(dir: &Path, base: &str) -> String {
    let at = |sub: &str| php_str(&format!("{}/{sub}", dir.display()));
    format!(
        r"<?php
// Written by portcullis-test-support's SamlIdp::start.
$config = [
    'baseurlpath' => {base},
    'certdir' => {cert},
    'loggingdir' => {log},
    'datadir' => {data},
    'tempdir' => {tmp},
    'metadatadir' => {metadata},
    'metadata.sources' => [['type' => 'flatfile']],
    'technicalcontact_name' => 'portcullis tests',
    'technicalcontact_email' => 'tests@portcullis.invalid',
    'timezone' => 'UTC',
    'secretsalt' => 'portcullis-test-support-saml-idp-salt',
    'auth.adminpassword' => {admin},
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'showerrors' => true,
    'errorreporting' => false,
    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.handler' => 'stderr',
    'logging.processname' => 'simplesamlphp',
    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
    'store.type' => 'phpsession',
    'session.phpsession.savepath' => {sessions},
    'session.phpsession.httponly' => true,
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'session.cookie.path' => '/',
    'language.default' => 'en',
    'usenewui' => false,
];
",
        base = php_str(base),
        cert = at("cert/"),
        log = at("log/"),
        data = at("data/"),
        tmp = at("tmp"),
        metadata = at("metadata/"),
        sessions = at("sessions"),
        admin = php_str(&format!("admin-{}", dir.display())),
    )
}

/// `authsources.php`: the users, as an `exampleauth:UserPass` source named `users`.
fn authsources_php(users: &[SamlUser]) -> String {
    let mut file = String::from(
        "<?php\n// Written by portcullis-test-support's SamlIdp::start.\n$config = [\n    \
         'admin' => ['core:AdminPassword'],\n    'users' => [\n        'exampleauth:UserPass',\n",
    );
    for user in users {
        let groups = user
            .groups
            .iter()
            .map(|group| php_str(group))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            file,
            "        {} => [\n            'uid' => [{}],\n            'email' => [{}],\n            \
             'name' => [{}],\n",
            php_str(&format!("{}:{}", user.username, user.password)),
            php_str(&user.username),
            php_str(&user.email),
            php_str(&user.name),
        );
        if !user.groups.is_empty() {
            let _ = writeln!(file, "            'groups' => [{groups}],");
        }
        file.push_str("        ],\n");
    }
    file.push_str("    ],\n];\n");
    file
}

/// `saml20-idp-hosted.php`: the IdP itself.
fn idp_hosted_php(dir: &Path, entity_id: &str) -> String {
    format!(
        r"<?php
// Written by portcullis-test-support's SamlIdp::start.
$metadata[{entity_id}] = [
    'host' => '__DEFAULT__',
    'auth' => 'users',
    'privatekey' => {key},
    'certificate' => {cert},
    'signature.algorithm' => {alg},
    'saml20.sign.assertion' => true,
    'saml20.sign.response' => true,
    'NameIDFormat' => [{persistent}, {email}],
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'userid.attribute' => 'uid',
];
",
        entity_id = php_str(entity_id),
        key = php_str(&format!("{}/cert/idp.key", dir.display())),
        cert = php_str(&format!("{}/cert/idp.crt", dir.display())),
        alg = php_str(RSA_SHA256),
        persistent = php_str(NameIdFormat::Persistent.uri()),
        email = php_str(NameIdFormat::Email.uri()),
    )
}

/// The entry of `saml20-sp-remote.php` for `sp`.
fn sp_remote_entry(sp: &SpTrust<'_>) -> String {
    let name_id = match sp.name_id_format {
        // Priority 10: before the attribute limit takes `uid` away.
        NameIdFormat::Persistent => {
            "        10 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid'],\n"
        }
        NameIdFormat::Email => "",
    };
    let name_id_attribute = match sp.name_id_format {
        NameIdFormat::Persistent => "",
        NameIdFormat::Email => "    'simplesaml.nameidattribute' => 'email',\n",
    };
    format!(
        "$metadata[{entity_id}] = [\n    \
         'AssertionConsumerService' => [\n        \
         ['Binding' => {post}, 'Location' => {acs}, 'index' => 0, 'isDefault' => true],\n    \
         ],\n    \
         'saml20.sign.assertion' => {sign_assertion},\n    \
         'saml20.sign.response' => {sign_response},\n    \
         'signature.algorithm' => {alg},\n    \
         'NameIDFormat' => {format},\n\
         {name_id_attribute}    \
         'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',\n    \
         'authproc' => [\n\
         {name_id}        \
         90 => ['class' => 'core:AttributeLimit', 'email', 'name', 'groups'],\n    \
         ],\n\
         ];\n",
        entity_id = php_str(sp.entity_id),
        post = php_str(HTTP_POST),
        acs = php_str(sp.acs_url),
        sign_assertion = sp.sign_assertion,
        sign_response = sp.sign_response,
        alg = php_str(RSA_SHA256),
        format = php_str(sp.name_id_format.uri()),
    )
}

/// `text` as a single-quoted PHP string literal.
fn php_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Writes `contents` to `path` at once (a rename), so no request reads half a file.
fn write(path: &Path, contents: &str) {
    let mut temporary = PathBuf::from(path);
    temporary.set_extension("php.partial");
    std::fs::write(&temporary, contents).expect("write a file in the IdP's tempdir");
    std::fs::rename(&temporary, path).expect("rename a file in the IdP's tempdir");
}

/// Keeps the cookies `response` sets (by name; path and domain do not matter on one
/// origin), forgetting those it clears.
fn keep_cookies(cookies: &mut Vec<(String, String)>, response: &reqwest::Response) {
    for set in response.headers().get_all("set-cookie") {
        let Ok(set) = set.to_str() else { continue };
        let mut parts = set.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let cleared = value.is_empty()
            || value == "deleted"
            || parts.any(|attr| {
                attr.trim()
                    .to_ascii_lowercase()
                    .strip_prefix("max-age=")
                    .is_some_and(|age| age.trim().starts_with('-') || age.trim() == "0")
            });
        cookies.retain(|(kept, _)| kept != name);
        if !cleared {
            cookies.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// An HTML form, as much of it as a browser posting it needs.
#[derive(Debug)]
struct Form {
    action: Option<String>,
    inputs: Vec<Input>,
}

#[derive(Debug)]
struct Input {
    name: Option<String>,
    /// The `type`, lowercase; `text` when absent.
    kind: String,
    value: String,
    checked: bool,
}

impl Form {
    /// The value of the named field.
    fn field(&self, name: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|input| input.name.as_deref() == Some(name))
            .map(|input| input.value.as_str())
    }
}

/// The forms of `html` and their `<input>`s (a scanner for SimpleSAMLphp's pages, not a
/// general HTML parser).
fn forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut at = 0;
    while let Some(start) = find_tag(&lower, "form", at) {
        let (attrs, open_end) = attributes(&html[start + "<form".len()..]);
        let body_start = start + "<form".len() + open_end;
        let body_end = lower[body_start..]
            .find("</form")
            .map_or(html.len(), |end| body_start + end);
        let mut inputs = Vec::new();
        let mut at_input = body_start;
        while let Some(input) = find_tag(&lower[..body_end], "input", at_input) {
            let (attrs, end) = attributes(&html[input + "<input".len()..]);
            let get = |name: &str| {
                attrs
                    .iter()
                    .find(|(attr, _)| attr == name)
                    .map(|(_, value)| value.clone())
            };
            inputs.push(Input {
                name: get("name"),
                kind: get("type").map_or_else(|| "text".to_owned(), |t| t.to_ascii_lowercase()),
                value: get("value").unwrap_or_default(),
                checked: get("checked").is_some(),
            });
            at_input = input + "<input".len() + end;
        }
        forms.push(Form {
            action: attrs
                .iter()
                .find(|(attr, _)| attr == "action")
                .map(|(_, value)| value.clone()),
            inputs,
        });
        at = body_end;
    }
    forms
}

/// Where the next `<name` tag starts in `lower` (lowercase HTML) at or after `from`.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let open = format!("<{name}");
    let mut at = from;
    while let Some(found) = lower.get(at..)?.find(&open) {
        let start = at + found;
        let next = lower[start + open.len()..].chars().next();
        if next.is_some_and(|c| c.is_ascii_whitespace() || c == '>' || c == '/') {
            return Some(start);
        }
        at = start + open.len();
    }
    None
}

/// The attributes of a tag whose name ends where `rest` starts (names lowercase, values
/// decoded), and how far past its `>` the tag ends.
fn attributes(rest: &str) -> (Vec<(String, String)>, usize) {
    let bytes = rest.as_bytes();
    let mut attrs = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return (attrs, i);
        }
        if bytes[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let name = rest[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let value_start = i + 1;
                i = value_start;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                value = decode_entities(&rest[value_start..i]);
                i = (i + 1).min(bytes.len());
            } else {
                let value_start = i;
                while i < bytes.len() && bytes[i] != b'>' && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&rest[value_start..i]);
            }
        }
        attrs.push((name, value));
    }
}

/// `text` with HTML's character references replaced (the ones htmlspecialchars writes and
/// numeric ones).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&semi| semi <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the first `<name>` element of `html`, if it has any.
fn element_text(html: &str, name: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = find_tag(&lower, name, 0)?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find(&format!("</{name}"))?;
    let text = excerpt(&html[open_end..end]);
    (!text.is_empty()).then_some(text)
}

/// The text of an HTML page, tags, scripts and the head left out, whitespace collapsed, at most about
/// 2,000 characters.
fn excerpt(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(open) => {
                text.push_str(&rest[..open]);
                text.push(' ');
                rest = &rest[open..];
                let lower = rest.get(..8).unwrap_or(rest).to_ascii_lowercase();
                let skip_to = if lower.starts_with("<script") {
                    "</script>"
                } else if lower.starts_with("<style") {
                    "</style>"
                } else if lower.starts_with("<head") && !lower.starts_with("<header") {
                    "</head>"
                } else {
                    ">"
                };
                rest = match rest.to_ascii_lowercase().find(skip_to) {
                    Some(close) => &rest[close + skip_to.len()..],
                    None => "",
                };
            }
            None => {
                text.push_str(rest);
                rest = "";
            }
        }
    }
    let text = decode_entities(&text);
    let mut words = String::new();
    for word in text.split_whitespace() {
        if words.len() > 2000 {
            words.push_str(" …");
            break;
        }
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(word);
    }
    words
}

/// Appends every line of `stream` to `logs` (PHP's per-connection chatter left out); with
/// `port`, sends the port from PHP's "Development Server (http://127.0.0.1:<port>) started".
async fn collect(
    stream: impl AsyncRead + Unpin,
    logs: Arc<Mutex<String>>,
    mut port: Option<oneshot::Sender<u16>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.ends_with(" Accepted") || line.ends_with(" Closing") {
            continue;
        }
        if let Some(listening) = line
            .split_once("Development Server (http://")
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(address, _)| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u16>().ok())
            && let Some(port) = port.take()
        {
            let _ = port.send(listening);
        }
        append(&logs, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = "http://127.0.0.1:1/sp";
    const ACS: &str = "http://127.0.0.1:1/acs";
    const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

    fn users() -> Vec<SamlUser> {
        vec![
            SamlUser {
                username: "alice".into(),
                password: "alice's p@ss: \"quoted\" \\ back".into(),
                email: "alice@acme.test".into(),
                name: "Alice O'Hara".into(),
                groups: vec!["admins".into(), "staff".into()],
            },
            SamlUser {
                username: "bob".into(),
                password: "bob-password".into(),
                email: "bob@acme.test".into(),
                name: "Bob".into(),
                groups: vec![],
            },
        ]
    }

    fn trust(idp: &SamlIdp, sign_assertion: bool, sign_response: bool, format: NameIdFormat) {
        idp.trust_sp(SpTrust {
            entity_id: SP,
            acs_url: ACS,
            sign_assertion,
            sign_response,
            name_id_format: format,
        });
    }

    /// `YYYY-MM-DDThh:mm:ssZ` for now.
    fn now_xs_datetime() -> String {
        portcullis::Clock::now(&portcullis::SystemClock).to_rfc3339()
    }

    /// An HTTP-Redirect AuthnRequest from the made-up SP with RelayState `xyz`: its URL and ID.
    fn authn_request(idp: &SamlIdp) -> (String, String) {
        use std::io::Write as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let id = format!("_abc{nanos:x}");
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{sso}" AssertionConsumerServiceURL="{ACS}" ProtocolBinding="{HTTP_POST}"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#,
            now = now_xs_datetime(),
            sso = idp.sso_url,
        );
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(xml.as_bytes()).unwrap();
        let request = base64::engine::general_purpose::STANDARD.encode(deflate.finish().unwrap());
        let url = url::Url::parse_with_params(
            &idp.sso_url,
            [("SAMLRequest", request.as_str()), ("RelayState", "xyz")],
        )
        .unwrap();
        (url.into(), id)
    }

    /// Signs in and checks what every answer has: the decoded SAMLResponse.
    async fn sign_in(idp: &SamlIdp, username: &str, password: &str) -> String {
        let (url, id) = authn_request(idp);
        let form = idp
            .sign_in(&url, username, password)
            .await
            .unwrap_or_else(|err| panic!("{err}\nIdP logs:\n{}", idp.logs()));
        assert_eq!(form.action, ACS);
        assert_eq!(form.relay_state.as_deref(), Some("xyz"));
        let xml = base64::engine::general_purpose::STANDARD
            .decode(&form.saml_response)
            .unwrap();
        let xml = String::from_utf8(xml).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let response = doc.root_element();
        assert!(response.has_tag_name((SAMLP, "Response")), "{xml}");
        assert_eq!(response.attribute("InResponseTo"), Some(id.as_str()));
        assert_eq!(response.attribute("Destination"), Some(ACS));
        let issuer = child(response, SAML, "Issuer").unwrap();
        assert_eq!(issuer.text(), Some(idp.entity_id.as_str()));
        let status = child(
            child(response, SAMLP, "Status").unwrap(),
            SAMLP,
            "StatusCode",
        );
        assert_eq!(
            status.unwrap().attribute("Value"),
            Some("urn:oasis:names:tc:SAML:2.0:status:Success")
        );
        xml
    }

    fn child<'a, 'input>(
        node: roxmltree::Node<'a, 'input>,
        ns: &str,
        name: &str,
    ) -> Option<roxmltree::Node<'a, 'input>> {
        node.children().find(|n| n.has_tag_name((ns, name)))
    }

    /// Checks the enveloped signature directly under `node`, if there is one: RSA-SHA256
    /// over `node` by the IdP's certificate.
    fn signature_of(idp: &SamlIdp, node: roxmltree::Node<'_, '_>) -> bool {
        let Some(signature) = child(node, DS, "Signature") else {
            return false;
        };
        let signed_info = child(signature, DS, "SignedInfo").unwrap();
        let method = child(signed_info, DS, "SignatureMethod").unwrap();
        assert_eq!(method.attribute("Algorithm"), Some(RSA_SHA256));
        let reference = child(signed_info, DS, "Reference").unwrap();
        let id = node.attribute("ID").unwrap();
        assert_eq!(reference.attribute("URI"), Some(format!("#{id}").as_str()));
        let cert = signature
            .descendants()
            .find(|n| n.has_tag_name((DS, "X509Certificate")))
            .and_then(|n| n.text())
            .unwrap();
        let cert: String = cert.split_whitespace().collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(cert)
                .unwrap(),
            idp.cert_der
        );
        true
    }

    /// The NameID's format and value, and the attributes, of the one assertion.
    fn subject(xml: &str) -> (String, String, BTreeMap<String, Vec<String>>) {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let assertion = child(doc.root_element(), SAML, "Assertion").unwrap();
        let name_id = child(child(assertion, SAML, "Subject").unwrap(), SAML, "NameID").unwrap();
        let mut attributes = BTreeMap::new();
        for attribute in assertion
            .descendants()
            .filter(|n| n.has_tag_name((SAML, "Attribute")))
        {
            let values = attribute
                .children()
                .filter(|n| n.has_tag_name((SAML, "AttributeValue")))
                .map(|n| n.text().unwrap_or_default().to_owned())
                .collect();
            attributes.insert(attribute.attribute("Name").unwrap().to_owned(), values);
        }
        (
            name_id.attribute("Format").unwrap().to_owned(),
            name_id.text().unwrap().to_owned(),
            attributes,
        )
    }

    #[tokio::test]
    async fn signed_assertion_with_a_stable_persistent_name_id() {
        let Some(idp) = SamlIdp::start(users()).await else {
            return;
        };
        trust(&idp, true, false, NameIdFormat::Persistent);
        let password = users()[0].password.clone();
        let xml = sign_in(&idp, "alice", &password).await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let response = doc.root_element();
        let assertion = child(response, SAML, "Assertion").unwrap();
        assert!(
            signature_of(&idp, assertion),
            "the assertion is signed: {xml}"
        );
        assert!(!signature_of(&idp, response), "the response is not: {xml}");

        let (format, name_id, attributes) = subject(&xml);
        assert_eq!(format, NameIdFormat::Persistent.uri());
        assert!(
            !name_id.is_empty() && !name_id.contains("alice"),
            "{name_id}"
        );
        assert_eq!(attributes["email"], ["alice@acme.test"]);
        assert_eq!(attributes["name"], ["Alice O'Hara"]);
        assert_eq!(attributes["groups"], ["admins", "staff"]);
        assert_eq!(
            attributes.len(),
            3,
            "only email, name and groups: {attributes:?}"
        );

        // The same user gets the same NameID; another user another one.
        let again = sign_in(&idp, "alice", &password).await;
        assert_eq!(subject(&again).1, name_id);
        let bob = sign_in(&idp, "bob", "bob-password").await;
        let (_, bob_id, bob_attributes) = subject(&bob);
        assert_ne!(bob_id, name_id);
        assert!(!bob_attributes.contains_key("groups"), "{bob_attributes:?}");
    }

    #[tokio::test]
    async fn signed_response_with_the_email_as_name_id() {
        let Some(idp) = SamlIdp::start(users()).await else {
            return;
        };
        // Registered first otherwise, then replaced while the IdP runs.
        trust(&idp, true, false, NameIdFormat::Persistent);
        trust(&idp, false, true, NameIdFormat::Email);
        let xml = sign_in(&idp, "bob", "bob-password").await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let response = doc.root_element();
        assert!(
            signature_of(&idp, response),
            "the response is signed: {xml}"
        );
        let assertion = child(response, SAML, "Assertion").unwrap();
        assert!(
            !signature_of(&idp, assertion),
            "the assertion is not: {xml}"
        );
        let (format, name_id, attributes) = subject(&xml);
        assert_eq!(format, NameIdFormat::Email.uri());
        assert_eq!(name_id, "bob@acme.test");
        assert_eq!(attributes["email"], ["bob@acme.test"]);
        assert_eq!(attributes["name"], ["Bob"]);

        // Both signatures at once.
        trust(&idp, true, true, NameIdFormat::Email);
        let xml = sign_in(&idp, "bob", "bob-password").await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let response = doc.root_element();
        assert!(signature_of(&idp, response), "{xml}");
        assert!(
            signature_of(&idp, child(response, SAML, "Assertion").unwrap()),
            "{xml}"
        );
    }

    #[tokio::test]
    async fn wrong_credentials_and_unknown_sps_are_errors() {
        let Some(idp) = SamlIdp::start(users()).await else {
            return;
        };
        // No SP is trusted yet: SimpleSAMLphp refuses the request.
        let (url, _) = authn_request(&idp);
        let err = idp.sign_in(&url, "bob", "bob-password").await.unwrap_err();
        assert!(err.contains("Unable to locate metadata"), "{err}");

        trust(&idp, true, false, NameIdFormat::Persistent);
        let (url, _) = authn_request(&idp);
        let err = idp.sign_in(&url, "bob", "not-bob's").await.unwrap_err();
        assert!(err.contains("did not sign"), "{err}");
        let err = idp
            .sign_in(&url, "carol", "bob-password")
            .await
            .unwrap_err();
        assert!(err.contains("did not sign"), "{err}");
        // The right password still works on the same request.
        let form = idp.sign_in(&url, "bob", "bob-password").await.unwrap();
        assert_eq!(form.action, ACS);
    }

    #[tokio::test]
    async fn metadata_names_the_endpoints_and_the_certificate() {
        let Some(idp) = SamlIdp::start(users()).await else {
            return;
        };
        let xml = reqwest::get(&idp.metadata_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let md = "urn:oasis:names:tc:SAML:2.0:metadata";
        let entity = doc.root_element();
        assert!(entity.has_tag_name((md, "EntityDescriptor")), "{xml}");
        assert_eq!(entity.attribute("entityID"), Some(idp.entity_id.as_str()));
        let redirect = entity
            .descendants()
            .filter(|n| n.has_tag_name((md, "SingleSignOnService")))
            .find(|n| {
                n.attribute("Binding") == Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
            })
            .unwrap();
        assert_eq!(redirect.attribute("Location"), Some(idp.sso_url.as_str()));
        let cert: String = entity
            .descendants()
            .find(|n| n.has_tag_name((DS, "X509Certificate")))
            .and_then(|n| n.text())
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(cert)
                .unwrap(),
            idp.cert_der
        );
    }

    #[test]
    fn forms_are_read_as_a_browser_would() {
        let page = r#"<html><body><FORM method="post"
            action="http://sp.test/acs?a=1&amp;b=2"><input type="submit" id="x"/>
            <input type="hidden" name="SAMLResponse" value="PHA+Cg==" /><input type=hidden
            name='RelayState' value='a&quot;b&#039;c&#x3c;'></form></body></html>"#;
        let forms = forms(page);
        assert_eq!(forms.len(), 1);
        assert_eq!(
            forms[0].action.as_deref(),
            Some("http://sp.test/acs?a=1&b=2")
        );
        assert_eq!(forms[0].field("SAMLResponse"), Some("PHA+Cg=="));
        assert_eq!(forms[0].field("RelayState"), Some("a\"b'c<"));
        assert_eq!(php_str(r"it's \ here"), r"'it\'s \\ here'");
    }
}
