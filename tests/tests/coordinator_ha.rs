//! Several coordinators on one etcd prefix (real etcd, real processes): exactly one is active,
//! a standby answers clients with the leader's address and takes over on the same port when the
//! leader dies, `labctl status` lists both from either, and a paused leader that lost its lease
//! writes nothing when it resumes and steps down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use lab_proto::etcd::KeyValue;
use lab_proto::standby::leader_hint;
use lab_tests::etcd::{self, range, Etcd};
use lab_tests::{labctl, stderr, wait_until, wait_until_seen, Agent, Coordinator};

/// A fleet's first coordinator (store in `url` under a fresh prefix) and a second one sharing
/// its prefix; neither started.
fn pair(root: &Path, url: &str) -> (Coordinator, Coordinator, String) {
    let prefix = etcd::unique_prefix();
    let args = vec![
        "--store".into(),
        url.into(),
        "--etcd-prefix".into(),
        prefix.clone(),
    ];
    let a = Coordinator::init_with_store(&root.join("a"), "a", "lab.local", args);
    let b = a.copy_as(&root.join("b"), "b");
    (a, b, prefix)
}

fn roots() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for d in ["a", "b", "agents"] {
        std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
    }
    tmp
}

/// Every key of the store and the leader key with the revision it was last written at: all but
/// the liveness records (`alive/…`), which each coordinator keeps whatever its role.
fn store_keys(keys: &[KeyValue], prefix: &str) -> Vec<(String, i64)> {
    keys.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .filter(|(k, _)| !k.starts_with(&format!("{prefix}alive/")))
        .collect()
}

/// The leader key's value (the leader's address) and create revision.
async fn leader(url: &str, prefix: &str) -> Option<(String, i64)> {
    let (kvs, _) = range(url, &format!("{prefix}leader"), false).await;
    kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(&kv.value).into_owned(),
            kv.create_revision,
        )
    })
}

/// `labctl user create NAME --role viewer` against `c` (a write to the store).
fn create_viewer(c: &Coordinator, name: &str, out: &Path) -> std::process::Output {
    let out = out.to_str().unwrap();
    let args = ["user", "create", name, "--role", "viewer", "--out", out];
    labctl(&c.admin_config(), &args)
}

fn listening(c: &Coordinator) -> bool {
    std::net::TcpStream::connect(&c.addr).is_ok()
}

/// Waits until `standby` logs that `leader` leads, and checks it listens (to answer with the
/// leader's address).
fn wait_standby(standby: &mut Coordinator, leader: &Coordinator) {
    wait_until_seen(
        || {
            let log = standby.log();
            let seen = log.contains("standby") && log.contains(&leader.addr);
            (seen, log)
        },
        Duration::from_secs(20),
        "the second coordinator waits as a standby naming the leader",
    );
    assert!(standby.is_running());
    assert!(
        listening(standby),
        "a standby listens to point clients at the leader"
    );
}

/// The `UNAVAILABLE` answer of `standby` names `leader` in its metadata and message.
fn assert_points_at(status: &tonic::Status, leader: &Coordinator) {
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(
        leader_hint(status).as_deref(),
        Some(leader.addr.as_str()),
        "{status:?}"
    );
    assert!(status.message().contains(&leader.addr), "{status:?}");
}

/// An agent RPC a standby answers: `Bootstrap`, without a client certificate.
async fn bootstrap(c: &Coordinator) -> Result<(), tonic::Status> {
    use lab_proto::client::{agent_client, connect, ConnectOptions};
    let ca = std::fs::read_to_string(c.dir.join("ca.crt")).unwrap();
    let tls = lab_proto::tls::client_config(&ca, None).unwrap();
    let channel = connect(&c.addr, tls, &ConnectOptions::default())
        .await
        .expect("connect to the standby");
    agent_client(channel)
        .bootstrap(lab_proto::v1::BootstrapRequest {})
        .await
        .map(|_| ())
}

/// `labctl status -o json` against `c`.
fn status(c: &Coordinator) -> serde_json::Value {
    let out = labctl(&c.admin_config(), &["status", "-o", "json"]);
    assert!(out.status.success(), "labctl status: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("labctl status -o json")
}

/// The role `status` gives `addr` (`None`: not listed).
fn role_of(status: &serde_json::Value, addr: &str) -> Option<String> {
    status["coordinators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == addr)
        .map(|c| c["role"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_and_the_standby_takes_over_when_it_is_killed() {
    let tmp = roots();
    let url = etcd::shared().url();
    let (mut a, mut b, prefix) = pair(tmp.path(), &url);
    a.start();
    b.spawn_with(&[]);
    wait_standby(&mut b, &a);
    assert_eq!(leader(&url, &prefix).await.unwrap().0, a.addr);
    assert!(a.metrics().contains("labfleet_leader 1"));
    assert!(b.metrics().contains("labfleet_leader 0"), "{}", b.metrics());
    let out = labctl(&a.admin_config(), &["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The standby answers operator and agent RPCs with UNAVAILABLE and the leader's address.
    let answer = b
        .admin_client()
        .await
        .who_am_i(lab_proto::v1::WhoAmIRequest {})
        .await;
    assert_points_at(&answer.unwrap_err(), &a);
    assert_points_at(&bootstrap(&b).await.unwrap_err(), &a);
    // labctl against the standby either names the leader or followed it there.
    let out = labctl(&b.admin_config(), &["whoami"]);
    assert!(
        out.status.success() || stderr(&out).contains(&a.addr),
        "labctl whoami at the standby: {}",
        stderr(&out)
    );
    // labctl status works against either and lists both.
    for c in [&a, &b] {
        let s = status(c);
        assert_eq!(role_of(&s, &a.addr).as_deref(), Some("leader"), "{s}");
        assert_eq!(role_of(&s, &b.addr).as_deref(), Some("standby"), "{s}");
        assert_eq!(s["last_leader_change"]["address"], a.addr.as_str(), "{s}");
        assert_eq!(s["answered_by"], c.addr.as_str(), "{s}");
    }
    let out = labctl(&b.admin_config(), &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("ADDRESS") && table.contains("standby"),
        "{table}"
    );
    assert!(
        table.contains(&format!("last leader change: {} became leader", a.addr)),
        "{table}"
    );

    a.stop(true);
    let killed = Instant::now();
    wait_until(
        || labctl(&b.admin_config(), &["whoami"]).status.success(),
        Duration::from_secs(10),
        "the standby serves labctl on the same port within 10 s of the leader's kill -9",
    );
    println!(
        "failover: the standby served labctl {:?} after kill -9 of the leader (lease TTL 5 s)",
        killed.elapsed()
    );
    assert_eq!(leader(&url, &prefix).await.unwrap().0, b.addr);
    assert!(b.metrics().contains("labfleet_leader 1"));
    // The killed leader's liveness record ends with its lease: down (a member) or gone.
    wait_until_seen(
        || {
            let s = status(&b);
            let old = role_of(&s, &a.addr);
            let ok = matches!(old.as_deref(), None | Some("down"))
                && role_of(&s, &b.addr).as_deref() == Some("leader")
                && s["last_leader_change"]["address"] == b.addr.as_str();
            (ok, s.to_string())
        },
        Duration::from_secs(10),
        "labctl status shows the new leader and the old one down or gone",
    );

    // An agent enrolls with and reports to the new leader.
    let out = labctl(&b.admin_config(), &["token", "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut agent = Agent::new("n1", &tmp.path().join("agents"));
    let out = agent.enroll_output(&b.addr, &token);
    assert!(out.status.success(), "enroll: {}", stderr(&out));
    agent.start();
    wait_until_seen(
        || {
            let nodes = lab_tests::nodes(&b.admin_config());
            let online = nodes
                .iter()
                .any(|n| n["name"] == "n1" && n["online"] == true);
            (online, format!("{nodes:?}"))
        },
        Duration::from_secs(20),
        "the agent online at the new leader",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_writes_nothing_after_the_standby_took_over_and_steps_down() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    // A cluster of its own: its revision moves only with this test's writes.
    let cluster = Etcd::cluster(1);
    let url = cluster.url();
    let tmp = roots();
    let (mut a, mut b, prefix) = pair(tmp.path(), &url);
    a.start_with(&["--leader-ttl", "3s"]);
    b.spawn_with(&["--leader-ttl", "3s"]);
    wait_standby(&mut b, &a);
    let (_, first) = leader(&url, &prefix).await.unwrap();

    let old = Pid::from_raw(a.pid().unwrap() as i32);
    kill(old, Signal::SIGSTOP).unwrap();
    wait_until(
        || labctl(&b.admin_config(), &["whoami"]).status.success(),
        Duration::from_secs(20),
        "the standby takes over from the paused leader",
    );
    let (addr, second) = leader(&url, &prefix).await.unwrap();
    assert_eq!(addr, b.addr);
    assert!(second > first);
    // The new leader writes.
    let viewer = tmp.path().join("viewer.toml");
    let out = create_viewer(&b, "vera", &viewer);
    assert!(out.status.success(), "{}", stderr(&out));
    let (keys, _) = range(&url, &prefix, true).await;
    let before = store_keys(&keys, &prefix);

    // The old leader resumes and is asked to write at once.
    kill(old, Signal::SIGCONT).unwrap();
    let stale = tmp.path().join("stale.toml");
    let out = create_viewer(&a, "old-leader", &stale);
    assert!(
        !out.status.success(),
        "the deposed leader acknowledged a write"
    );
    wait_until_seen(
        || (a.exit_code().is_some(), a.log()),
        Duration::from_secs(15),
        "the deposed leader exits",
    );
    assert_eq!(a.exit_code(), Some(1), "{}", a.log());
    assert!(a.log().contains("stepped down as leader"), "{}", a.log());

    // Nothing of the store changed since the new leader's last write: every key keeps its revision.
    let (keys, _) = range(&url, &prefix, true).await;
    assert_eq!(
        store_keys(&keys, &prefix),
        before,
        "a key of the store changed after the old leader resumed"
    );
    assert!(keys
        .iter()
        .all(|kv| !String::from_utf8_lossy(&kv.key).contains("old-leader")));
    assert_eq!(
        leader(&url, &prefix).await.unwrap(),
        (b.addr.clone(), second)
    );
    assert!(labctl(&b.admin_config(), &["whoami"]).status.success());
}

/// The fence alone (no keep-alive racing it): a store opened by a leader that was then deposed
/// commits nothing, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_deposed_leaders_store_commits_nothing() {
    use lab_coordinator::store::leader::campaign;
    use lab_coordinator::store::{EtcdOptions, Location, Store, StoreOptions};
    use lab_proto::store::v1::UserRecord;

    let url = etcd::shared().url();
    let mut o = EtcdOptions::parse(&url).unwrap();
    o.prefix = etcd::unique_prefix();
    let never = tokio_util::sync::CancellationToken::new();
    let ttl = Duration::from_secs(5);
    let first = campaign(&o, "a:1", ttl, &never).await.unwrap().unwrap();
    let options = StoreOptions {
        min_free_bytes: 0,
        fence: Some(first.fence()),
        ..Default::default()
    };
    let store = Store::open_at(&Location::Etcd(o.clone()), &options)
        .await
        .unwrap();
    let user = |name: &str| UserRecord {
        name: name.into(),
        ..Default::default()
    };
    store.create_user(user("early")).await.unwrap();

    first.resign().await;
    let second = campaign(&o, "b:1", ttl, &never).await.unwrap().unwrap();
    let err = store.create_user(user("late")).await.unwrap_err();
    assert!(err.to_string().contains("no longer the leader"), "{err}");
    let (keys, _) = range(&url, &o.prefix, true).await;
    let names: Vec<String> = keys
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert!(
        names.iter().any(|k| k.ends_with("t/users/early")),
        "{names:?}"
    );
    assert!(!names.iter().any(|k| k.contains("late")), "{names:?}");
    assert_eq!(
        leader(&url, &o.prefix).await.unwrap().0,
        "b:1",
        "the new leader's key stays"
    );
    second.resign().await;
}
