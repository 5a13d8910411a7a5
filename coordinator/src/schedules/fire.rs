//! The schedule ticker: every [`TICK`] it reads the schedules from the store, asks
//! [`plan::decide`] what is due, and carries it out — submit the firing's job under its
//! deterministic id, then record the firing (next due time, fresh jitter, last job) in one
//! flushed write. A store failure leaves the record as it was, so the next tick tries the
//! same firing again and finds the job if it was created.

use std::sync::Arc;
use std::time::Duration;

use lab_proto::store::v1::ScheduleRecord;

use super::api::draw_jitter;
use super::plan::{self, Decision, Due};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::jobs::Submitted;
use crate::state::Coordinator;
use crate::store::StoreError;

/// How often the ticker looks; a firing starts at most this late (plus the submit itself).
pub const TICK: Duration = Duration::from_millis(250);

/// Most firings of one schedule handled in one tick (catching up after a short outage).
const MAX_FIRINGS_PER_TICK: usize = 100;

/// Runs until shutdown.
pub async fn run_ticker(coord: Arc<Coordinator>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = coord.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let schedules = match coord.store.schedules() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot list schedules");
                continue;
            }
        };
        let now = now_ms();
        for rec in schedules.into_iter().filter(|r| may_be_due(r, now)) {
            let name = rec.spec.map(|s| s.name).unwrap_or_default();
            for _ in 0..MAX_FIRINGS_PER_TICK {
                match step(&coord, &name, now_ms()).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!(schedule = %name, error = %e, "schedule firing failed; retrying");
                        break;
                    }
                }
            }
        }
    }
}

/// A cheap look at a listed record, so that only schedules that may be due take the lock and
/// are parsed; [`step`] decides.
fn may_be_due(rec: &ScheduleRecord, now: i64) -> bool {
    let jitter = i64::try_from(rec.next_jitter_ms).unwrap_or(i64::MAX);
    !rec.paused && rec.next_due_unix_ms != 0 && now >= rec.next_due_unix_ms.saturating_add(jitter)
}

/// Handles what is due of schedule `name` at `now`; returns whether a firing or skip was
/// recorded (the caller then looks again, as more due times may have passed).
pub async fn step(coord: &Coordinator, name: &str, now: i64) -> Result<bool, StoreError> {
    let _guard = coord.schedules.lock.lock().await;
    let Some(mut rec) = coord.store.schedule(name)? else {
        return Ok(false);
    };
    let spec = rec.spec.clone().unwrap_or_default();
    let checked = match super::validate(&spec) {
        Ok(c) => c,
        Err(e) if !rec.paused && rec.next_due_unix_ms != 0 => {
            // Stored by an older version with looser checks: stop it, and say why.
            tracing::error!(schedule = %name, error = %e, "stored schedule is invalid; it will not fire");
            rec.next_due_unix_ms = 0;
            rec.last_error = format!("the schedule is invalid and does not fire: {e}");
            coord.store.put_schedule(rec).await?;
            return Ok(false);
        }
        Err(_) => return Ok(false),
    };
    let due = Due {
        paused: rec.paused,
        next_due: rec.next_due_unix_ms,
        jitter_ms: rec.next_jitter_ms,
    };
    match plan::decide(&checked.cron, due, checked.missed, now) {
        Decision::Wait => return Ok(false),
        Decision::Skip {
            missed_since,
            next_due,
        } => {
            tracing::warn!(schedule = %name, missed_since, "missed firings skipped (missed policy: skip)");
            advance(&mut rec, next_due);
        }
        Decision::Fire { due, next_due } => {
            fire(coord, &mut rec, due).await?;
            rec.last_fired_unix_ms = now;
            advance(&mut rec, next_due);
        }
    }
    coord.store.put_schedule(rec).await?;
    Ok(true)
}

fn advance(rec: &mut ScheduleRecord, next_due: Option<i64>) {
    rec.next_due_unix_ms = next_due.unwrap_or(0);
    rec.next_jitter_ms = draw_jitter(rec.spec.as_ref().map_or(0, |s| s.jitter_ms));
}

/// Submits the job of the firing for `due` and notes the outcome in `rec` (not yet stored).
async fn fire(coord: &Coordinator, rec: &mut ScheduleRecord, due: i64) -> Result<(), StoreError> {
    let spec = rec.spec.clone().unwrap_or_default();
    let mut job = spec.job.unwrap_or_default();
    if job.name.is_empty() {
        job.name = spec.name.clone();
    }
    let selector = job.selector.clone();
    let job_id = plan::job_id(&spec.name, due);
    let by = format!("schedule:{}", spec.name);
    let outcome = crate::jobs::submit_once(&coord.job_cx(), &by, job, job_id.clone()).await;
    let (last_job_id, last_error) = match outcome {
        Ok(Submitted::Created(..) | Submitted::Existed(_)) => (job_id, String::new()),
        Ok(Submitted::NoNodes(_)) => (
            String::new(),
            format!("selector '{selector}' matched no node; no job was submitted"),
        ),
        Err(ApiError::Store(e)) => return Err(e),
        Err(e) => (String::new(), format!("the job was refused: {e}")),
    };
    if last_error.is_empty() {
        tracing::info!(schedule = %spec.name, job = %last_job_id, due, "schedule fired");
    } else {
        tracing::warn!(schedule = %spec.name, due, error = %last_error, "schedule fired without a job");
    }
    rec.last_job_id = last_job_id;
    rec.last_error = last_error;
    Ok(())
}
