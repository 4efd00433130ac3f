//! A credential-stuffing simulation against the running axum example (loopback only,
//! bounded): a list of leaked email and password pairs is tried against 100 accounts
//! over real HTTP, as a bot would, from one address, from a few, and from as many as
//! there are guesses (each through a trusted proxy's `X-Forwarded-For`), once ignoring
//! bot checks and once solving every proof of work it is asked for. Each run reports
//! how many guesses were judged (reached the password check) per account and per address,
//! and how many accounts were taken over; the asserted bounds are the defaults' promises.
//!
//! `cargo test -p portcullis-http-suite --test stuffing -- --nocapture` prints the table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis::model::{PasswordHash, User};
use portcullis::store::UserStore;
use portcullis::{Config, Portcullis, UserId};
use serde_json::{Value, json};

const ACCOUNTS: usize = 100;
/// Leaked pairs per account; for one account in ten one of them is its password.
const PER_ACCOUNT: usize = 4;
const REAL: &str = "the one true passphrase of this account";

/// How a bot spreads its guesses over client addresses.
#[derive(Clone, Copy, Debug)]
enum Spread {
    One,
    Few(usize),
    EveryGuess,
}

struct Outcome {
    judged_per_account: BTreeMap<usize, usize>,
    judged_per_ip: BTreeMap<String, usize>,
    taken_over: usize,
    refused_bot: usize,
    refused_limit: usize,
    pow_time: Duration,
    solved: usize,
    elapsed: Duration,
}

/// The server as the demo runs it (the built-in proof of work on, default limits),
/// believing `X-Forwarded-For` from loopback, which stands for the proxy.
async fn server(hash: &PasswordHash) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let store = portcullis_memory::MemoryStore::new();
    let now = portcullis::Clock::now(&portcullis::SystemClock);
    for n in 0..ACCOUNTS {
        let mut user = User::new(UserId::generate(), now);
        user.email = Some(format!("user{n}@example.com").parse().unwrap());
        user.email_verified = true;
        user.password_hash = Some(hash.clone());
        store.create_user(&user).await.unwrap();
    }
    let auth = Portcullis::builder(Config::new("http://localhost:8080"))
        .store(store)
        .pepper(portcullis::testing::test_pepper())
        .keyring(portcullis::testing::test_keyring())
        .mailer(portcullis::testing::CapturingMailer::new())
        .proof_of_work()
        .build()
        .unwrap();
    let api = portcullis_http::Api::new(auth)
        .trusting(portcullis_http::net::parse_networks("127.0.0.1/32").unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = example_axum::app(api);
    let handle = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, handle)
}

/// The leaked list: for every tenth account, its real password among its guesses.
fn leaked() -> Vec<(usize, String)> {
    let mut list = Vec::new();
    for round in 0..PER_ACCOUNT {
        for account in 0..ACCOUNTS {
            let real = account % 10 == 0 && round == account % PER_ACCOUNT;
            let password = match real {
                true => REAL.to_owned(),
                false => format!("leaked password {account}-{round} from some breach"),
            };
            list.push((account, password));
        }
    }
    list
}

async fn attack(addr: SocketAddr, spread: Spread, solve: bool) -> Outcome {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/auth/password/login");
    let mut outcome = Outcome {
        judged_per_account: BTreeMap::new(),
        judged_per_ip: BTreeMap::new(),
        taken_over: 0,
        refused_bot: 0,
        refused_limit: 0,
        pow_time: Duration::ZERO,
        solved: 0,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    for (i, (account, password)) in leaked().into_iter().enumerate() {
        let ip = match spread {
            Spread::One => "203.0.113.1".to_owned(),
            Spread::Few(n) => format!("203.0.113.{}", 1 + i % n),
            Spread::EveryGuess => format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        };
        let body = json!({"email": format!("user{account}@example.com"), "password": password});
        let mut proof: Option<String> = None;
        let answer = loop {
            let mut request = client.post(&url).header("x-forwarded-for", &ip).json(&body);
            if let Some(proof) = &proof {
                request = request.header("x-bot-proof", proof);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if status == 428 && solve && proof.is_none() {
                let challenge: Value = client
                    .get(format!("http://{addr}/api/v1/protection/challenge"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let t = Instant::now();
                proof = Some(portcullis::protect::solve(
                    challenge["challenge"].as_str().unwrap(),
                    challenge["difficulty"].as_u64().unwrap() as u8,
                ));
                outcome.pow_time += t.elapsed();
                outcome.solved += 1;
                continue;
            }
            break (status, json);
        };
        match answer.0 {
            200 | 401 => {
                *outcome.judged_per_account.entry(account).or_default() += 1;
                *outcome.judged_per_ip.entry(ip).or_default() += 1;
                if answer.0 == 200 {
                    outcome.taken_over += 1;
                }
            }
            428 => outcome.refused_bot += 1,
            429 => outcome.refused_limit += 1,
            other => panic!("unexpected {other}: {}", answer.1),
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stuffing_against_the_running_server() {
    let hash = portcullis_test_support::policy_hash(REAL);
    let guesses = ACCOUNTS * PER_ACCOUNT;
    let real_pairs = ACCOUNTS / 10;
    println!(
        "\ncredential stuffing: {guesses} leaked pairs over {ACCOUNTS} accounts, {real_pairs} of them right\n\
         {:<26} {:>7} {:>9} {:>9} {:>6} {:>11} {:>9} {:>7} {:>8} {:>9}",
        "bot",
        "judged",
        "max/acct",
        "max/addr",
        "taken",
        "bot-check",
        "limited",
        "solved",
        "pow s",
        "wall s"
    );
    let runs = [
        ("one address", Spread::One, false),
        ("20 addresses", Spread::Few(20), false),
        ("an address per guess", Spread::EveryGuess, false),
        ("an address per guess+pow", Spread::EveryGuess, true),
    ];
    for (name, spread, solve) in runs {
        let (addr, server) = server(&hash).await;
        let o = attack(addr, spread, solve).await;
        server.abort();
        let judged: usize = o.judged_per_account.values().sum();
        let max_account = o.judged_per_account.values().copied().max().unwrap_or(0);
        let max_ip = o.judged_per_ip.values().copied().max().unwrap_or(0);
        println!(
            "{name:<26} {judged:>7} {max_account:>9} {max_ip:>9} {:>6} {:>11} {:>9} {:>7} {:>8.1} {:>9.1}",
            o.taken_over,
            o.refused_bot,
            o.refused_limit,
            o.solved,
            o.pow_time.as_secs_f64(),
            o.elapsed.as_secs_f64()
        );
        // The defaults' promises: a client's failures stop at 100 a day and, without a
        // solved bot check, at 3; an account answers no more than its budgets allow.
        assert!(
            max_ip <= 100,
            "{name}: {max_ip} guesses judged from one address"
        );
        assert!(max_account <= PER_ACCOUNT);
        if !solve {
            // Without solving, a client gets 3 failures judged before the bot check, and
            // an account 3 from everywhere together; an account the bot took over is a
            // known device's from then on (its remaining guesses are judged too).
            let known = o.taken_over * PER_ACCOUNT;
            assert!(max_ip <= 3 + known, "{name}: {max_ip}");
            assert!(
                max_account <= 3 || o.taken_over > 0,
                "{name}: {max_account}"
            );
            let addresses = match spread {
                Spread::One => 1,
                Spread::Few(n) => n,
                Spread::EveryGuess => guesses,
            };
            assert!(
                judged <= (3 * addresses + known).min(3 * ACCOUNTS + known),
                "{name}: {judged}"
            );
        }
    }
}
