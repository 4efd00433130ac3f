//! The management routes through the whole app: organizations, permissions, roles and
//! users, with each kind of caller (bootstrap key, API key, user token with and without
//! the permission, nobody), and the public configuration routes.

use std::collections::HashSet;

use super::common::{ADMIN_KEY, Answer, TestApp, assert_error};
use http::StatusCode;
use portcullis::directory::NewApiKey;
use serde_json::{Value, json};

fn items(answer: &Answer) -> &Vec<Value> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["items"].as_array().unwrap()
}

async fn create_org(test: &TestApp, body: Value) -> Answer {
    let created = test
        .post("/api/v1/organizations", body, Some(ADMIN_KEY))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created
}

async fn create_user(test: &TestApp, email: &str) -> String {
    let created = test
        .post("/api/v1/users", json!({"email": email}), Some(ADMIN_KEY))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.str("id")
}

#[tokio::test]
async fn organizations_crud_and_public_config() {
    let test = TestApp::new();
    let anonymous = test
        .post(
            "/api/v1/organizations",
            json!({"name": "X", "slug": "x"}),
            None,
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let wrong_key = test
        .get(
            "/api/v1/organizations",
            Some("test-admin-key-but-not-the-right-one"),
        )
        .await;
    assert_eq!(
        wrong_key.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        wrong_key.body
    );

    let created = create_org(
        &test,
        json!({
            "name": "Globex",
            "slug": "globex",
            "domains": ["login.globex.test"],
            "settings": {"branding": {"display_name": "Globex Login", "primary_color": "#112233"}},
        }),
    )
    .await;
    let id = created.str("id");
    assert_eq!(created.body["name"], "Globex");
    assert_eq!(created.body["slug"], "globex");
    assert_eq!(created.body["domains"], json!(["login.globex.test"]));
    let bad_slug = test
        .post(
            "/api/v1/organizations",
            json!({"name": "Bad", "slug": "Not A Slug!"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&bad_slug, StatusCode::BAD_REQUEST, "invalid_input");
    let taken = test
        .post(
            "/api/v1/organizations",
            json!({"name": "Again", "slug": "globex"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&taken, StatusCode::CONFLICT, "conflict");

    // List, one page at a time (the default organization is made on first use).
    let default = test.default_org().await;
    let all = test.get("/api/v1/organizations", Some(ADMIN_KEY)).await;
    let slugs: HashSet<&str> = items(&all)
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, HashSet::from(["default", "globex"]));
    assert!(
        items(&all)
            .iter()
            .any(|o| o["id"] == default.to_string().as_str())
    );
    assert_eq!(all.body["next_cursor"], Value::Null);
    let page = test
        .get("/api/v1/organizations?limit=1", Some(ADMIN_KEY))
        .await;
    assert_eq!(items(&page).len(), 1);
    let cursor = page.str("next_cursor");
    let rest = test
        .get(
            &format!("/api/v1/organizations?limit=1&cursor={cursor}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(items(&rest).len(), 1);
    assert_ne!(items(&rest)[0]["id"], items(&page)[0]["id"]);

    let got = test
        .get(&format!("/api/v1/organizations/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["slug"], "globex");
    let patched = test
        .patch(
            &format!("/api/v1/organizations/{id}"),
            json!({"name": "Globex Corp"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["name"], "Globex Corp");
    assert_eq!(patched.body["slug"], "globex");
    let bad_id = test
        .get("/api/v1/organizations/not-an-id", Some(ADMIN_KEY))
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");

    // Public configuration: by custom domain and by app, without credentials.
    let by_domain = test
        .get(
            "/api/v1/organizations/by-domain/login.globex.test/config",
            None,
        )
        .await;
    assert_eq!(by_domain.status, StatusCode::OK, "{}", by_domain.body);
    assert_eq!(by_domain.body["org_id"], id.as_str());
    assert_eq!(by_domain.body["slug"], "globex");
    assert_eq!(by_domain.body["branding"]["display_name"], "Globex Login");
    assert_eq!(by_domain.body["branding"]["primary_color"], "#112233");
    assert_eq!(by_domain.body["mfa"], "optional");
    assert_eq!(by_domain.body["sign_in_methods"]["passkey"], true);
    assert_eq!(by_domain.body["client_id"], Value::Null);
    let client = test
        .app_in(id.parse().unwrap(), "https://globex.example.com/cb")
        .await;
    let by_client = test
        .get(
            &format!("/api/v1/organizations/by-client-id/{client}/config"),
            None,
        )
        .await;
    assert_eq!(by_client.status, StatusCode::OK, "{}", by_client.body);
    assert_eq!(by_client.body["client_id"], client.as_str());
    assert_eq!(by_client.body["org_id"], id.as_str());
    assert_eq!(by_client.body["name"], "Globex Login");
    let unknown = test
        .get("/api/v1/organizations/by-client-id/app_nope/config", None)
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let unknown = test
        .get("/api/v1/organizations/by-domain/nowhere.test/config", None)
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    // Delete.
    let deleted = test
        .delete(&format!("/api/v1/organizations/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = test
        .get(&format!("/api/v1/organizations/{id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let gone = test
        .get(
            "/api/v1/organizations/by-domain/login.globex.test/config",
            None,
        )
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn permissions_and_roles_crud() {
    let test = TestApp::new();
    let org = create_org(&test, json!({"name": "Initech", "slug": "initech"}))
        .await
        .str("id");
    let perms = format!("/api/v1/organizations/{org}/permissions");
    let roles = format!("/api/v1/organizations/{org}/roles");

    let perm = test
        .post(
            &perms,
            json!({"name": "invoices:read", "description": "Read invoices"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(perm.status, StatusCode::CREATED, "{}", perm.body);
    assert_eq!(perm.body["name"], "invoices:read");
    assert_eq!(perm.body["description"], "Read invoices");
    assert_eq!(perm.body["org_id"], org.as_str());
    let perm_id = perm.str("id");
    let bad = test
        .post(&perms, json!({"name": "invoices"}), Some(ADMIN_KEY))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
    let list = test.get(&perms, Some(ADMIN_KEY)).await;
    assert_eq!(items(&list).len(), 1);
    assert_eq!(items(&list)[0]["id"], perm_id.as_str());

    let described = test
        .patch(
            &format!("{perms}/{perm_id}"),
            json!({"description": "Read every invoice"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.body);
    assert_eq!(described.body["description"], "Read every invoice");
    let cleared = test
        .patch(
            &format!("{perms}/{perm_id}"),
            json!({"description": null}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["description"], Value::Null);

    // Roles name defined permissions only.
    let undefined = test
        .post(
            &roles,
            json!({"name": "payroll", "permissions": ["payroll:read"]}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&undefined, StatusCode::BAD_REQUEST, "invalid_input");
    let role = test
        .post(
            &roles,
            json!({"name": "billing", "description": "Billing team", "permissions": ["invoices:read"]}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    assert_eq!(role.body["permissions"], json!(["invoices:read"]));
    let role_id = role.str("id");
    let twice = test
        .post(&roles, json!({"name": "billing"}), Some(ADMIN_KEY))
        .await;
    assert_error(&twice, StatusCode::CONFLICT, "conflict");
    let list = test.get(&roles, Some(ADMIN_KEY)).await;
    assert_eq!(items(&list).len(), 1);
    assert_eq!(items(&list)[0]["name"], "billing");

    let renamed = test
        .patch(
            &format!("{roles}/{role_id}"),
            json!({"name": "billing-admin"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "billing-admin");
    assert_eq!(renamed.body["description"], "Billing team");
    assert_eq!(renamed.body["permissions"], json!(["invoices:read"]));
    let emptied = test
        .patch(
            &format!("{roles}/{role_id}"),
            json!({"permissions": []}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(emptied.body["permissions"], json!([]));
    assert_eq!(emptied.body["name"], "billing-admin");

    let deleted = test
        .delete(&format!("{roles}/{role_id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(items(&test.get(&roles, Some(ADMIN_KEY)).await).len(), 0);
    let again = test
        .delete(&format!("{roles}/{role_id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
    let missing = test
        .patch(
            &format!("{roles}/{role_id}"),
            json!({"name": "x"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    let deleted = test
        .delete(&format!("{perms}/{perm_id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(items(&test.get(&perms, Some(ADMIN_KEY)).await).len(), 0);
    let again = test
        .delete(&format!("{perms}/{perm_id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn users_crud_block_and_cascade() {
    let test = TestApp::relaxed();
    let created = test
        .post(
            "/api/v1/users",
            json!({"email": "uma@example.com", "name": "Uma", "metadata": {"plan": "pro"}}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.str("id");
    assert_eq!(created.body["email"], "uma@example.com");
    assert_eq!(created.body["name"], "Uma");
    assert_eq!(created.body["metadata"], json!({"plan": "pro"}));
    assert_eq!(created.body["has_password"], false);
    assert_eq!(created.body["blocked"], false);
    assert_eq!(created.body["email_verified"], false);
    assert!(created.body.get("password_hash").is_none());
    let twice = test
        .post(
            "/api/v1/users",
            json!({"email": "uma@example.com"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&twice, StatusCode::CONFLICT, "conflict");
    let bad = test
        .post(
            "/api/v1/users",
            json!({"email": "not an email"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");

    let got = test
        .get(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["name"], "Uma");
    let by_email = test
        .get("/api/v1/users/by-email/uma@example.com", Some(ADMIN_KEY))
        .await;
    assert_eq!(by_email.status, StatusCode::OK, "{}", by_email.body);
    assert_eq!(by_email.body["id"], id.as_str());
    let nobody = test
        .get("/api/v1/users/by-email/nobody@example.com", Some(ADMIN_KEY))
        .await;
    assert_error(&nobody, StatusCode::NOT_FOUND, "not_found");

    // The account signs in; then `null` clears the name and `blocked` ends it.
    let token = test.token_via("uma@example.com", None).await;
    let patched = test
        .patch(
            &format!("/api/v1/users/{id}"),
            json!({"name": null, "blocked": true}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["name"], Value::Null);
    assert_eq!(patched.body["blocked"], true);
    assert_eq!(patched.body["email"], "uma@example.com");
    assert_eq!(patched.body["metadata"], json!({"plan": "pro"}));
    assert_eq!(
        test.status_of(&token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refused = test.sign_in_via("uma@example.com", None).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let status = test
        .get(&format!("/api/v1/users/{id}/status"), Some(ADMIN_KEY))
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["blocked"], true);
    assert_eq!(status.body["email_verified"], true, "signing in proved it");
    assert_eq!(status.body["password"], false);
    assert_eq!(status.body["totp"], false);
    assert_eq!(status.body["passkeys"], 0);

    let unblocked = test
        .patch(
            &format!("/api/v1/users/{id}"),
            json!({"blocked": false, "metadata": {"plan": "free"}}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(unblocked.body["blocked"], false);
    assert_eq!(unblocked.body["metadata"], json!({"plan": "free"}));
    let token = test.token_via("uma@example.com", None).await;

    // Deleting cascades: the account, its sessions, its address.
    let deleted = test
        .delete(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = test
        .get(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let gone = test
        .get("/api/v1/users/by-email/uma@example.com", Some(ADMIN_KEY))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        test.status_of(&token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = test
        .delete(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
    let bad_id = test.get("/api/v1/users/42", Some(ADMIN_KEY)).await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn users_paging_and_email_filter() {
    let test = TestApp::new();
    let mut ids = HashSet::new();
    for email in [
        "amy@example.com",
        "ann@example.com",
        "bob@example.com",
        "bea@example.org",
    ] {
        ids.insert(create_user(&test, email).await);
    }

    // limit=1: four pages, each user once, then no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=1&cursor={c}"),
            None => "/api/v1/users?limit=1".to_owned(),
        };
        let page = test.get(&path, Some(ADMIN_KEY)).await;
        assert_eq!(items(&page).len(), 1, "{}", page.body);
        seen.push(items(&page)[0]["id"].as_str().unwrap().to_owned());
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);

    let all = test.get("/api/v1/users?limit=100", Some(ADMIN_KEY)).await;
    assert_eq!(items(&all).len(), 4);
    assert_eq!(all.body["next_cursor"], Value::Null);
    for limit in ["0", "101"] {
        let bad = test
            .get(&format!("/api/v1/users?limit={limit}"), Some(ADMIN_KEY))
            .await;
        assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let bad = test.get("/api/v1/users?limit=many", Some(ADMIN_KEY)).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");

    // Email prefix, case-insensitive.
    for prefix in ["a", "A"] {
        let found = test
            .get(&format!("/api/v1/users?email={prefix}"), Some(ADMIN_KEY))
            .await;
        let emails: HashSet<&str> = items(&found)
            .iter()
            .map(|u| u["email"].as_str().unwrap())
            .collect();
        assert_eq!(
            emails,
            HashSet::from(["amy@example.com", "ann@example.com"])
        );
    }
    let one = test.get("/api/v1/users?email=bob", Some(ADMIN_KEY)).await;
    assert_eq!(items(&one).len(), 1);
    assert_eq!(items(&one)[0]["email"], "bob@example.com");
    let none = test.get("/api/v1/users?email=zed", Some(ADMIN_KEY)).await;
    assert_eq!(items(&none).len(), 0);
}

#[tokio::test]
async fn who_may_manage_users() {
    let test = TestApp::relaxed();
    let default = test.default_org().await;
    let client = test.app_in(default, "https://app.example.com/cb").await;

    // Nobody, and a user without the permission.
    let anonymous = test.get("/api/v1/users", None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
    let plain = test.token_via("vic@example.com", None).await;
    let vic = test.status_of(&plain).await.str("user_id");
    let forbidden = test.get("/api/v1/users", Some(&plain)).await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "forbidden");
    let forbidden = test
        .post(
            "/api/v1/organizations",
            json!({"name": "V", "slug": "v"}),
            Some(&plain),
        )
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "forbidden");

    // Give Vic a role in the default organization.
    let perms = format!("/api/v1/organizations/{default}/permissions");
    for name in ["users:read", "users:write"] {
        let defined = test
            .post(&perms, json!({"name": name}), Some(ADMIN_KEY))
            .await;
        assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.body);
    }
    let role = test
        .post(
            &format!("/api/v1/organizations/{default}/roles"),
            json!({"name": "user-admins", "permissions": ["users:read", "users:write"]}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    let roles_path = format!("/api/v1/users/{vic}/organizations/{default}/roles");
    let unknown_role = test
        .put(&roles_path, json!({"roles": ["wizards"]}), Some(ADMIN_KEY))
        .await;
    assert_error(&unknown_role, StatusCode::BAD_REQUEST, "invalid_input");
    let no_perm = test
        .put(&roles_path, json!({"roles": ["user-admins"]}), Some(&plain))
        .await;
    assert_error(&no_perm, StatusCode::FORBIDDEN, "forbidden");
    let assigned = test
        .put(
            &roles_path,
            json!({"roles": ["user-admins"]}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["org_id"], default.to_string().as_str());
    assert_eq!(assigned.body["roles"], json!(["user-admins"]));
    let orgs = test
        .get(
            &format!("/api/v1/users/{vic}/organizations"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(items(&orgs).len(), 1);
    assert_eq!(items(&orgs)[0]["org_id"], default.to_string().as_str());
    assert_eq!(items(&orgs)[0]["roles"], json!(["user-admins"]));

    // A token from a sign-in in the default organization carries the permissions.
    let admin = test.token_via("vic@example.com", Some(&client)).await;
    let listed = test.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(items(&listed).len(), 1);
    let made = test
        .post(
            "/api/v1/users",
            json!({"email": "wes@example.com"}),
            Some(&admin),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let still_not = test.get("/api/v1/organizations", Some(&admin)).await;
    assert_error(&still_not, StatusCode::FORBIDDEN, "forbidden");

    // An API key with users:read reads, and writes nothing.
    let key = test
        .auth
        .api_keys()
        .create(default, &NewApiKey::new("ci", &["users:read"]))
        .await
        .unwrap();
    let secret = key.secret.secret().to_owned();
    let listed = test.get("/api/v1/users", Some(&secret)).await;
    assert_eq!(items(&listed).len(), 2);
    let status = test
        .get(&format!("/api/v1/users/{vic}/status"), Some(&secret))
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let write = test
        .post(
            "/api/v1/users",
            json!({"email": "xi@example.com"}),
            Some(&secret),
        )
        .await;
    assert_error(&write, StatusCode::FORBIDDEN, "forbidden");
    let unknown_key = test
        .get("/api/v1/users", Some("lk_not-a-real-key-0000000000000000"))
        .await;
    assert_eq!(
        unknown_key.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        unknown_key.body
    );

    // A key of another organization acts for that organization only.
    let other = create_org(&test, json!({"name": "Other", "slug": "other"}))
        .await
        .str("id");
    let other_key = test
        .auth
        .api_keys()
        .create(
            other.parse().unwrap(),
            &NewApiKey::new("theirs", &["users:read", "roles:read"]),
        )
        .await
        .unwrap();
    let other_secret = other_key.secret.secret().to_owned();
    let users = test.get("/api/v1/users", Some(&other_secret)).await;
    assert_error(&users, StatusCode::FORBIDDEN, "forbidden");
    let own_roles = test
        .get(
            &format!("/api/v1/organizations/{other}/roles"),
            Some(&other_secret),
        )
        .await;
    assert_eq!(own_roles.status, StatusCode::OK, "{}", own_roles.body);
    let default_roles = test
        .get(
            &format!("/api/v1/organizations/{default}/roles"),
            Some(&other_secret),
        )
        .await;
    assert_error(&default_roles, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn login_logs_for_admins_and_the_user_themself() {
    let test = TestApp::relaxed();
    test.token_via("yan@example.com", None).await;
    // A failed attempt, then a second sign-in.
    test.advance(std::time::Duration::from_secs(1));
    let sent = test
        .post(
            "/api/v1/auth/passwordless/email-code",
            json!({"email": "yan@example.com"}),
            None,
        )
        .await;
    let code = test.last_email_code("yan@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = test
        .post(
            "/api/v1/auth/passwordless/email-code/verify",
            json!({"request_id": sent.str("request_id"), "code": wrong}),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let token = test.token_via("yan@example.com", None).await;
    let yan = test.status_of(&token).await.str("user_id");
    let path = format!("/api/v1/users/{yan}/login-logs");

    let by_admin = test.get(&path, Some(ADMIN_KEY)).await;
    let events = items(&by_admin);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // Newest first: the second sign-in, the two code requests made once the account
    // existed, the first sign-in and the sign-up it made. (A wrong code is not put in the account's log: the request does
    // not say whose it is.)
    assert_eq!(
        kinds,
        [
            "sign_in",
            "ceremony_started",
            "ceremony_started",
            "sign_in",
            "sign_up"
        ]
    );
    let times: Vec<i64> = events.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(events[0]["method"], "email");

    let by_self = test.get(&path, Some(&token)).await;
    assert_eq!(items(&by_self).len(), events.len());
    let page = test.get(&format!("{path}?limit=1"), Some(&token)).await;
    assert_eq!(items(&page).len(), 1);
    let cursor = page.str("next_cursor");
    let next = test
        .get(&format!("{path}?limit=1&cursor={cursor}"), Some(&token))
        .await;
    assert_eq!(items(&next)[0]["id"], events[1]["id"]);

    let other = test.token_via("zoe@example.com", None).await;
    let foreign = test.get(&path, Some(&other)).await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "forbidden");
    let anonymous = test.get(&path, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");
}

/// The revert token in the last email-change notice to `to`.
fn revert_token(test: &TestApp, to: &str) -> String {
    let mail = test
        .mail
        .sent()
        .into_iter()
        .rev()
        .find(|m| m.to.as_str() == to && m.message.kind == portcullis::MessageKind::EmailChanged)
        .unwrap_or_else(|| panic!("no email-change notice to {to}"));
    let url = url::Url::parse(mail.message.link.as_ref().unwrap().secret()).unwrap();
    assert_eq!(url.path(), "/email-revert");
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// Checklist ACC-01 over HTTP: an administrator's `PATCH` with a new address changes
/// nothing until the new address confirms (before: it changed at once); a user's own
/// change is confirmed the same way; the old address undoes either, ending every session.
#[tokio::test]
async fn acc01_email_changes_wait_for_the_new_address_and_the_old_one_can_undo_them() {
    let test = TestApp::relaxed();
    let pause = || test.advance(std::time::Duration::from_secs(2));
    pause();
    let owner = test.token_for("ivy@example.com").await;
    let id = test.status_of(&owner).await.str("user_id");

    // The administrator's PATCH (or a stolen users:write credential's).
    pause();
    let patched = test
        .patch(
            &format!("/api/v1/users/{id}"),
            json!({"email": "mallory@evil.example", "email_verified": true, "name": "Ivy"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.body);
    assert_eq!(
        patched.body["user"]["email"], "ivy@example.com",
        "still the old address"
    );
    assert_eq!(
        patched.body["user"]["name"], "Ivy",
        "the other changes are made"
    );
    let request_id = patched.body["email_change"]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = test
        .get(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(got.body["email"], "ivy@example.com");
    let wrong = test
        .post(
            &format!("/api/v1/users/{id}/email/confirm"),
            json!({"request_id": request_id, "code": "not-it"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let code = test.last_email_code("mallory@evil.example");
    let confirmed = test
        .post(
            &format!("/api/v1/users/{id}/email/confirm"),
            json!({"request_id": request_id, "code": code}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["email"], "mallory@evil.example");
    assert_eq!(
        test.status_of(&owner).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The old address undoes it, without signing in; the token works once.
    pause();
    let mallory = test.token_for("mallory@evil.example").await;
    let token = revert_token(&test, "ivy@example.com");
    let reverted = test
        .post(
            "/api/v1/auth/email/change/revert",
            json!({"token": token}),
            None,
        )
        .await;
    assert_eq!(reverted.status, StatusCode::OK, "{}", reverted.body);
    assert_eq!(reverted.body["email"], "ivy@example.com");
    assert_eq!(
        test.status_of(&mallory).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = test
        .post(
            "/api/v1/auth/email/change/revert",
            json!({"token": token}),
            None,
        )
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // The user's own change: from a session, confirmed by the new mailbox; the session
    // that confirms stays, the others end.
    pause();
    let phone = test.token_for("ivy@example.com").await;
    pause();
    let laptop = test.token_for("ivy@example.com").await;
    let no_bearer = test
        .post(
            "/api/v1/auth/email/change",
            json!({"email": "ivy@new.example"}),
            None,
        )
        .await;
    assert_error(&no_bearer, StatusCode::UNAUTHORIZED, "invalid_token");
    pause();
    let sent = test
        .post(
            "/api/v1/auth/email/change",
            json!({"email": "ivy@new.example"}),
            Some(&laptop),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body["expires_in"].as_u64().unwrap() > 0);
    // An address another account holds answers the same, and gets no code.
    pause();
    test.token_for("taken@example.com").await;
    let mails = test.mail.sent().len();
    pause();
    let taken = test
        .post(
            "/api/v1/auth/email/change",
            json!({"email": "taken@example.com"}),
            Some(&laptop),
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    assert_eq!(
        taken.body.as_object().unwrap().len(),
        sent.body.as_object().unwrap().len()
    );
    assert_eq!(test.mail.sent().len(), mails, "no code to a taken address");

    let code = test.last_email_code("ivy@new.example");
    let confirmed = test
        .post(
            "/api/v1/auth/email/change/confirm",
            json!({"request_id": sent.str("request_id"), "code": code}),
            Some(&laptop),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["email"], "ivy@new.example");
    assert_eq!(test.status_of(&laptop).await.status, StatusCode::OK);
    assert_eq!(
        test.status_of(&phone).await.status,
        StatusCode::UNAUTHORIZED
    );
    let got = test
        .get(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(got.body["email"], "ivy@new.example");
    assert_eq!(got.body["email_verified"], true);
}

/// What schemathesis found: metadata that is not an object was stored, and listings under
/// a deleted organization or user answered as if it still existed.
#[tokio::test]
async fn metadata_is_an_object_and_deleted_parents_are_gone() {
    let test = TestApp::new();
    let array = test
        .post(
            "/api/v1/users",
            json!({"email": "meta@example.com", "metadata": [null, null]}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&array, StatusCode::BAD_REQUEST, "invalid_input");
    let user = test
        .post(
            "/api/v1/users",
            json!({"email": "meta@example.com", "metadata": {"plan": "pro"}}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.body);
    assert_eq!(user.body["metadata"]["plan"], "pro");
    let id = user.str("id");
    let gone = test
        .delete(&format!("/api/v1/users/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let orgs = test
        .get(
            &format!("/api/v1/users/{id}/organizations"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_error(&orgs, StatusCode::NOT_FOUND, "not_found");

    let org = test
        .post(
            "/api/v1/organizations",
            json!({"name": "Gone", "slug": "gone"}),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
    let org = org.str("id");
    let deleted = test
        .delete(&format!("/api/v1/organizations/{org}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for list in ["roles", "permissions"] {
        let answer = test
            .get(
                &format!("/api/v1/organizations/{org}/{list}"),
                Some(ADMIN_KEY),
            )
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn signing_keys_rotate_for_installation_wide_credentials_only() {
    let test = TestApp::new();
    let user = test.token_for("ana@example.com").await;
    let refused = test
        .post("/api/v1/signing-keys/rotate", json!({}), Some(&user))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let anonymous = test
        .post("/api/v1/signing-keys/rotate", json!({}), None)
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "invalid_token");

    let rotated = test
        .post("/api/v1/signing-keys/rotate", json!({}), Some(ADMIN_KEY))
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let kid = rotated.str("kid");
    let jwks = test.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&kid.as_str()), "{kids:?}");
    assert!(kids.len() >= 2, "the old key still verifies: {kids:?}");
    // The user's token, signed by the old key, still works; new tokens carry the new kid.
    assert_eq!(test.status_of(&user).await.status, StatusCode::OK);
    let fresh = test.token_for("bo@example.com").await;
    let header = fresh.split('.').next().unwrap();
    let header =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["kid"], kid.as_str());
}
