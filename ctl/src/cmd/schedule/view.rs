//! How labctl shows a schedule: the stable JSON/YAML view and the `schedule list` table
//! (NAME, CRON, TZ, PAUSED, NEXT, LAST, LAST JOB, RESULT). Pure.

use lab_proto::v1::{MissedPolicy, Schedule};
use serde::Serialize;

use crate::cmd::jobs::view::describe;
use crate::output;

/// Width of the RESULT column before an error is cut.
const RESULT_WIDTH: usize = 60;

/// A schedule as labctl prints it (JSON field names are stable).
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// IANA time zone ("UTC" when none was given).
    pub timezone: String,
    /// Largest random delay of a firing, ms.
    pub jitter_ms: u64,
    /// "skip" or "run-once".
    pub missed: &'static str,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// Next firing, jitter included (RFC 3339); null when paused or never.
    pub next: Option<String>,
    /// Last firing.
    pub last_fired: Option<String>,
    /// Job of the last firing.
    pub last_job_id: Option<String>,
    /// "running", "succeeded" or "failed" for the last job, "removed" once retention deleted
    /// it; null without one.
    pub last_result: Option<&'static str>,
    /// Tasks of the last job that succeeded, once it is done.
    pub last_succeeded: Option<u32>,
    /// Tasks of the last job that did not succeed, once it is done.
    pub last_failed: Option<u32>,
    /// Why the last firing submitted no job.
    pub last_error: Option<String>,
    /// Who created (or last replaced) it.
    pub created_by: String,
    /// When.
    pub created: Option<String>,
    /// Selector of the job.
    pub selector: String,
    /// Task kind of the job.
    pub kind: &'static str,
    /// One-line description of the job's task.
    pub description: String,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        let spec = s.spec.clone().unwrap_or_default();
        let job = spec.job.clone().unwrap_or_default();
        let (kind, description) = describe(&job);
        let done = s.last_result.filter(|_| s.last_done);
        let last_result = match (s.last_job_id.is_empty(), s.last_done, &done) {
            (true, _, _) => None,
            (false, false, _) => Some("running"),
            (false, true, None) => Some("removed"),
            (false, true, Some(d)) if d.failed == 0 && d.other == 0 => Some("succeeded"),
            (false, true, Some(_)) => Some("failed"),
        };
        ScheduleView {
            name: spec.name,
            cron: spec.cron,
            timezone: match spec.timezone.as_str() {
                "" => "UTC".into(),
                tz => tz.into(),
            },
            jitter_ms: spec.jitter_ms,
            missed: match MissedPolicy::try_from(spec.missed) {
                Ok(MissedPolicy::RunOnce) => "run-once",
                _ => "skip",
            },
            paused: s.paused,
            next: output::time(s.next_unix_ms),
            last_fired: output::time(s.last_fired_unix_ms),
            last_job_id: Some(s.last_job_id.clone()).filter(|j| !j.is_empty()),
            last_result,
            last_succeeded: done.map(|d| d.succeeded),
            last_failed: done.map(|d| d.failed + d.other),
            last_error: Some(s.last_error.clone()).filter(|e| !e.is_empty()),
            created_by: s.created_by.clone(),
            created: output::time(s.created_unix_ms),
            selector: job.selector,
            kind,
            description,
        }
    }
}

/// "in 3s" until Unix ms `at`; "now" once it has passed.
pub fn until(at: i64, now_ms: i64) -> String {
    match at - now_ms {
        d if d <= 0 => "now".into(),
        d => format!("in {}", output::human_secs((d as u64).div_ceil(1000))),
    }
}

/// The RESULT cell: the last job's outcome, or why the last firing submitted none.
fn result_cell(v: &ScheduleView) -> String {
    if let Some(e) = &v.last_error {
        let cell = format!("error: {e}");
        if cell.chars().count() <= RESULT_WIDTH {
            return cell;
        }
        return cell.chars().take(RESULT_WIDTH - 3).collect::<String>() + "...";
    }
    match (v.last_result, v.last_succeeded, v.last_failed) {
        (Some("failed"), Some(ok), Some(bad)) => format!("failed ({bad} of {})", ok + bad),
        (Some(r), _, _) => r.to_owned(),
        (None, _, _) => "-".into(),
    }
}

/// The `labctl schedule list` table.
pub fn table(schedules: &[ScheduleView], now_ms: i64) -> output::Table<8> {
    let mut table = output::table([
        "NAME", "CRON", "TZ", "PAUSED", "NEXT", "LAST", "LAST JOB", "RESULT",
    ]);
    for v in schedules {
        let next = match (v.paused, &v.next) {
            (true, _) => "paused".to_owned(),
            (false, None) => "-".to_owned(),
            (false, Some(t)) => until(output::unix_ms(Some(t)), now_ms),
        };
        table.row([
            v.name.clone(),
            v.cron.clone(),
            v.timezone.clone(),
            if v.paused { "yes" } else { "no" }.to_owned(),
            next,
            output::age(output::unix_ms(v.last_fired.as_deref()), now_ms),
            v.last_job_id.clone().unwrap_or_else(|| "-".into()),
            result_cell(v),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::{JobDone, ScheduleSpec};

    use super::*;

    const NOW: i64 = 1_795_687_200_000;

    fn schedule(last_job: &str, done: Option<JobDone>, error: &str) -> Schedule {
        Schedule {
            spec: Some(ScheduleSpec {
                name: "tick".into(),
                cron: "*/3 * * * * *".into(),
                missed: MissedPolicy::RunOnce as i32,
                ..Default::default()
            }),
            next_unix_ms: NOW + 2_500,
            last_fired_unix_ms: if last_job.is_empty() && error.is_empty() {
                0
            } else {
                NOW - 4_000
            },
            last_job_id: last_job.into(),
            last_done: done.is_some(),
            last_result: done,
            last_error: error.into(),
            ..Default::default()
        }
    }

    fn row(s: Schedule) -> String {
        table(&[ScheduleView::from(&s)], NOW).to_string()
    }

    #[test]
    fn list_rows_show_next_last_and_result() {
        let never = row(schedule("", None, ""));
        assert!(
            never.contains("NAME") && never.contains("RESULT"),
            "{never}"
        );
        let line = never.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            ["tick", "*/3", "*", "*", "*", "*", "*", "UTC", "no", "in", "2s", "-", "-", "-"]
        );
        let running = row(schedule("j1", None, ""));
        assert!(
            running.contains("4s ago") && running.contains("j1") && running.contains("running"),
            "{running}"
        );
        let ok = JobDone {
            succeeded: 2,
            failed: 0,
            other: 0,
        };
        assert!(row(schedule("j1", Some(ok), "")).contains("succeeded"));
        let bad = JobDone {
            succeeded: 1,
            failed: 1,
            other: 1,
        };
        assert!(row(schedule("j1", Some(bad), "")).contains("failed (2 of 3)"));
        let err = row(schedule(
            "",
            None,
            "selector 'x' matched no node; no job was submitted",
        ));
        assert!(err.contains("error: selector 'x' matched no node"), "{err}");
        let mut removed = schedule("j0", None, "");
        removed.last_done = true;
        assert!(row(removed).contains("removed"));
        let mut paused = schedule("", None, "");
        paused.paused = true;
        assert!(row(paused).contains("paused"));
    }

    #[test]
    fn the_view_names_its_fields() {
        let v = ScheduleView::from(&schedule(
            "j1",
            Some(JobDone {
                succeeded: 1,
                failed: 0,
                other: 0,
            }),
            "",
        ));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["missed"], "run-once");
        assert_eq!(json["timezone"], "UTC");
        assert_eq!(json["last_result"], "succeeded");
        assert_eq!(json["last_succeeded"], 1);
        assert_eq!(json["last_job_id"], "j1");
        assert!(json["last_error"].is_null());
        assert_eq!(until(NOW + 1, NOW), "in 1s");
        assert_eq!(until(NOW - 1, NOW), "now");
    }
}
