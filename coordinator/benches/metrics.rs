//! Benchmark of one `/metrics` scrape at fleet size: reading the fleet's view (every node and
//! backup record from a real sled store, the live sessions, failed tasks) and rendering it in
//! both exposition formats, as the metrics listener does for each request.
//!
//! Run: `cargo bench -p lab-coordinator --bench metrics` (release profile); `LAB_BENCH_NODES`
//! sets the fleet size (default 10,000 nodes, each online with one backup).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use lab_coordinator::jobs::failures::FailedTasks;
use lab_coordinator::jobs::state::TaskState;
use lab_coordinator::metrics::fleet::FleetView;
use lab_coordinator::metrics::text::Format;
use lab_coordinator::metrics::Metrics;
use lab_coordinator::sessions::{Outbound, Sessions};
use lab_coordinator::store::{JobBatch, Store};
use lab_proto::store::v1::{BackupRecord, NodeRecord};

const RUNS: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn name(i: usize) -> String {
    format!("node-{i:05}.lab.example")
}

#[tokio::main]
async fn main() {
    let nodes: usize = std::env::var("LAB_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let now = 1_800_000_000_000_i64;
    // Concurrent creates share their flushes (group commit), so filling the store is quick.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..nodes {
        let store = store.clone();
        writes.spawn(async move {
            store
                .create_node(NodeRecord {
                    name: name(i),
                    last_seen_unix_ms: now - 5_000,
                    cert_not_after_unix_ms: now + 20 * 86_400_000,
                    ..Default::default()
                })
                .await
                .unwrap();
        });
    }
    while writes.join_next().await.is_some() {}
    let backups = (0..nodes)
        .map(|i| BackupRecord {
            node: name(i),
            name: "home".into(),
            max_age_ms: 26 * 3_600_000,
            last_success_unix_ms: now - 3_600_000,
            last_drill_unix_ms: now - 7_200_000,
            last_drill_ok: true,
            ..Default::default()
        })
        .collect();
    store
        .write_jobs(JobBatch {
            backups,
            ..Default::default()
        })
        .unwrap();
    store.flush().await.unwrap();
    let sessions = Sessions::default();
    let _held: Vec<_> = (0..nodes)
        .map(|i| sessions.open(&name(i), now, Outbound::channel(1).0))
        .collect();
    let failed = FailedTasks::default();
    for i in 0..200 {
        failed.record(&format!("job-{i}"), TaskState::Failed);
    }
    let metrics = Metrics::default();

    for (format, label) in [
        (Format::OpenMetrics, "OpenMetrics"),
        (Format::PrometheusText, "Prometheus text 0.0.4"),
    ] {
        let mut times = Vec::with_capacity(RUNS);
        let mut reads = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            let view = FleetView::read(&store, &sessions, &failed, 2_592_000, now).unwrap();
            reads.push(start.elapsed());
            let text = metrics.render(sessions.count(), Some(view), format);
            times.push(start.elapsed());
            bytes = text.len();
            std::hint::black_box(text);
        }
        times.sort();
        reads.sort();
        println!(
            "{nodes} nodes, {nodes} backups, {label}: median {:.1} ms (reading the store {:.1} ms), p95 {:.1} ms, max {:.1} ms, {:.2} MiB per scrape",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&reads, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
}
