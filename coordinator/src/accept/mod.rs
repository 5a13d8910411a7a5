//! The gRPC accept loop: TLS handshakes happen here, before tonic sees a connection, so that
//! connections without a valid client certificate stay bounded.
//!
//! Handshakes in progress are capped (and time out): at the cap the loop stops accepting until
//! one ends, so a connect storm waits in the listen queue rather than being refused. A connection whose handshake shows no
//! client certificate that [`Authorizer::accepts`] (issued here, not revoked, of a known node or
//! user) is unauthenticated: it may only call Bootstrap, Enroll and health (the auth layer
//! enforces that); here such connections are bounded per source address and in total, and
//! closed once no request has started on them for the idle timeout. Every refusal is counted
//! (`labfleet_connections_refused_total{reason}`) and logged (at most once a second per
//! reason). A connection with a valid certificate is never refused after its handshake, and
//! with the limits at most half of the process's file descriptor limit (see
//! [`raise_fd_limit`]), agents and operators get in while unauthenticated peers hold every
//! slot they may.
//!
//! What this module must not do: decide what a caller may call (that is `auth`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::auth::Authorizer;

mod tracker;

use crate::state::Coordinator;
pub use tracker::{raise_fd_limit, ConnTracker, ConnectionLimits, Refusal};
use tracker::{Activity, Slot};

/// What closes an idle unauthenticated connection: its slot, activity and timer.
struct IdleClose {
    slot: Slot,
    peer: SocketAddr,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    coord: Arc<Coordinator>,
    closed: bool,
}

impl IdleClose {
    /// Whether the connection has been idle too long; otherwise the timer wakes `cx` later.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return true;
        }
        loop {
            let until = self.activity.idle_until(self.idle);
            if self.timer.deadline() != until {
                self.timer.as_mut().reset(until);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.activity.idle_until(self.idle) <= Instant::now() {
                self.closed = true;
                self.coord.metrics.unauthenticated_closed_idle.inc();
                tracing::debug!(peer = %self.peer, "closing an idle connection without a client certificate");
                return true;
            }
        }
    }
}

impl Drop for IdleClose {
    fn drop(&mut self) {
        let tracker = &self.slot.tracker;
        let mut map = tracker.activity.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.peer);
    }
}

/// A TCP connection that closes itself when idle and unauthenticated.
pub struct TrackedTcp {
    inner: TcpStream,
    idle: Option<IdleClose>,
}

impl TrackedTcp {
    fn idle_error() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "idle connection without a client certificate",
        )
    }
}

impl Connected for TrackedTcp {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for TrackedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.idle.as_mut().is_some_and(|i| i.expired(cx)) {
            return Poll::Ready(Err(TrackedTcp::idle_error()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.idle.as_ref().is_some_and(|i| i.closed) {
            return Poll::Ready(Err(TrackedTcp::idle_error()));
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

/// A connection handed to tonic after its handshake.
pub type Accepted = TlsStream<TrackedTcp>;

/// Accepts on `listener` until `coord.shutdown`, handshakes each connection and sends it to
/// tonic through `tx`.
pub async fn run(
    coord: Arc<Coordinator>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    authorizer: Arc<Authorizer>,
    tracker: Arc<ConnTracker>,
    tx: mpsc::Sender<Result<Accepted, std::io::Error>>,
) {
    loop {
        let permit = tokio::select! {
            () = coord.shutdown.cancelled() => return,
            p = tracker.handshake_permit() => p,
        };
        let accepted = tokio::select! {
            () = coord.shutdown.cancelled() => return,
            a = lab_proto::net::accept(&listener) => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE) or a connection that died in the
                // queue: wait a little so a full table cannot spin the loop.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::select! {
                    () = coord.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let slot = tracker.admit(peer.ip(), permit);
        let (coord2, acceptor, authorizer, tracker2, tx) = (
            coord.clone(),
            acceptor.clone(),
            authorizer.clone(),
            tracker.clone(),
            tx.clone(),
        );
        coord.tasks.spawn(async move {
            let timeout = tracker2.limits.handshake_timeout;
            let tracked = TrackedTcp {
                inner: tcp,
                idle: None,
            };
            let mut tls = match tokio::time::timeout(timeout, acceptor.accept(tracked)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "tls handshake timed out");
                    return;
                }
            };
            let certs = tls.get_ref().1.peer_certificates();
            if certs.is_some_and(|c| authorizer.accepts(c)) {
                drop(slot);
            } else {
                let slot = match slot.unauthenticated() {
                    Ok(s) => s,
                    Err(reason) => {
                        refused(&coord2, &tracker2, reason, peer);
                        return;
                    }
                };
                let activity = tracker2.opened(peer);
                let idle = tracker2.limits.unauth_idle;
                tls.get_mut().0.idle = Some(IdleClose {
                    slot,
                    peer,
                    timer: Box::pin(tokio::time::sleep_until(activity.idle_until(idle))),
                    activity,
                    idle,
                    coord: coord2.clone(),
                    closed: false,
                });
            }
            coord2
                .metrics
                .unauthenticated_connections
                .set(i64::try_from(tracker2.unauthenticated()).unwrap_or(i64::MAX));
            let _ = tx.send(Ok(tls)).await;
        });
        coord
            .metrics
            .unauthenticated_connections
            .set(i64::try_from(tracker.unauthenticated()).unwrap_or(i64::MAX));
    }
}

fn refused(coord: &Coordinator, tracker: &ConnTracker, reason: Refusal, peer: SocketAddr) {
    coord
        .metrics
        .connections_refused
        .get_or_create(&vec![("reason".to_owned(), reason.as_str().to_owned())])
        .inc();
    if tracker.should_log(reason) {
        let limits = &tracker.limits;
        tracing::warn!(
            peer = %peer,
            reason = reason.as_str(),
            max_unauthenticated = limits.max_unauth,
            max_per_source = limits.max_unauth_per_source,
            "refused a connection without a client certificate: limit reached (logged at most once a second)"
        );
    }
}
