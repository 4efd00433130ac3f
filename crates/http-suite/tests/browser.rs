//! The login page in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core (`e2e/login.mjs`) against the app served on a real socket. A virtual
//! authenticator (CDP `WebAuthn.addVirtualAuthenticator`) registers a passkey through the
//! page, the person signs out and in again with it, then signs in by email code, enrols
//! TOTP from the QR code's secret, keeps a backup code, signs out, and signs in by email
//! code again through the MFA step with that backup code; then magic links, opened in a
//! second tab of the same browser and in another browser (which says who asked, then takes
//! the device code).
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node`, and `npm ci` run in `e2e/`
//! (`.ci/run` does all three). Without them the test fails when `CI` is set and is
//! skipped, loudly, otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The page is the axum example's.
const FRAMEWORK: common::Framework = common::Framework::Axum;

#[path = "suite/common.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn missing_prerequisite() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("no node on PATH".into());
    }
    if !e2e_dir().join("node_modules/playwright-core").exists() {
        return Some("playwright-core is not installed (cd examples/axum/e2e && npm ci)".into());
    }
    None
}

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/axum/e2e")
}

/// Runs `node <script> <args..>` in `e2e/` with `envs`, answering on its stdin whatever
/// `answer` makes of a line it printed (nothing for `None`), until it exits. Fails the test
/// unless it said `E2E OK` and exited 0 within 150 s; its artifacts are kept then.
async fn run_e2e(
    script: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    mut answer: impl FnMut(&str) -> Option<String>,
) {
    let artifacts = tempfile::tempdir().unwrap();
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(e2e_dir())
        .env("E2E_ARTIFACTS", artifacts.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut passed = false;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "E2E OK" {
                passed = true;
            } else if let Some(reply) = answer(&line) {
                stdin
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
                stdin.flush().await.unwrap();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the browser run finished in time");
    let status = child.wait().await.unwrap();
    assert!(
        passed && status.success(),
        "{script} failed ({status}); artifacts were in {}",
        artifacts.keep().display()
    );
}

/// The place the page should name for the browser's address (the application's GeoIP
/// hook, here knowing only loopback).
const LOOPBACK_PLACE: &str = "Loopback Lane, Localhost";

#[derive(Debug)]
struct Loopback;

impl portcullis::Locate for Loopback {
    fn place(&self, ip: std::net::IpAddr) -> Option<String> {
        ip.is_loopback().then(|| LOOPBACK_PLACE.to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_and_email_code_sign_in_through_the_page() {
    if let Some(why) = missing_prerequisite() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run under CI: {why}");
        }
        eprintln!("\n!!!!!! SKIPPED the browser end-to-end test: {why} !!!!!!\n");
        return;
    }
    // The origin must be the one the browser sees: WebAuthn checks it, and `localhost`
    // is a secure context over plain HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let test = common::TestApp::for_browser(&origin, |builder| builder.locate(Loopback));
    let server = tokio::spawn(
        axum::serve(
            listener,
            example_axum::app(test.api.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );

    let mut requested_by = None;
    run_e2e("login.mjs", &[&origin], &[], |line| {
        if let Some(email) = line.strip_prefix("NEED_EMAIL_CODE ") {
            Some(test.last_email_code(email.trim()))
        } else if let Some(email) = line.strip_prefix("NEED_MAGIC_LINK ") {
            Some(test.last_link(email.trim()))
        } else if let Some(text) = line.strip_prefix("SAW_REQUESTED_BY ") {
            requested_by = Some(text.to_owned());
            None
        } else {
            eprintln!("e2e stdout: {line}");
            None
        }
    })
    .await;
    server.abort();
    // ML-11: the other browser's confirm page named who asked: headless Chromium on this
    // machine, the hook's place for its loopback address, and the time.
    let requested_by = requested_by.expect("the page said who asked for the link");
    for part in ["Chrome on Linux", LOOPBACK_PLACE, "127.0.0.1", ", at "] {
        assert!(requested_by.contains(part), "{part:?} in {requested_by:?}");
    }

    // What the page did, as the engine saw it. The passkey sign-up made account A once its
    // emailed code came back (so its address is proven); A signed in with the passkey, by
    // code, and again through the MFA step. C and D signed in by magic link, in the same
    // browser and from another one.
    let users = test
        .auth
        .users()
        .list(&portcullis::store::UserQuery::all(), &Default::default())
        .await
        .unwrap()
        .items;
    let mut seen = Vec::new();
    for user in &users {
        let passkeys = test.auth.passkeys().list(user.id).await.unwrap().len();
        let log = test
            .auth
            .audit()
            .login_log(user.id, &Default::default())
            .await
            .unwrap();
        let mut methods: Vec<String> = log
            .items
            .iter()
            .filter(|e| e.kind == portcullis::model::AuthEventKind::SignIn)
            .filter_map(|e| e.method.clone())
            .collect();
        methods.sort();
        seen.push((passkeys, user.email_verified, methods));
    }
    seen.sort();
    let with_passkey = seen.pop().unwrap();
    assert_eq!(with_passkey.0, 1, "{seen:?} {with_passkey:?}");
    assert!(with_passkey.1, "the sign-up's code proved A's address");
    assert_eq!(
        with_passkey.2,
        ["backup_code", "email", "passkey", "passkey"],
        "signed up and in with the passkey, by code, and through the MFA step"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.0 == 0 && s.1), "{seen:?}");
    // A magic link signs in both the tab that opened it and, through its poll, the tab
    // that asked: two sessions each.
    let by_link = seen.iter().filter(|s| s.2 == ["email", "email"]).count();
    assert_eq!(by_link, 2, "C and D, by link: {seen:?}");
}

// RP-20, ADM-09: single sign-on through the pages in Chromium, against the real OpenID
// provider's own login page: an IT administrator sets the connection up from a setup link
// (provider details, the domain's TXT record, a test sign-in, activation), then a person
// signs in with "Continue with SSO" on the login page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_setup_and_sign_in_through_the_pages() {
    use portcullis_test_support::dns::DnsServer;
    use portcullis_test_support::idp::Idp;

    const SECRET: &str = "a-client-secret-of-at-least-32-characters";
    if let Some(why) = missing_prerequisite() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run under CI: {why}");
        }
        eprintln!("\n!!!!!! SKIPPED the SSO browser test: {why} !!!!!!\n");
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let Some(idp) = Idp::start(serde_json::json!({
        "clients": [{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{origin}/api/v1/sso/callback")],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
        "accounts": {
            "it": { "email": "it@acme.test", "email_verified": true },
            "alice": { "email": "alice@acme.test", "email_verified": true, "name": "Alice" },
        },
    }))
    .await
    else {
        return;
    };
    let dns = DnsServer::start().await;
    let resolver =
        std::sync::Arc::new(portcullis::HickoryDns::with_servers(&[dns.addr()]).unwrap());
    let test = common::TestApp::for_browser(&origin, |builder| {
        builder
            .outbound_policy(portcullis::OutboundPolicy::default().allow_loopback())
            .domain_verifier(resolver)
    });
    let org = test
        .auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    let link = test.auth.sso().create_setup_link(org, None).await.unwrap();
    let setup_url = format!("{origin}/setup?token={}", link.token.as_str());
    let server = tokio::spawn(
        axum::serve(
            listener,
            example_axum::app(test.api.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    run_e2e(
        "sso.mjs",
        &[&origin, &setup_url],
        &[
            ("SSO_ISSUER", &idp.issuer),
            ("SSO_CLIENT_ID", "portcullis"),
            ("SSO_SECRET", SECRET),
        ],
        |line| {
            let (name, value) = line.strip_prefix("PUBLISH ")?.split_once(' ')?;
            dns.set_txt(name, vec![vec![value.to_owned()]]);
            Some("ok".to_owned())
        },
    )
    .await;
    server.abort();
    // What the pages did, as the engine saw it: one active, tested connection; the test
    // sign-in made nobody; Alice was provisioned into Acme and signed in by SSO.
    let connections = test.auth.sso().connections(org).await.unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(
        connections[0].status,
        portcullis::model::ConnectionStatus::Active
    );
    assert!(
        test.auth
            .users()
            .get_by_email("it@acme.test")
            .await
            .is_err()
    );
    let alice = test
        .auth
        .users()
        .get_by_email("alice@acme.test")
        .await
        .unwrap();
    let memberships = test.auth.rbac().memberships(alice.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].org_id, org);
    let log = test
        .auth
        .audit()
        .login_log(alice.id, &Default::default())
        .await
        .unwrap();
    assert!(
        log.items
            .iter()
            .any(|e| e.kind == portcullis::model::AuthEventKind::SignIn
                && e.method.as_deref() == Some("sso")),
        "{:?}",
        log.items
    );
}
