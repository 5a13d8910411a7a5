//! Benchmark of the `GetTopology` answer at fleet size: the join of every node's fact summary
//! (after a change) and the answer itself (the cached join with online state marked, as JSON),
//! as the handler computes them.
//!
//! Run: `cargo bench -p lab-coordinator --bench topology` (release profile); `LAB_BENCH_NODES`
//! sets the fleet size (default 10,000: one Proxmox host per 20 nodes carrying the other 19 as
//! guests, every node a k3s node, a Ceph client config on every host).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use lab_coordinator::topology::TopologyIndex;
use serde_json::{json, Value};

const RUNS: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn uuid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

fn name(i: usize) -> String {
    format!("node-{i:05}.lab.example")
}

/// Node `i`'s facts: every 20th node is a PVE host with the next 19 as guests.
fn facts(i: usize) -> Value {
    let mut doc = json!({
        "platform": {"hostname": name(i), "os": "debian"},
        "hardware": {"dmi": {"product_uuid": uuid(i)},
                     "nics": [{"name": "eth0", "addresses": [format!("10.{}.{}.{}/16", i / 65536, (i / 256) % 256, i % 256)]}]},
        "containers": {"k3s": {"binary": true, "role": if i % 20 == 1 { "server" } else { "agent" },
                               "token_sha256": format!("{:064x}", i / 100)}},
    });
    if i.is_multiple_of(20) {
        let guests: Vec<Value> = (i + 1..i + 20)
            .map(|g| {
                json!({"vmid": 100 + g % 20, "type": "qemu", "name": format!("vm{g}"),
                            "smbios_uuid": uuid(g).to_uppercase()})
            })
            .collect();
        doc["proxmox"] =
            json!({"node": format!("pve{}", i / 20), "cluster": "lab", "guests": guests});
        doc["storage"] = json!({"ceph": {"fsid": "4a1b2c3d-5e6f-4789-8abc-def012345678",
                                         "status": {"health": "HEALTH_OK", "mons": 3, "osds": 12,
                                                    "osds_up": 12, "osds_in": 12}}});
    }
    doc
}

fn main() {
    let nodes: usize = std::env::var("LAB_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let index = TopologyIndex::default();
    let docs: Vec<Value> = (0..nodes).map(facts).collect();
    let start = Instant::now();
    for (i, doc) in docs.iter().enumerate() {
        index.update(&name(i), doc);
    }
    let updates = start.elapsed();

    let online = |n: &str| !n.ends_with('7');
    let mut joins = Vec::with_capacity(RUNS);
    let mut answers = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for run in 0..RUNS {
        // A summary change (a guest renamed) makes the next read join again.
        let mut doc = docs[0].clone();
        doc["proxmox"]["guests"][0]["name"] = json!(format!("renamed-{run}"));
        index.update(&name(0), &doc);
        let start = Instant::now();
        std::hint::black_box(index.joined());
        joins.push(start.elapsed());
        let start = Instant::now();
        let json = serde_json::to_string(&index.topology(&online)).unwrap();
        answers.push(start.elapsed());
        bytes = json.len();
    }
    joins.sort();
    answers.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{nodes} nodes ({} hosts): first summaries {:.1} ms in all; join after a change: median {:.1} ms, p95 {:.1} ms; GetTopology answer (cached join, online marked, JSON): median {:.1} ms, p95 {:.1} ms, max {:.1} ms, {:.2} MiB",
        nodes.div_ceil(20),
        ms(updates),
        ms(percentile(&joins, 0.5)),
        ms(percentile(&joins, 0.95)),
        ms(percentile(&answers, 0.5)),
        ms(percentile(&answers, 0.95)),
        ms(answers[answers.len() - 1]),
        bytes as f64 / (1024.0 * 1024.0)
    );
    let t = index.topology(&online);
    assert_eq!(t.hypervisors.len(), nodes.div_ceil(20));
    assert!(
        t.problems.is_empty(),
        "{:?}",
        &t.problems[..t.problems.len().min(3)]
    );
}
