//! The schedule RPCs (create, list, get, pause/resume, delete) and the `Schedule` view, which
//! fills the last result from the job record of the last firing. `operator_api` delegates here.

use lab_proto::store::v1::ScheduleRecord;
use lab_proto::v1::{CreateScheduleRequest, JobDone, Schedule};

use super::plan::jitter;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::Coordinator;

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no schedule named '{name}'; see 'labctl schedule list'"
    ))
}

/// A fresh jitter for a schedule whose spec allows up to `max_ms`.
pub(super) fn draw_jitter(max_ms: u64) -> u64 {
    jitter(max_ms, rand::random::<u64>())
}

/// Creates a schedule (or replaces one of the same name when `replace`), first due at the
/// first cron time after now. A replaced schedule keeps its paused state and its last firing.
pub async fn create(
    coord: &Coordinator,
    created_by: &str,
    req: CreateScheduleRequest,
) -> Result<Schedule, ApiError> {
    let spec = req
        .spec
        .ok_or_else(|| ApiError::InvalidArgument("the request has no schedule spec".into()))?;
    let checked = super::validate(&spec)?;
    let now = now_ms();
    let next_due = checked.cron.next_after(now).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "cron expression '{}' never fires; check the day and month fields",
            spec.cron
        ))
    })?;
    let name = spec.name.clone();
    let mut rec = ScheduleRecord {
        next_jitter_ms: draw_jitter(spec.jitter_ms),
        spec: Some(spec),
        created_by: created_by.to_owned(),
        created_unix_ms: now,
        next_due_unix_ms: next_due,
        ..Default::default()
    };
    coord.store.ensure_room()?;
    let _guard = coord.schedules.lock.lock().await;
    let old = coord.store.schedule(&name)?;
    match old {
        Some(old) if req.replace => {
            rec.paused = old.paused;
            rec.last_fired_unix_ms = old.last_fired_unix_ms;
            rec.last_job_id = old.last_job_id;
            rec.last_error = old.last_error;
            coord.store.put_schedule(rec.clone()).await?;
            tracing::info!(schedule = %name, by = created_by, "schedule replaced");
        }
        _ => {
            coord.store.create_schedule(rec.clone()).await?;
            tracing::info!(schedule = %name, by = created_by, "schedule created");
        }
    }
    view(coord, rec)
}

/// Every schedule, by name.
pub fn list(coord: &Coordinator) -> Result<Vec<Schedule>, ApiError> {
    coord
        .store
        .schedules()?
        .into_iter()
        .map(|rec| view(coord, rec))
        .collect()
}

/// One schedule.
pub fn get(coord: &Coordinator, name: &str) -> Result<Schedule, ApiError> {
    let rec = coord.store.schedule(name)?.ok_or_else(|| not_found(name))?;
    view(coord, rec)
}

/// Pauses or resumes a schedule. Resuming continues with the first cron time after now: the
/// firings of the paused time are not made up.
pub async fn set_paused(
    coord: &Coordinator,
    name: &str,
    paused: bool,
) -> Result<Schedule, ApiError> {
    let _guard = coord.schedules.lock.lock().await;
    let mut rec = coord.store.schedule(name)?.ok_or_else(|| not_found(name))?;
    if rec.paused != paused {
        let spec = rec.spec.clone().unwrap_or_default();
        if !paused {
            let checked = super::validate(&spec)?;
            rec.next_due_unix_ms = checked.cron.next_after(now_ms()).unwrap_or(0);
            rec.next_jitter_ms = draw_jitter(spec.jitter_ms);
        }
        rec.paused = paused;
        coord.store.put_schedule(rec.clone()).await?;
        tracing::info!(schedule = %name, paused, "schedule paused state changed");
    }
    view(coord, rec)
}

/// Deletes a schedule; jobs it submitted stay.
pub async fn delete(coord: &Coordinator, name: &str) -> Result<(), ApiError> {
    let _guard = coord.schedules.lock.lock().await;
    if !coord.store.remove_schedule(name).await? {
        return Err(not_found(name));
    }
    tracing::info!(schedule = %name, "schedule deleted");
    Ok(())
}

/// The wire view of a record: next firing (jitter included; 0 when paused or never), and the
/// outcome of the last firing's job once it is done. A last job that retention has removed
/// counts as done without a result.
pub fn view(coord: &Coordinator, rec: ScheduleRecord) -> Result<Schedule, ApiError> {
    let next = match (rec.paused, rec.next_due_unix_ms) {
        (true, _) | (false, 0) => 0,
        (false, due) => due.saturating_add(i64::try_from(rec.next_jitter_ms).unwrap_or(0)),
    };
    let job = match rec.last_job_id.as_str() {
        "" => None,
        id => coord.store.job(id)?,
    };
    let last_result = job.as_ref().filter(|j| j.done).map(|j| JobDone {
        succeeded: j.succeeded_tasks,
        failed: j.failed_tasks,
        other: j
            .final_tasks
            .saturating_sub(j.succeeded_tasks)
            .saturating_sub(j.failed_tasks),
    });
    let last_done = job.as_ref().map_or(!rec.last_job_id.is_empty(), |j| j.done);
    let mut spec = rec.spec;
    if let Some(job) = spec.as_mut().and_then(|s| s.job.as_mut()) {
        crate::jobs::secrets::redact(job);
    }
    Ok(Schedule {
        spec,
        paused: rec.paused,
        created_by: rec.created_by,
        created_unix_ms: rec.created_unix_ms,
        next_unix_ms: next,
        last_fired_unix_ms: rec.last_fired_unix_ms,
        last_job_id: rec.last_job_id,
        last_done,
        last_result,
        last_error: rec.last_error,
    })
}
