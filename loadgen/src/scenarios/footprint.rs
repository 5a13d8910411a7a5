//! `agent-footprint`: one real `lab-agent run` process — idle, collecting facts every second,
//! and running tasks that stream output. CPU and RSS are the agent process's own (its task
//! children, e.g. `yes`, are not counted).

use std::path::Path;
use std::time::{Duration, Instant};

use lab_proto::v1::job_event;

use super::real::{wait_online, write_empty_config, RealAgent};
use super::Section;
use crate::admin::{Admin, ExecJob};
use crate::coordinator::CoordinatorProc;
use crate::procstat::{cpu_percent, ProcSample};
use crate::report::mib;

/// CPU and RSS of the agent over one phase.
struct Phase {
    secs: f64,
    cpu_secs: f64,
    cpu_percent: f64,
    rss_mean_kib: f64,
    rss_max_kib: u64,
    hwm_kib: u64,
    /// Private and proportional memory at the end of the phase.
    private_kib: u64,
    pss_kib: u64,
    anon_kib: u64,
    threads: u64,
}

/// Samples `agent` every `every` until `done` completes; returns the phase figures and the
/// output of `done`.
async fn measure<T>(
    agent: &RealAgent,
    every: Duration,
    done: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(Phase, T)> {
    let s0 = agent.sample()?;
    let started = Instant::now();
    let mut rss = vec![s0.rss_kib];
    tokio::pin!(done);
    let out = loop {
        tokio::select! {
            r = &mut done => break r?,
            _ = tokio::time::sleep(every) => rss.push(agent.sample()?.rss_kib),
        }
    };
    let took = started.elapsed();
    let s1: ProcSample = agent.sample()?;
    rss.push(s1.rss_kib);
    Ok((
        Phase {
            secs: took.as_secs_f64(),
            cpu_secs: s1.cpu_secs - s0.cpu_secs,
            cpu_percent: cpu_percent(&s0, &s1, took),
            rss_mean_kib: rss.iter().sum::<u64>() as f64 / rss.len() as f64,
            rss_max_kib: rss.iter().copied().max().unwrap_or(0),
            hwm_kib: s1.hwm_kib,
            private_kib: s1.private_kib,
            pss_kib: s1.pss_kib,
            anon_kib: s1.anon_kib,
            threads: s1.threads,
        },
        out,
    ))
}

/// Runs a job on `node` and reads all its events (as `labctl run` would); returns output bytes.
async fn run_job(admin: &Admin, node: &str, argv: &[&str]) -> anyhow::Result<u64> {
    let mut job = ExecJob::everywhere(argv, Duration::from_secs(60));
    job.selector = format!("node={node}");
    let (id, _) = admin.submit(&job).await?;
    let mut events = admin.watch(&id, "").await?;
    let mut bytes = 0;
    while let Some(e) = events.message().await? {
        match e.body {
            Some(job_event::Body::Output(o)) => bytes += o.data.len() as u64,
            Some(job_event::Body::Done(d)) => {
                anyhow::ensure!(d.succeeded == 1, "footprint job {id} did not succeed");
                return Ok(bytes);
            }
            _ => {}
        }
    }
    anyhow::bail!("the watch of job {id} ended without JobDone")
}

fn phase_row(s: &mut Section, key: &str, title: &str, p: &Phase) {
    s.row(
        title,
        format!(
            "CPU {:.3} % of one core ({:.3} s in {:.1} s); RSS mean {}, max {}; anonymous {}",
            p.cpu_percent,
            p.cpu_secs,
            p.secs,
            mib(p.rss_mean_kib as u64),
            mib(p.rss_max_kib),
            mib(p.anon_kib)
        ),
    );
    s.set(
        key,
        serde_json::json!({
            "secs": p.secs, "cpu_secs": p.cpu_secs, "cpu_percent": p.cpu_percent,
            "rss_mean_kib": p.rss_mean_kib, "rss_max_kib": p.rss_max_kib, "hwm_kib": p.hwm_kib,
            "private_kib": p.private_kib, "pss_kib": p.pss_kib, "anon_kib": p.anon_kib,
            "threads": p.threads,
        }),
    );
}

/// The `agent-footprint` scenario on a started coordinator.
pub async fn agent_footprint(
    coord: &CoordinatorProc,
    admin: &Admin,
    bin_dir: &Path,
    idle: Duration,
    facts_window: Duration,
) -> anyhow::Result<Section> {
    let root = coord.data_dir().join("footprint-agent");
    let name = "footprint-1";
    let mut agent = RealAgent::enroll(bin_dir, admin, &root, name).await?;
    write_empty_config(&root.join(name))?;
    let mut s = Section::new(
        "agent_footprint",
        "agent footprint: one real `lab-agent run`",
    );

    // Idle, with the default fact interval (60 s: one re-collection per minute, nothing sent
    // when nothing changed) and heartbeats at the coordinator's interval.
    agent.start(bin_dir, &[])?;
    wait_online(admin, 1).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (p, ()) = measure(&agent, Duration::from_secs(1), async {
        tokio::time::sleep(idle).await;
        Ok(())
    })
    .await?;
    phase_row(
        &mut s,
        "idle",
        "idle (heartbeats, default fact interval 60 s)",
        &p,
    );
    s.row("idle peak RSS since start (VmHWM)", mib(p.hwm_kib));
    s.row(
        "idle memory: anonymous / private / PSS / threads",
        format!(
            "{} / {} / {} / {} (anonymous: heap and stacks; the rest of RSS is clean pages of the binary and libraries, which the kernel can drop and re-read)",
            mib(p.anon_kib),
            mib(p.private_kib),
            mib(p.pss_kib),
            p.threads
        ),
    );
    agent.stop().await?;

    // A fact collection every second.
    agent.start(bin_dir, &["--facts-interval", "1s"])?;
    wait_online(admin, 1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (p, ()) = measure(&agent, Duration::from_millis(200), async {
        tokio::time::sleep(facts_window).await;
        Ok(())
    })
    .await?;
    let per_collection_ms = p.cpu_secs / p.secs.max(1e-9) * 1e3;
    phase_row(
        &mut s,
        "facts_every_second",
        "collecting facts every second",
        &p,
    );
    s.row(
        "CPU per fact collection",
        format!("{per_collection_ms:.1} ms (VmHWM {})", mib(p.hwm_kib)),
    );
    s.set("cpu_ms_per_fact_collection", per_collection_ms);
    agent.stop().await?;

    // Streaming tasks, followed by a watcher like `labctl run`.
    agent.start(bin_dir, &[])?;
    wait_online(admin, 1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slow = "i=0; while [ $i -lt 100 ]; do echo \"line $i of a slow stream\"; i=$((i+1)); sleep 0.1; done";
    let (p, bytes) = measure(
        &agent,
        Duration::from_millis(100),
        run_job(admin, name, &["sh", "-c", slow]),
    )
    .await?;
    phase_row(
        &mut s,
        "stream_10_lines_per_sec",
        "streaming 10 lines/s for 10 s",
        &p,
    );
    s.set("stream_10_lines_per_sec_bytes", bytes);
    let fast =
        "yes 'labfleet footprint streaming line of sixty-four bytes ......' | head -n 200000";
    let (p, bytes) = measure(
        &agent,
        Duration::from_millis(100),
        run_job(admin, name, &["sh", "-c", fast]),
    )
    .await?;
    phase_row(
        &mut s,
        "stream_burst",
        &format!("streaming {:.1} MB as fast as possible", bytes as f64 / 1e6),
        &p,
    );
    s.row("peak RSS since start (VmHWM)", mib(p.hwm_kib));
    s.set("stream_burst_bytes", bytes);
    agent.stop().await?;
    Ok(s)
}
