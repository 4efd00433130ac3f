//! The storage contract: six traits every adapter implements, and the conformance suite
//! (feature `conformance`) that proves an adapter keeps each promise.
//!
//! Every method states what it promises atomically. The promises are written so that each
//! has a natural form in the three adapters we ship: a map behind a lock, sled trees with
//! transactions, and Postgres tables with unique indexes and `DELETE … RETURNING`.
//!
//! Time is passed in (`now`), never read by an adapter: the engine's [`Clock`](crate::Clock)
//! decides what has expired, so tests that move a manual clock see expiry at once on every
//! adapter. A record whose `expires_at <= now` is invisible to every read and cannot be
//! taken or updated, whether or not it has been physically removed yet.

use std::fmt;

use async_trait::async_trait;

use crate::StoreError;
use crate::Timestamp;
use crate::crypto::SecretHash;
use crate::model::{
    ApiCredential, App, AuthEvent, AuthEventKind, ChallengeKey, ChallengeRecord, ClientId,
    ConnectionId, Counter, CredentialId, DomainClaim, Email, FactorId, FederatedIdentity,
    Membership, OrgId, Organization, Page, PageRequest, PasskeyCredential, PasskeyUse, Permission,
    PermissionDef, PermissionId, Phone, Role, RoleId, Session, SessionId, SsoConnection,
    StoredSigningKey, TotpFactor, User, UserId,
};

#[cfg(feature = "conformance")]
pub mod conformance;

/// What stores return.
pub type StoreResult<T> = Result<T, StoreError>;

/// Filters for [`UserStore::list_users`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserQuery {
    /// Only users whose (normalized) email starts with this.
    pub email_prefix: Option<String>,
    /// Only blocked (`Some(true)`) or only unblocked (`Some(false)`) users.
    pub blocked: Option<bool>,
    /// Only users with (`Some(true)`) or without (`Some(false)`) a verified address.
    pub email_verified: Option<bool>,
    /// Only users created at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only users created before this time.
    pub created_before: Option<Timestamp>,
}

impl UserQuery {
    /// Whether `user` passes every filter: the one predicate all stores apply.
    pub fn matches(&self, user: &User) -> bool {
        let email_ok = self.email_prefix.as_deref().is_none_or(|prefix| {
            user.email
                .as_ref()
                .is_some_and(|e| e.as_str().starts_with(prefix))
        });
        email_ok
            && self.blocked.is_none_or(|b| user.blocked == b)
            && self.email_verified.is_none_or(|v| user.email_verified == v)
            && self.created_from.is_none_or(|from| user.created_at >= from)
            && self
                .created_before
                .is_none_or(|before| user.created_at < before)
    }

    /// Every user.
    pub fn all() -> Self {
        Self::default()
    }

    /// Users whose email starts with `prefix`.
    pub fn email_prefix(prefix: impl Into<String>) -> Self {
        UserQuery {
            email_prefix: Some(prefix.into()),
            ..Self::default()
        }
    }
}

/// Filters for [`AuditLog::list_events`]: each one set narrows the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventQuery {
    /// Only events that ran in this organization; `None` for every event of the
    /// installation, whatever its organization.
    pub org: Option<OrgId>,
    /// Only events of these kinds; empty for any kind.
    pub kinds: Vec<AuthEventKind>,
    /// Only events about this user.
    pub user: Option<UserId>,
    /// Only events from this client address.
    pub ip: Option<std::net::IpAddr>,
    /// Only events at or after this time (the event's `at`).
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
}

impl EventQuery {
    /// Every event of one organization.
    pub fn in_org(org: OrgId) -> Self {
        EventQuery {
            org: Some(org),
            ..Self::default()
        }
    }

    /// Every event of the installation.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only events of `kinds` (empty: any).
    pub fn kinds(mut self, kinds: Vec<AuthEventKind>) -> Self {
        self.kinds = kinds;
        self
    }

    /// Only events about `user`.
    pub fn user(mut self, user: Option<UserId>) -> Self {
        self.user = user;
        self
    }

    /// Only events from `ip`.
    pub fn ip(mut self, ip: Option<std::net::IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// Only events at or after `since` and before `until`.
    pub fn between(mut self, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// Whether `event` passes every filter: the one predicate all stores apply.
    pub fn matches(&self, event: &AuthEvent) -> bool {
        self.org.is_none_or(|org| event.org_id == Some(org))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.user.is_none_or(|user| event.user_id == Some(user))
            && self.ip.is_none_or(|ip| event.ip == Some(ip))
            && self.since.is_none_or(|since| event.at >= since)
            && self.until.is_none_or(|until| event.at < until)
    }
}

/// Users and what they sign in with: passkeys, TOTP factors, backup codes.
///
/// Emails and phones are unique across users; credential ids are unique across all users.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    /// Inserts a new user. Atomic with its uniqueness checks: of two racing creations with
    /// the same email or phone exactly one succeeds, the other gets
    /// [`StoreError::Conflict`] (`what` = `"email"` / `"phone"`); so does a duplicate id
    /// (`"user"`). The stored revision is the one given (normally 0).
    async fn create_user(&self, user: &User) -> StoreResult<()>;

    /// The user with this id.
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;

    /// The user with this (normalized) email.
    async fn get_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// The user with this phone.
    async fn get_user_by_phone(&self, phone: &Phone) -> StoreResult<Option<User>>;

    /// Replaces a user, compare-and-swap on `user.revision`: succeeds only if the stored
    /// revision equals it, and stores `revision + 1` (returned). A changed email or phone is
    /// re-indexed atomically with the write and must still be unique
    /// ([`StoreError::Conflict`]). Stale revision: [`StoreError::Stale`]; no such user:
    /// [`StoreError::Missing`].
    async fn update_user(&self, user: &User) -> StoreResult<u64>;

    /// Deletes a user and, atomically with it, everything this store holds for them:
    /// passkeys (and their credential-id index), TOTP factors, backup codes, federated
    /// identities. Returns
    /// whether the user existed. Sessions, memberships and challenges live in other
    /// stores; the engine removes those.
    async fn delete_user(&self, id: UserId) -> StoreResult<bool>;

    /// Users in id order (creation order), filtered, paged. A cursor stays valid when users
    /// are added or deleted elsewhere: no user appears twice and none that existed
    /// throughout is skipped.
    async fn list_users(&self, query: &UserQuery, page: &PageRequest) -> StoreResult<Page<User>>;

    /// Registers a passkey. Atomic: the credential id is unique across all users, so of two
    /// racing registrations of one id exactly one succeeds, the other gets
    /// [`StoreError::Conflict`] (`"credential"`). The user must exist
    /// ([`StoreError::Missing`]).
    async fn add_passkey(&self, credential: &PasskeyCredential) -> StoreResult<()>;

    /// The passkey with this credential id, whoever owns it.
    async fn get_passkey(&self, id: &CredentialId) -> StoreResult<Option<PasskeyCredential>>;

    /// A user's passkeys, oldest first.
    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyCredential>>;

    /// Records a sign-in with a passkey. Atomic and monotonic: applies only when
    /// `use_.counter` is greater than the stored counter, or both are 0 (an authenticator
    /// that keeps no counter). Returns whether it applied; `false` means a counter
    /// regression (a possibly cloned authenticator) or no such credential. Of racing uses
    /// reporting the same non-zero counter, exactly one applies; authenticators that keep no
    /// counter (0 on both sides) cannot be told apart this way, and every such use applies.
    async fn record_passkey_use(&self, id: &CredentialId, use_: &PasskeyUse) -> StoreResult<bool>;

    /// Renames one of `user`'s passkeys. Returns whether it exists and belongs to `user`.
    async fn rename_passkey(
        &self,
        user: UserId,
        id: &CredentialId,
        name: &str,
    ) -> StoreResult<bool>;

    /// Deletes one of `user`'s passkeys (and its index entry). Returns whether it existed
    /// and belonged to `user`.
    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> StoreResult<bool>;

    /// Inserts or replaces a TOTP factor (keyed by its id; the user must exist; an id owned
    /// by another user is [`StoreError::Conflict`] `"factor"`). The stored `last_step` becomes
    /// the larger of the stored and the given one, atomically: no put (say, activating a
    /// pending factor from a copy read earlier) can make an accepted code replayable.
    async fn put_totp_factor(&self, factor: &TotpFactor) -> StoreResult<()>;

    /// A user's TOTP factors, oldest first.
    async fn list_totp_factors(&self, user: UserId) -> StoreResult<Vec<TotpFactor>>;

    /// Accepts a TOTP time step for a factor, atomically: sets `last_step = step` only if
    /// no step was accepted yet or `step` is greater than the last. Returns whether it
    /// did; `false` is a replay (or no such factor). Of racing calls with one step, exactly
    /// one gets `true`.
    async fn advance_totp_step(
        &self,
        user: UserId,
        factor: FactorId,
        step: u64,
    ) -> StoreResult<bool>;

    /// Deletes a TOTP factor. Returns whether it existed and belonged to `user`.
    async fn delete_totp_factor(&self, user: UserId, factor: FactorId) -> StoreResult<bool>;

    /// Replaces all of a user's backup codes with these hashes, atomically (no moment when
    /// old and new codes are both valid, none when neither is).
    async fn replace_backup_codes(&self, user: UserId, codes: &[SecretHash]) -> StoreResult<()>;

    /// Consumes one backup code, atomically: of racing calls with one code exactly one
    /// gets `true`.
    async fn consume_backup_code(&self, user: UserId, code: &SecretHash) -> StoreResult<bool>;

    /// How many unused backup codes a user has.
    async fn count_backup_codes(&self, user: UserId) -> StoreResult<usize>;

    /// Links a federated identity to its user. Atomic: `(provider, subject)` is unique
    /// ([`StoreError::Conflict`] `"identity"`, `subject` compared byte for byte); the user
    /// must exist ([`StoreError::Missing`] `"user"`). Deleting the user deletes its links.
    async fn link_identity(&self, identity: &FederatedIdentity) -> StoreResult<()>;

    /// The identity `(provider, subject)`, exactly (case-sensitive).
    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentity>>;

    /// A user's federated identities, oldest first.
    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<FederatedIdentity>>;

    /// How many identities are linked through `provider`.
    async fn count_identities(&self, provider: &str) -> StoreResult<u64>;
}

/// Organizations, their apps, roles, permissions and memberships.
///
/// Slugs, custom domains and client ids are unique across organizations; role names and
/// permission names are unique within one.
#[async_trait]
pub trait OrgStore: Send + Sync + fmt::Debug {
    /// Inserts an organization. Atomic with uniqueness of id (`"organization"`), slug
    /// (`"slug"`) and each domain (`"domain"`): [`StoreError::Conflict`].
    async fn create_org(&self, org: &Organization) -> StoreResult<()>;

    /// The organization with this id.
    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>>;

    /// The organization with this slug.
    async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;

    /// The organization that owns this custom domain (lowercase).
    async fn get_org_by_domain(&self, domain: &str) -> StoreResult<Option<Organization>>;

    /// Replaces an organization, compare-and-swap on `revision` as for
    /// [`UserStore::update_user`]; slug and domains re-indexed atomically and still unique.
    async fn update_org(&self, org: &Organization) -> StoreResult<u64>;

    /// Deletes an organization and, atomically with it, its apps, roles, permissions,
    /// memberships, API credentials, SSO connections and domain claims. Returns whether
    /// it existed.
    async fn delete_org(&self, id: OrgId) -> StoreResult<bool>;

    /// Organizations in id order, paged (cursor stable as for users).
    async fn list_orgs(&self, page: &PageRequest) -> StoreResult<Page<Organization>>;

    /// Inserts an app. Atomic: the client id is unique across organizations
    /// ([`StoreError::Conflict`] `"client_id"`); the organization must exist.
    async fn create_app(&self, app: &App) -> StoreResult<()>;

    /// The app with this client id.
    async fn get_app(&self, client_id: &ClientId) -> StoreResult<Option<App>>;

    /// An organization's apps.
    async fn list_apps(&self, org: OrgId) -> StoreResult<Vec<App>>;

    /// Replaces an app (by client id) with `app`; its organization and creation time stay
    /// as stored. Returns whether it existed.
    async fn update_app(&self, app: &App) -> StoreResult<bool>;

    /// Deletes an app. Returns whether it existed.
    async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool>;

    /// Inserts or replaces (by id) a permission definition. Its name is unique in the
    /// organization ([`StoreError::Conflict`] `"permission"`); the organization must exist.
    /// Roles refer to permissions by id, so a rename touches no role. (SQL: a unique index
    /// on `(org_id, name)`; `INSERT … ON CONFLICT (id) DO UPDATE`.)
    async fn put_permission(&self, permission: &PermissionDef) -> StoreResult<()>;

    /// An organization's permission definitions, in id order.
    async fn list_permissions(&self, org: OrgId) -> StoreResult<Vec<PermissionDef>>;

    /// Deletes a permission definition and, atomically, removes its id from every role of
    /// the organization (SQL: a foreign key from the role–permission table with `ON DELETE
    /// CASCADE`). Returns whether it existed.
    async fn delete_permission(&self, org: OrgId, id: PermissionId) -> StoreResult<bool>;

    /// Inserts or replaces (by id) a role. Its name is unique in the organization
    /// ([`StoreError::Conflict`] `"role"`); the organization must exist.
    async fn put_role(&self, role: &Role) -> StoreResult<()>;

    /// A role of an organization.
    async fn get_role(&self, org: OrgId, id: RoleId) -> StoreResult<Option<Role>>;

    /// An organization's roles, in id order.
    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>>;

    /// Deletes a role and, atomically, removes it from every membership. Returns whether it
    /// existed.
    async fn delete_role(&self, org: OrgId, id: RoleId) -> StoreResult<bool>;

    /// Inserts or replaces the membership of `(user_id, org_id)`. The organization must
    /// exist; role ids not defined in it are refused ([`StoreError::Missing`] `"role"`).
    async fn put_membership(&self, membership: &Membership) -> StoreResult<()>;

    /// A user's membership in an organization.
    async fn get_membership(&self, user: UserId, org: OrgId) -> StoreResult<Option<Membership>>;

    /// Every organization a user belongs to.
    async fn list_memberships(&self, user: UserId) -> StoreResult<Vec<Membership>>;

    /// An organization's members in user-id order, paged.
    async fn list_members(&self, org: OrgId, page: &PageRequest) -> StoreResult<Page<Membership>>;

    /// Removes a membership. Returns whether it existed.
    async fn delete_membership(&self, user: UserId, org: OrgId) -> StoreResult<bool>;

    /// Inserts a management API credential. Atomic: its secret hash is unique across
    /// credentials ([`StoreError::Conflict`] `"api_credential"`, as is a duplicate id);
    /// the organization must exist ([`StoreError::Missing`]).
    async fn create_api_credential(&self, credential: &ApiCredential) -> StoreResult<()>;

    /// The credential whose secret has this keyed hash.
    async fn get_api_credential_by_hash(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<ApiCredential>>;

    /// An organization's credentials, oldest first.
    async fn list_api_credentials(&self, org: OrgId) -> StoreResult<Vec<ApiCredential>>;

    /// Replaces a credential's state (`last_used_at`, `revoked_at`, `name`) by id, within
    /// `credential.org_id`; its hash, organization and scopes stay as stored. Once
    /// `revoked_at` is set it is never cleared. Returns whether the credential exists.
    async fn update_api_credential(&self, credential: &ApiCredential) -> StoreResult<bool>;

    /// Removes a user from every organization (for user deletion). Returns how many.
    async fn delete_memberships_of_user(&self, user: UserId) -> StoreResult<u64>;

    /// Inserts an SSO connection. The organization must exist ([`StoreError::Missing`]
    /// `"organization"`); a duplicate id is [`StoreError::Conflict`] `"sso_connection"`.
    /// Deleting the organization deletes its connections.
    async fn create_sso_connection(&self, connection: &SsoConnection) -> StoreResult<()>;

    /// The connection with this id.
    async fn get_sso_connection(&self, id: ConnectionId) -> StoreResult<Option<SsoConnection>>;

    /// An organization's connections, in id order.
    async fn list_sso_connections(&self, org: OrgId) -> StoreResult<Vec<SsoConnection>>;

    /// Replaces a connection, compare-and-swap on `revision` as for
    /// [`UserStore::update_user`] (its organization stays as stored: a connection whose
    /// `org_id` differs is [`StoreError::Missing`]). Returns the new revision.
    async fn update_sso_connection(&self, connection: &SsoConnection) -> StoreResult<u64>;

    /// Deletes a connection of `org`. Returns whether it existed.
    async fn delete_sso_connection(&self, org: OrgId, id: ConnectionId) -> StoreResult<bool>;

    /// Inserts or replaces the claim of `(claim.org_id, claim.domain)`, as given (proven
    /// or not). Atomic: while another organization holds a verified claim on the domain
    /// this is [`StoreError::Conflict`] `"domain"`; the organization must exist.
    /// Deleting the organization deletes its claims.
    async fn put_domain_claim(&self, claim: &DomainClaim) -> StoreResult<()>;

    /// Every organization's claim on `domain`.
    async fn domain_claims(&self, domain: &str) -> StoreResult<Vec<DomainClaim>>;

    /// An organization's claims, by domain.
    async fn list_domain_claims(&self, org: OrgId) -> StoreResult<Vec<DomainClaim>>;

    /// Marks `(org, domain)` verified at `at`, compare-and-swap on the token: only if the
    /// claim still exists with this `token` (a claim replaced or deleted while its record
    /// was looked up is not verified). Returns whether it applied. Atomic with the
    /// uniqueness of verified claims: when another organization has verified the domain
    /// meanwhile, [`StoreError::Conflict`] `"domain"`.
    async fn verify_domain_claim(
        &self,
        org: OrgId,
        domain: &str,
        token: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Deletes the claim of `(org, domain)`. Returns whether it existed.
    async fn delete_domain_claim(&self, org: OrgId, domain: &str) -> StoreResult<bool>;

    /// Which of `permissions` the user's roles in `org` grant, by name. Read-only; the
    /// RBAC check itself lives in the engine.
    async fn permissions_of(&self, user: UserId, org: OrgId) -> StoreResult<Vec<Permission>> {
        let Some(membership) = self.get_membership(user, org).await? else {
            return Ok(Vec::new());
        };
        let defined = self.list_permissions(org).await?;
        let mut granted = Vec::new();
        for role in self.list_roles(org).await? {
            if membership.role_ids.contains(&role.id) {
                granted.extend(role.grants(&defined));
            }
        }
        granted.sort();
        granted.dedup();
        Ok(granted)
    }
}

/// Sessions and their refresh-token families.
///
/// Every refresh-token hash a session has ever had stays findable while the session is
/// stored, so that presenting an already-rotated token is recognised as reuse (RFC 9700)
/// rather than as an unknown token.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Inserts a session. Atomic with uniqueness of its id (`"session"`) and of its
    /// refresh hash (`"refresh_token"`): [`StoreError::Conflict`].
    async fn create_session(&self, session: &Session) -> StoreResult<()>;

    /// The session with this id, revoked or not; `None` once it has expired.
    async fn get_session(&self, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>>;

    /// The session whose family includes this refresh hash: the current one or any earlier
    /// generation. `None` once expired. The caller compares `session.refresh_hash` to tell
    /// current from reused.
    async fn find_by_refresh_hash(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>>;

    /// Rotates the refresh token, compare-and-swap: only if the session is active at `now`
    /// and its current hash equals `expected`, sets the hash to `new` (which stays unique),
    /// bumps `generation`, sets `last_seen_at = now` and returns the updated session.
    /// Of racing rotations with one `expected`, exactly one succeeds; the others get
    /// `None`.
    async fn rotate_refresh(
        &self,
        id: SessionId,
        expected: &SecretHash,
        new: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<Session>>;

    /// Revokes a session (sets `revoked_at = now` if unset). Returns whether it was active.
    async fn revoke_session(&self, id: SessionId, now: Timestamp) -> StoreResult<bool>;

    /// Revokes every active session of a user at once. Returns how many.
    async fn revoke_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<u64>;

    /// A user's active (unrevoked, unexpired) sessions, newest first.
    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;

    /// Deletes every session of a user, with their refresh-hash history (user deletion).
    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64>;

    /// Physically removes sessions that expired at or before `now`. Returns how many.
    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}

/// The keys that sign access tokens, their private halves sealed with the keyring. A
/// trait of its own: an adapter may keep them anywhere (a secrets service, say) and mix
/// with others through [`PortcullisBuilder::key_store`](crate::PortcullisBuilder::key_store).
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Stores a token-signing key. Atomic with uniqueness of its kid
    /// ([`StoreError::Conflict`] `"kid"`): two instances that start at once may both add a
    /// key, never overwrite one.
    async fn add_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;

    /// Every stored signing key, oldest first (by `created_at`, then kid).
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;

    /// Deletes a signing key (retirement: tokens it signed stop verifying). Returns whether
    /// it existed.
    async fn delete_signing_key(&self, kid: &str) -> StoreResult<bool>;
}

/// Ephemeral records with a time to live (links, codes, ceremony states, auth codes, MFA
/// tokens) and counters in time windows (rate limits, attempt budgets).
#[async_trait]
pub trait ChallengeStore: Send + Sync + fmt::Debug {
    /// Inserts a record if no live record has this key (an expired one is replaced).
    /// Returns whether it inserted. Of racing inserts of one key exactly one gets `true`.
    /// The new record's version is 0.
    async fn insert(
        &self,
        key: &ChallengeKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// The live record with this key, without consuming it.
    async fn get(&self, key: &ChallengeKey, now: Timestamp)
    -> StoreResult<Option<ChallengeRecord>>;

    /// Removes and returns the live record with this key: exactly once. Of racing takes of
    /// one key exactly one gets the record (`DELETE … RETURNING`).
    async fn take(
        &self,
        key: &ChallengeKey,
        now: Timestamp,
    ) -> StoreResult<Option<ChallengeRecord>>;

    /// Replaces a live record's value and expiry, compare-and-swap on its version: only if
    /// the stored version equals `expected_version`; then the version becomes
    /// `expected_version + 1`. Returns whether it applied. Of racing updates from one
    /// version exactly one applies.
    async fn update(
        &self,
        key: &ChallengeKey,
        expected_version: u64,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Deletes a record, live or expired. Returns whether a live one existed.
    async fn delete(&self, key: &ChallengeKey, now: Timestamp) -> StoreResult<bool>;

    /// Adds one to a counter and returns it, atomically (no increment is lost under any
    /// concurrency). A missing or expired counter starts a new window: count 1, expiring
    /// at `expires_at`; a live one keeps its window.
    async fn incr(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<Counter>;

    /// A live counter, without changing it.
    async fn counter(&self, key: &str, now: Timestamp) -> StoreResult<Option<Counter>>;

    /// Removes a counter. Returns whether a live one existed.
    async fn reset_counter(&self, key: &str, now: Timestamp) -> StoreResult<bool>;

    /// Physically removes every record and counter that expired at or before `now`.
    /// Returns how many.
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64>;
}

/// The login log.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Appends an event. Events are never changed afterwards: an id already in the log is
    /// refused ([`StoreError::Conflict`] `"event"`).
    ///
    /// An event that names a user extends that user's chain, atomically: it is refused
    /// ([`StoreError::Conflict`] `"chain"`) unless `event.prev` is the id of the user's
    /// head (the event appended last for them; `None` when there is none), so of racing
    /// appends naming one head exactly one succeeds and the chain never forks.
    async fn append(&self, event: &AuthEvent) -> StoreResult<()>;

    /// The event appended last for a user: the head of their chain.
    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>>;

    /// A user's events, newest first (by event id), paged; stable under appends.
    ///
    /// Event ids are UUIDv7s made as events are recorded, so this is the order in which they
    /// were recorded; each event's `at` is the engine clock's time.
    async fn list_user_events(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>>;

    /// The events that pass `query` ([`EventQuery::matches`]), newest first (by event id),
    /// paged; stable under appends. For an administrator's view of an organization's log,
    /// or the installation's.
    async fn list_events(
        &self,
        query: &EventQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>>;

    /// Removes the personal data (IP address, user agent) from every event of a user, for
    /// the user's deletion; the events stay, under the user id. Returns how many events it
    /// changed. The one change ever made to a logged event.
    async fn forget_user(&self, user: UserId) -> StoreResult<u64>;
}

/// An adapter that implements every store, so `builder.store(adapter)` takes one value.
///
/// Implemented automatically for every type that implements the six traits.
pub trait Storage:
    UserStore + OrgStore + SessionStore + KeyStore + ChallengeStore + AuditLog
{
}

impl<T> Storage for T where
    T: UserStore + OrgStore + SessionStore + KeyStore + ChallengeStore + AuditLog
{
}
