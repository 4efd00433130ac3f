//! Attacks written once and run on every adapter: the core's tests run them on the memory
//! adapter, latchkey-sled's (`storage-adapters/sled/tests/engine.rs`, which includes this
//! file) on a real sled directory. Each takes an engine and the store under it.

use latchkey::crypto::{AuthCode, CodeVerifier};
use latchkey::model::{App, ClientId, Membership, OrgId, Organization, User, UserId};
use latchkey::store::{OrgStore, UserStore};
use latchkey::testing::race;
use latchkey::tokens::{AuthCodeRequest, CodeExchange, pkce_s256};
use latchkey::{AuthMethod, Latchkey, RequestContext, SignIn, TokenSet};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CLIENT: &str = "web-app";
const REDIRECT: &str = "https://app.example.com/callback";

fn ctx() -> RequestContext {
    RequestContext::new()
        .with_ip([192, 0, 2, 77].into())
        .with_user_agent("scenarios/1.0")
}

/// A user who is a member of an organization with the public client `web-app`.
async fn client_and_member<S: UserStore + OrgStore>(auth: &Latchkey, store: &S) -> UserId {
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
    };
    store.create_app(&app).await.unwrap();
    let membership = Membership {
        user_id: user.id,
        org_id: org.id,
        role_ids: vec![],
        created_at: now,
    };
    store.put_membership(&membership).await.unwrap();
    user.id
}

async fn code_for(auth: &Latchkey, user: UserId) -> AuthCode {
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
async fn assert_dead(auth: &Latchkey, tokens: &TokenSet, what: &str) {
    let live = auth
        .tokens()
        .verify_live(tokens.access_token.secret())
        .await;
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
    auth: &Latchkey,
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
            .verify_live(tokens.access_token.secret())
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
pub async fn auth_code_raced_16_times_leaves_no_live_session<S>(auth: &Latchkey, store: &S)
where
    S: UserStore + OrgStore,
{
    let user = client_and_member(auth, store).await;
    for round in 0..4 {
        let code = code_for(auth, user).await;
        let results = race(16, |_| {
            let auth = auth.clone();
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
