//! Following signing-key changes made by other instances (`LISTEN`/`NOTIFY`).

use std::time::Duration;

use portcullis::Portcullis;
use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::{PgError, PgStore};

/// A task that makes an engine read its signing keys again whenever an instance on the
/// same database adds or deletes one ([`PgStore::follow_key_changes`]). Stops when dropped
/// or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct KeyFollower {
    task: tokio::task::JoinHandle<()>,
}

impl KeyFollower {
    /// Stops following (also on drop).
    pub fn stop(self) {}
}

impl Drop for KeyFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Makes `auth` read the signing keys again whenever any instance on this database
    /// (this schema) adds or retires one, and after its listening connection was lost and
    /// made again (a change may have gone unheard meanwhile). A key rotated anywhere then
    /// signs on this instance, and one retired anywhere stops verifying here, within
    /// milliseconds instead of within `portcullis::tokens::KEY_REFRESH`. Listens on one
    /// connection of its own, made with the pool's settings but outside it (so a small pool
    /// is not starved); must be called within a Tokio runtime.
    pub async fn follow_key_changes(&self, auth: Portcullis) -> Result<KeyFollower, PgError> {
        let channel: String = sqlx::query_scalar(concat!("SELECT ", key_channel!()))
            .fetch_one(&self.pool)
            .await
            .map_err(PgError::Connect)?;
        // A pool of one for the listener alone: it reconnects through it after a loss.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with((*self.pool.connect_options()).clone())
            .await
            .map_err(PgError::Connect)?;
        let mut listener = PgListener::connect_with(&own)
            .await
            .map_err(PgError::Connect)?;
        listener.listen(&channel).await.map_err(PgError::Connect)?;
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    // A change, or a lost connection made again (when one may have been missed).
                    Ok(_) => {
                        if let Err(err) = auth.tokens().reload_signing_keys().await {
                            tracing::warn!(error = %err, "reading the signing keys again failed");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "listening for signing-key changes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(KeyFollower { task })
    }
}
