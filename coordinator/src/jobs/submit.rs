//! Submitting jobs: validate the spec, resolve its selector to nodes, store one task per node
//! (the tasks the rollout starts at once already assigned), then send the assignments.

use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{job_event, JobSpec, TaskInfo};

use super::engine::{apply_actions, commit_and_notify, plan_job, send_all, Outgoing};
use super::records::{finish_if_done, push_event};
use super::secrets::{self, Held};
use super::state::TaskState;
use super::Cx;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::store::JobBatch;

/// Submits a job: validates, resolves the selector to nodes, stores one task per node.
pub async fn submit(
    cx: &Cx<'_>,
    submitted_by: &str,
    spec: JobSpec,
) -> Result<(JobRecord, Vec<String>), ApiError> {
    let started = std::time::Instant::now();
    cx.store.ensure_room()?;
    let nodes = targets(cx, &spec)?;
    tracing::debug!(
        nodes = nodes.len(),
        ms = started.elapsed().as_millis() as u64,
        "job targets resolved"
    );
    match create(cx, submitted_by, spec, new_job_id(), nodes).await? {
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
    cx: &Cx<'_>,
    submitted_by: &str,
    spec: JobSpec,
    job_id: String,
) -> Result<Submitted, ApiError> {
    if let Some(job) = cx.store.job(&job_id)? {
        return Ok(Submitted::Existed(job));
    }
    let nodes = targets(cx, &spec)?;
    if nodes.is_empty() {
        let job = JobRecord {
            job_id,
            spec: Some(spec),
            submitted_by: submitted_by.to_owned(),
            ..Default::default()
        };
        return Ok(Submitted::NoNodes(job));
    }
    create(cx, submitted_by, spec, job_id, nodes).await
}

/// Validates `spec` and resolves its selector to the names of nodes that are not revoked.
fn targets(cx: &Cx<'_>, spec: &JobSpec) -> Result<Vec<String>, ApiError> {
    let selector = super::spec::validate(spec)?;
    Ok(crate::inventory::select_names(cx.store, &selector, cx)?)
}

/// Stores job `job_id` with one task per node, unless a job with that id exists.
async fn create(
    cx: &Cx<'_>,
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
        0 => cx.jobs.settings.default_deadline.as_millis() as i64,
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
        batch
            .node_jobs
            .push((node.clone(), job.job_id.clone(), task_id.clone()));
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
    let actions = plan_job(cx, &job, &tasks);
    apply_actions(
        &mut job,
        &mut tasks,
        actions,
        &mut batch,
        &mut outgoing,
        &held,
    );
    let built = started.elapsed();
    let guard = cx.jobs.lock.lock().await;
    if let Some(existing) = cx.store.job(&job.job_id)? {
        return Ok(Submitted::Existed(existing));
    }
    if let Held::Content(content) = &held {
        let secrets = &cx.jobs.secrets;
        secrets.hold(&job.job_id, content.clone(), &job.task_ids);
    }
    finish_if_done(&mut job, &mut batch);
    batch.tasks = tasks;
    batch.jobs.push(job.clone());
    let done = job.done.then_some(job.job_id.clone());
    if let Err(e) = commit_and_notify(cx, guard, batch, done.as_deref()).await {
        cx.jobs.secrets.forget(&job.job_id);
        return Err(e.into());
    }
    let stored = started.elapsed();
    send_all(cx, outgoing).await;
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

/// A new job id: the time in hex (so ids sort by submission) and 24 random bits.
fn new_job_id() -> String {
    format!("{:013x}{:06x}", now_ms(), rand::random::<u32>() & 0xff_ffff)
}
