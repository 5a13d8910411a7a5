//! Tests of the job event follower: line framing per node, results and the final state lines.

use lab_proto::v1::TaskOutput;

use super::*;

fn output(seq: u64, task: &str, node: &str, stream: OutputStream, data: &[u8]) -> JobEvent {
    JobEvent {
        seq,
        unix_ms: 1_700_000_000_123,
        body: Some(job_event::Body::Output(TaskOutput {
            task_id: task.into(),
            node: node.into(),
            stream: stream as i32,
            data: data.to_vec(),
        })),
    }
}

fn task(seq: u64, task: &str, node: &str, state: TaskState, exit: i32, error: &str) -> JobEvent {
    JobEvent {
        seq,
        unix_ms: 1_700_000_000_123,
        body: Some(job_event::Body::Task(TaskInfo {
            task_id: task.into(),
            node: node.into(),
            state: state as i32,
            exit_code: exit,
            error: error.into(),
            started_unix_ms: if state == TaskState::Expired { 0 } else { 1 },
            ..Default::default()
        })),
    }
}

fn done(seq: u64, succeeded: u32, failed: u32, other: u32) -> JobEvent {
    JobEvent {
        seq,
        unix_ms: 1_700_000_000_123,
        body: Some(job_event::Body::Done(JobDone {
            succeeded,
            failed,
            other,
        })),
    }
}

/// Feeds events and returns (stdout, stderr).
fn render(format: RunFormat, events: &[JobEvent]) -> (String, String, Printer) {
    let mut printer = Printer::new(format);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for ev in events {
        printer.event(ev, &mut out, &mut err).unwrap();
    }
    printer.finish(&mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        printer,
    )
}

#[test]
fn text_prefixes_lines_and_flushes_on_final_state() {
    use OutputStream::{Stderr, Stdout};
    let events = [
        task(1, "t1", "n1", TaskState::Running, 0, ""),
        output(2, "t1", "n1", Stdout, b"hel"),
        output(3, "t2", "n2", Stdout, b"a\nb"),
        output(4, "t1", "n1", Stdout, b"lo\nno newline"),
        output(5, "t1", "n1", Stderr, b"oops\n"),
        task(6, "t1", "n1", TaskState::Failed, 2, ""),
        task(
            7,
            "t3",
            "n3",
            TaskState::Expired,
            -1,
            "node offline past the deadline",
        ),
        task(8, "t2", "n2", TaskState::Succeeded, 0, ""),
        done(9, 1, 1, 1),
    ];
    let (out, err, printer) = render(RunFormat::Text, &events);
    assert_eq!(out, "n2: a\nn1: hello\nn1: no newline\nn2: b\n");
    assert_eq!(
        err,
        "n1 [stderr]: oops\nn1: failed (exit 2)\nn3: expired: node offline past the deadline\nn2: succeeded\n"
    );
    assert_eq!(printer.last_seq(), 9);
    assert_eq!(printer.done().map(|d| d.failed), Some(1));
}

#[test]
fn replayed_events_are_skipped() {
    let events = [
        output(1, "t1", "n1", OutputStream::Stdout, b"one\n"),
        output(2, "t1", "n1", OutputStream::Stdout, b"two\n"),
        // Reconnected from seq 2: the coordinator sends 2 again.
        output(2, "t1", "n1", OutputStream::Stdout, b"two\n"),
        output(3, "t1", "n1", OutputStream::Stdout, b"three\n"),
    ];
    let (out, _, printer) = render(RunFormat::Text, &events);
    assert_eq!(out, "n1: one\nn1: two\nn1: three\n");
    assert_eq!(printer.last_seq(), 3);
    assert!(printer.done().is_none());
}

#[test]
fn unterminated_output_is_flushed_at_stream_end() {
    let (out, err, _) = render(
        RunFormat::Text,
        &[output(1, "t1", "n1", OutputStream::Stderr, b"\xffpartial")],
    );
    assert_eq!(out, "");
    assert_eq!(err, "n1 [stderr]: \u{fffd}partial\n");
}

#[test]
fn json_is_one_object_per_event() {
    let events = [
        task(
            1,
            "t1",
            "n1",
            TaskState::TimedOut,
            -1,
            "timed out after 30s",
        ),
        output(2, "t1", "n1", OutputStream::Stderr, b"x\xffy"),
        done(3, 0, 0, 1),
    ];
    let (out, err, _) = render(RunFormat::Json, &events);
    assert_eq!(err, "");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(lines[0]["task"]["state"], "timed_out");
    assert_eq!(lines[0]["task"]["exit_code"], serde_json::Value::Null);
    assert_eq!(lines[0]["task"]["error"], "timed out after 30s");
    assert_eq!(
        lines[1]["output"],
        serde_json::json!({"node": "n1", "task_id": "t1", "stream": "stderr", "data": "x\u{fffd}y"})
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"seq": 3, "time": "2023-11-14T22:13:20.123Z",
            "done": {"succeeded": 0, "failed": 0, "other": 1}})
    );
}

#[test]
fn state_lines_and_summary() {
    let info = |state: TaskState, exit: i32, error: &str| TaskInfo {
        node: "n1".into(),
        state: state as i32,
        exit_code: exit,
        error: error.into(),
        started_unix_ms: 1,
        ..Default::default()
    };
    assert_eq!(final_state_line(&info(TaskState::Running, 0, "")), None);
    assert_eq!(
        final_state_line(&info(TaskState::Succeeded, 0, "")).as_deref(),
        Some("n1: succeeded")
    );
    assert_eq!(
        final_state_line(&info(TaskState::Lost, -1, "agent restarted")).as_deref(),
        Some("n1: lost: agent restarted")
    );
    assert_eq!(
        final_state_line(&info(TaskState::TimedOut, -1, "")).as_deref(),
        Some("n1: timed out")
    );
    let done = JobDone {
        succeeded: 3,
        failed: 1,
        other: 0,
    };
    assert_eq!(
        summary(&done, Duration::from_millis(1_234), "j42"),
        "3 succeeded, 1 failed, 0 other in 1.2s; job j42"
    );
}

#[test]
fn results_of_config_tasks_are_rendered_when_final() {
    use lab_proto::v1::{task_result, ConfigResult, ResourceResult, ResourceStatus, TaskResult};
    let mut ev = task(2, "t1", "n1", TaskState::Succeeded, 0, "");
    if let Some(job_event::Body::Task(t)) = &mut ev.body {
        t.result = Some(TaskResult {
            kind: Some(task_result::Kind::Config(ConfigResult {
                check: true,
                resources: vec![ResourceResult {
                    resource: "file /etc/motd".into(),
                    status: ResourceStatus::Changed as i32,
                    diff: "--- /etc/motd\n+++ /etc/motd\n-a\n+b\n".into(),
                    message: String::new(),
                    nixos: None,
                }],
            })),
        });
    }
    let events = [
        output(1, "t1", "n1", OutputStream::Stdout, b"partial"),
        ev,
        done(3, 1, 0, 0),
    ];
    let (out, err, _) = render(RunFormat::Text, &events);
    assert_eq!(
        out,
        "n1: partial\nn1: file /etc/motd: would change\n    --- /etc/motd\n    +++ /etc/motd\n    -a\n    +b\n"
    );
    assert_eq!(err, "n1: succeeded\n");
    let (out, _, _) = render(RunFormat::Json, &events);
    let line: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    let resource = &line["task"]["result"]["config"]["resources"][0];
    assert_eq!(line["task"]["result"]["config"]["check"], true);
    assert_eq!(
        (
            &resource["resource"],
            &resource["status"],
            &resource["message"]
        ),
        (
            &serde_json::json!("file /etc/motd"),
            &serde_json::json!("changed"),
            &serde_json::Value::Null
        )
    );
    assert_eq!(resource["diff"], "--- /etc/motd\n+++ /etc/motd\n-a\n+b\n");
    // Exec tasks carry a null result.
    let (out, _, _) = render(
        RunFormat::Json,
        &[task(1, "t", "n", TaskState::Failed, 1, "")],
    );
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["task"]["result"], serde_json::Value::Null);
    assert_eq!(
        summary_line(
            &JobDone {
                succeeded: 1,
                failed: 0,
                other: 0
            },
            Duration::from_secs(1),
            "j1",
            true
        ),
        "check mode: nothing was changed; 1 succeeded, 0 failed, 0 other in 1.0s; job j1"
    );
}

fn progress(seq: u64, task: &str, node: &str, percent: f64) -> JobEvent {
    JobEvent {
        seq,
        unix_ms: 1_700_000_000_123,
        body: Some(job_event::Body::Progress(TaskProgressEvent {
            task_id: task.into(),
            node: node.into(),
            progress: Some(lab_proto::v1::TaskProgress {
                percent,
                bytes_done: 512,
                bytes_total: 1024,
                ..Default::default()
            }),
        })),
    }
}

#[test]
fn progress_lines_go_to_stderr_throttled_and_json_keeps_every_event() {
    let events = [
        progress(1, "t1", "n1", 10.0),
        progress(2, "t1", "n1", 20.0),
        output(3, "t1", "n1", OutputStream::Stdout, b"done\n"),
        task(4, "t1", "n1", TaskState::Succeeded, 0, ""),
        done(5, 1, 0, 0),
    ];
    let mut printer = Printer::new(RunFormat::Text).with_progress(progress::Mode::Lines);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for ev in &events {
        printer.event(ev, &mut out, &mut err).unwrap();
    }
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert_eq!(out, "n1: done\n");
    // The second event came within the interval: one line only.
    assert!(err.starts_with("n1: 10% 512B/1.0KiB\n"), "{err}");
    assert!(!err.contains("20%"), "{err}");

    // Off (the default) shows nothing; JSON has one object per progress event.
    let (_, err, _) = render(RunFormat::Text, &events);
    assert!(!err.contains('%'), "{err}");
    let (out, _, _) = render(RunFormat::Json, &events);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["progress"]["percent"], 10.0);
    assert_eq!(first["progress"]["bytes_total"], 1024);
    assert_eq!(
        out.lines().filter(|l| l.contains("\"progress\"")).count(),
        2
    );
}

#[test]
fn bars_are_gone_before_the_result_is_printed() {
    let mut printer = Printer::new(RunFormat::Text);
    printer.progress = Progress::hidden_bars();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    printer
        .event(&progress(1, "t1", "n1", 50.0), &mut out, &mut err)
        .unwrap();
    assert_eq!(printer.progress.bars_shown(), 1);
    printer
        .event(
            &output(2, "t1", "n1", OutputStream::Stdout, b"x\n"),
            &mut out,
            &mut err,
        )
        .unwrap();
    assert_eq!(
        printer.progress.bars_shown(),
        1,
        "output does not end a bar"
    );
    printer
        .event(
            &task(3, "t1", "n1", TaskState::Failed, 1, "boom"),
            &mut out,
            &mut err,
        )
        .unwrap();
    assert_eq!(printer.progress.bars_shown(), 0);
    assert_eq!(String::from_utf8(out).unwrap(), "n1: x\n");
}

#[test]
fn a_failed_backup_never_prints_done_first() {
    use lab_proto::v1::{task_result, BackupResult, TaskResult};
    let with_result = |seq: u64, state: TaskState, error: &str| {
        let mut ev = task(seq, "t1", "n1", state, 1, error);
        if let Some(job_event::Body::Task(t)) = &mut ev.body {
            t.result = Some(TaskResult {
                kind: Some(task_result::Kind::Backup(BackupResult {
                    name: "home".into(),
                    ..Default::default()
                })),
            });
        }
        ev
    };
    let (out, err, _) = render(
        RunFormat::Text,
        &[with_result(
            1,
            TaskState::Failed,
            "restic: repository locked",
        )],
    );
    assert!(!out.contains("done"), "{out}");
    assert_eq!(err, "n1: failed (exit 1): restic: repository locked\n");
    let (out, _, _) = render(RunFormat::Text, &[with_result(1, TaskState::Succeeded, "")]);
    assert_eq!(out, "n1: backup home: done\n");
}

#[test]
fn state_lines_are_coloured_only_when_asked() {
    let events = [
        task(1, "t1", "n1", TaskState::Failed, 2, ""),
        task(2, "t2", "n2", TaskState::Succeeded, 0, ""),
    ];
    let mut printer = Printer::new(RunFormat::Text).with_stderr_color(true);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for ev in &events {
        printer.event(ev, &mut out, &mut err).unwrap();
    }
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "\x1b[31mn1: failed (exit 2)\x1b[0m\n\x1b[32mn2: succeeded\x1b[0m\n"
    );
    let (_, plain, _) = render(RunFormat::Text, &events);
    assert!(!plain.contains('\x1b'), "{plain}");
}
