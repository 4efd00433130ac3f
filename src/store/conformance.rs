//! The storage conformance suite: one async test per promise the store traits make.
//!
//! Every adapter runs all of it with [`conformance_tests!`](crate::conformance_tests), giving
//! an async factory that returns a fresh, empty store:
//!
//! ```text
//! portcullis::conformance_tests!(|| async { portcullis_memory::MemoryStore::new() });
//! ```
//!
//! An adapter that implements only some of the traits (a Redis `ChallengeStore`, say) runs
//! their part: `user_store_tests!`, `org_store_tests!`, `session_store_tests!`,
//! `key_store_tests!`, `challenge_store_tests!`, `audit_log_tests!`. Each check is bound
//! to its one trait.
//!
//! An adapter whose backend is a service that may be absent (a database server) passes
//! `optional:` and a factory returning `Option<Store>`: each test returns early on `None`,
//! after the factory has said loudly why it skipped (or panicked, under CI):
//!
//! ```text
//! portcullis::conformance_tests!(optional: || async { fresh_store_or_none().await });
//! ```
//!
//! The macro expands to one `#[tokio::test]` per promise on a multi-threaded runtime, so
//! the concurrency tests really race (the adapter crate needs `tokio` as a dev-dependency
//! with the `macros` and `rt-multi-thread` features). The tests are also public functions,
//! for adapters that need their own set-up around each.

// A conformance check reports a broken promise by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{Sealed, SecretHash};
use crate::model::{
    ApiCredential, ApiCredentialId, App, AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind,
    ClaimMapping, ClientId, ConnectionId, ConnectionKind, ConnectionStatus, CredentialId,
    DomainClaim, Email, EventId, FactorId, FactorStatus, FederatedIdentity, Membership,
    OidcEndpoints, OrgId, Organization, PageRequest, PasskeyCredential, PasskeyUse, Permission,
    PermissionDef, PermissionId, Phone, Preset, Role, RoleId, Session, SessionId, SsoConnection,
    StoredSigningKey, TotpFactor, User, UserId,
};
use crate::store::{
    AuditLog, ChallengeStore, EventQuery, KeyStore, OrgStore, SessionStore, UserQuery, UserStore,
};
use crate::testing::race;
use crate::{StoreError, Timestamp};

/// Expands to one `#[tokio::test]` per conformance check of every store, each on a fresh
/// store from `$factory` (an async closure returning the store): the per-trait macros
/// below, all of them.
#[macro_export]
macro_rules! conformance_tests {
    (optional: $factory:expr) => {
        $crate::user_store_tests!(optional: $factory);
        $crate::org_store_tests!(optional: $factory);
        $crate::session_store_tests!(optional: $factory);
        $crate::key_store_tests!(optional: $factory);
        $crate::challenge_store_tests!(optional: $factory);
        $crate::audit_log_tests!(optional: $factory);
    };
    ($factory:expr) => {
        $crate::user_store_tests!($factory);
        $crate::org_store_tests!($factory);
        $crate::session_store_tests!($factory);
        $crate::key_store_tests!($factory);
        $crate::challenge_store_tests!($factory);
        $crate::audit_log_tests!($factory);
    };
}

/// The conformance checks of the user store (`UserStore`) alone, for an adapter that implements
/// only that trait: `portcullis::user_store_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! user_store_tests {
    (optional: $factory:expr) => {
        $crate::user_store_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            user_create_and_lookups,
            user_email_unique_under_16_concurrent_creates,
            user_phone_and_id_unique,
            user_update_is_compare_and_swap_under_16_concurrent_writers,
            user_update_reindexes_contacts_atomically,
            user_delete_cascades_to_everything_the_user_owns,
            user_listing_pages_are_stable,
            passkey_credential_id_unique_under_16_racing_registrations,
            passkey_requires_user_and_is_scoped_to_owner,
            passkey_use_is_monotonic_under_16_racing_sign_ins,
            totp_step_accepted_once_under_16_racing_codes,
            totp_factors_are_owned,
            backup_code_consumed_once_under_16_racing_redemptions,
            identity_links_unique_per_provider_and_case_sensitive,
            identity_link_unique_under_16_racing_links,
            identity_links_go_with_their_user,
        }
    };
    ($factory:expr) => {
        $crate::user_store_tests!(@mode required $factory);
    };
}

/// The conformance checks of the organization store (`OrgStore`) alone, for an adapter that implements
/// only that trait: `portcullis::org_store_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! org_store_tests {
    (optional: $factory:expr) => {
        $crate::org_store_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            org_slug_unique_under_16_concurrent_creates,
            org_domains_unique_and_update_reindexes,
            org_delete_cascades,
            org_listing_pages_are_stable,
            app_client_id_unique_across_orgs,
            roles_and_permissions_cascade,
            memberships_by_user_and_by_org,
            api_credentials_unique_listed_and_never_unrevoked,
            org_domain_and_client_id_unique_under_16_racers,
            sso_connections_kept_in_their_org_and_compare_and_swap,
            sso_connection_update_is_compare_and_swap_under_16_concurrent_writers,
            org_delete_cascades_to_sso_connections_and_domain_claims,
            domain_claim_verified_by_one_org_only,
            domain_verification_has_one_winner_under_16_racing_orgs,
        }
    };
    ($factory:expr) => {
        $crate::org_store_tests!(@mode required $factory);
    };
}

/// The conformance checks of the session store (`SessionStore`) alone, for an adapter that implements
/// only that trait: `portcullis::session_store_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! session_store_tests {
    (optional: $factory:expr) => {
        $crate::session_store_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            session_family_lookup_and_expiry,
            session_rotate_has_one_winner_under_16_racing_refreshes,
            session_rotate_refuses_wrong_revoked_or_expired,
            session_revocation_listing_and_deletion,
        }
    };
    ($factory:expr) => {
        $crate::session_store_tests!(@mode required $factory);
    };
}

/// The conformance checks of the store of signing keys (`KeyStore`) alone, for an adapter that implements
/// only that trait: `portcullis::key_store_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! key_store_tests {
    (optional: $factory:expr) => {
        $crate::key_store_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            signing_keys_unique_ordered_and_deletable,
        }
    };
    ($factory:expr) => {
        $crate::key_store_tests!(@mode required $factory);
    };
}

/// The conformance checks of the challenge store (`ChallengeStore`) alone, for an adapter that implements
/// only that trait: `portcullis::challenge_store_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! challenge_store_tests {
    (optional: $factory:expr) => {
        $crate::challenge_store_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            challenge_take_is_exactly_once_under_16_racing_takes,
            challenge_insert_if_absent_under_16_racing_inserts,
            challenge_expiry_is_visible_at_once,
            challenge_update_is_compare_and_swap_under_16_racing_updates,
            counter_incr_loses_no_count_under_16_tasks,
            counter_windows_expire_and_reset,
            purge_removes_only_expired,
        }
    };
    ($factory:expr) => {
        $crate::challenge_store_tests!(@mode required $factory);
    };
}

/// The conformance checks of the audit log (`AuditLog`) alone, for an adapter that implements
/// only that trait: `portcullis::audit_log_tests!(|| async { MyStore::new() });`.
#[macro_export]
macro_rules! audit_log_tests {
    (optional: $factory:expr) => {
        $crate::audit_log_tests!(@mode optional $factory);
    };
    (@mode $mode:ident $factory:expr) => {
        $crate::__conformance_tests! { $mode $factory;
            audit_log_newest_first_and_paged_stably,
            audit_log_forgets_a_users_personal_data_only,
            audit_log_lists_an_organizations_events_by_filter,
            audit_chain_head_moves_once_under_16_racing_appends,
        }
    };
    ($factory:expr) => {
        $crate::audit_log_tests!(@mode required $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (required $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = ::std::sync::Arc::new(($factory)().await);
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
    (optional $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(store) = ($factory)().await else {
                    return;
                };
                $crate::store::conformance::$name(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}

const RACERS: usize = 16;

fn t0() -> Timestamp {
    Timestamp::from_unix_secs(1_767_225_600)
}

fn at(secs: u64) -> Timestamp {
    t0() + Duration::from_secs(secs)
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

fn user_with_email(text: &str) -> User {
    let mut user = User::new(UserId::generate(), t0());
    user.email = Some(email(text));
    user
}

fn hash(byte: u8) -> SecretHash {
    SecretHash::from_bytes([byte; 32])
}

fn hash_n(n: usize) -> SecretHash {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
    bytes[31] = 0xee;
    SecretHash::from_bytes(bytes)
}

fn passkey(user: UserId, id: &[u8]) -> PasskeyCredential {
    PasskeyCredential {
        id: CredentialId::new(id.to_vec()).unwrap(),
        user_id: user,
        name: "laptop".into(),
        passkey: b"{\"cred\":1}".to_vec(),
        counter: 1,
        backup_eligible: true,
        backup_state: false,
        registered_with_uv: true,
        created_at: t0(),
        last_used_at: None,
        rp_id: Some("login.acme.example".into()),
    }
}

fn totp(user: UserId) -> TotpFactor {
    TotpFactor {
        id: FactorId::generate(),
        user_id: user,
        secret: Sealed::from_bytes(vec![1; 60]),
        status: FactorStatus::Active,
        last_step: None,
        created_at: t0(),
    }
}

fn org(slug: &str) -> Organization {
    Organization {
        id: OrgId::generate(),
        name: slug.to_uppercase(),
        slug: slug.into(),
        domains: Vec::new(),
        settings: serde_json::json!({"mfa": "optional"}),
        created_at: t0(),
        updated_at: t0(),
        revision: 0,
    }
}

fn app(org: OrgId, client_id: &str) -> App {
    App {
        client_id: ClientId::new(client_id).unwrap(),
        org_id: org,
        name: client_id.into(),
        secret_hash: None,
        redirect_uris: vec!["https://app.example.com/callback".into()],
        created_at: t0(),
        client: crate::model::ClientSettings::default(),
    }
}

fn api_credential(org: OrgId, secret: u8) -> ApiCredential {
    ApiCredential {
        id: ApiCredentialId::generate(),
        org_id: org,
        name: format!("key {secret}"),
        secret_hash: hash(secret),
        scopes: vec![Permission::new("users:read").unwrap()],
        created_at: t0(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

/// Appends `event` at the head of its user's chain, as the engine does.
async fn append_linked<S: AuditLog>(store: &S, mut event: AuthEvent) -> AuthEvent {
    if let Some(user) = event.user_id {
        event.prev = store.user_head(user).await.unwrap().map(|head| head.id);
    }
    store.append(&event).await.unwrap();
    event
}

fn permission(org: OrgId, name: &str) -> PermissionDef {
    PermissionDef {
        id: PermissionId::generate(),
        org_id: org,
        name: Permission::new(name).unwrap(),
        description: None,
        created_at: t0(),
    }
}

/// A role granting `permissions` (by id) and `wildcards` (by name).
fn role(org: OrgId, name: &str, permissions: &[&PermissionDef]) -> Role {
    Role {
        id: RoleId::generate(),
        org_id: org,
        name: name.into(),
        description: None,
        permission_ids: permissions.iter().map(|p| p.id).collect(),
        wildcards: Vec::new(),
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A draft OIDC connection with every field set, so that a store that drops one is caught.
fn sso_connection(org: OrgId, name: &str) -> SsoConnection {
    SsoConnection {
        id: ConnectionId::generate(),
        org_id: org,
        kind: ConnectionKind::Oidc,
        name: name.into(),
        status: ConnectionStatus::Draft,
        issuer: "https://idp.example.com".into(),
        discovery: true,
        endpoints: OidcEndpoints {
            authorization: "https://idp.example.com/authorize".into(),
            token: "https://idp.example.com/token".into(),
            jwks_uri: "https://idp.example.com/jwks".into(),
            iss_in_response: true,
        },
        client_id: "portcullis".into(),
        client_secret: Some(Sealed::from_bytes(vec![7; 48])),
        scopes: vec!["openid".into(), "email".into()],
        claims: ClaimMapping::default(),
        group_roles: BTreeMap::from([("engineering".into(), vec!["admin".into()])]),
        domains: vec!["acme.com".into()],
        jit_provisioning: true,
        default_roles: vec!["member".into()],
        algorithms: vec!["RS256".into()],
        mfa_amr: vec!["mfa".into()],
        hosted_domain: None,
        preset: None,
        saml: None,
        tested_at: None,
        created_at: t0(),
        updated_at: t0(),
        revision: 0,
    }
}

/// An unproven claim on `domain`, provable for an hour.
fn domain_claim(org: OrgId, domain: &str, token: &str) -> DomainClaim {
    DomainClaim::new(org, domain, token, t0(), at(3600))
}

fn membership(user: UserId, org: OrgId, roles: &[RoleId]) -> Membership {
    Membership {
        user_id: user,
        org_id: org,
        role_ids: roles.to_vec(),
        created_at: t0(),
        self_joined: false,
    }
}

fn session(user: UserId, refresh: SecretHash, expires_at: Timestamp) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user,
        org_id: None,
        refresh_hash: refresh,
        generation: 0,
        amr: vec!["pwd".into()],
        aal: 1,
        ip: None,
        user_agent: Some("conformance".into()),
        created_at: t0(),
        last_seen_at: t0(),
        expires_at,
        revoked_at: None,
    }
}

fn key(kind: ChallengeKind, id: &str) -> ChallengeKey {
    ChallengeKey::new(kind, id)
}

fn conflict_on(result: Result<impl std::fmt::Debug, StoreError>, field: &str) {
    match result {
        Err(StoreError::Conflict { what }) if what == field => {}
        other => panic!("expected a conflict on {field}, got {other:?}"),
    }
}

fn count_ok<T, E>(results: &[Result<T, E>]) -> usize {
    results.iter().filter(|r| r.is_ok()).count()
}

fn count_true(results: &[Result<bool, StoreError>]) -> usize {
    results.iter().filter(|r| matches!(r, Ok(true))).count()
}

/// Users: created users are found by id, email and phone; unknown ones are `None`.
pub async fn user_create_and_lookups<S: UserStore + 'static>(store: Arc<S>) {
    let mut user = user_with_email("alice@example.com");
    user.phone = Some(Phone::parse("+15550100001").unwrap());
    user.name = Some("Alice".into());
    user.metadata = serde_json::json!({"plan": "pro", "n": [1, 2]});
    store.create_user(&user).await.unwrap();

    assert_eq!(store.get_user(user.id).await.unwrap(), Some(user.clone()));
    let by_email = store
        .get_user_by_email(&email("Alice@Example.com"))
        .await
        .unwrap();
    assert_eq!(by_email, Some(user.clone()));
    let phone = Phone::parse("+1 555 010 0001").unwrap();
    assert_eq!(store.get_user_by_phone(&phone).await.unwrap(), Some(user));

    assert_eq!(store.get_user(UserId::generate()).await.unwrap(), None);
    assert_eq!(
        store
            .get_user_by_email(&email("bob@example.com"))
            .await
            .unwrap(),
        None
    );
    let nobody = Phone::parse("+15550100002").unwrap();
    assert_eq!(store.get_user_by_phone(&nobody).await.unwrap(), None);
}

/// Users: of 16 concurrent creations with one email, exactly one succeeds.
pub async fn user_email_unique_under_16_concurrent_creates<S: UserStore + 'static>(store: Arc<S>) {
    let results = race(RACERS, |_| {
        let store = store.clone();
        async move {
            let user = user_with_email("race@example.com");
            store.create_user(&user).await.map(|()| user.id)
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "exactly one creation wins");
    let winner = results
        .iter()
        .find_map(|r| r.as_ref().ok())
        .copied()
        .unwrap();
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "email");
    }
    let found = store
        .get_user_by_email(&email("race@example.com"))
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(winner));
    let page = store
        .list_users(&UserQuery::all(), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "losers leave nothing behind");
}

/// Users: phones and ids are unique too.
pub async fn user_phone_and_id_unique<S: UserStore + 'static>(store: Arc<S>) {
    let phone = Phone::parse("+447700900123").unwrap();
    let mut first = User::new(UserId::generate(), t0());
    first.phone = Some(phone.clone());
    store.create_user(&first).await.unwrap();

    let mut second = User::new(UserId::generate(), t0());
    second.phone = Some(phone);
    conflict_on(store.create_user(&second).await, "phone");

    let mut same_id = user_with_email("other@example.com");
    same_id.id = first.id;
    conflict_on(store.create_user(&same_id).await, "user");
    assert!(
        store
            .get_user_by_email(&email("other@example.com"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Users: updates are compare-and-swap on the revision; of 16 writers from one revision
/// exactly one wins, and a stale write is refused.
pub async fn user_update_is_compare_and_swap_under_16_concurrent_writers<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let user = user_with_email("cas@example.com");
    store.create_user(&user).await.unwrap();

    let results = race(RACERS, |i| {
        let store = store.clone();
        let mut edit = user.clone();
        async move {
            edit.name = Some(format!("writer {i}"));
            store.update_user(&edit).await.map(|rev| (i, rev))
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "exactly one writer wins");
    for loser in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(loser, Err(StoreError::Stale)), "{loser:?}");
    }
    let (winner, revision) = *results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    assert_eq!(revision, 1);
    let stored = store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!(stored.name, Some(format!("writer {winner}")));
    assert_eq!(stored.revision, 1);

    let mut stale = user.clone();
    stale.name = Some("late".into());
    assert!(matches!(
        store.update_user(&stale).await,
        Err(StoreError::Stale)
    ));
    let mut missing = user_with_email("ghost@example.com");
    missing.revision = 0;
    assert!(matches!(
        store.update_user(&missing).await,
        Err(StoreError::Missing { what: "user" })
    ));
}

/// Users: changing an email or phone re-indexes it atomically and keeps it unique; a
/// refused update changes nothing.
pub async fn user_update_reindexes_contacts_atomically<S: UserStore + 'static>(store: Arc<S>) {
    let alice = user_with_email("alice@example.com");
    let bob = user_with_email("bob@example.com");
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();

    let mut moved = alice.clone();
    moved.email = Some(email("alice@new.example.com"));
    moved.phone = Some(Phone::parse("+15550100009").unwrap());
    assert_eq!(store.update_user(&moved).await.unwrap(), 1);
    assert!(
        store
            .get_user_by_email(&email("alice@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    let found = store
        .get_user_by_email(&email("alice@new.example.com"))
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(alice.id));

    // The freed address can be taken by someone else.
    let mut bob_takes = bob.clone();
    bob_takes.email = Some(email("alice@example.com"));
    assert_eq!(store.update_user(&bob_takes).await.unwrap(), 1);

    // Taking an address in use is refused and leaves both users as they were.
    let mut alice_again = store.get_user(alice.id).await.unwrap().unwrap();
    alice_again.email = Some(email("alice@example.com"));
    alice_again.name = Some("changed".into());
    conflict_on(store.update_user(&alice_again).await, "email");
    let alice_now = store.get_user(alice.id).await.unwrap().unwrap();
    assert_eq!(alice_now.email, Some(email("alice@new.example.com")));
    assert_eq!(alice_now.name, None);
    assert_eq!(alice_now.revision, 1);
    let holder = store
        .get_user_by_email(&email("alice@example.com"))
        .await
        .unwrap();
    assert_eq!(holder.map(|u| u.id), Some(bob.id));

    // Removing the email frees it.
    let mut bob_drops = store.get_user(bob.id).await.unwrap().unwrap();
    bob_drops.email = None;
    store.update_user(&bob_drops).await.unwrap();
    assert!(
        store
            .get_user_by_email(&email("alice@example.com"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Users: deleting a user removes their passkeys (freeing the credential ids), TOTP
/// factors and backup codes, and their email for reuse.
pub async fn user_delete_cascades_to_everything_the_user_owns<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let user = user_with_email("gone@example.com");
    let keep = user_with_email("kept@example.com");
    store.create_user(&user).await.unwrap();
    store.create_user(&keep).await.unwrap();
    let credential = passkey(user.id, b"cred-gone");
    store.add_passkey(&credential).await.unwrap();
    store
        .add_passkey(&passkey(keep.id, b"cred-kept"))
        .await
        .unwrap();
    let factor = totp(user.id);
    store.put_totp_factor(&factor).await.unwrap();
    store
        .replace_backup_codes(user.id, &[hash(1), hash(2)])
        .await
        .unwrap();
    store
        .replace_backup_codes(keep.id, &[hash(1)])
        .await
        .unwrap();

    assert!(store.delete_user(user.id).await.unwrap());
    assert!(
        !store.delete_user(user.id).await.unwrap(),
        "a second delete finds nothing"
    );

    assert!(store.get_user(user.id).await.unwrap().is_none());
    assert!(
        store
            .get_user_by_email(&email("gone@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get_passkey(&credential.id).await.unwrap().is_none());
    assert!(store.list_passkeys(user.id).await.unwrap().is_empty());
    assert!(store.list_totp_factors(user.id).await.unwrap().is_empty());
    assert_eq!(store.count_backup_codes(user.id).await.unwrap(), 0);
    assert!(!store.consume_backup_code(user.id, &hash(1)).await.unwrap());
    assert!(
        !store
            .advance_totp_step(user.id, factor.id, 1)
            .await
            .unwrap()
    );

    // Nothing of the other user was touched.
    assert_eq!(store.list_passkeys(keep.id).await.unwrap().len(), 1);
    assert_eq!(store.count_backup_codes(keep.id).await.unwrap(), 1);

    // The email and the credential id are free again.
    let reborn = user_with_email("gone@example.com");
    store.create_user(&reborn).await.unwrap();
    store
        .add_passkey(&passkey(reborn.id, b"cred-gone"))
        .await
        .unwrap();
}

/// Users: listing in id order with filters; a cursor survives inserts and deletes
/// elsewhere (nothing twice, nothing that existed throughout skipped); a forged cursor is
/// refused.
pub async fn user_listing_pages_are_stable<S: UserStore + 'static>(store: Arc<S>) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut user = user_with_email(&format!("user{i:02}@example.com"));
        user.blocked = i % 5 == 0;
        store.create_user(&user).await.unwrap();
        ids.push(user.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    let mut round = 0;
    loop {
        let result = store.list_users(&UserQuery::all(), &page).await.unwrap();
        assert!(result.items.len() <= 10);
        seen.extend(result.items.iter().map(|u| u.id));
        // Churn between pages that breaks offset paging: the deletion of two users already
        // seen (one of them the cursor's own), a user that sorts before the cursor, one that
        // sorts last, and the deletion of one not yet seen.
        if round == 0 {
            store.delete_user(ids[9]).await.unwrap();
            store.delete_user(ids[3]).await.unwrap();
            let mut early = user_with_email("early@example.com");
            early.id = UserId::from_uuid(uuid::Uuid::from_u128(1));
            store.create_user(&early).await.unwrap();
            store
                .create_user(&user_with_email("late@example.com"))
                .await
                .unwrap();
            store.delete_user(ids[24]).await.unwrap();
        }
        round += 1;
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(10, cursor),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user appears twice");
    for id in &ids[..24] {
        assert!(
            seen.contains(id),
            "a user that existed throughout was skipped"
        );
    }
    assert!(!seen.contains(&ids[24]));
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "users come in id order");

    let prefix = store
        .list_users(&UserQuery::email_prefix("user1"), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(prefix.items.len(), 10);
    assert!(prefix.next_cursor.is_none());
    let mut blocked_query = UserQuery::all();
    blocked_query.blocked = Some(true);
    let blocked = store
        .list_users(&blocked_query, &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(blocked.items.len(), 2);
    assert!(blocked.items.iter().all(|u| u.blocked));
    let rest = store
        .list_users(
            &blocked_query,
            &PageRequest::after(100, blocked.next_cursor.unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.len(),
        3,
        "5 blocked users, ids[0], [5], [10], [15], [20]"
    );

    let forged = PageRequest::after(10, crate::model::Cursor::new("'; DROP TABLE users; --"));
    assert!(matches!(
        store.list_users(&UserQuery::all(), &forged).await,
        Err(StoreError::InvalidCursor)
    ));
}

/// Passkeys: a credential id belongs to one user; of 16 racing registrations of one id
/// (by different users) exactly one succeeds.
pub async fn passkey_credential_id_unique_under_16_racing_registrations<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let mut users = Vec::new();
    for i in 0..RACERS {
        let user = user_with_email(&format!("pk{i}@example.com"));
        store.create_user(&user).await.unwrap();
        users.push(user.id);
    }
    let users = Arc::new(users);
    let results = race(RACERS, |i| {
        let store = store.clone();
        let users = users.clone();
        async move {
            store
                .add_passkey(&passkey(users[i], b"shared-credential"))
                .await
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1);
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "credential");
    }
    let id = CredentialId::new(b"shared-credential".to_vec()).unwrap();
    let owner = store.get_passkey(&id).await.unwrap().unwrap().user_id;
    let owners: usize = {
        let mut n = 0;
        for user in users.iter() {
            n += store.list_passkeys(*user).await.unwrap().len();
        }
        n
    };
    assert_eq!(owners, 1, "only the winner holds it");
    assert_eq!(store.list_passkeys(owner).await.unwrap().len(), 1);
}

/// Passkeys: registration needs an existing user; rename and delete act only on the
/// owner's credentials.
pub async fn passkey_requires_user_and_is_scoped_to_owner<S: UserStore + 'static>(store: Arc<S>) {
    let orphan = passkey(UserId::generate(), b"orphan");
    assert!(matches!(
        store.add_passkey(&orphan).await,
        Err(StoreError::Missing { what: "user" })
    ));
    let alice = user_with_email("alice@example.com");
    let mallory = user_with_email("mallory@example.com");
    store.create_user(&alice).await.unwrap();
    store.create_user(&mallory).await.unwrap();
    let mut second = passkey(alice.id, b"alice-2");
    second.created_at = at(10);
    store.add_passkey(&second).await.unwrap();
    let first = passkey(alice.id, b"alice-1");
    store.add_passkey(&first).await.unwrap();

    let listed: Vec<_> = store.list_passkeys(alice.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");

    assert!(
        !store
            .rename_passkey(mallory.id, &first.id, "mine now")
            .await
            .unwrap()
    );
    assert!(!store.delete_passkey(mallory.id, &first.id).await.unwrap());
    assert!(
        store
            .rename_passkey(alice.id, &first.id, "YubiKey")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_passkey(&first.id).await.unwrap().unwrap().name,
        "YubiKey"
    );
    assert!(store.delete_passkey(alice.id, &first.id).await.unwrap());
    assert!(store.get_passkey(&first.id).await.unwrap().is_none());
    assert!(!store.delete_passkey(alice.id, &first.id).await.unwrap());
    assert_eq!(store.list_passkeys(alice.id).await.unwrap(), vec![second]);
}

/// Passkeys: a use applies only with a higher counter (or 0 on both sides); of 16 racing
/// uses reporting one counter exactly one applies; a regression is refused.
pub async fn passkey_use_is_monotonic_under_16_racing_sign_ins<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let user = user_with_email("counter@example.com");
    store.create_user(&user).await.unwrap();
    let credential = passkey(user.id, b"counted");
    store.add_passkey(&credential).await.unwrap();
    let use_at = |counter: u32, secs: u64| PasskeyUse {
        counter,
        backup_state: true,
        passkey: format!("{{\"counter\":{counter}}}").into_bytes(),
        at: at(secs),
    };

    let results = race(RACERS, |_| {
        let store = store.clone();
        let id = credential.id.clone();
        let used = use_at(5, 1);
        async move { store.record_passkey_use(&id, &used).await }
    })
    .await;
    assert_eq!(count_true(&results), 1, "one sign-in per counter value");
    let stored = store.get_passkey(&credential.id).await.unwrap().unwrap();
    assert_eq!(stored.counter, 5);
    assert!(stored.backup_state);
    assert_eq!(stored.passkey, b"{\"counter\":5}".to_vec());
    assert_eq!(stored.last_used_at, Some(at(1)));
    assert!(
        stored.registered_with_uv,
        "a use keeps how it was registered"
    );

    assert!(
        !store
            .record_passkey_use(&credential.id, &use_at(4, 2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_passkey_use(&credential.id, &use_at(0, 2))
            .await
            .unwrap()
    );
    let after = store.get_passkey(&credential.id).await.unwrap().unwrap();
    assert_eq!(after.counter, 5, "a refused use changes nothing");
    assert_eq!(after.last_used_at, Some(at(1)));
    assert!(
        store
            .record_passkey_use(&credential.id, &use_at(6, 3))
            .await
            .unwrap()
    );

    // Authenticators without a counter report 0 every time.
    let mut counterless = passkey(user.id, b"counterless");
    counterless.counter = 0;
    store.add_passkey(&counterless).await.unwrap();
    assert!(
        store
            .record_passkey_use(&counterless.id, &use_at(0, 4))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_passkey_use(&counterless.id, &use_at(0, 5))
            .await
            .unwrap()
    );

    let unknown = CredentialId::new(b"unknown".to_vec()).unwrap();
    assert!(
        !store
            .record_passkey_use(&unknown, &use_at(9, 6))
            .await
            .unwrap()
    );
}

/// TOTP: a time step is accepted once; of 16 racing codes for one step exactly one is
/// accepted; earlier steps are refused afterwards.
pub async fn totp_step_accepted_once_under_16_racing_codes<S: UserStore + 'static>(store: Arc<S>) {
    let user = user_with_email("totp@example.com");
    store.create_user(&user).await.unwrap();
    let factor = totp(user.id);
    store.put_totp_factor(&factor).await.unwrap();

    let results = race(RACERS, |_| {
        let store = store.clone();
        async move { store.advance_totp_step(user.id, factor.id, 1000).await }
    })
    .await;
    assert_eq!(count_true(&results), 1);
    assert!(
        !store
            .advance_totp_step(user.id, factor.id, 1000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_totp_step(user.id, factor.id, 999)
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_totp_step(user.id, factor.id, 1001)
            .await
            .unwrap()
    );
    let stored = store.list_totp_factors(user.id).await.unwrap();
    assert_eq!(stored[0].last_step, Some(1001));
    assert!(
        !store
            .advance_totp_step(UserId::generate(), factor.id, 2000)
            .await
            .unwrap()
    );
}

/// TOTP: factors are stored per user, replaced by id, listed oldest first, deleted only by
/// their owner, and cannot be moved to another user.
pub async fn totp_factors_are_owned<S: UserStore + 'static>(store: Arc<S>) {
    let alice = user_with_email("alice@example.com");
    let bob = user_with_email("bob@example.com");
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();
    assert!(matches!(
        store.put_totp_factor(&totp(UserId::generate())).await,
        Err(StoreError::Missing { what: "user" })
    ));

    let mut pending = totp(alice.id);
    pending.status = FactorStatus::Pending;
    store.put_totp_factor(&pending).await.unwrap();
    let mut later = totp(alice.id);
    later.created_at = at(5);
    store.put_totp_factor(&later).await.unwrap();
    pending.status = FactorStatus::Active;
    store.put_totp_factor(&pending).await.unwrap();
    assert_eq!(
        store.list_totp_factors(alice.id).await.unwrap(),
        vec![pending.clone(), later]
    );

    // A put from a copy read before a code was accepted cannot make that code replayable.
    assert!(
        store
            .advance_totp_step(alice.id, pending.id, 1000)
            .await
            .unwrap()
    );
    store.put_totp_factor(&pending).await.unwrap();
    let listed = store.list_totp_factors(alice.id).await.unwrap();
    assert_eq!(listed[0].last_step, Some(1000));
    assert!(
        !store
            .advance_totp_step(alice.id, pending.id, 1000)
            .await
            .unwrap()
    );

    let mut stolen = pending.clone();
    stolen.user_id = bob.id;
    conflict_on(store.put_totp_factor(&stolen).await, "factor");
    assert!(!store.delete_totp_factor(bob.id, pending.id).await.unwrap());
    assert!(
        store
            .delete_totp_factor(alice.id, pending.id)
            .await
            .unwrap()
    );
    assert_eq!(store.list_totp_factors(alice.id).await.unwrap().len(), 1);
}

/// Backup codes: each is consumed once, also under 16 racing redemptions; replacing the
/// set invalidates every old code.
pub async fn backup_code_consumed_once_under_16_racing_redemptions<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let user = user_with_email("backup@example.com");
    store.create_user(&user).await.unwrap();
    let codes: Vec<SecretHash> = (0..10).map(hash_n).collect();
    store.replace_backup_codes(user.id, &codes).await.unwrap();
    assert_eq!(store.count_backup_codes(user.id).await.unwrap(), 10);

    let target = codes[3];
    let results = race(RACERS, |_| {
        let store = store.clone();
        async move { store.consume_backup_code(user.id, &target).await }
    })
    .await;
    assert_eq!(count_true(&results), 1);
    assert_eq!(store.count_backup_codes(user.id).await.unwrap(), 9);

    let fresh = [hash(0xa1), hash(0xa2)];
    store.replace_backup_codes(user.id, &fresh).await.unwrap();
    assert!(!store.consume_backup_code(user.id, &codes[0]).await.unwrap());
    assert!(store.consume_backup_code(user.id, &fresh[0]).await.unwrap());
    assert_eq!(store.count_backup_codes(user.id).await.unwrap(), 1);
    assert!(matches!(
        store.replace_backup_codes(UserId::generate(), &fresh).await,
        Err(StoreError::Missing { what: "user" })
    ));
}

/// Organizations: of 16 concurrent creations with one slug, exactly one succeeds.
pub async fn org_slug_unique_under_16_concurrent_creates<S: OrgStore + 'static>(store: Arc<S>) {
    let results = race(RACERS, |_| {
        let store = store.clone();
        async move { store.create_org(&org("acme")).await }
    })
    .await;
    assert_eq!(count_ok(&results), 1);
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "slug");
    }
    assert!(store.get_org_by_slug("acme").await.unwrap().is_some());
    let all = store.list_orgs(&PageRequest::first(100)).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

/// Organizations: custom domains are unique across organizations; updates are
/// compare-and-swap and re-index slug and domains.
pub async fn org_domains_unique_and_update_reindexes<S: OrgStore + 'static>(store: Arc<S>) {
    let mut acme = org("acme");
    acme.domains = vec!["login.acme.com".into()];
    store.create_org(&acme).await.unwrap();
    let mut rival = org("rival");
    rival.domains = vec!["login.acme.com".into()];
    conflict_on(store.create_org(&rival).await, "domain");
    rival.domains = vec!["auth.rival.io".into()];
    store.create_org(&rival).await.unwrap();
    conflict_on(store.create_org(&org("acme")).await, "slug");

    let found = store.get_org_by_domain("login.acme.com").await.unwrap();
    assert_eq!(found.map(|o| o.id), Some(acme.id));

    let mut renamed = acme.clone();
    renamed.slug = "acme-corp".into();
    renamed.domains = vec!["sso.acme.com".into()];
    assert_eq!(store.update_org(&renamed).await.unwrap(), 1);
    assert!(store.get_org_by_slug("acme").await.unwrap().is_none());
    assert!(
        store
            .get_org_by_domain("login.acme.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_org_by_slug("acme-corp")
            .await
            .unwrap()
            .map(|o| o.id),
        Some(acme.id)
    );
    assert_eq!(
        store
            .get_org_by_domain("sso.acme.com")
            .await
            .unwrap()
            .map(|o| o.id),
        Some(acme.id)
    );

    assert!(matches!(
        store.update_org(&renamed).await,
        Err(StoreError::Stale)
    ));
    let mut grab = store.get_org(rival.id).await.unwrap().unwrap();
    grab.domains = vec!["sso.acme.com".into()];
    conflict_on(store.update_org(&grab).await, "domain");
    grab.domains = vec!["auth.rival.io".into()];
    grab.slug = "acme-corp".into();
    conflict_on(store.update_org(&grab).await, "slug");
    let rival_now = store.get_org(rival.id).await.unwrap().unwrap();
    assert_eq!(rival_now.slug, "rival", "a refused update changes nothing");
    assert_eq!(rival_now.revision, 0);
}

/// Organizations: deleting one removes its apps, roles, permissions and memberships, and
/// frees its slug, domains and client ids.
pub async fn org_delete_cascades<S: OrgStore + 'static>(store: Arc<S>) {
    let mut acme = org("acme");
    acme.domains = vec!["acme.example.com".into()];
    let other = org("other");
    store.create_org(&acme).await.unwrap();
    store.create_org(&other).await.unwrap();
    store.create_app(&app(acme.id, "acme-web")).await.unwrap();
    store.create_app(&app(other.id, "other-web")).await.unwrap();
    let key = api_credential(acme.id, 1);
    store.create_api_credential(&key).await.unwrap();
    store
        .create_api_credential(&api_credential(other.id, 2))
        .await
        .unwrap();
    store
        .put_permission(&permission(acme.id, "invoices:read"))
        .await
        .unwrap();
    let admin = role(acme.id, "admin", &[]);
    store.put_role(&admin).await.unwrap();
    let member = UserId::generate();
    store
        .put_membership(&membership(member, acme.id, &[admin.id]))
        .await
        .unwrap();
    store
        .put_membership(&membership(member, other.id, &[]))
        .await
        .unwrap();

    assert!(store.delete_org(acme.id).await.unwrap());
    assert!(!store.delete_org(acme.id).await.unwrap());
    assert!(store.get_org(acme.id).await.unwrap().is_none());
    assert!(store.list_apps(acme.id).await.unwrap().is_empty());
    assert!(
        store
            .get_app(&ClientId::new("acme-web").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_roles(acme.id).await.unwrap().is_empty());
    assert!(store.list_permissions(acme.id).await.unwrap().is_empty());
    assert!(
        store
            .get_membership(member, acme.id)
            .await
            .unwrap()
            .is_none()
    );
    let left = store.list_memberships(member).await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.org_id).collect::<Vec<_>>(),
        vec![other.id]
    );
    assert_eq!(store.list_apps(other.id).await.unwrap().len(), 1);
    assert!(
        store
            .list_api_credentials(acme.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_api_credential_by_hash(&key.secret_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_api_credentials(other.id).await.unwrap().len(), 1);

    let mut again = org("acme");
    again.domains = vec!["acme.example.com".into()];
    store.create_org(&again).await.unwrap();
    store.create_app(&app(again.id, "acme-web")).await.unwrap();
}

/// Organizations: listing pages in id order, stable under inserts.
pub async fn org_listing_pages_are_stable<S: OrgStore + 'static>(store: Arc<S>) {
    let mut ids = Vec::new();
    for i in 0..12 {
        let o = org(&format!("org-{i}"));
        store.create_org(&o).await.unwrap();
        ids.push(o.id);
    }
    let first = store.list_orgs(&PageRequest::first(5)).await.unwrap();
    // Churn that breaks offset paging: the cursor's own organization goes, one that sorts
    // first and one that sorts last arrive.
    store.delete_org(ids[4]).await.unwrap();
    let mut early = org("early");
    early.id = OrgId::from_uuid(uuid::Uuid::from_u128(1));
    store.create_org(&early).await.unwrap();
    store.create_org(&org("newcomer")).await.unwrap();
    let second = store
        .list_orgs(&PageRequest::after(5, first.next_cursor.clone().unwrap()))
        .await
        .unwrap();
    let third = store
        .list_orgs(&PageRequest::after(5, second.next_cursor.clone().unwrap()))
        .await
        .unwrap();
    assert!(third.next_cursor.is_none());
    let seen: Vec<OrgId> = [first, second, third]
        .into_iter()
        .flat_map(|p| p.items.into_iter().map(|o| o.id))
        .collect();
    assert_eq!(
        &seen[..12],
        &ids[..],
        "none skipped, none twice, in id order"
    );
    assert_eq!(seen.len(), 13, "the newcomer sorts last and is listed once");
    assert!(!seen.contains(&early.id), "it sorts before the cursor");
}

/// Apps: a client id is unique across organizations; an app needs its organization.
pub async fn app_client_id_unique_across_orgs<S: OrgStore + 'static>(store: Arc<S>) {
    let a = org("a");
    let b = org("b");
    store.create_org(&a).await.unwrap();
    store.create_org(&b).await.unwrap();
    store.create_app(&app(a.id, "web")).await.unwrap();
    conflict_on(store.create_app(&app(b.id, "web")).await, "client_id");
    assert!(matches!(
        store.create_app(&app(OrgId::generate(), "stray")).await,
        Err(StoreError::Missing {
            what: "organization"
        })
    ));
    let found = store
        .get_app(&ClientId::new("web").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.org_id, a.id);
    // An update replaces what the app says of itself, never whose it is.
    let mut changed = found.clone();
    changed.name = "renamed".into();
    changed.redirect_uris = vec!["https://app.example.com/other".into()];
    changed.client.first_party = true;
    changed.client.post_logout_redirect_uris = vec!["https://app.example.com/bye".into()];
    changed.org_id = b.id;
    assert!(store.update_app(&changed).await.unwrap());
    let stored = store
        .get_app(&ClientId::new("web").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "renamed");
    assert_eq!(stored.redirect_uris, changed.redirect_uris);
    assert_eq!(stored.client, changed.client);
    assert_eq!(stored.org_id, a.id, "the organization stays");
    assert!(!store.update_app(&app(a.id, "ghost")).await.unwrap());
    assert!(
        store
            .delete_app(&ClientId::new("web").unwrap())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_app(&ClientId::new("web").unwrap())
            .await
            .unwrap()
    );
    store.create_app(&app(b.id, "web")).await.unwrap();
}

/// Roles and permissions: names unique per organization (not across); roles refer to
/// permissions by id, so a rename changes no role; deleting a permission removes its id
/// from roles; deleting a role removes it from memberships;
/// memberships cannot name another organization's roles.
pub async fn roles_and_permissions_cascade<S: OrgStore + 'static>(store: Arc<S>) {
    let acme = org("acme");
    let other = org("other");
    store.create_org(&acme).await.unwrap();
    store.create_org(&other).await.unwrap();
    let read = permission(acme.id, "invoices:read");
    let write = permission(acme.id, "invoices:write");
    store.put_permission(&read).await.unwrap();
    store.put_permission(&write).await.unwrap();
    conflict_on(
        store
            .put_permission(&permission(acme.id, "invoices:read"))
            .await,
        "permission",
    );
    store
        .put_permission(&permission(other.id, "invoices:read"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_permission(&permission(OrgId::generate(), "x:y"))
            .await,
        Err(StoreError::Missing { .. })
    ));

    let mut clerk = role(acme.id, "clerk", &[&read, &write]);
    clerk.wildcards = vec![Permission::new("reports:*").unwrap()];
    let viewer = role(acme.id, "viewer", &[&read]);
    store.put_role(&clerk).await.unwrap();
    store.put_role(&viewer).await.unwrap();
    conflict_on(store.put_role(&role(acme.id, "clerk", &[])).await, "role");
    let foreign = role(other.id, "clerk", &[]);
    store.put_role(&foreign).await.unwrap();

    let user = UserId::generate();
    assert!(matches!(
        store
            .put_membership(&membership(user, acme.id, &[foreign.id]))
            .await,
        Err(StoreError::Missing { what: "role" })
    ));
    store
        .put_membership(&membership(user, acme.id, &[clerk.id, viewer.id]))
        .await
        .unwrap();
    let granted = store.permissions_of(user, acme.id).await.unwrap();
    let names: Vec<&str> = granted.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, vec!["invoices:read", "invoices:write", "reports:*"]);

    // Roles refer to permissions by id: a rename changes no role, and the roles grant the
    // new name at once.
    let mut view = read.clone();
    view.name = Permission::new("invoices:view").unwrap();
    store.put_permission(&view).await.unwrap();
    let viewer_now = store.get_role(acme.id, viewer.id).await.unwrap().unwrap();
    assert_eq!(viewer_now, viewer, "the role itself is untouched");
    let granted = store.permissions_of(user, acme.id).await.unwrap();
    let names: Vec<&str> = granted.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, vec!["invoices:view", "invoices:write", "reports:*"]);
    store.put_permission(&read).await.unwrap();

    assert!(store.delete_permission(acme.id, write.id).await.unwrap());
    assert!(
        !store.delete_permission(other.id, read.id).await.unwrap(),
        "scoped to its org"
    );
    let clerk_now = store.get_role(acme.id, clerk.id).await.unwrap().unwrap();
    assert_eq!(clerk_now.permission_ids, vec![read.id]);
    assert_eq!(clerk_now.wildcards, clerk.wildcards, "wildcards stay");

    assert!(store.delete_role(acme.id, clerk.id).await.unwrap());
    assert!(store.get_role(acme.id, clerk.id).await.unwrap().is_none());
    let m = store.get_membership(user, acme.id).await.unwrap().unwrap();
    assert_eq!(m.role_ids, vec![viewer.id]);
    assert!(
        store.get_role(acme.id, foreign.id).await.unwrap().is_none(),
        "roles are per org"
    );
    assert_eq!(store.list_roles(other.id).await.unwrap(), vec![foreign]);
}

/// Memberships: read by user and by organization (paged), replaced, removed one by one or
/// all of a user's at once.
pub async fn memberships_by_user_and_by_org<S: OrgStore + 'static>(store: Arc<S>) {
    let acme = org("acme");
    let beta = org("beta");
    store.create_org(&acme).await.unwrap();
    store.create_org(&beta).await.unwrap();
    assert!(matches!(
        store
            .put_membership(&membership(UserId::generate(), OrgId::generate(), &[]))
            .await,
        Err(StoreError::Missing {
            what: "organization"
        })
    ));
    let mut members = Vec::new();
    for _ in 0..7 {
        let user = UserId::generate();
        store
            .put_membership(&membership(user, acme.id, &[]))
            .await
            .unwrap();
        members.push(user);
    }
    let roaming = members[0];
    store
        .put_membership(&membership(roaming, beta.id, &[]))
        .await
        .unwrap();
    let admin = role(acme.id, "admin", &[]);
    store.put_role(&admin).await.unwrap();
    store
        .put_membership(&membership(roaming, acme.id, &[admin.id]))
        .await
        .unwrap();

    let mine = store.list_memberships(roaming).await.unwrap();
    assert_eq!(
        mine.len(),
        2,
        "replacing a membership does not duplicate it"
    );
    let page1 = store
        .list_members(acme.id, &PageRequest::first(4))
        .await
        .unwrap();
    let page2 = store
        .list_members(
            acme.id,
            &PageRequest::after(4, page1.next_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    assert!(page2.next_cursor.is_none());
    let listed: Vec<UserId> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|m| m.user_id)
        .collect();
    let mut expected = members.clone();
    expected.sort();
    assert_eq!(listed, expected);

    assert!(store.delete_membership(members[1], acme.id).await.unwrap());
    assert!(!store.delete_membership(members[1], acme.id).await.unwrap());
    assert_eq!(store.delete_memberships_of_user(roaming).await.unwrap(), 2);
    assert!(store.list_memberships(roaming).await.unwrap().is_empty());
    let rest = store
        .list_members(acme.id, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 5);
}

/// Sessions: found by id and by every refresh hash of the family; invisible once expired.
pub async fn session_family_lookup_and_expiry<S: SessionStore + 'static>(store: Arc<S>) {
    let user = UserId::generate();
    let s = session(user, hash(1), at(100));
    store.create_session(&s).await.unwrap();
    conflict_on(store.create_session(&s).await, "session");
    let mut twin = session(user, hash(1), at(100));
    twin.id = SessionId::generate();
    conflict_on(store.create_session(&twin).await, "refresh_token");

    assert_eq!(
        store.get_session(s.id, t0()).await.unwrap(),
        Some(s.clone())
    );
    let rotated = store
        .rotate_refresh(s.id, &hash(1), &hash(2), at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.generation, 1);
    assert_eq!(rotated.refresh_hash, hash(2));
    assert_eq!(rotated.last_seen_at, at(10));
    let by_old = store
        .find_by_refresh_hash(&hash(1), at(11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_old.id, s.id);
    assert_eq!(
        by_old.refresh_hash,
        hash(2),
        "the old hash leads to the current state"
    );
    assert!(
        store
            .find_by_refresh_hash(&hash(2), at(11))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_by_refresh_hash(&hash(9), at(11))
            .await
            .unwrap()
            .is_none()
    );

    assert!(store.get_session(s.id, at(99)).await.unwrap().is_some());
    assert!(
        store.get_session(s.id, at(100)).await.unwrap().is_none(),
        "expired at expires_at"
    );
    assert!(
        store
            .find_by_refresh_hash(&hash(2), at(100))
            .await
            .unwrap()
            .is_none()
    );
}

/// Sessions: of 16 racing rotations from one refresh hash exactly one wins.
pub async fn session_rotate_has_one_winner_under_16_racing_refreshes<S: SessionStore + 'static>(
    store: Arc<S>,
) {
    let s = session(UserId::generate(), hash(1), at(1000));
    store.create_session(&s).await.unwrap();
    let results = race(RACERS, |i| {
        let store = store.clone();
        async move {
            store
                .rotate_refresh(s.id, &hash(1), &hash_n(100 + i), at(5))
                .await
                .map(|r| r.map(|_| i))
        }
    })
    .await;
    let winners: Vec<usize> = results
        .iter()
        .filter_map(|r| *r.as_ref().unwrap())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    let now = store.get_session(s.id, at(6)).await.unwrap().unwrap();
    assert_eq!(now.refresh_hash, hash_n(100 + winners[0]));
    assert_eq!(now.generation, 1);
    for i in (0..RACERS).filter(|i| *i != winners[0]) {
        let lost = store
            .find_by_refresh_hash(&hash_n(100 + i), at(6))
            .await
            .unwrap();
        assert!(lost.is_none(), "a losing rotation leaves no hash behind");
    }
}

/// Sessions: rotation refuses a wrong expected hash, a revoked session and an expired one.
pub async fn session_rotate_refuses_wrong_revoked_or_expired<S: SessionStore + 'static>(
    store: Arc<S>,
) {
    let s = session(UserId::generate(), hash(1), at(100));
    store.create_session(&s).await.unwrap();
    assert!(
        store
            .rotate_refresh(s.id, &hash(7), &hash(2), at(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_refresh(s.id, &hash(1), &hash(2), at(100))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .rotate_refresh(SessionId::generate(), &hash(1), &hash(3), at(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.revoke_session(s.id, at(2)).await.unwrap());
    assert!(
        !store.revoke_session(s.id, at(3)).await.unwrap(),
        "already revoked"
    );
    assert!(
        store
            .rotate_refresh(s.id, &hash(1), &hash(4), at(4))
            .await
            .unwrap()
            .is_none()
    );
    let revoked = store.get_session(s.id, at(5)).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(2)));
    assert_eq!(revoked.refresh_hash, hash(1));
    assert!(!revoked.is_active(at(5)));
}

/// Sessions: revoke all of a user's at once, list the active ones newest first, delete
/// and purge.
pub async fn session_revocation_listing_and_deletion<S: SessionStore + 'static>(store: Arc<S>) {
    let user = UserId::generate();
    let other = UserId::generate();
    let mut sessions = Vec::new();
    for i in 0..4u8 {
        let mut s = session(user, hash(10 + i), at(1000));
        s.created_at = at(u64::from(i));
        store.create_session(&s).await.unwrap();
        sessions.push(s);
    }
    let short = session(user, hash(20), at(50));
    store.create_session(&short).await.unwrap();
    let theirs = session(other, hash(30), at(1000));
    store.create_session(&theirs).await.unwrap();
    store.revoke_session(sessions[0].id, at(5)).await.unwrap();

    let listed = store.list_user_sessions(user, at(60)).await.unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![sessions[3].id, sessions[2].id, sessions[1].id]);

    assert_eq!(store.revoke_user_sessions(user, at(61)).await.unwrap(), 3);
    assert!(
        store
            .list_user_sessions(user, at(62))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_user_sessions(other, at(62)).await.unwrap().len(),
        1
    );

    assert_eq!(
        store.purge_expired_sessions(at(60)).await.unwrap(),
        1,
        "only the short one"
    );
    assert_eq!(store.delete_user_sessions(user).await.unwrap(), 4);
    assert!(
        store
            .get_session(sessions[1].id, at(63))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_by_refresh_hash(&hash(11), at(63))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_session(theirs.id, at(63))
            .await
            .unwrap()
            .is_some()
    );
}

/// Signing keys: kids are unique (also under 16 racing adds), listed oldest first, and
/// deleted one by one.
pub async fn signing_keys_unique_ordered_and_deletable<S: KeyStore + 'static>(store: Arc<S>) {
    let key = |kid: &str, secs: u64| StoredSigningKey {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: Sealed::from_bytes(vec![9; 80]),
        public_key: vec![7; 32],
        created_at: at(secs),
    };
    let results = race(RACERS, |i| {
        let store = store.clone();
        let mut k = key("k-race", 5);
        k.public_key = vec![i as u8; 32];
        async move { store.add_signing_key(&k).await }
    })
    .await;
    assert_eq!(count_ok(&results), 1);
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "kid");
    }
    store.add_signing_key(&key("k-new", 10)).await.unwrap();
    store.add_signing_key(&key("k-old", 1)).await.unwrap();
    let kids: Vec<String> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec!["k-old", "k-race", "k-new"]);
    assert!(store.delete_signing_key("k-race").await.unwrap());
    assert!(!store.delete_signing_key("k-race").await.unwrap());
    let left = store.list_signing_keys().await.unwrap();
    assert_eq!(left, vec![key("k-old", 1), key("k-new", 10)]);
}

/// Challenges: of 16 racing takes of one key exactly one gets the record.
pub async fn challenge_take_is_exactly_once_under_16_racing_takes<S: ChallengeStore + 'static>(
    store: Arc<S>,
) {
    let k = key(ChallengeKind::MagicLink, "take-me");
    assert!(store.insert(&k, b"payload", at(600), t0()).await.unwrap());
    let results = race(RACERS, |_| {
        let store = store.clone();
        let k = k.clone();
        async move { store.take(&k, at(1)).await }
    })
    .await;
    let taken: Vec<_> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(taken.len(), 1, "exactly one take gets the record");
    assert_eq!(taken[0].value, b"payload".to_vec());
    assert!(store.get(&k, at(2)).await.unwrap().is_none());
    assert!(store.take(&k, at(2)).await.unwrap().is_none());
}

/// Challenges: of 16 racing inserts of one key exactly one wins, and its value stays.
pub async fn challenge_insert_if_absent_under_16_racing_inserts<S: ChallengeStore + 'static>(
    store: Arc<S>,
) {
    let k = key(ChallengeKind::AuthCode, "insert-once");
    let results = race(RACERS, |i| {
        let store = store.clone();
        let k = k.clone();
        async move {
            let value = format!("writer {i}");
            store
                .insert(&k, value.as_bytes(), at(60), t0())
                .await
                .map(|ok| ok.then_some(value))
        }
    })
    .await;
    let winners: Vec<String> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(winners.len(), 1);
    let stored = store.get(&k, at(1)).await.unwrap().unwrap();
    assert_eq!(stored.value, winners[0].as_bytes());
    assert_eq!(stored.version, 0);
    // Kinds are separate namespaces.
    assert!(
        store
            .insert(
                &key(ChallengeKind::MfaToken, "insert-once"),
                b"x",
                at(60),
                t0()
            )
            .await
            .unwrap()
    );
}

/// Challenges: a record is invisible from its `expires_at` on, to get, take, update and
/// delete, and an insert may replace it.
pub async fn challenge_expiry_is_visible_at_once<S: ChallengeStore + 'static>(store: Arc<S>) {
    let k = key(ChallengeKind::OneTimeCode, "short-lived");
    assert!(store.insert(&k, b"v1", at(600), t0()).await.unwrap());
    assert!(store.get(&k, at(599)).await.unwrap().is_some());
    assert!(store.get(&k, at(600)).await.unwrap().is_none());
    assert!(store.take(&k, at(600)).await.unwrap().is_none());
    assert!(!store.update(&k, 0, b"v2", at(9999), at(600)).await.unwrap());
    assert!(!store.delete(&k, at(600)).await.unwrap());

    let k2 = key(ChallengeKind::OneTimeCode, "replaced");
    assert!(store.insert(&k2, b"old", at(10), t0()).await.unwrap());
    assert!(
        !store.insert(&k2, b"new", at(100), at(9)).await.unwrap(),
        "still live"
    );
    assert!(
        store.insert(&k2, b"new", at(100), at(10)).await.unwrap(),
        "expired: replaced"
    );
    let now = store.get(&k2, at(11)).await.unwrap().unwrap();
    assert_eq!(now.value, b"new".to_vec());
    assert_eq!(now.version, 0);
    // An expired record is not resurrected by a late take either.
    assert!(store.take(&k2, at(100)).await.unwrap().is_none());
}

/// Challenges: update is compare-and-swap on the version; of 16 racing updates from one
/// version exactly one applies.
pub async fn challenge_update_is_compare_and_swap_under_16_racing_updates<
    S: ChallengeStore + 'static,
>(
    store: Arc<S>,
) {
    let k = key(ChallengeKind::Request, "status");
    assert!(store.insert(&k, b"pending", at(300), t0()).await.unwrap());
    let results = race(RACERS, |i| {
        let store = store.clone();
        let k = k.clone();
        async move {
            let value = format!("verified by {i}");
            store
                .update(&k, 0, value.as_bytes(), at(400), at(1))
                .await
                .map(|ok| ok.then_some(value))
        }
    })
    .await;
    let winners: Vec<String> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(winners.len(), 1);
    let stored = store.get(&k, at(2)).await.unwrap().unwrap();
    assert_eq!(stored.value, winners[0].as_bytes());
    assert_eq!(stored.version, 1);
    assert_eq!(stored.expires_at, at(400), "update sets the new expiry");
    assert!(!store.update(&k, 0, b"stale", at(400), at(3)).await.unwrap());
    assert!(store.update(&k, 1, b"again", at(400), at(3)).await.unwrap());
    assert!(
        !store
            .update(&key(ChallengeKind::Request, "absent"), 0, b"x", at(9), t0())
            .await
            .unwrap()
    );
    assert!(store.delete(&k, at(4)).await.unwrap());
    assert!(store.get(&k, at(4)).await.unwrap().is_none());
}

/// Counters: 16 tasks incrementing 25 times each lose no count.
pub async fn counter_incr_loses_no_count_under_16_tasks<S: ChallengeStore + 'static>(
    store: Arc<S>,
) {
    let results = race(RACERS, |_| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..25 {
                seen.push(store.incr("rl:test:hot", at(60), t0()).await.unwrap().count);
            }
            seen
        }
    })
    .await;
    let mut all: Vec<u64> = results.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (1..=(RACERS as u64 * 25)).collect();
    assert_eq!(all, expected, "every increment saw a distinct count");
    let counter = store.counter("rl:test:hot", at(1)).await.unwrap().unwrap();
    assert_eq!(counter.count, RACERS as u64 * 25);
}

/// Counters: a window keeps its expiry across increments; an expired counter restarts at
/// 1 with the new expiry; reset forgets it.
pub async fn counter_windows_expire_and_reset<S: ChallengeStore + 'static>(store: Arc<S>) {
    let first = store.incr("rl:w", at(60), t0()).await.unwrap();
    assert_eq!((first.count, first.expires_at), (1, at(60)));
    let second = store.incr("rl:w", at(90), at(30)).await.unwrap();
    assert_eq!(
        (second.count, second.expires_at),
        (2, at(60)),
        "the window is kept"
    );
    assert!(
        store.counter("rl:w", at(60)).await.unwrap().is_none(),
        "expired at expires_at"
    );
    let fresh = store.incr("rl:w", at(120), at(60)).await.unwrap();
    assert_eq!((fresh.count, fresh.expires_at), (1, at(120)));
    assert!(store.counter("rl:other", at(61)).await.unwrap().is_none());
    assert!(store.reset_counter("rl:w", at(61)).await.unwrap());
    assert!(!store.reset_counter("rl:w", at(61)).await.unwrap());
    assert!(store.counter("rl:w", at(61)).await.unwrap().is_none());
}

/// Purging removes expired records and counters, and nothing live.
pub async fn purge_removes_only_expired<S: ChallengeStore + 'static>(store: Arc<S>) {
    for i in 0..10 {
        let expires = if i < 6 { at(10) } else { at(1000) };
        let k = key(ChallengeKind::Webauthn, &format!("state-{i}"));
        assert!(store.insert(&k, b"state", expires, t0()).await.unwrap());
    }
    store.incr("rl:old", at(10), t0()).await.unwrap();
    store.incr("rl:new", at(1000), t0()).await.unwrap();
    assert_eq!(store.purge_expired(at(10)).await.unwrap(), 7);
    assert_eq!(store.purge_expired(at(10)).await.unwrap(), 0);
    for i in 6..10 {
        let k = key(ChallengeKind::Webauthn, &format!("state-{i}"));
        assert!(store.get(&k, at(11)).await.unwrap().is_some());
    }
    assert!(store.counter("rl:new", at(11)).await.unwrap().is_some());
}

/// Audit: a user's events come newest first, paged, stable under appends, and never
/// include another user's.
pub async fn audit_log_newest_first_and_paged_stably<S: AuditLog + 'static>(store: Arc<S>) {
    let user = UserId::generate();
    let other = UserId::generate();
    let event = |who: Option<UserId>, secs: u64| AuthEvent {
        id: EventId::generate(),
        at: at(secs),
        kind: AuthEventKind::SignIn,
        user_id: who,
        org_id: None,
        method: Some("pwd".into()),
        reason: None,
        ip: Some([192, 0, 2, 1].into()),
        user_agent: None,
        prev: None,
        prev_hash: None,
        personal_digest: None,
        seal: None,
    };
    let mut mine = Vec::new();
    for i in 0..12 {
        let e = append_linked(&*store, event(Some(user), i)).await;
        mine.push(e);
        append_linked(&*store, event(Some(other), i)).await;
        append_linked(&*store, event(None, i)).await;
    }
    let page1 = store
        .list_user_events(user, &PageRequest::first(5))
        .await
        .unwrap();
    assert_eq!(
        page1.items,
        mine.iter().rev().take(5).cloned().collect::<Vec<_>>()
    );
    // A new event arrives between pages: it is newer than the cursor, so it is not listed.
    append_linked(&*store, event(Some(user), 100)).await;
    let mut rest = Vec::new();
    let mut cursor = page1.next_cursor;
    while let Some(c) = cursor {
        let page = store
            .list_user_events(user, &PageRequest::after(5, c))
            .await
            .unwrap();
        rest.extend(page.items);
        cursor = page.next_cursor;
    }
    let expected: Vec<AuthEvent> = mine.iter().rev().skip(5).cloned().collect();
    assert_eq!(rest, expected);
    let fresh = store
        .list_user_events(user, &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(fresh.items[0].at, at(100));
    let mut rewrite = mine[0].clone();
    rewrite.kind = AuthEventKind::SignInFailed;
    rewrite.user_id = Some(other);
    conflict_on(store.append(&rewrite).await, "event");
    let all = store
        .list_user_events(user, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        all.items.last(),
        Some(&mine[0]),
        "an appended event never changes"
    );
    let nobody = store
        .list_user_events(UserId::generate(), &PageRequest::first(5))
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

/// An administrator's view of the log: an organization's events only (or the whole
/// installation's), newest first, narrowed by kind, user, address and time, paged across
/// events the filters pass over.
pub async fn audit_log_lists_an_organizations_events_by_filter<S: AuditLog + 'static>(
    store: Arc<S>,
) {
    let (acme, other) = (OrgId::generate(), OrgId::generate());
    let (ann, bob) = (UserId::generate(), UserId::generate());
    let event = |org: Option<OrgId>, who: Option<UserId>, kind, ip: [u8; 4], secs| AuthEvent {
        id: EventId::generate(),
        at: at(secs),
        kind,
        user_id: who,
        org_id: org,
        method: None,
        reason: None,
        ip: Some(ip.into()),
        user_agent: None,
        prev: None,
        prev_hash: None,
        personal_digest: None,
        seal: None,
    };
    let mut acme_events = Vec::new();
    for i in 0..20u64 {
        let (who, kind) = match i % 4 {
            0 => (Some(ann), AuthEventKind::SignIn),
            1 => (Some(bob), AuthEventKind::SignInFailed),
            2 => (None, AuthEventKind::RateLimited),
            _ => (Some(ann), AuthEventKind::SignOut),
        };
        let ip = if i % 2 == 0 {
            [192, 0, 2, 1]
        } else {
            [198, 51, 100, 9]
        };
        acme_events.push(append_linked(&*store, event(Some(acme), who, kind, ip, i * 10)).await);
        append_linked(&*store, event(Some(other), Some(bob), kind, ip, i * 10)).await;
        append_linked(&*store, event(None, None, kind, ip, i * 10)).await;
    }
    let newest_first = |keep: &dyn Fn(&AuthEvent) -> bool| -> Vec<AuthEvent> {
        acme_events
            .iter()
            .rev()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    };
    let all = |query: EventQuery, limit: u32| {
        let store = store.clone();
        async move {
            let mut items = Vec::new();
            let mut pages = 0;
            let mut next = Some(PageRequest::first(limit));
            while let Some(request) = next {
                let page = store.list_events(&query, &request).await.unwrap();
                assert!(page.items.len() <= limit as usize);
                pages += 1;
                items.extend(page.items);
                next = page.next_cursor.map(|c| PageRequest::after(limit, c));
            }
            (items, pages)
        }
    };
    let (items, pages) = all(EventQuery::in_org(acme), 7).await;
    assert_eq!(
        items,
        newest_first(&|_| true),
        "the organization's events only"
    );
    assert_eq!(pages, 3);
    let failures = EventQuery::in_org(acme).kinds(vec![AuthEventKind::SignInFailed]);
    let (items, _) = all(failures, 2).await;
    assert_eq!(
        items,
        newest_first(&|e| e.kind == AuthEventKind::SignInFailed)
    );
    assert_eq!(items.len(), 5);
    let two_kinds =
        EventQuery::in_org(acme).kinds(vec![AuthEventKind::SignIn, AuthEventKind::SignOut]);
    let (items, _) = all(two_kinds.user(Some(ann)), 3).await;
    assert_eq!(items, newest_first(&|e| e.user_id == Some(ann)));
    assert_eq!(items.len(), 10);
    let (items, _) = all(EventQuery::in_org(acme).user(Some(bob)), 50).await;
    assert_eq!(
        items,
        newest_first(&|e| e.user_id == Some(bob)),
        "not bob's events elsewhere"
    );
    let from_ip = EventQuery::in_org(acme).ip(Some([198, 51, 100, 9].into()));
    let (items, _) = all(from_ip, 4).await;
    assert_eq!(
        items,
        newest_first(&|e| e.ip == Some([198, 51, 100, 9].into()))
    );
    let window = EventQuery::in_org(acme).between(Some(at(50)), Some(at(120)));
    let (items, _) = all(window, 3).await;
    assert_eq!(items, newest_first(&|e| e.at >= at(50) && e.at < at(120)));
    assert_eq!(items.len(), 7);
    let (items, _) = all(EventQuery::all(), 25).await;
    assert_eq!(
        items.len(),
        60,
        "the installation's log holds every organization's and none"
    );
    assert!(items.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let nothing = store
        .list_events(
            &EventQuery::in_org(OrgId::generate()),
            &PageRequest::first(5),
        )
        .await
        .unwrap();
    assert!(nothing.items.is_empty() && nothing.next_cursor.is_none());
    let bad = store
        .list_events(
            &EventQuery::in_org(acme),
            &PageRequest::after(5, crate::model::Cursor::new("nope")),
        )
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidCursor)), "{bad:?}");
}

/// `forget_user` clears the IP address and user agent of that user's events only, once,
/// and keeps the events.
pub async fn audit_log_forgets_a_users_personal_data_only<S: AuditLog + 'static>(store: Arc<S>) {
    let user = UserId::generate();
    let other = UserId::generate();
    let event = |who: UserId, secs: u64| AuthEvent {
        id: EventId::generate(),
        at: at(secs),
        kind: AuthEventKind::SignIn,
        user_id: Some(who),
        org_id: None,
        method: Some("pwd".into()),
        reason: None,
        ip: Some([192, 0, 2, 7].into()),
        user_agent: Some("Firefox".into()),
        prev: None,
        prev_hash: None,
        personal_digest: None,
        seal: None,
    };
    for i in 0..3 {
        append_linked(&*store, event(user, i)).await;
        append_linked(&*store, event(other, i)).await;
    }
    assert_eq!(store.forget_user(user).await.unwrap(), 3);
    assert_eq!(
        store.forget_user(user).await.unwrap(),
        0,
        "nothing left to forget"
    );
    let mine = store
        .list_user_events(user, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 3, "the events stay");
    for e in &mine.items {
        assert_eq!((e.ip, e.user_agent.as_deref()), (None, None));
        assert_eq!((e.user_id, e.method.as_deref()), (Some(user), Some("pwd")));
    }
    let theirs = store
        .list_user_events(other, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(
        theirs
            .items
            .iter()
            .all(|e| e.ip.is_some() && e.user_agent.is_some())
    );
}

/// API credentials: the secret hash and id are unique, even under racing creations; a
/// credential is found by its hash and listed oldest first in its organization only;
/// updates keep the hash and scopes, never move `last_used_at` back and never clear
/// `revoked_at`.
pub async fn api_credentials_unique_listed_and_never_unrevoked<S: OrgStore + 'static>(
    store: Arc<S>,
) {
    let acme = org("acme");
    let other = org("other");
    store.create_org(&acme).await.unwrap();
    store.create_org(&other).await.unwrap();
    let missing = api_credential(OrgId::generate(), 9);
    assert!(matches!(
        store.create_api_credential(&missing).await,
        Err(StoreError::Missing { .. })
    ));
    let results = race(RACERS, {
        let store = store.clone();
        move |i| {
            let store = store.clone();
            async move {
                let mut key = api_credential(acme.id, 1);
                key.name = format!("racer {i}");
                store.create_api_credential(&key).await
            }
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "one credential per secret hash");
    for result in &results {
        if let Err(err) = result {
            assert!(
                matches!(
                    err,
                    StoreError::Conflict {
                        what: "api_credential"
                    }
                ),
                "{err:?}"
            );
        }
    }
    let first = store
        .get_api_credential_by_hash(&hash(1))
        .await
        .unwrap()
        .unwrap();
    let mut second = api_credential(acme.id, 2);
    second.created_at = at(5);
    store.create_api_credential(&second).await.unwrap();
    store
        .create_api_credential(&api_credential(other.id, 3))
        .await
        .unwrap();
    let listed: Vec<_> = store
        .list_api_credentials(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![first.id, second.id]);

    let mut used = first.clone();
    used.last_used_at = Some(at(10));
    used.scopes = Vec::new();
    used.secret_hash = hash(7);
    assert!(store.update_api_credential(&used).await.unwrap());
    let stored = store
        .get_api_credential_by_hash(&hash(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_used_at, Some(at(10)));
    assert_eq!(stored.scopes, first.scopes, "scopes stay");
    assert!(
        store
            .get_api_credential_by_hash(&hash(7))
            .await
            .unwrap()
            .is_none()
    );
    let mut revoked = stored.clone();
    revoked.revoked_at = Some(at(11));
    revoked.last_used_at = Some(at(3));
    assert!(store.update_api_credential(&revoked).await.unwrap());
    let mut unrevoke = revoked.clone();
    unrevoke.revoked_at = None;
    assert!(store.update_api_credential(&unrevoke).await.unwrap());
    let stored = store
        .get_api_credential_by_hash(&hash(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_at, Some(at(11)), "a revocation stays");
    assert_eq!(
        stored.last_used_at,
        Some(at(10)),
        "last use never moves back"
    );
    let mut elsewhere = stored.clone();
    elsewhere.org_id = other.id;
    assert!(!store.update_api_credential(&elsewhere).await.unwrap());
}

/// Audit: appends for one user race for its head; exactly one of those naming one head
/// succeeds, the others get `Conflict("chain")`, and the head is the winner. Events that
/// name no user are not chained.
pub async fn audit_chain_head_moves_once_under_16_racing_appends<S: AuditLog + 'static>(
    store: Arc<S>,
) {
    let user = UserId::generate();
    let event = |prev: Option<EventId>| AuthEvent {
        id: EventId::generate(),
        at: t0(),
        kind: AuthEventKind::SignIn,
        user_id: Some(user),
        org_id: None,
        method: None,
        reason: None,
        ip: None,
        user_agent: None,
        prev,
        prev_hash: None,
        personal_digest: None,
        seal: None,
    };
    assert!(store.user_head(user).await.unwrap().is_none());
    let first = event(None);
    store.append(&first).await.unwrap();
    let stale = event(None);
    assert!(matches!(
        store.append(&stale).await,
        Err(StoreError::Conflict { what: "chain" })
    ));
    let results = race(RACERS, {
        let store = store.clone();
        move |_| {
            let store = store.clone();
            let racer = event(Some(first.id));
            async move { store.append(&racer).await.map(|()| racer.id) }
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "{results:?}");
    let winner = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    let head = store.user_head(user).await.unwrap().unwrap();
    assert_eq!(head.id, *winner);
    assert_eq!(head.prev, Some(first.id));
    let listed = store
        .list_user_events(user, &PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2, "losers left nothing behind");
    let mut anonymous = event(Some(EventId::generate()));
    anonymous.user_id = None;
    store.append(&anonymous).await.unwrap();
}

/// Organizations: of 16 organizations racing for one custom domain exactly one gets it;
/// of 16 apps racing for one client id (in different organizations) exactly one is made.
pub async fn org_domain_and_client_id_unique_under_16_racers<S: OrgStore + 'static>(store: Arc<S>) {
    let results = race(RACERS, |i| {
        let store = store.clone();
        async move {
            let mut racer = org(&format!("racer-{i}"));
            racer.domains = vec!["login.shared.example".into()];
            store.create_org(&racer).await.map(|()| racer.id)
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "{results:?}");
    for loser in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(loser, Err(StoreError::Conflict { what: "domain" })),
            "{loser:?}"
        );
    }
    let owner = store
        .get_org_by_domain("login.shared.example")
        .await
        .unwrap()
        .unwrap();
    assert!(results.iter().any(|r| r.as_ref().ok() == Some(&owner.id)));

    let mut orgs = Vec::new();
    for i in 0..RACERS {
        let o = org(&format!("apps-{i}"));
        store.create_org(&o).await.unwrap();
        orgs.push(o.id);
    }
    let orgs = Arc::new(orgs);
    let results = race(RACERS, |i| {
        let (store, orgs) = (store.clone(), orgs.clone());
        async move { store.create_app(&app(orgs[i], "shared-client")).await }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "{results:?}");
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "client_id");
    }
}

/// Federated identities: `(provider, subject)` is unique, the subject compared byte for
/// byte ("Abc" and "abc" are two identities) and within its provider (one subject under
/// two providers is two identities); a user's are listed oldest first; a provider's are
/// counted exactly (not those of a provider whose name merely starts the same).
pub async fn identity_links_unique_per_provider_and_case_sensitive<S: UserStore + 'static>(
    store: Arc<S>,
) {
    let ann = user_with_email("ann@example.com");
    let bo = user_with_email("bo@example.com");
    store.create_user(&ann).await.unwrap();
    store.create_user(&bo).await.unwrap();
    let google = ConnectionId::generate().to_string();
    let okta = ConnectionId::generate().to_string();
    let okta_too = format!("{okta}-2");

    let first = FederatedIdentity::new(&google, "Abc", ann.id, t0());
    store.link_identity(&first).await.unwrap();
    assert_eq!(
        store.get_identity(&google, "Abc").await.unwrap(),
        Some(first.clone())
    );
    let taken = FederatedIdentity::new(&google, "Abc", bo.id, at(1));
    conflict_on(store.link_identity(&taken).await, "identity");
    conflict_on(store.link_identity(&first).await, "identity");
    assert!(
        store.get_identity(&google, "abc").await.unwrap().is_none(),
        "subjects are compared case-sensitively"
    );
    assert!(store.get_identity(&okta, "Abc").await.unwrap().is_none());

    let lower = FederatedIdentity::new(&google, "abc", bo.id, at(2));
    store.link_identity(&lower).await.unwrap();
    // Linked newest first, so that a listing in insertion or key order is caught.
    let later = FederatedIdentity::new(&okta, "Abc", ann.id, at(5));
    store.link_identity(&later).await.unwrap();
    let earlier = FederatedIdentity::new(&okta_too, "zed", ann.id, at(3));
    store.link_identity(&earlier).await.unwrap();

    let owner = |p: &str, s: &str| {
        let store = store.clone();
        let (p, s) = (p.to_owned(), s.to_owned());
        async move { store.get_identity(&p, &s).await.unwrap().map(|i| i.user_id) }
    };
    assert_eq!(owner(&google, "Abc").await, Some(ann.id));
    assert_eq!(owner(&google, "abc").await, Some(bo.id));
    assert_eq!(owner(&okta, "Abc").await, Some(ann.id));
    assert_eq!(owner(&okta, "abc").await, None);

    assert_eq!(
        store.list_identities(ann.id).await.unwrap(),
        vec![first, earlier, later]
    );
    assert_eq!(store.list_identities(bo.id).await.unwrap(), vec![lower]);
    assert!(
        store
            .list_identities(UserId::generate())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_identities(&google).await.unwrap(), 2);
    assert_eq!(store.count_identities(&okta).await.unwrap(), 1);
    assert_eq!(store.count_identities(&okta_too).await.unwrap(), 1);
    assert_eq!(store.count_identities(&okta[..8]).await.unwrap(), 0);
    assert_eq!(store.count_identities("").await.unwrap(), 0);
}

/// Federated identities: of 16 racing links of one `(provider, subject)` to 16 users
/// exactly one succeeds; the others get `Conflict("identity")` and leave nothing behind.
pub async fn identity_link_unique_under_16_racing_links<S: UserStore + 'static>(store: Arc<S>) {
    let mut users = Vec::new();
    for i in 0..RACERS {
        let user = user_with_email(&format!("linker{i}@example.com"));
        store.create_user(&user).await.unwrap();
        users.push(user.id);
    }
    let users = Arc::new(users);
    let results = race(RACERS, |i| {
        let (store, users) = (store.clone(), users.clone());
        async move {
            let identity = FederatedIdentity::new("idp", "sub-1", users[i], t0());
            store.link_identity(&identity).await.map(|()| users[i])
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "{results:?}");
    let winner = *results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    for loser in results.into_iter().filter(|r| r.is_err()) {
        conflict_on(loser, "identity");
    }
    let stored = store.get_identity("idp", "sub-1").await.unwrap().unwrap();
    assert_eq!(stored.user_id, winner);
    assert_eq!(store.count_identities("idp").await.unwrap(), 1);
    for user in users.iter() {
        let linked = store.list_identities(*user).await.unwrap().len();
        assert_eq!(linked, usize::from(*user == winner), "losers left nothing");
    }
}

/// Federated identities: a link needs an existing user (`Missing("user")`); deleting the
/// user deletes its links, and no one else's, and frees them to be linked again.
pub async fn identity_links_go_with_their_user<S: UserStore + 'static>(store: Arc<S>) {
    let ghost = FederatedIdentity::new("idp", "ghost", UserId::generate(), t0());
    assert!(
        matches!(
            store.link_identity(&ghost).await,
            Err(StoreError::Missing { what: "user" })
        ),
        "a link needs its user"
    );
    assert!(store.get_identity("idp", "ghost").await.unwrap().is_none());
    assert_eq!(store.count_identities("idp").await.unwrap(), 0);

    let gone = user_with_email("gone@example.com");
    let kept = user_with_email("kept@example.com");
    store.create_user(&gone).await.unwrap();
    store.create_user(&kept).await.unwrap();
    for identity in [
        FederatedIdentity::new("idp", "s1", gone.id, t0()),
        FederatedIdentity::new("other", "s1", gone.id, t0()),
        FederatedIdentity::new("idp", "s2", kept.id, t0()),
    ] {
        store.link_identity(&identity).await.unwrap();
    }

    assert!(store.delete_user(gone.id).await.unwrap());
    assert!(store.get_identity("idp", "s1").await.unwrap().is_none());
    assert!(store.get_identity("other", "s1").await.unwrap().is_none());
    assert!(store.list_identities(gone.id).await.unwrap().is_empty());
    assert_eq!(store.count_identities("idp").await.unwrap(), 1);
    assert_eq!(store.count_identities("other").await.unwrap(), 0);
    assert_eq!(store.list_identities(kept.id).await.unwrap().len(), 1);
    let still = store.get_identity("idp", "s2").await.unwrap();
    assert_eq!(still.map(|i| i.user_id), Some(kept.id));

    let reborn = user_with_email("gone@example.com");
    store.create_user(&reborn).await.unwrap();
    store
        .link_identity(&FederatedIdentity::new("idp", "s1", reborn.id, at(1)))
        .await
        .unwrap();
}

/// SSO connections: created only in an existing organization, with a unique id; read back
/// whole; listed by organization in id order; updated compare-and-swap on the revision,
/// never moved to another organization (`Missing`); deleted only through their own.
pub async fn sso_connections_kept_in_their_org_and_compare_and_swap<S: OrgStore + 'static>(
    store: Arc<S>,
) {
    let acme = org("acme");
    let other = org("other");
    store.create_org(&acme).await.unwrap();
    store.create_org(&other).await.unwrap();
    let orphan = sso_connection(OrgId::generate(), "orphan");
    assert!(
        matches!(
            store.create_sso_connection(&orphan).await,
            Err(StoreError::Missing {
                what: "organization"
            })
        ),
        "a connection needs its organization"
    );

    let okta = sso_connection(acme.id, "Okta");
    store.create_sso_connection(&okta).await.unwrap();
    conflict_on(store.create_sso_connection(&okta).await, "sso_connection");
    let mut same_id = sso_connection(other.id, "Copy");
    same_id.id = okta.id;
    conflict_on(
        store.create_sso_connection(&same_id).await,
        "sso_connection",
    );
    let mut google = sso_connection(acme.id, "Google");
    google.preset = Some(Preset::Google);
    google.hosted_domain = Some("acme.com".into());
    google.client_secret = None;
    store.create_sso_connection(&google).await.unwrap();
    let entra = sso_connection(other.id, "Entra");
    store.create_sso_connection(&entra).await.unwrap();

    assert_eq!(
        store.get_sso_connection(okta.id).await.unwrap(),
        Some(okta.clone())
    );
    assert_eq!(
        store.get_sso_connection(google.id).await.unwrap(),
        Some(google.clone())
    );
    assert!(
        store
            .get_sso_connection(ConnectionId::generate())
            .await
            .unwrap()
            .is_none()
    );
    let mut in_id_order = vec![okta.id, google.id];
    in_id_order.sort();
    let listed: Vec<ConnectionId> = store
        .list_sso_connections(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, in_id_order);
    assert_eq!(
        store.list_sso_connections(other.id).await.unwrap(),
        vec![entra.clone()]
    );
    assert!(
        store
            .list_sso_connections(OrgId::generate())
            .await
            .unwrap()
            .is_empty()
    );

    let mut active = okta.clone();
    active.status = ConnectionStatus::Active;
    active.client_secret = None;
    active.tested_at = Some(at(5));
    active.updated_at = at(5);
    assert_eq!(store.update_sso_connection(&active).await.unwrap(), 1);
    let mut expected = active.clone();
    expected.revision = 1;
    assert_eq!(
        store.get_sso_connection(okta.id).await.unwrap(),
        Some(expected.clone())
    );

    let mut late = okta.clone();
    late.name = "late".into();
    assert!(matches!(
        store.update_sso_connection(&late).await,
        Err(StoreError::Stale)
    ));
    let mut moved = expected.clone();
    moved.org_id = other.id;
    assert!(
        matches!(
            store.update_sso_connection(&moved).await,
            Err(StoreError::Missing {
                what: "sso_connection"
            })
        ),
        "a connection stays in its organization"
    );
    let ghost = sso_connection(acme.id, "ghost");
    assert!(matches!(
        store.update_sso_connection(&ghost).await,
        Err(StoreError::Missing {
            what: "sso_connection"
        })
    ));
    assert_eq!(
        store.get_sso_connection(okta.id).await.unwrap(),
        Some(expected),
        "a refused update changes nothing"
    );

    assert!(
        !store
            .delete_sso_connection(other.id, okta.id)
            .await
            .unwrap(),
        "only its organization deletes it"
    );
    assert!(store.get_sso_connection(okta.id).await.unwrap().is_some());
    assert!(store.delete_sso_connection(acme.id, okta.id).await.unwrap());
    assert!(!store.delete_sso_connection(acme.id, okta.id).await.unwrap());
    assert!(store.get_sso_connection(okta.id).await.unwrap().is_none());
    assert_eq!(
        store.list_sso_connections(acme.id).await.unwrap(),
        vec![google]
    );
}

/// SSO connections: of 16 writers updating one connection from one revision exactly one
/// wins; the others get `Stale`.
pub async fn sso_connection_update_is_compare_and_swap_under_16_concurrent_writers<
    S: OrgStore + 'static,
>(
    store: Arc<S>,
) {
    let acme = org("acme");
    store.create_org(&acme).await.unwrap();
    let connection = sso_connection(acme.id, "Okta");
    store.create_sso_connection(&connection).await.unwrap();
    let results = race(RACERS, |i| {
        let store = store.clone();
        let mut edit = connection.clone();
        async move {
            edit.name = format!("writer {i}");
            store.update_sso_connection(&edit).await.map(|rev| (i, rev))
        }
    })
    .await;
    assert_eq!(count_ok(&results), 1, "exactly one writer wins");
    for loser in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(loser, Err(StoreError::Stale)), "{loser:?}");
    }
    let (winner, revision) = *results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    assert_eq!(revision, 1);
    let stored = store
        .get_sso_connection(connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, format!("writer {winner}"));
    assert_eq!(stored.revision, 1);
}

/// Organizations: deleting one deletes its SSO connections and domain claims, verified or
/// not (the domain is free to prove again), and nothing of another organization.
pub async fn org_delete_cascades_to_sso_connections_and_domain_claims<S: OrgStore + 'static>(
    store: Arc<S>,
) {
    let acme = org("acme");
    let other = org("other");
    store.create_org(&acme).await.unwrap();
    store.create_org(&other).await.unwrap();
    let connection = sso_connection(acme.id, "Okta");
    store.create_sso_connection(&connection).await.unwrap();
    let kept = sso_connection(other.id, "Entra");
    store.create_sso_connection(&kept).await.unwrap();
    store
        .put_domain_claim(&domain_claim(acme.id, "acme.com", "tok-a"))
        .await
        .unwrap();
    // Claimed before acme proved the domain: it waits.
    let waiting = domain_claim(other.id, "acme.com", "tok-o");
    store.put_domain_claim(&waiting).await.unwrap();
    assert!(
        store
            .verify_domain_claim(acme.id, "acme.com", "tok-a", at(1))
            .await
            .unwrap()
    );
    store
        .put_domain_claim(&domain_claim(acme.id, "b.acme.com", "tok-b"))
        .await
        .unwrap();
    store
        .put_domain_claim(&domain_claim(other.id, "other.com", "tok-p"))
        .await
        .unwrap();

    assert!(store.delete_org(acme.id).await.unwrap());
    assert!(
        store
            .get_sso_connection(connection.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_sso_connections(acme.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_domain_claims(acme.id).await.unwrap().is_empty());
    assert_eq!(
        store.domain_claims("acme.com").await.unwrap(),
        vec![waiting]
    );
    assert!(store.domain_claims("b.acme.com").await.unwrap().is_empty());
    assert_eq!(
        store.get_sso_connection(kept.id).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(store.list_domain_claims(other.id).await.unwrap().len(), 2);

    assert!(
        store
            .verify_domain_claim(other.id, "acme.com", "tok-o", at(2))
            .await
            .unwrap(),
        "the deleted organization's verified claim no longer holds the domain"
    );
    let mut reborn = connection.clone();
    reborn.org_id = other.id;
    store.create_sso_connection(&reborn).await.unwrap();
}

/// Domain claims: any number of organizations may claim a domain; verification is
/// compare-and-swap on the token (a wrong or replaced token, or no claim, does nothing);
/// once one organization has verified the domain, another's verification and any claim
/// another puts are `Conflict("domain")`, while the holder may replace its own; deleting
/// the verified claim frees the domain.
pub async fn domain_claim_verified_by_one_org_only<S: OrgStore + 'static>(store: Arc<S>) {
    let acme = org("acme");
    let rival = org("rival");
    let third = org("third");
    for o in [&acme, &rival, &third] {
        store.create_org(o).await.unwrap();
    }
    assert!(
        matches!(
            store
                .put_domain_claim(&domain_claim(OrgId::generate(), "acme.com", "t"))
                .await,
            Err(StoreError::Missing {
                what: "organization"
            })
        ),
        "a claim needs its organization"
    );

    store
        .put_domain_claim(&domain_claim(acme.id, "acme.com", "tok-a"))
        .await
        .unwrap();
    let rivals = domain_claim(rival.id, "acme.com", "tok-r");
    store.put_domain_claim(&rivals).await.unwrap();
    store
        .put_domain_claim(&domain_claim(acme.id, "b.acme.com", "tok-b"))
        .await
        .unwrap();
    let mut claimants: Vec<OrgId> = store
        .domain_claims("acme.com")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.org_id)
        .collect();
    claimants.sort();
    let mut both = vec![acme.id, rival.id];
    both.sort();
    assert_eq!(claimants, both, "two organizations may claim one domain");
    assert!(store.domain_claims("other.com").await.unwrap().is_empty());
    let domains: Vec<String> = store
        .list_domain_claims(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.domain)
        .collect();
    assert_eq!(domains, ["acme.com", "b.acme.com"]);

    let verify = |o: OrgId, domain: &'static str, token: &'static str, secs: u64| {
        let store = store.clone();
        async move { store.verify_domain_claim(o, domain, token, at(secs)).await }
    };
    assert!(!verify(acme.id, "acme.com", "tok-r", 10).await.unwrap());
    assert!(!verify(third.id, "acme.com", "tok-a", 10).await.unwrap());
    assert!(!verify(acme.id, "nope.com", "tok-a", 10).await.unwrap());
    let unproven = store.domain_claims("acme.com").await.unwrap();
    assert!(unproven.iter().all(|c| c.verified_at.is_none()));

    // A claim replaced after its record was looked up is not verified by the old token.
    store
        .put_domain_claim(&domain_claim(acme.id, "acme.com", "tok-a2"))
        .await
        .unwrap();
    assert!(!verify(acme.id, "acme.com", "tok-a", 20).await.unwrap());
    assert!(verify(acme.id, "acme.com", "tok-a2", 20).await.unwrap());
    let held = store
        .list_domain_claims(acme.id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.domain == "acme.com")
        .unwrap();
    assert_eq!(held.verified_at, Some(at(20)));
    assert_eq!(held.token, "tok-a2");

    conflict_on(verify(rival.id, "acme.com", "tok-r", 30).await, "domain");
    conflict_on(
        store
            .put_domain_claim(&domain_claim(rival.id, "acme.com", "tok-r3"))
            .await,
        "domain",
    );
    conflict_on(
        store
            .put_domain_claim(&domain_claim(third.id, "acme.com", "tok-t"))
            .await,
        "domain",
    );
    let mut forged = rivals.clone();
    forged.verified_at = Some(at(30));
    conflict_on(store.put_domain_claim(&forged).await, "domain");
    let rival_now = store.list_domain_claims(rival.id).await.unwrap();
    assert_eq!(rival_now, vec![rivals], "refused writes change nothing");
    assert!(store.list_domain_claims(third.id).await.unwrap().is_empty());

    store.put_domain_claim(&held).await.unwrap();
    assert!(
        store
            .delete_domain_claim(acme.id, "acme.com")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_domain_claim(acme.id, "acme.com")
            .await
            .unwrap()
    );
    assert!(verify(rival.id, "acme.com", "tok-r", 40).await.unwrap());
    let claims = store.domain_claims("acme.com").await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].org_id, rival.id);
    assert_eq!(claims[0].verified_at, Some(at(40)));
}

/// Domain claims: of 16 organizations racing to verify their claims on one domain exactly
/// one succeeds; the others get `Conflict("domain")`, and only the winner's claim is
/// verified.
pub async fn domain_verification_has_one_winner_under_16_racing_orgs<S: OrgStore + 'static>(
    store: Arc<S>,
) {
    let mut orgs = Vec::new();
    for i in 0..RACERS {
        let o = org(&format!("claimant-{i}"));
        store.create_org(&o).await.unwrap();
        let claim = domain_claim(o.id, "race.example", &format!("token-{i}"));
        store.put_domain_claim(&claim).await.unwrap();
        orgs.push(o.id);
    }
    let orgs = Arc::new(orgs);
    let results = race(RACERS, |i| {
        let (store, orgs) = (store.clone(), orgs.clone());
        async move {
            let token = format!("token-{i}");
            store
                .verify_domain_claim(orgs[i], "race.example", &token, at(60))
                .await
                .map(|applied| (orgs[i], applied))
        }
    })
    .await;
    let winners: Vec<OrgId> = results
        .iter()
        .filter_map(|r| match r {
            Ok((o, true)) => Some(*o),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for loser in results.into_iter().filter(|r| !matches!(r, Ok((_, true)))) {
        conflict_on(loser, "domain");
    }
    let verified: Vec<OrgId> = store
        .domain_claims("race.example")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.verified_at.is_some())
        .map(|c| c.org_id)
        .collect();
    assert_eq!(verified, winners);
}
