//! Test harness for labfleet's end-to-end tests: starts the real binaries (coordinator, agents,
//! labctl) on loopback with their own CA in a temp dir, and waits for conditions with deadlines.
//!
//! The binaries must be built first (`cargo build --workspace --bins`; `.ci/run` does it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod browser;
pub mod dashboard;
pub mod etcd;
pub mod file_server;
pub mod fixture_root;
pub mod ha;
pub mod postgres;
pub mod rogue;
pub mod schedule_runs;
pub mod sops;
pub mod systemd_fleet;
pub mod systemd_host;
pub mod tmpfs;
pub mod vm;
pub mod vm_image;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use tmpfs::Tmpfs;

/// Path of a workspace binary next to the test executable (target/<profile>/NAME).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first with 'cargo build --workspace --bins' (the .ci/run script does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; panics naming `what`.
pub fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration, what: &str) {
    wait_until_seen(|| (cond(), String::new()), timeout, what);
}

/// Like [`wait_until`] for a check that also says what it saw (`(holds, seen)`): the panic
/// shows the last thing seen.
pub fn wait_until_seen(mut check: impl FnMut() -> (bool, String), timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let (holds, seen) = check();
        if holds {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}{}",
            if seen.is_empty() {
                String::new()
            } else {
                format!("; last seen:\n{seen}")
            }
        );
        std::thread::sleep(Duration::from_millis(50)); // sleep-ok: polling interval of wait_until
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(File::create(dir.join(format!("{name}.log"))).expect("log file"))
}

/// Every file under `dir` whose bytes contain `needle` (for tests that grep raw files for a
/// secret).
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// Sends SIGTERM (or SIGKILL) to a child and reaps it.
pub fn stop(child: &mut Child, hard: bool) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let sig = if hard {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    let _ = kill(Pid::from_raw(child.id() as i32), sig);
    let _ = child.wait();
}

/// A coordinator process with its data dir.
pub struct Coordinator {
    pub dir: PathBuf,
    pub addr: String,
    pub metrics_addr: String,
    pub heartbeat: String,
    pub node_cert_ttl: String,
    /// More `serve` arguments (limits a test wants small).
    pub extra_args: Vec<String>,
    /// Open file limit (soft and hard) of the process, set with `prlimit`.
    pub nofile: Option<u64>,
    /// `--store` and `--etcd-*` arguments of init and serve (see [`etcd::test_store_args`]).
    pub store_args: Vec<String>,
    logs: PathBuf,
    child: Option<Child>,
}

impl Coordinator {
    /// Runs `lab-coordinator init` into `root/NAME`.
    pub fn init(root: &Path, name: &str, trust_domain: &str) -> Coordinator {
        Self::init_with_store(root, name, trust_domain, etcd::test_store_args())
    }

    /// Runs `lab-coordinator init` into `root/NAME` with these `--store`/`--etcd-*` arguments.
    pub fn init_with_store(
        root: &Path,
        name: &str,
        trust_domain: &str,
        store_args: Vec<String>,
    ) -> Coordinator {
        let dir = root.join(name);
        let addr = format!("127.0.0.1:{}", free_port());
        let out = Command::new(bin("lab-coordinator"))
            .args(["init", "--data-dir"])
            .arg(&dir)
            .args(["--advertise", &addr, "--trust-domain", trust_domain])
            .args(&store_args)
            .output()
            .expect("run init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Coordinator {
            dir,
            addr,
            metrics_addr: format!("127.0.0.1:{}", free_port()),
            heartbeat: "1s".into(),
            node_cert_ttl: "30d".into(),
            extra_args: Vec::new(),
            nofile: None,
            store_args,
            logs: root.to_path_buf(),
            child: None,
        }
    }

    /// The admin labctl config written by init.
    pub fn admin_config(&self) -> PathBuf {
        self.dir.join("labctl.toml")
    }

    /// An operator API client with the admin identity, for what a test asks the API directly
    /// (raw requests labctl would refuse, watching events).
    pub async fn admin_client(
        &self,
    ) -> lab_proto::v1::operator_service_client::OperatorServiceClient<tonic::transport::Channel>
    {
        use lab_proto::client::{connect, operator_client, ConnectOptions};
        use lab_proto::ctlconfig::CtlConfig;
        use lab_proto::tls::{client_config, ClientIdentity};

        let text = std::fs::read_to_string(self.admin_config()).expect("admin labctl config");
        let cfg = CtlConfig::parse(&text).expect("admin labctl config parses");
        let ctx = cfg.context(None).expect("admin context").clone();
        let identity = ClientIdentity {
            cert_pem: ctx.cert_pem.clone(),
            key_pem: ctx.key_pem.clone(),
        };
        let tls = client_config(&ctx.ca_pem, Some(&identity)).expect("admin TLS config");
        let channel = connect(&ctx.servers[0], tls, &ConnectOptions::default())
            .await
            .expect("connect to the coordinator");
        operator_client(channel)
    }

    /// Starts `serve` and waits until it accepts connections.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// A second coordinator of the same fleet (etcd store): a copy of this one's data directory
    /// in `root/NAME` with its own listen, advertised and metrics addresses, not started.
    pub fn copy_as(&self, root: &Path, name: &str) -> Coordinator {
        let dir = root.join(name);
        let out = Command::new("cp")
            .arg("-a")
            .arg(&self.dir)
            .arg(&dir)
            .output()
            .expect("run cp");
        assert!(out.status.success(), "cp: {}", stderr(&out));
        let addr = format!("127.0.0.1:{}", free_port());
        for file in ["coordinator.toml", "labctl.toml"] {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).expect("read copied settings");
            std::fs::write(&path, text.replace(&self.addr, &addr)).expect("write settings");
        }
        self.sibling(root, dir, addr)
    }

    /// Another coordinator with this one's settings, in `dir` at `addr`, logging into `root`.
    fn sibling(&self, root: &Path, dir: PathBuf, addr: String) -> Coordinator {
        Coordinator {
            dir,
            addr,
            metrics_addr: format!("127.0.0.1:{}", free_port()),
            heartbeat: self.heartbeat.clone(),
            node_cert_ttl: self.node_cert_ttl.clone(),
            extra_args: self.extra_args.clone(),
            nofile: self.nofile,
            store_args: self.store_args.clone(),
            logs: root.to_path_buf(),
            child: None,
        }
    }

    /// Starts `serve` with extra arguments and waits until it accepts connections (with an
    /// etcd store: until it leads and serves, as a standby listens too).
    pub fn start_with(&mut self, extra: &[&str]) {
        self.spawn_with(extra);
        let addr = self.addr.clone();
        wait_until(
            || std::net::TcpStream::connect(&addr).is_ok(),
            Duration::from_secs(20),
            "coordinator listening",
        );
        if self.store_args.iter().any(|a| a.starts_with("etcd://")) {
            wait_until_seen(
                || {
                    let log = self.log();
                    (log.contains("coordinator serving"), log)
                },
                Duration::from_secs(20),
                "the coordinator leads its etcd prefix and serves",
            );
        }
    }

    /// Starts `serve` with extra arguments without waiting for anything.
    pub fn spawn_with(&mut self, extra: &[&str]) {
        let mut cmd = match self.nofile {
            None => Command::new(bin("lab-coordinator")),
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(bin("lab-coordinator"));
                c
            }
        };
        let child = cmd
            .args(["serve", "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen",
                &self.addr,
                "--metrics-listen",
                &self.metrics_addr,
            ])
            .args([
                "--heartbeat-interval",
                &self.heartbeat,
                "--node-cert-ttl",
                &self.node_cert_ttl,
            ])
            .args(&self.store_args)
            .args(&self.extra_args)
            .args(extra)
            .env("LAB_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&self.logs, "coordinator"))
            .spawn()
            .expect("spawn coordinator");
        self.child = Some(child);
    }

    /// The process id of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit code once the process ended (`None` while it runs or if a signal ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        c.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logs.join("coordinator.log")).unwrap_or_default()
    }

    /// Stops the process (SIGKILL when `hard`).
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, hard);
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// GET /metrics as text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics_addr).expect("metrics connect");
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").expect("metrics write");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("metrics read");
        body
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// An agent process with its data dir.
pub struct Agent {
    pub name: String,
    pub dir: PathBuf,
    logs: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// A new agent named `name`, not yet enrolled, with its data dir and log in `root`.
    pub fn new(name: &str, root: &Path) -> Agent {
        Agent {
            name: name.into(),
            dir: root.join(format!("agent-{name}")),
            logs: root.to_path_buf(),
            child: None,
        }
    }

    /// `lab-agent enroll` output.
    pub fn enroll_output(&self, coordinator: &str, token: &str) -> Output {
        Command::new(bin("lab-agent"))
            .args([
                "enroll",
                "--coordinator",
                coordinator,
                "--token",
                token,
                "--data-dir",
            ])
            .arg(&self.dir)
            .args(["--name", &self.name])
            .output()
            .expect("run enroll")
    }

    /// Starts `lab-agent run`.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts `lab-agent run` with extra arguments.
    pub fn start_with(&mut self, extra: &[&str]) {
        self.start_with_env(extra, &[]);
    }

    /// Starts `lab-agent run` with extra arguments and environment variables (e.g. a `PATH`
    /// with stand-in programs first).
    pub fn start_with_env(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        let child = Command::new(bin("lab-agent"))
            .args(["run", "--data-dir"])
            .arg(&self.dir)
            .args(["--reconnect-max", "2s"])
            .args(extra)
            .env("LAB_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file(&self.logs, &format!("agent-{}", self.name)))
            .spawn()
            .expect("spawn agent");
        self.child = Some(child);
    }

    /// Stops the process (SIGKILL when `hard`).
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, hard);
        }
    }

    /// The node certificate and key the agent got at enrollment (from its `node.pem`).
    pub fn identity(&self) -> lab_proto::tls::ClientIdentity {
        let both = std::fs::read_to_string(self.dir.join("node.pem")).expect("node.pem");
        let split = both
            .find("-----BEGIN PRIVATE KEY-----")
            .expect("key in node.pem");
        lab_proto::tls::ClientIdentity {
            cert_pem: both[..split].into(),
            key_pem: both[split..].into(),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit code, once the process has ended by itself.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|status| status.code())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// A coordinator with enrolled agents, all in one temp dir.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub coord: Coordinator,
    pub agents: Vec<Agent>,
}

/// Builds a [`Cluster`].
pub struct ClusterBuilder {
    agents: usize,
    node_cert_ttl: String,
    coordinator_args: Vec<String>,
    nofile: Option<u64>,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            agents: 1,
            node_cert_ttl: "30d".into(),
            coordinator_args: Vec::new(),
            nofile: None,
        }
    }

    /// The coordinator's CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.coord.dir.join("ca.crt")).expect("ca.crt")
    }

    /// A TLS channel to the coordinator, with a client certificate or without.
    pub async fn channel(
        &self,
        id: Option<&lab_proto::tls::ClientIdentity>,
    ) -> tonic::transport::Channel {
        use lab_proto::client::{connect, ConnectOptions};
        let tls = lab_proto::tls::client_config(&self.ca_pem(), id).expect("TLS config");
        connect(&self.coord.addr, tls, &ConnectOptions::default())
            .await
            .expect("connect to the coordinator")
    }

    /// Runs labctl with the admin config.
    pub fn labctl(&self, args: &[&str]) -> Output {
        labctl(&self.coord.admin_config(), args)
    }

    /// A fresh token from the admin.
    pub fn token(&self, extra: &[&str]) -> String {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        let out = self.labctl(&args);
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    /// A new agent, not yet enrolled.
    pub fn new_agent(&self, name: &str) -> Agent {
        Agent::new(name, self.tmp.path())
    }

    /// Enrolls a new agent `name` and starts it reporting the facts of the fixture tree
    /// `facts_root` (`lab-agent run --facts-root`).
    pub fn add_agent_with_facts_root(&mut self, name: &str, facts_root: &Path) {
        let mut agent = self.new_agent(name);
        let out = agent.enroll_output(&self.coord.addr, &self.token(&[]));
        assert!(
            out.status.success(),
            "enroll {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        agent.start_with(&["--facts-root", facts_root.to_str().expect("utf-8 path")]);
        self.agents.push(agent);
    }

    /// The names of the nodes `labctl nodes -l SELECTOR` lists.
    pub fn node_names(&self, selector: &str) -> Vec<String> {
        let out = self.labctl(&["nodes", "-l", selector, "-o", "json"]);
        assert!(
            out.status.success(),
            "{selector}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("nodes json");
        nodes
            .iter()
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// `labctl nodes -o json`.
    pub fn nodes(&self) -> Vec<serde_json::Value> {
        nodes(&self.coord.admin_config())
    }

    /// The `labctl nodes` entry of `name`.
    pub fn node(&self, name: &str) -> Option<serde_json::Value> {
        self.nodes().into_iter().find(|n| n["name"] == name)
    }

    /// Whether `name` is online.
    pub fn online(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| n["online"] == true)
    }

    /// Waits until `name` is online (or not).
    pub fn wait_online(&self, name: &str, online: bool, timeout: Duration) {
        wait_until(
            || self.online(name) == online,
            timeout,
            &format!("node {name} online={online}\n{}", self.logs()),
        );
    }

    /// Tail of every log file, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.tmp.path()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    out.push_str(&format!("--- {}\n", p.display()));
                    for l in tail.into_iter().rev() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

impl ClusterBuilder {
    pub fn agents(mut self, n: usize) -> Self {
        self.agents = n;
        self
    }

    pub fn node_cert_ttl(mut self, ttl: &str) -> Self {
        self.node_cert_ttl = ttl.into();
        self
    }

    /// More arguments for `lab-coordinator serve`.
    pub fn coordinator_args(mut self, args: &[&str]) -> Self {
        self.coordinator_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Runs the coordinator with this open file limit (soft and hard).
    pub fn coordinator_nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Inits and starts the coordinator, enrolls and starts the agents, waits until all are online.
    pub fn start(self) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut coord = Coordinator::init(tmp.path(), "coordinator", "lab.test");
        coord.node_cert_ttl = self.node_cert_ttl;
        coord.extra_args = self.coordinator_args;
        coord.nofile = self.nofile;
        coord.start();
        let mut cluster = Cluster {
            tmp,
            coord,
            agents: Vec::new(),
        };
        for i in 1..=self.agents {
            let mut agent = cluster.new_agent(&format!("n{i}"));
            let token = cluster.token(&[]);
            let out = agent.enroll_output(&cluster.coord.addr, &token);
            assert!(
                out.status.success(),
                "enroll: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            agent.start();
            cluster.agents.push(agent);
        }
        for i in 1..=self.agents {
            cluster.wait_online(&format!("n{i}"), true, Duration::from_secs(20));
        }
        cluster
    }
}

/// `labctl nodes -o json` with `config`; panics unless it succeeds.
pub fn nodes(config: &Path) -> Vec<serde_json::Value> {
    let out = labctl(config, &["nodes", "-o", "json"]);
    assert!(
        out.status.success(),
        "nodes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nodes json")
}

/// Runs labctl with `config`.
pub fn labctl(config: &Path, args: &[&str]) -> Output {
    Command::new(bin("labctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run labctl")
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with what to install when `program` is missing.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs '{program}'; install it with 'apt-get install -y {package}' (.ci/run does)"
    );
}
