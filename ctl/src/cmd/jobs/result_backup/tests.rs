//! Unit tests of backup result views and their text lines.

use lab_proto::v1::{
    backup_result::Kind, task_result, BackupResult, BackupSummary, CheckSummary, DrillFile,
    DrillSummary, ForgetSummary, RestoreSummary, SnapraidOperation, SnapraidSummary, Snapshot,
    SnapshotList, TaskResult,
};
use serde_json::json;

use super::super::result::{self, ResultView};

fn result(name: &str, kind: Kind, retention: Option<ForgetSummary>) -> TaskResult {
    TaskResult {
        kind: Some(task_result::Kind::Backup(BackupResult {
            name: name.into(),
            kind: Some(kind),
            retention,
        })),
    }
}

fn text(r: &TaskResult) -> String {
    result::render("n1", &result::view(Some(r)).unwrap(), true, false)
}

fn json_of(r: &TaskResult) -> serde_json::Value {
    serde_json::to_value(result::view(Some(r)).unwrap()).unwrap()
}

fn summary() -> BackupSummary {
    BackupSummary {
        snapshot_id: "1a2b3c4d5e6f7081".into(),
        files_new: 120,
        files_changed: 3,
        files_unmodified: 7,
        dirs_new: 2,
        dirs_changed: 1,
        data_added_bytes: 42_048_307,
        total_files_processed: 130,
        total_bytes_processed: 2_791_728_742,
        duration_seconds: 2.31,
    }
}

#[test]
fn backup_with_retention() {
    let r = result(
        "home",
        Kind::Backup(summary()),
        Some(ForgetSummary {
            kept: 3,
            removed: 1,
            pruned: true,
        }),
    );
    assert_eq!(
        text(&r),
        "n1: backup home: snapshot 1a2b3c4d — 120 files new, 3 changed, 40.1MiB added, 2.3s\n\
         n1: retention home: kept 3, removed 1 snapshot(s), pruned\n"
    );
    let v = json_of(&r);
    assert_eq!(v["backup"]["name"], "home");
    assert_eq!(v["backup"]["operation"], "backup");
    assert_eq!(v["backup"]["backup"]["snapshot_id"], "1a2b3c4d5e6f7081");
    assert_eq!(
        v["backup"]["backup"]["total_bytes_processed"],
        2_791_728_742u64
    );
    assert_eq!(
        v["backup"]["retention"],
        json!({"kept": 3, "removed": 1, "pruned": true})
    );
    // Without a name and a retention policy.
    let r = result("", Kind::Backup(summary()), None);
    assert!(
        text(&r).starts_with("n1: backup: snapshot 1a2b3c4d"),
        "{}",
        text(&r)
    );
    assert_eq!(json_of(&r)["backup"]["retention"], serde_json::Value::Null);
}

#[test]
fn drills_ok_and_with_problems() {
    let mut drill = DrillSummary {
        snapshot_id: "abcdef0123".into(),
        files_in_snapshot: 120,
        files_verified: 120,
        bytes_verified: 40 * 1024 * 1024,
        problems: vec![],
        files: vec![DrillFile {
            path: "/home/a".into(),
            size: 5,
            sha256: "ab".repeat(32),
        }],
    };
    let r = result("home", Kind::Drill(drill.clone()), None);
    assert_eq!(
        text(&r),
        "n1: drill home: ok (verified 120/120 files, 40.0MiB of snapshot abcdef01)\n"
    );
    assert_eq!(json_of(&r)["backup"]["drill"]["files"][0]["size"], 5);
    drill.problems = vec![
        "/home/a: size 5, expected 6".into(),
        "/home/b: missing".into(),
    ];
    drill.files_verified = 118;
    let r = result("home", Kind::Drill(drill), None);
    assert_eq!(
        text(&r),
        "n1: drill home: failed: 2 problem(s); verified 118/120 files, 40.0MiB of snapshot abcdef01\n    /home/a: size 5, expected 6\n    /home/b: missing\n"
    );
}

#[test]
fn check_forget_restore() {
    let ok = result(
        "home",
        Kind::Check(CheckSummary {
            ok: true,
            read_data_subset: "5%".into(),
            errors: vec![],
        }),
        None,
    );
    assert_eq!(text(&ok), "n1: check home: ok (read 5% of the data)\n");
    let bad = result(
        "home",
        Kind::Check(CheckSummary {
            ok: false,
            read_data_subset: String::new(),
            errors: vec!["pack 1234 damaged".into()],
        }),
        None,
    );
    assert_eq!(
        text(&bad),
        "n1: check home: failed: 1 error(s) (structure only)\n    pack 1234 damaged\n"
    );
    assert_eq!(
        json_of(&bad)["backup"]["check"]["read_data_subset"],
        serde_json::Value::Null
    );
    let forget = result(
        "home",
        Kind::Forget(ForgetSummary {
            kept: 2,
            removed: 5,
            pruned: false,
        }),
        None,
    );
    assert_eq!(
        text(&forget),
        "n1: forget home: kept 2, removed 5 snapshot(s)\n"
    );
    let restore = result(
        "",
        Kind::Restore(RestoreSummary {
            snapshot_id: "0123456789".into(),
            target: "/tmp/r".into(),
            files_restored: 12,
            bytes_restored: 2048,
        }),
        None,
    );
    assert_eq!(
        text(&restore),
        "n1: restore: snapshot 01234567 to /tmp/r — 12 files, 2.0KiB\n"
    );
}

#[test]
fn snapshots_table() {
    let r = result(
        "home",
        Kind::Snapshots(SnapshotList {
            snapshots: vec![Snapshot {
                id: "1a2b3c4d5e".into(),
                short_id: "1a2b3c4d".into(),
                time_unix_ms: 1_000,
                hostname: "n1".into(),
                paths: vec!["/home".into()],
                tags: vec!["home".into(), "nightly".into()],
            }],
        }),
        None,
    );
    let t = text(&r);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "n1: snapshots home: 1 snapshot(s)");
    assert!(
        lines[1].starts_with("    ") && lines[1].contains("ID") && lines[1].contains("PATHS"),
        "{t}"
    );
    assert!(
        lines[2].contains("1a2b3c4d")
            && lines[2].contains("1970-01-01T00:00:01Z")
            && lines[2].contains("home,nightly")
            && lines[2].contains("/home"),
        "{t}"
    );
    assert_eq!(
        json_of(&r)["backup"]["snapshots"][0]["time"],
        "1970-01-01T00:00:01Z"
    );
}

#[test]
fn snapraid_counts() {
    let summary = |operation: SnapraidOperation, errors: u64| SnapraidSummary {
        operation: operation as i32,
        added: 3,
        removed: 1,
        updated: 2,
        errors,
        percent: 12,
        in_sync: errors == 0,
        message: "Everything OK".into(),
        ..Default::default()
    };
    let sync = result(
        "",
        Kind::Snapraid(summary(SnapraidOperation::Sync, 0)),
        None,
    );
    assert_eq!(
        text(&sync),
        "n1: snapraid sync: ok (3 added, 1 removed, 2 updated, 0 moved, 0 copied, 0 restored, 0 error(s), in sync — Everything OK)\n"
    );
    let scrub = result(
        "",
        Kind::Snapraid(summary(SnapraidOperation::Scrub, 2)),
        None,
    );
    assert_eq!(
        text(&scrub),
        "n1: snapraid scrub: failed: scrubbed 12%, 2 error(s) — Everything OK\n"
    );
    let status = result(
        "",
        Kind::Snapraid(summary(SnapraidOperation::Status, 0)),
        None,
    );
    assert!(
        text(&status).contains("in sync, 12% never scrubbed"),
        "{}",
        text(&status)
    );
    assert_eq!(
        json_of(&status)["backup"]["snapraid"]["operation"],
        "status"
    );
}

#[test]
fn node_text_cannot_inject_escapes() {
    let r = result(
        "home",
        Kind::Drill(DrillSummary {
            problems: vec!["\x1b]0;pwned\x07".into()],
            ..Default::default()
        }),
        None,
    );
    assert!(!text(&r).contains('\x1b'));
    assert!(matches!(
        result::view(Some(&r)),
        Some(ResultView::Backup(_))
    ));
}
