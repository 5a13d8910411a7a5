//! Job benchmark with real processes on loopback: a coordinator and N real agents.
//!
//! - fan-out: submit a `true` job to all N agents and wait for its JobDone event (every result
//!   durable in the store): p50/p99 over repeated jobs;
//! - output throughput: one task printing many lines; bytes/s from submit to JobDone.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p lab-tests --bench jobs`
//! (`LAB_BENCH_AGENTS`, default 20; `LAB_BENCH_JOBS`, default 20).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use lab_proto::v1::{
    job_event, task_spec, ExecTask, JobSpec, SubmitJobRequest, TaskSpec, WatchJobRequest,
};
use lab_tests::Cluster;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn exec(argv: &[&str], selector: &str) -> JobSpec {
    JobSpec {
        selector: selector.into(),
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(ExecTask {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn main() {
    let agents = env_usize("LAB_BENCH_AGENTS", 20);
    let jobs = env_usize("LAB_BENCH_JOBS", 20);
    eprintln!("starting a coordinator and {agents} agents...");
    let c = Cluster::builder().agents(agents).start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = c.coord.admin_client().await;

        // Submit, then follow until JobDone; returns (elapsed, output bytes seen).
        let run = |spec: JobSpec| {
            let mut client = client.clone();
            async move {
                let start = Instant::now();
                let job = client
                    .submit_job(SubmitJobRequest { spec: Some(spec) })
                    .await
                    .unwrap()
                    .into_inner();
                let mut events = client
                    .watch_job(WatchJobRequest {
                        job_id: job.job_id,
                        from_seq: 0,
                        node: String::new(),
                        stored_only: false,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let mut bytes = 0u64;
                while let Some(e) = events.message().await.unwrap() {
                    match e.body {
                        Some(job_event::Body::Output(o)) => bytes += o.data.len() as u64,
                        Some(job_event::Body::Done(d)) => {
                            assert_eq!(d.failed, 0, "a benchmark task failed");
                            break;
                        }
                        _ => {}
                    }
                }
                (start.elapsed(), bytes)
            }
        };

        let mut times = Vec::new();
        for _ in 0..jobs {
            times.push(run(exec(&["true"], "")).await.0);
        }
        times.sort();
        println!("fan-out of `true` to {agents} real agents, {jobs} jobs (submit -> all results durable):");
        println!("  p50 {:7.1} ms   p99 {:7.1} ms   max {:7.1} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3);

        let lines = 200_000;
        let cmd = format!("yes 'labfleet output throughput line of sixty-four bytes ........' | head -n {lines}");
        let (elapsed, bytes) = run(exec(&["sh", "-c", &cmd], "node=n1")).await;
        println!("output of one task ({lines} lines), submit -> done:");
        println!("  {:.1} MB in {:.2} s = {:.1} MB/s streamed to this watcher and stored (tail kept)",
            bytes as f64 / 1e6, elapsed.as_secs_f64(), bytes as f64 / 1e6 / elapsed.as_secs_f64());
    });
}
