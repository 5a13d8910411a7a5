//! Jobs end to end with real agents: fan-out with live output, exit codes, durability across a
//! coordinator crash, offline nodes and deadlines, exactly-once effect, rollout stops, cancel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab_tests::{bin, stderr, wait_until, Cluster};

fn job_json(c: &Cluster, id: &str) -> serde_json::Value {
    let out = c.labctl(&["job", "show", id, "-o", "json"]);
    assert!(out.status.success(), "job show: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn task_states(c: &Cluster, id: &str) -> Vec<(String, String)> {
    let job = job_json(c, id);
    let mut states: Vec<(String, String)> = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["node"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

fn detach(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["run", "--detach"];
    all.extend_from_slice(args);
    let out = c.labctl(&all);
    assert!(out.status.success(), "run --detach: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn wait_job_done(c: &Cluster, id: &str, timeout: Duration) {
    wait_until(
        || job_json(c, id)["done"] == true,
        timeout,
        &format!("job {id} done\n{}", c.logs()),
    );
}

#[test]
fn fan_out_prints_one_line_per_node_and_reports_failures() {
    let c = Cluster::builder().agents(3).start();
    let out = c.labctl(&["run", "--", "sh", "-c", "echo hello from $LAB_NODE"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "n1: hello from n1",
            "n2: hello from n2",
            "n3: hello from n3"
        ]
    );

    let out = c.labctl(&["run", "--", "sh", "-c", "test $LAB_NODE != n2 || exit 7"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    let id = text
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .expect("summary names the job")
        .trim_end_matches(|ch: char| !ch.is_ascii_alphanumeric())
        .to_owned();
    let job = job_json(&c, &id);
    let n2 = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == "n2")
        .unwrap()
        .clone();
    assert_eq!(n2["state"], "failed", "{job}");
    assert_eq!(n2["exit_code"], 7, "{job}");
}

#[test]
fn output_streams_while_the_command_runs() {
    let c = Cluster::builder().agents(1).start();
    let mut child = Command::new(bin("labctl"))
        .arg("--config")
        .arg(c.coord.admin_config())
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line $i; sleep 1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut arrivals = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        arrivals.push((started.elapsed(), line));
    }
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = arrivals.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["n1: line 1", "n1: line 2", "n1: line 3"]);
    // The first line is seen about two seconds before the last one, not at the end.
    assert!(
        arrivals[2].0 - arrivals[0].0 >= Duration::from_millis(1500),
        "lines arrived together: {arrivals:?}"
    );
}

#[test]
fn a_coordinator_crash_loses_no_result() {
    let mut c = Cluster::builder().agents(3).start();
    let id = detach(&c, &["--", "sh", "-c", "sleep 2; echo done"]);
    wait_until(
        || task_states(&c, &id).iter().all(|(_, s)| s == "running"),
        Duration::from_secs(10),
        "all three tasks running",
    );
    c.coord.stop(true); // kill -9
    c.coord.start();
    wait_job_done(&c, &id, Duration::from_secs(30));
    assert!(
        task_states(&c, &id).iter().all(|(_, s)| s == "succeeded"),
        "{:?}",
        task_states(&c, &id)
    );
    let out = c.labctl(&["job", "logs", &id]);
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["n1: done", "n2: done", "n3: done"]);
}

#[test]
fn offline_nodes_run_once_when_back_or_expire_at_the_deadline() {
    let mut c = Cluster::builder().agents(2).start();
    let marks = c.tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let cmd = format!("echo ran >> {}/$LAB_NODE", marks.display());

    c.agents[1].stop(true);
    c.wait_online("n2", false, Duration::from_secs(6));
    let id = detach(&c, &["--deadline", "60s", "--", "sh", "-c", &cmd]);
    wait_until(
        || {
            task_states(&c, &id)
                == [
                    ("n1".into(), "succeeded".into()),
                    ("n2".into(), "pending".into()),
                ]
        },
        Duration::from_secs(10),
        "n1 done, n2 pending",
    );
    c.agents[1].start();
    wait_job_done(&c, &id, Duration::from_secs(20));
    assert_eq!(std::fs::read_to_string(marks.join("n2")).unwrap(), "ran\n");

    c.agents[1].stop(true);
    c.wait_online("n2", false, Duration::from_secs(6));
    let id = detach(&c, &["--deadline", "2s", "--", "sh", "-c", &cmd]);
    wait_job_done(&c, &id, Duration::from_secs(15));
    assert_eq!(
        task_states(&c, &id),
        [
            ("n1".into(), "succeeded".into()),
            ("n2".into(), "expired".into())
        ]
    );
    c.agents[1].start();
    c.wait_online("n2", true, Duration::from_secs(10));
    assert_eq!(
        std::fs::read_to_string(marks.join("n2")).unwrap(),
        "ran\n",
        "an expired task never runs"
    );
}

#[test]
fn a_cut_connection_during_a_task_leaves_exactly_one_effect() {
    let mut c = Cluster::builder().agents(1).start();
    let file = c.tmp.path().join("appended");
    let cmd = format!("sleep 2; echo line >> {}", file.display());
    let id = detach(&c, &["--", "sh", "-c", &cmd]);
    wait_until(
        || task_states(&c, &id) == [("n1".into(), "running".into())],
        Duration::from_secs(10),
        "task running",
    );
    // Cut the session: the coordinator goes away and comes back while the task runs.
    c.coord.stop(true);
    c.coord.start();
    wait_job_done(&c, &id, Duration::from_secs(30));
    assert_eq!(task_states(&c, &id), [("n1".into(), "succeeded".into())]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "line\n");
}

#[test]
fn max_failures_stops_the_rollout_before_other_nodes_run() {
    let c = Cluster::builder().agents(4).start();
    let marks = c.tmp.path().join("ran");
    std::fs::create_dir_all(&marks).unwrap();
    let cmd = format!("touch {}/$LAB_NODE; test $LAB_NODE != n1", marks.display());
    let out = c.labctl(&[
        "run",
        "--batch",
        "1",
        "--max-failures",
        "1",
        "--",
        "sh",
        "-c",
        &cmd,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The tasks the stopped rollout never started are shown as skipped, not cancelled.
    for node in ["n2", "n3", "n4"] {
        assert!(
            stderr(&out).contains(&format!("{node}: skipped")),
            "{}",
            stderr(&out)
        );
    }
    let ran: Vec<String> = std::fs::read_dir(&marks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ran, ["n1"]);
}

#[test]
fn cancel_kills_the_running_process() {
    let c = Cluster::builder().agents(1).start();
    let pidfile = c.tmp.path().join("pid");
    let cmd = format!("echo $$ > {}; exec sleep 300", pidfile.display());
    let id = detach(&c, &["--", "sh", "-c", &cmd]);
    wait_until(
        || pidfile.exists() && !std::fs::read_to_string(&pidfile).unwrap().is_empty(),
        Duration::from_secs(10),
        "process started",
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = c.labctl(&["job", "cancel", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_job_done(&c, &id, Duration::from_secs(15));
    assert_eq!(task_states(&c, &id), [("n1".into(), "cancelled".into())]);
    let alive = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    wait_until(
        || !alive(),
        Duration::from_secs(5),
        "cancelled process gone",
    );
}

#[test]
fn bad_job_requests_are_refused_before_any_node_is_touched() {
    let c = Cluster::builder().agents(1).start();
    let out = c.labctl(&["run", "-l", "role in (", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = c.labctl(&["run", "--batch", "150%", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = c.labctl(&["run", "-l", "role=nothing", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no node matches"), "{}", stderr(&out));
    let out = c.labctl(&["job", "show", "nosuchjob"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_task_whose_agent_died_is_lost_not_rerun() {
    let mut c = Cluster::builder().agents(1).start();
    let file = c.tmp.path().join("runs");
    let cmd = format!("echo run >> {}; sleep 3", file.display());
    let id = detach(&c, &["--", "sh", "-c", &cmd]);
    wait_until(
        || task_states(&c, &id) == [("n1".into(), "running".into())],
        Duration::from_secs(10),
        "task running",
    );
    c.agents[0].stop(true); // kill -9 the agent mid-task
    c.agents[0].start();
    wait_job_done(&c, &id, Duration::from_secs(20));
    let job = job_json(&c, &id);
    assert_eq!(job["tasks"][0]["state"], "lost", "{job}");
    assert!(
        job["tasks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("restarted"),
        "{job}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "run\n",
        "a lost task is not run again"
    );
}

#[test]
fn ctrl_c_detaches_and_the_job_keeps_running() {
    let c = Cluster::builder().agents(1).start();
    let child = Command::new(bin("labctl"))
        .arg("--config")
        .arg(c.coord.admin_config())
        .args(["run", "--", "sh", "-c", "sleep 2; echo finished"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let newest = || -> Option<serde_json::Value> {
        let out = c.labctl(&["jobs", "-o", "json"]);
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        jobs.into_iter().next()
    };
    wait_until(
        || newest().is_some_and(|j| j["tasks"][0]["state"] == "running"),
        Duration::from_secs(10),
        "task running",
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(stderr(&out).contains("detached; job"), "{}", stderr(&out));
    let id = newest().unwrap()["id"].as_str().unwrap().to_owned();
    wait_job_done(&c, &id, Duration::from_secs(15));
    assert_eq!(task_states(&c, &id), [("n1".into(), "succeeded".into())]);
}

#[test]
fn a_watcher_that_does_not_read_blocks_nobody() {
    use lab_proto::v1::{job_event, WatchJobRequest};

    let c = Cluster::builder().agents(1).start();
    let id = detach(
        &c,
        &[
            "--",
            "sh",
            "-c",
            "sleep 1; yes 0123456789abcdef0123456789abcdef | head -c 8000000",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut slow = rt.block_on(async {
        c.coord
            .admin_client()
            .await
            .watch_job(WatchJobRequest {
                job_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    // The slow watcher reads nothing while 8 MB of output flow; a second watcher and the agent
    // are not held up.
    let out = c.labctl(&["job", "logs", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(job_json(&c, &id)["tasks"][0]["state"], "succeeded");
    // The slow watcher still gets to the end (older output may have been trimmed to the bound).
    let saw_done = rt.block_on(async {
        while let Some(e) = slow.message().await.unwrap() {
            if matches!(e.body, Some(job_event::Body::Done(_))) {
                return true;
            }
        }
        false
    });
    assert!(saw_done);
    let kept = job_json(&c, &id)["tasks"][0].clone();
    assert_eq!(kept["output_bytes"], 8_000_000, "{kept}");
    assert!(
        kept["output_dropped_bytes"].as_u64().unwrap() >= 8_000_000 - 1024 * 1024 - 64 * 1024,
        "{kept}"
    );
}
