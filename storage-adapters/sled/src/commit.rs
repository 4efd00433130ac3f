//! Group commit: concurrent durable writes share one flush.
//!
//! A writer needs a flush that *starts* after its write. If none is running it runs one;
//! if one is running (it may have started before the write), it waits for the next, which
//! the first waiter to wake starts for everyone who queued meanwhile. N concurrent durable
//! writes cost about two flushes, not N.

use std::sync::Mutex;

use portcullis::StoreError;
use tokio::sync::Notify;

pub(crate) struct GroupCommit {
    db: sled::Db,
    state: Mutex<State>,
    done: Notify,
}

#[derive(Default)]
struct State {
    /// Flushes started so far; a flush's number is the value after its start.
    started: u64,
    /// The highest flush number known to have completed.
    completed: u64,
    running: bool,
}

impl GroupCommit {
    pub(crate) fn new(db: sled::Db) -> Self {
        GroupCommit {
            db,
            state: Mutex::new(State::default()),
            done: Notify::new(),
        }
    }

    /// Returns once a flush that started after this call began has completed.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let needed = crate::lock(&self.state).started + 1;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let lead = {
                let mut state = crate::lock(&self.state);
                if state.completed >= needed {
                    return Ok(());
                }
                if state.running {
                    None
                } else {
                    state.running = true;
                    state.started += 1;
                    Some(state.started)
                }
            };
            let Some(number) = lead else {
                notified.await;
                continue;
            };
            // If this future is dropped mid-flush (a client hung up), the guard still hands
            // the lead on: `running` is cleared and the waiters wake to start the next one.
            let mut lead = Lead {
                commit: self,
                completed: None,
            };
            let result = flush_off_executor(&self.db).await;
            if result.is_ok() {
                lead.completed = Some(number);
            }
            drop(lead);
            result.map_err(crate::backend)?;
        }
    }

    #[cfg(test)]
    fn flushes(&self) -> u64 {
        crate::lock(&self.state).started
    }
}

/// Flushes on Tokio's blocking pool (inline when there is no runtime). Not sled's
/// `flush_async`: a test that cancels flushes at random hung once in that path, with every
/// thread asleep; a blocking flush runs to its end whatever happens to the caller.
async fn flush_off_executor(db: &sled::Db) -> sled::Result<usize> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let db = db.clone();
            match runtime.spawn_blocking(move || db.flush()).await {
                Ok(result) => result,
                Err(_) => Err(sled::Error::ReportableBug(
                    "the flush task panicked or was cancelled".into(),
                )),
            }
        }
        Err(_) => db.flush(),
    }
}

/// The running flush: whatever happens to the future that runs it, dropping this marks the
/// flush finished (and completed, if it succeeded) and wakes the waiters.
struct Lead<'a> {
    commit: &'a GroupCommit,
    completed: Option<u64>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        {
            let mut state = crate::lock(&self.commit.state);
            state.running = false;
            if let Some(number) = self.completed {
                state.completed = state.completed.max(number);
            }
        }
        self.commit.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let commit = Arc::new(GroupCommit::new(db.clone()));
        let tasks: Vec<_> = (0..64)
            .map(|i: u32| {
                let commit = commit.clone();
                let db = db.clone();
                tokio::spawn(async move {
                    db.insert(i.to_be_bytes(), b"x").unwrap();
                    commit.flush().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let flushes = commit.flushes();
        // Fewer flushes than writers: some were shared. (How many depends on scheduling;
        // on a loaded two-core machine 64 writers have taken 30.)
        assert!(
            (1..64).contains(&flushes),
            "64 writers used {flushes} flushes"
        );
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A durable write whose future is dropped mid-flush must not wedge the ones after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_flush_does_not_block_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let commit = Arc::new(GroupCommit::new(db.clone()));
        for i in 0..50u32 {
            db.insert(i.to_be_bytes(), b"x").unwrap();
            // Cancel almost at once: sometimes before, sometimes during the flush.
            let _ =
                tokio::time::timeout(Duration::from_micros(u64::from(i % 5) * 20), commit.flush())
                    .await;
        }
        let done = tokio::time::timeout(Duration::from_secs(10), commit.flush()).await;
        assert!(matches!(done, Ok(Ok(()))), "a later flush completes");
    }
}
