//! Enterprise SSO over SAML 2.0, attacked (checklist 2.18). Responses are minted by the
//! fixture kit (`portcullis_test_support::saml`, H-08): a test IdP key signs them through
//! libxmlsec1, and mutators make the attack variants. Every table starts with a positive
//! control that must sign in, so a broken builder cannot make the refusals pass vacuously.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use portcullis::ManualClock;
use portcullis::flows::sso::{ConnectionSettings, SamlInput};
use portcullis::model::{ConnectionKind, ConnectionStatus, NameIdFormat, OrgId, SsoConnection};
use portcullis::store::Storage;
use portcullis::store::UserStore as _;
use portcullis::{
    Error, HickoryDns, NewOrg, NewUser, OutboundPolicy, SsoDone, SsoOptions, SsoTarget,
};
use portcullis_memory::MemoryStore;
use portcullis_test_support::dns::DnsServer;
use portcullis_test_support::saml::{
    EncAlg, IdpKey, ResponseSpec, SigAlg, encode, encrypt_assertion, mutate,
};
use portcullis_test_support::{Harness, ctx, harness_at, tokens};

const IDP: &str = "https://idp.acme.test/saml/metadata";
const SSO_URL: &str = "http://127.0.0.1:9/saml/sso";
const VICTIM: &str = "victim@acme.test";

/// Why a response posted with a `RelayState` that is no live handle is refused.
const HANDLE_REFUSALS: [&str; 2] = [
    "unknown, expired or used state",
    "the RelayState is not one of ours",
];

struct World<S = MemoryStore> {
    h: Harness<S>,
    _dns: DnsServer,
    org: OrgId,
    key: IdpKey,
    connection: SsoConnection,
}

/// A sign-in started at the engine: what the browser carries to the IdP and back.
struct Started {
    request_id: String,
    relay_state: String,
    binding: String,
}

async fn world(saml: SamlInput) -> World {
    let now = portcullis::Clock::now(&portcullis::SystemClock);
    world_on(MemoryStore::new(), ManualClock::new(now), saml).await
}

/// An engine on `store` that may reach loopback and proves domains through `dns`.
fn engine_on<S: Storage + Clone + 'static>(
    store: S,
    clock: ManualClock,
    dns: &DnsServer,
) -> Harness<S> {
    let verifier = Arc::new(HickoryDns::with_servers(&[dns.addr()]).unwrap());
    harness_at(
        store,
        clock,
        portcullis::Config::new("http://localhost:8080"),
        |b| {
            b.outbound_policy(OutboundPolicy::default().allow_loopback())
                .domain_verifier(verifier)
        },
    )
}

/// An organization with the proven domain acme.test, an active SAML connection through
/// the test IdP's key, and the victim's verified account.
async fn world_on<S: Storage + Clone + 'static>(
    store: S,
    clock: ManualClock,
    saml: SamlInput,
) -> World<S> {
    let dns = DnsServer::start().await;
    let h = engine_on(store, clock, &dns);
    let org = h
        .auth
        .orgs()
        .create(NewOrg::new("Acme", "acme"))
        .await
        .unwrap()
        .id;
    let claim = h.auth.sso().claim_domain(org, "acme.test").await.unwrap();
    dns.set_txt(&claim.txt_name(), vec![vec![claim.token.clone()]]);
    h.auth.sso().verify_domain(org, "acme.test").await.unwrap();
    let key = IdpKey::generate("idp.acme.test");
    let saml = SamlInput {
        sso_url: Some(SSO_URL.into()),
        certificates: Some(vec![key.cert_pem()]),
        name_id_format: Some(NameIdFormat::Email),
        ..saml
    };
    let connection = h
        .auth
        .sso()
        .create_connection(
            org,
            ConnectionSettings {
                kind: Some(ConnectionKind::Saml),
                issuer: Some(IDP.into()),
                saml: Some(saml),
                domains: Some(vec!["acme.test".into()]),
                jit_provisioning: Some(true),
                ..ConnectionSettings::default()
            },
        )
        .await
        .unwrap();
    // The victim: an existing, linked account of the organization.
    let mut w = World {
        h,
        _dns: dns,
        org,
        key,
        connection,
    };
    w.activate().await;
    w.h.auth
        .users()
        .create(verified_user(VICTIM), &ctx())
        .await
        .unwrap();
    w
}

impl<S> World<S> {
    fn sso(&self) -> portcullis::flows::sso::Sso<'_> {
        self.h.auth.sso()
    }

    /// A test sign-in, then activation.
    async fn activate(&mut self) {
        let started = self.start_with(true).await;
        let xml = self.spec(&started, "it-admin@acme.test").sign(&self.key);
        match self.post(&started, &xml).await.unwrap() {
            SsoDone::Tested(t) => assert_eq!(t.subject, "it-admin@acme.test"),
            other => panic!("expected a passed test, got {other:?}"),
        }
        let settings = ConnectionSettings {
            status: Some(ConnectionStatus::Active),
            ..ConnectionSettings::default()
        };
        self.connection = self
            .sso()
            .update_connection(self.org, self.connection.id, settings)
            .await
            .unwrap();
    }

    async fn start(&self) -> Started {
        self.start_with(false).await
    }

    async fn start_with(&self, test: bool) -> Started {
        let options = SsoOptions {
            test,
            ..SsoOptions::default()
        };
        let redirect = self
            .sso()
            .start(SsoTarget::Connection(self.connection.id), options, &ctx())
            .await
            .unwrap();
        let url = url::Url::parse(&redirect.url).unwrap();
        assert!(redirect.url.starts_with(SSO_URL));
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let deflated = base64::engine::general_purpose::STANDARD
            .decode(param("SAMLRequest"))
            .unwrap();
        let mut request = String::new();
        flate2::read::DeflateDecoder::new(&deflated[..])
            .read_to_string(&mut request)
            .unwrap();
        let doc = roxmltree::Document::parse(&request).unwrap();
        let id = doc.root_element().attribute("ID").unwrap().to_owned();
        Started {
            request_id: id,
            relay_state: param("RelayState"),
            binding: redirect.browser_binding.to_string(),
        }
    }

    fn now(&self) -> i64 {
        self.h.auth.now().unix_secs()
    }

    /// A correct answer to `started` for `name_id`.
    fn spec(&self, started: &Started, name_id: &str) -> ResponseSpec {
        let id = self.connection.id;
        let mut spec = ResponseSpec::new(
            IDP,
            &self.sso().sp_entity_id(id),
            &self.sso().acs_url(id),
            name_id,
            self.now(),
        );
        spec.in_response_to = Some(started.request_id.clone());
        spec.attribute("email", &[name_id])
    }

    async fn post(&self, started: &Started, xml: &str) -> Result<SsoDone, Error> {
        self.post_encoded(started, &encode(xml)).await
    }

    async fn post_encoded(&self, started: &Started, encoded: &str) -> Result<SsoDone, Error> {
        self.sso()
            .saml_acs(
                self.connection.id,
                encoded,
                Some(&started.relay_state),
                Some(&started.binding),
                &ctx(),
            )
            .await
    }

    /// Who a finished sign-in signed in: their email, or their id when they have none.
    async fn signed_in_as(&self, done: SsoDone) -> String {
        let SsoDone::SignedIn { sign_in, .. } = done else {
            panic!("expected a sign-in, got {done:?}");
        };
        let user = self
            .h
            .auth
            .users()
            .get(tokens(sign_in).user_id)
            .await
            .unwrap();
        user.email
            .map(|e| e.as_str().to_owned())
            .unwrap_or_else(|| user.id.to_string())
    }

    /// The positive control: a correct response for `name_id` signs in as them.
    async fn control(&self, name_id: &str) {
        let started = self.start().await;
        let xml = self.spec(&started, name_id).sign(&self.key);
        let done = self.post(&started, &xml).await.unwrap();
        assert_eq!(self.signed_in_as(done).await, name_id);
    }

    /// `attack` is refused and the victim has no session.
    /// `attack` is refused by the SAML checks (not because its handle was already spent:
    /// every attack answers a fresh request) and the victim has no session.
    async fn refused(&self, what: &str, started: &Started, attack: &str) {
        let result = self.post(started, attack).await;
        assert!(
            matches!(result, Err(Error::SsoFailed { reason }) if !HANDLE_REFUSALS.contains(&reason)),
            "{what}: expected a refusal of the response, got {result:?}"
        );
        self.victim_untouched().await;
    }

    /// `attack` is refused at its `RelayState`, which is no live handle of ours.
    async fn refused_handle(&self, what: &str, started: &Started, attack: &str) {
        let result = self.post(started, attack).await;
        assert!(
            matches!(result, Err(Error::SsoFailed { reason }) if HANDLE_REFUSALS.contains(&reason)),
            "{what}: expected a refusal of the handle, got {result:?}"
        );
        self.victim_untouched().await;
    }

    async fn victim_untouched(&self) {
        let victim = self.h.auth.users().get_by_email(VICTIM).await.unwrap();
        let sessions = self.h.auth.sessions().list(victim.id).await.unwrap();
        assert!(sessions.is_empty(), "the victim was signed in");
    }
}

/// Posts an unsolicited response (no RelayState, no binding).
async fn post<S>(w: &World<S>, xml: &str) -> Result<SsoDone, Error> {
    w.sso()
        .saml_acs(w.connection.id, &encode(xml), None, None, &ctx())
        .await
}

/// A response nobody asked for (IdP-initiated) for `name_id`.
fn unsolicited<S>(w: &World<S>, name_id: &str) -> String {
    let id = w.connection.id;
    ResponseSpec::new(
        IDP,
        &w.sso().sp_entity_id(id),
        &w.sso().acs_url(id),
        name_id,
        w.now(),
    )
    .attribute("email", &[name_id])
    .sign(&w.key)
}

fn verified_user(email: &str) -> NewUser {
    let mut user = NewUser::with_email(email);
    user.email_verified = true;
    user
}

fn default_saml() -> SamlInput {
    SamlInput::default()
}

/// SAML-03: XSW1–XSW8 with the victim's NameID are all refused. XSW1–2 wrap a signed
/// Response, so they run against a connection that accepts response signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_03_signature_wrapping_xsw1_to_xsw8_is_refused() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;
    for n in 3..=8 {
        let started = w.start().await;
        let signed = w.spec(&started, "attacker@acme.test").sign(&w.key);
        w.refused(
            &format!("XSW{n}"),
            &started,
            &mutate::xsw(n, &signed, VICTIM),
        )
        .await;
    }
    let w = world(SamlInput {
        response_signature_only: Some(true),
        ..default_saml()
    })
    .await;
    let started = w.start().await;
    let mut spec = w.spec(&started, "bob@acme.test");
    (spec.sign_response, spec.sign_assertion) = (true, false);
    let done = w.post(&started, &spec.sign(&w.key)).await.unwrap();
    assert_eq!(w.signed_in_as(done).await, "bob@acme.test");
    for n in 1..=2 {
        let started = w.start().await;
        let mut spec = w.spec(&started, "attacker@acme.test");
        (spec.sign_response, spec.sign_assertion) = (true, false);
        let signed = spec.sign(&w.key);
        w.refused(
            &format!("XSW{n}"),
            &started,
            &mutate::xsw(n, &signed, VICTIM),
        )
        .await;
    }
}

/// SAML-07: a comment inside a signed NameID or attribute never truncates it: the identity
/// is the whole text, not the victim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_07_a_comment_in_name_id_does_not_truncate_it() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;
    let evil = format!("{VICTIM}.evil.com");
    let started = w.start().await;
    let signed = w.spec(&started, &evil).sign(&w.key);
    let attack = mutate::comment_in_attribute(
        &mutate::comment_in_name_id(&signed, VICTIM.len()),
        "email",
        VICTIM.len(),
    );
    let done = w.post(&started, &attack).await.unwrap();
    // Signed in as the whole identity (an address the connection does not serve, so not
    // verified and not linked to anyone), never as the victim.
    let SsoDone::SignedIn { sign_in, .. } = done else {
        panic!("expected a sign-in");
    };
    let user_id = tokens(sign_in).user_id;
    let victim = w.h.auth.users().get_by_email(VICTIM).await.unwrap();
    assert_ne!(user_id, victim.id);
    let provider = w.connection.id.to_string();
    let identity =
        w.h.store
            .get_identity(&provider, &evil)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(identity.user_id, user_id);
    assert!(
        w.h.store
            .get_identity(&provider, VICTIM)
            .await
            .unwrap()
            .is_none()
    );
    w.victim_untouched().await;
}

/// SAML-08, SAML-09, SAML-10 and a tampered attribute: what the signature does not cover,
/// or who did not sign it, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_08_09_10_unsigned_foreign_or_weak_signatures_are_refused() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;

    // SAML-08: an unsigned assertion inside a signed response, under the default policy.
    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    (spec.sign_response, spec.sign_assertion) = (true, false);
    w.refused("response-only signature", &started, &spec.sign(&w.key))
        .await;
    // ... and nothing signed at all.
    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    spec.sign_assertion = false;
    w.refused("unsigned", &started, &spec.template(&w.key))
        .await;

    // SAML-09: an attacker's key, its certificate in KeyInfo.
    let attacker = IdpKey::generate("idp.acme.test");
    let started = w.start().await;
    let xml = w.spec(&started, VICTIM).sign(&attacker);
    w.refused("unconfigured certificate", &started, &xml).await;

    // SAML-10: SHA-1, and an MD5 digest under an RSA-SHA256 signature.
    for alg in [SigAlg::RsaSha1, SigAlg::RsaSha256Md5Digest] {
        let started = w.start().await;
        let mut spec = w.spec(&started, VICTIM);
        spec.alg = alg;
        w.refused(&format!("{alg:?}"), &started, &spec.sign(&w.key))
            .await;
    }

    // A tampered attribute breaks the signature.
    let started = w.start().await;
    let signed = w.spec(&started, "attacker@acme.test").sign(&w.key);
    let attack = mutate::tamper_attribute(&signed, "email", VICTIM);
    w.refused("tampered attribute", &started, &attack).await;

    // Stronger algorithms pass.
    let started = w.start().await;
    let mut spec = w.spec(&started, "carol@acme.test");
    spec.alg = SigAlg::RsaSha512;
    let done = w.post(&started, &spec.sign(&w.key)).await.unwrap();
    assert_eq!(w.signed_in_as(done).await, "carol@acme.test");
}

/// SAML-09: both certificates of a rotation verify; another organization's IdP does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_09_rotation_certificates_and_another_tenants_idp() {
    let mut w = world(default_saml()).await;
    let next = IdpKey::generate("idp.acme.test next");
    let settings = ConnectionSettings {
        saml: Some(SamlInput {
            certificates: Some(vec![w.key.cert_pem(), next.cert_base64()]),
            ..SamlInput::default()
        }),
        ..ConnectionSettings::default()
    };
    let updated = w
        .sso()
        .update_connection(w.org, w.connection.id, settings)
        .await
        .unwrap();
    // ADM-10 / SAML-19: new certificates need a new test sign-in.
    assert_eq!(updated.status, ConnectionStatus::Draft);
    w.connection = updated;
    w.activate().await;
    w.control("alice@acme.test").await;
    let started = w.start().await;
    let done = w
        .post(&started, &w.spec(&started, "bob@acme.test").sign(&next))
        .await
        .unwrap();
    assert_eq!(w.signed_in_as(done).await, "bob@acme.test");

    // Org B's IdP, configured for org B's connection, signs for A's victim.
    let b = world(default_saml()).await;
    let started = w.start().await;
    let xml = w.spec(&started, VICTIM).sign(&b.key);
    w.refused("another tenant's IdP", &started, &xml).await;
}

/// SAML-11, SAML-12, SAML-13, SAML-15: the response must answer our request, be addressed
/// to us, come from the configured IdP, and be in its time window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_11_12_13_15_binding_audience_issuer_and_time() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;

    // A response to request R1 posted with R2's relay state (another sign-in).
    let r1 = w.start().await;
    let r2 = w.start().await;
    let xml = w.spec(&r1, VICTIM).sign(&w.key);
    w.refused("answer to another request", &r2, &xml).await;
    // Mismatch only inside SubjectConfirmationData: the Response's own InResponseTo is
    // right, the signed one is not.
    let r3 = w.start().await;
    let signed = w.spec(&r1, VICTIM).sign(&w.key);
    let attack = signed.replacen(
        &format!("InResponseTo=\"{}\"", r1.request_id),
        &format!("InResponseTo=\"{}\"", r3.request_id),
        1,
    );
    w.refused("signed InResponseTo of another request", &r3, &attack)
        .await;
    // Another browser: the binding does not match.
    let started = w.start().await;
    let other_browser = Started {
        binding: "another-browsers-cookie".into(),
        ..started
    };
    let xml = w.spec(&other_browser, VICTIM).sign(&w.key);
    w.refused("another browser", &other_browser, &xml).await;
    // Spent: a relay state works once.
    let started = w.start().await;
    let xml = w.spec(&started, "dave@acme.test").sign(&w.key);
    w.post(&started, &xml).await.unwrap();
    w.refused_handle("second post", &started, &xml).await;

    // SAML-12: another audience, another recipient, another destination, no audience.
    type Change = fn(&mut ResponseSpec);
    let changes: [(&str, Change); 5] = [
        ("another audience", |s| {
            s.audiences = vec!["https://other-sp.test".into()]
        }),
        ("no audience", |s| s.audiences.clear()),
        ("another recipient", |s| {
            s.recipient = "https://other-sp.test/acs".into()
        }),
        ("another destination", |s| {
            s.destination = Some("https://other-sp.test/acs".into());
        }),
        // SAML-15: another IdP's entity ID, and a failure status.
        ("another issuer", |s| {
            s.issuer = "https://evil.test/idp".into()
        }),
    ];
    for (what, change) in changes {
        let started = w.start().await;
        let mut spec = w.spec(&started, VICTIM);
        change(&mut spec);
        w.refused(what, &started, &spec.sign(&w.key)).await;
    }
    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    spec.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into();
    w.refused("failure status", &started, &spec.sign(&w.key))
        .await;

    // SAML-13: expired by the skew and a second; exactly at the edge it still passes.
    let skew = 180;
    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    spec.not_on_or_after = w.now() - skew - 1;
    w.refused("expired", &started, &spec.sign(&w.key)).await;
    let started = w.start().await;
    let mut spec = w.spec(&started, "erin@acme.test");
    spec.not_on_or_after = w.now() - skew + 1;
    let done = w.post(&started, &spec.sign(&w.key)).await.unwrap();
    assert_eq!(w.signed_in_as(done).await, "erin@acme.test");
    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    spec.not_before = w.now() + skew + 5;
    w.refused("not yet valid", &started, &spec.sign(&w.key))
        .await;
    // The clock moves past the window between issue and post.
    let started = w.start().await;
    let xml = w.spec(&started, VICTIM).sign(&w.key);
    w.h.clock.advance(Duration::from_secs(300 + 181));
    w.refused("expired in transit", &started, &xml).await;
}

/// SAML-01, SAML-04, SAML-05, SAML-06: hostile XML and ambiguous structure are refused
/// before (or by) signature work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_01_04_05_06_hostile_xml_and_ambiguous_structure() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let canary_url = format!("http://{}/entity", canary.local_addr().unwrap());

    type Mutation = Box<dyn Fn(&str) -> String>;
    let url = canary_url.clone();
    let attacks: Vec<(&str, Mutation)> = vec![
        ("DOCTYPE with ATTLIST", Box::new(mutate::doctype_attlist)),
        (
            "external entity",
            Box::new(move |s| mutate::external_entity(s, &url)),
        ),
        ("billion laughs", Box::new(mutate::billion_laughs)),
        ("processing instruction", Box::new(mutate::pi_in_name_id)),
        (
            "assertion before",
            Box::new(|s| mutate::extra_assertion_before(s, VICTIM)),
        ),
        (
            "assertion in Extensions",
            Box::new(|s| mutate::assertion_in_extensions(s, VICTIM)),
        ),
        (
            "assertion in StatusDetail",
            Box::new(|s| mutate::assertion_in_status_detail(s, VICTIM)),
        ),
        ("duplicate ID", Box::new(mutate::duplicate_id)),
        ("two SignedInfo", Box::new(mutate::two_signed_info)),
        ("two References", Box::new(mutate::two_references)),
        ("XPath transform", Box::new(mutate::xpath_transform)),
        (
            "DigestValue in a comment",
            Box::new(mutate::digest_in_comment),
        ),
        ("decoy DigestValue", Box::new(mutate::digest_elsewhere)),
    ];
    // Each attack answers its own fresh request.
    for (what, mutation) in attacks {
        let started = w.start().await;
        let signed = w.spec(&started, VICTIM).sign(&w.key);
        w.refused(what, &started, &mutation(&signed)).await;
    }
    let started = w.start().await;
    let attack = mutate::assertion_in_advice(&w.spec(&started, VICTIM), &w.key, VICTIM);
    w.refused("assertion in Advice", &started, &attack).await;
    let started = w.start().await;
    let attack = mutate::empty_reference_uri(&w.spec(&started, VICTIM), &w.key);
    w.refused("URI=\"\"", &started, &attack).await;
    // No connection reached the canary.
    let accepted = tokio::time::timeout(Duration::from_millis(100), canary.accept()).await;
    assert!(accepted.is_err(), "the external entity was fetched");

    // Size: 10 MiB of base64 is refused before decoding.
    let started = w.start().await;
    let huge = "A".repeat(10 * 1024 * 1024);
    let result = w.post_encoded(&started, &huge).await;
    assert!(matches!(result, Err(Error::SsoFailed { .. })), "{result:?}");
}

/// SAML-14 and SAML-16: an unsolicited response is refused by default; with IdP-initiated
/// sign-in on, it needs the person's confirmation, and its assertion works once, also
/// under 16 concurrent posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saml_14_16_unsolicited_responses_replay_and_confirmation() {
    let w = world(default_saml()).await;
    let refused = post(&w, &unsolicited(&w, VICTIM)).await;
    assert!(
        matches!(refused, Err(Error::SsoFailed { .. })),
        "{refused:?}"
    );
    w.victim_untouched().await;

    let w = world(SamlInput {
        idp_initiated: Some(true),
        ..default_saml()
    })
    .await;
    let xml = unsolicited(&w, "frank@acme.test");
    let SsoDone::Confirm { token, email, .. } = post(&w, &xml).await.unwrap() else {
        panic!("expected a confirmation step");
    };
    assert_eq!(email.as_deref(), Some("frank@acme.test"));
    // No session until confirmed.
    assert!(
        w.h.auth
            .users()
            .get_by_email("frank@acme.test")
            .await
            .is_err()
    );
    // SAML-14: the same assertion again is refused.
    let replay = post(&w, &xml).await;
    assert!(matches!(replay, Err(Error::SsoFailed { .. })), "{replay:?}");
    let done = w.sso().saml_confirm(token.secret(), &ctx()).await.unwrap();
    assert_eq!(w.signed_in_as(done).await, "frank@acme.test");
    let again = w.sso().saml_confirm(token.secret(), &ctx()).await;
    assert!(matches!(again, Err(Error::InvalidToken)), "{again:?}");

    // 16 barrier-started posts of one assertion: one confirmation step.
    let xml = unsolicited(&w, "grace@acme.test");
    let w = Arc::new(w);
    let encoded = encode(&xml);
    let outcomes = portcullis::testing::race(16, |_| {
        let (w, encoded) = (w.clone(), encoded.clone());
        async move {
            w.sso()
                .saml_acs(w.connection.id, &encoded, None, None, &ctx())
                .await
                .is_ok()
        }
    })
    .await;
    let passed = outcomes.into_iter().filter(|ok| *ok).count();
    assert_eq!(passed, 1);
}

/// SAML-18: transient NameIDs never sign in; the identity cannot be remapped; an email
/// from the IdP links an existing account only in the organization's proven domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_18_identity_comes_from_a_stable_name_id() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;
    let started = w.start().await;
    let mut spec = w.spec(&started, "_transient-1234");
    spec.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into();
    w.refused("transient NameID", &started, &spec.sign(&w.key))
        .await;

    // The mapping has no field for the identity: trying to map one is refused at save.
    let refused: Result<ConnectionSettings, _> =
        serde_json::from_value(serde_json::json!({"claims": {"subject": "email"}}));
    assert!(refused.is_err());

    // The victim's email from the IdP, in the proven domain the connection serves: the
    // existing verified account is linked (RP-07), and signs in.
    let started = w.start().await;
    let done = w
        .post(&started, &w.spec(&started, VICTIM).sign(&w.key))
        .await
        .unwrap();
    assert_eq!(w.signed_in_as(done).await, VICTIM);

    // An address outside the served domains is not trusted to link anyone: the owner of
    // that address must sign in and link (RP-07); nothing is linked, nobody signed in.
    let someone =
        w.h.auth
            .users()
            .create(verified_user("someone@other.test"), &ctx())
            .await
            .unwrap();
    let started = w.start().await;
    let result = w
        .post(
            &started,
            &w.spec(&started, "someone@other.test").sign(&w.key),
        )
        .await;
    assert!(matches!(result, Err(Error::SsoFailed { .. })), "{result:?}");
    let provider = w.connection.id.to_string();
    let identity =
        w.h.store
            .get_identity(&provider, "someone@other.test")
            .await
            .unwrap();
    assert!(identity.is_none());
    assert!(
        w.h.auth
            .sessions()
            .list(someone.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// SAML-14: a spent assertion stays spent across a restart of a durable store (sled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_14_a_spent_assertion_stays_spent_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = portcullis::Clock::now(&portcullis::SystemClock);
    let clock = ManualClock::new(now);
    let store = portcullis_sled::SledStore::open(dir.path()).unwrap();
    let saml = SamlInput {
        idp_initiated: Some(true),
        ..default_saml()
    };
    let w = world_on(store, clock.clone(), saml).await;
    let xml = unsolicited(&w, "heidi@acme.test");
    assert!(matches!(post(&w, &xml).await, Ok(SsoDone::Confirm { .. })));
    let connection = w.connection.id;
    drop(w);
    let store = portcullis_sled::SledStore::open(dir.path()).unwrap();
    let dns = DnsServer::start().await;
    let h = engine_on(store, clock, &dns);
    let replay = h
        .auth
        .sso()
        .saml_acs(connection, &encode(&xml), None, None, &ctx())
        .await;
    assert!(
        matches!(replay, Err(Error::SsoFailed { reason }) if reason.contains("already used")),
        "{replay:?}"
    );
}

/// SAML-19: metadata comes only through the outbound policy and is parsed like any SAML
/// message; new certificates from it send the connection back to a test sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_19_metadata_import_is_guarded_and_a_certificate_change_needs_a_test() {
    let w = world(default_saml()).await;
    let update = |saml: SamlInput| ConnectionSettings {
        saml: Some(saml),
        ..ConnectionSettings::default()
    };
    // The cloud metadata address is never fetched.
    let refused = w
        .sso()
        .update_connection(
            w.org,
            w.connection.id,
            update(SamlInput {
                metadata_url: Some("http://169.254.169.254/latest/meta-data".into()),
                ..SamlInput::default()
            }),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::OutboundRefused { .. })),
        "{refused:?}"
    );
    // Metadata with a DTD is refused.
    let next = IdpKey::generate("idp.acme.test 2027");
    let metadata = idp_metadata(IDP, "http://127.0.0.1:9/saml/sso2", &next);
    let with_dtd = format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{metadata}");
    let refused = w
        .sso()
        .update_connection(
            w.org,
            w.connection.id,
            update(SamlInput {
                metadata_xml: Some(with_dtd),
                ..SamlInput::default()
            }),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    assert_eq!(
        w.sso()
            .connection(w.org, w.connection.id)
            .await
            .unwrap()
            .status,
        ConnectionStatus::Active
    );
    // Pasted metadata with a new certificate: imported, and the connection is a draft
    // again until a test sign-in passes.
    let updated = w
        .sso()
        .update_connection(
            w.org,
            w.connection.id,
            update(SamlInput {
                metadata_xml: Some(metadata),
                ..SamlInput::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.status, ConnectionStatus::Draft);
    let saml = updated.saml.unwrap();
    assert_eq!(saml.certificates, vec![next.cert_base64()]);
    assert_eq!(saml.sso_url, "http://127.0.0.1:9/saml/sso2");
}

/// An IdP's metadata document, as IdPs publish it.
fn idp_metadata(entity_id: &str, sso_url: &str, key: &IdpKey) -> String {
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso_url}/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
        cert = key.cert_base64(),
    )
}

/// Encrypted assertions: our metadata offers our certificate; an encrypted, signed
/// assertion signs in; an encrypted unsigned one (SAML-08), RSA 1.5 key transport and CBC
/// content (SAML-10), another SP's ciphertext and a mangled one are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_assertions_are_decrypted_then_checked_like_any_other() {
    let w = world(default_saml()).await;
    let saml = w.connection.saml.as_ref().unwrap();
    let sp_cert = saml.sp_certificate.clone().unwrap();
    let metadata = w.sso().saml_metadata(w.connection.id).await.unwrap();
    assert!(metadata.contains("use=\"encryption\""), "{metadata}");
    assert!(metadata.contains(&sp_cert));
    // The sealed key is never shown.
    let view = portcullis::flows::sso::view(&w.connection);
    assert!(view["saml"].get("sp_key").is_none(), "{view}");
    assert!(view["saml"]["sp_certificate"].is_string());

    w.control("alice@acme.test").await;
    let started = w.start().await;
    let signed = w.spec(&started, "ivan@acme.test").sign(&w.key);
    let encrypted = encrypt_assertion(&signed, &sp_cert, EncAlg::Aes128GcmOaep);
    assert!(!encrypted.contains("ivan@acme.test"));
    let done = w.post(&started, &encrypted).await.unwrap();
    assert_eq!(w.signed_in_as(done).await, "ivan@acme.test");

    let started = w.start().await;
    let mut spec = w.spec(&started, VICTIM);
    spec.sign_assertion = false;
    let attack = encrypt_assertion(&spec.template(&w.key), &sp_cert, EncAlg::Aes128GcmOaep);
    w.refused("encrypted, unsigned", &started, &attack).await;

    for alg in [EncAlg::Aes128GcmRsa15, EncAlg::Aes128CbcOaep] {
        let started = w.start().await;
        let signed = w.spec(&started, VICTIM).sign(&w.key);
        let attack = encrypt_assertion(&signed, &sp_cert, alg);
        w.refused(&format!("{alg:?}"), &started, &attack).await;
    }

    // Encrypted to another connection's key.
    let other = world(default_saml()).await;
    let other_cert = other.connection.saml.unwrap().sp_certificate.unwrap();
    let started = w.start().await;
    let signed = w.spec(&started, VICTIM).sign(&w.key);
    let attack = encrypt_assertion(&signed, &other_cert, EncAlg::Aes128GcmOaep);
    w.refused("another SP's key", &started, &attack).await;

    // A mangled ciphertext: too short, and not base64.
    for mangle in ["AAAA", "!!!"] {
        let started = w.start().await;
        let signed = w.spec(&started, VICTIM).sign(&w.key);
        let encrypted = encrypt_assertion(&signed, &sp_cert, EncAlg::Aes128GcmOaep);
        let last = encrypted.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
        let end = last + encrypted[last..].find('<').unwrap();
        let attack = format!("{}{mangle}{}", &encrypted[..last], &encrypted[end..]);
        w.refused(&format!("ciphertext {mangle}"), &started, &attack)
            .await;
    }
}

/// SAML-20 (the fuzzing row, as a deterministic test): a thousand random corruptions of a
/// valid response (flipped bytes, cuts, markup characters) are answered with an error or,
/// where nothing signed changed, a confirmation; nothing panics, nothing else signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_20_corrupted_responses_never_panic() {
    let w = world(SamlInput {
        idp_initiated: Some(true),
        ..default_saml()
    })
    .await;
    let valid = unsolicited(&w, "judy@acme.test");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    const MARKUP: &[u8] = b"<>&\"'=/!?-[]#; \x00\xff";
    for round in 0..1000 {
        let mut bytes = valid.clone().into_bytes();
        for _ in 0..=next(4) {
            let at = next(bytes.len());
            match next(4) {
                0 => bytes[at] ^= 1 << next(8),
                1 => bytes.truncate(at),
                2 => bytes.insert(at, MARKUP[next(MARKUP.len())]),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let result = w
            .sso()
            .saml_acs(w.connection.id, &encoded, None, None, &ctx())
            .await;
        match result {
            Err(Error::SsoFailed { .. }) | Ok(SsoDone::Confirm { .. }) => {}
            other => panic!("round {round}: {other:?}"),
        }
    }
    w.victim_untouched().await;
}

/// A SAML connection may be created before the provider's details are known (our entity
/// ID and ACS name the connection, and some providers want them first); it serves its
/// metadata, starts no sign-in until the provider's details are set, then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_connection_can_be_created_before_the_providers_details() {
    let w = world(default_saml()).await;
    let empty = w
        .sso()
        .create_connection(
            w.org,
            ConnectionSettings {
                kind: Some(ConnectionKind::Saml),
                ..ConnectionSettings::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(empty.status, ConnectionStatus::Draft);
    let metadata = w.sso().saml_metadata(empty.id).await.unwrap();
    assert!(metadata.contains(&w.sso().acs_url(empty.id)));
    let options = SsoOptions {
        test: true,
        ..SsoOptions::default()
    };
    let refused = w
        .sso()
        .start(SsoTarget::Connection(empty.id), options.clone(), &ctx())
        .await;
    assert!(
        matches!(refused, Err(Error::SsoFailed { .. })),
        "{refused:?}"
    );
    let settings = ConnectionSettings {
        saml: Some(SamlInput {
            metadata_xml: Some(idp_metadata(IDP, SSO_URL, &w.key)),
            ..SamlInput::default()
        }),
        ..ConnectionSettings::default()
    };
    let ready = w
        .sso()
        .update_connection(w.org, empty.id, settings)
        .await
        .unwrap();
    assert_eq!(ready.issuer, IDP);
    let started = w
        .sso()
        .start(SsoTarget::Connection(empty.id), options, &ctx())
        .await
        .unwrap();
    assert!(started.url.starts_with(SSO_URL));
}

/// SAML-17: `RelayState` is an opaque handle to our own record, never a target: URLs,
/// protocol-relative paths and over-long values are refused, and nothing redirects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_17_relay_state_is_a_handle_never_a_target() {
    let w = world(default_saml()).await;
    w.control("alice@acme.test").await;
    for relay in [
        "https://evil.com".to_owned(),
        "//evil.com".to_owned(),
        "/\\evil.com".to_owned(),
        "a".repeat(81),
    ] {
        let started = w.start().await;
        let forged = Started {
            relay_state: relay.clone(),
            ..started
        };
        let xml = w.spec(&forged, VICTIM).sign(&w.key);
        w.refused_handle(&format!("RelayState {relay}"), &forged, &xml)
            .await;
    }
}
