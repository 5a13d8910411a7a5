//! One labfleet installation on real systemd hosts, shared by the tests of a test binary: a
//! coordinator host and two agent hosts ([`SystemdHost`]), installed the way an operator
//! installs them (`apt install ./lab-….deb` of the packages `deploy/build-packages` made,
//! `lab-coordinator init`, `lab-agent enroll` with a token from labctl,
//! `systemctl enable --now`), driven from the host with the workspace's labctl.
//!
//! The coordinator listens on a loopback port this process picked; the hosts share the host's
//! network, so nothing leaves loopback. Tests that change a host (restart its agent, reboot it,
//! upgrade a package) hold that host's [`Node::lock`] so tests on other hosts run in parallel.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::systemd_host::SystemdHost;
use crate::{bin, free_port, labctl, stderr, wait_until};

/// Trust domain of the fleet's CA.
pub const TRUST_DOMAIN: &str = "e2e.test";

/// A host of the fleet, with a lock for tests that change it.
pub struct Node {
    /// Node name (for agent hosts, the name it enrolled with).
    pub name: String,
    /// The container.
    pub host: SystemdHost,
    lock: Mutex<()>,
}

impl Node {
    fn new(name: &str, host: SystemdHost) -> Node {
        Node {
            name: name.into(),
            host,
            lock: Mutex::new(()),
        }
    }

    /// Exclusive use of this host until the guard drops (a failed test does not poison it for
    /// the others).
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `systemctl show -p PROP --value UNIT` inside the host.
    pub fn unit_prop(&self, unit: &str, prop: &str) -> String {
        self.host
            .sh(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_owned()
    }
}

/// The shared fleet.
pub struct Fleet {
    /// Host-side scratch dir: labctl config, spec files, built packages.
    pub tmp: tempfile::TempDir,
    /// The coordinator's address (loopback).
    pub addr: String,
    /// The coordinator host.
    pub coord: Node,
    /// Agent hosts `deb-a` and `deb-b`.
    pub agents: [Node; 2],
}

/// The fleet, set up by the first test that asks; a failed setup fails every test with its
/// message (setting up again for each test would only repeat it).
pub fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Result<Fleet, String>> = OnceLock::new();
    let r = FLEET.get_or_init(|| {
        std::panic::catch_unwind(Fleet::setup).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into()))
        })
    });
    match r {
        Ok(f) => f,
        Err(e) => panic!("setting up the systemd hosts failed: {e}"),
    }
}

/// Where `deploy/build-packages` wrote the .debs: `$LAB_PKG_OUT` (its own setting) or
/// `target/packages`.
pub fn packages_dir() -> PathBuf {
    match std::env::var_os("LAB_PKG_OUT") {
        Some(dir) => dir.into(),
        None => bin("lab-agent")
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("packages"),
    }
}

/// The newest `NAME_*_amd64.deb` in [`packages_dir`].
pub fn package(name: &str) -> PathBuf {
    let dir = packages_dir();
    let prefix = format!("{name}_");
    let newest = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&prefix) && n.ends_with("_amd64.deb")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p)
    });
    newest.unwrap_or_else(|| {
        panic!(
            "no {name}_*_amd64.deb in {}; build the packages first with 'bash deploy/build-packages' (.ci/run does)",
            dir.display()
        )
    })
}

/// Copies the package into `h` and installs it with `apt install ./FILE` (its dependencies
/// are in the image: the hosts have no network). Returns apt's output.
pub fn install_package(h: &SystemdHost, name: &str) -> String {
    install_deb(h, &package(name))
}

/// Copies `deb` into `h` and installs it with `apt install ./FILE`; returns apt's output.
pub fn install_deb(h: &SystemdHost, deb: &Path) -> String {
    let file = deb
        .file_name()
        .and_then(|n| n.to_str())
        .expect("package file name");
    h.copy_in(deb, &format!("/root/{file}"));
    h.sh(&format!(
        "cd /root && DEBIAN_FRONTEND=noninteractive apt install -y ./{file} 2>&1"
    ))
}

impl Fleet {
    fn setup() -> Result<Fleet, String> {
        let started = Instant::now();
        let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let addr = format!("127.0.0.1:{}", free_port());
        // boot the three hosts side by side; systemd boots in seconds
        let boots: Vec<_> = ["coord", "a", "b"]
            .into_iter()
            .map(|role| std::thread::spawn(move || SystemdHost::boot(role)))
            .collect();
        let mut hosts = Vec::new();
        for b in boots {
            hosts.push(b.join().map_err(|_| "boot thread panicked")??);
        }
        let booted = started.elapsed();
        let b = hosts.pop().ok_or("no host")?;
        let a = hosts.pop().ok_or("no host")?;
        let c = hosts.pop().ok_or("no host")?;
        let fleet = Fleet {
            tmp,
            addr,
            coord: Node::new("coordinator", c),
            agents: [Node::new("deb-a", a), Node::new("deb-b", b)],
        };
        // each host installs in its own thread; agents enroll once the coordinator serves
        std::thread::scope(|s| {
            let agents: Vec<_> = fleet
                .agents
                .iter()
                .map(|n| s.spawn(|| install_package(&n.host, "lab-agent")))
                .collect();
            fleet.install_coordinator();
            for a in agents {
                if let Err(p) = a.join() {
                    std::panic::resume_unwind(p);
                }
            }
        });
        for n in &fleet.agents {
            fleet.enroll(n);
            n.host.sh("systemctl enable --now lab-agent");
        }
        for n in &fleet.agents {
            fleet.wait_online(&n.name, Duration::from_secs(30));
        }
        eprintln!(
            "systemd hosts: booted in {booted:.1?}, installed and online in {:.1?}",
            started.elapsed()
        );
        Ok(fleet)
    }

    /// Installs the coordinator package on the coordinator host, inits it for this fleet's
    /// address and starts it, then copies the admin labctl config out.
    fn install_coordinator(&self) {
        let h = &self.coord.host;
        install_package(h, "lab-coordinator");
        // appended, so the package's commented settings stay above ours
        h.sh(&format!(
            "printf 'LAB_LISTEN={}\\nLAB_METRICS_LISTEN=off\\nLAB_HEARTBEAT_INTERVAL=1s\\n' >> /etc/default/lab-coordinator",
            self.addr
        ));
        h.sh(&format!(
            "lab-coordinator init --advertise {} --trust-domain {TRUST_DOMAIN}",
            self.addr
        ));
        // Type=notify: this returns once the coordinator is serving
        h.sh("systemctl enable --now lab-coordinator");
        h.copy_out("/var/lib/lab-coordinator/labctl.toml", &self.admin_config());
    }

    /// `lab-agent enroll` on the node's host with a fresh token.
    pub fn enroll(&self, n: &Node) {
        let token = self.token();
        n.host.sh(&format!(
            "lab-agent enroll --coordinator {} --token {token} --name {}",
            self.addr, n.name
        ));
    }

    /// The admin labctl config (copied from the coordinator host).
    pub fn admin_config(&self) -> PathBuf {
        self.tmp.path().join("labctl.toml")
    }

    /// labctl with the admin config.
    pub fn labctl(&self, args: &[&str]) -> Output {
        labctl(&self.admin_config(), args)
    }

    /// labctl that must succeed; returns stdout.
    pub fn labctl_ok(&self, args: &[&str]) -> String {
        let out = self.labctl(args);
        assert!(
            out.status.success(),
            "labctl {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A one-time enrollment token.
    pub fn token(&self) -> String {
        self.labctl_ok(&["token", "create", "--ttl", "10m"])
            .trim()
            .to_owned()
    }

    /// `labctl apply -f` of `spec` with `extra` arguments.
    pub fn apply(&self, spec: &str, extra: &[&str]) -> Output {
        let file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile_in(self.tmp.path())
            .expect("spec file");
        std::fs::write(file.path(), spec).expect("write spec");
        let mut args = vec!["apply", "-f", file.path().to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        self.labctl(&args)
    }

    /// The `labctl nodes -o json` entry of `name`.
    pub fn node(&self, name: &str) -> Option<serde_json::Value> {
        let text = self.labctl_ok(&["nodes", "-o", "json"]);
        let nodes: Vec<serde_json::Value> = serde_json::from_str(&text).expect("nodes json");
        nodes.into_iter().find(|n| n["name"] == name)
    }

    /// Waits until node `name` is online.
    pub fn wait_online(&self, name: &str, timeout: Duration) {
        wait_until(
            || self.node(name).is_some_and(|n| n["online"] == true),
            timeout,
            &format!("node {name} online"),
        );
    }

    /// `labctl job show ID -o json`.
    pub fn job(&self, id: &str) -> serde_json::Value {
        let text = self.labctl_ok(&["job", "show", id, "-o", "json"]);
        serde_json::from_str(&text).expect("job json")
    }

    /// Waits until job `id` is done; returns it.
    pub fn wait_job_done(&self, id: &str, timeout: Duration) -> serde_json::Value {
        wait_until(
            || self.job(id)["done"] == true,
            timeout,
            &format!("job {id} done"),
        );
        self.job(id)
    }
}
