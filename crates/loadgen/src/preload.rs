//! The population the server holds before the load: users (`user{n}@load.test`, address
//! proven, no password) and live sessions spread over them, written through the store
//! traits as the engine writes them, with no HTTP in between.

use std::sync::Arc;
use std::time::Duration;

use portcullis::crypto::SecretHash;
use portcullis::model::{Session, SessionId, User, UserId};
use portcullis::store::{SessionStore, UserStore};
use portcullis::{Clock, Email, SystemClock};
use portcullis_sled::{Durability, SledConfig, SledStore};

use crate::server::Target;

/// Writers at once: enough to keep a store with group commit or a pool busy.
const WRITERS: u64 = 32;

/// The address of population user `n`.
pub(crate) fn population_email(n: u64) -> String {
    format!("user{n}@load.test")
}

/// The address of worker `index`'s own preloaded user.
pub(crate) fn worker_email(index: usize) -> String {
    format!("worker{index}@load.test")
}

/// Writes `users` population users, one user per worker of `workers`, and `sessions` live
/// sessions (one day left) of population users into `store`.
pub async fn preload<S: UserStore + SessionStore + 'static>(
    store: Arc<S>,
    users: u64,
    workers: usize,
    sessions: u64,
) -> Result<(), String> {
    preload_users(store.clone(), users, workers).await?;
    preload_sessions(store, users, sessions).await
}

/// The users of [`preload`].
pub(crate) async fn preload_users<S: UserStore + 'static>(
    store: Arc<S>,
    users: u64,
    workers: usize,
) -> Result<(), String> {
    fill(store, users + workers as u64, move |store, n| async move {
        let email = if n < users {
            population_email(n)
        } else {
            worker_email((n - users) as usize)
        };
        let mut user = User::new(user_id(n), SystemClock.now());
        user.email = Some(Email::parse(&email).map_err(|e| e.to_string())?);
        user.email_verified = true;
        store.create_user(&user).await.map_err(|e| e.to_string())
    })
    .await
}

/// The sessions of [`preload`], of the first `users` users.
pub(crate) async fn preload_sessions<S: SessionStore + 'static>(
    store: Arc<S>,
    users: u64,
    sessions: u64,
) -> Result<(), String> {
    if sessions > 0 && users == 0 {
        return Err("sessions need users to belong to".into());
    }
    fill(store, sessions, move |store, n| async move {
        let now = SystemClock.now();
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&n.to_be_bytes());
        let session = Session {
            id: SessionId::generate(),
            user_id: user_id(n % users),
            org_id: None,
            refresh_hash: SecretHash::from_bytes(secret),
            generation: 0,
            amr: vec!["email".into()],
            aal: 1,
            ip: None,
            user_agent: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::from_secs(86_400),
            revoked_at: None,
        };
        store
            .create_session(&session)
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// The id of preloaded user `n`: derived, so sessions can name their user without a
/// lookup. Time-ordered like the engine's own (UUIDv7 layout: 48-bit time, version 7).
fn user_id(n: u64) -> UserId {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&0x0190_0000_0000u64.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes[8] |= 0x80;
    UserId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

/// Runs `write(store, n)` for every `n` below `count`, [`WRITERS`] at a time.
async fn fill<S, F, Fut>(store: Arc<S>, count: u64, write: F) -> Result<(), String>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let mut writers = tokio::task::JoinSet::new();
    for first in 0..WRITERS.min(count) {
        let store = store.clone();
        writers.spawn(async move {
            let mut n = first;
            while n < count {
                write(store.clone(), n).await?;
                n += WRITERS;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.map_err(|e| format!("a writer failed: {e}"))??;
    }
    Ok(())
}

/// [`preload`] into a target that lives outside this process's memory (sled files, a
/// Postgres schema), then closed: the server opens it afresh, as after a restart. sled is
/// written without a flush per write (the default flushes sign-ins one by one) and flushed
/// once at the end.
pub async fn preload_target(
    target: &Target,
    users: u64,
    workers: usize,
    sessions: u64,
) -> Result<(), String> {
    match target {
        Target::Memory(store) => preload(Arc::new(store.clone()), users, workers, sessions).await,
        Target::Sled(dir) => {
            let config = SledConfig::new(dir).durability(Durability::Background);
            let store = Arc::new(
                SledStore::with_config(config)
                    .map_err(|e| format!("cannot open sled in {}: {e}", dir.display()))?,
            );
            preload(store.clone(), users, workers, sessions).await?;
            Arc::try_unwrap(store)
                .map_err(|_| "the sled store is still in use".to_owned())?
                .close()
                .map_err(|e| format!("closing sled: {e}"))
        }
        Target::Postgres { url, schema } => {
            let store = Target::connect_postgres(url, schema).await?;
            let result = preload(Arc::new(store.clone()), users, workers, sessions).await;
            store.close().await;
            result
        }
    }
}
