//! Container tasks against the real Docker engine of this machine, with an image built from the
//! static busybox (see `testutil.rs`). Each test uses its own container names and removes them
//! at the end, pass or fail.

use std::collections::HashMap;
use std::time::Duration;

use lab_proto::v1::container_task::Action as WireAction;
use lab_proto::v1::{
    ContainerEnsure, ContainerLogs, ContainerRef, ContainerTask, ImageRef, ResourceStatus,
};

use super::actions::inspect;
use super::testutil::{docker, image, run, socket, unique_name, wait_until, Cleanup, Run};

fn task(action: WireAction) -> ContainerTask {
    ContainerTask {
        socket: socket().to_owned(),
        action: Some(action),
    }
}

fn ensure(name: &str, command: &[&str]) -> ContainerEnsure {
    ContainerEnsure {
        name: name.to_owned(),
        image: image(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn by_name(name: &str) -> ContainerRef {
    ContainerRef {
        name: name.to_owned(),
    }
}

#[track_caller]
fn assert_status(run: &Run, status: ResourceStatus, message: &str) {
    assert_eq!(
        (run.result.status(), run.result.message.as_str()),
        (status, message),
        "{:?}",
        run.result
    );
}

#[track_caller]
fn assert_failed_with(run: &Run, part: &str) {
    assert_eq!(
        run.result.status(),
        ResourceStatus::Failed,
        "{:?}",
        run.result
    );
    assert!(
        run.result.message.contains(part),
        "message {:?} lacks {part:?}",
        run.result.message
    );
}

async fn is_running(name: &str) -> bool {
    let found = inspect(&docker().await, name).await.unwrap();
    found
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

#[tokio::test]
async fn containers_ensure_stop_restart_remove_lifecycle() {
    let name = unique_name("lifecycle");
    let _cleanup = Cleanup(vec![name.clone()]);
    // sh as PID 1 ignores SIGTERM unless trapped; trap it so stops take a second, not ten
    let spec = ensure(
        &name,
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );

    // auto-detected socket (this machine has /run/docker.sock)
    let created = run(ContainerTask {
        socket: String::new(),
        action: Some(WireAction::Ensure(spec.clone())),
    })
    .await;
    assert_status(&created, ResourceStatus::Changed, "created");
    assert_eq!(created.result.container, name);
    assert!(!created.result.container_id.is_empty());
    assert!(
        created.stdout.contains("creating container"),
        "{}",
        created.stdout
    );
    assert!(is_running(&name).await);

    let again = run(task(WireAction::Ensure(spec.clone()))).await;
    assert_status(&again, ResourceStatus::Unchanged, "running");
    assert_eq!(again.result.container_id, created.result.container_id);

    let mut changed = spec.clone();
    changed.env = HashMap::from([("COLOR".to_owned(), "blue".to_owned())]);
    let recreated = run(task(WireAction::Ensure(changed.clone()))).await;
    assert_status(
        &recreated,
        ResourceStatus::Changed,
        "recreated: env changed",
    );
    assert_ne!(recreated.result.container_id, created.result.container_id);
    assert!(is_running(&name).await);

    let stopped = run(task(WireAction::Stop(by_name(&name)))).await;
    assert_status(&stopped, ResourceStatus::Changed, "stopped");
    assert!(!is_running(&name).await);
    let stopped_again = run(task(WireAction::Stop(by_name(&name)))).await;
    assert_status(&stopped_again, ResourceStatus::Unchanged, "already stopped");

    let started = run(task(WireAction::Ensure(changed))).await;
    assert_status(&started, ResourceStatus::Changed, "started");
    assert_eq!(started.result.container_id, recreated.result.container_id);

    let restarted = run(task(WireAction::Restart(by_name(&name)))).await;
    assert_status(&restarted, ResourceStatus::Changed, "restarted");
    assert!(is_running(&name).await);

    let removed = run(task(WireAction::Remove(by_name(&name)))).await;
    assert_status(&removed, ResourceStatus::Changed, "removed");
    assert!(inspect(&docker().await, &name).await.unwrap().is_none());
    let absent = run(task(WireAction::Remove(by_name(&name)))).await;
    assert_status(&absent, ResourceStatus::Unchanged, "already absent");

    let stop_missing = run(task(WireAction::Stop(by_name(&name)))).await;
    assert_status(
        &stop_missing,
        ResourceStatus::Failed,
        &format!("no container named '{name}'"),
    );
    let restart_missing = run(task(WireAction::Restart(by_name(&name)))).await;
    assert_failed_with(&restart_missing, &format!("no container named '{name}'"));
}

#[tokio::test]
async fn containers_missing_image_cannot_be_pulled() {
    let name = unique_name("noimage");
    let _cleanup = Cleanup(vec![name.clone()]);
    let absent = format!("labfleet-test/absent:{}", std::process::id());
    let mut spec = ensure(&name, &["true"]);
    spec.image = absent.clone();
    let out = run(task(WireAction::Ensure(spec))).await;
    assert_failed_with(
        &out,
        &format!("image '{absent}' not found locally and could not be pulled: "),
    );
    assert_eq!(out.result.container, name);

    let pull = run(task(WireAction::Pull(ImageRef {
        image: absent.clone(),
    })))
    .await;
    assert_failed_with(&pull, &format!("cannot pull image '{absent}': "));
}

#[tokio::test]
async fn containers_absent_or_dead_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.sock");
    let mut t = task(WireAction::Remove(by_name("x")));
    t.socket = absent.display().to_string();
    let out = run(t.clone()).await;
    assert_failed_with(
        &out,
        &format!(
            "container engine socket {} does not exist",
            absent.display()
        ),
    );

    // a socket file nobody listens on any more: connection refused
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    t.socket = format!("unix://{}", dead.display());
    let out = run(t).await;
    assert_failed_with(
        &out,
        &format!(
            "cannot reach the container engine at {}: Connection refused",
            dead.display()
        ),
    );
}

#[tokio::test]
async fn containers_port_already_taken() {
    let name = unique_name("port");
    let _cleanup = Cleanup(vec![name.clone()]);
    // docker binds 0.0.0.0, so hold the port there
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut spec = ensure(&name, &["sleep", "3600"]);
    spec.ports = vec![format!("{port}:80")];
    let out = run(task(WireAction::Ensure(spec))).await;
    assert_failed_with(
        &out,
        &format!("container '{name}' was created but cannot start"),
    );
    assert_failed_with(&out, &port.to_string());
    drop(listener);
}

#[tokio::test]
async fn containers_logs_stream_stdout_and_stderr() {
    let name = unique_name("logs");
    let _cleanup = Cleanup(vec![name.clone()]);
    let spec = ensure(
        &name,
        &["sh", "-c", "echo one; echo two; echo three; echo oops >&2"],
    );
    let out = run(task(WireAction::Ensure(spec))).await;
    assert_status(&out, ResourceStatus::Changed, "created");
    let docker = docker().await;
    wait_until(
        || {
            let docker = docker.clone();
            let name = name.clone();
            async move {
                let c = inspect(&docker, &name).await.unwrap();
                c.and_then(|c| c.state).and_then(|s| s.running) == Some(false)
            }
        },
        Duration::from_secs(20),
        "the echo container to exit",
    )
    .await;

    let all = run(task(WireAction::Logs(ContainerLogs {
        name: name.clone(),
        tail: 0,
    })))
    .await;
    assert_eq!(
        all.result.status(),
        ResourceStatus::Unchanged,
        "{:?}",
        all.result
    );
    assert_eq!(all.stdout, "one\ntwo\nthree\n");
    assert_eq!(all.stderr, "oops\n");

    let last = run(task(WireAction::Logs(ContainerLogs {
        name: name.clone(),
        tail: 1,
    })))
    .await;
    assert_eq!(format!("{}{}", last.stdout, last.stderr).lines().count(), 1);

    let missing = run(task(WireAction::Logs(ContainerLogs {
        name: unique_name("nologs"),
        tail: 0,
    })))
    .await;
    assert_failed_with(&missing, "no container named 'labfleet-test-");
}

#[tokio::test]
async fn containers_invalid_tasks_fail_before_the_engine() {
    let out = run(ContainerTask {
        socket: "/nonexistent.sock".into(),
        action: None,
    })
    .await;
    assert_failed_with(&out, "container task has no action");

    let mut spec = ensure("web", &[]);
    spec.ports = vec!["eighty".into()];
    let out = run(task(WireAction::Ensure(spec))).await;
    assert_failed_with(&out, "container 'web': port 'eighty' is not HOST:CONTAINER");
    assert_eq!(out.result.container, "web");

    let out = run(task(WireAction::Stop(by_name(" ")))).await;
    assert_failed_with(&out, "container name is empty");
}
