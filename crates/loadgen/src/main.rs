//! `cargo run --release -p portcullis-loadgen -- [options]`: the HTTP load benchmark.
//!
//! Each cell of adapters × populations runs in a process of its own (so its resident
//! memory is its own), after another process wrote the sled or Postgres population.
//! Prints the table and, with `--out DIR`, writes `DIR/http.md` and `DIR/http.svg`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use portcullis_loadgen::{Outcome, Plan, Scenario, Target, report};

const HELP: &str = "\
loadgen: HTTP load on the axum example over loopback, one core for the server.

options (defaults in brackets):
  --stores LIST        memory,sled,postgres  [memory,sled,postgres]
  --populations LIST   users:sessions pairs  [10000:10000,100000:100000,1000000:1000000]
  --seconds N          time per scenario at most  [5]
  --max-ops N          operations per scenario at most  [200000]
  --concurrency N      clients at once  [16]
  --scenarios LIST     status,refresh,email-code,password,passkey  [all]
  --postgres URL       [$PORTCULLIS_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test]
  --dir DIR            where sled data goes  [a temporary directory]
  --out DIR            write DIR/http.md and DIR/http.svg
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        // Internal: one process's share of the work (see `cell` and `preload`).
        Some("cell") => cell(&args[1..]),
        Some("preload") => preload(&args[1..]),
        _ => matrix(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    stores: Vec<String>,
    populations: Vec<(u64, u64)>,
    seconds: u64,
    max_ops: u64,
    concurrency: usize,
    scenarios: Vec<Scenario>,
    postgres: String,
    dir: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        stores: vec!["memory".into(), "sled".into(), "postgres".into()],
        populations: vec![(10_000, 10_000), (100_000, 100_000), (1_000_000, 1_000_000)],
        seconds: 5,
        max_ops: 200_000,
        concurrency: 16,
        scenarios: Scenario::ALL.to_vec(),
        postgres: std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        dir: None,
        out: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value (--help)"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--stores" => o.stores = value.split(',').map(str::to_owned).collect(),
            "--populations" => {
                o.populations = value
                    .split(',')
                    .map(|pair| {
                        let (users, sessions) = pair.split_once(':').unwrap_or((pair, "0"));
                        Ok((number(users)?, number(sessions)?))
                    })
                    .collect::<Result<_, String>>()?;
            }
            "--seconds" => o.seconds = number(value)?,
            "--max-ops" => o.max_ops = number(value)?,
            "--concurrency" => o.concurrency = number(value)?.clamp(1, 1024) as usize,
            "--scenarios" => {
                o.scenarios = value
                    .split(',')
                    .map(|s| Scenario::parse(s).ok_or_else(|| format!("no scenario {s:?}")))
                    .collect::<Result<_, String>>()?;
            }
            "--postgres" => o.postgres = value.clone(),
            "--dir" => o.dir = Some(value.into()),
            "--out" => o.out = Some(value.into()),
            other => return Err(format!("unknown option {other} (--help)")),
        }
    }
    for store in &o.stores {
        if !["memory", "sled", "postgres"].contains(&store.as_str()) {
            return Err(format!("--stores: no adapter {store:?}"));
        }
    }
    Ok(o)
}

/// Every cell, one process each; then the report.
fn matrix(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let temp = std::env::temp_dir().join(format!("portcullis-loadgen-{}", std::process::id()));
    let root = o.dir.clone().unwrap_or_else(|| temp.clone());
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let scenarios: Vec<&str> = o.scenarios.iter().map(|s| s.name()).collect();
    let mut outcomes = Vec::new();
    for store in &o.stores {
        for &(users, sessions) in &o.populations {
            let location = match store.as_str() {
                "sled" => root
                    .join(format!("sled-{users}-{sessions}"))
                    .display()
                    .to_string(),
                "postgres" => format!(
                    "{}#loadgen_{}_{users}_{sessions}",
                    o.postgres,
                    std::process::id()
                ),
                _ => String::new(),
            };
            let population = [
                users.to_string(),
                o.concurrency.to_string(),
                sessions.to_string(),
            ];
            eprintln!("== {store}: {users} users, {sessions} sessions");
            if store != "memory" {
                let started = std::time::Instant::now();
                child(&me, "preload", store, &location, &population, &[])?;
                eprintln!("   loaded in {:.0} s", started.elapsed().as_secs_f64());
            }
            let settings = [
                o.seconds.to_string(),
                o.max_ops.to_string(),
                scenarios.join(","),
            ];
            let printed = child(&me, "cell", store, &location, &population, &settings);
            let cleaned = clean(store, &location);
            let outcome: Outcome = serde_json::from_str(printed?.trim())
                .map_err(|e| format!("the run's report: {e}"))?;
            cleaned?;
            for m in &outcome.measured {
                eprintln!(
                    "   {:<10} {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  server core {:>3.0} %  clients {:>3.0} %  errors {}",
                    m.scenario.name(),
                    m.ops_per_second(),
                    m.p50_us as f64 / 1000.0,
                    m.p99_us as f64 / 1000.0,
                    m.p999_us as f64 / 1000.0,
                    m.server_cpu * 100.0,
                    m.client_cpu * 100.0,
                    m.errors
                );
                if let Some(err) = &m.first_error {
                    eprintln!("   first error: {err}");
                }
            }
            outcomes.push(outcome);
        }
    }
    let _ = std::fs::remove_dir_all(&temp);
    let table = report::markdown(&outcomes);
    println!("{table}");
    if let Some(out) = &o.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("model name"))?;
                Some(line.split_once(':')?.1.trim().to_owned())
            })
            .unwrap_or_else(|| "an unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let header = format!(
            "# HTTP load on the axum example\n\n\
             `cargo run --release -p portcullis-loadgen -- {}` on {cores} cores of {cpu}: the \
             server on one core (its blocking pool too), {} clients on another, each with \
             its own kept-alive HTTP/1.1 connection over loopback; each scenario for at most \
             {} s or {} operations. `server core` and `clients` are CPU time over wall \
             time. RSS is the whole process, the clients' share included; per 10^5 \
             sessions, `*` marks growth over the adapter's smallest \
             population, users included.\n\n![plot](http.svg)\n\n",
            args.join(" "),
            o.concurrency,
            o.seconds,
            o.max_ops,
        );
        write(&out.join("http.md"), &format!("{header}{table}"))?;
        write(&out.join("http.svg"), &report::svg(&outcomes))?;
    }
    let failed: u64 = outcomes
        .iter()
        .flat_map(|o| &o.measured)
        .map(|m| m.errors)
        .sum();
    if failed > 0 {
        return Err(format!("{failed} operations failed"));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs this program as `what` and returns what it printed.
fn child(
    me: &Path,
    what: &str,
    store: &str,
    location: &str,
    population: &[String],
    settings: &[String],
) -> Result<String, String> {
    let output = Command::new(me)
        .arg(what)
        .arg(store)
        .arg(location)
        .args(population)
        .args(settings)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", me.display()))?;
    if !output.status.success() {
        return Err(format!("{what} {store} failed ({})", output.status));
    }
    String::from_utf8(output.stdout).map_err(|_| format!("{what}: output is not UTF-8"))
}

/// The target a child names: memory, a sled directory, or `url#schema`.
fn target(store: &str, location: &str) -> Result<Target, String> {
    Ok(match store {
        "memory" => Target::Memory(portcullis_memory::MemoryStore::new()),
        "sled" => Target::Sled(location.into()),
        "postgres" => {
            let (url, schema) = location
                .rsplit_once('#')
                .ok_or("postgres location: url#schema")?;
            Target::Postgres {
                url: url.into(),
                schema: schema.into(),
            }
        }
        other => return Err(format!("no adapter {other:?}")),
    })
}

/// A runtime for loading and cleaning, on every core.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// The clients' runtime: this thread, on a core of its own (the server has threads of its
/// own on another).
fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    portcullis_loadgen::pin(portcullis_loadgen::CLIENT_CORE);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

fn numbers(args: &[String], from: usize) -> Result<[u64; 3], String> {
    let mut out = [0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = args
            .get(from + i)
            .and_then(|a| a.parse().ok())
            .ok_or("expected users, workers and sessions")?;
    }
    Ok(out)
}

/// `preload STORE LOCATION USERS WORKERS SESSIONS`
fn preload(args: &[String]) -> Result<(), String> {
    let [users, workers, sessions] = numbers(args, 2)?;
    let store = args.first().ok_or("store")?;
    let target = target(store, args.get(1).ok_or("location")?)?;
    runtime()?.block_on(portcullis_loadgen::preload_target(
        &target,
        users,
        workers as usize,
        sessions,
    ))
}

/// `cell STORE LOCATION USERS WORKERS SESSIONS SECONDS MAX_OPS SCENARIOS`: prints the
/// outcome as JSON.
fn cell(args: &[String]) -> Result<(), String> {
    let [users, workers, sessions] = numbers(args, 2)?;
    let store = args.first().ok_or("store")?;
    let number = |i: usize| -> Result<u64, String> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("argument {i}"))
    };
    let scenarios = args
        .get(7)
        .ok_or("scenarios")?
        .split(',')
        .map(|s| Scenario::parse(s).ok_or_else(|| format!("no scenario {s:?}")))
        .collect::<Result<Vec<_>, String>>()?;
    let plan = Plan {
        target: target(store, args.get(1).ok_or("location")?)?,
        users,
        sessions,
        preloaded: store != "memory",
        concurrency: workers as usize,
        duration: Duration::from_secs(number(5)?),
        max_ops: number(6)?,
        scenarios,
    };
    let outcome = client_runtime()?.block_on(portcullis_loadgen::run(&plan))?;
    println!(
        "{}",
        serde_json::to_string(&outcome).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Removes a cell's data: the sled directory, or the Postgres schema.
fn clean(store: &str, location: &str) -> Result<(), String> {
    match store {
        "sled" => std::fs::remove_dir_all(location).map_err(|e| format!("{location}: {e}")),
        "postgres" => {
            let (url, schema) = location.rsplit_once('#').ok_or("url#schema")?;
            // Ours: `loadgen_` and digits (made in `matrix`); checked all the same.
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(format!("not a schema of ours: {schema:?}"));
            }
            let statement = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            runtime()?.block_on(async {
                let store = portcullis_postgres::PgStore::connect(url)
                    .await
                    .map_err(|e| format!("PostgreSQL: {e}"))?;
                let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(store.pool())
                    .await
                    .map_err(|e| format!("dropping {schema}: {e}"));
                store.close().await;
                dropped.map(drop)
            })
        }
        _ => Ok(()),
    }
}
