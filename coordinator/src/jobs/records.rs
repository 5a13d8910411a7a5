//! Changes to job and task records that every engine operation shares: a task's state (with
//! the job's counts and the task's event), events, failing a task that cannot be sent, and the
//! job's end. No I/O: every change goes into a [`JobBatch`] that the caller commits.

use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{job_event, JobDone, JobEvent, TaskInfo};

use super::secrets;
use super::state::{TaskEvent, TaskState};
use crate::clock::now_ms;
use crate::store::JobBatch;

/// The task's state (pending when the record has none).
pub(super) fn state_of(task: &TaskRecord) -> TaskState {
    task.info
        .as_ref()
        .and_then(|i| TaskState::from_wire(i.state))
        .unwrap_or(TaskState::Pending)
}

/// The task's info, created empty when missing.
pub(super) fn info_mut(task: &mut TaskRecord) -> &mut TaskInfo {
    task.info.get_or_insert_with(TaskInfo::default)
}

/// Appends an event of `job` to `batch`; returns its sequence number.
pub(super) fn push_event(job: &mut JobRecord, batch: &mut JobBatch, body: job_event::Body) -> u64 {
    job.next_event_seq = job.next_event_seq.max(1);
    let seq = job.next_event_seq;
    let event = JobEvent {
        seq,
        unix_ms: now_ms(),
        body: Some(body),
    };
    job.next_event_seq += 1;
    batch.events.push((job.job_id.clone(), event));
    seq
}

/// Moves `task` to `to`: the job's counts, the task's finish time and active-index entry,
/// and the task's event.
pub(super) fn set_state(
    job: &mut JobRecord,
    task: &mut TaskRecord,
    to: TaskState,
    batch: &mut JobBatch,
) {
    let from = state_of(task);
    if from == TaskState::Pending && to != TaskState::Pending {
        job.pending_tasks = job.pending_tasks.saturating_sub(1);
    }
    if !from.is_final() && to.is_final() {
        job.final_tasks += 1;
        if to == TaskState::Succeeded {
            job.succeeded_tasks += 1;
        } else if to.is_failure() {
            job.failed_tasks += 1;
        }
    }
    let info = info_mut(task);
    info.state = to.to_wire() as i32;
    if to.is_final() {
        info.finished_unix_ms = now_ms();
        batch
            .active_remove
            .push((info.node.clone(), info.task_id.clone()));
    }
    let snapshot = info.clone();
    push_event(job, batch, job_event::Body::Task(snapshot));
}

/// Marks the job done (with its JobDone event) once every task is final (from the counts that
/// [`set_state`] keeps, so no task needs reading).
pub(super) fn finish_if_done(job: &mut JobRecord, batch: &mut JobBatch) {
    if job.done || job.final_tasks < job.task_count {
        return;
    }
    let done = JobDone {
        succeeded: job.succeeded_tasks,
        failed: job.failed_tasks,
        other: job.final_tasks - job.succeeded_tasks - job.failed_tasks,
    };
    job.done = true;
    job.finished_unix_ms = now_ms();
    push_event(job, batch, job_event::Body::Done(done));
}

/// Fails an assigned task that cannot be sent because its secret content is lost.
pub(super) fn fail_undelivered(job: &mut JobRecord, task: &mut TaskRecord, batch: &mut JobBatch) {
    if let Ok(to) = state_of(task).on(TaskEvent::Finish(TaskState::Failed)) {
        info_mut(task).error = secrets::LOST.into();
        set_state(job, task, to, batch);
    }
}

/// Fails an assigned or running `task` whose Assign cannot be sent, with `reason`.
pub(super) fn fail_unsent(
    job: &mut JobRecord,
    task: &mut TaskRecord,
    reason: String,
    batch: &mut JobBatch,
) {
    let Ok(to) = state_of(task).on(TaskEvent::Finish(TaskState::Failed)) else {
        return;
    };
    let info = info_mut(task);
    tracing::error!(job = %job.job_id, task = %info.task_id, node = %info.node, %reason, "task not sent");
    info.error = reason;
    set_state(job, task, to, batch);
}
