//! When a schedule fires, as pure functions of its stored state and an injected "now".
//!
//! A schedule stores the due time of its next firing (`next_due`, a cron time) and the jitter
//! drawn for it; it fires at `next_due + jitter`. The ticker looks every fraction of a second:
//!
//! - before the firing time: wait;
//! - at most [`GRACE_MS`] after it (normal ticking delay, a short coordinator restart): fire
//!   for `next_due`, then continue with the cron time after `next_due`, so every due time of a
//!   short outage is fired once, late;
//! - more than [`GRACE_MS`] after it, the firing was *missed* (the coordinator was down or
//!   the schedule could not be handled). The missed policy decides: `skip` fires nothing,
//!   `run-once` fires one job now (for the first missed due time); both then continue with the
//!   first cron time after now, so a long outage never causes a burst.
//!
//! A firing's job id is derived from the schedule name and the due time ([`job_id`]), so
//! repeating a firing after a crash (job submitted, firing not yet recorded) finds the job
//! instead of submitting a second one.

use super::cron::CronTime;

/// A firing handled later than this after its firing time (due + jitter) is missed.
pub const GRACE_MS: i64 = 60_000;

/// Largest jitter a schedule may ask for.
pub const MAX_JITTER_MS: u64 = 24 * 3600 * 1000;

/// What to do with missed firings (`MissedPolicy` on the wire; unspecified = skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Fire nothing for them.
    Skip,
    /// Fire one job for all of them.
    RunOnce,
}

/// The stored state the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Paused schedules never fire.
    pub paused: bool,
    /// Due time of the next firing (Unix ms); 0 = none.
    pub next_due: i64,
    /// Jitter drawn for `next_due`, ms.
    pub jitter_ms: u64,
}

/// What the ticker does for one schedule now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due.
    Wait,
    /// Submit the job of due time `due`, then continue with `next_due` (`None`: never again).
    Fire {
        /// The due time this firing is for (its job id derives from it).
        due: i64,
        /// The following due time.
        next_due: Option<i64>,
    },
    /// Firings from `missed_since` on were missed and are skipped; continue with `next_due`.
    Skip {
        /// The first missed due time.
        missed_since: i64,
        /// The following due time.
        next_due: Option<i64>,
    },
}

/// Decides what is due at `now`.
pub fn decide(cron: &CronTime, due: Due, missed: Missed, now: i64) -> Decision {
    if due.paused || due.next_due <= 0 {
        return Decision::Wait;
    }
    let jitter = i64::try_from(due.jitter_ms).unwrap_or(i64::MAX);
    let fire_at = due.next_due.saturating_add(jitter);
    if now < fire_at {
        return Decision::Wait;
    }
    if now - fire_at <= GRACE_MS {
        return Decision::Fire {
            due: due.next_due,
            next_due: cron.next_after(due.next_due),
        };
    }
    let next_due = cron.next_after(now);
    match missed {
        Missed::Skip => Decision::Skip {
            missed_since: due.next_due,
            next_due,
        },
        Missed::RunOnce => Decision::Fire {
            due: due.next_due,
            next_due,
        },
    }
}

/// The jitter for one due time: uniform in `0..=max_ms` from the random number `random`.
pub fn jitter(max_ms: u64, random: u64) -> u64 {
    match max_ms {
        0 => 0,
        max => random % max.saturating_add(1),
    }
}

/// The job id of the firing of `schedule` for due time `due_ms`: 13 hex digits of the due time
/// (so ids sort by time like the engine's own, which start with the submit time) and the name.
pub fn job_id(schedule: &str, due_ms: i64) -> String {
    format!("{:013x}-{schedule}", due_ms.max(0))
}

/// The due time a firing's job id was made from, if it is one of `schedule`'s.
pub fn due_of_job_id(schedule: &str, job_id: &str) -> Option<i64> {
    let (hex, name) = job_id.split_once('-')?;
    if name != schedule || hex.len() != 13 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok()
}
