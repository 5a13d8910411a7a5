//! Every table labctl prints, rendered from sample data, in the default and the `-o wide` form
//! and coloured: each row's cells start where the header's titles start (a value without a
//! title, or a title without a value, shifts them); default tables fit 80 columns; `-o name`
//! prints one name per item.

use lab_proto::v1::{
    task_spec, BackupHealth, BackupStatus, ExecTask, JobInfo, JobSpec, Node, Schedule,
    ScheduleSpec, TaskInfo, TaskSpec, TaskState,
};

use crate::cmd;
use crate::output::{assert_aligned, names, Format};

/// Every form of a table: default, wide, and both coloured (colours must not shift columns);
/// the default fits 80 columns.
fn assert_every_form(render: impl Fn(Format, bool) -> String) {
    for color in [false, true] {
        for format in [Format::Table, Format::Wide] {
            let rendered = render(format, color);
            let plain = strip_ansi(&rendered);
            assert_aligned(&plain);
            if format == Format::Table {
                for line in plain.lines() {
                    assert!(
                        line.chars().count() <= 80,
                        "wider than 80 columns: {line:?}"
                    );
                }
            }
        }
    }
}

/// `text` without ANSI SGR sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const NOW: i64 = 1_795_687_200_000;

#[test]
fn nodes_table_is_aligned() {
    let node = Node {
        name: "n1".into(),
        online: true,
        labels: [("role".to_owned(), "nas".to_owned())].into(),
        last_seen_unix_ms: NOW - 5_000,
        facts_json: r#"{"platform":{"os":"debian","os_version":"12","arch":"x86_64",
            "virtualization":"kvm","cpus":4,"memory_total_bytes":8000000000,
            "boot_time_unix":1795680000}}"#
            .into(),
        ..Default::default()
    };
    let mut long = node.clone();
    long.name = "storage-node-long-17".into();
    long.online = false;
    long.labels = (0..20)
        .map(|i| (format!("label-{i}"), format!("value-{i}")))
        .collect();
    let views = [cmd::nodes::view(node, false), cmd::nodes::view(long, false)];
    assert_every_form(|format, color| cmd::nodes::table(&views, NOW, format, color));
    // Long label lists end in '…' in the table; -o wide shows them all.
    let table = cmd::nodes::table(&views, NOW, Format::Table, false);
    assert!(
        table.contains('…') && !table.contains("label-19"),
        "{table}"
    );
    let wide = cmd::nodes::table(&views, NOW, Format::Wide, false);
    assert!(
        wide.contains("label-19=value-19") && !wide.contains('…'),
        "{wide}"
    );
    assert!(
        table.contains("offline") && table.contains("online"),
        "{table}"
    );
    assert_eq!(
        names(&views, |v| v.name.clone()),
        "n1\nstorage-node-long-17\n"
    );
}

fn job() -> JobInfo {
    JobInfo {
        job_id: "j-1".into(),
        submitted_by: "admin".into(),
        submitted_unix_ms: NOW - 60_000,
        spec: Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: vec!["uptime".into()],
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        tasks: vec![TaskInfo {
            task_id: "t-1".into(),
            node: "n1".into(),
            state: TaskState::Failed as i32,
            exit_code: 3,
            error: "exited".into(),
            started_unix_ms: NOW - 50_000,
            finished_unix_ms: NOW - 40_000,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn jobs_and_job_show_tables_are_aligned() {
    let view = cmd::jobs::view::JobView::from(&job());
    let mut long = job();
    long.job_id = "19a1f0c2e3b4d5e6f70".into();
    if let Some(task_spec::Kind::Exec(e)) = long
        .spec
        .as_mut()
        .and_then(|s| s.task.as_mut())
        .and_then(|t| t.kind.as_mut())
    {
        e.argv = vec!["sh".into(), "-c".into(), "x ".repeat(80)];
    }
    let views = [view.clone(), cmd::jobs::view::JobView::from(&long)];
    assert_every_form(|format, color| cmd::jobs::view::jobs_table(&views, NOW, format, color));
    assert_every_form(|_, color| cmd::jobs::view::tasks_table(&view.tasks, color).to_string());
    assert_eq!(
        names(&views, |v| v.id.clone()),
        "j-1\n19a1f0c2e3b4d5e6f70\n"
    );
}

#[test]
fn backups_table_is_aligned() {
    let status = BackupStatus {
        node: "n1".into(),
        name: "home".into(),
        last_success_unix_ms: NOW - 3_600_000,
        snapshot_id: "0123456789abcdef".into(),
        size_bytes: 1 << 30,
        last_drill_unix_ms: NOW - 7_200_000,
        last_drill_ok: true,
        health: BackupHealth::Green as i32,
        ..Default::default()
    };
    let views = [cmd::backups::view(status, NOW)];
    assert_every_form(|_, color| cmd::backups::table(&views, NOW, color));
    assert_eq!(
        names(&views, |v| format!("{}/{}", v.node, v.name)),
        "n1/home\n"
    );
}

#[test]
fn snapshots_table_is_aligned() {
    let snapshot = cmd::jobs::result_backup::SnapshotView {
        id: "0123456789abcdef".into(),
        short_id: "01234567".into(),
        time: Some("2026-11-26T10:00:00Z".into()),
        hostname: "n1".into(),
        paths: vec!["/home".into()],
        tags: vec!["daily".into()],
    };
    assert_aligned(&cmd::jobs::result_backup::snapshots_table(&[snapshot]).to_string());
}

#[test]
fn schedules_table_is_aligned() {
    let schedule = Schedule {
        spec: Some(ScheduleSpec {
            name: "nightly".into(),
            cron: "0 3 * * *".into(),
            timezone: "UTC".into(),
            ..Default::default()
        }),
        next_unix_ms: NOW + 60_000,
        last_fired_unix_ms: NOW - 60_000,
        last_job_id: "j-1".into(),
        ..Default::default()
    };
    let views = [cmd::schedule::view::ScheduleView::from(&schedule)];
    assert_every_form(|format, _| {
        cmd::schedule::view::table(&views, NOW)
            .fit(format.fit())
            .to_string()
    });
    assert_eq!(names(&views, |v| v.name.clone()), "nightly\n");
}

#[test]
fn token_and_user_tables_are_aligned() {
    let token = cmd::token::TokenView {
        id: "tok-1".into(),
        node_name: "n1".into(),
        labels: Default::default(),
        expires: Some("2026-11-26T10:00:00Z".into()),
        used: None,
        used_by: "n1".into(),
        created_by: "admin".into(),
        revoked: Some("2026-11-26T11:00:00Z".into()),
    };
    let tokens = [token];
    assert_every_form(|format, _| cmd::token::table(&tokens).fit(format.fit()).to_string());
    assert_eq!(names(&tokens, |v| v.id.clone()), "tok-1\n");
    let user = cmd::user::UserView {
        name: "dave".into(),
        role: "operator",
        created: Some("2026-11-26T10:00:00Z".into()),
        cert_expires: Some("2026-12-26T10:00:00Z".into()),
        revoked: None,
    };
    let users = [user];
    assert_every_form(|format, _| cmd::user::table(&users).fit(format.fit()).to_string());
    assert_eq!(names(&users, |v| v.name.clone()), "dave\n");
}

/// A node reporting a hostname/OS with a colour escape and a right-to-left override.
const HOSTILE: &str = "web\x1b[31m01\u{202e}lmth.exe";

fn assert_escaped(rendered: &str) {
    assert!(
        !rendered.contains('\x1b') && !rendered.contains('\u{202e}'),
        "raw control characters in\n{rendered}"
    );
    assert!(
        rendered.contains(r"web\x1b[31m01\u{202e}lmth.exe"),
        "{rendered}"
    );
}

#[test]
fn hostile_facts_labels_and_task_text_are_escaped() {
    let node = Node {
        name: "n1".into(),
        labels: [
            ("hostname".to_owned(), HOSTILE.to_owned()),
            ("site".to_owned(), HOSTILE.to_owned()),
        ]
        .into(),
        facts_json: serde_json::json!({"platform": {"os": HOSTILE}}).to_string(),
        ..Default::default()
    };
    let views = [cmd::nodes::view(node, false)];
    let rendered = cmd::nodes::table(&views, NOW, Format::Wide, false);
    assert_escaped(&rendered);
    assert_aligned(&rendered);
    assert_escaped(&names(&views, |_| HOSTILE.to_owned()));

    let mut job = job();
    job.tasks[0].node = HOSTILE.into();
    job.tasks[0].error = HOSTILE.into();
    let view = cmd::jobs::view::JobView::from(&job);
    assert_escaped(&cmd::jobs::view::job_text(&view));
    assert_escaped(&cmd::jobs::events::final_state_line(&job.tasks[0]).unwrap_or_default());
}
