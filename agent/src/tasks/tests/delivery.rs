//! Effectively-once: duplicate assigns, restarts, acknowledgements, invalid ids.

use super::*;

#[tokio::test]
async fn the_same_assign_runs_once() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let script = format!("echo x >> '{}'; sleep 0.2", marker.display());
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign("once", &["sh", "-c", &script]));
    tasks.on_assign(assign("once", &["sh", "-c", &script]));
    let (seq, _) = seen.finished("once").await;
    tasks.on_assign(assign("once", &["sh", "-c", &script]));
    seen.until("once", "the re-sent result", |u| {
        u.iter().filter(|u| is_final(u)).count() == 2
    })
    .await;
    let finals: Vec<u64> = seen
        .of("once")
        .iter()
        .filter(|u| is_final(u))
        .map(|u| u.seq)
        .collect();
    assert_eq!(finals, [seq, seq]);
    // A restarted agent does not run it again either.
    let again = open(tmp.path(), TasksOptions::default()).await;
    let mut seen2 = Seen::new(&again);
    again.on_assign(assign("once", &["sh", "-c", &script]));
    assert_eq!(seen2.finished("once").await.0, seq);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
}

#[tokio::test]
async fn started_but_not_running_after_restart_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let before = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&before);
    before.on_assign(assign("long", &["sh", "-c", "echo up; sleep 100"]));
    seen.until("long", "the task to start", has_output).await;

    // A new runner over the same journal, as after an agent restart.
    let after = open(tmp.path(), TasksOptions::default()).await;
    let mut seen_after = Seen::new(&after);
    after.on_assign(assign("long", &["sh", "-c", "echo up; sleep 100"]));
    let (seq, f) = seen_after.finished("long").await;
    assert_eq!(seq, FINAL_SEQ_UNKNOWN);
    assert_eq!((state(&f), f.exit_code), (TaskState::Lost, -1));
    assert_eq!(f.error, "the agent restarted while the task was running");
    assert_eq!(seen_after.of("long").len(), 1, "lost task was run again");

    // And a third process re-sends the journaled loss.
    let third = open(tmp.path(), TasksOptions::default()).await;
    let mut seen_third = Seen::new(&third);
    third.on_assign(assign("long", &["true"]));
    let (seq, f) = seen_third.finished("long").await;
    assert_eq!((seq, state(&f)), (FINAL_SEQ_UNKNOWN, TaskState::Lost));
    before.on_cancel(CancelTask {
        task_id: "long".into(),
    });
    seen.finished("long").await;
}

#[tokio::test]
async fn ack_drops_updates_and_is_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    tasks.on_assign(assign("a1", &["echo", "hi"]));
    let (seq, _) = seen.finished("a1").await;
    assert_eq!(seq, 3); // started, "hi\n", finished
                        // A reconnect sends all of it again, in order.
    assert!(tasks.take_unsent(10).is_empty());
    tasks.resend_all();
    let again: Vec<u64> = tasks.take_unsent(10).iter().map(|u| u.seq).collect();
    assert_eq!(again, [1, 2, 3]);
    assert_eq!(
        tasks.unacked().iter().map(|u| u.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(tasks.unacked_task_ids(), ["a1"]);
    tasks.on_ack(Ack {
        task_id: "a1".into(),
        through_seq: 2,
    });
    assert_eq!(
        tasks.unacked().iter().map(|u| u.seq).collect::<Vec<_>>(),
        [3]
    );
    tasks.on_ack(Ack {
        task_id: "a1".into(),
        through_seq: 3,
    });
    assert!(tasks.unacked().is_empty());
    assert!(tasks.unacked_task_ids().is_empty());
    let record = tmp.path().join("tasks").join("journal");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&record).unwrap();
        if text.contains("\"acked\":true") {
            assert!(text.contains("\"state\":\"succeeded\""), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "ack not journaled: {text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn invalid_task_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let tasks = open(tmp.path(), TasksOptions::default()).await;
    let mut seen = Seen::new(&tasks);
    let bad = "../escape";
    tasks.on_assign(assign(bad, &["touch", marker.to_str().unwrap()]));
    let (seq, f) = seen.finished(bad).await;
    assert_eq!(
        (seq, state(&f), f.error.as_str()),
        (1, TaskState::Failed, "invalid task id")
    );
    assert!(!marker.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path().join("tasks")).unwrap().count(),
        0
    );
}
