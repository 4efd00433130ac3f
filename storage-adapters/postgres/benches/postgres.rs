//! PostgreSQL over loopback beside sled, in one run: a single-use record's insert + take,
//! refresh rotation and a user found by email, from one task and from 8 at once; an email
//! code's sign-in end to end; and a directory of many users (1,000,000 under `cargo bench`,
//! 2,000 in test mode): load time, table and index size, lookup by email.
//!
//! `cargo bench -p portcullis-postgres` (needs the test PostgreSQL, see the README;
//! `PORTCULLIS_BENCH_USERS` changes the directory's size).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use portcullis::crypto::{OneTimeCode, SecretHash};
use portcullis::model::{ChallengeKey, ChallengeKind, Email, Session, SessionId, User, UserId};
use portcullis::store::Storage;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{
    Clock, Config, Delivery, DeliveryError, EmailMessage, Mailer, ManualClock, Portcullis,
    PortcullisBuilder, RequestContext, SignIn, SystemClock,
};
use portcullis_postgres::PgStore;
use portcullis_sled::SledStore;
use portcullis_test_support::postgres;
use tokio::runtime::Runtime;

/// Whether criterion measures (`cargo bench`) or runs each bench once (`cargo test`).
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn sled() -> SledStore {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-pg-bench-sled")
        .tempdir()
        .unwrap()
        .keep();
    SledStore::with_config(portcullis_sled::SledConfig::new(dir).temporary(true)).unwrap()
}

fn hash(n: u64) -> SecretHash {
    let mut bytes = [9u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    SecretHash::from_bytes(bytes)
}

fn email(i: u64) -> Email {
    format!("user{i}@example.com").parse().unwrap()
}

/// Runs `op(store, task, i)` for `iters` values of `i`, spread over `tasks` concurrent
/// tasks: the time per operation with that many in flight.
async fn spread<S, F, Fut>(store: &Arc<S>, tasks: u64, iters: u64, op: F) -> Duration
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let per_task = iters.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (store, op) = (store.clone(), op.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    op(store.clone(), t, t * per_task + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn insert_take<S: Storage>(store: Arc<S>, _: u64, _: u64) {
    let now = SystemClock.now();
    let key = ChallengeKey::new(
        ChallengeKind::OneTimeCode,
        NEXT.fetch_add(1, Ordering::Relaxed).to_string(),
    );
    store
        .insert(&key, b"code state", now + Duration::from_secs(600), now)
        .await
        .unwrap();
    store.take(&key, now).await.unwrap().unwrap();
}

/// One session per task (at most 8), each rotated again and again: the refresh hash
/// generation of each is kept here, so every rotation presents the current hash.
struct Families {
    ids: Vec<SessionId>,
    generations: Vec<AtomicU64>,
}

impl Families {
    async fn create<S: Storage>(store: &S) -> Families {
        let now = SystemClock.now();
        let mut ids = Vec::new();
        for t in 0..8u64 {
            let session = Session {
                id: SessionId::generate(),
                user_id: UserId::generate(),
                org_id: None,
                refresh_hash: family_hash(t, 0),
                generation: 0,
                amr: vec!["pwd".into()],
                aal: 1,
                ip: None,
                user_agent: None,
                created_at: now,
                last_seen_at: now,
                expires_at: now + Duration::from_secs(86_400),
                revoked_at: None,
            };
            store.create_session(&session).await.unwrap();
            ids.push(session.id);
        }
        Families {
            ids,
            generations: (0..8).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Refresh hash `generation` of family `task` (distinct across families).
fn family_hash(task: u64, generation: u64) -> SecretHash {
    hash((task << 48) | generation)
}

async fn rotate<S: Storage>(store: Arc<S>, families: Arc<Families>, task: u64) {
    let t = usize::try_from(task).unwrap();
    let g = families.generations[t].fetch_add(1, Ordering::Relaxed);
    store
        .rotate_refresh(
            families.ids[t],
            &family_hash(task, g),
            &family_hash(task, g + 1),
            SystemClock.now(),
        )
        .await
        .unwrap()
        .unwrap();
}

async fn load_users<S: Storage + 'static>(store: &Arc<S>, count: u64) -> Duration {
    let now = SystemClock.now();
    spread(store, 8, count, move |store, _, i| async move {
        let mut user = User::new(UserId::generate(), now);
        user.email = Some(email(i));
        user.email_verified = true;
        store.create_user(&user).await.unwrap();
    })
    .await
}

fn per_store<S: Storage + 'static>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    store: &Arc<S>,
    users: u64,
) {
    let families = Arc::new(rt.block_on(Families::create(&**store)));
    for tasks in [1u64, 8] {
        let s = store.clone();
        g.bench_function(format!("{name}: insert + take, {tasks} task(s)"), |b| {
            b.to_async(rt)
                .iter_custom(|iters| spread(&s, tasks, iters, insert_take::<S>))
        });
        let s = store.clone();
        let f = families.clone();
        g.bench_function(format!("{name}: rotate refresh, {tasks} task(s)"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let f = f.clone();
                spread(&s, tasks, iters, move |store, task, _| {
                    rotate(store, f.clone(), task)
                })
            })
        });
        let s = store.clone();
        g.bench_function(
            format!("{name}: get user by email of {users}, {tasks} task(s)"),
            |b| {
                b.to_async(rt).iter_custom(|iters| {
                    spread(&s, tasks, iters, move |store, _, i| async move {
                        let at = (i.wrapping_mul(7919)) % users;
                        store.get_user_by_email(&email(at)).await.unwrap().unwrap();
                    })
                })
            },
        );
    }
}

/// Keeps the newest email code, so the bench can answer it.
#[derive(Debug, Clone, Default)]
struct LastCode(Arc<Mutex<Option<OneTimeCode>>>);

#[async_trait]
impl Mailer for LastCode {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        *self.0.lock().unwrap() = message.message.code.clone();
        Ok(())
    }
}

/// An email code's send + verify into a session, addresses taking turns past their limits.
fn sign_in(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    store: impl FnOnce(PortcullisBuilder) -> PortcullisBuilder,
) {
    let mut config = Config::new("https://app.example.com");
    config.passwordless.delivery = Delivery::Inline;
    let mailer = LastCode::default();
    let clock = ManualClock::fixed();
    let auth = store(Portcullis::builder(config))
        .mailer(mailer.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new();
    let mut next = 0u64;
    g.bench_function(
        format!("{name}: email code send + verify to a session"),
        |b| {
            b.iter(|| {
                clock.advance(Duration::from_secs(2));
                next = (next + 1) % 2000;
                let to = format!("signin{next}@example.com");
                rt.block_on(async {
                    let sent = auth.codes().email().send(&to, &ctx).await.unwrap();
                    let code = mailer.0.lock().unwrap().take().unwrap();
                    let done = auth
                        .codes()
                        .email()
                        .verify(sent.request_id, &code, &ctx)
                        .await
                        .unwrap();
                    assert!(matches!(done, SignIn::Complete(_)));
                })
            })
        },
    );
}

async fn report_postgres(store: &PgStore, users: u64, loaded: Duration) {
    let sizes: (i64, i64) =
        sqlx::query_as("SELECT pg_table_size('users'), pg_indexes_size('users')")
            .fetch_one(store.pool())
            .await
            .unwrap();
    println!(
        "postgres: {users} users loaded in {:.1} s ({:.0}/s, 8 tasks); users table {:.1} MiB, its indexes {:.1} MiB",
        loaded.as_secs_f64(),
        users as f64 / loaded.as_secs_f64(),
        sizes.0 as f64 / 1048576.0,
        sizes.1 as f64 / 1048576.0
    );
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let Some(pg) = rt.block_on(postgres::store_with(|config| config.max_connections(16))) else {
        return;
    };
    let users: u64 = std::env::var("PORTCULLIS_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if measuring() { 1_000_000 } else { 2_000 });
    let pg = Arc::new(pg);
    let sled = Arc::new(sled());

    let loaded = rt.block_on(load_users(&pg, users));
    rt.block_on(report_postgres(&pg, users, loaded));
    let loaded = rt.block_on(load_users(&sled, users));
    println!(
        "sled: {users} users loaded in {:.1} s ({:.0}/s, 8 tasks); on disk {:.1} MiB",
        loaded.as_secs_f64(),
        users as f64 / loaded.as_secs_f64(),
        sled.size_on_disk().unwrap() as f64 / 1048576.0
    );

    let mut g = c.benchmark_group("postgres beside sled");
    g.sample_size(20);
    per_store(&mut g, &rt, "postgres", &pg, users);
    per_store(&mut g, &rt, "sled", &sled, users);
    sign_in(&mut g, &rt, "postgres", |b| b.shared_store(pg.clone()));
    sign_in(&mut g, &rt, "sled", |b| b.shared_store(sled.clone()));
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
