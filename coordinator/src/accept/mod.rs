//! The gRPC accept loop: TLS handshakes happen here, before tonic sees a connection, so that
//! connections without a valid client certificate stay bounded.
//!
//! Handshakes in progress are capped (and time out). A connection whose handshake shows no
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

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
use crate::state::Coordinator;

/// Limits on connections without a valid client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// An unauthenticated connection is closed when no request started on it for this long.
    pub unauth_idle: Duration,
    /// Unauthenticated connections open at once.
    pub max_unauth: usize,
    /// Unauthenticated connections open at once from one source address.
    pub max_unauth_per_source: usize,
    /// TLS handshakes in progress at once (whether or not they will show a certificate).
    pub max_handshakes: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            unauth_idle: Duration::from_secs(20),
            max_unauth: 256,
            max_unauth_per_source: 16,
            max_handshakes: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// These limits scaled down so that unauthenticated connections and handshakes together
    /// use at most half of `fd_limit` file descriptors (a quarter each), leaving the rest to
    /// authenticated peers and the store.
    pub fn within_fd_limit(mut self, fd_limit: u64) -> Self {
        let quarter = usize::try_from(fd_limit / 4).unwrap_or(usize::MAX).max(1);
        self.max_unauth = self.max_unauth.min(quarter);
        self.max_handshakes = self.max_handshakes.min(quarter);
        self.max_unauth_per_source = self.max_unauth_per_source.min(self.max_unauth);
        self
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source address has too many unauthenticated connections.
    PerSource,
    /// Too many unauthenticated connections in total.
    Total,
    /// Too many handshakes in progress.
    Handshakes,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::PerSource => "per_source",
            Refusal::Total => "total",
            Refusal::Handshakes => "handshakes",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    handshaking: usize,
    unauth: usize,
    /// Unauthenticated connections by source (handshakes not included).
    by_source: HashMap<IpAddr, usize>,
    /// When each refusal reason was last logged.
    logged: HashMap<&'static str, std::time::Instant>,
}

/// When the last request on an unauthenticated connection started.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_until(&self, idle: Duration) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// Counts unauthenticated connections and records their activity.
#[derive(Debug)]
pub struct ConnTracker {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    activity: Mutex<HashMap<SocketAddr, Arc<Activity>>>,
}

impl ConnTracker {
    /// A tracker enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        ConnTracker {
            limits,
            counts: Mutex::default(),
            activity: Mutex::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection from `source` to its handshake, or says why not. Per-source and
    /// total limits apply after the handshake, so that many agents behind one address (a
    /// reconnect storm through NAT) are not refused while they prove who they are.
    fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Slot, Refusal> {
        let mut c = self.counts();
        if c.handshaking >= self.limits.max_handshakes {
            return Err(Refusal::Handshakes);
        }
        c.handshaking += 1;
        Ok(Slot {
            tracker: self.clone(),
            source,
            state: SlotState::Handshaking,
        })
    }

    /// A request started on the connection from `peer`; keeps it open if it is unauthenticated.
    pub fn touch(&self, peer: SocketAddr) {
        let map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = map.get(&peer) {
            a.touch();
        }
    }

    /// Unauthenticated connections open now, handshakes included.
    pub fn unauthenticated(&self) -> usize {
        let c = self.counts();
        c.handshaking + c.unauth
    }

    /// Whether a refusal for `reason` should be logged now (once a second per reason).
    fn should_log(&self, reason: Refusal) -> bool {
        let mut c = self.counts();
        let now = std::time::Instant::now();
        match c.logged.get(reason.as_str()) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(1) => false,
            _ => {
                c.logged.insert(reason.as_str(), now);
                true
            }
        }
    }
}

/// What a [`Slot`] holds in the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Handshaking,
    Unauthenticated,
    Released,
}

/// One connection's place in the counts; released when dropped.
#[derive(Debug)]
struct Slot {
    tracker: Arc<ConnTracker>,
    source: IpAddr,
    state: SlotState,
}

impl Slot {
    /// The handshake ended without a valid certificate: the connection stays unauthenticated
    /// if its source and the total are below their limits.
    fn unauthenticated(mut self) -> Result<Slot, Refusal> {
        let limits = &self.tracker.limits;
        let mut c = self.tracker.counts();
        c.handshaking -= 1;
        let from_source = c.by_source.get(&self.source).copied().unwrap_or(0);
        let refusal = if from_source >= limits.max_unauth_per_source {
            Some(Refusal::PerSource)
        } else if c.unauth >= limits.max_unauth {
            Some(Refusal::Total)
        } else {
            c.unauth += 1;
            *c.by_source.entry(self.source).or_default() += 1;
            None
        };
        drop(c);
        match refusal {
            Some(r) => {
                self.state = SlotState::Released;
                Err(r)
            }
            None => {
                self.state = SlotState::Unauthenticated;
                Ok(self)
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.tracker.counts();
        match self.state {
            SlotState::Handshaking => c.handshaking -= 1,
            SlotState::Unauthenticated => {
                c.unauth -= 1;
                if let Some(n) = c.by_source.get_mut(&self.source) {
                    *n -= 1;
                    if *n == 0 {
                        c.by_source.remove(&self.source);
                    }
                }
            }
            SlotState::Released => {}
        }
    }
}

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
        let accepted = tokio::select! {
            () = coord.shutdown.cancelled() => return,
            a = listener.accept() => a,
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
        let slot = match tracker.admit(peer.ip()) {
            Ok(s) => s,
            Err(reason) => {
                refused(&coord, &tracker, reason, peer);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
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
                let activity = Arc::new(Activity {
                    opened: Instant::now(),
                    last_ms: AtomicU64::new(0),
                });
                tracker2
                    .activity
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(peer, activity.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(max: usize, per_source: usize) -> Arc<ConnTracker> {
        Arc::new(ConnTracker::new(ConnectionLimits {
            max_unauth: max,
            max_unauth_per_source: per_source,
            ..ConnectionLimits::default()
        }))
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn unauth(t: &Arc<ConnTracker>, source: IpAddr) -> Result<Slot, Refusal> {
        t.admit(source)?.unauthenticated()
    }

    #[test]
    fn a_source_gets_its_share_and_no_more() {
        let t = tracker(10, 2);
        let a1 = unauth(&t, A).unwrap();
        let _a2 = unauth(&t, A).unwrap();
        // Handshakes from a full source go on (the peer may show a certificate)...
        let a3 = t.admit(A).unwrap();
        // ...but without a certificate it is refused.
        assert_eq!(a3.unauthenticated().unwrap_err(), Refusal::PerSource);
        let _b1 = unauth(&t, B).unwrap();
        drop(a1);
        let _a4 = unauth(&t, A).unwrap();
        assert_eq!(t.unauthenticated(), 3);
    }

    #[test]
    fn unauthenticated_connections_are_capped_in_total_but_handshakes_go_on() {
        let t = tracker(2, 10);
        let kept: Vec<Slot> = (0..2).map(|_| unauth(&t, A).unwrap()).collect();
        let third = t.admit(B).unwrap();
        assert_eq!(t.unauthenticated(), 3);
        assert_eq!(third.unauthenticated().unwrap_err(), Refusal::Total);
        assert_eq!(t.unauthenticated(), 2);
        drop(kept);
        assert_eq!(t.unauthenticated(), 0);
        assert!(t.counts().by_source.is_empty());
    }

    #[test]
    fn handshakes_in_progress_are_capped() {
        let t = Arc::new(ConnTracker::new(ConnectionLimits {
            max_handshakes: 2,
            ..ConnectionLimits::default()
        }));
        let h: Vec<Slot> = (0..2).map(|_| t.admit(A).unwrap()).collect();
        assert_eq!(t.admit(B).unwrap_err(), Refusal::Handshakes);
        drop(h);
        assert!(t.admit(B).is_ok());
    }

    #[test]
    fn limits_fit_the_fd_limit() {
        let l = ConnectionLimits::default().within_fd_limit(1024);
        assert_eq!((l.max_unauth, l.max_handshakes), (256, 256));
        let l = ConnectionLimits::default().within_fd_limit(200);
        assert_eq!((l.max_unauth, l.max_unauth_per_source), (50, 16));
        let l = ConnectionLimits::default().within_fd_limit(40);
        assert_eq!((l.max_unauth, l.max_unauth_per_source), (10, 10));
    }
}
