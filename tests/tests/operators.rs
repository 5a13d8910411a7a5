//! Operators' lifecycle end to end: creating users (and retrying), roles, renewal, revocation
//! and deletion taking effect at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lab_tests::{labctl, stderr, wait_until, Cluster};

fn user_names(c: &Cluster) -> Vec<String> {
    let out = c.labctl(&["user", "list", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let users: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    users
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn user_create_checks_the_out_path_first_and_can_be_retried() {
    let c = Cluster::builder().agents(0).start();
    let out = c.labctl(&[
        "user",
        "create",
        "dave",
        "--role",
        "viewer",
        "--out",
        "/nonexistent/dave.toml",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent/dave.toml"),
        "{}",
        stderr(&out)
    );
    assert!(
        !user_names(&c).contains(&"dave".to_owned()),
        "nothing may be created on the coordinator"
    );
    let good = create_user(&c, "dave", "viewer", &[]);
    let out = labctl(&good, &["whoami"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dave (viewer)"),
        "{}",
        stderr(&out)
    );
}

fn create_user(c: &Cluster, name: &str, role: &str, extra: &[&str]) -> std::path::PathBuf {
    let path = c.tmp.path().join(format!("{name}.toml"));
    let mut args = vec![
        "user",
        "create",
        name,
        "--role",
        role,
        "--out",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = c.labctl(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

fn cert_days_left(config: &std::path::Path) -> f64 {
    let cfg =
        lab_proto::ctlconfig::CtlConfig::parse(&std::fs::read_to_string(config).unwrap()).unwrap();
    let info = lab_proto::pem::cert_info_from_pem(&cfg.contexts[0].cert_pem).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (info.not_after_unix_ms - now) as f64 / 86_400_000.0
}

#[test]
fn revoking_a_user_ends_their_open_streams_and_their_access() {
    let c = Cluster::builder().agents(1).start();
    let bob = create_user(&c, "bob", "operator", &[]);
    // bob follows a long job: a WatchJob stream stays open.
    let mut follow = std::process::Command::new(lab_tests::bin("labctl"))
        .arg("--config")
        .arg(&bob)
        .args(["run", "--", "sleep", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        || {
            let out = c.labctl(&["jobs", "-o", "json"]);
            String::from_utf8_lossy(&out.stdout).contains("\"bob\"")
        },
        Duration::from_secs(20),
        "bob's job submitted",
    );
    let out = c.labctl(&["user", "revoke", "bob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let started = std::time::Instant::now();
    wait_until(
        || matches!(follow.try_wait(), Ok(Some(_))),
        Duration::from_secs(10),
        "bob's labctl run ends after the revocation",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = follow.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("access of user 'bob' changed"), "{err}");
    let out = labctl(&bob, &["whoami"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Deleting removes them; the name can be used again.
    let out = c.labctl(&["user", "delete", "bob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!user_names(&c).contains(&"bob".to_owned()));
    let old_bob = c.tmp.path().join("old-bob.toml");
    std::fs::rename(&bob, &old_bob).unwrap();
    let bob2 = create_user(&c, "bob", "viewer", &[]);
    assert!(labctl(&bob2, &["whoami"]).status.success());
    assert_eq!(labctl(&old_bob, &["whoami"]).status.code(), Some(3));
}

#[test]
fn roles_change_at_once_and_the_last_admin_stays() {
    let c = Cluster::builder().agents(0).start();
    let carol = create_user(&c, "carol", "viewer", &[]);
    let out = labctl(&carol, &["token", "create"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    for args in [
        &["user", "delete", "admin"][..],
        &["user", "revoke", "admin"][..],
        &["user", "set-role", "admin", "viewer"][..],
    ] {
        let out = c.labctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("last admin"), "{}", stderr(&out));
    }

    let out = c.labctl(&["user", "set-role", "carol", "admin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = labctl(&carol, &["token", "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // With a second admin, the first may step down.
    let out = labctl(&carol, &["user", "set-role", "admin", "operator"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.labctl(&["token", "create"]);
    assert_eq!(out.status.code(), Some(1), "admin is an operator now");
}

#[test]
fn operator_certificates_last_30_days_and_are_renewed_into_the_config() {
    let c = Cluster::builder().agents(0).start();
    let dave = create_user(&c, "dave", "viewer", &[]);
    let days = cert_days_left(&dave);
    assert!((29.9..=30.1).contains(&days), "{days}");
    let erin = create_user(&c, "erin", "viewer", &["--ttl", "1h"]);
    assert!(cert_days_left(&erin) < 0.05);

    let before = std::fs::read_to_string(&erin).unwrap();
    let out = labctl(&erin, &["user", "renew", "--ttl", "2d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = std::fs::read_to_string(&erin).unwrap();
    assert_ne!(before, after);
    assert!((1.9..=2.1).contains(&cert_days_left(&erin)));
    let out = labctl(&erin, &["whoami"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erin (viewer)"),
        "{}",
        stderr(&out)
    );
    let out = labctl(&erin, &["login"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cert_days_left(&erin) > 29.0);
}

#[test]
fn a_revoked_token_cannot_enroll() {
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&[]);
    let id = token.split('.').nth(1).unwrap().to_owned();
    let out = c.labctl(&["token", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let agent = c.new_agent("late");
    let out = agent.enroll_output(&c.coord.addr, &token);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    let out = c.labctl(&["token", "revoke", "0123456789abcdef"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
