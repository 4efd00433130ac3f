//! # portcullis-loadgen
//!
//! HTTP load on the axum example (`examples/axum`'s whole app) over loopback: the server
//! on one adapter, on a single-threaded runtime (one core), with a population of users and
//! live sessions loaded first; clients on a runtime of their own. Each [`Scenario`] runs
//! for a bounded time and number of operations and is reported as operations per second,
//! latency percentiles and the server thread's CPU use; the process's resident memory is
//! read idle and at its peak under load.
//!
//! `cargo run --release -p portcullis-loadgen -- --help` runs the whole matrix and writes
//! the report; [`run`] is one cell of it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod preload;
pub mod report;
mod scenarios;
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use preload::{preload, preload_target};
pub use scenarios::Scenario;
pub use server::{CLIENT_CORE, Target, pin};

use scenarios::Driver;
use server::{Outbox, Server, reset_peak, resident};

/// One run: a target, its population and the load.
#[derive(Clone)]
pub struct Plan {
    /// The adapter and where its data is.
    pub target: Target,
    /// Users loaded before the server starts (the email-code scenario signs them in).
    pub users: u64,
    /// Live sessions loaded before the server starts.
    pub sessions: u64,
    /// Whether the population and the workers' users are already in `target` (written by
    /// [`preload_target`], in another process so that this one's memory is the server's).
    pub preloaded: bool,
    /// Clients at once, each with a connection and a session of its own.
    pub concurrency: usize,
    /// How long each scenario runs at most.
    pub duration: Duration,
    /// How many operations each scenario runs at most.
    pub max_ops: u64,
    /// The scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Which.
    pub scenario: Scenario,
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed, and the first failure.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Latency percentiles of the successful operations, in microseconds: p50, p99, p99.9.
    pub p50_us: u64,
    /// p99.
    pub p99_us: u64,
    /// p99.9.
    pub p999_us: u64,
    /// The server's CPU time over wall time (1.0: one core saturated): every thread but
    /// the clients', so the store's own threads too.
    pub server_cpu: f64,
    /// The clients' CPU time over wall time.
    pub client_cpu: f64,
}

impl Measured {
    /// Successful operations per second.
    pub fn ops_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The adapter's name.
    pub store: String,
    /// Users loaded.
    pub users: u64,
    /// Live sessions loaded.
    pub sessions: u64,
    /// Per scenario.
    pub measured: Vec<Measured>,
    /// Resident memory of this process before anything was loaded, bytes.
    pub rss_start: u64,
    /// After the users were loaded in this process (memory adapter; else as `rss_start`).
    pub rss_users: u64,
    /// After the sessions were loaded in this process (memory adapter; else as
    /// `rss_users`).
    pub rss_sessions: u64,
    /// With the server up and the workers signed in, before the load.
    pub rss_idle: u64,
    /// The peak during the load.
    pub rss_peak: u64,
}

/// Runs `plan`: loads the population (unless preloaded), starts the server, signs the
/// workers in, then runs each scenario in turn.
pub async fn run(plan: &Plan) -> Result<Outcome, String> {
    let (rss_start, _) = resident();
    let (rss_users, rss_sessions) = match &plan.target {
        Target::Memory(store) if !plan.preloaded => {
            let store = Arc::new(store.clone());
            preload::preload_users(store.clone(), plan.users, plan.concurrency).await?;
            let (users, _) = resident();
            preload::preload_sessions(store, plan.users, plan.sessions).await?;
            (users, resident().0)
        }
        target if !plan.preloaded => {
            preload_target(target, plan.users, plan.concurrency, plan.sessions).await?;
            (rss_start, rss_start)
        }
        _ => (rss_start, rss_start),
    };

    let outbox = Outbox::default();
    let server = Server::start(plan.target.clone(), outbox.clone())?;
    let driver = Driver::new(server.addr, &server.public_url, outbox, plan.users)?;
    let mut workers = Vec::with_capacity(plan.concurrency);
    for index in 0..plan.concurrency {
        workers.push(driver.worker(index).await?);
    }
    let (rss_idle, _) = resident();
    reset_peak();

    let mut measured = Vec::new();
    for &scenario in &plan.scenarios {
        let (figures, back) = drive(&driver, &server, plan, scenario, workers).await?;
        workers = back;
        measured.push(figures);
    }
    let (_, rss_peak) = resident();
    drop(workers);
    server.stop()?;
    Ok(Outcome {
        store: plan.target.name().to_owned(),
        users: plan.users,
        sessions: plan.sessions,
        measured,
        rss_start,
        rss_users,
        rss_sessions,
        rss_idle,
        rss_peak,
    })
}

/// Runs one scenario with every worker until the time or the operations run out.
async fn drive(
    driver: &Arc<Driver>,
    server: &Server,
    plan: &Plan,
    scenario: Scenario,
    workers: Vec<scenarios::Worker>,
) -> Result<(Measured, Vec<scenarios::Worker>), String> {
    let next = Arc::new(AtomicU64::new(0));
    // Each email-code sign-in goes to a different user: the engine allows one code per
    // address per 30 seconds.
    let max_ops = match scenario {
        Scenario::EmailCode => plan.max_ops.min(plan.users),
        _ => plan.max_ops,
    };
    let started = Instant::now();
    let deadline = started + plan.duration;
    let cpu_before = server.cpu_seconds();
    let clients_before = server::client_cpu_seconds();
    let mut running = tokio::task::JoinSet::new();
    for mut worker in workers {
        let driver = driver.clone();
        let next = next.clone();
        running.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_ops {
                    break;
                }
                let began = Instant::now();
                match driver.once(scenario, &mut worker, n).await {
                    Ok(()) => latencies.push(began.elapsed().as_micros() as u64),
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert(err);
                    }
                }
            }
            (worker, latencies, errors, first_error)
        });
    }
    let mut workers = Vec::new();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(done) = running.join_next().await {
        let (worker, mine, failed, first) = done.map_err(|e| format!("a client failed: {e}"))?;
        workers.push(worker);
        latencies.extend(mine);
        errors += failed;
        if first_error.is_none() {
            first_error = first;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let clients = server::client_cpu_seconds() - clients_before;
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        latencies.get(i).copied().unwrap_or(0)
    };
    Ok((
        Measured {
            scenario,
            ops: latencies.len() as u64,
            errors,
            first_error,
            seconds,
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            server_cpu: if seconds > 0.0 {
                cpu.max(0.0) / seconds
            } else {
                0.0
            },
            client_cpu: if seconds > 0.0 {
                clients / seconds
            } else {
                0.0
            },
        },
        workers,
    ))
}
