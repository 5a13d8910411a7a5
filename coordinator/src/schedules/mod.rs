//! Schedules (DESIGN §5): cron expressions with a time zone and jitter that submit a job each
//! time they fire, durably and at most once per due time, with a policy for firings missed while
//! the coordinator was down.
//!
//! `cron` parses expressions and finds the next time; `plan` decides, as pure functions, when
//! a schedule fires and what a missed firing does; `api` serves the operator RPCs; `fire` is the
//! ticker that carries out the decisions through the job engine. A firing is one job submitted
//! under an id derived from the due time ([`crate::jobs::submit_once`]) and then one store write
//! advancing the schedule, so a crash between the two re-fires harmlessly.
//!
//! Changes to schedule records (operator RPCs and firings) are serialized by one lock; nothing
//! else is kept in memory, so a restart continues from the store.

pub mod api;
pub mod cron;
pub mod fire;
pub mod plan;

pub use fire::run_ticker;

use lab_proto::v1::{MissedPolicy, ScheduleSpec};

use crate::error::ApiError;
use cron::CronTime;
use plan::{Missed, MAX_JITTER_MS};

/// In-memory part of the schedules: the lock that serializes changes to schedule records.
#[derive(Default)]
pub struct Schedules {
    lock: tokio::sync::Mutex<()>,
}

/// A schedule spec that passed [`validate`].
#[derive(Debug, Clone)]
pub struct Checked {
    /// The parsed expression in its time zone.
    pub cron: CronTime,
    /// The missed-firing policy.
    pub missed: Missed,
}

/// Checks a schedule name: `[a-z0-9][a-z0-9-]*`, at most 63 characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let max = lab_proto::limits::MAX_NAME_LEN;
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() {
        return Err("schedule name is empty; give one like 'nightly-backup'".into());
    }
    if name.len() > max || !ok_start || !ok_chars {
        return Err(format!(
            "invalid schedule name '{name}': use 1-{max} lowercase letters, digits or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// A duration for people, in the units they wrote: "90m", "1h", "1d 2h", "30s".
fn human_ms(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// Refuses a jitter above [`MAX_JITTER_MS`] or not shorter than the shortest time between two
/// firings of `cron` (from `now_ms` on): a firing could then slide past the next one. Errors
/// give durations as people write them ("jitter 90m is longer than the 1h between firings").
pub fn check_jitter(
    expr: &str,
    cron: &CronTime,
    jitter_ms: u64,
    now_ms: i64,
) -> Result<(), String> {
    if jitter_ms > MAX_JITTER_MS {
        return Err(format!(
            "jitter {} is longer than the maximum of {}; give a shorter jitter",
            human_ms(jitter_ms),
            human_ms(MAX_JITTER_MS)
        ));
    }
    let Some(gap) = cron.shortest_gap_ms(now_ms) else {
        return Ok(());
    };
    let gap = u64::try_from(gap).unwrap_or(0);
    if jitter_ms > 0 && jitter_ms >= gap {
        let relation = if jitter_ms == gap {
            "as long as"
        } else {
            "longer than"
        };
        return Err(format!(
            "jitter {} is {relation} the {} between firings of '{expr}'; give a jitter below {}",
            human_ms(jitter_ms),
            human_ms(gap),
            human_ms(gap)
        ));
    }
    Ok(())
}

/// The missed policy of the wire enum value.
pub fn missed_policy(value: i32) -> Result<Missed, String> {
    match MissedPolicy::try_from(value) {
        Ok(MissedPolicy::Unspecified | MissedPolicy::Skip) => Ok(Missed::Skip),
        Ok(MissedPolicy::RunOnce) => Ok(Missed::RunOnce),
        Err(_) => Err(format!(
            "missed policy {value} is unknown; use skip or run-once"
        )),
    }
}

/// Checks everything of `spec` before anything is stored: name, cron expression, time zone,
/// jitter, missed policy, and the job (as a submitted job is checked).
pub fn validate(spec: &ScheduleSpec) -> Result<Checked, ApiError> {
    let bad = ApiError::InvalidArgument;
    validate_name(&spec.name).map_err(bad)?;
    let cron = CronTime::parse(&spec.cron, &spec.timezone).map_err(bad)?;
    check_jitter(&spec.cron, &cron, spec.jitter_ms, crate::clock::now_ms()).map_err(bad)?;
    let missed = missed_policy(spec.missed).map_err(bad)?;
    let Some(job) = &spec.job else {
        return Err(bad(format!(
            "schedule '{}' has no job; give the job it submits",
            spec.name
        )));
    };
    crate::jobs::spec::validate(job).map_err(|e| match e {
        ApiError::InvalidArgument(m) => bad(format!("job: {m}")),
        other => other,
    })?;
    crate::jobs::secrets::refuse_in_schedule(job).map_err(|m| bad(format!("job: {m}")))?;
    Ok(Checked { cron, missed })
}

#[cfg(test)]
mod fire_tests;
#[cfg(test)]
mod tests;
