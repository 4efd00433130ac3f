//! Test support shared by the core, the adapters and the examples (feature `testing`):
//! capturing delivery sinks, a capturing log subscriber, fixed secrets and the [`race`]
//! helper.

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

/// A `tracing` subscriber that keeps every event and span field at every level, TRACE
/// included, as text: for canary tests that prove no secret reaches the logs.
///
/// Install it for the current thread with `tracing::subscriber::set_default(capture.clone())`
/// and run the code under test on a current-thread runtime, so tasks it spawns log here too.
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    lines: Arc<Mutex<Vec<String>>>,
    next_span: Arc<std::sync::atomic::AtomicU64>,
}

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything logged so far, one line per event or span.
    pub fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// Formats every field of a span or event.
#[derive(Default)]
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for LogCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.push(format!("span {}{}", span.metadata().name(), fields.0));
        let id = self
            .next_span
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.push(format!("record{}", fields.0));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.push(format!("{} {}{}", meta.level(), meta.target(), fields.0));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
