//! labctl's output end to end: every command that prints ends quietly when its reader goes away
//! (`labctl jobs -o json | head -2`): exit 0 or 141, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use lab_tests::{bin, stderr, wait_until, Cluster};

/// Runs labctl with stdout a pipe that is closed after reading `keep` lines; returns the exit
/// code and stderr.
fn closed_after(c: &Cluster, keep: usize, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin("labctl"))
        .arg("--config")
        .arg(c.coord.admin_config())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..keep {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let mut status = None;
    wait_until(
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
        Duration::from_secs(30),
        &format!("labctl {args:?} ends after its reader went away"),
    );
    let out = child.wait_with_output().unwrap();
    (status.and_then(|s| s.code()), stderr(&out))
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_pipe() {
    let c = Cluster::builder().agents(1).start();
    // A job with more output than a pipe holds.
    let out = c.labctl(&["run", "--detach", "--", "seq", "1", "30000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    wait_until(
        || {
            let out = c.labctl(&["job", "show", &job, "-o", "json"]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|j| j["done"] == true)
        },
        Duration::from_secs(30),
        "the seq job is done",
    );
    let commands: &[&[&str]] = &[
        &["nodes"],
        &["nodes", "-o", "json"],
        &["nodes", "-o", "yaml"],
        &["node", "show", "n1"],
        &["jobs"],
        &["jobs", "-o", "json"],
        &["job", "show", &job],
        &["job", "logs", &job],
        &["job", "logs", &job, "-o", "json"],
        &["run", "--", "seq", "1", "30000"],
        &["run", "-o", "json", "--", "seq", "1", "30000"],
        &["backups"],
        &["token", "list"],
        &["user", "list"],
        &["schedule", "list"],
        &["whoami"],
        &["--help"],
    ];
    for args in commands {
        for keep in [0, 2] {
            let (code, err) = closed_after(&c, keep, args);
            assert!(
                !err.contains("panicked") && !err.contains("Broken pipe"),
                "labctl {args:?} (reader gone after {keep} lines) printed: {err}"
            );
            assert!(
                matches!(code, Some(0) | Some(141)),
                "labctl {args:?} (reader gone after {keep} lines) exited with {code:?}: {err}"
            );
        }
    }
}

#[test]
fn run_says_which_offline_node_it_waits_for() {
    let mut c = Cluster::builder().agents(2).start();
    c.agents[1].stop(false);
    c.wait_online("n2", false, Duration::from_secs(20));
    let mut child = Command::new(bin("labctl"))
        .arg("--config")
        .arg(c.coord.admin_config())
        .args(["run", "--", "hostname"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    wait_until(
        || {
            seen.extend(rx.try_iter());
            seen.iter()
                .any(|l| l == "waiting for 1 offline node: n2 (deadline in 59m; Ctrl-C detaches)")
        },
        Duration::from_secs(30),
        "labctl run names the offline node it waits for",
    );
    lab_tests::stop(&mut child, false);
}

#[test]
fn job_ids_are_accepted_by_unique_prefix() {
    let c = Cluster::builder().agents(1).start();
    let out = c.labctl(&["run", "--detach", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = c.labctl(&["job", "show", &job[..15], "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], job.as_str());
    let out = c.labctl(&["job", "show", "zz"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no job id starts with 'zz'"),
        "{}",
        stderr(&out)
    );
}
