//! The agent side of jobs: runs the tasks the coordinator assigns, journals them so that no
//! task id is ever started twice (even across agent restarts), and keeps every update until the
//! coordinator acknowledges it.
//!
//! [`Tasks`] is created once per agent process and outlives sessions: tasks keep running while
//! the agent is disconnected, and their updates wait in the outbox. A session feeds it the
//! coordinator's `Assign`, `CancelTask` and `Ack` messages (all non-blocking), calls
//! [`Tasks::resend_all`] right after `Welcome`, then forwards [`Tasks::take_unsent`] whenever
//! [`Tasks::changed`] fires. It must not talk to the network itself.
//!
//! Architecture invariant: a task's `started` journal record is durable before its process is
//! spawned, and its `finished` record before its final update enters the outbox.

mod journal;
pub(crate) mod model;
mod outbox;
mod runner;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lab_proto::v1::{Ack, Assign, CancelTask, TaskUpdate};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub use journal::JournalError;
pub use model::{InvalidTaskId, TaskId, MAX_TASK_ID_LEN};
pub use outbox::DEFAULT_MAX_OUTPUT_PER_TASK;

use crate::process::Outcome;
use crate::secrets::NodeKey;
use journal::{Journal, Record};
use model::Finished;
use outbox::Outbox;

/// Tunables of the task runner.
#[derive(Debug, Clone)]
pub struct TasksOptions {
    /// Most tasks running at once; further ones wait for a slot.
    pub max_tasks: usize,
    /// Unacknowledged output kept per task; the oldest chunks are dropped past it.
    pub max_output_per_task: usize,
    /// Delay between SIGTERM and SIGKILL when a task is cancelled.
    pub cancel_grace: Duration,
    /// Journal records of finished, acknowledged tasks older than this are pruned at startup.
    pub retention: Duration,
    /// The node's age key, which decrypts the SOPS values of tasks; `None`: tasks with such
    /// values fail.
    pub node_key: Option<Arc<NodeKey>>,
    /// A directory only the agent can read, for the password files of backup tasks whose
    /// password comes from a SOPS file (`<data-dir>/secrets`).
    pub private_dir: Option<PathBuf>,
    /// Root of the host's files for config tasks' detection (`etc/NIXOS`, the NixOS system
    /// profile) and their templates' facts: `lab-agent run --facts-root`, `/` in production.
    pub root: PathBuf,
}

impl Default for TasksOptions {
    fn default() -> Self {
        TasksOptions {
            max_tasks: 8,
            max_output_per_task: DEFAULT_MAX_OUTPUT_PER_TASK,
            cancel_grace: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            node_key: None,
            private_dir: None,
            root: PathBuf::from("/"),
        }
    }
}

/// The task runner of one agent process. Cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

/// Shared by the handle and the running tasks.
struct Inner {
    opts: TasksOptions,
    journal: Journal,
    state: Mutex<State>,
    /// Signalled whenever the outbox has something unsent (one consumer: the session).
    changed: Notify,
    /// One permit per task allowed to run at once.
    permits: Arc<Semaphore>,
}

/// Everything behind the lock; held only for short, non-blocking steps.
struct State {
    outbox: Outbox,
    /// The journal, as loaded and as written since.
    records: HashMap<TaskId, Record>,
    /// Tasks claimed by this process (queued, running or being finished), with their cancel.
    active: HashMap<TaskId, CancellationToken>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `update` for sending.
    fn push(&self, update: TaskUpdate) {
        self.lock().outbox.push(update);
        self.changed.notify_one();
    }
}

impl Tasks {
    /// Opens the journal in `dir` (normally `<data-dir>/tasks`), pruning old records.
    pub async fn open(dir: PathBuf, opts: TasksOptions) -> Result<Tasks, JournalError> {
        let retention = opts.retention;
        let (journal, records) =
            tokio::task::spawn_blocking(move || Journal::open(&dir, retention, now_ms()))
                .await
                .map_err(|e| JournalError::Join(e.to_string()))??;
        let permits = Arc::new(Semaphore::new(opts.max_tasks.max(1)));
        let state = State {
            outbox: Outbox::new(opts.max_output_per_task),
            records,
            active: HashMap::new(),
        };
        Ok(Tasks {
            inner: Arc::new(Inner {
                opts,
                journal,
                state: Mutex::new(state),
                changed: Notify::new(),
                permits,
            }),
        })
    }

    /// Handles `Assign`. Never starts a task id twice:
    /// - running in this process: ignored (the outbox re-sends its unacked updates);
    /// - finished (journal): its final update is sent again, with the journaled seq;
    /// - started (journal) but not running here: reported `lost` with `FINAL_SEQ_UNKNOWN`;
    /// - invalid id: `failed` ("invalid task id"), nothing is run or journaled;
    /// - otherwise: queued behind the concurrency limit, then journaled and run.
    pub fn on_assign(&self, assign: Assign) {
        let Assign {
            task_id,
            job_id,
            spec,
            timeout_ms,
        } = assign;
        let id = match task_id.parse::<TaskId>() {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(task = %task_id.escape_debug(), "refusing a task with an invalid id");
                let mut st = self.inner.lock();
                if !st.outbox.resend_final(&task_id) {
                    let finished = Finished::new(Outcome::failed(e.to_string()), now_ms(), 1);
                    st.outbox.push(finished.to_update(&task_id));
                }
                drop(st);
                self.inner.changed.notify_one();
                return;
            }
        };
        let mut st = self.inner.lock();
        if st.active.contains_key(&id) {
            tracing::debug!(task = %id, "task already running; its updates are in the outbox");
            return;
        }
        match st.records.get(&id).map(|r| r.finished.clone()) {
            Some(Some(finished)) => {
                tracing::debug!(task = %id, "task already finished; re-sending its result");
                if !st.outbox.resend_final(id.as_str()) {
                    st.outbox.push(finished.to_update(id.as_str()));
                }
                drop(st);
                self.inner.changed.notify_one();
            }
            Some(None) => {
                tracing::warn!(task = %id, "task was started before the agent restarted; reporting it lost");
                st.active.insert(id.clone(), CancellationToken::new());
                drop(st);
                tokio::spawn(runner::report_lost(self.inner.clone(), id));
            }
            None => {
                let cancel = CancellationToken::new();
                st.active.insert(id.clone(), cancel.clone());
                drop(st);
                let task = runner::Task {
                    id,
                    job_id,
                    spec,
                    timeout_ms,
                    cancel,
                };
                tokio::spawn(runner::run(self.inner.clone(), task));
            }
        }
    }

    /// Handles `CancelTask`: stops a queued or running task; ignores unknown and finished ones.
    pub fn on_cancel(&self, cancel: CancelTask) {
        let CancelTask { task_id } = cancel;
        let st = self.inner.lock();
        match task_id
            .parse::<TaskId>()
            .ok()
            .and_then(|id| st.active.get(&id))
        {
            Some(token) => {
                tracing::info!(task = %task_id, "cancelling task");
                token.cancel();
            }
            None => {
                tracing::debug!(task = %task_id.escape_debug(), "cancel of a task that is not running; ignored")
            }
        }
    }

    /// Handles `Ack`: forgets the task's updates up to `through_seq`, and records in the journal
    /// once its final result is acknowledged (which lets the record be pruned later).
    pub fn on_ack(&self, ack: Ack) {
        let Ack {
            task_id,
            through_seq,
        } = ack;
        let mut st = self.inner.lock();
        st.outbox.ack(&task_id, through_seq);
        let Ok(id) = task_id.parse::<TaskId>() else {
            return;
        };
        let Some(record) = st.records.get_mut(&id) else {
            return;
        };
        let final_acked = record
            .finished
            .as_ref()
            .is_some_and(|f| f.seq <= through_seq);
        if record.acked || !final_acked {
            return;
        }
        record.acked = true;
        let record = record.clone();
        drop(st);
        let journal = self.inner.journal.clone();
        tokio::spawn(async move {
            if let Err(e) = journal.write(record).await {
                tracing::warn!(task = %id, error = %e, "cannot record the acknowledgement in the task journal");
            }
        });
    }

    /// Every unacknowledged update, per task in seq order; send these first in a new session.
    /// They count as sent for [`Tasks::take_unsent`].
    pub fn unacked(&self) -> Vec<TaskUpdate> {
        self.inner.lock().outbox.all_unacked()
    }

    /// Marks every unacknowledged update as unsent, so that [`Tasks::take_unsent`] returns them
    /// all again (each task's in seq order, before anything newer): what a new session does
    /// right after `Welcome`. Unlike sending [`Tasks::unacked`] in one go, this lets the session
    /// go on reading acknowledgements between batches.
    pub fn resend_all(&self) {
        if self.inner.lock().outbox.rewind() {
            self.inner.changed.notify_one();
        }
    }

    /// Ids of tasks with results the coordinator has not acknowledged (for `Hello`).
    pub fn unacked_task_ids(&self) -> Vec<String> {
        let st = self.inner.lock();
        let mut ids: BTreeSet<String> = st.outbox.task_ids().map(str::to_owned).collect();
        ids.extend(
            st.records
                .iter()
                .filter(|(_, r)| !r.acked)
                .map(|(id, _)| id.to_string()),
        );
        ids.into_iter().collect()
    }

    /// Up to `max` updates not sent in this session yet (each task's in seq order); they now
    /// count as sent. If more remain, [`Tasks::changed`] fires again at once.
    pub fn take_unsent(&self, max: usize) -> Vec<TaskUpdate> {
        let (updates, more) = self.inner.lock().outbox.take_unsent(max);
        if more {
            self.inner.changed.notify_one();
        }
        updates
    }

    /// Completes when there may be unsent updates. One consumer at a time; a signal given while
    /// nobody waits is kept for the next call.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }
}
