//! Unit tests of the backup index: record updates from synthetic task records (through the
//! store, as the engine does), health at injected times, and listing by selector.

use lab_proto::store::v1::{BackupRecord, JobRecord, NodeRecord, TaskRecord};
use lab_proto::v1::{
    backup_result, backup_task, task_result, task_spec, BackupHealth, BackupResult, BackupSummary,
    BackupTask, DrillSummary, ExecTask, JobSpec, ResticBackup, ResticCheck, RestoreDrill, TaskInfo,
    TaskResult, TaskSpec, TaskState,
};

use super::*;
use crate::store::{JobBatch, Store};

const HOUR: u64 = 3_600_000;

fn job(job_id: &str, backup: BackupTask) -> JobRecord {
    JobRecord {
        job_id: job_id.into(),
        spec: Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Backup(backup)),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn restic(name: &str, max_age_ms: u64) -> BackupTask {
    BackupTask {
        name: name.into(),
        max_age_ms,
        retention: None,
        action: Some(backup_task::Action::Restic(ResticBackup::default())),
    }
}

fn drill(name: &str) -> BackupTask {
    BackupTask {
        name: name.into(),
        max_age_ms: 0,
        retention: None,
        action: Some(backup_task::Action::Drill(RestoreDrill::default())),
    }
}

fn task(node: &str, state: TaskState, at: i64, result: Option<backup_result::Kind>) -> TaskRecord {
    TaskRecord {
        version: 0,
        job_id: String::new(),
        info: Some(TaskInfo {
            task_id: format!("{node}-t"),
            node: node.into(),
            state: state as i32,
            finished_unix_ms: at,
            error: if state == TaskState::Succeeded {
                String::new()
            } else {
                "restic exited with 1".into()
            },
            result: result.map(|kind| TaskResult {
                kind: Some(task_result::Kind::Backup(BackupResult {
                    name: String::new(),
                    kind: Some(kind),
                    retention: None,
                })),
            }),
            ..Default::default()
        }),
        last_seq: 1,
        progress_event_seq: 0,
    }
}

fn summary(snapshot: &str, size: u64) -> backup_result::Kind {
    backup_result::Kind::Backup(BackupSummary {
        snapshot_id: snapshot.into(),
        total_bytes_processed: size,
        data_added_bytes: size / 10,
        ..Default::default()
    })
}

fn drill_result(problems: &[&str]) -> backup_result::Kind {
    backup_result::Kind::Drill(DrillSummary {
        snapshot_id: "abcd1234".into(),
        files_in_snapshot: 10,
        files_verified: 10,
        bytes_verified: 100,
        problems: problems.iter().map(|p| p.to_string()).collect(),
        files: vec![lab_proto::v1::DrillFile {
            path: "/a".into(),
            size: 10,
            sha256: "00".repeat(32),
        }],
    })
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// Applies a final task as the engine does: on_final into a batch, then commit.
async fn finish(store: &Store, job: &JobRecord, task: &TaskRecord) {
    let mut batch = JobBatch::default();
    on_final(store, job, task, &mut batch).unwrap();
    store.commit_jobs(batch).await.unwrap();
}

#[tokio::test]
async fn successes_attempts_and_drills_update_their_fields() {
    let (_d, store) = open();
    let backup = job("j1", restic("home", 26 * HOUR));
    finish(
        &store,
        &backup,
        &task("n1", TaskState::Succeeded, 1000, Some(summary("s1", 500))),
    )
    .await;
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert_eq!(
        (
            rec.last_success_unix_ms,
            rec.last_attempt_unix_ms,
            rec.max_age_ms
        ),
        (1000, 1000, 26 * HOUR)
    );
    assert_eq!(rec.last_success_job_id, "j1");
    assert_eq!(rec.last_success.as_ref().unwrap().snapshot_id, "s1");
    assert_eq!(rec.last_attempt_state, TaskState::Succeeded as i32);

    // A failed attempt keeps the last success and records the failure.
    let failed = job("j2", restic("home", 26 * HOUR));
    finish(&store, &failed, &task("n1", TaskState::Failed, 2000, None)).await;
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert_eq!(
        (rec.last_success_unix_ms, rec.last_attempt_unix_ms),
        (1000, 2000)
    );
    assert_eq!(rec.last_attempt_state, TaskState::Failed as i32);
    assert_eq!(rec.last_attempt_error, "restic exited with 1");
    assert_eq!(rec.last_attempt_job_id, "j2");
    assert_eq!(rec.last_success.as_ref().unwrap().snapshot_id, "s1");

    // A drill records itself and leaves the backup fields (and the max age) alone.
    let d = job("j3", drill("home"));
    finish(
        &store,
        &d,
        &task("n1", TaskState::Succeeded, 3000, Some(drill_result(&[]))),
    )
    .await;
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert_eq!((rec.last_drill_unix_ms, rec.last_drill_ok), (3000, true));
    assert_eq!(rec.last_drill.as_ref().unwrap().files_verified, 10);
    assert!(
        rec.last_drill.as_ref().unwrap().files.is_empty(),
        "the file list is not indexed"
    );
    assert_eq!(
        (rec.last_attempt_unix_ms, rec.max_age_ms),
        (2000, 26 * HOUR)
    );

    // A drill that succeeded but found problems is not ok; a failed drill neither.
    finish(
        &store,
        &d,
        &task(
            "n1",
            TaskState::Succeeded,
            4000,
            Some(drill_result(&["a: size differs"])),
        ),
    )
    .await;
    assert!(!store.backup("n1", "home").unwrap().unwrap().last_drill_ok);
    finish(
        &store,
        &d,
        &task("n1", TaskState::Succeeded, 4500, Some(drill_result(&[]))),
    )
    .await;
    assert!(store.backup("n1", "home").unwrap().unwrap().last_drill_ok);
    finish(&store, &d, &task("n1", TaskState::Failed, 5000, None)).await;
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert!(!rec.last_drill_ok);
    assert_eq!(rec.last_drill, None);

    // Another node has its own record.
    assert!(store.backup("n2", "home").unwrap().is_none());
    assert_eq!(store.backups().unwrap().len(), 1);
}

#[tokio::test]
async fn unnamed_unindexed_and_other_tasks_leave_the_index_alone() {
    let (_d, store) = open();
    let ok = |s| task("n1", TaskState::Succeeded, 1000, Some(summary(s, 1)));
    finish(&store, &job("j1", restic("", HOUR)), &ok("s1")).await;
    // Unnamed in a job whose name is not a backup name either.
    let mut odd = job("j1", restic("", HOUR));
    if let Some(spec) = odd.spec.as_mut() {
        spec.name = "a b/c".into();
    }
    finish(&store, &odd, &ok("s1")).await;
    let check = BackupTask {
        name: "home".into(),
        action: Some(backup_task::Action::Check(ResticCheck::default())),
        ..Default::default()
    };
    finish(&store, &job("j2", check), &ok("s2")).await;
    let exec = JobRecord {
        job_id: "j3".into(),
        spec: Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask::default())),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    finish(&store, &exec, &ok("s3")).await;
    assert!(store.backups().unwrap().is_empty());
    // A succeeded backup without a summary is an attempt, not a success.
    finish(
        &store,
        &job("j4", restic("home", HOUR)),
        &task("n1", TaskState::Succeeded, 1000, None),
    )
    .await;
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert_eq!(
        (rec.last_attempt_unix_ms, rec.last_success_unix_ms),
        (1000, 0)
    );
}

#[tokio::test]
async fn two_changes_in_one_batch_build_on_each_other() {
    let (_d, store) = open();
    let mut batch = JobBatch::default();
    let b = job("j1", restic("home", HOUR));
    on_final(
        &store,
        &b,
        &task("n1", TaskState::Succeeded, 1000, Some(summary("s1", 1))),
        &mut batch,
    )
    .unwrap();
    on_final(
        &store,
        &job("j2", drill("home")),
        &task("n1", TaskState::Succeeded, 2000, Some(drill_result(&[]))),
        &mut batch,
    )
    .unwrap();
    assert_eq!(batch.backups.len(), 1);
    store.commit_jobs(batch).await.unwrap();
    let rec = store.backup("n1", "home").unwrap().unwrap();
    assert_eq!(
        (rec.last_success_unix_ms, rec.last_drill_unix_ms),
        (1000, 2000)
    );
}

fn rec(max_age_ms: u64, last_success: i64) -> BackupRecord {
    BackupRecord {
        node: "n1".into(),
        name: "home".into(),
        max_age_ms,
        last_success_unix_ms: last_success,
        last_attempt_unix_ms: last_success,
        last_attempt_state: TaskState::Succeeded as i32,
        ..Default::default()
    }
}

#[test]
fn health_rules() {
    let h = HOUR as i64;
    let t0 = 1_700_000_000_000;
    assert_eq!(health(&rec(0, t0), t0), BackupHealth::Unspecified);
    assert_eq!(health(&rec(0, 0), t0), BackupHealth::Unspecified);
    assert_eq!(
        health(&rec(10 * HOUR, 0), t0),
        BackupHealth::Red,
        "never succeeded"
    );
    let r = rec(10 * HOUR, t0);
    assert_eq!(health(&r, t0), BackupHealth::Green);
    assert_eq!(health(&r, t0 + 8 * h), BackupHealth::Green, "exactly 80 %");
    assert_eq!(health(&r, t0 + 8 * h + 1), BackupHealth::Amber, "past 80 %");
    assert_eq!(
        health(&r, t0 + 10 * h),
        BackupHealth::Amber,
        "exactly the max age"
    );
    assert_eq!(
        health(&r, t0 + 10 * h + 1),
        BackupHealth::Red,
        "past the max age"
    );
    assert_eq!(health(&r, t0 - h), BackupHealth::Green, "clock behind");
    let failed = BackupRecord {
        last_attempt_unix_ms: t0 + h,
        last_attempt_state: TaskState::Failed as i32,
        ..r.clone()
    };
    assert_eq!(health(&failed, t0 + h), BackupHealth::Amber);
    let drill_failed = BackupRecord {
        last_drill_unix_ms: t0,
        last_drill_ok: false,
        ..r.clone()
    };
    assert_eq!(health(&drill_failed, t0 + h), BackupHealth::Amber);
    let drill_ok = BackupRecord {
        last_drill_ok: true,
        ..drill_failed
    };
    assert_eq!(health(&drill_ok, t0 + h), BackupHealth::Green);
    // Red beats amber.
    assert_eq!(health(&failed, t0 + 11 * h), BackupHealth::Red);
}

#[tokio::test]
async fn list_filters_by_selector_and_computes_health() {
    let (_d, store) = open();
    for node in ["n1", "n2"] {
        store
            .create_node(NodeRecord {
                name: node.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let now = crate::clock::now_ms();
    for (node, at) in [("n1", now), ("n2", now - 2 * HOUR as i64)] {
        finish(
            &store,
            &job("j", restic("home", HOUR)),
            &task(node, TaskState::Succeeded, at, Some(summary("s", 4096))),
        )
        .await;
    }
    let all = list(&store, &Selector::everything(), now, &|_: &str| false).unwrap();
    let view: Vec<(&str, BackupHealth)> =
        all.iter().map(|s| (s.node.as_str(), s.health())).collect();
    assert_eq!(
        view,
        [("n1", BackupHealth::Green), ("n2", BackupHealth::Red)]
    );
    assert_eq!((all[0].size_bytes, all[0].added_bytes), (4096, 409));
    assert_eq!(all[0].snapshot_id, "s");
    let one = list(&store, &"node=n2".parse().unwrap(), now, &|_: &str| false).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].node, "n2");
    assert!(
        list(&store, &"node=n3".parse().unwrap(), now, &|_: &str| false)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unnamed_backup_is_indexed_under_the_job_name() {
    let (_d, store) = open();
    let mut fired = job("j1", restic("", HOUR));
    if let Some(spec) = fired.spec.as_mut() {
        spec.name = "nightly".into();
    }
    finish(
        &store,
        &fired,
        &task("n1", TaskState::Succeeded, 1000, Some(summary("s1", 1))),
    )
    .await;
    let rec = store.backup("n1", "nightly").unwrap().unwrap();
    assert_eq!(rec.last_success.unwrap().snapshot_id, "s1");
    // An explicit backup name wins over the job's.
    let mut named = job("j2", restic("home", HOUR));
    if let Some(spec) = named.spec.as_mut() {
        spec.name = "nightly".into();
    }
    finish(
        &store,
        &named,
        &task("n1", TaskState::Succeeded, 2000, Some(summary("s2", 1))),
    )
    .await;
    assert!(store.backup("n1", "home").unwrap().is_some());
    assert_eq!(store.backups().unwrap().len(), 2);
}
