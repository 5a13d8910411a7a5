//! Serving: the mTLS gRPC listener (TLS and connection limits in [`crate::accept`]; agent,
//! operator and health services behind the auth layer),
//! the metrics listener, and the background tasks (sweeper, job and schedule tickers), until the
//! shutdown token fires.

use std::sync::Arc;
use std::time::Duration;

use lab_proto::limits::{MAX_MESSAGE_BYTES, MAX_OPERATOR_RESPONSE_BYTES};
use lab_proto::pem::cert_info_from_pem;
use lab_proto::v1::agent_service_server::AgentServiceServer;
use lab_proto::v1::operator_service_server::OperatorServiceServer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::accept::{raise_fd_limit, ConnTracker, ConnectionLimits};
use crate::agent_api::AgentApi;
use crate::auth::{AuthLayer, Authorizer};
use crate::ca::Ca;
use crate::clock::now_ms;
use crate::datadir::{DataDir, Settings};
use crate::init::write_server_cert;
use crate::operator_api::OperatorApi;
use crate::state::Coordinator;

/// The server certificate is re-issued at start when it has less than this left.
const SERVER_CERT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

fn tls_config(coord: &Coordinator, dir: &DataDir) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    tls_config_for(&coord.ca, &coord.settings, dir)
}

/// The listener's TLS: the server certificate of `dir` (re-issued by `ca` when it expires
/// within 30 days or does not load with its key) and client certificates verified against the
/// CA. A standby uses the same.
pub fn tls_config_for(
    ca: &Ca,
    settings: &Settings,
    dir: &DataDir,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let mut chain = read(dir.server_cert())?;
    let left = cert_info_from_pem(&chain)?.not_after_unix_ms - now_ms();
    if left < SERVER_CERT_RENEW_BEFORE.as_millis() as i64 {
        tracing::info!("server certificate expires soon; issuing a new one");
        write_server_cert(dir, ca, &settings.server_names)?;
        chain = read(dir.server_cert())?;
    }
    let key = read(dir.server_key())?;
    match lab_proto::tls::server_config(&chain, &key, ca.cert_pem()) {
        Ok(config) => Ok(config),
        Err(e) => {
            // E.g. 'lab-coordinator cert' stopped between writing the key and the certificate.
            tracing::warn!(error = %e, "server key and certificate do not load together; issuing a new certificate");
            write_server_cert(dir, ca, &settings.server_names)?;
            let (chain, key) = (read(dir.server_cert())?, read(dir.server_key())?);
            Ok(lab_proto::tls::server_config(&chain, &key, ca.cert_pem())?)
        }
    }
}

/// The connection limits in force: the configured ones, scaled to the file descriptor limit
/// after raising its soft limit to the hard one.
fn connection_limits(coord: &Coordinator) -> ConnectionLimits {
    let configured = coord.options.connections.clone();
    let limits = match raise_fd_limit() {
        Ok(fds) => {
            let limits = configured.within_fd_limit(fds);
            tracing::info!(
                fd_limit = fds,
                max_unauthenticated = limits.max_unauth,
                max_unauthenticated_per_source = limits.max_unauth_per_source,
                unauthenticated_idle_s = limits.unauth_idle.as_secs_f64(),
                "connection limits"
            );
            limits
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open file limit; keeping the configured connection limits");
            configured
        }
    };
    limits
}

/// Serves gRPC on `listener` (and metrics on `metrics`) until `coord.shutdown` is cancelled,
/// then waits for sessions to finish.
pub async fn serve(
    coord: Arc<Coordinator>,
    dir: &DataDir,
    listener: TcpListener,
    metrics: Option<TcpListener>,
) -> anyhow::Result<()> {
    let tls = tls_config(&coord, dir)?;
    let authorizer = Arc::new(Authorizer::new(
        coord.store.clone(),
        coord.trust_domain.clone(),
    ));
    let tracker = Arc::new(ConnTracker::new(connection_limits(&coord)));
    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel(32);
    coord.tasks.spawn(crate::accept::run(
        coord.clone(),
        listener,
        TlsAcceptor::from(tls),
        authorizer.clone(),
        tracker.clone(),
        conn_tx,
    ));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AgentServiceServer<AgentApi>>()
        .await;
    health_reporter
        .set_serving::<OperatorServiceServer<OperatorApi>>()
        .await;

    let agent = AgentServiceServer::new(AgentApi::new(coord.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let operator = OperatorServiceServer::new(OperatorApi::new(coord.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_OPERATOR_RESPONSE_BYTES);

    coord
        .tasks
        .spawn(crate::session::sweep_silent(coord.clone()));
    let c = coord.clone();
    coord
        .tasks
        .spawn(async move { crate::jobs::run_ticker(c.job_cx(), c.shutdown.clone()).await });
    coord.tasks.spawn(crate::store::watch(
        coord.store.clone(),
        coord.shutdown.clone(),
    ));
    coord
        .tasks
        .spawn(crate::schedules::run_ticker(coord.clone()));
    if let Some(metrics) = metrics {
        let (c, s) = (coord.clone(), coord.shutdown.clone());
        let render = move |format| {
            let fleet = crate::metrics::fleet::FleetView::read(
                &c.store,
                &c.sessions,
                &c.jobs.failed_tasks,
                c.options.node_cert_ttl.as_secs(),
                crate::clock::now_ms(),
            );
            if let Err(e) = &fleet {
                tracing::warn!(error = %e, "metrics: cannot read nodes and backups from the store");
            }
            c.metrics.render(c.sessions.count(), fleet.ok(), format)
        };
        coord.tasks.spawn(async move {
            if let Err(e) = crate::metrics::serve(metrics, render, s).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }

    let shutdown = coord.shutdown.clone();
    notify_systemd(sd_notify::NotifyState::Ready);
    let result = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .layer(AuthLayer::new(authorizer, tracker))
        .add_service(health_service)
        .add_service(agent)
        .add_service(operator)
        .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async move {
            shutdown.cancelled().await
        })
        .await;
    notify_systemd(sd_notify::NotifyState::Stopping);
    coord.shutdown.cancel();
    coord.tasks.close();
    if tokio::time::timeout(Duration::from_secs(10), coord.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not finish within 10s of shutdown");
    }
    result?;
    Ok(())
}

/// Tells systemd (`Type=notify` in the unit) what the coordinator is doing: `READY=1` once the
/// store is open, the listeners are bound and TLS is loaded, `STOPPING=1` when it shuts down.
/// Outside systemd (no `NOTIFY_SOCKET`: tests, `labctl dev`) it does nothing.
fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(std::slice::from_ref(&state)) {
        tracing::warn!(error = %e, ?state, "cannot notify systemd");
    }
}
