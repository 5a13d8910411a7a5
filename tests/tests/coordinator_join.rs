//! A second coordinator set up with `lab-coordinator join` (real etcd, real processes), and
//! clients that know both: an agent enrolled with `--coordinator A,B` and labctl with
//! `servers = [A, B]` keep working after the leader is killed; `join` with a wrong key, on an
//! empty prefix or with an address already joined fails clearly and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use lab_proto::ctlconfig::CtlConfig;
use lab_tests::etcd;
use lab_tests::ha::{join_output, prefix_snapshot, wait_standby_of};
use lab_tests::{free_port, labctl, stderr, wait_until, wait_until_seen, Agent, Coordinator};

/// `--store URL --etcd-prefix PREFIX`.
fn store_args(url: &str, prefix: &str) -> Vec<String> {
    vec![
        "--store".into(),
        url.into(),
        "--etcd-prefix".into(),
        prefix.into(),
    ]
}

fn servers(config: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(config).expect("labctl.toml");
    let cfg = CtlConfig::parse(&text).expect("labctl.toml parses");
    cfg.context(None).expect("context").servers.clone()
}

fn online_at(config: &Path, node: &str) -> (bool, String) {
    let nodes = lab_tests::nodes(config);
    let online = nodes
        .iter()
        .any(|n| n["name"] == node && n["online"] == true);
    (online, format!("{nodes:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_joined_coordinator_takes_over_and_clients_with_both_addresses_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let url = etcd::shared().url();
    let args = store_args(&url, &etcd::unique_prefix());
    let mut a = Coordinator::init_with_store(&tmp.path().join("a"), "a", "lab.local", args);
    let mut b = a.join_as(&tmp.path().join("b"), "b");
    // init wrote the join key 0600; join's labctl config names both coordinators.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.join_key()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mut both = vec![a.addr.clone(), b.addr.clone()];
    both.sort();
    assert_eq!(servers(&b.admin_config()), both);
    assert_eq!(servers(&a.admin_config()), vec![a.addr.clone()]);

    a.start();
    b.spawn_with(&[]);
    wait_standby_of(&b, &a);
    // labctl with both servers reaches the leader, whichever comes first in its list.
    let out = labctl(&b.admin_config(), &["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The agent enrolls with a dead address first: the next one is used, all are saved.
    let out = labctl(&a.admin_config(), &["token", "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let dead = format!("127.0.0.1:{}", free_port());
    let list = format!("{dead},{},{}", a.addr, b.addr);
    let mut agent = Agent::new("n1", &tmp.path().join("agents"));
    std::fs::create_dir_all(tmp.path().join("agents")).unwrap();
    let out = agent.enroll_output(&list, &token);
    assert!(out.status.success(), "enroll: {}", stderr(&out));
    let saved = std::fs::read_to_string(agent.dir.join("agent.toml")).unwrap();
    assert!(
        saved.contains(&format!(
            "coordinators = [\n    \"{dead}\",\n    \"{}\",\n    \"{}\",\n]",
            a.addr, b.addr
        )),
        "{saved}"
    );
    agent.start();
    wait_until_seen(
        || online_at(&b.admin_config(), "n1"),
        Duration::from_secs(20),
        "the agent online at the leader",
    );

    a.stop(true);
    let killed = Instant::now();
    wait_until(
        || labctl(&b.admin_config(), &["whoami"]).status.success(),
        Duration::from_secs(15),
        "labctl with both servers answered by the new leader",
    );
    let labctl_back = killed.elapsed();
    wait_until_seen(
        || online_at(&b.admin_config(), "n1"),
        Duration::from_secs(30),
        "the agent reconnects to the new leader",
    );
    println!(
        "after kill -9 of the leader: labctl served in {labctl_back:?}, agent online again in {:?}",
        killed.elapsed()
    );
    let log =
        std::fs::read_to_string(tmp.path().join("agents").join("agent-n1.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("\"coordinator\":\"{}\"", b.addr)),
        "the agent's log names the coordinator it connected to: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn join_refuses_a_wrong_key_an_empty_prefix_and_a_taken_address_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = etcd::shared().url();
    let prefix = etcd::unique_prefix();
    let args = store_args(&url, &prefix);
    let a = Coordinator::init_with_store(&tmp.path().join("a"), "a", "lab.local", args.clone());
    // Another fleet's key: a real join key that does not open this fleet's CA.
    let other = Coordinator::init_with_store(
        &tmp.path().join("o"),
        "o",
        "other.lab",
        store_args(&url, &etcd::unique_prefix()),
    );
    let garbage = tmp.path().join("garbage.key");
    std::fs::write(&garbage, "# not a key\nhello\n").unwrap();
    let before = prefix_snapshot(&url, &prefix).await;
    assert!(
        before.iter().any(|(k, _, _)| *k == format!("{prefix}ca")),
        "{before:?}"
    );

    let dir = tmp.path().join("b");
    let addr = format!("127.0.0.1:{}", free_port());
    let empty = store_args(&url, &etcd::unique_prefix());
    let sled: Vec<String> = Vec::new();
    let missing = tmp.path().join("missing.key");
    let (right, wrong) = (a.join_key(), other.join_key());
    let cases: Vec<(&str, &Path, &Vec<String>, &str)> = vec![
        (&addr, &wrong, &args, "does not open the fleet CA"),
        (&addr, &garbage, &args, "is not a join key"),
        (&addr, &missing, &args, "cannot read the join key"),
        (&addr, &right, &empty, "holds no fleet"),
        (&a.addr, &right, &args, "has already joined this fleet"),
        (&addr, &right, &sled, "join needs the fleet's etcd store"),
        ("no-port", &right, &args, "is not HOST:PORT"),
    ];
    for (advertise, key, store, want) in cases {
        let out = join_output(&dir, advertise, key, store);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert!(err.contains(want), "wanted '{want}': {err}");
        assert!(!dir.exists(), "{want}: join created {}", dir.display());
    }
    assert_eq!(prefix_snapshot(&url, &prefix).await, before);

    // The right key joins once; the same address cannot join twice.
    let out = join_output(&dir, &addr, &right, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = join_output(&tmp.path().join("c"), &addr, &right, &args);
    assert!(
        stderr(&again).contains("has already joined this fleet"),
        "{}",
        stderr(&again)
    );
    let out = join_output(&dir, &format!("127.0.0.1:{}", free_port()), &right, &args);
    assert!(
        stderr(&out).contains("already holds a coordinator"),
        "{}",
        stderr(&out)
    );
}
