//! `restart`: SIGKILL the coordinator while every agent runs a task of the same job, start it
//! again, and measure how the fleet comes back: time until all reconnected, the spread of
//! connection attempts and reconnects (no herd), and whether every result arrived.

use std::time::{Duration, Instant};

use super::{Section, SimEnv};
use crate::admin::ExecJob;
use crate::report::{self, bars, mib, Summary};
use crate::sim::Fleet;

/// Bucket width of the reconnect histograms.
const BUCKET_SECS: f64 = 0.5;

/// Runs the restart scenario on a connected fleet.
pub async fn restart(
    env: &mut SimEnv,
    fleet: &Fleet,
    task_secs: f64,
    down: Duration,
    job_nodes: usize,
) -> anyhow::Result<Section> {
    let n = env.args.agents;
    let stats = &fleet.stats;
    let assigned_before = stats.assigns();
    let mut job = ExecJob::everywhere(
        &["sleep", &task_secs.to_string()],
        Duration::from_secs(3600),
    );
    let k = if job_nodes == 0 || job_nodes >= n {
        n
    } else {
        let names: Vec<&str> = env.ids.list[..job_nodes]
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        job.selector = format!("node in ({})", names.join(","));
        job_nodes
    };
    let (job_id, tasks) = env.admin.submit(&job).await?;
    anyhow::ensure!(tasks == k, "job {job_id} has {tasks} tasks for {k} agents");
    // Every target has the task running before the kill.
    let deadline = Instant::now() + Duration::from_secs(300);
    while stats.assigns() < assigned_before + k as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {k} agents started the task",
            stats.assigns() - assigned_before
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running_at_kill = Instant::now();
    let kill_at = stats.now();
    env.coord.kill9().await?;
    tokio::time::sleep(down).await;
    let startup = env.coord.start().await?;
    let restarted_at = stats.now() - kill_at;
    // Back: every agent had a Welcome since the kill and is in a session.
    let deadline = Instant::now() + env.args.connect_timeout;
    while stats.welcomes_since(kill_at).len() < n || stats.connected() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} agents reconnected within {:?}",
            stats.welcomes_since(kill_at).len(),
            env.args.connect_timeout
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_back = stats.now() - kill_at;
    let after_back = env.coord.sample()?;
    // The job must finish with every result, although the coordinator died in the middle.
    let admin = crate::admin::Admin::connect(&env.coord.labctl_config()).await?;
    env.admin = admin;
    let done = env
        .admin
        .finish_or_cancel(
            &job_id,
            Duration::from_secs_f64(task_secs) + env.args.job_timeout,
        )
        .await?;
    let job_secs = running_at_kill.elapsed().as_secs_f64();

    let rel = |v: Vec<f32>| -> Vec<f64> { v.into_iter().map(|t| f64::from(t - kill_at)).collect() };
    let welcomes = rel(stats.welcomes_since(kill_at));
    let attempts = rel(stats.attempts_since(kill_at));
    let back = Summary::of(&welcomes);
    let w_hist = report::histogram(&welcomes, BUCKET_SECS);
    let a_hist = report::histogram(&attempts, BUCKET_SECS);
    let peak_w = report::peak_rate(&welcomes, 0.1);
    let peak_a = report::peak_rate(&attempts, 0.1);
    let lost = k.saturating_sub(done.succeeded as usize);

    report::print_out(&format!(
        "\nreconnects after the kill ({BUCKET_SECS} s buckets, seconds since SIGKILL):\n{}\nconnection attempts after the kill:\n{}\n",
        bars(&w_hist, BUCKET_SECS, "s"),
        bars(&a_hist, BUCKET_SECS, "s")
    ));

    let mut s = Section::new(
        "restart",
        format!("restart: SIGKILL with {n} agents connected and a {task_secs} s task running on {k} of them, then start again"),
    );
    s.row(
        "coordinator listening again",
        format!(
            "{restarted_at:.2} s after the kill (start-up {:.2} s)",
            startup.as_secs_f64()
        ),
    );
    s.row(
        "all agents reconnected",
        format!("{all_back:.2} s after the kill"),
    );
    s.row("reconnect time per agent", back.brief(1.0, "s"));
    s.row(
        "connection attempts after the kill",
        format!(
            "{} ({:.2} per agent)",
            attempts.len(),
            attempts.len() as f64 / n as f64
        ),
    );
    s.row(
        "busiest 100 ms",
        format!(
            "{peak_a} attempts, {peak_w} reconnects ({:.1} % of the fleet)",
            peak_w as f64 * 100.0 / n as f64
        ),
    );
    s.row(
        "job across the restart",
        format!(
            "{} succeeded, {} failed, {} other; done {job_secs:.1} s after the kill",
            done.succeeded, done.failed, done.other
        ),
    );
    s.row("results lost", lost.to_string());
    s.row(
        "coordinator RSS when all were back",
        mib(after_back.rss_kib),
    );
    s.set("agents", n);
    s.set("task_secs", task_secs);
    s.set("job_tasks", k);
    s.set("down_secs", down.as_secs_f64());
    s.set("listening_again_secs", restarted_at);
    s.set("startup_secs", startup.as_secs_f64());
    s.set("all_reconnected_secs", all_back);
    s.set("reconnect_secs", back);
    s.set("attempts", attempts.len());
    s.set("peak_attempts_per_100ms", peak_a);
    s.set("peak_reconnects_per_100ms", peak_w);
    s.set("reconnect_histogram_0_5s", w_hist);
    s.set("attempt_histogram_0_5s", a_hist);
    s.set("job_succeeded", done.succeeded);
    s.set("job_failed", done.failed);
    s.set("job_other", done.other);
    s.set("results_lost", lost);
    anyhow::ensure!(
        lost == 0 && done.failed == 0,
        "results lost across the restart: {lost} ({} failed)",
        done.failed
    );
    Ok(s)
}
