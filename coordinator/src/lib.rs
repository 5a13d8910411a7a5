//! lab-coordinator: the centre of labfleet. It owns the CA and enrollment, the inventory and the
//! live agent sessions, and serves the agent and operator gRPC APIs over mutual TLS.
//!
//! `main.rs` only parses arguments; `lab-coordinator init` is [`init::init`], `serve` is
//! [`run`]. `labctl dev` embeds the same two functions.

pub mod accept;
pub mod agent_api;
pub mod auth;
pub mod backups;
pub mod budget;
pub mod ca;
pub mod certs;
pub mod clock;
pub mod datadir;
pub mod error;
pub mod init;
pub mod inventory;
pub mod jobs;
pub mod listing;
pub mod metrics;
pub mod operator_api;
pub mod operators;
pub mod paging;
pub mod ratelimit;
pub mod schedules;
pub mod server;
pub mod session;
pub mod sessions;
pub mod state;
pub mod store;
#[cfg(test)]
mod testing;
pub mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use datadir::DataDir;
pub use state::{Coordinator, ServeOptions};

/// Loads the coordinator from `dir`, binds the listeners and serves until `shutdown`.
pub async fn run(
    dir: DataDir,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let metrics = match metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    serve_on(dir, listener, metrics, options, shutdown).await
}

/// Serves on listeners the caller already bound (port 0 in tests, `labctl dev`).
pub async fn serve_on(
    dir: DataDir,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let location = options
        .store
        .clone()
        .unwrap_or_else(|| store::Location::Sled(dir.state()));
    let store = store::Store::open_at(&location, &Coordinator::store_options(&options)).await?;
    let coord = Arc::new(Coordinator::with_store(&dir, store, options, shutdown)?);
    tracing::info!(
        listen = %listener.local_addr()?,
        trust_domain = %coord.trust_domain,
        "coordinator serving"
    );
    server::serve(coord.clone(), &dir, listener, metrics).await?;
    if coord.store.needs_restart() {
        anyhow::bail!(
            "stopped because the store {location} failed to write and can take writes again (its directory has room, or etcd answers); start the coordinator again (systemd does) to write again"
        );
    }
    Ok(())
}
