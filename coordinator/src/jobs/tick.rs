//! The engine's clock: every second it schedules unfinished jobs (deadlines, nodes that came
//! online), every ten minutes it applies the retention policy.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::schedule;
use super::Cx;
use crate::clock::now_ms;
use crate::store::StoreError;

/// Every second: schedule unfinished jobs (deadlines, nodes that came online); every ten
/// minutes: apply the retention policy. Runs until shutdown.
pub async fn run_ticker(cx: Cx<'_>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match cx.store.unfinished_jobs() {
            Ok(jobs) => {
                // Only pending tasks can be started, cancelled or expired.
                for job in jobs.into_iter().filter(|j| j.pending_tasks > 0) {
                    if let Err(e) = schedule(&cx, &job.job_id).await {
                        tracing::error!(job = %job.job_id, error = %e, "scheduling failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list unfinished jobs"),
        }
        if n.is_multiple_of(600) {
            if let Err(e) = apply_retention(&cx).await {
                tracing::error!(error = %e, "job retention failed");
            }
        }
        n += 1;
    }
}

/// Deletes finished jobs beyond the retention count or older than the retention age.
async fn apply_retention(cx: &Cx<'_>) -> Result<(), StoreError> {
    let settings = &cx.jobs.settings;
    let cutoff = now_ms() - settings.retention_age.as_millis() as i64;
    let mut kept = 0usize;
    for job in cx.store.jobs_newest_first(usize::MAX)? {
        if !job.done {
            continue;
        }
        kept += 1;
        if kept > settings.retention_count || job.finished_unix_ms < cutoff {
            cx.store.remove_job(&job).await?;
        }
    }
    Ok(())
}
