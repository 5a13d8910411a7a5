//! Agent sessions end to end: online, offline on death, reconnect after a coordinator restart,
//! certificate renewal, revocation, metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lab_tests::{stderr, wait_until, Cluster};

#[test]
fn node_goes_online_offline_and_survives_a_coordinator_restart() {
    let mut c = Cluster::builder().agents(1).start();
    wait_until(
        || c.node("n1").is_some_and(|n| n["os"].is_string()),
        Duration::from_secs(10),
        "facts of n1 reported",
    );
    let node = c.node("n1").unwrap();
    assert_eq!(node["online"], true);
    assert!(node["last_seen"].is_string());
    assert_eq!(node["os"], "debian", "facts reported: {node}");

    // Kill the agent: offline within the heartbeat window (1s x 3).
    c.agents[0].stop(true);
    c.wait_online("n1", false, Duration::from_secs(6));

    // Back again, then restart the coordinator: the agent reconnects by itself.
    c.agents[0].start();
    c.wait_online("n1", true, Duration::from_secs(10));
    c.coord.stop(false);
    c.coord.start();
    c.wait_online("n1", true, Duration::from_secs(15));
    assert!(c.agents[0].is_running());
}

#[test]
fn revoked_node_is_cut_off_and_stays_out_across_restarts() {
    let mut c = Cluster::builder().agents(2).start();
    let out = c.labctl(&["node", "revoke", "n1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("session closed"), "{text}");
    c.wait_online("n1", false, Duration::from_secs(3));
    assert_eq!(c.node("n1").unwrap()["revoked"], true);

    // The agent stops retrying: it exits with its own code (systemd's unit does not restart
    // it) and says why.
    wait_until(
        || !c.agents[0].is_running(),
        Duration::from_secs(10),
        "revoked agent exited",
    );
    assert_eq!(c.agents[0].exit_code(), Some(4));
    let log = std::fs::read_to_string(c.tmp.path().join("agent-n1.log")).unwrap();
    assert!(
        log.contains("the coordinator refuses this node") && log.contains("revoked"),
        "agent log does not say why: {log}"
    );

    // It never gets back in, not even after a restart of either side.
    c.coord.stop(false);
    c.coord.start();
    c.agents[0].start();
    c.wait_online("n2", true, Duration::from_secs(15));
    wait_until(
        || !c.agents[0].is_running(),
        Duration::from_secs(10),
        "restarted revoked agent exited",
    );
    assert_eq!(c.agents[0].exit_code(), Some(4));
    assert!(!c.online("n1"));

    // A revoked name cannot be enrolled again until removed.
    let mut again = c.new_agent("n1");
    again.dir = c.tmp.path().join("agent-n1-again");
    let out = again.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    let out = c.labctl(&["node", "remove", "n1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = again.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn agent_renews_its_certificate_before_expiry() {
    let c = Cluster::builder().agents(1).node_cert_ttl("6s").start();
    let pem_path = c.agents[0].dir.join("node.pem");
    let first = std::fs::read_to_string(&pem_path).unwrap();
    let expires = c.node("n1").unwrap()["cert_expires"].clone();
    wait_until(
        || std::fs::read_to_string(&pem_path).unwrap() != first,
        Duration::from_secs(15),
        "agent renewed its certificate",
    );
    wait_until(
        || {
            c.node("n1")
                .is_some_and(|n| n["online"] == true && n["cert_expires"] != expires)
        },
        Duration::from_secs(10),
        "node online with the renewed certificate",
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&pem_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn metrics_count_online_nodes() {
    let c = Cluster::builder().agents(2).start();
    let text = c.coord.metrics();
    assert!(text.contains("labfleet_nodes_online 2"), "{text}");
    assert!(text.contains("labfleet_enrollments_total 2"), "{text}");
}
