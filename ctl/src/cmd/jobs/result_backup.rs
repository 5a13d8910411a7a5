//! Results of backup tasks as labctl shows them: the stable JSON view (`result.backup` of a
//! task) and the text lines, e.g. `n1: backup home: snapshot 1a2b3c4d — 120 files new,
//! 3 changed, 40.1MiB added, 2.3s`. Pure.
//!
//! JSON (field names are stable): `{"backup": {"name", "operation", OPERATION: {...},
//! "retention": {"kept", "removed", "pruned"} | null}}` where `operation` is one of `backup`,
//! `forget`, `check`, `snapshots`, `restore`, `drill`, `snapraid` (or `unknown`) and the object
//! under that key has the fields of the matching summary in backup.proto (times as RFC 3339).

use std::fmt::Write as _;

use lab_proto::v1::{
    backup_result, BackupResult, BackupSummary, CheckSummary, DrillSummary, ForgetSummary,
    RestoreSummary, SnapraidOperation, SnapraidSummary, SnapshotList,
};
use serde::Serialize;

use super::result::{clean, entry};
use crate::output;

/// `result.backup`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupResultView {
    /// The backup's name (may be empty).
    pub name: String,
    /// Which summary follows.
    pub operation: &'static str,
    /// The summary, under the key named by `operation`.
    #[serde(flatten)]
    pub summary: Option<SummaryView>,
    /// Retention applied after a backup.
    pub retention: Option<ForgetView>,
}

/// The summary of one backup operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryView {
    /// restic backup, PostgreSQL dump.
    Backup(BackupView),
    /// restic forget.
    Forget(ForgetView),
    /// restic check.
    Check(CheckView),
    /// restic snapshots.
    Snapshots(Vec<SnapshotView>),
    /// restic restore, PostgreSQL restore.
    Restore(RestoreView),
    /// Restore drill.
    Drill(DrillView),
    /// SnapRAID.
    Snapraid(SnapraidView),
}

/// `backup`: restic's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupView {
    /// Snapshot id.
    pub snapshot_id: String,
    /// New files.
    pub files_new: u64,
    /// Changed files.
    pub files_changed: u64,
    /// Unmodified files.
    pub files_unmodified: u64,
    /// New directories.
    pub dirs_new: u64,
    /// Changed directories.
    pub dirs_changed: u64,
    /// Bytes added to the repository.
    pub data_added_bytes: u64,
    /// Files processed.
    pub total_files_processed: u64,
    /// Bytes processed.
    pub total_bytes_processed: u64,
    /// Seconds the backup took.
    pub duration_seconds: f64,
}

/// `forget` and `retention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgetView {
    /// Snapshots kept.
    pub kept: u32,
    /// Snapshots removed.
    pub removed: u32,
    /// Unreferenced data removed.
    pub pruned: bool,
}

/// `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckView {
    /// No errors.
    pub ok: bool,
    /// The data subset read, null for structure only.
    pub read_data_subset: Option<String>,
    /// What restic reported.
    pub errors: Vec<String>,
}

/// One entry of `snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotView {
    /// Full id.
    pub id: String,
    /// Short id.
    pub short_id: String,
    /// RFC 3339.
    pub time: Option<String>,
    /// Host.
    pub hostname: String,
    /// Paths.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// `restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreView {
    /// Snapshot id.
    pub snapshot_id: String,
    /// Where it went.
    pub target: String,
    /// Files restored.
    pub files_restored: u64,
    /// Bytes restored.
    pub bytes_restored: u64,
}

/// `drill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillView {
    /// Snapshot id.
    pub snapshot_id: String,
    /// Files in the snapshot.
    pub files_in_snapshot: u64,
    /// Files restored and checked.
    pub files_verified: u64,
    /// Bytes checked.
    pub bytes_verified: u64,
    /// One line per problem; empty when everything matched.
    pub problems: Vec<String>,
    /// Verified files (at most 100).
    pub files: Vec<DrillFileView>,
}

/// `drill.files[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillFileView {
    /// Path in the snapshot.
    pub path: String,
    /// Size.
    pub size: u64,
    /// Hex SHA-256 of the restored content.
    pub sha256: String,
}

/// `snapraid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapraidView {
    /// sync, scrub, status, diff.
    pub operation: &'static str,
    /// Files added.
    pub added: u64,
    /// Files removed.
    pub removed: u64,
    /// Files updated.
    pub updated: u64,
    /// Files moved.
    pub moved: u64,
    /// Files copied.
    pub copied: u64,
    /// Files restored.
    pub restored: u64,
    /// Errors reported.
    pub errors: u64,
    /// Scrub: percent scrubbed; status: percent never scrubbed.
    pub percent: u32,
    /// Nothing differs between data and parity.
    pub in_sync: bool,
    /// snapraid's last summary line(s).
    pub message: Option<String>,
}

/// The name of a SnapRAID operation as spec files write it.
pub fn snapraid_name(op: SnapraidOperation) -> &'static str {
    match op {
        SnapraidOperation::Unspecified => "unknown",
        SnapraidOperation::Sync => "sync",
        SnapraidOperation::Scrub => "scrub",
        SnapraidOperation::Status => "status",
        SnapraidOperation::Diff => "diff",
    }
}

fn forget_view(f: &ForgetSummary) -> ForgetView {
    ForgetView {
        kept: f.kept,
        removed: f.removed,
        pruned: f.pruned,
    }
}

fn backup_view(s: &BackupSummary) -> BackupView {
    BackupView {
        snapshot_id: s.snapshot_id.clone(),
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs_new: s.dirs_new,
        dirs_changed: s.dirs_changed,
        data_added_bytes: s.data_added_bytes,
        total_files_processed: s.total_files_processed,
        total_bytes_processed: s.total_bytes_processed,
        duration_seconds: s.duration_seconds,
    }
}

fn check_view(c: &CheckSummary) -> CheckView {
    CheckView {
        ok: c.ok,
        read_data_subset: Some(c.read_data_subset.clone()).filter(|s| !s.is_empty()),
        errors: c.errors.clone(),
    }
}

fn snapshots_view(l: &SnapshotList) -> Vec<SnapshotView> {
    l.snapshots
        .iter()
        .map(|s| SnapshotView {
            id: s.id.clone(),
            short_id: s.short_id.clone(),
            time: output::time(s.time_unix_ms),
            hostname: s.hostname.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
        })
        .collect()
}

fn restore_view(r: &RestoreSummary) -> RestoreView {
    RestoreView {
        snapshot_id: r.snapshot_id.clone(),
        target: r.target.clone(),
        files_restored: r.files_restored,
        bytes_restored: r.bytes_restored,
    }
}

fn drill_view(d: &DrillSummary) -> DrillView {
    DrillView {
        snapshot_id: d.snapshot_id.clone(),
        files_in_snapshot: d.files_in_snapshot,
        files_verified: d.files_verified,
        bytes_verified: d.bytes_verified,
        problems: d.problems.clone(),
        files: d
            .files
            .iter()
            .map(|f| DrillFileView {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect(),
    }
}

fn snapraid_view(s: &SnapraidSummary) -> SnapraidView {
    SnapraidView {
        operation: snapraid_name(s.operation()),
        added: s.added,
        removed: s.removed,
        updated: s.updated,
        moved: s.moved,
        copied: s.copied,
        restored: s.restored,
        errors: s.errors,
        percent: s.percent,
        in_sync: s.in_sync,
        message: Some(s.message.clone()).filter(|m| !m.is_empty()),
    }
}

/// The view of a backup task's result.
pub fn view(b: &BackupResult) -> BackupResultView {
    use backup_result::Kind;
    let (operation, summary) = match &b.kind {
        None => ("unknown", None),
        Some(Kind::Backup(s)) => ("backup", Some(SummaryView::Backup(backup_view(s)))),
        Some(Kind::Forget(f)) => ("forget", Some(SummaryView::Forget(forget_view(f)))),
        Some(Kind::Check(c)) => ("check", Some(SummaryView::Check(check_view(c)))),
        Some(Kind::Snapshots(l)) => ("snapshots", Some(SummaryView::Snapshots(snapshots_view(l)))),
        Some(Kind::Restore(r)) => ("restore", Some(SummaryView::Restore(restore_view(r)))),
        Some(Kind::Drill(d)) => ("drill", Some(SummaryView::Drill(drill_view(d)))),
        Some(Kind::Snapraid(s)) => ("snapraid", Some(SummaryView::Snapraid(snapraid_view(s)))),
    };
    BackupResultView {
        name: b.name.clone(),
        operation,
        summary,
        retention: b.retention.as_ref().map(forget_view),
    }
}

/// The first 8 characters of a snapshot id (restic's short form).
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// "1.2s", "2m 5s".
fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = s.round() as u64;
        format!("{}m {}s", whole / 60, whole % 60)
    }
}

fn forget_text(f: &ForgetView) -> String {
    let pruned = if f.pruned { ", pruned" } else { "" };
    format!("kept {}, removed {} snapshot(s){pruned}", f.kept, f.removed)
}

/// The text lines of a backup result of a task on `node`, each ending in a newline; without a
/// summary, "done" only when the task `succeeded` (else nothing: never "done" before "failed").
pub fn render(out: &mut String, node: &str, b: &BackupResultView, succeeded: bool, color: bool) {
    let what = |op: &str| {
        if b.name.is_empty() {
            op.to_owned()
        } else {
            format!("{op} {}", b.name)
        }
    };
    match &b.summary {
        None if succeeded => entry(out, node, &what("backup"), "done", None, None, color),
        None => {}
        Some(SummaryView::Backup(s)) => {
            let _ = writeln!(
                out,
                "{node}: {}: snapshot {} — {} files new, {} changed, {} added, {}",
                clean(&what("backup")),
                clean(short(&s.snapshot_id)),
                s.files_new,
                s.files_changed,
                output::bytes(s.data_added_bytes),
                seconds(s.duration_seconds)
            );
        }
        Some(SummaryView::Forget(f)) => {
            let _ = writeln!(
                out,
                "{node}: {}: {}",
                clean(&what("forget")),
                forget_text(f)
            );
        }
        Some(SummaryView::Check(c)) => {
            let subset = c
                .read_data_subset
                .as_ref()
                .map(|s| format!("read {s} of the data"))
                .unwrap_or_else(|| "structure only".into());
            let status = if c.ok { "ok" } else { "failed" };
            let message = if c.ok {
                subset
            } else {
                format!(
                    "{} error(s) ({subset})\n{}",
                    c.errors.len(),
                    c.errors.join("\n")
                )
            };
            entry(
                out,
                node,
                &what("check"),
                status,
                Some(&message),
                None,
                color,
            );
        }
        Some(SummaryView::Snapshots(list)) => {
            let _ = writeln!(
                out,
                "{node}: {}: {} snapshot(s)",
                clean(&what("snapshots")),
                list.len()
            );
            if !list.is_empty() {
                for line in snapshots_table(list).to_string().lines() {
                    let _ = writeln!(out, "    {}", line.trim_end());
                }
            }
        }
        Some(SummaryView::Restore(r)) => {
            let _ = writeln!(
                out,
                "{node}: {}: snapshot {} to {} — {} files, {}",
                clean(&what("restore")),
                clean(short(&r.snapshot_id)),
                clean(&r.target),
                r.files_restored,
                output::bytes(r.bytes_restored)
            );
        }
        Some(SummaryView::Drill(d)) => {
            let counts = format!(
                "verified {}/{} files, {} of snapshot {}",
                d.files_verified,
                d.files_in_snapshot,
                output::bytes(d.bytes_verified),
                short(&d.snapshot_id)
            );
            if d.problems.is_empty() {
                entry(out, node, &what("drill"), "ok", Some(&counts), None, color);
            } else {
                let message = format!(
                    "{} problem(s); {counts}\n{}",
                    d.problems.len(),
                    d.problems.join("\n")
                );
                entry(
                    out,
                    node,
                    &what("drill"),
                    "failed",
                    Some(&message),
                    None,
                    color,
                );
            }
        }
        Some(SummaryView::Snapraid(s)) => {
            let mut text = match s.operation {
                "scrub" => format!("scrubbed {}%, {} error(s)", s.percent, s.errors),
                "status" => format!(
                    "{}, {}% never scrubbed, {} error(s)",
                    if s.in_sync { "in sync" } else { "not in sync" },
                    s.percent,
                    s.errors
                ),
                _ => format!(
                    "{} added, {} removed, {} updated, {} moved, {} copied, {} restored, {} error(s){}",
                    s.added,
                    s.removed,
                    s.updated,
                    s.moved,
                    s.copied,
                    s.restored,
                    s.errors,
                    if s.in_sync { ", in sync" } else { "" }
                ),
            };
            if let Some(m) = s.message.as_deref().and_then(|m| m.lines().last()) {
                let _ = write!(text, " — {}", m.trim());
            }
            let status = if s.errors > 0 { "failed" } else { "ok" };
            let what = format!("snapraid {}", s.operation);
            entry(out, node, &what, status, Some(&text), None, color);
        }
    }
    if let Some(r) = &b.retention {
        let _ = writeln!(
            out,
            "{node}: {}: {}",
            clean(&what("retention")),
            forget_text(r)
        );
    }
}

/// The snapshot list of a `snapshots` backup result. Pure.
pub fn snapshots_table(list: &[SnapshotView]) -> output::Table<5> {
    let mut t = output::table(["ID", "TIME", "HOST", "TAGS", "PATHS"]);
    for s in list {
        t.row([
            clean(&s.short_id),
            s.time.clone().unwrap_or_else(|| "-".into()),
            clean(&s.hostname),
            clean(&s.tags.join(",")),
            clean(&s.paths.join(" ")),
        ]);
    }
    t
}

#[cfg(test)]
mod tests;
