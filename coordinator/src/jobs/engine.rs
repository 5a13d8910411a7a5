//! The job engine's operations: submit, schedule, apply agent updates, cancel, and the ticker.
//! Each takes the engine lock, reads current state from the store, decides with the pure
//! planner, commits one batch, then (outside the lock) tells agents and watchers.

use std::time::Duration;

use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{
    job_event, task_update, Ack, CancelTask, CoordinatorMessage, JobDone, JobEvent, JobSpec,
    TaskInfo, TaskOutput, TaskProgressEvent, TaskUpdate,
};

use super::rollout::{plan, Action, JobView, Rollout, TaskView};
use super::secrets::{self, Held};
use super::state::{TaskEvent, TaskState};
use super::{assign, bounds};
use crate::error::ApiError;
use crate::sessions::CloseReason;
use crate::state::{now_ms, Coordinator};
use crate::store::{JobBatch, StoreError};
use lab_proto::limits::MAX_OUTPUT_CHUNK;

/// How long a message to an agent may wait for room in its queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages to agents, sent after the batch that caused them is durable.
type Outgoing = Vec<(String, CoordMsg)>;

fn state_of(task: &TaskRecord) -> TaskState {
    task.info
        .as_ref()
        .and_then(|i| TaskState::from_wire(i.state))
        .unwrap_or(TaskState::Pending)
}

fn info_mut(task: &mut TaskRecord) -> &mut TaskInfo {
    task.info.get_or_insert_with(TaskInfo::default)
}

fn new_job_id() -> String {
    format!("{:013x}{:06x}", now_ms(), rand::random::<u32>() & 0xff_ffff)
}

/// Appends an event of `job` to `batch`; returns its sequence number.
fn push_event(job: &mut JobRecord, batch: &mut JobBatch, body: job_event::Body) -> u64 {
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

fn set_state(job: &mut JobRecord, task: &mut TaskRecord, to: TaskState, batch: &mut JobBatch) {
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
fn finish_if_done(job: &mut JobRecord, batch: &mut JobBatch) {
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

/// Writes `batch` under the engine lock (`guard`), releases the lock, waits until the batch is
/// durable (sharing the flush with concurrent changes), then tells watchers.
async fn commit_and_notify(
    coord: &Coordinator,
    guard: tokio::sync::MutexGuard<'_, ()>,
    batch: JobBatch,
    finished_job: Option<&str>,
) -> Result<(), StoreError> {
    let events = coord.store.write_jobs(batch)?;
    drop(guard);
    coord.store.flush().await?;
    for (job_id, event) in events {
        super::watch::publish(coord, &job_id, event);
    }
    if let Some(job_id) = finished_job {
        super::watch::close(coord, job_id);
        coord.jobs.secrets.forget(job_id);
    }
    Ok(())
}

async fn send_all(coord: &Coordinator, outgoing: Outgoing) {
    for (node, m) in outgoing {
        let Some(tx) = coord.sessions.sender(&node) else {
            continue; // offline: re-sent when it connects
        };
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            tx.send(Ok(CoordinatorMessage { msg: Some(m) })),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!(node = %node, "agent queue full; closing its session so it reconnects");
            coord.sessions.close(&node, CloseReason::NotReading);
        }
    }
}

/// Submits a job: validates, resolves the selector to nodes, stores one task per node.
pub async fn submit(
    coord: &Coordinator,
    submitted_by: &str,
    spec: JobSpec,
) -> Result<(JobRecord, Vec<String>), ApiError> {
    let started = std::time::Instant::now();
    coord.store.ensure_room()?;
    let nodes = targets(coord, &spec)?;
    tracing::debug!(
        nodes = nodes.len(),
        ms = started.elapsed().as_millis() as u64,
        "job targets resolved"
    );
    match create(coord, submitted_by, spec, new_job_id(), nodes).await? {
        Submitted::Created(job, nodes) => Ok((job, nodes)),
        Submitted::Existed(job) | Submitted::NoNodes(job) => Err(ApiError::FailedPrecondition(
            format!("job id '{}' is taken; submit again", job.job_id),
        )),
    }
}

/// What [`submit_once`] did.
#[derive(Debug)]
pub enum Submitted {
    /// A new job with its target nodes.
    Created(JobRecord, Vec<String>),
    /// A job with that id existed already (an earlier call made it); nothing was changed.
    Existed(JobRecord),
    /// The selector matched no node; nothing was stored (the record is what it would have been).
    NoNodes(JobRecord),
}

/// Submits a job under the caller's `job_id`, at most once: when a job with that id exists,
/// nothing is stored and the existing job is returned. A selector that matches no node stores
/// nothing. Schedules use this so that a firing repeated after a crash submits no second job.
pub async fn submit_once(
    coord: &Coordinator,
    submitted_by: &str,
    spec: JobSpec,
    job_id: String,
) -> Result<Submitted, ApiError> {
    if let Some(job) = coord.store.job(&job_id)? {
        return Ok(Submitted::Existed(job));
    }
    let nodes = targets(coord, &spec)?;
    if nodes.is_empty() {
        let job = JobRecord {
            job_id,
            spec: Some(spec),
            submitted_by: submitted_by.to_owned(),
            ..Default::default()
        };
        return Ok(Submitted::NoNodes(job));
    }
    create(coord, submitted_by, spec, job_id, nodes).await
}

/// Validates `spec` and resolves its selector to the names of nodes that are not revoked.
fn targets(coord: &Coordinator, spec: &JobSpec) -> Result<Vec<String>, ApiError> {
    let selector = super::spec::validate(spec)?;
    Ok(crate::inventory::select_names(&coord.store, &selector)?)
}

/// Stores job `job_id` with one task per node, unless a job with that id exists.
async fn create(
    coord: &Coordinator,
    submitted_by: &str,
    spec: JobSpec,
    job_id: String,
    nodes: Vec<String>,
) -> Result<Submitted, ApiError> {
    let started = std::time::Instant::now();
    let now = now_ms();
    let mut spec = spec;
    let secret = secrets::take(&mut spec);
    let deadline = match spec.deadline_ms {
        0 => coord.jobs.settings.default_deadline.as_millis() as i64,
        ms => ms as i64,
    };
    let mut job = JobRecord {
        pending_tasks: nodes.len() as u32,
        task_count: nodes.len() as u32,
        job_id,
        spec: Some(spec),
        submitted_by: submitted_by.to_owned(),
        submitted_unix_ms: now,
        deadline_unix_ms: now.saturating_add(deadline),
        next_event_seq: 1,
        ..Default::default()
    };
    let mut batch = JobBatch::default();
    let mut tasks = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let task_id = format!("{}-{i:04}", job.job_id);
        let info = TaskInfo {
            task_id: task_id.clone(),
            node: node.clone(),
            state: TaskState::Pending.to_wire() as i32,
            exit_code: -1,
            ..Default::default()
        };
        job.task_ids.push(task_id.clone());
        batch.active_add.push((node.clone(), task_id));
        push_event(&mut job, &mut batch, job_event::Body::Task(info.clone()));
        tasks.push(TaskRecord {
            job_id: job.job_id.clone(),
            info: Some(info),
            ..Default::default()
        });
    }
    // The first planning pass runs on the new records, so the tasks the rollout starts at once
    // are written once, already assigned (after their pending event), not written pending and
    // then read back and rewritten.
    let held = match secret {
        Some(content) => Held::Content(std::sync::Arc::new(content)),
        None => Held::None,
    };
    let mut outgoing = Outgoing::new();
    let actions = plan_job(coord, &job, &tasks);
    apply_actions(
        &mut job,
        &mut tasks,
        actions,
        &mut batch,
        &mut outgoing,
        &held,
    );
    let built = started.elapsed();
    let guard = coord.jobs.lock.lock().await;
    if let Some(existing) = coord.store.job(&job.job_id)? {
        return Ok(Submitted::Existed(existing));
    }
    if let Held::Content(content) = &held {
        let secrets = &coord.jobs.secrets;
        secrets.hold(&job.job_id, content.clone(), &job.task_ids);
    }
    finish_if_done(&mut job, &mut batch);
    batch.tasks = tasks;
    batch.jobs.push(job.clone());
    let done = job.done.then_some(job.job_id.clone());
    if let Err(e) = commit_and_notify(coord, guard, batch, done.as_deref()).await {
        coord.jobs.secrets.forget(&job.job_id);
        return Err(e.into());
    }
    let stored = started.elapsed();
    send_all(coord, outgoing).await;
    tracing::info!(
        job = %job.job_id,
        tasks = nodes.len(),
        by = submitted_by,
        built_ms = built.as_millis() as u64,
        durable_ms = stored.as_millis() as u64,
        sent_ms = started.elapsed().as_millis() as u64,
        "job submitted"
    );
    Ok(Submitted::Created(job, nodes))
}

/// The planner's next actions for `job`, whose tasks are `tasks` in rollout order.
fn plan_job(coord: &Coordinator, job: &JobRecord, tasks: &[TaskRecord]) -> Vec<Action> {
    let views: Vec<TaskView> = tasks
        .iter()
        .map(|t| TaskView {
            state: state_of(t),
            node_online: coord
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
fn apply_actions(
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

/// Fails an assigned task that cannot be sent because its secret content is lost.
fn fail_undelivered(job: &mut JobRecord, task: &mut TaskRecord, batch: &mut JobBatch) {
    if let Ok(to) = state_of(task).on(TaskEvent::Finish(TaskState::Failed)) {
        info_mut(task).error = secrets::LOST.into();
        set_state(job, task, to, batch);
    }
}

/// Fails an assigned or running `task` whose Assign cannot be sent, with `reason`.
fn fail_unsent(job: &mut JobRecord, task: &mut TaskRecord, reason: String, batch: &mut JobBatch) {
    let Ok(to) = state_of(task).on(TaskEvent::Finish(TaskState::Failed)) else {
        return;
    };
    let info = info_mut(task);
    tracing::error!(job = %job.job_id, task = %info.task_id, node = %info.node, %reason, "task not sent");
    info.error = reason;
    set_state(job, task, to, batch);
}

/// Fails the node's unfinished tasks in `unsent` (task id, reason): their Assign cannot be sent.
async fn fail_unsendable(
    coord: &Coordinator,
    unsent: Vec<(String, String)>,
) -> Result<(), StoreError> {
    for (task_id, reason) in unsent {
        let guard = coord.jobs.lock.lock().await;
        let Some(mut task) = coord.store.task(&task_id)? else {
            continue;
        };
        let Some(mut job) = coord.store.job(&task.job_id)? else {
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
        commit_and_notify(coord, guard, batch, done.as_deref()).await?;
        if waiting {
            schedule(coord, &job_id).await?;
        }
    }
    Ok(())
}

/// Runs the planner for one job and carries out its actions.
pub async fn schedule(coord: &Coordinator, job_id: &str) -> Result<(), StoreError> {
    let guard = coord.jobs.lock.lock().await;
    let Some(mut job) = coord.store.job(job_id)? else {
        return Ok(());
    };
    if job.done {
        return Ok(());
    }
    let mut tasks = coord.store.tasks_of(&job)?;
    let actions = plan_job(coord, &job, &tasks);
    if actions.is_empty() {
        return Ok(());
    }
    let mut batch = JobBatch::default();
    let mut outgoing = Outgoing::new();
    let held = coord.jobs.secrets.held(&job.job_id, job.spec.as_ref());
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
    commit_and_notify(coord, guard, batch, done.as_deref()).await?;
    send_all(coord, outgoing).await;
    Ok(())
}

/// Applies one update from `node`; returns the acknowledgement to send back.
pub async fn on_update(
    coord: &Coordinator,
    node: &str,
    update: TaskUpdate,
) -> Result<Option<Ack>, ApiError> {
    let guard = coord.jobs.lock.lock().await;
    let Some(mut task) = coord.store.task(&update.task_id)? else {
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
    let Some(mut job) = coord.store.job(&task.job_id)? else {
        return Ok(None);
    };
    task.last_seq = update.seq;
    let mut batch = JobBatch::default();
    let mut finished = false;
    match update.body {
        Some(task_update::Body::Started(s)) => {
            if let Ok(to) = state_of(&task).on(TaskEvent::Start) {
                info_mut(&mut task).started_unix_ms = s.unix_ms;
                set_state(&mut job, &mut task, to, &mut batch);
            }
        }
        Some(task_update::Body::Output(mut chunk)) => {
            let len = chunk.data.len() as u64;
            let limit = coord.jobs.settings.output_limit_per_task;
            // A chunk over the per-chunk limit keeps its tail (agents send at most that much).
            let chunk_limit = MAX_OUTPUT_CHUNK.min(usize::try_from(limit).unwrap_or(usize::MAX));
            let cut = bounds::keep_tail(&mut chunk.data, chunk_limit);
            let info = info_mut(&mut task);
            info.output_bytes += len;
            info.output_dropped_bytes += cut;
            let out = TaskOutput {
                task_id: info.task_id.clone(),
                node: info.node.clone(),
                stream: chunk.stream,
                data: chunk.data,
            };
            let kept = info.output_bytes.saturating_sub(info.output_dropped_bytes);
            if kept > limit {
                let freed = coord
                    .store
                    .trim_output(&job.job_id, &update.task_id, kept - limit)?;
                info_mut(&mut task).output_dropped_bytes += freed;
            }
            push_event(&mut job, &mut batch, job_event::Body::Output(out));
        }
        Some(task_update::Body::Progress(mut progress)) => {
            bounds::bound_progress(&mut progress);
            let info = info_mut(&mut task);
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
            task.progress_event_seq =
                push_event(&mut job, &mut batch, job_event::Body::Progress(event));
        }
        Some(task_update::Body::Finished(f)) => {
            let to = TaskState::from_wire(f.state).filter(|s| s.is_final());
            match to.map(|to| state_of(&task).on(TaskEvent::Finish(to))) {
                Some(Ok(to)) => {
                    let mut result = f.result;
                    let note = bounds::bound_result(&mut result);
                    let info = info_mut(&mut task);
                    info.exit_code = f.exit_code;
                    info.error = bounds::task_error(&f.error, note.as_deref());
                    info.result = result;
                    info.output_bytes += f.output_dropped_bytes;
                    info.output_dropped_bytes += f.output_dropped_bytes;
                    if info.output_dropped_bytes > 0 {
                        tracing::warn!(
                            node,
                            task = %info.task_id,
                            output_bytes = info.output_bytes,
                            dropped_bytes = info.output_dropped_bytes,
                            limit_bytes = coord.jobs.settings.output_limit_per_task,
                            "task output dropped to stay within the limit"
                        );
                    }
                    set_state(&mut job, &mut task, to, &mut batch);
                    crate::backups::on_final(&coord.store, &job, &task, &mut batch)?;
                    finished = true;
                }
                _ => {
                    tracing::info!(node, task = %update.task_id, "final update ignored in state {:?}", state_of(&task))
                }
            }
        }
        None => {}
    }
    finish_if_done(&mut job, &mut batch);
    batch.tasks.push(task);
    let done = job.done.then_some(job.job_id.clone());
    let job_id = job.job_id.clone();
    let waiting = job.pending_tasks > 0;
    batch.jobs.push(job);
    commit_and_notify(coord, guard, batch, done.as_deref()).await?;
    // The agent has the task: it never needs the secret content again.
    coord.jobs.secrets.delivered(&job_id, &update.task_id);
    if finished && done.is_none() && waiting {
        // A slot in the rollout window opened.
        schedule(coord, &job_id).await?;
    }
    Ok(Some(Ack {
        task_id: update.task_id,
        through_seq: update.seq,
    }))
}

/// After a node connects: re-send its unfinished work and start what waited for it.
pub async fn on_session_start(coord: &Coordinator, node: &str) {
    let result: Result<(), StoreError> = async {
        let mut outgoing = Outgoing::new();
        let mut to_schedule = Vec::new();
        let mut undeliverable = Vec::new();
        let mut unsent = Vec::new();
        for task_id in coord.store.unfinished_tasks_of_node(node)? {
            let Some(task) = coord.store.task(&task_id)? else {
                continue;
            };
            let Some(job) = coord.store.job(&task.job_id)? else {
                continue;
            };
            match state_of(&task) {
                TaskState::Assigned | TaskState::Running if job.cancel_requested => {
                    outgoing.push((node.to_owned(), CoordMsg::Cancel(CancelTask { task_id })));
                }
                state @ (TaskState::Assigned | TaskState::Running) => {
                    let secret = match coord.jobs.secrets.held(&job.job_id, job.spec.as_ref()) {
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
        send_all(coord, outgoing).await;
        for task_id in undeliverable {
            fail_assigned_undelivered(coord, &task_id).await?;
        }
        fail_unsendable(coord, unsent).await?;
        for job_id in to_schedule {
            schedule(coord, &job_id).await?;
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
async fn fail_assigned_undelivered(coord: &Coordinator, task_id: &str) -> Result<(), StoreError> {
    let guard = coord.jobs.lock.lock().await;
    let Some(mut task) = coord.store.task(task_id)? else {
        return Ok(());
    };
    let Some(mut job) = coord.store.job(&task.job_id)? else {
        return Ok(());
    };
    let lost = matches!(
        coord.jobs.secrets.held(&job.job_id, job.spec.as_ref()),
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
    commit_and_notify(coord, guard, batch, done.as_deref()).await
}

/// Cancels a job: pending tasks and tasks of offline nodes at once, running ones on their agent.
pub async fn cancel(coord: &Coordinator, job_id: &str) -> Result<JobRecord, ApiError> {
    let guard = coord.jobs.lock.lock().await;
    let mut job = coord
        .store
        .job(job_id)?
        .ok_or_else(|| ApiError::NotFound(format!("no job '{job_id}'; see 'labctl jobs'")))?;
    if job.done {
        return Ok(job);
    }
    job.cancel_requested = true;
    let mut tasks = coord.store.tasks_of(&job)?;
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
        let online = coord.sessions.is_online(&node);
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
    commit_and_notify(coord, guard, batch, done.as_deref()).await?;
    send_all(coord, outgoing).await;
    tracing::info!(job = job_id, "job cancelled");
    Ok(job)
}

/// Every second: schedule unfinished jobs (deadlines, nodes that came online); every ten
/// minutes: apply the retention policy. Runs until shutdown.
pub async fn run_ticker(coord: std::sync::Arc<Coordinator>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = coord.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match coord.store.unfinished_jobs() {
            Ok(jobs) => {
                // Only pending tasks can be started, cancelled or expired.
                for job in jobs.into_iter().filter(|j| j.pending_tasks > 0) {
                    if let Err(e) = schedule(&coord, &job.job_id).await {
                        tracing::error!(job = %job.job_id, error = %e, "scheduling failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list unfinished jobs"),
        }
        if n.is_multiple_of(600) {
            if let Err(e) = apply_retention(&coord).await {
                tracing::error!(error = %e, "job retention failed");
            }
        }
        n += 1;
    }
}

async fn apply_retention(coord: &Coordinator) -> Result<(), StoreError> {
    let settings = &coord.jobs.settings;
    let cutoff = now_ms() - settings.retention_age.as_millis() as i64;
    let mut kept = 0usize;
    for job in coord.store.jobs_newest_first(usize::MAX)? {
        if !job.done {
            continue;
        }
        kept += 1;
        if kept > settings.retention_count || job.finished_unix_ms < cutoff {
            coord.store.remove_job(&job).await?;
        }
    }
    Ok(())
}
