//! The server under load: the axum example's whole app around an engine on one of the
//! adapters, on a single-threaded runtime in a thread of its own (one core), with an
//! in-process mailer the load generator reads the codes from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use portcullis::crypto::{EncryptionKey, Keyring, Pepper};
use portcullis::{Config, DeliveryError, EmailMessage, Mailer, Portcullis};
use portcullis_axum::Api;
use portcullis_memory::MemoryStore;
use portcullis_postgres::{PgConfig, PgStore};
use portcullis_sled::SledStore;
use tokio::sync::{Notify, oneshot};

/// Where the server keeps its data.
#[derive(Clone)]
pub enum Target {
    /// The memory adapter (this store, shared with the preload).
    Memory(MemoryStore),
    /// The sled adapter in this directory, with its default durability.
    Sled(PathBuf),
    /// The Postgres adapter: the server's URL and the schema of this run.
    Postgres {
        /// `postgres://…`
        url: String,
        /// The run's own schema (made by the migration, dropped after the run).
        schema: String,
    },
}

impl Target {
    /// The adapter's name, as the report shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Memory(_) => "memory",
            Target::Sled(_) => "sled",
            Target::Postgres { .. } => "postgres",
        }
    }

    pub(crate) async fn connect_postgres(url: &str, schema: &str) -> Result<PgStore, String> {
        let store = PgConfig::new(url)
            .schema(schema)
            .application_name("portcullis-loadgen")
            .connect()
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL at {url}: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot migrate the schema {schema}: {e}"))?;
        Ok(store)
    }
}

/// The codes the engine emails, by request id, until the load generator takes them.
#[derive(Clone, Default)]
pub(crate) struct Outbox {
    codes: Arc<Mutex<HashMap<String, String>>>,
    arrived: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The codes are secrets.
        f.write_str("Outbox")
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        if let Some(code) = &message.message.code {
            self.codes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    message.message.request_id.to_string(),
                    code.secret().to_owned(),
                );
            self.arrived.notify_waiters();
        }
        Ok(())
    }
}

impl Outbox {
    /// The code emailed for `request_id`, once it is sent (deliveries run in the
    /// background); an error after ten seconds without it.
    pub(crate) async fn take(&self, request_id: &str) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // Made before the look, so a send between the two still wakes us.
            let arrived = self.arrived.notified();
            let code = self
                .codes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(request_id);
            if let Some(code) = code {
                return Ok(code);
            }
            tokio::time::timeout_at(deadline, arrived)
                .await
                .map_err(|_| format!("no email for request {request_id} within 10 s"))?;
        }
    }
}

/// What to close once the server stopped.
enum Opened {
    Memory,
    Sled(Arc<SledStore>),
    Postgres(PgStore),
}

/// The engine the demo server runs (`Settings::build` with its defaults), on `target`,
/// mailing through `outbox`. Bot checks stay off (the demo's default asks for proof of
/// work only where a risk rule fires, which a load of successful sign-ins never trips);
/// loopback is on the allow list, so the per-address throttles, which would refuse one
/// client making thousands of sign-ins, do not apply. Per-account budgets still do.
async fn engine(
    target: Target,
    public_url: &str,
    outbox: Outbox,
) -> Result<(Portcullis, Opened), String> {
    let mut config = Config::new(public_url);
    config.rp_name = "portcullis loadgen".into();
    config.protection.allow = vec!["127.0.0.0/8".parse().map_err(|_| "network")?];
    let secrets = |e: portcullis::Error| format!("secrets: {e}");
    let builder = Portcullis::builder(config)
        .pepper(Pepper::generate().map_err(secrets)?)
        .keyring(Keyring::new(1, EncryptionKey::generate().map_err(secrets)?))
        .mailer(outbox);
    let (builder, opened) = match target {
        Target::Memory(store) => (builder.store(store), Opened::Memory),
        Target::Sled(dir) => {
            let store = Arc::new(
                SledStore::open(&dir)
                    .map_err(|e| format!("cannot open sled in {}: {e}", dir.display()))?,
            );
            (builder.shared_store(store.clone()), Opened::Sled(store))
        }
        Target::Postgres { url, schema } => {
            let store = Target::connect_postgres(&url, &schema).await?;
            (builder.store(store.clone()), Opened::Postgres(store))
        }
    };
    let auth = builder.build().map_err(|e| format!("engine: {e}"))?;
    auth.orgs()
        .default_org()
        .await
        .map_err(|e| format!("default organization: {e}"))?;
    Ok((auth, opened))
}

/// A running server.
pub(crate) struct Server {
    /// Where it listens (loopback).
    pub(crate) addr: SocketAddr,
    /// The origin its passkeys are for.
    pub(crate) public_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Server {
    /// Starts the app on `target` and waits until it is ready.
    pub(crate) fn start(target: Target, outbox: Outbox) -> Result<Server, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("listener: {e}"))?;
        let public_url = format!("http://localhost:{}", addr.port());
        let url = public_url.clone();
        let (ready, is_ready) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("server".into())
            .spawn(move || {
                pin(SERVER_CORE);
                // Its blocking pool (password hashing) shares the one core.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .thread_name("server-blocking")
                    .on_thread_start(|| pin(SERVER_CORE))
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))?;
                runtime.block_on(async move {
                    let started = async {
                        let (auth, opened) = engine(target, &url, outbox).await?;
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .map_err(|e| format!("listener: {e}"))?;
                        Ok::<_, String>((auth, opened, listener))
                    };
                    let (auth, opened, listener) = match started.await {
                        Ok(up) => up,
                        Err(err) => {
                            let _ = ready.send(Err(err.clone()));
                            return Err(err);
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let app = example_axum::app(Api::new(auth.clone()));
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(|e| format!("server: {e}"))?;
                    auth.flush_deliveries().await;
                    drop(auth);
                    match opened {
                        Opened::Memory => {}
                        Opened::Sled(store) => {
                            if let Ok(store) = Arc::try_unwrap(store) {
                                store.close().map_err(|e| format!("closing sled: {e}"))?;
                            }
                        }
                        Opened::Postgres(store) => store.close().await,
                    }
                    Ok(())
                })
            })
            .map_err(|e| format!("cannot start the server thread: {e}"))?;
        is_ready
            .recv()
            .map_err(|_| "the server thread ended before it was ready".to_owned())??;
        Ok(Server {
            addr,
            public_url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops serving and closes the store.
    pub(crate) fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the server thread panicked".into()),
            None => Ok(()),
        }
    }

    /// CPU seconds the server has used: every thread but the clients' (the serving one, its
    /// blocking pool, and the store's own threads, started from the serving one).
    pub(crate) fn cpu_seconds(&self) -> f64 {
        threads_cpu_seconds(|_| true) - client_cpu_seconds()
    }
}

/// CPU seconds the clients have used: the process's main thread, where they run.
pub(crate) fn client_cpu_seconds() -> f64 {
    let main = std::process::id();
    threads_cpu_seconds(|tid| tid == main)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The core the server runs on; the clients run on the others.
const SERVER_CORE: usize = 0;

/// Keeps the calling thread on `core` (with util-linux's `taskset`, on machines with more
/// than one core; elsewhere, or without `taskset`, the thread runs anywhere).
pub fn pin(core: usize) {
    // Counted at the first call, before any pinning narrows what this process may use.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    if cores < 2 {
        return;
    }
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| Some(link.file_name()?.to_str()?.to_owned()))
    else {
        return;
    };
    let _ = std::process::Command::new("taskset")
        .args(["-pc", &(core % cores).to_string(), &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The core the clients run on.
pub const CLIENT_CORE: usize = 1;

/// User plus system CPU time of this process's threads whose ids pass `which`.
fn threads_cpu_seconds(which: impl Fn(u32) -> bool) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            if !which(task.file_name().to_str()?.parse().ok()?) {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // After the name, which may hold anything: state is field 3 of the line, utime
            // and stime 14 and 15.
            let fields: Vec<&str> = stat
                .get(stat.rfind(')')? + 2..)?
                .split_whitespace()
                .collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / CLOCK_TICKS
}

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on.
const CLOCK_TICKS: f64 = 100.0;

/// This process's resident memory now and at its peak since the last
/// [`reset_peak`], in bytes.
pub(crate) fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the peak of [`resident`] over from now.
pub(crate) fn reset_peak() {
    // "5" resets the peak resident set size (proc(5), clear_refs).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
