//! Job scenarios over the operator API: `fan-out` (latency of one job to every agent),
//! `throughput` (results per second, sustained) and `streaming` (output line latency).
//!
//! "Done" is the job's `JobDone` event, which the coordinator emits only after every task's
//! final state is flushed to its store; waiting uses a `WatchJob` filtered to no node, so the
//! waiter receives nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab_proto::v1::job_event;

use super::{Section, SimEnv};
use crate::admin::ExecJob;
use crate::procstat::{self, cpu_percent};
use crate::report::{mib, Summary};
use crate::sim::tasks::now_us;

/// Deadline of benchmark jobs for nodes that are offline (none should be).
const JOB_DEADLINE: Duration = Duration::from_secs(600);

/// Submits `true` to every agent `jobs` times, one after the other.
pub async fn fan_out(env: &SimEnv, jobs: usize) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let job = ExecJob::everywhere(&["true"], JOB_DEADLINE);
    let coord0 = env.coord.sample()?;
    let started = Instant::now();
    let (mut totals, mut submits) = (Vec::new(), Vec::new());
    for _ in 0..jobs {
        let t = Instant::now();
        let (id, tasks) = env.admin.submit(&job).await?;
        submits.push(t.elapsed().as_secs_f64());
        let done = env
            .admin
            .finish_or_cancel(&id, env.args.job_timeout)
            .await?;
        totals.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            tasks == n && done.succeeded as usize == n,
            "job {id}: {tasks} tasks, {} succeeded, {} failed, {} other (expected {n} succeeded)",
            done.succeeded,
            done.failed,
            done.other
        );
    }
    let took = started.elapsed();
    let coord1 = env.coord.sample()?;
    let total = Summary::of(&totals);
    let submit = Summary::of(&submits);
    let mut s = Section::new(
        "fan_out",
        format!("fan-out: `true` on {n} agents, {jobs} jobs one after the other (submit -> all results durable)"),
    );
    s.row("submit -> JobDone", total.brief(1e3, "ms"));
    s.row("of which SubmitJob RPC", submit.brief(1e3, "ms"));
    s.row(
        "results per second within a job (at p50)",
        format!("{:.0}", n as f64 / total.p50.max(1e-9)),
    );
    s.row(
        "coordinator CPU",
        format!(
            "{:.2} s per job ({:.0} % of one core)",
            (coord1.cpu_secs - coord0.cpu_secs) / jobs.max(1) as f64,
            cpu_percent(&coord0, &coord1, took)
        ),
    );
    s.row("coordinator RSS after", mib(coord1.rss_kib));
    s.set("agents", n);
    s.set("jobs", jobs);
    s.set("submit_to_done_secs", total);
    s.set("submit_rpc_secs", submit);
    s.set(
        "coordinator_cpu_secs_per_job",
        (coord1.cpu_secs - coord0.cpu_secs) / jobs.max(1) as f64,
    );
    s.set("coordinator_rss_kib", coord1.rss_kib);
    Ok(s)
}

/// Keeps `concurrency` jobs of `true` to every agent in flight for `sustain`.
pub async fn throughput(
    env: &SimEnv,
    sustain: Duration,
    concurrency: usize,
) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let results = Arc::new(AtomicU64::new(0));
    let jobs_done = Arc::new(AtomicU64::new(0));
    let coord0 = env.coord.sample()?;
    let self0 = procstat::sample_self()?;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (admin, results, jobs_done) = (env.admin.clone(), results.clone(), jobs_done.clone());
        let job_timeout = env.args.job_timeout;
        workers.spawn(async move {
            let job = ExecJob::everywhere(&["true"], JOB_DEADLINE);
            while started.elapsed() < sustain {
                let (id, _) = admin.submit(&job).await?;
                let done = admin.finish_or_cancel(&id, job_timeout).await?;
                anyhow::ensure!(done.failed == 0, "job {id}: {} tasks failed", done.failed);
                results.fetch_add(u64::from(done.succeeded), Ordering::Relaxed);
                jobs_done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    let mut max_rss = coord0.rss_kib;
    while !workers.is_empty() {
        tokio::select! {
            joined = workers.join_next() => {
                if let Some(r) = joined {
                    r??;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                max_rss = max_rss.max(env.coord.sample()?.rss_kib);
            }
        }
    }
    let took = started.elapsed();
    let coord1 = env.coord.sample()?;
    let self1 = procstat::sample_self()?;
    let results = results.load(Ordering::Relaxed);
    let rate = results as f64 / took.as_secs_f64();
    let mut s = Section::new(
        "throughput",
        format!(
            "throughput: jobs of `true` to {n} agents, {concurrency} in flight, for {}",
            humantime::format_duration(sustain)
        ),
    );
    s.row(
        "durable task results per second",
        format!(
            "{rate:.0} ({results} results in {:.1} s)",
            took.as_secs_f64()
        ),
    );
    s.row("jobs", jobs_done.load(Ordering::Relaxed).to_string());
    s.row(
        "coordinator CPU",
        format!(
            "{:.0} % of one core; {:.0} µs per result",
            cpu_percent(&coord0, &coord1, took),
            (coord1.cpu_secs - coord0.cpu_secs) / (results.max(1) as f64) * 1e6
        ),
    );
    s.row(
        "coordinator RSS",
        format!("{} (max during {})", mib(coord1.rss_kib), mib(max_rss)),
    );
    s.row(
        "lab-loadgen CPU",
        format!("{:.0} % of one core", cpu_percent(&self0, &self1, took)),
    );
    s.set("agents", n);
    s.set("concurrency", concurrency);
    s.set("secs", took.as_secs_f64());
    s.set("results", results);
    s.set("results_per_sec", rate);
    s.set("jobs", jobs_done.load(Ordering::Relaxed));
    s.set(
        "coordinator_cpu_percent",
        cpu_percent(&coord0, &coord1, took),
    );
    s.set("coordinator_rss_kib", coord1.rss_kib);
    s.set("coordinator_rss_max_kib", max_rss);
    Ok(s)
}

/// One `echo` job to the nodes `selector` matches; returns the latency of every output line
/// (agent made it -> this watcher got it), in seconds.
async fn stream_round(env: &SimEnv, selector: &str) -> anyhow::Result<Vec<f64>> {
    let mut job = ExecJob::everywhere(&["echo", "line", "{now_us}"], JOB_DEADLINE);
    job.selector = selector.to_owned();
    // The agents hold their output back for a second, so the watcher is live before it comes.
    job.env.insert("LAB_LOADGEN_DELAY_MS".into(), "1000".into());
    let (id, tasks) = env.admin.submit(&job).await?;
    let mut events = env.admin.watch(&id, "").await?;
    let mut latencies = Vec::with_capacity(tasks);
    let watched = tokio::time::timeout(env.args.job_timeout, async {
        while let Some(e) = events.message().await? {
            match e.body {
                Some(job_event::Body::Output(o)) => {
                    let now = now_us();
                    let text = String::from_utf8_lossy(&o.data);
                    for line in text.lines() {
                        if let Some(ts) =
                            line.rsplit(' ').next().and_then(|t| t.parse::<i64>().ok())
                        {
                            latencies.push((now - ts) as f64 / 1e6);
                        }
                    }
                }
                Some(job_event::Body::Done(_)) => return Ok(()),
                _ => {}
            }
        }
        anyhow::bail!("the watch of job {id} ended without JobDone")
    })
    .await;
    match watched {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = env.admin.cancel(&id).await;
            return Err(e);
        }
        Err(_) => {
            let _ = env.admin.cancel(&id).await;
            anyhow::bail!(
                "streaming job {id} not done within {:?}; cancelled",
                env.args.job_timeout
            );
        }
    }
    anyhow::ensure!(
        latencies.len() == tasks,
        "job {id}: {} output lines for {tasks} tasks",
        latencies.len()
    );
    Ok(latencies)
}

/// Output line latency with one node streaming, then with all N at once.
pub async fn streaming(env: &SimEnv, rounds: usize) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let first = env
        .ids
        .list
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let (mut one, mut all) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        one.extend(stream_round(env, &format!("node={first}")).await?);
    }
    // All nodes at once; a failure here (an overloaded coordinator) is reported, and the
    // one-node figures are kept.
    let coord0 = env.coord.sample()?;
    let started = Instant::now();
    let mut all_error = None;
    for _ in 0..rounds {
        match stream_round(env, "").await {
            Ok(l) => all.extend(l),
            Err(e) => {
                all_error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let coord1 = env.coord.sample()?;
    let (one, all) = (Summary::of(&one), Summary::of(&all));
    let mut s = Section::new(
        "streaming",
        format!("streaming: output line latency, agent -> coordinator (stored) -> WatchJob watcher, {rounds} rounds"),
    );
    s.row("one node streams", one.brief(1e3, "ms"));
    s.row(
        format!("all {n} nodes stream one line at once"),
        match &all_error {
            None => all.brief(1e3, "ms"),
            Some(e) => format!("FAILED: {e}"),
        },
    );
    s.row(
        "coordinator CPU in the all-nodes rounds",
        format!(
            "{:.0} % of one core",
            cpu_percent(&coord0, &coord1, started.elapsed())
        ),
    );
    s.set("all_nodes_error", all_error);
    s.set("agents", n);
    s.set("rounds", rounds);
    s.set("one_node_latency_secs", one);
    s.set("all_nodes_latency_secs", all);
    Ok(s)
}
