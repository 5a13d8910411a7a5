//! A real etcd (Debian's `etcd-server`) for the tests, on loopback ports in a temp dir: a
//! three-member cluster shared by every test of a process ([`shared`]), or a cluster of its
//! own ([`Etcd::cluster`]) for a test that kills members.
//!
//! `LAB_TEST_STORE=etcd` makes [`crate::Coordinator::init`] put the coordinator's store in the
//! shared cluster, under a prefix of its own ([`test_store_args`]), so the end-to-end suites run
//! unchanged on either backend.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{free_port, require, stop, wait_until_seen};

/// The etcd binary.
const ETCD: &str = "/usr/bin/etcd";

/// One member's ports and process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster (one or more members), stopped when dropped.
pub struct Etcd {
    members: Vec<Member>,
    token: String,
    _dir: Option<tempfile::TempDir>,
    /// For the shared cluster: closing these pipes (at process exit) stops its members.
    _keepalive: Vec<ChildStdin>,
}

fn member_args(m: &Member, cluster: &str, token: &str) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", m.client_port);
    let peer = format!("http://127.0.0.1:{}", m.peer_port);
    [
        "--name",
        &m.name,
        "--data-dir",
        &m.data_dir.display().to_string(),
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        cluster,
        "--initial-cluster-token",
        token,
        "--initial-cluster-state",
        "new",
        "--logger",
        "zap",
        "--log-level",
        "error",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Whether the member at `port` says it is healthy (GET /health).
fn healthy(port: u16) -> (bool, String) {
    let get = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET /health HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    match get() {
        Ok(body) => (body.contains("\"health\":\"true\""), body),
        Err(e) => (false, e.to_string()),
    }
}

fn new_members(root: &Path, n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            name: format!("m{i}"),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: root.join(format!("m{i}")),
            child: None,
        })
        .collect()
}

fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
        .collect::<Vec<_>>()
        .join(",")
}

fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>()
    )
}

impl Etcd {
    /// Starts a cluster of `n` members owned by the caller and waits until every member is
    /// healthy.
    pub fn cluster(n: usize) -> Etcd {
        require(ETCD, "etcd-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut etcd = Etcd {
            members: new_members(dir.path(), n),
            token: unique("lab-test"),
            _dir: Some(dir),
            _keepalive: Vec::new(),
        };
        for i in 0..n {
            etcd.start_member(i);
        }
        etcd.wait_healthy();
        etcd
    }

    /// `etcd://HOST:PORT,…` of every member, for `--store`.
    pub fn url(&self) -> String {
        let eps: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}", eps.join(","))
    }

    /// Starts member `i` again (after [`Etcd::kill_member`]) with its data.
    pub fn start_member(&mut self, i: usize) {
        let cluster = initial_cluster(&self.members);
        let m = &mut self.members[i];
        let log = std::fs::File::create(m.data_dir.with_extension("log")).expect("etcd log");
        let child = Command::new(ETCD)
            .args(member_args(m, &cluster, &self.token))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        m.child = Some(child);
    }

    /// SIGKILLs member `i`.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            stop(&mut c, true);
        }
    }

    /// Waits until every running member is healthy (the cluster has a leader).
    pub fn wait_healthy(&self) {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            wait_until_seen(
                || healthy(m.client_port),
                Duration::from_secs(30),
                &format!("etcd member {} healthy", m.name),
            );
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}

/// Members of the [`shared`] cluster: three, so the end-to-end suites run against a quorum
/// (every write replicated) as they would in production.
const SHARED_MEMBERS: usize = 3;

/// One etcd cluster shared by every test of this process. It stops when the process exits:
/// each member runs under a shell that kills it once the test process's end of its stdin
/// closes, and removes its data.
pub fn shared() -> &'static Etcd {
    static SHARED: OnceLock<Etcd> = OnceLock::new();
    SHARED.get_or_init(|| {
        require(ETCD, "etcd-server");
        let root = tempfile::tempdir().expect("tempdir").keep();
        let members = new_members(&root, SHARED_MEMBERS);
        let token = unique("lab-test");
        let cluster = initial_cluster(&members);
        let keepalive = members
            .iter()
            .map(|m| {
                let log = std::fs::File::create(m.data_dir.with_extension("log"))
                    .expect("etcd log");
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(r#"dir=$1; shift; "$@" & pid=$!; while read -r _; do :; done; kill -9 $pid; wait $pid; rm -rf "$dir""#)
                    .arg("sh")
                    .arg(&m.data_dir)
                    .arg(ETCD)
                    .args(member_args(m, &cluster, &token))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("spawn etcd");
                let stdin = child.stdin.take().expect("piped stdin");
                // The shell owns etcd and ends with this process; nothing waits for it.
                drop(child);
                stdin
            })
            .collect();
        let etcd = Etcd {
            members,
            token,
            _dir: None,
            _keepalive: keepalive,
        };
        for m in &etcd.members {
            wait_until_seen(
                || healthy(m.client_port),
                Duration::from_secs(30),
                &format!("shared etcd member {} healthy", m.name),
            );
        }
        etcd
    })
}

/// Every key of etcd at `url` from `key` (with `prefix`: every key starting with it), and the
/// cluster's revision.
pub async fn range(url: &str, key: &str, prefix: bool) -> (Vec<lab_proto::etcd::KeyValue>, i64) {
    use lab_proto::etcd::{kv_client::KvClient, RangeRequest};

    let member = url
        .trim_start_matches("etcd://")
        .split(',')
        .next()
        .expect("an etcd member");
    let channel = tonic::transport::Channel::from_shared(format!("http://{member}"))
        .expect("etcd member URL")
        .connect()
        .await
        .expect("connect to etcd");
    let mut range_end = Vec::new();
    if prefix {
        range_end = key.as_bytes().to_vec();
        *range_end.last_mut().expect("a non-empty prefix") += 1;
    }
    let answer = KvClient::new(channel)
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            range_end,
            ..Default::default()
        })
        .await
        .expect("etcd range")
        .into_inner();
    (answer.kvs, answer.header.map_or(0, |h| h.revision))
}

/// A key prefix no other test uses, for `--etcd-prefix`.
pub fn unique_prefix() -> String {
    format!("/{}/", unique("t"))
}

/// Whether the end-to-end tests put the coordinator's store in etcd (`LAB_TEST_STORE=etcd`).
pub fn test_store_is_etcd() -> bool {
    match std::env::var("LAB_TEST_STORE").as_deref() {
        Ok("etcd") => true,
        Ok("sled") | Ok("") | Err(_) => false,
        Ok(other) => panic!("LAB_TEST_STORE={other}: use sled or etcd"),
    }
}

/// The `--store`/`--etcd-prefix` arguments for a new coordinator: empty for sled, the shared
/// member and a fresh prefix for etcd.
pub fn test_store_args() -> Vec<String> {
    if !test_store_is_etcd() {
        return Vec::new();
    }
    vec![
        "--store".into(),
        shared().url(),
        "--etcd-prefix".into(),
        unique_prefix(),
    ]
}
