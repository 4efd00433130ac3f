//! `cargo run -p example-axum`: the portcullis demo server on sled in `./portcullis-data`.
//! Configuration by environment: see the README's "The axum example" section.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

use example_axum::app;
use portcullis_http::settings::Settings;

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
    let server = settings.start().await?;
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?;
    println!("portcullis demo on {}", settings.public_url);
    server.describe(&settings);
    let app = app(settings.api(server.auth.clone()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("server failed: {e}"))?;
    server.stop().await
}
