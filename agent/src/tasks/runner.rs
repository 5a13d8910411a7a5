//! The life of one task in this process: wait for a slot, journal the start, run it, journal the
//! result, put the final update in the outbox, release the task id.
//!
//! Sequence numbers are per task and start at 1: `started`, then output chunks, then
//! `finished`. A task that never ran (bad spec, unknown user, program not found, cancelled while
//! queued) sends only `finished`, with seq 1. A task found started in the journal but not
//! running here is reported `lost` with seq `FINAL_SEQ_UNKNOWN`.

use std::sync::Arc;
use std::time::Duration;

use lab_proto::limits::FINAL_SEQ_UNKNOWN;
use lab_proto::v1::task_update::Body;
use lab_proto::v1::{TaskChunk, TaskSpec, TaskStarted, TaskUpdate};
use tokio_util::sync::CancellationToken;

use super::exec::{self, Event, Limits};
use super::journal::Record;
use super::model::{ExecSpec, Finished, Outcome, TaskId};
use super::{now_ms, Inner};

/// An assigned task, claimed by this process.
pub struct Task {
    /// Its id (validated).
    pub id: TaskId,
    /// Its job, for the journal.
    pub job_id: String,
    /// What to run, as received.
    pub spec: Option<TaskSpec>,
    /// 0 = no timeout.
    pub timeout_ms: u64,
    /// Fired by `CancelTask`.
    pub cancel: CancellationToken,
}

/// Runs `task` to its end and reports it.
pub async fn run(inner: Arc<Inner>, task: Task) {
    let mut record = Record::new(&task.id, &task.job_id);
    let mut seq = 0u64;
    let outcome = execute(&inner, &task, &mut record, &mut seq).await;
    finish(&inner, &task.id, record, outcome, seq + 1).await;
}

/// Reports a task that the journal says was started by an earlier agent process.
pub async fn report_lost(inner: Arc<Inner>, id: TaskId) {
    let record = inner
        .lock()
        .records
        .get(&id)
        .cloned()
        .unwrap_or_else(|| Record::new(&id, ""));
    finish(&inner, &id, record, Outcome::lost(), FINAL_SEQ_UNKNOWN).await;
}

async fn execute(inner: &Inner, task: &Task, record: &mut Record, seq: &mut u64) -> Outcome {
    let spec = match ExecSpec::try_from(task.spec.clone()) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(e),
    };
    let _permit = tokio::select! {
        permit = inner.permits.clone().acquire_owned() => match permit {
            Ok(p) => p,
            Err(_) => return Outcome::failed("the agent is shutting down"),
        },
        _ = task.cancel.cancelled() => return Outcome::cancelled_before_start(),
    };
    let prepared = match exec::prepare(&spec).await {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e),
    };
    if task.cancel.is_cancelled() {
        return Outcome::cancelled_before_start();
    }
    record.started_unix_ms = Some(now_ms());
    if let Err(e) = inner.journal.write(record.clone()).await {
        tracing::error!(task = %task.id, error = %e, "cannot journal the task's start; not running it");
        record.started_unix_ms = None;
        return Outcome::failed(format!("{e}; the task was not started"));
    }
    tracing::info!(task = %task.id, job = %task.job_id, argv = ?spec.argv, "starting task");
    let limits = Limits {
        timeout: (task.timeout_ms > 0).then(|| Duration::from_millis(task.timeout_ms)),
        cancel: task.cancel.clone(),
        cancel_grace: inner.opts.cancel_grace,
    };
    prepared
        .run(limits, |event| {
            *seq += 1;
            let body = match event {
                Event::Started => Body::Started(TaskStarted { unix_ms: now_ms() }),
                Event::Output(stream, data) => Body::Output(TaskChunk {
                    stream: stream as i32,
                    data,
                }),
            };
            inner.push(TaskUpdate {
                task_id: task.id.to_string(),
                seq: *seq,
                body: Some(body),
            });
        })
        .await
}

/// Journals the result durably, then queues the final update and releases the task id, in one
/// step under the lock so that a concurrent `Assign` sees either "running" or "finished".
async fn finish(inner: &Inner, id: &TaskId, mut record: Record, outcome: Outcome, seq: u64) {
    let finished = Finished::new(outcome, now_ms(), seq);
    record.finished = Some(finished.clone());
    if let Err(e) = inner.journal.write(record.clone()).await {
        tracing::error!(task = %id, error = %e, "cannot journal the task's result; an agent restart would report it lost");
    }
    tracing::info!(task = %id, state = ?finished.state, exit_code = finished.exit_code, error = %finished.error, "task finished");
    let mut st = inner.lock();
    st.outbox.push(finished.to_update(id.as_str()));
    st.records.insert(id.clone(), record);
    st.active.remove(id);
    drop(st);
    inner.changed.notify_one();
}
