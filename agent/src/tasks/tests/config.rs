//! Dispatch of config and container tasks: structured results on the final update (also when
//! re-sent from the journal), failures, cancel and timeout of a config task.

use lab_proto::v1::task_result;
use lab_proto::v1::{
    container_task, resource, CommandResource, ConfigResult, ConfigTask, ContainerTask,
    FileResource, ImageRef, Resource, ResourceStatus,
};

use super::*;

fn config(check: bool, resources: Vec<Resource>) -> Kind {
    Kind::Config(ConfigTask { resources, check })
}

fn file(path: &Path, content: &str) -> Resource {
    Resource {
        kind: Some(resource::Kind::File(FileResource {
            path: path.display().to_string(),
            content: content.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn command(argv: &[&str]) -> Resource {
    Resource {
        kind: Some(resource::Kind::Command(CommandResource {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn config_result(f: &TaskFinished) -> ConfigResult {
    match f.result.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(task_result::Kind::Config(c)) => c.clone(),
        other => panic!("no config result: {other:?}"),
    }
}

fn statuses(c: &ConfigResult) -> Vec<ResourceStatus> {
    c.resources
        .iter()
        .map(|r| ResourceStatus::try_from(r.status).unwrap())
        .collect()
}

#[tokio::test]
async fn a_config_task_reports_its_result() {
    let tmp = tempfile::tempdir().unwrap();
    let motd = tmp.path().join("motd");
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let resources = vec![file(&motd, "hi\n"), command(&["echo", "from echo"])];
    tasks.on_assign(assign_kind("cfg", config(false, resources)));
    let (seq, f) = seen.finished("cfg").await;
    assert_eq!(
        (state(&f), f.exit_code, f.error.as_str()),
        (TaskState::Succeeded, 0, "")
    );
    let result = config_result(&f);
    assert!(!result.check);
    assert_eq!(
        statuses(&result),
        [ResourceStatus::Changed, ResourceStatus::Changed]
    );
    assert_eq!(
        result.resources[0].resource,
        format!("file {}", motd.display())
    );
    assert!(result.resources[0].diff.ends_with("+hi"), "{result:?}");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "hi\n");
    let ups = seen.of("cfg");
    assert!(matches!(ups[0].body, Some(Body::Started(_))));
    assert_eq!(
        ups.iter().map(|u| u.seq).collect::<Vec<_>>(),
        (1..=seq).collect::<Vec<_>>()
    );
    let out = seen.output("cfg", OutputStream::Stdout);
    assert!(
        out.starts_with(&format!("file {}: changed (created: 0644 ", motd.display())),
        "{out}"
    );
    assert!(
        out.ends_with("from echo\ncommand echo from echo: changed (exit code 0)\n"),
        "{out}"
    );

    // Check mode: unchanged now, and the file is left alone.
    tasks.on_assign(assign_kind("chk", config(true, vec![file(&motd, "hi\n")])));
    let (_, f) = seen.finished("chk").await;
    let result = config_result(&f);
    assert!(result.check);
    assert_eq!(statuses(&result), [ResourceStatus::Unchanged]);
}

#[tokio::test]
async fn a_failed_resource_fails_the_task_and_the_result_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let later = tmp.path().join("later");
    let resources = vec![command(&["sh", "-c", "exit 4"]), file(&later, "x")];
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign_kind("bad", config(false, resources.clone())));
    let (seq, f) = seen.finished("bad").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::Failed, 1));
    assert_eq!(
        f.error,
        "resource 'command sh -c exit 4' failed: 'sh -c exit 4' failed (exit code 4)"
    );
    assert_eq!(
        statuses(&config_result(&f)),
        [ResourceStatus::Failed, ResourceStatus::Skipped]
    );
    assert!(!later.exists());

    // An agent restarted over the same journal re-sends the same final update, result included.
    let again = open(tmp.path(), TasksOptions::default()).await;
    let mut seen2 = Seen::new(&again);
    again.on_assign(assign_kind("bad", config(false, resources)));
    let (seq2, f2) = seen2.finished("bad").await;
    assert_eq!((seq2, &f2.result), (seq, &f.result));
}

#[tokio::test]
async fn cancel_and_timeout_stop_a_config_task() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TasksOptions {
        cancel_grace: Duration::from_millis(500),
        ..Default::default()
    };
    let tasks = open(tmp.path(), opts).await;
    let mut seen = Seen::new(&tasks);
    let never = tmp.path().join("never");
    let slow = vec![
        command(&["sh", "-c", "echo $$; sleep 100 & wait"]),
        file(&never, "x"),
    ];
    tasks.on_assign(assign_kind("c", config(false, slow.clone())));
    seen.until("c", "the pid on stdout", has_output).await;
    let pgid: i32 = seen
        .output("c", OutputStream::Stdout)
        .trim()
        .parse()
        .unwrap();
    tasks.on_cancel(CancelTask {
        task_id: "c".into(),
    });
    let (_, f) = seen.finished("c").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::Cancelled, -1));
    assert_eq!(
        statuses(&config_result(&f)),
        [ResourceStatus::Failed, ResourceStatus::Skipped]
    );
    wait_group_gone(pgid).await;
    assert!(!never.exists());

    let mut timed = assign_kind("t", config(false, slow));
    timed.timeout_ms = 300;
    tasks.on_assign(timed);
    let (_, f) = seen.finished("t").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::TimedOut, -1));
    let result = config_result(&f);
    assert!(
        result.resources[0].message.contains("was stopped"),
        "{result:?}"
    );
    assert!(!never.exists());
}

#[tokio::test]
async fn a_container_task_without_an_engine_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let socket = tmp.path().join("no-engine.sock");
    let task = ContainerTask {
        socket: socket.display().to_string(),
        action: Some(container_task::Action::Pull(ImageRef {
            image: "busybox:latest".into(),
        })),
    };
    tasks.on_assign(assign_kind("ctr", Kind::Container(task)));
    let (_, f) = seen.finished("ctr").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::Failed, -1));
    assert!(!f.error.is_empty());
    match f.result.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(task_result::Kind::Container(c)) => {
            assert_eq!(c.status, ResourceStatus::Failed as i32);
            assert_eq!(c.message, f.error);
        }
        other => panic!("no container result: {other:?}"),
    }
}
