//! Firing against a real store and job engine, with an injected "now": a firing submits one
//! job under its due time's id and advances the record; repeating a firing whose record was
//! not written (a crash between submit and record) submits nothing new; missed firings skip
//! or run once; paused schedules and selectors without nodes.

use lab_proto::v1::{
    task_spec, CreateScheduleRequest, ExecTask, JobSpec, MissedPolicy, ScheduleSpec, TaskSpec,
};

use super::fire::step;
use super::plan::job_id;
use crate::clock::now_ms;
use crate::state::Coordinator;

async fn coordinator(dir: &std::path::Path) -> Coordinator {
    crate::testing::coordinator(dir, &["n1"]).await
}

async fn create(coord: &Coordinator, name: &str, selector: &str, missed: MissedPolicy) {
    let spec = ScheduleSpec {
        name: name.into(),
        cron: "0 * * * *".into(),
        missed: missed as i32,
        job: Some(JobSpec {
            selector: selector.into(),
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: vec!["true".into()],
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = CreateScheduleRequest {
        spec: Some(spec),
        replace: false,
    };
    super::api::create(coord, "tester", req).await.unwrap();
}

/// Sets the stored next due time (jitter 0).
async fn set_due(coord: &Coordinator, name: &str, due: i64) {
    let mut rec = coord.store.schedule(name).unwrap().unwrap();
    rec.next_due_unix_ms = due;
    rec.next_jitter_ms = 0;
    coord.store.put_schedule(rec).await.unwrap();
}

fn jobs_of(coord: &Coordinator, name: &str) -> Vec<String> {
    let by = format!("schedule:{name}");
    let mut ids: Vec<String> = coord
        .store
        .jobs_newest_first(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|j| j.submitted_by == by)
        .map(|j| j.job_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_firing_is_one_job_even_when_repeated_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let coord = coordinator(dir.path()).await;
    create(&coord, "hourly", "", MissedPolicy::Skip).await;
    let now = now_ms();
    let due = now - 10_000; // 10 s late: within the grace
    set_due(&coord, "hourly", due).await;
    let before_crash = coord.store.schedule("hourly").unwrap().unwrap();

    assert!(step(&coord, "hourly", now).await.unwrap());
    assert_eq!(jobs_of(&coord, "hourly"), [job_id("hourly", due)]);
    let rec = coord.store.schedule("hourly").unwrap().unwrap();
    assert_eq!(rec.last_job_id, job_id("hourly", due));
    assert_eq!(rec.last_fired_unix_ms, now);
    assert!(rec.next_due_unix_ms > now, "{rec:?}");
    let job = coord.store.job(&rec.last_job_id).unwrap().unwrap();
    assert_eq!(job.spec.as_ref().unwrap().name, "hourly");
    assert_eq!(coord.store.tasks_of(&job).unwrap().len(), 1);

    // The record write was lost: the same firing again finds its job.
    coord.store.put_schedule(before_crash).await.unwrap();
    assert!(step(&coord, "hourly", now + 1).await.unwrap());
    assert_eq!(jobs_of(&coord, "hourly"), [job_id("hourly", due)]);
    assert_eq!(
        coord
            .store
            .schedule("hourly")
            .unwrap()
            .unwrap()
            .next_due_unix_ms,
        rec.next_due_unix_ms
    );
    // Nothing more is due.
    assert!(!step(&coord, "hourly", now + 2).await.unwrap());
}

#[tokio::test]
async fn missed_firings_skip_or_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let coord = coordinator(dir.path()).await;
    create(&coord, "skipper", "", MissedPolicy::Skip).await;
    create(&coord, "runner", "", MissedPolicy::RunOnce).await;
    let now = now_ms();
    let long_ago = now - 5 * 3_600_000;
    let long_ago = long_ago - long_ago.rem_euclid(3_600_000);
    set_due(&coord, "skipper", long_ago).await;
    set_due(&coord, "runner", long_ago).await;

    assert!(step(&coord, "skipper", now).await.unwrap());
    assert!(jobs_of(&coord, "skipper").is_empty());
    assert!(
        coord
            .store
            .schedule("skipper")
            .unwrap()
            .unwrap()
            .next_due_unix_ms
            > now
    );

    assert!(step(&coord, "runner", now).await.unwrap());
    assert_eq!(jobs_of(&coord, "runner"), [job_id("runner", long_ago)]);
    assert!(
        coord
            .store
            .schedule("runner")
            .unwrap()
            .unwrap()
            .next_due_unix_ms
            > now
    );
    assert!(!step(&coord, "runner", now).await.unwrap());
    assert_eq!(jobs_of(&coord, "runner").len(), 1);
}

#[tokio::test]
async fn paused_schedules_and_selectors_without_nodes_submit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coord = coordinator(dir.path()).await;
    create(&coord, "paused", "", MissedPolicy::RunOnce).await;
    create(&coord, "nowhere", "role=none", MissedPolicy::Skip).await;
    let now = now_ms();
    super::api::set_paused(&coord, "paused", true)
        .await
        .unwrap();
    set_due(&coord, "paused", now - 1_000).await;
    assert!(!step(&coord, "paused", now).await.unwrap());
    assert!(jobs_of(&coord, "paused").is_empty());
    let view = super::api::get(&coord, "paused").unwrap();
    assert_eq!(view.next_unix_ms, 0);

    // Resuming continues after now, without the paused due time.
    let resumed = super::api::set_paused(&coord, "paused", false)
        .await
        .unwrap();
    assert!(resumed.next_unix_ms > now);
    assert!(!step(&coord, "paused", now).await.unwrap());

    set_due(&coord, "nowhere", now - 1_000).await;
    assert!(step(&coord, "nowhere", now).await.unwrap());
    let view = super::api::get(&coord, "nowhere").unwrap();
    assert_eq!(
        view.last_error,
        "selector 'role=none' matched no node; no job was submitted"
    );
    assert_eq!(view.last_job_id, "");
    assert_eq!(view.last_fired_unix_ms, now);
    assert!(jobs_of(&coord, "nowhere").is_empty());
}
