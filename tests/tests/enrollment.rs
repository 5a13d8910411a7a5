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

#[test]
fn a_bound_token_names_the_node_when_enroll_has_no_name() {
    // The README's flow: `labctl token create --name nas`, then enroll without --name. The
    // agent offers its hostname as a default, which the bound name overrides.
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&["--name", "nas"]);
    let dir = c.tmp.path().join("agent-nas");
    let out = std::process::Command::new(lab_tests::bin("lab-agent"))
        .args(["enroll", "--coordinator", &c.coord.addr, "--token", &token])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("LAB_NODE_NAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("enrolled as node 'nas'"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(c.node("nas").is_some());
}

/// An anonymous agent client dialling from `source` (a 127.0.0.x address).
async fn anonymous_agent(
    c: &Cluster,
    source: &str,
) -> lab_proto::v1::agent_service_client::AgentServiceClient<tonic::transport::Channel> {
    use lab_proto::client::{agent_client, connect, ConnectOptions};
    let ca = std::fs::read_to_string(c.coord.dir.join("ca.crt")).unwrap();
    let tls = lab_proto::tls::client_config(&ca, None).unwrap();
    let options = ConnectOptions {
        bind: Some(source.parse().unwrap()),
    };
    agent_client(connect(&c.coord.addr, tls, &options).await.unwrap())
}

fn enroll_request(token: &str, name: &str) -> lab_proto::v1::EnrollRequest {
    let key = lab_proto::csr::new_key_pem().unwrap();
    lab_proto::v1::EnrollRequest {
        token: token.to_owned(),
        csr_pem: lab_proto::csr::csr_for_key(&key).unwrap(),
        node_name: name.to_owned(),
        default_node_name: String::new(),
    }
}

/// `token` with its secret replaced.
fn wrong_secret(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = "A".repeat(43);
    parts.join(".")
}

#[test]
fn failed_token_guesses_get_one_answer_and_are_rate_limited_per_source() {
    let c = Cluster::builder().agents(1).start();
    let bound = c.token(&["--name", "vault"]);
    let good = c.token(&[]);
    let unknown = {
        let mut parts: Vec<String> = bound.split('.').map(str::to_owned).collect();
        parts[1] = "0123456789abcdef".into();
        parts.join(".")
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut guesser = anonymous_agent(&c, "127.0.0.2").await;
        // A guess at a bound token, at an enrolled name, with an unknown id, and with a CSR that
        // is garbage: one and the same answer, naming neither the bound name nor the node.
        let mut garbage_csr = enroll_request(&unknown, "x");
        garbage_csr.csr_pem = "not a csr".into();
        let mut answers = Vec::new();
        for req in [
            enroll_request(&wrong_secret(&bound), "other"),
            enroll_request(&wrong_secret(&bound), ""),
            enroll_request(&unknown, "n1"),
            garbage_csr,
        ] {
            let err = guesser.enroll(req).await.unwrap_err();
            answers.push((err.code(), err.message().to_owned()));
        }
        for (code, message) in &answers {
            assert_eq!((code, message), (&answers[0].0, &answers[0].1));
            assert!(
                !message.contains("vault") && !message.contains("n1"),
                "{message}"
            );
            assert!(
                message.contains("unknown or its secret is wrong"),
                "{message}"
            );
        }
        // Ten failures per source are allowed at once; then that source is refused even with a
        // good token, while another source still enrolls.
        for _ in answers.len()..10 {
            let err = guesser
                .enroll(enroll_request(&unknown, "x"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        }
        let err = guesser
            .enroll(enroll_request(&good, "late"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message()
                .contains("too many failed enrollment attempts"),
            "{err:?}"
        );
        let mut honest = anonymous_agent(&c, "127.0.0.3").await;
        honest.enroll(enroll_request(&good, "late")).await.unwrap();
    });
    let metrics = c.coord.metrics();
    assert!(
        metrics.contains("labfleet_enrollment_failures_total 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("labfleet_enrollments_rate_limited_total 1"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(log.contains("enrollment refused"), "{log}");
}
