//! Counting connections without a valid client certificate: handshakes in flight, and
//! unauthenticated connections per source address and in total, each within its limit, with
//! the time of the last request seen on each (see the parent module for the whole picture).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits on connections without a valid client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// An unauthenticated connection is closed when no request started on it for this long.
    pub unauth_idle: Duration,
    /// Unauthenticated connections open at once.
    pub max_unauth: usize,
    /// Unauthenticated connections open at once from one source address.
    pub max_unauth_per_source: usize,
    /// TLS handshakes in progress at once (whether or not they will show a certificate); at
    /// the limit the accept loop waits for one to end and new connections queue in the kernel.
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

/// Why a connection was closed after its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source address has too many unauthenticated connections.
    PerSource,
    /// Too many unauthenticated connections in total.
    Total,
}

impl Refusal {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Refusal::PerSource => "per_source",
            Refusal::Total => "total",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    handshaking: usize,
    unauth: usize,
    /// Unauthenticated connections by source (handshakes not included).
    by_source: HashMap<IpAddr, usize>,
    /// When each refusal reason was last logged.
    logged: HashMap<&'static str, std::time::Instant>,
}

/// When the last request on an unauthenticated connection started.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn idle_until(&self, idle: Duration) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// Counts unauthenticated connections and records their activity.
#[derive(Debug)]
pub struct ConnTracker {
    pub(super) limits: ConnectionLimits,
    /// One permit per handshake that may be in progress.
    handshake_permits: Arc<Semaphore>,
    counts: Mutex<Counts>,
    pub(super) activity: Mutex<HashMap<SocketAddr, Arc<Activity>>>,
}

impl ConnTracker {
    /// A tracker enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        ConnTracker {
            handshake_permits: Arc::new(Semaphore::new(limits.max_handshakes)),
            limits,
            counts: Mutex::default(),
            activity: Mutex::default(),
        }
    }

    /// Records an unauthenticated connection from `peer` as opened now; returns its activity.
    pub(super) fn opened(&self, peer: SocketAddr) -> Arc<Activity> {
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, activity.clone());
        activity
    }

    pub(super) fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than `max_handshakes` handshakes are in progress and reserves a place
    /// for one. The accept loop takes it before accepting, so that in a connect storm the
    /// connections beyond the limit wait in the listen queue instead of being refused.
    pub(super) async fn handshake_permit(&self) -> OwnedSemaphorePermit {
        match self.handshake_permits.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => unreachable!("the handshake semaphore is never closed"),
        }
    }

    /// Admits a new connection from `source` to its handshake in the place `permit` reserved.
    /// Per-source and total limits apply after the handshake, so that many agents behind one
    /// address (a reconnect storm through NAT) are not refused while they prove who they are.
    pub(super) fn admit(self: &Arc<Self>, source: IpAddr, permit: OwnedSemaphorePermit) -> Slot {
        self.counts().handshaking += 1;
        Slot {
            tracker: self.clone(),
            source,
            state: SlotState::Handshaking,
            permit: Some(permit),
        }
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
    pub(super) fn should_log(&self, reason: Refusal) -> bool {
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
pub(super) struct Slot {
    pub(super) tracker: Arc<ConnTracker>,
    source: IpAddr,
    state: SlotState,
    /// The handshake's place, given back when the handshake ends.
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// The handshake ended without a valid certificate: the connection stays unauthenticated
    /// if its source and the total are below their limits.
    pub(super) fn unauthenticated(mut self) -> Result<Slot, Refusal> {
        self.permit = None;
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

    /// A connection from `source` admitted to its handshake (the permit is free in these tests).
    fn admit(t: &Arc<ConnTracker>, source: IpAddr) -> Slot {
        let permit = t
            .handshake_permits
            .clone()
            .try_acquire_owned()
            .expect("a free handshake place");
        t.admit(source, permit)
    }

    fn unauth(t: &Arc<ConnTracker>, source: IpAddr) -> Result<Slot, Refusal> {
        admit(t, source).unauthenticated()
    }

    #[test]
    fn a_source_gets_its_share_and_no_more() {
        let t = tracker(10, 2);
        let a1 = unauth(&t, A).unwrap();
        let _a2 = unauth(&t, A).unwrap();
        // Handshakes from a full source go on (the peer may show a certificate)...
        let a3 = admit(&t, A);
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
        let third = admit(&t, B);
        assert_eq!(t.unauthenticated(), 3);
        assert_eq!(third.unauthenticated().unwrap_err(), Refusal::Total);
        assert_eq!(t.unauthenticated(), 2);
        drop(kept);
        assert_eq!(t.unauthenticated(), 0);
        assert!(t.counts().by_source.is_empty());
    }

    #[tokio::test]
    async fn handshakes_beyond_the_cap_wait_for_a_place() {
        let t = Arc::new(ConnTracker::new(ConnectionLimits {
            max_handshakes: 2,
            ..ConnectionLimits::default()
        }));
        let first = t.admit(A, t.handshake_permit().await);
        let second = t.admit(A, t.handshake_permit().await);
        // A zero timeout polls the wait once: it is pending while two are in progress.
        let waited = tokio::time::timeout(Duration::ZERO, t.handshake_permit()).await;
        assert!(
            waited.is_err(),
            "a third handshake waits while two are in progress"
        );
        // A handshake that ends unauthenticated gives its place back at once.
        let _kept = first.unauthenticated().unwrap();
        let third = t.admit(B, t.handshake_permit().await);
        assert_eq!(t.unauthenticated(), 3);
        drop((second, third));
        assert_eq!(t.unauthenticated(), 1);
        assert_eq!(t.handshake_permits.available_permits(), 2);
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
