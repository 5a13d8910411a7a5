//! The life of one task in this process: wait for a slot, journal the start, run it, journal the
//! result, put the final update in the outbox, release the task id.
//!
//! Sequence numbers are per task and start at 1: `started`, then output chunks, then
//! `finished`. A task that never ran (bad spec, unknown user, program not found, cancelled while
//! queued) sends only `finished`, with seq 1. A task found started in the journal but not
//! running here is reported `lost` with seq `FINAL_SEQ_UNKNOWN`.
//!
//! Before anything else, every SOPS value of the task is decrypted into a copy of its spec
//! ([`crate::secrets::resolve`]); a task whose secret cannot be had fails there, before it is
//! journaled or anything runs. The decrypted values are redacted from its output, progress,
//! error and result.
//!
//! Dispatch: [`TaskKind::Exec`] runs a program ([`crate::process::exec`]); [`TaskKind::Config`] applies
//! resources ([`crate::resources`]) and [`TaskKind::Container`] calls
//! [`crate::containers::run_task`], both under [`supervise`], which turns the task's cancel and
//! timeout into a stop token (config: programs get SIGTERM, then SIGKILL after the grace; no
//! further resource starts). Config and container tasks attach their structured `TaskResult`
//! to the final update (and the journal), also when they were stopped. [`TaskKind::Backup`]
//! runs [`crate::backup::run_task`] under [`supervise`] the same way; its restic progress
//! becomes `TaskUpdate.progress` updates.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lab_proto::limits::{FINAL_SEQ_UNKNOWN, MAX_OUTPUT_CHUNK};
use lab_proto::v1::task_result;
use lab_proto::v1::task_update::Body;
use lab_proto::v1::{
    BackupTask, ContainerTask, OutputStream, ResourceStatus, TaskChunk, TaskProgress, TaskResult,
    TaskSpec, TaskStarted, TaskUpdate,
};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::journal::Record;
use super::model::{Finished, TaskId, TaskKind};
use super::{now_ms, Inner};
use crate::process::exec::{self, Event, Limits, Prepared};
use crate::process::{FinalState, Outcome};
use crate::resources::{self, ConfigReport, ConfigSpec};
use crate::secrets::resolve::{resolve, Keys, Redactor, Resolved};

/// After a config or container task is told to stop, how long it may take to wind down on top
/// of the cancel grace (its programs get SIGTERM, then SIGKILL after the grace) before the
/// runner stops waiting and drops it (which kills what is left of its programs).
const STOP_SLACK: Duration = Duration::from_secs(5);

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
    let mut redactor = Redactor::default();
    let mut outcome = execute(&inner, &task, &mut record, &mut seq, &mut redactor).await;
    // Values decrypted for the task never leave in its error or result either.
    outcome.error = redactor.text(&outcome.error);
    if let Some(result) = outcome.result.as_mut() {
        redactor.result(result);
    }
    finish(&inner, &task.id, record, outcome, seq + 1).await;
}

/// Decrypts the task's SOPS values into a copy of its spec (off the runtime: age and AES).
async fn resolve_secrets(
    inner: &Inner,
    task: &Task,
) -> Result<(Option<TaskSpec>, Resolved), String> {
    let Some(mut spec) = task.spec.clone() else {
        return Ok((None, Resolved::default()));
    };
    let node = inner.opts.node_key.clone();
    let private_dir = inner.opts.private_dir.clone();
    let task_id = task.id.to_string();
    tokio::task::spawn_blocking(move || {
        let keys = Keys {
            node: node.as_deref(),
            private_dir: private_dir.as_deref(),
            task_id: &task_id,
        };
        resolve(&mut spec, &keys).map(|r| (Some(spec), r))
    })
    .await
    .map_err(|e| format!("decrypting the task's secrets failed: {e}"))?
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

/// A task ready to start: its kind converted and, for exec, its command prepared.
enum Ready {
    Exec(Box<Prepared>),
    Config(ConfigSpec),
    Container(Box<ContainerTask>),
    Backup(Box<BackupTask>),
}

async fn execute(
    inner: &Inner,
    task: &Task,
    record: &mut Record,
    seq: &mut u64,
    redactor: &mut Redactor,
) -> Outcome {
    // Every SOPS value first: a task whose secret cannot be had changes nothing. `_resolved`
    // keeps the task's password files until it ends.
    let (spec, _resolved) = match resolve_secrets(inner, task).await {
        Ok((spec, resolved)) => {
            redactor.clone_from(&resolved.redactor);
            (spec, resolved)
        }
        Err(e) => return Outcome::failed(e),
    };
    let kind = match TaskKind::try_from(spec) {
        Ok(k) => k,
        Err(e) => return Outcome::failed(e),
    };
    let _permit = tokio::select! {
        permit = inner.permits.clone().acquire_owned() => match permit {
            Ok(p) => p,
            Err(_) => return Outcome::failed("the agent is shutting down"),
        },
        _ = task.cancel.cancelled() => return Outcome::cancelled_before_start(),
    };
    let name = kind.name();
    let ready = match kind {
        TaskKind::Exec(spec) => {
            tracing::debug!(task = %task.id, argv = ?spec.argv, "preparing exec task");
            match exec::prepare(&spec).await {
                Ok(p) => Ready::Exec(Box::new(p)),
                Err(e) => return Outcome::failed(e),
            }
        }
        TaskKind::Config(spec) => Ready::Config(spec),
        TaskKind::Container(c) => Ready::Container(Box::new(c)),
        TaskKind::Backup(b) => Ready::Backup(Box::new(b)),
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
    tracing::info!(task = %task.id, job = %task.job_id, kind = name, "starting task");
    let mut emitter = Emitter {
        inner,
        task_id: &task.id,
        seq,
        redactor,
    };
    match ready {
        Ready::Exec(prepared) => {
            let limits = Limits {
                timeout: timeout(task),
                cancel: task.cancel.clone(),
                cancel_grace: inner.opts.cancel_grace,
            };
            prepared
                .run(limits, |event| match event {
                    Event::Started => emitter.started(),
                    Event::Output(stream, data) => emitter.output(stream, data),
                })
                .await
        }
        Ready::Config(spec) => {
            emitter.started();
            run_config(inner, task, &spec, &mut emitter).await
        }
        Ready::Container(container) => {
            emitter.started();
            run_container(inner, task, &container, &mut emitter).await
        }
        Ready::Backup(backup) => {
            emitter.started();
            run_backup(inner, task, &backup, &mut emitter).await
        }
    }
}

fn timeout(task: &Task) -> Option<Duration> {
    (task.timeout_ms > 0).then(|| Duration::from_millis(task.timeout_ms))
}

/// Turns a running task's events into numbered updates in the outbox.
struct Emitter<'a> {
    inner: &'a Inner,
    task_id: &'a TaskId,
    seq: &'a mut u64,
    /// Keeps the task's decrypted values out of its output and progress.
    redactor: &'a Redactor,
}

impl Emitter<'_> {
    fn push(&mut self, body: Body) {
        *self.seq += 1;
        self.inner.push(TaskUpdate {
            task_id: self.task_id.to_string(),
            seq: *self.seq,
            body: Some(body),
        });
    }

    fn started(&mut self) {
        self.push(Body::Started(TaskStarted { unix_ms: now_ms() }));
    }

    /// Progress of long work.
    fn progress(&mut self, mut progress: TaskProgress) {
        progress.current = self.redactor.text(&progress.current);
        self.push(Body::Progress(progress));
    }

    /// Output, in chunks of at most `MAX_OUTPUT_CHUNK` bytes.
    fn output(&mut self, stream: OutputStream, data: Vec<u8>) {
        let data = self.redactor.bytes(data);
        for chunk in data.chunks(MAX_OUTPUT_CHUNK) {
            self.push(Body::Output(TaskChunk {
                stream: stream as i32,
                data: chunk.to_vec(),
            }));
        }
    }
}

/// Why the runner stopped a config or container task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    TimedOut,
}

impl StopReason {
    fn state(self) -> FinalState {
        match self {
            StopReason::Cancelled => FinalState::Cancelled,
            StopReason::TimedOut => FinalState::TimedOut,
        }
    }
}

/// Drives `work` to its end, firing `stop` on the task's cancel or timeout; once stopped, the
/// work gets the cancel grace plus [`STOP_SLACK`] to finish before it is dropped (`None`).
async fn supervise<F: Future>(
    work: F,
    task: &Task,
    grace: Duration,
    stop: &CancellationToken,
) -> (Option<F::Output>, Option<StopReason>) {
    tokio::pin!(work);
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let timeout_at = timeout(task).map_or(far, |t| Instant::now() + t);
    let mut why = None;
    let mut give_up_at = far;
    loop {
        tokio::select! {
            out = &mut work => return (Some(out), why),
            _ = sleep_until(timeout_at), if why.is_none() => {
                why = Some(StopReason::TimedOut);
            }
            _ = task.cancel.cancelled(), if why.is_none() => {
                why = Some(StopReason::Cancelled);
            }
            _ = sleep_until(give_up_at), if why.is_some() => {
                tracing::warn!(task = %task.id, "the task did not stop in time; abandoning it");
                return (None, why);
            }
        }
        if why.is_some() && give_up_at == far {
            stop.cancel();
            give_up_at = Instant::now() + grace + STOP_SLACK;
        }
    }
}

/// Runs a config task: succeeded iff no resource failed; exit code 0, or 1 when one did.
async fn run_config(
    inner: &Inner,
    task: &Task,
    spec: &ConfigSpec,
    emitter: &mut Emitter<'_>,
) -> Outcome {
    let stop = CancellationToken::new();
    let grace = inner.opts.cancel_grace;
    let mut emit = |stream, data| emitter.output(stream, data);
    let mut cx = resources::Cx::new(spec.check, stop.clone(), grace, &mut emit);
    cx.root = inner.opts.root.clone();
    let (report, why) = supervise(resources::apply(spec, &mut cx), task, grace, &stop).await;
    config_outcome(report, why)
}

/// The outcome of a config task from its report and why it was stopped, if it was.
fn config_outcome(report: Option<ConfigReport>, why: Option<StopReason>) -> Outcome {
    let result = report.as_ref().map(|r| TaskResult {
        kind: Some(task_result::Kind::Config(r.to_proto())),
    });
    let (state, exit_code, error) = match (why, &report) {
        (Some(why), _) => (why.state(), -1, String::new()),
        (None, None) => (
            FinalState::Failed,
            -1,
            "the config task ended without a result".to_owned(),
        ),
        (None, Some(report)) => {
            let failures: Vec<_> = report.failures().collect();
            match failures.first() {
                None => (FinalState::Succeeded, 0, String::new()),
                Some(first) => {
                    let detail = first.report.message.lines().next().unwrap_or("");
                    let error = if failures.len() == 1 {
                        format!("resource '{}' failed: {detail}", first.resource)
                    } else {
                        format!(
                            "{} resources failed; the first, '{}': {detail}",
                            failures.len(),
                            first.resource
                        )
                    };
                    (FinalState::Failed, 1, error)
                }
            }
        }
    };
    Outcome {
        state,
        exit_code,
        error,
        result,
    }
}

/// Runs a container task through [`crate::containers::run_task`]: failed (exit code -1, the
/// result's message as the error) when its status is FAILED, succeeded otherwise.
async fn run_container(
    inner: &Inner,
    task: &Task,
    container: &ContainerTask,
    emitter: &mut Emitter<'_>,
) -> Outcome {
    let stop = CancellationToken::new();
    let grace = inner.opts.cancel_grace;
    let mut emit = |stream, data| emitter.output(stream, data);
    let work = crate::containers::run_task(container, &mut emit);
    let (result, why) = supervise(work, task, grace, &stop).await;
    let failed = result
        .as_ref()
        .is_some_and(|r| r.status == ResourceStatus::Failed as i32);
    let (state, exit_code, error) = match (why, &result) {
        (Some(why), _) => (why.state(), -1, String::new()),
        (None, Some(r)) if failed => (FinalState::Failed, -1, r.message.clone()),
        (None, Some(_)) => (FinalState::Succeeded, 0, String::new()),
        (None, None) => (
            FinalState::Failed,
            -1,
            "the container task ended without a result".to_owned(),
        ),
    };
    Outcome {
        state,
        exit_code,
        error,
        result: result.map(|r| TaskResult {
            kind: Some(task_result::Kind::Container(r)),
        }),
    }
}

/// Runs a backup task through [`crate::backup::run_task`]: failed (exit code 1, the report's
/// error) when it reports one, succeeded otherwise; the `BackupResult` is attached either way.
async fn run_backup(
    inner: &Inner,
    task: &Task,
    backup: &BackupTask,
    emitter: &mut Emitter<'_>,
) -> Outcome {
    let stop = CancellationToken::new();
    let grace = inner.opts.cancel_grace;
    let mut emit = |out| match out {
        crate::backup::Out::Output(stream, data) => emitter.output(stream, data),
        crate::backup::Out::Progress(p) => emitter.progress(p),
    };
    let mut cx = crate::backup::Cx::new(stop.clone(), grace, &mut emit);
    let (report, why) =
        supervise(crate::backup::run_task(backup, &mut cx), task, grace, &stop).await;
    let (state, exit_code, error) = match (why, &report) {
        (Some(why), _) => (why.state(), -1, String::new()),
        (None, Some(r)) => match &r.error {
            Some(e) => (FinalState::Failed, 1, e.clone()),
            None => (FinalState::Succeeded, 0, String::new()),
        },
        (None, None) => (
            FinalState::Failed,
            -1,
            "the backup task ended without a result".to_owned(),
        ),
    };
    Outcome {
        state,
        exit_code,
        error,
        result: report.map(|r| TaskResult {
            kind: Some(task_result::Kind::Backup(r.result)),
        }),
    }
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
