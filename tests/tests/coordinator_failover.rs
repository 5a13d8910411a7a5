//! Failover under load (real etcd, real coordinator and agent processes): two coordinators
//! share an etcd prefix, 20 agents that know both run a 100-task workload, and the leader is
//! killed (-9) in the middle of it. The standby must take over, every agent must find it, every
//! job must finish with every result stored, and no task may run twice; a schedule fires each
//! due time exactly once across the failover.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use lab_tests::etcd;
use lab_tests::ha::wait_standby_of;
use lab_tests::schedule_runs::{
    assert_each_due_time_fired_once, create_tick, fired, now_ms, run_marking, runs,
};
use lab_tests::{labctl, stderr, wait_until, wait_until_seen, Agent, Coordinator};
use serde_json::Value;

/// Agents in the fleet.
const AGENTS: usize = 20;
/// Jobs submitted, each one task per agent: AGENTS × JOBS tasks.
const JOBS: usize = 5;

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn json(c: &Coordinator, args: &[&str]) -> Value {
    serde_json::from_str(&ok(labctl(&c.admin_config(), args), &args.join(" "))).unwrap()
}

/// The online nodes `c` lists (empty when `c` does not answer).
fn online(c: &Coordinator) -> usize {
    let out = labctl(&c.admin_config(), &["nodes", "-o", "json"]);
    if !out.status.success() {
        return 0;
    }
    let nodes: Value = serde_json::from_slice(&out.stdout).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["online"] == true)
        .count()
}

/// A fleet's first coordinator (store in the shared etcd under a fresh prefix) started as the
/// leader, and a second one joined to it (`lab-coordinator join`) waiting as a standby.
fn pair(root: &Path) -> (Coordinator, Coordinator) {
    let args = vec![
        "--store".into(),
        etcd::shared().url(),
        "--etcd-prefix".into(),
        etcd::unique_prefix(),
    ];
    let mut a = Coordinator::init_with_store(&root.join("a"), "a", "lab.local", args);
    let mut b = a.join_as(&root.join("b"), "b");
    a.start();
    b.spawn_with(&[]);
    wait_standby_of(&b, &a);
    (a, b)
}

#[test]
fn kill_9_of_the_leader_mid_job_loses_nothing_and_runs_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a", "b", "agents", "marks"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    let (mut a, mut b) = pair(tmp.path());

    // 20 agents that know both coordinators; each task appends its job id to its agent's file.
    let both = format!("{},{}", a.addr, b.addr);
    let mut agents = Vec::new();
    for i in 1..=AGENTS {
        let token = ok(labctl(&a.admin_config(), &["token", "create"]), "token");
        let mut agent = Agent::new(&format!("n{i:02}"), &tmp.path().join("agents"));
        ok(agent.enroll_output(&both, token.trim()), "enroll");
        let marks = tmp.path().join("marks").join(&agent.name);
        agent.start_with_env(&[], &[("MARKS", marks.to_str().unwrap())]);
        agents.push((agent, marks));
    }
    wait_until(
        || online(&a) == AGENTS,
        Duration::from_secs(60),
        "every agent online at the leader",
    );

    // 100 tasks: each job sleeps a little so the kill lands while tasks run.
    let mut jobs = Vec::new();
    for _ in 0..JOBS {
        jobs.push(run_marking(&a.admin_config()));
    }
    // Kill the leader once some tasks have finished and others have not.
    let finished = |agents: &[(Agent, std::path::PathBuf)]| -> usize {
        agents
            .iter()
            .map(|(_, m)| runs(m).values().sum::<usize>())
            .sum()
    };
    wait_until(
        || finished(&agents) >= AGENTS,
        Duration::from_secs(60),
        "the first tasks finished",
    );
    a.stop(true);
    let killed = Instant::now();
    let before_kill = finished(&agents);
    assert!(
        before_kill < AGENTS * JOBS,
        "the kill came after every task had finished ({before_kill})"
    );

    wait_until(
        || labctl(&b.admin_config(), &["whoami"]).status.success(),
        Duration::from_secs(10),
        "the standby serves within 10 s of the leader's kill -9",
    );
    let took_over = killed.elapsed();
    wait_until(
        || online(&b) == AGENTS,
        Duration::from_secs(60),
        "every agent reconnected to the new leader",
    );
    let all_back = killed.elapsed();
    println!(
        "failover: new leader serving after {took_over:?}, all {AGENTS} agents online after {all_back:?} ({before_kill} of {} tasks had finished at the kill)",
        AGENTS * JOBS
    );

    // Every job the old leader acknowledged finishes on the new one with every result stored.
    for id in &jobs {
        wait_until_seen(
            || {
                let j = json(&b, &["job", "show", id, "-o", "json"]);
                (j["done"] == true, j.to_string())
            },
            Duration::from_secs(90),
            &format!("job {id} done on the new leader"),
        );
        let j = json(&b, &["job", "show", id, "-o", "json"]);
        let tasks = j["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), AGENTS, "{j}");
        for t in tasks {
            assert_eq!(t["state"], "succeeded", "job {id}: {t}");
        }
    }
    // Each task ran exactly once: every agent's file holds each job id once.
    for (agent, marks) in &agents {
        let runs = runs(marks);
        for id in &jobs {
            assert_eq!(runs.get(id), Some(&1), "{}: runs {runs:?}", agent.name);
        }
        assert_eq!(runs.len(), JOBS, "{}: runs {runs:?}", agent.name);
    }
    for (mut agent, _) in agents {
        agent.stop(false);
    }
    b.stop(false);
}

#[test]
fn a_schedule_fires_each_due_time_once_across_a_failover() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a", "b", "agents"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    let (mut a, mut b) = pair(tmp.path());
    let mut agent = Agent::new("n1", &tmp.path().join("agents"));
    let token = ok(labctl(&a.admin_config(), &["token", "create"]), "token");
    ok(
        agent.enroll_output(&format!("{},{}", a.addr, b.addr), token.trim()),
        "enroll",
    );
    agent.start();
    wait_until(
        || online(&a) == 1,
        Duration::from_secs(30),
        "the agent online at the leader",
    );
    let marks = tmp.path().join("runs");
    create_tick(&a.admin_config(), tmp.path(), &marks);
    wait_until(
        || fired(&a.admin_config(), "tick").len() >= 2,
        Duration::from_secs(15),
        "two firings at the first leader",
    );
    a.stop(true);
    let killed_ms = now_ms();
    wait_until(
        || labctl(&b.admin_config(), &["whoami"]).status.success(),
        Duration::from_secs(10),
        "the standby serves within 10 s",
    );
    // The first due time after the kill passed while no coordinator led (the lease outlives
    // the leader by its TTL, 5 s).
    let first_missed = (killed_ms / 2_000 + 1) * 2_000;
    wait_until(
        || {
            fired(&b.admin_config(), "tick")
                .last()
                .is_some_and(|(due, _)| *due >= now_ms() - 4_000 && *due > first_missed + 4_000)
        },
        Duration::from_secs(30),
        "the new leader fires on time again",
    );
    ok(
        labctl(&b.admin_config(), &["schedule", "pause", "tick"]),
        "pause",
    );
    wait_until(
        || {
            fired(&b.admin_config(), "tick")
                .iter()
                .all(|(_, j)| j["done"] == true)
        },
        Duration::from_secs(30),
        "every fired job done",
    );
    let jobs = fired(&b.admin_config(), "tick");
    assert!(
        jobs.iter().any(|(due, _)| *due == first_missed),
        "the due time {first_missed} during the failover fired late, not skipped: {jobs:?}"
    );
    assert_each_due_time_fired_once(&jobs, 2_000, &marks);
    agent.stop(false);
    b.stop(false);
}
