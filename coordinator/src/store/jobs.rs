//! Jobs, tasks and job events in the store. A change to jobs is one [`JobBatch`], written to its
//! trees and flushed once, so a task update and the events it produces become durable together
//! before the agent is acknowledged.
//!
//! Trees: `jobs` (job id → JobRecord; ids sort by submit time), `tasks` (task id → TaskRecord),
//! `events` (job id ‖ seq → EventRecord: one event, or a run of state changes stored as one
//! record under its first seq), `node_tasks` (node ‖ task id: the node's unfinished
//! tasks), `task_output` (task id ‖ event seq → bytes: output events, oldest first, for trimming),
//! `job_tasks` (job id → JobTasksRecord: the task ids in rollout order, written once at submit),
//! `node_jobs` (node ‖ job id → task id: every job with a task on the node, written at submit;
//! filled from `tasks` when a store from before it is opened).
//!
//! A job record is rewritten with every task update, so it carries only the task count: keeping
//! the ids in it made each update encode, write and decode all N ids (quadratic in the fleet
//! size per job). Records written before carry `task_ids` themselves; both shapes are read.

use std::ops::Bound;

use lab_proto::store::v1::{EventRecord, JobRecord, JobTasksRecord, TaskRecord};
use lab_proto::v1::{job_event, JobEvent};
use prost::Message;

use super::kv::{keys_in, Keys, Kv, Op, Order, TreeId};
use super::{decode, Store, StoreError, RECORD_VERSION};

/// Writes of one job change.
#[derive(Debug, Default)]
pub struct JobBatch {
    /// Job records to write.
    pub jobs: Vec<JobRecord>,
    /// Task records to write.
    pub tasks: Vec<TaskRecord>,
    /// Events to append, with their job id.
    pub events: Vec<(String, JobEvent)>,
    /// (node, task id) pairs that became unfinished.
    pub active_add: Vec<(String, String)>,
    /// (node, task id) pairs that became final.
    pub active_remove: Vec<(String, String)>,
    /// New tasks as (node, job id, task id), for the node's job history.
    pub node_jobs: Vec<(String, String, String)>,
    /// Backup index records changed by a task that reached a final state.
    pub backups: Vec<lab_proto::store::v1::BackupRecord>,
    /// Stored events to delete, with their job id (a task's progress event replaced by a
    /// newer one).
    pub dropped_events: Vec<(String, u64)>,
}

fn event_key(job_id: &str, seq: u64) -> Vec<u8> {
    let mut key = job_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    format!("{a}\n{b}").into_bytes()
}

fn output_key(task_id: &str, seq: u64) -> Vec<u8> {
    event_key(task_id, seq)
}

/// Version of an [`EventRecord`] holding a run of events (one that older coordinators, which
/// would read only its first event, refuse to read).
const EVENT_RUN_VERSION: u32 = 2;
/// Most events in one stored run.
const MAX_RUN_EVENTS: usize = 256;
/// A run stops growing once it holds this many bytes.
const MAX_RUN_BYTES: usize = 32 * 1024;

/// Whether `event` may be stored in a run: state changes and job ends, which are never deleted
/// alone (output events are trimmed and progress events replaced one by one).
fn in_runs(event: &JobEvent) -> bool {
    !matches!(
        event.body,
        Some(job_event::Body::Output(_) | job_event::Body::Progress(_))
    )
}

/// An event record of either version.
fn decode_events(bytes: &[u8]) -> Result<EventRecord, StoreError> {
    let rec = EventRecord::decode(bytes).map_err(|source| StoreError::Decode {
        tree: "events",
        source,
    })?;
    if rec.version > EVENT_RUN_VERSION {
        return Err(StoreError::NewerVersion {
            tree: "events",
            found: rec.version,
        });
    }
    Ok(rec)
}

/// A record of either shape with its task count set.
fn with_count(mut job: JobRecord) -> JobRecord {
    job.task_count = job.task_count.max(job.task_ids.len() as u32);
    job
}

impl Store {
    /// Writes `batch` and flushes.
    pub async fn commit_jobs(&self, batch: JobBatch) -> Result<(), StoreError> {
        let t = self.w()?;
        Self::write_batch(t, batch)?;
        self.flush().await
    }

    /// Writes `batch` without waiting for the disk; call [`Store::flush`] before acknowledging
    /// anything in it (the job engine writes under its lock and flushes after releasing it, so
    /// concurrent updates share one flush). Returns the batch's events (with their job ids), in
    /// order, for publishing once durable.
    pub fn write_jobs(&self, batch: JobBatch) -> Result<Vec<(String, JobEvent)>, StoreError> {
        Self::write_batch(self.w()?, batch)
    }

    fn write_batch(t: &dyn Kv, batch: JobBatch) -> Result<Vec<(String, JobEvent)>, StoreError> {
        let mut ops = Vec::with_capacity(
            batch.jobs.len() + batch.tasks.len() + batch.events.len() * 2 + batch.backups.len(),
        );
        for mut job in batch.jobs {
            job.version = RECORD_VERSION;
            if !job.task_ids.is_empty() {
                job.task_count = job.task_count.max(job.task_ids.len() as u32);
                let list = JobTasksRecord {
                    version: RECORD_VERSION,
                    task_ids: std::mem::take(&mut job.task_ids),
                };
                ops.push(Op::Put(
                    TreeId::JobTasks,
                    job.job_id.as_bytes().to_vec(),
                    list.encode_to_vec(),
                ));
            }
            ops.push(Op::Put(
                TreeId::Jobs,
                job.job_id.as_bytes().to_vec(),
                job.encode_to_vec(),
            ));
        }
        for mut task in batch.tasks {
            task.version = RECORD_VERSION;
            let id = task
                .info
                .as_ref()
                .map(|i| i.task_id.clone())
                .unwrap_or_default();
            ops.push(Op::Put(
                TreeId::Tasks,
                id.into_bytes(),
                task.encode_to_vec(),
            ));
        }
        let written = Self::event_ops(&mut ops, batch.events);
        for (job_id, seq) in batch.dropped_events {
            ops.push(Op::Delete(TreeId::Events, event_key(&job_id, seq)));
        }
        for (node, task) in batch.active_add {
            ops.push(Op::Put(
                TreeId::NodeTasks,
                pair_key(&node, &task),
                Vec::new(),
            ));
        }
        for (node, task) in batch.active_remove {
            ops.push(Op::Delete(TreeId::NodeTasks, pair_key(&node, &task)));
        }
        for (node, job_id, task_id) in batch.node_jobs {
            ops.push(Op::Put(
                TreeId::NodeJobs,
                pair_key(&node, &job_id),
                task_id.into_bytes(),
            ));
        }
        Self::backup_ops(&mut ops, batch.backups);
        t.apply(ops)?;
        Ok(written)
    }

    /// Puts `events` into `ops`: a run of state changes and job ends of one job with
    /// consecutive sequence numbers as one record (see [`EventRecord`]), output and progress
    /// events one record each. Returns the events in order.
    fn event_ops(ops: &mut Vec<Op>, events: Vec<(String, JobEvent)>) -> Vec<(String, JobEvent)> {
        let mut written = Vec::with_capacity(events.len());
        let mut events = events.into_iter().peekable();
        while let Some((job_id, event)) = events.next() {
            if let Some(job_event::Body::Output(out)) = &event.body {
                ops.push(Op::Put(
                    TreeId::TaskOutput,
                    output_key(&out.task_id, event.seq),
                    (out.data.len() as u64).to_be_bytes().to_vec(),
                ));
            }
            let key = event_key(&job_id, event.seq);
            let mut rec = EventRecord {
                version: RECORD_VERSION,
                more: Vec::new(),
                event: None,
            };
            if in_runs(&event) {
                let (mut seq, mut bytes) = (event.seq, event.encoded_len());
                while let Some((next_job, next)) = events.peek() {
                    if *next_job != job_id
                        || !in_runs(next)
                        || next.seq != seq + 1
                        || rec.more.len() + 1 >= MAX_RUN_EVENTS
                        || bytes >= MAX_RUN_BYTES
                    {
                        break;
                    }
                    (seq, bytes) = (next.seq, bytes + next.encoded_len());
                    rec.more.extend(events.next().map(|(_, e)| e));
                }
            }
            if !rec.more.is_empty() {
                rec.version = EVENT_RUN_VERSION;
            }
            rec.event = Some(event);
            ops.push(Op::Put(TreeId::Events, key, rec.encode_to_vec()));
            for e in rec.event.into_iter().chain(rec.more) {
                written.push((job_id.clone(), e));
            }
        }
        written
    }

    /// One job (without its task ids; see [`Store::task_ids_of`]).
    pub fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let t = self.t()?;
        Ok(Self::get(t, TreeId::Jobs, job_id.as_bytes())?.map(with_count))
    }

    /// The task ids of `job` in rollout order.
    pub fn task_ids_of(&self, job: &JobRecord) -> Result<Vec<String>, StoreError> {
        let t = self.t()?;
        if !job.task_ids.is_empty() {
            return Ok(job.task_ids.clone());
        }
        let list: Option<JobTasksRecord> = Self::get(t, TreeId::JobTasks, job.job_id.as_bytes())?;
        Ok(list.map(|l| l.task_ids).unwrap_or_default())
    }

    /// Up to `limit` jobs, newest first.
    pub fn jobs_newest_first(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs_newest_from(None, limit)
    }

    /// Up to `limit` jobs, newest first, from job `start` on (inclusive; `None`: the newest).
    pub fn jobs_newest_from(
        &self,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let t = self.t()?;
        let keys = match start {
            Some(id) => Keys::Range(Bound::Unbounded, Bound::Included(id.as_bytes())),
            None => Keys::All,
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        t.scan(TreeId::Jobs, keys, Order::Backward, &mut |_, v| {
            out.push(decode("jobs", v).map(with_count)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Up to `limit` jobs with a task on `node`, newest first, from job `start` on (inclusive;
    /// `None`: the newest), each with the id of the node's task.
    pub fn node_jobs_newest_from(
        &self,
        node: &str,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(JobRecord, String)>, StoreError> {
        let t = self.t()?;
        let prefix = pair_key(node, "");
        let end = start.map(|id| pair_key(node, id));
        let keys = match &end {
            Some(end) => Keys::Range(Bound::Included(&prefix), Bound::Included(end)),
            None => Keys::Prefix(&prefix),
        };
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(Vec::new());
        }
        t.scan(TreeId::NodeJobs, keys, Order::Backward, &mut |k, v| {
            let job_id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            found.push((job_id, String::from_utf8_lossy(v).into_owned()));
            Ok(found.len() < limit)
        })?;
        let mut out = Vec::with_capacity(found.len());
        for (job_id, task_id) in found {
            // A job removed since is skipped (its entries go with it).
            if let Some(job) = self.job(&job_id)? {
                out.push((job, task_id));
            }
        }
        Ok(out)
    }

    /// Jobs not done yet.
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let t = self.t()?;
        let mut out = Vec::new();
        t.scan(TreeId::Jobs, Keys::All, Order::Forward, &mut |_, v| {
            let job: JobRecord = decode("jobs", v)?;
            if !job.done {
                out.push(with_count(job));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// One task.
    pub fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Tasks, task_id.as_bytes())
    }

    /// The tasks of `job`, in rollout order.
    pub fn tasks_of(&self, job: &JobRecord) -> Result<Vec<TaskRecord>, StoreError> {
        let ids = self.task_ids_of(job)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(t) = self.task(id)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Events of `job_id` with seq ≥ `from_seq`, in order.
    pub fn events(&self, job_id: &str, from_seq: u64) -> Result<Vec<JobEvent>, StoreError> {
        let t = self.t()?;
        let mut start = event_key(job_id, from_seq);
        let end = event_key(job_id, u64::MAX);
        // A run stored under an earlier sequence number may hold `from_seq`.
        let lowest = event_key(job_id, 0);
        let before = Keys::Range(Bound::Included(&lowest), Bound::Excluded(&start));
        let mut run_start = None;
        t.scan(TreeId::Events, before, Order::Backward, &mut |k, _| {
            run_start = Some(k.to_vec());
            Ok(false)
        })?;
        if let Some(k) = run_start {
            start = k;
        }
        let mut out = Vec::new();
        let keys = Keys::Range(Bound::Included(&start), Bound::Included(&end));
        t.scan(TreeId::Events, keys, Order::Forward, &mut |_, v| {
            let rec = decode_events(v)?;
            let run = rec.event.into_iter().chain(rec.more);
            out.extend(run.filter(|e| e.seq >= from_seq));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Unfinished task ids of `node`.
    pub fn unfinished_tasks_of_node(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let t = self.t()?;
        let prefix = format!("{node}\n");
        let keys = keys_in(t, TreeId::NodeTasks, Keys::Prefix(prefix.as_bytes()))?;
        Ok(keys
            .iter()
            .map(|k| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            .collect())
    }

    /// Deletes the oldest output events of `task_id` (of job `job_id`) until at least `bytes`
    /// are freed; returns the bytes freed. Not flushed: the next commit flushes it.
    pub fn trim_output(&self, job_id: &str, task_id: &str, bytes: u64) -> Result<u64, StoreError> {
        let t = self.w()?;
        let mut freed = 0;
        let mut prefix = task_id.as_bytes().to_vec();
        prefix.push(0);
        let mut ops = Vec::new();
        t.scan(
            TreeId::TaskOutput,
            Keys::Prefix(&prefix),
            Order::Forward,
            &mut |key, len| {
                if freed >= bytes {
                    return Ok(false);
                }
                let seq_bytes: [u8; 8] = key[prefix.len()..].try_into().unwrap_or([0; 8]);
                let len_bytes: [u8; 8] = len.try_into().unwrap_or([0; 8]);
                let seq = u64::from_be_bytes(seq_bytes);
                ops.push(Op::Delete(TreeId::Events, event_key(job_id, seq)));
                ops.push(Op::Delete(TreeId::TaskOutput, key.to_vec()));
                freed += u64::from_be_bytes(len_bytes);
                Ok(true)
            },
        )?;
        t.apply(ops)?;
        Ok(freed)
    }

    /// Deletes a job with its tasks, events and indexes.
    pub async fn remove_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        let mut ops = Vec::new();
        for task_id in &self.task_ids_of(job)? {
            if let Some(task) = self.task(task_id)? {
                let node = task.info.map(|i| i.node).unwrap_or_default();
                ops.push(Op::Delete(TreeId::NodeTasks, pair_key(&node, task_id)));
                ops.push(Op::Delete(TreeId::NodeJobs, pair_key(&node, &job.job_id)));
            }
            ops.push(Op::Delete(TreeId::Tasks, task_id.as_bytes().to_vec()));
            let mut prefix = task_id.as_bytes().to_vec();
            prefix.push(0);
            for key in keys_in(t, TreeId::TaskOutput, Keys::Prefix(&prefix))? {
                ops.push(Op::Delete(TreeId::TaskOutput, key));
            }
        }
        let mut prefix = job.job_id.as_bytes().to_vec();
        prefix.push(0);
        for key in keys_in(t, TreeId::Events, Keys::Prefix(&prefix))? {
            ops.push(Op::Delete(TreeId::Events, key));
        }
        ops.push(Op::Delete(TreeId::Jobs, job.job_id.as_bytes().to_vec()));
        ops.push(Op::Delete(TreeId::JobTasks, job.job_id.as_bytes().to_vec()));
        t.apply(ops)?;
        self.flush().await
    }
}
