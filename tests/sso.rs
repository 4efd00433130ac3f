//! Single sign-on against a real OpenID provider (npm's `oidc-provider`, started on
//! loopback by `portcullis_test_support::idp`) and a real DNS server on loopback for the
//! domain proof (`portcullis_test_support::dns`). Checklist rows are named per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use portcullis::flows::sso::ConnectionSettings;
use portcullis::model::{ConnectionStatus, OrgId, SsoConnection};
use portcullis::{
    Error, HickoryDns, NewOrg, OrgSettings, OrgUpdate, OutboundPolicy, SignIn, SsoDone, SsoOptions,
    SsoTarget, SsoTested,
};
use portcullis_test_support::dns::DnsServer;
use portcullis_test_support::fake_op::{FakeOp, Minted, TestKey};
use portcullis_test_support::idp::Idp;
use portcullis_test_support::{Harness, ctx, harness_now};
use serde_json::{Value, json};

const SECRET: &str = "a-client-secret-of-at-least-32-characters";

/// The provider, with one client whose redirect URI is the engine's callback.
async fn idp(accounts: Value) -> Option<Idp> {
    Idp::start(json!({
        "clients": [{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": ["http://localhost:8080/api/v1/sso/callback"],
            "token_endpoint_auth_method": "client_secret_basic",
            "id_token_signed_response_alg": "ES256",
        }],
        "accounts": accounts,
        "alg": ["RS256", "ES256"],
        "iss_in_response": true,
    }))
    .await
}

/// What the provider sent back to the callback, and the binding the start gave the browser.
struct Back {
    code: String,
    state: String,
    iss: Option<String>,
    binding: String,
}

struct World {
    h: Harness,
    dns: DnsServer,
    org: OrgId,
}

/// An engine that may reach loopback (the provider's address; SSRF-02: allowlisted
/// explicitly) and proves domains through the loopback DNS server.
async fn world() -> World {
    let dns = DnsServer::start().await;
    let verifier = Arc::new(HickoryDns::with_servers(&[dns.addr()]).unwrap());
    let h = harness_now(portcullis::Config::new("http://localhost:8080"), |b| {
        b.outbound_policy(OutboundPolicy::default().allow_loopback())
            .domain_verifier(verifier)
    });
    let org = h
        .auth
        .orgs()
        .create(NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    World { h, dns, org }
}

impl World {
    /// Claims and proves `domain` for the organization through the DNS server.
    async fn prove(&self, domain: &str) {
        let claim = self
            .h
            .auth
            .sso()
            .claim_domain(self.org, domain)
            .await
            .unwrap();
        self.dns
            .set_txt(&claim.txt_name(), vec![vec![claim.token.clone()]]);
        let verified = self
            .h
            .auth
            .sso()
            .verify_domain(self.org, domain)
            .await
            .unwrap();
        assert!(verified.verified_at.is_some());
    }

    async fn connection(&self, idp: &Idp, extra: ConnectionSettings) -> SsoConnection {
        let settings = ConnectionSettings {
            issuer: Some(idp.issuer.clone()),
            client_id: Some("portcullis".into()),
            client_secret: Some(SECRET.into()),
            scopes: Some(vec![
                "openid".into(),
                "email".into(),
                "profile".into(),
                "groups".into(),
            ]),
            ..extra
        };
        self.h
            .auth
            .sso()
            .create_connection(self.org, settings)
            .await
            .unwrap()
    }

    /// Starts a sign-in and lets the provider sign `login_hint` in: what comes back to
    /// the callback, with the start's browser binding.
    async fn begin(
        &self,
        idp: &Idp,
        connection: &SsoConnection,
        login: &str,
        test: bool,
    ) -> Result<Back, Error> {
        let options = SsoOptions {
            test,
            ..SsoOptions::default()
        };
        let started = self
            .h
            .auth
            .sso()
            .start(SsoTarget::Connection(connection.id), options, &ctx())
            .await?;
        assert!(started.url.contains("code_challenge_method=S256"));
        let back = idp
            .authorize(&format!("{}&login_hint={login}", started.url))
            .await
            .expect("the provider redirects back");
        let query = |name: &str| {
            back.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        Ok(Back {
            code: query("code").expect("a code"),
            state: query("state").expect("a state"),
            iss: query("iss"),
            binding: started.browser_binding.to_string(),
        })
    }

    /// Finishes a sign-in in `binding`'s browser, with `iss` as the response named it.
    async fn finish_as(
        &self,
        back: &Back,
        binding: Option<&str>,
        iss: Option<&str>,
    ) -> Result<SignIn, Error> {
        let done = self
            .h
            .auth
            .sso()
            .callback(&back.code, &back.state, iss, binding, &ctx())
            .await?;
        match done {
            SsoDone::SignedIn { sign_in, .. } => Ok(sign_in),
            other => panic!("expected a sign-in, got {other:?}"),
        }
    }

    /// Finishes a sign-in as the provider sent it back, in the browser that started it.
    async fn finish(&self, back: &Back) -> Result<SignIn, Error> {
        self.finish_as(back, Some(&back.binding), back.iss.as_deref())
            .await
    }

    /// A whole sign-in of `login` through `connection`.
    async fn sign_in(
        &self,
        idp: &Idp,
        connection: &SsoConnection,
        login: &str,
        test: bool,
    ) -> Result<SignIn, Error> {
        let back = self.begin(idp, connection, login, test).await?;
        self.finish(&back).await
    }

    /// A test sign-in of `login` through `connection`: it passes, and signs nobody in.
    async fn test(&self, idp: &Idp, connection: &SsoConnection, login: &str) -> SsoTested {
        let back = self.begin(idp, connection, login, true).await.unwrap();
        let done = self
            .h
            .auth
            .sso()
            .callback(
                &back.code,
                &back.state,
                back.iss.as_deref(),
                Some(&back.binding),
                &ctx(),
            )
            .await
            .unwrap();
        match done {
            SsoDone::Tested(tested) => tested,
            other => panic!("expected a test result, got {other:?}"),
        }
    }

    /// Sets a connection's status (`active` only after a passed test sign-in).
    async fn set_status(
        &self,
        id: portcullis::model::ConnectionId,
        status: ConnectionStatus,
    ) -> Result<SsoConnection, Error> {
        let settings = ConnectionSettings {
            status: Some(status),
            ..ConnectionSettings::default()
        };
        self.h
            .auth
            .sso()
            .update_connection(self.org, id, settings)
            .await
    }

    /// A connection that passed a test sign-in and is active.
    async fn active(&self, idp: &Idp, extra: ConnectionSettings, tester: &str) -> SsoConnection {
        let c = self.connection(idp, extra).await;
        let tested = self.test(idp, &c, tester).await;
        assert_eq!(tested.connection_id, c.id);
        // Nobody signed in or was provisioned by the test.
        let email = tested.email.as_deref().unwrap();
        assert!(self.h.auth.users().get_by_email(email).await.is_err());
        self.set_status(c.id, ConnectionStatus::Active)
            .await
            .unwrap()
    }
}

fn verified_user(email: &str) -> portcullis::NewUser {
    let mut user = portcullis::NewUser::with_email(email);
    user.email_verified = true;
    user
}

fn settings_update(settings: OrgSettings) -> OrgUpdate {
    let mut update = OrgUpdate::default();
    update.settings = Some(settings);
    update
}

fn accounts() -> Value {
    json!({
        "alice": { "email": "alice@acme.test", "email_verified": true, "name": "Alice",
                   "groups": ["engineering"] },
        "tester": { "email": "it@acme.test", "email_verified": true },
        "mallory": { "email": "bob@acme.test", "email_verified": false },
        "stringy": { "email": "bob@acme.test", "email_verified": "true" },
        "outsider": { "email": "carol@elsewhere.test", "email_verified": true },
        "twofactor": { "email": "dave@acme.test", "email_verified": true, "amr": ["pwd", "mfa"] },
    })
}

fn jit() -> ConnectionSettings {
    ConnectionSettings {
        jit_provisioning: Some(true),
        domains: Some(vec!["acme.test".into()]),
        group_roles: Some([("engineering".to_owned(), vec!["engineer".to_owned()])].into()),
        ..ConnectionSettings::default()
    }
}

// RP-20, RP-01, RP-16: the whole authorization-code flow against the real provider, a
// provisioned user in the connection's organization with the mapped role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp20_full_code_flow_provisions_into_the_org_with_mapped_roles() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    let role =
        w.h.auth
            .rbac()
            .create_role(w.org, &portcullis::RoleSpec::new("engineer", &[]))
            .await
            .unwrap();
    w.prove("acme.test").await;
    let c = w.connection(&idp, jit()).await;
    assert_eq!(c.status, ConnectionStatus::Draft);
    // RP-19: the secret is sealed, never stored in clear.
    let sealed = c.client_secret.clone().unwrap();
    assert!(
        !sealed
            .as_bytes()
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );
    // A draft connection runs test sign-ins only.
    let refused = w.sign_in(&idp, &c, "alice", false).await.unwrap_err();
    assert_eq!(refused.code(), "sso_failed");
    // Activation before a test sign-in is refused.
    let early = w
        .set_status(c.id, ConnectionStatus::Active)
        .await
        .unwrap_err();
    assert_eq!(early.code(), "invalid_input");
    let c = w.active(&idp, jit(), "tester").await;
    let sign_in = w.sign_in(&idp, &c, "alice", false).await.unwrap();
    let SignIn::Complete(tokens) = sign_in else {
        panic!("expected tokens, got {sign_in:?}")
    };
    let user = w.h.auth.users().get(tokens.user_id).await.unwrap();
    assert_eq!(user.email.unwrap().as_str(), "alice@acme.test");
    assert!(user.email_verified);
    let memberships = w.h.auth.rbac().memberships(tokens.user_id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].org_id, w.org);
    assert_eq!(memberships[0].role_ids, vec![role.id]);
    // The same person again: the same user, by (connection, sub).
    let again = w.sign_in(&idp, &c, "alice", false).await.unwrap();
    assert_eq!(
        portcullis_test_support::tokens(again).user_id,
        tokens.user_id
    );
}

// RP-01: a state works once, and only in the browser that started the sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp01_state_is_single_use_and_bound_to_the_browser() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let back = w.begin(&idp, &c, "alice", false).await.unwrap();
    let (token_calls, _) = idp.stats().await;
    // Another browser's binding, or none: refused, and the state is spent.
    let other = w
        .finish_as(&back, Some("another-browser"), back.iss.as_deref())
        .await
        .unwrap_err();
    assert_eq!(
        other.to_string(),
        "single sign-on failed: the sign-in was started in another browser"
    );
    let replay = w.finish(&back).await.unwrap_err();
    assert_eq!(
        replay.to_string(),
        "single sign-on failed: unknown, expired or used state"
    );
    let back = w.begin(&idp, &c, "alice", false).await.unwrap();
    let unbound = w
        .finish_as(&back, None, back.iss.as_deref())
        .await
        .unwrap_err();
    assert_eq!(
        unbound.to_string(),
        "single sign-on failed: the sign-in was started in another browser"
    );
    // No code went to the provider.
    assert_eq!(idp.stats().await.0, token_calls);
    // 16 racing callbacks with one state: one session.
    let back = Arc::new(w.begin(&idp, &c, "alice", false).await.unwrap());
    let w = Arc::new(w);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (w, back) = (w.clone(), back.clone());
            tokio::spawn(async move { w.finish(&back).await.is_ok() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
}

// RP-01 (expired state), RP-10 (iss of another issuer), RP-13 (disabled in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp10_rp13_expired_state_other_issuer_and_disabled_connection_are_refused() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let alice = || w.begin(&idp, &c, "alice", false);
    // Expired.
    let back = alice().await.unwrap();
    w.h.clock
        .advance(portcullis::flows::sso::STATE_TTL + Duration::from_secs(1));
    let err = w.finish(&back).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: unknown, expired or used state"
    );
    // Another issuer named in the response, and none from a provider that sends it.
    let back = alice().await.unwrap();
    let err = w
        .finish_as(&back, Some(&back.binding), Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: the response comes from another issuer"
    );
    let back = alice().await.unwrap();
    let err = w
        .finish_as(&back, Some(&back.binding), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: the response does not name its issuer"
    );
    // Disabled between start and callback.
    let back = alice().await.unwrap();
    let sso = w.h.auth.sso();
    w.set_status(c.id, ConnectionStatus::Disabled)
        .await
        .unwrap();
    let err = w.finish(&back).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: the connection changed or was disabled"
    );
    // And a disabled connection starts nothing.
    assert!(
        sso.start(SsoTarget::Connection(c.id), SsoOptions::default(), &ctx())
            .await
            .is_err()
    );
}

// RP-07: no implicit linking: an unverified email (false, or the string "true"), or one
// outside the organization's proven domains, does not reach the existing account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp07_existing_accounts_are_linked_only_with_a_verified_email_at_a_proven_domain() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    for (email, sub) in [
        ("bob@acme.test", "mallory"),
        ("bob@acme.test", "stringy"),
        ("carol@elsewhere.test", "outsider"),
    ] {
        let victim =
            w.h.auth
                .users()
                .create(verified_user(email), &ctx())
                .await
                .unwrap();
        let err = w.sign_in(&idp, &c, sub, false).await.unwrap_err();
        assert_eq!(err.code(), "sso_failed", "{sub}");
        assert!(
            w.h.auth
                .sessions()
                .list(victim.id)
                .await
                .unwrap()
                .is_empty(),
            "{sub}"
        );
        w.h.auth.users().delete(victim.id, &ctx()).await.unwrap();
    }
    // The all-good cell links: verified by the provider, proven domain, verified locally.
    let alice =
        w.h.auth
            .users()
            .create(verified_user("alice@acme.test"), &ctx())
            .await
            .unwrap();
    let signed = w.sign_in(&idp, &c, "alice", false).await.unwrap();
    assert_eq!(portcullis_test_support::tokens(signed).user_id, alice.id);
}

// RP-14: SSO is a first factor; the organization's MFA rule still applies unless the
// provider's amr is mapped as a second factor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp14_org_mfa_still_applies_after_sso() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let mut settings = OrgSettings::default();
    settings.mfa = portcullis::directory::MfaRequirement::Required;
    w.h.auth
        .orgs()
        .update(w.org, &settings_update(settings))
        .await
        .unwrap();
    let plain = w.sign_in(&idp, &c, "twofactor", false).await.unwrap();
    assert!(!matches!(plain, SignIn::Complete(_)), "{plain:?}");
    let c =
        w.h.auth
            .sso()
            .update_connection(
                w.org,
                c.id,
                ConnectionSettings {
                    mfa_amr: Some(vec!["mfa".into()]),
                    ..ConnectionSettings::default()
                },
            )
            .await
            .unwrap();
    let mapped = w.sign_in(&idp, &c, "twofactor", false).await.unwrap();
    assert!(matches!(mapped, SignIn::Complete(_)), "{mapped:?}");
    // Without the amr, the mapping does not help.
    let alice = w.sign_in(&idp, &c, "alice", false).await.unwrap();
    assert!(!matches!(alice, SignIn::Complete(_)));
}

// RP-12: a rotated provider key is fetched once the refetch interval allows; until then
// an unknown kid stays unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp12_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let (_, jwks_before) = idp.stats().await;
    idp.rotate_keys().await;
    let err = w.sign_in(&idp, &c, "alice", false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: the ID token's signing key is unknown"
    );
    assert_eq!(
        idp.stats().await.1,
        jwks_before,
        "no refetch within the interval"
    );
    w.h.clock.advance(Duration::from_secs(61));
    w.sign_in(&idp, &c, "alice", false).await.unwrap();
    assert_eq!(idp.stats().await.1, jwks_before + 1, "exactly one refetch");
}

// RP-11, SSRF-02: a provider on a non-public address is refused unless allowlisted;
// endpoints at the metadata address are refused even when given by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf02_private_addresses_are_refused_without_the_allowlist() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let h = portcullis_test_support::harness();
    let org = h
        .auth
        .orgs()
        .create(NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    let sso = h.auth.sso();
    let (token_before, _) = idp.stats().await;
    let err = sso
        .create_connection(
            org,
            ConnectionSettings {
                issuer: Some(idp.issuer.clone()),
                client_id: Some("portcullis".into()),
                ..ConnectionSettings::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "outbound_refused");
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/token",
        "https://[::ffff:127.0.0.1]/token",
        "https://0x7f.1/token",
        "https://2130706433/token",
        "https://idp.example@127.0.0.1/token",
        "file:///etc/passwd",
    ] {
        let err = sso
            .create_connection(
                org,
                ConnectionSettings {
                    // Public addresses (never contacted: only checked at save).
                    issuer: Some("https://8.8.8.8".into()),
                    client_id: Some("portcullis".into()),
                    endpoints: Some(portcullis::model::OidcEndpoints {
                        authorization: "https://8.8.8.8/authorize".into(),
                        token: endpoint.into(),
                        jwks_uri: "https://8.8.8.8/jwks".into(),
                        iss_in_response: false,
                    }),
                    ..ConnectionSettings::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "outbound_refused", "{endpoint}");
    }
    assert_eq!(idp.stats().await.0, token_before);
}

// ADM-16: only the exact TXT value proves a domain; a proof is per domain; another
// organization cannot claim a proven domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adm16_domain_proof_needs_the_exact_record() {
    let w = world().await;
    let sso = w.h.auth.sso();
    let claim = sso.claim_domain(w.org, "acme.test").await.unwrap();
    assert_eq!(claim.txt_name(), "_portcullis-challenge.acme.test");
    for wrong in [
        vec![vec![format!("x{}", claim.token)]],
        vec![vec![claim.token[..10].to_owned()]],
    ] {
        w.dns.set_txt(&claim.txt_name(), wrong);
        assert!(
            sso.verify_domain(w.org, "acme.test")
                .await
                .unwrap()
                .verified_at
                .is_none()
        );
    }
    // Wrong label.
    w.dns.clear(&claim.txt_name());
    w.dns.set_txt("acme.test", vec![vec![claim.token.clone()]]);
    assert!(
        sso.verify_domain(w.org, "acme.test")
            .await
            .unwrap()
            .verified_at
            .is_none()
    );
    // The record split into several character-strings counts whole.
    let (a, b) = claim.token.split_at(12);
    w.dns
        .set_txt(&claim.txt_name(), vec![vec![a.to_owned(), b.to_owned()]]);
    assert!(
        sso.verify_domain(w.org, "acme.test")
            .await
            .unwrap()
            .verified_at
            .is_some()
    );
    assert!(
        w.dns
            .queries()
            .iter()
            .any(|q| q.trim_end_matches('.') == claim.txt_name())
    );
    // Another domain of the same organization does not reset this one.
    sso.claim_domain(w.org, "other.test").await.unwrap();
    let all = sso.domains(w.org).await.unwrap();
    assert!(
        all.iter()
            .any(|d| d.domain == "acme.test" && d.verified_at.is_some())
    );
    // Another organization cannot claim it.
    let other =
        w.h.auth
            .orgs()
            .create(NewOrg::new("B", "b"))
            .await
            .unwrap()
            .id;
    assert_eq!(
        sso.claim_domain(other, "acme.test")
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    for bad in [
        "*.acme.test",
        "192.0.2.1",
        "a.example,victim.example",
        "localhost",
    ] {
        assert_eq!(
            sso.claim_domain(w.org, bad).await.unwrap_err().code(),
            "invalid_input",
            "{bad}"
        );
    }
}

// RP-15, RP-17: once the organization requires SSO, other sign-ins for its proven domain
// are refused with a pointer to SSO; discovery routes only proven domains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp15_sso_enforcement_and_rp17_discovery_use_proven_domains() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    let c = w.connection(&idp, jit()).await;
    let sso = w.h.auth.sso();
    // Claimed but unproven: discovery answers as for an unknown domain.
    sso.claim_domain(w.org, "acme.test").await.unwrap();
    assert!(
        sso.discover("alice@acme.test", &ctx())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        sso.discover("alice@unknown.test", &ctx())
            .await
            .unwrap()
            .is_none()
    );
    w.prove("acme.test").await;
    w.test(&idp, &c, "tester").await;
    w.set_status(c.id, ConnectionStatus::Active).await.unwrap();
    assert_eq!(
        sso.discover("alice@ACME.test", &ctx())
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    let password = portcullis::crypto::Password::new("correct horse battery staple");
    let mut settings = OrgSettings::default();
    settings.sso_required = true;
    w.h.auth
        .orgs()
        .update(w.org, &settings_update(settings))
        .await
        .unwrap();
    for email in ["erin@acme.test", "Erin@ACME.test"] {
        let err =
            w.h.auth
                .passwords()
                .sign_in(email, &password, &ctx())
                .await
                .unwrap_err();
        assert!(
            matches!(err, Error::SsoRequired { connection_id: Some(id) } if id == c.id),
            "{err:?}"
        );
        let err =
            w.h.auth
                .codes()
                .email()
                .send(email, &ctx())
                .await
                .unwrap_err();
        assert_eq!(err.code(), "sso_required");
        let err =
            w.h.auth
                .magic_links()
                .send(email, &Default::default(), &ctx())
                .await
                .unwrap_err();
        assert_eq!(err.code(), "sso_required");
    }
    // Other domains are untouched; lifting the rule (an administrator, or the break-glass
    // installation credential through the same setting) lets passwords back in.
    w.h.auth
        .codes()
        .email()
        .send("erin@elsewhere.test", &ctx())
        .await
        .unwrap();
    w.h.auth
        .orgs()
        .update(w.org, &settings_update(OrgSettings::default()))
        .await
        .unwrap();
    w.h.auth
        .codes()
        .email()
        .send("erin@acme.test", &ctx())
        .await
        .unwrap();
}

// RP-06: issuer and client id cannot move once identities are linked through the
// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp06_issuer_is_fixed_once_identities_are_linked() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let sso = w.h.auth.sso();
    let change = |client_id: &str| {
        sso.update_connection(
            w.org,
            c.id,
            ConnectionSettings {
                client_id: Some(client_id.into()),
                ..ConnectionSettings::default()
            },
        )
    };
    // Nobody linked yet (a test sign-in links nobody): the client id may change.
    change("portcullis").await.unwrap();
    w.sign_in(&idp, &c, "alice", false).await.unwrap();
    let err = change("someone-else").await.unwrap_err();
    assert_eq!(err.code(), "conflict");
}

// SSRF-02, SSRF-07: a host name is resolved and every address checked, at save and at
// every use; a name that resolves inside (or partly inside) is refused, whatever it
// resolved to before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf02_names_that_resolve_inside_are_refused() {
    let dns = DnsServer::start().await;
    let resolver = Arc::new(HickoryDns::with_servers(&[dns.addr()]).unwrap());
    let outbound = portcullis::Outbound::new(OutboundPolicy::default(), resolver);
    let url = "https://idp.example.test/.well-known/openid-configuration";
    dns.set_a("idp.example.test", vec![[8, 8, 8, 8].into()]);
    outbound.check_url(url).await.unwrap();
    for inside in [
        [127, 0, 0, 1],
        [10, 0, 0, 1],
        [172, 16, 0, 1],
        [192, 168, 1, 1],
        [169, 254, 169, 254],
        [100, 64, 0, 1],
        [0, 0, 0, 0],
        [198, 18, 0, 1],
        [224, 0, 0, 1],
    ] {
        dns.set_a("idp.example.test", vec![inside.into()]);
        let err = outbound.check_url(url).await.unwrap_err();
        assert_eq!(err.code(), "outbound_refused", "{inside:?}");
    }
    // One inside address among public ones is enough.
    dns.set_a(
        "idp.example.test",
        vec![[8, 8, 8, 8].into(), [10, 0, 0, 5].into()],
    );
    assert!(outbound.check_url(url).await.is_err());
    dns.clear("idp.example.test");
    for inside in [
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
    ] {
        dns.set_aaaa("idp.example.test", vec![inside.parse().unwrap()]);
        let err = outbound.check_url(url).await.unwrap_err();
        assert_eq!(err.code(), "outbound_refused", "{inside}");
    }
    // Only https, on 443.
    dns.set_a("idp.example.test", vec![[8, 8, 8, 8].into()]);
    for refused in [
        "http://idp.example.test/",
        "https://idp.example.test:6379/",
        "ftp://idp.example.test/",
    ] {
        let err = outbound.check_url(refused).await.unwrap_err();
        assert_eq!(err.code(), "outbound_refused", "{refused}");
    }
}

// ---------------------------------------------------------------- the scripted provider

/// A connection to the scripted provider (H-07), tested and active, in a world whose
/// domain acme.test is proven.
struct Scripted {
    w: World,
    op: FakeOp,
    c: SsoConnection,
}

/// A started sign-in: what the browser brings back, and the nonce the provider saw.
struct Started {
    state: String,
    nonce: String,
    binding: String,
}

impl Scripted {
    async fn new() -> Scripted {
        let op = FakeOp::start().await;
        let w = world().await;
        w.prove("acme.test").await;
        let c =
            w.h.auth
                .sso()
                .create_connection(
                    w.org,
                    ConnectionSettings {
                        issuer: Some(op.issuer.clone()),
                        client_id: Some("portcullis".into()),
                        client_secret: Some(SECRET.into()),
                        ..jit()
                    },
                )
                .await
                .unwrap();
        let scripted = Scripted { w, op, c };
        // Positive control: a correct token passes the test sign-in.
        let started = scripted.start(true).await;
        let minted = Minted::valid(&scripted.op, "portcullis", &started.nonce, "tester");
        let done = scripted.finish_raw(&started, minted).await.unwrap();
        assert!(matches!(done, SsoDone::Tested(_)), "{done:?}");
        let c = scripted
            .w
            .set_status(scripted.c.id, ConnectionStatus::Active)
            .await
            .unwrap();
        Scripted { c, ..scripted }
    }

    async fn start(&self, test: bool) -> Started {
        let options = SsoOptions {
            test,
            ..SsoOptions::default()
        };
        let started = self
            .w
            .h
            .auth
            .sso()
            .start(SsoTarget::Connection(self.c.id), options, &ctx())
            .await
            .unwrap();
        let query: std::collections::HashMap<String, String> = url::Url::parse(&started.url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        Started {
            state: query["state"].clone(),
            nonce: query["nonce"].clone(),
            binding: started.browser_binding.to_string(),
        }
    }

    async fn finish_raw(&self, started: &Started, minted: Minted) -> Result<SsoDone, Error> {
        self.op.answer(minted);
        self.w
            .h
            .auth
            .sso()
            .callback(
                "a-code",
                &started.state,
                None,
                Some(&started.binding),
                &ctx(),
            )
            .await
    }

    /// A sign-in whose token response is `mint(op, nonce)`; the users afterwards.
    async fn attempt(
        &self,
        mint: impl FnOnce(&FakeOp, &str) -> Minted,
    ) -> (Result<SsoDone, Error>, usize) {
        let started = self.start(false).await;
        let minted = mint(&self.op, &started.nonce);
        let done = self.finish_raw(&started, minted).await;
        (done, self.users().await)
    }

    async fn users(&self) -> usize {
        self.w
            .h
            .auth
            .users()
            .list(&portcullis::store::UserQuery::all(), &Default::default())
            .await
            .unwrap()
            .items
            .len()
    }
}

fn now_secs() -> i64 {
    use portcullis::Clock as _;
    portcullis::SystemClock.now().unix_secs()
}

// RP-02, RP-03, RP-04, RP-05: every ID token a certified provider would never send is
// refused, and refused before anyone is signed in, linked or provisioned. Each case
// starts from the correct token (which signs in, below) and changes one thing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp02_to_rp05_id_tokens_that_fail_a_check_are_refused() {
    type Claims = serde_json::Map<String, Value>;
    let s = Scripted::new().await;
    let before = s.users().await;
    // One claim changed in the correct token (the provider's issuer at hand).
    type Change = fn(&mut Claims, &str);
    let claim_cases: [(&str, Change, &str); 12] = [
        (
            "iss with a trailing slash",
            |c, iss| set(c, "iss", json!(format!("{iss}/"))),
            WRONG,
        ),
        (
            "iss of another provider",
            |c, _| set(c, "iss", json!("https://accounts.google.com")),
            WRONG,
        ),
        (
            "aud of another client",
            |c, _| set(c, "aud", json!("someone-else")),
            WRONG,
        ),
        (
            "a second, untrusted aud",
            |c, _| set(c, "aud", json!(["portcullis", "x"])),
            "the ID token's audience is wrong",
        ),
        (
            "azp of another client",
            |c, _| set(c, "azp", json!("someone-else")),
            "the ID token's authorized party is wrong",
        ),
        ("no nonce", |c, _| drop(c.remove("nonce")), NONCE),
        (
            "another nonce",
            |c, _| set(c, "nonce", json!("not-the-nonce")),
            NONCE,
        ),
        (
            "issued a day ago",
            |c, _| set(c, "iat", json!(now_secs() - 86_400)),
            "the ID token was not issued just now",
        ),
        (
            "no iat",
            |c, _| drop(c.remove("iat")),
            "the ID token has no issue time",
        ),
        (
            "expired",
            |c, _| set(c, "exp", json!(now_secs() - 120)),
            "the ID token has expired",
        ),
        ("no sub", |c, _| drop(c.remove("sub")), WRONG),
        (
            "a wrong at_hash",
            |c, _| set(c, "at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA")),
            "the ID token's at_hash is wrong",
        ),
    ];
    for (case, change, reason) in claim_cases {
        let (done, users) = s
            .attempt(|op, nonce| {
                let mut claims = Minted::claims(op, "portcullis", nonce, "alice");
                change(&mut claims, &op.issuer);
                Minted::signed(op.key.sign(&Value::Object(claims), Some(&op.key.kid), &[]))
            })
            .await;
        refused(done, users, before, case, reason);
    }
    // The token itself, or the answer around it.
    let other_key = TestKey::generate("op-key-1");
    let attacker = TestKey::generate("evil");
    type Mint = Box<dyn FnOnce(&FakeOp, &str) -> Minted>;
    let correct =
        |op: &FakeOp, nonce: &str| Value::Object(Minted::claims(op, "portcullis", nonce, "alice"));
    let token_cases: Vec<(&str, Mint, &str)> = vec![
        (
            "alg none",
            Box::new(move |op, n| {
                let b64 = |v: &Value| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                };
                let header = json!({"alg": "none", "typ": "JWT"});
                Minted::signed(format!("{}.{}.", b64(&header), b64(&correct(op, n))))
            }),
            "malformed ID token",
        ),
        (
            "HS256 keyed with the client secret",
            Box::new(move |op, n| {
                let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
                Minted::signed(jsonwebtoken::encode(&header, &correct(op, n), &key).unwrap())
            }),
            "the ID token's algorithm is not allowed",
        ),
        (
            "the provider's kid, another key",
            Box::new(move |op, n| {
                Minted::signed(other_key.sign(&correct(op, n), Some("op-key-1"), &[]))
            }),
            WRONG,
        ),
        (
            "an attacker's key named by jku and jwk headers",
            Box::new(move |op, n| {
                let headers = [
                    ("jku", json!("http://127.0.0.1:9/jwks")),
                    ("jwk", attacker.jwk.clone()),
                ];
                Minted::signed(attacker.sign(&correct(op, n), Some("evil"), &headers))
            }),
            "the ID token's signing key is unknown",
        ),
        (
            "no ID token in the token response",
            Box::new(|_, _| Minted::Body(json!({"access_token": "at", "token_type": "Bearer"}))),
            "the token response has no ID token",
        ),
    ];
    for (case, mint, reason) in token_cases {
        let jwks_before = s.op.jwks_calls();
        let (done, users) = s.attempt(mint).await;
        refused(done, users, before, case, reason);
        // An unknown kid refetches the JWKS at most once (RP-12).
        assert!(s.op.jwks_calls() <= jwks_before + 1, "{case}");
    }
    // The positive control, last: the correct token signs in (and provisions Alice).
    let (done, users) = s
        .attempt(|op, n| Minted::valid(op, "portcullis", n, "alice"))
        .await;
    assert!(matches!(done, Ok(SsoDone::SignedIn { .. })), "{done:?}");
    assert_eq!(users, before + 1);
}

/// What jsonwebtoken's own checks (signature, issuer, audience, required claims) say.
const WRONG: &str = "the ID token's signature, issuer or audience is wrong";
const NONCE: &str = "the ID token's nonce is wrong";

fn set(claims: &mut serde_json::Map<String, Value>, name: &str, value: Value) {
    claims.insert(name.to_owned(), value);
}

/// A refusal for `reason`, with nobody provisioned.
fn refused(done: Result<SsoDone, Error>, users: usize, before: usize, case: &str, reason: &str) {
    let err = done.expect_err(case);
    assert_eq!(
        err.to_string(),
        format!("single sign-on failed: {reason}"),
        "{case}"
    );
    assert_eq!(users, before, "{case}: nobody is provisioned");
}

const BOB_PASSWORD: &str = "correct horse battery staple";

/// Signs Bob in with his password: the session's id.
async fn bob_session(w: &World) -> portcullis::SessionId {
    let password = portcullis::crypto::Password::new(BOB_PASSWORD);
    let signed =
        w.h.auth
            .passwords()
            .sign_in("bob@acme.test", &password, &ctx())
            .await
            .unwrap();
    portcullis_test_support::tokens(signed).session_id
}

// RP-07 (the way in after a refused link), DESIGN invariant 13: the account's owner,
// freshly signed in, links their account at the provider explicitly; a stale sign-in or
// a credential change in between is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp07_the_owner_links_explicitly_after_signing_in() {
    let Some(idp) = idp(accounts()).await else {
        return;
    };
    let w = world().await;
    w.prove("acme.test").await;
    let c = w.active(&idp, jit(), "tester").await;
    let signed_up =
        portcullis_test_support::password_sign_up(&w.h, "bob@acme.test", BOB_PASSWORD, &ctx())
            .await
            .unwrap();
    let bob =
        w.h.auth
            .users()
            .get(portcullis_test_support::tokens(signed_up).user_id)
            .await
            .unwrap();
    assert!(bob.email_verified);
    // The provider does not vouch for the address: no implicit link.
    let refused = w.sign_in(&idp, &c, "mallory", false).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "single sign-on failed: an account with this email exists: sign in to it first, then link"
    );
    let sso = w.h.auth.sso();
    let link = |session| {
        let w = &w;
        let idp = &idp;
        let c = &c;
        async move {
            let started = w.h.auth.sso().start_link(c.id, session, &ctx()).await?;
            let back = idp
                .authorize(&format!("{}&login_hint=mallory", started.url))
                .await
                .unwrap();
            let q: std::collections::HashMap<String, String> =
                back.query_pairs().into_owned().collect();
            w.h.auth
                .sso()
                .callback(
                    &q["code"],
                    &q["state"],
                    q.get("iss").map(String::as_str),
                    Some(&started.browser_binding),
                    &ctx(),
                )
                .await
        }
    };
    // Credentials that change while the provider is asked: no link.
    let session = bob_session(&w).await;
    let started = sso.start_link(c.id, session, &ctx()).await.unwrap();
    w.h.auth.users().block(bob.id, &ctx()).await.unwrap();
    w.h.auth.users().unblock(bob.id, &ctx()).await.unwrap();
    let back = idp
        .authorize(&format!("{}&login_hint=mallory", started.url))
        .await
        .unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    let err = sso
        .callback(
            &q["code"],
            &q["state"],
            q.get("iss").map(String::as_str),
            Some(&started.browser_binding),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: the account changed since the link was started"
    );
    // Freshly signed in, unchanged: linked, and the provider's account signs in as Bob.
    let session = bob_session(&w).await;
    let linked = link(session).await.unwrap();
    assert!(
        matches!(linked, SsoDone::Linked { user_id, .. } if user_id == bob.id),
        "{linked:?}"
    );
    let signed = w.sign_in(&idp, &c, "mallory", false).await.unwrap();
    assert_eq!(portcullis_test_support::tokens(signed).user_id, bob.id);
    // A sign-in older than the fresh window does not start a link.
    let session = bob_session(&w).await;
    w.h.clock.advance(Duration::from_secs(11 * 60));
    let stale = sso.start_link(c.id, session, &ctx()).await.unwrap_err();
    assert_eq!(stale.code(), "reauth_required");
}

// RP-09: the Google preset against a stand-in (the real provider with its own issuer,
// `hd` and `email_verified` claims): a Workspace restriction is checked on the ID token's
// `hd` claim, and Google must have verified the email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp09_google_preset_checks_hd_and_email_verified() {
    let Some(google) = Idp::start(json!({
        "clients": [{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": ["http://localhost:8080/api/v1/social/google/callback"],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
        "accounts": {
            "worker": { "email": "worker@acme.test", "email_verified": true, "hd": "acme.test" },
            "consumer": { "email": "someone@gmail.test", "email_verified": true },
            "elsewhere": { "email": "x@other.test", "email_verified": true, "hd": "other.test" },
            "unverified": { "email": "u@acme.test", "email_verified": false, "hd": "acme.test" },
        },
    }))
    .await
    else {
        return;
    };
    let w = world().await;
    let settings = |hd: Option<&str>| ConnectionSettings {
        preset: Some(portcullis::model::Preset::Google),
        // The stand-in's issuer instead of https://accounts.google.com.
        issuer: Some(google.issuer.clone()),
        client_id: Some("portcullis".into()),
        client_secret: Some(SECRET.into()),
        hosted_domain: hd.map(str::to_owned),
        jit_provisioning: Some(true),
        ..ConnectionSettings::default()
    };
    let c = w
        .active(&google, settings(Some("acme.test")), "worker")
        .await;
    assert_eq!(
        w.h.auth.sso().redirect_uri(&c),
        "http://localhost:8080/api/v1/social/google/callback"
    );
    // The preset is found for the organization's Google sign-in.
    let mut in_org = ctx();
    in_org.org_id = Some(w.org);
    let found =
        w.h.auth
            .sso()
            .social(portcullis::model::Preset::Google, &in_org)
            .await
            .unwrap();
    assert_eq!(found.id, c.id);
    // Restricted to acme.test: only its Workspace accounts, verified by Google.
    let signed = w.sign_in(&google, &c, "worker", false).await.unwrap();
    assert!(matches!(signed, SignIn::Complete(_)), "{signed:?}");
    for (login, reason) in [
        (
            "consumer",
            "the account is outside the allowed Workspace domain",
        ),
        (
            "elsewhere",
            "the account is outside the allowed Workspace domain",
        ),
        ("unverified", "Google did not verify the email"),
    ] {
        let err = w.sign_in(&google, &c, login, false).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("single sign-on failed: {reason}"),
            "{login}"
        );
        let email = match login {
            "consumer" => "someone@gmail.test",
            "elsewhere" => "x@other.test",
            _ => "u@acme.test",
        };
        assert!(
            w.h.auth.users().get_by_email(email).await.is_err(),
            "{login}"
        );
    }
    // Unrestricted: any Google account whose email Google verified.
    let c =
        w.h.auth
            .sso()
            .create_connection(w.org, settings(None))
            .await
            .unwrap();
    w.test(&google, &c, "consumer").await;
    let c = w.set_status(c.id, ConnectionStatus::Active).await.unwrap();
    w.sign_in(&google, &c, "consumer", false).await.unwrap();
    let err = w
        .sign_in(&google, &c, "unverified", false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "single sign-on failed: Google did not verify the email"
    );
}
