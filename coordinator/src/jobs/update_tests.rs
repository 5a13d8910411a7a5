//! [`apply_update`] on records in memory: each kind of update, what it changes and what it asks
//! of the caller.

use lab_proto::limits::MAX_OUTPUT_CHUNK;
use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{
    job_event, task_update, TaskChunk, TaskFinished, TaskInfo, TaskProgress, TaskStarted,
};

use super::{apply_update, Applied};
use crate::jobs::state::TaskState;
use crate::store::JobBatch;

const LIMIT: u64 = 1024 * 1024;

/// A job of one task on n1 in state `state` (the job's counts agree).
fn job_and_task(state: TaskState) -> (JobRecord, TaskRecord) {
    let job = JobRecord {
        job_id: "j1".into(),
        task_ids: vec!["j1-0000".into()],
        task_count: 1,
        pending_tasks: u32::from(state == TaskState::Pending),
        next_event_seq: 7,
        ..Default::default()
    };
    let task = TaskRecord {
        job_id: "j1".into(),
        info: Some(TaskInfo {
            task_id: "j1-0000".into(),
            node: "n1".into(),
            state: state.to_wire() as i32,
            exit_code: -1,
            ..Default::default()
        }),
        ..Default::default()
    };
    (job, task)
}

fn state(task: &TaskRecord) -> TaskState {
    TaskState::from_wire(task.info.as_ref().unwrap().state).unwrap()
}

fn output(bytes: usize) -> Option<task_update::Body> {
    Some(task_update::Body::Output(TaskChunk {
        data: vec![b'x'; bytes],
        ..Default::default()
    }))
}

fn finished(to: TaskState, exit_code: i32) -> Option<task_update::Body> {
    Some(task_update::Body::Finished(TaskFinished {
        state: to.to_wire() as i32,
        exit_code,
        ..Default::default()
    }))
}

#[test]
fn started_moves_an_assigned_task_to_running_with_one_event() {
    let (mut job, mut task) = job_and_task(TaskState::Assigned);
    let mut batch = JobBatch::default();
    let body = Some(task_update::Body::Started(TaskStarted { unix_ms: 42 }));
    let applied = apply_update(&mut job, &mut task, body, LIMIT, &mut batch);
    assert_eq!(applied, Applied::default());
    assert_eq!(state(&task), TaskState::Running);
    assert_eq!(task.info.as_ref().unwrap().started_unix_ms, 42);
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].1.seq, 7);
    assert_eq!(job.next_event_seq, 8);
}

#[test]
fn a_second_start_changes_nothing() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let body = Some(task_update::Body::Started(TaskStarted { unix_ms: 42 }));
    apply_update(&mut job, &mut task, body, LIMIT, &mut batch);
    assert_eq!(state(&task), TaskState::Running);
    assert!(batch.events.is_empty());
}

#[test]
fn an_oversized_chunk_keeps_its_tail_and_counts_the_rest() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let applied = apply_update(
        &mut job,
        &mut task,
        output(MAX_OUTPUT_CHUNK + 100),
        LIMIT,
        &mut batch,
    );
    assert_eq!(applied.trim_bytes, 0);
    let info = task.info.as_ref().unwrap();
    assert_eq!(info.output_bytes, (MAX_OUTPUT_CHUNK + 100) as u64);
    assert_eq!(info.output_dropped_bytes, 100);
    let Some(job_event::Body::Output(out)) = &batch.events[0].1.body else {
        panic!("expected an output event: {:?}", batch.events);
    };
    assert_eq!(out.data.len(), MAX_OUTPUT_CHUNK);
}

#[test]
fn output_over_the_task_limit_asks_for_a_trim_of_the_excess() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let limit = 1000;
    let first = apply_update(&mut job, &mut task, output(600), limit, &mut batch);
    assert_eq!(first.trim_bytes, 0);
    let second = apply_update(&mut job, &mut task, output(600), limit, &mut batch);
    assert_eq!(second.trim_bytes, 200);
}

#[test]
fn only_the_latest_progress_event_is_kept() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let progress = || {
        Some(task_update::Body::Progress(TaskProgress {
            percent: 10.0,
            ..Default::default()
        }))
    };
    apply_update(&mut job, &mut task, progress(), LIMIT, &mut batch);
    assert!(batch.dropped_events.is_empty());
    assert_eq!(task.progress_event_seq, 7);
    apply_update(&mut job, &mut task, progress(), LIMIT, &mut batch);
    assert_eq!(batch.dropped_events, vec![("j1".to_owned(), 7)]);
    assert_eq!(task.progress_event_seq, 8);
}

#[test]
fn finished_counts_the_final_state_once() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let applied = apply_update(
        &mut job,
        &mut task,
        finished(TaskState::Failed, 3),
        LIMIT,
        &mut batch,
    );
    assert!(applied.finished);
    assert_eq!(state(&task), TaskState::Failed);
    assert_eq!(task.info.as_ref().unwrap().exit_code, 3);
    assert_eq!((job.final_tasks, job.failed_tasks), (1, 1));
    assert_eq!(
        batch.active_remove,
        vec![("n1".to_owned(), "j1-0000".to_owned())]
    );
    // The same final state again (a re-sent update) is ignored.
    let again = apply_update(
        &mut job,
        &mut task,
        finished(TaskState::Succeeded, 0),
        LIMIT,
        &mut batch,
    );
    assert!(!again.finished);
    assert_eq!(state(&task), TaskState::Failed);
    assert_eq!((job.final_tasks, job.succeeded_tasks), (1, 0));
}

#[test]
fn a_final_update_naming_a_state_that_is_not_final_is_ignored() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let applied = apply_update(
        &mut job,
        &mut task,
        finished(TaskState::Pending, 0),
        LIMIT,
        &mut batch,
    );
    assert!(!applied.finished);
    assert_eq!(state(&task), TaskState::Running);
    assert!(batch.events.is_empty());
}

#[test]
fn output_the_agent_dropped_is_added_to_the_counts_at_the_end() {
    let (mut job, mut task) = job_and_task(TaskState::Running);
    let mut batch = JobBatch::default();
    let body = Some(task_update::Body::Finished(TaskFinished {
        state: TaskState::Succeeded.to_wire() as i32,
        exit_code: 0,
        output_dropped_bytes: 500,
        ..Default::default()
    }));
    apply_update(&mut job, &mut task, body, LIMIT, &mut batch);
    let info = task.info.as_ref().unwrap();
    assert_eq!((info.output_bytes, info.output_dropped_bytes), (500, 500));
    assert_eq!(job.succeeded_tasks, 1);
}
