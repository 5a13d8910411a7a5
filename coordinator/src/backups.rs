//! The backup index behind `labctl backups` (issue 5): per node and backup name, the last
//! success, the latest attempt and the latest restore drill, and their health.
//!
//! The job engine calls [`on_final`] once, when a task reaches a final state from an agent's
//! update; the changed record joins the engine's [`JobBatch`], so it is flushed together with the
//! task update. A backup task without a name is indexed under the job's name (a spec file's
//! `metadata.name`, or the schedule that fired it) when that is a valid backup name. What is indexed: `restic` and `postgres` backups (every final state is an
//! attempt; a success with a summary is the last success, and sets the declared maximum age) and
//! `drill` (the last drill, ok when it succeeded without problems). Other backup operations
//! (forget, check, snapshots, restores, snapraid) stay in the job history only. Health is
//! computed when listed ([`health`], a pure function of the record and the time), never stored.

use lab_proto::selector::Selector;
use lab_proto::store::v1::{BackupRecord, JobRecord, TaskRecord};
use lab_proto::v1::{
    backup_result, backup_task, task_result, task_spec, BackupHealth, BackupStatus, BackupTask,
    DrillSummary, TaskInfo, TaskState,
};

use crate::store::{JobBatch, Store, StoreError};

/// Longest backup name.
const MAX_NAME: usize = 63;

/// The rule for backup names (`[A-Za-z0-9._-]{1,63}`, not "." or ".."); the error says it in
/// the spec file's terms (`backup.name: ...`).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "backup.name: '{}' must be 1-{MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            name.escape_debug()
        ))
    }
}

/// Past this share of the maximum age (in percent), a backup shows amber.
const AMBER_PERCENT: u64 = 80;

/// The backup task of `job` and the name it is indexed under, if it has one.
fn named_backup(job: &JobRecord) -> Option<(&BackupTask, &str)> {
    let spec = job.spec.as_ref()?;
    let task_spec::Kind::Backup(b) = spec.task.as_ref()?.kind.as_ref()? else {
        return None;
    };
    let name = if b.name.is_empty() {
        &spec.name
    } else {
        &b.name
    };
    check_name(name).ok()?;
    Some((b, name))
}

/// Adds to `batch` the index record changed by `task` of `job` reaching a final state, if the
/// task is an indexed backup operation. Reads the previous record from `store`.
pub fn on_final(
    store: &Store,
    job: &JobRecord,
    task: &TaskRecord,
    batch: &mut JobBatch,
) -> Result<(), StoreError> {
    let (Some((backup, name)), Some(info)) = (named_backup(job), task.info.as_ref()) else {
        return Ok(());
    };
    if !indexed(backup) {
        return Ok(());
    }
    // An earlier change of the same batch wins over the stored record.
    let previous = match batch
        .backups
        .iter()
        .position(|r| r.node == info.node && r.name == name)
    {
        Some(i) => Some(batch.backups.remove(i)),
        None => store.backup(&info.node, name)?,
    };
    if let Some(rec) = record_final(previous, backup, name, &job.job_id, info) {
        batch.backups.push(rec);
    }
    Ok(())
}

/// Whether a backup task's operation is one the index follows.
fn indexed(backup: &BackupTask) -> bool {
    use backup_task::Action;
    matches!(
        backup.action,
        Some(Action::Restic(_) | Action::Postgres(_) | Action::Drill(_))
    )
}

/// The record of backup `name` after `info` (a final task state) of a task running `backup` in
/// job `job_id`; `None` when the task is not one the index follows. Pure.
pub fn record_final(
    previous: Option<BackupRecord>,
    backup: &BackupTask,
    name: &str,
    job_id: &str,
    info: &TaskInfo,
) -> Option<BackupRecord> {
    use backup_task::Action;
    let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
    let mut rec = previous.unwrap_or_else(|| BackupRecord {
        node: info.node.clone(),
        name: name.to_owned(),
        ..Default::default()
    });
    let result = match info.result.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(task_result::Kind::Backup(b)) => b.kind.as_ref(),
        _ => None,
    };
    match backup.action.as_ref()? {
        Action::Restic(_) | Action::Postgres(_) => {
            rec.max_age_ms = backup.max_age_ms;
            rec.last_attempt_unix_ms = info.finished_unix_ms;
            rec.last_attempt_state = info.state;
            rec.last_attempt_error = info.error.clone();
            rec.last_attempt_job_id = job_id.to_owned();
            if let (TaskState::Succeeded, Some(backup_result::Kind::Backup(summary))) =
                (state, result)
            {
                rec.last_success_unix_ms = info.finished_unix_ms;
                rec.last_success_job_id = job_id.to_owned();
                rec.last_success = Some(summary.clone());
            }
        }
        Action::Drill(_) => {
            // The counts and problems; the per-file list stays in the job's result.
            let drill = match result {
                Some(backup_result::Kind::Drill(d)) => Some(DrillSummary {
                    files: Vec::new(),
                    ..d.clone()
                }),
                _ => None,
            };
            rec.last_drill_unix_ms = info.finished_unix_ms;
            rec.last_drill_ok = state == TaskState::Succeeded
                && drill.as_ref().is_some_and(|d| d.problems.is_empty());
            rec.last_drill = drill;
        }
        _ => return None,
    }
    Some(rec)
}

/// Health of `rec` at `now_ms` (schedules.proto, BackupHealth). Pure.
pub fn health(rec: &BackupRecord, now_ms: i64) -> BackupHealth {
    if rec.max_age_ms == 0 {
        return BackupHealth::Unspecified;
    }
    if rec.last_success_unix_ms <= 0 {
        return BackupHealth::Red;
    }
    let age = u64::try_from(now_ms.saturating_sub(rec.last_success_unix_ms)).unwrap_or(0);
    if age > rec.max_age_ms {
        return BackupHealth::Red;
    }
    let attempt_failed =
        rec.last_attempt_unix_ms > 0 && rec.last_attempt_state != TaskState::Succeeded as i32;
    let drill_failed = rec.last_drill_unix_ms > 0 && !rec.last_drill_ok;
    let late = u128::from(age) * 100 > u128::from(rec.max_age_ms) * u128::from(AMBER_PERCENT);
    if late || attempt_failed || drill_failed {
        BackupHealth::Amber
    } else {
        BackupHealth::Green
    }
}

/// The wire view of `rec` with its health at `now_ms`. Pure.
pub fn status(rec: BackupRecord, now_ms: i64) -> BackupStatus {
    let health = health(&rec, now_ms);
    let summary = rec.last_success.unwrap_or_default();
    BackupStatus {
        node: rec.node,
        name: rec.name,
        max_age_ms: rec.max_age_ms,
        last_success_unix_ms: rec.last_success_unix_ms,
        snapshot_id: summary.snapshot_id,
        size_bytes: summary.total_bytes_processed,
        added_bytes: summary.data_added_bytes,
        last_success_job_id: rec.last_success_job_id,
        last_attempt_unix_ms: rec.last_attempt_unix_ms,
        last_attempt_state: rec.last_attempt_state,
        last_attempt_error: rec.last_attempt_error,
        last_attempt_job_id: rec.last_attempt_job_id,
        last_drill_unix_ms: rec.last_drill_unix_ms,
        last_drill_ok: rec.last_drill_ok,
        last_drill: rec.last_drill,
        health: health as i32,
    }
}

/// Every indexed backup of the nodes `selector` matches (all records, also of removed nodes,
/// when it is empty), by node and name, with health at `now_ms`.
pub fn list(
    store: &Store,
    selector: &Selector,
    now_ms: i64,
    online: crate::inventory::Online,
) -> Result<Vec<BackupStatus>, StoreError> {
    let records = store.backups()?;
    let nodes: Option<std::collections::BTreeSet<String>> = if selector.is_empty() {
        None
    } else {
        let matching = crate::inventory::select(store, selector, online)?;
        Some(matching.into_iter().map(|n| n.record.name).collect())
    };
    Ok(records
        .into_iter()
        .filter(|r| nodes.as_ref().is_none_or(|n| n.contains(&r.node)))
        .map(|r| status(r, now_ms))
        .collect())
}

#[cfg(test)]
mod tests;
