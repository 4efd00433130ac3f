//! IT-admin setup links (checklist ADM-09): an organization's administrator hands one to
//! their customer's IT administrator, who sets up the organization's SSO connection with
//! it and nothing else.
//!
//! A link is a 256-bit token stored only as a keyed hash, valid for [`SETUP_LINK_TTL`]
//! and spent on first use ([`ChallengeStore::take`](crate::store::ChallengeStore::take)).
//! Using it opens a setup session (another hashed token, [`SETUP_SESSION_TTL`]) whose
//! scope is the organization's domains and one connection: the first it creates, or the
//! one the link named. Revoking an organization's links ends its open setup sessions too.
//! Every creation, use and revocation is in the organization's log.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{SecretPurpose, random_token};
use crate::engine::Inner;
use crate::model::{ChallengeKey, ChallengeKind, ConnectionId, OrgId};
use crate::{Error, Timestamp};

/// How long a setup link may be opened.
pub const SETUP_LINK_TTL: Duration = Duration::from_secs(72 * 3600);
/// How long a setup session lasts once the link was opened.
pub const SETUP_SESSION_TTL: Duration = Duration::from_secs(3600);
/// What every setup link token starts with.
pub const SETUP_LINK_PREFIX: &str = "pcl_";
/// What every setup session token starts with.
pub const SETUP_SESSION_PREFIX: &str = "pcs_";

/// A new setup link's token: shown once, to be sent to the IT administrator.
pub struct SetupLinkCreated {
    /// The token (`pcl_…`), for `{PUBLIC_URL}/setup?token=`.
    pub token: Zeroizing<String>,
    /// How long it may be opened.
    pub expires_in: Duration,
}

impl std::fmt::Debug for SetupLinkCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupLinkCreated")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The session an opened setup link gives.
pub struct SetupSessionOpened {
    /// The session's token (`pcs_…`): the bearer credential of the setup pages.
    pub token: Zeroizing<String>,
    /// What it may reach.
    pub scope: SetupScope,
    /// How long it lasts.
    pub expires_in: Duration,
}

impl std::fmt::Debug for SetupSessionOpened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupSessionOpened")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What a setup session reaches: one organization's domains and one of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupScope {
    /// The organization.
    pub org_id: OrgId,
    /// Its connection being set up; `None` until the session creates one.
    pub connection_id: Option<ConnectionId>,
}

/// A link or session as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    scope: SetupScope,
    /// The organization's setup epoch when it was made: revoking moves the epoch.
    epoch: u64,
}

fn key(inner: &Inner, kind: ChallengeKind, token: &str) -> ChallengeKey {
    let hash = inner
        .hasher
        .hash(SecretPurpose::SetupLink, token.as_bytes());
    ChallengeKey::hashed(kind, &hash)
}

fn epoch_key(org: OrgId) -> String {
    format!("setup_epoch:{org}")
}

/// Far enough that an epoch counter never lapses in practice.
const EPOCH_LIFE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

async fn epoch(inner: &Inner, org: OrgId, now: Timestamp) -> Result<u64, Error> {
    Ok(inner
        .challenges
        .counter(&epoch_key(org), now)
        .await?
        .map_or(0, |c| c.count))
}

fn record(bytes: &[u8]) -> Result<Record, Error> {
    serde_json::from_slice(bytes).map_err(|_| Error::Internal("setup record"))
}

async fn put(
    inner: &Inner,
    kind: ChallengeKind,
    token: &str,
    record: &Record,
    ttl: Duration,
) -> Result<(), Error> {
    let value = serde_json::to_vec(record).map_err(|_| Error::Internal("setup record"))?;
    let now = inner.clock.now();
    if !inner
        .challenges
        .insert(&key(inner, kind, token), &value, now + ttl, now)
        .await?
    {
        return Err(Error::Internal("setup token collision"));
    }
    Ok(())
}

/// A setup link for `org`, optionally for one existing connection of it.
pub(crate) async fn create(
    inner: &Inner,
    org: OrgId,
    connection: Option<ConnectionId>,
) -> Result<SetupLinkCreated, Error> {
    inner.orgs.get_org(org).await?.ok_or(Error::NotFound {
        what: "organization",
    })?;
    if let Some(id) = connection {
        super::connections::get(inner, org, id).await?;
    }
    let token = Zeroizing::new(format!("{SETUP_LINK_PREFIX}{}", random_token()?.as_str()));
    let now = inner.clock.now();
    let record = Record {
        scope: SetupScope {
            org_id: org,
            connection_id: connection,
        },
        epoch: epoch(inner, org, now).await?,
    };
    put(
        inner,
        ChallengeKind::SetupLink,
        &token,
        &record,
        SETUP_LINK_TTL,
    )
    .await?;
    crate::directory::log_admin(inner, org, "setup_link_created").await;
    Ok(SetupLinkCreated {
        token,
        expires_in: SETUP_LINK_TTL,
    })
}

/// Spends a setup link and opens its session.
pub(crate) async fn open(inner: &Inner, link: &str) -> Result<SetupSessionOpened, Error> {
    if !link.starts_with(SETUP_LINK_PREFIX) || link.len() > 100 {
        return Err(Error::InvalidToken);
    }
    let now = inner.clock.now();
    let (_, taken) = inner
        .secret_record(
            ChallengeKind::SetupLink,
            SecretPurpose::SetupLink,
            link.as_bytes(),
            true,
        )
        .await?
        .ok_or(Error::InvalidToken)?;
    let found = record(&taken.value)?;
    let org = found.scope.org_id;
    if found.epoch != epoch(inner, org, now).await? {
        return Err(Error::InvalidToken);
    }
    let token = Zeroizing::new(format!(
        "{SETUP_SESSION_PREFIX}{}",
        random_token()?.as_str()
    ));
    put(
        inner,
        ChallengeKind::SetupSession,
        &token,
        &found,
        SETUP_SESSION_TTL,
    )
    .await?;
    crate::directory::log_admin(inner, org, "setup_link_used").await;
    Ok(SetupSessionOpened {
        token,
        scope: found.scope,
        expires_in: SETUP_SESSION_TTL,
    })
}

/// The scope of a live setup session ([`Error::InvalidToken`] for anything else).
pub(crate) async fn scope(inner: &Inner, session: &str) -> Result<SetupScope, Error> {
    if !session.starts_with(SETUP_SESSION_PREFIX) || session.len() > 100 {
        return Err(Error::InvalidToken);
    }
    let now = inner.clock.now();
    let stored = inner
        .challenges
        .get(&key(inner, ChallengeKind::SetupSession, session), now)
        .await?
        .ok_or(Error::InvalidToken)?;
    let found = record(&stored.value)?;
    if found.epoch != epoch(inner, found.scope.org_id, now).await? {
        return Err(Error::InvalidToken);
    }
    Ok(found.scope)
}

/// Binds a setup session that has no connection yet to `connection` (compare-and-swap:
/// of two racing binds one wins; the other is [`Error::Forbidden`]).
pub(crate) async fn bind(
    inner: &Inner,
    session: &str,
    connection: ConnectionId,
) -> Result<(), Error> {
    let key = key(inner, ChallengeKind::SetupSession, session);
    let now = inner.clock.now();
    let stored = inner
        .challenges
        .get(&key, now)
        .await?
        .ok_or(Error::InvalidToken)?;
    let mut found = record(&stored.value)?;
    if found.scope.connection_id.is_some() {
        return Err(Error::Forbidden);
    }
    found.scope.connection_id = Some(connection);
    let value = serde_json::to_vec(&found).map_err(|_| Error::Internal("setup record"))?;
    if !inner
        .challenges
        .update(&key, stored.version, &value, stored.expires_at, now)
        .await?
    {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// Ends every setup link and session of `org`.
pub(crate) async fn revoke(inner: &Inner, org: OrgId) -> Result<(), Error> {
    let now = inner.clock.now();
    inner
        .challenges
        .incr(&epoch_key(org), now + EPOCH_LIFE, now)
        .await?;
    crate::directory::log_admin(inner, org, "setup_links_revoked").await;
    Ok(())
}
