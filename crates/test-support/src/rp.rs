//! Relying parties built on real OpenID Connect client libraries (`rp/`): Authlib (Python)
//! and `openid-client` (Node.js), started as child processes against portcullis's OpenID
//! provider. Each does discovery, the code flow with PKCE, validates the ID token itself,
//! refreshes, calls UserInfo and revokes; the test plays the browser in between. The
//! protocol is in `rp/README.md`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::idp::skip_or_fail;

/// Which library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// Authlib, from PyPI (`rp/rp.py`, in `rp/.venv`).
    Authlib,
    /// `openid-client`, from npm (`rp/rp.mjs`).
    OpenidClient,
}

/// The drivers' directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rp")
}

fn missing(library: Library) -> Option<String> {
    match library {
        Library::Authlib => {
            let python = dir().join(".venv/bin/python");
            let ok = std::process::Command::new(&python)
                .args(["-c", "import authlib, joserfc, requests"])
                .output()
                .is_ok_and(|o| o.status.success());
            (!ok).then(|| format!("{} cannot import authlib", python.display()))
        }
        Library::OpenidClient => {
            let ok = dir()
                .join("node_modules/openid-client/package.json")
                .is_file()
                && std::process::Command::new("node")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success());
            (!ok).then(|| "node or rp/node_modules/openid-client is missing".to_owned())
        }
    }
}

/// Whether `library` can run here: under CI a missing one fails the test, elsewhere it is
/// skipped with a loud message.
pub fn available(library: Library) -> bool {
    static AUTHLIB: OnceLock<Option<String>> = OnceLock::new();
    static OPENID_CLIENT: OnceLock<Option<String>> = OnceLock::new();
    let cell = match library {
        Library::Authlib => &AUTHLIB,
        Library::OpenidClient => &OPENID_CLIENT,
    };
    let Some(reason) = cell.get_or_init(|| missing(library)) else {
        return true;
    };
    let fix = format!(
        "In {}: `python3 -m venv .venv && .venv/bin/pip install -r requirements.txt` and \
         `npm ci` (.ci/run does both).",
        dir().display()
    );
    skip_or_fail(&format!("the relying party {library:?}"), reason, &fix)
}

/// Runs `library` with `config`; `browser` gets the authorization URL and answers the
/// URL the browser was redirected to. Returns the driver's final line (`{"ok": ..}`).
pub async fn run<F, Fut>(library: Library, config: &Value, browser: F) -> Value
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut command = match library {
        Library::Authlib => {
            let mut c = Command::new(dir().join(".venv/bin/python"));
            c.arg(dir().join("rp.py"));
            c
        }
        Library::OpenidClient => {
            let mut c = Command::new("node");
            c.arg(dir().join("rp.mjs"));
            c
        }
    };
    let mut child = command
        .arg(config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the relying party starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(
        &lines
            .next_line()
            .await
            .unwrap()
            .expect("the relying party's first line"),
    )
    .unwrap();
    let Some(url) = first["authorize"].as_str() else {
        return first;
    };
    let callback = browser(url.to_owned()).await;
    let line = serde_json::json!({ "callback": callback }).to_string() + "\n";
    stdin.write_all(line.as_bytes()).await.unwrap();
    let last = lines
        .next_line()
        .await
        .unwrap()
        .expect("the relying party's result");
    let _ = child.wait().await;
    serde_json::from_str(&last).unwrap()
}
