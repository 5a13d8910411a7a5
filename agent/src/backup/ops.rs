//! The restic operations: `backup` (with the retention policy applied after it), `forget`,
//! `check`, `snapshots` and `restore`, plus [`list`] (`restic ls --json`), which restore and
//! the drill use to pin "latest" to one snapshot id and to know its files.
//!
//! Each fills the task's `BackupResult` as far as it gets and returns why it failed.

use std::path::Path;

use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::{
    BackupResult, BackupSummary, CheckSummary, ForgetSummary, ResticBackup, ResticCheck,
    ResticForget, ResticRestore, ResticSnapshots, RestoreSummary, Retention, Snapshot,
    SnapshotList,
};

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::proc::{self, Pipeline, Ran, Step};
use super::progress::{self, Message};
use super::restic::{self, LsLine, Repo};
use super::{snapshot_or_latest, Cx};
use crate::process::FinalState;

/// Lines of a failed check's stderr reported as its errors.
const STDERR_LINES: usize = 20;

/// Opens `repo` and registers its secrets for redaction.
pub async fn open(
    cx: &mut Cx<'_>,
    repo: Option<&lab_proto::v1::ResticRepository>,
) -> Result<Repo, String> {
    let repo = Repo::open(repo).await?;
    cx.add_secrets(&repo.secrets);
    Ok(repo)
}

/// Snapshots listed in a result (restic lists the oldest first; the newest are kept), so that
/// the result stays far below the wire's message limit.
const MAX_RESULT_SNAPSHOTS: usize = 1000;

/// Error lines kept in a result, and the characters kept of each.
const MAX_RESULT_LINES: usize = 50;
const MAX_RESULT_LINE: usize = 1000;

/// How long `restic unlock` may take after a stopped restic.
const UNLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `step` (fed by `producer`; restic is one of them) through [`proc::run`]. A restic that
/// was stopped or killed leaves its lock in the repository, which would block the next
/// `check` or `forget --prune`; so then `restic unlock` runs (it removes only the locks of
/// processes that are gone), also when the task itself was stopped.
pub async fn run_restic<F>(
    cx: &mut Cx<'_>,
    repo: &Repo,
    step: &Step,
    producer: Option<&Step>,
    on_stdout: F,
) -> Pipeline
where
    F: FnMut(&mut Cx<'_>, &str),
{
    let ran = proc::run(cx, step, producer, on_stdout).await;
    let killed = |r: &Ran| {
        r.what.starts_with("restic ")
            && (r.state == FinalState::Cancelled || r.error.contains("killed by signal"))
    };
    if killed(&ran.main) || ran.producer.as_ref().is_some_and(killed) {
        unlock(cx, repo).await;
    }
    ran
}

/// `restic unlock` with a stop token of its own (the task's may have fired) and a time limit.
async fn unlock(cx: &mut Cx<'_>, repo: &Repo) {
    let stop = std::mem::replace(&mut cx.stop, CancellationToken::new());
    let step = repo.step(&["unlock"]);
    let done = tokio::time::timeout(
        UNLOCK_TIMEOUT,
        proc::run(cx, &step, None, |cx, line| cx.line(line)),
    )
    .await;
    cx.stop = stop;
    match done {
        Ok(r) if r.success() => cx.line("removed the lock left by the stopped restic"),
        Ok(r) => cx.line(&format!(
            "cannot remove the lock left by the stopped restic: {}",
            r.failure()
        )),
        Err(_) => cx.line("'restic unlock' did not finish in time; run it on the repository"),
    }
}

/// Runs a `restic backup --json` step (fed by `producer` for dumps) and returns its summary.
pub async fn run_backup(
    cx: &mut Cx<'_>,
    repo: &Repo,
    step: &Step,
    producer: Option<&Step>,
) -> Result<BackupSummary, String> {
    let mut summary = None;
    let ran = run_restic(cx, repo, step, producer, |cx, line| {
        match progress::parse(line) {
            Message::Status(p) => cx.progress(p),
            Message::Summary(s) => summary = Some(s),
            Message::Error(text) => cx.line(&text),
            Message::Other => cx.line(line),
        }
    })
    .await;
    cx.flush_progress();
    if !ran.success() {
        return Err(match &summary {
            Some(s) => format!(
                "{} (snapshot {} is incomplete)",
                ran.failure(),
                s.snapshot_id
            ),
            None => ran.failure(),
        });
    }
    summary.ok_or_else(|| format!("'{}' ended without a summary", step.what()))
}

/// `restic backup` of the task's paths, then its retention policy when it has one.
pub async fn backup(
    cx: &mut Cx<'_>,
    b: &ResticBackup,
    retention: Option<&Retention>,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, b.repo.as_ref()).await?;
    if b.paths.is_empty() {
        return Err("the backup task has no paths".to_owned());
    }
    for path in &b.paths {
        if !Path::new(path).is_absolute() {
            return Err(format!("backup path '{path}' is not absolute"));
        }
        if let Err(e) = tokio::fs::symlink_metadata(path).await {
            return Err(format!(
                "backup path {path} cannot be read on this node: {}; nothing was backed up",
                super::describe(&e)
            ));
        }
    }
    let mut args = vec!["backup".to_owned(), "--json".to_owned()];
    for e in &b.exclude {
        args.push("--exclude".to_owned());
        args.push(e.clone());
    }
    for t in &b.tags {
        args.push("--tag".to_owned());
        args.push(t.clone());
    }
    if !b.host.is_empty() {
        args.push("--host".to_owned());
        args.push(b.host.clone());
    }
    args.push("--".to_owned());
    args.extend(b.paths.iter().cloned());
    let summary = run_backup(cx, &repo, &repo.step(&args), None).await?;
    let id = summary.snapshot_id.clone();
    cx.line(&format!(
        "snapshot {id} saved: {} new, {} changed, {} unmodified files, {} bytes added",
        summary.files_new,
        summary.files_changed,
        summary.files_unmodified,
        summary.data_added_bytes
    ));
    result.kind = Some(Kind::Backup(summary));
    let only = Only {
        tags: &b.tags,
        host: &b.host,
        paths: &b.paths,
    };
    apply_retention(cx, &repo, retention, &only, result, &id).await
}

/// Which snapshots a `forget` considers: those with all these tags, of this host, with all
/// these paths (empty = any).
#[derive(Debug, Clone, Copy)]
pub struct Only<'a> {
    /// `--tag a,b`.
    pub tags: &'a [String],
    /// `--host`.
    pub host: &'a str,
    /// `--path` each.
    pub paths: &'a [String],
}

/// After a successful backup (snapshot `id`): `restic forget` with the task's policy, when it
/// has one, limited to the snapshots of this backup (its tags, host and paths), so other
/// backups in the same repository keep theirs.
pub async fn apply_retention(
    cx: &mut Cx<'_>,
    repo: &Repo,
    retention: Option<&Retention>,
    only: &Only<'_>,
    result: &mut BackupResult,
    id: &str,
) -> Result<(), String> {
    let Some(policy) = retention else {
        return Ok(());
    };
    if restic::retention_args(policy).is_empty() {
        return Ok(());
    }
    let summary = run_forget(cx, repo, policy, only).await.map_err(|e| {
        format!("snapshot {id} was saved, but applying the retention policy failed: {e}")
    })?;
    result.retention = Some(summary);
    Ok(())
}

/// Runs a restic command whose `--json` answer is one array line: returns that line ("[]" when
/// restic printed none); every other line goes to the task output.
async fn restic_json_array(
    cx: &mut Cx<'_>,
    repo: &Repo,
    args: &[String],
) -> Result<String, String> {
    let mut json = None;
    let ran = run_restic(cx, repo, &repo.step(args), None, |cx, line| {
        if json.is_none() && line.starts_with('[') {
            json = Some(line.to_owned());
        } else {
            cx.line(line);
        }
    })
    .await;
    if !ran.success() {
        return Err(ran.failure());
    }
    Ok(json.unwrap_or_else(|| "[]".to_owned()))
}

async fn run_forget(
    cx: &mut Cx<'_>,
    repo: &Repo,
    policy: &Retention,
    only: &Only<'_>,
) -> Result<ForgetSummary, String> {
    let keep = restic::retention_args(policy);
    if keep.is_empty() {
        return Err(
            "forget needs a retention policy with at least one keep-* value above 0".to_owned(),
        );
    }
    let mut args = vec!["forget".to_owned(), "--json".to_owned()];
    args.extend(keep);
    args.extend(restic::filter_args(only.tags, only.host));
    for p in only.paths {
        args.extend(["--path".to_owned(), p.clone()]);
    }
    let json = restic_json_array(cx, repo, &args).await?;
    let summary = restic::parse_forget(&json, policy.prune)?;
    cx.line(&format!(
        "retention: {} snapshots kept, {} removed{}",
        summary.kept,
        summary.removed,
        if summary.pruned {
            ", unused data pruned"
        } else {
            ""
        }
    ));
    Ok(summary)
}

/// `restic forget` with the task's retention policy.
pub async fn forget(
    cx: &mut Cx<'_>,
    f: &ResticForget,
    retention: Option<&Retention>,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, f.repo.as_ref()).await?;
    let policy = retention.cloned().unwrap_or_default();
    let only = Only {
        tags: &f.tags,
        host: &f.host,
        paths: &[],
    };
    let summary = run_forget(cx, &repo, &policy, &only).await?;
    result.kind = Some(Kind::Forget(summary));
    Ok(())
}

/// `restic check`, reading a subset of the data when asked.
pub async fn check(
    cx: &mut Cx<'_>,
    c: &ResticCheck,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, c.repo.as_ref()).await?;
    let mut args = vec!["check".to_owned()];
    if !c.read_data_subset.is_empty() {
        args.push(format!("--read-data-subset={}", c.read_data_subset));
    }
    let mut errors = Vec::new();
    let ran = run_restic(cx, &repo, &repo.step(&args), None, |cx, line| {
        let lower = line.to_ascii_lowercase();
        if lower.contains("error") && !lower.contains("no errors were found") {
            errors.push(cx.redact(line.trim()));
        }
        cx.line(line);
    })
    .await;
    if !ran.success() {
        // restic's last stderr lines say why the check failed.
        let lines = ran.main.stderr_lines();
        errors.extend_from_slice(&lines[lines.len().saturating_sub(STDERR_LINES)..]);
    }
    result.kind = Some(Kind::Check(CheckSummary {
        ok: ran.success(),
        read_data_subset: c.read_data_subset.clone(),
        errors: errors
            .iter()
            .take(MAX_RESULT_LINES)
            .map(|e| e.chars().take(MAX_RESULT_LINE).collect())
            .collect(),
    }));
    if ran.success() {
        Ok(())
    } else {
        Err(format!("restic check found problems: {}", ran.failure()))
    }
}

/// `restic snapshots --json`.
pub async fn snapshots(
    cx: &mut Cx<'_>,
    s: &ResticSnapshots,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, s.repo.as_ref()).await?;
    let mut args = vec!["snapshots".to_owned(), "--json".to_owned()];
    args.extend(restic::filter_args(&s.tags, &s.host));
    let json = restic_json_array(cx, &repo, &args).await?;
    let list = restic::parse_snapshots(&json)?;
    for snap in &list {
        cx.line(&format!(
            "{} {} {} [{}]",
            snap.short_id,
            snap.hostname,
            snap.paths.join(","),
            snap.tags.join(",")
        ));
    }
    let mut list = list;
    if list.len() > MAX_RESULT_SNAPSHOTS {
        let older = list.len() - MAX_RESULT_SNAPSHOTS;
        list.drain(..older);
        cx.line(&format!(
            "the result lists the newest {MAX_RESULT_SNAPSHOTS} snapshots; {older} older ones are in the output above"
        ));
    }
    result.kind = Some(Kind::Snapshots(SnapshotList { snapshots: list }));
    Ok(())
}

/// A snapshot and its regular files (path inside the snapshot, size).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The snapshot listed ("latest" resolved).
    pub snapshot: Snapshot,
    /// Its regular files.
    pub files: Vec<(String, u64)>,
}

/// `restic ls --json SNAPSHOT` (with the tag and host filters for "latest").
pub async fn list(
    cx: &mut Cx<'_>,
    repo: &Repo,
    snapshot: &str,
    tags: &[String],
    host: &str,
) -> Result<Listing, String> {
    let mut args = vec!["ls".to_owned(), "--json".to_owned()];
    args.extend(restic::filter_args(tags, host));
    args.push("--".to_owned());
    args.push(snapshot_or_latest(snapshot).to_owned());
    let mut listing = Listing::default();
    let mut found = false;
    let mut bad = None;
    let ran = run_restic(cx, repo, &repo.step(&args), None, |cx, line| {
        if !line.starts_with('{') {
            cx.line(line);
            return;
        }
        match restic::parse_ls_line(line) {
            Ok(LsLine::Snapshot(s)) if !found => {
                found = true;
                listing.snapshot = s;
            }
            Ok(LsLine::File { path, size }) => listing.files.push((path, size)),
            Ok(_) => {}
            Err(e) => bad = bad.take().or(Some(e)),
        }
    })
    .await;
    if !ran.success() {
        return Err(ran.failure());
    }
    if let Some(e) = bad {
        return Err(e);
    }
    if !found {
        return Err(format!(
            "no snapshot '{}' in the repository",
            snapshot_or_latest(snapshot)
        ));
    }
    Ok(listing)
}

/// Whether `path` (inside the snapshot) is selected by restore's `include` list.
pub fn included(path: &str, include: &[String]) -> bool {
    include.is_empty()
        || include.iter().any(|i| {
            let i = i.trim_end_matches('/');
            path == i
                || path
                    .strip_prefix(i)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// `restic restore` of one snapshot into `target`.
pub async fn restore(
    cx: &mut Cx<'_>,
    r: &ResticRestore,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, r.repo.as_ref()).await?;
    let listing = list(cx, &repo, &r.snapshot, &r.tags, &r.host).await?;
    let id = listing.snapshot.id.clone();
    let (target, _) = super::prepare_dir(&r.target, "restore target").await?;
    let mut args = vec![
        "restore".to_owned(),
        "--target".to_owned(),
        target.display().to_string(),
    ];
    for i in &r.include {
        args.push("--include".to_owned());
        args.push(i.clone());
    }
    args.push("--".to_owned());
    args.push(id.clone());
    let ran = run_restic(cx, &repo, &repo.step(&args), None, |cx, line| cx.line(line)).await;
    let selected = listing
        .files
        .iter()
        .filter(|(p, _)| included(p, &r.include));
    let (files, bytes) = selected.fold((0u64, 0u64), |(n, b), (_, s)| (n + 1, b + s));
    result.kind = Some(Kind::Restore(RestoreSummary {
        snapshot_id: listing.snapshot.short_id.clone(),
        target: r.target.clone(),
        files_restored: if ran.success() { files } else { 0 },
        bytes_restored: if ran.success() { bytes } else { 0 },
    }));
    if !ran.success() {
        return Err(ran.failure());
    }
    cx.line(&format!(
        "restored {files} files ({bytes} bytes) of snapshot {} into {}",
        listing.snapshot.short_id, r.target
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_selection() {
        assert!(included("/a/b", &[]));
        assert!(included("/a/b", &["/a".into()]));
        assert!(included("/a/b", &["/a/".into()]));
        assert!(included("/a/b", &["/a/b".into()]));
        assert!(!included("/ab/c", &["/a".into()]));
        assert!(!included("/c", &["/a".into(), "/b".into()]));
    }
}
