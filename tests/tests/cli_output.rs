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

/// A labctl child with stdout and stderr read line by line on threads.
struct Lines {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(c: &Cluster, args: &[&str]) -> Lines {
        let mut child = Command::new(bin("labctl"))
            .arg("--config")
            .arg(c.coord.admin_config())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines {
            child,
            out: rx,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, what: &str, cond: impl Fn(&[String]) -> bool) {
        wait_until(
            || {
                self.seen.extend(self.out.try_iter());
                cond(&self.seen)
            },
            Duration::from_secs(30),
            what,
        );
    }
}

#[test]
fn run_online_only_targets_only_the_nodes_online_at_submit() {
    let mut c = Cluster::builder().agents(2).start();
    c.agents[1].stop(false);
    c.wait_online("n2", false, Duration::from_secs(20));
    // The derived status label selects, and nobody can set it.
    let out = c.labctl(&["nodes", "-l", "status=offline", "-o", "name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n2\n");
    let out = c.labctl(&["nodes", "-l", "status=online", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n1\n");
    let out = c.labctl(&["label", "n1", "status=offline"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("label 'status' is reserved"),
        "{}",
        stderr(&out)
    );
    // Without waiting for n2 (its deadline is an hour away).
    let started = std::time::Instant::now();
    let out = c.labctl(&["run", "--online-only", "--", "echo", "hi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n1: hi\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The job's selector says what it targeted.
    let out = c.labctl(&["jobs", "-o", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs[0]["selector"], "status=online");
    let out = c.labctl(&["run", "--online-only", "-l", "node=n2", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no node matches selector 'node=n2,status=online'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn nodes_watch_prints_a_new_table_per_change_and_ctrl_c_exits_0() {
    let mut c = Cluster::builder().agents(2).start();
    let mut watch = Lines::spawn(&c, &["nodes", "-w", "-o", "name"]);
    watch.wait_for("the first listing", |seen| seen == ["n1", "n2"]);
    let mut table = Lines::spawn(&c, &["nodes", "--watch"]);
    table.wait_for("the first table", |seen| {
        seen.iter().filter(|l| l.contains(" online ")).count() == 2
    });
    c.agents[1].stop(false);
    // A pipe gets a new table (after a blank line) once n2 is offline.
    table.wait_for("a second table with n2 offline", |seen| {
        seen.iter().any(|l| l.is_empty())
            && seen
                .iter()
                .any(|l| l.starts_with("n2 ") && l.contains(" offline "))
    });
    assert_eq!(
        table.seen.iter().filter(|l| l.starts_with("NAME")).count(),
        2
    );
    for mut w in [watch, table] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(w.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut status = None;
        wait_until(
            || {
                status = w.child.try_wait().unwrap();
                status.is_some()
            },
            Duration::from_secs(10),
            "labctl nodes -w ends on Ctrl-C",
        );
        assert_eq!(status.and_then(|s| s.code()), Some(0));
        w.seen.extend(w.out.try_iter());
        if w.seen[0] == "n1" {
            // -o name: the names did not change, so nothing more was printed.
            assert_eq!(w.seen, ["n1", "n2"]);
        }
    }
}

#[test]
fn jobs_and_apply_narrow_by_selector() {
    let c = Cluster::builder().agents(2).start();
    let on = |node: &str| {
        let out = c.labctl(&["run", "-l", &format!("node={node}"), "--", "true"]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    on("n1");
    on("n2");
    let out = c.labctl(&["jobs", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let ids = |selector: &str| {
        let out = c.labctl(&["jobs", "-l", selector, "-o", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .map(|j| j["selector"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("node=n2"), ["node=n2"]);
    assert_eq!(ids("node in (n1,n2)"), ["node=n2", "node=n1"]);
    // An empty list says why on stderr (a typo in a key matches nothing).
    let out = c.labctl(&["jobs", "-l", "nod=n1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no job has a task on a node that selector 'nod=n1' matches now"));
    let out = c.labctl(&["nodes", "-l", "nod=n1"]);
    assert!(
        stderr(&out).contains("no node matches selector 'nod=n1'"),
        "{}",
        stderr(&out)
    );
    let out = c.labctl(&["jobs", "-l", "node in ("]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // apply -l: a spec for every node runs only where both selectors match.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("all.yaml");
    std::fs::write(
        &spec,
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {name: hello}\nspec:\n  selector: \"*\"\n  task:\n    exec: {argv: [echo, hello]}\n",
    )
    .unwrap();
    let out = c.labctl(&["apply", "-f", spec.to_str().unwrap(), "-l", "node=n2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n2: hello\n");
}

#[test]
fn tables_fit_80_columns_and_wide_shows_everything() {
    let c = Cluster::builder().agents(1).start();
    let labels: Vec<String> = (0..12).map(|i| format!("label-{i}=value-{i}")).collect();
    let mut args = vec!["label", "n1"];
    args.extend(labels.iter().map(String::as_str));
    let out = c.labctl(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.labctl(&["run", "--", "sh", "-c", &"echo long; ".repeat(20)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for cmd in ["nodes", "jobs"] {
        let out = c.labctl(&[cmd]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains('\x1b'), "colour on a pipe: {text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{cmd}: {line:?}");
        }
        assert!(text.contains('…'), "{cmd}: {text}");
        let wide = c.labctl(&[cmd, "-o", "wide"]);
        let wide = String::from_utf8(wide.stdout).unwrap();
        assert!(!wide.contains('…'), "{cmd} -o wide: {wide}");
    }
    let wide = String::from_utf8(c.labctl(&["nodes", "-o", "wide"]).stdout).unwrap();
    assert!(wide.contains("label-9=value-9"), "{wide}");
}
