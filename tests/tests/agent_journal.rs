//! The agent's task journal with real processes: an agent killed (SIGKILL) right after it
//! journaled a task's start never runs that task again, and an agent upgraded from the
//! per-task journal files while a task ran keeps that promise too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use lab_tests::{stderr, wait_until, Cluster};

fn job_json(c: &Cluster, id: &str) -> serde_json::Value {
    let out = c.labctl(&["job", "show", id, "-o", "json"]);
    assert!(out.status.success(), "job show: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `sh -c SCRIPT` on the cluster's one node; returns the job id.
fn detach(c: &Cluster, script: &str) -> String {
    let out = c.labctl(&["run", "--detach", "--", "sh", "-c", script]);
    assert!(out.status.success(), "run --detach: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Restarts the killed agent and checks the job's one task ends `lost` and ran at most once
/// (the marker file gets one line per run).
fn restart_and_expect_lost(c: &mut Cluster, id: &str, marker: &Path) {
    c.agents[0].start();
    wait_until(
        || job_json(c, id)["done"] == true,
        Duration::from_secs(20),
        &format!("job {id} done\n{}", c.logs()),
    );
    let job = job_json(c, id);
    assert_eq!(job["tasks"][0]["state"], "lost", "{job}");
    let runs = std::fs::read_to_string(marker).unwrap_or_default();
    assert!(runs.lines().count() <= 1, "the task ran again: {runs:?}");
}

#[test]
fn an_agent_killed_right_after_journaling_a_start_never_runs_the_task_again() {
    let mut c = Cluster::builder().agents(1).start();
    let marker = c.tmp.path().join("runs");
    let journal = c.agents[0].dir.join("tasks").join("journal");
    let id = detach(&c, &format!("echo run >> {}; sleep 3", marker.display()));
    // Poll the journal itself, so that the kill lands as close after the start record as the
    // test can get (the process may or may not have been spawned yet).
    wait_until(
        || {
            std::fs::read_to_string(&journal)
                .is_ok_and(|t| t.lines().any(|l| !l.contains("\"started_unix_ms\":null")))
        },
        Duration::from_secs(10),
        "the task's start journaled",
    );
    c.agents[0].stop(true);
    restart_and_expect_lost(&mut c, &id, &marker);
}

#[test]
fn an_agent_upgraded_from_per_task_journal_files_mid_task_reports_it_lost() {
    let mut c = Cluster::builder().agents(1).start();
    let marker = c.tmp.path().join("runs");
    let id = detach(&c, &format!("echo run >> {}; sleep 3", marker.display()));
    wait_until(
        || std::fs::read_to_string(&marker).is_ok_and(|t| !t.is_empty()),
        Duration::from_secs(10),
        "task running",
    );
    c.agents[0].stop(true);
    // Turn the journal into the files an agent before the journal file wrote: one JSON record
    // per task id, `<task_id>.json`.
    let dir = c.agents[0].dir.join("tasks");
    let journal = dir.join("journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    for line in text.lines() {
        let (_checksum, json) = line.split_once(' ').unwrap();
        let record: serde_json::Value = serde_json::from_str(json).unwrap();
        let task = record["task_id"].as_str().unwrap();
        std::fs::write(dir.join(format!("{task}.json")), json).unwrap();
    }
    std::fs::remove_file(&journal).unwrap();
    restart_and_expect_lost(&mut c, &id, &marker);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["journal"], "the old files are migrated and deleted");
}
