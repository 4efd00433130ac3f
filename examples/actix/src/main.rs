//! `cargo run -p example-actix`: the portcullis API in actix-web on sled in
//! `./portcullis-actix-data`, port 8081. Configuration by environment: see the README.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use actix_web::HttpServer;
use example_actix::app;
use portcullis_http::settings::Settings;

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
    let settings = Settings::from_env_on(8081, "portcullis-actix")?;
    let server = settings.start().await?;
    let api = settings.api(server.auth.clone());
    println!("portcullis actix example on {}", settings.public_url);
    server.describe(&settings);
    HttpServer::new(move || app(api.clone()))
        .bind(settings.addr)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?
        .shutdown_timeout(5)
        .run()
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    server.stop().await
}
