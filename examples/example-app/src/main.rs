//! The bundled example app: server-side sessions in memcached, end to end.
//!
//! A home page with a per-session visit counter, a login form (any username, the password
//! shown on the page) that regenerates the session id and flashes a welcome, a dashboard for
//! logged-in users, logout, CSRF tokens on every form, and `/healthz`.
//!
//! Configured from the environment (and a `.env` file when present); see `.env.example`.
//! Without `MEMCACHE_SERVER` it keeps sessions in this process's memory, and without
//! `SESSION_SECRETS` it signs cookies with a secret made up at start-up: both are for
//! development only and announced loudly.

mod config;
mod csrf;
mod pages;
mod routes;

use std::process::ExitCode;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let dotenv = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,axum_session_memcache=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Ok(path) = dotenv {
        tracing::info!("read settings from {}", path.display());
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let setup = config::Setup::from_env()?;
    let address = config::listen_address()?;
    let app = routes::router(setup.health).layer(setup.layer);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;
    let local = listener.local_addr()?;
    // One line on stdout, read by `cargo xtask demo` to learn the port.
    println!("listening on http://{local}");
    tracing::info!("listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
