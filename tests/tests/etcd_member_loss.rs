//! A coordinator on a three-member etcd cluster of its own (real etcd, real coordinator, agent
//! and labctl processes) while etcd members die: one member down changes nothing a user sees;
//! two down (no quorum) refuse writes with an error naming etcd and the leader steps down;
//! once quorum is back the coordinator leads again with everything it had acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::time::Duration;

use lab_tests::etcd::{self, Etcd};
use lab_tests::schedule_runs::{run_marking, runs};
use lab_tests::{labctl, stderr, wait_until, wait_until_seen, Agent, Coordinator};
use serde_json::Value;

/// Agents in the fleet.
const AGENTS: usize = 3;

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn job(c: &Coordinator, id: &str) -> Value {
    let out = ok(
        labctl(&c.admin_config(), &["job", "show", id, "-o", "json"]),
        "job show",
    );
    serde_json::from_str(&out).unwrap()
}

/// Waits until job `id` is done and checks every task succeeded.
fn wait_succeeded(c: &Coordinator, id: &str) {
    wait_until_seen(
        || {
            let j = job(c, id);
            (j["done"] == true, j.to_string())
        },
        Duration::from_secs(60),
        &format!("job {id} done"),
    );
    let j = job(c, id);
    let tasks = j["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), AGENTS, "{j}");
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"), "{j}");
}

#[test]
fn one_member_lost_is_unnoticed_two_refuse_writes_and_quorum_back_recovers() {
    let mut cluster = Etcd::cluster(3);
    let tmp = tempfile::tempdir().unwrap();
    let args = vec![
        "--store".into(),
        cluster.url(),
        "--etcd-prefix".into(),
        etcd::unique_prefix(),
    ];
    let mut c = Coordinator::init_with_store(tmp.path(), "coordinator", "lab.local", args);
    c.start_with(&["--leader-ttl", "3s"]);
    let mut agents = Vec::new();
    for i in 1..=AGENTS {
        let token = ok(labctl(&c.admin_config(), &["token", "create"]), "token");
        let mut agent = Agent::new(&format!("n{i}"), tmp.path());
        ok(agent.enroll_output(&c.addr, token.trim()), "enroll");
        let marks = tmp.path().join(format!("marks-n{i}"));
        agent.start_with_env(&[], &[("MARKS", marks.to_str().unwrap())]);
        agents.push((agent, marks));
    }

    // One member dies while a job runs: the job finishes, writes go on, nothing restarts.
    let first = run_marking(&c.admin_config());
    cluster.kill_member(0);
    wait_succeeded(&c, &first);
    let second = run_marking(&c.admin_config());
    wait_succeeded(&c, &second);
    assert!(c.is_running(), "the coordinator kept running:\n{}", c.log());

    // Two dead: no quorum. A write is refused naming etcd, and the leader, unable to renew
    // its lease, steps down (exit 1; its service manager starts it again).
    cluster.kill_member(1);
    let out = labctl(&c.admin_config(), &["token", "create"]);
    assert!(!out.status.success(), "a write without quorum succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("cannot commit to etcd") && err.contains("no quorum"),
        "labctl names the problem: {err}"
    );
    println!("labctl without etcd quorum: {}", err.trim());
    wait_until(
        || !c.is_running(),
        Duration::from_secs(30),
        "the leader steps down without quorum",
    );
    assert_eq!(c.exit_code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(log.contains("stepping down"), "{log}");

    // Quorum back: started again (as systemd would), it leads with everything it acknowledged.
    cluster.start_member(0);
    cluster.start_member(1);
    cluster.wait_healthy();
    c.start_with(&["--leader-ttl", "3s"]);
    for id in [&first, &second] {
        wait_succeeded(&c, id);
    }
    let third = run_marking(&c.admin_config());
    wait_succeeded(&c, &third);
    for (agent, marks) in &agents {
        let runs = runs(marks);
        for id in [&first, &second, &third] {
            assert_eq!(runs.get(id.as_str()), Some(&1), "{}: {runs:?}", agent.name);
        }
    }
    for (mut agent, _) in agents {
        agent.stop(false);
    }
    c.stop(false);
}
