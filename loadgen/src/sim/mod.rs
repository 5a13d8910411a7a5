//! The simulated fleet: N agents in this process, each with its own key, certificate, mTLS
//! connection and `Connect` session ([`session`]), and its own pretend task runner ([`tasks`]).
//!
//! [`Stats`] is what the scenarios read: agents in a session right now, and the time of every
//! connection attempt and every `Welcome` (seconds since the fleet started), so reconnect
//! spreads can be plotted.

pub mod session;
pub mod tasks;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab_proto::tls::{client_config, ClientIdentity};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::enroll::SimIdentity;

/// Most distinct error messages kept.
const MAX_ERROR_KINDS: usize = 32;

/// Counters of the whole fleet.
#[derive(Default)]
pub struct Stats {
    connected: AtomicUsize,
    welcomes: AtomicU64,
    attempts: AtomicU64,
    assigns: AtomicU64,
    finished: AtomicU64,
    results_acked: AtomicU64,
    facts_acked: AtomicUsize,
    epoch: Mutex<Option<Instant>>,
    attempt_log: Mutex<Vec<f32>>,
    welcome_log: Mutex<Vec<f32>>,
    errors: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    fn since_epoch(&self) -> f32 {
        let mut epoch = lock(&self.epoch);
        epoch
            .get_or_insert_with(Instant::now)
            .elapsed()
            .as_secs_f32()
    }

    /// The instant that log times count from.
    pub fn epoch(&self) -> Instant {
        *lock(&self.epoch).get_or_insert_with(Instant::now)
    }

    /// Seconds since the epoch, as the logs count.
    pub fn now(&self) -> f32 {
        self.since_epoch()
    }

    fn note_attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let t = self.since_epoch();
        lock(&self.attempt_log).push(t);
    }

    fn note_welcome(&self) {
        self.welcomes.fetch_add(1, Ordering::Relaxed);
        self.connected.fetch_add(1, Ordering::Relaxed);
        let t = self.since_epoch();
        lock(&self.welcome_log).push(t);
    }

    fn note_session_end(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    fn note_error(&self, e: &anyhow::Error) {
        let mut errors = lock(&self.errors);
        let text = format!("{e:#}");
        // Keep the kind, not every node name or address in it.
        let key: String = text.chars().take(120).collect();
        if errors.len() < MAX_ERROR_KINDS || errors.contains_key(&key) {
            *errors.entry(key).or_default() += 1;
        }
    }

    pub(crate) fn note_assign(&self) {
        self.assigns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    fn note_facts_acked(&self) {
        self.facts_acked.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_result_acked(&self) {
        self.results_acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Agents in a session now (after `Welcome`).
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Fact documents acknowledged so far.
    pub fn facts_acked(&self) -> usize {
        self.facts_acked.load(Ordering::Relaxed)
    }

    /// `Welcome`s received so far.
    pub fn welcomes(&self) -> u64 {
        self.welcomes.load(Ordering::Relaxed)
    }

    /// Connection attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Tasks started so far.
    pub fn assigns(&self) -> u64 {
        self.assigns.load(Ordering::Relaxed)
    }

    /// Final updates acknowledged so far.
    pub fn results_acked(&self) -> u64 {
        self.results_acked.load(Ordering::Relaxed)
    }

    /// Times (seconds since the epoch) of `Welcome`s at or after `from`.
    pub fn welcomes_since(&self, from: f32) -> Vec<f32> {
        lock(&self.welcome_log)
            .iter()
            .copied()
            .filter(|t| *t >= from)
            .collect()
    }

    /// Times of connection attempts at or after `from`.
    pub fn attempts_since(&self, from: f32) -> Vec<f32> {
        lock(&self.attempt_log)
            .iter()
            .copied()
            .filter(|t| *t >= from)
            .collect()
    }

    /// Session errors by message, most frequent first.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = lock(&self.errors)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }
}

/// How the simulated agents reach the coordinator.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Coordinator HOST:PORT.
    pub addr: String,
    /// The coordinator's CA (PEM).
    pub ca_pem: String,
    /// Source addresses, used round robin (127.0.0.x).
    pub sources: Vec<IpAddr>,
    /// First reconnect delay (the real agent's default is 500 ms).
    pub reconnect_base: Duration,
    /// Longest reconnect delay (the real agent's default is 30 s).
    pub reconnect_cap: Duration,
}

/// The running fleet.
pub struct Fleet {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Number of agents.
    pub size: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Builds every agent's TLS config (before a storm, so that its cost is not in the figures).
pub fn build_agents(
    ids: &[SimIdentity],
    opts: &FleetOptions,
) -> anyhow::Result<Vec<session::SimAgent>> {
    anyhow::ensure!(!opts.sources.is_empty(), "no source addresses");
    let mut agents = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let tls = client_config(
            &opts.ca_pem,
            Some(&ClientIdentity {
                cert_pem: id.cert_pem.clone(),
                key_pem: id.key_pem.clone(),
            }),
        )?;
        agents.push(session::SimAgent {
            name: id.name.clone(),
            tls,
            bind: opts.sources[i % opts.sources.len()],
        });
    }
    Ok(agents)
}

impl Fleet {
    /// Starts all sessions at once; log times count from now.
    pub fn launch(agents: Vec<session::SimAgent>, opts: &FleetOptions) -> Fleet {
        let stats = Arc::new(Stats::default());
        stats.epoch();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(session::Shared {
            addr: opts.addr.clone(),
            reconnect_base: opts.reconnect_base,
            reconnect_cap: opts.reconnect_cap,
            stats: stats.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        });
        let size = agents.len();
        for agent in agents {
            tracker.spawn(session::run(agent, shared.clone()));
        }
        Fleet {
            stats,
            size,
            shutdown,
            tracker,
        }
    }

    /// Waits until `want` agents are in a session; returns the time taken, or fails after
    /// `timeout` saying how many made it.
    pub async fn wait_connected(&self, want: usize, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let now = self.stats.connected();
            if now >= want {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "only {now} of {want} simulated agents connected within {timeout:?}; errors: {:?}",
                    self.stats.errors().into_iter().take(5).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends every session and waits (at most 30 s) for the agents to stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.tracker.wait()).await;
    }
}

/// `count` loopback source addresses: 127.0.0.2, 127.0.0.3, …
pub fn loopback_sources(count: usize) -> Vec<IpAddr> {
    (0..count.clamp(1, 250))
        .map(|i| IpAddr::from([127, 0, 0, (i + 2) as u8]))
        .collect()
}
