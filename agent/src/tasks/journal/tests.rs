//! Tests of the journal file: round trips, pruning, damaged lines, compaction and the upgrade
//! from per-task files, all on real files in a temp dir.

use std::os::unix::fs::MetadataExt;

use super::*;
use crate::process::FinalState;

const DAY_MS: i64 = 24 * 3600 * 1000;
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// "Now" for the whole test binary: the journal prunes by the real clock when it compacts.
static NOW: std::sync::LazyLock<i64> = std::sync::LazyLock::new(crate::tasks::now_ms);

fn id(s: &str) -> TaskId {
    s.parse().unwrap()
}

fn finished(unix_ms: i64) -> Finished {
    Finished {
        state: FinalState::Succeeded,
        exit_code: 0,
        error: String::new(),
        unix_ms,
        seq: 3,
        result: None,
    }
}

fn started(task: &str) -> Record {
    let mut r = Record::new(&id(task), "j");
    r.started_unix_ms = Some(*NOW);
    r
}

fn done(task: &str, acked: bool) -> Record {
    let mut r = started(task);
    r.finished = Some(finished(*NOW));
    r.acked = acked;
    r
}

fn open(dir: &Path) -> (Journal, HashMap<TaskId, Record>) {
    Journal::open(dir, WEEK, *NOW).unwrap()
}

fn file(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn line_count(dir: &Path) -> usize {
    std::fs::read(file(dir))
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn writes_append_and_load_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let (journal, records) = open(&dir);
    assert!(records.is_empty());
    assert!(names(&dir).is_empty(), "nothing journaled, no file");

    let mut old_acked = done("old-acked", true);
    old_acked.finished = Some(finished(*NOW - 8 * DAY_MS));
    let mut old_unacked = old_acked.clone();
    old_unacked.task_id = "old-unacked".into();
    old_unacked.acked = false;
    let mut recent = done("recent", true);
    recent.finished = Some(finished(*NOW - DAY_MS));
    journal.write(started("recent")).await.unwrap();
    let inode = std::fs::metadata(file(&dir)).unwrap().ino();
    for r in [&old_acked, &old_unacked, &recent, &started("started")] {
        journal.write(r.clone()).await.unwrap();
    }
    // Appended to the file created by the first write, not rewritten.
    assert_eq!(std::fs::metadata(file(&dir)).unwrap().ino(), inode);
    assert_eq!(line_count(&dir), 5);

    let (_, records) = open(&dir);
    assert!(!records.contains_key(&id("old-acked")));
    assert_eq!(records[&id("old-unacked")], old_unacked);
    assert_eq!(records[&id("recent")], recent);
    assert_eq!(records[&id("started")], started("started"));
    assert_eq!(records.len(), 3);
    // Opening compacted away the superseded and expired lines.
    assert_eq!(line_count(&dir), 3);
    assert_eq!(names(&dir), [FILE_NAME]);
}

/// Writes `records` through a journal in `dir`, then appends `tail` as is.
async fn journal_with_tail(dir: &Path, records: &[Record], tail: &[u8]) {
    let (journal, _) = open(dir);
    for r in records {
        journal.write(r.clone()).await.unwrap();
    }
    let mut f = OpenOptions::new().append(true).open(file(dir)).unwrap();
    f.write_all(tail).unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_ignored_and_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let line = frame::encode(&started("t3")).unwrap();
    // Cut inside the task id: nothing legible, as if the append never happened.
    let cut = line.windows(4).position(|w| w == b"\"t3\"").unwrap() + 2;
    journal_with_tail(&dir, &[started("t1"), done("t1", false)], &line[..cut]).await;

    let (journal, records) = open(&dir);
    assert_eq!(records.len(), 1);
    assert_eq!(records[&id("t1")], done("t1", false));
    // The torn bytes are gone, so later appends start on a fresh line.
    assert_eq!(std::fs::read(file(&dir)).unwrap().last(), Some(&b'\n'));
    journal.write(started("t4")).await.unwrap();
    let (_, records) = open(&dir);
    assert_eq!(records[&id("t4")], started("t4"));
    assert_eq!(records.len(), 2);
}

#[tokio::test]
async fn a_damaged_line_naming_an_unknown_task_makes_it_lost_never_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let torn = frame::encode(&started("t2")).unwrap();
    let torn = &torn[..torn.len() - 5]; // the task id is whole, the record is not
    journal_with_tail(&dir, &[started("t1")], torn).await;
    let (_, records) = open(&dir);
    let t2 = &records[&id("t2")];
    assert!(t2.started_unix_ms.is_some() && t2.finished.is_none());
    assert_eq!(records[&id("t1")], started("t1"));
    // The damaged line is gone from the file; its meaning stays.
    assert_eq!(line_count(&dir), 2);
    assert!(frame::decode(&std::fs::read(file(&dir)).unwrap())
        .invalid
        .is_empty());

    // A damaged line of a task with valid lines changes nothing, wherever it is.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let mut bad = frame::encode(&done("t1", true)).unwrap();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' }; // checksum mismatch
    journal_with_tail(&dir, &[done("t1", false)], &bad).await;
    let (journal, _) = open(&dir);
    journal.write(started("t5")).await.unwrap();
    let (_, records) = open(&dir);
    assert_eq!(records[&id("t1")], done("t1", false));
    assert_eq!(records[&id("t5")], started("t5"));
}

#[tokio::test]
async fn a_damaged_line_inside_the_file_is_compacted_away_keeping_its_meaning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let mut bad = frame::encode(&started("t2")).unwrap();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    journal_with_tail(&dir, &[started("t1")], &bad).await;
    // A valid line after the damaged one: the file ends clean and holds as many lines as
    // tasks, yet it is rewritten.
    let mut f = OpenOptions::new().append(true).open(file(&dir)).unwrap();
    f.write_all(&frame::encode(&started("t3")).unwrap())
        .unwrap();
    drop(f);
    let (_, records) = open(&dir);
    assert_eq!(records[&id("t1")], started("t1"));
    assert_eq!(records[&id("t3")], started("t3"));
    assert_eq!(records[&id("t2")].finished, None, "t2 lost, never run");
    let text = std::fs::read(file(&dir)).unwrap();
    assert!(frame::decode(&text).invalid.is_empty());
    assert_eq!(line_count(&dir), 3);
}

#[test]
fn decoding_reports_every_kind_of_damage() {
    let good = frame::encode(&started("a")).unwrap();
    let mut bytes = good.clone();
    bytes.extend_from_slice(b"not a record\n");
    bytes.extend_from_slice(b"0123456789abcdef {\"task_id\":\"b\"}\n");
    bytes.extend_from_slice(&good[..10]);
    let d = frame::decode(&bytes);
    assert_eq!(d.records, [started("a")]);
    assert_eq!(d.invalid, [None, Some(id("b")), None]);
    assert!(!d.ends_clean);
    let d = frame::decode(&good);
    assert!(d.ends_clean && d.invalid.is_empty());
    assert!(frame::decode(b"").ends_clean);
}

#[tokio::test]
async fn the_file_is_compacted_as_it_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    let (journal, _) = open(&dir);
    journal.set_compact_min_lines(8);
    let mut expired = done("expired", true);
    expired.finished = Some(finished(0));
    journal.write(expired).await.unwrap();
    let mut max_lines = 0;
    for n in 0..20 {
        let task = format!("t{n}");
        for r in [started(&task), done(&task, false), done(&task, true)] {
            journal.write(r).await.unwrap();
            max_lines = max_lines.max(line_count(&dir));
        }
    }
    // Never more than twice the live records (plus the line that triggers the compaction).
    assert!(max_lines <= 2 * 20 + 1, "{max_lines} lines");
    assert_eq!(names(&dir), [FILE_NAME], "no temp files left");
    let (_, records) = open(&dir);
    assert_eq!(records.len(), 20);
    assert!(
        !records.contains_key(&id("expired")),
        "pruned when compacted"
    );
    assert!((0..20).all(|n| records[&id(&format!("t{n}"))] == done(&format!("t{n}"), true)));
}

#[tokio::test]
async fn per_task_files_of_older_agents_are_migrated_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tasks");
    std::fs::create_dir_all(&dir).unwrap();
    let legacy = |r: &Record| {
        let path = dir.join(format!("{}.json", r.task_id));
        write_atomic(&path, &serde_json::to_vec(r).unwrap(), PRIVATE).unwrap();
    };
    let mut old = done("old", true);
    old.finished = Some(finished(*NOW - 8 * DAY_MS));
    for r in [&started("running"), &done("done", false), &old] {
        legacy(r);
    }
    std::fs::write(dir.join("broken.json"), b"{not json").unwrap();
    std::fs::write(dir.join(".x.json.tmp.1.0"), b"").unwrap();
    std::fs::write(dir.join("notes.txt"), b"kept").unwrap();

    let (journal, records) = open(&dir);
    assert_eq!(records[&id("running")], started("running"));
    assert_eq!(records[&id("done")], done("done", false));
    let broken = &records[&id("broken")];
    assert!(broken.started_unix_ms.is_some() && broken.finished.is_none());
    assert_eq!(records.len(), 3, "the expired record is dropped");
    assert_eq!(names(&dir), [FILE_NAME, "notes.txt"]);
    journal.write(done("running", false)).await.unwrap();
    let (_, again) = open(&dir);
    assert_eq!(again[&id("running")], done("running", false));
    assert_eq!(again.len(), 3);

    // Interrupted after the journal was written but before the old files were deleted: the
    // further state of each task wins, wherever it is.
    legacy(&started("done"));
    legacy(&done("broken", true));
    let (_, merged) = open(&dir);
    assert_eq!(merged[&id("done")], done("done", false));
    assert_eq!(merged[&id("broken")], done("broken", true));
    assert_eq!(merged[&id("running")], done("running", false));
    assert_eq!(names(&dir), [FILE_NAME, "notes.txt"]);
}
