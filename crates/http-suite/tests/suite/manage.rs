//! The management API a dashboard needs: API credentials, members, a user's sessions, the
//! login log with filters and export, message templates with a preview. Each as an
//! organization's administrator (a signed-in user holding a role there), as another
//! organization's, and as the installation's.

use super::common::{ADMIN_KEY, ADMIN_PERMISSIONS, Answer, TestApp, assert_error};
use http::StatusCode;
use portcullis::{OrgId, RequestContext, RoleSpec};
use serde_json::{Value, json};

fn items(answer: &Answer) -> &Vec<Value> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["items"].as_array().unwrap()
}

/// Two organizations, each with an app and an administrator signed in through it, and a
/// plain member of the first.
pub struct Tenants {
    pub test: TestApp,
    pub a: OrgId,
    pub b: OrgId,
    pub client_a: String,
    pub client_b: String,
    /// Ann administers A (a user token in A).
    pub admin_a: String,
    /// Bea administers B.
    pub admin_b: String,
    /// Max is a member of A without permissions.
    pub member: String,
    pub member_id: String,
}

impl Tenants {
    pub async fn new() -> Self {
        Self::on(TestApp::relaxed()).await
    }

    pub async fn on(test: TestApp) -> Self {
        let org = |slug: &'static str| {
            let mut new = portcullis::NewOrg::new(slug.to_uppercase(), slug);
            new.domains = Vec::new();
            new
        };
        let a = test.auth.orgs().create(org("acme")).await.unwrap().id;
        let b = test.auth.orgs().create(org("bolt")).await.unwrap().id;
        let client_a = test.app_in(a, "https://acme.example/cb").await;
        let client_b = test.app_in(b, "https://bolt.example/cb").await;
        let admin_a = admin_in(&test, a, &client_a, "ann@acme.example").await;
        let admin_b = admin_in(&test, b, &client_b, "bea@bolt.example").await;
        let member = member_in(&test, a, &client_a, "max@acme.example", &[]).await;
        let member_id = test.status_of(&member).await.str("user_id");
        Tenants {
            test,
            a,
            b,
            client_a,
            client_b,
            admin_a,
            admin_b,
            member,
            member_id,
        }
    }
}

/// Signs `email` in through `client` as a member of `org` holding `permissions` there.
pub async fn member_in(
    test: &TestApp,
    org: OrgId,
    client: &str,
    email: &str,
    permissions: &[&str],
) -> String {
    let first = test.token_via(email, Some(client)).await;
    let user = test.status_of(&first).await.str("user_id").parse().unwrap();
    let mut roles = Vec::new();
    let rbac = test.auth.rbac();
    for name in ADMIN_PERMISSIONS {
        match rbac.define_permission(org, name, None).await {
            Ok(_) | Err(portcullis::Error::Conflict { .. }) => {}
            Err(err) => panic!("{err}"),
        }
    }
    if !permissions.is_empty() {
        let spec = RoleSpec::new(format!("role-{}", roles_seq()), permissions);
        roles.push(test.auth.rbac().create_role(org, &spec).await.unwrap().id);
    }
    test.auth
        .rbac()
        .add_member(user, org, &roles, &RequestContext::new())
        .await
        .unwrap();
    // A new sign-in: the token carries the roles.
    test.token_via(email, Some(client)).await
}

fn roles_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn admin_in(test: &TestApp, org: OrgId, client: &str, email: &str) -> String {
    member_in(test, org, client, email, &ADMIN_PERMISSIONS).await
}

/// ADM-08: an API credential's secret is shown once, lists never show it, it works at
/// once in its organization only, and stops at once when revoked. ADM-02: it holds no
/// permission its maker lacks.
#[tokio::test]
async fn adm08_api_credentials_are_shown_once_scoped_and_revoked_at_once() {
    let t = Tenants::new().await;
    let test = &t.test;
    let keys = format!("/api/v1/organizations/{}/api-keys", t.a);
    let made = test
        .post(
            &keys,
            json!({"name": "billing sync", "scopes": ["users:read"]}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let secret = made.str("secret");
    assert!(secret.starts_with("lk_") && secret.len() >= 46, "{secret}");
    assert_eq!(made.body["scopes"], json!(["users:read"]));
    let listed = test.get(&keys, Some(&t.admin_a)).await;
    assert_eq!(items(&listed).len(), 1);
    assert!(items(&listed)[0].get("secret").is_none(), "{}", listed.body);
    assert!(
        !listed
            .bytes
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );

    // It reads A's members, and nothing of B's or beyond its scope.
    let members = test
        .get(
            &format!("/api/v1/organizations/{}/members", t.a),
            Some(&secret),
        )
        .await;
    assert_eq!(items(&members).len(), 2, "{}", members.body);
    let theirs = test
        .get(
            &format!("/api/v1/organizations/{}/members", t.b),
            Some(&secret),
        )
        .await;
    assert_error(&theirs, StatusCode::FORBIDDEN, "forbidden");
    let write = test
        .delete(
            &format!("/api/v1/organizations/{}/members/{}", t.a, t.member_id),
            Some(&secret),
        )
        .await;
    assert_error(&write, StatusCode::FORBIDDEN, "forbidden");

    // No key wider than its maker: a member who may make keys but not write users.
    let keymaster = member_in(
        test,
        t.a,
        &t.client_a,
        "kim@acme.example",
        &["api_keys:*", "users:read"],
    )
    .await;
    for scopes in [
        json!(["users:write"]),
        json!(["users:*"]),
        json!(["users:read", "roles:write"]),
    ] {
        let wider = test
            .post(
                &keys,
                json!({"name": "wider", "scopes": scopes}),
                Some(&keymaster),
            )
            .await;
        assert_error(&wider, StatusCode::FORBIDDEN, "forbidden");
    }
    let narrow = test
        .post(
            &keys,
            json!({"name": "narrow", "scopes": ["users:read"]}),
            Some(&keymaster),
        )
        .await;
    assert_eq!(narrow.status, StatusCode::CREATED, "{}", narrow.body);
    // A member holding nothing, and another organization's administrator, make none.
    for (caller, status) in [
        (&t.member, StatusCode::FORBIDDEN),
        (&t.admin_b, StatusCode::FORBIDDEN),
    ] {
        let refused = test
            .post(&keys, json!({"name": "x", "scopes": []}), Some(caller))
            .await;
        assert_error(&refused, status, "forbidden");
        let refused = test.get(&keys, Some(caller)).await;
        assert_error(&refused, status, "forbidden");
    }
    assert_eq!(items(&test.get(&keys, Some(ADMIN_KEY)).await).len(), 2);

    // Revoked: refused on its very next call; another organization cannot revoke it.
    let id = made.str("id");
    let elsewhere = test
        .delete(
            &format!("/api/v1/organizations/{}/api-keys/{id}", t.b),
            Some(&t.admin_b),
        )
        .await;
    assert_error(&elsewhere, StatusCode::NOT_FOUND, "not_found");
    let revoked = test.delete(&format!("{keys}/{id}"), Some(&t.admin_a)).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let after = test
        .get(
            &format!("/api/v1/organizations/{}/members", t.a),
            Some(&secret),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.body);
    let listed = test.get(&keys, Some(&t.admin_a)).await;
    let entry = items(&listed)
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(entry["revoked_at"].is_i64(), "{entry}");
    let again = test.delete(&format!("{keys}/{id}"), Some(&t.admin_a)).await;
    assert_eq!(
        again.status,
        StatusCode::NO_CONTENT,
        "revoking twice is harmless"
    );
    let short = test
        .post(
            &keys,
            json!({"name": "s", "scopes": [], "expires_in": 5}),
            Some(&t.admin_a),
        )
        .await;
    assert_error(&short, StatusCode::BAD_REQUEST, "invalid_input");
}

/// An organization's members with their roles; removing one ends their sessions there,
/// and another organization's administrator can do neither.
#[tokio::test]
async fn members_are_listed_and_removed_by_their_organizations_administrators_only() {
    let t = Tenants::new().await;
    let test = &t.test;
    let members = format!("/api/v1/organizations/{}/members", t.a);
    let listed = test.get(&members, Some(&t.admin_a)).await;
    let emails: Vec<&str> = items(&listed)
        .iter()
        .map(|m| m["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ann@acme.example", "max@acme.example"]);
    assert_eq!(items(&listed)[0]["roles"].as_array().unwrap().len(), 1);
    assert!(items(&listed)[1]["roles"].as_array().unwrap().is_empty());
    let page = test
        .get(&format!("{members}?limit=1"), Some(&t.admin_a))
        .await;
    assert_eq!(items(&page).len(), 1);
    assert!(page.body["next_cursor"].is_string());

    let member = format!("{members}/{}", t.member_id);
    let theirs = test.get(&members, Some(&t.admin_b)).await;
    assert_error(&theirs, StatusCode::FORBIDDEN, "forbidden");
    let theirs = test.delete(&member, Some(&t.admin_b)).await;
    assert_error(&theirs, StatusCode::FORBIDDEN, "forbidden");
    let own = test.delete(&member, Some(&t.member)).await;
    assert_error(&own, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(test.status_of(&t.member).await.status, StatusCode::OK);

    let removed = test.delete(&member, Some(&t.admin_a)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    assert_eq!(
        test.status_of(&t.member).await.status,
        StatusCode::UNAUTHORIZED,
        "the session in the organization ended"
    );
    assert_eq!(items(&test.get(&members, Some(&t.admin_a)).await).len(), 1);
    let twice = test.delete(&member, Some(&t.admin_a)).await;
    assert_error(&twice, StatusCode::NOT_FOUND, "not_found");
}

/// "Sign out everywhere" and one session at a time: the installation's administrators
/// reach every session of a user; an organization's, only the sessions in their
/// organization of its own members.
#[tokio::test]
async fn a_users_sessions_are_listed_and_ended_within_the_callers_reach() {
    let t = Tenants::new().await;
    let test = &t.test;
    // Max also signs in in the default organization.
    let default_session = test.token_via("max@acme.example", None).await;
    let sessions = format!("/api/v1/users/{}/sessions", t.member_id);

    let all = test.get(&sessions, Some(ADMIN_KEY)).await;
    assert_eq!(items(&all).len(), 3, "{}", all.body);
    let in_a = test.get(&sessions, Some(&t.admin_a)).await;
    let a_text = t.a.to_string();
    assert_eq!(items(&in_a).len(), 2, "{}", in_a.body);
    assert!(items(&in_a).iter().all(|s| s["org_id"] == a_text.as_str()));
    // B's administrator: Max is no member of B, so no such user for them.
    let not_theirs = test.get(&sessions, Some(&t.admin_b)).await;
    assert_error(&not_theirs, StatusCode::NOT_FOUND, "not_found");
    let plain = test.get(&sessions, Some(&t.member)).await;
    assert_error(&plain, StatusCode::FORBIDDEN, "forbidden");

    // A's administrator cannot end Max's session in the default organization.
    let outside = items(&all)
        .iter()
        .find(|s| s["org_id"] != a_text.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = test
        .delete(&format!("{sessions}/{outside}"), Some(&t.admin_a))
        .await;
    assert_error(&refused, StatusCode::NOT_FOUND, "not_found");
    let one = items(&in_a)[0]["id"].as_str().unwrap().to_owned();
    let ended = test
        .delete(&format!("{sessions}/{one}"), Some(&t.admin_a))
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    let everywhere_in_a = test.delete(&sessions, Some(&t.admin_a)).await;
    assert_eq!(
        everywhere_in_a.body["revoked"], 1,
        "{}",
        everywhere_in_a.body
    );
    assert_eq!(
        test.status_of(&t.member).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        test.status_of(&default_session).await.status,
        StatusCode::OK
    );

    // The installation signs Max out everywhere.
    let everywhere = test.delete(&sessions, Some(ADMIN_KEY)).await;
    assert_eq!(everywhere.body["revoked"], 1, "{}", everywhere.body);
    assert_eq!(
        test.status_of(&default_session).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(items(&test.get(&sessions, Some(ADMIN_KEY)).await).is_empty());
}

/// The login log for administrators: an organization's own events only, filtered by kind,
/// user, address and time, paged, and exported as JSON Lines. ADM-11: another
/// organization's events never appear.
#[tokio::test]
async fn adm11_the_login_log_is_filtered_paged_and_exported_per_organization() {
    let t = Tenants::new().await;
    let test = &t.test;
    // A failed sign-in in A from one address, and one in B.
    let peer: std::net::SocketAddr = "192.0.2.44:5000".parse().unwrap();
    for (client, email) in [
        (&t.client_a, "max@acme.example"),
        (&t.client_b, "bea@bolt.example"),
    ] {
        test.advance(test.auth.config().limits.send_cooldown);
        let post = |path: String, body: Value| async move {
            test.call_with(http::Method::POST, &path, Some(body), None, &[], Some(peer))
                .await
        };
        let sent = post(
            format!("/api/v1/auth/passwordless/email-code?client_id={client}"),
            json!({"email": email}),
        )
        .await;
        let wrong = post(
            format!("/api/v1/auth/passwordless/email-code/verify?client_id={client}"),
            json!({"request_id": sent.str("request_id"), "code": "000000"}),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    }
    let logs = format!("/api/v1/organizations/{}/login-logs", t.a);
    let all = test
        .get(&format!("{logs}?limit=100"), Some(&t.admin_a))
        .await;
    let a_text = t.a.to_string();
    assert!(items(&all).len() >= 6, "{}", all.body);
    assert!(items(&all).iter().all(|e| e["org_id"] == a_text.as_str()));
    let ats: Vec<i64> = items(&all)
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let failed = test
        .get(&format!("{logs}?kind=sign_in_failed"), Some(&t.admin_a))
        .await;
    assert_eq!(items(&failed).len(), 1, "{}", failed.body);
    assert_eq!(items(&failed)[0]["ip"], "192.0.2.44");
    let by_user = test
        .get(
            &format!("{logs}?user_id={}&kind=sign_in,sign_in_failed", t.member_id),
            Some(&t.admin_a),
        )
        .await;
    assert!(
        items(&by_user)
            .iter()
            .all(|e| e["user_id"] == t.member_id.as_str())
    );
    assert_eq!(items(&by_user).len(), 2, "{}", by_user.body);
    let from = test
        .get(&format!("{logs}?ip=192.0.2.44"), Some(&t.admin_a))
        .await;
    let kinds: Vec<&str> = items(&from)
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["sign_in_failed", "ceremony_started"],
        "{}",
        from.body
    );
    let nowhere = test
        .get(&format!("{logs}?ip=203.0.113.77"), Some(&t.admin_a))
        .await;
    assert!(items(&nowhere).is_empty());
    let newest = ats[0];
    let window = test
        .get(
            &format!("{logs}?since={newest}&until={}", newest + 1),
            Some(&t.admin_a),
        )
        .await;
    assert!(!items(&window).is_empty());
    assert!(items(&window).iter().all(|e| e["at"] == newest));
    for bad in [
        "kind=nonsense",
        "user_id=nobody",
        "ip=999.1.1.1",
        "since=-5",
        "limit=0",
    ] {
        let refused = test.get(&format!("{logs}?{bad}"), Some(&t.admin_a)).await;
        assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    }

    // Paged: the pages together are the whole log, once each.
    let mut paged = Vec::new();
    let mut next = Some(format!("{logs}?limit=2"));
    while let Some(url) = next {
        let page = test.get(&url, Some(&t.admin_a)).await;
        paged.extend(items(&page).iter().map(|e| e["id"].clone()));
        next = page.body["next_cursor"]
            .as_str()
            .map(|c| format!("{logs}?limit=2&cursor={c}"));
    }
    let whole: Vec<Value> = items(&all).iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, whole);

    // JSON Lines: one event per line, the same events.
    let export = test.get(&format!("{logs}/export"), Some(&t.admin_a)).await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    assert!(export.header("next-cursor").is_none());
    let text = String::from_utf8(export.bytes.clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(),
        whole
    );

    // Another organization's administrator, a plain member: refused; the installation
    // sees every organization's events.
    for caller in [&t.admin_b, &t.member] {
        assert_error(
            &test.get(&logs, Some(caller)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let export = test.get(&format!("{logs}/export"), Some(caller)).await;
        assert_error(&export, StatusCode::FORBIDDEN, "forbidden");
        assert_error(
            &test.get("/api/v1/login-logs", Some(caller)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let everything = test
        .get("/api/v1/login-logs?kind=sign_in_failed", Some(ADMIN_KEY))
        .await;
    let orgs: Vec<&str> = items(&everything)
        .iter()
        .map(|e| e["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, [t.b.to_string().as_str(), a_text.as_str()]);
}

/// Message templates: saved per kind and language, previewed before saving with a
/// sample code and the organization's branding, refused when they could carry a link off
/// (ADM-07); another organization's administrator reaches none of it.
#[tokio::test]
async fn adm07_templates_are_saved_previewed_and_kept_to_words() {
    let t = Tenants::new().await;
    let test = &t.test;
    let base = format!("/api/v1/organizations/{}/templates", t.a);
    let empty = test.get(&base, Some(&t.admin_a)).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["items"], json!([]));
    assert!(
        empty.body["kinds"]
            .as_array()
            .unwrap()
            .contains(&json!("email_code"))
    );

    let wording =
        json!({"subject": "Your Acme code", "intro": "Hello <b>{{recipient}}</b>, your code:"});
    let preview = test
        .post(
            &format!("{base}/email_code/preview"),
            wording.clone(),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.str("subject"), "Your Acme code");
    assert!(preview.str("text").contains("123456"), "{}", preview.body);
    let html = preview.str("html");
    assert!(
        html.contains("Hello &lt;b&gt;jane.doe@example.com&lt;/b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "markup in wording stays text");
    // The preview saved nothing and sent nothing.
    assert_eq!(
        test.get(&base, Some(&t.admin_a)).await.body["items"],
        json!([])
    );

    let saved = test
        .put(
            &format!("{base}/email_code?locale=de"),
            wording.clone(),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["items"][0]["locale"], "de");
    assert_eq!(saved.body["items"][0]["subject"], "Your Acme code");
    let replaced = test
        .put(
            &format!("{base}/email_code?locale=de"),
            json!({"subject": "Ihr Acme-Code"}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(replaced.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(replaced.body["items"][0]["subject"], "Ihr Acme-Code");

    // A sign-in in A in German gets it.
    test.advance(test.auth.config().limits.send_cooldown);
    let sent = test
        .call_with(
            http::Method::POST,
            &format!(
                "/api/v1/auth/passwordless/email-code?client_id={}",
                t.client_a
            ),
            Some(json!({"email": "max@acme.example"})),
            None,
            &[("accept-language", "de")],
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let mail = test.mail.last().unwrap();
    assert_eq!(mail.to.as_str(), "max@acme.example");
    assert_eq!(mail.subject, "Ihr Acme-Code");

    // Words only: a URL, a secret placeholder, a header break are refused.
    for bad in [
        json!({"intro": "Click https://evil.example/steal"}),
        json!({"intro": "Your code is {{code}}"}),
        json!({"subject": "Hi\r\nBcc: all@example.com"}),
        json!({"template": "{{#each}}"}),
    ] {
        let refused = test
            .put(&format!("{base}/magic_link"), bad.clone(), Some(&t.admin_a))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.body
        );
        let preview = test
            .post(
                &format!("{base}/magic_link/preview"),
                bad.clone(),
                Some(&t.admin_a),
            )
            .await;
        assert_eq!(
            preview.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            preview.body
        );
    }
    // A magic link's preview links to the installation's own origin, whatever the wording.
    let link = test
        .post(
            &format!("{base}/magic_link/preview"),
            json!({"button": "Go"}),
            Some(&t.admin_a),
        )
        .await;
    let origin = test.auth.config().public_origin.clone();
    assert!(
        link.str("text").contains(&format!("{origin}/preview")),
        "{}",
        link.body
    );
    let unknown = test
        .put(
            &format!("{base}/carrier_pigeon"),
            json!({}),
            Some(&t.admin_a),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_input");

    for caller in [&t.admin_b, &t.member] {
        assert_error(
            &test.get(&base, Some(caller)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let put = test
            .put(&format!("{base}/email_code"), json!({}), Some(caller))
            .await;
        assert_error(&put, StatusCode::FORBIDDEN, "forbidden");
        let preview = test
            .post(
                &format!("{base}/email_code/preview"),
                json!({}),
                Some(caller),
            )
            .await;
        assert_error(&preview, StatusCode::FORBIDDEN, "forbidden");
    }
    let removed = test
        .delete(&format!("{base}/email_code?locale=de"), Some(&t.admin_a))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let gone = test
        .delete(&format!("{base}/email_code?locale=de"), Some(&t.admin_a))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
}

/// The dashboard's user page for an organization's administrators: one member's account,
/// roles and factors; blocking a member who belongs to their organization alone, and not
/// one who also belongs to another organization.
#[tokio::test]
async fn a_member_is_shown_and_blocked_by_their_own_organizations_administrators() {
    let t = Tenants::new().await;
    let test = &t.test;
    let member = format!("/api/v1/organizations/{}/members/{}", t.a, t.member_id);
    let detail = test.get(&member, Some(&t.admin_a)).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(detail.body["user"]["email"], "max@acme.example");
    assert_eq!(detail.body["status"]["blocked"], false);
    assert_eq!(detail.body["sole_organization"], true);
    let theirs = test.get(&member, Some(&t.admin_b)).await;
    assert_error(&theirs, StatusCode::FORBIDDEN, "forbidden");

    let blocked = test
        .put(
            &format!("{member}/blocked"),
            json!({"blocked": true}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::NO_CONTENT, "{}", blocked.body);
    assert_eq!(
        test.status_of(&t.member).await.status,
        StatusCode::UNAUTHORIZED
    );
    let detail = test.get(&member, Some(&t.admin_a)).await;
    assert_eq!(detail.body["status"]["blocked"], true);
    test.advance(test.auth.config().limits.send_cooldown);
    let sent = test
        .post(
            &format!(
                "/api/v1/auth/passwordless/email-code?client_id={}",
                t.client_a
            ),
            json!({"email": "max@acme.example"}),
            None,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let refused = test
        .post(
            &format!("/api/v1/auth/passwordless/email-code/verify?client_id={}", t.client_a),
            json!({"request_id": sent.str("request_id"), "code": test.last_email_code("max@acme.example")}),
            None,
        )
        .await;
    assert!(
        refused.status.is_client_error(),
        "a blocked account signs in: {}",
        refused.body
    );
    let lifted = test
        .put(
            &format!("{member}/blocked"),
            json!({"blocked": false}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT);

    // Bea administers B; the installation makes her a member of A too.
    let bea = test.status_of(&t.admin_b).await.str("user_id");
    let joined = test
        .put(
            &format!("/api/v1/users/{bea}/organizations/{}/roles", t.a),
            json!({"roles": []}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let shared = format!("/api/v1/organizations/{}/members/{bea}", t.a);
    assert_eq!(
        test.get(&shared, Some(&t.admin_a)).await.body["sole_organization"],
        false
    );
    let refused = test
        .put(
            &format!("{shared}/blocked"),
            json!({"blocked": true}),
            Some(&t.admin_a),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        test.status_of(&t.admin_b).await.status,
        StatusCode::OK,
        "Bea is not blocked"
    );
    let by_installation = test
        .put(
            &format!("{shared}/blocked"),
            json!({"blocked": true}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(by_installation.status, StatusCode::NO_CONTENT);
    // Not a member of A: no such user for A's administrators.
    let stranger = test
        .status_of(&test.token_via("zed@example.com", None).await)
        .await
        .str("user_id");
    let unknown = test
        .get(
            &format!("/api/v1/organizations/{}/members/{stranger}", t.a),
            Some(&t.admin_a),
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
}
