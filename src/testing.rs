//! Test support shared by the core, the adapters and the examples (feature `testing`):
//! capturing delivery sinks, fixed secrets and the [`race`] helper.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::DeliveryError;
use crate::crypto::{EncryptionKey, Keyring, Pepper};
use crate::delivery::{EmailMessage, Mailer, SmsMessage, SmsSender};

/// A mailer that keeps every message for the test to read. Clones share one outbox.
#[derive(Debug, Clone, Default)]
pub struct CapturingMailer {
    sent: Arc<Mutex<Vec<EmailMessage>>>,
}

impl CapturingMailer {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<EmailMessage> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The newest message, if any.
    pub fn last(&self) -> Option<EmailMessage> {
        self.sent().pop()
    }
}

#[async_trait]
impl Mailer for CapturingMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }
}

/// An SMS sender that keeps every message for the test to read. Clones share one outbox.
#[derive(Debug, Clone, Default)]
pub struct CapturingSms {
    sent: Arc<Mutex<Vec<SmsMessage>>>,
}

impl CapturingSms {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<SmsMessage> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The newest message, if any.
    pub fn last(&self) -> Option<SmsMessage> {
        self.sent().pop()
    }
}

#[async_trait]
impl SmsSender for CapturingSms {
    async fn send(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }
}

/// A fixed pepper for tests. Never use it outside tests.
pub fn test_pepper() -> Pepper {
    Pepper::from_bytes([0x5a; 32]).unwrap_or_else(|_| unreachable!("32 bytes is a valid pepper"))
}

/// A fixed keyring for tests. Never use it outside tests.
pub fn test_keyring() -> Keyring {
    Keyring::new(1, EncryptionKey::from_bytes([0xa5; 32]))
}

/// Runs `f(0..n)` as `n` tasks that all start at once (behind a barrier) and returns their
/// results in index order. On a multi-threaded runtime the tasks really run in parallel.
///
/// A task that panics makes `race` panic with the same payload, so assertions inside `f`
/// fail the test.
pub async fn race<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let fut = f(i);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        match task.await {
            Ok(value) => results.push(value),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    results
}
