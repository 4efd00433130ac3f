//! Bad input on Postgres gets the clear error it gets on every adapter, never a database
//! failure: text PostgreSQL cannot hold (U+0000) is refused by the engine before it is
//! written, and nothing is half-written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis::directory::{NewUser, UserUpdate};
use portcullis::{Config, Error};
use portcullis_test_support::{self as support, ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_names_or_metadata_is_invalid_input_not_a_database_error() {
    let Some(h) = support::pg_harness_built(Config::new("https://app.example.com"), |b| b).await
    else {
        return;
    };
    let users = h.auth.users();
    let mut new = NewUser::with_email("ana@example.com");
    new.metadata = serde_json::json!({"plan": "pro\u{0}"});
    let refused = users.create(new, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let mut new = NewUser::with_email("ana@example.com");
    new.metadata = serde_json::json!({"nested": [{"k\u{0}": 1}]});
    let refused = users.create(new, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let mut new = NewUser::with_email("ana@example.com");
    new.name = Some("Ana\u{0}".into());
    let refused = users.create(new, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let missing = users.get_by_email("ana@example.com").await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "nothing was written"
    );

    let user = users
        .create(NewUser::with_email("ana@example.com"), &ctx())
        .await
        .unwrap();
    let mut update = UserUpdate::default();
    update.metadata = Some(serde_json::json!({"note": "\u{0}"}));
    let refused = users.update(user.id, &update, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    assert_eq!(users.get(user.id).await.unwrap(), user, "nothing changed");
}
