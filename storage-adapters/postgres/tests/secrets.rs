//! Canary test (invariant 1; ML-04, OOB-07, PW, MFA, TOK rows): every secret handed out
//! by full ceremonies on a real PostgreSQL — link and poll tokens, device codes, email
//! codes, a password, a TOTP secret, backup codes, access and refresh tokens, an API key —
//! is absent from every row of every table, as text and as the hex `bytea` prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use portcullis::crypto::Password;
use portcullis::directory::NewApiKey;
use portcullis::{Config, DeviceProof, LinkOptions};
use portcullis_postgres::PgStore;
use portcullis_test_support::{self as support, app_code, code_of, ctx, link_token};

/// Every row of every table of the store's schema, as Postgres prints rows
/// (`bytea` as `\x` and lowercase hex).
async fn dump(store: &PgStore) -> String {
    let schema = store.schema_name().unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(tables.len() >= 20, "{tables:?}");
    let mut out = String::new();
    for table in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{schema}\".\"{table}\" t"
        );
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap();
        out.push_str(&table);
        out.push('\n');
        out.push_str(&rows);
        out.push('\n');
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_secret_is_in_any_table() {
    let mut config = Config::new("https://app.example.com");
    // Eight digits, so a code cannot turn up by chance among the timestamps and hashes.
    config.codes.digits = 8;
    let Some(h) = support::pg_harness_built(config, |b| b).await else {
        return;
    };
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut dumps = String::new();

    // A magic link, verified from another browser with the device code.
    let sent = h
        .auth
        .magic_links()
        .send("ana@example.com", &LinkOptions::new(), &ctx())
        .await
        .unwrap();
    let token = link_token(&h.last_mail().await);
    secrets.push(token.secret().into());
    secrets.push(sent.poll_token.secret().into());
    let device_code = sent.device_code.clone().unwrap();
    secrets.push(device_code.secret().into());
    dumps.push_str(&dump(&h.store).await);
    let proof = DeviceProof::none().with_device_code(device_code);
    let signed_in = h
        .auth
        .magic_links()
        .verify(&token, &proof, &ctx())
        .await
        .unwrap();
    let link_tokens = support::tokens(signed_in);
    secrets.push(link_tokens.access_token.secret().into());
    secrets.push(link_tokens.refresh_token.secret().into());

    // An email code, pending and then spent.
    h.clock.advance(Duration::from_secs(60));
    let channel = h.auth.codes().email();
    let sent = channel.send("bo@example.com", &ctx()).await.unwrap();
    let code = code_of(&h.last_mail().await.message);
    secrets.push(code.secret().into());
    dumps.push_str(&dump(&h.store).await);
    let code_tokens = support::tokens(
        channel
            .verify(sent.request_id, &code, &ctx())
            .await
            .unwrap(),
    );

    // A refresh token rotated: the old and the new one.
    let rotated = h
        .auth
        .tokens()
        .refresh(&code_tokens.refresh_token, &ctx())
        .await
        .unwrap();
    secrets.push(code_tokens.refresh_token.secret().into());
    secrets.push(rotated.refresh_token.secret().into());
    secrets.push(rotated.access_token.secret().into());

    // A password account with TOTP and backup codes.
    let passphrase = "correct horse battery staple 42";
    secrets.push(passphrase.into());
    let signed_up = support::password_sign_up(&h, "cy@example.com", passphrase, &ctx())
        .await
        .unwrap();
    let user = support::tokens(signed_up).user_id;
    let (totp_secret, backup_codes) = support::enable_totp(&h, user).await;
    secrets.push(totp_secret.clone());
    for code in &backup_codes {
        secrets.push(code.secret().into());
    }
    dumps.push_str(&dump(&h.store).await);
    h.auth
        .passwords()
        .sign_in("cy@example.com", &Password::new(passphrase), &ctx())
        .await
        .unwrap();
    secrets.push(app_code(&h, &totp_secret).secret().into());

    // An organization's API key.
    let org = h
        .auth
        .orgs()
        .create(portcullis::directory::NewOrg::new("Acme", "acme"))
        .await
        .unwrap();
    let key = h
        .auth
        .api_keys()
        .create(org.id, &NewApiKey::new("deploys", &["users:read"]))
        .await
        .unwrap();
    secrets.push(key.secret.secret().into());

    dumps.push_str(&dump(&h.store).await);
    assert!(dumps.contains("ana@example.com"), "the dump covers users");
    assert!(dumps.contains("(request,"), "the dump covers requests");
    assert!(dumps.contains("(magic_link,"), "the dump covers links");
    assert!(
        dumps.contains("$argon2id$"),
        "the dump covers password hashes"
    );
    assert!(secrets.len() >= 20, "{}", secrets.len());
    let lowered = dumps.to_lowercase();
    for secret in &secrets {
        let text = String::from_utf8_lossy(secret);
        assert!(!dumps.contains(text.as_ref()), "a secret is stored as text");
        assert!(
            !lowered.contains(&hex(secret)),
            "a secret is stored as bytes"
        );
    }
}
