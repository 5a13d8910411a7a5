//! Prometheus metrics, served as text on a separate plain-HTTP listener (default 127.0.0.1:7444).
//!
//! The registry holds the process's counters and gauges, bumped by the handlers; the fleet's
//! per-node, per-backup and per-job-name series ([`fleet`]) are read at scrape time and encoded
//! next to them. [`text`] chooses between OpenMetrics and the Prometheus text format.

pub mod fleet;
pub mod text;

use std::sync::atomic::AtomicU64;

use axum::serve::ListenerExt;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// The coordinator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Agents with a live session.
    pub nodes_online: Gauge,
    /// Nodes in the inventory.
    pub nodes_known: Gauge,
    /// Successful enrollments.
    pub enrollments: Counter<u64, AtomicU64>,
    /// Certificates renewed by agents.
    pub renewals: Counter<u64, AtomicU64>,
    /// Sessions opened by agents.
    pub sessions_opened: Counter<u64, AtomicU64>,
    /// Enrollments refused for a bad, expired or used token.
    pub enrollment_failures: Counter<u64, AtomicU64>,
    /// Enrollments refused because their source (or everyone) failed too often.
    pub enrollments_rate_limited: Counter<u64, AtomicU64>,
    /// Renewals refused because the node renewed too often.
    pub renewals_rate_limited: Counter<u64, AtomicU64>,
    /// Connections without a valid client certificate open now (handshaking ones included).
    pub unauthenticated_connections: Gauge,
    /// Connections closed at once, by reason (`per_source`, `total`, `handshakes`).
    pub connections_refused: Family<Vec<(String, String)>, Counter<u64, AtomicU64>>,
    /// Connections without a client certificate closed after being idle or too old.
    pub unauthenticated_closed_idle: Counter<u64, AtomicU64>,
    /// 1 while this coordinator is the active one (always with sled), 0 once it stepped down.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("labfleet");
        let m = Metrics {
            nodes_online: Gauge::default(),
            nodes_known: Gauge::default(),
            enrollments: Counter::default(),
            renewals: Counter::default(),
            sessions_opened: Counter::default(),
            enrollment_failures: Counter::default(),
            enrollments_rate_limited: Counter::default(),
            renewals_rate_limited: Counter::default(),
            unauthenticated_connections: Gauge::default(),
            connections_refused: Family::default(),
            unauthenticated_closed_idle: Counter::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "leader",
            "1 while this coordinator is the active one (etcd store: it holds the leader lease)",
            m.leader.clone(),
        );
        registry.register(
            "nodes_online",
            "Agents with a live session",
            m.nodes_online.clone(),
        );
        registry.register(
            "nodes_known",
            "Nodes in the inventory",
            m.nodes_known.clone(),
        );
        registry.register(
            "enrollments",
            "Successful enrollments",
            m.enrollments.clone(),
        );
        registry.register(
            "certificate_renewals",
            "Node certificates renewed",
            m.renewals.clone(),
        );
        registry.register(
            "sessions_opened",
            "Agent sessions opened",
            m.sessions_opened.clone(),
        );
        registry.register(
            "enrollment_failures",
            "Enrollments refused for a bad, expired or used token",
            m.enrollment_failures.clone(),
        );
        registry.register(
            "enrollments_rate_limited",
            "Enrollments refused because their source or everyone failed too often",
            m.enrollments_rate_limited.clone(),
        );
        registry.register(
            "renewals_rate_limited",
            "Certificate renewals refused because the node renewed too often",
            m.renewals_rate_limited.clone(),
        );
        registry.register(
            "unauthenticated_connections",
            "Connections without a valid client certificate, handshaking ones included",
            m.unauthenticated_connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because a limit was reached",
            m.connections_refused.clone(),
        );
        registry.register(
            "unauthenticated_connections_closed",
            "Connections without a client certificate closed after being idle or too old",
            m.unauthenticated_closed_idle.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Adds the store's series: `labfleet_store_commit_seconds` (how long writers waited for
    /// durability) and `labfleet_etcd_errors_total` (failed etcd commits; 0 with sled).
    pub fn register_store(&mut self, stats: &crate::store::stats::StoreStats) {
        self.registry.register(
            "store_commit_seconds",
            "Seconds until a store write was durable (sled flush or etcd quorum commit)",
            stats.commit_seconds.clone(),
        );
        self.registry.register(
            "etcd_errors",
            "etcd commits that failed or timed out (the coordinator then restarts its store)",
            stats.etcd_errors.clone(),
        );
    }

    /// The exposition in `format`: the registry, after setting the node gauges from `fleet`
    /// (`online` sessions; the store's nodes, left as they were when the store could not be
    /// read, in which case `fleet` is `None` and its series are left out), then the fleet's
    /// series.
    pub fn render(
        &self,
        online: usize,
        fleet: Option<fleet::FleetView>,
        format: text::Format,
    ) -> String {
        self.nodes_online.set(online as i64);
        if let Some(f) = &fleet {
            self.nodes_known.set(f.known_nodes as i64);
        }
        let mut scrape = Registry::with_prefix("labfleet");
        if let Some(f) = fleet {
            scrape.register_collector(Box::new(f));
        }
        let mut out = String::new();
        let encoded = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &scrape))
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        match format {
            text::Format::OpenMetrics => out,
            text::Format::PrometheusText => text::to_prometheus_text(&out),
        }
    }
}

/// What a standby exposes: `labfleet_leader 0` only (it has no store open, so no fleet series).
pub fn standby_exposition(format: text::Format) -> String {
    let mut registry = Registry::with_prefix("labfleet");
    let leader = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    registry.register(
        "leader",
        "1 while this coordinator is the active one (etcd store: it holds the leader lease)",
        leader,
    );
    let mut out = String::new();
    if encode_registry(&mut out, &registry)
        .and_then(|()| encode_eof(&mut out))
        .is_err()
    {
        out.clear();
    }
    match format {
        text::Format::OpenMetrics => out,
        text::Format::PrometheusText => text::to_prometheus_text(&out),
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`; `render` gives the exposition text in
/// the format the request asks for, and runs on a blocking thread (it reads the store).
pub async fn serve<L>(
    listener: L,
    render: impl Fn(text::Format) -> String + Clone + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Io = tokio::net::TcpStream>,
    L::Addr: std::fmt::Debug,
{
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: http::HeaderMap| {
            let render = render.clone();
            async move {
                let accept = headers
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let format = text::Format::negotiate(accept);
                let body = tokio::task::spawn_blocking(move || render(format))
                    .await
                    .unwrap_or_default();
                ([(http::header::CONTENT_TYPE, format.content_type())], body)
            }
        }),
    );
    axum::serve(listener.tap_io(lab_proto::net::set_nodelay), app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
