//! Secret file content (`secret: true`) end to end: it reaches the node's file and nowhere else
//! on the coordinator — not its store files, its log, or any API response — and a task whose
//! content a coordinator restart lost fails with a reason instead of writing an empty file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use lab_proto::v1::{
    resource, task_spec, ConfigTask, FileResource, GetJobRequest, JobSpec, ListJobsRequest,
    ListSchedulesRequest, Resource, SubmitJobRequest, TaskSpec, WatchJobRequest,
};
use lab_tests::{files_containing, stderr, wait_until, Cluster};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn secret_job(node: &str, path: &Path, content: &str) -> JobSpec {
    let file = FileResource {
        path: path.to_str().unwrap().into(),
        content: content.into(),
        mode: "0600".into(),
        secret: true,
        ..Default::default()
    };
    JobSpec {
        selector: format!("node={node}"),
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Config(ConfigTask {
                resources: vec![Resource {
                    kind: Some(resource::Kind::File(file)),
                    ..Default::default()
                }],
                check: false,
            })),
        }),
        ..Default::default()
    }
}

fn task_state(c: &Cluster, job_id: &str) -> (String, String) {
    let out = c.labctl(&["job", "show", job_id, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = &job["tasks"][0];
    (
        task["state"].as_str().unwrap_or_default().to_owned(),
        task["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn secret_content_reaches_the_node_and_nothing_else() {
    let mut c = Cluster::builder().agents(1).start();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("labfleet-secret-{nanos:x}");
    let target = c.tmp.path().join("app.secret");
    let rt = rt();
    let mut client = rt.block_on(c.coord.admin_client());
    let spec = secret_job("n1", &target, &secret);
    let job_id = rt
        .block_on(client.submit_job(SubmitJobRequest { spec: Some(spec) }))
        .unwrap()
        .into_inner()
        .job_id;
    wait_until(
        || task_state(&c, &job_id).0 == "succeeded",
        Duration::from_secs(20),
        &format!("secret job applied\n{}", c.logs()),
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), secret);

    // Every API form of the job, to an admin: no content, still marked secret.
    let get = rt
        .block_on(client.get_job(GetJobRequest {
            job_id: job_id.clone(),
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    let list = rt
        .block_on(client.list_jobs(ListJobsRequest::default()))
        .unwrap()
        .into_inner();
    let mut watch = rt
        .block_on(client.watch_job(WatchJobRequest {
            job_id: job_id.clone(),
            stored_only: true,
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = rt.block_on(watch.message()).unwrap() {
        events.push(e);
    }
    let api = format!("{get:?}\n{list:?}\n{events:?}");
    assert!(!api.contains(&secret), "the API returned the secret: {api}");
    assert!(format!("{get:?}").contains("secret: true"), "{get:?}");
    let shown = c.labctl(&["job", "show", &job_id, "-o", "json"]);
    assert!(!String::from_utf8_lossy(&shown.stdout).contains(&secret));

    // Nothing at rest, before and after a restart that compacts the store, nor in the log.
    let log = c.tmp.path().join("coordinator.log");
    for round in ["running", "restarted"] {
        let leaked = files_containing(&c.coord.dir, secret.as_bytes());
        assert!(leaked.is_empty(), "{round}: secret at rest in {leaked:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains(&secret), "{round}: secret in the log");
        c.coord.stop(false);
        c.coord.start();
    }
}

#[test]
fn a_secret_lost_in_a_restart_fails_its_task_and_writes_nothing() {
    let mut c = Cluster::builder().agents(1).start();
    c.agents[0].stop(false);
    c.wait_online("n1", false, Duration::from_secs(20));
    let target = c.tmp.path().join("never.secret");
    let rt = rt();
    let mut client = rt.block_on(c.coord.admin_client());
    let spec = secret_job("n1", &target, "lost-in-restart");
    let job_id = rt
        .block_on(client.submit_job(SubmitJobRequest { spec: Some(spec) }))
        .unwrap()
        .into_inner()
        .job_id;
    assert_eq!(task_state(&c, &job_id).0, "pending");
    drop(client);
    c.coord.stop(false);
    c.coord.start();
    c.agents[0].start();
    wait_until(
        || task_state(&c, &job_id).0 == "failed",
        Duration::from_secs(20),
        &format!("task failed after the restart\n{}", c.logs()),
    );
    let (_, error) = task_state(&c, &job_id);
    assert!(error.contains("kept in memory only"), "{error}");
    assert!(!target.exists(), "the file was written without its content");

    // A schedule cannot carry secret content: it would sit in the store until it fires.
    let spec = format!(
        "apiVersion: labfleet/v1\nkind: Schedule\nmetadata: {{name: nightly-secret}}\nspec:\n  cron: \"0 3 * * *\"\n  job:\n    selector: node=n1\n    task:\n      config:\n        resources:\n          - file: {{path: {}, content: x, secret: true}}\n",
        target.display()
    );
    let path = c.tmp.path().join("schedule.yaml");
    std::fs::write(&path, spec).unwrap();
    let out = c.labctl(&["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be scheduled"),
        "{}",
        stderr(&out)
    );
    let mut client = rt.block_on(c.coord.admin_client());
    let schedules = rt
        .block_on(client.list_schedules(ListSchedulesRequest::default()))
        .unwrap()
        .into_inner();
    assert!(schedules.schedules.is_empty(), "{schedules:?}");
}
