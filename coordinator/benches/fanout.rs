//! Benchmark of the job engine's fan-out at fleet size, without the network: a job of `true`
//! submitted to every node of a real sled store, each node a task in this process that answers
//! its `Assign` as an agent does (a `Started` update, then a `Finished` one after the first is
//! acknowledged), until every result is durable. Reports the submit (validated, stored, flushed,
//! every Assign queued), the whole fan-out, and this process's CPU time per job, which the
//! machine's load does not distort.
//!
//! Run: `cargo bench -p lab-coordinator --bench fanout` (release profile); `LAB_BENCH_NODES`
//! sets the fleet size (default 10,000), `LAB_BENCH_JOBS` the jobs (default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use lab_coordinator::jobs::{self, Cx, JobSettings, Jobs};
use lab_coordinator::session::OUTBOUND_CAPACITY;
use lab_coordinator::sessions::{Outbound, Sessions};
use lab_coordinator::store::Store;
use lab_coordinator::topology::TopologyIndex;
use lab_proto::store::v1::NodeRecord;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{
    task_spec, task_update, ExecTask, JobSpec, TaskFinished, TaskSpec, TaskStarted, TaskState,
    TaskUpdate,
};
use tokio_stream::StreamExt as _;

fn name(i: usize) -> String {
    format!("node-{i:05}.lab.example")
}

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU time of this process.
fn cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Answers every Assign on `stream` like an agent running `true`; reports each acknowledged
/// result on `done`.
async fn agent(
    cx: Cx<'static>,
    node: String,
    mut stream: impl tokio_stream::Stream<Item = lab_coordinator::sessions::OutboundItem> + Unpin,
    done: tokio::sync::mpsc::UnboundedSender<()>,
) {
    while let Some(Ok(m)) = stream.next().await {
        let Some(CoordMsg::Assign(a)) = m.msg else {
            continue;
        };
        let started = task_update::Body::Started(TaskStarted { unix_ms: 1 });
        let finished = task_update::Body::Finished(TaskFinished {
            state: TaskState::Succeeded as i32,
            ..Default::default()
        });
        for (seq, body) in [(1, started), (2, finished)] {
            let update = TaskUpdate {
                task_id: a.task_id.clone(),
                seq,
                body: Some(body),
            };
            jobs::on_update(&cx, &node, update).await.unwrap().unwrap();
        }
        let _ = done.send(());
    }
}

#[tokio::main]
async fn main() {
    let nodes = env_or("LAB_BENCH_NODES", 10_000);
    let job_count = env_or("LAB_BENCH_JOBS", 5);
    let tmp = tempfile::tempdir().unwrap();
    let store: &'static Store = Box::leak(Box::new(Store::open(tmp.path()).unwrap()));
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..nodes {
        writes.spawn(async move {
            let rec = NodeRecord {
                name: name(i),
                ..Default::default()
            };
            store.create_node(rec).await.unwrap();
        });
    }
    while writes.join_next().await.is_some() {}
    let cx = Cx {
        store,
        jobs: Box::leak(Box::new(Jobs::new(JobSettings::default()))),
        sessions: Box::leak(Box::new(Sessions::default())),
        topology: Box::leak(Box::new(TopologyIndex::new(None))),
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut held = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let (tx, stream) = Outbound::channel(OUTBOUND_CAPACITY);
        held.push(cx.sessions.open(&name(i), 0, tx));
        tokio::spawn(agent(cx, name(i), Box::pin(stream), done_tx.clone()));
    }
    let spec = JobSpec {
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(ExecTask {
                argv: vec!["true".into()],
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let (mut submits, mut totals, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..job_count {
        let (cpu0, t) = (cpu(), Instant::now());
        let (job, targets) = jobs::submit(&cx, "bench", spec.clone()).await.unwrap();
        submits.push(t.elapsed());
        assert_eq!(targets.len(), nodes);
        for _ in 0..nodes {
            done_rx.recv().await.unwrap();
        }
        totals.push(t.elapsed());
        cpus.push(cpu() - cpu0);
        let job = store.job(&job.job_id).unwrap().unwrap();
        assert!(job.done && job.succeeded_tasks as usize == nodes, "{job:?}");
    }
    for v in [&mut submits, &mut totals, &mut cpus] {
        v.sort();
    }
    println!(
        "{nodes} nodes, {job_count} jobs: submit -> all results durable p50 {:.1} ms (max {:.1}), \
         of which submit p50 {:.1} ms (max {:.1}); CPU per job p50 {:.2} s",
        ms(percentile(&totals, 0.5)),
        ms(totals[totals.len() - 1]),
        ms(percentile(&submits, 0.5)),
        ms(submits[submits.len() - 1]),
        percentile(&cpus, 0.5).as_secs_f64(),
    );
}
