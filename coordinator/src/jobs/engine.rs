//! The job engine's core: commit a batch and tell watchers, send to agents, plan and carry out
//! the rollout ([`schedule`]), resume a node's work when it connects, and cancel. Submitting is
//! in `submit`, agent updates in `update` and `update_batch`, the ticker in `tick`. Each operation takes the engine
//! lock, reads current state from the store, decides with the pure
//! planner, commits one batch, then (outside the lock) tells agents and watchers.

use std::time::Duration;

use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{CancelTask, CoordinatorMessage};

use super::assign;
use super::records::{
    fail_undelivered, fail_unsent, finish_if_done, info_mut, set_state, state_of,
};
use super::rollout::{plan, Action, JobView, Rollout, TaskView};
use super::secrets::Held;
use super::state::{TaskEvent, TaskState};
use super::Cx;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::sessions::CloseReason;
use crate::store::{JobBatch, StoreError};

/// How long a message to an agent may wait for room in its queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages to agents, sent after the batch that caused them is durable.
pub(super) type Outgoing = Vec<(String, CoordMsg)>;

/// Writes `batch` under the engine lock (`guard`), releases the lock, waits until the batch is
/// durable (sharing the flush with concurrent changes), then counts its failed tasks and tells
/// watchers.
pub(super) async fn commit_and_notify(
    cx: &Cx<'_>,
    guard: tokio::sync::MutexGuard<'_, ()>,
    batch: JobBatch,
    finished_job: Option<&str>,
) -> Result<(), StoreError> {
    commit_and_notify_all(cx, guard, batch, finished_job.as_slice()).await
}

/// [`commit_and_notify`] for a batch that may finish several jobs (`finished_jobs`).
pub(super) async fn commit_and_notify_all(
    cx: &Cx<'_>,
    guard: tokio::sync::MutexGuard<'_, ()>,
    batch: JobBatch,
    finished_jobs: &[&str],
) -> Result<(), StoreError> {
    let failed = super::failures::in_batch(&batch);
    let events = cx.store.write_jobs(batch)?;
    drop(guard);
    cx.store.flush().await?;
    for (job_name, state) in failed {
        cx.jobs.failed_tasks.record(&job_name, state);
    }
    for (job_id, event) in events {
        super::watch::publish(cx.jobs, &job_id, event);
    }
    for job_id in finished_jobs {
        super::watch::close(cx.jobs, job_id);
        cx.jobs.secrets.forget(job_id);
    }
    Ok(())
}

/// Sends each message to its node's session; a node offline gets it when it connects, a node
/// whose queue stays full has its session closed so it reconnects.
///
/// A queue with room takes its message without yielding (see
/// [`Outbound::send`](crate::sessions::Outbound::send)), so a submit to 10,000 nodes queues
/// every Assign before the sessions it wakes run.
pub(super) async fn send_all(cx: &Cx<'_>, outgoing: Outgoing) {
    for (node, m) in outgoing {
        let Some(tx) = cx.sessions.sender(&node) else {
            continue; // offline: re-sent when it connects
        };
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            tx.send(Ok(CoordinatorMessage { msg: Some(m) })),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!(node = %node, "agent queue full; closing its session so it reconnects");
            cx.sessions.close(&node, CloseReason::NotReading);
        }
    }
}

/// The planner's next actions for `job`, whose tasks are `tasks` in rollout order.
pub(super) fn plan_job(cx: &Cx<'_>, job: &JobRecord, tasks: &[TaskRecord]) -> Vec<Action> {
    let views: Vec<TaskView> = tasks
        .iter()
        .map(|t| TaskView {
            state: state_of(t),
            node_online: cx
                .sessions
                .is_online(t.info.as_ref().map_or("", |i| i.node.as_str())),
        })
        .collect();
    let r = job
        .spec
        .as_ref()
        .and_then(|s| s.rollout)
        .unwrap_or_default();
    plan(
        JobView {
            rollout: Rollout {
                batch_size: r.batch_size,
                batch_percent: r.batch_percent,
                max_failures: r.max_failures,
                canary: r.canary,
            },
            cancel_requested: job.cancel_requested,
            past_deadline: now_ms() > job.deadline_unix_ms,
        },
        &views,
    )
}

/// Carries out the planner's `actions` on `tasks` (state changes and their events into `batch`,
/// assignments into `outgoing`, with the job's secret content from `held`); returns the indexes
/// of the tasks it changed. A task whose secret content is lost fails instead of being sent.
pub(super) fn apply_actions(
    job: &mut JobRecord,
    tasks: &mut [TaskRecord],
    actions: Vec<Action>,
    batch: &mut JobBatch,
    outgoing: &mut Outgoing,
    held: &Held,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for action in actions {
        let (i, event) = match action {
            Action::Assign(i) => (i, TaskEvent::Assign),
            Action::Cancel(i) => (i, TaskEvent::Cancel),
            Action::Expire(i) => (i, TaskEvent::Expire),
        };
        let Some(task) = tasks.get_mut(i) else {
            continue;
        };
        let Ok(to) = state_of(task).on(event) else {
            continue;
        };
        if to == TaskState::Expired {
            info_mut(task).error = "the node did not connect before the job's deadline".into();
        }
        if event == TaskEvent::Assign {
            let secret = match held {
                Held::None => None,
                Held::Content(content) => Some(content.as_ref()),
                Held::Lost => {
                    set_state(job, task, to, batch);
                    fail_undelivered(job, task, batch);
                    changed.push(i);
                    continue;
                }
            };
            let info = info_mut(task);
            match assign::sendable(job, &info.task_id, &info.node, secret) {
                Ok(m) => outgoing.push((info.node.clone(), m)),
                Err(reason) => {
                    // Sending it would end the agent's session; the task fails instead.
                    set_state(job, task, to, batch);
                    fail_unsent(job, task, reason, batch);
                    changed.push(i);
                    continue;
                }
            }
        }
        set_state(job, task, to, batch);
        changed.push(i);
    }
    changed
}

/// Fails the node's unfinished tasks in `unsent` (task id, reason): their Assign cannot be sent.
async fn fail_unsendable(cx: &Cx<'_>, unsent: Vec<(String, String)>) -> Result<(), StoreError> {
    for (task_id, reason) in unsent {
        let guard = cx.jobs.lock.lock().await;
        let Some(mut task) = cx.store.task(&task_id)? else {
            continue;
        };
        let Some(mut job) = cx.store.job(&task.job_id)? else {
            continue;
        };
        let mut batch = JobBatch::default();
        fail_unsent(&mut job, &mut task, reason, &mut batch);
        finish_if_done(&mut job, &mut batch);
        let done = job.done.then_some(job.job_id.clone());
        let job_id = job.job_id.clone();
        let waiting = job.pending_tasks > 0 && !job.done;
        batch.tasks.push(task);
        batch.jobs.push(job);
        commit_and_notify(cx, guard, batch, done.as_deref()).await?;
        if waiting {
            schedule(cx, &job_id).await?;
        }
    }
    Ok(())
}

/// Runs the planner for one job and carries out its actions.
pub async fn schedule(cx: &Cx<'_>, job_id: &str) -> Result<(), StoreError> {
    let guard = cx.jobs.lock.lock().await;
    let Some(mut job) = cx.store.job(job_id)? else {
        return Ok(());
    };
    if job.done {
        return Ok(());
    }
    let mut tasks = cx.store.tasks_of(&job)?;
    let actions = plan_job(cx, &job, &tasks);
    if actions.is_empty() {
        return Ok(());
    }
    let mut batch = JobBatch::default();
    let mut outgoing = Outgoing::new();
    let held = cx.jobs.secrets.held(&job.job_id, job.spec.as_ref());
    let changed = apply_actions(
        &mut job,
        &mut tasks,
        actions,
        &mut batch,
        &mut outgoing,
        &held,
    );
    finish_if_done(&mut job, &mut batch);
    batch.tasks = changed.into_iter().map(|i| tasks[i].clone()).collect();
    let done = job.done.then_some(job.job_id.clone());
    batch.jobs.push(job);
    commit_and_notify(cx, guard, batch, done.as_deref()).await?;
    send_all(cx, outgoing).await;
    Ok(())
}

/// After a node connects: re-send its unfinished work and start what waited for it.
pub async fn on_session_start(cx: &Cx<'_>, node: &str) {
    let result: Result<(), StoreError> = async {
        let mut outgoing = Outgoing::new();
        let mut to_schedule = Vec::new();
        let mut undeliverable = Vec::new();
        let mut unsent = Vec::new();
        for task_id in cx.store.unfinished_tasks_of_node(node)? {
            let Some(task) = cx.store.task(&task_id)? else {
                continue;
            };
            let Some(job) = cx.store.job(&task.job_id)? else {
                continue;
            };
            match state_of(&task) {
                TaskState::Assigned | TaskState::Running if job.cancel_requested => {
                    outgoing.push((node.to_owned(), CoordMsg::Cancel(CancelTask { task_id })));
                }
                state @ (TaskState::Assigned | TaskState::Running) => {
                    let secret = match cx.jobs.secrets.held(&job.job_id, job.spec.as_ref()) {
                        Held::None => None,
                        Held::Content(content) => Some(content),
                        // A running task is on its agent already; an assigned one may not be.
                        Held::Lost if state == TaskState::Running => continue,
                        Held::Lost => {
                            undeliverable.push(task_id);
                            continue;
                        }
                    };
                    match assign::sendable(&job, &task_id, node, secret.as_deref()) {
                        Ok(m) => outgoing.push((node.to_owned(), m)),
                        Err(reason) => unsent.push((task_id, reason)),
                    }
                }
                TaskState::Pending if !to_schedule.contains(&job.job_id) => {
                    to_schedule.push(job.job_id.clone())
                }
                _ => {}
            }
        }
        send_all(cx, outgoing).await;
        for task_id in undeliverable {
            fail_assigned_undelivered(cx, &task_id).await?;
        }
        fail_unsendable(cx, unsent).await?;
        for job_id in to_schedule {
            schedule(cx, &job_id).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(node, error = %e, "cannot resume the node's tasks");
    }
}

/// Fails task `task_id` if it is still assigned (its agent has not confirmed it) and its job's
/// secret content is lost.
async fn fail_assigned_undelivered(cx: &Cx<'_>, task_id: &str) -> Result<(), StoreError> {
    let guard = cx.jobs.lock.lock().await;
    let Some(mut task) = cx.store.task(task_id)? else {
        return Ok(());
    };
    let Some(mut job) = cx.store.job(&task.job_id)? else {
        return Ok(());
    };
    let lost = matches!(
        cx.jobs.secrets.held(&job.job_id, job.spec.as_ref()),
        Held::Lost
    );
    if !lost || state_of(&task) != TaskState::Assigned {
        return Ok(());
    }
    let mut batch = JobBatch::default();
    fail_undelivered(&mut job, &mut task, &mut batch);
    finish_if_done(&mut job, &mut batch);
    batch.tasks.push(task);
    let done = job.done.then_some(job.job_id.clone());
    batch.jobs.push(job);
    commit_and_notify(cx, guard, batch, done.as_deref()).await
}

/// Cancels a job: pending tasks and tasks of offline nodes at once, running ones on their agent.
pub async fn cancel(cx: &Cx<'_>, job_id: &str) -> Result<JobRecord, ApiError> {
    let guard = cx.jobs.lock.lock().await;
    let mut job = cx
        .store
        .job(job_id)?
        .ok_or_else(|| ApiError::NotFound(format!("no job '{job_id}'; see 'labctl jobs'")))?;
    if job.done {
        return Ok(job);
    }
    job.cancel_requested = true;
    let mut tasks = cx.store.tasks_of(&job)?;
    let mut batch = JobBatch::default();
    let mut outgoing = Outgoing::new();
    let mut changed = Vec::new();
    for (i, task) in tasks.iter_mut().enumerate() {
        let state = state_of(task);
        let node = task
            .info
            .as_ref()
            .map(|i| i.node.clone())
            .unwrap_or_default();
        let online = cx.sessions.is_online(&node);
        match state {
            TaskState::Assigned | TaskState::Running if online => {
                outgoing.push((
                    node,
                    CoordMsg::Cancel(CancelTask {
                        task_id: info_mut(task).task_id.clone(),
                    }),
                ));
            }
            TaskState::Pending | TaskState::Assigned | TaskState::Running => {
                if state != TaskState::Pending {
                    info_mut(task).error = "the node was offline when the job was cancelled".into();
                }
                set_state(&mut job, task, TaskState::Cancelled, &mut batch);
                changed.push(i);
            }
            _ => {}
        }
    }
    finish_if_done(&mut job, &mut batch);
    batch.tasks = changed.into_iter().map(|i| tasks[i].clone()).collect();
    let done = job.done.then_some(job.job_id.clone());
    batch.jobs.push(job.clone());
    commit_and_notify(cx, guard, batch, done.as_deref()).await?;
    send_all(cx, outgoing).await;
    tracing::info!(job = job_id, "job cancelled");
    Ok(job)
}
