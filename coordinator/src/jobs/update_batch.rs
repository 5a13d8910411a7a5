//! Agent updates applied in batches. Every session puts its update into one queue; whoever holds
//! the engine lock next takes everything queued and applies it in one pass: each task and each
//! job read once, one store batch written, one flush, then every acknowledgement. Nothing is
//! acknowledged before the batch that holds it is durable (a duplicate's acknowledgement too:
//! it waits for the same flush, so it never confirms a write another batch has not flushed yet).
//!
//! The caller whose update finds the queue empty applies it; the others wait for their answer
//! (and apply the queue themselves if it has not come after a while, in case that caller's
//! session ended while it waited).
//!
//! A round holds at most one update per task; a second one waits for the next round, so the
//! duplicate check and trimming of stored output see the task as stored. (A session sends its
//! next update only after the acknowledgement of the last, so this is rare.)

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use lab_proto::store::v1::JobRecord;
use lab_proto::v1::{Ack, TaskUpdate};
use tokio::sync::oneshot;
use tonic::Status;

use super::engine::{commit_and_notify_all, schedule};
use super::records::{finish_if_done, info_mut};
use super::update::apply_update;
use super::Cx;
use crate::error::ApiError;
use crate::store::{JobBatch, StoreError};

/// What a session gets back for its update: the acknowledgement to send (none for an update
/// about another node's task, or of a job that is gone), or why the session must end.
type Reply = Result<Option<Ack>, Status>;

/// One update waiting to be applied.
struct Queued {
    node: String,
    update: TaskUpdate,
    reply: oneshot::Sender<Reply>,
}

/// Updates waiting for the engine lock, oldest first.
#[derive(Default)]
pub struct UpdateQueue {
    queued: Mutex<Vec<Queued>>,
}

impl UpdateQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `q`; whether the queue was empty (the caller then applies the queue).
    fn push(&self, q: Queued) -> bool {
        let mut queued = self.lock();
        queued.push(q);
        queued.len() == 1
    }

    /// Everything queued, oldest first; the queue is left empty.
    fn take(&self) -> Vec<Queued> {
        std::mem::take(&mut *self.lock())
    }

    /// Puts `deferred` (taken earlier) back before everything queued since; whether the queue
    /// was empty (the caller then applies the queue again).
    fn put_back(&self, mut deferred: Vec<Queued>) -> bool {
        let mut queued = self.lock();
        let was_empty = queued.is_empty();
        deferred.append(&mut queued);
        *queued = deferred;
        was_empty
    }
}

/// How long an update waits for the caller that queued before it to apply it before applying
/// the queue itself (that caller's session may have ended while it waited for the lock).
const TAKE_OVER_AFTER: Duration = Duration::from_secs(2);

/// Applies one update from `node` (with whatever else is queued) and returns the
/// acknowledgement to send back once it is durable.
///
/// The caller that queues into an empty queue applies it: it takes the engine lock and
/// everything queued by then. The others only wait for their answer, so 10,000 sessions do not
/// queue 10,000 times for the lock.
pub async fn on_update(cx: &Cx<'_>, node: &str, update: TaskUpdate) -> Reply {
    let (tx, mut rx) = oneshot::channel();
    let first = cx.jobs.updates.push(Queued {
        node: node.to_owned(),
        update,
        reply: tx,
    });
    if first {
        apply_queue(cx).await;
    }
    let answer = match tokio::time::timeout(TAKE_OVER_AFTER, &mut rx).await {
        Ok(answer) => answer,
        Err(_) => {
            apply_queue(cx).await;
            rx.await
        }
    };
    answer.unwrap_or_else(|_| {
        Err(Status::unavailable(
            "the coordinator stopped before storing the update; reconnect and send it again",
        ))
    })
}

/// Applies everything queued, in rounds, until the queue is empty or another caller has it.
async fn apply_queue(cx: &Cx<'_>) {
    loop {
        let guard = cx.jobs.lock.lock().await;
        let queued = cx.jobs.updates.take();
        if queued.is_empty() {
            return;
        }
        let deferred = apply_round(cx, guard, queued).await;
        if deferred.is_empty() || !cx.jobs.updates.put_back(deferred) {
            return;
        }
    }
}

/// One round's reads and changes.
#[derive(Default)]
struct Round {
    batch: JobBatch,
    /// Jobs touched, by id, and their order.
    jobs: HashMap<String, JobRecord>,
    job_order: Vec<String>,
    /// Jobs in which a task reached a final state.
    finished_in: HashSet<String>,
    /// (job id, task id) of every update applied.
    delivered: Vec<(String, String)>,
}

impl Round {
    /// Checks and applies one update into the round; its acknowledgement.
    fn apply(
        &mut self,
        cx: &Cx<'_>,
        node: &str,
        update: TaskUpdate,
    ) -> Result<Option<Ack>, StoreError> {
        let Some(mut task) = cx.store.task(&update.task_id)? else {
            tracing::warn!(node, task = %update.task_id, "update for an unknown task; acknowledged and dropped");
            return Ok(Some(Ack {
                task_id: update.task_id,
                through_seq: update.seq,
            }));
        };
        let owner = task.info.as_ref().map_or("", |i| i.node.as_str());
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
        let job = match self.jobs.entry(task.job_id.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let Some(job) = cx.store.job(&task.job_id)? else {
                    return Ok(None);
                };
                self.job_order.push(task.job_id.clone());
                e.insert(job)
            }
        };
        task.last_seq = update.seq;
        let limit = cx.jobs.settings.output_limit_per_task;
        let applied = apply_update(job, &mut task, update.body, limit, &mut self.batch);
        if applied.trim_bytes > 0 {
            let freed = cx
                .store
                .trim_output(&job.job_id, &update.task_id, applied.trim_bytes)?;
            info_mut(&mut task).output_dropped_bytes += freed;
        }
        if applied.finished {
            crate::backups::on_final(cx.store, job, &task, &mut self.batch)?;
            self.finished_in.insert(job.job_id.clone());
        }
        self.delivered
            .push((job.job_id.clone(), update.task_id.clone()));
        self.batch.tasks.push(task);
        Ok(Some(Ack {
            task_id: update.task_id,
            through_seq: update.seq,
        }))
    }
}

/// Applies `queued` (at most one update per task; the others are returned for the next round)
/// under the engine lock `guard`, commits them as one batch, answers every update once it is
/// durable, then starts what the finished tasks made room for.
async fn apply_round(
    cx: &Cx<'_>,
    guard: tokio::sync::MutexGuard<'_, ()>,
    queued: Vec<Queued>,
) -> Vec<Queued> {
    let mut round = Round::default();
    let mut deferred = Vec::new();
    let mut answers = Vec::with_capacity(queued.len());
    let mut tasks_seen = HashSet::with_capacity(queued.len());
    let mut failure = None;
    for q in queued {
        if !tasks_seen.insert(q.update.task_id.clone()) {
            deferred.push(q);
            continue;
        }
        if failure.is_none() {
            match round.apply(cx, &q.node, q.update) {
                Ok(ack) => answers.push((q.reply, ack)),
                Err(e) => {
                    failure = Some(e);
                    answers.push((q.reply, None));
                }
            }
        } else {
            answers.push((q.reply, None));
        }
    }
    let mut done = Vec::new();
    let mut to_schedule = Vec::new();
    for job_id in &round.job_order {
        let Some(mut job) = round.jobs.remove(job_id) else {
            continue;
        };
        finish_if_done(&mut job, &mut round.batch);
        if job.done {
            done.push(job_id.as_str());
        } else if job.pending_tasks > 0 && round.finished_in.contains(job_id) {
            // A slot in the rollout window opened.
            to_schedule.push(job_id.as_str());
        }
        round.batch.jobs.push(job);
    }
    let committed = match failure {
        // Nothing of a round with a failed read is written: every update in it is sent again.
        Some(e) => {
            drop(guard);
            Err(e)
        }
        None => commit_and_notify_all(cx, guard, round.batch, &done).await,
    };
    match committed {
        Ok(()) => {
            for (job_id, task_id) in &round.delivered {
                // The agent has the task: it never needs the secret content again.
                cx.jobs.secrets.delivered(job_id, task_id);
            }
            for (reply, ack) in answers {
                let _ = reply.send(Ok(ack));
            }
        }
        Err(e) => {
            let status = Status::from(ApiError::from(e));
            for (reply, _) in answers {
                let _ = reply.send(Err(status.clone()));
            }
            return deferred;
        }
    }
    for job_id in to_schedule {
        if let Err(e) = schedule(cx, job_id).await {
            tracing::error!(job = job_id, error = %e, "cannot start the job's next tasks; the ticker tries again");
        }
    }
    deferred
}
