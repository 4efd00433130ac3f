//! `cargo run -p example-axum`: the portcullis demo server on sled in `./portcullis-data`.
//! Configuration by environment: see the README's "The axum example" section.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use example_axum::{AppState, Settings, app};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let (auth, sled) = settings.build()?;
    // Made now rather than at the first request, so its errors show at start.
    auth.orgs()
        .default_org()
        .await
        .map_err(|e| format!("cannot read the default organization: {e}"))?;
    let state = AppState::with(
        auth.clone(),
        settings.trusted_proxies.clone(),
        settings.admin_key.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?;
    let purger = auth.clone();
    let purging = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = purger.purge_expired().await {
                eprintln!("warning: purging expired records failed: {e}");
            }
        }
    });
    let store = match &sled {
        Some(_) => format!("sled in {}", settings.data_dir.display()),
        None => "memory (nothing is kept)".to_owned(),
    };
    println!("portcullis demo on {} ({store})", settings.public_url);
    println!(
        "  listening on {}; OpenAPI at {}/api/v1/openapi.json",
        settings.addr, settings.public_url
    );
    if let Some(notice) = settings.secrets_notice() {
        println!("  {notice}");
    }
    if settings.smtp_url.is_none() {
        println!("  emails are printed here (set PORTCULLIS_SMTP_URL to send them)");
    }
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("server failed: {e}"))?;
    auth.flush_deliveries().await;
    purging.abort();
    let _ = purging.await;
    drop(auth);
    if let Some(store) = sled {
        // The engine and the router are gone: this is the last handle, so the store can
        // be closed cleanly (a crash is recovered from too, but more slowly).
        match std::sync::Arc::try_unwrap(store) {
            Ok(store) => store
                .close()
                .map_err(|e| format!("closing the store: {e}"))?,
            Err(_) => {
                eprintln!("warning: the store is still in use; it will recover at next start")
            }
        }
    }
    println!("stopped");
    Ok(())
}
