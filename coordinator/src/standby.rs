//! A standby coordinator (etcd store, another coordinator leads): it listens on its gRPC
//! address with its own server certificate and the same client verification as the leader, and
//! answers every RPC with `UNAVAILABLE` and the leader's address
//! ([`lab_proto::standby::standby_status`]) — except `ListCoordinators`, which it answers so that
//! `labctl status` works against any coordinator. When it wins the election it stops accepting
//! here, closes its standby connections (clients reconnect and reach the real services) and
//! hands the same listener to [`crate::server`]: no second bind, no port change.
//!
//! The leader's address comes from the leader key, which the campaign reads every second.
//! Connections are bounded ([`MAX_CONNECTIONS`]) and closed after [`MAX_LIFE`]: a client that
//! got its hint goes to the leader, nothing needs to stay here.
//!
//! What this module must not do: read or write the trees (a standby has no store open).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lab_proto::codec::LeanCodec;
use lab_proto::identity::{Identity, TrustDomain};
use lab_proto::v1::{ListCoordinatorsRequest, ListCoordinatorsResponse};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

use crate::ca::Ca;
use crate::datadir::{DataDir, Settings};
use crate::state::ServeOptions;
use crate::store::leader::{campaign_watching, Leadership};
use crate::store::EtcdOptions;

/// Standby connections open at once; more are closed at once (their clients retry).
pub const MAX_CONNECTIONS: usize = 1024;
/// A standby connection is closed this long after it was accepted.
pub const MAX_LIFE: Duration = Duration::from_secs(30);
/// How long the switch to the real services waits for standby connections to close after
/// telling them to (HTTP/2 GOAWAY) before it closes them.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The gRPC path of the one RPC a standby answers.
const LIST_COORDINATORS: &str = "/lab.v1.OperatorService/ListCoordinators";

/// What the standby's handlers share.
struct Shared {
    etcd: EtcdOptions,
    advertise: String,
    trust_domain: TrustDomain,
    leader: watch::Receiver<Option<String>>,
}

/// Waits as a standby until this coordinator leads (`Some`) or `shutdown` (`None`), answering on
/// `listener` meanwhile (see the module doc).
/// `metrics` (the metrics listener) answers `labfleet_leader 0` meanwhile and is given back.
pub async fn wait(
    dir: &DataDir,
    listener: &TcpListener,
    metrics: Option<TcpListener>,
    etcd: &EtcdOptions,
    options: &ServeOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Option<Leadership>, Option<TcpListener>)> {
    let settings = Settings::load(dir)?;
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let ca = Ca::load(&read(dir.ca_cert())?, &read(dir.ca_key())?)?;
    let trust_domain: TrustDomain = settings
        .trust_domain
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.settings().display()))?;
    let tls = crate::server::tls_config_for(&ca, &settings, dir)?;
    let (leader_tx, leader_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        etcd: etcd.clone(),
        advertise: settings.advertise.clone(),
        trust_domain,
        leader: leader_rx,
    });
    // `stop`: no more accepting, GOAWAY to every standby connection; `kill`: close them.
    let stop = shutdown.child_token();
    let kill = CancellationToken::new();
    let (conn_tx, conn_rx) = mpsc::channel(32);
    let server = tokio::spawn(serve(conn_rx, shared, stop.clone()));
    let metrics = metrics.map(Arc::new);
    let metrics_task = metrics.clone().map(|l| {
        tokio::spawn(crate::metrics::serve(
            SharedListener(l),
            crate::metrics::standby_exposition,
            stop.clone(),
        ))
    });
    let accepting = accept(
        listener,
        TlsAcceptor::from(tls),
        conn_tx,
        &stop,
        &kill,
        options.connections.handshake_timeout,
    );
    tracing::info!(listen = %listener.local_addr()?, "standby: answering clients with the leader's address until this coordinator leads");
    let campaign = async {
        let won = campaign_watching(
            etcd,
            &settings.advertise,
            options.leader_ttl,
            shutdown,
            &leader_tx,
        )
        .await;
        stop.cancel();
        won
    };
    let ((), won) = tokio::join!(accepting, campaign);
    let mut server = server;
    if tokio::time::timeout(CLOSE_GRACE, &mut server)
        .await
        .is_err()
    {
        tracing::debug!("standby connections still open after GOAWAY; closing them");
        kill.cancel();
        server.abort();
    }
    kill.cancel();
    if let Some(mut task) = metrics_task {
        if tokio::time::timeout(CLOSE_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
    let metrics = match metrics.map(Arc::try_unwrap) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => anyhow::bail!("the standby's metrics listener is still in use"),
    };
    Ok((won?, metrics))
}

/// The metrics listener, lent to the standby's metrics server.
struct SharedListener(Arc<TcpListener>);

impl axum::serve::Listener for SharedListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "standby: cannot accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await; // sleep-ok: back off after an accept error
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Accepts on `listener` until `stop`, handshakes each connection (same server certificate and
/// client verification as the leader) and hands it to the standby server through `tx`.
async fn accept(
    listener: &TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<Conn, std::io::Error>>,
    stop: &CancellationToken,
    kill: &CancellationToken,
    handshake_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "standby: cannot accept a connection");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue, // sleep-ok: back off after an accept error
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer, "standby: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx, kill) = (acceptor.clone(), tx.clone(), kill.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "standby: tls handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let conn = Conn {
                inner: tls,
                _permit: permit,
                killed: Box::pin(kill.cancelled_owned()),
                deadline: Box::pin(tokio::time::sleep(MAX_LIFE)),
                closed: false,
            };
            let _ = tx.send(Ok(conn)).await;
        });
    }
}

/// Serves the standby answers on the connections from `conns` until `stop`.
async fn serve(
    conns: mpsc::Receiver<Result<Conn, std::io::Error>>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let list = shared.clone();
    let hint = shared.clone();
    let router = axum::Router::new()
        .route_service(
            LIST_COORDINATORS,
            tower::service_fn(move |req: http::Request<axum::body::Body>| {
                let shared = list.clone();
                async move {
                    let mut grpc = tonic::server::Grpc::new(LeanCodec::<
                        ListCoordinatorsResponse,
                        ListCoordinatorsRequest,
                    >::default());
                    Ok::<_, Infallible>(grpc.unary(ListHandler(shared), req).await)
                }
            }),
        )
        .fallback(move || {
            let leader = hint.leader.borrow().clone();
            async move {
                lab_proto::standby::standby_status(leader.as_deref())
                    .into_http::<tonic::body::Body>()
            }
        });
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(
            ReceiverStream::new(conns),
            async move { stop.cancelled().await },
        )
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "standby: the standby listener failed");
    }
}

/// `ListCoordinators` on a standby.
struct ListHandler(Arc<Shared>);

impl tonic::server::UnaryService<ListCoordinatorsRequest> for ListHandler {
    type Response = ListCoordinatorsResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, req: tonic::Request<ListCoordinatorsRequest>) -> Self::Future {
        let shared = self.0.clone();
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs());
        Box::pin(async move {
            let leaf = certs
                .as_ref()
                .and_then(|c| c.first())
                .ok_or_else(|| Status::unauthenticated("this call needs a client certificate; use a labctl context with an operator certificate"))?;
            authorize(&shared, leaf).await?;
            let answer = crate::coordinators::from_etcd(&shared.etcd, &shared.advertise).await?;
            Ok(tonic::Response::new(answer))
        })
    }
}

/// An operator of this trust domain whose user and certificate are neither revoked nor deleted
/// (any role: viewer is the least); its chain to the CA was checked in the handshake.
async fn authorize(
    shared: &Shared,
    leaf: &rustls_pki_types::CertificateDer<'static>,
) -> Result<(), Status> {
    let (id, uri, serial_hex) = crate::auth::identity_of(leaf, &shared.trust_domain)?;
    let Identity::Operator(user) = id.identity else {
        return Err(Status::permission_denied(
            "node certificates cannot call operator RPCs",
        ));
    };
    match crate::store::standby_auth::operator_may_list(
        &shared.etcd,
        user.as_str(),
        &uri,
        &serial_hex,
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(Status::unauthenticated(why)),
        Err(e) => Err(Status::unavailable(e.to_string())),
    }
}

/// A standby connection: closed when the standby switches (`killed`) or at its deadline.
struct Conn {
    inner: TlsStream<TcpStream>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    deadline: Pin<Box<Sleep>>,
    /// Set once `killed` or `deadline` fired (neither is polled again).
    closed: bool,
}

impl Conn {
    /// Whether the connection must close now (the waker is registered otherwise).
    fn closing(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed {
            self.closed = self.killed.as_mut().poll(cx).is_ready()
                || self.deadline.as_mut().poll(cx).is_ready();
        }
        self.closed
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "standby connection closed",
    )
}

impl Connected for Conn {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.closing(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.closing(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
