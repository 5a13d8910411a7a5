//! PostgreSQL facts against real clusters made by the test (`initdb`, `pg_basebackup -R`) on
//! their own unix sockets: `lab-agent facts` finds them from their running postmasters and
//! shows the primary with its slot and streaming standby, and lag that grows while the
//! standby's replay is paused and returns to 0 once it resumes; a cluster whose pg_hba.conf
//! refuses every connection is still listed, with the refusal in the collector errors.
//!
//! Other tests may run PostgreSQL clusters at the same time; each assertion looks only at the
//! clusters this test made (by data directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use lab_tests::postgres::Postgres;
use lab_tests::{bin, stderr, wait_until, wait_until_seen};
use serde_json::Value;

/// `lab-agent facts -o json`.
fn facts() -> Value {
    let out = Command::new(bin("lab-agent"))
        .args(["facts", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "lab-agent facts: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The cluster of `pg` in `facts` (`Null` when not listed).
fn cluster(facts: &Value, pg: &Postgres) -> Value {
    let data = std::fs::canonicalize(pg.path("data")).unwrap();
    facts["postgresql"]["clusters"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["data_dir"].as_str() == data.to_str())
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// Collector errors that mention `pg`'s data directory.
fn errors_about(facts: &Value, pg: &Postgres) -> Vec<String> {
    let data = std::fs::canonicalize(pg.path("data")).unwrap();
    facts["collector_errors"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|e| {
                    e["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains(data.to_str().unwrap())
                })
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["collector"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

#[test]
fn primary_and_standby_with_lag_that_grows_while_paused() {
    let primary = Postgres::start();
    primary.sql(
        "postgres",
        "CREATE TABLE ticks (at timestamptz DEFAULT now(), pad text)",
    );
    let standby =
        Postgres::standby_of(&primary, "standby1").run(&["wal_receiver_status_interval=1"]);
    let write = || {
        primary.sql(
            "postgres",
            "INSERT INTO ticks (pad) SELECT repeat('x', 1000) FROM generate_series(1, 100)",
        )
    };

    // a transaction for the standby to replay, so it knows how old its replay is
    write();
    // both found, roles and the slot shown, the standby streaming
    let mut last = Value::Null;
    wait_until_seen(
        || {
            let doc = facts();
            let (p, s) = (cluster(&doc, &primary), cluster(&doc, &standby));
            let ok = p["role"] == "primary"
                && s["role"] == "standby"
                && p["standbys"][0]["state"] == "streaming"
                && p["standbys"][0]["lag_bytes"] == 0
                && s["upstream"]["status"] == "streaming"
                && s["upstream"]["replay_lag_bytes"] == 0;
            last = doc;
            (ok, format!("primary {p:#}\nstandby {s:#}"))
        },
        Duration::from_secs(30),
        "primary and streaming standby, caught up, in the facts",
    );
    let doc = last.clone();
    let (p, s) = (cluster(&doc, &primary), cluster(&doc, &standby));
    assert_eq!(p["running"], true, "{p:#}");
    assert_eq!(p["port"], primary.port);
    assert_eq!(p["socket_dir"], primary.path("sock"));
    assert_eq!(p["owner"], "postgres");
    assert!(p["server_version"]
        .as_str()
        .unwrap()
        .starts_with(p["major_version"].as_str().unwrap()));
    assert_eq!(p["slots"][0]["name"], "standby1", "{p:#}");
    assert_eq!(p["slots"][0]["type"], "physical");
    assert_eq!(p["slots"][0]["active"], true);
    assert_eq!(p["standbys"][0]["slot"], "standby1");
    assert_eq!(p["standbys"][0]["sync_state"], "async");
    assert!(p.get("upstream").is_none());
    assert_eq!(s["upstream"]["slot"], "standby1", "{s:#}");
    assert_eq!(s["upstream"]["port"], primary.port);
    assert!(
        errors_about(&doc, &primary).is_empty(),
        "{:?}",
        errors_about(&doc, &primary)
    );
    assert!(
        errors_about(&doc, &standby).is_empty(),
        "{:?}",
        errors_about(&doc, &standby)
    );

    // replay paused: the lag grows in bytes and in seconds, seen from both ends
    standby.sql("postgres", "SELECT pg_wal_replay_pause()");
    let mut first: Option<u64> = None;
    wait_until_seen(
        || {
            write();
            let doc = facts();
            let (p, s) = (cluster(&doc, &primary), cluster(&doc, &standby));
            let bytes = number(&p["standbys"][0]["lag_bytes"]);
            let seen = *first.get_or_insert(bytes);
            let ok = s["upstream"]["replay_paused"] == true
                && bytes != u64::MAX
                && bytes > seen
                && number(&s["upstream"]["replay_lag_bytes"]) > 0
                && (2..u64::MAX).contains(&number(&s["upstream"]["replay_lag_seconds"]))
                && (1..u64::MAX).contains(&number(&p["standbys"][0]["lag_seconds"]));
            (
                ok,
                format!("first lag {seen}\nprimary {p:#}\nstandby {s:#}"),
            )
        },
        Duration::from_secs(60),
        "lag growing in bytes and seconds while replay is paused",
    );

    // resumed: back to no lag
    standby.sql("postgres", "SELECT pg_wal_replay_resume()");
    wait_until_seen(
        || {
            let doc = facts();
            let (p, s) = (cluster(&doc, &primary), cluster(&doc, &standby));
            let ok = p["standbys"][0]["lag_bytes"] == 0
                && p["standbys"][0]["lag_seconds"] == 0
                && s["upstream"]["replay_lag_bytes"] == 0
                && s["upstream"]["replay_lag_seconds"] == 0
                && s["upstream"].get("replay_paused").is_none();
            (ok, format!("primary {p:#}\nstandby {s:#}"))
        },
        Duration::from_secs(60),
        "no lag after resuming",
    );
}

#[test]
fn a_cluster_that_refuses_connections_is_listed_with_the_refusal() {
    let pg = Postgres::init(&[]);
    std::fs::write(
        format!("{}/pg_hba.conf", pg.path("data")),
        "local all all reject\nhost all all 0.0.0.0/0 reject\n",
    )
    .unwrap();
    let pg = pg.run(&[]);
    let mut last = Value::Null;
    wait_until(
        || {
            last = facts();
            cluster(&last, &pg)["running"] == true && !errors_about(&last, &pg).is_empty()
        },
        Duration::from_secs(30),
        "the refusing cluster with its error",
    );
    let c = cluster(&last, &pg);
    assert!(c.get("role").is_none(), "{c:#}");
    assert_eq!(c["port"], pg.port);
    let errors = errors_about(&last, &pg);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("postgresql: cannot ask the cluster in "),
        "{errors:?}"
    );
    assert!(
        errors[0]
            .contains("pg_hba.conf rejects connection for host \"[local]\", user \"postgres\""),
        "{errors:?}"
    );
    // the rest of the facts still arrived
    assert!(last["hardware"]["memory"]["total_bytes"].is_u64());
}
