//! Attacks written once and run on every adapter: `tests/tokens.rs` and `tests/passkeys.rs`
//! run them on the memory adapter, `tests/takeovers.rs` on a real sled directory. Each
//! takes an engine and the store under it (or the whole harness).

use portcullis::crypto::{AuthCode, CodeVerifier, OneTimeCode};
use portcullis::model::{App, ClientId, Membership, OrgId, Organization, User, UserId};
use portcullis::store::{OrgStore, UserStore};
use portcullis::testing::race;
use portcullis::tokens::{AuthCodeRequest, CodeExchange, pkce_s256};
use portcullis::{AuthMethod, Portcullis, Registrant, SignIn, TokenSet};

use crate::Harness;
use crate::authenticator::{TestKey, UP, UV};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CLIENT: &str = "web-app";
const REDIRECT: &str = "https://app.example.com/callback";

use crate::ctx;

/// A user who is a member of an organization with the public client `web-app`.
async fn client_and_member<S: UserStore + OrgStore>(auth: &Portcullis, store: &S) -> UserId {
    let now = auth.now();
    let mut user = User::new(UserId::generate(), now);
    user.email = Some("replayed@example.com".parse().unwrap());
    store.create_user(&user).await.unwrap();
    let org = Organization {
        id: OrgId::generate(),
        name: "Replay".into(),
        slug: format!("replay-{}", user.id),
        domains: vec![],
        settings: serde_json::Value::Null,
        created_at: now,
        updated_at: now,
        revision: 0,
    };
    store.create_org(&org).await.unwrap();
    let app = App {
        client_id: ClientId::new(CLIENT).unwrap(),
        org_id: org.id,
        name: "Web".into(),
        secret_hash: None,
        redirect_uris: vec![REDIRECT.into()],
        created_at: now,
        client: Default::default(),
    };
    store.create_app(&app).await.unwrap();
    let membership = Membership {
        user_id: user.id,
        org_id: org.id,
        role_ids: vec![],
        created_at: now,
        self_joined: false,
    };
    store.put_membership(&membership).await.unwrap();
    user.id
}

async fn code_for(auth: &Portcullis, user: UserId) -> AuthCode {
    let request = AuthCodeRequest::new(
        ClientId::new(CLIENT).unwrap(),
        REDIRECT,
        pkce_s256(VERIFIER),
        "S256",
    )
    .unwrap();
    match auth
        .complete_first_factor(user, AuthMethod::Email, Some(&request), &ctx())
        .await
        .unwrap()
    {
        SignIn::Code(code) => code,
        other => panic!("expected a code, got {other:?}"),
    }
}

fn exchange(code: &AuthCode) -> CodeExchange {
    CodeExchange {
        code: code.clone(),
        code_verifier: CodeVerifier::new(VERIFIER),
        client_id: ClientId::new(CLIENT).unwrap(),
        redirect_uri: REDIRECT.into(),
        client_secret: None,
    }
}

/// Nothing `tokens` carries works any more: the session is revoked for `verify_live`, and
/// the refresh token is refused.
async fn assert_dead(auth: &Portcullis, tokens: &TokenSet, what: &str) {
    let live = auth.tokens().verify_live(&tokens.access_token).await;
    assert_eq!(
        live.map(|c| c.sid).map_err(|e| e.code()),
        Err("session_revoked"),
        "{what}: the first exchange's access token is dead"
    );
    let refreshed = auth.tokens().refresh(&tokens.refresh_token, &ctx()).await;
    assert_eq!(
        refreshed.map(|t| t.session_id).map_err(|e| e.code()),
        Err("invalid_token"),
        "{what}: the first exchange's refresh token is refused"
    );
}

/// A way to present a code again, and its name.
type Replay = (&'static str, fn(&mut CodeExchange));

/// OA-01: whoever presents a code a second time — with no usable verifier, a wrong one,
/// as another client, or with the right one — gets `invalid_token`, and the session the
/// first exchange opened is revoked.
pub async fn auth_code_replay_revokes_the_first_exchange_verifier_or_not<S>(
    auth: &Portcullis,
    store: &S,
) where
    S: UserStore + OrgStore,
{
    let user = client_and_member(auth, store).await;
    let replays: [Replay; 5] = [
        ("no verifier", |e| e.code_verifier = CodeVerifier::new("")),
        ("a wrong verifier", |e| {
            e.code_verifier = CodeVerifier::new("B".repeat(43))
        }),
        ("another client", |e| {
            e.client_id = ClientId::new("other-app").unwrap()
        }),
        ("another redirect URI", |e| {
            e.redirect_uri = "https://evil.example.com/cb".into()
        }),
        ("the right verifier", |_| {}),
    ];
    for (what, replay) in replays {
        let code = code_for(auth, user).await;
        let tokens = auth
            .tokens()
            .exchange_code(&exchange(&code), &ctx())
            .await
            .unwrap();
        auth.tokens()
            .verify_live(&tokens.access_token)
            .await
            .unwrap();
        let mut replayed = exchange(&code);
        replay(&mut replayed);
        let refused = auth.tokens().exchange_code(&replayed, &ctx()).await;
        assert_eq!(
            refused.map(|t| t.session_id).map_err(|e| e.code()),
            Err("invalid_token"),
            "{what}: the replay is refused"
        );
        assert_dead(auth, &tokens, what).await;
    }
}

/// OA-01/CON-01: 16 barrier-started exchanges of one code. One of them spends it; the
/// other 15 are replays, so whatever the first one opened ends revoked: at most one gets
/// tokens (none, if a replay lands while it is still in flight), and those are dead.
pub async fn auth_code_raced_16_times_leaves_no_live_session<S>(auth: &Portcullis, store: &S)
where
    S: UserStore + OrgStore,
{
    auth_code_raced_across_instances(&[auth], 16, store).await;
}

/// The same race with `racers` exchanges spread over several engines on one store (as many
/// application instances on one database): racer `i` uses `engines[i % engines.len()]`.
pub async fn auth_code_raced_across_instances<S>(engines: &[&Portcullis], racers: usize, store: &S)
where
    S: UserStore + OrgStore,
{
    let auth = engines[0];
    let user = client_and_member(auth, store).await;
    for round in 0..4 {
        let code = code_for(auth, user).await;
        let results = race(racers, |i| {
            let auth = engines[i % engines.len()].clone();
            let ex = exchange(&code);
            async move { auth.tokens().exchange_code(&ex, &ctx()).await }
        })
        .await;
        let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
        assert!(won.len() <= 1, "round {round}: {} token sets", won.len());
        for err in lost {
            assert_eq!(err.err().map(|e| e.code()), Some("invalid_token"));
        }
        for tokens in won.into_iter().flatten() {
            assert_dead(auth, &tokens, "raced").await;
        }
    }
    let sessions = auth
        .sessions()
        .list(user)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>();
    assert_eq!(sessions, [], "no exchange left a live session");
}

/// Signs up `email` with a passkey on `key` (and the code emailed for it): the new account
/// and its sign-in.
async fn passkey_sign_up<S>(h: &Harness<S>, email: &str, key: &mut TestKey) -> (UserId, SignIn) {
    let who = Registrant::NewUser {
        email: email.parse().unwrap(),
        name: None,
    };
    let passkeys = h.auth.passkeys();
    let (token, options) = passkeys.start_registration(who, &ctx()).await.unwrap();
    let registered = passkeys
        .finish_registration(&token, &key.register(&options), None, &ctx())
        .await
        .unwrap();
    let pending = registered.pending.expect("a sign-up waits for its code");
    let sign_in = super::confirm_sign_up(h, &pending, &ctx()).await.unwrap();
    let user = match &sign_in {
        SignIn::Complete(tokens) => tokens.user_id,
        other => panic!("expected tokens, got {other:?}"),
    };
    (user, sign_in)
}

async fn passkey_login(auth: &Portcullis, email: &str, key: &mut TestKey) -> SignIn {
    let passkeys = auth.passkeys();
    let (token, options) = passkeys.start_login(Some(email), &ctx()).await.unwrap();
    passkeys
        .finish_login(&token, &key.sign(&options), &ctx())
        .await
        .unwrap()
}

/// The `amr` and `acr` of a completed sign-in.
async fn factors(auth: &Portcullis, sign_in: SignIn) -> (Vec<String>, String) {
    let SignIn::Complete(tokens) = sign_in else {
        panic!("expected tokens, got {sign_in:?}");
    };
    let claims = auth.tokens().verify(&tokens.access_token).await.unwrap();
    (claims.amr, claims.acr)
}

/// Enrols and confirms TOTP for `user`.
async fn enable_totp(auth: &Portcullis, user: UserId) {
    let totp = auth.mfa().totp();
    let enrollment = totp.enroll(user, &ctx()).await.unwrap();
    let secret = portcullis::mfa::totp::decode_base32(&enrollment.secret_base32).unwrap();
    let now = auth.now().unix_secs() as u64;
    let code = portcullis::mfa::totp::code_at(&secret, now, "SHA1", 6).unwrap();
    totp.confirm(user, &OneTimeCode::new(code), &ctx())
        .await
        .unwrap();
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// WA-09, on an engine under `UserVerification::Preferred`: a passkey registered without
/// user verification stays one factor when it later asserts it (an authenticator that
/// skipped UV at registration proved nothing about who set it up), so a user with TOTP
/// still gets the MFA step; one registered with UV is two factors.
pub async fn a_passkey_registered_without_uv_stays_one_factor<S: UserStore>(h: &Harness<S>) {
    let (auth, store) = (&h.auth, &h.store);
    let mut key = TestKey::new("https://app.example.com");
    key.flags = UP;
    let (ana, signed_up) = passkey_sign_up(h, "ana@example.com", &mut key).await;
    let one_factor = (strings(&["hwk"]), "aal1".to_owned());
    assert_eq!(factors(auth, signed_up).await, one_factor);

    key.flags = UP | UV;
    let upgraded = passkey_login(auth, "ana@example.com", &mut key).await;
    assert_eq!(
        factors(auth, upgraded).await,
        one_factor,
        "asserting UV later does not make it two factors"
    );
    enable_totp(auth, ana).await;
    let next = passkey_login(auth, "ana@example.com", &mut key).await;
    assert!(
        matches!(next, SignIn::MfaRequired(_)),
        "the MFA step follows: {next:?}"
    );

    let mut verified = TestKey::new("https://app.example.com");
    let (bo, signed_up) = passkey_sign_up(h, "bo@example.com", &mut verified).await;
    let two_factors = (strings(&["hwk", "user"]), "aal2".to_owned());
    assert_eq!(factors(auth, signed_up).await, two_factors);
    enable_totp(auth, bo).await;
    let next = passkey_login(auth, "bo@example.com", &mut verified).await;
    assert_eq!(factors(auth, next).await, two_factors, "no MFA step");

    // What the store keeps, through sign-ins that advanced the counters.
    let registered_with_uv = |passkeys: Vec<portcullis::model::PasskeyCredential>| {
        passkeys
            .iter()
            .map(|p| p.registered_with_uv)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        registered_with_uv(store.list_passkeys(ana).await.unwrap()),
        [false]
    );
    assert_eq!(
        registered_with_uv(store.list_passkeys(bo).await.unwrap()),
        [true]
    );
}
