//! Enrollment end to end, including every bad token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use lab_tests::{stderr, wait_until, Cluster};

#[test]
fn token_labels_and_bound_names_apply() {
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&["--name", "web-1", "--label", "role=web", "--ttl", "10m"]);
    let agent = c.new_agent("web-1");
    let out = agent.enroll_output(&c.coord.addr, &token);
    assert!(out.status.success(), "{}", stderr(&out));
    let node = c.node("web-1").unwrap();
    assert_eq!(node["labels"]["role"], "web");
    let key = agent.dir.join("node.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let recorded = std::fs::read_to_string(agent.dir.join("agent.toml")).unwrap();
    assert!(recorded.contains(&c.coord.addr), "{recorded}");

    // A bound token refuses another name.
    let token = c.token(&["--name", "db-1"]);
    let other = c.new_agent("db-2");
    let out = other.enroll_output(&c.coord.addr, &token);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bound to node name 'db-1'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn of_many_concurrent_enrolls_with_one_token_exactly_one_succeeds() {
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&[]);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let agent = c.new_agent(&format!("race-{i}"));
            let (addr, token) = (c.coord.addr.clone(), token.clone());
            std::thread::spawn(move || agent.enroll_output(&addr, &token))
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one enroll must win");
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(o).contains("already used"), "{}", stderr(o));
    }
    assert_eq!(c.nodes().len(), 1);
}

#[test]
fn reused_expired_malformed_and_foreign_tokens_are_refused() {
    let c = Cluster::builder().agents(1).start();

    // Reused.
    let token = c.token(&[]);
    let a = c.new_agent("a");
    assert!(a.enroll_output(&c.coord.addr, &token).status.success());
    let b = c.new_agent("b");
    let out = b.enroll_output(&c.coord.addr, &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already used (by node 'a')"),
        "{}",
        stderr(&out)
    );

    // Expired.
    let token = c.token(&["--ttl", "1s"]);
    let made = SystemTime::now();
    wait_until(
        || made.elapsed().unwrap() > Duration::from_millis(1100),
        Duration::from_secs(3),
        "token expiry",
    );
    let out = b.enroll_output(&c.coord.addr, &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));

    // Malformed: usage error, exit 2, nothing contacted.
    let out = b.enroll_output(&c.coord.addr, "lab1.nonsense");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("malformed enrollment token"),
        "{}",
        stderr(&out)
    );

    // Wrong CA pin: the agent refuses the coordinator during the handshake.
    let good = c.token(&[]);
    let mut parts: Vec<&str> = good.split('.').collect();
    let wrong_pin = "00".repeat(32);
    parts[3] = &wrong_pin;
    let out = b.enroll_output(&c.coord.addr, &parts.join("."));
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("does not match the pin"),
        "{}",
        stderr(&out)
    );
    // ...and the real token is still usable afterwards.
    assert!(b.enroll_output(&c.coord.addr, &good).status.success());
    assert!(!b.dir.join("x").exists());

    // Unknown secret: right id, wrong secret.
    let good = c.token(&[]);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = "A".repeat(43);
    let d = c.new_agent("d");
    let out = d.enroll_output(&c.coord.addr, &parts.join("."));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown or its secret is wrong"),
        "{}",
        stderr(&out)
    );
    assert!(!d.dir.join("node.pem").exists());
}

#[test]
fn tokens_and_nodes_survive_a_coordinator_restart() {
    let mut c = Cluster::builder().agents(1).start();
    let token = c.token(&["--name", "later"]);
    c.coord.stop(false);
    c.coord.start();
    let agent = c.new_agent("later");
    let out = agent.enroll_output(&c.coord.addr, &token);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = c
        .nodes()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["later", "n1"]);
}
