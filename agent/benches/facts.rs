//! Benchmark of one full fact collection on this machine: wall time over repeated runs in one
//! process, and the peak RSS of a fresh process that does exactly one collection.
//!
//! Run: `cargo bench -p lab-agent --bench facts` (release profile). Prints a table and writes
//! `target/tmp/bench-facts.json`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 50;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    // Child mode: one collection, then report this process's peak RSS.
    if std::env::args().any(|a| a == "--one-collection") {
        let facts = lab_agent::facts::collect(Path::new("/"));
        let json = lab_agent::facts::to_json(&facts).to_string();
        println!("{} {}", peak_rss_kib().unwrap_or(0), json.len());
        return;
    }
    // Baseline child: same binary, no collection.
    if std::env::args().any(|a| a == "--baseline") {
        println!("{} 0", peak_rss_kib().unwrap_or(0));
        return;
    }

    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let facts = lab_agent::facts::collect(Path::new("/"));
        let doc = lab_agent::facts::to_json(&facts);
        std::hint::black_box(doc);
        times.push(start.elapsed());
    }
    times.sort();

    let child = |flag: &str| -> (u64, u64) {
        let exe = std::env::current_exe().unwrap_or_default();
        let out = Command::new(exe).arg(flag).output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut parts = text.split_whitespace().map(|v| v.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let (peak_kib, doc_bytes) = child("--one-collection");
    let (baseline_kib, _) = child("--baseline");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("full fact collection, {RUNS} runs in one process (/):");
    println!("  min     {:8.2} ms", ms(times[0]));
    println!("  median  {:8.2} ms", ms(percentile(&times, 0.5)));
    println!("  p95     {:8.2} ms", ms(percentile(&times, 0.95)));
    println!("  max     {:8.2} ms", ms(times[times.len() - 1]));
    println!("fresh process doing one collection:");
    println!("  peak RSS           {:6} KiB", peak_kib);
    println!(
        "  baseline peak RSS  {:6} KiB (same binary, no collection)",
        baseline_kib
    );
    println!("  fact document      {:6} bytes of JSON", doc_bytes);

    let json = format!(
        "{{\"runs\":{RUNS},\"min_ms\":{:.3},\"median_ms\":{:.3},\"p95_ms\":{:.3},\"max_ms\":{:.3},\"peak_rss_kib\":{peak_kib},\"baseline_rss_kib\":{baseline_kib},\"document_bytes\":{doc_bytes}}}\n",
        ms(times[0]),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(times[times.len() - 1]),
    );
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-facts.json"),
        json,
    );
}
