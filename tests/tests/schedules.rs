//! Schedules end to end with a real coordinator, agent and labctl: firing a few seconds apart,
//! a coordinator crash (kill -9) and restart without a double or lost firing, pause/resume,
//! delete, `labctl apply` of a Schedule document, a selector that matches nothing, and bad
//! input refused with exit code 2 and nothing created.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lab_tests::schedule_runs::{
    assert_each_due_time_fired_once, create_tick, fired, job_file, ms_of, now_ms,
};
use lab_tests::{stderr, wait_until, Cluster};
use serde_json::Value;

fn ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.labctl(args);
    assert!(out.status.success(), "labctl {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&ok(c, args)).unwrap()
}

fn schedule_json(c: &Cluster, name: &str) -> Value {
    json(c, &["schedule", "show", name, "-o", "json"])
}

#[test]
fn fires_every_two_seconds_and_a_crash_neither_doubles_nor_loses_a_firing() {
    let mut c = Cluster::builder().agents(1).start();
    let marks = c.tmp.path().join("runs");
    let created = create_tick(&c.coord.admin_config(), c.tmp.path(), &marks);
    assert!(
        created.starts_with("schedule tick created, next run "),
        "{created}"
    );

    wait_until(
        || fired(&c.coord.admin_config(), "tick").len() >= 2,
        Duration::from_secs(15),
        "two firings",
    );
    c.coord.stop(true); // kill -9, possibly between a submit and its record
                        // Stay down over two due times.
    let first_missed = (now_ms() / 2_000 + 1) * 2_000;
    let missed = [first_missed, first_missed + 2_000];
    wait_until(
        || now_ms() > missed[1] + 200,
        Duration::from_secs(8),
        "two due times passing while the coordinator is down",
    );
    let restarted_at = now_ms();
    c.coord.start();
    let before = fired(&c.coord.admin_config(), "tick").len();
    wait_until(
        || fired(&c.coord.admin_config(), "tick").len() >= before + 3,
        Duration::from_secs(20),
        "three more firings after the restart",
    );
    ok(&c, &["schedule", "pause", "tick"]);
    wait_until(
        || {
            fired(&c.coord.admin_config(), "tick")
                .iter()
                .all(|(_, j)| j["done"] == true)
        },
        Duration::from_secs(20),
        "every fired job done",
    );

    // One job per due time, every due time from the first to the last, each ran once.
    let jobs = fired(&c.coord.admin_config(), "tick");
    assert_each_due_time_fired_once(&jobs, 2_000, &marks);
    // The due times that passed during the outage were fired once each, late (within the
    // grace), not skipped.
    for due in missed {
        let late: Vec<&Value> = jobs
            .iter()
            .filter(|(d, _)| *d == due)
            .map(|(_, j)| j)
            .collect();
        assert_eq!(late.len(), 1, "due {due} in {jobs:?}");
        assert!(ms_of(&late[0]["submitted"]) >= restarted_at / 1_000 * 1_000);
    }
    // The list shows the last run and its result; the paused schedule has no next run.
    let last = fired(&c.coord.admin_config(), "tick").pop().unwrap().1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = schedule_json(&c, "tick");
    assert_eq!(s["last_job_id"], last.as_str(), "{s}");
    assert_eq!(s["last_result"], "succeeded", "{s}");
    assert_eq!(s["paused"], true);
    assert!(s["next"].is_null(), "{s}");
    let table = ok(&c, &["schedule", "list"]);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("tick "))
        .unwrap();
    for cell in [
        "*/2 * * * * *",
        "UTC",
        "yes",
        "paused",
        "ago",
        last.as_str(),
        "succeeded",
    ] {
        assert!(row.contains(cell), "{cell:?} missing in {row:?}\n{table}");
    }
    ok(&c, &["schedule", "resume", "tick"]);
    let table = ok(&c, &["schedule", "list"]);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("tick "))
        .unwrap();
    assert!(row.contains(" no ") && row.contains(" in "), "{row}");
}

#[test]
fn pause_stops_firing_resume_does_not_make_up_and_delete_removes() {
    let c = Cluster::builder().agents(1).start();
    let marks = c.tmp.path().join("runs");
    let tick = job_file(c.tmp.path(), "tick", &marks);
    let clock = job_file(c.tmp.path(), "clock", &c.tmp.path().join("clock-runs"));
    for (name, file) in [("tick", &tick), ("clock", &clock)] {
        ok(
            &c,
            &[
                "schedule",
                "create",
                name,
                "--cron",
                "* * * * * *",
                "-f",
                file.to_str().unwrap(),
            ],
        );
    }
    wait_until(
        || !fired(&c.coord.admin_config(), "tick").is_empty(),
        Duration::from_secs(10),
        "tick fired",
    );
    let paused = ok(&c, &["schedule", "pause", "tick"]);
    assert_eq!(paused.trim(), "schedule tick paused");
    let at_pause = fired(&c.coord.admin_config(), "tick").len();
    // The clock schedule goes on firing; tick does not.
    let clock_at_pause = fired(&c.coord.admin_config(), "clock").len();
    wait_until(
        || fired(&c.coord.admin_config(), "clock").len() >= clock_at_pause + 4,
        Duration::from_secs(15),
        "four clock firings while tick is paused",
    );
    assert_eq!(
        fired(&c.coord.admin_config(), "tick").len(),
        at_pause,
        "tick fired while paused"
    );

    let resumed_at = now_ms();
    let resumed = ok(&c, &["schedule", "resume", "tick"]);
    assert!(
        resumed.starts_with("schedule tick resumed, next run "),
        "{resumed}"
    );
    wait_until(
        || fired(&c.coord.admin_config(), "tick").len() > at_pause,
        Duration::from_secs(10),
        "tick fires again after resume",
    );
    // No burst for the paused seconds: every new firing is for a time after the resume.
    for (due, _) in fired(&c.coord.admin_config(), "tick")
        .into_iter()
        .skip(at_pause)
    {
        assert!(
            due > resumed_at - 1_000,
            "made-up firing for {due} (resumed at {resumed_at})"
        );
    }

    let deleted = ok(&c, &["schedule", "delete", "tick"]);
    assert!(deleted.starts_with("schedule tick deleted"), "{deleted}");
    let out = c.labctl(&["schedule", "show", "tick"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no schedule named 'tick'"),
        "{}",
        stderr(&out)
    );
    let names: Vec<Value> = json(&c, &["schedule", "list", "-o", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["clock"]);
    // Its jobs stay, and no new ones come.
    let after_delete = fired(&c.coord.admin_config(), "tick").len();
    let clock_now = fired(&c.coord.admin_config(), "clock").len();
    wait_until(
        || fired(&c.coord.admin_config(), "clock").len() >= clock_now + 2,
        Duration::from_secs(10),
        "two more clock firings",
    );
    assert!(after_delete > 0);
    assert_eq!(fired(&c.coord.admin_config(), "tick").len(), after_delete);
}

#[test]
fn apply_creates_and_replaces_and_a_selector_without_nodes_fires_no_job() {
    let c = Cluster::builder().agents(1).start();
    let spec = |cron: &str| {
        format!(
            "apiVersion: labfleet/v1\nkind: Schedule\nmetadata: {{name: nomatch}}\nspec:\n  cron: '{cron}'\n  timezone: Europe/Berlin\n  jitter: 0s\n  missed: runOnce\n  job:\n    selector: role=nothing\n    task:\n      exec: {{argv: [true]}}\n"
        )
    };
    let file = c.tmp.path().join("nomatch.yaml");
    std::fs::write(&file, spec("0 3 * * *")).unwrap();
    let out = ok(&c, &["apply", "-f", file.to_str().unwrap()]);
    assert!(
        out.starts_with("schedule nomatch created, next run "),
        "{out}"
    );
    let s = schedule_json(&c, "nomatch");
    assert_eq!(
        (s["cron"].clone(), s["timezone"].clone()),
        ("0 3 * * *".into(), "Europe/Berlin".into())
    );
    assert_eq!(s["missed"], "run-once");

    std::fs::write(&file, spec("* * * * * *")).unwrap();
    let out = ok(&c, &["apply", "-f", file.to_str().unwrap()]);
    assert!(
        out.starts_with("schedule nomatch replaced, next run "),
        "{out}"
    );
    wait_until(
        || schedule_json(&c, "nomatch")["last_error"].is_string(),
        Duration::from_secs(10),
        "a firing without nodes",
    );
    let s = schedule_json(&c, "nomatch");
    assert_eq!(
        s["last_error"],
        "selector 'role=nothing' matched no node; no job was submitted"
    );
    assert!(
        s["last_fired"].is_string() && s["last_job_id"].is_null(),
        "{s}"
    );
    assert!(fired(&c.coord.admin_config(), "nomatch").is_empty());
    let table = ok(&c, &["schedule", "list", "-o", "wide"]);
    assert!(
        table.contains("error: selector 'role=nothing' matched no node"),
        "{table}"
    );
}

#[test]
fn bad_input_is_exit_2_naming_the_problem_and_creates_nothing() {
    let c = Cluster::builder().agents(0).start();
    let file = job_file(c.tmp.path(), "job", &c.tmp.path().join("runs"));
    let f = file.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["bad", "--cron", "*/3 * * *"],
            "cron expression '*/3 * * *': has 4 field(s)",
        ),
        (
            &["bad", "--cron", "70 * * * *"],
            "cron expression '70 * * * *': minute field '70' is not valid",
        ),
        (
            &["bad", "--cron", "30 2 * * *", "--tz", "Mars/Olympus"],
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            &["bad", "--cron", "* * * * *", "--jitter", "soon"],
            "--jitter",
        ),
        (
            &["bad", "--cron", "* * * * *", "--jitter", "48h"],
            "jitter 2d is longer than the maximum of 1d",
        ),
        (
            &["bad", "--cron", "0 * * * *", "--jitter", "90m"],
            "jitter 1h 30m is longer than the 1h between firings of '0 * * * *'",
        ),
        (
            &["Bad_Name", "--cron", "* * * * *"],
            "invalid schedule name 'Bad_Name'",
        ),
        (
            &["bad", "--cron", "0 0 30 2 *"],
            "cron expression '0 0 30 2 *' never fires",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["schedule", "create"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-f", f]);
        let out = c.labctl(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{all:?}: {}", stderr(&out));
    }
    let out = c.labctl(&[
        "schedule",
        "create",
        "bad",
        "--cron",
        "* * * * *",
        "-f",
        "/nonexistent.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let doc = c.tmp.path().join("bad.yaml");
    std::fs::write(
        &doc,
        "apiVersion: labfleet/v1\nkind: Schedule\nmetadata: {name: bad}\nspec:\n  cron: 'every day'\n  job:\n    selector: \"*\"\n    task:\n      exec: {argv: [true]}\n",
    )
    .unwrap();
    let out = c.labctl(&["apply", "-f", doc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("document 1: cron expression 'every day'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        json(&c, &["schedule", "list", "-o", "json"]),
        serde_json::json!([])
    );

    // A name that exists is refused (exit 1) and the first schedule is unchanged.
    ok(
        &c,
        &["schedule", "create", "once", "--cron", "0 3 * * *", "-f", f],
    );
    let out = c.labctl(&["schedule", "create", "once", "--cron", "0 4 * * *", "-f", f]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("schedule 'once' already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(schedule_json(&c, "once")["cron"], "0 3 * * *");
}
