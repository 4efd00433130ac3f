//! `cargo run -p example-actix`: the actix example on sled in `./portcullis-actix-data`,
//! listening on 127.0.0.1:8081. Configuration by environment: see the README's "The actix
//! example" section.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use actix_web::HttpServer;
use example_actix::{AppState, Settings, app};

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let (auth, sled) = settings.build()?;
    // Made now, so that a broken store shows at start rather than at the first request.
    auth.orgs()
        .default_org()
        .await
        .map_err(|e| format!("cannot read the default organization: {e}"))?;
    let state = AppState::with_proxies(auth.clone(), settings.trusted_proxies.clone());
    let server = HttpServer::new(move || app(state.clone()))
        .bind(settings.addr)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?
        .shutdown_timeout(5)
        .run();

    let purger = auth.clone();
    let purging = actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(Duration::from_secs(600));
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
    println!(
        "portcullis actix example on {} ({store})",
        settings.public_url
    );
    println!("  listening on {}", settings.addr);
    if let Some(notice) = settings.secrets_notice() {
        println!("  {notice}");
    }
    if settings.smtp_url.is_none() {
        println!("  emails and texts are printed here (set PORTCULLIS_SMTP_URL to send emails)");
    }
    // Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
    server.await.map_err(|e| format!("server failed: {e}"))?;

    auth.flush_deliveries().await;
    purging.abort();
    let _ = purging.await;
    drop(auth);
    if let Some(store) = sled {
        match std::sync::Arc::try_unwrap(store) {
            Ok(store) => store
                .close()
                .map_err(|e| format!("closing the store: {e}"))?,
            // Still held by a worker that has not let go: sled recovers at the next start.
            Err(_) => {
                eprintln!("warning: the store is still in use; it will recover at next start")
            }
        }
    }
    println!("stopped");
    Ok(())
}
