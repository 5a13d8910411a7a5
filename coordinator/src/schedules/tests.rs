//! Unit tests of the pure parts: cron parsing and next times, the firing decision (on time,
//! late within grace, missed with skip and run-once, paused), jitter, job ids, validation.

use lab_proto::v1::{task_spec, ExecTask, JobSpec, MissedPolicy, ScheduleSpec, TaskSpec};

use super::cron::CronTime;
use super::plan::{decide, due_of_job_id, jitter, job_id, Decision, Due, Missed, GRACE_MS};
use super::*;

/// 2026-11-26T10:00:00Z.
const T0: i64 = 1_795_687_200_000;

fn cron(expr: &str) -> CronTime {
    CronTime::parse(expr, "").unwrap()
}

fn due(next_due: i64, jitter_ms: u64) -> Due {
    Due {
        paused: false,
        next_due,
        jitter_ms,
    }
}

#[test]
fn five_and_six_fields_and_next_times() {
    let every_3s = cron("*/3 * * * * *");
    assert_eq!(every_3s.next_after(T0), Some(T0 + 3_000));
    assert_eq!(every_3s.next_after(T0 + 1), Some(T0 + 3_000));
    assert_eq!(every_3s.next_after(T0 + 2_999), Some(T0 + 3_000));
    let hourly = cron("0 * * * *");
    assert_eq!(hourly.next_after(T0), Some(T0 + 3_600_000));
    assert_eq!(hourly.next_after(T0 - 1), Some(T0));
    assert_eq!(cron("@daily").next_after(T0), Some(T0 + 14 * 3_600_000));
}

#[test]
fn time_zones_shift_the_firing() {
    // 02:00 in Berlin is 01:00 UTC in winter.
    let berlin = CronTime::parse("0 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(berlin.next_after(T0), Some(T0 + 15 * 3_600_000));
    let utc = CronTime::parse("0 2 * * *", "UTC").unwrap();
    assert_eq!(utc.next_after(T0), Some(T0 + 16 * 3_600_000));
}

#[test]
fn bad_expressions_and_zones_are_named() {
    let err = CronTime::parse("x", "").unwrap_err();
    assert!(
        err.starts_with("cron expression 'x': has 1 field(s)"),
        "{err}"
    );
    let err = CronTime::parse("61 * * * *", "").unwrap_err();
    assert!(err.starts_with("cron expression '61 * * * *': "), "{err}");
    let err = CronTime::parse("* * * * * * 2030", "").unwrap_err();
    assert!(err.contains("7 field(s)"), "{err}");
    let err = CronTime::parse("* * * * *", "Mars/Olympus").unwrap_err();
    assert_eq!(
        err,
        "unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin or UTC"
    );
}

#[test]
fn fires_on_time_and_late_within_grace() {
    let c = cron("*/3 * * * * *");
    assert_eq!(decide(&c, due(T0, 0), Missed::Skip, T0 - 1), Decision::Wait);
    let fire = Decision::Fire {
        due: T0,
        next_due: Some(T0 + 3_000),
    };
    assert_eq!(decide(&c, due(T0, 0), Missed::Skip, T0), fire);
    // A short outage: the due time is fired late, and the next one follows it.
    assert_eq!(decide(&c, due(T0, 0), Missed::Skip, T0 + GRACE_MS), fire);
}

#[test]
fn jitter_delays_the_firing_and_the_grace() {
    let c = cron("*/3 * * * * *");
    assert_eq!(
        decide(&c, due(T0, 500), Missed::Skip, T0 + 499),
        Decision::Wait
    );
    assert!(matches!(
        decide(&c, due(T0, 500), Missed::Skip, T0 + 500),
        Decision::Fire { due: T0, .. }
    ));
    assert!(matches!(
        decide(&c, due(T0, 500), Missed::Skip, T0 + 500 + GRACE_MS),
        Decision::Fire { due: T0, .. }
    ));
}

#[test]
fn missed_firings_skip_or_run_once_then_continue_after_now() {
    let c = cron("0 * * * *");
    let now = T0 + 5 * 3_600_000 + 60_000; // 5 hours and a minute after the due time
    assert_eq!(
        decide(&c, due(T0, 0), Missed::Skip, now),
        Decision::Skip {
            missed_since: T0,
            next_due: Some(T0 + 6 * 3_600_000)
        }
    );
    assert_eq!(
        decide(&c, due(T0, 0), Missed::RunOnce, now),
        Decision::Fire {
            due: T0,
            next_due: Some(T0 + 6 * 3_600_000)
        }
    );
    // Just past the grace is missed.
    assert!(matches!(
        decide(&c, due(T0, 0), Missed::Skip, T0 + GRACE_MS + 1),
        Decision::Skip { .. }
    ));
}

#[test]
fn paused_or_finished_schedules_wait() {
    let c = cron("* * * * * *");
    let paused = Due {
        paused: true,
        ..due(T0, 0)
    };
    assert_eq!(decide(&c, paused, Missed::RunOnce, T0 + 10), Decision::Wait);
    assert_eq!(decide(&c, due(0, 0), Missed::RunOnce, T0), Decision::Wait);
}

#[test]
fn jitter_stays_in_range() {
    assert_eq!(jitter(0, 12345), 0);
    assert_eq!(jitter(1000, 1000), 1000);
    assert_eq!(jitter(1000, 1001), 0);
    assert!((0..200).all(|r| jitter(30_000, rand::random::<u64>().wrapping_add(r)) <= 30_000));
    assert_eq!(jitter(u64::MAX, 7), 7);
}

#[test]
fn job_ids_are_deterministic_and_sort_by_due_time() {
    let a = job_id("backup", T0);
    assert_eq!(a, job_id("backup", T0));
    assert_eq!(a, format!("{T0:013x}-backup"));
    assert!(job_id("backup", T0 + 1) > a);
    assert_eq!(due_of_job_id("backup", &a), Some(T0));
    assert_eq!(due_of_job_id("other", &a), None);
    assert_eq!(due_of_job_id("backup", "019ac1234abcd00ff00"), None);
}

fn spec() -> ScheduleSpec {
    ScheduleSpec {
        name: "nightly".into(),
        cron: "0 3 * * *".into(),
        timezone: "Europe/Berlin".into(),
        jitter_ms: 60_000,
        missed: MissedPolicy::RunOnce as i32,
        job: Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: vec!["true".into()],
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
    }
}

fn refusal(change: impl FnOnce(&mut ScheduleSpec)) -> String {
    let mut s = spec();
    change(&mut s);
    match validate(&s) {
        Err(ApiError::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn validation_names_the_problem() {
    let ok = validate(&spec()).unwrap();
    assert_eq!(ok.missed, Missed::RunOnce);
    assert!(refusal(|s| s.name = "Nightly".into()).contains("invalid schedule name 'Nightly'"));
    assert!(refusal(|s| s.name = "-x".into()).contains("invalid schedule name"));
    assert!(refusal(|s| s.name = "a".repeat(64)).contains("invalid schedule name"));
    assert!(refusal(|s| s.name.clear()).contains("schedule name is empty"));
    assert!(refusal(|s| s.cron = "every day".into()).starts_with("cron expression 'every day'"));
    assert!(refusal(|s| s.timezone = "Berlin".into()).contains("unknown time zone 'Berlin'"));
    assert_eq!(
        refusal(|s| s.jitter_ms = MAX_JITTER_MS + 1000),
        "jitter 1d 1s is longer than the maximum of 1d; give a shorter jitter"
    );
    assert!(refusal(|s| s.missed = 9).contains("missed policy 9"));
    assert!(refusal(|s| s.job = None).contains("has no job"));
    assert!(refusal(|s| s.job.as_mut().unwrap().selector = "a in (".into()).starts_with("job: "));
    assert!(validate_name(&"a".repeat(63)).is_ok());
    assert_eq!(missed_policy(0), Ok(Missed::Skip));
}

#[test]
fn an_expression_that_never_fires_has_no_next_time() {
    let started = std::time::Instant::now();
    assert_eq!(cron("0 0 30 2 *").next_after(T0), None);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn jitter_errors_say_what_is_wrong_in_the_users_units() {
    let hourly = |jitter_ms| {
        refusal(|s| {
            s.cron = "0 * * * *".into();
            s.jitter_ms = jitter_ms;
        })
    };
    assert_eq!(
        hourly(90 * 60_000),
        "jitter 1h 30m is longer than the 1h between firings of '0 * * * *'; give a jitter below 1h"
    );
    assert!(hourly(3_600_000).contains("jitter 1h is as long as the 1h between firings"));
    let ok = |cron: &str, jitter_ms| {
        let mut s = spec();
        s.cron = cron.into();
        s.jitter_ms = jitter_ms;
        validate(&s).is_ok()
    };
    assert!(ok("0 * * * *", 59 * 60_000));
    // Weekdays at 03:00: the shortest gap is one day (not the weekend's three).
    assert!(!ok("0 3 * * 1-5", 25 * 3_600_000));
    assert!(ok("0 3 * * 1-5", 12 * 3_600_000));
    // Every 30 seconds: a 45s jitter would overtake the next firing.
    assert!(refusal(|s| {
        s.cron = "*/30 * * * * *".into();
        s.jitter_ms = 45_000;
    })
    .starts_with("jitter 45s is longer than the 30s between firings"));
    // Fires at most once: no gap to exceed.
    assert!(ok("0 0 29 2 *", MAX_JITTER_MS));
}

#[test]
fn cron_errors_name_the_field_and_its_range() {
    let bad = |cron: &str| {
        refusal(|s| {
            s.cron = cron.into();
        })
    };
    assert_eq!(
        bad("0 25 * * *"),
        "cron expression '0 25 * * *': hour field '25' is not valid; hour values are 0-23"
    );
    assert!(
        bad("61 * * * * *").contains("second field '61'"),
        "{}",
        bad("61 * * * * *")
    );
    assert!(
        bad("0 3 * 13 *").contains("month field '13'"),
        "{}",
        bad("0 3 * 13 *")
    );
    assert!(bad("0 3 * * funday").contains("day of week field 'funday'"));
    assert!(bad("0 3 * *").contains("has 4 field(s)"));
}
