//! Agent updates: [`on_update`] checks that an update belongs to its sender and is new, applies
//! it with the pure [`apply_update`], commits the batch and answers with the acknowledgement.

use lab_proto::limits::MAX_OUTPUT_CHUNK;
use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{job_event, task_update, Ack, TaskOutput, TaskProgressEvent, TaskUpdate};

use super::bounds;
use super::engine::{commit_and_notify, schedule};
use super::records::{finish_if_done, info_mut, push_event, set_state, state_of};
use super::state::{TaskEvent, TaskState};
use super::Cx;
use crate::error::ApiError;
use crate::store::JobBatch;

/// What [`apply_update`] decided beyond the records and the batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The task reached a final state with this update.
    pub finished: bool,
    /// The task's stored output is over its limit by this many bytes: trim that much of the
    /// oldest stored output (the new chunk is in the batch, not yet stored).
    pub trim_bytes: u64,
}

/// Applies one update's `body` to `task` of `job`: its state change, output or progress, as
/// record changes and events in `batch`. `output_limit` is the output kept per task. No I/O;
/// the caller trims stored output and indexes a finished backup as [`Applied`] says.
pub fn apply_update(
    job: &mut JobRecord,
    task: &mut TaskRecord,
    body: Option<task_update::Body>,
    output_limit: u64,
    batch: &mut JobBatch,
) -> Applied {
    let mut applied = Applied::default();
    match body {
        Some(task_update::Body::Started(s)) => {
            if let Ok(to) = state_of(task).on(TaskEvent::Start) {
                info_mut(task).started_unix_ms = s.unix_ms;
                set_state(job, task, to, batch);
            }
        }
        Some(task_update::Body::Output(mut chunk)) => {
            let len = chunk.data.len() as u64;
            // A chunk over the per-chunk limit keeps its tail (agents send at most that much).
            let chunk_limit =
                MAX_OUTPUT_CHUNK.min(usize::try_from(output_limit).unwrap_or(usize::MAX));
            let cut = bounds::keep_tail(&mut chunk.data, chunk_limit);
            let info = info_mut(task);
            info.output_bytes += len;
            info.output_dropped_bytes += cut;
            let out = TaskOutput {
                task_id: info.task_id.clone(),
                node: info.node.clone(),
                stream: chunk.stream,
                data: chunk.data,
            };
            let kept = info.output_bytes.saturating_sub(info.output_dropped_bytes);
            applied.trim_bytes = kept.saturating_sub(output_limit);
            push_event(job, batch, job_event::Body::Output(out));
        }
        Some(task_update::Body::Progress(mut progress)) => {
            bounds::bound_progress(&mut progress);
            let info = info_mut(task);
            let event = TaskProgressEvent {
                task_id: info.task_id.clone(),
                node: info.node.clone(),
                progress: Some(progress),
            };
            // Watchers get every progress event live; the store keeps the latest per task.
            if task.progress_event_seq > 0 {
                batch
                    .dropped_events
                    .push((job.job_id.clone(), task.progress_event_seq));
            }
            task.progress_event_seq = push_event(job, batch, job_event::Body::Progress(event));
        }
        Some(task_update::Body::Finished(f)) => {
            let to = TaskState::from_wire(f.state).filter(|s| s.is_final());
            match to.map(|to| state_of(task).on(TaskEvent::Finish(to))) {
                Some(Ok(to)) => {
                    let mut result = f.result;
                    let note = bounds::bound_result(&mut result);
                    let info = info_mut(task);
                    info.exit_code = f.exit_code;
                    info.error = bounds::task_error(&f.error, note.as_deref());
                    info.result = result;
                    info.output_bytes += f.output_dropped_bytes;
                    info.output_dropped_bytes += f.output_dropped_bytes;
                    if info.output_dropped_bytes > 0 {
                        tracing::warn!(
                            node = %info.node,
                            task = %info.task_id,
                            output_bytes = info.output_bytes,
                            dropped_bytes = info.output_dropped_bytes,
                            limit_bytes = output_limit,
                            "task output dropped to stay within the limit"
                        );
                    }
                    set_state(job, task, to, batch);
                    applied.finished = true;
                }
                _ => {
                    let from = state_of(task);
                    let info = info_mut(task);
                    tracing::info!(node = %info.node, task = %info.task_id, "final update ignored in state {from:?}")
                }
            }
        }
        None => {}
    }
    applied
}

/// Applies one update from `node`; returns the acknowledgement to send back (none for an
/// update about another node's task, or of a job that is gone).
pub async fn on_update(
    cx: &Cx<'_>,
    node: &str,
    update: TaskUpdate,
) -> Result<Option<Ack>, ApiError> {
    let guard = cx.jobs.lock.lock().await;
    let Some(mut task) = cx.store.task(&update.task_id)? else {
        tracing::warn!(node, task = %update.task_id, "update for an unknown task; acknowledged and dropped");
        return Ok(Some(Ack {
            task_id: update.task_id,
            through_seq: update.seq,
        }));
    };
    let owner = task
        .info
        .as_ref()
        .map(|i| i.node.clone())
        .unwrap_or_default();
    if owner != node {
        tracing::warn!(node, owner = %owner, task = %update.task_id, "node reported on another node's task; ignored");
        return Ok(None);
    }
    if update.seq <= task.last_seq {
        return Ok(Some(Ack {
            task_id: update.task_id,
            through_seq: task.last_seq,
        }));
    }
    let Some(mut job) = cx.store.job(&task.job_id)? else {
        return Ok(None);
    };
    task.last_seq = update.seq;
    let mut batch = JobBatch::default();
    let limit = cx.jobs.settings.output_limit_per_task;
    let applied = apply_update(&mut job, &mut task, update.body, limit, &mut batch);
    if applied.trim_bytes > 0 {
        let freed = cx
            .store
            .trim_output(&job.job_id, &update.task_id, applied.trim_bytes)?;
        info_mut(&mut task).output_dropped_bytes += freed;
    }
    if applied.finished {
        crate::backups::on_final(cx.store, &job, &task, &mut batch)?;
    }
    finish_if_done(&mut job, &mut batch);
    batch.tasks.push(task);
    let done = job.done.then_some(job.job_id.clone());
    let job_id = job.job_id.clone();
    let waiting = job.pending_tasks > 0;
    batch.jobs.push(job);
    commit_and_notify(cx, guard, batch, done.as_deref()).await?;
    // The agent has the task: it never needs the secret content again.
    cx.jobs.secrets.delivered(&job_id, &update.task_id);
    if applied.finished && done.is_none() && waiting {
        // A slot in the rollout window opened.
        schedule(cx, &job_id).await?;
    }
    Ok(Some(Ack {
        task_id: update.task_id,
        through_seq: update.seq,
    }))
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
