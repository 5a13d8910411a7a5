//! Running programs: output, exit codes, timeout, cancel, concurrency, users.

use super::*;

#[tokio::test]
async fn echo_streams_output_in_seq_order_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let mut a = assign(
        "t1",
        &["sh", "-c", "echo hello; echo oops >&2; echo \"$FOO\"; pwd"],
    );
    if let Some(Kind::Exec(e)) = a.spec.as_mut().and_then(|s| s.kind.as_mut()) {
        e.env.insert("FOO".into(), "bar".into());
    }
    tasks.on_assign(a);
    let (seq, f) = seen.finished("t1").await;
    assert_eq!(
        (state(&f), f.exit_code, f.error.as_str()),
        (TaskState::Succeeded, 0, "")
    );
    let ups = seen.of("t1");
    assert!(matches!(ups[0].body, Some(Body::Started(_))));
    let seqs: Vec<u64> = ups.iter().map(|u| u.seq).collect();
    assert_eq!(seqs, (1..=seq).collect::<Vec<_>>());
    assert_eq!(seen.output("t1", OutputStream::Stdout), "hello\nbar\n/\n");
    assert_eq!(seen.output("t1", OutputStream::Stderr), "oops\n");
}

#[tokio::test]
async fn nonzero_exit_fails_and_missing_program_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign("f", &["false"]));
    tasks.on_assign(assign("m", &["no-such-program-lab", "x"]));
    let (_, f) = seen.finished("f").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::Failed, 1));
    let (seq, m) = seen.finished("m").await;
    assert_eq!(seq, 1, "no started update before a spawn failure");
    assert_eq!((state(&m), m.exit_code), (TaskState::Failed, -1));
    assert_eq!(
        m.error,
        "cannot run 'no-such-program-lab': No such file or directory"
    );
}

#[tokio::test]
async fn a_missing_working_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let file = tmp.path().join("plain");
    std::fs::write(&file, "").unwrap();
    for (id, cwd) in [
        ("gone", "/nonexistent-lab"),
        ("file", file.to_str().unwrap()),
    ] {
        let mut a = assign(id, &["true"]);
        if let Some(Kind::Exec(e)) = a.spec.as_mut().and_then(|s| s.kind.as_mut()) {
            e.cwd = cwd.into();
        }
        tasks.on_assign(a);
    }
    let (_, f) = seen.finished("gone").await;
    assert_eq!(
        (state(&f), f.error.as_str()),
        (
            TaskState::Failed,
            "working directory /nonexistent-lab does not exist on this node; create it or \
             change the task's cwd"
        )
    );
    let (_, f) = seen.finished("file").await;
    assert!(
        f.error
            .ends_with("plain is not a directory; change the task's cwd"),
        "{f:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let mut a = assign("slow", &["sh", "-c", "echo $$; sleep 30 & sleep 30"]);
    a.timeout_ms = 300;
    tasks.on_assign(a);
    let (_, f) = seen.finished("slow").await;
    assert_eq!((state(&f), f.exit_code), (TaskState::TimedOut, -1));
    let pgid: i32 = seen
        .output("slow", OutputStream::Stdout)
        .trim()
        .parse()
        .unwrap();
    wait_group_gone(pgid).await;
}

#[tokio::test]
async fn cancel_stops_a_running_task_and_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign("c", &["sh", "-c", "echo $$; sleep 100 & wait"]));
    seen.until("c", "the pid on stdout", has_output).await;
    let pgid: i32 = seen
        .output("c", OutputStream::Stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(group_alive(pgid));
    tasks.on_cancel(CancelTask {
        task_id: "c".into(),
    });
    let (_, f) = seen.finished("c").await;
    assert_eq!(state(&f), TaskState::Cancelled);
    wait_group_gone(pgid).await;
    // Cancelling again, or cancelling an unknown task, changes nothing.
    tasks.on_cancel(CancelTask {
        task_id: "c".into(),
    });
    tasks.on_cancel(CancelTask {
        task_id: "nope".into(),
    });
    assert!(tasks.take_unsent(10).is_empty());
}

#[tokio::test]
async fn queued_task_waits_for_a_slot_and_can_be_cancelled_unrun() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TasksOptions {
        max_tasks: 1,
        ..TasksOptions::default()
    };
    let tasks = open(tmp.path(), opts).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign("first", &["sh", "-c", "echo go; sleep 100"]));
    seen.until("first", "first task's output", has_output).await;
    tasks.on_assign(assign("second", &["true"]));
    tasks.on_cancel(CancelTask {
        task_id: "second".into(),
    });
    let (seq, f) = seen.finished("second").await;
    assert_eq!((seq, state(&f), f.exit_code), (1, TaskState::Cancelled, -1));
    assert!(!seen.of("first").iter().any(is_final));
    tasks.on_cancel(CancelTask {
        task_id: "first".into(),
    });
    assert_eq!(state(&seen.finished("first").await.1), TaskState::Cancelled);
}

#[tokio::test]
async fn output_streams_live() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo line $i; sleep 0.1; done";
    tasks.on_assign(assign("live", &["sh", "-c", script]));
    seen.until("live", "the first line", has_output).await;
    assert!(
        !seen.of("live").iter().any(is_final),
        "the first line arrived only after the command ended"
    );
    let (_, f) = seen.finished("live").await;
    assert_eq!(state(&f), TaskState::Succeeded);
    let chunks = seen
        .of("live")
        .iter()
        .filter(|u| matches!(u.body, Some(Body::Output(_))))
        .count();
    assert!(chunks > 1, "output came in {chunks} chunk(s)");
}

#[tokio::test]
async fn runs_as_another_user_and_refuses_unknown_users() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let with_user = |id: &str, user: &str| {
        let mut a = assign(id, &["sh", "-c", "id -un; echo $HOME"]);
        if let Some(Kind::Exec(e)) = a.spec.as_mut().and_then(|s| s.kind.as_mut()) {
            e.user = user.into();
        }
        a
    };
    tasks.on_assign(with_user("ghost", "no-such-user-lab"));
    let (seq, f) = seen.finished("ghost").await;
    assert_eq!((seq, state(&f)), (1, TaskState::Failed));
    assert!(
        f.error.contains("unknown user 'no-such-user-lab'"),
        "{}",
        f.error
    );

    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: skipping the switch to user nobody");
        return;
    }
    tasks.on_assign(with_user("nobody", "nobody"));
    let (_, f) = seen.finished("nobody").await;
    assert_eq!(state(&f), TaskState::Succeeded, "{}", f.error);
    let home = nix::unistd::User::from_name("nobody").unwrap().unwrap().dir;
    assert_eq!(
        seen.output("nobody", OutputStream::Stdout),
        format!("nobody\n{}\n", home.display())
    );
}
