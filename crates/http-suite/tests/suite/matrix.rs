//! ADM-01 (checklist H-10): who may call each route, for every route of the OpenAPI
//! document. Each route has an entry here (the test fails for one without), and every
//! management route is called as nobody, as a member of organization A holding nothing,
//! as B's administrator and as A's, and as the installation, on A's objects. Refusals are
//! uniform: B's administrator gets the same answer for A's objects as for ones that do not
//! exist.

use std::collections::BTreeSet;

use super::common::{ADMIN_KEY, Answer, TestApp};
use super::manage::{Tenants, member_in};
use http::{Method, StatusCode};
use portcullis::RoleSpec;
use serde_json::{Value, json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone: a sign-in step, a public configuration, a callback, a setup link's use.
    Public,
    /// The bearer's own account (a user's access token or the ceremony's own token).
    Own,
    /// An organization's administrators holding the permission there (the path's
    /// organization), and the installation's.
    Org(&'static str),
    /// The installation's administrators only.
    Installation(&'static str),
    /// The installation's, or the user themself.
    InstallationOrSelf(&'static str),
    /// One user's sessions: the installation's, or an organization's administrators for
    /// their own members.
    Reach(&'static str),
    /// An app by client id: its organization's administrators (404 to others).
    App(&'static str),
}

use Access::*;

const MATRIX: &[(&str, &str, Access)] = &[
    ("POST", "/auth/passwordless/magic-link", Public),
    ("POST", "/auth/passwordless/magic-link/resend", Public),
    ("GET", "/auth/passwordless/magic-link/verify", Public),
    ("POST", "/auth/passwordless/magic-link/verify", Public),
    ("GET", "/auth/passwordless/magic-link/status", Public),
    ("POST", "/auth/passwordless/email-code", Public),
    ("POST", "/auth/passwordless/email-code/resend", Public),
    ("POST", "/auth/passwordless/email-code/verify", Public),
    ("POST", "/auth/passwordless/sms-code", Public),
    ("POST", "/auth/passwordless/sms-code/resend", Public),
    ("POST", "/auth/passwordless/sms-code/verify", Public),
    ("GET", "/auth/passwordless/passkey/register", Public),
    ("POST", "/auth/passwordless/passkey/register", Public),
    ("GET", "/auth/passwordless/passkey/login", Public),
    ("POST", "/auth/passwordless/passkey/login", Public),
    ("GET", "/auth/passwordless/passkey/status", Public),
    ("GET", "/auth/passkeys", Own),
    ("PATCH", "/auth/passkeys/{id}", Own),
    ("DELETE", "/auth/passkeys/{id}", Own),
    ("POST", "/auth/password/signup", Public),
    ("POST", "/auth/signup/verify", Public),
    ("POST", "/auth/password/login", Public),
    ("POST", "/auth/password/change", Own),
    ("POST", "/auth/password/reset", Public),
    ("POST", "/auth/password/reset/confirm", Public),
    ("POST", "/auth/password/change-required", Public),
    ("POST", "/auth/unblock", Public),
    ("GET", "/protection/challenge", Public),
    ("GET", "/protection/blocks", Installation("security:read")),
    (
        "DELETE",
        "/protection/blocks/{id}",
        Installation("security:manage"),
    ),
    ("GET", "/auth/status", Own),
    ("POST", "/auth/logout", Own),
    ("GET", "/auth/sessions", Own),
    ("DELETE", "/auth/sessions/{id}", Own),
    ("POST", "/auth/email/change", Own),
    ("POST", "/auth/email/change/confirm", Own),
    ("POST", "/auth/email/change/revert", Public),
    ("POST", "/token/refresh", Public),
    ("POST", "/token", Public),
    (
        "POST",
        "/signing-keys/rotate",
        Installation("signing_keys:rotate"),
    ),
    ("GET", "/mfa/authenticators", Own),
    ("DELETE", "/mfa/authenticators/{id}", Own),
    ("POST", "/mfa/totp/enroll", Public), // a bearer, or the enrolment token of a sign-in
    ("GET", "/mfa/totp/qr.png", Own),
    ("POST", "/mfa/totp/confirm", Public),
    ("POST", "/mfa/challenge", Public),
    ("POST", "/mfa/verify", Public),
    ("POST", "/mfa/backup-codes", Own),
    (
        "POST",
        "/organizations",
        Installation("organizations:write"),
    ),
    ("GET", "/organizations", Installation("organizations:read")),
    ("GET", "/organizations/{id}", Org("organizations:read")),
    ("PATCH", "/organizations/{id}", Org("organizations:write")),
    (
        "DELETE",
        "/organizations/{id}",
        Installation("organizations:write"),
    ),
    (
        "GET",
        "/organizations/by-client-id/{client_id}/config",
        Public,
    ),
    ("GET", "/organizations/by-domain/{domain}/config", Public),
    ("GET", "/organizations/{id}/roles", Org("roles:read")),
    ("POST", "/organizations/{id}/roles", Org("roles:write")),
    (
        "PATCH",
        "/organizations/{id}/roles/{role_id}",
        Org("roles:write"),
    ),
    (
        "DELETE",
        "/organizations/{id}/roles/{role_id}",
        Org("roles:write"),
    ),
    (
        "GET",
        "/organizations/{id}/permissions",
        Org("permissions:read"),
    ),
    (
        "POST",
        "/organizations/{id}/permissions",
        Org("permissions:write"),
    ),
    (
        "PATCH",
        "/organizations/{id}/permissions/{perm_id}",
        Org("permissions:write"),
    ),
    (
        "DELETE",
        "/organizations/{id}/permissions/{perm_id}",
        Org("permissions:write"),
    ),
    ("GET", "/users", Installation("users:read")),
    ("POST", "/users", Installation("users:write")),
    ("GET", "/users/{id}", Installation("users:read")),
    ("PATCH", "/users/{id}", Installation("users:write")),
    ("DELETE", "/users/{id}", Installation("users:write")),
    ("GET", "/users/by-email/{email}", Installation("users:read")),
    ("GET", "/users/{id}/status", Installation("users:read")),
    (
        "POST",
        "/users/{id}/email/confirm",
        Installation("users:write"),
    ),
    (
        "PUT",
        "/users/{id}/organizations/{org_id}/roles",
        Org("roles:write"),
    ),
    (
        "POST",
        "/organizations/{id}/invitations",
        Org("roles:write"),
    ),
    ("POST", "/invitations/accept", Own),
    (
        "GET",
        "/users/{id}/organizations",
        Installation("users:read"),
    ),
    (
        "GET",
        "/users/{id}/login-logs",
        InstallationOrSelf("users:read"),
    ),
    ("GET", "/sso/{connection_id}/authorize", Public),
    ("GET", "/sso/callback", Public),
    ("GET", "/sso/discover", Public),
    ("GET", "/sso/{connection_id}/saml/metadata", Public),
    ("POST", "/sso/{connection_id}/saml/acs", Public),
    ("POST", "/sso/saml/confirm", Public),
    ("GET", "/social/google/authorize", Public),
    ("GET", "/social/google/callback", Public),
    (
        "GET",
        "/organizations/{id}/sso-connections",
        Org("sso:manage"),
    ),
    (
        "POST",
        "/organizations/{id}/sso-connections",
        Org("sso:manage"),
    ),
    (
        "GET",
        "/organizations/{id}/sso-connections/{connection_id}",
        Org("sso:manage"),
    ),
    (
        "PATCH",
        "/organizations/{id}/sso-connections/{connection_id}",
        Org("sso:manage"),
    ),
    (
        "DELETE",
        "/organizations/{id}/sso-connections/{connection_id}",
        Org("sso:manage"),
    ),
    ("GET", "/organizations/{id}/domains", Org("sso:manage")),
    ("POST", "/organizations/{id}/domains", Org("sso:manage")),
    (
        "POST",
        "/organizations/{id}/domains/{domain}/verify",
        Org("sso:manage"),
    ),
    (
        "POST",
        "/organizations/{id}/sso-connections/{connection_id}/test",
        Org("sso:manage"),
    ),
    ("POST", "/organizations/{id}/setup-links", Org("sso:manage")),
    (
        "DELETE",
        "/organizations/{id}/setup-links",
        Org("sso:manage"),
    ),
    ("POST", "/setup/session", Public),
    ("GET", "/setup/session", Own),
    ("POST", "/auth/sso/{connection_id}/link", Own),
    ("GET", "/organizations/{id}/apps", Org("apps:read")),
    ("POST", "/organizations/{id}/apps", Org("apps:write")),
    ("GET", "/apps/{client_id}", App("apps:read")),
    ("PATCH", "/apps/{client_id}", App("apps:write")),
    ("DELETE", "/apps/{client_id}", App("apps:write")),
    ("POST", "/apps/{client_id}/secret", App("apps:write")),
    ("GET", "/auth/consents", Own),
    ("DELETE", "/auth/consents/{client_id}", Own),
    ("GET", "/organizations/{id}/api-keys", Org("api_keys:read")),
    (
        "POST",
        "/organizations/{id}/api-keys",
        Org("api_keys:write"),
    ),
    (
        "DELETE",
        "/organizations/{id}/api-keys/{key_id}",
        Org("api_keys:write"),
    ),
    ("GET", "/organizations/{id}/members", Org("users:read")),
    (
        "GET",
        "/organizations/{id}/members/{user_id}",
        Org("users:read"),
    ),
    (
        "PUT",
        "/organizations/{id}/members/{user_id}/blocked",
        Org("users:write"),
    ),
    (
        "DELETE",
        "/organizations/{id}/members/{user_id}",
        Org("roles:write"),
    ),
    ("GET", "/users/{id}/sessions", Reach("users:read")),
    ("DELETE", "/users/{id}/sessions", Reach("users:write")),
    (
        "DELETE",
        "/users/{id}/sessions/{session_id}",
        Reach("users:write"),
    ),
    ("GET", "/organizations/{id}/login-logs", Org("logs:read")),
    (
        "GET",
        "/organizations/{id}/login-logs/export",
        Org("logs:read"),
    ),
    ("GET", "/login-logs", Installation("logs:read")),
    (
        "GET",
        "/organizations/{id}/templates",
        Org("organizations:read"),
    ),
    (
        "PUT",
        "/organizations/{id}/templates/{kind}",
        Org("organizations:write"),
    ),
    (
        "DELETE",
        "/organizations/{id}/templates/{kind}",
        Org("organizations:write"),
    ),
    (
        "POST",
        "/organizations/{id}/templates/{kind}/preview",
        Org("organizations:read"),
    ),
];

/// Organization A's objects, to fill a route's path with.
struct Objects {
    org: String,
    user: String,
    email: String,
    role: String,
    permission: String,
    client: String,
    connection: String,
    domain: String,
    key: String,
    session: String,
}

impl Objects {
    /// A's objects, made by the installation.
    async fn of(t: &Tenants) -> Self {
        let test = &t.test;
        let a = t.a.to_string();
        let made = |path: String, body: Value| async move {
            let answer = test.post(&path, body, Some(ADMIN_KEY)).await;
            assert!(answer.status.is_success(), "{path}: {}", answer.body);
            answer
        };
        let role = test
            .auth
            .rbac()
            .create_role(t.a, &RoleSpec::new("auditors", &["logs:read"]))
            .await
            .unwrap()
            .id
            .to_string();
        let permission = made(
            format!("/api/v1/organizations/{a}/permissions"),
            json!({"name": "invoices:read"}),
        )
        .await
        .str("id");
        let connection = made(
            format!("/api/v1/organizations/{a}/sso-connections"),
            super::sso::offline_connection(),
        )
        .await
        .str("id");
        made(
            format!("/api/v1/organizations/{a}/domains"),
            json!({"domain": "claim.acme.example"}),
        )
        .await;
        let key = made(
            format!("/api/v1/organizations/{a}/api-keys"),
            json!({"name": "ci", "scopes": []}),
        )
        .await
        .str("id");
        let template = test
            .put(
                &format!("/api/v1/organizations/{a}/templates/email_code"),
                json!({"subject": "Your code"}),
                Some(ADMIN_KEY),
            )
            .await;
        assert_eq!(template.status, StatusCode::OK, "{}", template.body);
        let sessions = test
            .get(
                &format!("/api/v1/users/{}/sessions", t.member_id),
                Some(ADMIN_KEY),
            )
            .await;
        let session = sessions.body["items"][0]["id"].as_str().unwrap().to_owned();
        Objects {
            org: a,
            user: t.member_id.clone(),
            email: "max@acme.example".into(),
            role,
            permission,
            client: t.client_a.clone(),
            connection,
            domain: "claim.acme.example".into(),
            key,
            session,
        }
    }

    /// Ids that name nothing.
    fn missing() -> Self {
        let id = || portcullis::UserId::generate().to_string();
        Objects {
            org: id(),
            user: id(),
            email: "nobody@nowhere.example".into(),
            role: id(),
            permission: id(),
            client: "app_missing0000000000000000".into(),
            connection: id(),
            domain: "missing.nowhere.example".into(),
            key: id(),
            session: id(),
        }
    }

    fn fill(&self, path: &str) -> String {
        let id = if path.starts_with("/users/{id}") {
            &self.user
        } else {
            &self.org
        };
        let filled = path
            .replace("{id}", id)
            .replace("{org_id}", &self.org)
            .replace("{user_id}", &self.user)
            .replace("{email}", &self.email)
            .replace("{role_id}", &self.role)
            .replace("{perm_id}", &self.permission)
            .replace("{client_id}", &self.client)
            .replace("{connection_id}", &self.connection)
            .replace("{domain}", &self.domain)
            .replace("{key_id}", &self.key)
            .replace("{session_id}", &self.session)
            .replace("{kind}", "email_code");
        format!("/api/v1{filled}")
    }
}

/// A body each route accepts, so that a refusal is the caller's, not the body's.
fn body(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("POST", "/organizations") => json!({"name": "New", "slug": "new-org"}),
        ("PATCH", "/organizations/{id}") => json!({"name": "Acme 2"}),
        ("POST", "/organizations/{id}/roles") => {
            json!({"name": "readers", "permissions": ["logs:read"]})
        }
        ("PATCH", "/organizations/{id}/roles/{role_id}") => json!({"description": "Reads"}),
        ("POST", "/organizations/{id}/permissions") => json!({"name": "invoices:write"}),
        ("PATCH", "/organizations/{id}/permissions/{perm_id}") => {
            json!({"description": "Reads invoices"})
        }
        ("POST", "/users") => json!({"email": "new@acme.example"}),
        ("PATCH", "/users/{id}") => json!({"name": "Max"}),
        ("POST", "/users/{id}/email/confirm") => {
            json!({"request_id": portcullis::UserId::generate().to_string(), "code": "123456"})
        }
        ("PUT", "/users/{id}/organizations/{org_id}/roles") => json!({"roles": ["auditors"]}),
        ("POST", "/organizations/{id}/invitations") => json!({"email": "new@acme.example"}),
        ("POST", "/organizations/{id}/sso-connections")
        | ("PATCH", "/organizations/{id}/sso-connections/{connection_id}") => {
            super::sso::offline_connection()
        }
        ("POST", "/organizations/{id}/domains") => json!({"domain": "other.acme.example"}),
        ("POST", "/organizations/{id}/setup-links") => json!({}),
        ("POST", "/organizations/{id}/apps") => {
            json!({"name": "Shop", "redirect_uris": ["https://acme.example/shop"]})
        }
        ("PATCH", "/apps/{client_id}") => json!({"name": "Renamed"}),
        ("POST", "/organizations/{id}/api-keys") => json!({"name": "k", "scopes": []}),
        ("PUT", "/organizations/{id}/members/{user_id}/blocked") => json!({"blocked": true}),
        ("PUT", "/organizations/{id}/templates/{kind}")
        | ("POST", "/organizations/{id}/templates/{kind}/preview") => json!({"subject": "Hi"}),
        _ => return None,
    };
    Some(body)
}

async fn call(test: &TestApp, method: &str, path: &str, url: &str, bearer: Option<&str>) -> Answer {
    let verb = Method::from_bytes(method.as_bytes()).unwrap();
    let body =
        body(method, path).or_else(|| (method != "GET" && method != "DELETE").then(|| json!({})));
    test.call(verb, url, body, bearer).await
}

#[tokio::test]
async fn adm01_every_route_has_an_entry_and_management_routes_keep_to_their_tenant() {
    let t = Tenants::new().await;
    let test = &t.test;

    // Every route of the document has an entry, and every entry a route.
    let doc = test.get("/api/v1/openapi.json", None).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let entries: BTreeSet<String> = MATRIX
        .iter()
        .map(|(method, path, _)| format!("{method} /api/v1{path}"))
        .collect();
    assert_eq!(entries.len(), MATRIX.len(), "an entry repeats");
    assert_eq!(
        documented, entries,
        "routes without an entry, or entries without a route"
    );

    // A plain member with a session of their own; B's administrator.
    let objects = Objects::of(&t).await;
    let missing = Objects::missing();
    for &(method, path, access) in MATRIX {
        let url = objects.fill(path);
        let what = format!("{method} {path}");
        let anonymous = call(test, method, path, &url, None).await;
        match access {
            Public => continue,
            Own => {
                assert_eq!(
                    anonymous.status,
                    StatusCode::UNAUTHORIZED,
                    "{what}: {}",
                    anonymous.body
                );
                continue;
            }
            _ => assert_eq!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{what}: {}",
                anonymous.body
            ),
        }
        // Refused, alike for A's objects and for none.
        let refused = |answer: &Answer, statuses: &[StatusCode], who: &str| {
            assert!(
                statuses.contains(&answer.status),
                "{what} as {who}: {} {}",
                answer.status,
                answer.body
            );
        };
        let member = call(test, method, path, &url, Some(&t.member)).await;
        let member_on_nothing =
            call(test, method, path, &missing.fill(path), Some(&t.member)).await;
        let b = call(test, method, path, &url, Some(&t.admin_b)).await;
        let b_on_nothing = call(test, method, path, &missing.fill(path), Some(&t.admin_b)).await;
        let denied = [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND];
        match access {
            InstallationOrSelf(_) => {
                // The member is the user named: their own log.
                assert_eq!(member.status, StatusCode::OK, "{what}: {}", member.body);
            }
            Installation(_) | Org(_) | Reach(_) | App(_) => {
                refused(&member, &denied, "a member");
                assert_eq!(
                    (member.status, member.code()),
                    (member_on_nothing.status, member_on_nothing.code()),
                    "{what}: a member tells A's objects from missing ones"
                );
            }
            Public | Own => unreachable!(),
        }
        refused(&b, &denied, "B's administrator");
        assert_eq!(
            (b.status, b.code()),
            (b_on_nothing.status, b_on_nothing.code()),
            "{what}: B's administrator tells A's objects from missing ones"
        );
    }

    // A's administrator passes on A's objects, and is refused the installation's routes;
    // the installation passes everywhere. Each route on fresh objects: some delete them.
    let passed = |answer: &Answer, who: &str, method: &str, path: &str| {
        // The one object the fixture has none of: a lockout to lift.
        let absent = path == "/protection/blocks/{id}" && answer.status == StatusCode::NOT_FOUND;
        // A wrong code in the body is the body's refusal, not the caller's.
        let wrong_code = answer.code() == "invalid_credentials";
        let refused = [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
        ];
        assert!(
            absent || wrong_code || !refused.contains(&answer.status),
            "{method} {path} as {who}: {} {}",
            answer.status,
            answer.body
        );
    };
    for &(method, path, access) in MATRIX {
        if matches!(access, Public | Own) {
            continue;
        }
        let t = Tenants::new().await;
        let objects = Objects::of(&t).await;
        let url = objects.fill(path);
        let a = call(&t.test, method, path, &url, Some(&t.admin_a)).await;
        match access {
            Org(_) | Reach(_) | App(_) => passed(&a, "A's administrator", method, path),
            _ => assert!(
                [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&a.status),
                "{method} {path} as A's administrator: {} {}",
                a.status,
                a.body
            ),
        }
        let t = Tenants::new().await;
        let objects = Objects::of(&t).await;
        let answer = call(&t.test, method, path, &objects.fill(path), Some(ADMIN_KEY)).await;
        passed(&answer, "the installation", method, path);
    }
}

/// ADM-02: an organization's administrator cannot reach beyond the organization through
/// the management API: no role holding a permission the organization does not define,
/// no joining a user of another organization, no first-party app, no key wider than
/// themself.
#[tokio::test]
async fn adm02_an_organizations_administrator_cannot_escalate() {
    let t = Tenants::new().await;
    let test = &t.test;
    let a = t.a.to_string();
    let default = test.default_org().await;
    // A role in A with an installation permission A does not define.
    let role = test
        .post(
            &format!("/api/v1/organizations/{a}/roles"),
            json!({"name": "root", "permissions": ["signing_keys:rotate"]}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(role.status, StatusCode::BAD_REQUEST, "{}", role.body);
    // Roles in the default organization (the installation's own).
    let own_roles = test
        .put(
            &format!(
                "/api/v1/users/{}/organizations/{default}/roles",
                t.member_id
            ),
            json!({"roles": []}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(
        own_roles.status,
        StatusCode::FORBIDDEN,
        "{}",
        own_roles.body
    );
    // B's administrator joined to A.
    let bea = test.status_of(&t.admin_b).await.str("user_id");
    let joined = test
        .put(
            &format!("/api/v1/users/{bea}/organizations/{a}/roles"),
            json!({"roles": []}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(joined.status, StatusCode::FORBIDDEN, "{}", joined.body);
    // A first-party app.
    let app = test
        .post(
            &format!("/api/v1/organizations/{a}/apps"),
            json!({"name": "Mine", "redirect_uris": ["https://acme.example/m"], "first_party": true}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(app.status, StatusCode::FORBIDDEN, "{}", app.body);
    // A key with a permission A's administrator lacks.
    let key = test
        .post(
            &format!("/api/v1/organizations/{a}/api-keys"),
            json!({"name": "root", "scopes": ["signing_keys:rotate"]}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(key.status, StatusCode::FORBIDDEN, "{}", key.body);
    // Nothing of it gave anyone in A more: A's administrator still cannot list users.
    let users = test.get("/api/v1/users", Some(&t.admin_a)).await;
    assert_eq!(users.status, StatusCode::FORBIDDEN);
    // A permission named like the installation's, defined in A and held there, is A's
    // alone: it reaches no installation route.
    let defined = test
        .post(
            &format!("/api/v1/organizations/{a}/permissions"),
            json!({"name": "signing_keys:rotate"}),
            Some(&t.admin_a),
        )
        .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.body);
    let holder = member_in(
        test,
        t.a,
        &t.client_a,
        "lee@acme.example",
        &["signing_keys:rotate", "users:read"],
    )
    .await;
    let rotate = test
        .post("/api/v1/signing-keys/rotate", json!({}), Some(&holder))
        .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN, "{}", rotate.body);
    let users = test.get("/api/v1/users", Some(&holder)).await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "{}", users.body);
}
