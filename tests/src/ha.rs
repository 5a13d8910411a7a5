//! Several coordinators of one fleet on etcd, set up as a user would: `init --store etcd://…`
//! on the first, `join --join-key` on the others.

use std::path::Path;
use std::process::{Command, Output};

use crate::{bin, free_port, Coordinator};

/// `lab-coordinator join` into `dir` advertising `addr` with `join_key` and `store_args`.
pub fn join_output(dir: &Path, addr: &str, join_key: &Path, store_args: &[String]) -> Output {
    Command::new(bin("lab-coordinator"))
        .args(["join", "--data-dir"])
        .arg(dir)
        .args(["--advertise", addr, "--join-key"])
        .arg(join_key)
        .args(store_args)
        .output()
        .expect("run join")
}

impl Coordinator {
    /// The join key `init` wrote (etcd stores only).
    pub fn join_key(&self) -> std::path::PathBuf {
        self.dir.join("join.key")
    }

    /// Another coordinator of this fleet, set up with `join` into `root/NAME` (own addresses,
    /// same store arguments), not started. Panics with join's stderr if it fails.
    pub fn join_as(&self, root: &Path, name: &str) -> Coordinator {
        let dir = root.join(name);
        let addr = format!("127.0.0.1:{}", free_port());
        let out = join_output(&dir, &addr, &self.join_key(), &self.store_args);
        assert!(
            out.status.success(),
            "join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.sibling(root, dir, addr)
    }
}

/// Every key under `prefix` in the etcd at `url` with its value and modification revision:
/// equal snapshots mean nothing under the prefix changed.
pub async fn prefix_snapshot(url: &str, prefix: &str) -> Vec<(String, Vec<u8>, i64)> {
    let (kvs, _) = crate::etcd::range(url, prefix, true).await;
    kvs.into_iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            (key, kv.value, kv.mod_revision)
        })
        .collect()
}

/// Waits until `standby` logs that it waits as a standby of `leader`.
pub fn wait_standby_of(standby: &Coordinator, leader: &Coordinator) {
    crate::wait_until_seen(
        || {
            let log = standby.log();
            (log.contains("standby") && log.contains(&leader.addr), log)
        },
        std::time::Duration::from_secs(20),
        "the second coordinator waits as a standby naming the leader",
    );
}
