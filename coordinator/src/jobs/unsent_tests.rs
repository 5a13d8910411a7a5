//! A task whose Assign cannot be sent (over the message limit; a job stored before submit
//! refused such specs) fails with the reason, and nothing reaches the agent's queue, so its
//! session lives on: when the rollout reaches the task, and when the node reconnects with the
//! task already assigned.

use lab_proto::limits::MAX_MESSAGE_BYTES;
use lab_proto::store::v1::{JobRecord, TaskRecord};
use lab_proto::v1::{task_spec, ExecTask, JobSpec, TaskInfo, TaskSpec};

use super::state::TaskState;
use crate::clock::now_ms;
use crate::sessions::Outbound;
use crate::state::Coordinator;
use crate::store::JobBatch;

/// Stores a job of one task on n1 in `state`, with a spec too large to send, as a job stored
/// before submit checked the size.
async fn store_oversized_job(coord: &Coordinator, state: TaskState) -> String {
    let mut exec = ExecTask {
        argv: vec!["true".into()],
        ..Default::default()
    };
    exec.env.insert("BIG".into(), "x".repeat(MAX_MESSAGE_BYTES));
    let job = JobRecord {
        job_id: "j1".into(),
        spec: Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(exec)),
            }),
            ..Default::default()
        }),
        task_ids: vec!["j1-0000".into()],
        task_count: 1,
        pending_tasks: u32::from(state == TaskState::Pending),
        next_event_seq: 1,
        deadline_unix_ms: now_ms() + 3_600_000,
        ..Default::default()
    };
    let task = TaskRecord {
        job_id: "j1".into(),
        info: Some(TaskInfo {
            task_id: "j1-0000".into(),
            node: "n1".into(),
            state: state.to_wire() as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let batch = JobBatch {
        jobs: vec![job],
        tasks: vec![task],
        active_add: vec![("n1".into(), "j1-0000".into())],
        ..Default::default()
    };
    coord.store.commit_jobs(batch).await.unwrap();
    "j1-0000".into()
}

fn assert_failed_unsent(coord: &Coordinator, task_id: &str) {
    let task = coord.store.task(task_id).unwrap().unwrap();
    let info = task.info.unwrap();
    assert_eq!(info.state, TaskState::Failed.to_wire() as i32, "{info:?}");
    assert!(
        info.error.contains("over the message limit"),
        "{}",
        info.error
    );
    let job = coord.store.job("j1").unwrap().unwrap();
    assert!(job.done, "the job's only task is final");
    assert!(coord
        .store
        .unfinished_tasks_of_node("n1")
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_unsendable_task_fails_when_the_rollout_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let coord = crate::testing::coordinator(dir.path(), &["n1"]).await;
    let task_id = store_oversized_job(&coord, TaskState::Pending).await;
    let (tx, _stream) = Outbound::channel(8);
    let session = coord.sessions.open("n1", now_ms(), tx.clone());
    super::schedule(&coord.job_cx(), "j1").await.unwrap();
    assert_failed_unsent(&coord, &task_id);
    // Nothing was queued for the agent: the queue still has all its room.
    for _ in 0..8 {
        tx.try_send(Ok(Default::default())).unwrap();
    }
    assert!(!session.cancel.is_cancelled(), "the session lives on");
}

#[tokio::test]
async fn an_unsendable_assigned_task_fails_when_its_node_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let coord = crate::testing::coordinator(dir.path(), &["n1"]).await;
    let task_id = store_oversized_job(&coord, TaskState::Assigned).await;
    let (tx, _stream) = Outbound::channel(8);
    let session = coord.sessions.open("n1", now_ms(), tx.clone());
    super::on_session_start(&coord.job_cx(), "n1").await;
    assert_failed_unsent(&coord, &task_id);
    for _ in 0..8 {
        tx.try_send(Ok(Default::default())).unwrap();
    }
    assert!(!session.cancel.is_cancelled(), "the session lives on");
}
