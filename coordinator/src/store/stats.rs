//! The store's own metrics: how long writers wait for their writes to be durable (a sled flush,
//! an etcd quorum commit) and how many etcd commits failed. The coordinator's registry
//! ([`crate::metrics`]) serves them; the store only counts.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds of the commit latency buckets, seconds: a sled flush on an SSD takes about a
/// millisecond, an etcd commit on a LAN a few, a slow disk or a busy etcd up to seconds.
pub const COMMIT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters shared by every clone of a store (cheap to clone: the metrics are shared).
#[derive(Clone)]
pub struct StoreStats {
    /// Seconds from a flush's start until the write was durable (successful flushes).
    pub commit_seconds: Histogram,
    /// Flushes of an etcd store that failed or timed out.
    pub etcd_errors: Counter<u64, AtomicU64>,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            commit_seconds: Histogram::new(COMMIT_BUCKETS),
            etcd_errors: Counter::default(),
        }
    }
}
