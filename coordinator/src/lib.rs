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
pub mod coordinators;
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
pub mod standby;
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

/// Loads the coordinator from `dir`, binds the listeners and serves until `shutdown`. With an
/// etcd store it first waits to become the leader, answering as a standby meanwhile (see
/// [`standby`]).
pub async fn run(
    dir: DataDir,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = lab_proto::net::listen(listen)
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

/// Serves on listeners the caller already bound (port 0 in tests, `labctl dev`); with an etcd
/// store, as a standby on the same listener until this coordinator is the leader. An etcd
/// coordinator keeps its liveness record (see [`store::presence`]) in either role.
pub async fn serve_on(
    dir: DataDir,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(store::Location::Etcd(etcd)) = options.store.clone() else {
        return serve_elected(dir, listener, metrics, options, shutdown, None).await;
    };
    let advertise = datadir::Settings::load(&dir)?.advertise;
    let (role, role_rx) = tokio::sync::watch::channel(store::presence::AliveRole::Standby);
    let alive = tokio::spawn(store::presence::keep_alive(
        etcd.clone(),
        advertise,
        options.leader_ttl,
        role_rx,
        shutdown.clone(),
    ));
    let result = match standby::wait(&dir, &listener, metrics, &etcd, &options, &shutdown).await {
        Ok((Some(leadership), metrics)) => {
            let _ = role.send(store::presence::AliveRole::Leader);
            serve_elected(
                dir,
                listener,
                metrics,
                options,
                shutdown.clone(),
                Some(leadership),
            )
            .await
        }
        Ok((None, _)) => Ok(()),
        Err(e) => Err(e),
    };
    // The liveness record goes with its lease at once rather than after the TTL.
    shutdown.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), alive).await;
    result
}

async fn serve_elected(
    dir: DataDir,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    options: ServeOptions,
    shutdown: CancellationToken,
    leadership: Option<store::leader::Leadership>,
) -> anyhow::Result<()> {
    let location = options
        .store
        .clone()
        .unwrap_or_else(|| store::Location::Sled(dir.state()));
    // The lease is renewed from the moment it was won: loading a large store may take longer
    // than its TTL.
    let leadership = leadership.map(Arc::new);
    let lost = Arc::new(std::sync::OnceLock::<String>::new());
    let opened_store = Arc::new(std::sync::OnceLock::<store::Store>::new());
    if let Some(l) = &leadership {
        let (l, lost, opened, shutdown) = (
            l.clone(),
            lost.clone(),
            opened_store.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Some(why) = l.hold(&shutdown).await {
                tracing::error!(why = %why, "stepping down: this coordinator is no longer the leader; writes are refused and it exits so that it starts again as a standby");
                let _ = lost.set(why.clone());
                if let Some(store) = opened.get() {
                    store.step_down(&why);
                }
                shutdown.cancel();
            }
        });
    }
    let mut store_options = Coordinator::store_options(&options);
    store_options.fence = leadership.as_ref().map(|l| l.fence());
    let store = match store::Store::open_at(&location, &store_options).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(l) = &leadership {
                l.resign().await;
            }
            return Err(e.into());
        }
    };
    let _ = opened_store.set(store.clone());
    let coord = Arc::new(Coordinator::with_store(&dir, store, options, shutdown)?);
    coord.metrics.leader.set(1);
    if lost.get().is_some() {
        coord
            .store
            .step_down("leadership was lost while loading the store");
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        trust_domain = %coord.trust_domain,
        "coordinator serving"
    );
    server::serve(coord.clone(), &dir, listener, metrics).await?;
    if let Some(why) = lost.get() {
        anyhow::bail!("stepped down as leader: {why}; start the coordinator again (systemd does) to wait as a standby");
    }
    if let Some(l) = &leadership {
        l.resign().await;
    }
    if coord.store.needs_restart() {
        anyhow::bail!(
            "stopped because the store {location} failed to write and can take writes again (its directory has room, or etcd answers); start the coordinator again (systemd does) to write again"
        );
    }
    Ok(())
}
