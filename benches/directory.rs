//! The directory's hot paths: a permission check on a token's claims (no I/O), the same
//! check against the store (`rbac().check`), and looking a user up by email among
//! 1,000,000 users on the memory adapter — with the memory those users take.
//!
//! `cargo bench --bench directory`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::model::{User, UserId};
use portcullis::store::UserStore;
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{
    AuthMethod, Config, ManualClock, NewOrg, Portcullis, RequestContext, RoleSpec, SignIn,
};
use portcullis_memory::MemoryStore;
use tokio::runtime::Runtime;

const USERS: usize = 1_000_000;

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn directory(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::fixed();
    let auth = Portcullis::builder(Config::new("https://app.example.com"))
        .store(store.clone())
        .clock(clock.clone())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new();

    // A member of an organization with 20 permissions across 3 roles, one a wildcard.
    let (claims, ana, org) = rt.block_on(async {
        let org = auth
            .orgs()
            .create(NewOrg::new("Acme", "acme"))
            .await
            .unwrap();
        let rbac = auth.rbac();
        let mut names = Vec::new();
        for resource in ["invoices", "payments", "customers", "reports", "settings"] {
            for action in ["read", "write", "delete", "export"] {
                let name = format!("{resource}:{action}");
                rbac.define_permission(org.id, &name, None).await.unwrap();
                names.push(name);
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let clerk = rbac
            .create_role(org.id, &RoleSpec::new("clerk", &refs[..8]))
            .await
            .unwrap();
        let viewer = rbac
            .create_role(org.id, &RoleSpec::new("viewer", &refs[8..16]))
            .await
            .unwrap();
        let admin = rbac
            .create_role(org.id, &RoleSpec::new("admin", &["settings:*"]))
            .await
            .unwrap();
        let in_acme = ctx.clone().with_org(org.id);
        let ana = auth
            .users()
            .create(portcullis::NewUser::with_email("ana@example.com"), &in_acme)
            .await
            .unwrap();
        rbac.add_member(ana.id, org.id, &[clerk.id, viewer.id, admin.id], &ctx)
            .await
            .unwrap();
        let SignIn::Complete(set) = auth
            .complete_first_factor(ana.id, AuthMethod::Email, None, &in_acme)
            .await
            .unwrap()
        else {
            panic!("no MFA")
        };
        let claims = auth.tokens().verify(&set.access_token).await.unwrap();
        (claims, ana.id, org.id)
    });

    // What is timed answers right.
    assert_eq!(claims.perms.len(), 17);
    assert!(claims.has_permission("settings:write") && claims.has_permission("payments:export"));
    assert!(!claims.has_permission("payments:refund"));
    let mut g = c.benchmark_group("directory");
    g.bench_function("Claims::has_permission (17 held, wildcard last)", |b| {
        b.iter(|| black_box(&claims).has_permission(black_box("settings:write")))
    });
    g.bench_function("Claims::has_permission (17 held, exact)", |b| {
        b.iter(|| black_box(&claims).has_permission(black_box("payments:export")))
    });
    g.bench_function("Claims::has_permission (17 held, refused)", |b| {
        b.iter(|| black_box(&claims).has_permission(black_box("payments:refund")))
    });
    g.bench_function("rbac().check (memory)", |b| {
        b.iter(|| {
            rt.block_on(auth.rbac().check(ana, org, black_box("settings:write")))
                .unwrap()
        })
    });

    // One million users.
    let before = resident_bytes();
    rt.block_on(async {
        for i in 0..USERS {
            let mut user = User::new(UserId::generate(), auth.now());
            user.email = Some(format!("user{i}@example.com").parse().unwrap());
            store.create_user(&user).await.unwrap();
        }
    });
    let per_user = (resident_bytes().saturating_sub(before)) / USERS as u64;
    println!("memory adapter: {per_user} bytes of resident memory per user ({USERS} users)");
    let mut n = 0usize;
    g.bench_function("users().get_by_email among 1,000,000 (memory)", |b| {
        b.iter(|| {
            n = (n + 7919) % USERS;
            let email = format!("user{n}@example.com");
            rt.block_on(auth.users().get_by_email(&email)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, directory);
criterion_main!(benches);
