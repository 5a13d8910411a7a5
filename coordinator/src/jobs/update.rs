//! Agent updates: the pure [`apply_update`] turns one update into record changes and events.
//! Queueing, checking and committing updates in batches is in `update_batch`.

use lab_proto::limits::MAX_OUTPUT_CHUNK;
use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{job_event, task_update, TaskOutput, TaskProgressEvent};

use super::bounds;
use super::records::{info_mut, push_event, set_state, state_of};
use super::state::{TaskEvent, TaskState};
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

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
