//! Attack protection (the attack-protection issue; checklist RL-01…RL-12, LOG-01): lockouts
//! per account and client with the owner's notice and unblock link, suspicious-IP
//! throttling and password spraying, allow and deny lists, bot checks (the built-in proof
//! of work, a CAPTCHA service that is down), breached passwords at sign-in, suspicious
//! sign-in signals, the event stream, and the pepper ring.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis::crypto::{BotProof, Password, UnblockToken};
use portcullis::model::{AuthEvent, AuthEventKind, PageRequest, User, UserId};
use portcullis::protect::{BlockKind, BotCheck, Coordinates};
use portcullis::store::UserStore;
use portcullis::{Config, Error, MessageKind, OrgUpdate, RequestContext, SignIn};
use support::{
    Harness, harness, harness_built, harness_with, on_both_adapters, sled_harness, tokens,
};

const GOOD: &str = "correct horse battery staple";
const WRONG: &str = "not the password at all, sorry";

fn from(ip: &str) -> RequestContext {
    RequestContext::new()
        .with_ip(ip.parse::<IpAddr>().unwrap())
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
}

fn config() -> Config {
    Config::new("https://app.example.com")
}

async fn sign_up(h: &Harness, email: &str, ctx: &RequestContext) -> UserId {
    tokens(
        support::password_sign_up(h, email, GOOD, ctx)
            .await
            .unwrap(),
    )
    .user_id
}

async fn sign_in(
    h: &Harness,
    email: &str,
    password: &str,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    h.auth
        .passwords()
        .sign_in(email, &Password::new(password), ctx)
        .await
}

async fn events(h: &Harness, user: UserId) -> Vec<AuthEvent> {
    h.auth
        .audit()
        .login_log(user, &PageRequest::first(500))
        .await
        .unwrap()
        .items
}

async fn count(h: &Harness, user: UserId, kind: AuthEventKind) -> usize {
    events(h, user)
        .await
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

async fn set_security(
    h: &Harness,
    change: impl FnOnce(&mut portcullis::directory::SecuritySettings),
) {
    let org = h.auth.orgs().default_org().await.unwrap();
    let mut settings = h.auth.orgs().settings(Some(org.id)).await.unwrap();
    change(&mut settings.security);
    let mut update = OrgUpdate::default();
    update.settings = Some(settings);
    h.auth.orgs().update(org.id, &update).await.unwrap();
}

/// RL-01, RL-02, RL-03 and the lockout notice: the tenth failure from one client locks it
/// out of the account (not one earlier), the right password is then refused as rate
/// limited, another client is not affected, the owner gets one notice for the window, and
/// the window passing opens the account again.
#[tokio::test]
async fn rl01_the_tenth_failure_from_a_client_locks_it_out_and_tells_the_owner_once() {
    let h = harness_with(config());
    let owner = from("198.51.100.7");
    let attacker = from("203.0.113.9");
    let ana = sign_up(&h, "ana@example.com", &owner).await;
    let mails_before = h.mails().await.len();
    for n in 1..=9 {
        let err = sign_in(&h, "ana@example.com", WRONG, &attacker)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidCredentials),
            "failure {n}: {err:?}"
        );
        assert_eq!(
            count(&h, ana, AuthEventKind::AccountLocked).await,
            0,
            "locked at {n}"
        );
    }
    let err = sign_in(&h, "ana@example.com", WRONG, &attacker)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
    assert_eq!(count(&h, ana, AuthEventKind::AccountLocked).await, 1);
    // Locked: even the right password is refused, before any hashing.
    let err = sign_in(&h, "ana@example.com", GOOD, &attacker)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    let refusal = events(&h, ana)
        .await
        .into_iter()
        .find(|e| e.kind == AuthEventKind::RateLimited)
        .unwrap();
    assert_eq!(refusal.reason.as_deref(), Some("signin_fail_account_ip"));
    // More refused attempts send no second notice, and a flood of refusals writes one
    // login-log line a minute, not one each.
    for _ in 0..5 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &attacker).await;
    }
    assert_eq!(count(&h, ana, AuthEventKind::RateLimited).await, 1);
    h.clock.advance(Duration::from_secs(61));
    let _ = sign_in(&h, "ana@example.com", WRONG, &attacker).await;
    assert_eq!(count(&h, ana, AuthEventKind::RateLimited).await, 2);
    let notices: Vec<_> = h.mails().await[mails_before..]
        .iter()
        .filter(|m| m.message.kind == MessageKind::AccountLocked)
        .cloned()
        .collect();
    assert_eq!(notices.len(), 1);
    let notice = &notices[0];
    assert!(notice.text.contains("203.0.113.9"), "{}", notice.text);
    assert!(notice.text.contains("Firefox on Linux"), "{}", notice.text);
    assert!(
        notice.text.contains(" at 2026-01-01T00:00:"),
        "{}",
        notice.text
    );
    assert!(
        notice
            .text
            .contains("https://app.example.com/unblock?token=")
    );
    // The owner's own client is not locked out.
    tokens(sign_in(&h, "ana@example.com", GOOD, &owner).await.unwrap());
    // The window passes: the attacker's client may try again.
    h.clock.advance(Duration::from_secs(30 * 60));
    tokens(
        sign_in(&h, "ana@example.com", GOOD, &attacker)
            .await
            .unwrap(),
    );
}

on_both_adapters!(a_lockout_is_kept_listed_and_lifted_on_every_adapter);

/// The lockout, its notice, the administrators' list (one record updated by
/// compare-and-swap) and lifting, on the memory adapter, a real sled directory and the
/// machine's PostgreSQL.
async fn a_lockout_is_kept_listed_and_lifted_on_every_adapter<S>(h: Harness<S>) {
    let owner = from("198.51.100.7");
    let attacker = from("203.0.113.9");
    let ana = tokens(
        support::password_sign_up(&h, "ana@example.com", GOOD, &owner)
            .await
            .unwrap(),
    )
    .user_id;
    let passwords = h.auth.passwords();
    for _ in 0..10 {
        let err = passwords
            .sign_in("ana@example.com", &Password::new(WRONG), &attacker)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    }
    let err = passwords
        .sign_in("ana@example.com", &Password::new(GOOD), &attacker)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    let notices = h.mails().await;
    assert_eq!(
        notices
            .iter()
            .filter(|m| m.message.kind == MessageKind::AccountLocked)
            .count(),
        1
    );
    let blocks = h.auth.protection().blocks().await.unwrap();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(
        (blocks[0].user_id, blocks[0].network.as_str()),
        (Some(ana), "203.0.113.9")
    );
    h.auth
        .protection()
        .lift(&blocks[0].id, &RequestContext::new())
        .await
        .unwrap();
    assert!(h.auth.protection().blocks().await.unwrap().is_empty());
    tokens(
        passwords
            .sign_in("ana@example.com", &Password::new(GOOD), &attacker)
            .await
            .unwrap(),
    );
}

/// RL-07: while a client is locked out of her password, the owner still signs in with her
/// passkey and with a link to her mailbox, and with her password from a device she
/// signed in from before, even once guesses from a crowd of clients spent the account's
/// budget of all clients.
#[tokio::test]
async fn rl07_a_lockout_never_blocks_the_owners_passkey_magic_link_or_known_device() {
    use portcullis::Registrant;
    let h = harness_with(config());
    let home = from("198.51.100.7");
    let set = tokens(
        support::password_sign_up(&h, "ana@example.com", GOOD, &home)
            .await
            .unwrap(),
    );
    let ana = set.user_id;
    let mut key = support::authenticator::TestKey::new("https://app.example.com");
    let passkeys = h.auth.passkeys();
    let (token, options) = passkeys
        .start_registration(Registrant::Session(set.session_id), &home)
        .await
        .unwrap();
    passkeys
        .finish_registration(&token, &key.register(&options), None, &home)
        .await
        .unwrap();
    // Each way in is tried while the lockout holds (a completed sign-in lifts it: success
    // disregards earlier failures, RL-02), so the lockout is made anew for each.
    for (round, way) in ["passkey", "magic link", "known device"]
        .into_iter()
        .enumerate()
    {
        // Ten clients, ten wrong passwords each: each is locked out, and the account's
        // budget of all clients (100) is spent.
        for client in 0..10 {
            let attacker = from(&format!("203.0.{}.9", round * 10 + client));
            for _ in 0..10 {
                let _ = sign_in(&h, "ana@example.com", WRONG, &attacker).await;
            }
        }
        let locks: Vec<String> = events(&h, ana)
            .await
            .into_iter()
            .filter(|e| e.kind == AuthEventKind::AccountLocked)
            .filter_map(|e| e.reason)
            .collect();
        let count = |reason: &str| locks.iter().filter(|r| *r == reason).count();
        assert_eq!(count("signin_fail_account_ip"), 10 * (round + 1), "{way}");
        assert_eq!(count("signin_fail_account"), round + 1, "{way}");
        // A new client cannot use the password…
        let travel = from(&format!("192.0.2.{}", 40 + round));
        let err = sign_in(&h, "ana@example.com", GOOD, &travel)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "rate_limited", "{way}");
        // …but the owner gets in.
        match way {
            "passkey" => {
                let (token, options) = passkeys.start_login(None, &travel).await.unwrap();
                let signed_in = passkeys
                    .finish_login(&token, &key.sign(&options), &travel)
                    .await
                    .unwrap();
                tokens(signed_in);
            }
            "magic link" => {
                h.clock.advance(Duration::from_secs(60));
                let sent = h
                    .auth
                    .magic_links()
                    .send("ana@example.com", &portcullis::LinkOptions::new(), &travel)
                    .await
                    .unwrap();
                let link = support::link_token(&h.last_mail().await);
                let proof =
                    portcullis::DeviceProof::none().with_poll_token(sent.poll_token.clone());
                let signed_in = h.auth.magic_links().verify(&link, &proof, &travel).await;
                tokens(signed_in.unwrap());
            }
            _ => {
                // The password, from the home network she has a live session from.
                tokens(sign_in(&h, "ana@example.com", GOOD, &home).await.unwrap());
            }
        }
    }
}

/// The lockout notice's link lifts the lockout once and, if it was not the owner, starts a
/// password reset.
#[tokio::test]
async fn the_notices_link_unblocks_once_and_can_start_a_reset() {
    let h = harness_with(config());
    let owner = from("198.51.100.7");
    let ana = sign_up(&h, "ana@example.com", &owner).await;
    let traveller = from("203.0.113.9");
    for _ in 0..10 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &traveller).await;
    }
    assert_eq!(
        sign_in(&h, "ana@example.com", GOOD, &traveller)
            .await
            .unwrap_err()
            .code(),
        "rate_limited"
    );
    let notice = h.last_mail().await;
    assert_eq!(notice.message.kind, MessageKind::AccountLocked);
    let url = url::Url::parse(notice.message.link.as_ref().unwrap().secret()).unwrap();
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let token = UnblockToken::new(token);
    let unblocked = h
        .auth
        .protection()
        .unblock(&token, true, &traveller)
        .await
        .unwrap();
    assert_eq!(unblocked.user_id, ana);
    assert!(unblocked.reset.is_some());
    assert_eq!(h.last_mail().await.message.kind, MessageKind::PasswordReset);
    assert_eq!(count(&h, ana, AuthEventKind::LockoutLifted).await, 1);
    // Lifted: the traveller's client signs in again.
    tokens(
        sign_in(&h, "ana@example.com", GOOD, &traveller)
            .await
            .unwrap(),
    );
    // Once only.
    let again = h
        .auth
        .protection()
        .unblock(&token, false, &traveller)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::InvalidToken), "{again:?}");
}

/// Administrators list lockouts and throttles and lift them.
#[tokio::test]
async fn administrators_list_and_lift_lockouts() {
    let h = harness_with(config());
    let owner = from("198.51.100.7");
    let ana = sign_up(&h, "ana@example.com", &owner).await;
    let attacker = from("203.0.113.9");
    for _ in 0..10 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &attacker).await;
    }
    let blocks = h.auth.protection().blocks().await.unwrap();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let block = &blocks[0];
    assert_eq!(block.kind, BlockKind::AccountLockout);
    assert_eq!(block.user_id, Some(ana));
    assert_eq!(block.network, "203.0.113.9");
    assert_eq!(block.until, block.since + Duration::from_secs(15 * 60));
    let lifted = h
        .auth
        .protection()
        .lift(&block.id, &RequestContext::new())
        .await
        .unwrap();
    assert_eq!(lifted.id, block.id);
    assert!(h.auth.protection().blocks().await.unwrap().is_empty());
    tokens(
        sign_in(&h, "ana@example.com", GOOD, &attacker)
            .await
            .unwrap(),
    );
    let err = h
        .auth
        .protection()
        .lift(&block.id, &RequestContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // The window passes by itself: nothing is listed.
    for _ in 0..10 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &attacker).await;
    }
    assert_eq!(h.auth.protection().blocks().await.unwrap().len(), 1);
    h.clock.advance(Duration::from_secs(15 * 60));
    assert!(h.auth.protection().blocks().await.unwrap().is_empty());
}

/// RL-06, RL-09: one client spraying one password over 1,000 accounts is stopped at the
/// 100th failure (the default per-address budget of a day), though no account reached its
/// own budget; the 101st attempt is refused before any password work, throttling is
/// listed and streamed as `ip_throttled`, and the next day the client may try again.
#[tokio::test]
async fn rl06_spraying_one_password_over_1000_accounts_stops_at_the_100th_failure() {
    let h = harness_with(config());
    let seed = sign_up(&h, "seed@example.com", &from("198.51.100.7")).await;
    let hash = h.store.get_user(seed).await.unwrap().unwrap().password_hash;
    let now = h.auth.now();
    for n in 0..1000 {
        let mut user = User::new(UserId::generate(), now);
        user.email = Some(format!("user{n}@example.com").parse().unwrap());
        user.email_verified = true;
        user.password_hash = hash.clone();
        h.store.create_user(&user).await.unwrap();
    }
    let mut stream = h.auth.events();
    let sprayer = from("203.0.113.66");
    let (mut wrong, mut limited) = (0, 0);
    let started = std::time::Instant::now();
    let mut first_refused = None;
    let mut throttled = Vec::new();
    let mut refusals_logged = 0;
    for n in 0..1000 {
        // Drained as it goes: a subscriber more than 1024 events behind loses the oldest.
        while let Ok(event) = stream.try_recv() {
            match event.kind {
                AuthEventKind::IpThrottled => throttled.push(event),
                AuthEventKind::RateLimited => refusals_logged += 1,
                _ => {}
            }
        }
        match sign_in(
            &h,
            &format!("user{n}@example.com"),
            "Summer2026!Summer2026!",
            &sprayer,
        )
        .await
        {
            Err(Error::InvalidCredentials) => wrong += 1,
            Err(Error::RateLimited { .. }) => {
                limited += 1;
                first_refused.get_or_insert(n);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((wrong, limited), (100, 900));
    assert_eq!(first_refused, Some(100));
    eprintln!("spraying 1,000 accounts took {:?}", started.elapsed());
    while let Ok(event) = stream.try_recv() {
        match event.kind {
            AuthEventKind::IpThrottled => throttled.push(event),
            AuthEventKind::RateLimited => refusals_logged += 1,
            _ => {}
        }
    }
    assert_eq!(throttled.len(), 1);
    // 900 refusals on 900 accounts, one minute, one client: one line in the login log.
    assert_eq!(refusals_logged, 1);
    assert_eq!(throttled[0].reason.as_deref(), Some("signin_fail_ip"));
    let blocks = h.auth.protection().blocks().await.unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b.kind == BlockKind::IpThrottle && b.network == "203.0.113.66")
    );
    // No account reached its own budget.
    assert!(blocks.iter().all(|b| b.kind != BlockKind::AccountLockout));
    // A day later the budget has drained.
    h.clock.advance(Duration::from_secs(2 * 86_400));
    assert!(matches!(
        sign_in(
            &h,
            "user999@example.com",
            "Summer2026!Summer2026!",
            &sprayer
        )
        .await,
        Err(Error::InvalidCredentials)
    ));
}

/// The per-address budgets count an IPv6 client by its /64.
#[tokio::test]
async fn an_ipv6_client_is_counted_by_its_64() {
    let mut config = config();
    config.limits.failures_per_ip = portcullis::RateLimit::sliding(4, Duration::from_secs(3600));
    let h = harness_with(config);
    for n in 1..=4 {
        let ctx = from(&format!("2001:db8:7:7::{n}"));
        let err = sign_in(&h, &format!("nobody{n}@example.com"), WRONG, &ctx)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials));
    }
    let err = sign_in(
        &h,
        "nobody9@example.com",
        WRONG,
        &from("2001:db8:7:7:ffff::1"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    // Another /64 is another client.
    let err = sign_in(&h, "nobody9@example.com", WRONG, &from("2001:db8:7:8::1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
}

/// Sign-ups per client address: the default 50 a minute, the 51st refused and the
/// address listed as throttled.
#[tokio::test]
async fn sign_ups_per_client_stop_at_the_51st_in_a_minute() {
    let mut config = config();
    config.limits.sends_per_ip = portcullis::RateLimit::sliding(1000, Duration::from_secs(3600));
    config.limits.sign_ups = portcullis::RateLimit::sliding(10_000, Duration::from_secs(60));
    assert_eq!(config.limits.sign_ups_per_ip.max, 50);
    let h = harness_with(config);
    let client = from("203.0.113.50");
    for n in 0..50 {
        h.auth
            .passwords()
            .sign_up(
                &format!("new{n}@example.com"),
                &Password::new(GOOD),
                &client,
            )
            .await
            .unwrap();
    }
    let err = h
        .auth
        .passwords()
        .sign_up("new50@example.com", &Password::new(GOOD), &client)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    let blocks = h.auth.protection().blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].scope, "sign_up_ip");
    h.clock.advance(Duration::from_secs(120));
    h.auth
        .passwords()
        .sign_up("new50@example.com", &Password::new(GOOD), &client)
        .await
        .unwrap();
}

/// The installation's lists: a denied network is refused outright and logged; an allowed
/// one answers to no per-address budget (the account's still apply).
#[tokio::test]
async fn denied_networks_are_refused_and_allowed_ones_are_not_throttled() {
    let mut config = config();
    config.protection.deny = vec!["203.0.113.0/24".parse().unwrap()];
    config.protection.allow = vec![
        "198.51.100.0/24".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
    ];
    config.limits.failures_per_ip = portcullis::RateLimit::sliding(3, Duration::from_secs(3600));
    let h = harness_with(config);
    let mut stream = h.auth.events();
    let err = sign_in(&h, "ana@example.com", GOOD, &from("203.0.113.200"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IpBlocked), "{err:?}");
    assert_eq!(stream.try_recv().unwrap().kind, AuthEventKind::IpDenied);
    let err = sign_in(&h, "ana@example.com", GOOD, &from("::ffff:203.0.113.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::IpBlocked),
        "IPv4-mapped addresses are matched as IPv4"
    );
    for n in 0..10 {
        let office = from("198.51.100.20");
        let err = sign_in(&h, &format!("u{n}@example.com"), WRONG, &office)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{n}: {err:?}");
    }
    for n in 0..3 {
        let _ = sign_in(&h, &format!("u{n}@example.com"), WRONG, &from("192.0.2.1")).await;
    }
    let err = sign_in(&h, "u9@example.com", WRONG, &from("192.0.2.1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
}

/// RL-10 with the built-in proof of work: after three failures the client must solve a
/// challenge, a solution works once, a forged or expired one is refused, and a known
/// device is never asked.
#[tokio::test]
async fn rl10_proof_of_work_is_asked_after_three_failures_and_a_solution_works_once() {
    let h = harness_built(config(), |b| b.proof_of_work());
    let home = from("198.51.100.7");
    let ana = sign_up(&h, "ana@example.com", &home).await;
    let client = from("203.0.113.9");
    for _ in 0..3 {
        assert!(matches!(
            sign_in(&h, "ana@example.com", WRONG, &client).await,
            Err(Error::InvalidCredentials)
        ));
    }
    let err = sign_in(&h, "ana@example.com", GOOD, &client)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
    let challenge = h.auth.protection().proof_of_work().unwrap();
    assert_eq!(challenge.difficulty, 16);
    let solution = portcullis::protect::solve(&challenge.challenge, challenge.difficulty);
    let started = std::time::Instant::now();
    let proven = client.clone().with_bot_proof(&solution);
    tokens(sign_in(&h, "ana@example.com", GOOD, &proven).await.unwrap());
    eprintln!(
        "a proof was checked and the sign-in done in {:?}",
        started.elapsed()
    );
    // That client signed in, so it is a known device now. Another one, risky too, cannot
    // use the same solution again.
    let other = from("203.0.113.10");
    for _ in 0..3 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &other).await;
    }
    let replayed = other.clone().with_bot_proof(&solution);
    let err = sign_in(&h, "ana@example.com", GOOD, &replayed)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
    let mut reasons: Vec<String> = events(&h, ana)
        .await
        .into_iter()
        .filter(|e| e.kind == AuthEventKind::BotCheckFailed)
        .filter_map(|e| e.reason)
        .collect();
    reasons.reverse();
    assert_eq!(reasons, ["missing", "invalid"]);
    // Forged: another difficulty, a bad seal, too little work.
    let fresh = h.auth.protection().proof_of_work().unwrap();
    let forged = fresh.challenge.replacen("v1.16.", "v1.8.", 1);
    let cheap = portcullis::protect::solve(&forged, 8);
    let with = |proof: &str| other.clone().with_bot_proof(proof);
    assert!(matches!(
        sign_in(&h, "ana@example.com", GOOD, &with(&cheap)).await,
        Err(Error::BotCheckRequired)
    ));
    let lazy = format!("{}:1", fresh.challenge);
    assert!(matches!(
        sign_in(&h, "ana@example.com", GOOD, &with(&lazy)).await,
        Err(Error::BotCheckRequired)
    ));
    // Expired.
    let late = portcullis::protect::solve(&fresh.challenge, 16);
    h.clock.advance(Duration::from_secs(5 * 60));
    let err = sign_in(&h, "ana@example.com", GOOD, &with(&late))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
    // The owner's known device is never asked.
    tokens(sign_in(&h, "ana@example.com", GOOD, &home).await.unwrap());
}

/// An organization that asks for a bot check always gets one, at sign-up too.
#[tokio::test]
async fn an_organization_can_ask_for_a_bot_check_always() {
    let h = harness_built(config(), |b| b.proof_of_work());
    set_security(&h, |s| {
        s.bot_check = portcullis::directory::BotCheckRule::Always
    })
    .await;
    let client = from("203.0.113.9");
    let err = h
        .auth
        .passwords()
        .sign_up("new@example.com", &Password::new(GOOD), &client)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
    let challenge = h.auth.protection().proof_of_work().unwrap();
    let solved = client.clone().with_bot_proof(&portcullis::protect::solve(
        &challenge.challenge,
        challenge.difficulty,
    ));
    h.auth
        .passwords()
        .sign_up("new@example.com", &Password::new(GOOD), &solved)
        .await
        .unwrap();
}

/// A CAPTCHA-like service that is down refuses (fails closed), and one that says no
/// refuses, both logged.
#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl BotCheck for Down {
    async fn verify(&self, _: &BotProof, _: &RequestContext) -> Result<bool, Error> {
        Err(Error::Unavailable {
            service: "a bot check",
            source: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn a_bot_check_service_that_is_down_refuses() {
    let h = harness_built(config(), |b| b.bot_check(Down));
    let ana = sign_up(&h, "ana@example.com", &from("198.51.100.7")).await;
    let client = from("203.0.113.9");
    for _ in 0..3 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &client).await;
    }
    let err = sign_in(
        &h,
        "ana@example.com",
        GOOD,
        &client.clone().with_bot_proof("anything"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
    let failed = events(&h, ana)
        .await
        .into_iter()
        .find(|e| e.kind == AuthEventKind::BotCheckFailed)
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("unavailable"));
}

async fn user_with_password(h: &Harness, email: &str, password: &str) -> UserId {
    let mut user = User::new(UserId::generate(), h.auth.now());
    user.email = Some(email.parse().unwrap());
    user.email_verified = true;
    user.password_hash = Some(support::policy_hash(password));
    h.store.create_user(&user).await.unwrap();
    user.id
}

/// A password found breached at sign-in: by default no session opens until a new one is
/// chosen; the change finishes the sign-in, and the old password stops working.
#[tokio::test]
async fn a_breached_password_at_sign_in_must_be_changed_before_a_session_opens() {
    let h = harness_with(config());
    let ana = user_with_password(&h, "ana@example.com", "password123").await;
    let ctx = from("198.51.100.7");
    let held = sign_in(&h, "ana@example.com", "password123", &ctx)
        .await
        .unwrap();
    let SignIn::PasswordChangeRequired(challenge) = held else {
        panic!("{held:?}");
    };
    assert!(h.auth.sessions().list(ana).await.unwrap().is_empty());
    // A weak replacement is refused and the token stays usable.
    let err = h
        .auth
        .passwords()
        .change_for_sign_in(
            &challenge.change_token,
            &Password::new("password1234"),
            &ctx,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    tokens(
        h.auth
            .passwords()
            .change_for_sign_in(&challenge.change_token, &Password::new(GOOD), &ctx)
            .await
            .unwrap(),
    );
    assert!(
        h.auth
            .passwords()
            .change_for_sign_in(&challenge.change_token, &Password::new(GOOD), &ctx)
            .await
            .is_err()
    );
    assert!(matches!(
        sign_in(&h, "ana@example.com", "password123", &ctx).await,
        Err(Error::InvalidCredentials)
    ));
    tokens(sign_in(&h, "ana@example.com", GOOD, &ctx).await.unwrap());
    let reasons: Vec<String> = events(&h, ana)
        .await
        .into_iter()
        .filter(|e| e.kind == AuthEventKind::BreachedPassword)
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["change_required"]);
}

#[derive(Debug)]
struct CheckerDown;

#[async_trait::async_trait]
impl portcullis::BreachedPasswords for CheckerDown {
    async fn is_breached(&self, _: &Password) -> Result<bool, Error> {
        Err(Error::Unavailable {
            service: "pwned passwords",
            source: "timed out".into(),
        })
    }
}

/// An organization may only warn of a breached password; a checker that cannot answer is
/// logged, and the organization chooses whether that lets the sign-in through.
#[tokio::test]
async fn breached_passwords_warn_or_fail_open_or_closed_as_the_organization_chooses() {
    let h = harness_built(config(), |b| b.breached_passwords(CheckerDown));
    let ctx = from("198.51.100.7");
    let bob = user_with_password(&h, "bob@example.com", "password123").await;
    set_security(&h, |s| {
        s.breached_password = portcullis::directory::BreachedAction::Warn
    })
    .await;
    tokens(
        sign_in(&h, "bob@example.com", "password123", &ctx)
            .await
            .unwrap(),
    );
    let ana = user_with_password(&h, "ana@example.com", GOOD).await;
    // The checker is down: open by default…
    tokens(sign_in(&h, "ana@example.com", GOOD, &ctx).await.unwrap());
    // …closed when the organization says so.
    set_security(&h, |s| {
        s.breach_checker_down = portcullis::directory::FailMode::Closed
    })
    .await;
    let err = sign_in(&h, "ana@example.com", GOOD, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let reasons = |events: Vec<AuthEvent>| -> Vec<String> {
        events
            .into_iter()
            .filter(|e| e.kind == AuthEventKind::BreachedPassword)
            .filter_map(|e| e.reason)
            .collect()
    };
    assert_eq!(reasons(events(&h, bob).await), ["warned"]);
    assert_eq!(
        reasons(events(&h, ana).await),
        ["checker_unavailable", "checker_unavailable"]
    );
}

#[derive(Debug)]
struct Atlas;

impl portcullis::Locate for Atlas {
    fn place(&self, ip: IpAddr) -> Option<String> {
        Some(ip.to_string())
    }

    fn coordinates(&self, ip: IpAddr) -> Option<Coordinates> {
        match ip.to_string().as_str() {
            "198.51.100.7" => Some(Coordinates {
                lat: 48.8566,
                lon: 2.3522,
            }), // Paris
            "203.0.113.9" => Some(Coordinates {
                lat: 35.6762,
                lon: 139.6503,
            }), // Tokyo
            _ => None,
        }
    }
}

/// RL-11: a new device, success after many failures and impossible travel are logged as
/// `suspicious_sign_in`, and an organization that asks emails the owner.
#[tokio::test]
async fn rl11_suspicious_sign_ins_are_logged_and_the_owner_told() {
    let h = harness_built(config(), |b| b.locate(Atlas));
    set_security(&h, |s| s.new_sign_in_email = true).await;
    let paris = from("198.51.100.7");
    let ana = sign_up(&h, "ana@example.com", &paris).await;
    // The same device again: nothing.
    h.clock.advance(Duration::from_secs(3600));
    tokens(sign_in(&h, "ana@example.com", GOOD, &paris).await.unwrap());
    assert_eq!(count(&h, ana, AuthEventKind::SuspiciousSignIn).await, 0);
    // Tokyo an hour later, after five failures there.
    h.clock.advance(Duration::from_secs(3600));
    let tokyo = from("203.0.113.9");
    for _ in 0..5 {
        let _ = sign_in(&h, "ana@example.com", WRONG, &tokyo).await;
    }
    let mails = h.mails().await.len();
    tokens(sign_in(&h, "ana@example.com", GOOD, &tokyo).await.unwrap());
    let mut signals: Vec<String> = events(&h, ana)
        .await
        .into_iter()
        .filter(|e| e.kind == AuthEventKind::SuspiciousSignIn)
        .filter_map(|e| e.reason)
        .collect();
    signals.sort();
    assert_eq!(
        signals,
        ["after_failures", "impossible_travel", "new_device"]
    );
    let notice = &h.mails().await[mails..];
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].message.kind, MessageKind::NewSignIn);
    assert!(notice[0].text.contains("203.0.113.9"));
}

/// The event stream carries every recorded event to subscribers as it happens.
#[tokio::test]
async fn subscribers_receive_every_event() {
    let h = harness_with(config());
    let mut first = h.auth.events();
    let mut second = h.auth.events();
    let ana = sign_up(&h, "ana@example.com", &from("198.51.100.7")).await;
    let _ = sign_in(&h, "ana@example.com", WRONG, &from("198.51.100.7")).await;
    let logged = events(&h, ana).await;
    for stream in [&mut first, &mut second] {
        let mut seen = Vec::new();
        while let Ok(event) = stream.try_recv() {
            if event.user_id == Some(ana) {
                seen.push(event.id);
            }
        }
        let mut expected: Vec<_> = logged.iter().map(|e| e.id).collect();
        expected.reverse();
        assert_eq!(seen, expected);
    }
}

/// Pepper rotation: a code, a refresh token, an API key and a backup code made under the
/// old pepper work under the new ring; new secrets use the new pepper; without the old
/// pepper in the ring they stop working.
#[tokio::test]
async fn secrets_made_before_a_pepper_rotation_still_work_after_it() {
    use portcullis::crypto::Pepper;
    use portcullis::directory::NewApiKey;
    let old = portcullis::testing::test_pepper();
    let new = Pepper::from_bytes([0x33; 32]).unwrap();
    let store = portcullis_memory::MemoryStore::new();
    let clock = portcullis::ManualClock::fixed();
    let before = support::harness_at(store.clone(), clock.clone(), config(), |b| b);
    let ctx = from("198.51.100.7");
    let set = tokens(
        support::password_sign_up(&before, "ana@example.com", GOOD, &ctx)
            .await
            .unwrap(),
    );
    let org = before.auth.orgs().default_org().await.unwrap();
    let key = before
        .auth
        .api_keys()
        .create(org.id, &NewApiKey::new("ci", &["users:read"]))
        .await
        .unwrap();
    let bo = tokens(
        support::password_sign_up(&before, "bo@example.com", GOOD, &ctx)
            .await
            .unwrap(),
    );
    let (_, backup) = support::enable_totp(&before, bo.user_id).await;
    clock.advance(Duration::from_secs(60));
    let request = before
        .auth
        .codes()
        .email()
        .send("ana@example.com", &ctx)
        .await
        .unwrap();
    let code = support::code_of(&before.last_mail().await.message);

    let rotated = support::harness_at(store.clone(), clock.clone(), config(), |b| {
        b.pepper(new.clone()).previous_pepper(old.clone())
    });
    rotated.auth.api_keys().verify(&key.secret).await.unwrap();
    let refreshed = rotated
        .auth
        .tokens()
        .refresh(&set.refresh_token, &ctx)
        .await
        .unwrap();
    tokens(
        rotated
            .auth
            .codes()
            .email()
            .verify(request.request_id, &code, &ctx)
            .await
            .unwrap(),
    );
    let held = rotated
        .auth
        .passwords()
        .sign_in("bo@example.com", &Password::new(GOOD), &ctx)
        .await
        .unwrap();
    let SignIn::MfaRequired(step) = held else {
        panic!("{held:?}");
    };
    let proof = portcullis::MfaProof::BackupCode(backup[0].clone());
    tokens(
        rotated
            .auth
            .mfa()
            .verify(&step.mfa_token, &proof, &ctx)
            .await
            .unwrap(),
    );

    // Only the new pepper: the old key is gone, the rotated refresh token still works.
    let only_new = support::harness_at(store, clock, config(), |b| b.pepper(new.clone()));
    let err = only_new
        .auth
        .api_keys()
        .verify(&key.secret)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    only_new
        .auth
        .tokens()
        .refresh(&refreshed.refresh_token, &ctx)
        .await
        .unwrap();
}

/// The ring refuses a pepper given twice and more than eight peppers.
#[test]
fn the_pepper_ring_is_checked() {
    use portcullis::crypto::{Pepper, SecretHasher};
    let a = Pepper::from_bytes([1u8; 32]).unwrap();
    let b = Pepper::from_bytes([2u8; 32]).unwrap();
    assert!(SecretHasher::ring(&a, &[b.clone(), a.clone()]).is_err());
    let many: Vec<Pepper> = (3..11u8)
        .map(|n| Pepper::from_bytes([n; 32]).unwrap())
        .collect();
    assert!(SecretHasher::ring(&a, &many).is_err());
    let ring = SecretHasher::ring(&a, &[b]).unwrap();
    assert_eq!(ring.peppers(), 2);
}

/// A loopback server speaking `siteverify`: `success` for the token `good`, a score of 0.9
/// for it, `false` for anything else. Answers until dropped; records the forms it got.
async fn siteverify() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/siteverify", listener.local_addr().unwrap());
    let forms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = forms.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then a body of the length they name.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&request).to_string();
            let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
            let success = body.contains("response=good");
            seen.lock().unwrap().push(body);
            let json = format!("{{\"success\":{success},\"score\":0.9,\"error-codes\":[]}}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (url, forms)
}

/// Turnstile (hCaptcha and reCAPTCHA answer alike) through its `siteverify` protocol: the
/// secret, the token and the client's address are posted; `success` decides; a provider
/// that cannot be reached refuses (fails closed) unless told to fail open.
#[tokio::test]
async fn captcha_providers_are_asked_and_fail_closed_when_they_cannot_answer() {
    use portcullis::protect::captcha::Captcha;
    let (url, forms) = siteverify().await;
    let ctx = from("203.0.113.9");
    let turnstile = Captcha::turnstile("the-secret").unwrap().verify_url(&url);
    assert!(
        turnstile
            .verify(&BotProof::new("good"), &ctx)
            .await
            .unwrap()
    );
    assert!(!turnstile.verify(&BotProof::new("bad"), &ctx).await.unwrap());
    let form = forms.lock().unwrap()[0].clone();
    assert!(
        form.contains("secret=the-secret") && form.contains("remoteip=203.0.113.9"),
        "{form}"
    );
    let strict = Captcha::recaptcha("s")
        .unwrap()
        .verify_url(&url)
        .min_score(0.95);
    assert!(!strict.verify(&BotProof::new("good"), &ctx).await.unwrap());
    // Nothing listens on the port of a listener just closed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/siteverify", listener.local_addr().unwrap())
    };
    let down = Captcha::hcaptcha("s").unwrap().verify_url(&closed);
    assert!(matches!(
        down.verify(&BotProof::new("good"), &ctx).await,
        Err(Error::Unavailable { .. })
    ));
    let lenient = Captcha::hcaptcha("s")
        .unwrap()
        .verify_url(&closed)
        .fail_open(true);
    assert!(lenient.verify(&BotProof::new("good"), &ctx).await.unwrap());
    // In the engine: a sign-up that must pass it is refused while the provider is down.
    let h = harness_built(config(), |b| {
        b.bot_check(Captcha::turnstile("s").unwrap().verify_url(&closed))
    });
    set_security(&h, |s| {
        s.bot_check = portcullis::directory::BotCheckRule::Always
    })
    .await;
    let err = h
        .auth
        .passwords()
        .sign_up(
            "new@example.com",
            &Password::new(GOOD),
            &ctx.clone().with_bot_proof("good"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BotCheckRequired), "{err:?}");
}
