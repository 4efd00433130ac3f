//! The scenario of `scenario.json` (65 steps through sign-up, sign-in, MFA, tokens and
//! refusals), run over real loopback sockets against the axum and the actix-web example
//! (`axum::serve` and actix's `HttpServer`, as the examples' mains run them), each on its
//! own in-memory engine. At every step both must answer the status the step names, its error
//! code, key set and headers, and the same JSON shape (key paths and value types), the same
//! stable values (statuses, amr, acr, flags) and the same client-facing headers as each
//! other. Values minted per engine (tokens, ids, times) are not compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

/// The frameworks are chosen per side below; this is the harness's default.
const FRAMEWORK: common::Framework = common::Framework::Axum;

#[path = "suite/common.rs"]
mod common;

use common::{Framework, TestApp};

const CASES: &str = include_str!("scenario.json");

#[derive(Deserialize)]
struct Cases {
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    method: String,
    path: String,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    raw_repeat: Option<Repeat>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    bearer: Option<String>,
    #[serde(default)]
    authorization: Option<String>,
    status: u16,
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message_excludes: Option<String>,
    /// Expected header values: `"*"` present with any value, `null` absent.
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    capture: BTreeMap<String, String>,
}

/// A body of `head`, `fill` repeated `times`, and `tail` (an oversized body, written
/// small).
#[derive(Deserialize)]
struct Repeat {
    head: String,
    fill: String,
    times: usize,
    tail: String,
}

/// One app under test: its engine and delivery, where it listens, and what the scenario
/// captured from it.
struct Side {
    name: &'static str,
    app: TestApp,
    base: String,
    captured: BTreeMap<String, String>,
}

/// What came back.
struct Seen {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Side {
    fn code(&self, from_mail: bool, to: &str) -> String {
        let code = if from_mail {
            let sent = self.app.mail.sent();
            let mail = sent.iter().rev().find(|m| m.to.as_str() == to);
            mail.and_then(|m| m.message.code.clone())
        } else {
            let sent = self.app.sms.sent();
            let text = sent.iter().rev().find(|m| m.to.as_str() == to);
            text.and_then(|m| m.message.code.clone())
        };
        let code = code.unwrap_or_else(|| panic!("{}: no code to {to}", self.name));
        code.secret().to_owned()
    }

    fn link_token(&self, to: &str) -> String {
        let sent = self.app.mail.sent();
        let link = sent
            .iter()
            .rev()
            .find(|m| m.to.as_str() == to)
            .and_then(|m| m.message.link.clone())
            .unwrap_or_else(|| panic!("{}: no link to {to}", self.name));
        let url = url::Url::parse(link.secret()).unwrap();
        let token = url.query_pairs().find(|(k, _)| k == "token").unwrap().1;
        token.into_owned()
    }

    /// `text` with its `{..}` placeholders filled from this side.
    fn fill(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|i| open + i) else {
                break;
            };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            let wrong =
                |code: String| if code == "000000" { "111111" } else { "000000" }.to_owned();
            let value = match name.split_once(':') {
                Some(("mail_code", to)) => self.code(true, to),
                Some(("wrong_mail_code", to)) => wrong(self.code(true, to)),
                Some(("sms_code", to)) => self.code(false, to),
                Some(("wrong_sms_code", to)) => wrong(self.code(false, to)),
                Some(("link_token", to)) => self.link_token(to),
                _ => self
                    .captured
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("{}: nothing captured as {name}", self.name)),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn fill_json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.fill(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.fill_json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.fill_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    async fn run(&mut self, client: &reqwest::Client, step: &Step) -> Seen {
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).unwrap();
        let url = format!("{}{}", self.base, self.fill(&step.path));
        let mut request = client.request(method, url);
        if let Some(bearer) = &step.bearer {
            request = request.bearer_auth(self.fill(bearer));
        }
        if let Some(value) = &step.authorization {
            request = request.header("authorization", value);
        }
        if let Some(json) = &step.json {
            request = request.json(&self.fill_json(json));
        }
        if let Some(raw) = &step.raw {
            request = request.body(raw.clone());
        }
        if let Some(r) = &step.raw_repeat {
            request = request.body(format!("{}{}{}", r.head, r.fill.repeat(r.times), r.tail));
        }
        if let Some(content_type) = &step.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {}: {e}", self.name, step.name));
        let status = response.status().as_u16();
        let mut headers = http::HeaderMap::new();
        for (name, value) in response.headers() {
            headers.append(
                http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        let bytes = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        for (name, field) in &step.capture {
            let value = body[field.as_str()]
                .as_str()
                .unwrap_or_else(|| panic!("{}: {}: no {field} in {body}", self.name, step.name));
            self.captured.insert(name.clone(), value.to_owned());
        }
        Seen {
            status,
            headers,
            body,
        }
    }
}

/// Every key path of `value` with the type found there (`items[].id: string`).
fn shape(value: &Value, at: &str, out: &mut BTreeSet<String>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(format!("{at}: {kind}"));
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                shape(inner, &format!("{at}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for inner in items {
                shape(inner, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

/// Keys whose values each app mints for itself (or words freely): replaced by their type.
const VOLATILE: &[&str] = &[
    "token",
    "refresh_token",
    "user_id",
    "request_id",
    "poll_token",
    "device_code",
    "auth_code",
    "mfa_token",
    "id",
    "session_id",
    "org_id",
    "created_at",
    "last_seen_at",
    "last_used_at",
    "expires_at",
    "session_expires_at",
    "expires_in",
    "at",
    "options",
    "code",
    "secret",
    "otpauth_uri",
    "qr_png_base64",
    "factor_id",
    "backup_codes",
    "message",
    "user_agent",
    "kid",
    "x",
];

/// `value` with every volatile key's value replaced by its type (an error's `code` is
/// not volatile: it is compared).
fn stable(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| {
                    let error_code = key == "code" && map.contains_key("message");
                    let kept = if VOLATILE.contains(&key.as_str()) && !error_code {
                        let mut kind = BTreeSet::new();
                        shape(inner, "", &mut kind);
                        Value::String(kind.into_iter().next().unwrap_or_default())
                    } else {
                        stable(inner)
                    };
                    (key.clone(), kept)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// The headers a client acts on, normalized: media type without parameters, `Allow` as a
/// set, `Retry-After` present or not.
fn client_headers(seen: &Seen) -> BTreeMap<&'static str, String> {
    let get = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut out = BTreeMap::new();
    let media = get("content-type").map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
    let allow = get("allow").map(|list| {
        let set: BTreeSet<String> = list.split(',').map(|m| m.trim().to_owned()).collect();
        set.into_iter().collect::<Vec<_>>().join(",")
    });
    let fields = [
        ("content-type", media),
        ("allow", allow),
        ("cache-control", get("cache-control")),
        ("www-authenticate", get("www-authenticate")),
        ("retry-after", get("retry-after").map(|_| "*".to_owned())),
        ("referrer-policy", get("referrer-policy")),
        ("x-content-type-options", get("x-content-type-options")),
        ("x-frame-options", get("x-frame-options")),
        ("pragma", get("pragma")),
    ];
    for (name, value) in fields {
        out.insert(name, value.unwrap_or_else(|| "(absent)".to_owned()));
    }
    out
}

#[actix_web::test]
async fn the_axum_and_actix_examples_answer_alike() {
    let cases: Cases = serde_json::from_str(CASES).unwrap();

    let axum_app = TestApp::new().on(Framework::Axum);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axum_addr = listener.local_addr().unwrap();
    let router = example_axum::app(axum_app.api.clone());
    let axum_server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });

    let actix_app = TestApp::new().on(Framework::Actix);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let actix_addr = listener.local_addr().unwrap();
    let api = actix_app.api.clone();
    let actix_server = actix_web::HttpServer::new(move || example_actix::app(api.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let actix_handle = actix_server.handle();
    actix_web::rt::spawn(actix_server);

    let mut sides = [
        Side {
            name: "axum",
            app: axum_app,
            base: format!("http://{axum_addr}"),
            captured: BTreeMap::new(),
        },
        Side {
            name: "actix",
            app: actix_app,
            base: format!("http://{actix_addr}"),
            captured: BTreeMap::new(),
        },
    ];
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for step in &cases.steps {
        let mut seen = Vec::new();
        for side in &mut sides {
            seen.push(side.run(&client, step).await);
        }
        let mut fail = |what: String| failures.push(format!("{}: {what}", step.name));
        for (side, answer) in sides.iter().zip(&seen) {
            if answer.status != step.status {
                fail(format!(
                    "{} answered {} (expected {}): {}",
                    side.name, answer.status, step.status, answer.body
                ));
            }
            if let Some(code) = &step.error {
                let found = answer.body["error"]["code"].as_str().unwrap_or("(none)");
                if found != code {
                    fail(format!("{} error code {found}, expected {code}", side.name));
                }
            }
            if let Some(keys) = &step.keys {
                let expected: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
                let found: BTreeSet<&str> = answer
                    .body
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                if found != expected {
                    fail(format!(
                        "{} keys {found:?}, expected {expected:?}",
                        side.name
                    ));
                }
            }
            if let Some(secret) = &step.message_excludes
                && answer.body.to_string().contains(secret.as_str())
            {
                fail(format!("{} echoed {secret}: {}", side.name, answer.body));
            }
            let headers = client_headers(answer);
            for (name, expected) in &step.headers {
                let found = answer
                    .headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok());
                let ok = match (expected.as_deref(), found) {
                    (None, None) => true,
                    (Some("*"), Some(_)) => true,
                    (Some(want), Some(_)) => headers
                        .get(name.as_str())
                        .is_some_and(|have| have == want || found == Some(want)),
                    _ => false,
                };
                if !ok {
                    fail(format!(
                        "{} header {name}: {found:?}, expected {expected:?}",
                        side.name
                    ));
                }
            }
        }
        let (axum, actix) = (&seen[0], &seen[1]);
        let (mut axum_shape, mut actix_shape) = (BTreeSet::new(), BTreeSet::new());
        shape(&axum.body, "", &mut axum_shape);
        shape(&actix.body, "", &mut actix_shape);
        if axum_shape != actix_shape {
            let only_axum: Vec<_> = axum_shape.difference(&actix_shape).collect();
            let only_actix: Vec<_> = actix_shape.difference(&axum_shape).collect();
            fail(format!(
                "shapes differ: only axum {only_axum:?}, only actix {only_actix:?}"
            ));
        }
        // Beyond shapes, every value that is not minted per app (tokens, ids, codes,
        // times, free-text messages) must be equal: statuses of links, amr, acr, flags…
        let (axum_stable, actix_stable) = (stable(&axum.body), stable(&actix.body));
        if axum_stable != actix_stable {
            fail(format!(
                "values differ: axum {axum_stable}, actix {actix_stable}"
            ));
        }
        let (axum_headers, actix_headers) = (client_headers(axum), client_headers(actix));
        if axum_headers != actix_headers {
            fail(format!(
                "headers differ: axum {axum_headers:?}, actix {actix_headers:?}"
            ));
        }
    }
    actix_handle.stop(true).await;
    axum_server.abort();
    assert!(
        failures.is_empty(),
        "{} of {} steps differ:\n{}",
        failures.len(),
        cases.steps.len(),
        failures.join("\n")
    );
    assert!(cases.steps.len() >= 50);
}
