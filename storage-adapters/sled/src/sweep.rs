//! Removing expired records: at open, and on a background thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use portcullis::{Clock, StoreError, Timestamp};

use crate::Inner;

/// Removes every expired challenge, counter and session.
pub(crate) fn purge(inner: &Inner, now: Timestamp) -> Result<u64, StoreError> {
    Ok(crate::challenges::purge(inner, now)? + crate::sessions::purge(inner, now)?)
}

pub(crate) struct Sweeper {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Sweeper {
    pub(crate) fn start(inner: Weak<Inner>, clock: Arc<dyn Clock>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("portcullis-sled-sweeper".into())
            .spawn(move || {
                loop {
                    thread::park_timeout(every);
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    // Holds the store only while sweeping, so dropping it is never blocked.
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    let _ = purge(&inner, clock.now());
                }
            });
        // Without a thread, expired records stay invisible and go at the next open.
        Sweeper {
            stop,
            handle: handle.ok(),
        }
    }

    /// Stops the sweeper and waits for a sweep in progress, so the database is free to be
    /// reopened once the store is dropped. (From the sweeper's own thread, when it held
    /// the last handle, it only signals.)
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let Some(handle) = self.handle else {
            return;
        };
        handle.thread().unpark();
        if handle.thread().id() != thread::current().id() {
            let _ = handle.join();
        }
    }
}
