//! For tests of jobs and schedule firings that must run exactly once: a Job file whose task
//! appends its job id to a marks file on the node, the jobs a schedule fired (by due time), and
//! how often each job ran according to a marks file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{labctl, stderr};

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A Job spec file `dir/NAME.yaml` whose task appends its job id to `marks` on the node.
pub fn job_file(dir: &Path, name: &str, marks: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  selector: \"*\"\n  task:\n    exec: {{argv: [sh, -c, 'echo $LAB_JOB_ID >> {}']}}\n",
        marks.display()
    );
    std::fs::write(&path, text).expect("write job file");
    path
}

/// Jobs submitted by schedule `name` as the coordinator of labctl config `config` lists them:
/// (due time from the job id, job JSON), by due time.
pub fn fired(config: &Path, name: &str) -> Vec<(i64, Value)> {
    let out = labctl(config, &["jobs", "-o", "json"]);
    assert!(out.status.success(), "labctl jobs: {}", stderr(&out));
    let jobs: Value = serde_json::from_slice(&out.stdout).expect("jobs JSON");
    let by = format!("schedule:{name}");
    let suffix = format!("-{name}");
    let mut out: Vec<(i64, Value)> = jobs
        .as_array()
        .expect("a list of jobs")
        .iter()
        .filter(|j| j["submitted_by"] == by.as_str())
        .map(|j| {
            let id = j["id"].as_str().expect("job id");
            let hex = id
                .strip_suffix(&suffix)
                .unwrap_or_else(|| panic!("job id {id}"));
            (
                i64::from_str_radix(hex, 16).expect("hex due time"),
                j.clone(),
            )
        })
        .collect();
    out.sort_by_key(|(due, _)| *due);
    out
}

/// Milliseconds since the epoch of an RFC 3339 time in JSON.
pub fn ms_of(rfc3339: &Value) -> i64 {
    let t = humantime::parse_rfc3339(rfc3339.as_str().expect("a time")).expect("RFC 3339");
    t.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Job id → how often it ran, from a marks file (none yet: empty).
pub fn runs(marks: &Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(marks) {
        for line in text.lines() {
            *runs.entry(line.to_owned()).or_default() += 1;
        }
    }
    runs
}

/// Checks the firings of a schedule due every `step_ms` (paused, every job done): one job per
/// due time from the first to the last (an outage is caught up, not skipped), each on the
/// cron grid and submitted soon after its due time, each succeeded and ran exactly once
/// according to `marks`.
pub fn assert_each_due_time_fired_once(jobs: &[(i64, Value)], step_ms: i64, marks: &Path) {
    let dues: Vec<i64> = jobs.iter().map(|(d, _)| *d).collect();
    for pair in dues.windows(2) {
        assert_eq!(pair[1] - pair[0], step_ms, "due times {dues:?}");
    }
    let runs = runs(marks);
    for (due, job) in jobs {
        assert_eq!(due % step_ms, 0, "{due}");
        let submitted = ms_of(&job["submitted"]);
        assert!(
            submitted >= due - 1_000 && submitted <= due + 60_000,
            "job {} submitted at {submitted}, due {due}",
            job["id"]
        );
        let id = job["id"].as_str().expect("job id");
        assert_eq!(runs.get(id), Some(&1), "runs of {id}: {runs:?}");
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    assert_eq!(runs.len(), jobs.len(), "{runs:?}");
}

/// Creates schedule `tick` (every two seconds, `*/2 * * * * *`) at the coordinator of labctl
/// config `config`, whose job marks its runs in `marks` (job file in `dir`); labctl's output.
pub fn create_tick(config: &Path, dir: &Path, marks: &Path) -> String {
    let file = job_file(dir, "tick", marks);
    let args = [
        "schedule",
        "create",
        "tick",
        "--cron",
        "*/2 * * * * *",
        "-f",
        file.to_str().expect("utf-8 path"),
    ];
    let out = labctl(config, &args);
    assert!(out.status.success(), "labctl {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Submits, detached, a job on every node whose task sleeps a second and then appends its job
/// id to the file its agent's `MARKS` environment variable names; the job's id.
pub fn run_marking(config: &Path) -> String {
    let out = labctl(
        config,
        &[
            "run",
            "--detach",
            "--",
            "sh",
            "-c",
            "sleep 1; echo \"$LAB_JOB_ID\" >> \"$MARKS\"",
        ],
    );
    assert!(out.status.success(), "run --detach: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_owned()
}
